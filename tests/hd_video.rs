//! End to end, HD: `streamit-studio publish` of the 720p/1080p test pattern through the
//! real backend and LiveKit server, watched by the official Python SDK viewer (libwebrtc's
//! receiver): single-layer VP8 decodes nearly every frame, VP8 simulcast holds the high
//! layer, also with two CPU-burning processes beside the publisher (the encoder lowers
//! its frame rate evenly and says "CPU limited"), and 1080p simulcast reaches 1920×1080.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Result, ensure};
use common::{guest_viewer, publish_succeeded, studio, wait_until_live};
use streamit_api::client::Client;
use streamit_testkit::{Stack, TEST_PASSWORD, Viewer, ViewerReport};

/// The HD tests run one at a time: each measures what one publisher's encoder can do,
/// and two HD publishers plus two decoding viewers would be each other's CPU load.
static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Starts `publish` of `source` with `codec` for `secs`, simulcast or not.
fn publish(
    stack: &Stack,
    user: &str,
    source: &str,
    codec: &str,
    simulcast: bool,
    secs: u32,
) -> Result<tokio::process::Child> {
    let mut cmd = studio();
    cmd.args(["publish", "--api", stack.backend.url(), "--username", user])
        .args(["--password", TEST_PASSWORD, "--codec", codec])
        .args(["--source", source, "--audio", "none", "--json"])
        .args(["--duration", &format!("{secs}s")]);
    if simulcast {
        cmd.arg("--simulcast");
    }
    Ok(cmd.spawn()?)
}

/// Frames per second the viewer decoded, per whole second, leaving out the first
/// `skip` seconds (subscription, first key frame, bandwidth probing) and the last one.
fn steady_fps(r: &ViewerReport, skip: usize) -> Vec<u64> {
    let mut secs: Vec<(u64, u64)> = r
        .video
        .frames_per_second
        .iter()
        .filter_map(|(s, n)| Some((s.parse().ok()?, *n)))
        .collect();
    secs.sort();
    let n = secs.len();
    secs.into_iter()
        .skip(skip)
        .take(n.saturating_sub(skip + 1))
        .map(|(_, f)| f)
        .collect()
}

