//! Screen and window capture, for a screen-share track beside the camera.
//!
//! Linux/X11 through `x11rb` on one connection: a `GetImage` of the root window (whole
//! screen or one RandR monitor) or of one top-level window per frame, into memory shared
//! with the X server (MIT-SHM) where it allows, turned into I420 by `yuvutils`. Screenshot
//! crates such as `xcap` open several X connections per shot; at 15 fps that failed one
//! capture in four under Xvfb here.
//!
//! Windows and macOS through `xcap` (see `platform` there for the API and permission each
//! needs). Not here yet, and reported as such ([`MediaError::Device`](crate::MediaError::Device)):
//! Wayland, which needs the `org.freedesktop.portal.ScreenCast` portal and a PipeWire
//! stream, with the user's consent each session.

use std::fmt;
use std::str::FromStr;

use crate::error::Result;
use crate::source::{SourceHandle, VIDEO_SOURCE_QUEUE, VideoSource, spawn_source};
use crate::{MediaClock, VideoFrame};

/// What to share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScreenTarget {
    /// The whole X screen (every monitor).
    Screen,
    /// One monitor, by its index in [`list_screen_sources`].
    Monitor(u32),
    /// The first top-level window whose title contains this text.
    Window(String),
    /// One window by its X id.
    WindowId(u32),
}

impl fmt::Display for ScreenTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScreenTarget::Screen => write!(f, "screen"),
            ScreenTarget::Monitor(i) => write!(f, "monitor:{i}"),
            ScreenTarget::Window(t) => write!(f, "window:{t}"),
            ScreenTarget::WindowId(id) => write!(f, "window-id:{id:#x}"),
        }
    }
}

/// `screen`, `monitor:N`, `window:TITLE` or `window-id:0x1a00003`.
impl FromStr for ScreenTarget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("{s:?}: expected `screen`, `monitor:N`, `window:TITLE` or `window-id:ID`");
        match s.split_once(':') {
            None if s == "screen" => Ok(ScreenTarget::Screen),
            Some(("monitor", n)) => n.parse().map(ScreenTarget::Monitor).map_err(|_| bad()),
            Some(("window", t)) if !t.is_empty() => Ok(ScreenTarget::Window(t.to_string())),
            Some(("window-id", id)) => {
                let id = id.trim();
                match id.strip_prefix("0x") {
                    Some(hex) => u32::from_str_radix(hex, 16),
                    None => id.parse(),
                }
                .map(ScreenTarget::WindowId)
                .map_err(|_| bad())
            }
            _ => Err(bad()),
        }
    }
}

/// One shareable source, as offered to the creator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScreenInfo {
    /// how to ask for it again
    pub target: ScreenTarget,
    /// what to show in a picker
    pub name: String,
    /// its size now, in pixels
    pub width: u32,
    /// its size now, in pixels
    pub height: u32,
}

/// Monitors (the whole screen first) and top-level windows with a title.
pub fn list_screen_sources() -> Result<Vec<ScreenInfo>> {
    platform::list()
}

/// A screen or window captured at `fps` frames a second.
#[derive(Debug, Clone)]
pub struct ScreenSource {
    /// what to capture
    pub target: ScreenTarget,
    /// frames a second (screen content wants few: 5–15)
    pub fps: u32,
}

impl VideoSource for ScreenSource {
    fn name(&self) -> String {
        format!("screen share ({})", self.target)
    }

