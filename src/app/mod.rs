//! The studio GUI (eframe/egui): one module per screen.
//!
//! The [`App`] renders the latest [`SessionState`] snapshot and sends [`Command`]s; it never
//! waits for network or device I/O on the UI thread. A small task on the tokio runtime waits
//! for new snapshots and asks egui to repaint, so nothing spins while idle.

mod devices;
mod ended;
mod live;
mod login;
pub mod preview;
mod screen_grant;
mod screen_share;
mod setup;
pub mod theme;

/// How the live and ended screens write a bitrate, the packet loss and the end confirmation's
/// audience (tests read labels with them).
pub use live::{bitrate, end_notice, packet_loss};

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use egui::{RichText, Ui};
use streamit_session::{
    Command, ScreenShareState, ScreenTarget, SessionConfig, SessionHandle, SessionState,
    StreamState,
};
use tokio::sync::watch;

/// The keyring entry the CLI's `login` uses too (service, user = API URL).
const KEYRING_SERVICE: &str = "streamit-studio";

/// Launch options besides the session.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The backend URL (shown on the login screen; the keyring entry's name).
    pub api_url: String,
    /// Store "remember me" tokens in the OS keyring (off in tests).
    pub use_keyring: bool,
    /// Test hook (`STREAMIT_STUDIO_AUTO_GO_LIVE=n`): press Go Live once it is possible and
    /// the setup screen has been up for n s.
    pub auto_go_live: Option<Duration>,
    /// Test hook (`STREAMIT_STUDIO_AUTO_END_SECS=n`): end the stream after n s live.
    pub auto_end_after: Option<Duration>,
    /// Test hook (`STREAMIT_STUDIO_AUTO_RECORD=1`): tick "Record while live" on the setup
    /// screen.
    pub auto_record: bool,
    /// Test hook (`STREAMIT_STUDIO_AUTO_SHARE=window:TITLE`, or any `--screen` value of
    /// `publish`): share it beside the camera once the setup screen is up, as picking it
    /// in the Screen picker does.
    pub auto_share: Option<ScreenTarget>,
    /// Start with the system's camera and microphone (or the remembered choice) instead of
    /// the session's configured sources. Off in tests and with the test hook
    /// `STREAMIT_STUDIO_TEST_SOURCES=1` (test pattern and tone, nothing remembered).
    pub pick_devices: bool,
}

impl Options {
    /// Reads the explicit test hooks from the environment.
    pub fn from_env(api_url: String) -> Self {
        Options {
            api_url,
            use_keyring: std::env::var_os("STREAMIT_STUDIO_NO_KEYRING").is_none(),
            auto_go_live: secs_from_env("STREAMIT_STUDIO_AUTO_GO_LIVE"),
            auto_end_after: secs_from_env("STREAMIT_STUDIO_AUTO_END_SECS"),
            auto_record: std::env::var("STREAMIT_STUDIO_AUTO_RECORD").as_deref() == Ok("1"),
            auto_share: std::env::var("STREAMIT_STUDIO_AUTO_SHARE")
                .ok()
                .and_then(|s| match s.parse() {
                    Ok(t) => Some(t),
                    Err(e) => {
                        tracing::warn!("STREAMIT_STUDIO_AUTO_SHARE ignored: {e}");
                        None
                    }
                }),
            pick_devices: std::env::var_os("STREAMIT_STUDIO_TEST_SOURCES").is_none(),
        }
    }
}

fn secs_from_env(name: &str) -> Option<Duration> {
    std::env::var(name)
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// Which screen the state calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Login,
    Setup,
    Live,
    Ended,
}

impl Screen {
    pub fn of(s: &SessionState) -> Screen {
        if s.account.is_none() {
            return Screen::Login;
        }
        match s.stream_state {
            StreamState::Connecting | StreamState::Live | StreamState::Reconnecting { .. } => {
                Screen::Live
            }
            StreamState::Ended if s.summary.is_some() => Screen::Ended,
            // A stream that was live and stopped without being asked to: its ending, not
            // the setup screen's "Going live failed".
            StreamState::Failed { .. }
                if s.summary.as_ref().is_some_and(|s| s.interruption.is_some()) =>
            {
                Screen::Ended
            }
            _ => Screen::Setup,
        }
    }
}

