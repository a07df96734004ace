//! Passwords (argon2id), session tokens (random, stored as SHA-256), the
//! request extractors that authenticate, and the login and registration limits (counted
//! in the database, so every instance enforces one policy).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::db::{Db, UserRow, now_ms};
use crate::error::AppError;

/// argon2id with the crate's defaults (OWASP: m=19 MiB, t=2, p=1).
pub fn hash_password(password: &str) -> Result<String, AppError> {
    let mut salt_bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut salt_bytes);
    let salt = SaltString::encode_b64(&salt_bytes)
        .map_err(|e| AppError::Internal(format!("salt encoding failed: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AppError::Internal(format!("password hashing failed: {e}")))
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash to verify against when the user does not exist, so that a login
/// for an unknown name costs as much as one with a wrong password.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("not-a-real-password-at-all").unwrap_or_default())
}

/// A new session token (256 random bits, URL-safe base64) and its hash.
pub fn new_session_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = token_hash(&token);
    (token, hash)
}

/// What the database stores for a token: hex SHA-256. A leaked database does
/// not hand out working tokens.
pub fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn bearer(parts: &Parts) -> Result<Option<&str>, AppError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| AppError::Unauthorized("Malformed Authorization header".into()))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| AppError::Unauthorized("Authorization must be 'Bearer <token>'".into()))?;
    Ok(Some(token))
}

async fn lookup(state: &AppState, token: &str) -> Result<(UserRow, String), AppError> {
    // Tokens we issue are 43 characters; anything far longer is not ours and
    // is not worth hashing.
    if token.len() > 256 {
        return Err(AppError::Unauthorized("Invalid or expired session".into()));
    }
    let hash = token_hash(token);
    match state.db.user_by_session(&hash, now_ms()).await? {
        Some(user) => Ok((user, hash)),
        None => Err(AppError::Unauthorized("Invalid or expired session".into())),
    }
}

/// A logged-in user (401 without a valid bearer token).
pub struct AuthUser {
    pub user: UserRow,
    pub token_hash: String,
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?
            .ok_or_else(|| AppError::Unauthorized("Authentication required".into()))?;
        let (user, token_hash) = lookup(state, token).await?;
        Ok(AuthUser { user, token_hash })
    }
}

/// The user if a bearer token is sent. A token that is sent but invalid is a
/// 401, not a silent fall-back to guest.
pub struct MaybeUser(pub Option<UserRow>);

impl FromRequestParts<AppState> for MaybeUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match bearer(parts)? {
            None => Ok(MaybeUser(None)),
            Some(token) => Ok(MaybeUser(Some(lookup(state, token).await?.0))),
        }
    }
}

/// An approved creator (or admin): 401 / 403 otherwise.
pub struct Creator(pub UserRow);

impl FromRequestParts<AppState> for Creator {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let AuthUser { user, .. } = AuthUser::from_request_parts(parts, state).await?;
        if user.may_stream() {
            Ok(Creator(user))
        } else if user.role == streamit_api::Role::Creator {
            Err(AppError::forbidden("Creator account is not approved yet"))
        } else {
            Err(AppError::forbidden("Only creators can do this"))
        }
    }
}

/// A creator (or admin) acting on a stream they own, approved or not: ending
/// it, reporting its figures and reading its sessions must keep working after
/// an admin revoked the approval mid-stream. 401 / 403 (viewers) otherwise.
pub struct Owner(pub UserRow);

impl FromRequestParts<AppState> for Owner {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let AuthUser { user, .. } = AuthUser::from_request_parts(parts, state).await?;
        if user.role == streamit_api::Role::Viewer {
            Err(AppError::forbidden("Only creators can do this"))
        } else {
            Ok(Owner(user))
        }
    }
}

/// The client's IP: the socket peer, or the first `X-Forwarded-For` entry
/// when the config says a trusted proxy sets it.
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if state.config.trust_forwarded_for
            && let Some(ip) = parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .and_then(|v| v.trim().parse::<IpAddr>().ok())
        {
            return Ok(ClientIp(ip));
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        Ok(ClientIp(peer))
    }
}

/// Login protection that cannot be turned against the account's owner.
///
/// Policy (counters in the database table `login_throttle`, so every instance
/// behind a load balancer enforces the same limits):
/// - **Per client IP, all accounts**: at most `STREAMIT_LOGIN_IP_PER_MINUTE`
///   (default 30) attempts per minute (a fixed one-minute window); beyond it
///   429 with `Retry-After` until the window ends.
/// - **Per (account, client IP)**: the first `STREAMIT_LOGIN_FAILURES_PER_ACCOUNT`
///   (default 5) failed logins in a row cost nothing; every further failure
///   blocks that account *from that address* for a growing delay, 1 s, 2 s,
///   4 s, … doubling up to [`LoginThrottle::MAX_DELAY`] (15 min). While blocked,
///   attempts from that address get 429 with `Retry-After` and no password
///   check. A successful login clears the streak; a streak whose last failure
///   is older than [`LoginThrottle::FORGET`] (1 h) starts over.
/// - There is **no lock of the account itself**: someone guessing from one
///   address slows down only there, and the owner logs in from their own
///   address as usual. Unknown usernames are throttled the same way (no hint
///   whether an account exists).
///
/// What it does not stop: guessing spread over many addresses (each gets its
/// free failures and its own back-off); argon2id makes each guess cost the
/// server ~20 ms of CPU and the per-IP limit bounds each address.
#[derive(Debug, Clone, Copy)]
pub struct LoginThrottle {
    pub ip_per_minute: u32,
    pub free_failures: u32,
}

