//! Picture size for the uplink's bitrate, for a single-layer stream: at 200 kbit/s a 720p
//! encoder skips a third of the frames and each key frame takes a second on the link,
//! where 270p sends every frame. libwebrtc starts a stream at the size its start bitrate
//! allows and keeps it there (`MaximumFrameSizeForBitrate`, the single-cast bitrate
//! limits); this does the same while live, from the target bitrate the estimate gives
//! the layer. Simulcast needs none of it: its top layers pause instead.
//!
//! Pure logic fed with targets and times, so it is tested without a network.

use std::time::{Duration, Instant};

/// libwebrtc's default single-layer limits (VP8/H.264): the bitrate a size wants before
/// a stream starts at it, by pixel count. Sizes above the last entry want its bitrate.
const MIN_START_BPS: [(u32, u32); 5] = [
    (320 * 180, 0),
    (480 * 270, 200_000),
    (640 * 360, 300_000),
    (960 * 540, 500_000),
    (1280 * 720, 900_000),
];

/// The scales tried, largest first: 720p → 540p, 360p, 270p, 180p.
const SCALES: [f32; 5] = [1.0, 0.75, 0.5, 0.375, 0.25];
/// No step makes the picture narrower than this.
const MIN_WIDTH: u32 = 160;
/// A size is kept while the target stays above this share of the bitrate it starts at:
/// the gap to 1.0 keeps an estimate that wavers around a limit from switching sizes (each
/// switch costs a key frame).
const KEEP_SHARE: f64 = 0.6;
/// Below this share the step down is taken at once (a cap, not a dip).
const FAR_BELOW_SHARE: f64 = 0.3;
/// How long the target must stay below [`KEEP_SHARE`] before a step down: on a busy
/// machine the estimate dips on loopback too, for 2 s and a little more when a viewer joins
/// (1,253 to 578 kbit/s and back; with 2 s here 720p went to 360p for the 4 s up delay in
/// one of four runs beside two busy loops). libwebrtc's quality scaler also wants a few
/// seconds of evidence before it scales down.
const DOWN_AFTER: Duration = Duration::from_secs(3);
/// How long the target must allow a larger size before a step up: after a cap lifts the
/// estimate climbs for seconds, and each second waited per size is a second longer at a
/// smaller picture (720p came back 9.7 s after a lift with 2 s here).
const UP_AFTER: Duration = Duration::from_secs(1);
/// The least time between a step down and the next step up, doubled when a step up is
/// undone soon after (the size oscillated), at most [`MAX_UP_DELAY`].
const FIRST_UP_DELAY: Duration = Duration::from_secs(4);
const MAX_UP_DELAY: Duration = Duration::from_secs(30);
/// A step down this soon after a step up undoes it: the size oscillated.
const UNDONE_WITHIN: Duration = Duration::from_secs(4);

/// The bitrate a stream of `pixels` per frame wants before it starts at that size.
fn min_start_bps(pixels: u32) -> u32 {
    MIN_START_BPS
        .iter()
        .find(|(px, _)| *px >= pixels)
        .or(MIN_START_BPS.last())
        .map_or(0, |(_, bps)| *bps)
}

/// Chooses the scale of a single-layer stream from its target bitrate.
#[derive(Debug)]
pub struct ResolutionScaler {
    /// (scale, bitrate it starts at), largest first
    rungs: Vec<(f32, u32)>,
    level: usize,
    below_since: Option<Instant>,
    above_since: Option<Instant>,
    last_down: Option<Instant>,
    last_up: Option<Instant>,
    up_delay: Duration,
}

impl ResolutionScaler {
    /// A scaler for a source of `width`×`height`, starting at full size.
    pub fn new(width: u32, height: u32) -> Self {
        let rungs = SCALES
            .iter()
            .enumerate()
            .filter(|(i, s)| *i == 0 || (width as f32 * **s) as u32 >= MIN_WIDTH)
            .map(|(_, s)| {
                let px = (width as f32 * s) as u32 * (height as f32 * s) as u32;
                (*s, min_start_bps(px))
            })
            .collect();
        ResolutionScaler {
            rungs,
            level: 0,
            below_since: None,
            above_since: None,
            last_down: None,
            last_up: None,
            up_delay: FIRST_UP_DELAY,
        }
    }

