//! Chat rules' storage: who follows whom, bans and timeouts, and guests' tokens and
//! IP bans.

use super::*;

/// What the moderation table holds for one participant of one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sanction {
    Ban,
    /// Timed out until this epoch ms.
    Timeout(i64),
}

/// Outcome of storing a timeout.
#[derive(Debug, Clone, PartialEq)]
pub enum TimeoutOutcome {
    Stored(ModerationEntry),
    /// The participant is banned; a timeout would lift the ban.
    Banned,
}

fn moderation_from_row(r: &AnyRow) -> DbResult<ModerationEntry> {
    Ok(ModerationEntry {
        identity: r.try_get("identity")?,
        kind: r.try_get("kind")?,
        name: r.try_get("name")?,
        reason: r.try_get("reason")?,
        until: r.try_get("until")?,
        created_at: r.try_get("created_at")?,
    })
}

const MODERATION_COLS: &str = "identity, kind, name, reason, until, created_at";

impl Db {
    // --- follows used by chat rules ----------------------------------------------

    pub async fn is_follower(&self, follower_id: &str, followee_id: &str) -> DbResult<bool> {
        let row =
            sqlx::query("SELECT 1 AS one FROM follows WHERE follower_id = $1 AND followee_id = $2")
                .bind(follower_id)
                .bind(followee_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.is_some())
    }

    /// Which of `identities` follow `host_id`.
    pub async fn followers_among(
        &self,
        host_id: &str,
        identities: &[String],
    ) -> DbResult<std::collections::HashSet<String>> {
        let mut out = std::collections::HashSet::new();
        for chunk in identities.chunks(500) {
            let q = sqlx::AssertSqlSafe(format!(
                "SELECT follower_id FROM follows WHERE followee_id = $1 AND follower_id IN ({})",
                placeholders(2, chunk.len())
            ));
            let mut query = sqlx::query(q).bind(host_id);
            for id in chunk {
                query = query.bind(id);
            }
            for r in query.fetch_all(&self.pool).await? {
                out.insert(r.try_get("follower_id")?);
            }
        }
        Ok(out)
    }

