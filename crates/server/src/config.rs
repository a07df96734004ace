//! The one place the server's settings come from: built-in defaults, then an
//! optional TOML file named by `STREAMIT_CONFIG`, then environment variables
//! (the environment wins).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The LiveKit development key pair (`livekit-server --dev`). Public knowledge:
/// only used when neither key nor secret is configured.
pub const DEV_API_KEY: &str = "devkey";
pub const DEV_API_SECRET: &str = "secret";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid {name}: {message}")]
    Invalid { name: &'static str, message: String },
    #[error("no data directory for the default SQLite database; set DATABASE_URL")]
    NoDataDir,
}

/// Everything configurable about the server.
#[derive(Clone)]
pub struct Config {
    /// `STREAMIT_BIND`, default `127.0.0.1:8080` (port 0 picks a free port).
    pub bind: SocketAddr,
    /// `DATABASE_URL`: `sqlite://<path>` or `postgres://…`.
    pub database_url: String,
    /// `LIVEKIT_URL`: the LiveKit server's HTTP API.
    pub livekit_url: String,
    /// `LIVEKIT_WS_URL`: what clients connect to (default: `LIVEKIT_URL` with ws/wss).
    pub livekit_ws_url: String,
    /// `LIVEKIT_API_KEY`.
    pub livekit_api_key: String,
    /// `LIVEKIT_API_SECRET`. Never logged (see the `Debug` impl).
    pub livekit_api_secret: String,
    /// True when the public dev key pair is in use.
    pub using_dev_keys: bool,
    /// `STREAMIT_TOKEN_TTL`: lifetime of LiveKit tokens (default 24 h).
    pub token_ttl: Duration,
    /// `STREAMIT_ROOM_EMPTY_TIMEOUT`: go-live creates the LiveKit room with this empty
    /// timeout (default 5m; `0` = LiveKit's own default), so a studio that never connects
    /// still ends in LiveKit's `room_finished` and the stream goes offline.
    pub room_empty_timeout: Option<Duration>,
    /// `STREAMIT_SESSION_TTL`: lifetime of login sessions (default 30 days).
    pub session_ttl: Duration,
    /// `STREAMIT_PUBLISHER_GRACE`: how long the creator's participant may be
    /// gone from the room before the stream goes offline with `publisher_lost`
    /// (default [`crate::liveness::PUBLISHER_GRACE`], 20 s; see there why).
    pub publisher_grace: Duration,
    /// `STREAMIT_LOGIN_IP_PER_MINUTE`: login attempts per client IP per minute (default 30).
    pub login_ip_per_minute: u32,
    /// `STREAMIT_LOGIN_FAILURES_PER_ACCOUNT`: failed logins in a row for one account from one
    /// address before the back-off starts (default 5; see `auth::LoginThrottle`).
    pub login_failures_per_account: u32,
    /// `STREAMIT_REGISTER_IP_PER_MINUTE`: registrations per client IP per minute (default 60;
    /// each one costs an argon2id hash).
    pub register_ip_per_minute: u32,
    /// `STREAMIT_TRUST_FORWARDED_FOR`: take the client IP from `X-Forwarded-For`
    /// (only behind a proxy that sets it; default false).
    pub trust_forwarded_for: bool,
    /// `STREAMIT_PUBLIC_WEB_URL`: where viewers open watch pages
    /// (`{url}/{username}`); default: this server's own address, see
    /// [`Config::public_web_url`].
    pub public_web_url: Option<String>,
    /// `STREAMIT_WEB_DIR`: the built watch pages (index.html + assets/). Default: this
    /// crate's `web/dist` when built there (scripts/install.sh), else an installed
    /// `share/streamit-server/web`; `None` serves a 503 page saying how to build them.
    pub web_dir: Option<PathBuf>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field("database_url", &redact_url(&self.database_url))
            .field("livekit_url", &self.livekit_url)
            .field("livekit_ws_url", &self.livekit_ws_url)
            .field("livekit_api_key", &self.livekit_api_key)
            .field("livekit_api_secret", &"<redacted>")
            .field("using_dev_keys", &self.using_dev_keys)
            .field("token_ttl", &self.token_ttl)
            .field("session_ttl", &self.session_ttl)
            .field("room_empty_timeout", &self.room_empty_timeout)
            .field("publisher_grace", &self.publisher_grace)
            .field("login_ip_per_minute", &self.login_ip_per_minute)
            .field(
                "login_failures_per_account",
                &self.login_failures_per_account,
            )
            .field("trust_forwarded_for", &self.trust_forwarded_for)
            .field("public_web_url", &self.public_web_url())
            .field("web_dir", &self.web_dir)
            .finish()
    }
}