/// The studio window.
pub struct App {
    session: SessionHandle,
    state_rx: watch::Receiver<SessionState>,
    state: SessionState,
    runtime: tokio::runtime::Handle,
    options: Options,
    login: login::LoginScreen,
    setup: setup::SetupScreen,
    live: live::LiveScreen,
    preview: preview::Preview,
    /// The screen share's picture, while sharing.
    screen_preview: preview::Preview,
    devices: devices::Devices,
    screen: Option<Screen>,
    screen_since: Instant,
    window_title: String,
    /// Remember the token once the pending login succeeds.
    remember_pending: bool,
    auto_go_live_done: bool,
    auto_end_done: bool,
    /// The start's sources were chosen (see [`Options::pick_devices`]).
    sources_chosen: bool,
    /// The window was fitted to its monitor.
    fitted: bool,
}

impl App {
    /// Builds the app and starts the repaint-on-change task on `runtime`.
    pub fn new(
        ctx: &egui::Context,
        session: SessionHandle,
        runtime: tokio::runtime::Handle,
        options: Options,
    ) -> App {
        theme::install(ctx);
        let mut rx = session.subscribe();
        let waker = ctx.clone();
        runtime.spawn(async move {
            while rx.changed().await.is_ok() {
                waker.request_repaint();
            }
        });
        let state_rx = session.subscribe();
        let state = state_rx.borrow().clone();
        App {
            session,
            state_rx,
            state,
            runtime,
            options,
            login: Default::default(),
            setup: Default::default(),
            live: Default::default(),
            preview: Default::default(),
            screen_preview: Default::default(),
            devices: Default::default(),
            screen: None,
            screen_since: Instant::now(),
            window_title: String::new(),
            remember_pending: false,
            auto_go_live_done: false,
            auto_end_done: false,
            sources_chosen: false,
            fitted: false,
        }
    }

    /// The snapshot the last frame rendered.
    #[allow(dead_code)] // read by the UI tests (tests/gui.rs)
    pub fn state(&self) -> &SessionState {
        &self.state
    }

    /// The screen on display.
    #[allow(dead_code)] // read by the UI tests (tests/gui.rs)
    pub fn screen(&self) -> Screen {
        Screen::of(&self.state)
    }

    /// The window title last sent to the window.
    #[allow(dead_code)] // read by the UI tests (tests/gui.rs)
    pub fn window_title(&self) -> &str {
        &self.window_title
    }

    /// Preview textures uploaded so far.
    #[allow(dead_code)] // read by the UI tests (tests/gui.rs)
    pub fn preview_uploads(&self) -> u64 {
        self.preview.uploads
    }

    /// The screens and windows the last device scan found, by name (`None` before one).
    #[allow(dead_code)] // read by the UI tests (tests/gui_screen_share.rs)
    pub fn screen_sources(&self) -> Option<Vec<String>> {
        self.devices.screen_names()
    }

    fn send(&self, command: Command) {
        if let Err(e) = self.session.send(command) {
            tracing::warn!("session command not queued: {e}");
        }
    }

    fn title_for(&self) -> String {
        let s = &self.state;
        let what = match Screen::of(s) {
            Screen::Login => "Sign in".to_string(),
            Screen::Ended if matches!(s.stream_state, StreamState::Failed { .. }) => {
                "Stream interrupted".to_string()
            }
            Screen::Ended => "Stream ended".to_string(),
            Screen::Setup => match &s.stream_state {
                StreamState::Failed { .. } => "Go live failed".to_string(),
                _ => "Ready to go live".to_string(),
            },
            Screen::Live => match &s.stream_state {
                StreamState::Connecting => "Connecting…".to_string(),
                StreamState::Reconnecting { attempt, max } => {
                    format!("Reconnecting {attempt}/{max}")
                }
                _ => format!(
                    "LIVE · {} viewer{}{}",
                    s.viewers,
                    if s.viewers == 1 { "" } else { "s" },
                    // Seen from the taskbar too: the banner's news.
                    if s.backend.unreachable_since.is_some() {
                        " · server not responding"
                    } else {
                        ""
                    }
                ),
            },
        };
        // A share shows what is on the creator's screen to everyone: the taskbar says so.
        let sharing = match (&s.screen_share, Screen::of(s)) {
            (ScreenShareState::Sharing { .. }, Screen::Setup | Screen::Live) => " · sharing screen",
            _ => "",
        };
        format!("StreamIt Studio — {what}{sharing}")
    }

    fn keyring_store(&self) {
        if !self.options.use_keyring {
            return;
        }
        let Some(token) = self.session.token() else {
            return;
        };
        let api = self.options.api_url.trim_end_matches('/').to_string();
        self.runtime.spawn_blocking(move || {
            match keyring::Entry::new(KEYRING_SERVICE, &api).and_then(|e| e.set_password(&token)) {
                Ok(()) => tracing::info!("session token stored in the OS keyring"),
                Err(e) => tracing::warn!("cannot store the session in the OS keyring: {e}"),
            }
        });
    }

