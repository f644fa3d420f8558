//! Moderation from the server (`docs/moderation.md`): remove connections or whole participants
//! (optionally banning them), mute one stream or all, signal one connection or everyone, and
//! read the streams, each under `/sessions/{sessionId}/…` and under `/rooms/{room}/…` (which
//! resolves the room's session first). Every call is refused before Vonage is called when the
//! session is not ours or the caller may not moderate.
//!
//! Each operation has one body in [`ops`]; the handlers below are its two routes, which differ
//! only in their OpenAPI docs and in how the path names the session ([`Address`]).

mod dto;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;

use crate::auth::{Caller, Refusal, Scope};
use crate::error::{ApiError, ApiResult, OptionalJson};
use crate::moderation::store::BanTarget;
use crate::rooms::RoomError;
use crate::rooms::is_valid_room_name;
use crate::rooms::store::StoreError;
use crate::state::AppState;
use crate::video::session_id;
pub(crate) use dto::{
    BanListResponse, MuteAllRequest, MuteStateResponse, RemovedResponse, SignalRequest,
    StreamListResponse, StreamResponse,
};
pub(super) use dto::{ID_PATTERN, MAX_ID_LEN, MAX_SUB_CHARS};

/// The session a moderation path names: `{sessionId}` directly, or `{room}`'s.
#[derive(Debug)]
enum Address {
    Session(String),
    Room(String),
}

/// What a moderation call addresses once resolved: a session of ours, maybe as a room's.
#[derive(Debug, Clone)]
struct Target {
    session_id: String,
    room: Option<String>,
}

impl Address {
    /// The room, for the room-moderator check (made before the room is looked up).
    fn room(&self) -> Option<&str> {
        match self {
            Self::Session(_) => None,
            Self::Room(room) => Some(room),
        }
    }

