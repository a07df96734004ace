//! # streamit-session
//!
//! The broadcast session both the studio GUI and the headless CLI drive: one tokio task
//! that owns the StreamIt API client, the media pipeline (sources and encoders on their own
//! threads) and the LiveKit publisher.
//!
//! - Send [`Command`]s with [`SessionHandle::send`] (non-blocking, for a UI thread) or
//!   [`SessionHandle::request`] (awaits the outcome).
//! - Render [`SessionState`] snapshots from [`SessionHandle::subscribe`] (a
//!   `tokio::sync::watch`); a snapshot is cheap to clone (chat log and errors are `Arc`s, the
//!   preview frame shares its pixels).
//!
//! ```no_run
//! # async fn demo() {
//! use streamit_session::{Command, SessionConfig, SessionHandle, StreamSetup};
//! let session = SessionHandle::spawn(SessionConfig::new("http://127.0.0.1:8080"));
//! session.request(Command::Login { username: "alice".into(), password: "…".into() }).await.ok();
//! session.request(Command::SetupStream(StreamSetup { title: "Hello".into(), ..Default::default() })).await.ok();
//! session.request(Command::GoLive).await.ok();
//! let mut state = session.subscribe();
//! while state.changed().await.is_ok() {
//!     let s = state.borrow().clone();
//!     println!("{:?} viewers={}", s.stream_state, s.viewers);
//! #   break;
//! }
//! session.request(Command::EndStream).await.ok();
//! # }
//! ```
//!
//! [`watch`] is the other side, for QA: a subscribe-only viewer that decodes and measures
//! a creator's stream (the CLI's `watch`).
//!
//! State machine: `Idle → Connecting → Live ⇄ Reconnecting → Ended | Failed`. Go Live is
//! API go-live → join the room → publish video (+ audio); End Stream is unpublish → leave →
//! API end-stream → report the chat count → summary from the backend. A failure after the
//! backend went live (LiveKit unreachable, transport lost, device lost) calls end-stream so
//! the backend does not show a dead stream as live.

mod command;
mod error;
mod media;
mod session;
pub mod slow_mode;
pub mod spool;
mod state;
pub mod watch;

pub use command::{Command, StreamSetup};
pub use error::{ErrorKind, SessionError, UserError};
pub use media::{
    AudioSourceSpec, AutoGain, Codec, MicProcessing, NoiseSuppression, VideoSourceSpec,
};
pub use session::{SessionConfig, SessionHandle, default_recordings_dir};
pub use state::{
    Account, BackendStatus, ChatEntry, ChatRole, CpuLimited, Health, InterruptCause, Interruption,
    MediaSelection, MicCheck, ModerationNotice, NetworkLimited, RecordingInfo, RecordingState,
    ScreenShareState, SessionState, StreamInfo, StreamState, Summary, SummaryDelivery, chat_rule,
    clock,
};
pub use streamit_livekit_publish::{IceTransport, PublishOptions};
pub use streamit_media::VideoFrame;
pub use streamit_media::screen::{
    GrantStore, MemoryGrants, ScreenInfo, ScreenTarget, list_screen_sources,
};
