//! The HTTP application: shared state, the router, the JSON extractor that
//! turns every bad body into the contract's error envelope, and validation.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use livekit_api::access_token::{AccessToken, VideoGrants};
use livekit_api::services::room::{CreateRoomOptions, RoomClient};
use livekit_api::webhooks::WebhookReceiver;
use serde::de::DeserializeOwned;
use streamit_api::limits;
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{LoginThrottle, WindowLimit};
use crate::config::Config;
use crate::db::Db;
use crate::error::{AppError, AppResult};
use crate::routes;

/// Shared by every request. Holds no per-user state: everything two
/// instances must agree on is in the database, the login and registration
/// limits' counters included (see [`LoginThrottle`], [`WindowLimit`]).
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
    pub webhooks: Arc<WebhookReceiver>,
    /// Login throttling, counted in the database (see [`LoginThrottle`]).
    pub login_throttle: LoginThrottle,
    /// Registrations per client IP, counted in the database.
    pub register_ip_limit: WindowLimit,
    /// LiveKit's room service (creating the room at go-live).
    pub rooms: Arc<RoomClient>,
}

impl AppState {
    pub fn new(db: Db, config: Config) -> Self {
        let verifier = livekit_api::access_token::TokenVerifier::with_api_key(
            &config.livekit_api_key,
            &config.livekit_api_secret,
        );
        AppState {
            db,
            login_throttle: LoginThrottle {
                ip_per_minute: config.login_ip_per_minute,
                free_failures: config.login_failures_per_account,
            },
            register_ip_limit: WindowLimit {
                kind: "register",
                limit: config.register_ip_per_minute,
                window: Duration::from_secs(60),
                message: "Too many registrations; try again later",
            },
            rooms: Arc::new(
                RoomClient::with_api_key(
                    &config.livekit_url,
                    &config.livekit_api_key,
                    &config.livekit_api_secret,
                )
                .with_request_timeout(Duration::from_secs(3)),
            ),
            config: Arc::new(config),
            webhooks: Arc::new(WebhookReceiver::new(verifier)),
        }
    }

    /// A LiveKit access token for `room`. `role` is one of `api::room::ROLE_*`,
    /// set as the participant attribute `streamit.role` (viewers cannot change
    /// their attributes, so the mark cannot be forged); only the creator
    /// publishes media. `can_publish_data` is the chat rule (see `chat_rules`).
    pub fn livekit_token(
        &self,
        room: &str,
        identity: &str,
        name: &str,
        role: &str,
        can_publish_data: bool,
    ) -> AppResult<String> {
        let creator = role == streamit_api::room::ROLE_CREATOR;
        let grants = VideoGrants {
            room_join: true,
            room: room.to_string(),
            can_publish: Some(creator),
            can_publish_data: Some(creator || can_publish_data),
            can_subscribe: Some(true),
            // The studio announces its media clock epoch as a participant attribute
            // (viewers measure latency from it); viewers set nothing.
            can_update_own_metadata: creator.then_some(true),
            ..Default::default()
        };
        AccessToken::with_api_key(
            &self.config.livekit_api_key,
            &self.config.livekit_api_secret,
        )
        .with_identity(identity)
        .with_name(name)
        .with_attributes([(streamit_api::room::ATTR_ROLE, role)])
        .with_ttl(self.config.token_ttl)
        .with_grants(grants)
        .to_jwt()
        // The error names no key material (InvalidKeys / InvalidClaims / encoding).
        .map_err(|e| AppError::Internal(format!("minting a LiveKit token failed: {e}")))
    }
}

