//! Bandwidth and stats: what the tracks would like to send (handed to str0m's
//! estimator so it probes for it), when a new estimate is worth announcing,
//! and the periodic [`StatsSnapshot`].

use std::net::SocketAddr;
use std::time::Instant;

use str0m::net::Protocol;

use super::Participant;
use super::overload::StreamReport;
use crate::types::*;

impl Participant {
    /// What the negotiated, unmuted tracks would like to send: audio at
    /// [`AUDIO_DESIRED_BPS`], video at the nominal bitrate of each layer someone
    /// watches (single layers without one: [`nominal_video_bps`]).
    fn desired_bitrate(&self) -> Bitrate {
        let mut sum = 0;
        // Only tracks whose m-line is negotiated: str0m's allocation probe (on a
        // raised desired bitrate) needs a sending m-line with TWCC to probe on.
        for t in self
            .tracks
            .iter()
            .filter(|t| t.sid.is_some() && t.pt.is_some() && !t.muted)
        {
            if t.video_codec.is_none() {
                sum += AUDIO_DESIRED_BPS;
                continue;
            }
            for l in t.layers.iter().filter(|l| t.is_wanted(l.quality)) {
                sum += if l.bitrate.0 > 0 {
                    l.bitrate.0
                } else {
                    nominal_video_bps(l.width, l.height)
                };
            }
        }
        Bitrate(sum)
    }

    /// Tells str0m's BWE what we would like to send, so it probes for it; while the
    /// estimate sits far below that, the [`RecoveryProber`](super::recovery) asks for a
    /// fresh start, whose initial probes look for room.
    pub(super) fn apply_desired_bitrate(&mut self, now: Instant) {
        let wanted = self.desired_bitrate();
        if wanted.0 == 0 || !self.is_connected() {
            return;
        }
        let overloaded = self.overload.ceiling().is_some();
        let attempt = self.recovery.poll(now, wanted, overloaded);
        // The target may have climbed since the last estimate (see `recovery`).
        self.emit_target(now);
        let Some(rtc) = self.publisher.as_mut() else {
            return;
        };
        if let Some(from) = attempt {
            tracing::debug!(
                estimate_bps = self.bwe.map(|b| b.0),
                from_bps = from.0,
                wanted_bps = wanted.0,
                "estimate far below what the tracks want: restarting the BWE"
            );
            rtc.bwe().reset(to_str0m_bitrate(from));
        }
        if self.bwe_desired == Some(wanted) {
            return;
        }
        rtc.bwe()
            .set_bitrate(str0m::bwe::Bitrate::bps(0), to_str0m_bitrate(wanted));
        self.bwe_desired = Some(wanted);
    }

    /// Tells the encoder side what it may spend, when that moved enough to matter: the
    /// estimate, held back while a recovery probe's result is unproven.
    pub(super) fn emit_target(&mut self, now: Instant) {
        let Some(target) = self.recovery.target(now) else {
            return;
        };
        let target = self.overload.cap(target);
        if target_bitrate_moved(self.bwe_emitted, target) {
            if self.cut_key.on_target(now, self.bwe_emitted, target) {
                self.forget_resends();
            }
            self.bwe_emitted = Some(target);
            self.emit(PublisherEvent::TargetBitrate(target));
        }
    }

    /// Whether the estimate holds the picture back: a video layer someone watches is
    /// paused, or a single layer scaled down, because the estimate cannot carry it (the
    /// encoder side decides that). While it does, a capped link is probed every 5 s, so a
    /// lifted cap brings the picture back soon (see [`super::recovery`]).
    pub fn set_video_held_back(&mut self, yes: bool) {
        self.recovery.set_holding_back(yes);
    }

