//! The caller policy built from config: who the caller is (anonymous, or a verified bearer
//! JWT), what they may do, and the token grant the server decides for them.

use std::sync::Arc;

use axum::http::header;
use axum::http::request::Parts;
use serde::Serialize;

use super::AuthError;
use super::client_ip::TrustedProxies;
use super::jwt::JwtVerifier;
use super::{
    Budget, Caller, CallerKey, Grant, Identity, MAX_DATA_CHARS, MAX_LAYOUT_CHARS, RateLimits,
    Refusal, Scope, Scopes, TokenRequest,
};
use crate::config::{AuthMode, Config, ConfigError, TOKEN_TTL_HARD_CAP_SECONDS};
use crate::video::Role;

enum Mode {
    Anonymous,
    Jwt(JwtVerifier),
}

struct Policy {
    mode: Mode,
    anonymous_scopes: Scopes,
    anonymous_roles: Arc<[Role]>,
    jwt_roles: Arc<[Role]>,
    jwt_moderator_roles: Arc<[Role]>,
    default_ttl_seconds: u64,
    max_ttl_seconds: u64,
    trusted_proxies: TrustedProxies,
    limits: Option<RateLimits>,
}

/// Caller policy built from config, shared by every request. Cheap to clone.
#[derive(Clone)]
pub(crate) struct AuthPolicy(Arc<Policy>);

impl std::fmt::Debug for AuthPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match &self.0.mode {
            Mode::Anonymous => "anonymous",
            Mode::Jwt(_) => "jwt",
        };
        f.debug_struct("AuthPolicy")
            .field("mode", &mode)
            .field("anonymous_scopes", &self.0.anonymous_scopes)
            .field("limits", &self.0.limits)
            .finish_non_exhaustive()
    }
}

/// Roles any caller may have; `moderator` needs `video:moderate`.
const BASE_ROLES: [Role; 3] = [Role::Publisher, Role::Subscriber, Role::PublisherOnly];

impl AuthPolicy {
    /// Builds the policy from a validated config. `auth.mode` must have been chosen (`serve`
    /// checks it first). With a JWKS URL, starts fetching the keys in the background.
    #[cfg(test)]
    pub(crate) fn new(config: &Config) -> Result<Self, ConfigError> {
        Self::with_redis(config, None)
    }

    /// Like `new`; with the deployment's Redis (`rooms.store = "redis"`), the rate limits are
    /// shared by every replica (see `rate_limit`).
    pub(crate) fn with_redis(
        config: &Config,
        redis: Option<crate::redis_conn::RedisConnection>,
    ) -> Result<Self, ConfigError> {
        let auth = &config.auth;
        let mode = match auth.mode {
            AuthMode::Jwt => {
                let verifier = JwtVerifier::new(auth)?;
                verifier.prefetch();
                Mode::Jwt(verifier)
            }
            AuthMode::Anonymous | AuthMode::Unset => Mode::Anonymous,
        };
        let anonymous_scopes: Scopes = auth.anonymous_scopes.iter().copied().collect();
        let mut anonymous_roles = auth.anonymous_roles.clone();
        if anonymous_scopes.contains(Scope::Moderate) && !anonymous_roles.contains(&Role::Moderator)
        {
            anonymous_roles.push(Role::Moderator);
        }
        let trusted_proxies = TrustedProxies::new(auth);
        Ok(Self(Arc::new(Policy {
            mode,
            anonymous_scopes,
            anonymous_roles: anonymous_roles.into(),
            jwt_roles: BASE_ROLES.to_vec().into(),
            jwt_moderator_roles: [BASE_ROLES.as_slice(), &[Role::Moderator]].concat().into(),
            default_ttl_seconds: config
                .tokens
                .default_ttl_seconds
                .min(config.tokens.max_ttl_seconds),
            max_ttl_seconds: config.tokens.max_ttl_seconds,
            trusted_proxies,
            limits: RateLimits::with_shared(
                &config.rate_limits,
                redis.map(|connection| {
                    (
                        connection,
                        config.rooms.key_prefix.as_str(),
                        std::time::Duration::from_millis(config.rooms.store_timeout_ms),
                    )
                }),
            ),
        })))
    }

