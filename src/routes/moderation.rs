//! Moderation from the server (`docs/moderation.md`): remove connections or whole participants
//! (optionally banning them), mute one stream or all, signal one connection or everyone, and
//! read the streams, each under `/sessions/{sessionId}/…` and under `/rooms/{room}/…` (which
//! resolves the room's session first). Every call is refused before Vonage is called when the
//! session is not ours or the caller may not moderate.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Caller, Refusal, Scope};
use crate::error::{ApiError, ApiResult, OptionalJson, Problem};
use crate::moderation::store::{Ban, BanTarget, MuteState};
use crate::rooms::RoomError;
use crate::rooms::is_valid_room_name;
use crate::rooms::store::StoreError;
use crate::state::AppState;
use crate::video::moderation::{
    MAX_SIGNAL_DATA_BYTES, MAX_SIGNAL_TYPE_BYTES, MuteAll, Signal, Stream,
};
use crate::video::session_id;

/// Force-mute all streams, or lift it.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MuteAllRequest {
    /// True (default) mutes every stream but the excluded ones, and every stream published
    /// later, until lifted; false lifts the mute state (streams already muted stay muted).
    pub active: Option<bool>,
    /// Streams left unmuted (at most 1000).
    pub excluded_stream_ids: Option<Vec<String>>,
}

/// A signal. `type` at most 128 bytes of `A-Z a-z 0-9 - _ ~`; `data` at most 8 kB.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalRequest {
    /// What clients filter on.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The payload (required).
    pub data: Option<String>,
}

/// A session's mute-all state.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MuteStateResponse {
    /// The session.
    pub session_id: String,
    /// True while every stream but the excluded ones is muted, new streams included.
    pub active: bool,
    /// Streams left unmuted.
    pub excluded_stream_ids: Vec<String>,
    /// When it was last switched through this service (RFC 3339, UTC); null if never.
    pub changed_at: Option<String>,
}

impl MuteStateResponse {
    /// The response for `state` (never set: inactive).
    pub fn new(session_id: String, state: Option<MuteState>) -> Self {
        match state {
            Some(state) => Self {
                session_id,
                active: state.active,
                excluded_stream_ids: state.excluded_stream_ids,
                changed_at: Some(rfc3339_ms(state.changed_at)),
            },
            None => Self {
                session_id,
                active: false,
                excluded_stream_ids: Vec::new(),
                changed_at: None,
            },
        }
    }
}

/// A published stream.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StreamResponse {
    /// Stream ID.
    pub id: String,
    /// `camera`, `screen` or `custom`; null if Vonage did not say.
    pub video_type: Option<String>,
    /// The publisher's name for it (may be empty).
    pub name: String,
    /// Layout classes.
    pub layout_class_list: Vec<String>,
}

impl From<Stream> for StreamResponse {
    fn from(stream: Stream) -> Self {
        Self {
            id: stream.id,
            video_type: stream.video_type,
            name: stream.name.unwrap_or_default(),
            layout_class_list: stream.layout_class_list,
        }
    }
}

/// The streams of a session.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StreamListResponse {
    /// How many.
    pub count: u64,
    /// The streams.
    pub items: Vec<StreamResponse>,
}

/// What removing a participant did.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemovedResponse {
    /// The participant's identity (JWT `sub`).
    pub sub: String,
    /// The connections force-disconnected.
    pub disconnected_connection_ids: Vec<String>,
    /// False when this service does not know who holds which connection (no presence
    /// tracking): nothing could be disconnected by identity.
    pub presence_tracked: bool,
    /// Whether a ban was recorded.
    pub banned: bool,
    /// Until when the ban holds (RFC 3339, UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub banned_until: Option<String>,
}

/// A ban.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BanResponse {
    /// The banned identity (JWT `sub`).
    pub sub: String,
    /// Who banned them.
    pub banned_by: Option<String>,
    /// When (RFC 3339, UTC).
    pub created_at: String,
    /// Until when (RFC 3339, UTC).
    pub expires_at: String,
}

impl From<Ban> for BanResponse {
    fn from(ban: Ban) -> Self {
        Self {
            sub: ban.sub,
            banned_by: ban.banned_by,
            created_at: rfc3339_ms(ban.created_at),
            expires_at: rfc3339_ms(ban.expires_at),
        }
    }
}

/// The live bans of a room or session.
#[derive(Debug, Serialize, ToSchema)]
pub struct BanListResponse {
    /// Oldest first.
    pub items: Vec<BanResponse>,
}

fn rfc3339_ms(epoch_ms: u64) -> String {
    super::rfc3339_from_millis(i128::from(epoch_ms)).unwrap_or_default()
}

