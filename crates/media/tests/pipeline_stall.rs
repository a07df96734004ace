//! A sink that stalls for 30 s (of media-clock time, driven by a manual clock) keeps memory
//! flat: the real source and encoded queues stay bounded, drops are counted, nothing is lost
//! silently, and what is queued when the sink comes back is decodable.

use std::time::Duration;

use streamit_media::encode::new_video_decoder;
use streamit_media::pipeline::{Pipeline, PipelineConfig};
use streamit_media::source::{SyntheticAudio, SyntheticVideo};
use streamit_media::{Layer, MediaClock, Quality, VideoCodec, read_pattern_code};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

#[test]
fn stalled_sink_for_30s_keeps_memory_flat() {
    let clock = MediaClock::manual();
    let mut cfg = PipelineConfig::new(VideoCodec::H264, 640, 360, 30.0);
    cfg.layers = vec![
        Layer {
            quality: Quality::Low,
            width: 320,
            height: 180,
            bitrate_bps: 150_000,
        },
        Layer {
            quality: Quality::Medium,
            width: 640,
            height: 360,
            bitrate_bps: 500_000,
        },
    ];
    cfg.encoded_video_queue = 60;
    cfg.encoded_audio_queue = 50;
    let video = Box::new(SyntheticVideo::new(640, 360, 30));
    let audio = Box::new(SyntheticAudio::default());
    let p = Pipeline::start(Some(video), Some(audio), clock.clone(), cfg).unwrap();

    let mut rss_at_5s = 0;
    // 30 s of media time in 10 ms steps; nobody reads p.video / p.audio
    for step in 1..=3000u32 {
        clock.advance(Duration::from_millis(10));
        std::thread::sleep(Duration::from_micros(1500));
        if step == 500 {
            rss_at_5s = rss_kib();
        }
        if step % 500 == 0 {
            let s = p.snapshot();
            assert!(s.video_queued <= 60, "{s:?}");
            assert!(s.audio_queued <= 50, "{s:?}");
            assert!(
                s.video_source_queued <= streamit_media::source::VIDEO_SOURCE_QUEUE,
                "{s:?}"
            );
        }
    }
    // let the threads catch up with the clock (a loaded machine may lag behind it)
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let s = p.snapshot();
        let video_seen = s.video_frames_in + s.video_source_dropped + s.video_source_queued as u64;
        if (video_seen >= 895 && s.audio_packets >= 1495) || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    let rss_at_30s = rss_kib();
    let s = p.snapshot();
    println!("after 30 s stalled: {s:?}; RSS {rss_at_5s} KiB at 5 s, {rss_at_30s} KiB at 30 s");

    // bounded queues, counted drops
    assert!(s.video_queued <= 60 && s.audio_queued <= 50, "{s:?}");
    assert!(
        s.video_frames_in + s.video_source_dropped >= 800,
        "video kept flowing: {s:?}"
    );
    assert!(s.video_dropped > 0, "{s:?}");
    assert_eq!(
        s.video_packets,
        s.video_dropped + s.video_queued as u64,
        "every video packet accounted for"
    );
    assert!(s.audio_packets >= 1400, "{s:?}");
    assert!(s.audio_dropped > 0, "{s:?}");
    assert_eq!(
        s.audio_packets,
        s.audio_dropped + s.audio_queued as u64,
        "audio never lost silently"
    );
    // memory flat: less than 16 MiB growth between 5 s and 30 s
    assert!(
        rss_at_30s < rss_at_5s + 16 * 1024,
        "RSS grew from {rss_at_5s} to {rss_at_30s} KiB"
    );

    // the sink comes back: what is queued starts with a key frame per layer and decodes
    let queued: Vec<_> = p.video.try_iter().collect();
    assert!(!queued.is_empty());
    for q in [Quality::Low, Quality::Medium] {
        let mut dec = new_video_decoder(VideoCodec::H264).unwrap();
        let layer: Vec<_> = queued.iter().filter(|p| p.quality == q).collect();
        assert!(layer[0].video.keyframe, "{q:?} resumes with a key frame");
        let mut last = None;
        for pkt in layer {
            let f = dec
                .decode(&pkt.video.data, pkt.video.pts)
                .unwrap()
                .expect("picture");
            let (n, ts) = read_pattern_code(&f).expect("code readable");
            assert_eq!(ts, pkt.video.pts.as_micros());
            if let Some(l) = last {
                assert!(n > l, "frames in order");
            }
            last = Some(n);
        }
    }
    let audio: Vec<_> = p.audio.try_iter().collect();
    assert!(audio.windows(2).all(|w| w[1].pts > w[0].pts));
    p.stop();
}
