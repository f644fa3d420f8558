//! `POST /sessions` (create a session and a token) and `POST /sessions/{sessionId}/tokens`
//! (a token for an existing session of ours).

use std::net::Ipv4Addr;
use std::sync::LazyLock;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Caller, Grant, Scope, TokenRequest};
use crate::error::{ApiError, ApiResult, OptionalJson, PathParam};
use crate::metrics::Cached;
use crate::state::AppState;
use crate::video::{ArchiveMode, ArchiveResolution, MediaMode, Role, SessionOptions, session_id};

/// Options for a new session; every field is optional.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CreateSessionRequest {
    /// `routed` (default: the Media Router) or `relayed`.
    pub(crate) media_mode: Option<MediaMode>,
    /// `manual` (default) or `always` (routed only).
    pub(crate) archive_mode: Option<ArchiveMode>,
    /// IPv4 location hint.
    #[schema(value_type = Option<String>, format = Ipv4, example = "203.0.113.7")]
    pub(crate) location: Option<Ipv4Addr>,
    /// End-to-end encryption (routed only, not with `always`).
    pub(crate) e2ee: Option<bool>,
    /// Name of automatic archives, 1–80 characters (`always` only).
    #[schema(min_length = 1, max_length = 80)]
    pub(crate) archive_name: Option<String>,
    /// Resolution of automatic archives (`always` only).
    pub(crate) archive_resolution: Option<ArchiveResolution>,
    /// The caller's token.
    pub(crate) token: Option<TokenRequest>,
}

impl CreateSessionRequest {
    /// The validated options; errors name fields after `prefix` (e.g. `session.`).
    pub(crate) fn session_options_at(&self, prefix: &str) -> ApiResult<SessionOptions> {
        let options = SessionOptions {
            media_mode: self.media_mode.unwrap_or_default(),
            archive_mode: self.archive_mode.unwrap_or_default(),
            location: self.location,
            e2ee: self.e2ee.unwrap_or(false),
            archive_name: self.archive_name.clone(),
            archive_resolution: self.archive_resolution,
        };
        options
            .validate()
            .map_err(|e| ApiError::invalid(format!("{prefix}{}", e.field), e.message))?;
        Ok(options)
    }
}

/// A new session and the caller's token for it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreateSessionResponse {
    /// The Vonage session ID, for `OT.initSession(applicationId, sessionId)`.
    pub(crate) session_id: String,
    /// The Vonage application ID (or legacy API key).
    pub(crate) application_id: String,
    /// Same as `applicationId`, for front ends written against Vonage's sample servers.
    pub(crate) api_key: String,
    /// The client token, for `session.connect(token)`.
    pub(crate) token: String,
    /// The role the token grants.
    pub(crate) role: Role,
    /// When the token expires (RFC 3339, UTC).
    pub(crate) expires_at: String,
    /// The session's media mode.
    pub(crate) media_mode: MediaMode,
    /// The session's archive mode.
    pub(crate) archive_mode: ArchiveMode,
    /// Whether end-to-end encryption is on.
    pub(crate) e2ee: bool,
    /// The location hint, if any.
    pub(crate) location: Option<String>,
}

/// A token for an existing session.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TokenResponse {
    /// The client token, for `session.connect(token)`.
    pub(crate) token: String,
    /// The role the token grants.
    pub(crate) role: Role,
    /// When the token expires (RFC 3339, UTC).
    pub(crate) expires_at: String,
    /// The session the token is for.
    pub(crate) session_id: String,
    /// The Vonage application ID (or legacy API key).
    pub(crate) application_id: String,
    /// Same as `applicationId`.
    pub(crate) api_key: String,
}

