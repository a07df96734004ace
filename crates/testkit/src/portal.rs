//! Screen sharing on a Wayland desktop, as much of it as can exist on this machine: the real
//! `xdg-desktop-portal` on a private D-Bus, real PipeWire and WirePlumber, and a video node
//! playing the moving test pattern (made by this process, as a compositor makes its own).
//!
//! What stands in is the desktop's own portal backend, the part of GNOME, KDE or
//! wlroots (`xdg-desktop-portal-wlr`) that asks the user and hands over the compositor's
//! PipeWire node. None can run here: the wlroots one needs a GPU's DMA-BUF (`/dev/dri`),
//! which this machine has not, and the GNOME and KDE ones wait for a person to click. The
//! stand-in answers the same D-Bus calls (`org.freedesktop.impl.portal.ScreenCast`): the
//! user always picks the pattern's node, and [`PortalDesktop::stop_sharing`] is the
//! desktop's own "Stop sharing" button. Asked to remember the choice (`persist_mode`), it
//! answers with restore data as GNOME's does, which the real portal keeps in the real
//! `xdg-permission-store` behind a restore token; handed back, it grants the same screen
//! without a dialog.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};

use crate::process::Guarded;

const BACKEND_NAME: &str = "org.freedesktop.impl.portal.desktop.streamit";
const DESKTOP_PATH: &str = "/org/freedesktop/portal/desktop";
const NODE_NAME: &str = "streamit-test-screen";
/// The restore data's vendor tag, as GNOME's backend tags its own with "GNOME".
const RESTORE_VENDOR: &str = "streamit-test";

/// What the studio asked the desktop for, in its last `SelectSources`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Asked {
    /// Source types, as the portal's bits: 1 monitor, 2 window.
    pub types: u32,
    /// 1 hidden, 2 embedded, 4 metadata.
    pub cursor_mode: u32,
    /// Starts that showed the dialog so far.
    pub starts: u32,
    /// Dialogs the studio closed (its portal session) before the user answered them.
    pub closed_while_asking: u32,
    /// Starts granted from a remembered choice, without a dialog.
    pub restored: u32,
    /// The last `SelectSources`' persist mode: 0 not remembered, 1 while the app runs,
    /// 2 until revoked.
    pub persist_mode: u32,
}

#[derive(Default)]
struct Record {
    asked: Asked,
    /// The open sessions, with what their `SelectSources` asked for.
    sessions: HashMap<OwnedObjectPath, Selected>,
    /// The user leaves each dialog open (see [`PortalDesktop::hold_dialogs`]).
    hold: bool,
}

/// What a session's `SelectSources` asked for, which its `Start` acts on.
#[derive(Debug, Clone, Copy, Default)]
struct Selected {
    persist_mode: u32,
    /// The restore data it came with names this screen.
    restore: bool,
}

/// The private session: D-Bus, PipeWire, the portal, and a screen playing the pattern.
pub struct PortalDesktop {
    dir: tempfile::TempDir,
    // Dropped in reverse order of start: the portal first, D-Bus last.
    procs: Vec<Guarded>,
    conn: zbus::Connection,
    record: Arc<Mutex<Record>>,
    feeder: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    /// The screen's PipeWire node.
    pub node: u32,
    /// The screen's size.
    pub size: (u32, u32),
}

impl PortalDesktop {
    /// A `width × height` screen playing the pattern at `fps`; returns once the portal
    /// answers on the bus.
    pub async fn start(width: u32, height: u32, fps: u32) -> Result<Self> {
        Self::start_in(DesktopDir::new()?, width, height, fps).await
    }

    /// [`PortalDesktop::start`] in a runtime directory made (and its environment set) before.
    pub async fn start_in(dir: DesktopDir, width: u32, height: u32, fps: u32) -> Result<Self> {
        let DesktopDir(dir) = dir;
        let run = dir.path();
        let env = |cmd: &mut Command| {
            cmd.env("XDG_RUNTIME_DIR", run)
                .env_remove("DISPLAY")
                .env_remove("WAYLAND_DISPLAY")
                .stdin(Stdio::null());
        };
        let mut procs = Vec::new();

        // D-Bus without service activation: only what we start is on it.
        let conf = run.join("bus.conf");
        let sock = run.join("bus");
        std::fs::write(
            &conf,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>session</type><listen>unix:path={}</listen>
<policy context="default"><allow send_destination="*" eavesdrop="true"/>
<allow eavesdrop="true"/><allow own="*"/></policy></busconfig>"#,
                sock.display()
            ),
        )?;
        let mut cmd = Command::new("dbus-daemon");
        cmd.arg(format!("--config-file={}", conf.display()))
            .arg("--nofork");
        env(&mut cmd);
        procs.push(Guarded::spawn("dbus-daemon", cmd, run.join("dbus.log"))?);
        wait_for_socket(&sock, "dbus-daemon").await?;
        let bus = format!("unix:path={}", sock.display());

