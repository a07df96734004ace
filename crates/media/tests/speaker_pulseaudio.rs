//! The real playback path of the mic check: a user-space PulseAudio daemon whose only sink
//! is a null sink, cpal playing through ALSA's pulse plugin into it, and `parec` recording
//! the sink's monitor. What comes out must be the clip: its tone, level and length.
//! Without the sound server, playing is a clear error. Skips (with a printed reason) only
//! when `pulseaudio` is not installed.

use streamit_media::AudioLevel;
use streamit_media::audio::dominant_frequency;
use streamit_media::speaker::play_mono_48k;

#[path = "common/pulse.rs"]
mod pulse;
use pulse::Pulse;

const TONE_HZ: f64 = 1000.0;
const TONE_AMP: f32 = 0.5;
const TONE_SECS: f64 = 1.5;

#[test]
fn a_clip_played_on_the_default_output_comes_out_whole() {
    if !pulse::installed() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pulse = Pulse::start(
        dir.path(),
        &["module-null-sink sink_name=speaker rate=48000 channels=2".into()],
    );
    let home = dir.path().join("home");
    // ALSA's default PCM = the pulse plugin, playing into the null sink.
    pulse.route_alsa_default(&home, "speaker");
    // SAFETY: this test binary has only this test; no other thread reads the environment now.
    unsafe {
        std::env::set_var("HOME", &home);
        std::env::set_var("PULSE_SERVER", format!("unix:{}", pulse.socket));
    }

    // What the sink plays, from before the clip starts.
    let rec = pulse.record("speaker.monitor", &dir.path().join("speaker.f32"));
    std::thread::sleep(std::time::Duration::from_millis(300)); // parec connected

    let clip: Vec<f32> = (0..(48_000.0 * TONE_SECS) as usize)
        .map(|i| {
            TONE_AMP * (2.0 * std::f64::consts::PI * TONE_HZ * i as f64 / 48_000.0).sin() as f32
        })
        .collect();
    let t0 = std::time::Instant::now();
    // wait() returns once the last sample has been played, not when it was handed over.
    let playback = play_mono_48k(clip).expect("the default output plays");
    playback.wait().expect("played to the end");
    println!("wait returned after {:?}", t0.elapsed());
    // parec's own latency before it has the end.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let pcm = rec.stop();

    // The tone's length: 10 ms windows above half its level.
    let want_rms = TONE_AMP / 2f32.sqrt();
    let loud = pulse::loud_windows(&pcm, want_rms / 2.0);
    let (first, last) = (loud.first().copied(), loud.last().copied());
    println!(
        "recorded {:.2} s; tone in {} windows of 10 ms, from {first:?} to {last:?}",
        pcm.len() as f64 / 48_000.0,
        loud.len()
    );
    let (Some(first), Some(last)) = (first, last) else {
        panic!("nothing played: {} samples recorded", pcm.len());
    };
    let secs = (last - first + 1) as f64 / 100.0;
    assert!(
        (secs - TONE_SECS).abs() <= 0.1,
        "the tone lasted {secs:.2} s, the clip {TONE_SECS} s"
    );
    assert!(
        loud.len() as f64 >= (secs * 100.0) - 2.0,
        "gaps in the playback: {} loud windows over {secs:.2} s",
        loud.len()
    );
    let mid = &pcm[(first + 20) * 480..(last - 20) * 480];
    let level = AudioLevel::measure(mid);
    let freq = dominant_frequency(mid, 48_000, (500..=1500).step_by(10).map(f64::from)).unwrap();
    println!(
        "tone {freq} Hz, rms {:.3} ({:.1} dBFS)",
        level.rms,
        level.rms_dbfs()
    );
    assert_eq!(freq, TONE_HZ);
    assert!(
        (level.rms - want_rms).abs() < 0.05,
        "rms {} want {want_rms}",
        level.rms
    );

    // The sound server goes away: playing is a clear error, never a hang or a panic.
    drop(pulse);
    let started = std::time::Instant::now();
    match play_mono_48k(vec![0.0; 4_800]).and_then(|p| p.wait()) {
        Ok(()) => panic!("played with no sound server"),
        Err(e) => println!(
            "without the sound server: {e} (after {:?})",
            started.elapsed()
        ),
    }
}
