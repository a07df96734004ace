//! `streamit-server bench`: load on loopback for `POST /api/viewer/token`
//! (guest) and `GET /api/viewer/live`; prints requests/s and p50/p99.
//!
//! Without `--url` it starts its own server in this process on a fresh
//! SQLite file (so server and load generator share the machine's cores),
//! creates an approved creator with a live stream, and measures that.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use streamit_api::client::Client;
use streamit_api::{RegisterRequest, Role, SetupStreamRequest, ViewerTokenRequest};

use crate::config::{Config, parse_duration};

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// A running server to measure (its database must hold the --host-id stream).
    #[arg(long)]
    pub url: Option<String>,
    /// With --url: the creator user id to request viewer tokens for.
    #[arg(long)]
    pub host_id: Option<String>,
    /// Seconds per endpoint (e.g. 10s).
    #[arg(long, default_value = "10s")]
    pub duration: String,
    /// Concurrent connections.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
}

#[derive(Debug, Clone)]
pub struct BenchResult {
    pub name: &'static str,
    pub requests: usize,
    pub errors: usize,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
}

impl BenchResult {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl std::fmt::Display for BenchResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:<24} {:>9.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  ({} requests, {} errors, {:.1} s)",
            self.name,
            self.rps(),
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
            self.requests,
            self.errors,
            self.elapsed.as_secs_f64()
        )
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let duration = parse_duration(&args.duration).map_err(|e| anyhow::anyhow!(e))?;
    let mut _tmp = None;
    let (url, host_id) = match (&args.url, &args.host_id) {
        (Some(url), Some(host)) => (url.clone(), host.clone()),
        (Some(_), None) => anyhow::bail!("--url needs --host-id"),
        (None, _) => {
            let dir = tempfile::tempdir()?;
            let db_url = format!("sqlite://{}", dir.path().join("bench.db").display());
            _tmp = Some(dir);
            let (url, host) = start_embedded(&db_url).await?;
            (url, host)
        }
    };
    println!(
        "streamit-server bench: {url}, {} connections, {} s per endpoint",
        args.concurrency,
        duration.as_secs()
    );
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency * 2)
        .build()?;
    let body = serde_json::to_vec(&ViewerTokenRequest {
        host_id: host_id.clone(),
        guest_name: Some("bench".into()),
    })?;
    let token = load(
        "POST /api/viewer/token",
        &http,
        Arc::new(move |c: &reqwest::Client, base: &str| {
            c.post(format!("{base}/api/viewer/token"))
                .header("content-type", "application/json")
                .body(body.clone())
        }),
        &url,
        args.concurrency,
        duration,
    )
    .await;
    println!("{token}");
    let live = load(
        "GET /api/viewer/live",
        &http,
        Arc::new(|c: &reqwest::Client, base: &str| c.get(format!("{base}/api/viewer/live"))),
        &url,
        args.concurrency,
        duration,
    )
    .await;
    println!("{live}");
    Ok(())
}

/// Starts the service inside this process with an approved creator who is live.
async fn start_embedded(db_url: &str) -> anyhow::Result<(String, String)> {
    let config = Config::from_lookup(|k| match k {
        "DATABASE_URL" => Some(db_url.to_string()),
        "STREAMIT_BIND" => Some("127.0.0.1:0".into()),
        "LIVEKIT_API_KEY" => Some("bench-key".into()),
        "LIVEKIT_API_SECRET" => Some("bench-secret-bench-secret-bench-secret".into()),
        _ => None,
    })?;
    let db = crate::db::Db::connect(db_url).await?;
    let listener = tokio::net::TcpListener::bind(config.bind).await?;
    let addr = listener.local_addr()?;
    let router = crate::app::router(crate::app::AppState::new(db.clone(), config));
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await;
    });
    let url = format!("http://{addr}");
    let api = Client::new(url.clone());
    let auth = api
        .register(&RegisterRequest {
            username: "benchcreator".into(),
            // Nobody logs in as this account again: a random password it never needs.
            password: crate::auth::new_session_token().0,
            display_name: None,
            role: Some(Role::Creator),
        })
        .await
        .context("registering the bench creator")?;
    db.set_role("benchcreator", None, Some(true)).await?;
    let api = api.with_token(auth.token);
    api.setup_stream(&SetupStreamRequest {
        title: "Bench".into(),
        ..Default::default()
    })
    .await?;
    api.go_live().await?;
    Ok((url, auth.user.id))
}

type MakeRequest = Arc<dyn Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder + Send + Sync>;

async fn load(
    name: &'static str,
    http: &reqwest::Client,
    make: MakeRequest,
    base: &str,
    concurrency: usize,
    duration: Duration,
) -> BenchResult {
    // Warm-up: open the connections.
    for _ in 0..concurrency {
        let _ = make(http, base).send().await;
    }
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let http = http.clone();
        let make = make.clone();
        let base = base.to_string();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(100_000);
            let mut errors = 0usize;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                match make(&http, &base).send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                    }
                    _ => errors += 1,
                }
                lat.push(t0.elapsed());
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((lat, e)) = t.await {
            all.extend(lat);
            errors += e;
        }
    }
    let elapsed = start.elapsed();
    all.sort_unstable();
    let pct = |p: f64| -> Duration {
        if all.is_empty() {
            return Duration::ZERO;
        }
        let i = ((all.len() as f64 * p).ceil() as usize)
            .saturating_sub(1)
            .min(all.len() - 1);
        all[i]
    };
    BenchResult {
        name,
        requests: all.len(),
        errors,
        elapsed,
        p50: pct(0.50),
        p99: pct(0.99),
    }
}
