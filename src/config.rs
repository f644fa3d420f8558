//! Configuration: the only module that reads files and the environment. Layers (last wins):
//! the compiled-in `config/default.toml`, `config/<VONAGE_SESSIONS_ENV>.toml`, then
//! `VONAGE_SESSIONS__SECTION__KEY` env vars; Vonage credentials come from their own env vars
//! (PRODUCT §2), with `*_FILE` variants for container secrets. Unknown keys are errors.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format as _, Toml};
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use crate::video::{LegacyTokenFormat, Role};

/// The compiled-in defaults, so the binary runs from any directory.
const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Vonage's hard cap on a client token's lifetime: 30 days.
pub const TOKEN_TTL_HARD_CAP_SECONDS: u64 = 30 * 24 * 3600;

/// Everything the service is configured with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The HTTP server.
    pub server: ServerConfig,
    /// The Vonage Video API connection.
    pub video: VideoConfig,
    /// Client token policy.
    pub tokens: TokensConfig,
    /// Who may call.
    pub auth: AuthConfig,
    /// Named rooms.
    pub rooms: RoomsConfig,
    /// Logging.
    pub log: LogConfig,
    /// Vonage credentials, from their own env vars (never from files).
    #[serde(skip)]
    pub credentials: Option<CredentialSecrets>,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// End-to-end limit for one request.
    pub request_timeout_ms: u64,
    /// Largest request body accepted.
    pub body_limit_bytes: usize,
    /// How long `/readyz` reports draining before the listener closes.
    pub drain_delay_ms: u64,
    /// How long in-flight requests may take to finish after the listener closes.
    pub shutdown_timeout_ms: u64,
}

/// `[video]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoConfig {
    /// Base URL; empty means the default for the credential kind.
    pub api_url: String,
    /// Connect timeout for Vonage calls.
    pub connect_timeout_ms: u64,
    /// Total timeout for one Vonage call.
    pub timeout_ms: u64,
}

/// `[tokens]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensConfig {
    /// Lifetime when the caller asks for none.
    pub default_ttl_seconds: u64,
    /// Longest lifetime granted.
    pub max_ttl_seconds: u64,
    /// Legacy token format.
    pub legacy_format: LegacyTokenFormat,
}

/// `[auth]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// How callers are authenticated.
    pub mode: AuthMode,
    /// Roles anonymous callers may ask for.
    pub anonymous_roles: Vec<Role>,
}

/// `auth.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Not chosen yet: `serve` refuses to start.
    #[serde(rename = "")]
    Unset,
    /// Anyone who reaches the service may call it.
    Anonymous,
}

/// `[rooms]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomsConfig {
    /// Which store maps rooms to sessions.
    pub store: RoomStoreKind,
    /// Redis URL (may hold a password: redacted from `Debug`).
    pub redis_url: SecretString,
    /// Prefix of Redis keys.
    pub key_prefix: String,
    /// Sliding TTL of a room.
    pub ttl_seconds: u64,
    /// Lifetime of a creation claim.
    pub claim_ms: u64,
    /// How long a joiner waits for another's claim.
    pub join_wait_ms: u64,
    /// Bound on each store call.
    pub store_timeout_ms: u64,
}

/// `rooms.store`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoomStoreKind {
    /// In-process: one replica.
    Memory,
    /// Redis: many replicas.
    Redis,
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Output format.
    pub format: LogFormat,
    /// Default `EnvFilter` directives when `RUST_LOG` is unset.
    pub filter: String,
}

/// `log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, coloured when on a terminal.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Vonage credentials as read from the environment; parsed by `video::Credentials`.
#[derive(Debug, Clone)]
pub enum CredentialSecrets {
    /// `VONAGE_APPLICATION_ID` + `VONAGE_PRIVATE_KEY[_FILE]`.
    Application {
        /// The application ID.
        application_id: String,
        /// The PEM private key.
        private_key: SecretString,
    },
    /// `OPENTOK_API_KEY` + `OPENTOK_API_SECRET[_FILE]`.
    Legacy {
        /// The API key.
        api_key: String,
        /// The API secret.
        api_secret: SecretString,
    },
}

