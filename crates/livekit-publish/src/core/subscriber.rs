//! The subscriber peer connection: the server offers it, the core answers;
//! received media, key frame requests and layer selection go through
//! [`Subscriptions`], which knows the remote tracks. Kept apart from the
//! publisher side because here the server is the offerer.

use std::collections::HashMap;
use std::time::Instant;

use livekit_protocol as proto;
use proto::signal_request::Message as Req;
use str0m::change::SdpOffer;
use str0m::media::KeyframeRequestKind;

use super::{CoreOutput, Participant};
use crate::types::*;

impl Participant {
    pub(super) fn handle_subscriber_offer(&mut self, sd: proto::SessionDescription, now: Instant) {
        let offer = match SdpOffer::from_sdp_string(&sd.sdp) {
            Ok(o) => o,
            Err(e) => {
                self.emit(PublisherEvent::Error(format!("bad subscriber offer: {e}")));
                return;
            }
        };
        if self.subscriber.is_none() {
            let mut rtc = self.new_rtc(now);
            for c in self.local_candidates(PcKind::Subscriber) {
                rtc.add_local_candidate(c);
            }
            for c in self.sub_candidates.drain(..) {
                rtc.add_remote_candidate(c);
            }
            self.subscriber = Some(rtc);
        }
        self.subs.offer(&sd);
        // New ICE credentials: the server's ICE restart of this transport.
        let ufrag = sd
            .sdp
            .lines()
            .find_map(|l| l.trim().strip_prefix("a=ice-ufrag:"))
            .map(str::to_string);
        if ufrag.is_some() && ufrag != self.sub_remote_ufrag {
            if self.sub_remote_ufrag.is_some()
                && let Some(r) = self.sub_restart.as_mut()
            {
                r.offered = true;
            }
            self.sub_remote_ufrag = ufrag;
        }
        let Some(rtc) = self.subscriber.as_mut() else {
            return;
        };
        match rtc.sdp_api().accept_offer(offer) {
            Ok(answer) => {
                let sd = proto::SessionDescription {
                    r#type: "answer".into(),
                    sdp: answer.to_sdp_string(),
                    id: sd.id,
                    mid_to_track_id: HashMap::new(),
                };
                self.last_sub_answer = Some(sd.clone());
                self.out.push_back(CoreOutput::Signal(Req::Answer(sd)));
            }
            Err(e) => self.emit(PublisherEvent::Error(format!(
                "subscriber offer rejected: {e}"
            ))),
        }
    }

    /// Receive side: announce subscription changes, send due key frame requests.
    pub(super) fn service_subscriptions(&mut self, now: Instant) {
        for e in self.subs.take_events() {
            self.emit(e);
        }
        // A request before DTLS is up would be lost: it stays due until then.
        let Some(rtc) = self.subscriber.as_mut().filter(|r| r.is_connected()) else {
            return;
        };
        for (mid, rid) in self.subs.due_keyframe_requests(now) {
            let Some(mut w) = rtc.writer(mid) else {
                continue;
            };
            // No receive stream yet (nothing arrived): retry on the next packet.
            if w.request_keyframe(rid, KeyframeRequestKind::Pli).is_ok() {
                self.subs.keyframe_requested(mid, now);
            }
        }
    }

    /// The driver's media channel was full and dropped `m`: counted, and the
    /// track's video skips to a freshly requested key frame.
    pub fn media_dropped(&mut self, m: &ReceivedMedia) {
        self.subs.media_dropped(m);
    }

    /// Ask the publisher of a subscribed video track for a key frame (PLI, rate limited).
    pub fn request_keyframe(&mut self, track: &TrackSid, now: Instant) {
        if !self.subs.want_keyframe(track) {
            self.emit(PublisherEvent::Error(format!(
                "key frame request: track {track} is not subscribed"
            )));
        }
        self.drive(now);
    }

