//! `POST /api/livekit/webhook`: LiveKit's signed room events.
//!
//! LiveKit signs each delivery with a JWT (HS256, our API key/secret) in the
//! `Authorization` header whose `sha256` claim is the body's hash;
//! `livekit_api::webhooks::WebhookReceiver` checks both. Anything unsigned,
//! signed with another key, expired or with a tampered body is a 401 and
//! changes nothing.
//!
//! Every event is handled once: its id is stored (`webhook_events`, unique),
//! so a redelivered or replayed event changes nothing, and an event whose
//! `createdAt` is older than [`MAX_EVENT_AGE`] (or more than
//! [`MAX_EVENT_AHEAD`] in the future) is acknowledged and ignored. Both answer
//! 200 so LiveKit does not retry; a failure while handling forgets the id and
//! answers 500, so LiveKit's retry is handled.
//!
//! What we use:
//! - viewers' `participant_joined` / `participant_left` /
//!   `participant_connection_aborted` (not the creator, whose identity is the
//!   room name) record presence per participant sid whether or not the
//!   stream is live; the open session counts distinct identities present
//!   (current and peak), so a viewer who joined before go-live counts and a
//!   sid that vanished with a crashed LiveKit does not count its identity twice;
//! - the creator's `participant_joined` and `track_published` say the
//!   publisher is there (and which LiveKit room sid this session is); its
//!   `participant_left` / `participant_connection_aborted`, and a
//!   `track_unpublished` that leaves it without tracks, start the grace
//!   period after which the stream goes offline (`liveness`);
//! - `room_finished` ends the session and marks the stream offline, so a
//!   studio that crashed without calling end-stream does not stay "live".
//!
//! A viewer's `participant_joined` is also checked against the chat rules
//! (`chat_rules::check_joined`, in the background): a banned identity that
//! rejoins with an older token is removed again, and a permission the token
//! grants but the rules no longer allow (a timeout, chat turned off) is revoked.
//! A joining creator whose approval was revoked is removed the same way.

use std::time::Duration;

use axum::extract::State;
use axum::extract::rejection::StringRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use livekit_protocol::{ParticipantInfo, WebhookEvent};
use streamit_api::Message;
use streamit_api::openapi::{Failure, Success};

use crate::app::AppState;
use crate::db::now_ms;
use crate::error::{AppError, AppResult, ok};
use crate::liveness::is_viewer;

#[utoipa::path(post, path = "/livekit/webhook", tag = "livekit",
    summary = "LiveKit's webhook receiver",
    description = "The body is LiveKit's WebhookEvent (protobuf JSON, `application/webhook+json`). \
Unsigned, wrongly signed, expired or tampered deliveries change nothing. An event delivered \
before, or whose createdAt is not recent, is acknowledged and ignored.",
    request_body(content = Object, content_type = "application/webhook+json",
        description = "LiveKit's WebhookEvent"),
    security(("livekitWebhook" = [])),
    responses(
        (status = 200, description = "Handled, or acknowledged and ignored", body = Success<Message>),
        (status = 400, description = "The body could not be read as UTF-8", body = Failure),
        (status = 401, description = "No signature, or an invalid one", body = Failure),
        (status = 413, description = "Body over 64 KiB", body = Failure),
        (status = 500, description = "Handling failed; LiveKit retries the delivery", body = Failure),
    ))]
pub async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<String, StringRejection>,
) -> AppResult<Response> {
    // An oversized or non-UTF-8 body gets the JSON envelope like every other route.
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::PayloadTooLarge
        } else {
            AppError::BadRequest("Could not read the webhook body".into())
        }
    })?;
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| AppError::Unauthorized("Missing webhook signature".into()))?;
    let event = match state.webhooks.receive(&body, auth) {
        Ok(ev) => ev,
        Err(e) => {
            // The error says which check failed; it holds no key material.
            tracing::warn!(reason = %e, "rejected webhook");
            return Err(AppError::Unauthorized("Invalid webhook signature".into()));
        }
    };
    let now = now_ms();
    let created_ms = event.created_at.saturating_mul(1000);
    if created_ms < now.saturating_sub(ms(MAX_EVENT_AGE))
        || created_ms > now.saturating_add(ms(MAX_EVENT_AHEAD))
    {
        tracing::warn!(event = %event.event, id = %event.id, created_at = event.created_at,
            "ignored a webhook whose createdAt is not recent (replayed or delayed too long)");
        return Ok(accepted());
    }
    if !event.id.is_empty() && !state.db.record_webhook_event(&event.id, now).await? {
        tracing::info!(event = %event.event, id = %event.id, "ignored a webhook delivered before");
        return Ok(accepted());
    }
    match handle(&state, &event, created_ms.min(now)).await {
        Ok(()) => Ok(accepted()),
        Err(e) => {
            if !event.id.is_empty()
                && let Err(forget) = state.db.forget_webhook_event(&event.id).await
            {
                tracing::warn!(id = %event.id, error = %forget, "could not forget a failed webhook event");
            }
            Err(e)
        }
    }
}

