//! Benchmarks (ignored by default).
//!
//! - `bench_720p30_h264_publish` / `..._python_sdk_anchor`: 60 s of a synthetic 720p30
//!   H.264 + Opus, ours and the official Python SDK's, one each.
//! - `bench_hd_matrix`: the same Y4M (ffmpeg `testsrc2`, camera-like detail and motion)
//!   published by ours and by the Python SDK publisher (libwebrtc), one after the other into
//!   the same server, for VP8 and H.264 × single layer and simulcast × 720p30 and 1080p30.
//!   Each publisher runs in its own process (ours: this test binary re-run as
//!   `bench_worker`), so CPU seconds and peak RSS are that process's alone; a Python viewer
//!   watches the high layer and counts frames. Prints one row per setup with the CPU
//!   seconds per minute, peak RSS, frames at the viewer and the CPU ratio ours/libwebrtc,
//!   plus the machine's load average (the machine may be shared).
//!   Picture quality at the same bitrate: the Python publisher's top layer gets our top
//!   layer's bitrate; each Y4M frame carries the pattern code of its own index, and the
//!   viewer measures PSNR-Y of every third decoded frame at full size against the source
//!   frame that code names (below the code's band); the row shows the received kbit/s and
//!   the mean PSNR of each.
//!
//! Run: `cargo test -p streamit-livekit-publish --release --test bench_publish --
//! --ignored --nocapture --test-threads 1 bench_hd_matrix` (BENCH_SECONDS, default 60;
//! BENCH_ROWS, e.g. `vp8-simulcast-720,h264-single-1080`, to run some rows only;
//! BENCH_PUBLISHERS=ours or =libwebrtc to run one side only).

mod common;

use std::time::{Duration, Instant};

use common::{Server, spawn_viewer};
use streamit_livekit_publish::*;
use streamit_media::MediaTime;
use streamit_media::encode::{VideoEncoderConfig, new_video_encoder};
use streamit_media::pattern::generate_pattern;

fn cpu_seconds() -> f64 {
    // utime + stime of this process, in clock ticks (100 Hz on Linux).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

fn peak_rss_mb() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: 60 s"]
async fn bench_720p30_h264_publish() -> anyhow::Result<()> {
    let secs: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let server = Server::start()?;
    let token = server.token("creator", "room", true)?;
    let (w, h) = (1280u32, 720u32);
    let pics: Vec<_> = (0..30)
        .map(|n| generate_pattern(w, h, n * 3, MediaTime::ZERO))
        .collect::<Result<_, _>>()?;
    let mut enc = new_video_encoder(
        streamit_media::encode::VideoCodec::H264,
        VideoEncoderConfig::new(w, h, 30.0, 2_000_000),
    )?;
    let mut opus = streamit_media::encode::OpusEncoder::new(1, 32_000)?;
    let viewer_token = server.token("viewer1", "room", false)?;
    let viewer = spawn_viewer(&server.ws_url(), &viewer_token, secs as f64 + 4.0)?;

    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let (handle, mut events) =
        Publisher::connect(&server.ws_url(), &token, PublishOptions::default()).await?;
    let video = handle
        .publish_video(VideoTrackOptions::new(VideoCodec::H264, w, h, 30))
        .await?;
    let audio = handle.publish_audio(AudioTrackOptions::default()).await?;
    let mut encode_time = Duration::ZERO;
    let mut force_key = true;
    let mut frame_no = 0u64;
    let mut audio_no = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        tick.tick().await;
        while let Ok(ev) = events.try_recv() {
            if let PublisherEvent::KeyframeRequested { .. } = ev {
                force_key = true;
            }
        }
        let el = start.elapsed();
        while Duration::from_millis(audio_no * 20) <= el {
            let frame = streamit_media::AudioFrame {
                sample_rate: 48_000,
                channels: 1,
                samples: streamit_media::AudioSamples::F32(vec![0.0; 960]),
                pts: MediaTime::from_micros(audio_no * 20_000),
            };
            let e0 = Instant::now();
            let packets = opus.push(&frame)?;
            encode_time += e0.elapsed();
            for p in packets {
                audio.send(EncodedAudio {
                    data: p.data,
                    timestamp: p.pts.as_duration(),
                })?;
            }
            audio_no += 1;
        }
        if Duration::from_micros(frame_no * 33_333) <= el {
            let pts = MediaTime::from_micros(frame_no * 33_333);
            let e0 = Instant::now();
            let out = enc.encode(&pics[(frame_no % 30) as usize].with_pts(pts), force_key)?;
            encode_time += e0.elapsed();
            if let Some(e) = out {
                video.send(EncodedVideo {
                    layer: None,
                    data: e.data,
                    keyframe: e.keyframe,
                    timestamp: pts.as_duration(),
                });
            }
            force_key = false;
            frame_no += 1;
        }
    }
    let cpu = cpu_seconds() - cpu0;
    let report = viewer.report().await?;
    handle.leave().await?;
    println!(
        "BENCH rust/str0m 720p30 H.264 {secs}s: process CPU {cpu:.1} s (encoders {:.1} s, so publish path ~{:.1} s), peak RSS {:.0} MB, frames {} sent / {} decoded, viewer first frame {:?} ms after viewer start, wall {:?}",
        encode_time.as_secs_f64(),
        cpu - encode_time.as_secs_f64(),
        peak_rss_mb(),
        frame_no,
        report.video.frames,
        report.video.first_frame_ms,
        t0.elapsed()
    );
    Ok(())
}

