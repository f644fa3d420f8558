//! Vonage's moderation calls on the live side of a session (`connections`): force mute of one
//! stream or of the whole session (a state until lifted, covering streams published later),
//! signals to one connection or to all (recorded with who received them), and the streams of
//! a session. Force disconnect and the connection list live in `connections`.
//!
//! Vonage API (same auth as archives; `{key}` must be the authenticated owner):
//! - `POST /v2/project/{key}/session/{sid}/stream/{streamId}/mute`: 200 with the project's
//!   details (`{id, status, name, environment, createdAt}`; never a secret); 404 unknown stream.
//! - `POST …/session/{sid}/mute` `{"active": bool, "excludedStreamIds": [...]}`: 200 as above;
//!   404 when nobody is connected; 400 without a boolean `active`.
//! - `POST …/session/{sid}/signal`, `POST …/session/{sid}/connection/{cid}/signal`
//!   `{"type"?, "data"}`: 204; 404 for an unknown connection (or, to all, when nobody is
//!   connected); 413 when `type` exceeds 128 bytes or `data` 8 kB; 400 for a bad body.
//! - `GET …/session/{sid}/stream`: 200 `{"count", "items": [{id, videoType, name,
//!   layoutClassList}]}`; `GET …/stream/{streamId}`: one, or 404.
//!
//! An unknown session is 404, a malformed session ID 400, bad auth 403.
//!
//! Control (never faulted): `GET /_emulator/sessions/{sessionId}/moderation`:
//! `{"muteAll": {active, excludedStreamIds} | null, "streams": [{streamId, connectionId,
//! audioMuted}], "signals": [{connectionId | null, type, data, to: [...], at}]}`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{Method, Response, StatusCode};
use axum::routing::get;
use serde::Serialize;
use serde_json::{Value, json};

use super::archive::now_ms;
use super::auth::Presented;
use super::connections::{admit_session_call, known_session};
use super::reply;
use super::state::Shared;

/// Vonage's signal limits.
const MAX_TYPE_BYTES: usize = 128;
const MAX_DATA_BYTES: usize = 8 * 1024;
/// Signals kept per session; older ones are forgotten first.
const MAX_SIGNALS: usize = 1000;

/// A signal as delivered.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SignalRecord {
    /// The addressed connection; `None` for a signal to everyone.
    connection_id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    data: String,
    /// The connections that received it.
    to: Vec<String>,
    /// When, epoch milliseconds.
    at: u64,
}

/// A period of the session's mute state: streams published during it are muted too.
#[derive(Debug, Clone)]
struct MutePeriod {
    from: u64,
    until: Option<u64>,
    excluded: BTreeSet<String>,
}

#[derive(Debug, Default)]
struct SessionModeration {
    muted: BTreeSet<String>,
    periods: Vec<MutePeriod>,
    signals: Vec<SignalRecord>,
}

impl SessionModeration {
    fn active(&self) -> Option<&MutePeriod> {
        self.periods.last().filter(|period| period.until.is_none())
    }

    /// Whether a stream's audio is muted: muted by name, or published (or present) while a
    /// mute-all that did not exclude it was active.
    fn is_muted(&self, stream_id: &str, created_at: u64) -> bool {
        self.muted.contains(stream_id)
            || self.periods.iter().any(|period| {
                !period.excluded.contains(stream_id)
                    && period.until.is_none_or(|until| created_at < until)
                    && created_at >= period.from
            })
    }
}

/// Every session's moderation state.
#[derive(Debug, Default)]
pub(crate) struct ModerationState {
    sessions: Mutex<BTreeMap<String, SessionModeration>>,
}

impl ModerationState {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, SessionModeration>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets everything.
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }
}

/// The control route, merged into the control router.
pub(crate) fn control_routes() -> Router<Arc<Shared>> {
    Router::new().route("/_emulator/sessions/{session_id}/moderation", get(inspect))
}

async fn inspect(
    State(shared): State<Arc<Shared>>,
    session_id: Result<Path<String>, PathRejection>,
) -> Response<Body> {
    let session_id = match known_session(&shared, session_id) {
        Ok(session_id) => session_id,
        Err(refused) => return *refused,
    };
    let live = shared.registry.live(&session_id);
    let sessions = shared.moderation.lock();
    let empty = SessionModeration::default();
    let state = sessions.get(&session_id).unwrap_or(&empty);
    let streams: Vec<Value> = live
        .streams
        .iter()
        .map(|s| {
            json!({
                "streamId": s.stream_id,
                "connectionId": s.connection_id,
                "audioMuted": state.is_muted(&s.stream_id, s.created_at),
            })
        })
        .collect();
    let mute_all = state.active().map(|period| {
        json!({"active": true, "excludedStreamIds": period.excluded.iter().collect::<Vec<_>>()})
    });
    reply::json(
        StatusCode::OK,
        &json!({"muteAll": mute_all, "streams": streams, "signals": state.signals}),
    )
}

