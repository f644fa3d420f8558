//! The parts of the OpenAPI document that are the same across operations, generated here from
//! one table instead of repeated per handler: every problem response an operation can answer
//! (by error set, with statuses and codes taken from [`ApiError`] itself), `security` on every
//! operation that has a caller, and the path parameters' real patterns and lengths.
//!
//! A handler's `#[utoipa::path]` lists only its success statuses; a route missing from
//! [`operations`] fails the unit test below, so the document cannot silently lose its errors.

use std::collections::BTreeMap;

use utoipa::openapi::path::{HttpMethod, Operation};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{ContentBuilder, HeaderBuilder, Ref, RefOr, ResponseBuilder};

use super::moderation;
use crate::auth::{Budget, RateLimited, Scope};
use crate::error::ApiError;
use crate::video::client::VonageErrorBody;
use crate::video::{Role, VideoError};

/// What every request can meet in the front: an unreadable path or query (400), a panic or
/// minting failure (500), load shedding (503) and the request deadline (504).
const FRONT: &[&str] = &[
    "invalid_request",
    "internal",
    "overloaded",
    "upstream_timeout",
];
/// Probes are never shed.
const PROBE: &[&str] = &["internal", "upstream_timeout"];
/// A caller: authentication (JWT mode), scopes and rate limits.
const CALLER: &[&str] = &["unauthenticated", "forbidden", "rate_limited"];
/// A JSON body.
const BODY: &[&str] = &[
    "invalid_json",
    "invalid_request",
    "payload_too_large",
    "request_timeout",
    "unsupported_media_type",
];
/// Token options.
const TOKEN: &[&str] = &["invalid_request", "role_not_allowed"];
/// A Vonage call.
const VONAGE: &[&str] = &[
    "upstream_auth_failed",
    "upstream_rejected",
    "upstream_unavailable",
    "overloaded",
    "upstream_timeout",
];
/// The room store.
const STORE: &[&str] = &["store_unavailable"];
/// A room's policy (docs/room-lifecycle.md), at every token issue for its session.
const ROOM_POLICY: &[&str] = &["room_full", "room_not_open", "room_closed"];
/// A room name in the path.
const ROOM: &[&str] = &["invalid_request"];

/// One documented operation: its error sets, and whether it has a caller (and so `security`).
struct Documented {
    method: HttpMethod,
    path: String,
    caller: bool,
    failures: Vec<&'static [&'static str]>,
}

/// The moderation operations, written once for both of their targets, a session
/// (`/sessions/{sessionId}…`) and a room (`/rooms/{room}…`, which also reads the room store):
/// (method, path below the target, error sets after the caller's, whether a room has it too,
/// codes after the target's not-found).
#[allow(clippy::type_complexity)]
const MODERATION: &[(HttpMethod, &str, &[&[&str]], bool, &[&str])] = &[
    (
        HttpMethod::Delete,
        "/connections/{connectionId}",
        &[VONAGE],
        true,
        &["connection_not_found"],
    ),
    (
        HttpMethod::Delete,
        "/participants/{sub}",
        &[VONAGE],
        true,
        &["invalid_request", "store_unavailable"],
    ),
    (
        HttpMethod::Post,
        "/streams/{streamId}/mute",
        &[VONAGE],
        true,
        &["stream_not_found"],
    ),
    (
        HttpMethod::Post,
        "/mute",
        &[BODY, VONAGE],
        true,
        &["session_not_active"],
    ),
    (HttpMethod::Get, "/mute", &[], false, &["store_unavailable"]),
    (
        HttpMethod::Post,
        "/signal",
        &[BODY, VONAGE],
        true,
        &["session_not_active", "signal_too_large"],
    ),
    (
        HttpMethod::Post,
        "/connections/{connectionId}/signal",
        &[BODY, VONAGE],
        true,
        &["connection_not_found", "signal_too_large"],
    ),
    (
        HttpMethod::Get,
        "/streams",
        &[VONAGE],
        true,
        &["session_not_active"],
    ),
    (
        HttpMethod::Get,
        "/streams/{streamId}",
        &[VONAGE],
        true,
        &["stream_not_found"],
    ),
    (HttpMethod::Get, "/bans", &[], true, &["store_unavailable"]),
    (
        HttpMethod::Delete,
        "/bans/{sub}",
        &[],
        true,
        &["store_unavailable"],
    ),
];

