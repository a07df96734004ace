//! A bounded queue that never blocks the producer: when full, the oldest item is dropped and
//! counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};

/// Producer side of a bounded drop-oldest queue (cheap to clone).
#[derive(Debug)]
pub struct DropOldestQueue<T> {
    tx: Sender<T>,
    // the producer keeps a receiver to evict the oldest item when full
    evict: Receiver<T>,
    dropped: Arc<AtomicU64>,
    capacity: usize,
}

impl<T> Clone for DropOldestQueue<T> {
    fn clone(&self) -> Self {
        DropOldestQueue {
            tx: self.tx.clone(),
            evict: self.evict.clone(),
            dropped: self.dropped.clone(),
            capacity: self.capacity,
        }
    }
}

/// Creates a queue of `capacity` (≥ 1); returns the producer and the consumer's receiver.
pub fn drop_oldest<T>(capacity: usize) -> (DropOldestQueue<T>, Receiver<T>) {
    let capacity = capacity.max(1);
    let (tx, rx) = bounded(capacity);
    (
        DropOldestQueue {
            tx,
            evict: rx.clone(),
            dropped: Arc::new(AtomicU64::new(0)),
            capacity,
        },
        rx,
    )
}

impl<T> DropOldestQueue<T> {
    /// Pushes without blocking; returns how many old items were dropped to make room (0 or more).
    pub fn push(&self, item: T) -> usize {
        let mut item = item;
        let mut dropped = 0;
        loop {
            match self.tx.try_send(item) {
                Ok(()) => return dropped,
                Err(TrySendError::Full(back)) => {
                    item = back;
                    if self.evict.try_recv().is_ok() {
                        dropped += 1;
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                // no consumer left: nothing to keep
                Err(TrySendError::Disconnected(_)) => return dropped,
            }
        }
    }

    /// Drops everything waiting (counted as dropped); returns how many.
    pub fn clear(&self) -> usize {
        let mut n = 0;
        while self.evict.try_recv().is_ok() {
            n += 1;
        }
        self.dropped.fetch_add(n as u64, Ordering::Relaxed);
        n
    }

    /// True when the queue is at its bound.
    pub fn is_full(&self) -> bool {
        self.tx.is_full()
    }

    /// Items dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// A shared handle on the drop counter.
    pub fn dropped_counter(&self) -> Arc<AtomicU64> {
        self.dropped.clone()
    }

    /// Items waiting now.
    pub fn len(&self) -> usize {
        self.tx.len()
    }

    /// True when nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.tx.is_empty()
    }

    /// The bound.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_oldest_and_counts() {
        let (q, rx) = drop_oldest(3);
        for i in 0..10 {
            q.push(i);
        }
        assert_eq!(q.len(), 3);
        assert_eq!(q.dropped(), 7);
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), vec![7, 8, 9]);
    }
}
