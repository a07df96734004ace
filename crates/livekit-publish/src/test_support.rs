//! What the core's unit tests share: the participant under test with its fixed
//! addresses, join and participant fixtures, reading its last stats, and
//! [`Harness`], the core driven with no sockets against a fake SFU.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use livekit_protocol as proto;
use proto::signal_request::Message as Req;
use proto::signal_response::Message as Resp;
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

use crate::core::{CoreConfig, CoreOutput, Participant};
use crate::types::*;

pub(crate) fn addr(s: &str) -> SocketAddr {
    s.parse().expect("literal address")
}

/// The participant under test: publisher PC on 10.0.0.1:4000, subscriber PC on
/// 10.0.0.1:4001, starting at 1 Mbit/s.
pub(crate) fn test_participant(ice_transport: IceTransport) -> Participant {
    Participant::new(CoreConfig {
        publisher_addr: addr("10.0.0.1:4000"),
        subscriber_addr: addr("10.0.0.1:4001"),
        initial_bitrate: Bitrate::from_kbps(1000),
        ice_transport,
        relays: Vec::new(),
    })
}

/// The last stats snapshot among `events` (the test emitted one).
pub(crate) fn last_stats(events: &[PublisherEvent]) -> StatsSnapshot {
    events
        .iter()
        .rev()
        .find_map(|e| match e {
            PublisherEvent::Stats(s) => Some(s.clone()),
            _ => None,
        })
        .expect("stats")
}

/// Identity of the participant under test in [`join_response`].
pub(crate) const ME: &str = "creator";
/// Its participant sid.
pub(crate) const MY_SID: &str = "PA_me";

