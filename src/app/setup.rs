//! Setup: stream settings (validated by the backend, errors inline), sources with a live
//! preview and a mic meter, codec and quality, and Go Live with the reason when it is not
//! possible.

use std::time::{Instant, SystemTime};

use egui::{RichText, Ui, Vec2};
use streamit_api::limits;
use streamit_session::{
    AudioSourceSpec, Codec, Command, ErrorKind, SessionHandle, SessionState, StreamSetup,
    StreamState, VideoSourceSpec,
};

use super::devices::DeviceList;
use super::preview::{self, Preview};
use super::theme;

/// The video sources: the test pattern at 720p, 1080p and 360p, at 30 and 60 fps (720p30
/// first, the default), then the cameras found with the mode each was negotiated at.
fn video_choices(
    current: &VideoSourceSpec,
    devices: Option<&DeviceList>,
) -> Vec<(VideoSourceSpec, String)> {
    const PATTERN: [(u32, u32, u32); 5] = [
        (1280, 720, 30),
        (1280, 720, 60),
        (1920, 1080, 30),
        (1920, 1080, 60),
        (640, 360, 30),
    ];
    let mut v: Vec<(VideoSourceSpec, String)> = PATTERN
        .into_iter()
        .map(|(width, height, fps)| {
            (
                VideoSourceSpec::Synthetic { width, height, fps },
                format!("Test pattern · {width}×{height} · {fps} fps"),
            )
        })
        .collect();
    if let Some(d) = devices {
        v.extend(d.cameras.iter().map(|c| (c.spec.clone(), c.label.clone())));
    }
    if !v.iter().any(|(s, _)| s == current) {
        v.push((current.clone(), current.to_string()));
    }
    v
}

/// The audio sources: the test tone, the microphones found, none.
fn audio_choices(
    current: &AudioSourceSpec,
    devices: Option<&DeviceList>,
) -> Vec<(AudioSourceSpec, String)> {
    let mut v = vec![(AudioSourceSpec::Tone, "Test tone (440 Hz)".to_string())];
    if let Some(d) = devices {
        v.extend(
            d.microphones
                .iter()
                .map(|m| (m.spec.clone(), m.label.clone())),
        );
    }
    v.push((AudioSourceSpec::None, "No microphone".to_string()));
    if !v.iter().any(|(s, _)| s == current) {
        v.push((current.clone(), current.to_string()));
    }
    v
}

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
        preview: &Preview,
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
                    match &blocker {
                        Some(reason) => {
                            theme::dot(ui, theme::WARN);
                            ui.label(RichText::new(reason).color(theme::WARN));
                        }
                        None => {
                            theme::dot(ui, theme::GOOD);
                            ui.label(
                                RichText::new(
                                    "Everything is ready. Viewers see you as soon as you go live.",
                                )
                                .color(theme::MUTED),
                            );
                        }
                    }
                    ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                        let button = ui.add_enabled(
                            blocker.is_none(),
                            theme::primary("Go Live").min_size(Vec2::new(180.0, 44.0)),
                        );
                        if button.clicked() {
                            self.go_live(session, state);
                        }
                    });
                });
            });
        let total = ui.available_width();
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
            .show(ui, |ui| self.media(ui, state, session, preview, devices));
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
        preview: &Preview,
        devices: Option<&DeviceList>,
    ) {
        let w = (ui.available_width() - 36.0).max(200.0);
        let media = state.media.clone();
        theme::card().show(ui, |ui| {
            ui.set_width(w);
            ui.label(RichText::new("Preview").size(19.0).family(theme::bold()));
            let camera_off = media.as_ref().is_some_and(|m| m.camera_off);
            let max_h = (ui.available_height() - 260.0).max(180.0);
            preview.show(
                ui,
                Vec2::new(w, max_h),
                !camera_off && state.preview.is_some(),
                if camera_off {
                    "Camera is off"
                } else {
                    "Starting the camera…"
                },
            );
            let Some(m) = media else {
                return;
            };
            ui.add_space(4.0);
            egui::Grid::new("sources")
                .num_columns(2)
                .spacing([14.0, 10.0])
                .show(ui, |ui| {
                    ui.label("Camera");
                    let choices = video_choices(&m.video, devices);
                    if let Some(video) = source_picker(ui, "Camera", &m.video, choices) {
                        let _ = session.send(Command::SelectVideoSource(video));
                    }
                    ui.end_row();

                    ui.label("Microphone");
                    let choices = audio_choices(&m.audio, devices);
                    if let Some(audio) = source_picker(ui, "Microphone", &m.audio, choices) {
                        let _ = session.send(Command::SelectAudioSource(audio));
                    }
                    ui.end_row();

                    ui.label("Level");
                    ui.horizontal(|ui| {
                        preview::level_meter(
                            ui,
                            state.mic_level,
                            m.mic_muted || m.audio == AudioSourceSpec::None,
                            240.0,
                        );
                    });
                    ui.end_row();

                    ui.label("Codec");
                    let mut codec = m.codec;
                    ui.horizontal(|ui| {
                        ui.selectable_value(&mut codec, Codec::H264, "H.264");
                        ui.selectable_value(&mut codec, Codec::Vp8, "VP8");
                    });
                    ui.end_row();

                    ui.label("Quality");
                    let mut simulcast = m.simulcast;
                    ui.horizontal(|ui| {
                        ui.selectable_value(&mut simulcast, true, "Adaptive (3 layers)");
                        ui.selectable_value(&mut simulcast, false, "Single layer");
                    });
                    ui.end_row();
                    if codec != m.codec || simulcast != m.simulcast {
                        let _ = session.send(Command::SelectCodec { codec, simulcast });
                    }
                });
        });
    }
}

/// A labelled combo box over `choices`; `Some(choice)` when the user picked a different one.
fn source_picker<T: Clone + PartialEq>(
    ui: &mut egui::Ui,
    label: &str,
    current: &T,
    choices: Vec<(T, String)>,
) -> Option<T> {
    let mut picked = current.clone();
    let shown = choices
        .iter()
        .find(|(s, _)| s == current)
        .map(|(_, l)| l.clone())
        .unwrap_or_default();
    egui::ComboBox::from_id_salt(label)
        .selected_text(shown)
        .width(300.0)
        .show_ui(ui, |ui| {
            for (spec, l) in choices {
                ui.selectable_value(&mut picked, spec, l);
            }
        })
        .response
        .widget_info(|| egui::WidgetInfo::labeled(egui::Role::ComboBox, true, label));
    (picked != *current).then_some(picked)
}