    /// The session: ours (else 404 `session_not_found`), or the room's (a valid name, else
    /// 400; a known room, else 404 `room_not_found`).
    async fn resolve(self, state: &AppState) -> ApiResult<Target> {
        match self {
            Self::Session(session_id) => {
                if session_id::is_owned_by(&session_id, state.tokens.owner()) {
                    Ok(Target {
                        session_id,
                        room: None,
                    })
                } else {
                    Err(ApiError::SessionNotFound)
                }
            }
            Self::Room(room) => {
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
        }
    }
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
    debug_assert!(
        crate::metrics::MODERATION_ACTIONS.contains(&action),
        "{action} is listed in metrics::MODERATION_ACTIONS"
    );
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

/// One body per operation, shared by its session and room routes: authorize, resolve the
/// target, check what is sent, call Vonage; every outcome counted by [`record`].
mod ops {
    use std::future::Future;

    use super::dto::{ban_query, checked_connection, checked_stream, checked_sub, rfc3339_ms};
    use super::*;
    use crate::moderation::store::MuteState;
    use crate::video::moderation::ModerationError;

    /// The course of an operation for moderators: authorize (`video:moderate`, a moderator of
    /// the room, or `alternative`), resolve the target, then `body`; the outcome counted.
    async fn moderated<T, Fut>(
        action: &'static str,
        state: &AppState,
        caller: &Caller,
        at: Address,
        alternative: Option<Scope>,
        body: impl FnOnce(Target) -> Fut,
    ) -> ApiResult<T>
    where
        Fut: Future<Output = ApiResult<T>>,
    {
        let result = async {
            authorize(state, caller, at.room(), alternative).await?;
            body(at.resolve(state).await?).await
        };
        record(action, result.await)
    }

    /// Force-disconnects one connection.
    pub(super) async fn remove_connection(
        state: &AppState,
        caller: &Caller,
        at: Address,
        connection_id: &str,
    ) -> ApiResult<StatusCode> {
        moderated(
            "remove_connection",
            state,
            caller,
            at,
            None,
            |target| async move {
                checked_connection(connection_id)?;
                state
                    .video
                    .force_disconnect(&target.session_id, connection_id)
                    .await?;
                Ok(StatusCode::NO_CONTENT)
            },
        )
        .await
    }

    /// Removes every connection of `sub` (as presence knows them), banning them first when
    /// `?ban=true` (the query is read between authorizing and resolving the target).
    pub(super) async fn remove_participant(
        state: &AppState,
        caller: &Caller,
        at: Address,
        sub: &str,
        query: Option<String>,
    ) -> ApiResult<Json<RemovedResponse>> {
        record(
            "remove_participant",
            async {
                authorize(state, caller, at.room(), None).await?;
                let ban = ban_query(query)?;
                let target = at.resolve(state).await?;
                remove_and_ban(state, caller, &target, sub, ban).await
            }
            .await,
        )
    }

    /// Bans `sub` (when asked and possible), then disconnects what presence says they hold.
    /// The answer says what was done: with `auth.mode = "anonymous"` nobody has an identity to
    /// ban (`banned: false`), and without presence nothing can be found by `sub`
    /// (`presenceTracked: false`).
    async fn remove_and_ban(
        state: &AppState,
        caller: &Caller,
        target: &Target,
        sub: &str,
        ban: bool,
    ) -> ApiResult<Json<RemovedResponse>> {
        checked_sub(sub)?;
        // The ban first, so a rejoin racing the disconnects is already refused. In JWT mode
        // every caller has an identity; anonymous mode has none, so a ban would refuse nobody.
        let banned = match caller.identity() {
            Some(identity) if ban => {
                let ban = state
                    .moderation
                    .ban(&target.ban_targets(), sub, Some(identity.subject.as_str()))
                    .await
                    .map_err(store_error)?;
                tracing::info!(moderation.sub = sub, room = target.room.as_deref(), vonage.session_id = %target.session_id, "participant banned");
                Some(ban)
            }
            _ => None,
        };
        let connections = state
            .moderation
            .presence()
            .connections_of(&target.session_id, sub)
            .await
            .map_err(store_error)?;
        let presence_tracked = connections.is_some();
        let mut disconnected = Vec::new();
        for connection_id in connections.into_iter().flatten() {
            match state
                .video
                .force_disconnect(&target.session_id, &connection_id)
                .await
            {
                Ok(()) => disconnected.push(connection_id),
                // Gone already (left, or removed by another moderator).
                Err(ModerationError::ConnectionNotFound) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(Json(RemovedResponse {
            sub: sub.to_owned(),
            disconnected_connection_ids: disconnected,
            presence_tracked,
            banned: banned.is_some(),
            banned_until: banned.map(|ban| rfc3339_ms(ban.expires_at)),
        }))
    }

    /// Force-mutes one stream's audio.
    pub(super) async fn mute_stream(
        state: &AppState,
        caller: &Caller,
        at: Address,
        stream_id: &str,
    ) -> ApiResult<StatusCode> {
        moderated(
            "mute_stream",
            state,
            caller,
            at,
            None,
            |target| async move {
                checked_stream(stream_id)?;
                state
                    .video
                    .mute_stream(&target.session_id, stream_id)
                    .await?;
                Ok(StatusCode::NO_CONTENT)
            },
        )
        .await
    }

    /// Switches the mute-all state and records it.
    pub(super) async fn mute_all(
        state: &AppState,
        caller: &Caller,
        at: Address,
        body: MuteAllRequest,
    ) -> ApiResult<Json<MuteStateResponse>> {
        moderated("mute_all", state, caller, at, None, |target| async move {
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
        })
        .await
    }

    /// The mute-all state as last set through this service (`video:join` may read it).
    pub(super) async fn get_mute(
        state: &AppState,
        caller: &Caller,
        at: Address,
    ) -> ApiResult<Json<MuteStateResponse>> {
        let result = async {
            state.auth.authorize(caller, Scope::Join).await?;
            let target = at.resolve(state).await?;
            let mute = state
                .moderation
                .mute(&target.session_id)
                .await
                .map_err(store_error)?;
            Ok(Json(MuteStateResponse::new(target.session_id, mute)))
        };
        record("get_mute", result.await)
    }

    /// Signals everyone (`connection_id` none) or one connection, which `video:join` callers
    /// may do too with `moderation.join_may_signal`.
    pub(super) async fn signal(
        state: &AppState,
        caller: &Caller,
        at: Address,
        connection_id: Option<&str>,
        body: SignalRequest,
    ) -> ApiResult<StatusCode> {
        let join_may_signal = state.moderation.settings().join_may_signal;
        let (action, alternative) = match connection_id {
            Some(_) => ("signal_connection", join_may_signal.then_some(Scope::Join)),
            None => ("signal_all", None),
        };
        moderated(
            action,
            state,
            caller,
            at,
            alternative,
            |target| async move {
                if let Some(connection_id) = connection_id {
                    checked_connection(connection_id)?;
                }
                let signal = body.into_signal()?;
                state
                    .video
                    .signal(&target.session_id, connection_id, &signal)
                    .await?;
                Ok(StatusCode::NO_CONTENT)
            },
        )
        .await
    }

    /// The session's streams.
    pub(super) async fn list_streams(
        state: &AppState,
        caller: &Caller,
        at: Address,
    ) -> ApiResult<Json<StreamListResponse>> {
        moderated(
            "list_streams",
            state,
            caller,
            at,
            None,
            |target| async move {
                let list = state.video.list_streams(&target.session_id).await?;
                let items: Vec<StreamResponse> = list.items.into_iter().map(Into::into).collect();
                Ok(Json(StreamListResponse {
                    count: list.count.max(items.len() as u64),
                    items,
                }))
            },
        )
        .await
    }

    /// One stream.
    pub(super) async fn get_stream(
        state: &AppState,
        caller: &Caller,
        at: Address,
        stream_id: &str,
    ) -> ApiResult<Json<StreamResponse>> {
        moderated("get_stream", state, caller, at, None, |target| async move {
            checked_stream(stream_id)?;
            let stream = state
                .video
                .get_stream(&target.session_id, stream_id)
                .await?;
            Ok(Json(stream.into()))
        })
        .await
    }

    /// The live bans of the room (or of the session, when addressed by session).
    pub(super) async fn list_bans(
        state: &AppState,
        caller: &Caller,
        at: Address,
    ) -> ApiResult<Json<BanListResponse>> {
        moderated("list_bans", state, caller, at, None, |target| async move {
            let primary = target
                .ban_targets()
                .into_iter()
                .next()
                .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a target has a ban key")))?;
            let bans = state.moderation.bans(&primary).await.map_err(store_error)?;
            Ok(Json(BanListResponse {
                items: bans.into_iter().map(Into::into).collect(),
            }))
        })
        .await
    }

    /// Lifts a ban from every target of the address (`video:admin`).
    pub(super) async fn lift_ban(
        state: &AppState,
        caller: &Caller,
        at: Address,
        sub: &str,
    ) -> ApiResult<StatusCode> {
        let result = async {
            state.auth.authorize(caller, Scope::Admin).await?;
            let target = at.resolve(state).await?;
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
        };
        record("lift_ban", result.await)
    }
}

// The routes: each operation under a session, then under a room. Their `#[utoipa::path]`s list
// the success statuses; the failures come from `openapi::operations()`.

/// Force-disconnect one connection (`video:moderate`).
#[utoipa::path(
    delete, path = "/sessions/{sessionId}/connections/{connectionId}", tag = "moderation",
    params(("sessionId" = String, Path), ("connectionId" = String, Path, description = "Vonage connection ID")),
    responses((status = 204, description = "Disconnected; a connectionDestroyed with reason forceDisconnected follows")),
)]
pub(crate) async fn remove_connection(
    State(state): State<AppState>,
    Path((session_id, connection_id)): Path<(String, String)>,
    caller: Caller,
) -> ApiResult<StatusCode> {
    ops::remove_connection(
        &state,
        &caller,
        Address::Session(session_id),
        &connection_id,
    )
    .await
}

/// Force-disconnect one connection of the room's session (`video:moderate` or a room moderator).
#[utoipa::path(
    delete, path = "/rooms/{room}/connections/{connectionId}", tag = "moderation",
    params(("room" = String, Path), ("connectionId" = String, Path, description = "Vonage connection ID")),
    responses((status = 204, description = "Disconnected")),
)]
pub(crate) async fn room_remove_connection(
    State(state): State<AppState>,
    Path((room, connection_id)): Path<(String, String)>,
    caller: Caller,
) -> ApiResult<StatusCode> {
    ops::remove_connection(&state, &caller, Address::Room(room), &connection_id).await
}

