//! `publish` and `setup`: drive a [`streamit_session`] session headlessly.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use serde::Serialize;
use streamit_api::StreamSession;
use streamit_session::{
    Codec, Command, SessionConfig, SessionHandle, SessionState, StreamSetup, StreamState,
    SummaryDelivery,
};

use super::auth::{self, Auth};
use super::{AuthArgs, CliError, CliResult, CodecArg, PublishArgs, SetupArgs, exit_code};

/// The JSON report of `publish --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishReport {
    /// `ended` or `failed`.
    pub outcome: String,
    pub error: Option<String>,
    pub codec: String,
    pub simulcast: bool,
    pub source: String,
    pub audio: String,
    /// RNNoise cleaned the audio.
    pub noise_suppression: bool,
    /// Automatic gain levelled it.
    pub auto_gain: bool,
    /// Go Live pressed → LiveKit transport connected.
    pub connect_time_ms: Option<u64>,
    /// Live → ended, measured by the studio.
    pub duration_ms: u64,
    pub frames_captured: u64,
    pub frames_sent: u64,
    pub frames_dropped: u64,
    pub audio_packets_sent: u64,
    /// Opus went with RED at the end (each packet carrying the one before).
    pub audio_redundancy: bool,
    pub average_bitrate_bps: u64,
    pub last_bitrate_bps: u64,
    pub target_bitrate_bps: Option<u64>,
    /// The uplink estimate the encoders followed, in kbit/s, one value per second of the
    /// broadcast (the last known at each second): how a cap bit and how fast it recovered.
    pub target_bitrate_kbps_per_second: Vec<Option<u64>>,
    /// The longest a video packet waited in the send queue (the pacer), in ms, one value
    /// per second of the broadcast: whether frames queued instead of being skipped.
    pub send_queue_delay_ms_per_second: Vec<Option<u64>>,
    /// Unix time (ms) the broadcast began: where the per-second series start.
    pub broadcast_started_unix_ms: u64,
    /// Frames the encoder skipped because the send queue held more than 200 ms (also in
    /// `framesDropped`).
    pub frames_skipped_for_network: u64,
    pub rtt_ms: Option<f64>,
    /// Media transport ICE selected at the end: "udp", "tcp", or through the TURN
    /// relay "relay/udp", "relay/tcp" or "relay/tls".
    pub transport: Option<String>,
    /// Packets sent through the TURN relay on the last connection, and how many of them
    /// went as ChannelData (a 4-byte header) rather than as Send indications (36 bytes).
    pub relay_packets_sent: u64,
    pub relay_channel_data_sent: u64,
    pub reconnects: u32,
    pub keyframe_requests: u64,
    /// NACKs from the SFU (lost packets it asked for again) on the last connection.
    pub nacks_received: u64,
    /// Video packets the SFU still counted lost in its last receiver report: losses RTX did
    /// not repair, plus any whose repair was still on the way; on the last connection,
    /// `null` before its first report.
    pub video_packets_lost: Option<u64>,
    /// Share of packets the SFU reported lost (RTCP receiver reports), 0..1.
    pub packet_loss: Option<f32>,
    /// At the end: "CPU limited: sending 720p at 20 fps" while the encoder sent less than
    /// the source offered because the CPU could not keep up; `null` otherwise.
    pub cpu_limited: Option<String>,
    /// How often the encoder stepped its frame rate or size down for the CPU.
    pub cpu_adaptations: u32,
    /// How long, over the broadcast, the studio's state said "CPU limited", and the last
    /// such message: the end alone misses a limit that lifted in the last seconds.
    pub cpu_limited_ms: u64,
    pub cpu_limited_last: Option<String>,
    /// At the end: "Network limited: 120 kbit/s, sending low quality" while the uplink's
    /// estimate kept video below what viewers asked for; `null` otherwise.
    pub network_limited: Option<String>,
    /// As the studio saw them (LiveKit participant updates).
    pub peak_viewers: u32,
    pub chat_messages: u64,
    pub chat: Vec<ChatLine>,
    /// The backend's record of the session (duration, peak viewers from webhooks, chat count).
    pub summary: Option<StreamSession>,
    /// Whether the backend took the studio's figures (frames, bitrate, chat count) when
    /// the stream ended.
    pub summary_delivered: bool,
    /// Where the figures wait when the backend could not take them: delivered after the
    /// next login to the same backend.
    pub spooled: Option<String>,
    /// Unix time (µs) of the media clock's zero: the synthetic pattern's timestamps plus this
    /// give the capture time, for latency measured by a viewer on the same machine.
    pub media_clock_epoch_unix_us: Option<u64>,
    /// Where viewers watch this stream (the backend's `watchUrl`, else derived from the API
    /// URL and the username).
    pub watch_url: Option<String>,
    /// The local recording (`--record`), once closed.
    pub recording: Option<RecordingReport>,
    /// The screen share (`--screen`) at the end; `null` without one.
    pub screen_share: Option<ScreenShareReport>,
}

