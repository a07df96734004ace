//! The publisher peer connection and its negotiation: created on join with
//! both data channels, offers (one in flight at a time, what it changes kept
//! for a resume), answers, and the payload type each track sends with. Kept
//! apart from the subscriber side because only this side offers.

use std::collections::HashMap;
use std::time::Instant;

use livekit_protocol as proto;
use proto::signal_request::Message as Req;
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::channel::{ChannelConfig, Reliability as ChanReliability};
use str0m::format::Codec;
use str0m::media::{Direction, Mid, Pt};
use str0m::media::{Simulcast, SimulcastLayer};

use super::{CoreOutput, LOSSY_LABEL, Participant, RELIABLE_LABEL, STATS_INTERVAL};
use crate::types::*;

impl Participant {
    /// Start the session from the server's JoinResponse: create the publisher
    /// peer connection with both data channels and send the first offer.
    pub fn handle_join(&mut self, join: &proto::JoinResponse, now: Instant) {
        if let Some(p) = &join.participant {
            self.identity = p.identity.clone();
            self.sid = p.sid.clone();
        }
        // A full rejoin starts over: whoever is not in the room any more has left (an app
        // that tracks participants would otherwise keep them forever).
        let before: Vec<String> = self.participants.drain().map(|(k, _)| k).collect();
        for p in &join.other_participants {
            self.update_participant(p);
        }
        for identity in before {
            if !self.participants.contains_key(&identity) {
                self.emit(PublisherEvent::ParticipantLeft(ParticipantIdentity(
                    identity,
                )));
            }
        }
        self.publish_viewer_count();

        let mut rtc = self.new_rtc(now);
        for c in self.local_candidates(PcKind::Publisher) {
            rtc.add_local_candidate(c);
        }
        let mut api = rtc.sdp_api();
        let reliable = api.add_channel_with_config(ChannelConfig {
            label: RELIABLE_LABEL.into(),
            ordered: true,
            reliability: ChanReliability::Reliable,
            ..Default::default()
        });
        let lossy = api.add_channel_with_config(ChannelConfig {
            label: LOSSY_LABEL.into(),
            ordered: false,
            reliability: ChanReliability::MaxRetransmits { retransmits: 0 },
            ..Default::default()
        });
        let applied = api.apply();
        self.reliable = Some(reliable);
        self.lossy = Some(lossy);
        self.reliable_open = false;
        self.lossy_open = false;
        self.publisher = Some(rtc);
        self.bwe_desired = None;
        self.recovery = Default::default();
        self.overload = Default::default();
        self.cut_key = Default::default();
        self.pending_offer = None;
        self.offer_in_flight = Default::default();
        if let Some((offer, pending)) = applied {
            self.send_offer(offer, pending);
        }
        self.next_stats = Some(now + STATS_INTERVAL);
        self.drive(now);
    }

    fn send_offer(&mut self, offer: SdpOffer, pending: SdpPendingOffer) {
        self.offer_id += 1;
        let mut mid_to_track_id = HashMap::new();
        for t in &self.tracks {
            if let (Some(mid), Some(sid)) = (t.mid, &t.sid) {
                mid_to_track_id.insert(mid.to_string(), sid.0.clone());
            }
        }
        self.pending_offer = Some(pending);
        self.out
            .push_back(CoreOutput::Signal(Req::Offer(proto::SessionDescription {
                r#type: "offer".into(),
                sdp: offer.to_sdp_string(),
                id: self.offer_id,
                mid_to_track_id,
            })));
    }

    /// Add m-lines for published tracks that have none yet and offer, unless
    /// an offer is in flight (then it runs when the answer arrives).
    pub(super) fn negotiate(&mut self) {
        self.offer_changes(false);
    }

