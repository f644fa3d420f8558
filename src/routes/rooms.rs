//! Named rooms: `POST /rooms/{room}/join` (get-or-create the room's session, plus a token),
//! `GET /rooms/{room}` (with presence), `PUT /rooms/{room}` (the room's policy) and
//! `DELETE /rooms/{room}`. Policies and presence: `docs/room-lifecycle.md`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Caller, Scope, TokenRequest};
use crate::error::{ApiError, ApiResult, OptionalJson, PathParam};
use crate::lifecycle::policy::{Policy, RoomPolicy};
use crate::lifecycle::store::PresenceView;
use crate::rooms::store::RoomRecord;
use crate::rooms::{MayCreateFuture, is_valid_room_name};
use crate::routes::seats::{room_rules, take_seat};
use crate::routes::sessions::{CreateSessionRequest, issue};
use crate::state::AppState;
use crate::video::Role;

/// A join: the caller's token options, and session options used only if this join creates the room.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct JoinRoomRequest {
    /// The caller's token.
    #[serde(default, deserialize_with = "crate::error::object_only")]
    pub(crate) token: Option<TokenRequest>,
    /// Options of the room's session, applied only when this call creates it (no `token` here).
    #[serde(default, deserialize_with = "crate::error::object_only")]
    pub(crate) session: Option<CreateSessionRequest>,
    /// The room's policy, stored only when the room has neither a session nor a policy yet
    /// (so only by the join that creates it; needs `video:create`), then enforced like any.
    #[serde(default, deserialize_with = "crate::error::object_only")]
    pub(crate) policy: Option<RoomPolicy>,
}

/// The room's session and the caller's token.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct JoinRoomResponse {
    /// The room name.
    pub(crate) room: String,
    /// True when this call created the room's session (status 201), false when it joined (200).
    pub(crate) created: bool,
    /// The room's Vonage session ID.
    pub(crate) session_id: String,
    /// The Vonage application ID (or legacy API key).
    pub(crate) application_id: String,
    /// Same as `applicationId`.
    pub(crate) api_key: String,
    /// The client token.
    pub(crate) token: String,
    /// The role the token grants.
    pub(crate) role: Role,
    /// When the token expires (RFC 3339, UTC).
    pub(crate) expires_at: String,
}

/// What a room maps to.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RoomResponse {
    /// The room name.
    pub(crate) room: String,
    /// The room's Vonage session ID.
    pub(crate) session_id: String,
    /// When the session was created (RFC 3339, UTC).
    pub(crate) created_at: String,
    /// When someone last joined (RFC 3339, UTC).
    pub(crate) last_joined_at: String,
    /// The room's mute-all state (see `POST /rooms/{room}/mute`).
    pub(crate) mute_all: super::moderation::MuteStateResponse,
    /// `open`, `notYetOpen` (before `notBefore`), `closed` (from `expiresAt`) or `empty`
    /// (open, nobody connected and no seat held).
    pub(crate) state: RoomState,
    /// Live connections (from Vonage's callbacks and reconciliation).
    pub(crate) participants: u64,
    /// Seats held by tokens issued in the last `rooms.seat_hold_seconds` not connected yet.
    pub(crate) held_seats: u64,
    /// The live connections.
    pub(crate) connections: Vec<ParticipantResponse>,
    /// The published streams.
    pub(crate) streams: Vec<RoomStreamResponse>,
    /// The last connection, stream or join seen (RFC 3339, UTC); null if none.
    pub(crate) last_active_at: Option<String>,
    /// The room's policy; null if it has none.
    pub(crate) policy: Option<RoomPolicy>,
}

/// Where a room is in its life (`docs/room-lifecycle.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) enum RoomState {
    /// Tokens are issued.
    Open,
    /// Before the policy's `notBefore`.
    NotYetOpen,
    /// From the policy's `expiresAt`: nobody may join, everyone was disconnected.
    Closed,
    /// Open, but nobody is connected and no seat is held: retired after
    /// `rooms.empty_retire_seconds`.
    Empty,
}

/// A live connection.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ParticipantResponse {
    /// The Vonage connection ID.
    pub(crate) connection_id: String,
    /// The caller's `sub` bound into its token (JWT auth); null for anonymous callers and for
    /// connections only Vonage's connection list told us about.
    pub(crate) sub: Option<String>,
    /// The caller's display name, if its token carried one.
    pub(crate) name: Option<String>,
    /// When it connected (RFC 3339, UTC).
    pub(crate) joined_at: String,
}

/// A published stream.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RoomStreamResponse {
    /// Stream ID.
    pub(crate) stream_id: String,
    /// The publishing connection.
    pub(crate) connection_id: String,
    /// `camera`, `screen` or `custom`; null if Vonage did not say.
    pub(crate) video_type: Option<String>,
    /// The publisher's name for it, if any.
    pub(crate) name: Option<String>,
}