/// What a moderation call addresses: a session of ours, maybe as a room's.
#[derive(Debug, Clone)]
struct Target {
    session_id: String,
    room: Option<String>,
}

impl Target {
    fn ban_targets(&self) -> Vec<BanTarget> {
        let mut targets = Vec::with_capacity(2);
        if let Some(room) = &self.room {
            targets.push(BanTarget::Room(room.clone()));
        }
        targets.push(BanTarget::Session(self.session_id.clone()));
        targets
    }
}

/// The room store failed: 503 `store_unavailable`.
pub(crate) fn store_error(error: StoreError) -> ApiError {
    RoomError::Store(error).into()
}

/// 403 `banned` if the caller's identity is banned from any of `targets`. Anonymous callers
/// cannot be banned by identity, so they are never refused here.
pub(crate) async fn refuse_banned(
    state: &AppState,
    caller: &Caller,
    targets: &[BanTarget],
) -> ApiResult<()> {
    let Some(identity) = caller.identity() else {
        return Ok(());
    };
    match state.moderation.ban_of(targets, &identity.subject).await {
        Ok(None) => Ok(()),
        Ok(Some(_)) => {
            metrics::counter!("moderation_banned_refusals_total").increment(1);
            Err(ApiError::Banned)
        }
        Err(error) => Err(store_error(error)),
    }
}

/// Counts a moderation action by its outcome (`ok` or the problem code).
fn record<T>(action: &'static str, result: ApiResult<T>) -> ApiResult<T> {
    let outcome = match &result {
        Ok(_) => "ok",
        Err(error) => error.status_and_code().1,
    };
    metrics::counter!("moderation_actions_total", "action" => action, "outcome" => outcome)
        .increment(1);
    result
}

/// Whether the caller is listed in the `moderators` of `room`'s policy
/// (`docs/room-lifecycle.md`). Anonymous callers have no `sub`, so never are.
async fn is_room_moderator(state: &AppState, room: &str, caller: &Caller) -> ApiResult<bool> {
    let Some(identity) = caller.identity() else {
        return Ok(false);
    };
    let policy = state.lifecycle.policy(room).await.map_err(store_error)?;
    Ok(policy.is_some_and(|policy| policy.is_moderator(&identity.subject)))
}

/// The caller may moderate `target`: `video:moderate`, or a moderator of its room. `scope`
/// is what else would do (`video:join` for one-connection signals when configured).
async fn authorize(
    state: &AppState,
    caller: &Caller,
    room: Option<&str>,
    alternative: Option<Scope>,
) -> ApiResult<()> {
    match state.auth.authorize(caller, Scope::Moderate).await {
        Ok(()) => Ok(()),
        Err(Refusal::MissingScope(missing)) => {
            let moderator = match room {
                Some(room) => is_room_moderator(state, room, caller).await?,
                None => false,
            };
            let allowed = moderator || alternative.is_some_and(|s| caller.scopes().contains(s));
            if allowed {
                // Spends the same budget a moderator would.
                Ok(state.auth.authorize(caller, Scope::Join).await?)
            } else {
                Err(ApiError::Forbidden(missing))
            }
        }
        Err(refusal) => Err(refusal.into()),
    }
}

fn session_target(state: &AppState, session_id: String) -> ApiResult<Target> {
    if session_id::is_owned_by(&session_id, state.tokens.owner()) {
        Ok(Target {
            session_id,
            room: None,
        })
    } else {
        Err(ApiError::SessionNotFound)
    }
}

async fn room_target(state: &AppState, room: String) -> ApiResult<Target> {
    if !is_valid_room_name(&room) {
        return Err(ApiError::invalid(
            "room",
            "must be 1 to 128 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit",
        ));
    }
    let record = state
        .rooms
        .get(&room)
        .await?
        .ok_or(ApiError::RoomNotFound)?;
    Ok(Target {
        session_id: record.session_id,
        room: Some(room),
    })
}

/// Connection and stream IDs are UUID-like; anything else (empty, dot segments, odd bytes)
/// cannot exist and is not sent upstream.
fn plausible_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
}

fn checked_connection(id: &str) -> ApiResult<()> {
    if plausible_id(id) {
        Ok(())
    } else {
        Err(ApiError::ConnectionNotFound)
    }
}

fn checked_stream(id: &str) -> ApiResult<()> {
    if plausible_id(id) {
        Ok(())
    } else {
        Err(ApiError::StreamNotFound)
    }
}

fn checked_sub(sub: &str) -> ApiResult<()> {
    if (1..=256).contains(&sub.chars().count()) {
        Ok(())
    } else {
        Err(ApiError::invalid("sub", "must be 1 to 256 characters"))
    }
}

