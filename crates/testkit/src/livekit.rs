//! A real livekit-server on free loopback ports.

use crate::paths::livekit_server_bin;
use crate::process::{Guarded, free_tcp_port, free_udp_port, restart_retrying};
use anyhow::{Context, Result, bail};
use livekit_api::access_token::{AccessToken, VideoGrants};
use rand::distr::{Alphanumeric, SampleString};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// What a test may change about the server it gets.
#[derive(Debug, Clone, Default)]
pub struct LiveKitOptions {
    /// Where LiveKit posts signed webhooks (e.g. the backend's `/api/livekit/webhook`).
    pub webhook_urls: Vec<String>,
    /// Extra top-level YAML appended to the generated config.
    pub extra_config: Option<String>,
    /// A second address to listen on and to advertise in ICE candidates, for clients that
    /// cannot reach the host's loopback (the far end of a `streamit_netem::ImpairedLink`).
    pub host: Option<Ipv4Addr>,
    /// Multi-node: the Redis server (`host:port`) this node shares with the other nodes as
    /// its message bus and room directory (`redis.address`).
    pub redis: Option<String>,
    /// The API key and secret (default: made up for this server). Nodes of one cluster share
    /// theirs, so a token minted for one node is accepted by every node.
    pub keys: Option<(String, String)>,
    /// LiveKit's embedded TURN server: the JoinResponse then offers it in `ice_servers`.
    pub turn: Option<TurnOptions>,
}

/// Which listeners of LiveKit's embedded TURN server to enable.
#[derive(Debug, Clone, Copy, Default)]
pub struct TurnOptions {
    /// TURN/UDP on a free port (`turn:127.0.0.1:<port>?transport=udp`).
    pub udp: bool,
    /// TURN/TLS with a certificate for `127.0.0.1`/`localhost` from a CA made for this
    /// server ([`LiveKit::turn_ca_pem`]). LiveKit always announces it as
    /// `turns:<domain>:443`, so it listens on 443: this needs root (or
    /// CAP_NET_BIND_SERVICE), and one such server at a time.
    pub tls: bool,
}

/// The embedded TURN server of a running [`LiveKit`].
#[derive(Debug, Clone)]
pub struct TurnInfo {
    /// TURN/UDP port, if enabled.
    pub udp_port: Option<u16>,
    /// TURN/TLS port (443), if enabled.
    pub tls_port: Option<u16>,
    /// The CA that signed the TURN/TLS certificate (PEM), if TLS is enabled.
    pub ca_pem: Option<String>,
}

/// LiveKit announces TURN/TLS on this port whatever `tls_port` says (it expects a load
/// balancer there), so the test server listens on it directly.
const TURN_TLS_PORT: u16 = 443;

/// Port 443 is one port for the whole machine: servers with TURN/TLS, in this test binary
/// or another, take turns through an exclusive lock on this file, held until the server is
/// dropped. Without it two such tests in parallel fail with "address already in use".
fn lock_turn_tls_port() -> Result<std::fs::File> {
    let path = std::env::temp_dir().join("streamit-turn-tls-443.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    file.lock()
        .with_context(|| format!("locking {}", path.display()))?;
    Ok(file)
}

/// A CA and a leaf certificate for 127.0.0.1 and localhost signed by it, written into
/// `dir`: (cert file, key file, CA PEM).
fn make_turn_certificate(dir: &std::path::Path) -> Result<(PathBuf, PathBuf, String)> {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "StreamIt test TURN CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;
    let leaf_key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])?;
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    let leaf = leaf.signed_by(&leaf_key, &ca)?;
    let cert = dir.join("turn.crt");
    let key = dir.join("turn.key");
    std::fs::write(&cert, leaf.pem())?;
    std::fs::write(&key, leaf_key.serialize_pem())?;
    Ok((cert, key, ca.pem()))
}

/// Token grants the tests use most; `Grants::Custom` for anything else.
#[derive(Debug, Clone)]
pub enum Grants {
    /// roomJoin, canPublish, canPublishData, canSubscribe, canUpdateOwnMetadata (the
    /// creator's grant).
    Publisher,
    /// roomJoin, canPublishData, canSubscribe, canPublish=false (viewers and guests).
    Viewer,
    Custom(VideoGrants),
}

