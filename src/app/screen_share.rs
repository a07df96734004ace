//! The screen-share controls setup and the live screen share: what to share, and how
//! (a second track beside the camera, or the camera over the screen in one track).
//! They only send commands; the session says what is being shared.

use egui::{RichText, Ui};
use streamit_media::compose::{Corner, PipLayout};
use streamit_session::{Command, ScreenInfo, ScreenShareState, ScreenTarget, SessionHandle};

use super::preview::{Look, Preview};
use super::theme;

/// Frames a second of a share: screens want detail more than motion.
const SHARE_FPS: u32 = 15;

/// What is shared now, and how.
fn sharing(state: &ScreenShareState) -> Option<(&ScreenTarget, Option<PipLayout>)> {
    match state {
        ScreenShareState::Sharing { target, pip, .. } => Some((target, *pip)),
        _ => None,
    }
}

/// Shares `target`; `choose_again` has the desktop's dialog ask instead of sharing what it
/// remembered.
pub(super) fn start(
    session: &SessionHandle,
    target: ScreenTarget,
    pip: Option<PipLayout>,
    choose_again: bool,
) {
    let _ = session.send(Command::StartScreenShare {
        target,
        fps: SHARE_FPS,
        pip,
        choose_again,
    });
}

/// What a creator calls `target`: the picker's name and size for it, also when it was
/// asked for by title (`publish --screen window:TITLE`, a remembered choice) rather than
/// picked; in words otherwise, never the `window-id:` spec.
fn describe(target: &ScreenTarget, screens: &[ScreenInfo]) -> String {
    match listed(target, screens) {
        // Wayland's portal entry has no size until the desktop's dialog has chosen.
        Some(s) if s.width == 0 => s.name.clone(),
        Some(s) => format!("{} · {}×{}", s.name, s.width, s.height),
        None => unlisted_name(target),
    }
}

/// The picker's entry for `target`, also when it was asked for by title.
fn listed<'a>(target: &ScreenTarget, screens: &'a [ScreenInfo]) -> Option<&'a ScreenInfo> {
    screens.iter().find(|s| {
        s.target == *target
            || matches!((target, &s.target), (ScreenTarget::Window(title), ScreenTarget::WindowId(_))
                if s.name.contains(title.as_str()))
    })
}

/// `target`'s name, without its size.
fn name_of(target: &ScreenTarget, screens: &[ScreenInfo]) -> String {
    listed(target, screens).map_or_else(|| unlisted_name(target), |s| s.name.clone())
}

/// `target` in words when the picker does not list it.
fn unlisted_name(target: &ScreenTarget) -> String {
    match target {
        ScreenTarget::Screen => "Whole screen".into(),
        ScreenTarget::Monitor(i) => format!("Monitor {}", i + 1),
        ScreenTarget::Window(title) => title.clone(),
        ScreenTarget::WindowId(_) => "A window".into(),
    }
}