/// What a moderation path addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target<'a> {
    Streams,
    Stream(&'a str),
    MuteStream(&'a str),
    MuteAll,
    SignalAll,
    SignalOne(&'a str),
}

fn parse_path(path: &str) -> Option<(&str, &str, Target<'_>)> {
    let rest = path.strip_prefix("/v2/project/")?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let segments: Vec<&str> = rest.split('/').collect();
    let (project, session_id) = match segments.as_slice() {
        [project, "session", session_id, ..] if !project.is_empty() && !session_id.is_empty() => {
            (*project, *session_id)
        }
        _ => return None,
    };
    let target = match &segments[3..] {
        ["stream"] => Target::Streams,
        ["stream", id] if !id.is_empty() => Target::Stream(id),
        ["stream", id, "mute"] if !id.is_empty() => Target::MuteStream(id),
        ["mute"] => Target::MuteAll,
        ["signal"] => Target::SignalAll,
        ["connection", id, "signal"] if !id.is_empty() => Target::SignalOne(id),
        _ => return None,
    };
    Some((project, session_id, target))
}

/// Answers a moderation call, or `None` if the path is not one.
pub(crate) fn route(
    shared: &Shared,
    parts: &Parts,
    presented: Option<&Presented>,
    body: &[u8],
) -> Option<Response<Body>> {
    let (project, session_id, target) = parse_path(parts.uri.path())?;
    let allowed = match target {
        Target::Streams | Target::Stream(_) => Method::GET,
        _ => Method::POST,
    };
    let now = now_ms();
    let created =
        match admit_session_call(shared, parts, allowed, presented, project, session_id, now) {
            Ok(created) => created,
            Err(refused) => return Some(*refused),
        };
    let project_details = json!({
        "id": created.owner,
        "status": "ACTIVE",
        "name": "",
        "environment": "standard",
        "createdAt": created.created_at,
    });
    let live = shared.registry.live(session_id);
    let mut sessions = shared.moderation.lock();
    let state = sessions.entry(session_id.to_owned()).or_default();
    let wire = |s: &super::connections::Stream| json!({"id": s.stream_id, "videoType": s.video_type, "name": s.name, "layoutClassList": []});
    let response = match target {
        Target::Streams => {
            let items: Vec<Value> = live.streams.iter().map(wire).collect();
            reply::json(
                StatusCode::OK,
                &json!({"count": items.len(), "items": items}),
            )
        }
        Target::Stream(id) => match live.streams.iter().find(|s| s.stream_id == id) {
            Some(stream) => reply::json(StatusCode::OK, &wire(stream)),
            None => reply::error(StatusCode::NOT_FOUND, "Not found. The stream is not found."),
        },
        Target::MuteStream(id) => {
            if live.streams.iter().any(|s| s.stream_id == id) {
                state.muted.insert(id.to_owned());
                reply::json(StatusCode::OK, &project_details)
            } else {
                reply::error(StatusCode::NOT_FOUND, "Not found. The stream is not found.")
            }
        }
        Target::MuteAll => mute_all(state, &live, body, now, &project_details),
        Target::SignalAll | Target::SignalOne(_) => {
            let to_one = match target {
                Target::SignalOne(id) => Some(id),
                _ => None,
            };
            signal(state, &live, to_one, body, now)
        }
    };
    Some(response)
}

fn mute_all(
    state: &mut SessionModeration,
    live: &super::connections::Live,
    body: &[u8],
    now: u64,
    project_details: &Value,
) -> Response<Body> {
    let body = serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
    let Some(active) = body.get("active").and_then(Value::as_bool) else {
        return reply::error(
            StatusCode::BAD_REQUEST,
            "Invalid request: active (boolean) is required",
        );
    };
    let excluded = match body.get("excludedStreamIds") {
        None | Some(Value::Null) => BTreeSet::new(),
        Some(Value::Array(ids)) if ids.iter().all(Value::is_string) => ids
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(_) => {
            return reply::error(
                StatusCode::BAD_REQUEST,
                "Invalid request: excludedStreamIds must be an array of stream IDs",
            );
        }
    };
    if live.connections.is_empty() {
        return reply::error(
            StatusCode::NOT_FOUND,
            "Not found. No clients are connected to the session.",
        );
    }
    if let Some(period) = state.periods.last_mut().filter(|p| p.until.is_none()) {
        period.until = Some(now);
    }
    if active {
        // Streams present now are muted for good; the period covers later ones.
        for stream in &live.streams {
            if !excluded.contains(&stream.stream_id) {
                state.muted.insert(stream.stream_id.clone());
            }
        }
        state.periods.push(MutePeriod {
            from: now,
            until: None,
            excluded,
        });
    }
    reply::json(StatusCode::OK, project_details)
}

fn signal(
    state: &mut SessionModeration,
    live: &super::connections::Live,
    to_one: Option<&str>,
    body: &[u8],
    now: u64,
) -> Response<Body> {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(body) else {
        return reply::error(
            StatusCode::BAD_REQUEST,
            "Invalid request: the body must be a JSON object with type and data",
        );
    };
    let kind = match body.get("type") {
        None | Some(Value::Null) => None,
        Some(Value::String(kind)) => Some(kind.clone()),
        Some(_) => {
            return reply::error(
                StatusCode::BAD_REQUEST,
                "Invalid request: type must be a string",
            );
        }
    };
    let Some(data) = body.get("data").and_then(Value::as_str) else {
        return reply::error(
            StatusCode::BAD_REQUEST,
            "Invalid request: data must be a string",
        );
    };
    if kind.as_ref().is_some_and(|k| k.len() > MAX_TYPE_BYTES) || data.len() > MAX_DATA_BYTES {
        return reply::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The type string exceeds the maximum length (128 bytes), or the data string exceeds the maximum size (8 kB).",
        );
    }
    let to: Vec<String> = match to_one {
        Some(id) => {
            if !live.connections.iter().any(|c| c.connection_id == id) {
                return reply::error(
                    StatusCode::NOT_FOUND,
                    "Not found. The client specified by the connectionId property is not connected to the session.",
                );
            }
            vec![id.to_owned()]
        }
        None if live.connections.is_empty() => {
            return reply::error(
                StatusCode::NOT_FOUND,
                "Not found. No clients are connected to the session.",
            );
        }
        None => live
            .connections
            .iter()
            .map(|c| c.connection_id.clone())
            .collect(),
    };
    if state.signals.len() >= MAX_SIGNALS {
        state.signals.remove(0);
    }
    state.signals.push(SignalRecord {
        connection_id: to_one.map(str::to_owned),
        kind,
        data: data.to_owned(),
        to,
        at: now,
    });
    reply::no_content()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_parsed_strictly() {
        let p = "/v2/project/123456/session/1_MX4/";
        assert_eq!(
            parse_path(&format!("{p}stream")).unwrap().2,
            Target::Streams
        );
        assert_eq!(
            parse_path(&format!("{p}stream/s1")).unwrap().2,
            Target::Stream("s1")
        );
        assert_eq!(
            parse_path(&format!("{p}stream/s1/mute")).unwrap().2,
            Target::MuteStream("s1")
        );
        assert_eq!(parse_path(&format!("{p}mute")).unwrap().2, Target::MuteAll);
        assert_eq!(
            parse_path(&format!("{p}signal")).unwrap().2,
            Target::SignalAll
        );
        assert_eq!(
            parse_path(&format!("{p}connection/c1/signal")).unwrap().2,
            Target::SignalOne("c1")
        );
        assert!(
            parse_path(&format!("{p}connection/c1")).is_none(),
            "force disconnect is elsewhere"
        );
        assert!(parse_path("/v2/project/123456/archive").is_none());
    }

    #[test]
    fn mute_all_covers_later_streams_until_lifted_and_spares_exclusions() {
        let mut state = SessionModeration::default();
        state.periods.push(MutePeriod {
            from: 100,
            until: Some(200),
            excluded: ["kept".to_owned()].into(),
        });
        assert!(state.is_muted("later", 150));
        assert!(!state.is_muted("kept", 150));
        assert!(!state.is_muted("after", 250), "published after the lift");
        assert!(
            !state.is_muted("before", 50),
            "not present at the time, not muted by name"
        );
    }
}
