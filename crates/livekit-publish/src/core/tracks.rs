//! Local tracks and their simulcast layers: announcing them (AddTrackRequest),
//! the server's confirmations and layer subscriptions, writing media (layers
//! nobody watches are paused, a layer that lost frames waits for a key frame),
//! mute and unpublish.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use livekit_protocol as proto;
use proto::signal_request::Message as Req;
use str0m::media::{MediaKind, MediaTime, Rid};

use super::resend;
use super::vp8::{Vp8Sender, write_vp8};
use super::{CoreOutput, LocalTrack, Participant};
use crate::chat;
use crate::types::*;

impl LocalTrack {
    fn is_simulcast(&self) -> bool {
        self.layers.len() > 1
    }

    /// The RID a frame of `layer` goes out with: `None` on single-stream tracks, whose
    /// one layer has no RID on the wire.
    pub(super) fn rid(&self, layer: Option<VideoQuality>) -> Option<Rid> {
        layer
            .filter(|_| self.is_simulcast())
            .map(|l| Rid::from(l.rid()))
    }

    /// Whether someone watches `quality`: every layer until the server says, and always
    /// the one layer of a single-stream track.
    pub(super) fn is_wanted(&self, quality: VideoQuality) -> bool {
        !self.is_simulcast() || self.wanted.as_ref().is_none_or(|w| w.contains(&quality))
    }
}

impl Participant {
    pub(super) fn handle_track_published(&mut self, tp: proto::TrackPublishedResponse) {
        let Some(info) = tp.track else { return };
        let Some(t) = self.tracks.iter_mut().find(|t| t.cid.0 == tp.cid) else {
            return;
        };
        let sid = TrackSid(info.sid.clone());
        t.sid = Some(sid.clone());
        t.info = Some(info);
        let cid = t.cid.clone();
        self.emit(PublisherEvent::TrackPublished { cid, sid });
        self.negotiate();
    }

    #[allow(deprecated)]
    pub(super) fn handle_subscribed_quality(&mut self, u: proto::SubscribedQualityUpdate) {
        let Some(t) = self
            .tracks
            .iter_mut()
            .find(|t| t.sid.as_ref().is_some_and(|s| s.0 == u.track_sid))
        else {
            return;
        };
        let mut wanted = HashSet::new();
        // Prefer the per-codec list (newer servers); fall back to the flat one.
        let qualities = u
            .subscribed_codecs
            .iter()
            .find(|c| {
                t.video_codec
                    .is_some_and(|vc| vc.mime().ends_with(&c.codec.to_lowercase()))
            })
            .map(|c| c.qualities.clone())
            .unwrap_or(u.subscribed_qualities);
        for q in qualities {
            if q.enabled
                && let Some(v) = VideoQuality::from_proto(q.quality)
            {
                wanted.insert(v);
            }
        }
        let mut layers: Vec<_> = wanted.iter().copied().collect();
        layers.sort();
        t.wanted = Some(wanted);
        let track = t.cid.clone();
        self.emit(PublisherEvent::LayersWanted { track, layers });
    }

    fn next_cid(&mut self, prefix: &str) -> TrackCid {
        self.cid_counter += 1;
        TrackCid(format!(
            "{prefix}-{}-{}",
            self.cid_counter,
            chat::random_id("")
        ))
    }

