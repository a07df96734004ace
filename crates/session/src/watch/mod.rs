//! A subscribe-only viewer for QA: joins a creator's room with a viewer token, decodes what
//! it receives and measures it (frames, resolutions, fps, the synthetic pattern's codes and
//! latency, audio, chat, viewer count). The CLI's `watch` is argument parsing and printing
//! around [`watch`].
//!
//! Decoding runs on its own thread behind a bounded queue: the async side only forwards
//! frames, so a slow decoder drops frames (counted, then it waits for a key frame) instead
//! of stalling the LiveKit driver.

pub mod clock_file;
mod decode;
mod epoch;
pub mod measure;
mod report;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc as std_mpsc};
use std::time::{Duration, Instant, SystemTime};

use streamit_api::ViewerTokenRequest;
use streamit_api::client::{ApiError, Client};
use streamit_livekit_publish as lk;

use crate::error::ErrorKind;
use decode::{Queued, Shared, decode_loop};
use epoch::{EpochChoice, EpochSource};
use measure::LatencyStats;

/// A simulcast layer to ask for.
pub use lk::VideoQuality as Quality;

pub use epoch::{CLOCK_EPOCH_ATTRIBUTE, clock_epoch_attributes, clock_epoch_from};
pub use report::{
    AudioReport, OutageReport, VideoReport, ViewersReport, WatchChat, WatchProgress, WatchReport,
};

/// What to watch and how.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// The StreamIt backend root URL.
    pub api_url: String,
    /// A session token: watch as that user; `None` watches as a guest.
    pub token: Option<String>,
    /// The creator whose stream to watch.
    pub username: String,
    /// How long to stay.
    pub duration: Duration,
    /// Ask the SFU for this simulcast layer (no effect without simulcast).
    pub quality: Option<lk::VideoQuality>,
    /// The publisher's media clock epoch; `None`: the one the creator announces in its
    /// participant attributes ([`CLOCK_EPOCH_ATTRIBUTE`]), else the file a `publish` on
    /// this machine leaves ([`clock_file`]), else no latency.
    pub clock_epoch: Option<SystemTime>,
    /// Name shown for a guest.
    pub guest_name: String,
    /// Joining the room must finish within this.
    pub connect_timeout: Duration,
    /// Received frames waiting for the decoder; beyond it frames are dropped.
    pub decode_queue: usize,
    /// Which transports ICE may use (TCP only: test a viewer behind a UDP-blocking firewall).
    pub ice_transport: lk::IceTransport,
    /// CA certificates (PEM) trusted for TURN/TLS beside the system's.
    pub turn_extra_ca_pem: Option<Vec<u8>>,
    /// Every frame, or key frames only (a load test's light viewer).
    pub decode: DecodeMode,
    /// Join through this LiveKit URL instead of the one the backend hands out: one node of
    /// a multi-node deployment (the token is good on every node of it).
    pub livekit_url: Option<String>,
}

/// How much of the stream a watch decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DecodeMode {
    /// Every frame: size, pattern code and latency for each, and the audio.
    #[default]
    EveryFrame,
    /// Key frames only (codes and latency from them); every other frame is checked for
    /// completeness and counted, and audio packets are counted, not decoded. For a load
    /// test's many viewers, where decoding would bound their number before the SFU does.
    KeyFrames,
}

impl DecodeMode {
    /// The name reports use: `every-frame`, `key-frames`.
    pub fn name(self) -> &'static str {
        match self {
            DecodeMode::EveryFrame => "every-frame",
            DecodeMode::KeyFrames => "key-frames",
        }
    }
}

impl WatchConfig {
    pub fn new(api_url: impl Into<String>, username: impl Into<String>) -> Self {
        WatchConfig {
            api_url: api_url.into(),
            token: None,
            username: username.into(),
            duration: Duration::from_secs(10),
            quality: None,
            clock_epoch: None,
            guest_name: "QA watcher".into(),
            connect_timeout: Duration::from_secs(15),
            // 2 s of 30 fps video plus its audio
            decode_queue: 160,
            ice_transport: lk::IceTransport::All,
            turn_extra_ca_pem: None,
            decode: DecodeMode::EveryFrame,
            livekit_url: None,
        }
    }
}

