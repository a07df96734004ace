//! Wayland: the desktop's `org.freedesktop.portal.ScreenCast` portal, then PipeWire.
//!
//! A Wayland client cannot read the screen; the compositor shares it on request. The portal
//! (D-Bus, through `ashpd`) asks the user in the desktop's own dialog which monitor or
//! window to share, and answers with a PipeWire node; a PipeWire stream (`pipewire`) then
//! receives the compositor's frames as packed 32-bit pixels in shared memory. GNOME, KDE
//! and wlroots desktops (sway, Hyprland) each ship a backend: `xdg-desktop-portal-gnome`,
//! `-kde`, `-wlr`. With a [`GrantStore`](super::GrantStore) the consent outlasts the
//! share (`persist_mode` 2, until revoked): the portal answers with a restore token, and
//! the next share that hands it back gets the same monitor or window without the dialog.
//! A token the desktop no longer honours is ignored by it, and the dialog asks again.
//!
//! One thread per share runs the handshake (zbus's own executor thread then keeps the D-Bus
//! connection, and with it the portal session, alive) and PipeWire's loop, which keeps the
//! latest frame. [`Capture::grab`] converts the latest frame at the
//! share's own rate, so a still screen, which the compositor sends no frames for, keeps
//! being sent.

use std::os::fd::OwnedFd;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use ashpd::desktop::PersistMode;
use ashpd::desktop::screencast::{
    CursorMode, Screencast, SelectSourcesOptions, SourceType, StartCastOptions,
};
use futures_lite::future::or;
use pipewire as pw;
use pw::spa;
use spa::param::video::{VideoFormat, VideoInfoRaw};

use super::{CancelOpen, OpenShare, ScreenInfo, ScreenTarget, even_size};
use crate::clock::MediaTime;
use crate::convert::{bgrx_to_i420, rgba_to_i420};
use crate::error::{MediaError, Result};
use crate::frame::VideoFrame;

/// How long the desktop's dialog may wait for the user before the share gives up.
const DIALOG_LIMIT: Duration = Duration::from_secs(120);

/// Nothing can be listed on Wayland: the desktop's dialog offers the monitors and windows
/// (or shares again, without asking, what it remembered).
pub(super) fn list() -> Result<Vec<ScreenInfo>> {
    Ok(vec![ScreenInfo {
        target: ScreenTarget::Screen,
        name: "Screen or window (your desktop's choice)".into(),
        width: 0,
        height: 0,
    }])
}

/// The latest frame, as PipeWire delivered it.
#[derive(Default)]
struct Latest {
    width: u32,
    height: u32,
    stride: u32,
    /// RGBx/RGBA byte order, else BGRx/BGRA.
    rgb: bool,
    data: Vec<u8>,
}

#[derive(Default)]
struct State {
    latest: Option<Latest>,
    /// Why the share ended, once it has (the desktop stopped it, PipeWire went away).
    ended: Option<String>,
}

#[derive(Default)]
struct Shared(Mutex<State>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding it leaves only a frame half copied.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn end(&self, why: String) {
        let mut s = self.lock();
        if s.ended.is_none() {
            tracing::info!("screen share ended: {why}");
            s.ended = Some(why);
        }
    }
}

