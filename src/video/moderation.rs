//! Moderation calls of the Video API (`docs/moderation.md`): force disconnect, force mute of one
//! stream or of the whole session, signals to one connection or to all, and the streams of a
//! session. All under `/v2/project/{owner}/session/{sessionId}/…`, JSON, signed like every
//! other call. Writes are not idempotent (a duplicate signal is seen twice), so they are
//! retried only when the request certainly never left; reads are retried like any safe call.

use serde::{Deserialize, Serialize};

use super::client::VideoClient;
use super::error::VideoError;
use super::resilience::{is_retryable, was_not_sent};

/// Most bytes of a signal's `type` Vonage accepts.
pub(crate) const MAX_SIGNAL_TYPE_BYTES: usize = 128;
/// Most bytes of a signal's `data` Vonage accepts (8 kB).
pub(crate) const MAX_SIGNAL_DATA_BYTES: usize = 8 * 1024;

/// A signal as Vonage takes it: `{"type", "data"}`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Signal {
    /// The type clients filter on (optional).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub(crate) kind: Option<String>,
    /// The payload.
    pub(crate) data: String,
}

/// The body of `POST …/mute`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MuteAll {
    /// True switches the session's mute state on, false lifts it.
    pub(crate) active: bool,
    /// Streams left unmuted.
    pub(crate) excluded_stream_ids: Vec<String>,
}

/// A stream as Vonage describes it, read tolerantly.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Stream {
    /// Stream ID.
    pub(crate) id: String,
    /// `camera`, `screen` or `custom`.
    #[serde(default)]
    pub(crate) video_type: Option<String>,
    /// The publisher's name for it.
    #[serde(default)]
    pub(crate) name: Option<String>,
    /// Layout classes.
    #[serde(default)]
    pub(crate) layout_class_list: Vec<String>,
}

/// `GET …/stream`: `{count, items}`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct StreamList {
    /// How many streams the session has.
    #[serde(default)]
    pub(crate) count: u64,
    /// The streams.
    #[serde(default)]
    pub(crate) items: Vec<Stream>,
}

/// One item of `GET …/session/{sid}/connection`: no connection data, as the real API.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListedConnection {
    /// Connection ID.
    pub(crate) connection_id: String,
    /// When it connected, epoch ms.
    #[serde(default)]
    pub(crate) created_at: u64,
}

/// `GET …/session/{sid}/connection`: `{count, items}`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ConnectionList {
    /// The connections.
    #[serde(default)]
    pub(crate) items: Vec<ListedConnection>,
}

/// Why a moderation call failed, in our terms.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum ModerationError {
    /// The connection is not (or no longer) connected to the session.
    #[error("no such connection in the session")]
    ConnectionNotFound,
    /// The stream does not exist in the session.
    #[error("no such stream in the session")]
    StreamNotFound,
    /// Nobody is connected to the session, so Vonage does not know it.
    #[error("the session has no connected clients")]
    SessionNotActive,
    /// Vonage found the signal too large (413).
    #[error("the signal is too large")]
    SignalTooLarge,
    /// Any other failure.
    #[error(transparent)]
    Video(#[from] VideoError),
}

/// What a call addresses, which decides what a 404 means.
#[derive(Debug, Clone, Copy)]
enum Target {
    Session,
    Connection,
    Stream,
}

fn moderation_error(target: Target, error: VideoError) -> ModerationError {
    match (&error, target) {
        (VideoError::Rejected { status: 413, .. }, _) => ModerationError::SignalTooLarge,
        (VideoError::Rejected { status: 404, .. }, Target::Connection) => {
            ModerationError::ConnectionNotFound
        }
        // The REST reference documents 408 "invalid stream ID" beside 404 on stream calls.
        (
            VideoError::Rejected {
                status: 404 | 408, ..
            },
            Target::Stream,
        ) => ModerationError::StreamNotFound,
        // The session ID is ours (checked before calling): Vonage not knowing it means nobody
        // is connected.
        (VideoError::Rejected { status: 404, .. }, Target::Session) => {
            ModerationError::SessionNotActive
        }
        _ => ModerationError::Video(error),
    }
}

impl VideoClient {
    fn session_url(&self, session_id: &str, tail: &[&str]) -> url::Url {
        let mut segments = vec!["session", session_id];
        segments.extend_from_slice(tail);
        self.project_url(&segments)
    }

    /// Sends a JSON write (`body` or none) and discards the answer's body.
    async fn write(
        &self,
        operation: &'static str,
        method: reqwest::Method,
        url: url::Url,
        body: Option<serde_json::Value>,
    ) -> Result<(), VideoError> {
        let (url, body) = (&url, &body);
        self.call(operation, was_not_sent, |timeout| {
            let method = method.clone();
            async move {
                let mut request = self.request(method, url.clone())?;
                if let Some(body) = body {
                    request = request.json(body);
                }
                self.execute(request, timeout).await.map(|_| ())
            }
        })
        .await
    }

    /// Force-disconnects a connection: `DELETE …/session/{sid}/connection/{cid}` (204).
    pub(crate) async fn force_disconnect(
        &self,
        session_id: &str,
        connection_id: &str,
    ) -> Result<(), ModerationError> {
        let url = self.session_url(session_id, &["connection", connection_id]);
        self.write("force_disconnect", reqwest::Method::DELETE, url, None)
            .await
            .map_err(|e| moderation_error(Target::Connection, e))
    }

    /// Force-mutes one stream: `POST …/session/{sid}/stream/{streamId}/mute` with `{}` (as
    /// opentok-node sends; `@vonage/video` sends no body).
    pub(crate) async fn mute_stream(
        &self,
        session_id: &str,
        stream_id: &str,
    ) -> Result<(), ModerationError> {
        let url = self.session_url(session_id, &["stream", stream_id, "mute"]);
        let body = serde_json::json!({});
        self.write("mute_stream", reqwest::Method::POST, url, Some(body))
            .await
            .map_err(|e| moderation_error(Target::Stream, e))
    }

