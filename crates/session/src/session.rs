//! The session task: owns the API client, the media pipeline and the LiveKit publisher.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use streamit_api::client::{ApiError, Client};
use streamit_api::{
    BanRequest, LoginRequest, ModerationEvent, Role, SessionStatsReport, SetupStreamRequest,
    StreamSession, TimeoutRequest, UpdateStreamInfoRequest, User, limits, room,
};
use streamit_livekit_publish as lk;
use streamit_media::MediaClock;
use tokio::sync::{mpsc, oneshot, watch};

use crate::command::{Command, StreamSetup};
use crate::error::{ErrorKind, Result, SessionError, UserError};
use crate::media::{
    AudioPipeline, AudioSourceSpec, Codec, Counters, EncoderControl, MediaEvent, VideoPipeline,
    VideoSourceSpec,
};
use crate::slow_mode::{Pace, SlowMode, timeout_secs};
use crate::state::{
    Account, ChatEntry, ChatRole, Health, MediaSelection, ModerationNotice, SessionState,
    StreamInfo, StreamState, Summary,
};

/// How long a moderation call to the backend may take before the studio reports it failed.
const BACKEND_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A backend call that ran beside the live loop, done.
struct Outcome {
    /// The notice when it worked ("Banned Bob").
    success: String,
    /// What failed, for the notice and the error ("Ban of Bob failed").
    failure: String,
    result: Result<()>,
}

/// How a session starts.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The StreamIt backend root, e.g. `http://127.0.0.1:8080`.
    pub api_url: String,
    /// A stored session token to start logged in with (validated at start).
    pub token: Option<String>,
    pub video: VideoSourceSpec,
    pub audio: AudioSourceSpec,
    pub codec: Codec,
    pub simulcast: bool,
    /// How long joining the LiveKit room (signal + transport) may take.
    pub connect_timeout: Duration,
    /// Transport options (queue sizes, initial bandwidth estimate, local IP).
    pub publish: lk::PublishOptions,
    /// Most chat entries kept in the state.
    pub chat_history: usize,
}

impl SessionConfig {
    pub fn new(api_url: impl Into<String>) -> Self {
        SessionConfig {
            api_url: api_url.into(),
            token: None,
            video: VideoSourceSpec::default(),
            audio: AudioSourceSpec::default(),
            codec: Codec::default(),
            simulcast: false,
            connect_timeout: Duration::from_secs(15),
            publish: lk::PublishOptions::default(),
            chat_history: 500,
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
        let mut api = Client::new(config.api_url.clone());
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
            slow_mode: SlowMode::new(Duration::from_secs(limits::SLOW_MODE_SECS)),
            clock: MediaClock::new(),
            counters: Arc::default(),
            video: None,
            audio: None,
            live: None,
            mic_muted: false,
            camera_off: false,
            last_preview_sent: Instant::now(),
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
    session_id: String,
    go_live_at: Instant,
    live_at: Instant,
    connect_time: Duration,
    chat_messages: u64,
    /// Remote participants as last announced (roles, names, the viewer count).
    participants: HashMap<String, lk::RemoteParticipant>,
    last_stats: lk::StatsSnapshot,
    keyframe_requests: u64,
    reconnects: u32,
    /// Counter values when this broadcast started.
    base_encoded: u64,
    base_dropped: u64,
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
    outcome_tx: mpsc::Sender<Outcome>,
    outcome_rx: mpsc::Receiver<Outcome>,
    slow_mode: SlowMode,
    clock: MediaClock,
    counters: Arc<Counters>,
    video: Option<VideoPipeline>,
    audio: Option<AudioPipeline>,
    live: Option<Live>,
    mic_muted: bool,
    camera_off: bool,
    last_preview_sent: Instant,
}

async fn next_publisher_event(live: &mut Option<Live>) -> Option<lk::PublisherEvent> {
    match live {
        Some(l) => l.events.recv().await,
        None => std::future::pending().await,
    }
}

impl Task {
    async fn run(mut self) {
        self.state.media = Some(self.selection());
        self.state.media_clock_epoch = Some(self.clock.epoch());
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
                    let Some(Request { command, reply }) = req else { break };
                    let shutdown = command == Command::Shutdown;
                    self.state.busy = true;
                    self.publish();
                    let r = self.handle(command).await;
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
                Some(outcome) = self.outcome_rx.recv() => {
                    self.on_outcome(outcome);
                    self.publish();
                }
                ev = next_publisher_event(&mut self.live) => {
                    match ev {
                        Some(ev) => self.on_publisher(ev).await,
                        None => self.on_transport_lost("the LiveKit connection closed".into(), ErrorKind::Network).await,
                    }
                }
                _ = tick.tick() => {
                    if self.live.is_some() {
                        self.refresh_health();
                        self.publish();
                    }
                }
            }
        }
        if self.live.is_some() {
            let _ = self.end_stream().await;
        }
        self.video = None;
        self.audio = None;
        self.state.shut_down = true;
        self.state.preview = None;
        self.publish();
    }

    fn publish(&self) {
        self.state_tx.send_replace(self.state.clone());
    }

    fn finish(
        &mut self,
        r: Result<()>,
        reply: Option<oneshot::Sender<std::result::Result<(), UserError>>>,
    ) {
        let r = r.map_err(|e| {
            // The caller shows it (GUI error list, CLI `error:` line); a log line at warn
            // would print the same failure twice on a terminal.
            tracing::debug!(error = %e, "session command failed");
            let u = e.to_user();
            Arc::make_mut(&mut self.state.errors).push(u.clone());
            if u.kind == ErrorKind::Auth
                && matches!(&e, SessionError::Api(a) if a.status() == Some(401))
            {
                self.set_logged_out();
            }
            u
        });
        self.publish();
        if let Some(reply) = reply {
            let _ = reply.send(r);
        }
    }

