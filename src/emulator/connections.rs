//! The live side of a session, as Vonage's signalling sees it: which clients are connected
//! (each with the connection data and role of the token it connected with) and which streams
//! they publish. Tests and `dev` drive it through control endpoints; the service sees it
//! through Vonage's REST calls and the session-monitoring callbacks (`callbacks`).
//!
//! Control (JSON, camelCase; never subject to faults):
//! - `POST /_emulator/sessions/{sessionId}/connections` `{"token": T}`: a client connects with
//!   token `T`, validated as the signalling server would (`client_token`). 201 with the
//!   [`Connection`]; 403 `{"code":1004,…}` for a bad token; 404 for an unknown session.
//! - `GET /_emulator/sessions/{sessionId}/connections`: `{"connections":[…],"streams":[…]}`.
//! - `DELETE /_emulator/sessions/{sessionId}/connections/{connectionId}[?silent=true]`: the
//!   client leaves (`clientDisconnected`); `silent` sends no callback (a lost delivery). 204.
//! - `POST /_emulator/sessions/{sessionId}/connections/{connectionId}/streams`
//!   `{"videoType":"camera"|"screen"|"custom","name":N}`: the client publishes. 201 [`Stream`].
//! - `DELETE /_emulator/sessions/{sessionId}/streams/{streamId}`: it unpublishes. 204.
//! - `PUT /_emulator/sessions/{sessionId}/connections` `{"connected": bool}` (older, in
//!   `archive`) still only pauses and resumes archives; it creates no connection.
//!
//! Vonage API (same auth as archives; `{key}` must be the authenticated API key or application):
//! - `GET /v2/project/{key}/session/{sessionId}/connection`: 200 `{"count","projectId",
//!   "sessionId","items":[{"connectionId","connectionState":"Connected","createdAt"}]}`: no
//!   connection data, as the real API.
//! - `DELETE /v2/project/{key}/session/{sessionId}/connection/{connectionId}`: force
//!   disconnect, 204; 404 for an unknown session or connection; 400 for a malformed session ID.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{Method, Response, StatusCode, Uri};
use axum::routing::{delete, post};
use serde::Serialize;
use serde_json::{Value, json};

use super::archive::now_ms;
use super::auth::{self, Presented};
use super::callbacks::{self, Event};
use super::client_token;
use super::reply;
use super::state::{SessionRecord, Shared};

/// A connected client.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Connection {
    /// The connection ID (a UUID, as real ones).
    pub(crate) connection_id: String,
    /// The session it is connected to.
    pub(crate) session_id: String,
    /// When it connected, epoch milliseconds.
    pub(crate) created_at: u64,
    /// The token's connection data (`connection_data` or `data`), if any.
    pub(crate) data: Option<String>,
    /// The token's role.
    pub(crate) role: String,
}

/// A published stream.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Stream {
    /// The stream ID (a UUID).
    pub(crate) stream_id: String,
    /// The connection publishing it.
    pub(crate) connection_id: String,
    /// `camera`, `screen` or `custom`.
    pub(crate) video_type: String,
    /// The publisher's name, may be empty.
    pub(crate) name: String,
    /// When it was published, epoch milliseconds.
    pub(crate) created_at: u64,
}

/// One session's live state.
#[derive(Debug, Default, Clone, Serialize)]
pub(crate) struct Live {
    pub(crate) connections: Vec<Connection>,
    pub(crate) streams: Vec<Stream>,
}

/// Every session's live state, by session ID.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    sessions: Mutex<BTreeMap<String, Live>>,
}

