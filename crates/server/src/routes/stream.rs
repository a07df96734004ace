//! The creator's stream: set up, go live, end, title and chat rules, and the sessions
//! (history and the studio's figures).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use streamit_api::*;

use super::with_watch_url;
use crate::app::{ApiJson, ApiPath, AppState, valid_description, valid_range, valid_title};
use crate::auth::{Creator, Owner};
use crate::chat_rules::{self};
use crate::db::{StreamPatch, UserRow};
use crate::error::{AppError, AppResult, ok};
use crate::openapi::SessionIdPath;
use streamit_api::openapi::{Failure, Success};

fn chat_patch(
    enabled: Option<bool>,
    delayed: Option<bool>,
    followers_only: Option<bool>,
) -> StreamPatch {
    StreamPatch {
        is_chat_enabled: enabled,
        is_chat_delayed: delayed,
        is_chat_followers_only: followers_only,
        ..Default::default()
    }
}

#[utoipa::path(post, path = "/stream/setup", tag = "stream",
    summary = "Create or update the stream",
    description = "Chat settings left out keep their value (defaults on create: enabled, not delayed, \
not followers-only). While live, the room's metadata and the viewers' permissions follow.",
    request_body = SetupStreamRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Updated", body = Success<Stream>),
        (status = 201, description = "Created", body = Success<Stream>),
        (status = 400, description = "Malformed JSON", body = Failure),
        (status = 401, description = "No valid session token", body = Failure),
        (status = 403, description = "Not an approved creator (or admin)", body = Failure),
        (status = 413, description = "Body over 64 KiB", body = Failure),
        (status = 415, description = "Not a JSON body", body = Failure),
        (status = 422, description = "The body breaks the schema", body = Failure),
        (status = 500, description = "Internal error", body = Failure),
    ))]
pub async fn setup_stream(
    State(state): State<AppState>,
    Creator(user): Creator,
    ApiJson(req): ApiJson<SetupStreamRequest>,
) -> AppResult<Response> {
    let title = valid_title(&req.title)?;
    let description = req
        .description
        .as_deref()
        .map(valid_description)
        .transpose()?;
    let patch = StreamPatch {
        title: Some(title.clone()),
        description,
        ..chat_patch(
            req.is_chat_enabled,
            req.is_chat_delayed,
            req.is_chat_followers_only,
        )
    };
    let (stream, created) = state.db.upsert_stream(&user.id, &title, &patch).await?;
    // While live: the room's metadata and the viewers' permissions follow.
    chat_rules::apply_stream_change(&state, &stream).await;
    let stream = with_watch_url(&state, stream);
    Ok(ok(
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        stream,
    ))
}

#[utoipa::path(post, path = "/stream/go-live", tag = "stream",
    summary = "Go live: a publish token, wsUrl and roomId",
    description = "Sets isLive and opens a stream session (or hands back the one still open).",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Live", body = Success<GoLiveResponse>),
        (status = 401, description = "No valid session token", body = Failure),
        (status = 403, description = "Not an approved creator (or admin)", body = Failure),
        (status = 404, description = "No stream set up", body = Failure),
        (status = 500, description = "Internal error", body = Failure),
    ))]
pub async fn go_live(State(state): State<AppState>, Creator(user): Creator) -> AppResult<Response> {
    // Mint first: if that fails nothing is written.
    let token = state.livekit_token(
        &user.id,
        &user.id,
        &user.display_name,
        streamit_api::room::ROLE_CREATOR,
        true,
    )?;
    let (stream, session_id) = state
        .db
        .go_live(&user.id)
        .await?
        .ok_or_else(|| AppError::not_found("No stream set up; call /api/stream/setup first"))?;
    tracing::info!(user_id = %user.id, %session_id, "went live");
    state.ensure_room(&stream);
    // Viewers already in the room count; a studio already there is noted.
    crate::liveness::spawn_reconcile(&state, &user.id);
    Ok(ok(
        StatusCode::OK,
        GoLiveResponse {
            token,
            ws_url: state.config.livekit_ws_url.clone(),
            room_id: user.id.clone(),
            stream: with_watch_url(&state, stream),
            session_id,
        },
    ))
}

/// Any owner may end their stream, approved or not: a creator whose approval
/// was revoked while live must still be able to stop.
#[utoipa::path(post, path = "/stream/end-stream", tag = "stream",
    summary = "End the stream: isLive=false, the session closed, its summary",
    description = "Also after an admin revoked the approval.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The session's summary", body = Success<StreamSession>),
        (status = 401, description = "No valid session token", body = Failure),
        (status = 403, description = "Not a creator (or admin)", body = Failure),
        (status = 404, description = "No stream set up, or it was never live", body = Failure),
        (status = 500, description = "Internal error", body = Failure),
    ))]
