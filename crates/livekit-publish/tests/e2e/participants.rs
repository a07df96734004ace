//! Viewer count: three Python SDK viewers join and leave; the count goes 0 → 3 → 0.

use crate::common;

use std::time::Duration;

use common::{Server, spawn_viewer};
use streamit_livekit_publish::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_count_follows_three_python_viewers() -> anyhow::Result<()> {
    let server = Server::start()?;
    let token = server.token("creator", "room", true)?;
    let (handle, mut events) =
        Publisher::connect(&server.ws_url(), &token, PublishOptions::default()).await?;
    let mut viewers = Vec::new();
    for i in 0..3 {
        let t = server.token(&format!("viewer{i}"), "room", false)?;
        viewers.push(spawn_viewer(&server.ws_url(), &t, 8.0)?);
    }
    let mut counts = Vec::new();
    let mut joined = Vec::new();
    let mut left = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    let mut reports = Vec::new();
    let mut waiting = Some(tokio::spawn(async move {
        let mut r = Vec::new();
        for v in viewers {
            r.push(v.report().await);
        }
        r
    }));
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Some(PublisherEvent::ViewerCount(n)) => {
                    counts.push(n);
                    if n == 0 && counts.contains(&3) {
                        break;
                    }
                }
                Some(PublisherEvent::ParticipantJoined(p)) => joined.push(p.identity.0),
                Some(PublisherEvent::ParticipantLeft(p)) => left.push(p.0),
                Some(_) => {}
                None => anyhow::bail!("events closed"),
            },
            r = async { waiting.as_mut().expect("waiting").await }, if waiting.is_some() => {
                waiting = None;
                reports = r?;
            }
            _ = tokio::time::sleep_until(deadline) => anyhow::bail!("timed out; counts {counts:?}"),
        }
    }
    println!("counts {counts:?} joined {joined:?} left {left:?}");
    assert_eq!(counts.first(), Some(&0));
    assert_eq!(counts.iter().max(), Some(&3));
    assert_eq!(counts.last(), Some(&0));
    // Monotone up to 3, then monotone down to 0.
    let peak = counts.iter().position(|&n| n == 3).unwrap_or(0);
    assert!(
        counts[..=peak].windows(2).all(|w| w[0] <= w[1]),
        "{counts:?}"
    );
    assert!(
        counts[peak..].windows(2).all(|w| w[0] >= w[1]),
        "{counts:?}"
    );
    joined.sort();
    left.sort();
    assert_eq!(joined, vec!["viewer0", "viewer1", "viewer2"]);
    assert_eq!(left, joined);
    for r in reports {
        let r = r?;
        assert!(
            r.participants_seen.iter().any(|i| i == "creator"),
            "{:?}",
            r.participants_seen
        );
    }
    handle.leave().await?;
    Ok(())
}
