//! What a watch reports: live progress for a status line, and the final figures as JSON.

use std::time::Duration;

use serde::Serialize;

use super::measure::LatencyStats;

/// Live figures for a status line, published while watching.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WatchProgress {
    pub elapsed: Duration,
    pub connected: bool,
    pub frames_decoded: u64,
    pub resolution: Option<(u32, u32)>,
    /// Latency of the last frame with a readable code, ms.
    pub last_latency_ms: Option<f64>,
    pub audio_packets: u64,
    pub chat_messages: usize,
    pub viewers: Option<i64>,
}

/// One chat message seen while watching.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchChat {
    pub from: String,
    pub identity: String,
    pub text: String,
}

/// The video part of a [`WatchReport`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoReport {
    /// `every-frame`, or `key-frames` (a load test's light viewer: the other frames are
    /// counted, not decoded, so sizes, codes and latency come from key frames only).
    pub decode: String,
    /// Frames a decoder would have taken: everything before them arrived since a key frame.
    pub frames_decodable: u64,
    /// Frames the publisher's capture timestamps span, from the first to the last one
    /// received (both decode modes); frames its encoder skipped count, as they do in the
    /// pattern's frame numbers.
    pub frames_sent: Option<u64>,
    /// Of those, the share that was decodable, %.
    pub delivered_pct: Option<f64>,
    /// Runs of frames that were not decodable (a loss, until the next key frame): freezes.
    pub stalls: u64,
    /// Encoded video received, kbit/s, from the first to the last frame.
    pub bitrate_kbps: Option<f64>,
    /// Codecs of the video tracks received (`h264`, `vp8`).
    pub codecs: Vec<String>,
    pub frames_received: u64,
    pub frames_decoded: u64,
    /// Skipped while waiting for a key frame after a loss or a full queue.
    pub frames_skipped: u64,
    /// Dropped because the decoder queue was full.
    pub queue_drops: u64,
    /// Dropped inside the LiveKit participant (its media channel was full).
    pub receiver_drops: u64,
    pub decode_errors: u64,
    pub keyframes: u64,
    /// `"WxH"` → decoded frames.
    pub resolutions: std::collections::BTreeMap<String, u64>,
    /// Decoded frames per second, first to last decoded frame.
    pub fps: Option<f64>,
    /// Frames whose pattern code read back (sync byte and CRC right).
    pub readable_codes: usize,
    pub first_code: Option<u32>,
    pub last_code: Option<u32>,
    /// Frame numbers missing between the first and the last code.
    pub missing_frames: u64,
    /// Runs of missing frame numbers (freezes).
    pub gap_runs: u64,
    /// Codes lower than the one before (a repeat, from a simulcast switch up, is not).
    pub out_of_order: u64,
    /// Decoded frames in each whole second since the watch started (a freeze shows as 0s).
    pub frames_per_second: Vec<u64>,
    /// Highest pattern code read in each of those seconds (the stream moving on).
    pub max_code_per_second: Vec<Option<u32>>,
}

/// One loss of the connection to LiveKit, in ms since the watch started.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutageReport {
    pub lost_ms: u64,
    /// Connected again (resumed or rejoined); `None` if it never came back.
    pub recovered_ms: Option<u64>,
}

/// The audio part of a [`WatchReport`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AudioReport {
    pub packets_received: u64,
    pub packets_decoded: u64,
    pub decode_errors: u64,
    /// Seconds of audio decoded.
    pub seconds: f64,
    pub rms_dbfs: Option<f64>,
    pub peak_dbfs: Option<f64>,
}

/// The stream's viewer count on the backend (LiveKit webhooks), polled while watching.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ViewersReport {
    pub at_start: i64,
    pub at_end: Option<i64>,
    pub peak: i64,
}

/// What one watch saw.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchReport {
    /// `completed`, `stream-ended` (the creator left), `interrupted`, or `failed`.
    pub outcome: String,
    pub error: Option<String>,
    pub username: String,
    pub title: String,
    /// Our identity in the room (`guest-…` for a guest).
    pub identity: String,
    /// The LiveKit URL joined: the backend's, or the one the config chose (a node).
    pub livekit_url: String,
    /// Connect started → end.
    pub duration_ms: u64,
    /// Connect started → joined.
    pub connect_time_ms: Option<u64>,
    /// Connect started → first decoded video frame.
    pub first_frame_ms: Option<u64>,
    /// Times the connection to LiveKit was lost and recovery began.
    pub reconnects: u32,
    /// Each of those losses and when it recovered.
    pub outages: Vec<OutageReport>,
    pub video: VideoReport,
    /// Capture (publisher) → decoded here; needs the publisher's clock epoch.
    pub latency: Option<LatencyStats>,
    /// Capture → first packet of the frame arrived here.
    pub network_latency: Option<LatencyStats>,
    /// Transport ICE selected for the received media at the end: `udp`, `tcp`,
    /// `relay/udp`, `relay/tcp` or `relay/tls`.
    pub transport: Option<String>,
    /// Where the publisher's clock epoch came from: `given` (the config), `attribute`
    /// (the creator's participant attribute), `publisher-file` (a `publish` on this
    /// machine), or `None`.
    pub clock_epoch_source: Option<String>,
    /// That epoch, Unix µs.
    pub clock_epoch_unix_us: Option<u64>,
    pub audio: AudioReport,
    pub chat_messages: usize,
    pub chat: Vec<WatchChat>,
    pub viewers: ViewersReport,
}
