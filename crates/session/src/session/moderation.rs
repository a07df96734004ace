//! Moderation: removing a message, timing out or banning a viewer (never the creator),
//! the moderation events every client applies, and the backend calls that run beside the
//! live loop and come back as notices.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use streamit_api::client::ApiError;
use streamit_api::{BanRequest, ModerationEvent, TimeoutRequest, limits, room};
use streamit_livekit_publish as lk;

use super::{Live, Task};
use crate::error::{Result, SessionError, UserError};
use crate::state::{ChatRole, ModerationNotice};

/// How long a moderation call to the backend may take before the studio reports it failed.
const BACKEND_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A backend call that ran beside the live loop, done.
pub(super) struct Outcome {
    /// The notice when it worked ("Banned Bob").
    success: String,
    /// What failed, for the notice and the error ("Ban of Bob failed").
    failure: String,
    result: Result<()>,
}

impl Task {
    pub(super) fn remove_message(&mut self, message_id: &str) -> Result<()> {
        let Some(live) = self.live.as_ref() else {
            return Err(SessionError::Invalid(
                "messages can be removed while live".into(),
            ));
        };
        let Some(entry) = self
            .state
            .chat
            .iter()
            .find(|c| !message_id.is_empty() && c.id == message_id)
            .cloned()
        else {
            return Err(SessionError::Invalid(
                "that message is not in the chat".into(),
            ));
        };
        if entry.own {
            return Err(SessionError::Invalid(
                "the creator's own messages cannot be moderated".into(),
            ));
        }
        self.moderatable(&entry.identity)?;
        self.send_moderation(
            live,
            &ModerationEvent::DeleteMessage {
                message_id: message_id.to_string(),
            },
        );
        Arc::make_mut(&mut self.state.chat).retain(|c| c.id != message_id);
        self.push_notice(ModerationNotice {
            message: format!("Removed a message from {}", entry.sender),
            ok: true,
            at: SystemTime::now(),
        });
        Ok(())
    }

    pub(super) fn timeout_viewer(&mut self, identity: &str, duration: Duration) -> Result<()> {
        self.require_login()?;
        self.moderatable(identity)?;
        let secs = duration.as_secs();
        if !(1..=limits::TIMEOUT_SECS_MAX).contains(&secs) {
            return Err(SessionError::Invalid(format!(
                "a timeout lasts 1 s to {} days",
                limits::TIMEOUT_SECS_MAX / 86_400
            )));
        }
        let name = self.name_of(identity);
        let req = TimeoutRequest {
            identity: identity.to_string(),
            duration_secs: secs,
            reason: None,
        };
        let api = self.api.clone();
        let how_long = human_duration(secs);
        self.spawn_backend(
            format!("Timed out {name} for {how_long}"),
            format!("Timing out {name} failed"),
            async move { api.timeout_viewer(&req).await.map(drop) },
        );
        Ok(())
    }

    pub(super) fn ban_viewer(&mut self, identity: &str) -> Result<()> {
        self.require_login()?;
        self.moderatable(identity)?;
        let name = self.name_of(identity);
        // Their messages go at once, everywhere; the ban itself is the backend's.
        if let Some(live) = &self.live {
            self.send_moderation(
                live,
                &ModerationEvent::DeleteMessagesFrom {
                    identity: identity.to_string(),
                },
            );
        }
        Arc::make_mut(&mut self.state.chat).retain(|c| c.identity != identity);
        let req = BanRequest {
            identity: identity.to_string(),
            reason: None,
        };
        let api = self.api.clone();
        self.spawn_backend(
            format!("Banned {name}"),
            format!("Banning {name} failed"),
            async move { api.ban(&req).await.map(drop) },
        );
        Ok(())
    }

