//! Liveness and viewer statistics from LiveKit presence, under faults: a real
//! livekit-server posting its signed webhooks to the real backend, official
//! Python SDK participants (tests/viewer/viewer.py) as the publishing creator
//! and as viewers, killed with SIGKILL or outliving a LiveKit crash.

use crate::common;

use std::time::{Duration, Instant};

use common::eventually;
use common::live_viewer::LiveViewer;
use livekit_api::services::room::RoomClient;
use streamit_api::client::Client;
use streamit_api::*;
use streamit_testkit::{Backend, LiveKit};

/// The backend's default grace period (`liveness::PUBLISHER_GRACE`).
const GRACE: Duration = Duration::from_secs(20);

struct World {
    // Field order is drop order: the backend before LiveKit.
    backend: Backend,
    lk: LiveKit,
    creator: Client,
    host_id: String,
}

async fn world(username: &str) -> World {
    let (lk, backend) = common::webhooked(None, &[("RUST_LOG", "info,sqlx=warn")]);
    let auth = Client::new(backend.url())
        .register(&RegisterRequest {
            username: username.into(),
            password: format!("{username}-password"),
            display_name: None,
            role: Some(Role::Creator),
        })
        .await
        .unwrap();
    backend.cli(&["user", "approve", username]).unwrap();
    let creator = Client::new(backend.url()).with_token(auth.token.clone());
    creator
        .setup_stream(&SetupStreamRequest {
            title: "Presence".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    World {
        backend,
        lk,
        creator,
        host_id: auth.user.id,
    }
}

impl World {
    fn rooms(&self) -> RoomClient {
        RoomClient::with_api_key(&self.lk.http_url(), self.lk.api_key(), self.lk.api_secret())
    }

    /// Tracks LiveKit has for `identity` in the creator's room (None: not there).
    async fn tracks_of(&self, identity: &str) -> Option<usize> {
        let ps = self.rooms().list_participants(&self.host_id).await.ok()?;
        ps.iter()
            .find(|p| p.identity == identity)
            .map(|p| p.tracks.len())
    }

    /// The creator's go-live token as a Python SDK participant publishing a video track;
    /// returns once LiveKit lists the track.
    async fn publish(&self, live: &GoLiveResponse) -> LiveViewer {
        let p = LiveViewer::join_with(
            &live.ws_url,
            &live.token,
            &["--try-publish", "--duration", "400"],
        )
        .await
        .expect("the creator joins");
        eventually(
            "LiveKit lists the creator's track",
            Duration::from_secs(20),
            || async { (self.tracks_of(&self.host_id).await? > 0).then_some(()) },
        )
        .await;
        p
    }

    /// A guest token for the creator's stream (which must be live).
    async fn guest_token(&self) -> ViewerTokenResponse {
        Client::new(self.backend.url())
            .viewer_token(&ViewerTokenRequest {
                host_id: self.host_id.clone(),
                guest_name: Some("Watcher".into()),
            })
            .await
            .unwrap()
    }

    async fn guest(&self) -> LiveViewer {
        let t = self.guest_token().await;
        LiveViewer::join_with(&t.ws_url, &t.token, &["--duration", "400"])
            .await
            .expect("the viewer joins")
    }

    async fn is_live(&self) -> bool {
        self.creator.stream_info().await.unwrap().is_live
    }

    /// Waits for a backend log line containing every one of `parts`.
    async fn log_line(&self, what: &str, parts: &[&str], limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self
            .backend
            .log_tail(4000)
            .lines()
            .any(|l| parts.iter().all(|p| l.contains(p)))
        {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for: {what}\nbackend log:\n{}",
                self.backend.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// kill -9 of the publishing creator while a viewer stays: the stream goes offline
/// within LiveKit's detection plus the grace period, with end reason `publisher_lost`;
/// before that, a creator who rejoins within the grace keeps the stream live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_publisher_goes_offline_after_the_grace_unless_it_rejoins() {
    let w = world("killed").await;
    let live = w.creator.go_live().await.unwrap();
    let mut studio = w.publish(&live).await;
    let mut viewer = w.guest().await;
    w.log_line(
        "the backend saw the viewer",
        &["viewer presence", &viewer.identity, "joined=true"],
        Duration::from_secs(20),
    )
    .await;

    // 1. Crash; LiveKit notices, the grace starts; the studio comes back in time.
    studio.kill().await;
    let killed = Instant::now();
    // LiveKit sends track_unpublished and participant_left in the same millisecond, in
    // either order; whichever comes first starts the grace (the second logs
    // grace_started=false), so wait for the leave itself.
    w.log_line(
        "the creator's participant_left",
        &["the creator left the room", "grace_secs="],
        Duration::from_secs(60),
    )
    .await;
    let detected = killed.elapsed();
    eprintln!("LiveKit reported the killed creator gone after {detected:?}");
    let left_at = Instant::now();
    let mut studio = w.publish(&live).await;
    eprintln!(
        "the creator rejoined {:?} into the grace",
        left_at.elapsed()
    );
    // Past the grace (plus the sweep's second), the stream is still live.
    while left_at.elapsed() < GRACE + Duration::from_secs(3) {
        assert!(
            w.is_live().await,
            "went offline although the creator rejoined"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(w.creator.latest_session().await.unwrap().ended_at.is_none());

    // 2. Crash for good while the viewer stays.
    studio.kill().await;
    let killed = Instant::now();
    eventually("stream offline", Duration::from_secs(90), || async {
        (!w.is_live().await).then_some(())
    })
    .await;
    let offline_after = killed.elapsed();
    eprintln!("offline {offline_after:?} after kill -9 (grace {GRACE:?})");
    assert!(
        offline_after >= GRACE,
        "offline before the grace ran out: {offline_after:?}"
    );
    let s = w.creator.latest_session().await.unwrap();
    assert_eq!(s.id, live.session_id, "{s:?}");
    assert_eq!(
        s.end_reason.as_deref(),
        Some(end_reason::PUBLISHER_LOST),
        "{s:?}"
    );
    // The session ends when the creator left, not when the grace ran out.
    let ended_at = s.ended_at.expect("ended");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(
        now_ms - ended_at >= (GRACE.as_millis() as i64) - 1_500,
        "ended_at is not when the creator left: {s:?}"
    );
    assert_eq!(s.peak_viewers, 1, "{s:?}");
    assert!(
        Client::new(w.backend.url())
            .live_streams()
            .await
            .unwrap()
            .is_empty()
    );
    // The viewer was there all along.
    assert!(
        viewer
            .wait_disconnected(Duration::from_millis(10))
            .await
            .is_none(),
        "the viewer was disconnected"
    );
    let _ = viewer.quit().await;
}

/// A viewer who joined the room while the stream was offline counts from go-live on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_who_joined_before_go_live_is_counted() {
    let w = world("early").await;
    // A token from a first live period; the stream is offline when the viewer joins.
    w.creator.go_live().await.unwrap();
    let t = w.guest_token().await;
    w.creator.end_stream().await.unwrap();
    let viewer = LiveViewer::join(&t.ws_url, &t.token).await.unwrap();
    w.log_line(
        "the backend saw the viewer join while offline",
        &[
            "viewer presence",
            &viewer.identity,
            "joined=true",
            "live=false",
        ],
        Duration::from_secs(20),
    )
    .await;
    assert!(!w.is_live().await);

    let live = w.creator.go_live().await.unwrap();
    assert_eq!(live.stream.viewer_count, 1, "{:?}", live.stream);
    let s = w.creator.latest_session().await.unwrap();
    assert_eq!(s.id, live.session_id);
    assert_eq!((s.current_viewers, s.peak_viewers), (1, 1), "{s:?}");
    w.creator.end_stream().await.unwrap();
    let ended = w.creator.latest_session().await.unwrap();
    assert_eq!(ended.peak_viewers, 1, "{ended:?}");
    let _ = viewer.quit().await;
}

/// LiveKit killed and restarted with one viewer in the room: the viewer's old
/// participant never leaves (the crashed server sent nothing), its rejoin has a new
/// sid, and the session still counts one viewer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_livekit_restart_does_not_count_a_viewer_twice() {
    let mut w = world("restarted").await;
    let live = w.creator.go_live().await.unwrap();
    let _studio = w.publish(&live).await;
    let viewer = w.guest().await;
    let public = Client::new(w.backend.url());
    eventually("viewerCount == 1", Duration::from_secs(20), || async {
        (public
            .stream_by_username("restarted")
            .await
            .ok()?
            .viewer_count
            == 1)
            .then_some(())
    })
    .await;
    let old_sid = w
        .rooms()
        .list_participants(&w.host_id)
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.identity == viewer.identity)
        .expect("the viewer is in the room")
        .sid;

    w.lk.kill();
    w.lk.restart().unwrap();
    // The SDK rejoins the new server with a new participant sid.
    let new_sid = eventually("the viewer rejoined", Duration::from_secs(60), || async {
        let ps = w.rooms().list_participants(&w.host_id).await.ok()?;
        ps.into_iter()
            .find(|p| p.identity == viewer.identity && p.sid != old_sid)
            .map(|p| p.sid)
    })
    .await;
    w.log_line(
        "the backend saw the rejoin",
        &["viewer presence", &new_sid, "joined=true"],
        Duration::from_secs(20),
    )
    .await;
    let s = w.creator.latest_session().await.unwrap();
    assert_eq!((s.current_viewers, s.peak_viewers), (1, 1), "{s:?}");
    assert!(w.is_live().await, "a LiveKit restart ended the stream");
    let _ = viewer.quit().await;
}

/// An admin revokes a live creator: the stream ends at once (`revoked`), the creator's
/// participant is removed from the room and removed again when it rejoins with its
/// still-valid publish token, and the creator can still call end-stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_live_creator_ends_the_stream() {
    let w = world("revokee").await;
    let live = w.creator.go_live().await.unwrap();
    let mut studio = w.publish(&live).await;
    assert!(w.is_live().await);

    let out = w.backend.cli(&["user", "revoke", "revokee"]).unwrap();
    assert!(
        !w.is_live_unapproved().await,
        "still live after revocation: {out}\n{}",
        w.backend.log_tail(40)
    );
    let s = w.creator.latest_session().await.unwrap();
    assert_eq!(s.id, live.session_id);
    assert_eq!(s.end_reason.as_deref(), Some(end_reason::REVOKED), "{s:?}");
    assert!(
        studio
            .wait_disconnected(Duration::from_secs(20))
            .await
            .is_some(),
        "the revoked creator was not removed from the room"
    );
    // The owner may always end their own stream.
    let summary = w
        .creator
        .end_stream()
        .await
        .expect("end-stream after revocation");
    assert_eq!(summary.id, live.session_id);

    // The 24 h publish token still joins, but the creator is removed again.
    let mut again = LiveViewer::join(&live.ws_url, &live.token)
        .await
        .expect("LiveKit still accepts the token");
    assert!(
        again
            .wait_disconnected(Duration::from_secs(20))
            .await
            .is_some(),
        "a revoked creator's rejoin was not removed"
    );
    assert!(
        Client::new(w.backend.url())
            .live_streams()
            .await
            .unwrap()
            .is_empty()
    );
}

impl World {
    /// isLive as the public sees it (the creator's own endpoints need approval).
    async fn is_live_unapproved(&self) -> bool {
        let live = Client::new(self.backend.url())
            .live_streams()
            .await
            .unwrap();
        live.iter().any(|s| s.user_id == self.host_id)
    }
}