    /// Feeds a stream's stats to the overload guard; when its ceiling moves the encoders
    /// hear of it at once. str0m's estimator is left to come down by itself (a restart
    /// from the ceiling probes straight back above a capped link).
    pub(super) fn check_overload(&mut self, s: &str0m::stats::MediaEgressStats, now: Instant) {
        let Some(remote) = &s.remote else {
            return;
        };
        let report = StreamReport {
            max_seq: *remote.maximum_sequence_number,
            lost: remote.packets_lost,
            bytes_sent: s.bytes,
            packets_sent: s.packets,
        };
        if !self
            .overload
            .on_report(now, (s.mid, s.rid), report, self.bwe)
        {
            return;
        }
        tracing::debug!(
            ceiling_bps = self.overload.ceiling().map(|c| c.0),
            mid = %s.mid,
            "receiver reports: the overload ceiling moved"
        );
        self.pass_carried(now);
        self.emit_target(now);
    }

    /// Empties every video stream's resend history on a sharp cut of the target (each
    /// stream takes a new one with its next frame): NACKs for what was sent at the old
    /// rate are left unanswered. The link lost most of that, the encoder's rebuild at the
    /// new size starts afresh from a key frame, and resends are budgeted at half of what
    /// the last second sent, more than the narrowed link carries. At a 100 kbit/s cap the
    /// picture came back with the rebuild's key frame and stood again for 0.65-0.75 s,
    /// until the key frame a second after the cut, in 6 of 6 runs; with the history
    /// emptied when the overload ceiling was set, in none of 5.
    fn forget_resends(&mut self) {
        for t in self.tracks.iter_mut() {
            t.resend_set.clear();
        }
    }

    /// What the link carried by the reports, when a ceiling ended, bounds how far str0m's
    /// estimate may walk down soon after (see [`super::recovery`]).
    pub(super) fn pass_carried(&mut self, now: Instant) {
        if let Some(rate) = self.overload.take_carried() {
            tracing::debug!(
                carried_bps = rate.0,
                "the link carried this as the ceiling ended"
            );
            self.recovery.on_carried(now, rate);
        }
    }

    pub(super) fn emit_stats(&mut self, now: Instant) {
        let mut layers = Vec::new();
        let mut total = 0;
        for ((mid, rid), acc) in &self.egress {
            let Some(t) = self.tracks.iter().find(|t| t.mid == Some(*mid)) else {
                continue;
            };
            total += acc.bitrate.0;
            let rid = rid.map(|r| r.to_string());
            let frames_dropped = self
                .dropped_by_layer
                .get(&(t.cid.clone(), rid.clone()))
                .copied()
                .unwrap_or(0);
            layers.push(LayerStats {
                track: t.cid.clone(),
                rid,
                frames_dropped,
                bytes: acc.bytes,
                packets: acc.packets,
                bitrate: acc.bitrate,
                nacks: acc.nacks,
                plis: acc.plis,
                firs: acc.firs,
                loss: acc.loss,
                rtt: acc.rtt,
                lost: acc.lost,
            });
        }
        // Layers that dropped frames before sending any still show their drops.
        for ((track, rid), n) in &self.dropped_by_layer {
            if !layers.iter().any(|l| &l.track == track && &l.rid == rid) {
                layers.push(LayerStats {
                    track: track.clone(),
                    rid: rid.clone(),
                    frames_dropped: *n,
                    ..Default::default()
                });
            }
        }
        layers.sort_by(|a, b| (&a.track, &a.rid).cmp(&(&b.track, &b.rid)));
        let (receive, frames_received, frames_dropped_rx, audio_packets_received) =
            self.subs.stats();
        let snap = StatsSnapshot {
            receive,
            frames_received,
            frames_dropped_rx,
            audio_packets_received,
            rtt: self.peer_rtt.or_else(|| layers.iter().find_map(|l| l.rtt)),
            layers,
            egress_bitrate: Bitrate(total),
            bytes_sent_total: self.bytes_before_rejoin
                + self.egress.values().map(|c| c.bytes).sum::<u64>(),
            bandwidth_estimate: self.bwe,
            frames_sent: self.frames_sent,
            frames_dropped: self.frames_dropped,
            audio_packets_sent: self.audio_sent,
            audio_redundancy: self.tracks.iter().any(|t| t.red.is_some()),
            connection_quality: self.quality,
            resumes: self.resumes,
            rejoins: self.rejoins,
            transport: self.pub_pair.map(|p| p.0),
            subscriber_transport: self.sub_pair.map(|p| p.0),
            // Filled in by the driver, which owns the sockets.
            udp_datagrams_sent: 0,
            tcp_frames_sent: 0,
            relay_packets_sent: 0,
            relay_channel_data_sent: 0,
            last_recovery: self.last_recovery.clone(),
            feedback_silence: self.watch.silent_for(now),
            send_queue_delay: self.take_send_queue_peak(),
        };
        self.emit(PublisherEvent::Stats(snap));
    }
}

