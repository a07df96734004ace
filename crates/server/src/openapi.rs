//! `GET /api/openapi.json`, generated: the paths from the `#[utoipa::path]`
//! attribute on each handler, collected by the same `routes!` table that
//! routes the requests (`app::api_table`), so an operation cannot be served
//! without being described or described without being served; the schemas
//! from the contract types in `streamit-api`, whose limits (lengths,
//! patterns, ranges) are the constants and patterns of
//! `streamit_api::limits` that the handlers check with.
//!
//! Every response is the envelope: `Success<T>` (`{"success":true,"data":…}`)
//! or `Failure` (`{"success":false,"error":"…"}`); each operation lists every
//! status it can answer with.

use std::sync::Arc;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "StreamIt API",
        description = "Accounts, streams, LiveKit tokens, webhooks and stream statistics. \
Every response is {\"success\":true,\"data\":…} or {\"success\":false,\"error\":\"…\"}; each \
operation lists the statuses it answers with. A body that breaks its schema (types, unknown or \
missing fields, the lengths, patterns and ranges stated there, a JSON array for an object) is \
refused with 422; malformed JSON with 400; a body over 64 KiB with 413; a body that is not \
application/json with 415. Lengths count Unicode scalar values of the string as sent."
    ),
    // Types the paths do not name (what the backend and the studio put into
    // LiveKit rooms), so clients find them here too.
    components(schemas(
        streamit_api::RoomMetadata,
        streamit_api::ModerationEvent,
        streamit_api::ChatAccess,
    )),
    modifiers(&SecuritySchemes),
    tags(
        (name = "health"),
        (name = "accounts", description = "Register, log in, follow"),
        (name = "admin", description = "Creator approval (admins)"),
        (name = "stream", description = "The creator's stream and its sessions"),
        (name = "moderation", description = "The creator's bans and timeouts"),
        (name = "viewer", description = "Watching: streams and viewer tokens"),
        (name = "livekit", description = "LiveKit's webhooks"),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The session token from register or login (`Authorization: Bearer …`).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "livekitWebhook",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "The JWT LiveKit signs each delivery with (HS256, the API key and secret); its \
                 `sha256` claim is the hash of the body.",
            ))),
        );
    }
}

/// `{username}` in a path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct UsernamePath {
    /// A username (case and white space around it do not matter).
    username: String,
}

/// `{id}` in a path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct SessionIdPath {
    /// A stream session id.
    id: String,
}

/// `{identity}` in a path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct IdentityPath {
    #[param(schema_with = streamit_api::limits::schema::identity, required = true)]
    identity: String,
}

/// The document for the operations of `table` (paths relative to `/api`).
pub fn document_for(table: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    ApiDoc::openapi().nest("/api", table)
}

/// The whole document, as served.
pub fn document() -> utoipa::openapi::OpenApi {
    document_for(crate::app::api_table().into_openapi())
}

/// The handler of `GET /api/openapi.json`: the document, serialised once.
pub fn serve(
    doc: &utoipa::openapi::OpenApi,
) -> impl Fn() -> std::future::Ready<Response> + Clone + use<> {
    let json: Arc<str> = serde_json::to_string(doc)
        .expect("the OpenAPI document serialises")
        .into();
    move || {
        let mut resp = json.to_string().into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        std::future::ready(resp)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    fn doc() -> Value {
        serde_json::to_value(super::document()).unwrap()
    }

    #[test]
    fn every_operation_is_described() {
        let json = doc();
        let paths = json["paths"].as_object().unwrap();
        assert_eq!(paths.len(), 26, "{:?}", paths.keys().collect::<Vec<_>>());
        let operations: usize = paths
            .values()
            .map(|item| item.as_object().unwrap().len())
            .sum();
        assert_eq!(operations, 28);
        assert!(json["paths"]["/api/stream/info"]["put"].is_object());
        assert!(json["paths"]["/api/stream/info"]["get"].is_object());
        assert!(json["components"]["securitySchemes"]["bearer"].is_object());
        let token = &json["paths"]["/api/viewer/token"]["post"]["responses"];
        for code in ["200", "401", "403", "404", "409", "413", "415", "422"] {
            assert!(token[code].is_object(), "viewer token response {code}");
        }
        assert!(json["paths"]["/api/stream/moderation/{identity}"]["delete"].is_object());
        assert!(json["components"]["schemas"]["ModerationEntry"].is_object());
        // Every operation answers with the envelope, and names no generic 4XX.
        for (path, item) in paths {
            for (method, op) in item.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                assert!(
                    responses.keys().all(|k| k.parse::<u16>().is_ok()),
                    "{method} {path}: {:?}",
                    responses.keys()
                );
                for (code, r) in responses {
                    assert!(
                        r["content"]["application/json"]["schema"].is_object(),
                        "{method} {path} {code} has no JSON body"
                    );
                }
            }
        }
    }

    #[test]
    fn limits_come_from_the_constants() {
        use streamit_api::limits::*;
        let json = doc();
        let s = &json["components"]["schemas"];
        let title = &s["SetupStreamRequest"]["properties"]["title"];
        assert_eq!(title["maxLength"], TITLE_MAX);
        assert_eq!(title["minLength"], 1);
        assert_eq!(title["pattern"], pattern::line());
        let reg = &s["RegisterRequest"]["properties"];
        assert_eq!(reg["username"]["pattern"], pattern::username());
        assert_eq!(reg["password"]["minLength"], PASSWORD_MIN);
        assert_eq!(reg["password"]["maxLength"], PASSWORD_MAX);
        assert_eq!(reg["displayName"]["maxLength"], NAME_MAX);
        assert_eq!(
            s["RegisterRequest"]["additionalProperties"], false,
            "unknown fields are refused"
        );
        let t = &s["TimeoutRequest"]["properties"]["durationSecs"];
        assert_eq!(t["minimum"], TIMEOUT_SECS_MIN);
        assert_eq!(t["maximum"], TIMEOUT_SECS_MAX);
        let st = &s["SessionStatsReport"]["properties"];
        assert_eq!(st["framesSent"]["maximum"], FRAMES_MAX);
        assert_eq!(st["chatMessages"]["maximum"], CHAT_MESSAGES_MAX);
        assert_eq!(s["UpdateStreamInfoRequest"]["minProperties"], 1);
        let lift = &json["paths"]["/api/stream/moderation/{identity}"]["delete"]["parameters"][0];
        assert_eq!(lift["schema"]["maxLength"], IDENTITY_MAX);
    }
}
