//! TURN relay candidates (RFC 8656) through the TURN servers the JoinResponse
//! offers: LiveKit's embedded TURN hands out `turn:<ip>:<port>?transport=udp`
//! and `turns:<domain>:443?transport=tcp` when `turn.enabled` is set. A creator
//! whose network blocks UDP and LiveKit's TCP port still reaches the SFU that way
//! (TURN/TLS looks like HTTPS to a firewall).
//!
//! The protocol (Allocate with the long-term credential's 401 → realm/nonce →
//! retry, Refresh before the lifetime ends, CreatePermission, Send and Data
//! indications, ChannelData) is `turn-client-proto`'s sans-IO client; the
//! padding ChannelData takes on TCP and TLS is [`framing`]'s. This module parses
//! the servers ([`parse_ice_servers`]), owns the sockets (UDP, TCP, TLS through
//! rustls) in small tasks, and moves bytes between the clients and the driver:
//! str0m gets one relayed candidate per allocation (one allocation per peer
//! connection and server, so data relayed back says which PC it is for), its
//! transmits from that address go out through the allocation, and peer data
//! relayed back is fed to str0m with the relayed address as destination.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use livekit_protocol as proto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::time::Instant;
use turn_client_proto::api::{TurnClientApi, TurnConfig, TurnEvent, TurnPollRet, TurnRecvRet};
use turn_client_proto::client::TurnClient;
use turn_client_proto::tcp::TurnClientTcp;
use turn_client_proto::types::{TransportType, TurnCredentials};
use turn_client_proto::udp::TurnClientUdp;

use crate::types::{PcKind, RelayProtocol};

mod framing;

/// How long connecting (TCP, TLS) and allocating may take before a server is
/// given up for this session.
pub(crate) const ALLOCATE_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes queued to one server's socket; beyond it packets are dropped, like
/// datagrams on a congested path.
const SEND_QUEUE: usize = 512;
/// Reads queued from all sockets to the driver.
const RECV_QUEUE: usize = 1024;

/// One TURN server of the JoinResponse, ready to connect to.
#[derive(Clone, PartialEq, Eq)]
pub struct TurnServer {
    /// How we reach the server (the relayed leg to the SFU is always UDP).
    pub protocol: RelayProtocol,
    /// Host name or IP literal (TLS checks the certificate against it).
    pub host: String,
    /// Port of the server.
    pub port: u16,
    /// Long-term credential user name (LiveKit: per participant, time limited).
    pub username: String,
    /// Long-term credential password. Never logged.
    pub credential: String,
}

// A hand-written Debug keeps the credential out of logs and error messages.
impl std::fmt::Debug for TurnServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.protocol.name(), self.host, self.port)
    }
}

/// The TURN servers among `servers` (STUN-only URLs, DTLS and unknown schemes
/// are skipped), in the server's order.
pub fn parse_ice_servers(servers: &[proto::IceServer]) -> Vec<TurnServer> {
    let mut out = Vec::new();
    for s in servers {
        if s.username.is_empty() {
            continue;
        }
        for url in &s.urls {
            if let Some((protocol, host, port)) = parse_turn_url(url) {
                let server = TurnServer {
                    protocol,
                    host,
                    port,
                    username: s.username.clone(),
                    credential: s.credential.clone(),
                };
                if !out.contains(&server) {
                    out.push(server);
                }
            }
        }
    }
    out
}

/// `turn:host[:port][?transport=udp|tcp]` or `turns:host[:port][?transport=tcp]`
/// (RFC 7065). IPv6 hosts are bracketed.
fn parse_turn_url(url: &str) -> Option<(RelayProtocol, String, u16)> {
    let (secure, rest) = if let Some(r) = url.strip_prefix("turns:") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("turn:") {
        (false, r)
    } else {
        return None;
    };
    let (hostport, query) = match rest.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (rest, None),
    };
    let transport = match query {
        None => None,
        Some(q) => Some(q.strip_prefix("transport=")?.to_ascii_lowercase()),
    };
    let protocol = match (secure, transport.as_deref()) {
        (false, None | Some("udp")) => RelayProtocol::Udp,
        (false, Some("tcp")) => RelayProtocol::Tcp,
        (true, None | Some("tcp")) => RelayProtocol::Tls,
        // TURN over DTLS and anything else: not supported.
        _ => return None,
    };
    let default_port = if secure { 5349 } else { 3478 };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        (host.to_string(), port)
    } else {
        let (h, p) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().ok()?),
            None => (hostport, default_port),
        };
        // An IPv6 literal must be bracketed.
        if h.contains(':') {
            return None;
        }
        (h.to_string(), p)
    };
    if host.is_empty() || port == 0 {
        return None;
    }
    Some((protocol, host, port))
}

