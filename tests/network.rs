//! Going live on a bad uplink: `streamit-studio publish` runs in a network namespace whose
//! only way out is `streamit_netem::ImpairedLink` (delay, loss, a rate cap on every packet,
//! UDP and TCP), against the real backend and LiveKit on the host. The official Python SDK
//! viewer watches from the host side with no impairment and reads the pattern's frame code.
#![cfg(target_os = "linux")]

mod common;

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::{Broadcast, studio_behind};
use streamit_testkit::netem::{Direction, ImpairedLink};
use streamit_testkit::{Stack, Viewer, ViewerReport};

/// One broadcast at a time: each runs a stack, a publisher, the relay and a viewer, and what
/// they measure (recovery, glass-to-glass, frame rate) is what two side by side on 2 cores
/// starve (CI on a busy machine once lost the 300 kbit/s test with another beside it).
static ONE_BROADCAST: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The stack reachable from the link's far side, `studio` publishing from there.
async fn go_live_behind(link: &ImpairedLink, codec: &str, secs: u64) -> Result<Broadcast> {
    let stack = Stack::start_reachable_at(link.host_addr())?;
    Broadcast::go_live(stack, studio_behind(link), codec, secs, &[]).await
}

/// What the viewer saw. The share decoded is libwebrtc's own `framesDecoded` over the
/// frames the publisher captured while the viewer watched (the pattern's frame numbers):
/// frames the receiver decoded but its renderer then dropped as late do not count against
/// the publisher. The longest gap between frames the app got is printed alongside.
fn summary(what: &str, report: &ViewerReport) -> Result<f64> {
    let p = &report.pattern;
    let (decoded, span, share) = common::receiver_decoded(report);
    ensure!(span > 0, "the viewer read no pattern frames");
    // Runs of frame numbers the app never got: single frames or whole stalls.
    let mut runs = std::collections::BTreeMap::<u32, u32>::new();
    for w in p.samples.windows(2) {
        let skipped = w[1].0.saturating_sub(w[0].0 + 1);
        if skipped > 0 {
            *runs.entry(skipped).or_default() += 1;
        }
    }
    println!(
        "{what}: receiver decoded {decoded} of {span} frames ({:.1} %); the app got {} \
         (longest gap {:?} ms, gaps > 250 ms {:?}, missing runs {runs:?}); resolutions {:?}",
        share * 100.0,
        p.distinct,
        p.max_gap_ms,
        p.freezes_ms,
        report.video.resolutions,
    );
    if !report.restarts.is_empty() {
        // LiveKit dropped this (host-side, unimpaired) viewer and it came back: its absence
        // is left out of the span, and its counters from before the restart are kept.
        println!(
            "{what}: the viewer itself reconnected: {:?}",
            report.restarts
        );
    }
    for inbound in report.video.inbound.iter().chain(&report.audio.inbound) {
        println!("{what}: receiver inbound-rtp {inbound}");
    }
    Ok(share)
}

