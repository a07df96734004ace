//! The StreamIt backend binary (`streamit-server`) on loopback with its own database.

use crate::livekit::LiveKit;
use crate::process::{Guarded, restart_retrying, tie_to_test};
use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The line the server prints on stdout once it accepts requests.
const READY_PREFIX: &str = "STREAMIT_SERVER_LISTENING ";

#[derive(Default)]
pub struct BackendOptions<'a> {
    /// The LiveKit server whose keys the backend signs tokens with (and whose URL it hands out).
    pub livekit: Option<&'a LiveKit>,
    /// Default: a fresh SQLite file in a temporary directory.
    pub database_url: Option<String>,
    /// Default: `$STREAMIT_SERVER_BIN`, else `streamit-server` next to the test binary's target dir.
    pub bin: Option<PathBuf>,
    /// Extra environment for the server (e.g. rate-limit settings).
    pub env: Vec<(String, String)>,
}

/// A running backend. Dropping it stops the server and deletes its temporary database.
pub struct Backend {
    process: Guarded,
    url: String,
    bin: PathBuf,
    env: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

impl Backend {
    pub fn start(options: BackendOptions<'_>) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("streamit-backend-")
            .tempdir()?;
        let bin = match options.bin {
            Some(b) => b,
            None => server_bin()?,
        };
        let database_url = options.database_url.unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("streamit.sqlite").display()
            )
        });
        let mut env = vec![
            ("STREAMIT_BIND".to_string(), "127.0.0.1:0".to_string()),
            ("DATABASE_URL".to_string(), database_url),
            (
                "RUST_LOG".to_string(),
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            ),
        ];
        // The watch pages of this checkout: the binary's built-in default is the checkout
        // it was compiled in, which a shared build cache may have taken from another path.
        env.push((
            "STREAMIT_WEB_DIR".into(),
            crate::paths::repo_root()
                .join("crates/server/web/dist")
                .display()
                .to_string(),
        ));
        if let Some(lk) = options.livekit {
            env.push(("LIVEKIT_URL".into(), lk.http_url()));
            env.push(("LIVEKIT_WS_URL".into(), lk.public_ws_url()));
            env.push(("LIVEKIT_API_KEY".into(), lk.api_key().into()));
            env.push(("LIVEKIT_API_SECRET".into(), lk.api_secret().into()));
        }
        env.extend(options.env);

        let log = dir.path().join("backend.log");
        let (process, url) = spawn(&bin, &env, &log, false)?;
        Ok(Backend {
            process,
            url,
            bin,
            env,
            _dir: dir,
        })
    }

    /// Stops the server (SIGTERM, then SIGKILL), keeping its database: the backend is gone
    /// for the clients until [`Backend::restart`].
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// Kills the server outright (SIGKILL, as a crash or an OOM kill would), keeping its
    /// database; [`Backend::restart`] brings it back on the same address.
    pub fn kill(&mut self) {
        self.process.signal_group(libc::SIGKILL);
        let _ = self.process.child.wait();
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        self.process.exited().is_none()
    }

    /// Freezes the server (SIGSTOP): connections are still accepted by the kernel, but
    /// nothing is answered until [`Backend::resume`] (a hung backend).
    pub fn pause(&self) -> bool {
        self.process.signal_group(libc::SIGSTOP)
    }

    /// Lets a [`Backend::pause`]d server run again (SIGCONT).
    pub fn resume(&self) -> bool {
        self.process.signal_group(libc::SIGCONT)
    }

    /// Starts the server again on the same address and database (its log goes on in the
    /// same file). The address must have been a fixed port (as [`crate::Stack`] gives it).
    pub fn restart(&mut self) -> Result<()> {
        self.process.stop();
        let addr = self.url.trim_start_matches("http://").to_string();
        let mut env = self.env.clone();
        env.retain(|(k, _)| k != "STREAMIT_BIND");
        env.push(("STREAMIT_BIND".into(), addr));
        let log = self.process.log.clone();
        let (process, url) =
            restart_retrying("streamit-server", || spawn(&self.bin, &env, &log, true))?;
        if url != self.url {
            bail!("the restarted backend listens on {url}, not {}", self.url);
        }
        self.process = process;
        Ok(())
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs `streamit-server <args>` against the same database (admin commands); returns stdout.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        self.cli_env(args, &[])
    }

    /// [`Backend::cli`] with extra environment (e.g. `STREAMIT_USER_PASSWORD` for `user create`).
    pub fn cli_env(&self, args: &[&str], extra_env: &[(&str, &str)]) -> Result<String> {
        self.run_cli(args, extra_env, "")
    }

    /// [`Backend::cli`] with `input` on its stdin (a password, never in argv or the
    /// environment).
    pub fn cli_stdin(&self, args: &[&str], input: &str) -> Result<String> {
        self.run_cli(args, &[], input)
    }

    /// `streamit-server <args>` with `input` on stdin (then end of input); stdout, or the
    /// failure with stderr.
    fn run_cli(&self, args: &[&str], extra_env: &[(&str, &str)], input: &str) -> Result<String> {
        let mut child = Command::new(&self.bin)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .envs(extra_env.iter().copied())
            .env("STREAMIT_BIND", "127.0.0.1:0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running streamit-server {args:?}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "streamit-server {args:?} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }

    /// The server's whole log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.process.log).unwrap_or_default()
    }
}

/// Starts `bin` with `env`, logging to `log`; waits for its ready line.
fn spawn(
    bin: &std::path::Path,
    env: &[(String, String)],
    log: &std::path::Path,
    append: bool,
) -> Result<(Guarded, String)> {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(append)
        .write(true)
        .truncate(!append)
        .open(log)?;
    let mut cmd = Command::new(bin);
    cmd.envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file.try_clone()?);
    tie_to_test(&mut cmd);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let stdout = child.stdout.take().context("backend stdout")?;
    let process = Guarded {
        child,
        log: log.to_path_buf(),
    };

    // Read stdout on a thread: the ready line goes to us, everything goes to the log.
    let (tx, rx) = mpsc::channel();
    let mut log_out = log_file;
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix(READY_PREFIX) {
                let _ = tx.send(url.trim().to_string());
            }
            let _ = writeln!(log_out, "{line}");
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(url) => Ok((process, url)),
        Err(_) => bail!(
            "streamit-server did not report ready within 30 s:\n{}",
            process.log_tail(40)
        ),
    }
}

/// `$STREAMIT_SERVER_BIN`, else the binary next to the running test, built on demand: a test of
/// one package does not make cargo build another package's binary.
pub fn server_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("STREAMIT_SERVER_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test> → target/<profile>/streamit-server
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("cannot locate the target directory from the test binary")?;
    let bin = profile_dir.join(format!("streamit-server{}", std::env::consts::EXE_SUFFIX));
    if !bin.is_file() {
        // target/debug is the dev profile's; any other directory is named for its profile
        // (`cargo test --release` runs from target/release and wants its server there).
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev",
            Some(p) => p,
        };
        build_server(profile)?;
    }
    if bin.is_file() {
        Ok(bin)
    } else {
        bail!("{} not found after building it", bin.display())
    }
}

/// `cargo build -p streamit-server` in `profile`, once per test process.
fn build_server(profile: &str) -> Result<()> {
    static BUILT: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if *built {
        return Ok(());
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "-p", "streamit-server", "--bin", "streamit-server"])
        .args(["--profile", profile])
        .current_dir(crate::paths::repo_root())
        .status()
        .context("running cargo build -p streamit-server")?;
    if !status.success() {
        bail!("cargo build -p streamit-server failed ({status})");
    }
    *built = true;
    Ok(())
}