impl AppState {
    /// Creates the creator's LiveKit room at go-live, with the stream's
    /// [`streamit_api::RoomMetadata`] and the configured empty timeout (if the
    /// studio never connects, LiveKit closes the room and its `room_finished`
    /// webhook takes the stream offline), then sets the metadata again in case
    /// the room existed already. In the background and best effort: LiveKit
    /// also creates the room on the first join, and the periodic reconcile
    /// and later edits set the metadata; a failure is logged, not returned.
    pub fn ensure_room(&self, stream: &streamit_api::Stream) {
        let state = self.clone();
        let room = stream.user_id.clone();
        let metadata = crate::chat_rules::room_metadata(stream);
        tokio::spawn(async move {
            let options = CreateRoomOptions {
                empty_timeout: state
                    .config
                    .room_empty_timeout
                    .map(|t| u32::try_from(t.as_secs()).unwrap_or(u32::MAX))
                    .unwrap_or(0),
                metadata: metadata.clone(),
                ..Default::default()
            };
            let timeout = crate::chat_rules::ROOM_CALL_TIMEOUT;
            match tokio::time::timeout(timeout, state.rooms.create_room(&room, options)).await {
                Ok(Ok(r)) => tracing::debug!(room = %r.name, sid = %r.sid, "LiveKit room ready"),
                Ok(Err(e)) => {
                    tracing::warn!(%room, error = %e, "could not create the LiveKit room (it is created on first join)");
                    return;
                }
                Err(_) => {
                    tracing::warn!(%room, "LiveKit did not answer CreateRoom in time (the room is created on first join)");
                    return;
                }
            }
            if let Ok(Err(e)) =
                tokio::time::timeout(timeout, state.rooms.update_room_metadata(&room, &metadata))
                    .await
            {
                tracing::warn!(%room, error = %e, "could not set the LiveKit room metadata");
            }
        });
    }
}

/// Every API operation, with its OpenAPI description (the `#[utoipa::path]`
/// on each handler): the one table both the router and `/api/openapi.json`
/// are made from. Paths are relative to `/api`.
pub fn api_table() -> OpenApiRouter<AppState> {
    use crate::{moderation, webhook};
    OpenApiRouter::new()
        .routes(routes!(routes::health))
        .routes(routes!(routes::register))
        .routes(routes!(routes::login))
        .routes(routes!(routes::logout))
        .routes(routes!(routes::me))
        .routes(routes!(routes::follow, routes::unfollow))
        .routes(routes!(routes::admin_approve))
        .routes(routes!(routes::admin_revoke))
        .routes(routes!(routes::setup_stream))
        .routes(routes!(routes::go_live))
        .routes(routes!(routes::end_stream))
        .routes(routes!(routes::get_info, routes::put_info))
        .routes(routes!(routes::chat_settings))
        .routes(routes!(routes::list_sessions))
        .routes(routes!(routes::latest_session))
        .routes(routes!(routes::get_session))
        .routes(routes!(routes::report_stats))
        .routes(routes!(moderation::list))
        .routes(routes!(moderation::ban))
        .routes(routes!(moderation::timeout))
        .routes(routes!(moderation::lift))
        .routes(routes!(routes::stream_by_username))
        .routes(routes!(routes::viewer_token))
        .routes(routes!(routes::live))
        .routes(routes!(routes::following))
        .routes(routes!(webhook::receive))
}

pub fn router(state: AppState) -> Router {
    let (api, table) = api_table().split_for_parts();
    let doc = crate::openapi::document_for(table);
    let api = api
        .route("/openapi.json", get(crate::openapi::serve(&doc)))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found);
    // Everything outside /api is the viewers' web app (crate::web).
    let web = crate::web::router(state.config.web_dir.clone(), &state.config.livekit_ws_url);
    // API responses carry session and LiveKit tokens (login, register, go-live,
    // viewer token) and per-user data: never stored by a browser or proxy, never
    // sniffed as anything but the JSON they are.
    let api = api
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ));
    Router::new()
        .nest("/api", api)
        .layer(DefaultBodyLimit::max(limits::BODY_MAX_BYTES))
        .with_state(state)
        .fallback_service(web)
}

async fn not_found() -> Response {
    AppError::not_found("Not found").into_response()
}

async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        axum::Json(streamit_api::Envelope::<()>::err("Method not allowed")),
    )
        .into_response()
}

/// One path parameter; a rejection (e.g. invalid percent-encoding) is a 400 envelope.
pub struct ApiPath(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ApiPath {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<String>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(_) => Err(AppError::BadRequest("Invalid path parameter".into())),
        }
    }
}

/// `Json<T>` whose rejections are envelopes: malformed JSON 400, wrong
/// types / unknown or missing fields 422, too large 413, not JSON 415.
pub struct ApiJson<T>(pub T);

