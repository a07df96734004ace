//! `cargo bench -p streamit-media`: encoder cost (H.264, VP8) at 720p30 and 1080p30,
//! conversion throughput, Opus cost — and, in the same run, Debian's ffmpeg encoding the same
//! Y4M as the anchor, with the ratio ours / ffmpeg.
//!
//! Debian's ffmpeg has no libopenh264 encoder, so the H.264 anchor is libx264 (`ultrafast`,
//! `zerolatency`, baseline) — the closest real-time H.264 encoder it ships. VP8 is libvpx with
//! the same real-time settings (CBR, `-deadline realtime -cpu-used 6`, 2 threads).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use streamit_media::convert::{i420_to_rgba, rgba_to_i420, scale_i420, yuyv_to_i420};
use streamit_media::encode::{OpusEncoder, new_video_encoder};
use streamit_media::pattern::generate_pattern;
use streamit_media::source::write_y4m;
use streamit_media::{
    AUDIO_RATE, AudioFrame, AudioSamples, MediaTime, VideoCodec, VideoEncoderConfig, VideoFrame,
};

const FRAMES: u32 = 60;

/// The test pattern with moving luma texture, so encoders have real work to do.
fn content(w: u32, h: u32, n: u32) -> VideoFrame {
    let base = generate_pattern(w, h, n, MediaTime(n as u64 * 33_333)).expect("pattern");
    let mut buf = base.data().to_vec();
    let mut x = n.wrapping_mul(2_654_435_761).wrapping_add(1);
    for p in &mut buf[..(w * h) as usize] {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *p = p.saturating_add((x >> 29) as u8);
    }
    VideoFrame::from_i420(w, h, buf, base.pts).expect("frame")
}

fn ours(codec: VideoCodec, frames: &[VideoFrame], bps: u32) -> (f64, f64) {
    let f0 = &frames[0];
    let mut enc = new_video_encoder(
        codec,
        VideoEncoderConfig::new(f0.width, f0.height, 30.0, bps),
    )
    .expect("encoder");
    let mut bytes = 0usize;
    let t = Instant::now();
    for f in frames {
        if let Some(p) = enc.encode(f, false).expect("encode") {
            bytes += p.data.len();
        }
    }
    let ms = t.elapsed().as_secs_f64() * 1000.0 / frames.len() as f64;
    let kbps = bytes as f64 * 8.0 * 30.0 / frames.len() as f64 / 1000.0;
    (ms, kbps)
}

/// Wall-clock ms/frame of ffmpeg encoding `y4m` (its `-benchmark` rtime).
fn ffmpeg(y4m: &Path, args: &[&str], frames: u32) -> Option<f64> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-benchmark", "-y", "-i"])
        .arg(y4m)
        .args(args)
        .args(["-f", "null", "-"])
        .output()
        .ok()?;
    let err = String::from_utf8_lossy(&out.stderr);
    let rtime = err
        .lines()
        .find_map(|l| l.split("rtime=").nth(1))
        .and_then(|v| v.trim_end_matches('s').trim().parse::<f64>().ok());
    if rtime.is_none() {
        eprintln!("ffmpeg failed: {}", err.lines().last().unwrap_or(""));
    }
    rtime.map(|r| r * 1000.0 / frames as f64)
}

