//! Encoders (H.264, VP8, Opus), their decoders, and the simulcast layer notion.

use bytes::Bytes;

use crate::clock::MediaTime;
use crate::error::Result;
use crate::frame::VideoFrame;

pub mod h264;
pub mod opus;
pub mod simulcast;
pub mod vp8;

pub use h264::{H264Decoder, H264Encoder};
pub use opus::{ExpectedLoss, OpusDecoder, OpusEncoder};
pub use simulcast::{LayerFrame, SimulcastEncoder};
pub use vp8::{Vp8Decoder, Vp8Encoder, Vp8Simulcast};

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
    /// The quantiser below which a frame is of high quality with room to spare:
    /// libwebrtc's quality scaler thresholds (openh264's 0–51 scale, libvpx's 0–127).
    pub fn low_qp(self) -> u32 {
        match self {
            VideoCodec::Vp8 => 29,
            VideoCodec::H264 => 24,
        }
    }

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
    /// Nominal downscale divisor against the source size (LOW ÷4, MEDIUM ÷2); the real
    /// sizes come from [`Layer::ladder`].
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

/// A LiveKit video preset: a size and the bitrate its publisher uses for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Preset {
    width: u32,
    height: u32,
    bitrate_bps: u32,
}

const fn preset(width: u32, height: u32, bitrate_bps: u32) -> Preset {
    Preset {
        width,
        height,
        bitrate_bps,
    }
}

/// LiveKit's 16:9 camera presets (client SDKs' `VideoPresets`): size → bitrate.
const PRESETS_16_9: [Preset; 9] = [
    preset(160, 90, 90_000),
    preset(320, 180, 160_000),
    preset(384, 216, 180_000),
    preset(640, 360, 450_000),
    preset(960, 540, 800_000),
    preset(1280, 720, 1_700_000),
    preset(1920, 1080, 3_000_000),
    preset(2560, 1440, 5_000_000),
    preset(3840, 2160, 8_000_000),
];

/// LiveKit's 4:3 camera presets (`VideoPresets43`).
const PRESETS_4_3: [Preset; 7] = [
    preset(120, 90, 70_000),
    preset(240, 180, 125_000),
    preset(320, 240, 140_000),
    preset(480, 360, 330_000),
    preset(720, 540, 600_000),
    preset(960, 720, 1_300_000),
    preset(1440, 1080, 2_300_000),
];

/// The preset table nearest to the source's aspect ratio.
fn presets_for(width: u32, height: u32) -> &'static [Preset] {
    let (long, short) = (width.max(height) as f64, width.min(height).max(1) as f64);
    let aspect = long / short;
    if (aspect - 16.0 / 9.0).abs() < (aspect - 4.0 / 3.0).abs() {
        &PRESETS_16_9
    } else {
        &PRESETS_4_3
    }
}

/// The bitrate LiveKit's publishers use for a `width × height` camera track: that of the
/// smallest preset at least as wide as the source's long side (the largest preset beyond).
pub fn preset_bitrate(width: u32, height: u32) -> u32 {
    let presets = presets_for(width, height);
    let long = width.max(height);
    presets
        .iter()
        .find(|p| p.width >= long)
        .or(presets.last())
        .map_or(1_700_000, |p| p.bitrate_bps)
}

impl Layer {
    /// The simulcast ladder LiveKit's publishers use for a camera source of
    /// `width × height`, low → high:
    /// - long side ≥ 960 (540p and up): the 180p and 360p presets under the full size
    ///   (1280×720 → 320×180, 640×360, 1280×720; 1920×1080 → 320×180, 640×360, 1920×1080);
    /// - long side ≥ 480: the 180p preset under the full size (640×360 → 320×180, 640×360);
    /// - smaller: the full size alone.
    ///
    /// Bitrates are the presets' (the full size gets [`preset_bitrate`]). The full size is
    /// always [`Quality::High`]; with two layers the small one is [`Quality::Low`].
    /// Lower layers keep the source's aspect ratio (the preset's short side, even sizes).
    pub fn ladder(width: u32, height: u32) -> Vec<Layer> {
        let (width, height) = (width & !1, height & !1);
        let presets = presets_for(width, height);
        let long = width.max(height);
        let short = width.min(height).max(2);
        // presets[1] is 180p, presets[3] is 360p in both tables
        let below: Vec<(Quality, Preset)> = if long >= 960 {
            vec![(Quality::Low, presets[1]), (Quality::Medium, presets[3])]
        } else if long >= 480 {
            vec![(Quality::Low, presets[1])]
        } else {
            Vec::new()
        };
        let mut layers: Vec<Layer> = below
            .into_iter()
            .filter_map(|(quality, p)| {
                let p_short = p.width.min(p.height);
                if p_short >= short {
                    return None;
                }
                // scale both sides by short/p_short, as a browser does with
                // scaleResolutionDownBy
                let scale = |v: u32| ((v as u64 * p_short as u64 / short as u64) as u32) & !1;
                Some(Layer {
                    quality,
                    width: scale(width).max(2),
                    height: scale(height).max(2),
                    bitrate_bps: p.bitrate_bps,
                })
            })
            .collect();
        layers.push(Layer {
            quality: Quality::High,
            width,
            height,
            bitrate_bps: preset_bitrate(width, height),
        });
        layers
    }
}

/// What the picture is, as the W3C `contentHint` says it: a camera's picture is `Motion`
/// (smooth movement matters most), a shared screen is `Detail` (text must stay sharp, and
/// most of the picture stands still). The encoders tune for it as libwebrtc does for
/// screen sharing: libvpx's screen-content mode, openh264's screen-content usage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ContentHint {
    #[default]
    Motion,
    Detail,
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
    pub content: ContentHint,
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
            content: ContentHint::Motion,
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
        let rates: Vec<_> = l.iter().map(|l| l.bitrate_bps).collect();
        assert_eq!(rates, vec![160_000, 450_000, 1_700_000]);
        assert_eq!(Layer::ladder(480, 270).len(), 2);
        assert_eq!(Quality::Medium.rid(), "h");
    }

    #[test]
    fn ladder_for_1080p_360p_and_small_sources() {
        let l = Layer::ladder(1920, 1080);
        let sizes: Vec<_> = l
            .iter()
            .map(|l| (l.quality, l.width, l.height, l.bitrate_bps))
            .collect();
        assert_eq!(
            sizes,
            vec![
                (Quality::Low, 320, 180, 160_000),
                (Quality::Medium, 640, 360, 450_000),
                (Quality::High, 1920, 1080, 3_000_000)
            ]
        );
        let l = Layer::ladder(640, 360);
        let sizes: Vec<_> = l.iter().map(|l| (l.quality, l.width, l.height)).collect();
        assert_eq!(
            sizes,
            vec![(Quality::Low, 320, 180), (Quality::High, 640, 360)]
        );
        assert_eq!(l[1].bitrate_bps, 450_000);
        let l = Layer::ladder(320, 180);
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].bitrate_bps, 160_000);
        // 4:3 uses LiveKit's 4:3 presets
        let l = Layer::ladder(1280, 960);
        let sizes: Vec<_> = l
            .iter()
            .map(|l| (l.width, l.height, l.bitrate_bps))
            .collect();
        assert_eq!(
            sizes,
            vec![
                (240, 180, 125_000),
                (480, 360, 330_000),
                (1280, 960, 2_300_000)
            ]
        );
        // beyond the largest preset: its bitrate
        assert_eq!(preset_bitrate(4096, 2304), 8_000_000);
    }
}
