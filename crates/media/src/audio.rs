//! Audio helpers: resampling to 48 kHz (rubato) and cutting a sample stream into frames.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};

use crate::clock::MediaTime;
use crate::error::{MediaError, Result};
use crate::frame::{AUDIO_RATE, AudioFrame, AudioSamples};

/// Resamples interleaved f32 audio from any rate to 48 kHz (FFT resampler from `rubato`);
/// a pass-through when the input is already 48 kHz.
pub struct Resampler48k {
    inner: Option<Fft<f32>>,
    channels: usize,
    pending: Vec<f32>,
}

fn rs_err(e: impl std::fmt::Display) -> MediaError {
    MediaError::Conversion(format!("resampler: {e}"))
}

impl Resampler48k {
    /// A resampler from `rate` Hz with `channels` interleaved channels.
    pub fn new(rate: u32, channels: u16) -> Result<Self> {
        Self::between(rate, AUDIO_RATE, channels)
    }

    /// A resampler from `rate` Hz to `to` Hz (playback: 48 kHz to what a speaker takes).
    pub fn between(rate: u32, to: u32, channels: u16) -> Result<Self> {
        let inner = if rate == to {
            None
        } else {
            let chunk = (rate as usize / 100).max(1);
            Some(
                Fft::<f32>::new(
                    rate as usize,
                    to as usize,
                    chunk,
                    channels as usize,
                    FixedSync::Input,
                )
                .map_err(rs_err)?,
            )
        };
        Ok(Resampler48k {
            inner,
            channels: channels.max(1) as usize,
            pending: Vec::new(),
        })
    }

    /// Feeds samples; returns the 48 kHz samples ready so far.
    pub fn process(&mut self, input: &[f32]) -> Result<Vec<f32>> {
        let Some(rs) = &mut self.inner else {
            return Ok(input.to_vec());
        };
        self.pending.extend_from_slice(input);
        let mut out = Vec::new();
        loop {
            let need = rs.input_frames_next() * self.channels;
            if self.pending.len() < need {
                break;
            }
            let adapter =
                InterleavedSlice::new(&self.pending[..need], self.channels, need / self.channels)
                    .map_err(rs_err)?;
            let o = rs.process(&adapter, None).map_err(rs_err)?;
            out.extend(o.take_data());
            self.pending.drain(..need);
        }
        Ok(out)
    }

    /// Pushes out what is left (padding with silence).
    pub fn flush(&mut self) -> Result<Vec<f32>> {
        let Some(rs) = &mut self.inner else {
            return Ok(Vec::new());
        };
        if self.pending.is_empty() {
            return Ok(Vec::new());
        }
        let need = rs.input_frames_next() * self.channels;
        let mut buf = std::mem::take(&mut self.pending);
        buf.resize(need, 0.0);
        self.process(&buf)
    }
}

/// Cuts a continuous 48 kHz interleaved stream into [`AudioFrame`]s of `frame_len` samples per
/// channel, timestamping each from the first sample's capture time.
pub struct AudioFramer {
    channels: u16,
    frame_len: usize,
    pending: Vec<f32>,
    pending_pts: Option<MediaTime>,
}

impl AudioFramer {
    /// `frame_len` = 480 (10 ms) or 960 (20 ms).
    pub fn new(channels: u16, frame_len: usize) -> Self {
        AudioFramer {
            channels,
            frame_len,
            pending: Vec::new(),
            pending_pts: None,
        }
    }

    /// Adds samples whose first one was captured at `pts`; returns the complete frames.
    pub fn push(&mut self, samples: &[f32], pts: MediaTime) -> Vec<AudioFrame> {
        if self.pending.is_empty() {
            self.pending_pts = Some(pts);
        }
        self.pending.extend_from_slice(samples);
        let per = self.frame_len * self.channels as usize;
        let mut out = Vec::new();
        let mut consumed = 0;
        while self.pending.len() - consumed >= per {
            let p = self.pending_pts.unwrap_or(pts);
            out.push(AudioFrame {
                sample_rate: AUDIO_RATE,
                channels: self.channels,
                samples: AudioSamples::F32(self.pending[consumed..consumed + per].to_vec()),
                pts: p,
            });
            consumed += per;
            self.pending_pts = Some(MediaTime(
                p.as_micros() + self.frame_len as u64 * 1_000_000 / AUDIO_RATE as u64,
            ));
        }
        self.pending.drain(..consumed);
        out
    }
}

/// Frequency of the strongest component near `candidates` by Goertzel power; also useful to
/// check a captured tone. Returns the candidate with most power.
pub fn dominant_frequency(
    mono: &[f32],
    rate: u32,
    candidates: impl IntoIterator<Item = f64>,
) -> Option<f64> {
    candidates
        .into_iter()
        .map(|f| (f, goertzel_power(mono, rate, f)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(f, _)| f)
}

/// Goertzel power of `freq` in `x`.
pub fn goertzel_power(x: &[f32], rate: u32, freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / rate as f64;
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &v in x {
        let s0 = v as f64 + c * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - c * s1 * s2
}

/// Converts a frame to `channels` (1|2) by averaging or duplicating.
pub fn remix_frame(f: &AudioFrame, channels: u16) -> AudioFrame {
    let src = f.samples.to_f32();
    let in_ch = f.channels.max(1) as usize;
    let mut out = Vec::with_capacity(src.len() / in_ch * channels as usize);
    for fr in src.chunks(in_ch) {
        if channels == 1 {
            out.push(fr.iter().sum::<f32>() / fr.len() as f32);
        } else {
            let l = fr[0];
            let r = fr.get(1).copied().unwrap_or(l);
            out.push(l);
            out.push(r);
        }
    }
    AudioFrame {
        sample_rate: f.sample_rate,
        channels,
        samples: AudioSamples::F32(out),
        pts: f.pts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f64, rate: u32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                (0.5 * (2.0 * std::f64::consts::PI * freq * i as f64 / rate as f64).sin()) as f32
            })
            .collect()
    }

    #[test]
    fn resample_44100_to_48000_keeps_pitch_and_length() {
        let x = sine(1000.0, 44_100, 44_100);
        let mut r = Resampler48k::new(44_100, 1).unwrap();
        let mut y = r.process(&x).unwrap();
        y.extend(r.flush().unwrap());
        assert!((y.len() as i64 - 48_000).abs() < 1000, "{}", y.len());
        let tail = &y[4800..40_000];
        let f = dominant_frequency(tail, 48_000, (900..1100).step_by(10).map(f64::from)).unwrap();
        assert_eq!(f, 1000.0);
        let l = crate::frame::AudioLevel::measure(tail);
        assert!((l.rms - 0.3536).abs() < 0.02, "{}", l.rms);
    }

    #[test]
    fn framer_cuts_and_stamps() {
        let mut f = AudioFramer::new(2, 480);
        assert!(f.push(&vec![0.0; 600], MediaTime(1_000)).is_empty());
        let out = f.push(&vec![0.0; 1400], MediaTime(7_250));
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].pts, MediaTime(1_000));
        assert_eq!(out[1].pts, MediaTime(11_000));
        assert_eq!(out[0].frames(), 480);
    }
}