/// What `--screen` shared, and whether it lasted.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScreenShareReport {
    /// `sharing` to the end, `ended` (with `reason`) when the capture stopped by itself, or
    /// `starting` when the stream ended while the desktop's dialog still waited.
    pub state: String,
    pub source: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub reason: Option<String>,
    /// "Camera over screen" layout, e.g. `bottom-right:25`.
    pub pip: Option<String>,
}

impl ScreenShareReport {
    fn of(s: &streamit_session::ScreenShareState) -> Option<Self> {
        use streamit_session::ScreenShareState as S;
        let empty = |state: &str| ScreenShareReport {
            state: state.into(),
            source: None,
            width: None,
            height: None,
            reason: None,
            pip: None,
        };
        match s {
            S::Off => None,
            S::Starting { .. } => Some(empty("starting")),
            S::Sharing {
                source,
                width,
                height,
                pip,
                ..
            } => Some(ScreenShareReport {
                pip: pip.map(|p| p.to_string()),
                source: Some(source.clone()),
                width: Some(*width),
                height: Some(*height),
                ..empty("sharing")
            }),
            S::Ended { reason } => Some(ScreenShareReport {
                reason: Some(reason.clone()),
                ..empty("ended")
            }),
        }
    }
}

/// What `--record` wrote.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordingReport {
    pub path: String,
    pub bytes: u64,
    pub duration_ms: u64,
    /// Samples lost because the disk fell behind.
    pub dropped: u64,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ChatLine {
    pub from: String,
    pub identity: String,
    pub text: String,
    pub own: bool,
}

async fn authenticated(a: &AuthArgs, config: SessionConfig) -> CliResult<SessionHandle> {
    let session = SessionHandle::spawn(config);
    match auth::resolve(a)? {
        Auth::Token(t) => session.request(Command::UseToken(t)).await?,
        Auth::Password { username, password } => {
            session
                .request(Command::Login { username, password })
                .await?
        }
    }
    Ok(session)
}

