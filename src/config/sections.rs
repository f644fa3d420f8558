//! The sections of `config/default.toml`, one struct each.

use std::net::SocketAddr;
use std::sync::Arc;

use jsonwebtoken::Algorithm;
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use super::{IpNet, PublicKey};
use crate::vocab::{LegacyTokenFormat, Role, Scope};

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// End-to-end limit for one request.
    pub(crate) request_timeout_ms: u64,
    /// Largest request body accepted.
    pub(crate) body_limit_bytes: usize,
    /// How long `/readyz` reports draining before the listener closes.
    pub(crate) drain_delay_ms: u64,
    /// How long in-flight requests may take to finish after the listener closes.
    pub(crate) shutdown_timeout_ms: u64,
    /// Most requests served at once.
    pub(crate) max_in_flight: usize,
    /// Header read (and idle keep-alive) timeout; also the deadline of a new connection's
    /// first request (or HTTP/2 preface and first stream).
    pub(crate) header_read_timeout_ms: u64,
    /// Longest time a request body may take to arrive (408 `request_timeout` after it).
    pub(crate) body_read_timeout_ms: u64,
    /// Most open connections from one peer address (trusted proxies exempt).
    pub(crate) max_connections_per_ip: usize,
    /// Most requests in flight (bodies still arriving included) from one client IP.
    pub(crate) max_in_flight_per_ip: usize,
    /// Serve cleartext HTTP/2 (prior knowledge, h2c) besides HTTP/1.1.
    pub(crate) http2: bool,
    /// Most concurrent HTTP/2 streams per connection.
    pub(crate) http2_max_concurrent_streams: u32,
    /// An HTTP/2 connection with no request in flight for this long is closed.
    pub(crate) http2_idle_timeout_ms: u64,
    /// Interval of HTTP/2 keep-alive pings (a peer that does not answer within it is dropped).
    pub(crate) http2_keep_alive_interval_ms: u64,
}

/// `[video]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VideoConfig {
    /// Base URL; empty means the default for the credential kind.
    pub(crate) api_url: String,
    /// `api_url`, parsed at load (`None`: the default for the credential kind).
    #[serde(skip)]
    pub(crate) api: Option<Url>,
    /// Connect timeout for Vonage calls.
    pub(crate) connect_timeout_ms: u64,
    /// Timeout of one attempt.
    pub(crate) timeout_ms: u64,
    /// Deadline of a whole call, retries included.
    pub(crate) request_deadline_ms: u64,
    /// Retries of transient failures.
    pub(crate) max_retries: u32,
    /// First backoff.
    pub(crate) retry_base_ms: u64,
    /// Longest backoff.
    pub(crate) retry_max_ms: u64,
    /// Most concurrent Vonage calls.
    pub(crate) max_concurrent_calls: usize,
    /// Consecutive failures that open the breaker.
    pub(crate) breaker_failure_threshold: u32,
    /// How long the breaker stays open.
    pub(crate) breaker_open_ms: u64,
    /// How long one REST JWT is reused; 0: a fresh one per call.
    pub(crate) rest_jwt_reuse_seconds: u64,
}

/// `[tokens]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokensConfig {
    /// Lifetime when the caller asks for none.
    pub(crate) default_ttl_seconds: u64,
    /// Longest lifetime granted.
    pub(crate) max_ttl_seconds: u64,
    /// Legacy token format.
    pub(crate) legacy_format: LegacyTokenFormat,
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
    pub(crate) issuer: String,
    /// Required `aud` of bearer tokens (`mode = "jwt"`).
    pub(crate) audience: String,
    /// The identity provider's JWKS URL.
    pub(crate) jwks_url: String,
    /// A PEM public key file, instead of a JWKS.
    pub(crate) public_key_file: String,
    /// Algorithms accepted from RSA keys.
    pub(crate) rsa_algorithms: Vec<Algorithm>,
    /// Algorithms accepted from EC keys.
    pub(crate) ec_algorithms: Vec<Algorithm>,
    /// Algorithms accepted from Ed25519 keys.
    pub(crate) ed_algorithms: Vec<Algorithm>,
    /// Algorithms accepted with the HS256 secret.
    pub(crate) hmac_algorithms: Vec<Algorithm>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub(crate) leeway_seconds: u64,
    /// Claims read for scopes (space-separated string or array), all of them.
    pub(crate) scope_claims: Vec<String>,
    /// Claim holding the caller's display name.
    pub(crate) name_claim: String,
    /// Connect and total timeout of a JWKS fetch.
    pub(crate) jwks_timeout_ms: u64,
    /// How long fetched keys are used before a refresh.
    pub(crate) jwks_cache_seconds: u64,
    /// Least time between two JWKS fetches (unknown `kid`s cannot force more).
    pub(crate) jwks_refresh_min_interval_ms: u64,
    /// Proxies whose `X-Forwarded-For` is believed (IPs or CIDR ranges).
    pub(crate) trusted_proxies: Vec<String>,
    /// `VONAGE_SESSIONS_AUTH_HS256_SECRET[_FILE]` (env only; redacted from `Debug`).
    #[serde(skip)]
    pub hs256_secret: Option<SecretString>,
    /// Contents of `public_key_file`, read at load.
    #[serde(skip)]
    pub(crate) public_key_pem: Option<String>,
    /// `public_key_file`'s key, parsed at load (`mode = "jwt"` only).
    #[serde(skip)]
    pub(crate) public_key: Option<PublicKey>,
    /// `trusted_proxies`, parsed at load.
    #[serde(skip)]
    pub(crate) trusted_proxy_nets: Arc<[IpNet]>,
    /// `jwks_url`, parsed at load (`mode = "jwt"` with a JWKS only).
    #[serde(skip)]
    pub(crate) jwks: Option<Url>,
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
    pub(crate) join_per_minute: u32,
    /// Burst of joins.
    pub(crate) join_burst: u32,
}

