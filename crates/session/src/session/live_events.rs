//! What the publisher reports while on air: connection state (reconnects), participants
//! and the viewer count, key frame and layer requests, the target bitrate and stats.
//! Chat messages it hands to `chat`.

use streamit_livekit_publish as lk;

use std::sync::Arc;

use super::health::distribute_bitrate;
use super::screen::screen_encoders;
use super::{Live, Task};
use crate::error::ErrorKind;
use crate::media::EncoderControl;
use crate::state::{ChatRole, StreamState};

impl Task {
    pub(super) async fn on_publisher(&mut self, ev: lk::PublisherEvent) {
        let Some(mut live) = self.live.take() else {
            return;
        };
        let fatal = match &ev {
            lk::PublisherEvent::StateChanged(lk::ConnectionState::Failed { error }) => {
                Some(format!("LiveKit connection failed: {error}"))
            }
            lk::PublisherEvent::StateChanged(lk::ConnectionState::Disconnected { reason }) => {
                Some(format!("disconnected by the LiveKit server: {reason}"))
            }
            _ => None,
        };
        // Stats carry the server's silence: health follows them as they come.
        let state_change = matches!(
            ev,
            lk::PublisherEvent::StateChanged(_) | lk::PublisherEvent::Stats(_)
        );
        self.apply_live_event(&mut live, ev);
        // The health bar follows a loss at once, not at the next tick.
        if state_change {
            self.refresh_health_from(&live);
        }
        self.live = Some(live);
        if let Some(reason) = fatal {
            self.on_transport_lost(reason, ErrorKind::Network);
        } else {
            self.publish();
        }
    }

    pub(super) fn apply_live_event(&mut self, live: &mut Live, ev: lk::PublisherEvent) {
        use lk::PublisherEvent as E;
        if !matches!(ev, E::Stats(_)) {
            tracing::debug!(?ev, "publisher event");
        }
        match ev {
            E::StateChanged(lk::ConnectionState::Reconnecting { attempt, max }) => {
                if !matches!(self.state.stream_state, StreamState::Reconnecting { .. }) {
                    live.reconnects += 1;
                    live.ramp = Default::default();
                    self.state.reconnecting_since = Some(std::time::SystemTime::now());
                }
                self.state.stream_state = StreamState::Reconnecting { attempt, max };
            }
            E::StateChanged(lk::ConnectionState::Connected) => {
                self.state.stream_state = StreamState::Live;
                self.state.reconnecting_since = None;
                live.encoders.iter().for_each(|e| e.request_keyframe());
                screen_encoders(live)
                    .iter()
                    .for_each(|e| e.request_keyframe());
                // A rejoin keeps attributes only if the server's refreshed token (which
                // carries them) arrived before the failure; the same value again is harmless.
                self.announce_media_clock(&live.handle);
            }
            E::StateChanged(_) => {}
            E::ChatReceived {
                id,
                from_identity,
                from_name,
                text,
                ..
            } => self.on_chat(live, id, from_identity.to_string(), from_name, text),
            E::ViewerCount(_) => self.count_viewers(live),
            E::ParticipantLeft(who) => {
                live.participants.remove(who.as_str());
                self.count_viewers(live);
            }
            E::KeyframeRequested { track, layer } => {
                live.keyframe_requests += 1;
                if let Some(s) = live.screen.as_ref().filter(|s| *s.track.cid() == track) {
                    s.encoders.iter().for_each(|e| e.request_keyframe());
                    return;
                }
                for e in &live.encoders {
                    if layer.is_none() || e.quality.is_none() || e.quality == layer {
                        e.request_keyframe();
                    }
                }
            }
            E::TargetBitrate(b) => {
                // Opus follows the estimate too; what it takes is not video's. A muted
                // microphone sends nothing, so its share goes to the video.
                let audio_bps = match (&self.audio, &live.audio) {
                    (Some(pipeline), Some(_)) => {
                        // RED doubles what each packet carries, where it was negotiated.
                        let red = live.last_stats.audio_redundancy;
                        let plan = pipeline.follow_estimate(b.bps(), red);
                        let wire = u64::from(plan.wire_bps(red));
                        if pipeline.muted.load(std::sync::atomic::Ordering::Acquire) {
                            0
                        } else {
                            wire
                        }
                    }
                    _ => 0,
                };
                // A screen share takes its nominal share of the estimate; the camera's
                // layers and the audio share the rest.
                let screen = screen_encoders(live);
                let nominal = |es: &[Arc<EncoderControl>]| -> u64 {
                    es.iter()
                        .filter(|e| e.is_wanted())
                        .map(|e| u64::from(e.nominal_bps))
                        .sum()
                };
                let (camera_nominal, screen_nominal) = (nominal(&live.encoders), nominal(screen));
                let screen_bps = match camera_nominal + screen_nominal {
                    0 => 0,
                    all => b.bps() * screen_nominal / all,
                };
                let screen_paused = if screen.is_empty() {
                    0
                } else {
                    distribute_bitrate(screen, screen_bps, 0).paused
                };
                let camera_bps = b.bps() - screen_bps;
                let allocation = distribute_bitrate(&live.encoders, camera_bps, audio_bps);
                live.allocation = Some((camera_bps, allocation));
                live.paused_for_estimate = allocation.paused + screen_paused > 0;
                self.tell_held_back(live);
            }
            E::Stats(s) => {
                live.ramp.observe(
                    std::time::Instant::now(),
                    s.bandwidth_estimate.map(|b| b.bps()),
                );
                // The audio track's own receiver reports (the last one, each stats tick).
                let audio_loss = live.audio.as_ref().and_then(|a| {
                    s.layers
                        .iter()
                        .find(|l| &l.track == a.cid())
                        .and_then(|l| l.loss)
                });
                if let (Some(loss), Some(audio)) = (audio_loss, &self.audio) {
                    audio.report_loss(loss);
                }
                live.last_stats = s;
                // A single layer scaled down for the estimate shows in the encoder's step,
                // which follows the bitrate a frame later than the allocation above.
                self.tell_held_back(live);
            }
            E::Error(m) => tracing::warn!("publisher: {m}"),
            // Also in the stats (`last_recovery`), where the health bar will read it.
            E::Recovery(r) => tracing::info!(
                cause = ?r.cause,
                outcome = ?r.outcome,
                attempts = r.attempts,
                took = ?r.took,
                "publisher recovery: {}",
                r.detail
            ),
            E::ParticipantJoined(p) | E::ParticipantUpdated(p) => {
                self.fill_in_sender(&p);
                live.participants.insert(p.identity.to_string(), p);
                self.count_viewers(live);
            }
            E::LayersWanted { layers, .. } => {
                // Dynacast: encode only the simulcast layers someone watches.
                for e in &live.encoders {
                    if let Some(q) = e.quality {
                        e.set_wanted(layers.contains(&q));
                    }
                }
            }
            E::DataReceived { .. }
            | E::TrackPublished { .. }
            | E::TrackSubscribed(_)
            | E::TrackUnsubscribed { .. }
            | E::TrackMuted { .. } => {}
        }
    }

