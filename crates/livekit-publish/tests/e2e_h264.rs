//! End to end: publish H.264 to a real livekit-server; the official Python SDK decodes it.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{H264Source, Server, Viewer};
use streamit_livekit_publish::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_frames_reach_the_python_viewer() -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    let server = Server::start()?;
    let token = server.token("creator", "room1", true)?;
    let t0 = Instant::now();
    let (handle, mut events) =
        Publisher::connect(&server.ws_url(), &token, PublishOptions::default()).await?;
    println!("signal joined in {:?}", t0.elapsed());

    // Wait until the publisher transport is up.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ev = tokio::time::timeout_at(deadline.into(), events.recv()).await?;
        match ev {
            Some(PublisherEvent::StateChanged(ConnectionState::Connected)) => break,
            Some(PublisherEvent::StateChanged(ConnectionState::Failed { error })) => {
                anyhow::bail!(error)
            }
            Some(e) => println!("event: {e:?}"),
            None => anyhow::bail!("events closed"),
        }
    }
    println!("connected in {:?}", t0.elapsed());

    let video = handle
        .publish_video(VideoTrackOptions::new(VideoCodec::H264, 640, 360, 30))
        .await?;
    let viewer_token = server.token("viewer1", "room1", false)?;
    let viewer = Viewer::spawn(
        &server.ws_url(),
        &viewer_token,
        14.0,
        &["--send-chat", "hello from python"],
    )?;

    let mut src = H264Source::new(640, 360, 30.0, 800_000)?;
    let start = Instant::now();
    let mut sent = 0u64;
    let mut sent_after_ready = 0u64;
    let mut ready = false;
    let mut chats = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(33));
    while start.elapsed() < Duration::from_secs(12) {
        tick.tick().await;
        while let Ok(ev) = events.try_recv() {
            match &ev {
                PublisherEvent::KeyframeRequested { .. } => {
                    src.force_keyframe();
                    ready = true;
                }
                PublisherEvent::ChatReceived { .. } => chats.push(ev.clone()),
                PublisherEvent::Stats(_) => {}
                _ => println!("event: {ev:?}"),
            }
            if let PublisherEvent::Stats(s) = &ev {
                println!(
                    "stats: sent={} bwe={:?} egress={}",
                    s.frames_sent, s.bandwidth_estimate, s.egress_bitrate
                );
            }
        }
        let (data, keyframe) = src.next_frame()?;
        video.send(EncodedVideo {
            layer: None,
            data: Bytes::from(data),
            keyframe,
            timestamp: start.elapsed(),
        });
        sent += 1;
        if ready {
            sent_after_ready += 1;
        }
        if sent == 150 {
            handle.send_chat("hello from rust")?;
        }
    }
    let report = viewer.report().await?;
    println!("viewer report: {report}");
    println!("sent {sent} frames, {sent_after_ready} after ready; chats {chats:?}");
    handle.leave().await?;
    let decoded = report["video_frames"].as_u64().unwrap_or(0);
    assert!(
        decoded > 0,
        "viewer decoded no frames; server log:\n{}",
        server.log()
    );
    Ok(())
}