/// A configuration problem, naming the key or variable at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file or env var could not be parsed or has an unknown key.
    #[error("{0}")]
    Figment(#[from] Box<figment::Error>),
    /// A value parsed but is not acceptable.
    #[error("{key}: {message}")]
    Invalid {
        /// The key or env var at fault.
        key: String,
        /// What is wrong.
        message: String,
    },
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        message: message.into(),
    }
}

/// Where configuration comes from: a config directory and an environment to look names up in.
pub struct Sources<'a> {
    /// The directory holding `<env>.toml` overlays (`--config`, default `config`).
    pub config_dir: PathBuf,
    /// Looks up an env var (process env in `main`, a map in tests).
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// Whether `VONAGE_SESSIONS__*` process env vars are merged (off in tests).
    pub process_env_overrides: bool,
}

impl Config {
    /// The layered figment before extraction: tests merge their own overrides into it.
    pub fn figment(sources: &Sources<'_>) -> Result<Figment, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(env_name) = (sources.env)("VONAGE_SESSIONS_ENV").filter(|name| !name.is_empty())
        {
            let overlay = sources.config_dir.join(format!("{env_name}.toml"));
            if !overlay.is_file() {
                return Err(invalid(
                    "VONAGE_SESSIONS_ENV",
                    format!(
                        "{} does not exist (use --config DIR to point elsewhere)",
                        overlay.display()
                    ),
                ));
            }
            figment = figment.merge(Toml::file_exact(overlay));
        }
        if sources.process_env_overrides {
            figment = figment.merge(Env::prefixed("VONAGE_SESSIONS__").split("__"));
        }
        Ok(figment)
    }

    /// Loads, then validates, everything: the figment layers and the credential env vars.
    pub fn load(sources: &Sources<'_>) -> Result<Self, ConfigError> {
        Self::from_figment(Self::figment(sources)?, sources.env)
    }

    /// Extracts and validates a figment, reading credentials through `env`.
    pub fn from_figment(
        figment: Figment,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut config: Config = figment.extract().map_err(Box::new)?;
        if let Some(url) = env("VIDEO_API_URL").filter(|url| !url.trim().is_empty()) {
            config.video.api_url = url.trim().to_owned();
        }
        config.credentials = credentials_from_env(env)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.validate_rooms()?;
        if !(1..=1024 * 1024).contains(&self.server.body_limit_bytes) {
            return Err(invalid(
                "server.body_limit_bytes",
                "must be between 1 and 1048576",
            ));
        }
        if !self.video.api_url.is_empty() {
            let url = Url::parse(&self.video.api_url)
                .map_err(|e| invalid("video.api_url", e.to_string()))?;
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                return Err(invalid(
                    "video.api_url",
                    "must be an http(s) URL with a host",
                ));
            }
        }
        for (key, value) in [
            ("video.connect_timeout_ms", self.video.connect_timeout_ms),
            ("video.timeout_ms", self.video.timeout_ms),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be greater than 0"));
            }
        }
        if !(1..=TOKEN_TTL_HARD_CAP_SECONDS).contains(&self.tokens.max_ttl_seconds) {
            return Err(invalid(
                "tokens.max_ttl_seconds",
                "must be between 1 and 2592000 (30 days)",
            ));
        }
        if self.tokens.default_ttl_seconds == 0 {
            return Err(invalid(
                "tokens.default_ttl_seconds",
                "must be greater than 0",
            ));
        }
        Ok(())
    }

    fn validate_rooms(&self) -> Result<(), ConfigError> {
        let rooms = &self.rooms;
        if rooms.store == RoomStoreKind::Redis {
            let url = secrecy::ExposeSecret::expose_secret(&rooms.redis_url);
            if url.is_empty() {
                return Err(invalid(
                    "rooms.redis_url",
                    "is required with rooms.store = \"redis\"",
                ));
            }
            // The parse error never includes the URL, which may carry a password.
            let parsed = Url::parse(url)
                .map_err(|e| invalid("rooms.redis_url", format!("is not a URL ({e})")))?;
            if !matches!(parsed.scheme(), "redis" | "rediss" | "redis+unix" | "unix") {
                return Err(invalid(
                    "rooms.redis_url",
                    "must be a redis:// or rediss:// URL",
                ));
            }
        }
        if rooms.ttl_seconds == 0 || rooms.join_wait_ms == 0 || rooms.store_timeout_ms == 0 {
            return Err(invalid(
                "rooms",
                "ttl_seconds, join_wait_ms and store_timeout_ms must be greater than 0",
            ));
        }
        if rooms.claim_ms <= self.video.timeout_ms {
            return Err(invalid(
                "rooms.claim_ms",
                "must exceed video.timeout_ms, so a live claim holder never loses its claim",
            ));
        }
        Ok(())
    }

    /// The Video API base URL: `video.api_url`/`VIDEO_API_URL`, else the default for `kind`.
    pub fn video_base_url(&self, application: bool) -> Url {
        let fallback = if application {
            "https://video.api.vonage.com"
        } else {
            "https://api.opentok.com"
        };
        let url = if self.video.api_url.is_empty() {
            fallback
        } else {
            &self.video.api_url
        };
        // Validated in `validate`; the fallbacks are constants.
        Url::parse(url).unwrap_or_else(|_| Url::parse(fallback).expect("constant URL"))
    }

    /// `server.request_timeout_ms` as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.server.request_timeout_ms)
    }
}