/// The anchor: the official Python SDK (libwebrtc) publishing the same kind of source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: 60 s"]
async fn bench_720p30_h264_python_sdk_anchor() -> anyhow::Result<()> {
    let secs: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let server = Server::start()?;
    let token = server.token("py-creator", "room", true)?;
    let viewer_token = server.token("viewer1", "room", false)?;
    let py = common::python().ok_or_else(|| anyhow::anyhow!("no viewer venv"))?;
    let script = streamit_testkit::repo_root().join("tests/viewer/py_publisher.py");
    let publisher = tokio::process::Command::new(py)
        .arg(script)
        .arg(server.ws_url())
        .arg(&token)
        .arg(secs.to_string())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let viewer = spawn_viewer(&server.ws_url(), &viewer_token, secs as f64 + 6.0)?;
    let out = publisher.wait_with_output().await?;
    let line = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or("")
        .to_string();
    let report = viewer.report().await?;
    println!(
        "BENCH python-sdk 720p30 H.264 {secs}s: publisher {line}; viewer decoded {} first frame {:?} ms",
        report.video.frames, report.video.first_frame_ms
    );
    Ok(())
}

/// Load average (1, 5, 15 min), for the record: the machine may be shared.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Writes `secs` seconds of ffmpeg's `testsrc2` at `w × h`, 30 fps, as a Y4M file, with
/// frame i stamped with the pattern code of number i (top-left band): the viewer reads it
/// from each decoded frame to find the source frame its PSNR is measured against.
fn make_y4m(
    dir: &std::path::Path,
    w: u32,
    h: u32,
    secs: u32,
) -> anyhow::Result<std::path::PathBuf> {
    use std::io::{BufRead, Read, Write};
    let raw = dir.join(format!("testsrc2-{w}x{h}-raw.y4m"));
    let path = dir.join(format!("testsrc2-{w}x{h}.y4m"));
    let status = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg(format!("testsrc2=size={w}x{h}:rate=30:duration={secs}"))
        .args(["-pix_fmt", "yuv420p"])
        .arg(&raw)
        .status()?;
    anyhow::ensure!(status.success(), "ffmpeg failed: {status}");
    let mut input = std::io::BufReader::new(std::fs::File::open(&raw)?);
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
    let mut line = Vec::new();
    input.read_until(b'\n', &mut line)?;
    out.write_all(&line)?;
    let mut buf = vec![0u8; streamit_media::frame::i420_len(w, h)];
    for n in 0u32.. {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        input.read_exact(&mut buf)?;
        streamit_media::pattern::draw_pattern_code(&mut buf, w, h, n, 0);
        out.write_all(&line)?;
        out.write_all(&buf)?;
    }
    out.flush()?;
    std::fs::remove_file(&raw)?;
    Ok(path)
}

/// Mean video bitrate the viewer received (kbit/s), from its inbound-rtp byte counters.
fn received_kbps(report: &streamit_testkit::ViewerReport) -> f64 {
    let bytes = report.video.bytes_received();
    let ms = report
        .video
        .last_frame_ms
        .zip(report.video.first_frame_ms)
        .map(|(l, f)| l - f)
        .unwrap_or(0.0);
    if ms > 0.0 {
        bytes as f64 * 8.0 / ms
    } else {
        f64::NAN
    }
}

/// A looping Y4M reader (4:2:0).
struct Y4m {
    reader: std::io::BufReader<std::fs::File>,
    start: u64,
    w: u32,
    h: u32,
}

