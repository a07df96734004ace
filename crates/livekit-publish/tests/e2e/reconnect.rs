//! Reconnect: the LiveKit server dies mid-stream and comes back on the same
//! ports (the publisher rejoins and a new viewer decodes frames again), or
//! stays gone (the publisher gives up after 5 attempts with a clear error).

use crate::common;

use std::time::{Duration, Instant};

use common::{Server, spawn_viewer};
use streamit_livekit_publish::*;
use streamit_media::MediaTime;
use streamit_media::encode::{VideoEncoder, VideoEncoderConfig, new_video_encoder};
use streamit_media::pattern::generate_pattern;
use streamit_testkit::SignalProxy;
use tokio::sync::mpsc::Receiver;

/// The synthetic pattern encoded live as H.264 640×360 at 30 fps (30 cached pictures).
struct Feed {
    enc: Box<dyn VideoEncoder>,
    pics: Vec<streamit_media::VideoFrame>,
    frame_no: u64,
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
        Ok(Feed {
            enc,
            pics,
            frame_no: 0,
        })
    }

    /// Encodes the next frame and hands it to the track (if the encoder emitted one).
    fn send(&mut self, video: &VideoTrackSender, force_key: bool) -> anyhow::Result<()> {
        let frame_no = self.frame_no;
        self.frame_no += 1;
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

/// The Python viewer staying `seconds`, sending one chat message `chat_after`
/// its start (to test the data path after a recovery).
fn spawn_chatting_viewer(
    server: &Server,
    seconds: f64,
    chat_after: Duration,
) -> anyhow::Result<streamit_testkit::viewer::RunningViewer> {
    let t = server.token("viewer1", "room", false)?;
    let mut o = common::viewer_options(&server.ws_url(), &t, seconds);
    o.send_chat = vec![VIEWER_CHAT.to_string()];
    o.chat_delay = chat_after;
    o.until_frames = Some(u32::MAX);
    streamit_testkit::Viewer::spawn(o)
}

const VIEWER_CHAT: &str = "from the viewer, after the recovery";
const PUBLISHER_CHAT: &str = "from the publisher, after the recovery";

/// Chat went both ways after the recovery: the publisher's message reached the
/// viewer (publisher PC's `_reliable`), the viewer's reached the publisher
/// (server-opened channel on the subscriber PC).
fn assert_chat_both_ways(report: &streamit_testkit::ViewerReport, chats: &[PublisherEvent]) {
    assert!(
        report
            .chat_received
            .iter()
            .any(|c| c.from == "creator" && c.text == PUBLISHER_CHAT),
        "viewer got {:?}",
        report.chat_received
    );
    assert!(
        chats.iter().any(
            |c| matches!(c, PublisherEvent::ChatReceived { from_identity, text, .. }
            if from_identity.as_str() == "viewer1" && text == VIEWER_CHAT)
        ),
        "publisher got {chats:?}"
    );
}

async fn connect(server: &Server) -> anyhow::Result<(PublisherHandle, Receiver<PublisherEvent>)> {
    connect_via(server, &server.ws_url()).await
}

/// Joins with a token of `server` at `ws_url` (the server itself, or a proxy in front).
async fn connect_via(
    server: &Server,
    ws_url: &str,
) -> anyhow::Result<(PublisherHandle, Receiver<PublisherEvent>)> {
    let token = server.token("creator", "room", true)?;
    let (handle, mut events) =
        Publisher::connect(ws_url, &token, PublishOptions::default()).await?;
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

/// Joins through `ws_url` and publishes the H.264 640×360 30 fps track `Feed` fills.
async fn connect_and_publish(
    server: &Server,
    ws_url: &str,
) -> anyhow::Result<(PublisherHandle, Receiver<PublisherEvent>, VideoTrackSender)> {
    let (handle, events) = connect_via(server, ws_url).await?;
    let video = handle
        .publish_video(VideoTrackOptions::new(VideoCodec::H264, 640, 360, 30))
        .await?;
    Ok((handle, events, video))
}

/// What the publisher reported while a test fed it video: the tests assert on
/// it, and the feed must send a key frame whenever one was asked for.
struct Seen {
    states: Vec<ConnectionState>,
    published: u32,
    stats: StatsSnapshot,
    chats: Vec<PublisherEvent>,
    errors: Vec<String>,
    force_key: bool,
    /// The first `Connected` after another state: the recovery.
    recovered_at: Option<Instant>,
    /// Every state change, when it arrived.
    timeline: Vec<(Instant, ConnectionState)>,
    /// The engine's account of each recovery (started, ended).
    recoveries: Vec<Recovery>,
}

impl Seen {
    fn new() -> Self {
        Seen {
            states: Vec::new(),
            published: 0,
            stats: StatsSnapshot::default(),
            chats: Vec::new(),
            errors: Vec::new(),
            force_key: true,
            recovered_at: None,
            timeline: Vec::new(),
            recoveries: Vec::new(),
        }
    }

    /// Takes every pending event; returns the states among them, in order, for
    /// the test's own timing.
    fn drain(
        &mut self,
        events: &mut Receiver<PublisherEvent>,
        start: Instant,
    ) -> Vec<ConnectionState> {
        let mut new_states = Vec::new();
        while let Ok(ev) = events.try_recv() {
            match ev {
                PublisherEvent::KeyframeRequested { .. } => self.force_key = true,
                PublisherEvent::TrackPublished { .. } => self.published += 1,
                PublisherEvent::Stats(s) => self.stats = s,
                PublisherEvent::ChatReceived { .. } => self.chats.push(ev),
                PublisherEvent::Error(e) => self.errors.push(e),
                PublisherEvent::Recovery(r) => self.recoveries.push(r),
                PublisherEvent::StateChanged(s) => {
                    println!("{:?}: {s:?}", start.elapsed());
                    if s == ConnectionState::Connected
                        && self.recovered_at.is_none()
                        && !self.states.is_empty()
                    {
                        self.recovered_at = Some(Instant::now());
                    }
                    self.states.push(s.clone());
                    self.timeline.push((Instant::now(), s.clone()));
                    new_states.push(s);
                }
                _ => {}
            }
        }
        new_states
    }

    /// Whether the next frame must be a key frame (asked for since the last one).
    fn take_force_key(&mut self) -> bool {
        std::mem::take(&mut self.force_key)
    }

    /// Sends the publisher's chat once, a second after the recovery.
    fn chat_once_recovered(
        &self,
        handle: &PublisherHandle,
        chat_sent: &mut bool,
    ) -> anyhow::Result<()> {
        if !*chat_sent
            && self
                .recovered_at
                .is_some_and(|r| r.elapsed() > Duration::from_secs(1))
        {
            handle.send_chat(PUBLISHER_CHAT)?;
            *chat_sent = true;
        }
        Ok(())
    }
}

/// The session was resumed, once, not rejoined: connected again at the end and
/// the track never announced a second time.
fn assert_resumed_not_rejoined(states: &[ConnectionState], stats: &StatsSnapshot, published: u32) {
    assert_eq!(
        states.last(),
        Some(&ConnectionState::Connected),
        "{states:?}"
    );
    assert_eq!(
        (stats.resumes, stats.rejoins),
        (1, 0),
        "a resume, not a rejoin"
    );
    assert_eq!(published, 1, "the track is not announced again");
}

/// The viewer's decoded frames per second of its run, in order of the second.
fn frames_per_second(report: &streamit_testkit::ViewerReport) -> Vec<(u64, u64)> {
    let mut per_s: Vec<(u64, u64)> = report
        .video
        .frames_per_second
        .iter()
        .filter_map(|(k, v)| Some((k.parse().ok()?, *v)))
        .collect();
    per_s.sort();
    per_s
}

/// The viewer decodes frames again at the end (the last 3 whole seconds of video).
fn assert_decodes_at_the_end(per_s: &[(u64, u64)]) {
    let tail: u64 = per_s.iter().rev().skip(1).take(3).map(|(_, n)| n).sum();
    assert!(tail > 45, "frames/s at the end: {per_s:?}");
}

/// At least `seconds` whole seconds (first and last are partial) and frames in
/// every one of them: the video never stopped.
fn assert_no_second_without_frames(per_s: &[(u64, u64)], seconds: usize) {
    let whole = &per_s[1..per_s.len().saturating_sub(1)];
    assert!(
        whole.len() >= seconds && whole.iter().all(|(_, n)| *n >= 5),
        "frames/s: {per_s:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_recovers_after_the_server_restarts() -> anyhow::Result<()> {
    common::subscriber::init_tracing();
    let mut server = Server::start()?;
    let (handle, mut events, video) = connect_and_publish(&server, &server.ws_url()).await?;
    let mut feed = Feed::new()?;

    let start = Instant::now();
    let mut seen = Seen::new();
    let mut killed_at = None;
    let mut restarted = false;
    let mut reconnected_after = None;
    let mut viewer = None;
    let mut before_kill = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(33));
    while start.elapsed() < Duration::from_secs(40) {
        tick.tick().await;
        for s in seen.drain(&mut events, start) {
            if s == ConnectionState::Connected
                && let Some(k) = killed_at
                && reconnected_after.is_none()
            {
                reconnected_after = Some(Instant::now().duration_since(k));
                // A viewer that joins the new server must see video again.
                let t = server.token("viewer-after", "room", false)?;
                viewer = Some(spawn_viewer(&server.ws_url(), &t, 8.0)?);
            }
        }
        if killed_at.is_none() && start.elapsed() > Duration::from_secs(3) {
            before_kill = seen.stats.bytes_sent_total;
            server.kill();
            killed_at = Some(Instant::now());
        }
        if !restarted && killed_at.is_some_and(|k| k.elapsed() > Duration::from_secs(2)) {
            server.restart()?;
            restarted = true;
        }
        feed.send(&video, seen.take_force_key())?;
        if let Some(after) = reconnected_after
            && Instant::now().duration_since(killed_at.unwrap_or_else(Instant::now))
                > after + Duration::from_secs(9)
        {
            break;
        }
    }
    let states = &seen.states;
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
    // The session's byte count goes on across the rejoin: the old transport's bytes plus
    // the new one's (whose own counters started at zero).
    let st = &seen.stats;
    let new_transport: u64 = st.layers.iter().map(|l| l.bytes).sum();
    println!(
        "bytes: {before_kill} before the kill, {new_transport} on the new transport, {} in all",
        st.bytes_sent_total
    );
    assert!(before_kill > 10_000, "{before_kill} bytes before the kill");
    assert!(
        st.bytes_sent_total >= before_kill + new_transport && new_transport > 10_000,
        "{} in all, {before_kill} before the kill, {new_transport} after",
        st.bytes_sent_total
    );
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
/// refused (LeaveRequest StateMismatch / action RECONNECT), the same attempt goes
/// on at once with a full rejoin that republishes, and the viewer gets video again.
async fn refused_resume_falls_back_to_a_full_rejoin() -> anyhow::Result<()> {
    common::subscriber::init_tracing();
    let server = Server::start()?;
    let (handle, mut events, video) = connect_and_publish(&server, &server.ws_url()).await?;
    let mut feed = Feed::new()?;
    let t = server.token("viewer1", "room", false)?;
    let viewer = spawn_viewer(&server.ws_url(), &t, 14.0)?;
    let start = Instant::now();
    let mut seen = Seen::new();
    let mut simulated = false;
    let mut tick = tokio::time::interval(Duration::from_millis(33));
    while start.elapsed() < Duration::from_secs(12) {
        tick.tick().await;
        seen.drain(&mut events, start);
        if !simulated && start.elapsed() > Duration::from_secs(4) {
            simulated = true;
            handle.simulate(livekit_protocol::simulate_scenario::Scenario::NodeFailure(
                true,
            ))?;
        }
        feed.send(&video, seen.take_force_key())?;
    }
    let report = viewer.report().await?;
    let Seen {
        states,
        published,
        stats,
        recoveries,
        ..
    } = seen;
    println!(
        "states {states:?}, TrackPublished {published}x, recovery {:?}, viewer {:?}",
        recoveries.last(),
        report.video
    );
    assert!(
        states.contains(&ConnectionState::Reconnecting { attempt: 1, max: 5 }),
        "{states:?}"
    );
    assert_eq!(
        states.last(),
        Some(&ConnectionState::Connected),
        "{states:?}"
    );
    assert!(
        !states.contains(&ConnectionState::Reconnecting { attempt: 2, max: 5 }),
        "the refusal is followed by the rejoin at once: {states:?}"
    );
    assert_eq!(
        (stats.resumes, stats.rejoins),
        (0, 1),
        "a rejoin, no resume"
    );
    let r = recoveries.last().expect("a recovery report");
    assert_eq!(
        (r.attempts, r.outcome),
        (1, RecoveryOutcome::Rejoined(RejoinReason::ResumeRefused)),
        "{r:?}"
    );
    assert_eq!(
        stats.last_recovery.as_ref().map(|l| l.outcome),
        Some(r.outcome)
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

/// The signal WebSocket drops mid-stream and the proxy refuses connections for
/// 1.5 s while the server and the media path stay up: the publisher resumes the
/// same session (no rejoin, no track announced again) and the viewer that stayed
/// in the room keeps decoding the same track.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signal_loss_resumes_the_same_session() -> anyhow::Result<()> {
    common::subscriber::init_tracing();
    let server = Server::start()?;
    let proxy = SignalProxy::start(&server.ws_url()).await?;
    let (handle, mut events, video) = connect_and_publish(&server, &proxy.ws_url()).await?;
    let mut feed = Feed::new()?;
    // Cut at 5 s, resumed at ~8 s: the viewer chats at ~11 s.
    let viewer = spawn_chatting_viewer(&server, 18.0, Duration::from_secs(11))?;

    let start = Instant::now();
    let mut seen = Seen::new();
    let mut cut_at: Option<Instant> = None;
    let mut reopened = false;
    let mut resumed_after = None;
    let mut chat_sent = false;
    let mut tick = tokio::time::interval(Duration::from_millis(33));
    while start.elapsed() < Duration::from_secs(16) {
        tick.tick().await;
        for s in seen.drain(&mut events, start) {
            if s == ConnectionState::Connected
                && let Some(c) = cut_at
                && resumed_after.is_none()
            {
                resumed_after = Some(c.elapsed());
            }
        }
        if cut_at.is_none() && start.elapsed() > Duration::from_secs(5) {
            proxy.cut();
            cut_at = Some(Instant::now());
        }
        if !reopened && cut_at.is_some_and(|c| c.elapsed() > Duration::from_millis(1500)) {
            proxy.reopen();
            reopened = true;
        }
        seen.chat_once_recovered(&handle, &mut chat_sent)?;
        feed.send(&video, seen.take_force_key())?;
    }
    let report = viewer.report().await?;
    let Seen {
        states,
        published,
        stats,
        chats,
        errors,
        ..
    } = seen;
    let log = server.log();
    let sync_state = log
        .lines()
        .find(|l| l.contains("setting sync state"))
        .unwrap_or_default();
    println!("server: {sync_state}");
    println!(
        "states {states:?}; resumed {resumed_after:?} after the cut; TrackPublished {published}x; \
         resumes {} rejoins {}; proxy accepted {}; viewer tracks {:?}, frames/s {:?}, participants {:?}",
        stats.resumes,
        stats.rejoins,
        proxy.accepted(),
        report.video.tracks,
        report.video.frames_per_second,
        report.participant_events,
    );
    assert!(
        states.contains(&ConnectionState::Reconnecting { attempt: 1, max: 5 }),
        "{states:?}"
    );
    assert_resumed_not_rejoined(&states, &stats, published);
    let after = resumed_after.ok_or_else(|| anyhow::anyhow!("never resumed: {states:?}"))?;
    // Refused for 1.5 s; attempts at +1 s (refused) and +3 s.
    assert!(after < Duration::from_secs(6), "resumed after {after:?}");
    assert!(proxy.accepted() >= 2, "the resume came through the proxy");
    assert!(
        log.contains("resuming RTC session")
            && !log.contains("StateMismatch")
            && !log.contains("unable to resume"),
        "the server did not resume:\n{log}"
    );
    // The server took our SyncState: the published track and both data channels.
    for expected in ["publishTracks", "\"_reliable\"", "\"_lossy\""] {
        assert!(sync_state.contains(expected), "{expected} in {sync_state}");
    }
    assert!(errors.is_empty(), "{errors:?}");
    // The viewer saw one track from one unbroken participant.
    assert_eq!(report.video.tracks.len(), 1, "{:?}", report.video.tracks);
    assert!(
        !report
            .participant_events
            .iter()
            .any(|e| e["event"] == "left" && e["identity"] == "creator"),
        "{:?}",
        report.participant_events
    );
    // … and decodes frames again at the end.
    let per_s = frames_per_second(&report);
    assert_decodes_at_the_end(&per_s);
    // The media path never depended on the signal: no whole second without
    // frames, outage included (measured: 27-31 frames in every second).
    assert_no_second_without_frames(&per_s, 10);
    assert_chat_both_ways(&report, &chats);
    handle.leave().await?;
    Ok(())
}

/// The media path goes dark for 18 s (every datagram of the publisher dropped at
/// its sockets) while the signal stays up: the publisher notices the transport
/// loss (~13 s: str0m keeps a pair alive 15 s after the peer's last check), resumes
/// the session with ICE restarts of both transports once the path is back (no
/// rejoin, no track announced again) and the viewer that stayed decodes the same
/// track again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_loss_resumes_with_an_ice_restart() -> anyhow::Result<()> {
    common::subscriber::init_tracing();
    let server = Server::start()?;
    let (handle, mut events, video) = connect_and_publish(&server, &server.ws_url()).await?;
    let mut feed = Feed::new()?;
    // Dark from 4 s to 22 s, resumed at ~25.5 s: the viewer chats at ~29 s.
    let viewer = spawn_chatting_viewer(&server, 40.0, Duration::from_secs(29))?;

    let start = Instant::now();
    let mut seen = Seen::new();
    let mut dark_at: Option<Instant> = None;
    let mut lit_at: Option<Instant> = None;
    let mut noticed_after = None;
    let mut recovered_after = None;
    let mut chat_sent = false;
    let mut tick = tokio::time::interval(Duration::from_millis(33));
    while start.elapsed() < Duration::from_secs(42) {
        tick.tick().await;
        for s in seen.drain(&mut events, start) {
            if let Some(d) = dark_at {
                if matches!(s, ConnectionState::Reconnecting { .. }) && noticed_after.is_none() {
                    noticed_after = Some(d.elapsed());
                }
                if s == ConnectionState::Connected && recovered_after.is_none() {
                    recovered_after = lit_at.map(|l| l.elapsed());
                }
            }
        }
        if dark_at.is_none() && start.elapsed() > Duration::from_secs(4) {
            handle.simulate_network_outage(true, true);
            dark_at = Some(Instant::now());
        }
        if lit_at.is_none() && dark_at.is_some_and(|d| d.elapsed() > Duration::from_secs(18)) {
            handle.simulate_network_outage(false, false);
            lit_at = Some(Instant::now());
        }
        seen.chat_once_recovered(&handle, &mut chat_sent)?;
        feed.send(&video, seen.take_force_key())?;
        // Nine more seconds of video (and the chat) once recovered.
        if let (Some(l), Some(r)) = (lit_at, recovered_after)
            && l.elapsed() > r + Duration::from_secs(9)
        {
            break;
        }
    }
    let report = viewer.report().await?;
    let Seen {
        states,
        published,
        stats,
        chats,
        ..
    } = seen;
    println!(
        "states {states:?}; noticed {noticed_after:?} after going dark, Connected {recovered_after:?} \
         after the path came back; TrackPublished {published}x; resumes {} rejoins {}; \
         viewer tracks {}, frames/s {:?}",
        stats.resumes,
        stats.rejoins,
        report.video.tracks.len(),
        report.video.frames_per_second,
    );
    assert!(
        noticed_after.is_some(),
        "transport loss noticed: {states:?}"
    );
    assert_resumed_not_rejoined(&states, &stats, published);
    assert!(recovered_after.is_some(), "{states:?}");
    assert_eq!(report.video.tracks.len(), 1, "{:?}", report.video.tracks);
    assert_decodes_at_the_end(&frames_per_second(&report));
    assert_chat_both_ways(&report, &chats);
    handle.leave().await?;
    Ok(())
}

/// Only the subscriber transport (the server-opened data channels that carry the
/// viewers' chat) goes dark for 18 s: the publisher notices, resumes (the server
/// ICE-restarts its subscriber PC) while video never stops, and a viewer's chat
/// sent after the recovery arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_transport_loss_resumes_while_video_goes_on() -> anyhow::Result<()> {
    common::subscriber::init_tracing();
    let server = Server::start()?;
    let (handle, mut events, video) = connect_and_publish(&server, &server.ws_url()).await?;
    let mut feed = Feed::new()?;
    // Dark from 3 s to 21 s, noticed at ~16 s, resumed by ~24 s: the viewer chats at ~28 s.
    let viewer = spawn_chatting_viewer(&server, 34.0, Duration::from_secs(28))?;

    let start = Instant::now();
    let mut seen = Seen::new();
    let mut dark = false;
    let mut lit = false;
    let mut tick = tokio::time::interval(Duration::from_millis(33));
    while start.elapsed() < Duration::from_secs(32) {
        tick.tick().await;
        seen.drain(&mut events, start);
        if !dark && start.elapsed() > Duration::from_secs(3) {
            handle.simulate_network_outage(false, true);
            dark = true;
        }
        if !lit && start.elapsed() > Duration::from_secs(21) {
            handle.simulate_network_outage(false, false);
            lit = true;
        }
        feed.send(&video, seen.take_force_key())?;
    }
    let report = viewer.report().await?;
    let Seen {
        states,
        published,
        stats,
        chats,
        ..
    } = seen;
    let per_s = frames_per_second(&report);
    println!(
        "states {states:?}; TrackPublished {published}x; resumes {} rejoins {}; frames/s {per_s:?}; chats {chats:?}",
        stats.resumes, stats.rejoins
    );
    assert!(
        states.contains(&ConnectionState::Reconnecting { attempt: 1, max: 5 }),
        "the subscriber transport loss was noticed: {states:?}"
    );
    assert_resumed_not_rejoined(&states, &stats, published);
    // Video never depended on the subscriber transport.
    assert_no_second_without_frames(&per_s, 20);
    assert!(
        chats.iter().any(
            |c| matches!(c, PublisherEvent::ChatReceived { from_identity, text, .. }
            if from_identity.as_str() == "viewer1" && text == VIEWER_CHAT)
        ),
        "publisher got {chats:?}"
    );
    handle.leave().await?;
    Ok(())
}

/// Arrival times (unix µs) of the decoded frames whose pattern the viewers read,
/// all viewers together, in order.
fn arrivals(reports: &[&streamit_testkit::ViewerReport]) -> Vec<u64> {
    let mut t: Vec<u64> = reports
        .iter()
        .flat_map(|r| r.pattern.samples.iter().map(|s| s.2))
        .collect();
    t.sort_unstable();
    t
}

/// The longest gap between two decoded frames in `arrivals` (pattern samples are
/// one per frame in these runs, ≤ ~70 ms apart while video flows) and when it
/// began (unix µs). `None` without two frames.
fn longest_freeze(arrivals: &[u64]) -> Option<(Duration, u64)> {
    arrivals
        .windows(2)
        .map(|w| (Duration::from_micros(w[1] - w[0]), w[0]))
        .max_by_key(|(gap, _)| *gap)
}

fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// A viewer reading the pattern for `seconds` (as `identity`).
fn spawn_pattern_viewer(
    server: &Server,
    identity: &str,
    seconds: f64,
) -> anyhow::Result<streamit_testkit::viewer::RunningViewer> {
    let t = server.token(identity, "room", false)?;
    let mut o = common::viewer_options(&server.ws_url(), &t, seconds);
    o.read_pattern = true;
    o.until_frames = Some(u32::MAX);
    streamit_testkit::Viewer::spawn(o)
}

/// One outage of the server while the publisher streams to a viewer that stays
/// from the start (and reconnects by itself) and a second viewer that joins the
/// moment the server is back (a page retrying), in case the first one's SDK gave
/// up reconnecting during the outage.
struct Outage {
    /// When the server went away (killed or stopped) and came back.
    gone: Instant,
    back: Instant,
    back_unix_us: u64,
}

impl Outage {
    /// Prints the publisher's detection and rejoin timing and the viewers'
    /// freeze; returns the freeze the audience saw: the longest gap between
    /// decoded frames of either viewer.
    fn measure(
        &self,
        what: &str,
        seen: &Seen,
        staying: &streamit_testkit::ViewerReport,
        joining: &streamit_testkit::ViewerReport,
    ) -> anyhow::Result<Duration> {
        let secs = |d: Duration| format!("{:.2} s", d.as_secs_f64());
        let noticed = seen
            .timeline
            .iter()
            .find(|(at, s)| *at >= self.gone && matches!(s, ConnectionState::Reconnecting { .. }))
            .map(|(at, _)| at.duration_since(self.gone));
        let connected = seen
            .timeline
            .iter()
            .find(|(at, s)| *at >= self.back && *s == ConnectionState::Connected)
            .map(|(at, _)| *at);
        let all = arrivals(&[staying, joining]);
        let (freeze, _) = longest_freeze(&all)
            .ok_or_else(|| anyhow::anyhow!("the viewers read no pattern: {:?}", staying.video))?;
        let own = arrivals(&[staying]);
        let staying_back = own.iter().any(|&t| t > self.back_unix_us);
        let own_freeze = longest_freeze(&own).map(|(f, _)| f);
        let joining_first = joining
            .pattern
            .samples
            .first()
            .map(|s| Duration::from_micros(s.2.saturating_sub(self.back_unix_us)));
        println!(
            "{what}: server away {}; publisher noticed after {}, connected again {} after the \
             server's return; audience's longest freeze {}; the staying viewer {} (its own \
             longest gap {:?}, disconnect {:?}), the viewer joining at the return decoded its \
             first frame {:?} after it",
            secs(self.back.duration_since(self.gone)),
            noticed.map_or("never".into(), secs),
            connected.map_or("never".into(), |c| secs(c.duration_since(self.back))),
            secs(freeze),
            if staying_back {
                "got video again"
            } else {
                "gave up reconnecting (its SDK's budget)"
            },
            own_freeze,
            staying.disconnect_reason,
            joining_first,
        );
        for r in &seen.recoveries {
            println!(
                "  recovery: {:?} ({}) silent_for {:?} attempts {} server_back_after {:?} {:?} took {:?}",
                r.cause, r.detail, r.silent_for, r.attempts, r.server_back_after, r.outcome, r.took
            );
        }
        anyhow::ensure!(
            connected.is_some(),
            "the publisher never reconnected: {:?}",
            seen.states
        );
        // Video flows again well after the return (the freeze is not the end of the run).
        anyhow::ensure!(
            all.last()
                .is_some_and(|&t| t > self.back_unix_us + 3_000_000),
            "no video 3 s after the server's return"
        );
        Ok(freeze)
    }
}

/// How a server outage is made and ended.
enum Fault {
    /// Killed, then started again on the same ports.
    Crash,
    /// SIGSTOP, then SIGCONT.
    Stop,
}

/// Publishes the pattern for `run_for` with a viewer staying throughout; 5 s in, the
/// server goes away for `outage` (`fault`), and a second viewer joins when it is back.
/// Returns the audience's freeze and what the publisher reported.
async fn freeze_through_outage(
    fault: Fault,
    outage: Duration,
    run_for: Duration,
) -> anyhow::Result<(Duration, Seen, PublisherHandle)> {
    common::subscriber::init_tracing();
    let mut server = Server::start()?;
    let (handle, mut events, video) = connect_and_publish(&server, &server.ws_url()).await?;
    let mut feed = Feed::new()?;
    let staying = spawn_pattern_viewer(&server, "viewer1", run_for.as_secs_f64() + 1.0)?;
    let mut joining = None;
    let start = Instant::now();
    let mut seen = Seen::new();
    let mut gone = None;
    let mut back = None;
    let mut tick = tokio::time::interval(Duration::from_millis(33));
    while start.elapsed() < run_for {
        tick.tick().await;
        seen.drain(&mut events, start);
        if gone.is_none() && start.elapsed() > Duration::from_secs(5) {
            match fault {
                Fault::Crash => server.kill(),
                Fault::Stop => anyhow::ensure!(server.pause(), "nothing to pause"),
            }
            gone = Some(Instant::now());
        }
        if back.is_none() && gone.is_some_and(|g| g.elapsed() >= outage) {
            match fault {
                Fault::Crash => server.restart()?,
                Fault::Stop => anyhow::ensure!(server.resume(), "nothing to resume"),
            }
            back = Some((Instant::now(), unix_us()));
            let left = run_for.saturating_sub(start.elapsed()).as_secs_f64();
            joining = Some(spawn_pattern_viewer(&server, "viewer2", left)?);
        }
        feed.send(&video, seen.take_force_key())?;
    }
    let staying = staying.report().await?;
    let joining = joining
        .ok_or_else(|| anyhow::anyhow!("the server never came back"))?
        .report()
        .await?;
    seen.drain(&mut events, start);
    let (back, back_unix_us) = back.ok_or_else(|| anyhow::anyhow!("never came back"))?;
    let outage = Outage {
        gone: gone.ok_or_else(|| anyhow::anyhow!("never went away"))?,
        back,
        back_unix_us,
    };
    let what = match fault {
        Fault::Crash => "server killed",
        Fault::Stop => "server stopped",
    };
    let freeze = outage.measure(what, &seen, &staying, &joining)?;
    Ok((freeze, seen, handle))
}

/// LiveKit is killed for 10 s and comes back on the same ports: the publisher
/// probes it every 500 ms, rejoins at once when its resume is refused, and the
/// audience is frozen at most 12 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_freeze_after_a_10_s_server_crash_is_at_most_12_s() -> anyhow::Result<()> {
    let (freeze, seen, handle) = freeze_through_outage(
        Fault::Crash,
        Duration::from_secs(10),
        Duration::from_secs(33),
    )
    .await?;
    assert!(
        freeze <= Duration::from_secs(12),
        "the audience froze {freeze:?}"
    );
    assert!(
        seen.recoveries
            .iter()
            .any(|r| r.server_back_after.is_some()
                && matches!(r.outcome, RecoveryOutcome::Rejoined(_))),
        "{:?}",
        seen.recoveries
    );
    handle.leave().await?;
    Ok(())
}

/// LiveKit is frozen (SIGSTOP) for 20 s, then continued: the publisher notices
/// the silent media plane within ~2-3 s, probes the server, recovers as soon as
/// it runs again, and the audience is frozen at most 22 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_freeze_after_a_20_s_server_stop_is_at_most_22_s() -> anyhow::Result<()> {
    let (freeze, seen, handle) = freeze_through_outage(
        Fault::Stop,
        Duration::from_secs(20),
        Duration::from_secs(43),
    )
    .await?;
    let silent = seen
        .recoveries
        .iter()
        .find(|r| r.cause == LossCause::ServerSilent)
        .ok_or_else(|| anyhow::anyhow!("not noticed as a silent server: {:?}", seen.recoveries))?;
    assert!(
        silent
            .silent_for
            .is_some_and(|s| s < Duration::from_secs(4)),
        "{silent:?}"
    );
    assert!(
        freeze <= Duration::from_secs(22),
        "the audience froze {freeze:?}"
    );
    handle.leave().await?;
    Ok(())
}
