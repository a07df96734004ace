//! The session's state machine against the real backend binary and a real LiveKit server:
//! the happy path with every transition, and the failure paths (backend refuses, LiveKit
//! unreachable, media file missing, stale token, LiveKit dies mid-stream).

mod common;

use common::wait_for;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use streamit_api::ViewerTokenRequest;
use streamit_api::client::Client;
use streamit_session::{
    Command, ErrorKind, SessionConfig, SessionHandle, StreamSetup, StreamState, VideoSourceSpec,
};
use streamit_testkit::{Backend, Stack, TEST_PASSWORD, Viewer, ViewerOptions};

const PASSWORD: &str = TEST_PASSWORD;

async fn logged_in_session(backend: &Backend, username: &str) -> Result<SessionHandle> {
    let mut config = SessionConfig::new(backend.url());
    config.connect_timeout = Duration::from_secs(8);
    let s = SessionHandle::spawn(config);
    s.request(Command::Login {
        username: username.into(),
        password: PASSWORD.into(),
    })
    .await
    .map_err(|e| anyhow::anyhow!("login: {e}"))?;
    s.request(Command::SetupStream(StreamSetup {
        title: "state machine".into(),
        ..Default::default()
    }))
    .await
    .map_err(|e| anyhow::anyhow!("setup: {e}"))?;
    Ok(s)
}

