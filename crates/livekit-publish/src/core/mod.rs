//! The sans-IO protocol core: what to send when, given signal messages,
//! datagrams, media and time. No sockets, no tasks, no clocks of its own.
//!
//! Inputs: [`Participant::handle_join`], [`Participant::handle_signal`],
//! [`Participant::handle_receive`], [`Participant::handle_timeout`] and the
//! commands (publish, write media, mute, chat, leave).
//! Outputs: [`Participant::poll_output`] (signal requests, datagrams, app
//! events) and [`Participant::poll_timeout`].
//!
//! The [`Participant`] is one state machine with one `impl` block per concern:
//! `publisher` (its peer connection and negotiation), `subscriber` (the peer
//! connection the server offers), `signal` (dispatch of server messages and
//! remote participants), `tracks` (local tracks and simulcast layers, with
//! `vp8` packetization), `data` (data channels and chat), `bandwidth` (bitrate
//! and stats) and `resume` (resume, rejoin and leaving). This file keeps the
//! state itself, the entry points for datagrams and time, and the loop that
//! drains both peer connections (`drive`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use livekit_protocol as proto;
use proto::signal_request::Message as Req;
use str0m::change::SdpPendingOffer;
use str0m::channel::ChannelId;
use str0m::media::{KeyframeRequestKind, MediaKind, Mid, Pt, Rid};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

use crate::chat::DataReceiver;
use crate::subscribe::Subscriptions;
use crate::types::*;

mod bandwidth;
mod data;
mod publisher;
mod signal;
mod subscriber;
mod tracks;
mod vp8;

pub use signal::{candidate_init_json, parse_candidate_init};

use bandwidth::{selected_pair, target_bitrate_moved, to_str0m_bitrate};
use vp8::Vp8Sender;

/// Label of the ordered, reliable data channel.
pub const RELIABLE_LABEL: &str = "_reliable";
/// Label of the unordered, no-retransmit data channel.
pub const LOSSY_LABEL: &str = "_lossy";
/// How long the server has to accept an AddTrackRequest.
pub const TRACK_PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the core emits a [`StatsSnapshot`].
pub const STATS_INTERVAL: Duration = Duration::from_secs(1);
/// Longest STUN retransmit interval (str0m's default is 3 s).
const ICE_MAX_STUN_RTO: Duration = Duration::from_millis(1000);

/// How long a chat message from a sender not known yet waits for the
/// ParticipantUpdate that carries the sender's name and attributes. LiveKit
/// forwards a new participant's data at once but may announce the participant
/// itself more than 1 s later (a guest who chats right after joining was shown
/// by identity and role-less with 1 s); the session also fills in late names.
pub const CHAT_NAME_WAIT: Duration = Duration::from_secs(3);

/// A received chat message waiting for its sender's name.
#[derive(Debug)]
struct PendingChat {
    until: Instant,
    id: String,
    from: String,
    text: String,
    timestamp: i64,
}

/// What the core wants done.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum CoreOutput {
    /// Send this on the signal connection.
    Signal(Req),
    /// Send this datagram from the socket of that peer connection.
    Transmit(PcKind, Transmit),
    /// Tell the app.
    Event(PublisherEvent),
    /// A frame of a subscribed track, for the media channel (see [`Participant::media_dropped`]).
    Media(ReceivedMedia),
}

/// Static settings of the core.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Local UDP address of the publisher socket (announced as host candidate).
    pub publisher_addr: SocketAddr,
    /// Local UDP address of the subscriber socket.
    pub subscriber_addr: SocketAddr,
    /// Bandwidth estimate to start from.
    pub initial_bitrate: Bitrate,
    /// Which candidates both PCs offer (UDP host, active TCP host).
    pub ice_transport: IceTransport,
}

#[derive(Debug)]
struct LocalTrack {
    cid: TrackCid,
    kind: MediaKind,
    video_codec: Option<VideoCodec>,
    request: proto::AddTrackRequest,
    info: Option<proto::TrackInfo>,
    sid: Option<TrackSid>,
    requested_at: Instant,
    mid: Option<Mid>,
    pt: Option<Pt>,
    muted: bool,
    layers: Vec<LayerSpec>,
    /// Layers someone watches; `None` until the server says (send all).
    wanted: Option<HashSet<VideoQuality>>,
    /// Start of the track's media clock, to detect non-monotonic input.
    last_timestamp: Option<Duration>,
    /// VP8 only: our own RTP packetization state per layer (see [`Vp8Sender`]).
    vp8: HashMap<Option<Rid>, Vp8Sender>,
}

