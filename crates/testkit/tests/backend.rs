//! The harness starts the real backend binary on a fresh SQLite file, and stops it on drop.

use std::io::{Read, Write};
use std::net::TcpStream;
use streamit_testkit::{Backend, BackendOptions, LiveKit};

fn get(url: &str, path: &str) -> anyhow::Result<String> {
    let addr = url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr)?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

#[test]
fn backend_starts_on_its_own_database_answers_and_stops() -> anyhow::Result<()> {
    let lk = LiveKit::start()?;
    let backend = Backend::start(BackendOptions {
        livekit: Some(&lk),
        ..Default::default()
    })?;
    let health = get(backend.url(), "/api/health")?;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains(r#""success":true"#), "{health}");

    // Admin commands reach the same database the service uses.
    let err = backend
        .cli(&["user", "approve", "harness_user"])
        .unwrap_err();
    assert!(format!("{err:#}").contains("harness_user"), "{err:#}");
    backend.cli_env(
        &["user", "create", "harness_user", "--role", "creator"],
        &[("STREAMIT_USER_PASSWORD", "correct horse battery staple")],
    )?;
    backend.cli(&["user", "approve", "harness_user"])?;
    let listed = backend.cli(&["user", "list"])?;
    assert!(listed.contains("harness_user"), "{listed}");

    // Two backends never share a database.
    let other = Backend::start(BackendOptions {
        livekit: Some(&lk),
        ..Default::default()
    })?;
    assert_ne!(other.url(), backend.url());
    let listed = other.cli(&["user", "list"])?;
    assert!(!listed.contains("harness_user"), "{listed}");

    let url = backend.url().to_string();
    drop(backend);
    assert!(
        get(&url, "/api/health").is_err(),
        "backend still answering after drop"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stack_wires_webhooks_and_makes_accounts() -> anyhow::Result<()> {
    use streamit_testkit::{Grants, Stack, Viewer, ViewerOptions};
    // The receiver logs each verified webhook at debug level.
    let stack = Stack::start_with(vec![(
        "RUST_LOG".into(),
        "info,streamit_server::webhook=debug".into(),
    )])?;
    let approved = stack.creator("stack_creator", true).await?;
    assert!(approved.user.is_approved);
    let pending = stack.creator("stack_pending", false).await?;
    assert!(!pending.user.is_approved);
    let viewer = stack.viewer("stack_viewer").await?;
    assert_eq!(viewer.client.me().await?.username, "stack_viewer");

    // LiveKit reaches the backend's webhook receiver: a participant joining the creator's
    // room shows up in the backend's log as a verified webhook.
    let room = approved.user.id.clone();
    let mut opts = ViewerOptions::new(
        stack.livekit.ws_url(),
        stack.livekit.token("someone", &room, Grants::Viewer)?,
    );
    opts.duration = std::time::Duration::from_secs(1);
    let report = Viewer::run(opts).await?;
    assert!(report.joined, "{:?}", report.error);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let log = stack.backend.log_tail(200);
        if log.contains("webhook") && log.contains("participant_joined") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no participant_joined webhook reached the backend:\n{log}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Ok(())
}