async fn is_live(backend: &Backend, username: &str) -> Result<bool> {
    Ok(Client::new(backend.url())
        .stream_by_username(username)
        .await?
        .is_live)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_live_chat_mute_edit_and_end_walk_every_state() -> Result<()> {
    let stack = Stack::start()?;
    let backend = &stack.backend;
    let user_id = stack.creator("sm_happy", true).await?.user.id;
    let s = logged_in_session(backend, "sm_happy").await?;
    let st = s.state();
    ensure!(
        st.account
            .as_ref()
            .is_some_and(|a| a.approved && a.is_creator)
    );
    ensure!(
        st.stream
            .as_ref()
            .is_some_and(|i| i.title == "state machine")
    );
    ensure!(st.stream_state == StreamState::Idle);

    // Preview and mic meter before going live.
    s.request(Command::StartPreview).await?;
    let st = wait_for(&s, "preview + meter", Duration::from_secs(5), |st| {
        st.preview.is_some() && st.mic_level > 0.0
    })
    .await?;
    let preview = st.preview.context("preview")?;
    // the default source: the 720p30 test pattern
    ensure!((preview.width, preview.height) == (1280, 720));
    ensure!(streamit_media::read_pattern_code(&preview).is_some());

    // Record every state the session passes through.
    let mut rx = s.subscribe();
    let seen = tokio::spawn(async move {
        let mut seen: Vec<StreamState> = Vec::new();
        while rx.changed().await.is_ok() {
            let st = rx.borrow_and_update().stream_state.clone();
            if seen.last() != Some(&st) {
                seen.push(st);
            }
        }
        seen
    });

    s.request(Command::GoLive).await?;
    ensure!(s.state().stream_state == StreamState::Live);
    ensure!(s.state().session_id.is_some());
    ensure!(is_live(backend, "sm_happy").await?);

    let grant = Client::new(backend.url())
        .viewer_token(&ViewerTokenRequest {
            host_id: user_id,
            guest_name: Some("Guest Tester".into()),
        })
        .await?;
    let mut opts = ViewerOptions::new(grant.ws_url, grant.token);
    opts.duration = Duration::from_secs(6);
    opts.until_frames = Some(60);
    opts.until_chat = Some(1);
    opts.send_chat = vec!["hi studio".into()];
    let viewer = Viewer::spawn(opts)?;

    wait_for(&s, "a viewer", Duration::from_secs(10), |st| {
        st.viewers == 1
    })
    .await?;
    wait_for(&s, "the viewer's chat", Duration::from_secs(10), |st| {
        st.chat.iter().any(|c| c.text == "hi studio" && !c.own)
    })
    .await?;
    s.request(Command::SendChat("hello viewer".into())).await?;
    s.request(Command::EditTitle {
        title: "renamed while live".into(),
        description: None,
    })
    .await?;
    ensure!(
        s.state()
            .stream
            .is_some_and(|i| i.title == "renamed while live")
    );
    s.request(Command::ToggleMic).await?;
    ensure!(s.state().media.is_some_and(|m| m.mic_muted));
    s.request(Command::ToggleMic).await?;
    // Switching sources on air is refused, with a reason.
    let refused = s
        .request(Command::SelectVideoSource(VideoSourceSpec::default()))
        .await;
    ensure!(refused.is_err_and(|e| e.kind == ErrorKind::Invalid));

    let report = viewer.report().await?;
    ensure!(
        report.video.frames >= 60,
        "viewer frames {}",
        report.video.frames
    );
    ensure!(
        report
            .chat_received
            .iter()
            .any(|c| c.text == "hello viewer"),
        "viewer chat {:?}",
        report.chat_received
    );
    let health = s.state().health;
    ensure!(
        health.frames_sent > 0 && health.audio_packets_sent > 0,
        "{health:?}"
    );

    s.request(Command::EndStream).await?;
    let st = s.state();
    ensure!(st.stream_state == StreamState::Ended);
    let summary = st.summary.context("summary")?;
    let backend_summary = summary.backend.clone().context("backend summary")?;
    ensure!(backend_summary.chat_messages == 2, "{backend_summary:?}");
    // The studio's media figures, stored by the backend as reported.
    ensure!(
        backend_summary.frames_sent.is_some_and(|n| n > 0)
            && backend_summary.frames_sent == Some(summary.frames_sent as i64),
        "backend frames sent {:?} vs the studio's {}",
        backend_summary.frames_sent,
        summary.frames_sent
    );
    ensure!(
        summary.average_bitrate_bps > 0
            && backend_summary.average_bitrate_bps == Some(summary.average_bitrate_bps as i64),
        "backend average bitrate {:?} vs the studio's {}",
        backend_summary.average_bitrate_bps,
        summary.average_bitrate_bps
    );
    ensure!(
        backend_summary.frames_dropped == Some(summary.frames_dropped as i64)
            && backend_summary.reconnects == Some(i64::from(summary.reconnects)),
        "{backend_summary:?} vs {summary:?}"
    );
    ensure!(summary.peak_viewers == 1 && summary.chat_messages == 2);
    ensure!(!is_live(backend, "sm_happy").await?);

    s.request(Command::Reset).await?;
    ensure!(s.state().stream_state == StreamState::Idle && s.state().summary.is_none());
    s.request(Command::Shutdown).await?;
    let seen: Vec<StreamState> = seen
        .await?
        .into_iter()
        .skip_while(|st| *st == StreamState::Idle)
        .collect();
    ensure!(
        seen.starts_with(&[
            StreamState::Connecting,
            StreamState::Live,
            StreamState::Ended,
            StreamState::Idle
        ]),
        "transitions {seen:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_unreachable_livekit_fail_with_clear_reasons() -> Result<()> {
    let mut stack = Stack::start()?;
    stack.creator("sm_pending", false).await?;
    stack.creator("sm_ready", true).await?;
    let (lk, backend) = (&mut stack.livekit, &stack.backend);

    // Backend refuses: creator not approved → Failed, an auth error, nothing live.
    let s = SessionHandle::spawn(SessionConfig::new(backend.url()));
    s.request(Command::Login {
        username: "sm_pending".into(),
        password: PASSWORD.into(),
    })
    .await?;
    ensure!(s.state().account.is_some_and(|a| !a.approved));
    let e = s
        .request(Command::GoLive)
        .await
        .err()
        .context("go-live allowed")?;
    ensure!(e.kind == ErrorKind::Auth, "{e:?}");
    ensure!(e.message.contains("not approved"), "{}", e.message);
    ensure!(
        matches!(&s.state().stream_state, StreamState::Failed { reason } if reason.contains("not approved"))
    );
    s.request(Command::Shutdown).await?;

    // A missing media file is a device error before the backend is touched.
    let s = logged_in_session(backend, "sm_ready").await?;
    s.request(Command::SelectVideoSource(VideoSourceSpec::Y4m(
        "/nonexistent/clip.y4m".into(),
    )))
    .await?;
    let e = s
        .request(Command::GoLive)
        .await
        .err()
        .context("go-live allowed")?;
    ensure!(e.kind == ErrorKind::Device, "{e:?}");
    ensure!(e.message.contains("clip.y4m"), "{}", e.message);
    ensure!(!is_live(backend, "sm_ready").await?);
    s.request(Command::SelectVideoSource(VideoSourceSpec::default()))
        .await?;

    // LiveKit unreachable: the backend hands out a URL nobody answers → Failed with a
    // network reason, and the session takes the backend out of "live" again.
    lk.kill();
    let e = s
        .request(Command::GoLive)
        .await
        .err()
        .context("go-live allowed")?;
    ensure!(e.kind == ErrorKind::Network, "{e:?}");
    let st = s.state();
    let StreamState::Failed { reason } = &st.stream_state else {
        anyhow::bail!("state {:?}", st.stream_state);
    };
    ensure!(reason.contains("LiveKit"), "reason: {reason}");
    ensure!(!is_live(backend, "sm_ready").await?);
    s.request(Command::Shutdown).await?;

    // A stale token: an auth error and the login screen.
    let s = SessionHandle::spawn(SessionConfig::new(backend.url()));
    let e = s
        .request(Command::UseToken("not-a-session-token".into()))
        .await
        .err()
        .context("bogus token accepted")?;
    ensure!(e.kind == ErrorKind::Auth, "{e:?}");
    ensure!(s.state().account.is_none() && s.token().is_none());
    s.request(Command::Shutdown).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn livekit_dying_mid_stream_leaves_live_and_the_backend_is_told() -> Result<()> {
    let mut stack = Stack::start()?;
    stack.creator("sm_crash", true).await?;
    let (lk, backend) = (&mut stack.livekit, &stack.backend);
    let s = logged_in_session(backend, "sm_crash").await?;
    s.request(Command::GoLive).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    lk.kill();
    let st = wait_for(&s, "leaving Live", Duration::from_secs(20), |st| {
        !matches!(st.stream_state, StreamState::Live)
    })
    .await?;
    ensure!(
        matches!(
            st.stream_state,
            StreamState::Reconnecting { .. } | StreamState::Failed { .. }
        ),
        "{:?}",
        st.stream_state
    );
    // Whatever the transport tries, a dead server ends in Failed, and the backend is
    // told the stream is over.
    let st = wait_for(&s, "Failed", Duration::from_secs(60), |st| {
        matches!(st.stream_state, StreamState::Failed { .. })
    })
    .await?;
    ensure!(st.summary.is_some(), "no summary after a failure");
    // The figures go to the backend beside the loop; then the backend has it ended.
    wait_for(&s, "the summary delivered", Duration::from_secs(20), |st| {
        st.summary
            .as_ref()
            .is_some_and(|s| s.delivery != streamit_session::SummaryDelivery::Pending)
    })
    .await?;
    ensure!(!is_live(backend, "sm_crash").await?);
    s.request(Command::Shutdown).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_lost_mid_stream_fails_as_a_device_error_and_ends_the_stream() -> Result<()> {
    let stack = Stack::start()?;
    let backend = &stack.backend;
    stack.creator("sm_device", true).await?;
    let dir = tempfile::tempdir()?;
    let clip = dir.path().join("clip.y4m");
    let frames = (0..30)
        .map(|n| {
            streamit_media::pattern::generate_pattern(
                320,
                180,
                n,
                streamit_media::MediaTime(n as u64 * 33_333),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    streamit_media::source::write_y4m(&clip, &frames, 30)?;

    let s = logged_in_session(backend, "sm_device").await?;
    s.request(Command::SelectVideoSource(VideoSourceSpec::Y4m(
        clip.clone(),
    )))
    .await?;
    s.request(Command::GoLive).await?;
    ensure!(is_live(backend, "sm_device").await?);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ensure!(s.state().health.frames_sent > 0, "{:?}", s.state().health);

    // The "device" goes away: the file loses its frames while being read.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&clip)?
        .set_len(10)?;
    let st = wait_for(&s, "Failed", Duration::from_secs(10), |st| {
        matches!(st.stream_state, StreamState::Failed { .. })
    })
    .await?;
    let err = st.last_error().context("no error shown")?;
    ensure!(err.kind == ErrorKind::Device, "{err:?}");
    ensure!(st.summary.is_some());
    // The figures go to the backend beside the loop; then the backend has it ended.
    wait_for(&s, "the summary delivered", Duration::from_secs(20), |st| {
        st.summary
            .as_ref()
            .is_some_and(|s| s.delivery != streamit_session::SummaryDelivery::Pending)
    })
    .await?;
    ensure!(!is_live(backend, "sm_device").await?);
    s.request(Command::Shutdown).await?;
    Ok(())
}
