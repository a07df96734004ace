//! "Camera over screen": the camera's picture in a corner of the shared screen, composited
//! before encoding, so one track carries both for pages that show one video.
//!
//! The output has the camera's size, so the camera track (its simulcast layers, mute, stats
//! and recording) carries the layout unchanged. The screen is fitted into it (letterboxed
//! when the aspect differs) and scaled once per screen frame, not once per camera frame.

use std::fmt;
use std::str::FromStr;

use crate::clock::MediaTime;
use crate::convert::scale_i420;
use crate::error::{MediaError, Result};
use crate::frame::{VideoFrame, i420_len};

/// Where the camera sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Corner {
    TopLeft,
    TopRight,
    BottomLeft,
    #[default]
    BottomRight,
}

impl Corner {
    pub const ALL: [Corner; 4] = [
        Corner::TopLeft,
        Corner::TopRight,
        Corner::BottomLeft,
        Corner::BottomRight,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Corner::TopLeft => "top-left",
            Corner::TopRight => "top-right",
            Corner::BottomLeft => "bottom-left",
            Corner::BottomRight => "bottom-right",
        }
    }
}

/// The camera's corner and width (a percentage of the picture's width).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PipLayout {
    pub corner: Corner,
    pub size_pct: u32,
}

impl PipLayout {
    /// Smaller hides the face, larger hides the screen.
    pub const SIZES: std::ops::RangeInclusive<u32> = 10..=50;
}

impl Default for PipLayout {
    fn default() -> Self {
        PipLayout {
            corner: Corner::BottomRight,
            size_pct: 25,
        }
    }
}

impl fmt::Display for PipLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.corner.as_str(), self.size_pct)
    }
}

impl FromStr for PipLayout {
    type Err = String;

    /// `bottom-right`, `top-left:30` (corner, then the camera's width in percent).
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (corner, size) = s.split_once(':').unwrap_or((s, ""));
        let corner = Corner::ALL
            .into_iter()
            .find(|c| c.as_str() == corner.trim())
            .ok_or_else(|| {
                format!(
                    "unknown corner {corner:?}: top-left, top-right, bottom-left or bottom-right"
                )
            })?;
        let size_pct = if size.is_empty() {
            PipLayout::default().size_pct
        } else {
            size.trim()
                .parse::<u32>()
                .ok()
                .filter(|p| Self::SIZES.contains(p))
                .ok_or_else(|| format!("camera size {size:?}: a percentage from 10 to 50"))?
        };
        Ok(PipLayout { corner, size_pct })
    }
}

/// A rectangle of a picture, in pixels; even, so it maps onto whole chroma samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

fn even(v: f64) -> u32 {
    ((v / 2.0).round() as u32) * 2
}

impl PipLayout {
    /// Where a `inner`-sized picture goes in an `outer`-sized one: `size_pct` of the outer
    /// width, the inner aspect kept, a margin of 2 % of the outer width from the edges.
    pub fn place(&self, outer: (u32, u32), inner: (u32, u32)) -> Rect {
        let ow = f64::from(outer.0);
        let aspect = f64::from(inner.1.max(1)) / f64::from(inner.0.max(1));
        let width = even(ow * f64::from(self.size_pct) / 100.0).clamp(2, outer.0);
        let height = even(f64::from(width) * aspect).clamp(2, outer.1);
        let margin = even(ow * 0.02);
        let right = outer.0.saturating_sub(width + margin);
        let bottom = outer.1.saturating_sub(height + margin);
        let (x, y) = match self.corner {
            Corner::TopLeft => (margin, margin),
            Corner::TopRight => (right, margin),
            Corner::BottomLeft => (margin, bottom),
            Corner::BottomRight => (right, bottom),
        };
        Rect {
            x,
            y,
            width,
            height,
        }
    }
}

