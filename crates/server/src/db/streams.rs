//! Streams: set-up and patches, go live and end, the sessions and their figures,
//! LiveKit's room-finished webhook and follows.

use super::*;

impl Db {
    // --- streams ------------------------------------------------------------

    pub async fn stream_by_user_id(&self, user_id: &str) -> DbResult<Option<Stream>> {
        let q = sqlx::AssertSqlSafe(format!("{STREAM_SELECT} WHERE s.user_id = $1"));
        let row = sqlx::query(q)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(stream_from_row).transpose()
    }

    pub async fn stream_by_username(&self, username: &str) -> DbResult<Option<Stream>> {
        let q = sqlx::AssertSqlSafe(format!("{STREAM_SELECT} WHERE u.username = $1"));
        let row = sqlx::query(q)
            .bind(username)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(stream_from_row).transpose()
    }

    /// Creates the stream (title required) or applies the patch to it.
    /// Returns the stream and whether it was created.
    pub async fn upsert_stream(
        &self,
        user_id: &str,
        title: &str,
        patch: &StreamPatch,
    ) -> DbResult<(Stream, bool)> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let exists = sqlx::query("SELECT id FROM streams WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if exists {
            apply_patch(&mut tx, user_id, patch, now).await?;
        } else {
            sqlx::query(
                "INSERT INTO streams (id, user_id, title, description, is_live, is_chat_enabled, \
                 is_chat_delayed, is_chat_followers_only, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, 0, $5, $6, $7, $8, $8)",
            )
            .bind(new_id())
            .bind(user_id)
            .bind(title)
            .bind(patch.description.clone().flatten())
            .bind(flag(patch.is_chat_enabled.unwrap_or(true)))
            .bind(flag(patch.is_chat_delayed.unwrap_or(false)))
            .bind(flag(patch.is_chat_followers_only.unwrap_or(false)))
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(conflict_or)?;
        }
        tx.commit().await?;
        let stream = self
            .stream_by_user_id(user_id)
            .await?
            .ok_or_else(|| DbError::Corrupt("stream vanished after upsert".into()))?;
        Ok((stream, !exists))
    }

    /// Applies the patch to an existing stream; `None` if the user has none.
    pub async fn patch_stream(
        &self,
        user_id: &str,
        patch: &StreamPatch,
    ) -> DbResult<Option<Stream>> {
        let mut tx = self.write_tx().await?;
        let n = apply_patch(&mut tx, user_id, patch, now_ms()).await?;
        tx.commit().await?;
        if n == 0 {
            return Ok(None);
        }
        self.stream_by_user_id(user_id).await
    }

    pub async fn live_streams(&self) -> DbResult<Vec<Stream>> {
        let q = sqlx::AssertSqlSafe(format!(
            "{STREAM_SELECT} WHERE s.is_live = 1 ORDER BY s.updated_at DESC, s.id"
        ));
        let rows = sqlx::query(q).fetch_all(&self.pool).await?;
        rows.iter().map(stream_from_row).collect()
    }

    pub async fn following_live(&self, follower_id: &str) -> DbResult<Vec<Stream>> {
        let q = sqlx::AssertSqlSafe(format!(
            "{STREAM_SELECT} JOIN follows f ON f.followee_id = s.user_id \
             WHERE f.follower_id = $1 AND s.is_live = 1 ORDER BY s.updated_at DESC, s.id"
        ));
        let rows = sqlx::query(q)
            .bind(follower_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(stream_from_row).collect()
    }

    // --- go live / end --------------------------------------------------------

    /// Marks the stream live and opens a session unless one is open already
    /// (a studio that calls go-live again after a crash keeps its session).
    /// `None` if the user has no stream.
    pub async fn go_live(&self, user_id: &str) -> DbResult<Option<(Stream, String)>> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let Some(stream_id) = set_live(&mut tx, user_id, true, now).await? else {
            return Ok(None);
        };
        let open =
            sqlx::query("SELECT id FROM stream_sessions WHERE stream_id = $1 AND ended_at IS NULL")
                .bind(&stream_id)
                .fetch_optional(&mut *tx)
                .await?;
        let session_id = match open {
            Some(r) => r.try_get("id")?,
            None => {
                let id = new_id();
                sqlx::query(
                    "INSERT INTO stream_sessions (id, stream_id, room_name, started_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(&id)
                .bind(&stream_id)
                .bind(user_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                id
            }
        };
        // Viewers already in the room (joined before go-live) count from now on.
        Self::refresh_viewer_counts(&mut tx, user_id).await?;
        tx.commit().await?;
        let stream = self
            .stream_by_user_id(user_id)
            .await?
            .ok_or_else(|| DbError::Corrupt("stream vanished after go-live".into()))?;
        Ok(Some((stream, session_id)))
    }

    /// Marks the stream offline and closes its open session. Returns the
    /// closed session, else the latest one; `None` if there is no stream.
    /// `Some(None)` if the stream never had a session.
    pub async fn end_stream(&self, user_id: &str) -> DbResult<Option<Option<StreamSession>>> {
        let mut tx = self.write_tx().await?;
        let Some(stream_id) = end_stream_in(&mut tx, user_id, end_reason::END_STREAM).await? else {
            return Ok(None);
        };
        tx.commit().await?;
        Ok(Some(self.latest_session(&stream_id).await?))
    }

    /// Withdraws `username`'s approval and, if they can no longer stream (a
    /// creator, not an admin) and are live, ends the stream with end reason
    /// `revoked`, in one transaction. `None` if the user is unknown; else the
    /// user and whether a live stream was ended.
    pub async fn revoke(&self, username: &str) -> DbResult<Option<(UserRow, bool)>> {
        let mut tx = self.write_tx().await?;
        let n =
            sqlx::query("UPDATE users SET is_approved = 0, updated_at = $2 WHERE username = $1")
                .bind(username)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if n == 0 {
            return Ok(None);
        }
        let q = sqlx::AssertSqlSafe(format!("SELECT {USER_COLS} FROM users WHERE username = $1"));
        let user = user_from_row(&sqlx::query(q).bind(username).fetch_one(&mut *tx).await?)?;
        let mut ended = false;
        if !user.may_stream() {
            let live =
                sqlx::query("SELECT 1 AS one FROM streams WHERE user_id = $1 AND is_live = 1")
                    .bind(&user.id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .is_some();
            if live {
                end_stream_in(&mut tx, &user.id, end_reason::REVOKED).await?;
                ended = true;
            }
        }
        tx.commit().await?;
        Ok(Some((user, ended)))
    }

    // --- sessions -------------------------------------------------------------

    pub async fn latest_session(&self, stream_id: &str) -> DbResult<Option<StreamSession>> {
        let q = sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLS} FROM stream_sessions WHERE stream_id = $1 ORDER BY started_at DESC, id DESC LIMIT 1"
        ));
        let row = sqlx::query(q)
            .bind(stream_id)
            .fetch_optional(&self.pool)
            .await?;
        let now = now_ms();
        row.as_ref().map(|r| session_from_row(r, now)).transpose()
    }

    pub async fn session(&self, stream_id: &str, id: &str) -> DbResult<Option<StreamSession>> {
        let q = sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLS} FROM stream_sessions WHERE id = $1 AND stream_id = $2"
        ));
        let row = sqlx::query(q)
            .bind(id)
            .bind(stream_id)
            .fetch_optional(&self.pool)
            .await?;
        let now = now_ms();
        row.as_ref().map(|r| session_from_row(r, now)).transpose()
    }

    pub async fn sessions(&self, stream_id: &str, limit: i64) -> DbResult<Vec<StreamSession>> {
        let q = sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLS} FROM stream_sessions WHERE stream_id = $1 ORDER BY started_at DESC, id DESC LIMIT $2"
        ));
        let rows = sqlx::query(q)
            .bind(stream_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let now = now_ms();
        rows.iter().map(|r| session_from_row(r, now)).collect()
    }

    /// The studio's own figures for a session: chat messages and the media
    /// figures (frames sent/dropped, average bitrate, reconnects).
    ///
    /// Which source wins: viewer counts come only from LiveKit's webhooks
    /// (never from here); chat and media figures come only from the studio.
    /// Every figure is monotonic: a smaller (stale, reordered or repeated)
    /// report never lowers the stored value, and a figure the report leaves
    /// out (`None`) keeps what is stored.
    pub async fn report_session_stats(
        &self,
        stream_id: &str,
        id: &str,
        report: &SessionStatsReport,
    ) -> DbResult<Option<StreamSession>> {
        sqlx::query(
            "UPDATE stream_sessions SET \
             chat_messages = CASE WHEN chat_messages < $3 THEN $3 ELSE chat_messages END, \
             frames_sent = CASE WHEN $4 IS NULL THEN frames_sent \
                 WHEN frames_sent IS NULL OR frames_sent < $4 THEN $4 ELSE frames_sent END, \
             frames_dropped = CASE WHEN $5 IS NULL THEN frames_dropped \
                 WHEN frames_dropped IS NULL OR frames_dropped < $5 THEN $5 ELSE frames_dropped END, \
             average_bitrate_bps = CASE WHEN $6 IS NULL THEN average_bitrate_bps \
                 WHEN average_bitrate_bps IS NULL OR average_bitrate_bps < $6 THEN $6 \
                 ELSE average_bitrate_bps END, \
             reconnects = CASE WHEN $7 IS NULL THEN reconnects \
                 WHEN reconnects IS NULL OR reconnects < $7 THEN $7 ELSE reconnects END \
             WHERE id = $1 AND stream_id = $2",
        )
        .bind(id)
        .bind(stream_id)
        .bind(report.chat_messages)
        .bind(report.frames_sent)
        .bind(report.frames_dropped)
        .bind(report.average_bitrate_bps)
        .bind(report.reconnects)
        .execute(&self.pool)
        .await?;
        self.session(stream_id, id).await
    }

    // --- webhooks -------------------------------------------------------------

    pub(super) async fn open_session_for_room(
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        room: &str,
    ) -> DbResult<Option<String>> {
        let row =
            sqlx::query("SELECT id FROM stream_sessions WHERE room_name = $1 AND ended_at IS NULL")
                .bind(room)
                .fetch_optional(&mut **tx)
                .await?;
        Ok(match row {
            Some(r) => Some(r.try_get("id")?),
            None => None,
        })
    }

    /// LiveKit closed the room: end the open session that belongs to it and
    /// mark the stream offline. A `room_finished` of an older room (e.g. one
    /// that closes after the creator already went live again) is ignored:
    /// the session must be that room's (same sid) or, when no sid is known
    /// yet, must not be newer than the room.
    pub async fn room_finished(
        &self,
        room: &str,
        room_sid: &str,
        room_created_ms: i64,
        at: i64,
    ) -> DbResult<bool> {
        let mut tx = self.write_tx().await?;
        let n = sqlx::query(
            "UPDATE stream_sessions SET ended_at = $2, end_reason = 'room-finished', current_viewers = 0 \
             WHERE room_name = $1 AND ended_at IS NULL \
               AND (room_sid = $3 OR (room_sid IS NULL AND started_at <= $4))",
        )
        .bind(room)
        .bind(at)
        .bind(room_sid)
        .bind(room_created_ms.saturating_add(2_000))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n > 0 {
            sqlx::query("UPDATE streams SET is_live = 0, updated_at = $2 WHERE user_id = $1")
                .bind(room)
                .bind(at)
                .execute(&mut *tx)
                .await?;
        }
        // Nobody is left in the room LiveKit closed. (Not for an older room's
        // late `room_finished`: the room of the open session is still there.)
        if n > 0 || Self::open_session_for_room(&mut tx, room).await?.is_none() {
            Self::close_room_presence(&mut tx, room, at).await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }

    // --- follows --------------------------------------------------------------

    pub async fn follow(&self, follower_id: &str, followee_id: &str) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO follows (follower_id, followee_id, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (follower_id, followee_id) DO NOTHING",
        )
        .bind(follower_id)
        .bind(followee_id)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn unfollow(&self, follower_id: &str, followee_id: &str) -> DbResult<()> {
        sqlx::query("DELETE FROM follows WHERE follower_id = $1 AND followee_id = $2")
            .bind(follower_id)
            .bind(followee_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
