//! A pure-Rust LiveKit participant that publishes video, audio and chat.
//!
//! - [`core::Participant`] is the sans-IO protocol core (signal messages,
//!   datagrams and time in; signal requests, datagrams and events out),
//!   built on `str0m`.
//! - [`Publisher`] is the tokio driver that owns the signal client
//!   (`livekit-signaling`), the UDP sockets and the timers.

pub mod chat;
pub mod core;
mod driver;
pub mod types;

pub use driver::{AudioTrackSender, PublishOptions, Publisher, PublisherHandle, VideoTrackSender};
pub use types::*;

/// Errors of the publishing engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The signal connection failed.
    #[error("signal: {0}")]
    Signal(String),
    /// A socket operation failed.
    #[error("io: {0}")]
    Io(#[source] std::io::Error),
    /// The publisher has stopped.
    #[error("publisher closed")]
    Closed,
    /// The audio queue is full (the network or driver is behind).
    #[error("media queue full")]
    QueueFull,
}
