//! The studio window under `egui_kittest` for the GUI tests: the real `App` on a real
//! session, found and driven through its AccessKit tree. Shared by `gui.rs` and
//! `gui_outages.rs`; included with `#[path]`, so each test file takes what it uses.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use egui::{Role, Vec2};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use streamit_session::{ScreenShareState, SessionHandle, StreamState};
use streamit_testkit::{Grants, Stack, Viewer, ViewerOptions, ViewerReport};

use streamit_studio::app::{self, App, Screen};

/// The real studio window (1280×800 points) on `session`, talking to the backend at `api`.
pub fn harness<'a>(
    session: &SessionHandle,
    rt: &tokio::runtime::Runtime,
    api: &str,
) -> Harness<'a, App> {
    harness_at_scale(session, rt, api, 1.0)
}

/// The same window on a display with `scale` physical pixels per point (a 150 % or 200 %
/// desktop): the native scale, as the windowing system reports it, not egui's zoom.
pub fn harness_at_scale<'a>(
    session: &SessionHandle,
    rt: &tokio::runtime::Runtime,
    api: &str,
    scale: f32,
) -> Harness<'a, App> {
    let session = session.clone();
    let handle = rt.handle().clone();
    let api = api.to_string();
    Harness::builder()
        .with_size(Vec2::new(1280.0, 800.0))
        .with_pixels_per_point(scale)
        .build_eframe(move |cc| {
            App::new(
                &cc.egui_ctx,
                session,
                handle,
                app::Options {
                    api_url: api,
                    use_keyring: false,
                    ..Default::default()
                },
            )
        })
}

/// Steps frames (in real time, so the session can work) until `cond` holds; how long it
/// took.
pub fn wait_for(
    h: &mut Harness<'_, App>,
    what: &str,
    timeout: Duration,
    mut cond: impl FnMut(&Harness<'_, App>) -> bool,
) -> Result<Duration> {
    let start = Instant::now();
    loop {
        h.step();
        if cond(h) {
            return Ok(start.elapsed());
        }
        if start.elapsed() > timeout {
            let s = h.state().state();
            bail!(
                "timed out after {timeout:?} waiting for {what}; screen {:?}, stream {:?}, backend {:?}, errors {:?}",
                h.state().screen(),
                s.stream_state,
                s.backend,
                s.errors
            );
        }
        std::thread::sleep(Duration::from_millis(40));
    }
}

pub fn has_label(h: &Harness<'_, App>, label: &str) -> bool {
    h.query_all_by_label(label).next().is_some()
}

pub fn has_label_containing(h: &Harness<'_, App>, part: &str) -> bool {
    h.query_all_by_label_contains(part).next().is_some()
}

pub fn type_into(h: &mut Harness<'_, App>, field: &str, text: &str) {
    h.get_by_role_and_label(Role::TextInput, field).focus();
    h.step();
    h.get_by_role_and_label(Role::TextInput, field)
        .type_text(text);
    h.step();
}

/// The characters in the text field named `field` (0 when there is none).
pub fn field_chars(h: &Harness<'_, App>, field: &str) -> usize {
    h.query_by_role_and_label(Role::TextInput, field)
        .and_then(|n| n.value())
        .map_or(0, |v| v.chars().count())
}

/// Opens the Screen picker and picks `entry` in it.
pub fn pick_screen(h: &mut Harness<'_, App>, entry: &str) {
    h.get_by_role_and_label(Role::ComboBox, "Screen").click();
    h.run_steps(2);
    h.get_by_label(entry).click();
    h.run_steps(2);
}

pub fn click(h: &mut Harness<'_, App>, label: &str) {
    h.get_by_role_and_label(Role::Button, label).click();
    h.step();
    h.step();
}

/// Logs in through the login screen and waits for the setup screen.
pub fn log_in(h: &mut Harness<'_, App>, user: &str) -> Result<()> {
    wait_for(h, "the login screen", Duration::from_secs(5), |h| {
        h.state().screen() == Screen::Login
    })?;
    type_into(h, "Username", user);
    type_into(h, "Password", streamit_testkit::TEST_PASSWORD);
    click(h, "Log in");
    wait_for(h, "the setup screen", Duration::from_secs(10), |h| {
        h.state().screen() == Screen::Setup
    })?;
    Ok(())
}

/// Logs in through the login screen and goes live with `title`.
pub fn log_in_and_go_live(
    h: &mut Harness<'_, App>,
    user: &str,
    title: &str,
    chat: bool,
) -> Result<()> {
    log_in(h, user)?;
    type_into(h, "Title", title);
    if !chat {
        h.get_by_role_and_label(Role::CheckBox, "Chat enabled")
            .click();
        h.run_steps(2);
    }
    wait_for(h, "Go Live ready", Duration::from_secs(10), |h| {
        has_label_containing(h, "Everything is ready")
    })?;
    click(h, "Go Live");
    wait_for(h, "live", Duration::from_secs(40), |h| {
        h.state().state().stream_state == StreamState::Live
    })?;
    Ok(())
}

/// What a viewer of `host_id`'s room saw over `secs`, reading the pattern's codes.
pub fn watch(
    rt: &tokio::runtime::Runtime,
    stack: &Stack,
    host_id: &str,
    secs: u64,
) -> Result<ViewerReport> {
    let lk = &stack.livekit;
    let mut opts = ViewerOptions::new(
        lk.ws_url(),
        lk.token("screen-viewer", host_id, Grants::Viewer)?,
    );
    opts.duration = Duration::from_secs(secs);
    opts.read_pattern = true;
    let report = rt.block_on(Viewer::run(opts))?;
    anyhow::ensure!(report.joined, "viewer did not join: {:?}", report.error);
    Ok(report)
}

/// Titles the stream, clicks Go Live and waits until it is live with the screen shared
/// beside the camera, on air.
pub fn go_live_sharing(h: &mut Harness<'_, App>, title: &str) -> Result<()> {
    type_into(h, "Title", title);
    wait_for(h, "Go Live ready", Duration::from_secs(10), |h| {
        has_label_containing(h, "Everything is ready")
    })?;
    click(h, "Go Live");
    wait_for(
        h,
        "live with the share on air",
        Duration::from_secs(40),
        |h| {
            let s = h.state().state();
            s.stream_state == StreamState::Live
                && matches!(
                    s.screen_share,
                    ScreenShareState::Sharing {
                        on_air: true,
                        pip: None,
                        ..
                    }
                )
        },
    )?;
    Ok(())
}
