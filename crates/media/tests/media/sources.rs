//! Synthetic and file sources on their own threads, stamped by the one clock.

use std::time::Duration;

use streamit_media::audio::dominant_frequency;
use streamit_media::pattern::{flash_on, generate_pattern};
use streamit_media::source::{SyntheticAudio, SyntheticVideo, WavSource, Y4mSource, write_y4m};
use streamit_media::{
    AudioFrame, AudioSource, MediaClock, MediaTime, SourceEvent, VideoFrame, VideoSource,
    read_pattern_code,
};

fn collect<T>(rx: &crossbeam_channel::Receiver<SourceEvent<T>>, n: usize) -> Vec<T> {
    let mut out = Vec::new();
    while out.len() < n {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(SourceEvent::Frame(f)) => out.push(f),
            Ok(SourceEvent::Ended) => break,
            Ok(SourceEvent::Error(e)) => panic!("source error {e}"),
            Err(e) => panic!("no frame: {e}"),
        }
    }
    out
}

#[test]
fn synthetic_video_is_paced_by_the_clock_and_coded() {
    let clock = MediaClock::new();
    let h = Box::new(SyntheticVideo::new(320, 180, 30))
        .start(clock.clone())
        .unwrap();
    let frames: Vec<VideoFrame> = collect(h.events(), 10);
    for (i, f) in frames.iter().enumerate() {
        let (n, ts) = read_pattern_code(f).unwrap();
        assert_eq!(n as usize, i);
        assert_eq!(ts, f.pts.as_micros());
    }
    let span = frames[9].pts.as_micros() - frames[0].pts.as_micros();
    assert!((span as i64 - 9 * 33_333).abs() < 100, "{span}");
    assert!(
        clock.now() >= frames[9].pts,
        "frames are not stamped in the future"
    );
}

#[test]
fn synthetic_audio_beeps_with_the_video_flash() {
    let clock = MediaClock::manual();
    let h = Box::new(SyntheticAudio::default())
        .start(clock.clone())
        .unwrap();
    // 1.4 s of media time (the source may start a step late)
    for _ in 0..140 {
        clock.advance(Duration::from_millis(10));
        std::thread::sleep(Duration::from_micros(300));
    }
    let frames: Vec<AudioFrame> = collect(h.events(), 60);
    assert_eq!(frames.len(), 60);
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(
            f.pts,
            MediaTime(frames[0].pts.as_micros() + i as u64 * 20_000)
        );
        assert_eq!((f.frames(), f.channels, f.sample_rate), (960, 2, 48_000));
        let mono: Vec<f32> = f.samples.to_f32().iter().step_by(2).copied().collect();
        let dom = dominant_frequency(&mono, 48_000, [440.0, 1000.0]).unwrap();
        let beeps = flash_on(f.pts) || flash_on(MediaTime(f.pts.as_micros() + 19_999));
        let want = if beeps { 1000.0 } else { 440.0 };
        assert_eq!(dom, want, "frame {i} at {:?}", f.pts);
    }
    // both beeps and silences were seen
    assert!(frames.iter().any(|f| flash_on(f.pts)) && frames.iter().any(|f| !flash_on(f.pts)));
}

#[test]
fn y4m_source_plays_once_and_loops() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.y4m");
    let clip: Vec<VideoFrame> = (0..5)
        .map(|i| generate_pattern(320, 180, i, MediaTime(i as u64)))
        .collect::<Result<_, _>>()
        .unwrap();
    write_y4m(&path, &clip, 30).unwrap();

    let h = Box::new(Y4mSource::new(&path, false))
        .start(MediaClock::new())
        .unwrap();
    let frames = collect(h.events(), 100);
    assert_eq!(frames.len(), 5);
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f.data(), clip[i].data());
    }

    let h = Box::new(Y4mSource::new(&path, true))
        .start(MediaClock::new())
        .unwrap();
    let frames = collect(h.events(), 12);
    assert_eq!(frames.len(), 12);
    assert_eq!(read_pattern_code(&frames[11]).map(|c| c.0), Some(1));
    assert!(frames.windows(2).all(|w| w[1].pts > w[0].pts));

    let missing =
        Box::new(Y4mSource::new(dir.path().join("nope.y4m"), false)).start(MediaClock::new());
    assert!(missing.is_err());

    // A file cut short mid-frame (a recording still being written): the whole frames, then
    // the end, not a half-filled frame.
    let cut = dir.path().join("cut.y4m");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() - 1000]).unwrap();
    let h = Box::new(Y4mSource::new(&cut, false))
        .start(MediaClock::new())
        .unwrap();
    let frames = collect(h.events(), 100);
    assert_eq!(frames.len(), 4);
    assert_eq!(frames[3].data(), clip[3].data());
}

#[test]
fn wav_source_resamples_to_48k() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tone.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 44_100,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    for i in 0..44_100 / 2 {
        let s = 0.5 * (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / 44_100.0).sin();
        w.write_sample((s * 32767.0) as i16).unwrap();
    }
    w.finalize().unwrap();
    let clock = MediaClock::manual();
    let h = Box::new(WavSource::new(&path, false))
        .start(clock.clone())
        .unwrap();
    for _ in 0..70 {
        clock.advance(Duration::from_millis(10));
        std::thread::sleep(Duration::from_micros(300));
    }
    let frames: Vec<AudioFrame> = collect(h.events(), 1000);
    assert!((24..=26).contains(&frames.len()), "{}", frames.len());
    let mono: Vec<f32> = frames[5..20]
        .iter()
        .flat_map(|f| f.samples.to_f32())
        .collect();
    let dom = dominant_frequency(&mono, 48_000, (900..=1100).step_by(25).map(f64::from)).unwrap();
    assert_eq!(dom, 1000.0);
}
