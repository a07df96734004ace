//! The receive side: which subscriber m-line carries which remote track, and
//! what arrives on it.
//!
//! The server's subscriber offer names each down-track in its m-line's
//! `a=msid:<stream> <track sid>` (and in `mid_to_track_id`); the publishers'
//! `TrackInfo` (join response, participant updates) gives name, codec, size and
//! mute state. A track is announced ([`PublisherEvent::TrackSubscribed`]) once
//! both are known. Sans-IO like the core: it only keeps state and returns
//! events, media and key frame requests.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use livekit_protocol as proto;
use str0m::format::{Codec, CodecExtra};
use str0m::media::{MediaData, Mid, Rid};
use str0m::stats::MediaIngressStats;

use crate::rtp_counters::RtpCounters;
use crate::types::*;

mod sdp;

pub use sdp::{SdpMedia, offered_tracks, parse_sdp_media};

/// At most one key frame request per track in this interval.
pub const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);

/// A remote publisher's track as the server describes it.
#[derive(Debug, Clone)]
struct KnownTrack {
    identity: String,
    info: proto::TrackInfo,
}

#[derive(Debug)]
struct Sub {
    track: RemoteTrack,
    /// A key frame should be requested (on subscribe, on a gap, after a drop, on request).
    keyframe_due: bool,
    last_keyframe_request: Option<Instant>,
    /// After a drop: later frames are useless to the decoder until a key frame.
    await_keyframe: bool,
    frames: u64,
    dropped: u64,
    lost: u64,
    next_seq: HashMap<Option<Rid>, u64>,
    ingress: HashMap<Option<Rid>, RtpCounters>,
}

/// Subscriber-side state of the core.
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    /// Remote tracks by sid.
    known: HashMap<String, KnownTrack>,
    /// Offered m-lines: mid -> track sid.
    offered: HashMap<String, String>,
    /// Announced subscriptions by mid.
    subs: HashMap<String, Sub>,
    events: Vec<PublisherEvent>,
    frames_received: u64,
    frames_dropped: u64,
    audio_received: u64,
}

fn remote_track(k: &KnownTrack) -> RemoteTrack {
    let info = &k.info;
    let video = info.r#type == proto::TrackType::Video as i32;
    let mime = if info.mime_type.is_empty() {
        info.codecs
            .first()
            .map(|c| c.mime_type.clone())
            .unwrap_or_default()
    } else {
        info.mime_type.clone()
    };
    let codec = video.then(|| codec_from_mime(&mime)).flatten();
    // Newer servers describe layers per codec; older ones in the flat list.
    #[allow(deprecated)]
    let flat = &info.layers;
    let layers = info
        .codecs
        .iter()
        .find(|c| !c.layers.is_empty())
        .map_or(flat, |c| &c.layers)
        .iter()
        .filter_map(|l| {
            Some(LayerSpec {
                quality: VideoQuality::from_proto(l.quality)?,
                width: l.width,
                height: l.height,
                bitrate: Bitrate(u64::from(l.bitrate)),
            })
        })
        .collect::<Vec<_>>();
    RemoteTrack {
        participant: ParticipantIdentity(k.identity.clone()),
        sid: TrackSid(info.sid.clone()),
        name: info.name.clone(),
        kind: if video {
            TrackKind::Video
        } else {
            TrackKind::Audio
        },
        codec,
        mime,
        dimensions: (info.width > 0 && info.height > 0).then_some((info.width, info.height)),
        layers: if layers.len() > 1 { layers } else { Vec::new() },
        muted: info.muted,
    }
}

fn codec_from_mime(mime: &str) -> Option<VideoCodec> {
    match mime.to_ascii_lowercase().as_str() {
        "video/h264" => Some(VideoCodec::H264),
        "video/vp8" => Some(VideoCodec::Vp8),
        _ => None,
    }
}

impl Subscriptions {
    /// Events produced since the last call.
    pub fn take_events(&mut self) -> Vec<PublisherEvent> {
        std::mem::take(&mut self.events)
    }

