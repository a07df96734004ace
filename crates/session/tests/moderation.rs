//! Chat identity, moderation and slow mode, end to end: the session against the real backend
//! binary and a real LiveKit server, with the official Python SDK viewer chatting and
//! recording the moderation events it receives.

mod common;

use common::wait_for;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use streamit_api::client::Client;
use streamit_api::room::{ATTR_ROLE, MODERATION_TOPIC, ROLE_CREATOR, ROLE_GUEST};
use streamit_api::{ModerationEvent, ViewerTokenRequest};
use streamit_session::{ChatRole, Command, ErrorKind, SessionConfig, SessionHandle, StreamSetup};
use streamit_testkit::{
    Backend, Grants, Stack, TEST_PASSWORD, Viewer, ViewerOptions, ViewerReport,
};

async fn live_session(backend: &Backend, username: &str, slow_mode: bool) -> Result<SessionHandle> {
    let mut config = SessionConfig::new(backend.url());
    config.connect_timeout = Duration::from_secs(8);
    let s = SessionHandle::spawn(config);
    s.request(Command::Login {
        username: username.into(),
        password: TEST_PASSWORD.into(),
    })
    .await
    .map_err(|e| anyhow::anyhow!("login: {e}"))?;
    s.request(Command::SetupStream(StreamSetup {
        title: "moderation".into(),
        chat_enabled: Some(true),
        chat_delayed: Some(slow_mode),
        chat_followers_only: Some(false),
        ..Default::default()
    }))
    .await
    .map_err(|e| anyhow::anyhow!("setup: {e}"))?;
    s.request(Command::GoLive)
        .await
        .map_err(|e| anyhow::anyhow!("go live: {e}"))?;
    Ok(s)
}

