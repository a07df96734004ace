//! The session task: owns the API client, the media pipeline and the LiveKit publisher.
//! [`SessionHandle`] is the one entry point; the task behind it is one loop over commands,
//! media events, backend outcomes, publisher events and a 1 s tick.
//!
//! The [`Task`] is one state machine with one `impl` block per concern: `account` (login,
//! logout, the stream's setup and title), `sources` (devices, preview, mute and camera),
//! `broadcast` (go live, connect, end stream, transport lost and the summary),
//! `live_events` (what the publisher reports while on air: participants, viewers,
//! reconnects), `chat` (sending, receiving, slow mode), `moderation` (remove, timeout and
//! ban, and the backend calls that run beside the loop) and `health` (the health bar and
//! the bitrate split). This file keeps the public handle, the state and the loop that
//! routes commands to those parts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use streamit_api::client::Client;
use streamit_api::limits;
use streamit_livekit_publish as lk;
use streamit_media::MediaClock;
use streamit_media::screen::GrantStore;
use tokio::sync::{mpsc, oneshot, watch};

use crate::command::Command;
use crate::error::{ErrorKind, Result, SessionError, UserError};
use crate::media::{
    AudioPipeline, AudioSourceSpec, Codec, Counters, EncoderControl, MediaEvent, NoiseSuppression,
    RecordTap, VideoPipeline, VideoSourceSpec,
};
use crate::slow_mode::SlowMode;
use crate::state::{Health, SessionState, StreamState};

mod account;
mod backend;
mod broadcast;
mod chat;
mod health;
mod live_events;
mod moderation;
mod recording;
mod screen;
mod sources;
mod summary;

use backend::BackendEvent;
pub use recording::default_recordings_dir;

/// How a session starts.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The StreamIt backend root, e.g. `http://127.0.0.1:8080`.
    pub api_url: String,
    /// A stored session token to start logged in with (validated at start).
    pub token: Option<String>,
    pub video: VideoSourceSpec,
    pub audio: AudioSourceSpec,
    /// RNNoise on the audio before the meter and the encoder; `Auto`: for microphones.
    pub noise_suppression: NoiseSuppression,
    /// Automatic gain (`Auto`: for a microphone).
    pub auto_gain: crate::media::AutoGain,
    pub codec: Codec,
    pub simulcast: bool,
    /// How long joining the LiveKit room (signal + transport) may take.
    pub connect_timeout: Duration,
    /// Transport options (queue sizes, initial bandwidth estimate, local IP).
    pub publish: lk::PublishOptions,
    /// Most chat entries kept in the state.
    pub chat_history: usize,
    /// Where the figures of an ended session wait when the backend cannot take them
    /// (`None`: nowhere; they are shown, then lost). Pending files are delivered after
    /// each login.
    pub spool_dir: Option<std::path::PathBuf>,
    /// How long end-stream and the stats report are retried before the figures are
    /// spooled.
    pub summary_retry: Duration,
    /// Where local recordings go (`None`: [`default_recordings_dir`]).
    pub recordings_dir: Option<std::path::PathBuf>,
    /// Where the desktop's consent to a screen share is kept for the next share (Wayland's
    /// restore token; the app's is the OS keyring). `None`: the desktop asks every time.
    pub screen_grants: Option<Arc<dyn GrantStore>>,
}

impl SessionConfig {
    pub fn new(api_url: impl Into<String>) -> Self {
        SessionConfig {
            api_url: api_url.into(),
            token: None,
            video: VideoSourceSpec::default(),
            audio: AudioSourceSpec::default(),
            noise_suppression: NoiseSuppression::default(),
            auto_gain: crate::media::AutoGain::default(),
            codec: Codec::default(),
            simulcast: false,
            connect_timeout: Duration::from_secs(15),
            publish: lk::PublishOptions::default(),
            chat_history: 500,
            spool_dir: None,
            summary_retry: Duration::from_secs(15),
            recordings_dir: None,
            screen_grants: None,
        }
    }
}

struct Request {
    command: Command,
    reply: Option<oneshot::Sender<Result<(), UserError>>>,
}