    /// A subscriber offer from the server (before it is answered).
    pub fn offer(&mut self, sd: &proto::SessionDescription) {
        self.offered = offered_tracks(&sd.sdp, &sd.mid_to_track_id)
            .into_iter()
            .collect();
        tracing::debug!(
            "subscriber offer {}: mid_to_track_id {:?}, tracks by mid {:?}, msid {:?}",
            sd.id,
            sd.mid_to_track_id,
            self.offered,
            parse_sdp_media(&sd.sdp)
                .iter()
                .map(|m| (&m.mid, &m.direction, &m.stream_id, &m.track_id))
                .collect::<Vec<_>>()
        );
        self.reconcile();
    }

    /// A remote participant's info (join response or participant update).
    pub fn participant(&mut self, p: &proto::ParticipantInfo) {
        self.known.retain(|_, k| k.identity != p.identity);
        if p.state != proto::participant_info::State::Disconnected as i32 {
            for t in &p.tracks {
                self.known.insert(
                    t.sid.clone(),
                    KnownTrack {
                        identity: p.identity.clone(),
                        info: t.clone(),
                    },
                );
            }
        }
        self.reconcile();
    }

    /// Forget everything (new session): every subscription ends.
    pub fn reset(&mut self) {
        self.known.clear();
        self.offered.clear();
        let mut mids: Vec<String> = self.subs.keys().cloned().collect();
        mids.sort();
        for mid in mids {
            self.unsubscribe(&mid);
        }
    }

    fn unsubscribe(&mut self, mid: &str) {
        if let Some(s) = self.subs.remove(mid) {
            self.events.push(PublisherEvent::TrackUnsubscribed {
                participant: s.track.participant,
                track: s.track.sid,
            });
        }
    }

    /// Announce what is both offered and described; end what is neither; report mute changes.
    fn reconcile(&mut self) {
        let mut gone: Vec<String> = self
            .subs
            .iter()
            .filter(|(mid, s)| {
                self.offered.get(*mid) != Some(&s.track.sid.0)
                    || !self.known.contains_key(&s.track.sid.0)
            })
            .map(|(mid, _)| mid.clone())
            .collect();
        gone.sort();
        for mid in gone {
            self.unsubscribe(&mid);
        }
        let mut offered: Vec<(&String, &String)> = self.offered.iter().collect();
        offered.sort();
        for (mid, sid) in offered {
            let Some(k) = self.known.get(sid) else {
                continue;
            };
            match self.subs.get_mut(mid) {
                Some(s) => {
                    if s.track.muted != k.info.muted {
                        s.track.muted = k.info.muted;
                        // Unmuted video restarts: ask for a key frame.
                        s.keyframe_due |= !k.info.muted;
                        self.events.push(PublisherEvent::TrackMuted {
                            participant: s.track.participant.clone(),
                            track: s.track.sid.clone(),
                            muted: k.info.muted,
                        });
                    }
                }
                None => {
                    let track = remote_track(k);
                    self.events
                        .push(PublisherEvent::TrackSubscribed(track.clone()));
                    self.subs.insert(
                        mid.clone(),
                        Sub {
                            keyframe_due: track.kind == TrackKind::Video,
                            track,
                            last_keyframe_request: None,
                            await_keyframe: false,
                            frames: 0,
                            dropped: 0,
                            lost: 0,
                            next_seq: HashMap::new(),
                            ingress: HashMap::new(),
                        },
                    );
                }
            }
        }
    }

