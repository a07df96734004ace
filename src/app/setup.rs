//! Setup: stream settings (validated by the backend, errors inline), sources with a live
//! preview and a mic meter, codec and quality, and Go Live with the reason when it is not
//! possible.

use std::time::{Instant, SystemTime};

use egui::{RichText, Ui, Vec2};
use streamit_api::limits;
use streamit_session::{
    AudioSourceSpec, Codec, Command, ErrorKind, MicCheck, MicProcessing, NoiseSuppression,
    SessionHandle, SessionState, StreamSetup, StreamState, VideoSourceSpec,
};

use super::devices::{self, CameraChoice, DeviceList, MicChoice, Remembered};
use super::preview::{self, Previews};
use super::screen_share;
use super::theme;

/// One line of a source picker.
#[derive(Debug, Clone, PartialEq)]
enum Item<T> {
    Pick(T, String),
    /// A line that cannot be picked ("No camera found").
    Note(String),
    Separator,
}

/// What the camera picker sets: a source, or the camera off.
#[derive(Debug, Clone, PartialEq)]
enum CameraPick {
    Source(VideoSourceSpec),
    Off,
}

/// The cameras found (or "No camera found"), then under a separator the test pattern and
/// camera off.
fn video_choices(current: &VideoSourceSpec, devices: Option<&DeviceList>) -> Vec<Item<CameraPick>> {
    let mut v = Vec::new();
    match devices {
        None => v.push(Item::Note("Looking for cameras…".into())),
        Some(d) if d.cameras.is_empty() => v.push(Item::Note("No camera found".into())),
        Some(d) => v.extend(
            d.cameras
                .iter()
                .map(|c| Item::Pick(CameraPick::Source(c.spec.clone()), c.label.clone())),
        ),
    }
    v.push(Item::Separator);
    v.push(Item::Pick(
        CameraPick::Source(devices::test_pattern()),
        "Test pattern".into(),
    ));
    // A source chosen elsewhere (the CLI's pattern sizes, a file) stays selectable.
    if !v
        .iter()
        .any(|i| matches!(i, Item::Pick(CameraPick::Source(s), _) if s == current))
    {
        v.push(Item::Pick(
            CameraPick::Source(current.clone()),
            current.to_string(),
        ));
    }
    v.push(Item::Pick(CameraPick::Off, "Camera off".into()));
    v
}

/// The microphones found (by their system names), then under a separator the test tone and
/// no microphone.
fn audio_choices(
    current: &AudioSourceSpec,
    devices: Option<&DeviceList>,
) -> Vec<Item<AudioSourceSpec>> {
    let mut v = Vec::new();
    match devices {
        None => v.push(Item::Note("Looking for microphones…".into())),
        Some(d) if d.microphones.is_empty() => v.push(Item::Note("No microphone found".into())),
        Some(d) => v.extend(
            d.microphones
                .iter()
                .map(|m| Item::Pick(m.spec.clone(), m.label.clone())),
        ),
    }
    v.push(Item::Separator);
    v.push(Item::Pick(AudioSourceSpec::Tone, "Test tone".into()));
    v.push(Item::Pick(AudioSourceSpec::None, "No microphone".into()));
    if !v
        .iter()
        .any(|i| matches!(i, Item::Pick(s, _) if s == current))
    {
        v.push(Item::Pick(current.clone(), current.to_string()));
    }
    v
}

/// The name a choice is remembered by.
fn remembered_camera(pick: &CameraPick, devices: Option<&DeviceList>) -> CameraChoice {
    match pick {
        CameraPick::Off => CameraChoice::Off,
        CameraPick::Source(spec) => devices
            .and_then(|d| d.cameras.iter().find(|c| &c.spec == spec))
            .map_or(CameraChoice::TestPattern, |c| {
                CameraChoice::Device(c.name.clone())
            }),
    }
}

