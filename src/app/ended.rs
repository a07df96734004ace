//! Ended: the summary of the broadcast and Start New Stream. A stream that stopped without
//! being asked to says so in one sentence ("Stream interrupted after 0:29 — server
//! unreachable"), with the studio's own figures marked as not yet saved on the server and
//! the technical detail behind "Details".

use egui::{RichText, Ui, Vec2};
use streamit_session::{Command, SessionHandle, SessionState, SummaryDelivery};

use super::live::bitrate;
use super::theme;

fn duration(secs: u64) -> String {
    if secs >= 3600 {
        format!("{}h {:02}m {:02}s", secs / 3600, secs / 60 % 60, secs % 60)
    } else {
        format!("{}m {:02}s", secs / 60, secs % 60)
    }
}

/// Under an interrupted stream's figures while the server does not have them.
pub const NOT_SAVED: &str = "Not yet saved on the server: these are the studio's own counts.";

pub fn show(ui: &mut Ui, state: &SessionState, session: &SessionHandle) {
    let Some(s) = &state.summary else {
        return;
    };
    // The backend's record wins where it has one; the studio's own counts otherwise.
    let b = s.backend.as_ref();
    let secs = b
        .map(|b| b.duration_secs.max(0) as u64)
        .unwrap_or(s.duration.as_secs());
    let peak = b
        .map(|b| b.peak_viewers.max(0) as u64)
        .unwrap_or(s.peak_viewers as u64);
    let chat = b
        .map(|b| b.chat_messages.max(0) as u64)
        .unwrap_or(s.chat_messages);
    // Media figures: the backend stores what the studio reported; an older
    // backend (or a failed report) has none, and then the studio's own show.
    let backend_or = |f: fn(&streamit_api::StreamSession) -> Option<i64>, own: u64| {
        b.and_then(f).map(|v| v.max(0) as u64).unwrap_or(own)
    };
    let frames_dropped = backend_or(|b| b.frames_dropped, s.frames_dropped);
    let average_bitrate = backend_or(|b| b.average_bitrate_bps, s.average_bitrate_bps);
    let frames_sent = backend_or(|b| b.frames_sent, s.frames_sent);
    let reconnects = backend_or(|b| b.reconnects, u64::from(s.reconnects));
    let rows: Vec<(&str, String)> = vec![
        ("Duration", duration(secs)),
        ("Peak viewers", peak.to_string()),
        ("Chat messages", chat.to_string()),
        ("Frames dropped", frames_dropped.to_string()),
        ("Average bitrate", bitrate(average_bitrate)),
        ("Frames sent", frames_sent.to_string()),
        ("Reconnects", reconnects.to_string()),
    ];
    ui.vertical_centered(|ui| {
        ui.add_space((ui.available_height() * 0.5 - 260.0).max(20.0));
        ui.allocate_ui(Vec2::new(520.0, 0.0), |ui| {
            theme::card().show(ui, |ui| {
                ui.set_width(480.0);
                ui.vertical(|ui| {
                    let heading = s.headline();
                    let size = if s.interruption.is_some() { 20.0 } else { 26.0 };
                    ui.label(RichText::new(heading).size(size).family(theme::bold()));
                    let title = state
                        .stream
                        .as_ref()
                        .map(|s| s.title.as_str())
                        .unwrap_or("");
                    ui.label(RichText::new(format!("“{title}”")).color(theme::MUTED));
                    ui.add_space(10.0);
                    egui::Grid::new("summary")
                        .num_columns(2)
                        .spacing([40.0, 12.0])
                        .striped(false)
                        .show(ui, |ui| {
                            for (k, v) in rows {
                                ui.label(RichText::new(k).color(theme::MUTED));
                                let info = format!("{k}: {v}");
                                ui.label(RichText::new(v).size(17.0).family(theme::bold()))
                                    .widget_info(|| {
                                        egui::WidgetInfo::labeled(egui::Role::Label, true, &info)
                                    });
                                ui.end_row();
                            }
                        });
                    for r in &s.recordings {
                        let text = match &r.error {
                            None => format!(
                                "Recorded {} to {}",
                                duration(r.duration.as_secs()),
                                r.path.display()
                            ),
                            Some(e) => format!(
                                "Recorded {} to {} before it stopped: {e}",
                                duration(r.duration.as_secs()),
                                r.path.display()
                            ),
                        };
                        ui.add_space(6.0);
                        ui.label(RichText::new(text).size(13.0));
                    }
                    let note = match &s.delivery {
                        _ if s.interruption.is_some() && s.delivery != SummaryDelivery::Delivered => {
                            Some(NOT_SAVED.to_string())
                        }
                        SummaryDelivery::Pending => Some("Saving these figures on the server…".to_string()),
                        SummaryDelivery::Delivered if b.is_none() => Some(
                            "The server's record was not available; these are the studio's own counts."
                                .to_string(),
                        ),
                        SummaryDelivery::Delivered => None,
                        SummaryDelivery::Spooled { path, .. } => Some(format!(
                            "The server could not be reached; these are the studio's own counts. \
                             They are saved ({}) and sent when you next log in.",
                            path.display()
                        )),
                        SummaryDelivery::Lost { error } => Some(format!(
                            "The server did not take these figures ({error}); they were not saved."
                        )),
                    };
                    if let Some(note) = note {
                        ui.label(RichText::new(note).size(12.0).color(theme::WARN));
                    }
                    if let Some(i) = &s.interruption {
                        egui::CollapsingHeader::new("Details")
                            .default_open(false)
                            .show(ui, |ui| {
                                ui.label(RichText::new(&i.detail).size(12.0).color(theme::MUTED));
                                let saved = match &s.delivery {
                                    SummaryDelivery::Delivered => "The server has these figures.".to_string(),
                                    SummaryDelivery::Pending => "Still trying to reach the server.".to_string(),
                                    SummaryDelivery::Spooled { path, error } => {
                                        format!("{error}; kept in {}", path.display())
                                    }
                                    SummaryDelivery::Lost { error } => error.clone(),
                                };
                                ui.label(RichText::new(saved).size(12.0).color(theme::MUTED));
                            });
                    }
                    ui.add_space(14.0);
                    if ui
                        .add(theme::primary("Start New Stream").min_size(Vec2::new(480.0, 42.0)))
                        .clicked()
                    {
                        // the interruption was told here once; the setup screen starts clean
                        let _ = session.send(Command::DismissErrors);
                        let _ = session.send(Command::Reset);
                    }
                });
            });
        });
    });
}
