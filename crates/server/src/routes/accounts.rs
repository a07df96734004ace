//! Accounts: register, log in and out, who am I, follow, and the admin's approval of creators.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use streamit_api::*;

use super::{blocking, issue_session, session_ttl_ms};
use crate::app::{ApiJson, ApiPath, AppState, valid_name, valid_password, valid_username};
use crate::auth::{self, AuthUser, ClientIp};
use crate::db::{DbError, UserRow, new_id, now_ms};
use crate::error::{AppError, AppResult, ok};
use crate::openapi::UsernamePath;
use streamit_api::openapi::{Failure, Success};

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
        .register_ip_limit
        .hit(&state.db, &ip.to_string())
        .await?;
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