/// An open share: the portal session and PipeWire stream live on `thread`.
pub(super) struct Capture {
    shared: Arc<Shared>,
    quit: pw::channel::Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl Capture {
    /// Asks the desktop (its dialog may wait for the user, until cancelled; a remembered
    /// grant skips it) and connects to the stream.
    pub(super) fn open(target: &ScreenTarget, fps: u32, open: &OpenShare) -> Result<Capture> {
        if *target != ScreenTarget::Screen {
            return Err(MediaError::Device(format!(
                "{target}: on Wayland the desktop's own dialog picks the monitor or window \
                 to share; ask for `screen`"
            )));
        }
        let shared = Arc::new(Shared::default());
        let (quit, quit_rx) = pw::channel::channel();
        let (ready_tx, ready) = mpsc::channel();
        let (t_shared, open) = (shared.clone(), open.clone());
        let thread = std::thread::Builder::new()
            .name("screen-portal".into())
            .spawn(move || run(fps, t_shared, ready_tx, quit_rx, &open))
            .map_err(|e| MediaError::Device(format!("screen share thread: {e}")))?;
        let capture = Capture {
            shared,
            quit,
            thread: Some(thread),
        };
        match ready.recv() {
            Ok(Ok(())) => Ok(capture),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(MediaError::Device(
                "the screen share's thread ended before it started".into(),
            )),
        }
    }

    /// The latest frame again at the share's rate; an error once the share has ended.
    pub(super) fn grab(&mut self, pts: MediaTime) -> Result<Option<VideoFrame>> {
        let state = self.shared.lock();
        if let Some(why) = &state.ended {
            return Err(MediaError::DeviceLost(why.clone()));
        }
        let Some(f) = &state.latest else {
            return Ok(None);
        };
        let (w, h) = even_size(f.width, f.height);
        if w < 16 || h < 16 {
            return Ok(None);
        }
        if f.rgb {
            rgba_to_i420(&f.data, w, h, f.stride, pts).map(Some)
        } else {
            bgrx_to_i420(&f.data, w, h, f.stride, pts).map(Some)
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.quit.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The share's thread: the portal's handshake, then PipeWire's loop until told to quit or
/// the stream ends; then the portal session is closed. D-Bus runs on zbus's own executor
/// thread meanwhile (async-io; no tokio here, so zbus's blocking API, which the OS keyring
/// uses, keeps working inside the session's runtime).
fn run(
    fps: u32,
    shared: Arc<Shared>,
    ready: mpsc::Sender<Result<()>>,
    quit: pw::channel::Receiver<()>,
    open: &OpenShare,
) {
    // The store is read and written outside the portal's future: the OS keyring's own
    // D-Bus calls block.
    let remembered = open.grants.as_ref().and_then(|g| g.load());
    let persist = open.grants.is_some();
    let asked = ask_portal(&open.cancel, persist, remembered.as_deref());
    let ((proxy, session, node, fd), token) = match async_io::block_on(asked) {
        Ok(p) => p,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    if let Some(grants) = &open.grants
        && token != remembered
    {
        tracing::debug!(
            kept = token.is_some(),
            "the desktop's grant for the next share"
        );
        grants.save(token.as_deref());
    }
    // The desktop (a "Stop sharing" button, a lock screen) may close the session.
    let session = Arc::new(session);
    let (closed_tx, closed_rx) = pw::channel::channel();
    let watch = {
        let session = session.clone();
        proxy.connection().executor().spawn(
            async move {
                use futures_util::StreamExt as _;
                if let Ok(mut closed) = session.receive_closed().await
                    && closed.next().await.is_some()
                {
                    let _ = closed_tx.send(());
                }
            },
            "screen-share-closed",
        )
    };
    if let Err(e) = stream(fd, node, fps, &shared, &ready, quit, closed_rx) {
        let _ = ready.send(Err(e));
    }
    drop(watch);
    async_io::block_on(close(&session));
}

/// Closes the portal session (and any dialog of it still open), waiting 2 s at most.
async fn close(session: &ashpd::desktop::Session<Screencast>) {
    or(
        async {
            let _ = session.close().await;
        },
        async {
            async_io::Timer::after(Duration::from_secs(2)).await;
        },
    )
    .await
}

type Portal = (
    Screencast,
    ashpd::desktop::Session<Screencast>,
    u32,
    OwnedFd,
);

/// CreateSession, SelectSources, Start (the dialog, unless `restore` is a grant the desktop
/// honours), OpenPipeWireRemote; with the restore token for the next share when `persist`
/// and the desktop gave one. Giving up on the dialog (`cancel`, or no answer in
/// [`DIALOG_LIMIT`]) closes the session, and with it the dialog.
async fn ask_portal(
    cancel: &CancelOpen,
    persist: bool,
    restore: Option<&str>,
) -> Result<(Portal, Option<String>)> {
    let no_portal = |e: ashpd::Error| {
        MediaError::Device(format!(
            "screen share on Wayland needs the desktop's ScreenCast portal \
             (xdg-desktop-portal with the desktop's backend: -gnome, -kde or -wlr): {e}"
        ))
    };
    let failed = |e: ashpd::Error| MediaError::Device(format!("screen share portal: {e}"));
    let proxy = Screencast::new().await.map_err(no_portal)?;
    let kinds = proxy.available_source_types().await.map_err(no_portal)?;
    let kinds = kinds & (SourceType::Monitor | SourceType::Window);
    if kinds.is_empty() {
        return Err(MediaError::Device(
            "the desktop's ScreenCast portal offers neither monitors nor windows".into(),
        ));
    }
    // Embedded in the picture, as on the other systems; else none (never as metadata,
    // which we would have to draw ourselves).
    let cursor = match proxy.available_cursor_modes().await {
        Ok(modes) if modes.contains(CursorMode::Embedded) => CursorMode::Embedded,
        _ => CursorMode::Hidden,
    };
    let session = (proxy.create_session(Default::default()).await).map_err(failed)?;
    let dialog = async {
        proxy
            .select_sources(
                &session,
                SelectSourcesOptions::default()
                    .set_cursor_mode(cursor)
                    .set_sources(kinds)
                    .set_multiple(false)
                    .set_persist_mode(if persist {
                        PersistMode::ExplicitlyRevoked
                    } else {
                        PersistMode::DoNot
                    })
                    .set_restore_token(restore),
            )
            .await
            .map_err(failed)?;
        proxy
            .start(&session, None, StartCastOptions::default())
            .await
            .map_err(failed)?
            .response()
            .map_err(|e| match e {
                ashpd::Error::Response(ashpd::desktop::ResponseError::Cancelled) => {
                    MediaError::Device("screen share was cancelled in the desktop's dialog".into())
                }
                e => failed(e),
            })
    };
    let given_up = async {
        or(
            async {
                cancel.cancelled().await;
                Err(MediaError::Device("the screen share was cancelled".into()))
            },
            async {
                async_io::Timer::after(DIALOG_LIMIT).await;
                Err(MediaError::Device(format!(
                    "the desktop's screen share dialog got no answer in {} s",
                    DIALOG_LIMIT.as_secs()
                )))
            },
        )
        .await
    };
    // Whatever fails once the session exists closes it.
    let granted = async {
        let streams = or(dialog, given_up).await?;
        let Some(first) = streams.streams().first() else {
            return Err(MediaError::Device(
                "the desktop's dialog chose nothing to share".into(),
            ));
        };
        let node = first.pipe_wire_node_id();
        tracing::info!(node, size = ?first.size(), kind = ?first.source_type(), "screen share granted");
        let token = streams.restore_token().map(str::to_owned);
        let fd = (proxy
            .open_pipe_wire_remote(&session, Default::default())
            .await)
            .map_err(failed)?;
        Ok((node, fd, token))
    };
    match granted.await {
        Ok((node, fd, token)) => Ok(((proxy, session, node, fd), token)),
        Err(e) => {
            close(&session).await;
            Err(e)
        }
    }
}

/// What the stream's callbacks keep between calls.
struct Format {
    info: VideoInfoRaw,
    streamed: bool,
}

/// PipeWire: connects to `node` through the portal's `fd` and keeps its latest frame in
/// `shared`; returns when told to quit, or the stream ends.
fn stream(
    fd: OwnedFd,
    node: u32,
    fps: u32,
    shared: &Arc<Shared>,
    ready: &mpsc::Sender<Result<()>>,
    quit: pw::channel::Receiver<()>,
    closed: pw::channel::Receiver<()>,
) -> Result<()> {
    let pw_err = |e: pw::Error| MediaError::Device(format!("PipeWire: {e}"));
    pw::init();
    let mainloop = pw::main_loop::MainLoopRc::new(None).map_err(pw_err)?;
    let context = pw::context::ContextRc::new(&mainloop, None).map_err(pw_err)?;
    let core = context.connect_fd_rc(fd, None).map_err(pw_err)?;
    let ml = mainloop.clone();
    let _quit = quit.attach(mainloop.loop_(), move |()| ml.quit());
    let (ml, s) = (mainloop.clone(), shared.clone());
    let _closed = closed.attach(mainloop.loop_(), move |()| {
        s.end("the desktop stopped the screen share".into());
        ml.quit();
    });
    let (ml, s) = (mainloop.clone(), shared.clone());
    let _core = core
        .add_listener_local()
        .error(move |id, _seq, res, message| {
            if id == pw::core::PW_ID_CORE {
                s.end(format!("PipeWire went away ({res}: {message})"));
                ml.quit();
            }
        })
        .register();

    let stream = pw::stream::StreamBox::new(
        &core,
        "streamit-screen-share",
        pw::properties::properties! {
            *pw::keys::MEDIA_TYPE => "Video",
            *pw::keys::MEDIA_CATEGORY => "Capture",
            *pw::keys::MEDIA_ROLE => "Screen",
        },
    )
    .map_err(pw_err)?;
    let (ml, s1, s2) = (mainloop.clone(), shared.clone(), shared.clone());
    let _listener = stream
        .add_local_listener_with_user_data(Format {
            info: VideoInfoRaw::default(),
            streamed: false,
        })
        .state_changed(move |_, f, old, new| {
            tracing::debug!("screen share stream: {old:?} -> {new:?}");
            match new {
                pw::stream::StreamState::Streaming => f.streamed = true,
                pw::stream::StreamState::Error(e) => {
                    s1.end(format!("the screen share's stream failed: {e}"));
                    ml.quit();
                }
                // The compositor's node is gone: the desktop ended the share.
                pw::stream::StreamState::Unconnected if f.streamed => {
                    s1.end("the desktop stopped the screen share".into());
                    ml.quit();
                }
                _ => {}
            }
        })
        .param_changed(|_, f, id, param| {
            let Some(param) = param else { return };
            if id != spa::param::ParamType::Format.as_raw() {
                return;
            }
            if let Err(e) = f.info.parse(param) {
                tracing::warn!("screen share format not understood: {e}");
                return;
            }
            let size = f.info.size();
            tracing::debug!(format = ?f.info.format(), "screen share: {}x{}", size.width, size.height);
        })
        .process(move |stream, f| keep_latest(stream, f, &s2))
        .register()
        .map_err(pw_err)?;

    let params = format_params(fps)?;
    let mut params = [spa::pod::Pod::from_bytes(&params)
        .ok_or_else(|| MediaError::Device("PipeWire format pod".into()))?];
    stream
        .connect(
            spa::utils::Direction::Input,
            Some(node),
            pw::stream::StreamFlags::AUTOCONNECT
                | pw::stream::StreamFlags::MAP_BUFFERS
                | pw::stream::StreamFlags::DONT_RECONNECT,
            &mut params,
        )
        .map_err(pw_err)?;
    let _ = ready.send(Ok(()));
    mainloop.run();
    Ok(())
}

/// Copies the newest buffer's pixels into `shared` (PipeWire's buffers go back at once).
fn keep_latest(stream: &pw::stream::Stream, f: &mut Format, shared: &Shared) {
    let Some(mut buffer) = stream.dequeue_buffer() else {
        return;
    };
    let Some(data) = buffer.datas_mut().first_mut() else {
        return;
    };
    let chunk = data.chunk();
    let (offset, size, stride) = (
        chunk.offset() as usize,
        chunk.size() as usize,
        chunk.stride(),
    );
    // Empty or damaged chunks: the compositor had nothing new, or only a cursor move.
    if size == 0 || chunk.flags().contains(spa::buffer::ChunkFlags::CORRUPTED) {
        return;
    }
    let rgb = match f.info.format() {
        VideoFormat::BGRx | VideoFormat::BGRA => false,
        VideoFormat::RGBx | VideoFormat::RGBA => true,
        _ => return,
    };
    let (width, height) = (f.info.size().width, f.info.size().height);
    let stride = if stride > 0 { stride as u32 } else { width * 4 };
    let Some(bytes) = data.data() else {
        return; // not mappable (DMA-BUF, which we do not ask for)
    };
    let Some(pixels) = bytes.get(offset..offset + size) else {
        return;
    };
    if (pixels.len() as u64) < u64::from(stride) * u64::from(height) {
        return;
    }
    let mut state = shared.lock();
    let latest = state.latest.get_or_insert_with(Latest::default);
    latest.width = width;
    latest.height = height;
    latest.stride = stride;
    latest.rgb = rgb;
    latest.data.clear();
    latest.data.extend_from_slice(pixels);
}

/// The formats we take: packed 8-bit RGB in either order, any size, `fps` preferred. Any
/// rate is accepted (a producer with a fixed one would otherwise fail to link): `grab`
/// samples the latest frame at the share's rate.
fn format_params(fps: u32) -> Result<Vec<u8>> {
    use spa::param::format::{FormatProperties, MediaSubtype, MediaType};
    use spa::utils::{Fraction, Rectangle};
    let fps = fps.clamp(1, 60);
    let obj = spa::pod::object!(
        spa::utils::SpaTypes::ObjectParamFormat,
        spa::param::ParamType::EnumFormat,
        spa::pod::property!(FormatProperties::MediaType, Id, MediaType::Video),
        spa::pod::property!(FormatProperties::MediaSubtype, Id, MediaSubtype::Raw),
        spa::pod::property!(
            FormatProperties::VideoFormat,
            Choice,
            Enum,
            Id,
            VideoFormat::BGRx,
            VideoFormat::BGRx,
            VideoFormat::BGRA,
            VideoFormat::RGBx,
            VideoFormat::RGBA
        ),
        spa::pod::property!(
            FormatProperties::VideoSize,
            Choice,
            Range,
            Rectangle,
            Rectangle {
                width: 1920,
                height: 1080
            },
            Rectangle {
                width: 16,
                height: 16
            },
            Rectangle {
                width: 8192,
                height: 8192
            }
        ),
        spa::pod::property!(
            FormatProperties::VideoFramerate,
            Choice,
            Range,
            Fraction,
            Fraction { num: fps, denom: 1 },
            Fraction { num: 0, denom: 1 },
            Fraction {
                num: 1000,
                denom: 1
            }
        ),
    );
    let (cursor, _) = spa::pod::serialize::PodSerializer::serialize(
        std::io::Cursor::new(Vec::new()),
        &spa::pod::Value::Object(obj),
    )
    .map_err(|e| MediaError::Device(format!("PipeWire format pod: {e:?}")))?;
    Ok(cursor.into_inner())
}