    /// [`Self::negotiate`], optionally with an ICE restart (a resume). Remembers
    /// what the offer changes: str0m forgets it if the offer is never answered.
    pub(super) fn offer_changes(&mut self, ice_restart: bool) {
        if self.pending_offer.is_some() {
            self.negotiation_needed = true;
            return;
        }
        let Some(rtc) = self.publisher.as_mut() else {
            return;
        };
        let mut api = rtc.sdp_api();
        if ice_restart {
            api.ice_restart(true);
        }
        let deactivated: Vec<Mid> = self.mids_to_deactivate.drain(..).collect();
        for mid in &deactivated {
            api.set_direction(*mid, Direction::Inactive);
        }
        let mut added = Vec::new();
        for (i, t) in self.tracks.iter().enumerate() {
            if t.sid.is_none() || t.mid.is_some() {
                continue;
            }
            let simulcast = (t.layers.len() > 1).then(|| {
                let mut s = Simulcast::new();
                for l in &t.layers {
                    s.add_send_layer(SimulcastLayer::new(l.quality.rid()));
                }
                s
            });
            let mid = api.add_media(
                t.kind,
                Direction::SendOnly,
                Some(self.sid.clone()),
                Some(t.cid.0.clone()),
                simulcast,
            );
            added.push((i, mid));
        }
        let applied = api.apply();
        let mut added_cids = Vec::new();
        for (i, mid) in added {
            self.tracks[i].mid = Some(mid);
            added_cids.push(self.tracks[i].cid.clone());
        }
        self.negotiation_needed = false;
        if let Some((offer, pending)) = applied {
            self.offer_in_flight = (deactivated, added_cids);
            self.send_offer(offer, pending);
        }
    }

    pub(super) fn handle_answer(&mut self, sd: proto::SessionDescription, now: Instant) {
        let Some(pending) = self.pending_offer.take() else {
            self.emit(PublisherEvent::Error("answer without an offer".into()));
            return;
        };
        tracing::debug!(
            "answer carries {} candidates, {} RTX payload types",
            sd.sdp.matches("a=candidate").count(),
            sd.sdp.matches(" rtx/90000").count()
        );
        let answer = match SdpAnswer::from_sdp_string(&sd.sdp) {
            Ok(a) => a,
            Err(e) => {
                self.emit(PublisherEvent::Error(format!("bad answer sdp: {e}")));
                return;
            }
        };
        let Some(rtc) = self.publisher.as_mut() else {
            return;
        };
        if let Err(e) = rtc.sdp_api().accept_answer(pending, answer) {
            self.emit(PublisherEvent::Error(format!("answer rejected: {e}")));
            return;
        }
        self.offer_in_flight = Default::default();
        // A restart the answer accepted has set ICE checking (its event comes with the
        // next drive); one it did not leaves nothing to wait for.
        if self.pub_restart == Some(super::PubRestart::Offered) {
            self.pub_restart = Some(super::PubRestart::Answered(now));
        }
        self.resolve_payload_types();
        if self.negotiation_needed
            || !self.mids_to_deactivate.is_empty()
            || self
                .tracks
                .iter()
                .any(|t| t.sid.is_some() && t.mid.is_none())
        {
            self.negotiate();
        }
    }

    /// After an answer: pick the payload type each track will send with.
    fn resolve_payload_types(&mut self) {
        let Some(rtc) = self.publisher.as_mut() else {
            return;
        };
        for t in self.tracks.iter_mut() {
            let Some(mid) = t.mid else { continue };
            let Some(w) = rtc.writer(mid) else { continue };
            let mut best: Option<(u8, Pt)> = None;
            t.red = None;
            for p in w.payload_params() {
                let spec = p.spec();
                let score = match (t.video_codec, spec.codec) {
                    (None, Codec::Opus) => 3,
                    (Some(VideoCodec::Vp8), Codec::Vp8) => 3,
                    (Some(VideoCodec::H264), Codec::H264)
                        if spec.format.packetization_mode == Some(1) =>
                    {
                        if spec.format.profile_level_id == Some(0x42e01f) {
                            3
                        } else {
                            2
                        }
                    }
                    _ => 0,
                };
                if score > 0 && best.is_none_or(|(s, _)| score > s) {
                    best = Some((score, p.pt()));
                    t.red = p.red().filter(|_| t.video_codec.is_none());
                }
            }
            let was_ready = t.pt.is_some();
            t.pt = best.map(|(_, pt)| pt);
            if !was_ready && t.pt.is_some() && t.kind.is_video() && rtc.is_connected() {
                let track = t.cid.clone();
                self.out
                    .push_back(CoreOutput::Event(PublisherEvent::KeyframeRequested {
                        track,
                        layer: None,
                    }));
            }
        }
    }

