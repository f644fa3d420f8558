//! Who is calling and what they may do (PRODUCT §8): the `Caller` extractor (anonymous, or a
//! verified bearer JWT), scopes per operation, per-caller rate limits, and the token policy
//! that decides role, lifetime and connection data on the server, never from the request
//! alone. With JWT auth the connection data binds the caller's identity:
//! `{"sub":…,"name":…,"data":<client data>}`.
//!
//! - `jwt` / `jwks`: verification and the identity provider's keys;
//! - `scope`: `video:create`, `video:join`, `video:moderate`, `video:admin`;
//! - `rate_limit`: the create and join budgets; `client_ip`: who the caller is without a token;
//! - `cors`: which browser origins may call.

pub mod client_ip;
pub mod cors;
pub mod jwks;
pub mod jwt;
pub mod rate_limit;
mod scope;

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::config::{AuthMode, Config, ConfigError, TOKEN_TTL_HARD_CAP_SECONDS};
use crate::error::ApiError;
use crate::video::{Role, TokenGrant};
use client_ip::TrustedProxies;
use jwt::JwtVerifier;
pub use rate_limit::{Budget, CallerKey, RateLimited, RateLimits};
pub use scope::{Scope, Scopes};

/// The most connection data a token may carry (Vonage's documented limit).
const MAX_DATA_CHARS: usize = 1000;
/// The longest space-joined initial layout class list.
const MAX_LAYOUT_CHARS: usize = 1000;

/// Token options a caller may ask for; every field is optional.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenRequest {
    /// `publisher` (default), `subscriber`, `moderator` or `publisheronly`.
    pub role: Option<Role>,
    /// Connection data other participants see (at most 1000 characters).
    #[schema(max_length = 1000)]
    pub data: Option<String>,
    /// Lifetime in seconds (default `tokens.default_ttl_seconds`, capped at `tokens.max_ttl_seconds`).
    #[schema(minimum = 1, maximum = 2592000)]
    pub ttl_seconds: Option<u64>,
    /// CSS classes for the stream's initial layout (at most 1000 characters joined).
    pub initial_layout_class_list: Option<Vec<String>>,
}

/// What a validated token request grants.
#[derive(Debug, Clone)]
pub struct Grant {
    /// Role granted.
    pub role: Role,
    /// Lifetime granted, after capping.
    pub ttl_seconds: u64,
    /// Connection data.
    pub data: Option<String>,
    /// Initial layout classes.
    pub initial_layout_class_list: Vec<String>,
}

impl Grant {
    /// The token grant for `session_id`.
    pub fn for_session<'a>(&'a self, session_id: &'a str) -> TokenGrant<'a> {
        TokenGrant {
            session_id,
            role: self.role,
            ttl_seconds: self.ttl_seconds,
            data: self.data.as_deref(),
            initial_layout_class_list: &self.initial_layout_class_list,
        }
    }
}

/// Who a JWT caller is, from its verified token.
#[derive(Debug, Clone)]
pub struct Identity {
    /// `sub`.
    pub subject: String,
    /// The display name claim (`auth.name_claim`), if present.
    pub name: Option<String>,
}

/// The caller of a request: anonymous (everyone shares the configured grant) or the bearer of
/// a verified token.
#[derive(Debug, Clone)]
pub struct Caller {
    identity: Option<Arc<Identity>>,
    scopes: Scopes,
    allowed_roles: Arc<[Role]>,
    key: CallerKey,
}

impl Caller {
    /// The verified identity (JWT auth only).
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_deref()
    }

    /// What the caller may do.
    pub fn scopes(&self) -> Scopes {
        self.scopes
    }

    /// The caller's rate-limit key: `sub`, else the client IP.
    pub fn key(&self) -> &CallerKey {
        &self.key
    }
}

