//! What the GUI and the CLI ask the session to do.

use std::path::PathBuf;
use std::time::Duration;

use crate::media::{AudioSourceSpec, AutoGain, Codec, NoiseSuppression, VideoSourceSpec};
use streamit_media::compose::PipLayout;
use streamit_media::screen::ScreenTarget;

/// Stream settings for Setup (`POST /api/stream/setup`). Chat settings left `None` keep
/// their current value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamSetup {
    pub title: String,
    pub description: Option<String>,
    pub chat_enabled: Option<bool>,
    pub chat_delayed: Option<bool>,
    pub chat_followers_only: Option<bool>,
}

/// A request to the session task. Each one either succeeds or puts a
/// [`crate::UserError`] into the state (and into the reply, for
/// [`crate::SessionHandle::request`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Log in with a password; the session token stays in the session
    /// (read it from [`crate::SessionHandle::token`] to store it in a keyring).
    Login { username: String, password: String },
    /// Use a stored session token (validated with `GET /api/auth/me`).
    UseToken(String),
    /// Ends a running stream first, then logs out on the backend.
    Logout,
    /// Create or update the stream's title, description and chat settings.
    SetupStream(StreamSetup),
    /// API go-live → join the LiveKit room → publish video and audio.
    GoLive,
    /// Unpublish → leave → API end-stream → report stats → summary.
    EndStream,
    /// Mute / unmute the microphone (viewers see the mute).
    ToggleMic,
    /// Turn the camera off / on (viewers see the video track muted).
    ToggleCamera,
    /// Send a chat message into the room (only while live).
    SendChat(String),
    /// Remove a viewer's chat message for everyone (a `deleteMessage` moderation event on
    /// `streamit.moderation`; clients honour it from the creator). `message_id` is the
    /// [`crate::ChatEntry::id`]. Only while live.
    RemoveMessage { message_id: String },
    /// Time a viewer out of the chat (`POST /api/stream/moderation/timeout`: the backend
    /// revokes their `canPublishData` for `duration`). Runs beside the live loop; the
    /// outcome lands in [`crate::SessionState::moderation`].
    TimeoutViewer {
        identity: String,
        duration: Duration,
    },
    /// Ban a viewer (`POST /api/stream/moderation/ban`: no more tokens, removed from the
    /// room); their messages disappear everywhere at once (`deleteMessagesFrom`). Runs beside
    /// the live loop; the outcome lands in [`crate::SessionState::moderation`].
    BanViewer { identity: String },
    /// Edit the title (and optionally the description), also while live.
    EditTitle {
        title: String,
        description: Option<String>,
    },
    /// Switch the video source (restarts the preview; not while on air).
    SelectVideoSource(VideoSourceSpec),
    /// Switch the audio source (not while on air).
    SelectAudioSource(AudioSourceSpec),
    /// Noise suppression on, off or automatic (microphones only); takes effect at once,
    /// on air too.
    SetNoiseSuppression(NoiseSuppression),
    /// Automatic gain on the audio (`Auto`: for a microphone).
    SetAutoGain(AutoGain),
    /// Record locally while live (the highest layer and Opus as they go out, fragmented
    /// MP4). Before Go Live it arms the recording; while live it starts a new file or
    /// closes the current one at once. `to` names the file (else the recordings folder
    /// gets a dated one).
    SetRecording { on: bool, to: Option<PathBuf> },
    /// Mic check: record 3 s of the microphone as it will go out (after noise
    /// suppression), then play it back on the default output device. Progress and the
    /// outcome are in [`crate::SessionState::mic_check`]. Not while on air (the playback
    /// would go out through the microphone).
    MicCheck,
    /// Share a screen, monitor or window as a second video track (source screen share)
    /// at `fps`, beside the camera. Before Go Live it starts the capture (its preview), and
    /// the track is published with the stream; while live it is published at once.
    /// Sharing something else replaces the current share.
    /// With `pip`, the camera goes over the screen in one track (the camera's) instead.
    /// Where the desktop chooses in its own dialog (Wayland), a choice it remembered
    /// ([`crate::SessionConfig::screen_grants`]) is shared again without the dialog;
    /// `choose_again` forgets it first, so the dialog asks.
    StartScreenShare {
        target: ScreenTarget,
        fps: u32,
        pip: Option<PipLayout>,
        choose_again: bool,
    },
    /// Change how the running share goes out without restarting its capture: `None` as
    /// its own track beside the camera, `Some` the camera over it in the camera's track.
    SetScreenLayout(Option<PipLayout>),
    /// Stop sharing (the track is unpublished; viewers keep the camera).
    StopScreenShare,
    /// Codec and simulcast for the next Go Live.
    SelectCodec { codec: Codec, simulcast: bool },
    /// Start the sources for the setup screen's preview and mic meter.
    StartPreview,
    /// Forget the errors shown to the user.
    DismissErrors,
    /// Return to the setup screen after the summary.
    Reset,
    /// End any stream, stop the media threads and the task.
    Shutdown,
}