/// The config file: every key optional, names as the env variables in lower case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    bind: Option<String>,
    database_url: Option<String>,
    livekit_url: Option<String>,
    livekit_ws_url: Option<String>,
    livekit_api_key: Option<String>,
    livekit_api_secret: Option<String>,
    token_ttl: Option<String>,
    session_ttl: Option<String>,
    room_empty_timeout: Option<String>,
    publisher_grace: Option<String>,
    login_ip_per_minute: Option<u32>,
    login_failures_per_account: Option<u32>,
    register_ip_per_minute: Option<u32>,
    trust_forwarded_for: Option<bool>,
    public_web_url: Option<String>,
    web_dir: Option<PathBuf>,
}

impl Config {
    /// Reads the process environment (and `STREAMIT_CONFIG` if set).
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// Same as [`Config::from_env`] with an explicit variable source (for tests).
    pub fn from_lookup(env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let file = match env("STREAMIT_CONFIG") {
            Some(path) => read_file(Path::new(&path))?,
            None => FileConfig::default(),
        };
        let pick = |name: &str, from_file: Option<String>| env(name).or(from_file);

        let bind_text = pick("STREAMIT_BIND", file.bind).unwrap_or_else(|| "127.0.0.1:8080".into());
        let bind: SocketAddr = bind_text.parse().map_err(|e| ConfigError::Invalid {
            name: "STREAMIT_BIND",
            message: format!("{bind_text:?}: {e}"),
        })?;

        let database_url = match pick("DATABASE_URL", file.database_url) {
            Some(url) => url,
            None => default_database_url()?,
        };
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(ConfigError::Invalid {
                name: "DATABASE_URL",
                message: "must start with sqlite: or postgres://".into(),
            });
        }

        let livekit_url =
            pick("LIVEKIT_URL", file.livekit_url).unwrap_or_else(|| "http://127.0.0.1:7880".into());
        let livekit_ws_url = pick("LIVEKIT_WS_URL", file.livekit_ws_url)
            .unwrap_or_else(|| derive_ws_url(&livekit_url));

        let key = pick("LIVEKIT_API_KEY", file.livekit_api_key);
        let secret = pick("LIVEKIT_API_SECRET", file.livekit_api_secret);
        let (livekit_api_key, livekit_api_secret, using_dev_keys) = match (key, secret) {
            (Some(k), Some(s)) => (k, s, false),
            (None, None) => (DEV_API_KEY.to_string(), DEV_API_SECRET.to_string(), true),
            (Some(_), None) => {
                return Err(ConfigError::Invalid {
                    name: "LIVEKIT_API_SECRET",
                    message: "LIVEKIT_API_KEY is set but LIVEKIT_API_SECRET is not".into(),
                });
            }
            (None, Some(_)) => {
                return Err(ConfigError::Invalid {
                    name: "LIVEKIT_API_KEY",
                    message: "LIVEKIT_API_SECRET is set but LIVEKIT_API_KEY is not".into(),
                });
            }
        };

