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

use crate::auth::jwt::{KeyType, key_type_of, parse_public_key_pem};
use crate::auth::{Scope, client_ip, cors};
use crate::video::{LegacyTokenFormat, Role};
use jsonwebtoken::Algorithm;

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
    /// Per-caller rate limits.
    pub rate_limits: RateLimitsConfig,
    /// Browser origins allowed to call.
    pub cors: CorsConfig,
    /// Prometheus metrics.
    pub metrics: MetricsConfig,
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
    /// Most requests served at once.
    pub max_in_flight: usize,
    /// Header read (and idle keep-alive) timeout.
    pub header_read_timeout_ms: u64,
}

/// `[video]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoConfig {
    /// Base URL; empty means the default for the credential kind.
    pub api_url: String,
    /// Connect timeout for Vonage calls.
    pub connect_timeout_ms: u64,
    /// Timeout of one attempt.
    pub timeout_ms: u64,
    /// Deadline of a whole call, retries included.
    pub request_deadline_ms: u64,
    /// Retries of transient failures.
    pub max_retries: u32,
    /// First backoff.
    pub retry_base_ms: u64,
    /// Longest backoff.
    pub retry_max_ms: u64,
    /// Most concurrent Vonage calls.
    pub max_concurrent_calls: usize,
    /// Consecutive failures that open the breaker.
    pub breaker_failure_threshold: u32,
    /// How long the breaker stays open.
    pub breaker_open_ms: u64,
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
    /// Scopes every anonymous caller has.
    pub anonymous_scopes: Vec<Scope>,
    /// Required `iss` of bearer tokens (`mode = "jwt"`).
    pub issuer: String,
    /// Required `aud` of bearer tokens (`mode = "jwt"`).
    pub audience: String,
    /// The identity provider's JWKS URL.
    pub jwks_url: String,
    /// A PEM public key file, instead of a JWKS.
    pub public_key_file: String,
    /// Algorithms accepted from RSA keys.
    pub rsa_algorithms: Vec<Algorithm>,
    /// Algorithms accepted from EC keys.
    pub ec_algorithms: Vec<Algorithm>,
    /// Algorithms accepted from Ed25519 keys.
    pub ed_algorithms: Vec<Algorithm>,
    /// Algorithms accepted with the HS256 secret.
    pub hmac_algorithms: Vec<Algorithm>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway_seconds: u64,
    /// Claims read for scopes (space-separated string or array), all of them.
    pub scope_claims: Vec<String>,
    /// Claim holding the caller's display name.
    pub name_claim: String,
    /// Connect and total timeout of a JWKS fetch.
    pub jwks_timeout_ms: u64,
    /// How long fetched keys are used before a refresh.
    pub jwks_cache_seconds: u64,
    /// Least time between two JWKS fetches (unknown `kid`s cannot force more).
    pub jwks_refresh_min_interval_ms: u64,
    /// Proxies whose `X-Forwarded-For` is believed (IPs or CIDR ranges).
    pub trusted_proxies: Vec<String>,
    /// `VONAGE_SESSIONS_AUTH_HS256_SECRET[_FILE]` (env only; redacted from `Debug`).
    #[serde(skip)]
    pub hs256_secret: Option<SecretString>,
    /// Contents of `public_key_file`, read at load.
    #[serde(skip)]
    pub public_key_pem: Option<String>,
}

/// `[rate_limits]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitsConfig {
    /// Whether callers are rate limited at all.
    pub enabled: bool,
    /// Sustained rate of creating sessions and rooms, per caller.
    pub create_per_minute: u32,
    /// Burst of creations.
    pub create_burst: u32,
    /// Sustained rate of joins, tokens and other room calls, per caller.
    pub join_per_minute: u32,
    /// Burst of joins.
    pub join_burst: u32,
}

/// `[cors]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Exact origins allowed (`scheme://host[:port]`, `scheme://host:*`, or `"*"` alone).
    pub allowed_origins: Vec<String>,
    /// Whether browsers may send credentials (cookies); never with `"*"`.
    pub allow_credentials: bool,
    /// How long browsers may cache a preflight answer.
    pub max_age_seconds: u64,
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
    /// Callers present a bearer JWT from the app's identity provider.
    Jwt,
}

