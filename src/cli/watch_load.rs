//! `watch --viewers N`: N viewers of one stream in this process, for load tests. Each is its
//! own LiveKit participant; the first `--full-decode` of them (the sample) decode every frame
//! and read every pattern code, the rest decode only key frames (codes and latency from
//! those) and count every other frame for completeness without decoding it, so the tool's
//! own CPU does not bound N first. The report is one JSON document with every viewer's
//! figures and the aggregate.

use std::time::{Duration, Instant};

use serde::Serialize;
use streamit_session::watch::measure::LatencyStats;
use streamit_session::watch::{self, DecodeMode, WatchConfig, WatchReport};

use super::{CliError, CliResult};

/// One viewer's line in the load report.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ViewerLine {
    index: usize,
    /// `every-frame` (the sample) or `key-frames`.
    decode: String,
    outcome: String,
    error: Option<String>,
    connect_time_ms: Option<u64>,
    first_frame_ms: Option<u64>,
    frames_decoded: u64,
    /// Frames a decoder would have taken (every viewer counts these).
    frames_decodable: u64,
    /// Frames sent while watching (the publisher's timestamps), and the share of them that
    /// was decodable, %: every viewer.
    frames_sent: Option<u64>,
    delivered_pct: Option<f64>,
    /// Runs of undecodable frames (a loss until the next key frame): every viewer.
    stalls: u64,
    /// Frames in the span from the first to the last pattern code read (the sample).
    span_frames: Option<u64>,
    /// Of those, the share that arrived and decoded (the sample).
    decoded_pct: Option<f64>,
    /// Frame codes missing in that span (the sample; `None` for a key-frame viewer, whose
    /// codes skip by design).
    missing_frames: Option<u64>,
    /// Runs of missing frame codes (each a visible stall; the sample).
    freezes: Option<u64>,
    bitrate_kbps: Option<f64>,
    /// Frames decoded at each size ("1280x720": n): which simulcast layers arrived.
    resolutions: std::collections::BTreeMap<String, u64>,
    /// Frames this process dropped: its decode queue was full, or the receiver's buffer.
    queue_drops: u64,
    receiver_drops: u64,
    latency_p50_ms: Option<f64>,
    latency_p95_ms: Option<f64>,
    reconnects: u32,
}

/// The aggregate over every viewer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Aggregate {
    viewers: usize,
    connected: usize,
    /// Viewers that decoded every frame (the rest decoded key frames only).
    full_decode: usize,
    /// Over all viewers: decodable frames / frames sent while each watched.
    delivered_pct: Option<f64>,
    /// Over the viewers that decoded every frame: codes read / frames in their spans.
    decoded_pct: Option<f64>,
    /// Stalls (every viewer) and freezes (missing codes, the sample).
    stalls: u64,
    /// Mean of the viewers' received video bitrates.
    bitrate_kbps_mean: Option<f64>,
    first_frame_p50_ms: Option<f64>,
    first_frame_p95_ms: Option<f64>,
    /// Percentiles over the viewers' own p50 / p95 glass-to-glass latencies.
    latency_p50_of_p50_ms: Option<f64>,
    latency_p95_of_p95_ms: Option<f64>,
    freezes: u64,
    /// CPU seconds this process used per second of wall time (all viewers).
    cpu_per_second: Option<f64>,
    wall_secs: f64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct LoadReport {
    username: String,
    aggregate: Aggregate,
    per_viewer: Vec<ViewerLine>,
}

/// This process's user + system CPU time (all threads), from `getrusage` (Linux and
/// macOS; no clock-tick rate to assume, unlike `/proc/self/stat`). `None` elsewhere.
#[cfg(unix)]
fn cpu_time() -> Option<Duration> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage fills the struct it is given and reads nothing else; it is only
    // read after a success.
    let usage = unsafe {
        if libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) != 0 {
            return None;
        }
        usage.assume_init()
    };
    let of = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).ok()?)
            .checked_add(Duration::from_micros(u64::try_from(t.tv_usec).ok()?))
    };
    of(usage.ru_utime)?.checked_add(of(usage.ru_stime)?)
}

#[cfg(not(unix))]
fn cpu_time() -> Option<Duration> {
    None
}

fn line(index: usize, r: Result<WatchReport, String>) -> ViewerLine {
    match r {
        Ok(r) => {
            let every_frame = r.video.decode == DecodeMode::EveryFrame.name();
            let span = match (r.video.first_code, r.video.last_code) {
                (Some(a), Some(b)) if b >= a && every_frame => Some(u64::from(b - a) + 1),
                _ => None,
            };
            ViewerLine {
                index,
                decode: r.video.decode,
                frames_decodable: r.video.frames_decodable,
                frames_sent: r.video.frames_sent,
                delivered_pct: r.video.delivered_pct,
                stalls: r.video.stalls,
                bitrate_kbps: r.video.bitrate_kbps,
                resolutions: r.video.resolutions,
                queue_drops: r.video.queue_drops,
                receiver_drops: r.video.receiver_drops,
                outcome: r.outcome,
                error: r.error,
                connect_time_ms: r.connect_time_ms,
                first_frame_ms: r.first_frame_ms,
                frames_decoded: r.video.frames_decoded,
                span_frames: span,
                decoded_pct: span
                    .map(|s| 100.0 * (s.saturating_sub(r.video.missing_frames)) as f64 / s as f64),
                missing_frames: every_frame.then_some(r.video.missing_frames),
                freezes: every_frame.then_some(r.video.gap_runs),
                latency_p50_ms: r.latency.map(|l| l.p50_ms),
                latency_p95_ms: r.latency.map(|l| l.p95_ms),
                reconnects: r.reconnects,
            }
        }
        Err(e) => ViewerLine {
            index,
            decode: String::new(),
            frames_decodable: 0,
            frames_sent: None,
            delivered_pct: None,
            stalls: 0,
            bitrate_kbps: None,
            resolutions: Default::default(),
            queue_drops: 0,
            receiver_drops: 0,
            outcome: "failed".into(),
            error: Some(e),
            connect_time_ms: None,
            first_frame_ms: None,
            frames_decoded: 0,
            span_frames: None,
            decoded_pct: None,
            missing_frames: None,
            freezes: None,
            latency_p50_ms: None,
            latency_p95_ms: None,
            reconnects: 0,
        },
    }
}