        let token_ttl = match pick("STREAMIT_TOKEN_TTL", file.token_ttl) {
            Some(t) => parse_duration(&t).map_err(|message| ConfigError::Invalid {
                name: "STREAMIT_TOKEN_TTL",
                message,
            })?,
            None => Duration::from_secs(24 * 3600),
        };
        let session_ttl = match pick("STREAMIT_SESSION_TTL", file.session_ttl) {
            Some(t) => parse_duration(&t).map_err(|message| ConfigError::Invalid {
                name: "STREAMIT_SESSION_TTL",
                message,
            })?,
            None => Duration::from_secs(30 * 24 * 3600),
        };
        let room_empty_timeout = match pick("STREAMIT_ROOM_EMPTY_TIMEOUT", file.room_empty_timeout)
        {
            Some(t) if t.trim() == "0" => None,
            Some(t) => Some(parse_duration(&t).map_err(|message| ConfigError::Invalid {
                name: "STREAMIT_ROOM_EMPTY_TIMEOUT",
                message,
            })?),
            None => Some(Duration::from_secs(300)),
        };
        let publisher_grace = match pick("STREAMIT_PUBLISHER_GRACE", file.publisher_grace) {
            Some(t) => parse_duration(&t).map_err(|message| ConfigError::Invalid {
                name: "STREAMIT_PUBLISHER_GRACE",
                message,
            })?,
            None => crate::liveness::PUBLISHER_GRACE,
        };
        let parse_u32 =
            |name: &'static str, v: Option<String>, file: Option<u32>, default: u32| match v {
                Some(s) => s.trim().parse::<u32>().map_err(|e| ConfigError::Invalid {
                    name,
                    message: format!("{s:?}: {e}"),
                }),
                None => Ok(file.unwrap_or(default)),
            };
        let login_ip_per_minute = parse_u32(
            "STREAMIT_LOGIN_IP_PER_MINUTE",
            env("STREAMIT_LOGIN_IP_PER_MINUTE"),
            file.login_ip_per_minute,
            30,
        )?;
        let login_failures_per_account = parse_u32(
            "STREAMIT_LOGIN_FAILURES_PER_ACCOUNT",
            env("STREAMIT_LOGIN_FAILURES_PER_ACCOUNT"),
            file.login_failures_per_account,
            5,
        )?;
        let register_ip_per_minute = parse_u32(
            "STREAMIT_REGISTER_IP_PER_MINUTE",
            env("STREAMIT_REGISTER_IP_PER_MINUTE"),
            file.register_ip_per_minute,
            60,
        )?;
        let trust_forwarded_for = match env("STREAMIT_TRUST_FORWARDED_FOR") {
            Some(v) => matches!(v.trim(), "1" | "true" | "yes"),
            None => file.trust_forwarded_for.unwrap_or(false),
        };

        let public_web_url = match pick("STREAMIT_PUBLIC_WEB_URL", file.public_web_url) {
            Some(url) => Some(valid_web_url(&url)?),
            None => None,
        };
        let web_dir = env("STREAMIT_WEB_DIR")
            .map(PathBuf::from)
            .or(file.web_dir)
            .or_else(crate::web::default_dir);

        Ok(Config {
            public_web_url,
            bind,
            database_url,
            livekit_url,
            livekit_ws_url,
            livekit_api_key,
            livekit_api_secret,
            using_dev_keys,
            token_ttl,
            session_ttl,
            room_empty_timeout,
            publisher_grace,
            login_ip_per_minute,
            login_failures_per_account,
            register_ip_per_minute,
            trust_forwarded_for,
            web_dir,
        })
    }
}

impl Config {
    /// The base of watch URLs: `STREAMIT_PUBLIC_WEB_URL`, else
    /// `http://<bind address>` with a loopback host for an unspecified bind
    /// (0.0.0.0 / ::), since a link to 0.0.0.0 opens nothing. `serve` puts the
    /// bound port into `bind` first, so port 0 gives the real port.
    pub fn public_web_url(&self) -> String {
        if let Some(url) = &self.public_web_url {
            return url.clone();
        }
        let port = self.bind.port();
        match self.bind.ip() {
            std::net::IpAddr::V4(ip) if ip.is_unspecified() => format!("http://127.0.0.1:{port}"),
            std::net::IpAddr::V6(ip) if ip.is_unspecified() => format!("http://[::1]:{port}"),
            _ => format!("http://{}", self.bind),
        }
    }
}

/// An http(s) URL without a trailing slash.
fn valid_web_url(raw: &str) -> Result<String, ConfigError> {
    let url = raw.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => {
            Ok(url.to_string())
        }
        _ => Err(ConfigError::Invalid {
            name: "STREAMIT_PUBLIC_WEB_URL",
            message: format!("{raw:?} is not an http:// or https:// URL"),
        }),
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    // The message of a TOML error quotes the offending line, which may hold a
    // secret; report only the position.
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: match e.span() {
            Some(span) => format!("syntax or type error at byte {}", span.start),
            None => "syntax or type error".into(),
        },
    })
}

fn default_database_url() -> Result<String, ConfigError> {
    let dirs =
        directories::ProjectDirs::from("", "", "streamit-server").ok_or(ConfigError::NoDataDir)?;
    let dir = dirs.data_dir();
    std::fs::create_dir_all(dir).map_err(|source| ConfigError::Read {
        path: dir.to_owned(),
        source,
    })?;
    Ok(format!("sqlite://{}", dir.join("streamit.db").display()))
}

