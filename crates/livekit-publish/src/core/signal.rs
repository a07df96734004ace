//! Signalling dispatch: what each server message does, the remote
//! participants it announces (and the viewer count), ICE candidates trickled
//! in LiveKit's JSON, and the server's verdicts on our requests. The one place
//! that maps the signal protocol onto the other concerns.

use std::collections::HashMap;
use std::time::Instant;

use livekit_protocol as proto;
use proto::signal_request::Message as Req;
use proto::signal_response::Message as Resp;
use str0m::Candidate;

use super::{CoreOutput, Participant};
use crate::types::*;

impl Participant {
    /// Feed a message from the signal connection.
    pub fn handle_signal(&mut self, msg: Resp, now: Instant) {
        self.watch.signal(now);
        match msg {
            Resp::Join(j) => self.handle_join(&j, now),
            Resp::Answer(sd) => self.handle_answer(sd, now),
            Resp::Offer(sd) => self.handle_subscriber_offer(sd, now),
            Resp::Trickle(t) => self.handle_trickle(t),
            Resp::TrackPublished(tp) => self.handle_track_published(tp),
            Resp::Update(u) => {
                for p in &u.participants {
                    self.update_participant(p);
                }
                self.publish_viewer_count();
                self.release_chats(now);
            }
            Resp::SubscribedQualityUpdate(u) => self.handle_subscribed_quality(u),
            Resp::ConnectionQuality(cq) => {
                for info in cq.updates {
                    if info.participant_sid == self.sid || info.participant_sid.is_empty() {
                        self.quality = match proto::ConnectionQuality::try_from(info.quality) {
                            Ok(proto::ConnectionQuality::Lost) => Some(ConnectionQuality::Lost),
                            Ok(proto::ConnectionQuality::Poor) => Some(ConnectionQuality::Poor),
                            Ok(proto::ConnectionQuality::Good) => Some(ConnectionQuality::Good),
                            Ok(proto::ConnectionQuality::Excellent) => {
                                Some(ConnectionQuality::Excellent)
                            }
                            Err(_) => self.quality,
                        };
                    }
                }
            }
            Resp::Leave(l) => {
                let reason = proto::DisconnectReason::try_from(l.reason)
                    .map(|r| r.as_str_name().to_string())
                    .unwrap_or_else(|_| format!("reason {}", l.reason));
                match proto::leave_request::Action::try_from(l.action) {
                    Ok(proto::leave_request::Action::Resume)
                    | Ok(proto::leave_request::Action::Reconnect) => {
                        self.reconnect_requested = Some(super::LossNotice::new(
                            LossCause::ServerRequest,
                            format!("server asked to reconnect ({reason})"),
                        ));
                    }
                    _ => self.set_state(ConnectionState::Disconnected {
                        reason: format!("server: {reason}"),
                    }),
                }
            }
            Resp::Mute(m) => {
                // The server muted one of our tracks (e.g. by admin action).
                if let Some(t) = self
                    .tracks
                    .iter_mut()
                    .find(|t| t.sid.as_ref().is_some_and(|s| s.0 == m.sid))
                {
                    t.muted = m.muted;
                }
            }
            Resp::TrackUnpublished(u) => {
                self.tracks
                    .retain(|t| t.sid.as_ref().is_none_or(|s| s.0 != u.track_sid));
            }
            Resp::RequestResponse(r) => self.handle_request_response(r),
            _ => {}
        }
        self.drive(now);
    }

    fn handle_trickle(&mut self, t: proto::TrickleRequest) {
        let Some(c) = parse_candidate_init(&t.candidate_init) else {
            return;
        };
        tracing::debug!(
            "trickled candidate (target {}): {}",
            t.target,
            c.to_sdp_string()
        );
        if t.target == proto::SignalTarget::Subscriber as i32 {
            match self.subscriber.as_mut() {
                Some(rtc) => rtc.add_remote_candidate(c),
                None => self.sub_candidates.push(c),
            }
        } else if let Some(rtc) = self.publisher.as_mut() {
            rtc.add_remote_candidate(c);
        }
    }

    pub(super) fn update_participant(&mut self, p: &proto::ParticipantInfo) {
        if p.identity == self.identity || p.sid == self.sid {
            return;
        }
        self.subs.participant(p);
        let gone = p.state == proto::participant_info::State::Disconnected as i32;
        if gone {
            if self.participants.remove(&p.identity).is_some() {
                self.emit(PublisherEvent::ParticipantLeft(ParticipantIdentity(
                    p.identity.clone(),
                )));
            }
            return;
        }
        let rp = RemoteParticipant {
            identity: ParticipantIdentity(p.identity.clone()),
            name: p.name.clone(),
            metadata: p.metadata.clone(),
            attributes: p.attributes.clone(),
            hidden: p.permission.as_ref().is_some_and(|perm| perm.hidden),
        };
        match self.participants.insert(p.identity.clone(), rp.clone()) {
            None => self.emit(PublisherEvent::ParticipantJoined(rp)),
            Some(old) if old != rp => self.emit(PublisherEvent::ParticipantUpdated(rp)),
            Some(_) => {}
        }
    }