/// Every operation of the document and what it can fail with.
fn operations() -> Vec<Documented> {
    let op = |method, path: &str, caller, failures: &[&'static [&'static str]]| Documented {
        method,
        path: path.to_owned(),
        caller,
        failures: failures.to_vec(),
    };
    use HttpMethod::{Delete, Get, Post, Put};
    let mut operations = vec![
        op(
            Post,
            "/sessions",
            true,
            &[FRONT, CALLER, BODY, TOKEN, VONAGE],
        ),
        op(
            Post,
            "/sessions/{sessionId}/tokens",
            true,
            &[
                FRONT,
                CALLER,
                BODY,
                TOKEN,
                STORE,
                ROOM_POLICY,
                &["session_not_found", "banned"],
            ],
        ),
        op(
            Post,
            "/sessions/{sessionId}/archives",
            true,
            &[
                FRONT,
                CALLER,
                BODY,
                VONAGE,
                &[
                    "session_not_found",
                    "archive_conflict",
                    "session_not_active",
                ],
            ],
        ),
        op(
            Get,
            "/sessions/{sessionId}/archives",
            true,
            &[
                FRONT,
                CALLER,
                VONAGE,
                &["invalid_request", "session_not_found"],
            ],
        ),
        op(
            Get,
            "/archives/{archiveId}",
            true,
            &[FRONT, CALLER, VONAGE, &["archive_not_found"]],
        ),
        op(
            Post,
            "/archives/{archiveId}/stop",
            true,
            &[
                FRONT,
                CALLER,
                VONAGE,
                &["archive_not_found", "archive_conflict"],
            ],
        ),
        op(
            Post,
            "/rooms/{room}/join",
            true,
            &[
                FRONT,
                CALLER,
                ROOM,
                BODY,
                TOKEN,
                VONAGE,
                STORE,
                ROOM_POLICY,
                &["room_busy", "banned"],
            ],
        ),
        op(
            Get,
            "/rooms/{room}",
            true,
            &[FRONT, CALLER, ROOM, STORE, &["room_not_found"]],
        ),
        op(
            Put,
            "/rooms/{room}",
            true,
            &[FRONT, CALLER, ROOM, BODY, STORE],
        ),
        op(Delete, "/rooms/{room}", true, &[FRONT, CALLER, ROOM, STORE]),
        op(
            Post,
            "/vonage/callbacks",
            false,
            &[
                FRONT,
                STORE,
                &[
                    "not_found",
                    "payload_too_large",
                    "request_timeout",
                    "rate_limited",
                    "callback_unauthorized",
                    "callback_unsigned",
                    "callbacks_not_configured",
                ],
            ],
        ),
        op(Get, "/livez", false, &[PROBE]),
        op(Get, "/readyz", false, &[PROBE, &["not_ready"]]),
    ];
    for (method, below, sets, room_too, codes) in MODERATION {
        let mut on = |target: &str,
                      before: &[&'static [&'static str]],
                      not_found: &'static [&'static str]| {
            let mut failures = vec![FRONT, CALLER];
            failures.extend_from_slice(before);
            failures.extend_from_slice(sets);
            failures.extend_from_slice(&[not_found, *codes]);
            operations.push(Documented {
                method: method.clone(),
                path: format!("{target}{below}"),
                caller: true,
                failures,
            });
        };
        on("/sessions/{sessionId}", &[], &["session_not_found"]);
        if *room_too {
            on("/rooms/{room}", &[ROOM, STORE], &["room_not_found"]);
        }
    }
    operations
}

