//! A real HTTP load balancer in front of backend instances: Debian's `haproxy`, on a free
//! loopback port, round robin, health-checking `GET /api/health` every 500 ms (down after 2
//! failures, up after 2 successes). A request whose connection to an instance fails (an
//! instance that died) is sent to another instance at once (`retries` + `redispatch`), before
//! the health check even notices. The client address reaches the backends in
//! `X-Forwarded-For`, set (never appended to) by the balancer, and every response says which
//! instance served it in `X-StreamIt-Instance` (`be1`, `be2`, …).

use crate::process::{Guarded, free_tcp_port};
use anyhow::{Context, Result, bail};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Set this to another `haproxy` binary than Debian's.
pub const BIN_ENV: &str = "STREAMIT_HAPROXY";

/// The response header naming the instance that served a request.
pub const INSTANCE_HEADER: &str = "x-streamit-instance";

/// `$STREAMIT_HAPROXY`, else `/usr/sbin/haproxy`, else `haproxy` on `PATH`.
pub fn bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(BIN_ENV) {
        return Ok(PathBuf::from(p));
    }
    let sbin = PathBuf::from("/usr/sbin/haproxy");
    if sbin.is_file() {
        return Ok(sbin);
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|d| d.join("haproxy"))
        .find(|p| p.is_file())
        .context("haproxy not found (install Debian's `haproxy` package: scripts/install.sh, or set STREAMIT_HAPROXY)")
}

/// Whether [`Balancer::start`] can work here.
pub fn available() -> bool {
    bin().is_ok()
}

/// A running haproxy; stopped on drop.
pub struct Balancer {
    process: Guarded,
    port: u16,
    stats_port: u16,
    socket: PathBuf,
    servers: Vec<String>,
    _dir: tempfile::TempDir,
}

/// A backend instance as the balancer's health check sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerState {
    /// `be1`, `be2`, …
    pub name: String,
    /// haproxy's status: `UP`, `DOWN`, `UP 1/2` (going down), `DOWN 1/2` (coming up), …
    pub status: String,
}

