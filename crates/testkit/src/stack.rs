//! The whole system most end-to-end tests need: LiveKit with its webhooks pointed at the
//! backend, the backend pointed at LiveKit, and approved creators on demand.

use crate::backend::{Backend, BackendOptions};
use crate::livekit::{LiveKit, LiveKitOptions, TurnOptions};
use crate::process::free_tcp_port;
use anyhow::{Context, Result};
use std::net::Ipv4Addr;
use streamit_api::client::Client;
use streamit_api::{RegisterRequest, Role, User};

/// The password every account made by [`Stack::creator`] and [`Stack::viewer`] gets.
pub const TEST_PASSWORD: &str = "correct horse battery";

/// LiveKit + backend, wired both ways. Dropping it stops both.
pub struct Stack {
    // Field order is drop order: the backend goes first, so LiveKit's last webhooks fail
    // quietly instead of reaching a half-stopped backend.
    pub backend: Backend,
    pub livekit: LiveKit,
}

/// An account made for a test, logged in.
pub struct Account {
    /// An API client carrying the account's session token.
    pub client: Client,
    pub token: String,
    pub user: User,
}

impl Stack {
    pub fn start() -> Result<Self> {
        Self::start_with(Vec::new())
    }

    /// With extra environment for the backend.
    pub fn start_with(backend_env: Vec<(String, String)>) -> Result<Self> {
        Self::start_at(Ipv4Addr::LOCALHOST, backend_env)
    }

    /// Both servers reachable at `host` too (LiveKit advertises it in its candidates, the
    /// backend listens there and hands out LiveKit's URL there): for a client on the far
    /// side of a `streamit_netem::ImpairedLink`, whose loopback is its own.
    pub fn start_reachable_at(host: Ipv4Addr) -> Result<Self> {
        Self::start_at(host, Vec::new())
    }

    /// On loopback, with LiveKit's embedded TURN server ([`LiveKit::turn`]).
    pub fn start_with_turn(turn: TurnOptions) -> Result<Self> {
        Self::start_full(Ipv4Addr::LOCALHOST, Vec::new(), Some(turn))
    }

    fn start_at(host: Ipv4Addr, backend_env: Vec<(String, String)>) -> Result<Self> {
        Self::start_full(host, backend_env, None)
    }

    fn start_full(
        host: Ipv4Addr,
        backend_env: Vec<(String, String)>,
        turn: Option<TurnOptions>,
    ) -> Result<Self> {
        // The backend's address must be in LiveKit's config, so it is chosen first; when
        // something takes it before the backend binds it, both start again on another.
        let mut attempt = 1;
        loop {
            match Self::try_start(host, &backend_env, turn) {
                Err(e) if attempt < 3 && format!("{e:#}").contains("Address already in use") => {
                    eprintln!("stack start retry: {e:#}");
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    fn try_start(
        host: Ipv4Addr,
        backend_env: &[(String, String)],
        turn: Option<TurnOptions>,
    ) -> Result<Self> {
        let port = free_tcp_port()?;
        let livekit = LiveKit::start_with(LiveKitOptions {
            webhook_urls: vec![format!("http://{host}:{port}/api/livekit/webhook")],
            host: (!host.is_loopback()).then_some(host),
            turn,
            ..Default::default()
        })?;
        let mut env = vec![("STREAMIT_BIND".to_string(), format!("{host}:{port}"))];
        env.extend(backend_env.iter().cloned());
        let backend = Backend::start(BackendOptions {
            livekit: Some(&livekit),
            env,
            ..Default::default()
        })?;
        Ok(Stack { backend, livekit })
    }

    /// Registers `username` as a creator (approved by the admin command when `approved`).
    pub async fn creator(&self, username: &str, approved: bool) -> Result<Account> {
        let account = register(self.backend.url(), username, Role::Creator).await?;
        if approved {
            approve(&self.backend, username, account).await
        } else {
            refreshed(account).await
        }
    }

    /// Registers `username` as a viewer.
    pub async fn viewer(&self, username: &str) -> Result<Account> {
        register(self.backend.url(), username, Role::Viewer).await
    }
}

/// Registers `username` (password [`TEST_PASSWORD`]) with the backend at `url`: what the
/// single stack and the cluster (through its balancer) both do.
pub(crate) async fn register(url: &str, username: &str, role: Role) -> Result<Account> {
    let auth = Client::new(url)
        .register(&RegisterRequest {
            username: username.into(),
            password: TEST_PASSWORD.into(),
            display_name: Some(format!("{username} (test)")),
            role: Some(role),
        })
        .await
        .with_context(|| format!("registering {username}"))?;
    Ok(Account {
        client: Client::new(url).with_token(auth.token.clone()),
        token: auth.token,
        user: auth.user,
    })
}

/// Approves `username` with the admin command on `backend` (its database is the one every
/// instance shares) and reads `account`'s user back.
pub(crate) async fn approve(
    backend: &Backend,
    username: &str,
    account: Account,
) -> Result<Account> {
    backend.cli(&["user", "approve", username])?;
    refreshed(account).await
}

/// `account` with its user as the backend has it now.
async fn refreshed(account: Account) -> Result<Account> {
    let user = account.client.me().await.context("GET me after approval")?;
    Ok(Account { user, ..account })
}
