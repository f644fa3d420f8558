//! The checks `Config::load` runs after extraction that serde cannot express: ranges, and
//! settings that only make sense together.

use std::net::SocketAddr;
use std::sync::Arc;

use url::Url;

use super::{
    AuthMode, Config, ConfigError, IpNet, KeyType, PublicKey, RoomStoreKind, check_origin, invalid,
    key_type_of, parse_public_key_pem,
};

/// What `validate_auth` parsed, handed over so nothing parses it again.
pub(super) struct AuthParsed {
    pub(super) trusted_proxy_nets: Arc<[IpNet]>,
    pub(super) public_key: Option<PublicKey>,
    pub(super) jwks_url: Option<Url>,
}

impl Config {
    pub(super) fn validate_limits(&self) -> Result<(), ConfigError> {
        let checks = [
            ("server.max_in_flight", self.server.max_in_flight as u64),
            (
                "server.header_read_timeout_ms",
                self.server.header_read_timeout_ms,
            ),
            (
                "server.body_read_timeout_ms",
                self.server.body_read_timeout_ms,
            ),
            (
                "server.max_connections_per_ip",
                self.server.max_connections_per_ip as u64,
            ),
            (
                "server.max_in_flight_per_ip",
                self.server.max_in_flight_per_ip as u64,
            ),
            (
                "server.http2_max_concurrent_streams",
                u64::from(self.server.http2_max_concurrent_streams),
            ),
            (
                "server.http2_idle_timeout_ms",
                self.server.http2_idle_timeout_ms,
            ),
            (
                "server.http2_keep_alive_interval_ms",
                self.server.http2_keep_alive_interval_ms,
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
        if self.video.rest_jwt_reuse_seconds > super::REST_JWT_MAX_REUSE_SECONDS {
            return Err(invalid(
                "video.rest_jwt_reuse_seconds",
                "must be at most 120: a reused JWT must stay well inside its 180 s lifetime",
            ));
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

    /// `[auth]`, `[rate_limits]` and `[cors]`; hands over the parsed proxy ranges and key.
    pub(super) fn validate_auth(&self) -> Result<AuthParsed, ConfigError> {
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
        let trusted_proxy_nets = auth
            .trusted_proxies
            .iter()
            .map(|entry| entry.parse())
            .collect::<Result<Vec<IpNet>, _>>()
            .map_err(|message| invalid("auth.trusted_proxies", message))?;
        if auth.leeway_seconds > 300 {
            return Err(invalid("auth.leeway_seconds", "must be at most 300"));
        }
        let (public_key, jwks_url) = if auth.mode == AuthMode::Jwt {
            self.validate_jwt()?
        } else {
            (None, None)
        };
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
                check_origin(origin).map_err(|m| invalid("cors.allowed_origins", m))?;
            }
        }
        Ok(AuthParsed {
            trusted_proxy_nets: trusted_proxy_nets.into(),
            public_key,
            jwks_url,
        })
    }

    /// The key file's key and the JWKS URL, whichever is set.
    pub(super) fn validate_jwt(&self) -> Result<(Option<PublicKey>, Option<Url>), ConfigError> {
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
        let mut jwks_url = None;
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
            jwks_url = Some(url);
        }
        let mut public_key = None;
        if let Some(pem) = &auth.public_key_pem {
            let (parsed, kind) = parse_public_key_pem(pem.as_bytes())
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
            public_key = Some(PublicKey { key: parsed, kind });
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
        Ok((public_key, jwks_url))
    }

    /// `[callbacks]`; hands over the parsed `trusted_sources`.
    pub(super) fn validate_callbacks(&self) -> Result<Arc<[IpNet]>, ConfigError> {
        let callbacks = &self.callbacks;
        if !(60..=7 * 24 * 3600).contains(&callbacks.max_age_seconds) {
            return Err(invalid(
                "callbacks.max_age_seconds",
                "must be between 60 and 604800 (Vonage retries for up to 24 h: keep it above 86400)",
            ));
        }
        if callbacks.clock_skew_seconds > 300 {
            return Err(invalid(
                "callbacks.clock_skew_seconds",
                "must be at most 300",
            ));
        }
        if callbacks.per_minute == 0 || callbacks.burst == 0 {
            return Err(invalid(
                "callbacks",
                "per_minute and burst must be greater than 0",
            ));
        }
        let trusted_source_nets = callbacks
            .trusted_sources
            .iter()
            .map(|entry| entry.parse())
            .collect::<Result<Vec<IpNet>, _>>()
            .map_err(|message| invalid("callbacks.trusted_sources", message))?;
        for (name, secret) in [
            (super::SESSION_CALLBACK_SECRET, &callbacks.session_secret),
            (super::ARCHIVE_CALLBACK_SECRET, &callbacks.archive_secret),
        ] {
            use secrecy::ExposeSecret as _;
            if secret
                .as_ref()
                .is_some_and(|s| s.expose_secret().len() < 16)
            {
                return Err(invalid(name, "must be at least 16 bytes"));
            }
        }
        Ok(trusted_source_nets.into())
    }

    pub(super) fn validate_rooms(&self) -> Result<(), ConfigError> {
        let rooms = &self.rooms;
        if rooms.store == RoomStoreKind::Redis {
            validate_redis_topology(rooms)?;
        }
        if rooms.ttl_seconds == 0 || rooms.join_wait_ms == 0 || rooms.store_timeout_ms == 0 {
            return Err(invalid(
                "rooms",
                "ttl_seconds, join_wait_ms and store_timeout_ms must be greater than 0",
            ));
        }
        if rooms.seat_hold_seconds == 0 || rooms.empty_retire_seconds == 0 {
            return Err(invalid(
                "rooms",
                "seat_hold_seconds and empty_retire_seconds must be greater than 0",
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
}

/// With `rooms.store = "redis"`: exactly one of `redis_url`, `redis_sentinels` (with
/// `redis_sentinel_master`) and `redis_cluster_urls`, each URL a `redis://` or `rediss://` one.
/// Errors never quote a URL, which may carry a password.
fn validate_redis_topology(rooms: &super::RoomsConfig) -> Result<(), ConfigError> {
    use secrecy::ExposeSecret as _;
    let single = !rooms.redis_url.expose_secret().is_empty();
    let sentinel = !rooms.redis_sentinels.is_empty();
    let cluster = !rooms.redis_cluster_urls.is_empty();
    match u8::from(single) + u8::from(sentinel) + u8::from(cluster) {
        0 => {
            return Err(invalid(
                "rooms.redis_url",
                "is required with rooms.store = \"redis\" (or rooms.redis_sentinels, or rooms.redis_cluster_urls)",
            ));
        }
        1 => {}
        _ => {
            return Err(invalid(
                "rooms",
                "set only one of redis_url, redis_sentinels and redis_cluster_urls",
            ));
        }
    }
    let check = |key: &str, url: &str, schemes: &[&str]| {
        let parsed = Url::parse(url).map_err(|e| invalid(key, format!("is not a URL ({e})")))?;
        if schemes.contains(&parsed.scheme()) {
            Ok(())
        } else {
            Err(invalid(key, "must be a redis:// or rediss:// URL"))
        }
    };
    if single {
        check(
            "rooms.redis_url",
            rooms.redis_url.expose_secret(),
            &["redis", "rediss", "redis+unix", "unix"],
        )?;
    }
    for url in &rooms.redis_sentinels {
        check(
            "rooms.redis_sentinels",
            url.expose_secret(),
            &["redis", "rediss"],
        )?;
    }
    if sentinel && rooms.redis_sentinel_master.is_empty() {
        return Err(invalid(
            "rooms.redis_sentinel_master",
            "is required with rooms.redis_sentinels (the name the sentinels monitor)",
        ));
    }
    for url in &rooms.redis_cluster_urls {
        check(
            "rooms.redis_cluster_urls",
            url.expose_secret(),
            &["redis", "rediss"],
        )?;
    }
    Ok(())
}
