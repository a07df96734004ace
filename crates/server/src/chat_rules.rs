//! Chat rules enforced at the SFU: the stream's chat settings, follows, bans
//! and timeouts decide each viewer's `canPublishData`, in the tokens the
//! backend mints and, through LiveKit's RoomService, for participants already
//! in the room. LiveKit drops every data packet (chat text streams included)
//! of a participant without `canPublishData`, so no client can get around it.
//!
//! RoomService calls are bounded ([`ROOM_CALL_TIMEOUT`]) and never fail the
//! HTTP request that caused them: a LiveKit outage is logged, and the
//! background task ([`spawn_background`]) puts every live room right again
//! (expired timeouts every second, a full reconcile of every live room every
//! [`RECONCILE_EVERY`]); the `participant_joined` webhook checks each joining
//! viewer as well, so an old token cannot bring back a revoked permission.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use livekit_api::services::room::UpdateParticipantOptions;
use livekit_api::services::{ServerError, ServiceError};
use livekit_protocol::{ParticipantInfo, ParticipantPermission, participant_info};
use streamit_api::room::{ATTR_ROLE, ROLE_CREATOR, ROLE_GUEST};
use streamit_api::{ChatAccess, RoomMetadata, Stream, limits};

use crate::app::AppState;
use crate::db::{Sanction, now_ms};

/// The longest one RoomService call may hold up a request or the sweep.
pub const ROOM_CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// How often every live room is reconciled in full.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(30);
/// How often expired timeouts are looked for.
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// How long a guest ban refuses guest tokens to the banned guest's address.
pub const GUEST_IP_BAN: Duration = Duration::from_secs(24 * 3600);

/// Who is asking to chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewerKind {
    Guest,
    Follower,
    NonFollower,
}

/// The chat settings that matter for permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatSettings {
    pub enabled: bool,
    pub delayed: bool,
    pub followers_only: bool,
}

impl From<&Stream> for ChatSettings {
    fn from(s: &Stream) -> Self {
        ChatSettings {
            enabled: s.is_chat_enabled,
            delayed: s.is_chat_delayed,
            followers_only: s.is_chat_followers_only,
        }
    }
}

/// The chat rule for one viewer (never the creator, who can always send).
/// `timed_out_until` is a running timeout (epoch ms). Bans never get here:
/// a banned viewer gets no token.
pub fn chat_access(
    settings: ChatSettings,
    kind: ViewerKind,
    timed_out_until: Option<i64>,
) -> ChatAccess {
    let reason = if !settings.enabled {
        Some("Chat is off".to_string())
    } else if settings.followers_only && kind != ViewerKind::Follower {
        Some("Chat is for followers only".to_string())
    } else {
        timed_out_until.map(|until| format!("You are timed out until {}", format_time(until)))
    };
    ChatAccess {
        can_send: reason.is_none(),
        reason,
        slow_mode_secs: settings.delayed.then_some(limits::SLOW_MODE_SECS),
        timed_out_until,
    }
}

/// Epoch ms as an HTTP date ("Wed, 02 Dec 2026 14:52:10 GMT").
fn format_time(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    httpdate::fmt_http_date(t)
}

/// The room metadata the pages read (title, chat rule) without a reload.
pub fn room_metadata(stream: &Stream) -> String {
    let m = RoomMetadata {
        title: stream.title.clone(),
        description: stream.description.clone(),
        is_chat_enabled: stream.is_chat_enabled,
        is_chat_delayed: stream.is_chat_delayed,
        is_chat_followers_only: stream.is_chat_followers_only,
        slow_mode_secs: limits::SLOW_MODE_SECS,
    };
    serde_json::to_string(&m).unwrap_or_else(|_| "{}".into())
}

/// Why a RoomService call did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    #[error("LiveKit did not answer within {0:?}")]
    Timeout(Duration),
    #[error("LiveKit: {0}")]
    Service(#[from] ServiceError),
    #[error("database: {0}")]
    Db(#[from] crate::db::DbError),
}

pub(crate) fn is_not_found(e: &ServiceError) -> bool {
    matches!(e, ServiceError::Twirp(ServerError::Twirp(c)) if c.code == "not_found")
}

pub(crate) async fn bounded<T>(
    call: impl std::future::Future<Output = Result<T, ServiceError>>,
) -> Result<T, RoomError> {
    match tokio::time::timeout(ROOM_CALL_TIMEOUT, call).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(RoomError::Timeout(ROOM_CALL_TIMEOUT)),
    }
}