/// How old (by its `createdAt`) a webhook event may be. LiveKit posts events
/// as they happen and retries a failed delivery for seconds, not minutes.
pub const MAX_EVENT_AGE: Duration = Duration::from_secs(5 * 60);
/// How far ahead of our clock an event's `createdAt` may be (clock skew).
pub const MAX_EVENT_AHEAD: Duration = Duration::from_secs(60);

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

async fn handle(state: &AppState, event: &WebhookEvent, at: i64) -> AppResult<()> {
    let room = event.room.as_ref();
    let room_name = room.map(|r| r.name.as_str()).unwrap_or("");
    let room_sid = room.map(|r| r.sid.as_str()).unwrap_or("");
    tracing::debug!(event = %event.event, room = %room_name, id = %event.id, "webhook");
    if room_name.is_empty() {
        return Ok(());
    }
    match event.event.as_str() {
        "participant_joined" | "participant_left" | "participant_connection_aborted" => {
            let Some(p) = event.participant.as_ref() else {
                return Ok(());
            };
            let joined = event.event == "participant_joined";
            if p.identity == room_name {
                creator_presence(state, room_name, room_sid, p, joined, at).await?;
            } else if is_viewer(room_name, p) {
                let live = state
                    .db
                    .viewer_presence(room_name, &p.sid, &p.identity, joined, at)
                    .await?;
                tracing::info!(room = %room_name, identity = %p.identity, sid = %p.sid, joined, live, "viewer presence");
                if joined {
                    let (state, room, p) = (state.clone(), room_name.to_string(), p.clone());
                    tokio::spawn(async move {
                        if let Err(e) = crate::chat_rules::check_joined(&state, &room, &p).await {
                            tracing::warn!(%room, identity = %p.identity, error = %e,
                                "could not check a joining viewer against the chat rules");
                        }
                    });
                }
            }
        }
        "track_published" | "track_unpublished" => {
            let Some(p) = event
                .participant
                .as_ref()
                .filter(|p| p.identity == room_name)
            else {
                return Ok(());
            };
            if event.event == "track_published" {
                if state
                    .db
                    .publisher_present(room_name, &p.sid, room_sid)
                    .await?
                {
                    tracing::debug!(room = %room_name, sid = %p.sid, "the creator published a track");
                }
            } else {
                let (state, room, sid) = (state.clone(), room_name.to_string(), p.sid.clone());
                tokio::spawn(async move {
                    if let Err(e) = crate::liveness::creator_unpublished(&state, &room, &sid).await
                    {
                        tracing::warn!(%room, error = %e,
                            "could not check the creator's tracks after an unpublish; the reconcile retries");
                    }
                });
            }
        }
        "room_finished" => {
            let created_ms = room
                .map(|r| {
                    if r.creation_time_ms > 0 {
                        r.creation_time_ms
                    } else {
                        r.creation_time.saturating_mul(1000)
                    }
                })
                .unwrap_or(0);
            let ended = state
                .db
                .room_finished(room_name, room_sid, created_ms, now_ms())
                .await?;
            if ended {
                tracing::info!(room = %room_name, "room finished: stream marked offline");
            }
        }
        _ => {}
    }
    Ok(())
}

/// The creator's participant joined (the publisher is back: a running grace
/// is cancelled) or left (the grace starts). A creator who may no longer
/// stream is removed again.
async fn creator_presence(
    state: &AppState,
    room: &str,
    room_sid: &str,
    p: &ParticipantInfo,
    joined: bool,
    at: i64,
) -> AppResult<()> {
    if joined {
        let open = state.db.publisher_present(room, &p.sid, room_sid).await?;
        tracing::info!(%room, sid = %p.sid, session_open = open, "the creator joined the room");
        let (state, room, p) = (state.clone(), room.to_string(), p.clone());
        tokio::spawn(async move {
            if let Err(e) = crate::liveness::enforce_creator_allowed(&state, &room, &p).await {
                tracing::warn!(%room, error = %e, "could not check a joining creator's approval");
            }
        });
    } else {
        let started = state.db.publisher_lost(room, Some(&p.sid), at).await?;
        tracing::info!(%room, sid = %p.sid, grace_started = started,
            grace_secs = state.config.publisher_grace.as_secs(), "the creator left the room");
    }
    Ok(())
}

fn accepted() -> Response {
    ok(
        StatusCode::OK,
        Message {
            message: "ok".into(),
        },
    )
}