impl LoginThrottle {
    /// The first back-off delay.
    pub const BASE_DELAY: Duration = Duration::from_secs(1);
    /// The longest back-off delay.
    pub const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
    /// A streak of failures is forgotten this long after its last failure.
    pub const FORGET: Duration = Duration::from_secs(3600);
    const IP_WINDOW: Duration = Duration::from_secs(60);

    fn ms(d: Duration) -> i64 {
        i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
    }

    fn account_key(username: &str, ip: IpAddr) -> String {
        format!("acct:{username}|{ip}")
    }

    /// The back-off after `failures` failed logins in a row.
    pub fn delay(&self, failures: i64) -> Duration {
        let over = failures - i64::from(self.free_failures);
        if over <= 0 {
            return Duration::ZERO;
        }
        let factor = 1u32
            .checked_shl(u32::try_from(over - 1).unwrap_or(31))
            .unwrap_or(u32::MAX);
        Self::BASE_DELAY.saturating_mul(factor).min(Self::MAX_DELAY)
    }

    fn too_many(retry_ms: i64) -> AppError {
        AppError::TooManyRequests {
            message: "Too many login attempts; try again later".into(),
            retry_after_secs: u64::try_from(retry_ms.max(0)).unwrap_or(0).div_ceil(1000),
        }
    }

    /// Before checking a password: counts the attempt for the address, and
    /// refuses it (429) while the address is over its limit or this account is
    /// in a back-off from this address.
    pub async fn admit(&self, db: &Db, username: &str, ip: IpAddr) -> Result<(), AppError> {
        let now = now_ms();
        let window = Self::ms(Self::IP_WINDOW);
        let (attempts, start) = db.count_in_window(&format!("ip:{ip}"), now, window).await?;
        if attempts > i64::from(self.ip_per_minute) {
            return Err(Self::too_many(start + window - now));
        }
        let until = db.blocked_until(&Self::account_key(username, ip)).await?;
        if until > now {
            return Err(Self::too_many(until - now));
        }
        Ok(())
    }

    /// A wrong password (or unknown user) from `ip`: one more failure in the streak.
    pub async fn failed(&self, db: &Db, username: &str, ip: IpAddr) -> Result<(), AppError> {
        let failures = db
            .record_failure(
                &Self::account_key(username, ip),
                now_ms(),
                Self::ms(Self::FORGET),
                |n| Self::ms(self.delay(n)),
            )
            .await?;
        tracing::info!(%ip, failures, delay_secs = self.delay(failures).as_secs(), "failed login");
        Ok(())
    }

    /// A successful login from `ip` clears that address's streak for the account.
    pub async fn succeeded(&self, db: &Db, username: &str, ip: IpAddr) -> Result<(), AppError> {
        db.clear_throttle(&Self::account_key(username, ip)).await?;
        Ok(())
    }
}

/// A fixed-window limit per key, counted in the database table `login_throttle` (one
/// atomic upsert per event, see [`Db::count_in_window`]), so every instance behind a load
/// balancer enforces the same limit: N instances allow the configured rate, not N times it.
/// Used for registrations per client IP (each costs an argon2id hash).
#[derive(Debug, Clone, Copy)]
pub struct WindowLimit {
    /// Keys of this limit are stored as `<kind>:<key>` (e.g. `register:127.0.0.1`).
    pub kind: &'static str,
    pub limit: u32,
    pub window: Duration,
    /// The 429's message.
    pub message: &'static str,
}

impl WindowLimit {
    /// Counts one event for `key`; 429 with `Retry-After` (the rest of the window) once
    /// over the limit.
    pub async fn hit(&self, db: &Db, key: &str) -> Result<(), AppError> {
        let now = now_ms();
        let window = LoginThrottle::ms(self.window);
        let (events, start) = db
            .count_in_window(&format!("{}:{key}", self.kind), now, window)
            .await?;
        if events > i64::from(self.limit) {
            let retry_ms = start.saturating_add(window).saturating_sub(now).max(0);
            return Err(AppError::TooManyRequests {
                message: self.message.into(),
                retry_after_secs: u64::try_from(retry_ms).unwrap_or(0).div_ceil(1000),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, ha) = new_session_token();
        let (b, hb) = new_session_token();
        assert_ne!(a, b);
        assert_ne!(ha, hb);
        assert_eq!(a.len(), 43);
        assert_eq!(ha, token_hash(&a));
        assert_eq!(ha.len(), 64);
        assert!(!ha.contains(&a));
    }
}
