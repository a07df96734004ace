//! The scaled-out system on one machine, as `scripts/scale-out.sh` starts it:
//!
//! - PostgreSQL (a private cluster, [`crate::postgres::Postgres`]);
//! - Redis ([`Redis`]), LiveKit's message bus and room directory;
//! - two `livekit-server` nodes sharing that Redis and one key pair, on distinct loopback
//!   ports: a room lives on one node, and a participant whose signal connection reaches the
//!   other node is routed to it through Redis;
//! - two `streamit-server` instances on that PostgreSQL, instance *i* calling RoomService on
//!   node *i* (so API calls cross nodes too); both hand out node A's WebSocket URL to clients;
//! - haproxy ([`Balancer`]) in front of the instances, health-checking `/api/health`; both
//!   nodes post their webhooks to the balancer, which passes each to a live instance.

use crate::backend::{Backend, BackendOptions};
use crate::balancer::Balancer;
use crate::livekit::{LiveKit, LiveKitOptions, new_keys};
use crate::postgres::Postgres;
use crate::process::free_tcp_port;
use crate::redis::Redis;
use crate::stack::{self, Account};
use anyhow::{Context, Result};
use std::time::{Duration, Instant};
use streamit_api::Role;

/// What may differ between clusters.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// The balancer's port (0 or `None`: a free one).
    pub balancer_port: Option<u16>,
    /// Extra environment for every backend instance.
    pub backend_env: Vec<(String, String)>,
}

/// How long each part took to come up.
#[derive(Debug, Clone, Default)]
pub struct StartupTimes {
    pub postgres: Duration,
    pub redis: Duration,
    pub livekit: Duration,
    pub backends: Duration,
    pub balancer: Duration,
    pub total: Duration,
}

/// The whole topology; dropping it stops everything (balancer first, PostgreSQL last).
///
/// Start it on a thread that outlives it (the test's, or `main`), not in `spawn_blocking`:
/// every child has `PR_SET_PDEATHSIG`, which the kernel fires when the forking *thread* ends.
pub struct Cluster {
    // Field order is drop order.
    pub balancer: Balancer,
    /// Instance 1 and 2 (`be1`, `be2` at the balancer).
    pub backends: Vec<Backend>,
    /// Node A and node B.
    pub livekit: Vec<LiveKit>,
    pub redis: Redis,
    pub postgres: Postgres,
    pub startup: StartupTimes,
}

impl Cluster {
    pub fn start() -> Result<Self> {
        Self::start_with(ClusterOptions::default())
    }

    pub fn start_with(options: ClusterOptions) -> Result<Self> {
        let t0 = Instant::now();
        let mut startup = StartupTimes::default();
        let postgres = Postgres::start().context("starting PostgreSQL")?;
        let database_url = postgres.create_database("streamit")?;
        startup.postgres = t0.elapsed();

        let t = Instant::now();
        let redis = Redis::start().context("starting Redis")?;
        startup.redis = t.elapsed();

        // The balancer's address goes into LiveKit's webhook config, so it is chosen first.
        let balancer_port = match options.balancer_port {
            Some(p) if p != 0 => p,
            _ => free_tcp_port()?,
        };
        let webhook = format!("http://127.0.0.1:{balancer_port}/api/livekit/webhook");
        let keys = new_keys();
        let t = Instant::now();
        let mut livekit = Vec::new();
        for node in ["A", "B"] {
            livekit.push(
                LiveKit::start_with(LiveKitOptions {
                    webhook_urls: vec![webhook.clone()],
                    redis: Some(redis.address()),
                    keys: Some(keys.clone()),
                    ..Default::default()
                })
                .with_context(|| format!("starting LiveKit node {node}"))?,
            );
        }
        startup.livekit = t.elapsed();

        let t = Instant::now();
        let node_a_ws = livekit[0].ws_url();
        let mut backends = Vec::new();
        for (i, node) in livekit.iter().enumerate() {
            let mut env = vec![
                ("LIVEKIT_WS_URL".to_string(), node_a_ws.clone()),
                ("STREAMIT_TRUST_FORWARDED_FOR".into(), "true".into()),
                (
                    "STREAMIT_PUBLIC_WEB_URL".into(),
                    format!("http://127.0.0.1:{balancer_port}"),
                ),
            ];
            env.extend(options.backend_env.iter().cloned());
            backends.push(
                Backend::start(BackendOptions {
                    livekit: Some(node),
                    database_url: Some(database_url.clone()),
                    env,
                    ..Default::default()
                })
                .with_context(|| format!("starting backend instance {}", i + 1))?,
            );
        }
        startup.backends = t.elapsed();

        let t = Instant::now();
        let addrs: Vec<String> = backends
            .iter()
            .map(|b| b.url().trim_start_matches("http://").to_string())
            .collect();
        let balancer = Balancer::start(balancer_port, &addrs).context("starting haproxy")?;
        startup.balancer = t.elapsed();
        startup.total = t0.elapsed();
        Ok(Cluster {
            balancer,
            backends,
            livekit,
            redis,
            postgres,
            startup,
        })
    }

    /// The balancer's URL: what the studio and viewers use.
    pub fn url(&self) -> String {
        self.balancer.url()
    }

    /// Registers `username` as a creator through the balancer and approves it (admin
    /// command on the shared database).
    pub async fn creator(&self, username: &str) -> Result<Account> {
        let account = stack::register(&self.url(), username, Role::Creator).await?;
        stack::approve(&self.backends[0], username, account).await
    }

    /// Registers `username` as a viewer through the balancer.
    pub async fn viewer(&self, username: &str) -> Result<Account> {
        stack::register(&self.url(), username, Role::Viewer).await
    }

    /// The last lines of every part's log, for a failing test's message.
    pub fn logs(&self, lines: usize) -> String {
        let mut out = format!("--- haproxy\n{}\n", self.balancer.log_tail(lines));
        for (i, b) in self.backends.iter().enumerate() {
            out.push_str(&format!("--- backend {}\n{}\n", i + 1, b.log_tail(lines)));
        }
        for (name, lk) in ["A", "B"].iter().zip(&self.livekit) {
            out.push_str(&format!("--- livekit {name}\n{}\n", lk.log_tail(lines)));
        }
        out.push_str(&format!("--- redis\n{}\n", self.redis.log_tail(lines)));
        out
    }
}
