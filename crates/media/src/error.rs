//! The one error type of the media crate.

use thiserror::Error;

/// Everything that can go wrong in capture, conversion and coding.
#[derive(Debug, Error)]
pub enum MediaError {
    /// Width/height/plane sizes that do not fit together.
    #[error("invalid frame geometry: {0}")]
    Geometry(String),
    /// A pixel-format conversion or scaling step failed.
    #[error("conversion failed: {0}")]
    Conversion(String),
    /// An encoder could not be created or failed to encode.
    #[error("{codec} encoder: {message}")]
    Encoder {
        /// codec name (`h264`, `vp8`, `opus`)
        codec: &'static str,
        /// what went wrong
        message: String,
    },
    /// A decoder could not be created or failed to decode.
    #[error("{codec} decoder: {message}")]
    Decoder {
        /// codec name (`h264`, `vp8`, `opus`)
        codec: &'static str,
        /// what went wrong
        message: String,
    },
    /// A capture device (camera, microphone) could not be found or opened.
    #[error("device error: {0}")]
    Device(String),
    /// A capture device disappeared while capturing.
    #[error("device lost: {0}")]
    DeviceLost(String),
    /// A media file could not be read or parsed.
    #[error("file {path}: {message}")]
    File {
        /// the file
        path: String,
        /// what went wrong
        message: String,
    },
    /// I/O error.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The other side of a channel went away.
    #[error("channel closed")]
    Closed,
}

/// Result alias of this crate.
pub type Result<T, E = MediaError> = std::result::Result<T, E>;

pub(crate) fn enc_err(codec: &'static str, message: impl std::fmt::Display) -> MediaError {
    MediaError::Encoder {
        codec,
        message: message.to_string(),
    }
}

pub(crate) fn dec_err(codec: &'static str, message: impl std::fmt::Display) -> MediaError {
    MediaError::Decoder {
        codec,
        message: message.to_string(),
    }
}
