//! A cap far below what we send. str0m's estimator learns of it from TWCC feedback, and
//! LiveKit's TWCC responder falls seconds behind under heavy loss: each report covers at
//! most 1.2 sequence numbers per packet it received, so at 90 % loss a report moves on
//! only two or three packets. At a 100 kbit/s cap the newest reported packet was more
//! than a second old for 7.3 s, and the estimate came down only then; the viewer's
//! picture stood all along. Nor does str0m's estimate stay down: where a full queue drops
//! packets the delay stops growing, and it climbed back to 170 kbit/s on a 100 kbit/s link.
//!
//! LiveKit's receiver reports do not lag: about one a second per stream (sent when a
//! packet of the stream arrives), with the highest sequence number received and the
//! cumulative loss. When they say most packets were lost, or a stream's reports stop
//! while the others' say the link drops and TWCC feedback has stopped too, what got
//! through (packets received × the size we sent, less a twentieth so the queue drains)
//! becomes a ceiling on the target. While it holds, the reports govern it the way
//! libwebrtc's loss-based control governs its estimate: loss of a tenth or more lowers it
//! to what got through, a second without loss raises it by 8 %. It ends once str0m's
//! estimate has come down to it (its own feedback of the overload arrived; until then it
//! climbs to meet an estimate on its way down); if loss comes back
//! soon after, a smaller share brings it back. A ceiling set on a stream's missing reports
//! alone is taken back when the late report comes and says the packets arrived (a report
//! lost on a lossy link while a stall held TWCC feedback back). str0m is not restarted
//! from the ceiling: a fresh estimator probes straight back above a capped link.
//!
//! Loss on a link that was never overloaded is left to str0m and NACK/RTX: at 5 % random
//! loss no second of the streams' reports comes near the shares that set a ceiling, and a
//! cut on every lossy second would spiral down (each second's sending follows the last
//! cut), which is also why a held ceiling is cut only from a tenth up.
//!
//! [`CutKeyFrame`] is the other half of a sharp cut, from here or from str0m: the key
//! frame a second later that the viewer would otherwise wait three seconds to ask for.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::types::Bitrate;

/// Lost share of all packets, over the streams' last receiver reports, that marks a link
/// far below what we send. A cap at half the sending rate loses about half.
pub const OVERLOAD_LOSS: f64 = 0.3;
/// Lost share of one stream's packets that marks it too, over at least
/// [`MIN_ONE_STREAM`] packets. Video's big packets find a full queue more often than
/// audio's small ones; when hardly any get through, video's reports (sent on arrival)
/// come late, and audio's tell first.
const OVERLOAD_ONE_STREAM: f64 = 0.4;
const MIN_ONE_STREAM: u64 = 20;
/// The share that brings a ceiling back within [`RECENT`] of the last one ending: the
/// link was capped a moment ago, and str0m's estimate may be climbing over it again.
const RECAP_LOSS: f64 = 0.15;
const RECENT: Duration = Duration::from_secs(20);
/// While a ceiling holds, loss of this share or more lowers it to what got through
/// (libwebrtc's loss-based control cuts from 10 % too).
const CUT_LOSS: f64 = 0.1;
/// What got through, less this share, so the queue the overload built drains.
const MARGIN: f64 = 0.95;
/// While a ceiling holds the target, it rises by this factor after a second without loss
/// (as libwebrtc's loss-based control raises its estimate). What got through a queue
/// that overflowed is less than the link carries once it is not: the bursts of a frame
/// found it full more often than the mean rate says.
const GROWTH: f64 = 1.08;
const GROWTH_EVERY: Duration = Duration::from_secs(1);
/// A ceiling ends once str0m's estimate is within [`AGREE`] of it: the lagging feedback of
/// the overload reaches str0m in the end and it governs alone again; at 300 kbit/s that
/// took a second or two, at 100 kbit/s four to eight. Before that, the estimate has *come
/// down* once it is at [`CAUGHT_UP`] of what it was when the ceiling was set and the
/// reports have said no loss for [`CLEAN_FOR`] (after [`HELD_AT_MOST`], without the clean
/// seconds: on a link that also loses at random they never come, and a ceiling held under
/// 10 % loss neither falls nor rises). A ceiling that loses nothing has not reached the
/// link's rate because the link got better: what the overload taught str0m has to reach
/// it first.
///
/// Come down is not arrived: at 100 kbit/s the estimate fell from 1,460 to 157 kbit/s
/// and stayed there for a second, and it was still 163 kbit/s when the reports had been
/// clean for 2 s. A ceiling that ended there let the target leap to the estimate (43 to
/// 163 kbit/s): the link lost a tenth of what we sent for four seconds, and the picture
/// stood 3.4 s until the viewer asked for a key frame (3.3 s in an earlier version, on the
/// repeated key frame). So an estimate that came down hands over instead: the ceiling
/// rises [`GROWTH`] a second whatever small loss the reports show, as libwebrtc's
/// loss-based estimate climbs, until str0m's, still falling, is near it.
const AGREE: f64 = 1.25;
const CAUGHT_UP: f64 = 0.5;
const CLEAN_FOR: Duration = Duration::from_secs(2);
const HELD_AT_MOST: Duration = Duration::from_secs(8);
/// A stream we sent [`MIN_ONE_STREAM`] packets on since its last report, which has had
/// none for this long while other streams had theirs within [`REPORTING`] and lost
/// [`OTHERS_LOSE`] of their packets, counts as losing all it sent; but only while no
/// TWCC feedback has come for what we sent in the last second either, for [`SILENT_FOR`]
/// or more. A receiver report crosses the network too, and one lost on a lossy link is no
/// news; there, TWCC feedback keeps coming. It comes in steps, though: LiveKit answers
/// once it holds 20 packets, so at 30 video packets a second one feedback covered about
/// 22 of them, 0.7 s apart, and at 5 % random loss the last second went without any for
/// 0.25-0.5 s of our 250 ms readings now and then (8 runs, a few times each). CI failed
/// on that once: a video report lost in such a moment set a 49 kbit/s ceiling for 1.5 s,
/// until the late report said 2 of 95 lost. At a 100 kbit/s cap the feedback had been
/// silent 1.0-1.25 s when a video stream's report was missing long enough. The others'
/// loss only tells a link that drops from a queue that delays (where they lose nothing),
/// so a little is enough: at 100 kbit/s audio's small packets lost 4-6 % while video's
/// reports stopped for 3.5 s, and with a bar at 10 % the picture stood 3.7 s before the
/// guard acted (2 of 2 runs of the whole `network` file).
const STARVED: Duration = Duration::from_millis(1600);
const REPORTING: Duration = Duration::from_millis(1100);
const OTHERS_LOSE: f64 = 0.02;
const SILENT_FOR: Duration = Duration::from_millis(700);
/// TWCC feedback silent this long says enough alone that the link drops what we send,
/// so a stream that goes [`STARVED_WHEN_SILENT`] without its report while another stream
/// still has its reports lost what it sent, whatever that stream lost. LiveKit's responder
/// stalls so only where most packets are lost: at 5 % random loss the feedback was late
/// 0.5 s at most, and a queue that only delays keeps it coming. At a 100 kbit/s cap it
/// went silent 0.5 s in, while audio's small packets still found room in the queue: its
/// report 1.3 s in said nothing lost, and the ceiling came only with the next, 2.3 s in.
const LONG_SILENCE: Duration = Duration::from_millis(1200);
const STARVED_WHEN_SILENT: Duration = Duration::from_millis(1400);
/// Two reports further apart than this say nothing of the link's rate (a server that
/// stopped, then caught up on what its socket kept).
const MAX_REPORT_GAP: Duration = Duration::from_millis(2500);
/// A stream's last reading counts towards the rate that gets through for this long.
const FRESH: Duration = Duration::from_millis(1500);
/// Fewer packets than this over the last reports are too few to judge by.
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
    /// Between its last two reports.
    interval: Option<Interval>,
    /// The next new report starts afresh (see [`OverloadGuard::restart`]).
    rebase: bool,
}

