//! Local recording end to end: `publish --record` (and the session's Record switch) against
//! the real backend and LiveKit, the file read back by ffprobe and decoded frame by frame by
//! ffmpeg, and the pattern's frame codes read from what ffmpeg decoded.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{ensure_exit_code, publish_succeeded, studio, wait_until_live};
use crate::cost;
use anyhow::{Context, Result, ensure};
use streamit_api::client::Client;
use streamit_media::pattern::read_pattern_code_luma;
use streamit_session::{
    Command, SessionConfig, SessionHandle, StreamSetup, StreamState, VideoSourceSpec,
};
use streamit_testkit::{Stack, TEST_PASSWORD};

const W: u32 = 640;
const H: u32 = 360;

fn ffprobe(path: &Path, stream: &str, entries: &str) -> Result<String> {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", stream])
        .args(["-show_entries", entries, "-of", "csv=p=0"])
        .arg(path)
        .output()
        .context("ffprobe (scripts/install.sh installs ffmpeg)")?;
    ensure!(
        out.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

/// What ffmpeg decodes of the file's video: per frame, the pattern's (frame number,
/// capture time in µs); ffmpeg's complaints, if any.
struct Decoded {
    codes: Vec<Option<(u32, u64)>>,
    errors: String,
}

fn decode(path: &Path) -> Result<Decoded> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        // every decoded frame once: no frame-rate conversion (duplicates or drops), and
        // the file's own 1/90000 time base, so two frames closer than 1/30 s stay apart
        .args([
            "-map",
            "0:v:0",
            "-fps_mode",
            "passthrough",
            "-enc_time_base",
            "-1",
        ])
        .args(["-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .context("ffmpeg")?;
    ensure!(out.status.success(), "ffmpeg failed");
    Ok(Decoded {
        codes: out
            .stdout
            .chunks_exact((W * H) as usize)
            .map(|y| read_pattern_code_luma(y, W as usize, W, H))
            .collect(),
        errors: String::from_utf8_lossy(&out.stderr).to_string(),
    })
}

impl Decoded {
    /// Every frame decoded cleanly, carries its code, and the codes only go up; returns the
    /// longest gap in capture time between neighbours.
    fn check_continuous(&self) -> Result<Duration> {
        ensure!(self.errors.is_empty(), "ffmpeg: {}", self.errors);
        ensure!(!self.codes.is_empty(), "no frame decoded");
        let codes: Vec<(u32, u64)> = self.codes.iter().flatten().copied().collect();
        ensure!(
            codes.len() == self.codes.len(),
            "{} of {} frames carry no readable code",
            self.codes.len() - codes.len(),
            self.codes.len()
        );
        let mut longest = 0u64;
        for w in codes.windows(2) {
            ensure!(
                w[1].0 > w[0].0 && w[1].1 > w[0].1,
                "frame {} follows {}",
                w[1].0,
                w[0].0
            );
            longest = longest.max(w[1].1 - w[0].1);
        }
        Ok(Duration::from_micros(longest))
    }
}

/// Headless Chromium plays the file in a `<video>` element: at the file's size, at least
/// `frames` frames presented. What viewers' browsers do with a recording handed to them.
async fn plays_in_chromium(path: &Path, frames: u64) -> Result<()> {
    let page_path = path.with_extension("html");
    let name = path
        .file_name()
        .context("file name")?
        .to_string_lossy()
        .to_string();
    std::fs::write(
        &page_path,
        format!("<video src=\"{name}\" autoplay muted playsinline></video>"),
    )?;
    let browser = streamit_testkit::Browser::launch().await?;
    let page = browser
        .open(&format!("file://{}", page_path.display()))
        .await?;
    let s = page
        .wait_until("the recording playing", Duration::from_secs(30), |s| {
            s.element
                .as_ref()
                .is_some_and(|e| e.width == W && e.height == H && e.frames >= frames)
        })
        .await?;
    println!("Chromium plays it: {:?}", s.element);
    Ok(())
}

fn seconds(s: &str) -> Result<f64> {
    s.parse().with_context(|| format!("not a number: {s:?}"))
}

fn publish_args(backend: &str, user: &str, file: &Path, codec: &str) -> Vec<String> {
    let mut v: Vec<String> = [
        "publish",
        "--api",
        backend,
        "--username",
        user,
        "--password",
        TEST_PASSWORD,
        "--source",
        "synthetic:640x360@30",
        "--codec",
        codec,
        "--record",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push(file.display().to_string());
    v
}

/// 30 s live with recording on, VP8 simulcast and no viewer: the top layer is encoded for
/// the file only (dynacast pauses it for viewers). The file is VP8 + Opus of the stream's
/// length, and ffmpeg decodes every frame of it in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_made_while_live_plays_every_frame_with_its_audio() -> Result<()> {
    let stack = Stack::start()?;
    stack.creator("qa_record", true).await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("live.mp4");
    let report = dir.path().join("report.json");
    let child = studio()
        .args(publish_args(stack.backend.url(), "qa_record", &file, "vp8"))
        .args(["--simulcast", "--duration", "30s", "--report-json"])
        .arg(&report)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    publish_succeeded(child, Duration::from_secs(90), "").await?;
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&report)?)?;
    let live_s = report["durationMs"].as_f64().context("durationMs")? / 1000.0;
    let rec = &report["recording"];
    println!("report's recording: {rec}");
    ensure!(rec["path"] == file.display().to_string(), "path {rec}");
    ensure!(rec["error"].is_null() && rec["dropped"] == 0, "{rec}");

    let v = ffprobe(&file, "v:0", "stream=codec_name,width,height")?;
    ensure!(v == format!("vp8,{W},{H}"), "video stream: {v}");
    let a = ffprobe(&file, "a:0", "stream=codec_name,sample_rate,channels")?;
    ensure!(a == "opus,48000,1", "audio stream: {a}");
    let file_s = seconds(&ffprobe(&file, "v:0", "format=duration")?)?;
    println!("live {live_s:.2} s, file {file_s:.2} s");
    ensure!(
        (file_s - live_s).abs() <= 0.5,
        "file {file_s:.2} s against {live_s:.2} s live"
    );
    let decoded = decode(&file)?;
    let longest = decoded.check_continuous()?;
    let n = decoded.codes.len();
    println!(
        "{n} frames decoded ({:.1} fps), longest gap {} ms",
        n as f64 / file_s,
        longest.as_millis()
    );
    // the CPU adapter may lower the frame rate on a busy machine; it never stops the picture
    ensure!(
        n as f64 >= file_s * 10.0,
        "only {n} frames in {file_s:.1} s"
    );
    ensure!(longest < Duration::from_millis(500), "a {longest:?} hole");
    plays_in_chromium(&file, 60).await?;
    Ok(())
}

/// SIGKILL at 20 s: no chance to finish the file, yet it plays for at least 19 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_studio_mid_recording_leaves_a_playable_file() -> Result<()> {
    let stack = Stack::start()?;
    stack.creator("qa_record_kill", true).await?;
    let public = Client::new(stack.backend.url());
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("killed.mp4");
    let mut child = studio()
        .args(publish_args(
            stack.backend.url(),
            "qa_record_kill",
            &file,
            "h264",
        ))
        .args(["--duration", "120s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    wait_until_live(&public, "qa_record_kill", Duration::from_secs(20)).await?;
    // the file begins (its header) with the recording's first key frame
    let began = Instant::now();
    while !std::fs::metadata(&file).is_ok_and(|m| m.len() > 0) {
        ensure!(
            began.elapsed() < Duration::from_secs(20),
            "no recording began"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let began = Instant::now();
    // the scenario is "killed 20 s in": that is the time to wait
    tokio::time::sleep_until((began + Duration::from_secs(20)).into()).await;
    child.start_kill()?; // SIGKILL
    child.wait().await?;

    let v = ffprobe(&file, "v:0", "stream=codec_name,width,height")?;
    ensure!(v == format!("h264,{W},{H}"), "video stream: {v}");
    let file_s = seconds(&ffprobe(&file, "v:0", "format=duration")?)?;
    let decoded = decode(&file)?;
    let longest = decoded.check_continuous()?;
    println!(
        "killed at 20 s: {file_s:.2} s playable, {} frames, longest gap {} ms",
        decoded.codes.len(),
        longest.as_millis()
    );
    ensure!(file_s >= 19.0, "only {file_s:.2} s survived");
    Ok(())
}

/// LiveKit killed 8 s in and back 2 s later: the studio rejoins, and the recording runs
/// on through the outage as one file whose time line never steps back or stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_livekit_restart_mid_recording_leaves_one_continuous_file() -> Result<()> {
    let mut stack = Stack::start()?;
    stack.creator("qa_record_lk", true).await?;
    let public = Client::new(stack.backend.url());
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("restart.mp4");
    let report = dir.path().join("report.json");
    let child = studio()
        .args(publish_args(
            stack.backend.url(),
            "qa_record_lk",
            &file,
            "h264",
        ))
        .args(["--duration", "25s", "--report-json"])
        .arg(&report)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    wait_until_live(&public, "qa_record_lk", Duration::from_secs(20)).await?;
    tokio::time::sleep(Duration::from_secs(8)).await;
    stack.livekit.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stack.livekit.restart()?;
    publish_succeeded(child, Duration::from_secs(90), "").await?;
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&report)?)?;
    let reconnects = report["reconnects"].as_u64().unwrap_or(0);
    let live_s = report["durationMs"].as_f64().context("durationMs")? / 1000.0;
    ensure!(reconnects >= 1, "no reconnect: {report}");

    let file_s = seconds(&ffprobe(&file, "v:0", "format=duration")?)?;
    let pts: Vec<f64> = ffprobe(&file, "v:0", "packet=pts_time")?
        .lines()
        .map(seconds)
        .collect::<Result<_>>()?;
    ensure!(
        pts.windows(2).all(|w| w[1] > w[0]),
        "video timestamps step back"
    );
    let decoded = decode(&file)?;
    let longest = decoded.check_continuous()?;
    println!(
        "{reconnects} reconnect(s); live {live_s:.2} s, file {file_s:.2} s, {} frames, longest gap {} ms",
        decoded.codes.len(),
        longest.as_millis()
    );
    ensure!(
        (file_s - live_s).abs() <= 1.0,
        "file {file_s:.2} s against {live_s:.2} s live"
    );
    ensure!(longest < Duration::from_millis(500), "a {longest:?} hole");
    plays_in_chromium(&file, 60).await?;
    Ok(())
}

/// Switched off and on again while live: two files, each complete and starting on a key
/// frame, both named in the summary; the stream never stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_stopped_and_started_while_live_makes_two_whole_files() -> Result<()> {
    let stack = Stack::start()?;
    stack.creator("qa_record_twice", true).await?;
    let dir = tempfile::tempdir()?;
    let mut config = SessionConfig::new(stack.backend.url());
    config.video = VideoSourceSpec::Synthetic {
        width: W,
        height: H,
        fps: 30,
    };
    config.recordings_dir = Some(dir.path().to_path_buf());
    let session = SessionHandle::spawn(config);
    session
        .request(Command::Login {
            username: "qa_record_twice".into(),
            password: TEST_PASSWORD.into(),
        })
        .await?;
    session
        .request(Command::SetupStream(StreamSetup {
            title: "recorded twice".into(),
            ..Default::default()
        }))
        .await?;
    let rec = |on| Command::SetRecording { on, to: None };
    session.request(rec(true)).await?;
    session.request(Command::GoLive).await?;
    ensure!(session.state().stream_state == StreamState::Live);
    ensure!(session.state().recording.current.is_some(), "recording");
    tokio::time::sleep(Duration::from_secs(3)).await;
    session.request(rec(false)).await?;
    ensure!(session.state().recording.current.is_none());
    tokio::time::sleep(Duration::from_secs(1)).await;
    session.request(rec(true)).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    session.request(Command::EndStream).await?;
    let summary = session.state().summary.context("summary")?;
    let _ = session.request(Command::Shutdown).await;

    ensure!(summary.recordings.len() == 2, "{:?}", summary.recordings);
    ensure!(summary.recordings[0].path != summary.recordings[1].path);
    for r in &summary.recordings {
        let file_s = seconds(&ffprobe(&r.path, "v:0", "format=duration")?)?;
        let decoded = decode(&r.path)?;
        decoded.check_continuous()?;
        println!(
            "{}: {file_s:.2} s, {} frames, {} bytes",
            r.path.display(),
            decoded.codes.len(),
            r.bytes
        );
        ensure!(
            (2.5..=4.5).contains(&file_s) && r.error.is_none() && r.dropped == 0,
            "{r:?}: {file_s} s"
        );
    }
    Ok(())
}