/// The picker ("Not sharing" or a monitor or window) and, while sharing, the layout.
pub fn controls(
    ui: &mut Ui,
    state: &ScreenShareState,
    screens: &[ScreenInfo],
    session: &SessionHandle,
    width: f32,
) {
    let now = sharing(state);
    let current = match state {
        ScreenShareState::Starting { target } => Some(target.clone()),
        _ => now.map(|(t, _)| t.clone()),
    };
    let label = |t: &ScreenTarget| describe(t, screens);
    let shown = current.as_ref().map_or("Not sharing".to_string(), label);
    let mut picked = current.clone();
    egui::ComboBox::from_id_salt("screen-share")
        .selected_text(shown)
        .width(width)
        .truncate()
        .show_ui(ui, |ui| {
            ui.selectable_value(&mut picked, None, "Not sharing");
            if screens.is_empty() {
                ui.label(RichText::new("No screen or window to share").color(theme::MUTED));
            }
            for s in screens {
                ui.selectable_value(&mut picked, Some(s.target.clone()), label(&s.target));
            }
        })
        .response
        .widget_info(|| egui::WidgetInfo::labeled(egui::Role::ComboBox, true, "Screen"));
    let pip = now.and_then(|(_, p)| p);
    if picked != current {
        match picked {
            Some(t) => start(session, t, pip, false),
            None => {
                let _ = session.send(Command::StopScreenShare);
            }
        }
    }
    let Some((_, pip)) = now else {
        match state {
            ScreenShareState::Ended { reason } => {
                ui.label(RichText::new(format!("Sharing ended: {reason}")).color(theme::WARN));
            }
            ScreenShareState::Starting { .. } => {
                ui.label(
                    RichText::new("Starting… if your desktop asks what to share, choose there")
                        .color(theme::MUTED),
                );
            }
            _ => {}
        }
        return;
    };
    if matches!(
        state,
        ScreenShareState::Sharing {
            desktop_chose: true,
            ..
        }
    ) {
        ui.end_row();
        ui.label("");
        if ui
            .button("Choose another…")
            .on_hover_text(
                "Your desktop shares what you chose last without asking; this asks it again.",
            )
            .clicked()
        {
            start(session, ScreenTarget::Screen, pip, true);
        }
    }
    ui.end_row();
    ui.label("Layout");
    ui.horizontal_wrapped(|ui| {
        let mut want = pip;
        ui.selectable_value(&mut want, None, "Beside the camera")
            .on_hover_text("Two tracks: viewers see the screen large and you in a corner.");
        ui.selectable_value(
            &mut want,
            Some(pip.unwrap_or_default()),
            "Camera over screen",
        )
        .on_hover_text("One track: you in a corner of the screen, for pages that show one video.");
        if let Some(layout) = want {
            ui.separator();
            let mut corner = layout.corner;
            for (c, name) in [
                (Corner::TopLeft, "↖"),
                (Corner::TopRight, "↗"),
                (Corner::BottomLeft, "↙"),
                (Corner::BottomRight, "↘"),
            ] {
                ui.selectable_value(&mut corner, c, name)
                    .on_hover_text(c.as_str());
            }
            ui.separator();
            let mut size_pct = layout.size_pct;
            for (pct, name) in [(20, "S"), (25, "M"), (33, "L")] {
                ui.selectable_value(&mut size_pct, pct, name)
                    .on_hover_text(format!("Camera {pct} % of the picture's width"));
            }
            want = Some(PipLayout { corner, size_pct });
        }
        if want != pip {
            let _ = session.send(Command::SetScreenLayout(want));
        }
    });
}

/// The thumbnail's width as a share of the card it sits in, below the camera preview.
const THUMBNAIL_SHARE: f32 = 0.3;

/// The height the thumbnail takes below the camera preview in a card `card_width` wide.
pub fn thumbnail_height(card_width: f32) -> f32 {
    card_width * THUMBNAIL_SHARE * 9.0 / 16.0
}

/// Whether a screen is shared at all (the Layout row shows).
pub fn is_sharing(state: &ScreenShareState) -> bool {
    sharing(state).is_some()
}

/// Whether the screen goes out as its own track, which setup shows as a thumbnail (with
/// the camera over it, the camera preview already shows it).
pub fn shared_beside(state: &ScreenShareState) -> bool {
    matches!(sharing(state), Some((_, None)))
}

/// Where the thumbnail sits by the camera preview: below it, its caption to its right; or
/// right of it (when the window is too short for both one above the other), its caption
/// under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    Below,
    Beside,
}

/// The shared screen, small, while it goes out as its own track, in a column `width`
/// wide; beside the camera, no taller than `max_height` with its caption.
pub fn thumbnail(
    ui: &mut Ui,
    state: &ScreenShareState,
    screens: &[ScreenInfo],
    preview: &Preview,
    (width, max_height): (f32, f32),
    placement: Placement,
) {
    let ScreenShareState::Sharing {
        target,
        pip: None,
        on_air,
        width: w,
        height: h,
        fps,
        ..
    } = state
    else {
        return;
    };
    // The capture's own size, which the picker's (taken when it listed) may not be.
    let source = format!("{} · {w}×{h} at {fps} fps", name_of(target, screens));
    let what = if *on_air {
        "Viewers see it beside your camera"
    } else {
        "Goes out beside your camera"
    };
    let caption = |ui: &mut Ui| {
        ui.label(RichText::new("Screen share").family(theme::bold()));
        ui.label(RichText::new(source).size(12.0).color(theme::MUTED));
        ui.label(RichText::new(what).size(12.0).color(theme::MUTED));
    };
    match placement {
        Placement::Below => {
            ui.horizontal(|ui| {
                let size = egui::Vec2::new(width * THUMBNAIL_SHARE, thumbnail_height(width));
                preview.show(ui, size, Look::Frame, false);
                ui.vertical(caption);
            });
        }
        Placement::Beside => {
            ui.vertical(|ui| {
                ui.set_max_width(width);
                // Three caption lines under the picture, which may wrap once.
                let picture_h = (max_height - 72.0).max(54.0).min(width * 9.0 / 16.0);
                preview.show(ui, egui::Vec2::new(width, picture_h), Look::Frame, false);
                caption(ui);
            });
        }
    }
}
