//! Noise suppression for a microphone: RNNoise (`nnnoiseless`, pure Rust) on the 48 kHz
//! mono frames the audio thread already makes, so fans, hum and keyboard clatter do not
//! reach viewers and the level meter shows what they will hear.

use nnnoiseless::DenoiseState;

use crate::AUDIO_RATE;
use crate::reblock::Reblocker;

/// RNNoise's frame: 10 ms at 48 kHz.
const FRAME: usize = DenoiseState::FRAME_SIZE;

/// RNNoise works on 16-bit sample values held in floats.
const SCALE: f32 = 32_768.0;

/// Suppresses stationary noise in 48 kHz mono audio, any block length (it keeps what does
/// not fill a 10 ms frame for the next call, so its output lags its input by < 10 ms).
pub struct NoiseSuppressor {
    state: Box<DenoiseState<'static>>,
    frames: Reblocker,
    /// RNNoise's voice probability of the last frame.
    voice: f32,
}

impl std::fmt::Debug for NoiseSuppressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoiseSuppressor")
            .field("voice", &self.voice)
            .finish_non_exhaustive()
    }
}

impl Default for NoiseSuppressor {
    fn default() -> Self {
        Self::new()
    }
}

impl NoiseSuppressor {
    /// The sample rate it works at (the pipeline's own).
    pub const RATE: u32 = AUDIO_RATE;

    pub fn new() -> Self {
        NoiseSuppressor {
            state: DenoiseState::new(),
            frames: Reblocker::new(FRAME),
            voice: 0.0,
        }
    }

    /// Replaces `samples` (48 kHz mono, [-1, 1]) with the same number of denoised samples.
    pub fn process(&mut self, samples: &mut [f32]) {
        let (state, voice) = (&mut self.state, &mut self.voice);
        let (mut input, mut out) = ([0.0f32; FRAME], [0.0f32; FRAME]);
        let _ = self
            .frames
            .process(samples, |frame| -> Result<(), std::convert::Infallible> {
                for (i, s) in input.iter_mut().zip(frame.iter()) {
                    *i = s * SCALE;
                }
                *voice = state.process_frame(&mut out, &input);
                for (s, o) in frame.iter_mut().zip(out.iter()) {
                    *s = o / SCALE;
                }
                Ok(())
            });
    }

    /// How likely the last 10 ms held a voice, 0..1 (RNNoise's own estimate).
    pub fn voice_probability(&self) -> f32 {
        self.voice
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rms(v: &[f32]) -> f32 {
        (v.iter().map(|s| s * s).sum::<f32>() / v.len().max(1) as f32).sqrt()
    }

    /// Seeded fan-like noise (white noise through a one-pole low-pass) at about -25 dBFS,
    /// or mains hum (50 Hz and its third harmonic over a little hiss) at about -26 dBFS.
    fn background(kind: &str, n: usize, seed: &mut u32, t: &mut usize, lp: &mut f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let white = ((*seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 2.0;
                *t += 1;
                let x = *t as f32 / 48_000.0;
                let tau = std::f32::consts::TAU;
                match kind {
                    "fan" => {
                        *lp = 0.97 * *lp + 0.03 * white;
                        *lp * 0.8
                    }
                    _ => {
                        0.06 * (tau * 50.0 * x).sin()
                            + 0.03 * (tau * 150.0 * x).sin()
                            + 0.01 * white
                    }
                }
            })
            .collect()
    }

    /// 3 s to settle, then 3 s measured, in the pipeline's 20 ms blocks: dB taken off.
    fn suppression_db(kind: &str) -> (f32, f32) {
        let mut ns = NoiseSuppressor::new();
        let (mut seed, mut t, mut lp) = (7, 0, 0.0);
        let mut before = Vec::new();
        let mut after = Vec::new();
        for block in 0..300 {
            let mut b = background(kind, 960, &mut seed, &mut t, &mut lp);
            if block >= 150 {
                before.extend_from_slice(&b);
            }
            ns.process(&mut b);
            if block >= 150 {
                after.extend_from_slice(&b);
            }
        }
        (
            20.0 * rms(&before).log10(),
            20.0 * (rms(&after) / rms(&before)).log10(),
        )
    }

    /// Measured here: fan noise 53 dB down, hum 53 dB down (at -25 dBFS). Flat white
    /// noise is another matter: RNNoise takes only 1-19 dB off it, depending on level.
    #[test]
    fn fan_noise_and_hum_are_pushed_down_by_more_than_30_db() {
        for kind in ["fan", "hum"] {
            let (level, db) = suppression_db(kind);
            assert!(level > -30.0, "{kind}: the input is loud: {level:.1} dBFS");
            assert!(db < -30.0, "{kind}: only {db:.1} dB down");
        }
    }

    /// Seeded white noise, any length.
    fn noise(n: usize, seed: &mut u32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((*seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 0.35
            })
            .collect()
    }

    #[test]
    fn every_block_comes_back_with_its_length_in_range() {
        let mut ns = NoiseSuppressor::new();
        let mut seed = 3;
        for len in [960, 1, 479, 480, 481, 2000, 0] {
            let mut b = noise(len, &mut seed);
            b.iter_mut().for_each(|s| *s *= 8.0); // clipping input stays in range
            ns.process(&mut b);
            assert_eq!(b.len(), len);
            assert!(b.iter().all(|s| s.is_finite() && (-1.0..=1.0).contains(s)));
        }
        assert!((0.0..=1.0).contains(&ns.voice_probability()));
    }
}
