//! Local recording while live: the encoded streams as they go out (the highest video layer
//! and Opus, no second encode), written as fragmented MP4.
//!
//! Fragmented because a recording must survive the studio being killed or the power going:
//! every half second a self-contained fragment (`moof` + `mdat`) is appended and synced, so a
//! crash costs at most about a second (the fragment, and what waits in the queue) and the
//! file still plays.
//!
//! [`Muxer`] is the sans-IO part (samples in, bytes out) and [`Recorder`] the file writer on
//! its own thread, so encoder and audio threads never wait for the disk.

mod annexb;
mod error;
mod muxer;
mod recorder;

pub use error::RecordError;
pub use muxer::{AudioTrack, Muxer, Sample, VideoCodec, VideoTrack};
pub use recorder::{Recorder, RecordingStatus};
