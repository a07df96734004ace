//! The snapshot the GUI and the CLI render. Cheap to clone: the chat log is an
//! `Arc<[ChatEntry]>`-like shared vector and the preview frame shares its pixels.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use streamit_api::StreamSession;
use streamit_media::VideoFrame;

use crate::error::UserError;

/// Where the broadcast is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StreamState {
    /// Not live (also before the first Go Live).
    #[default]
    Idle,
    /// Go Live pressed: asking the backend, joining the room, publishing tracks.
    Connecting,
    /// Media is flowing to the LiveKit server.
    Live,
    /// The transport is recovering (attempt `attempt` of `max`).
    Reconnecting { attempt: u32, max: u32 },
    /// Ended on request; the summary is in [`SessionState::summary`].
    Ended,
    /// Gave up; `reason` is for the user.
    Failed { reason: String },
}

impl StreamState {
    /// True while the user is (or is about to be) on air.
    pub fn is_on_air(&self) -> bool {
        matches!(
            self,
            StreamState::Connecting | StreamState::Live | StreamState::Reconnecting { .. }
        )
    }
}

/// The logged-in account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub user_id: String,
    pub username: String,
    pub display_name: String,
    /// Creators must be approved by an admin before they may set up or go live.
    pub approved: bool,
    pub is_creator: bool,
}

/// The stream's settings as the backend has them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamInfo {
    pub title: String,
    pub description: Option<String>,
    pub chat_enabled: bool,
    pub chat_delayed: bool,
    pub chat_followers_only: bool,
    /// Where viewers watch (`Stream.watch_url`); empty when the backend does not say.
    pub watch_url: String,
}

impl StreamInfo {
    /// The chat rule these settings put in force, in the words the watch page uses.
    pub fn chat_rule(&self) -> String {
        chat_rule(
            self.chat_enabled,
            self.chat_delayed,
            self.chat_followers_only,
        )
    }
}

/// The chat rule for a set of chat settings, for people: "Chat is off", "Chat is for
/// followers only", "Slow mode: one message per 10 s" (both restrictions joined by " · "),
/// or "Chat is open to everyone".
pub fn chat_rule(enabled: bool, delayed: bool, followers_only: bool) -> String {
    if !enabled {
        return "Chat is off".into();
    }
    let slow = format!(
        "Slow mode: one message per {} s",
        streamit_api::limits::SLOW_MODE_SECS
    );
    match (followers_only, delayed) {
        (true, true) => format!("Chat is for followers only · {slow}"),
        (true, false) => "Chat is for followers only".into(),
        (false, true) => slow,
        (false, false) => "Chat is open to everyone".into(),
    }
}

impl From<&streamit_api::Stream> for StreamInfo {
    fn from(s: &streamit_api::Stream) -> Self {
        StreamInfo {
            title: s.title.clone(),
            description: s.description.clone(),
            chat_enabled: s.is_chat_enabled,
            chat_delayed: s.is_chat_delayed,
            chat_followers_only: s.is_chat_followers_only,
            watch_url: s.watch_url.clone(),
        }
    }
}

/// Who sent a chat message, from the participant's `streamit.role` attribute, which only
/// the backend sets (in the token), so it cannot be forged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChatRole {
    /// The stream's creator (this studio's own messages).
    Creator,
    /// A logged-in viewer; also a participant without the attribute (a token not minted by
    /// the StreamIt backend).
    #[default]
    Viewer,
    /// A guest (not logged in, a name of their choosing).
    Guest,
}

impl ChatRole {
    /// The role a participant's attributes name.
    pub fn from_attributes(attributes: &std::collections::HashMap<String, String>) -> ChatRole {
        use streamit_api::room;
        match attributes.get(room::ATTR_ROLE).map(String::as_str) {
            Some(room::ROLE_CREATOR) => ChatRole::Creator,
            Some(room::ROLE_GUEST) => ChatRole::Guest,
            _ => ChatRole::Viewer,
        }
    }

    /// Whether a participant with this role is counted as a viewer (what the watch page
    /// counts: viewers and guests).
    pub fn is_audience(self) -> bool {
        matches!(self, ChatRole::Viewer | ChatRole::Guest)
    }
}

/// One line of the chat panel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatEntry {
    /// The message id: the chat text stream's id (what a moderation event names); empty for
    /// this studio's own messages.
    pub id: String,
    /// Sender's display name (falls back to the identity).
    pub sender: String,
    /// Sender's identity in the room (a user id or `guest-…`).
    pub identity: String,
    /// The sender's role in the room.
    pub role: ChatRole,
    pub text: String,
    /// True for messages this studio sent.
    pub own: bool,
    /// When the studio saw it.
    pub at: SystemTime,
}