/// `http://h:p` → `ws://h:p`, `https://…` → `wss://…`; ws URLs are kept.
pub fn derive_ws_url(http: &str) -> String {
    if let Some(rest) = http.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = http.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        http.to_string()
    }
}

/// `90`, `90s`, `30m`, `24h`, `7d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 's')) => (&t[..i], 1),
        Some((i, 'm')) => (&t[..i], 60),
        Some((i, 'h')) => (&t[..i], 3600),
        Some((i, 'd')) => (&t[..i], 86_400),
        _ => (t, 1),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 30m, 24h, 7d"))?;
    let secs = n
        .checked_mul(mult)
        .ok_or_else(|| format!("{text:?} is too long"))?;
    if secs == 0 {
        return Err(format!("{text:?} must be more than zero"));
    }
    Ok(Duration::from_secs(secs))
}

/// A database URL without its password, for logs.
pub fn redact_url(url: &str) -> String {
    // scheme://user:password@host… → scheme://user:***@host…
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((creds, host)) = rest.split_once('@')
        && let Some((user, _)) = creds.split_once(':')
    {
        return format!("{scheme}://{user}:***@{host}");
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(move |k| map.get(k).cloned())
    }

    #[test]
    fn defaults_use_dev_keys_and_24h() {
        let c = cfg(&[("DATABASE_URL", "sqlite://x.db")]).unwrap();
        assert!(c.using_dev_keys);
        assert_eq!(c.livekit_api_key, "devkey");
        assert_eq!(c.token_ttl, Duration::from_secs(86_400));
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.livekit_ws_url, "ws://127.0.0.1:7880");
    }

    #[test]
    fn half_a_key_pair_is_an_error_that_hides_the_secret() {
        let e = cfg(&[
            ("DATABASE_URL", "sqlite://x.db"),
            ("LIVEKIT_API_SECRET", "s3cr3t-value"),
        ])
        .err()
        .unwrap();
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
        let dbg = format!(
            "{:?}",
            cfg(&[
                ("DATABASE_URL", "sqlite://x.db"),
                ("LIVEKIT_API_KEY", "k"),
                ("LIVEKIT_API_SECRET", "s3cr3t-value")
            ])
            .unwrap()
        );
        assert!(!dbg.contains("s3cr3t"), "{dbg}");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86_400));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn file_then_env() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "bind = \"127.0.0.1:9999\"\ntoken_ttl = \"1h\"\ndatabase_url = \"sqlite://f.db\"\n",
        )
        .unwrap();
        let p = path.display().to_string();
        let c = cfg(&[("STREAMIT_CONFIG", &p), ("STREAMIT_TOKEN_TTL", "2h")]).unwrap();
        assert_eq!(c.bind.port(), 9999);
        assert_eq!(c.token_ttl, Duration::from_secs(7200));
        assert_eq!(c.database_url, "sqlite://f.db");
    }

    #[test]
    fn public_web_url_defaults_to_the_bind_address() {
        let c = cfg(&[("DATABASE_URL", "sqlite://x.db")]).unwrap();
        assert_eq!(c.public_web_url(), "http://127.0.0.1:8080");
        let c = cfg(&[
            ("DATABASE_URL", "sqlite://x.db"),
            ("STREAMIT_BIND", "0.0.0.0:9000"),
        ])
        .unwrap();
        assert_eq!(c.public_web_url(), "http://127.0.0.1:9000");
        let c = cfg(&[
            ("DATABASE_URL", "sqlite://x.db"),
            ("STREAMIT_BIND", "[::]:9000"),
        ])
        .unwrap();
        assert_eq!(c.public_web_url(), "http://[::1]:9000");
        let c = cfg(&[
            ("DATABASE_URL", "sqlite://x.db"),
            ("STREAMIT_PUBLIC_WEB_URL", "https://watch.example/ "),
        ])
        .unwrap();
        assert_eq!(c.public_web_url(), "https://watch.example");
        assert!(
            cfg(&[
                ("DATABASE_URL", "sqlite://x.db"),
                ("STREAMIT_PUBLIC_WEB_URL", "watch.example")
            ])
            .is_err()
        );
    }

    #[test]
    fn ws_url_and_redaction() {
        assert_eq!(derive_ws_url("https://lk.example"), "wss://lk.example");
        assert_eq!(redact_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }
}