#[derive(Debug, Clone, Copy)]
struct Interval {
    through: Bitrate,
    expected: u64,
    lost: u64,
    at: Instant,
    /// Made up for a stream whose report did not come: all it sent counts as lost.
    starved: bool,
}

impl Interval {
    fn loss(&self) -> f64 {
        self.lost as f64 / self.expected.max(1) as f64
    }
}

#[derive(Debug, Clone, Copy)]
struct Ceiling {
    rate: Bitrate,
    /// When it last moved.
    moved: Instant,
    /// str0m's estimate when it was set.
    over: Option<Bitrate>,
    /// When it was set, and when the streams' reports last said a packet was lost.
    set: Instant,
    last_loss: Instant,
    /// Set on a stream's missing reports alone: no report that came said the link lost
    /// heavily. The missing report, once it comes, may say the packets arrived after all.
    on_silence: bool,
    /// str0m's estimate has come down, not yet to it: it rises to meet it (see [`AGREE`]).
    handing_over: bool,
}

#[derive(Debug)]
pub struct OverloadGuard<K> {
    streams: HashMap<K, Stream>,
    ceiling: Option<Ceiling>,
    /// When the last ceiling ended.
    ended: Option<Instant>,
    /// The rate of a ceiling that ended, until [`OverloadGuard::take_carried`] takes it.
    carried: Option<Bitrate>,
    /// Since when no TWCC feedback has come for the packets sent in the last second.
    twcc_silent_since: Option<Instant>,
}

