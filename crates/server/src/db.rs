//! Storage: one code path for SQLite and PostgreSQL through sqlx's `Any`
//! driver, with one set of migrations (see `migrations/`).
//!
//! All state lives here, never in the process, so any number of instances can
//! share one database behind a load balancer. Queries use `$n` placeholders,
//! which both engines accept.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};
use streamit_api::{
    ModerationEntry, Role, SessionStatsReport, Stream, StreamSession, StreamUser, User,
};

use crate::names::{KEY_VERSION as NAME_KEY_VERSION, name_key};

mod presence;
mod throttle;

pub use presence::end_reason;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("already exists")]
    Conflict,
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

pub type DbResult<T> = Result<T, DbError>;

fn conflict_or(e: sqlx::Error) -> DbError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => DbError::Conflict,
        _ => DbError::Sqlx(e),
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The database handle (cheap to clone).
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    sqlite: bool,
}

/// A user row including the password hash (never leaves the server).
#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub password_hash: String,
    pub role: Role,
    pub is_approved: bool,
    pub created_at: i64,
}

impl UserRow {
    pub fn to_api(&self) -> User {
        User {
            id: self.id.clone(),
            username: self.username.clone(),
            display_name: self.display_name.clone(),
            role: self.role,
            is_approved: self.is_approved,
            created_at: self.created_at,
        }
    }

    /// May set up a stream and go live: an approved creator, or an admin.
    pub fn may_stream(&self) -> bool {
        match self.role {
            Role::Admin => true,
            Role::Creator => self.is_approved,
            Role::Viewer => false,
        }
    }
}

/// Fields a stream setup or edit writes. `None` keeps the stored value.
#[derive(Debug, Clone, Default)]
pub struct StreamPatch {
    pub title: Option<String>,
    /// `Some(None)` clears the description.
    pub description: Option<Option<String>>,
    pub is_chat_enabled: Option<bool>,
    pub is_chat_delayed: Option<bool>,
    pub is_chat_followers_only: Option<bool>,
}

const USER_COLS: &str = "id, username, display_name, password_hash, role, is_approved, created_at";

const STREAM_SELECT: &str = "SELECT s.id, s.title, s.description, s.thumbnail, s.is_live, \
     s.is_chat_enabled, s.is_chat_delayed, s.is_chat_followers_only, s.user_id, \
     u.username, u.display_name, s.created_at, s.updated_at, \
     COALESCE((SELECT ss.current_viewers FROM stream_sessions ss \
               WHERE ss.stream_id = s.id AND ss.ended_at IS NULL), 0) AS viewer_count \
     FROM streams s JOIN users u ON u.id = s.user_id";

const SESSION_COLS: &str = "id, stream_id, started_at, ended_at, end_reason, peak_viewers, \
     current_viewers, chat_messages, frames_sent, frames_dropped, average_bitrate_bps, reconnects";

fn user_from_row(r: &AnyRow) -> DbResult<UserRow> {
    let role: String = r.try_get("role")?;
    Ok(UserRow {
        id: r.try_get("id")?,
        username: r.try_get("username")?,
        display_name: r.try_get("display_name")?,
        password_hash: r.try_get("password_hash")?,
        role: Role::parse(&role)
            .ok_or_else(|| DbError::Corrupt(format!("unknown role {role:?}")))?,
        is_approved: r.try_get::<i64, _>("is_approved")? != 0,
        created_at: r.try_get("created_at")?,
    })
}

