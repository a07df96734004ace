//! Public value types of the publishing engine.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// A bitrate in bits per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Bitrate(pub u64);

impl Bitrate {
    /// Bits per second.
    pub fn bps(self) -> u64 {
        self.0
    }
    /// From kilobits per second.
    pub fn from_kbps(kbps: u64) -> Self {
        Self(kbps * 1000)
    }
}

impl fmt::Display for Bitrate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.0} kbit/s", self.0 as f64 / 1000.0)
    }
}

macro_rules! string_id {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub String);
        impl $name {
            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_string())
            }
        }
        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }
    };
}

string_id!(
    /// The server-assigned sid of a published track (`TR_…`).
    TrackSid
);
string_id!(
    /// The client id of a local track (the msid track id in the SDP).
    TrackCid
);
string_id!(
    /// A participant's identity (from its token).
    ParticipantIdentity
);

/// Video codecs the publisher can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// H.264 constrained baseline, packetization-mode 1. Frames are Annex-B access units.
    H264,
    /// VP8. Frames are complete VP8 frames.
    Vp8,
}

impl VideoCodec {
    /// The codec name LiveKit uses (`video/h264`).
    pub fn mime(self) -> &'static str {
        match self {
            VideoCodec::H264 => "video/h264",
            VideoCodec::Vp8 => "video/vp8",
        }
    }
    /// The short name reports and the CLI use (`h264`, `vp8`).
    pub fn name(self) -> &'static str {
        match self {
            VideoCodec::H264 => "h264",
            VideoCodec::Vp8 => "vp8",
        }
    }
}

/// A simulcast layer. RIDs `q`/`h`/`f` are LOW/MEDIUM/HIGH.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VideoQuality {
    /// `q`, quarter resolution.
    Low,
    /// `h`, half resolution.
    Medium,
    /// `f`, full resolution.
    High,
}

impl VideoQuality {
    /// The RTP stream id (`q`, `h`, `f`).
    pub fn rid(self) -> &'static str {
        match self {
            VideoQuality::Low => "q",
            VideoQuality::Medium => "h",
            VideoQuality::High => "f",
        }
    }
    /// From a RID.
    pub fn from_rid(rid: &str) -> Option<Self> {
        match rid {
            "q" => Some(VideoQuality::Low),
            "h" => Some(VideoQuality::Medium),
            "f" => Some(VideoQuality::High),
            _ => None,
        }
    }
    /// The protobuf enum value (`livekit.VideoQuality`).
    pub fn to_proto(self) -> livekit_protocol::VideoQuality {
        match self {
            VideoQuality::Low => livekit_protocol::VideoQuality::Low,
            VideoQuality::Medium => livekit_protocol::VideoQuality::Medium,
            VideoQuality::High => livekit_protocol::VideoQuality::High,
        }
    }
    /// From the protobuf enum value.
    pub fn from_proto(q: i32) -> Option<Self> {
        match livekit_protocol::VideoQuality::try_from(q).ok()? {
            livekit_protocol::VideoQuality::Low => Some(VideoQuality::Low),
            livekit_protocol::VideoQuality::Medium => Some(VideoQuality::Medium),
            livekit_protocol::VideoQuality::High => Some(VideoQuality::High),
            livekit_protocol::VideoQuality::Off => None,
        }
    }
}

/// One announced simulcast layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerSpec {
    /// Which layer.
    pub quality: VideoQuality,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Intended bitrate.
    pub bitrate: Bitrate,
}

/// What to publish as video.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoTrackOptions {
    /// Track name shown to viewers.
    pub name: String,
    /// Codec of the frames that will be sent.
    pub codec: VideoCodec,
    /// Full resolution width.
    pub width: u32,
    /// Full resolution height.
    pub height: u32,
    /// Frames per second (informational).
    pub fps: u32,
    /// Simulcast layers, low to high. Empty: a single stream.
    pub simulcast: Vec<LayerSpec>,
    /// Track source: camera (true) or screen share (false).
    pub camera: bool,
}