/// Why a watch could not run.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("no stream for user `{0}` on this server")]
    NotFound(String),
    #[error("`{0}` is offline: the stream is not live")]
    Offline(String),
    #[error("{0}")]
    Api(#[from] ApiError),
    #[error("joining the room failed: {0}")]
    Connect(#[from] lk::Error),
    #[error("joining the room did not finish within {0} s")]
    ConnectTimeout(u64),
    #[error("the connection to the LiveKit server failed: {0}")]
    Transport(String),
    #[error("the decoder thread could not start: {0}")]
    Thread(String),
}

impl WatchError {
    /// True when the creator exists but is not live, or does not exist: nothing to watch.
    pub fn is_offline(&self) -> bool {
        matches!(self, WatchError::Offline(_) | WatchError::NotFound(_))
    }

    /// The kind, for wording and exit codes (offline is [`ErrorKind::Invalid`]; callers
    /// that distinguish it use [`WatchError::is_offline`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            WatchError::NotFound(_) | WatchError::Offline(_) => ErrorKind::Invalid,
            WatchError::Api(e) => match e.status() {
                Some(401 | 403) => ErrorKind::Auth,
                Some(_) => ErrorKind::Server,
                None => ErrorKind::Network,
            },
            WatchError::Connect(lk::Error::Signal(m)) => {
                let m = m.to_ascii_lowercase();
                if m.contains("401") || m.contains("unauthorized") || m.contains("token") {
                    ErrorKind::Auth
                } else {
                    ErrorKind::Network
                }
            }
            WatchError::Connect(_) | WatchError::ConnectTimeout(_) | WatchError::Transport(_) => {
                ErrorKind::Network
            }
            WatchError::Thread(_) => ErrorKind::Media,
        }
    }
}

