//! The first seconds of a cap far below what we send. str0m's estimator learns of it from
//! TWCC feedback, and LiveKit's TWCC responder falls seconds behind under heavy loss: each
//! report covers at most 1.2 sequence numbers per packet it received, so at 90 % loss a
//! report moves on only two or three packets. At a 100 kbit/s cap the newest reported
//! packet was more than a second old for 7.3 s, and the estimate came down only then;
//! the viewer's picture stood all along.
//!
//! LiveKit's receiver reports do not lag: one a second per stream, with the highest
//! sequence number received and the cumulative loss. When one says a video stream lost
//! most of its packets, what got through (packets received × the size we sent) is the
//! link's rate, and the encoders are held at it until str0m's estimate is at or under it.
//! str0m is not restarted from the ceiling: a fresh estimator probes straight back above a
//! capped link, and its estimate comes down anyway once the lagging feedback arrives.
//! Moderate loss is left to str0m (and NACK/RTX): a cut on every lossy second would spiral
//! down, each second's sending following the last cut.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::types::Bitrate;

/// Lost share of a video stream's packets between two receiver reports that marks a link
/// far below what we send. A cap at a third of the sending rate loses about two thirds;
/// random loss in the tens of percent is NACK's and the estimator's.
pub const OVERLOAD_LOSS: f64 = 0.4;
/// Loss under which a held ceiling may end by itself (the loss passed and the estimate, in
/// the meantime, did not come down).
const CALM_LOSS: f64 = 0.1;
/// How long a ceiling holds at least, unless the estimate comes under it first.
const HOLD: Duration = Duration::from_secs(8);
/// Two reports further apart than this say nothing of the link's rate (a server that
/// stopped, then caught up on what its socket kept).
const MAX_REPORT_GAP: Duration = Duration::from_millis(2500);
/// A stream's last reading counts towards the rate that gets through for this long.
const FRESH: Duration = Duration::from_millis(1500);
/// Fewer packets than this between two reports are too few to judge by.
const MIN_PACKETS: u64 = 10;
/// No ceiling below this: audio and a small picture still fit.
const FLOOR: Bitrate = Bitrate(40_000);

/// What one of str0m's stats says of a stream we send, with the receiver's last report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamReport {
    /// Highest sequence number the receiver reported, extended.
    pub max_seq: u64,
    /// Packets the receiver reported lost, cumulative.
    pub lost: u64,
    /// What we sent on the stream in all.
    pub bytes_sent: u64,
    pub packets_sent: u64,
}

#[derive(Debug)]
struct Stream {
    last: StreamReport,
    at: Instant,
    /// Bits per second that got through between the last two reports, and when.
    through: Option<(Bitrate, Instant)>,
}

#[derive(Debug)]
pub struct OverloadGuard<K> {
    streams: HashMap<K, Stream>,
    /// The ceiling and when it was set (or last lowered).
    ceiling: Option<(Bitrate, Instant)>,
}

impl<K> Default for OverloadGuard<K> {
    fn default() -> Self {
        OverloadGuard {
            streams: HashMap::new(),
            ceiling: None,
        }
    }
}

