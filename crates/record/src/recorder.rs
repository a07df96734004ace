//! The file side of a recording: a writer thread that owns the [`Muxer`] and the file,
//! fed through a bounded queue so the encoder and audio threads never wait for the disk.
//! Each fragment is appended and synced (`fdatasync`), so what was written survives a
//! crash or a power cut.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::{AudioTrack, Muxer, RecordError, Sample, VideoTrack};

/// Samples the queue holds: about 2 s of 30 fps video plus its audio. A disk slower than
/// that loses samples (counted) rather than stalling the broadcast.
const QUEUE: usize = 192;

enum Item {
    Video(Sample),
    Audio(Sample),
}

/// What the studio shows about a recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingStatus {
    pub path: PathBuf,
    /// Bytes in the file.
    pub bytes: u64,
    /// Media time recorded.
    pub duration: Duration,
    /// Samples lost because the disk fell behind (the video skipped to the next key frame).
    pub dropped: u64,
    /// Why writing stopped, if it did (a full disk, a removed drive).
    pub error: Option<String>,
}

#[derive(Default)]
struct Shared {
    bytes: AtomicU64,
    duration_us: AtomicU64,
    dropped: AtomicU64,
    /// A key frame is needed (the start, or a video frame lost): taken by the encoder.
    keyframe_request: AtomicBool,
    /// Set by a sender that had to drop a video frame; the writer skips to a key frame.
    video_gap: AtomicBool,
    error: Mutex<Option<String>>,
}