    fn start(self: Box<Self>, clock: MediaClock) -> Result<SourceHandle<VideoFrame>> {
        let mut capture = platform::Capture::open(&self.target)?;
        let period_us = 1_000_000 / u64::from(self.fps.clamp(1, 60));
        spawn_source(&self.name(), clock, VIDEO_SOURCE_QUEUE, move |ctx| {
            let mut next = ctx.clock.now();
            loop {
                if !ctx.wait_until(next) {
                    return;
                }
                let now = ctx.clock.now();
                next = next.plus(std::time::Duration::from_micros(period_us));
                if now.as_micros() > next.as_micros() + 5 * period_us {
                    next = now.plus(std::time::Duration::from_micros(period_us));
                }
                match capture.grab(now) {
                    Ok(Some(frame)) => ctx.emit(frame),
                    // Unmapped or minimised: nothing to show until it comes back.
                    Ok(None) => {}
                    Err(e) => {
                        ctx.error(e);
                        return;
                    }
                }
            }
        })
    }
}

/// The size a capture of `width × height` is encoded at: even, as the encoders need.
pub fn even_size(width: u32, height: u32) -> (u32, u32) {
    (width & !1, height & !1)
}

#[cfg(target_os = "linux")]
mod platform {
    use x11rb::connection::{Connection, RequestConnection as _};
    use x11rb::errors::ReplyError;
    use x11rb::protocol::randr::ConnectionExt as _;
    use x11rb::protocol::shm::{self, ConnectionExt as _};
    use x11rb::protocol::xproto::{
        AtomEnum, ConnectionExt as _, ImageFormat, MapState, Window as XWindow,
    };
    use x11rb::rust_connection::RustConnection;

    use super::{ScreenInfo, ScreenTarget, even_size};
    use crate::clock::MediaTime;
    use crate::convert::bgrx_to_i420;
    use crate::error::{MediaError, Result};
    use crate::frame::VideoFrame;

    fn connect() -> Result<(RustConnection, usize)> {
        if std::env::var_os("DISPLAY").is_none() {
            let wayland = std::env::var_os("WAYLAND_DISPLAY").is_some();
            return Err(MediaError::Device(if wayland {
                "screen share needs X11; Wayland's ScreenCast portal is not supported yet".into()
            } else {
                "screen share needs an X11 display (DISPLAY is not set)".into()
            }));
        }
        x11rb::connect(None).map_err(|e| MediaError::Device(format!("X11: {e}")))
    }

    fn x_err(e: impl std::fmt::Display) -> MediaError {
        MediaError::Device(format!("X11: {e}"))
    }

    /// The window's title: EWMH's UTF-8 `_NET_WM_NAME`, else ICCCM's `WM_NAME`.
    fn title(conn: &RustConnection, w: XWindow) -> Option<String> {
        let utf8 = conn
            .intern_atom(false, b"UTF8_STRING")
            .ok()?
            .reply()
            .ok()?
            .atom;
        let net = conn
            .intern_atom(false, b"_NET_WM_NAME")
            .ok()?
            .reply()
            .ok()?
            .atom;
        for (prop, ty) in [
            (net, utf8),
            (AtomEnum::WM_NAME.into(), AtomEnum::ANY.into()),
        ] {
            let reply = conn
                .get_property(false, w, prop, ty, 0, 1024)
                .ok()?
                .reply()
                .ok()?;
            if !reply.value.is_empty() {
                return Some(String::from_utf8_lossy(&reply.value).into_owned());
            }
        }
        None
    }

    /// Viewable top-level windows with a title: the root's children, and their children
    /// (a window manager reparents clients into frames).
    fn windows(conn: &RustConnection, root: XWindow) -> Result<Vec<(XWindow, String)>> {
        let mut out = Vec::new();
        let top = conn
            .query_tree(root)
            .map_err(x_err)?
            .reply()
            .map_err(x_err)?;
        for w in top.children {
            let Ok(attrs) = conn.get_window_attributes(w).map_err(x_err)?.reply() else {
                continue; // gone meanwhile
            };
            if attrs.map_state != MapState::VIEWABLE {
                continue;
            }
            if let Some(t) = title(conn, w) {
                out.push((w, t));
                continue;
            }
            if let Ok(tree) = conn.query_tree(w).map_err(x_err)?.reply() {
                for c in tree.children {
                    if let Some(t) = title(conn, c) {
                        out.push((c, t));
                    }
                }
            }
        }
        Ok(out)
    }

