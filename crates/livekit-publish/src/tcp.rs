//! ICE over TCP (RFC 6544): LiveKit listens on `rtc.tcp_port` and announces it as
//! a passive host candidate; we are the active side. str0m does the ICE and
//! hands out `Transmit { proto: Tcp, destination: <passive candidate> }`; this
//! module owns the sockets: one connection per (peer connection, remote
//! candidate), opened on the first packet to it, packets framed with RFC 4571
//! (2-byte big-endian length), received frames fed back as `Receive { proto: Tcp }`.
//!
//! The sans-IO parts ([`FrameDecoder`], [`encode_frame`], `local_candidates`)
//! are unit-tested here; `TcpLinks` is the tokio side the driver uses.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use str0m::Candidate;
use str0m::net::TcpType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::types::{IceTransport, PcKind};

/// Largest frame accepted from the server. ICE, DTLS, SCTP and SRTP packets fit
/// an MTU (~1.2-1.5 kB); a longer length prefix means a broken stream.
pub(crate) const MAX_FRAME: usize = 8192;
/// How long connecting to a passive candidate may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// After a failed or dropped connection, packets to that candidate are dropped
/// this long before connecting again (ICE keeps retrying its checks).
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Packets queued per connection (also while it connects); beyond it packets
/// are dropped, like datagrams on a congested path.
const SEND_QUEUE: usize = 512;
/// Frames queued from all readers to the driver; a full queue makes the
/// readers wait (TCP flow control pushes back on the server).
const RECV_QUEUE: usize = 512;
/// Port of the active candidates we announce: an active candidate has no
/// listening port, RFC 6544 §4.5 says to use 9 ("discard").
pub(crate) const ACTIVE_PORT: u16 = 9;

/// The local ICE candidates of a peer connection whose UDP socket is `udp`: a
/// UDP host candidate and/or an active TCP host candidate on the same IP.
pub(crate) fn local_candidates(transport: IceTransport, udp: SocketAddr) -> Vec<Candidate> {
    let mut out = Vec::new();
    if transport == IceTransport::Relay {
        return out;
    }
    if transport != IceTransport::TcpOnly
        && let Ok(c) = Candidate::host(udp, "udp")
    {
        out.push(c);
    }
    if transport != IceTransport::UdpOnly
        && let Ok(c) = Candidate::builder()
            .tcp()
            .host(active_addr(udp))
            .tcptype(TcpType::Active)
            .build()
    {
        out.push(c);
    }
    out
}

/// The address of our active TCP candidate: received frames are fed to str0m
/// with it as destination (it is the candidate's base).
pub(crate) fn active_addr(udp: SocketAddr) -> SocketAddr {
    SocketAddr::new(udp.ip(), ACTIVE_PORT)
}

/// A frame length the framing cannot carry or the reader refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("RFC 4571 frame of {0} bytes is too long")]
pub struct FrameTooLong(pub usize);

/// Prefixes `payload` with its 2-byte big-endian length (RFC 4571).
pub fn encode_frame(payload: &[u8]) -> Result<Vec<u8>, FrameTooLong> {
    let len = u16::try_from(payload.len()).map_err(|_| FrameTooLong(payload.len()))?;
    let mut out = Vec::with_capacity(payload.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// Splits a TCP byte stream into RFC 4571 frames. Holds at most one partial
/// frame plus the last read; a length above `max` is an error (the stream
/// cannot be resynchronised, the connection must go).
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    pos: usize,
    max: usize,
}

impl FrameDecoder {
    /// A decoder refusing frames longer than `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            pos: 0,
            max,
        }
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame, `None` until one is complete.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameTooLong> {
        let rest = &self.buf[self.pos..];
        if rest.len() < 2 {
            return Ok(None);
        }
        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        if len > self.max {
            return Err(FrameTooLong(len));
        }
        if rest.len() < 2 + len {
            return Ok(None);
        }
        let frame = rest[2..2 + len].to_vec();
        self.pos += 2 + len;
        Ok(Some(frame))
    }

    /// Bytes held (partial frame and undelivered frames).
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }
}

