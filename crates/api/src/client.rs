//! A typed client for the StreamIt REST API (reqwest).
//!
//! ```no_run
//! # async fn demo() -> Result<(), streamit_api::client::ApiError> {
//! use streamit_api::{client::Client, LoginRequest};
//! let mut api = Client::new("http://127.0.0.1:8080");
//! let auth = api.login(&LoginRequest { username: "alice".into(), password: "…".into() }).await?;
//! api.set_token(Some(auth.token));
//! let live = api.go_live().await?;
//! # let _ = live; Ok(()) }
//! ```

use crate::Envelope;
use crate::types::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// What can go wrong with a call.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The server answered with an error envelope (or a non-2xx status).
    #[error("HTTP {status}: {message}")]
    Status { status: u16, message: String },
    /// The request did not complete (connection refused, timeout, …).
    #[error("request failed: {0}")]
    Transport(#[from] reqwest::Error),
    /// The server answered something that is not the contract's envelope (another server
    /// on that address, a proxy's error page). `url` is the request's, so the message
    /// says where the answer came from.
    #[error("unexpected response from {url} (HTTP {status}): {detail}")]
    Decode {
        status: u16,
        url: String,
        detail: String,
    },
}

impl ApiError {
    /// The HTTP status, if the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } | ApiError::Decode { status, .. } => Some(*status),
            ApiError::Transport(e) => e.status().map(|s| s.as_u16()),
        }
    }

    /// Whether the same request may succeed later: the server was unreachable, overloaded
    /// or failed (no answer, 5xx, 429). A 4xx answer is final.
    pub fn is_transient(&self) -> bool {
        match self.status() {
            None => true,
            Some(s) => s >= 500 || s == 429 || s == 408,
        }
    }
}

