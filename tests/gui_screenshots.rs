//! The real `streamit-studio` binary on a virtual X display (Debian `xvfb`), against the real
//! backend and LiveKit server with a Python viewer chatting: one screenshot per screen (login,
//! setup, live, ended) into `$CARGO_TARGET_TMPDIR/gui-screenshots/` (ImageMagick `import`).
//! With `STREAMIT_UPDATE_SCREENSHOTS=1` they are copied to `assets/screenshots/` too.
//! Then the setup and live screens again at scale factors of 2 and 1.5 (`WINIT_X11_SCALE_FACTOR`)
//! and in the minimum window (a 640×400 screen), and sharing a window beside the camera
//! (setup and live, on a 1920×800 screen), into the same directory only.
//!
//! No fixed delays: each shot is retaken until it shows what it is for (the window rendered,
//! its title names the screen, the test pattern is in the preview), within a deadline.
//!
//! The binary is driven through its small, explicit test hooks: `STREAMIT_TOKEN` (log in
//! with a token), `STREAMIT_STUDIO_AUTO_GO_LIVE=<s>` (press Go Live after s seconds on the
//! setup screen), `STREAMIT_STUDIO_AUTO_END_SECS=<s>` (end after s seconds live),
//! `STREAMIT_STUDIO_AUTO_RECORD=1` (tick "Record while live"),
//! `STREAMIT_STUDIO_AUTO_SHARE=window:<title>` (share it, as the Screen picker does) and
//! `STREAMIT_STUDIO_NO_KEYRING=1`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use streamit_api::client::Client;
use streamit_api::room::{ATTR_ROLE, ROLE_GUEST, ROLE_VIEWER};
use streamit_api::{LoginRequest, RegisterRequest, Role, SetupStreamRequest};
use streamit_testkit::xdisplay::{PatternWindow, Xvfb};
use streamit_testkit::{Grants, Stack, Viewer, ViewerOptions};

/// Kills (by pid) and reaps a child when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn studio(display: &str, api: &str, env: &[(&str, String)]) -> Result<Reaped> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_streamit-studio"));
    cmd.env("DISPLAY", display)
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("STREAMIT_TOKEN")
        .env("STREAMIT_API_URL", api)
        .env("STREAMIT_STUDIO_NO_KEYRING", "1")
        // the test pattern and tone, whatever devices this machine has
        .env("STREAMIT_STUDIO_TEST_SOURCES", "1")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Ok(Reaped(cmd.spawn().context("starting streamit-studio")?))
}

fn screenshot(display: &str, path: &Path) -> Result<()> {
    let status = Command::new("import")
        .args(["-display", display, "-window", "root"])
        .arg(path)
        .status()
        .context("ImageMagick import (Debian package imagemagick)")?;
    ensure!(status.success(), "import failed for {}", path.display());
    Ok(())
}

/// How many distinct colours an image has (a blank or black window has one or two).
fn colours(img: &image::RgbImage) -> usize {
    let mut seen = std::collections::HashSet::new();
    for p in img.pixels() {
        seen.insert(p.0);
    }
    seen.len()
}

/// The share of pixels of the test pattern's green bar (pure green; the UI has no such green).
fn pattern_green(img: &image::RgbImage) -> f64 {
    let n = img
        .pixels()
        .filter(|p| p.0[1] > 150 && p.0[0] < 60 && p.0[2] < 60)
        .count();
    n as f64 / (img.width() as f64 * img.height() as f64).max(1.0)
}

