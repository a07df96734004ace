//! Encoders (H.264, VP8, Opus), their decoders, and the simulcast layer notion.

use bytes::Bytes;

use crate::clock::MediaTime;
use crate::error::Result;
use crate::frame::VideoFrame;

pub mod h264;
pub mod opus;
pub mod vp8;

pub use h264::{H264Decoder, H264Encoder};
pub use opus::{OpusDecoder, OpusEncoder};
pub use vp8::{Vp8Decoder, Vp8Encoder};

/// One encoded video frame (access unit).
#[derive(Clone, Debug)]
pub struct EncodedVideo {
    /// H.264: Annex-B byte stream (start codes, SPS/PPS before every IDR), one access unit;
    /// VP8: one compressed frame.
    pub data: Bytes,
    /// true for an IDR / key frame
    pub keyframe: bool,
    /// capture time of the source frame
    pub pts: MediaTime,
    /// encoded width
    pub width: u32,
    /// encoded height
    pub height: u32,
}

/// One encoded audio packet.
#[derive(Clone, Debug)]
pub struct EncodedAudio {
    /// one Opus packet
    pub data: Bytes,
    /// capture time of the first sample
    pub pts: MediaTime,
    /// duration in microseconds (20 000 for the 20 ms frames used here)
    pub duration_us: u64,
}

/// Video codecs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// H.264 constrained baseline (openh264)
    H264,
    /// VP8 (libvpx)
    Vp8,
}

impl VideoCodec {
    /// MIME type as used in SDP / LiveKit (`video/H264`, `video/VP8`).
    pub fn mime(self) -> &'static str {
        match self {
            VideoCodec::H264 => "video/H264",
            VideoCodec::Vp8 => "video/VP8",
        }
    }
}

/// Simulcast quality, as LiveKit names it (rids `q`, `h`, `f`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Quality {
    /// quarter size (320×180 for 720p input), rid `q`
    Low,
    /// half size (640×360 for 720p input), rid `h`
    Medium,
    /// full size (1280×720 for 720p input), rid `f`
    High,
}

impl Quality {
    /// The simulcast rid.
    pub fn rid(self) -> &'static str {
        match self {
            Quality::Low => "q",
            Quality::Medium => "h",
            Quality::High => "f",
        }
    }
    /// Downscale divisor against the source size.
    pub fn divisor(self) -> u32 {
        match self {
            Quality::Low => 4,
            Quality::Medium => 2,
            Quality::High => 1,
        }
    }
}

/// One simulcast layer: its quality, size and target bitrate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layer {
    /// quality / rid
    pub quality: Quality,
    /// encoded width (even)
    pub width: u32,
    /// encoded height (even)
    pub height: u32,
    /// target bitrate, bits per second
    pub bitrate_bps: u32,
}

impl Layer {
    /// The usual simulcast ladder for a source of `width × height`: LOW (÷4), MEDIUM (÷2),
    /// HIGH (full), with bitrates scaled from 150 kbps / 500 kbps / 1.7 Mbps at 720p.
    /// Layers that would be smaller than 160 pixels wide are left out.
    pub fn ladder(width: u32, height: u32) -> Vec<Layer> {
        let pixels720 = 1280.0 * 720.0;
        let scale = (width as f64 * height as f64) / pixels720;
        [
            (Quality::Low, 150_000.0),
            (Quality::Medium, 500_000.0),
            (Quality::High, 1_700_000.0),
        ]
        .into_iter()
        .filter_map(|(q, br)| {
            let d = q.divisor();
            let (w, h) = ((width / d) & !1, (height / d) & !1);
            (w >= 160 || q == Quality::High).then_some(Layer {
                quality: q,
                width: w,
                height: h,
                bitrate_bps: (br * scale).max(60_000.0) as u32,
            })
        })
        .collect()
    }
}

/// Settings of a video encoder.
#[derive(Clone, Copy, Debug)]
pub struct VideoEncoderConfig {
    /// encoded width (even)
    pub width: u32,
    /// encoded height (even)
    pub height: u32,
    /// nominal frame rate
    pub fps: f32,
    /// target bitrate, bits per second
    pub bitrate_bps: u32,
    /// a key frame at least every this many frames (0: only on request and at start)
    pub keyframe_interval: u32,
}

impl VideoEncoderConfig {
    /// A config with a 2 s key-frame interval.
    pub fn new(width: u32, height: u32, fps: f32, bitrate_bps: u32) -> Self {
        VideoEncoderConfig {
            width,
            height,
            fps,
            bitrate_bps,
            keyframe_interval: (fps * 2.0).round() as u32,
        }
    }
}

/// A video encoder: one instance per simulcast layer. Not thread-safe by itself; run it on its
/// own (encoder) thread.
pub trait VideoEncoder: Send {
    /// The codec.
    fn codec(&self) -> VideoCodec;
    /// Encodes one frame (scaled to the configured size first if needed). `None` when the
    /// encoder skipped the frame (rate control).
    fn encode(&mut self, frame: &VideoFrame, force_keyframe: bool) -> Result<Option<EncodedVideo>>;
    /// Changes the target bitrate at runtime.
    fn set_bitrate(&mut self, bps: u32) -> Result<()>;
    /// The current configuration.
    fn config(&self) -> VideoEncoderConfig;
}

/// Creates an encoder of `codec`.
pub fn new_video_encoder(
    codec: VideoCodec,
    config: VideoEncoderConfig,
) -> Result<Box<dyn VideoEncoder>> {
    Ok(match codec {
        VideoCodec::H264 => Box::new(H264Encoder::new(config)?),
        VideoCodec::Vp8 => Box::new(Vp8Encoder::new(config)?),
    })
}

/// A video decoder to I420 (for tests and the `watch` command).
pub trait VideoDecoder: Send {
    /// Decodes one access unit / frame; `None` if it produced no picture yet.
    fn decode(&mut self, data: &[u8], pts: MediaTime) -> Result<Option<VideoFrame>>;
}

/// Creates a decoder of `codec`.
pub fn new_video_decoder(codec: VideoCodec) -> Result<Box<dyn VideoDecoder>> {
    Ok(match codec {
        VideoCodec::H264 => Box::new(H264Decoder::new()?),
        VideoCodec::Vp8 => Box::new(Vp8Decoder::new()?),
    })
}

/// Scales the frame to the encoder's size when they differ (no copy when equal).
pub(crate) fn fit(frame: &VideoFrame, cfg: &VideoEncoderConfig) -> Result<VideoFrame> {
    crate::convert::scale_i420(frame, cfg.width, cfg.height)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladder_for_720p() {
        let l = Layer::ladder(1280, 720);
        let sizes: Vec<_> = l.iter().map(|l| (l.quality, l.width, l.height)).collect();
        assert_eq!(
            sizes,
            vec![
                (Quality::Low, 320, 180),
                (Quality::Medium, 640, 360),
                (Quality::High, 1280, 720)
            ]
        );
        assert_eq!(Layer::ladder(480, 270).len(), 2);
        assert_eq!(Quality::Medium.rid(), "h");
    }
}