    fn keyring_forget(&self) {
        if !self.options.use_keyring {
            return;
        }
        let api = self.options.api_url.trim_end_matches('/').to_string();
        self.runtime.spawn_blocking(move || {
            if let Ok(e) = keyring::Entry::new(KEYRING_SERVICE, &api) {
                let _ = e.delete_credential();
            }
        });
    }

    fn hooks(&mut self) {
        let s = &self.state;
        if self.options.auto_record && !s.recording.on && Screen::of(s) == Screen::Setup {
            self.options.auto_record = false;
            let _ = self
                .session
                .send(Command::SetRecording { on: true, to: None });
        }
        if Screen::of(s) == Screen::Setup
            && let Some(target) = self.options.auto_share.take()
        {
            screen_share::start(&self.session, target, None, false);
        }
        if let Some(delay) = self.options.auto_go_live
            && !self.auto_go_live_done
            && Screen::of(s) == Screen::Setup
            && self.screen_since.elapsed() >= delay
            && self.setup.go_live_blocker(s).is_none()
        {
            self.auto_go_live_done = true;
            self.setup.go_live(&self.session, s);
        }
        if let (Some(after), Some(since)) = (self.options.auto_end_after, s.live_since)
            && !self.auto_end_done
            && s.stream_state == StreamState::Live
            && SystemTime::now()
                .duration_since(since)
                .is_ok_and(|d| d >= after)
        {
            self.auto_end_done = true;
            self.send(Command::EndStream);
        }
    }

    fn top_bar(&mut self, ui: &mut Ui, screen: Screen) {
        egui::Panel::top("top-bar")
            .frame(
                egui::Frame::new()
                    .fill(theme::PANEL)
                    .inner_margin(egui::Margin::symmetric(16, 10)),
            )
            .show(ui, |ui| {
                ui.horizontal(|ui| {
                    ui.label(
                        RichText::new("StreamIt Studio")
                            .size(17.0)
                            .family(theme::bold())
                            .color(theme::TEXT),
                    );
                    match &self.state.stream_state {
                        StreamState::Live => theme::pill(ui, "LIVE", theme::LIVE),
                        StreamState::Connecting => theme::pill(ui, "CONNECTING", theme::WARN),
                        StreamState::Reconnecting { .. } => {
                            theme::pill(ui, "RECONNECTING", theme::WARN)
                        }
                        _ if screen == Screen::Ended => theme::pill(ui, "ENDED", theme::BORDER),
                        _ => theme::pill(ui, "OFFLINE", theme::BORDER),
                    }
                    if self.state.busy {
                        ui.add(egui::Spinner::new().size(14.0));
                    }
                    ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                        let on_air = self.state.stream_state.is_on_air();
                        if ui
                            .add_enabled(!on_air, egui::Button::new("Log out"))
                            .on_disabled_hover_text("End the stream before logging out")
                            .clicked()
                        {
                            self.send(Command::Logout);
                            self.keyring_forget();
                        }
                        if let Some(a) = &self.state.account {
                            ui.label(RichText::new(format!("@{}", a.username)).color(theme::MUTED));
                            ui.label(RichText::new(&a.display_name).family(theme::bold()));
                        }
                    });
                });
            });
    }

    /// Errors other screens do not show inline.
    fn error_bar(&mut self, ui: &mut Ui, screen: Screen) {
        if screen == Screen::Login || screen == Screen::Setup {
            return;
        }
        let Some(err) = self.state.last_error().cloned() else {
            return;
        };
        // An interrupted stream's ending says it once, in words; the raw error is its
        // "Details", not a second message under it.
        let told = self
            .state
            .summary
            .as_ref()
            .and_then(|s| s.interruption.as_ref())
            .is_some_and(|i| i.detail == err.message);
        if screen == Screen::Ended && told {
            return;
        }
        egui::Panel::bottom("error-bar")
            .frame(egui::Frame::new().inner_margin(egui::Margin::symmetric(16, 8)))
            .show(ui, |ui| {
                theme::banner(ui, theme::ERROR_BG, theme::LIVE, |ui| {
                    ui.horizontal(|ui| {
                        ui.label(RichText::new(&err.message).color(theme::TEXT));
                        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                            if ui.button("Dismiss").clicked() {
                                self.send(Command::DismissErrors);
                            }
                        });
                    });
                });
            });
    }
}