    fn set_logged_out(&mut self) {
        self.api.set_token(None);
        self.token_tx.send_replace(None);
        self.state.account = None;
        self.state.stream = None;
    }

    fn selection(&self) -> MediaSelection {
        MediaSelection {
            video: self.config.video.clone(),
            audio: self.config.audio.clone(),
            codec: self.config.codec,
            simulcast: self.config.simulcast,
            mic_muted: self.mic_muted,
            camera_off: self.camera_off,
        }
    }

    async fn handle(&mut self, command: Command) -> Result<()> {
        match command {
            Command::Login { username, password } => {
                let auth = self.api.login(&LoginRequest { username, password }).await?;
                self.api.set_token(Some(auth.token.clone()));
                self.token_tx.send_replace(Some(auth.token));
                self.logged_in(&auth.user).await;
                Ok(())
            }
            Command::UseToken(token) => self.use_token(token).await,
            Command::Logout => {
                if self.live.is_some() {
                    self.end_stream().await?;
                }
                let r = self.api.logout().await;
                self.set_logged_out();
                match r {
                    Ok(_) => Ok(()),
                    // already invalid: logged out anyway
                    Err(e) if e.status() == Some(401) => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
            Command::SetupStream(setup) => self.setup(setup).await,
            Command::GoLive => self.go_live().await,
            Command::EndStream => self.end_stream().await,
            Command::ToggleMic => {
                self.mic_muted = !self.mic_muted;
                if let Some(a) = &self.audio {
                    a.muted.store(self.mic_muted, Ordering::Release);
                }
                if let Some(live) = &self.live
                    && let Some(t) = &live.audio
                {
                    live.handle.set_muted(t.cid(), self.mic_muted)?;
                }
                self.state.media = Some(self.selection());
                Ok(())
            }
            Command::ToggleCamera => {
                self.camera_off = !self.camera_off;
                if let Some(v) = &self.video {
                    v.set_camera_off(self.camera_off);
                }
                if self.camera_off {
                    self.state.preview = None;
                }
                if let Some(live) = &self.live {
                    if let Some(t) = &live.video {
                        live.handle.set_muted(t.cid(), self.camera_off)?;
                    }
                    if !self.camera_off {
                        live.encoders.iter().for_each(|e| e.request_keyframe());
                    }
                }
                self.state.media = Some(self.selection());
                Ok(())
            }
            Command::SendChat(text) => {
                let text = text.trim().to_string();
                if text.is_empty() {
                    return Err(SessionError::Invalid("empty chat message".into()));
                }
                let Some(live) = &mut self.live else {
                    return Err(SessionError::Invalid("chat is available while live".into()));
                };
                live.handle.send_chat(text.clone())?;
                live.chat_messages += 1;
                let (identity, name) = match &self.state.account {
                    Some(a) => (a.user_id.clone(), a.display_name.clone()),
                    None => (live.handle.identity().to_string(), String::new()),
                };
                self.push_chat(ChatEntry {
                    id: String::new(),
                    sender: name,
                    identity,
                    role: ChatRole::Creator,
                    text,
                    own: true,
                    at: SystemTime::now(),
                });
                Ok(())
            }
            Command::RemoveMessage { message_id } => self.remove_message(&message_id),
            Command::TimeoutViewer { identity, duration } => {
                self.timeout_viewer(&identity, duration)
            }
            Command::BanViewer { identity } => self.ban_viewer(&identity),
            Command::EditTitle { title, description } => {
                self.require_login()?;
                let s = self
                    .api
                    .update_stream_info(&UpdateStreamInfoRequest {
                        title: Some(title),
                        description,
                    })
                    .await?;
                self.state.stream = Some(StreamInfo::from(&s));
                Ok(())
            }
            Command::SelectVideoSource(spec) => {
                self.not_on_air("change the video source")?;
                let previewing = self.video.is_some();
                self.video = None;
                self.state.preview = None;
                self.config.video = spec;
                self.state.media = Some(self.selection());
                if previewing {
                    self.ensure_sources()?;
                }
                Ok(())
            }
            Command::SelectAudioSource(spec) => {
                self.not_on_air("change the audio source")?;
                let previewing = self.video.is_some() || self.audio.is_some();
                self.audio = None;
                self.state.mic_level = 0.0;
                self.config.audio = spec;
                self.state.media = Some(self.selection());
                if previewing {
                    self.ensure_sources()?;
                }
                Ok(())
            }
            Command::SelectCodec { codec, simulcast } => {
                self.not_on_air("change the codec")?;
                self.config.codec = codec;
                self.config.simulcast = simulcast;
                self.state.media = Some(self.selection());
                Ok(())
            }
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
                    self.end_stream().await?;
                }
                Ok(())
            }
        }
    }

    fn require_login(&self) -> Result<()> {
        if self.api.token().is_none() {
            return Err(SessionError::NotLoggedIn);
        }
        Ok(())
    }

    fn not_on_air(&self, what: &str) -> Result<()> {
        if self.live.is_some() || self.state.stream_state.is_on_air() {
            return Err(SessionError::Invalid(format!(
                "cannot {what} while on air; end the stream first"
            )));
        }
        Ok(())
    }

    async fn use_token(&mut self, token: String) -> Result<()> {
        self.api.set_token(Some(token.clone()));
        match self.api.me().await {
            Ok(user) => {
                self.token_tx.send_replace(Some(token));
                self.logged_in(&user).await;
                Ok(())
            }
            Err(e) => {
                if e.status() == Some(401) {
                    self.set_logged_out();
                }
                Err(e.into())
            }
        }
    }

