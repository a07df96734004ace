//! The studio GUI (`src/app`) driven through its AccessKit tree with `egui_kittest`, against
//! the real backend binary, a real LiveKit server and the Python SDK viewer: log in, fill the
//! setup, go live, see a viewer arrive, chat both ways, mute, edit the title, end, read the
//! summary, start over.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use egui::{Key, Role, Vec2};
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use streamit_api::client::Client;
use streamit_session::{SessionConfig, SessionHandle, StreamState};
use streamit_testkit::{Grants, Stack, TEST_PASSWORD, Viewer, ViewerOptions};

use streamit_studio::app::{self, App, Screen};

#[path = "common/gui.rs"]
mod gui_kit;
use gui_kit::{
    click, field_chars, harness, harness_at_scale, has_label, has_label_containing, log_in,
    log_in_and_go_live, type_into, wait_for,
};

const PASSWORD: &str = TEST_PASSWORD;
const TITLE_MAX: usize = streamit_api::limits::TITLE_MAX;

#[test]
fn studio_gui_goes_live_chats_mutes_edits_and_ends_against_the_real_stack() -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let stack = Stack::start()?;
    let (lk, backend) = (&stack.livekit, &stack.backend);
    let user_id = rt.block_on(stack.creator("gui_creator", true))?.user.id;

    // The synthetic pattern and tone stand in for camera and microphone (the defaults).
    let recordings = tempfile::tempdir()?;
    let mut config = SessionConfig::new(backend.url());
    config.recordings_dir = Some(recordings.path().to_path_buf());
    let session = SessionHandle::spawn_on(rt.handle(), config);
    let mut h = harness(&session, &rt, backend.url());

    // Login.
    wait_for(&mut h, "the login screen", Duration::from_secs(5), |h| {
        h.state().screen() == Screen::Login
    })?;
    h.check_accessibility();
    type_into(&mut h, "Username", "gui_creator");
    type_into(&mut h, "Password", "wrong password");
    click(&mut h, "Log in");
    wait_for(
        &mut h,
        "a login error shown inline",
        Duration::from_secs(10),
        |h| !h.state().state().errors.is_empty() && has_label(h, "Wrong username or password."),
    )?;
    ensure!(h.state().screen() == Screen::Login);
    // Replace the password: select all, type the right one.
    h.get_by_role_and_label(Role::TextInput, "Password").focus();
    h.step();
    h.key_press_modifiers(egui::Modifiers::COMMAND, Key::A);
    h.step();
    h.get_by_role_and_label(Role::TextInput, "Password")
        .type_text(PASSWORD);
    h.step();
    click(&mut h, "Log in");
    wait_for(&mut h, "the setup screen", Duration::from_secs(10), |h| {
        h.state().screen() == Screen::Setup
    })?;

    // Setup: the preview runs before going live; the form is filled and Go Live explains itself.
    wait_for(
        &mut h,
        "Go Live blocked without a title",
        Duration::from_secs(5),
        |h| has_label(h, "Give your stream a title first."),
    )?;
    wait_for(
        &mut h,
        "the preview and the mic meter",
        Duration::from_secs(10),
        |h| h.state().preview_uploads() > 2 && h.state().state().mic_level > 0.0,
    )?;
    h.check_accessibility();
    // The noise filter: off for the test tone (on by default only for microphones), and
    // its box switches it in the session.
    let filtering = |h: &Harness<'_, App>| {
        h.state()
            .state()
            .media
            .as_ref()
            .is_some_and(|m| m.noise_suppression)
    };
    ensure!(
        !filtering(&h),
        "no noise filter on the test tone by default"
    );
    h.get_by_role_and_label(Role::CheckBox, "Noise filter")
        .click();
    wait_for(&mut h, "the noise filter on", Duration::from_secs(5), |h| {
        filtering(h)
    })?;
    h.get_by_role_and_label(Role::CheckBox, "Noise filter")
        .click();
    wait_for(
        &mut h,
        "the noise filter off",
        Duration::from_secs(5),
        |h| !filtering(h),
    )?;
    // Record while live: armed here, it starts with the stream.
    h.get_by_role_and_label(Role::CheckBox, "Record while live")
        .click();
    wait_for(&mut h, "recording armed", Duration::from_secs(5), |h| {
        h.state().state().recording.on
    })?;
    // The backend's limit, while typing: a 141st character is not taken, and the counter
    // says so.
    type_into(&mut h, "Title", &"x".repeat(TITLE_MAX + 1));
    ensure!(
        field_chars(&h, "Title") == TITLE_MAX,
        "title of {} characters",
        field_chars(&h, "Title")
    );
    ensure!(
        has_label(&h, &format!("{TITLE_MAX} / {TITLE_MAX}")),
        "the counter"
    );
    ensure!(h.state().state().stream.is_none(), "nothing saved");
    h.get_by_role_and_label(Role::TextInput, "Title").focus();
    h.step();
    h.key_press_modifiers(egui::Modifiers::COMMAND, Key::A);
    h.step();
    h.get_by_role_and_label(Role::TextInput, "Title")
        .type_text("GUI end to end");
    h.step();
    type_into(&mut h, "Description", "Driven by egui_kittest");
    wait_for(&mut h, "Go Live ready", Duration::from_secs(5), |h| {
        has_label_containing(h, "Everything is ready")
    })?;
    click(&mut h, "Go Live");
    wait_for(&mut h, "live", Duration::from_secs(40), |h| {
        h.state().state().stream_state == StreamState::Live
    })?;
    ensure!(h.state().screen() == Screen::Live);
    let stream = h.state().state().stream.clone().context("stream info")?;
    ensure!(
        stream.title == "GUI end to end",
        "saved title: {}",
        stream.title
    );
    ensure!(stream.description.as_deref() == Some("Driven by egui_kittest"));
    h.check_accessibility();
    wait_for(
        &mut h,
        "the recording's figures on the Record button",
        Duration::from_secs(10),
        |h| {
            let rec = h.state().state().recording.current.clone();
            rec.is_some_and(|r| r.bytes > 0 && has_label(h, &format!("● REC {}", r.figures())))
        },
    )?;

    // A viewer joins and says hello.
    let viewer = {
        let _rt = rt.enter();
        let mut opts =
            ViewerOptions::new(lk.ws_url(), lk.token("viewer-1", &user_id, Grants::Viewer)?);
        opts.send_chat = vec!["hello from python".into()];
        opts.until_frames = Some(30);
        opts.until_chat = Some(1);
        opts.duration = Duration::from_secs(40);
        Viewer::spawn(opts)?
    };
    wait_for(
        &mut h,
        "the viewer count to show 1",
        Duration::from_secs(30),
        |h| has_label(h, "1 viewer"),
    )?;
    wait_for(
        &mut h,
        "the viewer's chat message",
        Duration::from_secs(30),
        |h| has_label(h, "hello from python"),
    )?;
    let from = h
        .state()
        .state()
        .chat
        .iter()
        .find(|m| m.text == "hello from python")
        .map(|m| m.sender.clone())
        .unwrap_or_default();
    ensure!(has_label(&h, &from), "sender name {from:?} shown");
    // The rule in force, as viewers see it, heads the chat panel.
    ensure!(has_label(&h, "Chat is open to everyone"), "the chat rule");
    // The health bar shows the receivers' packet loss next to bitrate and RTT.
    wait_for(
        &mut h,
        "the packet loss in the health bar",
        Duration::from_secs(10),
        |h| has_label(h, &app::packet_loss(h.state().state().health.packet_loss)),
    )?;

    // Mute with the M key.
    h.key_press(Key::M);
    wait_for(&mut h, "the mic muted", Duration::from_secs(5), |h| {
        h.state()
            .state()
            .media
            .as_ref()
            .is_some_and(|m| m.mic_muted)
    })?;
    wait_for(
        &mut h,
        "the Unmute button and the muted badge",
        Duration::from_secs(5),
        |h| has_label(h, "Unmute mic (M)") && has_label(h, "Mic muted"),
    )?;

    // Camera off and on again with the V key.
    h.key_press(Key::V);
    wait_for(&mut h, "the camera off", Duration::from_secs(5), |h| {
        h.state()
            .state()
            .media
            .as_ref()
            .is_some_and(|m| m.camera_off)
            && has_label_containing(h, "Camera off — ")
            && has_label(h, "Camera on (V)")
    })?;
    h.key_press(Key::V);
    let uploads = h.state().preview_uploads();
    wait_for(
        &mut h,
        "the camera back with new frames",
        Duration::from_secs(5),
        |h| {
            h.state()
                .state()
                .media
                .as_ref()
                .is_some_and(|m| !m.camera_off)
                && h.state().preview_uploads() > uploads + 2
        },
    )?;

    // Edit the title inline while live.
    click(&mut h, "Edit title");
    h.get_by_role_and_label(Role::TextInput, "Stream title")
        .focus();
    h.step();
    h.key_press_modifiers(egui::Modifiers::COMMAND, Key::A);
    h.step();
    h.get_by_role_and_label(Role::TextInput, "Stream title")
        .type_text("GUI title edited live");
    h.step();
    click(&mut h, "Save");
    wait_for(&mut h, "the new title", Duration::from_secs(10), |h| {
        h.state()
            .state()
            .stream
            .as_ref()
            .is_some_and(|s| s.title == "GUI title edited live")
    })?;
    let public = rt.block_on(Client::new(backend.url()).stream_by_username("gui_creator"))?;
    ensure!(
        public.title == "GUI title edited live",
        "backend title {}",
        public.title
    );

    // Send a chat message from the studio.
    type_into(&mut h, "Chat message", "hi from the studio");
    click(&mut h, "Send");
    wait_for(&mut h, "our chat line", Duration::from_secs(5), |h| {
        h.state()
            .state()
            .chat
            .iter()
            .any(|m| m.own && m.text == "hi from the studio")
    })?;
    let report = rt.block_on(viewer.report())?;
    ensure!(report.joined, "viewer: {report:?}");
    ensure!(
        report.video.frames >= 30,
        "viewer saw {} frames",
        report.video.frames
    );
    ensure!(
        report
            .chat_received
            .iter()
            .any(|m| m.text == "hi from the studio"),
        "viewer chat: {:?}",
        report.chat_received
    );
    ensure!(
        report
            .mute_events
            .iter()
            .any(|e| e.kind == "audio" && e.muted),
        "mute events: {:?}",
        report.mute_events
    );
    // The studio announced its media clock epoch in-band (what `watch` measures latency by).
    let epoch_us = h
        .state()
        .state()
        .media_clock_epoch
        .and_then(|e| e.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_micros().to_string());
    let announced = report
        .participant_attributes
        .get(&user_id)
        .and_then(|a| a.get(streamit_session::watch::CLOCK_EPOCH_ATTRIBUTE));
    ensure!(
        epoch_us.is_some() && announced == epoch_us.as_ref(),
        "studio epoch {epoch_us:?}, viewer saw the creator's attributes {:?}",
        report.participant_attributes
    );

    // Remove the viewer's message from its menu: it leaves the studio's list (and every
    // client is told; crates/session/tests/moderation.rs checks the viewer's side).
    click(&mut h, &format!("Moderate {from}: hello from python"));
    wait_for(&mut h, "the moderation menu", Duration::from_secs(5), |h| {
        has_label(h, "Remove message") && has_label(h, &format!("Ban {from}"))
    })?;
    click(&mut h, "Remove message");
    wait_for(&mut h, "the message removed", Duration::from_secs(5), |h| {
        !has_label(h, "hello from python")
            && has_label(h, &format!("Removed a message from {from}"))
    })?;
    ensure!(
        !h.state()
            .state()
            .chat
            .iter()
            .any(|m| m.text == "hello from python"),
        "still in the session's chat"
    );
    // Our own message has no menu.
    ensure!(
        !has_label_containing(&h, "Moderate You"),
        "the creator's own message is moderatable"
    );

    // End, with confirmation.
    h.key_press(Key::Escape);
    h.step();
    click(&mut h, "End stream");
    wait_for(&mut h, "the confirmation", Duration::from_secs(5), |h| {
        has_label(h, "End the stream?")
    })?;
    ensure!(
        h.state().state().stream_state == StreamState::Live,
        "not ended before confirming"
    );
    click(&mut h, "End stream now");
    // The ending shows at once; the backend's record follows beside the loop.
    wait_for(&mut h, "the summary", Duration::from_secs(30), |h| {
        h.state().screen() == Screen::Ended
            && h.state()
                .state()
                .summary
                .as_ref()
                .is_some_and(|s| s.delivery == streamit_session::SummaryDelivery::Delivered)
    })?;
    h.check_accessibility();
    let summary = h.state().state().summary.clone().context("summary")?;
    let b = summary
        .backend
        .clone()
        .context("the backend's session record")?;
    ensure!(b.peak_viewers >= 1, "backend peak {}", b.peak_viewers);
    ensure!(
        b.chat_messages >= 2,
        "backend chat count {}",
        b.chat_messages
    );
    // The studio's media figures, stored by the backend as reported, and
    // shown from the backend's record.
    let frames_sent = b.frames_sent.context("backend framesSent")?;
    ensure!(
        frames_sent > 0 && frames_sent == summary.frames_sent as i64,
        "backend frames sent {frames_sent} vs the studio's {}",
        summary.frames_sent
    );
    let average_bitrate = b.average_bitrate_bps.context("backend averageBitrateBps")?;
    ensure!(
        average_bitrate > 0 && average_bitrate == summary.average_bitrate_bps as i64,
        "backend average bitrate {average_bitrate} vs the studio's {}",
        summary.average_bitrate_bps
    );
    let frames_dropped = b.frames_dropped.context("backend framesDropped")?;
    let reconnects = b.reconnects.context("backend reconnects")?;
    for label in [
        format!("Peak viewers: {}", b.peak_viewers),
        format!("Chat messages: {}", b.chat_messages),
        format!("Frames dropped: {frames_dropped}"),
        format!("Frames sent: {frames_sent}"),
        format!("Reconnects: {reconnects}"),
        format!("Average bitrate: {}", app::bitrate(average_bitrate as u64)),
    ] {
        ensure!(has_label(&h, &label), "summary row {label:?}");
    }
    ensure!(has_label_containing(&h, "Duration: "));
    ensure!(has_label_containing(&h, "Average bitrate: "));
    // The recording: one file in the folder, named in the summary, holding the stream.
    let rec = summary.recordings.first().context("the recording")?;
    ensure!(
        rec.path.parent() == Some(recordings.path()) && rec.error.is_none(),
        "{rec:?}"
    );
    let on_disk = std::fs::metadata(&rec.path)?.len();
    ensure!(
        on_disk == rec.bytes && rec.duration + Duration::from_secs(2) >= summary.duration,
        "{on_disk} bytes on disk, {rec:?}, live {:?}",
        summary.duration
    );
    ensure!(
        has_label_containing(&h, &format!("to {}", rec.path.display())),
        "the summary names the file"
    );

    click(&mut h, "Start New Stream");
    wait_for(&mut h, "setup again", Duration::from_secs(10), |h| {
        h.state().screen() == Screen::Setup
    })?;
    // The setup form is filled from the backend's settings again.
    wait_for(
        &mut h,
        "the saved title in the form",
        Duration::from_secs(5),
        |h| {
            h.query_all_by_role(Role::TextInput)
                .any(|n| n.value().as_deref() == Some("GUI title edited live"))
        },
    )?;

    // Log out: back to the login screen.
    click(&mut h, "Log out");
    wait_for(
        &mut h,
        "the login screen after logout",
        Duration::from_secs(10),
        |h| h.state().screen() == Screen::Login && h.state().window_title().contains("Sign in"),
    )?;

    rt.block_on(session.request(streamit_session::Command::Shutdown))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    drop(h);
    drop(stack);
    rt.shutdown_timeout(Duration::from_secs(5));
    Ok(())
}

