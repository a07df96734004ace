//! The studio's look: a dark theme, the bundled Inter font, colours and small shared widgets.

use std::sync::Arc;

use egui::{
    Color32, CornerRadius, FontData, FontDefinitions, FontFamily, FontId, Frame, Margin, RichText,
    Stroke, TextStyle, Ui, Vec2,
};

/// Inter (SIL OFL 1.1, see `assets/fonts/LICENSE-Inter.txt`).
const INTER_REGULAR: &[u8] = include_bytes!("../../assets/fonts/Inter-Regular.otf");
const INTER_SEMIBOLD: &[u8] = include_bytes!("../../assets/fonts/Inter-SemiBold.otf");
/// The window icon.
pub const ICON_PNG: &[u8] = include_bytes!("../../assets/icon.png");

pub const BG: Color32 = Color32::from_rgb(0x0e, 0x10, 0x15);
pub const PANEL: Color32 = Color32::from_rgb(0x16, 0x19, 0x21);
pub const CARD: Color32 = Color32::from_rgb(0x1d, 0x21, 0x2b);
pub const FIELD: Color32 = Color32::from_rgb(0x11, 0x13, 0x19);
pub const BORDER: Color32 = Color32::from_rgb(0x2c, 0x31, 0x3d);
/// An unchecked checkbox's border: light enough to read on a card.
pub const CHECK_BORDER: Color32 = Color32::from_rgb(0x6b, 0x73, 0x87);
pub const TEXT: Color32 = Color32::from_rgb(0xe6, 0xe8, 0xee);
pub const MUTED: Color32 = Color32::from_rgb(0x8b, 0x93, 0xa7);
pub const ACCENT: Color32 = Color32::from_rgb(0x8b, 0x5c, 0xf6);
pub const ACCENT_DARK: Color32 = Color32::from_rgb(0x6d, 0x3f, 0xe0);
pub const LIVE: Color32 = Color32::from_rgb(0xef, 0x44, 0x44);
pub const GOOD: Color32 = Color32::from_rgb(0x22, 0xc5, 0x5e);
pub const WARN: Color32 = Color32::from_rgb(0xf5, 0x9e, 0x0b);
pub const ERROR_BG: Color32 = Color32::from_rgb(0x3b, 0x15, 0x18);
pub const WARN_BG: Color32 = Color32::from_rgb(0x3a, 0x2a, 0x0c);

/// The semibold family, for headings and names.
pub fn bold() -> FontFamily {
    FontFamily::Name("semibold".into())
}

/// Installs fonts, colours and spacing.
pub fn install(ctx: &egui::Context) {
    let mut fonts = FontDefinitions::default();
    fonts.font_data.insert(
        "inter".into(),
        Arc::new(FontData::from_static(INTER_REGULAR)),
    );
    fonts.font_data.insert(
        "inter-semibold".into(),
        Arc::new(FontData::from_static(INTER_SEMIBOLD)),
    );
    // Inter first; egui's bundled fonts stay as fallbacks for symbols and emoji.
    for family in [FontFamily::Proportional, FontFamily::Monospace] {
        let list = fonts.families.entry(family.clone()).or_default();
        if family == FontFamily::Proportional {
            list.insert(0, "inter".into());
        } else {
            list.push("inter".into());
        }
    }
    let mut semibold = vec!["inter-semibold".to_string()];
    semibold.extend(
        fonts
            .families
            .get(&FontFamily::Proportional)
            .cloned()
            .unwrap_or_default(),
    );
    fonts.families.insert(bold(), semibold);
    ctx.set_fonts(fonts);

    ctx.set_theme(egui::Theme::Dark);
    ctx.style_mut_of(egui::Theme::Dark, |style| {
        style.text_styles = [
            (TextStyle::Heading, FontId::new(24.0, bold())),
            (TextStyle::Body, FontId::new(15.0, FontFamily::Proportional)),
            (
                TextStyle::Button,
                FontId::new(15.0, FontFamily::Proportional),
            ),
            (
                TextStyle::Small,
                FontId::new(12.0, FontFamily::Proportional),
            ),
            (
                TextStyle::Monospace,
                FontId::new(14.0, FontFamily::Monospace),
            ),
        ]
        .into();
        style.spacing.item_spacing = Vec2::new(10.0, 10.0);
        style.spacing.button_padding = Vec2::new(14.0, 7.0);
        style.spacing.interact_size.y = 32.0;
        style.spacing.text_edit_width = 320.0;

        let v = &mut style.visuals;
        v.dark_mode = true;
        v.panel_fill = BG;
        v.window_fill = CARD;
        v.extreme_bg_color = FIELD;
        v.faint_bg_color = PANEL;
        v.window_stroke = Stroke::new(1.0, BORDER);
        v.window_corner_radius = CornerRadius::same(12);
        v.menu_corner_radius = CornerRadius::same(8);
        v.selection.bg_fill = ACCENT_DARK;
        v.selection.stroke = Stroke::new(1.0, TEXT);
        v.hyperlink_color = ACCENT;
        v.override_text_color = None;
        let r = CornerRadius::same(8);
        let w = &mut v.widgets;
        w.noninteractive.bg_fill = PANEL;
        w.noninteractive.weak_bg_fill = PANEL;
        w.noninteractive.bg_stroke = Stroke::new(1.0, BORDER);
        w.noninteractive.fg_stroke = Stroke::new(1.0, TEXT);
        w.inactive.bg_fill = CARD;
        w.inactive.weak_bg_fill = Color32::from_rgb(0x26, 0x2b, 0x37);
        w.inactive.bg_stroke = Stroke::new(1.0, BORDER);
        w.inactive.fg_stroke = Stroke::new(1.0, TEXT);
        w.hovered.weak_bg_fill = Color32::from_rgb(0x30, 0x36, 0x45);
        w.hovered.bg_fill = Color32::from_rgb(0x30, 0x36, 0x45);
        w.hovered.bg_stroke = Stroke::new(1.0, ACCENT);
        w.hovered.fg_stroke = Stroke::new(1.5, Color32::WHITE);
        w.active.weak_bg_fill = ACCENT_DARK;
        w.active.bg_fill = ACCENT_DARK;
        w.active.bg_stroke = Stroke::new(1.0, ACCENT);
        w.active.fg_stroke = Stroke::new(1.5, Color32::WHITE);
        w.open.weak_bg_fill = Color32::from_rgb(0x26, 0x2b, 0x37);
        for s in [
            &mut w.noninteractive,
            &mut w.inactive,
            &mut w.hovered,
            &mut w.active,
            &mut w.open,
        ] {
            s.corner_radius = r;
        }
    });
}

