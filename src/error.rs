//! The HTTP error type: every failure becomes RFC 9457 `application/problem+json` with a stable
//! machine `code` (README "HTTP API") in one exhaustive match, rendered once, with the request ID that
//! `front` puts in scope for the request ([`with_request_id`]).
//! Also the JSON body extractor, so malformed bodies are problems too.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::path::ErrorKind as PathErrorKind;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

use crate::auth::{AuthError, RateLimited, Refusal, Scope};
use crate::rooms::RoomError;
use crate::video::archives::ArchiveError;
use crate::video::moderation::ModerationError;
use crate::video::{Role, VideoError};

/// Result of a handler.
pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// A field is missing, of the wrong type, unknown, or not allowed with another.
    #[error("{field}: {message}")]
    InvalidRequest {
        /// The JSON path of the field, e.g. `token.ttlSeconds`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The body is not JSON.
    #[error("the request body is not valid JSON: {0}")]
    InvalidJson(String),
    /// A body came with a content type other than JSON.
    #[error("request bodies must be application/json")]
    UnsupportedMediaType,
    /// The body is larger than `server.body_limit_bytes` (the limit, when known).
    #[error("{}", too_large(*.0))]
    PayloadTooLarge(Option<usize>),
    /// No bearer token, or one that failed verification (`invalid_token`). The reason is
    /// logged where it is found; the answer stays terse.
    #[error("this call needs a valid bearer token")]
    Unauthenticated {
        /// A token was sent but refused (`WWW-Authenticate: Bearer error="invalid_token"`).
        invalid_token: bool,
    },
    /// The caller's grant lacks the scope this call needs.
    #[error("this call needs the {} scope", .0.as_str())]
    Forbidden(Scope),
    /// The caller may not ask for this role.
    #[error("{}", role_refusal(*.0))]
    RoleNotAllowed(Role),
    /// The caller spent its rate-limit budget.
    #[error("too many requests; retry after the number of seconds in Retry-After")]
    RateLimited(RateLimited),
    /// The session ID is malformed or belongs to other credentials.
    #[error("no session with this ID belongs to this service's Vonage credentials")]
    SessionNotFound,
    /// No room with this name has a session.
    #[error("no room with this name exists")]
    RoomNotFound,
    /// The archive cannot change state: already recording, a relayed session, or a stop
    /// when not recording.
    #[error("the archive cannot do that now: {0}")]
    ArchiveConflict(String),
    /// No archive with this ID belongs to our credentials.
    #[error("no archive with this ID exists")]
    ArchiveNotFound,
    /// Nobody is connected to the session, so there is nothing to record.
    #[error("the session has no connected clients; archives start once someone is connected")]
    SessionNotActive,
    /// Another request is creating the room's session and did not finish in time.
    #[error("the room is being created by another request; try again")]
    RoomBusy,
    /// The room store (Redis) is unreachable or too slow.
    #[error("the room store is unavailable")]
    StoreUnavailable,
    /// No route has this path.
    #[error("no such resource")]
    NotFound,
    /// The route exists but not for this method.
    #[error("this method is not allowed on this resource")]
    MethodNotAllowed,
    /// A Vonage call failed.
    #[error(transparent)]
    Upstream(#[from] VideoError),
    /// The request took longer than `server.request_timeout_ms`.
    #[error("the request took too long")]
    Timeout,
    /// The request body did not arrive within `server.body_read_timeout_ms`.
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    /// Too many requests are in flight; shed instead of queued.
    #[error("the service is at capacity; try again")]
    Overloaded,
    /// A readiness check failed.
    #[error("not ready: {}", .0.join(", "))]
    NotReady(Vec<&'static str>),
    /// A bug or an unexpected failure; the detail stays in the logs.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
    // Moderation (docs/moderation.md).
    /// The connection is not connected to the session (any more).
    #[error("no connection with this ID is connected to the session")]
    ConnectionNotFound,
    /// The session has no stream with this ID.
    #[error("no stream with this ID is published in the session")]
    StreamNotFound,
    /// A moderation call on a session nobody is connected to.
    #[error("the session has no connected clients")]
    NobodyConnected,
    /// A signal's `type` or `data` is larger than Vonage accepts.
    #[error("{0}")]
    SignalTooLarge(&'static str),
    /// The caller's identity is banned from this room or session.
    #[error("you have been removed from this room and may not rejoin it for now")]
    Banned,
    // Room policies (docs/room-lifecycle.md).
    /// Every seat of the room is taken (live connections plus recently issued tokens).
    #[error(
        "the room is full: all {max} seats are taken or held by tokens issued in the last rooms.seat_hold_seconds"
    )]
    RoomFull {
        /// The room's `maxParticipants`.
        max: u32,
    },
    /// The room's `notBefore` is still ahead.
    #[error("the room opens at {not_before}")]
    RoomNotOpen {
        /// When it opens (RFC 3339).
        not_before: String,
        /// When it closes (RFC 3339), if it does.
        expires_at: Option<String>,
    },
    /// The room's `expiresAt` has passed.
    #[error("the room closed at {expires_at}")]
    RoomClosed {
        /// When it closed (RFC 3339).
        expires_at: String,
    },
    /// The room's policy does not allow the role.
    #[error("the role \"{}\" is not allowed in this room (its policy's allowedRoles)", .0.as_str())]
    RoleNotAllowedInRoom(Role),
    // Vonage callbacks (docs/callbacks.md).
    /// A callback failed verification (signature, hash, issuer, owner, age or replay); the
    /// reason is logged, never answered.
    #[error("the callback could not be verified")]
    CallbackUnauthorized,
    /// A callback arrived unsigned and unsigned callbacks are not accepted (from this source):
    /// 503 so that Vonage retries it, signed.
    #[error("unsigned callbacks are not accepted; Vonage retries them signed")]
    CallbackUnsigned,
    /// No signature secret is configured for this kind of callback.
    #[error("callbacks of this kind cannot be verified: no signature secret is configured")]
    CallbacksNotConfigured,
}

/// `server.body_limit_bytes`, put on every request (`app::middleware_stack`) so that a 413 can
/// name the limit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimit(pub usize);

fn too_large(limit: Option<usize>) -> String {
    match limit {
        Some(limit) => format!(
            "the request body is larger than the limit of {limit} bytes (server.body_limit_bytes)"
        ),
        None => "the request body is too large".to_owned(),
    }
}

fn role_refusal(role: Role) -> String {
    if role == Role::Moderator {
        format!(
            "a \"moderator\" token needs the {} scope, which this caller does not have",
            Scope::Moderate.as_str()
        )
    } else {
        format!(
            "the role \"{}\" is not one this caller may ask for (for anonymous callers: auth.anonymous_roles)",
            role.as_str()
        )
    }
}

impl ApiError {
    /// A 400 naming `field`.
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidRequest {
            field: field.into(),
            message: message.into(),
        }
    }

    /// HTTP status and stable code, in one exhaustive match.
    pub(crate) fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::InvalidRequest { .. } => (StatusCode::BAD_REQUEST, "invalid_request"),
            ApiError::InvalidJson(_) => (StatusCode::BAD_REQUEST, "invalid_json"),
            ApiError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::Unauthenticated { .. } => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::RoleNotAllowed(_) => (StatusCode::FORBIDDEN, "role_not_allowed"),
            ApiError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::SessionNotFound => (StatusCode::NOT_FOUND, "session_not_found"),
            ApiError::RoomNotFound => (StatusCode::NOT_FOUND, "room_not_found"),
            ApiError::ArchiveConflict(_) => (StatusCode::CONFLICT, "archive_conflict"),
            ApiError::ArchiveNotFound => (StatusCode::NOT_FOUND, "archive_not_found"),
            ApiError::SessionNotActive => (StatusCode::CONFLICT, "session_not_active"),
            ApiError::RoomBusy => (StatusCode::SERVICE_UNAVAILABLE, "room_busy"),
            ApiError::StoreUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Upstream(error) => match error {
                VideoError::Timeout => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
                VideoError::Unreachable { .. }
                | VideoError::Unavailable { .. }
                | VideoError::CircuitOpen { .. } => {
                    (StatusCode::SERVICE_UNAVAILABLE, "upstream_unavailable")
                }
                VideoError::Saturated => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
                VideoError::AuthRejected { .. } => {
                    (StatusCode::BAD_GATEWAY, "upstream_auth_failed")
                }
                VideoError::Rejected { .. } | VideoError::InvalidResponse => {
                    (StatusCode::BAD_GATEWAY, "upstream_rejected")
                }
                VideoError::Credentials(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            },
            ApiError::Timeout => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
            ApiError::RequestTimeout => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            ApiError::NotReady(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            ApiError::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            ApiError::ConnectionNotFound => (StatusCode::NOT_FOUND, "connection_not_found"),
            ApiError::StreamNotFound => (StatusCode::NOT_FOUND, "stream_not_found"),
            ApiError::NobodyConnected => (StatusCode::CONFLICT, "session_not_active"),
            ApiError::SignalTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "signal_too_large"),
            ApiError::Banned => (StatusCode::FORBIDDEN, "banned"),
            ApiError::RoomFull { .. } => (StatusCode::CONFLICT, "room_full"),
            ApiError::RoomNotOpen { .. } => (StatusCode::FORBIDDEN, "room_not_open"),
            ApiError::RoomClosed { .. } => (StatusCode::FORBIDDEN, "room_closed"),
            ApiError::RoleNotAllowedInRoom(_) => (StatusCode::FORBIDDEN, "role_not_allowed"),
            ApiError::CallbackUnauthorized => (StatusCode::UNAUTHORIZED, "callback_unauthorized"),
            ApiError::CallbackUnsigned => (StatusCode::SERVICE_UNAVAILABLE, "callback_unsigned"),
            ApiError::CallbacksNotConfigured => {
                (StatusCode::SERVICE_UNAVAILABLE, "callbacks_not_configured")
            }
        }
    }

    /// What the caller is told. Server-side failures say what happened, never why in detail:
    /// Vonage's body and our internals stay in the logs.
    fn detail(&self) -> String {
        match self {
            ApiError::Upstream(VideoError::Credentials(_)) | ApiError::Internal(_) => {
                "an internal error occurred; quote the requestId when reporting it".to_owned()
            }
            other => other.to_string(),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Upstream(VideoError::Unavailable { retry_after, .. }) => {
                Some(retry_after.unwrap_or(Duration::from_secs(1)))
            }
            ApiError::Upstream(VideoError::CircuitOpen { retry_after }) => Some(*retry_after),
            ApiError::Upstream(VideoError::Saturated) | ApiError::Overloaded => {
                Some(Duration::from_secs(1))
            }
            ApiError::RateLimited(limited) => Some(limited.retry_after),
            ApiError::Upstream(VideoError::Unreachable { .. })
            | ApiError::NotReady(_)
            | ApiError::RoomBusy
            | ApiError::StoreUnavailable => Some(Duration::from_secs(1)),
            ApiError::CallbackUnsigned | ApiError::CallbacksNotConfigured => {
                Some(Duration::from_secs(5))
            }
            _ => None,
        }
    }

    /// Logs a server-side failure once, where it is turned into a response.
    fn log(&self) {
        match self {
            ApiError::Upstream(VideoError::AuthRejected { status, detail }) => tracing::error!(
                vonage.status = status,
                vonage.code = detail.code,
                vonage.message = detail.message.as_deref(),
                "Vonage rejected our credentials: check VONAGE_APPLICATION_ID/VONAGE_PRIVATE_KEY or OPENTOK_API_KEY/OPENTOK_API_SECRET"
            ),
            ApiError::Upstream(
                VideoError::Rejected { status, detail }
                | VideoError::Unavailable { status, detail, .. },
            ) => tracing::warn!(
                vonage.status = status,
                vonage.code = detail.code,
                vonage.message = detail.message.as_deref(),
                "Vonage refused the call"
            ),
            ApiError::Upstream(error) => {
                tracing::warn!(error = %error, source = ?std::error::Error::source(error), "Vonage call failed")
            }
            ApiError::Internal(error) => tracing::error!(error = ?error, "request failed"),
            _ => {}
        }
    }
}

