//! One broadcast from start to end: go live (devices, the backend's grant, joining the
//! room, publishing), end stream (unpublish, leave, end-stream and the stats report, the
//! summary), and the failure path when the transport or a device is lost while on air.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use streamit_livekit_publish as lk;

use super::{BackendEvent, Live, Reply, Task};
use crate::error::{ErrorKind, Result, SessionError, UserError};
use crate::media::quality_of;
use crate::state::{
    Health, InterruptCause, Interruption, StreamInfo, StreamState, Summary, SummaryDelivery,
};

/// How long leaving the room may take before the studio goes on without it (LiveKit may be
/// the server that is gone).
const LEAVE_TIMEOUT: Duration = Duration::from_secs(5);

impl Task {
    pub(super) async fn go_live(&mut self) -> Result<()> {
        self.require_login()?;
        if self.live.is_some() || self.state.stream_state.is_on_air() {
            return Err(SessionError::Invalid("already live".into()));
        }
        // Devices first: a missing camera should not leave the backend showing "live".
        self.ensure_sources()?;
        let go_live_at = Instant::now();
        self.state.stream_state = StreamState::Connecting;
        self.state.summary = None;
        self.state.chat = Arc::default();
        self.state.moderation = Arc::default();
        self.slow_mode.clear();
        self.state.viewers = 0;
        self.state.peak_viewers = 0;
        self.state.health = Health::default();
        self.publish();

        let api = self.api.clone();
        let grant = match self
            .while_media_flows(async move { api.go_live().await })
            .await
        {
            Ok(g) => g,
            Err(e) => {
                let e = SessionError::from(e);
                self.state.stream_state = StreamState::Failed {
                    reason: e.user_message(),
                };
                return Err(e);
            }
        };
        self.state.session_id = Some(grant.session_id.clone());
        self.state.stream = Some(StreamInfo::from(&grant.stream));
        self.publish();

        match self.connect_and_publish(&grant, go_live_at).await {
            Ok(live) => {
                self.state.stream_state = StreamState::Live;
                self.state.live_since = Some(SystemTime::now());
                self.live = Some(live);
                // A screen share that cannot go out ends the sharing, not the stream.
                if let Err(e) = self.publish_screen().await {
                    self.end_screen_share(format!(
                        "could not publish the screen share: {}",
                        e.user_message()
                    ));
                }
                self.refresh_health();
                Ok(())
            }
            Err(e) => {
                // Take the backend out of "live" again; keep the original error.
                self.stop_sending_media();
                let api = self.api.clone();
                if let Err(end) = self
                    .while_media_flows(async move { api.end_stream().await })
                    .await
                {
                    tracing::warn!("end-stream after failed connect: {end}");
                }
                self.state.stream_state = StreamState::Failed {
                    reason: e.user_message(),
                };
                Err(e)
            }
        }
    }

