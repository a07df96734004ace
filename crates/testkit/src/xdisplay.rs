//! A headless X display (Xvfb) and a window on it that plays the moving test pattern: what
//! a screen-share test shares. The pattern's frame code survives capture, encoding and the
//! SFU, so a viewer can read which window frames arrived.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    AtomEnum, ConnectionExt as _, CreateGCAux, CreateWindowAux, EventMask, ImageFormat, PropMode,
    WindowClass,
};
use x11rb::wrapper::ConnectionExt as _;

use crate::process::tie_to_test;

/// An Xvfb server on a display number it picks itself. Dropping it stops the server.
pub struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    /// `screen` as Xvfb takes it, e.g. "1280x720x24".
    pub fn start(screen: &str) -> Result<Self> {
        Self::start_with(screen, &[])
    }

    /// A server without the MIT-SHM extension, like a remote display: capture falls back
    /// to plain `GetImage` there.
    pub fn start_without_shm(screen: &str) -> Result<Self> {
        Self::start_with(screen, &["-extension", "MIT-SHM"])
    }

    fn start_with(screen: &str, extra: &[&str]) -> Result<Self> {
        let mut cmd = Command::new("Xvfb");
        cmd.args([
            "-displayfd",
            "1",
            "-screen",
            "0",
            screen,
            "-nolisten",
            "tcp",
        ])
        // Without it Xvfb resets when its last client leaves, and a client that
        // connects in that moment fails.
        .arg("-noreset")
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
        tie_to_test(&mut cmd);
        let mut child = cmd.spawn().context("starting Xvfb (Debian package xvfb)")?;
        let out = child.stdout.take().context("Xvfb stdout")?;
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line)?;
        let n: u32 = match line.trim().parse() {
            Ok(n) => n,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("Xvfb did not say its display number (got {line:?})");
            }
        };
        Ok(Xvfb {
            child,
            display: format!(":{n}"),
        })
    }

    /// `:N`, for `DISPLAY`.
    pub fn display(&self) -> &str {
        &self.display
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A top-level window titled `title` showing the test pattern at `fps`, drawn by a thread
/// of its own. [`PatternWindow::close`] destroys it, as a user closing it would.
pub struct PatternWindow {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<()>>>,
    /// The window's X id.
    pub id: u32,
}

impl PatternWindow {
    /// Opens the window at the top left of `display` and starts drawing; returns once the
    /// first frame is on it.
    pub fn open(display: &str, title: &str, width: u32, height: u32, fps: u32) -> Result<Self> {
        Self::open_at(display, title, (0, 0), width, height, fps)
    }

    /// [`PatternWindow::open`] with the window's top left corner at `at` (x, y): beside
    /// another window rather than under it.
    pub fn open_at(
        display: &str,
        title: &str,
        at: (i16, i16),
        width: u32,
        height: u32,
        fps: u32,
    ) -> Result<Self> {
        let (conn, screen) = x11rb::connect(Some(display)).context("connecting to X")?;
        let root = conn.setup().roots[screen].clone();
        let id = conn.generate_id()?;
        conn.create_window(
            root.root_depth,
            id,
            root.root,
            at.0,
            at.1,
            width as u16,
            height as u16,
            0,
            WindowClass::INPUT_OUTPUT,
            root.root_visual,
            &CreateWindowAux::new()
                .background_pixel(root.black_pixel)
                .event_mask(EventMask::EXPOSURE),
        )?;
        conn.change_property8(
            PropMode::REPLACE,
            id,
            AtomEnum::WM_NAME,
            AtomEnum::STRING,
            title.as_bytes(),
        )?;
        let gc = conn.generate_id()?;
        conn.create_gc(gc, id, &CreateGCAux::new())?;
        conn.map_window(id)?;
        conn.sync()?;
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let t_stop = stop.clone();
        let depth = root.root_depth;
        let thread = std::thread::Builder::new()
            .name("pattern-window".into())
            .spawn(move || -> Result<()> {
                let period = Duration::from_micros(1_000_000 / u64::from(fps.max(1)));
                let start = Instant::now();
                let mut n = 0u32;
                // Rows per PutImage: well under the core protocol's 256 KiB request limit.
                let rows = (200_000 / (width as usize * 4)).max(1);
                while !t_stop.load(Ordering::Acquire) {
                    let pts =
                        streamit_media::MediaTime::from_micros(start.elapsed().as_micros() as u64);
                    let frame = streamit_media::pattern::generate_pattern(width, height, n, pts)?;
                    let mut bgrx = streamit_media::convert::i420_to_rgba(&frame)?;
                    for px in bgrx.chunks_exact_mut(4) {
                        px.swap(0, 2);
                    }
                    for (i, strip) in bgrx.chunks(rows * width as usize * 4).enumerate() {
                        let h = strip.len() / (width as usize * 4);
                        conn.put_image(
                            ImageFormat::Z_PIXMAP,
                            id,
                            gc,
                            width as u16,
                            h as u16,
                            0,
                            (i * rows) as i16,
                            0,
                            depth,
                            strip,
                        )?;
                    }
                    conn.sync()?;
                    if n == 0 {
                        let _ = ready_tx.send(());
                    }
                    n += 1;
                    let next = period * n;
                    if let Some(wait) = next.checked_sub(start.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
                conn.destroy_window(id)?;
                conn.sync()?;
                Ok(())
            })?;
        let mut window = PatternWindow {
            stop,
            thread: Some(thread),
            id,
        };
        if ready.recv_timeout(Duration::from_secs(10)).is_err() {
            let e = window.join().err();
            bail!("the pattern window drew nothing: {e:?}");
        }
        Ok(window)
    }

    /// Destroys the window (what the screen share then sees).
    pub fn close(mut self) -> Result<()> {
        self.join()
    }

    fn join(&mut self) -> Result<()> {
        self.stop.store(true, Ordering::Release);
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => bail!("the pattern window's thread panicked"),
            None => Ok(()),
        }
    }
}

impl Drop for PatternWindow {
    fn drop(&mut self) {
        let _ = self.join();
    }
}