impl<K: std::hash::Hash + Eq> OverloadGuard<K> {
    /// One of str0m's stats of stream `key`, with str0m's last estimate. Returns whether
    /// the ceiling changed.
    pub fn on_report(
        &mut self,
        now: Instant,
        key: K,
        video: bool,
        r: StreamReport,
        estimate: Option<Bitrate>,
    ) -> bool {
        let Some(s) = self.streams.get_mut(&key) else {
            self.streams.insert(
                key,
                Stream {
                    last: r,
                    at: now,
                    through: None,
                },
            );
            return false;
        };
        if r.max_seq == s.last.max_seq {
            // No new receiver report since the last reading.
            return false;
        }
        let (prev, gap) = (s.last, now.saturating_duration_since(s.at));
        (s.last, s.at) = (r, now);
        let expected = r.max_seq.saturating_sub(prev.max_seq);
        let lost = r.lost.saturating_sub(prev.lost).min(expected);
        let sent = r.packets_sent.saturating_sub(prev.packets_sent);
        if gap > MAX_REPORT_GAP || expected < MIN_PACKETS || sent == 0 {
            s.through = None;
            return false;
        }
        let size = r.bytes_sent.saturating_sub(prev.bytes_sent) as f64 / sent as f64;
        let bps = (expected - lost) as f64 * size * 8.0 / gap.as_secs_f64();
        s.through = Some((Bitrate(bps as u64), now));
        let loss = lost as f64 / expected as f64;
        if !video {
            return false;
        }
        if loss >= OVERLOAD_LOSS {
            let through = Bitrate(
                self.streams
                    .values()
                    .filter_map(|s| s.through)
                    .filter(|(_, t)| now.saturating_duration_since(*t) <= FRESH)
                    .map(|(b, _)| b.0)
                    .sum(),
            )
            .max(FLOOR);
            // Under an estimate that is already there, str0m governs (it caught up, or
            // started again from an earlier ceiling).
            let lower = self.ceiling.map(|(c, _)| c).or(estimate);
            if lower.is_none_or(|c| through < c) {
                self.ceiling = Some((through, now));
                return true;
            }
        } else if loss < CALM_LOSS
            && self
                .ceiling
                .is_some_and(|(_, since)| now.saturating_duration_since(since) >= HOLD)
        {
            self.ceiling = None;
            return true;
        }
        false
    }

    /// A new estimate from str0m: once it is at or under the ceiling it governs alone.
    pub fn on_estimate(&mut self, estimate: Bitrate) {
        if self.ceiling.is_some_and(|(c, _)| estimate <= c) {
            self.ceiling = None;
        }
    }

    /// What the encoders may spend at most, while a ceiling holds.
    pub fn ceiling(&self) -> Option<Bitrate> {
        self.ceiling.map(|(c, _)| c)
    }