    async fn connect_and_publish(
        &mut self,
        grant: &streamit_api::GoLiveResponse,
        go_live_at: Instant,
    ) -> Result<Live> {
        let timeout = self.config.connect_timeout;
        let secs = timeout.as_secs();
        // The transport queues video per track, all simulcast layers together: give each
        // layer the configured depth.
        let mut publish = self.config.publish.clone();
        let n_layers = self
            .video
            .as_ref()
            .map(|v| v.layers(self.config.simulcast).len())
            .unwrap_or(1);
        publish.video_queue = publish.video_queue.max(1) * n_layers.max(1);
        let (handle, mut events) = tokio::time::timeout(
            timeout,
            lk::Publisher::connect(&grant.ws_url, &grant.token, publish),
        )
        .await
        .map_err(|_| SessionError::ConnectTimeout(secs))??;
        // Wait for the publisher transport; keep other early events for the live loop.
        let deadline = go_live_at + timeout;
        let mut early = Vec::new();
        loop {
            let ev = tokio::time::timeout_at(deadline.into(), events.recv())
                .await
                .map_err(|_| SessionError::ConnectTimeout(secs))?;
            match ev {
                Some(lk::PublisherEvent::StateChanged(lk::ConnectionState::Connected)) => break,
                Some(lk::PublisherEvent::StateChanged(lk::ConnectionState::Failed { error })) => {
                    return Err(SessionError::Transport(error));
                }
                Some(lk::PublisherEvent::StateChanged(lk::ConnectionState::Disconnected {
                    reason,
                })) => return Err(SessionError::Transport(reason)),
                Some(other) => early.push(other),
                None => return Err(SessionError::Transport("connection closed".into())),
            }
        }
        let connect_time = go_live_at.elapsed();
        self.announce_media_clock(&handle);

        let Some(video) = self.video.as_mut() else {
            return Err(SessionError::Invalid("no video source".into()));
        };
        let layers = video.layers(self.config.simulcast);
        let simulcast = layers.len() > 1;
        let mut opts = lk::VideoTrackOptions::new(
            self.config.codec.publish(),
            video.width,
            video.height,
            video.fps,
        );
        if simulcast {
            opts.simulcast = layers
                .iter()
                .map(|l| lk::LayerSpec {
                    quality: quality_of(l.quality),
                    width: l.width,
                    height: l.height,
                    bitrate: lk::Bitrate(l.bitrate_bps as u64),
                })
                .collect();
        }
        let publish_timeout = tokio::time::timeout_at(deadline.into(), handle.publish_video(opts));
        let video_tx = publish_timeout
            .await
            .map_err(|_| SessionError::ConnectTimeout(secs))??;
        let encoders = video.start_encoders(
            self.config.codec,
            &layers,
            simulcast,
            video_tx.clone(),
            self.record_tap.clone(),
            self.media_tx.clone(),
        )?;
        if self.camera_off {
            handle.set_muted(video_tx.cid(), true)?;
        }
        let audio_tx = match &self.audio {
            Some(a) => {
                let t = tokio::time::timeout_at(
                    deadline.into(),
                    handle.publish_audio(lk::AudioTrackOptions::default()),
                )
                .await
                .map_err(|_| SessionError::ConnectTimeout(secs))??;
                if self.mic_muted {
                    handle.set_muted(t.cid(), true)?;
                }
                a.attach(Some(t.clone()));
                Some(t)
            }
            None => None,
        };
        let c = &self.counters;
        let mut live = Live {
            handle,
            events,
            video: Some(video_tx),
            audio: audio_tx,
            encoders,
            screen: None,
            session_id: grant.session_id.clone(),
            go_live_at,
            live_at: Instant::now(),
            connect_time,
            chat_messages: 0,
            participants: HashMap::new(),
            last_stats: lk::StatsSnapshot::default(),
            keyframe_requests: 0,
            allocation: None,
            ramp: Default::default(),
            paused_for_estimate: false,
            held_back: false,
            reconnects: 0,
            base_encoded: c.encoded.load(Ordering::Relaxed),
            base_dropped: c.encoder_dropped.load(Ordering::Relaxed),
            base_network_skipped: c.network_skipped.load(Ordering::Relaxed),
            base_audio: c.audio_packets.load(Ordering::Relaxed),
            base_captured: c.captured.load(Ordering::Relaxed),
        };
        for ev in early {
            self.apply_live_event(&mut live, ev);
        }
        if self.state.recording.on
            && let Err(e) = self.start_recording()
        {
            // the stream goes on; the error list says why there is no recording
            tracing::warn!("recording: {e}");
            self.state.recording.on = false;
            self.note_failure(e);
        }
        tracing::info!(?connect_time, session = %grant.session_id, "live");
        Ok(live)
    }

    /// End on request: the ending shows at once with the studio's figures; leaving the room,
    /// end-stream and the stats report run beside the loop, so a hung server never holds
    /// the window (the summary reads "Saving…" until the backend has them).
    pub(super) fn end_stream(&mut self, reply: &mut Option<Reply>) -> Result<()> {
        let (live, mut summary) = self.stop_live()?;
        let delivery = self.delivery(&live, &summary);
        summary.delivery = SummaryDelivery::Pending;
        self.state.summary = Some(summary);
        self.after_live(StreamState::Ended, &live);
        self.deliver_beside(live, delivery, reply.take());
        Ok(())
    }

    /// End and wait for the backend (bounded by the summary's retry time): for logging out
    /// and quitting, where nothing would be left to deliver the figures afterwards.
    pub(super) async fn end_stream_and_wait(&mut self) -> Result<()> {
        let (live, studio) = self.stop_live()?;
        match tokio::time::timeout(LEAVE_TIMEOUT, live.handle.leave()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!("leave: {e}"),
            Err(_) => tracing::warn!("leave timed out"),
        }
        let (mut summary, error) = self.summarise(&live).await;
        summary.recordings = studio.recordings;
        self.state.summary = Some(summary);
        self.after_live(StreamState::Ended, &live);
        match error {
            None => Ok(()),
            Some(e) => Err(e.into()),
        }
    }