impl From<ArchiveError> for ApiError {
    fn from(error: ArchiveError) -> Self {
        match error {
            // Vonage's wording (logged by `video::archives` where it is found) holds no secret,
            // but the caller gets our own stable description.
            ArchiveError::Conflict(_) => ApiError::ArchiveConflict(
                "the session is relayed, already being recorded, or the archive is not recording"
                    .to_owned(),
            ),
            ArchiveError::NotFound => ApiError::ArchiveNotFound,
            ArchiveError::SessionNotFound => ApiError::SessionNotFound,
            ArchiveError::SessionNotActive => ApiError::SessionNotActive,
            ArchiveError::Video(error) => ApiError::Upstream(error),
        }
    }
}

impl From<ModerationError> for ApiError {
    fn from(error: ModerationError) -> Self {
        match error {
            ModerationError::ConnectionNotFound => ApiError::ConnectionNotFound,
            ModerationError::StreamNotFound => ApiError::StreamNotFound,
            ModerationError::SessionNotActive => ApiError::NobodyConnected,
            ModerationError::SignalTooLarge => ApiError::SignalTooLarge(
                "Vonage refused the signal as too large (type at most 128 bytes, data at most 8 kB)",
            ),
            ModerationError::Video(error) => ApiError::Upstream(error),
        }
    }
}

