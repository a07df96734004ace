//! The self-preview: the latest captured I420 frame as one GPU texture, updated in place
//! whenever a frame with a new timestamp arrives (one RGBA conversion per new frame).

use egui::{Color32, ColorImage, CornerRadius, RichText, TextureHandle, TextureOptions, Ui, Vec2};
use streamit_media::{MediaTime, VideoFrame};

use super::theme;

/// The camera's preview and the screen share's.
#[derive(Clone, Copy)]
pub struct Previews<'a> {
    pub camera: &'a Preview,
    pub screen: &'a Preview,
}

#[derive(Default)]
pub struct Preview {
    texture: Option<TextureHandle>,
    pts: Option<MediaTime>,
    size: [usize; 2],
    /// Frames uploaded (for tests and the stats line).
    pub uploads: u64,
}

impl Preview {
    /// Uploads `frame` if it is new. Cheap when nothing changed.
    pub fn update(&mut self, ctx: &egui::Context, frame: Option<&VideoFrame>) {
        let Some(frame) = frame else {
            return;
        };
        if self.pts == Some(frame.pts) && self.texture.is_some() {
            return;
        }
        let rgba = match streamit_media::convert::i420_to_rgba(frame) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("preview conversion failed: {e}");
                return;
            }
        };
        let size = [frame.width as usize, frame.height as usize];
        // Opaque RGBA is already premultiplied: reuse the conversion's buffer as the pixels.
        let pixels: Vec<Color32> = match bytemuck::allocation::try_cast_vec(rgba) {
            Ok(p) => p,
            Err((_, rgba)) => rgba
                .chunks_exact(4)
                .map(|p| Color32::from_rgba_premultiplied(p[0], p[1], p[2], p[3]))
                .collect(),
        };
        let image = ColorImage::new(size, pixels);
        match &mut self.texture {
            Some(t) => t.set(image, TextureOptions::LINEAR),
            None => {
                self.texture = Some(ctx.load_texture("self-preview", image, TextureOptions::LINEAR))
            }
        }
        self.pts = Some(frame.pts);
        self.size = size;
        self.uploads += 1;
    }

    /// The texture on the GPU (the same one for every frame of a size).
    #[allow(dead_code)] // read by the UI tests (tests/gui.rs)
    pub fn texture_id(&self) -> Option<egui::TextureId> {
        self.texture.as_ref().map(|t| t.id())
    }

    /// Forgets the texture (camera off, stream ended).
    pub fn clear(&mut self) {
        self.texture = None;
        self.pts = None;
    }

    /// Draws the preview letterboxed into `max` (16:9 placeholder when there is no frame):
    /// the frame, or the camera-off card while the camera is off, or "waiting"; with a
    /// "Mic muted" badge over it while the microphone is muted.
    pub fn show(&self, ui: &mut Ui, max: Vec2, look: Look<'_>, mic_muted: bool) {
        let aspect = if self.size[1] > 0 {
            self.size[0] as f32 / self.size[1] as f32
        } else {
            16.0 / 9.0
        };
        let mut size = Vec2::new(max.x, max.x / aspect);
        if size.y > max.y {
            size = Vec2::new(max.y * aspect, max.y);
        }
        let rect = match (&self.texture, look) {
            (Some(t), Look::Frame) => {
                let img = egui::Image::new((t.id(), size))
                    .corner_radius(CornerRadius::same(10))
                    .alt_text("Self preview");
                ui.add(img).rect
            }
            (_, Look::CameraOff(note)) => {
                let (rect, resp) = ui.allocate_exact_size(size, egui::Sense::hover());
                theme::name_widget(&resp, egui::Role::Label, &format!("Camera off — {note}"));
                let p = ui.painter_at(rect);
                p.rect_filled(rect, CornerRadius::same(10), theme::PANEL);
                p.rect_stroke(
                    rect.shrink(1.0),
                    CornerRadius::same(10),
                    egui::Stroke::new(1.5, theme::BORDER),
                    egui::StrokeKind::Inside,
                );
                // A camera with a slash through it, drawn (the bundled fonts have no icon).
                let s = (size.y * 0.16).clamp(18.0, 56.0);
                let c = rect.center() - Vec2::new(0.0, s * 0.7);
                let body = egui::Rect::from_center_size(c, Vec2::new(s * 1.3, s * 0.9));
                let stroke = egui::Stroke::new((s * 0.08).max(2.0), theme::MUTED);
                p.rect_stroke(
                    body,
                    CornerRadius::same(4),
                    stroke,
                    egui::StrokeKind::Middle,
                );
                p.line_segment(
                    [
                        body.right_center() + Vec2::new(s * 0.1, -s * 0.2),
                        body.right_center() + Vec2::new(s * 0.45, -s * 0.4),
                    ],
                    stroke,
                );
                p.line_segment(
                    [
                        body.right_center() + Vec2::new(s * 0.1, s * 0.2),
                        body.right_center() + Vec2::new(s * 0.45, s * 0.4),
                    ],
                    stroke,
                );
                p.line_segment(
                    [
                        body.left_top() - Vec2::splat(s * 0.2),
                        body.right_bottom() + Vec2::splat(s * 0.2),
                    ],
                    egui::Stroke::new(stroke.width, theme::LIVE),
                );
                p.text(
                    c + Vec2::new(0.0, s * 1.0),
                    egui::Align2::CENTER_TOP,
                    "Camera off",
                    egui::FontId::new((s * 0.45).clamp(15.0, 24.0), theme::bold()),
                    theme::TEXT,
                );
                p.text(
                    c + Vec2::new(0.0, s * 1.0 + (s * 0.45).clamp(15.0, 24.0) + 8.0),
                    egui::Align2::CENTER_TOP,
                    note,
                    egui::FontId::proportional(14.0),
                    theme::MUTED,
                );
                rect
            }
            (_, Look::Frame) | (_, Look::Waiting(_)) => {
                let placeholder = match look {
                    Look::Waiting(p) => p,
                    _ => "Waiting for video…",
                };
                let (rect, resp) = ui.allocate_exact_size(size, egui::Sense::hover());
                theme::name_widget(&resp, egui::Role::Label, placeholder);
                ui.painter()
                    .rect_filled(rect, CornerRadius::same(10), theme::FIELD);
                ui.painter().text(
                    rect.center(),
                    egui::Align2::CENTER_CENTER,
                    placeholder,
                    egui::FontId::proportional(16.0),
                    theme::MUTED,
                );
                rect
            }
        };
        if mic_muted {
            muted_badge(ui, rect);
        }
    }
}

