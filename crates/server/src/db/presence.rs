//! Who is in each LiveKit room, as the webhooks and the reconcile report it:
//! viewers per participant sid (counted as distinct identities), the
//! creator's participant (liveness), and the webhook event ids already handled.

use sqlx::Row;

use super::{Db, DbResult, now_ms};

/// Why a session ended (`StreamSession::end_reason`).
pub use streamit_api::end_reason;

impl Db {
    /// Takes the row lock of `room`'s open session (PostgreSQL) so that a count
    /// made later in `tx` sees every presence row committed by concurrent
    /// webhooks; on SQLite the write transaction already holds the lock.
    async fn lock_open_session(
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        room: &str,
    ) -> DbResult<()> {
        sqlx::query(
            "UPDATE stream_sessions SET current_viewers = current_viewers \
             WHERE room_name = $1 AND ended_at IS NULL",
        )
        .bind(room)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Sets the open session's current viewers to the distinct identities
    /// present in `room` now, and raises its peak to that if higher.
    pub(super) async fn refresh_viewer_counts(
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        room: &str,
    ) -> DbResult<()> {
        let row = sqlx::query(
            "SELECT COUNT(DISTINCT identity) AS n FROM room_presence \
             WHERE room_name = $1 AND joined_at IS NOT NULL AND left_at IS NULL",
        )
        .bind(room)
        .fetch_one(&mut **tx)
        .await?;
        let n: i64 = row.try_get("n")?;
        sqlx::query(
            "UPDATE stream_sessions SET current_viewers = $2, \
             peak_viewers = CASE WHEN peak_viewers < $2 THEN $2 ELSE peak_viewers END \
             WHERE room_name = $1 AND ended_at IS NULL",
        )
        .bind(room)
        .bind(n)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// A viewer joined (`joined = true`) or left `room`, whether or not the
    /// stream is live. Idempotent per participant sid: a `left` that overtakes
    /// its `joined` leaves a closed row the late `joined` does not reopen.
    /// Returns whether a session is open (and so was recounted).
    pub async fn viewer_presence(
        &self,
        room: &str,
        participant_sid: &str,
        identity: &str,
        joined: bool,
        at: i64,
    ) -> DbResult<bool> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        Self::lock_open_session(&mut tx, room).await?;
        if joined {
            sqlx::query(
                "INSERT INTO room_presence (room_name, participant_sid, identity, joined_at, left_at, updated_at) \
                 VALUES ($1, $2, $3, $4, NULL, $5) ON CONFLICT (room_name, participant_sid) DO NOTHING",
            )
        } else {
            sqlx::query(
                "INSERT INTO room_presence (room_name, participant_sid, identity, joined_at, left_at, updated_at) \
                 VALUES ($1, $2, $3, NULL, $4, $5) ON CONFLICT (room_name, participant_sid) \
                 DO UPDATE SET left_at = COALESCE(room_presence.left_at, excluded.left_at), updated_at = excluded.updated_at",
            )
        }
        .bind(room)
        .bind(participant_sid)
        .bind(identity)
        .bind(at)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        Self::refresh_viewer_counts(&mut tx, room).await?;
        let open = Self::open_session_for_room(&mut tx, room).await?.is_some();
        tx.commit().await?;
        Ok(open)
    }

    /// Makes `room`'s viewer presence what LiveKit listed at `listed_at`
    /// (`present`: participant sid, identity): rows LiveKit no longer has are
    /// closed (a participant that vanished with a crashed LiveKit, a lost
    /// `participant_left`), listed viewers without a row get one (a lost
    /// `participant_joined`). Rows written after `listed_at` are left alone.
    /// Returns (closed, added).
    pub async fn reconcile_presence(
        &self,
        room: &str,
        present: &[(String, String)],
        listed_at: i64,
    ) -> DbResult<(u64, u64)> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        Self::lock_open_session(&mut tx, room).await?;
        let mut added = 0;
        for (sid, identity) in present {
            added += sqlx::query(
                "INSERT INTO room_presence (room_name, participant_sid, identity, joined_at, left_at, updated_at) \
                 VALUES ($1, $2, $3, $4, NULL, $4) ON CONFLICT (room_name, participant_sid) DO NOTHING",
            )
            .bind(room)
            .bind(sid)
            .bind(identity)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        let open = sqlx::query(
            "SELECT participant_sid FROM room_presence \
             WHERE room_name = $1 AND left_at IS NULL AND updated_at < $2",
        )
        .bind(room)
        .bind(listed_at)
        .fetch_all(&mut *tx)
        .await?;
        let listed: std::collections::HashSet<&str> =
            present.iter().map(|(sid, _)| sid.as_str()).collect();
        let mut closed = 0;
        for r in open {
            let sid: String = r.try_get("participant_sid")?;
            if listed.contains(sid.as_str()) {
                continue;
            }
            closed += sqlx::query(
                "UPDATE room_presence SET left_at = $3, updated_at = $3 \
                 WHERE room_name = $1 AND participant_sid = $2 AND left_at IS NULL",
            )
            .bind(room)
            .bind(&sid)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        Self::refresh_viewer_counts(&mut tx, room).await?;
        tx.commit().await?;
        Ok((closed, added))
    }

    /// LiveKit closed `room`: nobody is in it any more.
    pub(super) async fn close_room_presence(
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        room: &str,
        at: i64,
    ) -> DbResult<()> {
        sqlx::query(
            "UPDATE room_presence SET left_at = $2, updated_at = $2 WHERE room_name = $1 AND left_at IS NULL",
        )
        .bind(room)
        .bind(at)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Rooms worth asking LiveKit about: those of open sessions and those
    /// where viewers are recorded as present.
    pub async fn rooms_to_reconcile(&self) -> DbResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT room_name FROM stream_sessions WHERE ended_at IS NULL \
             UNION SELECT room_name FROM room_presence WHERE left_at IS NULL AND joined_at IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| r.try_get("room_name").map_err(super::DbError::from))
            .collect()
    }

    // --- the creator's participant ---------------------------------------------

    /// The creator's participant `sid` is in the room (joined, published a
    /// track, or listed with tracks by a reconcile): the open session
    /// remembers it (and the LiveKit room sid, when known), and a running
    /// grace period is cancelled. Returns whether a session is open.
    pub async fn publisher_present(&self, room: &str, sid: &str, room_sid: &str) -> DbResult<bool> {
        let n = sqlx::query(
            "UPDATE stream_sessions SET publisher_sid = $2, publisher_lost_at = NULL, \
             publisher_lease_until = NULL, room_sid = CASE WHEN $3 = '' THEN room_sid ELSE $3 END \
             WHERE room_name = $1 AND ended_at IS NULL",
        )
        .bind(room)
        .bind(sid)
        .bind(room_sid)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    /// The creator's participant is gone since `at`: `Some(sid)` left or
    /// unpublished its last track (ignored when the session already knows a
    /// newer participant, e.g. a rejoin announced before the old one's
    /// `participant_left`); `None`: a reconcile did not find it (only once it
    /// was seen in this session, so a studio still connecting after go-live
    /// is not timed). Starts the grace period unless it already runs; returns
    /// whether it started.
    pub async fn publisher_lost(&self, room: &str, sid: Option<&str>, at: i64) -> DbResult<bool> {
        let q = match sid {
            Some(_) => {
                "UPDATE stream_sessions SET publisher_lost_at = $3 \
                 WHERE room_name = $1 AND ended_at IS NULL AND publisher_lost_at IS NULL \
                 AND (publisher_sid = $2 OR (publisher_sid IS NULL AND started_at <= $3))"
            }
            None => {
                "UPDATE stream_sessions SET publisher_lost_at = $3 \
                 WHERE room_name = $1 AND ended_at IS NULL AND publisher_lost_at IS NULL \
                 AND publisher_sid IS NOT NULL AND $2 = ''"
            }
        };
        let n = sqlx::query(q)
            .bind(room)
            .bind(sid.unwrap_or(""))
            .bind(at)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    /// Claims up to `limit` open sessions whose creator has been gone since
    /// before `cutoff`, for `lease_ms`: only the instance whose conditional
    /// UPDATE changed the row gets it (the timeout sweep's pattern; a crashed
    /// instance's lease runs out and another one retries). (session id, room)
    pub async fn claim_lost_publishers(
        &self,
        cutoff: i64,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> DbResult<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT id, room_name FROM stream_sessions WHERE ended_at IS NULL \
             AND publisher_lost_at IS NOT NULL AND publisher_lost_at <= $1 \
             AND (publisher_lease_until IS NULL OR publisher_lease_until < $2) LIMIT $3",
        )
        .bind(cutoff)
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut claimed = Vec::new();
        for r in rows {
            let id: String = r.try_get("id")?;
            let room: String = r.try_get("room_name")?;
            let n = sqlx::query(
                "UPDATE stream_sessions SET publisher_lease_until = $4 WHERE id = $1 \
                 AND ended_at IS NULL AND publisher_lost_at IS NOT NULL AND publisher_lost_at <= $2 \
                 AND (publisher_lease_until IS NULL OR publisher_lease_until < $3)",
            )
            .bind(&id)
            .bind(cutoff)
            .bind(now)
            .bind(now.saturating_add(lease_ms))
            .execute(&self.pool)
            .await?
            .rows_affected();
            if n == 1 {
                claimed.push((id, room));
            }
        }
        Ok(claimed)
    }

    /// Ends a claimed session with `publisher_lost` (if its creator is still
    /// gone since before `cutoff`: a rejoin meanwhile cleared that) and marks
    /// the stream offline. The session ends when the creator left, not when
    /// the grace ran out. Returns whether it ended.
    pub async fn end_lost_publisher(&self, session_id: &str, cutoff: i64) -> DbResult<bool> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let n = sqlx::query(
            "UPDATE stream_sessions SET ended_at = publisher_lost_at, end_reason = $3, \
             current_viewers = 0, publisher_lease_until = NULL \
             WHERE id = $1 AND ended_at IS NULL AND publisher_lost_at IS NOT NULL AND publisher_lost_at <= $2",
        )
        .bind(session_id)
        .bind(cutoff)
        .bind(end_reason::PUBLISHER_LOST)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n > 0 {
            sqlx::query(
                "UPDATE streams SET is_live = 0, updated_at = $2 \
                 WHERE id = (SELECT stream_id FROM stream_sessions WHERE id = $1)",
            )
            .bind(session_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }

    // --- webhook events -----------------------------------------------------------

    /// Records a webhook event id; false if it was handled before.
    pub async fn record_webhook_event(&self, id: &str, now: i64) -> DbResult<bool> {
        let n = sqlx::query(
            "INSERT INTO webhook_events (id, received_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Forgets an event whose handling failed, so LiveKit's retry is handled.
    pub async fn forget_webhook_event(&self, id: &str) -> DbResult<()> {
        sqlx::query("DELETE FROM webhook_events WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Housekeeping: event ids received before `before` (events that old are
    /// refused by their `createdAt` anyway).
    pub async fn prune_webhook_events(&self, before: i64) -> DbResult<()> {
        sqlx::query("DELETE FROM webhook_events WHERE received_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
