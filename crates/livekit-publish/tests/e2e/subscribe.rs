//! The receive side end to end against a real livekit-server (v1.13.5): one Rust
//! participant publishes the encoded test pattern and Opus, a second one joins
//! with a viewer token and `subscribe: true`, decodes what arrives with
//! streamit-media's decoders and reads the pattern's frame numbers and capture
//! times back.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Server;
use common::subscriber::*;
use streamit_livekit_publish::*;
use streamit_media::MediaTime;
use streamit_media::encode::{VideoEncoderConfig, new_video_encoder};
use streamit_media::pattern::generate_pattern;
use tokio::sync::mpsc::Receiver;

struct Run {
    codec: VideoCodec,
    width: u32,
    height: u32,
    fps: u32,
    bitrate: u32,
    /// Length of the measured window.
    seconds: u64,
    /// Share of the frames sent in the window that must decode with a readable code.
    min_percent: u64,
    /// Mute and unmute the video after the window, checking TrackMuted.
    check_mute: bool,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn subscribe_run(r: Run) -> anyhow::Result<()> {
    init_tracing();
    let server = Server::start()?;
    let url = server.ws_url();

    // The publisher.
    let token = server.token("creator", "room", true)?;
    let (publisher, pub_log) = connect_publisher(&url, &token).await?;

    // The viewer: a token that cannot publish, subscribe on.
    let viewer_token = server.token("viewer1", "room", false)?;
    let t_join = Instant::now();
    let (viewer, view_log) = connect_subscriber(&url, &viewer_token, Some(256)).await?;
    let media = viewer
        .take_media()
        .ok_or_else(|| anyhow::anyhow!("no media receiver"))?;
    anyhow::ensure!(viewer.take_media().is_none(), "one media receiver only");
    let (decoded, decoder) = spawn_decoding(media);

    let video = publisher
        .publish_video(VideoTrackOptions::new(r.codec, r.width, r.height, r.fps))
        .await?;
    let audio = publisher
        .publish_audio(AudioTrackOptions::default())
        .await?;
    let video_sid = match pub_log
        .wait(
            Duration::from_secs(10),
            "video published",
            |e| matches!(e, PublisherEvent::TrackPublished { cid, .. } if cid == video.cid()),
        )
        .await?
    {
        PublisherEvent::TrackPublished { sid, .. } => sid,
        _ => unreachable!("matched above"),
    };

    // Both tracks announced to the viewer, with identity, kind and codec.
    let sub_video = view_log
        .wait(
            Duration::from_secs(10),
            "video TrackSubscribed",
            |e| matches!(e, PublisherEvent::TrackSubscribed(t) if t.kind == TrackKind::Video),
        )
        .await?;
    let sub_audio = view_log
        .wait(
            Duration::from_secs(10),
            "audio TrackSubscribed",
            |e| matches!(e, PublisherEvent::TrackSubscribed(t) if t.kind == TrackKind::Audio),
        )
        .await?;
    let subscribed_after = t_join.elapsed();
    println!("viewer: {sub_video:?}\nviewer: {sub_audio:?} (after {subscribed_after:?})");
    let PublisherEvent::TrackSubscribed(vt) = &sub_video else {
        unreachable!("matched above")
    };
    assert_eq!(vt.participant.as_str(), "creator");
    assert_eq!(vt.sid, video_sid);
    assert_eq!(vt.codec, Some(r.codec));
    assert_eq!(vt.name, "camera");
    assert_eq!(vt.dimensions, Some((r.width, r.height)));
    let PublisherEvent::TrackSubscribed(at) = &sub_audio else {
        unreachable!("matched above")
    };
    assert_eq!(at.participant.as_str(), "creator");
    // Opus in RED: the publisher offers RED and LiveKit answers it by default.
    assert_eq!(at.mime.to_lowercase(), "audio/red");
    assert_eq!(at.name, "microphone");

    // Frame n is drawn for its slot n/fps on the test's media clock (t0 below),
    // which the pattern's code carries as the capture time.
    let frame_us = 1_000_000 / u64::from(r.fps);
    let total_frames = (r.seconds + 12) * u64::from(r.fps);
    let mut enc = new_video_encoder(
        media_codec(r.codec),
        VideoEncoderConfig::new(r.width, r.height, r.fps as f32, r.bitrate),
    )?;
    let mut tone = ToneSender::new()?;

    // Warm-up until the viewer decodes its first frame, then the measured window.
    let t0 = Instant::now();
    let mut frame_no = 0u64;
    let mut force_key = true;
    let mut seen_events = 0usize;
    let mut window: Option<(u64, Instant)> = None;
    let mut window_end: Option<u64> = None;
    let mut sent_in_window = 0u64;
    let mut max_lag = Duration::ZERO;
    let mut encode_time = Duration::ZERO;
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    let mut first_frame_after = None;
    loop {
        tick.tick().await;
        let events = pub_log.snapshot();
        if events[seen_events..]
            .iter()
            .any(|e| matches!(e, PublisherEvent::KeyframeRequested { .. }))
        {
            force_key = true;
        }
        seen_events = events.len();
        let el = t0.elapsed();
        tone.send_due(&audio, el)?;
        if window.is_none() && decoded.lock().is_ok_and(|d| !d.video.is_empty()) {
            first_frame_after = Some(t_join.elapsed());
            window = Some((frame_no, Instant::now()));
        }
        if let Some((start_no, started)) = window {
            if window_end.is_none() && started.elapsed() >= Duration::from_secs(r.seconds) {
                window_end = Some(frame_no);
                let _ = start_no;
            }
        } else if el > Duration::from_secs(10) {
            anyhow::bail!(
                "no frame decoded within 10 s; viewer saw {:?}",
                view_log.snapshot()
            );
        }
        // Keep sending 1.5 s past the window so its last frames can arrive.
        if window_end.is_some_and(|e| frame_no >= e + u64::from(r.fps) * 3 / 2)
            || frame_no >= total_frames
        {
            break;
        }
        if Duration::from_micros(frame_no * frame_us) <= el {
            max_lag = max_lag.max(el.saturating_sub(Duration::from_micros(frame_no * frame_us)));
            let enc_start = Instant::now();
            let pic = generate_pattern(
                r.width,
                r.height,
                frame_no as u32,
                MediaTime::from_micros(frame_no * frame_us),
            )?;
            let e = enc.encode(&pic, force_key)?;
            encode_time += enc_start.elapsed();
            if let Some(e) = e {
                force_key = false;
                video.send(EncodedVideo {
                    layer: None,
                    data: e.data,
                    keyframe: e.keyframe,
                    timestamp: Duration::from_micros(frame_no * frame_us),
                });
                if window.is_some() && window_end.is_none() {
                    sent_in_window += 1;
                }
            }
            frame_no += 1;
        }
    }
    let (start_no, _) = window.ok_or_else(|| anyhow::anyhow!("no window"))?;
    let end_no = window_end.unwrap_or(frame_no);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Decoded frames of the window: readable codes, in increasing order.
    let (in_window, order_ok, latencies, summary) = {
        let d = decoded
            .lock()
            .map_err(|_| anyhow::anyhow!("decoder thread panicked"))?;
        let in_window: Vec<&(u32, u64, Instant)> = d
            .video
            .iter()
            .filter(|(n, _, _)| u64::from(*n) >= start_no && u64::from(*n) < end_no)
            .collect();
        let order_ok = d.video.windows(2).all(|w| w[1].0 > w[0].0);
        let mut lat: Vec<Duration> = in_window
            .iter()
            .map(|(_, us, at)| at.saturating_duration_since(t0 + Duration::from_micros(*us)))
            .collect();
        lat.sort();
        let summary = format!(
            "frames in {} (key {}, non-contiguous {}), decoded with code {}, unreadable {}, \
             decode errors {}, audio packets {} ({} samples at {:?} Hz), tracks {:?}",
            d.frames_in,
            d.keyframes_in,
            d.non_contiguous,
            d.video.len(),
            d.unreadable,
            d.decode_errors,
            d.audio_packets,
            d.audio_samples,
            d.audio_rates,
            d.tracks_seen
        );
        (in_window.len() as u64, order_ok, lat, summary)
    };
    let pct = in_window as f64 * 100.0 / sent_in_window.max(1) as f64;
    println!(
        "{:?} {}x{}@{}: subscribed after {subscribed_after:?}, first frame decoded {:?} after join; \
         window frames {start_no}..{end_no}: sent {sent_in_window}, decoded {in_window} ({pct:.1} %); \
         capture->decode latency p50 {:?} p90 {:?} max {:?}; sender max lag {max_lag:?}, drawing+encoding {encode_time:?}",
        r.codec,
        r.width,
        r.height,
        r.fps,
        first_frame_after,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        latencies.last().copied().unwrap_or_default(),
    );
    println!("viewer decode: {summary}");
    let stats: Vec<StatsSnapshot> = view_log
        .snapshot()
        .into_iter()
        .filter_map(|e| match e {
            PublisherEvent::Stats(s) => Some(s),
            _ => None,
        })
        .collect();
    let last = stats
        .last()
        .ok_or_else(|| anyhow::anyhow!("viewer emitted no stats"))?;
    println!("viewer receive stats: {:?}", last.receive);
    println!(
        "viewer totals: frames_received {} frames_dropped_rx {} audio_packets_received {}",
        last.frames_received, last.frames_dropped_rx, last.audio_packets_received
    );

    let min_percent = if max_lag > Duration::from_millis(250) {
        println!(
            "WARNING: inconclusive ratio: the test's sender fell {max_lag:?} behind real time \
             (encoder {encode_time:?}); asserting 50 % instead of {} %",
            r.min_percent
        );
        r.min_percent.min(50)
    } else {
        r.min_percent
    };
    assert!(
        in_window * 100 >= sent_in_window * min_percent,
        "decoded {in_window} of {sent_in_window} frames sent in the window ({summary})"
    );
    assert!(order_ok, "decoded frame numbers increase");
    {
        let d = decoded
            .lock()
            .map_err(|_| anyhow::anyhow!("decoder thread panicked"))?;
        assert!(
            d.audio_packets as f64 >= (r.seconds * 50) as f64 * 0.9,
            "Opus packets arrive (~50/s): {}",
            d.audio_packets
        );
        assert_eq!(d.audio_rates, vec![48_000], "Opus decodes at 48 kHz");
    }
    let vs = last
        .receive
        .iter()
        .find(|s| s.track == video_sid)
        .ok_or_else(|| anyhow::anyhow!("no receive stats for the video track"))?;
    assert!(
        vs.bytes > 0 && vs.packets > 0 && vs.frames_received > 0,
        "{vs:?}"
    );
    assert!(last.frames_received >= in_window, "{last:?}");

    if r.check_mute {
        publisher.set_muted(video.cid(), true)?;
        view_log
            .wait(Duration::from_secs(5), "TrackMuted(true)", |e| {
                matches!(e, PublisherEvent::TrackMuted { track, muted: true, participant }
                    if *track == video_sid && participant.as_str() == "creator")
            })
            .await?;
        publisher.set_muted(video.cid(), false)?;
        view_log
            .wait(Duration::from_secs(5), "TrackMuted(false)", |e| {
                matches!(e, PublisherEvent::TrackMuted { track, muted: false, .. } if *track == video_sid)
            })
            .await?;
        println!("mute and unmute seen by the subscriber");

        // Chat both ways: the viewer token may publish data, and the viewer's
        // publisher PC (data channels only) carries it.
        viewer.send_chat("hello from the rust viewer")?;
        pub_log
            .wait(Duration::from_secs(5), "chat from the viewer", |e| {
                matches!(e, PublisherEvent::ChatReceived { from_identity, text, .. }
                    if from_identity.as_str() == "viewer1" && text == "hello from the rust viewer")
            })
            .await?;
        publisher.send_chat("hello viewer")?;
        view_log
            .wait(Duration::from_secs(5), "chat from the publisher", |e| {
                matches!(e, PublisherEvent::ChatReceived { from_identity, text, .. }
                    if from_identity.as_str() == "creator" && text == "hello viewer")
            })
            .await?;
        println!("chat both ways between publisher and subscriber");
    }

    // The publisher leaves: both tracks end at the viewer.
    publisher.leave().await?;
    view_log
        .wait(
            Duration::from_secs(10),
            "TrackUnsubscribed",
            |e| matches!(e, PublisherEvent::TrackUnsubscribed { track, .. } if *track == video_sid),
        )
        .await?;
    viewer.leave().await?;
    let _ = decoder.join();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_and_opus_reach_a_rust_subscriber_with_a_viewer_token() -> anyhow::Result<()> {
    subscribe_run(Run {
        codec: VideoCodec::H264,
        width: 640,
        height: 360,
        fps: 30,
        bitrate: 1_000_000,
        seconds: 10,
        min_percent: 90,
        check_mute: true,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vp8_reaches_a_rust_subscriber() -> anyhow::Result<()> {
    // libvpx encodes and decodes in this test on a loaded 2-core machine: 640x360
    // at 15 fps keeps the test's own sender in real time. (At 30 fps one run
    // decoded 295/295, but its sender fell 467 ms behind once: inconclusive.)
    subscribe_run(Run {
        codec: VideoCodec::Vp8,
        width: 640,
        height: 360,
        fps: 15,
        bitrate: 800_000,
        seconds: 10,
        min_percent: 90,
        check_mute: false,
    })
    .await
}

/// Waits until `want` of the last 10 decoded pictures have that size; returns how long it took.
async fn wait_for_size(
    decoded: &Arc<Mutex<Decoded>>,
    size: (u32, u32),
    within: Duration,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    loop {
        let recent: Vec<(u32, u32)> = {
            let d = decoded
                .lock()
                .map_err(|_| anyhow::anyhow!("decoder thread panicked"))?;
            d.sizes
                .iter()
                .filter(|(_, _, at)| *at >= start)
                .map(|&(w, h, _)| (w, h))
                .collect()
        };
        if recent.len() >= 10 && recent[recent.len() - 10..].iter().all(|&s| s == size) {
            return Ok(start.elapsed());
        }
        if start.elapsed() > within {
            anyhow::bail!("no run of {size:?} pictures within {within:?}; saw {recent:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_video_quality_switches_the_simulcast_layer_and_request_keyframe_sends_a_pli()
-> anyhow::Result<()> {
    init_tracing();
    let server = Server::start()?;
    let url = server.ws_url();
    let token = server.token("creator", "room", true)?;
    let (publisher, pub_log) = connect_publisher(&url, &token).await?;
    let viewer_token = server.token("viewer1", "room", false)?;
    let (viewer, view_log) = connect_subscriber(&url, &viewer_token, None).await?;
    let media = viewer
        .take_media()
        .ok_or_else(|| anyhow::anyhow!("no media receiver"))?;
    let (decoded, decoder) = spawn_decoding(media);

    // 640x360 in three layers: 160x90, 320x180, 640x360.
    let opts = VideoTrackOptions::new(VideoCodec::H264, 640, 360, 30)
        .with_default_simulcast(Bitrate::from_kbps(1200));
    let layers = opts.simulcast.clone();
    let video = publisher.publish_video(opts).await?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = spawn_sender(video, layers, pub_log.clone(), stop.clone());

    let sub = view_log
        .wait(
            Duration::from_secs(10),
            "video TrackSubscribed",
            |e| matches!(e, PublisherEvent::TrackSubscribed(t) if t.kind == TrackKind::Video),
        )
        .await?;
    let PublisherEvent::TrackSubscribed(track) = sub else {
        unreachable!("matched above")
    };
    println!("simulcast track: {track:?}");
    assert_eq!(
        track
            .layers
            .iter()
            .map(|l| (l.quality, l.width, l.height))
            .collect::<Vec<_>>(),
        vec![
            (VideoQuality::Low, 160, 90),
            (VideoQuality::Medium, 320, 180),
            (VideoQuality::High, 640, 360)
        ]
    );
    let first = wait_for_size(&decoded, (640, 360), Duration::from_secs(15)).await?;
    println!("high layer decoded after {first:?}");
    viewer.set_video_quality(&track.sid, VideoQuality::Low)?;
    let to_low = wait_for_size(&decoded, (160, 90), Duration::from_secs(10)).await?;
    viewer.set_video_quality(&track.sid, VideoQuality::Medium)?;
    let to_medium = wait_for_size(&decoded, (320, 180), Duration::from_secs(10)).await?;
    println!("switch to low took {to_low:?}, to medium {to_medium:?}");

    // An explicit key frame request goes out as a PLI the publisher hears.
    let plis = |log: &EventLog| {
        log.snapshot()
            .iter()
            .rev()
            .find_map(|e| match e {
                PublisherEvent::Stats(s) => s
                    .receive
                    .iter()
                    .find(|r| r.track == track.sid)
                    .map(|r| r.plis),
                _ => None,
            })
            .unwrap_or(0)
    };
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let before = plis(&view_log);
    let key_requests_before = pub_log
        .snapshot()
        .iter()
        .filter(|e| matches!(e, PublisherEvent::KeyframeRequested { .. }))
        .count();
    viewer.request_keyframe(&track.sid)?;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let after = plis(&view_log);
    let key_requests_after = pub_log
        .snapshot()
        .iter()
        .filter(|e| matches!(e, PublisherEvent::KeyframeRequested { .. }))
        .count();
    println!(
        "PLIs sent by the viewer {before} -> {after}; publisher key frame requests {key_requests_before} -> {key_requests_after}"
    );
    assert!(
        after > before,
        "the viewer's PLI count grew: {before} -> {after}"
    );
    assert!(
        key_requests_after > key_requests_before,
        "the publisher was asked for a key frame"
    );
    // A track that is not subscribed is an error event, not a silent no-op.
    viewer.request_keyframe(&TrackSid::from("TR_nope"))?;
    view_log
        .wait(
            Duration::from_secs(5),
            "error for an unknown track",
            |e| matches!(e, PublisherEvent::Error(m) if m.contains("TR_nope")),
        )
        .await?;

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let frames = sender
        .join()
        .map_err(|_| anyhow::anyhow!("sender panicked"))??;
    println!("sender: {frames} frame slots");
    publisher.leave().await?;
    viewer.leave().await?;
    let _ = decoder.join();
    Ok(())
}

/// A publisher and a subscribing viewer in one room, H.264 640x360@30 flowing.
struct Room {
    _server: Server,
    publisher: PublisherHandle,
    pub_log: EventLog,
    viewer: PublisherHandle,
    view_log: EventLog,
    media: Option<Receiver<ReceivedMedia>>,
    track: TrackSid,
    stop: Arc<std::sync::atomic::AtomicBool>,
    sender: Option<std::thread::JoinHandle<anyhow::Result<u64>>>,
}

impl Room {
    async fn start(media_queue: usize) -> anyhow::Result<Room> {
        init_tracing();
        let server = Server::start()?;
        let url = server.ws_url();
        let token = server.token("creator", "room", true)?;
        let (publisher, pub_log) = connect_publisher(&url, &token).await?;
        let viewer_token = server.token("viewer1", "room", false)?;
        let (viewer, view_log) = connect_subscriber(&url, &viewer_token, Some(media_queue)).await?;
        let media = viewer.take_media();
        let video = publisher
            .publish_video(VideoTrackOptions::new(VideoCodec::H264, 640, 360, 30))
            .await?;
        let (stop, sender) = spawn_single_layer_sender(video, pub_log.clone());
        let sub = view_log
            .wait(
                Duration::from_secs(10),
                "video TrackSubscribed",
                |e| matches!(e, PublisherEvent::TrackSubscribed(t) if t.kind == TrackKind::Video),
            )
            .await?;
        let PublisherEvent::TrackSubscribed(t) = sub else {
            unreachable!("matched above")
        };
        Ok(Room {
            _server: server,
            publisher,
            pub_log,
            viewer,
            view_log,
            media,
            track: t.sid,
            stop,
            sender: Some(sender),
        })
    }

    fn last_stats(&self) -> Option<StatsSnapshot> {
        self.view_log
            .snapshot()
            .into_iter()
            .rev()
            .find_map(|e| match e {
                PublisherEvent::Stats(s) => Some(s),
                _ => None,
            })
    }

    async fn finish(mut self) -> anyhow::Result<()> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(s) = self.sender.take() {
            s.join().map_err(|_| anyhow::anyhow!("sender panicked"))??;
        }
        self.publisher.leave().await?;
        self.viewer.leave().await?;
        let _ = &self.pub_log;
        Ok(())
    }
}

/// Frames decoded with a readable code since `since`.
fn decoded_since(decoded: &Arc<Mutex<Decoded>>, since: Instant) -> usize {
    decoded
        .lock()
        .map(|d| d.video.iter().filter(|(_, _, at)| *at >= since).count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_loses_frames_not_the_stream() -> anyhow::Result<()> {
    // An 8-frame channel nobody reads for 3 s: the driver must not block, the
    // drops are counted, and when the reader starts the decoder sees whole
    // reference chains only (it resumes at a key frame: no decode errors).
    let mut room = Room::start(8).await?;
    let media = room
        .media
        .take()
        .ok_or_else(|| anyhow::anyhow!("no media receiver"))?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stalled = room
        .last_stats()
        .ok_or_else(|| anyhow::anyhow!("no stats while stalled"))?;
    // Stats keep coming while the channel is full: the driver is not blocked.
    println!(
        "stalled: frames_received {} frames_dropped_rx {}",
        stalled.frames_received, stalled.frames_dropped_rx
    );
    assert!(stalled.frames_received <= 8, "{stalled:?}");
    assert!(stalled.frames_dropped_rx > 30, "{stalled:?}");
    let decoded = Arc::new(Mutex::new(Decoded::default()));
    let reader_start = Instant::now();
    let decoder = spawn_decoder(media, decoded.clone());
    // A fresh key frame needs up to one PLI interval (500 ms) plus a round trip:
    // 4 s leave at least 3 s of flowing frames.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = decoded_since(&decoded, reader_start);
    {
        let d = decoded
            .lock()
            .map_err(|_| anyhow::anyhow!("decoder thread panicked"))?;
        let first_fresh = d
            .video
            .iter()
            .skip(8)
            .map(|(_, _, at)| at.saturating_duration_since(reader_start))
            .next();
        println!(
            "after the stall: {after} frames decoded in 4 s (first fresh one after {first_fresh:?}); \
             key frames in {}, decode errors {}, unreadable {}",
            d.keyframes_in, d.decode_errors, d.unreadable
        );
        assert_eq!((d.decode_errors, d.unreadable), (0, 0));
        assert!(
            d.video.windows(2).all(|w| w[1].0 > w[0].0),
            "frame numbers increase"
        );
    }
    assert!(after >= 60, "decoding resumed: {after} frames in 4 s");
    let track = room.track.clone();
    let last = room
        .last_stats()
        .ok_or_else(|| anyhow::anyhow!("no stats"))?;
    let rs = last
        .receive
        .iter()
        .find(|r| r.track == track)
        .ok_or_else(|| anyhow::anyhow!("no receive stats"))?;
    println!("receive stats after: {rs:?}");
    assert!(rs.frames_dropped > 30 && rs.plis >= 2, "{rs:?}");
    room.finish().await?;
    let _ = decoder.join();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subscriber_resubscribes_after_a_full_rejoin() -> anyhow::Result<()> {
    let mut room = Room::start(64).await?;
    let media = room
        .media
        .take()
        .ok_or_else(|| anyhow::anyhow!("no media receiver"))?;
    let (decoded, decoder) = spawn_decoding(media);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(decoded_since(&decoded, Instant::now() - Duration::from_secs(2)) > 30);

    // Node failure: the session is gone, the viewer rejoins, the track comes back.
    let t = Instant::now();
    let subscribed_before = room
        .view_log
        .snapshot()
        .iter()
        .filter(|e| matches!(e, PublisherEvent::TrackSubscribed(_)))
        .count();
    room.viewer
        .simulate(livekit_protocol::simulate_scenario::Scenario::NodeFailure(
            true,
        ))?;
    let track = room.track.clone();
    room.view_log
        .wait(
            Duration::from_secs(20),
            "TrackUnsubscribed on rejoin",
            |e| matches!(e, PublisherEvent::TrackUnsubscribed { track: t, .. } if *t == track),
        )
        .await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while room
        .view_log
        .snapshot()
        .iter()
        .filter(|e| matches!(e, PublisherEvent::TrackSubscribed(_)))
        .count()
        <= subscribed_before
    {
        anyhow::ensure!(
            Instant::now() < deadline,
            "no TrackSubscribed after the rejoin"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resubscribed = t.elapsed();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mark = Instant::now();
    while decoded_since(&decoded, mark) < 30 {
        anyhow::ensure!(Instant::now() < deadline, "no frames after the rejoin");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let decode_errors = decoded
        .lock()
        .map_err(|_| anyhow::anyhow!("decoder thread panicked"))?
        .decode_errors;
    println!(
        "node failure: resubscribed after {resubscribed:?}, 30 frames decoded {:?} later; decode errors {decode_errors}",
        mark.elapsed(),
    );
    assert_eq!(
        decode_errors, 0,
        "the new subscription starts at a key frame"
    );
    room.finish().await?;
    let _ = decoder.join();
    Ok(())
}
