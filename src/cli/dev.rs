//! `dev`: the whole system on this machine — a LiveKit server from the install cache, the
//! StreamIt backend (`streamit-server`, a child process: `$STREAMIT_SERVER_BIN`, built by cargo
//! in a source checkout, beside this binary, or on PATH) on SQLite in the data directory, an
//! approved local creator (made by the server's own `user ensure-creator`) — then the studio,
//! already logged in (or, with `--headless`, a wait for Ctrl-C). Both children stop when `dev`
//! exits.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use clap::Args;
use streamit_api::client::Client;
use streamit_api::{LoginRequest, SetupStreamRequest};
use tokio::process::{Child, Command};

use super::{CliError, CliResult, EXIT_DEVICE, EXIT_NETWORK, EXIT_OTHER};

const VERSIONS_ENV: &str = include_str!("../../scripts/versions.env");

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Where the SQLite database lives (default: the OS data directory of streamit-studio).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Backend address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// LiveKit HTTP/WebSocket port; RTC uses TCP `--rtc-tcp-port` and UDP `--rtc-udp-port`.
    #[arg(long, default_value_t = 7880)]
    pub livekit_port: u16,
    #[arg(long, default_value_t = 7881)]
    pub rtc_tcp_port: u16,
    #[arg(long, default_value_t = 7882)]
    pub rtc_udp_port: u16,
    /// The local creator account (created and approved if missing).
    #[arg(long, default_value = "creator")]
    pub username: String,
    /// The local creator's password. Default: a random one made once per data directory
    /// and kept in the OS keyring (without one: in `<data dir>/dev-password`, readable only
    /// by you); `--show-password` prints it.
    #[arg(long, env = "STREAMIT_DEV_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Print the local creator's password for this data directory (making one if there is
    /// none yet) and exit.
    #[arg(long)]
    pub show_password: bool,
    /// Do not open the studio; print where things listen and wait for Ctrl-C.
    #[arg(long)]
    pub headless: bool,
}

/// The install cache: `$XDG_CACHE_HOME/streamit` or `~/.cache/streamit` on Linux (as
/// scripts/install.sh), the platform's cache directory elsewhere.
fn cache_dir() -> Option<PathBuf> {
    directories::BaseDirs::new().map(|d| d.cache_dir().join("streamit"))
}

/// `$STREAMIT_LIVEKIT_SERVER`, else the install cache (same formula as crates/testkit and
/// scripts/install.sh).
fn livekit_bin() -> CliResult<PathBuf> {
    if let Some(p) = std::env::var_os("STREAMIT_LIVEKIT_SERVER") {
        return Ok(PathBuf::from(p));
    }
    let version = VERSIONS_ENV
        .lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == "LIVEKIT_SERVER_VERSION")
        .map(|(_, v)| v.trim().to_string())
        .ok_or_else(|| CliError::new(EXIT_OTHER, "LIVEKIT_SERVER_VERSION missing"))?;
    let p = cache_dir()
        .ok_or_else(|| CliError::new(EXIT_OTHER, "no home directory to find the install cache in"))?
        .join(format!(
            "livekit-server-{version}/bin/livekit-server{}",
            std::env::consts::EXE_SUFFIX
        ));
    if p.is_file() {
        Ok(p)
    } else {
        Err(CliError::new(
            EXIT_DEVICE,
            format!(
                "livekit-server not found at {}: run scripts/install.sh (or set STREAMIT_LIVEKIT_SERVER)",
                p.display()
            ),
        ))
    }
}

fn random_hex(bytes: usize) -> CliResult<String> {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| CliError::new(EXIT_OTHER, format!("reading /dev/urandom: {e}")))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// The children, killed (and reaped) on drop as well as on a normal exit.
struct Children(Vec<(String, Child)>);

impl Children {
    async fn stop(&mut self) {
        for (name, child) in self.0.iter_mut().rev() {
            if let Some(pid) = child.id() {
                // SIGTERM first so the backend closes its database cleanly.
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status();
            }
            match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
                Ok(_) => {}
                Err(_) => {
                    tracing::warn!("{name} did not stop on SIGTERM; killing it");
                    let _ = child.kill().await;
                }
            }
        }
        self.0.clear();
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for (_, c) in &mut self.0 {
            let _ = c.start_kill();
        }
    }
}

