//! Who is calling and what they may have: the `Caller` extractor and the token policy that
//! decides role, lifetime and connection data on the server, never from the request alone.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::config::{AuthConfig, AuthMode, TOKEN_TTL_HARD_CAP_SECONDS, TokensConfig};
use crate::error::ApiError;
use crate::video::{Role, TokenGrant};

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

/// The authenticated caller. With `auth.mode = "anonymous"` everyone is the same caller.
#[derive(Debug, Clone)]
pub struct Caller {
    allowed_roles: Arc<[Role]>,
}

/// Caller policy built from config, shared by every request.
#[derive(Debug, Clone)]
pub struct AuthPolicy {
    anonymous_roles: Arc<[Role]>,
    default_ttl_seconds: u64,
    max_ttl_seconds: u64,
}

impl AuthPolicy {
    /// Builds the policy. `auth.mode` must have been chosen (checked at startup).
    pub fn new(auth: &AuthConfig, tokens: &TokensConfig) -> Self {
        debug_assert!(
            auth.mode != AuthMode::Unset,
            "serve checks auth.mode before building"
        );
        Self {
            anonymous_roles: auth.anonymous_roles.clone().into(),
            default_ttl_seconds: tokens.default_ttl_seconds.min(tokens.max_ttl_seconds),
            max_ttl_seconds: tokens.max_ttl_seconds,
        }
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
            None => self.default_ttl_seconds,
            Some(ttl) if (1..=TOKEN_TTL_HARD_CAP_SECONDS).contains(&ttl) => {
                ttl.min(self.max_ttl_seconds)
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
            data: request.data.clone(),
            initial_layout_class_list: classes,
        })
    }
}

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    AuthPolicy: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(_parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let policy = AuthPolicy::from_ref(state);
        Ok(Caller {
            allowed_roles: policy.anonymous_roles,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> (AuthPolicy, Caller) {
        let auth = AuthConfig {
            mode: AuthMode::Anonymous,
            anonymous_roles: vec![Role::Publisher, Role::Subscriber, Role::PublisherOnly],
        };
        let tokens = TokensConfig {
            default_ttl_seconds: 86_400,
            max_ttl_seconds: 7 * 86_400,
            legacy_format: crate::video::LegacyTokenFormat::Jwt,
        };
        let policy = AuthPolicy::new(&auth, &tokens);
        let caller = Caller {
            allowed_roles: policy.anonymous_roles.clone(),
        };
        (policy, caller)
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