    fn monitors(conn: &RustConnection, root: XWindow) -> Vec<(String, i16, i16, u16, u16)> {
        let Ok(Ok(reply)) = conn.randr_get_monitors(root, true).map(|c| c.reply()) else {
            return Vec::new();
        };
        reply
            .monitors
            .iter()
            .map(|m| {
                let name = conn
                    .get_atom_name(m.name)
                    .ok()
                    .and_then(|c| c.reply().ok())
                    .map(|r| String::from_utf8_lossy(&r.name).into_owned())
                    .unwrap_or_else(|| "monitor".into());
                (name, m.x, m.y, m.width, m.height)
            })
            .collect()
    }

    pub(super) fn list() -> Result<Vec<ScreenInfo>> {
        let (conn, screen) = connect()?;
        let s = &conn.setup().roots[screen];
        let mut out = vec![ScreenInfo {
            target: ScreenTarget::Screen,
            name: "Entire screen".into(),
            width: u32::from(s.width_in_pixels),
            height: u32::from(s.height_in_pixels),
        }];
        for (i, (name, _, _, w, h)) in monitors(&conn, s.root).into_iter().enumerate() {
            out.push(ScreenInfo {
                target: ScreenTarget::Monitor(i as u32),
                name: format!("Monitor {name}"),
                width: u32::from(w),
                height: u32::from(h),
            });
        }
        for (w, t) in windows(&conn, s.root)? {
            let Ok(g) = conn.get_geometry(w).map_err(x_err)?.reply() else {
                continue;
            };
            out.push(ScreenInfo {
                target: ScreenTarget::WindowId(w),
                name: t,
                width: u32::from(g.width),
                height: u32::from(g.height),
            });
        }
        Ok(out)
    }

    /// One open capture: the drawable and the rectangle in it, fixed at open.
    pub(super) struct Capture {
        conn: RustConnection,
        drawable: XWindow,
        window: bool,
        x: i16,
        y: i16,
        width: u16,
        height: u16,
        describe: String,
        shm: Option<Shm>,
    }

    /// MIT-SHM: the X server writes each frame into memory it shares with us, instead of
    /// sending it over the socket (8 MB a 1080p frame; that copy took most of the capture
    /// thread's time, in the kernel). Absent where the server has no MIT-SHM 1.2, such as
    /// a remote display: plain `GetImage` then.
    struct Shm {
        seg: shm::Seg,
        map: memmap2::Mmap,
    }

    impl Shm {
        fn open(conn: &RustConnection, size: u32) -> Option<Shm> {
            conn.extension_information(shm::X11_EXTENSION_NAME).ok()??;
            let v = conn.shm_query_version().ok()?.reply().ok()?;
            if (v.major_version, v.minor_version) < (1, 2) {
                return None;
            }
            let seg = conn.generate_id().ok()?;
            let reply = conn
                .shm_create_segment(seg, size, false)
                .ok()?
                .reply()
                .ok()?;
            // SAFETY: the segment was made for this capture alone; the server writes it
            // only while answering our `shm_get_image`, and `grab` reads it after the
            // reply, so nothing changes it while a slice of it is alive.
            let map = unsafe {
                memmap2::MmapOptions::new()
                    .len(size as usize)
                    .map(&reply.shm_fd)
            };
            match map {
                Ok(map) => Some(Shm { seg, map }),
                Err(e) => {
                    tracing::debug!(error = %e, "MIT-SHM segment not mapped; using GetImage");
                    let _ = conn.shm_detach(seg);
                    None
                }
            }
        }
    }

    impl Drop for Capture {
        fn drop(&mut self) {
            if let Some(shm) = &self.shm {
                let _ = self.conn.shm_detach(shm.seg);
                let _ = self.conn.flush();
            }
        }
    }

