//! Chat while on air: the creator's messages out, viewers' messages in (slow mode hides
//! and pauses a viewer who writes too fast), late sender names, and the bounded chat log.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use streamit_api::{ModerationEvent, TimeoutRequest};
use streamit_livekit_publish as lk;

use super::{Live, Task};
use crate::error::{Result, SessionError};
use crate::slow_mode::{Pace, timeout_secs};
use crate::state::{ChatEntry, ChatRole};

impl Task {
    pub(super) fn send_chat(&mut self, text: String) -> Result<()> {
        let text = text.trim().to_string();
        if text.is_empty() {
            return Err(SessionError::Invalid("empty chat message".into()));
        }
        let Some(live) = &mut self.live else {
            return Err(SessionError::Invalid("chat is available while live".into()));
        };
        live.handle.send_chat(text.clone())?;
        live.chat_messages += 1;
        let (identity, name) = match &self.state.account {
            Some(a) => (a.user_id.clone(), a.display_name.clone()),
            None => (live.handle.identity().to_string(), String::new()),
        };
        self.push_chat(ChatEntry {
            id: String::new(),
            sender: name,
            identity,
            role: ChatRole::Creator,
            text,
            own: true,
            at: SystemTime::now(),
        });
        Ok(())
    }

    /// A viewer's (or guest's) message: shown and counted, unless it breaks slow mode.
    pub(super) fn on_chat(
        &mut self,
        live: &mut Live,
        id: String,
        identity: String,
        from_name: String,
        text: String,
    ) {
        let known = live.participants.get(&identity);
        let role = known
            .map(|p| ChatRole::from_attributes(&p.attributes))
            .unwrap_or_default();
        let sender = match known {
            _ if !from_name.is_empty() => from_name,
            Some(p) if !p.name.is_empty() => p.name.clone(),
            _ => identity.clone(),
        };
        if role.is_audience()
            && self
                .state
                .stream
                .as_ref()
                .is_some_and(|s| s.chat_enabled && s.chat_delayed)
            && let Pace::TooEarly { remaining } = self.slow_mode.check(&identity, Instant::now())
        {
            self.enforce_slow_mode(live, &id, &identity, &sender, remaining);
            return;
        }
        live.chat_messages += 1;
        self.push_chat(ChatEntry {
            id,
            sender,
            identity,
            role,
            text,
            own: false,
            at: SystemTime::now(),
        });
    }

    /// A slow-mode violation: the message is not shown or counted, every client removes it,
    /// and the viewer is timed out for the rest of the interval (the backend revokes
    /// `canPublishData`, so the SFU holds them to the pace).
    fn enforce_slow_mode(
        &mut self,
        live: &Live,
        message_id: &str,
        identity: &str,
        name: &str,
        remaining: Duration,
    ) {
        tracing::info!(%identity, ?remaining, "slow mode: message hidden");
        if !message_id.is_empty() {
            self.send_moderation(
                live,
                &ModerationEvent::DeleteMessage {
                    message_id: message_id.to_string(),
                },
            );
        }
        let secs = timeout_secs(remaining);
        let req = TimeoutRequest {
            identity: identity.to_string(),
            duration_secs: secs,
            reason: Some("slow mode".into()),
        };
        let api = self.api.clone();
        self.spawn_backend(
            format!("Slow mode: hid a message from {name}, who may chat again in {secs} s"),
            format!("Slow mode: hid a message from {name}, but pausing their chat failed"),
            async move { api.timeout_viewer(&req).await.map(drop) },
        );
    }

    /// A message can overtake its sender's participant info (data channel vs. signalling,
    /// and a guest who rejoins under a new name chats at once): name and role then arrive
    /// with the participant, and the messages already shown get them too.
    pub(super) fn fill_in_sender(&mut self, p: &lk::RemoteParticipant) {
        let identity = p.identity.as_str();
        let role = ChatRole::from_attributes(&p.attributes);
        let stale = |c: &ChatEntry| {
            !c.own
                && c.identity == identity
                && (c.role != role || (c.sender == c.identity && !p.name.is_empty()))
        };
        if !self.state.chat.iter().any(stale) {
            return;
        }
        for c in Arc::make_mut(&mut self.state.chat).iter_mut() {
            if stale(c) {
                c.role = role;
                if c.sender == c.identity && !p.name.is_empty() {
                    c.sender = p.name.clone();
                }
            }
        }
    }

    fn push_chat(&mut self, entry: ChatEntry) {
        let chat = Arc::make_mut(&mut self.state.chat);
        chat.push(entry);
        let max = self.config.chat_history.max(1);
        if chat.len() > max {
            let extra = chat.len() - max;
            chat.drain(..extra);
        }
    }
}
