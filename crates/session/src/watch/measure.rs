//! What a viewer measures, without any I/O: fed decoded frames and their wall-clock times,
//! it yields the report figures (so the arithmetic is unit-tested on its own).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// Percentiles of a set of samples, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LatencyStats {
    pub samples: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
    pub min_ms: f64,
}

impl LatencyStats {
    /// Nearest-rank percentiles; `None` without samples.
    pub fn of(samples: &[f64]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let rank = |p: f64| s[((p * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1];
        Some(LatencyStats {
            samples: s.len(),
            p50_ms: rank(0.50),
            p95_ms: rank(0.95),
            max_ms: s[s.len() - 1],
            min_ms: s[0],
        })
    }
}

/// The pattern codes read so far: frame numbers in arrival order.
#[derive(Debug, Default, Clone)]
pub struct CodeTrack {
    seen: BTreeSet<u32>,
    last: Option<u32>,
    /// Codes smaller than the one before (reordered frames).
    pub out_of_order: u64,
    /// Codes read twice: a repeat is not disorder, as the SFU switching simulcast layers up
    /// can forward the new layer's key frame with the capture time it last sent.
    pub duplicates: u64,
}

impl CodeTrack {
    pub fn push(&mut self, frame_no: u32) {
        if !self.seen.insert(frame_no) {
            self.duplicates += 1;
        }
        if self.last.is_some_and(|l| frame_no < l) {
            self.out_of_order += 1;
        }
        self.last = Some(frame_no);
    }

    pub fn read(&self) -> usize {
        self.seen.len()
    }

    pub fn first(&self) -> Option<u32> {
        self.seen.first().copied()
    }

    pub fn last(&self) -> Option<u32> {
        self.seen.last().copied()
    }

    /// Frame numbers missing between the first and the last code read.
    pub fn missing(&self) -> u64 {
        match (self.first(), self.last()) {
            (Some(a), Some(b)) => (b - a + 1) as u64 - self.seen.len() as u64,
            _ => 0,
        }
    }

    /// Runs of consecutive missing frame numbers (each a freeze a viewer would notice).
    pub fn gap_runs(&self) -> u64 {
        let mut runs = 0;
        let mut prev: Option<u32> = None;
        for &n in &self.seen {
            if prev.is_some_and(|p| n > p + 1) {
                runs += 1;
            }
            prev = Some(n);
        }
        runs
    }
}

/// The video figures of one watch.
#[derive(Debug, Default, Clone)]
pub struct VideoMeasure {
    pub frames_received: u64,
    pub frames_decoded: u64,
    pub decode_errors: u64,
    /// Frames skipped while waiting for a key frame after a loss or a full queue.
    pub frames_skipped: u64,
    pub keyframes: u64,
    pub resolutions: BTreeMap<String, u64>,
    pub codes: CodeTrack,
    /// Capture (publisher's wall clock) → decoded here, ms, one per readable code.
    pub latencies_ms: Vec<f64>,
    /// Capture → first packet arrived here, ms.
    pub network_latencies_ms: Vec<f64>,
    pub first_decoded: Option<SystemTime>,
    pub last_decoded: Option<SystemTime>,
    /// Start of the per-second figures (the watch's start); none without it.
    pub origin: Option<SystemTime>,
    /// Decoded frames in each whole second since `origin` (shows a freeze and the recovery).
    pub frames_per_second: Vec<u64>,
    /// Highest pattern code read in each second since `origin`.
    pub max_code_per_second: Vec<Option<u32>>,
    /// Every frame that arrived, decoded or not.
    pub delivery: Delivery,
    /// Encoded video received (frame payloads), and when the first and last frame came.
    pub payload_bytes: u64,
    pub first_received: Option<SystemTime>,
    pub last_received: Option<SystemTime>,
}

impl VideoMeasure {
    /// Records one decoded frame: its size, its pattern code (if readable) and, when the
    /// publisher's clock epoch is known, the latency of that frame.
    pub fn decoded(
        &mut self,
        width: u32,
        height: u32,
        code: Option<(u32, u64)>,
        epoch: Option<SystemTime>,
        received: SystemTime,
        decoded: SystemTime,
    ) {
        self.frames_decoded += 1;
        *self
            .resolutions
            .entry(format!("{width}x{height}"))
            .or_default() += 1;
        self.first_decoded.get_or_insert(decoded);
        self.last_decoded = Some(decoded);
        let second = self
            .origin
            .and_then(|o| decoded.duration_since(o).ok())
            .map(|d| d.as_secs() as usize);
        if let Some(i) = second {
            if self.frames_per_second.len() <= i {
                self.frames_per_second.resize(i + 1, 0);
                self.max_code_per_second.resize(i + 1, None);
            }
            self.frames_per_second[i] += 1;
            if let Some((n, _)) = code {
                let max = &mut self.max_code_per_second[i];
                *max = Some(max.map_or(n, |m| m.max(n)));
            }
        }
        let Some((frame_no, pts_us)) = code else {
            return;
        };
        self.codes.push(frame_no);
        if let Some(epoch) = epoch {
            let captured = epoch + Duration::from_micros(pts_us);
            self.latencies_ms.push(ms_between(captured, decoded));
            self.network_latencies_ms
                .push(ms_between(captured, received));
        }
    }

    /// One frame arrived (`bytes` of payload), decodable or not.
    pub fn arrived(&mut self, timestamp: Duration, bytes: usize, decodable: bool, at: SystemTime) {
        self.delivery.frame(timestamp, decodable);
        self.payload_bytes += bytes as u64;
        self.first_received.get_or_insert(at);
        self.last_received = Some(at);
    }

    /// Video payload received per second between the first and the last frame, kbit/s.
    pub fn bitrate_kbps(&self) -> Option<f64> {
        let span = self
            .last_received?
            .duration_since(self.first_received?)
            .ok()?
            .as_secs_f64();
        (span > 0.0).then(|| self.payload_bytes as f64 * 8.0 / span / 1000.0)
    }

    /// Decoded frames per second between the first and the last decoded frame.
    pub fn fps(&self) -> Option<f64> {
        let (a, b) = (self.first_decoded?, self.last_decoded?);
        let span = b.duration_since(a).ok()?.as_secs_f64();
        (span > 0.0 && self.frames_decoded > 1).then(|| (self.frames_decoded - 1) as f64 / span)
    }
}

/// `to − from` in ms, negative when `to` is earlier.
pub fn ms_between(from: SystemTime, to: SystemTime) -> f64 {
    match to.duration_since(from) {
        Ok(d) => d.as_secs_f64() * 1000.0,
        Err(e) => -e.duration().as_secs_f64() * 1000.0,
    }
}

/// What a viewer that decodes only key frames still measures for every frame: the frames a
/// decoder would have taken (everything before them arrived since a key frame), against the
/// frames the RTP timestamps say were sent. The publisher stamps each frame with its capture
/// time, so each gap between stamps, in units of the usual gap, counts the frames in it, the
/// ones that never arrived too, as missing pattern codes do for a viewer that decodes.
#[derive(Debug, Default, Clone)]
pub struct Delivery {
    /// Frames seen, decodable or not.
    pub received: u64,
    /// Frames a decoder would have taken.
    pub decodable: u64,
    /// Runs of frames a decoder could not take (a loss, until the next key frame): freezes.
    pub stalls: u64,
    stalled: bool,
    last_stamp: Option<Duration>,
    /// Gaps between consecutive stamps, µs.
    gaps_us: Vec<u64>,
}

impl Delivery {
    /// One frame, stamped `timestamp` (its RTP time), that a decoder could or could not take.
    pub fn frame(&mut self, timestamp: Duration, decodable: bool) {
        self.received += 1;
        match self.last_stamp {
            // A repeat, or a frame later than its successor: nothing new on screen.
            Some(last) if timestamp <= last => return,
            Some(last) => self.gaps_us.push((timestamp - last).as_micros() as u64),
            None => {}
        }
        self.last_stamp = Some(timestamp);
        if decodable {
            self.decodable += 1;
            self.stalled = false;
        } else if !self.stalled {
            self.stalls += 1;
            self.stalled = true;
        }
    }

    /// `(decodable, sent)` from the first to the last stamp: each gap counts as the nearest
    /// whole number (at least 1) of frame intervals, the interval being the median gap (a
    /// publisher that changes its frame rate mid-watch blurs this). `None` under two stamps.
    pub fn share(&self) -> Option<(u64, u64)> {
        let mut sorted = self.gaps_us.clone();
        sorted.sort_unstable();
        let interval = (*sorted.get(sorted.len() / 2)?).max(1);
        let sent = 1 + self
            .gaps_us
            .iter()
            .map(|&gap| ((gap + interval / 2) / interval).max(1))
            .sum::<u64>();
        Some((self.decodable.min(sent), sent))
    }
}

/// The audio figures of one watch.
#[derive(Debug, Default, Clone)]
pub struct AudioMeasure {
    pub packets_received: u64,
    pub packets_decoded: u64,
    pub decode_errors: u64,
    pub samples: u64,
    sum_squares: f64,
    sample_count: u64,
    pub peak: f32,
}

impl AudioMeasure {
    /// Records one decoded packet's samples (-1..=1, interleaved).
    pub fn decoded(&mut self, samples: &[f32], channels: u16) {
        self.packets_decoded += 1;
        self.samples += (samples.len() / channels.max(1) as usize) as u64;
        for &s in samples {
            self.sum_squares += (s as f64) * (s as f64);
            self.peak = self.peak.max(s.abs());
        }
        self.sample_count += samples.len() as u64;
    }

    /// RMS over everything decoded, dBFS (`None` before any audio).
    pub fn rms_dbfs(&self) -> Option<f64> {
        (self.sample_count > 0).then(|| {
            let rms = (self.sum_squares / self.sample_count as f64).sqrt();
            20.0 * rms.max(1e-9).log10()
        })
    }

    /// Peak, dBFS.
    pub fn peak_dbfs(&self) -> Option<f64> {
        (self.sample_count > 0).then(|| 20.0 * (self.peak as f64).max(1e-9).log10())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        let l = LatencyStats::of(&s).unwrap();
        assert_eq!(
            (l.p50_ms, l.p95_ms, l.max_ms, l.min_ms),
            (50.0, 95.0, 100.0, 1.0)
        );
        let one = LatencyStats::of(&[7.0]).unwrap();
        assert_eq!((one.p50_ms, one.p95_ms), (7.0, 7.0));
        assert!(LatencyStats::of(&[]).is_none());
    }

    #[test]
    fn codes_count_gaps_runs_and_reordering() {
        let mut c = CodeTrack::default();
        for n in [10, 11, 12, 15, 16, 14, 20, 20] {
            c.push(n);
        }
        // 10..=20 is 11 numbers; seen 10,11,12,14,15,16,20 → 4 missing (13,17,18,19) in 2 runs
        assert_eq!(c.read(), 7);
        assert_eq!(c.missing(), 4);
        assert_eq!(c.gap_runs(), 2);
        // 14 after 16; the second 20 is a repeat, not disorder
        assert_eq!(c.out_of_order, 1);
        assert_eq!(c.duplicates, 1);
    }

    #[test]
    fn latency_is_decode_time_minus_epoch_plus_pts() {
        let epoch = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut v = VideoMeasure::default();
        let received = epoch + Duration::from_millis(1_040);
        let decoded = epoch + Duration::from_millis(1_055);
        v.decoded(
            640,
            360,
            Some((30, 1_000_000)),
            Some(epoch),
            received,
            decoded,
        );
        v.decoded(
            640,
            360,
            None,
            Some(epoch),
            received,
            decoded + Duration::from_millis(33),
        );
        v.decoded(320, 180, Some((32, 1_066_666)), None, received, decoded);
        assert_eq!(v.latencies_ms.len(), 1);
        assert!((v.latencies_ms[0] - 55.0).abs() < 1e-6);
        assert!((v.network_latencies_ms[0] - 40.0).abs() < 1e-6);
        assert_eq!(v.resolutions.get("640x360"), Some(&2));
        assert_eq!(v.resolutions.get("320x180"), Some(&1));
        assert_eq!(v.codes.read(), 2);
        assert_eq!(v.frames_decoded, 3);
    }

    #[test]
    fn frames_and_codes_are_counted_per_second_since_the_origin() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let mut v = VideoMeasure {
            origin: Some(t0),
            ..Default::default()
        };
        let at = |ms| t0 + Duration::from_millis(ms);
        v.decoded(640, 360, Some((5, 0)), None, at(100), at(100));
        v.decoded(640, 360, Some((4, 0)), None, at(900), at(900));
        v.decoded(640, 360, None, None, at(999), at(999));
        // A freeze in second 1, frames again in second 2.
        v.decoded(640, 360, Some((70, 0)), None, at(2_500), at(2_500));
        assert_eq!(v.frames_per_second, vec![3, 0, 1]);
        assert_eq!(v.max_code_per_second, vec![Some(5), None, Some(70)]);
        // Without an origin there are no per-second figures.
        let mut w = VideoMeasure::default();
        w.decoded(640, 360, Some((1, 0)), None, t0, t0);
        assert!(w.frames_per_second.is_empty());
    }

    #[test]
    fn fps_spans_first_to_last_decoded_frame() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let mut v = VideoMeasure::default();
        for i in 0..31 {
            let t = t0 + Duration::from_millis(i * 1000 / 30);
            v.decoded(640, 360, None, None, t, t);
        }
        let fps = v.fps().unwrap();
        assert!((fps - 30.0).abs() < 0.2, "{fps}");
    }

