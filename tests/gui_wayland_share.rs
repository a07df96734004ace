//! Screen share from the studio window on a Wayland desktop (`egui_kittest`, the real `App`
//! on a real session, backend and LiveKit server): the picker offers the desktop's own
//! choice, picking it goes through the ScreenCast portal (the real `xdg-desktop-portal` and
//! PipeWire, `streamit_testkit::portal`), the screen shows beside the camera's preview and
//! goes out live; the desktop's "Stop sharing" ends the share with its reason on screen,
//! and the stream goes on. A creator who picks "Not sharing" while the desktop's dialog is
//! still up closes that dialog. The desktop remembers the choice (the portal's restore
//! token, kept by the studio): sharing again needs no dialog, and "Choose another…" asks
//! again.
//!
//! The one test in this binary points the process at that desktop (`XDG_RUNTIME_DIR`, the
//! D-Bus session bus, `WAYLAND_DISPLAY`), as a Wayland session would.

#[path = "common/gui.rs"]
mod gui_kit;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use egui_kittest::kittest::Queryable;
use gui_kit::{harness, has_label, has_label_containing, log_in, pick_screen, wait_for, watch};
use streamit_session::{MemoryGrants, ScreenShareState, SessionConfig, SessionHandle, StreamState};
use streamit_testkit::Stack;
use streamit_testkit::portal::{DesktopDir, PortalDesktop};

/// The picker's one entry on Wayland (`streamit_media::screen`'s portal listing).
const CHOICE: &str = "Screen or window (your desktop's choice)";

#[test]
fn on_wayland_the_studio_shares_what_the_desktop_grants_until_the_desktop_stops_it() -> Result<()> {
    let dir = DesktopDir::new()?;
    // SAFETY: the first thing this binary's only test does, before it starts a thread that
    // could read the environment (the runtime, the desktop and the session come after).
    unsafe {
        for (k, v) in dir.env() {
            std::env::set_var(k, v);
        }
        std::env::remove_var("DISPLAY");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let desktop = rt.block_on(PortalDesktop::start_in(dir, 960, 540, 30))?;
    // For a failed wait: what the studio asked the desktop, and the desktop's logs.
    let desktop_said = || format!("{:?}\n{}", desktop.asked(), desktop.logs());
    let stack = Stack::start()?;
    let host_id = rt.block_on(stack.creator("wayland_gui", true))?.user.id;
    // The app keeps the grant in the OS keyring; this harness has none.
    let mut config = SessionConfig::new(stack.backend.url());
    config.screen_grants = Some(Arc::new(MemoryGrants::default()));
    let session = SessionHandle::spawn_on(rt.handle(), config);
    let mut h = harness(&session, &rt, stack.backend.url());
    log_in(&mut h, "wayland_gui")?;

    // Setup: one entry, the desktop's choice.
    wait_for(&mut h, "the portal's entry", Duration::from_secs(10), |h| {
        h.state()
            .screen_sources()
            .is_some_and(|names| names.iter().any(|n| n == CHOICE))
    })?;
    // The creator picks it, then thinks better of it while the desktop's dialog is up:
    // "Not sharing" closes the dialog, and nothing is shared.
    desktop.hold_dialogs(true);
    pick_screen(&mut h, CHOICE);
    wait_for(
        &mut h,
        "the desktop's dialog up, the studio waiting on it",
        Duration::from_secs(10),
        |h| {
            desktop.asked().starts == 1
                && matches!(
                    h.state().state().screen_share,
                    ScreenShareState::Starting { .. }
                )
                && has_label_containing(h, "if your desktop asks what to share, choose there")
        },
    )?;
    pick_screen(&mut h, "Not sharing");
    wait_for(
        &mut h,
        "the desktop's dialog closed by the studio",
        Duration::from_secs(10),
        |h| {
            desktop.asked().closed_while_asking == 1
                && h.state().state().screen_share == ScreenShareState::Off
        },
    )
    .with_context(desktop_said)?;
    desktop.hold_dialogs(false);

    // Picked again and granted: the screen shows beside the preview.
    pick_screen(&mut h, CHOICE);
    wait_for(
        &mut h,
        "the granted screen beside the preview",
        Duration::from_secs(20),
        |h| {
            matches!(
                h.state().state().screen_share,
                ScreenShareState::Sharing {
                    width: 960,
                    height: 540,
                    pip: None,
                    ..
                }
            ) && h.state().state().screen_preview.is_some()
                && has_label(h, "Goes out beside your camera")
        },
    )
    .with_context(desktop_said)?;
    let asked = desktop.asked();
    ensure!(
        asked.starts == 2 && asked.restored == 0,
        "two dialogs, one closed: {asked:?}"
    );
    ensure!(
        asked.persist_mode == 2,
        "remembered until revoked: {asked:?}"
    );

    gui_kit::go_live_sharing(&mut h, "Wayland screen share from the studio")?;
    let report = watch(&rt, &stack, &host_id, 4)?;
    let share: Vec<_> = (report.video.tracks.iter())
        .filter(|t| t["source"] == "SOURCE_SCREENSHARE")
        .collect();
    println!("live on Wayland: {share:?}");
    ensure!(
        share.len() == 1
            && share[0]["width"] == 960
            && share[0]["codes_distinct"].as_u64().unwrap_or(0) >= 20,
        "the granted screen on air: {share:?}"
    );

    // The desktop's "Stop sharing": the share ends with the reason on screen; still live.
    ensure!(
        rt.block_on(desktop.stop_sharing())? == 1,
        "one portal session"
    );
    wait_for(
        &mut h,
        "the share ended, and why",
        Duration::from_secs(10),
        |h| {
            matches!(
                h.state().state().screen_share,
                ScreenShareState::Ended { .. }
            ) && has_label_containing(h, "the desktop stopped the screen share")
        },
    )?;
    ensure!(h.state().state().stream_state == StreamState::Live);

    // Shared again: the desktop remembered the choice, so no dialog asks, and it goes on
    // air at once.
    pick_screen(&mut h, CHOICE);
    wait_for(
        &mut h,
        "the remembered screen shared again, on air",
        Duration::from_secs(20),
        |h| {
            matches!(
                h.state().state().screen_share,
                ScreenShareState::Sharing {
                    desktop_chose: true,
                    on_air: true,
                    ..
                }
            ) && has_label(h, "Choose another…")
        },
    )
    .with_context(desktop_said)?;
    let asked = desktop.asked();
    ensure!(
        asked.restored == 1 && asked.starts == 2,
        "granted again without a dialog: {asked:?}"
    );
    // "Choose another…": the desktop's dialog asks again.
    h.get_by_role_and_label(egui::Role::Button, "Choose another…")
        .click_accesskit();
    h.run_steps(2);
    wait_for(
        &mut h,
        "the desktop's dialog asked, the choice shared",
        Duration::from_secs(20),
        |h| {
            desktop.asked().starts == 3
                && matches!(
                    h.state().state().screen_share,
                    ScreenShareState::Sharing { on_air: true, .. }
                )
        },
    )
    .with_context(|| format!("{:?}\n{}", h.state().state().screen_share, desktop_said()))?;
    ensure!(desktop.asked().restored == 1, "{:?}", desktop.asked());
    let _ = rt.block_on(session.request(streamit_session::Command::Shutdown));
    Ok(())
}