async fn wait_tcp(port: u16, child: &mut Child, what: &str) -> CliResult {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(CliError::new(
                EXIT_NETWORK,
                format!("{what} exited ({status}) before listening on port {port} (is it taken?)"),
            ));
        }
        if Instant::now() > deadline {
            return Err(CliError::new(
                EXIT_NETWORK,
                format!("{what} did not listen on port {port} within 20 s"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn run(a: DevArgs) -> CliResult {
    let data_dir = match &a.data_dir {
        Some(d) => d.clone(),
        None => directories::ProjectDirs::from("", "", "streamit-studio")
            .map(|p| p.data_dir().to_path_buf())
            .ok_or_else(|| CliError::new(EXIT_OTHER, "no data directory; pass --data-dir"))?,
    };
    std::fs::create_dir_all(&data_dir)
        .map_err(|e| CliError::new(EXIT_DEVICE, format!("creating {}: {e}", data_dir.display())))?;
    // Canonical, so that one directory has one keyring entry however it was named.
    let data_dir = data_dir.canonicalize().unwrap_or(data_dir);
    let password = match &a.password {
        Some(p) => DevPassword {
            password: p.clone(),
            kept_in: None,
        },
        None => dev_password(&data_dir, &a.username)?,
    };
    if a.show_password {
        println!("{}", password.password);
        return Ok(());
    }
    let db = data_dir.join("streamit.sqlite");
    let key = format!("dev{}", random_hex(6)?);
    let secret = random_hex(32)?;
    let lk_http = format!("http://127.0.0.1:{}", a.livekit_port);
    let lk_ws = format!("ws://127.0.0.1:{}", a.livekit_port);
    let env: Vec<(&str, String)> = vec![
        ("STREAMIT_BIND", a.bind.to_string()),
        (
            "DATABASE_URL",
            format!("sqlite://{}?mode=rwc", db.display()),
        ),
        ("LIVEKIT_URL", lk_http.clone()),
        ("LIVEKIT_WS_URL", lk_ws.clone()),
        ("LIVEKIT_API_KEY", key.clone()),
        ("LIVEKIT_API_SECRET", secret.clone()),
    ];
    // Found (or built) before anything starts, so that a missing backend fails fast.
    let server_bin = server_bin().await?;
    let mut children = Children(Vec::new());

    // LiveKit, loopback only, webhooks to the backend.
    let config = format!(
        "rtc: {{tcp_port: {}, udp_port: {}, use_external_ip: false, enable_loopback_candidate: true}}\n\
         webhook: {{api_key: {key}, urls: [\"http://{}/api/livekit/webhook\"]}}",
        a.rtc_tcp_port, a.rtc_udp_port, a.bind
    );
    let mut lk = Command::new(livekit_bin()?)
        .args(["--bind", "127.0.0.1", "--node-ip", "127.0.0.1", "--port"])
        .arg(a.livekit_port.to_string())
        .arg("--keys")
        .arg(format!("{key}: {secret}"))
        .arg("--config-body")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file(&data_dir, "livekit.log")?)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| CliError::new(EXIT_DEVICE, format!("starting livekit-server: {e}")))?;
    wait_tcp(a.livekit_port, &mut lk, "livekit-server").await?;
    children.0.push(("livekit-server".into(), lk));

    // The backend, a child process like LiveKit, ready when /api/health answers.
    let backend_log = data_dir.join("backend.log");
    let log = log_file(&data_dir, "backend.log")?;
    let log_err = log
        .try_clone()
        .map_err(|e| CliError::new(EXIT_DEVICE, format!("{}: {e}", backend_log.display())))?;
    let mut server = Command::new(&server_bin);
    server_env(&mut server, &env)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .kill_on_drop(true);
    let server = server.spawn().map_err(|e| {
        CliError::new(
            EXIT_DEVICE,
            format!("starting {}: {e}", server_bin.display()),
        )
    })?;
    children.0.push(("streamit-server".into(), server));
    let api_url = format!("http://{}", a.bind);
    let api = Client::new(api_url.clone());
    let healthy = match children.0.last_mut() {
        Some((_, server)) => wait_healthy(&api, server).await,
        None => Err("not started".into()),
    };
    if let Err(why) = healthy {
        children.stop().await;
        return Err(CliError::new(
            EXIT_NETWORK,
            format!(
                "the backend ({}) could not start on {}: {why}\n{}",
                server_bin.display(),
                a.bind,
                log_tail(&backend_log, 15)
            ),
        ));
    }

    // The local creator: created once, approved, with this data directory's password (an
    // account from an older `dev` with another password gets this one), a stream set up.
    ensure_creator(&server_bin, &env, &a.username, &password.password).await?;
    let auth = api
        .login(&LoginRequest {
            username: a.username.clone(),
            password: password.password.clone(),
        })
        .await?;
    let api = api.with_token(auth.token.clone());
    let stream = match api.stream_info().await {
        Ok(s) => s,
        Err(_) => {
            api.setup_stream(&SetupStreamRequest {
                title: "Local test stream".into(),
                ..Default::default()
            })
            .await?
        }
    };
    let watch = super::watch_url(&stream.watch_url, &api_url, &stream.user.username);

    println!("StreamIt dev is running:");
    println!("  backend API     {api_url}  (SQLite: {})", db.display());
    println!("  LiveKit server  {lk_ws}");
    println!(
        "  logs            {}, livekit.log and studio.log beside it",
        backend_log.display()
    );
    println!("  watch page      {watch}  (share it once you are live)");
    let show = format!(
        "streamit-studio dev --show-password{}",
        a.data_dir
            .as_ref()
            .map(|_| format!(" --data-dir {}", data_dir.display()))
            .unwrap_or_default()
    );
    match &password.kept_in {
        Some(where_) => println!(
            "  creator         {} (password: `{show}`; kept in {where_})",
            a.username
        ),
        None => println!("  creator         {} (the password you gave)", a.username),
    }
    // How to log in, never a token: a session token on a terminal ends up in scrollback,
    // screen shares and pasted logs.
    println!(
        "  for the CLI     streamit-studio login --api {api_url} --username {}",
        a.username
    );
    println!("STREAMIT_DEV_WATCH_URL {watch}");
    println!("STREAMIT_DEV_READY {api_url}");

    let result = if a.headless {
        println!("Press Ctrl-C to stop.");
        wait_for_signal().await;
        Ok(())
    } else {
        run_studio(&api_url, &auth.token, &data_dir).await
    };
    children.stop().await;
    eprintln!("stopped the backend and livekit-server");
    result
}

/// Where `dev` looks for `streamit-server` when `$STREAMIT_SERVER_BIN` is not set.
const SERVER_BIN_ENV: &str = "STREAMIT_SERVER_BIN";

/// `streamit-server`: `$STREAMIT_SERVER_BIN`; else, when this binary runs from a source
/// checkout (cargo's target directory), built there by cargo with the same profile so that it
/// matches these sources (a no-op when it is up to date; it lands beside this binary); else
/// beside this executable; else on PATH. The error says what was tried and how to get one.
async fn server_bin() -> CliResult<PathBuf> {
    let name = format!("streamit-server{}", std::env::consts::EXE_SUFFIX);
    if let Some(p) = std::env::var_os(SERVER_BIN_ENV) {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        return Err(CliError::new(
            EXIT_DEVICE,
            format!("{SERVER_BIN_ENV}={} is not a file", p.display()),
        ));
    }
    let mut tried = vec![format!("{SERVER_BIN_ENV} (not set)")];
    let exe = std::env::current_exe()
        .map_err(|e| CliError::new(EXIT_OTHER, format!("locating this binary: {e}")))?;
    match SourceCheckout::of(&exe) {
        Some(src) => {
            let built = src.build_server().await?;
            if built.is_file() {
                return Ok(built);
            }
            tried.push(format!(
                "cargo build (then {} was missing)",
                built.display()
            ));
        }
        None => tried.push("building it (this binary is not from a source checkout)".into()),
    }
    if let Some(dir) = exe.parent() {
        let beside = dir.join(&name);
        if beside.is_file() {
            return Ok(beside);
        }
        tried.push(beside.display().to_string());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(p) = std::env::split_paths(&path)
        .map(|d| d.join(&name))
        .find(|p| p.is_file())
    {
        return Ok(p);
    }
    tried.push(format!("PATH ({})", path.to_string_lossy()));
    Err(CliError::new(
        EXIT_DEVICE,
        format!(
            "streamit-server (the StreamIt backend `dev` runs locally) not found; tried {}.\n\
             The studio package does not include it. Install the streamit-server package, or \
             build it from the StreamIt Studio sources (`cargo build --release -p \
             streamit-server`), then put it on PATH, beside streamit-studio, or name it in \
             {SERVER_BIN_ENV}.",
            tried.join(", ")
        ),
    ))
}

/// The workspace this binary was built from and the cargo target directory it runs from.
struct SourceCheckout {
    workspace: PathBuf,
    target_dir: PathBuf,
    /// `target/<dir>`: `debug` for the dev profile, else the profile's name.
    profile_dir: PathBuf,
}

impl SourceCheckout {
    /// `Some` when `exe` sits in `<target>/<profile>/` (cargo's CACHEDIR.TAG in `<target>`)
    /// and the workspace it was compiled from still holds the server crate.
    fn of(exe: &Path) -> Option<SourceCheckout> {
        let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let profile_dir = exe.parent()?.to_path_buf();
        let target_dir = profile_dir.parent()?.to_path_buf();
        (workspace.join("crates/server/Cargo.toml").is_file()
            && target_dir.join("CACHEDIR.TAG").is_file())
        .then_some(SourceCheckout {
            workspace,
            target_dir,
            profile_dir,
        })
    }

    /// `cargo build -p streamit-server` into the same target directory and profile; returns
    /// where the binary is then.
    async fn build_server(&self) -> CliResult<PathBuf> {
        let profile = match self.profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev".to_string(),
            Some(other) => other.to_string(),
        };
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        eprintln!(
            "building streamit-server (cargo build -p streamit-server --profile {profile}) in {}",
            self.workspace.display()
        );
        let status = Command::new(&cargo)
            .args(["build", "-p", "streamit-server", "--bin", "streamit-server"])
            .args(["--profile", &profile, "--target-dir"])
            .arg(&self.target_dir)
            .current_dir(&self.workspace)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .await
            .map_err(|e| {
                CliError::new(
                    EXIT_OTHER,
                    format!(
                        "running {} build -p streamit-server: {e}",
                        Path::new(&cargo).display()
                    ),
                )
            })?;
        if !status.success() {
            return Err(CliError::new(
                EXIT_OTHER,
                format!("cargo build -p streamit-server failed ({status})"),
            ));
        }
        Ok(self
            .profile_dir
            .join(format!("streamit-server{}", std::env::consts::EXE_SUFFIX)))
    }
}

/// Environment variables a `streamit-server` child must not inherit from `dev`: a config file
/// (`dev` configures its backend completely) and the passwords and token `dev` may be given.
const NOT_FOR_THE_SERVER: &[&str] = &[
    "STREAMIT_CONFIG",
    "STREAMIT_DEV_PASSWORD",
    "STREAMIT_USER_PASSWORD",
    "STREAMIT_PASSWORD",
    "STREAMIT_TOKEN",
];

/// `cmd` with the backend's configuration (`env`, read by the server's `Config`).
fn server_env<'c>(cmd: &'c mut Command, env: &[(&str, String)]) -> &'c mut Command {
    for k in NOT_FOR_THE_SERVER {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)))
}

