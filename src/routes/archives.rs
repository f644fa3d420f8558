//! Archives (recordings) of routed sessions: start and stop (moderators only), get and list
//! (joiners). Our camelCase shape is stable and independent of Vonage's wire shape.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Caller, Scope};
use crate::error::{ApiError, ApiResult, OptionalJson, PathParam};
use crate::state::AppState;
use crate::video::archives::{Archive, ArchiveLayout, StartArchive};
use crate::video::{ArchiveResolution, session_id};

/// How an archive is recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum OutputMode {
    /// All streams composed into one file (default).
    #[default]
    Composed,
    /// One file per stream.
    Individual,
}

/// Which streams are recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StreamMode {
    /// Every stream (default).
    Auto,
    /// Only streams added explicitly.
    Manual,
}

/// Composed layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) enum LayoutType {
    /// Tiles (default).
    BestFit,
    /// A stylesheet of your own (`stylesheet` required).
    Custom,
    /// One large stream above a row of small ones.
    HorizontalPresentation,
    /// Picture in picture.
    Pip,
    /// One large stream beside a column of small ones.
    VerticalPresentation,
}

/// A composed archive's layout.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct LayoutRequest {
    /// The layout.
    #[serde(rename = "type")]
    pub(crate) kind: LayoutType,
    /// CSS for `custom` layouts (only there).
    pub(crate) stylesheet: Option<String>,
    /// Layout while a screen is shared (`bestFit` only).
    pub(crate) screenshare_type: Option<LayoutType>,
}

/// What to record; every field is optional.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct StartArchiveRequest {
    /// A name for the archive (at most 200 characters).
    #[schema(max_length = 200)]
    pub(crate) name: Option<String>,
    /// Record audio (default true).
    pub(crate) has_audio: Option<bool>,
    /// Record video (default true).
    pub(crate) has_video: Option<bool>,
    /// `composed` (default) or `individual`.
    pub(crate) output_mode: Option<OutputMode>,
    /// Composed archives only.
    pub(crate) resolution: Option<ArchiveResolution>,
    /// Composed archives only.
    pub(crate) layout: Option<LayoutRequest>,
    /// `auto` (default) or `manual`.
    pub(crate) stream_mode: Option<StreamMode>,
    /// Lets several archives of one session run at once.
    #[schema(max_length = 200)]
    pub(crate) multi_archive_tag: Option<String>,
}

fn wire_layout(kind: LayoutType) -> &'static str {
    match kind {
        LayoutType::BestFit => "bestFit",
        LayoutType::Custom => "custom",
        LayoutType::HorizontalPresentation => "horizontalPresentation",
        LayoutType::Pip => "pip",
        LayoutType::VerticalPresentation => "verticalPresentation",
    }
}

impl StartArchiveRequest {
    /// Checks Vonage's rules and builds the upstream request.
    fn into_start(self, session_id: String) -> ApiResult<StartArchive> {
        let individual = self.output_mode == Some(OutputMode::Individual);
        if individual && self.resolution.is_some() {
            return Err(ApiError::invalid(
                "resolution",
                "only for outputMode \"composed\"",
            ));
        }
        if individual && self.layout.is_some() {
            return Err(ApiError::invalid(
                "layout",
                "only for outputMode \"composed\"",
            ));
        }
        if self.has_audio == Some(false) && self.has_video == Some(false) {
            return Err(ApiError::invalid(
                "hasVideo",
                "an archive needs audio or video",
            ));
        }
        for (field, value) in [
            ("name", &self.name),
            ("multiArchiveTag", &self.multi_archive_tag),
        ] {
            if value
                .as_ref()
                .is_some_and(|v| v.is_empty() || v.chars().count() > 200)
            {
                return Err(ApiError::invalid(field, "must be 1 to 200 characters"));
            }
        }
        let layout = match self.layout {
            None => None,
            Some(layout) => {
                let custom = layout.kind == LayoutType::Custom;
                match &layout.stylesheet {
                    Some(_) if !custom => {
                        return Err(ApiError::invalid(
                            "layout.stylesheet",
                            "only for type \"custom\"",
                        ));
                    }
                    None if custom => {
                        return Err(ApiError::invalid(
                            "layout.stylesheet",
                            "is required for type \"custom\"",
                        ));
                    }
                    _ => {}
                }
                if layout.screenshare_type.is_some() && layout.kind != LayoutType::BestFit {
                    return Err(ApiError::invalid(
                        "layout.screenshareType",
                        "only for type \"bestFit\"",
                    ));
                }
                Some(ArchiveLayout {
                    kind: wire_layout(layout.kind).to_owned(),
                    stylesheet: layout.stylesheet,
                    screenshare_type: layout.screenshare_type.map(|t| wire_layout(t).to_owned()),
                })
            }
        };
        Ok(StartArchive {
            session_id,
            name: self.name,
            has_audio: self.has_audio,
            has_video: self.has_video,
            output_mode: self.output_mode.map(|m| {
                if m == OutputMode::Individual {
                    "individual"
                } else {
                    "composed"
                }
                .to_owned()
            }),
            resolution: self.resolution.map(|r| r.as_str().to_owned()),
            stream_mode: self.stream_mode.map(|m| {
                if m == StreamMode::Manual {
                    "manual"
                } else {
                    "auto"
                }
                .to_owned()
            }),
            layout,
            multi_archive_tag: self.multi_archive_tag,
        })
    }
}

