//! The viewers' web app (crates/server/web, built into `web/dist` by scripts/install.sh),
//! served from the same origin as the API: static assets under `/assets/`, and `index.html`
//! for the app's routes (`/`, `/following`, `/login`, `/{username}`), which the page routes
//! itself. `/api/*` never reaches this router.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

/// Where the built pages are when `STREAMIT_WEB_DIR` does not say: this crate's `web/dist`
/// (a source checkout, where install.sh builds it), then the installed locations.
pub fn default_dir() -> Option<PathBuf> {
    let mut candidates = vec![PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("web/dist")];
    if let Ok(exe) = std::env::current_exe()
        && let Some(bin) = exe.parent()
    {
        candidates.push(bin.join("../share/streamit-server/web"));
    }
    candidates.push(PathBuf::from("/usr/share/streamit-server/web"));
    candidates
        .into_iter()
        .find(|d| d.join("index.html").is_file())
}

struct Web {
    dir: Option<PathBuf>,
}

/// The router for everything outside `/api`. `livekit_ws_url` goes into the
/// Content-Security-Policy: the page's only cross-origin connection is to LiveKit.
pub fn router(dir: Option<PathBuf>, livekit_ws_url: &str) -> Router {
    let assets = ServeDir::new(
        dir.as_deref()
            .unwrap_or(Path::new("/nonexistent"))
            .join("assets"),
    );
    let web = Arc::new(Web { dir });
    let assets =
        Router::new()
            .fallback_service(assets)
            .layer(SetResponseHeaderLayer::if_not_present(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            ));
    Router::new()
        .nest_service("/assets", assets)
        .fallback(page)
        .with_state(web)
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            csp(livekit_ws_url),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("strict-origin-when-cross-origin"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("permissions-policy"),
            HeaderValue::from_static("camera=(), microphone=(), geolocation=()"),
        ))
}

/// Scripts, styles and fonts only from this origin; media from the WebRTC streams
/// (`mediastream:`/`blob:`); connections to this origin's API and to LiveKit (its signal
/// WebSocket, and its HTTP origin, which livekit-client asks when a connection fails).
pub fn csp(livekit_ws_url: &str) -> HeaderValue {
    let mut connect = vec!["'self'".to_string()];
    if let Some(origin) = origin_of(livekit_ws_url) {
        let http = origin
            .replacen("wss://", "https://", 1)
            .replacen("ws://", "http://", 1);
        connect.push(origin);
        connect.push(http);
    }
    let policy = format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; font-src 'self'; \
         img-src 'self' data: blob:; media-src 'self' blob: mediastream:; \
         connect-src {}; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'",
        connect.join(" ")
    );
    HeaderValue::from_str(&policy).unwrap_or_else(|_| {
        // A URL with characters a header cannot carry: keep the page working on the
        // same origin only rather than serving no policy.
        HeaderValue::from_static("default-src 'self'; object-src 'none'; base-uri 'none'")
    })
}

/// `ws://host:port/path` → `ws://host:port` (CSP sources are origins); `None` for
/// anything that is not a ws/wss/http/https URL or holds characters a CSP cannot.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "ws" | "http" => "ws",
        "wss" | "https" => "wss",
        _ => return None,
    };
    let host = rest.split(['/', '?', '#']).next()?;
    let ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    ok.then(|| format!("{scheme}://{host}"))
}

/// The app's routes get index.html; a path the app has no route for (more than one
/// segment) gets it too, with 404, so the page shows its "not found" view.
async fn page(State(web): State<Arc<Web>>, req: Request) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD")],
        )
            .into_response();
    }
    let path = req.uri().path().trim_end_matches('/');
    let is_route = path.is_empty() || !path[1..].contains('/');
    let index = match &web.dir {
        Some(dir) => tokio::fs::read(dir.join("index.html")).await.ok(),
        None => None,
    };
    let Some(index) = index else {
        return not_built(web.dir.as_deref());
    };
    let status = if is_route {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        index,
    )
        .into_response()
}

fn not_built(dir: Option<&Path>) -> Response {
    let looked = match dir {
        Some(d) => format!("{} has no index.html", d.display()),
        None => "no web directory was found (STREAMIT_WEB_DIR is not set and crates/server/web/dist does not exist)".to_string(),
    };
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>StreamIt: watch pages not built</title></head>\
         <body>\
         <h1>The watch pages are not built</h1>\
         <p>{}.</p>\
         <p>Build them with <code>scripts/install.sh</code> (or <code>node crates/server/web/build.mjs</code> after it \
         installed the npm packages), or point <code>STREAMIT_WEB_DIR</code> at a built <code>dist</code> directory.</p>\
         <p>The API under <code>/api</code> works without them.</p></body></html>",
        html_escape(&looked)
    );
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CACHE_CONTROL, "no-store")],
        Html(body),
    )
        .into_response()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csp_names_livekit_origins() {
        let v = csp("ws://127.0.0.1:7880/rtc");
        let s = v.to_str().unwrap();
        assert!(
            s.contains("connect-src 'self' ws://127.0.0.1:7880 http://127.0.0.1:7880;"),
            "{s}"
        );
        let v = csp("wss://lk.example.com");
        assert!(
            v.to_str()
                .unwrap()
                .contains("wss://lk.example.com https://lk.example.com")
        );
        // Garbage does not make it into the header.
        let v = csp("ws://evil; script-src *");
        assert!(!v.to_str().unwrap().contains("evil"));
    }
}