/// Why an authenticated caller may not do something.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Refusal {
    /// The caller lacks the scope (403 `forbidden`).
    #[error("this call needs the {} scope", .0.as_str())]
    MissingScope(Scope),
    /// The caller spent its budget (429 `rate_limited`).
    #[error("too many requests")]
    RateLimited(RateLimited),
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::MissingScope(scope) => ApiError::Forbidden(scope),
            Refusal::RateLimited(limited) => ApiError::RateLimited(limited),
        }
    }
}

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
pub struct AuthPolicy(Arc<Policy>);

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
    pub fn new(config: &Config) -> Result<Self, ConfigError> {
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
        let trusted_proxies = TrustedProxies::parse(&auth.trusted_proxies).map_err(|message| {
            ConfigError::Invalid {
                key: "auth.trusted_proxies".into(),
                message,
            }
        })?;
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
            limits: RateLimits::new(&config.rate_limits),
        })))
    }

    /// Identifies the caller of a request: anonymous, or the bearer of a valid token. A missing
    /// token is a 401 with `WWW-Authenticate: Bearer`; a refused one a 401 with
    /// `error="invalid_token"`. The reason is logged, never answered.
    pub async fn authenticate(&self, parts: &Parts) -> Result<Caller, ApiError> {
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
                return Err(ApiError::Unauthenticated {
                    invalid_token: false,
                });
            }
            BearerToken::Malformed => {
                tracing::info!(client.ip = %ip, auth.reason = "malformed Authorization header", "caller refused");
                return Err(ApiError::Unauthenticated {
                    invalid_token: true,
                });
            }
        };
        let verified = verifier.verify(token).await.map_err(|reason| {
            tracing::info!(client.ip = %ip, auth.reason = %reason, "caller refused");
            ApiError::Unauthenticated {
                invalid_token: true,
            }
        })?;
        let allowed_roles = if verified.scopes.contains(Scope::Moderate) {
            policy.jwt_moderator_roles.clone()
        } else {
            policy.jwt_roles.clone()
        };
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
    pub fn authorize(&self, caller: &Caller, scope: Scope) -> Result<(), Refusal> {
        if !caller.scopes.contains(scope) {
            return Err(Refusal::MissingScope(scope));
        }
        let Some(limits) = &self.0.limits else {
            return Ok(());
        };
        let budget = match scope {
            Scope::Create => Budget::Create,
            Scope::Join | Scope::Moderate | Scope::Admin => Budget::Join,
        };
        limits
            .check(&caller.key, budget)
            .map_err(Refusal::RateLimited)
    }

    /// Validates `request` for `caller`; field names in errors start with `prefix`.
    pub fn grant(
        &self,
        caller: &Caller,
        request: &TokenRequest,
        prefix: &str,
    ) -> Result<Grant, ApiError> {
        let field = |name: &str| {
            if prefix.is_empty() {
                name.to_owned()
            } else {
                format!("{prefix}.{name}")
            }
        };
        let role = request.role.unwrap_or_default();
        if !caller.allowed_roles.contains(&role) {
            return Err(ApiError::RoleNotAllowed(role));
        }
        let ttl_seconds = match request.ttl_seconds {
            None => self.0.default_ttl_seconds,
            Some(ttl) if (1..=TOKEN_TTL_HARD_CAP_SECONDS).contains(&ttl) => {
                ttl.min(self.0.max_ttl_seconds)
            }
            Some(_) => {
                return Err(ApiError::invalid(
                    field("ttlSeconds"),
                    "must be between 1 and 2592000 (30 days)",
                ));
            }
        };
        if let Some(data) = &request.data
            && data.chars().count() > MAX_DATA_CHARS
        {
            return Err(ApiError::invalid(
                field("data"),
                "must be at most 1000 characters",
            ));
        }
        let data = match caller.identity() {
            None => request.data.clone(),
            Some(identity) => {
                let bound = bind_identity(identity, request.data.as_deref());
                if bound.chars().count() > MAX_DATA_CHARS {
                    return Err(ApiError::invalid(
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
            return Err(ApiError::invalid(
                field("initialLayoutClassList"),
                "classes must be non-empty and contain no whitespace",
            ));
        }
        let joined: usize = classes.iter().map(|c| c.chars().count()).sum::<usize>()
            + classes.len().saturating_sub(1);
        if joined > MAX_LAYOUT_CHARS {
            return Err(ApiError::invalid(
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

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    AuthPolicy: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        AuthPolicy::from_ref(state).authenticate(parts).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml: &str) -> Config {
        use figment::providers::{Format as _, Toml};
        let env = |_: &str| None;
        let sources = crate::config::Sources {
            config_dir: std::path::PathBuf::from("config"),
            env: &env,
            process_env_overrides: false,
        };
        let figment = Config::figment(&sources)
            .unwrap()
            .merge(Toml::string(
                "[auth]\nmode = \"anonymous\"\n[tokens]\nmax_ttl_seconds = 604800\n",
            ))
            .merge(Toml::string(toml));
        Config::from_figment(figment, &env).unwrap()
    }

    fn anonymous(policy: &AuthPolicy) -> Caller {
        Caller {
            identity: None,
            scopes: policy.0.anonymous_scopes,
            allowed_roles: policy.0.anonymous_roles.clone(),
            key: CallerKey::from_ip([127, 0, 0, 1].into()),
        }
    }

    fn policy() -> (AuthPolicy, Caller) {
        let policy = AuthPolicy::new(&config("")).unwrap();
        let caller = anonymous(&policy);
        (policy, caller)
    }

    fn jwt_caller(policy: &AuthPolicy, scopes: &[Scope], name: Option<&str>) -> Caller {
        let scopes: Scopes = scopes.iter().copied().collect();
        Caller {
            identity: Some(Arc::new(Identity {
                subject: "user-42".into(),
                name: name.map(str::to_owned),
            })),
            scopes,
            allowed_roles: if scopes.contains(Scope::Moderate) {
                policy.0.jwt_moderator_roles.clone()
            } else {
                policy.0.jwt_roles.clone()
            },
            key: CallerKey::Subject("user-42".into()),
        }
    }

    #[test]
    fn anonymous_callers_get_create_and_join_by_default_and_the_grant_is_configurable() {
        let (policy, caller) = policy();
        assert!(policy.authorize(&caller, Scope::Create).is_ok());
        assert!(policy.authorize(&caller, Scope::Join).is_ok());
        assert!(matches!(
            policy.authorize(&caller, Scope::Admin),
            Err(Refusal::MissingScope(Scope::Admin))
        ));
        let narrow = AuthPolicy::new(&config(
            "[auth]\nanonymous_scopes = [\"video:join\", \"video:moderate\"]",
        ))
        .unwrap();
        let caller = anonymous(&narrow);
        assert!(narrow.authorize(&caller, Scope::Create).is_err());
        let moderator = TokenRequest {
            role: Some(Role::Moderator),
            ..Default::default()
        };
        assert!(
            narrow.grant(&caller, &moderator, "").is_ok(),
            "video:moderate in the anonymous grant allows moderator tokens"
        );
    }

    #[test]
    fn jwt_callers_need_video_moderate_for_moderator_tokens_and_their_identity_is_bound() {
        let (policy, _) = policy();
        let moderator = TokenRequest {
            role: Some(Role::Moderator),
            data: Some("{\"sub\":\"admin\"}".into()),
            ..Default::default()
        };
        let plain = jwt_caller(&policy, &[Scope::Join], Some("Ada"));
        assert!(matches!(
            policy.grant(&plain, &moderator, ""),
            Err(ApiError::RoleNotAllowed(Role::Moderator))
        ));
        let moderating = jwt_caller(&policy, &[Scope::Join, Scope::Moderate], Some("Ada"));
        let grant = policy.grant(&moderating, &moderator, "").unwrap();
        assert_eq!(
            grant.data.as_deref(),
            Some(r#"{"sub":"user-42","name":"Ada","data":"{\"sub\":\"admin\"}"}"#)
        );
        let anonymous_name = jwt_caller(&policy, &[Scope::Join], None);
        let grant = policy
            .grant(&anonymous_name, &TokenRequest::default(), "")
            .unwrap();
        assert_eq!(
            grant.data.as_deref(),
            Some(r#"{"sub":"user-42","name":null,"data":null}"#)
        );
        let long = TokenRequest {
            data: Some("x".repeat(990)),
            ..Default::default()
        };
        let Err(ApiError::InvalidRequest { field, .. }) = policy.grant(&plain, &long, "token")
        else {
            panic!("the bound data is over 1000 characters")
        };
        assert_eq!(field, "token.data");
    }

    #[test]
    fn bearer_tokens_are_read_from_one_authorization_header() {
        let parts = |values: &[&str]| {
            let mut request = axum::http::Request::builder();
            for value in values {
                request = request.header("authorization", *value);
            }
            request.body(()).unwrap().into_parts().0
        };
        assert!(matches!(
            bearer_token(&parts(&["Bearer abc.def.ghi"])),
            BearerToken::Present("abc.def.ghi")
        ));
        assert!(matches!(
            bearer_token(&parts(&["bearer  abc "])),
            BearerToken::Present("abc")
        ));
        assert!(matches!(bearer_token(&parts(&[])), BearerToken::Absent));
        assert!(matches!(
            bearer_token(&parts(&["Basic dXNlcjpwYXNz"])),
            BearerToken::Absent
        ));
        assert!(matches!(
            bearer_token(&parts(&["Bearer"])),
            BearerToken::Malformed
        ));
        assert!(matches!(
            bearer_token(&parts(&["Bearer a", "Bearer b"])),
            BearerToken::Malformed
        ));
    }

    #[test]
    fn defaults_are_a_publisher_for_a_day() {
        let (policy, caller) = policy();
        let grant = policy
            .grant(&caller, &TokenRequest::default(), "token")
            .unwrap();
        assert_eq!(grant.role, Role::Publisher);
        assert_eq!(grant.ttl_seconds, 86_400);
    }

    #[test]
    fn anonymous_callers_cannot_be_moderators() {
        let (policy, caller) = policy();
        let request = TokenRequest {
            role: Some(Role::Moderator),
            ..Default::default()
        };
        assert!(matches!(
            policy.grant(&caller, &request, "token"),
            Err(ApiError::RoleNotAllowed(Role::Moderator))
        ));
    }

    #[test]
    fn ttl_is_capped_by_config_and_bounded_by_vonage() {
        let (policy, caller) = policy();
        let ask = |ttl| TokenRequest {
            ttl_seconds: Some(ttl),
            ..Default::default()
        };
        assert_eq!(
            policy
                .grant(&caller, &ask(60), "token")
                .unwrap()
                .ttl_seconds,
            60
        );
        assert_eq!(
            policy
                .grant(&caller, &ask(30 * 86_400), "token")
                .unwrap()
                .ttl_seconds,
            7 * 86_400
        );
        for bad in [0, 30 * 86_400 + 1] {
            let Err(ApiError::InvalidRequest { field, .. }) =
                policy.grant(&caller, &ask(bad), "token")
            else {
                panic!("{bad} must be refused")
            };
            assert_eq!(field, "token.ttlSeconds");
        }
    }

    #[test]
    fn data_and_layout_limits_name_the_field() {
        let (policy, caller) = policy();
        let long_data = TokenRequest {
            data: Some("x".repeat(1001)),
            ..Default::default()
        };
        let ok_data = TokenRequest {
            data: Some("é".repeat(1000)),
            ..Default::default()
        };
        let spaced = TokenRequest {
            initial_layout_class_list: Some(vec!["a b".into()]),
            ..Default::default()
        };
        let long_layout = TokenRequest {
            initial_layout_class_list: Some(vec!["x".repeat(600); 2]),
            ..Default::default()
        };
        assert!(policy.grant(&caller, &ok_data, "").is_ok());
        for (request, expected) in [
            (long_data, "data"),
            (spaced, "initialLayoutClassList"),
            (long_layout, "initialLayoutClassList"),
        ] {
            let Err(ApiError::InvalidRequest { field, .. }) = policy.grant(&caller, &request, "")
            else {
                panic!("{request:?} must be refused")
            };
            assert_eq!(field, expected);
        }
    }
}
