//! Test helpers: a real livekit-server on free loopback ports, tokens, the
//! Python SDK viewer and synthetic encoded media.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;

use anyhow::{Context, Result};
use streamit_testkit::Grants;

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

/// A running Python viewer.
pub struct Viewer {
    child: tokio::process::Child,
}

impl Viewer {
    pub fn spawn(url: &str, token: &str, seconds: f64, extra: &[&str]) -> Result<Self> {
        let py = python().context("no viewer venv with the livekit Python SDK")?;
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/mini_viewer.py");
        let child = tokio::process::Command::new(py)
            .arg(script)
            .arg(url)
            .arg(token)
            .arg(seconds.to_string())
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        Ok(Self { child })
    }

    pub async fn report(self) -> Result<serde_json::Value> {
        let out = self.child.wait_with_output().await?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout.lines().last().context("viewer printed nothing")?;
        Ok(serde_json::from_str(line)?)
    }
}