/// A file that cannot be written is refused before going live, in one line naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_recording_file_is_refused_before_going_live() -> Result<()> {
    let stack = Stack::start()?;
    stack.creator("qa_record_bad", true).await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("no such folder").join("x.mp4");
    let out = studio()
        .args(publish_args(
            stack.backend.url(),
            "qa_record_bad",
            &file,
            "h264",
        ))
        .args(["--duration", "5s"])
        .output()
        .await?;
    ensure_exit_code(&out, 1, "unwritable --record")?;
    let stderr = String::from_utf8(out.stderr)?;
    ensure!(
        stderr.contains(&format!("cannot record to {}", file.display())),
        "{stderr}"
    );
    let public = Client::new(stack.backend.url());
    let s = public.stream_by_username("qa_record_bad").await?;
    ensure!(!s.is_live, "went live anyway");
    Ok(())
}

/// What recording costs the headless engine: `publish` of 720p30 camera-like video
/// (ffmpeg `testsrc2`, looped) + tone, with recording off and on, alternating, each watched
/// by a Python viewer (so the top layer is sent in both). Prints CPU seconds per minute and
/// peak RSS of the studio's process, and the on/off ratios. The build is the test profile's
/// (`cargo test --release` for release figures).
///
/// The anchor: the official Python SDK (libwebrtc) publishing the same file at the same
/// bitrate. It cannot record, so both settings are set against it as it is.
///
/// `cargo test --test publish_cli -- --ignored --nocapture bench_recording` (BENCH_SECONDS,
/// default 60; BENCH_CODEC h264 or vp8; BENCH_RUNS per setting, default 2; BENCH_ANCHOR=0
/// leaves out the libwebrtc runs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: 4 runs of BENCH_SECONDS (60 s)"]
async fn bench_recording_cost() -> Result<()> {
    let env = |k: &str| std::env::var(k).ok();
    let secs: u64 = env("BENCH_SECONDS")
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let runs: usize = env("BENCH_RUNS").and_then(|s| s.parse().ok()).unwrap_or(2);
    let codec = env("BENCH_CODEC").unwrap_or_else(|| "h264".into());
    let stack = Stack::start()?;
    let host = stack.creator("qa_record_bench", true).await?.user.id;
    let dir = tempfile::tempdir()?;
    let y4m = cost::testsrc2_y4m(dir.path(), 1280, 720, 30)?;
    let setup = cost::Run {
        username: "qa_record_bench",
        host: &host,
        camera: &y4m,
        secs,
        codec: &codec,
    };
    let mut rows: Vec<(bool, cost::Cost, u64)> = Vec::new();
    for run in 0..runs * 2 {
        let record = run % 2 == 1;
        let file = dir.path().join(format!("bench-{run}.mp4"));
        let extra = if record {
            vec!["--record".to_string(), file.display().to_string()]
        } else {
            Vec::new()
        };
        let c = cost::measure_publish(&stack, &setup, &extra, &[]).await?;
        let bytes = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        rows.push((record, c, bytes));
        println!(
            "run {run}: recording {}: {:.2} CPU s/min, peak RSS {:.1} MB{}",
            if record { "on " } else { "off" },
            c.cpu_s_per_min,
            c.peak_rss_mb,
            if record {
                format!(", file {:.1} MB", bytes as f64 / 1e6)
            } else {
                String::new()
            }
        );
    }
    let mean = |on: bool, f: fn(&cost::Cost) -> f64| {
        let v: Vec<f64> = rows.iter().filter(|r| r.0 == on).map(|r| f(&r.1)).collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    let (cpu_off, cpu_on) = (
        mean(false, |c| c.cpu_s_per_min),
        mean(true, |c| c.cpu_s_per_min),
    );
    let (rss_off, rss_on) = (
        mean(false, |c| c.peak_rss_mb),
        mean(true, |c| c.peak_rss_mb),
    );
    println!(
        "recording {codec} 720p30, {secs} s × {runs}: CPU {cpu_off:.2} → {cpu_on:.2} s/min \
         ({:.3}×), peak RSS {rss_off:.1} → {rss_on:.1} MB ({:.3}×); load average {}",
        cpu_on / cpu_off.max(1e-9),
        rss_on / rss_off.max(1e-9),
        cost::load_average()
    );
    if env("BENCH_ANCHOR").as_deref() != Some("0") {
        let (mut cpu, mut rss) = (0.0, 0.0);
        for run in 0..runs {
            let c = cost::measure_libwebrtc(&stack, &setup, None).await?;
            println!(
                "run {run}: libwebrtc: {:.2} CPU s/min, peak RSS {:.1} MB",
                c.cpu_s_per_min, c.peak_rss_mb
            );
            cpu += c.cpu_s_per_min / runs as f64;
            rss += c.peak_rss_mb / runs as f64;
        }
        println!(
            "BENCH recording vs libwebrtc (which does not record; {cpu:.2} CPU s/min, {rss:.1} \
             MB): off CPU {:.2}× RSS {:.2}×, on CPU {:.2}× RSS {:.2}×",
            cpu_off / cpu.max(1e-9),
            rss_off / rss.max(1e-9),
            cpu_on / cpu.max(1e-9),
            rss_on / rss.max(1e-9),
        );
    }
    Ok(())
}