/// Runs `viewers` watches of `cfg`'s stream at once (guest names `<name> 1`, `<name> 2`, …),
/// the first `full_decode` decoding every frame, and prints the JSON load report.
pub async fn run(cfg: WatchConfig, viewers: usize, full_decode: usize) -> CliResult {
    let started = Instant::now();
    let cpu_start = cpu_time();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = stop_tx.send(true);
        }
    });
    let mut tasks = Vec::with_capacity(viewers);
    for i in 1..=viewers {
        let mut c = cfg.clone();
        c.guest_name = format!("{} {i}", cfg.guest_name);
        if i > full_decode {
            c.decode = DecodeMode::KeyFrames;
        }
        let mut stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let stopped = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            watch::watch(c, None, stopped)
                .await
                .map_err(|e| e.to_string())
        }));
    }
    let mut lines = Vec::with_capacity(viewers);
    for (i, t) in tasks.into_iter().enumerate() {
        let r = t.await.map_err(|e| e.to_string()).and_then(|r| r);
        lines.push(line(i + 1, r));
    }
    ctrl_c.abort();
    let wall = started.elapsed();
    let cpu = cpu_time()
        .zip(cpu_start)
        .map(|(end, start)| end.saturating_sub(start).as_secs_f64() / wall.as_secs_f64());

    let connected: Vec<&ViewerLine> = lines
        .iter()
        .filter(|l| l.connect_time_ms.is_some())
        .collect();
    let (decodable, sent) = lines
        .iter()
        .filter_map(|l| Some((l.frames_decodable.min(l.frames_sent?), l.frames_sent?)))
        .fold((0, 0), |(d, s), (ld, ls)| (d + ld, s + ls));
    let span: u64 = lines.iter().filter_map(|l| l.span_frames).sum();
    let read: u64 = lines
        .iter()
        .filter_map(|l| Some(l.span_frames?.saturating_sub(l.missing_frames?)))
        .sum();
    let collect = |f: &dyn Fn(&ViewerLine) -> Option<f64>| -> Vec<f64> {
        lines.iter().filter_map(f).collect()
    };
    let bitrates = collect(&|l| l.bitrate_kbps);
    // Nearest-rank, as each viewer's own latency figures.
    let first = LatencyStats::of(&collect(&|l| l.first_frame_ms.map(|v| v as f64)));
    let p50s = LatencyStats::of(&collect(&|l| l.latency_p50_ms));
    let p95s = LatencyStats::of(&collect(&|l| l.latency_p95_ms));
    let report = LoadReport {
        username: cfg.username.clone(),
        aggregate: Aggregate {
            viewers,
            connected: connected.len(),
            full_decode: full_decode.min(viewers),
            delivered_pct: (sent > 0).then(|| 100.0 * decodable as f64 / sent as f64),
            decoded_pct: (span > 0).then(|| 100.0 * read as f64 / span as f64),
            stalls: lines.iter().map(|l| l.stalls).sum(),
            bitrate_kbps_mean: (!bitrates.is_empty())
                .then(|| bitrates.iter().sum::<f64>() / bitrates.len() as f64),
            first_frame_p50_ms: first.map(|s| s.p50_ms),
            first_frame_p95_ms: first.map(|s| s.p95_ms),
            latency_p50_of_p50_ms: p50s.map(|s| s.p50_ms),
            latency_p95_of_p95_ms: p95s.map(|s| s.p95_ms),
            freezes: lines.iter().filter_map(|l| l.freezes).sum(),
            cpu_per_second: cpu,
            wall_secs: wall.as_secs_f64(),
        },
        per_viewer: lines,
    };
    let text = serde_json::to_string_pretty(&report)
        .map_err(|e| CliError::new(1, format!("encoding the report: {e}")))?;
    println!("{text}");
    if report.aggregate.connected == 0 {
        return Err(CliError::new(
            super::EXIT_NETWORK,
            "no viewer could connect".to_string(),
        ));
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// The load tool's CPU column: this thread's own work shows in the process total.
    #[test]
    fn cpu_time_counts_this_process_work() {
        let before = cpu_time().expect("getrusage");
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(200) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let after = cpu_time().expect("getrusage");
        // 200 ms of spinning is at least some CPU even on a machine that shares its cores.
        assert!(after > before, "{before:?} -> {after:?}");
    }
}
