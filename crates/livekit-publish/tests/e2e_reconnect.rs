//! Reconnect: the LiveKit server dies mid-stream and comes back on the same
//! ports (the publisher rejoins and a new viewer decodes frames again), or
//! stays gone (the publisher gives up after 5 attempts with a clear error).

mod common;

use std::time::{Duration, Instant};

use common::{Server, spawn_viewer};
use streamit_livekit_publish::*;
use streamit_media::MediaTime;
use streamit_media::encode::{VideoEncoder, VideoEncoderConfig, new_video_encoder};
use streamit_media::pattern::generate_pattern;
use tokio::sync::mpsc::Receiver;

/// The synthetic pattern encoded live as H.264 640×360 at 30 fps (30 cached pictures).
struct Feed {
    enc: Box<dyn VideoEncoder>,
    pics: Vec<streamit_media::VideoFrame>,
}

impl Feed {
    fn new() -> anyhow::Result<Self> {
        let enc = new_video_encoder(
            streamit_media::encode::VideoCodec::H264,
            VideoEncoderConfig::new(640, 360, 30.0, 800_000),
        )?;
        let pics = (0..30)
            .map(|n| generate_pattern(640, 360, n * 3, MediaTime::ZERO))
            .collect::<Result<_, _>>()?;
        Ok(Feed { enc, pics })
    }

    /// Encodes frame `frame_no` and hands it to the track (if the encoder emitted one).
    fn send(
        &mut self,
        video: &VideoTrackSender,
        frame_no: u64,
        force_key: bool,
    ) -> anyhow::Result<()> {
        let pts = MediaTime::from_micros(frame_no * 33_333);
        let pic = self.pics[(frame_no % 30) as usize].with_pts(pts);
        if let Some(e) = self.enc.encode(&pic, force_key)? {
            video.send(EncodedVideo {
                layer: None,
                data: e.data,
                keyframe: e.keyframe,
                timestamp: pts.as_duration(),
            });
        }
        Ok(())
    }
}