/// What the connections report to the driver.
#[derive(Debug)]
pub(crate) enum TcpEvent {
    /// A frame from `remote` on the connection of `pc`.
    Frame {
        pc: PcKind,
        remote: SocketAddr,
        data: Vec<u8>,
    },
    /// The connection failed to open or ended.
    Closed {
        pc: PcKind,
        remote: SocketAddr,
        id: u64,
        error: String,
    },
}

enum Link {
    Open {
        id: u64,
        tx: mpsc::Sender<Vec<u8>>,
        opened: Instant,
    },
    Down {
        since: Instant,
    },
}

/// The driver's ICE-TCP connections, keyed by peer connection and remote
/// passive candidate.
pub(crate) struct TcpLinks {
    links: HashMap<(PcKind, SocketAddr), Link>,
    next_id: u64,
    events_tx: mpsc::Sender<TcpEvent>,
    events_rx: mpsc::Receiver<TcpEvent>,
    /// Frames handed to a connection's queue.
    pub frames_sent: u64,
    /// Connections opened (attempts).
    pub connects: u64,
}

impl TcpLinks {
    pub fn new() -> Self {
        let (events_tx, events_rx) = mpsc::channel(RECV_QUEUE);
        Self {
            links: HashMap::new(),
            next_id: 0,
            events_tx,
            events_rx,
            frames_sent: 0,
            connects: 0,
        }
    }

    /// Sends `packet` to `remote`, connecting first if needed. Never waits: a
    /// full queue or a connection that just failed drops the packet.
    pub fn send(&mut self, pc: PcKind, remote: SocketAddr, packet: &[u8]) {
        let frame = match encode_frame(packet) {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!("ICE-TCP to {remote}: {e}");
                return;
            }
        };
        let key = (pc, remote);
        let reopen = match self.links.get(&key) {
            None => true,
            Some(Link::Down { since }) => since.elapsed() >= RETRY_AFTER,
            Some(Link::Open { .. }) => false,
        };
        if reopen {
            self.next_id += 1;
            self.connects += 1;
            let (tx, rx) = mpsc::channel(SEND_QUEUE);
            tokio::spawn(run_link(
                pc,
                remote,
                self.next_id,
                rx,
                self.events_tx.clone(),
            ));
            self.links.insert(
                key,
                Link::Open {
                    id: self.next_id,
                    tx,
                    opened: Instant::now(),
                },
            );
        }
        if let Some(Link::Open { tx, .. }) = self.links.get(&key) {
            if tx.try_send(frame).is_ok() {
                self.frames_sent += 1;
            } else {
                tracing::debug!("ICE-TCP to {remote}: send queue full, packet dropped");
            }
        }
    }

    /// The next frame or connection end.
    pub async fn recv(&mut self) -> Option<TcpEvent> {
        self.events_rx.recv().await
    }

    /// Records that connection `id` ended. Returns when it was opened if it was the
    /// current connection to that candidate (a stale one, e.g. closed by
    /// [`TcpLinks::close_all`], returns `None`).
    pub fn closed(&mut self, pc: PcKind, remote: SocketAddr, id: u64) -> Option<Instant> {
        let key = (pc, remote);
        match self.links.get(&key) {
            Some(Link::Open {
                id: current,
                opened,
                ..
            }) if *current == id => {
                let opened = *opened;
                self.links.insert(
                    key,
                    Link::Down {
                        since: Instant::now(),
                    },
                );
                Some(opened)
            }
            _ => None,
        }
    }

    /// Shuts every connection down as if the network had reset it: each reports
    /// `Closed` as the current connection (tests of the transport-loss path).
    pub fn reset_all(&mut self) {
        for link in self.links.values_mut() {
            if let Link::Open { tx, .. } = link {
                // Replacing the sender ends the writer, which closes the socket.
                *tx = mpsc::channel(1).0;
            }
        }
    }

    /// Drops every connection (their tasks end once their queues close). An ICE
    /// restart gets fresh connections: LiveKit binds a connection to the ICE
    /// username of its first STUN request.
    pub fn close_all(&mut self) {
        self.links.clear();
    }
}

