//! `/api/stream/moderation`: the creator's bans and timeouts.
//!
//! - ban: stored; in the room at once `canPublishData` is revoked and the
//!   participant removed (RoomService); future viewer tokens are 403; a
//!   participant rejoining with an older token is removed again by the
//!   `participant_joined` webhook and the periodic reconcile.
//! - timeout: stored until its end; `canPublishData` revoked at once; tokens
//!   minted meanwhile carry `canPublishData: false`; the background sweep
//!   (`chat_rules::sweep_timeouts`) restores the permission in the room when it
//!   runs out.
//! - guests: a guest's identity is random per token, so a guest ban also
//!   refuses guest tokens for this stream to the client address that asked for
//!   the banned guest's token, for 24 h (`chat_rules::GUEST_IP_BAN`). What it
//!   cannot hold: the same person from another address (mobile data, VPN,
//!   a new DHCP lease), or logged in with an account (that is a viewer, and a
//!   viewer ban holds per account); and it also bars every other guest behind
//!   the same address (NAT, office, campus, carrier-grade NAT) for those 24 h.
//!   Behind a reverse proxy the address is the proxy's unless
//!   `STREAMIT_TRUST_FORWARDED_FOR` makes the server read `X-Forwarded-For`
//!   (its first entry; only safe when the proxy overwrites the header).
//!
//! RoomService failures are logged and never fail the request (see
//! `chat_rules`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use streamit_api::{BanRequest, Message, TimeoutRequest, limits};

use crate::app::{ApiJson, ApiPath, AppState, valid_identity, valid_range, valid_reason};
use crate::auth::Creator;
use crate::chat_rules;
use crate::db::{TimeoutOutcome, UserRow, now_ms};
use crate::error::{AppError, AppResult, ok};
use crate::openapi::IdentityPath;
use streamit_api::ModerationEntry;
use streamit_api::openapi::{Failure, Success};

/// The name to show in the list, and for a guest the address its token was
/// asked from. A user identity must be a registered user (404 otherwise); a
/// guest identity older than the token lifetime is no longer known and is
/// banned by identity only.
async fn target(
    state: &AppState,
    creator: &UserRow,
    identity: &str,
) -> AppResult<(Option<String>, Option<String>)> {
    if identity == creator.id {
        return Err(AppError::Conflict(
            "You cannot ban or time out yourself".into(),
        ));
    }
    if identity.starts_with("guest-") {
        Ok(match state.db.guest_token(&creator.id, identity).await? {
            Some((name, ip)) => (Some(name), Some(ip)),
            None => (None, None),
        })
    } else {
        let user = state
            .db
            .user_by_id(identity)
            .await?
            .ok_or_else(|| AppError::not_found("No viewer with this identity"))?;
        Ok((Some(user.display_name), None))
    }
}

#[utoipa::path(post, path = "/stream/moderation/ban", tag = "moderation",
    summary = "Ban a participant from this creator's stream",
    description = "canPublishData revoked and the participant removed from the room at once \
(RoomService); their viewer tokens are refused (403); for a guest also guest tokens from the \
address its token was asked from, for 24 h.",
    request_body = BanRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The ban", body = Success<ModerationEntry>),
        (status = 400, description = "Malformed JSON", body = Failure),
        (status = 401, description = "No valid session token", body = Failure),
        (status = 403, description = "Not an approved creator (or admin)", body = Failure),
        (status = 404, description = "No registered user with this identity", body = Failure),
        (status = 409, description = "The identity is the creator's own", body = Failure),
        (status = 413, description = "Body over 64 KiB", body = Failure),
        (status = 415, description = "Not a JSON body", body = Failure),
        (status = 422, description = "The body breaks the schema", body = Failure),
        (status = 500, description = "Internal error", body = Failure),
    ))]
pub async fn ban(
    State(state): State<AppState>,
    Creator(creator): Creator,
    ApiJson(req): ApiJson<BanRequest>,
) -> AppResult<Response> {
    let identity = valid_identity("identity", &req.identity)?;
    let reason = valid_reason(req.reason.as_deref())?;
    let (name, guest_ip) = target(&state, &creator, identity).await?;
    let ip_ban_ms = i64::try_from(chat_rules::GUEST_IP_BAN.as_millis()).unwrap_or(i64::MAX / 2);
    let entry = state
        .db
        .ban(
            &creator.id,
            identity,
            name.as_deref(),
            reason.as_deref(),
            guest_ip.as_deref(),
            ip_ban_ms,
        )
        .await?;
    tracing::info!(host = %creator.id, %identity, guest_address_banned = guest_ip.is_some(), "banned");
    chat_rules::enforce_now(&state, &creator.id, identity).await;
    Ok(ok(StatusCode::OK, entry))
}