/// A room's policy, as stored.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RoomPolicyResponse {
    /// The room name.
    pub(crate) room: String,
    /// The policy in force.
    pub(crate) policy: RoomPolicy,
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
pub(crate) async fn join_room(
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
    let new_policy = body
        .policy
        .as_ref()
        .map(|policy| policy.validate("policy."))
        .transpose()?;
    if new_policy.is_some() && !caller.scopes().contains(Scope::Create) {
        return Err(ApiError::Forbidden(Scope::Create));
    }
    let room_ban = [crate::moderation::store::BanTarget::Room(room.clone())];
    super::moderation::refuse_banned(&state, &caller, &room_ban).await?;
    let policy = match &new_policy {
        Some(policy) => {
            state
                .lifecycle
                .store()
                .put_policy(&room, policy, true)
                .await
                .map_err(super::moderation::store_error)?
                .0
        }
        None => state
            .lifecycle
            .policy(&room)
            .await
            .map_err(super::moderation::store_error)?,
    };
    let rules = room_rules(policy.as_ref(), &caller)?;
    let grant =
        state
            .auth
            .grant_in_room(&caller, &body.token.unwrap_or_default(), "token", &rules)?;
    // Asked only if this call would create the room's session.
    let may_create =
        || Box::pin(state.auth.authorize(&caller, Scope::Create)) as MayCreateFuture<'_>;
    let joined = state.rooms.join(&room, &options, &may_create).await?;
    // A ban against the room's session alone (made under /sessions/{id}) holds here too.
    let session_ban = [crate::moderation::store::BanTarget::Session(
        joined.record.session_id.clone(),
    )];
    super::moderation::refuse_banned(&state, &caller, &session_ban).await?;
    state
        .lifecycle
        .track(&room, &joined.record.session_id)
        .await
        .map_err(super::moderation::store_error)?;
    take_seat(&state, &room, &caller, policy.as_ref()).await?;
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
pub(crate) async fn get_room(
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
    let presence = state
        .lifecycle
        .presence(&room)
        .await
        .map_err(super::moderation::store_error)?;
    let policy = state
        .lifecycle
        .policy(&room)
        .await
        .map_err(super::moderation::store_error)?;
    let room_state = room_state(policy.as_ref(), &presence, crate::moderation::now_ms());
    let PresenceView {
        connections,
        streams,
        holds,
        last_active_at,
        ..
    } = presence;
    Ok(Json(RoomResponse {
        room,
        mute_all: super::moderation::MuteStateResponse::new(session_id.clone(), mute),
        session_id,
        created_at: rfc3339_ms(created_at),
        last_joined_at: rfc3339_ms(last_joined_at),
        state: room_state,
        participants: connections.len() as u64,
        held_seats: holds,
        connections: connections
            .into_iter()
            .map(|(id, entry)| ParticipantResponse {
                connection_id: id,
                sub: entry.sub,
                name: entry.name,
                joined_at: rfc3339_ms(entry.joined_at),
            })
            .collect(),
        streams: streams
            .into_iter()
            .map(|(id, entry)| RoomStreamResponse {
                stream_id: id,
                connection_id: entry.connection,
                video_type: entry.video_type,
                name: entry.name,
            })
            .collect(),
        last_active_at: last_active_at.map(rfc3339_ms),
        policy: policy.map(|policy| policy.to_api()),
    }))
}

fn room_state(policy: Option<&Policy>, presence: &PresenceView, now: u64) -> RoomState {
    match policy.map(|policy| policy.check_open(now)) {
        Some(Err(ApiError::RoomNotOpen { .. })) => RoomState::NotYetOpen,
        Some(Err(_)) => RoomState::Closed,
        _ if presence.tracked && presence.connections.is_empty() && presence.holds == 0 => {
            RoomState::Empty
        }
        _ => RoomState::Open,
    }
}

/// Create or replace the room's policy. Needs `video:admin`. Does not create the room's
/// session (the first join does), so a room can be scheduled ahead.
#[utoipa::path(
    put, path = "/rooms/{room}", tag = "rooms",
    params(("room" = String, Path, description = "The room name")),
    request_body(content = Option<RoomPolicy>, description = "The whole policy (replaces any previous one); no body, `{}` or `null` is a policy that restricts nothing"),
    responses(
        (status = 200, description = "The policy in force", body = RoomPolicyResponse),
    )
)]
pub(crate) async fn put_room(
    State(state): State<AppState>,
    PathParam(room): PathParam<String>,
    caller: Caller,
    OptionalJson(body): OptionalJson<RoomPolicy>,
) -> ApiResult<Json<RoomPolicyResponse>> {
    checked(&room)?;
    state.auth.authorize(&caller, Scope::Admin).await?;
    let policy = body.validate("")?;
    let (stored, _) = state
        .lifecycle
        .store()
        .put_policy(&room, &policy, false)
        .await
        .map_err(super::moderation::store_error)?;
    tracing::info!(room, "room policy set");
    Ok(Json(RoomPolicyResponse {
        room,
        policy: stored.unwrap_or(policy).to_api(),
    }))
}

/// Forget the room: its mapping (the next join creates a new session), its policy and its
/// presence. Idempotent. Needs `video:admin`.
#[utoipa::path(
    delete, path = "/rooms/{room}", tag = "rooms",
    params(("room" = String, Path, description = "The room name")),
    responses(
        (status = 204, description = "Forgotten"),
    )
)]
pub(crate) async fn delete_room(
    State(state): State<AppState>,
    PathParam(room): PathParam<String>,
    caller: Caller,
) -> ApiResult<StatusCode> {
    checked(&room)?;
    state.auth.authorize(&caller, Scope::Admin).await?;
    let session_id = state
        .rooms
        .get(&room)
        .await?
        .map(|record| record.session_id);
    state.rooms.delete(&room).await?;
    state
        .lifecycle
        .forget(&room, session_id.as_deref())
        .await
        .map_err(super::moderation::store_error)?;
    Ok(StatusCode::NO_CONTENT)
}
