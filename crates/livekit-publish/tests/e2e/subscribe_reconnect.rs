//! The receive side through network trouble, against a real livekit-server: a Rust
//! publisher sends the encoded test pattern, a Rust subscriber (viewer token,
//! `subscribe: true`) receives it; both signal through a TCP proxy. First the
//! signal WebSockets drop (server and media path stay up): the subscriber must
//! resume the same session and keep decoding, without a broken frame. Then the server is killed and restarted on the same
//! ports: the subscriber must rejoin, get the track again once the publisher is
//! back, and decode again.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Server;
use common::subscriber::{
    Decoded, EventLog, connect_publisher, connect_subscriber, init_tracing, spawn_decoding,
    spawn_single_layer_sender,
};
use streamit_livekit_publish::*;
use streamit_testkit::SignalProxy;

fn count(log: &EventLog, f: impl Fn(&PublisherEvent) -> bool) -> usize {
    log.snapshot().iter().filter(|e| f(e)).count()
}

fn subscribed(e: &PublisherEvent) -> bool {
    matches!(e, PublisherEvent::TrackSubscribed(t) if t.kind == TrackKind::Video)
}

fn unsubscribed(e: &PublisherEvent) -> bool {
    matches!(e, PublisherEvent::TrackUnsubscribed { .. })
}

fn connected(e: &PublisherEvent) -> bool {
    matches!(e, PublisherEvent::StateChanged(ConnectionState::Connected))
}

/// Readable codes decoded at or after `since`: (how many, highest frame number).
fn decoded_since(decoded: &Arc<Mutex<Decoded>>, since: Instant) -> (usize, Option<u32>) {
    decoded
        .lock()
        .map(|d| {
            let after: Vec<u32> = d
                .video
                .iter()
                .filter(|(_, _, at)| *at >= since)
                .map(|(n, _, _)| *n)
                .collect();
            (after.len(), after.iter().max().copied())
        })
        .unwrap_or((0, None))
}

