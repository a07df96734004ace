//! Login: username, password, "remember me", errors inline.

use egui::{Key, RichText, Ui, Vec2};
use streamit_api::limits;
use streamit_session::{Command, ErrorKind, SessionHandle, SessionState};

use super::theme;

#[derive(Default)]
pub struct LoginScreen {
    username: String,
    password: String,
    pub remember: bool,
    focus_once: bool,
}

pub struct LoginOutcome {
    pub submitted: bool,
}

impl LoginScreen {
    pub fn on_enter(&mut self) {
        self.password.clear();
        self.focus_once = true;
    }

    pub fn show(
        &mut self,
        ui: &mut Ui,
        state: &SessionState,
        session: &SessionHandle,
        api_url: &str,
    ) -> LoginOutcome {
        let mut submitted = false;
        let width = 380.0;
        ui.vertical_centered(|ui| {
            ui.add_space((ui.available_height() * 0.5 - 250.0).max(24.0));
            ui.label(
                RichText::new("StreamIt Studio")
                    .size(30.0)
                    .family(theme::bold())
                    .color(theme::TEXT),
            );
            ui.label(RichText::new("Go live from your desktop").color(theme::MUTED));
            ui.add_space(18.0);
            ui.allocate_ui(Vec2::new(width + 40.0, 0.0), |ui| {
                theme::card().show(ui, |ui| {
                    ui.set_width(width);
                    ui.vertical(|ui| {
                        ui.label(RichText::new("Sign in").size(20.0).family(theme::bold()));
                        ui.add_space(4.0);
                        ui.label("Username");
                        let user = ui.add(
                            egui::TextEdit::singleline(&mut self.username)
                                .hint_text("your StreamIt username")
                                .char_limit(limits::LOGIN_USERNAME_MAX)
                                .desired_width(width),
                        );
                        theme::name_field(&user, "Username", &self.username);
                        if self.focus_once {
                            user.request_focus();
                            self.focus_once = false;
                        }
                        ui.label("Password");
                        let pass = ui.add(
                            egui::TextEdit::singleline(&mut self.password)
                                .password(true)
                                .hint_text("your password")
                                .char_limit(limits::PASSWORD_MAX)
                                .desired_width(width),
                        );
                        theme::name_field(&pass, "Password", "");
                        theme::checkbox(ui, &mut self.remember, "Remember me on this computer");
                        let ready = !self.username.trim().is_empty()
                            && !self.password.is_empty()
                            && !state.busy;
                        let enter = pass.lost_focus() && ui.input(|i| i.key_pressed(Key::Enter));
                        ui.add_space(4.0);
                        let button = ui.add_enabled(
                            ready,
                            theme::primary("Log in").min_size(Vec2::new(width, 38.0)),
                        );
                        if ready && (button.clicked() || enter) {
                            // Earlier errors belong to earlier attempts.
                            let _ = session.send(Command::DismissErrors);
                            let _ = session.send(Command::Login {
                                username: self.username.trim().to_string(),
                                password: self.password.clone(),
                            });
                            submitted = true;
                        }
                        if state.busy {
                            ui.horizontal(|ui| {
                                ui.add(egui::Spinner::new().size(14.0));
                                ui.label(RichText::new("Signing in…").color(theme::MUTED));
                            });
                        }
                        if let Some(err) = state.last_error() {
                            let text = match err.kind {
                                ErrorKind::Auth => {
                                    if err.message.contains("401")
                                        || err.message.contains("no longer valid")
                                    {
                                        "Wrong username or password.".to_string()
                                    } else {
                                        err.message.clone()
                                    }
                                }
                                _ => err.message.clone(),
                            };
                            theme::banner(ui, theme::ERROR_BG, theme::LIVE, |ui| {
                                ui.label(RichText::new(text).color(theme::TEXT));
                            });
                        }
                    });
                });
            });
            ui.add_space(10.0);
            ui.label(
                RichText::new(format!("Server: {api_url}"))
                    .size(12.0)
                    .color(theme::MUTED),
            );
        });
        LoginOutcome { submitted }
    }
}