    async fn logged_in(&mut self, user: &User) {
        self.state.account = Some(Account {
            user_id: user.id.clone(),
            username: user.username.clone(),
            display_name: user.display_name.clone(),
            approved: user.is_approved || user.role == Role::Admin,
            is_creator: matches!(user.role, Role::Creator | Role::Admin),
        });
        self.state.stream = match self.api.stream_info().await {
            Ok(s) => Some(StreamInfo::from(&s)),
            Err(e) => {
                tracing::debug!("no stream info yet: {e}");
                None
            }
        };
    }

    async fn setup(&mut self, s: StreamSetup) -> Result<()> {
        self.require_login()?;
        let title = s.title.trim().to_string();
        if title.is_empty() {
            return Err(SessionError::Invalid("the title may not be empty".into()));
        }
        let stream = self
            .api
            .setup_stream(&SetupStreamRequest {
                title,
                description: s.description,
                is_chat_enabled: s.chat_enabled,
                is_chat_delayed: s.chat_delayed,
                is_chat_followers_only: s.chat_followers_only,
            })
            .await?;
        self.state.stream = Some(StreamInfo::from(&stream));
        Ok(())
    }

    /// Starts the sources (preview, meter) if they are not running.
    fn ensure_sources(&mut self) -> Result<()> {
        if self.video.is_none() {
            let v = VideoPipeline::start(
                &self.config.video,
                self.clock.clone(),
                self.counters.clone(),
                self.media_tx.clone(),
            )?;
            v.set_camera_off(self.camera_off);
            self.video = Some(v);
        }
        if self.audio.is_none() {
            self.audio = AudioPipeline::start(
                &self.config.audio,
                self.clock.clone(),
                self.counters.clone(),
                self.media_tx.clone(),
            )?;
            if let Some(a) = &self.audio {
                a.muted.store(self.mic_muted, Ordering::Release);
            }
        }
        Ok(())
    }

    async fn go_live(&mut self) -> Result<()> {
        self.require_login()?;
        if self.live.is_some() || self.state.stream_state.is_on_air() {
            return Err(SessionError::Invalid("already live".into()));
        }
        // Devices first: a missing camera should not leave the backend showing "live".
        self.ensure_sources()?;
        let go_live_at = Instant::now();
        self.state.stream_state = StreamState::Connecting;
        self.state.summary = None;
        self.state.chat = Arc::default();
        self.state.moderation = Arc::default();
        self.slow_mode.clear();
        self.state.viewers = 0;
        self.state.peak_viewers = 0;
        self.state.health = Health::default();
        self.publish();

        let grant = match self.api.go_live().await {
            Ok(g) => g,
            Err(e) => {
                let e = SessionError::from(e);
                self.state.stream_state = StreamState::Failed {
                    reason: e.user_message(),
                };
                return Err(e);
            }
        };
        self.state.session_id = Some(grant.session_id.clone());
        self.state.stream = Some(StreamInfo::from(&grant.stream));
        self.publish();

        match self.connect_and_publish(&grant, go_live_at).await {
            Ok(live) => {
                self.state.stream_state = StreamState::Live;
                self.state.live_since = Some(SystemTime::now());
                self.live = Some(live);
                self.refresh_health();
                Ok(())
            }
            Err(e) => {
                // Take the backend out of "live" again; keep the original error.
                if let Some(v) = &mut self.video {
                    v.stop_encoders();
                }
                if let Some(a) = &self.audio {
                    a.attach(None);
                }
                if let Err(end) = self.api.end_stream().await {
                    tracing::warn!("end-stream after failed connect: {end}");
                }
                self.state.stream_state = StreamState::Failed {
                    reason: e.user_message(),
                };
                Err(e)
            }
        }
    }

