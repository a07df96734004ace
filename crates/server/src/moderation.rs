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

use crate::app::{ApiJson, ApiPath, AppState};
use crate::auth::Creator;
use crate::chat_rules;
use crate::db::{TimeoutOutcome, UserRow, now_ms};
use crate::error::{AppError, AppResult, ok};

/// A moderation note, at most this many characters.
pub const REASON_MAX: usize = 200;
/// Participant identities are user ids (32 hex) or `guest-` + 32 hex.
const IDENTITY_MAX: usize = 64;

fn valid_identity(raw: &str) -> AppResult<String> {
    let id = raw.trim();
    if id.is_empty() || id.chars().count() > IDENTITY_MAX {
        return Err(AppError::unprocessable(format!(
            "identity must be 1 to {IDENTITY_MAX} characters"
        )));
    }
    if id.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(AppError::unprocessable(
            "identity must not contain spaces or control characters",
        ));
    }
    Ok(id.to_string())
}

fn valid_reason(raw: Option<&str>) -> AppResult<Option<String>> {
    let Some(r) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    if r.chars().count() > REASON_MAX {
        return Err(AppError::unprocessable(format!(
            "reason must be at most {REASON_MAX} characters"
        )));
    }
    if r.chars().any(char::is_control) {
        return Err(AppError::unprocessable(
            "reason must not contain control characters",
        ));
    }
    Ok(Some(r.to_string()))
}

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
        return Err(AppError::unprocessable(
            "You cannot ban or time out yourself",
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

pub async fn ban(
    State(state): State<AppState>,
    Creator(creator): Creator,
    ApiJson(req): ApiJson<BanRequest>,
) -> AppResult<Response> {
    let identity = valid_identity(&req.identity)?;
    let reason = valid_reason(req.reason.as_deref())?;
    let (name, guest_ip) = target(&state, &creator, &identity).await?;
    let ip_ban_ms = i64::try_from(chat_rules::GUEST_IP_BAN.as_millis()).unwrap_or(i64::MAX / 2);
    let entry = state
        .db
        .ban(
            &creator.id,
            &identity,
            name.as_deref(),
            reason.as_deref(),
            guest_ip.as_deref(),
            ip_ban_ms,
        )
        .await?;
    tracing::info!(host = %creator.id, %identity, guest_address_banned = guest_ip.is_some(), "banned");
    chat_rules::enforce_now(&state, &creator.id, &identity).await;
    Ok(ok(StatusCode::OK, entry))
}

pub async fn timeout(
    State(state): State<AppState>,
    Creator(creator): Creator,
    ApiJson(req): ApiJson<TimeoutRequest>,
) -> AppResult<Response> {
    let identity = valid_identity(&req.identity)?;
    let reason = valid_reason(req.reason.as_deref())?;
    if !(1..=limits::TIMEOUT_SECS_MAX).contains(&req.duration_secs) {
        return Err(AppError::unprocessable(format!(
            "durationSecs must be between 1 and {}",
            limits::TIMEOUT_SECS_MAX
        )));
    }
    let (name, _) = target(&state, &creator, &identity).await?;
    let duration_ms = i64::try_from(req.duration_secs)
        .unwrap_or(i64::MAX)
        .saturating_mul(1000);
    let until = now_ms().saturating_add(duration_ms);
    let entry = match state
        .db
        .timeout(
            &creator.id,
            &identity,
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
    chat_rules::enforce_now(&state, &creator.id, &identity).await;
    Ok(ok(StatusCode::OK, entry))
}

pub async fn lift(
    State(state): State<AppState>,
    Creator(creator): Creator,
    ApiPath(identity): ApiPath,
) -> AppResult<Response> {
    let identity = valid_identity(&identity)?;
    if !state.db.lift(&creator.id, &identity).await? {
        return Err(AppError::not_found("No ban or timeout for this identity"));
    }
    tracing::info!(host = %creator.id, %identity, "ban or timeout lifted");
    // A timed-out viewer still in the room may chat again (per the chat rules).
    chat_rules::enforce_now(&state, &creator.id, &identity).await;
    Ok(ok(
        StatusCode::OK,
        Message {
            message: "Lifted".into(),
        },
    ))
}

pub async fn list(State(state): State<AppState>, Creator(creator): Creator) -> AppResult<Response> {
    Ok(ok(
        StatusCode::OK,
        state.db.moderation_list(&creator.id, now_ms()).await?,
    ))
}