fn remembered_mic(spec: &AudioSourceSpec, devices: Option<&DeviceList>) -> Option<MicChoice> {
    match spec {
        AudioSourceSpec::Tone => Some(MicChoice::TestTone),
        AudioSourceSpec::None => Some(MicChoice::None),
        _ => devices
            .and_then(|d| d.microphones.iter().find(|m| &m.spec == spec))
            .map(|m| MicChoice::Device(m.name.clone())),
    }
}

/// Below this width (in points) the setup screen is one column.
const STACK_BELOW: f32 = 780.0;

#[derive(Default)]
pub struct SetupScreen {
    title: String,
    description: String,
    chat_enabled: bool,
    chat_delayed: bool,
    chat_followers_only: bool,
    /// The form was filled from the backend's settings.
    loaded: bool,
    /// Go Live once the settings just sent are saved (when the click was; a newer error
    /// cancels).
    go_live_after_save: Option<SystemTime>,
    /// When the watch link was last copied.
    copied_at: Option<Instant>,
    /// A source the creator just picked, to remember (taken by the app).
    picked: Option<Remembered>,
}

impl SetupScreen {
    pub fn on_enter(&mut self, state: &SessionState) {
        self.loaded = false;
        self.load(state);
    }

    fn load(&mut self, state: &SessionState) {
        if self.loaded {
            return;
        }
        match &state.stream {
            Some(s) => {
                self.title = s.title.clone();
                self.description = s.description.clone().unwrap_or_default();
                self.chat_enabled = s.chat_enabled;
                self.chat_delayed = s.chat_delayed;
                self.chat_followers_only = s.chat_followers_only;
                self.loaded = true;
            }
            // No stream yet: chat on by default.
            None if state.account.is_some() && !self.chat_enabled && self.title.is_empty() => {
                self.chat_enabled = true;
            }
            None => {}
        }
    }

    fn setup(&self) -> StreamSetup {
        let d = self.description.trim();
        StreamSetup {
            title: self.title.trim().to_string(),
            description: (!d.is_empty()).then(|| d.to_string()),
            chat_enabled: Some(self.chat_enabled),
            chat_delayed: Some(self.chat_delayed),
            chat_followers_only: Some(self.chat_followers_only),
        }
    }

    /// True when the backend already has what the form shows.
    fn saved(&self, state: &SessionState) -> bool {
        let Some(s) = &state.stream else {
            return false;
        };
        let f = self.setup();
        s.title == f.title
            && s.description.as_deref().unwrap_or("") == f.description.as_deref().unwrap_or("")
            && s.chat_enabled == self.chat_enabled
            && s.chat_delayed == self.chat_delayed
            && s.chat_followers_only == self.chat_followers_only
    }

    /// Why Go Live is not possible now, for the user.
    pub fn go_live_blocker(&self, state: &SessionState) -> Option<String> {
        let a = state.account.as_ref()?;
        if !a.is_creator {
            return Some("Only creator accounts can go live.".into());
        }
        if !a.approved {
            return Some(
                "Your creator account is waiting for approval by a StreamIt admin.".into(),
            );
        }
        if self.title.trim().is_empty() {
            return Some("Give your stream a title first.".into());
        }
        if let Some(e) = state
            .errors
            .iter()
            .rev()
            .find(|e| e.kind == ErrorKind::Device)
        {
            return Some(format!("No working video source: {}", e.message));
        }
        let camera_off = state.media.as_ref().is_some_and(|m| m.camera_off);
        if state.preview.is_none() && !camera_off {
            return Some("Waiting for the video source…".into());
        }
        if state.busy || state.stream_state == StreamState::Connecting {
            return Some("Working…".into());
        }
        if self.go_live_after_save.is_some() {
            return Some("Saving your settings…".into());
        }
        None
    }

