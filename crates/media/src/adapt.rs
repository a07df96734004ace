//! CPU adaptation of the video encoder, the way libwebrtc degrades a camera stream when the
//! machine cannot keep up: lower the frame rate first (down to 15 fps), then the
//! resolution (¾, then ½ of each layer), and come back one step at a time once the encoder
//! has been idle enough for a while. Pure logic fed with measurements, so it is tested
//! without a loaded machine.
//!
//! The measure is the encoder thread's busy share: wall time spent in `encode` over wall
//! time elapsed. A thread that gets less CPU (other processes, other threads) takes longer
//! per frame, so the share rises with contention as well as with content. A busy share
//! alone steps down only when it lasts (libwebrtc waits for two 5 s checks): a burst of
//! contention from another program is not a machine that cannot keep up. Frames the
//! source queue had to drop because the encoder was still busy are the encoder falling
//! behind already, and count double.

use std::time::{Duration, Instant};

/// The busy share above which a check counts as overuse (libwebrtc's default is 85 %).
pub const OVERUSE_SHARE: f64 = 0.85;
/// The busy share, projected to the next better step, below which a check counts as
/// underuse.
pub const UNDERUSE_SHARE: f64 = 0.70;
/// The lowest frame rate the adapter goes to before it lowers the resolution.
pub const MIN_FPS: f32 = 15.0;
/// How often the busy share is judged.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Consecutive underused checks before stepping up.
const UNDERUSE_CHECKS: u32 = 3;
/// Overuse evidence before stepping down: a busy check counts one, a check with dropped
/// source frames two. Four busy seconds in a row, or two seconds of drops: a compile
/// starting, a key frame burst or a descheduled thread is not a machine that cannot keep up.
const OVERUSE_CHECKS: u32 = 4;
/// A step to a smaller size rebuilds the encoder and sends key frames on every layer, so it
/// wants twice the evidence.
const RESIZE_CHECKS: u32 = 2 * OVERUSE_CHECKS;
/// Time after a step down before any step up, doubled when a step up had to be undone
/// soon after (the encoder oscillated), at most [`MAX_UP_DELAY`].
const FIRST_UP_DELAY: Duration = Duration::from_secs(6);
const MAX_UP_DELAY: Duration = Duration::from_secs(60);

/// One step of degradation: the frame rate to encode at and the scale of every layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adaptation {
    /// frames per second to encode
    pub fps: f32,
    /// scale of every layer's size (1.0, 0.75, 0.5)
    pub scale: f32,
}

/// The steps for a source of `source_fps`, best first: full rate, then about ×0.8, ×⅔,
/// ×½ down to [`MIN_FPS`] (60 → 45, 30, 24, 20, 15; 30 → 24, 20, 15), then ¾ and ½ of
/// the size at [`MIN_FPS`].
pub fn steps(source_fps: f32) -> Vec<Adaptation> {
    let src = source_fps.max(1.0);
    let mut fps: Vec<f32> = vec![src];
    for f in [45.0, 30.0, 24.0, 20.0, MIN_FPS] {
        if f < src - 0.5 {
            fps.push(f);
        }
    }
    let mut out: Vec<Adaptation> = fps
        .into_iter()
        .map(|fps| Adaptation { fps, scale: 1.0 })
        .collect();
    let low = src.min(MIN_FPS);
    for scale in [0.75, 0.5] {
        out.push(Adaptation { fps: low, scale });
    }
    out
}

/// Decides the encoder's frame rate and scale from how busy it is.
#[derive(Debug)]
pub struct CpuAdapter {
    steps: Vec<Adaptation>,
    level: usize,
    window_start: Option<Instant>,
    busy: Duration,
    dropped: u64,
    underused: u32,
    overused: u32,
    last_down: Option<Instant>,
    last_up: Option<Instant>,
    up_delay: Duration,
    downs: u32,
    last_share: f64,
}

impl CpuAdapter {
    /// An adapter for a source of `source_fps`, starting at full rate and size.
    pub fn new(source_fps: f32) -> Self {
        CpuAdapter {
            steps: steps(source_fps),
            level: 0,
            window_start: None,
            busy: Duration::ZERO,
            dropped: 0,
            underused: 0,
            overused: 0,
            last_down: None,
            last_up: None,
            up_delay: FIRST_UP_DELAY,
            downs: 0,
            last_share: 0.0,
        }
    }

    /// The current step.
    pub fn current(&self) -> Adaptation {
        self.steps[self.level]
    }

    /// True while below full rate or size.
    pub fn is_limited(&self) -> bool {
        self.level > 0
    }

