//! The mic check through the session: `Command::MicCheck` records 3 s of the audio source
//! as it would go out and plays it on the default output, a user-space PulseAudio daemon's
//! null sink here, recorded from its monitor with `parec`. Skips (with a printed reason)
//! only when `pulseaudio` is not installed.

use std::time::Duration;

use anyhow::{Context, Result};
use streamit_media::AudioLevel;
use streamit_media::audio::dominant_frequency;
use streamit_session::{
    AudioSourceSpec, Command, MicCheck, SessionConfig, SessionHandle, VideoSourceSpec,
};

#[path = "../../media/tests/common/pulse.rs"]
mod pulse;
use pulse::Pulse;

const TONE_HZ: f64 = 1000.0;
const TONE_AMP: f64 = 0.5;

fn write_tone(path: &std::path::Path, secs: f64) -> Result<()> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 48_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec)?;
    for i in 0..(48_000.0 * secs) as usize {
        let s = TONE_AMP * (std::f64::consts::TAU * TONE_HZ * i as f64 / 48_000.0).sin();
        w.write_sample((s * 32767.0) as i16)?;
    }
    w.finalize()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mic_check_records_three_seconds_and_plays_them_back() -> Result<()> {
    if !pulse::installed() {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let pulse = Pulse::start(
        dir.path(),
        &["module-null-sink sink_name=speaker rate=48000 channels=2".into()],
    );
    let home = dir.path().join("home");
    pulse.route_alsa_default(&home, "speaker");
    // SAFETY: set before the session or any other thread of this one-test binary starts.
    unsafe {
        std::env::set_var("HOME", &home);
        std::env::set_var("PULSE_SERVER", format!("unix:{}", pulse.socket));
    }
    let wav = dir.path().join("tone.wav");
    write_tone(&wav, 5.0)?;

    // No backend is needed before login: nothing here calls it.
    let mut config = SessionConfig::new("http://127.0.0.1:9");
    config.audio = AudioSourceSpec::Wav(wav);
    config.video = VideoSourceSpec::Synthetic {
        width: 160,
        height: 90,
        fps: 15,
    };
    let session = SessionHandle::spawn(config);
    let mut states = session.subscribe();
    session.request(Command::StartPreview).await?;

    session.request(Command::MicCheck).await?;
    let mut seen = Vec::new();
    // The speaker's recorder starts near the end of the 3 s, so its file holds the
    // playback and little else.
    let mut rec = None;
    let outcome = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let check = states.borrow_and_update().mic_check.clone();
            let step = match &check {
                MicCheck::Listening(_) => "listening",
                MicCheck::Playing { .. } => "playing",
                MicCheck::Done { .. } => "done",
                MicCheck::Failed(_) => "failed",
                MicCheck::Idle => "idle",
            };
            if seen.last() != Some(&step) {
                seen.push(step);
            }
            if rec.is_none() && matches!(check, MicCheck::Listening(s) if s >= 0.8) {
                rec = Some(pulse.record("speaker.monitor", &dir.path().join("speaker.f32")));
            }
            if matches!(check, MicCheck::Done { .. } | MicCheck::Failed(_)) {
                return check;
            }
            if states.changed().await.is_err() {
                return MicCheck::Failed("the session ended".into());
            }
        }
    })
    .await
    .context("no end of the mic check within 30 s")?;
    println!("mic check went {seen:?}, ended {outcome:?}");
    let MicCheck::Done { peak_dbfs } = outcome else {
        panic!("the mic check did not play back: {outcome:?}");
    };
    // The clip's loudest 50 ms is the tone's level (−9 dBFS).
    let want_dbfs = 20.0 * (TONE_AMP / 2f64.sqrt()).log10();
    assert!(
        (peak_dbfs as f64 - want_dbfs).abs() < 1.0,
        "peak {peak_dbfs:.1} dBFS, the tone is {want_dbfs:.1}"
    );
    assert_eq!(seen, ["listening", "playing", "done"], "steps");

    let pcm = rec.context("the speaker was never recorded")?.stop();
    let want_rms = (TONE_AMP / 2f64.sqrt()) as f32;
    let loud = pulse::loud_windows(&pcm, want_rms / 2.0);
    let (Some(&first), Some(&last)) = (loud.first(), loud.last()) else {
        panic!("nothing came out of the speaker ({} samples)", pcm.len());
    };
    let secs = (last - first + 1) as f64 / 100.0;
    println!(
        "recorded {:.2} s; the tone in {} windows of 10 ms, {first} to {last}",
        pcm.len() as f64 / 48_000.0,
        loud.len()
    );
    let mid = &pcm[(first + 20) * 480..(last - 20) * 480];
    let freq = dominant_frequency(mid, 48_000, (500..=1500).step_by(10).map(f64::from))
        .context("no tone")?;
    let level = AudioLevel::measure(mid);
    println!(
        "the speaker played {secs:.2} s of {freq} Hz at {:.1} dBFS",
        level.rms_dbfs()
    );
    assert!(
        (secs - 3.0).abs() <= 0.1,
        "played {secs:.2} s, the check is 3 s"
    );
    assert_eq!(freq, TONE_HZ);
    assert!((level.rms - want_rms).abs() < 0.05, "rms {}", level.rms);

    // With no audio source there is nothing to check: a clear state, not a hang.
    session
        .request(Command::SelectAudioSource(AudioSourceSpec::None))
        .await?;
    session.request(Command::MicCheck).await?;
    let check = session.state().mic_check;
    assert!(
        matches!(&check, MicCheck::Failed(why) if why.contains("no audio source")),
        "{check:?}"
    );
    session.request(Command::Shutdown).await.ok();
    drop(pulse);
    Ok(())
}