/// Polls `GET /api/health` until it answers ok; fails when `server` exits first or after 30 s.
async fn wait_healthy(api: &Client, server: &mut Child) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = server.try_wait() {
            return Err(format!("it exited ({status}); is the address taken?"));
        }
        let answer = tokio::time::timeout(Duration::from_secs(2), api.health()).await;
        if let Ok(Ok(_)) = answer {
            // Answered by our child, not by another server that holds the address.
            return match server.try_wait() {
                Ok(Some(status)) => Err(format!(
                    "it exited ({status}) while another server answers there"
                )),
                _ => Ok(()),
            };
        }
        if Instant::now() > deadline {
            return Err("/api/health did not answer ok within 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `streamit-server user ensure-creator <username>` on the backend's database, the password
/// on its stdin (never in argv, an environment variable or a log).
async fn ensure_creator(
    server_bin: &Path,
    env: &[(&str, String)],
    username: &str,
    password: &str,
) -> CliResult {
    use tokio::io::AsyncWriteExt;
    let err =
        |e: String| CliError::new(EXIT_OTHER, format!("preparing the creator {username}: {e}"));
    let mut cmd = Command::new(server_bin);
    server_env(&mut cmd, env)
        .args(["user", "ensure-creator", username])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| err(format!("starting {}: {e}", server_bin.display())))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(format!("{password}\n").as_bytes())
            .await
            .map_err(|e| err(format!("passing the password: {e}")))?;
    }
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .map_err(|_| err("streamit-server user ensure-creator took over 60 s".into()))?
        .map_err(|e| err(e.to_string()))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(err(format!(
        "streamit-server user ensure-creator failed ({}): {}",
        out.status,
        stderr.trim()
    )))
}