/// Everything needed to decide the permissions of a room's participants.
struct RoomRules {
    host_id: String,
    settings: ChatSettings,
    followers: HashSet<String>,
    sanctions: HashMap<String, Sanction>,
}

impl RoomRules {
    async fn load(
        state: &AppState,
        host_id: &str,
        identities: &[String],
    ) -> Result<Option<RoomRules>, RoomError> {
        let Some(stream) = state.db.stream_by_user_id(host_id).await? else {
            return Ok(None);
        };
        let viewers: Vec<String> = identities
            .iter()
            .filter(|i| !i.starts_with("guest-"))
            .cloned()
            .collect();
        Ok(Some(RoomRules {
            host_id: host_id.to_string(),
            settings: ChatSettings::from(&stream),
            followers: state.db.followers_among(host_id, &viewers).await?,
            sanctions: state.db.sanctions(host_id, now_ms()).await?,
        }))
    }

    /// `None`: not a viewer (the creator, an agent, egress): leave it alone.
    fn kind_of(&self, p: &ParticipantInfo) -> Option<ViewerKind> {
        if p.identity == self.host_id
            || p.kind != participant_info::Kind::Standard as i32
            || p.attributes.get(ATTR_ROLE).map(String::as_str) == Some(ROLE_CREATOR)
        {
            return None;
        }
        Some(
            if p.identity.starts_with("guest-")
                || p.attributes.get(ATTR_ROLE).map(String::as_str) == Some(ROLE_GUEST)
            {
                ViewerKind::Guest
            } else if self.followers.contains(&p.identity) {
                ViewerKind::Follower
            } else {
                ViewerKind::NonFollower
            },
        )
    }
}

/// What the backend changed for one participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fix {
    Unchanged,
    Updated,
    Removed,
}

/// Puts one participant right: a banned one loses `canPublishData` and is
/// removed; any other viewer gets exactly the permission its rule says
/// (subscribe, no publish, data per the rule; other fields kept).
async fn fix(state: &AppState, rules: &RoomRules, p: &ParticipantInfo) -> Result<Fix, RoomError> {
    let Some(kind) = rules.kind_of(p) else {
        return Ok(Fix::Unchanged);
    };
    let room = rules.host_id.as_str();
    let sanction = rules.sanctions.get(&p.identity);
    let banned = sanction == Some(&Sanction::Ban);
    let timed_out = match sanction {
        Some(Sanction::Timeout(until)) => Some(*until),
        _ => None,
    };
    let can_send = !banned && chat_access(rules.settings, kind, timed_out).can_send;
    let current = p.permission.clone().unwrap_or_default();
    let mut wanted = current.clone();
    wanted.can_subscribe = true;
    wanted.can_publish = false;
    wanted.can_publish_data = can_send;
    wanted.can_update_metadata = false;
    wanted.hidden = false;
    let mut changed = Fix::Unchanged;
    if wanted != current || p.permission.is_none() {
        update_permission(state, room, &p.identity, wanted).await?;
        tracing::info!(%room, identity = %p.identity, can_publish_data = can_send, "participant permission updated");
        changed = Fix::Updated;
    }
    if banned {
        match bounded(state.rooms.remove_participant(room, &p.identity)).await {
            Ok(()) => {}
            Err(RoomError::Service(e)) if is_not_found(&e) => {}
            Err(e) => return Err(e),
        }
        tracing::info!(%room, identity = %p.identity, "banned participant removed");
        changed = Fix::Removed;
    }
    Ok(changed)
}

