//! Chat rules enforced by LiveKit, end to end: the real backend mints the
//! tokens and drives RoomService, a real livekit-server forwards (or drops)
//! the data, and official Python SDK clients (tests/viewer/viewer.py with
//! `--commands`) join with the backend's tokens and try `send_text` on
//! `lk.chat`, bypassing any page.
//!
//! How "not delivered" is observed without a fixed sleep: the refused sender's
//! `send_text` returns (the SDK handed the message to the SFU); only then does
//! the creator send a marker; the witness waits for the marker (and for the
//! messages that must arrive). A message the SFU forwarded would have been
//! forwarded when it arrived, before the marker was even sent.

use crate::common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::live_viewer::LiveViewer;
use livekit_api::access_token::{Claims, TokenVerifier};
use streamit_api::client::{ApiError, Client};
use streamit_api::*;
use streamit_testkit::{Backend, LiveKit};

const WAIT: Duration = Duration::from_secs(20);

struct World {
    // Field order is drop order: the backend before LiveKit.
    backend: Backend,
    lk: LiveKit,
    creator: Client,
    host_id: String,
    live: GoLiveResponse,
    /// Follows the creator.
    fred: (Client, User),
    /// Does not.
    nora: (Client, User),
}

async fn register(backend: &Backend, username: &str, role: Role) -> (Client, User) {
    let auth = Client::new(backend.url())
        .register(&RegisterRequest {
            username: username.into(),
            password: format!("{username}-password"),
            display_name: Some(format!("{username} shown")),
            role: Some(role),
        })
        .await
        .expect("register");
    (
        Client::new(backend.url()).with_token(auth.token.clone()),
        auth.user,
    )
}

