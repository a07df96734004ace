//! What a `publish` run costs the machine: the studio process's CPU seconds per minute and
//! peak RSS while a Python viewer watches (so every layer is sent), for the ignored
//! benchmarks. Figures are the test profile's build (`cargo test --release` for release).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use streamit_api::client::Client;
use streamit_testkit::{Stack, TEST_PASSWORD};

use crate::common::{guest_viewer, studio, wait_until_live};

/// ffmpeg's `testsrc2` at `w`×`h`, `fps`, 10 s (publish loops it): camera-like motion.
pub fn testsrc2_y4m(dir: &Path, w: u32, h: u32, fps: u32) -> Result<PathBuf> {
    let y4m = dir.join(format!("testsrc2-{w}x{h}-{fps}.y4m"));
    let made = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg(format!("testsrc2=size={w}x{h}:rate={fps}:duration=10"))
        .args(["-pix_fmt", "yuv420p"])
        .arg(&y4m)
        .status()?;
    ensure!(made.success(), "ffmpeg testsrc2");
    Ok(y4m)
}

/// Process CPU seconds (the testkit's reading) and peak RSS (MB, /proc's VmHWM) of `pid`.
fn cpu_and_rss(pid: u32) -> Option<(f64, f64)> {
    let cpu = streamit_testkit::process_cpu_time(pid)?.as_secs_f64();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse::<f64>()
        .ok()?
        / 1024.0;
    Some((cpu, rss))
}

/// One measured run.
#[derive(Debug, Clone, Copy)]
pub struct Cost {
    pub cpu_s_per_min: f64,
    pub peak_rss_mb: f64,
}

/// What every measured `publish` shares: who publishes (an approved creator of the stack,
/// room `host`), the camera file, how long and the codec.
pub struct Run<'a> {
    pub username: &'a str,
    pub host: &'a str,
    pub camera: &'a Path,
    pub secs: u64,
    pub codec: &'a str,
}

/// `run` with `extra` arguments and `env`, watched by a guest viewer throughout.
pub async fn measure_publish(
    stack: &Stack,
    run: &Run<'_>,
    extra: &[String],
    env: &[(&str, &str)],
) -> Result<Cost> {
    let Run {
        username,
        host,
        camera,
        secs,
        codec,
    } = *run;
    let public = Client::new(stack.backend.url());
    let mut cmd = studio();
    cmd.args([
        "publish",
        "--api",
        stack.backend.url(),
        "--username",
        username,
    ])
    .args(["--password", TEST_PASSWORD, "--codec", codec])
    .arg("--source")
    .arg(camera)
    .args(["--duration", &format!("{secs}s")])
    .args(extra)
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn()?;
    let pid = child.id().context("pid")?;
    wait_until_live(&public, username, Duration::from_secs(20)).await?;
    let mut opts = guest_viewer(&public, host.to_string(), None).await?;
    opts.duration = Duration::from_secs(secs + 5);
    let viewer = streamit_testkit::Viewer::spawn(opts)?;
    let mut last = (0.0, 0.0);
    let wait = child.wait_with_output();
    tokio::pin!(wait);
    let out = loop {
        tokio::select! {
            out = &mut wait => break out?,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {
                if let Some(m) = cpu_and_rss(pid) {
                    last = m;
                }
            }
        }
    };
    ensure!(out.status.success(), "publish failed");
    drop(viewer);
    Ok(Cost {
        cpu_s_per_min: last.0 * 60.0 / secs as f64,
        peak_rss_mb: last.1,
    })
}

/// The machine's load average, for the figures' context.
pub fn load_average() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    load.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