pub async fn setup(a: SetupArgs) -> CliResult {
    let session = authenticated(&a.auth, SessionConfig::new(a.auth.api.clone())).await?;
    session
        .request(Command::SetupStream(StreamSetup {
            title: a.title,
            description: a.description,
            chat_enabled: a.chat.map(|c| c.as_bool()),
            chat_delayed: a.chat_delayed.map(|c| c.as_bool()),
            chat_followers_only: a.followers_only.map(|c| c.as_bool()),
        }))
        .await?;
    let state = session.state();
    if let Some(s) = state.stream {
        eprintln!(
            "stream set up: \"{}\" (chat {}, slow mode {}, followers only {})",
            s.title,
            on_off(s.chat_enabled),
            on_off(s.chat_delayed),
            on_off(s.chat_followers_only)
        );
    }
    let _ = session.request(Command::Shutdown).await;
    Ok(())
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

pub async fn publish(a: PublishArgs) -> CliResult {
    let mut config = SessionConfig::new(a.auth.api.clone());
    config.video = a.source.clone();
    config.audio = a.audio.clone();
    config.noise_suppression = a.noise_suppression;
    config.auto_gain = a.auto_gain;
    config.codec = match a.codec {
        CodecArg::H264 => Codec::H264,
        CodecArg::Vp8 => Codec::Vp8,
    };
    config.simulcast = a.simulcast;
    config.publish.ice_transport = a.ice_transport.into();
    if let Some(path) = &a.turn_ca {
        config.publish.turn_extra_ca_pem = Some(super::read_turn_ca(path)?);
    }
    config.spool_dir = streamit_session::spool::default_dir();
    let session = authenticated(&a.auth, config).await?;
    // A title given, or no stream set up yet (a fresh QA account): set it up first.
    let title = match (&a.title, session.state().stream) {
        (Some(t), _) => Some(t.clone()),
        (None, None) => Some("QA stream".to_string()),
        (None, Some(_)) => None,
    };
    if let Some(title) = title {
        session
            .request(Command::SetupStream(StreamSetup {
                title,
                ..Default::default()
            }))
            .await?;
    }

    if let Some(path) = &a.record {
        session
            .request(Command::SetRecording {
                on: true,
                to: Some(path.clone()),
            })
            .await?;
    }

    if let Some(target) = &a.screen {
        session
            .request(Command::StartScreenShare {
                target: target.clone(),
                fps: a.screen_fps,
                pip: a.pip,
                choose_again: false,
            })
            .await?;
    }

    let status = (!a.json && std::io::stderr().is_terminal()).then(|| {
        let pb = indicatif::ProgressBar::new_spinner();
        pb.enable_steady_tick(Duration::from_millis(200));
        pb.set_message("going live…");
        pb
    });
    // A `watch` on this machine reads the media clock's epoch from here to measure latency
    // (written before going live: a viewer may join as soon as the backend shows it live).
    let state = session.state();
    let clock_room = state.account.as_ref().map(|acc| acc.user_id.clone());
    if let (Some(room), Some(epoch)) = (&clock_room, state.media_clock_epoch)
        && let Err(e) = streamit_session::watch::clock_file::write(room, epoch)
    {
        tracing::warn!("media clock epoch not recorded for `watch`: {e}");
    }
    let go_live = session.request(Command::GoLive).await;
    let watch_url = watch_url_of(&session.state(), &a.auth.api);
    if go_live.is_ok()
        && let Some(url) = &watch_url
    {
        eprintln!("live: viewers watch at {url}");
    }
    if let Err(e) = go_live {
        if let Some(room) = &clock_room {
            streamit_session::watch::clock_file::remove(room);
        }
        if let Some(pb) = &status {
            pb.finish_and_clear();
        }
        let _ = session.request(Command::Shutdown).await;
        return Err(e.into());
    }

    for text in &a.chat {
        if let Err(e) = session.request(Command::SendChat(text.clone())).await {
            tracing::warn!("chat not sent: {e}");
        }
    }

    let started = Instant::now();
    let started_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut watch = session.subscribe();
    let end_at = tokio::time::Instant::now() + a.duration;
    let mut failed: Option<String> = None;
    // One listener for the whole broadcast: a `ctrl_c()` made anew on each turn of the loop
    // misses a signal that arrives while the loop handles a state change.
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let mut cpu = CpuLimitLog::default();
    let mut estimates = PerSecond::default();
    let mut queue_delays = PerSecond::default();
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(end_at) => break,
            _ = &mut interrupted => {
                eprintln!("interrupted: ending the stream");
                break;
            }
            changed = watch.changed() => {
                if changed.is_err() {
                    failed = Some("the session stopped".into());
                    break;
                }
                let s = watch.borrow_and_update().clone();
                cpu.observe(&s, Instant::now());
                estimates.observe(started.elapsed(), s.health.target_bitrate_bps.map(|b| b / 1000));
                queue_delays.observe(
                    started.elapsed(),
                    s.health.send_queue_delay.map(|d| d.as_millis() as u64),
                );
                if let StreamState::Failed { reason } = &s.stream_state {
                    // In words first, as the studio's ending says it; the detail after.
                    failed = Some(match &s.summary {
                        Some(summary) if summary.interruption.is_some() => {
                            format!("{} ({reason})", summary.headline().to_lowercase())
                        }
                        _ => reason.clone(),
                    });
                    break;
                }
                if let Some(pb) = &status {
                    pb.set_message(status_line(&s, started.elapsed(), a.duration));
                }
            }
        }
    }
    let broadcast_ended = Instant::now();
    if let Some(pb) = &status {
        pb.set_message("ending the stream…");
    }
    let end = if failed.is_none() {
        session.request(Command::EndStream).await
    } else {
        // A stream that stopped by itself has its figures delivered beside the session
        // (retried, then spooled): wait for that before shutting the session down.
        let mut rx = session.subscribe();
        let delivered = rx.wait_for(|s| {
            s.summary
                .as_ref()
                .is_none_or(|s| s.delivery != SummaryDelivery::Pending)
        });
        let _ = tokio::time::timeout(std::time::Duration::from_secs(30), delivered).await;
        Ok(())
    };
    if let Some(pb) = &status {
        pb.finish_and_clear();
    }
    let state = session.state();
    let _ = session.request(Command::Shutdown).await;
    if let Some(room) = &clock_room {
        streamit_session::watch::clock_file::remove(room);
    }

    let mut report = build_report(
        &a,
        &state,
        failed
            .clone()
            .or(end.as_ref().err().map(|e| e.message.clone())),
    );
    report.watch_url = watch_url;
    // The broadcast ended when the loop did; End's own seconds are not the encoder's.
    cpu.observe(&state, broadcast_ended);
    (report.cpu_limited_ms, report.cpu_limited_last) = cpu.finish(broadcast_ended);
    report.target_bitrate_kbps_per_second = estimates.finish(broadcast_ended - started);
    report.send_queue_delay_ms_per_second = queue_delays.finish(broadcast_ended - started);
    report.broadcast_started_unix_ms = started_unix_ms;
    let json = serde_json::to_string_pretty(&report)
        .map_err(|e| CliError::new(1, format!("encoding the report: {e}")))?;
    if a.json {
        println!("{json}");
    } else {
        print_human(&report);
    }
    if let Some(path) = &a.report_json {
        std::fs::write(path, format!("{json}\n")).map_err(|e| {
            CliError::new(1, format!("writing the report to {}: {e}", path.display()))
        })?;
    }
    if let Some(reason) = failed {
        let kind = state
            .last_error()
            .map(|e| e.kind)
            .unwrap_or(streamit_session::ErrorKind::Network);
        return Err(CliError::new(exit_code(kind), reason));
    }
    end?;
    Ok(())
}