/// The names of the display's windows (`xwininfo`, Debian x11-utils).
fn window_names(display: &str) -> String {
    Command::new("xwininfo")
        .args(["-display", display, "-root", "-tree"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// What a shot must show before it is kept.
struct Want {
    /// a part of the window title (the screen on display)
    title: &'static str,
    /// the test pattern in the preview
    preview: bool,
}

/// Screenshots the display until the picture is what `want` says (the window rendered, the
/// title names the screen, the preview shows the pattern) or `timeout` passes.
fn shoot(
    display: &str,
    dir: &Path,
    name: &str,
    want: Want,
    timeout: Duration,
    shots: &mut Vec<PathBuf>,
) -> Result<()> {
    let path = dir.join(format!("{name}.png"));
    let deadline = Instant::now() + timeout;
    let mut tries = 0;
    loop {
        tries += 1;
        let titled = window_names(display).contains(want.title);
        screenshot(display, &path)?;
        let img = image::open(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .to_rgb8();
        let (c, green) = (colours(&img), pattern_green(&img));
        if titled && c > 50 && (!want.preview || green > 0.004) {
            eprintln!(
                "{name}: {c} colours, pattern green {:.1} %, try {tries}",
                green * 100.0
            );
            shots.push(path);
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{name}: not the wanted frame after {timeout:?} ({tries} tries): title {:?} {}, \
                 {c} colours, pattern green {:.2} %",
                want.title,
                if titled { "shown" } else { "not shown" },
                green * 100.0
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// User + system CPU time of a process, in clock ticks (usually 1/100 s).
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_comm = stat.rsplit_once(')').context("stat format")?.1;
    let f: Vec<&str> = after_comm.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `after_comm` starts at field 3.
    Ok(f[11].parse::<u64>()? + f[12].parse::<u64>()?)
}

async fn wait_live(api: &Client, username: &str, live: bool, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        if let Ok(s) = api.stream_by_username(username).await
            && s.is_live == live
        {
            return Ok(());
        }
        if start.elapsed() > timeout {
            bail!("stream live={live} not reached in {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn real_binary_under_xvfb_screenshots_every_screen() -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut stack = Stack::start()?;
    let (lk, backend) = (&stack.livekit, &stack.backend);
    let user = "maya";
    let api = Client::new(backend.url());
    let (token, user_id) = rt.block_on(async {
        let a = api
            .register(&RegisterRequest {
                username: user.into(),
                password: "correct horse battery".into(),
                display_name: Some("Maya Chen".into()),
                role: Some(Role::Creator),
            })
            .await?;
        anyhow::Ok((a.token, a.user.id))
    })?;
    backend.cli(&["user", "approve", user])?;
    let studio_token = rt.block_on(async {
        let creator = Client::new(backend.url()).with_token(token.clone());
        creator
            .setup_stream(&SetupStreamRequest {
                title: "Building a synth in Rust, live".into(),
                description: Some("Oscillators, filters and a lot of coffee.".into()),
                is_chat_enabled: Some(true),
                is_chat_delayed: Some(false),
                is_chat_followers_only: Some(false),
            })
            .await?;
        // A fresh login token for the studio (the registration one stays with the test).
        let auth = Client::new(backend.url())
            .login(&LoginRequest {
                username: user.into(),
                password: "correct horse battery".into(),
            })
            .await?;
        anyhow::Ok(auth.token)
    })?;

    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("gui-screenshots");
    std::fs::create_dir_all(&dir)?;
    let mut shots = Vec::new();
    // Shots of other sizes and states, looked at but not in the README.
    let mut layouts = Vec::new();
    let xvfb = Xvfb::start("1280x800x24")?;
    let display = xvfb.display().to_string();
    let rendered = |title| Want {
        title,
        preview: false,
    };
    let with_preview = |title| Want {
        title,
        preview: true,
    };
    let patience = Duration::from_secs(60);

    // 1. Login (no token).
    {
        let app = studio(&display, backend.url(), &[])?;
        shoot(
            &display,
            &dir,
            "1-login",
            rendered("Sign in"),
            patience,
            &mut shots,
        )?;
        // Idle on the login screen, the studio repaints on demand only: no busy loop.
        let before = cpu_ticks(app.0.id())?;
        std::thread::sleep(Duration::from_secs(3));
        let used = cpu_ticks(app.0.id())? - before;
        ensure!(used < 100, "idle studio used {used} CPU ticks in 3 s");
        eprintln!("idle login screen: {used} CPU ticks in 3 s");
    }

    let recordings = tempfile::tempdir()?;
    // 2–4. Setup → live (a viewer joins and chats) → ended. Go Live is pressed 20 s after
    // the setup screen is up (room for the shot on a loaded machine).
    let app = studio(
        &display,
        backend.url(),
        &[
            ("STREAMIT_TOKEN", studio_token.clone()),
            ("STREAMIT_STUDIO_AUTO_GO_LIVE", "20".into()),
            ("STREAMIT_STUDIO_AUTO_END_SECS", "30".into()),
            // recording on: the setup row, the live screen's REC button, the summary line
            ("STREAMIT_STUDIO_AUTO_RECORD", "1".into()),
            (
                "STREAMIT_RECORDINGS_DIR",
                recordings.path().display().to_string(),
            ),
        ],
    )?;
    shoot(
        &display,
        &dir,
        "2-setup",
        with_preview("Ready to go live"),
        patience,
        &mut shots,
    )?;
    rt.block_on(wait_live(&api, user, true, Duration::from_secs(60)))?;
    let viewers: Vec<_> = {
        let _g = rt.enter();
        // A logged-in viewer and a guest (marked as such), with the roles the backend mints.
        [
            ("viewer-ana", "Ana", ROLE_VIEWER, "Hi Maya! Sound is great"),
            ("guest-bo", "Bo", ROLE_GUEST, "first time here, hello"),
        ]
        .into_iter()
        .map(|(id, name, role, text)| -> Result<_> {
            let token =
                lk.token_with_attributes(id, name, &user_id, Grants::Viewer, &[(ATTR_ROLE, role)])?;
            let mut o = ViewerOptions::new(lk.ws_url(), token);
            o.send_chat = vec![text.into()];
            o.duration = Duration::from_secs(35);
            // Stay (and be counted) until the stream ends.
            o.until_frames = Some(100_000);
            Viewer::spawn(o)
        })
        .collect::<Result<_>>()?
    };
    // Both viewers in the room (the window title counts them); their chat comes with them.
    shoot(
        &display,
        &dir,
        "3-live",
        with_preview("2 viewers"),
        patience,
        &mut shots,
    )?;
    // The backend hangs for a moment: the live screen says so (the probe notices in ~2 s).
    ensure!(backend.pause(), "the backend did not stop");
    let shot = shoot(
        &display,
        &dir,
        "3b-backend-down",
        with_preview("server not responding"),
        patience,
        &mut layouts,
    );
    backend.resume();
    shot?;
    rt.block_on(wait_live(&api, user, false, Duration::from_secs(60)))?;
    shoot(
        &display,
        &dir,
        "4-ended",
        rendered("Stream ended"),
        patience,
        &mut shots,
    )?;
    for v in viewers {
        let _ = rt.block_on(v.report());
    }
    drop(app);

    // The setup and live screens at scale factors of 2 and 1.5 on the same 1280×800 screen
    // (the window fits itself to it), and in the minimum window (a 640×400 screen).
    let small = Xvfb::start("640x400x24")?;
    let small_display = small.display().to_string();
    for (tag, display, scale) in [
        ("scale2", &display, "2"),
        ("scale1_5", &display, "1.5"),
        ("min", &small_display, "1"),
    ] {
        let app = studio(
            display,
            backend.url(),
            &[
                ("STREAMIT_TOKEN", studio_token.clone()),
                ("STREAMIT_STUDIO_AUTO_GO_LIVE", "20".into()),
                ("STREAMIT_STUDIO_AUTO_END_SECS", "10".into()),
                ("WINIT_X11_SCALE_FACTOR", scale.into()),
            ],
        )?;
        let (setup, live) = (format!("5-setup-{tag}"), format!("6-live-{tag}"));
        // One column at this size: the preview is under the form, out of view.
        shoot(
            display,
            &dir,
            &setup,
            rendered("Ready to go live"),
            patience,
            &mut layouts,
        )?;
        rt.block_on(wait_live(&api, user, true, Duration::from_secs(60)))?;
        shoot(
            display,
            &dir,
            &live,
            rendered("LIVE"),
            patience,
            &mut layouts,
        )?;
        rt.block_on(wait_live(&api, user, false, Duration::from_secs(60)))?;
        drop(app);
    }

    // 6b. Sharing a window beside the camera: setup shows its thumbnail and the Layout row,
    // the live screen the share's controls. The window sits right of the studio's 1280
    // points, on a wider screen, so what is captured is the window, not the studio over it.
    {
        let wide = Xvfb::start("1920x800x24")?;
        let wide_display = wide.display().to_string();
        let title = "StreamIt shared window";
        let _window = PatternWindow::open_at(&wide_display, title, (1280, 0), 640, 360, 15)?;
        let _app = studio(
            &wide_display,
            backend.url(),
            &[
                ("STREAMIT_TOKEN", studio_token.clone()),
                ("STREAMIT_STUDIO_AUTO_SHARE", format!("window:{title}")),
                ("STREAMIT_STUDIO_AUTO_GO_LIVE", "10".into()),
                ("STREAMIT_STUDIO_AUTO_END_SECS", "10".into()),
            ],
        )?;
        shoot(
            &wide_display,
            &dir,
            "6b-setup-sharing",
            with_preview("Ready to go live · sharing screen"),
            patience,
            &mut layouts,
        )?;
        rt.block_on(wait_live(&api, user, true, Duration::from_secs(60)))?;
        shoot(
            &wide_display,
            &dir,
            "6b-live-sharing",
            with_preview("viewers · sharing screen"),
            patience,
            &mut layouts,
        )?;
        rt.block_on(wait_live(&api, user, false, Duration::from_secs(60)))?;
    }

    // 7. Both servers go while live: the interrupted ending (LiveKit's reconnects give up
    // after about 30 s).
    let _app = studio(
        &display,
        stack.backend.url(),
        &[
            ("STREAMIT_TOKEN", studio_token),
            ("STREAMIT_STUDIO_AUTO_GO_LIVE", "5".into()),
        ],
    )?;
    rt.block_on(wait_live(&api, user, true, Duration::from_secs(60)))?;
    shoot(
        &display,
        &dir,
        "7-on-air",
        with_preview("LIVE"),
        patience,
        &mut layouts,
    )?;
    stack.backend.stop();
    stack.livekit.kill();
    shoot(
        &display,
        &dir,
        "7-interrupted",
        rendered("Stream interrupted"),
        Duration::from_secs(90),
        &mut layouts,
    )?;

    if std::env::var("STREAMIT_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/screenshots");
        std::fs::create_dir_all(&assets)?;
        for s in &shots {
            std::fs::copy(s, assets.join(s.file_name().context("name")?))?;
        }
    }
    eprintln!(
        "screenshots in {}: {} for the README, {} of other sizes and states",
        dir.display(),
        shots.len(),
        layouts.len()
    );
    Ok(())
}
