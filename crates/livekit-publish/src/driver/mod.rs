//! The tokio driver: owns the signal connection, the UDP sockets and the
//! timers, and feeds the sans-IO [`Participant`] core.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use livekit_protocol as proto;
use livekit_signaling::{SignalClient, SignalEvent, SignalEvents, SignalOptions};
use tokio::net::UdpSocket;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use crate::Error;
use crate::core::{Backoff, CoreConfig, CoreOutput, Participant};
use crate::queue::LayerQueues;
use crate::tcp::{TcpEvent, TcpLinks};
use crate::types::*;
use str0m::net::Protocol;

/// How long after losing the signal a resume is still worth trying: LiveKit
/// keeps a participant whose signal dropped for about 20 s.
const RESUME_WINDOW: Duration = Duration::from_secs(15);
/// [`PublisherHandle::simulate_network_outage`] bits.
const DARK_PUBLISHER: u8 = 1;
const DARK_SUBSCRIBER: u8 = 2;

/// How long a resumed session may take to get its publisher transport back (ICE
/// restart) before the attempt counts as failed.
const RESUME_TRANSPORT_TIMEOUT: Duration = Duration::from_secs(5);

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
}

impl VideoQueue {
    fn new(cap: usize, notify: Arc<Notify>) -> Arc<Self> {
        Arc::new(Self {
            layers: Mutex::new(LayerQueues::new(cap)),
            notify,
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

        let mut core = Participant::new(CoreConfig {
            publisher_addr: pub_addr,
            subscriber_addr: sub_addr,
            initial_bitrate: opts.initial_bitrate,
            ice_transport: opts.ice_transport,
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
    /// UDP datagrams sent (stats).
    udp_sent: u64,
    /// [`PublishOptions::simulate_udp_blocked`].
    block_udp: bool,
}

/// How one turn of the driver loop ended (see [`Driver::turn`]).
enum Turn<T> {
    /// An input was handled (datagram, ICE-TCP, media, timer, signal message).
    Served,
    /// The future the loop serves until finished.
    Done(T),
    /// The signal connection closed or is gone (why).
    SignalLost(String),
    /// A command from a handle.
    Command(Command),
    /// Every handle was dropped.
    HandlesGone,
}

/// Receive buffers of the two UDP sockets, one pair per loop.
struct RecvBufs {
    publisher: Vec<u8>,
    subscriber: Vec<u8>,
}

impl RecvBufs {
    fn new() -> Self {
        Self {
            publisher: vec![0u8; 2000],
            subscriber: vec![0u8; 2000],
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Driver {
    /// Whether [`PublisherHandle::simulate_network_outage`] drops `pc`'s datagrams.
    fn dark(&self, pc: PcKind) -> bool {
        let bit = match pc {
            PcKind::Publisher => DARK_PUBLISHER,
            PcKind::Subscriber => DARK_SUBSCRIBER,
        };
        self.blackhole.load(Ordering::Relaxed) & bit != 0
    }

    async fn flush(&mut self) {
        for m in std::mem::take(&mut self.held_signals) {
            self.signal.send(m).await;
        }
        self.flush_outputs(false).await;
    }

    /// Carries out the core's outputs. With `hold_signals`, signal requests wait
    /// in `held_signals` (a resume in flight holds the signal client's lock).
    async fn flush_outputs(&mut self, hold_signals: bool) {
        while let Some(o) = self.core.poll_output() {
            match o {
                CoreOutput::Signal(m) if hold_signals => self.held_signals.push(m),
                CoreOutput::Signal(m) => self.signal.send(m).await,
                CoreOutput::Transmit(pc, _) if self.dark(pc) => {}
                CoreOutput::Transmit(pc, t) if t.proto != Protocol::Udp => {
                    self.tcp.send(pc, t.destination, &t.contents);
                }
                CoreOutput::Transmit(_, _) if self.block_udp => {}
                CoreOutput::Transmit(pc, t) => {
                    let sock = match pc {
                        PcKind::Publisher => &self.pub_sock,
                        PcKind::Subscriber => &self.sub_sock,
                    };
                    match sock.send_to(&t.contents, t.destination).await {
                        Ok(_) => self.udp_sent += 1,
                        Err(e) => tracing::debug!("send_to {}: {e}", t.destination),
                    }
                }
                CoreOutput::Event(mut e) => {
                    if let PublisherEvent::Stats(s) = &mut e {
                        s.udp_datagrams_sent = self.udp_sent;
                        s.tcp_frames_sent = self.tcp.frames_sent;
                    }
                    if let Err(e) = self.ev_tx.try_send(e) {
                        tracing::warn!("event queue full, dropping {e:?}");
                    }
                }
                // Never wait for the reader: a full channel drops the newest frame.
                CoreOutput::Media(m) => {
                    if let Err(mpsc::error::TrySendError::Full(m)) = self.media_tx.try_send(m) {
                        self.core.media_dropped(&m);
                    }
                }
            }
        }
    }

    /// The driver task: serves the core until it is disconnected or failed, the
    /// app leaves, or reconnecting gives up.
    async fn run(mut self) {
        let mut bufs = RecvBufs::new();
        let never = std::future::pending::<()>();
        tokio::pin!(never);
        loop {
            self.flush().await;
            if matches!(
                self.core.state(),
                ConnectionState::Disconnected { .. } | ConnectionState::Failed { .. }
            ) {
                self.signal.close().await;
                return;
            }
            let deadline = self.deadline();
            if let Some(why) = self.core.take_reconnect_request()
                && !self.reconnect(why).await
            {
                return;
            }
            match self.turn(never.as_mut(), true, deadline, &mut bufs).await {
                Turn::Served | Turn::Done(()) => {}
                Turn::SignalLost(why) => {
                    if !self.reconnect(why).await {
                        return;
                    }
                }
                Turn::Command(cmd) => {
                    if let Some(done) = self.command(cmd).await {
                        let _ = done.send(());
                        return;
                    }
                }
                Turn::HandlesGone => {
                    // Every handle dropped: leave.
                    self.core.leave(Instant::now().into_std());
                    self.flush().await;
                    self.signal.close().await;
                    return;
                }
            }
        }
    }

    /// When the core wants [`crate::core::Participant::handle_timeout`] called
    /// next (in a second at the latest).
    fn deadline(&self) -> Instant {
        self.core
            .poll_timeout()
            .map(Instant::from_std)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(1))
    }

    /// One turn of the driver loop, shared by [`Driver::run`] and
    /// [`Driver::serve_until`]: waits for the first of `fut`, a signal message
    /// (only with `listen_signal`), a datagram, an ICE-TCP event, a command,
    /// queued media and the core's `deadline`. Datagrams, TCP, media and timers
    /// are handled here; what the two callers handle differently comes back.
    async fn turn<F: std::future::Future>(
        &mut self,
        fut: std::pin::Pin<&mut F>,
        listen_signal: bool,
        deadline: Instant,
        bufs: &mut RecvBufs,
    ) -> Turn<F::Output> {
        tokio::select! {
            r = fut => Turn::Done(r),
            ev = self.signal_events.recv(), if listen_signal => match ev {
                Some(SignalEvent::Message(m)) => {
                    self.core.handle_signal(*m, Instant::now().into_std());
                    Turn::Served
                }
                Some(SignalEvent::Close(reason)) => {
                    Turn::SignalLost(format!("signal connection lost: {reason}"))
                }
                None => Turn::SignalLost("signal connection gone".into()),
            },
            r = self.pub_sock.recv_from(&mut bufs.publisher) => {
                self.udp_received(PcKind::Publisher, r, &bufs.publisher);
                Turn::Served
            }
            r = self.sub_sock.recv_from(&mut bufs.subscriber) => {
                self.udp_received(PcKind::Subscriber, r, &bufs.subscriber);
                Turn::Served
            }
            Some(ev) = self.tcp.recv() => {
                self.tcp_event(ev);
                Turn::Served
            }
            cmd = self.cmd_rx.recv() => match cmd {
                Some(cmd) => Turn::Command(cmd),
                None => Turn::HandlesGone,
            },
            _ = self.notify.notified() => {
                self.pump_media();
                Turn::Served
            }
            _ = tokio::time::sleep_until(deadline) => {
                self.core.handle_timeout(Instant::now().into_std());
                Turn::Served
            }
        }
    }

    /// Recovers with the backoff policy: resume the session (same participant,
    /// tracks kept) while the media transport is up and the server has not
    /// refused it, else join again in full. Returns false when the driver must
    /// stop (gave up, or the app left meanwhile).
    async fn reconnect(&mut self, why: String) -> bool {
        tracing::info!("reconnecting: {why}");
        let lost_at = Instant::now();
        let reason = if self.core.is_connected() {
            proto::ReconnectReason::RrSignalDisconnected
        } else {
            proto::ReconnectReason::RrPublisherFailed
        };
        // Keep the newest token the server handed out (RefreshToken).
        self.token = self.signal.token();
        self.signal.close().await;
        let backoff = Backoff::default();
        let mut last_err = why;
        let mut resumable = true;
        for attempt in 1..=backoff.max_attempts {
            self.core.set_reconnecting(attempt, backoff.max_attempts);
            self.flush_outputs(true).await;
            let delay = backoff.delay(attempt).unwrap_or(Duration::from_secs(1));
            if self
                .serve_until(tokio::time::sleep(delay), false)
                .await
                .is_none()
            {
                return false;
            }
            if resumable && lost_at.elapsed() < RESUME_WINDOW {
                self.drain_old_signal_events();
                let signal = self.signal.clone();
                let restart = async move { signal.restart(reason).await };
                match self.serve_until(restart, false).await {
                    None => return false,
                    Some(Ok(_resp)) => {
                        // An offer made during the outage is superseded by the
                        // resume's ICE-restart offer (one answer per offer in flight).
                        self.held_signals
                            .retain(|m| !matches!(m, proto::signal_request::Message::Offer(_)));
                        self.core.resume(Instant::now().into_std());
                        self.tcp.close_all();
                        // The ICE-restart offer and SyncState pass through while the
                        // signal client still holds everything else back.
                        self.flush().await;
                        match self.await_transport().await {
                            None => return false,
                            Some(true) => {
                                tracing::info!(
                                    "resumed the session on attempt {attempt} after {:?}",
                                    lost_at.elapsed()
                                );
                                self.signal.set_reconnected().await;
                                self.core.resumed();
                                return true;
                            }
                            Some(false) => {
                                last_err = format!(
                                    "the media transport did not come back (publisher {}, subscriber {})",
                                    self.core.is_connected(),
                                    self.core.is_subscriber_connected()
                                );
                                tracing::info!("resume attempt {attempt}: {last_err}");
                                self.signal.close().await;
                                continue;
                            }
                        }
                    }
                    Some(Err(e @ livekit_signaling::SignalError::LeaveRequest { .. })) => {
                        // The server no longer has the session (e.g. it restarted):
                        // the next attempt rejoins in full, as the SDKs do. (Rejoining
                        // at once made the server hand the old participant's place to
                        // the new one, so other participants never saw it leave.)
                        tracing::info!("resume refused: {e}");
                        resumable = false;
                        last_err = e.to_string();
                        continue;
                    }
                    Some(Err(e)) => {
                        tracing::info!("resume attempt {attempt} failed: {e}");
                        last_err = e.to_string();
                        continue;
                    }
                }
            }
            let (url, token, subscribe) = (self.url.clone(), self.token.clone(), self.subscribe);
            let connect = async move {
                SignalClient::connect(&url, &token, signal_options(subscribe), None).await
            };
            match self.serve_until(connect, false).await {
                None => return false,
                Some(Ok((client, join, events))) => {
                    tracing::info!("rejoined on attempt {attempt}");
                    self.signal = Arc::new(client);
                    self.signal_events = events;
                    // Requests held for the old session mean nothing to the new one.
                    self.held_signals.clear();
                    self.core.rejoin(&join, Instant::now().into_std());
                    self.tcp.close_all();
                    return true;
                }
                Some(Err(e)) => {
                    tracing::info!("reconnect attempt {attempt} failed: {e}");
                    last_err = e.to_string();
                }
            }
        }
        self.core.set_failed(format!(
            "gave up after {} reconnect attempts; last error: {last_err}",
            backoff.max_attempts
        ));
        self.flush().await;
        false
    }

    /// Takes what the closed signal connection left in the event channel before a
    /// resume reuses it: messages still count, its close notices are stale.
    fn drain_old_signal_events(&mut self) {
        while let Ok(ev) = self.signal_events.try_recv() {
            if let SignalEvent::Message(m) = ev {
                self.core.handle_signal(*m, Instant::now().into_std());
            }
        }
    }

    /// After a resume: waits until both transports are connected again (after a
    /// transport loss the ICE restarts need the server's offer and answer, so
    /// signal messages are handled meanwhile). `None` if the app left.
    async fn await_transport(&mut self) -> Option<bool> {
        self.signal_lost = false;
        let until = Instant::now() + RESUME_TRANSPORT_TIMEOUT;
        while !(self.core.is_connected() && self.core.is_subscriber_connected()) {
            if Instant::now() >= until || self.signal_lost {
                return Some(false);
            }
            self.serve_until(tokio::time::sleep(Duration::from_millis(50)), true)
                .await?;
        }
        Some(true)
    }

    /// Runs `fut` (a backoff delay, a resume or a rejoin) while the media plane
    /// keeps going: datagrams, timers and media still flow while the transport is
    /// up (a signal-only outage need not interrupt the stream), and commands still
    /// run. With `signal_live` the signal connection is usable (messages are sent
    /// and received); otherwise requests are held for later. Returns `None` if the
    /// app left meanwhile.
    async fn serve_until<T>(
        &mut self,
        fut: impl std::future::Future<Output = T>,
        signal_live: bool,
    ) -> Option<T> {
        tokio::pin!(fut);
        let mut bufs = RecvBufs::new();
        loop {
            if signal_live {
                self.flush().await;
            } else {
                self.flush_outputs(true).await;
            }
            let deadline = self.deadline();
            let listen_signal = signal_live && !self.signal_lost;
            match self
                .turn(fut.as_mut(), listen_signal, deadline, &mut bufs)
                .await
            {
                Turn::Served => {}
                Turn::Done(r) => return Some(r),
                Turn::SignalLost(_) => self.signal_lost = true,
                Turn::Command(Command::Leave(done)) => {
                    self.core.leave(Instant::now().into_std());
                    self.flush_outputs(true).await;
                    let _ = done.send(());
                    return None;
                }
                Turn::Command(cmd) => {
                    let _ = self.command(cmd).await;
                }
                Turn::HandlesGone => return None,
            }
        }
    }

    /// Received datagrams are dropped: a simulated outage, or UDP blocked (both
    /// ways, as a firewall would).
    fn udp_dropped(&self, pc: PcKind) -> bool {
        self.block_udp || self.dark(pc)
    }

    /// A datagram read from `pc`'s UDP socket into `buf` goes to the core, unless
    /// UDP is blocked or `pc` dark (tests); read errors are left to the next read.
    fn udp_received(&mut self, pc: PcKind, r: std::io::Result<(usize, SocketAddr)>, buf: &[u8]) {
        if let Ok((n, src)) = r
            && !self.udp_dropped(pc)
        {
            let local = match pc {
                PcKind::Publisher => self.pub_addr,
                PcKind::Subscriber => self.sub_addr,
            };
            self.core
                .handle_receive(pc, src, local, &buf[..n], Instant::now().into_std());
        }
    }

    /// A frame or the end of an ICE-TCP connection (see [`crate::tcp`]).
    fn tcp_event(&mut self, ev: TcpEvent) {
        match ev {
            TcpEvent::Frame { pc, .. } if self.dark(pc) => {}
            TcpEvent::Frame { pc, remote, data } => {
                let local = crate::tcp::active_addr(match pc {
                    PcKind::Publisher => self.pub_addr,
                    PcKind::Subscriber => self.sub_addr,
                });
                let now = Instant::now().into_std();
                self.core.handle_receive_tcp(pc, remote, local, &data, now);
            }
            TcpEvent::Closed {
                pc,
                remote,
                id,
                error,
            } => {
                if self.tcp.closed(pc, remote, id) {
                    tracing::info!("{pc:?} ICE-TCP connection to {remote} ended: {error}");
                    self.core.tcp_closed(pc, remote);
                }
            }
        }
    }

    /// Hands queued media to the core; with the transport down it is discarded
    /// and the video frames counted as dropped.
    fn pump_media(&mut self) {
        let now = Instant::now().into_std();
        let connected = self.core.is_connected();
        for (cid, q, seen) in &mut self.video {
            let Ok(mut layers) = q.layers.lock() else {
                continue;
            };
            for (layer, d) in layers.dropped() {
                let before = match seen.iter_mut().find(|(l, _)| *l == layer) {
                    Some((_, n)) => std::mem::replace(n, d),
                    None => {
                        seen.push((layer, d));
                        0
                    }
                };
                if d > before {
                    self.core.count_dropped_frames(cid, layer, d - before);
                }
            }
            let frames = layers.drain();
            drop(layers);
            for f in frames {
                if connected {
                    self.core.write_video(cid, &f, now);
                } else {
                    self.core.count_dropped_frames(cid, f.layer, 1);
                }
            }
        }
        for (cid, q) in &self.audio {
            for p in q.drain() {
                if connected {
                    self.core.write_audio(cid, &p, now);
                }
            }
        }
    }

    /// Returns the leave acknowledgement when the driver must stop.
    async fn command(&mut self, cmd: Command) -> Option<tokio::sync::oneshot::Sender<()>> {
        let now = Instant::now().into_std();
        match cmd {
            Command::PublishVideo(opts, q, reply) => {
                let cid = self.core.publish_video(&opts, now);
                self.video.push((cid.clone(), q, Vec::new()));
                let _ = reply.send(cid);
            }
            Command::PublishAudio(opts, q, reply) => {
                let cid = self.core.publish_audio(&opts, now);
                self.audio.push((cid.clone(), q));
                let _ = reply.send(cid);
            }
            Command::SetMuted(cid, m) => self.core.set_muted(&cid, m),
            Command::SetAttributes(a) => self.core.set_attributes(a, now),
            Command::Unpublish(cid) => {
                self.video.retain(|(c, _, _)| c != &cid);
                self.audio.retain(|(c, _)| c != &cid);
                self.core.unpublish(&cid, now);
            }
            Command::Chat(text) => self.core.send_chat(&text, now_ms(), now),
            Command::Data(p, r, topic) => self.core.send_data(&p, r, topic.as_deref(), now),
            Command::RequestKeyframe(sid) => self.core.request_keyframe(&sid, now),
            Command::SetVideoQuality(sid, q) => self.core.set_video_quality(&sid, q, now),
            // Sent by the next flush (never from inside a resume, see `held_signals`).
            Command::Simulate(sc) => {
                self.held_signals
                    .push(proto::signal_request::Message::Simulate(
                        proto::SimulateScenario { scenario: Some(sc) },
                    ))
            }
            Command::ResetTcp => self.tcp.reset_all(),
            Command::Leave(done) => {
                self.core.leave(now);
                self.flush().await;
                self.signal.close().await;
                return Some(done);
            }
        }
        None
    }
}
