//! The independent viewer: tests/viewer/viewer.py on the official LiveKit Python SDK.

use crate::paths::{repo_root, viewer_python};
use crate::process::tie_to_test_tokio;
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// How the viewer behaves. `url` and `token` are required; the rest has sensible defaults.
#[derive(Debug, Clone)]
pub struct ViewerOptions {
    pub url: String,
    pub token: String,
    /// The longest the viewer stays.
    pub duration: Duration,
    /// Simulcast layer to ask for: "low", "medium" or "high".
    pub quality: Option<String>,
    /// Chat messages to send (topic `lk.chat`) once another participant is present.
    pub send_chat: Vec<String>,
    /// How long after another participant is present the chat goes out.
    pub chat_delay: Duration,
    /// Try to publish a video track and report whether the server allowed it.
    pub try_publish: bool,
    /// Read StreamIt's synthetic-pattern code (frame number, capture time) from every frame.
    pub read_pattern: bool,
    /// Leave early once this many video frames were decoded (and other `until_*` hold, and
    /// all `send_chat` went out). Without any `until_*` the viewer stays `duration`.
    pub until_frames: Option<u32>,
    pub until_audio_frames: Option<u32>,
    pub until_chat: Option<u32>,
    /// Data packets (any topic, e.g. `streamit.moderation`) received.
    pub until_data: Option<u32>,
    /// The Y4M the publisher sends, its frame i stamped with the pattern code of number i:
    /// the viewer measures PSNR-Y of every third decoded frame at that size against it.
    pub psnr_ref: Option<std::path::PathBuf>,
    /// With `read_pattern`: also read the code in this region alone (x, y, width, height as
    /// fractions of the frame), e.g. where "camera over screen" puts the camera.
    pub region: Option<[f64; 4]>,
}

