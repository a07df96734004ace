//! `GET /api/openapi.json`: schemas generated from the contract types in
//! `streamit-api` (utoipa derives), paths from the route table below, which
//! mirrors `app::router` (a test checks every contract path is listed).

use axum::Json;
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required, ResponseBuilder, Schema};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "StreamIt API",
        description = "Accounts, streams, LiveKit tokens, webhooks and stream statistics. \
Every response is {\"success\":true,\"data\":…} or {\"success\":false,\"error\":\"…\"}; errors use 400/401/403/404/409/413/415/422/429."
    ),
    components(schemas(
        streamit_api::Role,
        streamit_api::RegisterRequest,
        streamit_api::LoginRequest,
        streamit_api::User,
        streamit_api::AuthResponse,
        streamit_api::StreamUser,
        streamit_api::Stream,
        streamit_api::SetupStreamRequest,
        streamit_api::UpdateStreamInfoRequest,
        streamit_api::ChatSettingsRequest,
        streamit_api::GoLiveResponse,
        streamit_api::StreamSession,
        streamit_api::SessionStatsReport,
        streamit_api::ViewerTokenRequest,
        streamit_api::ViewerTokenResponse,
        streamit_api::FollowResponse,
        streamit_api::Health,
        streamit_api::Message,
        streamit_api::ChatAccess,
        streamit_api::RoomMetadata,
        streamit_api::ModerationEvent,
        streamit_api::BanRequest,
        streamit_api::TimeoutRequest,
        streamit_api::ModerationEntry,
    ))
)]
struct ApiDoc;

#[derive(Clone, Copy, PartialEq)]
enum Auth {
    None,
    Optional,
    User,
    Creator,
    /// A creator or admin acting on their own stream, approved or not.
    Owner,
    Admin,
    LiveKitSignature,
}