/// Why a TURN server could not be used (none carries a credential).
#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    /// The host name did not resolve to an address of the local IP's family.
    #[error("cannot resolve TURN server {0}")]
    Resolve(String),
    /// A socket operation failed.
    #[error("TURN socket: {0}")]
    Io(#[from] std::io::Error),
    /// Connecting (TCP or TLS) took longer than [`ALLOCATE_TIMEOUT`].
    #[error("TURN server {0} did not answer in time")]
    Timeout(String),
    /// The TLS set-up failed (bad extra CA, bad server name).
    #[error("TURN TLS: {0}")]
    Tls(String),
}

/// The relayed candidate of one allocation, as the core announces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayCandidate {
    /// The peer connection it belongs to.
    pub pc: PcKind,
    /// The address the TURN server relays from (the candidate's address).
    pub relayed: SocketAddr,
    /// Our end of the connection to the TURN server (the candidate's base).
    pub local: SocketAddr,
    /// How we reach the TURN server.
    pub protocol: RelayProtocol,
}

/// What a socket task reports to the driver.
#[derive(Debug)]
pub(crate) enum RelayIo {
    /// Bytes read from the server (a datagram, or a piece of the TCP/TLS stream).
    Data(Vec<u8>),
    /// The connection ended; the allocation is gone.
    Closed(String),
}

/// One allocation on one TURN server for one peer connection.
#[derive(Debug)]
struct Relay {
    pc: PcKind,
    protocol: RelayProtocol,
    server: String,
    client: TurnClient,
    /// Bytes to the server's socket task.
    out: mpsc::Sender<Vec<u8>>,
    relayed: Option<SocketAddr>,
    /// The allocation failed or the connection ended.
    dead: bool,
    /// Peers we asked a permission for.
    permissions: HashSet<IpAddr>,
    /// Peers we asked a channel for.
    channels: HashSet<SocketAddr>,
    /// When the client wants [`TurnClientApi::poll`] called next.
    wake: Option<Instant>,
}

/// Every allocation of a session, and the channel their sockets report on.
#[derive(Debug)]
pub(crate) struct Relays {
    /// `turn-client-proto`'s clock counts from here.
    epoch: std::time::Instant,
    relays: Vec<Relay>,
    rx: mpsc::Receiver<(usize, RelayIo)>,
    tx: mpsc::Sender<(usize, RelayIo)>,
    /// Packets wrapped and handed to the sockets (stats).
    pub(crate) sent: u64,
    /// Of those, the ones framed as ChannelData (stats).
    pub(crate) sent_channel_data: u64,
}