/// Reads `NAME`, or the file named by `NAME_FILE` (both set is an error). Trims whitespace.
fn secret_var(
    env: &dyn Fn(&str) -> Option<String>,
    name: &str,
) -> Result<Option<SecretString>, ConfigError> {
    let file_var = format!("{name}_FILE");
    let direct = env(name).filter(|v| !v.trim().is_empty());
    let file = env(&file_var).filter(|v| !v.trim().is_empty());
    match (direct, file) {
        (Some(_), Some(_)) => Err(invalid(
            name,
            format!("set either {name} or {file_var}, not both"),
        )),
        (Some(value), None) => Ok(Some(SecretString::from(value.trim().to_owned()))),
        (None, Some(path)) => {
            let contents = std::fs::read_to_string(Path::new(path.trim()))
                .map_err(|e| invalid(&file_var, format!("cannot read {}: {e}", path.trim())))?;
            Ok(Some(SecretString::from(contents.trim().to_owned())))
        }
        (None, None) => Ok(None),
    }
}

/// The credentials an emulator accepts: any of the legacy and application variables, both kinds
/// at once allowed. The application's private key is optional when a public key file is given.
#[derive(Debug, Default)]
pub struct EmulatorSecrets {
    /// `OPENTOK_API_KEY` + `OPENTOK_API_SECRET[_FILE]`.
    pub legacy: Option<(String, SecretString)>,
    /// `VONAGE_APPLICATION_ID` + `VONAGE_PRIVATE_KEY[_FILE]` (the key may be absent).
    pub application: Option<(String, Option<SecretString>)>,
}

