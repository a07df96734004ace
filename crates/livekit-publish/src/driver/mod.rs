//! The tokio driver: owns the signal connection, the UDP sockets and the
//! timers, and feeds the sans-IO [`Participant`] core.
//!
//! This file has the public side (options, handle, track senders, connecting)
//! and the state of the driver task; `run` has its loop and `reconnect` the
//! recovery (resume or rejoin) it falls back to.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use livekit_protocol as proto;
use livekit_signaling::{SignalClient, SignalEvents, SignalOptions};
use tokio::net::UdpSocket;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use crate::Error;
use crate::core::{CoreConfig, Participant};
use crate::queue::LayerQueues;
use crate::tcp::TcpLinks;
use crate::turn::Relays;
use crate::types::*;

mod probe;
mod reconnect;
mod run;

/// [`PublisherHandle::simulate_network_outage`] bits.
const DARK_PUBLISHER: u8 = 1;
const DARK_SUBSCRIBER: u8 = 2;

/// How a [`Publisher`] connects.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// Local IP to bind the media sockets to and announce as host candidate.
    /// `None`: the address the OS routes to the server's host.
    pub local_ip: Option<IpAddr>,
    /// Bandwidth estimate to start from.
    pub initial_bitrate: Bitrate,
    /// Video frames queued per track before the oldest is dropped.
    pub video_queue: usize,
    /// Audio packets queued per track before `send` reports the queue full.
    pub audio_queue: usize,
    /// Capacity of the event channel (events beyond it are dropped, with a log line).
    pub event_queue: usize,
    /// Receive remote tracks: join with auto-subscribe so the server offers every
    /// published track on the subscriber PC; frames come out of
    /// [`PublisherHandle::take_media`]. Works with a token that cannot publish.
    pub subscribe: bool,
    /// Received frames buffered in the media channel. When it is full the newest
    /// frame is dropped (counted in `StatsSnapshot::frames_dropped_rx`) and video
    /// skips to the next key frame, so the driver never waits for the reader.
    pub media_queue: usize,
    /// Which transports ICE may use on both PCs: UDP and ICE-TCP to LiveKit's
    /// `rtc.tcp_port` by default (UDP preferred, TCP when UDP is blocked).
    pub ice_transport: IceTransport,
    /// Extra CA certificates (PEM) trusted for TURN/TLS beside the system's web
    /// roots: a company's own CA, or a test's.
    pub turn_extra_ca_pem: Option<Vec<u8>>,
    /// Test only: drop every UDP datagram, sent and received, as a firewall
    /// blocking UDP would (the ICE, the fallback to TCP and the stats are the
    /// real code path).
    #[doc(hidden)]
    pub simulate_udp_blocked: bool,
}

impl Default for PublishOptions {
    fn default() -> Self {
        Self {
            local_ip: None,
            initial_bitrate: Bitrate::from_kbps(1500),
            video_queue: 8,
            audio_queue: 100,
            event_queue: 1024,
            subscribe: false,
            media_queue: 64,
            ice_transport: IceTransport::All,
            turn_extra_ca_pem: None,
            simulate_udp_blocked: false,
        }
    }
}

/// The audio queue of one track (bounded; a full queue is the caller's error).
struct MediaQueue<T> {
    items: Mutex<VecDeque<T>>,
    cap: usize,
    notify: Arc<Notify>,
}

