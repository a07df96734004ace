//! Screen share from the studio window (`egui_kittest`, the real `App` on a real session,
//! backend and LiveKit server): setup lists a window playing the test pattern on a headless
//! X display, picking it shows the share beside the camera's preview, and live the creator
//! switches to "camera over screen", back, and stops sharing; the Python viewer sees each
//! step.
//!
//! The one test in this binary points the process at its own X display (`DISPLAY`), as a
//! desktop session would; screen capture reads it there.

#[path = "common/gui.rs"]
mod gui_kit;

use std::time::Duration;

use anyhow::{Result, ensure};
use egui::Role;
use egui_kittest::kittest::Queryable;
use gui_kit::{harness, has_label, log_in, pick_screen, wait_for, watch};
use streamit_session::{ScreenShareState, SessionConfig, SessionHandle, StreamState};
use streamit_testkit::xdisplay::{PatternWindow, Xvfb};
use streamit_testkit::{Stack, ViewerReport};

const TITLE: &str = "StreamIt shared window";

fn frames_of(report: &ViewerReport, source: &str) -> u64 {
    (report.video.tracks.iter())
        .filter(|t| t["source"] == source)
        .map(|t| t["frames"].as_u64().unwrap_or(0))
        .sum()
}

fn sharing(state: &ScreenShareState) -> Option<(bool, bool)> {
    match state {
        ScreenShareState::Sharing { pip, on_air, .. } => Some((pip.is_some(), *on_air)),
        _ => None,
    }
}

#[test]
fn the_studio_shares_a_window_beside_the_camera_then_over_it_then_stops() -> Result<()> {
    let xvfb = Xvfb::start("1280x720x24")?;
    // SAFETY: the first thing this binary's only test does, before it starts a thread that
    // could read the environment (the runtime, the session and the window come after).
    unsafe {
        std::env::set_var("DISPLAY", xvfb.display());
        std::env::remove_var("WAYLAND_DISPLAY");
        std::env::remove_var("XDG_SESSION_TYPE");
    }
    let _window = PatternWindow::open(xvfb.display(), TITLE, 640, 360, 30)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let stack = Stack::start()?;
    let host_id = rt.block_on(stack.creator("screen_gui", true))?.user.id;
    let session = SessionHandle::spawn_on(rt.handle(), SessionConfig::new(stack.backend.url()));
    let mut h = harness(&session, &rt, stack.backend.url());
    log_in(&mut h, "screen_gui")?;

    // Setup: the window is in the Screen picker; picking it shows it beside the preview.
    let choice = format!("{TITLE} · 640×360");
    wait_for(&mut h, "the window listed", Duration::from_secs(10), |h| {
        h.state()
            .screen_sources()
            .is_some_and(|names| names.iter().any(|n| n == TITLE))
    })?;
    pick_screen(&mut h, &choice);
    wait_for(
        &mut h,
        "the share beside the preview",
        Duration::from_secs(10),
        |h| {
            sharing(&h.state().state().screen_share) == Some((false, false))
                && h.state().state().screen_preview.is_some()
                && has_label(h, "Goes out beside your camera")
        },
    )?;

    gui_kit::go_live_sharing(&mut h, "Screen share from the studio")?;
    let both = watch(&rt, &stack, &host_id, 4)?;
    let (cam, screen) = (
        frames_of(&both, "SOURCE_CAMERA"),
        frames_of(&both, "SOURCE_SCREENSHARE"),
    );
    println!("live, beside: camera {cam} frames, screen share {screen} frames in 4 s");
    ensure!(cam >= 40 && screen >= 20, "camera {cam}, screen {screen}");

    // Live: camera over screen, one track.
    // The live screen scrolls: the share's row sits under the controls.
    h.get_by_label("Camera over screen").scroll_to_me();
    h.run_steps(2);
    h.get_by_label("Camera over screen").click();
    h.run_steps(2);
    wait_for(&mut h, "camera over screen", Duration::from_secs(10), |h| {
        sharing(&h.state().state().screen_share) == Some((true, true))
    })?;
    let one = watch(&rt, &stack, &host_id, 4)?;
    let (cam, screen) = (
        frames_of(&one, "SOURCE_CAMERA"),
        frames_of(&one, "SOURCE_SCREENSHARE"),
    );
    println!("live, camera over screen: camera {cam} frames, screen share {screen} frames");
    ensure!(cam >= 40 && screen == 0, "camera {cam}, screen {screen}");

    // Live: back beside the camera; the capture never stopped, the screen's track returns.
    h.get_by_label("Beside the camera").scroll_to_me();
    h.run_steps(2);
    h.get_by_label("Beside the camera").click();
    h.run_steps(2);
    wait_for(
        &mut h,
        "beside the camera again",
        Duration::from_secs(10),
        |h| sharing(&h.state().state().screen_share) == Some((false, true)),
    )?;
    let again = watch(&rt, &stack, &host_id, 4)?;
    let (cam, screen) = (
        frames_of(&again, "SOURCE_CAMERA"),
        frames_of(&again, "SOURCE_SCREENSHARE"),
    );
    println!("live, beside again: camera {cam} frames, screen share {screen} frames");
    ensure!(cam >= 40 && screen >= 20, "camera {cam}, screen {screen}");

    // Live: stop sharing.
    h.get_by_role_and_label(Role::ComboBox, "Screen")
        .scroll_to_me();
    h.run_steps(2);
    pick_screen(&mut h, "Not sharing");
    wait_for(&mut h, "sharing stopped", Duration::from_secs(10), |h| {
        h.state().state().screen_share == ScreenShareState::Off
    })?;
    ensure!(h.state().state().stream_state == StreamState::Live);
    let _ = rt.block_on(session.request(streamit_session::Command::Shutdown));
    Ok(())
}