/// Reads the emulator's credential env vars.
pub fn emulator_secrets(
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<EmulatorSecrets, ConfigError> {
    let var = |name: &str| {
        env(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let legacy = match (
        var("OPENTOK_API_KEY"),
        secret_var(env, "OPENTOK_API_SECRET")?,
    ) {
        (Some(key), Some(secret)) => Some((key, secret)),
        (None, None) => None,
        (Some(_), None) => {
            return Err(invalid(
                "OPENTOK_API_SECRET",
                "is required with OPENTOK_API_KEY",
            ));
        }
        (None, Some(_)) => {
            return Err(invalid(
                "OPENTOK_API_KEY",
                "is required with OPENTOK_API_SECRET",
            ));
        }
    };
    let application = match (
        var("VONAGE_APPLICATION_ID"),
        secret_var(env, "VONAGE_PRIVATE_KEY")?,
    ) {
        (Some(id), key) => Some((id, key)),
        (None, None) => None,
        (None, Some(_)) => {
            return Err(invalid(
                "VONAGE_APPLICATION_ID",
                "is required with VONAGE_PRIVATE_KEY",
            ));
        }
    };
    Ok(EmulatorSecrets {
        legacy,
        application,
    })
}

fn credentials_from_env(
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<CredentialSecrets>, ConfigError> {
    let var = |name: &str| {
        env(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let application_id = var("VONAGE_APPLICATION_ID");
    let private_key = secret_var(env, "VONAGE_PRIVATE_KEY")?;
    let api_key = var("OPENTOK_API_KEY");
    let api_secret = secret_var(env, "OPENTOK_API_SECRET")?;
    let application = application_id.is_some() || private_key.is_some();
    let legacy = api_key.is_some() || api_secret.is_some();
    if application && legacy {
        return Err(invalid(
            "VONAGE_APPLICATION_ID",
            "both Vonage application and legacy OpenTok credentials are set; set exactly one kind",
        ));
    }
    match (application_id, private_key, api_key, api_secret) {
        (Some(application_id), Some(private_key), None, None) => {
            Ok(Some(CredentialSecrets::Application {
                application_id,
                private_key,
            }))
        }
        (Some(_), None, ..) => Err(invalid(
            "VONAGE_PRIVATE_KEY",
            "is required with VONAGE_APPLICATION_ID (or VONAGE_PRIVATE_KEY_FILE)",
        )),
        (None, Some(_), ..) => Err(invalid(
            "VONAGE_APPLICATION_ID",
            "is required with VONAGE_PRIVATE_KEY",
        )),
        (None, None, Some(api_key), Some(api_secret)) => Ok(Some(CredentialSecrets::Legacy {
            api_key,
            api_secret,
        })),
        (None, None, Some(_), None) => Err(invalid(
            "OPENTOK_API_SECRET",
            "is required with OPENTOK_API_KEY (or OPENTOK_API_SECRET_FILE)",
        )),
        (None, None, None, Some(_)) => Err(invalid(
            "OPENTOK_API_KEY",
            "is required with OPENTOK_API_SECRET",
        )),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env = env_of(pairs);
        let sources = Sources {
            config_dir: PathBuf::from("config"),
            env: &env,
            process_env_overrides: false,
        };
        Config::load(&sources)
    }

    #[test]
    fn defaults_load_without_credentials_or_files() {
        let config = load(&[]).unwrap();
        assert_eq!(config.server.body_limit_bytes, 16384);
        assert_eq!(config.auth.mode, AuthMode::Unset);
        assert!(config.credentials.is_none());
        assert_eq!(
            config.video_base_url(true).as_str(),
            "https://video.api.vonage.com/"
        );
        assert_eq!(
            config.video_base_url(false).as_str(),
            "https://api.opentok.com/"
        );
    }

    #[test]
    fn production_overlay_applies() {
        let config = load(&[("VONAGE_SESSIONS_ENV", "production")]).unwrap();
        assert_eq!(config.log.format, LogFormat::Json);
        assert!(
            load(&[("VONAGE_SESSIONS_ENV", "nowhere")])
                .unwrap_err()
                .to_string()
                .contains("nowhere.toml")
        );
    }

    #[test]
    fn unknown_keys_are_rejected_and_named() {
        let env = env_of(&[]);
        let sources = Sources {
            config_dir: PathBuf::from("config"),
            env: &env,
            process_env_overrides: false,
        };
        let figment = Config::figment(&sources)
            .unwrap()
            .merge(Toml::string("[server]\nlisten_port = 1"));
        let error = Config::from_figment(figment, &env).unwrap_err().to_string();
        assert!(error.contains("listen_port"), "{error}");
    }

    #[test]
    fn credentials_pick_exactly_one_kind() {
        let legacy = load(&[
            ("OPENTOK_API_KEY", "123456"),
            ("OPENTOK_API_SECRET", " s3cret \n"),
        ])
        .unwrap();
        let Some(CredentialSecrets::Legacy {
            api_key,
            api_secret,
        }) = legacy.credentials
        else {
            panic!("legacy")
        };
        assert_eq!(api_key, "123456");
        assert_eq!(secrecy::ExposeSecret::expose_secret(&api_secret), "s3cret");

        let both = load(&[
            ("OPENTOK_API_KEY", "1"),
            ("OPENTOK_API_SECRET", "s"),
            ("VONAGE_APPLICATION_ID", "a"),
        ]);
        assert!(both.unwrap_err().to_string().contains("exactly one"));
        let half = load(&[("VONAGE_APPLICATION_ID", "a")])
            .unwrap_err()
            .to_string();
        assert!(half.starts_with("VONAGE_PRIVATE_KEY"), "{half}");
        let twice = load(&[
            ("OPENTOK_API_KEY", "1"),
            ("OPENTOK_API_SECRET", "s"),
            ("OPENTOK_API_SECRET_FILE", "/x"),
        ]);
        assert!(twice.unwrap_err().to_string().contains("not both"));
    }

    #[test]
    fn secrets_are_read_from_files_and_never_debug_printed() {
        let config = load(&[
            ("VONAGE_APPLICATION_ID", "app"),
            (
                "VONAGE_PRIVATE_KEY_FILE",
                "tests/fixtures/application_private_key.pem",
            ),
        ])
        .unwrap();
        let printed = format!("{config:?}");
        assert!(printed.contains("app"));
        assert!(!printed.contains("PRIVATE KEY"), "{printed}");
        let missing = load(&[
            ("OPENTOK_API_KEY", "1"),
            ("OPENTOK_API_SECRET_FILE", "/nonexistent"),
        ]);
        assert!(
            missing
                .unwrap_err()
                .to_string()
                .starts_with("OPENTOK_API_SECRET_FILE")
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        for (pairs, key) in [
            (vec![("VIDEO_API_URL", "ftp://x")], "video.api_url"),
            (vec![("VIDEO_API_URL", "not a url")], "video.api_url"),
        ] {
            let error = load(&pairs).unwrap_err().to_string();
            assert!(error.starts_with(key), "{error}");
        }
    }

    #[test]
    fn redis_rooms_need_a_redis_url_and_claims_outlive_vonage_calls() {
        let env = env_of(&[]);
        let sources = Sources {
            config_dir: PathBuf::from("config"),
            env: &env,
            process_env_overrides: false,
        };
        let load_with = |toml: &str| {
            let figment = Config::figment(&sources).unwrap().merge(Toml::string(toml));
            Config::from_figment(figment, &env)
        };
        let missing = load_with("[rooms]\nstore = \"redis\"")
            .unwrap_err()
            .to_string();
        assert!(missing.starts_with("rooms.redis_url"), "{missing}");
        let secret_url = "[rooms]\nstore = \"redis\"\nredis_url = \"http://user:hunter2@x\"";
        let wrong = load_with(secret_url).unwrap_err().to_string();
        assert!(
            wrong.starts_with("rooms.redis_url") && !wrong.contains("hunter2"),
            "{wrong}"
        );
        let ok = load_with(
            "[rooms]\nstore = \"redis\"\nredis_url = \"redis://:hunter2@127.0.0.1:6379\"",
        )
        .unwrap();
        assert!(
            !format!("{ok:?}").contains("hunter2"),
            "the Redis password is redacted"
        );
        let short = load_with("[rooms]\nclaim_ms = 1000")
            .unwrap_err()
            .to_string();
        assert!(short.starts_with("rooms.claim_ms"), "{short}");
    }
}