/// Resident memory of this process in KiB (the App runs in it), from /proc.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Pastes `text` into the text field named `field` and steps one frame; returns how long
/// that frame took.
fn paste_into(h: &mut Harness<'_, App>, field: &str, text: &str) -> Duration {
    h.get_by_role_and_label(Role::TextInput, field).focus();
    h.step();
    h.event(egui::Event::Paste(text.to_string()));
    let started = Instant::now();
    h.step();
    started.elapsed()
}

#[test]
fn text_fields_stop_at_the_backend_limits_and_typing_never_triggers_a_shortcut() -> Result<()> {
    use streamit_api::limits::{CHAT_MESSAGE_MAX, DESCRIPTION_MAX};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let stack = Stack::start()?;
    rt.block_on(stack.creator("gui_limits", true))?;
    let session = SessionHandle::spawn_on(rt.handle(), SessionConfig::new(stack.backend.url()));
    let mut h = harness(&session, &rt, stack.backend.url());
    let megabyte = "0123456789abcdef".repeat(65_536);
    // The login form takes no more than a login can be.
    wait_for(&mut h, "the login screen", Duration::from_secs(5), |h| {
        h.state().screen() == Screen::Login
    })?;
    paste_into(&mut h, "Username", &megabyte);
    ensure!(field_chars(&h, "Username") == streamit_api::limits::LOGIN_USERNAME_MAX);
    h.key_press_modifiers(egui::Modifiers::COMMAND, Key::A);
    h.step();
    h.key_press(Key::Delete);
    h.step();
    log_in(&mut h, "gui_limits")?;

    // 1 MB pasted into the title: cut at the backend's limit in the frame that takes it.
    h.run_steps(3);
    let rss_before = rss_kib();
    let took = paste_into(&mut h, "Title", &megabyte);
    ensure!(
        field_chars(&h, "Title") == TITLE_MAX,
        "title of {} characters after the paste",
        field_chars(&h, "Title")
    );
    h.run_steps(20);
    ensure!(field_chars(&h, "Title") == TITLE_MAX, "the title grew");
    let rss_after = rss_kib();
    println!("1 MB paste into the title: frame {took:?}, RSS {rss_before} KiB -> {rss_after} KiB");
    ensure!(
        took < Duration::from_secs(1),
        "the paste frame took {took:?}"
    );
    ensure!(
        rss_after < rss_before + 64 * 1024,
        "memory grew from {rss_before} KiB to {rss_after} KiB"
    );
    ensure!(
        has_label(&h, &format!("{TITLE_MAX} / {TITLE_MAX}")),
        "the counter"
    );
    // The description: the same at its own limit.
    paste_into(&mut h, "Description", &megabyte);
    ensure!(field_chars(&h, "Description") == DESCRIPTION_MAX);
    h.key_press_modifiers(egui::Modifiers::COMMAND, Key::A);
    h.step();
    h.key_press(Key::Delete);
    h.step();
    ensure!(field_chars(&h, "Description") == 0, "description cleared");
    // A short title: no counter.
    h.get_by_role_and_label(Role::TextInput, "Title").focus();
    h.step();
    h.key_press_modifiers(egui::Modifiers::COMMAND, Key::A);
    h.step();
    h.get_by_role_and_label(Role::TextInput, "Title")
        .type_text("Limits");
    h.step();
    ensure!(
        !has_label_containing(&h, &format!("/ {TITLE_MAX}")),
        "a counter for 6 characters"
    );

    wait_for(&mut h, "Go Live ready", Duration::from_secs(10), |h| {
        has_label_containing(h, "Everything is ready")
    })?;
    click(&mut h, "Go Live");
    wait_for(&mut h, "live", Duration::from_secs(40), |h| {
        h.state().state().stream_state == StreamState::Live
    })?;

    // The chat input stops at a chat message's limit.
    paste_into(&mut h, "Chat message", &megabyte);
    ensure!(field_chars(&h, "Chat message") == CHAT_MESSAGE_MAX);
    ensure!(has_label(
        &h,
        &format!("{CHAT_MESSAGE_MAX} / {CHAT_MESSAGE_MAX}")
    ));
    h.key_press_modifiers(egui::Modifiers::COMMAND, Key::A);
    h.step();
    h.key_press(Key::Delete);
    h.step();

    // "Edit title" opens an editor with the keyboard: a "v" typed goes into the title and
    // leaves the camera alone.
    h.key_press(Key::Escape);
    h.step();
    click(&mut h, "Edit title");
    ensure!(
        h.get_by_role_and_label(Role::TextInput, "Stream title")
            .is_focused(),
        "the title editor opened without focus"
    );
    h.key_press(Key::End);
    h.step();
    h.key_press(Key::V);
    h.event(egui::Event::Text("v".into()));
    h.run_steps(5);
    let camera_off = |h: &Harness<'_, App>| {
        h.state()
            .state()
            .media
            .as_ref()
            .is_some_and(|m| m.camera_off)
    };
    ensure!(
        !camera_off(&h),
        "typing v into the title turned the camera off"
    );
    let value = h
        .get_by_role_and_label(Role::TextInput, "Stream title")
        .value()
        .unwrap_or_default();
    ensure!(value == "Limitsv", "the editor holds {value:?}");
    // M / V are shortcuts again once the editor is closed.
    h.key_press(Key::Escape);
    h.step();
    h.step();
    ensure!(
        h.query_by_role_and_label(Role::TextInput, "Stream title")
            .is_none(),
        "editor still open"
    );
    ensure!(!camera_off(&h), "Escape turned the camera off");

    // The end confirmation, with nobody watching.
    click(&mut h, "End stream");
    wait_for(&mut h, "the confirmation", Duration::from_secs(5), |h| {
        has_label(h, "End the stream?")
    })?;
    ensure!(
        has_label(&h, &app::end_notice(0)),
        "the wording for 0 viewers"
    );
    ensure!(app::end_notice(0) == "No one is watching right now.");
    ensure!(app::end_notice(1) == "Your 1 viewer will see the stream end.");
    ensure!(app::end_notice(7) == "All 7 viewers will see the stream end.");
    click(&mut h, "End stream now");
    // The ending shows at once; the backend's record follows beside the loop.
    wait_for(&mut h, "the summary", Duration::from_secs(30), |h| {
        h.state().screen() == Screen::Ended
            && h.state()
                .state()
                .summary
                .as_ref()
                .is_some_and(|s| s.delivery == streamit_session::SummaryDelivery::Delivered)
    })?;

    rt.block_on(session.request(streamit_session::Command::Shutdown))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    drop(h);
    drop(stack);
    rt.shutdown_timeout(Duration::from_secs(5));
    Ok(())
}