/// The moderation events (parsed) the viewer received, with their sender.
fn moderation_events(report: &ViewerReport) -> Vec<(Option<String>, ModerationEvent)> {
    report
        .data_received
        .iter()
        .filter(|d| d.topic.as_deref() == Some(MODERATION_TOPIC))
        .filter_map(|d| {
            let ev = serde_json::from_str(d.text.as_deref()?).ok()?;
            Some((d.from.clone(), ev))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_shows_name_and_role_and_remove_reaches_the_viewer() -> Result<()> {
    let stack = Stack::start()?;
    let lk = &stack.livekit;
    let room = stack.creator("mod_remove", true).await?.user.id;
    let s = live_session(&stack.backend, "mod_remove", false).await?;

    // Another participant with the creator's role (e.g. a second device): not a viewer, and
    // its messages cannot be moderated.
    let mut o = ViewerOptions::new(
        lk.ws_url(),
        lk.token_with_attributes(
            "agent-1",
            "Studio helper",
            &room,
            Grants::Viewer,
            &[(ATTR_ROLE, ROLE_CREATOR)],
        )?,
    );
    o.duration = Duration::from_secs(30);
    o.send_chat = vec!["helper here".into()];
    o.until_data = Some(1);
    let agent = Viewer::spawn(o)?;
    // A guest says hello and stays until a moderation event arrives.
    let mut o = ViewerOptions::new(
        lk.ws_url(),
        lk.token_with_attributes(
            "guest-bob",
            "Bob",
            &room,
            Grants::Viewer,
            &[(ATTR_ROLE, ROLE_GUEST)],
        )?,
    );
    o.duration = Duration::from_secs(30);
    o.send_chat = vec!["hello from a guest".into()];
    o.until_data = Some(1);
    let guest = Viewer::spawn(o)?;

    let st = wait_for(&s, "the guest's message", Duration::from_secs(20), |st| {
        st.chat.iter().any(|c| c.text == "hello from a guest")
    })
    .await?;
    let entry = st
        .chat
        .iter()
        .find(|c| c.text == "hello from a guest")
        .context("entry")?
        .clone();
    ensure!(
        entry.sender == "Bob" && entry.identity == "guest-bob" && entry.role == ChatRole::Guest,
        "{entry:?}"
    );
    ensure!(!entry.own && !entry.id.is_empty(), "{entry:?}");
    // The helper's message shows its role: the session knows it as a creator now (asking
    // before it joined would time out an unknown identity, which is allowed).
    wait_for(&s, "the helper's message", Duration::from_secs(20), |st| {
        st.chat
            .iter()
            .any(|c| c.text == "helper here" && c.role == ChatRole::Creator)
    })
    .await?;

    // Moderating the creator's role, or our own message, is refused.
    let refused = s
        .request(Command::TimeoutViewer {
            identity: "agent-1".into(),
            duration: Duration::from_secs(300),
        })
        .await;
    ensure!(
        refused
            .as_ref()
            .is_err_and(|e| e.kind == ErrorKind::Invalid),
        "{refused:?}"
    );
    s.request(Command::SendChat("welcome, Bob".into())).await?;
    let own = s
        .state()
        .chat
        .iter()
        .find(|c| c.own)
        .cloned()
        .context("own entry")?;
    ensure!(own.role == ChatRole::Creator, "{own:?}");
    let refused = s
        .request(Command::RemoveMessage {
            message_id: own.id.clone(),
        })
        .await;
    ensure!(refused.is_err(), "removing our own message: {refused:?}");

    // Remove: gone from the studio at once, and every client is told.
    s.request(Command::RemoveMessage {
        message_id: entry.id.clone(),
    })
    .await?;
    let st = s.state();
    ensure!(
        !st.chat.iter().any(|c| c.id == entry.id),
        "still listed: {:?}",
        st.chat
    );
    ensure!(
        st.moderation
            .last()
            .is_some_and(|n| n.ok && n.message == "Removed a message from Bob"),
        "{:?}",
        st.moderation
    );

    let report = guest.report().await?;
    ensure!(
        report.chat_sent_ids.first() == Some(&entry.id),
        "the studio's id {:?} is not the text stream id the guest sent {:?}",
        entry.id,
        report.chat_sent_ids
    );
    let events = moderation_events(&report);
    let creator_identity = st.account.as_ref().context("account")?.user_id.clone();
    ensure!(
        events.contains(&(
            Some(creator_identity),
            ModerationEvent::DeleteMessage {
                message_id: entry.id.clone()
            }
        )),
        "moderation events at the guest: {events:?} (all data: {:?})",
        report.data_received
    );
    let agent_report = agent.report().await?;
    ensure!(
        report.participants_seen.iter().any(|p| p == "agent-1"),
        "the agent and the guest were not in the room together: {:?}",
        report.participants_seen
    );
    ensure!(agent_report.joined, "agent: {:?}", agent_report.error);
    // Viewers are viewers and guests: the creator-role participant was never counted.
    ensure!(
        s.state().peak_viewers == 1,
        "peak viewers {} (the creator-role participant counted?)",
        s.state().peak_viewers
    );
    s.request(Command::EndStream).await?;
    s.request(Command::Shutdown).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ban_hides_the_viewers_messages_and_the_backend_removes_them() -> Result<()> {
    let stack = Stack::start()?;
    let creator = stack.creator("mod_ban", true).await?;
    let room = creator.user.id.clone();
    let s = live_session(&stack.backend, "mod_ban", false).await?;
    let api = Client::new(stack.backend.url());
    let grant = api
        .viewer_token(&ViewerTokenRequest {
            host_id: room.clone(),
            guest_name: Some("Eve".into()),
        })
        .await?;
    let mut o = ViewerOptions::new(grant.ws_url.clone(), grant.token.clone());
    // Stays until the backend removes it (or the test gives up).
    o.duration = Duration::from_secs(30);
    o.send_chat = vec!["spam one".into(), "spam two".into()];
    let eve = Viewer::spawn(o)?;
    wait_for(&s, "both messages", Duration::from_secs(20), |st| {
        st.chat
            .iter()
            .filter(|c| c.identity == grant.identity)
            .count()
            == 2
    })
    .await?;

    s.request(Command::BanViewer {
        identity: grant.identity.clone(),
    })
    .await?;
    ensure!(
        !s.state().chat.iter().any(|c| c.identity == grant.identity),
        "the banned viewer's messages are still listed"
    );
    let st = wait_for(&s, "the ban's outcome", Duration::from_secs(15), |st| {
        !st.moderation.is_empty()
    })
    .await?;
    let notice = st.moderation.last().context("notice")?;
    ensure!(notice.ok && notice.message == "Banned Eve", "{notice:?}");
    let report = eve.report().await?;
    ensure!(
        moderation_events(&report).iter().any(|(_, e)| *e
            == ModerationEvent::DeleteMessagesFrom {
                identity: grant.identity.clone()
            }),
        "{:?}",
        report.data_received
    );
    ensure!(
        report.disconnect_reason.is_some() && report.duration_ms < 29_000.0,
        "the banned viewer was not removed: {:?} after {} ms",
        report.disconnect_reason,
        report.duration_ms
    );
    let entries = creator.client.moderation().await?;
    ensure!(
        entries
            .iter()
            .any(|e| e.identity == grant.identity && e.kind == "ban"),
        "{entries:?}"
    );
    s.request(Command::EndStream).await?;
    s.request(Command::Shutdown).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_mode_hides_a_quick_second_message_and_times_the_viewer_out() -> Result<()> {
    let stack = Stack::start()?;
    let creator = stack.creator("mod_slow", true).await?;
    let room = creator.user.id.clone();
    let s = live_session(&stack.backend, "mod_slow", true).await?;
    let grant = Client::new(stack.backend.url())
        .viewer_token(&ViewerTokenRequest {
            host_id: room.clone(),
            guest_name: Some("Quick Quinn".into()),
        })
        .await?;
    let mut o = ViewerOptions::new(grant.ws_url.clone(), grant.token.clone());
    o.duration = Duration::from_secs(30);
    // Two messages 0.3 s apart: the second is within the 10 s interval.
    o.send_chat = vec!["first".into(), "too soon".into()];
    o.until_data = Some(1);
    let quinn = Viewer::spawn(o)?;

    let st = wait_for(&s, "slow mode's outcome", Duration::from_secs(25), |st| {
        !st.moderation.is_empty()
    })
    .await?;
    let notice = st.moderation.last().context("notice")?;
    ensure!(
        notice.ok
            && notice.message
                == "Slow mode: hid a message from Quick Quinn, who may chat again in 10 s",
        "{notice:?}"
    );
    let report = quinn.report().await?;
    ensure!(report.chat_sent_ids.len() == 2, "{report:?}");
    let st = s.state();
    let texts: Vec<&str> = st
        .chat
        .iter()
        .filter(|c| c.identity == grant.identity)
        .map(|c| c.text.as_str())
        .collect();
    ensure!(texts == ["first"], "listed: {texts:?}");
    ensure!(
        moderation_events(&report).iter().any(|(_, e)| *e
            == ModerationEvent::DeleteMessage {
                message_id: report.chat_sent_ids[1].clone()
            }),
        "{:?}",
        report.data_received
    );
    // The backend holds the timeout (it revokes canPublishData until it expires).
    let entries = creator.client.moderation().await?;
    ensure!(
        entries.iter().any(|e| e.identity == grant.identity
            && e.kind == "timeout"
            && e.reason.as_deref() == Some("slow mode")),
        "{entries:?}"
    );
    s.request(Command::EndStream).await?;
    let summary = s.state().summary.context("summary")?;
    ensure!(
        summary.chat_messages == 1,
        "hidden messages are not counted: {}",
        summary.chat_messages
    );
    s.request(Command::Shutdown).await?;
    Ok(())
}