    /// Switches the session's mute state: `POST …/session/{sid}/mute`
    /// `{"active", "excludedStreamIds"}`.
    pub(crate) async fn mute_all(
        &self,
        session_id: &str,
        mute: &MuteAll,
    ) -> Result<(), ModerationError> {
        let url = self.session_url(session_id, &["mute"]);
        let body = serde_json::to_value(mute).map_err(|_| VideoError::InvalidResponse)?;
        let operation = if mute.active {
            "mute_all"
        } else {
            "disable_mute_all"
        };
        self.write(operation, reqwest::Method::POST, url, Some(body))
            .await
            .map_err(|e| moderation_error(Target::Session, e))
    }

    /// Sends a signal to one connection (`…/connection/{cid}/signal`) or to all (`…/signal`).
    pub(crate) async fn signal(
        &self,
        session_id: &str,
        connection_id: Option<&str>,
        signal: &Signal,
    ) -> Result<(), ModerationError> {
        let (url, operation, target) = match connection_id {
            Some(connection_id) => (
                self.session_url(session_id, &["connection", connection_id, "signal"]),
                "signal_connection",
                Target::Connection,
            ),
            None => (
                self.session_url(session_id, &["signal"]),
                "signal_all",
                Target::Session,
            ),
        };
        let body = serde_json::to_value(signal).map_err(|_| VideoError::InvalidResponse)?;
        self.write(operation, reqwest::Method::POST, url, Some(body))
            .await
            .map_err(|e| moderation_error(target, e))
    }

    /// The session's streams: `GET …/session/{sid}/stream`.
    pub(crate) async fn list_streams(
        &self,
        session_id: &str,
    ) -> Result<StreamList, ModerationError> {
        let url = self.session_url(session_id, &["stream"]);
        let url = &url;
        self.call("list_streams", is_retryable, |timeout| async move {
            let request = self.request(reqwest::Method::GET, url.clone())?;
            let body = self.execute(request, timeout).await?;
            serde_json::from_slice(&body).map_err(|_| VideoError::InvalidResponse)
        })
        .await
        .map_err(|e| moderation_error(Target::Session, e))
    }

    /// The session's connections: `GET …/session/{sid}/connection` (a 404 means nobody is
    /// connected: `SessionNotActive`).
    pub(crate) async fn list_connections(
        &self,
        session_id: &str,
    ) -> Result<ConnectionList, ModerationError> {
        let url = self.session_url(session_id, &["connection"]);
        let url = &url;
        self.call("list_connections", is_retryable, |timeout| async move {
            let request = self.request(reqwest::Method::GET, url.clone())?;
            let body = self.execute(request, timeout).await?;
            serde_json::from_slice(&body).map_err(|_| VideoError::InvalidResponse)
        })
        .await
        .map_err(|e| moderation_error(Target::Session, e))
    }

    /// One stream: `GET …/session/{sid}/stream/{streamId}`.
    pub(crate) async fn get_stream(
        &self,
        session_id: &str,
        stream_id: &str,
    ) -> Result<Stream, ModerationError> {
        let url = self.session_url(session_id, &["stream", stream_id]);
        let url = &url;
        self.call("get_stream", is_retryable, |timeout| async move {
            let request = self.request(reqwest::Method::GET, url.clone())?;
            let body = self.execute(request, timeout).await?;
            serde_json::from_slice(&body).map_err(|_| VideoError::InvalidResponse)
        })
        .await
        .map_err(|e| moderation_error(Target::Stream, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(status: u16) -> VideoError {
        VideoError::Rejected {
            status,
            detail: Default::default(),
        }
    }

    #[test]
    fn a_404_means_what_the_call_addressed() {
        assert!(matches!(
            moderation_error(Target::Connection, rejected(404)),
            ModerationError::ConnectionNotFound
        ));
        assert!(matches!(
            moderation_error(Target::Stream, rejected(408)),
            ModerationError::StreamNotFound
        ));
        assert!(matches!(
            moderation_error(Target::Session, rejected(404)),
            ModerationError::SessionNotActive
        ));
        assert!(matches!(
            moderation_error(Target::Session, rejected(413)),
            ModerationError::SignalTooLarge
        ));
        assert!(matches!(
            moderation_error(Target::Session, rejected(400)),
            ModerationError::Video(_)
        ));
    }

    #[test]
    fn streams_parse_from_the_sdk_fixture_shape() {
        let body = br#"{"count":1,"items":[{"id":"8b73","videoType":"camera","name":"","layoutClassList":["full"]}]}"#;
        let list: StreamList = serde_json::from_slice(body).unwrap();
        assert_eq!(list.count, 1);
        assert_eq!(list.items[0].layout_class_list, ["full"]);
        let bare: Stream = serde_json::from_slice(br#"{"id":"x"}"#).unwrap();
        assert!(bare.video_type.is_none() && bare.layout_class_list.is_empty());
    }

    #[test]
    fn bodies_match_the_sdks() {
        let mute = MuteAll {
            active: true,
            excluded_stream_ids: vec!["s1".into()],
        };
        assert_eq!(
            serde_json::to_value(&mute).unwrap(),
            serde_json::json!({"active": true, "excludedStreamIds": ["s1"]})
        );
        let signal = Signal {
            kind: Some("chat".into()),
            data: "hi".into(),
        };
        assert_eq!(
            serde_json::to_value(&signal).unwrap(),
            serde_json::json!({"type": "chat", "data": "hi"})
        );
    }
}
