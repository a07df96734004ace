//! The endpoint handlers (paths and shapes: ARCHITECTURE.md's contract table).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use streamit_api::*;

use crate::app::{
    ApiJson, ApiPath, AppState, valid_description, valid_name, valid_password, valid_title,
    valid_username,
};
use crate::auth::{self, AuthUser, ClientIp, Creator, MaybeUser, Owner};
use crate::chat_rules::{self, ChatSettings, ViewerKind};
use crate::db::Sanction;
use crate::db::{DbError, StreamPatch, UserRow, new_id, now_ms};
use crate::error::{AppError, AppResult, ok};

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

pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<LoginRequest>,
) -> AppResult<Response> {
    // Policy: `auth::LoginThrottle` (per IP, and per account *and* IP with back-off).
    let username = req.username.trim().to_ascii_lowercase();
    if username.len() > 256 || req.password.len() > 4096 {
        return Err(AppError::Unauthorized(
            "Invalid username or password".into(),
        ));
    }
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

pub async fn logout(State(state): State<AppState>, auth: AuthUser) -> AppResult<Response> {
    state.db.delete_auth_session(&auth.token_hash).await?;
    Ok(ok(
        StatusCode::OK,
        Message {
            message: "Logged out".into(),
        },
    ))
}

pub async fn me(auth: AuthUser) -> AppResult<Response> {
    Ok(ok(StatusCode::OK, auth.user.to_api()))
}

async fn followee(state: &AppState, username: &str) -> AppResult<UserRow> {
    let name = username.trim().to_ascii_lowercase();
    match state.db.user_by_username(&name).await? {
        Some(u) if u.role != Role::Viewer => Ok(u),
        Some(_) => Err(AppError::unprocessable("Only creators can be followed")),
        None => Err(AppError::not_found("User not found")),
    }
}

pub async fn follow(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(username): ApiPath,
) -> AppResult<Response> {
    let target = followee(&state, &username).await?;
    if target.id == auth.user.id {
        return Err(AppError::unprocessable("You cannot follow yourself"));
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

/// Upper bounds of the studio's figures: far above any real session (a
/// year at 60 fps on three layers is ~6e9 frames), low enough that a
/// garbage value is refused instead of stored.
const MAX_CHAT_MESSAGES: i64 = 1_000_000_000;
const MAX_FRAMES: i64 = 1_000_000_000_000;
const MAX_BITRATE_BPS: i64 = 10_000_000_000;
const MAX_RECONNECTS: i64 = 1_000_000;

/// Checks every figure of a stats report; the first one out of range is the
/// error (422), and nothing is written.
fn validate_stats(req: &SessionStatsReport) -> Result<(), AppError> {
    let figures = [
        ("chatMessages", Some(req.chat_messages), MAX_CHAT_MESSAGES),
        ("framesSent", req.frames_sent, MAX_FRAMES),
        ("framesDropped", req.frames_dropped, MAX_FRAMES),
        (
            "averageBitrateBps",
            req.average_bitrate_bps,
            MAX_BITRATE_BPS,
        ),
        ("reconnects", req.reconnects, MAX_RECONNECTS),
    ];
    for (name, value, max) in figures {
        if let Some(v) = value
            && !(0..=max).contains(&v)
        {
            return Err(AppError::unprocessable(format!(
                "{name} must be between 0 and {max}"
            )));
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
pub async fn viewer_token(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<ViewerTokenRequest>,
) -> AppResult<Response> {
    let host_id = req.host_id.trim();
    if host_id.is_empty() || host_id.len() > 64 {
        return Err(AppError::unprocessable("hostId must be a user id"));
    }
    let guest_name = match (&user, &req.guest_name) {
        (Some(_), Some(_)) => {
            return Err(AppError::unprocessable("guestName is only for guests"));
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