/// What an Opus track asks of the bandwidth estimator.
const AUDIO_DESIRED_BPS: u64 = 64_000;

/// Nominal bitrate of a video layer announced without one: 0.1 bit per pixel at
/// 30 fps (640×360 ≈ 0.7 Mbit/s, 1280×720 ≈ 2.8 Mbit/s).
fn nominal_video_bps(width: u32, height: u32) -> u64 {
    u64::from(width) * u64::from(height) * 3
}

/// Whether a new egress estimate is worth a [`PublisherEvent::TargetBitrate`]:
/// the first one, or one that moved by at least 5 % from the last announced (the
/// estimate wiggles on every TWCC feedback; encoders need no finer steps).
pub(super) fn target_bitrate_moved(last: Option<Bitrate>, estimate: Bitrate) -> bool {
    match last {
        None => true,
        Some(last) => estimate.0.abs_diff(last.0) * 20 >= last.0.max(1),
    }
}

pub(super) fn to_str0m_bitrate(b: Bitrate) -> str0m::bwe::Bitrate {
    str0m::bwe::Bitrate::bps(b.0)
}

/// Transport and remote address of the pair str0m selected, if any; a local
/// candidate that is one of `relays` makes it a relay.
pub(super) fn selected_pair(
    s: &str0m::stats::PeerStats,
    relays: &[crate::turn::RelayCandidate],
) -> Option<(TransportProtocol, SocketAddr)> {
    let p = s.selected_candidate_pair.as_ref()?;
    let relay = relays.iter().find(|r| r.relayed == p.local.addr);
    let proto = match (relay, p.protocol) {
        (Some(r), _) => TransportProtocol::Relay(r.protocol),
        (None, Protocol::Udp) => TransportProtocol::Udp,
        (None, _) => TransportProtocol::Tcp,
    };
    Some((proto, p.remote.addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    use livekit_protocol as proto;
    use proto::signal_response::Message as Resp;
    use str0m::Event;

    use crate::core::CoreOutput;
    use crate::test_support::{Harness, last_stats};

    #[test]
    fn target_bitrate_is_announced_first_then_on_5_percent_moves() {
        let mut h = Harness::new();
        h.connected();
        while h.core.poll_output().is_some() {}
        let mut announced = Vec::new();
        for kbps in [1000, 1020, 1049, 1100, 1060, 1000, 2500] {
            h.core.handle_rtc_event(
                PcKind::Publisher,
                Event::EgressBitrateEstimate(str0m::bwe::BweKind::Twcc {
                    estimate: str0m::bwe::Bitrate::kbps(kbps),
                    can_probe: true,
                }),
                h.now,
            );
            while let Some(o) = h.core.poll_output() {
                if let CoreOutput::Event(PublisherEvent::TargetBitrate(b)) = o {
                    announced.push(b.0 / 1000);
                }
            }
            // Stats always carry the latest estimate.
            assert_eq!(h.core.bwe, Some(Bitrate::from_kbps(kbps)));
        }
        assert_eq!(announced, vec![1000, 1100, 1000, 2500]);
        assert!(!target_bitrate_moved(Some(Bitrate(0)), Bitrate(0)));
        assert!(target_bitrate_moved(Some(Bitrate(0)), Bitrate(1)));
    }

    #[test]
    fn desired_bitrate_is_the_watched_layers_plus_audio() {
        let mut h = Harness::new();
        h.connected();
        let opts = VideoTrackOptions::new(VideoCodec::Vp8, 1280, 720, 30)
            .with_default_simulcast(Bitrate::from_kbps(2000));
        let _cid = h.publish(&opts);
        h.pump(10);
        assert_eq!(
            h.core.desired_bitrate(),
            Bitrate(200_000 + 666_666 + 2_000_000)
        );
        assert_eq!(h.core.bwe_desired, Some(h.core.desired_bitrate()));
        h.core.handle_signal(
            Resp::SubscribedQualityUpdate(proto::SubscribedQualityUpdate {
                track_sid: "TR_1".into(),
                subscribed_codecs: vec![proto::SubscribedCodec {
                    codec: "vp8".into(),
                    qualities: vec![proto::SubscribedQuality {
                        quality: proto::VideoQuality::Low as i32,
                        enabled: true,
                    }],
                }],
                ..Default::default()
            }),
            h.now,
        );
        h.pump(10);
        assert_eq!(h.core.bwe_desired, Some(Bitrate(200_000)));
        // A single layer without a nominal bitrate: 0.1 bit/pixel at 30 fps.
        assert_eq!(nominal_video_bps(640, 360), 691_200);
    }

    /// A connected core publishing one 720p H.264 track.
    fn publishing_720p() -> Harness {
        let mut h = Harness::new();
        h.connected();
        let _cid = h.publish(&VideoTrackOptions::new(VideoCodec::H264, 1280, 720, 30));
        h.pump(10);
        h
    }

    /// str0m's estimate event, as the core gets it.
    fn est(kbps: u64) -> Event {
        Event::EgressBitrateEstimate(str0m::bwe::BweKind::Twcc {
            estimate: str0m::bwe::Bitrate::kbps(kbps),
            can_probe: true,
        })
    }

    /// What a restart's probes found on a link that stays capped (1.6× where it started)
    /// does not reach the encoders at once: their target holds until the verdict, then
    /// climbs.
    #[test]
    fn an_unproven_probe_result_holds_the_encoders_target() {
        let mut h = publishing_720p();
        while h.core.poll_output().is_some() {}
        let t0 = h.now;
        let ms = |ms| t0 + std::time::Duration::from_millis(ms);
        h.core.recovery = Default::default();
        h.core.bwe_emitted = None;
        h.core.handle_rtc_event(PcKind::Publisher, est(300), t0);
        h.core.apply_desired_bitrate(ms(3000));
        h.core
            .handle_rtc_event(PcKind::Publisher, est(480), ms(3300));
        h.core.apply_desired_bitrate(ms(4900));
        h.core.apply_desired_bitrate(ms(6000));
        assert_eq!(
            h.core.bwe,
            Some(Bitrate(480_000)),
            "the stats keep the estimate"
        );
        let mut targets = Vec::new();
        while let Some(o) = h.core.poll_output() {
            if let CoreOutput::Event(PublisherEvent::TargetBitrate(b)) = o {
                targets.push(b.0);
            }
        }
        assert_eq!(targets, vec![300_000, 324_480]);
    }

    #[test]
    fn dropped_frames_are_reported_per_layer_and_in_total() {
        let mut h = Harness::new();
        h.connected();
        let cid = h.publish(
            &VideoTrackOptions::new(VideoCodec::Vp8, 1280, 720, 30)
                .with_default_simulcast(Bitrate::from_kbps(1500)),
        );
        h.core
            .count_dropped_frames(&cid, Some(VideoQuality::High), 5);
        h.core
            .count_dropped_frames(&cid, Some(VideoQuality::Low), 1);
        h.core
            .count_dropped_frames(&cid, Some(VideoQuality::High), 2);
        h.core.emit_stats(h.now);
        h.pump(10);
        let stats = last_stats(&h.events);
        let per_layer: Vec<_> = stats
            .layers
            .iter()
            .filter(|l| l.track == cid && l.frames_dropped > 0)
            .map(|l| (l.rid.clone(), l.frames_dropped))
            .collect();
        assert_eq!(
            per_layer,
            vec![(Some("f".to_string()), 7), (Some("q".to_string()), 1)]
        );
        assert_eq!(stats.frames_dropped, 8);
    }
}