    /// How many times the adapter stepped down so far.
    pub fn step_downs(&self) -> u32 {
        self.downs
    }

    /// The busy share of the last completed check window.
    pub fn last_share(&self) -> f64 {
        self.last_share
    }

    /// Records one `encode` call that took `took` (wall time).
    pub fn on_encoded(&mut self, took: Duration, now: Instant) {
        self.window_start.get_or_insert(now);
        self.busy += took;
    }

    /// Records `n` source frames dropped because the encoder was still busy.
    pub fn on_source_dropped(&mut self, n: u64, now: Instant) {
        self.window_start.get_or_insert(now);
        self.dropped += n;
    }

    /// Judges the last window once [`CHECK_INTERVAL`] has passed; returns the new step
    /// when it changes.
    pub fn check(&mut self, now: Instant) -> Option<Adaptation> {
        let start = *self.window_start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        if elapsed < CHECK_INTERVAL {
            return None;
        }
        let share = self.busy.as_secs_f64() / elapsed.as_secs_f64();
        let dropped = self.dropped;
        self.last_share = share;
        self.window_start = Some(now);
        self.busy = Duration::ZERO;
        self.dropped = 0;

        let evidence = if dropped > 0 {
            2
        } else if share > OVERUSE_SHARE {
            1
        } else {
            0
        };
        if evidence > 0 {
            self.underused = 0;
            self.overused += evidence;
            let resize = self
                .steps
                .get(self.level + 1)
                .is_some_and(|next| next.scale < self.steps[self.level].scale);
            let needed = if resize {
                RESIZE_CHECKS
            } else {
                OVERUSE_CHECKS
            };
            if self.overused < needed {
                return None;
            }
            // one step per two windows at most: let the last change show in the figures
            let settled = self
                .last_down
                .is_none_or(|t| now.saturating_duration_since(t) >= 2 * CHECK_INTERVAL);
            if settled && self.level + 1 < self.steps.len() {
                // undone soon after a step up: the machine cannot afford it, wait longer
                if self
                    .last_up
                    .is_some_and(|t| now.saturating_duration_since(t) < 10 * CHECK_INTERVAL)
                {
                    self.up_delay = (self.up_delay * 2).min(MAX_UP_DELAY);
                }
                self.level += 1;
                self.downs += 1;
                self.overused = 0;
                self.last_down = Some(now);
                return Some(self.current());
            }
            return None;
        }
        self.overused = 0;
        if self.level == 0 {
            return None;
        }
        let cur = self.steps[self.level];
        let next = self.steps[self.level - 1];
        // cost grows with frames per second and with pixels
        let cost = (next.fps / cur.fps.max(1.0)) as f64
            * ((next.scale * next.scale) / (cur.scale * cur.scale).max(0.01)) as f64;
        if share * cost < UNDERUSE_SHARE {
            self.underused += 1;
        } else {
            self.underused = 0;
        }
        let waited = self
            .last_down
            .is_none_or(|t| now.saturating_duration_since(t) >= self.up_delay);
        if self.underused >= UNDERUSE_CHECKS && waited {
            self.underused = 0;
            self.level -= 1;
            self.last_up = Some(now);
            return Some(self.current());
        }
        None
    }
}

/// Decimates a source to a lower frame rate evenly (30 → 20 keeps two frames of three),
/// so every layer gets the same, regularly spaced frames.
#[derive(Debug, Clone)]
pub struct FrameRateGate {
    source_fps: f32,
    credit: f32,
}

impl FrameRateGate {
    /// A gate for a source of `source_fps`.
    pub fn new(source_fps: f32) -> Self {
        FrameRateGate {
            source_fps: source_fps.max(1.0),
            credit: 0.0,
        }
    }