/// Composites the camera over the latest screen frame.
#[derive(Debug)]
pub struct Compositor {
    pub layout: PipLayout,
    /// The fitted screen, and which screen frame (its time) it was made from.
    base: Option<(MediaTime, VideoFrame)>,
}

impl Compositor {
    pub fn new(layout: PipLayout) -> Self {
        Compositor { layout, base: None }
    }

    /// The camera frame with the screen behind it: camera size, camera time.
    pub fn compose(&mut self, screen: &VideoFrame, camera: &VideoFrame) -> Result<VideoFrame> {
        let (w, h) = (camera.width, camera.height);
        let fresh = self
            .base
            .as_ref()
            .is_some_and(|(pts, b)| *pts == screen.pts && (b.width, b.height) == (w, h));
        if !fresh {
            self.base = Some((screen.pts, fit(screen, w, h)?));
        }
        let Some((_, base)) = &self.base else {
            return Err(MediaError::Geometry("no screen picture to compose".into()));
        };
        let rect = self.layout.place((w, h), (w, h));
        let small = scale_i420(camera, rect.width, rect.height)?;
        let mut buf = base.data().to_vec();
        paste(&mut buf, w, h, &small, rect.x, rect.y)?;
        VideoFrame::from_i420(w, h, buf, camera.pts)
    }
}

/// `frame` scaled to fit `w`×`h` with its aspect kept, centred on black.
fn fit(frame: &VideoFrame, w: u32, h: u32) -> Result<VideoFrame> {
    if (frame.width, frame.height) == (w, h) {
        return Ok(frame.clone());
    }
    let scale = (f64::from(w) / f64::from(frame.width)).min(f64::from(h) / f64::from(frame.height));
    let fw = even(f64::from(frame.width) * scale).clamp(2, w);
    let fh = even(f64::from(frame.height) * scale).clamp(2, h);
    let scaled = scale_i420(frame, fw, fh)?;
    if (fw, fh) == (w, h) {
        return Ok(scaled);
    }
    let mut buf = VideoFrame::solid(w, h, 16, 128, 128, frame.pts)?
        .data()
        .to_vec();
    let (x, y) = (even(f64::from(w - fw) / 2.0), even(f64::from(h - fh) / 2.0));
    paste(&mut buf, w, h, &scaled, x.min(w - fw), y.min(h - fh))?;
    VideoFrame::from_i420(w, h, buf, frame.pts)
}

/// Copies `src` into the packed I420 `dst` (`w`×`h`) at (`x`, `y`), both even.
fn paste(dst: &mut [u8], w: u32, h: u32, src: &VideoFrame, x: u32, y: u32) -> Result<()> {
    if dst.len() != i420_len(w, h)
        || !x.is_multiple_of(2)
        || !y.is_multiple_of(2)
        || x + src.width > w
        || y + src.height > h
    {
        return Err(MediaError::Geometry(format!(
            "cannot paste {}x{} at {x},{y} into {w}x{h}",
            src.width, src.height
        )));
    }
    let (w, h, x, y) = (w as usize, h as usize, x as usize, y as usize);
    let (sw, sh) = (src.width as usize, src.height as usize);
    let (y_plane, chroma) = dst.split_at_mut(w * h);
    let (u_plane, v_plane) = chroma.split_at_mut((w / 2) * (h / 2));
    let luma = Block {
        x,
        y,
        width: sw,
        height: sh,
    };
    let half = Block {
        x: x / 2,
        y: y / 2,
        width: sw / 2,
        height: sh / 2,
    };
    copy_block(y_plane, w, src.y(), src.y_stride(), luma);
    copy_block(u_plane, w / 2, src.u(), src.uv_stride(), half);
    copy_block(v_plane, w / 2, src.v(), src.uv_stride(), half);
    Ok(())
}

/// Where a plane's rows go, in that plane's samples.
#[derive(Clone, Copy)]
struct Block {
    x: usize,
    y: usize,
    width: usize,
    height: usize,
}