impl From<RoomError> for ApiError {
    fn from(error: RoomError) -> Self {
        match error {
            RoomError::Busy => ApiError::RoomBusy,
            // Logged by `rooms` where it happens.
            RoomError::Store(_) => ApiError::StoreUnavailable,
            RoomError::Upstream(error) => ApiError::Upstream(error),
            RoomError::Refused(refusal) => refusal.into(),
        }
    }
}

/// The problem document (RFC 9457) with our `code` and `requestId` extensions.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Problem {
    /// A URI naming the problem kind: `urn:vonage-sessions:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The HTTP status text.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong, for people.
    pub detail: String,
    /// Stable machine-readable code, e.g. `invalid_request`.
    pub code: String,
    /// The `x-request-id` of the request, for support.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// `room_not_open`: when the room opens (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    /// `room_not_open` / `room_closed`: when the room closes (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// `room_full`: the room's seats.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_participants: Option<u32>,
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Unauthenticated { invalid_token } => {
                ApiError::Unauthenticated { invalid_token }
            }
            AuthError::RoleNotAllowed(role) => ApiError::RoleNotAllowed(role),
            AuthError::RoleNotAllowedInRoom(role) => ApiError::RoleNotAllowedInRoom(role),
            AuthError::InvalidRequest { field, message } => {
                ApiError::InvalidRequest { field, message }
            }
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::MissingScope(scope) => ApiError::Forbidden(scope),
            Refusal::RateLimited(limited) => ApiError::RateLimited(limited),
        }
    }
}

