//! The HTTP surface: every path in one place, the fallbacks, and the OpenAPI document.

pub(crate) mod archives;
pub(crate) mod callbacks;
pub(crate) mod health;
pub(crate) mod moderation;
mod openapi;
pub(crate) mod rooms;
mod seats;
pub(crate) mod sessions;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use utoipa::OpenApi;

use crate::error::ApiError;
use crate::state::AppState;
use openapi::SharedParts;

/// The OpenAPI 3.1 document, generated from the handlers and DTOs.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "vonage-sessions",
        description = "Creates Vonage Video sessions and mints client tokens with server-held credentials. \
            Every error is application/problem+json with a stable `code`. With `auth.mode = \"jwt\"` \
            callers send `Authorization: Bearer <JWT>` from the app's identity provider, whose scopes \
            (`video:create`, `video:join`, `video:moderate`, `video:admin`) decide what they may do; \
            with `auth.mode = \"anonymous\"` no token is needed.",
        license(name = "MIT")
    ),
    paths(
        sessions::create_session,
        sessions::create_token,
        rooms::join_room,
        rooms::get_room,
        rooms::put_room,
        rooms::delete_room,
        archives::start_archive,
        archives::stop_archive,
        archives::get_archive,
        archives::list_archives,
        moderation::remove_connection,
        moderation::remove_participant,
        moderation::mute_stream,
        moderation::mute_all,
        moderation::get_mute,
        moderation::signal_all,
        moderation::signal_connection,
        moderation::list_streams,
        moderation::get_stream,
        moderation::list_bans,
        moderation::lift_ban,
        moderation::room_remove_connection,
        moderation::room_remove_participant,
        moderation::room_mute_stream,
        moderation::room_mute_all,
        moderation::room_signal_all,
        moderation::room_signal_connection,
        moderation::room_list_streams,
        moderation::room_get_stream,
        moderation::room_list_bans,
        moderation::room_lift_ban,
        callbacks::receive_callback,
        health::livez,
        health::readyz
    ),
    components(schemas(crate::error::Problem)),
    tags(
        (name = "sessions", description = "Sessions and client tokens"),
        (name = "rooms", description = "Named rooms: one session per room, across replicas"),
        (name = "archives", description = "Recordings of routed sessions"),
        (name = "moderation", description = "Remove, ban, mute and signal participants; list streams (video:moderate)"),
        (name = "callbacks", description = "Vonage's signed callbacks to this service (no caller token; each is verified)"),
        (name = "health", description = "Probes")
    ),
    modifiers(&BearerScheme, &SharedParts)
)]
pub(crate) struct ApiDoc;

/// Declares the `bearer` security scheme the API operations refer to.
struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("JWT")
                        .description(Some(
                            "A JWT from the app's identity provider (auth.mode = \"jwt\"); not needed with auth.mode = \"anonymous\"",
                        ))
                        .build(),
                ),
            );
    }
}

/// The OpenAPI document as pretty JSON, as served and as committed in `openapi.json`.
pub fn openapi_json() -> String {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    openapi::add_field_rules(&mut doc);
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

/// All routes. Probes answer GET and HEAD (axum answers HEAD for GET routes). Path templates are
/// written as in the OpenAPI document (`{sessionId}`), since they are the metrics' `route` label.
pub(crate) fn router() -> Router<AppState> {
    let openapi = openapi_json();
    Router::new()
        .route("/sessions", post(sessions::create_session))
        .route("/sessions/{sessionId}/tokens", post(sessions::create_token))
        .route(
            "/sessions/{sessionId}/archives",
            post(archives::start_archive).get(archives::list_archives),
        )
        .route("/archives/{archiveId}", get(archives::get_archive))
        .route("/archives/{archiveId}/stop", post(archives::stop_archive))
        .route("/rooms/{room}/join", post(rooms::join_room))
        .route(
            "/rooms/{room}",
            get(rooms::get_room)
                .put(rooms::put_room)
                .delete(rooms::delete_room),
        )
        .merge(moderation_routes())
        .route("/vonage/callbacks", post(callbacks::receive_callback))
        .route("/livez", get(health::livez))
        .route("/healthz", get(health::livez))
        .route("/readyz", get(health::readyz))
        .route(
            "/openapi.json",
            get(move || async move {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    openapi.clone(),
                )
                    .into_response()
            }),
        )
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
}

/// The moderation routes, under a session and under a room.
fn moderation_routes() -> Router<AppState> {
    use axum::routing::delete;
    Router::new()
        .route(
            "/sessions/{sessionId}/connections/{connectionId}",
            delete(moderation::remove_connection),
        )
        .route(
            "/sessions/{sessionId}/connections/{connectionId}/signal",
            post(moderation::signal_connection),
        )
        .route(
            "/sessions/{sessionId}/participants/{sub}",
            delete(moderation::remove_participant),
        )
        .route(
            "/sessions/{sessionId}/streams",
            get(moderation::list_streams),
        )
        .route(
            "/sessions/{sessionId}/streams/{streamId}",
            get(moderation::get_stream),
        )
        .route(
            "/sessions/{sessionId}/streams/{streamId}/mute",
            post(moderation::mute_stream),
        )
        .route(
            "/sessions/{sessionId}/mute",
            post(moderation::mute_all).get(moderation::get_mute),
        )
        .route("/sessions/{sessionId}/signal", post(moderation::signal_all))
        .route("/sessions/{sessionId}/bans", get(moderation::list_bans))
        .route(
            "/sessions/{sessionId}/bans/{sub}",
            delete(moderation::lift_ban),
        )
        .route(
            "/rooms/{room}/connections/{connectionId}",
            delete(moderation::room_remove_connection),
        )
        .route(
            "/rooms/{room}/connections/{connectionId}/signal",
            post(moderation::room_signal_connection),
        )
        .route(
            "/rooms/{room}/participants/{sub}",
            delete(moderation::room_remove_participant),
        )
        .route("/rooms/{room}/streams", get(moderation::room_list_streams))
        .route(
            "/rooms/{room}/streams/{streamId}",
            get(moderation::room_get_stream),
        )
        .route(
            "/rooms/{room}/streams/{streamId}/mute",
            post(moderation::room_mute_stream),
        )
        .route("/rooms/{room}/mute", post(moderation::room_mute_all))
        .route("/rooms/{room}/signal", post(moderation::room_signal_all))
        .route("/rooms/{room}/bans", get(moderation::room_list_bans))
        .route(
            "/rooms/{room}/bans/{sub}",
            delete(moderation::room_lift_ban),
        )
}

pub(crate) use crate::vocab::rfc3339_from_millis;