fn median(v: &[u64]) -> u64 {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// Share of the decoded frames at `size`.
fn share_at(r: &ViewerReport, size: &str) -> f64 {
    let at = r.video.resolutions.get(size).copied().unwrap_or(0);
    at as f64 / r.video.frames.max(1) as f64
}

/// The high 720p layer is the one forwarded for ≥ 90 % of the frames: 1280x720, or ¾ of
/// it (960x540) if the CPU adapter had to lower the size after the frame rate.
fn ensure_high_layer(r: &ViewerReport) -> Result<()> {
    let high = share_at(r, "1280x720") + share_at(r, "960x540");
    ensure!(
        high >= 0.9,
        "the high layer for {:.0} % of the frames: {:?}",
        high * 100.0,
        r.video.resolutions
    );
    Ok(())
}

/// Busy-looping processes, ended (by their own ids) when dropped.
struct Burners(Vec<Child>);

impl Burners {
    fn start(n: usize) -> Result<Self> {
        let mut v = Vec::new();
        for _ in 0..n {
            let mut cmd = Command::new("sh");
            cmd.args(["-c", "while :; do :; done"])
                .stdin(Stdio::null())
                .stdout(Stdio::null());
            streamit_testkit::tie_to_test(&mut cmd);
            v.push(cmd.spawn()?);
        }
        Ok(Burners(v))
    }
}

impl Drop for Burners {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vp8_720p30_single_layer_is_decoded_nearly_frame_for_frame() -> Result<()> {
    let _alone = ALONE.lock().await;
    let stack = Stack::start()?;
    let user_id = stack.creator("qa_vp8_hd", true).await?.user.id;
    let child = publish(&stack, "qa_vp8_hd", "synthetic", "vp8", false, 16)?;
    let public = Client::new(stack.backend.url());
    wait_until_live(&public, "qa_vp8_hd", Duration::from_secs(15)).await?;
    let mut opts = guest_viewer(&public, user_id, None).await?;
    opts.duration = Duration::from_secs(10);
    opts.read_pattern = true;
    let r = Viewer::run(opts).await?;
    let out = publish_succeeded(child, Duration::from_secs(40), "").await?;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let p = &r.pattern;
    // What the receiver (libwebrtc) decoded, as the network tests judge it. The app's own
    // count is what the Python viewer read the pattern from; it reads every 720p frame and
    // can fall behind on a slow machine, when the SDK drops frames from its queue (CI: the
    // app got 70.5 % of the span, with a queue overflow logged). Both are printed.
    let (decoded, span, share) = common::receiver_decoded(&r);
    println!(
        "VP8 720p30 single layer: receiver decoded {decoded} of {span} frames in the pattern's span ({:.1} %); the app got {} frames {:?}, pattern frames {}, fps {:?}; publisher sent {} dropped {}",
        share * 100.0,
        r.video.frames,
        r.video.resolutions,
        p.distinct,
        steady_fps(&r, 0),
        report["framesSent"],
        report["framesDropped"]
    );
    ensure!(r.joined, "{:?}", r.error);
    ensure!(span >= 150, "too few frames to judge: {span}");
    ensure!(
        share >= 0.97,
        "the receiver decoded {:.1} % of the frames",
        share * 100.0
    );
    ensure!(
        share_at(&r, "1280x720") >= 0.99,
        "{:?}",
        r.video.resolutions
    );
    Ok(())
}

/// Publishes VP8 simulcast of `source`, watched with `quality` by the Python viewer for
/// `watch_secs`; returns the viewer's and the publisher's reports.
async fn simulcast_run(
    user: &str,
    source: &str,
    quality: &str,
    publish_secs: u32,
    watch_secs: u64,
    burners: usize,
) -> Result<(ViewerReport, serde_json::Value)> {
    let _alone = ALONE.lock().await;
    let stack = Stack::start()?;
    let user_id = stack.creator(user, true).await?.user.id;
    let _load = Burners::start(burners)?;
    let child = publish(&stack, user, source, "vp8", true, publish_secs)?;
    let public = Client::new(stack.backend.url());
    wait_until_live(&public, user, Duration::from_secs(20)).await?;
    let mut opts = guest_viewer(&public, user_id, None).await?;
    opts.duration = Duration::from_secs(watch_secs);
    opts.quality = Some(quality.into());
    let r = Viewer::run(opts).await?;
    let out = publish_succeeded(
        child,
        Duration::from_secs(publish_secs as u64 + 30),
        &format!("\n{}", stack.livekit.log_tail(20)),
    )
    .await?;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    println!(
        "{source} VP8 simulcast, {quality} asked, {burners} burners: viewer {} frames {:?}, fps per second {:?}; publisher sent {} dropped {}, {} at the end, {} for {} ms / {} CPU step downs",
        r.video.frames,
        r.video.resolutions,
        steady_fps(&r, 0),
        report["framesSent"],
        report["framesDropped"],
        report["cpuLimited"],
        report["cpuLimitedLast"],
        report["cpuLimitedMs"],
        report["cpuAdaptations"]
    );
    ensure!(r.joined, "{:?}", r.error);
    Ok((r, report))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vp8_simulcast_720p_viewer_asking_high_keeps_1280x720() -> Result<()> {
    let (r, report) = simulcast_run("qa_simul_hd", "synthetic", "high", 20, 15, 0).await?;
    let fps = steady_fps(&r, 3);
    // A publisher that kept up sends 30 fps at 1280x720. One that lost the CPU to the
    // rest of a busy machine (CI runs other jobs beside this one) must say so, and still
    // send the high layer at its adapted rate: 960x540 after a size step, 15 fps at least.
    if report["cpuAdaptations"].as_u64().unwrap_or(0) == 0 {
        let high = share_at(&r, "1280x720");
        ensure!(
            high >= 0.9,
            "1280x720 for {:.0} % of the frames",
            high * 100.0
        );
        ensure!(median(&fps) >= 27, "median {} fps: {fps:?}", median(&fps));
    } else {
        println!(
            "the machine was busy: the publisher says {}",
            report["cpuLimited"]
        );
        ensure_high_layer(&r)?;
        ensure!(median(&fps) >= 15, "median {} fps: {fps:?}", median(&fps));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vp8_simulcast_720p_under_cpu_load_holds_the_high_layer_at_a_steady_rate() -> Result<()> {
    let (r, report) = simulcast_run("qa_simul_load", "synthetic", "high", 24, 18, 2).await?;
    // The high layer is the one forwarded: 1280x720, or ¾ of it (960x540) if the adapter
    // had to lower the size after the frame rate, never a lower layer.
    ensure_high_layer(&r)?;
    // after the adaptation settled: 15 fps on average, and steady: at most one second below
    // 12 (a 15 fps stream counted in whole seconds shows 14 or 16 now and then, and on a
    // shared machine the viewer's own decoder gets descheduled too). The adapter's floor
    // is 15 fps, so "15 on average" allows 3 % of its frames lost on the way (CI once got a
    // mean of 14.8: 148 of 150 frames in 10 s).
    let fps = steady_fps(&r, 8);
    let mean = fps.iter().sum::<u64>() as f64 / fps.len().max(1) as f64;
    let stutters = fps.iter().filter(|f| **f < 12).count();
    ensure!(
        fps.len() >= 5 && mean >= 0.97 * streamit_media::adapt::MIN_FPS as f64 && stutters <= 1,
        "fps per second after settling (mean {mean:.1}, {stutters} below 12): {fps:?}"
    );
    // A machine that kept up despite the burners (a quiet moment on a shared one) sends the
    // full rate, and the state must not claim a limit it did not have.
    if report["cpuAdaptations"].as_u64().unwrap_or(0) == 0 {
        let all = steady_fps(&r, 3);
        ensure!(
            median(&all) >= 27
                && report["cpuLimitedMs"].as_u64() == Some(0)
                && report["cpuLimitedLast"].is_null(),
            "no step down, yet median {} fps {all:?}, limited for {} ms ({})",
            median(&all),
            report["cpuLimitedMs"],
            report["cpuLimitedLast"]
        );
        println!("the publisher kept up beside the burners: nothing to adapt");
        return Ok(());
    }
    // The state said so while it was limited (the adapter may step back up in the last
    // seconds, when the end alone would read "not limited").
    ensure!(
        report["cpuAdaptations"].as_u64().unwrap_or(0) >= 1
            && report["cpuLimitedMs"].as_u64().unwrap_or(0) > 0
            && report["cpuLimitedLast"]
                .as_str()
                .is_some_and(|s| s.starts_with("CPU limited: sending ") && s.contains(" fps")),
        "the state never said CPU limited: {} for {} ms ({} step downs)",
        report["cpuLimitedLast"],
        report["cpuLimitedMs"],
        report["cpuAdaptations"]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vp8_simulcast_1080p30_reaches_the_viewer_at_1920x1080() -> Result<()> {
    let (r, _) =
        simulcast_run("qa_simul_1080", "synthetic:1920x1080@30", "high", 20, 15, 0).await?;
    let full = r.video.resolutions.get("1920x1080").copied().unwrap_or(0);
    ensure!(
        full >= 60,
        "1920x1080 frames {full}: {:?}",
        r.video.resolutions
    );
    Ok(())
}
