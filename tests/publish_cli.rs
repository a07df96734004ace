//! End to end: `streamit-studio publish` against the real backend binary and a real LiveKit
//! server (webhooks pointed at the backend), watched by the official Python SDK viewer.

mod common;
/// What a `publish` run costs (the ignored benchmarks).
#[path = "publish_cli/cost.rs"]
mod cost;
/// `publish --record` and the Record switch.
#[path = "publish_cli/record.rs"]
mod record;
/// `publish --screen`: a shared window beside the camera.
#[path = "publish_cli/screen.rs"]
mod screen;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use common::{
    closed_backend_url, ensure_exit_code, guest_viewer, publish_succeeded, studio, wait_until_live,
};
use streamit_api::ViewerTokenRequest;
use streamit_api::client::Client;
use streamit_session::{Command, SessionConfig, SessionHandle};
use streamit_testkit::{Stack, TEST_PASSWORD, Viewer, ViewerOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_ten_seconds_is_seen_by_a_viewer_and_summarised_by_the_backend() -> Result<()> {
    let stack = Stack::start()?;
    let backend = &stack.backend;
    let lk = &stack.livekit;
    let user_id = stack.creator("qa_publisher", true).await?.user.id;
    // Plain text on stdout (what a QA person reads), the same report as JSON in a file.
    let report_dir = tempfile::tempdir()?;
    let report_path = report_dir.path().join("report.json");

    let child = studio()
        .args([
            "publish",
            "--api",
            backend.url(),
            "--username",
            "qa_publisher",
            "--password",
            TEST_PASSWORD,
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
            "--report-json",
        ])
        .arg(&report_path)
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
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    println!("publish stdout:\n{text}");
    let json = std::fs::read(&report_path).context("the --report-json file")?;
    let report: serde_json::Value = serde_json::from_slice(&json)
        .with_context(|| format!("report is not JSON: {}", String::from_utf8_lossy(&json)))?;
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
        viewer.video.resolutions.contains_key("1280x720"),
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
    // The studio's media figures, as the backend stored them.
    let backend_frames_sent = summary["framesSent"].as_u64().unwrap_or(0);
    ensure!(
        backend_frames_sent > 0 && backend_frames_sent == frames_sent,
        "backend framesSent {} vs the studio's {frames_sent}",
        summary["framesSent"]
    );
    let studio_bitrate = report["averageBitrateBps"].as_u64().unwrap_or(0);
    ensure!(
        summary["averageBitrateBps"].as_u64() == Some(studio_bitrate) && studio_bitrate > 0,
        "backend averageBitrateBps {} vs the studio's {studio_bitrate}",
        summary["averageBitrateBps"]
    );
    ensure!(
        summary["framesDropped"] == report["framesDropped"],
        "backend framesDropped {} vs the studio's {}",
        summary["framesDropped"],
        report["framesDropped"]
    );
    ensure!(
        summary["reconnects"] == report["reconnects"],
        "backend reconnects {} vs the studio's {}",
        summary["reconnects"],
        report["reconnects"]
    );
    ensure!(
        summary["peakViewers"] == 1,
        "backend peak viewers {} (webhooks)\nbackend log:\n{}",
        summary["peakViewers"],
        backend.log_tail(40)
    );

    // The plain-text report shows the backend's media figures, the same as the JSON.
    let summary_kbps = format!(
        "{:.0} kbit/s",
        summary["averageBitrateBps"].as_f64().unwrap_or(0.0) / 1000.0
    );
    let media_line = format!(
        "backend media:  {} frames sent, {} dropped, {summary_kbps} average, {} reconnects",
        summary["framesSent"], summary["framesDropped"], summary["reconnects"]
    );
    ensure!(
        text.lines().any(|l| l == media_line),
        "plain-text report lacks `{media_line}`:\n{text}"
    );
    ensure!(
        text.contains(&format!(
            "backend:        session {}",
            summary["id"].as_str().unwrap_or("?")
        )),
        "plain-text report lacks the backend session line:\n{text}"
    );

    // And the stream is offline afterwards.
    let after = public.stream_by_username("qa_publisher").await?;
    ensure!(!after.is_live, "stream still live after publish ended");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unapproved_creator_is_refused_with_the_auth_exit_code() -> Result<()> {
    let stack = Stack::start()?;
    let backend = &stack.backend;
    stack.creator("qa_unapproved", false).await?;
    let out = studio()
        .args([
            "publish",
            "--api",
            backend.url(),
            "--username",
            "qa_unapproved",
            "--password",
            TEST_PASSWORD,
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

/// A real HTTP server on loopback that is not StreamIt (a web server on the wrong port):
/// answers every request `404 Not Found` in plain text. Returns its root URL.
fn foreign_http_server() -> Result<String> {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", listener.local_addr()?);
    std::thread::spawn(move || {
        for mut sock in listener.incoming().flatten() {
            let mut buf = [0u8; 8192];
            let _ = sock.read(&mut buf);
            let body = "404 page not found\n";
            let _ = write!(
                sock,
                "HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    Ok(url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_server_s_404_is_one_plain_error_line_naming_the_status_and_the_url() -> Result<()>
{
    let foreign = foreign_http_server()?;
    let out = studio()
        .args([
            "setup", "--api", &foreign, "--token", "whatever", "--title", "t",
        ])
        // The defaults a user has: no log filter of their own, stderr a pipe.
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .output()
        .await?;
    ensure_exit_code(&out, 6, "a foreign 404")?;
    let stderr = String::from_utf8(out.stderr)?;
    ensure!(!stderr.contains('\x1b'), "ANSI codes on a pipe: {stderr:?}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    ensure!(
        lines.len() == 1 && lines[0].starts_with("error: "),
        "not one error line: {stderr:?}"
    );
    ensure!(
        lines[0].contains("HTTP 404") && lines[0].contains(&format!("{foreign}/api/")),
        "the status and the URL: {stderr:?}"
    );
    ensure!(!lines[0].contains(":  "), "an empty reason: {stderr:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_and_an_unreachable_backend_have_distinct_exit_codes() -> Result<()> {
    let stack = Stack::start()?;
    let backend = &stack.backend;
    stack.creator("qa_wrongpw", true).await?;
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
    ensure_exit_code(&out, 3, "wrong password")?;

    let closed = closed_backend_url()?;
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
    ensure_exit_code(&out, 4, "unreachable backend")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vp8_simulcast_viewer_asking_low_gets_the_low_layer() -> Result<()> {
    let stack = Stack::start()?;
    let backend = &stack.backend;
    let lk = &stack.livekit;
    let user_id = stack.creator("qa_simulcast", true).await?.user.id;
    let child = studio()
        .args([
            "publish",
            "--api",
            backend.url(),
            "--username",
            "qa_simulcast",
            "--password",
            TEST_PASSWORD,
            "--codec",
            "vp8",
            "--simulcast",
            // 360p: LiveKit's ladder is 320x180 + 640x360
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
    wait_until_live(&public, "qa_simulcast", Duration::from_secs(8)).await?;
    let mut opts = guest_viewer(&public, user_id, None).await?;
    opts.duration = Duration::from_secs(5);
    opts.quality = Some("low".into());
    opts.until_frames = Some(45);
    let viewer = Viewer::run(opts).await?;
    let out = publish_succeeded(
        child,
        Duration::from_secs(40),
        &format!("\n{}", lk.log_tail(20)),
    )
    .await?;
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
        viewer.video.resolutions.contains_key("320x180"),
        "a LOW subscriber got {:?}",
        viewer.video.resolutions
    );
    ensure!(report["simulcast"] == true && report["codec"] == "vp8");
    ensure!(report["audioPacketsSent"] == 0);
    Ok(())
}

/// `--ice-transport tcp`: the studio's media goes over ICE-TCP (LiveKit's
/// `rtc.tcp_port`) and a viewer still decodes it; the report names the transport.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_over_ice_tcp_is_decoded_and_reported_as_tcp() -> Result<()> {
    let stack = Stack::start()?;
    let backend = &stack.backend;
    let lk = &stack.livekit;
    let user_id = stack.creator("qa_tcp", true).await?.user.id;
    let child = studio()
        .args([
            "publish",
            "--api",
            backend.url(),
            "--username",
            "qa_tcp",
            "--password",
            TEST_PASSWORD,
            "--ice-transport",
            "tcp",
            "--audio",
            "none",
            "--duration",
            "8s",
            "--json",
        ])
        .spawn()?;
    let public = Client::new(backend.url());
    wait_until_live(&public, "qa_tcp", Duration::from_secs(8)).await?;
    let mut opts = guest_viewer(&public, user_id, None).await?;
    opts.duration = Duration::from_secs(5);
    opts.until_frames = Some(90);
    let viewer = Viewer::run(opts).await?;
    let out = publish_succeeded(
        child,
        Duration::from_secs(40),
        &format!("\n{}", lk.log_tail(20)),
    )
    .await?;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    println!(
        "viewer frames {} (first at {:?} ms); publisher transport {}, sent {}",
        viewer.video.frames, viewer.video.first_frame_ms, report["transport"], report["framesSent"]
    );
    ensure!(viewer.joined, "{:?}", viewer.error);
    ensure!(viewer.video.frames >= 90, "frames {}", viewer.video.frames);
    ensure!(report["transport"] == "tcp", "{report}");
    Ok(())
}

/// Issue 16: the backend is stopped while the studio is live, so end-stream and the stats
/// report fail. `publish` retries them, then spools the figures and says so; after the
/// backend is back, the next login (the session library the GUI uses) delivers them, and
/// the backend's session has the studio's real frames and bitrate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_summary_the_backend_missed_is_spooled_and_delivered_after_the_next_login() -> Result<()>
{
    // a short publisher grace: the restarted backend finds the creator gone from the room
    let mut stack = Stack::start_with(vec![(
        "STREAMIT_PUBLISHER_GRACE".to_string(),
        "3s".to_string(),
    )])?;
    let account = stack.creator("qa_spool", true).await?;
    let spool = tempfile::tempdir()?;
    let public = Client::new(stack.backend.url());
    let child = studio()
        .env("STREAMIT_SPOOL_DIR", spool.path())
        .args([
            "publish",
            "--api",
            stack.backend.url(),
            "--username",
            "qa_spool",
        ])
        .args([
            "--password",
            TEST_PASSWORD,
            "--source",
            "synthetic:640x360@30",
        ])
        .args(["--audio", "tone", "--duration", "8s", "--json"])
        .spawn()?;
    wait_until_live(&public, "qa_spool", Duration::from_secs(20)).await?;
    stack.backend.stop();
    let stopped = Instant::now();

    // the stream ends while the backend is gone: retried for 15 s, then spooled
    let out = publish_succeeded(child, Duration::from_secs(60), "").await?;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    println!(
        "publish ended {:.1} s after the backend stopped: summaryDelivered {}, spooled {}, frames sent {}, average {} bit/s",
        stopped.elapsed().as_secs_f64(),
        report["summaryDelivered"],
        report["spooled"],
        report["framesSent"],
        report["averageBitrateBps"]
    );
    ensure!(report["outcome"] == "ended", "{report}");
    ensure!(report["summaryDelivered"] == false, "{report}");
    let path = report["spooled"]
        .as_str()
        .context("the report names no spool file")?;
    ensure!(
        std::path::Path::new(path).starts_with(spool.path()),
        "spooled outside the spool dir: {path}"
    );
    let spooled: serde_json::Value = serde_json::from_slice(&std::fs::read(path)?)?;
    let session_id = spooled["sessionId"]
        .as_str()
        .context("no sessionId")?
        .to_string();
    let frames = spooled["report"]["framesSent"].as_i64().unwrap_or(0);
    let bitrate = spooled["report"]["averageBitrateBps"].as_i64().unwrap_or(0);
    ensure!(
        frames > 100 && frames as u64 == report["framesSent"].as_u64().unwrap_or(0),
        "spooled {frames} frames, the report says {}",
        report["framesSent"]
    );
    ensure!(bitrate > 50_000, "spooled average bitrate {bitrate}");

    // back up: nothing of the studio's figures is there yet
    stack.backend.restart()?;
    let before = account.client.session(&session_id).await?;
    ensure!(before.frames_sent.is_none(), "{before:?}");

    // the next login delivers the spooled figures
    let mut config = SessionConfig::new(stack.backend.url());
    config.spool_dir = Some(spool.path().to_path_buf());
    let session = SessionHandle::spawn(config);
    session
        .request(Command::Login {
            username: "qa_spool".into(),
            password: TEST_PASSWORD.into(),
        })
        .await
        .map_err(|e| anyhow::anyhow!("login: {}", e.message))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let delivered = loop {
        let s = account.client.session(&session_id).await?;
        if s.frames_sent.is_some() {
            break s;
        }
        ensure!(Instant::now() < deadline, "not delivered: {s:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!("delivered after the next login: {delivered:?}");
    ensure!(delivered.frames_sent == Some(frames), "{delivered:?}");
    ensure!(
        delivered.average_bitrate_bps == Some(bitrate),
        "{delivered:?}"
    );
    // the file goes once the backend has the figures
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::path::Path::new(path).exists() {
        ensure!(Instant::now() < deadline, "{path} still there");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = session.request(Command::Shutdown).await;

    // and the platform's state is true again: the end-stream that never arrived is made
    // up for by LiveKit's presence (the restarted backend reconciles with the room)
    let deadline = Instant::now() + Duration::from_secs(30);
    let ended = loop {
        let s = account.client.session(&session_id).await?;
        if s.ended_at.is_some() {
            break s;
        }
        ensure!(Instant::now() < deadline, "never ended: {s:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    ensure!(
        ended.end_reason.as_deref() == Some("publisher_lost"),
        "{ended:?}"
    );
    ensure!(
        !public.stream_by_username("qa_spool").await?.is_live,
        "still listed live"
    );
    Ok(())
}

/// LiveKit gone for good while live: `publish` gives up after its reconnect attempts and
/// says so once, in the words the studio's ending uses, with the detail after them; the
/// exit code is the network's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_livekit_ends_publish_with_one_error_line_in_words() -> Result<()> {
    let mut stack = Stack::start()?;
    let host_id = stack.creator("qa_lost", true).await?.user.id;
    let public = Client::new(stack.backend.url());
    let child = studio()
        .args([
            "publish",
            "--api",
            stack.backend.url(),
            "--username",
            "qa_lost",
        ])
        .args(["--password", TEST_PASSWORD, "--duration", "120s"])
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    wait_until_live(&public, "qa_lost", Duration::from_secs(20)).await?;
    // on air for a viewer, not only listed live by the backend
    let mut opts = guest_viewer(&public, host_id, None).await?;
    opts.until_frames = Some(10);
    opts.duration = Duration::from_secs(20);
    let seen = Viewer::run(opts).await?;
    ensure!(
        seen.video.frames >= 10,
        "the viewer saw {} frames",
        seen.video.frames
    );
    stack.livekit.kill();
    let killed = Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .context("publish did not give up")??;
    println!(
        "publish gave up {:.1} s after LiveKit was killed",
        killed.elapsed().as_secs_f64()
    );
    ensure_exit_code(&out, 4, "LiveKit gone")?;
    let stderr = String::from_utf8(out.stderr)?;
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    ensure!(errors.len() == 1, "not one error line: {stderr}");
    println!("{}", errors[0]);
    ensure!(
        errors[0].starts_with("error: stream interrupted after 0:")
            && errors[0].contains("— server unreachable (")
            && errors[0].contains("LiveKit"),
        "not in words with the detail after: {}",
        errors[0]
    );
    Ok(())
}

/// A 48 kHz mono 16-bit WAV of seeded fan-like noise (white noise through a one-pole
/// low-pass) at about -25 dBFS.
fn noise_wav(path: &std::path::Path, secs: u32) -> Result<()> {
    let mut seed = 11u32;
    let mut lp = 0.0f32;
    write_wav(path, secs, |_| {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let white = ((seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 2.0;
        lp = 0.97 * lp + 0.03 * white;
        lp * 0.8
    })
}

/// A quiet voice-like WAV: a 200 Hz buzz with harmonics in 200 ms syllables with 100 ms
/// gaps, at about −40 dBFS RMS while sounding.
fn quiet_voice_wav(path: &std::path::Path, secs: u32) -> Result<()> {
    write_wav(path, secs, |i| {
        let t = i as f32 / 48_000.0;
        if t % 0.3 >= 0.2 {
            return 0.0;
        }
        let buzz: f32 = (1..=5)
            .map(|k| (2.0 * std::f32::consts::PI * 200.0 * k as f32 * t).sin() / k as f32)
            .sum();
        buzz * 0.01 / 0.88
    })
}

/// 48 kHz mono 16-bit PCM of `secs`, sample `i` from `sample(i)` in [-1, 1].
fn write_wav(path: &std::path::Path, secs: u32, mut sample: impl FnMut(u32) -> f32) -> Result<()> {
    let n = 48_000 * secs;
    let mut b = Vec::with_capacity(44 + 2 * n as usize);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + 2 * n).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // PCM
    b.extend_from_slice(&1u16.to_le_bytes()); // mono
    b.extend_from_slice(&48_000u32.to_le_bytes());
    b.extend_from_slice(&96_000u32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&(2 * n).to_le_bytes());
    for i in 0..n {
        let v = (sample(i) * 32_767.0).clamp(-32_768.0, 32_767.0) as i16;
        b.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, b)?;
    Ok(())
}

/// How loud the viewer's playout was: libwebrtc's totalAudioEnergy over
/// totalSamplesDuration, in dB (its audio level is a peak measure, so a steady noise at
/// -25 dBFS RMS reads about -15 dB).
fn heard_db(report: &streamit_testkit::ViewerReport) -> Option<f64> {
    let (energy, secs) = report.audio.inbound.iter().fold((0.0, 0.0), |(e, d), i| {
        (
            e + i["inbound"]["totalAudioEnergy"].as_f64().unwrap_or(0.0),
            d + i["inbound"]["totalSamplesDuration"].as_f64().unwrap_or(0.0),
        )
    });
    (secs > 1.0).then(|| 10.0 * (energy / secs).max(1e-12).log10())
}

/// `wav` published with `flag off`, then `flag on` (14 s each, a fresh stack each time):
/// how loud the Python viewer heard it each time, in dB. The publish report's `field`
/// must say whether the treatment ran.
async fn heard_off_then_on(wav: &str, flag: &str, field: &str) -> Result<Vec<f64>> {
    let mut heard = Vec::new();
    for mode in ["off", "on"] {
        let broadcast = common::Broadcast::go_live(
            Stack::start()?,
            studio(),
            "h264",
            14,
            &["--audio", wav, flag, mode],
        )
        .await?;
        let report = broadcast.watch(8).await?;
        let publish = broadcast.finish().await?;
        let db = heard_db(&report).context("the viewer heard no audio")?;
        println!("{flag} {mode}: the viewer heard {db:.1} dB");
        ensure!(
            publish[field] == (mode == "on"),
            "report {field}: {}",
            publish[field]
        );
        heard.push(db);
    }
    Ok(heard)
}

/// Noise suppression end to end: the same noisy WAV published with `--noise-suppression
/// off`, then `on`; the Python viewer's libwebrtc hears the noise, then ≥ 20 dB less of it
/// (the unit tests take fan noise and hum 53 dB down; Opus and the receiver's comfort
/// noise and concealment set the floor here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noise_suppression_takes_the_noise_out_of_what_viewers_hear() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let wav = dir.path().join("fan.wav");
    noise_wav(&wav, 5)?;
    let wav = wav.to_string_lossy().to_string();
    let heard = heard_off_then_on(&wav, "--noise-suppression", "noiseSuppression").await?;
    ensure!(
        heard[0] > -30.0,
        "without suppression the noise is heard: {heard:?}"
    );
    ensure!(
        heard[1] < heard[0] - 20.0,
        "suppression took only {:.1} dB off ({heard:?})",
        heard[0] - heard[1]
    );
    Ok(())
}

/// Automatic gain end to end: a quiet voice (−40 dBFS while sounding) published with
/// `--auto-gain off`, then `on`, each recorded as it goes out (`--record`: the Opus packets
/// sent, no second encode); ffmpeg decodes each file and the voice is louder with it on
/// (WebRTC's AGC adds up to its 9 dB compression gain; the unit test measures +9 dB).
/// Measured on what goes out rather than at a viewer: a receiver's concealment under a
/// loaded machine moved a viewer's reading of the same quiet input by 7 dB between runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_gain_raises_a_quiet_voice_in_what_goes_out() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let wav = dir.path().join("quiet.wav");
    quiet_voice_wav(&wav, 5)?;
    let wav = wav.to_string_lossy().to_string();
    let mut levels = Vec::new();
    for mode in ["off", "on"] {
        let file = dir.path().join(format!("gain-{mode}.mp4"));
        let file_arg = file.to_string_lossy().to_string();
        let broadcast = common::Broadcast::go_live(
            Stack::start()?,
            studio(),
            "h264",
            12,
            &["--audio", &wav, "--auto-gain", mode, "--record", &file_arg],
        )
        .await?;
        let publish = broadcast.finish().await?;
        ensure!(
            publish["autoGain"] == (mode == "on"),
            "report autoGain: {}",
            publish["autoGain"]
        );
        let db = recorded_level_db(&file)?;
        println!("--auto-gain {mode}: {db:.1} dBFS went out");
        levels.push(db);
    }
    ensure!(
        levels[1] >= levels[0] + 6.0,
        "automatic gain raised the voice by only {:.1} dB ({levels:?})",
        levels[1] - levels[0]
    );
    Ok(())
}

/// The RMS level (dBFS) of the audio ffmpeg decodes from `file`, after its first 4 s
/// (automatic gain takes a few seconds to settle).
fn recorded_level_db(file: &std::path::Path) -> Result<f64> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(file)
        .args([
            "-map", "0:a:0", "-f", "f32le", "-ac", "1", "-ar", "48000", "-",
        ])
        .output()
        .context("ffmpeg (scripts/install.sh installs it)")?;
    ensure!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples: Vec<f64> = (out.stdout.chunks_exact(4))
        .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
        .skip(4 * 48_000)
        .collect();
    ensure!(
        samples.len() >= 48_000,
        "{} samples after the first 4 s",
        samples.len()
    );
    let mean_square = samples.iter().map(|v| v * v).sum::<f64>() / samples.len() as f64;
    Ok(10.0 * mean_square.max(1e-12).log10())
}
