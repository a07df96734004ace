//! The endpoint handlers (paths and shapes: ARCHITECTURE.md's contract table), one
//! module per audience; shared helpers and the health check here.

mod accounts;
mod stream;
mod viewers;

pub use accounts::*;
pub use stream::*;
pub use viewers::*;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use streamit_api::*;

use crate::app::AppState;
use crate::auth::{self};
use crate::db::{UserRow, now_ms};
use crate::error::{AppError, AppResult, ok};
use streamit_api::openapi::{Failure, Success};

pub(super) fn session_ttl_ms(state: &AppState) -> i64 {
    i64::try_from(state.config.session_ttl.as_millis()).unwrap_or(i64::MAX / 2)
}

pub(super) async fn issue_session(state: &AppState, user: &UserRow) -> AppResult<AuthResponse> {
    let (token, hash) = auth::new_session_token();
    let now = now_ms();
    let expires_at = now.saturating_add(session_ttl_ms(state));
    state
        .db
        .insert_auth_session(&hash, &user.id, now, expires_at)
        .await?;
    Ok(AuthResponse {
        token,
        expires_at,
        user: user.to_api(),
    })
}

/// A stream as returned to clients: with its watch URL
/// (`{public_web_url}/{username}`).
pub fn with_watch_url(state: &AppState, mut stream: Stream) -> Stream {
    stream.watch_url = format!("{}/{}", state.config.public_web_url(), stream.user.username);
    stream
}

pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> AppResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AppError::Internal(format!("blocking task failed: {e}")))
}

#[utoipa::path(get, path = "/health", tag = "health",
    summary = "Liveness and database check",
    responses(
        (status = 200, description = "Up, and the database answers", body = Success<Health>),
        (status = 500, description = "The database does not answer", body = Failure),
    ))]
pub async fn health(State(state): State<AppState>) -> AppResult<Response> {
    state.db.ping().await?;
    Ok(ok(
        StatusCode::OK,
        Health {
            status: "ok".into(),
        },
    ))
}