/// `ban=true|false` (default false); nothing else.
fn ban_query(query: Option<String>) -> ApiResult<bool> {
    let mut ban = false;
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match (key.as_ref(), value.as_ref()) {
            ("ban", "true") => ban = true,
            ("ban", "false") => ban = false,
            ("ban", _) => return Err(ApiError::invalid("ban", "must be true or false")),
            (other, _) => {
                return Err(ApiError::invalid(
                    other.to_owned(),
                    "unknown query parameter",
                ));
            }
        }
    }
    Ok(ban)
}

impl SignalRequest {
    /// Vonage's limits, checked before sending: sizes (413) and the type's characters (400).
    fn into_signal(self) -> ApiResult<Signal> {
        let Some(data) = self.data else {
            return Err(ApiError::invalid("data", "is required"));
        };
        if data.len() > MAX_SIGNAL_DATA_BYTES {
            return Err(ApiError::SignalTooLarge(
                "data must be at most 8192 bytes (UTF-8)",
            ));
        }
        if let Some(kind) = &self.kind {
            if kind.len() > MAX_SIGNAL_TYPE_BYTES {
                return Err(ApiError::SignalTooLarge("type must be at most 128 bytes"));
            }
            if !kind
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~'))
            {
                return Err(ApiError::invalid(
                    "type",
                    "may only contain A-Z a-z 0-9 - _ ~",
                ));
            }
        }
        Ok(Signal {
            kind: self.kind.filter(|kind| !kind.is_empty()),
            data,
        })
    }
}

impl MuteAllRequest {
    fn into_mute(self) -> ApiResult<MuteAll> {
        let excluded = self.excluded_stream_ids.unwrap_or_default();
        if excluded.len() > 1000 {
            return Err(ApiError::invalid(
                "excludedStreamIds",
                "at most 1000 stream IDs",
            ));
        }
        if let Some(index) = excluded.iter().position(|id| !plausible_id(id)) {
            return Err(ApiError::invalid(
                format!("excludedStreamIds[{index}]"),
                "not a stream ID",
            ));
        }
        Ok(MuteAll {
            active: self.active.unwrap_or(true),
            excluded_stream_ids: excluded,
        })
    }
}

// The operations, shared by the session and room routes.

