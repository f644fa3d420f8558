//! The payloads Vonage posts: session-monitoring events and archive-status updates, parsed
//! from the exact bytes received. Parsing tolerates unknown events and fields (Vonage adds
//! them), so an unknown event is [`SessionEventKind::Other`], never an error. Timestamps are
//! epoch milliseconds, as Vonage sends them.

use serde::Deserialize;
use serde_json::Value;

/// Which signature secret verifies a callback (each callback kind has its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum CallbackKind {
    /// Session monitoring: connections, streams, the session's end.
    Session,
    /// Archive status.
    Archive,
}

impl CallbackKind {
    /// The label used in metrics and logs.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::Archive => "archive",
        }
    }
}

/// One parsed callback.
#[derive(Debug, Clone, PartialEq)]
pub enum Callback {
    /// A session-monitoring event.
    Session(SessionEvent),
    /// An archive-status update.
    Archive(ArchiveEvent),
}

impl Callback {
    /// The callback kind, which names the secret that must have signed it.
    pub(crate) fn kind(&self) -> CallbackKind {
        match self {
            Self::Session(_) => CallbackKind::Session,
            Self::Archive(_) => CallbackKind::Archive,
        }
    }

    /// The project (legacy credentials) or application the callback is for.
    pub(crate) fn owner(&self) -> Option<&str> {
        match self {
            Self::Session(event) => event.owner.as_deref(),
            Self::Archive(event) => event.owner.as_deref(),
        }
    }
}

/// A session-monitoring event.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionEvent {
    /// The session.
    pub session_id: String,
    /// `projectId` (legacy credentials) or `applicationId`.
    pub(crate) owner: Option<String>,
    /// When it happened at Vonage, epoch ms (events arrive late and out of order: apply by this).
    pub(crate) timestamp: u64,
    /// What happened.
    pub kind: SessionEventKind,
}

/// What a session-monitoring event says.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEventKind {
    /// A client connected.
    ConnectionCreated(ConnectionInfo),
    /// A client left; `reason` is e.g. `clientDisconnected`, `forceDisconnected`,
    /// `networkDisconnected`.
    ConnectionDestroyed {
        /// The connection.
        connection: ConnectionInfo,
        /// Why.
        reason: Option<String>,
    },
    /// A client started publishing.
    StreamCreated(StreamInfo),
    /// A stream ended.
    StreamDestroyed {
        /// The stream.
        stream: StreamInfo,
        /// Why.
        reason: Option<String>,
    },
    /// The session ended at Vonage; `reason: "serverRotation"` is not the end of the call.
    SessionDestroyed {
        /// Why.
        reason: Option<String>,
    },
    /// An event this service does not act on (its name).
    Other(String),
}

impl SessionEventKind {
    /// The event's name for metrics: a known event's, else `other` (a sender cannot mint
    /// label values).
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Self::ConnectionCreated(_) => "connectionCreated",
            Self::ConnectionDestroyed { .. } => "connectionDestroyed",
            Self::StreamCreated(_) => "streamCreated",
            Self::StreamDestroyed { .. } => "streamDestroyed",
            Self::SessionDestroyed { .. } => "sessionDestroyed",
            Self::Other(_) => "other",
        }
    }
}

/// A connection as callbacks describe it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionInfo {
    /// The connection ID.
    pub id: String,
    /// When it connected, epoch ms.
    #[serde(default)]
    pub(crate) created_at: Option<u64>,
    /// The connection data bound into the client token.
    #[serde(default)]
    pub data: Option<String>,
}

/// A stream as callbacks describe it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamInfo {
    /// The stream ID.
    pub(crate) id: String,
    /// The publishing connection.
    #[serde(default)]
    pub(crate) connection: Option<ConnectionInfo>,
    /// `camera`, `screen`, `custom`.
    #[serde(default)]
    pub(crate) video_type: Option<String>,
    /// The publisher's stream name.
    #[serde(default)]
    pub(crate) name: Option<String>,
    /// When it started, epoch ms.
    #[serde(default)]
    pub(crate) created_at: Option<u64>,
}

/// An archive-status update: the archive's JSON as the REST API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchiveEvent {
    /// The archive ID.
    pub id: String,
    /// Its session.
    pub(crate) session_id: String,
    /// `projectId` / `applicationId`, when present.
    pub(crate) owner: Option<String>,
    /// `started`, `paused`, `stopped`, `uploaded`, `available`, `failed`, ...
    pub status: String,
    /// The whole archive object.
    pub(crate) archive: Value,
}

/// The body is not a callback this service can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable callback payload: {0}")]
pub(crate) struct ParseError(pub(crate) String);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    session_id: String,
    #[serde(default)]
    project_id: Option<Value>,
    #[serde(default)]
    application_id: Option<Value>,
    #[serde(default)]
    partner_id: Option<Value>,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    timestamp: Option<u64>,
    #[serde(default)]
    connection: Option<ConnectionInfo>,
    #[serde(default)]
    stream: Option<StreamInfo>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

