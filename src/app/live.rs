//! Live: self-preview, viewers, chat, mute / camera / end (M, V, confirmation), health,
//! reconnect banner, elapsed time and inline title edit.

use std::time::{Duration, Instant, SystemTime};

use egui::{Color32, Key, RichText, Ui, Vec2};
use streamit_api::limits;
use streamit_session::{ChatEntry, ChatRole, Command, SessionHandle, SessionState, StreamState};

use super::preview::{self, Previews};
use super::screen_share;
use super::theme;

#[derive(Default)]
pub struct LiveScreen {
    chat_input: String,
    /// `Some(text)` while the title is being edited.
    editing_title: Option<String>,
    /// The title editor takes the keyboard in the frame it first shows.
    focus_title: bool,
    confirm_end: bool,
    /// When the watch link was last copied.
    copied_at: Option<Instant>,
}

/// Below this width (in points) the chat goes under the picture.
const STACK_BELOW: f32 = 900.0;
/// From this width (in points) of the main column its rows keep one line.
const ROOMY: f32 = 720.0;

/// How long a moderation notice stays under the chat.
const NOTICE_FOR: Duration = Duration::from_secs(10);

/// The timeouts the chat menu offers.
const TIMEOUTS: [(Duration, &str); 3] = [
    (Duration::from_secs(5 * 60), "Time out 5 min"),
    (Duration::from_secs(10 * 60), "Time out 10 min"),
    (Duration::from_secs(60 * 60), "Time out 1 h"),
];

/// The moderation actions on one chat message: remove it, time its sender out, ban them.
fn moderation_menu(ui: &mut Ui, m: &ChatEntry, name: &str, session: &SessionHandle) {
    let send = |c: Command| {
        let _ = session.send(c);
    };
    if !m.id.is_empty() && ui.button("Remove message").clicked() {
        send(Command::RemoveMessage {
            message_id: m.id.clone(),
        });
        ui.close();
    }
    for (duration, label) in TIMEOUTS {
        if ui.button(label).clicked() {
            send(Command::TimeoutViewer {
                identity: m.identity.clone(),
                duration,
            });
            ui.close();
        }
    }
    ui.separator();
    if ui
        .button(RichText::new(format!("Ban {name}")).color(theme::LIVE))
        .clicked()
    {
        send(Command::BanViewer {
            identity: m.identity.clone(),
        });
        ui.close();
    }
}

/// What ending does to the audience, for the confirmation.
pub fn end_notice(viewers: u32) -> String {
    match viewers {
        0 => "No one is watching right now.".to_string(),
        1 => "Your 1 viewer will see the stream end.".to_string(),
        n => format!("All {n} viewers will see the stream end."),
    }
}

/// The banner while the StreamIt backend does not answer.
pub const BACKEND_DOWN: &str = "StreamIt server not responding — retrying";
/// Beside it, while a title waits for the backend.
pub const TITLE_WAITS: &str = "Title will be saved when the server is back";

/// "Connection lost for 0:07 — reconnecting (attempt 2 of 5)".
pub fn reconnect_banner(attempt: u32, max: u32, since: Option<SystemTime>) -> String {
    let secs = since.map(since_secs).unwrap_or(0);
    format!(
        "Connection lost for {} — reconnecting (attempt {attempt} of {max})",
        clock(secs)
    )
}

/// Whole seconds since `t` (0 when the clock went back).
pub fn since_secs(t: SystemTime) -> u64 {
    SystemTime::now()
        .duration_since(t)
        .unwrap_or_default()
        .as_secs()
}

pub use streamit_session::clock;

