//! Rapid recovery of the bandwidth estimate after the network got better. str0m's
//! estimator climbs back slowly, if at all, once a cap lifts: AIMD is held at 1.5× what
//! the encoder sends while the encoder sends what the estimate allows, and its prober
//! stays quiet while the loss controller or the delay detector still blames the past
//! congestion. Seen after a 300 kbit/s cap: 141 kbit/s held for 20 s on a free link on
//! CI (7-8 fps), and 111-160 kbit/s for 25 s and more here with nudges alone. So while
//! the estimate sits far below what the tracks want and has stopped falling, we ask for a
//! probe, with a backoff: a link that really is capped sees a short probe burst every few
//! seconds at first, then every 24 s.
//!
//! While the estimate is what holds the picture back (a watched layer is paused or scaled
//! down for it, which only the session knows: [`RecoveryProber::set_holding_back`]), the
//! backoff stops at 5 s, libwebrtc's ALR probe interval: the wait between attempts is how
//! long a lifted cap goes unnoticed (24 s after a 20 s cap: full size came back 10.7 s
//! after the lift on CI, and would miss a 30 s cap by ~15 s). While everything watched is
//! sent the long backoff stays: a static picture sends far less than the estimate allows,
//! str0m holds the estimate at 1.5× that, so it looks "far below" for the whole show, and
//! 6 s between resets for every stream dropped CI's static watch test to 360p.
//!
//! str0m 0.25 has no "probe now" call. It sends an allocation probe (at twice the
//! estimate) whenever the desired bitrate rises, so an [`Attempt::Nudge`] raises it by one
//! bit per second. When a nudge did not lift the estimate (str0m refused to probe, as it
//! does on a busy machine whose send times jitter, or the probe failed) the next attempt
//! is an [`Attempt::Reset`]: the estimator starts again from the current estimate with its
//! initial probes (3× and 6× it), as at the start of a call. An attempt that lifted the
//! estimate shows the link has room, so a reset follows at once while the estimate is
//! still far below: its probes reach the room in one step, where str0m's own climb from
//! a first probe took 5 s on a busy machine (458, 524, 1058, 3083 kbit/s a second apart).
//! This is libwebrtc's rapid-recovery idea (probe after a drop without waiting for ALR).

use std::time::{Duration, Instant};

use crate::types::Bitrate;

/// Time the estimate must have held steady (not fallen) before the first attempt.
const STEADY_FOR: Duration = Duration::from_secs(3);
/// First wait between attempts; doubles after each attempt that did not lift the estimate.
const FIRST_INTERVAL: Duration = Duration::from_secs(3);
/// The longest wait between attempts on a link that really is capped.
const MAX_INTERVAL: Duration = Duration::from_secs(24);
/// The longest wait while the estimate holds the picture back: a lifted cap is noticed
/// within this, plus the climb.
const HOLDING_BACK_MAX_INTERVAL: Duration = Duration::from_secs(5);
/// Attempt only while the estimate is below this share of what the tracks want.
const FAR_BELOW: f64 = 0.5;
/// A fall of more than this share below the highest estimate since it was last steady is
/// congestion going on. The estimate of a capped link wavers by more than 5 % between
/// updates (239, 223, 209, 199 kbit/s), and a clock restarted by each of those put a
/// lifted cap's first attempt 5 s late.
const FALL: f64 = 0.2;
/// An attempt worked once the estimate rose by this share: judged as soon as it has, so
/// the reset that follows comes with the probe result.
const ROSE: f64 = 0.2;
/// When an attempt that has not lifted the estimate is judged to have failed: str0m's
/// probe results are in well within that.
const VERDICT_AFTER: Duration = Duration::from_secs(2);

/// What to ask of str0m's estimator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Attempt {
    /// Raise the desired bitrate by a bit per second (see [`RecoveryProber::offset`]).
    Nudge,
    /// Start the estimator again from this estimate.
    Reset(Bitrate),
}