#[utoipa::path(post, path = "/stream/moderation/timeout", tag = "moderation",
    summary = "Time a participant out",
    description = "canPublishData revoked at once, restored by the server when the timeout ends.",
    request_body = TimeoutRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The timeout", body = Success<ModerationEntry>),
        (status = 400, description = "Malformed JSON", body = Failure),
        (status = 401, description = "No valid session token", body = Failure),
        (status = 403, description = "Not an approved creator (or admin)", body = Failure),
        (status = 404, description = "No registered user with this identity", body = Failure),
        (status = 409, description = "The participant is banned (lift the ban first), or the identity is the creator's own", body = Failure),
        (status = 413, description = "Body over 64 KiB", body = Failure),
        (status = 415, description = "Not a JSON body", body = Failure),
        (status = 422, description = "The body breaks the schema", body = Failure),
        (status = 500, description = "Internal error", body = Failure),
    ))]
pub async fn timeout(
    State(state): State<AppState>,
    Creator(creator): Creator,
    ApiJson(req): ApiJson<TimeoutRequest>,
) -> AppResult<Response> {
    let identity = valid_identity("identity", &req.identity)?;
    let reason = valid_reason(req.reason.as_deref())?;
    valid_range(
        "durationSecs",
        req.duration_secs,
        limits::TIMEOUT_SECS_MIN,
        limits::TIMEOUT_SECS_MAX,
    )?;
    let (name, _) = target(&state, &creator, identity).await?;
    let duration_ms = i64::try_from(req.duration_secs)
        .unwrap_or(i64::MAX)
        .saturating_mul(1000);
    let until = now_ms().saturating_add(duration_ms);
    let entry = match state
        .db
        .timeout(
            &creator.id,
            identity,
            name.as_deref(),
            reason.as_deref(),
            until,
        )
        .await?
    {
        TimeoutOutcome::Stored(e) => e,
        TimeoutOutcome::Banned => {
            return Err(AppError::Conflict(
                "This viewer is banned; lift the ban first".into(),
            ));
        }
    };
    tracing::info!(host = %creator.id, %identity, secs = req.duration_secs, "timed out");
    chat_rules::enforce_now(&state, &creator.id, identity).await;
    Ok(ok(StatusCode::OK, entry))
}

#[utoipa::path(delete, path = "/stream/moderation/{identity}", tag = "moderation",
    summary = "Lift a ban or timeout",
    params(IdentityPath),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Lifted", body = Success<Message>),
        (status = 400, description = "The path parameter is not valid percent-encoded UTF-8", body = Failure),
        (status = 401, description = "No valid session token", body = Failure),
        (status = 403, description = "Not an approved creator (or admin)", body = Failure),
        (status = 404, description = "No ban or timeout for this identity", body = Failure),
        (status = 422, description = "The identity breaks its schema", body = Failure),
        (status = 500, description = "Internal error", body = Failure),
    ))]
pub async fn lift(
    State(state): State<AppState>,
    Creator(creator): Creator,
    ApiPath(identity): ApiPath,
) -> AppResult<Response> {
    let identity = valid_identity("identity", &identity)?;
    if !state.db.lift(&creator.id, identity).await? {
        return Err(AppError::not_found("No ban or timeout for this identity"));
    }
    tracing::info!(host = %creator.id, %identity, "ban or timeout lifted");
    // A timed-out viewer still in the room may chat again (per the chat rules).
    chat_rules::enforce_now(&state, &creator.id, identity).await;
    Ok(ok(
        StatusCode::OK,
        Message {
            message: "Lifted".into(),
        },
    ))
}

#[utoipa::path(get, path = "/stream/moderation", tag = "moderation",
    summary = "This creator's bans and running timeouts, newest first",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The bans and timeouts", body = Success<Vec<ModerationEntry>>),
        (status = 401, description = "No valid session token", body = Failure),
        (status = 403, description = "Not an approved creator (or admin)", body = Failure),
        (status = 500, description = "Internal error", body = Failure),
    ))]
pub async fn list(State(state): State<AppState>, Creator(creator): Creator) -> AppResult<Response> {
    Ok(ok(
        StatusCode::OK,
        state.db.moderation_list(&creator.id, now_ms()).await?,
    ))
}
