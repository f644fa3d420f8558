//! Who is calling and what they may do (README "Who may call"): the `Caller` extractor (anonymous, or a
//! verified bearer JWT), scopes per operation, per-caller rate limits, and the token policy
//! that decides role, lifetime and connection data on the server, never from the request
//! alone. With JWT auth the connection data binds the caller's identity:
//! `{"sub":…,"name":…,"data":<client data>}`.
//!
//! - `policy`: the `AuthPolicy` built from config: authentication, scopes, roles, token grants;
//! - `jwt` / `jwks`: verification and the identity provider's keys;
//! - `scope`: `video:create`, `video:join`, `video:moderate`, `video:admin`;
//! - `rate_limit`: the create and join budgets; `client_ip`: who the caller is without a token.
//!
//! Which browser origins may call is `front::cors`.

mod budget;
pub(crate) mod client_ip;
pub(crate) mod jwks;
pub(crate) mod jwt;
mod keys;
mod policy;
pub(crate) mod rate_limit;
mod scope;
mod shared_limit;

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::video::{Role, TokenGrant};
pub(crate) use policy::{AuthPolicy, RoomRules};
pub(crate) use rate_limit::{Budget, CallerKey, RateLimited, RateLimits};
pub use scope::Scope;
pub(crate) use scope::Scopes;

/// The most connection data a token may carry (Vonage's documented limit).
const MAX_DATA_CHARS: usize = 1000;
/// The longest space-joined initial layout class list.
const MAX_LAYOUT_CHARS: usize = 1000;

/// Token options a caller may ask for; every field is optional.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct TokenRequest {
    /// `publisher` (default), `subscriber`, `moderator` or `publisheronly`.
    pub(crate) role: Option<Role>,
    /// Connection data other participants see (at most 1000 characters).
    #[schema(max_length = 1000)]
    pub(crate) data: Option<String>,
    /// Lifetime in seconds, 1 to 2592000 (Vonage's 30 days; anything else is a 400). Default
    /// `tokens.default_ttl_seconds`; a lifetime over `tokens.max_ttl_seconds` is capped to it.
    #[schema(minimum = 1, maximum = 2592000)]
    #[serde(default, deserialize_with = "crate::vocab::whole_number")]
    pub(crate) ttl_seconds: Option<u64>,
    /// CSS classes for the stream's initial layout (at most 1000 characters joined).
    pub(crate) initial_layout_class_list: Option<Vec<String>>,
}

/// What a validated token request grants.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    /// Role granted.
    pub(crate) role: Role,
    /// Lifetime granted, after capping.
    pub(crate) ttl_seconds: u64,
    /// Connection data.
    pub(crate) data: Option<String>,
    /// Initial layout classes.
    pub(crate) initial_layout_class_list: Vec<String>,
}

impl Grant {
    /// The token grant for `session_id`.
    pub(crate) fn for_session<'a>(&'a self, session_id: &'a str) -> TokenGrant<'a> {
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
pub(crate) struct Identity {
    /// `sub`.
    pub(crate) subject: String,
    /// The display name claim (`auth.name_claim`), if present.
    pub(crate) name: Option<String>,
}

/// The caller of a request: anonymous (everyone shares the configured grant) or the bearer of
/// a verified token.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    identity: Option<Arc<Identity>>,
    scopes: Scopes,
    allowed_roles: Arc<[Role]>,
    key: CallerKey,
}

impl Caller {
    /// The verified identity (JWT auth only).
    pub(crate) fn identity(&self) -> Option<&Identity> {
        self.identity.as_deref()
    }

    /// What the caller may do.
    pub(crate) fn scopes(&self) -> Scopes {
        self.scopes
    }
}

/// Why an authenticated caller may not do something.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum Refusal {
    /// The caller lacks the scope (403 `forbidden`).
    #[error("this call needs the {} scope", .0.as_str())]
    MissingScope(Scope),
    /// The caller spent its budget (429 `rate_limited`).
    #[error("too many requests")]
    RateLimited(RateLimited),
}

/// Why `auth` turned a request away: who the caller is, or what they asked a token for.
/// `error` makes the HTTP answer of it (`ApiError`), in one place.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AuthError {
    /// No bearer token, or one that failed verification (`invalid_token`); the reason is
    /// logged where it is found.
    #[error("this call needs a valid bearer token")]
    Unauthenticated {
        /// A token was sent but refused.
        invalid_token: bool,
    },
    /// The caller may not ask for this role.
    #[error("the caller may not ask for the role {}", .0.as_str())]
    RoleNotAllowed(Role),
    /// The room's policy does not allow this role (`allowedRoles`).
    #[error("the room does not allow the role {}", .0.as_str())]
    RoleNotAllowedInRoom(Role),
    /// A token request field is out of range.
    #[error("{field}: {message}")]
    InvalidRequest {
        /// The JSON path of the field, e.g. `token.ttlSeconds`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

impl AuthError {
    fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidRequest {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    AuthPolicy: FromRef<S>,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        AuthPolicy::from_ref(state).authenticate(parts).await
    }
}