    /// Takes the broadcast off air: media stopped, tracks unpublished; the studio's figures.
    fn stop_live(&mut self) -> Result<(Live, Summary)> {
        let Some(live) = self.live.take() else {
            return Err(SessionError::Invalid("not live".into()));
        };
        self.refresh_health_from(&live);
        self.stop_sending_media();
        for cid in [
            live.video.as_ref().map(|t| t.cid().clone()),
            live.audio.as_ref().map(|t| t.cid().clone()),
        ]
        .into_iter()
        .flatten()
        {
            if let Err(e) = live.handle.unpublish(&cid) {
                tracing::debug!("unpublish {cid}: {e}");
            }
        }
        let mut summary = self.studio_summary(&live);
        summary.recordings = self.take_recordings();
        Ok((live, summary))
    }

    fn after_live(&mut self, state: StreamState, live: &Live) {
        self.state.stream_state = state;
        self.state.reconnecting_since = None;
        self.state.viewers = 0;
        tracing::info!(go_live_to_end = ?live.go_live_at.elapsed(), "stream ended");
    }

    /// Leaves the room and delivers the figures beside the loop; the outcome comes back as
    /// [`BackendEvent::SummaryDone`].
    fn deliver_beside(&self, live: Live, delivery: super::summary::Delivery, reply: Option<Reply>) {
        let tx = self.outcome_tx.clone();
        let session_id = live.session_id.clone();
        tokio::spawn(async move {
            // independent: the backend ends the session whether or not LiveKit saw us go
            let leave = async {
                match tokio::time::timeout(LEAVE_TIMEOUT, live.handle.leave()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::debug!("leave: {e}"),
                    Err(_) => tracing::warn!("leave timed out"),
                }
            };
            let ((), (backend, delivery, error)) = tokio::join!(leave, delivery.run());
            drop(live);
            let _ = tx
                .send(BackendEvent::SummaryDone {
                    session_id,
                    backend,
                    delivery,
                    error,
                    reply,
                })
                .await;
        });
    }

    /// Stops the encoders and detaches the microphone from its track; the sources and the
    /// preview go on.
    fn stop_sending_media(&mut self) {
        if let Some(v) = &mut self.video {
            v.stop_encoders();
        }
        if let Some(s) = &mut self.screen {
            s.stop_encoders();
        }
        if let crate::state::ScreenShareState::Sharing { on_air, .. } = &mut self.state.screen_share
        {
            *on_air = false;
        }
        if let Some(a) = &self.audio {
            a.attach(None);
        }
    }

    /// The studio's own figures for the summary of `live` (no backend record yet; delivery
    /// is filled in by `summarise`).
    pub(super) fn studio_summary(&self, live: &Live) -> Summary {
        let duration = live.live_at.elapsed();
        let health = &self.state.health;
        // every transport's bytes: a rejoin's new transport counts from zero
        let total_bytes = live.last_stats.bytes_sent_total;
        Summary {
            backend: None,
            duration,
            connect_time: Some(live.connect_time),
            peak_viewers: self.state.peak_viewers,
            chat_messages: live.chat_messages,
            frames_sent: health.frames_sent,
            frames_dropped: health.frames_dropped,
            average_bitrate_bps: (total_bytes as f64 * 8.0 / duration.as_secs_f64().max(0.001))
                as u64,
            reconnects: live.reconnects,
            rtt: health.rtt,
            delivery: SummaryDelivery::Delivered,
            interruption: None,
            recordings: Vec::new(),
        }
    }

    /// The transport died for good (or a device was lost): the stream is over. The ending
    /// shows the studio's figures at once; leaving the room and delivering them run beside
    /// the loop (the servers may be gone), and the summary says "not yet saved" meanwhile.
    pub(super) fn on_transport_lost(&mut self, reason: String, kind: ErrorKind) {
        let Some(live) = self.live.take() else { return };
        tracing::warn!(%reason, "stream failed");
        self.refresh_health_from(&live);
        self.stop_sending_media();
        let mut summary = self.studio_summary(&live);
        summary.recordings = self.take_recordings();
        let delivery = self.delivery(&live, &summary);
        summary.delivery = SummaryDelivery::Pending;
        summary.interruption = Some(Interruption {
            cause: match kind {
                ErrorKind::Device | ErrorKind::Media => InterruptCause::DeviceFailed,
                _ => InterruptCause::ServerUnreachable,
            },
            detail: reason.clone(),
        });
        self.state.summary = Some(summary);
        self.after_live(
            StreamState::Failed {
                reason: reason.clone(),
            },
            &live,
        );
        self.deliver_beside(live, delivery, None);
        Arc::make_mut(&mut self.state.errors).push(UserError {
            kind,
            message: reason,
            at: SystemTime::now(),
        });
        self.publish();
    }
}