/// An error of each documented code, so that its status comes from [`ApiError`] itself.
fn example(code: &str) -> ApiError {
    let vonage = VonageErrorBody::default;
    match code {
        "invalid_request" => ApiError::invalid("field", "message"),
        "invalid_json" => ApiError::InvalidJson(String::new()),
        "unsupported_media_type" => ApiError::UnsupportedMediaType,
        "payload_too_large" => ApiError::PayloadTooLarge(None),
        "request_timeout" => ApiError::RequestTimeout,
        "unauthenticated" => ApiError::Unauthenticated {
            invalid_token: false,
        },
        "forbidden" => ApiError::Forbidden(Scope::Join),
        "role_not_allowed" => ApiError::RoleNotAllowed(Role::Moderator),
        "rate_limited" => ApiError::RateLimited(RateLimited {
            budget: Budget::Create,
            per_minute: 1,
            burst: 1,
            retry_after: std::time::Duration::from_secs(1),
        }),
        "session_not_found" => ApiError::SessionNotFound,
        "room_not_found" => ApiError::RoomNotFound,
        "archive_conflict" => ApiError::ArchiveConflict(String::new()),
        "archive_not_found" => ApiError::ArchiveNotFound,
        "session_not_active" => ApiError::SessionNotActive,
        "room_busy" => ApiError::RoomBusy,
        "store_unavailable" => ApiError::StoreUnavailable,
        "upstream_auth_failed" => ApiError::Upstream(VideoError::AuthRejected {
            status: 401,
            detail: vonage(),
        }),
        "upstream_rejected" => ApiError::Upstream(VideoError::InvalidResponse),
        "upstream_unavailable" => ApiError::Upstream(VideoError::Unavailable {
            status: 503,
            retry_after: None,
            detail: vonage(),
        }),
        "upstream_timeout" => ApiError::Timeout,
        "overloaded" => ApiError::Overloaded,
        "not_ready" => ApiError::NotReady(Vec::new()),
        "connection_not_found" => ApiError::ConnectionNotFound,
        "stream_not_found" => ApiError::StreamNotFound,
        "signal_too_large" => ApiError::SignalTooLarge("data"),
        "banned" => ApiError::Banned,
        "room_full" => ApiError::RoomFull { max: 8 },
        "room_not_open" => ApiError::RoomNotOpen {
            not_before: "2026-12-03T14:00:00Z".into(),
            expires_at: Some("2026-12-03T15:00:00Z".into()),
        },
        "room_closed" => ApiError::RoomClosed {
            expires_at: "2026-12-03T15:00:00Z".into(),
        },
        "not_found" => ApiError::NotFound,
        "callback_unauthorized" => ApiError::CallbackUnauthorized,
        "callback_unsigned" => ApiError::CallbackUnsigned,
        "callbacks_not_configured" => ApiError::CallbacksNotConfigured,
        "internal" => ApiError::Internal(anyhow::anyhow!("example")),
        other => panic!("no example of problem code {other}"),
    }
}

/// The OpenAPI path parameters: (name, pattern, min length, max length, description). Lengths
/// are characters, as JSON Schema counts them.
const PATH_PARAMETERS: &[(&str, Option<&str>, usize, usize, &str)] = &[
    (
        "room",
        Some("^[A-Za-z0-9][A-Za-z0-9._-]*$"),
        1,
        128,
        "The room name: 1–128 of A-Z a-z 0-9 . _ -, starting with a letter or digit; case-sensitive",
    ),
    (
        "sessionId",
        Some("^[0-9]_[A-Za-z0-9_=+/-]+$"),
        3,
        crate::video::session_id::MAX_LEN,
        "A Vonage session ID created with this service's credentials (others are session_not_found)",
    ),
    (
        "archiveId",
        Some("^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"),
        36,
        36,
        "An archive ID (a UUID)",
    ),
    (
        "connectionId",
        Some(moderation::ID_PATTERN),
        1,
        moderation::MAX_ID_LEN,
        "A Vonage connection ID: 1–128 of A-Z a-z 0-9 . _ ~ -, not `.` or `..` (others are connection_not_found)",
    ),
    (
        "streamId",
        Some(moderation::ID_PATTERN),
        1,
        moderation::MAX_ID_LEN,
        "A Vonage stream ID: 1–128 of A-Z a-z 0-9 . _ ~ -, not `.` or `..` (others are stream_not_found)",
    ),
    (
        "sub",
        None,
        1,
        moderation::MAX_SUB_CHARS,
        "A participant's identity (their JWT `sub`): 1–256 characters",
    ),
];