    async fn connect_and_publish(
        &mut self,
        grant: &streamit_api::GoLiveResponse,
        go_live_at: Instant,
    ) -> Result<Live> {
        let timeout = self.config.connect_timeout;
        let secs = timeout.as_secs();
        // The transport queues video per track, all simulcast layers together: give each
        // layer the configured depth.
        let mut publish = self.config.publish.clone();
        let n_layers = self
            .video
            .as_ref()
            .map(|v| v.layers(self.config.simulcast).len())
            .unwrap_or(1);
        publish.video_queue = publish.video_queue.max(1) * n_layers.max(1);
        let (handle, mut events) = tokio::time::timeout(
            timeout,
            lk::Publisher::connect(&grant.ws_url, &grant.token, publish),
        )
        .await
        .map_err(|_| SessionError::ConnectTimeout(secs))??;
        // Wait for the publisher transport; keep other early events for the live loop.
        let deadline = go_live_at + timeout;
        let mut early = Vec::new();
        loop {
            let ev = tokio::time::timeout_at(deadline.into(), events.recv())
                .await
                .map_err(|_| SessionError::ConnectTimeout(secs))?;
            match ev {
                Some(lk::PublisherEvent::StateChanged(lk::ConnectionState::Connected)) => break,
                Some(lk::PublisherEvent::StateChanged(lk::ConnectionState::Failed { error })) => {
                    return Err(SessionError::Transport(error));
                }
                Some(lk::PublisherEvent::StateChanged(lk::ConnectionState::Disconnected {
                    reason,
                })) => return Err(SessionError::Transport(reason)),
                Some(other) => early.push(other),
                None => return Err(SessionError::Transport("connection closed".into())),
            }
        }
        let connect_time = go_live_at.elapsed();
        self.announce_media_clock(&handle);

        let Some(video) = self.video.as_mut() else {
            return Err(SessionError::Invalid("no video source".into()));
        };
        let layers = video.layers(self.config.simulcast);
        let simulcast = layers.len() > 1;
        let mut opts = lk::VideoTrackOptions::new(
            self.config.codec.publish(),
            video.width,
            video.height,
            video.fps,
        );
        if simulcast {
            opts.simulcast = layers
                .iter()
                .map(|l| lk::LayerSpec {
                    quality: match l.quality {
                        streamit_media::Quality::Low => lk::VideoQuality::Low,
                        streamit_media::Quality::Medium => lk::VideoQuality::Medium,
                        streamit_media::Quality::High => lk::VideoQuality::High,
                    },
                    width: l.width,
                    height: l.height,
                    bitrate: lk::Bitrate(l.bitrate_bps as u64),
                })
                .collect();
        }
        let publish_timeout = tokio::time::timeout_at(deadline.into(), handle.publish_video(opts));
        let video_tx = publish_timeout
            .await
            .map_err(|_| SessionError::ConnectTimeout(secs))??;
        let encoders = video.start_encoders(
            self.config.codec,
            &layers,
            simulcast,
            video_tx.clone(),
            self.media_tx.clone(),
        )?;
        if self.camera_off {
            handle.set_muted(video_tx.cid(), true)?;
        }
        let audio_tx = match &self.audio {
            Some(a) => {
                let t = tokio::time::timeout_at(
                    deadline.into(),
                    handle.publish_audio(lk::AudioTrackOptions::default()),
                )
                .await
                .map_err(|_| SessionError::ConnectTimeout(secs))??;
                if self.mic_muted {
                    handle.set_muted(t.cid(), true)?;
                }
                a.attach(Some(t.clone()));
                Some(t)
            }
            None => None,
        };
        let c = &self.counters;
        let mut live = Live {
            handle,
            events,
            video: Some(video_tx),
            audio: audio_tx,
            encoders,
            session_id: grant.session_id.clone(),
            go_live_at,
            live_at: Instant::now(),
            connect_time,
            chat_messages: 0,
            participants: HashMap::new(),
            last_stats: lk::StatsSnapshot::default(),
            keyframe_requests: 0,
            reconnects: 0,
            base_encoded: c.encoded.load(Ordering::Relaxed),
            base_dropped: c.encoder_dropped.load(Ordering::Relaxed),
            base_audio: c.audio_packets.load(Ordering::Relaxed),
            base_captured: c.captured.load(Ordering::Relaxed),
        };
        for ev in early {
            self.apply_live_event(&mut live, ev);
        }
        tracing::info!(?connect_time, session = %grant.session_id, "live");
        Ok(live)
    }

    async fn end_stream(&mut self) -> Result<()> {
        let Some(live) = self.live.take() else {
            return Err(SessionError::Invalid("not live".into()));
        };
        self.refresh_health_from(&live);
        if let Some(v) = &mut self.video {
            v.stop_encoders();
        }
        if let Some(a) = &self.audio {
            a.attach(None);
        }
        for cid in [
            live.video.as_ref().map(|t| t.cid().clone()),
            live.audio.as_ref().map(|t| t.cid().clone()),
        ]
        .into_iter()
        .flatten()
        {
            if let Err(e) = live.handle.unpublish(&cid) {
                tracing::debug!("unpublish {cid}: {e}");
            }
        }
        match tokio::time::timeout(Duration::from_secs(5), live.handle.leave()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!("leave: {e}"),
            Err(_) => tracing::warn!("leave timed out"),
        }
        let mut summary = self.studio_summary(&live);
        let backend = self.close_backend_session(&live, &summary).await;
        summary.backend = backend.as_ref().ok().cloned();
        self.state.summary = Some(summary);
        self.state.stream_state = StreamState::Ended;
        self.state.viewers = 0;
        tracing::info!(go_live_to_end = ?live.go_live_at.elapsed(), "stream ended");
        match backend {
            Ok(_) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The studio's own figures for the summary of `live` (no backend record yet).
    fn studio_summary(&self, live: &Live) -> Summary {
        let duration = live.live_at.elapsed();
        let health = &self.state.health;
        let total_bytes: u64 = live.last_stats.layers.iter().map(|l| l.bytes).sum();
        Summary {
            backend: None,
            duration,
            connect_time: Some(live.connect_time),
            peak_viewers: self.state.peak_viewers,
            chat_messages: live.chat_messages,
            frames_sent: health.frames_sent,
            frames_dropped: health.frames_dropped,
            average_bitrate_bps: (total_bytes as f64 * 8.0 / duration.as_secs_f64().max(0.001))
                as u64,
            reconnects: live.reconnects,
            rtt: health.rtt,
        }
    }

    /// End-stream, then the studio's figures (chat count, frames sent and
    /// dropped, average bitrate, reconnects); the summary is the backend's
    /// latest record. Viewer counts are the backend's own (LiveKit webhooks)
    /// and are not reported.
    async fn close_backend_session(
        &mut self,
        live: &Live,
        studio: &Summary,
    ) -> std::result::Result<StreamSession, ApiError> {
        let ended = self.api.end_stream().await?;
        match self
            .api
            .report_session_stats(&live.session_id, &stats_report(studio))
            .await
        {
            Ok(s) => Ok(s),
            Err(e) => {
                tracing::warn!("reporting session stats: {e}");
                Ok(ended)
            }
        }
    }

    /// The transport died for good (or a device was lost): tidy up and fail.
    async fn on_transport_lost(&mut self, reason: String, kind: ErrorKind) {
        let Some(live) = self.live.take() else { return };
        tracing::warn!(%reason, "stream failed");
        if let Some(v) = &mut self.video {
            v.stop_encoders();
        }
        if let Some(a) = &self.audio {
            a.attach(None);
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), live.handle.leave()).await;
        let mut summary = self.studio_summary(&live);
        summary.backend = match self.close_backend_session(&live, &summary).await {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("end-stream after failure: {e}");
                None
            }
        };
        self.state.summary = Some(summary);
        self.state.stream_state = StreamState::Failed {
            reason: reason.clone(),
        };
        self.state.viewers = 0;
        Arc::make_mut(&mut self.state.errors).push(UserError {
            kind,
            message: reason,
            at: SystemTime::now(),
        });
        self.publish();
    }