        let mut cmd = Command::new("pipewire");
        env(&mut cmd);
        cmd.env("DBUS_SESSION_BUS_ADDRESS", &bus);
        procs.push(Guarded::spawn("pipewire", cmd, run.join("pipewire.log"))?);
        wait_for_socket(&run.join("pipewire-0"), "pipewire").await?;
        let mut cmd = Command::new("wireplumber");
        env(&mut cmd);
        cmd.env("DBUS_SESSION_BUS_ADDRESS", &bus);
        procs.push(Guarded::spawn(
            "wireplumber",
            cmd,
            run.join("wireplumber.log"),
        )?);

        // The screen: a video source node playing the pattern, as a compositor's would.
        let stop = Arc::new(AtomicBool::new(false));
        let feeder = Some(play_pattern(run, width, height, fps, stop.clone())?);
        let node = node_id(run).await?;

        // The desktop's backend, then the portal that uses it.
        let record = Arc::new(Mutex::new(Record::default()));
        let conn = zbus::connection::Builder::address(bus.as_str())?
            .method_timeout(Duration::from_secs(10))
            .name(BACKEND_NAME)?
            .serve_at(
                DESKTOP_PATH,
                ScreenCast {
                    node,
                    size: (width, height),
                    record: record.clone(),
                    closed: Arc::default(),
                },
            )?
            .build()
            .await
            .context("the portal backend on D-Bus")?;
        // Where the portal keeps restore data (behind the tokens it hands out), in this
        // desktop's own data directory.
        let mut cmd = Command::new("/usr/libexec/xdg-permission-store");
        env(&mut cmd);
        cmd.env("DBUS_SESSION_BUS_ADDRESS", &bus)
            .env("XDG_DATA_HOME", run.join("data"));
        procs.push(Guarded::spawn(
            "xdg-permission-store",
            cmd,
            run.join("permission-store.log"),
        )?);
        wait_for_name(&conn, "org.freedesktop.impl.portal.PermissionStore")
            .await
            .context("xdg-permission-store (Debian package xdg-desktop-portal)")?;
        let portals = run.join("portals");
        std::fs::create_dir(&portals)?;
        std::fs::write(
            portals.join("streamit.portal"),
            format!(
                "[portal]\nDBusName={BACKEND_NAME}\n\
                 Interfaces=org.freedesktop.impl.portal.ScreenCast;\nUseIn=streamit-test\n"
            ),
        )?;
        let mut cmd = Command::new("/usr/libexec/xdg-desktop-portal");
        env(&mut cmd);
        cmd.env("DBUS_SESSION_BUS_ADDRESS", &bus)
            .env("XDG_DESKTOP_PORTAL_DIR", &portals)
            .env("XDG_CURRENT_DESKTOP", "streamit-test");
        procs.push(Guarded::spawn(
            "xdg-desktop-portal",
            cmd,
            run.join("portal.log"),
        )?);
        let desktop = PortalDesktop {
            dir,
            procs,
            conn,
            record,
            feeder,
            stop,
            node,
            size: (width, height),
        };
        desktop.wait_for_portal().await?;
        Ok(desktop)
    }

    async fn wait_for_portal(&self) -> Result<()> {
        wait_for_name(&self.conn, "org.freedesktop.portal.Desktop")
            .await
            .with_context(|| {
                format!(
                    "xdg-desktop-portal did not come up (Debian package xdg-desktop-portal):\n{}",
                    self.procs
                        .last()
                        .map(|p| p.log_tail(20))
                        .unwrap_or_default()
                )
            })
    }

    /// Points a studio command at this desktop (see [`DesktopDir::env`]).
    pub fn apply(&self, cmd: &mut tokio::process::Command) {
        for (k, v) in env_of(self.dir.path()) {
            cmd.env(k, v);
        }
        cmd.env_remove("DISPLAY");
    }

    /// From now on the user leaves each dialog open: `Start` answers only once the studio
    /// closes the session (then as a dialog closed without a choice), or after 60 s.
    pub fn hold_dialogs(&self, yes: bool) {
        if let Ok(mut r) = self.record.lock() {
            r.hold = yes;
        }
    }

    /// What the studio asked for.
    pub fn asked(&self) -> Asked {
        self.record
            .lock()
            .map(|r| r.asked.clone())
            .unwrap_or_default()
    }

    /// The desktop's "Stop sharing": every open session is closed from the desktop's side.
    pub async fn stop_sharing(&self) -> Result<usize> {
        let sessions: Vec<_> = std::mem::take(
            &mut self
                .record
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?
                .sessions,
        )
        .into_keys()
        .collect();
        let server = self.conn.object_server();
        for path in &sessions {
            let iface = server.interface::<_, Session>(path).await?;
            Session::closed(iface.signal_emitter()).await?;
            server.remove::<Session, _>(path).await?;
        }
        Ok(sessions.len())
    }

    /// The last lines of the portal's and PipeWire's logs, for a failing test.
    pub fn logs(&self) -> String {
        (self.procs.iter())
            .map(|p| format!("== {}\n{}", p.log.display(), p.log_tail(15)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The desktop's runtime directory (`XDG_RUNTIME_DIR`: the D-Bus and PipeWire sockets), made
/// before the desktop starts, so that a test running the studio in its own process can set
/// the environment before any thread exists.
pub struct DesktopDir(tempfile::TempDir);

impl DesktopDir {
    pub fn new() -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("streamit-wl-").tempdir()?;
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )?;
        Ok(DesktopDir(dir))
    }

    /// A Wayland session's environment on this desktop: its D-Bus session bus and runtime
    /// directory, and `WAYLAND_DISPLAY` set (nothing listens there: screen capture goes
    /// through the portal alone). `DISPLAY` must be unset too.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        env_of(self.0.path())
    }
}