/// Watches `cfg.username`'s stream for `cfg.duration` (or until `stop` resolves) and
/// reports what arrived. Figures go to `progress` as they change.
pub async fn watch(
    cfg: WatchConfig,
    progress: Option<tokio::sync::watch::Sender<WatchProgress>>,
    stop: impl Future<Output = ()>,
) -> Result<WatchReport, WatchError> {
    let mut api = Client::new(cfg.api_url.clone());
    api.set_token(cfg.token.clone());
    let stream = match api.stream_by_username(&cfg.username).await {
        Ok(s) => s,
        Err(e) if e.status() == Some(404) => return Err(WatchError::NotFound(cfg.username)),
        Err(e) => return Err(e.into()),
    };
    if !stream.is_live {
        return Err(WatchError::Offline(cfg.username));
    }
    let host_id = stream.user_id.clone();
    let as_guest = ViewerTokenRequest {
        host_id: host_id.clone(),
        guest_name: Some(cfg.guest_name.clone()),
    };
    let grant = if cfg.token.is_some() {
        match api
            .viewer_token(&ViewerTokenRequest {
                host_id: host_id.clone(),
                guest_name: None,
            })
            .await
        {
            // The creator's own token cannot join as a viewer (same identity): watch as a
            // guest instead, which is what a QA person checking their stream wants.
            Err(e) if e.status() == Some(409) => {
                tracing::info!("a creator cannot watch with their own token; watching as a guest");
                Client::new(cfg.api_url.clone())
                    .viewer_token(&as_guest)
                    .await?
            }
            other => other?,
        }
    } else {
        api.viewer_token(&as_guest).await?
    };
    let shared = Arc::new(Shared::default());
    let mut epoch = EpochChoice::default();
    match cfg.clock_epoch {
        Some(e) => epoch.offer(&shared, e, EpochSource::Given),
        None => {
            if let Some(e) = clock_file::read(&host_id) {
                epoch.offer(&shared, e, EpochSource::File);
            }
        }
    }

    let livekit_url = cfg.livekit_url.clone().unwrap_or(grant.ws_url);
    let started = Instant::now();
    let opts = lk::PublishOptions {
        subscribe: true,
        ice_transport: cfg.ice_transport,
        turn_extra_ca_pem: cfg.turn_extra_ca_pem.clone(),
        ..Default::default()
    };
    let (handle, mut events) = tokio::time::timeout(
        cfg.connect_timeout,
        lk::Publisher::connect(&livekit_url, &grant.token, opts),
    )
    .await
    .map_err(|_| WatchError::ConnectTimeout(cfg.connect_timeout.as_secs()))??;
    let mut media = handle
        .take_media()
        .ok_or_else(|| WatchError::Transport("no media channel".into()))?;

    let (tx, rx) = std_mpsc::sync_channel::<Queued>(cfg.decode_queue.max(1));
    let decoder = {
        let (shared, mode) = (shared.clone(), cfg.decode);
        let handle = handle.clone();
        std::thread::Builder::new()
            .name("watch-decode".into())
            .spawn(move || decode_loop(rx, shared, handle, started, mode))
            .map_err(|e| WatchError::Thread(e.to_string()))?
    };

    let mut connect_time = None;
    let mut reconnects = 0u32;
    let mut outages: Vec<OutageReport> = Vec::new();
    let mut chat: Vec<WatchChat> = Vec::new();
    let mut names: HashMap<String, String> = HashMap::new();
    let mut codecs: Vec<String> = Vec::new();
    let mut last_stats: Option<lk::StatsSnapshot> = None;
    let viewers_start = stream.viewer_count;
    let mut viewers_peak = stream.viewer_count;
    let mut viewers_now = Some(stream.viewer_count);
    let mut outcome = "completed";
    let mut error = None;
    let deadline = tokio::time::Instant::now() + cfg.duration;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut poll = tokio::time::interval(Duration::from_secs(2));
    tokio::pin!(stop);
    // The forwarding side: never blocks on the decoder.
    let forward = |m: lk::ReceivedMedia| {
        if let Err(std_mpsc::TrySendError::Full(q)) = tx.try_send(Queued { media: m }) {
            if matches!(q.media, lk::ReceivedMedia::Video(_)) {
                shared.lost.store(true, Ordering::Release);
            }
            shared.queue_drops.fetch_add(1, Ordering::Relaxed);
        }
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break,
            _ = &mut stop => { outcome = "interrupted"; break; }
            m = media.recv() => match m {
                Some(m) => forward(m),
                None => {
                    outcome = "failed";
                    error = Some("the LiveKit participant stopped".to_string());
                    break;
                }
            },
            ev = events.recv() => {
                let Some(ev) = ev else {
                    outcome = "failed";
                    error = Some("the LiveKit participant stopped".to_string());
                    break;
                };
                match ev {
                    lk::PublisherEvent::StateChanged(lk::ConnectionState::Connected) => {
                        connect_time.get_or_insert(started.elapsed());
                        if let Some(o) = outages.last_mut().filter(|o| o.recovered_ms.is_none()) {
                            o.recovered_ms = Some(started.elapsed().as_millis() as u64);
                        }
                    }
                    lk::PublisherEvent::StateChanged(lk::ConnectionState::Reconnecting {
                        attempt: 1,
                        ..
                    }) => {
                        reconnects += 1;
                        let lost_ms = started.elapsed().as_millis() as u64;
                        outages.push(OutageReport { lost_ms, recovered_ms: None });
                    }
                    lk::PublisherEvent::StateChanged(lk::ConnectionState::Failed { error: e }) => {
                        outcome = "failed";
                        error = Some(e);
                        break;
                    }
                    lk::PublisherEvent::StateChanged(lk::ConnectionState::Disconnected { reason }) => {
                        outcome = "failed";
                        error = Some(format!("disconnected: {reason}"));
                        break;
                    }
                    lk::PublisherEvent::ParticipantJoined(p) | lk::PublisherEvent::ParticipantUpdated(p) => {
                        // The creator announces its media clock epoch once it is live (and
                        // again after a rejoin).
                        if p.identity.0 == host_id && let Some(e) = clock_epoch_from(&p.attributes) {
                            epoch.offer(&shared, e, EpochSource::Attribute);
                        }
                        names.insert(p.identity.0, p.name);
                    }
                    lk::PublisherEvent::ChatReceived { from_identity, from_name, text, .. } => {
                        // Chat packets often carry no name: the participant list has it.
                        let from = if from_name.is_empty() {
                            names.get(&from_identity.0).cloned().unwrap_or_default()
                        } else {
                            from_name
                        };
                        chat.push(WatchChat { from, identity: from_identity.0, text });
                    }
                    lk::PublisherEvent::TrackSubscribed(t) => {
                        tracing::info!(track = %t.sid.0, kind = ?t.kind, mime = %t.mime, "subscribed");
                        if t.kind == lk::TrackKind::Video {
                            if let Some(c) = t.codec {
                                let name = c.name();
                                if !codecs.iter().any(|x| x == name) {
                                    codecs.push(name.to_string());
                                }
                            }
                            if let Some(q) = cfg.quality {
                                let _ = handle.set_video_quality(&t.sid, q);
                            }
                            let _ = handle.request_keyframe(&t.sid);
                        }
                    }
                    // Our own full rejoin starts the participant list over and reports
                    // everyone not (yet) back as gone, the creator too when the whole server
                    // restarted: during our reconnect that says nothing about the stream.
                    lk::PublisherEvent::ParticipantLeft(who)
                        if who.0 == host_id
                            && outages.last().is_none_or(|o| o.recovered_ms.is_some()) =>
                    {
                        outcome = "stream-ended";
                        break;
                    }
                    lk::PublisherEvent::Stats(s) => last_stats = Some(s),
                    _ => {}
                }
            }
            _ = poll.tick() => {
                // A publisher on this machine may record its epoch only after we joined.
                if epoch.source.is_none() && let Some(e) = clock_file::read(&host_id) {
                    epoch.offer(&shared, e, EpochSource::File);
                }
                if let Ok(s) = api.stream_by_username(&cfg.username).await {
                    viewers_peak = viewers_peak.max(s.viewer_count);
                    viewers_now = Some(s.viewer_count);
                }
            }
            _ = tick.tick() => {
                if let Some(p) = &progress {
                    let live = shared.live.lock().map(|l| *l).unwrap_or_default();
                    p.send_replace(WatchProgress {
                        elapsed: started.elapsed(),
                        connected: connect_time.is_some(),
                        frames_decoded: live.frames_decoded,
                        resolution: live.resolution,
                        last_latency_ms: live.last_latency_ms,
                        audio_packets: live.audio_packets,
                        chat_messages: chat.len(),
                        viewers: viewers_now,
                    });
                }
            }
        }
    }
    let duration = started.elapsed();
    // A viewer's join may reach us after its first message (the server batches updates
    // about participants that do not publish): name the senders now.
    for c in chat.iter_mut().filter(|c| c.from.is_empty()) {
        c.from = names
            .get(&c.identity)
            .cloned()
            .unwrap_or_else(|| c.identity.clone());
    }
    if tokio::time::timeout(Duration::from_secs(5), handle.leave())
        .await
        .is_err()
    {
        tracing::warn!("leaving the room took more than 5 s");
    }
    drop(tx);
    let (video, audio) = tokio::task::spawn_blocking(move || decoder.join())
        .await
        .map_err(|e| WatchError::Thread(e.to_string()))?
        .map_err(|_| WatchError::Thread("the decoder thread panicked".into()))?;
    let viewers_end = api
        .stream_by_username(&cfg.username)
        .await
        .ok()
        .map(|s| s.viewer_count);
    let first_frame = shared.live.lock().ok().and_then(|l| l.first_frame);

    // One pass over the frame gaps (it sorts them) for both figures.
    let delivery = video.delivery.share();
    Ok(WatchReport {
        outcome: outcome.into(),
        error,
        username: stream.user.username.clone(),
        title: stream.title.clone(),
        identity: grant.identity,
        livekit_url,
        duration_ms: duration.as_millis() as u64,
        connect_time_ms: connect_time.map(|d| d.as_millis() as u64),
        first_frame_ms: first_frame.map(|t| t.duration_since(started).as_millis() as u64),
        reconnects,
        outages,
        latency: LatencyStats::of(&video.latencies_ms),
        network_latency: LatencyStats::of(&video.network_latencies_ms),
        transport: last_stats
            .as_ref()
            .and_then(|s| s.subscriber_transport)
            .map(|t| t.name().to_string()),
        clock_epoch_source: epoch.source.map(|s| s.name().to_string()),
        clock_epoch_unix_us: Some(shared.epoch_us.load(Ordering::Acquire)).filter(|&us| us != 0),
        video: VideoReport {
            decode: cfg.decode.name().into(),
            frames_decodable: video.delivery.decodable,
            frames_sent: delivery.map(|(_, sent)| sent),
            delivered_pct: delivery.map(|(decodable, sent)| 100.0 * decodable as f64 / sent as f64),
            stalls: video.delivery.stalls,
            bitrate_kbps: video.bitrate_kbps(),
            codecs,
            frames_received: video.frames_received,
            frames_decoded: video.frames_decoded,
            frames_skipped: video.frames_skipped,
            queue_drops: shared.queue_drops.load(Ordering::Relaxed),
            receiver_drops: last_stats.as_ref().map_or(0, |s| s.frames_dropped_rx),
            decode_errors: video.decode_errors,
            keyframes: video.keyframes,
            fps: video.fps(),
            readable_codes: video.codes.read(),
            first_code: video.codes.first(),
            last_code: video.codes.last(),
            missing_frames: video.codes.missing(),
            gap_runs: video.codes.gap_runs(),
            out_of_order: video.codes.out_of_order,
            resolutions: video.resolutions,
            frames_per_second: video.frames_per_second,
            max_code_per_second: video.max_code_per_second,
        },
        audio: AudioReport {
            packets_received: audio.packets_received,
            packets_decoded: audio.packets_decoded,
            decode_errors: audio.decode_errors,
            seconds: audio.samples as f64 / f64::from(streamit_media::AUDIO_RATE),
            rms_dbfs: audio.rms_dbfs(),
            peak_dbfs: audio.peak_dbfs(),
        },
        chat_messages: chat.len(),
        chat,
        viewers: ViewersReport {
            at_start: viewers_start,
            at_end: viewers_end,
            peak: viewers_peak.max(viewers_end.unwrap_or(0)),
        },
    })
}