    /// Identifies the caller of a request: anonymous, or the bearer of a valid token. A missing
    /// token is a 401 with `WWW-Authenticate: Bearer`; a refused one a 401 with
    /// `error="invalid_token"`. The reason is logged, never answered.
    pub(crate) async fn authenticate(&self, parts: &Parts) -> Result<Caller, AuthError> {
        let policy = &self.0;
        let ip = policy.trusted_proxies.client_ip(parts);
        let verifier = match &policy.mode {
            Mode::Anonymous => {
                return Ok(Caller {
                    identity: None,
                    scopes: policy.anonymous_scopes,
                    allowed_roles: policy.anonymous_roles.clone(),
                    key: CallerKey::from_ip(ip),
                });
            }
            Mode::Jwt(verifier) => verifier,
        };
        let token = match bearer_token(parts) {
            BearerToken::Present(token) => token,
            BearerToken::Absent => {
                tracing::debug!(client.ip = %ip, "no bearer token");
                return Err(AuthError::Unauthenticated {
                    invalid_token: false,
                });
            }
            BearerToken::Malformed => {
                tracing::info!(client.ip = %ip, auth.reason = "malformed Authorization header", "caller refused");
                return Err(AuthError::Unauthenticated {
                    invalid_token: true,
                });
            }
        };
        let verified = verifier.verify(token).await.map_err(|reason| {
            tracing::info!(client.ip = %ip, auth.reason = %reason, "caller refused");
            AuthError::Unauthenticated {
                invalid_token: true,
            }
        })?;
        let allowed_roles = if verified.scopes.contains(Scope::Moderate) {
            policy.jwt_moderator_roles.clone()
        } else {
            policy.jwt_roles.clone()
        };
        // Every later line of this request names its caller (the span is opened in `front`).
        tracing::Span::current().record("sub", verified.subject.as_str());
        Ok(Caller {
            key: CallerKey::Subject(verified.subject.as_str().into()),
            identity: Some(Arc::new(Identity {
                subject: verified.subject,
                name: verified.name,
            })),
            scopes: verified.scopes,
            allowed_roles,
        })
    }

    /// Checks that `caller` holds `scope`, then spends one call of the matching budget
    /// (creating: the create budget; everything else: the join budget).
    pub(crate) async fn authorize(&self, caller: &Caller, scope: Scope) -> Result<(), Refusal> {
        if !caller.scopes.contains(scope) {
            return Err(Refusal::MissingScope(scope));
        }
        let Some(limits) = &self.0.limits else {
            return Ok(());
        };
        let budget = match scope {
            Scope::Create => Budget::Create,
            Scope::Join | Scope::Moderate | Scope::Admin | Scope::ArchivesRead => Budget::Join,
        };
        limits
            .check(&caller.key, budget)
            .await
            .map_err(Refusal::RateLimited)
    }

    /// Validates `request` for `caller`; field names in errors start with `prefix`.
    pub(crate) fn grant(
        &self,
        caller: &Caller,
        request: &TokenRequest,
        prefix: &str,
    ) -> Result<Grant, AuthError> {
        self.grant_in_room(caller, request, prefix, &RoomRules::default())
    }