/// A StreamIt API client. Cheap to clone (the connection pool is shared).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// `base_url` is the server root, e.g. `http://127.0.0.1:8080` (no `/api`). A request
    /// gives up after [`Client::DEFAULT_TIMEOUT`]: a hung server must not hang the caller.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self::with_timeouts(base_url, Self::CONNECT_TIMEOUT, Self::DEFAULT_TIMEOUT)
    }

    /// How long connecting may take by default.
    pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
    /// How long a whole request may take by default.
    pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

    /// A client whose requests give up after `connect` to connect and `total` in all
    /// (a timeout is a transient [`ApiError::Transport`]).
    pub fn with_timeouts(
        base_url: impl Into<String>,
        connect: std::time::Duration,
        total: std::time::Duration,
    ) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(connect)
            .timeout(total)
            .build()
            // only without a TLS backend, which the crate's features always bring
            .unwrap_or_default();
        Self::with_http(http, base_url)
    }

    /// Use a preconfigured reqwest client (timeouts, proxies, …).
    pub fn with_http(http: reqwest::Client, base_url: impl Into<String>) -> Self {
        let mut base = base_url.into();
        while base.ends_with('/') {
            base.pop();
        }
        Client {
            http,
            base,
            token: None,
        }
    }

    /// The same client, authenticated with a session token from register/login.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    pub fn set_token(&mut self, token: Option<String>) {
        self.token = token;
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    async fn send<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T, ApiError> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let url = resp.url().to_string();
        let bytes = resp.bytes().await?;
        match serde_json::from_slice::<Envelope<T>>(&bytes) {
            Ok(Envelope::Ok { data, .. }) if (200..300).contains(&status) => Ok(data),
            Ok(Envelope::Ok { .. }) => Err(ApiError::Decode {
                status,
                url,
                detail: "success envelope with an error status".into(),
            }),
            Ok(Envelope::Err { error, .. }) => Err(ApiError::Status {
                status,
                message: error,
            }),
            Err(e) => {
                // An error envelope whose shape we could still read, or plain text.
                if let Ok(Envelope::Err { error, .. }) =
                    serde_json::from_slice::<Envelope<serde_json::Value>>(&bytes)
                {
                    return Err(ApiError::Status {
                        status,
                        message: error,
                    });
                }
                // Not our envelope: a proxy's error page, or another server on that
                // address. Say so instead of passing on an empty "reason".
                let text = String::from_utf8_lossy(&bytes);
                let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
                let snippet: String = flat.chars().take(120).collect();
                let detail = match (snippet.is_empty(), (200..300).contains(&status)) {
                    (true, _) => "an empty body, not the StreamIt API".to_string(),
                    (false, true) => e.to_string(),
                    (false, false) => {
                        format!("an answer that is not the StreamIt API's: {snippet}")
                    }
                };
                Err(ApiError::Decode {
                    status,
                    url,
                    detail,
                })
            }
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        self.send(self.http.get(self.url(path))).await
    }

    async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    async fn put<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        self.send(self.http.put(self.url(path)).json(body)).await
    }

    async fn post_empty<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        self.send(self.http.post(self.url(path))).await
    }

    async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        self.send(self.http.delete(self.url(path))).await
    }

    // --- health ---------------------------------------------------------

    /// `GET /api/health`.
    pub async fn health(&self) -> Result<Health, ApiError> {
        self.get("/api/health").await
    }

    // --- accounts -------------------------------------------------------

    /// `POST /api/auth/register`. Does not store the token; call `set_token`.
    pub async fn register(&self, req: &RegisterRequest) -> Result<AuthResponse, ApiError> {
        self.post("/api/auth/register", req).await
    }

    /// `POST /api/auth/login`. Does not store the token; call `set_token`.
    pub async fn login(&self, req: &LoginRequest) -> Result<AuthResponse, ApiError> {
        self.post("/api/auth/login", req).await
    }

    /// `POST /api/auth/logout`: revokes the current session token.
    pub async fn logout(&self) -> Result<Message, ApiError> {
        self.post_empty("/api/auth/logout").await
    }

    /// `GET /api/auth/me`.
    pub async fn me(&self) -> Result<User, ApiError> {
        self.get("/api/auth/me").await
    }

    /// `POST /api/users/{username}/follow`.
    pub async fn follow(&self, username: &str) -> Result<FollowResponse, ApiError> {
        self.post_empty(&format!("/api/users/{}/follow", encode_segment(username)))
            .await
    }

    /// `DELETE /api/users/{username}/follow`.
    pub async fn unfollow(&self, username: &str) -> Result<FollowResponse, ApiError> {
        self.delete(&format!("/api/users/{}/follow", encode_segment(username)))
            .await
    }

    /// `POST /api/admin/users/{username}/approve` (admins only).
    pub async fn approve_user(&self, username: &str) -> Result<User, ApiError> {
        self.post_empty(&format!(
            "/api/admin/users/{}/approve",
            encode_segment(username)
        ))
        .await
    }

    /// Withdraws a creator's approval (admin); a live stream of theirs ends.
    pub async fn revoke_user(&self, username: &str) -> Result<User, ApiError> {
        self.post_empty(&format!(
            "/api/admin/users/{}/revoke",
            encode_segment(username)
        ))
        .await
    }

    // --- creator: stream ------------------------------------------------

    /// `POST /api/stream/setup`.
    pub async fn setup_stream(&self, req: &SetupStreamRequest) -> Result<Stream, ApiError> {
        self.post("/api/stream/setup", req).await
    }

    /// `POST /api/stream/go-live`.
    pub async fn go_live(&self) -> Result<GoLiveResponse, ApiError> {
        self.post_empty("/api/stream/go-live").await
    }

    /// `POST /api/stream/end-stream`: returns the closed session's summary.
    pub async fn end_stream(&self) -> Result<StreamSession, ApiError> {
        self.post_empty("/api/stream/end-stream").await
    }

    /// `GET /api/stream/info`.
    pub async fn stream_info(&self) -> Result<Stream, ApiError> {
        self.get("/api/stream/info").await
    }

    /// `PUT /api/stream/info`.
    pub async fn update_stream_info(
        &self,
        req: &UpdateStreamInfoRequest,
    ) -> Result<Stream, ApiError> {
        self.put("/api/stream/info", req).await
    }

    /// `PUT /api/stream/chat-settings`.
    pub async fn update_chat_settings(
        &self,
        req: &ChatSettingsRequest,
    ) -> Result<Stream, ApiError> {
        self.put("/api/stream/chat-settings", req).await
    }

    /// `GET /api/stream/sessions`: this creator's sessions, newest first.
    pub async fn sessions(&self) -> Result<Vec<StreamSession>, ApiError> {
        self.get("/api/stream/sessions").await
    }

    /// `GET /api/stream/sessions/latest`: the summary shown after End Stream.
    pub async fn latest_session(&self) -> Result<StreamSession, ApiError> {
        self.get("/api/stream/sessions/latest").await
    }

    /// `GET /api/stream/sessions/{id}`.
    pub async fn session(&self, id: &str) -> Result<StreamSession, ApiError> {
        self.get(&format!("/api/stream/sessions/{}", encode_segment(id)))
            .await
    }

    /// `POST /api/stream/sessions/{id}/stats`: the studio's own counts.
    pub async fn report_session_stats(
        &self,
        id: &str,
        req: &SessionStatsReport,
    ) -> Result<StreamSession, ApiError> {
        self.post(
            &format!("/api/stream/sessions/{}/stats", encode_segment(id)),
            req,
        )
        .await
    }

    // --- moderation -----------------------------------------------------

    /// `POST /api/stream/moderation/ban`.
    pub async fn ban(&self, req: &BanRequest) -> Result<ModerationEntry, ApiError> {
        self.post("/api/stream/moderation/ban", req).await
    }

    /// `POST /api/stream/moderation/timeout`.
    pub async fn timeout_viewer(&self, req: &TimeoutRequest) -> Result<ModerationEntry, ApiError> {
        self.post("/api/stream/moderation/timeout", req).await
    }

    /// `DELETE /api/stream/moderation/{identity}`: lift a ban or timeout.
    pub async fn lift_moderation(&self, identity: &str) -> Result<Message, ApiError> {
        self.delete(&format!(
            "/api/stream/moderation/{}",
            encode_segment(identity)
        ))
        .await
    }

    /// `GET /api/stream/moderation`: bans and running timeouts, newest first.
    pub async fn moderation(&self) -> Result<Vec<ModerationEntry>, ApiError> {
        self.get("/api/stream/moderation").await
    }

    // --- viewers --------------------------------------------------------

    /// `GET /api/viewer/stream/{username}`.
    pub async fn stream_by_username(&self, username: &str) -> Result<Stream, ApiError> {
        self.get(&format!("/api/viewer/stream/{}", encode_segment(username)))
            .await
    }

    /// `POST /api/viewer/token`: as the logged-in user if a token is set, else as a guest.
    pub async fn viewer_token(
        &self,
        req: &ViewerTokenRequest,
    ) -> Result<ViewerTokenResponse, ApiError> {
        self.post("/api/viewer/token", req).await
    }

    /// `GET /api/viewer/live`.
    pub async fn live_streams(&self) -> Result<Vec<Stream>, ApiError> {
        self.get("/api/viewer/live").await
    }

    /// `GET /api/viewer/following`: live streams of creators this user follows.
    pub async fn following_live(&self) -> Result<Vec<Stream>, ApiError> {
        self.get("/api/viewer/following").await
    }
}

