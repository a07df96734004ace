//! Rapid recovery of the bandwidth estimate after the network got better. str0m's
//! estimator climbs back slowly, if at all, once a cap lifts: AIMD is held at 1.5× what
//! the encoder sends while the encoder sends what the estimate allows, and its prober
//! stays quiet while the loss controller or the delay detector still blames the past
//! congestion. Seen after a 300 kbit/s cap: 141 kbit/s held for 20 s on a free link on
//! CI (7-8 fps), and 111-160 kbit/s for 25 s and more here with allocation-probe cues
//! alone. So while the estimate sits far below what the tracks want and has stopped
//! falling, we ask for a probe, with a backoff: a link that really is capped sees a short
//! probe burst every few seconds at first, then every 24 s.
//!
//! While the estimate is what holds the picture back (a watched layer is paused or scaled
//! down for it, which only the session knows: [`RecoveryProber::set_holding_back`]), the
//! backoff stops at 5 s, libwebrtc's ALR probe interval: the wait between attempts is how
//! long a lifted cap goes unnoticed (24 s after a 20 s cap: full size came back 10.7 s
//! after the lift on CI). While everything watched is sent the long backoff stays: a
//! static picture sends far less than the estimate allows, str0m holds the estimate at
//! 1.5× that, so it looks "far below" for the whole show.
//!
//! str0m 0.25 has no "probe now" call, so an attempt is a reset: the estimator starts
//! again from the current target with its initial probes (3× and 6× it), as at the start
//! of a call. (A rise of the desired bitrate by a bit per second, str0m's cue for an
//! allocation probe, lifted the estimate in none of 13 runs of the network tests and
//! benchmark: str0m does not probe while its loss controller limits the estimate, which
//! is when the estimate sits flat. Each cost the 5 s until the reset.) An attempt that
//! lifted the estimate to [`LIFTED`] times its start shows the link has room, so a reset
//! follows at once: its probes reach the room in one step, where str0m's own climb took
//! 5 s on a busy machine (458, 524, 1058, 3083 kbit/s).
//!
//! **A probe's result is not trusted until it shows real room.** On a link that stays
//! capped, a probe still lifts the estimate to the link's rate, above what the link
//! carries beside audio and headers (184 → ~300 kbit/s at a 300 kbit/s cap); followed at
//! once, that filled the link's queue, took a capped picture down to 7-16 frames in the
//! second of each probe and once collapsed the estimate to 40 kbit/s. So after an attempt
//! on a link thought capped (not a follow-up) the target the encoders get
//! ([`RecoveryProber::target`]) stays at the estimate the attempt started from, until the
//! estimate reaches [`LIFTED`] times it (room the cap could not have shown, unless it is
//! also over [`OVER_CARRIED`] times what the receiver reports lately showed the link
//! carry), or after [`VERDICT_AFTER`] climbs at most 8 % a second, as libwebrtc's
//! multiplicative increase does, until str0m's own estimate is below it again.
//! This is libwebrtc's rapid-recovery idea (probe after a drop without waiting for ALR).
//!
//! **str0m can also walk down on a link with room.** Each delay overuse sets its estimate
//! to 0.85× the acknowledged rate, and that is what the encoder sent, often less than the
//! estimate allowed; after a 1.5 Mbit/s start into a 300 kbit/s cap it came down from
//! 164 to 74 kbit/s over 5 s and sat there 8 s while the link carried 300 (180p skipping
//! frames). libwebrtc bounds such a cut by the link capacity it has seen. Here the
//! overload guard's ceiling, as it ends, is what the receiver reports showed the link
//! carry ([`RecoveryProber::on_carried`]): an estimate that falls under [`UNDER_CARRIED`]
//! of it within [`CARRIED_FOR`] restarts str0m from it at once, without the steady wait,
//! an attempt like any other (its target held there until str0m shows more).

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
/// An attempt found room once the estimate reached this multiple of where it started: a
/// probe on a link that stays capped lifts it to the link's rate, 1.3-1.6× the estimate
/// the link settled at; one on a free link to its probes' 3×/6× rate.
pub(super) const LIFTED: f64 = 1.8;
/// When an attempt that has not lifted the estimate is judged to have failed: str0m's
/// probe results are in well within that. Until then its target stays where it started.
const VERDICT_AFTER: Duration = Duration::from_secs(2);
/// After the verdict an unproven target climbs by this factor a step (8 % a second).
const RAMP: f64 = 1.04;
const RAMP_STEP: Duration = Duration::from_millis(500);
/// What the link carried lately counts this long (see the module doc).
const CARRIED_FOR: Duration = Duration::from_secs(20);
/// An estimate under this share of what the link carried lately has walked down too far.
const UNDER_CARRIED: f64 = 0.6;
/// An estimate over this multiple of what the link carried lately has not come down yet
/// (see [`RecoveryProber::poll`]); at a 300 kbit/s cap str0m's settled 1.2-1.7x over it.
/// Nor has a probe that lifts it there found room: at a 100 kbit/s cap, 7.7 s after the
/// reports showed 47 kbit/s carried, an attempt from 76 kbit/s lifted the estimate to
/// 141; trusted, the target followed, the link's queue filled, and the picture stood 3.2 s.
const OVER_CARRIED: f64 = 2.0;