/// The GUI's / CLI's end of a session: send commands, watch state.
#[derive(Clone)]
pub struct SessionHandle {
    tx: mpsc::Sender<Request>,
    state: watch::Receiver<SessionState>,
    token: watch::Receiver<Option<String>>,
}

impl SessionHandle {
    /// Starts the session task on the current tokio runtime.
    pub fn spawn(config: SessionConfig) -> SessionHandle {
        Self::spawn_on(&tokio::runtime::Handle::current(), config)
    }

    /// Starts the session task on `rt` (for a GUI that owns a runtime on other threads).
    pub fn spawn_on(rt: &tokio::runtime::Handle, config: SessionConfig) -> SessionHandle {
        let (tx, rx) = mpsc::channel(64);
        let (state_tx, state) = watch::channel(SessionState::default());
        let (token_tx, token) = watch::channel(config.token.clone());
        let (media_tx, media_rx) = mpsc::channel(64);
        let (outcome_tx, outcome_rx) = mpsc::channel(64);
        let mut api = backend::api_client(&config.api_url);
        api.set_token(config.token.clone());
        let task = Task {
            api,
            config,
            state: SessionState::default(),
            state_tx,
            token_tx,
            rx,
            media_tx,
            media_rx,
            outcome_tx,
            outcome_rx,
            calls: Default::default(),
            slow_mode: SlowMode::new(Duration::from_secs(limits::SLOW_MODE_SECS)),
            clock: MediaClock::new(),
            counters: Arc::default(),
            video: None,
            screen: None,
            screen_pip: None,
            screen_opening: None,
            audio: None,
            live: None,
            mic_muted: false,
            camera_off: false,
            last_preview_sent: Instant::now(),
            record_tap: RecordTap::default(),
            record_to: None,
            recordings: Vec::new(),
        };
        rt.spawn(task.run());
        SessionHandle { tx, state, token }
    }

    /// Queues a command without waiting (what the GUI does). Fails only when the queue
    /// is full or the task has stopped.
    pub fn send(&self, command: Command) -> Result<(), SessionError> {
        self.tx
            .try_send(Request {
                command,
                reply: None,
            })
            .map_err(|_| SessionError::Closed)
    }

    /// Sends a command and waits until it was carried out.
    pub async fn request(&self, command: Command) -> Result<(), UserError> {
        let (reply, rx) = oneshot::channel();
        let closed = || UserError {
            kind: ErrorKind::Invalid,
            message: "the session has stopped".into(),
            at: SystemTime::now(),
        };
        self.tx
            .send(Request {
                command,
                reply: Some(reply),
            })
            .await
            .map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }

    /// The latest snapshot.
    pub fn state(&self) -> SessionState {
        self.state.borrow().clone()
    }

    /// A receiver that wakes on every new snapshot.
    pub fn subscribe(&self) -> watch::Receiver<SessionState> {
        self.state.clone()
    }

    /// The current backend session token (after Login), to store in a keyring.
    pub fn token(&self) -> Option<String> {
        self.token.borrow().clone()
    }
}

/// What exists only while on air.
struct Live {
    handle: lk::PublisherHandle,
    events: mpsc::Receiver<lk::PublisherEvent>,
    video: Option<lk::VideoTrackSender>,
    audio: Option<lk::AudioTrackSender>,
    encoders: Vec<Arc<EncoderControl>>,
    /// The screen-share track and its encoder, while one is on air.
    screen: Option<screen::ScreenLive>,
    session_id: String,
    go_live_at: Instant,
    live_at: Instant,
    connect_time: Duration,
    chat_messages: u64,
    /// Remote participants as last announced (roles, names, the viewer count).
    participants: HashMap<String, lk::RemoteParticipant>,
    last_stats: lk::StatsSnapshot,
    keyframe_requests: u64,
    /// How the last estimate was spent over the layers (the health bar's "Network limited").
    allocation: Option<(u64, health::Allocation)>,
    /// Whether the estimate's first climb is over (until then "Network limited" waits).
    ramp: health::Ramp,
    /// A watched camera or screen layer is paused for the estimate (the last allocation).
    paused_for_estimate: bool,
    /// What the engine was last told: the estimate holds the picture back.
    held_back: bool,
    reconnects: u32,
    /// Counter values when this broadcast started.
    base_encoded: u64,
    base_dropped: u64,
    base_network_skipped: u64,
    base_audio: u64,
    base_captured: u64,
}

