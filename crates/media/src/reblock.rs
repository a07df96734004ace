//! Fixed frames from audio blocks of any length, for processors that work 10 ms at a time
//! (RNNoise, WebRTC's AudioProcessing). What does not fill a frame waits for the next call,
//! and one frame of silence goes out first, so every call returns as many samples as it was
//! given and the output lags the input by one frame.

use std::collections::VecDeque;

#[derive(Debug)]
pub(crate) struct Reblocker {
    frame: usize,
    /// Input not yet processed (less than a frame).
    pending: Vec<f32>,
    /// Processed output not yet handed out.
    ready: VecDeque<f32>,
}

impl Reblocker {
    pub fn new(frame: usize) -> Self {
        Reblocker {
            frame,
            pending: Vec::with_capacity(frame),
            ready: std::iter::repeat_n(0.0, frame).collect(),
        }
    }

    /// Replaces `samples` (in [-1, 1]) with as many processed ones; `each` processes one
    /// full frame in place.
    pub fn process<E>(
        &mut self,
        samples: &mut [f32],
        mut each: impl FnMut(&mut [f32]) -> Result<(), E>,
    ) -> Result<(), E> {
        for s in samples.iter() {
            self.pending.push(s.clamp(-1.0, 1.0));
            if self.pending.len() == self.frame {
                each(&mut self.pending)?;
                self.ready
                    .extend(self.pending.iter().map(|v| v.clamp(-1.0, 1.0)));
                self.pending.clear();
            }
        }
        for s in samples.iter_mut() {
            *s = self.ready.pop_front().unwrap_or(0.0);
        }
        Ok(())
    }
}
