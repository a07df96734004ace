//! `streamit-studio dev --headless`: starts LiveKit + the backend (`streamit-server`, a child
//! process that `dev` builds with cargo here, as it runs from the target directory) + an
//! approved creator, and leaves nothing listening after Ctrl-C.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use streamit_api::LoginRequest;
use streamit_api::client::Client;
use streamit_testkit::{free_tcp_port, free_udp_port};
use tokio::io::{AsyncBufReadExt, BufReader};

fn listening(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_starts_everything_and_stops_cleanly() -> Result<()> {
    let data = tempfile::tempdir()?;
    let (api_port, lk_port, tcp_port, udp_port) = (
        free_tcp_port()?,
        free_tcp_port()?,
        free_tcp_port()?,
        free_udp_port()?,
    );
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_streamit-studio"))
        .args(["dev", "--headless", "--data-dir"])
        .arg(data.path())
        .args(["--bind", &format!("127.0.0.1:{api_port}")])
        .args(["--livekit-port", &lk_port.to_string()])
        .args(["--rtc-tcp-port", &tcp_port.to_string()])
        .args(["--rtc-udp-port", &udp_port.to_string()])
        .args(["--username", "localdev"])
        // No keyring service here (no D-Bus session); make that explicit either way, so
        // the password goes to the data directory's fallback file.
        // The server the workspace build made: `dev`'s own `cargo build -p streamit-server`
        // would resolve features for that package alone and rebuild its dependencies.
        .env("STREAMIT_SERVER_BIN", streamit_testkit::server_bin()?)
        .env("STREAMIT_STUDIO_NO_KEYRING", "1")
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env_remove("STREAMIT_DEV_PASSWORD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().context("dev pid")?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let output = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let api_url = tokio::time::timeout(Duration::from_secs(120), async {
        while let Ok(Some(line)) = lines.next_line().await {
            println!("dev: {line}");
            if let Ok(mut o) = output.lock() {
                o.push_str(&line);
                o.push('\n');
            }
            if let Some(url) = line.strip_prefix("STREAMIT_DEV_READY ") {
                return Some(url.to_string());
            }
        }
        None
    })
    .await
    .context("dev did not get ready in 120 s")?
    .context("dev exited before it was ready")?;
    ensure!(
        api_url == format!("http://127.0.0.1:{api_port}"),
        "{api_url}"
    );
    let rest = output.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(mut o) = rest.lock() {
                o.push_str(&line);
                o.push('\n');
            }
        }
    });

    // The creator's password is this data directory's own, random, kept where
    // `--show-password` finds it, and never printed by `dev` itself.
    let password = show_password(data.path()).await?;
    ensure!(
        password.len() >= 32,
        "a short password: {} chars",
        password.len()
    );
    ensure!(
        password != "streamit-dev-password",
        "the old fixed password"
    );
    let file = data.path().join("dev-password");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file)?.permissions().mode() & 0o777;
        ensure!(mode == 0o600, "{} has mode {mode:o}", file.display());
    }
    let other = tempfile::tempdir()?;
    let other_password = show_password(other.path()).await?;
    ensure!(
        other_password != password,
        "two data directories got the same password"
    );
    ensure!(
        show_password(data.path()).await? == password,
        "the password changed between two reads"
    );

    // The creator exists, is approved and has a stream; LiveKit listens.
    let api = Client::new(api_url.clone());
    ensure!(
        api.login(&LoginRequest {
            username: "localdev".into(),
            password: "streamit-dev-password".into(),
        })
        .await
        .is_err(),
        "the old fixed password logs in"
    );
    let auth = api
        .login(&LoginRequest {
            username: "localdev".into(),
            password: password.clone(),
        })
        .await?;
    ensure!(auth.user.is_approved, "creator not approved");
    let stream = api.clone().with_token(auth.token).stream_info().await?;
    ensure!(!stream.title.is_empty());
    ensure!(listening(lk_port), "LiveKit is not listening");
    ensure!(data.path().join("streamit.sqlite").is_file());

    // login → setup → logout through the CLI. Without a Secret Service (no D-Bus session
    // here) `login` says so and prints the STREAMIT_TOKEN line to evaluate instead.
    let studio = env!("CARGO_BIN_EXE_streamit-studio");
    let login = tokio::process::Command::new(studio)
        .args(["login", "--api", &api_url, "--username", "localdev"])
        .env("STREAMIT_PASSWORD", &password)
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&login.stdout).to_string();
    let stderr = String::from_utf8_lossy(&login.stderr).to_string();
    ensure!(login.status.success(), "login: {stderr}");
    let token = match stdout.trim().strip_prefix("export STREAMIT_TOKEN=") {
        Some(t) => {
            ensure!(
                stderr.contains("STREAMIT_TOKEN"),
                "no fallback hint: {stderr}"
            );
            t.to_string()
        }
        // A keyring exists on this machine: use the token dev printed instead.
        None => {
            api.login(&LoginRequest {
                username: "localdev".into(),
                password: password.clone(),
            })
            .await?
            .token
        }
    };
    let run = |args: &[&str]| {
        let mut c = tokio::process::Command::new(studio);
        c.args(args)
            .env("STREAMIT_API_URL", &api_url)
            .env("STREAMIT_TOKEN", &token)
            .env_remove("DBUS_SESSION_BUS_ADDRESS");
        c
    };
    let setup = run(&["setup", "--title", "From the CLI", "--chat", "off"])
        .output()
        .await?;
    ensure!(
        setup.status.success(),
        "setup: {}",
        String::from_utf8_lossy(&setup.stderr)
    );
    let info = Client::new(api_url.clone())
        .with_token(token.clone())
        .stream_info()
        .await?;
    ensure!(
        info.title == "From the CLI" && !info.is_chat_enabled,
        "{info:?}"
    );
    let logout = run(&["logout"]).output().await?;
    ensure!(logout.status.success(), "logout failed");
    let after = run(&["setup", "--title", "again"]).output().await?;
    ensure!(
        after.status.code() == Some(3),
        "a logged-out token must be an auth error, got {}",
        after.status
    );

    // Ctrl-C: everything stops, nothing stays behind.
    std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()?;
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .context("dev did not exit after SIGINT")??;
    ensure!(status.success(), "dev exited with {status}");
    ensure!(!listening(api_port), "the backend is still listening");
    ensure!(!listening(lk_port), "LiveKit is still listening");
    let printed = output.lock().map(|o| o.clone()).unwrap_or_default();
    ensure!(
        !printed.contains(&password),
        "dev printed the password:\n{printed}"
    );
    ensure!(
        printed.contains("--show-password"),
        "dev did not say how to get the password:\n{printed}"
    );
    // Nor a session token: it says how to log in instead.
    ensure!(
        !printed.contains("STREAMIT_TOKEN"),
        "dev printed a token:\n{printed}"
    );
    ensure!(
        printed.contains(&format!(
            "streamit-studio login --api {api_url} --username localdev"
        )),
        "dev did not say how to log in:\n{printed}"
    );
    Ok(())
}

/// `dev --show-password` for `data_dir`'s creator `localdev`, without a keyring.
async fn show_password(data_dir: &std::path::Path) -> Result<String> {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_streamit-studio"))
        .args([
            "dev",
            "--show-password",
            "--username",
            "localdev",
            "--data-dir",
        ])
        .arg(data_dir)
        .env("STREAMIT_STUDIO_NO_KEYRING", "1")
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env_remove("STREAMIT_DEV_PASSWORD")
        .output()
        .await?;
    ensure!(
        out.status.success(),
        "--show-password: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)?;
    ensure!(text.lines().count() == 1, "more than the password: {text}");
    Ok(text.trim().to_string())
}
