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
//! and stats) and `resume` (resume, rejoin and leaving); `liveness` holds the
//! media-feedback watchdog, `recovery` the estimate's rapid recovery, which the
//! core consults on each timeout, `overload` the cut to what gets through when a cap falls
//! far below what we send, and `resend` how video streams answer NACKs. This file keeps the
//! state itself, the entry points for datagrams and time, and the loop that
//! drains both peer connections (`drive`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use livekit_protocol as proto;
use proto::signal_request::Message as Req;
use str0m::change::SdpPendingOffer;
use str0m::channel::ChannelId;
use str0m::media::{MediaKind, Mid, Pt, Rid};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

use crate::chat::DataReceiver;
use crate::rtp_counters::RtpCounters;
use crate::subscribe::Subscriptions;
use crate::types::*;

mod bandwidth;
mod data;
mod liveness;
mod overload;
mod publisher;
mod recovery;
mod resend;
mod resume;
mod send_queue;
mod signal;
mod subscriber;
mod tracks;
mod vp8;

pub use liveness::{FEEDBACK_SILENCE, PING_AFTER};
pub use resume::Backoff;
pub use send_queue::SEND_QUEUE_BOUND;
pub use signal::{candidate_init_json, parse_candidate_init};

use bandwidth::{selected_pair, to_str0m_bitrate};
use vp8::Vp8Sender;

/// Label of the ordered, reliable data channel.
pub const RELIABLE_LABEL: &str = "_reliable";
/// Label of the unordered, no-retransmit data channel.
pub const LOSSY_LABEL: &str = "_lossy";
/// How long the server has to accept an AddTrackRequest.
pub const TRACK_PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the core emits a [`StatsSnapshot`].
pub const STATS_INTERVAL: Duration = Duration::from_secs(1);
/// How often str0m reports its stats to the core: a receiver report reaches the overload
/// guard within this.
const RTC_STATS_INTERVAL: Duration = Duration::from_millis(250);
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

/// Why the core wants the driver to recover ([`Participant::take_reconnect_request`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LossNotice {
    /// What was noticed.
    pub cause: LossCause,
    /// In words.
    pub detail: String,
    /// [`LossCause::ServerSilent`]: how long the publisher transport had been silent.
    pub silent_for: Option<Duration>,
}

impl LossNotice {
    /// A notice without a silence figure.
    pub fn new(cause: LossCause, detail: impl Into<String>) -> Self {
        Self {
            cause,
            detail: detail.into(),
            silent_for: None,
        }
    }
}

/// How long after a resume the subscriber transport's ICE restart (the server
/// offers it) may take before its `Disconnected` counts again.
pub const SUBSCRIBER_RESTART_GRACE: Duration = Duration::from_secs(10);

/// Static settings of the core.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Local UDP address of the publisher socket (announced as host candidate).
    pub publisher_addr: SocketAddr,
    /// Local UDP address of the subscriber socket.
    pub subscriber_addr: SocketAddr,
    /// Bandwidth estimate to start from.
    pub initial_bitrate: Bitrate,
    /// Which candidates both PCs offer (UDP host, active TCP host, relayed).
    pub ice_transport: IceTransport,
    /// TURN allocations the driver made for either PC, announced as relayed
    /// candidates (with [`IceTransport::Relay`], the only ones).
    pub relays: Vec<crate::turn::RelayCandidate>,
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
    /// Audio only: the RED payload type the answer pairs with Opus (RFC 2198).
    red: Option<Pt>,
    muted: bool,
    layers: Vec<LayerSpec>,
    /// Layers someone watches; `None` until the server says (send all).
    wanted: Option<HashSet<VideoQuality>>,
    /// Start of the track's media clock, to detect non-monotonic input.
    last_timestamp: Option<Duration>,
    /// VP8 only: our own RTP packetization state per layer (see [`Vp8Sender`]).
    vp8: HashMap<Option<Rid>, Vp8Sender>,
    /// Layers whose send stream has our resend policy (see `resend`).
    resend_set: HashSet<Option<Rid>>,
}