impl Grants {
    fn for_room(self, room: &str) -> VideoGrants {
        let base = VideoGrants {
            room_join: true,
            room: room.to_string(),
            ..Default::default()
        };
        match self {
            Grants::Publisher => VideoGrants {
                can_publish: Some(true),
                can_publish_data: Some(true),
                can_subscribe: Some(true),
                can_update_own_metadata: Some(true),
                ..base
            },
            Grants::Viewer => VideoGrants {
                can_publish: Some(false),
                can_publish_data: Some(true),
                can_subscribe: Some(true),
                ..base
            },
            Grants::Custom(g) => g,
        }
    }
}

/// A running livekit-server. Dropping it stops the server.
pub struct LiveKit {
    process: Option<Guarded>,
    dir: tempfile::TempDir,
    config: PathBuf,
    http_port: u16,
    rtc_tcp_port: u16,
    rtc_udp_port: u16,
    api_key: String,
    api_secret: String,
    starts: u32,
    host: Option<Ipv4Addr>,
    turn: Option<TurnInfo>,
    /// Held while this server may listen on port 443; after `process`, so it is released
    /// only once the server has stopped.
    _tls_port_lock: Option<std::fs::File>,
}

impl LiveKit {
    pub fn start() -> Result<Self> {
        Self::start_with(LiveKitOptions::default())
    }

    pub fn start_with(options: LiveKitOptions) -> Result<Self> {
        let mut last_err = None;
        // A port handed out by the kernel can be taken by a parallel test before the
        // server binds it; a fresh set of ports is the fix.
        for _ in 0..3 {
            match Self::try_start(&options) {
                Ok(lk) => return Ok(lk),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("livekit-server did not start")))
    }