/// Why a disconnect did nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Missing {
    /// No such connection in the session.
    Connection,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Live>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The session's connections and streams (empty if none).
    pub(crate) fn live(&self, session_id: &str) -> Live {
        self.lock().get(session_id).cloned().unwrap_or_default()
    }

    /// Adds a connection; true if it is the session's first.
    pub(crate) fn connect(&self, connection: Connection) -> bool {
        let mut sessions = self.lock();
        let live = sessions.entry(connection.session_id.clone()).or_default();
        live.connections.push(connection);
        live.connections.len() == 1
    }

    /// Removes a connection and its streams: the streams removed, and whether the session is
    /// now empty.
    pub(crate) fn disconnect(
        &self,
        session_id: &str,
        connection_id: &str,
    ) -> Result<(Connection, Vec<Stream>, bool), Missing> {
        let mut sessions = self.lock();
        let live = sessions.get_mut(session_id).ok_or(Missing::Connection)?;
        let index = live
            .connections
            .iter()
            .position(|c| c.connection_id == connection_id)
            .ok_or(Missing::Connection)?;
        let connection = live.connections.remove(index);
        let (gone, kept) = std::mem::take(&mut live.streams)
            .into_iter()
            .partition(|s| s.connection_id == connection_id);
        live.streams = kept;
        let empty = live.connections.is_empty();
        if empty {
            sessions.remove(session_id);
        }
        Ok((connection, gone, empty))
    }

    /// Adds a stream for a connected client; `None` if the connection is unknown.
    pub(crate) fn publish(
        &self,
        session_id: &str,
        connection_id: &str,
        video_type: String,
        name: String,
    ) -> Option<(Stream, Connection)> {
        let mut sessions = self.lock();
        let live = sessions.get_mut(session_id)?;
        let connection = live
            .connections
            .iter()
            .find(|c| c.connection_id == connection_id)?
            .clone();
        let stream = Stream {
            stream_id: uuid::Uuid::new_v4().to_string(),
            connection_id: connection_id.to_owned(),
            video_type,
            name,
            created_at: now_ms(),
        };
        live.streams.push(stream.clone());
        Some((stream, connection))
    }

    /// Removes a stream; with its connection, if both exist.
    pub(crate) fn unpublish(
        &self,
        session_id: &str,
        stream_id: &str,
    ) -> Option<(Stream, Option<Connection>)> {
        let mut sessions = self.lock();
        let live = sessions.get_mut(session_id)?;
        let index = live.streams.iter().position(|s| s.stream_id == stream_id)?;
        let stream = live.streams.remove(index);
        let connection = live
            .connections
            .iter()
            .find(|c| c.connection_id == stream.connection_id)
            .cloned();
        Some((stream, connection))
    }

    /// Forgets everything.
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }
}

type SharedState = State<Arc<Shared>>;

/// The control routes, merged into the control router.
pub(crate) fn control_routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/_emulator/sessions/{session_id}/connections",
            post(connect).get(list_live),
        )
        .route(
            "/_emulator/sessions/{session_id}/connections/{connection_id}",
            delete(leave),
        )
        .route(
            "/_emulator/sessions/{session_id}/connections/{connection_id}/streams",
            post(publish),
        )
        .route(
            "/_emulator/sessions/{session_id}/streams/{stream_id}",
            delete(unpublish),
        )
}

fn session_known(shared: &Shared, session_id: &str) -> bool {
    shared
        .sessions()
        .iter()
        .any(|session| session.session_id == session_id)
}

/// The session a control route's `{session_id}` names, or the emulator's 404: for a path it
/// cannot read, or a session it never created.
pub(crate) fn known_session(
    shared: &Shared,
    session_id: Result<Path<String>, PathRejection>,
) -> Result<String, Box<Response<Body>>> {
    let Ok(Path(session_id)) = session_id else {
        return Err(Box::new(reply::error(StatusCode::NOT_FOUND, "Not found")));
    };
    if !session_known(shared, &session_id) {
        return Err(Box::new(reply::error(
            StatusCode::NOT_FOUND,
            "Not found. No such session.",
        )));
    }
    Ok(session_id)
}