/// The publisher's ICE restart during a resume: the offer is out, the server answered
/// (str0m restarts ICE only if the answer's credentials changed), or ICE is checking
/// pairs with the new credentials. Done (`None`) once it is connected again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PubRestart {
    Offered,
    /// When the answer was applied (from then on ICE uses the new credentials).
    Answered(Instant),
    Checking(Instant),
}

/// A resume's wait for the server's ICE restart of the subscriber transport.
#[derive(Debug, Clone, Copy)]
struct SubscriberRestart {
    /// Grace ends (the restart did not come or did not complete).
    until: Instant,
    /// The server's restart offer (new ICE credentials) was accepted.
    offered: bool,
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
    egress: HashMap<(Mid, Option<Rid>), RtpCounters>,
    bwe: Option<Bitrate>,
    /// Last estimate announced as [`PublisherEvent::TargetBitrate`].
    bwe_emitted: Option<Bitrate>,
    /// Desired bitrate last handed to str0m's BWE (it probes up towards it).
    bwe_desired: Option<Bitrate>,
    /// Asks str0m for a probe while the estimate sits far below `bwe_desired`.
    recovery: recovery::RecoveryProber,
    /// Holds the encoders at what gets through while the receiver's reports say the link
    /// loses most of what we send (see `overload`).
    overload: overload::OverloadGuard<(Mid, Option<Rid>)>,
    /// Repeats the key frame a second after the target fell sharply.
    cut_key: overload::CutKeyFrame,
    peer_rtt: Option<Duration>,
    quality: Option<ConnectionQuality>,
    frames_sent: u64,
    frames_dropped: u64,
    /// The longest a video packet waited in the pacer since the last stats.
    send_queue_peak: Option<Duration>,
    /// Dropped video frames per (track, RID).
    dropped_by_layer: HashMap<(TrackCid, Option<String>), u64>,
    /// Video layers that lost frames before the core saw them (queue overflow, or
    /// no transport, e.g. during a resume's ICE restart): their next frames would
    /// reference pictures receivers never got (with contiguous RTP, so receivers
    /// cannot tell), so they wait for a key frame. Value: when one was last asked for.
    awaiting_key: HashMap<(TrackCid, Option<VideoQuality>), Option<Instant>>,
    audio_sent: u64,
    cid_counter: u32,
    reconnect_requested: Option<LossNotice>,
    /// The media-feedback watchdog (see `liveness`).
    watch: liveness::FeedbackWatch,
    /// After a resume, until the server's ICE restart of the subscriber transport
    /// completed: its `Disconnected` (the old ICE session dying) is no loss.
    /// `until`: when that grace ends.
    sub_restart: Option<SubscriberRestart>,
    /// ICE credentials of the server's last subscriber offer.
    sub_remote_ufrag: Option<String>,
    /// The subscriber transport's last ICE state.
    sub_ice: Option<IceConnectionState>,
    /// Where the publisher's ICE restart of a resume is (see [`PubRestart`]).
    pub_restart: Option<PubRestart>,
    /// The server closed an ICE-TCP connection of the publisher's restart after answering
    /// it: under load LiveKit sometimes answers a restart without its TCP candidate and
    /// then refuses every connection for those credentials, so the resume tries again.
    restart_refused: bool,
    /// The last recovery the driver reported.
    last_recovery: Option<Recovery>,
    last_sub_answer: Option<proto::SessionDescription>,
    /// Receive side: remote tracks on the subscriber PC.
    subs: Subscriptions,
    resumes: u32,
    rejoins: u32,
    /// Egress bytes of the transports before the last rejoin.
    bytes_before_rejoin: u64,
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
            recovery: Default::default(),
            overload: Default::default(),
            cut_key: Default::default(),
            peer_rtt: None,
            quality: None,
            frames_sent: 0,
            send_queue_peak: None,
            frames_dropped: 0,
            dropped_by_layer: HashMap::new(),
            awaiting_key: HashMap::new(),
            audio_sent: 0,
            cid_counter: 0,
            reconnect_requested: None,
            watch: Default::default(),
            sub_restart: None,
            sub_remote_ufrag: None,
            sub_ice: None,
            pub_restart: None,
            restart_refused: false,
            last_recovery: None,
            last_sub_answer: None,
            subs: Subscriptions::default(),
            resumes: 0,
            rejoins: 0,
            bytes_before_rejoin: 0,
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