    /// A remote participant as last announced by the server.
    pub fn remote_participant(&self, identity: &str) -> Option<&RemoteParticipant> {
        self.participants.get(identity)
    }

    /// Number of viewers (remote participants that are not hidden).
    pub fn viewer_count(&self) -> u32 {
        self.participants.values().filter(|p| !p.hidden).count() as u32
    }

    pub(super) fn publish_viewer_count(&mut self) {
        let n = self.viewer_count();
        if self.viewer_count != Some(n) {
            self.viewer_count = Some(n);
            self.emit(PublisherEvent::ViewerCount(n));
        }
    }

    /// Set (merge) this participant's attributes; an empty value deletes a key.
    /// Needs `canUpdateOwnMetadata` in the token: the server's refusal comes back
    /// as a [`PublisherEvent::Error`]. The server keeps them in the participant's
    /// claims and refreshes our token with them, so a full rejoin keeps them too,
    /// unless it came before that refresh: set them again on `Connected` to be sure.
    pub fn set_attributes(&mut self, attributes: HashMap<String, String>, now: Instant) {
        self.metadata_request_id = self.metadata_request_id.wrapping_add(1).max(1);
        self.out.push_back(CoreOutput::Signal(Req::UpdateMetadata(
            proto::UpdateParticipantMetadata {
                attributes,
                request_id: self.metadata_request_id,
                ..Default::default()
            },
        )));
        self.drive(now);
    }

    /// The server's verdict on a request: refusals become `Error` events.
    fn handle_request_response(&mut self, r: proto::RequestResponse) {
        use proto::request_response::{Reason, Request};
        if r.reason == Reason::Ok as i32 {
            return;
        }
        let what = match &r.request {
            Some(Request::UpdateMetadata(_)) => "updating the participant's attributes",
            Some(Request::AddTrack(_)) => "publishing a track",
            Some(Request::Mute(_)) => "muting a track",
            Some(Request::Trickle(_)) => "an ICE candidate",
            _ if r.request_id != 0 && r.request_id == self.metadata_request_id => {
                "updating the participant's attributes"
            }
            _ => "a request",
        };
        let reason = Reason::try_from(r.reason)
            .map(|x| x.as_str_name().to_string())
            .unwrap_or_else(|_| format!("reason {}", r.reason));
        self.emit(PublisherEvent::Error(format!(
            "the server refused {what}: {reason}: {}",
            r.message
        )));
    }
}

/// Parse LiveKit's `candidateInit` JSON (`{"candidate": "candidate:…", "sdpMid", …}`).
pub fn parse_candidate_init(json: &str) -> Option<Candidate> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let s = v.get("candidate")?.as_str()?;
    if s.is_empty() {
        return None;
    }
    Candidate::from_sdp_string(s)
        .or_else(|_| Candidate::from_sdp_string(s.trim_start_matches("a=")))
        .ok()
}