/// Create a session (routed by default) and a token for the caller.
#[utoipa::path(
    post, path = "/sessions", tag = "sessions",
    request_body(content = Option<CreateSessionRequest>, description = "Optional; no body or `{}` means all defaults"),
    responses(
        (status = 201, description = "Session created", body = CreateSessionResponse),
    )
)]
pub(crate) async fn create_session(
    State(state): State<AppState>,
    caller: Caller,
    OptionalJson(body): OptionalJson<CreateSessionRequest>,
) -> ApiResult<(StatusCode, Json<CreateSessionResponse>)> {
    state.auth.authorize(&caller, Scope::Create).await?;
    let options = body.session_options_at("")?;
    // Decide the token before calling Vonage, so a refused role creates no session.
    let grant = state
        .auth
        .grant(&caller, &body.token.unwrap_or_default(), "token")?;
    let session_id = state.video.create_session(&options).await?;
    let (token, expires_at) = issue(&state, &session_id, &grant)?;
    let owner = state.tokens.owner().to_owned();
    Ok((
        StatusCode::CREATED,
        Json(CreateSessionResponse {
            session_id,
            application_id: owner.clone(),
            api_key: owner,
            token,
            role: grant.role,
            expires_at,
            media_mode: options.media_mode,
            archive_mode: options.archive_mode,
            e2ee: options.e2ee,
            location: options.location.map(|l| l.to_string()),
        }),
    ))
}

/// A token for an existing session owned by this service's credentials. Nothing is sent to Vonage.
#[utoipa::path(
    post, path = "/sessions/{sessionId}/tokens", tag = "sessions",
    params(("sessionId" = String, Path, description = "A session ID created with this service's credentials")),
    request_body(content = Option<TokenRequest>, description = "Optional token options"),
    responses(
        (status = 201, description = "Token minted", body = TokenResponse),
    )
)]
pub(crate) async fn create_token(
    State(state): State<AppState>,
    PathParam(session_id): PathParam<String>,
    caller: Caller,
    OptionalJson(body): OptionalJson<TokenRequest>,
) -> ApiResult<(StatusCode, Json<TokenResponse>)> {
    state.auth.authorize(&caller, Scope::Join).await?;
    if !session_id::is_owned_by(&session_id, state.tokens.owner()) {
        return Err(ApiError::SessionNotFound);
    }
    // A room's session: the room's policy holds here too (docs/room-lifecycle.md).
    let room = state
        .lifecycle
        .room_of(&session_id)
        .await
        .map_err(super::moderation::store_error)?;
    let policy = match &room {
        Some(room) => state
            .lifecycle
            .policy(room)
            .await
            .map_err(super::moderation::store_error)?,
        None => None,
    };
    let rules = super::seats::room_rules(policy.as_ref(), &caller)?;
    let grant = state.auth.grant_in_room(&caller, &body, "", &rules)?;
    let session_ban = [crate::moderation::store::BanTarget::Session(
        session_id.clone(),
    )];
    super::moderation::refuse_banned(&state, &caller, &session_ban).await?;
    if let Some(room) = &room {
        super::seats::take_seat(&state, room, &caller, policy.as_ref()).await?;
    }
    let (token, expires_at) = issue(&state, &session_id, &grant)?;
    let owner = state.tokens.owner().to_owned();
    Ok((
        StatusCode::CREATED,
        Json(TokenResponse {
            token,
            role: grant.role,
            expires_at,
            session_id,
            application_id: owner.clone(),
            api_key: owner,
        }),
    ))
}

/// Mints the token for `grant` and formats its expiry as RFC 3339.
pub(crate) fn issue(
    state: &AppState,
    session_id: &str,
    grant: &Grant,
) -> ApiResult<(String, String)> {
    static ISSUED: LazyLock<Cached<1, metrics::Counter>> = LazyLock::new(|| {
        Cached::new(|[role]| metrics::counter!("tokens_issued_total", "role" => role))
    });
    ISSUED.get([grant.role.as_str()]).increment(1);
    let token = state
        .tokens
        .mint(&grant.for_session(session_id))
        .map_err(anyhow::Error::from)?;
    let expires_at = super::rfc3339_from_millis(i128::from(token.expires_at) * 1000)
        .ok_or_else(|| anyhow::anyhow!("token expiry out of range"))?;
    Ok((token.token, expires_at))
}