    /// Every negotiated video track makes a key frame: the transport just came up, or an
    /// overload lost what was sent.
    pub(super) fn request_keyframes(&mut self) {
        let ready: Vec<TrackCid> = self
            .tracks
            .iter()
            .filter(|t| t.pt.is_some() && t.kind.is_video())
            .map(|t| t.cid.clone())
            .collect();
        for track in ready {
            self.emit(PublisherEvent::KeyframeRequested { track, layer: None });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use str0m::Event;
    use str0m::net::Protocol;

    use crate::test_support::{Harness, addr};

    #[test]
    fn tcp_only_offers_an_active_tcp_candidate_connects_over_tcp_and_a_drop_is_a_loss() {
        let mut h = Harness::with_transport(IceTransport::TcpOnly);
        h.connected();
        let offer = &h.offers()[0];
        assert!(
            offer.contains("tcp") && offer.contains("10.0.0.1 9 typ host tcptype active"),
            "{offer}"
        );
        assert!(!offer.contains(" udp "), "no UDP candidate: {offer}");
        assert_eq!(h.sent.get(&Protocol::Udp), None);
        assert!(h.sent.get(&Protocol::Tcp).copied().unwrap_or(0) > 0);
        // Stats name the selected pair's transport once str0m reported it.
        h.pump(2500);
        let transport = h.events.iter().rev().find_map(|e| match e {
            PublisherEvent::Stats(s) => Some(s.transport),
            _ => None,
        });
        assert_eq!(transport, Some(Some(TransportProtocol::Tcp)));
        // Another connection ending is no loss; the selected one's is.
        h.core
            .tcp_closed(PcKind::Publisher, addr("10.0.0.3:7881"), h.now);
        assert_eq!(h.core.take_reconnect_request(), None);
        h.core
            .tcp_closed(PcKind::Subscriber, addr("10.0.0.2:7881"), h.now);
        assert_eq!(h.core.take_reconnect_request(), None, "no subscriber PC");
        h.core
            .tcp_closed(PcKind::Publisher, addr("10.0.0.2:7881"), h.now);
        assert!(h.core.take_reconnect_request().is_some());
    }

    #[test]
    fn relay_only_offers_the_relayed_candidate_sends_from_it_and_says_relay() {
        let relayed = addr("198.51.100.7:49152");
        let mut h = Harness::with_relay(crate::turn::RelayCandidate {
            pc: PcKind::Publisher,
            relayed,
            local: addr("10.0.0.1:40000"),
            protocol: RelayProtocol::Tls,
        });
        h.connected();
        let offer = &h.offers()[0];
        assert!(offer.contains("198.51.100.7 49152 typ relay"), "{offer}");
        assert!(!offer.contains("typ host"), "no host candidate: {offer}");
        assert!(
            h.events
                .contains(&PublisherEvent::StateChanged(ConnectionState::Connected))
        );
        assert_eq!(h.sources.iter().copied().collect::<Vec<_>>(), vec![relayed]);
        h.pump(2500);
        let transport = h.events.iter().rev().find_map(|e| match e {
            PublisherEvent::Stats(s) => Some(s.transport),
            _ => None,
        });
        assert_eq!(
            transport,
            Some(Some(TransportProtocol::Relay(RelayProtocol::Tls)))
        );
        assert_eq!(
            TransportProtocol::Relay(RelayProtocol::Tls).name(),
            "relay/tls"
        );
    }

    #[test]
    fn first_offer_carries_reliable_and_lossy_channels_and_connects() {
        let mut h = Harness::new();
        h.connected();
        let offers = h.offers();
        assert_eq!(offers.len(), 1);
        assert!(offers[0].contains("m=application"), "{}", offers[0]);
        assert!(!offers[0].contains("m=video") && !offers[0].contains("m=audio"));
        assert!(
            offers[0].contains("10.0.0.1 4000 typ host"),
            "own host candidate is in the offer"
        );
        assert!(
            h.events
                .contains(&PublisherEvent::StateChanged(ConnectionState::Connected))
        );

        let mut labels = HashMap::new();
        for e in &h.sfu_events {
            if let Event::ChannelOpen(id, label) = e {
                labels.insert(label.clone(), *id);
            }
        }
        let reliable = labels
            .get(RELIABLE_LABEL)
            .copied()
            .expect("_reliable opened");
        let lossy = labels.get(LOSSY_LABEL).copied().expect("_lossy opened");
        let rc = h
            .sfu
            .channel(reliable)
            .and_then(|c| c.config().cloned())
            .expect("config");
        assert!(rc.ordered);
        assert_eq!(rc.reliability, ChanReliability::Reliable);
        let lc = h
            .sfu
            .channel(lossy)
            .and_then(|c| c.config().cloned())
            .expect("config");
        assert!(!lc.ordered);
        assert_eq!(
            lc.reliability,
            ChanReliability::MaxRetransmits { retransmits: 0 }
        );
    }
}