    /// The current scale of each side.
    pub fn scale(&self) -> f32 {
        self.rungs[self.level].0
    }

    /// True while smaller than the source.
    pub fn is_scaled(&self) -> bool {
        self.level > 0
    }

    /// The largest rung `target_bps` starts.
    fn fitting(&self, target_bps: u32) -> usize {
        self.rungs
            .iter()
            .position(|(_, min)| target_bps >= *min)
            .unwrap_or(self.rungs.len() - 1)
    }

    /// Takes the layer's target at `now`, and whether the encoder's quantiser was low over
    /// the last second (`None` while unknown); returns the new scale when it changes.
    ///
    /// A low quantiser means bits to spare at this size: easy content (a slide, a still
    /// room), so one size up is tried once the target would keep it there, as libwebrtc's
    /// quality scaler goes up when the quantiser is low.
    pub fn update(&mut self, target_bps: u32, low_qp: Option<bool>, now: Instant) -> Option<f32> {
        let mut fit = self.fitting(target_bps);
        if low_qp == Some(true)
            && fit >= self.level
            && self.level > 0
            && f64::from(target_bps) >= f64::from(self.rungs[self.level - 1].1) * KEEP_SHARE
        {
            fit = self.level - 1;
        }
        let keep = f64::from(self.rungs[self.level].1) * KEEP_SHARE;
        if fit > self.level && f64::from(target_bps) < keep {
            self.above_since = None;
            let since = *self.below_since.get_or_insert(now);
            let far = f64::from(target_bps) < f64::from(self.rungs[self.level].1) * FAR_BELOW_SHARE;
            if far || now.saturating_duration_since(since) >= DOWN_AFTER {
                if self
                    .last_up
                    .is_some_and(|t| now.saturating_duration_since(t) < UNDONE_WITHIN)
                {
                    self.up_delay = (self.up_delay * 2).min(MAX_UP_DELAY);
                }
                self.level = fit;
                self.below_since = None;
                self.last_down = Some(now);
                return Some(self.scale());
            }
            return None;
        }
        self.below_since = None;
        if fit < self.level {
            let since = *self.above_since.get_or_insert(now);
            let waited = self
                .last_down
                .is_none_or(|t| now.saturating_duration_since(t) >= self.up_delay);
            if waited && now.saturating_duration_since(since) >= UP_AFTER {
                self.level = fit;
                self.above_since = None;
                self.last_up = Some(now);
                return Some(self.scale());
            }
            return None;
        }
        self.above_since = None;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `target` every 100 ms for `secs`; returns the scales it changed to.
    fn feed(s: &mut ResolutionScaler, t: &mut Instant, target: u32, secs: f32) -> Vec<f32> {
        let mut out = Vec::new();
        for _ in 0..(secs * 10.0).round() as u32 {
            *t += Duration::from_millis(100);
            if let Some(c) = s.update(target, None, *t) {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn the_limits_follow_libwebrtc_single_layer_table() {
        assert_eq!(min_start_bps(1280 * 720), 900_000);
        assert_eq!(
            min_start_bps(1920 * 1080),
            900_000,
            "above 720p: the top entry"
        );
        assert_eq!(min_start_bps(960 * 540), 500_000);
        assert_eq!(
            min_start_bps(640 * 480),
            500_000,
            "between entries: the larger"
        );
        assert_eq!(min_start_bps(320 * 180), 0);
        let s = ResolutionScaler::new(1280, 720);
        let bps: Vec<u32> = s.rungs.iter().map(|r| r.1).collect();
        assert_eq!(bps, vec![900_000, 500_000, 300_000, 200_000, 0]);
        // a small source keeps only the rungs at least 160 pixels wide
        assert_eq!(ResolutionScaler::new(320, 180).rungs.len(), 3);
        // ... and a size that needs no bitrate is never left
        let mut s = ResolutionScaler::new(320, 180);
        assert_eq!(s.update(0, None, Instant::now()), None);
        assert_eq!(ResolutionScaler::new(160, 90).rungs.len(), 1);
    }

    #[test]
    fn a_generous_or_dipping_target_keeps_full_size() {
        let mut s = ResolutionScaler::new(1280, 720);
        let mut t = Instant::now();
        assert!(feed(&mut s, &mut t, 1_700_000, 10.0).is_empty());
        // below what 720p starts at but above what keeps it: stays
        assert!(feed(&mut s, &mut t, 600_000, 10.0).is_empty());
        // a 2.5 s dip below the keep line (a viewer joining a busy machine): stays
        assert!(feed(&mut s, &mut t, 400_000, 2.5).is_empty());
        assert!(feed(&mut s, &mut t, 1_000_000, 5.0).is_empty());
        assert_eq!(s.scale(), 1.0);
        assert!(!s.is_scaled());
    }

    #[test]
    fn a_cap_goes_straight_to_the_size_it_carries_and_the_lift_straight_back() {
        let mut s = ResolutionScaler::new(1280, 720);
        let mut t = Instant::now();
        // far below (under 30 % of 900k): at once, to the largest size 220k starts (270p)
        assert_eq!(feed(&mut s, &mut t, 220_000, 0.1), vec![0.375]);
        assert!(s.is_scaled());
        // a dip to 150k keeps 270p (above 60 % of 200k)
        assert!(feed(&mut s, &mut t, 150_000, 10.0).is_empty());
        // lifted: after the up delay and 1 s of a target that starts 720p, straight back
        let up = feed(&mut s, &mut t, 1_200_000, 5.0);
        assert_eq!(up, vec![1.0]);
        // a sustained fall that is not far below: after 3 s
        let down = feed(&mut s, &mut t, 450_000, 2.9);
        assert!(down.is_empty(), "{down:?}");
        assert_eq!(feed(&mut s, &mut t, 450_000, 0.2), vec![0.5]);
    }

    #[test]
    fn easy_content_goes_one_size_up_where_the_target_would_keep_it() {
        let mut s = ResolutionScaler::new(1280, 720);
        let mut t = Instant::now();
        assert_eq!(feed(&mut s, &mut t, 160_000, 0.1), vec![0.25]);
        // 160k starts only 180p, but keeps 270p (60 % of 200k), and the quantiser is low
        let mut up = Vec::new();
        for _ in 0..60 {
            t += Duration::from_millis(100);
            up.extend(s.update(160_000, Some(true), t));
        }
        assert_eq!(
            up,
            vec![0.375],
            "one size up, not more: 360p needs 180k to keep"
        );
        // hard content (a high quantiser) stays where the table puts it
        let mut s = ResolutionScaler::new(1280, 720);
        assert_eq!(s.update(160_000, Some(false), t), Some(0.25));
        for _ in 0..100 {
            t += Duration::from_millis(100);
            assert_eq!(s.update(160_000, Some(false), t), None);
        }
        // ... and easy content at 270p does not step down at 160k (above 60 % of 200k)
        let mut s = ResolutionScaler::new(1280, 720);
        assert_eq!(s.update(220_000, None, t), Some(0.375));
        for _ in 0..100 {
            t += Duration::from_millis(100);
            assert_eq!(s.update(160_000, Some(true), t), None);
        }
    }

    #[test]
    fn a_size_that_does_not_hold_waits_longer_before_the_next_try() {
        let mut s = ResolutionScaler::new(1280, 720);
        let mut t = Instant::now();
        assert_eq!(feed(&mut s, &mut t, 100_000, 0.1), vec![0.25]);
        // up to 360p after 4 s (the first delay)
        assert_eq!(feed(&mut s, &mut t, 320_000, 4.1), vec![0.5]);
        // undone at once: the next step up waits 8 s
        assert_eq!(feed(&mut s, &mut t, 60_000, 0.1), vec![0.25]);
        assert!(feed(&mut s, &mut t, 320_000, 7.8).is_empty());
        assert_eq!(feed(&mut s, &mut t, 320_000, 0.3), vec![0.5]);
    }
}
