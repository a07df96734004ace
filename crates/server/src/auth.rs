//! Passwords (argon2id), session tokens (random, stored as SHA-256), the
//! request extractors that authenticate, and the login rate limiter.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::db::{UserRow, now_ms};
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

/// Fixed-window counters, per key. Kept in process memory: each instance
/// behind a load balancer limits on its own (N instances allow up to N times
/// the configured rate). That is the documented trade-off: no shared store
/// is needed, and brute force is still bounded.
pub struct RateLimiter {
    window: Duration,
    limit: u32,
    slots: Mutex<HashMap<String, (u32, Instant)>>,
}

impl RateLimiter {
    pub fn new(limit: u32, window: Duration) -> Self {
        RateLimiter {
            window,
            limit,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one event for `key`; `Err(retry_after)` once over the limit.
    pub fn hit(&self, key: &str) -> Result<(), Duration> {
        self.check(key, true)
    }

    /// Is `key` over the limit? (does not count)
    pub fn over(&self, key: &str) -> Result<(), Duration> {
        self.check(key, false)
    }

    fn check(&self, key: &str, count: bool) -> Result<(), Duration> {
        let now = Instant::now();
        let mut slots = match self.slots.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if slots.len() > 100_000 {
            let window = self.window;
            slots.retain(|_, (_, start)| now.duration_since(*start) < window);
        }
        let entry = slots.entry(key.to_string()).or_insert((0, now));
        if now.duration_since(entry.1) >= self.window {
            *entry = (0, now);
        }
        if entry.0 >= self.limit {
            return Err(self.window.saturating_sub(now.duration_since(entry.1)));
        }
        if count {
            entry.0 += 1;
        }
        Ok(())
    }

    pub fn reset(&self, key: &str) {
        if let Ok(mut slots) = self.slots.lock() {
            slots.remove(key);
        }
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

    #[test]
    fn rate_limiter_counts_per_key() {
        let rl = RateLimiter::new(2, Duration::from_secs(60));
        assert!(rl.hit("a").is_ok());
        assert!(rl.hit("a").is_ok());
        assert!(rl.hit("a").is_err());
        assert!(rl.over("a").is_err());
        assert!(rl.hit("b").is_ok());
        rl.reset("a");
        assert!(rl.hit("a").is_ok());
    }
}