    /// Saves the form if needed, then goes live.
    pub fn go_live(&mut self, session: &SessionHandle, state: &SessionState) {
        // Old errors belong to old attempts.
        let _ = session.send(Command::DismissErrors);
        if self.saved(state) {
            let _ = session.send(Command::GoLive);
        } else {
            self.go_live_after_save = Some(SystemTime::now());
            let _ = session.send(Command::SetupStream(self.setup()));
        }
    }

    fn pending(&mut self, session: &SessionHandle, state: &SessionState) {
        if let Some(clicked) = self.go_live_after_save {
            if state.last_error().is_some_and(|e| e.at >= clicked) {
                self.go_live_after_save = None;
            } else if self.saved(state) && !state.busy {
                self.go_live_after_save = None;
                let _ = session.send(Command::GoLive);
            }
        }
    }

    pub fn show(
        &mut self,
        ui: &mut Ui,
        state: &SessionState,
        session: &SessionHandle,
        previews: Previews<'_>,
        devices: Option<&DeviceList>,
    ) {
        self.load(state);
        self.pending(session, state);
        // The Go Live bar stays visible at the bottom, whatever the window height.
        egui::Panel::bottom("go-live-bar")
            .show_separator_line(false)
            .frame(
                theme::card()
                    .inner_margin(egui::Margin::symmetric(18, 12))
                    .outer_margin(egui::Margin {
                        top: 12,
                        ..Default::default()
                    }),
            )
            .show(ui, |ui| {
                let blocker = self.go_live_blocker(state);
                ui.horizontal(|ui| {
                    // The reason wraps in the room the button leaves, never under it.
                    let button_w = 180.0;
                    let text_w = (ui.available_width() - button_w - 16.0).max(80.0);
                    ui.allocate_ui_with_layout(
                        Vec2::new(text_w, 44.0),
                        egui::Layout::left_to_right(egui::Align::Center),
                        |ui| {
                            let (color, text) = match &blocker {
                                Some(reason) => (theme::WARN, reason.as_str()),
                                None => (
                                    theme::GOOD,
                                    "Everything is ready. Viewers see you as soon as you go live.",
                                ),
                            };
                            theme::dot(ui, color);
                            let text_color = if blocker.is_some() {
                                theme::WARN
                            } else {
                                theme::MUTED
                            };
                            ui.add(egui::Label::new(RichText::new(text).color(text_color)).wrap());
                        },
                    );
                    ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                        let button = ui.add_enabled(
                            blocker.is_none(),
                            theme::primary("Go Live").min_size(Vec2::new(button_w, 44.0)),
                        );
                        if button.clicked() {
                            self.go_live(session, state);
                        }
                    });
                });
            });
        let total = ui.available_width();
        if total < STACK_BELOW {
            // Too narrow for two columns: the form, then the sources, in one scroll.
            egui::ScrollArea::vertical()
                .id_salt("setup-scroll")
                .auto_shrink([false, false])
                .show(ui, |ui| {
                    self.form(ui, state, session);
                    ui.add_space(12.0);
                    self.media(ui, state, session, previews, devices);
                });
            return;
        }
        let left_w = (total * 0.46).clamp(360.0, 560.0);
        egui::Panel::left("setup-form")
            .exact_size(left_w)
            .resizable(false)
            .show_separator_line(false)
            .frame(egui::Frame::new().inner_margin(egui::Margin {
                right: 16,
                ..Default::default()
            }))
            .show(ui, |ui| {
                egui::ScrollArea::vertical()
                    .id_salt("setup-form-scroll")
                    .auto_shrink([false, false])
                    .show(ui, |ui| self.form(ui, state, session));
            });
        egui::ScrollArea::vertical()
            .id_salt("setup-media-scroll")
            .auto_shrink([false, false])
            .show(ui, |ui| self.media(ui, state, session, previews, devices));
    }

    fn form(&mut self, ui: &mut Ui, state: &SessionState, session: &SessionHandle) {
        let w = (ui.available_width() - 36.0).max(200.0);
        theme::card().show(ui, |ui| {
            ui.set_width(w);
            ui.label(
                RichText::new("Stream details")
                    .size(19.0)
                    .family(theme::bold()),
            );
            if let Some(s) = &state.stream {
                theme::share_link(ui, &s.watch_url, &mut self.copied_at);
            }
            if let StreamState::Failed { reason } = &state.stream_state {
                theme::banner(ui, theme::ERROR_BG, theme::LIVE, |ui| {
                    ui.label(
                        RichText::new(format!("Going live failed: {reason}")).color(theme::TEXT),
                    );
                });
            }
            theme::caption(ui, "Title");
            let t = ui.add(
                egui::TextEdit::singleline(&mut self.title)
                    .hint_text("What are you streaming today?")
                    .char_limit(limits::TITLE_MAX)
                    .desired_width(w),
            );
            theme::name_field(&t, "Title", &self.title);
            theme::limit_counter(ui, &self.title, limits::TITLE_MAX);
            theme::caption(ui, "Description");
            let d = ui.add(
                egui::TextEdit::multiline(&mut self.description)
                    .hint_text("Optional: tell viewers what to expect")
                    .desired_rows(3)
                    .char_limit(limits::DESCRIPTION_MAX)
                    .desired_width(w),
            );
            theme::name_field(&d, "Description", &self.description);
            theme::limit_counter(ui, &self.description, limits::DESCRIPTION_MAX);
            ui.add_space(4.0);
            theme::caption(ui, "Chat");
            theme::checkbox(ui, &mut self.chat_enabled, "Chat enabled");
            ui.add_enabled_ui(self.chat_enabled, |ui| {
                theme::checkbox(ui, &mut self.chat_delayed, "Slow mode (delayed chat)");
                theme::checkbox(ui, &mut self.chat_followers_only, "Followers only");
            });
            // The rule these settings put in force, in the watch page's words.
            ui.horizontal(|ui| {
                theme::dot(ui, theme::ACCENT);
                ui.label(
                    RichText::new(streamit_session::chat_rule(
                        self.chat_enabled,
                        self.chat_delayed,
                        self.chat_followers_only,
                    ))
                    .color(theme::MUTED),
                );
            });
            ui.add_space(6.0);
            // The backend's answer to the last save / go live, inline.
            let errors: Vec<_> = state
                .errors
                .iter()
                .filter(|e| e.kind != ErrorKind::Device)
                .collect();
            if let Some(e) = errors.last() {
                theme::banner(ui, theme::ERROR_BG, theme::LIVE, |ui| {
                    ui.horizontal_wrapped(|ui| {
                        ui.label(RichText::new(&e.message).color(theme::TEXT));
                        if ui.small_button("Dismiss").clicked() {
                            let _ = session.send(Command::DismissErrors);
                        }
                    });
                });
            }
            ui.horizontal(|ui| {
                let saved = self.saved(state);
                let can_save = !state.busy && !saved && !self.title.trim().is_empty();
                if ui
                    .add_enabled(can_save, egui::Button::new("Save settings"))
                    .clicked()
                {
                    let _ = session.send(Command::DismissErrors);
                    let _ = session.send(Command::SetupStream(self.setup()));
                }
                if saved {
                    ui.label(RichText::new("Saved").color(theme::GOOD));
                } else if state.stream.is_some() {
                    ui.label(RichText::new("Unsaved changes").color(theme::MUTED));
                }
            });
        });
    }

    fn media(
        &mut self,
        ui: &mut Ui,
        state: &SessionState,
        session: &SessionHandle,
        previews: Previews<'_>,
        devices: Option<&DeviceList>,
    ) {
        let w = (ui.available_width() - 36.0).max(200.0);
        let media = state.media.clone();
        theme::card().show(ui, |ui| {
            ui.set_width(w);
            ui.label(RichText::new("Preview").size(19.0).family(theme::bold()));
            let camera_off = media.as_ref().is_some_and(|m| m.camera_off);
            // Room for the sources under the preview (eight rows; while sharing the layout
            // row too); in one column the preview is 16:9. A screen shared beside the camera
            // shows as a thumbnail: below the preview while the window has the height,
            // else right of it, so the sources' rows still fit without a scroll.
            let beside = screen_share::shared_beside(&state.screen_share);
            let layout_row = if screen_share::is_sharing(&state.screen_share) {
                42.0
            } else {
                0.0
            };
            let room = ui.available_height() - 344.0 - layout_row;
            let below = screen_share::thumbnail_height(w);
            let placement = if beside && room - below < w * 9.0 / 16.0 {
                Some(screen_share::Placement::Beside)
            } else {
                beside.then_some(screen_share::Placement::Below)
            };
            let (camera_w, below) = match placement {
                Some(screen_share::Placement::Beside) => (w * 0.6, 0.0),
                Some(screen_share::Placement::Below) => (w, below),
                None => (w, 0.0),
            };
            // A floor for a usable preview; lower beside a share, whose row costs the
            // height (at 1280×800 the 180-point floor pushed Recording under the fold).
            let floor = if placement == Some(screen_share::Placement::Beside) {
                130.0
            } else {
                180.0
            };
            let max_h = (room - below).max(floor).min(camera_w * 9.0 / 16.0);
            // The pickers and the meter fit beside their labels (about 100 points).
            let picker_w = (w - 130.0).clamp(140.0, 300.0);
            let look = if camera_off {
                preview::Look::CameraOff(preview::CAMERA_OFF_NOTE)
            } else if state.preview.is_some() {
                preview::Look::Frame
            } else {
                preview::Look::Waiting("Starting the camera…")
            };
            let mic_muted = media.as_ref().is_some_and(|m| m.mic_muted);
            let screens = devices.map_or(&[][..], |d| &d.screens[..]);
            let share = |ui: &mut Ui, width: f32, placement| {
                let preview = previews.screen;
                let shared = &state.screen_share;
                screen_share::thumbnail(ui, shared, screens, preview, (width, max_h), placement);
            };
            match placement {
                Some(screen_share::Placement::Beside) => {
                    ui.horizontal_top(|ui| {
                        let camera = Vec2::new(camera_w, max_h);
                        previews.camera.show(ui, camera, look, mic_muted);
                        let width = ui.available_width().min(w * 0.45);
                        share(ui, width, screen_share::Placement::Beside);
                    });
                }
                placement => {
                    previews
                        .camera
                        .show(ui, Vec2::new(w, max_h), look, mic_muted);
                    if let Some(below) = placement {
                        share(ui, w, below);
                    }
                }
            }
            let Some(m) = media else {
                return;
            };
            ui.add_space(4.0);
            egui::Grid::new("sources")
                .num_columns(2)
                .spacing([14.0, 10.0])
                .show(ui, |ui| {
                    ui.label("Camera");
                    let current = if m.camera_off {
                        CameraPick::Off
                    } else {
                        CameraPick::Source(m.video.clone())
                    };
                    let choices = video_choices(&m.video, devices);
                    if let Some(pick) = source_picker(ui, "Camera", &current, choices, picker_w) {
                        match &pick {
                            CameraPick::Off => {
                                let _ = session.send(Command::ToggleCamera);
                            }
                            CameraPick::Source(video) => {
                                if *video != m.video {
                                    let _ = session.send(Command::SelectVideoSource(video.clone()));
                                }
                                if m.camera_off {
                                    let _ = session.send(Command::ToggleCamera);
                                }
                            }
                        }
                        let mut r = devices.map(|d| d.remembered.clone()).unwrap_or_default();
                        r.camera = Some(remembered_camera(&pick, devices));
                        self.picked = Some(r);
                    }
                    ui.end_row();

                    ui.label("Microphone");
                    // Wraps: in a narrow window the check goes under the picker.
                    ui.horizontal_wrapped(|ui| {
                        let choices = audio_choices(&m.audio, devices);
                        if let Some(audio) =
                            source_picker(ui, "Microphone", &m.audio, choices, picker_w)
                        {
                            let mut r = devices.map(|d| d.remembered.clone()).unwrap_or_default();
                            r.microphone = remembered_mic(&audio, devices);
                            self.picked = Some(r);
                            let _ = session.send(Command::SelectAudioSource(audio));
                        }
                        mic_check_row(
                            ui,
                            session,
                            &state.mic_check,
                            m.audio != AudioSourceSpec::None,
                        );
                    });
                    ui.end_row();

                    ui.label("Level");
                    ui.horizontal(|ui| {
                        preview::level_meter(
                            ui,
                            state.mic_level,
                            m.mic_muted || m.audio == AudioSourceSpec::None,
                            (picker_w - 150.0).max(60.0),
                        );
                    });
                    ui.end_row();

                    ui.label("Voice");
                    ui.horizontal(|ui| {
                        // The meter shows what viewers hear: after the noise filter and the
                        // automatic gain.
                        let mut clean = m.noise_suppression;
                        let toggle = ui
                            .add_enabled(
                                m.audio != AudioSourceSpec::None,
                                egui::Checkbox::new(&mut clean, "Noise filter"),
                            )
                            .on_hover_text(
                                "Removes steady background noise (fans, hum, keys) before \
                                 viewers hear it. On by default for microphones.",
                            );
                        if toggle.changed() {
                            let _ = session.send(Command::SetNoiseSuppression(if clean {
                                NoiseSuppression::On
                            } else {
                                NoiseSuppression::Off
                            }));
                            self.remember(devices, |r| r.noise_filter = Some(clean));
                        }
                        let mut level = m.auto_gain;
                        let toggle = ui
                            .add_enabled(
                                m.audio != AudioSourceSpec::None,
                                egui::Checkbox::new(&mut level, "Auto level"),
                            )
                            .on_hover_text(
                                "Raises a quiet voice and keeps a loud one from clipping, as \
                                 browsers do for calls. On by default for microphones.",
                            );
                        if toggle.changed() {
                            let _ = session.send(Command::SetAutoGain(if level {
                                MicProcessing::On
                            } else {
                                MicProcessing::Off
                            }));
                            self.remember(devices, |r| r.auto_level = Some(level));
                        }
                    });
                    ui.end_row();

                    ui.label("Screen");
                    let screens = devices.map_or(&[][..], |d| &d.screens[..]);
                    screen_share::controls(ui, &state.screen_share, screens, session, picker_w);
                    ui.end_row();

                    ui.label("Codec");
                    let mut codec = m.codec;
                    ui.horizontal_wrapped(|ui| {
                        ui.selectable_value(&mut codec, Codec::H264, "H.264");
                        ui.selectable_value(&mut codec, Codec::Vp8, "VP8");
                    });
                    ui.end_row();

                    ui.label("Quality");
                    let mut simulcast = m.simulcast;
                    ui.horizontal_wrapped(|ui| {
                        ui.selectable_value(&mut simulcast, true, "Adaptive (3 layers)");
                        ui.selectable_value(&mut simulcast, false, "Single layer");
                    });
                    ui.end_row();
                    if codec != m.codec || simulcast != m.simulcast {
                        let _ = session.send(Command::SelectCodec { codec, simulcast });
                    }

                    ui.label("Recording");
                    ui.horizontal_wrapped(|ui| {
                        let mut on = state.recording.on;
                        let folder = state
                            .recording
                            .folder
                            .as_ref()
                            .map(|f| f.display().to_string())
                            .unwrap_or_default();
                        let toggle =
                            ui.checkbox(&mut on, "Record while live")
                                .on_hover_text(format!(
                                    "Keeps a copy of the stream as it goes out (MP4, highest \
                                 quality, no extra encoding) in {folder}"
                                ));
                        if toggle.changed() {
                            let _ = session.send(Command::SetRecording { on, to: None });
                            self.remember(devices, |r| r.record = Some(on));
                        }
                        if on {
                            ui.label(RichText::new(folder).size(12.0).color(theme::MUTED));
                        }
                    });
                    ui.end_row();
                });
        });
    }
}