/// A rounded card.
pub fn card() -> Frame {
    Frame::new()
        .fill(CARD)
        .stroke(Stroke::new(1.0, BORDER))
        .corner_radius(CornerRadius::same(12))
        .inner_margin(Margin::same(18))
}

/// A filled primary button text.
pub fn primary(text: &str) -> egui::Button<'static> {
    egui::Button::new(
        RichText::new(text.to_string())
            .color(Color32::WHITE)
            .strong(),
    )
    .fill(ACCENT_DARK)
    .min_size(Vec2::new(0.0, 36.0))
}

/// A red button (End stream).
pub fn danger(text: &str) -> egui::Button<'static> {
    egui::Button::new(
        RichText::new(text.to_string())
            .color(Color32::WHITE)
            .strong(),
    )
    .fill(Color32::from_rgb(0xb9, 0x1c, 0x1c))
    .min_size(Vec2::new(0.0, 36.0))
}

/// A section caption.
pub fn caption(ui: &mut Ui, text: &str) {
    ui.label(
        RichText::new(text.to_uppercase())
            .size(11.5)
            .color(MUTED)
            .family(bold()),
    );
}

/// A small rounded status pill ("LIVE", "Setup").
pub fn pill(ui: &mut Ui, text: &str, fill: Color32) {
    Frame::new()
        .fill(fill)
        .corner_radius(CornerRadius::same(10))
        .inner_margin(Margin::symmetric(9, 3))
        .show(ui, |ui| {
            ui.label(
                RichText::new(text)
                    .size(12.0)
                    .family(bold())
                    .color(Color32::WHITE),
            );
        });
}

/// A coloured dot (connection quality).
pub fn dot(ui: &mut Ui, color: Color32) {
    let (rect, _) = ui.allocate_exact_size(Vec2::splat(12.0), egui::Sense::hover());
    ui.painter().circle_filled(rect.center(), 5.5, color);
}

/// An inline message box (errors, warnings).
pub fn banner(ui: &mut Ui, fill: Color32, stroke: Color32, add: impl FnOnce(&mut Ui)) {
    Frame::new()
        .fill(fill)
        .stroke(Stroke::new(1.0, stroke))
        .corner_radius(CornerRadius::same(8))
        .inner_margin(Margin::symmetric(12, 8))
        .show(ui, |ui| {
            ui.set_width(ui.available_width());
            add(ui);
        });
}

/// Gives a text field its accessible name (screen readers, UI tests).
pub fn name_field(r: &egui::Response, name: &str, value: &str) {
    r.widget_info(|| {
        let mut info = egui::WidgetInfo::text_edit(true, value, value, "");
        info.label = Some(name.to_string());
        info
    });
}