/// Percent-encodes one path segment (everything but RFC 3986 unreserved characters).
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded() {
        assert_eq!(encode_segment("alice_1"), "alice_1");
        assert_eq!(encode_segment("a/b c"), "a%2Fb%20c");
        assert_eq!(encode_segment("é"), "%C3%A9");
    }

    #[test]
    fn base_url_loses_trailing_slashes() {
        let c = Client::new("http://127.0.0.1:1//");
        assert_eq!(c.url("/api/health"), "http://127.0.0.1:1/api/health");
    }

    #[tokio::test]
    async fn connection_refused_is_a_transport_error() {
        // Bind then drop a listener so the port is (almost certainly) closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let c = Client::new(format!("http://127.0.0.1:{port}"));
        let err = c.health().await.unwrap_err();
        assert!(matches!(err, ApiError::Transport(_)), "{err:?}");
        assert_eq!(err.status(), None);
    }

    /// A real HTTP server on loopback that is not StreamIt: answers every request with
    /// `status` and `body` once.
    async fn foreign_server(status: &'static str, body: &'static str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await;
            let resp = format!(
                "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn a_foreign_404_says_it_is_not_the_streamit_api() {
        let base = foreign_server("404 Not Found", "").await;
        let c = Client::new(base.clone());
        let err = c.health().await.unwrap_err();
        match &err {
            ApiError::Decode {
                status: 404,
                url,
                detail,
            } => {
                assert!(detail.contains("empty body"), "{detail}");
                assert_eq!(url, &format!("{base}/api/health"));
            }
            other => panic!("expected a decode error, got {other:?}"),
        }
        assert_eq!(err.status(), Some(404));

        let c = Client::new(foreign_server("502 Bad Gateway", "<html>nginx</html>").await);
        match c.health().await.unwrap_err() {
            ApiError::Decode {
                status: 502,
                detail,
                ..
            } => {
                assert!(
                    detail.contains("not the StreamIt API's: <html>nginx"),
                    "{detail}"
                )
            }
            other => panic!("expected a decode error, got {other:?}"),
        }
    }
}