impl eframe::App for App {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        // The newest snapshot (no waiting: `borrow` only reads the watch slot).
        if self.state_rx.has_changed().unwrap_or(false) {
            self.state = self.state_rx.borrow_and_update().clone();
        }
        let screen = Screen::of(&self.state);
        if self.screen != Some(screen) {
            self.on_enter(ctx, screen);
            self.screen = Some(screen);
            self.screen_since = Instant::now();
        }
        if self.remember_pending && self.state.account.is_some() {
            self.remember_pending = false;
            self.keyring_store();
        }
        self.fit_to_monitor(ctx);
        if screen == Screen::Setup && !self.sources_chosen {
            self.choose_sources();
        }
        let camera_off = self.state.media.as_ref().is_some_and(|m| m.camera_off);
        if camera_off {
            self.preview.clear();
        } else {
            self.preview.update(ctx, self.state.preview.as_ref());
        }
        match &self.state.screen_preview {
            Some(f) => self.screen_preview.update(ctx, Some(f)),
            None => self.screen_preview.clear(),
        }
        let title = self.title_for();
        if title != self.window_title {
            ctx.send_viewport_cmd(egui::ViewportCommand::Title(title.clone()));
            self.window_title = title;
        }
        self.hooks();
        if self.state.stream_state.is_on_air() {
            // The elapsed-time clock ticks even when no snapshot arrives.
            ctx.request_repaint_after(Duration::from_millis(500));
        }
    }

    fn ui(&mut self, ui: &mut Ui, _frame: &mut eframe::Frame) {
        let screen = Screen::of(&self.state);
        if screen != Screen::Login {
            self.top_bar(ui, screen);
        }
        self.error_bar(ui, screen);
        let state = &self.state;
        let session = &self.session;
        egui::CentralPanel::default()
            .frame(
                egui::Frame::new()
                    .fill(theme::BG)
                    .inner_margin(egui::Margin::same(20)),
            )
            .show(ui, |ui| match screen {
                Screen::Login => {
                    if self
                        .login
                        .show(ui, state, session, &self.options.api_url)
                        .submitted
                    {
                        self.remember_pending = self.login.remember;
                    }
                }
                Screen::Setup => {
                    let devices = self.devices.list();
                    let previews = preview::Previews {
                        camera: &self.preview,
                        screen: &self.screen_preview,
                    };
                    self.setup
                        .show(ui, state, session, previews, devices.as_ref());
                    if let Some(r) = self.setup.take_picked() {
                        self.devices.remember(&self.runtime, r);
                    }
                }
                Screen::Live => {
                    let devices = self.devices.list();
                    let screens = devices.as_ref().map_or(&[][..], |d| &d.screens[..]);
                    let previews = preview::Previews {
                        camera: &self.preview,
                        screen: &self.screen_preview,
                    };
                    self.live.show(ui, state, session, previews, screens);
                }
                Screen::Ended => ended::show(ui, state, session),
            });
    }
}

impl App {
    fn on_enter(&mut self, ctx: &egui::Context, screen: Screen) {
        match screen {
            Screen::Setup => {
                self.devices.scan(&self.runtime, ctx);
                self.setup.on_enter(&self.state);
                if !self.options.pick_devices {
                    self.sources_chosen = true;
                }
                // Otherwise the preview starts once the sources are chosen.
                if self.sources_chosen {
                    self.send(Command::StartPreview);
                }
            }
            Screen::Live => self.live.on_enter(),
            Screen::Login => {
                self.login.on_enter();
                self.preview.clear();
            }
            Screen::Ended => {}
        }
    }
}

impl App {
    /// Once the first device scan is in: the system's devices (or the remembered choice),
    /// then the preview.
    fn choose_sources(&mut self) {
        let Some(list) = self.devices.list() else {
            return;
        };
        let Some(media) = self.state.media.clone() else {
            return;
        };
        self.sources_chosen = true;
        let initial = devices::initial(&list);
        tracing::info!(
            "sources: {} (camera {}), {}",
            initial.video,
            if initial.camera_off { "off" } else { "on" },
            initial.audio
        );
        if initial.video != media.video {
            self.send(Command::SelectVideoSource(initial.video));
        }
        if initial.audio != media.audio {
            self.send(Command::SelectAudioSource(initial.audio));
        }
        if initial.camera_off != media.camera_off {
            self.send(Command::ToggleCamera);
        }
        // The switches the creator set by hand last time.
        let switch = |on: bool| {
            if on {
                streamit_session::MicProcessing::On
            } else {
                streamit_session::MicProcessing::Off
            }
        };
        let r = &list.remembered;
        if let Some(on) = r.noise_filter {
            self.send(Command::SetNoiseSuppression(switch(on)));
        }
        if let Some(on) = r.auto_level {
            self.send(Command::SetAutoGain(switch(on)));
        }
        if let Some(on) = r.record
            && on != self.state.recording.on
        {
            self.send(Command::SetRecording { on, to: None });
        }
        self.send(Command::StartPreview);
    }

