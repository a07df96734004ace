//! What viewers ask for: a creator's stream, a viewer token, the live list and the
//! streams a viewer follows.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use streamit_api::*;

use super::with_watch_url;
use crate::app::{ApiJson, ApiPath, AppState, valid_identity, valid_name};
use crate::auth::{AuthUser, ClientIp, MaybeUser};
use crate::chat_rules::{self, ChatSettings, ViewerKind};
use crate::db::Sanction;
use crate::db::{new_id, now_ms};
use crate::error::{AppError, AppResult, ok};
use crate::openapi::UsernamePath;
use streamit_api::openapi::{Failure, Success};

#[utoipa::path(get, path = "/viewer/stream/{username}", tag = "viewer",
    summary = "A stream by its creator's username",
    params(UsernamePath),
    responses(
        (status = 200, description = "The stream", body = Success<Stream>),
        (status = 400, description = "The path parameter is not valid percent-encoded UTF-8", body = Failure),
        (status = 404, description = "No such creator, or no stream set up", body = Failure),
        (status = 500, description = "Internal error", body = Failure),
    ))]
pub async fn stream_by_username(
    State(state): State<AppState>,
    ApiPath(username): ApiPath,
) -> AppResult<Response> {
    let name = username.trim().to_ascii_lowercase();
    let stream = state
        .db
        .stream_by_username(&name)
        .await?
        .ok_or_else(|| AppError::not_found("Stream not found"))?;
    Ok(ok(StatusCode::OK, with_watch_url(&state, stream)))
}

/// A subscribe-only token for a live stream. The grant follows the chat
/// rules (`chat_rules::chat_access`): chat off, followers-only for guests and
/// non-followers, or a running timeout → no `canPublishData`; banned → 403.
/// Guests: the name may not imitate a registered user's (422), and the
/// (host, identity, client address) is recorded so that a ban of this guest
/// can refuse that address guest tokens (see `moderation`).
#[utoipa::path(post, path = "/viewer/token", tag = "viewer",
    summary = "A subscribe-only LiveKit token for a live stream",
    description = "For a logged-in viewer, or a guest (`guest-…`) without a bearer token. The \
token's participant attribute `streamit.role` is `viewer` or `guest`; its canPublishData follows \
the chat rules (chat off → none; followers-only → followers only; timed out → none until the \
end), and `chat` says the same in words.",
    request_body = ViewerTokenRequest,
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The token", body = Success<ViewerTokenResponse>),
        (status = 400, description = "Malformed JSON", body = Failure),
        (status = 401, description = "A bearer token was sent but is not valid", body = Failure),
        (status = 403, description = "Banned from this stream (the account, or guests from this address for 24 h)", body = Failure),
        (status = 404, description = "No stream for this hostId", body = Failure),
        (status = 409, description = "The stream is offline; a creator asked for a viewer token to their own stream; a guestName with a bearer token", body = Failure),
        (status = 413, description = "Body over 64 KiB", body = Failure),
        (status = 415, description = "Not a JSON body", body = Failure),
        (status = 422, description = "The body breaks the schema, or the guestName equals or imitates a registered user's name", body = Failure),
        (status = 500, description = "Internal error", body = Failure),
    ))]
pub async fn viewer_token(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<ViewerTokenRequest>,
) -> AppResult<Response> {
    let host_id = valid_identity("hostId", &req.host_id)?;
    let guest_name = match (&user, &req.guest_name) {
        (Some(_), Some(_)) => {
            return Err(AppError::Conflict(
                "guestName is only for guests: you are logged in".into(),
            ));
        }
        (Some(u), None) if u.id == host_id => {
            // The creator's identity in the room is their user id; a viewer
            // token with the same identity would kick the broadcast.
            return Err(AppError::Conflict(
                "You cannot watch your own stream with a viewer token".into(),
            ));
        }
        (Some(_), None) => None,
        (None, Some(n)) => Some(valid_name("guestName", n)?),
        (None, None) => Some("Guest".to_string()),
    };
    let stream = state
        .db
        .stream_by_user_id(host_id)
        .await?
        .ok_or_else(|| AppError::not_found("Stream not found"))?;
    if !stream.is_live {
        return Err(AppError::Conflict("Stream is offline".into()));
    }
    let now = now_ms();
    let settings = ChatSettings::from(&stream);
    let (identity, name, role, access) = match &user {
        Some(u) => {
            let timed_out = match state.db.sanction(host_id, &u.id, now).await? {
                Some(Sanction::Ban) => {
                    return Err(AppError::forbidden("You are banned from this stream"));
                }
                Some(Sanction::Timeout(until)) => Some(until),
                None => None,
            };
            let kind = if state.db.is_follower(&u.id, host_id).await? {
                ViewerKind::Follower
            } else {
                ViewerKind::NonFollower
            };
            (
                u.id.clone(),
                u.display_name.clone(),
                streamit_api::room::ROLE_VIEWER,
                chat_rules::chat_access(settings, kind, timed_out),
            )
        }
        None => {
            let name = guest_name.unwrap_or_else(|| "Guest".to_string());
            if state
                .db
                .guest_ip_banned(host_id, &ip.to_string(), now)
                .await?
            {
                return Err(AppError::forbidden(
                    "Guests from your address are banned from this stream",
                ));
            }
            // "Guest" is the default name for everyone; others must not pass
            // for a registered user.
            if name != "Guest" {
                let key = crate::names::name_key(&name).ok_or_else(|| {
                    AppError::unprocessable("guestName must contain visible characters")
                })?;
                // 422, not 409: pages read 409 here as "the stream is offline".
                if state.db.name_key_taken(&key).await? {
                    return Err(AppError::unprocessable(
                        "This name belongs to a registered user (or looks like it); choose another guest name",
                    ));
                }
            }
            (
                format!("guest-{}", new_id()),
                name,
                streamit_api::room::ROLE_GUEST,
                chat_rules::chat_access(settings, ViewerKind::Guest, None),
            )
        }
    };
    let token = state.livekit_token(host_id, &identity, &name, role, access.can_send)?;
    if role == streamit_api::room::ROLE_GUEST {
        state
            .db
            .record_guest_token(&identity, host_id, &name, &ip.to_string(), now)
            .await?;
    }
    Ok(ok(
        StatusCode::OK,
        ViewerTokenResponse {
            token,
            ws_url: state.config.livekit_ws_url.clone(),
            identity,
            name,
            role: role.to_string(),
            chat: access,
        },
    ))
}

#[utoipa::path(get, path = "/viewer/live", tag = "viewer",
    summary = "All live streams",
    responses(
        (status = 200, description = "The live streams", body = Success<Vec<Stream>>),
        (status = 500, description = "Internal error", body = Failure),
    ))]
pub async fn live(State(state): State<AppState>) -> AppResult<Response> {
    let streams: Vec<Stream> = state
        .db
        .live_streams()
        .await?
        .into_iter()
        .map(|s| with_watch_url(&state, s))
        .collect();
    Ok(ok(StatusCode::OK, streams))
}

#[utoipa::path(get, path = "/viewer/following", tag = "viewer",
    summary = "Live streams of the creators this account follows",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The live streams", body = Success<Vec<Stream>>),
        (status = 401, description = "No valid session token", body = Failure),
        (status = 500, description = "Internal error", body = Failure),
    ))]
pub async fn following(State(state): State<AppState>, auth: AuthUser) -> AppResult<Response> {
    let streams: Vec<Stream> = state
        .db
        .following_live(&auth.user.id)
        .await?
        .into_iter()
        .map(|s| with_watch_url(&state, s))
        .collect();
    Ok(ok(StatusCode::OK, streams))
}