async fn update_permission(
    state: &AppState,
    room: &str,
    identity: &str,
    permission: ParticipantPermission,
) -> Result<(), RoomError> {
    let options = UpdateParticipantOptions {
        permission: Some(permission),
        ..Default::default()
    };
    match bounded(state.rooms.update_participant(room, identity, options)).await {
        Ok(_) => Ok(()),
        // Left in the meantime: nothing to fix.
        Err(RoomError::Service(e)) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Reconciles every participant of `host_id`'s room with the rules now in
/// the database. A room that does not exist has nothing to fix.
pub async fn sync_room(state: &AppState, host_id: &str) -> Result<usize, RoomError> {
    let participants = crate::liveness::list(state, host_id).await?;
    fix_room(state, host_id, &participants).await
}

/// Reconciles the listed participants of `host_id`'s room with the rules.
async fn fix_room(
    state: &AppState,
    host_id: &str,
    participants: &[ParticipantInfo],
) -> Result<usize, RoomError> {
    let identities: Vec<String> = participants.iter().map(|p| p.identity.clone()).collect();
    let Some(rules) = RoomRules::load(state, host_id, &identities).await? else {
        return Ok(0);
    };
    let mut changed = 0;
    for p in participants {
        if fix(state, &rules, p).await? != Fix::Unchanged {
            changed += 1;
        }
    }
    Ok(changed)
}

/// Reconciles one participant (if it is in the room).
pub async fn sync_participant(
    state: &AppState,
    host_id: &str,
    identity: &str,
) -> Result<Fix, RoomError> {
    let p = match bounded(state.rooms.get_participant(host_id, identity)).await {
        Ok(p) => p,
        Err(RoomError::Service(e)) if is_not_found(&e) => return Ok(Fix::Unchanged),
        Err(e) => return Err(e),
    };
    check_joined(state, host_id, &p).await
}

/// Reconciles a participant LiveKit just reported (webhook), without asking
/// LiveKit for it again.
pub async fn check_joined(
    state: &AppState,
    host_id: &str,
    p: &ParticipantInfo,
) -> Result<Fix, RoomError> {
    let Some(rules) = RoomRules::load(state, host_id, std::slice::from_ref(&p.identity)).await?
    else {
        return Ok(Fix::Unchanged);
    };
    fix(state, &rules, p).await
}

/// Revokes `canPublishData` of `identity` at once (ban, timeout), and for a
/// ban removes it from the room. Logged, not returned: the reconcile and the
/// join webhook repeat it when LiveKit was unreachable.
pub async fn enforce_now(state: &AppState, host_id: &str, identity: &str) {
    match sync_participant(state, host_id, identity).await {
        Ok(fix) => {
            tracing::debug!(room = %host_id, %identity, ?fix, "moderation applied in the room")
        }
        Err(e) => tracing::warn!(room = %host_id, %identity, error = %e,
            "could not apply moderation in the LiveKit room now; the reconcile retries"),
    }
}

/// After a chat-settings or stream edit while live: the room's metadata and
/// every viewer's permission. Bounded and logged, never an HTTP error.
pub async fn apply_stream_change(state: &AppState, stream: &Stream) {
    if !stream.is_live {
        return;
    }
    let room = stream.user_id.as_str();
    match bounded(
        state
            .rooms
            .update_room_metadata(room, &room_metadata(stream)),
    )
    .await
    {
        Ok(_) => {}
        Err(RoomError::Service(e)) if is_not_found(&e) => {}
        Err(e) => tracing::warn!(%room, error = %e, "could not update the LiveKit room metadata"),
    }
    match sync_room(state, room).await {
        Ok(changed) => tracing::debug!(%room, changed, "room permissions reconciled"),
        Err(e) => tracing::warn!(%room, error = %e,
            "could not update participants' permissions now; the reconcile retries"),
    }
}

/// The background work of every instance: restore expired timeouts and end
/// sessions whose creator stayed away past the grace period (each claimed by
/// one instance with a lease in the database), reconcile every room with
/// LiveKit at start and now and then, and prune guest records past the token
/// lifetime and webhook event ids past their accepted age.
pub fn spawn_background(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_reconcile: Option<tokio::time::Instant> = None;
        loop {
            tick.tick().await;
            if let Err(e) = sweep_timeouts(&state).await {
                tracing::warn!(error = %e, "timeout sweep failed");
            }
            if let Err(e) = crate::liveness::sweep_lost_publishers(&state).await {
                tracing::warn!(error = %e, "lost-publisher sweep failed");
            }
            if last_reconcile.is_none_or(|t| t.elapsed() >= RECONCILE_EVERY) {
                last_reconcile = Some(tokio::time::Instant::now());
                reconcile_all(&state).await;
            }
        }
    })
}

/// Restores the permission of participants whose timeout ran out.
pub async fn sweep_timeouts(state: &AppState) -> Result<usize, RoomError> {
    let now = now_ms();
    let lease_ms = 10 * i64::try_from(ROOM_CALL_TIMEOUT.as_millis()).unwrap_or(30_000);
    let claimed = state.db.claim_expired_timeouts(now, lease_ms, 100).await?;
    let mut restored = 0;
    for (host, identity) in claimed {
        // The row is still there (only leased), but expired rows no longer count.
        match sync_participant(state, &host, &identity).await {
            Ok(fix) => {
                state
                    .db
                    .finish_expired_timeout(&host, &identity, now)
                    .await?;
                tracing::info!(room = %host, %identity, ?fix, "timeout expired");
                restored += 1;
            }
            // Leave the lease to run out; this or another instance retries.
            Err(e) => tracing::warn!(room = %host, %identity, error = %e,
                "could not restore a timed-out participant now; will retry"),
        }
    }
    Ok(restored)
}

