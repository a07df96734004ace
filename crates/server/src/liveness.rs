//! A stream is live while its creator's participant is in the LiveKit room
//! publishing. go-live and end-stream stay the creator's explicit intent; this
//! module ends a session whose studio is gone without saying so (killed,
//! crashed, network lost for good).
//!
//! - **Grace.** When the creator's participant leaves (`participant_left`,
//!   `participant_connection_aborted`) or unpublishes its last track
//!   (`track_unpublished`, checked with RoomService), the open session records
//!   since when the publisher is gone ([`crate::db::Db::publisher_lost`]). A
//!   rejoin or a new track within [`PUBLISHER_GRACE`] cancels it
//!   ([`crate::db::Db::publisher_present`]); otherwise the sweep of any
//!   instance claims the session with a lease in the database (like the
//!   timeout sweep in `chat_rules`), asks RoomService once more whether the
//!   creator is really away, and closes the session with end reason
//!   `publisher_lost` (ended when the creator left) and the stream offline.
//! - **Reconcile.** At start and every `chat_rules::RECONCILE_EVERY`, every
//!   instance asks RoomService (`ListParticipants`) about each room with an
//!   open session or recorded viewers: that repairs whatever webhooks were lost
//!   while the backend was down or LiveKit crashed (a creator who is gone
//!   starts the grace, one who is back cancels it; viewers LiveKit no longer
//!   lists stop counting, listed ones without a row start counting).
//! - **Revocation.** A creator who may no longer stream is removed from the
//!   room when it joins (its publish token lives 24 h) and by the reconcile.

use std::time::Duration;

use livekit_protocol::{ParticipantInfo, participant_info};

use crate::app::AppState;
use crate::chat_rules::{RoomError, bounded, is_not_found};
use crate::db::now_ms;

/// How long the creator's participant may be away before the stream goes
/// offline: 20 s.
///
/// Why 20 s: the studio's LiveKit engine (`crates/livekit-publish`, driver
/// `reconnect`) first *resumes* for up to 15 s (`RESUME_WINDOW`) — the same
/// participant, so LiveKit sends no `participant_left` at all and the grace
/// never starts. LiveKit itself drops a participant whose connection went
/// quiet about 20 s after the loss; by then the engine has moved on to full
/// rejoins (backoff 1, 2, 4, 8, 15 s: attempts at about 1, 3, 7, 15 and 30 s
/// after the loss), so its last attempt comes about 10 s after LiveKit's
/// `participant_left`, and a rejoin after a refused resume (LiveKit restarted)
/// comes within a few seconds. 20 s covers every rejoin of that schedule with
/// room for the connect itself, while a studio that is really gone leaves the
/// live list within LiveKit's detection time plus 20 s.
pub const PUBLISHER_GRACE: Duration = Duration::from_secs(20);

/// How long one instance holds a claimed lost publisher before another may retry.
const LEASE: Duration = Duration::from_secs(30);

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

/// In the room and connected (not a participant LiveKit is tearing down).
fn connected(p: &ParticipantInfo) -> bool {
    p.state != participant_info::State::Disconnected as i32
}

/// The creator's participant in `participants`, if it is there publishing
/// at least one track.
fn publishing_creator<'a>(
    room: &str,
    participants: &'a [ParticipantInfo],
) -> Option<&'a ParticipantInfo> {
    participants
        .iter()
        .find(|p| p.identity == room && connected(p) && !p.tracks.is_empty())
}

/// Ordinary participants other than the creator (not egress, ingress, SIP or agents).
pub fn is_viewer(room: &str, p: &ParticipantInfo) -> bool {
    p.identity != room && p.kind == participant_info::Kind::Standard as i32 && !p.sid.is_empty()
}

