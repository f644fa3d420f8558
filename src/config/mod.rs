//! Configuration: the only module that reads files and the environment. Layers (last wins):
//! the compiled-in `config/default.toml`, `config/<VONAGE_SESSIONS_ENV>.toml`, then
//! `VONAGE_SESSIONS__SECTION__KEY` env vars; Vonage credentials come from their own env vars
//! (README "Configuration"), with `*_FILE` variants for container secrets. Unknown keys are errors.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format as _, Toml};
use serde::Deserialize;
use url::Url;

mod keys;
mod net;
mod origin;
mod report;
mod secrets;
mod sections;
#[cfg(test)]
mod tests;
mod validate;

pub(crate) use keys::{KeyType, PublicKey, key_type_of, parse_public_key_pem};
pub(crate) use net::IpNet;
pub(crate) use net::canonical;
pub(crate) use origin::check_origin;
pub(crate) use report::Report;
pub use report::{REDACTED, set_by_user};
pub use secrets::{callback_secrets, emulator_secrets};
use secrets::{credentials_from_env, secret_var};
pub(crate) use sections::{
    ArchivesConfig, AuthConfig, CallbacksConfig, CorsConfig, CredentialSecrets, MetricsConfig,
    ModerationConfig, RateLimitsConfig, RoomStoreKind, RoomsConfig, ServerConfig, TokensConfig,
    VideoConfig,
};
pub use sections::{AuthMode, LogConfig, LogFormat};

/// The compiled-in defaults, so the binary runs from any directory.
const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// The env var holding the session-monitoring callbacks' signature secret (or `_FILE`).
pub const SESSION_CALLBACK_SECRET: &str = "VONAGE_SESSION_CALLBACK_SECRET";
/// The env var holding the archive-status callbacks' signature secret (or `_FILE`).
pub const ARCHIVE_CALLBACK_SECRET: &str = "VONAGE_ARCHIVE_CALLBACK_SECRET";
/// The longest `video.rest_jwt_reuse_seconds` (`video::rest_jwt::MAX_REUSE_SECS`, which a
/// test there keeps equal: `config` imports nothing from `video`).
pub(crate) const REST_JWT_MAX_REUSE_SECONDS: u64 = 120;

/// What validation parsed, handed over so nothing parses it again.
struct Parsed {
    auth: validate::AuthParsed,
    trusted_source_nets: Arc<[IpNet]>,
    api_url: Option<Url>,
}

/// Vonage's hard cap on a client token's lifetime: 30 days.
pub(crate) const TOKEN_TTL_HARD_CAP_SECONDS: u64 = 30 * 24 * 3600;

/// Everything the service is configured with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The HTTP server.
    pub server: ServerConfig,
    /// The Vonage Video API connection.
    pub(crate) video: VideoConfig,
    /// Client token policy.
    pub(crate) tokens: TokensConfig,
    /// Who may call.
    pub auth: AuthConfig,
    /// Named rooms.
    pub(crate) rooms: RoomsConfig,
    /// Per-caller rate limits.
    pub rate_limits: RateLimitsConfig,
    /// Browser origins allowed to call.
    pub cors: CorsConfig,
    /// Prometheus metrics.
    pub(crate) metrics: MetricsConfig,
    /// Logging.
    pub log: LogConfig,
    /// Moderation: signals and bans.
    pub(crate) moderation: ModerationConfig,
    /// Archives of rooms.
    pub(crate) archives: ArchivesConfig,
    /// Vonage's callbacks: verification and the receiver's limits.
    pub callbacks: CallbacksConfig,
    /// Vonage credentials, from their own env vars (never from files).
    #[serde(skip)]
    pub(crate) credentials: Option<CredentialSecrets>,
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
    /// More than one problem (see `Config::load_reporting`), each naming its key.
    #[error("{}", report::several(.0))]
    Several(Vec<ConfigError>),
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
    #[cfg(test)]
    pub(crate) fn load(sources: &Sources<'_>) -> Result<Self, ConfigError> {
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
        config.auth.hs256_secret = secret_var(env, "VONAGE_SESSIONS_AUTH_HS256_SECRET")?;
        config.callbacks.session_secret = secret_var(env, SESSION_CALLBACK_SECRET)?;
        config.callbacks.archive_secret = secret_var(env, ARCHIVE_CALLBACK_SECRET)?;
        if !config.auth.public_key_file.is_empty() {
            let path = Path::new(&config.auth.public_key_file);
            let pem = std::fs::read_to_string(path).map_err(|e| {
                invalid(
                    "auth.public_key_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            config.auth.public_key_pem = Some(pem);
        }
        let parsed = config.validate()?;
        config.auth.trusted_proxy_nets = parsed.auth.trusted_proxy_nets;
        config.auth.public_key = parsed.auth.public_key;
        config.auth.jwks = parsed.auth.jwks_url;
        config.callbacks.trusted_source_nets = parsed.trusted_source_nets;
        config.video.api = parsed.api_url;
        Ok(config)
    }

    /// Checks everything and hands over what it parsed, so that nothing parses it again.
    fn validate(&self) -> Result<Parsed, ConfigError> {
        self.validate_rooms()?;
        self.validate_limits()?;
        let auth = self.validate_auth()?;
        let trusted_source_nets = self.validate_callbacks()?;
        if !(1..=1024 * 1024).contains(&self.server.body_limit_bytes) {
            return Err(invalid(
                "server.body_limit_bytes",
                "must be between 1 and 1048576",
            ));
        }
        let api_url = if self.video.api_url.is_empty() {
            None
        } else {
            let url = Url::parse(&self.video.api_url)
                .map_err(|e| invalid("video.api_url", e.to_string()))?;
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                return Err(invalid(
                    "video.api_url",
                    "must be an http(s) URL with a host",
                ));
            }
            Some(url)
        };
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
        Ok(Parsed {
            auth,
            trusted_source_nets,
            api_url,
        })
    }

    /// The Video API base URL: `video.api_url`/`VIDEO_API_URL`, else the default for `kind`.
    pub fn video_base_url(&self, application: bool) -> Url {
        if let Some(url) = &self.video.api {
            return url.clone();
        }
        let fallback = if application {
            "https://video.api.vonage.com"
        } else {
            "https://api.opentok.com"
        };
        Url::parse(fallback).expect("constant URL")
    }

    /// Points the service at another Video API (the embedded emulator of `dev`), as
    /// `video.api_url` would.
    pub fn set_video_api_url(&mut self, url: Url) {
        self.video.api_url = url.to_string();
        self.video.api = Some(url);
    }

    /// `server.request_timeout_ms` as a duration.
    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.server.request_timeout_ms)
    }

    /// How long a ban lasts: `moderation.ban_seconds`, else the room TTL.
    pub(crate) fn ban_duration(&self) -> Duration {
        Duration::from_secs(match self.moderation.ban_seconds {
            0 => self.rooms.ttl_seconds,
            seconds => seconds,
        })
    }
}