/// `[metrics]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Separate listen address for `/metrics`; empty means the main listener.
    pub listen: String,
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
        config.auth.hs256_secret = secret_var(env, "VONAGE_SESSIONS_AUTH_HS256_SECRET")?;
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
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.validate_rooms()?;
        self.validate_limits()?;
        self.validate_auth()?;
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

    fn validate_limits(&self) -> Result<(), ConfigError> {
        let checks = [
            ("server.max_in_flight", self.server.max_in_flight as u64),
            (
                "server.header_read_timeout_ms",
                self.server.header_read_timeout_ms,
            ),
            ("video.request_deadline_ms", self.video.request_deadline_ms),
            (
                "video.max_concurrent_calls",
                self.video.max_concurrent_calls as u64,
            ),
            (
                "video.breaker_failure_threshold",
                u64::from(self.video.breaker_failure_threshold),
            ),
            ("video.breaker_open_ms", self.video.breaker_open_ms),
        ];
        for (key, value) in checks {
            if value == 0 {
                return Err(invalid(key, "must be greater than 0"));
            }
        }
        if self.video.retry_base_ms > self.video.retry_max_ms {
            return Err(invalid(
                "video.retry_base_ms",
                "must not exceed video.retry_max_ms",
            ));
        }
        if !self.metrics.listen.is_empty() && self.metrics.listen.parse::<SocketAddr>().is_err() {
            return Err(invalid(
                "metrics.listen",
                "must be empty or an address such as 0.0.0.0:9100",
            ));
        }
        Ok(())
    }

    /// `[auth]`, `[rate_limits]` and `[cors]`.
    fn validate_auth(&self) -> Result<(), ConfigError> {
        let auth = &self.auth;
        for (key, algorithms, kind) in [
            ("auth.rsa_algorithms", &auth.rsa_algorithms, KeyType::Rsa),
            ("auth.ec_algorithms", &auth.ec_algorithms, KeyType::Ec),
            ("auth.ed_algorithms", &auth.ed_algorithms, KeyType::Ed),
            ("auth.hmac_algorithms", &auth.hmac_algorithms, KeyType::Hmac),
        ] {
            if let Some(other) = algorithms.iter().find(|alg| key_type_of(**alg) != kind) {
                return Err(invalid(
                    key,
                    format!("{other:?} is not an algorithm for this key type"),
                ));
            }
        }
        client_ip::TrustedProxies::parse(&auth.trusted_proxies)
            .map_err(|message| invalid("auth.trusted_proxies", message))?;
        if auth.leeway_seconds > 300 {
            return Err(invalid("auth.leeway_seconds", "must be at most 300"));
        }
        if auth.mode == AuthMode::Jwt {
            self.validate_jwt()?;
        }
        let limits = &self.rate_limits;
        for (key, value) in [
            ("rate_limits.create_per_minute", limits.create_per_minute),
            ("rate_limits.create_burst", limits.create_burst),
            ("rate_limits.join_per_minute", limits.join_per_minute),
            ("rate_limits.join_burst", limits.join_burst),
        ] {
            if value == 0 {
                return Err(invalid(
                    key,
                    "must be greater than 0 (set rate_limits.enabled = false to turn limits off)",
                ));
            }
        }
        let origins = &self.cors.allowed_origins;
        if origins.iter().any(|origin| origin == "*") {
            if origins.len() > 1 {
                return Err(invalid(
                    "cors.allowed_origins",
                    "\"*\" allows every origin and must be the only entry",
                ));
            }
            if self.cors.allow_credentials {
                return Err(invalid(
                    "cors.allow_credentials",
                    "cannot be true with cors.allowed_origins = [\"*\"]: list the origins instead",
                ));
            }
        } else {
            for origin in origins {
                cors::check_origin(origin).map_err(|m| invalid("cors.allowed_origins", m))?;
            }
        }
        Ok(())
    }

    fn validate_jwt(&self) -> Result<(), ConfigError> {
        let auth = &self.auth;
        for (key, value) in [
            ("auth.issuer", &auth.issuer),
            ("auth.audience", &auth.audience),
        ] {
            if value.trim().is_empty() {
                return Err(invalid(key, "is required with auth.mode = \"jwt\""));
            }
        }
        let sources = [
            !auth.jwks_url.is_empty(),
            auth.public_key_pem.is_some(),
            auth.hs256_secret.is_some(),
        ];
        match sources.iter().filter(|set| **set).count() {
            0 => {
                return Err(invalid(
                    "auth.jwks_url",
                    "auth.mode = \"jwt\" needs one key source: auth.jwks_url, auth.public_key_file \
                     or the VONAGE_SESSIONS_AUTH_HS256_SECRET env var",
                ));
            }
            1 => {}
            _ => {
                return Err(invalid(
                    "auth.jwks_url",
                    "set exactly one of auth.jwks_url, auth.public_key_file and \
                     VONAGE_SESSIONS_AUTH_HS256_SECRET",
                ));
            }
        }
        if !auth.jwks_url.is_empty() {
            let url = Url::parse(&auth.jwks_url)
                .map_err(|e| invalid("auth.jwks_url", format!("is not a URL ({e})")))?;
            let loopback = match url.host() {
                Some(url::Host::Domain(host)) => host == "localhost",
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            if !(url.scheme() == "https" || (url.scheme() == "http" && loopback)) {
                return Err(invalid(
                    "auth.jwks_url",
                    "must be an https:// URL (http:// only on loopback, for tests)",
                ));
            }
            for (key, value) in [
                ("auth.jwks_timeout_ms", auth.jwks_timeout_ms),
                ("auth.jwks_cache_seconds", auth.jwks_cache_seconds),
            ] {
                if value == 0 {
                    return Err(invalid(key, "must be greater than 0"));
                }
            }
            // Tokens with made-up `kid`s trigger refreshes: this bounds how often.
            if auth.jwks_refresh_min_interval_ms < 1000 {
                return Err(invalid(
                    "auth.jwks_refresh_min_interval_ms",
                    "must be at least 1000",
                ));
            }
        }
        if let Some(pem) = &auth.public_key_pem {
            let (_, kind) = parse_public_key_pem(pem.as_bytes())
                .map_err(|m| invalid("auth.public_key_file", m))?;
            let (key, allowed) = match kind {
                KeyType::Rsa => ("auth.rsa_algorithms", &auth.rsa_algorithms),
                KeyType::Ec => ("auth.ec_algorithms", &auth.ec_algorithms),
                KeyType::Ed => ("auth.ed_algorithms", &auth.ed_algorithms),
                KeyType::Hmac => ("auth.hmac_algorithms", &auth.hmac_algorithms),
            };
            if allowed.is_empty() {
                return Err(invalid(
                    key,
                    "must not be empty for the key in auth.public_key_file",
                ));
            }
        }
        if let Some(secret) = &auth.hs256_secret {
            if secrecy::ExposeSecret::expose_secret(secret).len() < 32 {
                return Err(invalid(
                    "VONAGE_SESSIONS_AUTH_HS256_SECRET",
                    "must be at least 32 bytes (256 bits)",
                ));
            }
            if auth.hmac_algorithms.is_empty() {
                return Err(invalid(
                    "auth.hmac_algorithms",
                    "must not be empty with an HS256 secret",
                ));
            }
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
        if rooms.claim_ms <= self.video.request_deadline_ms {
            return Err(invalid(
                "rooms.claim_ms",
                "must exceed video.request_deadline_ms, so a live claim holder never loses its claim",
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

    fn load_auth(toml: &str, pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env = env_of(pairs);
        let sources = Sources {
            config_dir: PathBuf::from("config"),
            env: &env,
            process_env_overrides: false,
        };
        let figment = Config::figment(&sources).unwrap().merge(Toml::string(toml));
        Config::from_figment(figment, &env)
    }

    const HS256_SECRET: &str = "0123456789abcdef0123456789abcdef-hs256";

    #[test]
    fn jwt_mode_needs_issuer_audience_and_exactly_one_key_source() {
        let jwt = "[auth]\nmode = \"jwt\"\nissuer = \"https://idp\"\naudience = \"api\"\n";
        let secret = [("VONAGE_SESSIONS_AUTH_HS256_SECRET", HS256_SECRET)];
        assert!(load_auth(jwt, &secret).is_ok());
        type Case<'a> = (String, Vec<(&'a str, &'a str)>, &'a str);
        let cases: Vec<Case<'_>> = vec![
            (jwt.into(), vec![], "auth.jwks_url"),
            (
                "[auth]\nmode = \"jwt\"\naudience = \"api\"".into(),
                secret.to_vec(),
                "auth.issuer",
            ),
            (
                "[auth]\nmode = \"jwt\"\nissuer = \"i\"".into(),
                secret.to_vec(),
                "auth.audience",
            ),
            (
                format!("{jwt}jwks_url = \"https://idp/jwks\""),
                secret.to_vec(),
                "auth.jwks_url",
            ),
            (
                format!("{jwt}jwks_url = \"http://idp.example.com/jwks\""),
                vec![],
                "auth.jwks_url",
            ),
            (
                format!("{jwt}public_key_file = \"/nonexistent.pem\""),
                vec![],
                "auth.public_key_file",
            ),
            (
                format!("{jwt}public_key_file = \"Cargo.toml\""),
                vec![],
                "auth.public_key_file",
            ),
            (
                jwt.into(),
                vec![("VONAGE_SESSIONS_AUTH_HS256_SECRET", "short")],
                "VONAGE_SESSIONS_AUTH_HS256_SECRET",
            ),
            (
                format!("{jwt}rsa_algorithms = [\"HS256\"]"),
                secret.to_vec(),
                "auth.rsa_algorithms",
            ),
            (
                format!("{jwt}hmac_algorithms = [\"RS256\"]"),
                secret.to_vec(),
                "auth.hmac_algorithms",
            ),
            (
                format!("{jwt}rsa_algorithms = [\"none\"]"),
                secret.to_vec(),
                "rsa_algorithms",
            ),
            (
                format!("{jwt}trusted_proxies = [\"10.0.0.0/99\"]"),
                secret.to_vec(),
                "auth.trusted_proxies",
            ),
            (
                format!("{jwt}anonymous_scopes = [\"video:everything\"]"),
                secret.to_vec(),
                "anonymous_scopes",
            ),
            (
                format!("{jwt}hs256_secret = \"x\""),
                secret.to_vec(),
                "hs256_secret",
            ),
        ];
        for (toml, env, key) in cases {
            let error = load_auth(&toml, &env).unwrap_err().to_string();
            assert!(error.contains(key), "{toml} {env:?}: {error}");
        }
        let key_file =
            format!("{jwt}public_key_file = \"tests/fixtures/idp_second_public_key.pem\"");
        let config = load_auth(&key_file, &[]).unwrap();
        assert!(config.auth.public_key_pem.unwrap().contains("PUBLIC KEY"));
        let loopback = format!("{jwt}jwks_url = \"http://127.0.0.1:9/jwks\"");
        assert!(load_auth(&loopback, &[]).is_ok());
    }

    #[test]
    fn the_hs256_secret_comes_from_env_or_a_file_and_is_never_debug_printed() {
        let jwt = "[auth]\nmode = \"jwt\"\nissuer = \"https://idp\"\naudience = \"api\"\n";
        let config =
            load_auth(jwt, &[("VONAGE_SESSIONS_AUTH_HS256_SECRET", HS256_SECRET)]).unwrap();
        let secret = config.auth.hs256_secret.as_ref().unwrap();
        assert_eq!(secrecy::ExposeSecret::expose_secret(secret), HS256_SECRET);
        assert!(!format!("{config:?}").contains(HS256_SECRET));
        assert!(!format!("{config:#?}").contains(HS256_SECRET));

        let file = std::env::temp_dir().join(format!("hs256-{}", uuid::Uuid::new_v4()));
        std::fs::write(&file, format!("  {HS256_SECRET}\n")).unwrap();
        let path = file.display().to_string();
        let config = load_auth(
            jwt,
            &[("VONAGE_SESSIONS_AUTH_HS256_SECRET_FILE", path.as_str())],
        )
        .unwrap();
        let secret = config.auth.hs256_secret.as_ref().unwrap();
        assert_eq!(secrecy::ExposeSecret::expose_secret(secret), HS256_SECRET);
        std::fs::remove_file(file).unwrap();
    }

    #[test]
    fn rate_limits_and_cors_values_name_their_key() {
        let cases = [
            (
                "[rate_limits]\ncreate_burst = 0",
                "rate_limits.create_burst",
            ),
            (
                "[rate_limits]\njoin_per_minute = 0",
                "rate_limits.join_per_minute",
            ),
            ("[rate_limits]\nper_hour = 5", "per_hour"),
            (
                "[cors]\nallowed_origins = [\"https://a.example/\"]",
                "cors.allowed_origins",
            ),
            (
                "[cors]\nallowed_origins = [\"*\", \"https://a.example\"]",
                "cors.allowed_origins",
            ),
            (
                "[cors]\nallowed_origins = [\"*\"]\nallow_credentials = true",
                "cors.allow_credentials",
            ),
            ("[cors]\nallow_headers = []", "allow_headers"),
        ];
        for (toml, key) in cases {
            let error = load_auth(toml, &[]).unwrap_err().to_string();
            assert!(error.contains(key), "{toml}: {error}");
        }
        let ok = load_auth(
            "[cors]\nallowed_origins = [\"https://a.example\", \"http://localhost:*\"]\nallow_credentials = true",
            &[],
        )
        .unwrap();
        assert_eq!(ok.cors.allowed_origins.len(), 2);
        let defaults = load(&[]).unwrap();
        assert_eq!(
            (
                defaults.rate_limits.create_per_minute,
                defaults.rate_limits.create_burst
            ),
            (60, 10)
        );
        assert_eq!(
            (
                defaults.rate_limits.join_per_minute,
                defaults.rate_limits.join_burst
            ),
            (600, 60)
        );
        assert_eq!(defaults.auth.leeway_seconds, 60);
        assert!(defaults.cors.allowed_origins.is_empty());
    }
}