/// The `Caller` extractor's rejection answers like every other error.
impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            self.log();
        }
        let problem = Problem {
            kind: format!("urn:vonage-sessions:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: self.detail(),
            code: code.to_owned(),
            request_id: REQUEST_ID.try_with(|id| id.to_string()).ok(),
            not_before: None,
            expires_at: None,
            max_participants: None,
        };
        let problem = match &self {
            ApiError::RoomNotOpen {
                not_before,
                expires_at,
            } => Problem {
                not_before: Some(not_before.clone()),
                expires_at: expires_at.clone(),
                ..problem
            },
            ApiError::RoomClosed { expires_at } => Problem {
                expires_at: Some(expires_at.clone()),
                ..problem
            },
            ApiError::RoomFull { max } => Problem {
                max_participants: Some(*max),
                ..problem
            },
            _ => problem,
        };
        let mut response = problem_response(status, &problem);
        if let Some(after) = self.retry_after() {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from((after.as_secs_f64().ceil() as u64).max(1)),
            );
        }
        match &self {
            // RFC 6750 §3: no error code when the request carried no token.
            ApiError::Unauthenticated { invalid_token } => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(if *invalid_token {
                        "Bearer error=\"invalid_token\""
                    } else {
                        "Bearer"
                    }),
                );
            }
            ApiError::RateLimited(limited) => response.headers_mut().extend(limited.headers()),
            _ => {}
        }
        // A marker for `front`: this answer is already a problem (rendered once, above).
        response.extensions_mut().insert(problem);
        response
    }
}

tokio::task_local! {
    /// The ID of the request being handled, set by `front` around everything below it.
    static REQUEST_ID: Box<str>;
}

/// Runs `handling` (a request's handling, in `front`) with `request_id` in scope, so that every
/// problem rendered meanwhile carries it.
pub(crate) async fn with_request_id<F: std::future::Future>(
    request_id: Box<str>,
    handling: F,
) -> F::Output {
    REQUEST_ID.scope(request_id, handling).await
}

