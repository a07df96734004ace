//! Slow mode (`isChatDelayed`): one chat message per viewer per interval. The studio is the
//! creator's agent in the room whenever the stream is live, so it enforces the pace: a
//! message that comes too early is hidden, removed on every client (`deleteMessage`) and
//! answered with a timeout for the rest of the interval, which revokes the viewer's
//! `canPublishData` at the SFU. Pure: the caller passes the time.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What to do with a viewer's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Show and count it; the viewer's interval starts again.
    Accepted,
    /// Too early: hide it; the viewer may send again after `remaining`.
    TooEarly { remaining: Duration },
}

/// The last accepted message per viewer.
#[derive(Debug)]
pub struct SlowMode {
    interval: Duration,
    last: HashMap<String, Instant>,
}

/// Senders remembered before old entries are swept (an entry older than the interval says
/// nothing any more).
const SWEEP_AT: usize = 1024;

impl SlowMode {
    pub fn new(interval: Duration) -> Self {
        SlowMode {
            interval,
            last: HashMap::new(),
        }
    }

    /// Judges a message from `identity` arriving at `now`. Only accepted messages restart
    /// the viewer's interval, so a viewer who keeps sending is not locked out for ever.
    pub fn check(&mut self, identity: &str, now: Instant) -> Pace {
        if let Some(&last) = self.last.get(identity) {
            let since = now.saturating_duration_since(last);
            if since < self.interval {
                return Pace::TooEarly {
                    remaining: self.interval - since,
                };
            }
        }
        if self.last.len() >= SWEEP_AT {
            let interval = self.interval;
            self.last
                .retain(|_, t| now.saturating_duration_since(*t) < interval);
        }
        self.last.insert(identity.to_string(), now);
        Pace::Accepted
    }

    /// Forget everything (slow mode turned off, or a new broadcast).
    pub fn clear(&mut self) {
        self.last.clear();
    }
}

/// Whole seconds of a timeout covering `remaining` (at least 1, as the endpoint wants).
pub fn timeout_secs(remaining: Duration) -> u64 {
    let secs = remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEN: Duration = Duration::from_secs(10);

    #[test]
    fn one_message_per_viewer_per_interval() {
        let t0 = Instant::now();
        let mut s = SlowMode::new(TEN);
        assert_eq!(s.check("bob", t0), Pace::Accepted);
        // Bob again after 3 s: 7 s to go.
        assert_eq!(
            s.check("bob", t0 + Duration::from_secs(3)),
            Pace::TooEarly {
                remaining: Duration::from_secs(7)
            }
        );
        // Another viewer is not held up by Bob.
        assert_eq!(s.check("ana", t0 + Duration::from_secs(3)), Pace::Accepted);
        // The rejected message did not restart Bob's interval: at 10 s he may send again.
        assert_eq!(
            s.check("bob", t0 + Duration::from_millis(9_999)),
            Pace::TooEarly {
                remaining: Duration::from_millis(1)
            }
        );
        assert_eq!(s.check("bob", t0 + TEN), Pace::Accepted);
        // ... and that accepted message starts a new interval.
        assert!(matches!(
            s.check("bob", t0 + TEN + Duration::from_secs(1)),
            Pace::TooEarly { .. }
        ));
        s.clear();
        assert_eq!(
            s.check("bob", t0 + TEN + Duration::from_secs(1)),
            Pace::Accepted
        );
    }

    #[test]
    fn a_clock_going_backwards_is_not_a_violation_forever() {
        let t0 = Instant::now() + Duration::from_secs(60);
        let mut s = SlowMode::new(TEN);
        assert_eq!(s.check("bob", t0), Pace::Accepted);
        // An earlier instant (not possible with Instant, but the caller passes it) counts
        // as no time passed: the full interval remains, never more.
        assert_eq!(
            s.check("bob", t0 - Duration::from_secs(5)),
            Pace::TooEarly { remaining: TEN }
        );
    }

    #[test]
    fn many_senders_are_swept_once_their_interval_is_over() {
        let t0 = Instant::now();
        let mut s = SlowMode::new(TEN);
        for i in 0..SWEEP_AT {
            assert_eq!(s.check(&format!("v{i}"), t0), Pace::Accepted);
        }
        assert_eq!(s.last.len(), SWEEP_AT);
        assert_eq!(s.check("late", t0 + TEN), Pace::Accepted);
        assert_eq!(s.last.len(), 1, "the old entries were swept");
    }

    #[test]
    fn the_timeout_covers_the_rest_of_the_interval_in_whole_seconds() {
        assert_eq!(timeout_secs(Duration::from_secs(7)), 7);
        assert_eq!(timeout_secs(Duration::from_millis(6_200)), 7);
        assert_eq!(timeout_secs(Duration::from_millis(1)), 1);
        assert_eq!(timeout_secs(Duration::ZERO), 1);
    }
}
