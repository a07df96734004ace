//! Opus via libopus (`opus` crate): 48 kHz, 20 ms packets.

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
/// it emits one [`EncodedAudio`] per complete 20 ms.
pub struct OpusEncoder {
    enc: opus::Encoder,
    channels: u16,
    pending: Vec<i16>,
    pending_pts: Option<MediaTime>,
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
        })
    }

    /// Channel count.
    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Changes the bitrate at runtime.
    pub fn set_bitrate(&mut self, bps: u32) -> Result<()> {
        self.enc
            .set_bitrate(Bitrate::Bits(bps as i32))
            .map_err(|e| enc_err("opus", e))
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
        let per = OPUS_FRAME_SAMPLES * self.channels as usize;
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
                duration_us: OPUS_FRAME_US,
            });
            consumed += per;
            self.pending_pts = Some(pts.plus(std::time::Duration::from_micros(OPUS_FRAME_US)));
        }
        self.pending.drain(..consumed);
        Ok(out)
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
