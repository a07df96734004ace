//! Windows and macOS through `xcap`: one `capture_image` per frame. On Windows that is GDI:
//! `BitBlt` of a monitor, `PrintWindow` with full-content rendering of a window (so windows
//! drawn by the GPU are captured too); no permission prompt. xcap's Windows.Graphics.Capture
//! path (its `wgc` feature) sets up a capture session for every shot, too heavy at 15 fps.
//! On macOS it is Core Graphics' window-list capture, which needs the Screen Recording
//! permission (System Settings → Privacy & Security; macOS asks at the first capture, and
//! without it the picture holds only the wallpaper and our own windows). Neither runs on this
//! project's Linux CI: the Windows path is compiled by `cargo check --target
//! x86_64-pc-windows-gnu`, the macOS one by nothing here (it needs the macOS SDK).

use xcap::{Monitor, Window, XCapError};

use super::{OpenShare, ScreenInfo, ScreenTarget, even_size};
use crate::clock::MediaTime;
use crate::convert::rgba_to_i420;
use crate::error::{MediaError, Result};
use crate::frame::VideoFrame;

fn dev_err(e: XCapError) -> MediaError {
    MediaError::Device(format!("screen capture: {e}"))
}

/// Monitors, the primary first (it is what `screen` shares).
fn monitors() -> Result<Vec<Monitor>> {
    let mut all = Monitor::all().map_err(dev_err)?;
    all.sort_by_key(|m| !m.is_primary().unwrap_or(false));
    Ok(all)
}

/// Windows that can be shown: titled, not minimised.
fn windows() -> Result<Vec<(Window, u32, String)>> {
    Ok(Window::all()
        .map_err(dev_err)?
        .into_iter()
        .filter(|w| !w.is_minimized().unwrap_or(true))
        .filter_map(|w| {
            let id = w.id().ok()?;
            let title = w.title().ok().filter(|t| !t.is_empty())?;
            Some((w, id, title))
        })
        .collect())
}

/// The studio's picker chooses here: nothing for the system to remember.
pub(super) fn desktop_picks() -> bool {
    false
}

pub(super) fn list() -> Result<Vec<ScreenInfo>> {
    let mut out = Vec::new();
    for (i, m) in monitors()?.iter().enumerate() {
        let name = m
            .friendly_name()
            .or_else(|_| m.name())
            .unwrap_or_else(|_| format!("monitor {i}"));
        let (width, height) = (m.width().unwrap_or(0), m.height().unwrap_or(0));
        out.push(ScreenInfo {
            target: if i == 0 {
                ScreenTarget::Screen
            } else {
                ScreenTarget::Monitor(i as u32)
            },
            name,
            width,
            height,
        });
    }
    for (w, id, title) in windows()? {
        let name = match w.app_name() {
            Ok(app) if !app.is_empty() && !title.contains(&app) => format!("{title} ({app})"),
            _ => title,
        };
        out.push(ScreenInfo {
            target: ScreenTarget::WindowId(id),
            name,
            width: w.width().unwrap_or(0),
            height: w.height().unwrap_or(0),
        });
    }
    Ok(out)
}

/// What is shared, with its id to tell "gone" from "unreadable for now".
enum Shared {
    Monitor(Monitor, u32),
    Window(Window, u32),
}

pub(super) struct Capture {
    shared: Shared,
    describe: String,
}

// SAFETY: an HMONITOR is a process-wide handle any thread may use (xcap marks its HWND
// wrapper Send, not its HMONITOR one); the capture moves to its source thread once and is
// used there only. On macOS both are plain ids and already Send.
#[cfg(windows)]
unsafe impl Send for Capture {}

impl Capture {
    /// Opens at once: nothing here waits for the user, so there is nothing to cancel.
    pub(super) fn open(target: &ScreenTarget, _fps: u32, _: &OpenShare) -> Result<Capture> {
        let shared = match target {
            ScreenTarget::Screen | ScreenTarget::Monitor(_) => {
                let i = match target {
                    ScreenTarget::Monitor(i) => *i as usize,
                    _ => 0,
                };
                let mut all = monitors()?;
                let n = all.len();
                if i >= n {
                    return Err(MediaError::Device(format!(
                        "no monitor {i} (this computer has {n})"
                    )));
                }
                let m = all.swap_remove(i);
                let id = m.id().map_err(dev_err)?;
                Shared::Monitor(m, id)
            }
            ScreenTarget::Window(text) => {
                let Some((w, id, _)) = windows()?
                    .into_iter()
                    .find(|(_, _, t)| t.contains(text.as_str()))
                else {
                    return Err(MediaError::Device(format!(
                        "no window whose title contains {text:?}"
                    )));
                };
                Shared::Window(w, id)
            }
            // By id, minimised too: it shows once restored.
            ScreenTarget::WindowId(want) => {
                let found = Window::all()
                    .map_err(dev_err)?
                    .into_iter()
                    .find(|w| w.id().is_ok_and(|id| id == *want));
                let Some(w) = found else {
                    return Err(MediaError::Device(format!("no window {want:#x}")));
                };
                Shared::Window(w, *want)
            }
        };
        let (w, h) = match &shared {
            Shared::Monitor(m, _) => (m.width(), m.height()),
            Shared::Window(w, _) => (w.width(), w.height()),
        };
        let (w, h) = even_size(w.unwrap_or(0), h.unwrap_or(0));
        if w < 16 || h < 16 {
            return Err(MediaError::Device(format!(
                "{target} is {w}x{h}: too small to share"
            )));
        }
        tracing::debug!("{target}: {w}x{h}");
        Ok(Capture {
            shared,
            describe: target.to_string(),
        })
    }

    /// One frame; `None` while a window is minimised or cannot be read for a moment.
    pub(super) fn grab(&mut self, pts: MediaTime) -> Result<Option<VideoFrame>> {
        let (shot, what, ended) = match &self.shared {
            Shared::Monitor(m, _) => (m.capture_image(), "monitor", "disconnected"),
            Shared::Window(w, _) => {
                if w.is_minimized().unwrap_or(false) {
                    return Ok(None);
                }
                (w.capture_image(), "window", "closed")
            }
        };
        // A shot can be refused for a while (a window being redrawn; Windows' secure
        // desktop during a UAC prompt or the lock screen): the share waits. Gone from
        // the OS's list, it ends.
        let shot = match shot {
            Ok(img) => img,
            Err(e) if !self.shared.exists() => {
                tracing::debug!(error = %e, "shared {what} gone");
                return Err(MediaError::DeviceLost(format!(
                    "the shared {what} ({}) was {ended}",
                    self.describe
                )));
            }
            Err(e) => {
                tracing::debug!(error = %e, "shared {what} not readable");
                return Ok(None);
            }
        };
        // A window may be resized while shared: each frame takes its current size,
        // less an odd last row or column.
        let (w, h) = even_size(shot.width(), shot.height());
        if w < 16 || h < 16 {
            return Ok(None);
        }
        rgba_to_i420(shot.as_raw(), w, h, shot.width() * 4, pts).map(Some)
    }
}

impl Shared {
    /// Still in the OS's list of monitors or windows.
    fn exists(&self) -> bool {
        match *self {
            Shared::Monitor(_, id) => {
                Monitor::all().is_ok_and(|all| all.iter().any(|m| m.id().is_ok_and(|i| i == id)))
            }
            Shared::Window(_, id) => {
                Window::all().is_ok_and(|all| all.iter().any(|w| w.id().is_ok_and(|i| i == id)))
            }
        }
    }
}