/// A project ID arrives as a number or a string.
fn id_text(value: Option<Value>) -> Option<String> {
    match value? {
        Value::String(text) if !text.is_empty() => Some(text),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

fn required<T>(value: Option<T>, what: &str) -> Result<T, ParseError> {
    value.ok_or_else(|| ParseError(format!("`{what}` is missing")))
}

/// Parses a callback body. An archive update is recognised by its `status` and `id` without
/// a session event name (Vonage may add `"event": "archive"`).
pub(crate) fn parse(body: &[u8]) -> Result<Callback, ParseError> {
    let raw: Value = serde_json::from_slice(body).map_err(|e| ParseError(e.to_string()))?;
    let envelope: Envelope =
        serde_json::from_value(raw.clone()).map_err(|e| ParseError(e.to_string()))?;
    let owner = id_text(envelope.application_id)
        .or_else(|| id_text(envelope.project_id))
        .or_else(|| id_text(envelope.partner_id));
    let event = envelope.event.unwrap_or_default();
    let is_session_event = matches!(
        event.as_str(),
        "connectionCreated"
            | "connectionDestroyed"
            | "streamCreated"
            | "streamDestroyed"
            | "sessionDestroyed"
    );
    if !is_session_event
        && (event.is_empty() || event == "archive")
        && let (Some(id), Some(status)) = (envelope.id, envelope.status)
    {
        return Ok(Callback::Archive(ArchiveEvent {
            id,
            session_id: envelope.session_id,
            owner,
            status,
            archive: raw,
        }));
    }
    let timestamp = required(envelope.timestamp, "timestamp")?;
    let kind = match event.as_str() {
        "connectionCreated" => {
            SessionEventKind::ConnectionCreated(required(envelope.connection, "connection")?)
        }
        "connectionDestroyed" => SessionEventKind::ConnectionDestroyed {
            connection: required(envelope.connection, "connection")?,
            reason: envelope.reason,
        },
        "streamCreated" => SessionEventKind::StreamCreated(required(envelope.stream, "stream")?),
        "streamDestroyed" => SessionEventKind::StreamDestroyed {
            stream: required(envelope.stream, "stream")?,
            reason: envelope.reason,
        },
        "sessionDestroyed" => SessionEventKind::SessionDestroyed {
            reason: envelope.reason,
        },
        "" => return Err(ParseError("`event` is missing".to_owned())),
        other => SessionEventKind::Other(other.to_owned()),
    };
    Ok(Callback::Session(SessionEvent {
        session_id: envelope.session_id,
        owner,
        timestamp,
        kind,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_created_with_application_credentials() {
        let body = br#"{"sessionId":"2_MX4","applicationId":"app-1","event":"connectionCreated",
            "timestamp":1700000000123,"extra":true,
            "connection":{"id":"c1","createdAt":1700000000100,"data":"{\"sub\":\"u\"}"}}"#;
        let Callback::Session(event) = parse(body).unwrap() else {
            panic!("not a session event")
        };
        assert_eq!(event.owner.as_deref(), Some("app-1"));
        assert_eq!(event.timestamp, 1_700_000_000_123);
        let SessionEventKind::ConnectionCreated(connection) = event.kind else {
            panic!("wrong kind")
        };
        assert_eq!(connection.id, "c1");
        assert_eq!(connection.data.as_deref(), Some(r#"{"sub":"u"}"#));
    }

    #[test]
    fn legacy_project_id_may_be_a_number_and_unknown_events_are_kept() {
        let body =
            br#"{"sessionId":"1_MX4","projectId":12345,"event":"captionsStarted","timestamp":5}"#;
        let parsed = parse(body).unwrap();
        assert_eq!(parsed.owner(), Some("12345"));
        let Callback::Session(event) = parsed else {
            panic!("not a session event")
        };
        assert_eq!(
            event.kind,
            SessionEventKind::Other("captionsStarted".into())
        );
    }

    #[test]
    fn archive_status_is_recognised() {
        let body = br#"{"id":"a1","sessionId":"2_MX4","applicationId":"app","status":"stopped","event":"archive"}"#;
        let parsed = parse(body).unwrap();
        assert_eq!(parsed.kind(), CallbackKind::Archive);
        let Callback::Archive(event) = parsed else {
            panic!("not an archive event")
        };
        assert_eq!(event.status, "stopped");
    }

    #[test]
    fn stream_and_session_destroyed() {
        let body = br#"{"sessionId":"s","event":"streamDestroyed","timestamp":9,"reason":"clientDisconnected",
            "stream":{"id":"st","videoType":"camera","connection":{"id":"c"}}}"#;
        let Callback::Session(event) = parse(body).unwrap() else {
            panic!()
        };
        let SessionEventKind::StreamDestroyed { stream, reason } = event.kind else {
            panic!()
        };
        assert_eq!(stream.connection.unwrap().id, "c");
        assert_eq!(reason.as_deref(), Some("clientDisconnected"));
        let body = br#"{"sessionId":"s","event":"sessionDestroyed","timestamp":9,"reason":"serverRotation"}"#;
        assert!(matches!(
            parse(body).unwrap(),
            Callback::Session(SessionEvent { kind: SessionEventKind::SessionDestroyed { reason: Some(r) }, .. }) if r == "serverRotation"
        ));
    }

    #[test]
    fn garbage_and_missing_fields_are_errors() {
        assert!(parse(b"not json").is_err());
        assert!(parse(br#"{"event":"connectionCreated"}"#).is_err());
        assert!(parse(br#"{"sessionId":"s","event":"connectionCreated","timestamp":1}"#).is_err());
        assert!(parse(br#"{"sessionId":"s","timestamp":1}"#).is_err());
    }
}