    fn try_start(options: &LiveKitOptions) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("streamit-livekit-")
            .tempdir()?;
        let (api_key, api_secret) = match &options.keys {
            Some(keys) => keys.clone(),
            None => new_keys(),
        };
        let (http_port, rtc_tcp_port, rtc_udp_port) =
            (free_tcp_port()?, free_tcp_port()?, free_udp_port()?);
        // With a second address, media goes only there: LiveKit maps every host candidate to
        // `node_ip`, so a loopback socket behind the same advertised address would take the
        // far side's packets and answer from 127.0.0.1, which never leaves the host.
        let (binds, node_ip, includes, loopback) = match options.host {
            Some(host) => (
                format!("\"127.0.0.1\", \"{host}\""),
                host.to_string(),
                format!("\"{host}/32\""),
                false,
            ),
            None => (
                "\"127.0.0.1\"".to_string(),
                "127.0.0.1".to_string(),
                "\"127.0.0.1/32\"".to_string(),
                true,
            ),
        };
        // Debugging a test: STREAMIT_LIVEKIT_LOG=debug shows the SFU's allocator and forwarder.
        let level = std::env::var("STREAMIT_LIVEKIT_LOG")
            .ok()
            .filter(|l| ["debug", "info", "warn", "error"].contains(&l.as_str()))
            .unwrap_or_else(|| "info".into());
        let mut yaml = format!(
            "port: {http_port}\n\
             bind_addresses: [{binds}]\n\
             keys:\n  {api_key}: {api_secret}\n\
             logging:\n  level: {level}\n\
             rtc:\n  tcp_port: {rtc_tcp_port}\n  udp_port: {rtc_udp_port}\n  use_external_ip: false\n  \
             enable_loopback_candidate: {loopback}\n  node_ip: {node_ip}\n  ips:\n    includes: [{includes}]\n"
        );
        if !options.webhook_urls.is_empty() {
            yaml.push_str(&format!("webhook:\n  api_key: {api_key}\n  urls:\n"));
            for url in &options.webhook_urls {
                yaml.push_str(&format!("    - \"{url}\"\n"));
            }
        }
        if let Some(redis) = &options.redis {
            yaml.push_str(&format!("redis:\n  address: \"{redis}\"\n"));
        }
        let mut turn = None;
        let mut tls_port_lock = None;
        if let Some(t) = options.turn {
            let mut info = TurnInfo {
                udp_port: None,
                tls_port: None,
                ca_pem: None,
            };
            // Our relayed candidates and LiveKit's own are on loopback, which LiveKit's
            // TURN refuses as a peer unless allowed.
            yaml.push_str(
                "turn:\n  enabled: true\n  allow_restricted_peer_cidrs: [\"127.0.0.0/8\"]\n",
            );
            if t.udp {
                let port = free_udp_port()?;
                yaml.push_str(&format!("  udp_port: {port}\n"));
                info.udp_port = Some(port);
            }
            if t.tls {
                tls_port_lock = Some(lock_turn_tls_port()?);
                let (cert, key, ca) = make_turn_certificate(dir.path())?;
                yaml.push_str(&format!(
                    "  tls_port: {TURN_TLS_PORT}\n  domain: 127.0.0.1\n  external_tls: false\n  \
                     cert_file: {}\n  key_file: {}\n",
                    cert.display(),
                    key.display()
                ));
                info.tls_port = Some(TURN_TLS_PORT);
                info.ca_pem = Some(ca);
            }
            turn = Some(info);
        }
        if let Some(extra) = &options.extra_config {
            yaml.push_str(extra);
            yaml.push('\n');
        }
        let config = dir.path().join("livekit.yaml");
        std::fs::write(&config, yaml)?;
        let mut lk = LiveKit {
            process: None,
            dir,
            config,
            http_port,
            rtc_tcp_port,
            rtc_udp_port,
            api_key,
            api_secret,
            starts: 0,
            host: options.host,
            turn,
            _tls_port_lock: tls_port_lock,
        };
        lk.spawn()?;
        Ok(lk)
    }

    fn spawn(&mut self) -> Result<()> {
        self.starts += 1;
        let mut cmd = Command::new(livekit_server_bin()?);
        cmd.arg("--config")
            .arg(&self.config)
            .args(["--bind", "127.0.0.1"]);
        match self.host {
            Some(host) => {
                let host = host.to_string();
                cmd.args(["--bind", &host, "--node-ip", &host]);
            }
            None => {
                cmd.args(["--node-ip", "127.0.0.1"]);
            }
        }
        let log = self.dir.path().join(format!("livekit-{}.log", self.starts));
        let mut process = Guarded::spawn("livekit-server", cmd, log)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = process.exited() {
                bail!(
                    "livekit-server exited early ({status}):\n{}",
                    process.log_tail(30)
                );
            }
            if health(self.http_port) {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "livekit-server not healthy after 30 s:\n{}",
                    process.log_tail(30)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.process = Some(process);
        Ok(())
    }

    /// What a client on the far side of [`LiveKitOptions::host`] connects to (else
    /// [`Self::ws_url`]).
    pub fn public_ws_url(&self) -> String {
        match self.host {
            Some(host) => format!("ws://{host}:{}", self.http_port),
            None => self.ws_url(),
        }
    }

    /// `ws://127.0.0.1:<port>`: what clients connect to.
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.http_port)
    }

    /// `http://127.0.0.1:<port>`: the server API (Twirp) and health endpoint.
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    pub fn api_secret(&self) -> &str {
        &self.api_secret
    }

    /// The embedded TURN server, when [`LiveKitOptions::turn`] enabled it.
    pub fn turn(&self) -> Option<&TurnInfo> {
        self.turn.as_ref()
    }

    /// The ports in use: (HTTP/WS, RTC TCP, RTC UDP).
    pub fn ports(&self) -> (u16, u16, u16) {
        (self.http_port, self.rtc_tcp_port, self.rtc_udp_port)
    }

    /// A token for `identity` in `room`, valid for an hour.
    pub fn token(&self, identity: &str, room: &str, grants: Grants) -> Result<String> {
        self.token_ttl(identity, room, grants, Duration::from_secs(3600))
    }

    pub fn token_ttl(
        &self,
        identity: &str,
        room: &str,
        grants: Grants,
        ttl: Duration,
    ) -> Result<String> {
        AccessToken::with_api_key(&self.api_key, &self.api_secret)
            .with_identity(identity)
            .with_name(identity)
            .with_ttl(ttl)
            .with_grants(grants.for_room(room))
            .to_jwt()
            .context("minting a LiveKit token")
    }

    /// A token with a display name and participant attributes (e.g. `streamit.role`, as the
    /// backend mints them), valid for an hour.
    pub fn token_with_attributes(
        &self,
        identity: &str,
        name: &str,
        room: &str,
        grants: Grants,
        attributes: &[(&str, &str)],
    ) -> Result<String> {
        AccessToken::with_api_key(&self.api_key, &self.api_secret)
            .with_identity(identity)
            .with_name(name)
            .with_ttl(Duration::from_secs(3600))
            .with_grants(grants.for_room(room))
            .with_attributes(
                attributes
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string())),
            )
            .to_jwt()
            .context("minting a LiveKit token")
    }

    /// A viewer token correctly signed with this server's keys that expires at `expires_at`,
    /// which may be in the past (`livekit-api` only mints tokens that expire in the future).
    /// LiveKit allows one minute of clock skew.
    pub fn token_expiring_at(
        &self,
        identity: &str,
        room: &str,
        expires_at: std::time::SystemTime,
    ) -> Result<String> {
        use base64::Engine;
        use hmac::Mac;
        let exp = expires_at.duration_since(std::time::UNIX_EPOCH)?.as_secs();
        let claims = serde_json::json!({
            "iss": self.api_key, "sub": identity, "nbf": exp.saturating_sub(3600), "exp": exp,
            "video": { "roomJoin": true, "room": room, "canSubscribe": true },
        });
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let signing_input = format!(
            "{}.{}",
            b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
            b64.encode(serde_json::to_vec(&claims)?)
        );
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(self.api_secret.as_bytes())?;
        mac.update(signing_input.as_bytes());
        Ok(format!(
            "{signing_input}.{}",
            b64.encode(mac.finalize().into_bytes())
        ))
    }

    /// CPU time the running server has used so far (Linux; `None` when it is not running).
    pub fn cpu_time(&self) -> Option<Duration> {
        crate::process::process_cpu_time(self.process.as_ref()?.child.id())
    }

    /// Kills the server (as a crash would: SIGKILL, no goodbye to clients).
    pub fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }

    /// Freezes the server (SIGSTOP to its process group): its sockets stay open
    /// and the kernel still completes TCP handshakes, but nothing is answered
    /// and no datagram is sent until [`LiveKit::resume`] (a hung server, or a
    /// VM paused). Returns whether there was a server to freeze.
    pub fn pause(&self) -> bool {
        self.signal_group(libc::SIGSTOP)
    }

    /// Lets a [`LiveKit::pause`]d server run again (SIGCONT).
    pub fn resume(&self) -> bool {
        self.signal_group(libc::SIGCONT)
    }

    fn signal_group(&self, sig: libc::c_int) -> bool {
        let Some(p) = self.process.as_ref() else {
            return false;
        };
        let Ok(pid) = libc::pid_t::try_from(p.child.id()) else {
            return false;
        };
        // The child leads its own process group (see `tie_to_test`).
        // SAFETY: kill(2) with a negative pid signals that process group; no memory is involved.
        unsafe { libc::kill(-pid, sig) == 0 }
    }

    /// Starts the server again on the same ports and keys, after [`LiveKit::kill`].
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        restart_retrying("livekit-server", || self.spawn())
    }

    /// Is the server up and answering its health check?
    pub fn is_healthy(&self) -> bool {
        health(self.http_port)
    }

    /// The server's log so far (for a failing test's message).
    pub fn log_tail(&self, lines: usize) -> String {
        self.process
            .as_ref()
            .map(|p| p.log_tail(lines))
            .unwrap_or_default()
    }
}

/// A made-up API key and secret (`test…`, 40 characters of secret).
pub fn new_keys() -> (String, String) {
    (
        format!("test{}", Alphanumeric.sample_string(&mut rand::rng(), 8)),
        Alphanumeric.sample_string(&mut rand::rng(), 40),
    )
}

/// `GET /` answers 200 "OK" once the node is ready.
fn health(port: u16) -> bool {
    let Ok(mut s) =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
    else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    buf.starts_with(b"HTTP/1.1 200")
}
