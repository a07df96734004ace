//! Backend calls beside the loop while on air: the loop never awaits the network, so
//! media, preview, stats and chat keep flowing while the StreamIt server is slow or gone.
//! A probe each second notices a hung server (the banner "StreamIt server not responding —
//! retrying"), and a title edit waits as pending and is retried until the server has it or
//! refuses it. Outcomes come back to the loop as [`BackendEvent`]s; the policy (when to
//! retry, what the flags say) is plain functions, tested without a network.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use streamit_api::client::{ApiError, Client};
use streamit_api::{Stream, StreamSession, UpdateStreamInfoRequest};
use tokio::sync::Notify;

use super::moderation::Outcome;
use super::{Reply, Task};
use crate::error::{Result, SessionError};
use crate::state::{BackendStatus, StreamInfo, SummaryDelivery};

/// How long the probe waits for `/api/health` before the server counts as not responding
/// (it answers in milliseconds when well). With a probe each second, the banner shows
/// within about 2 s of the server hanging.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long one attempt to save the title may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
/// First pause between title attempts; doubled after each failure up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(250);
const MAX_PAUSE: Duration = Duration::from_secs(2);

/// What a call beside the loop reports.
pub(super) enum BackendEvent {
    /// A moderation call finished.
    Moderation(Outcome),
    /// The probe's verdict: did the server answer in time?
    Probe { reachable: bool },
    /// An attempt to save title `generation` got no answer; it is retried.
    TitleAttemptFailed { generation: u64 },
    /// Title `generation` was saved, or refused for good.
    TitleDone {
        generation: u64,
        result: std::result::Result<Stream, ApiError>,
    },
    /// The figures of the stream that ended were delivered (or spooled, or lost); the
    /// error is a refusal, or the outage when they could not be kept either.
    SummaryDone {
        session_id: String,
        backend: Option<StreamSession>,
        delivery: SummaryDelivery,
        error: Option<ApiError>,
        /// The caller of `request(EndStream)`, answered now.
        reply: Option<Reply>,
    },
}

/// A title the backend does not have yet.
pub(super) struct TitleWrite {
    generation: u64,
    /// Stops the retrying task when a newer title replaces this one.
    task: tokio::task::AbortHandle,
    /// The caller of `request(EditTitle)`, answered once the backend has decided.
    reply: Option<Reply>,
}

/// What the loop keeps for the calls beside it.
#[derive(Default)]
pub(super) struct BackendCalls {
    probing: bool,
    generation: u64,
    title: Option<TitleWrite>,
    /// Woken when the server answers again, so a waiting retry goes at once.
    back: Arc<Notify>,
}

impl Task {
    /// Saves the title beside the loop: shown as pending at once, retried until the
    /// backend takes it or refuses it. A newer edit replaces an older one still waiting.
    pub(super) fn save_title(
        &mut self,
        title: String,
        description: Option<String>,
        reply: Option<Reply>,
    ) {
        if let Some(old) = self.calls.title.take() {
            old.task.abort();
            if let Some(r) = old.reply {
                let _ = r.send(Ok(()));
            }
        }
        self.calls.generation += 1;
        let generation = self.calls.generation;
        let req = UpdateStreamInfoRequest {
            title: Some(title.clone()),
            description,
        };
        let (api, tx, back) = (
            self.api.clone(),
            self.outcome_tx.clone(),
            self.calls.back.clone(),
        );
        let task = tokio::spawn(async move {
            let mut failed = 0;
            loop {
                let result =
                    match tokio::time::timeout(ATTEMPT_TIMEOUT, api.update_stream_info(&req)).await
                    {
                        Ok(r) => r,
                        Err(_) => Err(timeout_error()),
                    };
                match result {
                    Err(e) if retry_later(&e) => {
                        failed += 1;
                        tracing::info!(failed, "title not saved yet: {e}");
                        let _ = tx
                            .send(BackendEvent::TitleAttemptFailed { generation })
                            .await;
                        tokio::select! {
                            _ = tokio::time::sleep(retry_pause(failed)) => {}
                            _ = back.notified() => {}
                        }
                    }
                    result => {
                        let _ = tx
                            .send(BackendEvent::TitleDone { generation, result })
                            .await;
                        return;
                    }
                }
            }
        })
        .abort_handle();
        self.calls.title = Some(TitleWrite {
            generation,
            task,
            reply,
        });
        self.state.backend.pending_title = Some(title);
    }

    /// The title an edit asks for, trimmed; refused at once when it cannot be saved.
    pub(super) fn check_title(&self, title: &str) -> Result<String> {
        self.require_login()?;
        let title = title.trim();
        if title.is_empty() {
            return Err(SessionError::Invalid("the title may not be empty".into()));
        }
        Ok(title.to_string())
    }

    /// Forgets a title still waiting (logout: the next account must not get it).
    pub(super) fn drop_pending_title(&mut self) {
        if let Some(old) = self.calls.title.take() {
            old.task.abort();
        }
        self.state.backend.pending_title = None;
    }

    /// Once a second while on air: asks the server whether it is there (one probe at a time).
    pub(super) fn probe_backend(&mut self) {
        if self.calls.probing {
            return;
        }
        self.calls.probing = true;
        let (api, tx) = (self.api.clone(), self.outcome_tx.clone());
        tokio::spawn(async move {
            let reachable = matches!(
                tokio::time::timeout(PROBE_TIMEOUT, api.health()).await,
                Ok(Ok(_))
            );
            let _ = tx.send(BackendEvent::Probe { reachable }).await;
        });
    }