/// Decides when to ask str0m for a probe, and how far to trust what a probe found; fed
/// with estimates and time, no clock of its own.
#[derive(Debug)]
pub(super) struct RecoveryProber {
    last_estimate: Option<Bitrate>,
    /// Since when the estimate has not fallen, and its highest value since.
    steady_since: Option<Instant>,
    steady_peak: Bitrate,
    /// The last attempt, the target then, and its verdict once judged.
    last: Option<Tried>,
    /// The last attempt's target still caps what the encoders get (see the module doc).
    capping: bool,
    interval: Duration,
    /// The estimate was far below what the tracks wanted at the last poll: only then is
    /// there a time to wake for. Otherwise the next estimate or a new want (both reach
    /// `poll` through the core's input handling) is what can change the answer.
    far_below: bool,
    /// The estimate is what holds the picture back (see the module doc).
    holding_back: bool,
    /// When `poll` last ran: the ceiling's next step is after it.
    polled: Option<Instant>,
    /// What the receiver reports showed the link carry lately, and when.
    carried: Option<(Bitrate, Instant)>,
}

#[derive(Debug, Clone, Copy)]
struct Tried {
    at: Instant,
    from: Bitrate,
    worked: Option<bool>,
}

impl Default for RecoveryProber {
    fn default() -> Self {
        Self {
            last_estimate: None,
            steady_since: None,
            steady_peak: Bitrate(0),
            last: None,
            capping: false,
            interval: FIRST_INTERVAL,
            far_below: false,
            holding_back: false,
            polled: None,
            carried: None,
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
        self.settle(now);
    }

    /// An attempt's target stops capping once the estimate shows room, or, after the
    /// verdict, once the estimate is back under the climbing ceiling.
    fn settle(&mut self, now: Instant) {
        if let (Some(t), Some(estimate)) = (self.last, self.last_estimate)
            && self.capping
            && (self.found_room(t, now)
                || now >= t.at + VERDICT_AFTER && estimate <= self.ceiling(t, now))
        {
            self.capping = false;
        }
    }

    /// The receiver reports showed the link carry `rate` (the overload guard's ceiling as
    /// it ended): str0m's estimate should not fall far under it soon after, nor be
    /// restarted from far over it. Unless the estimate is under it already: then str0m's
    /// own feedback has told it more than the reports did. At a 100 kbit/s cap's onset a
    /// ceiling set half a second in, on a report that still covered the seconds before,
    /// held 227 kbit/s; it ended as the estimate fell to 127, and a restart from 227 at
    /// once sent probes at 0.7 and 1.4 Mbit/s into the link.
    pub fn on_carried(&mut self, now: Instant, rate: Bitrate) {
        if self
            .last_estimate
            .is_some_and(|e| under_carried(e, rate.0 as f64))
        {
            return;
        }
        self.carried = Some((rate, now));
    }

    /// Whether the estimate is what holds the picture back now: a layer someone watches is
    /// paused, or a single layer scaled down, because the estimate cannot carry it.
    pub fn set_holding_back(&mut self, yes: bool) {
        self.holding_back = yes;
    }

    /// What the encoders may spend now: the estimate, or less while the last attempt's
    /// result is unproven (see the module doc).
    pub fn target(&self, now: Instant) -> Option<Bitrate> {
        let estimate = self.last_estimate?;
        Some(match self.last {
            Some(t) if self.capping => estimate.min(self.ceiling(t, now)),
            _ => estimate,
        })
    }

    /// The estimate reached [`LIFTED`] times where the attempt started, and not over
    /// what the link carried lately (see [`OVER_CARRIED`]).
    fn found_room(&self, t: Tried, now: Instant) -> bool {
        self.last_estimate
            .is_some_and(|e| e.0 as f64 >= t.from.0 as f64 * LIFTED && !self.over_carried(now, e))
    }

    /// What the receiver reports showed the link carry, if lately.
    fn carried(&self, now: Instant) -> Option<f64> {
        self.carried
            .filter(|(_, at)| now.duration_since(*at) <= CARRIED_FOR)
            .map(|(rate, _)| rate.0 as f64)
    }

    /// `estimate` is over what the link carried lately: not come down yet, or a probe's
    /// result the link did not show.
    fn over_carried(&self, now: Instant, estimate: Bitrate) -> bool {
        self.carried(now)
            .is_some_and(|c| estimate.0 as f64 > c * OVER_CARRIED)
    }

    /// The most an unproven attempt's target may be at `now`.
    fn ceiling(&self, t: Tried, now: Instant) -> Bitrate {
        let steps = ramp_steps(t, now).min(100) as i32;
        Bitrate((t.from.0 as f64 * RAMP.powi(steps)) as u64)
    }

    /// The wait after the last attempt.
    fn interval(&self) -> Duration {
        if self.holding_back {
            self.interval.min(HOLDING_BACK_MAX_INTERVAL)
        } else {
            self.interval
        }
    }

    /// Whether to start str0m's estimator again now, given what the tracks want and
    /// whether the overload guard holds the target under the estimate, and from what
    /// estimate. While it holds one, or lately ended one at under half the estimate, the
    /// estimate is over what the link carries, not stuck under it: a restart from it put
    /// str0m's probes at 3x and 6x of 190 kbit/s into a 100 kbit/s link on CI (the guard's
    /// ceiling was 43 kbit/s), and the picture stood 3.7 s.
    pub fn poll(&mut self, now: Instant, desired: Bitrate, overloaded: bool) -> Option<Bitrate> {
        self.polled = Some(now);
        self.settle(now);
        let (estimate, steady) = (self.last_estimate?, self.steady_since?);
        let mut follow_up = false;
        if let Some(t) = self.last
            && t.worked.is_none()
        {
            // One that found room starts the backoff again and is followed at once; one
            // that did not backs off.
            let worked = self.found_room(t, now);
            if !worked && now.duration_since(t.at) < VERDICT_AFTER {
                return None;
            }
            self.last = Some(Tried {
                worked: Some(worked),
                ..t
            });
            follow_up = worked;
            self.interval = if worked {
                FIRST_INTERVAL
            } else {
                (self.interval * 2).min(MAX_INTERVAL)
            };
        }
        let carried = self.carried(now);
        let far_below = !overloaded
            && !self.over_carried(now, estimate)
            && (estimate.0 as f64) < desired.0 as f64 * FAR_BELOW;
        self.far_below = far_below;
        // Walked down under what the link carried: at once, from that (used once).
        let walked_down = carried.filter(|&rate| far_below && under_carried(estimate, rate));
        let from = if let Some(rate) = walked_down {
            self.carried = None;
            Bitrate(rate as u64)
        } else {
            let due = follow_up
                || self
                    .last
                    .is_none_or(|t| now.duration_since(t.at) >= self.interval());
            if !far_below || !due || now.duration_since(steady) < STEADY_FOR {
                return None;
            }
            // From what the encoders were given, not from a probe's unproven result.
            self.target(now).unwrap_or(estimate)
        };
        self.last = Some(Tried {
            at: now,
            from,
            worked: None,
        });
        // A follow-up comes after room was shown: nothing to hold back.
        self.capping = walked_down.is_some() || !follow_up;
        Some(from)
    }

    /// When [`RecoveryProber::poll`] could next say something, or an unproven target
    /// could next climb. Never a time already past that would change nothing: the driver
    /// sleeps until this, and a past time it cannot clear makes it spin (it did: a whole
    /// core while the estimate was fine). A rise that judges an attempt early comes with
    /// an estimate, which reaches `poll` through the core's input handling.
    pub fn next_check(&self) -> Option<Instant> {
        let steady = self.steady_since? + STEADY_FOR;
        let probe = match self.last {
            Some(t) if t.worked.is_none() => Some(t.at + VERDICT_AFTER),
            _ if !self.far_below => None,
            Some(t) => Some(steady.max(t.at + self.interval())),
            None => Some(steady),
        };
        // The ceiling's next step after the last poll.
        let climb = self.last.filter(|_| self.capping).map(|t| {
            let start = t.at + VERDICT_AFTER;
            match self.polled {
                Some(p) if p >= start => start + RAMP_STEP * ramp_steps(t, p).saturating_add(1),
                _ => start,
            }
        });
        [probe, climb].into_iter().flatten().min()
    }
}

/// `estimate` is under [`UNDER_CARRIED`] of what the link carried, `rate`.
fn under_carried(estimate: Bitrate, rate: f64) -> bool {
    (estimate.0 as f64) < rate * UNDER_CARRIED
}

/// How many [`RAMP_STEP`]s an unproven attempt's ceiling has climbed by `now`.
fn ramp_steps(t: Tried, now: Instant) -> u32 {
    let ramping = now.saturating_duration_since(t.at + VERDICT_AFTER);
    u32::try_from(ramping.as_nanos() / RAMP_STEP.as_nanos()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WANT: Bitrate = Bitrate(2_800_000);

    /// Attempts (seconds from `t0`, 'r' for a reset) over `secs`, polled every 100 ms,
    /// with the estimate given per 100 ms step.
    fn attempts(
        p: &mut RecoveryProber,
        t0: Instant,
        secs: u64,
        est: impl Fn(u64) -> u64,
    ) -> Vec<(f64, char)> {
        let mut at = Vec::new();
        for step in 0..secs * 10 {
            let now = t0 + Duration::from_millis(step * 100);
            p.on_estimate(now, Bitrate(est(step)));
            assert!(
                p.target(now) <= Some(Bitrate(est(step))),
                "above the estimate"
            );
            if let Some(b) = p.poll(now, WANT, false) {
                assert_eq!(Some(b), p.target(now), "a reset starts from the target");
                at.push((step as f64 / 10.0, 'r'));
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
        // 300 kbit/s, far below 2.8 Mbit/s, never rising: a reset once it held 3 s, then
        // after 6, 12, 24 and 24 s.
        let at = attempts(&mut p, t0, 80, |_| 300_000);
        assert_eq!(
            at,
            vec![
                (3.0, 'r'),
                (9.0, 'r'),
                (21.0, 'r'),
                (45.0, 'r'),
                (69.0, 'r')
            ]
        );
    }

    #[test]
    fn a_probe_that_lifts_the_estimate_brings_the_short_interval_back() {
        let mut p = RecoveryProber::default();
        let t0 = Instant::now();
        // Capped at 300 kbit/s, then the reset at 21 s finds room up to 600 kbit/s: another
        // reset follows as soon as the estimate shows it (22 s), finds no more, and the
        // backoff starts again from 3 s after it: 6 s to the next, then 12.
        let at = attempts(
            &mut p,
            t0,
            60,
            |step| if step < 220 { 300_000 } else { 600_000 },
        );
        assert_eq!(
            at,
            vec![
                (3.0, 'r'),
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
            if let Some(a) = p.poll(now, WANT, false) {
                at.push((step as f64 / 10.0, a));
                rise_at = Some(step + 3);
            }
        }
        assert_eq!(
            at,
            vec![
                (3.0, Bitrate(200_000)),
                (3.3, Bitrate(400_000)),
                (3.6, Bitrate(800_000))
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
        let at = attempts(&mut p, t0, 30, |_| 300_000);
        assert_eq!(schedule(&at), "3r 8r 13r 18r 23r 28r");
    }

    #[test]
    fn a_layer_paused_late_shortens_a_long_backoff_at_once() {
        let mut p = RecoveryProber::default();
        let t0 = Instant::now();
        // Backed off to 24 s (attempts at 3, 9, 21 s) while everything watched was sent;
        // at 30 s a layer is paused for the estimate: 5 s have passed since the last
        // attempt, so the next comes at once (not at 45 s), then every 5 s.
        let mut at = attempts(&mut p, t0, 30, |_| 300_000);
        p.set_holding_back(true);
        at.extend(
            attempts(&mut p, t0 + Duration::from_secs(30), 10, |_| 300_000)
                .into_iter()
                .map(|(t, c)| (t + 30.0, c)),
        );
        assert_eq!(schedule(&at), "3r 9r 21r 30r 35r");
    }

    #[test]
    fn a_wavering_estimate_is_steady_and_a_real_fall_is_not() {
        let mut p = RecoveryProber::default();
        let t0 = Instant::now();
        // Down 5-7 % a second, as a capped link's estimate wavers (239, 223, 209, 199):
        // under a fifth below its peak, so the first attempt comes 3 s in as usual.
        let wavering = [239_000, 223_000, 209_000, 199_000];
        let at = attempts(&mut p, t0, 4, |step| wavering[(step / 10) as usize]);
        assert_eq!(at, vec![(3.0, 'r')]);
        // A fall of a quarter below the peak is congestion: the steady time starts again.
        let mut p = RecoveryProber::default();
        let at = attempts(
            &mut p,
            t0,
            6,
            |step| if step < 20 { 240_000 } else { 180_000 },
        );
        assert_eq!(at, vec![(5.0, 'r')]);
    }

    #[test]
    fn no_attempt_while_the_estimate_falls_or_is_near_what_is_wanted() {
        let mut p = RecoveryProber::default();
        let t0 = Instant::now();
        // Falling 15 % a second for 10 s (a fifth below the peak every 2 s): congestion
        // going on, not a stagnant estimate.
        let at = attempts(&mut p, t0, 10, |step| {
            (1_000_000.0 * 0.85f64.powi((step / 10) as i32)) as u64
        });
        assert!(at.is_empty(), "{at:?}");
        // Above half of what is wanted: str0m's own AIMD and probing climb from there.
        let mut p = RecoveryProber::default();
        assert!(attempts(&mut p, t0, 30, |_| 1_500_000).is_empty());
        // Nothing to wake for until an estimate or the want changes.
        assert_eq!(p.next_check(), None);
    }

    /// Settled at 184 kbit/s under a 300 kbit/s cap, and reset 3 s in; with the time `ms`
    /// after the start.
    fn reset_under_a_cap() -> (RecoveryProber, impl Fn(u64) -> Instant) {
        let mut p = RecoveryProber::default();
        let t0 = Instant::now();
        let at = move |ms: u64| t0 + Duration::from_millis(ms);
        p.on_estimate(at(0), Bitrate(184_000));
        assert_eq!(p.poll(at(3000), WANT, false), Some(Bitrate(184_000)));
        (p, at)
    }

    #[test]
    fn a_probe_on_a_capped_link_is_not_followed_until_the_link_carries_it() {
        // The reset's probes lift the estimate to the link's rate (1.6x): not room the
        // cap could not have shown.
        let (mut p, at) = reset_under_a_cap();
        p.on_estimate(at(3300), Bitrate(300_000));
        assert_eq!(p.target(at(3300)), Some(Bitrate(184_000)));
        assert_eq!(p.poll(at(4900), WANT, false), None);
        assert_eq!(p.target(at(4900)), Some(Bitrate(184_000)));
        // After the verdict the target climbs 4 % a half second, waking the driver for it.
        assert_eq!(p.poll(at(5000), WANT, false), None);
        assert_eq!(p.next_check(), Some(at(5500)));
        assert_eq!(p.target(at(5500)), Some(Bitrate(191_360)));
        assert_eq!(p.target(at(6000)), Some(Bitrate(199_014)));
        // The next attempt (6 s after the failed one) starts from the target.
        let ceiling = p.target(at(9000)).map(|b| b.0).unwrap_or(0);
        assert_eq!(p.poll(at(9000), WANT, false), Some(Bitrate(ceiling)));
        assert!((250_000..255_000).contains(&ceiling), "{ceiling}");
        // Delay on the full link takes str0m's estimate under the ceiling: followed again.
        p.on_estimate(at(11_500), Bitrate(240_000));
        p.poll(at(11_500), WANT, false);
        assert_eq!(p.target(at(11_500)), Some(Bitrate(240_000)));
        p.on_estimate(at(11_600), Bitrate(320_000));
        assert_eq!(p.target(at(11_600)), Some(Bitrate(320_000)));
        assert_eq!(p.next_check(), Some(at(21_000)), "no climb to wake for");
    }

    #[test]
    fn a_probe_that_finds_room_is_followed_at_once() {
        let (mut p, at) = reset_under_a_cap();
        // Twice the start: more than a 300 kbit/s cap could show.
        p.on_estimate(at(3300), Bitrate(368_000));
        assert_eq!(p.target(at(3300)), Some(Bitrate(368_000)));
        assert_eq!(p.poll(at(3300), WANT, false), Some(Bitrate(368_000)));
        // The reset that follows has shown room already: its probes' result is followed
        // as soon as it comes, whatever it is.
        p.on_estimate(at(3500), Bitrate(600_000));
        assert_eq!(p.target(at(3500)), Some(Bitrate(600_000)));
    }

    #[test]
    fn an_estimate_that_walks_down_under_what_the_link_carried_restarts_from_it() {
        let mut p = RecoveryProber::default();
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        p.on_estimate(at(0), Bitrate(164_000));
        p.on_carried(at(0), Bitrate(163_000));
        // 164 -> 74 kbit/s over 5 s, falling all along (no steady wait would end).
        let mut attempts = Vec::new();
        for step in 1..=50u64 {
            let est = 164_000 - step * 1_800;
            p.on_estimate(at(step * 100), Bitrate(est));
            if let Some(a) = p.poll(at(step * 100), WANT, false) {
                attempts.push((step, est, a));
            }
        }
        // Once under 60 % of it (97.8 kbit/s), and only once.
        assert_eq!(attempts, vec![(37, 97_400, Bitrate(163_000))]);
        // str0m starts again from it: the target is that, held there until it shows room.
        p.on_estimate(at(3_800), Bitrate(163_000));
        assert_eq!(p.target(at(3_800)), Some(Bitrate(163_000)));
        p.on_estimate(at(3_900), Bitrate(250_000));
        assert_eq!(p.target(at(3_900)), Some(Bitrate(163_000)));
    }

    #[test]
    fn a_lift_over_what_the_link_carried_lately_is_not_room() {
        let mut p = RecoveryProber::default();
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        // The reports showed 47 kbit/s carried; the estimate settled at 76, under twice
        // that, so an attempt goes out 3 s later.
        p.on_carried(at(0), Bitrate(47_000));
        p.on_estimate(at(0), Bitrate(76_000));
        assert_eq!(p.poll(at(3_000), WANT, false), Some(Bitrate(76_000)));
        // Its probes lift the estimate to 141 (1.86x): not followed, not trusted.
        p.on_estimate(at(3_300), Bitrate(141_000));
        assert_eq!(p.poll(at(3_300), WANT, false), None);
        assert_eq!(p.target(at(3_300)), Some(Bitrate(76_000)));
        // Judged a failure: the next attempt backs off (6 s), from the held target.
        p.on_estimate(at(5_000), Bitrate(76_000));
        assert_eq!(p.poll(at(5_000), WANT, false), None);
        assert_eq!(p.poll(at(8_900), WANT, false), None);
        assert_eq!(p.poll(at(9_000), WANT, false), Some(Bitrate(76_000)));
        // The same lift with nothing carried lately is room, followed at once.
        let mut p = RecoveryProber::default();
        p.on_estimate(at(0), Bitrate(76_000));
        assert_eq!(p.poll(at(3_000), WANT, false), Some(Bitrate(76_000)));
        p.on_estimate(at(3_300), Bitrate(141_000));
        assert_eq!(p.target(at(3_300)), Some(Bitrate(141_000)));
        assert_eq!(p.poll(at(3_300), WANT, false), Some(Bitrate(141_000)));
    }

    #[test]
    fn what_the_link_carried_over_an_estimate_already_under_it_is_old_news() {
        let mut p = RecoveryProber::default();
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        // The ceiling ends at 227 kbit/s because str0m fell to 127, under it.
        p.on_estimate(at(0), Bitrate(127_000));
        p.on_carried(at(0), Bitrate(227_000));
        assert_eq!(p.poll(at(0), WANT, false), None, "no restart from 227");
        // Nor does it hold back a later attempt's lift.
        assert_eq!(p.poll(at(3_000), WANT, false), Some(Bitrate(127_000)));
        p.on_estimate(at(3_300), Bitrate(600_000));
        assert_eq!(p.target(at(3_300)), Some(Bitrate(600_000)));
    }

    #[test]
    fn what_the_link_carried_long_ago_or_an_estimate_near_it_changes_nothing() {
        let mut p = RecoveryProber::default();
        let t0 = Instant::now();
        let at = |s| t0 + Duration::from_secs(s);
        p.on_carried(at(0), Bitrate(163_000));
        p.on_estimate(at(0), Bitrate(120_000));
        assert_eq!(p.poll(at(0), WANT, false), None, "74 % of it");
        p.on_estimate(at(21), Bitrate(70_000));
        assert_eq!(p.poll(at(21), WANT, false), None, "21 s later");
    }

    #[test]
    fn no_restart_while_the_estimate_is_over_what_the_link_carries() {
        let mut p = RecoveryProber::default();
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        // 190 kbit/s, far below what is wanted and steady: while the overload guard holds
        // a ceiling (5 s), then for 20 s after it ended at 43 kbit/s, no attempt.
        for step in 0..=250u64 {
            let now = at(step * 100);
            p.on_estimate(now, Bitrate(190_000));
            if step == 50 {
                p.on_carried(now, Bitrate(43_000));
            }
            assert_eq!(p.poll(now, WANT, step < 50), None, "at {step}");
            assert!(
                p.next_check().is_none_or(|t| t > now),
                "a past wake-up at {step}"
            );
        }
        // Over 20 s after it ended, what it carried is old news.
        p.on_estimate(at(25_100), Bitrate(190_000));
        assert_eq!(p.poll(at(25_100), WANT, false), Some(Bitrate(190_000)));
    }
}
