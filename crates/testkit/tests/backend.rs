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
