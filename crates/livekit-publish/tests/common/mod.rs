//! Test helpers: a real livekit-server on free loopback ports, tokens, the
//! Python SDK viewer and synthetic encoded media.
#![allow(dead_code)]

use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use livekit_api::access_token::{AccessToken, VideoGrants};

pub struct Server {
    child: Option<Child>,
    cfg_path: PathBuf,
    pub http_port: u16,
    pub key: String,
    pub secret: String,
    dir: tempfile::TempDir,
}

fn free_tcp() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
fn free_udp() -> Result<u16> {
    Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub fn server_bin() -> PathBuf {
    std::env::var_os("LIVEKIT_SERVER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root/.cache/streamit/livekit-server-v1.13.5/bin/server"))
}

pub fn python() -> Option<PathBuf> {
    let dir = std::fs::read_dir("/root/.cache/streamit").ok()?;
    dir.flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("viewer-venv"))
        })
        .map(|p| p.join("bin/python"))
        .find(|p| p.exists())
}

impl Server {
    pub fn start() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let (http_port, udp) = (free_tcp()?, free_udp()?);
        let key = "testkey".to_string();
        let secret = "secret-secret-secret-secret-secret-0123".to_string();
        let cfg = format!(
            "port: {http_port}\nkeys:\n  {key}: {secret}\nlogging:\n  level: debug\nrtc:\n  udp_port: {udp}\n  tcp_port: 0\n  use_external_ip: false\n  enable_loopback_candidate: true\n  node_ip: 127.0.0.1\n  ips:\n    includes: [\"127.0.0.1/32\"]\n"
        );
        let cfg_path = dir.path().join("lk.yaml");
        std::fs::write(&cfg_path, cfg)?;
        let mut s = Server {
            child: None,
            cfg_path,
            http_port,
            key,
            secret,
            dir,
        };
        s.spawn()?;
        Ok(s)
    }

    fn spawn(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("lk.log"))?;
        let child = Command::new(server_bin())
            .arg("--config")
            .arg(&self.cfg_path)
            .args(["--bind", "127.0.0.1", "--node-ip", "127.0.0.1"])
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawn livekit-server")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.http_port)).is_ok() {
                std::thread::sleep(Duration::from_millis(300));
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("livekit-server did not come up");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kill the server (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start it again on the same ports.
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.spawn()
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.http_port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("lk.log")).unwrap_or_default()
    }

    pub fn token(&self, identity: &str, room: &str, publish: bool) -> Result<String> {
        Ok(AccessToken::with_api_key(&self.key, &self.secret)
            .with_identity(identity)
            .with_name(&format!("{identity} name"))
            .with_grants(VideoGrants {
                room_join: true,
                room: room.to_string(),
                can_publish: Some(publish),
                can_subscribe: Some(true),
                can_publish_data: Some(true),
                ..Default::default()
            })
            .to_jwt()?)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if std::env::var_os("KEEP_LK_LOG").is_some() {
            let _ = std::fs::write("/tmp/lk-last.log", self.log());
        }
    }
}

/// A running Python viewer.
pub struct Viewer {
    child: tokio::process::Child,
}

impl Viewer {
    pub fn spawn(url: &str, token: &str, seconds: f64, extra: &[&str]) -> Result<Self> {
        let py = python().context("no viewer venv with the livekit Python SDK")?;
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/mini_viewer.py");
        let child = tokio::process::Command::new(py)
            .arg(script)
            .arg(url)
            .arg(token)
            .arg(seconds.to_string())
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        Ok(Self { child })
    }

    pub async fn report(self) -> Result<serde_json::Value> {
        let out = self.child.wait_with_output().await?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout.lines().last().context("viewer printed nothing")?;
        Ok(serde_json::from_str(line)?)
    }
}