    /// A window larger than its monitor (the default size at a scale factor of 2 on a
    /// 1280×800 screen) is shrunk to fit, so no part of it is out of reach.
    fn fit_to_monitor(&mut self, ctx: &egui::Context) {
        if self.fitted {
            return;
        }
        let (monitor, inner) = ctx.input(|i| {
            let v = i.viewport();
            (v.monitor_size, v.inner_rect)
        });
        let (Some(monitor), Some(inner)) = (monitor, inner) else {
            return;
        };
        self.fitted = true;
        if inner.width() > monitor.x || inner.height() > monitor.y {
            let size = inner
                .size()
                .min(monitor - egui::vec2(0.0, 40.0))
                .max(MIN_SIZE);
            tracing::info!(
                "window {:?} larger than the monitor {monitor:?}: {size:?}",
                inner.size()
            );
            ctx.send_viewport_cmd(egui::ViewportCommand::InnerSize(size));
            ctx.send_viewport_cmd(egui::ViewportCommand::OuterPosition(egui::pos2(0.0, 0.0)));
        }
    }
}

/// The smallest window, in points: 1280×800 at a scale factor of 2 (the setup and live
/// screens stack and scroll down to it).
pub const MIN_SIZE: egui::Vec2 = egui::vec2(640.0, 400.0);

/// Opens the studio window on this thread (the main thread) and returns when it closes.
pub fn run(
    session: SessionHandle,
    runtime: tokio::runtime::Handle,
    options: Options,
) -> anyhow::Result<()> {
    let icon = eframe::icon_data::from_png_bytes(theme::ICON_PNG).ok();
    let mut viewport = egui::ViewportBuilder::default()
        .with_title("StreamIt Studio")
        .with_app_id("streamit-studio")
        .with_inner_size([1280.0, 800.0])
        .with_min_inner_size(MIN_SIZE);
    if let Some(icon) = icon {
        viewport = viewport.with_icon(icon);
    }
    let native = eframe::NativeOptions {
        viewport,
        ..Default::default()
    };
    eframe::run_native(
        "StreamIt Studio",
        native,
        Box::new(move |cc| Ok(Box::new(App::new(&cc.egui_ctx, session, runtime, options)))),
    )
    .map_err(|e| anyhow::anyhow!("the studio window failed: {e}"))
}

/// The binary's default action: a session against `STREAMIT_API_URL` (default
/// `http://127.0.0.1:8080`), logged in with `STREAMIT_TOKEN` or the keyring's "remember me"
/// token, then the window. Ends the session when the window closes.
pub fn main(rt: &tokio::runtime::Runtime) -> std::process::ExitCode {
    let api_url =
        std::env::var("STREAMIT_API_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let options = Options::from_env(api_url.clone());
    let mut config = SessionConfig::new(api_url.clone());
    config.spool_dir = streamit_session::spool::default_dir();
    config.screen_grants = Some(if options.use_keyring {
        Arc::new(screen_grant::KeyringGrants::default())
    } else {
        Arc::new(streamit_session::MemoryGrants::default())
    });
    config.token = std::env::var("STREAMIT_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    let from_env = config.token.is_some();
    let session = SessionHandle::spawn_on(rt.handle(), config);
    if !from_env && options.use_keyring {
        // The keyring may talk D-Bus: read it off the UI thread.
        let s = session.clone();
        let api = api_url.trim_end_matches('/').to_string();
        rt.spawn_blocking(move || {
            if let Ok(token) =
                keyring::Entry::new(KEYRING_SERVICE, &api).and_then(|e| e.get_password())
            {
                let _ = s.send(Command::UseToken(token));
            }
        });
    }
    let result = run(session.clone(), rt.handle().clone(), options);
    // The window is gone: end any stream and stop the media threads (bounded).
    let _ = session.send(Command::Shutdown);
    let mut rx = session.subscribe();
    let started = Instant::now();
    rt.block_on(async {
        let _ = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|s| s.shut_down)).await;
    });
    tracing::debug!("session shut down in {:?}", started.elapsed());
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
