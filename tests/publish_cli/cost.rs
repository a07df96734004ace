//! What a `publish` run costs the machine: the studio process's CPU seconds per minute and
//! peak RSS while a Python viewer watches (so every layer is sent), for the ignored
//! benchmarks. Figures are the test profile's build (`cargo test --release` for release).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use streamit_api::client::Client;
use streamit_testkit::{Grants, Stack, TEST_PASSWORD, ViewerOptions};

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

/// The anchor for a row: the official Python SDK (libwebrtc) publishing the same camera file
/// (one layer in the run's codec at the bitrate `publish` gives that size, a 440 Hz tone
/// like `publish`'s default) and, with `screen` (display, bitrate), the X screen of that
/// display at 15 fps beside it, while a viewer watches every track. Its own CPU and peak
/// RSS, as it reports them.
pub async fn measure_libwebrtc(
    stack: &Stack,
    run: &Run<'_>,
    screen: Option<(&str, u32)>,
) -> Result<Cost> {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let (w, h) = y4m_size(run.camera)?;
    let camera_bps = streamit_media::Layer::ladder(w, h)
        .last()
        .map(|l| l.bitrate_bps)
        .context("no layer for the camera's size")?;
    let room = "bench-libwebrtc";
    let token = stack
        .livekit
        .token("py-publisher", room, Grants::Publisher)?;
    let script = streamit_testkit::repo_root().join("tests/viewer/py_publisher.py");
    let mut cmd = tokio::process::Command::new(streamit_testkit::viewer_python()?);
    cmd.arg(script)
        .args([stack.livekit.ws_url(), token, run.secs.to_string()])
        .arg("--y4m")
        .arg(run.camera)
        .args(["--codec", run.codec, "--tone"])
        .args(["--max-bitrate", &camera_bps.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    if let Some((display, bps)) = screen {
        cmd.env("DISPLAY", display)
            .args(["--screen", "--screen-bitrate", &bps.to_string()]);
    }
    let mut child = cmd.spawn().context("starting the Python SDK publisher")?;
    let mut opts = ViewerOptions::new(
        stack.livekit.ws_url(),
        stack.livekit.token("bench-viewer", room, Grants::Viewer)?,
    );
    opts.duration = Duration::from_secs(run.secs + 5);
    let viewer = streamit_testkit::Viewer::spawn(opts)?;
    let mut lines = BufReader::new(child.stdout.take().context("publisher stdout")?).lines();
    let mut last = None;
    let read = async {
        while let Ok(Some(l)) = lines.next_line().await {
            last = Some(l);
        }
    };
    tokio::time::timeout(Duration::from_secs(run.secs + 60), read)
        .await
        .context("the Python SDK publisher did not end")?;
    let status = child.wait().await?;
    drop(viewer);
    let last = last.context("the Python SDK publisher printed no report")?;
    ensure!(status.success(), "the Python SDK publisher failed: {last}");
    let end: serde_json::Value =
        serde_json::from_str(&last).with_context(|| format!("publisher said {last}"))?;
    let num = |k: &str| end[k].as_f64().with_context(|| format!("no {k} in {last}"));
    // What it captured: a publisher that fell behind its sources did less work, and its
    // CPU would flatter it.
    let camera_fps = num("frames")? / run.secs as f64;
    let screen_fps = num("screenFrames")? / run.secs as f64;
    println!(
        "libwebrtc publisher captured: camera {w}x{h} at {camera_fps:.1} fps{}",
        screen.map_or(String::new(), |_| format!(
            ", screen {} at {screen_fps:.1} fps",
            end["screenSize"].as_str().unwrap_or("?"),
        ))
    );
    ensure!(
        camera_fps >= 27.0,
        "the Python SDK publisher fell behind the camera's 30 fps: {last}"
    );
    ensure!(
        screen.is_none() || screen_fps >= 13.5,
        "the Python SDK publisher fell behind the screen's 15 fps: {last}"
    );
    Ok(Cost {
        cpu_s_per_min: num("cpu_s")? * 60.0 / run.secs as f64,
        peak_rss_mb: num("peak_rss_mb")?,
    })
}

/// The width and height in a Y4M file's header.
fn y4m_size(path: &Path) -> Result<(u32, u32)> {
    use std::io::BufRead;
    let mut header = String::new();
    std::io::BufReader::new(std::fs::File::open(path)?).read_line(&mut header)?;
    let field = |tag: char| {
        header
            .split_whitespace()
            .find_map(|t| t.strip_prefix(tag)?.parse().ok())
            .with_context(|| format!("no {tag} in the Y4M header of {}", path.display()))
    };
    Ok((field('W')?, field('H')?))
}

/// The machine's load average, for the figures' context.
pub fn load_average() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    load.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