#[derive(Debug, Default, Clone)]
struct EgressAcc {
    bytes: u64,
    packets: u64,
    nacks: u64,
    plis: u64,
    firs: u64,
    loss: Option<f32>,
    rtt: Option<Duration>,
    prev_bytes: u64,
    prev_at: Option<Instant>,
    bitrate: Bitrate,
}

/// The LiveKit participant state machine.
pub struct Participant {
    cfg: CoreConfig,
    state: ConnectionState,
    identity: String,
    sid: String,
    publisher: Option<Rtc>,
    subscriber: Option<Rtc>,
    pub_timeout: Option<Instant>,
    sub_timeout: Option<Instant>,
    pending_offer: Option<SdpPendingOffer>,
    negotiation_needed: bool,
    /// m-lines of unpublished tracks still to be set inactive in the next offer
    /// (an unpublish while an offer is in flight waits for its answer).
    mids_to_deactivate: Vec<Mid>,
    /// What the unanswered offer changes (m-lines set inactive, tracks whose
    /// m-line it adds), to make again if it is lost.
    offer_in_flight: (Vec<Mid>, Vec<TrackCid>),
    offer_id: u32,
    /// Id of the last `UpdateParticipantMetadata` (the server answers with it).
    metadata_request_id: u32,
    reliable: Option<ChannelId>,
    lossy: Option<ChannelId>,
    reliable_open: bool,
    lossy_open: bool,
    data_queue: VecDeque<(Reliability, proto::DataPacket)>,
    /// Channels the server opened on the subscriber PC (id, label).
    sub_channels: Vec<(ChannelId, String)>,
    sub_candidates: Vec<Candidate>,
    tracks: Vec<LocalTrack>,
    participants: HashMap<String, RemoteParticipant>,
    /// Chat received before its sender was known (see [`Participant::receive_chat`]).
    pending_chats: VecDeque<PendingChat>,
    viewer_count: Option<u32>,
    data_rx: DataReceiver,
    out: VecDeque<CoreOutput>,
    next_stats: Option<Instant>,
    egress: HashMap<(Mid, Option<Rid>), EgressAcc>,
    bwe: Option<Bitrate>,
    /// Last estimate announced as [`PublisherEvent::TargetBitrate`].
    bwe_emitted: Option<Bitrate>,
    /// Desired bitrate last handed to str0m's BWE (it probes up towards it).
    bwe_desired: Option<Bitrate>,
    peer_rtt: Option<Duration>,
    quality: Option<ConnectionQuality>,
    frames_sent: u64,
    frames_dropped: u64,
    /// Dropped video frames per (track, RID).
    dropped_by_layer: HashMap<(TrackCid, Option<String>), u64>,
    /// Video layers that lost frames before the core saw them (queue overflow, or
    /// no transport, e.g. during a resume's ICE restart): their next frames would
    /// reference pictures receivers never got (with contiguous RTP, so receivers
    /// cannot tell), so they wait for a key frame. Value: when one was last asked for.
    awaiting_key: HashMap<(TrackCid, Option<VideoQuality>), Option<Instant>>,
    audio_sent: u64,
    cid_counter: u32,
    reconnect_requested: Option<String>,
    last_sub_answer: Option<proto::SessionDescription>,
    /// Receive side: remote tracks on the subscriber PC.
    subs: Subscriptions,
    resumes: u32,
    rejoins: u32,
    /// Selected ICE pair per PC (transport, remote address), from str0m's stats.
    pub_pair: Option<(TransportProtocol, SocketAddr)>,
    sub_pair: Option<(TransportProtocol, SocketAddr)>,
}