/// What the state said about the CPU over the broadcast.
#[derive(Default)]
struct CpuLimitLog {
    since: Option<Instant>,
    total: Duration,
    last: Option<String>,
}

impl CpuLimitLog {
    fn observe(&mut self, s: &SessionState, now: Instant) {
        match (&s.health.cpu_limited, self.since) {
            (Some(l), since) => {
                self.last = Some(l.to_string());
                self.since = since.or(Some(now));
            }
            (None, Some(since)) => {
                self.total += now - since;
                self.since = None;
            }
            (None, None) => {}
        }
    }

    fn finish(mut self, now: Instant) -> (u64, Option<String>) {
        if let Some(since) = self.since.take() {
            self.total += now - since;
        }
        (self.total.as_millis() as u64, self.last)
    }
}

/// A value sampled once per second of the broadcast from the states as they come: each
/// second holds the last value known by its end (`None` before the first).
#[derive(Default)]
struct PerSecond {
    values: Vec<Option<u64>>,
    last: Option<u64>,
}

impl PerSecond {
    fn observe(&mut self, elapsed: Duration, value: Option<u64>) {
        self.fill_to(elapsed);
        self.last = value.or(self.last);
    }

    /// Seconds that ended before `elapsed` take the last value.
    fn fill_to(&mut self, elapsed: Duration) {
        let whole = elapsed.as_secs() as usize;
        while self.values.len() < whole {
            self.values.push(self.last);
        }
    }

