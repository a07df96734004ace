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
//!   constrained baseline, Annex-B) and [`encode::Vp8Encoder`] (libvpx), one layer each.
//!   [`encode::SimulcastEncoder`] encodes every simulcast [`encode::Layer`] of a frame in
//!   one call from one downscale chain (VP8: libvpx's multi-resolution encoder
//!   [`encode::Vp8Simulcast`], which shares motion analysis between layers; H.264: one
//!   openh264 encoder per layer), so all layers carry the same frames and capture times.
//!   [`encode::Layer::ladder`] is LiveKit's ladder and bitrates for a source size
//!   (720p → 320×180, 640×360, 1280×720); rids `q`/`h`/`f` for LOW/MEDIUM/HIGH.
//!   [`encode::OpusEncoder`] makes 20 ms [`encode::EncodedAudio`] packets.
//! - CPU adaptation: [`adapt::CpuAdapter`] (frame rate first, down to 15 fps, then size)
//!   and [`adapt::FrameRateGate`] (even decimation).
//! - Decoders (tests, `watch`): [`encode::H264Decoder`], [`encode::Vp8Decoder`] to
//!   [`VideoFrame`], [`encode::OpusDecoder`].
//! - The synthetic pattern and its machine-readable code: [`pattern`] (layout documented
//!   there for the Python viewer), [`pattern::read_pattern_code`].
//! - Conversion and scaling: [`convert`] (yuvutils-rs, fast_image_resize, zune-jpeg).
//! - Sources: [`source::VideoSource`] / [`source::AudioSource`]; `start(clock)` spawns the
//!   source's own thread and returns a [`source::SourceHandle`] whose `events()` is a bounded
//!   drop-oldest queue of [`source::SourceEvent`] (`Frame`, `Error` — e.g.
//!   [`MediaError::DeviceLost`] —, `Ended`). Implementations: [`source::SyntheticVideo`],
//!   [`source::SyntheticAudio`] (tone + beep aligned with the video flash),
//!   [`source::Y4mSource`], [`source::WavSource`], [`camera::CameraSource`] (nokhwa;
//!   [`camera::list_cameras`]; the mode is negotiated with [`camera::choose_camera_mode`]),
//!   [`mic::MicSource`] (cpal; [`mic::list_microphones`]; RMS/peak
//!   via [`AudioFrame::level`]).
//! - The bounded pipeline: [`pipeline::Pipeline::start`] (video + audio source → per-layer
//!   encoders → `video: Receiver<LayerPacket>` / `audio: Receiver<EncodedAudio>`), a preview
//!   tap ([`pipeline::Pipeline::preview`]), controls ([`pipeline::VideoControl`]: bitrate per
//!   layer, forced key frame, layer on/off) and counters ([`pipeline::Pipeline::snapshot`]).
//!   Video is dropped oldest-first when the sink is behind (counted, then a key frame);
//!   audio drops are counted and logged, never silent; capture never blocks.

pub mod adapt;
pub mod alsa_log;
pub mod audio;
pub mod camera;
pub mod clock;
pub mod compose;
pub mod convert;
pub mod denoise;
pub mod encode;
pub mod error;
pub mod frame;
pub mod gain;
pub mod mic;
pub mod pattern;
pub mod pipeline;
pub mod queue;
mod reblock;
pub mod resolution;
pub mod screen;
pub mod source;
pub mod speaker;

pub use clock::{MediaClock, MediaTime};
pub use encode::{
    ContentHint, EncodedAudio, EncodedVideo, Layer, Quality, VideoCodec, VideoDecoder,
    VideoEncoder, VideoEncoderConfig,
};
pub use error::{MediaError, Result};
pub use frame::{AUDIO_RATE, AudioFrame, AudioLevel, AudioSamples, VideoFrame};
pub use pattern::read_pattern_code;
pub use source::{AudioSource, SourceEvent, SourceHandle, VideoSource};
