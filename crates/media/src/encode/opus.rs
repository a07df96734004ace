//! Opus via libopus (`opus` crate): 48 kHz, 20 ms packets (40 or 60 ms on a narrow uplink).

use bytes::Bytes;
use opus::{Application, Bitrate, Channels};

use super::EncodedAudio;
use crate::clock::MediaTime;
use crate::error::{MediaError, Result, dec_err, enc_err};
use crate::frame::{AUDIO_RATE, AudioFrame, AudioSamples};

/// Samples per channel in one 20 ms Opus frame at 48 kHz.
pub const OPUS_FRAME_SAMPLES: usize = 960;
/// Duration of one Opus frame in µs.
pub const OPUS_FRAME_US: u64 = 20_000;

fn channels(n: u16) -> Result<Channels> {
    match n {
        1 => Ok(Channels::Mono),
        2 => Ok(Channels::Stereo),
        n => Err(MediaError::Geometry(format!(
            "Opus takes 1 or 2 channels, got {n}"
        ))),
    }
}

/// Opus encoder: feed it [`AudioFrame`]s of any length (10 ms or 20 ms from the sources);
/// it emits one [`EncodedAudio`] per complete packet of [`OpusEncoder::set_packet_ms`]
/// (20 ms unless set).
pub struct OpusEncoder {
    enc: opus::Encoder,
    channels: u16,
    pending: Vec<i16>,
    pending_pts: Option<MediaTime>,
    /// packet length in 20 ms frames (1, 2 or 3)
    frames_per_packet: usize,
}

impl OpusEncoder {
    /// A 48 kHz encoder for `channels` (1|2) at `bitrate_bps`, tuned for music/voice
    /// (`Application::Audio`), in-band FEC on.
    pub fn new(channels_n: u16, bitrate_bps: u32) -> Result<Self> {
        let mut enc = opus::Encoder::new(AUDIO_RATE, channels(channels_n)?, Application::Audio)
            .map_err(|e| enc_err("opus", e))?;
        enc.set_bitrate(Bitrate::Bits(bitrate_bps as i32))
            .map_err(|e| enc_err("opus", e))?;
        enc.set_inband_fec(true).map_err(|e| enc_err("opus", e))?;
        Ok(OpusEncoder {
            enc,
            channels: channels_n,
            pending: Vec::with_capacity(OPUS_FRAME_SAMPLES * 2 * 2),
            pending_pts: None,
            frames_per_packet: 1,
        })
    }

    /// Channel count.
    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Tells the encoder how much loss to expect (0–100 %). libopus adds in-band FEC (a
    /// low-rate copy of the previous frame) only when this is above zero, so a receiver that
    /// lost a packet decodes it from the next one instead of concealing 20 ms.
    ///
    /// libopus protects only its SILK layer, and keeps music-like sound (a tone, a
    /// guitar) in CELT, which has no FEC. So while loss is expected the signal is declared
    /// voice, which keeps SILK in every packet (hybrid, still full band at 48 kbit/s); with
    /// no loss the encoder chooses freely again.
    pub fn set_expected_loss(&mut self, percent: u8) -> Result<()> {
        let percent = percent.min(100);
        let signal = if percent > 0 {
            opus::Signal::Voice
        } else {
            opus::Signal::Auto
        };
        self.enc
            .set_signal(signal)
            .and_then(|()| self.enc.set_packet_loss_perc(i32::from(percent)))
            .map_err(|e| enc_err("opus", e))
    }

    /// Changes the bitrate at runtime.
    pub fn set_bitrate(&mut self, bps: u32) -> Result<()> {
        self.enc
            .set_bitrate(Bitrate::Bits(bps as i32))
            .map_err(|e| enc_err("opus", e))
    }

    /// Packet length from the next packet on: 20, 40 or 60 ms (others round to these).
    /// Every packet carries 40 bytes of IP, UDP and RTP headers whatever its length, so
    /// at 50 packets a second the headers alone cost 16 kbit/s or more; libwebrtc's audio
    /// network adaptor lengthens packets on a narrow uplink for the same reason.
    pub fn set_packet_ms(&mut self, ms: u32) {
        self.frames_per_packet = (ms.div_ceil(20) as usize).clamp(1, 3);
    }

    /// The packet length, ms.
    pub fn packet_ms(&self) -> u32 {
        self.frames_per_packet as u32 * 20
    }

    /// Adds a frame; returns the packets completed by it (0, 1 or more).
    pub fn push(&mut self, frame: &AudioFrame) -> Result<Vec<EncodedAudio>> {
        if frame.sample_rate != AUDIO_RATE || frame.channels != self.channels {
            return Err(enc_err(
                "opus",
                format!(
                    "expects {} Hz x{}, got {} Hz x{}",
                    AUDIO_RATE, self.channels, frame.sample_rate, frame.channels
                ),
            ));
        }
        if self.pending.is_empty() {
            self.pending_pts = Some(frame.pts);
        }
        match &frame.samples {
            AudioSamples::I16(v) => self.pending.extend_from_slice(v),
            AudioSamples::F32(v) => self
                .pending
                .extend(v.iter().map(|&s| crate::frame::f32_to_i16(s))),
        }
        let per = OPUS_FRAME_SAMPLES * self.frames_per_packet * self.channels as usize;
        let packet_us = OPUS_FRAME_US * self.frames_per_packet as u64;
        let mut out = Vec::new();
        let mut consumed = 0;
        while self.pending.len() - consumed >= per {
            let pts = self.pending_pts.unwrap_or(frame.pts);
            let data = self
                .enc
                .encode_vec(&self.pending[consumed..consumed + per], 4000)
                .map_err(|e| enc_err("opus", e))?;
            out.push(EncodedAudio {
                data: Bytes::from(data),
                pts,
                duration_us: packet_us,
            });
            consumed += per;
            self.pending_pts = Some(pts.plus(std::time::Duration::from_micros(packet_us)));
        }
        self.pending.drain(..consumed);
        Ok(out)
    }
}

/// Turns the receivers' reported loss into Opus's expected-loss setting.
///
/// Receiver reports are noisy (one lost packet in a 5 s report is 1 %), and every change
/// re-tunes the encoder, so the measured fraction is smoothed and mapped onto a few levels,
/// with a margin before leaving one: the same shape as libwebrtc's Opus wrapper.
#[derive(Debug, Default, Clone)]
pub struct ExpectedLoss {
    smoothed: Option<f32>,
    level: u8,
}

impl ExpectedLoss {
    /// The levels (percent) the encoder is told, lowest first.
    const LEVELS: [u8; 5] = [0, 1, 5, 10, 20];
    /// Weight of a new report in the smoothed fraction.
    const ALPHA: f32 = 0.3;
    /// How far (as a fraction of the level) the loss must go past a level to change it.
    const MARGIN: f32 = 0.2;

