//! X11 capture through `x11rb` on one connection: a `GetImage` of the root window (whole
//! screen or one RandR monitor) or of one top-level window per frame, into memory shared
//! with the X server (MIT-SHM) where it allows, turned into I420 by `yuvutils`. Screenshot
//! crates such as `xcap` open several X connections per shot; at 15 fps that failed one
//! capture in four under Xvfb here.

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
        return Err(MediaError::Device(
            "screen share needs an X11 display (DISPLAY is not set)".into(),
        ));
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