fn problem_response(status: StatusCode, problem: &Problem) -> Response {
    let body = serde_json::to_vec(problem).unwrap_or_default();
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        )],
        body,
    )
        .into_response()
}

/// Path parameters whose rejections are problems naming the parameter (e.g. invalid UTF-8 in
/// a percent-encoded room name), instead of axum's plain-text 400.
#[derive(Debug, Clone)]
pub(crate) struct PathParam<T>(pub(crate) T);

impl<S, T> FromRequestParts<S> for PathParam<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(path_problem(&rejection)),
        }
    }
}

fn path_problem(rejection: &PathRejection) -> ApiError {
    let unreadable = || ApiError::invalid("path", "a path parameter could not be read");
    let PathRejection::FailedToDeserializePathParams(error) = rejection else {
        return unreadable();
    };
    match error.kind() {
        PathErrorKind::InvalidUtf8InPathParam { key } => {
            ApiError::invalid(camel_case(key), "is not valid UTF-8 once percent-decoded")
        }
        PathErrorKind::ParseErrorAtKey { key, .. } => {
            ApiError::invalid(camel_case(key), "has the wrong type")
        }
        _ => unreadable(),
    }
}

/// Route keys are snake_case (`session_id`); the API names them in camelCase (`sessionId`).
fn camel_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// A JSON body that may be absent: no body (or `{}`, or `null`) means `T::default()`. Errors are
/// problems naming the field (via `serde_path_to_error`).
#[derive(Debug, Clone, Default)]
pub(crate) struct OptionalJson<T>(pub(crate) T);

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Default,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = request.headers().get(header::CONTENT_TYPE).cloned();
        let limit = request.extensions().get::<BodyLimit>().map(|limit| limit.0);
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge(limit)
                } else {
                    ApiError::InvalidJson("the request body could not be read".to_owned())
                }
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(T::default()));
        }
        if !content_type.as_ref().is_some_and(is_json) {
            return Err(ApiError::UnsupportedMediaType);
        }
        // A JSON `null` is no body too, as the OpenAPI document's nullable request bodies say;
        // anything else must be an object (serde would take an array for a struct).
        let body = bytes.trim_ascii_start();
        if !(body.starts_with(b"{") || body.starts_with(b"null")) {
            serde_json::from_slice::<serde::de::IgnoredAny>(&bytes)
                .map_err(|e| ApiError::InvalidJson(e.to_string()))?;
            return Err(ApiError::invalid("body", "must be a JSON object"));
        }
        parse_json::<Option<T>>(&bytes).map(|body| Self(body.unwrap_or_default()))
    }
}

/// `deserialize_with` for an optional nested object: `null` or absent is `None`, an object is
/// parsed, anything else (an array, which serde would take for a struct) is refused, as the
/// OpenAPI document says.
pub(crate) fn object_only<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: DeserializeOwned,
{
    use serde::Deserialize as _;
    use serde::de::Error as _;
    match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::Null => Ok(None),
        object @ serde_json::Value::Object(_) => serde_json::from_value(object)
            .map(Some)
            .map_err(D::Error::custom),
        _ => Err(D::Error::custom("must be a JSON object")),
    }
}

fn is_json(value: &HeaderValue) -> bool {
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        || (essence.len() > 5 && essence[essence.len() - 5..].eq_ignore_ascii_case("+json"))
}

/// Parses JSON, telling syntax errors (`invalid_json`) from data errors (`invalid_request`).
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    // Syntax first, so a truncated body is `invalid_json` even if a bad field came before the cut.
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
        .map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let field = if path == "." { "body".to_owned() } else { path };
        match inner.classify() {
            serde_json::error::Category::Data => ApiError::invalid(field, strip_position(&inner)),
            // The syntax is known good (checked above), so a "syntax" error here is serde_json
            // refusing a value of the wrong type for an enum (`{"role": 1}`): the field is wrong.
            serde_json::error::Category::Syntax => {
                ApiError::invalid(field, "has the wrong type for this field")
            }
            _ => ApiError::InvalidJson(inner.to_string()),
        }
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    Ok(value)
}

/// serde_json appends " at line 1 column 20"; the field path says more to a caller.
fn strip_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(index) => text[..index].to_owned(),
        None => text,
    }
}
