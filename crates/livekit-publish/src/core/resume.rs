//! Resume and rejoin, and the rest of the session's lifecycle: the reconnect
//! requests the driver acts on, its backoff policy, a resume (ICE restart and
//! SyncState on the same session), a full rejoin, leaving and giving up.

use std::time::{Duration, Instant};

use livekit_protocol as proto;
use proto::signal_request::Message as Req;

use super::{
    CoreOutput, LOSSY_LABEL, LossNotice, Participant, RELIABLE_LABEL, SUBSCRIBER_RESTART_GRACE,
    SubscriberRestart,
};
use crate::chat::DataReceiver;
use crate::types::*;

impl Participant {
    /// Leave the room.
    pub fn leave(&mut self, now: Instant) {
        self.out
            .push_back(CoreOutput::Signal(Req::Leave(proto::LeaveRequest {
                can_reconnect: false,
                reason: proto::DisconnectReason::ClientInitiated as i32,
                action: proto::leave_request::Action::Disconnect as i32,
                regions: None,
            })));
        for rtc in [self.publisher.as_mut(), self.subscriber.as_mut()]
            .into_iter()
            .flatten()
        {
            rtc.disconnect();
        }
        self.set_state(ConnectionState::Disconnected {
            reason: "left".into(),
        });
        self.drive(now);
    }

    /// Why the core wants the driver to reconnect (transport lost, the server
    /// went silent, or its LeaveRequest asked for it), once.
    pub fn take_reconnect_request(&mut self) -> Option<LossNotice> {
        self.reconnect_requested.take()
    }

    /// The driver's account of a recovery (started, or ended): told to the app
    /// and kept for the stats.
    pub fn report_recovery(&mut self, r: Recovery) {
        self.last_recovery = Some(r.clone());
        self.emit(PublisherEvent::Recovery(r));
    }

    /// Show a reconnect attempt to the app.
    pub fn set_reconnecting(&mut self, attempt: u32, max: u32) {
        self.set_state(ConnectionState::Reconnecting { attempt, max });
    }

    /// Give up: a terminal error.
    pub fn set_failed(&mut self, error: String) {
        self.set_state(ConnectionState::Failed { error });
    }

    /// Resume the same session after the signal connection came back
    /// (`ReconnectResponse`): ICE-restart the publisher and tell the server what
    /// this side has (`SyncState`). Both are pass-through signals.
    pub fn resume(&mut self, now: Instant) {
        self.reconnect_requested = None;
        if self.publisher.is_none() {
            return;
        }
        if self.overload.restart() {
            self.emit_target(now);
        }
        // The server ICE-restarts the subscriber transport in answer to the
        // resume; until that completed, its old ICE session dying is no loss.
        if self.subscriber.is_some() {
            self.sub_restart = Some(SubscriberRestart {
                until: now + SUBSCRIBER_RESTART_GRACE,
                offered: false,
            });
        }
        // An offer in flight when the signal dropped will never be answered, and
        // str0m drops its changes with it: this offer makes them again.
        if self.pending_offer.take().is_some() {
            let (deactivated, added) = std::mem::take(&mut self.offer_in_flight);
            self.mids_to_deactivate.extend(deactivated);
            for t in self.tracks.iter_mut().filter(|t| added.contains(&t.cid)) {
                t.mid = None;
                t.pt = None;
            }
        }
        let before = self.offer_id;
        self.offer_changes(true);
        let offer_sd = match self.out.back() {
            Some(CoreOutput::Signal(Req::Offer(sd))) if self.offer_id != before => Some(sd.clone()),
            _ => None,
        };
        self.restart_refused = false;
        if offer_sd.is_some() {
            self.pub_restart = Some(super::PubRestart::Offered);
        }
        let publish_tracks = self
            .tracks
            .iter()
            .filter_map(|t| {
                t.info.clone().map(|info| proto::TrackPublishedResponse {
                    cid: t.cid.0.clone(),
                    track: Some(info),
                })
            })
            .collect();
        let data_channels = self.data_channel_infos();
        self.out
            .push_back(CoreOutput::Signal(Req::SyncState(proto::SyncState {
                answer: self.last_sub_answer.clone(),
                subscription: Some(proto::UpdateSubscription {
                    subscribe: true,
                    ..Default::default()
                }),
                publish_tracks,
                data_channels,
                offer: offer_sd,
                ..Default::default()
            })));
        self.drive(now);
    }

