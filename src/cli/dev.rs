//! `dev`: the whole system on this machine — a LiveKit server from the install cache, the
//! StreamIt backend embedded in this process (`streamit_server::serve`) on SQLite in the data
//! directory, an approved local creator — then the studio, already logged in (or, with
//! `--headless`, a wait for Ctrl-C). The LiveKit child is stopped when `dev` exits.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use clap::Args;
use streamit_api::client::Client;
use streamit_api::{LoginRequest, RegisterRequest, Role, SetupStreamRequest};
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
    let db_url = format!("sqlite://{}?mode=rwc", db.display());
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

    // The backend, in this process.
    let config = streamit_server::Config::from_lookup(|k| {
        env.iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| v.clone())
    })
    .map_err(|e| CliError::new(EXIT_OTHER, format!("backend configuration: {e}")))?;
    let mut server = tokio::spawn(streamit_server::serve(config));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if tokio::net::TcpStream::connect(a.bind).await.is_ok() {
            break;
        }
        if server.is_finished() || Instant::now() > deadline {
            let why = match tokio::time::timeout(Duration::from_millis(100), &mut server).await {
                Ok(Ok(Err(e))) => format!("{e:#}"),
                Ok(Err(e)) => e.to_string(),
                _ => "it did not listen within 30 s".into(),
            };
            children.stop().await;
            return Err(CliError::new(
                EXIT_NETWORK,
                format!("the backend could not start on {}: {why}", a.bind),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let api_url = format!("http://{}", a.bind);

    // The local creator: registered once, approved, with this data directory's password
    // (an account from an older `dev` with another password gets this one), a stream set up.
    let api = Client::new(api_url.clone());
    let _ = api
        .register(&RegisterRequest {
            username: a.username.clone(),
            password: password.password.clone(),
            display_name: None,
            role: Some(Role::Creator),
        })
        .await;
    prepare_creator(&db_url, &a.username, &password.password).await?;
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
    println!(
        "  for the CLI     STREAMIT_API_URL={api_url} STREAMIT_TOKEN={}",
        auth.token
    );
    println!("STREAMIT_DEV_WATCH_URL {watch}");
    println!("STREAMIT_DEV_READY {api_url}");

    let result = if a.headless {
        println!("Press Ctrl-C to stop.");
        wait_for_signal().await;
        Ok(())
    } else {
        run_studio(&api_url, &auth.token).await
    };
    // The backend stops on the same Ctrl-C (its own graceful shutdown); after the studio
    // closed it is simply dropped with the runtime.
    if a.headless {
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut server).await;
    }
    server.abort();
    children.stop().await;
    eprintln!("stopped the backend and livekit-server");
    result
}

/// Approves the creator and gives them `password` if their stored hash is for another one
/// (which also ends their old login sessions).
async fn prepare_creator(db_url: &str, username: &str, password: &str) -> CliResult {
    let err = |e: String| CliError::new(EXIT_OTHER, format!("preparing {username}: {e}"));
    let db = streamit_server::db::Db::connect(db_url)
        .await
        .map_err(|e| err(e.to_string()))?;
    let name = username.trim().to_ascii_lowercase();
    let r = async {
        let user = db
            .set_role(&name, None, Some(true))
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "no such user".to_string())?;
        if !streamit_server::auth::verify_password(password, &user.password_hash) {
            let hash = streamit_server::auth::hash_password(password)
                .map_err(|_| "password hashing failed".to_string())?;
            db.set_password_hash(&name, &hash)
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!("{name}: password set to this data directory's");
        }
        Ok::<_, String>(())
    }
    .await;
    db.close().await;
    r.map_err(err)
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

/// Opens the studio (this binary without a subcommand) logged in as the local creator.
async fn run_studio(api_url: &str, token: &str) -> CliResult {
    let exe = std::env::current_exe()
        .map_err(|e| CliError::new(EXIT_OTHER, format!("locating this binary: {e}")))?;
    let mut studio = Command::new(exe)
        .env("STREAMIT_API_URL", api_url)
        .env("STREAMIT_TOKEN", token)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| CliError::new(EXIT_OTHER, format!("opening the studio: {e}")))?;
    tokio::select! {
        status = studio.wait() => {
            if let Ok(s) = status && !s.success() {
                eprintln!("the studio exited with {s}");
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