async fn do_remove_connection(
    state: &AppState,
    target: Target,
    connection_id: &str,
) -> ApiResult<StatusCode> {
    checked_connection(connection_id)?;
    state
        .video
        .force_disconnect(&target.session_id, connection_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn do_remove_participant(
    state: &AppState,
    caller: &Caller,
    target: Target,
    sub: &str,
    ban: bool,
) -> ApiResult<Json<RemovedResponse>> {
    checked_sub(sub)?;
    if ban && caller.identity().is_none() {
        return Err(ApiError::invalid(
            "ban",
            "bans are by identity and need auth.mode = \"jwt\"; anonymous callers have none",
        ));
    }
    // The ban first, so a rejoin racing the disconnects is already refused.
    let banned = if ban {
        let by = caller.identity().map(|identity| identity.subject.as_str());
        let ban = state
            .moderation
            .ban(&target.ban_targets(), sub, by)
            .await
            .map_err(store_error)?;
        tracing::info!(moderation.sub = sub, room = target.room.as_deref(), vonage.session_id = %target.session_id, "participant banned");
        Some(ban)
    } else {
        None
    };
    let connections = state
        .moderation
        .presence()
        .connections_of(&target.session_id, sub)
        .await
        .map_err(store_error)?;
    let Some(connections) = connections else {
        if banned.is_none() {
            return Err(ApiError::invalid(
                "sub",
                "this service does not track who holds which connection; remove connections by ID, or ban with ?ban=true",
            ));
        }
        return Ok(Json(RemovedResponse {
            sub: sub.to_owned(),
            disconnected_connection_ids: Vec::new(),
            presence_tracked: false,
            banned: true,
            banned_until: banned.map(|ban| rfc3339_ms(ban.expires_at)),
        }));
    };
    let mut disconnected = Vec::with_capacity(connections.len());
    for connection_id in connections {
        match state
            .video
            .force_disconnect(&target.session_id, &connection_id)
            .await
        {
            Ok(()) => disconnected.push(connection_id),
            // Gone already (left, or removed by another moderator).
            Err(crate::video::moderation::ModerationError::ConnectionNotFound) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(Json(RemovedResponse {
        sub: sub.to_owned(),
        disconnected_connection_ids: disconnected,
        presence_tracked: true,
        banned: banned.is_some(),
        banned_until: banned.map(|ban| rfc3339_ms(ban.expires_at)),
    }))
}

async fn do_mute_stream(
    state: &AppState,
    target: Target,
    stream_id: &str,
) -> ApiResult<StatusCode> {
    checked_stream(stream_id)?;
    state
        .video
        .mute_stream(&target.session_id, stream_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn do_mute_all(
    state: &AppState,
    caller: &Caller,
    target: Target,
    body: MuteAllRequest,
) -> ApiResult<Json<MuteStateResponse>> {
    let mute = body.into_mute()?;
    state.video.mute_all(&target.session_id, &mute).await?;
    let record = MuteState {
        active: mute.active,
        excluded_stream_ids: mute.excluded_stream_ids,
        changed_at: crate::moderation::now_ms(),
        changed_by: caller.identity().map(|identity| identity.subject.clone()),
    };
    // Vonage holds the state already; a store failure here only loses our view of it.
    if let Err(error) = state.moderation.set_mute(&target.session_id, &record).await {
        tracing::warn!(error = %error, "could not record the mute-all state");
    }
    Ok(Json(MuteStateResponse::new(
        target.session_id,
        Some(record),
    )))
}

async fn do_get_mute(state: &AppState, target: Target) -> ApiResult<Json<MuteStateResponse>> {
    let mute = state
        .moderation
        .mute(&target.session_id)
        .await
        .map_err(store_error)?;
    Ok(Json(MuteStateResponse::new(target.session_id, mute)))
}

async fn do_signal(
    state: &AppState,
    target: Target,
    connection_id: Option<&str>,
    body: SignalRequest,
) -> ApiResult<StatusCode> {
    if let Some(connection_id) = connection_id {
        checked_connection(connection_id)?;
    }
    let signal = body.into_signal()?;
    state
        .video
        .signal(&target.session_id, connection_id, &signal)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn do_list_streams(state: &AppState, target: Target) -> ApiResult<Json<StreamListResponse>> {
    let list = state.video.list_streams(&target.session_id).await?;
    let items: Vec<StreamResponse> = list.items.into_iter().map(Into::into).collect();
    Ok(Json(StreamListResponse {
        count: list.count.max(items.len() as u64),
        items,
    }))
}

async fn do_get_stream(
    state: &AppState,
    target: Target,
    stream_id: &str,
) -> ApiResult<Json<StreamResponse>> {
    checked_stream(stream_id)?;
    let stream = state
        .video
        .get_stream(&target.session_id, stream_id)
        .await?;
    Ok(Json(stream.into()))
}

async fn do_list_bans(state: &AppState, target: Target) -> ApiResult<Json<BanListResponse>> {
    let primary = target
        .ban_targets()
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a target has a ban key")))?;
    let bans = state.moderation.bans(&primary).await.map_err(store_error)?;
    Ok(Json(BanListResponse {
        items: bans.into_iter().map(Into::into).collect(),
    }))
}

async fn do_lift_ban(state: &AppState, target: Target, sub: &str) -> ApiResult<StatusCode> {
    checked_sub(sub)?;
    state
        .moderation
        .lift(&target.ban_targets(), sub)
        .await
        .map_err(store_error)?;
    tracing::info!(
        moderation.sub = sub,
        room = target.room.as_deref(),
        "ban lifted"
    );
    Ok(StatusCode::NO_CONTENT)
}

// Session routes.

/// Force-disconnect one connection (`video:moderate`).
#[utoipa::path(
    delete, path = "/sessions/{sessionId}/connections/{connectionId}", tag = "moderation",
    params(("sessionId" = String, Path, description = "A session of ours"), ("connectionId" = String, Path, description = "Vonage connection ID")),
    security((), ("bearer" = [])),
    responses(
        (status = 204, description = "Disconnected; a connectionDestroyed with reason forceDisconnected follows"),
        (status = 403, description = "forbidden: needs video:moderate", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "session_not_found or connection_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "upstream_auth_failed or upstream_rejected", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn remove_connection(
    State(state): State<AppState>,
    Path((session_id, connection_id)): Path<(String, String)>,
    caller: Caller,
) -> ApiResult<StatusCode> {
    record(
        "remove_connection",
        async {
            authorize(&state, &caller, None, None).await?;
            let target = session_target(&state, session_id)?;
            do_remove_connection(&state, target, &connection_id).await
        }
        .await,
    )
}

/// Remove a participant by identity: every connection of that `sub` (known from presence),
/// optionally banning them (`?ban=true`, JWT auth) (`video:moderate`).
#[utoipa::path(
    delete, path = "/sessions/{sessionId}/participants/{sub}", tag = "moderation",
    params(
        ("sessionId" = String, Path, description = "A session of ours"),
        ("sub" = String, Path, description = "The participant's identity (JWT sub)"),
        ("ban" = Option<bool>, Query, description = "Also ban them for moderation.ban_seconds (default false)"),
    ),
    security((), ("bearer" = [])),
    responses(
        (status = 200, body = RemovedResponse),
        (status = 400, description = "invalid_request (ban with anonymous auth; no presence tracking and no ban)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden: needs video:moderate", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "session_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "store_unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn remove_participant(
    State(state): State<AppState>,
    Path((session_id, sub)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    caller: Caller,
) -> ApiResult<Json<RemovedResponse>> {
    record(
        "remove_participant",
        async {
            authorize(&state, &caller, None, None).await?;
            let ban = ban_query(query)?;
            let target = session_target(&state, session_id)?;
            do_remove_participant(&state, &caller, target, &sub, ban).await
        }
        .await,
    )
}

/// Force-mute one stream's audio (`video:moderate`).
#[utoipa::path(
    post, path = "/sessions/{sessionId}/streams/{streamId}/mute", tag = "moderation",
    params(("sessionId" = String, Path, description = "A session of ours"), ("streamId" = String, Path, description = "Vonage stream ID")),
    security((), ("bearer" = [])),
    responses(
        (status = 204, description = "Muted"),
        (status = 403, description = "forbidden: needs video:moderate", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "session_not_found or stream_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "upstream_auth_failed or upstream_rejected", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn mute_stream(
    State(state): State<AppState>,
    Path((session_id, stream_id)): Path<(String, String)>,
    caller: Caller,
) -> ApiResult<StatusCode> {
    record(
        "mute_stream",
        async {
            authorize(&state, &caller, None, None).await?;
            let target = session_target(&state, session_id)?;
            do_mute_stream(&state, target, &stream_id).await
        }
        .await,
    )
}

/// Switch the session's mute-all state on (with optional exclusions) or off
/// (`video:moderate`).
#[utoipa::path(
    post, path = "/sessions/{sessionId}/mute", tag = "moderation",
    params(("sessionId" = String, Path, description = "A session of ours")),
    request_body(content = Option<MuteAllRequest>, description = "Optional: {} mutes everyone"),
    security((), ("bearer" = [])),
    responses(
        (status = 200, body = MuteStateResponse),
        (status = 400, description = "invalid_request or invalid_json", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden: needs video:moderate", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "session_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "session_not_active: nobody is connected", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn mute_all(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
    caller: Caller,
    OptionalJson(body): OptionalJson<MuteAllRequest>,
) -> ApiResult<Json<MuteStateResponse>> {
    record(
        "mute_all",
        async {
            authorize(&state, &caller, None, None).await?;
            let target = session_target(&state, session_id)?;
            do_mute_all(&state, &caller, target, body).await
        }
        .await,
    )
}

/// The session's mute-all state as last set through this service (`video:join`).
#[utoipa::path(
    get, path = "/sessions/{sessionId}/mute", tag = "moderation",
    params(("sessionId" = String, Path, description = "A session of ours")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, body = MuteStateResponse),
        (status = 404, description = "session_not_found", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_mute(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
    caller: Caller,
) -> ApiResult<Json<MuteStateResponse>> {
    state.auth.authorize(&caller, Scope::Join).await?;
    let target = session_target(&state, session_id)?;
    do_get_mute(&state, target).await
}

/// Signal everyone in the session (`video:moderate`).
#[utoipa::path(
    post, path = "/sessions/{sessionId}/signal", tag = "moderation",
    params(("sessionId" = String, Path, description = "A session of ours")),
    request_body = SignalRequest,
    security((), ("bearer" = [])),
    responses(
        (status = 204, description = "Sent"),
        (status = 400, description = "invalid_request (data missing, bad type characters) or invalid_json", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden: needs video:moderate", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "session_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "session_not_active: nobody is connected", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "signal_too_large: type over 128 bytes or data over 8 kB", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn signal_all(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
    caller: Caller,
    OptionalJson(body): OptionalJson<SignalRequest>,
) -> ApiResult<StatusCode> {
    record(
        "signal_all",
        async {
            authorize(&state, &caller, None, None).await?;
            let target = session_target(&state, session_id)?;
            do_signal(&state, target, None, body).await
        }
        .await,
    )
}

/// Signal one connection (`video:moderate`; `video:join` too with
/// `moderation.join_may_signal`).
#[utoipa::path(
    post, path = "/sessions/{sessionId}/connections/{connectionId}/signal", tag = "moderation",
    params(("sessionId" = String, Path, description = "A session of ours"), ("connectionId" = String, Path, description = "Vonage connection ID")),
    request_body = SignalRequest,
    security((), ("bearer" = [])),
    responses(
        (status = 204, description = "Sent"),
        (status = 400, description = "invalid_request or invalid_json", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden: needs video:moderate (or video:join with moderation.join_may_signal)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "session_not_found or connection_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "signal_too_large", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn signal_connection(
    State(state): State<AppState>,
    Path((session_id, connection_id)): Path<(String, String)>,
    caller: Caller,
    OptionalJson(body): OptionalJson<SignalRequest>,
) -> ApiResult<StatusCode> {
    record(
        "signal_connection",
        async {
            let join = state
                .moderation
                .settings()
                .join_may_signal
                .then_some(Scope::Join);
            authorize(&state, &caller, None, join).await?;
            let target = session_target(&state, session_id)?;
            do_signal(&state, target, Some(&connection_id), body).await
        }
        .await,
    )
}

/// The session's streams (`video:moderate`).
#[utoipa::path(
    get, path = "/sessions/{sessionId}/streams", tag = "moderation",
    params(("sessionId" = String, Path, description = "A session of ours")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, body = StreamListResponse),
        (status = 403, description = "forbidden: needs video:moderate", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "session_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "session_not_active", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_streams(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
    caller: Caller,
) -> ApiResult<Json<StreamListResponse>> {
    record(
        "list_streams",
        async {
            authorize(&state, &caller, None, None).await?;
            let target = session_target(&state, session_id)?;
            do_list_streams(&state, target).await
        }
        .await,
    )
}

/// One stream (`video:moderate`).
#[utoipa::path(
    get, path = "/sessions/{sessionId}/streams/{streamId}", tag = "moderation",
    params(("sessionId" = String, Path, description = "A session of ours"), ("streamId" = String, Path, description = "Vonage stream ID")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, body = StreamResponse),
        (status = 403, description = "forbidden: needs video:moderate", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "session_not_found or stream_not_found", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_stream(
    State(state): State<AppState>,
    Path((session_id, stream_id)): Path<(String, String)>,
    caller: Caller,
) -> ApiResult<Json<StreamResponse>> {
    record(
        "get_stream",
        async {
            authorize(&state, &caller, None, None).await?;
            let target = session_target(&state, session_id)?;
            do_get_stream(&state, target, &stream_id).await
        }
        .await,
    )
}

/// The session's live bans (`video:moderate`).
#[utoipa::path(
    get, path = "/sessions/{sessionId}/bans", tag = "moderation",
    params(("sessionId" = String, Path, description = "A session of ours")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, body = BanListResponse),
        (status = 403, description = "forbidden: needs video:moderate", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "session_not_found", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_bans(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
    caller: Caller,
) -> ApiResult<Json<BanListResponse>> {
    authorize(&state, &caller, None, None).await?;
    let target = session_target(&state, session_id)?;
    do_list_bans(&state, target).await
}

/// Lift a ban (`video:admin`). Idempotent.
#[utoipa::path(
    delete, path = "/sessions/{sessionId}/bans/{sub}", tag = "moderation",
    params(("sessionId" = String, Path, description = "A session of ours"), ("sub" = String, Path, description = "The banned identity")),
    security((), ("bearer" = [])),
    responses(
        (status = 204, description = "Lifted (or there was none)"),
        (status = 403, description = "forbidden: needs video:admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "session_not_found", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn lift_ban(
    State(state): State<AppState>,
    Path((session_id, sub)): Path<(String, String)>,
    caller: Caller,
) -> ApiResult<StatusCode> {
    record(
        "lift_ban",
        async {
            state.auth.authorize(&caller, Scope::Admin).await?;
            let target = session_target(&state, session_id)?;
            do_lift_ban(&state, target, &sub).await
        }
        .await,
    )
}

// Room routes: the same, after resolving the room's session.

/// Force-disconnect one connection of the room's session (`video:moderate` or a room moderator).
#[utoipa::path(
    delete, path = "/rooms/{room}/connections/{connectionId}", tag = "moderation",
    params(("room" = String, Path, description = "The room name"), ("connectionId" = String, Path, description = "Vonage connection ID")),
    security((), ("bearer" = [])),
    responses(
        (status = 204, description = "Disconnected"),
        (status = 403, description = "forbidden", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "room_not_found or connection_not_found", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn room_remove_connection(
    State(state): State<AppState>,
    Path((room, connection_id)): Path<(String, String)>,
    caller: Caller,
) -> ApiResult<StatusCode> {
    record(
        "remove_connection",
        async {
            authorize(&state, &caller, Some(&room), None).await?;
            let target = room_target(&state, room).await?;
            do_remove_connection(&state, target, &connection_id).await
        }
        .await,
    )
}

/// Remove a participant from the room by identity, optionally banning them from the room
/// (`?ban=true`, JWT auth): later joins and tokens for the room's session are 403 `banned`.
#[utoipa::path(
    delete, path = "/rooms/{room}/participants/{sub}", tag = "moderation",
    params(
        ("room" = String, Path, description = "The room name"),
        ("sub" = String, Path, description = "The participant's identity (JWT sub)"),
        ("ban" = Option<bool>, Query, description = "Also ban them for moderation.ban_seconds (default false)"),
    ),
    security((), ("bearer" = [])),
    responses(
        (status = 200, body = RemovedResponse),
        (status = 400, description = "invalid_request", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "room_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "store_unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn room_remove_participant(
    State(state): State<AppState>,
    Path((room, sub)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    caller: Caller,
) -> ApiResult<Json<RemovedResponse>> {
    record(
        "remove_participant",
        async {
            authorize(&state, &caller, Some(&room), None).await?;
            let ban = ban_query(query)?;
            let target = room_target(&state, room).await?;
            do_remove_participant(&state, &caller, target, &sub, ban).await
        }
        .await,
    )
}

/// Force-mute one stream in the room.
#[utoipa::path(
    post, path = "/rooms/{room}/streams/{streamId}/mute", tag = "moderation",
    params(("room" = String, Path, description = "The room name"), ("streamId" = String, Path, description = "Vonage stream ID")),
    security((), ("bearer" = [])),
    responses(
        (status = 204, description = "Muted"),
        (status = 403, description = "forbidden", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "room_not_found or stream_not_found", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn room_mute_stream(
    State(state): State<AppState>,
    Path((room, stream_id)): Path<(String, String)>,
    caller: Caller,
) -> ApiResult<StatusCode> {
    record(
        "mute_stream",
        async {
            authorize(&state, &caller, Some(&room), None).await?;
            let target = room_target(&state, room).await?;
            do_mute_stream(&state, target, &stream_id).await
        }
        .await,
    )
}

/// Switch the room's mute-all state (shown by `GET /rooms/{room}` as `muteAll`).
#[utoipa::path(
    post, path = "/rooms/{room}/mute", tag = "moderation",
    params(("room" = String, Path, description = "The room name")),
    request_body(content = Option<MuteAllRequest>, description = "Optional: {} mutes everyone"),
    security((), ("bearer" = [])),
    responses(
        (status = 200, body = MuteStateResponse),
        (status = 400, description = "invalid_request or invalid_json", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "room_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "session_not_active", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn room_mute_all(
    State(state): State<AppState>,
    Path(room): Path<String>,
    caller: Caller,
    OptionalJson(body): OptionalJson<MuteAllRequest>,
) -> ApiResult<Json<MuteStateResponse>> {
    record(
        "mute_all",
        async {
            authorize(&state, &caller, Some(&room), None).await?;
            let target = room_target(&state, room).await?;
            do_mute_all(&state, &caller, target, body).await
        }
        .await,
    )
}

/// Signal everyone in the room.
#[utoipa::path(
    post, path = "/rooms/{room}/signal", tag = "moderation",
    params(("room" = String, Path, description = "The room name")),
    request_body = SignalRequest,
    security((), ("bearer" = [])),
    responses(
        (status = 204, description = "Sent"),
        (status = 400, description = "invalid_request or invalid_json", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "room_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "session_not_active", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "signal_too_large", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn room_signal_all(
    State(state): State<AppState>,
    Path(room): Path<String>,
    caller: Caller,
    OptionalJson(body): OptionalJson<SignalRequest>,
) -> ApiResult<StatusCode> {
    record(
        "signal_all",
        async {
            authorize(&state, &caller, Some(&room), None).await?;
            let target = room_target(&state, room).await?;
            do_signal(&state, target, None, body).await
        }
        .await,
    )
}

/// Signal one connection in the room.
#[utoipa::path(
    post, path = "/rooms/{room}/connections/{connectionId}/signal", tag = "moderation",
    params(("room" = String, Path, description = "The room name"), ("connectionId" = String, Path, description = "Vonage connection ID")),
    request_body = SignalRequest,
    security((), ("bearer" = [])),
    responses(
        (status = 204, description = "Sent"),
        (status = 400, description = "invalid_request or invalid_json", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "room_not_found or connection_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "signal_too_large", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn room_signal_connection(
    State(state): State<AppState>,
    Path((room, connection_id)): Path<(String, String)>,
    caller: Caller,
    OptionalJson(body): OptionalJson<SignalRequest>,
) -> ApiResult<StatusCode> {
    record(
        "signal_connection",
        async {
            let join = state
                .moderation
                .settings()
                .join_may_signal
                .then_some(Scope::Join);
            authorize(&state, &caller, Some(&room), join).await?;
            let target = room_target(&state, room).await?;
            do_signal(&state, target, Some(&connection_id), body).await
        }
        .await,
    )
}

/// The room's streams.
#[utoipa::path(
    get, path = "/rooms/{room}/streams", tag = "moderation",
    params(("room" = String, Path, description = "The room name")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, body = StreamListResponse),
        (status = 403, description = "forbidden", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "room_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "session_not_active", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn room_list_streams(
    State(state): State<AppState>,
    Path(room): Path<String>,
    caller: Caller,
) -> ApiResult<Json<StreamListResponse>> {
    record(
        "list_streams",
        async {
            authorize(&state, &caller, Some(&room), None).await?;
            let target = room_target(&state, room).await?;
            do_list_streams(&state, target).await
        }
        .await,
    )
}

/// One stream of the room.
#[utoipa::path(
    get, path = "/rooms/{room}/streams/{streamId}", tag = "moderation",
    params(("room" = String, Path, description = "The room name"), ("streamId" = String, Path, description = "Vonage stream ID")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, body = StreamResponse),
        (status = 403, description = "forbidden", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "room_not_found or stream_not_found", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn room_get_stream(
    State(state): State<AppState>,
    Path((room, stream_id)): Path<(String, String)>,
    caller: Caller,
) -> ApiResult<Json<StreamResponse>> {
    record(
        "get_stream",
        async {
            authorize(&state, &caller, Some(&room), None).await?;
            let target = room_target(&state, room).await?;
            do_get_stream(&state, target, &stream_id).await
        }
        .await,
    )
}

/// The room's live bans.
#[utoipa::path(
    get, path = "/rooms/{room}/bans", tag = "moderation",
    params(("room" = String, Path, description = "The room name")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, body = BanListResponse),
        (status = 403, description = "forbidden", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "room_not_found", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn room_list_bans(
    State(state): State<AppState>,
    Path(room): Path<String>,
    caller: Caller,
) -> ApiResult<Json<BanListResponse>> {
    authorize(&state, &caller, Some(&room), None).await?;
    let target = room_target(&state, room).await?;
    do_list_bans(&state, target).await
}

/// Lift a room ban (`video:admin`). Idempotent.
#[utoipa::path(
    delete, path = "/rooms/{room}/bans/{sub}", tag = "moderation",
    params(("room" = String, Path, description = "The room name"), ("sub" = String, Path, description = "The banned identity")),
    security((), ("bearer" = [])),
    responses(
        (status = 204, description = "Lifted (or there was none)"),
        (status = 403, description = "forbidden: needs video:admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "room_not_found", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn room_lift_ban(
    State(state): State<AppState>,
    Path((room, sub)): Path<(String, String)>,
    caller: Caller,
) -> ApiResult<StatusCode> {
    record(
        "lift_ban",
        async {
            state.auth.authorize(&caller, Scope::Admin).await?;
            let target = room_target(&state, room).await?;
            do_lift_ban(&state, target, &sub).await
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_checked_against_vonages_limits() {
        let ok = SignalRequest {
            kind: Some("chat-1_~".into()),
            data: Some("x".repeat(MAX_SIGNAL_DATA_BYTES)),
        };
        assert!(ok.into_signal().is_ok());
        let big = SignalRequest {
            kind: None,
            data: Some("é".repeat(MAX_SIGNAL_DATA_BYTES / 2 + 1)),
        };
        assert!(matches!(
            big.into_signal(),
            Err(ApiError::SignalTooLarge(_))
        ));
        let long_type = SignalRequest {
            kind: Some("t".repeat(129)),
            data: Some(String::new()),
        };
        assert!(matches!(
            long_type.into_signal(),
            Err(ApiError::SignalTooLarge(_))
        ));
        let odd_type = SignalRequest {
            kind: Some("a b".into()),
            data: Some(String::new()),
        };
        assert!(matches!(
            odd_type.into_signal(),
            Err(ApiError::InvalidRequest { .. })
        ));
        assert!(
            SignalRequest::default().into_signal().is_err(),
            "data is required"
        );
    }

    #[test]
    fn ids_that_cannot_exist_are_refused_locally() {
        for good in ["8b732909-0a06-46a2-8ea8-074e64d43422", "abc", "a.b"] {
            assert!(plausible_id(good), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "%2e", &"x".repeat(129)] {
            assert!(!plausible_id(bad), "{bad}");
        }
    }

    #[test]
    fn the_ban_query_is_strict() {
        assert!(!ban_query(None).unwrap());
        assert!(ban_query(Some("ban=true".into())).unwrap());
        assert!(ban_query(Some("ban=yes".into())).is_err());
        assert!(ban_query(Some("other=1".into())).is_err());
    }
}
