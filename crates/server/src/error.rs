//! Errors as the contract's envelope: `{"success":false,"error":"…"}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use streamit_api::Envelope;

use crate::db::DbError;

/// An error a handler returns. The message is shown to the client, so it
/// must never carry a secret; internal causes are logged, not returned.
#[derive(Debug)]
pub enum AppError {
    BadRequest(String),
    Unauthorized(String),
    Forbidden(String),
    NotFound(String),
    Conflict(String),
    PayloadTooLarge,
    UnsupportedMediaType,
    Unprocessable(String),
    TooManyRequests {
        message: String,
        retry_after_secs: u64,
    },
    Internal(String),
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn unprocessable(m: impl Into<String>) -> Self {
        AppError::Unprocessable(m.into())
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        AppError::NotFound(m.into())
    }
    pub fn forbidden(m: impl Into<String>) -> Self {
        AppError::Forbidden(m.into())
    }

    fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<DbError> for AppError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Conflict => AppError::Conflict("Already exists".into()),
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut retry = None;
        let message = match self {
            AppError::BadRequest(m)
            | AppError::Unauthorized(m)
            | AppError::Forbidden(m)
            | AppError::NotFound(m)
            | AppError::Conflict(m)
            | AppError::Unprocessable(m) => m,
            AppError::PayloadTooLarge => "Request body too large".into(),
            AppError::UnsupportedMediaType => {
                "Expected a JSON body (Content-Type: application/json)".into()
            }
            AppError::TooManyRequests {
                message,
                retry_after_secs,
            } => {
                retry = Some(retry_after_secs);
                message
            }
            AppError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                "Internal server error".into()
            }
        };
        let mut resp = (status, Json(Envelope::<()>::err(message))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = retry
            && let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

/// `{"success":true,"data":…}` with a status.
pub fn ok<T: serde::Serialize>(status: StatusCode, data: T) -> Response {
    (status, Json(Envelope::ok(data))).into_response()
}