pub fn elapsed(since: Option<SystemTime>) -> String {
    let secs = since
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .unwrap_or_default()
        .as_secs();
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

pub fn bitrate(bps: u64) -> String {
    if bps >= 1_000_000 {
        format!("{:.1} Mbit/s", bps as f64 / 1e6)
    } else {
        format!("{} kbit/s", bps / 1000)
    }
}

/// The health bar's packet loss (receiver reports), e.g. "Loss 1.2 %".
/// What the health bar says about a media path that is not plain UDP ("Via TCP",
/// "Via TURN relay (TLS)"); `None` for UDP, the norm.
pub fn transport_label(transport: &str) -> Option<String> {
    match transport {
        "tcp" => Some("Via TCP".into()),
        t => t
            .strip_prefix("relay/")
            .map(|p| format!("Via TURN relay ({})", p.to_ascii_uppercase())),
    }
}

pub fn packet_loss(fraction: Option<f32>) -> String {
    match fraction {
        Some(f) => format!("Loss {:.1} %", f64::from(f) * 100.0),
        None => "Loss –".to_string(),
    }
}

fn quality_color(q: Option<&str>) -> (Color32, &'static str) {
    match q {
        Some("excellent") => (theme::GOOD, "Excellent"),
        Some("good") => (Color32::from_rgb(0x84, 0xcc, 0x16), "Good"),
        Some("poor") => (theme::WARN, "Poor"),
        Some("lost") => (theme::LIVE, "Lost"),
        _ => (theme::MUTED, "Measuring"),
    }
}

/// A colour per chat sender, stable for a name.
fn sender_color(identity: &str) -> Color32 {
    const COLORS: [Color32; 6] = [
        Color32::from_rgb(0x60, 0xa5, 0xfa),
        Color32::from_rgb(0xf4, 0x72, 0xb6),
        Color32::from_rgb(0x34, 0xd3, 0x99),
        Color32::from_rgb(0xfb, 0xbf, 0x24),
        Color32::from_rgb(0xa7, 0x8b, 0xfa),
        Color32::from_rgb(0xfb, 0x92, 0x3c),
    ];
    let h = identity
        .bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
    COLORS[h as usize % COLORS.len()]
}

impl LiveScreen {
    pub fn on_enter(&mut self) {
        self.confirm_end = false;
        self.editing_title = None;
        self.focus_title = false;
    }

    pub fn show(
        &mut self,
        ui: &mut Ui,
        state: &SessionState,
        session: &SessionHandle,
        previews: Previews<'_>,
        screens: &[streamit_session::ScreenInfo],
    ) {
        let send = |c: Command| {
            let _ = session.send(c);
        };
        let live = state.stream_state == StreamState::Live;

        // Shortcuts, unless a text field has the keyboard or the title editor is open (a
        // "v" meant for the title must never turn the camera on mid-show).
        if !ui.ctx().egui_wants_keyboard_input()
            && !self.confirm_end
            && self.editing_title.is_none()
        {
            let (m, v) = ui.input(|i| (i.key_pressed(Key::M), i.key_pressed(Key::V)));
            if m {
                send(Command::ToggleMic);
            }
            if v {
                send(Command::ToggleCamera);
            }
        }

        match &state.stream_state {
            StreamState::Reconnecting { attempt, max } => {
                let text = reconnect_banner(*attempt, *max, state.reconnecting_since);
                theme::banner(ui, theme::WARN_BG, theme::WARN, |ui| {
                    ui.horizontal(|ui| {
                        ui.add(egui::Spinner::new().size(14.0));
                        ui.label(RichText::new(text).color(theme::TEXT).family(theme::bold()));
                    });
                });
            }
            StreamState::Connecting => {
                theme::banner(ui, theme::PANEL, theme::BORDER, |ui| {
                    ui.horizontal(|ui| {
                        ui.add(egui::Spinner::new().size(14.0));
                        ui.label("Connecting to StreamIt…");
                    });
                });
            }
            _ => {}
        }
        if let Some(since) = state.backend.unreachable_since {
            theme::banner(ui, theme::WARN_BG, theme::WARN, |ui| {
                ui.horizontal_wrapped(|ui| {
                    ui.add(egui::Spinner::new().size(14.0));
                    ui.label(
                        RichText::new(BACKEND_DOWN)
                            .color(theme::TEXT)
                            .family(theme::bold()),
                    );
                    ui.label(
                        RichText::new(format!("for {}", clock(since_secs(since))))
                            .color(theme::MUTED),
                    );
                    if state.backend.pending_title.is_some() {
                        ui.label(RichText::new(TITLE_WAITS).color(theme::TEXT));
                    }
                });
            });
        }

        if ui.available_width() < STACK_BELOW {
            // Too narrow for the chat beside the picture: the chat goes under it, and the
            // whole screen scrolls.
            egui::ScrollArea::vertical()
                .id_salt("live-scroll")
                .auto_shrink([false, false])
                .show(ui, |ui| {
                    self.main_column(ui, state, session, previews, screens, true);
                    ui.add_space(12.0);
                    let w = ui.available_width();
                    ui.allocate_ui(Vec2::new(w, 420.0), |ui| {
                        self.chat(ui, state, session, live)
                    });
                });
        } else {
            let chat_w = 340.0_f32.min(ui.available_width() * 0.35);
            egui::Panel::right("chat")
                .exact_size(chat_w)
                .resizable(false)
                .show_separator_line(false)
                .frame(egui::Frame::new().inner_margin(egui::Margin {
                    left: 14,
                    ..Default::default()
                }))
                .show(ui, |ui| self.chat(ui, state, session, live));
            egui::ScrollArea::vertical()
                .id_salt("live-main-scroll")
                .auto_shrink([false, false])
                .show(ui, |ui| {
                    self.main_column(ui, state, session, previews, screens, false)
                });
        }

        if self.confirm_end {
            let modal = egui::Modal::new(egui::Id::unique("confirm-end")).show(ui.ctx(), |ui| {
                ui.set_width(360.0);
                ui.label(
                    RichText::new("End the stream?")
                        .size(19.0)
                        .family(theme::bold()),
                );
                ui.label(RichText::new(end_notice(state.viewers)).color(theme::MUTED));
                ui.add_space(8.0);
                ui.horizontal(|ui| {
                    if ui.add(theme::danger("End stream now")).clicked() {
                        send(Command::EndStream);
                        self.confirm_end = false;
                    }
                    if ui.button("Keep streaming").clicked() {
                        self.confirm_end = false;
                    }
                });
            });
            if modal.should_close() {
                self.confirm_end = false;
            }
        }
    }

    /// The title, the figures, the picture and the controls.
    fn main_column(
        &mut self,
        ui: &mut Ui,
        state: &SessionState,
        session: &SessionHandle,
        previews: Previews<'_>,
        screens: &[streamit_session::ScreenInfo],
        stacked: bool,
    ) {
        let send = |c: Command| {
            let _ = session.send(c);
        };
        let media = state.media.clone();
        let mic_muted = media.as_ref().is_some_and(|m| m.mic_muted);
        let camera_off = media.as_ref().is_some_and(|m| m.camera_off);
        // Title row (wraps rather than pushing the buttons out of the window).
        let mut close_editor = false;
        ui.horizontal_wrapped(|ui| {
            // A title the server does not have yet is shown as what it will be.
            let pending = state.backend.pending_title.clone();
            let title = pending
                .clone()
                .or_else(|| state.stream.as_ref().map(|s| s.title.clone()))
                .unwrap_or_default();
            match &mut self.editing_title {
                Some(text) => {
                    let r = ui.add(
                        egui::TextEdit::singleline(text)
                            .char_limit(limits::TITLE_MAX)
                            .desired_width((ui.available_width() - 260.0).max(200.0))
                            .font(egui::TextStyle::Heading),
                    );
                    theme::name_field(&r, "Stream title", text);
                    if std::mem::take(&mut self.focus_title) {
                        r.request_focus();
                    }
                    theme::limit_counter(ui, text, limits::TITLE_MAX);
                    let enter = r.lost_focus() && ui.input(|i| i.key_pressed(Key::Enter));
                    let save = ui.add_enabled(!text.trim().is_empty(), theme::primary("Save"));
                    let cancel = ui.button("Cancel");
                    if (save.clicked() || enter) && !text.trim().is_empty() {
                        send(Command::EditTitle {
                            title: text.trim().to_string(),
                            description: None,
                        });
                        close_editor = true;
                    } else if cancel.clicked() || ui.input(|i| i.key_pressed(Key::Escape)) {
                        close_editor = true;
                    }
                }
                None => {
                    ui.label(RichText::new(&title).size(22.0).family(theme::bold()));
                    if pending.is_some() {
                        let note = if state.backend.unreachable_since.is_some() {
                            "Not saved yet"
                        } else {
                            "Saving…"
                        };
                        ui.label(RichText::new(note).color(theme::WARN));
                    }
                    if ui
                        .button("Edit title")
                        .on_hover_text("Change the title while live")
                        .clicked()
                    {
                        self.editing_title = Some(title);
                        self.focus_title = true;
                    }
                }
            }
        });

        if close_editor {
            self.editing_title = None;
        }

        // Stats row; the share link goes right when there is room, else it wraps.
        let roomy = ui.available_width() >= ROOMY;
        let stats = |ui: &mut Ui, copied_at: &mut Option<Instant>| {
            ui.label(
                RichText::new(elapsed(state.live_since))
                    .family(egui::FontFamily::Monospace)
                    .size(16.0),
            );
            ui.separator();
            ui.label(
                RichText::new(format!(
                    "{} viewer{}",
                    state.viewers,
                    if state.viewers == 1 { "" } else { "s" }
                ))
                .size(16.0)
                .family(theme::bold()),
            );
            ui.label(RichText::new(format!("peak {}", state.peak_viewers)).color(theme::MUTED));
            if let Some(s) = &state.stream {
                if roomy {
                    ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                        // right-to-left: the link's parts come out in reading order inside
                        ui.with_layout(egui::Layout::left_to_right(egui::Align::Center), |ui| {
                            theme::share_link(ui, &s.watch_url, copied_at);
                        });
                    });
                } else {
                    // a row of its own: the link does not wrap inside
                    ui.end_row();
                    theme::share_link(ui, &s.watch_url, copied_at);
                }
            }
        };
        if roomy {
            ui.horizontal(|ui| stats(ui, &mut self.copied_at));
        } else {
            ui.horizontal_wrapped(|ui| stats(ui, &mut self.copied_at));
        }

        // Preview: what is left above the controls, or 16:9 of the width in one column.
        let controls_h = if roomy { 130.0 } else { 190.0 }
            // the recording's path line under the controls
            + if state.recording.current.is_some() { 22.0 } else { 0.0 }
            // the screen-share row, and its layout row while sharing
            + if matches!(state.screen_share, streamit_session::ScreenShareState::Sharing { .. }) {
                72.0
            } else {
                36.0
            };
        let max = if stacked {
            Vec2::new(ui.available_width(), ui.available_width() * 9.0 / 16.0)
        } else {
            Vec2::new(
                ui.available_width(),
                (ui.available_height() - controls_h).max(160.0),
            )
        };
        let look = if camera_off {
            preview::Look::CameraOff(preview::CAMERA_OFF_NOTE)
        } else {
            preview::Look::Frame
        };
        previews.camera.show(ui, max, look, mic_muted);

        // Controls; End stream keeps its place on the right when there is room, and wraps
        // after the meter rather than over it when there is not.
        let controls = |ui: &mut Ui, confirm_end: &mut bool| {
            let mic = if mic_muted {
                RichText::new("Unmute mic (M)").color(theme::LIVE)
            } else {
                RichText::new("Mute mic (M)")
            };
            if ui
                .add(egui::Button::new(mic).min_size(Vec2::new(140.0, 36.0)))
                .clicked()
            {
                send(Command::ToggleMic);
            }
            let cam = if camera_off {
                RichText::new("Camera on (V)").color(theme::LIVE)
            } else {
                RichText::new("Camera off (V)")
            };
            if ui
                .add(egui::Button::new(cam).min_size(Vec2::new(160.0, 36.0)))
                .clicked()
            {
                send(Command::ToggleCamera);
            }
            let recording = state.recording.current.as_ref();
            let rec = match recording {
                Some(r) => RichText::new(format!("● REC {}", r.figures())).color(theme::LIVE),
                None => RichText::new("Record"),
            };
            let hover = match recording {
                Some(r) => format!("Recording to {} — click to stop", r.path.display()),
                None => "Keep a copy of the stream on this computer (MP4)".to_string(),
            };
            if ui
                .add(egui::Button::new(rec).min_size(Vec2::new(120.0, 36.0)))
                .on_hover_text(hover)
                .clicked()
            {
                send(Command::SetRecording {
                    on: recording.is_none(),
                    to: None,
                });
            }
            preview::level_meter(ui, state.mic_level, mic_muted, 120.0);
            let end = |ui: &mut Ui| {
                ui.add(theme::danger("End stream").min_size(Vec2::new(140.0, 36.0)))
                    .clicked()
            };
            let clicked = if roomy {
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), end)
                    .inner
            } else {
                end(ui)
            };
            if clicked {
                *confirm_end = true;
            }
        };
        if roomy {
            ui.horizontal(|ui| controls(ui, &mut self.confirm_end));
        } else {
            ui.horizontal_wrapped(|ui| controls(ui, &mut self.confirm_end));
        }
        if let Some(r) = &state.recording.current {
            let line = match &r.error {
                Some(e) => RichText::new(format!("Recording stopped: {e}")).color(theme::WARN),
                None => {
                    RichText::new(format!("Recording to {}", r.path.display())).color(theme::MUTED)
                }
            };
            ui.label(line.size(12.0));
        }
        egui::Grid::new("live-screen-share")
            .num_columns(2)
            .spacing([14.0, 6.0])
            .show(ui, |ui| {
                ui.label("Screen");
                let w = (ui.available_width() - 90.0).clamp(140.0, 300.0);
                screen_share::controls(ui, &state.screen_share, screens, session, w);
                ui.end_row();
            });
        self.health(ui, state);
    }

    fn health(&self, ui: &mut Ui, state: &SessionState) {
        let h = &state.health;
        theme::card()
            .inner_margin(egui::Margin::symmetric(14, 8))
            .show(ui, |ui| {
                ui.set_width(ui.available_width());
                ui.horizontal_wrapped(|ui| {
                    let (color, word) = quality_color(h.connection_quality);
                    theme::dot(ui, color);
                    ui.label(RichText::new(format!("Connection: {word}")).family(theme::bold()))
                        .widget_info(|| {
                            egui::WidgetInfo::labeled(
                                egui::Role::Label,
                                true,
                                format!("Connection quality: {word}"),
                            )
                        });
                    ui.separator();
                    ui.label(format!("Bitrate {}", bitrate(h.bitrate_bps)));
                    ui.separator();
                    match h.rtt {
                        Some(rtt) => ui.label(format!("RTT {} ms", rtt.as_millis())),
                        None => ui.label("RTT –"),
                    };
                    ui.separator();
                    ui.label(packet_loss(h.packet_loss));
                    ui.separator();
                    let sent = h.frames_sent.max(1);
                    let loss = h.frames_dropped as f64 * 100.0 / (sent + h.frames_dropped) as f64;
                    ui.label(format!("Dropped {} frames ({loss:.1} %)", h.frames_dropped));
                    if h.reconnects > 0 {
                        ui.separator();
                        ui.label(format!("Reconnects {}", h.reconnects));
                    }
                    // UDP is the norm; say so when the media goes over ICE-TCP or
                    // through the server's TURN relay.
                    if let Some(via) = h.transport.and_then(transport_label) {
                        ui.separator();
                        ui.label(via);
                    }
                    // The uplink carries less than viewers asked for: say so, and what goes.
                    if let Some(limit) = h.network_limited {
                        ui.separator();
                        ui.label(RichText::new(limit.to_string()).color(theme::WARN));
                    }
                    // The encoder sends less than the camera offers: say what goes out.
                    if let Some(limit) = h.cpu_limited {
                        ui.separator();
                        ui.label(RichText::new(limit.to_string()).color(theme::WARN));
                    }
                });
            });
    }

    /// One message: the sender (marked as a guest, or "You" for the creator), the text, and
    /// for viewers' messages the moderation menu (also on right click).
    fn chat_line(&self, ui: &mut Ui, m: &ChatEntry, session: &SessionHandle, live: bool) {
        let name = if m.own {
            "You"
        } else if m.sender.is_empty() {
            m.identity.as_str()
        } else {
            m.sender.as_str()
        };
        let moderatable = live && !m.own && m.role != ChatRole::Creator;
        let row = ui.horizontal_wrapped(|ui| {
            ui.spacing_mut().item_spacing.x = 6.0;
            let color = if m.own || m.role == ChatRole::Creator {
                theme::ACCENT
            } else {
                sender_color(&m.identity)
            };
            ui.label(RichText::new(name).color(color).family(theme::bold()));
            match m.role {
                ChatRole::Guest => theme::badge(ui, "Guest", theme::BORDER),
                ChatRole::Creator => theme::badge(ui, "Creator", theme::ACCENT_DARK),
                ChatRole::Viewer => {}
            }
            ui.label(RichText::new(&m.text).color(theme::TEXT));
            if moderatable {
                let r = ui
                    .menu_button(RichText::new("…").color(theme::MUTED), |ui| {
                        moderation_menu(ui, m, name, session)
                    })
                    .response;
                theme::name_widget(
                    &r,
                    egui::Role::Button,
                    &format!("Moderate {name}: {}", m.text),
                );
            }
        });
        if moderatable {
            row.response
                .container_context_menu(|ui| moderation_menu(ui, m, name, session));
        }
    }

    fn chat(&mut self, ui: &mut Ui, state: &SessionState, session: &SessionHandle, live: bool) {
        theme::card()
            .inner_margin(egui::Margin::same(12))
            .show(ui, |ui| {
                ui.set_height(ui.available_height());
                ui.label(RichText::new("Chat").size(18.0).family(theme::bold()));
                // The rule in force, as viewers see it on the watch page.
                if let Some(s) = &state.stream {
                    ui.label(RichText::new(s.chat_rule()).color(theme::MUTED));
                }
                let chat_enabled = state.stream.as_ref().is_none_or(|s| s.chat_enabled);
                let input_h = 90.0;
                egui::ScrollArea::vertical()
                    .id_salt("chat-log")
                    .stick_to_bottom(true)
                    .auto_shrink([false, false])
                    .max_height((ui.available_height() - input_h).max(80.0))
                    .show(ui, |ui| {
                        if state.chat.is_empty() {
                            ui.label(
                                RichText::new(if chat_enabled {
                                    "No messages yet. Say hi to your viewers!"
                                } else {
                                    "Chat is turned off for this stream."
                                })
                                .color(theme::MUTED),
                            );
                        }
                        for m in state.chat.iter() {
                            self.chat_line(ui, m, session, live);
                        }
                    });
                if let Some(n) = state.moderation.last().filter(|n| {
                    SystemTime::now()
                        .duration_since(n.at)
                        .is_ok_and(|d| d < NOTICE_FOR)
                }) {
                    ui.horizontal_wrapped(|ui| {
                        theme::dot(ui, if n.ok { theme::GOOD } else { theme::LIVE });
                        ui.label(RichText::new(&n.message).color(theme::TEXT));
                    });
                }
                ui.add_space(6.0);
                let can_chat = live && chat_enabled;
                ui.add_enabled_ui(can_chat, |ui| {
                    ui.horizontal(|ui| {
                        let r = ui.add(
                            egui::TextEdit::singleline(&mut self.chat_input)
                                .char_limit(limits::CHAT_MESSAGE_MAX)
                                .hint_text(if chat_enabled {
                                    "Send a message"
                                } else {
                                    "Chat is off"
                                })
                                .desired_width((ui.available_width() - 90.0).max(80.0)),
                        );
                        theme::name_field(&r, "Chat message", &self.chat_input);
                        theme::limit_counter(ui, &self.chat_input, limits::CHAT_MESSAGE_MAX);
                        let enter = r.lost_focus() && ui.input(|i| i.key_pressed(Key::Enter));
                        let send = ui.add_enabled(
                            !self.chat_input.trim().is_empty(),
                            theme::primary("Send"),
                        );
                        if (send.clicked() || enter) && !self.chat_input.trim().is_empty() {
                            let text = std::mem::take(&mut self.chat_input);
                            let _ = session.send(Command::SendChat(text.trim().to_string()));
                            r.request_focus();
                        }
                    });
                });
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_health_bar_names_tcp_and_the_relay() {
        assert_eq!(transport_label("udp"), None);
        assert_eq!(transport_label("tcp").as_deref(), Some("Via TCP"));
        assert_eq!(
            transport_label("relay/tls").as_deref(),
            Some("Via TURN relay (TLS)")
        );
        assert_eq!(
            transport_label("relay/udp").as_deref(),
            Some("Via TURN relay (UDP)")
        );
    }

    #[test]
    fn lengths_of_time_read_like_a_clock() {
        assert_eq!(clock(7), "0:07");
        assert_eq!(clock(29), "0:29");
        assert_eq!(clock(750), "12:30");
        assert_eq!(clock(3723), "1:02:03");
        let t = SystemTime::now() - std::time::Duration::from_secs(7);
        assert_eq!(
            reconnect_banner(2, 5, Some(t)),
            "Connection lost for 0:07 — reconnecting (attempt 2 of 5)"
        );
    }
}
