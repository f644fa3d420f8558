//! Archiving (recording) of routed sessions: start, stop, get and list through the Video API's
//! JSON endpoints (`docs/vonage-wire.md` §6), and the mapping of Vonage's archive errors to
//! our own. Starting and stopping are not idempotent, so they are retried only when the request
//! certainly never left; reads are retried like any safe call.

use serde::{Deserialize, Serialize};

use super::client::VideoClient;
use super::error::VideoError;
use super::resilience::{is_retryable, was_not_sent};

/// What to record. Validated by the caller (HTTP layer) before it gets here.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StartArchive {
    /// The session to record.
    pub(crate) session_id: String,
    /// A name for the archive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    /// Record audio (Vonage's default: true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) has_audio: Option<bool>,
    /// Record video (Vonage's default: true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) has_video: Option<bool>,
    /// `composed` (default) or `individual`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) output_mode: Option<String>,
    /// Composed archives only, e.g. `1280x720`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) resolution: Option<String>,
    /// `auto` (default) or `manual`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) stream_mode: Option<String>,
    /// Composed layout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) layout: Option<ArchiveLayout>,
    /// Lets several archives of one session run at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) multi_archive_tag: Option<String>,
}

/// A composed archive's layout.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ArchiveLayout {
    /// `bestFit`, `custom`, `horizontalPresentation`, `pip` or `verticalPresentation`.
    #[serde(rename = "type")]
    pub(crate) kind: String,
    /// CSS, for `custom` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) stylesheet: Option<String>,
    /// Layout while a screen is shared, for `bestFit` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) screenshare_type: Option<String>,
}

/// An archive as Vonage describes it, read tolerantly: fields vary between deployments and
/// SDK fixtures (numbers or strings, nulls), so everything but the ID defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Archive {
    /// Archive ID (UUID).
    pub(crate) id: String,
    /// The recorded session.
    #[serde(default)]
    pub(crate) session_id: String,
    /// `started`, `paused`, `stopped`, `uploaded`, `available`, `expired`, `failed`, `deleted`.
    #[serde(default)]
    pub(crate) status: String,
    /// Name, if any.
    #[serde(default)]
    pub(crate) name: Option<String>,
    /// Creation time, epoch milliseconds.
    #[serde(default)]
    pub(crate) created_at: i64,
    /// Length in seconds.
    #[serde(default)]
    pub(crate) duration: Option<f64>,
    /// Size in bytes.
    #[serde(default)]
    pub(crate) size: Option<f64>,
    /// `composed` or `individual`.
    #[serde(default)]
    pub(crate) output_mode: Option<String>,
    /// Resolution of composed archives.
    #[serde(default)]
    pub(crate) resolution: Option<String>,
    /// Whether audio is recorded.
    #[serde(default = "yes")]
    pub(crate) has_audio: bool,
    /// Whether video is recorded.
    #[serde(default = "yes")]
    pub(crate) has_video: bool,
    /// Download URL, once `available` (valid for minutes).
    #[serde(default)]
    pub(crate) url: Option<String>,
}

fn yes() -> bool {
    true
}

/// One page of a session's archives.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ArchivePage {
    /// How many archives match in all (not the page size).
    #[serde(default)]
    pub(crate) count: u64,
    /// This page.
    #[serde(default)]
    pub(crate) items: Vec<Archive>,
}