/// A recording in progress, shared by the threads that feed it (all methods take `&self`).
/// Dropping it finishes the file, like [`Recorder::finish`].
pub struct Recorder {
    path: PathBuf,
    tx: Mutex<Option<SyncSender<Item>>>,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Recorder {
    /// Creates (or truncates) `path` and starts the writer thread. Nothing is written until
    /// the first video key frame (or, audio only, the first packet).
    pub fn create(
        path: &Path,
        video: Option<VideoTrack>,
        audio: Option<AudioTrack>,
    ) -> Result<Recorder, RecordError> {
        let file = File::create(path).map_err(|source| RecordError::Create {
            path: path.to_path_buf(),
            source,
        })?;
        let (tx, rx) = sync_channel(QUEUE);
        let shared = Arc::new(Shared::default());
        shared
            .keyframe_request
            .store(video.is_some(), Ordering::Relaxed);
        let muxer = Muxer::new(video, audio);
        let (p, s) = (path.to_path_buf(), shared.clone());
        let thread = std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || write_loop(rx, muxer, file, p, s))
            .map_err(RecordError::Thread)?;
        Ok(Recorder {
            path: path.to_path_buf(),
            tx: Mutex::new(Some(tx)),
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues a frame of the recorded video layer; never blocks.
    pub fn video(&self, sample: Sample) {
        if !self.send(Item::Video(sample)) {
            self.shared.video_gap.store(true, Ordering::Release);
            self.shared.keyframe_request.store(true, Ordering::Release);
        }
    }

    /// Queues an Opus packet; never blocks.
    pub fn audio(&self, sample: Sample) {
        self.send(Item::Audio(sample));
    }

    fn send(&self, item: Item) -> bool {
        let Ok(tx) = self.tx.lock() else { return false };
        let Some(tx) = tx.as_ref() else { return false };
        match tx.try_send(item) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Takes a pending key frame request: the file starts with one, and a lost frame
    /// leaves the video undecodable until the next.
    pub fn take_keyframe_request(&self) -> bool {
        self.shared.keyframe_request.swap(false, Ordering::AcqRel)
    }

    pub fn status(&self) -> RecordingStatus {
        let s = &self.shared;
        RecordingStatus {
            path: self.path.clone(),
            bytes: s.bytes.load(Ordering::Relaxed),
            duration: Duration::from_micros(s.duration_us.load(Ordering::Relaxed)),
            dropped: s.dropped.load(Ordering::Relaxed),
            error: s.error.lock().ok().and_then(|e| e.clone()),
        }
    }

    /// Writes what is queued, closes the file and returns its final status. Later samples
    /// are ignored.
    pub fn finish(&self) -> RecordingStatus {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = thread
            && t.join().is_err()
        {
            self.set_error("the recorder thread panicked".into());
        }
        self.status()
    }

    fn set_error(&self, e: String) {
        if let Ok(mut slot) = self.shared.error.lock() {
            slot.get_or_insert(e);
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.finish();
    }
}

fn write_loop(rx: Receiver<Item>, mut muxer: Muxer, mut file: File, path: PathBuf, s: Arc<Shared>) {
    let mut failed = false;
    let mut write = |bytes: Vec<u8>, failed: &mut bool| {
        if bytes.is_empty() || *failed {
            return;
        }
        let r = file.write_all(&bytes).and_then(|()| file.sync_data());
        match r {
            Ok(()) => {
                s.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            }
            Err(source) => {
                *failed = true;
                let e = RecordError::Write {
                    path: path.clone(),
                    source,
                };
                tracing::warn!("{e}");
                if let Ok(mut slot) = s.error.lock() {
                    slot.get_or_insert(e.to_string());
                }
            }
        }
    };
    let mux_error = |e: RecordError, failed: &mut bool| {
        *failed = true;
        tracing::warn!("recording: {e}");
        if let Ok(mut slot) = s.error.lock() {
            slot.get_or_insert(e.to_string());
        }
    };
    while let Ok(item) = rx.recv() {
        if failed {
            continue;
        }
        let out = match item {
            Item::Video(sample) => {
                if s.video_gap.swap(false, Ordering::AcqRel) {
                    muxer.gap();
                }
                muxer.push_video(sample)
            }
            Item::Audio(sample) => muxer.push_audio(sample),
        };
        match out {
            Ok(bytes) => write(bytes, &mut failed),
            Err(e) => mux_error(e, &mut failed),
        }
        s.duration_us
            .store(muxer.duration().as_micros() as u64, Ordering::Relaxed);
    }
    match muxer.finish() {
        Ok(bytes) => write(bytes, &mut failed),
        Err(e) => mux_error(e, &mut failed),
    }
    s.dropped.fetch_add(muxer.skipped(), Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn vp8() -> Option<VideoTrack> {
        Some(VideoTrack {
            codec: crate::VideoCodec::Vp8,
            width: 64,
            height: 36,
        })
    }

    fn frame(ms: u64, keyframe: bool) -> Sample {
        Sample {
            data: Bytes::from(vec![7u8; 500]),
            pts: Duration::from_millis(ms),
            keyframe,
        }
    }

    #[test]
    fn the_file_grows_fragment_by_fragment_and_finishes_with_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.mp4");
        let r = Recorder::create(&path, vp8(), None).unwrap();
        assert!(r.take_keyframe_request(), "the file starts on a key frame");
        assert!(!r.take_keyframe_request());
        for i in 0..100 {
            r.video(frame(i * 33, i % 60 == 0));
        }
        let done = r.finish();
        assert_eq!(done.error, None);
        assert_eq!(done.dropped, 0);
        assert_eq!(done.duration, Duration::from_millis(99 * 33));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), done.bytes);
        assert!(done.bytes > 100 * 500);
        // later samples are ignored, not an error
        r.video(frame(4000, true));
        assert_eq!(r.status().bytes, done.bytes);
    }

    /// A full disk (Linux's /dev/full answers every write with ENOSPC) stops the file with
    /// the reason; the feeding threads never notice.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_full_disk_stops_the_recording_with_the_reason() {
        let r = Recorder::create(Path::new("/dev/full"), vp8(), None).unwrap();
        for i in 0..90 {
            r.video(frame(i * 33, i == 0));
        }
        let done = r.finish();
        let error = done.error.expect("an error");
        assert!(
            error.contains("/dev/full") && error.contains("No space left"),
            "{error}"
        );
        assert_eq!(done.bytes, 0);
    }

    #[test]
    fn a_folder_that_does_not_exist_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("r.mp4");
        let Err(e) = Recorder::create(&path, vp8(), None) else {
            panic!("created");
        };
        assert!(e.to_string().contains("missing/r.mp4"), "{e}");
    }
}
