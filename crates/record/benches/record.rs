//! What recording costs per second of stream: muxing alone (in memory), and muxing plus the
//! writer thread, the file and its syncs. Stream shape: 720p30 H.264 at 1.3 Mbit/s (what
//! `publish` of ffmpeg's testsrc2 recorded: 10 MB a minute) with a key frame every 2 s,
//! plus 20 ms Opus packets of 120 bytes.
//!
//! `cargo bench -p streamit-record --bench record`. Prints figures; asserts nothing.

use std::time::{Duration, Instant};

use bytes::Bytes;
use streamit_record::{AudioTrack, Muxer, Recorder, Sample, VideoCodec, VideoTrack};

const SECONDS: u64 = 120;

fn video() -> Option<VideoTrack> {
    Some(VideoTrack {
        codec: VideoCodec::Vp8,
        width: 1280,
        height: 720,
    })
}

fn audio() -> Option<AudioTrack> {
    Some(AudioTrack {
        channels: 1,
        pre_skip: 312,
    })
}

/// The stream, in the order the threads would hand it over.
fn stream() -> Vec<(bool, Sample)> {
    let key = Bytes::from(vec![0x5au8; 40_000]);
    let delta = Bytes::from(vec![0xa5u8; 4_100]);
    let opus = Bytes::from(vec![0x11u8; 120]);
    let mut out = Vec::new();
    for ms in (0..SECONDS * 1000).step_by(10) {
        if ms % 20 == 0 {
            out.push((
                false,
                Sample {
                    data: opus.clone(),
                    pts: Duration::from_millis(ms),
                    keyframe: true,
                },
            ));
        }
        if ms % 100 == 0 || ms % 100 == 30 || ms % 100 == 70 {
            let keyframe = ms % 2000 == 0;
            out.push((
                true,
                Sample {
                    data: if keyframe { key.clone() } else { delta.clone() },
                    pts: Duration::from_millis(ms),
                    keyframe,
                },
            ));
        }
    }
    out
}

fn main() {
    let samples = stream();
    let bytes: usize = samples.iter().map(|(_, s)| s.data.len()).sum();

    // muxing alone
    let mut best = f64::MAX;
    let mut written = 0;
    for _ in 0..5 {
        let mut m = Muxer::new(video(), audio());
        let t = Instant::now();
        let mut n = 0;
        for (is_video, s) in samples.iter().cloned() {
            let out = if is_video {
                m.push_video(s)
            } else {
                m.push_audio(s)
            };
            n += out.map(|b| b.len()).unwrap_or(0);
        }
        n += m.finish().map(|b| b.len()).unwrap_or(0);
        best = best.min(t.elapsed().as_secs_f64());
        written = n;
    }
    println!(
        "muxer: {SECONDS} s of 720p30 + Opus ({:.1} MB in, {:.1} MB out, {:.2} % overhead) in {:.1} ms: {:.3} ms per second of stream, {:.3} % of a core",
        bytes as f64 / 1e6,
        written as f64 / 1e6,
        (written as f64 / bytes as f64 - 1.0) * 100.0,
        best * 1000.0,
        best * 1000.0 / SECONDS as f64,
        best / SECONDS as f64 * 100.0
    );

    // the whole recorder: thread, queue, file, a sync each half second. CPU time of the
    // process (this thread feeding, the writer thread writing), wall time to finish.
    let dir = std::env::temp_dir().join(format!("streamit-record-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("bench.mp4");
    let cpu0 = cpu_seconds();
    let t = Instant::now();
    let r = match Recorder::create(&path, video(), audio()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("recorder: {e}");
            return;
        }
    };
    // fed in real-time order but as fast as the queue takes it: the queue's 192 samples
    // would overflow, so feed in bursts of a fragment's worth and let the writer catch up
    for chunk in samples.chunks(60) {
        for (is_video, s) in chunk.iter().cloned() {
            if is_video { r.video(s) } else { r.audio(s) }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let status = r.finish();
    let wall = t.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    println!(
        "recorder to {}: {:.1} MB, {} dropped, wall {:.2} s (incl. {} ms of feeding pauses), CPU {:.3} s: {:.3} ms per second of stream, {:.3} % of a core; syncs included",
        dir.display(),
        status.bytes as f64 / 1e6,
        status.dropped,
        wall,
        samples.len() / 60 * 2,
        cpu,
        cpu * 1000.0 / SECONDS as f64,
        cpu / SECONDS as f64 * 100.0
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn cpu_seconds() -> f64 {
    // utime + stime of this process, in clock ticks (100 Hz on Linux); 0 elsewhere
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}