    /// Streams that are live now (their rooms are reconciled periodically).
    pub async fn live_hosts(&self) -> DbResult<Vec<String>> {
        let rows = sqlx::query("SELECT user_id FROM streams WHERE is_live = 1")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| r.try_get("user_id").map_err(DbError::from))
            .collect()
    }

    // --- moderation ---------------------------------------------------------------

    /// The ban or running timeout of `identity` on `host_id`'s stream.
    pub async fn sanction(
        &self,
        host_id: &str,
        identity: &str,
        now: i64,
    ) -> DbResult<Option<Sanction>> {
        let row = sqlx::query(
            "SELECT kind, until FROM moderation WHERE host_id = $1 AND identity = $2 \
             AND (kind = 'ban' OR until > $3)",
        )
        .bind(host_id)
        .bind(identity)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let kind: String = r.try_get("kind")?;
        let until: Option<i64> = r.try_get("until")?;
        Ok(Some(match (kind.as_str(), until) {
            ("ban", _) => Sanction::Ban,
            (_, Some(u)) => Sanction::Timeout(u),
            _ => {
                return Err(DbError::Corrupt(format!(
                    "timeout without end for {identity}"
                )));
            }
        }))
    }

    /// Every ban and running timeout on `host_id`'s stream, identity → sanction.
    pub async fn sanctions(
        &self,
        host_id: &str,
        now: i64,
    ) -> DbResult<std::collections::HashMap<String, Sanction>> {
        let mut out = std::collections::HashMap::new();
        for e in self.moderation_list(host_id, now).await? {
            let s = match (e.kind.as_str(), e.until) {
                ("ban", _) => Sanction::Ban,
                (_, Some(u)) => Sanction::Timeout(u),
                _ => continue,
            };
            out.insert(e.identity, s);
        }
        Ok(out)
    }

    /// Bans and running timeouts, newest first.
    pub async fn moderation_list(&self, host_id: &str, now: i64) -> DbResult<Vec<ModerationEntry>> {
        let q = sqlx::AssertSqlSafe(format!(
            "SELECT {MODERATION_COLS} FROM moderation WHERE host_id = $1 AND (kind = 'ban' OR until > $2) \
             ORDER BY created_at DESC, identity"
        ));
        let rows = sqlx::query(q)
            .bind(host_id)
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(moderation_from_row).collect()
    }

    /// Bans `identity` (replacing a timeout). For a guest whose token request
    /// was recorded, also refuses guest tokens from that address for `ip_ban_ms`.
    pub async fn ban(
        &self,
        host_id: &str,
        identity: &str,
        name: Option<&str>,
        reason: Option<&str>,
        guest_ip: Option<&str>,
        ip_ban_ms: i64,
    ) -> DbResult<ModerationEntry> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO moderation (host_id, identity, kind, name, reason, until, lease_until, created_at) \
             VALUES ($1, $2, 'ban', $3, $4, NULL, NULL, $5) \
             ON CONFLICT (host_id, identity) DO UPDATE SET kind = 'ban', name = excluded.name, \
             reason = excluded.reason, until = NULL, lease_until = NULL, created_at = excluded.created_at",
        )
        .bind(host_id)
        .bind(identity)
        .bind(name)
        .bind(reason)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if let Some(ip) = guest_ip {
            sqlx::query(
                "INSERT INTO guest_ip_bans (host_id, ip, identity, until, created_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (host_id, ip) DO UPDATE SET identity = excluded.identity, until = excluded.until, \
                 created_at = excluded.created_at",
            )
            .bind(host_id)
            .bind(ip)
            .bind(identity)
            .bind(now.saturating_add(ip_ban_ms))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(ModerationEntry {
            identity: identity.to_string(),
            kind: "ban".into(),
            name: name.map(str::to_string),
            reason: reason.map(str::to_string),
            until: None,
            created_at: now,
        })
    }

    /// Times `identity` out until `until` (epoch ms), replacing an earlier timeout.
    pub async fn timeout(
        &self,
        host_id: &str,
        identity: &str,
        name: Option<&str>,
        reason: Option<&str>,
        until: i64,
    ) -> DbResult<TimeoutOutcome> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let banned = sqlx::query(
            "SELECT 1 AS one FROM moderation WHERE host_id = $1 AND identity = $2 AND kind = 'ban'",
        )
        .bind(host_id)
        .bind(identity)
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
        if banned {
            return Ok(TimeoutOutcome::Banned);
        }
        sqlx::query(
            "INSERT INTO moderation (host_id, identity, kind, name, reason, until, lease_until, created_at) \
             VALUES ($1, $2, 'timeout', $3, $4, $5, NULL, $6) \
             ON CONFLICT (host_id, identity) DO UPDATE SET kind = 'timeout', name = excluded.name, \
             reason = excluded.reason, until = excluded.until, lease_until = NULL, created_at = excluded.created_at",
        )
        .bind(host_id)
        .bind(identity)
        .bind(name)
        .bind(reason)
        .bind(until)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(TimeoutOutcome::Stored(ModerationEntry {
            identity: identity.to_string(),
            kind: "timeout".into(),
            name: name.map(str::to_string),
            reason: reason.map(str::to_string),
            until: Some(until),
            created_at: now,
        }))
    }

    /// Lifts a ban or timeout (and the guest address ban that came with it);
    /// false if there was none.
    pub async fn lift(&self, host_id: &str, identity: &str) -> DbResult<bool> {
        let mut tx = self.write_tx().await?;
        let n = sqlx::query("DELETE FROM moderation WHERE host_id = $1 AND identity = $2")
            .bind(host_id)
            .bind(identity)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let m = sqlx::query("DELETE FROM guest_ip_bans WHERE host_id = $1 AND identity = $2")
            .bind(host_id)
            .bind(identity)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n + m > 0)
    }

    /// Claims up to `limit` expired timeouts for `lease_ms`: only the instance
    /// whose conditional UPDATE changed the row gets it, so several instances
    /// sweeping at once never work on the same one (a crashed instance's lease
    /// runs out and another retries).
    pub async fn claim_expired_timeouts(
        &self,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> DbResult<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT host_id, identity FROM moderation WHERE kind = 'timeout' AND until <= $1 \
             AND (lease_until IS NULL OR lease_until < $1) LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut claimed = Vec::new();
        for r in rows {
            let host: String = r.try_get("host_id")?;
            let identity: String = r.try_get("identity")?;
            let n = sqlx::query(
                "UPDATE moderation SET lease_until = $3 WHERE host_id = $1 AND identity = $2 \
                 AND kind = 'timeout' AND until <= $4 AND (lease_until IS NULL OR lease_until < $4)",
            )
            .bind(&host)
            .bind(&identity)
            .bind(now.saturating_add(lease_ms))
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
            if n == 1 {
                claimed.push((host, identity));
            }
        }
        Ok(claimed)
    }

    /// Deletes a claimed timeout once its permission is restored (only if it
    /// is still that expired timeout, not a new one set meanwhile).
    pub async fn finish_expired_timeout(
        &self,
        host_id: &str,
        identity: &str,
        now: i64,
    ) -> DbResult<()> {
        sqlx::query(
            "DELETE FROM moderation WHERE host_id = $1 AND identity = $2 AND kind = 'timeout' AND until <= $3",
        )
        .bind(host_id)
        .bind(identity)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // --- guests ---------------------------------------------------------------------

    pub async fn record_guest_token(
        &self,
        identity: &str,
        host_id: &str,
        name: &str,
        ip: &str,
        now: i64,
    ) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO guest_tokens (identity, host_id, name, ip, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(identity)
        .bind(host_id)
        .bind(name)
        .bind(ip)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(conflict_or)?;
        Ok(())
    }

    /// `(name, ip)` of a guest token minted for `host_id`.
    pub async fn guest_token(
        &self,
        host_id: &str,
        identity: &str,
    ) -> DbResult<Option<(String, String)>> {
        let row =
            sqlx::query("SELECT name, ip FROM guest_tokens WHERE identity = $1 AND host_id = $2")
                .bind(identity)
                .bind(host_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(match row {
            Some(r) => Some((r.try_get("name")?, r.try_get("ip")?)),
            None => None,
        })
    }

    pub async fn guest_ip_banned(&self, host_id: &str, ip: &str, now: i64) -> DbResult<bool> {
        let row = sqlx::query(
            "SELECT 1 AS one FROM guest_ip_bans WHERE host_id = $1 AND ip = $2 AND until > $3",
        )
        .bind(host_id)
        .bind(ip)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Housekeeping: guest-token records older than `before` (their tokens
    /// have expired) and expired guest address bans.
    pub async fn prune_guest_records(&self, before: i64, now: i64) -> DbResult<()> {
        sqlx::query("DELETE FROM guest_tokens WHERE created_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM guest_ip_bans WHERE until <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