/// Adds the shared parts; see the module documentation.
pub(crate) struct SharedParts;

impl utoipa::Modify for SharedParts {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for documented in operations() {
            let Some(operation) = operation_mut(openapi, &documented.path, &documented.method)
            else {
                panic!("{} is not in the document", documented.path);
            };
            add_failures(operation, &documented.failures);
            if documented.caller {
                operation.security = Some(vec![
                    SecurityRequirement::default(),
                    SecurityRequirement::new("bearer", Vec::<String>::new()),
                ]);
            }
            for parameter in operation.parameters.iter_mut().flatten() {
                if let Some((_, pattern, min, max, description)) = PATH_PARAMETERS
                    .iter()
                    .find(|(name, ..)| *name == parameter.name)
                {
                    parameter.description = Some((*description).to_owned());
                    parameter.schema = Some(RefOr::T(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .pattern(*pattern)
                            .min_length(Some(*min))
                            .max_length(Some(*max))
                            .into(),
                    ));
                }
            }
        }
    }
}

fn operation_mut<'a>(
    openapi: &'a mut utoipa::openapi::OpenApi,
    path: &str,
    method: &HttpMethod,
) -> Option<&'a mut Operation> {
    let item = openapi.paths.paths.get_mut(path)?;
    match method {
        HttpMethod::Get => item.get.as_mut(),
        HttpMethod::Post => item.post.as_mut(),
        HttpMethod::Delete => item.delete.as_mut(),
        HttpMethod::Put => item.put.as_mut(),
        _ => None,
    }
}