    impl Capture {
        pub(super) fn open(target: &ScreenTarget) -> Result<Capture> {
            let (conn, screen) = connect()?;
            let s = &conn.setup().roots[screen];
            let root = s.root;
            let whole = (0, 0, s.width_in_pixels, s.height_in_pixels);
            let (drawable, window, (x, y, w, h)) = match target {
                ScreenTarget::Screen => (root, false, whole),
                ScreenTarget::Monitor(i) => {
                    let m = monitors(&conn, root);
                    let Some((_, x, y, w, h)) = m.get(*i as usize).cloned() else {
                        return Err(MediaError::Device(format!(
                            "no monitor {i} (this display has {})",
                            m.len()
                        )));
                    };
                    (root, false, (x, y, w, h))
                }
                ScreenTarget::Window(text) => {
                    let found = windows(&conn, root)?
                        .into_iter()
                        .find(|(_, t)| t.contains(text));
                    let Some((w, _)) = found else {
                        return Err(MediaError::Device(format!(
                            "no window whose title contains {text:?}"
                        )));
                    };
                    (w, true, geometry(&conn, w)?)
                }
                ScreenTarget::WindowId(w) => (*w, true, geometry(&conn, *w)?),
            };
            let (w, h) = even_size(u32::from(w), u32::from(h));
            if w < 16 || h < 16 {
                return Err(MediaError::Device(format!(
                    "{target} is {w}x{h}: too small to share"
                )));
            }
            let shm = Shm::open(&conn, w * h * 4);
            tracing::debug!(shm = shm.is_some(), "{target}: {w}x{h}");
            Ok(Capture {
                conn,
                drawable,
                window,
                x,
                y,
                width: w as u16,
                height: h as u16,
                describe: target.to_string(),
                shm,
            })
        }

        /// One frame; `None` while a window cannot be read (unmapped, minimised).
        pub(super) fn grab(&mut self, pts: MediaTime) -> Result<Option<VideoFrame>> {
            let (x, y, w, h) = (self.x, self.y, self.width, self.height);
            let lost = |e| MediaError::DeviceLost(format!("X11 connection: {e}"));
            let plain;
            let (depth, data): (u8, &[u8]) = if let Some(shm) = &self.shm {
                let format = ImageFormat::Z_PIXMAP.into();
                let reply = self
                    .conn
                    .shm_get_image(self.drawable, x, y, w, h, !0, format, shm.seg, 0)
                    .map_err(lost)?
                    .reply();
                let Some(reply) = self.readable(reply)? else {
                    return Ok(None);
                };
                let len = (reply.size as usize).min(shm.map.len());
                (reply.depth, &shm.map[..len])
            } else {
                let reply = self
                    .conn
                    .get_image(ImageFormat::Z_PIXMAP, self.drawable, x, y, w, h, !0)
                    .map_err(lost)?
                    .reply();
                let Some(reply) = self.readable(reply)? else {
                    return Ok(None);
                };
                plain = reply;
                (plain.depth, &plain.data[..])
            };
            let (w, h) = (u32::from(w), u32::from(h));
            let bpp = self
                .conn
                .setup()
                .pixmap_formats
                .iter()
                .find(|f| f.depth == depth)
                .map(|f| f.bits_per_pixel)
                .unwrap_or(0);
            if bpp != 32 || depth < 24 {
                return Err(MediaError::Device(format!(
                    "X11 depth {depth} at {bpp} bits a pixel: only 24/32-bit true colour is supported"
                )));
            }
            bgrx_to_i420(data, w, h, w * 4, pts).map(Some)
        }