impl Balancer {
    /// Balances over `backends` (`host:port` each) on `port` (0: a free one). Returns once
    /// haproxy serves its stats page and reports every instance `UP`.
    pub fn start(port: u16, backends: &[String]) -> Result<Self> {
        if backends.is_empty() {
            bail!("a balancer needs at least one backend");
        }
        let bin = bin()?;
        let dir = tempfile::Builder::new()
            .prefix("streamit-haproxy-")
            .tempdir()?;
        let port = if port == 0 { free_tcp_port()? } else { port };
        let stats_port = free_tcp_port()?;
        let servers: Vec<String> = (1..=backends.len()).map(|i| format!("be{i}")).collect();
        let config = dir.path().join("haproxy.cfg");
        let socket = dir.path().join("admin.sock");
        std::fs::write(&config, config_text(port, stats_port, &socket, backends))?;

        let check = Command::new(&bin)
            .arg("-c")
            .arg("-f")
            .arg(&config)
            .output()
            .context("running haproxy -c")?;
        if !check.status.success() {
            bail!(
                "haproxy refused its configuration: {}{}",
                String::from_utf8_lossy(&check.stdout),
                String::from_utf8_lossy(&check.stderr)
            );
        }
        let mut cmd = Command::new(&bin);
        // -db: stay in the foreground, log to stdout (the log file).
        cmd.arg("-db").arg("-f").arg(&config);
        let mut process = Guarded::spawn("haproxy", cmd, dir.path().join("haproxy.log"))?;
        let mut balancer_ready = false;
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Some(status) = process.exited() {
                bail!("haproxy exited early ({status}):\n{}", process.log_tail(20));
            }
            if let Ok(states) = server_states(&socket)
                && states.len() == servers.len()
                && states.iter().all(|s| s.status == "UP")
            {
                balancer_ready = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !balancer_ready {
            bail!(
                "haproxy did not see every backend UP within 15 s ({:?}):\n{}",
                server_states(&socket).ok(),
                process.log_tail(20)
            );
        }
        Ok(Balancer {
            process,
            port,
            stats_port,
            socket,
            servers,
            _dir: dir,
        })
    }

    /// `http://127.0.0.1:<port>`: what clients use instead of any one instance.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// haproxy's statistics page (HTML; `;csv` for CSV).
    pub fn stats_url(&self) -> String {
        format!("http://127.0.0.1:{}/stats", self.stats_port)
    }

    /// The servers' names, in the order of the backends given to [`Balancer::start`].
    pub fn server_names(&self) -> &[String] {
        &self.servers
    }

    /// What the health checks say about each instance now.
    pub fn server_states(&self) -> Result<Vec<ServerState>> {
        server_states(&self.socket)
    }

    /// Waits until instance `name`'s status is exactly `status` (`UP` or `DOWN`); returns how
    /// long that took.
    pub fn wait_for_status(&self, name: &str, status: &str, within: Duration) -> Result<Duration> {
        let start = Instant::now();
        loop {
            let states = self.server_states()?;
            if states.iter().any(|s| s.name == name && s.status == status) {
                return Ok(start.elapsed());
            }
            if start.elapsed() > within {
                bail!("{name} not {status} within {within:?}: {states:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }
}

fn config_text(port: u16, stats_port: u16, socket: &Path, backends: &[String]) -> String {
    let socket = socket.display();
    let mut cfg = format!(
        "global\n\
         \x20   log stdout format raw local0 info\n\
         \x20   stats socket {socket} mode 600 level admin\n\
         \x20   maxconn 4096\n\
         defaults\n\
         \x20   mode http\n\
         \x20   log global\n\
         \x20   option httplog\n\
         \x20   option dontlognull\n\
         \x20   timeout connect 1s\n\
         \x20   timeout client 60s\n\
         \x20   timeout server 60s\n\
         \x20   timeout http-keep-alive 10s\n\
         \x20   timeout check 1s\n\
         \x20   retries 3\n\
         \x20   option redispatch 1\n\
         \x20   retry-on conn-failure\n\
         frontend stats\n\
         \x20   bind 127.0.0.1:{stats_port}\n\
         \x20   stats enable\n\
         \x20   stats uri /stats\n\
         \x20   http-request set-log-level silent\n\
         frontend api\n\
         \x20   bind 127.0.0.1:{port}\n\
         \x20   http-request set-header X-Forwarded-For %[src]\n\
         \x20   default_backend streamit\n\
         backend streamit\n\
         \x20   balance roundrobin\n\
         \x20   option httpchk GET /api/health\n\
         \x20   http-check expect status 200\n\
         \x20   http-response set-header X-StreamIt-Instance %s\n"
    );
    for (i, addr) in backends.iter().enumerate() {
        cfg.push_str(&format!(
            "    server be{} {addr} check inter 500ms fall 2 rise 2\n",
            i + 1
        ));
    }
    cfg
}

/// The `streamit` backend's servers from haproxy's CSV statistics (`show stat` on the
/// admin socket).
fn server_states(socket: &Path) -> Result<Vec<ServerState>> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(b"show stat\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    let mut lines = body.lines();
    let header = lines
        .next()
        .context("empty stats CSV")?
        .trim_start_matches("# ");
    let col = |name: &str| header.split(',').position(|c| c == name);
    let (px, sv, st) = (
        col("pxname").context("no pxname column")?,
        col("svname").context("no svname column")?,
        col("status").context("no status column")?,
    );
    Ok(lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| {
            f.get(px) == Some(&"streamit")
                && f.get(sv)
                    .is_some_and(|n| *n != "BACKEND" && *n != "FRONTEND")
        })
        .map(|f| ServerState {
            name: f.get(sv).copied().unwrap_or_default().to_string(),
            status: f.get(st).copied().unwrap_or_default().to_string(),
        })
        .collect())
}
