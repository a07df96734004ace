//! Benchmark (ignored by default): 60 s of 720p30 H.264 + Opus published to a
//! loopback livekit-server, watched by the Python SDK viewer. Prints CPU seconds
//! (whole test process, and without the encoder), peak RSS and the viewer's
//! first-frame time. Run: `cargo test -p streamit-livekit-publish --release
//! --test bench_publish -- --ignored --nocapture` (BENCH_SECONDS to change 60).

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
    let script =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/py_publisher.py");
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