async fn connect(
    State(shared): SharedState,
    session_id: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Response<Body> {
    let session_id = match known_session(&shared, session_id) {
        Ok(session_id) => session_id,
        Err(refused) => return *refused,
    };
    let token = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|body| body.get("token")?.as_str().map(str::to_owned));
    let Some(token) = token else {
        return reply::error(
            StatusCode::BAD_REQUEST,
            r#"Invalid request: the body must be {"token": "<client token>"}"#,
        );
    };
    let now = now_ms();
    let legacy_secret = shared.legacy_secret.as_ref();
    let verified = client_token::validate(
        &token,
        &session_id,
        &shared.verifiers,
        legacy_secret,
        now / 1000,
    );
    let granted = match verified {
        Ok(granted) => granted,
        Err(error) => return reply::coded(StatusCode::FORBIDDEN, 1004, &error.to_string()),
    };
    let connection = Connection {
        connection_id: uuid::Uuid::new_v4().to_string(),
        session_id,
        created_at: now,
        data: granted.data,
        role: granted.role,
    };
    connected(&shared, connection.clone());
    reply::json(StatusCode::CREATED, &connection)
}

/// Registers a connection, resumes the session's archives if it is the first, and tells the
/// application server.
pub(crate) fn connected(shared: &Shared, connection: Connection) {
    let session_id = connection.session_id.clone();
    if shared.registry.connect(connection.clone()) {
        let before = callbacks::archive_statuses(shared);
        shared.archives(|archives, _| archives.set_connected(&session_id, true, now_ms()));
        callbacks::archive_changes(shared, &before);
    }
    shared.callbacks.send(
        shared,
        Event::ConnectionCreated {
            connection,
            timestamp: now_ms(),
        },
    );
}

/// Removes a connection (and its streams), pausing archives if the session is now empty, and
/// tells the application server unless `silent`.
pub(crate) fn disconnected(
    shared: &Shared,
    session_id: &str,
    connection_id: &str,
    reason: &'static str,
    silent: bool,
) -> Result<(), Missing> {
    let (connection, streams, empty) = shared.registry.disconnect(session_id, connection_id)?;
    if empty {
        let before = callbacks::archive_statuses(shared);
        shared.archives(|archives, _| archives.set_connected(session_id, false, now_ms()));
        callbacks::archive_changes(shared, &before);
    }
    if silent {
        return Ok(());
    }
    for stream in streams {
        shared.callbacks.send(
            shared,
            Event::StreamDestroyed {
                stream,
                connection: connection.clone(),
                reason,
                timestamp: now_ms(),
            },
        );
    }
    shared.callbacks.send(
        shared,
        Event::ConnectionDestroyed {
            connection,
            reason,
            timestamp: now_ms(),
        },
    );
    Ok(())
}

async fn list_live(
    State(shared): SharedState,
    session_id: Result<Path<String>, PathRejection>,
) -> Response<Body> {
    let session_id = match known_session(&shared, session_id) {
        Ok(session_id) => session_id,
        Err(refused) => return *refused,
    };
    reply::json(StatusCode::OK, &shared.registry.live(&session_id))
}

async fn leave(
    State(shared): SharedState,
    ids: Result<Path<(String, String)>, PathRejection>,
    uri: Uri,
) -> Response<Body> {
    let Ok(Path((session_id, connection_id))) = ids else {
        return reply::error(StatusCode::NOT_FOUND, "Not found");
    };
    let silent = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .any(|(name, value)| name == "silent" && value == "true");
    match disconnected(
        &shared,
        &session_id,
        &connection_id,
        "clientDisconnected",
        silent,
    ) {
        Ok(()) => reply::no_content(),
        Err(Missing::Connection) => reply::error(StatusCode::NOT_FOUND, "Connection not found"),
    }
}

