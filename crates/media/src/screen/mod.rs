//! Screen and window capture, for a screen-share track beside the camera.
//!
//! One module a system: [`x11`] (Linux/X11, `x11rb`), [`portal`] (Linux/Wayland, the desktop's
//! ScreenCast portal and PipeWire), `xcap.rs` (Windows and macOS). On Linux a session with
//! `WAYLAND_DISPLAY` set goes through the portal: X11 capture there would see only the
//! windows of X11 programs (Xwayland), and black elsewhere.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

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

/// Gives up, from another thread, on a share that is still opening. On Wayland the
/// opening waits on the desktop's dialog, which would otherwise stay on screen after the
/// creator moved on, and grant a share nobody uses; cancelled, the portal session closes
/// and the dialog with it. After the opening it does nothing.
#[derive(Debug, Clone, Default)]
pub struct CancelOpen(Arc<Cancelled>);

#[derive(Debug, Default)]
struct Cancelled {
    set: AtomicBool,
    event: event_listener::Event,
}

impl CancelOpen {
    pub fn cancel(&self) {
        self.0.set.store(true, Ordering::SeqCst);
        self.0.event.notify(usize::MAX);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.set.load(Ordering::SeqCst)
    }

    /// Resolves once [`CancelOpen::cancel`] has been called.
    #[cfg(target_os = "linux")]
    async fn cancelled(&self) {
        while !self.is_cancelled() {
            let listener = self.0.event.listen();
            // A cancel between the check and the listen has notified before we listened.
            if self.is_cancelled() {
                return;
            }
            listener.await;
        }
    }
}

/// Where the desktop's consent to a share is kept for the next one. A Wayland desktop
/// answers a share with a restore token: handed back with the next share, the same monitor
/// or window is shared again without its dialog (until the creator revokes it in the
/// desktop's settings). The token grants a view of the screen, so the app keeps it where
/// it keeps secrets, the OS keyring. Nothing is stored on X11, Windows or macOS, where the
/// studio's own picker chooses.
pub trait GrantStore: Send + Sync + fmt::Debug {
    /// The token kept from the last share, if any.
    fn load(&self) -> Option<String>;
    /// Keeps `token` for the next share; `None` forgets the last one.
    fn save(&self, token: Option<&str>);
}

/// A [`GrantStore`] for as long as the process runs.
#[derive(Debug, Default)]
pub struct MemoryGrants(Mutex<Option<String>>);

impl GrantStore for MemoryGrants {
    fn load(&self) -> Option<String> {
        self.0.lock().ok()?.clone()
    }

    fn save(&self, token: Option<&str>) {
        if let Ok(mut t) = self.0.lock() {
            *t = token.map(str::to_owned);
        }
    }
}

/// What opening a share needs besides what to share.
#[derive(Debug, Clone, Default)]
pub struct OpenShare {
    /// Gives up on the opening (the desktop's dialog).
    pub cancel: CancelOpen,
    /// Where the desktop's consent is kept; without one the desktop asks every time.
    pub grants: Option<Arc<dyn GrantStore>>,
}

/// Whether [`ScreenTarget::Screen`] is chosen in the desktop's own dialog (Wayland), which
/// can remember the choice ([`GrantStore`]), rather than in the studio's picker.
pub fn desktop_picks() -> bool {
    platform::desktop_picks()
}

/// A screen or window captured at `fps` frames a second.
#[derive(Debug, Clone)]
pub struct ScreenSource {
    /// what to capture
    pub target: ScreenTarget,
    /// frames a second (screen content wants few: 5–15)
    pub fps: u32,
    pub open: OpenShare,
}

impl VideoSource for ScreenSource {
    fn name(&self) -> String {
        format!("screen share ({})", self.target)
    }

    fn start(self: Box<Self>, clock: MediaClock) -> Result<SourceHandle<VideoFrame>> {
        let mut capture = platform::Capture::open(&self.target, self.fps, &self.open)?;
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
mod portal;
#[cfg(target_os = "linux")]
mod x11;

/// Linux: the desktop's portal on Wayland, X11 otherwise.
#[cfg(target_os = "linux")]
mod platform {
    use super::{OpenShare, ScreenInfo, ScreenTarget, portal, x11};
    use crate::clock::MediaTime;
    use crate::error::Result;
    use crate::frame::VideoFrame;

    fn wayland() -> bool {
        std::env::var_os("WAYLAND_DISPLAY").is_some_and(|d| !d.is_empty())
    }

    pub(super) fn desktop_picks() -> bool {
        wayland()
    }

    pub(super) fn list() -> Result<Vec<ScreenInfo>> {
        if wayland() {
            portal::list()
        } else {
            x11::list()
        }
    }

    pub(super) enum Capture {
        X11(Box<x11::Capture>),
        Portal(portal::Capture),
    }

    impl Capture {
        pub(super) fn open(target: &ScreenTarget, fps: u32, open: &OpenShare) -> Result<Capture> {
            if wayland() {
                portal::Capture::open(target, fps, open).map(Capture::Portal)
            } else {
                x11::Capture::open(target).map(|c| Capture::X11(Box::new(c)))
            }
        }

        pub(super) fn grab(&mut self, pts: MediaTime) -> Result<Option<VideoFrame>> {
            match self {
                Capture::X11(c) => c.grab(pts),
                Capture::Portal(c) => c.grab(pts),
            }
        }
    }
}

/// Windows and macOS (named for the crate it goes through).
#[cfg(any(windows, target_os = "macos"))]
#[path = "xcap.rs"]
mod platform;

/// Other systems (the BSDs): no capture.
#[cfg(not(any(target_os = "linux", windows, target_os = "macos")))]
mod platform {
    use super::{OpenShare, ScreenInfo, ScreenTarget};
    use crate::clock::MediaTime;
    use crate::error::{MediaError, Result};
    use crate::frame::VideoFrame;

    pub(super) fn desktop_picks() -> bool {
        false
    }

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
        pub(super) fn open(_: &ScreenTarget, _fps: u32, _: &OpenShare) -> Result<Capture> {
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
