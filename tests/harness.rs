//! Proves the harness itself: a real LiveKit server, tokens minted in Rust with `livekit-api`,
//! and the official Python SDK as the independent viewer.

use std::time::Duration;
use streamit_testkit::{Grants, LiveKit, Viewer, ViewerOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_token_joins_and_may_not_publish_while_creator_token_may() -> anyhow::Result<()> {
    let lk = LiveKit::start()?;
    let room = "harness-room";

    let mut as_viewer =
        ViewerOptions::new(lk.ws_url(), lk.token("viewer-1", room, Grants::Viewer)?);
    as_viewer.try_publish = true;
    as_viewer.duration = Duration::from_secs(1);
    let mut as_creator =
        ViewerOptions::new(lk.ws_url(), lk.token("creator-1", room, Grants::Publisher)?);
    as_creator.try_publish = true;
    as_creator.duration = Duration::from_secs(1);

    let (viewer, creator) = tokio::join!(Viewer::run(as_viewer), Viewer::run(as_creator));
    let (viewer, creator) = (viewer?, creator?);

    assert!(viewer.joined, "viewer could not join: {:?}", viewer.error);
    assert_eq!(viewer.identity.as_deref(), Some("viewer-1"));
    assert!(viewer.publish.attempted);
    assert_eq!(
        viewer.publish.ok,
        Some(false),
        "the server let a canPublish=false token publish"
    );

    // The positive control: the same SDK call succeeds with publish rights, so the refusal
    // above is the server enforcing the grant, not a broken probe.
    assert!(
        creator.joined,
        "creator could not join: {:?}",
        creator.error
    );
    assert_eq!(
        creator.publish.ok,
        Some(true),
        "publish failed: {:?}",
        creator.publish.error
    );
    // And the viewer's subscribe grant works: it was offered the creator's track.
    assert!(
        viewer
            .video
            .tracks
            .iter()
            .any(|t| t["participant"] == "creator-1"),
        "viewer never subscribed to the creator's track: {:?}",
        viewer.video.tracks
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_or_expired_token_is_refused_by_livekit() -> anyhow::Result<()> {
    let lk = LiveKit::start()?;
    let room = "harness-room";

    let forged = livekit_api::access_token::AccessToken::with_api_key(
        lk.api_key(),
        "not-the-secret-of-this-server-0123456789",
    )
    .with_identity("mallory")
    .with_grants(livekit_api::access_token::VideoGrants {
        room_join: true,
        room: room.into(),
        ..Default::default()
    })
    .to_jwt()?;
    // LiveKit allows one minute of clock skew, so expire the token well beyond it.
    let now = std::time::SystemTime::now();
    let expired = lk.token_expiring_at("late", room, now - Duration::from_secs(300))?;
    // The same construction with a future expiry must be accepted, or the check proves nothing.
    let fresh_by_hand = lk.token_expiring_at("punctual", room, now + Duration::from_secs(300))?;

    let mut control = ViewerOptions::new(lk.ws_url(), fresh_by_hand);
    control.duration = Duration::from_millis(500);
    let control = Viewer::run(control).await?;
    assert!(
        control.joined,
        "a valid hand-signed token was refused: {:?}",
        control.error
    );

    for (what, token) in [("forged", forged), ("expired", expired)] {
        let mut opts = ViewerOptions::new(lk.ws_url(), token);
        opts.duration = Duration::from_secs(1);
        let report = Viewer::run(opts).await?;
        assert!(!report.joined, "a {what} token joined the room");
        let error = report.error.unwrap_or_default();
        assert!(
            error.contains("connect failed"),
            "{what}: unexpected error {error:?}"
        );
    }
    Ok(())
}

#[test]
fn servers_in_parallel_get_distinct_ports_and_die_with_their_handle() -> anyhow::Result<()> {
    let a = LiveKit::start()?;
    let b = LiveKit::start()?;
    let (pa, pb) = (a.ports(), b.ports());
    assert_ne!(pa.0, pb.0);
    assert!(a.is_healthy() && b.is_healthy());
    let port = pa.0;
    drop(a);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "livekit-server still listening after its handle was dropped"
    );
    assert!(b.is_healthy());
    Ok(())
}

#[test]
fn a_killed_server_restarts_on_the_same_ports() -> anyhow::Result<()> {
    let mut lk = LiveKit::start()?;
    let ports = lk.ports();
    lk.kill();
    assert!(!lk.is_healthy());
    lk.restart()?;
    assert_eq!(lk.ports(), ports);
    assert!(lk.is_healthy());
    Ok(())
}