#[test]
fn studio_gui_shows_the_reconnect_banner_when_livekit_restarts() -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut stack = Stack::start()?;
    rt.block_on(stack.creator("gui_reconnect", true))?;
    let (lk, backend) = (&mut stack.livekit, &stack.backend);
    let session = SessionHandle::spawn_on(rt.handle(), SessionConfig::new(backend.url()));
    let mut h = harness(&session, &rt, backend.url());
    log_in_and_go_live(&mut h, "gui_reconnect", "Reconnect drill", false)?;
    // Chat was turned off in setup: the live chat panel says so and takes no input.
    ensure!(has_label(&h, "Chat is turned off for this stream."));
    ensure!(has_label(&h, "Chat is off"), "the chat rule");
    ensure!(
        h.state()
            .state()
            .stream
            .as_ref()
            .is_some_and(|s| !s.chat_enabled),
        "chat setting saved"
    );

    lk.kill();
    wait_for(
        &mut h,
        "the reconnecting banner",
        Duration::from_secs(30),
        |h| {
            matches!(
                h.state().state().stream_state,
                StreamState::Reconnecting { .. }
            ) && has_label_containing(h, "— reconnecting (attempt ")
        },
    )?;
    let StreamState::Reconnecting { attempt, max } = h.state().state().stream_state.clone() else {
        bail!("not reconnecting");
    };
    ensure!(
        has_label_containing(&h, &format!("reconnecting (attempt {attempt} of {max})")),
        "banner text"
    );
    ensure!(
        h.state().window_title().contains("Reconnecting"),
        "window title"
    );
    lk.restart()?;
    wait_for(&mut h, "live again", Duration::from_secs(60), |h| {
        h.state().state().stream_state == StreamState::Live
    })?;

    rt.block_on(session.request(streamit_session::Command::Shutdown))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    drop(h);
    drop(stack);
    rt.shutdown_timeout(Duration::from_secs(5));
    Ok(())
}