/// The last `lines` lines of a log file, for an error message.
fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let tail = all[all.len().saturating_sub(lines)..].join("\n");
    format!("last lines of {}:\n{tail}", path.display())
}

/// The local creator's password and where it is kept (`None`: given on the command line).
struct DevPassword {
    password: String,
    kept_in: Option<String>,
}

const DEV_KEYRING_SERVICE: &str = "streamit-studio-dev";
const PASSWORD_FILE: &str = "dev-password";

/// The keyring entry of one data directory's creator (none when STREAMIT_STUDIO_NO_KEYRING
/// is set, as for the studio's own keyring use).
fn dev_keyring(data_dir: &Path, username: &str) -> Option<keyring::Entry> {
    if std::env::var_os("STREAMIT_STUDIO_NO_KEYRING").is_some() {
        return None;
    }
    keyring::Entry::new(
        DEV_KEYRING_SERVICE,
        &format!("{username}@{}", data_dir.display()),
    )
    .ok()
}

/// This data directory's creator password: from the keyring, else from the fallback file,
/// else a new random one stored in the keyring, else in the fallback file (0600).
fn dev_password(data_dir: &Path, username: &str) -> CliResult<DevPassword> {
    let entry = dev_keyring(data_dir, username);
    let in_keyring = format!(
        "the OS keyring ({DEV_KEYRING_SERVICE} / {username}@{})",
        data_dir.display()
    );
    if let Some(p) = entry.as_ref().and_then(|e| e.get_password().ok()) {
        return Ok(DevPassword {
            password: p,
            kept_in: Some(in_keyring),
        });
    }
    let file = data_dir.join(PASSWORD_FILE);
    let in_file = format!("{} (no OS keyring here)", file.display());
    if let Ok(p) = std::fs::read_to_string(&file)
        && !p.trim().is_empty()
    {
        return Ok(DevPassword {
            password: p.trim().to_string(),
            kept_in: Some(in_file),
        });
    }
    let password = random_hex(16)?;
    // Read back: a keyring that accepts a secret but cannot return it is no keyring.
    if let Some(e) = &entry
        && e.set_password(&password).is_ok()
        && e.get_password().ok().as_deref() == Some(password.as_str())
    {
        return Ok(DevPassword {
            password,
            kept_in: Some(in_keyring),
        });
    }
    write_private(&file, &password)?;
    eprintln!(
        "note: no OS keyring service here; the local creator's password is in {} (readable only by you)",
        file.display()
    );
    Ok(DevPassword {
        password,
        kept_in: Some(in_file),
    })
}

