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

/// Everything delivering one session's figures needs, detached from the task so it can
/// run beside the loop.
pub(super) struct Delivery {
    api: Client,
    spool: Option<Spool>,
    /// Where the figures were spooled before the first attempt (`None`: not logged in).
    spooled: Option<Result<PathBuf, crate::spool::SpoolError>>,
    session_id: String,
    report: SessionStatsReport,
    retry: Duration,
}

/// What became of the figures: the backend's record, where they are, and a refusal (or
/// the outage when they could not be kept either) the creator must see.
pub(super) type Delivered = (Option<StreamSession>, SummaryDelivery, Option<ApiError>);

impl Task {
    /// The summary of `live`: the studio's own figures, end-stream and the stats report
    /// (retried, spooled when the backend stays away), and the backend's latest record.
    /// Viewer counts are the backend's own (LiveKit webhooks) and are not reported. The
    /// error is a refusal the user must see (a 4xx), or the outage when the figures could
    /// not be kept either.
    pub(super) async fn summarise(&mut self, live: &Live) -> (Summary, Option<ApiError>) {
        let mut summary = self.studio_summary(live);
        let (backend, delivery, error) = self.delivery(live, &summary).run().await;
        summary.backend = backend;
        summary.delivery = delivery;
        (summary, error)
    }

    /// Spools the figures of `live` and returns their delivery, to run now or beside the
    /// loop.
    pub(super) fn delivery(&self, live: &Live, summary: &Summary) -> Delivery {
        let report = stats_report(summary);
        let spool = self.spool();
        let spooled = spool
            .as_ref()
            .and_then(|spool| self.spool_before_delivery(spool, &live.session_id, &report));
        Delivery {
            api: self.api.clone(),
            spool,
            spooled,
            session_id: live.session_id.clone(),
            report,
            retry: self.config.summary_retry,
        }
    }

    /// The configured spool, if any.
    fn spool(&self) -> Option<Spool> {
        self.config.spool_dir.as_ref().map(Spool::new)
    }

    /// Writes the figures to the spool before the first attempt (`None`: not logged in).
    fn spool_before_delivery(
        &self,
        spool: &Spool,
        session_id: &str,
        report: &SessionStatsReport,
    ) -> Option<Result<PathBuf, crate::spool::SpoolError>> {
        let user_id = &self.state.account.as_ref()?.user_id;
        let s = SpooledSummary::new(&self.config.api_url, user_id, session_id, report.clone());
        let r = spool.put(&s);
        if let Err(e) = &r {
            tracing::warn!("{e}");
        }
        Some(r)
    }

    /// After a login: delivers the figures of earlier sessions that wait in the spool,
    /// beside the loop (the backend may be slow; the studio is usable meanwhile).
    pub(super) fn deliver_spooled(&self) {
        let (Some(spool), Some(account)) = (self.spool(), &self.state.account) else {
            return;
        };
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

impl Delivery {
    /// end-stream and the stats report, retried until the deadline; the spool file goes
    /// once the backend has the figures.
    pub(super) async fn run(self) -> Delivered {
        let Delivery {
            api,
            spool,
            spooled,
            session_id,
            report,
            retry,
        } = self;
        let deadline = Instant::now() + retry;
        let ended = retrying(deadline, "end-stream", || api.end_stream()).await;
        // end-stream refused for good (revoked, already ended by presence) still leaves
        // the figures to report: the session exists either way
        let id = session_id;
        let stats = retrying(deadline, "session stats", || {
            api.report_session_stats(&id, &report)
        })
        .await;
        let spooled_at = spooled.as_ref().and_then(|r| r.as_ref().ok()).cloned();
        let (ended, ended_err) = match ended {
            Ok(s) => (Some(s), None),
            Err(e) if e.is_transient() => (None, None),
            Err(e) => (None, Some(e)),
        };
        let (backend, delivery, error) = match (stats, spooled) {
            (Ok(session), _) => (Some(session), SummaryDelivery::Delivered, ended_err),
            (Err(e), Some(Ok(path))) if e.is_transient() => {
                tracing::warn!(path = %path.display(), "the backend did not take the summary ({e}); it is spooled");
                let error = e.to_string();
                (ended, SummaryDelivery::Spooled { path, error }, None)
            }
            (Err(e), Some(Err(spool_err))) if e.is_transient() => {
                let error = format!("{e}; {spool_err}");
                (ended, SummaryDelivery::Lost { error }, Some(e))
            }
            (Err(e), _) if e.is_transient() => {
                let error = e.to_string();
                (ended, SummaryDelivery::Lost { error }, Some(e))
            }
            // refused (the session is gone, the token revoked): a retry would be too
            (Err(e), _) => {
                let error = e.to_string();
                (
                    ended,
                    SummaryDelivery::Lost { error },
                    ended_err.or(Some(e)),
                )
            }
        };
        // the spool keeps only what still waits for the backend
        if let (Some(spool), Some(path)) = (&spool, &spooled_at)
            && !matches!(delivery, SummaryDelivery::Spooled { .. })
            && let Err(e) = spool.remove(path)
        {
            tracing::warn!("{e}");
        }
        (backend, delivery, error)
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
        // an attempt never outlasts the deadline (a hung server answers nothing)
        let r = match tokio::time::timeout_at(deadline, f()).await {
            Ok(r) => r,
            Err(_) => Err(super::backend::timeout_error()),
        };
        match r {
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
