//! The backend with a real livekit-server and the official Python SDK viewer:
//! tokens the backend mints are honoured (and a tampered one refused) by
//! LiveKit, and LiveKit's own signed webhooks drive the live viewer count,
//! the session's peak and the offline switch when the room closes.

use crate::common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine;
use common::eventually;
use streamit_api::client::Client;
use streamit_api::*;
use streamit_testkit::{Backend, BackendOptions, LiveKit, Viewer, ViewerOptions};

fn bin() -> Option<PathBuf> {
    Some(PathBuf::from(env!("CARGO_BIN_EXE_streamit-server")))
}

async fn account(backend: &Backend, username: &str, role: Role) -> (Client, AuthResponse) {
    let api = Client::new(backend.url());
    let auth = api
        .register(&RegisterRequest {
            username: username.into(),
            password: format!("{username}-password"),
            display_name: Some(format!("{username} shown")),
            role: Some(role),
        })
        .await
        .expect("register");
    (api.with_token(auth.token.clone()), auth)
}

/// Flips `canPublish` to true in a token's payload and keeps the old signature.
fn tamper_publish(token: &str) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let mut claims: serde_json::Value =
        serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["video"]["canPublish"], false);
    claims["video"]["canPublish"] = serde_json::Value::Bool(true);
    format!(
        "{}.{}.{}",
        parts[0],
        b64.encode(serde_json::to_vec(&claims).unwrap()),
        parts[2]
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn livekit_honours_backend_tokens_and_its_webhooks_drive_the_stats() {
    // Close empty rooms quickly so room_finished arrives within the test.
    let (lk, backend) = common::webhooked(
        Some("room:\n  empty_timeout: 2\n  departure_timeout: 2"),
        &[],
    );

    let (creator, c_auth) = account(&backend, "streamer", Role::Creator).await;
    backend.cli(&["user", "approve", "streamer"]).unwrap();
    let (bob, b_auth) = account(&backend, "bob", Role::Viewer).await;
    creator
        .setup_stream(&SetupStreamRequest {
            title: "Live test".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let live = creator.go_live().await.unwrap();
    assert_eq!(live.ws_url, lk.ws_url());
    let room = c_auth.user.id.clone();

    // The creator's token publishes (the Python SDK stands in for the studio).
    let mut as_creator = ViewerOptions::new(live.ws_url.clone(), live.token.clone());
    as_creator.try_publish = true;
    // Stays past the viewers' leave and the checks that need the room open, with room to spare on a loaded machine.
    as_creator.duration = Duration::from_secs(20);
    let creator_run = Viewer::spawn(as_creator).unwrap();

    // Two viewers: bob (logged in) and a guest who also tries to publish.
    let bob_token = bob
        .viewer_token(&ViewerTokenRequest {
            host_id: room.clone(),
            guest_name: None,
        })
        .await
        .unwrap();
    let guest_token = Client::new(backend.url())
        .viewer_token(&ViewerTokenRequest {
            host_id: room.clone(),
            guest_name: Some("Gina".into()),
        })
        .await
        .unwrap();
    let mut as_bob = ViewerOptions::new(bob_token.ws_url.clone(), bob_token.token.clone());
    as_bob.duration = Duration::from_secs(6);
    let mut as_guest = ViewerOptions::new(guest_token.ws_url.clone(), guest_token.token.clone());
    as_guest.duration = Duration::from_secs(6);
    as_guest.try_publish = true;
    let bob_run = Viewer::spawn(as_bob).unwrap();
    let guest_run = Viewer::spawn(as_guest).unwrap();

    // LiveKit's participant_joined webhooks move the live count to 2 (the creator is not counted).
    let public = Client::new(backend.url());
    eventually("viewerCount == 2", Duration::from_secs(30), || async {
        let s = public.stream_by_username("streamer").await.ok()?;
        (s.viewer_count == 2).then_some(())
    })
    .await;

    let (bob_report, guest_report) = (
        bob_run.report().await.unwrap(),
        guest_run.report().await.unwrap(),
    );
    assert!(bob_report.joined, "bob: {:?}", bob_report.error);
    assert_eq!(
        bob_report.identity.as_deref(),
        Some(b_auth.user.id.as_str())
    );
    assert!(guest_report.joined, "guest: {:?}", guest_report.error);
    assert_eq!(
        guest_report.identity.as_deref(),
        Some(guest_token.identity.as_str())
    );
    assert_eq!(
        guest_report.publish.ok,
        Some(false),
        "a viewer token could publish"
    );
    assert!(
        bob_report.participants_seen.contains(&room),
        "bob never saw the creator: {:?}",
        bob_report.participants_seen
    );

    // …and participant_left brings it back to 0, keeping the peak.
    eventually("viewerCount == 0", Duration::from_secs(30), || async {
        let s = public.stream_by_username("streamer").await.ok()?;
        (s.viewer_count == 0).then_some(())
    })
    .await;
    let session = creator.latest_session().await.unwrap();
    assert_eq!(session.id, live.session_id);
    assert_eq!(
        (session.peak_viewers, session.current_viewers),
        (2, 0),
        "{session:?}"
    );
    assert!(session.ended_at.is_none());

    // A viewer token whose payload was edited to allow publishing is refused by LiveKit.
    let mut forged = ViewerOptions::new(bob_token.ws_url.clone(), tamper_publish(&bob_token.token));
    forged.duration = Duration::from_secs(1);
    let forged_report = Viewer::run(forged).await.unwrap();
    assert!(!forged_report.joined, "LiveKit accepted a tampered token");

    let creator_report = creator_run.report().await.unwrap();
    assert!(creator_report.joined, "creator: {:?}", creator_report.error);
    assert_eq!(creator_report.identity.as_deref(), Some(room.as_str()));
    assert_eq!(
        creator_report.publish.ok,
        Some(true),
        "creator publish: {:?}",
        creator_report.publish.error
    );

    // The studio never calls end-stream: LiveKit's room_finished takes the stream offline.
    eventually(
        "stream offline after room_finished",
        Duration::from_secs(40),
        || async {
            let s = public.stream_by_username("streamer").await.ok()?;
            (!s.is_live).then_some(())
        },
    )
    .await;
    let ended = creator.latest_session().await.unwrap();
    assert_eq!(
        ended.end_reason.as_deref(),
        Some("room-finished"),
        "{ended:?}"
    );
    assert!(ended.ended_at.is_some());
    assert_eq!(ended.peak_viewers, 2);
    assert!(public.live_streams().await.unwrap().is_empty());
    assert!(
        !backend.log_tail(400).contains(lk.api_secret()),
        "the LiveKit secret was logged"
    );
}

/// `STREAMIT_TOKEN_TTL` is honoured, and LiveKit refuses a backend token once it has expired
/// (LiveKit allows a minute of clock skew, so this test waits just over a minute).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_backend_token_is_refused_by_livekit() {
    let lk = LiveKit::start().unwrap();
    let backend = Backend::start(BackendOptions {
        livekit: Some(&lk),
        bin: bin(),
        env: vec![("STREAMIT_TOKEN_TTL".into(), "2s".into())],
        ..Default::default()
    })
    .unwrap();
    let (creator, c_auth) = account(&backend, "shortlived", Role::Creator).await;
    backend.cli(&["user", "approve", "shortlived"]).unwrap();
    creator
        .setup_stream(&SetupStreamRequest {
            title: "Short".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let live = creator.go_live().await.unwrap();
    let guest = Client::new(backend.url())
        .viewer_token(&ViewerTokenRequest {
            host_id: c_auth.user.id.clone(),
            guest_name: None,
        })
        .await
        .unwrap();
    let verifier =
        livekit_api::access_token::TokenVerifier::with_api_key(lk.api_key(), lk.api_secret());
    for token in [&live.token, &guest.token] {
        let claims = verifier.verify(token).unwrap();
        assert_eq!(claims.exp - claims.nbf, 2, "TTL from STREAMIT_TOKEN_TTL");
    }

    // Past expiry plus LiveKit's one-minute leeway.
    tokio::time::sleep(Duration::from_secs(2 + 62)).await;
    let mut expired = ViewerOptions::new(guest.ws_url.clone(), guest.token.clone());
    expired.duration = Duration::from_secs(1);
    // Control: a token minted now by the same backend joins.
    let fresh = Client::new(backend.url())
        .viewer_token(&ViewerTokenRequest {
            host_id: c_auth.user.id.clone(),
            guest_name: None,
        })
        .await
        .unwrap();
    let mut control = ViewerOptions::new(fresh.ws_url.clone(), fresh.token.clone());
    control.duration = Duration::from_secs(1);
    let (expired, control) = tokio::join!(Viewer::run(expired), Viewer::run(control));
    let (expired, control) = (expired.unwrap(), control.unwrap());
    assert!(
        control.joined,
        "a fresh token was refused: {:?}",
        control.error
    );
    assert!(!expired.joined, "LiveKit accepted an expired backend token");
}

/// Go-live creates the LiveKit room with an empty timeout: a studio that never connects
/// still ends in LiveKit's room_finished, and the stream goes offline without end-stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_whose_studio_never_connects_goes_offline() {
    let (_lk, backend) = common::webhooked(None, &[("STREAMIT_ROOM_EMPTY_TIMEOUT", "2s")]);
    let (creator, _) = account(&backend, "ghoststudio", Role::Creator).await;
    backend.cli(&["user", "approve", "ghoststudio"]).unwrap();
    creator
        .setup_stream(&SetupStreamRequest {
            title: "Never connects".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let live = creator.go_live().await.unwrap();
    assert!(creator.stream_info().await.unwrap().is_live);
    let started = Instant::now();
    eventually(
        "stream offline after the empty room closed",
        Duration::from_secs(45),
        || async {
            let s = creator.stream_info().await.ok()?;
            (!s.is_live).then_some(())
        },
    )
    .await;
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "offline too early"
    );
    let s = creator.latest_session().await.unwrap();
    assert_eq!(s.id, live.session_id);
    assert_eq!(
        (s.end_reason.as_deref(), s.peak_viewers),
        (Some("room-finished"), 0),
        "{s:?}"
    );
}
