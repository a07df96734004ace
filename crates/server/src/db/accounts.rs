//! Accounts: users, their login sessions and the name keys that keep two users from
//! looking alike.

use super::*;

impl Db {
    // --- users ------------------------------------------------------------

    pub async fn insert_user(&self, u: &UserRow) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO users (id, username, display_name, password_hash, role, is_approved, created_at, updated_at, \
             username_key, display_name_key, name_key_version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10)",
        )
        .bind(&u.id)
        .bind(&u.username)
        .bind(&u.display_name)
        .bind(&u.password_hash)
        .bind(u.role.as_str())
        .bind(flag(u.is_approved))
        .bind(u.created_at)
        .bind(name_key(&u.username))
        .bind(name_key(&u.display_name))
        .bind(NAME_KEY_VERSION)
        .execute(&self.pool)
        .await
        .map_err(conflict_or)?;
        Ok(())
    }

    /// Registration: the user and their first login session, both or neither.
    pub async fn insert_user_with_session(
        &self,
        u: &UserRow,
        token_hash: &str,
        expires_at: i64,
    ) -> DbResult<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO users (id, username, display_name, password_hash, role, is_approved, created_at, updated_at, \
             username_key, display_name_key, name_key_version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10)",
        )
        .bind(&u.id)
        .bind(&u.username)
        .bind(&u.display_name)
        .bind(&u.password_hash)
        .bind(u.role.as_str())
        .bind(flag(u.is_approved))
        .bind(u.created_at)
        .bind(name_key(&u.username))
        .bind(name_key(&u.display_name))
        .bind(NAME_KEY_VERSION)
        .execute(&mut *tx)
        .await
        .map_err(conflict_or)?;
        sqlx::query("INSERT INTO auth_sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(token_hash)
            .bind(&u.id)
            .bind(u.created_at)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn user_by_username(&self, username: &str) -> DbResult<Option<UserRow>> {
        let q = sqlx::AssertSqlSafe(format!("SELECT {USER_COLS} FROM users WHERE username = $1"));
        let row = sqlx::query(q)
            .bind(username)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    pub async fn user_by_id(&self, id: &str) -> DbResult<Option<UserRow>> {
        let q = sqlx::AssertSqlSafe(format!("SELECT {USER_COLS} FROM users WHERE id = $1"));
        let row = sqlx::query(q).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// Sets role and approval; returns the updated user, `None` if unknown.
    pub async fn set_role(
        &self,
        username: &str,
        role: Option<Role>,
        approved: Option<bool>,
    ) -> DbResult<Option<UserRow>> {
        let n = sqlx::query(
            "UPDATE users SET role = COALESCE($2, role), is_approved = COALESCE($3, is_approved), updated_at = $4 \
             WHERE username = $1",
        )
        .bind(username)
        .bind(role.map(|r| r.as_str().to_string()))
        .bind(approved.map(flag))
        .bind(now_ms())
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(None);
        }
        self.user_by_username(username).await
    }

    /// Replaces a user's password hash and ends all their login sessions (whoever knew
    /// the old password is logged out); returns the user, `None` if unknown.
    pub async fn set_password_hash(
        &self,
        username: &str,
        password_hash: &str,
    ) -> DbResult<Option<UserRow>> {
        let n =
            sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE username = $1")
                .bind(username)
                .bind(password_hash)
                .bind(now_ms())
                .execute(&self.pool)
                .await?
                .rows_affected();
        if n == 0 {
            return Ok(None);
        }
        let user = self.user_by_username(username).await?;
        if let Some(u) = &user {
            sqlx::query("DELETE FROM auth_sessions WHERE user_id = $1")
                .bind(&u.id)
                .execute(&self.pool)
                .await?;
        }
        Ok(user)
    }

    pub async fn list_users(&self) -> DbResult<Vec<UserRow>> {
        let q = sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLS} FROM users ORDER BY created_at, username"
        ));
        let rows = sqlx::query(q).fetch_all(&self.pool).await?;
        rows.iter().map(user_from_row).collect()
    }

    // --- login sessions -----------------------------------------------------

    pub async fn insert_auth_session(
        &self,
        token_hash: &str,
        user_id: &str,
        now: i64,
        expires_at: i64,
    ) -> DbResult<()> {
        // Housekeeping first: drop this user's expired sessions.
        sqlx::query("DELETE FROM auth_sessions WHERE user_id = $1 AND expires_at <= $2")
            .bind(user_id)
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query("INSERT INTO auth_sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(token_hash)
            .bind(user_id)
            .bind(now)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The user of an unexpired session.
    pub async fn user_by_session(&self, token_hash: &str, now: i64) -> DbResult<Option<UserRow>> {
        let q = "SELECT u.id, u.username, u.display_name, u.password_hash, u.role, u.is_approved, u.created_at \
             FROM auth_sessions a JOIN users u ON u.id = a.user_id \
             WHERE a.token_hash = $1 AND a.expires_at > $2";
        let row = sqlx::query(q)
            .bind(token_hash)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    pub async fn delete_auth_session(&self, token_hash: &str) -> DbResult<bool> {
        let n = sqlx::query("DELETE FROM auth_sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    // --- name keys --------------------------------------------------------------

    /// Computes the name keys of users stored before the keys existed or by an
    /// older normaliser (`name_key_version` < [`NAME_KEY_VERSION`]), in batches.
    pub async fn backfill_name_keys(&self) -> DbResult<u64> {
        let mut done = 0u64;
        loop {
            let rows = sqlx::query(
                "SELECT id, username, display_name FROM users WHERE name_key_version < $1 LIMIT 500",
            )
            .bind(NAME_KEY_VERSION)
            .fetch_all(&self.pool)
            .await?;
            if rows.is_empty() {
                break;
            }
            for r in &rows {
                let id: String = r.try_get("id")?;
                let username: String = r.try_get("username")?;
                let display: String = r.try_get("display_name")?;
                sqlx::query(
                    "UPDATE users SET username_key = $2, display_name_key = $3, name_key_version = $4 WHERE id = $1",
                )
                .bind(&id)
                .bind(name_key(&username))
                .bind(name_key(&display))
                .bind(NAME_KEY_VERSION)
                .execute(&self.pool)
                .await?;
                done += 1;
            }
        }
        if done > 0 {
            tracing::info!(users = done, "computed name keys");
        }
        Ok(done)
    }

    /// Is `key` the username key or display-name key of a registered user? (indexed)
    pub async fn name_key_taken(&self, key: &str) -> DbResult<bool> {
        let row = sqlx::query(
            "SELECT 1 AS one FROM users WHERE username_key = $1 \
             UNION ALL SELECT 1 AS one FROM users WHERE display_name_key = $1 LIMIT 1",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }
}