    /// A depacketized frame from the subscriber PC. `None` when it belongs to no
    /// announced track or must be skipped (waiting for a key frame after a drop).
    pub fn media(&mut self, d: &MediaData) -> Option<ReceivedMedia> {
        let s = self.subs.get_mut(&d.mid.to_string())?;
        // Unrecovered packets: gaps between the sequence numbers of delivered frames.
        let first = **d.seq_range.start();
        let last = **d.seq_range.end();
        if let Some(next) = s.next_seq.get(&d.rid)
            && first > *next
        {
            s.lost += first - next;
        }
        s.next_seq.insert(d.rid, last + 1);
        let time = d.time;
        let rtp_timestamp = time.numer() as u32;
        let timestamp = Duration::from_micros(time.as_micros());
        let data = Bytes::copy_from_slice(&d.data);
        let codec = d.params.spec().codec;
        if s.track.kind == TrackKind::Audio || codec == Codec::Opus {
            s.frames += 1;
            self.audio_received += 1;
            return Some(ReceivedMedia::Audio(ReceivedAudio {
                track: s.track.sid.clone(),
                participant: s.track.participant.clone(),
                data,
                rtp_timestamp,
                timestamp,
                received_at: d.network_time,
            }));
        }
        let (codec, keyframe) = match (codec, &d.codec_extra) {
            (Codec::H264, CodecExtra::H264(e)) => (VideoCodec::H264, e.is_keyframe),
            (Codec::H264, _) => (VideoCodec::H264, false),
            (Codec::Vp8, CodecExtra::Vp8(e)) => (VideoCodec::Vp8, e.is_keyframe),
            (Codec::Vp8, _) => (VideoCodec::Vp8, false),
            _ => return None,
        };
        if !d.contiguous {
            s.keyframe_due = true;
        }
        if s.await_keyframe {
            if !keyframe {
                s.dropped += 1;
                self.frames_dropped += 1;
                return None;
            }
            s.await_keyframe = false;
        }
        s.frames += 1;
        self.frames_received += 1;
        Some(ReceivedMedia::Video(ReceivedVideo {
            track: s.track.sid.clone(),
            participant: s.track.participant.clone(),
            codec,
            data,
            rtp_timestamp,
            timestamp,
            keyframe,
            contiguous: d.contiguous,
            layer: d.rid.and_then(|r| VideoQuality::from_rid(&r)),
            received_at: d.network_time,
        }))
    }

    /// The media channel was full and `m` was dropped. Video then skips to the
    /// next key frame (requested), so the decoder never sees a broken chain.
    pub fn media_dropped(&mut self, m: &ReceivedMedia) {
        let (sid, video) = match m {
            ReceivedMedia::Video(v) => (&v.track, true),
            ReceivedMedia::Audio(a) => (&a.track, false),
        };
        if video {
            self.frames_received = self.frames_received.saturating_sub(1);
            self.frames_dropped += 1;
        } else {
            self.audio_received = self.audio_received.saturating_sub(1);
        }
        if let Some(s) = self.subs.values_mut().find(|s| &s.track.sid == sid) {
            s.frames = s.frames.saturating_sub(1);
            s.dropped += 1;
            if video {
                s.await_keyframe = true;
                s.keyframe_due = true;
            }
        }
    }

    /// Ask for a key frame of this track (subject to the rate limit).
    /// Returns false for a track that is not subscribed.
    pub fn want_keyframe(&mut self, sid: &TrackSid) -> bool {
        match self.subs.values_mut().find(|s| &s.track.sid == sid) {
            Some(s) => {
                s.keyframe_due = true;
                true
            }
            None => false,
        }
    }

    /// Video m-lines whose key frame request is due now (rate limited), with the
    /// RID of their last frame.
    pub fn due_keyframe_requests(&self, now: Instant) -> Vec<(Mid, Option<Rid>)> {
        self.subs
            .iter()
            .filter(|(_, s)| {
                s.keyframe_due
                    && s.track.kind == TrackKind::Video
                    && s.last_keyframe_request.is_none_or(|t| {
                        now.saturating_duration_since(t) >= KEYFRAME_REQUEST_INTERVAL
                    })
            })
            .map(|(mid, s)| {
                (
                    Mid::from(mid.as_str()),
                    s.next_seq.keys().next().copied().flatten(),
                )
            })
            .collect()
    }

    /// A key frame request went out (or could not yet: no receive stream).
    pub fn keyframe_requested(&mut self, mid: Mid, now: Instant) {
        if let Some(s) = self.subs.get_mut(&mid.to_string()) {
            s.keyframe_due = false;
            s.last_keyframe_request = Some(now);
        }
    }