/// One problem response per status, naming every code the operation can answer with it.
fn add_failures(operation: &mut Operation, sets: &[&[&str]]) {
    let mut by_status: BTreeMap<u16, Vec<&str>> = BTreeMap::new();
    for code in sets.iter().flat_map(|set| set.iter()) {
        let (status, canonical) = example(code).status_and_code();
        assert_eq!(canonical, *code, "the example of {code}");
        let codes = by_status.entry(status.as_u16()).or_default();
        if !codes.contains(code) {
            codes.push(code);
        }
    }
    for (status, codes) in by_status {
        let description = codes
            .iter()
            .map(|code| format!("`{code}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut response = ResponseBuilder::new().description(description).content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        );
        let integer = || {
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
        };
        if status == 429 || status == 503 {
            response = response.header(
                "Retry-After",
                HeaderBuilder::new()
                    .schema(integer())
                    .description(Some("Seconds until a retry may succeed"))
                    .build(),
            );
        }
        if status == 401 && codes.contains(&"unauthenticated") {
            response = response.header(
                "WWW-Authenticate",
                HeaderBuilder::new()
                    .schema(ObjectBuilder::new().schema_type(Type::String))
                    .description(Some(
                        "`Bearer`, or `Bearer error=\"invalid_token\"` for a refused token",
                    ))
                    .build(),
            );
        }
        operation
            .responses
            .responses
            .insert(status.to_string(), RefOr::T(response.build()));
    }
}

/// The rules between fields that the DTOs' derived schemas cannot say (the service answers
/// `invalid_request` for them), written as JSON Schema 2020-12 conditions on the components,
/// so that a request the document allows is one the service accepts, and the other way round.
pub(crate) fn add_field_rules(doc: &mut serde_json::Value) {
    use serde_json::json;
    let schemas = &mut doc["components"]["schemas"];
    let is = |field: &str, value: serde_json::Value| json!({"required": [field], "properties": {field: {"const": value}}});
    let set = |field: &str| json!({"required": [field], "properties": {field: {"not": {"type": "null"}}}});
    let not = |field: &str, value: &str| json!({"properties": {field: {"not": {"const": value}}}});
    schemas["CreateSessionRequest"]["allOf"] = json!([
        {"if": is("archiveMode", json!("always")), "then": not("mediaMode", "relayed")},
        {"if": is("e2ee", json!(true)), "then": {"allOf": [not("mediaMode", "relayed"), not("archiveMode", "always")]}},
        {"if": set("archiveName"), "then": is("archiveMode", json!("always"))},
        {"if": set("archiveResolution"), "then": is("archiveMode", json!("always"))},
    ]);
    let start = &mut schemas["StartArchiveRequest"];
    start["allOf"] = json!([
        {"if": is("outputMode", json!("individual")), "then": {"properties": {
            "resolution": {"type": "null"}, "layout": {"type": "null"}}}},
        {"not": {"allOf": [is("hasAudio", json!(false)), is("hasVideo", json!(false))]}},
    ]);
    for field in ["name", "multiArchiveTag"] {
        start["properties"][field]["minLength"] = json!(1);
    }
    schemas["LayoutRequest"]["allOf"] = json!([
        {"if": is("type", json!("custom")),
         "then": {"required": ["stylesheet"], "properties": {"stylesheet": {"type": "string"}}},
         "else": {"properties": {"stylesheet": {"type": "null"}}}},
        {"if": set("screenshareType"), "then": is("type", json!("bestFit"))},
    ]);
    // A join's session options carry no token (it goes in the top-level `token`).
    let session = &mut schemas["JoinRoomRequest"]["properties"]["session"]["oneOf"][1];
    let description = session["description"].take();
    *session = json!({"allOf": [
        {"$ref": "#/components/schemas/CreateSessionRequest"},
        {"properties": {"token": {"type": "null"}}},
    ], "description": description});
    schemas["TokenRequest"]["properties"]["initialLayoutClassList"]["items"] =
        // No character of Unicode's White_Space (Rust's `char::is_whitespace`).
        json!({"type": "string", "pattern": concat!(
            "^[^\\t\\n\\u000B\\f\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A",
            "\\u2028\\u2029\\u202F\\u205F\\u3000]+$"
        )});
    // The stream IDs a mute-all may leave out are stream IDs (as the path parameter).
    schemas["MuteAllRequest"]["properties"]["excludedStreamIds"]["items"] = json!({
        "type": "string", "pattern": moderation::ID_PATTERN,
        "minLength": 1, "maxLength": moderation::MAX_ID_LEN,
    });
    // A room policy (`lifecycle::policy`): times are RFC 3339, moderators are JWT `sub`s, and
    // a default role must be one of the allowed roles. (That `expiresAt` is later than
    // `notBefore` is the one rule JSON Schema cannot compare: scripts/schemathesis.toml.)
    let policy = &mut schemas["RoomPolicy"];
    for field in ["notBefore", "expiresAt"] {
        policy["properties"][field]["format"] = json!("date-time");
    }
    policy["properties"]["moderators"]["maxItems"] = json!(100);
    policy["properties"]["moderators"]["items"] =
        json!({"type": "string", "minLength": 1, "maxLength": 256});
    policy["properties"]["allowedRoles"]["minItems"] = json!(1);
    policy["allOf"] = ["publisher", "subscriber", "moderator", "publisheronly"]
        .iter()
        .map(|role| {
            json!({
                "if": {"required": ["defaultRole", "allowedRoles"], "properties": {
                    "defaultRole": {"const": role}, "allowedRoles": {"type": "array"}}},
                "then": {"properties": {"allowedRoles": {"contains": {"const": role}}}},
            })
        })
        .collect();
    let list = &mut doc["paths"]["/sessions/{sessionId}/archives"]["get"]["parameters"];
    for parameter in list.as_array_mut().into_iter().flatten() {
        if parameter["name"] == "count" {
            parameter["schema"]["minimum"] = json!(1);
            parameter["schema"]["maximum"] = json!(1000);
        }
    }
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi as _;

    use super::*;

    #[test]
    fn every_documented_operation_has_its_failures_and_every_route_is_documented() {
        let doc = super::super::ApiDoc::openapi();
        let mut documented = 0;
        for (path, item) in &doc.paths.paths {
            for (method, operation) in [
                ("get", &item.get),
                ("post", &item.post),
                ("put", &item.put),
                ("delete", &item.delete),
            ] {
                let Some(operation) = operation else { continue };
                documented += 1;
                assert!(
                    operation
                        .responses
                        .responses
                        .keys()
                        .any(|status| status.starts_with('5')),
                    "{method} {path} lists its failures"
                );
            }
        }
        assert_eq!(
            documented,
            operations().len(),
            "one table entry per operation"
        );
    }
}