    /// Like [`AuthPolicy::grant`], within a room's policy (`docs/room-lifecycle.md`).
    pub(crate) fn grant_in_room(
        &self,
        caller: &Caller,
        request: &TokenRequest,
        prefix: &str,
        rules: &RoomRules,
    ) -> Result<Grant, AuthError> {
        let field = |name: &str| {
            if prefix.is_empty() {
                name.to_owned()
            } else {
                format!("{prefix}.{name}")
            }
        };
        let default_role = if rules.moderator {
            Role::Moderator
        } else {
            rules.default_role.unwrap_or_default()
        };
        let role = request.role.unwrap_or(default_role);
        let room_moderator = rules.moderator && role == Role::Moderator;
        if !caller.allowed_roles.contains(&role) && !room_moderator {
            return Err(AuthError::RoleNotAllowed(role));
        }
        if let Some(allowed) = &rules.allowed_roles
            && !allowed.contains(&role)
            && !room_moderator
        {
            return Err(AuthError::RoleNotAllowedInRoom(role));
        }
        let ttl_seconds = match request.ttl_seconds {
            None => self.0.default_ttl_seconds,
            Some(ttl) if (1..=TOKEN_TTL_HARD_CAP_SECONDS).contains(&ttl) => {
                ttl.min(self.0.max_ttl_seconds)
            }
            Some(_) => {
                return Err(AuthError::invalid(
                    field("ttlSeconds"),
                    "must be between 1 and 2592000 (30 days)",
                ));
            }
        };
        let ttl_seconds = rules
            .ttl_cap_seconds
            .map_or(ttl_seconds, |cap| ttl_seconds.min(cap.max(1)));
        if let Some(data) = &request.data
            && data.chars().count() > MAX_DATA_CHARS
        {
            return Err(AuthError::invalid(
                field("data"),
                "must be at most 1000 characters",
            ));
        }
        let data = match caller.identity() {
            None => request.data.clone(),
            Some(identity) => {
                let bound = bind_identity(identity, request.data.as_deref());
                if bound.chars().count() > MAX_DATA_CHARS {
                    return Err(AuthError::invalid(
                        field("data"),
                        "with the caller's identity ({\"sub\",\"name\",\"data\"}) the connection data must be at most 1000 characters",
                    ));
                }
                Some(bound)
            }
        };
        let classes = request
            .initial_layout_class_list
            .clone()
            .unwrap_or_default();
        if classes
            .iter()
            .any(|class| class.is_empty() || class.chars().any(char::is_whitespace))
        {
            return Err(AuthError::invalid(
                field("initialLayoutClassList"),
                "classes must be non-empty and contain no whitespace",
            ));
        }
        let joined: usize = classes.iter().map(|c| c.chars().count()).sum::<usize>()
            + classes.len().saturating_sub(1);
        if joined > MAX_LAYOUT_CHARS {
            return Err(AuthError::invalid(
                field("initialLayoutClassList"),
                "must be at most 1000 characters joined",
            ));
        }
        Ok(Grant {
            role,
            ttl_seconds,
            data,
            initial_layout_class_list: classes,
        })
    }
}

/// What a room's policy adds to a token grant.
#[derive(Debug, Clone, Default)]
pub(crate) struct RoomRules {
    /// The role when the request names none.
    pub(crate) default_role: Option<Role>,
    /// The only roles allowed (none: whatever the caller may have).
    pub(crate) allowed_roles: Option<Vec<Role>>,
    /// The caller is one of the room's moderators: `moderator` is allowed and the default.
    pub(crate) moderator: bool,
    /// Most seconds the token may live (until the room's `expiresAt`).
    pub(crate) ttl_cap_seconds: Option<u64>,
}

/// The connection data of a JWT caller's token: who they are, as the server verified it, and
/// the client's own data, nested so it cannot impersonate anyone.
fn bind_identity(identity: &Identity, data: Option<&str>) -> String {
    #[derive(Serialize)]
    struct Bound<'a> {
        sub: &'a str,
        name: Option<&'a str>,
        data: Option<&'a str>,
    }
    serde_json::to_string(&Bound {
        sub: &identity.subject,
        name: identity.name.as_deref(),
        data,
    })
    .unwrap_or_default()
}

enum BearerToken<'a> {
    Present(&'a str),
    Absent,
    Malformed,
}

/// The `Authorization: Bearer` token. Another scheme counts as no bearer token.
fn bearer_token(parts: &Parts) -> BearerToken<'_> {
    let mut values = parts.headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return if parts.headers.contains_key(header::AUTHORIZATION) {
            BearerToken::Malformed
        } else {
            BearerToken::Absent
        };
    };
    let Ok(value) = value.to_str() else {
        return BearerToken::Malformed;
    };
    let (scheme, token) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return BearerToken::Absent;
    }
    let token = token.trim();
    if token.is_empty() {
        BearerToken::Malformed
    } else {
        BearerToken::Present(token)
    }
}

#[cfg(test)]
mod tests;
