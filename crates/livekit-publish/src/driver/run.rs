//! The driver task's loop: one [`Driver::turn`] waits for whatever comes first
//! (signal, datagrams, ICE-TCP, commands, queued media, the core's timer) and
//! handles what both [`Driver::run`] and [`Driver::serve_until`] handle alike,
//! and the outputs of the core are carried out here.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use livekit_protocol as proto;
use livekit_signaling::SignalEvent;
use str0m::net::Protocol;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Command, DARK_PUBLISHER, DARK_SUBSCRIBER, Driver};
use crate::core::{CoreOutput, LossNotice};
use crate::tcp::TcpEvent;
use crate::types::*;

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

    pub(super) async fn flush(&mut self) {
        for m in std::mem::take(&mut self.held_signals) {
            self.signal.send(m).await;
        }
        self.flush_outputs(false).await;
        self.pump_relays();
    }

    /// Carries out the core's outputs. With `hold_signals`, signal requests wait
    /// in `held_signals` (a resume in flight holds the signal client's lock).
    pub(super) async fn flush_outputs(&mut self, hold_signals: bool) {
        while let Some(o) = self.core.poll_output() {
            match o {
                // The watchdog's ping (see core `liveness`) needs the wall clock,
                // and means nothing once held for later.
                CoreOutput::Signal(proto::signal_request::Message::PingReq(_)) if hold_signals => {}
                CoreOutput::Signal(proto::signal_request::Message::PingReq(mut p)) => {
                    p.timestamp = now_ms();
                    self.signal
                        .send(proto::signal_request::Message::PingReq(p))
                        .await;
                }
                CoreOutput::Signal(m) if hold_signals => self.held_signals.push(m),
                CoreOutput::Signal(m) => self.signal.send(m).await,
                CoreOutput::Transmit(pc, _) if self.dark(pc) => {}
                CoreOutput::Transmit(_, t) if self.relays.owns(t.source) => {
                    self.relays
                        .send(t.source, t.destination, &t.contents, Instant::now());
                }
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
                        s.relay_packets_sent = self.relays.sent;
                        s.relay_channel_data_sent = self.relays.sent_channel_data;
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

    /// Runs the TURN clients' timers (refreshes, retransmissions) and sends what
    /// they queued.
    fn pump_relays(&mut self) {
        self.relays.pump(Instant::now());
    }

    /// The driver task: serves the core until it is disconnected or failed, the
    /// app leaves, or reconnecting gives up.
    pub(super) async fn run(mut self) {
        let mut bufs = RecvBufs::new();
        let never = std::future::pending::<()>();
        tokio::pin!(never);
        loop {
            self.flush().await;
            if matches!(
                self.core.state(),
                ConnectionState::Disconnected { .. } | ConnectionState::Failed { .. }
            ) {
                self.relays.close(Instant::now());
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
                    let loss = LossNotice::new(LossCause::SignalLost, why);
                    if !self.reconnect(loss).await {
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
                    self.relays.close(Instant::now());
                    self.signal.close().await;
                    return;
                }
            }
        }
    }

    /// When the core wants [`crate::core::Participant::handle_timeout`] called
    /// next (in a second at the latest).
    fn deadline(&self) -> Instant {
        let core = self
            .core
            .poll_timeout()
            .map(Instant::from_std)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        match self.relays.wake() {
            Some(w) => core.min(w),
            None => core,
        }
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
            Some((idx, io)) = self.relays.recv() => {
                self.relay_io(idx, io);
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
                self.pump_relays();
                self.refresh_congestion();
                Turn::Served
            }
        }
    }

    /// Runs `fut` (a backoff delay, a resume or a rejoin) while the media plane
    /// keeps going: datagrams, timers and media still flow while the transport is
    /// up (a signal-only outage need not interrupt the stream), and commands still
    /// run. With `signal_live` the signal connection is usable (messages are sent
    /// and received); otherwise requests are held for later. Returns `None` if the
    /// app left meanwhile.
    pub(super) async fn serve_until<T>(
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

    /// What a TURN server sent: peer data relayed to us goes to the core with our
    /// relayed address as destination; the rest is the TURN client's business.
    fn relay_io(&mut self, idx: usize, io: crate::turn::RelayIo) {
        let now = Instant::now();
        for (pc, peer, relayed, data) in self.relays.handle_io(idx, io, now) {
            if !self.dark(pc) {
                self.core
                    .handle_receive(pc, peer, relayed, &data, now.into_std());
            }
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
                if let Some(opened) = self.tcp.closed(pc, remote, id) {
                    tracing::info!("{pc:?} ICE-TCP connection to {remote} ended: {error}");
                    self.core.tcp_closed(pc, remote, opened.into_std());
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
        self.refresh_congestion();
    }

    /// Tells each video track's encoder whether its frames would only queue in the pacer
    /// (see core `send_queue`). Runs after media went in and on the core's timers, which
    /// is when str0m's pacer looks at its queues.
    fn refresh_congestion(&mut self) {
        let now = Instant::now().into_std();
        for (cid, q, _) in &self.video {
            let congested = self.core.video_congested(cid, now);
            q.congested.store(congested, Ordering::Relaxed);
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
            Command::SetVideoHeldBack(yes) => self.core.set_video_held_back(yes),
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
                self.relays.close(Instant::now());
                self.signal.close().await;
                return Some(done);
            }
        }
        None
    }
}
