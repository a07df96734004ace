//! H.264 via openh264 (built from source): constrained baseline, Annex-B output.

use std::ffi::c_void;

use bytes::Bytes;
use openh264::decoder::{Decoder, DecoderConfig};
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Profile,
    RateControlMode, UsageType,
};
use openh264::formats::YUVSource;
use openh264::{OpenH264API, Timestamp};

use super::{
    ContentHint, EncodedVideo, VideoCodec, VideoDecoder, VideoEncoder, VideoEncoderConfig, fit,
};
use crate::clock::MediaTime;
use crate::error::{Result, dec_err, enc_err};
use crate::frame::VideoFrame;

/// H.264 encoder (openh264, constrained baseline profile, single slice per frame, Annex-B
/// byte stream with SPS/PPS in front of every IDR — fit for RTP packetization-mode 1 with
/// FU-A fragmentation).
///
/// Real-time settings: low complexity, no scene-change detection (a detected cut turns a
/// frame into an IDR, a burst the rate control then pays for), threads by resolution and
/// core count like the VP8 encoder ([`super::vp8::encoder_threads`]; one on a 2-core
/// machine: with a single slice per frame more threads only add hand-offs).
pub struct H264Encoder {
    enc: Encoder,
    cfg: VideoEncoderConfig,
    /// The spatial layer's ceiling (`iMaxSpatialBitrate`): the openh264 crate sets it to the
    /// bitrate the encoder is built with, and a target above it is refused. Raised with the
    /// target, never lowered (as libwebrtc keeps it at the codec's maximum).
    layer_max_bps: u32,
    /// Whether a frame went in. The openh264 crate initialises the encoder inside its first
    /// `encode_at`; before that `SetOption` fails with `cmInitExpected` (4), so a change
    /// made early rebuilds the (still uninitialised, cheap) encoder with the new settings.
    started: bool,
}

// SAFETY: the openh264 encoder holds raw pointers to its own heap state only; it is used from
// one thread at a time (`&mut self`), which openh264 allows.
unsafe impl Send for H264Encoder {}

impl H264Encoder {
    /// Creates an encoder for `cfg`.
    pub fn new(cfg: VideoEncoderConfig) -> Result<Self> {
        Ok(H264Encoder {
            enc: Self::build(&cfg)?,
            cfg,
            layer_max_bps: cfg.bitrate_bps,
            started: false,
        })
    }

    fn build(cfg: &VideoEncoderConfig) -> Result<Encoder> {
        let config = EncoderConfig::new()
            .bitrate(BitRate::from_bps(cfg.bitrate_bps))
            .max_frame_rate(FrameRate::from_hz(cfg.fps))
            .rate_control_mode(RateControlMode::Bitrate)
            .usage_type(match cfg.content {
                ContentHint::Motion => UsageType::CameraVideoRealTime,
                ContentHint::Detail => UsageType::ScreenContentRealTime,
            })
            .profile(Profile::Baseline)
            .complexity(Complexity::Low)
            .scene_change_detect(false)
            .num_threads(super::vp8::encoder_threads(
                cfg.width,
                cfg.height,
                super::vp8::available_cores(),
            ) as u16)
            .skip_frames(true)
            .intra_frame_period(IntraFramePeriod::from_num_frames(cfg.keyframe_interval));
        Encoder::with_api_config(OpenH264API::from_source(), config).map_err(|e| enc_err("h264", e))
    }

    /// Sets a bitrate option (`SBitrateInfo`) for `layer`.
    fn set_rate_option(
        &mut self,
        option: openh264_sys2::ENCODER_OPTION,
        layer: openh264_sys2::LAYER_NUM,
        bps: u32,
    ) -> Result<()> {
        let mut arg = openh264_sys2::SBitrateInfo {
            iLayer: layer,
            iBitrate: bps.min(i32::MAX as u32) as i32,
        };
        // SAFETY: the option takes a pointer to an SBitrateInfo that lives for the call.
        let rc = unsafe {
            self.enc
                .raw_api()
                .set_option(option, (&raw mut arg).cast::<c_void>())
        };
        if rc != 0 {
            return Err(enc_err(
                "h264",
                format!("set bitrate {bps} (option {option}): code {rc}"),
            ));
        }
        Ok(())
    }

    /// Applies a changed `cfg` to an encoder that has not seen a frame yet.
    fn rebuild(&mut self, cfg: VideoEncoderConfig) -> Result<()> {
        self.enc = Self::build(&cfg)?;
        self.cfg = cfg;
        self.layer_max_bps = cfg.bitrate_bps;
        Ok(())
    }
}

impl VideoEncoder for H264Encoder {
    fn codec(&self) -> VideoCodec {
        VideoCodec::H264
    }