/// Encode a local candidate as LiveKit's `candidateInit` JSON.
pub fn candidate_init_json(c: &Candidate, mid: &str, index: u32) -> String {
    serde_json::json!({
        "candidate": c.to_sdp_string(),
        "sdpMid": mid,
        "sdpMLineIndex": index,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_support::{Harness, ME, MY_SID, addr, join_response, participant};

    #[test]
    fn viewer_count_excludes_self_and_hidden_participants() {
        use proto::participant_info::State;
        let mut h = Harness::new();
        h.core.handle_join(
            &join_response(vec![
                participant("v1", "PA_1", false, State::Active),
                participant("recorder", "PA_2", true, State::Active),
            ]),
            h.now,
        );
        h.pump(10);
        let counts = |h: &Harness| -> Vec<u32> {
            h.events
                .iter()
                .filter_map(|e| match e {
                    PublisherEvent::ViewerCount(n) => Some(*n),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(counts(&h), vec![1]);
        let update = |ps| Resp::Update(proto::ParticipantUpdate { participants: ps });
        h.core.handle_signal(
            update(vec![
                participant(ME, MY_SID, false, State::Active),
                participant("v2", "PA_3", false, State::Joined),
                participant("v3", "PA_4", false, State::Joining),
            ]),
            h.now,
        );
        h.core.handle_signal(
            update(vec![participant("v2", "PA_3", false, State::Active)]),
            h.now,
        );
        h.core.handle_signal(
            update(vec![participant("v1", "PA_1", false, State::Disconnected)]),
            h.now,
        );
        h.core.handle_signal(
            update(vec![participant("v1", "PA_1", false, State::Disconnected)]),
            h.now,
        );
        h.pump(10);
        assert_eq!(counts(&h), vec![1, 3, 2]);
        assert_eq!(h.core.viewer_count(), 2);
        assert!(
            h.events
                .contains(&PublisherEvent::ParticipantLeft(ParticipantIdentity(
                    "v1".into()
                )))
        );
        // A full rejoin: who is not in the new room has left, who is joins again.
        h.events.clear();
        h.core.handle_join(
            &join_response(vec![participant("v2", "PA_3", false, State::Active)]),
            h.now,
        );
        h.pump(10);
        assert!(
            h.events
                .contains(&PublisherEvent::ParticipantLeft(ParticipantIdentity(
                    "v3".into()
                )))
        );
        assert!(
            !h.events
                .contains(&PublisherEvent::ParticipantLeft(ParticipantIdentity(
                    "v2".into()
                )))
        );
        assert_eq!(h.core.viewer_count(), 1);
    }

    #[test]
    fn set_attributes_sends_update_metadata_and_a_refusal_is_an_error() {
        use proto::request_response::{Reason, Request};
        let mut h = Harness::new();
        h.connected();
        let attrs = HashMap::from([("streamit.mediaClockEpochUs".to_string(), "42".to_string())]);
        h.core.set_attributes(attrs.clone(), h.now);
        h.core.set_attributes(attrs.clone(), h.now);
        h.pump(10);
        let updates: Vec<_> = h
            .signals
            .iter()
            .filter_map(|s| match s {
                Req::UpdateMetadata(u) => Some(u.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(updates.len(), 2);
        assert_eq!(updates[0].attributes, attrs);
        // Only attributes: an empty name/metadata leaves the server's values alone.
        assert!(updates[0].name.is_empty() && updates[0].metadata.is_empty());
        let ids: Vec<u32> = updates.iter().map(|u| u.request_id).collect();
        assert!(ids[0] != 0 && ids[1] != ids[0], "request ids {ids:?}");

        let errors = |h: &Harness| -> Vec<String> {
            h.events
                .iter()
                .filter_map(|e| match e {
                    PublisherEvent::Error(m) => Some(m.clone()),
                    _ => None,
                })
                .collect()
        };
        let accepted = proto::RequestResponse {
            request_id: ids[0],
            reason: Reason::Ok as i32,
            request: Some(Request::UpdateMetadata(updates[0].clone())),
            ..Default::default()
        };
        h.core.handle_signal(Resp::RequestResponse(accepted), h.now);
        h.pump(10);
        assert!(errors(&h).is_empty(), "{:?}", errors(&h));
        let refused = proto::RequestResponse {
            request_id: ids[1],
            reason: Reason::NotAllowed as i32,
            message: "does not have permission to update own metadata".into(),
            request: Some(Request::UpdateMetadata(updates[1].clone())),
        };
        h.core.handle_signal(Resp::RequestResponse(refused), h.now);
        h.pump(10);
        assert_eq!(
            errors(&h),
            vec![
                "the server refused updating the participant's attributes: NOT_ALLOWED: \
                 does not have permission to update own metadata"
                    .to_string()
            ]
        );
    }

    #[test]
    fn attribute_changes_of_a_known_participant_are_announced() {
        use proto::participant_info::State;
        let mut h = Harness::new();
        let mut host = participant("host", "PA_h", false, State::Active);
        host.attributes = HashMap::from([("a".to_string(), "1".to_string())]);
        h.core
            .handle_join(&join_response(vec![host.clone()]), h.now);
        h.pump(10);
        let update = |h: &mut Harness, p: &proto::ParticipantInfo| {
            h.core.handle_signal(
                Resp::Update(proto::ParticipantUpdate {
                    participants: vec![p.clone()],
                }),
                h.now,
            );
            h.pump(10);
        };
        // The same state again (LiveKit repeats participant info): no event.
        update(&mut h, &host);
        host.attributes
            .insert("streamit.mediaClockEpochUs".into(), "7".into());
        update(&mut h, &host);
        host.metadata = "{}".into();
        update(&mut h, &host);
        let seen: Vec<_> = h
            .events
            .iter()
            .filter_map(|e| match e {
                PublisherEvent::ParticipantJoined(p) => Some(("joined", p.clone())),
                PublisherEvent::ParticipantUpdated(p) => Some(("updated", p.clone())),
                _ => None,
            })
            .collect();
        let kinds: Vec<_> = seen.iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, vec!["joined", "updated", "updated"]);
        assert_eq!(seen[0].1.attributes.get("a").map(String::as_str), Some("1"));
        let epoch = |p: &RemoteParticipant| p.attributes.get("streamit.mediaClockEpochUs").cloned();
        assert_eq!(epoch(&seen[0].1), None);
        assert_eq!(epoch(&seen[1].1).as_deref(), Some("7"));
        assert_eq!(seen[2].1.metadata, "{}");
        let known = h.core.remote_participant("host").expect("known");
        assert_eq!(known.name, "host name");
        assert_eq!(epoch(known).as_deref(), Some("7"));
    }

    #[test]
    fn trickled_candidates_parse() {
        let c = parse_candidate_init(
            r#"{"candidate":"candidate:1 1 udp 2130706431 127.0.0.1 7882 typ host","sdpMid":"0","sdpMLineIndex":0}"#,
        )
        .expect("candidate");
        assert_eq!(c.addr(), addr("127.0.0.1:7882"));
        assert!(parse_candidate_init(r#"{"candidate":""}"#).is_none());
        assert!(parse_candidate_init("not json").is_none());
    }
}