impl VideoTrackOptions {
    /// A single-layer camera track.
    pub fn new(codec: VideoCodec, width: u32, height: u32, fps: u32) -> Self {
        Self {
            name: "camera".into(),
            codec,
            width,
            height,
            fps,
            simulcast: Vec::new(),
            camera: true,
        }
    }

    /// Three layers at full, half and quarter resolution (`f`, `h`, `q`).
    pub fn with_default_simulcast(mut self, high: Bitrate) -> Self {
        let (w, h) = (self.width, self.height);
        self.simulcast = vec![
            LayerSpec {
                quality: VideoQuality::Low,
                width: w / 4,
                height: h / 4,
                bitrate: Bitrate(high.0 / 10),
            },
            LayerSpec {
                quality: VideoQuality::Medium,
                width: w / 2,
                height: h / 2,
                bitrate: Bitrate(high.0 / 3),
            },
            LayerSpec {
                quality: VideoQuality::High,
                width: w,
                height: h,
                bitrate: high,
            },
        ];
        self
    }
}

/// What to publish as audio (always Opus 48 kHz).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioTrackOptions {
    /// Track name shown to viewers.
    pub name: String,
    /// Stereo Opus.
    pub stereo: bool,
}

impl Default for AudioTrackOptions {
    fn default() -> Self {
        Self {
            name: "microphone".into(),
            stereo: false,
        }
    }
}

/// One encoded video frame.
#[derive(Debug, Clone)]
pub struct EncodedVideo {
    /// The simulcast layer, `None` for a single-stream track.
    pub layer: Option<VideoQuality>,
    /// H.264 Annex-B access unit or VP8 frame.
    pub data: Bytes,
    /// Whether this frame is a key frame.
    pub keyframe: bool,
    /// Presentation time on the media clock shared with audio.
    pub timestamp: Duration,
}

/// One encoded Opus packet.
#[derive(Debug, Clone)]
pub struct EncodedAudio {
    /// The Opus packet.
    pub data: Bytes,
    /// Presentation time on the media clock shared with video.
    pub timestamp: Duration,
}

/// How a data packet is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reliability {
    /// Ordered and retransmitted (`_reliable`).
    Reliable,
    /// Unordered, no retransmissions (`_lossy`).
    Lossy,
}

/// Which peer connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PcKind {
    /// Client → server media and data; the client offers.
    Publisher,
    /// Server → client data; the server offers.
    Subscriber,
}

/// Connection state as shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionState {
    /// Joining the room.
    Connecting,
    /// The publisher transport is up.
    Connected,
    /// Recovering: attempt `attempt` of `max`.
    Reconnecting {
        /// 1-based attempt number.
        attempt: u32,
        /// Attempts allowed.
        max: u32,
    },
    /// Left (on request or by the server).
    Disconnected {
        /// Why.
        reason: String,
    },
    /// Gave up.
    Failed {
        /// What went wrong.
        error: String,
    },
}

/// Why the engine began to recover (see [`Recovery`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossCause {
    /// The signal connection closed, failed or stopped answering its pings.
    SignalLost,
    /// The server went silent: no media feedback (RTCP, TWCC, STUN) on the
    /// publisher transport for ~2 s while media went out, and no answer to a
    /// ping on the signal connection either (a frozen or vanished server).
    ServerSilent,
    /// A peer connection's transport was lost (ICE disconnected, or its ICE-TCP
    /// connection closed) while the signal connection was fine.
    TransportLost(PcKind),
    /// The server asked for it (a `LeaveRequest` with a resume/reconnect action).
    ServerRequest,
}

/// Why a recovery joined again in full instead of resuming the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejoinReason {
    /// The server refused the resume: it no longer has the session (it
    /// restarted, or a node failed). The rejoin follows at once.
    ResumeRefused,
    /// Too long since the loss for the server to still hold the session.
    ResumeWindowPassed,
}