/// Remove a participant by identity: every connection of that `sub` (known from presence),
/// optionally banning them (`?ban=true`, JWT auth) (`video:moderate`).
#[utoipa::path(
    delete, path = "/sessions/{sessionId}/participants/{sub}", tag = "moderation",
    params(
        ("sessionId" = String, Path),
        ("sub" = String, Path, description = "The participant's identity (JWT sub)"),
        ("ban" = Option<bool>, Query, description = "Also ban them for moderation.ban_seconds (default false)"),
    ),
    responses((status = 200, body = RemovedResponse)),
)]
pub(crate) async fn remove_participant(
    State(state): State<AppState>,
    Path((session_id, sub)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    caller: Caller,
) -> ApiResult<Json<RemovedResponse>> {
    ops::remove_participant(&state, &caller, Address::Session(session_id), &sub, query).await
}

/// Remove a participant from the room by identity, optionally banning them from the room
/// (`?ban=true`, JWT auth): later joins and tokens for the room's session are 403 `banned`.
#[utoipa::path(
    delete, path = "/rooms/{room}/participants/{sub}", tag = "moderation",
    params(
        ("room" = String, Path),
        ("sub" = String, Path, description = "The participant's identity (JWT sub)"),
        ("ban" = Option<bool>, Query, description = "Also ban them for moderation.ban_seconds (default false)"),
    ),
    responses((status = 200, body = RemovedResponse)),
)]
pub(crate) async fn room_remove_participant(
    State(state): State<AppState>,
    Path((room, sub)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    caller: Caller,
) -> ApiResult<Json<RemovedResponse>> {
    ops::remove_participant(&state, &caller, Address::Room(room), &sub, query).await
}

/// Force-mute one stream's audio (`video:moderate`).
#[utoipa::path(
    post, path = "/sessions/{sessionId}/streams/{streamId}/mute", tag = "moderation",
    params(("sessionId" = String, Path), ("streamId" = String, Path, description = "Vonage stream ID")),
    responses((status = 204, description = "Muted")),
)]
pub(crate) async fn mute_stream(
    State(state): State<AppState>,
    Path((session_id, stream_id)): Path<(String, String)>,
    caller: Caller,
) -> ApiResult<StatusCode> {
    ops::mute_stream(&state, &caller, Address::Session(session_id), &stream_id).await
}

