//! A TCP proxy in front of livekit-server's signal port, for tests that cut a
//! participant's signal WebSocket while the server and the media path stay up.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

/// A TCP proxy in front of livekit-server's HTTP/WebSocket port, for the
/// signal connections of whoever is given its URL (media goes to the server's
/// UDP port directly). It can cut every open connection and refuse new ones meanwhile:
/// a signal outage while the server and the media path stay up.
pub struct SignalProxy {
    addr: std::net::SocketAddr,
    refuse: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    accepted: Arc<AtomicU32>,
    task: tokio::task::JoinHandle<()>,
}

impl SignalProxy {
    /// Listens on a free loopback port and forwards to `upstream_ws_url` (`ws://host:port`).
    pub async fn start(upstream_ws_url: &str) -> anyhow::Result<Self> {
        let upstream: std::net::SocketAddr = upstream_ws_url
            .trim_start_matches("ws://")
            .trim_end_matches('/')
            .parse()?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let refuse = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let accepted = Arc::new(AtomicU32::new(0));
        let task = tokio::spawn({
            let (refuse, conns, accepted) = (refuse.clone(), conns.clone(), accepted.clone());
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if refuse.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let conn = tokio::spawn(async move {
                        if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    if let Ok(mut c) = conns.lock() {
                        c.push(conn.abort_handle());
                    }
                }
            }
        });
        Ok(Self {
            addr,
            refuse,
            conns,
            accepted,
            task,
        })
    }

    /// `ws://127.0.0.1:<port>`: hand this out instead of the server's URL.
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Closes every proxied connection and refuses new ones until [`Self::reopen`].
    pub fn cut(&self) {
        self.refuse.store(true, Ordering::SeqCst);
        if let Ok(mut c) = self.conns.lock() {
            for h in c.drain(..) {
                h.abort();
            }
        }
    }

    /// Accepts connections again.
    pub fn reopen(&self) {
        self.refuse.store(false, Ordering::SeqCst);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u32 {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for SignalProxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}