/// Where a recovery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryOutcome {
    /// Still trying.
    InProgress,
    /// The same session again (same participant, tracks kept).
    Resumed,
    /// A new session, every track published again.
    Rejoined(RejoinReason),
    /// Out of attempts ([`ConnectionState::Failed`]).
    GaveUp,
}

/// One recovery, as a health display shows it: what was noticed and when, how
/// long the server was away, how it ended. Sent as [`PublisherEvent::Recovery`]
/// when it starts and when it ends; the last one is in [`StatsSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// What was noticed.
    pub cause: LossCause,
    /// The same in words (e.g. the signal client's close reason).
    pub detail: String,
    /// Wall-clock time the loss was noticed.
    pub detected_at: std::time::SystemTime,
    /// [`LossCause::ServerSilent`]: how long the publisher transport had been
    /// silent when the loss was declared (the detection delay).
    pub silent_for: Option<Duration>,
    /// Attempts made so far (each backoff slot counts one, also when the server
    /// was still unreachable then).
    pub attempts: u32,
    /// Since the loss: when the server answered again after it had been found
    /// unreachable (refused connections, or no answer to a probe). `None` if it
    /// never was unreachable, or has not answered yet.
    pub server_back_after: Option<Duration>,
    /// How it ended so far.
    pub outcome: RecoveryOutcome,
    /// From the loss to connected again (or to giving up).
    pub took: Option<Duration>,
}

/// Per-layer egress figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LayerStats {
    /// Track client id.
    pub track: TrackCid,
    /// Layer RID, if simulcast.
    pub rid: Option<String>,
    /// Bytes sent so far.
    pub bytes: u64,
    /// Packets sent so far.
    pub packets: u64,
    /// Bitrate over the last interval.
    pub bitrate: Bitrate,
    /// NACKs received.
    pub nacks: u64,
    /// PLIs received.
    pub plis: u64,
    /// FIRs received.
    pub firs: u64,
    /// Remote-reported loss fraction (0..1).
    pub loss: Option<f32>,
    /// Round trip time.
    pub rtt: Option<Duration>,
    /// Packets the receiver (the SFU) still counts lost: its RTCP cumulative lost, which
    /// a repair by RTX takes back. `None` before its first receiver report.
    pub lost: Option<u64>,
    /// Video frames of this layer dropped before sending (its queue overflowed,
    /// or no transport); muted or paused layers are not counted.
    pub frames_dropped: u64,
}