/// The outcome of a moderation action (or of slow-mode enforcement), for the creator:
/// "Banned Bob", "Timed out Bob for 5 min", or what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModerationNotice {
    pub message: String,
    /// False when the action failed (the message says why; it is in the errors too).
    pub ok: bool,
    pub at: SystemTime,
}

/// Health figures of the live connection, refreshed about once a second.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Health {
    /// Frames captured by the video source.
    pub frames_captured: u64,
    /// Encoded video frames handed to the transport (all layers).
    pub frames_sent: u64,
    /// Video frames dropped anywhere (source queue, encoder queue, transport queue).
    pub frames_dropped: u64,
    /// Opus packets sent.
    pub audio_packets_sent: u64,
    /// Opus goes out with RED: each packet also carries the one before.
    pub audio_redundancy: bool,
    /// Current egress bitrate, bits per second.
    pub bitrate_bps: u64,
    /// Transport bandwidth estimate, bits per second.
    pub target_bitrate_bps: Option<u64>,
    pub rtt: Option<Duration>,
    /// Packet loss the receivers report (RTCP receiver reports, fraction lost), 0..1,
    /// averaged over the sent layers weighted by their bitrate; `None` before the first
    /// report.
    pub packet_loss: Option<f32>,
    /// Key frame requests (PLI/FIR) served.
    pub keyframe_requests: u64,
    /// NACKs the SFU sent for lost packets (answered with RTX from the send history).
    pub nacks_received: u64,
    /// Video packets the SFU still counts lost on this connection: losses that no
    /// retransmission repaired (each one costs viewers a picture until the next key frame).
    /// `None` before its first receiver report.
    pub video_packets_lost: Option<u64>,
    pub reconnects: u32,
    /// The server's view of this connection: "excellent", "good", "poor", "lost".
    pub connection_quality: Option<&'static str>,
    /// Transport of the media connection ICE selected: "udp", or "tcp" when UDP is
    /// blocked (or `ice_transport` is TCP only); `relay/udp`, `relay/tcp` or `relay/tls`
    /// through the server's TURN relay; `None` before it is selected.
    pub transport: Option<&'static str>,
    /// Packets sent through the TURN relay on this connection, and how many of them went
    /// as ChannelData (4 bytes of header each) rather than as Send indications (36).
    pub relay_packets_sent: u64,
    pub relay_channel_data_sent: u64,
    /// Set while the encoder sends less than the source offers (lower frame rate, then
    /// smaller) because the CPU cannot keep up; the health bar shows it.
    pub cpu_limited: Option<CpuLimited>,
    /// How often the encoder stepped down for the CPU during this stream.
    pub cpu_adaptations: u32,
    /// Set while the uplink's estimate keeps video below what viewers asked for.
    pub network_limited: Option<NetworkLimited>,
    /// Frames the encoder skipped because the send queue was full (in `frames_dropped`
    /// too): on a link that narrowed, skipped rather than queued.
    pub frames_skipped_for_network: u64,
    /// The longest a video packet waited in the pacer over the last second or so.
    pub send_queue_delay: Option<Duration>,
}

/// What the uplink carries when it cannot carry everything: the estimate, and how many
/// simulcast layers are paused for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkLimited {
    pub estimate_bps: u64,
    pub paused_layers: usize,
    /// Layers someone watches, paused ones included.
    pub watched_layers: usize,
    /// The picture's size (its shorter side) while a single layer is sent smaller than
    /// the source for the bitrate.
    pub scaled_to: Option<u32>,
}

impl std::fmt::Display for NetworkLimited {
    /// "Network limited: 120 kbit/s, sending low quality"
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let quality = match (self.watched_layers, self.paused_layers) {
            (n, p) if n > 1 && p + 1 >= n => "sending low quality".to_string(),
            (_, p) if p > 0 => "sending reduced quality".to_string(),
            _ => match self.scaled_to {
                Some(side) => format!("sending {side}p"),
                None => "sending at a lower bitrate".to_string(),
            },
        };
        write!(
            f,
            "Network limited: {} kbit/s, {quality}",
            self.estimate_bps / 1000
        )
    }
}

/// What a CPU-limited encoder still sends: its top layer's size and frame rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuLimited {
    pub width: u32,
    pub height: u32,
    pub fps: f32,
}

