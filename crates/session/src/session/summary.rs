//! The end of a broadcast on the backend: end-stream and the studio's figures (chat count,
//! frames, bitrate, reconnects), retried with backoff while the backend is unreachable,
//! and spooled to disk first so that neither an outage nor a crash while retrying loses
//! them. Spooled figures are delivered after the next login to the same backend.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use streamit_api::client::{ApiError, Client};
use streamit_api::{SessionStatsReport, StreamSession};
use tokio::time::Instant;

use super::{Live, Task};
use crate::spool::{Spool, SpooledSummary};
use crate::state::{Summary, SummaryDelivery};

/// First pause between attempts; doubled after each, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(4);

/// What the backend made of the end of a session.
pub(super) struct Closed {
    /// The backend's latest record of the session, if it answered.
    pub session: Option<StreamSession>,
    pub delivery: SummaryDelivery,
    /// A refusal the user must see (end-stream or the report answered 4xx), or the
    /// outage when the figures could not be kept either.
    pub error: Option<ApiError>,
}

impl Task {
    /// End-stream, then the studio's figures; the summary is the backend's latest record.
    /// Viewer counts are the backend's own (LiveKit webhooks) and are not reported.
    pub(super) async fn close_backend_session(&mut self, live: &Live, studio: &Summary) -> Closed {
        let report = stats_report(studio);
        let spooled = self.spool_before_delivery(&live.session_id, &report);
        let deadline = Instant::now() + self.config.summary_retry;
        let api = self.api.clone();
        let ended = retrying(deadline, "end-stream", || api.end_stream()).await;
        // end-stream refused for good (revoked, already ended by presence) still leaves
        // the figures to report: the session exists either way
        let id = live.session_id.clone();
        let stats = retrying(deadline, "session stats", || {
            api.report_session_stats(&id, &report)
        })
        .await;
        let (ended, ended_err) = match ended {
            Ok(s) => (Some(s), None),
            Err(e) if e.is_transient() => (None, None),
            Err(e) => (None, Some(e)),
        };
        match stats {
            Ok(session) => {
                if let Some(Ok(path)) = &spooled {
                    forget(path);
                }
                Closed {
                    session: Some(session),
                    delivery: SummaryDelivery::Delivered,
                    error: ended_err,
                }
            }
            Err(e) if e.is_transient() => {
                let session = ended;
                match spooled {
                    Some(Ok(path)) => {
                        tracing::warn!(path = %path.display(), "the backend did not take the summary ({e}); it is spooled");
                        Closed {
                            session,
                            delivery: SummaryDelivery::Spooled {
                                path,
                                error: e.to_string(),
                            },
                            error: None,
                        }
                    }
                    Some(Err(spool_err)) => Closed {
                        session,
                        delivery: SummaryDelivery::Lost {
                            error: format!("{e}; {spool_err}"),
                        },
                        error: Some(e),
                    },
                    None => Closed {
                        session,
                        delivery: SummaryDelivery::Lost {
                            error: e.to_string(),
                        },
                        error: Some(e),
                    },
                }
            }
            Err(e) => {
                // refused (the session is gone, the token revoked): a retry would be too
                if let Some(Ok(path)) = &spooled {
                    forget(path);
                }
                Closed {
                    session: ended,
                    delivery: SummaryDelivery::Lost {
                        error: e.to_string(),
                    },
                    error: ended_err.or(Some(e)),
                }
            }
        }
    }

    /// Writes the figures to the spool before the first attempt (`None`: no spool).
    fn spool_before_delivery(
        &self,
        session_id: &str,
        report: &SessionStatsReport,
    ) -> Option<Result<PathBuf, crate::spool::SpoolError>> {
        let dir = self.config.spool_dir.as_ref()?;
        let user_id = self.state.account.as_ref()?.user_id.clone();
        let s = SpooledSummary::new(&self.config.api_url, &user_id, session_id, report.clone());
        let r = Spool::new(dir).put(&s);
        if let Err(e) = &r {
            tracing::warn!("{e}");
        }
        Some(r)
    }

    /// After a login: delivers the figures of earlier sessions that wait in the spool,
    /// beside the loop (the backend may be slow; the studio is usable meanwhile).
    pub(super) fn deliver_spooled(&self) {
        let (Some(dir), Some(account)) = (&self.config.spool_dir, &self.state.account) else {
            return;
        };
        let spool = Spool::new(dir);
        let api = self.api.clone();
        let api_url = self.config.api_url.clone();
        let user_id = account.user_id.clone();
        tokio::spawn(async move {
            let pending = {
                let spool = spool.clone();
                tokio::task::spawn_blocking(move || spool.pending(&api_url, &user_id)).await
            };
            for (path, s) in pending.unwrap_or_default() {
                deliver_one(&api, &spool, path, s).await;
            }
        });
    }
}

async fn deliver_one(api: &Client, spool: &Spool, path: PathBuf, s: SpooledSummary) {
    match api.report_session_stats(&s.session_id, &s.report).await {
        Ok(_) => {
            tracing::info!(session = %s.session_id, "delivered a spooled summary");
            if let Err(e) = spool.remove(&path) {
                tracing::warn!("{e}");
            }
        }
        Err(e) if e.is_transient() || matches!(e.status(), Some(401 | 403)) => {
            // later, or after a login that may report it
            tracing::info!(session = %s.session_id, "spooled summary not delivered yet: {e}");
        }
        Err(e) => {
            // the backend will never take it (the session is gone, the report is refused)
            tracing::warn!(session = %s.session_id, "spooled summary refused, dropped: {e}");
            if let Err(e) = spool.remove(&path) {
                tracing::warn!("{e}");
            }
        }
    }
}

fn forget(path: &std::path::Path) {
    if let Err(e) = std::fs::remove_file(path) {
        tracing::warn!(path = %path.display(), "removing a delivered summary: {e}");
    }
}

/// Calls `f` until it succeeds, fails for good (4xx) or `deadline` passes, pausing
/// 250 ms, 500 ms, 1 s … 4 s between attempts. Returns the last outcome.
async fn retrying<T, F, Fut>(deadline: Instant, what: &str, mut f: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let mut pause = FIRST_BACKOFF;
    let mut attempt = 1;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() && Instant::now() + pause < deadline => {
                tracing::info!(attempt, "{what}: {e}; retrying in {pause:?}");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_BACKOFF);
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The figures the studio reports to the backend at the end of a session.
pub(super) fn stats_report(studio: &Summary) -> SessionStatsReport {
    let clamp = |v: u64| v.min(i64::MAX as u64) as i64;
    SessionStatsReport {
        chat_messages: clamp(studio.chat_messages),
        frames_sent: Some(clamp(studio.frames_sent)),
        frames_dropped: Some(clamp(studio.frames_dropped)),
        average_bitrate_bps: Some(clamp(studio.average_bitrate_bps)),
        reconnects: Some(i64::from(studio.reconnects)),
    }
}