/// A remote participant as the server describes it (named "`identity` name").
pub(crate) fn participant(
    identity: &str,
    sid: &str,
    hidden: bool,
    state: proto::participant_info::State,
) -> proto::ParticipantInfo {
    proto::ParticipantInfo {
        identity: identity.into(),
        sid: sid.into(),
        name: format!("{identity} name"),
        state: state as i32,
        permission: Some(proto::ParticipantPermission {
            hidden,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The JoinResponse of [`ME`] into a room with `others`.
pub(crate) fn join_response(others: Vec<proto::ParticipantInfo>) -> proto::JoinResponse {
    proto::JoinResponse {
        participant: Some(participant(
            ME,
            MY_SID,
            false,
            proto::participant_info::State::Joined,
        )),
        other_participants: others,
        ping_interval: 5,
        ping_timeout: 15,
        ..Default::default()
    }
}

/// The core plus a fake SFU transport, on a virtual clock: a second str0m `Rtc`
/// plays the SFU's side of one of the core's peer connections (`pc`), and signal
/// messages are fed by hand.
pub(crate) struct Harness {
    pub(crate) core: Participant,
    pub(crate) sfu: Rtc,
    /// The core's peer connection the fake SFU is connected to.
    pub(crate) pc: PcKind,
    pub(crate) now: Instant,
    pub(crate) signals: Vec<Req>,
    pub(crate) events: Vec<PublisherEvent>,
    pub(crate) sfu_events: Vec<Event>,
    /// Frames of subscribed tracks the core handed out.
    pub(crate) media: Vec<ReceivedMedia>,
    /// Core transmits by protocol.
    pub(crate) sent: HashMap<Protocol, u64>,
    /// Source addresses of the core's transmits.
    pub(crate) sources: std::collections::HashSet<SocketAddr>,
    /// The fake SFU's datagrams are lost on the way to the core (a frozen server).
    pub(crate) sfu_silent: bool,
    /// Every n-th RTP datagram (media or RTX, not RTCP) from the core to the SFU is lost;
    /// 0 loses none.
    pub(crate) lose_every_nth_rtp: u64,
    rtp_to_sfu: u64,
    lost_rtp: u64,
}

/// An (S)RTP datagram, not RTCP (RFC 5761 §4: RTCP packet types 192-223 in byte 1), STUN
/// or DTLS (RFC 7983: RTP and RTCP start with 128-191).
fn is_rtp(d: &[u8]) -> bool {
    matches!(d, [128..=191, b, ..] if !(192..=223).contains(b))
}

impl Harness {
    /// The SFU's publisher-side peer connection, over UDP.
    pub(crate) fn new() -> Self {
        Self::with_transport(IceTransport::UdpOnly)
    }

    /// `TcpOnly`: the fake SFU has only a passive TCP candidate (like
    /// LiveKit's `rtc.tcp_port`), packets move as framed TCP would carry them.
    pub(crate) fn with_transport(ice_transport: IceTransport) -> Self {
        Self::publisher_side(ice_transport, true)
    }

    /// An SFU that answers Opus without RED (a server configured without it).
    pub(crate) fn without_audio_red() -> Self {
        Self::publisher_side(IceTransport::UdpOnly, false)
    }

    fn publisher_side(ice_transport: IceTransport, red: bool) -> Self {
        let now = Instant::now();
        // Opus with RED, as LiveKit answers it (unless `red` is false).
        let mut sfu = Rtc::builder()
            .enable_opus(true, red)
            .enable_bwe(None)
            .build(now);
        let c = if ice_transport == IceTransport::TcpOnly {
            Candidate::builder()
                .tcp()
                .host(addr("10.0.0.2:7881"))
                .tcptype(str0m::net::TcpType::Passive)
                .build()
        } else {
            Candidate::host(addr("10.0.0.2:5000"), "udp")
        };
        sfu.add_local_candidate(c.expect("candidate"));
        Self::around(sfu, PcKind::Publisher, ice_transport, now)
    }

    /// `Relay` with one TURN allocation for the publisher PC: the SFU sees the
    /// relayed address as the core's (as behind a real TURN server).
    pub(crate) fn with_relay(relay: crate::turn::RelayCandidate) -> Self {
        let now = Instant::now();
        let mut sfu = Rtc::builder().enable_bwe(None).build(now);
        sfu.add_local_candidate(Candidate::host(addr("10.0.0.2:5000"), "udp").expect("candidate"));
        let mut h = Self::around(sfu, PcKind::Publisher, IceTransport::Relay, now);
        h.core = Participant::new(CoreConfig {
            publisher_addr: addr("10.0.0.1:4000"),
            subscriber_addr: addr("10.0.0.1:4001"),
            initial_bitrate: Bitrate::from_kbps(1000),
            ice_transport: IceTransport::Relay,
            relays: vec![relay],
        });
        h
    }

    /// The SFU's subscriber peer connection: it offers send-only m-lines (see
    /// [`Harness::subscribe`]) and sends frames.
    pub(crate) fn subscriber() -> Self {
        let now = Instant::now();
        // The same single H.264 flavour the core offers and accepts.
        let mut cfg = Rtc::builder().clear_codecs().enable_opus(true, false);
        cfg.codec_config()
            .add_h264(108.into(), Some(109.into()), true, 0x42e01f);
        let mut sfu = cfg.build(now);
        sfu.add_local_candidate(Candidate::host(addr("10.0.0.2:5001"), "udp").expect("candidate"));
        Self::around(sfu, PcKind::Subscriber, IceTransport::UdpOnly, now)
    }

    fn around(sfu: Rtc, pc: PcKind, ice_transport: IceTransport, now: Instant) -> Self {
        Self {
            core: test_participant(ice_transport),
            sfu,
            pc,
            now,
            signals: Vec::new(),
            events: Vec::new(),
            sfu_events: Vec::new(),
            media: Vec::new(),
            sent: HashMap::new(),
            sources: Default::default(),
            sfu_silent: false,
            lose_every_nth_rtp: 0,
            rtp_to_sfu: 0,
            lost_rtp: 0,
        }
    }

    /// Move outputs both ways until nothing moves, answering the publisher's
    /// offers like the SFU, then advance the clock 5 ms; for `millis`.
    pub(crate) fn pump(&mut self, millis: u64) {
        let end = self.now + Duration::from_millis(millis);
        while self.now < end {
            let mut moved = true;
            while moved {
                moved = false;
                while let Some(o) = self.core.poll_output() {
                    moved = true;
                    match o {
                        CoreOutput::Signal(Req::Offer(sd)) if self.pc == PcKind::Publisher => {
                            let offer = SdpOffer::from_sdp_string(&sd.sdp).expect("offer parses");
                            let answer =
                                self.sfu.sdp_api().accept_offer(offer).expect("sfu accepts");
                            self.signals.push(Req::Offer(sd));
                            self.core.handle_signal(
                                Resp::Answer(proto::SessionDescription {
                                    r#type: "answer".into(),
                                    sdp: answer.to_sdp_string(),
                                    ..Default::default()
                                }),
                                self.now,
                            );
                        }
                        CoreOutput::Signal(r) => self.signals.push(r),
                        CoreOutput::Transmit(pc, t) if pc == self.pc => {
                            *self.sent.entry(t.proto).or_default() += 1;
                            if self.lose_every_nth_rtp > 0 && is_rtp(&t.contents) {
                                self.rtp_to_sfu += 1;
                                if self.rtp_to_sfu.is_multiple_of(self.lose_every_nth_rtp) {
                                    self.lost_rtp += 1;
                                    continue;
                                }
                            }
                            self.sources.insert(t.source);
                            let input = Input::Receive(
                                self.now,
                                Receive {
                                    proto: t.proto,
                                    source: t.source,
                                    destination: t.destination,
                                    contents: (&*t.contents).try_into().expect("datagram"),
                                },
                            );
                            if self.sfu.accepts(&input) {
                                self.sfu.handle_input(input).expect("sfu input");
                            }
                        }
                        // The other peer connection has no peer here.
                        CoreOutput::Transmit(..) => {}
                        CoreOutput::Media(m) => self.media.push(m),
                        CoreOutput::Event(e) => self.events.push(e),
                    }
                }
                loop {
                    match self.sfu.poll_output().expect("sfu output") {
                        Output::Timeout(_) => break,
                        Output::Transmit(_) if self.sfu_silent => {}
                        Output::Transmit(t) => {
                            moved = true;
                            let receive = if t.proto == Protocol::Tcp {
                                Participant::handle_receive_tcp
                            } else {
                                Participant::handle_receive
                            };
                            receive(
                                &mut self.core,
                                self.pc,
                                t.source,
                                t.destination,
                                &t.contents,
                                self.now,
                            );
                        }
                        Output::Event(e) => self.sfu_events.push(e),
                    }
                }
            }
            self.now += Duration::from_millis(5);
            self.core.handle_timeout(self.now);
            // The driver sleeps until poll_timeout: a time of the core's own that
            // handle_timeout did not move past makes it spin on a whole core (the bandwidth
            // recovery's did). str0m's own may come back at or just before now (its pacer);
            // the next turn takes it, so those are left to str0m.
            let now = self.now;
            let stale: Vec<_> = self
                .core
                .timers()
                .into_iter()
                .filter(|&(name, t)| !name.ends_with(" pc") && t.is_some_and(|t| t <= now))
                .collect();
            assert!(stale.is_empty(), "timers not after {now:?}: {stale:?}");
            self.sfu
                .handle_input(Input::Timeout(self.now))
                .expect("sfu timeout");
        }
    }

    /// RTP datagrams `lose_every_nth_rtp` lost so far.
    pub(crate) fn rtp_lost(&self) -> u64 {
        self.lost_rtp
    }

    /// The first AddTrackRequest among the signals sent.
    pub(crate) fn add_track_sent(&self) -> Option<proto::AddTrackRequest> {
        self.signals.iter().find_map(|s| match s {
            Req::AddTrack(a) => Some(a.clone()),
            _ => None,
        })
    }

    pub(crate) fn offers(&self) -> Vec<String> {
        self.signals
            .iter()
            .filter_map(|s| match s {
                Req::Offer(sd) => Some(sd.sdp.clone()),
                _ => None,
            })
            .collect()
    }

    pub(crate) fn connected(&mut self) {
        self.core.handle_join(&join_response(Vec::new()), self.now);
        self.pump(1500);
        assert!(
            self.core.is_connected(),
            "publisher connects to the fake SFU"
        );
    }

    /// The server's TrackPublishedResponse for `cid`.
    pub(crate) fn confirm_published(&mut self, cid: &TrackCid, sid: &str) {
        self.core.handle_signal(
            Resp::TrackPublished(proto::TrackPublishedResponse {
                cid: cid.0.clone(),
                track: Some(proto::TrackInfo {
                    sid: sid.into(),
                    ..Default::default()
                }),
            }),
            self.now,
        );
    }

    pub(crate) fn publish(&mut self, opts: &VideoTrackOptions) -> TrackCid {
        let cid = self.core.publish_video(opts, self.now);
        self.pump(10);
        self.confirm_published(&cid, "TR_1");
        self.pump(500);
        cid
    }

    /// Subscriber side: offer one H.264 down-track of `creator`, answer it, connect.
    pub(crate) fn subscribe(&mut self) -> Mid {
        let join = proto::JoinResponse {
            participant: Some(proto::ParticipantInfo {
                identity: "viewer".into(),
                sid: "PA_me".into(),
                ..Default::default()
            }),
            other_participants: vec![proto::ParticipantInfo {
                identity: "creator".into(),
                sid: "PA_pub".into(),
                state: proto::participant_info::State::Active as i32,
                tracks: vec![proto::TrackInfo {
                    sid: "TR_v".into(),
                    name: "camera".into(),
                    r#type: proto::TrackType::Video as i32,
                    mime_type: "video/H264".into(),
                    width: 640,
                    height: 360,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        self.core.handle_join(&join, self.now);
        let mut api = self.sfu.sdp_api();
        let mid = api.add_media(
            MediaKind::Video,
            Direction::SendOnly,
            Some("PA_pub|TR_v".into()),
            Some("TR_v".into()),
            None,
        );
        let (offer, pending) = api.apply().expect("an offer");
        self.core.handle_signal(
            Resp::Offer(proto::SessionDescription {
                r#type: "offer".into(),
                sdp: offer.to_sdp_string(),
                id: 1,
                mid_to_track_id: HashMap::new(),
            }),
            self.now,
        );
        let mut answer = None;
        while let Some(o) = self.core.poll_output() {
            match o {
                CoreOutput::Signal(Req::Answer(sd)) => answer = Some(sd),
                CoreOutput::Event(e) => self.events.push(e),
                _ => {}
            }
        }
        let answer =
            SdpAnswer::from_sdp_string(&answer.expect("answered").sdp).expect("answer parses");
        self.sfu
            .sdp_api()
            .accept_answer(pending, answer)
            .expect("sfu accepts");
        self.pump(1500);
        assert!(self.sfu.is_connected(), "subscriber PC connects");
        mid
    }

    /// Subscriber side: the SFU sends H.264 frame `n` (a key frame, or a delta).
    pub(crate) fn send(&mut self, mid: Mid, n: u64, keyframe: bool) {
        let w = self.sfu.writer(mid).expect("writer");
        let pt = w
            .payload_params()
            .find(|p| p.spec().codec == Codec::H264)
            .map(|p| p.pt())
            .expect("h264 pt");
        let nal: &[u8] = if keyframe {
            &[
                0, 0, 0, 1, 0x67, 0x42, 0xe0, 0x1f, 0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80, 0, 0, 0, 1,
                0x65, 0x88, 0x84,
            ]
        } else {
            &[0, 0, 0, 1, 0x41, 0x9a, 0x02]
        };
        w.write(pt, self.now, MediaTime::from_90khz(n * 3000), nal.to_vec())
            .expect("write");
        self.pump(34);
    }

    /// The key frame requests the fake SFU received.
    pub(crate) fn keyframe_requests(&self) -> Vec<KeyframeRequestKind> {
        self.sfu_events
            .iter()
            .filter_map(|e| match e {
                Event::KeyframeRequest(k) => Some(k.kind),
                _ => None,
            })
            .collect()
    }
}

/// The shape of livekit-server 1.13.5's subscriber offer (see the e2e debug log):
/// data channel first, then one `sendrecv` m-line per down-track whose msid is
/// `PA_…|TR_… TR_…`.
pub(crate) const SUBSCRIBER_OFFER: &str = "v=0\r\n\
o=- 1 2 IN IP4 0.0.0.0\r\n\
s=-\r\n\
t=0 0\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n\
a=mid:0\r\n\
a=sendrecv\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
a=mid:1\r\n\
a=msid:PA_pub|TR_video TR_video\r\n\
a=sendrecv\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
a=mid:2\r\n\
a=ssrc:1234 msid:PA_pub|TR_audio TR_audio\r\n\
a=sendonly\r\n\
m=video 0 UDP/TLS/RTP/SAVPF 96\r\n\
a=mid:3\r\n\
a=msid:PA_gone|TR_old TR_old\r\n\
a=sendrecv\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
a=mid:4\r\n\
a=msid:- TR_recv\r\n\
a=recvonly\r\n";
