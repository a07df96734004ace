//! End to end in a real browser: the watch pages served by the real backend, headless
//! Debian chromium (playwright-core, tests/browser/driver.mjs) with livekit-client, a real
//! LiveKit server, and a real publisher: `streamit-studio publish` of the synthetic pattern,
//! or the studio's session in this process where the test needs the studio to act (chat).
//! One stack per test; each test covers several behaviours to keep the browser count low.
//!
//! `STREAMIT_UPDATE_SCREENSHOTS=1` also writes assets/screenshots/web-*.png.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use common::{live_session, publish_succeeded, studio, wait_until_live};
use streamit_api::client::Client;
use streamit_session::{Command, SessionHandle, StreamSetup};
use streamit_testkit::browser::MediaSample;
use streamit_testkit::{Browser, Stack, TEST_PASSWORD};

fn update_screenshots() -> bool {
    std::env::var_os("STREAMIT_UPDATE_SCREENSHOTS").is_some_and(|v| v == "1")
}

fn screenshot_path(name: &str) -> PathBuf {
    streamit_testkit::repo_root()
        .join("assets/screenshots")
        .join(name)
}

/// A quality switch in the menu shows on the page within this (issue 14: ≤ 1 s; the page
/// is sampled every 200 ms; both took under 300 ms on a 2-core machine).
const SWITCH_WITHIN: Duration = Duration::from_millis(1000);

/// Issue 14's target: the median frame rate the page decodes from a publisher that kept up.
const MIN_MEDIAN_FPS: u64 = 27;

/// A decode test holds it for writing, so it runs with no other browser test beside it (they
/// hold it for reading): it measures the frame rate a 720p30 publish reaches in Chromium,
/// and a second browser and publisher on a 2-core machine would be the measure instead.
static DECODE_TESTS: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// `streamit-studio publish` of the synthetic pattern (720p30 by default) and the tone.
fn spawn_publish(
    backend_url: &str,
    username: &str,
    codec: &str,
    simulcast: bool,
    duration: &str,
) -> Result<tokio::process::Child> {
    let mut cmd = studio();
    cmd.args(["publish", "--api", backend_url])
        .args(["--username", username, "--password", TEST_PASSWORD])
        .args(["--title", "Building a synth in Rust, live"])
        .args(["--source", "synthetic", "--audio", "tone", "--codec", codec])
        .args(["--duration", duration, "--json"]);
    if simulcast {
        cmd.arg("--simulcast");
    }
    Ok(cmd.spawn()?)
}

/// The high simulcast layer of the 1280x720 publish: full size, or ¾ of it after the
/// publisher's CPU adapter stepped the size down (it does on a busy machine, and steps back
/// up seconds later).
fn high_layer(v: &streamit_testkit::browser::VideoStats) -> bool {
    (v.width, v.height) == (1280, 720) || (v.width, v.height) == (960, 540)
}

/// The low layer of the same publish (a quarter of the high one), at either size.
fn low_layer(v: &streamit_testkit::browser::VideoStats) -> bool {
    (v.width, v.height) == (320, 180) || (v.width, v.height) == (240, 135)
}

/// Frames decoded per whole interval, and how many intervals saw none.
fn rises(samples: &[MediaSample], f: impl Fn(&MediaSample) -> u64) -> (Vec<u64>, usize) {
    let deltas: Vec<u64> = samples
        .windows(2)
        .map(|w| f(&w[1]).saturating_sub(f(&w[0])))
        .collect();
    let flat = deltas.iter().filter(|d| **d == 0).count();
    (deltas, flat)
}

