//! Going live through LiveKit's embedded TURN server, as a creator on a network that
//! blocks UDP and LiveKit's TCP port does: `streamit-studio publish --ice-transport relay`
//! offers only relayed candidates, so every media packet goes through the TURN allocation
//! (TURN/UDP, or TURN/TLS with a CA and certificate made for this test). The official
//! Python SDK viewer watches directly and reads the pattern's frame code.
#![cfg(target_os = "linux")]

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use common::{guest_viewer, studio, wait_until_live};
use streamit_api::client::Client;
use streamit_testkit::{Stack, TEST_PASSWORD, TurnOptions, Viewer};

/// Publishes the synthetic pattern for `secs` through the relay only, has the viewer watch
/// `watch_secs`; returns the share of frames the viewer decoded and the publish report.
async fn publish_through_relay(
    turn: TurnOptions,
    secs: u64,
    watch_secs: u64,
) -> Result<(f64, serde_json::Value, Duration)> {
    let stack = Stack::start_with_turn(turn)?;
    let info = stack.livekit.turn().context("TURN enabled")?.clone();
    let host_id = stack.creator("turn_creator", true).await?.user.id;
    let dir = tempfile::tempdir()?;
    let mut cmd = studio();
    cmd.args([
        "publish",
        "--api",
        stack.backend.url(),
        "--username",
        "turn_creator",
        "--password",
        TEST_PASSWORD,
        "--title",
        "Through the relay",
        "--source",
        "synthetic",
        "--codec",
        "h264",
        "--ice-transport",
        "relay",
        "--duration",
        &format!("{secs}s"),
        "--report-json",
    ])
    .arg(dir.path().join("report.json"));
    if let Some(ca) = &info.ca_pem {
        let path = dir.path().join("turn-ca.pem");
        std::fs::write(&path, ca)?;
        cmd.arg("--turn-ca").arg(path);
    }
    let started = Instant::now();
    let publish = cmd.spawn()?;
    let public = Client::new(stack.backend.url());
    wait_until_live(&public, "turn_creator", Duration::from_secs(30)).await?;
    let live_after = started.elapsed();

    let mut opts = guest_viewer(&public, host_id, None).await?;
    opts.duration = Duration::from_secs(watch_secs);
    opts.read_pattern = true;
    let report = Viewer::run(opts).await?;
    ensure!(report.joined, "viewer did not join: {:?}", report.error);

    let out = tokio::time::timeout(Duration::from_secs(60), publish.wait_with_output())
        .await
        .context("publish did not finish")??;
    ensure!(
        out.status.success(),
        "publish failed ({}): {}\nlivekit log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        stack.livekit.log_tail(30)
    );
    let publish: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json"))?)?;

    let p = &report.pattern;
    let (decoded, span, share) = common::receiver_decoded(&report);
    ensure!(span > 0, "the viewer read no pattern frames");
    println!(
        "TURN {turn:?}: live after {live_after:?}; viewer decoded {decoded} of {span} frames \
         ({:.1} %), longest gap {:?} ms; publish transport {}, connect {} ms",
        share * 100.0,
        p.max_gap_ms,
        publish["transport"],
        publish["connectTimeMs"],
    );
    for inbound in report.video.inbound.iter() {
        println!("TURN {turn:?}: receiver inbound-rtp {inbound}");
    }
    println!("publish report: {publish:#}");
    Ok((share, publish, live_after))
}

/// TURN/UDP: the relayed candidate is the only one, the report says `relay/udp`, and the
/// viewer decodes >= 95 % of the frames.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_through_turn_udp_reaches_the_viewer() -> Result<()> {
    relay_reaches_the_viewer(
        TurnOptions {
            udp: true,
            tls: false,
        },
        "relay/udp",
    )
    .await
}

/// TURN/TLS (the server offers only `turns:`, with a certificate from this test's CA):
/// the report says `relay/tls`, and the viewer decodes >= 95 % of the frames.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_through_turn_tls_reaches_the_viewer() -> Result<()> {
    relay_reaches_the_viewer(
        TurnOptions {
            udp: false,
            tls: true,
        },
        "relay/tls",
    )
    .await
}

/// 20 s published through `turn` alone: the report names `transport`, and the viewer
/// decodes >= 95 % of what it watched for 10 s.
async fn relay_reaches_the_viewer(turn: TurnOptions, transport: &str) -> Result<()> {
    let (share, publish, _) = publish_through_relay(turn, 20, 10).await?;
    ensure!(
        publish["transport"] == transport,
        "transport {}",
        publish["transport"]
    );
    ensure!(share >= 0.95, "decoded {:.1} % < 95 %", share * 100.0);
    Ok(())
}

/// Without `turn.enabled` LiveKit's join carries no TURN server: forced relay cannot go
/// live and says so (exit 4, network), instead of waiting for ICE to time out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_relay_without_turn_on_the_server_fails_and_says_why() -> Result<()> {
    let stack = Stack::start()?;
    stack.creator("turn_creator", true).await?;
    let started = Instant::now();
    let out = studio()
        .args([
            "publish",
            "--api",
            stack.backend.url(),
            "--username",
            "turn_creator",
            "--password",
            TEST_PASSWORD,
            "--source",
            "synthetic",
            "--ice-transport",
            "relay",
            "--duration",
            "5s",
        ])
        .output()
        .await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!(
        "forced relay without TURN: {:?} after {:?}: {stderr}",
        out.status.code(),
        started.elapsed()
    );
    ensure!(
        out.status.code() == Some(4),
        "exit {:?}: {stderr}",
        out.status.code()
    );
    ensure!(stderr.contains("no TURN server"), "{stderr}");
    Ok(())
}
