//! Runs the real `streamit-server` binary on loopback for the tests in this
//! directory, on a fresh SQLite file or a fresh PostgreSQL database.
#![allow(dead_code)]

pub mod live_viewer;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use streamit_api::client::Client;
use streamit_api::{AuthResponse, RegisterRequest, Role};

pub const BIN: &str = env!("CARGO_BIN_EXE_streamit-server");

/// A LiveKit server posting its webhooks to a backend (this crate's binary) on a port chosen
/// first, so LiveKit's config can name it; `lk_config` is extra LiveKit YAML, `env` the
/// backend's extra environment. Keep the backend to drop before LiveKit.
pub fn webhooked(
    lk_config: Option<&str>,
    env: &[(&str, &str)],
) -> (streamit_testkit::LiveKit, streamit_testkit::Backend) {
    let port = streamit_testkit::free_tcp_port().unwrap();
    let lk = streamit_testkit::LiveKit::start_with(streamit_testkit::LiveKitOptions {
        webhook_urls: vec![format!("http://127.0.0.1:{port}/api/livekit/webhook")],
        extra_config: lk_config.map(str::to_string),
        ..Default::default()
    })
    .unwrap();
    let mut backend_env = vec![("STREAMIT_BIND".to_string(), format!("127.0.0.1:{port}"))];
    backend_env.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let backend = streamit_testkit::Backend::start(streamit_testkit::BackendOptions {
        livekit: Some(&lk),
        bin: Some(BIN.into()),
        env: backend_env,
        ..Default::default()
    })
    .unwrap();
    (lk, backend)
}
pub const LK_KEY: &str = "test-key";
pub const LK_SECRET: &str = "test-secret-that-is-long-enough-for-livekit";

/// Which database a suite runs on.
pub enum Database {
    /// A fresh SQLite file in the server's temporary directory.
    Sqlite,
    /// An existing empty database (URL), and whatever keeps it alive (e.g. a
    /// throwaway PostgreSQL server) until the test ends.
    Url(String, Box<dyn std::any::Any + Send>),
}

impl Database {
    pub fn sqlite() -> Database {
        Database::Sqlite
    }
}

pub struct Server {
    child: Child,
    pub url: String,
    pub database_url: String,
    env: Vec<(String, String)>,
    stdout_lines: mpsc::Receiver<String>,
    _dir: tempfile::TempDir,
    _db: Option<Database>,
}

impl Server {
    pub fn start(db: Database) -> Server {
        Self::start_with(db, &[])
    }

    pub fn start_with(db: Database, extra_env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let database_url = match &db {
            Database::Sqlite => format!("sqlite://{}", dir.path().join("streamit.db").display()),
            Database::Url(url, _) => url.clone(),
        };
        let mut env: Vec<(String, String)> = vec![
            ("STREAMIT_BIND".into(), "127.0.0.1:0".into()),
            ("DATABASE_URL".into(), database_url.clone()),
            ("LIVEKIT_URL".into(), "http://127.0.0.1:7880".into()),
            ("LIVEKIT_API_KEY".into(), LK_KEY.into()),
            ("LIVEKIT_API_SECRET".into(), LK_SECRET.into()),
            ("RUST_LOG".into(), "info,sqlx=warn".into()),
        ];
        for (k, v) in extra_env {
            env.retain(|(ek, _)| ek != k);
            env.push((k.to_string(), v.to_string()));
        }
        Self::spawn(dir, env, database_url, Some(db))
    }

    /// A second instance on the same database (as behind a load balancer).
    pub fn another(&self) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::spawn(dir, self.env.clone(), self.database_url.clone(), None)
    }

    fn spawn(
        dir: tempfile::TempDir,
        env: Vec<(String, String)>,
        database_url: String,
        db: Option<Database>,
    ) -> Server {
        let stderr = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        let mut cmd = Command::new(BIN);
        // Dies with the test process even if the test is killed (Linux).
        streamit_testkit::tie_to_test(&mut cmd);
        let mut child = cmd
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn streamit-server");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                let log =
                    std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
                panic!("server did not report ready:\n{log}")
            });
        let url = line
            .strip_prefix("STREAMIT_SERVER_LISTENING ")
            .unwrap_or_else(|| panic!("unexpected first stdout line {line:?}"))
            .to_string();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        Server {
            child,
            url,
            database_url,
            env,
            stdout_lines: rx,
            _dir: dir,
            _db: db,
        }
    }

    pub fn client(&self) -> Client {
        Client::new(self.url.clone())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("server.log")).unwrap_or_default()
    }

    /// Runs `streamit-server <args>` on the same database.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self._dir.path())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run streamit-server CLI")
    }

    /// Like [`Server::cli`], panicking unless it succeeds; returns stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stops the server (SIGTERM) and returns what it printed on stdout after the ready line.
    pub fn stop(mut self) -> Vec<String> {
        sigterm(self.child.id());
        let _ = self.child.wait();
        self.stdout_lines.try_iter().collect()
    }

    pub fn http(&self) -> reqwest::Client {
        reqwest::Client::new()
    }

    /// A new account (role viewer or creator); creators are approved through the CLI
    /// when `approve` is set.
    pub async fn account(
        &self,
        username: &str,
        role: Role,
        approve: bool,
    ) -> (Client, AuthResponse) {
        let auth = self
            .client()
            .register(&RegisterRequest {
                username: username.into(),
                password: format!("{username}-password"),
                display_name: Some(format!("{username} display")),
                role: Some(role),
            })
            .await
            .expect("register");
        if approve {
            self.cli_ok(&["user", "approve", username]);
        }
        (self.client().with_token(auth.token.clone()), auth)
    }
}

fn sigterm(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The error status of a failed client call.
pub fn status<T: std::fmt::Debug>(r: Result<T, streamit_api::client::ApiError>) -> u16 {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.status().unwrap_or_else(|| panic!("no HTTP status: {e}")),
    }
}

/// A raw request: (status, JSON body).
pub async fn raw(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Option<Vec<u8>>,
) -> (u16, serde_json::Value) {
    let mut req = http.request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    if let Some(b) = body {
        req = req.body(b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.expect("body");
    let json = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        panic!(
            "non-JSON body (HTTP {status}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, json)
}

/// Asserts the contract's error envelope and returns its message.
pub fn error_message(v: &serde_json::Value) -> String {
    assert_eq!(v["success"], false, "{v}");
    assert_eq!(
        v.as_object().map(|o| o.len()),
        Some(2),
        "error envelope has exactly success+error: {v}"
    );
    v["error"].as_str().expect("error is a string").to_string()
}

/// Polls `check` until it returns `Some`, or panics after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: std::time::Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
