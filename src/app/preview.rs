//! The self-preview: the latest captured I420 frame as one GPU texture, updated in place
//! whenever a frame with a new timestamp arrives (one RGBA conversion per new frame).

use egui::{Color32, ColorImage, CornerRadius, RichText, TextureHandle, TextureOptions, Ui, Vec2};
use streamit_media::{MediaTime, VideoFrame};

use super::theme;

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

    /// Draws the preview letterboxed into `max` (16:9 placeholder when there is no frame).
    pub fn show(&self, ui: &mut Ui, max: Vec2, show_frame: bool, placeholder: &str) {
        let aspect = if self.size[1] > 0 {
            self.size[0] as f32 / self.size[1] as f32
        } else {
            16.0 / 9.0
        };
        let mut size = Vec2::new(max.x, max.x / aspect);
        if size.y > max.y {
            size = Vec2::new(max.y * aspect, max.y);
        }
        match (&self.texture, show_frame) {
            (Some(t), true) => {
                let img = egui::Image::new((t.id(), size))
                    .corner_radius(CornerRadius::same(10))
                    .alt_text("Self preview");
                ui.add(img);
            }
            _ => {
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
            }
        }
    }
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
