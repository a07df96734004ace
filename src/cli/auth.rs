//! `login` / `logout` and where the session token is kept (OS keyring, else STREAMIT_TOKEN).

use std::io::BufRead;

use streamit_api::LoginRequest;
use streamit_api::client::Client;

use super::{AuthArgs, CliError, CliResult, EXIT_AUTH, LoginArgs};

const KEYRING_SERVICE: &str = "streamit-studio";

fn keyring_entry(api: &str) -> Result<keyring::Entry, String> {
    keyring::Entry::new(KEYRING_SERVICE, api.trim_end_matches('/')).map_err(|e| e.to_string())
}

const NO_KEYRING_HINT: &str = "no OS keyring (Secret Service, Keychain or Credential Manager) is available here; \
     pass the session token in the STREAMIT_TOKEN environment variable (or --token) instead";

/// Where a command's auth comes from: --token/STREAMIT_TOKEN, else --username/--password
/// (the caller logs in), else the keyring.
pub enum Auth {
    Token(String),
    Password { username: String, password: String },
}

pub fn resolve(a: &AuthArgs) -> CliResult<Auth> {
    if let Some(t) = a.token.as_ref().filter(|t| !t.is_empty()) {
        return Ok(Auth::Token(t.clone()));
    }
    if let (Some(u), Some(p)) = (&a.username, &a.password) {
        return Ok(Auth::Password {
            username: u.clone(),
            password: p.clone(),
        });
    }
    match keyring_entry(&a.api) {
        Ok(entry) => match entry.get_password() {
            Ok(t) => Ok(Auth::Token(t)),
            Err(_) => Err(CliError::new(
                EXIT_AUTH,
                format!(
                    "not logged in to {}: run `streamit-studio login --username …`, or set STREAMIT_TOKEN",
                    a.api
                ),
            )),
        },
        Err(e) => Err(CliError::new(
            EXIT_AUTH,
            format!("not logged in ({NO_KEYRING_HINT}; keyring: {e})"),
        )),
    }
}

/// The token `login` stored for `api`, if a keyring has one (for commands that work
/// without logging in too, like `watch`).
pub fn stored_token(api: &str) -> Option<String> {
    keyring_entry(api).ok()?.get_password().ok()
}

pub async fn login(a: LoginArgs) -> CliResult {
    let password = match a.password {
        Some(p) => p,
        None => {
            eprint!("password for {}: ", a.username);
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| CliError::new(1, format!("reading the password: {e}")))?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    let api = Client::new(a.api.clone());
    let auth = api
        .login(&LoginRequest {
            username: a.username.clone(),
            password,
        })
        .await?;
    match keyring_entry(&a.api).and_then(|e| e.set_password(&auth.token).map_err(|e| e.to_string()))
    {
        Ok(()) => {
            eprintln!(
                "logged in to {} as {} ({}); the token is in the OS keyring",
                a.api, auth.user.username, auth.user.role
            );
        }
        Err(e) => {
            eprintln!(
                "logged in to {} as {}, but the token could not be stored: {NO_KEYRING_HINT} ({e}).",
                a.api, auth.user.username
            );
            // stdout carries only the line to evaluate, so `eval $(streamit-studio login …)` works
            println!("export STREAMIT_TOKEN={}", auth.token);
        }
    }
    if auth.user.role == streamit_api::Role::Creator && !auth.user.is_approved {
        eprintln!(
            "note: this creator account is not approved yet; an admin must approve it before you can go live"
        );
    }
    Ok(())
}

pub async fn logout(a: AuthArgs) -> CliResult {
    let token = match resolve(&a)? {
        Auth::Token(t) => t,
        Auth::Password { .. } => {
            return Err(CliError::new(
                1,
                "logout needs a stored token (or --token), not a password",
            ));
        }
    };
    let api = Client::new(a.api.clone()).with_token(token);
    let server = api.logout().await;
    if let Ok(entry) = keyring_entry(&a.api) {
        let _ = entry.delete_credential();
    }
    match server {
        Ok(_) => {
            eprintln!("logged out of {}", a.api);
            Ok(())
        }
        Err(e) if e.status() == Some(401) => {
            eprintln!("the stored session had already expired; forgotten");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