struct Task {
    api: Client,
    config: SessionConfig,
    state: SessionState,
    state_tx: watch::Sender<SessionState>,
    token_tx: watch::Sender<Option<String>>,
    rx: mpsc::Receiver<Request>,
    media_tx: mpsc::Sender<MediaEvent>,
    media_rx: mpsc::Receiver<MediaEvent>,
    /// Backend calls spawned beside the loop report here.
    outcome_tx: mpsc::Sender<BackendEvent>,
    outcome_rx: mpsc::Receiver<BackendEvent>,
    /// What the loop keeps of those calls (the probe, a title waiting for the backend).
    calls: backend::BackendCalls,
    slow_mode: SlowMode,
    clock: MediaClock,
    counters: Arc<Counters>,
    video: Option<VideoPipeline>,
    /// The screen share's capture (and encoder while on air), beside the camera's.
    screen: Option<VideoPipeline>,
    /// "Camera over screen" while sharing with that layout.
    screen_pip: Option<streamit_media::compose::PipLayout>,
    /// A share being opened off the loop (the desktop's dialog may wait for the user).
    screen_opening: Option<screen::Opening>,
    audio: Option<AudioPipeline>,
    live: Option<Live>,
    mic_muted: bool,
    camera_off: bool,
    last_preview_sent: Instant,
    /// The recording the media threads feed (none when not recording).
    record_tap: RecordTap,
    /// The file the next recording goes to (`publish --record`), else a dated name.
    record_to: Option<std::path::PathBuf>,
    /// This broadcast's closed recordings, for its summary.
    recordings: Vec<crate::state::RecordingInfo>,
}

async fn next_publisher_event(live: &mut Option<Live>) -> Option<lk::PublisherEvent> {
    match live {
        Some(l) => l.events.recv().await,
        None => std::future::pending().await,
    }
}

/// Where a command's caller waits for its outcome.
pub(super) type Reply = oneshot::Sender<std::result::Result<(), UserError>>;

