//! Going live through LiveKit's embedded TURN server, as a creator on a network that
//! blocks UDP and LiveKit's TCP port does: `streamit-studio publish --ice-transport relay`
//! offers only relayed candidates, so every media packet goes through the TURN allocation
//! (TURN/UDP, or TURN/TLS with a CA and certificate made for this test). The official
//! Python SDK viewer watches directly and reads the pattern's frame code; `watch` through
//! TURN/TLS is the same path on the receiving side.
#![cfg(target_os = "linux")]

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use common::{Broadcast, CREATOR, publish_pattern, studio};
use streamit_testkit::{Stack, TurnOptions};

/// Publishes the synthetic pattern for `secs` through the relay only, has the viewer watch
/// `watch_secs`; returns the share of frames the viewer decoded and the publish report.
async fn publish_through_relay(
    turn: TurnOptions,
    secs: u64,
    watch_secs: u64,
) -> Result<(f64, serde_json::Value, Duration)> {
    let stack = Stack::start_with_turn(turn)?;
    let info = stack.livekit.turn().context("TURN enabled")?.clone();
    let ca_dir = tempfile::tempdir()?;
    let ca_path = ca_dir.path().join("turn-ca.pem");
    let mut extra = vec!["--ice-transport", "relay"];
    if let Some(ca) = &info.ca_pem {
        std::fs::write(&ca_path, ca)?;
        extra.push("--turn-ca");
        extra.push(ca_path.to_str().context("a UTF-8 temporary path")?);
    }
    let broadcast = Broadcast::go_live(stack, studio(), "h264", secs, &extra).await?;
    let live_after = broadcast.live_after;
    let report = broadcast.watch(watch_secs).await?;
    let publish = broadcast.finish().await?;

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

/// 20 s published through `turn` alone: the report names `transport`, the viewer
/// decodes >= 95 % of what it watched for 10 s, and the media went as ChannelData (a
/// channel is bound to the SFU once ICE has its permission; only the packets before
/// that go as 36-byte Send indications). Over TLS that takes the stream padding RFC 8656
/// asks for: without it LiveKit's TURN server lost the stream and the viewer got nothing.
async fn relay_reaches_the_viewer(turn: TurnOptions, transport: &str) -> Result<()> {
    let (share, publish, _) = publish_through_relay(turn, 20, 10).await?;
    ensure!(
        publish["transport"] == transport,
        "transport {}",
        publish["transport"]
    );
    ensure!(share >= 0.95, "decoded {:.1} % < 95 %", share * 100.0);
    let relayed = publish["relayPacketsSent"].as_u64().unwrap_or(0);
    let channel = publish["relayChannelDataSent"].as_u64().unwrap_or(0);
    println!("TURN {turn:?}: {channel} of {relayed} relayed packets as ChannelData");
    ensure!(
        relayed > 1000,
        "only {relayed} packets went through the relay"
    );
    ensure!(
        channel as f64 >= 0.99 * relayed as f64,
        "{channel} of {relayed} relayed packets as ChannelData, not >= 99 %"
    );
    Ok(())
}

/// `watch --ice-transport relay --turn-ca` (a QA viewer on a network that lets only TURN/TLS
/// out, with the company's own CA): the report says `relay/tls`, and it reads >= 95 % of
/// the pattern's frames in the span it watched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watching_through_turn_tls_reads_the_pattern() -> Result<()> {
    let stack = Stack::start_with_turn(TurnOptions {
        udp: false,
        tls: true,
    })?;
    let ca_pem = (stack.livekit.turn().context("TURN enabled")?.ca_pem.clone())
        .context("TURN/TLS has a CA")?;
    let dir = tempfile::tempdir()?;
    let ca = dir.path().join("turn-ca.pem");
    std::fs::write(&ca, ca_pem)?;
    let broadcast = Broadcast::go_live(stack, studio(), "h264", 20, &[]).await?;
    let out = studio()
        .args([
            "watch",
            CREATOR,
            "--api",
            broadcast.stack.backend.url(),
            "--guest",
        ])
        .args([
            "--duration",
            "10s",
            "--json",
            "--ice-transport",
            "relay",
            "--turn-ca",
        ])
        .arg(&ca)
        .output()
        .await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.success(),
        "watch failed ({}): {stderr}",
        out.status
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("watch report: {}", String::from_utf8_lossy(&out.stdout)))?;
    let v = &r["video"];
    let readable = v["readableCodes"].as_u64().unwrap_or(0);
    let (first, last) = v["firstCode"]
        .as_u64()
        .zip(v["lastCode"].as_u64())
        .with_context(|| format!("no frame code read: {r:#}"))?;
    let share = readable as f64 / (last - first + 1) as f64;
    println!(
        "watch through TURN/TLS: transport {}, read {readable} of {} frames ({:.1} %), \
         first frame {} ms",
        r["transport"],
        last - first + 1,
        share * 100.0,
        r["firstFrameMs"]
    );
    ensure!(
        r["transport"] == "relay/tls",
        "transport {}",
        r["transport"]
    );
    ensure!(
        share >= 0.95,
        "read {:.1} % < 95 %: {r:#}\nwatch's log: {stderr}",
        share * 100.0
    );
    broadcast.finish().await?;
    Ok(())
}

/// Without `turn.enabled` LiveKit's join carries no TURN server: forced relay cannot go
/// live and says so (exit 4, network), instead of waiting for ICE to time out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_relay_without_turn_on_the_server_fails_and_says_why() -> Result<()> {
    let stack = Stack::start()?;
    stack.creator("turn_creator", true).await?;
    let started = Instant::now();
    let mut cmd = studio();
    publish_pattern(&mut cmd, stack.backend.url(), "turn_creator", "h264", 5);
    let out = cmd.args(["--ice-transport", "relay"]).output().await?;
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
