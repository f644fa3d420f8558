//! `POST /vonage/callbacks`: Vonage's session-monitoring and archive-status callbacks. No
//! caller token and no CORS: each callback is verified by its own signature instead
//! (`callbacks::receiver`, docs/callbacks.md).

use axum::extract::{Request, State};
use axum::http::StatusCode;

use crate::error::{ApiError, ApiResult, BodyLimit};
use crate::state::AppState;

/// Receive a Vonage callback (signed: `Authorization: Bearer <HS256 JWT>`, docs/callbacks.md).
#[utoipa::path(
    post, path = "/vonage/callbacks", tag = "callbacks",
    request_body(content = serde_json::Value, content_type = "application/json",
        description = "A session-monitoring event (`sessionId`, `applicationId` or `projectId`, `event`, `timestamp`, …) or an archive's JSON, exactly as Vonage posts it"),
    responses(
        (status = 204, description = "Verified, and applied or ignored (an unknown event, an older state)"),
    )
)]
pub(crate) async fn receive_callback(
    State(state): State<AppState>,
    request: Request,
) -> ApiResult<StatusCode> {
    let limit = request
        .extensions()
        .get::<BodyLimit>()
        .map_or(16 * 1024, |limit| limit.0);
    let (parts, body) = request.into_parts();
    // `front` has read the body already, within `server.body_limit_bytes`.
    let body = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::PayloadTooLarge(Some(limit)))?;
    state
        .callbacks
        .receive(&parts, &body, state.callback_sink.as_ref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
