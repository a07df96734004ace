//! The session's media pipeline: a video source thread handing frames to one encoder
//! thread through a bounded drop-oldest slot, and an audio thread that makes 20 ms frames,
//! meters them and encodes Opus. The encoder thread encodes every simulcast layer of a
//! frame in one call ([`SimulcastEncoder`]), so all layers carry the same frames with the
//! same capture times. When the machine is short of CPU it lowers the frame rate of the
//! whole ladder evenly, then the resolution ([`CpuAdapter`]), and says so in
//! [`EncodeStatus`](encode::EncodeStatus). Capture never blocks: when the encoder falls
//! behind the oldest queued frame is dropped and counted; the transport's own queue does
//! the same. All timestamps come from one [`MediaClock`].
//!
//! One room a part: `video` (the source thread and the preview), `encode` (the encoder
//! thread, its slot, controls and CPU adaptation) and `audio`; this file keeps what the
//! session names: the source specs, the codec, the events and the shared counters.
//!
//! [`SimulcastEncoder`]: streamit_media::encode::SimulcastEncoder
//! [`CpuAdapter`]: streamit_media::adapt::CpuAdapter
//! [`MediaClock`]: streamit_media::MediaClock

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use streamit_livekit_publish as lk;
use streamit_media::screen::ScreenTarget;
use streamit_media::source::{SourceEvent, SourceHandle};
use streamit_media::{MediaError, VideoCodec, VideoFrame};
use tokio::sync::mpsc;

mod audio;
mod encode;
mod record;
mod video;

pub(crate) use audio::AudioPipeline;
pub(crate) use encode::{EncoderControl, quality_of};
pub(crate) use record::RecordTap;
pub(crate) use video::VideoPipeline;

/// Where video comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoSourceSpec {
    /// The moving test pattern with the machine-readable frame code.
    Synthetic { width: u32, height: u32, fps: u32 },
    /// A YUV4MPEG2 file (4:2:0), looped.
    Y4m(PathBuf),
    /// A camera (index as listed by `devices`), asked for about this mode; encoders scale
    /// whatever it delivers to `width × height`.
    Camera {
        index: u32,
        width: u32,
        height: u32,
        fps: u32,
    },
    /// A screen, monitor or window ([`streamit_media::screen`]), at `fps`.
    Screen { target: ScreenTarget, fps: u32 },
}

/// 720p30: what creators expect from a webcam today, and what the test pattern uses.
impl Default for VideoSourceSpec {
    fn default() -> Self {
        VideoSourceSpec::Synthetic {
            width: 1280,
            height: 720,
            fps: 30,
        }
    }
}

impl std::fmt::Display for VideoSourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VideoSourceSpec::Synthetic { width, height, fps } => {
                write!(f, "test pattern {width}x{height}@{fps}")
            }
            VideoSourceSpec::Y4m(p) => write!(f, "{}", p.display()),
            VideoSourceSpec::Camera {
                index,
                width,
                height,
                fps,
            } => write!(f, "camera {index} ({width}x{height}@{fps})"),
            VideoSourceSpec::Screen { target, fps } => write!(f, "screen share {target} @{fps}"),
        }
    }
}

/// Whether a voice treatment (the noise filter, automatic gain) runs on the audio before
/// the meter and the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MicProcessing {
    /// On for a microphone, off for the tone and files (they are what they are).
    #[default]
    Auto,
    On,
    Off,
}

/// RNNoise ([`streamit_media::denoise`]).
pub type NoiseSuppression = MicProcessing;
/// WebRTC's gain control ([`streamit_media::gain`]).
pub type AutoGain = MicProcessing;

impl MicProcessing {
    /// Whether it applies to `source`.
    pub fn applies_to(self, source: &AudioSourceSpec) -> bool {
        match self {
            MicProcessing::Auto => matches!(source, AudioSourceSpec::Mic(_)),
            MicProcessing::On => true,
            MicProcessing::Off => false,
        }
    }
}

impl std::str::FromStr for MicProcessing {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(MicProcessing::Auto),
            "on" => Ok(MicProcessing::On),
            "off" => Ok(MicProcessing::Off),
            other => Err(format!("{other:?}: expected auto, on or off")),
        }
    }
}

/// Where audio comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AudioSourceSpec {
    /// A quiet 440 Hz tone with a 1 kHz beep during the first 100 ms of every second
    /// (in step with the video pattern's flash).
    #[default]
    Tone,
    /// A 48 kHz WAV file (mono or stereo, mixed to mono), looped.
    Wav(PathBuf),
    /// A microphone: `None` the default input, `Some(n)` the n-th device of `devices`.
    Mic(Option<usize>),
    /// No audio track.
    None,
}

