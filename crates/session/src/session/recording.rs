//! Local recording while live: which file, when it starts and stops, and what the screens
//! show of it. The muxing and the disk are `streamit-record`'s; the media threads feed the
//! recording through the [`RecordTap`](crate::media::RecordTap).

use std::path::PathBuf;
use std::sync::Arc;

use streamit_record::{AudioTrack, Recorder, RecordingStatus, VideoCodec, VideoTrack};

use super::Task;
use crate::error::{Result, SessionError};
use crate::media::Codec;
use crate::state::RecordingInfo;

/// libopus's lookahead at 48 kHz (2.5 ms plus 4 ms of delay compensation): what a decoder
/// drops at the start of the file.
const OPUS_PRE_SKIP: u16 = 312;

impl From<RecordingStatus> for RecordingInfo {
    fn from(s: RecordingStatus) -> Self {
        RecordingInfo {
            path: s.path,
            bytes: s.bytes,
            duration: s.duration,
            dropped: s.dropped,
            error: s.error,
        }
    }
}

/// The folder recordings go to when none is configured: `STREAMIT_RECORDINGS_DIR` if set,
/// else "StreamIt Studio" in the user's Videos folder, else the studio's data folder.
pub fn default_recordings_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("STREAMIT_RECORDINGS_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d));
    }
    if let Some(v) = directories::UserDirs::new().and_then(|u| u.video_dir().map(PathBuf::from)) {
        return Some(v.join("StreamIt Studio"));
    }
    directories::ProjectDirs::from("", "", "streamit-studio")
        .map(|p| p.data_dir().join("recordings"))
}

/// Whether `path` can be created as a file (it is left empty; the recording truncates it).
fn writable(path: &std::path::Path) -> Result<()> {
    let refuse =
        |why: String| SessionError::Invalid(format!("cannot record to {}: {why}", path.display()));
    if path.is_dir() {
        return Err(refuse("it is a folder".into()));
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map(drop)
        .map_err(|e| refuse(e.to_string()))
}

impl Task {
    /// Arms or disarms the recording; while live, starts or closes a file at once.
    pub(super) fn set_recording(&mut self, on: bool, to: Option<PathBuf>) -> Result<()> {
        if let Some(path) = to {
            // a named file that cannot be written is refused now, not found out on air
            writable(&path)?;
            self.record_to = Some(path);
        }
        self.state.recording.on = on;
        if self.live.is_some() {
            if on && self.record_tap.get().is_none() {
                self.start_recording()?;
            } else if !on {
                self.stop_recording();
            }
        }
        Ok(())
    }

    /// Starts a file for the stream going out now (called at Go Live when armed).
    pub(super) fn start_recording(&mut self) -> Result<()> {
        let path = self.next_recording_path()?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                SessionError::Invalid(format!(
                    "cannot create the recordings folder {}: {e}",
                    dir.display()
                ))
            })?;
        }
        let video = self.video.as_ref().map(|v| {
            let top = v.layers(self.config.simulcast).last().copied();
            VideoTrack {
                codec: match self.config.codec {
                    Codec::H264 => VideoCodec::H264,
                    Codec::Vp8 => VideoCodec::Vp8,
                },
                width: top.map_or(v.width, |l| l.width),
                height: top.map_or(v.height, |l| l.height),
            }
        });
        let audio = self.audio.as_ref().map(|_| AudioTrack {
            channels: 1,
            pre_skip: OPUS_PRE_SKIP,
        });
        let recorder = Recorder::create(&path, video, audio)
            .map_err(|e| SessionError::Invalid(e.to_string()))?;
        tracing::info!(path = %path.display(), "recording");
        self.state.recording.current = Some(recorder.status().into());
        if let Some(old) = self.record_tap.replace(Some(Arc::new(recorder))) {
            self.recordings.push(old.finish().into());
        }
        Ok(())
    }

    /// Closes the current file (its last fragment written and synced).
    pub(super) fn stop_recording(&mut self) {
        if let Some(r) = self.record_tap.replace(None) {
            let info: RecordingInfo = r.finish().into();
            tracing::info!(
                path = %info.path.display(),
                duration = ?info.duration,
                bytes = info.bytes,
                "recording closed"
            );
            self.recordings.push(info);
        }
        self.state.recording.current = None;
    }

    /// The recordings of the broadcast that ended, for its summary.
    pub(super) fn take_recordings(&mut self) -> Vec<RecordingInfo> {
        self.stop_recording();
        std::mem::take(&mut self.recordings)
    }

    /// The file's size and length for the live screen (each tick).
    pub(super) fn refresh_recording(&mut self) {
        self.state.recording.current = self.record_tap.get().map(|r| r.status().into());
    }

    /// The configured file for the first recording; after that (or without one), a dated
    /// name in the recordings folder, so a second start never overwrites the first.
    fn next_recording_path(&mut self) -> Result<PathBuf> {
        if let Some(p) = self.record_to.take() {
            return Ok(p);
        }
        let dir = self
            .state
            .recording
            .folder
            .clone()
            .ok_or_else(|| SessionError::Invalid("no folder for recordings".into()))?;
        let stamp = chrono::Local::now().format("%Y-%m-%d %H-%M-%S");
        let mut path = dir.join(format!("StreamIt {stamp}.mp4"));
        let mut n = 2;
        while path.exists() {
            path = dir.join(format!("StreamIt {stamp} ({n}).mp4"));
            n += 1;
        }
        Ok(path)
    }
}