impl<T> MediaQueue<T> {
    fn new(cap: usize, notify: Arc<Notify>) -> Arc<Self> {
        Arc::new(Self {
            items: Mutex::new(VecDeque::new()),
            cap: cap.max(1),
            notify,
        })
    }
    fn drain(&self) -> Vec<T> {
        match self.items.lock() {
            Ok(mut q) => q.drain(..).collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// Per-layer drop counts of a video queue the core has been told about.
type SeenDrops = Vec<(Option<VideoQuality>, u64)>;

/// The video queues of one track, shared by its senders and the driver.
struct VideoQueue {
    layers: Mutex<LayerQueues>,
    notify: Arc<Notify>,
    /// Set by the driver while the track's video waits too long in the pacer.
    congested: AtomicBool,
}

impl VideoQueue {
    fn new(cap: usize, notify: Arc<Notify>) -> Arc<Self> {
        Arc::new(Self {
            layers: Mutex::new(LayerQueues::new(cap)),
            notify,
            congested: AtomicBool::new(false),
        })
    }
}

/// Feeds encoded video frames of one track. Never blocks: when a layer's queue
/// is full its oldest frame is dropped and counted (each simulcast layer has
/// its own queue).
#[derive(Clone)]
pub struct VideoTrackSender {
    cid: TrackCid,
    queue: Arc<VideoQueue>,
}

impl VideoTrackSender {
    /// The track's client id.
    pub fn cid(&self) -> &TrackCid {
        &self.cid
    }
    /// Queue a frame.
    pub fn send(&self, frame: EncodedVideo) {
        if let Ok(mut q) = self.queue.layers.lock() {
            q.push(frame);
        }
        self.queue.notify.notify_one();
    }
    /// True while the track's video has waited in the pacer longer than
    /// [`SEND_QUEUE_BOUND`](crate::SEND_QUEUE_BOUND): a frame encoded now would only
    /// queue behind it, so the encoder skips it (libwebrtc's encoder pushback).
    pub fn congested(&self) -> bool {
        self.queue.congested.load(Ordering::Relaxed)
    }
    /// Frames dropped because a layer's queue was full (all layers).
    pub fn dropped(&self) -> u64 {
        self.queue
            .layers
            .lock()
            .map(|q| q.dropped_total())
            .unwrap_or(0)
    }
}

/// Feeds Opus packets of one track. Never blocks and never drops silently:
/// a full queue is an error the caller sees.
#[derive(Clone)]
pub struct AudioTrackSender {
    cid: TrackCid,
    queue: Arc<MediaQueue<EncodedAudio>>,
}

impl AudioTrackSender {
    /// The track's client id.
    pub fn cid(&self) -> &TrackCid {
        &self.cid
    }
    /// Queue a packet.
    pub fn send(&self, packet: EncodedAudio) -> Result<(), Error> {
        let mut q = self.queue.items.lock().map_err(|_| Error::Closed)?;
        if q.len() >= self.queue.cap {
            return Err(Error::QueueFull);
        }
        q.push_back(packet);
        drop(q);
        self.queue.notify.notify_one();
        Ok(())
    }
}

enum Command {
    PublishVideo(
        VideoTrackOptions,
        Arc<VideoQueue>,
        tokio::sync::oneshot::Sender<TrackCid>,
    ),
    PublishAudio(
        AudioTrackOptions,
        Arc<MediaQueue<EncodedAudio>>,
        tokio::sync::oneshot::Sender<TrackCid>,
    ),
    SetMuted(TrackCid, bool),
    Unpublish(TrackCid),
    Chat(String),
    Data(Vec<u8>, Reliability, Option<String>),
    SetAttributes(std::collections::HashMap<String, String>),
    Leave(tokio::sync::oneshot::Sender<()>),
    RequestKeyframe(TrackSid),
    SetVideoQuality(TrackSid, VideoQuality),
    SetVideoHeldBack(bool),
    Simulate(proto::simulate_scenario::Scenario),
    ResetTcp,
}

/// Controls a running publisher. Cheap to clone.
#[derive(Clone)]
pub struct PublisherHandle {
    cmd: mpsc::UnboundedSender<Command>,
    notify: Arc<Notify>,
    opts: PublishOptions,
    identity: ParticipantIdentity,
    media: Arc<Mutex<Option<mpsc::Receiver<ReceivedMedia>>>>,
    blackhole: Arc<AtomicU8>,
}

impl PublisherHandle {
    /// Own identity in the room.
    pub fn identity(&self) -> &ParticipantIdentity {
        &self.identity
    }

    /// Publish a video track. Frames sent before the track is negotiated are dropped;
    /// a `KeyframeRequested` event says when to send the first key frame.
    pub async fn publish_video(&self, opts: VideoTrackOptions) -> Result<VideoTrackSender, Error> {
        let queue = VideoQueue::new(self.opts.video_queue, self.notify.clone());
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.cmd
            .send(Command::PublishVideo(opts, queue.clone(), tx))
            .map_err(|_| Error::Closed)?;
        let cid = rx.await.map_err(|_| Error::Closed)?;
        Ok(VideoTrackSender { cid, queue })
    }

    /// Publish an Opus audio track.
    pub async fn publish_audio(&self, opts: AudioTrackOptions) -> Result<AudioTrackSender, Error> {
        let queue = MediaQueue::new(self.opts.audio_queue, self.notify.clone());
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.cmd
            .send(Command::PublishAudio(opts, queue.clone(), tx))
            .map_err(|_| Error::Closed)?;
        let cid = rx.await.map_err(|_| Error::Closed)?;
        Ok(AudioTrackSender { cid, queue })
    }

    /// Mute or unmute a track (viewers see it; media stops while muted).
    pub fn set_muted(&self, track: &TrackCid, muted: bool) -> Result<(), Error> {
        self.cmd
            .send(Command::SetMuted(track.clone(), muted))
            .map_err(|_| Error::Closed)
    }

    /// Stop publishing a track.
    pub fn unpublish(&self, track: &TrackCid) -> Result<(), Error> {
        self.cmd
            .send(Command::Unpublish(track.clone()))
            .map_err(|_| Error::Closed)
    }

    /// Send a chat message (text stream on `lk.chat`).
    pub fn send_chat(&self, text: impl Into<String>) -> Result<(), Error> {
        self.cmd
            .send(Command::Chat(text.into()))
            .map_err(|_| Error::Closed)
    }

    /// Send a raw data packet.
    pub fn send_data(
        &self,
        payload: Vec<u8>,
        reliability: Reliability,
        topic: Option<String>,
    ) -> Result<(), Error> {
        self.cmd
            .send(Command::Data(payload, reliability, topic))
            .map_err(|_| Error::Closed)
    }

    /// The receiver of subscribed tracks' frames (video frames and Opus packets of
    /// every [`PublisherEvent::TrackSubscribed`] track). There is one receiver: the
    /// first call gets it, later calls get `None`. Without
    /// [`PublishOptions::subscribe`] nothing arrives on it.
    pub fn take_media(&self) -> Option<mpsc::Receiver<ReceivedMedia>> {
        self.media.lock().ok()?.take()
    }

    /// Ask the publisher of a subscribed video track for a key frame (RTCP PLI,
    /// at most one per 500 ms per track; the SFU forwards it).
    pub fn request_keyframe(&self, track: &TrackSid) -> Result<(), Error> {
        self.cmd
            .send(Command::RequestKeyframe(track.clone()))
            .map_err(|_| Error::Closed)
    }

    /// Say whether the bandwidth estimate holds the picture back: a video layer someone
    /// watches is paused, or a single layer scaled down, because the estimate cannot carry
    /// it. While it does, the engine probes a capped link every 5 s (instead of backing off
    /// to 24 s), so the picture comes back soon after a cap lifts.
    pub fn set_video_held_back(&self, yes: bool) -> Result<(), Error> {
        self.cmd
            .send(Command::SetVideoHeldBack(yes))
            .map_err(|_| Error::Closed)
    }

    /// Choose the simulcast layer the SFU forwards for a subscribed video track
    /// (`UpdateTrackSettings`). Without simulcast it has no effect.
    pub fn set_video_quality(&self, track: &TrackSid, quality: VideoQuality) -> Result<(), Error> {
        self.cmd
            .send(Command::SetVideoQuality(track.clone(), quality))
            .map_err(|_| Error::Closed)
    }

    /// Set (merge) this participant's attributes, which every participant sees in
    /// [`RemoteParticipant::attributes`]; an empty value deletes a key. The token
    /// needs `canUpdateOwnMetadata` (a refusal is an `Error` event). A full rejoin
    /// keeps them once the server's refreshed token (which carries them) arrived;
    /// setting them again on `StateChanged(Connected)` covers the gap before it.
    pub fn set_attributes(
        &self,
        attributes: std::collections::HashMap<String, String>,
    ) -> Result<(), Error> {
        self.cmd
            .send(Command::SetAttributes(attributes))
            .map_err(|_| Error::Closed)
    }

    /// Ask the server to simulate a failure (tests of the reconnect paths).
    #[doc(hidden)]
    pub fn simulate(&self, scenario: proto::simulate_scenario::Scenario) -> Result<(), Error> {
        self.cmd
            .send(Command::Simulate(scenario))
            .map_err(|_| Error::Closed)
    }

    /// Drop every datagram of the publisher and/or subscriber peer connection,
    /// both ways (a media-path outage with the signal connection untouched; tests
    /// of the transport-loss paths). `false, false` ends it.
    #[doc(hidden)]
    pub fn simulate_network_outage(&self, publisher: bool, subscriber: bool) {
        let mask = u8::from(publisher) * DARK_PUBLISHER + u8::from(subscriber) * DARK_SUBSCRIBER;
        self.blackhole.store(mask, Ordering::SeqCst);
    }

    /// Close every ICE-TCP connection as a network reset would (tests of the
    /// transport-loss path over TCP).
    #[doc(hidden)]
    pub fn simulate_tcp_reset(&self) -> Result<(), Error> {
        self.cmd.send(Command::ResetTcp).map_err(|_| Error::Closed)
    }

    /// Leave the room and stop the driver.
    pub async fn leave(&self) -> Result<(), Error> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.cmd
            .send(Command::Leave(tx))
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)
    }
}

/// Entry point.
pub struct Publisher;

impl Publisher {
    /// Join the room at `ws_url` with `token` and start the driver task.
    pub async fn connect(
        ws_url: &str,
        token: &str,
        opts: PublishOptions,
    ) -> Result<(PublisherHandle, mpsc::Receiver<PublisherEvent>), Error> {
        let local_ip = match opts.local_ip {
            Some(ip) => ip,
            None => route_ip(ws_url).await,
        };
        let pub_sock = UdpSocket::bind(SocketAddr::new(local_ip, 0))
            .await
            .map_err(Error::Io)?;
        let sub_sock = UdpSocket::bind(SocketAddr::new(local_ip, 0))
            .await
            .map_err(Error::Io)?;
        let pub_addr = pub_sock.local_addr().map_err(Error::Io)?;
        let sub_addr = sub_sock.local_addr().map_err(Error::Io)?;

        let (signal, join, signal_events) =
            SignalClient::connect(ws_url, token, signal_options(opts.subscribe), None)
                .await
                .map_err(|e| Error::Signal(e.to_string()))?;
        let identity = ParticipantIdentity(
            join.participant
                .as_ref()
                .map(|p| p.identity.clone())
                .unwrap_or_default(),
        );

        let relays = allocate_relays(&join, &opts, local_ip).await?;
        let mut core = Participant::new(CoreConfig {
            publisher_addr: pub_addr,
            subscriber_addr: sub_addr,
            initial_bitrate: opts.initial_bitrate,
            ice_transport: opts.ice_transport,
            relays: relays.candidates(),
        });
        let (ev_tx, ev_rx) = mpsc::channel(opts.event_queue.max(16));
        let _ = ev_tx.try_send(PublisherEvent::StateChanged(ConnectionState::Connecting));
        core.handle_join(&join, Instant::now().into_std());

        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let notify = Arc::new(Notify::new());
        let (media_tx, media_rx) = mpsc::channel(opts.media_queue.max(1));
        let blackhole = Arc::new(AtomicU8::new(0));
        let driver = Driver {
            subscribe: opts.subscribe,
            media_tx,
            blackhole: blackhole.clone(),
            signal_lost: false,
            url: ws_url.to_string(),
            token: token.to_string(),
            core,
            signal: Arc::new(signal),
            signal_events,
            held_signals: Vec::new(),
            pub_sock,
            sub_sock,
            pub_addr,
            sub_addr,
            cmd_rx,
            notify: notify.clone(),
            ev_tx,
            video: Vec::new(),
            audio: Vec::new(),
            tcp: TcpLinks::new(),
            relays,
            udp_sent: 0,
            block_udp: opts.simulate_udp_blocked,
        };
        tokio::spawn(driver.run());
        Ok((
            PublisherHandle {
                cmd: cmd_tx,
                notify,
                opts,
                identity,
                media: Arc::new(Mutex::new(Some(media_rx))),
                blackhole,
            },
            ev_rx,
        ))
    }
}

/// The TURN allocations for both PCs when the JoinResponse offers TURN servers.
/// With [`IceTransport::Relay`] they are the only way and their absence is an
/// error; otherwise they are a fallback and a failure is only logged.
async fn allocate_relays(
    join: &proto::JoinResponse,
    opts: &PublishOptions,
    local_ip: IpAddr,
) -> Result<Relays, Error> {
    let servers = crate::turn::parse_ice_servers(&join.ice_servers);
    let relay_only = opts.ice_transport == IceTransport::Relay;
    if servers.is_empty() {
        return if relay_only {
            Err(Error::NoRelay("the server offers no TURN server".into()))
        } else {
            Ok(Relays::none())
        };
    }
    let tls = if servers.iter().any(|s| s.protocol == RelayProtocol::Tls) {
        match crate::turn::tls_config(opts.turn_extra_ca_pem.as_deref()) {
            Ok(c) => Some(Arc::new(c)),
            Err(e) if relay_only => return Err(Error::NoRelay(e.to_string())),
            Err(e) => {
                tracing::warn!("{e}");
                None
            }
        }
    } else {
        None
    };
    let mut pcs = vec![PcKind::Publisher];
    if opts.subscribe {
        pcs.push(PcKind::Subscriber);
    }
    // The subscriber PC carries the data channels even without subscribing.
    if !pcs.contains(&PcKind::Subscriber) {
        pcs.push(PcKind::Subscriber);
    }
    let relays = Relays::allocate(&servers, &pcs, local_ip, tls).await;
    if relay_only {
        for pc in pcs {
            if !relays.candidates().iter().any(|c| c.pc == pc) {
                return Err(Error::NoRelay(format!(
                    "no TURN allocation for the {pc:?} connection (servers: {servers:?})"
                )));
            }
        }
    }
    Ok(relays)
}

/// `subscribe`: the server offers every published track on the subscriber PC
/// (`auto_subscribe=1`); otherwise that PC carries only data channels.
fn signal_options(subscribe: bool) -> SignalOptions {
    let mut o = SignalOptions::default();
    o.auto_subscribe = subscribe;
    o.adaptive_stream = false;
    o.single_peer_connection = false;
    o.region_failover = false;
    o.client_capabilities = Vec::new();
    // Ask peers for the classic header/chunk/trailer text streams.
    o.client_protocol = 0;
    o
}

/// The local IP the OS would use to reach the host of `ws_url`.
async fn route_ip(ws_url: &str) -> IpAddr {
    let fallback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let rest = ws_url.split("://").nth(1).unwrap_or(ws_url);
    let hostport = rest.split('/').next().unwrap_or(rest);
    let hostport = if hostport.contains(':') {
        hostport.to_string()
    } else if ws_url.starts_with("wss") {
        format!("{hostport}:443")
    } else {
        format!("{hostport}:80")
    };
    let Ok(mut addrs) = tokio::net::lookup_host(hostport).await else {
        return fallback;
    };
    let Some(addr) = addrs.find(|a| a.is_ipv4()) else {
        return fallback;
    };
    let Ok(s) = UdpSocket::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)).await else {
        return fallback;
    };
    if s.connect(addr).await.is_err() {
        return fallback;
    }
    s.local_addr().map(|a| a.ip()).unwrap_or(fallback)
}