/// The page, with High chosen, decodes `codec` simulcast for 15 s at the published 1280x720
/// (≥ 90 % of the samples, median ≥ [`MIN_MEDIAN_FPS`]), audio flows, and the quality menu's Low gives
/// LiveKit's low layer for 720p (320x180).
async fn decodes_in_chromium(codec: &str, username: &str) -> Result<()> {
    let _alone = DECODE_TESTS.write().await;
    let test_start = Instant::now();
    let stack = Stack::start()?;
    stack.creator(username, true).await?;
    let public = Client::new(stack.backend.url());
    let publish = spawn_publish(stack.backend.url(), username, codec, true, "120s")?;
    wait_until_live(&public, username, Duration::from_secs(15)).await?;
    let browser = Browser::launch().await?;
    let page = browser
        .open(&format!("{}/{username}", stack.backend.url()))
        .await?;
    let first = page.first_frame(Duration::from_secs(20)).await?;
    println!(
        "{codec}: first frame {} ms after opening the page ({}x{}), chromium {}",
        first.ms, first.width, first.height, browser.version
    );
    // Let the SFU settle on the layer the player asks for before the 10 s window. LiveKit
    // marks a layer stopped after one thin 500 ms window and wants ~10 s of good ones to
    // take it back, so a start on a busy machine can sit on the low layer that long.
    page.choose_quality("high").await?;
    page.wait_until("the high layer", Duration::from_secs(30), |s| {
        high_layer(&s.video)
    })
    .await?;
    let samples = page
        .record(Duration::from_secs(15), Duration::from_secs(1))
        .await?;
    let (frames, flat) = rises(&samples, |s| s.video.frames_decoded);
    let (audio, audio_flat) = rises(&samples, |s| s.audio.samples);
    let total: u64 = frames.iter().sum();
    let at_full = samples
        .iter()
        .filter(|s| s.video.width == 1280 && s.video.height == 720)
        .count();
    let at_540 = samples
        .iter()
        .filter(|s| s.video.width == 960 && s.video.height == 540)
        .count();
    let mut sorted = frames.clone();
    sorted.sort();
    let median_fps = sorted.get(sorted.len() / 2).copied().unwrap_or(0);
    let codec_seen = samples.last().and_then(|s| s.video.codec.clone());
    println!(
        "{codec}: {total} frames decoded in {} s (per second {frames:?}), {at_full}/{} samples at 1280x720, \
         median {median_fps} fps, codec {codec_seen:?}, audio samples per second {audio:?}",
        frames.len(),
        samples.len()
    );
    ensure!(
        codec_seen
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case(&format!("video/{codec}"))),
        "the page decoded {codec_seen:?}, not {codec}"
    );
    ensure!(
        flat == 0,
        "frames stopped rising in {flat} of the seconds: {frames:?}"
    );
    ensure!(
        audio_flat == 0 && audio.iter().all(|a| *a > 0),
        "audio samples did not rise every second: {audio:?}"
    );

    let live = page.sample().await?;
    ensure!(live.dom.state.as_deref() == Some("live"), "{:?}", live.dom);
    ensure!(
        live.dom.title.as_deref() == Some("Building a synth in Rust, live"),
        "title {:?}",
        live.dom.title
    );

    // The quality menu: Low → the low simulcast layer.
    let asked = Instant::now();
    page.choose_quality("low").await?;
    let low = page
        .wait_until("the low layer (320x180)", Duration::from_secs(10), |s| {
            low_layer(&s.video)
        })
        .await?;
    let low_after = asked.elapsed();
    println!(
        "{codec}: Low gave {}x{} after {} ms",
        low.video.width,
        low.video.height,
        low_after.as_millis()
    );
    let before = low.video.frames_decoded;
    let later = page
        .wait_until("frames at the low layer", Duration::from_secs(5), |s| {
            s.video.frames_decoded > before + 30
        })
        .await?;
    ensure!(
        low_layer(&later.video),
        "left the low layer: {:?}",
        later.video
    );
    // And back up: High → the high layer again (LiveKit asks the publisher for a key frame).
    let asked_high = Instant::now();
    page.choose_quality("high").await?;
    let high = page
        .wait_until("the high layer again", Duration::from_secs(10), |s| {
            high_layer(&s.video)
        })
        .await?;
    let up = asked_high.elapsed();
    let down = low_after;
    println!(
        "{codec}: switching down took {} ms, up {} ms to {}x{} (200 ms sampling)",
        down.as_millis(),
        up.as_millis(),
        high.video.width,
        high.video.height
    );
    ensure!(
        down <= SWITCH_WITHIN && up <= SWITCH_WITHIN,
        "switching took {} ms down, {} ms up (at most {} ms)",
        down.as_millis(),
        up.as_millis(),
        SWITCH_WITHIN.as_millis()
    );
    page.close().await?;

    // The publisher's own account of the window: a `publish` that kept up sends 30 fps at
    // 1280x720 and the page must show issue 14's target, a median of 27 fps or more. Here
    // the publisher, LiveKit and Chromium's 720p decode share 2 cores, and on a busy
    // machine (CI) the CPU adapter steps down; then the publisher must say so and the page
    // still shows the high layer (1280x720, or 960x540 after a size step) at 15 fps or more.
    let pid = publish.id().context("publish already ended")?;
    let _ = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status();
    let out = publish_succeeded(publish, Duration::from_secs(30), "").await?;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("publish --json: {}", String::from_utf8_lossy(&out.stdout)))?;
    let adapted = report["cpuAdaptations"].as_u64().unwrap_or(0) > 0;
    let at_high = if adapted {
        println!(
            "{codec}: the publisher stepped down {} times: {}",
            report["cpuAdaptations"], report["cpuLimited"]
        );
        at_full + at_540
    } else {
        at_full
    };
    let floor = if adapted { 15 } else { MIN_MEDIAN_FPS };
    ensure!(
        median_fps >= floor,
        "median {median_fps} fps (30 published, CPU step downs: {}): {frames:?}",
        report["cpuAdaptations"]
    );
    ensure!(
        at_high * 10 >= samples.len() * 9,
        "only {at_high} of {} samples at the high layer: {:?}",
        samples.len(),
        samples
            .iter()
            .map(|s| (s.video.width, s.video.height))
            .collect::<Vec<_>>()
    );
    println!(
        "{codec}: test took {:.1} s",
        test_start.elapsed().as_secs_f64()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_simulcast_plays_in_chromium_and_low_gives_the_low_layer() -> Result<()> {
    decodes_in_chromium("h264", "web_h264").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vp8_simulcast_plays_in_chromium_and_low_gives_the_low_layer() -> Result<()> {
    decodes_in_chromium("vp8", "web_vp8").await
}

/// Waits until the studio's viewer count is `n`.
async fn studio_viewers(session: &SessionHandle, n: u32) -> Result<()> {
    let mut state = session.subscribe();
    let start = Instant::now();
    while state.borrow_and_update().viewers != n {
        ensure!(
            start.elapsed() < Duration::from_secs(15),
            "the studio counts {} viewers, not {n}",
            state.borrow().viewers
        );
        let _ = tokio::time::timeout(Duration::from_secs(1), state.changed()).await;
    }
    Ok(())
}

/// Waits until the backend (LiveKit webhooks) counts `n` viewers.
async fn backend_viewers(public: &Client, username: &str, n: i64) -> Result<()> {
    let start = Instant::now();
    loop {
        let s = public.stream_by_username(username).await?;
        if s.viewer_count == n {
            return Ok(());
        }
        ensure!(
            start.elapsed() < Duration::from_secs(15),
            "the backend counts {} viewers, not {n}",
            s.viewer_count
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_goes_both_ways_and_viewer_counts_agree() -> Result<()> {
    let _shared = DECODE_TESTS.read().await;
    let test_start = Instant::now();
    let stack = Stack::start()?;
    stack.creator("maya", true).await?;
    stack.viewer("bo_viewer").await?;
    let public = Client::new(stack.backend.url());
    let session = live_session(
        stack.backend.url(),
        "maya",
        StreamSetup {
            title: "Building a synth in Rust, live".into(),
            description: Some("Oscillators, filters and a tiny sequencer, from scratch.".into()),
            ..Default::default()
        },
    )
    .await?;
    let url = format!("{}/maya", stack.backend.url());
    let browser = Browser::launch().await?;

    // A guest picks a name on the page (a new token, so the page rejoins).
    let ana = browser.open(&url).await?;
    ana.wait_until("live", Duration::from_secs(20), |s| {
        s.dom.state.as_deref() == Some("live") && s.dom.chat_open
    })
    .await?;
    ana.click("[data-testid=guest-name-change]").await?;
    ana.fill("[data-testid=guest-name]", "Ana").await?;
    ana.click(".guest-form button[type=submit]").await?;
    ana.wait_for(
        "[data-testid=guest-name-current]:text-is('Ana')",
        Duration::from_secs(20),
    )
    .await?;
    let first = ana.first_frame(Duration::from_secs(20)).await?;
    println!(
        "guest rejoin: first frame {} ms after choosing the name",
        first.ms
    );

    // Page → studio, with the guest's name.
    ana.send_chat("hi Maya, sound is great").await?;
    let mut state = session.subscribe();
    let start = Instant::now();
    let entry = loop {
        if let Some(e) = state
            .borrow_and_update()
            .chat
            .iter()
            .find(|c| c.text == "hi Maya, sound is great")
        {
            break e.clone();
        }
        ensure!(
            start.elapsed() < Duration::from_secs(10),
            "the studio never got the page's chat"
        );
        let _ = tokio::time::timeout(Duration::from_secs(1), state.changed()).await;
    };
    println!(
        "studio got {:?} from {:?} ({})",
        entry.text, entry.sender, entry.identity
    );
    ensure!(entry.sender == "Ana", "sender {:?}", entry.sender);
    ensure!(
        entry.identity.starts_with("guest-"),
        "identity {:?}",
        entry.identity
    );

    // Studio → page, marked as the creator's.
    session
        .request(Command::SendChat("welcome, glad you made it".into()))
        .await?;
    let shown = ana
        .wait_until("the creator's message", Duration::from_secs(10), |s| {
            s.dom
                .chat
                .iter()
                .any(|c| c.text.as_deref() == Some("welcome, glad you made it"))
        })
        .await?;
    let line = shown
        .dom
        .chat
        .iter()
        .find(|c| c.text.as_deref() == Some("welcome, glad you made it"))
        .context("line")?;
    println!("page shows {line:?}");
    ensure!(line.badge.as_deref() == Some("Creator"), "{line:?}");
    ensure!(line.name.as_deref() == Some("maya (test)"), "{line:?}");
    let own = shown
        .dom
        .chat
        .iter()
        .find(|c| c.text.as_deref() == Some("hi Maya, sound is great"))
        .context("own line")?;
    ensure!(own.badge.as_deref() == Some("Guest"), "{own:?}");

    // Viewer counts: page, studio and backend agree as a second browser joins and leaves.
    ana.wait_until("1 viewer", Duration::from_secs(10), |s| {
        s.dom.viewer_count == Some(1)
    })
    .await?;
    studio_viewers(&session, 1).await?;
    backend_viewers(&public, "maya", 1).await?;
    let bo = browser
        .open(&format!("{}/login?next=%2Fmaya", stack.backend.url()))
        .await?;
    bo.fill("#username", "bo_viewer").await?;
    bo.fill("#password", TEST_PASSWORD).await?;
    bo.click("form.auth-card button[type=submit]").await?;
    let bo_live = bo
        .wait_until("bo live", Duration::from_secs(20), |s| {
            s.dom.state.as_deref() == Some("live") && s.dom.viewer_count == Some(2)
        })
        .await?;
    ensure!(bo_live.dom.path == "/maya", "{:?}", bo_live.dom.path);
    ana.wait_until("2 viewers", Duration::from_secs(10), |s| {
        s.dom.viewer_count == Some(2)
    })
    .await?;
    studio_viewers(&session, 2).await?;
    backend_viewers(&public, "maya", 2).await?;
    println!("2 viewers: both pages, the studio and the backend agree");
    bo.send_chat("logged in and here").await?;
    ana.wait_until("bo's message", Duration::from_secs(10), |s| {
        s.dom.chat.iter().any(|c| {
            c.text.as_deref() == Some("logged in and here")
                && c.name.as_deref() == Some("bo_viewer (test)")
                && c.badge.is_none()
        })
    })
    .await?;

    // Title edits while live reach the page without a reload.
    session
        .request(Command::EditTitle {
            title: "Synth in Rust: filters".into(),
            description: None,
        })
        .await?;
    let edited = Instant::now();
    ana.wait_until("the new title", Duration::from_secs(12), |s| {
        s.dom.title.as_deref() == Some("Synth in Rust: filters")
    })
    .await?;
    println!(
        "title edit reached the page in {} ms",
        edited.elapsed().as_millis()
    );

    if update_screenshots() {
        ana.wait_until("decoded video", Duration::from_secs(10), |s| {
            s.video.frames_decoded > 0
        })
        .await?;
        ana.screenshot(&screenshot_path("web-live.png")).await?;
    }

    bo.close().await?;
    ana.wait_until("1 viewer again", Duration::from_secs(15), |s| {
        s.dom.viewer_count == Some(1)
    })
    .await?;
    studio_viewers(&session, 1).await?;
    backend_viewers(&public, "maya", 1).await?;
    println!("back to 1 viewer everywhere");

    session.request(Command::EndStream).await?;
    ana.wait_until("offline after the end", Duration::from_secs(15), |s| {
        s.dom.state.as_deref() == Some("offline")
    })
    .await?;
    let _ = session.request(Command::Shutdown).await;
    println!(
        "chat/viewers test took {:.1} s",
        test_start.elapsed().as_secs_f64()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_page_turns_live_by_itself_and_back() -> Result<()> {
    let _shared = DECODE_TESTS.read().await;
    let test_start = Instant::now();
    let stack = Stack::start()?;
    stack.creator("nightowl", true).await?;
    // A stream exists (set up) but is not live.
    let setup = studio()
        .args(["setup", "--api", stack.backend.url()])
        .args(["--username", "nightowl", "--password", TEST_PASSWORD])
        .args(["--title", "Late-night modular jam"])
        .output()
        .await?;
    ensure!(
        setup.status.success(),
        "setup: {}",
        String::from_utf8_lossy(&setup.stderr)
    );
    let browser = Browser::launch().await?;
    let page = browser
        .open(&format!("{}/nightowl", stack.backend.url()))
        .await?;
    let offline = page
        .wait_until("offline", Duration::from_secs(10), |s| {
            s.dom.state.as_deref() == Some("offline")
        })
        .await?;
    ensure!(
        !offline.dom.chat_input_visible,
        "chat input on an offline page"
    );
    if update_screenshots() {
        page.screenshot(&screenshot_path("web-offline.png")).await?;
    }

    let public = Client::new(stack.backend.url());
    let publish = spawn_publish(stack.backend.url(), "nightowl", "h264", false, "12s")?;
    let go = Instant::now();
    wait_until_live(&public, "nightowl", Duration::from_secs(15)).await?;
    let live = page
        .wait_until("live by itself", Duration::from_secs(15), |s| {
            s.dom.state.as_deref() == Some("live") && s.video.frames_decoded > 0
        })
        .await?;
    println!(
        "offline page showed video {} ms after publish started (polls every 3 s), {}x{}",
        go.elapsed().as_millis(),
        live.video.width,
        live.video.height
    );

    // The live list shows the stream.
    let list = browser.open(stack.backend.url()).await?;
    let listed = list
        .wait_until("the stream card", Duration::from_secs(10), |s| {
            s.dom.streams.iter().any(|u| u == "nightowl")
        })
        .await?;
    println!("live list: {:?}", listed.dom.streams);
    if update_screenshots() {
        list.screenshot(&screenshot_path("web-list.png")).await?;
    }
    list.close().await?;

    // The creator ends: the page goes back to offline by itself.
    common::publish_succeeded(publish, Duration::from_secs(40), "").await?;
    page.wait_until("offline again", Duration::from_secs(15), |s| {
        s.dom.state.as_deref() == Some("offline")
    })
    .await?;
    println!(
        "offline/live test took {:.1} s",
        test_start.elapsed().as_secs_f64()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_only_guest_page_shows_the_rule() -> Result<()> {
    let _shared = DECODE_TESTS.read().await;
    let stack = Stack::start()?;
    stack.creator("fan_club", true).await?;
    let session = live_session(
        stack.backend.url(),
        "fan_club",
        StreamSetup {
            title: "Members hang-out".into(),
            chat_followers_only: Some(true),
            ..Default::default()
        },
    )
    .await?;
    let browser = Browser::launch().await?;
    let page = browser
        .open(&format!("{}/fan_club", stack.backend.url()))
        .await?;
    let s = page
        .wait_until("the followers-only rule", Duration::from_secs(20), |s| {
            s.dom.state.as_deref() == Some("live") && s.dom.chat_rule.is_some()
        })
        .await?;
    println!(
        "guest page: rule {:?}, input visible {}",
        s.dom.chat_rule, s.dom.chat_input_visible
    );
    ensure!(
        s.dom
            .chat_rule
            .as_deref()
            .is_some_and(|r| r.contains("followers only")),
        "rule {:?}",
        s.dom.chat_rule
    );
    ensure!(
        !s.dom.chat_input_visible,
        "a dead input is shown instead of the rule"
    );
    let _ = session.request(Command::Shutdown).await;
    Ok(())
}

/// Camera off in the studio: the page shows a camera-off card instead of holding the last
/// frame, no frames arrive meanwhile, and the picture comes back with the camera.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_off_shows_a_card_and_the_picture_returns() -> Result<()> {
    let _shared = DECODE_TESTS.read().await;
    let stack = Stack::start()?;
    stack.creator("cam_creator", true).await?;
    let session = live_session(
        stack.backend.url(),
        "cam_creator",
        StreamSetup {
            title: "Camera on, camera off".into(),
            ..Default::default()
        },
    )
    .await?;
    let browser = Browser::launch().await?;
    let page = browser
        .open(&format!("{}/cam_creator", stack.backend.url()))
        .await?;
    page.first_frame(Duration::from_secs(20)).await?;

    session.request(Command::ToggleCamera).await?;
    let off = Instant::now();
    page.wait_for("[data-testid=camera-off]", Duration::from_secs(10))
        .await?;
    let card_ms = off.elapsed().as_millis();
    // For a person to look at (not in the README).
    page.screenshot(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("web-camera-off.png"))
        .await?;
    // Two seconds under the card: the studio sends no frames.
    let quiet = page
        .record(Duration::from_secs(2), Duration::from_millis(250))
        .await?;
    let decoded = |s: Option<&MediaSample>| s.map_or(0, |s| s.video.frames_decoded);
    let (first, last) = (decoded(quiet.first()), decoded(quiet.last()));
    println!(
        "camera off: card after {card_ms} ms; frames decoded over 2 s under it: {}",
        last - first
    );
    ensure!(
        last - first <= 2,
        "{} frames arrived while the camera was off",
        last - first
    );

    session.request(Command::ToggleCamera).await?;
    let on = Instant::now();
    page.wait_for("video:not([hidden])", Duration::from_secs(10))
        .await?;
    let back = page
        .wait_until("the picture moving again", Duration::from_secs(10), |s| {
            s.video.frames_decoded > last + 10
        })
        .await?;
    println!(
        "camera on: picture back and moving (10 frames) after {} ms, {}x{}",
        on.elapsed().as_millis(),
        back.video.width,
        back.video.height
    );
    let _ = session.request(Command::Shutdown).await;
    Ok(())
}

/// A screen share in the browser: the shared window (a pattern window on a headless X
/// display, shared by `publish --screen`) fills the player at its own size with the
/// camera's picture in the corner; when the window closes, the camera fills the player
/// again and the corner picture goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_screen_share_fills_the_player_with_the_camera_in_the_corner() -> Result<()> {
    use streamit_testkit::xdisplay::{PatternWindow, Xvfb};
    const TITLE: &str = "StreamIt shared window";
    // A size neither the camera (1280x720) nor its simulcast layers have.
    let (w, h) = (800, 450);
    let _shared = DECODE_TESTS.read().await;
    let stack = Stack::start()?;
    stack.creator("screen_creator", true).await?;
    let xvfb = Xvfb::start("1280x720x24")?;
    let window = PatternWindow::open(xvfb.display(), TITLE, w, h, 30)?;
    let mut cmd = studio();
    cmd.env("DISPLAY", xvfb.display())
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("XDG_SESSION_TYPE")
        .args(["publish", "--api", stack.backend.url()])
        .args(["--username", "screen_creator", "--password", TEST_PASSWORD])
        .args(["--title", "Code review, screen and camera"])
        .args([
            "--source",
            "synthetic",
            "--audio",
            "tone",
            "--codec",
            "h264",
        ])
        .args(["--simulcast", "--duration", "90s", "--json"])
        .args(["--screen", &format!("window:{TITLE}"), "--screen-fps", "15"]);
    let mut publish = cmd.spawn()?;
    let public = Client::new(stack.backend.url());
    wait_until_live(&public, "screen_creator", Duration::from_secs(15)).await?;
    let browser = Browser::launch().await?;
    let page = browser
        .open(&format!("{}/screen_creator", stack.backend.url()))
        .await?;
    let shown = |s: &streamit_testkit::browser::PageSample, id: &str| {
        s.elements.get(id).filter(|e| !e.hidden).cloned()
    };
    let both = page
        .wait_until(
            "the shared window in the player and the camera in the corner",
            Duration::from_secs(30),
            |s| {
                let main = shown(s, "video");
                let inset = shown(s, "video-inset");
                main.is_some_and(|m| (m.width, m.height) == (w, h) && m.frames > 10)
                    && inset.is_some_and(|i| i.width >= 320 && i.frames > 10)
            },
        )
        .await?;
    let (main, inset) = (&both.elements["video"], &both.elements["video-inset"]);
    println!(
        "screen share: player {}x{} shown at {}x{}, camera corner {}x{} shown at {}x{}",
        main.width,
        main.height,
        main.client_width,
        main.client_height,
        inset.width,
        inset.height,
        inset.client_width,
        inset.client_height
    );
    ensure!(
        inset.client_width * 3 < main.client_width,
        "the corner picture is not a corner: {inset:?} over {main:?}"
    );
    // Both keep playing: frames rise on each element over two seconds.
    let later = page
        .wait_until("both pictures moving", Duration::from_secs(10), |s| {
            shown(s, "video").is_some_and(|m| m.frames >= main.frames + 20)
                && shown(s, "video-inset").is_some_and(|i| i.frames >= inset.frames + 20)
        })
        .await?;
    ensure!(
        later.dom.state.as_deref() == Some("live"),
        "{:?}",
        later.dom
    );
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("web-screen-share.png");
    page.screenshot(&shot).await?;
    if update_screenshots() {
        page.screenshot(&screenshot_path("web-screen-share.png"))
            .await?;
    }

    window.close()?;
    let closed = Instant::now();
    let camera = page
        .wait_until(
            "the camera back in the player, no corner picture",
            Duration::from_secs(20),
            |s| {
                shown(s, "video").is_some_and(|m| m.width >= 640 && (m.width, m.height) != (w, h))
                    && shown(s, "video-inset").is_none()
            },
        )
        .await?;
    let frames = camera.elements["video"].frames;
    page.wait_until(
        "the camera moving in the player",
        Duration::from_secs(10),
        |s| shown(s, "video").is_some_and(|m| m.frames >= frames + 20),
    )
    .await?;
    println!(
        "window closed: camera fills the player ({}x{}) {} ms later",
        camera.elements["video"].width,
        camera.elements["video"].height,
        closed.elapsed().as_millis()
    );
    let _ = publish.start_kill();
    let _ = publish.wait().await;
    Ok(())
}