/// A health snapshot, emitted at least once a second while connected.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatsSnapshot {
    /// Egress per track and layer.
    pub layers: Vec<LayerStats>,
    /// Total egress bitrate (all layers).
    pub egress_bitrate: Bitrate,
    /// Media payload bytes sent over every transport of this session: a rejoin starts
    /// new peer connections whose counters (`layers`) start at zero, this does not.
    pub bytes_sent_total: u64,
    /// Transport bandwidth estimate (target bitrate for encoders).
    pub bandwidth_estimate: Option<Bitrate>,
    /// Round trip time (best known).
    pub rtt: Option<Duration>,
    /// Video frames accepted for sending.
    pub frames_sent: u64,
    /// Video frames dropped, all layers (queue overflow or no transport; muted or
    /// paused layers are not counted).
    pub frames_dropped: u64,
    /// Audio packets sent.
    pub audio_packets_sent: u64,
    /// Opus goes out with RED (negotiated for the audio track).
    pub audio_redundancy: bool,
    /// Connection quality the server reports for this participant.
    pub connection_quality: Option<ConnectionQuality>,
    /// Recoveries that resumed the same session (same participant sid, tracks kept).
    pub resumes: u32,
    /// Recoveries that had to join again and republish every track.
    pub rejoins: u32,
    /// Ingress per subscribed track (empty unless [`PublishOptions::subscribe`](crate::PublishOptions)).
    pub receive: Vec<ReceiveStats>,
    /// Video frames received on subscribed tracks and handed to the media channel.
    pub frames_received: u64,
    /// Received video frames dropped: the media channel was full, or the frame
    /// followed such a drop and could not be decoded before the next key frame.
    pub frames_dropped_rx: u64,
    /// Opus packets received and handed to the media channel.
    pub audio_packets_received: u64,
    /// Transport of the publisher PC's selected ICE pair (`None` before ICE
    /// selected one): what a health display shows as "UDP"/"TCP".
    pub transport: Option<TransportProtocol>,
    /// Transport of the subscriber PC's selected ICE pair.
    pub subscriber_transport: Option<TransportProtocol>,
    /// UDP datagrams the driver sent (both PCs, STUN included).
    pub udp_datagrams_sent: u64,
    /// RFC 4571 frames the driver sent over ICE-TCP connections (both PCs).
    pub tcp_frames_sent: u64,
    /// Packets the driver sent through TURN allocations (both PCs).
    pub relay_packets_sent: u64,
    /// Of those, the ones framed as ChannelData (a 4-byte header) rather than as Send
    /// indications (36 bytes): once a channel is bound, all of them should be.
    pub relay_channel_data_sent: u64,
    /// The last recovery (resume or rejoin), under way or done.
    pub last_recovery: Option<Recovery>,
    /// How long the server has sent nothing back on the publisher transport while we
    /// kept sending media (`None`: not sending, or not connected). TWCC feedback comes
    /// every ~100 ms, so a second of silence is a connection going bad, before the
    /// liveness watchdog calls it lost.
    pub feedback_silence: Option<std::time::Duration>,
    /// The longest a video packet waited in the pacer since the last snapshot (see
    /// [`SEND_QUEUE_BOUND`](crate::SEND_QUEUE_BOUND)); `None` when not sampled.
    pub send_queue_delay: Option<std::time::Duration>,
}

/// Which transports ICE may use ([`PublishOptions::ice_transport`](crate::PublishOptions)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IceTransport {
    /// UDP and TCP candidates; ICE prefers UDP (higher priority) and falls back
    /// to TCP when UDP is blocked.
    #[default]
    All,
    /// UDP only (no TCP candidate is offered).
    UdpOnly,
    /// TCP only (no UDP candidate): for networks known to block UDP, and to
    /// test the TCP path.
    TcpOnly,
    /// Only relayed candidates through the TURN servers the JoinResponse offers
    /// (LiveKit's `turn.enabled`), over TURN/UDP or TURN/TLS: for networks that
    /// block UDP and LiveKit's TCP port, and to test the relay.
    Relay,
}

/// How we reach a TURN server (its relayed leg to the SFU is always UDP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RelayProtocol {
    /// TURN over UDP (`turn:…?transport=udp`).
    Udp,
    /// TURN over plain TCP (`turn:…?transport=tcp`, RFC 6062 framing).
    Tcp,
    /// TURN over TLS (`turns:…`): passes firewalls that allow only HTTPS.
    Tls,
}

impl RelayProtocol {
    /// `udp`, `tcp` or `tls`.
    pub fn name(self) -> &'static str {
        match self {
            RelayProtocol::Udp => "udp",
            RelayProtocol::Tcp => "tcp",
            RelayProtocol::Tls => "tls",
        }
    }
}

/// The transport protocol of a selected ICE candidate pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportProtocol {
    /// Plain UDP.
    Udp,
    /// ICE-TCP (RFC 6544, RFC 4571 framing) to the server's passive candidate.
    Tcp,
    /// A TURN relayed candidate, reached over this protocol.
    Relay(RelayProtocol),
}

impl TransportProtocol {
    /// The name reports and the health bar show (`udp`, `tcp`, `relay/udp`,
    /// `relay/tcp`, `relay/tls`).
    pub fn name(self) -> &'static str {
        match self {
            TransportProtocol::Udp => "udp",
            TransportProtocol::Tcp => "tcp",
            TransportProtocol::Relay(RelayProtocol::Udp) => "relay/udp",
            TransportProtocol::Relay(RelayProtocol::Tcp) => "relay/tcp",
            TransportProtocol::Relay(RelayProtocol::Tls) => "relay/tls",
        }
    }
}