impl Y4m {
    fn open(path: &std::path::Path) -> anyhow::Result<Self> {
        use std::io::BufRead;
        let mut reader = std::io::BufReader::new(std::fs::File::open(path)?);
        let mut header = String::new();
        reader.read_line(&mut header)?;
        let tag = |c: char| {
            header
                .split_whitespace()
                .find_map(|t| t.strip_prefix(c).and_then(|v| v.parse::<u32>().ok()))
        };
        let (Some(w), Some(h)) = (tag('W'), tag('H')) else {
            anyhow::bail!("no W/H in {header:?}");
        };
        Ok(Y4m {
            reader,
            start: header.len() as u64,
            w,
            h,
        })
    }

    fn next(&mut self, pts: MediaTime) -> anyhow::Result<streamit_media::VideoFrame> {
        use std::io::{BufRead, Read, Seek};
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            self.reader.seek(std::io::SeekFrom::Start(self.start))?;
            line.clear();
            self.reader.read_line(&mut line)?;
        }
        anyhow::ensure!(line.starts_with("FRAME"), "expected FRAME");
        let mut buf = vec![0u8; streamit_media::frame::i420_len(self.w, self.h)];
        self.reader.read_exact(&mut buf)?;
        Ok(streamit_media::VideoFrame::from_i420(
            self.w, self.h, buf, pts,
        )?)
    }
}

/// Our publisher, run as its own process by `bench_hd_matrix` (does nothing without
/// `BENCH_WORKER_URL`): the Y4M through the studio's simulcast encoder and transport,
/// paced at 30 fps, plus silent Opus. Prints one JSON line like py_publisher.py.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark worker, run by bench_hd_matrix"]
async fn bench_worker() -> anyhow::Result<()> {
    use streamit_media::encode::{Layer, Quality, SimulcastEncoder};
    let Ok(url) = std::env::var("BENCH_WORKER_URL") else {
        return Ok(());
    };
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let token = env("BENCH_WORKER_TOKEN");
    let secs: u64 = env("BENCH_SECONDS").parse().unwrap_or(60);
    let simulcast = env("BENCH_WORKER_SIMULCAST") == "1";
    let (media_codec, codec) = if env("BENCH_WORKER_CODEC") == "vp8" {
        (streamit_media::VideoCodec::Vp8, VideoCodec::Vp8)
    } else {
        (streamit_media::VideoCodec::H264, VideoCodec::H264)
    };
    let mut y4m = Y4m::open(std::path::Path::new(&env("BENCH_WORKER_Y4M")))?;
    let (w, h) = (y4m.w, y4m.h);
    let ladder = Layer::ladder(w, h);
    let layers: Vec<Layer> = if simulcast {
        ladder
    } else {
        ladder
            .into_iter()
            .filter(|l| l.quality == Quality::High)
            .collect()
    };
    let mut enc = SimulcastEncoder::new(media_codec, &layers, 30.0)?;
    let quality = |q: Quality| match q {
        Quality::Low => VideoQuality::Low,
        Quality::Medium => VideoQuality::Medium,
        Quality::High => VideoQuality::High,
    };
    let mut opts = VideoTrackOptions::new(codec, w, h, 30);
    if simulcast {
        opts.simulcast = layers
            .iter()
            .map(|l| LayerSpec {
                quality: quality(l.quality),
                width: l.width,
                height: l.height,
                bitrate: Bitrate(l.bitrate_bps as u64),
            })
            .collect();
    }
    let mut opus = streamit_media::encode::OpusEncoder::new(1, 32_000)?;
    let (handle, mut events) = Publisher::connect(&url, &token, PublishOptions::default()).await?;
    let video = handle.publish_video(opts).await?;
    let audio = handle.publish_audio(AudioTrackOptions::default()).await?;
    let mut keys = vec![true; layers.len()];
    let mut frame_no = 0u64;
    let mut audio_no = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        tick.tick().await;
        while let Ok(ev) = events.try_recv() {
            match ev {
                PublisherEvent::KeyframeRequested { layer, .. } => {
                    for (i, l) in layers.iter().enumerate() {
                        if layer.is_none() || layer == Some(quality(l.quality)) {
                            keys[i] = true;
                        }
                    }
                }
                PublisherEvent::LayersWanted { layers: wanted, .. } if simulcast => {
                    for (i, l) in layers.iter().enumerate() {
                        let on = wanted.contains(&quality(l.quality));
                        if on && !enc.is_active(i) {
                            keys[i] = true;
                        }
                        enc.set_active(i, on)?;
                    }
                }
                _ => {}
            }
        }
        let el = start.elapsed();
        while Duration::from_millis(audio_no * 20) <= el {
            let frame = streamit_media::AudioFrame {
                sample_rate: 48_000,
                channels: 1,
                samples: streamit_media::AudioSamples::F32(vec![0.0; 960]),
                pts: MediaTime::from_micros(audio_no * 20_000),
            };
            for p in opus.push(&frame)? {
                audio.send(EncodedAudio {
                    data: p.data,
                    timestamp: p.pts.as_duration(),
                })?;
            }
            audio_no += 1;
        }
        if Duration::from_micros(frame_no * 33_333) <= el {
            let pts = MediaTime::from_micros(frame_no * 33_333);
            let pic = y4m.next(pts)?;
            for lf in enc.encode(&pic, &keys)? {
                video.send(EncodedVideo {
                    layer: simulcast.then(|| quality(lf.quality)),
                    data: lf.video.data,
                    keyframe: lf.video.keyframe,
                    timestamp: pts.as_duration(),
                });
            }
            keys.iter_mut().for_each(|k| *k = false);
            frame_no += 1;
        }
    }
    let cpu = cpu_seconds();
    handle.leave().await?;
    println!(
        "BENCH_WORKER {}",
        serde_json_line(frame_no, cpu, peak_rss_mb())
    );
    Ok(())
}