/// An archive call that failed.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum ArchiveError {
    /// Already recording, a relayed session, or a stop in the wrong state (409).
    #[error("the archive cannot change state: {0}")]
    Conflict(String),
    /// No such archive (404).
    #[error("no such archive")]
    NotFound,
    /// Vonage does not know the session (404 on start).
    #[error("no such session")]
    SessionNotFound,
    /// Nobody is connected to the session, so there is nothing to record (400 on start).
    #[error("the session has no connected clients")]
    SessionNotActive,
    /// Any other failure.
    #[error(transparent)]
    Video(#[from] VideoError),
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, VideoError> {
    serde_json::from_slice(body).map_err(|_| VideoError::InvalidResponse)
}

/// The message Vonage gave, for logs and conflict details.
fn message(error: &VideoError) -> String {
    match error {
        VideoError::Rejected { detail, .. } => detail.message.clone().unwrap_or_default(),
        _ => String::new(),
    }
}

impl VideoClient {
    /// Starts recording: `POST /v2/project/{id}/archive`.
    pub(crate) async fn start_archive(
        &self,
        start: &StartArchive,
    ) -> Result<Archive, ArchiveError> {
        let url = self.project_url(&["archive"]);
        let url = &url;
        let result = self
            .call("start_archive", was_not_sent, |timeout| async move {
                let request = self
                    .request(reqwest::Method::POST, url.clone())?
                    .json(start);
                parse(&self.execute(request, timeout).await?)
            })
            .await;
        // "No clients are actively connected" has come as 400 and, in older answers, as 404:
        // the message decides.
        result.map_err(|error| match &error {
            VideoError::Rejected {
                status: 400 | 404, ..
            } if message(&error).to_ascii_lowercase().contains("no clients") => {
                ArchiveError::SessionNotActive
            }
            VideoError::Rejected { status: 409, .. } => conflict(&error),
            VideoError::Rejected { status: 404, .. } => ArchiveError::SessionNotFound,
            _ => ArchiveError::Video(error),
        })
    }

    /// Stops recording: `POST /v2/project/{id}/archive/{archiveId}/stop`.
    pub(crate) async fn stop_archive(&self, archive_id: &str) -> Result<Archive, ArchiveError> {
        let url = self.project_url(&["archive", archive_id, "stop"]);
        let url = &url;
        let result = self
            .call("stop_archive", was_not_sent, |timeout| async move {
                let request = self.request(reqwest::Method::POST, url.clone())?;
                parse(&self.execute(request, timeout).await?)
            })
            .await;
        result.map_err(archive_error)
    }

    /// One archive: `GET /v2/project/{id}/archive/{archiveId}`.
    pub(crate) async fn get_archive(&self, archive_id: &str) -> Result<Archive, ArchiveError> {
        let url = self.project_url(&["archive", archive_id]);
        let url = &url;
        let result = self
            .call("get_archive", is_retryable, |timeout| async move {
                let request = self.request(reqwest::Method::GET, url.clone())?;
                parse(&self.execute(request, timeout).await?)
            })
            .await;
        result.map_err(archive_error)
    }

    /// A session's archives: `GET /v2/project/{id}/archive?sessionId=&offset=&count=`.
    pub(crate) async fn list_archives(
        &self,
        session_id: &str,
        offset: u32,
        count: u32,
    ) -> Result<ArchivePage, ArchiveError> {
        let mut url = self.project_url(&["archive"]);
        url.query_pairs_mut()
            .append_pair("sessionId", session_id)
            .append_pair("offset", &offset.to_string())
            .append_pair("count", &count.to_string());
        let url = &url;
        let result = self
            .call("list_archives", is_retryable, |timeout| async move {
                let request = self.request(reqwest::Method::GET, url.clone())?;
                parse(&self.execute(request, timeout).await?)
            })
            .await;
        result.map_err(archive_error)
    }
}

fn archive_error(error: VideoError) -> ArchiveError {
    match &error {
        VideoError::Rejected { status: 404, .. } => ArchiveError::NotFound,
        VideoError::Rejected { status: 409, .. } => conflict(&error),
        _ => ArchiveError::Video(error),
    }
}

/// A refused state change, logged here where Vonage's wording is found.
fn conflict(error: &VideoError) -> ArchiveError {
    let message = message(error);
    tracing::info!(vonage.message = %message, "Vonage refused an archive state change");
    ArchiveError::Conflict(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_parse_from_both_credential_kinds_fixtures() {
        let legacy = br#"{"createdAt":1384221730555,"duration":5049,"hasAudio":true,"hasVideo":true,
            "id":"b40ef09b-3811-4726-b508-e41a0f96c68f","name":"The archive name","outputMode":"composed",
            "partnerId":123456,"reason":"","resolution":"640x480","sessionId":"1_MX4","size":247748791,
            "status":"available","url":"https://example.com/a.mp4","sha256sum":null,"password":""}"#;
        let archive: Archive = serde_json::from_slice(legacy).unwrap();
        assert_eq!(archive.status, "available");
        assert_eq!(archive.size, Some(247_748_791.0));
        let app = br#"{"id":"x","status":"started","applicationId":"app","name":null,"size":0,"url":null}"#;
        let archive: Archive = serde_json::from_slice(app).unwrap();
        assert!(archive.has_audio && archive.url.is_none() && archive.name.is_none());
    }

    #[test]
    fn start_requests_send_only_what_was_chosen() {
        let start = StartArchive {
            session_id: "1_MX4".into(),
            has_audio: Some(false),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&start).unwrap(),
            serde_json::json!({"sessionId": "1_MX4", "hasAudio": false})
        );
    }
}
