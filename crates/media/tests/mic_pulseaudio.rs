//! The real microphone path: a user-space PulseAudio daemon with a null sink, a known tone
//! played into it with `paplay`, captured through cpal (ALSA → pulse plugin) from the sink's
//! monitor source. Skips (with a printed reason) only when `pulseaudio` is not installed.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use streamit_media::audio::dominant_frequency;
use streamit_media::mic::{MicSource, list_microphones};
use streamit_media::{AudioLevel, AudioSource, MediaClock, SourceEvent};

const TONE_HZ: f64 = 1000.0;
const TONE_AMP: f64 = 0.5;

#[path = "common/pulse.rs"]
mod pulse;
use pulse::Pulse;

fn write_tone(path: &Path, secs: f64) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 48_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..(48_000.0 * secs) as usize {
        let s = TONE_AMP * (2.0 * std::f64::consts::PI * TONE_HZ * i as f64 / 48_000.0).sin();
        w.write_sample((s * 32767.0) as i16).unwrap();
    }
    w.finalize().unwrap();
}

#[test]
fn captures_a_tone_from_a_pulseaudio_null_sink_through_cpal() {
    if !pulse::installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pulse = Pulse::start(
        dir.path(),
        &["module-null-sink sink_name=studio_null rate=48000 channels=1".into()],
    );
    let home = dir.path().join("home");
    // ALSA's default PCM = the pulse plugin, capturing from the null sink's monitor
    pulse.route_alsa_default(&home, "studio_null.monitor");
    // SAFETY: this test binary has only this test; no other thread reads the environment now.
    unsafe {
        std::env::set_var("HOME", &home);
        std::env::set_var("PULSE_SERVER", format!("unix:{}", pulse.socket));
    }

    // The only source is the null sink's monitor: not a microphone, so not listed; the
    // default input still captures from it.
    let mics = list_microphones().unwrap();
    println!("input devices: {mics:?}");
    assert!(
        mics.iter().all(|m| !m.id.ends_with(".monitor")),
        "a monitor is listed as a microphone: {mics:?}"
    );

    let clock = MediaClock::new();
    let src = Box::new(MicSource {
        channels: 1,
        ..MicSource::default()
    });
    let handle = src.start(clock.clone()).unwrap();

    let wav = dir.path().join("tone.wav");
    write_tone(&wav, 4.0);
    let mut player = Command::new("paplay")
        .args(["-d", "studio_null"])
        .arg(&wav)
        .env("PULSE_SERVER", format!("unix:{}", pulse.socket))
        .spawn()
        .unwrap();

    // collect 3 s of capture
    let mut pcm = Vec::new();
    let mut frames = 0;
    let mut last_pts = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    while pcm.len() < 48_000 * 3 && Instant::now() < deadline {
        match handle.events().recv_timeout(Duration::from_secs(5)) {
            Ok(SourceEvent::Frame(f)) => {
                assert_eq!((f.sample_rate, f.channels, f.frames()), (48_000, 1, 480));
                if let Some(p) = last_pts {
                    assert!(f.pts > p, "timestamps increase");
                }
                last_pts = Some(f.pts);
                frames += 1;
                pcm.extend(f.samples.to_f32());
            }
            Ok(SourceEvent::Error(e)) => panic!("mic error: {e}"),
            Ok(SourceEvent::Ended) => panic!("mic ended"),
            Err(e) => panic!("no audio from the mic: {e}"),
        }
    }
    let _ = player.kill();
    let _ = player.wait();
    assert!(
        pcm.len() >= 48_000 * 3,
        "captured {} samples in {frames} frames",
        pcm.len()
    );

    // the loudest 0.5 s window holds the tone
    let win = 24_000;
    let best = (0..pcm.len() - win)
        .step_by(4_800)
        .max_by(|&a, &b| {
            AudioLevel::measure(&pcm[a..a + win])
                .rms
                .total_cmp(&AudioLevel::measure(&pcm[b..b + win]).rms)
        })
        .unwrap();
    let seg = &pcm[best..best + win];
    let level = AudioLevel::measure(seg);
    let freq = dominant_frequency(seg, 48_000, (500..=1500).step_by(10).map(f64::from)).unwrap();
    println!(
        "captured {frames} frames; tone {freq} Hz, rms {:.3} ({:.1} dBFS), peak {:.3}",
        level.rms,
        level.rms_dbfs(),
        level.peak
    );
    assert_eq!(freq, TONE_HZ);
    let want_rms = (TONE_AMP / 2f64.sqrt()) as f32;
    assert!(
        (level.rms - want_rms).abs() < 0.05,
        "rms {} want {want_rms}",
        level.rms
    );

    // the sound server goes away: the source reports the lost device instead of hanging
    drop(pulse);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut lost = None;
    while Instant::now() < deadline {
        match handle.events().recv_timeout(Duration::from_millis(500)) {
            Ok(SourceEvent::Error(e)) => {
                lost = Some(e);
                break;
            }
            Ok(_) => {}
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(e) => panic!("source vanished without an error event: {e}"),
        }
    }
    println!("after killing pulseaudio: {lost:?}");
    assert!(lost.is_some(), "no device-lost event within 15 s");
    drop(handle);
}
