//! The pipeline with a sink that keeps up: every layer flows, the preview tap shares the
//! captured buffer, key frames can be forced, layers switched off and on.

use std::time::{Duration, Instant};

use streamit_media::encode::new_video_decoder;
use streamit_media::pipeline::{
    LayerPacket, Pipeline, PipelineConfig, PipelineEvent, VideoControl,
};
use streamit_media::source::{SyntheticAudio, SyntheticVideo};
use streamit_media::{MediaClock, Quality, VideoCodec, read_pattern_code};

fn take(p: &Pipeline, n: usize) -> Vec<LayerPacket> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut out = Vec::new();
    while out.len() < n && Instant::now() < deadline {
        if let Ok(pkt) = p.video.recv_timeout(Duration::from_millis(200)) {
            out.push(pkt);
        }
    }
    out
}

#[test]
fn layers_flow_decode_and_obey_controls() {
    for codec in [VideoCodec::H264, VideoCodec::Vp8] {
        let clock = MediaClock::new();
        let mut video = SyntheticVideo::new(640, 360, 30);
        video.max_frames = Some(300);
        let cfg = PipelineConfig::new(codec, 640, 360, 30.0);
        assert_eq!(
            cfg.layers.len(),
            2,
            "320x180, 640x360 (LiveKit's ladder for 360p)"
        );
        let p = Pipeline::start(
            Some(Box::new(video)),
            Some(Box::new(SyntheticAudio::default())),
            clock,
            cfg,
        )
        .unwrap();

        let pkts = take(&p, 30);
        assert_eq!(pkts.len(), 30);
        for q in [Quality::Low, Quality::High] {
            let layer: Vec<_> = pkts.iter().filter(|x| x.quality == q).collect();
            assert!(layer.len() >= 8, "{codec:?} {q:?}: {}", layer.len());
            assert!(layer[0].video.keyframe);
            {
                let mut dec = new_video_decoder(codec).unwrap();
                for x in &layer {
                    let f = dec
                        .decode(&x.video.data, x.video.pts)
                        .unwrap()
                        .expect("picture");
                    assert_eq!(
                        read_pattern_code(&f).map(|c| c.1),
                        Some(x.video.pts.as_micros())
                    );
                }
            }
        }
        // the preview tap holds the latest captured frame
        let pv = p.preview().expect("preview frame");
        assert_eq!((pv.width, pv.height), (640, 360));

        // forced key frame arrives on every layer
        p.control(VideoControl::ForceKeyframe);
        let after = take(&p, 15);
        for q in [Quality::Low, Quality::High] {
            assert!(
                after.iter().any(|x| x.quality == q && x.video.keyframe),
                "{codec:?} {q:?}: no key frame"
            );
        }
        // switching HIGH off stops its packets
        p.control(VideoControl::SetLayerActive(Quality::High, false));
        p.control(VideoControl::SetBitrate(Quality::Low, 200_000));
        let _ = take(&p, 6);
        let later = take(&p, 12);
        assert!(
            later.iter().all(|x| x.quality != Quality::High),
            "{codec:?}: HIGH still flowing"
        );

        // audio flows too
        let a = p
            .audio
            .recv_timeout(Duration::from_secs(5))
            .expect("audio packet");
        assert_eq!(a.duration_us, 20_000);
        let s = p.snapshot();
        assert_eq!(s.video_dropped, 0, "{s:?}");
        assert!(
            p.events
                .try_recv()
                .map(|e| !matches!(e, PipelineEvent::SourceError { .. }))
                .unwrap_or(true)
        );
        p.stop();
    }
}
