//! A pure-Rust LiveKit participant that publishes video, audio and chat.
//!
//! - [`core::Participant`] is the sans-IO protocol core (signal messages,
//!   datagrams and time in; signal requests, datagrams and events out),
//!   built on `str0m`.
//! - [`Publisher`] is the tokio driver that owns the signal client
//!   (`livekit-signaling`), the UDP sockets and the timers.
//! - [`subscribe`] is the receive side: with [`PublishOptions::subscribe`] the
//!   participant also receives every remote track (a viewer token is enough).
//! - [`tcp`] is ICE over TCP (RFC 6544/4571): both PCs also offer an active TCP
//!   candidate and the driver opens the framed connections to LiveKit's passive
//!   one, so networks that block UDP can still go live
//!   ([`PublishOptions::ice_transport`], [`StatsSnapshot::transport`]).
//!
//! ```no_run
//! # async fn demo(url: &str, token: &str) -> Result<(), streamit_livekit_publish::Error> {
//! use streamit_livekit_publish::*;
//! let (handle, mut events) = Publisher::connect(url, token, PublishOptions::default()).await?;
//! let video = handle.publish_video(VideoTrackOptions::new(VideoCodec::H264, 640, 360, 30)).await?;
//! // On PublisherEvent::KeyframeRequested, make the next frame a key frame.
//! // video.send(EncodedVideo { layer: None, data, keyframe, timestamp });
//! handle.send_chat("hello")?;
//! while let Some(ev) = events.recv().await { /* state, chat, viewer count, stats … */ }
//! # Ok(()) }
//! ```
//!
//! Receiving (e.g. `watch`):
//!
//! ```no_run
//! # async fn demo(url: &str, token: &str) -> Result<(), streamit_livekit_publish::Error> {
//! use streamit_livekit_publish::*;
//! let opts = PublishOptions { subscribe: true, ..Default::default() };
//! let (handle, mut events) = Publisher::connect(url, token, opts).await?;
//! let mut media = handle.take_media().ok_or(Error::Closed)?;
//! // events: TrackSubscribed(RemoteTrack), TrackMuted, TrackUnsubscribed, Stats (receive figures)
//! while let Some(m) = media.recv().await {
//!     match m {
//!         // H.264: an Annex-B access unit; VP8: a frame. Feed a decoder as is.
//!         ReceivedMedia::Video(v) => { let _ = (v.track, v.data, v.keyframe); }
//!         ReceivedMedia::Audio(a) => { let _ = a.data; /* one Opus packet, 48 kHz */ }
//!     }
//! }
//! # Ok(()) }
//! ```
//! The media channel is bounded ([`PublishOptions::media_queue`]); when the reader
//! falls behind the newest frame is dropped and video skips to the next key frame
//! (requested by PLI), so the driver never blocks and decoders never see a broken
//! reference chain. [`PublisherHandle::request_keyframe`] and
//! [`PublisherHandle::set_video_quality`] control a subscribed track.
//!
//! Facts learnt against livekit-server 1.13.5 (see the tests):
//! - The SFU forwards only the payload type listed first in its answer and drops
//!   packets of any other PT ("dropping packet - payload mismatch"). str0m's default
//!   H.264 set offers seven PTs, so the core offers exactly one H.264 flavour
//!   (PT 108, 42e01f, packetization-mode 1).
//! - A publish-only participant is ACTIVE once the publisher PC connects; offering
//!   the two data channels at join is enough (first offer has only `m=application`).
//! - Chat from viewers arrives on the server-opened channels of the subscriber PC,
//!   so the server's subscriber offer must be answered (`auto_subscribe=0` keeps it
//!   media-free).
//! - `livekit-signaling` holds non-pass-through requests while reconnecting; only
//!   Offer/Answer/Trickle/SyncState/Leave/Simulate go out before `set_reconnected`.
//! - A signal-only outage is resumed (`reconnect=1`): the server keeps the
//!   participant (same sid, tracks kept), answers the publisher's ICE-restart offer
//!   and takes a SyncState listing the published tracks and both sides' data
//!   channels. The media path never stops meanwhile: the driver keeps serving the
//!   sockets during backoff (tests/e2e/reconnect.rs: resumed ~3 s after a 1.5 s
//!   refusal, the viewer decoded 30 fps throughout).
//! - A media-path outage (signal up; either transport, the subscriber one carries
//!   the viewers' chat) is resumed too: the resume ICE-restarts the publisher (our
//!   offer) and the server ICE-restarts the subscriber (its offer);
//!   the attempt only counts once both transports are connected again (else the
//!   next attempt resumes again). str0m keeps a pair alive 15 s after the peer's last
//!   STUN check, so a dead path is noticed after ~13-15 s (STUN retransmits capped at
//!   1 s); by then the server's side of the subscriber ICE has failed and only its
//!   own ICE restart (a resume) revives it.
//! - A resume's ICE restart leaves the publisher without a transport for a few
//!   tens of ms (str0m drops its candidate pairs), so a frame or two is dropped.
//!   Any video frame dropped before it reaches the core (that, or a full queue)
//!   makes its layer skip delta frames and ask for a key frame
//!   (`KeyframeRequested`, every 500 ms while waiting): receivers would otherwise
//!   get frames referencing pictures they never saw, with contiguous RTP
//!   sequence numbers, so they cannot tell (tests/e2e/subscribe_reconnect.rs
//!   saw ~1 s of decode errors before this; now 2 frames lost, none broken).
//! - After a server restart or a simulated node failure the server refuses a resume
//!   with `LeaveRequest{StateMismatch, RECONNECT}`; the driver then rejoins in full
//!   at once, in the same attempt (as the SDKs' first retry does; so quick a rejoin
//!   takes the old participant's place: other participants see no leave/join).
//!   [`StatsSnapshot`] counts resumes and rejoins.
//! - While the server is unreachable (refused connections, or a probe unanswered
//!   for 500 ms) the driver probes it every 500 ms (`GET /` over TCP; a stopped
//!   process still accepts connections) and makes the next attempt as soon as it
//!   answers; each backoff slot that passes without an answer counts as an attempt,
//!   so the budget (5 attempts, ~30 s) is unchanged (tests/e2e/reconnect.rs: a 10 s
//!   crash rejoined 0.55 s after the restart; a 20 s SIGSTOP 0.17 s after SIGCONT).
//! - A frozen server is noticed from the media plane (core `liveness`): nothing
//!   from the SFU on the publisher transport for 1 s while sending makes the core
//!   ping over the signal connection; 2 s of silence with that ping unanswered is a
//!   loss ([`LossCause::ServerSilent`], ~2 s instead of ~9.5 s by ICE). Each
//!   recovery is reported as [`PublisherEvent::Recovery`] and in
//!   [`StatsSnapshot::last_recovery`].
//! - str0m 0.25's VP8 packetizer sends no PictureID (the switch is private), and
//!   libwebrtc's receiver (the Python SDK viewer) then decoded only 69-87 % of
//!   640x360@30 frames (11-24 fps in the first seconds). The core therefore writes
//!   VP8 through str0m's direct RTP API with its own payload descriptor (15-bit
//!   PictureID per frame and layer); H.264 and Opus stay on str0m's packetizers.
//! - str0m's TWCC estimate only probes upwards when told what we would like to
//!   send: the core hands it the watched layers' nominal bitrates plus audio
//!   (`rtc.bwe().set_bitrate`). From a 300 kbit/s start it reaches ~1.3 Mbit/s
//!   on loopback within ~10 s; [`PublisherEvent::TargetBitrate`] is emitted on
//!   the first estimate and on moves of at least 5 %.
//! - After a cap lifts, str0m's estimate can stay where the cap left it (141
//!   kbit/s for 20 s on CI; 111-160 kbit/s for 25 s and more here with only the
//!   allocation-probe nudge below): AIMD is held at 1.5× what the
//!   encoder sends, and its prober stays quiet while the loss or delay controller
//!   still blames the past congestion. The core's `recovery` asks for probes
//!   (a desired bitrate a bit per second higher, then a fresh start of the
//!   estimator from the current estimate) with a backoff; 30 fps came back
//!   within 2-6 s of the lift in 3 runs of 3.
//! - With `auto_subscribe=1` the server offers each published track on the
//!   subscriber PC as a `sendrecv` m-line (not `sendonly`) whose
//!   `a=msid:PA_…|TR_… TR_…` names the publisher and the track sid, and it fills
//!   the offer's `mid_to_track_id` too; the publisher's `TrackInfo` (participant
//!   update) arrives around the same time, so a track is announced once both are
//!   known.
//! - A viewer token (`canPublish=false`, `canPublishData=true`) still joins and
//!   connects its publisher PC with the two data channels, so a subscribing
//!   viewer sends chat the usual way.
//! - str0m 0.25's frame-mode depacketizer hands out H.264 as Annex-B access units
//!   (4-byte start codes, SPS/PPS in-band) and flags IDRs in its codec extra; the
//!   subscriber decoded 300/300 frames of a 10 s 640x360@30 window with openh264
//!   (p50 capture→decode 4 ms on loopback). A simulcast layer switch by
//!   `UpdateTrackSettings` shows at the subscriber within ~0.5 s, on the same SSRC.
//! - [`PublisherHandle::set_attributes`] (needs `canUpdateOwnMetadata`, else the
//!   server answers `RequestResponse{NOT_ALLOWED}`, surfaced as an `Error` event)
//!   reaches the others as a `ParticipantUpdate`; the server keeps attributes in
//!   the participant's claims and refreshes our token with them, so a full rejoin
//!   (even after a server restart) comes back with them.
//! - ICE-TCP: LiveKit trickles (not in its answer) one passive TCP host
//!   candidate per PC on `rtc.tcp_port`, right after its UDP one, e.g.
//!   `candidate:… 1 tcp 1671430143 127.0.0.1 <tcp_port> typ host tcptype passive`
//!   (type preference 99, below UDP host's 126, so ICE prefers UDP); both PCs
//!   share the port: pion's TCP mux reads the first RFC 4571 frame, which must
//!   be a STUN Binding request, and hands the connection to the ICE agent whose
//!   ufrag leads its USERNAME (so after an ICE restart we open new
//!   connections). str0m 0.25 does ICE over TCP but no I/O: our local candidate
//!   is a TCP host `tcptype active` on port 9 (RFC 6544 §4.5, never listened
//!   on); str0m transmits from it as `source` and pairs it with the passive
//!   candidate, received frames are fed with it as `destination`. On loopback
//!   `TcpOnly` connects in 46-66 ms (UDP: 22-95 ms, no difference) and the
//!   Python SDK viewer decoded 300/301 frames of 10 s 640x360@30 H.264 with not
//!   one UDP datagram sent; with UDP dropped both ways `All` connects over TCP
//!   in ~40-100 ms; a reset TCP connection is noticed at once and resumed (ICE
//!   restart over new connections) ~1 s later (the backoff). There is no TURN:
//!   str0m has no TURN client, so a network that also blocks the server's TCP
//!   port cannot connect.

pub mod chat;
pub mod core;
mod driver;
mod queue;
mod rtp_counters;
pub mod subscribe;
pub mod tcp;
#[cfg(test)]
mod test_support;
pub mod turn;
pub mod types;

pub use core::SEND_QUEUE_BOUND;
pub use driver::{AudioTrackSender, PublishOptions, Publisher, PublisherHandle, VideoTrackSender};
pub use types::*;

/// Errors of the publishing engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The signal connection failed.
    #[error("signal: {0}")]
    Signal(String),
    /// A socket operation failed.
    #[error("io: {0}")]
    Io(#[source] std::io::Error),
    /// The publisher has stopped.
    #[error("publisher closed")]
    Closed,
    /// The audio queue is full (the network or driver is behind).
    #[error("media queue full")]
    QueueFull,
    /// [`IceTransport::Relay`] was asked for but no TURN allocation could be made.
    #[error("no TURN relay: {0}")]
    NoRelay(String),
}
