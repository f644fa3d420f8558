//! The `/_emulator/*` control endpoints tests use to inspect and steer the emulator: sessions,
//! the request log, faults and reset, plus the archive ones (`archive::control_routes`).
//! Faults never apply here.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{Response, StatusCode};
use axum::routing::{get, post};

use super::archive;
use super::faults::Faults;
use super::reply;
use super::state::Shared;

/// The control router, already holding the shared state.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/_emulator/sessions", get(list_sessions))
        .route(
            "/_emulator/requests",
            get(list_requests).delete(clear_requests),
        )
        .route(
            "/_emulator/faults",
            get(get_faults).put(put_faults).delete(clear_faults),
        )
        .route("/_emulator/reset", post(reset))
        .merge(archive::control_routes())
        .merge(super::connections::control_routes())
        .merge(super::callbacks::control_routes())
        .merge(super::moderation::control_routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(shared)
}

async fn list_sessions(State(shared): State<Arc<Shared>>) -> Response<Body> {
    reply::json(StatusCode::OK, &shared.sessions())
}

async fn list_requests(State(shared): State<Arc<Shared>>) -> Response<Body> {
    reply::json(StatusCode::OK, &shared.requests())
}

async fn clear_requests(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.clear_requests();
    StatusCode::NO_CONTENT
}

async fn get_faults(State(shared): State<Arc<Shared>>) -> Response<Body> {
    reply::json(StatusCode::OK, &shared.faults())
}

/// Takes raw bytes rather than `Json<Faults>` so that a bad body gets our JSON error shape.
async fn put_faults(State(shared): State<Arc<Shared>>, body: Bytes) -> Response<Body> {
    let faults = match serde_json::from_slice::<Faults>(&body) {
        Ok(faults) => faults,
        Err(error) => {
            let message = format!("Invalid faults: {error}");
            return reply::error(StatusCode::BAD_REQUEST, &message);
        }
    };
    if let Err(error) = faults.validate() {
        return reply::error(StatusCode::BAD_REQUEST, &format!("Invalid faults: {error}"));
    }
    shared.set_faults(faults.clone());
    reply::json(StatusCode::OK, &faults)
}

async fn clear_faults(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.set_faults(Faults::default());
    StatusCode::NO_CONTENT
}

async fn reset(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.reset();
    StatusCode::NO_CONTENT
}

async fn not_found() -> Response<Body> {
    reply::error(StatusCode::NOT_FOUND, "Not found")
}

async fn method_not_allowed() -> Response<Body> {
    reply::error(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
}