#[test]
fn go_live_is_disabled_with_the_reason_when_not_approved_or_no_source_works() -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let stack = Stack::start()?;
    let backend = &stack.backend;
    rt.block_on(stack.creator("gui_waiting", false))?;
    rt.block_on(stack.creator("gui_no_camera", true))?;

    // Not approved yet.
    let session = SessionHandle::spawn_on(rt.handle(), SessionConfig::new(backend.url()));
    let mut h = harness(&session, &rt, backend.url());
    log_in(&mut h, "gui_waiting")?;
    type_into(&mut h, "Title", "Will I be approved?");
    wait_for(&mut h, "the approval reason", Duration::from_secs(5), |h| {
        has_label(
            h,
            "Your creator account is waiting for approval by a StreamIt admin.",
        )
    })?;
    click(&mut h, "Go Live");
    h.run_steps(5);
    ensure!(
        h.state().state().stream_state == StreamState::Idle,
        "disabled Go Live did nothing"
    );
    drop(h);
    rt.block_on(session.request(streamit_session::Command::Shutdown))
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    // Approved, but the video source does not work.
    let mut config = SessionConfig::new(backend.url());
    config.video = streamit_session::VideoSourceSpec::Y4m("/nonexistent/camera.y4m".into());
    let session = SessionHandle::spawn_on(rt.handle(), config);
    let mut h = harness(&session, &rt, backend.url());
    log_in(&mut h, "gui_no_camera")?;
    type_into(&mut h, "Title", "No camera today");
    wait_for(&mut h, "the source reason", Duration::from_secs(10), |h| {
        has_label_containing(h, "No working video source")
    })?;
    click(&mut h, "Go Live");
    h.run_steps(5);
    ensure!(
        h.state().state().stream_state == StreamState::Idle,
        "disabled Go Live did nothing"
    );
    h.check_accessibility();

    rt.block_on(session.request(streamit_session::Command::Shutdown))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    drop(h);
    drop(stack);
    rt.shutdown_timeout(Duration::from_secs(5));
    Ok(())
}