fn stream_from_row(r: &AnyRow) -> DbResult<Stream> {
    let user_id: String = r.try_get("user_id")?;
    Ok(Stream {
        id: r.try_get("id")?,
        title: r.try_get("title")?,
        description: r.try_get("description")?,
        thumbnail: r.try_get("thumbnail")?,
        is_live: r.try_get::<i64, _>("is_live")? != 0,
        is_chat_enabled: r.try_get::<i64, _>("is_chat_enabled")? != 0,
        is_chat_delayed: r.try_get::<i64, _>("is_chat_delayed")? != 0,
        is_chat_followers_only: r.try_get::<i64, _>("is_chat_followers_only")? != 0,
        user: StreamUser {
            id: user_id.clone(),
            username: r.try_get("username")?,
            display_name: r.try_get("display_name")?,
        },
        user_id,
        viewer_count: r.try_get("viewer_count")?,
        // Filled in by the routes, which know the public web URL.
        watch_url: String::new(),
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn session_from_row(r: &AnyRow, now: i64) -> DbResult<StreamSession> {
    let started_at: i64 = r.try_get("started_at")?;
    let ended_at: Option<i64> = r.try_get("ended_at")?;
    let end = ended_at.unwrap_or(now);
    Ok(StreamSession {
        id: r.try_get("id")?,
        stream_id: r.try_get("stream_id")?,
        started_at,
        ended_at,
        duration_secs: (end - started_at).max(0) / 1000,
        peak_viewers: r.try_get("peak_viewers")?,
        current_viewers: r.try_get("current_viewers")?,
        chat_messages: r.try_get("chat_messages")?,
        frames_sent: r.try_get("frames_sent")?,
        frames_dropped: r.try_get("frames_dropped")?,
        average_bitrate_bps: r.try_get("average_bitrate_bps")?,
        reconnects: r.try_get("reconnects")?,
        end_reason: r.try_get("end_reason")?,
    })
}

fn flag(b: bool) -> i64 {
    i64::from(b)
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl Db {
    /// Connects, turns on WAL for SQLite, and applies the migrations.
    pub async fn connect(url: &str) -> DbResult<Db> {
        sqlx::any::install_default_drivers();
        let sqlite = url.starts_with("sqlite:");
        let url = if sqlite {
            sqlite_url(url)?
        } else {
            url.to_string()
        };
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 8 } else { 16 })
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    if conn.backend_name().eq_ignore_ascii_case("sqlite") {
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        MIGRATOR.run(&pool).await?;
        let db = Db { pool, sqlite };
        db.backfill_name_keys().await?;
        Ok(db)
    }

    pub fn is_sqlite(&self) -> bool {
        self.sqlite
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A write transaction. SQLite takes the write lock at once (`BEGIN
    /// IMMEDIATE`) so two writers never deadlock on a lock upgrade.
    async fn write_tx(&self) -> DbResult<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(if self.sqlite {
            self.pool.begin_with("BEGIN IMMEDIATE").await?
        } else {
            self.pool.begin().await?
        })
    }

    pub async fn ping(&self) -> DbResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

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

    async fn open_session_for_room(
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

async fn apply_patch(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    user_id: &str,
    p: &StreamPatch,
    now: i64,
) -> DbResult<u64> {
    // `$3` says whether to touch the description (it may be set to NULL).
    let n = sqlx::query(
        "UPDATE streams SET \
           title = COALESCE($2, title), \
           description = CASE WHEN $3 = 1 THEN $4 ELSE description END, \
           is_chat_enabled = COALESCE($5, is_chat_enabled), \
           is_chat_delayed = COALESCE($6, is_chat_delayed), \
           is_chat_followers_only = COALESCE($7, is_chat_followers_only), \
           updated_at = $8 \
         WHERE user_id = $1",
    )
    .bind(user_id)
    .bind(p.title.clone())
    .bind(flag(p.description.is_some()))
    .bind(p.description.clone().flatten())
    .bind(p.is_chat_enabled.map(flag))
    .bind(p.is_chat_delayed.map(flag))
    .bind(p.is_chat_followers_only.map(flag))
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(n)
}

/// `sqlite://path` → `sqlite://path?mode=rwc` (create the file if missing),
/// creating the parent directory.
fn sqlite_url(url: &str) -> DbResult<String> {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = rest.split('?').next().unwrap_or("");
    if !path.is_empty()
        && path != ":memory:"
        && let Some(parent) = std::path::Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(|e| DbError::Sqlx(sqlx::Error::Io(e)))?;
    }
    if url.contains("mode=") {
        Ok(url.to_string())
    } else if url.contains('?') {
        Ok(format!("{url}&mode=rwc"))
    } else {
        Ok(format!("{url}?mode=rwc"))
    }
}

/// Marks the user's stream offline and closes its open session with `reason`
/// inside `tx`; the stream id, or `None` if the user has no stream.
async fn end_stream_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    user_id: &str,
    reason: &str,
) -> DbResult<Option<String>> {
    let now = now_ms();
    let Some(stream_id) = set_live(tx, user_id, false, now).await? else {
        return Ok(None);
    };
    sqlx::query(
        "UPDATE stream_sessions SET ended_at = $2, end_reason = $3, current_viewers = 0 \
         WHERE stream_id = $1 AND ended_at IS NULL",
    )
    .bind(&stream_id)
    .bind(now)
    .bind(reason)
    .execute(&mut **tx)
    .await?;
    Ok(Some(stream_id))
}

/// Sets the user's stream live or offline inside `tx`; its id, or `None` if the user has no stream.
async fn set_live(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    user_id: &str,
    live: bool,
    now: i64,
) -> DbResult<Option<String>> {
    let Some(row) = sqlx::query("SELECT id FROM streams WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(&mut **tx)
        .await?
    else {
        return Ok(None);
    };
    let stream_id: String = row.try_get("id")?;
    sqlx::query("UPDATE streams SET is_live = $3, updated_at = $2 WHERE id = $1")
        .bind(&stream_id)
        .bind(now)
        .bind(i64::from(live))
        .execute(&mut **tx)
        .await?;
    Ok(Some(stream_id))
}

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

/// `$first, $first+1, …` for `n` bound values.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Db {
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