fn env_of(run: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("XDG_RUNTIME_DIR", run.display().to_string()),
        (
            "DBUS_SESSION_BUS_ADDRESS",
            format!("unix:path={}", run.join("bus").display()),
        ),
        ("WAYLAND_DISPLAY", "wayland-streamit-test".into()),
        ("XDG_SESSION_TYPE", "wayland".into()),
    ]
}

impl Drop for PortalDesktop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        while let Some(mut p) = self.procs.pop() {
            p.stop();
        }
        if let Some(t) = self.feeder.take() {
            let _ = t.join();
        }
    }
}

/// Until `name` has an owner on the bus (15 s at most).
async fn wait_for_name(conn: &zbus::Connection, name: &str) -> Result<()> {
    let dbus = zbus::fdo::DBusProxy::new(conn).await?;
    let name = zbus::names::BusName::try_from(name)?;
    let start = Instant::now();
    while !dbus.name_has_owner(name.clone()).await? {
        if start.elapsed() > Duration::from_secs(15) {
            bail!("{name} did not appear on the bus");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

async fn wait_for_socket(path: &Path, what: &str) -> Result<()> {
    let start = Instant::now();
    while !path.exists() {
        if start.elapsed() > Duration::from_secs(10) {
            bail!("{what} made no socket at {}", path.display());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// The pattern node's id, from `pw-dump`, once it exists.
async fn node_id(run: &Path) -> Result<u32> {
    let start = Instant::now();
    loop {
        let out = tokio::process::Command::new("pw-dump")
            .env("XDG_RUNTIME_DIR", run)
            .output()
            .await
            .context("pw-dump (Debian package pipewire-bin)")?;
        let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let found = all.as_array().into_iter().flatten().find(|o| {
            o["type"] == "PipeWire:Interface:Node" && o["info"]["props"]["node.name"] == NODE_NAME
        });
        if let Some(id) = found.and_then(|o| o["id"].as_u64()) {
            return Ok(id as u32);
        }
        if start.elapsed() > Duration::from_secs(10) {
            bail!("the pattern's PipeWire node did not appear");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A PipeWire video source (`Video/Source`, BGRx in shared memory, driving its own graph at
/// `fps`) playing the pattern, as a compositor's screen-cast node does; until `stop`.
fn play_pattern(
    run: &Path,
    width: u32,
    height: u32,
    fps: u32,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>> {
    let socket = std::os::unix::net::UnixStream::connect(run.join("pipewire-0"))
        .context("connecting to PipeWire")?;
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("portal-screen".into())
        .spawn(move || {
            if let Err(e) = pattern_node(socket.into(), width, height, fps, &stop, &ready_tx) {
                let _ = ready_tx.send(Err(e));
            }
        })?;
    match ready.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(())) => Ok(thread),
        Ok(Err(e)) => Err(e),
        Err(_) => bail!("the pattern's PipeWire node did not start"),
    }
}

fn pattern_node(
    socket: std::os::fd::OwnedFd,
    width: u32,
    height: u32,
    fps: u32,
    stop: &Arc<AtomicBool>,
    ready: &std::sync::mpsc::Sender<Result<()>>,
) -> Result<()> {
    use pipewire as pw;
    use pw::spa;
    use spa::pod::{Pod, Property, Value as PodValue};
    pw::init();
    let mainloop = pw::main_loop::MainLoopRc::new(None)?;
    let context = pw::context::ContextRc::new(&mainloop, None)?;
    let core = context.connect_fd_rc(socket, None)?;
    let stream = pw::stream::StreamRc::new(
        core,
        NODE_NAME,
        pw::properties::properties! {
            *pw::keys::MEDIA_CLASS => "Video/Source",
            *pw::keys::NODE_NAME => NODE_NAME,
            *pw::keys::MEDIA_TYPE => "Video",
        },
    )?;
    let start = Instant::now();
    let n = std::cell::Cell::new(0u32);
    let stride = width * 4;
    let _listener = stream
        .add_local_listener()
        .param_changed(move |stream, (), id, param| {
            // Once the format is settled: buffers of one frame each, in shared memory.
            if id != spa::param::ParamType::Format.as_raw() || param.is_none() {
                return;
            }
            let int = |v: u32| PodValue::Int(v as i32);
            let buffers = PodValue::Object(spa::pod::Object {
                type_: spa::utils::SpaTypes::ObjectParamBuffers.as_raw(),
                id: spa::param::ParamType::Buffers.as_raw(),
                properties: vec![
                    Property::new(spa::sys::SPA_PARAM_BUFFERS_buffers, int(4)),
                    Property::new(spa::sys::SPA_PARAM_BUFFERS_blocks, int(1)),
                    Property::new(spa::sys::SPA_PARAM_BUFFERS_size, int(stride * height)),
                    Property::new(spa::sys::SPA_PARAM_BUFFERS_stride, int(stride)),
                    Property::new(
                        spa::sys::SPA_PARAM_BUFFERS_dataType,
                        int(1 << spa::sys::SPA_DATA_MemFd),
                    ),
                ],
            });
            if let Ok(bytes) = serialize(&buffers)
                && let Some(pod) = Pod::from_bytes(&bytes)
            {
                let _ = stream.update_params(&mut [pod]);
            }
        })
        .process(move |stream, ()| {
            let Some(mut buffer) = stream.dequeue_buffer() else {
                return;
            };
            let Some(data) = buffer.datas_mut().first_mut() else {
                return;
            };
            let pts = streamit_media::MediaTime::from_micros(start.elapsed().as_micros() as u64);
            let Ok(frame) = streamit_media::pattern::generate_pattern(width, height, n.get(), pts)
            else {
                return;
            };
            n.set(n.get() + 1);
            let Ok(mut bgrx) = streamit_media::convert::i420_to_rgba(&frame) else {
                return;
            };
            for px in bgrx.chunks_exact_mut(4) {
                px.swap(0, 2);
            }
            let Some(out) = data.data() else { return };
            let len = bgrx.len().min(out.len());
            out[..len].copy_from_slice(&bgrx[..len]);
            let chunk = data.chunk_mut();
            *chunk.offset_mut() = 0;
            *chunk.size_mut() = len as u32;
            *chunk.stride_mut() = stride as i32;
        })
        .register()?;
    let format = spa::pod::object!(
        spa::utils::SpaTypes::ObjectParamFormat,
        spa::param::ParamType::EnumFormat,
        spa::pod::property!(
            spa::param::format::FormatProperties::MediaType,
            Id,
            spa::param::format::MediaType::Video
        ),
        spa::pod::property!(
            spa::param::format::FormatProperties::MediaSubtype,
            Id,
            spa::param::format::MediaSubtype::Raw
        ),
        spa::pod::property!(
            spa::param::format::FormatProperties::VideoFormat,
            Id,
            spa::param::video::VideoFormat::BGRx
        ),
        spa::pod::property!(
            spa::param::format::FormatProperties::VideoSize,
            Rectangle,
            spa::utils::Rectangle { width, height }
        ),
        spa::pod::property!(
            spa::param::format::FormatProperties::VideoFramerate,
            Fraction,
            spa::utils::Fraction { num: fps, denom: 1 }
        ),
    );
    let format = serialize(&PodValue::Object(format))?;
    let mut params = [Pod::from_bytes(&format).context("format pod")?];
    stream.connect(
        spa::utils::Direction::Output,
        None,
        pw::stream::StreamFlags::DRIVER | pw::stream::StreamFlags::MAP_BUFFERS,
        &mut params,
    )?;
    // The clock of this screen: one frame a period, and a look at `stop`.
    let (ml, stop, stream) = (mainloop.clone(), stop.clone(), stream.downgrade());
    let timer = mainloop.loop_().add_timer(move |_| {
        let Some(stream) = stream.upgrade() else {
            return;
        };
        if stop.load(Ordering::Acquire) {
            ml.quit();
        } else if stream.is_driving() {
            let _ = stream.trigger_process();
        }
    });
    let period = Duration::from_micros(1_000_000 / u64::from(fps.max(1)));
    let _ = timer.update_timer(Some(period), Some(period));
    let _ = ready.send(Ok(()));
    mainloop.run();
    Ok(())
}

fn serialize(value: &pipewire::spa::pod::Value) -> Result<Vec<u8>> {
    let (cursor, _) = pipewire::spa::pod::serialize::PodSerializer::serialize(
        std::io::Cursor::new(Vec::new()),
        value,
    )
    .map_err(|e| anyhow::anyhow!("pod: {e:?}"))?;
    Ok(cursor.into_inner())
}

/// `org.freedesktop.impl.portal.ScreenCast`: what the desktop's backend answers.
struct ScreenCast {
    node: u32,
    size: (u32, u32),
    record: Arc<Mutex<Record>>,
    /// Told when the studio closes a session.
    closed: Arc<event_listener::Event>,
}

type Reply = (u32, HashMap<String, OwnedValue>);

#[zbus::interface(name = "org.freedesktop.impl.portal.ScreenCast")]
impl ScreenCast {
    async fn create_session(
        &self,
        _handle: OwnedObjectPath,
        session_handle: OwnedObjectPath,
        _app_id: String,
        _options: HashMap<String, OwnedValue>,
        #[zbus(object_server)] server: &zbus::ObjectServer,
    ) -> zbus::fdo::Result<Reply> {
        let session = Session {
            path: session_handle.clone(),
            record: self.record.clone(),
            closed: self.closed.clone(),
        };
        server.at(&session_handle, session).await?;
        if let Ok(mut r) = self.record.lock() {
            r.sessions.insert(session_handle, Selected::default());
        }
        Ok((0, HashMap::new()))
    }

    /// Keeps what `Start` needs: whether to remember the choice, and whether the portal
    /// brought back restore data for this screen.
    async fn select_sources(
        &self,
        _handle: OwnedObjectPath,
        session_handle: OwnedObjectPath,
        _app_id: String,
        options: HashMap<String, OwnedValue>,
    ) -> Reply {
        let get = |k: &str| options.get(k).and_then(|v| u32::try_from(v).ok());
        let persist = get("persist_mode").unwrap_or(0);
        let restore = options
            .get("restore_data")
            .is_some_and(|d| restores(d, self.node));
        if let Ok(mut r) = self.record.lock() {
            r.asked.types = get("types").unwrap_or(0);
            r.asked.cursor_mode = get("cursor_mode").unwrap_or(0);
            r.asked.persist_mode = persist;
            r.sessions.insert(
                session_handle,
                Selected {
                    persist_mode: persist,
                    restore,
                },
            );
        }
        (0, HashMap::new())
    }

    /// The user picks the screen at once, or leaves the dialog open (see
    /// [`PortalDesktop::hold_dialogs`]).
    async fn start(
        &self,
        _handle: OwnedObjectPath,
        session_handle: OwnedObjectPath,
        _app_id: String,
        _parent_window: String,
        _options: HashMap<String, OwnedValue>,
    ) -> zbus::fdo::Result<Reply> {
        let closed = self.closed.listen();
        let (hold, persist) = match self.record.lock() {
            Ok(mut r) => {
                let s = r.sessions.get(&session_handle).copied().unwrap_or_default();
                if s.restore {
                    r.asked.restored += 1;
                } else {
                    r.asked.starts += 1;
                }
                (r.hold && !s.restore, s.persist_mode)
            }
            Err(_) => (false, 0),
        };
        if hold {
            let by_studio = futures_lite::future::or(
                async {
                    closed.await;
                    true
                },
                async {
                    async_io::Timer::after(Duration::from_secs(60)).await;
                    false
                },
            )
            .await;
            if by_studio && let Ok(mut r) = self.record.lock() {
                r.asked.closed_while_asking += 1;
            }
            // 2: the interaction ended some other way than by the user's choice.
            return Ok((2, HashMap::new()));
        }
        let mut props: HashMap<String, Value<'static>> = HashMap::new();
        props.insert("position".into(), Value::from((0i32, 0i32)));
        props.insert(
            "size".into(),
            Value::from((self.size.0 as i32, self.size.1 as i32)),
        );
        props.insert("source_type".into(), Value::from(1u32));
        let streams = Value::from(vec![(self.node, props)]);
        let owned = |v: Value<'_>| {
            OwnedValue::try_from(v).map_err(|e| zbus::fdo::Error::Failed(e.to_string()))
        };
        let mut results = HashMap::new();
        results.insert("streams".into(), owned(streams)?);
        if persist > 0 {
            // (suv): whose data, its format's version, and what to share again.
            let data = zbus::zvariant::StructureBuilder::new()
                .add_field(RESTORE_VENDOR)
                .add_field(1u32)
                .append_field(Value::Value(Box::new(Value::U32(self.node))))
                .build()
                .map_err(|e| zbus::fdo::Error::Failed(e.to_string()))?;
            results.insert("restore_data".into(), owned(Value::Structure(data))?);
            results.insert("persist_mode".into(), owned(Value::U32(persist))?);
        }
        Ok((0, results))
    }

    #[zbus(property)]
    fn available_source_types(&self) -> u32 {
        1
    }

    #[zbus(property)]
    fn available_cursor_modes(&self) -> u32 {
        1 | 2
    }

    #[zbus(property, name = "version")]
    fn version(&self) -> u32 {
        4
    }
}

/// Whether `data` is restore data this backend gave for the screen `node`.
fn restores(data: &Value<'_>, node: u32) -> bool {
    /// A variant's content, however deep it is wrapped.
    fn inner<'a>(v: &'a Value<'a>) -> &'a Value<'a> {
        match v {
            Value::Value(v) => inner(v),
            v => v,
        }
    }
    let Value::Structure(s) = inner(data) else {
        return false;
    };
    matches!(
        s.fields(),
        [vendor, version, what]
            if *inner(vendor) == Value::from(RESTORE_VENDOR)
                && *inner(version) == Value::U32(1)
                && *inner(what) == Value::U32(node)
    )
}

/// `org.freedesktop.impl.portal.Session`, one per share.
struct Session {
    path: OwnedObjectPath,
    record: Arc<Mutex<Record>>,
    closed: Arc<event_listener::Event>,
}

#[zbus::interface(name = "org.freedesktop.impl.portal.Session")]
impl Session {
    /// The studio ended the share (closing its dialog if one is open); the object goes
    /// with the connection.
    async fn close(&self) {
        if let Ok(mut r) = self.record.lock() {
            r.sessions.remove(&self.path);
        }
        self.closed.notify(usize::MAX);
    }

    #[zbus(signal)]
    async fn closed(emitter: &SignalEmitter<'_>) -> zbus::Result<()>;

    #[zbus(property, name = "version")]
    fn version(&self) -> u32 {
        1
    }
}