/// Force-mute one stream in the room.
#[utoipa::path(
    post, path = "/rooms/{room}/streams/{streamId}/mute", tag = "moderation",
    params(("room" = String, Path), ("streamId" = String, Path, description = "Vonage stream ID")),
    responses((status = 204, description = "Muted")),
)]
pub(crate) async fn room_mute_stream(
    State(state): State<AppState>,
    Path((room, stream_id)): Path<(String, String)>,
    caller: Caller,
) -> ApiResult<StatusCode> {
    ops::mute_stream(&state, &caller, Address::Room(room), &stream_id).await
}

/// Switch the session's mute-all state on (with optional exclusions) or off
/// (`video:moderate`).
#[utoipa::path(
    post, path = "/sessions/{sessionId}/mute", tag = "moderation",
    params(("sessionId" = String, Path)),
    request_body(content = Option<MuteAllRequest>, description = "Optional: {} mutes everyone"),
    responses((status = 200, body = MuteStateResponse)),
)]
pub(crate) async fn mute_all(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
    caller: Caller,
    OptionalJson(body): OptionalJson<MuteAllRequest>,
) -> ApiResult<Json<MuteStateResponse>> {
    ops::mute_all(&state, &caller, Address::Session(session_id), body).await
}

/// Switch the room's mute-all state (shown by `GET /rooms/{room}` as `muteAll`).
#[utoipa::path(
    post, path = "/rooms/{room}/mute", tag = "moderation",
    params(("room" = String, Path)),
    request_body(content = Option<MuteAllRequest>, description = "Optional: {} mutes everyone"),
    responses((status = 200, body = MuteStateResponse)),
)]
pub(crate) async fn room_mute_all(
    State(state): State<AppState>,
    Path(room): Path<String>,
    caller: Caller,
    OptionalJson(body): OptionalJson<MuteAllRequest>,
) -> ApiResult<Json<MuteStateResponse>> {
    ops::mute_all(&state, &caller, Address::Room(room), body).await
}

