//! The endpoint handlers (paths and shapes: ARCHITECTURE.md's contract table).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use streamit_api::*;

use crate::app::{
    ApiJson, ApiPath, AppState, valid_description, valid_identity, valid_name, valid_password,
    valid_range, valid_title, valid_username,
};
use crate::auth::{self, AuthUser, ClientIp, Creator, MaybeUser, Owner};
use crate::chat_rules::{self, ChatSettings, ViewerKind};
use crate::db::Sanction;
use crate::db::{DbError, StreamPatch, UserRow, new_id, now_ms};
use crate::error::{AppError, AppResult, ok};
use crate::openapi::{SessionIdPath, UsernamePath};
use streamit_api::openapi::{Failure, Success};

fn session_ttl_ms(state: &AppState) -> i64 {
    i64::try_from(state.config.session_ttl.as_millis()).unwrap_or(i64::MAX / 2)
}

async fn issue_session(state: &AppState, user: &UserRow) -> AppResult<AuthResponse> {
    let (token, hash) = auth::new_session_token();
    let now = now_ms();
    let expires_at = now.saturating_add(session_ttl_ms(state));
    state
        .db
        .insert_auth_session(&hash, &user.id, now, expires_at)
        .await?;
    Ok(AuthResponse {
        token,
        expires_at,
        user: user.to_api(),
    })
}

/// A stream as returned to clients: with its watch URL
/// (`{public_web_url}/{username}`).
pub fn with_watch_url(state: &AppState, mut stream: Stream) -> Stream {
    stream.watch_url = format!("{}/{}", state.config.public_web_url(), stream.user.username);
    stream
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> AppResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AppError::Internal(format!("blocking task failed: {e}")))
}

#[utoipa::path(get, path = "/health", tag = "health",
    summary = "Liveness and database check",
    responses(
        (status = 200, description = "Up, and the database answers", body = Success<Health>),
        (status = 500, description = "The database does not answer", body = Failure),
    ))]
pub async fn health(State(state): State<AppState>) -> AppResult<Response> {
    state.db.ping().await?;
    Ok(ok(
        StatusCode::OK,
        Health {
            status: "ok".into(),
        },
    ))
}

// --- accounts -------------------------------------------------------------------

#[utoipa::path(post, path = "/auth/register", tag = "accounts",
    summary = "Create an account (viewer or creator) and log in",
    description = "Creators wait for an admin's approval before they can set up a stream or go live.",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Created; the session token", body = Success<AuthResponse>),
        (status = 400, description = "Malformed JSON", body = Failure),
        (status = 403, description = "role `admin`: admins are made with the server's CLI", body = Failure),
        (status = 409, description = "The username is taken (case-insensitive)", body = Failure),
        (status = 413, description = "Body over 64 KiB", body = Failure),
        (status = 415, description = "Not a JSON body", body = Failure),
        (status = 422, description = "The body breaks the schema", body = Failure),
        (status = 429, description = "Too many registrations from this address (Retry-After)", body = Failure),
        (status = 500, description = "Internal error", body = Failure),
    ))]
pub async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> AppResult<Response> {
    // Each registration costs an argon2id hash: bound them per client IP.
    state
        .register_ip_limiter
        .hit(&ip.to_string())
        .map_err(|retry| AppError::TooManyRequests {
            message: "Too many registrations; try again later".into(),
            retry_after_secs: retry.as_secs(),
        })?;
    let username = valid_username(&req.username)?;
    valid_password(&req.password)?;
    let display_name = match &req.display_name {
        Some(d) => valid_name("displayName", d)?,
        None => username.clone(),
    };
    let role = match req.role.unwrap_or(Role::Viewer) {
        Role::Admin => {
            return Err(AppError::forbidden(
                "Admin accounts are created with the server's CLI",
            ));
        }
        r => r,
    };
    let password = req.password;
    let password_hash = blocking(move || auth::hash_password(&password)).await??;
    let user = UserRow {
        id: new_id(),
        username,
        display_name,
        password_hash,
        role,
        // Viewers need no approval; creators wait for an admin.
        is_approved: role == Role::Viewer,
        created_at: now_ms(),
    };
    let (token, hash) = auth::new_session_token();
    let expires_at = user.created_at.saturating_add(session_ttl_ms(&state));
    match state
        .db
        .insert_user_with_session(&user, &hash, expires_at)
        .await
    {
        Ok(()) => {}
        Err(DbError::Conflict) => return Err(AppError::Conflict("Username is taken".into())),
        Err(e) => return Err(e.into()),
    }
    tracing::info!(user_id = %user.id, username = %user.username, role = %user.role, "registered");
    let resp = AuthResponse {
        token,
        expires_at,
        user: user.to_api(),
    };
    Ok(ok(StatusCode::CREATED, resp))
}