    fn finish(mut self, elapsed: Duration) -> Vec<Option<u64>> {
        self.fill_to(elapsed);
        self.values
    }
}

/// The stream's watch URL, once logged in.
fn watch_url_of(s: &SessionState, api_url: &str) -> Option<String> {
    let account = s.account.as_ref()?;
    let from_backend = s
        .stream
        .as_ref()
        .map(|i| i.watch_url.as_str())
        .unwrap_or("");
    Some(super::watch_url(from_backend, api_url, &account.username))
}

fn status_line(s: &SessionState, elapsed: Duration, total: Duration) -> String {
    let state = match &s.stream_state {
        StreamState::Live => "LIVE".to_string(),
        StreamState::Reconnecting { attempt, max } => format!("reconnecting {attempt}/{max}"),
        other => format!("{other:?}"),
    };
    format!(
        "{state} {:>4.0}/{:.0}s | viewers {} | sent {} dropped {} | {:.0} kbit/s | rtt {} | chat {}",
        elapsed.as_secs_f64(),
        total.as_secs_f64(),
        s.viewers,
        s.health.frames_sent,
        s.health.frames_dropped,
        s.health.bitrate_bps as f64 / 1000.0,
        s.health
            .rtt
            .map(|r| format!("{} ms", r.as_millis()))
            .unwrap_or_else(|| "–".into()),
        s.chat.len()
    ) + &s
        .health
        .cpu_limited
        .map(|l| format!(" | {l}"))
        .unwrap_or_default()
}

fn build_report(a: &PublishArgs, s: &SessionState, error: Option<String>) -> PublishReport {
    let summary = s.summary.clone();
    let h = &s.health;
    PublishReport {
        outcome: match &s.stream_state {
            StreamState::Ended => "ended".into(),
            StreamState::Failed { .. } => "failed".into(),
            other => format!("{other:?}").to_lowercase(),
        },
        error,
        codec: match a.codec {
            CodecArg::H264 => "h264".into(),
            CodecArg::Vp8 => "vp8".into(),
        },
        simulcast: a.simulcast,
        source: a.source.to_string(),
        audio: a.audio.to_string(),
        noise_suppression: a.noise_suppression.applies_to(&a.audio),
        auto_gain: a.auto_gain.applies_to(&a.audio),
        connect_time_ms: summary
            .as_ref()
            .and_then(|s| s.connect_time)
            .map(|d| d.as_millis() as u64),
        duration_ms: summary
            .as_ref()
            .map(|s| s.duration.as_millis() as u64)
            .unwrap_or(0),
        frames_captured: h.frames_captured,
        frames_sent: h.frames_sent,
        frames_dropped: h.frames_dropped,
        audio_packets_sent: h.audio_packets_sent,
        audio_redundancy: h.audio_redundancy,
        average_bitrate_bps: summary.as_ref().map(|s| s.average_bitrate_bps).unwrap_or(0),
        last_bitrate_bps: h.bitrate_bps,
        target_bitrate_bps: h.target_bitrate_bps,
        target_bitrate_kbps_per_second: Vec::new(),
        send_queue_delay_ms_per_second: Vec::new(),
        broadcast_started_unix_ms: 0,
        frames_skipped_for_network: h.frames_skipped_for_network,
        rtt_ms: h.rtt.map(|r| r.as_secs_f64() * 1000.0),
        transport: h.transport.map(str::to_string),
        relay_packets_sent: h.relay_packets_sent,
        relay_channel_data_sent: h.relay_channel_data_sent,
        reconnects: h.reconnects,
        keyframe_requests: h.keyframe_requests,
        nacks_received: h.nacks_received,
        video_packets_lost: h.video_packets_lost,
        packet_loss: h.packet_loss,
        cpu_limited: h.cpu_limited.map(|l| l.to_string()),
        cpu_adaptations: h.cpu_adaptations,
        cpu_limited_ms: 0,
        cpu_limited_last: None,
        network_limited: h.network_limited.map(|l| l.to_string()),
        peak_viewers: s.peak_viewers,
        chat_messages: summary.as_ref().map(|s| s.chat_messages).unwrap_or(0),
        chat: s
            .chat
            .iter()
            .map(|c| ChatLine {
                from: c.sender.clone(),
                identity: c.identity.clone(),
                text: c.text.clone(),
                own: c.own,
            })
            .collect(),
        summary_delivered: summary
            .as_ref()
            .is_some_and(|s| s.delivery == SummaryDelivery::Delivered),
        spooled: summary.as_ref().and_then(|s| match &s.delivery {
            SummaryDelivery::Spooled { path, .. } => Some(path.display().to_string()),
            _ => None,
        }),
        summary: summary.as_ref().and_then(|s| s.backend.clone()),
        media_clock_epoch_unix_us: s
            .media_clock_epoch
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_micros() as u64),
        watch_url: None,
        recording: summary
            .as_ref()
            .and_then(|s| s.recordings.last())
            .map(|r| RecordingReport {
                path: r.path.display().to_string(),
                bytes: r.bytes,
                duration_ms: r.duration.as_millis() as u64,
                dropped: r.dropped,
                error: r.error.clone(),
            }),
        screen_share: ScreenShareReport::of(&s.screen_share),
    }
}