/// A labelled combo box over `choices`; `Some(choice)` when the user picked a different one.
fn source_picker<T: Clone + PartialEq>(
    ui: &mut egui::Ui,
    label: &str,
    current: &T,
    choices: Vec<Item<T>>,
    width: f32,
) -> Option<T> {
    let mut picked = current.clone();
    let shown = choices
        .iter()
        .find_map(|i| match i {
            Item::Pick(s, l) if s == current => Some(l.clone()),
            _ => None,
        })
        .unwrap_or_default();
    egui::ComboBox::from_id_salt(label)
        .selected_text(shown)
        .width(width)
        .truncate()
        .show_ui(ui, |ui| {
            for item in choices {
                match item {
                    Item::Pick(spec, l) => {
                        ui.selectable_value(&mut picked, spec, l);
                    }
                    Item::Note(l) => {
                        ui.label(RichText::new(l).color(theme::MUTED));
                    }
                    Item::Separator => {
                        ui.separator();
                    }
                }
            }
        })
        .response
        .widget_info(|| egui::WidgetInfo::labeled(egui::Role::ComboBox, true, label));
    (picked != *current).then_some(picked)
}

impl SetupScreen {
    /// Remembers a switch the creator just set, beside what is remembered already.
    fn remember(&mut self, devices: Option<&DeviceList>, set: impl FnOnce(&mut Remembered)) {
        let mut r = (self.picked.take())
            .or_else(|| devices.map(|d| d.remembered.clone()))
            .unwrap_or_default();
        set(&mut r);
        self.picked = Some(r);
    }