async fn reconcile_all(state: &AppState) {
    let now = now_ms();
    let ttl = i64::try_from(state.config.token_ttl.as_millis()).unwrap_or(i64::MAX / 2);
    if let Err(e) = state
        .db
        .prune_guest_records(now.saturating_sub(ttl), now)
        .await
    {
        tracing::warn!(error = %e, "pruning guest records failed");
    }
    let max_age = crate::webhook::MAX_EVENT_AGE.as_millis();
    let keep_ms = 2 * i64::try_from(max_age).unwrap_or(i64::MAX / 4);
    if let Err(e) = state
        .db
        .prune_webhook_events(now.saturating_sub(keep_ms))
        .await
    {
        tracing::warn!(error = %e, "pruning webhook event ids failed");
    }
    let day_ms = 24 * 3600 * 1000;
    if let Err(e) = state.db.prune_throttle(now.saturating_sub(day_ms)).await {
        tracing::warn!(error = %e, "pruning login throttle counters failed");
    }
    let (hosts, rooms) = match (
        state.db.live_hosts().await,
        state.db.rooms_to_reconcile().await,
    ) {
        (Ok(h), Ok(r)) => (h.into_iter().collect::<HashSet<_>>(), r),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "listing rooms to reconcile failed");
            return;
        }
    };
    let rooms: HashSet<String> = rooms.into_iter().chain(hosts.iter().cloned()).collect();
    for room in rooms {
        // One ListParticipants per room serves presence, liveness and chat rules.
        let listed_at = now_ms();
        let participants = match crate::liveness::list(state, &room).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(%room, error = %e, "reconcile: LiveKit did not list the room");
                continue;
            }
        };
        if let Err(e) =
            crate::liveness::reconcile_room(state, &room, &participants, listed_at).await
        {
            tracing::warn!(%room, error = %e, "reconciling presence failed");
        }
        if !hosts.contains(&room) {
            continue;
        }
        match fix_room(state, &room, &participants).await {
            Ok(0) => {}
            Ok(changed) => tracing::info!(%room, changed, "reconcile fixed participants"),
            Err(e) => tracing::warn!(%room, error = %e, "reconcile failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(enabled: bool, followers_only: bool) -> ChatSettings {
        ChatSettings {
            enabled,
            delayed: false,
            followers_only,
        }
    }

    #[test]
    fn the_enforcement_matrix() {
        use ViewerKind::*;
        // (enabled, followers-only) × kind → can send
        let rows = [
            (
                s(true, false),
                [(Guest, true), (Follower, true), (NonFollower, true)],
            ),
            (
                s(false, false),
                [(Guest, false), (Follower, false), (NonFollower, false)],
            ),
            (
                s(true, true),
                [(Guest, false), (Follower, true), (NonFollower, false)],
            ),
            (
                s(false, true),
                [(Guest, false), (Follower, false), (NonFollower, false)],
            ),
        ];
        for (settings, cells) in rows {
            for (kind, want) in cells {
                let a = chat_access(settings, kind, None);
                assert_eq!(a.can_send, want, "{settings:?} {kind:?}");
                assert_eq!(a.reason.is_none(), want, "{settings:?} {kind:?}");
            }
        }
        assert_eq!(
            chat_access(s(true, true), Guest, None).reason.as_deref(),
            Some("Chat is for followers only")
        );
        assert_eq!(
            chat_access(s(false, true), Follower, None)
                .reason
                .as_deref(),
            Some("Chat is off")
        );
    }

    #[test]
    fn timeouts_and_slow_mode() {
        let a = chat_access(
            s(true, false),
            ViewerKind::Follower,
            Some(1_796_000_000_000),
        );
        assert!(!a.can_send);
        assert_eq!(a.timed_out_until, Some(1_796_000_000_000));
        let reason = a.reason.unwrap();
        assert!(reason.starts_with("You are timed out until "), "{reason}");
        assert!(reason.ends_with("GMT"), "{reason}");
        let slow = chat_access(
            ChatSettings {
                enabled: true,
                delayed: true,
                followers_only: false,
            },
            ViewerKind::Guest,
            None,
        );
        assert!(slow.can_send);
        assert_eq!(slow.slow_mode_secs, Some(limits::SLOW_MODE_SECS));
    }
}