impl Participant {
    /// A participant that has not joined yet.
    pub fn new(cfg: CoreConfig) -> Self {
        Self {
            cfg,
            state: ConnectionState::Connecting,
            identity: String::new(),
            sid: String::new(),
            publisher: None,
            subscriber: None,
            pub_timeout: None,
            sub_timeout: None,
            pending_offer: None,
            negotiation_needed: false,
            mids_to_deactivate: Vec::new(),
            offer_in_flight: Default::default(),
            offer_id: 0,
            metadata_request_id: 0,
            reliable: None,
            lossy: None,
            reliable_open: false,
            lossy_open: false,
            data_queue: VecDeque::new(),
            sub_channels: Vec::new(),
            sub_candidates: Vec::new(),
            tracks: Vec::new(),
            participants: HashMap::new(),
            pending_chats: VecDeque::new(),
            viewer_count: None,
            data_rx: DataReceiver::default(),
            out: VecDeque::new(),
            next_stats: None,
            egress: HashMap::new(),
            bwe: None,
            bwe_emitted: None,
            bwe_desired: None,
            peer_rtt: None,
            quality: None,
            frames_sent: 0,
            frames_dropped: 0,
            dropped_by_layer: HashMap::new(),
            awaiting_key: HashMap::new(),
            audio_sent: 0,
            cid_counter: 0,
            reconnect_requested: None,
            last_sub_answer: None,
            subs: Subscriptions::default(),
            resumes: 0,
            rejoins: 0,
            pub_pair: None,
            sub_pair: None,
        }
    }

    /// Current connection state.
    pub fn state(&self) -> &ConnectionState {
        &self.state
    }

    /// Own identity (after join).
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Own participant sid (after join).
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// Whether the publisher transport is connected.
    pub fn is_connected(&self) -> bool {
        self.publisher.as_ref().is_some_and(|r| r.is_connected())
    }

    /// Whether the subscriber transport (viewers' chat and data) is connected, or
    /// the server has not offered one.
    pub fn is_subscriber_connected(&self) -> bool {
        self.subscriber.as_ref().is_none_or(|r| r.is_connected())
    }

    fn new_rtc(&self, now: Instant) -> Rtc {
        // LiveKit forwards only the payload type its answer lists first and drops
        // packets of any other ("payload mismatch"), so offer exactly one H.264
        // flavour: constrained baseline, packetization-mode 1.
        let mut cfg = Rtc::builder()
            .clear_codecs()
            .enable_vp8(true)
            .enable_opus(true, false)
            .enable_bwe(Some(to_str0m_bitrate(self.cfg.initial_bitrate)))
            .set_stats_interval(Some(STATS_INTERVAL));
        cfg.codec_config()
            .add_h264(108.into(), Some(109.into()), true, 0x42e01f);
        // STUN retransmits capped at 1 s instead of 3 s: a dead media path is
        // noticed after ~8.5 s instead of ~21.5 s, well before the server gives
        // up on the session (so a resume can still save it).
        cfg.set_max_stun_rto(ICE_MAX_STUN_RTO);
        cfg.build(now)
    }

    fn set_state(&mut self, s: ConnectionState) {
        if self.state != s {
            self.state = s.clone();
            self.out
                .push_back(CoreOutput::Event(PublisherEvent::StateChanged(s)));
        }
    }

    fn emit(&mut self, e: PublisherEvent) {
        self.out.push_back(CoreOutput::Event(e));
    }

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

    /// Why the core wants the driver to reconnect (transport lost, or the
    /// server's LeaveRequest asked for it), once.
    pub fn take_reconnect_request(&mut self) -> Option<String> {
        self.reconnect_requested.take()
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
        self.subs.reset();
        self.sub_channels.clear();
        self.egress.clear();
        self.data_rx = DataReceiver::default();
        self.reconnect_requested = None;
        for t in self.tracks.iter_mut() {
            t.sid = None;
            t.info = None;
            t.mid = None;
            t.pt = None;
            t.wanted = None;
            t.requested_at = now;
            t.request.muted = t.muted;
            self.out
                .push_back(CoreOutput::Signal(Req::AddTrack(t.request.clone())));
        }
        self.handle_join(join, now);
    }

    /// Feed a datagram received on the socket of peer connection `pc`.
    pub fn handle_receive(
        &mut self,
        pc: PcKind,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
        now: Instant,
    ) {
        self.receive(pc, Protocol::Udp, source, destination, data, now);
    }

    /// Feed an RFC 4571 frame received on the ICE-TCP connection of `pc` to the
    /// server's candidate `source`; `destination` is our active candidate's address.
    pub fn handle_receive_tcp(
        &mut self,
        pc: PcKind,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
        now: Instant,
    ) {
        self.receive(pc, Protocol::Tcp, source, destination, data, now);
    }