/// An archive.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ArchiveResponse {
    /// Archive ID.
    pub(crate) id: String,
    /// The recorded session.
    pub(crate) session_id: String,
    /// `started`, `paused`, `stopped`, `uploaded`, `available`, `expired`, `failed` or `deleted`.
    pub(crate) status: String,
    /// Name, if any.
    pub(crate) name: Option<String>,
    /// When recording started (RFC 3339, UTC).
    pub(crate) created_at: String,
    /// Length in seconds.
    pub(crate) duration_seconds: u64,
    /// Size in bytes (0 until the file exists).
    pub(crate) size_bytes: u64,
    /// `composed` or `individual`.
    pub(crate) output_mode: String,
    /// Resolution of composed archives.
    pub(crate) resolution: Option<String>,
    /// Whether audio is recorded.
    pub(crate) has_audio: bool,
    /// Whether video is recorded.
    pub(crate) has_video: bool,
    /// Download URL (only when `status` is `available`; valid for minutes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) url: Option<String>,
}

impl From<Archive> for ArchiveResponse {
    fn from(archive: Archive) -> Self {
        let available = archive.status == "available";
        let whole = |n: Option<f64>| {
            n.filter(|n| n.is_finite() && *n > 0.0)
                .map_or(0, |n| n.round() as u64)
        };
        Self {
            created_at: super::rfc3339_from_millis(i128::from(archive.created_at))
                .unwrap_or_default(),
            duration_seconds: whole(archive.duration),
            size_bytes: whole(archive.size),
            output_mode: archive.output_mode.unwrap_or_else(|| "composed".to_owned()),
            url: archive.url.filter(|_| available),
            id: archive.id,
            session_id: archive.session_id,
            status: archive.status,
            name: archive.name,
            resolution: archive.resolution,
            has_audio: archive.has_audio,
            has_video: archive.has_video,
        }
    }
}

/// One page of a session's archives.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ArchiveListResponse {
    /// How many archives the session has in all.
    pub(crate) count: u64,
    /// This page, newest first.
    pub(crate) items: Vec<ArchiveResponse>,
}

fn owned_session(state: &AppState, session_id: &str) -> ApiResult<()> {
    if session_id::is_owned_by(session_id, state.tokens.owner()) {
        Ok(())
    } else {
        Err(ApiError::SessionNotFound)
    }
}

/// Archive IDs are UUIDs; anything else cannot exist, so it is not sent upstream. What is sent
/// is the canonical form (hyphenated, lower case), never the caller's spelling (braces, no
/// hyphens, a `urn:uuid:` prefix, upper case).
fn checked_archive_id(archive_id: &str) -> ApiResult<String> {
    uuid::Uuid::parse_str(archive_id)
        .map(|id| id.hyphenated().to_string())
        .map_err(|_| ApiError::ArchiveNotFound)
}

/// Recordings are private by default: reading or listing archives (and so their download
/// URLs) needs `video:archives:read` or `video:moderate`, which the default anonymous grant
/// does not include. Spends one call of the join budget.
async fn authorize_read(state: &AppState, caller: &Caller) -> ApiResult<()> {
    let scope = if caller.scopes().contains(Scope::Moderate) {
        Scope::Moderate
    } else {
        Scope::ArchivesRead
    };
    state.auth.authorize(caller, scope).await?;
    Ok(())
}

/// Start recording a routed session (`video:moderate`).
#[utoipa::path(
    post, path = "/sessions/{sessionId}/archives", tag = "archives",
    params(("sessionId" = String, Path, description = "A session of ours")),
    request_body(content = Option<StartArchiveRequest>, description = "Optional"),
    responses(
        (status = 201, body = ArchiveResponse),
    )
)]
pub(crate) async fn start_archive(
    State(state): State<AppState>,
    PathParam(session_id): PathParam<String>,
    caller: Caller,
    OptionalJson(body): OptionalJson<StartArchiveRequest>,
) -> ApiResult<(StatusCode, Json<ArchiveResponse>)> {
    state.auth.authorize(&caller, Scope::Moderate).await?;
    owned_session(&state, &session_id)?;
    let start = body.into_start(session_id)?;
    let archive = state.video.start_archive(&start).await?;
    Ok((StatusCode::CREATED, Json(archive.into())))
}