    /// Select the simulcast layer the SFU forwards for a subscribed video track.
    pub fn set_video_quality(&mut self, track: &TrackSid, quality: VideoQuality, now: Instant) {
        match self.subs.track_settings(track, quality) {
            Some(ts) => self
                .out
                .push_back(CoreOutput::Signal(Req::TrackSetting(ts))),
            None => self.emit(PublisherEvent::Error(format!(
                "video quality: track {track} is not subscribed"
            ))),
        }
        self.drive(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_support::{Harness, last_stats};

    #[test]
    fn offered_track_is_announced_received_and_asked_for_a_key_frame() {
        let mut h = Harness::subscriber();
        let mid = h.subscribe();
        let sub = h
            .events
            .iter()
            .find_map(|e| match e {
                PublisherEvent::TrackSubscribed(t) => Some(t.clone()),
                _ => None,
            })
            .expect("TrackSubscribed");
        assert_eq!(
            (sub.participant.as_str(), sub.sid.as_str(), sub.codec),
            ("creator", "TR_v", Some(VideoCodec::H264))
        );

        h.send(mid, 0, true);
        // A PLI on subscribe: once the receive stream exists (first packet).
        assert_eq!(h.keyframe_requests(), vec![KeyframeRequestKind::Pli]);
        h.send(mid, 1, false);
        let frames: Vec<&ReceivedVideo> = h
            .media
            .iter()
            .filter_map(|m| match m {
                ReceivedMedia::Video(v) => Some(v),
                _ => None,
            })
            .collect();
        assert_eq!(frames.len(), 2, "{:?}", h.media);
        assert!(frames[0].keyframe && !frames[1].keyframe);
        assert_eq!(
            &frames[0].data[..5],
            &[0, 0, 0, 1, 0x67],
            "Annex-B with SPS first"
        );
        assert_eq!(frames[0].track.as_str(), "TR_v");
        assert_eq!(
            frames[1]
                .rtp_timestamp
                .wrapping_sub(frames[0].rtp_timestamp),
            3000
        );

        // The driver's channel was full: deltas are held back until a key frame,
        // and one is asked for once the 500 ms limit allows.
        let dropped = h.media.pop().expect("frame");
        h.core.media_dropped(&dropped);
        h.send(mid, 2, false);
        h.send(mid, 3, false);
        assert_eq!(h.media.len(), 1, "deltas after a drop are skipped");
        h.pump(600);
        assert_eq!(
            h.keyframe_requests().len(),
            2,
            "a second PLI after the drop"
        );
        h.send(mid, 4, true);
        h.send(mid, 5, false);
        assert_eq!(h.media.len(), 3);

        // Explicit requests are rate limited too: the second waits for its slot.
        h.core.request_keyframe(&"TR_v".into(), h.now);
        h.pump(10);
        h.core.request_keyframe(&"TR_v".into(), h.now);
        h.pump(100);
        assert_eq!(
            h.keyframe_requests().len(),
            3,
            "{:?}",
            h.keyframe_requests()
        );
        h.pump(500);
        assert_eq!(
            h.keyframe_requests().len(),
            4,
            "{:?}",
            h.keyframe_requests()
        );

        // Receive figures in the stats snapshot.
        h.pump(2100);
        let stats = last_stats(&h.events);
        assert_eq!((stats.frames_received, stats.frames_dropped_rx), (3, 3));
        let r = &stats.receive[0];
        assert_eq!((r.track.as_str(), r.kind), ("TR_v", TrackKind::Video));
        assert!(r.packets >= 6 && r.plis == 4, "{r:?}");

        // Quality selection goes out as UpdateTrackSettings.
        h.core
            .set_video_quality(&"TR_v".into(), VideoQuality::Low, h.now);
        let mut settings = None;
        while let Some(o) = h.core.poll_output() {
            if let CoreOutput::Signal(Req::TrackSetting(ts)) = o {
                settings = Some(ts);
            }
        }
        let ts = settings.expect("UpdateTrackSettings");
        assert_eq!(
            (ts.track_sids, ts.quality),
            (vec!["TR_v".to_string()], proto::VideoQuality::Low as i32)
        );
    }
}
