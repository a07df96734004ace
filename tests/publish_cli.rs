//! End to end: `streamit-studio publish` against the real backend binary and a real LiveKit
//! server (webhooks pointed at the backend), watched by the official Python SDK viewer.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use streamit_api::client::Client;
use streamit_api::{RegisterRequest, Role, ViewerTokenRequest};
use streamit_testkit::{Backend, BackendOptions, LiveKit, LiveKitOptions, Viewer, ViewerOptions};

/// The backend binary next to this test's target dir, built on demand (this package's tests
/// do not make cargo build another package's binary).
fn server_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("STREAMIT_SERVER_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .context("target dir of the test binary")?
        .to_path_buf();
    let bin = profile_dir.join(format!("streamit-server{}", std::env::consts::EXE_SUFFIX));
    if !bin.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args(["build", "-p", "streamit-server", "--bin", "streamit-server"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .context("cargo build -p streamit-server")?;
        ensure!(status.success(), "building streamit-server failed");
    }
    Ok(bin)
}

/// LiveKit with its webhooks pointed at a backend on a port reserved up front.
fn start_stack() -> Result<(LiveKit, Backend)> {
    let port = streamit_testkit::free_tcp_port()?;
    let lk = LiveKit::start_with(LiveKitOptions {
        webhook_urls: vec![format!("http://127.0.0.1:{port}/api/livekit/webhook")],
        ..Default::default()
    })?;
    let backend = Backend::start(BackendOptions {
        livekit: Some(&lk),
        bin: Some(server_bin()?),
        env: vec![("STREAMIT_BIND".into(), format!("127.0.0.1:{port}"))],
        ..Default::default()
    })?;
    Ok((lk, backend))
}

async fn creator(backend: &Backend, username: &str, approve: bool) -> Result<(Client, String)> {
    let api = Client::new(backend.url());
    let auth = api
        .register(&RegisterRequest {
            username: username.into(),
            password: "correct horse battery".into(),
            display_name: Some(format!("{username} (QA)")),
            role: Some(Role::Creator),
        })
        .await?;
    if approve {
        backend.cli(&["user", "approve", username])?;
    }
    Ok((api.with_token(auth.token), auth.user.id))
}

fn studio() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_streamit-studio"));
    cmd.env_remove("STREAMIT_TOKEN")
        .env_remove("STREAMIT_API_URL")
        .env_remove("STREAMIT_PASSWORD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_ten_seconds_is_seen_by_a_viewer_and_summarised_by_the_backend() -> Result<()> {
    let (lk, backend) = start_stack()?;
    let (_api, user_id) = creator(&backend, "qa_publisher", true).await?;

    let child = studio()
        .args([
            "publish",
            "--api",
            backend.url(),
            "--username",
            "qa_publisher",
            "--password",
            "correct horse battery",
            "--title",
            "QA end to end",
            "--source",
            "synthetic",
            "--audio",
            "tone",
            "--codec",
            "h264",
            "--duration",
            "10s",
            "--json",
        ])
        .spawn()?;
    let started = Instant::now();

    // The backend shows the stream live while the CLI publishes.
    let public = Client::new(backend.url());
    let mut live = false;
    while started.elapsed() < Duration::from_secs(8) {
        if let Ok(s) = public.stream_by_username("qa_publisher").await
            && s.is_live
        {
            live = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(live, "the stream never showed as live on the backend");

    // A guest viewer through the backend's token endpoint, sending two chat messages.
    let grant = public
        .viewer_token(&ViewerTokenRequest {
            host_id: user_id.clone(),
            guest_name: Some("QA viewer".into()),
        })
        .await?;
    let mut opts = ViewerOptions::new(grant.ws_url.clone(), grant.token);
    opts.duration = Duration::from_secs(6);
    // stay for the frames, not only until the chat is sent
    opts.until_frames = Some(150);
    opts.read_pattern = true;
    opts.send_chat = vec!["hello from python".into(), "second message".into()];
    let viewer = Viewer::run(opts).await?;

    let out = tokio::time::timeout(Duration::from_secs(40), child.wait_with_output())
        .await
        .context("publish did not finish")??;
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("publish stderr:\n{stderr}");
    ensure!(
        out.status.success(),
        "publish failed ({}): {stderr}\nbackend log:\n{}\nlivekit log:\n{}",
        out.status,
        backend.log_tail(30),
        lk.log_tail(30)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "report is not JSON: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    println!("publish report: {report:#}");
    println!(
        "viewer: joined={} frames={} resolutions={:?} audio={} chat_sent={} first_frame_ms={:?}",
        viewer.joined,
        viewer.video.frames,
        viewer.video.resolutions,
        viewer.audio.frames,
        viewer.chat_sent,
        viewer.video.first_frame_ms
    );

    // The viewer decoded video and audio.
    ensure!(viewer.joined, "viewer did not join: {:?}", viewer.error);
    ensure!(
        viewer.video.frames >= 30,
        "viewer decoded {} video frames",
        viewer.video.frames
    );
    ensure!(
        viewer.video.resolutions.contains_key("640x360"),
        "resolutions {:?}",
        viewer.video.resolutions
    );
    ensure!(viewer.audio.frames > 0, "viewer got no audio");
    ensure!(
        viewer.chat_sent == 2,
        "viewer sent {} chats",
        viewer.chat_sent
    );

    // The frames are ours, in order, and fresh: the pattern's code gives frame numbers and
    // capture times on the publisher's media clock.
    let pattern = &viewer.pattern;
    ensure!(
        pattern.read * 10 >= viewer.video.frames * 9,
        "only {} of {} frames carried a readable code",
        pattern.read,
        viewer.video.frames
    );
    ensure!(pattern.out_of_order == 0, "{pattern:?}");
    let epoch = report["mediaClockEpochUnixUs"]
        .as_u64()
        .context("mediaClockEpochUnixUs")?;
    let mut lat = pattern.latencies_ms(epoch);
    lat.sort_by(f64::total_cmp);
    let p50 = lat
        .get(lat.len() / 2)
        .copied()
        .context("no latency samples")?;
    println!(
        "latency p50 {p50:.1} ms over {} samples; missing in span {}",
        lat.len(),
        pattern.missing_in_span
    );
    ensure!(p50 > 0.0 && p50 < 1000.0, "latency p50 {p50} ms");

    // The publisher's own figures.
    ensure!(
        report["outcome"] == "ended",
        "outcome {}",
        report["outcome"]
    );
    let frames_sent = report["framesSent"].as_u64().unwrap_or(0);
    ensure!(
        (200..=330).contains(&frames_sent),
        "frames sent {frames_sent} for 10 s at 30 fps"
    );
    ensure!(report["connectTimeMs"].as_u64().is_some_and(|ms| ms < 5000));
    ensure!(report["averageBitrateBps"].as_u64().unwrap_or(0) > 50_000);
    ensure!(report["chatMessages"] == 2, "chat {}", report["chat"]);
    let chat = report["chat"].as_array().context("chat array")?;
    ensure!(
        chat.iter()
            .any(|c| c["text"] == "hello from python" && c["from"] == "QA viewer"),
        "chat log {chat:?}"
    );
    ensure!(
        report["peakViewers"] == 1,
        "studio peak {}",
        report["peakViewers"]
    );

    // The backend's summary.
    let summary = &report["summary"];
    let duration = summary["durationSecs"].as_i64().unwrap_or(-1);
    ensure!(
        (9..=13).contains(&duration),
        "backend duration {duration} s"
    );
    ensure!(
        summary["chatMessages"] == 2,
        "backend chat {}",
        summary["chatMessages"]
    );
    ensure!(summary["endReason"] == "end-stream", "{summary}");
    ensure!(
        summary["peakViewers"] == 1,
        "backend peak viewers {} (webhooks)\nbackend log:\n{}",
        summary["peakViewers"],
        backend.log_tail(40)
    );

    // And the stream is offline afterwards.
    let after = public.stream_by_username("qa_publisher").await?;
    ensure!(!after.is_live, "stream still live after publish ended");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unapproved_creator_is_refused_with_the_auth_exit_code() -> Result<()> {
    let (_lk, backend) = start_stack()?;
    creator(&backend, "qa_unapproved", false).await?;
    let out = studio()
        .args([
            "publish",
            "--api",
            backend.url(),
            "--username",
            "qa_unapproved",
            "--password",
            "correct horse battery",
            "--title",
            "never",
            "--duration",
            "2s",
            "--json",
        ])
        .output()
        .await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() != Some(3) {
        bail!("expected exit code 3 (auth), got {}: {stderr}", out.status);
    }
    ensure!(stderr.contains("not approved"), "stderr: {stderr}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_and_an_unreachable_backend_have_distinct_exit_codes() -> Result<()> {
    let (_lk, backend) = start_stack()?;
    creator(&backend, "qa_wrongpw", true).await?;
    let out = studio()
        .args([
            "publish",
            "--api",
            backend.url(),
            "--username",
            "qa_wrongpw",
            "--password",
            "not the password",
            "--duration",
            "1s",
        ])
        .output()
        .await?;
    ensure!(
        out.status.code() == Some(3),
        "wrong password: {} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    let closed = format!("http://127.0.0.1:{}", streamit_testkit::free_tcp_port()?);
    let out = studio()
        .args([
            "publish",
            "--api",
            &closed,
            "--token",
            "whatever",
            "--duration",
            "1s",
        ])
        .output()
        .await?;
    ensure!(
        out.status.code() == Some(4),
        "unreachable backend: {} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vp8_simulcast_viewer_asking_low_gets_the_quarter_layer() -> Result<()> {
    let (lk, backend) = start_stack()?;
    let (_api, user_id) = creator(&backend, "qa_simulcast", true).await?;
    let child = studio()
        .args([
            "publish",
            "--api",
            backend.url(),
            "--username",
            "qa_simulcast",
            "--password",
            "correct horse battery",
            "--codec",
            "vp8",
            "--simulcast",
            // 15 fps: three VP8 encoders must keep up on a loaded 2-core CI machine
            "--source",
            "synthetic:640x360@15",
            "--audio",
            "none",
            "--duration",
            "8s",
            "--json",
        ])
        .spawn()?;
    let public = Client::new(backend.url());
    let started = Instant::now();
    while !public
        .stream_by_username("qa_simulcast")
        .await
        .is_ok_and(|s| s.is_live)
    {
        ensure!(started.elapsed() < Duration::from_secs(8), "never live");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let grant = public
        .viewer_token(&ViewerTokenRequest {
            host_id: user_id,
            guest_name: None,
        })
        .await?;
    let mut opts = ViewerOptions::new(grant.ws_url, grant.token);
    opts.duration = Duration::from_secs(5);
    opts.quality = Some("low".into());
    opts.until_frames = Some(45);
    let viewer = Viewer::run(opts).await?;
    let out = tokio::time::timeout(Duration::from_secs(40), child.wait_with_output())
        .await
        .context("publish did not finish")??;
    ensure!(
        out.status.success(),
        "publish failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        lk.log_tail(20)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    println!(
        "viewer resolutions {:?}, frames {}; publisher sent {} dropped {}",
        viewer.video.resolutions,
        viewer.video.frames,
        report["framesSent"],
        report["framesDropped"]
    );
    ensure!(viewer.joined, "{:?}", viewer.error);
    ensure!(viewer.video.frames >= 10, "frames {}", viewer.video.frames);
    ensure!(
        viewer.video.resolutions.contains_key("160x90"),
        "a LOW subscriber got {:?}",
        viewer.video.resolutions
    );
    ensure!(report["simulcast"] == true && report["codec"] == "vp8");
    ensure!(report["audioPacketsSent"] == 0);
    Ok(())
}
