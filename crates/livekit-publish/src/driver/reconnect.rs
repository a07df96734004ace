//! Recovery after a lost signal connection or transport: resume the session
//! while the server still has it, else join again in full, with the backoff
//! policy; the media plane keeps going meanwhile ([`Driver::serve_until`]).

use std::sync::Arc;
use std::time::Duration;

use livekit_protocol as proto;
use livekit_signaling::{SignalClient, SignalEvent};
use tokio::time::Instant;

use super::{Driver, signal_options};
use crate::core::Backoff;

/// How long after losing the signal a resume is still worth trying: LiveKit
/// keeps a participant whose signal dropped for about 20 s.
const RESUME_WINDOW: Duration = Duration::from_secs(15);

/// How long a resumed session may take to get its publisher transport back (ICE
/// restart) before the attempt counts as failed.
const RESUME_TRANSPORT_TIMEOUT: Duration = Duration::from_secs(5);

impl Driver {
    /// Recovers with the backoff policy: resume the session (same participant,
    /// tracks kept) while the media transport is up and the server has not
    /// refused it, else join again in full. Returns false when the driver must
    /// stop (gave up, or the app left meanwhile).
    pub(super) async fn reconnect(&mut self, why: String) -> bool {
        tracing::info!("reconnecting: {why}");
        let lost_at = Instant::now();
        let reason = if self.core.is_connected() {
            proto::ReconnectReason::RrSignalDisconnected
        } else {
            proto::ReconnectReason::RrPublisherFailed
        };
        // Keep the newest token the server handed out (RefreshToken).
        self.token = self.signal.token();
        self.signal.close().await;
        let backoff = Backoff::default();
        let mut last_err = why;
        let mut resumable = true;
        for attempt in 1..=backoff.max_attempts {
            self.core.set_reconnecting(attempt, backoff.max_attempts);
            self.flush_outputs(true).await;
            let delay = backoff.delay(attempt).unwrap_or(Duration::from_secs(1));
            if self
                .serve_until(tokio::time::sleep(delay), false)
                .await
                .is_none()
            {
                return false;
            }
            if resumable && lost_at.elapsed() < RESUME_WINDOW {
                self.drain_old_signal_events();
                let signal = self.signal.clone();
                let restart = async move { signal.restart(reason).await };
                match self.serve_until(restart, false).await {
                    None => return false,
                    Some(Ok(_resp)) => {
                        // An offer made during the outage is superseded by the
                        // resume's ICE-restart offer (one answer per offer in flight).
                        self.held_signals
                            .retain(|m| !matches!(m, proto::signal_request::Message::Offer(_)));
                        self.core.resume(Instant::now().into_std());
                        self.tcp.close_all();
                        // The ICE-restart offer and SyncState pass through while the
                        // signal client still holds everything else back.
                        self.flush().await;
                        match self.await_transport().await {
                            None => return false,
                            Some(true) => {
                                tracing::info!(
                                    "resumed the session on attempt {attempt} after {:?}",
                                    lost_at.elapsed()
                                );
                                self.signal.set_reconnected().await;
                                self.core.resumed();
                                return true;
                            }
                            Some(false) => {
                                last_err = format!(
                                    "the media transport did not come back (publisher {}, subscriber {})",
                                    self.core.is_connected(),
                                    self.core.is_subscriber_connected()
                                );
                                tracing::info!("resume attempt {attempt}: {last_err}");
                                self.signal.close().await;
                                continue;
                            }
                        }
                    }
                    Some(Err(e @ livekit_signaling::SignalError::LeaveRequest { .. })) => {
                        // The server no longer has the session (e.g. it restarted):
                        // the next attempt rejoins in full, as the SDKs do. (Rejoining
                        // at once made the server hand the old participant's place to
                        // the new one, so other participants never saw it leave.)
                        tracing::info!("resume refused: {e}");
                        resumable = false;
                        last_err = e.to_string();
                        continue;
                    }
                    Some(Err(e)) => {
                        tracing::info!("resume attempt {attempt} failed: {e}");
                        last_err = e.to_string();
                        continue;
                    }
                }
            }
            let (url, token, subscribe) = (self.url.clone(), self.token.clone(), self.subscribe);
            let connect = async move {
                SignalClient::connect(&url, &token, signal_options(subscribe), None).await
            };
            match self.serve_until(connect, false).await {
                None => return false,
                Some(Ok((client, join, events))) => {
                    tracing::info!("rejoined on attempt {attempt}");
                    self.signal = Arc::new(client);
                    self.signal_events = events;
                    // Requests held for the old session mean nothing to the new one.
                    self.held_signals.clear();
                    self.core.rejoin(&join, Instant::now().into_std());
                    self.tcp.close_all();
                    return true;
                }
                Some(Err(e)) => {
                    tracing::info!("reconnect attempt {attempt} failed: {e}");
                    last_err = e.to_string();
                }
            }
        }
        self.core.set_failed(format!(
            "gave up after {} reconnect attempts; last error: {last_err}",
            backoff.max_attempts
        ));
        self.flush().await;
        false
    }

    /// Takes what the closed signal connection left in the event channel before a
    /// resume reuses it: messages still count, its close notices are stale.
    fn drain_old_signal_events(&mut self) {
        while let Ok(ev) = self.signal_events.try_recv() {
            if let SignalEvent::Message(m) = ev {
                self.core.handle_signal(*m, Instant::now().into_std());
            }
        }
    }

    /// After a resume: waits until both transports are connected again (after a
    /// transport loss the ICE restarts need the server's offer and answer, so
    /// signal messages are handled meanwhile). `None` if the app left.
    async fn await_transport(&mut self) -> Option<bool> {
        self.signal_lost = false;
        let until = Instant::now() + RESUME_TRANSPORT_TIMEOUT;
        while !(self.core.is_connected() && self.core.is_subscriber_connected()) {
            if Instant::now() >= until || self.signal_lost {
                return Some(false);
            }
            self.serve_until(tokio::time::sleep(Duration::from_millis(50)), true)
                .await?;
        }
        Some(true)
    }
}