#[test]
fn preview_texture_is_updated_in_place_only_when_the_frame_changes() -> Result<()> {
    use streamit_media::{MediaTime, VideoFrame};
    let i420_len = |w: usize, h: usize| w * h + 2 * (w / 2) * (h / 2);
    let ctx = egui::Context::default();
    let mut preview = app::preview::Preview::default();
    let frame = |pts: u64, luma: u8| {
        let mut data = vec![128u8; i420_len(64, 36)];
        data[..64 * 36].fill(luma);
        VideoFrame::from_i420(64, 36, data, MediaTime(pts))
    };
    let a = frame(1_000, 40)?;
    preview.update(&ctx, Some(&a));
    let id = preview
        .texture_id()
        .context("texture after the first frame")?;
    ensure!(preview.uploads == 1);
    // The same frame again (no new pts): nothing converted or uploaded.
    preview.update(&ctx, Some(&a));
    ensure!(preview.uploads == 1);
    // A new frame: the same texture, new pixels.
    preview.update(&ctx, Some(&frame(34_000, 200)?));
    ensure!(preview.uploads == 2);
    ensure!(
        preview.texture_id() == Some(id),
        "texture replaced instead of updated"
    );
    // No frame (e.g. between snapshots): the last picture stays.
    preview.update(&ctx, None);
    ensure!(preview.texture_id() == Some(id));
    Ok(())
}

