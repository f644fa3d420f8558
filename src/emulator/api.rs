//! The Vonage API surface (every path outside `/_emulator/`): reads the request, applies the
//! injected faults, routes it (session creation here, archives in `archive`), and logs it
//! with its outcome, rejected or not.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use hyper::body::Incoming;

use super::archive;
use super::auth::{self, Presented};
use super::callbacks;
use super::connections;
use super::faults::Decision;
use super::form;
use super::moderation;
use super::reply;
use super::session;
use super::state::{RequestRecord, Shared};

/// Create-session forms and archive bodies are a few hundred bytes; anything this big is a
/// client bug.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Returned to hyper for a request the faults say to drop: hyper then closes the connection
/// without writing a response, which an axum handler cannot do.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by an injected fault")]
pub(crate) struct DroppedConnection;

/// Serves one Vonage API request: body, latency, drop or error fault, then the route.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Body>, DroppedConnection> {
    let (parts, body) = request.into_parts();
    let presented = auth::presented(&parts.headers, &shared.verifiers);
    let mut record = RequestRecord {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        status: 0,
        headers: header_map(&parts.headers),
        form: Vec::new(),
        json: None,
        auth: auth::capture(presented.as_ref()),
    };
    let bytes = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<LengthLimitError>() => {
            let response = reply::error(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large");
            return Ok(finish(&shared, record, response));
        }
        Err(_) => {
            let response = reply::error(StatusCode::BAD_REQUEST, "Invalid request body");
            return Ok(finish(&shared, record, response));
        }
    };
    record.json = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .filter(|value| value.is_object() || value.is_array());
    if record.json.is_none() {
        record.form = form::pairs(&bytes);
    }
    let faults = shared.faults();
    if !faults.latency().is_zero() {
        tokio::time::sleep(faults.latency()).await;
    }
    let response = match faults.roll() {
        Decision::Drop => {
            tracing::debug!(http.path = %record.path, "emulator dropping the connection");
            shared.add_request(record);
            return Err(DroppedConnection);
        }
        Decision::Fail(status) => reply::injected(status),
        Decision::Pass => {
            let before = callbacks::archive_statuses(&shared);
            let response = route(&shared, &parts, presented.as_ref(), &record.form, &bytes);
            callbacks::archive_changes(&shared, &before);
            response
        }
    };
    Ok(finish(&shared, record, response))
}

fn route(
    shared: &Shared,
    parts: &Parts,
    presented: Option<&Presented>,
    form: &[(String, String)],
    body: &[u8],
) -> Response<Body> {
    match parts.uri.path() {
        "/session/create" if parts.method == Method::POST => {
            session::create(shared, presented, form)
        }
        "/session/create" => reply::error(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed"),
        _ => archive::route(shared, parts, presented, body)
            .or_else(|| connections::route(shared, parts, presented))
            .or_else(|| moderation::route(shared, parts, presented, body))
            .unwrap_or_else(|| reply::error(StatusCode::NOT_FOUND, "Not found")),
    }
}

fn finish(shared: &Shared, mut record: RequestRecord, response: Response<Body>) -> Response<Body> {
    record.status = response.status().as_u16();
    tracing::debug!(
        http.method = %record.method,
        http.path = %record.path,
        http.status = record.status,
        "emulator answered"
    );
    shared.add_request(record);
    response
}

/// Headers by (already lowercased) name; repeats are joined as HTTP allows.
fn header_map(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut map = BTreeMap::<String, String>::new();
    for (name, value) in headers {
        let text = String::from_utf8_lossy(value.as_bytes());
        map.entry(name.as_str().to_owned())
            .and_modify(|joined| {
                joined.push_str(", ");
                joined.push_str(&text);
            })
            .or_insert_with(|| text.into_owned());
    }
    map
}