    /// `target`, held under the ceiling if one holds.
    pub fn cap(&self, target: Bitrate) -> Bitrate {
        self.ceiling().map_or(target, |c| target.min(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream sending `pps` packets a second of 1,000 bytes, reported on once a second.
    struct Sender {
        r: StreamReport,
        now: Instant,
    }

    impl Sender {
        fn new() -> Self {
            Sender {
                r: StreamReport {
                    max_seq: 1000,
                    lost: 0,
                    bytes_sent: 0,
                    packets_sent: 0,
                },
                now: Instant::now(),
            }
        }

        /// One second of sending at `pps` with `loss`, then the receiver's report.
        fn second(&mut self, pps: u64, loss: f64) -> StreamReport {
            self.now += Duration::from_secs(1);
            self.r.max_seq += pps;
            self.r.lost += (pps as f64 * loss).round() as u64;
            self.r.packets_sent += pps;
            self.r.bytes_sent += pps * 1000;
            self.r
        }
    }

    #[test]
    fn heavy_loss_holds_the_target_at_what_got_through() {
        let (mut g, mut v) = (OverloadGuard::default(), Sender::new());
        for _ in 0..3 {
            let r = v.second(350, 0.0);
            assert!(!g.on_report(v.now, "video", true, r, None));
        }
        assert_eq!(g.ceiling(), None);
        // 2.8 Mbit/s into a 300 kbit/s cap: 315 of 350 packets lost.
        let r = v.second(350, 0.9);
        assert!(g.on_report(v.now, "video", true, r, None));
        assert_eq!(g.ceiling(), Some(Bitrate(35 * 8000)));
        assert_eq!(g.cap(Bitrate(2_800_000)), Bitrate(280_000));
        assert_eq!(g.cap(Bitrate(100_000)), Bitrate(100_000));
    }

    #[test]
    fn what_got_through_counts_every_fresh_stream() {
        let (mut g, mut v, mut a) = (OverloadGuard::default(), Sender::new(), Sender::new());
        for _ in 0..2 {
            let r = a.second(50, 0.0);
            g.on_report(a.now, "audio", false, r, None);
            let r = v.second(350, 0.0);
            g.on_report(v.now, "video", true, r, None);
        }
        let r = a.second(50, 0.2);
        assert!(
            !g.on_report(a.now, "audio", false, r, None),
            "audio loss alone cuts nothing"
        );
        let r = v.second(350, 0.9);
        assert!(g.on_report(v.now, "video", true, r, None));
        assert_eq!(g.ceiling(), Some(Bitrate((40 + 35) * 8000)));
    }

    #[test]
    fn an_estimate_already_under_what_got_through_is_left_alone() {
        let (mut g, mut v) = (OverloadGuard::default(), Sender::new());
        let r = v.second(350, 0.0);
        g.on_report(v.now, "video", true, r, Some(Bitrate(100_000)));
        let r = v.second(350, 0.9);
        assert!(!g.on_report(v.now, "video", true, r, Some(Bitrate(100_000))));
        assert_eq!(g.ceiling(), None);
    }

    #[test]
    fn moderate_loss_is_left_to_the_estimator() {
        let (mut g, mut v) = (OverloadGuard::default(), Sender::new());
        for _ in 0..6 {
            let r = v.second(350, 0.25);
            assert!(!g.on_report(v.now, "video", true, r, None));
        }
        assert_eq!(g.ceiling(), None);
    }

    #[test]
    fn a_report_after_a_long_silence_or_on_few_packets_says_nothing() {
        let (mut g, mut v) = (OverloadGuard::default(), Sender::new());
        let r = v.second(350, 0.0);
        g.on_report(v.now, "video", true, r, None);
        // The server stopped for 10 s, then reported what its socket had kept.
        v.now += Duration::from_secs(10);
        let r = v.second(3500, 0.9);
        assert!(!g.on_report(v.now, "video", true, r, None));
        let r = v.second(5, 0.8);
        assert!(!g.on_report(v.now, "video", true, r, None));
        assert_eq!(g.ceiling(), None);
    }

    #[test]
    fn a_reading_without_a_new_report_changes_nothing() {
        let (mut g, mut v) = (OverloadGuard::default(), Sender::new());
        let r = v.second(350, 0.0);
        g.on_report(v.now, "video", true, r, None);
        let mut same = v.second(350, 0.9);
        same.max_seq = r.max_seq;
        assert!(!g.on_report(v.now, "video", true, same, None));
        assert_eq!(g.ceiling(), None);
    }

    #[test]
    fn the_ceiling_only_falls_and_never_under_the_floor() {
        let (mut g, mut v) = (OverloadGuard::default(), Sender::new());
        let r = v.second(350, 0.0);
        g.on_report(v.now, "video", true, r, None);
        let r = v.second(350, 0.9);
        g.on_report(v.now, "video", true, r, None);
        let r = v.second(35, 0.5);
        assert!(g.on_report(v.now, "video", true, r, None));
        assert_eq!(g.ceiling(), Some(Bitrate(17 * 8000)));
        let r = v.second(20, 0.9);
        g.on_report(v.now, "video", true, r, None);
        assert_eq!(g.ceiling(), Some(FLOOR));
    }

    #[test]
    fn the_estimate_coming_under_the_ceiling_ends_it() {
        let (mut g, mut v) = (OverloadGuard::default(), Sender::new());
        let r = v.second(350, 0.0);
        g.on_report(v.now, "video", true, r, None);
        let r = v.second(350, 0.9);
        g.on_report(v.now, "video", true, r, None);
        let c = g.ceiling().unwrap();
        g.on_estimate(Bitrate(c.0 * 2));
        assert_eq!(g.ceiling(), Some(c), "an estimate above it leaves it");
        g.on_estimate(c);
        assert_eq!(g.ceiling(), None);
    }

    #[test]
    fn passing_loss_ends_the_ceiling_after_the_hold() {
        let (mut g, mut v) = (OverloadGuard::default(), Sender::new());
        let r = v.second(350, 0.0);
        g.on_report(v.now, "video", true, r, None);
        let r = v.second(350, 0.9);
        g.on_report(v.now, "video", true, r, None);
        for _ in 0..7 {
            let r = v.second(35, 0.0);
            assert!(
                !g.on_report(v.now, "video", true, r, None),
                "held for the hold"
            );
        }
        let r = v.second(35, 0.0);
        assert!(g.on_report(v.now, "video", true, r, None));
        assert_eq!(g.ceiling(), None);
    }
}