struct Driver {
    subscribe: bool,
    media_tx: mpsc::Sender<ReceivedMedia>,
    url: String,
    token: String,
    core: Participant,
    signal: Arc<SignalClient>,
    signal_events: SignalEvents,
    pub_sock: UdpSocket,
    sub_sock: UdpSocket,
    pub_addr: SocketAddr,
    sub_addr: SocketAddr,
    cmd_rx: mpsc::UnboundedReceiver<Command>,
    notify: Arc<Notify>,
    ev_tx: mpsc::Sender<PublisherEvent>,
    /// Signal requests made while a resume holds the signal client's lock; sent
    /// in order once it is released.
    held_signals: Vec<proto::signal_request::Message>,
    /// [`PublisherHandle::simulate_network_outage`]: datagrams are dropped.
    blackhole: Arc<AtomicU8>,
    /// The signal connection closed while a resume waited for the transport.
    signal_lost: bool,
    /// Video queues, with the per-layer drop counts already told to the core.
    video: Vec<(TrackCid, Arc<VideoQueue>, SeenDrops)>,
    audio: Vec<(TrackCid, Arc<MediaQueue<EncodedAudio>>)>,
    /// ICE-TCP connections of both PCs.
    tcp: TcpLinks,
    /// TURN allocations of both PCs (empty without TURN servers).
    relays: Relays,
    /// UDP datagrams sent (stats).
    udp_sent: u64,
    /// [`PublishOptions::simulate_udp_blocked`].
    block_udp: bool,
}
