//! The StreamIt backend: accounts, streams, LiveKit tokens, webhooks and
//! stream statistics (axum + sqlx). The binary is `streamit-server`.

pub mod app;
pub mod auth;
pub mod bench;
pub mod chat_rules;
pub mod config;
pub mod db;
pub mod error;
pub mod liveness;
pub mod moderation;
pub mod names;
pub mod openapi;
pub mod routes;
pub mod web;
pub mod webhook;

use std::io::Write;
use std::net::SocketAddr;

use anyhow::Context;

pub use config::Config;

/// Runs the HTTP service until SIGINT/SIGTERM. Prints exactly one line to
/// stdout once migrations are applied and the socket is bound:
/// `STREAMIT_SERVER_LISTENING http://<ip>:<port>`.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    if config.using_dev_keys {
        tracing::warn!(
            "LIVEKIT_API_KEY/LIVEKIT_API_SECRET are not set: using LiveKit's PUBLIC development key pair \
             (devkey). Anyone can mint tokens for this server's rooms. Set both for any real deployment."
        );
    }
    tracing::info!(config = ?config, "starting streamit-server");
    let db = db::Db::connect(&config.database_url)
        .await
        .with_context(|| {
            format!(
                "opening database {}",
                config::redact_url(&config.database_url)
            )
        })?;
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("binding {}", config.bind))?;
    let addr = listener.local_addr()?;
    // The bound port (not 0) for the default public web URL.
    let mut config = config;
    config.bind = addr;
    let state = app::AppState::new(db.clone(), config);
    let background = chat_rules::spawn_background(state.clone());
    let router = app::router(state);
    // Listen for SIGINT/SIGTERM before saying we are up: a supervisor (or a test) that
    // stops us right after the ready line must get a graceful stop, not the default death.
    let shutdown = shutdown_signal()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "STREAMIT_SERVER_LISTENING http://{addr}")?;
        out.flush()?;
    }
    tracing::info!(%addr, "listening");
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await?;
    background.abort();
    db.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Registers the stop signals now and returns the future that waits for one.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut int = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
        let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        Ok(async move {
            tokio::select! {
                _ = int.recv() => {},
                _ = term.recv() => {},
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