impl<K> Default for OverloadGuard<K> {
    fn default() -> Self {
        OverloadGuard {
            streams: HashMap::new(),
            ceiling: None,
            ended: None,
            carried: None,
            twcc_silent_since: None,
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
        r: StreamReport,
        estimate: Option<Bitrate>,
    ) -> bool {
        let before = self.ceiling();
        if let Some(this) = self.interval(now, key, r) {
            self.judge(now, this, estimate);
        }
        self.ceiling() != before
    }

    /// The stream's new interval, if the reading makes one.
    fn interval(&mut self, now: Instant, key: K, r: StreamReport) -> Option<Interval> {
        let Some(s) = self.streams.get(&key) else {
            self.streams.insert(
                key,
                Stream {
                    last: r,
                    at: now,
                    interval: None,
                    rebase: false,
                },
            );
            return None;
        };
        if s.rebase {
            if r.max_seq != s.last.max_seq {
                let s = self.streams.get_mut(&key)?;
                (s.last, s.at, s.rebase) = (r, now, false);
            }
            return None;
        }
        let sent = r.packets_sent.saturating_sub(s.last.packets_sent);
        if r.max_seq == s.last.max_seq {
            // No new receiver report since the last reading. LiveKit sends one when a
            // packet arrives a second after the last, so a stream we keep sending on that
            // goes without while others have theirs is losing nearly everything (once).
            let busy = sent >= MIN_ONE_STREAM && s.interval.is_none_or(|i| i.through.0 > 0);
            let quiet = now.saturating_duration_since(s.at);
            let silent = self
                .twcc_silent_since
                .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
            let starved = busy
                && (quiet >= STARVED && silent >= SILENT_FOR && self.others_lose(now, &key)
                    || quiet >= STARVED_WHEN_SILENT
                        && silent >= LONG_SILENCE
                        && self.others_report(now, &key));
            if !starved {
                return None;
            }
            tracing::trace!(sent, "no receiver report on a stream we send on");
            let i = Interval {
                through: Bitrate(0),
                expected: sent,
                lost: sent,
                at: now,
                starved: true,
            };
            self.streams.get_mut(&key)?.interval = Some(i);
            return Some(i);
        }
        let s = self.streams.get_mut(&key)?;
        let (prev, gap) = (s.last, now.saturating_duration_since(s.at));
        (s.last, s.at) = (r, now);
        let expected = r.max_seq.saturating_sub(prev.max_seq);
        let lost = r.lost.saturating_sub(prev.lost).min(expected);
        let was_starved = s.interval.is_some_and(|i| i.starved);
        if was_starved {
            self.late_report(expected, lost);
        }
        let s = self.streams.get_mut(&key)?;
        if gap > MAX_REPORT_GAP || sent == 0 {
            s.interval = None;
            return None;
        }
        let size = r.bytes_sent.saturating_sub(prev.bytes_sent) as f64 / sent as f64;
        let bps = (expected - lost) as f64 * size * 8.0 / gap.as_secs_f64();
        let i = Interval {
            through: Bitrate(bps as u64),
            expected,
            lost,
            at: now,
            starved: false,
        };
        s.interval = Some(i);
        tracing::trace!(
            expected,
            lost,
            sent,
            through_bps = i.through.0,
            gap_ms = gap.as_millis() as u64,
            "receiver report"
        );
        Some(i)
    }

    /// The transport was lost and is back (an ICE restart on the same session). What was
    /// sent meanwhile went nowhere, and the first reports after it would count that as
    /// loss: each stream starts again from its first new report, and a ceiling set
    /// before the outage is dropped (the link may be another one now). Returns whether a
    /// ceiling held.
    pub fn restart(&mut self) -> bool {
        for s in self.streams.values_mut() {
            (s.interval, s.rebase) = (None, true);
        }
        self.ended = None;
        self.twcc_silent_since = None;
        self.ceiling.take().is_some()
    }

    /// The report a starved stream went without has come, covering `expected` packets of
    /// which `lost`. When it says the packets arrived (under a tenth lost, what a link
    /// that loses a little at random shows), the silence was a report lost or delayed: a
    /// ceiling set on it alone is taken back (not ended, so no recap follows). More loss
    /// confirms the ceiling. The bar is low because the report covers some time before
    /// the silence too: at a cap's onset it reaches back to before the cap, and the
    /// earlier the guard acted the more of it does.
    fn late_report(&mut self, expected: u64, lost: u64) {
        let Some(c) = self.ceiling.as_mut() else {
            return;
        };
        if !c.on_silence || expected < MIN_ONE_STREAM {
            return;
        }
        if lost as f64 >= expected as f64 * CUT_LOSS {
            c.on_silence = false;
            return;
        }
        tracing::debug!(
            expected,
            lost,
            "a late receiver report took back the ceiling"
        );
        self.ceiling = None;
    }

    /// str0m's share of the packets sent in the last second that TWCC feedback says were
    /// lost; `None` when no feedback has come for any of them.
    pub fn on_twcc_loss(&mut self, now: Instant, loss: Option<f32>) {
        if self.twcc_silent_since.is_some() != loss.is_none() {
            tracing::trace!(?loss, "TWCC feedback silent or back");
        }
        self.twcc_silent_since = match loss {
            Some(_) => None,
            None => self.twcc_silent_since.or(Some(now)),
        };
    }

    /// Whether the other streams than `key` had receiver reports lately, and those say the
    /// link drops packets: a stream whose packets wait in a queue also goes without a
    /// report for a while, but then the others' packets arrive whole.
    fn others_lose(&self, now: Instant, key: &K) -> bool {
        let (expected, lost) = totals(self.others_reporting(now, key));
        expected >= MIN_PACKETS && lost as f64 >= expected as f64 * OTHERS_LOSE
    }

    /// Whether the other streams than `key` had receiver reports lately: the server
    /// still hears us (a server that stopped is the liveness watchdog's).
    fn others_report(&self, now: Instant, key: &K) -> bool {
        totals(self.others_reporting(now, key)).0 >= MIN_PACKETS
    }

    fn others_reporting<'a>(
        &'a self,
        now: Instant,
        key: &'a K,
    ) -> impl Iterator<Item = Interval> + 'a {
        self.streams
            .iter()
            .filter(move |(k, s)| *k != key && now.saturating_duration_since(s.at) <= REPORTING)
            .filter_map(|(_, s)| s.interval)
    }

    /// Acts on the loss over all streams, now that `this` stream's interval is new.
    fn judge(&mut self, now: Instant, this: Interval, estimate: Option<Bitrate>) {
        // Over all streams, so a small layer's few packets do not decide alone.
        let (expected, lost) = totals(self.fresh(now));
        if expected < MIN_PACKETS {
            return;
        }
        let loss = lost as f64 / expected as f64;
        tracing::trace!(expected, lost, this.expected, this.lost, "receiver reports");
        if let Some(c) = self.ceiling.as_mut()
            && lost > 0
        {
            c.last_loss = now;
        }
        if let Some(e) = estimate
            && self.on_estimate(now, e)
        {
            return;
        }
        // What the reports that came say, without the streams whose reports did not.
        let said = overloaded(
            totals(self.fresh(now).filter(|i| !i.starved)),
            (!this.starved).then_some(this),
        );
        if let Some(c) = self.ceiling.as_mut()
            && said
        {
            c.on_silence = false;
        }
        match self.ceiling {
            None => {
                let recent = self
                    .ended
                    .is_some_and(|t| now.saturating_duration_since(t) < RECENT);
                if overloaded((expected, lost), Some(this)) || (recent && loss >= RECAP_LOSS) {
                    self.engage(now, estimate, !said);
                }
            }
            Some(c) if loss >= CUT_LOSS => {
                let through = self.through(now);
                if through < c.rate {
                    self.ceiling = Some(Ceiling {
                        rate: through,
                        moved: now,
                        ..c
                    });
                }
            }
            // It holds the target back: an estimate near it or under would have ended it.
            Some(c)
                if (lost == 0 || c.handing_over)
                    && now.saturating_duration_since(c.moved) >= GROWTH_EVERY =>
            {
                self.ceiling = Some(Ceiling {
                    rate: Bitrate((c.rate.0 as f64 * GROWTH) as u64),
                    moved: now,
                    ..c
                });
            }
            Some(_) => {}
        }
    }

    fn engage(&mut self, now: Instant, estimate: Option<Bitrate>, on_silence: bool) {
        let through = self.through(now);
        // Under an estimate that is already there (str0m caught up), nothing changes.
        if estimate.is_some_and(|e| e <= through) {
            return;
        }
        self.ceiling = Some(Ceiling {
            rate: through,
            moved: now,
            over: estimate,
            set: now,
            last_loss: now,
            on_silence,
            handing_over: false,
        });
    }

    /// A new estimate from str0m. Returns whether it ended the ceiling.
    pub fn on_estimate(&mut self, now: Instant, estimate: Bitrate) -> bool {
        let Some(c) = self.ceiling.as_mut() else {
            return false;
        };
        let clean = now.saturating_duration_since(c.last_loss) >= CLEAN_FOR
            || now.saturating_duration_since(c.set) >= HELD_AT_MOST;
        let came_down = clean
            && c.over
                .is_some_and(|o| estimate.0 as f64 <= o.0 as f64 * CAUGHT_UP);
        if came_down && !c.handing_over {
            tracing::debug!(
                estimate_bps = estimate.0,
                ceiling_bps = c.rate.0,
                "str0m's estimate came down: the overload ceiling rises to meet it"
            );
            c.handing_over = true;
        }
        if estimate.0 as f64 > c.rate.0 as f64 * AGREE {
            return false;
        }
        let c = *c;
        self.ceiling = None;
        self.ended = Some(now);
        self.carried = Some(c.rate);
        true
    }

    /// What the link carried by the reports when the last ceiling ended, once: what got
    /// through it, less the margin, raised by the seconds it lost nothing. (A ceiling
    /// taken back says nothing of the link: the reports that came said it lost little.)
    pub fn take_carried(&mut self) -> Option<Bitrate> {
        self.carried.take()
    }

    /// Streams' last intervals, read lately enough to count.
    fn fresh(&self, now: Instant) -> impl Iterator<Item = Interval> {
        self.streams.values().filter_map(move |s| {
            s.interval
                .filter(|i| now.saturating_duration_since(i.at) <= FRESH)
        })
    }

    /// What got through on all streams with a fresh reading, less the margin.
    fn through(&self, now: Instant) -> Bitrate {
        let sum: u64 = self.fresh(now).map(|i| i.through.0).sum();
        Bitrate((sum as f64 * MARGIN) as u64).max(FLOOR)
    }

    /// What the encoders may spend at most, while a ceiling holds.
    pub fn ceiling(&self) -> Option<Bitrate> {
        self.ceiling.map(|c| c.rate)
    }

    /// `target`, held under the ceiling if one holds.
    pub fn cap(&self, target: Bitrate) -> Bitrate {
        self.ceiling().map_or(target, |c| target.min(c))
    }
}