/// 30 s watched through `spec` both ways: the link really lost packets, NACKs reached the
/// publisher and its RTX filled the gaps, so the receiver decoded >= 97 % of the frames;
/// Opus went with RED and the viewer concealed at most `max_concealed` of the audio.
async fn loss_is_recovered(spec: &str, what: &str, max_concealed: f64) -> Result<()> {
    let _alone = ONE_BROADCAST.lock().await;
    let link = ImpairedLink::new().context("an impaired link (needs root and iproute2)")?;
    let broadcast = go_live_behind(&link, "h264", 40).await?;
    link.set_both(spec.parse()?);
    let report = broadcast.watch(30).await?;
    let up = link.stats(Direction::Up);
    println!("{what}: uplink {up:?}");
    let share = summary(what, &report)?;
    let publish = broadcast.finish().await?;
    println!("publish report: {publish:#}");
    ensure!(
        up.dropped > 20,
        "the link dropped only {} packets",
        up.dropped
    );
    ensure!(
        publish["nacksReceived"].as_u64() > Some(0),
        "no NACK reached the publisher"
    );
    // Short of CPU, the publisher sends fewer frames than it captures (its frame-rate gate):
    // those never were on the wire, so the bar scales with the share it sent. CI once had
    // 1,147 of 1,200 sent, 0 video packets lost at the receiver, 94.6 % of the span decoded.
    let sent_share = match (
        publish["cpuAdaptations"].as_u64(),
        publish["framesSent"].as_u64(),
        publish["framesCaptured"].as_u64(),
    ) {
        (Some(adapted), Some(sent), Some(captured)) if adapted > 0 && captured > 0 => {
            (sent as f64 / captured as f64).min(1.0)
        }
        _ => 1.0,
    };
    // A packet RTX did not repair costs a libwebrtc viewer up to 3 s of picture (it asks for
    // a key frame only when nothing decodes for that long). CI once had a viewer lose 2
    // packets for good and stall 3.4 s, while str0m's default policy dropped every queued
    // resend once resends passed 15 % of a second's bytes (see core/resend.rs). The SFU's
    // count at the end includes packets whose repair is still on the way, so it is context
    // for the bar, not a bar of its own.
    ensure!(
        share >= 0.97 * sent_share,
        "decoded {:.1} % < 97 % of the {:.1} % of frames the publisher sent; the SFU counted \
         {} video packets unrepaired at the end",
        share * 100.0,
        sent_share * 100.0,
        publish["videoPacketsLost"]
    );
    // Opus carried in-band FEC (libopus codes it for the active frames, here the pattern's
    // beeps, once the publisher told it to expect loss).
    let fec = report.audio.counter("fecPacketsReceived");
    ensure!(fec > 0, "no Opus packet carried in-band FEC");
    // RED: each Opus packet also carried the one before, so libwebrtc's viewer had a lost
    // one's copy in time and concealed (made up) almost no audio (without RED it concealed
    // 4.3 % of the samples at 5 % random loss).
    ensure!(
        publish["audioRedundancy"] == true,
        "Opus went without RED: {}",
        publish["audioRedundancy"]
    );
    let concealed = audio_concealed(&report).context("the viewer's stats had no audio samples")?;
    println!(
        "{what}: the viewer concealed {:.2} % of the audio",
        concealed * 100.0
    );
    ensure!(
        concealed <= max_concealed,
        "the viewer concealed {:.2} % of the audio samples (> {:.1} %)",
        concealed * 100.0,
        max_concealed * 100.0
    );
    Ok(())
}

/// The share of the audio samples libwebrtc's viewer made up for lost packets (its
/// inbound-rtp `concealedSamples` over `totalSamplesReceived`); `None` when its stats
/// sampler caught no audio counters (it misses them now and then; the audio still plays).
fn audio_concealed(report: &ViewerReport) -> Option<f64> {
    match report.audio.counter("totalSamplesReceived") {
        0 => None,
        total => Some(report.audio.counter("concealedSamples") as f64 / total as f64),
    }
}

/// 150 ms RTT with 5 % random loss each way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_loss_at_150ms_rtt_is_recovered() -> Result<()> {
    loss_is_recovered("delay=75ms,loss=5%,seed=11", "150 ms RTT, 5 % loss", 0.01).await
}

/// 2 % loss in bursts of 4 packets on average (Gilbert–Elliott), 150 ms RTT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursty_loss_at_150ms_rtt_is_recovered() -> Result<()> {
    loss_is_recovered(
        "delay=75ms,loss=2%,burst=4,seed=12",
        "150 ms RTT, 2 % bursty loss",
        // RED's one copy cannot rebuild a burst of lost packets: 1.65 % measured.
        0.05,
    )
    .await
}

/// `streamit-studio netem` for QA: the command runs behind the link (its round trip to the
/// host takes the delay both ways), learns the host's address from the environment, and
/// its exit code comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_netem_command_runs_a_command_behind_a_slow_link() -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // An echo on every address of the host: the link's host side is one of them.
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                if let Ok(n) = s.read(&mut buf).await {
                    let _ = s.write_all(&buf[..n]).await;
                }
            });
        }
    });
    let script = format!(
        "t0=$(date +%s%N); exec 3<>/dev/tcp/$STREAMIT_NETEM_HOST/{port}; echo ping >&3; \
         read -r reply <&3; t1=$(date +%s%N); echo \"reply=$reply ms=$(( (t1 - t0) / 1000000 ))\"; exit 3"
    );
    let out = common::studio()
        .args(["netem", "--both", "delay=60ms", "--", "bash", "-c", &script])
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("stdout: {stdout}\nstderr: {stderr}");
    ensure!(
        out.status.code() == Some(3),
        "exit code {:?}",
        out.status.code()
    );
    ensure!(stderr.contains("the host is 10.222."), "{stderr}");
    let ms: u64 = stdout
        .split("ms=")
        .nth(1)
        .and_then(|v| v.trim().parse().ok())
        .context("no timing from the command")?;
    ensure!(stdout.contains("reply=ping"), "{stdout}");
    // The TCP handshake and the echo: two round trips of 120 ms each.
    ensure!(ms >= 240, "two round trips took {ms} ms, want >= 240");
    Ok(())
}