/// Waits until a new event matching `f` is in `log` (more than `before` of them).
async fn wait_more(
    log: &EventLog,
    before: usize,
    within: Duration,
    what: &str,
    f: impl Fn(&PublisherEvent) -> bool + Copy,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    while count(log, f) <= before {
        anyhow::ensure!(
            Instant::now() < deadline,
            "timed out waiting for {what}; saw {:?}",
            log.snapshot()
                .iter()
                .filter(|e| !matches!(e, PublisherEvent::Stats(_)))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Waits until `n` readable frames decoded since `since`; returns when the n-th came.
async fn wait_decoded(
    decoded: &Arc<Mutex<Decoded>>,
    since: Instant,
    n: usize,
    within: Duration,
) -> anyhow::Result<Duration> {
    while decoded_since(decoded, since).0 < n {
        anyhow::ensure!(
            since.elapsed() < within,
            "only {} frames decoded in {within:?}",
            decoded_since(decoded, since).0
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(since.elapsed())
}

fn last_stats(log: &EventLog) -> StatsSnapshot {
    log.snapshot()
        .into_iter()
        .rev()
        .find_map(|e| match e {
            PublisherEvent::Stats(s) => Some(s),
            _ => None,
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_resumes_a_signal_outage_and_rejoins_after_a_server_restart()
-> anyhow::Result<()> {
    init_tracing();
    let mut server = Server::start()?;
    let proxy = SignalProxy::start(&server.ws_url()).await?;
    let token = server.token("creator", "room", true)?;
    let (publisher, pub_log) = connect_publisher(&proxy.ws_url(), &token).await?;
    let video = publisher
        .publish_video(VideoTrackOptions::new(VideoCodec::H264, 640, 360, 30))
        .await?;
    let (stop, sender) = spawn_single_layer_sender(video, pub_log.clone());

    // The subscriber signals through the proxy too; media goes to the server directly.
    let viewer_token = server.token("viewer1", "room", false)?;
    let (viewer, view_log) = connect_subscriber(&proxy.ws_url(), &viewer_token, None).await?;
    let media = viewer
        .take_media()
        .ok_or_else(|| anyhow::anyhow!("no media receiver"))?;
    let (decoded, decoder) = spawn_decoding(media);
    view_log
        .wait(Duration::from_secs(10), "video TrackSubscribed", subscribed)
        .await?;
    let t0 = Instant::now();
    wait_decoded(&decoded, t0, 60, Duration::from_secs(5)).await?;

    // 1. Signal-only outage: the proxy cuts the WebSocket and refuses for 1.5 s.
    let subs_before = count(&view_log, subscribed);
    let unsubs_before = count(&view_log, unsubscribed);
    let connected_before = count(&view_log, connected);
    let code_before = decoded_since(&decoded, t0).1.unwrap_or(0);
    let cut = Instant::now();
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.reopen();
    wait_more(
        &view_log,
        connected_before,
        Duration::from_secs(10),
        "Connected after the signal outage",
        connected,
    )
    .await?;
    let resumed = cut.elapsed();
    // Three more seconds of frames, then look at every second since the cut.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let per_second: Vec<usize> = (0..resumed.as_secs() + 3)
        .map(|s| {
            let from = cut + Duration::from_secs(s);
            decoded_since(&decoded, from).0
                - decoded_since(&decoded, from + Duration::from_secs(1)).0
        })
        .collect();
    let (after_resume, code_after_resume) = decoded_since(&decoded, cut + resumed);
    let stats = last_stats(&view_log);
    let (subs, unsubs) = (count(&view_log, subscribed), count(&view_log, unsubscribed));
    let (errors, skipped_codes) = decoded
        .lock()
        .map(|d| {
            let codes: Vec<u32> = d.video.iter().map(|(n, _, _)| *n).collect();
            let skipped: Vec<(u32, u32)> = codes
                .windows(2)
                .filter(|w| w[1] != w[0] + 1)
                .map(|w| (w[0], w[1]))
                .collect();
            (d.decode_errors, skipped)
        })
        .unwrap_or_default();
    let viewer_left = pub_log
        .snapshot()
        .iter()
        .any(|e| matches!(e, PublisherEvent::ParticipantLeft(p) if p.0 == "viewer1"));
    println!(
        "signal outage: resumed {resumed:?} after the cut; decoded/s since the cut {per_second:?}; \
         {after_resume} frames after the resume, codes {code_before} -> {code_after_resume:?}; \
         TrackSubscribed {subs_before} -> {subs}, TrackUnsubscribed {unsubs_before} -> {unsubs}; \
         resumes {} rejoins {}; proxy accepted {}; publisher saw the viewer leave: {viewer_left}; \
         decode errors {errors}, code jumps {skipped_codes:?}",
        stats.resumes,
        stats.rejoins,
        proxy.accepted()
    );
    assert!(
        server.log().contains("resuming RTC session"),
        "{}",
        server.log()
    );
    assert_eq!(
        (stats.resumes, stats.rejoins),
        (1, 0),
        "a resume, not a rejoin"
    );
    assert!(!viewer_left, "the same participant stayed in the room");
    assert_eq!(errors, 0, "no broken frame reached the decoder");
    // The publisher's ICE restart may cost a few frames; it then skips to a key
    // frame (asked for at once) instead of sending frames that reference them.
    assert!(
        skipped_codes.iter().all(|(a, b)| b - a <= 10),
        "code jumps {skipped_codes:?}"
    );
    assert_eq!(
        (subs, unsubs),
        (subs_before, unsubs_before),
        "no subscription churn"
    );
    // The media path never depended on the signal: frames in every second, outage included.
    assert!(
        per_second.iter().all(|n| *n >= 10),
        "decoded/s since the cut: {per_second:?}"
    );
    assert!(after_resume >= 60, "{after_resume} frames after the resume");
    assert!(
        code_after_resume.is_some_and(|c| c > code_before + 60),
        "codes {code_before} -> {code_after_resume:?}"
    );

    // 2. The server dies and comes back on the same ports 2 s later.
    let subs_before = count(&view_log, subscribed);
    let unsubs_before = count(&view_log, unsubscribed);
    let connected_before = count(&view_log, connected);
    let pub_connected_before = count(&pub_log, connected);
    let code_before = decoded_since(&decoded, t0).1.unwrap_or(0);
    let errors_before = decoded.lock().map(|d| d.decode_errors).unwrap_or(0);
    let killed = Instant::now();
    server.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    server.restart()?;
    let restarted = Instant::now();
    let within = Duration::from_secs(30);
    wait_more(
        &view_log,
        connected_before,
        within,
        "viewer Connected",
        connected,
    )
    .await?;
    let viewer_back = killed.elapsed();
    wait_more(
        &pub_log,
        pub_connected_before,
        within,
        "publisher Connected",
        connected,
    )
    .await?;
    let publisher_back = killed.elapsed();
    wait_more(
        &view_log,
        subs_before,
        within,
        "TrackSubscribed again",
        subscribed,
    )
    .await?;
    let resubscribed = killed.elapsed();
    let first = wait_decoded(&decoded, restarted, 1, within).await?;
    let first30 = wait_decoded(&decoded, restarted, 30, within).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (after_restart, code_after_restart) = decoded_since(&decoded, restarted);
    let stats = last_stats(&view_log);
    let errors = decoded.lock().map(|d| d.decode_errors).unwrap_or(0) - errors_before;
    println!(
        "server restart (down 2 s): viewer Connected {viewer_back:?}, publisher Connected \
         {publisher_back:?}, TrackSubscribed again {resubscribed:?} after the kill; first frame decoded {:?}, 30 frames \
         {:?} after the kill; {after_restart} frames since the restart, codes {code_before} -> \
         {code_after_restart:?}; TrackUnsubscribed {unsubs_before} -> {}; resumes {} rejoins {}; \
         decode errors {errors}",
        restarted.duration_since(killed) + first,
        restarted.duration_since(killed) + first30,
        count(&view_log, unsubscribed),
        stats.resumes,
        stats.rejoins,
    );
    assert_eq!(stats.rejoins, 1, "a full rejoin after the restart");
    assert!(
        count(&view_log, unsubscribed) > unsubs_before,
        "TrackUnsubscribed on rejoin"
    );
    assert!(
        after_restart >= 60,
        "{after_restart} frames after the restart"
    );
    assert!(
        code_after_restart.is_some_and(|c| c > code_before + 60),
        "codes {code_before} -> {code_after_restart:?}"
    );
    assert_eq!(errors, 0, "the new subscription starts at a key frame");
    assert!(viewer_back < Duration::from_secs(15), "{viewer_back:?}");

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sender
        .join()
        .map_err(|_| anyhow::anyhow!("sender panicked"))??;
    publisher.leave().await?;
    viewer.leave().await?;
    let _ = decoder.join();
    Ok(())
}