    /// Whether to encode the next source frame at `target_fps`.
    pub fn admit(&mut self, target_fps: f32) -> bool {
        let ratio = (target_fps / self.source_fps).clamp(0.0, 1.0);
        if ratio >= 0.999 {
            self.credit = 0.0;
            return true;
        }
        self.credit += ratio;
        if self.credit >= 1.0 - 1e-4 {
            self.credit -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_lower_frame_rate_first_then_size() {
        let s = steps(30.0);
        let fps: Vec<f32> = s.iter().map(|a| a.fps).collect();
        let scale: Vec<f32> = s.iter().map(|a| a.scale).collect();
        assert_eq!(fps, vec![30.0, 24.0, 20.0, 15.0, 15.0, 15.0]);
        assert_eq!(scale, vec![1.0, 1.0, 1.0, 1.0, 0.75, 0.5]);
        let s60: Vec<f32> = steps(60.0).iter().map(|a| a.fps).collect();
        assert_eq!(&s60[..6], &[60.0, 45.0, 30.0, 24.0, 20.0, 15.0]);
        // a 15 fps source only gets smaller
        let s15 = steps(15.0);
        assert_eq!(s15.len(), 3);
        assert!(s15.iter().all(|a| a.fps == 15.0));
    }

    /// Feeds `secs` seconds of frames at the adapter's current rate, each encode taking
    /// `cost_at_full` scaled by the current pixel scale.
    fn run(a: &mut CpuAdapter, t: &mut Instant, secs: u32, cost_ms: f64) -> Vec<Adaptation> {
        let mut changes = Vec::new();
        for _ in 0..secs * 100 {
            // 10 ms ticks; encode whenever a frame is due at the current rate
            *t += Duration::from_millis(10);
            let cur = a.current();
            let per_frame = cost_ms * (cur.scale * cur.scale) as f64;
            // busy share = fps × cost, spread over the ticks
            let busy = per_frame * cur.fps as f64 / 100.0;
            a.on_encoded(Duration::from_secs_f64(busy / 1000.0), *t);
            if let Some(c) = a.check(*t) {
                changes.push(c);
            }
        }
        changes
    }

    #[test]
    fn overload_steps_down_to_a_rate_the_encoder_can_hold_then_recovers() {
        let mut a = CpuAdapter::new(30.0);
        let mut t = Instant::now();
        // idle machine: 10 ms per frame at 30 fps is 30 % busy — nothing happens
        assert!(run(&mut a, &mut t, 5, 10.0).is_empty());
        assert!(!a.is_limited());
        // two busy seconds are not enough
        assert!(run(&mut a, &mut t, 2, 40.0).is_empty());
        assert!(run(&mut a, &mut t, 2, 10.0).is_empty());
        // contention: 40 ms per frame — 120 % at 30 fps, 96 % at 24, 80 % at 20: stop at 20
        let changes = run(&mut a, &mut t, 12, 40.0);
        let fps: Vec<f32> = changes.iter().map(|c| c.fps).collect();
        assert_eq!(fps, vec![24.0, 20.0], "{changes:?}");
        assert!(a.is_limited());
        assert_eq!(a.current().scale, 1.0, "frame rate goes first");
        // heavier: 70 ms — 15 fps is 105 %, so the size goes to ¾ (59 %)
        let changes = run(&mut a, &mut t, 20, 70.0);
        assert_eq!(
            changes.last().copied(),
            Some(Adaptation {
                fps: 15.0,
                scale: 0.75
            }),
            "{changes:?}"
        );
        // load gone: back up one step at a time, size first, to full rate
        let changes = run(&mut a, &mut t, 60, 10.0);
        assert_eq!(changes.first().map(|c| c.scale), Some(1.0), "{changes:?}");
        assert_eq!(
            a.current(),
            Adaptation {
                fps: 30.0,
                scale: 1.0
            }
        );
        assert!(!a.is_limited());
    }

    #[test]
    fn source_drops_count_as_overuse() {
        let mut a = CpuAdapter::new(30.0);
        let mut t = Instant::now();
        a.on_encoded(Duration::from_millis(100), t);
        t += Duration::from_millis(500);
        a.on_source_dropped(3, t);
        assert_eq!(a.check(t), None, "not a full window yet");
        t += Duration::from_millis(600);
        assert_eq!(a.check(t), None, "one overused second is not enough");
        a.on_source_dropped(1, t);
        t += Duration::from_millis(1000);
        assert_eq!(
            a.check(t),
            Some(Adaptation {
                fps: 24.0,
                scale: 1.0
            })
        );
        assert_eq!(a.step_downs(), 1);
    }

    #[test]
    fn gate_keeps_frames_evenly() {
        let mut g = FrameRateGate::new(30.0);
        let kept: Vec<bool> = (0..6).map(|_| g.admit(20.0)).collect();
        assert_eq!(kept.iter().filter(|k| **k).count(), 4);
        assert!(
            kept.windows(3)
                .all(|w| w.iter().filter(|k| **k).count() == 2)
        );
        let mut g = FrameRateGate::new(30.0);
        assert_eq!((0..30).filter(|_| g.admit(15.0)).count(), 15);
        assert_eq!((0..30).filter(|_| g.admit(30.0)).count(), 30);
        assert_eq!((0..30).filter(|_| g.admit(24.0)).count(), 24);
    }
}