/// `[cors]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Exact origins allowed (`scheme://host[:port]`, `scheme://host:*`, or `"*"` alone).
    pub allowed_origins: Vec<String>,
    /// Whether browsers may send credentials (cookies); never with `"*"`.
    pub(crate) allow_credentials: bool,
    /// How long browsers may cache a preflight answer.
    pub(crate) max_age_seconds: u64,
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
pub(crate) struct MetricsConfig {
    /// Separate listen address for `/metrics`; empty means the main listener.
    pub(crate) listen: String,
}

/// `[rooms]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoomsConfig {
    /// Which store maps rooms to sessions.
    pub(crate) store: RoomStoreKind,
    /// Redis URL (may hold a password: redacted from `Debug`).
    pub(crate) redis_url: SecretString,
    /// Redis Sentinel: the sentinels' URLs (redacted from `Debug`).
    pub(crate) redis_sentinels: Vec<SecretString>,
    /// Redis Sentinel: the monitored master's name.
    pub(crate) redis_sentinel_master: String,
    /// Redis Cluster: some of its nodes' URLs (redacted from `Debug`).
    pub(crate) redis_cluster_urls: Vec<SecretString>,
    /// Prefix of Redis keys.
    pub(crate) key_prefix: String,
    /// Sliding TTL of a room.
    pub(crate) ttl_seconds: u64,
    /// Lifetime of a creation claim.
    pub(crate) claim_ms: u64,
    /// How long a joiner waits for another's claim.
    pub(crate) join_wait_ms: u64,
    /// Bound on each store call.
    pub(crate) store_timeout_ms: u64,
    /// How often each active room's presence is reconciled with Vonage's connection list
    /// (0: never).
    pub(crate) reconcile_seconds: u64,
    /// How long an issued token holds a seat before its connection appears.
    pub(crate) seat_hold_seconds: u64,
    /// How long a room stays empty before its mapping is retired.
    pub(crate) empty_retire_seconds: u64,
}

/// `rooms.store`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RoomStoreKind {
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
    /// Most lines waiting for stderr; more are dropped and counted (`log_lines_dropped_total`).
    pub buffered_lines: usize,
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
pub(crate) enum CredentialSecrets {
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

/// `[moderation]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ModerationConfig {
    /// Whether `video:join` callers may signal one connection (signals to all need
    /// `video:moderate`).
    pub(crate) join_may_signal: bool,
    /// How long a ban lasts; 0 means `rooms.ttl_seconds`.
    pub(crate) ban_seconds: u64,
}

/// `[archives]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ArchivesConfig {
    /// Stop archives still recording in a room that ended (`expiresAt`) or was retired empty.
    pub(crate) stop_when_empty: bool,
}

/// `[callbacks]`: Vonage's signed callbacks to `POST /vonage/callbacks` (docs/callbacks.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbacksConfig {
    /// Whether `POST /vonage/callbacks` is served at all (off: 404).
    pub(crate) enabled: bool,
    /// Oldest `iat` accepted; also how long a `jti` is remembered.
    pub(crate) max_age_seconds: u64,
    /// How far in the future an `iat` may be.
    pub(crate) clock_skew_seconds: u64,
    /// Accept unsigned callbacks (legacy setups without secure callbacks).
    pub(crate) allow_unsigned: bool,
    /// With `allow_unsigned`: the only peers unsigned callbacks are accepted from (CIDRs).
    pub(crate) trusted_sources: Vec<String>,
    /// Sustained callbacks per minute from one source address.
    pub(crate) per_minute: u32,
    /// Burst of callbacks from one source address.
    pub(crate) burst: u32,
    /// `VONAGE_SESSION_CALLBACK_SECRET[_FILE]` (env only; redacted from `Debug`).
    #[serde(skip)]
    pub session_secret: Option<SecretString>,
    /// `VONAGE_ARCHIVE_CALLBACK_SECRET[_FILE]` (env only; redacted from `Debug`).
    #[serde(skip)]
    pub archive_secret: Option<SecretString>,
    /// `trusted_sources`, parsed at load.
    #[serde(skip)]
    pub(crate) trusted_source_nets: Arc<[IpNet]>,
}
