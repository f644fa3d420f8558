//! Named rooms: `POST /rooms/{room}/join` (get-or-create the room's session, plus a token),
//! `GET /rooms/{room}` and `DELETE /rooms/{room}`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Caller, Scope, TokenRequest};
use crate::error::{ApiError, ApiResult, OptionalJson, PathParam};
use crate::rooms::store::RoomRecord;
use crate::rooms::{MayCreateFuture, is_valid_room_name};
use crate::routes::sessions::{CreateSessionRequest, issue};
use crate::state::AppState;
use crate::video::Role;

/// A join: the caller's token options, and session options used only if this join creates the room.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JoinRoomRequest {
    /// The caller's token.
    pub token: Option<TokenRequest>,
    /// Options of the room's session, applied only when this call creates it (no `token` here).
    pub session: Option<CreateSessionRequest>,
}

/// The room's session and the caller's token.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JoinRoomResponse {
    /// The room name.
    pub room: String,
    /// True when this call created the room's session (status 201), false when it joined (200).
    pub created: bool,
    /// The room's Vonage session ID.
    pub session_id: String,
    /// The Vonage application ID (or legacy API key).
    pub application_id: String,
    /// Same as `applicationId`.
    pub api_key: String,
    /// The client token.
    pub token: String,
    /// The role the token grants.
    pub role: Role,
    /// When the token expires (RFC 3339, UTC).
    pub expires_at: String,
}

/// What a room maps to.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoomResponse {
    /// The room name.
    pub room: String,
    /// The room's Vonage session ID.
    pub session_id: String,
    /// When the session was created (RFC 3339, UTC).
    pub created_at: String,
    /// When someone last joined (RFC 3339, UTC).
    pub last_joined_at: String,
    /// The room's mute-all state (see `POST /rooms/{room}/mute`).
    pub mute_all: super::moderation::MuteStateResponse,
}

fn checked(room: &str) -> ApiResult<()> {
    if is_valid_room_name(room) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "room",
            "must be 1 to 128 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit",
        ))
    }
}

fn rfc3339_ms(epoch_ms: u64) -> String {
    super::rfc3339_from_millis(i128::from(epoch_ms)).unwrap_or_default()
}

/// Get-or-create the room's session and a token for the caller. Exactly one session per room,
/// however many callers and replicas race.
#[utoipa::path(
    post, path = "/rooms/{room}/join", tag = "rooms",
    params(("room" = String, Path, description = "1–128 of A-Z a-z 0-9 . _ -, starting alphanumeric; case-sensitive")),
    request_body(content = Option<JoinRoomRequest>, description = "Optional"),
    responses(
        (status = 201, description = "This call created the room's session", body = JoinRoomResponse),
        (status = 200, description = "Joined the existing session", body = JoinRoomResponse),
    )
)]
pub async fn join_room(
    State(state): State<AppState>,
    PathParam(room): PathParam<String>,
    caller: Caller,
    OptionalJson(body): OptionalJson<JoinRoomRequest>,
) -> ApiResult<(StatusCode, Json<JoinRoomResponse>)> {
    checked(&room)?;
    state.auth.authorize(&caller, Scope::Join).await?;
    let session = body.session.unwrap_or_default();
    if session.token.is_some() {
        return Err(ApiError::invalid(
            "session.token",
            "the token goes in the top-level `token` field",
        ));
    }
    let options = session.session_options_at("session.")?;
    let room_ban = [crate::moderation::store::BanTarget::Room(room.clone())];
    super::moderation::refuse_banned(&state, &caller, &room_ban).await?;
    let grant = state
        .auth
        .grant(&caller, &body.token.unwrap_or_default(), "token")?;
    // Asked only if this call would create the room's session.
    let may_create =
        || Box::pin(state.auth.authorize(&caller, Scope::Create)) as MayCreateFuture<'_>;
    let joined = state.rooms.join(&room, &options, &may_create).await?;
    // A ban against the room's session alone (made under /sessions/{id}) holds here too.
    let session_ban = [crate::moderation::store::BanTarget::Session(
        joined.record.session_id.clone(),
    )];
    super::moderation::refuse_banned(&state, &caller, &session_ban).await?;
    let (token, expires_at) = issue(&state, &joined.record.session_id, &grant)?;
    let owner = state.tokens.owner().to_owned();
    let status = if joined.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(JoinRoomResponse {
            room,
            created: joined.created,
            session_id: joined.record.session_id,
            application_id: owner.clone(),
            api_key: owner,
            token,
            role: grant.role,
            expires_at,
        }),
    ))
}

/// What the room maps to.
#[utoipa::path(
    get, path = "/rooms/{room}", tag = "rooms",
    params(("room" = String, Path, description = "The room name")),
    responses(
        (status = 200, body = RoomResponse),
    )
)]
pub async fn get_room(
    State(state): State<AppState>,
    PathParam(room): PathParam<String>,
    caller: Caller,
) -> ApiResult<Json<RoomResponse>> {
    checked(&room)?;
    state.auth.authorize(&caller, Scope::Join).await?;
    let RoomRecord {
        session_id,
        created_at,
        last_joined_at,
    } = state
        .rooms
        .get(&room)
        .await?
        .ok_or(ApiError::RoomNotFound)?;
    let mute = state
        .moderation
        .mute(&session_id)
        .await
        .map_err(super::moderation::store_error)?;
    Ok(Json(RoomResponse {
        room,
        mute_all: super::moderation::MuteStateResponse::new(session_id.clone(), mute),
        session_id,
        created_at: rfc3339_ms(created_at),
        last_joined_at: rfc3339_ms(last_joined_at),
    }))
}

/// Forget the room's mapping; the next join creates a new session. Idempotent. Needs
/// `video:admin`.
#[utoipa::path(
    delete, path = "/rooms/{room}", tag = "rooms",
    params(("room" = String, Path, description = "The room name")),
    responses(
        (status = 204, description = "Forgotten"),
    )
)]
pub async fn delete_room(
    State(state): State<AppState>,
    PathParam(room): PathParam<String>,
    caller: Caller,
) -> ApiResult<StatusCode> {
    checked(&room)?;
    state.auth.authorize(&caller, Scope::Admin).await?;
    state.rooms.delete(&room).await?;
    Ok(StatusCode::NO_CONTENT)
}