fn print_human(r: &PublishReport) {
    println!("outcome:        {}", r.outcome);
    if let Some(url) = &r.watch_url {
        println!("watch url:      {url}");
    }
    if let Some(e) = &r.error {
        println!("error:          {e}");
    }
    println!(
        "published:      {} {}video from {} + {}",
        r.codec,
        if r.simulcast { "simulcast " } else { "" },
        r.source,
        r.audio
    );
    if let Some(c) = r.connect_time_ms {
        println!("connect time:   {c} ms");
    }
    println!("duration:       {:.1} s", r.duration_ms as f64 / 1000.0);
    println!(
        "video frames:   {} captured, {} sent, {} dropped",
        r.frames_captured, r.frames_sent, r.frames_dropped
    );
    println!(
        "audio packets:  {}{}",
        r.audio_packets_sent,
        if r.audio_redundancy {
            " (with RED)"
        } else {
            ""
        }
    );
    if let Some(rec) = &r.recording {
        println!(
            "recording:      {} ({:.1} s, {:.1} MB{})",
            rec.path,
            rec.duration_ms as f64 / 1000.0,
            rec.bytes as f64 / 1e6,
            rec.error
                .as_ref()
                .map(|e| format!("; stopped: {e}"))
                .unwrap_or_default()
        );
    }
    println!(
        "bitrate:        {:.0} kbit/s average",
        r.average_bitrate_bps as f64 / 1000.0
    );
    if let Some(rtt) = r.rtt_ms {
        println!("rtt:            {rtt:.1} ms");
    }
    println!("reconnects:     {}", r.reconnects);
    if let Some(l) = &r.cpu_limited {
        println!("encoder:        {l} ({} step downs)", r.cpu_adaptations);
    } else if let Some(l) = &r.cpu_limited_last {
        println!(
            "encoder:        kept up at the end; {l} for {:.1} s ({} step downs)",
            r.cpu_limited_ms as f64 / 1000.0,
            r.cpu_adaptations
        );
    }
    println!("chat:           {} messages", r.chat_messages);
    for c in &r.chat {
        println!("  {}: {}", c.from, c.text);
    }
    if let Some(s) = &r.summary {
        for line in backend_lines(s) {
            println!("{line}");
        }
    }
    if let Some(path) = &r.spooled {
        println!(
            "summary:        the backend did not take it; spooled at {path}, delivered after the next login"
        );
    }
}