fn main() {
    // `cargo bench` passes --bench; ignore arguments
    let tmp = std::env::temp_dir().join(format!("streamit-media-bench-{}", std::process::id()));
    if std::fs::create_dir_all(&tmp).is_err() {
        eprintln!("cannot create {}", tmp.display());
        return;
    }
    println!("== video encoding, {FRAMES} frames of the textured test pattern, 30 fps ==");
    println!(
        "{:<8} {:<10} {:>9} {:>12} {:>10} {:>16} {:>8}",
        "codec", "size", "target", "ours ms/fr", "ours kbps", "ffmpeg ms/fr", "ratio"
    );
    for (w, h, bps) in [(1280u32, 720u32, 2_000_000u32), (1920, 1080, 4_000_000)] {
        let frames: Vec<VideoFrame> = (0..FRAMES).map(|n| content(w, h, n)).collect();
        let y4m = tmp.join(format!("{w}x{h}.y4m"));
        if let Err(e) = write_y4m(&y4m, &frames, 30) {
            eprintln!("y4m: {e}");
            return;
        }
        let b = format!("{}k", bps / 1000);
        let h264_args = [
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            "-profile:v",
            "baseline",
            "-b:v",
            &b,
        ];
        let vp8_args = [
            "-c:v",
            "libvpx",
            "-b:v",
            &b,
            "-minrate",
            &b,
            "-maxrate",
            &b,
            "-deadline",
            "realtime",
            "-cpu-used",
            "6",
            "-threads",
            "2",
            "-lag-in-frames",
            "0",
            "-error-resilient",
            "1",
        ];
        for (codec, args, anchor) in [
            (VideoCodec::H264, &h264_args[..], "libx264"),
            (VideoCodec::Vp8, &vp8_args[..], "libvpx"),
        ] {
            let (ms, kbps) = ours(codec, &frames, bps);
            let ff = ffmpeg(&y4m, args, FRAMES);
            let (ffs, ratio) = match ff {
                Some(f) => (format!("{f:.2} ({anchor})"), format!("{:.2}x", ms / f)),
                None => ("n/a".into(), "n/a".into()),
            };
            println!(
                "{:<8} {:<10} {:>8}k {:>12.2} {:>10.0} {:>16} {:>8}",
                format!("{codec:?}"),
                format!("{w}x{h}"),
                bps / 1000,
                ms,
                kbps,
                ffs,
                ratio
            );
        }
        let _ = std::fs::remove_file(&y4m);
    }

    println!("\n== conversion and scaling (MPixel/s of the source) ==");
    let f = content(1280, 720, 1);
    let rgba = i420_to_rgba(&f).expect("rgba");
    let yuyv: Vec<u8> = (0..1280 * 720 / 2)
        .flat_map(|i| [(i % 200) as u8 + 16, 128, 100, 128])
        .collect();
    let mpix = |label: &str, pixels: f64, reps: u32, mut op: Box<dyn FnMut()>| {
        let t = Instant::now();
        for _ in 0..reps {
            op();
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "{label:<34} {:>8.1} MPixel/s",
            pixels * reps as f64 / s / 1e6
        );
    };
    let px = 1280.0 * 720.0;
    // every conversion must succeed before it is timed
    rgba_to_i420(&rgba, 1280, 720, 1280 * 4, MediaTime(0)).expect("rgba→i420");
    yuyv_to_i420(&yuyv, 1280, 720, 2560, MediaTime(0)).expect("yuyv→i420");
    scale_i420(&f, 320, 180).expect("scale");
    {
        let rgba = rgba.clone();
        mpix(
            "RGBA→I420 720p",
            px,
            100,
            Box::new(move || {
                std::hint::black_box(
                    rgba_to_i420(
                        std::hint::black_box(&rgba),
                        1280,
                        720,
                        1280 * 4,
                        MediaTime(0),
                    )
                    .ok(),
                );
            }),
        );
    }
    {
        let f = f.clone();
        mpix(
            "I420→RGBA 720p (preview)",
            px,
            100,
            Box::new(move || {
                std::hint::black_box(i420_to_rgba(std::hint::black_box(&f)).ok());
            }),
        );
    }
    mpix(
        "YUYV→I420 720p",
        px,
        100,
        Box::new(move || {
            std::hint::black_box(
                yuyv_to_i420(std::hint::black_box(&yuyv), 1280, 720, 2560, MediaTime(0)).ok(),
            );
        }),
    );
    {
        let f = f.clone();
        mpix(
            "scale I420 720p→360p",
            px,
            100,
            Box::new(move || {
                std::hint::black_box(scale_i420(std::hint::black_box(&f), 640, 360).ok());
            }),
        );
    }
    {
        let f = f.clone();
        mpix(
            "scale I420 720p→180p",
            px,
            100,
            Box::new(move || {
                std::hint::black_box(scale_i420(std::hint::black_box(&f), 320, 180).ok());
            }),
        );
    }

    println!("\n== Opus (48 kHz stereo, 64 kbps, 20 ms frames) ==");
    let mut enc = OpusEncoder::new(2, 64_000).expect("opus");
    let n = 500usize; // 10 s
    let frames: Vec<AudioFrame> = (0..n)
        .map(|k| {
            let samples: Vec<i16> = (0..960)
                .flat_map(|i| {
                    let t = (k * 960 + i) as f64 / AUDIO_RATE as f64;
                    let s = (0.3 * (2.0 * std::f64::consts::PI * 440.0 * t).sin() * 32767.0) as i16;
                    [s, s]
                })
                .collect();
            AudioFrame {
                sample_rate: AUDIO_RATE,
                channels: 2,
                samples: AudioSamples::I16(samples),
                pts: MediaTime(k as u64 * 20_000),
            }
        })
        .collect();
    let t = Instant::now();
    for f in &frames {
        let _ = enc.push(f);
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!(
        "ours: {us:.1} µs per 20 ms frame ({:.2}% of real time)",
        us / 20_000.0 * 100.0
    );
    // ffmpeg anchor: the same 10 s tone through libopus
    let wav = tmp.join("tone.wav");
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: AUDIO_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    if let Ok(mut w) = hound::WavWriter::create(&wav, spec) {
        for f in &frames {
            for s in f.samples.to_i16() {
                let _ = w.write_sample(s);
            }
        }
        let _ = w.finalize();
        if let Some(ms) = ffmpeg(
            &wav,
            &["-c:a", "libopus", "-b:a", "64k", "-frame_duration", "20"],
            n as u32,
        ) {
            println!(
                "ffmpeg libopus: {:.1} µs per 20 ms frame (ratio {:.2}x, includes ffmpeg start-up)",
                ms * 1000.0,
                us / (ms * 1000.0)
            );
        }
    }
    println!("\n== noise suppression (RNNoise, 48 kHz mono, 20 ms blocks) ==");
    let mut ns = streamit_media::denoise::NoiseSuppressor::new();
    let mut seed = 1u32;
    let mut blocks: Vec<Vec<f32>> = (0..n)
        .map(|_| {
            (0..960)
                .map(|_| {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    ((seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 0.1
                })
                .collect()
        })
        .collect();
    let t = Instant::now();
    for b in &mut blocks {
        ns.process(b);
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!(
        "ours: {us:.1} µs per 20 ms block ({:.2}% of one core in real time)",
        us / 20_000.0 * 100.0
    );
    let _ = std::fs::remove_dir_all(&tmp);
}