/// Stop recording (`video:moderate`).
#[utoipa::path(
    post, path = "/archives/{archiveId}/stop", tag = "archives",
    params(("archiveId" = String, Path, description = "Archive ID")),
    responses(
        (status = 200, body = ArchiveResponse),
    )
)]
pub(crate) async fn stop_archive(
    State(state): State<AppState>,
    PathParam(archive_id): PathParam<String>,
    caller: Caller,
) -> ApiResult<Json<ArchiveResponse>> {
    state.auth.authorize(&caller, Scope::Moderate).await?;
    let archive_id = checked_archive_id(&archive_id)?;
    Ok(Json(state.video.stop_archive(&archive_id).await?.into()))
}

/// An archive (`video:archives:read` or `video:moderate`; recordings are private by default).
/// Answered from the last verified archive-status callback, without a Vonage call, when that
/// state is final (`uploaded`, `failed`, `expired`, `deleted`) or a `stopped`/`available` one
/// received in the last five minutes; otherwise Vonage is asked (docs/callbacks.md).
#[utoipa::path(
    get, path = "/archives/{archiveId}", tag = "archives",
    params(("archiveId" = String, Path, description = "Archive ID")),
    responses(
        (status = 200, body = ArchiveResponse),
    )
)]
pub(crate) async fn get_archive(
    State(state): State<AppState>,
    PathParam(archive_id): PathParam<String>,
    caller: Caller,
) -> ApiResult<Json<ArchiveResponse>> {
    authorize_read(&state, &caller).await?;
    let archive_id = checked_archive_id(&archive_id)?;
    let now = crate::callbacks::receiver::now_ms();
    match state.archive_states.answerable(&archive_id, now).await {
        Ok(Some(known)) => match serde_json::from_value::<Archive>(known.archive) {
            Ok(archive) => return Ok(Json(archive.into())),
            Err(error) => tracing::debug!(error = %error, "an archive state is unreadable"),
        },
        Ok(None) => {}
        // The callbacks' view is an optimisation: Vonage still answers.
        Err(error) => tracing::debug!(error = %error, "archive states unavailable"),
    }
    Ok(Json(state.video.get_archive(&archive_id).await?.into()))
}

/// A session's archives, newest first (`video:archives:read` or `video:moderate`; with JWT
/// auth also `video:join`). `offset` default 0; `count` 1–1000,
/// default 50.
#[utoipa::path(
    get, path = "/sessions/{sessionId}/archives", tag = "archives",
    params(
        ("sessionId" = String, Path, description = "A session of ours"),
        ("offset" = Option<u32>, Query, description = "Archives to skip (default 0)"),
        ("count" = Option<u32>, Query, description = "Page size, 1–1000 (default 50)"),
    ),
    responses(
        (status = 200, body = ArchiveListResponse),
    )
)]
pub(crate) async fn list_archives(
    State(state): State<AppState>,
    PathParam(session_id): PathParam<String>,
    RawQuery(query): RawQuery,
    caller: Caller,
) -> ApiResult<Json<ArchiveListResponse>> {
    authorize_read(&state, &caller).await?;
    // A bearer of a token lists a session's archives only if it may join rooms (there are no
    // per-room join policies yet; when there are, this is where the room's is checked).
    if caller.identity().is_some() && !caller.scopes().contains(Scope::Join) {
        return Err(ApiError::Forbidden(Scope::Join));
    }
    owned_session(&state, &session_id)?;
    let (mut offset, mut count) = (0u32, 50u32);
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let number = value.parse::<u32>();
        match (key.as_ref(), number) {
            ("offset", Ok(n)) => offset = n,
            ("count", Ok(n)) if (1..=1000).contains(&n) => count = n,
            ("offset", _) => {
                return Err(ApiError::invalid(
                    "offset",
                    "must be a whole number, 0 or more",
                ));
            }
            ("count", _) => {
                return Err(ApiError::invalid(
                    "count",
                    "must be a whole number from 1 to 1000",
                ));
            }
            (other, _) => {
                return Err(ApiError::invalid(
                    other.to_owned(),
                    "unknown query parameter",
                ));
            }
        }
    }
    let page = state
        .video
        .list_archives(&session_id, offset, count)
        .await?;
    Ok(Json(ArchiveListResponse {
        count: page.count,
        items: page.items.into_iter().map(Into::into).collect(),
    }))
}