    /// Announce a video track (AddTrackRequest). Media can be written once the
    /// track is published and negotiated; earlier frames are dropped.
    pub fn publish_video(&mut self, opts: &VideoTrackOptions, now: Instant) -> TrackCid {
        let cid = self.next_cid("video");
        let layers = if opts.simulcast.is_empty() {
            vec![LayerSpec {
                quality: VideoQuality::High,
                width: opts.width,
                height: opts.height,
                bitrate: Bitrate(0),
            }]
        } else {
            opts.simulcast.clone()
        };
        let proto_layers: Vec<proto::VideoLayer> = layers
            .iter()
            .map(|l| proto::VideoLayer {
                quality: l.quality.to_proto() as i32,
                width: l.width,
                height: l.height,
                bitrate: l.bitrate.0 as u32,
                rid: if opts.simulcast.is_empty() {
                    String::new()
                } else {
                    l.quality.rid().into()
                },
                ..Default::default()
            })
            .collect();
        let request = proto::AddTrackRequest {
            cid: cid.0.clone(),
            name: opts.name.clone(),
            r#type: proto::TrackType::Video as i32,
            width: opts.width,
            height: opts.height,
            source: if opts.camera {
                proto::TrackSource::Camera as i32
            } else {
                proto::TrackSource::ScreenShare as i32
            },
            layers: proto_layers.clone(),
            simulcast_codecs: vec![proto::SimulcastCodec {
                codec: opts.codec.mime().trim_start_matches("video/").into(),
                cid: cid.0.clone(),
                layers: proto_layers,
                ..Default::default()
            }],
            ..Default::default()
        };
        self.add_track(
            cid.clone(),
            MediaKind::Video,
            Some(opts.codec),
            request,
            layers,
            now,
        );
        cid
    }

    /// Announce an Opus audio track.
    #[allow(deprecated)]
    pub fn publish_audio(&mut self, opts: &AudioTrackOptions, now: Instant) -> TrackCid {
        let cid = self.next_cid("audio");
        let request = proto::AddTrackRequest {
            cid: cid.0.clone(),
            name: opts.name.clone(),
            r#type: proto::TrackType::Audio as i32,
            source: proto::TrackSource::Microphone as i32,
            stereo: opts.stereo,
            ..Default::default()
        };
        self.add_track(
            cid.clone(),
            MediaKind::Audio,
            None,
            request,
            Vec::new(),
            now,
        );
        cid
    }

    fn add_track(
        &mut self,
        cid: TrackCid,
        kind: MediaKind,
        video_codec: Option<VideoCodec>,
        request: proto::AddTrackRequest,
        layers: Vec<LayerSpec>,
        now: Instant,
    ) {
        self.out
            .push_back(CoreOutput::Signal(Req::AddTrack(request.clone())));
        self.tracks.push(LocalTrack {
            cid,
            kind,
            video_codec,
            request,
            info: None,
            sid: None,
            requested_at: now,
            mid: None,
            pt: None,
            red: None,
            muted: false,
            layers,
            wanted: None,
            last_timestamp: None,
            vp8: HashMap::new(),
            resend_set: HashSet::new(),
        });
    }

    /// Whether the track's media currently goes out (published, negotiated, connected).
    pub fn is_track_ready(&self, cid: &TrackCid) -> bool {
        self.tracks.iter().any(|t| &t.cid == cid && t.pt.is_some()) && self.is_connected()
    }