/// TLS trust: the system's web roots plus an optional extra CA (PEM), e.g. a
/// company's own or a test's.
pub(crate) fn tls_config(extra_ca_pem: Option<&[u8]>) -> Result<rustls::ClientConfig, TurnError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = extra_ca_pem {
        for c in CertificateDer::pem_slice_iter(pem) {
            let c = c.map_err(|e| TurnError::Tls(format!("extra CA: {e}")))?;
            roots
                .add(c)
                .map_err(|e| TurnError::Tls(format!("extra CA: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TurnError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(cfg)
}

impl Relays {
    /// No allocation (no TURN server offered, or TURN not wanted).
    pub(crate) fn none() -> Self {
        let (tx, rx) = mpsc::channel(1);
        Self {
            epoch: std::time::Instant::now(),
            relays: Vec::new(),
            rx,
            tx,
            sent: 0,
            sent_channel_data: 0,
        }
    }

    fn now(&self, now: Instant) -> turn_client_proto::stun::Instant {
        let d = now.into_std().saturating_duration_since(self.epoch);
        turn_client_proto::stun::Instant::from_nanos(
            i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        )
    }

    /// Connects to every server and allocates one relayed address per peer
    /// connection in `pcs`, waiting at most [`ALLOCATE_TIMEOUT`]. Servers that
    /// fail are logged and left out; the result may hold no allocation at all.
    pub(crate) async fn allocate(
        servers: &[TurnServer],
        pcs: &[PcKind],
        local_ip: IpAddr,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Self {
        let mut me = Self::none();
        let (tx, rx) = mpsc::channel(RECV_QUEUE);
        me.tx = tx;
        me.rx = rx;
        let deadline = Instant::now() + ALLOCATE_TIMEOUT;
        for server in servers {
            for &pc in pcs {
                let idx = me.relays.len();
                let r = tokio::time::timeout_at(
                    deadline,
                    connect(server, pc, local_ip, tls.clone(), idx, me.tx.clone()),
                )
                .await;
                match r {
                    Ok(Ok(relay)) => me.relays.push(relay),
                    Ok(Err(e)) => tracing::warn!("TURN {server:?} for {pc:?}: {e}"),
                    Err(_) => tracing::warn!("TURN {server:?} for {pc:?}: connect timed out"),
                }
            }
        }
        // Drive the allocations until each has an address or failed.
        let start = Instant::now();
        me.pump(Instant::now());
        while me.relays.iter().any(|r| r.relayed.is_none() && !r.dead) {
            let wake = me.wake().unwrap_or(deadline).min(deadline);
            tokio::select! {
                Some((idx, io)) = me.rx.recv() => {
                    let _ = me.handle_io(idx, io, Instant::now());
                }
                _ = tokio::time::sleep_until(wake) => {}
            }
            if Instant::now() >= deadline {
                break;
            }
            me.pump(Instant::now());
        }
        for r in &me.relays {
            match r.relayed {
                Some(a) => tracing::info!(
                    "TURN {:?} relayed address for {:?}: {a} (allocated in {} ms)",
                    r.server,
                    r.pc,
                    start.elapsed().as_millis()
                ),
                None => tracing::warn!("TURN {:?} for {:?}: no allocation", r.server, r.pc),
            }
        }
        me
    }

    /// The relayed candidates that are allocated.
    pub(crate) fn candidates(&self) -> Vec<RelayCandidate> {
        self.relays
            .iter()
            .filter(|r| !r.dead)
            .filter_map(|r| {
                Some(RelayCandidate {
                    pc: r.pc,
                    relayed: r.relayed?,
                    local: r.client.local_addr(),
                    protocol: r.protocol,
                })
            })
            .collect()
    }

    /// Whether `source` (a transmit's source) is one of our relayed addresses.
    pub(crate) fn owns(&self, source: SocketAddr) -> bool {
        self.relays.iter().any(|r| r.relayed == Some(source))
    }

    /// The next read from any socket.
    pub(crate) async fn recv(&mut self) -> Option<(usize, RelayIo)> {
        if self.relays.is_empty() {
            return std::future::pending().await;
        }
        self.rx.recv().await
    }

    /// When [`Relays::pump`] must run next (refreshes, retransmissions).
    pub(crate) fn wake(&self) -> Option<Instant> {
        self.relays
            .iter()
            .filter(|r| !r.dead)
            .filter_map(|r| r.wake)
            .min()
    }

    /// Sends `data` from the relayed address `source` to the peer `to`. The first
    /// packet to a peer asks for its permission and is dropped (ICE retries); the
    /// first one sent asks for a channel, so that media goes as ChannelData (a 4-byte
    /// header where a Send indication takes 36), as libwebrtc's TURN port does. The
    /// client refreshes a channel while it is used.
    pub(crate) fn send(&mut self, source: SocketAddr, to: SocketAddr, data: &[u8], now: Instant) {
        let t = self.now(now);
        let Some(r) = self
            .relays
            .iter_mut()
            .find(|r| r.relayed == Some(source) && !r.dead)
        else {
            return;
        };
        match r.client.send_to(TransportType::Udp, to, data, t) {
            Ok(Some(tb)) => {
                let bytes = tb.build().data;
                let as_channel = framing::is_channel_data(&bytes);
                if r.out.try_send(bytes).is_ok() {
                    self.sent += 1;
                    self.sent_channel_data += u64::from(as_channel);
                }
                // Asked once per peer: after a refusal, Send indications still work.
                if !as_channel
                    && r.channels.insert(to)
                    && let Err(e) = r.client.bind_channel(TransportType::Udp, to, t)
                {
                    tracing::debug!("TURN {:?} channel to {to}: {e}", r.server);
                }
            }
            Ok(None) => {}
            Err(turn_client_proto::api::SendError::NoPermission) => {
                if r.permissions.insert(to.ip())
                    && let Err(e) = r.client.create_permission(TransportType::Udp, to.ip(), t)
                {
                    tracing::debug!("TURN {:?} permission for {to}: {e}", r.server);
                }
            }
            Err(e) => tracing::debug!("TURN {:?} send to {to}: {e}", r.server),
        }
        self.pump(now);
    }

    /// Feeds what relay `idx`'s socket read to its client; returns the peer data
    /// it carried: (peer connection, peer, our relayed address, data).
    pub(crate) fn handle_io(
        &mut self,
        idx: usize,
        io: RelayIo,
        now: Instant,
    ) -> Vec<(PcKind, SocketAddr, SocketAddr, Vec<u8>)> {
        let t = self.now(now);
        let mut out = Vec::new();
        let Some(r) = self.relays.get_mut(idx) else {
            return out;
        };
        match io {
            RelayIo::Closed(why) => {
                if !r.dead {
                    tracing::warn!(
                        "TURN {:?} for {:?}: connection ended: {why}",
                        r.server,
                        r.pc
                    );
                }
                r.dead = true;
            }
            RelayIo::Data(data) => {
                let transport = match r.protocol {
                    RelayProtocol::Udp => TransportType::Udp,
                    RelayProtocol::Tcp | RelayProtocol::Tls => TransportType::Tcp,
                };
                let tr = turn_client_proto::stun::agent::Transmit::new(
                    data.as_slice(),
                    transport,
                    r.client.remote_addr(),
                    r.client.local_addr(),
                );
                let relayed = r.relayed;
                match r.client.recv(tr, t) {
                    TurnRecvRet::PeerData(pd) => {
                        if let Some(relayed) = relayed {
                            out.push((r.pc, pd.peer, relayed, pd.data().to_vec()));
                        }
                    }
                    TurnRecvRet::Handled
                    | TurnRecvRet::Ignored(_)
                    | TurnRecvRet::PeerIcmp { .. } => {}
                }
                while let Some(pd) = r.client.poll_recv(t) {
                    if let Some(relayed) = relayed {
                        out.push((r.pc, pd.peer, relayed, pd.data().to_vec()));
                    }
                }
            }
        }
        self.pump(now);
        out
    }

    /// Runs every client's timers and sends what they want sent; takes note of
    /// allocations, permissions and failures.
    pub(crate) fn pump(&mut self, now: Instant) {
        let t = self.now(now);
        let epoch = self.epoch;
        for r in self.relays.iter_mut().filter(|r| !r.dead) {
            r.wake = match r.client.poll(t) {
                TurnPollRet::WaitUntil(w) => {
                    let nanos = u64::try_from(w.as_nanos()).unwrap_or(0);
                    Some(Instant::from_std(epoch + Duration::from_nanos(nanos)))
                }
                TurnPollRet::Closed => {
                    tracing::warn!("TURN {:?} for {:?}: allocation closed", r.server, r.pc);
                    r.dead = true;
                    None
                }
                TurnPollRet::AllocateTcpSocket { .. } | TurnPollRet::TcpClose { .. } => None,
            };
            while let Some(tr) = r.client.poll_transmit(t) {
                let _ = r.out.try_send(tr.data.as_ref().to_vec());
            }
            while let Some(ev) = r.client.poll_event() {
                match ev {
                    TurnEvent::AllocationCreated(TransportType::Udp, addr) => {
                        r.relayed = Some(addr);
                    }
                    TurnEvent::AllocationCreateFailed(_) => {
                        tracing::warn!("TURN {:?} for {:?}: allocation refused", r.server, r.pc);
                        r.dead = true;
                    }
                    TurnEvent::PermissionCreateFailed(_, ip) => {
                        tracing::warn!("TURN {:?}: permission for {ip} refused", r.server);
                        r.permissions.remove(&ip);
                    }
                    other => tracing::debug!("TURN {:?}: {other:?}", r.server),
                }
            }
        }
    }

    /// Removes every allocation on the servers (best effort: leaving).
    pub(crate) fn close(&mut self, now: Instant) {
        let t = self.now(now);
        for r in self.relays.iter_mut().filter(|r| !r.dead) {
            let _ = r.client.delete(t);
            while let Some(tr) = r.client.poll_transmit(t) {
                let _ = r.out.try_send(tr.data.as_ref().to_vec());
            }
            r.dead = true;
        }
    }
}

/// Resolves `server.host` to an address of `local_ip`'s family.
async fn resolve(server: &TurnServer, local_ip: IpAddr) -> Result<SocketAddr, TurnError> {
    let addrs = tokio::net::lookup_host((server.host.as_str(), server.port))
        .await
        .map_err(|_| TurnError::Resolve(server.host.clone()))?;
    let mut addrs: Vec<SocketAddr> = addrs.collect();
    addrs.sort_by_key(|a| a.is_ipv4() != local_ip.is_ipv4());
    addrs
        .into_iter()
        .find(|a| a.is_ipv4() == local_ip.is_ipv4())
        .ok_or_else(|| TurnError::Resolve(server.host.clone()))
}

/// Opens the connection to `server` for `pc` and starts its Allocate; the socket
/// task reports reads as relay `idx` on `tx`.
async fn connect(
    server: &TurnServer,
    pc: PcKind,
    local_ip: IpAddr,
    tls: Option<Arc<rustls::ClientConfig>>,
    idx: usize,
    tx: mpsc::Sender<(usize, RelayIo)>,
) -> Result<Relay, TurnError> {
    let remote = resolve(server, local_ip).await?;
    let config = TurnConfig::new(TurnCredentials::new(&server.username, &server.credential));
    let (out, out_rx) = mpsc::channel::<Vec<u8>>(SEND_QUEUE);
    let client = match server.protocol {
        RelayProtocol::Udp => {
            let sock = UdpSocket::bind(SocketAddr::new(local_ip, 0)).await?;
            sock.connect(remote).await?;
            let local = sock.local_addr()?;
            tokio::spawn(udp_task(sock, idx, tx, out_rx));
            TurnClient::from(TurnClientUdp::allocate(local, remote, config))
        }
        RelayProtocol::Tcp | RelayProtocol::Tls => {
            let stream = TcpStream::connect(remote).await?;
            let _ = stream.set_nodelay(true);
            let local = stream.local_addr()?;
            if server.protocol == RelayProtocol::Tls {
                let cfg = match tls {
                    Some(c) => c,
                    None => Arc::new(tls_config(None)?),
                };
                let name = rustls::pki_types::ServerName::try_from(server.host.clone())
                    .map_err(|e| TurnError::Tls(e.to_string()))?;
                let stream = tokio_rustls::TlsConnector::from(cfg)
                    .connect(name, stream)
                    .await
                    .map_err(|e| TurnError::Tls(e.to_string()))?;
                let (r, w) = tokio::io::split(stream);
                tokio::spawn(stream_reader(r, idx, tx));
                tokio::spawn(stream_writer(w, out_rx));
            } else {
                let (r, w) = stream.into_split();
                tokio::spawn(stream_reader(r, idx, tx));
                tokio::spawn(stream_writer(w, out_rx));
            }
            TurnClient::from(TurnClientTcp::allocate(local, remote, config))
        }
    };
    Ok(Relay {
        pc,
        protocol: server.protocol,
        server: format!("{server:?}"),
        client,
        out,
        relayed: None,
        dead: false,
        permissions: HashSet::new(),
        channels: HashSet::new(),
        wake: None,
    })
}

/// Moves datagrams between the connected UDP socket and the driver until either
/// side goes.
async fn udp_task(
    sock: UdpSocket,
    idx: usize,
    tx: mpsc::Sender<(usize, RelayIo)>,
    mut out: mpsc::Receiver<Vec<u8>>,
) {
    let mut buf = vec![0u8; 2048];
    loop {
        tokio::select! {
            r = sock.recv(&mut buf) => match r {
                Ok(n) => {
                    if tx.send((idx, RelayIo::Data(buf[..n].to_vec()))).await.is_err() {
                        return;
                    }
                }
                // ICMP port unreachable and the like: the next read may succeed.
                Err(e) => tracing::debug!("TURN UDP read: {e}"),
            },
            m = out.recv() => match m {
                Some(m) => {
                    if let Err(e) = sock.send(&m).await {
                        tracing::debug!("TURN UDP send: {e}");
                    }
                }
                None => return,
            },
        }
    }
}

/// Forwards what the server sends on a TCP or TLS stream, a whole STUN message
/// or ChannelData at a time, padding dropped.
async fn stream_reader<R: tokio::io::AsyncRead + Unpin>(
    mut r: R,
    idx: usize,
    tx: mpsc::Sender<(usize, RelayIo)>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut frames = framing::StreamDeframer::default();
    loop {
        match r.read(&mut buf).await {
            Ok(0) => {
                let _ = tx
                    .send((idx, RelayIo::Closed("closed by the server".into())))
                    .await;
                return;
            }
            Ok(n) => match frames.push(&buf[..n]) {
                Ok(msgs) => {
                    for m in msgs {
                        if tx.send((idx, RelayIo::Data(m))).await.is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    let _ = tx.send((idx, RelayIo::Closed(e.to_string()))).await;
                    return;
                }
            },
            Err(e) => {
                let _ = tx.send((idx, RelayIo::Closed(e.to_string()))).await;
                return;
            }
        }
    }
}

/// Writes what the client wraps, in order and padded for a stream, until the
/// driver drops the queue.
async fn stream_writer<W: tokio::io::AsyncWrite + Unpin>(
    mut w: W,
    mut out: mpsc::Receiver<Vec<u8>>,
) {
    while let Some(mut m) = out.recv().await {
        framing::pad_for_stream(&mut m);
        if let Err(e) = w.write_all(&m).await {
            tracing::debug!("TURN stream write: {e}");
            return;
        }
    }
    let _ = w.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(urls: &[&str]) -> proto::IceServer {
        proto::IceServer {
            urls: urls.iter().map(|u| u.to_string()).collect(),
            username: "user".into(),
            credential: "secret-pass".into(),
        }
    }

    #[test]
    fn parses_livekit_ice_servers() {
        let got = parse_ice_servers(&[server(&[
            "turn:10.0.0.5:3478?transport=udp",
            "turns:turn.example.com:443?transport=tcp",
            "stun:stun.example.com:3478",
        ])]);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].protocol, RelayProtocol::Udp);
        assert_eq!((got[0].host.as_str(), got[0].port), ("10.0.0.5", 3478));
        assert_eq!(got[1].protocol, RelayProtocol::Tls);
        assert_eq!(
            (got[1].host.as_str(), got[1].port),
            ("turn.example.com", 443)
        );
        assert_eq!(got[1].username, "user");
    }

    #[test]
    fn parses_url_variants() {
        assert_eq!(
            parse_turn_url("turn:h?transport=tcp"),
            Some((RelayProtocol::Tcp, "h".into(), 3478))
        );
        assert_eq!(
            parse_turn_url("turns:h"),
            Some((RelayProtocol::Tls, "h".into(), 5349))
        );
        assert_eq!(
            parse_turn_url("turn:[::1]:5000"),
            Some((RelayProtocol::Udp, "::1".into(), 5000))
        );
        // DTLS, STUN, junk ports and bare IPv6 are refused.
        assert_eq!(parse_turn_url("turns:h:5349?transport=udp"), None);
        assert_eq!(parse_turn_url("stun:h:3478"), None);
        assert_eq!(parse_turn_url("turn:h:notaport"), None);
        assert_eq!(parse_turn_url("turn:h:0"), None);
        assert_eq!(parse_turn_url("turn:::1:3478"), None);
        assert_eq!(parse_turn_url("turn:h:3478?foo=bar"), None);
    }

    #[test]
    fn servers_without_credentials_are_skipped_and_debug_hides_the_password() {
        let mut s = server(&["turn:h:1"]);
        s.username.clear();
        assert!(parse_ice_servers(&[s]).is_empty());
        let got = parse_ice_servers(&[server(&["turn:h:1", "turn:h:1"])]);
        assert_eq!(got.len(), 1, "duplicates are one server");
        let shown = format!("{:?}", got[0]);
        assert!(!shown.contains("secret-pass"), "{shown}");
        assert!(!shown.contains("user"), "{shown}");
    }

    #[test]
    fn extra_ca_must_be_pem_certificates() {
        assert!(tls_config(None).is_ok());
        assert!(
            tls_config(Some(
                b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"
            ))
            .is_err()
        );
    }
}