    #[test]
    fn delivery_counts_the_frames_the_stamps_say_were_sent() {
        let at = |frame: u64| Duration::from_micros(frame * 33_333);
        let mut d = Delivery::default();
        assert_eq!(d.share(), None);
        // Frames 0..=9 arrive, 10..=12 are lost, 13 arrives broken, 14 too (waiting for a
        // key frame), 15 is the key frame, 16..=19 follow; 17 arrives twice and late.
        for f in 0..10 {
            d.frame(at(f), true);
        }
        d.frame(at(13), false);
        d.frame(at(14), false);
        for f in 15..20 {
            d.frame(at(f), true);
        }
        d.frame(at(17), true);
        // 0..=19 is 20 frames sent, 15 of them decodable; the repeat adds nothing.
        assert_eq!(d.share(), Some((15, 20)));
        assert_eq!((d.received, d.stalls), (18, 1));
        // A publisher stamping 90 kHz times at 30 fps with jitter of a tick still counts
        // one frame per gap.
        let mut j = Delivery::default();
        for (i, us) in [0u64, 33_300, 66_700, 100_000, 133_311]
            .into_iter()
            .enumerate()
        {
            j.frame(Duration::from_micros(us), i != 2);
        }
        assert_eq!(j.share(), Some((4, 5)));
    }

    #[test]
    fn audio_level_of_a_full_scale_square_wave_is_zero_dbfs() {
        let mut a = AudioMeasure::default();
        let s: Vec<f32> = (0..960)
            .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        a.decoded(&s, 1);
        assert!(a.rms_dbfs().unwrap().abs() < 1e-3);
        assert!(a.peak_dbfs().unwrap().abs() < 1e-3);
        assert_eq!(a.samples, 960);
        let mut quiet = AudioMeasure::default();
        quiet.decoded(&vec![0.1; 960], 2);
        assert!((quiet.rms_dbfs().unwrap() + 20.0).abs() < 1e-3);
        assert_eq!(quiet.samples, 480);
    }
}