    fn encode(&mut self, frame: &VideoFrame, force_keyframe: bool) -> Result<Option<EncodedVideo>> {
        let input = fit(frame, &self.cfg)?;
        if force_keyframe {
            self.enc.force_intra_frame();
        }
        let ts = Timestamp::from_millis(input.pts.as_millis());
        let bs = self
            .enc
            .encode_at(&input, ts)
            .map_err(|e| enc_err("h264", e))?;
        self.started = true;
        let ft = bs.frame_type();
        if matches!(ft, FrameType::Skip | FrameType::Invalid) {
            return Ok(None);
        }
        let data = bs.to_vec();
        if data.is_empty() {
            return Ok(None);
        }
        Ok(Some(EncodedVideo {
            data: Bytes::from(data),
            keyframe: matches!(ft, FrameType::IDR | FrameType::I),
            pts: input.pts,
            width: input.width,
            height: input.height,
        }))
    }

    fn set_bitrate(&mut self, bps: u32) -> Result<()> {
        if !self.started {
            return self.rebuild(VideoEncoderConfig {
                bitrate_bps: bps,
                ..self.cfg
            });
        }
        // The target applies to all layers (the one layer here); the ceiling only through
        // the layer itself: `ENCODER_OPTION_MAX_BITRATE` on `SPATIAL_LAYER_ALL` sets a total
        // that openh264 checks nothing against. A target above the layer's own ceiling fails
        // its check ("code 1") after openh264 has written it to the layer: the stream never
        // rose above the bitrate its encoder was built with (a 180p stream scaled down on a
        // 300 kbit/s link sent about 100 kbit/s of video).
        if bps > self.layer_max_bps {
            self.set_rate_option(
                openh264_sys2::ENCODER_OPTION_MAX_BITRATE,
                openh264_sys2::SPATIAL_LAYER_0,
                bps,
            )?;
            self.layer_max_bps = bps;
        }
        self.set_rate_option(
            openh264_sys2::ENCODER_OPTION_BITRATE,
            openh264_sys2::SPATIAL_LAYER_ALL,
            bps,
        )?;
        self.cfg.bitrate_bps = bps;
        Ok(())
    }

    fn config(&self) -> VideoEncoderConfig {
        self.cfg
    }
}

impl H264Encoder {
    /// The average quantiser (0–51) of the last encoded frame; `None` before the first.
    pub fn last_qp(&mut self) -> Option<u32> {
        if !self.started {
            return None;
        }
        // SAFETY: SEncoderStatistics is plain data (integers and floats), valid zeroed;
        // GET_STATISTICS fills the struct behind the pointer, which lives for the call.
        let mut stats: openh264_sys2::SEncoderStatistics = unsafe { std::mem::zeroed() };
        let rc = unsafe {
            self.enc.raw_api().get_option(
                openh264_sys2::ENCODER_OPTION_GET_STATISTICS,
                (&raw mut stats).cast::<c_void>(),
            )
        };
        (rc == 0 && stats.uiInputFrameCount > 0).then_some(stats.uiAverageFrameQP)
    }

    /// Tells the rate control the frame rate it now gets (the session lowers it under CPU
    /// load), so each frame gets its share of the bitrate.
    pub fn set_frame_rate(&mut self, fps: f32) -> Result<()> {
        if !self.started {
            return self.rebuild(VideoEncoderConfig { fps, ..self.cfg });
        }
        let mut rate: f32 = fps.max(1.0);
        // SAFETY: ENCODER_OPTION_FRAME_RATE takes a pointer to a float living for the call.
        let rc = unsafe {
            self.enc.raw_api().set_option(
                openh264_sys2::ENCODER_OPTION_FRAME_RATE,
                (&raw mut rate).cast::<c_void>(),
            )
        };
        if rc != 0 {
            return Err(enc_err("h264", format!("set frame rate {fps}: code {rc}")));
        }
        self.cfg.fps = fps;
        Ok(())
    }
}

/// H.264 decoder (openh264) to I420.
pub struct H264Decoder {
    dec: Decoder,
}

// SAFETY: as for the encoder: own heap state only, used through `&mut self`.
unsafe impl Send for H264Decoder {}

impl H264Decoder {
    /// Creates a decoder.
    pub fn new() -> Result<Self> {
        let dec = Decoder::with_api_config(OpenH264API::from_source(), DecoderConfig::new())
            .map_err(|e| dec_err("h264", e))?;
        Ok(H264Decoder { dec })
    }
}

impl VideoDecoder for H264Decoder {
    fn decode(&mut self, data: &[u8], pts: MediaTime) -> Result<Option<VideoFrame>> {
        let Some(yuv) = self.dec.decode(data).map_err(|e| dec_err("h264", e))? else {
            return Ok(None);
        };
        let (w, h) = yuv.dimensions();
        let (ys, us, vs) = yuv.strides();
        VideoFrame::from_planes(
            w as u32,
            h as u32,
            yuv.y(),
            ys,
            yuv.u(),
            us,
            yuv.v(),
            vs,
            pts,
        )
        .map(Some)
    }
}