        /// A reply, or `None` while a shared window cannot be read; a closed window and a
        /// broken connection are errors.
        fn readable<R>(&self, reply: std::result::Result<R, ReplyError>) -> Result<Option<R>> {
            match reply {
                Ok(r) => Ok(Some(r)),
                Err(ReplyError::X11Error(e)) if self.window => {
                    // BadMatch while unmapped or partly off screen; BadWindow/BadDrawable
                    // once it is destroyed.
                    let alive = (self.conn.get_window_attributes(self.drawable).ok())
                        .and_then(|c| c.reply().ok())
                        .is_some();
                    if alive {
                        tracing::debug!(error = ?e.error_kind, "shared window not readable");
                        return Ok(None);
                    }
                    Err(MediaError::DeviceLost(format!(
                        "the shared window ({}) was closed",
                        self.describe
                    )))
                }
                Err(e) => Err(MediaError::DeviceLost(format!("X11: {e}"))),
            }
        }
    }

    fn geometry(conn: &RustConnection, w: XWindow) -> Result<(i16, i16, u16, u16)> {
        let g = conn
            .get_geometry(w)
            .map_err(x_err)?
            .reply()
            .map_err(|_| MediaError::Device(format!("no window {w:#x}")))?;
        Ok((0, 0, g.width, g.height))
    }
}

/// Windows and macOS through `xcap`: one `capture_image` per frame. On Windows that is GDI:
/// `BitBlt` of a monitor, `PrintWindow` with full-content rendering of a window (so windows
/// drawn by the GPU are captured too); no permission prompt. xcap's Windows.Graphics.Capture
/// path (its `wgc` feature) sets up a capture session for every shot, too heavy at 15 fps.
/// On macOS it is Core Graphics' window-list capture, which needs the Screen Recording
/// permission (System Settings → Privacy & Security; macOS asks at the first capture, and
/// without it the picture holds only the wallpaper and our own windows). Neither runs on this
/// project's Linux CI: the Windows path is compiled by `cargo check --target
/// x86_64-pc-windows-gnu`, the macOS one by nothing here (it needs the macOS SDK).
#[cfg(any(windows, target_os = "macos"))]
mod platform {
    use xcap::{Monitor, Window, XCapError};

    use super::{ScreenInfo, ScreenTarget, even_size};
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
        pub(super) fn open(target: &ScreenTarget) -> Result<Capture> {
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
                Shared::Monitor(_, id) => Monitor::all()
                    .is_ok_and(|all| all.iter().any(|m| m.id().is_ok_and(|i| i == id))),
                Shared::Window(_, id) => {
                    Window::all().is_ok_and(|all| all.iter().any(|w| w.id().is_ok_and(|i| i == id)))
                }
            }
        }
    }
}

/// Other systems (the BSDs): no capture.
#[cfg(not(any(target_os = "linux", windows, target_os = "macos")))]
mod platform {
    use super::{ScreenInfo, ScreenTarget};
    use crate::clock::MediaTime;
    use crate::error::{MediaError, Result};
    use crate::frame::VideoFrame;

    fn unsupported() -> MediaError {
        MediaError::Device(
            "screen share is implemented for Linux/X11, Windows and macOS only".into(),
        )
    }

    pub(super) fn list() -> Result<Vec<ScreenInfo>> {
        Err(unsupported())
    }

    pub(super) struct Capture;

    impl Capture {
        pub(super) fn open(_: &ScreenTarget) -> Result<Capture> {
            Err(unsupported())
        }
        pub(super) fn grab(&mut self, _: MediaTime) -> Result<Option<VideoFrame>> {
            Err(unsupported())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_print_back() {
        for s in [
            "screen",
            "monitor:1",
            "window:Pattern window",
            "window-id:0x1a00003",
        ] {
            let t: ScreenTarget = s.parse().unwrap();
            assert_eq!(t.to_string(), s);
        }
        assert_eq!(
            "window-id:42".parse::<ScreenTarget>(),
            Ok(ScreenTarget::WindowId(42))
        );
        for bad in ["", "monitor:x", "window:", "tab:1", "window-id:zz"] {
            assert!(bad.parse::<ScreenTarget>().is_err(), "{bad}");
        }
    }
}