    /// Both sides' open data channels with their SCTP stream ids, as SyncState
    /// describes them (the SDKs send the same).
    fn data_channel_infos(&mut self) -> Vec<proto::DataChannelInfo> {
        let mut infos = Vec::new();
        let publisher_channels = [
            (self.reliable, RELIABLE_LABEL.to_string()),
            (self.lossy, LOSSY_LABEL.to_string()),
        ];
        let subscriber_channels = self
            .sub_channels
            .iter()
            .map(|(id, l)| (Some(*id), l.clone()));
        for (pc, channels) in [
            (PcKind::Publisher, publisher_channels.to_vec()),
            (PcKind::Subscriber, subscriber_channels.collect()),
        ] {
            let (rtc, target) = match pc {
                PcKind::Publisher => (self.publisher.as_mut(), proto::SignalTarget::Publisher),
                PcKind::Subscriber => (self.subscriber.as_mut(), proto::SignalTarget::Subscriber),
            };
            let Some(rtc) = rtc else { continue };
            for (id, label) in channels {
                let Some(id) = id else { continue };
                if let Some(sid) = rtc.direct_api().sctp_stream_id_by_channel_id(id) {
                    infos.push(proto::DataChannelInfo {
                        label,
                        id: u32::from(sid),
                        target: target as i32,
                    });
                }
            }
        }
        infos
    }

    /// The resume went through: back to Connected.
    pub fn resumed(&mut self) {
        self.resumes += 1;
        self.set_state(ConnectionState::Connected);
    }

    /// Start over in a new session (full reconnect): fresh peer connections,
    /// every track announced again with its cid. Queued chat survives.
    pub fn rejoin(&mut self, join: &proto::JoinResponse, now: Instant) {
        self.rejoins += 1;
        for rtc in [self.publisher.as_mut(), self.subscriber.as_mut()]
            .into_iter()
            .flatten()
        {
            rtc.disconnect();
        }
        self.publisher = None;
        self.subscriber = None;
        self.pub_timeout = None;
        self.sub_timeout = None;
        self.pending_offer = None;
        self.negotiation_needed = false;
        self.mids_to_deactivate.clear();
        self.offer_in_flight = Default::default();
        self.sub_candidates.clear();
        self.sub_restart = None;
        self.sub_remote_ufrag = None;
        self.sub_ice = None;
        self.pub_restart = None;
        self.restart_refused = false;
        self.subs.reset();
        self.sub_channels.clear();
        self.bytes_before_rejoin += self.egress.values().map(|c| c.bytes).sum::<u64>();
        self.egress.clear();
        self.data_rx = DataReceiver::default();
        self.reconnect_requested = None;
        for t in self.tracks.iter_mut() {
            t.sid = None;
            t.info = None;
            t.mid = None;
            t.pt = None;
            t.wanted = None;
            t.resend_set.clear();
            t.requested_at = now;
            t.request.muted = t.muted;
            self.out
                .push_back(CoreOutput::Signal(Req::AddTrack(t.request.clone())));
        }
        self.handle_join(join, now);
    }
}

/// The reconnect policy: `min(1 s · 2ⁿ, 15 s)` before attempt n+1, at most 5 attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Delay before the first attempt.
    pub base: Duration,
    /// Longest delay.
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(15),
        }
    }
}

