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

mod accounts;
mod moderation;
mod presence;
mod streams;
mod throttle;

pub use moderation::{Sanction, TimeoutOutcome};
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

/// `$first, $first+1, …` for `n` bound values.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}