impl std::fmt::Display for CpuLimited {
    /// "CPU limited: sending 720p at 20 fps"
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CPU limited: sending {}p at {} fps",
            self.height.min(self.width),
            self.fps.round() as u32
        )
    }
}

/// The end-of-stream summary: the backend's record plus the studio's own counts.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The backend's session record (duration, peak viewers, chat count, end reason).
    pub backend: Option<StreamSession>,
    /// The studio's wall-clock duration from "live" to "ended".
    pub duration: Duration,
    /// Time from Go Live to the transport being connected.
    pub connect_time: Option<Duration>,
    pub peak_viewers: u32,
    pub chat_messages: u64,
    pub frames_sent: u64,
    pub frames_dropped: u64,
    pub average_bitrate_bps: u64,
    pub reconnects: u32,
    pub rtt: Option<Duration>,
    /// Whether the backend has the studio's figures for this session.
    pub delivery: SummaryDelivery,
    /// Set when the stream did not end on request: why, for the ending screen.
    pub interruption: Option<Interruption>,
    /// The local recordings made during the stream (one per Record switched on).
    pub recordings: Vec<RecordingInfo>,
}

impl Summary {
    /// "Stream interrupted after 0:29 — server unreachable" for a stream that stopped by
    /// itself; "Stream ended" otherwise. The GUI's heading and the CLI's error say the same.
    pub fn headline(&self) -> String {
        match &self.interruption {
            Some(i) => format!(
                "Stream interrupted after {} — {}",
                clock(self.duration.as_secs()),
                i.cause.words()
            ),
            None => "Stream ended".to_string(),
        }
    }
}

/// A short length of time as people read it: "0:07", "12:30", "1:02:03".
pub fn clock(secs: u64) -> String {
    if secs >= 3600 {
        format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
    } else {
        format!("{}:{:02}", secs / 60, secs % 60)
    }
}

/// Why a stream ended without the creator asking: one sentence for people, the
/// technical detail for "Details".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interruption {
    pub cause: InterruptCause,
    /// What the transport or the device said ("LiveKit connection failed: …").
    pub detail: String,
}

/// What stopped the stream, as a creator would name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterruptCause {
    /// The streaming servers stopped answering (LiveKit, and perhaps the backend too).
    ServerUnreachable,
    /// The camera or microphone stopped delivering.
    DeviceFailed,
}

impl InterruptCause {
    /// "server unreachable": what follows "Stream interrupted after 0:29 — ".
    pub fn words(self) -> &'static str {
        match self {
            InterruptCause::ServerUnreachable => "server unreachable",
            InterruptCause::DeviceFailed => "camera or microphone stopped",
        }
    }
}

/// Where the studio's figures for an ended session went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SummaryDelivery {
    /// The backend has them.
    #[default]
    Delivered,
    /// Being delivered beside the session loop (retried with backoff); not on the server
    /// yet.
    Pending,
    /// The backend could not be reached in time; they wait in this spool file and are
    /// delivered after the next login to the same backend.
    Spooled {
        path: std::path::PathBuf,
        error: String,
    },
    /// The backend could not be reached and no spool was configured (or writing it
    /// failed): the figures are only on this screen.
    Lost { error: String },
}

/// Which sources are selected (what the setup screen shows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSelection {
    pub video: crate::VideoSourceSpec,
    pub audio: crate::AudioSourceSpec,
    /// RNNoise cleans the audio (the meter shows the cleaned signal).
    pub noise_suppression: bool,
    /// Automatic gain levels the voice (after the noise filter, before the meter).
    pub auto_gain: bool,
    pub codec: crate::Codec,
    pub simulcast: bool,
    pub mic_muted: bool,
    pub camera_off: bool,
}

/// How the studio sees the StreamIt backend now, and what waits for it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BackendStatus {
    /// Set while calls to the backend time out or fail to connect: since the first
    /// failure in a row. The GUI shows "StreamIt server not responding — retrying".
    pub unreachable_since: Option<SystemTime>,
    /// A title the creator saved that the backend does not have yet (retried until it
    /// does, or refuses it). Screens show it instead of the old one.
    pub pending_title: Option<String>,
}

/// Local recording: whether it is on, and the file being written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordingState {
    /// Record while live: set before Go Live it starts with the stream; switched while
    /// live it starts or stops a file at once.
    pub on: bool,
    /// The file being written (only while live).
    pub current: Option<RecordingInfo>,
    /// Where recordings go when no file is named.
    pub folder: Option<std::path::PathBuf>,
}