    /// Tells every participant the media clock's epoch (a participant attribute), so a
    /// viewer anywhere — `watch`, with a synced clock — can turn the pattern's capture
    /// times into wall-clock times.
    pub(super) fn announce_media_clock(&self, handle: &lk::PublisherHandle) {
        let attributes = crate::watch::clock_epoch_attributes(self.clock.epoch());
        if let Err(e) = handle.set_attributes(attributes) {
            tracing::warn!("media clock epoch not announced: {e}");
        }
    }

    /// The viewer count: remote participants that are viewers or guests (what the watch
    /// page counts); one without a role attribute counts as a viewer, hidden ones do not.
    fn count_viewers(&mut self, live: &Live) {
        let n = live
            .participants
            .values()
            .filter(|p| !p.hidden && ChatRole::from_attributes(&p.attributes).is_audience())
            .count() as u32;
        self.state.viewers = n;
        self.state.peak_viewers = self.state.peak_viewers.max(n);
    }
}

impl Task {
    /// Tells the engine, on change, whether the estimate holds the picture back: a watched
    /// layer paused for it, or a single layer scaled down for it. While it does, a capped
    /// link is probed every few seconds, so the picture recovers soon after a cap lifts.
    fn tell_held_back(&self, live: &mut Live) {
        let held_back = live.paused_for_estimate || self.network_scaled();
        if held_back != live.held_back && live.handle.set_video_held_back(held_back).is_ok() {
            live.held_back = held_back;
        }
    }

    /// The camera's single layer is scaled down because of the estimate.
    fn network_scaled(&self) -> bool {
        self.video
            .as_ref()
            .is_some_and(|v| v.status.get().network_scaled)
    }
}
