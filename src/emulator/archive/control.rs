//! Archive control endpoints (JSON, camelCase; never subject to faults):
//! - `PUT /_emulator/sessions/{sessionId}/connections` `{"connected": bool}`: whether the
//!   session has connected clients (default: none). Disconnecting pauses its archives.
//! - `GET /_emulator/archives`: every archive of every owner, oldest first, in wire form.
//! - `PUT /_emulator/archives/{archiveId}/status` `{"status": "failed"|…}`: force a status.
//! - `GET`, `PUT /_emulator/archive-processing` `{"delayMs": N}`: how long a stopped archive
//!   takes to become available (default 0: on the next read).
//! - `GET /_emulator/downloads/{archiveId}.mp4`: the file of an available archive.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, Response, StatusCode, Uri};
use axum::routing::{get, put};
use serde_json::{Value, json};

use super::model::{Status, recording};
use super::{MAX_DELAY_MS, base_url, now_ms};
use crate::emulator::reply;
use crate::emulator::state::Shared;

type SharedState = State<Arc<Shared>>;

/// The archive control routes, merged into the control router.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/_emulator/sessions/{session_id}/connections",
            put(put_connections),
        )
        .route("/_emulator/archives", get(list))
        .route("/_emulator/archives/{archive_id}/status", put(put_status))
        .route(
            "/_emulator/archive-processing",
            get(get_processing).put(put_processing),
        )
        .route("/_emulator/downloads/{file}", get(download))
}

async fn put_connections(
    State(shared): SharedState,
    session_id: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Response<Body> {
    let Ok(Path(session_id)) = session_id else {
        return reply::error(StatusCode::NOT_FOUND, "Not found");
    };
    let Some(connected) = field(&body, "connected").and_then(|value| value.as_bool()) else {
        return bad_request(r#"the body must be {"connected": true|false}"#);
    };
    let known = shared.archives(|archives, sessions| {
        let known = sessions.iter().any(|s| s.session_id == session_id);
        if known {
            archives.set_connected(&session_id, connected, now_ms());
        }
        known
    });
    if !known {
        return reply::error(StatusCode::NOT_FOUND, "Not found. No such session.");
    }
    let body = json!({"sessionId": session_id, "connected": connected});
    reply::json(StatusCode::OK, &body)
}

async fn list(State(shared): SharedState, headers: HeaderMap, uri: Uri) -> Response<Body> {
    let base = base_url(&headers, &uri);
    let all = shared.archives(|archives, _| {
        let all: Vec<Value> = archives.all().iter().map(|a| a.to_wire(&base)).collect();
        all
    });
    reply::json(StatusCode::OK, &all)
}

async fn put_status(
    State(shared): SharedState,
    archive_id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response<Body> {
    let Ok(Path(archive_id)) = archive_id else {
        return reply::error(StatusCode::NOT_FOUND, "Not found");
    };
    let status = field(&body, "status").and_then(|value| value.as_str().and_then(Status::parse));
    let Some(status) = status else {
        let names: Vec<_> = Status::ALL.iter().map(|status| status.as_str()).collect();
        return bad_request(&format!("status must be one of {}", names.join(", ")));
    };
    let base = base_url(&headers, &uri);
    let forced = shared.archives(|archives, _| {
        let forced = archives.force_status(&archive_id, status, now_ms());
        forced.map(|archive| archive.to_wire(&base))
    });
    match forced {
        Some(archive) => reply::json(StatusCode::OK, &archive),
        None => reply::error(StatusCode::NOT_FOUND, "Not found. No such archive."),
    }
}

async fn get_processing(State(shared): SharedState) -> Response<Body> {
    reply::json(
        StatusCode::OK,
        &json!({"delayMs": shared.archive_delay_ms()}),
    )
}

async fn put_processing(State(shared): SharedState, body: Bytes) -> Response<Body> {
    let delay = field(&body, "delayMs").and_then(|value| value.as_u64());
    match delay.filter(|delay| *delay <= MAX_DELAY_MS) {
        Some(delay) => {
            shared.set_archive_delay_ms(delay);
            reply::json(StatusCode::OK, &json!({"delayMs": delay}))
        }
        None => bad_request(&format!("delayMs must be between 0 and {MAX_DELAY_MS}")),
    }
}

/// The file of an available archive, as `video/mp4`.
async fn download(
    State(shared): SharedState,
    file: Result<Path<String>, PathRejection>,
) -> Response<Body> {
    let id = file
        .ok()
        .and_then(|Path(file)| file.strip_suffix(".mp4").map(str::to_owned));
    let size = id.and_then(|id| {
        shared.archives(|archives, _| {
            let archive = archives.find(&id)?;
            (archive.status == Status::Available).then_some(archive.size)
        })
    });
    let Some(size) = size else {
        return reply::error(StatusCode::NOT_FOUND, "Not found");
    };
    let mut response = Response::new(Body::from(recording(size)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    response
}

/// One field of a JSON object body, if the body is one.
fn field(body: &[u8], name: &str) -> Option<Value> {
    let mut value = serde_json::from_slice::<Value>(body).ok()?;
    value.as_object_mut()?.remove(name)
}

fn bad_request(message: &str) -> Response<Body> {
    reply::error(
        StatusCode::BAD_REQUEST,
        &format!("Invalid request: {message}"),
    )
}