/// A 300 kbit/s uplink for 30 s, then no cap. The encoder follows the estimate with room
/// for audio and headers, and skips frames while the pacer holds more than 200 ms, so no
/// queue builds at the sender: its per-second peaks stay under 300 ms, and glass-to-glass
/// stays within the link's own queue while capped (p95 126-183 ms on a quiet machine;
/// 2.4 s when video took the whole estimate). The one layer is sent smaller while capped
/// (180p at 30 fps, where 720p skipped a third of its frames), and the picture keeps
/// moving (10 frames or more in every capped second after the onset one) and returns to
/// full size within 10 s of the lift. The cap is 30 s long because the lift must be noticed
/// whatever the cap's length: a probing schedule that backs off (attempts 3, 9, 21 and 45 s
/// after the estimate settled) passes a 20 s cap by luck and misses a 30 s one by ~15 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_300_kbit_cap_keeps_the_picture_moving_and_quality_returns_after() -> Result<()> {
    use streamit_testkit::netem::Impairment;
    let _alone = ONE_BROADCAST.lock().await;
    let link = ImpairedLink::new().context("an impaired link (needs root and iproute2)")?;
    const CAP_SECS: u64 = 30;
    let broadcast = go_live_behind(&link, "h264", CAP_SECS + 35).await?;
    let viewer = Viewer::spawn(broadcast.viewer(CAP_SECS + 25).await?)?;
    // 5 s clean, 30 s capped, 20 s free.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let capped_at = std::time::Instant::now();
    let capped_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    link.set(
        Direction::Up,
        Impairment {
            rate_bps: Some(300_000),
            ..Impairment::none()
        },
    );
    tokio::time::sleep(Duration::from_secs(CAP_SECS)).await;
    link.set(Direction::Up, Impairment::none());
    let lifted_after = capped_at.elapsed();
    let lifted_unix_ms = capped_unix_ms + lifted_after.as_millis() as u64;
    let report = viewer.report().await?;
    ensure!(report.joined, "viewer did not join: {:?}", report.error);
    let publish = broadcast.finish().await?;
    let epoch = publish["mediaClockEpochUnixUs"].as_u64().unwrap_or(0);
    let latencies = report.pattern.latencies_ms(epoch);
    println!("cap lifted after {lifted_after:?}");
    println!(
        "frames per second at the viewer: {:?}",
        report.video.frames_per_second
    );
    println!("resolutions: {:?}", report.video.resolutions);
    // Glass-to-glass by 5 s window of arrival: where the queue builds and drains.
    let t0 = report.pattern.samples.first().map(|s| s.2).unwrap_or(0);
    let mut windows = std::collections::BTreeMap::<u64, Vec<f64>>::new();
    for (sample, latency) in report.pattern.samples.iter().zip(&latencies) {
        windows
            .entry((sample.2 - t0) / 5_000_000 * 5)
            .or_default()
            .push(*latency);
    }
    for (start, mut v) in windows {
        v.sort_by(|a, b| a.total_cmp(b));
        println!(
            "  {start:>2}-{:>2} s: glass-to-glass p50 {:.0} ms, max {:.0} ms",
            start + 5,
            v[v.len() / 2],
            v[v.len() - 1]
        );
    }
    let mut sorted = latencies.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    if !sorted.is_empty() {
        println!(
            "glass-to-glass p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms",
            sorted[sorted.len() / 2],
            sorted[sorted.len() * 95 / 100],
            sorted[sorted.len() - 1]
        );
    }
    println!("publish report: {publish:#}");
    summary("300 kbit/s cap", &report)?;
    // The sender's own queue (str0m's pacer) over the capped seconds, from the publisher's
    // per-second peaks: frames are skipped before they would wait behind it.
    let started_ms = publish["broadcastStartedUnixMs"]
        .as_u64()
        .context("no broadcastStartedUnixMs in the publish report")?;
    let first = (capped_unix_ms.saturating_sub(started_ms) / 1000) as usize;
    let queued: Vec<u64> = publish["sendQueueDelayMsPerSecond"]
        .as_array()
        .context("no sendQueueDelayMsPerSecond in the publish report")?
        .iter()
        .skip(first)
        .take(CAP_SECS as usize)
        .map(|v| v.as_u64().unwrap_or(0))
        .collect();
    println!("send queue delay (ms) per capped second: {queued:?}");
    ensure!(
        queued.len() >= CAP_SECS as usize - 2,
        "the report covers only {} capped seconds",
        queued.len()
    );
    // The first three seconds hold the onset: the estimate falls tenfold (2.4 Mbit/s to
    // 230 kbit/s here) 1-2 s into the cap, the 720p frame already in the pacer then leaves
    // at the new rate, and nothing can take it back out (225-341 ms here; the skipping
    // keeps more from joining it); each second's figure comes from the stats of the second
    // before. From then on the queue stays under the 300 ms (0-19 ms here).
    const ONSET: usize = 3;
    ensure!(
        queued.iter().take(ONSET).all(|ms| *ms < 600),
        "the sender queued 600 ms or more at the cap's onset: {queued:?}"
    );
    ensure!(
        queued.iter().skip(ONSET).all(|ms| *ms < 300),
        "the sender queued 300 ms or more while capped: {queued:?}"
    );
    let p95 = sorted
        .get(sorted.len() * 95 / 100)
        .copied()
        .context("no glass-to-glass samples")?;
    // The link's own queue holds up to 250 ms at the cap and the sender may keep 300 ms
    // (the bar); video that took the whole estimate reached 2.4 s here.
    ensure!(
        p95 < 600.0,
        "glass-to-glass p95 {p95:.0} ms: a queue built up at the sender"
    );
    // The cap lifted ~35 s into the viewer's 55 s; from 46 s on the picture moves again at
    // the 15 fps it kept while capped or better. (Full rate comes back as fast as the
    // estimate climbs: with the core's recovery probing, 30 fps 2-6 s after the lift in 3
    // runs of 3; without it the estimate once stayed at 141 kbit/s and the picture at 7-8
    // fps to the end on CI, and with the probing nudge alone at 111-160 kbit/s here.)
    let late: Vec<u64> = (CAP_SECS + 16..CAP_SECS + 24)
        .map(|s| {
            report
                .video
                .frames_per_second
                .get(&s.to_string())
                .copied()
                .unwrap_or(0)
        })
        .collect();
    ensure!(
        late.iter().all(|f| *f >= 12),
        "frames per second 11-19 s after the cap lifted: {late:?}"
    );
    // The one layer was sized for the capped bitrate (720p skips frames at 200 kbit/s;
    // 180p sends them all), and it is back at full size by the end.
    let res = &report.video.resolutions;
    let smaller: u64 = res
        .iter()
        .filter(|(r, _)| r.as_str() != "1280x720")
        .map(|(_, n)| *n)
        .sum();
    ensure!(
        smaller >= 150,
        "the picture was not made smaller under the cap: {res:?}"
    );
    // Full size again after the lift, and for good. How soon follows the estimate: the
    // size steps up about a second after the estimate allows it, and the estimate climbs
    // once the core's recovery probing tries: 3 s after the estimate settled under the
    // cap, then every 5 s while the picture is scaled down for the estimate (the session
    // tells the engine so), so a lift waits at most 5 s for an attempt.
    let sizes = &report.video.size_changes;
    println!("size changes (viewer ms, size): {sizes:?}");
    ensure!(
        sizes.last().is_some_and(|(_, size)| size == "1280x720"),
        "the picture did not return to 1280x720 after the lift: {sizes:?}"
    );
    // The bars on the viewer's timeline (its seconds count from its start): at
    // least 10 frames in every whole second of the cap, and full size again within 10 s
    // of the lift. Measured here (5 runs, 3 beside two busy loops): 15-32 frames in each
    // second after the onset one (15-28 in a second with a probe), onset stalls up to
    // 566 ms; full size 4.5-8.8 s after the lift (6.0-7.9 s in three runs after the H.264
    // encoder learnt to rise above its build bitrate).
    let start = report.started_unix_ms;
    ensure!(start > 0, "the viewer's report has no start time");
    let second_of = |unix_ms: u64| unix_ms.saturating_sub(start) / 1000;
    let capped: Vec<(u64, u64)> = (second_of(capped_unix_ms) + 1..second_of(lifted_unix_ms))
        .map(|s| {
            let n = report
                .video
                .frames_per_second
                .get(&s.to_string())
                .copied()
                .unwrap_or(0);
            (s, n)
        })
        .collect();
    println!("frames in each whole capped second (viewer s, frames): {capped:?}");
    ensure!(
        capped.len() >= CAP_SECS as usize - 2,
        "the viewer's report covers only {} whole capped seconds",
        capped.len()
    );
    // The onset is judged apart: the estimate takes about a second to fall to the cap,
    // and until then the link carries about four 720p frames a second (one takes ~230 ms
    // at 300 kbit/s) while the rest wait or are lost. Its bar is the longest stall in the
    // cap's first 3 s, not the frames in the first whole viewer second: how much of the
    // stall that second holds depends on where in it the cap fell (1-3 frames in one run,
    // 6-11 in others, for the same stall).
    const ONSET_STALL_MS: f64 = 1500.0;
    let capped_us = capped_unix_ms * 1000;
    let onset_stalls = report
        .pattern
        .gaps_within(capped_us, capped_us + 3_000_000, 200.0);
    println!("stalls over 200 ms in the cap's first 3 s (s into the cap, ms): {onset_stalls:?}");
    ensure!(
        onset_stalls.iter().all(|(_, ms)| *ms <= ONSET_STALL_MS),
        "the picture stood over {ONSET_STALL_MS} ms at the cap's onset: {onset_stalls:?}"
    );
    let after_onset = &capped[1..];
    ensure!(
        after_onset.iter().all(|(_, n)| *n >= 10),
        "fewer than 10 frames in a second of the cap: {capped:?}"
    );
    let lifted_ms = lifted_unix_ms.saturating_sub(start) as f64;
    let back_after_s = sizes
        .last()
        .map(|(ms, _)| (ms - lifted_ms) / 1000.0)
        .unwrap_or(f64::INFINITY);
    println!("full size again {back_after_s:.1} s after the lift");
    ensure!(
        back_after_s <= 10.0,
        "full size came back {back_after_s:.1} s after the lift: {sizes:?}"
    );
    Ok(())
}

