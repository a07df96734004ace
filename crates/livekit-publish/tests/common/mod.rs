//! Test helpers: a real livekit-server on free loopback ports, tokens, the
//! Python SDK viewer and synthetic encoded media.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

pub mod subscriber;

use anyhow::Result;
use streamit_livekit_publish::{ConnectionState, PublisherEvent};
use streamit_testkit::Grants;
use tokio::sync::mpsc::Receiver;

/// A real livekit-server from the workspace harness (`streamit-testkit`):
/// free loopback ports, process group + PDEATHSIG, killed on drop.
pub struct Server {
    lk: streamit_testkit::LiveKit,
}

pub fn python() -> Option<PathBuf> {
    streamit_testkit::viewer_python().ok()
}

impl Server {
    pub fn start() -> Result<Self> {
        Ok(Self {
            lk: streamit_testkit::LiveKit::start()?,
        })
    }

    /// Kill the server (as a crash would).
    pub fn kill(&mut self) {
        self.lk.kill();
    }

    /// Freeze the server (SIGSTOP) until [`Server::resume`].
    pub fn pause(&self) -> bool {
        self.lk.pause()
    }

    /// Let a paused server run again (SIGCONT).
    pub fn resume(&self) -> bool {
        self.lk.resume()
    }

    /// Start it again on the same ports.
    pub fn restart(&mut self) -> Result<()> {
        self.lk.restart()
    }

    pub fn ws_url(&self) -> String {
        self.lk.ws_url()
    }

    pub fn log(&self) -> String {
        self.lk.log_tail(200)
    }

    pub fn token(&self, identity: &str, room: &str, publish: bool) -> Result<String> {
        let grants = if publish {
            Grants::Publisher
        } else {
            Grants::Viewer
        };
        self.lk.token(identity, room, grants)
    }
}

/// Options for the project's viewer (tests/viewer/viewer.py through
/// `streamit_testkit::Viewer`) staying at most `seconds`.
pub fn viewer_options(url: &str, token: &str, seconds: f64) -> streamit_testkit::ViewerOptions {
    let mut o = streamit_testkit::ViewerOptions::new(url, token);
    o.duration = std::time::Duration::from_secs_f64(seconds);
    o
}

/// Starts the project's viewer in the background.
pub fn spawn_viewer(
    url: &str,
    token: &str,
    seconds: f64,
) -> Result<streamit_testkit::viewer::RunningViewer> {
    streamit_testkit::Viewer::spawn(viewer_options(url, token, seconds))
}

/// Waits for an event matching `f`, returning the events seen on the way.
pub async fn wait_for(
    events: &mut Receiver<PublisherEvent>,
    within: Duration,
    f: impl Fn(&PublisherEvent) -> bool,
) -> anyhow::Result<Vec<PublisherEvent>> {
    let deadline = tokio::time::Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        let ev = tokio::time::timeout_at(deadline, events.recv())
            .await
            .map_err(|_| anyhow::anyhow!("timed out; saw {seen:?}"))?
            .ok_or_else(|| anyhow::anyhow!("events closed"))?;
        if let PublisherEvent::StateChanged(ConnectionState::Failed { error }) = &ev {
            anyhow::bail!("failed: {error}");
        }
        let hit = f(&ev);
        seen.push(ev);
        if hit {
            return Ok(seen);
        }
    }
}
