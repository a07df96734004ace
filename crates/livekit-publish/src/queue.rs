//! Bounded media queues between the caller's encoder threads and the driver.
//!
//! Video never blocks the caller: a full queue drops its oldest frame. Each
//! simulcast layer has its own queue, so a layer that is slow to drain (or
//! floods, like a 720p layer on a busy machine) cannot evict another layer's
//! frames, and each layer's drops are counted on their own.

use std::collections::VecDeque;

use crate::types::{EncodedVideo, VideoQuality};

/// A bounded FIFO that drops its oldest item when a push finds it full.
#[derive(Debug)]
pub(crate) struct DropOldest<T> {
    items: VecDeque<T>,
    cap: usize,
    dropped: u64,
}

impl<T> DropOldest<T> {
    /// A queue holding at most `cap` items (at least one).
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            items: VecDeque::new(),
            cap: cap.max(1),
            dropped: 0,
        }
    }

    /// Appends `item`; returns whether the oldest item was dropped for it.
    pub(crate) fn push(&mut self, item: T) -> bool {
        let dropped = self.items.len() >= self.cap;
        if dropped {
            self.items.pop_front();
            self.dropped += 1;
        }
        self.items.push_back(item);
        dropped
    }

    /// Takes everything queued, oldest first.
    pub(crate) fn drain(&mut self) -> Vec<T> {
        self.items.drain(..).collect()
    }

    /// Items dropped so far.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// The video queues of one track: one [`DropOldest`] per layer (`None` for a
/// single-stream track), created on the layer's first frame.
#[derive(Debug)]
pub(crate) struct LayerQueues {
    cap: usize,
    layers: Vec<(Option<VideoQuality>, DropOldest<EncodedVideo>)>,
}

impl LayerQueues {
    /// Queues of `cap` frames per layer.
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap,
            layers: Vec::new(),
        }
    }

    /// Queues `frame` on its layer's queue; returns whether that layer dropped its oldest.
    pub(crate) fn push(&mut self, frame: EncodedVideo) -> bool {
        let layer = frame.layer;
        match self.layers.iter_mut().find(|(l, _)| *l == layer) {
            Some((_, q)) => q.push(frame),
            None => {
                let mut q = DropOldest::new(self.cap);
                let dropped = q.push(frame);
                self.layers.push((layer, q));
                dropped
            }
        }
    }

    /// Takes every queued frame, each layer's oldest first.
    pub(crate) fn drain(&mut self) -> Vec<EncodedVideo> {
        self.layers
            .iter_mut()
            .flat_map(|(_, q)| q.drain())
            .collect()
    }

    /// Frames dropped per layer so far.
    pub(crate) fn dropped(&self) -> Vec<(Option<VideoQuality>, u64)> {
        self.layers.iter().map(|(l, q)| (*l, q.dropped())).collect()
    }

    /// Frames dropped on all layers so far.
    pub(crate) fn dropped_total(&self) -> u64 {
        self.layers.iter().map(|(_, q)| q.dropped()).sum()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn frame(layer: Option<VideoQuality>, n: u64) -> EncodedVideo {
        EncodedVideo {
            layer,
            data: bytes::Bytes::from(n.to_be_bytes().to_vec()),
            keyframe: false,
            timestamp: Duration::from_millis(n * 33),
        }
    }

    fn numbers(frames: &[EncodedVideo]) -> Vec<(Option<VideoQuality>, u64)> {
        frames
            .iter()
            .map(|f| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&f.data);
                (f.layer, u64::from_be_bytes(b))
            })
            .collect()
    }

    #[test]
    fn drop_oldest_keeps_the_newest_cap_items_and_counts_the_rest() {
        let mut q = DropOldest::new(3);
        let dropped: Vec<bool> = (0..5).map(|i| q.push(i)).collect();
        assert_eq!(dropped, vec![false, false, false, true, true]);
        assert_eq!(q.dropped(), 2);
        assert_eq!(q.drain(), vec![2, 3, 4]);
        assert_eq!(q.drain(), Vec::<i32>::new());
        // A zero capacity still holds the newest item.
        let mut one = DropOldest::new(0);
        one.push('a');
        one.push('b');
        assert_eq!((one.drain(), one.dropped()), (vec!['b'], 1));
    }

    #[test]
    fn a_flooding_layer_does_not_evict_another_layers_frames() {
        let (low, high) = (Some(VideoQuality::Low), Some(VideoQuality::High));
        let mut q = LayerQueues::new(2);
        q.push(frame(low, 1));
        // The high layer floods: 10 frames before the driver drains.
        for n in 100..110 {
            q.push(frame(high, n));
        }
        q.push(frame(low, 2));
        let got = numbers(&q.drain());
        assert_eq!(got, vec![(low, 1), (low, 2), (high, 108), (high, 109)]);
        assert_eq!(q.dropped(), vec![(low, 0), (high, 8)]);
        assert_eq!(q.dropped_total(), 8);
        // A third layer gets its own queue too; counts stay per layer.
        let medium = Some(VideoQuality::Medium);
        for n in 0..3 {
            q.push(frame(medium, n));
        }
        assert_eq!(q.dropped(), vec![(low, 0), (high, 8), (medium, 1)]);
        assert_eq!(numbers(&q.drain()), vec![(medium, 1), (medium, 2)]);
    }

    #[test]
    fn a_single_stream_track_has_one_queue() {
        let mut q = LayerQueues::new(8);
        for n in 0..10 {
            q.push(frame(None, n));
        }
        assert_eq!(q.dropped(), vec![(None, 2)]);
        assert_eq!(q.drain().len(), 8);
    }
}