    /// Whether the publisher transport carries media again after a resume: connected,
    /// and its ICE restart (if the resume made one) has found a working pair with the new
    /// credentials. Until the server's answer arrives str0m still runs the old ICE
    /// session, whose "connected" says nothing about the new one: a resume declared then
    /// met the server resetting its old ICE-TCP connection a few ms later, as a second
    /// loss.
    pub fn is_publisher_restarted(&self) -> bool {
        self.is_connected() && matches!(self.pub_restart, None | Some(PubRestart::Answered(_)))
    }

    /// Whether the server closed an ICE-TCP connection of the publisher's ICE restart
    /// after it answered the restart (see `restart_refused`): this resume will not work.
    pub fn is_restart_refused(&self) -> bool {
        self.restart_refused
    }

    /// Whether the subscriber transport (viewers' chat and data) is connected, or
    /// the server has not offered one.
    pub fn is_subscriber_connected(&self) -> bool {
        self.subscriber.as_ref().is_none_or(|r| r.is_connected())
    }

    /// The candidates `pc` offers: host UDP / active TCP as the transport allows,
    /// then the TURN relayed addresses allocated for it (lowest priority, so
    /// ICE uses them only when nothing direct works).
    fn local_candidates(&self, pc: PcKind) -> Vec<str0m::Candidate> {
        let udp = match pc {
            PcKind::Publisher => self.cfg.publisher_addr,
            PcKind::Subscriber => self.cfg.subscriber_addr,
        };
        let mut out = crate::tcp::local_candidates(self.cfg.ice_transport, udp);
        for r in self.cfg.relays.iter().filter(|r| r.pc == pc) {
            match str0m::Candidate::relayed(r.relayed, r.local, "udp") {
                Ok(c) => out.push(c),
                Err(e) => tracing::warn!("relayed candidate {}: {e}", r.relayed),
            }
        }
        out
    }

    fn new_rtc(&self, now: Instant) -> Rtc {
        // LiveKit forwards only the payload type its answer lists first and drops
        // packets of any other ("payload mismatch"), so offer exactly one H.264
        // flavour: constrained baseline, packetization-mode 1. Opus is offered with
        // RED (RFC 2198, one level), as libwebrtc and LiveKit's SDKs offer it; LiveKit
        // puts it first in its answer unless the track disables it, and gives
        // subscribers without RED the primary, repaired from the redundancy. Once
        // negotiated it stays on, as libwebrtc keeps it: plain Opus sent on the same
        // track after RED reached a viewer as 91 % concealed audio.
        let mut cfg = Rtc::builder()
            .clear_codecs()
            .enable_vp8(true)
            .enable_opus(true, true)
            .enable_bwe(Some(to_str0m_bitrate(self.cfg.initial_bitrate)))
            .set_stats_interval(Some(RTC_STATS_INTERVAL));
        cfg.codec_config()
            .add_h264(108.into(), Some(109.into()), true, 0x42e01f);
        // STUN retransmits capped at 1 s instead of 3 s: a dead media path is
        // noticed after ~8.5 s instead of ~21.5 s, well before the server gives
        // up on the session (so a resume can still save it).
        cfg.set_max_stun_rto(ICE_MAX_STUN_RTO);
        cfg.build(now)
    }