enum Data {
    One(&'static str),
    List(&'static str),
}

struct Endpoint {
    method: HttpMethod,
    path: &'static str,
    summary: &'static str,
    auth: Auth,
    body: Option<&'static str>,
    data: Data,
    /// Error statuses worth naming (beyond the generic 4XX), with what they mean.
    errors: &'static [(&'static str, &'static str)],
}

impl Endpoint {
    fn errors(mut self, errors: &'static [(&'static str, &'static str)]) -> Self {
        self.errors = errors;
        self
    }
}

const fn ep(
    method: HttpMethod,
    path: &'static str,
    summary: &'static str,
    auth: Auth,
    body: Option<&'static str>,
    data: Data,
) -> Endpoint {
    Endpoint {
        method,
        path,
        summary,
        auth,
        body,
        data,
        errors: &[],
    }
}

fn endpoints() -> Vec<Endpoint> {
    use Auth::*;
    use Data::*;
    use HttpMethod::{Delete, Get, Post, Put};
    vec![
        ep(
            Get,
            "/api/health",
            "Liveness and database check",
            None,
            Option::None,
            One("Health"),
        ),
        ep(
            Post,
            "/api/auth/register",
            "Create an account (viewer or creator) and log in",
            None,
            Some("RegisterRequest"),
            One("AuthResponse"),
        ),
        ep(
            Post,
            "/api/auth/login",
            "Log in (rate-limited per IP and per account)",
            None,
            Some("LoginRequest"),
            One("AuthResponse"),
        ),
        ep(
            Post,
            "/api/auth/logout",
            "Revoke this session token",
            User,
            Option::None,
            One("Message"),
        ),
        ep(
            Get,
            "/api/auth/me",
            "The logged-in account",
            User,
            Option::None,
            One("User"),
        ),
        ep(
            Post,
            "/api/users/{username}/follow",
            "Follow a creator",
            User,
            Option::None,
            One("FollowResponse"),
        ),
        ep(
            Delete,
            "/api/users/{username}/follow",
            "Unfollow a creator",
            User,
            Option::None,
            One("FollowResponse"),
        ),
        ep(
            Post,
            "/api/admin/users/{username}/approve",
            "Approve a creator",
            Admin,
            Option::None,
            One("User"),
        ),
        ep(
            Post,
            "/api/admin/users/{username}/revoke",
            "Withdraw a creator's approval; a live stream of theirs ends at once (endReason `revoked`) \
             and their participant is removed from the LiveKit room (also when it rejoins)",
            Admin,
            Option::None,
            One("User"),
        )
        .errors(&[("404", "No such user")]),
        ep(
            Post,
            "/api/stream/setup",
            "Create or update the stream (201 on create)",
            Creator,
            Some("SetupStreamRequest"),
            One("Stream"),
        ),
        ep(
            Post,
            "/api/stream/go-live",
            "Publish token, wsUrl, roomId; sets isLive and opens a session",
            Creator,
            Option::None,
            One("GoLiveResponse"),
        ),
        ep(
            Post,
            "/api/stream/end-stream",
            "Sets isLive=false, closes the session, returns its summary (also after the approval was revoked)",
            Owner,
            Option::None,
            One("StreamSession"),
        ),
        ep(
            Get,
            "/api/stream/info",
            "The creator's stream",
            Creator,
            Option::None,
            One("Stream"),
        ),
        ep(
            Put,
            "/api/stream/info",
            "Edit title and/or description (also while live)",
            Creator,
            Some("UpdateStreamInfoRequest"),
            One("Stream"),
        ),
        ep(
            Put,
            "/api/stream/chat-settings",
            "isChatEnabled, isChatDelayed, isChatFollowersOnly",
            Creator,
            Some("ChatSettingsRequest"),
            One("Stream"),
        ),
        ep(
            Get,
            "/api/stream/sessions",
            "This creator's sessions, newest first",
            Owner,
            Option::None,
            List("StreamSession"),
        ),
        ep(
            Get,
            "/api/stream/sessions/latest",
            "The summary shown after End Stream",
            Owner,
            Option::None,
            One("StreamSession"),
        ),
        ep(
            Get,
            "/api/stream/sessions/{id}",
            "One session",
            Owner,
            Option::None,
            One("StreamSession"),
        ),
        ep(
            Post,
            "/api/stream/sessions/{id}/stats",
            "The studio's figures: chat messages, frames sent/dropped, average bitrate, reconnects (each monotonic; media figures optional)",
            Owner,
            Some("SessionStatsReport"),
            One("StreamSession"),
        ),
        ep(
            Get,
            "/api/viewer/stream/{username}",
            "Stream by username",
            None,
            Option::None,
            One("Stream"),
        ),
        ep(
            Post,
            "/api/viewer/token",
            "Subscribe-only token (logged-in viewer, or guest `guest-…`) for a live stream. \
             The token's participant attribute `streamit.role` is `viewer` or `guest`; its \
             canPublishData follows the chat rules (chat off → none; followers-only → \
             followers only; timed out → none until the end), and `chat` says the same in words",
            Optional,
            Some("ViewerTokenRequest"),
            One("ViewerTokenResponse"),
        )
        .errors(&[
            ("401", "A bearer token was sent but is invalid"),
            ("403", "Banned from this stream (the account, or guests from this address for 24 h)"),
            ("404", "No stream for this hostId"),
            ("409", "Stream is offline, or the creator asked for a viewer token to their own stream"),
            ("422", "Invalid body, or a guestName that equals or imitates a registered user's name"),
        ]),
        ep(
            Get,
            "/api/stream/moderation",
            "This creator's bans and running timeouts, newest first",
            Creator,
            Option::None,
            List("ModerationEntry"),
        ),
        ep(
            Post,
            "/api/stream/moderation/ban",
            "Ban a participant: canPublishData revoked and removed from the room at once (RoomService), \
             future tokens 403; for a guest also guest tokens from its address for 24 h",
            Creator,
            Some("BanRequest"),
            One("ModerationEntry"),
        )
        .errors(&[
            ("404", "No registered user with this identity"),
            ("422", "Invalid identity or reason (≤ 200 characters), or the creator themself"),
        ]),
        ep(
            Post,
            "/api/stream/moderation/timeout",
            "Time a participant out: canPublishData revoked at once, restored by the server when it ends",
            Creator,
            Some("TimeoutRequest"),
            One("ModerationEntry"),
        )
        .errors(&[
            ("404", "No registered user with this identity"),
            ("409", "The participant is banned (lift the ban first)"),
            ("422", "durationSecs outside 1..=604800, invalid identity or reason, or the creator themself"),
        ]),
        ep(
            Delete,
            "/api/stream/moderation/{identity}",
            "Lift a ban or timeout",
            Creator,
            Option::None,
            One("Message"),
        )
        .errors(&[("404", "No ban or timeout for this identity")]),
        ep(
            Get,
            "/api/viewer/live",
            "All live streams",
            None,
            Option::None,
            List("Stream"),
        ),
        ep(
            Get,
            "/api/viewer/following",
            "Live streams of followed creators",
            User,
            Option::None,
            List("Stream"),
        ),
        ep(
            Post,
            "/api/livekit/webhook",
            "LiveKit webhook receiver (signed JWT in Authorization)",
            LiveKitSignature,
            Option::None,
            One("Message"),
        ),
    ]
}

fn envelope(data: &Data) -> RefOr<Schema> {
    let data_schema: RefOr<Schema> = match data {
        Data::One(name) => Ref::from_schema_name(*name).into(),
        Data::List(name) => ArrayBuilder::new()
            .items(Ref::from_schema_name(*name))
            .build()
            .into(),
    };
    ObjectBuilder::new()
        .property("success", ObjectBuilder::new().schema_type(Type::Boolean))
        .property("data", data_schema)
        .required("success")
        .required("data")
        .build()
        .into()
}

fn error_envelope() -> RefOr<Schema> {
    ObjectBuilder::new()
        .property("success", ObjectBuilder::new().schema_type(Type::Boolean))
        .property("error", ObjectBuilder::new().schema_type(Type::String))
        .required("success")
        .required("error")
        .build()
        .into()
}

/// The whole document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    if let Some(components) = doc.components.as_mut() {
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
    for e in endpoints() {
        let mut op = OperationBuilder::new()
            .summary(Some(e.summary))
            .tag(e.path.split('/').nth(2).unwrap_or("api"))
            .response(
                "200",
                ResponseBuilder::new().description("Success").content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(envelope(&e.data)))
                        .build(),
                ),
            )
            .response(
                "4XX",
                ResponseBuilder::new()
                    .description("Error envelope")
                    .content(
                        "application/json",
                        ContentBuilder::new().schema(Some(error_envelope())).build(),
                    ),
            );
        for (code, meaning) in e.errors {
            op = op.response(
                *code,
                ResponseBuilder::new().description(*meaning).content(
                    "application/json",
                    ContentBuilder::new().schema(Some(error_envelope())).build(),
                ),
            );
        }
        for segment in e.path.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                op = op.parameter(
                    ParameterBuilder::new()
                        .name(name)
                        .parameter_in(ParameterIn::Path)
                        .required(Required::True)
                        .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
                );
            }
        }
        if let Some(body) = e.body {
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name(body)))
                            .build(),
                    )
                    .build(),
            ));
        }
        match e.auth {
            Auth::User | Auth::Creator | Auth::Owner | Auth::Admin => {
                op = op.security(SecurityRequirement::new("bearer", Vec::<String>::new()));
            }
            Auth::Optional => {
                op = op
                    .security(SecurityRequirement::default())
                    .security(SecurityRequirement::new("bearer", Vec::<String>::new()));
            }
            Auth::None | Auth::LiveKitSignature => {}
        }
        let note = match e.auth {
            Auth::Creator => Some("Requires an approved creator (or admin)."),
            Auth::Owner => {
                Some("Requires the stream's owner: a creator (approved or not) or admin.")
            }
            Auth::Admin => Some("Requires an admin."),
            Auth::LiveKitSignature => Some(
                "Authorization: the JWT LiveKit signs with the API key/secret; sha256 claim = body hash.",
            ),
            _ => Option::None,
        };
        op = op.description(note);
        doc.paths
            .add_path_operation(e.path, vec![e.method], op.build());
    }
    doc
}

pub async fn serve() -> Response {
    Json(document()).into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_path_has_an_operation() {
        let doc = super::document();
        assert_eq!(doc.paths.paths.len(), 26);
        let json = serde_json::to_value(&doc).unwrap();
        assert!(json["paths"]["/api/stream/info"]["put"].is_object());
        assert!(json["paths"]["/api/stream/info"]["get"].is_object());
        assert!(json["components"]["securitySchemes"]["bearer"].is_object());
        let token = &json["paths"]["/api/viewer/token"]["post"]["responses"];
        for code in ["200", "403", "409", "422"] {
            assert!(token[code].is_object(), "viewer token response {code}");
        }
        assert!(json["paths"]["/api/stream/moderation/{identity}"]["delete"].is_object());
        assert!(json["components"]["schemas"]["ModerationEntry"].is_object());
    }
}