pub async fn end_stream(State(state): State<AppState>, Owner(user): Owner) -> AppResult<Response> {
    match state.db.end_stream(&user.id).await? {
        None => Err(AppError::not_found("No stream set up")),
        Some(None) => Err(AppError::not_found("This stream was never live")),
        Some(Some(session)) => {
            tracing::info!(user_id = %user.id, session_id = %session.id, "stream ended");
            Ok(ok(StatusCode::OK, session))
        }
    }
}

#[utoipa::path(get, path = "/stream/info", tag = "stream",
    summary = "The creator's stream",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The stream", body = Success<Stream>),
        (status = 401, description = "No valid session token", body = Failure),
        (status = 403, description = "Not an approved creator (or admin)", body = Failure),
        (status = 404, description = "No stream set up", body = Failure),
        (status = 500, description = "Internal error", body = Failure),
    ))]
pub async fn get_info(
    State(state): State<AppState>,
    Creator(user): Creator,
) -> AppResult<Response> {
    let stream = state
        .db
        .stream_by_user_id(&user.id)
        .await?
        .ok_or_else(|| AppError::not_found("No stream set up"))?;
    Ok(ok(StatusCode::OK, with_watch_url(&state, stream)))
}

#[utoipa::path(put, path = "/stream/info", tag = "stream",
    summary = "Edit title and/or description (also while live)",
    request_body = UpdateStreamInfoRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The stream", body = Success<Stream>),
        (status = 400, description = "Malformed JSON", body = Failure),
        (status = 401, description = "No valid session token", body = Failure),
        (status = 403, description = "Not an approved creator (or admin)", body = Failure),
        (status = 404, description = "No stream set up", body = Failure),
        (status = 413, description = "Body over 64 KiB", body = Failure),
        (status = 415, description = "Not a JSON body", body = Failure),
        (status = 422, description = "The body breaks the schema (also: neither field)", body = Failure),
        (status = 500, description = "Internal error", body = Failure),
    ))]
pub async fn put_info(
    State(state): State<AppState>,
    Creator(user): Creator,
    ApiJson(req): ApiJson<UpdateStreamInfoRequest>,
) -> AppResult<Response> {
    if req.title.is_none() && req.description.is_none() {
        return Err(AppError::unprocessable(
            "Nothing to update: send title and/or description",
        ));
    }
    let patch = StreamPatch {
        title: req.title.as_deref().map(valid_title).transpose()?,
        description: req
            .description
            .as_deref()
            .map(valid_description)
            .transpose()?,
        ..Default::default()
    };
    let stream = state
        .db
        .patch_stream(&user.id, &patch)
        .await?
        .ok_or_else(|| AppError::not_found("No stream set up"))?;
    chat_rules::apply_stream_change(&state, &stream).await;
    Ok(ok(StatusCode::OK, with_watch_url(&state, stream)))
}

#[utoipa::path(put, path = "/stream/chat-settings", tag = "stream",
    summary = "isChatEnabled, isChatDelayed, isChatFollowersOnly",
    description = "Fields left out keep their value. While live, the room's metadata and the viewers' \
permissions follow at once.",
    request_body = ChatSettingsRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The stream", body = Success<Stream>),
        (status = 400, description = "Malformed JSON", body = Failure),
        (status = 401, description = "No valid session token", body = Failure),
        (status = 403, description = "Not an approved creator (or admin)", body = Failure),
        (status = 404, description = "No stream set up", body = Failure),
        (status = 413, description = "Body over 64 KiB", body = Failure),
        (status = 415, description = "Not a JSON body", body = Failure),
        (status = 422, description = "The body breaks the schema", body = Failure),
        (status = 500, description = "Internal error", body = Failure),
    ))]
pub async fn chat_settings(
    State(state): State<AppState>,
    Creator(user): Creator,
    ApiJson(req): ApiJson<ChatSettingsRequest>,
) -> AppResult<Response> {
    let patch = chat_patch(
        req.is_chat_enabled,
        req.is_chat_delayed,
        req.is_chat_followers_only,
    );
    let stream = state
        .db
        .patch_stream(&user.id, &patch)
        .await?
        .ok_or_else(|| AppError::not_found("No stream set up"))?;
    chat_rules::apply_stream_change(&state, &stream).await;
    Ok(ok(StatusCode::OK, with_watch_url(&state, stream)))
}

async fn my_stream_id(state: &AppState, user: &UserRow) -> AppResult<String> {
    Ok(state
        .db
        .stream_by_user_id(&user.id)
        .await?
        .ok_or_else(|| AppError::not_found("No stream set up"))?
        .id)
}

#[utoipa::path(get, path = "/stream/sessions", tag = "stream",
    summary = "This creator's stream sessions, newest first (at most 100)",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The sessions", body = Success<Vec<StreamSession>>),
        (status = 401, description = "No valid session token", body = Failure),
        (status = 403, description = "Not a creator (or admin)", body = Failure),
        (status = 404, description = "No stream set up", body = Failure),
        (status = 500, description = "Internal error", body = Failure),
    ))]
pub async fn list_sessions(
    State(state): State<AppState>,
    Owner(user): Owner,
) -> AppResult<Response> {
    let stream_id = my_stream_id(&state, &user).await?;
    Ok(ok(
        StatusCode::OK,
        state.db.sessions(&stream_id, 100).await?,
    ))
}

