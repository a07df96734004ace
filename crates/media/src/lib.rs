//! # streamit-media
//!
//! Capture sources, pixel conversion and scaling, encoders and the one media clock of
//! StreamIt Studio.
//!
//! ## Shapes other crates build on
//! - [`MediaClock`] — one per session, monotonic; [`MediaClock::now`] gives a [`MediaTime`]
//!   (µs since start). Every source stamps its frames with it.
//! - [`VideoFrame`] — I420 (BT.601 limited range), packed planes in one reference-counted
//!   [`bytes::Bytes`] buffer (clones share pixels; the preview tap does not copy), even size,
//!   `pts: MediaTime`. [`AudioFrame`] — 48 kHz, 1|2 channels, interleaved i16 or f32
//!   ([`AudioSamples`]), 10 ms or 20 ms, `pts` of its first sample.
//! - Encoders: [`encode::VideoEncoder`] (`encode(&VideoFrame, force_keyframe) ->
//!   Option<EncodedVideo>`, `set_bitrate(bps)`) with [`encode::H264Encoder`] (openh264,
//!   constrained baseline, Annex-B) and [`encode::Vp8Encoder`] (libvpx); one encoder per
//!   simulcast [`encode::Layer`] / [`encode::Quality`] (LOW ÷4, MEDIUM ÷2, HIGH full; rids
//!   `q`/`h`/`f`). Encoders scale the input to their configured size. [`encode::OpusEncoder`]
//!   makes 20 ms [`encode::EncodedAudio`] packets.
//! - Decoders (tests, `watch`): [`encode::H264Decoder`], [`encode::Vp8Decoder`] to
//!   [`VideoFrame`], [`encode::OpusDecoder`].
//! - The synthetic pattern and its machine-readable code: [`pattern`] (layout documented
//!   there for the Python viewer), [`pattern::read_pattern_code`].
//! - Conversion and scaling: [`convert`].

pub mod audio;
pub mod camera;
pub mod clock;
pub mod convert;
pub mod encode;
pub mod error;
pub mod frame;
pub mod mic;
pub mod pattern;
pub mod pipeline;
pub mod queue;
pub mod source;

pub use clock::{MediaClock, MediaTime};
pub use encode::{
    EncodedAudio, EncodedVideo, Layer, Quality, VideoCodec, VideoDecoder, VideoEncoder,
    VideoEncoderConfig,
};
pub use error::{MediaError, Result};
pub use frame::{AUDIO_RATE, AudioFrame, AudioLevel, AudioSamples, VideoFrame};
pub use pattern::read_pattern_code;
pub use source::{AudioSource, SourceEvent, SourceHandle, VideoSource};