async fn publish(
    State(shared): SharedState,
    ids: Result<Path<(String, String)>, PathRejection>,
    body: Bytes,
) -> Response<Body> {
    let Ok(Path((session_id, connection_id))) = ids else {
        return reply::error(StatusCode::NOT_FOUND, "Not found");
    };
    let body = serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
    let video_type = body
        .get("videoType")
        .and_then(Value::as_str)
        .unwrap_or("camera");
    if !matches!(video_type, "camera" | "screen" | "custom") {
        return reply::error(
            StatusCode::BAD_REQUEST,
            "Invalid request: videoType must be camera, screen or custom",
        );
    }
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let Some((stream, connection)) =
        shared
            .registry
            .publish(&session_id, &connection_id, video_type.to_owned(), name)
    else {
        return reply::error(StatusCode::NOT_FOUND, "Connection not found");
    };
    shared.callbacks.send(
        &shared,
        Event::StreamCreated {
            stream: stream.clone(),
            connection,
            timestamp: now_ms(),
        },
    );
    reply::json(StatusCode::CREATED, &stream)
}

async fn unpublish(
    State(shared): SharedState,
    ids: Result<Path<(String, String)>, PathRejection>,
) -> Response<Body> {
    let Ok(Path((session_id, stream_id))) = ids else {
        return reply::error(StatusCode::NOT_FOUND, "Not found");
    };
    let Some((stream, connection)) = shared.registry.unpublish(&session_id, &stream_id) else {
        return reply::error(StatusCode::NOT_FOUND, "Stream not found");
    };
    if let Some(connection) = connection {
        shared.callbacks.send(
            &shared,
            Event::StreamDestroyed {
                stream,
                connection,
                reason: "clientDisconnected",
                timestamp: now_ms(),
            },
        );
    }
    reply::no_content()
}

/// What a `/v2/project/{key}/session/{sessionId}/connection…` path addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target<'a> {
    /// `…/connection`: list.
    List,
    /// `…/connection/{connectionId}`: force disconnect.
    One(&'a str),
}

fn parse_path(path: &str) -> Option<(&str, &str, Target<'_>)> {
    let rest = path.strip_prefix("/v2/project/")?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let mut segments = rest.split('/');
    let project = segments.next().filter(|p| !p.is_empty())?;
    if segments.next()? != "session" {
        return None;
    }
    let session_id = segments.next().filter(|s| !s.is_empty())?;
    if segments.next()? != "connection" {
        return None;
    }
    let target = match (segments.next(), segments.next()) {
        (None, _) => Target::List,
        (Some(id), None) if !id.is_empty() => Target::One(id),
        _ => return None,
    };
    Some((project, session_id, target))
}

/// The checks every project-scoped Vonage call makes, in Vonage's order: the method is one the
/// path takes (405), the project exists (404), the JWT verifies (403) and is that project's
/// (403). Returns the verified owner; the emulator's archive calls share it.
pub(crate) fn admit_project_call(
    shared: &Shared,
    parts: &Parts,
    allowed: &[Method],
    presented: Option<&Presented>,
    project: &str,
    now_ms: u64,
) -> Result<String, Box<Response<Body>>> {
    if !allowed.contains(&parts.method) {
        return Err(Box::new(reply::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed",
        )));
    }
    let verifiers = [&shared.verifiers.legacy, &shared.verifiers.application];
    if !verifiers
        .iter()
        .flat_map(|v| v.iter())
        .any(|v| v.owner == project)
    {
        // A project the emulator was never given, like any other unknown path.
        return Err(Box::new(reply::error(StatusCode::NOT_FOUND, "Not found")));
    }
    let now_s = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
    let owner = match auth::verify(presented, &shared.verifiers, now_s) {
        Ok((_, owner)) => owner,
        Err(error) => {
            return Err(Box::new(reply::error(
                StatusCode::FORBIDDEN,
                &error.to_string(),
            )));
        }
    };
    if owner != project {
        let message = "Invalid project ID: it is not the authenticated API key or application";
        return Err(Box::new(reply::error(StatusCode::FORBIDDEN, message)));
    }
    Ok(owner)
}