/// Per-track ingress figures of a subscribed track.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReceiveStats {
    /// Who publishes it.
    pub participant: ParticipantIdentity,
    /// The remote track.
    pub track: TrackSid,
    /// Audio or video.
    pub kind: TrackKind,
    /// Bytes received so far (RTP, retransmissions included).
    pub bytes: u64,
    /// RTP packets received so far.
    pub packets: u64,
    /// Bitrate over the last interval.
    pub bitrate: Bitrate,
    /// Packets never recovered (gaps in the sequence numbers of delivered frames).
    pub packets_lost: u64,
    /// Loss fraction (0..1) of our last receiver report.
    pub loss: Option<f32>,
    /// Video frames / audio packets handed to the media channel.
    pub frames_received: u64,
    /// Frames dropped (media channel full, or waiting for a key frame after a drop).
    pub frames_dropped: u64,
    /// NACKs we sent.
    pub nacks: u64,
    /// PLIs we sent.
    pub plis: u64,
    /// FIRs we sent.
    pub firs: u64,
}

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TrackKind {
    /// An audio track (Opus).
    #[default]
    Audio,
    /// A video track.
    Video,
}

/// A remote participant's track this participant receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteTrack {
    /// Who publishes it.
    pub participant: ParticipantIdentity,
    /// The server's track id.
    pub sid: TrackSid,
    /// The publisher's track name.
    pub name: String,
    /// Audio or video.
    pub kind: TrackKind,
    /// Video codec; `None` for audio or a video codec this crate does not know.
    pub codec: Option<VideoCodec>,
    /// The codec's MIME type as announced (`video/h264`, `audio/opus`; `audio/red` for
    /// Opus sent with RED, which str0m unwraps on receive).
    pub mime: String,
    /// Full-resolution size, if the publisher announced it.
    pub dimensions: Option<(u32, u32)>,
    /// Simulcast layers announced by the publisher (empty: a single stream).
    pub layers: Vec<LayerSpec>,
    /// Muted by its publisher.
    pub muted: bool,
}

/// One depacketized frame of a subscribed track, from
/// [`PublisherHandle::take_media`](crate::PublisherHandle::take_media).
#[derive(Debug, Clone)]
pub enum ReceivedMedia {
    /// A video frame.
    Video(ReceivedVideo),
    /// An Opus packet.
    Audio(ReceivedAudio),
}

/// One received video frame.
#[derive(Debug, Clone)]
pub struct ReceivedVideo {
    /// The remote track.
    pub track: TrackSid,
    /// Who publishes it.
    pub participant: ParticipantIdentity,
    /// Codec of `data`.
    pub codec: VideoCodec,
    /// H.264: one Annex-B access unit (start codes included). VP8: one frame.
    pub data: Bytes,
    /// The RTP timestamp (90 kHz).
    pub rtp_timestamp: u32,
    /// The RTP time unwrapped past roll-overs, as a duration since RTP time 0.
    pub timestamp: Duration,
    /// The depacketizer saw a key frame (H.264 IDR / VP8 key frame).
    pub keyframe: bool,
    /// False when packets between this frame and the previous one were lost: the
    /// decoder may need the next key frame (one has been requested).
    pub contiguous: bool,
    /// Simulcast layer this frame came from, when the SFU says (usually `None`:
    /// the SFU forwards one layer on one SSRC).
    pub layer: Option<VideoQuality>,
    /// When the frame's first packet arrived.
    pub received_at: Instant,
}