    /// The source the creator just picked, to remember.
    pub fn take_picked(&mut self) -> Option<Remembered> {
        self.picked.take()
    }
}

/// The mic check: a button, then what it is doing or what it heard. The clip is what
/// viewers would hear (after the noise filter), played back on the default output.
fn mic_check_row(ui: &mut Ui, session: &SessionHandle, check: &MicCheck, has_audio: bool) {
    let (button, busy) = match check {
        MicCheck::Idle => ("Check mic", false),
        MicCheck::Listening(_) | MicCheck::Playing { .. } => ("Checking…", true),
        MicCheck::Done { .. } | MicCheck::Failed(_) => ("Check again", false),
    };
    let clicked = ui
        .add_enabled(has_audio && !busy, egui::Button::new(button))
        .on_hover_text("Records 3 s of your microphone, then plays it back to you.")
        .clicked();
    if clicked {
        let _ = session.send(Command::MicCheck);
    }
    match check {
        MicCheck::Idle => {}
        MicCheck::Listening(share) => {
            let left = (3.0 * (1.0 - share)).max(0.0);
            ui.label(RichText::new(format!("Speak now… {left:.0} s")).color(theme::WARN));
        }
        MicCheck::Playing { .. } => {
            ui.label(RichText::new("Playing back…").color(theme::TEXT));
        }
        MicCheck::Done { peak_dbfs } if *peak_dbfs < -50.0 => {
            ui.label(RichText::new("Nothing heard").color(theme::WARN))
                .on_hover_text("Is the right microphone selected, and not muted elsewhere?");
        }
        MicCheck::Done { peak_dbfs } => {
            ui.label(RichText::new(format!("Heard you, {peak_dbfs:.0} dB")).color(theme::GOOD))
                .on_hover_text("The loudest 50 ms of the clip, in dBFS");
        }
        MicCheck::Failed(why) => {
            ui.label(RichText::new("Check failed").color(theme::LIVE))
                .on_hover_text(why.as_str());
        }
    }
}