    /// Write one encoded video frame. Returns whether it was handed to the transport.
    pub fn write_video(&mut self, cid: &TrackCid, frame: &EncodedVideo, now: Instant) -> bool {
        let key = (cid.clone(), frame.layer);
        if !frame.keyframe && self.awaiting_key.contains_key(&key) {
            // Ask (again every 500 ms) only when the transport can carry the answer.
            let due = self
                .awaiting_key
                .get(&key)
                .copied()
                .flatten()
                .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_millis(500));
            if due && self.is_connected() {
                self.awaiting_key.insert(key, Some(now));
                let layer = frame
                    .layer
                    .filter(|_| self.layer_rid(cid, frame.layer).is_some());
                self.emit(PublisherEvent::KeyframeRequested {
                    track: cid.clone(),
                    layer,
                });
            }
            self.count_dropped_frames(cid, frame.layer, 1);
            return false;
        }
        let rtp = MediaTime::from_90khz((frame.timestamp.as_micros() * 9 / 100) as u64);
        let sent = self.write_media(cid, frame.layer, rtp, &frame.data, now);
        if sent {
            self.watch.media_sent(now);
            self.frames_sent += 1;
            if frame.keyframe {
                self.awaiting_key.remove(&key);
            }
        }
        sent
    }

    /// Write one Opus packet. Returns whether it was handed to the transport. Where the
    /// answer negotiated RED, str0m sends each packet with a copy of the one before, so a
    /// single loss costs no audio (Opus's in-band FEC only rebuilds a lower-quality guess).
    pub fn write_audio(&mut self, cid: &TrackCid, packet: &EncodedAudio, now: Instant) -> bool {
        let rtp = MediaTime::new(
            (packet.timestamp.as_micros() * 48 / 1000) as u64,
            str0m::media::Frequency::FORTY_EIGHT_KHZ,
        );
        let sent = self.write_media(cid, None, rtp, &packet.data, now);
        if sent {
            self.watch.media_sent(now);
            self.audio_sent += 1;
        }
        sent
    }

    /// Count frames of a track's layer that the driver dropped before they
    /// reached the core (queue overflow, or no transport).
    /// The layer then waits for a key frame (see `awaiting_key`).
    pub fn count_dropped_frames(&mut self, cid: &TrackCid, layer: Option<VideoQuality>, n: u64) {
        if n > 0 {
            self.awaiting_key
                .entry((cid.clone(), layer))
                .or_insert(None);
        }
        self.frames_dropped += n;
        let rid = self.layer_rid(cid, layer);
        *self.dropped_by_layer.entry((cid.clone(), rid)).or_default() += n;
    }

    /// The RID a frame of `layer` goes out with (`None` on single-stream tracks),
    /// as [`LayerStats::rid`] names it.
    fn layer_rid(&self, cid: &TrackCid, layer: Option<VideoQuality>) -> Option<String> {
        let t = self.tracks.iter().find(|t| &t.cid == cid)?;
        t.rid(layer).map(|r| r.to_string())
    }

    fn write_media(
        &mut self,
        cid: &TrackCid,
        layer: Option<VideoQuality>,
        rtp: MediaTime,
        data: &[u8],
        now: Instant,
    ) -> bool {
        if !self.is_connected() {
            return false;
        }
        let Some(t) = self.tracks.iter_mut().find(|t| &t.cid == cid) else {
            return false;
        };
        let (Some(mid), Some(pt)) = (t.mid, t.pt) else {
            return false;
        };
        if t.muted {
            return false;
        }
        if layer.is_some_and(|l| !t.is_wanted(l)) {
            return false;
        }
        t.last_timestamp = Some(Duration::from_micros(rtp.as_micros()));
        let rid = t.rid(layer);
        let Some(rtc) = self.publisher.as_mut() else {
            return false;
        };
        if t.kind.is_video() && !t.resend_set.contains(&rid) && resend::configure(rtc, mid, rid) {
            t.resend_set.insert(rid);
        }
        if t.video_codec == Some(VideoCodec::Vp8) {
            let ok = if data.is_empty() {
                false
            } else {
                let state = t.vp8.entry(rid).or_insert_with(Vp8Sender::new);
                write_vp8(rtc, mid, rid, pt, rtp, data, now, state)
            };
            if !ok {
                self.emit(PublisherEvent::Error(format!(
                    "write failed: no send stream for {mid} {rid:?}"
                )));
            }
            self.drive(now);
            return ok;
        }
        let Some(mut w) = rtc.writer(mid) else {
            return false;
        };
        if let Some(rid) = rid {
            w = w.rid(rid);
        }
        let res = w.write(pt, now, rtp, data.to_vec());
        let ok = match res {
            Ok(()) => true,
            Err(e) => {
                self.emit(PublisherEvent::Error(format!("write failed: {e}")));
                false
            }
        };
        self.drive(now);
        ok
    }

    /// Mute or unmute a track: tells the server and stops sending media.
    pub fn set_muted(&mut self, cid: &TrackCid, muted: bool) {
        let Some(t) = self.tracks.iter_mut().find(|t| &t.cid == cid) else {
            return;
        };
        if t.muted == muted {
            return;
        }
        t.muted = muted;
        t.request.muted = muted;
        if let Some(sid) = &t.sid {
            let sid = sid.0.clone();
            self.out
                .push_back(CoreOutput::Signal(Req::Mute(proto::MuteTrackRequest {
                    sid,
                    muted,
                })));
        }
    }

    /// Stop publishing a track: its m-line becomes inactive.
    pub fn unpublish(&mut self, cid: &TrackCid, now: Instant) {
        let Some(pos) = self.tracks.iter().position(|t| &t.cid == cid) else {
            return;
        };
        let t = self.tracks.remove(pos);
        // Its m-line goes inactive in the next offer; with an offer in flight (e.g.
        // the one that added this very m-line) `negotiate` waits for the answer.
        if let Some(mid) = t.mid
            && self.publisher.is_some()
        {
            self.mids_to_deactivate.push(mid);
            self.negotiate();
        }
        self.drive(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use proto::signal_response::Message as Resp;
    use str0m::Event;
    use str0m::format::Codec;

    use crate::core::TRACK_PUBLISH_TIMEOUT;
    use crate::test_support::{Harness, MY_SID, join_response, last_stats};

    #[test]
    fn published_track_gets_a_sendonly_mline_whose_msid_is_the_cid() {
        let mut h = Harness::new();
        h.connected();
        let cid = h.publish(&VideoTrackOptions::new(VideoCodec::H264, 640, 360, 30));
        let add = h.add_track_sent().expect("AddTrackRequest sent");
        assert_eq!(add.cid, cid.0);
        assert_eq!(add.r#type, proto::TrackType::Video as i32);
        assert_eq!((add.width, add.height), (640, 360));
        let offers = h.offers();
        assert_eq!(offers.len(), 2, "a second offer after TrackPublished");
        let sdp = &offers[1];
        assert!(sdp.contains("m=video"));
        assert!(sdp.contains("a=sendonly"));
        assert!(sdp.contains(&format!("a=msid:{MY_SID} {}", cid.0)), "{sdp}");
        // Exactly one H.264 flavour is offered (LiveKit drops other payload types).
        assert_eq!(sdp.matches("H264/90000").count(), 1, "{sdp}");
        assert!(sdp.contains("profile-level-id=42e01f"));
        assert!(h.events.iter().any(
            |e| matches!(e, PublisherEvent::KeyframeRequested { track, .. } if track == &cid)
        ));
        assert!(h.core.is_track_ready(&cid));

        // Media flows to the SFU.
        let frame = EncodedVideo {
            layer: None,
            data: bytes::Bytes::from_static(&[0, 0, 0, 1, 0x65, 0x88, 0x84, 0x21, 0xa0]),
            keyframe: true,
            timestamp: Duration::from_millis(0),
        };
        assert!(h.core.write_video(&cid, &frame, h.now));
        h.pump(100);
        assert!(
            h.sfu_events
                .iter()
                .any(|e| matches!(e, Event::MediaData(_))),
            "SFU received a frame"
        );

        // Mute: signalled, and no more media goes out.
        h.core.set_muted(&cid, true);
        h.pump(10);
        assert!(
            h.signals
                .iter()
                .any(|s| matches!(s, Req::Mute(m) if m.sid == "TR_1" && m.muted))
        );
        assert!(
            !h.core.write_video(&cid, &frame, h.now),
            "muted tracks send nothing"
        );
        h.core.set_muted(&cid, false);
        assert!(h.core.write_video(&cid, &frame, h.now));
    }

    /// 100 Opus packets, 20 ms apart, written to `cid`; the audio packets the SFU got
    /// (str0m rebuilds a lost one from the next packet's RED copy).
    fn send_audio(h: &mut Harness, cid: &TrackCid, from: u64) -> usize {
        let before = audio_received(h);
        for n in from..from + 100 {
            let packet = EncodedAudio {
                data: bytes::Bytes::from(vec![0xf8, n as u8, 0x11, 0x22]),
                timestamp: Duration::from_millis(n * 20),
            };
            assert!(h.core.write_audio(cid, &packet, h.now));
            h.pump(20);
        }
        // str0m's receiver holds packets behind a gap for a while before it gives up.
        h.pump(1100);
        audio_received(h) - before
    }

    fn audio_received(h: &Harness) -> usize {
        h.sfu_events
            .iter()
            .filter(|e| matches!(e, Event::MediaData(m) if m.params.spec().codec == Codec::Opus))
            .count()
    }

    /// An audio track published to `h`, ready, with every fifth datagram lost from then on.
    fn lossy_audio(h: &mut Harness) -> TrackCid {
        h.connected();
        let cid = h.core.publish_audio(&AudioTrackOptions::default(), h.now);
        h.pump(10);
        h.confirm_published(&cid, "TR_A");
        h.pump(500);
        assert!(h.core.is_track_ready(&cid));
        let offer = h.offers().pop().expect("an offer");
        assert!(offer.contains("red/48000/2"), "RED is offered: {offer}");
        h.lose_every_nth_rtp = 5;
        cid
    }

    #[test]
    fn opus_goes_with_red_so_a_lost_packet_costs_no_audio() {
        let mut h = Harness::new();
        let cid = lossy_audio(&mut h);
        // RED's copy in the next packet replaces a lost one (all but the last one's, if
        // it was lost: no packet follows it).
        let got = send_audio(&mut h, &cid, 0);
        assert!(h.rtp_lost() >= 19, "lost {}", h.rtp_lost());
        assert!(got >= 99, "got {got} of 100, {} lost", h.rtp_lost());
        assert!(last_stats(&h.events).audio_redundancy);

        // A server that answers without RED: plain Opus, and the losses are the listener's.
        let mut h = Harness::without_audio_red();
        let cid = lossy_audio(&mut h);
        let got = send_audio(&mut h, &cid, 0) as u64;
        assert!(h.rtp_lost() >= 19, "lost {}", h.rtp_lost());
        assert_eq!(got, 100 - h.rtp_lost());
        assert!(!last_stats(&h.events).audio_redundancy);
    }

    #[test]
    fn unpublish_while_its_offer_is_in_flight_deactivates_the_mline_after_the_answer() {
        let mut h = Harness::new();
        h.connected();
        let opts = VideoTrackOptions::new(VideoCodec::H264, 640, 360, 30);
        let cid = h.core.publish_video(&opts, h.now);
        h.confirm_published(&cid, "TR_1");
        // The offer adding the video m-line is out but not answered yet.
        assert!(h.core.pending_offer.is_some(), "offer in flight");
        h.core.unpublish(&cid, h.now);
        assert!(
            h.core.pending_offer.is_some(),
            "no second offer before the answer"
        );
        h.pump(500);
        let offers = h.offers();
        assert_eq!(offers.len(), 3, "join, add video, deactivate video");
        let video = |sdp: &str| {
            sdp.split("m=")
                .find(|m| m.starts_with("video"))
                .map(str::to_string)
                .unwrap_or_default()
        };
        assert!(video(&offers[1]).contains("a=sendonly"), "{}", offers[1]);
        assert!(video(&offers[2]).contains("a=inactive"), "{}", offers[2]);
        assert!(h.core.pending_offer.is_none(), "answered");
        assert!(h.core.mids_to_deactivate.is_empty());
        assert!(!h.core.is_track_ready(&cid));
    }

    #[test]
    fn subscribed_quality_update_pauses_unwatched_layers() {
        let mut h = Harness::new();
        h.connected();
        let opts = VideoTrackOptions::new(VideoCodec::Vp8, 1280, 720, 30)
            .with_default_simulcast(Bitrate::from_kbps(2000));
        let cid = h.publish(&opts);
        let add = h.add_track_sent().expect("AddTrackRequest");
        let rids: Vec<_> = add
            .layers
            .iter()
            .map(|l| (l.rid.as_str(), l.width, l.height))
            .collect();
        assert_eq!(
            rids,
            vec![("q", 320, 180), ("h", 640, 360), ("f", 1280, 720)]
        );
        let sdp = h.offers().pop().expect("offer");
        assert!(sdp.contains("a=simulcast:send q;h;f"), "{sdp}");

        h.core.handle_signal(
            Resp::SubscribedQualityUpdate(proto::SubscribedQualityUpdate {
                track_sid: "TR_1".into(),
                subscribed_codecs: vec![proto::SubscribedCodec {
                    codec: "vp8".into(),
                    qualities: vec![
                        proto::SubscribedQuality {
                            quality: proto::VideoQuality::Low as i32,
                            enabled: true,
                        },
                        proto::SubscribedQuality {
                            quality: proto::VideoQuality::Medium as i32,
                            enabled: false,
                        },
                        proto::SubscribedQuality {
                            quality: proto::VideoQuality::High as i32,
                            enabled: false,
                        },
                    ],
                }],
                ..Default::default()
            }),
            h.now,
        );
        h.pump(10);
        assert!(h.events.contains(&PublisherEvent::LayersWanted {
            track: cid.clone(),
            layers: vec![VideoQuality::Low]
        }));
        let frame = |layer| EncodedVideo {
            layer: Some(layer),
            data: bytes::Bytes::from_static(&[0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a]),
            keyframe: true,
            timestamp: Duration::ZERO,
        };
        assert!(h.core.write_video(&cid, &frame(VideoQuality::Low), h.now));
        assert!(
            !h.core.write_video(&cid, &frame(VideoQuality::High), h.now),
            "paused layer is not sent"
        );
        assert!(
            !h.core
                .write_video(&cid, &frame(VideoQuality::Medium), h.now)
        );
    }

    #[test]
    fn unpublished_track_times_out_after_10_s() {
        let mut h = Harness::new();
        h.core.handle_join(&join_response(Vec::new()), h.now);
        let cid = h.core.publish_video(
            &VideoTrackOptions::new(VideoCodec::H264, 640, 360, 30),
            h.now,
        );
        h.core
            .handle_timeout(h.now + TRACK_PUBLISH_TIMEOUT + Duration::from_millis(1));
        let mut errors = Vec::new();
        while let Some(o) = h.core.poll_output() {
            if let CoreOutput::Event(PublisherEvent::Error(e)) = o {
                errors.push(e);
            }
        }
        assert!(errors.iter().any(|e| e.contains(&cid.0)), "{errors:?}");
        assert!(!h.core.is_track_ready(&cid));
    }

    #[test]
    fn a_layer_that_lost_frames_before_the_core_waits_for_a_key_frame() {
        let mut h = Harness::new();
        h.connected();
        let cid = h.publish(&VideoTrackOptions::new(VideoCodec::H264, 640, 360, 30));
        let frame = |keyframe: bool| EncodedVideo {
            layer: None,
            data: bytes::Bytes::from_static(&[0, 0, 0, 1, 0x65, 0x88, 0x84, 0x21, 0xa0]),
            keyframe,
            timestamp: Duration::ZERO,
        };
        let key_requests = |h: &Harness| {
            h.events
                .iter()
                .filter(|e| matches!(e, PublisherEvent::KeyframeRequested { track, layer: None } if track == &cid))
                .count()
        };
        assert!(h.core.write_video(&cid, &frame(true), h.now));
        assert!(h.core.write_video(&cid, &frame(false), h.now));

        // A resume's ICE restart (once its answer is in) leaves no transport for a
        // moment, so the driver drops the frames that come meanwhile.
        h.core.set_reconnecting(1, 5);
        h.core.resume(h.now);
        h.core.count_dropped_frames(&cid, None, 3);
        h.pump(2000);
        h.core.resumed();
        assert!(h.core.is_connected());
        h.events.clear();

        // The next delta frames would reference the lost ones: skipped, and a key
        // frame asked for (once per 500 ms).
        assert!(!h.core.write_video(&cid, &frame(false), h.now));
        assert!(!h.core.write_video(&cid, &frame(false), h.now));
        h.pump(100);
        assert_eq!(key_requests(&h), 1);
        assert!(!h.core.write_video(&cid, &frame(false), h.now));
        h.pump(450);
        assert!(!h.core.write_video(&cid, &frame(false), h.now));
        h.pump(1);
        assert_eq!(key_requests(&h), 2, "asked again after 500 ms");
        // The key frame goes out, and the delta frames after it again.
        assert!(h.core.write_video(&cid, &frame(true), h.now));
        assert!(h.core.write_video(&cid, &frame(false), h.now));
        h.core.emit_stats(h.now);
        h.pump(10);
        let stats = last_stats(&h.events);
        assert_eq!(
            stats.frames_dropped,
            3 + 4,
            "the skipped frames count as dropped"
        );
        assert_eq!(key_requests(&h), 2);
    }
}
