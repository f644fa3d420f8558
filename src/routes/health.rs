//! Probes: `/livez` (and `/healthz`) say the process serves; `/readyz` says it should get
//! traffic. Neither ever calls Vonage or creates a session.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// A probe's answer.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Health {
    /// Always `ok` when the answer is 200.
    #[schema(example = "ok")]
    pub(crate) status: &'static str,
}

/// Readiness, with information that never makes it fail.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Ready {
    /// Always `ok` when the answer is 200.
    #[schema(example = "ok")]
    pub(crate) status: &'static str,
    /// The Vonage circuit breaker: `closed`, `half-open` or `open` (information only: an open
    /// breaker does not make the replica unready, since every replica shares the same Vonage).
    #[schema(example = "closed")]
    pub(crate) vonage_breaker: &'static str,
}

/// Liveness: 200 while the process serves requests. Touches nothing.
#[utoipa::path(get, path = "/livez", tag = "health", responses((status = 200, body = Health)))]
pub(crate) async fn livez() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: 200 when config and keys are loaded, the room store answers and the service is
/// not draining.
#[utoipa::path(
    get, path = "/readyz", tag = "health",
    responses(
        (status = 200, body = Ready),
    )
)]
pub(crate) async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Ready>> {
    // Config and credentials were loaded before the listener was bound; what can fail at run
    // time is draining and the room store (a Redis PING, bounded by rooms.store_timeout_ms).
    let mut failing = Vec::new();
    if state.readiness.is_draining() {
        failing.push("draining");
    }
    if let Err(error) = state.rooms.store().ping().await {
        tracing::warn!(error = %error, "readiness: the room store does not answer");
        failing.push("room_store");
    }
    if !failing.is_empty() {
        return Err(ApiError::NotReady(failing));
    }
    Ok(Json(Ready {
        status: "ok",
        vonage_breaker: state.video.breaker_state(),
    }))
}