    /// When the next rate-limited key frame request becomes due, if any waits.
    pub fn next_keyframe_request(&self) -> Option<Instant> {
        self.subs
            .values()
            .filter(|s| s.keyframe_due && s.track.kind == TrackKind::Video)
            .filter_map(|s| {
                s.last_keyframe_request
                    .map(|t| t + KEYFRAME_REQUEST_INTERVAL)
            })
            .min()
    }

    /// `UpdateTrackSettings` selecting `quality` of a subscribed video track.
    pub fn track_settings(
        &self,
        sid: &TrackSid,
        quality: VideoQuality,
    ) -> Option<proto::UpdateTrackSettings> {
        let s = self.subs.values().find(|s| &s.track.sid == sid)?;
        let (width, height) = s
            .track
            .layers
            .iter()
            .find(|l| l.quality == quality)
            .map(|l| (l.width, l.height))
            .unwrap_or((0, 0));
        Some(proto::UpdateTrackSettings {
            track_sids: vec![sid.0.clone()],
            disabled: false,
            quality: quality.to_proto() as i32,
            width,
            height,
            ..Default::default()
        })
    }

    /// str0m's periodic ingress figures of one (mid, rid).
    pub fn ingress(&mut self, st: &MediaIngressStats) {
        let Some(s) = self.subs.get_mut(&st.mid.to_string()) else {
            return;
        };
        s.ingress.entry(st.rid).or_default().update_from_ingress(st);
    }