#[utoipa::path(post, path = "/auth/login", tag = "accounts",
    summary = "Log in (throttled per address, and per account and address)",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "The session token", body = Success<AuthResponse>),
        (status = 400, description = "Malformed JSON", body = Failure),
        (status = 401, description = "Invalid username or password", body = Failure),
        (status = 413, description = "Body over 64 KiB", body = Failure),
        (status = 415, description = "Not a JSON body", body = Failure),
        (status = 422, description = "The body breaks the schema", body = Failure),
        (status = 429, description = "Too many attempts from this address, or this account is in a back-off from it (Retry-After)", body = Failure),
        (status = 500, description = "Internal error", body = Failure),
    ))]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<LoginRequest>,
) -> AppResult<Response> {
    // Policy: `auth::LoginThrottle` (per IP, and per account *and* IP with back-off).
    limits::check_login(&req.username, &req.password).map_err(AppError::Unprocessable)?;
    let username = req.username.trim().to_ascii_lowercase();
    let throttle = state.login_throttle;
    throttle.admit(&state.db, &username, ip).await?;
    let user = state.db.user_by_username(&username).await?;
    let hash = match &user {
        Some(u) => u.password_hash.clone(),
        None => auth::dummy_hash().to_string(),
    };
    let password = req.password;
    let good = blocking(move || auth::verify_password(&password, &hash)).await?;
    match user {
        Some(u) if good => {
            throttle.succeeded(&state.db, &username, ip).await?;
            Ok(ok(StatusCode::OK, issue_session(&state, &u).await?))
        }
        _ => {
            throttle.failed(&state.db, &username, ip).await?;
            Err(AppError::Unauthorized(
                "Invalid username or password".into(),
            ))
        }
    }
}

#[utoipa::path(post, path = "/auth/logout", tag = "accounts",
    summary = "Revoke this session token",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Logged out", body = Success<Message>),
        (status = 401, description = "No valid session token", body = Failure),
        (status = 500, description = "Internal error", body = Failure),
    ))]
pub async fn logout(State(state): State<AppState>, auth: AuthUser) -> AppResult<Response> {
    state.db.delete_auth_session(&auth.token_hash).await?;
    Ok(ok(
        StatusCode::OK,
        Message {
            message: "Logged out".into(),
        },
    ))
}

#[utoipa::path(get, path = "/auth/me", tag = "accounts",
    summary = "The logged-in account",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The account", body = Success<User>),
        (status = 401, description = "No valid session token", body = Failure),
        (status = 500, description = "Internal error", body = Failure),
    ))]
pub async fn me(auth: AuthUser) -> AppResult<Response> {
    Ok(ok(StatusCode::OK, auth.user.to_api()))
}

async fn followee(state: &AppState, username: &str) -> AppResult<UserRow> {
    let name = username.trim().to_ascii_lowercase();
    match state.db.user_by_username(&name).await? {
        Some(u) if u.role != Role::Viewer => Ok(u),
        Some(_) => Err(AppError::Conflict("Only creators can be followed".into())),
        None => Err(AppError::not_found("User not found")),
    }
}

#[utoipa::path(post, path = "/users/{username}/follow", tag = "accounts",
    summary = "Follow a creator",
    params(UsernamePath),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Following (also when already)", body = Success<FollowResponse>),
        (status = 400, description = "The path parameter is not valid percent-encoded UTF-8", body = Failure),
        (status = 401, description = "No valid session token", body = Failure),
        (status = 404, description = "No such user", body = Failure),
        (status = 409, description = "The user is not a creator, or is you", body = Failure),
        (status = 500, description = "Internal error", body = Failure),
    ))]