    fn set_state(&mut self, s: ConnectionState) {
        if matches!(s, ConnectionState::Connected) {
            if !matches!(self.state, ConnectionState::Connected) {
                self.watch.arm();
            }
        } else {
            self.watch.disarm();
        }
        if self.state != s {
            self.state = s.clone();
            self.out
                .push_back(CoreOutput::Event(PublisherEvent::StateChanged(s)));
        }
    }

    fn emit(&mut self, e: PublisherEvent) {
        self.out.push_back(CoreOutput::Event(e));
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
    pub fn tcp_closed(&mut self, pc: PcKind, remote: SocketAddr, opened: Instant) {
        let pair = match pc {
            PcKind::Publisher => self.pub_pair,
            PcKind::Subscriber => self.sub_pair,
        };
        // Only a connection made for the new credentials says the restart was refused:
        // the old session's, made before the answer, are closed by the server anyway.
        if pc == PcKind::Publisher
            && matches!(
                self.pub_restart,
                Some(PubRestart::Answered(at) | PubRestart::Checking(at)) if opened >= at
            )
        {
            self.restart_refused = true;
        }
        if pair == Some((TransportProtocol::Tcp, remote))
            && matches!(self.state, ConnectionState::Connected)
        {
            self.reconnect_requested = Some(LossNotice::new(
                LossCause::TransportLost(pc),
                format!("{pc:?} ICE-TCP connection closed"),
            ));
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
        {
            if pc == PcKind::Publisher {
                self.watch.feedback(now);
            }
            if let Err(e) = rtc.handle_input(input) {
                self.emit(PublisherEvent::Error(format!("{pc:?} input: {e}")));
            }
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
        self.check_liveness(now);
        if self.cut_key.take(now) {
            tracing::debug!("key frames a second after a sharp cut");
            self.request_keyframes();
        }
        self.drive(now);
    }

    /// The media-feedback watchdog's verdict (see `liveness`), and the end of a
    /// resume's grace for the subscriber transport.
    fn check_liveness(&mut self, now: Instant) {
        match self.watch.poll(now) {
            liveness::Verdict::Fine => {}
            liveness::Verdict::Ping => {
                // The driver stamps it with the wall clock.
                self.out
                    .push_back(CoreOutput::Signal(Req::PingReq(proto::Ping::default())));
            }
            liveness::Verdict::Lost { silent_for } => {
                if matches!(self.state, ConnectionState::Connected) {
                    self.reconnect_requested = Some(LossNotice {
                        cause: LossCause::ServerSilent,
                        detail: format!(
                            "no media feedback for {} ms while sending, no answer on the signal connection",
                            silent_for.as_millis()
                        ),
                        silent_for: Some(silent_for),
                    });
                }
            }
        }
        if let Some(r) = self.sub_restart
            && now >= r.until
        {
            self.sub_restart = None;
            if self.sub_ice == Some(IceConnectionState::Disconnected)
                && matches!(self.state, ConnectionState::Connected)
            {
                self.reconnect_requested = Some(LossNotice::new(
                    LossCause::TransportLost(PcKind::Subscriber),
                    "subscriber transport disconnected (no ICE restart from the server)",
                ));
            }
        }
    }

    /// When [`Participant::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers().into_iter().filter_map(|(_, t)| t).min()
    }

    /// Each part's next wake-up, named (what [`Participant::poll_timeout`] takes the
    /// earliest of; tests name the part whose time did not move).
    pub(crate) fn timers(&self) -> [(&'static str, Option<Instant>); 9] {
        let chat = self.pending_chats.iter().map(|c| c.until).min();
        [
            ("publisher pc", self.pub_timeout),
            ("subscriber pc", self.sub_timeout),
            ("stats", self.next_stats),
            ("keyframe requests", self.subs.next_keyframe_request()),
            ("chat", chat),
            ("liveness", self.watch.next_check()),
            ("subscriber restart", self.sub_restart.map(|r| r.until)),
            ("bandwidth recovery", self.recovery.next_check()),
            ("key frame after a cut", self.cut_key.next()),
        ]
    }

    /// Next thing to do.
    pub fn poll_output(&mut self) -> Option<CoreOutput> {
        self.out.pop_front()
    }

    /// Drain both peer connections until they only wait for time.
    fn drive(&mut self, now: Instant) {
        self.apply_desired_bitrate(now);
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
                self.request_keyframes();
            }
            (PcKind::Publisher, Event::IceConnectionStateChange(state))
                if state != IceConnectionState::Disconnected =>
            {
                self.pub_restart = match (self.pub_restart, state) {
                    (Some(PubRestart::Answered(at)), IceConnectionState::Checking) => {
                        Some(PubRestart::Checking(at))
                    }
                    (
                        Some(PubRestart::Checking(_)),
                        IceConnectionState::Connected | IceConnectionState::Completed,
                    ) => None,
                    (r, _) => r,
                };
            }
            (
                PcKind::Publisher,
                Event::IceConnectionStateChange(IceConnectionState::Disconnected),
            ) => {
                if matches!(self.state, ConnectionState::Connected) {
                    self.reconnect_requested = Some(LossNotice::new(
                        LossCause::TransportLost(PcKind::Publisher),
                        "publisher transport disconnected",
                    ));
                }
            }
            // Chat and data from viewers arrive on the subscriber transport; only a
            // resume makes the server (its offerer) restart its ICE. Right after a
            // resume its old ICE session may still die before the server's
            // restart offer arrives: that is no new loss (see `sub_restart`).
            (PcKind::Subscriber, Event::IceConnectionStateChange(state)) => {
                self.sub_ice = Some(state);
                match state {
                    IceConnectionState::Disconnected => {
                        if self.sub_restart.is_some_and(|r| now < r.until) {
                            tracing::debug!(
                                "subscriber ICE disconnected while its restart is pending: ignored"
                            );
                        } else if matches!(self.state, ConnectionState::Connected) {
                            self.reconnect_requested = Some(LossNotice::new(
                                LossCause::TransportLost(PcKind::Subscriber),
                                "subscriber transport disconnected",
                            ));
                        }
                    }
                    IceConnectionState::Connected | IceConnectionState::Completed
                        if self.sub_restart.is_some_and(|r| r.offered) =>
                    {
                        self.sub_restart = None;
                    }
                    _ => {}
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
                tracing::debug!(mid = %k.mid, rid = ?k.rid, kind = ?k.kind, "key frame requested");
                if let Some(t) = self.tracks.iter().find(|t| t.mid == Some(k.mid)) {
                    let track = t.cid.clone();
                    let layer = k.rid.and_then(|r| VideoQuality::from_rid(&r));
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
                tracing::trace!(estimate_bps = est.0, "str0m's estimate");
                self.bwe = Some(est);
                self.recovery.on_estimate(now, est);
                if self.overload.on_estimate(now, est) {
                    tracing::debug!(
                        estimate_bps = est.0,
                        "str0m's estimate came down: the overload ceiling ends"
                    );
                }
                self.pass_carried(now);
                self.emit_target(now);
            }
            (PcKind::Subscriber, Event::MediaData(d)) => {
                if let Some(m) = self.subs.media(&d) {
                    self.out.push_back(CoreOutput::Media(m));
                }
            }
            (PcKind::Subscriber, Event::MediaIngressStats(s)) => self.subs.ingress(&s),
            (PcKind::Publisher, Event::PeerStats(s)) => {
                self.overload.on_twcc_loss(now, s.egress_loss_fraction);
                self.peer_rtt = s.rtt.or(self.peer_rtt);
                self.pub_pair = selected_pair(&s, &self.cfg.relays);
            }
            (PcKind::Subscriber, Event::PeerStats(s)) => {
                self.sub_pair = selected_pair(&s, &self.cfg.relays)
            }
            (PcKind::Publisher, Event::MediaEgressStats(s)) => {
                self.egress
                    .entry((s.mid, s.rid))
                    .or_default()
                    .update_from_egress(&s);
                self.check_overload(&s, now);
            }
            _ => {}
        }
    }
}