    /// Per-track receive figures, and totals (video frames received, dropped; audio packets).
    pub fn stats(&self) -> (Vec<ReceiveStats>, u64, u64, u64) {
        let mut v: Vec<ReceiveStats> = self
            .subs
            .values()
            .map(|s| {
                let mut r = ReceiveStats {
                    participant: s.track.participant.clone(),
                    track: s.track.sid.clone(),
                    kind: s.track.kind,
                    packets_lost: s.lost,
                    frames_received: s.frames,
                    frames_dropped: s.dropped,
                    ..Default::default()
                };
                for acc in s.ingress.values() {
                    r.bytes += acc.bytes;
                    r.packets += acc.packets;
                    r.bitrate = Bitrate(r.bitrate.0 + acc.bitrate.0);
                    r.nacks += acc.nacks;
                    r.plis += acc.plis;
                    r.firs += acc.firs;
                    r.loss = acc.loss.or(r.loss);
                }
                r
            })
            .collect();
        v.sort_by(|a, b| (&a.participant, &a.track).cmp(&(&b.participant, &b.track)));
        (
            v,
            self.frames_received,
            self.frames_dropped,
            self.audio_received,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::SUBSCRIBER_OFFER as OFFER;
    use str0m::format::{CodecSpec, FormatParams, PayloadParams};
    use str0m::media::{Frequency, MediaTime};
    use str0m::rtp::ExtensionValues;

    fn track(sid: &str, video: bool, muted: bool) -> proto::TrackInfo {
        proto::TrackInfo {
            sid: sid.into(),
            name: if video { "camera" } else { "microphone" }.into(),
            r#type: if video {
                proto::TrackType::Video
            } else {
                proto::TrackType::Audio
            } as i32,
            mime_type: if video { "video/H264" } else { "audio/opus" }.into(),
            width: if video { 1280 } else { 0 },
            height: if video { 720 } else { 0 },
            muted,
            codecs: vec![proto::SimulcastCodecInfo {
                mime_type: if video { "video/H264" } else { "audio/opus" }.into(),
                layers: if video {
                    [(0, 320, 180), (1, 640, 360), (2, 1280, 720)]
                        .iter()
                        .map(|&(q, width, height)| proto::VideoLayer {
                            quality: q,
                            width,
                            height,
                            ..Default::default()
                        })
                        .collect()
                } else {
                    Vec::new()
                },
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn publisher(tracks: Vec<proto::TrackInfo>, gone: bool) -> proto::ParticipantInfo {
        proto::ParticipantInfo {
            identity: "creator".into(),
            sid: "PA_pub".into(),
            state: if gone {
                proto::participant_info::State::Disconnected
            } else {
                proto::participant_info::State::Active
            } as i32,
            tracks,
            ..Default::default()
        }
    }

    fn offer_sd() -> proto::SessionDescription {
        proto::SessionDescription {
            r#type: "offer".into(),
            sdp: OFFER.into(),
            id: 1,
            mid_to_track_id: HashMap::new(),
        }
    }

    fn subscribed() -> Subscriptions {
        let mut s = Subscriptions::default();
        s.offer(&offer_sd());
        s.participant(&publisher(
            vec![
                track("TR_video", true, false),
                track("TR_audio", false, false),
            ],
            false,
        ));
        s.take_events();
        s
    }

    #[test]
    fn a_track_is_announced_once_offered_and_described_then_muted_and_ended() {
        let mut s = Subscriptions::default();
        s.offer(&offer_sd());
        assert!(s.take_events().is_empty(), "no TrackInfo yet");
        s.participant(&publisher(
            vec![
                track("TR_video", true, false),
                track("TR_audio", false, false),
            ],
            false,
        ));
        let ev = s.take_events();
        assert_eq!(ev.len(), 2, "{ev:?}");
        let PublisherEvent::TrackSubscribed(v) = &ev[0] else {
            panic!("{ev:?}")
        };
        assert_eq!(v.participant.as_str(), "creator");
        assert_eq!(v.sid.as_str(), "TR_video");
        assert_eq!(
            (v.kind, v.codec),
            (TrackKind::Video, Some(VideoCodec::H264))
        );
        assert_eq!(v.dimensions, Some((1280, 720)));
        assert_eq!(v.layers.len(), 3);
        assert!(matches!(&ev[1], PublisherEvent::TrackSubscribed(a)
            if a.kind == TrackKind::Audio && a.codec.is_none() && a.mime == "audio/opus"));

        // An update with the same state says nothing; a mute change is reported.
        s.participant(&publisher(
            vec![
                track("TR_video", true, false),
                track("TR_audio", false, false),
            ],
            false,
        ));
        assert!(s.take_events().is_empty());
        s.participant(&publisher(
            vec![
                track("TR_video", true, true),
                track("TR_audio", false, false),
            ],
            false,
        ));
        assert_eq!(
            s.take_events(),
            vec![PublisherEvent::TrackMuted {
                participant: "creator".into(),
                track: "TR_video".into(),
                muted: true
            }]
        );
        // The audio track unpublished, then the publisher leaves.
        s.participant(&publisher(vec![track("TR_video", true, true)], false));
        assert_eq!(
            s.take_events(),
            vec![PublisherEvent::TrackUnsubscribed {
                participant: "creator".into(),
                track: "TR_audio".into()
            }]
        );
        s.participant(&publisher(Vec::new(), true));
        assert_eq!(
            s.take_events(),
            vec![PublisherEvent::TrackUnsubscribed {
                participant: "creator".into(),
                track: "TR_video".into()
            }]
        );
    }

    #[test]
    fn a_renegotiation_without_the_mline_or_a_reset_ends_the_subscription() {
        let mut s = subscribed();
        let mut sd = offer_sd();
        sd.sdp = sd.sdp.replace("a=mid:2\r\n", "a=mid:2\r\na=inactive\r\n");
        s.offer(&sd);
        assert_eq!(
            s.take_events(),
            vec![PublisherEvent::TrackUnsubscribed {
                participant: "creator".into(),
                track: "TR_audio".into()
            }]
        );
        s.reset();
        assert_eq!(s.take_events().len(), 1);
        assert!(s.stats().0.is_empty());
    }

    fn frame(
        mid: &str,
        seq: std::ops::RangeInclusive<u64>,
        keyframe: bool,
        contiguous: bool,
    ) -> MediaData {
        MediaData {
            mid: mid.into(),
            pt: 96.into(),
            rid: None,
            params: PayloadParams::new(
                96.into(),
                None,
                CodecSpec {
                    codec: Codec::H264,
                    clock_rate: Frequency::NINETY_KHZ,
                    channels: None,
                    format: FormatParams::default(),
                },
            ),
            time: MediaTime::from_90khz(9000),
            network_time: Instant::now(),
            seq_range: (*seq.start()).into()..=(*seq.end()).into(),
            contiguous,
            data: vec![0, 0, 0, 1, if keyframe { 0x65 } else { 0x41 }].into(),
            ext_vals: ExtensionValues::default(),
            codec_extra: CodecExtra::H264(str0m::format::H264CodecExtra {
                is_keyframe: keyframe,
            }),
            last_sender_info: None,
            audio_start_of_talk_spurt: false,
        }
    }

    #[test]
    fn frames_map_to_their_track_and_gaps_count_as_lost() {
        let mut s = subscribed();
        let Some(ReceivedMedia::Video(v)) = s.media(&frame("1", 10..=12, true, true)) else {
            panic!("video frame")
        };
        assert_eq!(
            (v.track.as_str(), v.participant.as_str()),
            ("TR_video", "creator")
        );
        assert_eq!(
            (v.codec, v.keyframe, v.rtp_timestamp),
            (VideoCodec::H264, true, 9000)
        );
        assert_eq!(v.timestamp, Duration::from_millis(100));
        assert_eq!(&v.data[..], &[0, 0, 0, 1, 0x65]);
        // Packets 13 and 14 never came.
        assert!(s.media(&frame("1", 15..=15, false, false)).is_some());
        assert!(
            s.media(&frame("9", 1..=1, false, true)).is_none(),
            "unknown mid"
        );
        let (stats, frames, dropped, _) = s.stats();
        let vs = stats
            .iter()
            .find(|r| r.track.as_str() == "TR_video")
            .expect("stats");
        assert_eq!(
            (vs.packets_lost, vs.frames_received, frames, dropped),
            (2, 2, 2, 0)
        );
    }

    #[test]
    fn after_a_channel_drop_video_skips_to_the_next_key_frame() {
        let mut s = subscribed();
        let now = Instant::now();
        // The subscribe itself asks for a key frame, once per interval.
        assert_eq!(s.due_keyframe_requests(now).len(), 1);
        s.keyframe_requested(Mid::from("1"), now);
        assert!(s.due_keyframe_requests(now).is_empty());

        let m = s.media(&frame("1", 1..=1, true, true)).expect("frame");
        s.media_dropped(&m);
        assert!(
            s.media(&frame("1", 2..=2, false, true)).is_none(),
            "delta after a drop"
        );
        assert!(s.media(&frame("1", 3..=3, false, true)).is_none());
        assert!(
            s.media(&frame("1", 4..=4, true, true)).is_some(),
            "key frame resumes"
        );
        assert!(s.media(&frame("1", 5..=5, false, true)).is_some());
        let (_, frames, dropped, _) = s.stats();
        assert_eq!((frames, dropped), (2, 3));
        // The drop asked for a key frame: due once the 500 ms limit has passed.
        assert!(
            s.due_keyframe_requests(now + Duration::from_millis(100))
                .is_empty()
        );
        assert_eq!(
            s.next_keyframe_request(),
            Some(now + KEYFRAME_REQUEST_INTERVAL)
        );
        assert_eq!(
            s.due_keyframe_requests(now + KEYFRAME_REQUEST_INTERVAL)
                .len(),
            1
        );
    }

    #[test]
    fn video_quality_selects_the_layer_size() {
        let s = subscribed();
        let ts = s
            .track_settings(&"TR_video".into(), VideoQuality::Medium)
            .expect("subscribed");
        assert_eq!(ts.track_sids, vec!["TR_video".to_string()]);
        assert_eq!(ts.quality, proto::VideoQuality::Medium as i32);
        assert_eq!((ts.width, ts.height), (640, 360));
        assert!(
            s.track_settings(&"TR_nope".into(), VideoQuality::Low)
                .is_none()
        );
    }
}