pub async fn follow(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(username): ApiPath,
) -> AppResult<Response> {
    let target = followee(&state, &username).await?;
    if target.id == auth.user.id {
        return Err(AppError::Conflict("You cannot follow yourself".into()));
    }
    state.db.follow(&auth.user.id, &target.id).await?;
    Ok(ok(
        StatusCode::OK,
        FollowResponse {
            username: target.username,
            following: true,
        },
    ))
}

#[utoipa::path(delete, path = "/users/{username}/follow", tag = "accounts",
    summary = "Unfollow a creator",
    params(UsernamePath),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Not following (also when not before)", body = Success<FollowResponse>),
        (status = 400, description = "The path parameter is not valid percent-encoded UTF-8", body = Failure),
        (status = 401, description = "No valid session token", body = Failure),
        (status = 404, description = "No such user", body = Failure),
        (status = 500, description = "Internal error", body = Failure),
    ))]
pub async fn unfollow(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(username): ApiPath,
) -> AppResult<Response> {
    let name = username.trim().to_ascii_lowercase();
    let target = state
        .db
        .user_by_username(&name)
        .await?
        .ok_or_else(|| AppError::not_found("User not found"))?;
    state.db.unfollow(&auth.user.id, &target.id).await?;
    Ok(ok(
        StatusCode::OK,
        FollowResponse {
            username: target.username,
            following: false,
        },
    ))
}

#[utoipa::path(post, path = "/admin/users/{username}/approve", tag = "admin",
    summary = "Approve a creator",
    params(UsernamePath),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The account, approved", body = Success<User>),
        (status = 400, description = "The path parameter is not valid percent-encoded UTF-8", body = Failure),
        (status = 401, description = "No valid session token", body = Failure),
        (status = 403, description = "Not an admin", body = Failure),
        (status = 404, description = "No such user", body = Failure),
        (status = 500, description = "Internal error", body = Failure),
    ))]
pub async fn admin_approve(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(username): ApiPath,
) -> AppResult<Response> {
    if auth.user.role != Role::Admin {
        return Err(AppError::forbidden("Only admins can approve creators"));
    }
    let name = username.trim().to_ascii_lowercase();
    let user = state
        .db
        .set_role(&name, None, Some(true))
        .await?
        .ok_or_else(|| AppError::not_found("User not found"))?;
    tracing::info!(admin = %auth.user.username, approved = %user.username, "creator approved");
    Ok(ok(StatusCode::OK, user.to_api()))
}

/// Withdraws a creator's approval. If they are live, the stream ends at once
/// (end reason `revoked`) and their participant is removed from the LiveKit
/// room; a rejoin with the still-valid publish token is removed again
/// (`liveness::enforce_creator_allowed`). A RoomService failure is logged, not
/// returned: the database already says offline, and the reconcile retries.
#[utoipa::path(post, path = "/admin/users/{username}/revoke", tag = "admin",
    summary = "Withdraw a creator's approval",
    description = "A live stream of theirs ends at once (endReason `revoked`) and their participant \
is removed from the LiveKit room (also when it rejoins).",
    params(UsernamePath),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The account, no longer approved", body = Success<User>),
        (status = 400, description = "The path parameter is not valid percent-encoded UTF-8", body = Failure),
        (status = 401, description = "No valid session token", body = Failure),
        (status = 403, description = "Not an admin", body = Failure),
        (status = 404, description = "No such user", body = Failure),
        (status = 500, description = "Internal error", body = Failure),
    ))]
pub async fn admin_revoke(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(username): ApiPath,
) -> AppResult<Response> {
    if auth.user.role != Role::Admin {
        return Err(AppError::forbidden("Only admins can revoke creators"));
    }
    let name = username.trim().to_ascii_lowercase();
    let (user, ended) = state
        .db
        .revoke(&name)
        .await?
        .ok_or_else(|| AppError::not_found("User not found"))?;
    tracing::info!(admin = %auth.user.username, revoked = %user.username, stream_ended = ended, "creator approval revoked");
    if !user.may_stream()
        && let Err(e) = crate::liveness::remove_creator(&state, &user.id).await
    {
        tracing::warn!(room = %user.id, error = %e,
            "could not remove the revoked creator from the room now; the reconcile retries");
    }
    Ok(ok(StatusCode::OK, user.to_api()))
}

// --- creator: stream ------------------------------------------------------------

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

// --- viewers --------------------------------------------------------------------

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