/// Decides when to ask str0m for a probe; fed with estimates and time, no clock of its own.
#[derive(Debug)]
pub(super) struct RecoveryProber {
    last_estimate: Option<Bitrate>,
    /// Since when the estimate has not fallen, and its highest value since.
    steady_since: Option<Instant>,
    steady_peak: Bitrate,
    /// The last attempt, the estimate then, and its verdict once judged.
    last: Option<Tried>,
    interval: Duration,
    nudges: u64,
    /// The estimate was far below what the tracks wanted at the last poll: only then is
    /// there a time to wake for. Otherwise the next estimate or a new want (both reach
    /// `poll` through the core's input handling) is what can change the answer.
    far_below: bool,
    /// The estimate is what holds the picture back (see the module doc).
    holding_back: bool,
}

#[derive(Debug, Clone, Copy)]
struct Tried {
    at: Instant,
    estimate: Bitrate,
    worked: Option<bool>,
}

impl Default for RecoveryProber {
    fn default() -> Self {
        Self {
            last_estimate: None,
            steady_since: None,
            steady_peak: Bitrate(0),
            last: None,
            interval: FIRST_INTERVAL,
            nudges: 0,
            far_below: false,
            holding_back: false,
        }
    }
}

impl RecoveryProber {
    /// A new estimate from the BWE.
    pub fn on_estimate(&mut self, now: Instant, estimate: Bitrate) {
        let fell = (estimate.0 as f64) < self.steady_peak.0 as f64 * (1.0 - FALL);
        if fell || self.steady_since.is_none() {
            self.steady_since = Some(now);
            self.steady_peak = estimate;
        }
        self.steady_peak = self.steady_peak.max(estimate);
        self.last_estimate = Some(estimate);
    }

    /// Whether the estimate is what holds the picture back now: a layer someone watches is
    /// paused, or a single layer scaled down, because the estimate cannot carry it.
    pub fn set_holding_back(&mut self, yes: bool) {
        self.holding_back = yes;
    }

    /// The wait after the last attempt.
    fn interval(&self) -> Duration {
        if self.holding_back {
            self.interval.min(HOLDING_BACK_MAX_INTERVAL)
        } else {
            self.interval
        }
    }

    /// What to ask of str0m now, given what the tracks want, if anything.
    pub fn poll(&mut self, now: Instant, desired: Bitrate) -> Option<Attempt> {
        let (estimate, steady) = (self.last_estimate?, self.steady_since?);
        let mut follow_up = false;
        if let Some(t) = self.last.as_mut()
            && t.worked.is_none()
        {
            // One that worked starts the backoff again and is followed at once; one that
            // did not backs off.
            let worked = estimate.0 as f64 >= t.estimate.0 as f64 * (1.0 + ROSE);
            if !worked && now.duration_since(t.at) < VERDICT_AFTER {
                return None;
            }
            t.worked = Some(worked);
            follow_up = worked;
            self.interval = if worked {
                FIRST_INTERVAL
            } else {
                (self.interval * 2).min(MAX_INTERVAL)
            };
        }
        let far_below = (estimate.0 as f64) < desired.0 as f64 * FAR_BELOW;
        self.far_below = far_below;
        let due = follow_up
            || self
                .last
                .is_none_or(|t| now.duration_since(t.at) >= self.interval());
        if !far_below || !due || now.duration_since(steady) < STEADY_FOR {
            return None;
        }
        let attempt = match self.last {
            _ if follow_up => Attempt::Reset(estimate),
            Some(Tried {
                worked: Some(false),
                ..
            }) => Attempt::Reset(estimate),
            _ => {
                self.nudges += 1;
                Attempt::Nudge
            }
        };
        self.last = Some(Tried {
            at: now,
            estimate,
            worked: None,
        });
        Some(attempt)
    }

    /// What to add to the desired bitrate handed to str0m: one bit per second per nudge,
    /// so each nudge is a rise (a few hundred bits per second over a long show at most).
    pub fn offset(&self) -> u64 {
        self.nudges
    }