/// Whether `(expected, lost)` over streams' intervals, or `this` busy stream alone, lost
/// the share a link far below what we send loses.
fn overloaded((expected, lost): (u64, u64), this: Option<Interval>) -> bool {
    expected >= MIN_PACKETS && lost as f64 >= expected as f64 * OVERLOAD_LOSS
        || this.is_some_and(|i| i.expected >= MIN_ONE_STREAM && i.loss() >= OVERLOAD_ONE_STREAM)
}

/// Packets expected and lost over `intervals`.
fn totals(intervals: impl Iterator<Item = Interval>) -> (u64, u64) {
    intervals.fold((0, 0), |(e, l), i| (e + i.expected, l + i.lost))
}

/// How long after a sharp cut of the target the encoders make a key frame once more.
/// The encoder's rebuild at the new size starts with a key frame, but it goes out into the
/// queue the old rate filled and is often lost with it; the viewer's decoder then waits
/// for one, and its own request came 3.0-3.3 s later (libwebrtc asks after 3 s without a
/// decodable frame). A second later the queue has drained: the target is under the link.
/// At a 100 kbit/s cap the picture came back 0.0-0.3 s after this key frame in 8 of 10
/// runs, but half a second was too soon: when the rebuild's key frame had got through,
/// the repeat, sent while the target sat at the 40 kbit/s floor, stood the picture for
/// another 1.1 s in one of two runs of the `network` file and 2.55 s in a CI run.
pub const KEY_AFTER_CUT: Duration = Duration::from_secs(1);
/// A target that falls to less than this share of the last is a sharp cut.
const SHARP_CUT: f64 = 0.5;

/// The key frame after a sharp cut (see [`KEY_AFTER_CUT`]).
#[derive(Debug, Default)]
pub struct CutKeyFrame {
    due: Option<Instant>,
}

impl CutKeyFrame {
    /// The target moved from `from` to `to`; returns whether that was a sharp cut.
    pub fn on_target(&mut self, now: Instant, from: Option<Bitrate>, to: Bitrate) -> bool {
        let sharp = from.is_some_and(|f| (to.0 as f64) < f.0 as f64 * SHARP_CUT);
        if sharp {
            self.due = Some(now + KEY_AFTER_CUT);
        }
        sharp
    }

    pub fn next(&self) -> Option<Instant> {
        self.due
    }