/// The session's mute-all state as last set through this service (`video:join`).
#[utoipa::path(
    get, path = "/sessions/{sessionId}/mute", tag = "moderation",
    params(("sessionId" = String, Path)),
    responses((status = 200, body = MuteStateResponse)),
)]
pub(crate) async fn get_mute(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
    caller: Caller,
) -> ApiResult<Json<MuteStateResponse>> {
    ops::get_mute(&state, &caller, Address::Session(session_id)).await
}

/// Signal everyone in the session (`video:moderate`).
#[utoipa::path(
    post, path = "/sessions/{sessionId}/signal", tag = "moderation",
    params(("sessionId" = String, Path)),
    request_body = SignalRequest,
    responses((status = 204, description = "Sent")),
)]
pub(crate) async fn signal_all(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
    caller: Caller,
    OptionalJson(body): OptionalJson<SignalRequest>,
) -> ApiResult<StatusCode> {
    ops::signal(&state, &caller, Address::Session(session_id), None, body).await
}

/// Signal everyone in the room.
#[utoipa::path(
    post, path = "/rooms/{room}/signal", tag = "moderation",
    params(("room" = String, Path)),
    request_body = SignalRequest,
    responses((status = 204, description = "Sent")),
)]
pub(crate) async fn room_signal_all(
    State(state): State<AppState>,
    Path(room): Path<String>,
    caller: Caller,
    OptionalJson(body): OptionalJson<SignalRequest>,
) -> ApiResult<StatusCode> {
    ops::signal(&state, &caller, Address::Room(room), None, body).await
}

/// Signal one connection (`video:moderate`; `video:join` too with
/// `moderation.join_may_signal`).
#[utoipa::path(
    post, path = "/sessions/{sessionId}/connections/{connectionId}/signal", tag = "moderation",
    params(("sessionId" = String, Path), ("connectionId" = String, Path, description = "Vonage connection ID")),
    request_body = SignalRequest,
    responses((status = 204, description = "Sent")),
)]
pub(crate) async fn signal_connection(
    State(state): State<AppState>,
    Path((session_id, connection_id)): Path<(String, String)>,
    caller: Caller,
    OptionalJson(body): OptionalJson<SignalRequest>,
) -> ApiResult<StatusCode> {
    let at = Address::Session(session_id);
    ops::signal(&state, &caller, at, Some(&connection_id), body).await
}

/// Signal one connection in the room.
#[utoipa::path(
    post, path = "/rooms/{room}/connections/{connectionId}/signal", tag = "moderation",
    params(("room" = String, Path), ("connectionId" = String, Path, description = "Vonage connection ID")),
    request_body = SignalRequest,
    responses((status = 204, description = "Sent")),
)]
pub(crate) async fn room_signal_connection(
    State(state): State<AppState>,
    Path((room, connection_id)): Path<(String, String)>,
    caller: Caller,
    OptionalJson(body): OptionalJson<SignalRequest>,
) -> ApiResult<StatusCode> {
    ops::signal(
        &state,
        &caller,
        Address::Room(room),
        Some(&connection_id),
        body,
    )
    .await
}

