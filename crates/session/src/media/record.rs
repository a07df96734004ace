//! Where the media threads hand their encoded output to a local recording, if one runs.
//! The session swaps recordings in and out; the encoder and audio threads only look.

use std::sync::{Arc, RwLock};

use streamit_record::Recorder;

/// The current recording, shared by the session task (which starts and stops it) and the
/// media threads (which feed it).
#[derive(Clone, Default)]
pub(crate) struct RecordTap(Arc<RwLock<Option<Arc<Recorder>>>>);

impl RecordTap {
    pub fn get(&self) -> Option<Arc<Recorder>> {
        self.0.read().ok().and_then(|r| r.clone())
    }

    /// Puts `next` in place; returns the recording it replaces.
    pub fn replace(&self, next: Option<Arc<Recorder>>) -> Option<Arc<Recorder>> {
        match self.0.write() {
            Ok(mut r) => std::mem::replace(&mut *r, next),
            Err(_) => None,
        }
    }
}
