//! `POST /api/livekit/webhook`: LiveKit's signed room events.
//!
//! LiveKit signs each delivery with a JWT (HS256, our API key/secret) in the
//! `Authorization` header whose `sha256` claim is the body's hash;
//! `livekit_api::webhooks::WebhookReceiver` checks both. Anything unsigned,
//! signed with another key, expired or with a tampered body is a 401 and
//! changes nothing.
//!
//! What we use: `participant_joined` / `participant_left` /
//! `participant_connection_aborted` of viewers (not the creator, whose
//! identity is the room name) move the session's current and peak viewer
//! counts; the creator's `participant_joined` records the LiveKit room sid;
//! `room_finished` ends the session and marks the stream offline, so a
//! studio that crashed without calling end-stream does not stay "live".
//! A viewer's `participant_joined` is also checked against the chat rules
//! (`chat_rules::check_joined`, in the background): a banned identity that
//! rejoins with an older token is removed again, and a permission the token
//! grants but the rules no longer allow (a timeout, chat turned off) is revoked.

use axum::extract::State;
use axum::extract::rejection::StringRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use livekit_protocol::{ParticipantInfo, participant_info};
use streamit_api::Message;

use crate::app::AppState;
use crate::db::now_ms;
use crate::error::{AppError, AppResult, ok};

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
    let room = event.room.as_ref();
    let room_name = room.map(|r| r.name.as_str()).unwrap_or("");
    let room_sid = room.map(|r| r.sid.as_str()).unwrap_or("");
    tracing::debug!(event = %event.event, room = %room_name, id = %event.id, "webhook");
    if room_name.is_empty() {
        return Ok(accepted());
    }
    let at = if event.created_at > 0 {
        event.created_at.saturating_mul(1000)
    } else {
        now_ms()
    };
    match event.event.as_str() {
        "participant_joined" | "participant_left" | "participant_connection_aborted" => {
            let Some(p) = event.participant.as_ref() else {
                return Ok(accepted());
            };
            let joined = event.event == "participant_joined";
            if p.identity == room_name {
                if joined {
                    state.db.creator_joined(room_name, room_sid).await?;
                }
            } else if is_viewer(p) {
                let counted = state
                    .db
                    .viewer_presence(room_name, &p.sid, &p.identity, joined, at)
                    .await?;
                tracing::debug!(room = %room_name, identity = %p.identity, joined, counted, "viewer presence");
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
    Ok(accepted())
}

/// Ordinary participants only: not egress recorders, ingress, SIP or agents.
fn is_viewer(p: &ParticipantInfo) -> bool {
    p.kind == participant_info::Kind::Standard as i32 && !p.sid.is_empty()
}

fn accepted() -> Response {
    ok(
        StatusCode::OK,
        Message {
            message: "ok".into(),
        },
    )
}
