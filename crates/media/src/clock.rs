//! The one monotonic media clock of a session.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// A media timestamp: microseconds since the session's [`MediaClock`] started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MediaTime(pub u64);

impl MediaTime {
    /// Time zero (the clock's start).
    pub const ZERO: MediaTime = MediaTime(0);

    /// From microseconds.
    pub const fn from_micros(us: u64) -> Self {
        MediaTime(us)
    }
    /// Microseconds since the clock's start.
    pub const fn as_micros(self) -> u64 {
        self.0
    }
    /// Milliseconds since the clock's start (truncated).
    pub const fn as_millis(self) -> u64 {
        self.0 / 1000
    }
    /// As a [`Duration`] since the clock's start.
    pub const fn as_duration(self) -> Duration {
        Duration::from_micros(self.0)
    }
    /// `self + d`, saturating.
    pub fn plus(self, d: Duration) -> Self {
        MediaTime(self.0.saturating_add(d.as_micros() as u64))
    }
    /// Ticks of a `rate` Hz RTP-style clock (90 000 for video, 48 000 for Opus).
    pub const fn to_ticks(self, rate: u64) -> u64 {
        // split to avoid overflow for long sessions
        (self.0 / 1_000_000) * rate + (self.0 % 1_000_000) * rate / 1_000_000
    }
}

#[derive(Debug)]
enum ClockKind {
    Real(Instant),
    Manual(AtomicU64),
}

/// One monotonic clock per session, shared (cheaply cloned) by every audio and video source,
/// so that audio and video timestamps are comparable.
///
/// [`MediaClock::new`] follows the wall-clock monotonic time ([`Instant`]);
/// [`MediaClock::manual`] only moves when [`MediaClock::advance`] is called (for tests that
/// simulate long stretches of time quickly).
///
/// [`MediaClock::epoch`] is the wall-clock time of media time zero, so that a timestamp can
/// be turned into the wall-clock time it was captured at (`epoch + pts`).
#[derive(Debug, Clone)]
pub struct MediaClock {
    kind: Arc<ClockKind>,
    /// Wall-clock time of media time zero, read together with the start [`Instant`].
    epoch: SystemTime,
}

impl Default for MediaClock {
    fn default() -> Self {
        Self::new()
    }
}

impl MediaClock {
    /// A real clock starting now.
    pub fn new() -> Self {
        // Both readings back to back, so `epoch + now()` tracks the wall clock to within
        // microseconds (until the wall clock itself is stepped).
        let start = Instant::now();
        let epoch = SystemTime::now();
        MediaClock {
            kind: Arc::new(ClockKind::Real(start)),
            epoch,
        }
    }

    /// A manual clock starting at zero; moves only by [`MediaClock::advance`].
    pub fn manual() -> Self {
        MediaClock {
            kind: Arc::new(ClockKind::Manual(AtomicU64::new(0))),
            epoch: SystemTime::now(),
        }
    }

    /// The wall-clock time of media time zero: a sample stamped `t` was captured at
    /// `epoch() + t.as_duration()`. Fixed when the clock is made (shared by clones); for a
    /// manual clock, the time it was made.
    pub fn epoch(&self) -> SystemTime {
        self.epoch
    }

    /// True for a clock made by [`MediaClock::manual`].
    pub fn is_manual(&self) -> bool {
        matches!(*self.kind, ClockKind::Manual(_))
    }

    /// Time since start. Monotonic: never goes backwards.
    pub fn now(&self) -> MediaTime {
        match &*self.kind {
            ClockKind::Real(start) => MediaTime(start.elapsed().as_micros() as u64),
            ClockKind::Manual(t) => MediaTime(t.load(Ordering::Acquire)),
        }
    }

    /// Moves a manual clock forward; no effect on a real clock.
    pub fn advance(&self, d: Duration) {
        if let ClockKind::Manual(t) = &*self.kind {
            t.fetch_add(d.as_micros() as u64, Ordering::AcqRel);
        }
    }

    /// Sleeps until the clock reads at least `t` (a real clock sleeps; a manual clock
    /// waits in short steps for someone to advance it).
    pub fn sleep_until(&self, t: MediaTime) {
        loop {
            let now = self.now();
            if now >= t {
                return;
            }
            match &*self.kind {
                ClockKind::Real(_) => std::thread::sleep(Duration::from_micros(t.0 - now.0)),
                ClockKind::Manual(_) => std::thread::sleep(Duration::from_micros(200)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_clock_is_monotonic_and_shared() {
        let c = MediaClock::new();
        let c2 = c.clone();
        let a = c.now();
        std::thread::sleep(Duration::from_millis(5));
        let b = c2.now();
        assert!(b.0 >= a.0 + 5_000, "{a:?} {b:?}");
    }

    #[test]
    fn epoch_is_the_wall_clock_time_of_media_zero() {
        let before = SystemTime::now();
        let c = MediaClock::new();
        let after = SystemTime::now();
        let epoch = c.epoch();
        assert!(
            before <= epoch && epoch <= after,
            "{before:?} {epoch:?} {after:?}"
        );
        // fixed, and shared by clones
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(c.clone().epoch(), epoch);
        // epoch + now() is the wall clock (within scheduling slack)
        let wall = SystemTime::now();
        let media = epoch + c.now().as_duration();
        let skew = wall.duration_since(media).unwrap_or_else(|e| e.duration());
        assert!(skew < Duration::from_millis(50), "skew {skew:?}");
        // a manual clock's epoch is when it was made
        let before = SystemTime::now();
        let m = MediaClock::manual();
        m.advance(Duration::from_secs(10));
        assert!(m.epoch() >= before && m.epoch() <= SystemTime::now());
    }

    #[test]
    fn manual_clock_advances_only_when_told() {
        let c = MediaClock::manual();
        assert_eq!(c.now(), MediaTime::ZERO);
        c.advance(Duration::from_millis(20));
        assert_eq!(c.now(), MediaTime(20_000));
        assert_eq!(MediaTime(1_500_000).to_ticks(90_000), 135_000);
    }
}