/// Window sizes in points: the minimum window (1280×800 at a scale factor of 2), 1280×800 at
/// 1.5, 1366×768 at 1.5 (fractional points), a small laptop, 1280×800, 1080p at 1.5, 4K at 2
/// and 4K at 1. egui lays out in points, so these are the layouts the scale factors give;
/// each test runs them at its display's native scale (1, 1.5, 2), where text and widgets
/// round to that scale's pixels. (The harness's zoom, `set_pixels_per_point`, rescales the
/// window for one frame and put the bottom bar in mid-window; the native scale is what a
/// desktop at 150 % gives.) The pixels at scale 2 are also shot under Xvfb by
/// tests/gui_screenshots.rs.
const LAYOUTS: [(f32, f32); 8] = [
    (640.0, 400.0),
    (853.0, 533.0),
    (910.67, 512.0),
    (960.0, 620.0),
    (1280.0, 800.0),
    (1280.0, 720.0),
    (1920.0, 1080.0),
    (3840.0, 2160.0),
];

/// What a layout check looks at: controls and text.
const LAID_OUT: [Role; 6] = [
    Role::Button,
    Role::ComboBox,
    Role::CheckBox,
    Role::TextInput,
    Role::Meter,
    Role::Label,
];

/// At every size of [`LAYOUTS`]: nothing sticks out of the window sideways,
/// no control overlaps another control or a text, and each of `reach` can be scrolled fully
/// into view.
fn check_layouts(h: &mut Harness<'_, App>, screen: &str, reach: &[(Role, &str)]) -> Result<()> {
    for (w, ht) in LAYOUTS {
        h.set_size(Vec2::new(w, ht));
        h.run_steps(4);
        let at = format!("{screen} at {w}×{ht} points");
        let mut nodes: Vec<(Role, String, egui::Rect)> = Vec::new();
        for role in LAID_OUT {
            for n in h.query_all_by_role(role) {
                let r = n.rect();
                let label = n.accesskit_node().label().unwrap_or_default();
                // Unnamed nodes are parts of a named widget (a checkbox's text).
                if r.width() > 0.5 && r.height() > 0.5 && !label.is_empty() {
                    nodes.push((role, label, r));
                }
            }
        }
        ensure!(nodes.len() > 5, "{at}: only {} nodes", nodes.len());
        for (role, label, r) in &nodes {
            // Sideways only: the screens scroll vertically (the reach check below covers that).
            ensure!(
                r.min.x >= -0.5 && r.max.x <= w + 0.5,
                "{at}: {role:?} {label:?} at {r:?} sticks out of the window"
            );
        }
        // The top bar's bottom edge: content scrolled up runs under it, clipped there.
        let top = nodes
            .iter()
            .find(|(_, l, _)| l == "Log out")
            .map_or(0.0, |(_, _, r)| r.max.y + 10.0);
        let in_bar = |r: &egui::Rect| r.max.y <= top;
        // Content scrolled past the window's top edge is clipped there, whatever it meets.
        nodes.retain(|(_, _, r)| r.min.y >= -0.5);
        for (i, (ra, la, a)) in nodes.iter().enumerate() {
            for (rb, lb, b) in &nodes[i + 1..] {
                // Text beside text is the layout's business; a control must not cover any.
                if *ra == Role::Label && *rb == Role::Label {
                    continue;
                }
                // Scrolled content runs on under the setup's fixed Go Live bar, clipped there
                // (AccessKit rects are not clipped): Go Live is checked against the bar's own
                // text only.
                if in_bar(a) != in_bar(b) {
                    continue;
                }
                let bar_text = |l: &str| l.starts_with("Everything is ready");
                if (la == "Go Live" && !bar_text(lb)) || (lb == "Go Live" && !bar_text(la)) {
                    continue;
                }
                let o = a.intersect(*b);
                ensure!(
                    !(o.is_positive() && o.area() > 4.0),
                    "{at}: {ra:?} {la:?} {a:?} overlaps {rb:?} {lb:?} {b:?}"
                );
            }
        }
        for &(role, label) in reach {
            h.get_by_role_and_label(role, label).scroll_to_me();
            h.run_steps(3);
            let r = h.get_by_role_and_label(role, label).rect();
            ensure!(
                r.min.x >= -0.5 && r.min.y >= -0.5 && r.max.x <= w + 0.5 && r.max.y <= ht + 0.5,
                "{at}: {label:?} at {r:?} cannot be brought into view"
            );
        }
        eprintln!("{at}: {} nodes laid out cleanly", nodes.len());
    }
    h.set_size(Vec2::new(1280.0, 800.0));
    h.run_steps(2);
    Ok(())
}

