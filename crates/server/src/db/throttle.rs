//! Login throttling counters (`auth::LoginThrottle`), shared by every instance.

use sqlx::Row;

use super::{Db, DbResult};

impl Db {
    // --- login throttling (`auth::LoginThrottle`) ------------------------------------

    /// Counts one attempt on `key` in a fixed window of `window_ms` (a new
    /// window once the last one ran out); returns (attempts in the window,
    /// window start). One statement, so concurrent instances never lose a count.
    pub async fn count_in_window(
        &self,
        key: &str,
        now: i64,
        window_ms: i64,
    ) -> DbResult<(i64, i64)> {
        let row = sqlx::query(
            "INSERT INTO login_throttle (key, count, window_start, blocked_until) VALUES ($1, 1, $2, 0) \
             ON CONFLICT (key) DO UPDATE SET \
               count = CASE WHEN login_throttle.window_start <= $3 THEN 1 ELSE login_throttle.count + 1 END, \
               window_start = CASE WHEN login_throttle.window_start <= $3 THEN $2 ELSE login_throttle.window_start END \
             RETURNING count, window_start",
        )
        .bind(key)
        .bind(now)
        .bind(now.saturating_sub(window_ms))
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("count")?, row.try_get("window_start")?))
    }

    /// Until when `key` is blocked (0: not).
    pub async fn blocked_until(&self, key: &str) -> DbResult<i64> {
        let row = sqlx::query("SELECT blocked_until FROM login_throttle WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => r.try_get("blocked_until")?,
            None => 0,
        })
    }

    /// One more failure on `key` (a streak older than `forget_ms` starts
    /// over); `delay_ms(failures)` is the back-off to block it for. Returns the
    /// failures in the streak.
    pub async fn record_failure(
        &self,
        key: &str,
        now: i64,
        forget_ms: i64,
        delay_ms: impl Fn(i64) -> i64,
    ) -> DbResult<i64> {
        let (failures, _) = self.count_in_window(key, now, forget_ms).await?;
        // The streak's window restarts with every failure: it ends `forget_ms`
        // after the last one.
        sqlx::query(
            "UPDATE login_throttle SET window_start = $2, blocked_until = $3 WHERE key = $1",
        )
        .bind(key)
        .bind(now)
        .bind(now.saturating_add(delay_ms(failures)))
        .execute(&self.pool)
        .await?;
        Ok(failures)
    }

    pub async fn clear_throttle(&self, key: &str) -> DbResult<()> {
        sqlx::query("DELETE FROM login_throttle WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Housekeeping: rows whose window and block ended before `before`.
    pub async fn prune_throttle(&self, before: i64) -> DbResult<()> {
        sqlx::query("DELETE FROM login_throttle WHERE window_start < $1 AND blocked_until < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