/// The checks every session-scoped Vonage call makes, in Vonage's order: those of
/// [`admit_project_call`] with the path's one method, then the session ID parses (400) and
/// names a session the project created (404). Returns that session; the emulator's moderation
/// calls share it.
pub(crate) fn admit_session_call(
    shared: &Shared,
    parts: &Parts,
    allowed: Method,
    presented: Option<&Presented>,
    project: &str,
    session_id: &str,
    now_ms: u64,
) -> Result<SessionRecord, Box<Response<Body>>> {
    let owner = admit_project_call(shared, parts, &[allowed], presented, project, now_ms)?;
    if crate::video::session_id::decode(session_id).is_err() {
        return Err(Box::new(reply::error(
            StatusCode::BAD_REQUEST,
            "Invalid session ID format",
        )));
    }
    let created = shared
        .sessions()
        .into_iter()
        .find(|s| s.session_id == session_id && s.owner == owner);
    created.ok_or_else(|| {
        Box::new(reply::error(
            StatusCode::NOT_FOUND,
            "Not found. No such session.",
        ))
    })
}

/// Answers a connection call, or `None` if the path is not one.
pub(crate) fn route(
    shared: &Shared,
    parts: &Parts,
    presented: Option<&Presented>,
) -> Option<Response<Body>> {
    let (project, session_id, target) = parse_path(parts.uri.path())?;
    let allowed = match target {
        Target::List => Method::GET,
        Target::One(_) => Method::DELETE,
    };
    let now = now_ms();
    let owner =
        match admit_session_call(shared, parts, allowed, presented, project, session_id, now) {
            Ok(created) => created.owner,
            Err(refused) => return Some(*refused),
        };
    let response = match target {
        Target::List => {
            let live = shared.registry.live(session_id);
            let items: Vec<Value> = live
                .connections
                .iter()
                .map(|c| {
                    json!({
                        "connectionId": c.connection_id,
                        "connectionState": "Connected",
                        "createdAt": c.created_at,
                    })
                })
                .collect();
            reply::json(
                StatusCode::OK,
                &json!({
                    "count": items.len(),
                    "projectId": owner,
                    "sessionId": session_id,
                    "items": items,
                }),
            )
        }
        Target::One(connection_id) => {
            match disconnected(
                shared,
                session_id,
                connection_id,
                "forceDisconnected",
                false,
            ) {
                Ok(()) => reply::no_content(),
                Err(Missing::Connection) => reply::error(
                    StatusCode::NOT_FOUND,
                    "Not found. The connection is not connected to the session.",
                ),
            }
        }
    };
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_paths_parse() {
        assert_eq!(
            parse_path("/v2/project/k/session/s/connection"),
            Some(("k", "s", Target::List))
        );
        assert_eq!(
            parse_path("/v2/project/k/session/s/connection/c/"),
            Some(("k", "s", Target::One("c")))
        );
        assert_eq!(parse_path("/v2/project/k/session/s/stream"), None);
        assert_eq!(parse_path("/v2/project/k/archive"), None);
        assert_eq!(parse_path("/v2/project/k/session/s/connection/c/x"), None);
    }

    fn connection(session: &str, id: &str) -> Connection {
        Connection {
            connection_id: id.into(),
            session_id: session.into(),
            created_at: 1,
            data: None,
            role: "publisher".into(),
        }
    }

    #[test]
    fn disconnecting_drops_the_connection_and_its_streams() {
        let registry = Registry::default();
        assert!(registry.connect(connection("s", "a")));
        assert!(!registry.connect(connection("s", "b")));
        let (stream, _) = registry
            .publish("s", "a", "camera".into(), "A".into())
            .unwrap();
        registry
            .publish("s", "b", "screen".into(), String::new())
            .unwrap();
        let (gone, streams, empty) = registry.disconnect("s", "a").unwrap();
        assert_eq!(gone.connection_id, "a");
        assert_eq!(streams.len(), 1);
        assert_eq!(streams[0].stream_id, stream.stream_id);
        assert!(!empty);
        assert_eq!(registry.live("s").streams.len(), 1);
        assert_eq!(
            registry.disconnect("s", "a").unwrap_err(),
            Missing::Connection
        );
        let (_, _, empty) = registry.disconnect("s", "b").unwrap();
        assert!(empty);
        assert!(registry.live("s").connections.is_empty());
    }
}