    /// The ICE-TCP connection of `pc` to `remote` ended. If the selected pair used
    /// it the transport is lost: recover at once (reconnect/resume) instead of
    /// waiting ~15 s for ICE consent to expire.
    pub fn tcp_closed(&mut self, pc: PcKind, remote: SocketAddr) {
        let pair = match pc {
            PcKind::Publisher => self.pub_pair,
            PcKind::Subscriber => self.sub_pair,
        };
        if pair == Some((TransportProtocol::Tcp, remote))
            && matches!(self.state, ConnectionState::Connected)
        {
            self.reconnect_requested = Some(format!("{pc:?} ICE-TCP connection closed"));
        }
    }

    fn receive(
        &mut self,
        pc: PcKind,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
        now: Instant,
    ) {
        let Ok(contents) = data.try_into() else {
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto,
                source,
                destination,
                contents,
            },
        );
        let rtc = match pc {
            PcKind::Publisher => self.publisher.as_mut(),
            PcKind::Subscriber => self.subscriber.as_mut(),
        };
        if let Some(rtc) = rtc
            && rtc.accepts(&input)
            && let Err(e) = rtc.handle_input(input)
        {
            self.emit(PublisherEvent::Error(format!("{pc:?} input: {e}")));
        }
        self.drive(now);
    }

    /// Advance time.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.release_chats(now);
        for (rtc, due) in [
            (self.publisher.as_mut(), self.pub_timeout),
            (self.subscriber.as_mut(), self.sub_timeout),
        ] {
            if let (Some(rtc), Some(due)) = (rtc, due)
                && due <= now
            {
                let _ = rtc.handle_input(Input::Timeout(now));
            }
        }
        if self.next_stats.is_some_and(|t| t <= now) {
            self.next_stats = Some(now + STATS_INTERVAL);
            self.emit_stats(now);
        }
        let mut expired = Vec::new();
        for t in &self.tracks {
            if t.sid.is_none() && now.duration_since(t.requested_at) > TRACK_PUBLISH_TIMEOUT {
                expired.push(t.cid.clone());
            }
        }
        for cid in expired {
            self.tracks.retain(|t| t.cid != cid);
            self.emit(PublisherEvent::Error(format!(
                "track {cid} not published by the server within 10 s"
            )));
        }
        self.drive(now);
    }

    /// When [`Participant::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let chat = self.pending_chats.iter().map(|c| c.until).min();
        [
            self.pub_timeout,
            self.sub_timeout,
            self.next_stats,
            self.subs.next_keyframe_request(),
            chat,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Next thing to do.
    pub fn poll_output(&mut self) -> Option<CoreOutput> {
        self.out.pop_front()
    }

    /// Drain both peer connections until they only wait for time.
    fn drive(&mut self, now: Instant) {
        self.apply_desired_bitrate();
        self.service_subscriptions(now);
        for _round in 0..64 {
            let mut events = Vec::new();
            for pc in [PcKind::Publisher, PcKind::Subscriber] {
                let rtc = match pc {
                    PcKind::Publisher => self.publisher.as_mut(),
                    PcKind::Subscriber => self.subscriber.as_mut(),
                };
                let Some(rtc) = rtc else { continue };
                let mut timeout = None;
                loop {
                    match rtc.poll_output() {
                        Ok(Output::Timeout(t)) => {
                            timeout = Some(t);
                            break;
                        }
                        Ok(Output::Transmit(t)) => self.out.push_back(CoreOutput::Transmit(pc, t)),
                        Ok(Output::Event(e)) => events.push((pc, e)),
                        Err(e) => {
                            events.push((
                                pc,
                                Event::IceConnectionStateChange(IceConnectionState::Disconnected),
                            ));
                            self.out
                                .push_back(CoreOutput::Event(PublisherEvent::Error(format!(
                                    "{pc:?}: {e}"
                                ))));
                            break;
                        }
                    }
                }
                match pc {
                    PcKind::Publisher => self.pub_timeout = timeout,
                    PcKind::Subscriber => self.sub_timeout = timeout,
                }
            }
            if events.is_empty() {
                break;
            }
            for (pc, e) in events {
                self.handle_rtc_event(pc, e, now);
            }
        }
    }

    fn handle_rtc_event(&mut self, pc: PcKind, e: Event, now: Instant) {
        match (pc, e) {
            (PcKind::Publisher, Event::Connected) => {
                self.set_state(ConnectionState::Connected);
                self.request_initial_keyframes();
            }
            (
                PcKind::Publisher,
                Event::IceConnectionStateChange(IceConnectionState::Disconnected),
            ) => {
                if matches!(self.state, ConnectionState::Connected) {
                    self.reconnect_requested = Some("publisher transport disconnected".into());
                }
            }
            // Chat and data from viewers arrive on the subscriber transport; only a
            // resume makes the server (its offerer) restart its ICE.
            (
                PcKind::Subscriber,
                Event::IceConnectionStateChange(IceConnectionState::Disconnected),
            ) => {
                if matches!(self.state, ConnectionState::Connected) {
                    self.reconnect_requested = Some("subscriber transport disconnected".into());
                }
            }
            (PcKind::Publisher, Event::ChannelOpen(id, _label)) => {
                if Some(id) == self.reliable {
                    self.reliable_open = true;
                } else if Some(id) == self.lossy {
                    self.lossy_open = true;
                }
                self.flush_data();
            }
            (PcKind::Subscriber, Event::ChannelOpen(id, label)) => {
                self.sub_channels.retain(|(c, _)| *c != id);
                self.sub_channels.push((id, label));
            }
            (_, Event::ChannelData(d)) => match self.data_rx.receive(&d.data) {
                Ok(Some(incoming)) => self.handle_incoming(incoming, now),
                Ok(None) => {}
                Err(e) => self.emit(PublisherEvent::Error(format!("bad data packet: {e}"))),
            },
            (PcKind::Publisher, Event::KeyframeRequest(k)) => {
                if let Some(t) = self.tracks.iter().find(|t| t.mid == Some(k.mid)) {
                    let track = t.cid.clone();
                    let layer = k.rid.and_then(|r| VideoQuality::from_rid(&r));
                    let _ = matches!(k.kind, KeyframeRequestKind::Pli | KeyframeRequestKind::Fir);
                    self.emit(PublisherEvent::KeyframeRequested { track, layer });
                }
            }
            (PcKind::Publisher, Event::EgressBitrateEstimate(b)) => {
                let est = match b {
                    str0m::bwe::BweKind::Twcc { estimate, .. } => estimate,
                    str0m::bwe::BweKind::Remb { estimate, .. } => estimate,
                    _ => return,
                };
                let est = Bitrate(est.as_u64());
                self.bwe = Some(est);
                if target_bitrate_moved(self.bwe_emitted, est) {
                    self.bwe_emitted = Some(est);
                    self.emit(PublisherEvent::TargetBitrate(est));
                }
            }
            (PcKind::Subscriber, Event::MediaData(d)) => {
                if let Some(m) = self.subs.media(&d) {
                    self.out.push_back(CoreOutput::Media(m));
                }
            }
            (PcKind::Subscriber, Event::MediaIngressStats(s)) => self.subs.ingress(&s),
            (PcKind::Publisher, Event::PeerStats(s)) => {
                self.peer_rtt = s.rtt.or(self.peer_rtt);
                self.pub_pair = selected_pair(&s);
            }
            (PcKind::Subscriber, Event::PeerStats(s)) => self.sub_pair = selected_pair(&s),
            (PcKind::Publisher, Event::MediaEgressStats(s)) => {
                let acc = self.egress.entry((s.mid, s.rid)).or_default();
                acc.bytes = s.bytes;
                acc.packets = s.packets;
                acc.nacks = s.nacks;
                acc.plis = s.plis;
                acc.firs = s.firs;
                acc.loss = s.loss;
                acc.rtt = s.rtt;
                if let Some(prev) = acc.prev_at {
                    let dt = s.timestamp.saturating_duration_since(prev).as_secs_f64();
                    if dt > 0.0 {
                        acc.bitrate = Bitrate(
                            (acc.bytes.saturating_sub(acc.prev_bytes) as f64 * 8.0 / dt) as u64,
                        );
                    }
                }
                acc.prev_at = Some(s.timestamp);
                acc.prev_bytes = acc.bytes;
            }
            _ => {}
        }
        let _ = now;
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
}