#[test]
fn setup_and_live_screens_fit_every_window_size() -> Result<()> {
    screens_fit_every_window_size(1.0)
}

/// A 150 % desktop: fractional pixels per point round text and widgets differently.
#[test]
fn setup_and_live_screens_fit_every_window_size_at_scale_1_5() -> Result<()> {
    screens_fit_every_window_size(1.5)
}

/// A 200 % (HiDPI) desktop.
#[test]
fn setup_and_live_screens_fit_every_window_size_at_scale_2() -> Result<()> {
    screens_fit_every_window_size(2.0)
}

/// Both screens at every size in [`LAYOUTS`] (points), on a display of `scale` pixels per
/// point.
fn screens_fit_every_window_size(scale: f32) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let stack = Stack::start()?;
    rt.block_on(stack.creator("gui_layout", true))?;
    let session = SessionHandle::spawn_on(rt.handle(), SessionConfig::new(stack.backend.url()));
    let mut h = harness_at_scale(&session, &rt, stack.backend.url(), scale);
    log_in(&mut h, "gui_layout")?;
    let ppp = h.ctx.pixels_per_point();
    ensure!(
        (ppp - scale).abs() < 1e-3,
        "laid out at {ppp} pixels per point"
    );
    type_into(
        &mut h,
        "Title",
        "A title long enough to need some room in the window, really",
    );
    wait_for(&mut h, "Go Live ready", Duration::from_secs(10), |h| {
        has_label_containing(h, "Everything is ready")
    })?;
    check_layouts(
        &mut h,
        "setup",
        &[
            (Role::Button, "Go Live"),
            (Role::Button, "Save settings"),
            (Role::ComboBox, "Camera"),
            (Role::ComboBox, "Microphone"),
        ],
    )?;
    click(&mut h, "Go Live");
    wait_for(&mut h, "live", Duration::from_secs(40), |h| {
        h.state().state().stream_state == StreamState::Live
    })?;
    h.key_press(Key::M);
    wait_for(&mut h, "the muted badge", Duration::from_secs(5), |h| {
        has_label(h, "Mic muted")
    })?;
    check_layouts(
        &mut h,
        "live",
        &[
            (Role::Label, "Mic muted"),
            (Role::Button, "Unmute mic (M)"),
            (Role::Button, "Camera off (V)"),
            (Role::Button, "End stream"),
            (Role::TextInput, "Chat message"),
            // Last: the next size starts scrolled to the top.
            (Role::Button, "Edit title"),
        ],
    )?;
    rt.block_on(session.request(streamit_session::Command::Shutdown))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    drop(h);
    drop(stack);
    rt.shutdown_timeout(Duration::from_secs(5));
    Ok(())
}
