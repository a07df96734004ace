//! Recovery after a lost signal connection or transport: resume the session
//! while the server still has it, else join again in full, with the backoff
//! policy; the media plane keeps going meanwhile ([`Driver::serve_until`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use livekit_protocol as proto;
use livekit_signaling::{SignalClient, SignalEvent};
use tokio::time::Instant;

use super::{Driver, probe, signal_options};
use crate::core::{Backoff, LossNotice};
use crate::types::{LossCause, Recovery, RecoveryOutcome, RejoinReason};

/// How long after losing the signal a resume is still worth trying: LiveKit
/// keeps a participant whose signal dropped for about 20 s.
const RESUME_WINDOW: Duration = Duration::from_secs(15);

/// How long a resumed session may take to get its publisher transport back (ICE
/// restart) before the attempt counts as failed.
const RESUME_TRANSPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// A refusal by a live server, as opposed to not reaching it: the resume will
/// not work, a rejoin may (at once, no point in waiting).
fn refused(e: &livekit_signaling::SignalError) -> bool {
    use livekit_signaling::SignalError as E;
    matches!(
        e,
        E::LeaveRequest { .. } | E::Handshake { .. } | E::Client(..)
    )
}

/// Not reaching the server (refused connection, timeout, closed): probe until it
/// answers again before the next attempt.
fn unreachable(e: &livekit_signaling::SignalError) -> bool {
    use livekit_signaling::SignalError as E;
    matches!(e, E::Connection(_) | E::Timeout(_) | E::Closed)
}

fn unix_now() -> SystemTime {
    SystemTime::now()
}

impl Driver {
    /// Recovers with the backoff policy: resume the session (same participant,
    /// tracks kept) while the media transport is up and the server has not
    /// refused it, else join again in full (at once after a refusal). While the
    /// server is unreachable it is probed every 500 ms, and the next attempt
    /// goes as soon as it answers again instead of at its backoff slot; the
    /// slots (attempt count and total time) stay the budget. Returns false when
    /// the driver must stop (gave up, or the app left meanwhile).
    pub(super) async fn reconnect(&mut self, loss: LossNotice) -> bool {
        tracing::info!("reconnecting: {} ({:?})", loss.detail, loss.cause);
        let lost_at = Instant::now();
        let mut report = Recovery {
            cause: loss.cause,
            detail: loss.detail.clone(),
            detected_at: unix_now(),
            silent_for: loss.silent_for,
            attempts: 0,
            server_back_after: None,
            outcome: RecoveryOutcome::InProgress,
            took: None,
        };
        self.core.report_recovery(report.clone());
        let reason = if self.core.is_connected() {
            proto::ReconnectReason::RrSignalDisconnected
        } else {
            proto::ReconnectReason::RrPublisherFailed
        };
        // Keep the newest token the server handed out (RefreshToken).
        self.token = self.signal.token();
        let signal = self.signal.clone();
        if self
            .serve_until(async move { signal.close().await }, false)
            .await
            .is_none()
        {
            return false;
        }
        let backoff = Backoff::default();
        let mut last_err = loss.detail;
        let mut resumable = true;
        // The server is known to be unreachable (a silent server, or the last
        // attempt could not reach it).
        let mut down = loss.cause == LossCause::ServerSilent;
        for attempt in 1..=backoff.max_attempts {
            self.core.set_reconnecting(attempt, backoff.max_attempts);
            report.attempts = attempt;
            self.core.report_recovery(report.clone());
            self.flush_outputs(true).await;
            let slot_end =
                Instant::now() + backoff.delay(attempt).unwrap_or(Duration::from_secs(1));
            let url = self.url.clone();
            let probed = match self
                .serve_until(probe::probe_until(&url, slot_end, down), false)
                .await
            {
                None => return false,
                Some(p) => p,
            };
            match probed.back_at {
                Some(at) => {
                    let back = at.duration_since(lost_at);
                    tracing::info!("the server answers again {back:?} after the loss");
                    report.server_back_after = Some(back);
                }
                None if probed.down_seen => {
                    // The whole slot passed without an answer: that was the attempt.
                    last_err = format!("the server at {url} does not answer");
                    tracing::info!("reconnect attempt {attempt}: {last_err}");
                    continue;
                }
                None => {}
            }
            down = false;
            let mut rejoin_reason = RejoinReason::ResumeWindowPassed;
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
                                report.outcome = RecoveryOutcome::Resumed;
                                report.took = Some(lost_at.elapsed());
                                self.core.report_recovery(report);
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
                    Some(Err(e)) if refused(&e) => {
                        // The server is there but no longer has the session (it
                        // restarted, or a node failed): rejoin in full right away,
                        // within this attempt.
                        tracing::info!("resume refused, rejoining at once: {e}");
                        resumable = false;
                        rejoin_reason = RejoinReason::ResumeRefused;
                    }
                    Some(Err(e)) => {
                        tracing::info!("resume attempt {attempt} failed: {e}");
                        last_err = e.to_string();
                        down = unreachable(&e);
                        continue;
                    }
                }
            } else if !resumable {
                rejoin_reason = RejoinReason::ResumeRefused;
            }
            let (url, token, subscribe) = (self.url.clone(), self.token.clone(), self.subscribe);
            let connect = async move {
                SignalClient::connect(&url, &token, signal_options(subscribe), None).await
            };
            match self.serve_until(connect, false).await {
                None => return false,
                Some(Ok((client, join, events))) => {
                    tracing::info!(
                        "rejoined on attempt {attempt} after {:?} ({rejoin_reason:?})",
                        lost_at.elapsed()
                    );
                    self.signal = Arc::new(client);
                    self.signal_events = events;
                    // Requests held for the old session mean nothing to the new one.
                    self.held_signals.clear();
                    self.core.rejoin(&join, Instant::now().into_std());
                    self.tcp.close_all();
                    report.outcome = RecoveryOutcome::Rejoined(rejoin_reason);
                    report.took = Some(lost_at.elapsed());
                    self.core.report_recovery(report);
                    return true;
                }
                Some(Err(e)) => {
                    tracing::info!("reconnect attempt {attempt} failed: {e}");
                    last_err = e.to_string();
                    down = unreachable(&e);
                }
            }
        }
        report.outcome = RecoveryOutcome::GaveUp;
        report.took = Some(lost_at.elapsed());
        self.core.report_recovery(report);
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
        while !(self.core.is_publisher_restarted() && self.core.is_subscriber_connected()) {
            if Instant::now() >= until || self.signal_lost {
                return Some(false);
            }
            if self.core.is_restart_refused() {
                tracing::info!("the server closed the ICE restart's TCP connection");
                return Some(false);
            }
            self.serve_until(tokio::time::sleep(Duration::from_millis(50)), true)
                .await?;
        }
        Some(true)
    }
}