/// Writes `text` to a new file only its owner can read (on Unix).
fn write_private(path: &Path, text: &str) -> CliResult {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
        .and_then(|mut f| f.write_all(format!("{text}\n").as_bytes()))
        .map_err(|e| CliError::new(EXIT_DEVICE, format!("writing {}: {e}", path.display())))
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Opens the studio (this binary without a subcommand) logged in as the local creator. Its
/// stderr goes to `studio.log` in the data directory, like the other children's: what the
/// C audio and graphics libraries print while probing devices (ALSA, JACK, Vulkan) is not
/// for this terminal; the window shows the studio's own errors.
async fn run_studio(api_url: &str, token: &str, data_dir: &Path) -> CliResult {
    let exe = std::env::current_exe()
        .map_err(|e| CliError::new(EXIT_OTHER, format!("locating this binary: {e}")))?;
    let log = data_dir.join("studio.log");
    let mut studio = Command::new(exe)
        .env("STREAMIT_API_URL", api_url)
        .env("STREAMIT_TOKEN", token)
        .stdin(Stdio::null())
        .stderr(log_file(data_dir, "studio.log")?)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| CliError::new(EXIT_OTHER, format!("opening the studio: {e}")))?;
    tokio::select! {
        status = studio.wait() => {
            if let Ok(s) = status && !s.success() {
                eprintln!("the studio exited with {s}\n{}", log_tail(&log, 15));
            }
        }
        _ = wait_for_signal() => {
            let _ = studio.kill().await;
        }
    }
    Ok(())
}

fn log_file(dir: &Path, name: &str) -> CliResult<std::fs::File> {
    let p = dir.join(name);
    std::fs::File::create(&p)
        .map_err(|e| CliError::new(EXIT_DEVICE, format!("creating {}: {e}", p.display())))
}