/// The session's streams (`video:moderate`).
#[utoipa::path(
    get, path = "/sessions/{sessionId}/streams", tag = "moderation",
    params(("sessionId" = String, Path)),
    responses((status = 200, body = StreamListResponse)),
)]
pub(crate) async fn list_streams(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
    caller: Caller,
) -> ApiResult<Json<StreamListResponse>> {
    ops::list_streams(&state, &caller, Address::Session(session_id)).await
}

/// The room's streams.
#[utoipa::path(
    get, path = "/rooms/{room}/streams", tag = "moderation",
    params(("room" = String, Path)),
    responses((status = 200, body = StreamListResponse)),
)]
pub(crate) async fn room_list_streams(
    State(state): State<AppState>,
    Path(room): Path<String>,
    caller: Caller,
) -> ApiResult<Json<StreamListResponse>> {
    ops::list_streams(&state, &caller, Address::Room(room)).await
}

/// One stream (`video:moderate`).
#[utoipa::path(
    get, path = "/sessions/{sessionId}/streams/{streamId}", tag = "moderation",
    params(("sessionId" = String, Path), ("streamId" = String, Path, description = "Vonage stream ID")),
    responses((status = 200, body = StreamResponse)),
)]
pub(crate) async fn get_stream(
    State(state): State<AppState>,
    Path((session_id, stream_id)): Path<(String, String)>,
    caller: Caller,
) -> ApiResult<Json<StreamResponse>> {
    ops::get_stream(&state, &caller, Address::Session(session_id), &stream_id).await
}

/// One stream of the room.
#[utoipa::path(
    get, path = "/rooms/{room}/streams/{streamId}", tag = "moderation",
    params(("room" = String, Path), ("streamId" = String, Path, description = "Vonage stream ID")),
    responses((status = 200, body = StreamResponse)),
)]
pub(crate) async fn room_get_stream(
    State(state): State<AppState>,
    Path((room, stream_id)): Path<(String, String)>,
    caller: Caller,
) -> ApiResult<Json<StreamResponse>> {
    ops::get_stream(&state, &caller, Address::Room(room), &stream_id).await
}

/// The session's live bans (`video:moderate`).
#[utoipa::path(
    get, path = "/sessions/{sessionId}/bans", tag = "moderation",
    params(("sessionId" = String, Path)),
    responses((status = 200, body = BanListResponse)),
)]
pub(crate) async fn list_bans(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
    caller: Caller,
) -> ApiResult<Json<BanListResponse>> {
    ops::list_bans(&state, &caller, Address::Session(session_id)).await
}

/// The room's live bans.
#[utoipa::path(
    get, path = "/rooms/{room}/bans", tag = "moderation",
    params(("room" = String, Path)),
    responses((status = 200, body = BanListResponse)),
)]
pub(crate) async fn room_list_bans(
    State(state): State<AppState>,
    Path(room): Path<String>,
    caller: Caller,
) -> ApiResult<Json<BanListResponse>> {
    ops::list_bans(&state, &caller, Address::Room(room)).await
}

/// Lift a ban (`video:admin`). Idempotent.
#[utoipa::path(
    delete, path = "/sessions/{sessionId}/bans/{sub}", tag = "moderation",
    params(("sessionId" = String, Path), ("sub" = String, Path, description = "The banned identity")),
    responses((status = 204, description = "Lifted (or there was none)")),
)]
pub(crate) async fn lift_ban(
    State(state): State<AppState>,
    Path((session_id, sub)): Path<(String, String)>,
    caller: Caller,
) -> ApiResult<StatusCode> {
    ops::lift_ban(&state, &caller, Address::Session(session_id), &sub).await
}

/// Lift a room ban (`video:admin`). Idempotent.
#[utoipa::path(
    delete, path = "/rooms/{room}/bans/{sub}", tag = "moderation",
    params(("room" = String, Path), ("sub" = String, Path, description = "The banned identity")),
    responses((status = 204, description = "Lifted (or there was none)")),
)]
pub(crate) async fn room_lift_ban(
    State(state): State<AppState>,
    Path((room, sub)): Path<(String, String)>,
    caller: Caller,
) -> ApiResult<StatusCode> {
    ops::lift_ban(&state, &caller, Address::Room(room), &sub).await
}