    pub(super) fn on_backend_event(&mut self, ev: BackendEvent) {
        let now = SystemTime::now();
        match ev {
            BackendEvent::Moderation(o) => self.on_outcome(o),
            BackendEvent::Probe { reachable } => {
                self.calls.probing = false;
                if note_reachability(&mut self.state.backend, reachable, now) {
                    self.calls.back.notify_waiters();
                }
            }
            BackendEvent::TitleAttemptFailed { generation } => {
                if self.is_current_title(generation) {
                    note_reachability(&mut self.state.backend, false, now);
                }
            }
            BackendEvent::TitleDone { generation, result } => {
                if !self.is_current_title(generation) {
                    return;
                }
                let reply = self.calls.title.take().and_then(|t| t.reply);
                self.state.backend.pending_title = None;
                let r = match result {
                    Ok(stream) => {
                        note_reachability(&mut self.state.backend, true, now);
                        self.state.stream = Some(StreamInfo::from(&stream));
                        Ok(())
                    }
                    Err(e) => Err(SessionError::from(e)),
                };
                // published before the caller hears back, so it reads the saved title
                self.finish(r, reply);
            }
            BackendEvent::SummaryDone {
                session_id,
                backend,
                delivery,
                error,
                reply,
            } => {
                let current = self.state.session_id.as_deref() == Some(session_id.as_str());
                let mut interrupted = false;
                if let Some(s) = self.state.summary.as_mut()
                    && current
                {
                    interrupted = s.interruption.is_some();
                    if s.delivery == SummaryDelivery::Pending {
                        s.backend = backend;
                        s.delivery = delivery;
                    }
                }
                let r = match error {
                    // an interrupted stream already told its cause
                    Some(e) if interrupted || !current => {
                        tracing::warn!("end-stream: {e}");
                        Ok(())
                    }
                    Some(e) => Err(SessionError::from(e)),
                    None => Ok(()),
                };
                self.finish(r, reply);
            }
        }
    }

    fn is_current_title(&self, generation: u64) -> bool {
        self.calls
            .title
            .as_ref()
            .is_some_and(|t| t.generation == generation)
    }
}

/// Records whether the server answered; true when it just came back.
fn note_reachability(status: &mut BackendStatus, reachable: bool, now: SystemTime) -> bool {
    match (reachable, status.unreachable_since) {
        (true, Some(_)) => {
            status.unreachable_since = None;
            true
        }
        (false, None) => {
            status.unreachable_since = Some(now);
            false
        }
        _ => false,
    }
}

/// Whether a failed call is worth repeating: no answer, or the server failed (5xx, 429).
/// A refusal (4xx) is final and goes to the creator.
fn retry_later(e: &ApiError) -> bool {
    e.is_transient()
}

/// The pause after `failed` failures in a row: 250 ms, 500 ms, 1 s, then 2 s.
fn retry_pause(failed: u32) -> Duration {
    let doubled = FIRST_PAUSE.saturating_mul(1 << failed.saturating_sub(1).min(8));
    doubled.min(MAX_PAUSE)
}

/// An attempt cut off by its timeout, as a gateway reports one (transient, so retried).
pub(super) fn timeout_error() -> ApiError {
    ApiError::Status {
        status: 504,
        message: "the StreamIt server did not answer in time".into(),
    }
}

/// The client for calls made while on air: short timeouts, so a hung server costs a
/// retry, never a frozen call.
pub(super) fn api_client(base_url: &str) -> Client {
    Client::with_timeouts(base_url, Duration::from_secs(3), Duration::from_secs(10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_from_250_ms_to_2_s() {
        let pauses: Vec<u128> = (1..=6).map(|n| retry_pause(n).as_millis()).collect();
        assert_eq!(pauses, [250, 500, 1000, 2000, 2000, 2000]);
        assert_eq!(retry_pause(0), FIRST_PAUSE);
        assert_eq!(retry_pause(u32::MAX), MAX_PAUSE);
    }

    #[test]
    fn unreachable_since_the_first_failure_until_an_answer() {
        let mut s = BackendStatus::default();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        assert!(!note_reachability(&mut s, true, t0));
        assert_eq!(s.unreachable_since, None);
        assert!(!note_reachability(&mut s, false, t0));
        // later failures keep the first one's time: "not responding for 0:12"
        assert!(!note_reachability(
            &mut s,
            false,
            t0 + Duration::from_secs(5)
        ));
        assert_eq!(s.unreachable_since, Some(t0));
        // the answer that ends it says so once (the waiting title retries at once)
        assert!(note_reachability(&mut s, true, t0 + Duration::from_secs(9)));
        assert!(!note_reachability(
            &mut s,
            true,
            t0 + Duration::from_secs(10)
        ));
        assert_eq!(s.unreachable_since, None);
    }

    #[test]
    fn only_no_answer_and_server_failures_are_retried() {
        let status = |status| ApiError::Status {
            status,
            message: String::new(),
        };
        assert!(retry_later(&timeout_error()));
        assert!(retry_later(&status(503)));
        assert!(retry_later(&status(429)));
        // the title is too long, or the session expired: a retry would be refused too
        assert!(!retry_later(&status(422)));
        assert!(!retry_later(&status(401)));
    }
}