/// The camera-off card's second line (no frames go out while the camera is off).
pub const CAMERA_OFF_NOTE: &str = "viewers get no video until you turn it back on";

/// What the preview shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look<'a> {
    /// The latest frame (or the waiting text until there is one).
    Frame,
    /// The camera-off card, with a line on what viewers see.
    CameraOff(&'a str),
    /// A placeholder text (the source is starting).
    Waiting(&'a str),
}

/// The "Mic muted" badge, over the preview's top left corner (read by tests as a label).
fn muted_badge(ui: &mut Ui, preview: egui::Rect) {
    let font = egui::FontId::new(15.0, theme::bold());
    let galley = ui
        .painter()
        .layout_no_wrap("MIC MUTED".into(), font, Color32::WHITE);
    let pad = Vec2::new(12.0, 6.0);
    let rect = egui::Rect::from_min_size(
        preview.min + Vec2::splat(12.0),
        galley.size() + pad * 2.0 + Vec2::new(18.0, 0.0),
    );
    let resp = ui.interact(
        rect,
        ui.scope_id().with("mic-muted-badge"),
        egui::Sense::hover(),
    );
    theme::name_widget(&resp, egui::Role::Label, "Mic muted");
    let p = ui.painter_at(preview);
    p.rect_filled(rect, CornerRadius::same(6), theme::LIVE);
    // A small crossed-out dot stands for the microphone.
    let dot = egui::pos2(rect.min.x + pad.x + 5.0, rect.center().y);
    p.circle_stroke(dot, 5.0, egui::Stroke::new(2.0, Color32::WHITE));
    p.line_segment(
        [dot + Vec2::new(-6.0, -6.0), dot + Vec2::new(6.0, 6.0)],
        egui::Stroke::new(2.0, Color32::WHITE),
    );
    p.galley(
        egui::pos2(rect.min.x + pad.x + 18.0, rect.min.y + pad.y),
        galley,
        Color32::WHITE,
    );
}

/// The microphone level meter: linear RMS shown on a −60…0 dBFS scale.
pub fn level_meter(ui: &mut Ui, level: f32, muted: bool, width: f32) {
    let db = if level > 0.0 {
        20.0 * level.log10()
    } else {
        -90.0
    };
    let frac = ((db + 60.0) / 60.0).clamp(0.0, 1.0);
    let (rect, resp) = ui.allocate_exact_size(Vec2::new(width, 10.0), egui::Sense::hover());
    let label = if muted {
        "Microphone level: muted".to_string()
    } else {
        format!("Microphone level: {db:.0} dBFS")
    };
    theme::name_widget(&resp, egui::Role::Meter, &label);
    let p = ui.painter();
    p.rect_filled(rect, CornerRadius::same(5), theme::FIELD);
    if !muted && frac > 0.0 {
        let mut filled = rect;
        filled.set_width(rect.width() * frac);
        let color = if db > -6.0 {
            theme::LIVE
        } else if db > -18.0 {
            theme::WARN
        } else {
            theme::GOOD
        };
        p.rect_filled(filled, CornerRadius::same(5), color);
    }
    let text = if muted {
        RichText::new("muted").color(theme::LIVE)
    } else {
        RichText::new(format!("{db:.0} dB")).color(theme::MUTED)
    };
    ui.label(text.size(11.5));
}