    /// Refuses moderating the creator (this studio's own account, or anyone with the
    /// creator's role).
    fn moderatable(&self, identity: &str) -> Result<()> {
        if identity.trim().is_empty() {
            return Err(SessionError::Invalid("no viewer named".into()));
        }
        let own = self
            .state
            .account
            .as_ref()
            .is_some_and(|a| a.user_id == identity)
            || self
                .live
                .as_ref()
                .is_some_and(|l| l.handle.identity().as_str() == identity);
        let creator = self
            .live
            .as_ref()
            .and_then(|l| l.participants.get(identity))
            .is_some_and(|p| ChatRole::from_attributes(&p.attributes) == ChatRole::Creator);
        if own || creator {
            return Err(SessionError::Invalid(
                "the creator's own messages cannot be moderated".into(),
            ));
        }
        Ok(())
    }

    /// The name to show for a participant: its display name, else what its messages
    /// carried, else the identity.
    fn name_of(&self, identity: &str) -> String {
        self.live
            .as_ref()
            .and_then(|l| l.participants.get(identity))
            .map(|p| p.name.clone())
            .filter(|n| !n.is_empty())
            .or_else(|| {
                self.state
                    .chat
                    .iter()
                    .rev()
                    .find(|c| c.identity == identity && !c.sender.is_empty())
                    .map(|c| c.sender.clone())
            })
            .unwrap_or_else(|| identity.to_string())
    }

    /// Sends a moderation event to every participant (reliable, on `streamit.moderation`).
    pub(super) fn send_moderation(&self, live: &Live, event: &ModerationEvent) {
        let payload = match serde_json::to_vec(event) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("encoding a moderation event: {e}");
                return;
            }
        };
        if let Err(e) = live.handle.send_data(
            payload,
            lk::Reliability::Reliable,
            Some(room::MODERATION_TOPIC.to_string()),
        ) {
            tracing::warn!("moderation event not sent: {e}");
        }
    }

    /// Runs a backend call beside the live loop (bounded by [`BACKEND_CALL_TIMEOUT`]); its
    /// outcome comes back to the loop as a notice (and an error when it failed).
    pub(super) fn spawn_backend<F>(&self, success: String, failure: String, call: F)
    where
        F: std::future::Future<Output = std::result::Result<(), ApiError>> + Send + 'static,
    {
        let tx = self.outcome_tx.clone();
        tokio::spawn(async move {
            let result = match tokio::time::timeout(BACKEND_CALL_TIMEOUT, call).await {
                Ok(r) => r.map_err(SessionError::from),
                Err(_) => Err(SessionError::BackendTimeout(BACKEND_CALL_TIMEOUT.as_secs())),
            };
            let _ = tx
                .send(super::BackendEvent::Moderation(Outcome {
                    success,
                    failure,
                    result,
                }))
                .await;
        });
    }

    pub(super) fn on_outcome(&mut self, o: Outcome) {
        let notice = match o.result {
            Ok(()) => ModerationNotice {
                message: o.success,
                ok: true,
                at: SystemTime::now(),
            },
            Err(e) => {
                tracing::warn!(error = %e, "{}", o.failure);
                let message = format!("{}: {}", o.failure, e.user_message());
                Arc::make_mut(&mut self.state.errors).push(UserError {
                    kind: e.kind(),
                    message: message.clone(),
                    at: SystemTime::now(),
                });
                ModerationNotice {
                    message,
                    ok: false,
                    at: SystemTime::now(),
                }
            }
        };
        self.push_notice(notice);
    }

    fn push_notice(&mut self, notice: ModerationNotice) {
        let log = Arc::make_mut(&mut self.state.moderation);
        log.push(notice);
        if log.len() > 100 {
            log.remove(0);
        }
    }
}

/// "5 min", "1 h", "90 s": how a timeout's length reads in a notice.
fn human_duration(secs: u64) -> String {
    if secs >= 3600 && secs.is_multiple_of(3600) {
        format!("{} h", secs / 3600)
    } else if secs >= 60 && secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_read_in_the_largest_whole_unit() {
        assert_eq!(human_duration(300), "5 min");
        assert_eq!(human_duration(600), "10 min");
        assert_eq!(human_duration(3600), "1 h");
        assert_eq!(human_duration(5400), "90 min");
        assert_eq!(human_duration(7), "7 s");
    }
}