impl std::fmt::Display for AudioSourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AudioSourceSpec::Tone => f.write_str("test tone"),
            AudioSourceSpec::Wav(p) => write!(f, "{}", p.display()),
            AudioSourceSpec::None => f.write_str("none"),
            AudioSourceSpec::Mic(None) => f.write_str("default microphone"),
            AudioSourceSpec::Mic(Some(n)) => write!(f, "microphone {n}"),
        }
    }
}

/// Video codec of the published track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Codec {
    #[default]
    H264,
    Vp8,
}

impl Codec {
    pub(crate) fn media(self) -> VideoCodec {
        match self {
            Codec::H264 => VideoCodec::H264,
            Codec::Vp8 => VideoCodec::Vp8,
        }
    }
    pub(crate) fn publish(self) -> lk::VideoCodec {
        match self {
            Codec::H264 => lk::VideoCodec::H264,
            Codec::Vp8 => lk::VideoCodec::Vp8,
        }
    }
}

/// What the media threads tell the session task.
#[derive(Debug)]
pub(crate) enum MediaEvent {
    Preview(VideoFrame),
    MicLevel(f32),
    /// The mic check's share of its 3 s recorded so far.
    MicCheckProgress(f32),
    /// The mic check's clip (mono, 48 kHz, as it would go out).
    MicCheckRecorded(Vec<f32>),
    /// The clip's playback ended (or failed).
    MicCheckPlayed(Result<(), MediaError>),
    /// A source or encoder failed; the pipeline part stopped.
    Failed(MediaError),
    /// The screen share's picture, for the studio's preview of it.
    ScreenPreview(VideoFrame),
    /// The screen share's capture or encoder failed (a closed window); it stopped, the
    /// camera goes on.
    ScreenFailed(MediaError),
}

/// Which video pipeline a frame or failure comes from: the camera's ends the stream when it
/// fails, the screen share's only ends the sharing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Feed {
    Camera,
    Screen,
}

impl Feed {
    fn preview(self, frame: VideoFrame) -> MediaEvent {
        match self {
            Feed::Camera => MediaEvent::Preview(frame),
            Feed::Screen => MediaEvent::ScreenPreview(frame),
        }
    }
    fn failed(self, e: MediaError) -> MediaEvent {
        match self {
            Feed::Camera => MediaEvent::Failed(e),
            Feed::Screen => MediaEvent::ScreenFailed(e),
        }
    }

    /// What the encoder tunes for.
    pub fn content(self) -> streamit_media::ContentHint {
        match self {
            Feed::Camera => streamit_media::ContentHint::Motion,
            Feed::Screen => streamit_media::ContentHint::Detail,
        }
    }
}

/// Counters shared by all media threads.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub captured: AtomicU64,
    pub encoder_dropped: AtomicU64,
    pub encoded: AtomicU64,
    pub audio_packets: AtomicU64,
    pub audio_dropped: AtomicU64,
    pub keyframes_forced: AtomicU64,
    /// Frames not encoded because the uplink's send queue was full (also in
    /// `encoder_dropped`).
    pub network_skipped: AtomicU64,
}

/// The loop of a media thread over a self-paced device (camera, microphone) until `stop`:
/// each frame goes to `on_frame` (false: stop); the device failing or ending (`lost` says
/// which) is reported as [`MediaEvent::Failed`] and ends the loop.
fn drain_device<T>(
    handle: &SourceHandle<T>,
    stop: &AtomicBool,
    events: &mpsc::Sender<MediaEvent>,
    lost: &str,
    failed: impl Fn(MediaError) -> MediaEvent,
    mut on_frame: impl FnMut(T) -> bool,
) {
    while !stop.load(Ordering::Acquire) {
        match handle.events().recv_timeout(Duration::from_millis(100)) {
            Ok(SourceEvent::Frame(frame)) => {
                if !on_frame(frame) {
                    return;
                }
            }
            Ok(SourceEvent::Error(e)) => {
                let _ = events.try_send(failed(e));
                return;
            }
            Ok(SourceEvent::Ended) => {
                let _ = events.try_send(failed(MediaError::DeviceLost(lost.into())));
                return;
            }
            Err(e) if e.is_timeout() => {}
            Err(_) => return,
        }
    }
}