    /// Whether the key frame is due by `now`; it is then taken.
    pub fn take(&mut self, now: Instant) -> bool {
        let due = self.due.is_some_and(|t| t <= now);
        if due {
            self.due = None;
        }
        due
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

    /// A guard holding a ceiling: a clean second of 2.8 Mbit/s, then one that lost 90 %,
    /// with str0m's `estimate` at both reports.
    fn capped_under(estimate: Option<Bitrate>) -> (OverloadGuard<&'static str>, Sender) {
        let (mut g, mut v) = (OverloadGuard::default(), Sender::new());
        let r = v.second(350, 0.0);
        g.on_report(v.now, "video", r, estimate);
        let r = v.second(350, 0.9);
        assert!(g.on_report(v.now, "video", r, estimate));
        (g, v)
    }

    /// [`capped_under`] no estimate yet.
    fn capped() -> (OverloadGuard<&'static str>, Sender) {
        capped_under(None)
    }

    /// [`capped_under`] the 2.8 Mbit/s str0m still reads from before the cap.
    fn capped_under_a_stale_estimate() -> (OverloadGuard<&'static str>, Sender) {
        capped_under(Some(Bitrate(2_800_000)))
    }

    /// A video stream sending `video_pps` and audio 50 a second, two clean seconds in.
    fn video_and_audio(video_pps: u64) -> (OverloadGuard<&'static str>, Sender, Sender) {
        let (mut g, mut v, mut a) = (OverloadGuard::default(), Sender::new(), Sender::new());
        a.now = v.now;
        for _ in 0..2 {
            let r = v.second(video_pps, 0.0);
            g.on_report(v.now, "video", r, None);
            let r = a.second(50, 0.0);
            g.on_report(a.now, "audio", r, None);
        }
        (g, v, a)
    }

    /// A quarter second of sending `packets` on a stream whose report does not come.
    fn send_quietly(r: &mut StreamReport, now: &mut Instant, packets: u64) {
        *now += Duration::from_millis(250);
        r.packets_sent += packets;
        r.bytes_sent += packets * 1000;
    }

    /// The ceiling over `packets` packets of 1,000 bytes a second.
    fn over(packets: u64) -> Bitrate {
        Bitrate((packets as f64 * 8000.0 * MARGIN) as u64)
    }

    #[test]
    fn heavy_loss_holds_the_target_at_what_got_through() {
        let (mut g, mut v) = (OverloadGuard::default(), Sender::new());
        for _ in 0..3 {
            let r = v.second(350, 0.0);
            assert!(!g.on_report(v.now, "video", r, None));
        }
        assert_eq!(g.ceiling(), None);
        // 2.8 Mbit/s into a 300 kbit/s cap: 315 of 350 packets lost.
        let r = v.second(350, 0.9);
        assert!(g.on_report(v.now, "video", r, None));
        assert_eq!(g.ceiling(), Some(over(35)));
        assert_eq!(g.cap(Bitrate(2_800_000)), over(35));
        assert_eq!(g.cap(Bitrate(100_000)), Bitrate(100_000));
    }

    #[test]
    fn what_got_through_counts_every_fresh_stream() {
        let (mut g, mut v, mut a) = (OverloadGuard::default(), Sender::new(), Sender::new());
        for _ in 0..2 {
            let r = a.second(50, 0.0);
            g.on_report(a.now, "audio", r, None);
            let r = v.second(350, 0.0);
            g.on_report(v.now, "video", r, None);
        }
        let r = a.second(50, 0.2);
        assert!(
            !g.on_report(a.now, "audio", r, None),
            "a fifth of audio's packets, a fortieth of all, cuts nothing"
        );
        let r = v.second(350, 0.9);
        assert!(g.on_report(v.now, "video", r, None));
        assert_eq!(g.ceiling(), Some(over(40 + 35)));
    }

    #[test]
    fn an_estimate_already_under_what_got_through_is_left_alone() {
        let (mut g, mut v) = (OverloadGuard::default(), Sender::new());
        let r = v.second(350, 0.0);
        g.on_report(v.now, "video", r, Some(Bitrate(100_000)));
        let r = v.second(350, 0.9);
        assert!(!g.on_report(v.now, "video", r, Some(Bitrate(100_000))));
        assert_eq!(g.ceiling(), None);
    }

    #[test]
    fn moderate_loss_is_left_to_the_estimator() {
        let (mut g, mut v) = (OverloadGuard::default(), Sender::new());
        for _ in 0..6 {
            let r = v.second(350, 0.25);
            assert!(!g.on_report(v.now, "video", r, None));
        }
        assert_eq!(g.ceiling(), None);
    }

    #[test]
    fn a_report_after_a_long_silence_or_on_few_packets_says_nothing() {
        let (mut g, mut v) = (OverloadGuard::default(), Sender::new());
        let r = v.second(350, 0.0);
        g.on_report(v.now, "video", r, None);
        // The server stopped for 10 s, then reported what its socket had kept.
        v.now += Duration::from_secs(10);
        let r = v.second(3500, 0.9);
        assert!(!g.on_report(v.now, "video", r, None));
        let r = v.second(5, 0.8);
        assert!(!g.on_report(v.now, "video", r, None));
        assert_eq!(g.ceiling(), None);
    }

    #[test]
    fn a_reading_without_a_new_report_changes_nothing() {
        let (mut g, mut v) = (OverloadGuard::default(), Sender::new());
        let r = v.second(350, 0.0);
        g.on_report(v.now, "video", r, None);
        let mut same = v.second(350, 0.9);
        same.max_seq = r.max_seq;
        assert!(!g.on_report(v.now, "video", same, None));
        assert_eq!(g.ceiling(), None);
    }

    #[test]
    fn loss_while_held_lowers_it_to_what_got_through_never_under_the_floor() {
        let (mut g, mut v) = capped();
        // 35 packets a second into a link that takes 31.
        let r = v.second(35, 0.1);
        assert!(g.on_report(v.now, "video", r, None));
        assert_eq!(g.ceiling(), Some(over(31)));
        let r = v.second(31, 0.03);
        assert!(
            !g.on_report(v.now, "video", r, None),
            "loss under the cut's share neither lowers nor raises it"
        );
        let r = v.second(20, 0.9);
        assert!(g.on_report(v.now, "video", r, None));
        assert_eq!(g.ceiling(), Some(FLOOR));
    }

    #[test]
    fn a_second_without_loss_raises_a_ceiling_that_holds_the_target() {
        let (mut g, mut v) = capped();
        let c = g.ceiling().unwrap();
        let r = v.second(33, 0.0);
        assert!(g.on_report(v.now, "video", r, Some(Bitrate(2_800_000))));
        let raised = Bitrate((c.0 as f64 * GROWTH) as u64);
        assert_eq!(g.ceiling(), Some(raised));
        let r = v.second(35, 0.0);
        g.on_report(
            v.now - GROWTH_EVERY / 2,
            "video",
            r,
            Some(Bitrate(2_800_000)),
        );
        assert_eq!(g.ceiling(), Some(raised), "once a second");
    }

    /// The ceiling raised by [`GROWTH`] `times`.
    fn grown(c: Bitrate, times: u32) -> Bitrate {
        (0..times).fold(c, |c, _| Bitrate((c.0 as f64 * GROWTH) as u64))
    }

    #[test]
    fn once_str0m_has_come_down_it_rises_to_meet_it_and_ends_near_it() {
        let (mut g, mut v) = capped_under_a_stale_estimate();
        let half = Some(Bitrate(1_400_000));
        let r = v.second(30, 0.05);
        assert!(
            !g.on_report(v.now, "video", r, half),
            "half of what it was, but the link still loses: held"
        );
        let held = g.ceiling().expect("a ceiling");
        // Clean seconds raise it; after two the estimate has come down, far over it
        // still: it is not ended there.
        for _ in 0..2 {
            let r = v.second(30, 0.0);
            assert!(g.on_report(v.now, "video", r, half));
        }
        assert_eq!(g.ceiling(), Some(grown(held, 2)));
        // Handing over, a little loss no longer holds it back.
        let r = v.second(30, 0.05);
        assert!(g.on_report(v.now, "video", r, Some(Bitrate(600_000))));
        let c = g.ceiling().expect("still far under the estimate");
        assert_eq!(c, grown(held, 3));
        // str0m's estimate, still falling, ends it once near it.
        assert!(!g.on_estimate(v.now, Bitrate(c.0 * 3 / 2)));
        assert!(g.on_estimate(v.now, Bitrate(c.0 * 6 / 5)));
        assert_eq!(g.ceiling(), None);
        assert_eq!(g.take_carried(), Some(c));
    }

    #[test]
    fn a_loss_holds_it_until_the_reports_are_clean_again() {
        let (mut g, mut v) = capped_under_a_stale_estimate();
        let half = Some(Bitrate(1_400_000));
        let r = v.second(30, 0.0);
        g.on_report(v.now, "video", r, half);
        // A loss starts the clean count again: held at the next lossy second, and not
        // handing over one clean second later.
        let r = v.second(30, 0.05);
        assert!(!g.on_report(v.now, "video", r, half));
        let r = v.second(30, 0.0);
        assert!(g.on_report(v.now, "video", r, half), "raised: clean");
        let r = v.second(30, 0.05);
        assert!(
            !g.on_report(v.now, "video", r, half),
            "held: not handing over"
        );
    }

    /// A link that keeps losing a little: the halved estimate starts the handover after
    /// [`HELD_AT_MOST`] even though the reports are never clean, and the ceiling meets
    /// an estimate that keeps coming down.
    #[test]
    fn a_ceiling_on_a_link_that_keeps_losing_a_little_ends_in_time() {
        let (mut g, mut v) = capped_under_a_stale_estimate();
        let set = v.now;
        let half = Some(Bitrate(1_400_000));
        while v.now < set + HELD_AT_MOST - Duration::from_secs(1) {
            let r = v.second(40, 0.05);
            assert!(
                !g.on_report(v.now, "video", r, half),
                "held, neither cut nor raised"
            );
        }
        let held = g.ceiling().expect("a ceiling");
        let r = v.second(40, 0.05);
        assert!(g.on_report(v.now, "video", r, half));
        assert_eq!(g.ceiling(), Some(grown(held, 1)));
        let mut seconds = 0;
        while g.ceiling().is_some() {
            seconds += 1;
            assert!(seconds <= 5, "{:?} still held", g.ceiling());
            let r = v.second(40, 0.05);
            g.on_report(v.now, "video", r, Some(Bitrate(400_000)));
        }
        // 266 kbit/s raised 8 % a second meets 400 / 1.25 = 320 kbit/s in the third.
        assert_eq!(seconds, 3);
    }

    #[test]
    fn an_ended_ceiling_says_once_what_the_link_carried() {
        let (mut g, v) = capped();
        let held = g.ceiling().expect("a ceiling");
        assert_eq!(g.take_carried(), None, "not while it holds");
        assert!(g.on_estimate(v.now, held));
        assert_eq!(g.take_carried(), Some(held));
        assert_eq!(g.take_carried(), None);
    }

    #[test]
    fn it_ends_once_str0m_is_near_it() {
        let (mut g, v) = capped();
        let c = g.ceiling().unwrap();
        assert!(!g.on_estimate(v.now, Bitrate(c.0 * 2)));
        assert!(g.on_estimate(v.now, Bitrate(c.0 * 6 / 5)));
        assert_eq!(g.ceiling(), None);
    }

    #[test]
    fn loss_soon_after_it_ended_brings_it_back_at_a_smaller_share() {
        let (mut g, mut v) = capped();
        for _ in 0..8 {
            let r = v.second(20, 0.0);
            g.on_report(v.now, "video", r, Some(Bitrate(100_000)));
        }
        assert_eq!(g.ceiling(), None);
        let r = v.second(40, 0.25);
        assert!(g.on_report(v.now, "video", r, Some(Bitrate(400_000))));
        assert_eq!(g.ceiling(), Some(over(30)));
        // Long after a ceiling ended, the same loss is the estimator's again.
        let (mut g, mut v) = capped();
        for _ in 0..8 {
            let r = v.second(20, 0.0);
            g.on_report(v.now, "video", r, Some(Bitrate(100_000)));
        }
        v.now += RECENT;
        let r = v.second(40, 0.0);
        g.on_report(v.now, "video", r, None);
        let r = v.second(40, 0.25);
        assert!(!g.on_report(v.now, "video", r, Some(Bitrate(400_000))));
    }

    #[test]
    fn heavy_loss_on_one_busy_stream_is_enough() {
        // Video's big packets find the full queue first and its reports come late (LiveKit
        // sends one when a packet arrives); audio's small ones still get through to tell.
        let (mut g, _, mut a) = video_and_audio(25);
        a.now += Duration::from_millis(500);
        let r = a.second(50, 0.4);
        assert!(
            g.on_report(a.now, "audio", r, Some(Bitrate(2_000_000))),
            "20 of 75 packets lost in all, but 20 of audio's 50"
        );
        let through = 25.0 * 8000.0 + 30.0 * 8000.0 / 1.5;
        assert_eq!(g.ceiling(), Some(Bitrate((through * MARGIN) as u64)));
    }

    #[test]
    fn a_small_layers_loss_is_weighed_with_the_others() {
        let (mut g, mut big, mut small) = (OverloadGuard::default(), Sender::new(), Sender::new());
        for _ in 0..3 {
            let r = big.second(300, 0.0);
            g.on_report(big.now, "big", r, None);
            let r = small.second(15, 0.0);
            g.on_report(small.now, "small", r, None);
        }
        let r = big.second(300, 0.05);
        assert!(!g.on_report(big.now, "big", r, None));
        let r = small.second(15, 0.34);
        assert!(!g.on_report(small.now, "small", r, None), "5 of 15 lost");
        assert_eq!(g.ceiling(), None);
    }

    /// [`video_and_audio`] at 25 packets a second of video, whose reports then stop for
    /// `steps` quarter seconds while audio's, a second in, say `audio_loss` lost (its small
    /// packets find room in the queue), and no TWCC feedback comes from step `twcc_gone`.
    /// Returns the video stream as last reported on with what it sent since, and at which
    /// steps the ceiling moved.
    fn video_goes_silent(
        steps: u32,
        audio_loss: f64,
        twcc_gone: u32,
    ) -> (OverloadGuard<&'static str>, Sender, Sender, Vec<u32>) {
        let (mut g, mut v, mut a) = video_and_audio(25);
        let (mut quiet, mut now, mut moved) = (v.r, v.now, Vec::new());
        for step in 1..=steps {
            send_quietly(&mut quiet, &mut now, 6);
            g.on_twcc_loss(now, (step < twcc_gone).then_some(0.0));
            if step == 4 {
                let r = a.second(50, audio_loss);
                assert!(!g.on_report(now, "audio", r, Some(Bitrate(2_000_000))));
            }
            if g.on_report(now, "video", quiet, Some(Bitrate(2_000_000))) {
                moved.push(step);
            }
        }
        (v.r.packets_sent, v.r.bytes_sent) = (quiet.packets_sent, quiet.bytes_sent);
        v.now = now;
        (g, v, a, moved)
    }

    #[test]
    fn a_stream_without_reports_while_others_have_theirs_lost_what_it_sent() {
        // TWCC feedback silent for a second by then.
        let (g, _, _, moved) = video_goes_silent(8, 0.04, 3);
        // From 1.6 s after its last report (42 packets sent since), and only once.
        assert_eq!(moved, [7]);
        // Only what audio got through: 48 packets over the 1 s since its last report.
        let through = 48.0 * 8000.0 * MARGIN;
        assert_eq!(g.ceiling(), Some(Bitrate(through as u64)));
    }

    #[test]
    fn a_stream_without_reports_while_twcc_feedback_is_long_silent_lost_what_it_sent() {
        // Audio's small packets all arrive, but the feedback has been silent 1.5 s.
        let (g, _, _, moved) = video_goes_silent(8, 0.0, 0);
        assert_eq!(moved, [6], "1.5 s after its last report");
        assert_eq!(g.ceiling(), Some(over(50)));
        // Silent only a second, with audio whole: a report late, as in a queue.
        let (g, _, _, moved) = video_goes_silent(8, 0.0, 4);
        assert_eq!((moved, g.ceiling()), (vec![], None));
    }

    /// A ceiling on a video stream's silence alone ([`video_goes_silent`] for 1.75 s).
    fn capped_on_silence() -> (OverloadGuard<&'static str>, Sender, Sender) {
        let (g, v, a, _) = video_goes_silent(7, 0.04, 3);
        assert!(g.ceiling().is_some());
        (g, v, a)
    }

    #[test]
    fn a_late_report_that_says_the_packets_arrived_takes_the_ceiling_back() {
        // A report lost on a link that loses 5 % at random, while a stalled machine kept
        // TWCC feedback back (CI once held a stream at 40 kbit/s for its last 10 s so).
        let (mut g, mut v, mut a) = capped_on_silence();
        v.now += Duration::from_millis(250);
        v.r.max_seq += 48;
        v.r.lost += 2;
        assert!(g.on_report(v.now, "video", v.r, Some(Bitrate(2_000_000))));
        assert_eq!(g.ceiling(), None);
        assert_eq!(
            g.take_carried(),
            None,
            "the link was never shown to carry only that"
        );
        // Taken back, not ended: a lossy second next is judged as if none had been set.
        let r = a.second(50, 0.2);
        assert!(!g.on_report(a.now, "audio", r, Some(Bitrate(2_000_000))));
        assert_eq!(g.ceiling(), None);
    }

    #[test]
    fn a_late_report_that_says_the_packets_were_lost_keeps_the_ceiling() {
        let (mut g, mut v, _) = capped_on_silence();
        let held = g.ceiling().expect("a ceiling");
        // 6 of 48: its span reached back to before the loss began.
        v.now += Duration::from_millis(250);
        v.r.max_seq += 48;
        v.r.lost += 6;
        g.on_report(v.now, "video", v.r, Some(Bitrate(2_000_000)));
        let now = g.ceiling().expect("the ceiling kept");
        assert!(now <= held, "{now:?} > {held:?}");
    }

    #[test]
    fn what_was_sent_during_an_outage_is_not_overload() {
        let (mut g, mut v) = (OverloadGuard::default(), Sender::new());
        for _ in 0..2 {
            let r = v.second(100, 0.0);
            g.on_report(v.now, "video", r, None);
        }
        // The transport drops for a second: sent, never received. The reading before the
        // resume still has the last report from before the outage.
        v.now += Duration::from_secs(1);
        v.r.packets_sent += 100;
        v.r.bytes_sent += 100_000;
        assert!(!g.restart());
        assert!(!g.on_report(v.now, "video", v.r, None));
        // The first report after it covers the outage: 100 packets the receiver missed.
        v.r.max_seq += 100;
        v.r.lost += 100;
        let r = v.second(100, 0.0);
        assert!(!g.on_report(v.now, "video", r, None), "only a new start");
        let r = v.second(100, 0.0);
        assert!(!g.on_report(v.now, "video", r, None));
        assert_eq!(g.ceiling(), None);
        // Measured from there on as before.
        let r = v.second(100, 0.9);
        assert!(g.on_report(v.now, "video", r, None));
        assert_eq!(g.ceiling(), Some(over(10).max(FLOOR)));
        assert!(g.restart(), "a ceiling from before the outage is dropped");
        assert_eq!(g.ceiling(), None);
    }

    #[test]
    fn no_report_from_any_stream_is_not_loss() {
        // A server that stopped answering is the liveness watchdog's.
        let (mut g, mut v) = (OverloadGuard::default(), Sender::new());
        let r = v.second(25, 0.0);
        g.on_report(v.now, "video", r, None);
        let r = v.second(25, 0.0);
        g.on_report(v.now, "video", r, None);
        let mut quiet = v.r;
        for _ in 0..20 {
            v.now += Duration::from_millis(250);
            quiet.packets_sent += 6;
            assert!(!g.on_report(v.now, "video", quiet, None));
        }
    }

    #[test]
    fn a_stream_without_reports_while_the_others_arrive_whole_is_only_late() {
        // Its packets wait in a queue (or it sent little): the others lose nothing.
        let (mut g, v, mut a) = video_and_audio(30);
        let (mut quiet, mut now) = (v.r, v.now);
        for step in 1..=10 {
            send_quietly(&mut quiet, &mut now, 8);
            if step % 4 == 0 {
                let r = a.second(50, 0.0);
                g.on_report(now, "audio", r, Some(Bitrate(2_000_000)));
            }
            assert!(!g.on_report(now, "video", quiet, Some(Bitrate(2_000_000))));
        }
        assert_eq!(g.ceiling(), None);
    }

    #[test]
    fn a_sharp_cut_asks_for_one_key_frame_a_second_later() {
        let (mut k, now) = (CutKeyFrame::default(), Instant::now());
        assert!(!k.on_target(now, None, Bitrate(100_000)));
        assert!(!k.on_target(now, Some(Bitrate(2_000_000)), Bitrate(1_200_000)));
        assert_eq!(k.next(), None, "a gentle fall keeps the queue short");
        assert!(k.on_target(now, Some(Bitrate(2_000_000)), Bitrate(150_000)));
        assert_eq!(k.next(), Some(now + KEY_AFTER_CUT));
        assert!(!k.take(now));
        assert!(k.take(now + KEY_AFTER_CUT));
        assert_eq!(k.next(), None, "once");
    }

    /// Video's reports stop for 2.5 s beside 30 of its packets a second, while audio's
    /// come a second in and say `loss` lost, and str0m's TWCC feedback says `twcc(step)` at
    /// each quarter second: a report lost, the ceiling never moves.
    fn only_a_report_lost(loss: f64, twcc: impl Fn(u32) -> Option<f32>) {
        let (mut g, v, mut a) = video_and_audio(30);
        let (mut quiet, mut now) = (v.r, v.now);
        for step in 1..=10 {
            send_quietly(&mut quiet, &mut now, 8);
            g.on_twcc_loss(now, twcc(step));
            if step == 4 {
                let r = a.second(50, loss);
                g.on_report(now, "audio", r, Some(Bitrate(2_000_000)));
            }
            let moved = g.on_report(now, "video", quiet, Some(Bitrate(2_000_000)));
            assert!(!moved, "the ceiling moved at step {step}");
        }
        assert_eq!(g.ceiling(), None);
    }

    #[test]
    fn a_stream_without_reports_while_twcc_feedback_flows_lost_only_a_report() {
        only_a_report_lost(0.12, |_| Some(0.12));
    }

    #[test]
    fn a_report_missing_while_twcc_feedback_is_late_only_briefly_lost_only_a_report() {
        // At 5 % random loss: video's report lost, and the feedback that covers the last
        // second 0.5 s late, at just that moment (CI once failed so).
        only_a_report_lost(0.05, |step| (!(6..=7).contains(&step)).then_some(0.05));
    }
}