#[utoipa::path(get, path = "/stream/sessions/latest", tag = "stream",
    summary = "The latest session: the summary shown after End Stream",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The session", body = Success<StreamSession>),
        (status = 401, description = "No valid session token", body = Failure),
        (status = 403, description = "Not a creator (or admin)", body = Failure),
        (status = 404, description = "No stream set up, or no session yet", body = Failure),
        (status = 500, description = "Internal error", body = Failure),
    ))]
pub async fn latest_session(
    State(state): State<AppState>,
    Owner(user): Owner,
) -> AppResult<Response> {
    let stream_id = my_stream_id(&state, &user).await?;
    let s = state
        .db
        .latest_session(&stream_id)
        .await?
        .ok_or_else(|| AppError::not_found("No stream session yet"))?;
    Ok(ok(StatusCode::OK, s))
}

#[utoipa::path(get, path = "/stream/sessions/{id}", tag = "stream",
    summary = "One session of this creator's stream",
    params(SessionIdPath),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The session", body = Success<StreamSession>),
        (status = 400, description = "The path parameter is not valid percent-encoded UTF-8", body = Failure),
        (status = 401, description = "No valid session token", body = Failure),
        (status = 403, description = "Not a creator (or admin)", body = Failure),
        (status = 404, description = "No stream set up, or no such session of it", body = Failure),
        (status = 500, description = "Internal error", body = Failure),
    ))]
pub async fn get_session(
    State(state): State<AppState>,
    Owner(user): Owner,
    ApiPath(id): ApiPath,
) -> AppResult<Response> {
    let stream_id = my_stream_id(&state, &user).await?;
    let s = state
        .db
        .session(&stream_id, &id)
        .await?
        .ok_or_else(|| AppError::not_found("Session not found"))?;
    Ok(ok(StatusCode::OK, s))
}

/// Checks every figure of a stats report against `limits`; the first one out
/// of range is the error (422), and nothing is written.
fn validate_stats(req: &SessionStatsReport) -> Result<(), AppError> {
    valid_range(
        "chatMessages",
        req.chat_messages,
        0,
        limits::CHAT_MESSAGES_MAX,
    )?;
    let figures = [
        ("framesSent", req.frames_sent, limits::FRAMES_MAX),
        ("framesDropped", req.frames_dropped, limits::FRAMES_MAX),
        (
            "averageBitrateBps",
            req.average_bitrate_bps,
            limits::BITRATE_BPS_MAX,
        ),
        ("reconnects", req.reconnects, limits::RECONNECTS_MAX),
    ];
    for (name, value, max) in figures {
        if let Some(v) = value {
            valid_range(name, v, 0, max)?;
        }
    }
    Ok(())
}

/// The studio's own figures for a session. Which source wins:
/// - viewer counts (peak, current) come only from LiveKit's webhooks and are
///   *not* accepted from the studio: the webhook count is LiveKit's own and
///   cannot be inflated by a client;
/// - chat messages and the media figures (frames sent/dropped, average
///   bitrate, reconnects) come only from here: LiveKit's webhooks report
///   neither data packets nor the publisher's encoder, and the studio is in
///   the room for the whole session. They never decrease: a repeated or
///   stale report with smaller values leaves the stored ones alone
///   (`Db::report_session_stats`).
#[utoipa::path(post, path = "/stream/sessions/{id}/stats", tag = "stream",
    summary = "The studio's figures for a session",
    description = "Chat messages, frames sent and dropped, average bitrate, reconnects: running \
totals, each kept only when it does not decrease; media figures left out keep their value. \
Viewer counts come from LiveKit's webhooks only.",
    params(SessionIdPath),
    request_body = SessionStatsReport,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The session", body = Success<StreamSession>),
        (status = 400, description = "Malformed JSON, or a path parameter that is not valid percent-encoded UTF-8", body = Failure),
        (status = 401, description = "No valid session token", body = Failure),
        (status = 403, description = "Not a creator (or admin)", body = Failure),
        (status = 404, description = "No stream set up, or no such session of it", body = Failure),
        (status = 413, description = "Body over 64 KiB", body = Failure),
        (status = 415, description = "Not a JSON body", body = Failure),
        (status = 422, description = "The body breaks the schema (nothing is written)", body = Failure),
        (status = 500, description = "Internal error", body = Failure),
    ))]
pub async fn report_stats(
    State(state): State<AppState>,
    Owner(user): Owner,
    ApiPath(id): ApiPath,
    ApiJson(req): ApiJson<SessionStatsReport>,
) -> AppResult<Response> {
    validate_stats(&req)?;
    let stream_id = my_stream_id(&state, &user).await?;
    let s = state
        .db
        .report_session_stats(&stream_id, &id, &req)
        .await?
        .ok_or_else(|| AppError::not_found("Session not found"))?;
    Ok(ok(StatusCode::OK, s))
}