async fn connect(server: &Server) -> anyhow::Result<(PublisherHandle, Receiver<PublisherEvent>)> {
    let token = server.token("creator", "room", true)?;
    let (handle, mut events) =
        Publisher::connect(&server.ws_url(), &token, PublishOptions::default()).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await? {
            Some(PublisherEvent::StateChanged(ConnectionState::Connected)) => break,
            Some(_) => {}
            None => anyhow::bail!("closed"),
        }
    }
    Ok((handle, events))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_recovers_after_the_server_restarts() -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    let mut server = Server::start()?;
    let (handle, mut events) = connect(&server).await?;
    let video = handle
        .publish_video(VideoTrackOptions::new(VideoCodec::H264, 640, 360, 30))
        .await?;
    let mut feed = Feed::new()?;

    let start = Instant::now();
    let mut states = Vec::new();
    let mut force_key = true;
    let mut frame_no = 0u64;
    let mut killed_at = None;
    let mut restarted = false;
    let mut reconnected_after = None;
    let mut viewer = None;
    let mut tick = tokio::time::interval(Duration::from_millis(33));
    while start.elapsed() < Duration::from_secs(40) {
        tick.tick().await;
        while let Ok(ev) = events.try_recv() {
            match ev {
                PublisherEvent::KeyframeRequested { .. } => force_key = true,
                PublisherEvent::StateChanged(s) => {
                    println!("{:?}: {s:?}", start.elapsed());
                    if s == ConnectionState::Connected
                        && let Some(k) = killed_at
                        && reconnected_after.is_none()
                    {
                        reconnected_after = Some(Instant::now().duration_since(k));
                        // A viewer that joins the new server must see video again.
                        let t = server.token("viewer-after", "room", false)?;
                        viewer = Some(spawn_viewer(&server.ws_url(), &t, 8.0)?);
                    }
                    states.push(s);
                }
                _ => {}
            }
        }
        if killed_at.is_none() && start.elapsed() > Duration::from_secs(3) {
            server.kill();
            killed_at = Some(Instant::now());
        }
        if !restarted && killed_at.is_some_and(|k| k.elapsed() > Duration::from_secs(2)) {
            server.restart()?;
            restarted = true;
        }
        feed.send(&video, frame_no, force_key)?;
        force_key = false;
        frame_no += 1;
        if let Some(after) = reconnected_after
            && Instant::now().duration_since(killed_at.unwrap_or_else(Instant::now))
                > after + Duration::from_secs(9)
        {
            break;
        }
    }
    println!("states: {states:?}; reconnected {reconnected_after:?} after the kill");
    assert!(
        states.contains(&ConnectionState::Reconnecting { attempt: 1, max: 5 }),
        "{states:?}"
    );
    let after =
        reconnected_after.ok_or_else(|| anyhow::anyhow!("never reconnected: {states:?}"))?;
    // Down for 2 s; backoff 1 s, 2 s, 4 s … so at most ~7 s plus connect time.
    assert!(
        after < Duration::from_secs(12),
        "reconnected after {after:?}"
    );
    let report = viewer
        .ok_or_else(|| anyhow::anyhow!("no viewer"))?
        .report()
        .await?;
    println!("viewer after reconnect: {:?}", report.video);
    assert!(report.video.frames > 60, "{:?}", report.video);
    handle.leave().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_gives_up_after_five_attempts_when_the_server_is_gone() -> anyhow::Result<()> {
    let mut server = Server::start()?;
    let (_handle, mut events) = connect(&server).await?;
    server.kill();
    let killed = Instant::now();
    let mut states = Vec::new();
    let error = loop {
        match tokio::time::timeout(Duration::from_secs(60), events.recv()).await? {
            Some(PublisherEvent::StateChanged(ConnectionState::Failed { error })) => break error,
            Some(PublisherEvent::StateChanged(s)) => states.push(s),
            Some(_) => {}
            None => anyhow::bail!("events closed before Failed: {states:?}"),
        }
    };
    let took = killed.elapsed();
    println!("failed after {took:?}: {error}; states {states:?}");
    let attempts: Vec<u32> = states
        .iter()
        .filter_map(|s| match s {
            ConnectionState::Reconnecting { attempt, max: 5 } => Some(*attempt),
            _ => None,
        })
        .collect();
    assert_eq!(attempts, vec![1, 2, 3, 4, 5]);
    assert!(error.contains("5 reconnect attempts"), "{error}");
    // 1 + 2 + 4 + 8 + 15 s of backoff.
    assert!(
        took >= Duration::from_secs(30) && took < Duration::from_secs(50),
        "{took:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
/// The server forgets the session (simulated node failure): the resume attempt is
/// refused (LeaveRequest StateMismatch / action RECONNECT), the next attempt is a
/// full rejoin that republishes, and the viewer gets video again.
async fn refused_resume_falls_back_to_a_full_rejoin() -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    let server = Server::start()?;
    let (handle, mut events) = connect(&server).await?;
    let video = handle
        .publish_video(VideoTrackOptions::new(VideoCodec::H264, 640, 360, 30))
        .await?;
    let mut feed = Feed::new()?;
    let t = server.token("viewer1", "room", false)?;
    let viewer = spawn_viewer(&server.ws_url(), &t, 14.0)?;
    let start = Instant::now();
    let mut states = Vec::new();
    let mut published = 0;
    let mut force_key = true;
    let mut simulated = false;
    let mut tick = tokio::time::interval(Duration::from_millis(33));
    let mut frame_no = 0u64;
    while start.elapsed() < Duration::from_secs(12) {
        tick.tick().await;
        while let Ok(ev) = events.try_recv() {
            match ev {
                PublisherEvent::KeyframeRequested { .. } => force_key = true,
                PublisherEvent::TrackPublished { .. } => published += 1,
                PublisherEvent::StateChanged(s) => {
                    println!("{:?}: {s:?}", start.elapsed());
                    states.push(s);
                }
                _ => {}
            }
        }
        if !simulated && start.elapsed() > Duration::from_secs(4) {
            simulated = true;
            handle.simulate(livekit_protocol::simulate_scenario::Scenario::NodeFailure(
                true,
            ))?;
        }
        feed.send(&video, frame_no, force_key)?;
        force_key = false;
        frame_no += 1;
    }
    let report = viewer.report().await?;
    println!(
        "states {states:?}, TrackPublished {published}x, viewer {:?}",
        report.video
    );
    assert!(
        states.contains(&ConnectionState::Reconnecting { attempt: 1, max: 5 }),
        "{states:?}"
    );
    assert!(
        states.contains(&ConnectionState::Reconnecting { attempt: 2, max: 5 }),
        "{states:?}"
    );
    assert_eq!(
        states.last(),
        Some(&ConnectionState::Connected),
        "{states:?}"
    );
    assert_eq!(
        published, 2,
        "published, then published again in the new session"
    );
    let per_s = &report.video.frames_per_second;
    let late: u64 = per_s
        .iter()
        .filter(|(k, _)| k.parse::<u64>().is_ok_and(|s| s >= 9))
        .map(|(_, v)| *v)
        .sum();
    assert!(
        late > 40,
        "the viewer decodes again after the rejoin: {per_s:?}"
    );
    handle.leave().await?;
    Ok(())
}
