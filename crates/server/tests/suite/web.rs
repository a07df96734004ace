//! The watch pages as the real binary serves them: index.html for the app's routes, the
//! assets, 404s for unknown assets and API paths, security headers, and a clear 503 when the
//! pages were never built. Uses a small fixture directory (STREAMIT_WEB_DIR), so it does not
//! depend on the npm build; tests/watch_page.rs runs the real pages in Chromium.

use anyhow::{Result, ensure};
use streamit_testkit::{Backend, BackendOptions};

fn backend(web_dir: &std::path::Path) -> Result<Backend> {
    Backend::start(BackendOptions {
        env: vec![
            ("STREAMIT_WEB_DIR".into(), web_dir.display().to_string()),
            ("LIVEKIT_WS_URL".into(), "ws://127.0.0.1:7999".into()),
        ],
        ..Default::default()
    })
}

#[tokio::test]
async fn serves_the_app_routes_assets_and_headers() -> Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir(dir.path().join("assets"))?;
    std::fs::write(
        dir.path().join("index.html"),
        "<!doctype html><title>StreamIt</title>",
    )?;
    std::fs::write(dir.path().join("assets/app.js"), "console.log('app')")?;
    let backend = backend(dir.path())?;
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", backend.url());

    for path in ["/", "/following", "/login", "/alice", "/alice/"] {
        let r = http.get(url(path)).send().await?;
        ensure!(r.status() == 200, "{path}: {}", r.status());
        let h = r.headers().clone();
        ensure!(
            h["content-type"].to_str()?.starts_with("text/html"),
            "{path}: {:?}",
            h["content-type"]
        );
        ensure!(h["x-content-type-options"] == "nosniff", "{path}");
        ensure!(h.contains_key("referrer-policy"), "{path}");
        let csp = h["content-security-policy"].to_str()?;
        ensure!(
            csp.contains("connect-src 'self' ws://127.0.0.1:7999 http://127.0.0.1:7999")
                && csp.contains("script-src 'self'")
                && csp.contains("media-src 'self' blob: mediastream:"),
            "{path}: {csp}"
        );
        ensure!(
            r.text().await?.contains("<title>StreamIt</title>"),
            "{path}"
        );
    }

    let js = http.get(url("/assets/app.js")).send().await?;
    ensure!(js.status() == 200);
    ensure!(
        js.headers()["content-type"]
            .to_str()?
            .contains("javascript"),
        "{:?}",
        js.headers()["content-type"]
    );
    ensure!(js.text().await? == "console.log('app')");

    let missing = http.get(url("/assets/nope.js")).send().await?;
    ensure!(
        missing.status() == 404,
        "unknown asset: {}",
        missing.status()
    );
    // No escaping the directory.
    let traversal = http.get(url("/assets/..%2Findex.html")).send().await?;
    ensure!(
        traversal.status() == 404,
        "traversal: {}",
        traversal.status()
    );

    // A path the app has no route for: the page (its "not found" view) with a 404.
    let deep = http.get(url("/a/b/c")).send().await?;
    ensure!(deep.status() == 404);

    // The API is untouched: JSON envelopes, also for unknown API paths.
    let api = http.get(url("/api/health")).send().await?;
    ensure!(api.status() == 200);
    let nope = http.get(url("/api/nope")).send().await?;
    ensure!(nope.status() == 404);
    let body: serde_json::Value = nope.json().await?;
    ensure!(body["success"] == false, "{body}");

    let post = http.post(url("/alice")).send().await?;
    ensure!(post.status() == 405, "POST a page: {}", post.status());
    Ok(())
}

#[tokio::test]
async fn unbuilt_pages_answer_503_saying_how_to_build_them() -> Result<()> {
    let empty = tempfile::tempdir()?;
    let backend = backend(empty.path())?;
    let r = reqwest::get(format!("{}/alice", backend.url())).await?;
    ensure!(r.status() == 503, "{}", r.status());
    let text = r.text().await?;
    ensure!(text.contains("scripts/install.sh"), "{text}");
    let api = reqwest::get(format!("{}/api/health", backend.url())).await?;
    ensure!(api.status() == 200, "the API must work without the pages");
    Ok(())
}