    async fn on_media(&mut self, ev: MediaEvent) {
        match ev {
            MediaEvent::Preview(f) => {
                if !self.camera_off {
                    self.state.preview = Some(f);
                    // the preview alone does not need more than ~15 snapshots a second
                    if self.last_preview_sent.elapsed() >= Duration::from_millis(60) {
                        self.last_preview_sent = Instant::now();
                        self.publish();
                    }
                }
            }
            MediaEvent::MicLevel(l) => {
                self.state.mic_level = l;
            }
            MediaEvent::Failed(e) => {
                let err = SessionError::from(e);
                if self.live.is_some() {
                    self.on_transport_lost(format!("media failed: {err}"), err.kind())
                        .await;
                } else {
                    Arc::make_mut(&mut self.state.errors).push(err.to_user());
                }
                self.video = None;
                self.state.preview = None;
                self.publish();
            }
        }
    }

    async fn on_publisher(&mut self, ev: lk::PublisherEvent) {
        let Some(mut live) = self.live.take() else {
            return;
        };
        let fatal = match &ev {
            lk::PublisherEvent::StateChanged(lk::ConnectionState::Failed { error }) => {
                Some(format!("LiveKit connection failed: {error}"))
            }
            lk::PublisherEvent::StateChanged(lk::ConnectionState::Disconnected { reason }) => {
                Some(format!("disconnected by the LiveKit server: {reason}"))
            }
            _ => None,
        };
        self.apply_live_event(&mut live, ev);
        self.live = Some(live);
        if let Some(reason) = fatal {
            self.on_transport_lost(reason, ErrorKind::Network).await;
        } else {
            self.publish();
        }
    }

    fn apply_live_event(&mut self, live: &mut Live, ev: lk::PublisherEvent) {
        use lk::PublisherEvent as E;
        if !matches!(ev, E::Stats(_)) {
            tracing::debug!(?ev, "publisher event");
        }
        match ev {
            E::StateChanged(lk::ConnectionState::Reconnecting { attempt, max }) => {
                if !matches!(self.state.stream_state, StreamState::Reconnecting { .. }) {
                    live.reconnects += 1;
                }
                self.state.stream_state = StreamState::Reconnecting { attempt, max };
            }
            E::StateChanged(lk::ConnectionState::Connected) => {
                self.state.stream_state = StreamState::Live;
                live.encoders.iter().for_each(|e| e.request_keyframe());
                // A rejoin keeps attributes only if the server's refreshed token (which
                // carries them) arrived before the failure; the same value again is harmless.
                self.announce_media_clock(&live.handle);
            }
            E::StateChanged(_) => {}
            E::ChatReceived {
                id,
                from_identity,
                from_name,
                text,
                ..
            } => {
                let identity = from_identity.to_string();
                let known = live.participants.get(&identity);
                let role = known
                    .map(|p| ChatRole::from_attributes(&p.attributes))
                    .unwrap_or_default();
                let sender = match known {
                    _ if !from_name.is_empty() => from_name,
                    Some(p) if !p.name.is_empty() => p.name.clone(),
                    _ => identity.clone(),
                };
                if role.is_audience()
                    && self
                        .state
                        .stream
                        .as_ref()
                        .is_some_and(|s| s.chat_enabled && s.chat_delayed)
                    && let Pace::TooEarly { remaining } =
                        self.slow_mode.check(&identity, Instant::now())
                {
                    self.enforce_slow_mode(live, &id, &identity, &sender, remaining);
                    return;
                }
                live.chat_messages += 1;
                self.push_chat(ChatEntry {
                    id,
                    sender,
                    identity,
                    role,
                    text,
                    own: false,
                    at: SystemTime::now(),
                });
            }
            E::ViewerCount(_) => self.count_viewers(live),
            E::ParticipantLeft(who) => {
                live.participants.remove(who.as_str());
                self.count_viewers(live);
            }
            E::KeyframeRequested { layer, .. } => {
                live.keyframe_requests += 1;
                for e in &live.encoders {
                    if layer.is_none() || e.quality.is_none() || e.quality == layer {
                        e.request_keyframe();
                    }
                }
            }
            E::TargetBitrate(b) => distribute_bitrate(&live.encoders, b.bps()),
            E::Stats(s) => live.last_stats = s,
            E::Error(m) => tracing::warn!("publisher: {m}"),
            E::ParticipantJoined(p) | E::ParticipantUpdated(p) => {
                self.fill_in_sender(&p);
                live.participants.insert(p.identity.to_string(), p);
                self.count_viewers(live);
            }
            E::LayersWanted { layers, .. } => {
                // Dynacast: encode only the simulcast layers someone watches.
                for e in &live.encoders {
                    if let Some(q) = e.quality {
                        e.set_wanted(layers.contains(&q));
                    }
                }
            }
            E::DataReceived { .. }
            | E::TrackPublished { .. }
            | E::TrackSubscribed(_)
            | E::TrackUnsubscribed { .. }
            | E::TrackMuted { .. } => {}
        }
    }

    /// Tells every participant the media clock's epoch (a participant attribute), so a
    /// viewer anywhere — `watch`, with a synced clock — can turn the pattern's capture
    /// times into wall-clock times.
    fn announce_media_clock(&self, handle: &lk::PublisherHandle) {
        let attributes = crate::watch::clock_epoch_attributes(self.clock.epoch());
        if let Err(e) = handle.set_attributes(attributes) {
            tracing::warn!("media clock epoch not announced: {e}");
        }
    }