    /// When [`RecoveryProber::poll`] could next say something. Never a time already past
    /// that `poll` would answer with nothing: the driver sleeps until this, and a past
    /// time it cannot clear makes it spin (it did: a whole core while the estimate was
    /// fine). A rise that judges an attempt early comes with an estimate, which reaches
    /// `poll` through the core's input handling.
    pub fn next_check(&self) -> Option<Instant> {
        let steady = self.steady_since? + STEADY_FOR;
        match self.last {
            Some(t) if t.worked.is_none() => Some(t.at + VERDICT_AFTER),
            _ if !self.far_below => None,
            Some(t) => Some(steady.max(t.at + self.interval())),
            None => Some(steady),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WANT: Bitrate = Bitrate(2_800_000);

    /// Attempts (seconds from `t0`, 'n' for a nudge, 'r' for a reset) over `secs`, polled
    /// every 100 ms, with the estimate given per 100 ms step.
    fn nudges(
        p: &mut RecoveryProber,
        t0: Instant,
        secs: u64,
        est: impl Fn(u64) -> u64,
    ) -> Vec<(f64, char)> {
        let mut at = Vec::new();
        for step in 0..secs * 10 {
            let now = t0 + Duration::from_millis(step * 100);
            p.on_estimate(now, Bitrate(est(step)));
            match p.poll(now, WANT) {
                Some(Attempt::Nudge) => at.push((step as f64 / 10.0, 'n')),
                Some(Attempt::Reset(b)) => {
                    assert_eq!(b.0, est(step), "a reset starts from the estimate");
                    at.push((step as f64 / 10.0, 'r'));
                }
                None => {}
            }
            // The driver sleeps until next_check: a time already past that poll answers
            // with nothing would make it spin.
            assert!(
                p.next_check().is_none_or(|t| t > now),
                "next_check {:?} is not after {:?}",
                p.next_check().map(|t| t - t0),
                now - t0
            );
        }
        at
    }

    /// The attempts as "3n 9r": seconds and kind.
    fn schedule(at: &[(f64, char)]) -> String {
        let at: Vec<String> = at.iter().map(|(t, c)| format!("{t}{c}")).collect();
        at.join(" ")
    }

    #[test]
    fn a_capped_link_is_probed_after_3_s_steady_then_ever_more_rarely() {
        let mut p = RecoveryProber::default();
        let t0 = Instant::now();
        // 300 kbit/s, far below 2.8 Mbit/s, never rising: a nudge once it held 3 s, then
        // resets after 6, 12, 24 and 24 s.
        let at = nudges(&mut p, t0, 80, |_| 300_000);
        assert_eq!(
            at,
            vec![
                (3.0, 'n'),
                (9.0, 'r'),
                (21.0, 'r'),
                (45.0, 'r'),
                (69.0, 'r')
            ]
        );
        assert_eq!(p.offset(), 1);
    }

    #[test]
    fn a_probe_that_lifts_the_estimate_brings_the_short_interval_back() {
        let mut p = RecoveryProber::default();
        let t0 = Instant::now();
        // Capped at 300 kbit/s, then the reset at 21 s finds room up to 600 kbit/s: another
        // reset follows as soon as the estimate shows it (22 s), finds no more, and the
        // backoff starts again from 3 s after it: 6 s to the next, then 12.
        let at = nudges(
            &mut p,
            t0,
            60,
            |step| if step < 220 { 300_000 } else { 600_000 },
        );
        assert_eq!(
            at,
            vec![
                (3.0, 'n'),
                (9.0, 'r'),
                (21.0, 'r'),
                (22.0, 'r'),
                (28.0, 'r'),
                (40.0, 'r')
            ]
        );
    }

    #[test]
    fn a_reset_follows_each_attempt_that_lifts_the_estimate() {
        let mut p = RecoveryProber::default();
        p.set_holding_back(true);
        let t0 = Instant::now();
        // Each attempt doubles the estimate 300 ms later (a lifted cap: the probes find
        // room), from 200 kbit/s up to 1.6 Mbit/s, past half of what is wanted: a reset
        // from the new estimate goes out as soon as each rise shows, not 5 s later.
        let mut est = 200_000;
        let mut rise_at = None;
        let mut at = Vec::new();
        for step in 0..100u64 {
            let now = t0 + Duration::from_millis(step * 100);
            if rise_at == Some(step) {
                est *= 2;
            }
            p.on_estimate(now, Bitrate(est));
            if let Some(a) = p.poll(now, WANT) {
                at.push((step as f64 / 10.0, a));
                rise_at = Some(step + 3);
            }
        }
        assert_eq!(
            at,
            vec![
                (3.0, Attempt::Nudge),
                (3.3, Attempt::Reset(Bitrate(400_000))),
                (3.6, Attempt::Reset(Bitrate(800_000)))
            ]
        );
        assert_eq!(est, 1_600_000);
    }

    #[test]
    fn a_capped_link_that_holds_the_picture_back_is_probed_every_5_s() {
        let mut p = RecoveryProber::default();
        p.set_holding_back(true);
        let t0 = Instant::now();
        // The backoff stops at 5 s: after a cap of any length the next attempt is at most
        // 5 s away.
        let at = nudges(&mut p, t0, 30, |_| 300_000);
        assert_eq!(schedule(&at), "3n 8r 13r 18r 23r 28r");
    }

    #[test]
    fn a_layer_paused_late_shortens_a_long_backoff_at_once() {
        let mut p = RecoveryProber::default();
        let t0 = Instant::now();
        // Backed off to 24 s (attempts at 3, 9, 21 s) while everything watched was sent;
        // at 30 s a layer is paused for the estimate: 5 s have passed since the last
        // attempt, so the next comes at once (not at 45 s), then every 5 s.
        let mut at = nudges(&mut p, t0, 30, |_| 300_000);
        p.set_holding_back(true);
        at.extend(
            nudges(&mut p, t0 + Duration::from_secs(30), 10, |_| 300_000)
                .into_iter()
                .map(|(t, c)| (t + 30.0, c)),
        );
        assert_eq!(schedule(&at), "3n 9r 21r 30r 35r");
    }

    #[test]
    fn a_wavering_estimate_is_steady_and_a_real_fall_is_not() {
        let mut p = RecoveryProber::default();
        let t0 = Instant::now();
        // Down 5-7 % a second, as a capped link's estimate wavers (239, 223, 209, 199):
        // under a fifth below its peak, so the first attempt comes 3 s in as usual.
        let wavering = [239_000, 223_000, 209_000, 199_000];
        let at = nudges(&mut p, t0, 4, |step| wavering[(step / 10) as usize]);
        assert_eq!(at, vec![(3.0, 'n')]);
        // A fall of a quarter below the peak is congestion: the steady time starts again.
        let mut p = RecoveryProber::default();
        let at = nudges(
            &mut p,
            t0,
            6,
            |step| if step < 20 { 240_000 } else { 180_000 },
        );
        assert_eq!(at, vec![(5.0, 'n')]);
    }

    #[test]
    fn no_nudge_while_the_estimate_falls_or_is_near_what_is_wanted() {
        let mut p = RecoveryProber::default();
        let t0 = Instant::now();
        // Falling 15 % a second for 10 s (a fifth below the peak every 2 s): congestion
        // going on, not a stagnant estimate.
        let at = nudges(&mut p, t0, 10, |step| {
            (1_000_000.0 * 0.85f64.powi((step / 10) as i32)) as u64
        });
        assert!(at.is_empty(), "{at:?}");
        // Above half of what is wanted: str0m's own AIMD and probing climb from there.
        let mut p = RecoveryProber::default();
        assert!(nudges(&mut p, t0, 30, |_| 1_500_000).is_empty());
        assert_eq!(p.offset(), 0);
        // Nothing to wake for until an estimate or the want changes.
        assert_eq!(p.next_check(), None);
    }
}