/// LiveKit (webhooks to the backend), the backend, a live creator `alice`,
/// follower `fred` and non-follower `nora`.
async fn world() -> World {
    let (lk, backend) = common::webhooked(None, &[("RUST_LOG", "info,sqlx=warn")]);
    let (creator, c_user) = register(&backend, "alice", Role::Creator).await;
    backend.cli(&["user", "approve", "alice"]).unwrap();
    creator
        .setup_stream(&SetupStreamRequest {
            title: "Chat rules".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let live = creator.go_live().await.unwrap();
    let fred = register(&backend, "fred", Role::Viewer).await;
    fred.0.follow("alice").await.unwrap();
    let nora = register(&backend, "nora", Role::Viewer).await;
    World {
        backend,
        lk,
        creator,
        host_id: c_user.id,
        live,
        fred,
        nora,
    }
}

impl World {
    fn claims(&self, token: &str) -> Claims {
        TokenVerifier::with_api_key(self.lk.api_key(), self.lk.api_secret())
            .verify(token)
            .expect("the token verifies with LiveKit's key")
    }

    async fn token(&self, client: &Client, guest_name: Option<&str>) -> ViewerTokenResponse {
        client
            .viewer_token(&ViewerTokenRequest {
                host_id: self.host_id.clone(),
                guest_name: guest_name.map(str::to_string),
            })
            .await
            .expect("viewer token")
    }

    fn public(&self) -> Client {
        Client::new(self.backend.url())
    }

    async fn guest_token(&self, name: &str) -> ViewerTokenResponse {
        self.token(&self.public(), Some(name)).await
    }

    async fn set_chat(&self, enabled: bool, followers_only: bool) -> Stream {
        self.creator
            .update_chat_settings(&ChatSettingsRequest {
                is_chat_enabled: Some(enabled),
                is_chat_delayed: Some(false),
                is_chat_followers_only: Some(followers_only),
            })
            .await
            .expect("chat settings")
    }

    async fn join(&self, token: &ViewerTokenResponse) -> LiveViewer {
        LiveViewer::join(&token.ws_url, &token.token)
            .await
            .expect("viewer joins")
    }

    /// The creator's own token (go-live) as a Python participant: it can always send.
    async fn join_as_creator(&self) -> LiveViewer {
        LiveViewer::join(&self.live.ws_url, &self.live.token)
            .await
            .expect("creator joins")
    }
}

fn status_of<T: std::fmt::Debug>(r: Result<T, ApiError>) -> u16 {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.status().unwrap_or_else(|| panic!("no HTTP status: {e}")),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Sends `text` from `sender` and insists the SDK handed it over (so a
/// message that never arrives was dropped by the server, not by the client).
async fn send_ok(sender: &mut LiveViewer, text: &str) {
    let sent = sender.send(text).await.unwrap();
    assert!(sent.ok, "send_text({text:?}) raised: {:?}", sent.error);
}

/// The creator sends `marker`; the witness must receive it (the delivery
/// path works and everything sent before it has been dealt with).
async fn marker(creator: &mut LiveViewer, witness: &mut LiveViewer, marker: &str) {
    send_ok(creator, marker).await;
    assert!(
        witness.wait_chat(marker, WAIT).await.is_some(),
        "the witness never got the creator's marker {marker:?}"
    );
}

/// (label, isChatEnabled, isChatFollowersOnly, [guest, follower, non-follower] can send,
/// the reason the refused ones are told)
type MatrixRow = (&'static str, bool, bool, [bool; 3], Option<&'static str>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforcement_matrix_grants_and_delivery() {
    let w = world().await;
    let mut creator = w.join_as_creator().await;
    let witness_token = w.guest_token("Witness").await;
    let mut witness = w.join(&witness_token).await;

    // (setting, [guest, follower, non-follower] → can send, reason when not)
    let rows: [MatrixRow; 3] = [
        ("chat on", true, false, [true, true, true], None),
        (
            "chat off",
            false,
            false,
            [false, false, false],
            Some("Chat is off"),
        ),
        (
            "followers-only",
            true,
            true,
            [false, true, false],
            Some("Chat is for followers only"),
        ),
    ];
    for (label, enabled, followers_only, expect, reason) in rows {
        let started = Instant::now();
        let s = w.set_chat(enabled, followers_only).await;
        assert_eq!(
            (s.is_chat_enabled, s.is_chat_followers_only),
            (enabled, followers_only)
        );
        let tokens = [
            (w.guest_token("Gus").await, "guest"),
            (w.token(&w.fred.0, None).await, "follower"),
            (w.token(&w.nora.0, None).await, "non-follower"),
        ];
        // The grant LiveKit will enforce, and what the page is told.
        for ((t, kind), can) in tokens.iter().zip(expect) {
            let c = w.claims(&t.token);
            assert_eq!(
                c.video.can_publish_data,
                Some(can),
                "{label} / {kind}: grant"
            );
            assert_eq!(
                (c.video.can_publish, c.video.can_subscribe),
                (Some(false), Some(true))
            );
            let role = if *kind == "guest" { "guest" } else { "viewer" };
            assert_eq!(
                c.attributes.get(room::ATTR_ROLE).map(String::as_str),
                Some(role)
            );
            assert_eq!(t.role, role);
            assert_eq!(t.chat.can_send, can, "{label} / {kind}: chat access");
            if can {
                assert_eq!(t.chat.reason, None);
            } else {
                assert_eq!(t.chat.reason.as_deref(), reason, "{label} / {kind}");
            }
        }
        // Each one joins and tries to chat, bypassing any page.
        let mut senders = Vec::new();
        for (t, kind) in &tokens {
            senders.push((w.join(t).await, *kind));
        }
        for (sender, kind) in senders.iter_mut() {
            send_ok(sender, &format!("{label}: from the {kind}")).await;
        }
        marker(&mut creator, &mut witness, &format!("{label}: marker")).await;
        for ((sender, kind), can) in senders.iter().zip(expect) {
            let text = format!("{label}: from the {kind}");
            if can {
                let got = witness.wait_chat(&text, WAIT).await;
                assert_eq!(
                    got.map(|g| g.0).as_deref(),
                    Some(sender.identity.as_str()),
                    "{label}: the {kind}'s message was not delivered"
                );
            } else {
                assert!(
                    !witness.chat_texts().contains(&text),
                    "{label}: the {kind}'s message was delivered although refused"
                );
            }
        }
        for (sender, _) in senders {
            sender.quit().await.unwrap();
        }
        eprintln!("row {label:?}: {:?}", started.elapsed());
    }
    // The creator's own token carries its role too.
    let c = w.claims(&w.live.token);
    assert_eq!(
        c.attributes.get(room::ATTR_ROLE).map(String::as_str),
        Some("creator")
    );
    assert_eq!(c.video.can_publish_data, Some(true));
    // …and every client sees the marks (set by the server, not the client).
    let report = witness.quit().await.unwrap();
    assert_eq!(
        report
            .participant_attributes
            .get(&w.host_id)
            .and_then(|a| a.get(room::ATTR_ROLE))
            .map(String::as_str),
        Some("creator")
    );
    creator.quit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turning_chat_off_while_live_stops_an_already_joined_viewer() {
    let w = world().await;
    let mut creator = w.join_as_creator().await;
    let mut witness = w.join(&w.guest_token("Witness").await).await;
    let nora_token = w.token(&w.nora.0, None).await;
    assert!(nora_token.chat.can_send);
    let mut nora = w.join(&nora_token).await;
    // The room metadata go-live set (CreateRoom runs beside the response, so
    // it may arrive just after the join).
    let meta_text = if nora.metadata.is_empty() {
        let e = nora.wait_event("room_metadata", WAIT, |_| true).await;
        e.and_then(|e| e["metadata"].as_str().map(str::to_string))
            .unwrap_or_default()
    } else {
        nora.metadata.clone()
    };
    let meta: RoomMetadata = serde_json::from_str(&meta_text).expect("room metadata");
    assert_eq!(
        (meta.title.as_str(), meta.is_chat_enabled),
        ("Chat rules", true)
    );

    // Positive control: her message arrives.
    send_ok(&mut nora, "before").await;
    assert!(witness.wait_chat("before", WAIT).await.is_some());

    // Chat off: RoomService revokes her canPublishData before the PUT returns.
    let t = Instant::now();
    w.set_chat(false, false).await;
    let put_ms = t.elapsed().as_millis();
    send_ok(&mut nora, "after chat off").await;
    marker(&mut creator, &mut witness, "marker 1").await;
    assert!(
        !witness.chat_texts().contains(&"after chat off".to_string()),
        "a message sent after chat was turned off was delivered"
    );
    // The pages learn the rule from the room metadata, without a reload.
    let changed = witness
        .wait_event("room_metadata", WAIT, |e| {
            serde_json::from_str::<RoomMetadata>(e["metadata"].as_str().unwrap_or(""))
                .is_ok_and(|m| !m.is_chat_enabled)
        })
        .await;
    assert!(changed.is_some(), "room metadata never said chat is off");

    // Back on: the same participant may send again.
    w.set_chat(true, false).await;
    send_ok(&mut nora, "chat back on").await;
    assert!(
        witness.wait_chat("chat back on", WAIT).await.is_some(),
        "the permission was not restored"
    );
    eprintln!("chat-settings PUT with RoomService updates took {put_ms} ms");
    for v in [nora, witness, creator] {
        v.quit().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_removes_the_viewer_and_refuses_tokens() {
    let w = world().await;
    // A logged-in viewer.
    let nora_token = w.token(&w.nora.0, None).await;
    let mut nora = w.join(&nora_token).await;
    let t = Instant::now();
    let entry = w
        .creator
        .ban(&BanRequest {
            identity: w.nora.1.id.clone(),
            reason: Some("spam".into()),
        })
        .await
        .unwrap();
    assert_eq!(
        (
            entry.kind.as_str(),
            entry.name.as_deref(),
            entry.reason.as_deref()
        ),
        ("ban", Some("nora shown"), Some("spam"))
    );
    let reason = nora.wait_disconnected(WAIT).await;
    eprintln!(
        "banned viewer disconnected after {:?}: {reason:?}",
        t.elapsed()
    );
    assert!(reason.is_some(), "the banned viewer was not removed");
    assert_eq!(
        status_of(
            w.nora
                .0
                .viewer_token(&ViewerTokenRequest {
                    host_id: w.host_id.clone(),
                    guest_name: None,
                })
                .await
        ),
        403
    );
    // Rejoining with the old token: the join webhook removes her again.
    match LiveViewer::join(&nora_token.ws_url, &nora_token.token).await {
        Ok(mut again) => assert!(
            again.wait_disconnected(WAIT).await.is_some(),
            "a banned viewer stayed in the room with an old token"
        ),
        Err(e) => eprintln!("rejoin refused outright: {e}"),
    }
    let _ = nora.quit().await;

    // A guest: banned by identity, and guests from its address for 24 h.
    let gina_token = w.guest_token("Gina").await;
    let mut gina = w.join(&gina_token).await;
    w.creator
        .ban(&BanRequest {
            identity: gina_token.identity.clone(),
            reason: None,
        })
        .await
        .unwrap();
    assert!(
        gina.wait_disconnected(WAIT).await.is_some(),
        "the banned guest was not removed"
    );
    let again = w
        .public()
        .viewer_token(&ViewerTokenRequest {
            host_id: w.host_id.clone(),
            guest_name: Some("Gina again".into()),
        })
        .await;
    assert_eq!(
        status_of(again),
        403,
        "a banned guest's address got a new guest token"
    );
    // Accounts are judged per account, not per address.
    assert!(
        w.fred
            .0
            .viewer_token(&ViewerTokenRequest {
                host_id: w.host_id.clone(),
                guest_name: None,
            })
            .await
            .is_ok()
    );
    let list = w.creator.moderation().await.unwrap();
    let ids: Vec<&str> = list.iter().map(|e| e.identity.as_str()).collect();
    assert_eq!(
        ids,
        [gina_token.identity.as_str(), w.nora.1.id.as_str()],
        "newest first"
    );
    assert_eq!(list[0].name.as_deref(), Some("Gina"));

    // Lifting both: tokens again.
    w.creator
        .lift_moderation(&gina_token.identity)
        .await
        .unwrap();
    w.creator.lift_moderation(&w.nora.1.id).await.unwrap();
    assert!(w.guest_token("Gina").await.chat.can_send);
    assert!(w.token(&w.nora.0, None).await.chat.can_send);
    assert!(w.creator.moderation().await.unwrap().is_empty());
    let _ = gina.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_revokes_sending_and_the_sweep_restores_it() {
    let w = world().await;
    let mut creator = w.join_as_creator().await;
    let mut witness = w.join(&w.guest_token("Witness").await).await;
    let mut fred = w.join(&w.token(&w.fred.0, None).await).await;
    send_ok(&mut fred, "before the timeout").await;
    assert!(
        witness
            .wait_chat("before the timeout", WAIT)
            .await
            .is_some()
    );

    let entry = w
        .creator
        .timeout_viewer(&TimeoutRequest {
            identity: w.fred.1.id.clone(),
            duration_secs: 5,
            reason: Some("slow down".into()),
        })
        .await
        .unwrap();
    let until = entry.until.expect("a timeout has an end");
    send_ok(&mut fred, "during the timeout").await;
    marker(&mut creator, &mut witness, "marker during").await;
    assert!(
        !witness
            .chat_texts()
            .contains(&"during the timeout".to_string()),
        "a timed-out viewer's message was delivered"
    );
    // A token minted meanwhile carries no canPublishData.
    let t = w.token(&w.fred.0, None).await;
    assert_eq!(w.claims(&t.token).video.can_publish_data, Some(false));
    assert_eq!(t.chat.timed_out_until, Some(until));
    assert!(!t.chat.can_send);
    assert!(
        t.chat
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with("You are timed out until")),
        "{:?}",
        t.chat.reason
    );

    // After `until` the sweep restores the permission in the room: probe until
    // a message gets through.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut probe = 0;
    let delivered_at = loop {
        assert!(Instant::now() < deadline, "sending was never restored");
        probe += 1;
        let text = format!("probe {probe}");
        send_ok(&mut fred, &text).await;
        if let Some((_, at)) = witness.wait_chat(&text, Duration::from_millis(700)).await {
            break at;
        }
    };
    assert!(delivered_at >= until, "delivered before the timeout ended");
    eprintln!(
        "timeout ended; sending restored {} ms after its end ({probe} probes)",
        delivered_at - until
    );
    assert!(w.creator.moderation().await.unwrap().is_empty());
    assert!(w.token(&w.fred.0, None).await.chat.can_send);
    assert!(now_ms() >= until);
    for v in [fred, witness, creator] {
        v.quit().await.unwrap();
    }
}