/// The backend's record of the session as report lines, including the media figures the
/// studio reported to it (an older studio reports none; a missing one shows as `–`).
fn backend_lines(s: &StreamSession) -> Vec<String> {
    let mut lines = vec![format!(
        "backend:        session {} — {} s, peak {} viewers, {} chat messages, ended by {}",
        s.id,
        s.duration_secs,
        s.peak_viewers,
        s.chat_messages,
        s.end_reason.as_deref().unwrap_or("–")
    )];
    let media = [
        s.frames_sent,
        s.frames_dropped,
        s.average_bitrate_bps,
        s.reconnects,
    ];
    if media.iter().all(Option::is_none) {
        lines.push("backend media:  not reported by the studio".into());
    } else {
        let n = |v: Option<i64>| v.map_or_else(|| "–".to_string(), |n| n.to_string());
        lines.push(format!(
            "backend media:  {} frames sent, {} dropped, {} kbit/s average, {} reconnects",
            n(s.frames_sent),
            n(s.frames_dropped),
            s.average_bitrate_bps
                .map_or_else(|| "–".to_string(), |b| format!("{:.0}", b as f64 / 1000.0)),
            n(s.reconnects)
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(media: bool) -> StreamSession {
        StreamSession {
            id: "s1".into(),
            stream_id: "st".into(),
            started_at: 0,
            ended_at: Some(10_000),
            duration_secs: 10,
            peak_viewers: 1,
            current_viewers: 0,
            chat_messages: 2,
            frames_sent: media.then_some(300),
            frames_dropped: media.then_some(4),
            average_bitrate_bps: media.then_some(812_400),
            reconnects: media.then_some(1),
            end_reason: Some("end-stream".into()),
        }
    }

    #[test]
    fn per_second_holds_the_last_value_known_by_each_seconds_end() {
        let ms = Duration::from_millis;
        let mut p = PerSecond::default();
        p.observe(ms(300), None);
        p.observe(ms(1_200), Some(1500));
        p.observe(ms(1_900), Some(1400));
        // No state for 2 s: those seconds keep 1400.
        p.observe(ms(4_100), Some(300));
        p.observe(ms(4_500), None);
        assert_eq!(
            p.finish(ms(6_050)),
            vec![
                None,
                Some(1400),
                Some(1400),
                Some(1400),
                Some(300),
                Some(300)
            ]
        );
    }

    #[test]
    fn cpu_limit_log_sums_the_limited_spans_and_keeps_the_last_message() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut limited = SessionState::default();
        let free = SessionState::default();
        let mut log = CpuLimitLog::default();
        log.observe(&free, at(0));
        limited.health.cpu_limited = Some(streamit_session::CpuLimited {
            width: 1280,
            height: 720,
            fps: 24.0,
        });
        log.observe(&limited, at(1_000));
        log.observe(&limited, at(1_500)); // still limited: the span goes on
        log.observe(&free, at(3_000));
        log.observe(&limited, at(4_000));
        // Limited until the broadcast ended at 4.5 s: 2 s + 0.5 s.
        let (ms, last) = log.finish(at(4_500));
        assert_eq!(ms, 2_500);
        assert_eq!(last.as_deref(), Some("CPU limited: sending 720p at 24 fps"));
        assert_eq!(CpuLimitLog::default().finish(at(0)), (0, None));
    }

    #[test]
    fn backend_lines_show_the_media_figures_or_say_they_are_missing() {
        let lines = backend_lines(&session(true));
        assert_eq!(
            lines[1],
            "backend media:  300 frames sent, 4 dropped, 812 kbit/s average, 1 reconnects"
        );
        let lines = backend_lines(&session(false));
        assert_eq!(lines[1], "backend media:  not reported by the studio");
    }
}
