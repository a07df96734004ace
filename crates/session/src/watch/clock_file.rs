//! Where a publisher on this machine leaves its media clock's epoch for `watch`.
//!
//! The synthetic pattern carries capture times on the publisher's media clock (µs since the
//! clock started); turning them into wall-clock times needs that clock's epoch, which only
//! the publishing process knows. Latency from those times is meaningful only when publisher
//! and viewer share one wall clock, i.e. run on one machine — so a small file in the user's
//! runtime directory is enough: `publish` writes it, `watch` reads it for the same room.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClockFile {
    epoch_unix_us: u64,
    pid: u32,
}

/// `$XDG_RUNTIME_DIR/streamit-studio` (per user, cleared at logout), else the temp dir.
fn dir() -> PathBuf {
    std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join("streamit-studio")
}

/// The file for the room `host_id` (the creator's user id); `None` for an id that is not
/// a plain file name.
pub fn path(host_id: &str) -> Option<PathBuf> {
    let ok = !host_id.is_empty()
        && host_id.len() <= 64
        && host_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    ok.then(|| dir().join(format!("media-clock-{host_id}.json")))
}

/// Records this process's media clock epoch for the room `host_id`.
pub fn write(host_id: &str, epoch: SystemTime) -> std::io::Result<PathBuf> {
    let p = path(host_id).ok_or_else(|| std::io::Error::other("unusable room id"))?;
    let epoch_unix_us = epoch
        .duration_since(UNIX_EPOCH)
        .map_err(std::io::Error::other)?
        .as_micros() as u64;
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d)?;
    }
    let body = serde_json::to_vec(&ClockFile {
        epoch_unix_us,
        pid: std::process::id(),
    })
    .map_err(std::io::Error::other)?;
    std::fs::write(&p, body)?;
    Ok(p)
}

/// Removes the file if this process wrote it.
pub fn remove(host_id: &str) {
    if let Some(p) = path(host_id)
        && let Ok(bytes) = std::fs::read(&p)
        && serde_json::from_slice::<ClockFile>(&bytes).is_ok_and(|f| f.pid == std::process::id())
    {
        let _ = std::fs::remove_file(p);
    }
}

/// The epoch a live publisher on this machine recorded for `host_id`; `None` if there is
/// no file, it does not parse, or (where `/proc` tells) its process is gone.
pub fn read(host_id: &str) -> Option<SystemTime> {
    let bytes = std::fs::read(path(host_id)?).ok()?;
    let f: ClockFile = serde_json::from_slice(&bytes).ok()?;
    let proc = std::path::Path::new("/proc");
    if proc.join("self").exists() && !proc.join(f.pid.to_string()).exists() {
        return None;
    }
    Some(UNIX_EPOCH + Duration::from_micros(f.epoch_unix_us))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_room_ids_have_no_file() {
        assert!(path("../etc/passwd").is_none());
        assert!(path("").is_none());
        assert!(path("abc_DEF-123").is_some());
    }

    #[test]
    fn written_epoch_reads_back_and_is_removed_by_its_writer() {
        let id = format!("test-{}-{}", std::process::id(), line!());
        let epoch = UNIX_EPOCH + Duration::from_micros(1_764_000_000_123_456);
        let p = write(&id, epoch).unwrap();
        assert!(p.is_file());
        assert_eq!(read(&id), Some(epoch));
        remove(&id);
        assert!(!p.exists());
        assert_eq!(read(&id), None);
    }
}
