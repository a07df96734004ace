//! A private Redis server (Debian's `redis-server`) on a free loopback port with its own
//! directory: LiveKit's message bus and room directory when it runs multi-node. Never the
//! system service; nothing is persisted (no RDB snapshots, no AOF).

use crate::process::{Guarded, free_tcp_port};
use anyhow::{Context, Result, bail};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Set this to another `redis-server` binary than the one on `PATH`.
pub const BIN_ENV: &str = "STREAMIT_REDIS_SERVER";

/// A running `redis-server`; stopped (and its directory deleted) on drop.
pub struct Redis {
    process: Guarded,
    port: u16,
    _dir: tempfile::TempDir,
}

/// `$STREAMIT_REDIS_SERVER`, else `redis-server` from `PATH` or `/usr/bin`.
pub fn bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(BIN_ENV) {
        return Ok(PathBuf::from(p));
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|d| d.join("redis-server"))
        .find(|p| p.is_file());
    on_path
        .or_else(|| {
            let p = PathBuf::from("/usr/bin/redis-server");
            p.is_file().then_some(p)
        })
        .context("redis-server not found (install Debian's `redis-server` package: scripts/install.sh, or set STREAMIT_REDIS_SERVER)")
}

/// Whether [`Redis::start`] can work here.
pub fn available() -> bool {
    bin().is_ok()
}

impl Redis {
    /// Starts on a free loopback port; waits until it answers `PING`.
    pub fn start() -> Result<Self> {
        let bin = bin()?;
        let dir = tempfile::Builder::new()
            .prefix("streamit-redis-")
            .tempdir()?;
        let mut last = String::new();
        for attempt in 0..3 {
            let port = free_tcp_port()?;
            let mut cmd = Command::new(&bin);
            cmd.current_dir(dir.path())
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .arg("--dir")
                .arg(dir.path())
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .args(["--protected-mode", "yes", "--loglevel", "notice"]);
            let log = dir.path().join(format!("redis-{attempt}.log"));
            let mut process = Guarded::spawn("redis-server", cmd, log)?;
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(status) = process.exited() {
                    last = format!("exited ({status}):\n{}", process.log_tail(20));
                    break;
                }
                if ping(port) {
                    return Ok(Redis {
                        process,
                        port,
                        _dir: dir,
                    });
                }
                if Instant::now() > deadline {
                    last = format!("no PONG within 10 s:\n{}", process.log_tail(20));
                    break;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
        }
        bail!("redis-server did not start: {last}")
    }

    /// `127.0.0.1:<port>` (what LiveKit's `redis.address` takes).
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Does it answer `PING`?
    pub fn is_healthy(&self) -> bool {
        ping(self.port)
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }
}

/// One inline `PING`, expecting `+PONG`.
fn ping(port: u16) -> bool {
    let Ok(mut s) =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
    else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}