impl Task {
    async fn run(mut self) {
        self.state.media = Some(self.selection());
        self.state.media_clock_epoch = Some(self.clock.epoch());
        self.state.recording.folder = self
            .config
            .recordings_dir
            .clone()
            .or_else(default_recordings_dir);
        if let Some(token) = self.config.token.clone() {
            let r = self.use_token(token).await;
            self.finish(r, None);
        } else {
            self.publish();
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                req = self.rx.recv() => {
                    let Some(Request { command, mut reply }) = req else { break };
                    let shutdown = command == Command::Shutdown;
                    // A title edit, End and a screen share answer later (the backend's word,
                    // the summary's figures, the desktop's dialog) and return at once: no
                    // busy flag for them.
                    let answers_later = matches!(
                        command,
                        Command::EditTitle { .. }
                            | Command::EndStream
                            | Command::StartScreenShare { .. }
                    );
                    if !answers_later {
                        self.state.busy = true;
                        self.publish();
                    }
                    let r = self.handle(command, &mut reply).await;
                    self.state.busy = false;
                    self.finish(r, reply);
                    if shutdown {
                        break;
                    }
                }
                ev = self.media_rx.recv() => {
                    if let Some(ev) = ev {
                        self.on_media(ev).await;
                    }
                }
                Some(ev) = self.outcome_rx.recv() => {
                    self.on_backend_event(ev);
                    self.publish();
                }
                opened = screen::opened(&mut self.screen_opening) => {
                    self.on_screen_opened(opened).await;
                }
                ev = next_publisher_event(&mut self.live) => {
                    match ev {
                        Some(ev) => self.on_publisher(ev).await,
                        None => self.on_transport_lost("the LiveKit connection closed".into(), ErrorKind::Network),
                    }
                }
                _ = tick.tick() => {
                    let b = &self.state.backend;
                    if self.live.is_some() || b.pending_title.is_some() || b.unreachable_since.is_some() {
                        self.probe_backend();
                    }
                    if self.live.is_some() {
                        self.refresh_health();
                        self.refresh_recording();
                        self.publish();
                    }
                }
            }
        }
        if self.live.is_some() {
            let _ = self.end_stream_and_wait().await;
        }
        self.video = None;
        self.screen = None;
        self.screen_opening = None;
        self.audio = None;
        self.state.shut_down = true;
        self.state.preview = None;
        self.publish();
    }

    fn publish(&self) {
        self.state_tx.send_replace(self.state.clone());
    }

    fn finish(&mut self, r: Result<()>, reply: Option<Reply>) {
        let r = r.map_err(|e| {
            // The caller shows it (GUI error list, CLI `error:` line); a log line at warn
            // would print the same failure twice on a terminal.
            tracing::debug!(error = %e, "session command failed");
            self.note_failure(e)
        });
        self.publish();
        if let Some(reply) = reply {
            let _ = reply.send(r);
        }
    }

    /// Puts a failure in the error list the GUI shows; a session the server no longer
    /// knows (401) is logged out.
    fn note_failure(&mut self, e: SessionError) -> UserError {
        let u = e.to_user();
        Arc::make_mut(&mut self.state.errors).push(u.clone());
        if u.kind == ErrorKind::Auth
            && matches!(&e, SessionError::Api(a) if a.status() == Some(401))
        {
            self.set_logged_out();
        }
        u
    }

    /// Routes a command to the part that carries it out. A part that answers later takes
    /// the reply out of `reply`; what is left there is answered when this returns.
    async fn handle(&mut self, command: Command, reply: &mut Option<Reply>) -> Result<()> {
        match command {
            Command::Login { username, password } => self.login(username, password).await,
            Command::UseToken(token) => self.use_token(token).await,
            Command::Logout => self.logout().await,
            Command::SetupStream(setup) => self.setup(setup).await,
            Command::GoLive => self.go_live().await,
            Command::EndStream => self.end_stream(reply),
            Command::ToggleMic => self.toggle_mic(),
            Command::ToggleCamera => self.toggle_camera(),
            Command::SendChat(text) => self.send_chat(text),
            Command::RemoveMessage { message_id } => self.remove_message(&message_id),
            Command::TimeoutViewer { identity, duration } => {
                self.timeout_viewer(&identity, duration)
            }
            Command::BanViewer { identity } => self.ban_viewer(&identity),
            Command::EditTitle { title, description } => {
                let title = self.check_title(&title)?;
                self.save_title(title, description, reply.take());
                Ok(())
            }
            Command::SelectVideoSource(spec) => self.select_video_source(spec),
            Command::SelectAudioSource(spec) => self.select_audio_source(spec),
            Command::SetAutoGain(g) => {
                self.set_auto_gain(g);
                Ok(())
            }
            Command::SetNoiseSuppression(n) => {
                self.set_noise_suppression(n);
                Ok(())
            }
            Command::SetRecording { on, to } => self.set_recording(on, to),
            Command::StartScreenShare {
                target,
                fps,
                pip,
                choose_again,
            } => {
                self.start_screen_share(target, fps, pip, choose_again, reply.take());
                Ok(())
            }
            Command::SetScreenLayout(pip) => self.set_screen_layout(pip).await,
            Command::StopScreenShare => {
                self.stop_screen_share();
                Ok(())
            }
            Command::SelectCodec { codec, simulcast } => self.select_codec(codec, simulcast),
            Command::MicCheck => self.mic_check(),
            Command::StartPreview => self.ensure_sources(),
            Command::DismissErrors => {
                self.state.errors = Arc::default();
                Ok(())
            }
            Command::Reset => {
                self.not_on_air("reset")?;
                self.state.stream_state = StreamState::Idle;
                self.state.summary = None;
                self.state.chat = Arc::default();
                self.state.moderation = Arc::default();
                self.state.viewers = 0;
                self.state.peak_viewers = 0;
                self.state.health = Health::default();
                Ok(())
            }
            Command::Shutdown => {
                if self.live.is_some() {
                    self.end_stream_and_wait().await?;
                }
                Ok(())
            }
        }
    }
}
