//! The real `streamit-studio` binary on a virtual X display (Debian `xvfb`), against the real
//! backend and LiveKit server with a Python viewer chatting: one screenshot per screen (login,
//! setup, live, ended) into `$CARGO_TARGET_TMPDIR/gui-screenshots/` (ImageMagick `import`).
//! With `STREAMIT_UPDATE_SCREENSHOTS=1` they are copied to `assets/screenshots/` too.
//!
//! The binary is driven through its small, explicit test hooks: `STREAMIT_TOKEN` (log in
//! with a token), `STREAMIT_STUDIO_AUTO_GO_LIVE=<s>` (press Go Live after s seconds on the
//! setup screen), `STREAMIT_STUDIO_AUTO_END_SECS=<s>` (end after s seconds live) and
//! `STREAMIT_STUDIO_NO_KEYRING=1`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use streamit_api::client::Client;
use streamit_api::room::{ATTR_ROLE, ROLE_GUEST, ROLE_VIEWER};
use streamit_api::{LoginRequest, RegisterRequest, Role, SetupStreamRequest};
use streamit_testkit::{Grants, Stack, Viewer, ViewerOptions};

/// Kills (by pid) and reaps a child when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An Xvfb server on a free display number (it picks one and tells us on `-displayfd`).
fn start_xvfb() -> Result<(Reaped, String)> {
    let mut child = Command::new("Xvfb")
        .args([
            "-displayfd",
            "1",
            "-screen",
            "0",
            "1280x800x24",
            "-nolisten",
            "tcp",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting Xvfb (Debian package xvfb)")?;
    let out = child.stdout.take().context("Xvfb stdout")?;
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line)?;
    let n: u32 = line.trim().parse().context("Xvfb display number")?;
    Ok((Reaped(child), format!(":{n}")))
}

fn studio(display: &str, api: &str, env: &[(&str, String)]) -> Result<Reaped> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_streamit-studio"));
    cmd.env("DISPLAY", display)
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("STREAMIT_TOKEN")
        .env("STREAMIT_API_URL", api)
        .env("STREAMIT_STUDIO_NO_KEYRING", "1")
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

/// How many distinct colours a screenshot has (a blank or black window has one or two).
fn colours(path: &Path) -> Result<u64> {
    let out = Command::new("identify")
        .args(["-format", "%k"])
        .arg(path)
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

fn shoot(display: &str, dir: &Path, name: &str, shots: &mut Vec<PathBuf>) -> Result<()> {
    let path = dir.join(format!("{name}.png"));
    screenshot(display, &path)?;
    let c = colours(&path)?;
    ensure!(
        c > 50,
        "{name}: only {c} colours, the window did not render"
    );
    shots.push(path);
    Ok(())
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
    let (_xvfb, display) = start_xvfb()?;

    // 1. Login (no token).
    {
        let app = studio(&display, backend.url(), &[])?;
        std::thread::sleep(Duration::from_secs(6));
        shoot(&display, &dir, "1-login", &mut shots)?;
        // Idle on the login screen, the studio repaints on demand only: no busy loop.
        let before = cpu_ticks(app.0.id())?;
        std::thread::sleep(Duration::from_secs(3));
        let used = cpu_ticks(app.0.id())? - before;
        ensure!(used < 100, "idle studio used {used} CPU ticks in 3 s");
        eprintln!("idle login screen: {used} CPU ticks in 3 s");
    }

    // 2–4. Setup → live (a viewer joins and chats) → ended.
    let app = studio(
        &display,
        backend.url(),
        &[
            ("STREAMIT_TOKEN", studio_token.clone()),
            ("STREAMIT_STUDIO_AUTO_GO_LIVE", "8".into()),
            ("STREAMIT_STUDIO_AUTO_END_SECS", "22".into()),
        ],
    )?;
    std::thread::sleep(Duration::from_secs(6));
    shoot(&display, &dir, "2-setup", &mut shots)?;
    rt.block_on(wait_live(&api, user, true, Duration::from_secs(40)))?;
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
            o.duration = Duration::from_secs(25);
            // Stay (and be counted) until the stream ends.
            o.until_frames = Some(100_000);
            Viewer::spawn(o)
        })
        .collect::<Result<_>>()?
    };
    std::thread::sleep(Duration::from_secs(12));
    shoot(&display, &dir, "3-live", &mut shots)?;
    // The backend hangs for a moment: the live screen says so (the probe notices in ~2 s).
    ensure!(backend.pause(), "the backend did not stop");
    std::thread::sleep(Duration::from_secs(3));
    let shot = shoot(&display, &dir, "3b-backend-down", &mut shots);
    backend.resume();
    shot?;
    rt.block_on(wait_live(&api, user, false, Duration::from_secs(40)))?;
    std::thread::sleep(Duration::from_secs(4));
    shoot(&display, &dir, "4-ended", &mut shots)?;
    for v in viewers {
        let _ = rt.block_on(v.report());
    }
    drop(app);

    // 5. Both servers go while live: the interrupted ending (LiveKit's reconnects give up
    // after about 30 s).
    let _app = studio(
        &display,
        stack.backend.url(),
        &[
            ("STREAMIT_TOKEN", studio_token),
            ("STREAMIT_STUDIO_AUTO_GO_LIVE", "5".into()),
        ],
    )?;
    rt.block_on(wait_live(&api, user, true, Duration::from_secs(40)))?;
    std::thread::sleep(Duration::from_secs(3));
    stack.backend.stop();
    stack.livekit.kill();
    std::thread::sleep(Duration::from_secs(40));
    shoot(&display, &dir, "5-interrupted", &mut shots)?;

    if std::env::var("STREAMIT_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/screenshots");
        std::fs::create_dir_all(&assets)?;
        for s in &shots {
            std::fs::copy(s, assets.join(s.file_name().context("name")?))?;
        }
    }
    eprintln!("screenshots in {}", dir.display());
    Ok(())
}