    /// The current level, percent.
    pub fn percent(&self) -> u8 {
        self.level
    }

    /// Takes a reported loss fraction (0..1); the new level when it changes.
    pub fn update(&mut self, fraction: f32) -> Option<u8> {
        if !fraction.is_finite() {
            return None;
        }
        let f = fraction.clamp(0.0, 1.0);
        let s = match self.smoothed {
            None => f,
            Some(s) => s + Self::ALPHA * (f - s),
        };
        self.smoothed = Some(s);
        let pct = s * 100.0;
        // Highest level whose threshold the loss clears; going up needs the level plus a
        // margin, staying needs the level minus one.
        let level = Self::LEVELS
            .iter()
            .copied()
            .filter(|&l| {
                let l = f32::from(l);
                let margin = l * Self::MARGIN;
                if l <= f32::from(self.level) {
                    pct >= l - margin
                } else {
                    pct >= l + margin
                }
            })
            .max()
            .unwrap_or(0);
        (level != self.level).then(|| {
            self.level = level;
            level
        })
    }
}

/// Opus decoder to interleaved i16 at 48 kHz.
pub struct OpusDecoder {
    dec: opus::Decoder,
    channels: u16,
}

impl OpusDecoder {
    /// A 48 kHz decoder for `channels` (1|2).
    pub fn new(channels_n: u16) -> Result<Self> {
        let dec = opus::Decoder::new(AUDIO_RATE, channels(channels_n)?)
            .map_err(|e| dec_err("opus", e))?;
        Ok(OpusDecoder {
            dec,
            channels: channels_n,
        })
    }

    /// Decodes one packet into an [`AudioFrame`] stamped `pts`.
    pub fn decode(&mut self, packet: &[u8], pts: MediaTime) -> Result<AudioFrame> {
        let mut buf = vec![0i16; 5760 * self.channels as usize];
        let n = self
            .dec
            .decode(packet, &mut buf, false)
            .map_err(|e| dec_err("opus", e))?;
        buf.truncate(n * self.channels as usize);
        Ok(AudioFrame {
            sample_rate: AUDIO_RATE,
            channels: self.channels,
            samples: AudioSamples::I16(buf),
            pts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ExpectedLoss;

    #[test]
    fn expected_loss_steps_through_levels_with_a_margin() {
        let mut e = ExpectedLoss::default();
        assert_eq!(e.update(0.0), None);
        assert_eq!(e.update(f32::NAN), None);
        // 1 % is not past the 1 % level's margin; 5 % at once is.
        assert_eq!(e.update(0.011), None);
        let mut e = ExpectedLoss::default();
        assert_eq!(e.update(0.05), Some(1), "5 % is not past 5 % + margin");
        assert_eq!(e.update(0.10), Some(5), "smoothed 6.5 %");
        // A report of 4.5 % keeps 5 % (margin below), a long run of 1 % leaves it.
        let mut e = ExpectedLoss::default();
        e.update(0.07);
        assert_eq!(e.percent(), 5);
        assert_eq!(e.update(0.045), None);
        let mut steps = Vec::new();
        for _ in 0..20 {
            steps.extend(e.update(0.0));
        }
        assert_eq!(steps, vec![1, 0], "down one level at a time, to 0");
        // Out-of-range reports are clamped.
        let mut e = ExpectedLoss::default();
        assert_eq!(e.update(3.0), Some(20));
    }
}
