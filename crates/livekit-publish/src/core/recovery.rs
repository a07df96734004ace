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
//! str0m 0.25 has no "probe now" call. It sends an allocation probe (at twice the
//! estimate) whenever the desired bitrate rises, so the first [`Attempt::Nudge`] raises it
//! by one bit per second. When a nudge did not lift the estimate (str0m refused to probe
//! or the probe failed) the next attempt is a [`Attempt::Reset`]: the estimator starts
//! again from the current estimate with its initial probes, as at the start of a call.
//! This is libwebrtc's rapid-recovery idea (probe after a drop without waiting for ALR).

use std::time::{Duration, Instant};

use crate::types::Bitrate;

/// Time the estimate must have held steady (not fallen) before the first attempt.
const STEADY_FOR: Duration = Duration::from_secs(3);
/// First wait between attempts; doubles after each attempt that did not lift the estimate.
const FIRST_INTERVAL: Duration = Duration::from_secs(3);
/// The longest wait between attempts on a link that really is capped.
const MAX_INTERVAL: Duration = Duration::from_secs(24);
/// Attempt only while the estimate is below this share of what the tracks want.
const FAR_BELOW: f64 = 0.5;
/// A fall of more than this share between two estimates is congestion going on.
const FALL: f64 = 0.05;
/// An attempt worked when the estimate rose by this share within [`VERDICT_AFTER`].
const ROSE: f64 = 0.2;
/// When an attempt's outcome is judged: str0m's probe results are in well within that.
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
    /// Since when the estimate has not fallen.
    steady_since: Option<Instant>,
    /// The last attempt, the estimate then, and its verdict once judged.
    last: Option<Tried>,
    interval: Duration,
    nudges: u64,
    /// The estimate was far below what the tracks wanted at the last poll: only then is
    /// there a time to wake for. Otherwise the next estimate or a new want (both reach
    /// `poll` through the core's input handling) is what can change the answer.
    far_below: bool,
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
            last: None,
            interval: FIRST_INTERVAL,
            nudges: 0,
            far_below: false,
        }
    }
}

impl RecoveryProber {
    /// A new estimate from the BWE.
    pub fn on_estimate(&mut self, now: Instant, estimate: Bitrate) {
        let fell = self
            .last_estimate
            .is_some_and(|last| (estimate.0 as f64) < last.0 as f64 * (1.0 - FALL));
        if fell || self.steady_since.is_none() {
            self.steady_since = Some(now);
        }
        self.last_estimate = Some(estimate);
    }

    /// What to ask of str0m now, given what the tracks want, if anything.
    pub fn poll(&mut self, now: Instant, desired: Bitrate) -> Option<Attempt> {
        let (estimate, steady) = (self.last_estimate?, self.steady_since?);
        if let Some(t) = self.last.as_mut()
            && t.worked.is_none()
            && now.duration_since(t.at) >= VERDICT_AFTER
        {
            // A probe that worked lifts the estimate (and str0m's exponential probing goes
            // on from there); one that did not backs off.
            let worked = estimate.0 as f64 >= t.estimate.0 as f64 * (1.0 + ROSE);
            t.worked = Some(worked);
            self.interval = if worked {
                FIRST_INTERVAL
            } else {
                (self.interval * 2).min(MAX_INTERVAL)
            };
        }
        let far_below = (estimate.0 as f64) < desired.0 as f64 * FAR_BELOW;
        self.far_below = far_below;
        let due = self
            .last
            .is_none_or(|t| t.worked.is_some() && now.duration_since(t.at) >= self.interval);
        if !far_below || !due || now.duration_since(steady) < STEADY_FOR {
            return None;
        }
        let attempt = match self.last {
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
    /// fine).
    pub fn next_check(&self) -> Option<Instant> {
        let steady = self.steady_since? + STEADY_FOR;
        match self.last {
            Some(t) if t.worked.is_none() => Some(t.at + VERDICT_AFTER),
            _ if !self.far_below => None,
            Some(t) => Some(steady.max(t.at + self.interval)),
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
        // Capped at 300 kbit/s, then the reset at 21 s finds room up to 600 kbit/s: the
        // next attempt (a nudge again) comes 3 s after it, and backs off from there.
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
                (24.0, 'n'),
                (30.0, 'r'),
                (42.0, 'r')
            ]
        );
    }

    #[test]
    fn no_nudge_while_the_estimate_falls_or_is_near_what_is_wanted() {
        let mut p = RecoveryProber::default();
        let t0 = Instant::now();
        // Falling 10 % a second for 10 s: congestion going on, not a stagnant estimate.
        let at = nudges(&mut p, t0, 10, |step| {
            (1_000_000.0 * 0.9f64.powi((step / 10) as i32)) as u64
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