    /// The viewer count: remote participants that are viewers or guests (what the watch
    /// page counts); one without a role attribute counts as a viewer, hidden ones do not.
    fn count_viewers(&mut self, live: &Live) {
        let n = live
            .participants
            .values()
            .filter(|p| !p.hidden && ChatRole::from_attributes(&p.attributes).is_audience())
            .count() as u32;
        self.state.viewers = n;
        self.state.peak_viewers = self.state.peak_viewers.max(n);
    }

    /// A slow-mode violation: the message is not shown or counted, every client removes it,
    /// and the viewer is timed out for the rest of the interval (the backend revokes
    /// `canPublishData`, so the SFU holds them to the pace).
    fn enforce_slow_mode(
        &mut self,
        live: &Live,
        message_id: &str,
        identity: &str,
        name: &str,
        remaining: Duration,
    ) {
        tracing::info!(%identity, ?remaining, "slow mode: message hidden");
        if !message_id.is_empty() {
            self.send_moderation(
                live,
                &ModerationEvent::DeleteMessage {
                    message_id: message_id.to_string(),
                },
            );
        }
        let secs = timeout_secs(remaining);
        let req = TimeoutRequest {
            identity: identity.to_string(),
            duration_secs: secs,
            reason: Some("slow mode".into()),
        };
        let api = self.api.clone();
        self.spawn_backend(
            format!("Slow mode: hid a message from {name}, who may chat again in {secs} s"),
            format!("Slow mode: hid a message from {name}, but pausing their chat failed"),
            async move { api.timeout_viewer(&req).await.map(drop) },
        );
    }

