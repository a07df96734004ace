//! A `publish` of the synthetic pattern as its own process, watched by a guest viewer that
//! reads the pattern's frame code, and the publisher's JSON report at its end: the shape the
//! network and TURN tests share.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use streamit_api::client::Client;
use streamit_testkit::{Stack, TEST_PASSWORD, Viewer, ViewerOptions, ViewerReport};

use super::{guest_viewer, publish_succeeded, wait_until_live};

/// The creator every broadcast publishes as (a fresh stack each time).
pub const CREATOR: &str = "broadcaster";

/// A live `publish` run and the stack it publishes to.
pub struct Broadcast {
    pub stack: Stack,
    pub host_id: String,
    /// From the spawn to the backend saying live.
    pub live_after: Duration,
    publish: tokio::process::Child,
    report_dir: tempfile::TempDir,
}

/// The publisher's log in a broadcast test unless `RUST_LOG` says otherwise: the overload
/// guard's and the target's moves and the driver's reconnects, which CI's one failure of
/// the random-loss test left to guess at.
const PUBLISH_LOG: &str = "warn,streamit_livekit_publish::core=debug,\
    streamit_livekit_publish::driver=info,zbus=error";

/// Adds what every pattern `publish` takes: the backend, the creator's login, the synthetic
/// source, `codec` and the run's length.
pub fn publish_pattern(
    cmd: &mut tokio::process::Command,
    api: &str,
    username: &str,
    codec: &str,
    secs: u64,
) {
    cmd.args(["publish", "--api", api, "--username", username])
        .args(["--password", TEST_PASSWORD, "--title", "Test broadcast"])
        .args(["--source", "synthetic", "--codec", codec])
        .args(["--duration", &format!("{secs}s")]);
}

impl Broadcast {
    /// Runs `studio` (the binary, here or behind an impaired link) publishing the pattern
    /// with `codec` for `secs` plus `extra` as a new approved creator; returns once live.
    pub async fn go_live(
        stack: Stack,
        mut studio: tokio::process::Command,
        codec: &str,
        secs: u64,
        extra: &[&str],
    ) -> Result<Self> {
        let host_id = stack.creator(CREATOR, true).await?.user.id;
        let report_dir = tempfile::tempdir()?;
        publish_pattern(&mut studio, stack.backend.url(), CREATOR, codec, secs);
        studio
            .arg("--report-json")
            .arg(report_dir.path().join("report.json"))
            .args(extra);
        if std::env::var_os("RUST_LOG").is_none() {
            // What a failure needs read (a few lines a second at most, well under what the
            // stderr pipe holds until `finish` reads it).
            studio.env("RUST_LOG", PUBLISH_LOG);
        }
        let started = Instant::now();
        let publish = studio.spawn()?;
        let public = Client::new(stack.backend.url());
        wait_until_live(&public, CREATOR, Duration::from_secs(30)).await?;
        Ok(Self {
            stack,
            host_id,
            live_after: started.elapsed(),
            publish,
            report_dir,
        })
    }

    /// A guest viewer that reads the pattern for `secs`, not yet started.
    pub async fn viewer(&self, secs: u64) -> Result<ViewerOptions> {
        let public = Client::new(self.stack.backend.url());
        let mut opts = guest_viewer(&public, self.host_id.clone(), None).await?;
        opts.duration = Duration::from_secs(secs);
        opts.read_pattern = true;
        Ok(opts)
    }

    /// Watches `secs` as a guest reading the pattern; the viewer must have joined.
    pub async fn watch(&self, secs: u64) -> Result<ViewerReport> {
        let report = Viewer::run(self.viewer(secs).await?).await?;
        ensure!(report.joined, "viewer did not join: {:?}", report.error);
        Ok(report)
    }

    /// Waits for the publisher's end (exit 0 required); its JSON report.
    pub async fn finish(self) -> Result<serde_json::Value> {
        let livekit_log = format!("\nlivekit log:\n{}", self.stack.livekit.log_tail(30));
        let out = publish_succeeded(self.publish, Duration::from_secs(60), &livekit_log).await?;
        // Captured: shown when the test fails.
        println!("publish log:\n{}", String::from_utf8_lossy(&out.stderr));
        let json = std::fs::read(self.report_dir.path().join("report.json"))?;
        Ok(serde_json::from_slice(&json)?)
    }
}