/// Gives a painted widget an accessible role and name.
pub fn name_widget(r: &egui::Response, role: egui::Role, name: &str) {
    r.widget_info(|| egui::WidgetInfo::labeled(role, true, name));
}

/// "Share: <watch url>" with a Copy button (to the system clipboard); nothing when the
/// backend gave no URL. `copied_at` remembers the last copy, for a short "Copied".
pub fn share_link(ui: &mut Ui, url: &str, copied_at: &mut Option<std::time::Instant>) {
    if url.is_empty() {
        return;
    }
    let link = RichText::new(url)
        .family(egui::FontFamily::Monospace)
        .color(TEXT);
    let link_width = egui::WidgetText::from(link.clone())
        .into_galley(
            ui,
            Some(egui::TextWrapMode::Extend),
            f32::INFINITY,
            egui::TextStyle::Body,
        )
        .size()
        .x;
    // "Share:", the link and Copy on one row when they fit; in a narrow column the link
    // gets a row of its own (cut short, whole on hover) rather than pushing Copy out of view.
    let one_row = ui.available_width() >= link_width + 130.0;
    let mut copy_row = |ui: &mut Ui| {
        let copy = ui.small_button("Copy");
        name_widget(&copy, egui::Role::Button, "Copy watch link");
        if copy.clicked() {
            ui.ctx().copy_text(url.to_string());
            *copied_at = Some(std::time::Instant::now());
        }
        if copied_at.is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(2)) {
            ui.label(RichText::new("Copied").color(GOOD));
            ui.ctx()
                .request_repaint_after(std::time::Duration::from_millis(500));
        }
    };
    ui.horizontal(|ui| {
        ui.spacing_mut().item_spacing.x = 6.0;
        ui.label(RichText::new("Share:").color(MUTED));
        if one_row {
            ui.label(link.clone())
                .on_hover_text("Where viewers watch your stream");
        }
        copy_row(ui);
    });
    if !one_row {
        ui.add(egui::Label::new(link).truncate()).on_hover_text(url);
    }
}

/// A small inline mark next to a name ("Guest", "Creator").
pub fn badge(ui: &mut Ui, text: &str, fill: Color32) {
    Frame::new()
        .fill(fill)
        .corner_radius(CornerRadius::same(6))
        .inner_margin(Margin::symmetric(6, 1))
        .show(ui, |ui| {
            ui.label(
                RichText::new(text)
                    .size(11.0)
                    .family(bold())
                    .color(Color32::WHITE),
            );
        });
}

/// Whether a text of `len` characters is near its limit `max`: the point from which the
/// field shows a counter (the last fifth).
pub fn near_limit(len: usize, max: usize) -> bool {
    len.saturating_mul(5) >= max.saturating_mul(4)
}

/// "n / max" once `text` is near `max` (nothing before): the fields stop at the backend's
/// limits (`streamit_api::limits`) as one types, and this says why the typing stopped.
pub fn limit_counter(ui: &mut Ui, text: &str, max: usize) {
    let len = text.chars().count();
    if !near_limit(len, max) {
        return;
    }
    let color = if len >= max { WARN } else { MUTED };
    ui.label(
        RichText::new(format!("{len} / {max}"))
            .size(12.0)
            .color(color),
    )
    .on_hover_text(format!("At most {max} characters"));
}

/// A checkbox readable in every state on the dark cards: egui's stock box fills with the
/// widget-state colour only, so unchecked it vanished into the card and focused (the
/// "active" fill) it looked checked. Here the fill says checked or not, the border says
/// hovered or focused.
pub fn checkbox(ui: &mut Ui, checked: &mut bool, text: &str) -> egui::Response {
    ui.scope(|ui| {
        let on = *checked;
        let fill = if on { ACCENT_DARK } else { FIELD };
        let w = &mut ui.visuals_mut().widgets;
        w.inactive.bg_fill = fill;
        w.inactive.bg_stroke = Stroke::new(1.5, if on { ACCENT } else { CHECK_BORDER });
        w.hovered.bg_fill = fill;
        w.hovered.bg_stroke = Stroke::new(2.0, ACCENT);
        w.active.bg_fill = fill;
        w.active.bg_stroke = Stroke::new(2.0, Color32::WHITE);
        for s in [&mut w.inactive, &mut w.hovered, &mut w.active] {
            s.fg_stroke = Stroke::new(2.0, Color32::WHITE);
        }
        ui.checkbox(checked, text)
    })
    .inner
}