    /// Sends a moderation event to every participant (reliable, on `streamit.moderation`).
    fn send_moderation(&self, live: &Live, event: &ModerationEvent) {
        let payload = match serde_json::to_vec(event) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("encoding a moderation event: {e}");
                return;
            }
        };
        if let Err(e) = live.handle.send_data(
            payload,
            lk::Reliability::Reliable,
            Some(room::MODERATION_TOPIC.to_string()),
        ) {
            tracing::warn!("moderation event not sent: {e}");
        }
    }

    /// Runs a backend call beside the live loop (bounded by [`BACKEND_CALL_TIMEOUT`]); its
    /// outcome comes back to the loop as a notice (and an error when it failed).
    fn spawn_backend<F>(&self, success: String, failure: String, call: F)
    where
        F: std::future::Future<Output = std::result::Result<(), ApiError>> + Send + 'static,
    {
        let tx = self.outcome_tx.clone();
        tokio::spawn(async move {
            let result = match tokio::time::timeout(BACKEND_CALL_TIMEOUT, call).await {
                Ok(r) => r.map_err(SessionError::from),
                Err(_) => Err(SessionError::BackendTimeout(BACKEND_CALL_TIMEOUT.as_secs())),
            };
            let _ = tx
                .send(Outcome {
                    success,
                    failure,
                    result,
                })
                .await;
        });
    }

    fn on_outcome(&mut self, o: Outcome) {
        let notice = match o.result {
            Ok(()) => ModerationNotice {
                message: o.success,
                ok: true,
                at: SystemTime::now(),
            },
            Err(e) => {
                tracing::warn!(error = %e, "{}", o.failure);
                let message = format!("{}: {}", o.failure, e.user_message());
                Arc::make_mut(&mut self.state.errors).push(UserError {
                    kind: e.kind(),
                    message: message.clone(),
                    at: SystemTime::now(),
                });
                ModerationNotice {
                    message,
                    ok: false,
                    at: SystemTime::now(),
                }
            }
        };
        self.push_notice(notice);
    }

    fn push_notice(&mut self, notice: ModerationNotice) {
        let log = Arc::make_mut(&mut self.state.moderation);
        log.push(notice);
        if log.len() > 100 {
            log.remove(0);
        }
    }

    /// The name to show for a participant: its display name, else what its messages
    /// carried, else the identity.
    fn name_of(&self, identity: &str) -> String {
        self.live
            .as_ref()
            .and_then(|l| l.participants.get(identity))
            .map(|p| p.name.clone())
            .filter(|n| !n.is_empty())
            .or_else(|| {
                self.state
                    .chat
                    .iter()
                    .rev()
                    .find(|c| c.identity == identity && !c.sender.is_empty())
                    .map(|c| c.sender.clone())
            })
            .unwrap_or_else(|| identity.to_string())
    }

    /// Refuses moderating the creator (this studio's own account, or anyone with the
    /// creator's role).
    fn moderatable(&self, identity: &str) -> Result<()> {
        if identity.trim().is_empty() {
            return Err(SessionError::Invalid("no viewer named".into()));
        }
        let own = self
            .state
            .account
            .as_ref()
            .is_some_and(|a| a.user_id == identity)
            || self
                .live
                .as_ref()
                .is_some_and(|l| l.handle.identity().as_str() == identity);
        let creator = self
            .live
            .as_ref()
            .and_then(|l| l.participants.get(identity))
            .is_some_and(|p| ChatRole::from_attributes(&p.attributes) == ChatRole::Creator);
        if own || creator {
            return Err(SessionError::Invalid(
                "the creator's own messages cannot be moderated".into(),
            ));
        }
        Ok(())
    }

    fn remove_message(&mut self, message_id: &str) -> Result<()> {
        let Some(live) = self.live.as_ref() else {
            return Err(SessionError::Invalid(
                "messages can be removed while live".into(),
            ));
        };
        let Some(entry) = self
            .state
            .chat
            .iter()
            .find(|c| !message_id.is_empty() && c.id == message_id)
            .cloned()
        else {
            return Err(SessionError::Invalid(
                "that message is not in the chat".into(),
            ));
        };
        if entry.own {
            return Err(SessionError::Invalid(
                "the creator's own messages cannot be moderated".into(),
            ));
        }
        self.moderatable(&entry.identity)?;
        self.send_moderation(
            live,
            &ModerationEvent::DeleteMessage {
                message_id: message_id.to_string(),
            },
        );
        Arc::make_mut(&mut self.state.chat).retain(|c| c.id != message_id);
        self.push_notice(ModerationNotice {
            message: format!("Removed a message from {}", entry.sender),
            ok: true,
            at: SystemTime::now(),
        });
        Ok(())
    }

    fn timeout_viewer(&mut self, identity: &str, duration: Duration) -> Result<()> {
        self.require_login()?;
        self.moderatable(identity)?;
        let secs = duration.as_secs();
        if !(1..=limits::TIMEOUT_SECS_MAX).contains(&secs) {
            return Err(SessionError::Invalid(format!(
                "a timeout lasts 1 s to {} days",
                limits::TIMEOUT_SECS_MAX / 86_400
            )));
        }
        let name = self.name_of(identity);
        let req = TimeoutRequest {
            identity: identity.to_string(),
            duration_secs: secs,
            reason: None,
        };
        let api = self.api.clone();
        let how_long = human_duration(secs);
        self.spawn_backend(
            format!("Timed out {name} for {how_long}"),
            format!("Timing out {name} failed"),
            async move { api.timeout_viewer(&req).await.map(drop) },
        );
        Ok(())
    }

    fn ban_viewer(&mut self, identity: &str) -> Result<()> {
        self.require_login()?;
        self.moderatable(identity)?;
        let name = self.name_of(identity);
        // Their messages go at once, everywhere; the ban itself is the backend's.
        if let Some(live) = &self.live {
            self.send_moderation(
                live,
                &ModerationEvent::DeleteMessagesFrom {
                    identity: identity.to_string(),
                },
            );
        }
        Arc::make_mut(&mut self.state.chat).retain(|c| c.identity != identity);
        let req = BanRequest {
            identity: identity.to_string(),
            reason: None,
        };
        let api = self.api.clone();
        self.spawn_backend(
            format!("Banned {name}"),
            format!("Banning {name} failed"),
            async move { api.ban(&req).await.map(drop) },
        );
        Ok(())
    }

    /// A message can overtake its sender's participant info (data channel vs. signalling,
    /// and a guest who rejoins under a new name chats at once): name and role then arrive
    /// with the participant, and the messages already shown get them too.
    fn fill_in_sender(&mut self, p: &lk::RemoteParticipant) {
        let identity = p.identity.as_str();
        let role = ChatRole::from_attributes(&p.attributes);
        let stale = |c: &ChatEntry| {
            !c.own
                && c.identity == identity
                && (c.role != role || (c.sender == c.identity && !p.name.is_empty()))
        };
        if !self.state.chat.iter().any(stale) {
            return;
        }
        for c in Arc::make_mut(&mut self.state.chat).iter_mut() {
            if stale(c) {
                c.role = role;
                if c.sender == c.identity && !p.name.is_empty() {
                    c.sender = p.name.clone();
                }
            }
        }
    }

    fn push_chat(&mut self, entry: ChatEntry) {
        let chat = Arc::make_mut(&mut self.state.chat);
        chat.push(entry);
        let max = self.config.chat_history.max(1);
        if chat.len() > max {
            let extra = chat.len() - max;
            chat.drain(..extra);
        }
    }

    fn refresh_health(&mut self) {
        if let Some(live) = self.live.take() {
            self.refresh_health_from(&live);
            self.live = Some(live);
        }
    }

    fn refresh_health_from(&mut self, live: &Live) {
        let c = &self.counters;
        let s = &live.last_stats;
        let transport_dropped = live.video.as_ref().map(|v| v.dropped()).unwrap_or(0);
        let encoded = c.encoded.load(Ordering::Relaxed) - live.base_encoded;
        let step = self.video.as_ref().map(|v| v.status.get());
        self.state.health = Health {
            frames_captured: c.captured.load(Ordering::Relaxed) - live.base_captured,
            frames_sent: encoded.saturating_sub(transport_dropped),
            frames_dropped: c.encoder_dropped.load(Ordering::Relaxed) - live.base_dropped
                + transport_dropped,
            audio_packets_sent: c.audio_packets.load(Ordering::Relaxed) - live.base_audio,
            bitrate_bps: s.egress_bitrate.bps(),
            target_bitrate_bps: s.bandwidth_estimate.map(|b| b.bps()),
            rtt: s.rtt,
            packet_loss: packet_loss(&s.layers),
            keyframe_requests: live.keyframe_requests,
            reconnects: live.reconnects,
            connection_quality: s.connection_quality.map(|q| match q {
                lk::ConnectionQuality::Excellent => "excellent",
                lk::ConnectionQuality::Good => "good",
                lk::ConnectionQuality::Poor => "poor",
                lk::ConnectionQuality::Lost => "lost",
            }),
            transport: s.transport.map(lk::TransportProtocol::name),
            cpu_limited: step
                .filter(|s| s.limited)
                .map(|s| crate::state::CpuLimited {
                    width: s.width,
                    height: s.height,
                    fps: s.fps,
                }),
            cpu_adaptations: step.map_or(0, |s| s.step_downs),
        };
    }
}