/// A 100 kbit/s uplink, a tenth of what 720p wants: the picture goes down to 180p at a
/// lower frame rate and keeps coming. The bar is a picture at least every second.
/// That holds once the target has come down, from 4 s into the cap; the onset itself may
/// stand at most 3 s. LiveKit's TWCC feedback falls seconds behind at this loss, and
/// str0m's estimate with it (4-8 s here); the core's overload guard reads the receiver
/// reports instead and cuts 1.3-2.3 s into the cap (by when the reports' phase falls and
/// the feedback has gone silent), and holds until str0m's estimate has come down and the
/// reports are clean. The encoder's rebuild at 180p starts with a key frame, which got the
/// picture back 2.5-2.7 s into the cap in five runs of this test alone, and it kept coming
/// now that the old frames' resends no longer crowd the link: the onset's longest gap was
/// 1.6-2.2 s (before the guard, 4.0-5.7 s; before the resends were dropped, the picture
/// stood again for 0.65-0.75 s in six runs of six, until the key frame a second after the
/// cut). Then a picture came every 300-500 ms at 180p. libwebrtc's own publisher (the
/// benchmark) got 0-9 fps through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_kbit_cap_still_gives_a_picture_every_second() -> Result<()> {
    use streamit_testkit::netem::Impairment;
    /// From the cap's start: how long the onset may take, and the end of the judged stretch.
    const SETTLED: Duration = Duration::from_secs(4);
    const LONGEST_ONSET_MS: f64 = 3000.0;
    const JUDGED_UNTIL: Duration = Duration::from_secs(24);
    let _alone = ONE_BROADCAST.lock().await;
    let link = ImpairedLink::new().context("an impaired link (needs root and iproute2)")?;
    let broadcast = go_live_behind(&link, "h264", 40).await?;
    let viewer = Viewer::spawn(broadcast.viewer(30).await?)?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let capped_unix_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_micros() as u64;
    link.set(
        Direction::Up,
        Impairment {
            rate_bps: Some(100_000),
            ..Impairment::none()
        },
    );
    let report = viewer.report().await?;
    ensure!(report.joined, "viewer did not join: {:?}", report.error);
    let publish = broadcast.finish().await?;
    println!("publish report: {publish:#}");
    summary("100 kbit/s cap", &report)?;
    let p = &report.pattern;
    ensure!(
        p.samples.len() as u64 == p.read,
        "the viewer sampled {} of {} frames: gaps would read long",
        p.samples.len(),
        p.read
    );
    let first = p
        .samples
        .iter()
        .find(|s| s.2 >= capped_unix_us)
        .map(|s| (s.2 - capped_unix_us) as f64 / 1e6);
    let after = p.samples.iter().filter(|s| s.2 >= capped_unix_us).count();
    println!(
        "first frame {first:?} s into the cap (from {capped_unix_us} µs unix time), {after} \
         frames in all after it"
    );
    let at = |d: Duration| capped_unix_us + d.as_micros() as u64;
    // Judged apart: the onset, while the estimate comes down to the cap.
    let onset = p.gaps_within(at(Duration::ZERO), at(SETTLED), 250.0);
    println!(
        "gaps over 250 ms in the first {} s of the cap (s into it, ms): {onset:?}",
        SETTLED.as_secs()
    );
    ensure!(
        onset.iter().all(|(_, ms)| *ms <= LONGEST_ONSET_MS),
        "the picture stood for more than {LONGEST_ONSET_MS} ms at the cap's onset: {onset:?}"
    );
    let gaps = p.gaps_within(at(SETTLED), at(JUDGED_UNTIL), 500.0);
    let (from, until) = (SETTLED.as_secs(), JUDGED_UNTIL.as_secs());
    println!(
        "gaps over 500 ms from {from} to {until} s into the cap (s after {from}, ms): {gaps:?}"
    );
    ensure!(
        gaps.iter().all(|(_, ms)| *ms <= 1000.0),
        "the picture stood for more than a second {from}-{until} s into the cap: {gaps:?}"
    );
    ensure!(
        report.video.resolutions.keys().any(|r| r != "1280x720"),
        "the picture was not made smaller: {:?}",
        report.video.resolutions
    );
    // The creator is told, still capped as the stream ends.
    ensure!(
        publish["networkLimited"]
            .as_str()
            .is_some_and(|s| s.starts_with("Network limited: ")),
        "the health bar did not say the network limits the stream: {}",
        publish["networkLimited"]
    );
    Ok(())
}