impl Backoff {
    /// Delay before attempt `attempt` (1-based), or `None` when out of attempts.
    pub fn delay(&self, attempt: u32) -> Option<Duration> {
        if attempt == 0 || attempt > self.max_attempts {
            return None;
        }
        let factor = 1u32.checked_shl(attempt - 1).unwrap_or(u32::MAX);
        Some(self.base.saturating_mul(factor).min(self.cap))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use proto::signal_response::Message as Resp;
    use std::collections::HashSet;
    use str0m::{Candidate, Rtc};

    use crate::test_support::{Harness, MY_SID, addr, join_response, last_stats};

    #[test]
    fn backoff_is_1_2_4_8_15_then_gives_up() {
        let b = Backoff::default();
        let d: Vec<_> = (1..=6).map(|n| b.delay(n).map(|d| d.as_secs())).collect();
        assert_eq!(d, vec![Some(1), Some(2), Some(4), Some(8), Some(15), None]);
        assert_eq!(b.delay(0), None);
        assert_eq!(
            Backoff {
                max_attempts: 40,
                ..b
            }
            .delay(40),
            Some(Duration::from_secs(15))
        );
    }

    #[test]
    fn resume_ice_restarts_and_syncs_tracks_and_data_channels_without_republishing() {
        let mut h = Harness::new();
        h.connected();
        let cid = h.publish(&VideoTrackOptions::new(VideoCodec::H264, 640, 360, 30));
        let ufrag = |sdp: &str| {
            sdp.lines()
                .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
                .map(str::to_string)
        };
        let before = ufrag(&h.offers().pop().expect("offer")).expect("ufrag");
        h.signals.clear();
        h.core.set_reconnecting(1, 5);
        h.core.resume(h.now);
        h.pump(10);
        h.core.resumed();

        let restart = h.offers().pop().expect("an ICE-restart offer");
        assert_ne!(
            ufrag(&restart).expect("ufrag"),
            before,
            "new ICE credentials"
        );
        let sync = h
            .signals
            .iter()
            .find_map(|s| match s {
                Req::SyncState(st) => Some(st.clone()),
                _ => None,
            })
            .expect("SyncState");
        let published: Vec<_> = sync
            .publish_tracks
            .iter()
            .map(|p| (p.cid.clone(), p.track.as_ref().map(|t| t.sid.clone())))
            .collect();
        assert_eq!(published, vec![(cid.0.clone(), Some("TR_1".to_string()))]);
        let mut channels: Vec<_> = sync
            .data_channels
            .iter()
            .map(|d| (d.label.as_str(), d.target))
            .collect();
        channels.sort();
        let publisher = proto::SignalTarget::Publisher as i32;
        assert_eq!(
            channels,
            vec![(LOSSY_LABEL, publisher), (RELIABLE_LABEL, publisher)]
        );
        let ids: HashSet<u32> = sync.data_channels.iter().map(|d| d.id).collect();
        assert_eq!(
            ids.len(),
            2,
            "distinct SCTP stream ids: {:?}",
            sync.data_channels
        );
        assert_eq!(sync.offer.as_ref().map(|o| o.sdp.clone()), Some(restart));
        assert!(
            !h.signals.iter().any(|s| matches!(s, Req::AddTrack(_))),
            "a resume does not announce tracks again"
        );

        // The restarted ICE session carries media on.
        h.pump(2000);
        assert!(h.core.is_connected());
        assert!(h.core.is_track_ready(&cid));
        assert_eq!(h.core.state(), &ConnectionState::Connected);
        h.core.emit_stats(h.now);
        h.pump(10);
        let stats = last_stats(&h.events);
        assert_eq!((stats.resumes, stats.rejoins), (1, 0));
    }

    /// str0m keeps the old ICE session, and says "connected", until the answer to the
    /// restart offer arrives: the transport counts as back only once the new credentials
    /// found a working pair.
    #[test]
    fn the_publisher_is_back_only_once_its_ice_restart_connected() {
        let mut h = Harness::new();
        h.connected();
        assert!(h.core.is_publisher_restarted(), "no restart under way");
        h.core.set_reconnecting(1, 5);
        h.core.resume(h.now);
        assert!(h.core.is_connected(), "the old ICE session still says so");
        assert!(
            !h.core.is_publisher_restarted(),
            "the restart offer is not even answered"
        );
        h.pump(2000);
        assert!(h.core.is_publisher_restarted(), "restarted and connected");
        assert_eq!(
            h.core.pub_restart, None,
            "ICE checked the new pairs and connected"
        );
        assert!(h.offers().len() >= 2, "the restart offer went out");
    }

    #[test]
    fn resume_makes_again_the_changes_of_an_offer_lost_with_the_signal() {
        let mut h = Harness::new();
        h.connected();
        let first = h.publish(&VideoTrackOptions::new(VideoCodec::H264, 640, 360, 30));
        // While the signal is down: a second track is confirmed (its m-line goes
        // into an offer) and the first is unpublished (inactive after that offer's
        // answer). The offer is lost with the connection.
        let second = h.core.publish_video(
            &VideoTrackOptions::new(VideoCodec::Vp8, 320, 180, 30),
            h.now,
        );
        h.confirm_published(&second, "TR_2");
        h.core.unpublish(&first, h.now);
        let mut lost = 0;
        while let Some(o) = h.core.poll_output() {
            match o {
                CoreOutput::Signal(Req::Offer(_)) => lost += 1,
                CoreOutput::Signal(r) => h.signals.push(r),
                _ => {}
            }
        }
        assert_eq!(lost, 1, "one offer in flight when the signal dropped");
        assert!(!h.core.is_track_ready(&second));

        h.signals.clear();
        h.core.set_reconnecting(1, 5);
        h.core.resume(h.now);
        h.pump(1000);
        h.core.resumed();
        let offers = h.offers();
        assert!(!offers.is_empty(), "the resume offers");
        let restart = &offers[0];
        assert!(
            restart.contains(&format!("a=msid:{MY_SID} {}", second.0)),
            "the lost m-line is offered again: {restart}"
        );
        assert!(
            restart.contains("a=inactive"),
            "the unpublish too: {restart}"
        );
        assert!(h.core.is_connected());
        assert!(h.core.is_track_ready(&second), "the new track can send");
        assert!(!h.core.is_track_ready(&first));
    }

    #[test]
    fn rejoin_announces_tracks_again_and_renegotiates() {
        let mut h = Harness::new();
        h.connected();
        let cid = h.publish(&VideoTrackOptions::new(VideoCodec::H264, 640, 360, 30));
        h.core.set_muted(&cid, true);
        assert!(h.core.is_track_ready(&cid));

        // The server went away; a new session on a new SFU transport.
        h.sfu = Rtc::builder().enable_bwe(None).build(h.now);
        h.sfu
            .add_local_candidate(Candidate::host(addr("10.0.0.2:5001"), "udp").expect("candidate"));
        h.sfu_events.clear();
        h.signals.clear();
        h.core.rejoin(&join_response(Vec::new()), h.now);
        h.pump(10);
        let add = h.add_track_sent().expect("AddTrackRequest again");
        assert_eq!(add.cid, cid.0);
        assert!(add.muted, "mute state survives the rejoin");
        assert!(!h.core.is_track_ready(&cid));
        h.events.clear();
        h.pump(1500);
        assert!(
            h.core.is_connected(),
            "{:?} {:?} {:?}",
            h.events,
            h.signals
                .iter()
                .map(|s| format!("{s:?}").chars().take(60).collect::<String>())
                .collect::<Vec<_>>(),
            h.sfu_events.iter().rev().take(5).collect::<Vec<_>>()
        );
        h.confirm_published(&cid, "TR_2");
        h.pump(500);
        assert!(h.core.is_track_ready(&cid));
        let last = h.offers().pop().expect("offer");
        assert!(last.contains(&format!("a=msid:{MY_SID} {}", cid.0)));
    }

    #[test]
    fn server_leave_with_reconnect_action_requests_a_reconnect() {
        let mut h = Harness::new();
        h.connected();
        h.core.handle_signal(
            Resp::Leave(proto::LeaveRequest {
                action: proto::leave_request::Action::Reconnect as i32,
                ..Default::default()
            }),
            h.now,
        );
        assert!(h.core.take_reconnect_request().is_some());
        assert!(h.core.take_reconnect_request().is_none(), "reported once");
        h.core.handle_signal(
            Resp::Leave(proto::LeaveRequest {
                action: proto::leave_request::Action::Disconnect as i32,
                reason: proto::DisconnectReason::RoomDeleted as i32,
                ..Default::default()
            }),
            h.now,
        );
        assert!(matches!(
            h.core.state(),
            ConnectionState::Disconnected { .. }
        ));
    }

    /// A resume's subscriber transport: the server's ICE-restart offer comes
    /// after the publisher is back; the old ICE session dying meanwhile is no
    /// second loss (seen in tests/e2e/ice_tcp.rs: Connected, then Reconnecting 5 ms later).
    #[test]
    fn subscriber_disconnected_is_no_loss_until_its_ice_restart_completed() {
        use str0m::{Event, IceConnectionState};
        let mut h = Harness::new();
        h.connected();
        // The server's subscriber PC (data channels only).
        let mut server_sub = Rtc::builder().build(h.now);
        server_sub
            .add_local_candidate(Candidate::host(addr("10.0.0.2:5001"), "udp").expect("candidate"));
        let offer_from = |rtc: &mut Rtc, restart: bool| {
            let mut api = rtc.sdp_api();
            if restart {
                api.ice_restart(true);
            } else {
                api.add_channel("_reliable".into());
            }
            let (offer, pending) = api.apply().expect("an offer");
            (
                Resp::Offer(proto::SessionDescription {
                    r#type: "offer".into(),
                    sdp: offer.to_sdp_string(),
                    ..Default::default()
                }),
                pending,
            )
        };
        let (offer, first) = offer_from(&mut server_sub, false);
        h.core.handle_signal(offer, h.now);
        let answer = std::iter::from_fn(|| h.core.poll_output())
            .find_map(|o| match o {
                CoreOutput::Signal(Req::Answer(sd)) => Some(sd.sdp),
                _ => None,
            })
            .expect("the core answers");
        server_sub
            .sdp_api()
            .accept_answer(
                first,
                str0m::change::SdpAnswer::from_sdp_string(&answer).expect("answer"),
            )
            .expect("accepted");
        let disconnected = || Event::IceConnectionStateChange(IceConnectionState::Disconnected);
        let connected = || Event::IceConnectionStateChange(IceConnectionState::Connected);

        h.core.set_reconnecting(1, 5);
        h.core.resume(h.now);
        h.core.resumed();
        assert_eq!(h.core.state(), &ConnectionState::Connected);
        // The old ICE session dies before the restart offer: ignored.
        h.core
            .handle_rtc_event(PcKind::Subscriber, disconnected(), h.now);
        assert_eq!(h.core.take_reconnect_request(), None);
        // A Connected of the old session does not end the wait either.
        h.core
            .handle_rtc_event(PcKind::Subscriber, connected(), h.now);
        h.core
            .handle_rtc_event(PcKind::Subscriber, disconnected(), h.now);
        assert_eq!(h.core.take_reconnect_request(), None);
        // The restart offer (new credentials), then its ICE connects: done.
        let (offer, _restart) = offer_from(&mut server_sub, true);
        h.core.handle_signal(offer, h.now);
        h.core
            .handle_rtc_event(PcKind::Subscriber, connected(), h.now);
        // From now on a Disconnected is a loss again.
        h.core
            .handle_rtc_event(PcKind::Subscriber, disconnected(), h.now);
        let loss = h.core.take_reconnect_request().expect("a loss");
        assert_eq!(loss.cause, LossCause::TransportLost(PcKind::Subscriber));

        // No restart offer at all: once the grace is over a transport that is
        // still disconnected counts.
        h.core.resume(h.now);
        h.core.resumed();
        h.core
            .handle_rtc_event(PcKind::Subscriber, disconnected(), h.now);
        h.core
            .check_liveness(h.now + super::SUBSCRIBER_RESTART_GRACE / 2);
        assert_eq!(h.core.take_reconnect_request(), None);
        h.core
            .check_liveness(h.now + super::SUBSCRIBER_RESTART_GRACE);
        let loss = h
            .core
            .take_reconnect_request()
            .expect("a loss after the grace");
        assert_eq!(loss.cause, LossCause::TransportLost(PcKind::Subscriber));
    }
}
