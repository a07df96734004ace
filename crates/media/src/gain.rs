//! Automatic gain for a microphone: WebRTC's AudioProcessing gain control (AGC1 in adaptive
//! digital mode, with its limiter), as browsers apply to `getUserMedia` audio, so a quiet
//! voice reaches viewers at a speaking level and a loud one does not clip.
//!
//! On Linux it links Debian's `libwebrtc-audio-processing` (0.3) through the
//! `webrtc-audio-processing` crate. Other platforms would need that library built
//! (the crate's `bundled` feature, autotools); until then [`AutoGain::new`] says so and the
//! audio goes out untouched.
//!
//! Echo cancellation is not used: the studio plays nothing while live (the mic check is
//! refused on air), so there is no far-end signal for it to remove.

use crate::error::{MediaError, Result};
use crate::reblock::Reblocker;

/// What AudioProcessing works on: 10 ms at 48 kHz.
const FRAME: usize = 480;

/// Levels towards about −9 dBFS peaks (target 3 dB below full scale plus up to 9 dB of
/// compression gain), as libwebrtc's defaults for capture do.
#[cfg(target_os = "linux")]
mod imp {
    use webrtc_audio_processing::{
        Config, GainControl, GainControlMode, InitializationConfig, Processor,
    };

    use super::*;

    pub struct Agc(Processor);

    impl Agc {
        pub fn new() -> Result<Self> {
            let init = InitializationConfig {
                num_capture_channels: 1,
                num_render_channels: 1,
                ..Default::default()
            };
            let mut p = Processor::new(&init)
                .map_err(|e| MediaError::Device(format!("automatic gain: {e:?}")))?;
            p.set_config(Config {
                gain_control: Some(GainControl {
                    mode: GainControlMode::AdaptiveDigital,
                    target_level_dbfs: 3,
                    compression_gain_db: 9,
                    enable_limiter: true,
                }),
                ..Default::default()
            });
            Ok(Agc(p))
        }

        pub fn process(&mut self, frame: &mut [f32]) -> Result<()> {
            self.0
                .process_capture_frame(frame)
                .map_err(|e| MediaError::Device(format!("automatic gain: {e:?}")))
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::*;

    pub struct Agc;

    impl Agc {
        pub fn new() -> Result<Self> {
            Err(MediaError::Device(
                "automatic gain needs libwebrtc-audio-processing, not built for this platform yet"
                    .into(),
            ))
        }

        pub fn process(&mut self, _frame: &mut [f32]) -> Result<()> {
            Ok(())
        }
    }
}

/// Automatic gain on 48 kHz mono audio, any block length (like the noise suppressor it
/// keeps what does not fill 10 ms for the next call, so its output lags by < 10 ms).
pub struct AutoGain {
    agc: imp::Agc,
    frames: Reblocker,
}

impl std::fmt::Debug for AutoGain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AutoGain").finish_non_exhaustive()
    }
}

impl AutoGain {
    /// Fails where the library is not available (see the module docs).
    pub fn new() -> Result<Self> {
        Ok(AutoGain {
            agc: imp::Agc::new()?,
            frames: Reblocker::new(FRAME),
        })
    }

    /// Replaces `samples` (48 kHz mono, [-1, 1]) with as many gain-controlled samples.
    pub fn process(&mut self, samples: &mut [f32]) -> Result<()> {
        let agc = &mut self.agc;
        self.frames.process(samples, |frame| agc.process(frame))
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::frame::AudioLevel;

    /// `secs` of a voice-like signal (a 200 Hz buzz with harmonics, syllables of 200 ms
    /// with 100 ms gaps) at `rms` (linear), through the gain; the output's RMS over the
    /// last second's syllables and its peak.
    fn through(rms: f32, secs: f32) -> (f32, f32) {
        let mut agc = AutoGain::new().unwrap();
        let n = (48_000.0 * secs) as usize;
        let voice: Vec<f32> = (0..n)
            .map(|i| {
                let t = i as f32 / 48_000.0;
                let on = (t % 0.3) < 0.2;
                let buzz = (1..=5)
                    .map(|k| (2.0 * std::f32::consts::PI * 200.0 * k as f32 * t).sin() / k as f32)
                    .sum::<f32>();
                if on { buzz * rms / 0.88 } else { 0.0 }
            })
            .collect();
        let mut out = Vec::with_capacity(n);
        for block in voice.chunks(960) {
            let mut b = block.to_vec();
            agc.process(&mut b).unwrap();
            out.extend(b);
        }
        let last = &out[n - 48_000..];
        let l = AudioLevel::measure(last);
        (l.rms, l.peak)
    }

    fn db(v: f32) -> f32 {
        20.0 * v.max(1e-9).log10()
    }

    /// Measured (6 s of buzz syllables): −50.5 → −41.3, −40.0 → −30.8, −30.5 → −21.3,
    /// −20.0 → −17.7, −10.5 → −11.6 dBFS RMS; the loudest peak −3.8 dBFS.
    #[test]
    fn a_quiet_voice_is_raised_and_a_loud_one_is_not_pushed_into_clipping() {
        let (quiet, _) = through(0.01, 6.0);
        assert!(
            db(quiet) - db(0.01) >= 6.0,
            "−40 dBFS came out at {:.1} dBFS",
            db(quiet)
        );
        let (loud, peak) = through(0.3, 6.0);
        assert!(
            db(loud) <= db(0.3) + 1.0 && db(peak) <= -1.0,
            "−10.5 dBFS came out at {:.1} dBFS, peak {:.1} dBFS",
            db(loud),
            db(peak)
        );
    }

    #[test]
    fn any_block_length_comes_back_as_long() {
        let mut agc = AutoGain::new().unwrap();
        for len in [1usize, 7, 480, 960, 1234] {
            let mut b = vec![0.1f32; len];
            agc.process(&mut b).unwrap();
            assert_eq!(b.len(), len);
        }
    }
}