/// A local recording: where it is and how much it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingInfo {
    pub path: std::path::PathBuf,
    pub bytes: u64,
    /// Media time in the file.
    pub duration: Duration,
    /// Samples the disk was too slow for (the video skipped to the next key frame).
    pub dropped: u64,
    /// Why writing stopped, if it did.
    pub error: Option<String>,
}

/// One snapshot of everything a screen needs. Sent on a `tokio::sync::watch`.
#[derive(Debug, Clone, Default)]
pub struct SessionState {
    /// `None`: show the login screen.
    pub account: Option<Account>,
    /// The backend's stream settings, once known.
    pub stream: Option<StreamInfo>,
    pub stream_state: StreamState,
    /// When the LiveKit connection was lost (set while [`StreamState::Reconnecting`]).
    pub reconnecting_since: Option<SystemTime>,
    /// Whether the backend answers, and the changes waiting for it.
    pub backend: BackendStatus,
    /// Backend session id of the current/last broadcast.
    pub session_id: Option<String>,
    /// When the stream went live (for the timer on the live screen).
    pub live_since: Option<SystemTime>,
    pub viewers: u32,
    pub peak_viewers: u32,
    /// Chat log, oldest first (shared; cloning the state does not copy it). Removed and
    /// slow-mode-hidden messages are not in it.
    pub chat: Arc<Vec<ChatEntry>>,
    /// Moderation outcomes, newest last.
    pub moderation: Arc<Vec<ModerationNotice>>,
    pub health: Health,
    /// The latest captured frame (pixels shared with the pipeline, no copy).
    pub preview: Option<VideoFrame>,
    /// Latest microphone level, linear RMS 0..=1 (for the meter).
    pub mic_level: f32,
    /// The setup screen's mic check.
    pub mic_check: MicCheck,
    pub media: Option<MediaSelection>,
    /// The screen share beside the camera.
    pub screen_share: ScreenShareState,
    /// The latest captured frame of the screen share, for its preview.
    pub screen_preview: Option<VideoFrame>,
    pub recording: RecordingState,
    /// Set when a stream ended: what the summary screen shows.
    pub summary: Option<Summary>,
    /// Errors for the user, newest last; the GUI may show and dismiss them.
    pub errors: Arc<Vec<UserError>>,
    /// A command is being carried out (spinner).
    pub busy: bool,
    /// The session task has stopped (after Shutdown).
    pub shut_down: bool,
    /// Wall-clock time of the media clock's zero: a frame stamped `pts` was captured at
    /// `media_clock_epoch + pts` (the synthetic pattern burns `pts` into every frame, so a
    /// viewer on the same machine can measure glass-to-glass latency). The clock's own
    /// [`MediaClock::epoch`](streamit_media::MediaClock::epoch), read once when it was made.
    pub media_clock_epoch: Option<SystemTime>,
}

/// The screen share: a second video track (source screen share) beside the camera, or with
/// `pip` the camera over the screen in the camera's one track.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ScreenShareState {
    #[default]
    Off,
    /// Opening the capture; on Wayland the desktop's dialog asks the creator what to share.
    Starting {
        target: streamit_media::screen::ScreenTarget,
    },
    /// Capturing `source` at `width × height`; `on_air` once viewers get it.
    Sharing {
        source: String,
        target: streamit_media::screen::ScreenTarget,
        pip: Option<streamit_media::compose::PipLayout>,
        width: u32,
        height: u32,
        fps: u32,
        on_air: bool,
        /// The desktop's own dialog chose what is shared (Wayland), or its remembered
        /// choice did: another is chosen there (`choose_again`).
        desktop_chose: bool,
    },
    /// The capture stopped by itself (the window closed, the display went away); the
    /// stream goes on without it.
    Ended { reason: String },
}

/// The mic check: 3 s of the processed microphone, then played back.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum MicCheck {
    #[default]
    Idle,
    /// Recording; the share of the 3 s taken so far (0..1).
    Listening(f32),
    /// Playing the clip back; the loudest 50 ms of it (dBFS) says whether the mic hears.
    Playing { peak_dbfs: f32 },
    /// Played to the end.
    Done { peak_dbfs: f32 },
    /// No audio source, or the output device failed.
    Failed(String),
}

impl RecordingInfo {
    /// "0:12 · 3.4 MB": the live screen's recording figures.
    pub fn figures(&self) -> String {
        format!(
            "{} · {:.1} MB",
            clock(self.duration.as_secs()),
            self.bytes as f64 / 1e6
        )
    }
}

impl SessionState {
    /// The newest error, if any.
    pub fn last_error(&self) -> Option<&UserError> {
        self.errors.last()
    }
}