/// The network profiles of the benchmark: name, impairment both ways, uplink only.
const BENCH_PROFILES: &[(&str, &str, &str)] = &[
    ("clean", "", ""),
    ("150ms-5%", "delay=75ms,loss=5%,seed=21", ""),
    ("300kbit", "", "rate=300kbit"),
    ("100kbit", "", "rate=100kbit"),
];

/// One publisher watched through one profile: what the viewer saw, printed as a row.
fn bench_row(profile: &str, who: &str, report: &ViewerReport, epoch_us: u64, secs: u64) -> String {
    // Over every frame captured while the viewer watched, not over the span of frame
    // numbers it read: a publisher that got 3 frames through in 30 s read as 100 % that way.
    let (decoded, _, _) = common::receiver_decoded(report);
    let watched = secs * 30;
    let share = (decoded as f64 / watched as f64).min(1.0);
    let mut g2g = report.pattern.latencies_ms(epoch_us);
    g2g.sort_by(|a, b| a.total_cmp(b));
    let pct = |v: &[f64], p: usize| v.get(v.len() * p / 100).copied().unwrap_or(0.0);
    let mut freezes = report.pattern.freezes_ms.clone();
    freezes.sort_by(|a, b| a.total_cmp(b));
    let bytes = report.video.bytes_received();
    format!(
        "{profile:<9} {who:<9} decoded {:>5.1} % ({decoded:>4} of {watched})  freezes>250ms {:>2} (p95 {:>5.0} ms, longest {:>5.0} ms, total {:>4.1} s)  \
         g2g p50 {:>5.0} ms p95 {:>5.0} ms  video {:>5.0} kbit/s  audio concealed {}  {}",
        share * 100.0,
        freezes.len(),
        pct(&freezes, 95),
        report.pattern.max_gap_ms.unwrap_or(0.0),
        freezes.iter().fold(0.0, |a, b| a + b) / 1000.0,
        pct(&g2g, 50),
        pct(&g2g, 95),
        bytes as f64 * 8.0 / secs as f64 / 1000.0,
        audio_concealed(report).map_or("n/a".into(), |c| format!("{:.1} %", c * 100.0)),
        report
            .video
            .resolutions
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// Applies a benchmark profile to the link.
fn apply_profile(link: &ImpairedLink, both: &str, up: &str) -> Result<()> {
    if !both.is_empty() {
        link.set_both(both.parse()?);
    }
    if !up.is_empty() {
        link.set(Direction::Up, up.parse()?);
    }
    Ok(())
}

/// Runs `watching` while reading the uplink each second, then prints what went up it
/// (kbit/s out of the link) and what the link dropped (lost or a full queue), per second:
/// where a publisher overran a cap, and when.
async fn watch_uplink<T>(
    link: &ImpairedLink,
    who: &str,
    watching: impl std::future::Future<Output = T>,
) -> T {
    tokio::pin!(watching);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last = link.stats(Direction::Up);
    let (mut kbps, mut dropped) = (Vec::new(), Vec::new());
    let out = loop {
        tokio::select! {
            out = &mut watching => break out,
            _ = tick.tick() => {
                let now = link.stats(Direction::Up);
                kbps.push((now.bytes_out - last.bytes_out) * 8 / 1000);
                dropped.push(now.dropped - last.dropped);
                last = now;
            }
        }
    };
    println!("{who} uplink kbit/s out per second: {kbps:?}");
    println!("{who} uplink packets dropped per second: {dropped:?}");
    out
}

/// Prints when the viewer's first frame came and when in the run the picture stood for
/// over half a second: the onset of a cap, or later.
fn print_gaps(who: &str, report: &ViewerReport) {
    let gaps: Vec<String> = report
        .pattern
        .gaps_over(500.0)
        .iter()
        .map(|(at, ms)| format!("{ms:.0} ms at {at:.1} s"))
        .collect();
    println!(
        "{who} first frame {:?} ms after joining; gaps over 500 ms: [{}]",
        report.video.first_frame_ms,
        gaps.join(", ")
    );
}

/// Ours: `streamit-studio publish` of the 720p30 pattern, H.264, one layer.
async fn bench_ours(both: &str, up: &str, secs: u64) -> Result<(ViewerReport, u64)> {
    let link = ImpairedLink::new().context("an impaired link (needs root and iproute2)")?;
    let broadcast = go_live_behind(&link, "h264", secs + 8).await?;
    apply_profile(&link, both, up)?;
    let report = watch_uplink(&link, "ours:", broadcast.watch(secs)).await?;
    print_gaps("ours:", &report);
    let publish = broadcast.finish().await?;
    let epoch = publish["mediaClockEpochUnixUs"]
        .as_u64()
        .context("no media clock epoch in the publish report")?;
    let keys = [
        "framesCaptured",
        "framesSent",
        "framesDropped",
        "keyframeRequests",
        "nacksReceived",
        "videoPacketsLost",
        "networkLimited",
        "targetBitrateKbpsPerSecond",
        "sendQueueDelayMsPerSecond",
        "framesSkippedForNetwork",
    ];
    let brief: serde_json::Map<String, serde_json::Value> = keys
        .iter()
        .map(|k| (k.to_string(), publish[*k].clone()))
        .collect();
    println!("our publisher: {}", serde_json::Value::Object(brief));
    Ok((report, epoch))
}

/// libwebrtc: the official Python SDK publishing the same pattern (frames written by the
/// Rust generator into its stdin), H.264, one layer, the SDK's defaults otherwise.
async fn bench_libwebrtc(both: &str, up: &str, secs: u64) -> Result<(ViewerReport, u64)> {
    use streamit_media::MediaTime;
    use streamit_media::pattern::generate_pattern;
    use streamit_testkit::{Grants, ViewerOptions, viewer_python};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let link = ImpairedLink::new().context("an impaired link (needs root and iproute2)")?;
    let stack = Stack::start_reachable_at(link.host_addr())?;
    let room = "bench-libwebrtc";
    let token = stack
        .livekit
        .token("py-publisher", room, Grants::Publisher)?;
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/viewer/pattern_publisher.py");
    let (w, h) = (1280u32, 720u32);
    let mut cmd: tokio::process::Command = link.command(viewer_python()?).into();
    cmd.arg(script)
        .args([stack.livekit.public_ws_url(), token, (secs + 8).to_string()])
        .args([w.to_string(), h.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().context("starting the Python publisher")?;
    let mut stdin = child.stdin.take().context("publisher stdin")?;
    let feeder = tokio::spawn(async move {
        for n in 0u32.. {
            let pts = MediaTime::from_micros(u64::from(n) * 1_000_000 / 30);
            let Ok(frame) = generate_pattern(w, h, n, pts) else {
                break;
            };
            if stdin.write_all(frame.data()).await.is_err() {
                break;
            }
        }
    });
    let mut lines = BufReader::new(child.stdout.take().context("publisher stdout")?).lines();
    let published = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await;
    ensure!(
        matches!(&published, Ok(Ok(Some(l))) if l == "published"),
        "the Python publisher did not publish: {published:?}"
    );
    apply_profile(&link, both, up)?;
    let mut opts = ViewerOptions::new(
        stack.livekit.ws_url(),
        stack.livekit.token("viewer", room, Grants::Viewer)?,
    );
    opts.duration = Duration::from_secs(secs);
    opts.read_pattern = true;
    let report = watch_uplink(&link, "libwebrtc:", Viewer::run(opts)).await?;
    print_gaps("libwebrtc:", &report);
    ensure!(report.joined, "viewer did not join: {:?}", report.error);
    let last = tokio::time::timeout(Duration::from_secs(30), async {
        let mut last = None;
        while let Ok(Some(l)) = lines.next_line().await {
            last = Some(l);
        }
        last
    })
    .await
    .context("the Python publisher did not end")?
    .context("the Python publisher printed no report")?;
    feeder.abort();
    let _ = child.wait().await;
    let end: serde_json::Value =
        serde_json::from_str(&last).with_context(|| format!("publisher said {last}"))?;
    println!("libwebrtc publisher: {end}");
    let epoch = end["epochUnixUs"]
        .as_u64()
        .context("no epoch from the publisher")?;
    Ok((report, epoch))
}

/// The benchmark of issue 15: for each profile (clean, 150 ms RTT with 5 % loss both ways,
/// a 300 and a 100 kbit/s uplink), our publisher and libwebrtc's (the official Python SDK)
/// each publish the 720p30 pattern as one H.264 layer through the same relay to the same
/// unimpaired Python viewer, one after the other. Prints one row per run.
/// Run: `cargo test --test network -- --ignored --nocapture bench_network_profiles`
/// (BENCH_SECONDS, default 30; BENCH_PROFILES, e.g. `clean,300kbit`; BENCH_PUBLISHERS,
/// `ours`, `libwebrtc` or both, the default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: 8 runs of BENCH_SECONDS (30 s)"]
async fn bench_network_profiles() -> Result<()> {
    let _alone = ONE_BROADCAST.lock().await;
    let secs: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let only = std::env::var("BENCH_PROFILES").ok();
    let publishers = std::env::var("BENCH_PUBLISHERS").unwrap_or_else(|_| "ours,libwebrtc".into());
    let publishers: Vec<&str> = publishers.split(',').collect();
    let mut rows = Vec::new();
    for (name, both, up) in BENCH_PROFILES {
        if only
            .as_deref()
            .is_some_and(|o| !o.split(',').any(|p| p == *name))
        {
            continue;
        }
        if publishers.contains(&"ours") {
            let (report, epoch) = bench_ours(both, up, secs).await?;
            rows.push(bench_row(name, "ours", &report, epoch, secs));
            println!("{}", rows.last().map(String::as_str).unwrap_or(""));
        }
        if publishers.contains(&"libwebrtc") {
            let (report, epoch) = bench_libwebrtc(both, up, secs).await?;
            rows.push(bench_row(name, "libwebrtc", &report, epoch, secs));
            println!("{}", rows.last().map(String::as_str).unwrap_or(""));
        }
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\nBENCH network ({secs} s each, load average {})",
        load.trim()
    );
    for r in &rows {
        println!("BENCH {r}");
    }
    Ok(())
}