fn copy_block(dst: &mut [u8], d_stride: usize, src: &[u8], s_stride: usize, b: Block) {
    for row in 0..b.height {
        let from = &src[row * s_stride..row * s_stride + b.width];
        let at = (b.y + row) * d_stride + b.x;
        dst[at..at + b.width].copy_from_slice(from);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::{generate_pattern, read_pattern_code, read_pattern_code_luma};

    /// The pattern code read from `rect` of `frame` alone.
    fn code_in(frame: &VideoFrame, rect: Rect) -> Option<(u32, u64)> {
        let stride = frame.y_stride();
        let from = rect.y as usize * stride + rect.x as usize;
        read_pattern_code_luma(&frame.y()[from..], stride, rect.width, rect.height)
    }

    #[test]
    fn layouts_parse_and_print_back() {
        for s in [
            "top-left:10",
            "top-right:30",
            "bottom-left:50",
            "bottom-right:25",
        ] {
            assert_eq!(s.parse::<PipLayout>().unwrap().to_string(), s);
        }
        assert_eq!("bottom-left".parse::<PipLayout>().unwrap().size_pct, 25);
        assert!("middle".parse::<PipLayout>().is_err());
        assert!("top-left:60".parse::<PipLayout>().is_err());
        assert!("top-left:x".parse::<PipLayout>().is_err());
    }

    #[test]
    fn places_stay_inside_and_even() {
        for corner in Corner::ALL {
            for size_pct in [10, 25, 50] {
                let r = PipLayout { corner, size_pct }.place((1280, 720), (1280, 720));
                assert!(r.x + r.width <= 1280 && r.y + r.height <= 720, "{r:?}");
                assert!([r.x, r.y, r.width, r.height].iter().all(|v| v % 2 == 0));
            }
        }
        let r = PipLayout::default().place((1280, 720), (1280, 720));
        assert_eq!(
            r,
            Rect {
                x: 934,
                y: 514,
                width: 320,
                height: 180
            }
        );
    }

    #[test]
    fn the_camera_code_reads_in_its_corner_and_the_screen_code_in_its_own() {
        let screen = generate_pattern(640, 360, 1111, MediaTime::from_micros(5)).unwrap();
        // The code reader's block is a 40th of the width it is given, so the sizes are ones
        // where the camera's blocks scale to whole pixels (a test limit, not the layout's).
        let layouts = [
            (Corner::TopRight, 25),
            (Corner::BottomLeft, 50),
            (Corner::BottomRight, 25),
        ];
        for (corner, size_pct) in layouts {
            let layout = PipLayout { corner, size_pct };
            let mut c = Compositor::new(layout);
            for n in 0..3 {
                let cam = generate_pattern(1280, 720, 40 + n, MediaTime::from_micros(9)).unwrap();
                let out = c.compose(&screen, &cam).unwrap();
                assert_eq!((out.width, out.height, out.pts), (1280, 720, cam.pts));
                let rect = layout.place((1280, 720), (1280, 720));
                assert_eq!(code_in(&out, rect).map(|c| c.0), Some(40 + n), "{layout}");
                // The screen's own code (a strip along the top) shows where the camera
                // does not cover it.
                if rect.y > 720 / 4 {
                    assert_eq!(read_pattern_code(&out).map(|c| c.0), Some(1111), "{layout}");
                }
            }
        }
    }

    #[test]
    fn a_screen_of_another_shape_is_letterboxed() {
        let screen = VideoFrame::solid(400, 400, 200, 128, 128, MediaTime::ZERO).unwrap();
        let cam = VideoFrame::solid(1280, 720, 100, 128, 128, MediaTime::ZERO).unwrap();
        let out = Compositor::new(PipLayout::default())
            .compose(&screen, &cam)
            .unwrap();
        let y = out.y();
        assert_eq!(y[10 * 1280 + 10], 16, "black bar on the left");
        assert_eq!(y[360 * 1280 + 640], 200, "the screen in the middle");
    }
}