/// The participants of `room` now; an unknown room has none.
pub async fn list(state: &AppState, room: &str) -> Result<Vec<ParticipantInfo>, RoomError> {
    match bounded(state.rooms.list_participants(room)).await {
        Ok(p) => Ok(p),
        Err(RoomError::Service(e)) if is_not_found(&e) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Puts the database right about `room` from what LiveKit listed at
/// `listed_at`: viewer presence, and the creator (present with tracks cancels
/// a grace, absent starts one, a creator who may no longer stream is removed).
pub async fn reconcile_room(
    state: &AppState,
    room: &str,
    participants: &[ParticipantInfo],
    listed_at: i64,
) -> Result<(), RoomError> {
    let viewers = participants_as_viewers(room, participants);
    let (closed, added) = state
        .db
        .reconcile_presence(room, &viewers, listed_at)
        .await?;
    if closed + added > 0 {
        tracing::info!(%room, closed, added, present = viewers.len(), "reconcile corrected viewer presence");
    }
    if let Some(creator) = participants.iter().find(|p| p.identity == room) {
        enforce_creator_allowed(state, room, creator).await?;
    }
    match publishing_creator(room, participants) {
        Some(p) => {
            state.db.publisher_present(room, &p.sid, "").await?;
        }
        None => {
            let absent = !participants
                .iter()
                .any(|p| p.identity == room && connected(p));
            if absent && state.db.publisher_lost(room, None, listed_at).await? {
                tracing::info!(%room, "reconcile: the creator is not in the room; grace period started");
            }
        }
    }
    Ok(())
}

/// Reconciles one room now (after go-live: viewers already there, a studio
/// that is still around), logged.
pub fn spawn_reconcile(state: &AppState, room: &str) {
    let (state, room) = (state.clone(), room.to_string());
    tokio::spawn(async move {
        let listed_at = now_ms();
        let result = match list(&state, &room).await {
            Ok(participants) => reconcile_room(&state, &room, &participants, listed_at).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(%room, error = %e, "could not reconcile the room with LiveKit now; the periodic reconcile retries");
        }
    });
}

/// After the creator's `track_unpublished`: if it has no track left, the
/// grace period starts. Asked from RoomService, since the webhook's
/// participant info need not reflect the removal yet.
pub async fn creator_unpublished(state: &AppState, room: &str, sid: &str) -> Result<(), RoomError> {
    let now = now_ms();
    let p = match bounded(state.rooms.get_participant(room, room)).await {
        Ok(p) => Some(p),
        Err(RoomError::Service(e)) if is_not_found(&e) => None,
        Err(e) => return Err(e),
    };
    let publishing = p
        .as_ref()
        .is_some_and(|p| connected(p) && !p.tracks.is_empty());
    if !publishing && state.db.publisher_lost(room, Some(sid), now).await? {
        tracing::info!(%room, %sid, "the creator unpublished every track; grace period started");
    }
    Ok(())
}

/// A creator who may no longer stream (approval revoked) is removed from its
/// room: its publish token outlives the revocation.
pub async fn enforce_creator_allowed(
    state: &AppState,
    room: &str,
    p: &ParticipantInfo,
) -> Result<(), RoomError> {
    let allowed = state
        .db
        .user_by_id(room)
        .await?
        .is_some_and(|u| u.may_stream());
    if !allowed {
        remove_creator(state, room).await?;
        tracing::info!(%room, sid = %p.sid, "removed a creator who may no longer stream");
    }
    Ok(())
}

/// Removes the creator's participant from its room (nothing to do if absent).
pub async fn remove_creator(state: &AppState, room: &str) -> Result<(), RoomError> {
    match bounded(state.rooms.remove_participant(room, room)).await {
        Ok(()) => Ok(()),
        Err(RoomError::Service(e)) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Ends the sessions whose creator has been gone longer than the grace
/// period; returns how many ended.
pub async fn sweep_lost_publishers(state: &AppState) -> Result<usize, RoomError> {
    let now = now_ms();
    let cutoff = now.saturating_sub(ms(state.config.publisher_grace));
    let claimed = state
        .db
        .claim_lost_publishers(cutoff, now, ms(LEASE), 100)
        .await?;
    let mut ended = 0;
    for (session_id, room) in claimed {
        // Last word from LiveKit: a rejoin whose webhook was lost keeps it live.
        // If LiveKit does not answer, the webhook's word stands.
        let listed_at = now_ms();
        match list(state, &room).await {
            Ok(participants) => {
                if let Some(p) = publishing_creator(&room, &participants) {
                    state.db.publisher_present(&room, &p.sid, "").await?;
                    tracing::info!(%room, sid = %p.sid, "the creator is back in the room; stream stays live");
                    continue;
                }
                state
                    .db
                    .reconcile_presence(
                        &room,
                        &participants_as_viewers(&room, &participants),
                        listed_at,
                    )
                    .await?;
            }
            Err(e) => {
                tracing::warn!(%room, error = %e, "LiveKit did not confirm the creator's absence; ending on the webhooks' word")
            }
        }
        if state.db.end_lost_publisher(&session_id, cutoff).await? {
            tracing::info!(%room, %session_id, grace_secs = state.config.publisher_grace.as_secs(),
                "the creator's participant did not come back: stream offline (publisher_lost)");
            ended += 1;
        }
    }
    Ok(ended)
}

fn participants_as_viewers(room: &str, participants: &[ParticipantInfo]) -> Vec<(String, String)> {
    participants
        .iter()
        .filter(|p| is_viewer(room, p) && connected(p))
        .map(|p| (p.sid.clone(), p.identity.clone()))
        .collect()
}