/// Splits the transport's target bitrate over the layers someone watches (dynacast; the
/// transport's target covers only those) in proportion to their nominal rates, never
/// above nominal and never below 30 kbit/s. Paused layers keep their last rate.
pub(crate) fn distribute_bitrate(encoders: &[Arc<EncoderControl>], target_bps: u64) {
    let nominal: u64 = encoders
        .iter()
        .filter(|e| e.is_wanted())
        .map(|e| e.nominal_bps as u64)
        .sum();
    if nominal == 0 {
        return;
    }
    let factor = (target_bps as f64 / nominal as f64).min(1.0);
    for e in encoders.iter().filter(|e| e.is_wanted()) {
        let bps = ((e.nominal_bps as f64 * factor) as u32).max(30_000);
        e.set_bitrate(bps);
    }
}

/// One loss figure for the connection from the per-layer fractions the receiver reports
/// carry (0..1): the layers' average weighted by their current bitrate, so a lossy
/// high layer counts for more than a lossy thumbnail; a plain average while no layer has
/// a bitrate yet. Layers without a report (and nonsense values) are left out; `None` when
/// no layer has one.
pub(crate) fn packet_loss(layers: &[lk::LayerStats]) -> Option<f32> {
    let reported: Vec<(f64, f64)> = layers
        .iter()
        .filter_map(|l| {
            let loss = l.loss.filter(|f| f.is_finite())?;
            Some((f64::from(loss.clamp(0.0, 1.0)), l.bitrate.bps() as f64))
        })
        .collect();
    if reported.is_empty() {
        return None;
    }
    let weight: f64 = reported.iter().map(|(_, w)| w).sum();
    let loss = if weight > 0.0 {
        reported.iter().map(|(f, w)| f * w).sum::<f64>() / weight
    } else {
        reported.iter().map(|(f, _)| f).sum::<f64>() / reported.len() as f64
    };
    Some(loss.clamp(0.0, 1.0) as f32)
}

/// "5 min", "1 h", "90 s": how a timeout's length reads in a notice.
pub(crate) fn human_duration(secs: u64) -> String {
    if secs >= 3600 && secs.is_multiple_of(3600) {
        format!("{} h", secs / 3600)
    } else if secs >= 60 && secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

/// The figures the studio reports to the backend at the end of a session.
fn stats_report(studio: &Summary) -> SessionStatsReport {
    let clamp = |v: u64| v.min(i64::MAX as u64) as i64;
    SessionStatsReport {
        chat_messages: clamp(studio.chat_messages),
        frames_sent: Some(clamp(studio.frames_sent)),
        frames_dropped: Some(clamp(studio.frames_dropped)),
        average_bitrate_bps: Some(clamp(studio.average_bitrate_bps)),
        reconnects: Some(i64::from(studio.reconnects)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(rid: &str, bps: u64, loss: Option<f32>) -> lk::LayerStats {
        lk::LayerStats {
            rid: Some(rid.into()),
            bitrate: lk::Bitrate(bps),
            loss,
            ..Default::default()
        }
    }

    #[test]
    fn packet_loss_is_the_bitrate_weighted_receiver_report_fraction() {
        // nothing reported yet
        assert_eq!(packet_loss(&[]), None);
        assert_eq!(packet_loss(&[layer("f", 1_000_000, None)]), None);
        // one layer: its fraction
        assert_eq!(
            packet_loss(&[layer("f", 1_000_000, Some(0.05))]),
            Some(0.05)
        );
        // weighted by bitrate: 10 % on 900 kbit/s, 0 % on 100 kbit/s → 9 %
        let l = packet_loss(&[
            layer("f", 900_000, Some(0.10)),
            layer("q", 100_000, Some(0.0)),
            layer("h", 300_000, None),
        ])
        .unwrap();
        assert!((l - 0.09).abs() < 1e-6, "{l}");
        // no bitrate yet: plain average
        let l = packet_loss(&[layer("f", 0, Some(0.2)), layer("q", 0, Some(0.0))]).unwrap();
        assert!((l - 0.1).abs() < 1e-6, "{l}");
        // out-of-range and non-finite values never leave 0..1
        assert_eq!(packet_loss(&[layer("f", 1000, Some(1.5))]), Some(1.0));
        assert_eq!(packet_loss(&[layer("f", 1000, Some(-0.5))]), Some(0.0));
        assert_eq!(packet_loss(&[layer("f", 1000, Some(f32::NAN))]), None);
    }

    #[test]
    fn target_bitrate_is_split_in_proportion_and_capped_at_nominal() {
        let layers = [
            Arc::new(EncoderControl::new(Some(lk::VideoQuality::Low), 100_000)),
            Arc::new(EncoderControl::new(Some(lk::VideoQuality::Medium), 300_000)),
            Arc::new(EncoderControl::new(Some(lk::VideoQuality::High), 1_000_000)),
        ];
        distribute_bitrate(&layers, 700_000);
        let got: Vec<u32> = layers.iter().map(|l| l.bitrate()).collect();
        assert_eq!(got, vec![50_000, 150_000, 500_000]);
        distribute_bitrate(&layers, 10_000_000);
        let got: Vec<u32> = layers.iter().map(|l| l.bitrate()).collect();
        assert_eq!(got, vec![100_000, 300_000, 1_000_000]);
        distribute_bitrate(&layers, 0);
        assert!(layers.iter().all(|l| l.bitrate() == 30_000));
        // only the high layer is watched: it gets the whole target
        layers[0].set_wanted(false);
        layers[1].set_wanted(false);
        distribute_bitrate(&layers, 800_000);
        let got: Vec<u32> = layers.iter().map(|l| l.bitrate()).collect();
        assert_eq!(got, vec![30_000, 30_000, 800_000]);
    }

    #[test]
    fn timeouts_read_in_the_largest_whole_unit() {
        assert_eq!(human_duration(300), "5 min");
        assert_eq!(human_duration(600), "10 min");
        assert_eq!(human_duration(3600), "1 h");
        assert_eq!(human_duration(5400), "90 min");
        assert_eq!(human_duration(7), "7 s");
    }
}
