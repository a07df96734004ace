//! Helpers the end-to-end tests share: the studio binary, waiting for a stream to go live,
//! a viewer's token, a publish's end, a watched pattern broadcast and a live studio session.
// Each test crate compiles this module on its own and may not use every helper.
#![allow(dead_code)]

mod broadcast;
#[allow(unused_imports)] // not every test crate broadcasts
pub use broadcast::{Broadcast, CREATOR, publish_pattern};

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use streamit_api::ViewerTokenRequest;
use streamit_api::client::Client;
use streamit_session::{Command, SessionConfig, SessionHandle, StreamSetup, StreamState};
use streamit_testkit::{TEST_PASSWORD, ViewerOptions};

/// The studio binary without the caller's credentials or backend in its environment.
pub fn studio() -> tokio::process::Command {
    clean_studio(tokio::process::Command::new(env!(
        "CARGO_BIN_EXE_streamit-studio"
    )))
}

/// [`studio`] run on the far side of an impaired link (in its network namespace).
pub fn studio_behind(link: &streamit_testkit::netem::ImpairedLink) -> tokio::process::Command {
    clean_studio(link.command(env!("CARGO_BIN_EXE_streamit-studio")).into())
}

/// A studio command without the caller's StreamIt credentials, spooling into the build's
/// scratch space, with its output piped.
pub fn clean_studio(mut cmd: tokio::process::Command) -> tokio::process::Command {
    cmd.env_remove("STREAMIT_TOKEN")
        .env_remove("STREAMIT_API_URL")
        .env_remove("STREAMIT_PASSWORD")
        // summaries a test's backend could not take stay in the build's scratch space,
        // never in the user's data directory
        .env(
            "STREAMIT_SPOOL_DIR",
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("spool"),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Polls the backend until `username`'s stream is live, for at most `within`;
/// returns when the wait began (tests time what follows from there).
pub async fn wait_until_live(public: &Client, username: &str, within: Duration) -> Result<Instant> {
    let started = Instant::now();
    while !public
        .stream_by_username(username)
        .await
        .is_ok_and(|s| s.is_live)
    {
        ensure!(started.elapsed() < within, "never live");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(started)
}

/// Options for a Python viewer with a guest token for `host_id`'s room, from the
/// backend's token endpoint (as a browser viewer gets one).
pub async fn guest_viewer(
    public: &Client,
    host_id: String,
    guest_name: Option<String>,
) -> Result<ViewerOptions> {
    let grant = public
        .viewer_token(&ViewerTokenRequest {
            host_id,
            guest_name,
        })
        .await?;
    Ok(ViewerOptions::new(grant.ws_url, grant.token))
}

/// A backend URL nothing listens on (a free port): the CLI's network-error case.
pub fn closed_backend_url() -> Result<String> {
    Ok(format!(
        "http://127.0.0.1:{}",
        streamit_testkit::free_tcp_port()?
    ))
}

/// The CLI exited with `code`; `what` names the case in the failure message.
pub fn ensure_exit_code(out: &Output, code: i32, what: &str) -> Result<()> {
    ensure!(
        out.status.code() == Some(code),
        "{what}: {} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Waits at most `within` for a `publish` run to end and requires exit 0;
/// `diagnostics` is added to the failure message.
pub async fn publish_succeeded(
    publish: tokio::process::Child,
    within: Duration,
    diagnostics: &str,
) -> Result<Output> {
    let out = tokio::time::timeout(within, publish.wait_with_output())
        .await
        .context("publish did not finish")??;
    ensure!(
        out.status.success(),
        "publish failed ({}): {}{diagnostics}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(out)
}

/// A studio session (the engine the GUI drives) logged in as `username` on the backend at
/// `api_url`, set up with `setup` and live.
pub async fn live_session(
    api_url: &str,
    username: &str,
    setup: StreamSetup,
) -> Result<SessionHandle> {
    let session = SessionHandle::spawn(SessionConfig::new(api_url));
    session
        .request(Command::Login {
            username: username.into(),
            password: TEST_PASSWORD.into(),
        })
        .await?;
    session.request(Command::SetupStream(setup)).await?;
    session.request(Command::GoLive).await?;
    let mut state = session.subscribe();
    let start = Instant::now();
    while state.borrow_and_update().stream_state != StreamState::Live {
        ensure!(start.elapsed() < Duration::from_secs(20), "never live");
        tokio::time::timeout(Duration::from_secs(20), state.changed()).await??;
    }
    Ok(session)
}

/// What the viewer's receiver (libwebrtc) decoded, over every video track it had, against
/// the pattern's span (first to last frame code the app read): `(decoded, span, share)`,
/// the share capped at 1 and 0 for an empty span. The receiver's count is what reached it
/// and decoded, whatever pace the Python app kept reading frames at.
pub fn receiver_decoded(report: &streamit_testkit::ViewerReport) -> (u64, u64, f64) {
    let decoded = report
        .video
        .inbound
        .iter()
        .filter_map(|i| i["inbound"]["framesDecoded"].as_u64())
        .sum::<u64>();
    let span = report.pattern.distinct + report.pattern.missing_in_span;
    let share = if span == 0 {
        0.0
    } else {
        (decoded as f64 / span as f64).min(1.0)
    };
    (decoded, span, share)
}