/// One connection: connect (bounded by [`CONNECT_TIMEOUT`]), then write queued
/// frames and read frames until either side ends.
async fn run_link(
    pc: PcKind,
    remote: SocketAddr,
    id: u64,
    mut rx: mpsc::Receiver<Vec<u8>>,
    events: mpsc::Sender<TcpEvent>,
) {
    let error = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(remote)).await {
        Err(_) => format!("connect timed out after {CONNECT_TIMEOUT:?}"),
        Ok(Err(e)) => format!("connect: {e}"),
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            tracing::debug!("ICE-TCP {pc:?} connected to {remote}");
            let (mut rd, mut wr) = stream.into_split();
            let reader = async {
                let mut dec = FrameDecoder::new(MAX_FRAME);
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    let n = match rd.read(&mut buf).await {
                        Ok(0) => return "closed by the server".to_string(),
                        Ok(n) => n,
                        Err(e) => return format!("read: {e}"),
                    };
                    dec.push(&buf[..n]);
                    loop {
                        match dec.next_frame() {
                            Ok(Some(data)) => {
                                let ev = TcpEvent::Frame { pc, remote, data };
                                if events.send(ev).await.is_err() {
                                    return "driver gone".to_string();
                                }
                            }
                            Ok(None) => break,
                            Err(e) => return e.to_string(),
                        }
                    }
                }
            };
            let writer = async {
                while let Some(frame) = rx.recv().await {
                    if let Err(e) = wr.write_all(&frame).await {
                        return format!("write: {e}");
                    }
                }
                "closed by us".to_string()
            };
            tokio::select! {
                e = reader => e,
                e = writer => e,
            }
        }
    };
    tracing::debug!("ICE-TCP {pc:?} to {remote} ended: {error}");
    let _ = events
        .send(TcpEvent::Closed {
            pc,
            remote,
            id,
            error,
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_across_partial_and_multiple_reads() {
        let a = encode_frame(b"hello").expect("frame");
        let b = encode_frame(&[7u8; 1200]).expect("frame");
        let empty = encode_frame(b"").expect("frame");
        let mut stream = Vec::new();
        for f in [&a, &b, &empty, &a] {
            stream.extend_from_slice(f);
        }
        // Byte by byte: every frame comes out once, exactly when complete.
        let mut dec = FrameDecoder::new(MAX_FRAME);
        let mut got = Vec::new();
        for byte in &stream {
            dec.push(std::slice::from_ref(byte));
            while let Some(f) = dec.next_frame().expect("valid") {
                got.push(f);
            }
        }
        assert_eq!(
            got,
            vec![
                b"hello".to_vec(),
                vec![7u8; 1200],
                Vec::new(),
                b"hello".to_vec()
            ]
        );
        assert_eq!(dec.buffered(), 0);

        // All in one read, then split mid-length-prefix.
        let mut dec = FrameDecoder::new(MAX_FRAME);
        dec.push(&stream[..stream.len() - 6]);
        let mut n = 0;
        while dec.next_frame().expect("valid").is_some() {
            n += 1;
        }
        assert_eq!(n, 3, "the last frame is incomplete");
        assert_eq!(dec.buffered(), a.len() - 6);
        dec.push(&stream[stream.len() - 6..]);
        assert_eq!(dec.next_frame().expect("valid"), Some(b"hello".to_vec()));
        assert_eq!(dec.next_frame().expect("valid"), None);
    }

    #[test]
    fn oversized_lengths_are_refused() {
        let mut dec = FrameDecoder::new(1500);
        dec.push(&[0x05, 0xdd]); // 1501
        assert_eq!(dec.next_frame(), Err(FrameTooLong(1501)));
        assert_eq!(encode_frame(&vec![0u8; 65_536]), Err(FrameTooLong(65_536)));
        assert_eq!(
            encode_frame(&vec![1u8; 65_535]).map(|f| f.len()),
            Ok(65_537)
        );
        assert_eq!(&encode_frame(&[9u8; 258]).expect("frame")[..2], &[1, 2]);
    }

    #[test]
    fn candidates_follow_the_transport_choice() {
        let udp: SocketAddr = "10.1.2.3:50000".parse().expect("addr");
        let sdp = |t| {
            local_candidates(t, udp)
                .iter()
                .map(|c| c.to_sdp_string())
                .collect::<Vec<_>>()
        };
        let all = sdp(IceTransport::All);
        assert_eq!(all.len(), 2, "{all:?}");
        assert!(all[0].contains("udp") && all[0].contains("10.1.2.3 50000 typ host"));
        assert!(
            all[1].contains("tcp") && all[1].contains("10.1.2.3 9 typ host tcptype active"),
            "{all:?}"
        );
        let cands = local_candidates(IceTransport::All, udp);
        assert!(cands[0].prio() > cands[1].prio(), "UDP is preferred");
        assert_eq!(sdp(IceTransport::UdpOnly), all[..1].to_vec());
        assert_eq!(sdp(IceTransport::TcpOnly), all[1..].to_vec());
        assert!(sdp(IceTransport::Relay).is_empty(), "relay only: no host");
    }

    #[tokio::test]
    async fn a_link_frames_both_ways_and_reports_the_servers_close() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let remote = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut dec = FrameDecoder::new(MAX_FRAME);
            let mut buf = [0u8; 4096];
            let mut got = Vec::new();
            while got.len() < 2 {
                let n = s.read(&mut buf).await.expect("read");
                dec.push(&buf[..n]);
                while let Some(f) = dec.next_frame().expect("valid") {
                    got.push(f);
                }
            }
            // Two frames in one write, then close.
            let mut out = encode_frame(b"pong1").expect("frame");
            out.extend(encode_frame(b"pong2").expect("frame"));
            s.write_all(&out).await.expect("write");
            got
        });
        let mut links = TcpLinks::new();
        links.send(PcKind::Publisher, remote, b"ping1");
        links.send(PcKind::Publisher, remote, b"ping2");
        assert_eq!(links.connects, 1, "one connection for both packets");
        let mut frames = Vec::new();
        let closed_id = loop {
            match tokio::time::timeout(Duration::from_secs(5), links.recv()).await {
                Ok(Some(TcpEvent::Frame {
                    pc,
                    remote: r,
                    data,
                })) => {
                    assert_eq!((pc, r), (PcKind::Publisher, remote));
                    frames.push(data);
                }
                Ok(Some(TcpEvent::Closed { id, .. })) => break id,
                other => panic!("unexpected {other:?}"),
            }
        };
        assert_eq!(frames, vec![b"pong1".to_vec(), b"pong2".to_vec()]);
        assert_eq!(
            server.await.expect("server"),
            vec![b"ping1".to_vec(), b"ping2".to_vec()]
        );
        assert!(links.closed(PcKind::Publisher, remote, closed_id).is_some());
        // Right after the drop packets are dropped, no reconnect storm.
        links.send(PcKind::Publisher, remote, b"again");
        assert_eq!(links.connects, 1);
    }

    #[tokio::test]
    async fn connecting_to_a_closed_port_is_reported() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port");
        let mut links = TcpLinks::new();
        links.send(PcKind::Subscriber, port, b"x");
        match tokio::time::timeout(Duration::from_secs(5), links.recv()).await {
            Ok(Some(TcpEvent::Closed { error, .. })) => assert!(error.contains("connect")),
            other => panic!("unexpected {other:?}"),
        }
    }
}