/// One received Opus packet (48 kHz).
#[derive(Debug, Clone)]
pub struct ReceivedAudio {
    /// The remote track.
    pub track: TrackSid,
    /// Who publishes it.
    pub participant: ParticipantIdentity,
    /// The Opus packet.
    pub data: Bytes,
    /// The RTP timestamp (48 kHz).
    pub rtp_timestamp: u32,
    /// The RTP time unwrapped past roll-overs, as a duration since RTP time 0.
    pub timestamp: Duration,
    /// When the packet arrived.
    pub received_at: Instant,
}

/// The server's judgement of this participant's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionQuality {
    /// Gone.
    Lost,
    /// Poor.
    Poor,
    /// Good.
    Good,
    /// Excellent.
    Excellent,
}

/// A remote participant as the app sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteParticipant {
    /// Identity.
    pub identity: ParticipantIdentity,
    /// Display name.
    pub name: String,
    /// Free-form metadata (set by its token or by itself).
    pub metadata: String,
    /// Key/value attributes it set for itself (see
    /// [`PublisherHandle::set_attributes`](crate::PublisherHandle::set_attributes)).
    pub attributes: HashMap<String, String>,
    /// Hidden participants (e.g. recorders) do not count as viewers.
    pub hidden: bool,
}

/// What the publisher tells the app.
#[derive(Debug, Clone, PartialEq)]
pub enum PublisherEvent {
    /// The connection state changed.
    StateChanged(ConnectionState),
    /// A chat message arrived.
    ChatReceived {
        /// The message's id: its text stream's id (a legacy `ChatMessage`'s id), what a
        /// moderation event names to remove it.
        id: String,
        /// Sender identity.
        from_identity: ParticipantIdentity,
        /// Sender display name (may be empty).
        from_name: String,
        /// Message text.
        text: String,
        /// Sender timestamp, ms since the Unix epoch.
        timestamp: i64,
    },
    /// A raw data packet arrived.
    DataReceived {
        /// Sender identity.
        from_identity: ParticipantIdentity,
        /// Topic, if any.
        topic: Option<String>,
        /// Payload.
        payload: Bytes,
    },
    /// The number of viewers changed.
    ViewerCount(u32),
    /// A remote participant joined.
    ParticipantJoined(RemoteParticipant),
    /// A remote participant left.
    ParticipantLeft(ParticipantIdentity),
    /// A known remote participant changed its name, metadata or attributes (the
    /// new state, complete). Track events name the participant by identity.
    ParticipantUpdated(RemoteParticipant),
    /// A track was accepted by the server.
    TrackPublished {
        /// Client id.
        cid: TrackCid,
        /// Server id.
        sid: TrackSid,
    },
    /// Send a key frame for this track (and layer).
    KeyframeRequested {
        /// Client id.
        track: TrackCid,
        /// Layer, for simulcast.
        layer: Option<VideoQuality>,
    },
    /// The encoder target bitrate from the transport's bandwidth estimate (held below it
    /// while a recovery probe's result is unproven; the stats carry the estimate itself).
    TargetBitrate(Bitrate),
    /// Which layers of a track anyone watches (dynacast).
    LayersWanted {
        /// Client id.
        track: TrackCid,
        /// Wanted layers.
        layers: Vec<VideoQuality>,
    },
    /// A remote track is now received (subscriber side; its media arrives on
    /// [`PublisherHandle::take_media`](crate::PublisherHandle::take_media)).
    TrackSubscribed(RemoteTrack),
    /// A remote track is no longer received (unpublished, its publisher left, or
    /// the session was rejoined).
    TrackUnsubscribed {
        /// Who published it.
        participant: ParticipantIdentity,
        /// The remote track.
        track: TrackSid,
    },
    /// A subscribed track's publisher muted or unmuted it.
    TrackMuted {
        /// Who publishes it.
        participant: ParticipantIdentity,
        /// The remote track.
        track: TrackSid,
        /// Now muted.
        muted: bool,
    },
    /// A health snapshot.
    Stats(StatsSnapshot),
    /// A recovery started, or ended (resumed, rejoined, gave up).
    Recovery(Recovery),
    /// A non-fatal error worth showing.
    Error(String),
}
