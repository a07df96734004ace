//! Stream summaries the backend could not take when a stream ended, kept on disk until it
//! can: a creator's figures (frames, bitrate, chat count) are never lost to an outage.
//!
//! One JSON file per session in the spool directory (the studio's data directory), written
//! atomically before delivery is first tried and removed once the backend has the report,
//! so a crash or power loss while retrying loses nothing either.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use streamit_api::SessionStatsReport;

/// Why a spool operation failed (the message names the file).
#[derive(Debug, thiserror::Error)]
#[error("summary spool {path}: {source}")]
pub struct SpoolError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// One undelivered session report and whom it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpooledSummary {
    /// The backend the session lives on; only a session on the same backend delivers it.
    pub api_url: String,
    /// The creator's user id; only that creator's login delivers it.
    pub user_id: String,
    /// The backend's session id the report is for.
    pub session_id: String,
    /// The studio's figures, as `POST /api/stream/sessions/{id}/stats` takes them.
    pub report: SessionStatsReport,
    /// When the stream ended, Unix milliseconds (for the log and the notice).
    pub ended_at_ms: u64,
}

impl SpooledSummary {
    pub fn new(api_url: &str, user_id: &str, session_id: &str, report: SessionStatsReport) -> Self {
        SpooledSummary {
            api_url: api_url.trim_end_matches('/').to_string(),
            user_id: user_id.to_string(),
            session_id: session_id.to_string(),
            report,
            ended_at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
        }
    }

    fn belongs_to(&self, api_url: &str, user_id: &str) -> bool {
        self.api_url == api_url.trim_end_matches('/') && self.user_id == user_id
    }
}

/// The studio's spool: `STREAMIT_SPOOL_DIR` if set, else `spool` in the studio's data
/// directory (`~/.local/share/streamit-studio` on Linux, `%APPDATA%` on Windows,
/// `~/Library/Application Support` on macOS). `None` when the OS gives no home.
pub fn default_dir() -> Option<PathBuf> {
    match std::env::var_os("STREAMIT_SPOOL_DIR") {
        Some(d) if !d.is_empty() => Some(PathBuf::from(d)),
        _ => directories::ProjectDirs::from("", "", "streamit-studio")
            .map(|d| d.data_dir().join("spool")),
    }
}

/// The spool directory.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

impl Spool {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Spool { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `s` (replacing an earlier file for the same session); returns its path.
    pub fn put(&self, s: &SpooledSummary) -> Result<PathBuf, SpoolError> {
        let path = self.dir.join(file_name(&s.session_id));
        let err = |source| SpoolError {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(err)?;
        let json = serde_json::to_vec_pretty(s).map_err(|e| err(e.into()))?;
        // temp file in the same directory, synced, then renamed: a reader sees the old
        // file or the whole new one, never a torn write
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir).map_err(err)?;
        tmp.write_all(&json).map_err(err)?;
        tmp.as_file().sync_all().map_err(err)?;
        tmp.persist(&path).map_err(|e| err(e.error))?;
        Ok(path)
    }

    /// The spooled summaries of `user_id` on `api_url`, oldest first. Files that do not
    /// parse are left where they are (and logged), never deleted.
    pub fn pending(&self, api_url: &str, user_id: &str) -> Vec<(PathBuf, SpooledSummary)> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<(PathBuf, SpooledSummary)> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .filter_map(|p| {
                let bytes = std::fs::read(&p).ok()?;
                match serde_json::from_slice::<SpooledSummary>(&bytes) {
                    Ok(s) => Some((p, s)),
                    Err(e) => {
                        tracing::warn!(path = %p.display(), "unreadable spooled summary: {e}");
                        None
                    }
                }
            })
            .filter(|(_, s)| s.belongs_to(api_url, user_id))
            .collect();
        out.sort_by_key(|(_, s)| s.ended_at_ms);
        out
    }

    /// Removes a delivered summary.
    pub fn remove(&self, path: &Path) -> Result<(), SpoolError> {
        match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(SpoolError {
                path: path.to_path_buf(),
                source,
            }),
        }
    }
}

/// A file name from a session id, whatever the id holds (ids come from the server).
fn file_name(session_id: &str) -> String {
    let safe: String = session_id
        .chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("session-{safe}.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(frames: i64) -> SessionStatsReport {
        SessionStatsReport {
            chat_messages: 3,
            frames_sent: Some(frames),
            frames_dropped: Some(1),
            average_bitrate_bps: Some(1_200_000),
            reconnects: Some(0),
        }
    }

    #[test]
    fn put_then_pending_for_the_owner_only_then_remove() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path().join("spool"));
        assert!(spool.pending("http://a", "u1").is_empty(), "no dir yet");
        let a = SpooledSummary::new("http://a/", "u1", "s-1", report(300));
        let p = spool.put(&a).unwrap();
        assert!(p.ends_with("session-s-1.json"), "{}", p.display());
        // the same session again replaces the file
        let a2 = SpooledSummary::new("http://a", "u1", "s-1", report(301));
        assert_eq!(spool.put(&a2).unwrap(), p);
        spool
            .put(&SpooledSummary::new("http://a", "u2", "s-2", report(5)))
            .unwrap();
        spool
            .put(&SpooledSummary::new("http://b", "u1", "s-3", report(6)))
            .unwrap();
        let mine = spool.pending("http://a", "u1");
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].1.report.frames_sent, Some(301));
        assert_eq!(mine[0].1.api_url, "http://a");
        spool.remove(&mine[0].0).unwrap();
        spool.remove(&mine[0].0).unwrap();
        assert!(spool.pending("http://a", "u1").is_empty());
        assert_eq!(spool.pending("http://a", "u2").len(), 1);
    }

    #[test]
    fn torn_or_foreign_files_are_kept_and_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path());
        std::fs::write(dir.path().join("session-x.json"), b"{\"apiUrl\": ").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"hi").unwrap();
        assert!(spool.pending("http://a", "u1").is_empty());
        assert!(dir.path().join("session-x.json").exists());
    }

    #[test]
    fn hostile_session_ids_stay_inside_the_spool() {
        assert_eq!(
            file_name("../../etc/passwd"),
            "session-______etc_passwd.json"
        );
        assert_eq!(
            file_name(&"a".repeat(500)).len(),
            "session-.json".len() + 100
        );
    }
}
