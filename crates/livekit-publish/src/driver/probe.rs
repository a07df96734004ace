//! Is the server there? Cheap probes of the signal URL's host while it is
//! unreachable, so a recovery goes ahead within about one probe interval of its
//! return instead of at the next backoff slot.
//!
//! A probe opens a TCP connection to the signal URL's host and port; for
//! `ws://`/`http://` it also sends `GET /` and waits for the first byte of an
//! answer (a stopped process still completes TCP handshakes from the kernel's
//! listen backlog, so the connect alone would say "up"). For `wss://` the TCP
//! connect is the probe (no TLS here). Probes start every [`PROBE_INTERVAL`]
//! and each waits up to [`PROBE_TIMEOUT`]: a frozen server's queued probes are
//! answered the moment it runs again.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// How often a probe starts while the server is unreachable.
pub(super) const PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// How long one probe waits for an answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Host, port and whether to speak HTTP, from a `ws[s]://` or `http[s]://` URL.
pub(super) fn target(url: &str) -> Option<(String, u16, bool)> {
    let (scheme, rest) = url.split_once("://")?;
    let (default_port, http) = match scheme {
        "ws" | "http" => (80, true),
        "wss" | "https" => (443, false),
        _ => return None,
    };
    let hostport = rest.split(['/', '?']).next()?;
    let hostport = hostport.rsplit_once('@').map_or(hostport, |(_, h)| h);
    if hostport.is_empty() {
        return None;
    }
    // [v6]:port, host:port, host
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        let port = after.strip_prefix(':').map(str::parse).transpose().ok()?;
        (h.to_string(), port.unwrap_or(default_port))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().ok()?),
            None => (hostport.to_string(), default_port),
        }
    };
    Some((host, port, http))
}

/// One probe: whether the server answered within [`PROBE_TIMEOUT`].
async fn probe_once(host: String, port: u16, http: bool) -> bool {
    let attempt = async {
        let mut s = TcpStream::connect((host.as_str(), port)).await?;
        if http {
            let req = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
            s.write_all(req.as_bytes()).await?;
            let mut b = [0u8; 1];
            if s.read(&mut b).await? == 0 {
                return Err(std::io::Error::other("closed without an answer"));
            }
        }
        std::io::Result::Ok(())
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, attempt).await,
        Ok(Ok(()))
    )
}

/// What probing until a deadline found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Probed {
    /// A probe failed (refused, or no answer in time).
    pub down_seen: bool,
    /// A probe answered after one had failed: the server is back (when).
    pub back_at: Option<Instant>,
}

/// Probes `url` every [`PROBE_INTERVAL`] until `until`, returning early once a
/// probe answers after the server was found unreachable (`down_known`: already
/// known to be; else a probe failed, or was not answered within the interval).
/// A server that answers all along does not end the wait: the caller keeps its
/// backoff.
pub(super) async fn probe_until(url: &str, until: Instant, down_known: bool) -> Probed {
    let mut down_seen = down_known;
    let Some((host, port, http)) = target(url) else {
        tokio::time::sleep_until(until).await;
        return Probed {
            down_seen,
            back_at: None,
        };
    };
    let mut probes = JoinSet::new();
    let mut next = Instant::now();
    loop {
        if Instant::now() >= until {
            return Probed {
                down_seen,
                back_at: None,
            };
        }
        tokio::select! {
            _ = tokio::time::sleep_until(next.min(until)) => {
                if next <= Instant::now() {
                    // The last probe is still unanswered after an interval: down
                    // (it may still answer, which then counts as the return).
                    down_seen |= !probes.is_empty();
                    probes.spawn(probe_once(host.clone(), port, http));
                    next += PROBE_INTERVAL;
                }
            }
            Some(r) = probes.join_next() => match r {
                Ok(true) if down_seen => {
                    return Probed { down_seen, back_at: Some(Instant::now()) };
                }
                Ok(true) => {}
                _ => down_seen = true,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_of_signal_urls() {
        let t = |u: &str| target(u);
        assert_eq!(
            t("ws://127.0.0.1:7880"),
            Some(("127.0.0.1".into(), 7880, true))
        );
        assert_eq!(
            t("wss://lk.example.com/rtc?x=1"),
            Some(("lk.example.com".into(), 443, false))
        );
        assert_eq!(t("http://[::1]:80/"), Some(("::1".into(), 80, true)));
        assert_eq!(t("ws://host"), Some(("host".into(), 80, true)));
        assert_eq!(t("ftp://host"), None);
        assert_eq!(t("ws://"), None);
    }

    #[tokio::test]
    async fn a_server_that_comes_back_ends_the_wait() {
        // A port nobody listens on, then a listener on it that answers.
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        drop(l);
        let url = format!("ws://127.0.0.1:{port}");
        let start = Instant::now();
        let server = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1200)).await;
            let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .expect("rebind");
            loop {
                let (mut s, _) = l.accept().await.expect("accept");
                let mut buf = [0u8; 256];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\n\r\nOK").await;
            }
        });
        let p = probe_until(&url, start + Duration::from_secs(10), false).await;
        server.abort();
        let back = p.back_at.expect("back").duration_since(start);
        assert!(p.down_seen);
        assert!(
            back >= Duration::from_millis(1200) && back < Duration::from_millis(2000),
            "{back:?}"
        );
    }

    #[tokio::test]
    async fn a_frozen_server_is_down_until_it_answers_its_queued_probes() {
        // Accepts connections (the kernel's backlog would) but answers only
        // after 1.5 s, like a stopped process continued then.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = l.local_addr().expect("addr").port();
        let start = Instant::now();
        let thaw = start + Duration::from_millis(1500);
        let server = tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.expect("accept");
                tokio::spawn(async move {
                    tokio::time::sleep_until(thaw).await;
                    let _ = s.write_all(b"HTTP/1.1 200 OK\r\n\r\nOK").await;
                });
            }
        });
        let p = probe_until(
            &format!("ws://127.0.0.1:{port}"),
            start + Duration::from_secs(10),
            false,
        )
        .await;
        server.abort();
        assert!(p.down_seen);
        let back = p.back_at.expect("back").duration_since(start);
        assert!(
            back >= Duration::from_millis(1500) && back < Duration::from_millis(1700),
            "{back:?}"
        );
    }

    #[tokio::test]
    async fn a_server_up_all_along_keeps_the_backoff() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = l.local_addr().expect("addr").port();
        let server = tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.expect("accept");
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\n\r\nOK").await;
            }
        });
        let start = Instant::now();
        let p = probe_until(
            &format!("ws://127.0.0.1:{port}"),
            start + Duration::from_millis(1200),
            false,
        )
        .await;
        server.abort();
        assert_eq!(
            p,
            Probed {
                down_seen: false,
                back_at: None
            }
        );
        assert!(start.elapsed() >= Duration::from_millis(1200));
    }
}