fn serde_json_line(frames: u64, cpu: f64, rss: f64) -> String {
    format!("{{\"frames\": {frames}, \"cpu_s\": {cpu:.2}, \"peak_rss_mb\": {rss:.1}}}")
}

/// Pulls `"key": number` out of a one-line JSON object.
fn json_num(line: &str, key: &str) -> Option<f64> {
    let at = line.find(&format!("\"{key}\""))?;
    let rest = line[at..].split_once(':')?.1;
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ' ' || c == '-'))
        .unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: 16 runs of BENCH_SECONDS (60 s)"]
async fn bench_hd_matrix() -> anyhow::Result<()> {
    let secs: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let only: Option<Vec<String>> = std::env::var("BENCH_ROWS")
        .ok()
        .map(|s| s.split(',').map(|r| r.trim().to_string()).collect());
    let publishers = std::env::var("BENCH_PUBLISHERS").unwrap_or("ours,libwebrtc".into());
    let py = common::python().ok_or_else(|| anyhow::anyhow!("no viewer venv"))?;
    let script = streamit_testkit::repo_root().join("tests/viewer/py_publisher.py");
    let dir = tempfile_dir()?;
    let mut rows = Vec::new();
    for (w, h) in [(1280u32, 720u32), (1920, 1080)] {
        let mut y4m = None;
        for codec in ["vp8", "h264"] {
            for simulcast in [false, true] {
                let name = format!(
                    "{codec}-{}-{h}",
                    if simulcast { "simulcast" } else { "single" }
                );
                if only.as_ref().is_some_and(|o| !o.contains(&name)) {
                    continue;
                }
                if y4m.is_none() {
                    y4m = Some(make_y4m(&dir, w, h, 4)?);
                }
                let Some(file) = y4m.clone() else { continue };
                // libwebrtc's top layer at our bitrate: PSNR is compared at the same rate.
                let top_bps = streamit_media::encode::Layer::ladder(w, h)
                    .iter()
                    .map(|l| l.bitrate_bps)
                    .max()
                    .unwrap_or(0);
                let mut results = Vec::new();
                for ours in [true, false] {
                    if !publishers.contains(if ours { "ours" } else { "libwebrtc" }) {
                        continue;
                    }
                    let server = Server::start()?;
                    let token = server.token("pub", "room", true)?;
                    let viewer_token = server.token("viewer1", "room", false)?;
                    let mut vopts =
                        common::viewer_options(&server.ws_url(), &viewer_token, secs as f64 + 6.0);
                    vopts.psnr_ref = Some(file.clone());
                    if simulcast {
                        vopts.quality = Some("high".into());
                    }
                    let viewer = streamit_testkit::Viewer::spawn(vopts)?;
                    let load0 = loadavg();
                    let out = if ours {
                        let mut cmd = tokio::process::Command::new(std::env::current_exe()?);
                        cmd.args(["--ignored", "--exact", "bench_worker", "--nocapture"])
                            .env("BENCH_WORKER_URL", server.ws_url())
                            .env("BENCH_WORKER_TOKEN", &token)
                            .env("BENCH_WORKER_CODEC", codec)
                            .env("BENCH_WORKER_SIMULCAST", if simulcast { "1" } else { "0" })
                            .env("BENCH_WORKER_Y4M", &file)
                            .env("BENCH_SECONDS", secs.to_string())
                            .stdout(std::process::Stdio::piped())
                            .stderr(std::process::Stdio::inherit())
                            .kill_on_drop(true);
                        cmd.output().await?
                    } else {
                        let mut cmd = tokio::process::Command::new(&py);
                        cmd.arg(&script)
                            .arg(server.ws_url())
                            .arg(&token)
                            .arg(secs.to_string())
                            .arg("--y4m")
                            .arg(&file)
                            .args(["--codec", codec])
                            .arg("--max-bitrate")
                            .arg(top_bps.to_string())
                            .stdout(std::process::Stdio::piped())
                            .kill_on_drop(true);
                        if simulcast {
                            cmd.arg("--simulcast");
                        }
                        cmd.output().await?
                    };
                    let stdout = String::from_utf8_lossy(&out.stdout);
                    let line = stdout
                        .lines()
                        .rev()
                        .find(|l| l.contains("\"cpu_s\""))
                        .unwrap_or("")
                        .to_string();
                    let report = viewer.report().await?;
                    let cpu = json_num(&line, "cpu_s").unwrap_or(f64::NAN);
                    let rss = json_num(&line, "peak_rss_mb").unwrap_or(f64::NAN);
                    let top = format!("{w}x{h}");
                    let at_top = report.video.resolutions.get(&top).copied().unwrap_or(0);
                    let kbps = received_kbps(&report);
                    let (psnr, psnr_p10, psnr_n) = report
                        .psnr
                        .as_ref()
                        .map(|p| {
                            (
                                p.mean_db.unwrap_or(f64::NAN),
                                p.p10_db.unwrap_or(f64::NAN),
                                p.samples,
                            )
                        })
                        .unwrap_or((f64::NAN, f64::NAN, 0));
                    println!(
                        "BENCH {name} {}: {:.1} CPU s/min, peak RSS {rss:.0} MB, viewer {} frames ({at_top} at {top}), {kbps:.0} kbit/s, PSNR-Y {psnr:.2} dB (p10 {psnr_p10:.2}, {psnr_n} frames), load {load0} → {}",
                        if ours { "ours" } else { "libwebrtc" },
                        cpu * 60.0 / secs as f64,
                        report.video.frames,
                        loadavg()
                    );
                    results.push(Row {
                        cpu: cpu * 60.0 / secs as f64,
                        rss,
                        frames: report.video.frames,
                        at_top,
                        kbps,
                        psnr,
                    });
                }
                rows.push((name, results));
            }
        }
    }
    println!(
        "\nBENCH summary ({secs} s each; CPU s per minute of publishing, peak RSS MB, frames at the viewer (at full size)):"
    );
    println!(
        "| setup | ours CPU s/min | libwebrtc CPU s/min | ratio | ours RSS | libwebrtc RSS | frames ours / libwebrtc | kbit/s ours / libwebrtc | PSNR-Y dB ours / libwebrtc |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (name, r) in &rows {
        if let [o, l] = r.as_slice() {
            println!(
                "| {name} | {:.1} | {:.1} | {:.2}x | {:.0} | {:.0} | {} ({}) / {} ({}) | {:.0} / {:.0} | {:.2} / {:.2} |",
                o.cpu,
                l.cpu,
                o.cpu / l.cpu,
                o.rss,
                l.rss,
                o.frames,
                o.at_top,
                l.frames,
                l.at_top,
                o.kbps,
                l.kbps,
                o.psnr,
                l.psnr
            );
        }
    }
    println!("load average at the end: {}", loadavg());
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// One publisher's figures in a row of `bench_hd_matrix`.
struct Row {
    /// CPU seconds per minute of publishing.
    cpu: f64,
    /// Peak RSS, MB.
    rss: f64,
    frames: u64,
    /// Frames the viewer decoded at the source's size.
    at_top: u64,
    /// Mean video bitrate at the viewer.
    kbps: f64,
    /// Mean PSNR-Y of the decoded high layer against the source.
    psnr: f64,
}

/// A scratch directory for the Y4M files (removed at the end).
fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("streamit-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