/// Every request body of the API is a JSON object. serde would also take a
/// struct from a sequence of its fields in order (`[false,true,true]` for the
/// chat settings), which no client means; such a body is a 422.
impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json_content_type(req.headers()) {
            return Err(AppError::UnsupportedMediaType);
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    AppError::PayloadTooLarge
                } else {
                    AppError::BadRequest("Could not read the request body".into())
                }
            })?;
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
            return Err(AppError::unprocessable(
                "Invalid request body: expected a JSON object, not an array",
            ));
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// `application/json` or `application/<anything>+json`, parameters ignored
/// (what `axum::Json` accepts).
fn is_json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(ct) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn json_rejection(r: JsonRejection) -> AppError {
    match r {
        JsonRejection::JsonDataError(e) => AppError::Unprocessable(redact_serde(&e.body_text())),
        JsonRejection::JsonSyntaxError(_) => AppError::BadRequest("Malformed JSON body".into()),
        JsonRejection::MissingJsonContentType(_) => AppError::UnsupportedMediaType,
        JsonRejection::BytesRejection(e) => {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                AppError::PayloadTooLarge
            } else {
                AppError::BadRequest("Could not read the request body".into())
            }
        }
        other => AppError::BadRequest(other.body_text()),
    }
}

/// serde quotes the offending value (`invalid type: string "…"`); the value
/// may be a password, so keep only its kind.
pub fn redact_serde(msg: &str) -> String {
    let mut out = String::new();
    let mut rest = msg;
    loop {
        let hit = ["invalid type: ", "invalid value: ", "invalid length "]
            .iter()
            .filter_map(|p| rest.find(p).map(|i| (i, *p)))
            .min_by_key(|(i, _)| *i);
        let Some((i, pat)) = hit else {
            out.push_str(rest);
            break;
        };
        out.push_str(&rest[..i + pat.len()]);
        let after = &rest[i + pat.len()..];
        let end = after.find(", expected").unwrap_or(after.len());
        let kind = after[..end].split_whitespace().next().unwrap_or("value");
        out.push_str(kind.trim_end_matches(','));
        rest = &after[end..];
    }
    out.replace(
        "Failed to deserialize the JSON body into the target type: ",
        "Invalid request body: ",
    )
}

// --- validation ---------------------------------------------------------------
//
// The checks, their limits and patterns are `streamit_api::limits`, which the
// OpenAPI document states too; a failed check is a 422.

fn unprocessable<T>(r: Result<T, String>) -> AppResult<T> {
    r.map_err(AppError::Unprocessable)
}

/// A title, trimmed (see [`limits::check_title`]).
pub fn valid_title(raw: &str) -> AppResult<String> {
    unprocessable(limits::check_title(raw))
}

/// A description, trimmed; empty means none.
pub fn valid_description(raw: &str) -> AppResult<Option<String>> {
    unprocessable(limits::check_description(raw))
}

/// A display / guest name, invisible characters removed and trimmed.
pub fn valid_name(field: &str, raw: &str) -> AppResult<String> {
    unprocessable(limits::check_name(field, raw))
}

/// A username, trimmed and lower-cased.
pub fn valid_username(raw: &str) -> AppResult<String> {
    unprocessable(limits::check_username(raw))
}

pub fn valid_password(p: &str) -> AppResult<()> {
    unprocessable(limits::check_password(p))
}

/// A participant identity or a hostId.
pub fn valid_identity<'a>(field: &str, raw: &'a str) -> AppResult<&'a str> {
    unprocessable(limits::check_identity(field, raw))
}

/// A moderation note, trimmed; empty means none.
pub fn valid_reason(raw: Option<&str>) -> AppResult<Option<String>> {
    unprocessable(limits::check_reason(raw))
}

/// `value` within `min..=max`.
pub fn valid_range<T: PartialOrd + std::fmt::Display>(
    field: &str,
    value: T,
    min: T,
    max: T,
) -> AppResult<()> {
    unprocessable(limits::check_range(field, value, min, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_values_are_redacted() {
        let m = "Failed to deserialize the JSON body into the target type: password: invalid type: integer `123456789`, expected a string at line 1 column 30";
        let r = redact_serde(m);
        assert!(!r.contains("123456789"), "{r}");
        assert!(
            r.contains("invalid type: integer, expected a string"),
            "{r}"
        );
        let m2 = "x: invalid value: string \"hunter2\", expected viewer or creator";
        assert!(!redact_serde(m2).contains("hunter2"));
        let m3 = "unknown field `bogus`, expected one of `title`";
        assert_eq!(redact_serde(m3), m3);
    }

    #[test]
    fn validation_limits() {
        assert!(valid_title(&"x".repeat(140)).is_ok());
        assert!(matches!(
            valid_title(&"é".repeat(141)),
            Err(AppError::Unprocessable(_))
        ));
        assert_eq!(valid_username("Alice_1").unwrap(), "alice_1");
        assert!(valid_password("short").is_err());
    }
}