impl ViewerOptions {
    pub fn new(url: impl Into<String>, token: impl Into<String>) -> Self {
        ViewerOptions {
            url: url.into(),
            token: token.into(),
            duration: Duration::from_secs(10),
            quality: None,
            send_chat: Vec::new(),
            chat_delay: Duration::from_millis(500),
            try_publish: false,
            read_pattern: false,
            until_frames: None,
            until_audio_frames: None,
            until_chat: None,
            until_data: None,
            psnr_ref: None,
            region: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct VideoReport {
    pub frames: u64,
    pub resolutions: BTreeMap<String, u64>,
    /// (ms since the viewer started, "WxH") each time the decoded size changed, the first
    /// frame's size first.
    #[serde(default)]
    pub size_changes: Vec<(f64, String)>,
    pub first_frame_ms: Option<f64>,
    pub last_frame_ms: Option<f64>,
    pub tracks: Vec<serde_json::Value>,
    /// libwebrtc's inbound-rtp stats per video track at the end (framesDecoded,
    /// framesDropped, nackCount, packetsLost, freezeCount, ...), as the SDK names them.
    #[serde(default)]
    pub inbound: Vec<serde_json::Value>,
    /// Frames decoded in each whole second since the viewer started ("0", "1", …).
    pub frames_per_second: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AudioReport {
    pub frames: u64,
    pub samples: u64,
    pub peak_rms: f64,
    pub first_frame_ms: Option<f64>,
    /// Loudest 10 ms frame (RMS, 0..1) in each whole second since the viewer started
    /// ("0", "1", …). The SDK plays silence when no packets arrive, so this shows
    /// when sound actually flowed.
    #[serde(default)]
    pub rms_per_second: BTreeMap<String, f64>,
    /// libwebrtc's inbound-rtp stats per audio track at the end (packetsLost,
    /// concealedSamples, totalSamplesReceived, fecPacketsReceived, ...).
    #[serde(default)]
    pub inbound: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChatMessage {
    pub from: String,
    pub text: String,
    pub t_ms: f64,
}

/// A data packet (not chat) the viewer received, e.g. a moderation event.
#[derive(Debug, Clone, Deserialize)]
pub struct DataMessage {
    /// Sender identity (None: the server).
    pub from: Option<String>,
    pub topic: Option<String>,
    /// The payload as UTF-8, when it is.
    pub text: Option<String>,
    pub t_ms: f64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PublishAttempt {
    pub attempted: bool,
    pub ok: Option<bool>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MuteEvent {
    pub sid: String,
    pub kind: String,
    pub muted: bool,
    pub t_ms: f64,
    pub video_frames_at: u64,
}

impl VideoReport {
    /// Video bytes received over all inbound-rtp streams (retired ones included).
    pub fn bytes_received(&self) -> u64 {
        counter_total(&self.inbound, "bytesReceived")
    }
}

impl AudioReport {
    /// A libwebrtc counter (`concealedSamples`, `fecPacketsReceived`, ...) summed over
    /// all audio inbound-rtp streams (retired ones included).
    pub fn counter(&self, key: &str) -> u64 {
        counter_total(&self.inbound, key)
    }
}

/// Sums an inbound-rtp counter; libwebrtc's 64-bit counters come as JSON strings.
fn counter_total(inbound: &[serde_json::Value], key: &str) -> u64 {
    inbound
        .iter()
        .filter_map(|i| i["inbound"][key].as_str()?.parse::<u64>().ok())
        .sum()
}

/// What the viewer read from the synthetic pattern's block code.
#[derive(Debug, Clone, Deserialize)]
pub struct PatternReport {
    /// Frames whose code was read (sync byte and CRC valid).
    pub read: u64,
    pub unreadable: u64,
    pub first_frame_no: Option<u32>,
    pub last_frame_no: Option<u32>,
    pub distinct: u64,
    /// Frame numbers between the first and last read that never arrived.
    pub missing_in_span: u64,
    /// Codes lower than the one before.
    pub out_of_order: u64,
    /// Codes equal to the one before: the same capture time from a second simulcast layer
    /// as the SFU switched up.
    #[serde(default)]
    pub repeated: u64,
    /// The longest time between two decoded frames (ms).
    #[serde(default)]
    pub max_gap_ms: Option<f64>,
    /// Every gap over 250 ms between two decoded frames (ms): the stalls a person sees.
    #[serde(default)]
    pub freezes_ms: Vec<f64>,
    /// `(frame_no, capture timestamp µs on the publisher's media clock, arrival unix time µs)`,
    /// at most ~600 evenly spaced.
    pub samples: Vec<(u32, u64, u64)>,
}

impl PatternReport {
    /// Share of the frames between the first and the last one seen that were decoded.
    pub fn decoded_share(&self) -> f64 {
        let span = self.distinct + self.missing_in_span;
        if span == 0 {
            0.0
        } else {
            self.distinct as f64 / span as f64
        }
    }

    /// Glass-to-glass latencies (ms), given the wall-clock time of the publisher's media-clock
    /// zero in unix µs. Same machine, so the clocks agree.
    pub fn latencies_ms(&self, clock_epoch_unix_us: u64) -> Vec<f64> {
        self.samples
            .iter()
            .map(|&(_, ts, recv)| (recv as f64 - (clock_epoch_unix_us + ts) as f64) / 1000.0)
            .collect()
    }

    /// The gaps longer than `over_ms` between two sampled frames on the glass, each as
    /// (seconds since the first sampled frame, gap in ms): when in a run a picture stood.
    /// Exact while every decoded frame is sampled (under ~600 of them).
    pub fn gaps_over(&self, over_ms: f64) -> Vec<(f64, f64)> {
        match (self.samples.first(), self.samples.last()) {
            (Some(first), Some(last)) => self.gaps_within(first.2, last.2, over_ms),
            _ => Vec::new(),
        }
    }

    /// [`PatternReport::gaps_over`] within the stretch from `from_us` to `until_us` (unix
    /// µs on the glass), whose edges count as frames: a picture must come within `over_ms`
    /// of its start and still be coming at its end. Seconds are counted from `from_us`.
    pub fn gaps_within(&self, from_us: u64, until_us: u64, over_ms: f64) -> Vec<(f64, f64)> {
        let mut times = vec![from_us];
        times.extend(
            self.samples
                .iter()
                .map(|s| s.2)
                .filter(|t| *t > from_us && *t < until_us),
        );
        times.push(until_us);
        times
            .windows(2)
            .filter_map(|w| {
                let gap = w[1].saturating_sub(w[0]) as f64 / 1000.0;
                (gap > over_ms).then(|| (w[0].saturating_sub(from_us) as f64 / 1e6, gap))
            })
            .collect()
    }
}

/// The viewer's JSON report (see tests/viewer/viewer.py for the meaning of each field).
#[derive(Debug, Clone, Deserialize)]
pub struct ViewerReport {
    pub joined: bool,
    pub error: Option<String>,
    pub identity: Option<String>,
    pub connect_ms: Option<f64>,
    /// The wall-clock time (unix ms) the report's "ms since start" count from.
    #[serde(default)]
    pub started_unix_ms: u64,
    pub video: VideoReport,
    pub audio: AudioReport,
    pub chat_received: Vec<ChatMessage>,
    pub chat_sent: u32,
    /// The text stream id of each chat message sent, in order.
    #[serde(default)]
    pub chat_sent_ids: Vec<String>,
    #[serde(default)]
    pub data_received: Vec<DataMessage>,
    pub participants_seen: Vec<String>,
    pub participant_events: Vec<serde_json::Value>,
    /// Identity → that participant's attributes as last seen (join or change).
    #[serde(default)]
    pub participant_attributes: BTreeMap<String, BTreeMap<String, String>>,
    pub max_remote_participants: u32,
    pub mute_events: Vec<MuteEvent>,
    /// Tracks the viewer saw unpublished: `{sid, participant, t_ms}`.
    pub unpublished: Vec<serde_json::Value>,
    pub publish: PublishAttempt,
    pub disconnect_reason: Option<String>,
    /// The SDK's own reconnects, `{event: "reconnecting" | "reconnected", t_ms, unix_us}`.
    /// Inbound-rtp from before a restart is kept (marked `retired`), and the pattern's
    /// `missing_in_span` leaves out the frames published while this viewer was away.
    #[serde(default)]
    pub restarts: Vec<serde_json::Value>,
    pub pattern: PatternReport,
    /// With `psnr_ref`: PSNR-Y of the decoded frames against their source.
    #[serde(default)]
    pub psnr: Option<PsnrReport>,
    pub duration_ms: f64,
}

/// PSNR-Y (luma below the pattern code's band) of decoded frames against the source.
#[derive(Debug, Clone, Deserialize)]
pub struct PsnrReport {
    /// The source's size; only frames decoded at it are measured.
    pub size: String,
    pub samples: u64,
    /// Measured frames whose code could not be read (not compared).
    pub unreadable: u64,
    pub mean_db: Option<f64>,
    pub min_db: Option<f64>,
    /// The 10th percentile: the bad moments, which a mean hides.
    pub p10_db: Option<f64>,
}

/// Runs viewers.
pub struct Viewer;

/// A viewer still running; [`RunningViewer::report`] waits for its report.
pub struct RunningViewer {
    child: tokio::process::Child,
    limit: Duration,
}

impl Viewer {
    /// Runs a viewer to its end and returns its report.
    pub async fn run(options: ViewerOptions) -> Result<ViewerReport> {
        Self::spawn(options)?.report().await
    }

    /// Starts a viewer in the background (e.g. before the publisher connects).
    pub fn spawn(options: ViewerOptions) -> Result<RunningViewer> {
        let python = viewer_python()?;
        let script = repo_root().join("tests/viewer/viewer.py");
        let mut cmd = tokio::process::Command::new(python);
        cmd.arg(script)
            .args(["--url", &options.url, "--token", &options.token])
            .args(["--duration", &options.duration.as_secs_f64().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(q) = &options.quality {
            cmd.args(["--quality", q]);
        }
        cmd.args([
            "--chat-delay",
            &options.chat_delay.as_secs_f64().to_string(),
        ]);
        for text in &options.send_chat {
            cmd.args(["--send-chat", text]);
        }
        if options.try_publish {
            cmd.arg("--try-publish");
        }
        if options.read_pattern {
            cmd.arg("--read-pattern");
        }
        if let Some(path) = &options.psnr_ref {
            cmd.arg("--psnr-ref").arg(path);
        }
        if let Some([x, y, w, h]) = options.region {
            cmd.arg("--region").arg(format!("{x},{y},{w},{h}"));
        }
        for (flag, value) in [
            ("--until-frames", options.until_frames),
            ("--until-audio-frames", options.until_audio_frames),
            ("--until-chat", options.until_chat),
            ("--until-data", options.until_data),
        ] {
            if let Some(v) = value {
                cmd.args([flag, &v.to_string()]);
            }
        }
        tie_to_test_tokio(&mut cmd);
        let child = cmd.spawn().context("starting the Python viewer")?;
        // Connect timeout, publish probe and disconnect come on top of the stay.
        let limit = options.duration + Duration::from_secs(45);
        Ok(RunningViewer { child, limit })
    }
}

impl RunningViewer {
    /// Waits (bounded) for the viewer to finish and parses its report.
    pub async fn report(mut self) -> Result<ViewerReport> {
        let mut stdout = self.child.stdout.take().context("viewer stdout")?;
        let mut out = String::new();
        let finished = tokio::time::timeout(self.limit, async {
            stdout.read_to_string(&mut out).await?;
            self.child.wait().await
        })
        .await;
        let status = match finished {
            Ok(status) => status?,
            Err(_) => {
                let _ = self.child.kill().await;
                bail!("the viewer did not finish within {:?}", self.limit)
            }
        };
        let line = out.lines().rev().find(|l| l.trim_start().starts_with('{'));
        match line {
            Some(json) => {
                serde_json::from_str(json).with_context(|| format!("parsing viewer report: {json}"))
            }
            None => bail!("the viewer printed no report (exit {status}); stdout: {out}"),
        }
    }
}
