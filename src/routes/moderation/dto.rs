//! The bodies, answers and path checks of the moderation routes: what a request may say,
//! checked before anything is sent to Vonage (its limits are in `docs/moderation.md`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::moderation::store::{Ban, MuteState};
use crate::video::moderation::{
    MAX_SIGNAL_DATA_BYTES, MAX_SIGNAL_TYPE_BYTES, MuteAll, Signal, Stream,
};

/// Force-mute all streams, or lift it.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct MuteAllRequest {
    /// True (default) mutes every stream but the excluded ones, and every stream published
    /// later, until lifted; false lifts the mute state (streams already muted stay muted).
    pub(crate) active: Option<bool>,
    /// Streams left unmuted (at most 1000 stream IDs).
    #[schema(max_items = 1000)]
    pub(crate) excluded_stream_ids: Option<Vec<String>>,
}

/// A signal, checked against Vonage's limits before it is sent.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignalRequest {
    /// What clients filter on: at most 128 of `A-Z a-z 0-9 - _ ~` (empty or null: none).
    #[serde(rename = "type")]
    #[schema(max_length = 128, pattern = "^[A-Za-z0-9_~-]*$")]
    pub(crate) kind: Option<String>,
    /// The payload: at most 8192 bytes as UTF-8 (413 `signal_too_large` beyond), so at most
    /// 8192 characters, fewer where they are not ASCII.
    // Optional here only so that a missing `data` is answered as `data: is required`.
    #[schema(value_type = String, required = true, max_length = 8192)]
    pub(crate) data: Option<String>,
}

/// A session's mute-all state.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MuteStateResponse {
    /// The session.
    pub(crate) session_id: String,
    /// True while every stream but the excluded ones is muted, new streams included.
    pub(crate) active: bool,
    /// Streams left unmuted.
    pub(crate) excluded_stream_ids: Vec<String>,
    /// When it was last switched through this service (RFC 3339, UTC); null if never.
    pub(crate) changed_at: Option<String>,
}

impl MuteStateResponse {
    /// The response for `state` (never set: inactive).
    pub(crate) fn new(session_id: String, state: Option<MuteState>) -> Self {
        match state {
            Some(state) => Self {
                session_id,
                active: state.active,
                excluded_stream_ids: state.excluded_stream_ids,
                changed_at: Some(rfc3339_ms(state.changed_at)),
            },
            None => Self {
                session_id,
                active: false,
                excluded_stream_ids: Vec::new(),
                changed_at: None,
            },
        }
    }
}

/// A published stream.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StreamResponse {
    /// Stream ID.
    pub(crate) id: String,
    /// `camera`, `screen` or `custom`; null if Vonage did not say.
    pub(crate) video_type: Option<String>,
    /// The publisher's name for it (may be empty).
    pub(crate) name: String,
    /// Layout classes.
    pub(crate) layout_class_list: Vec<String>,
}

impl From<Stream> for StreamResponse {
    fn from(stream: Stream) -> Self {
        Self {
            id: stream.id,
            video_type: stream.video_type,
            name: stream.name.unwrap_or_default(),
            layout_class_list: stream.layout_class_list,
        }
    }
}

/// The streams of a session.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StreamListResponse {
    /// How many.
    pub(crate) count: u64,
    /// The streams.
    pub(crate) items: Vec<StreamResponse>,
}

/// What removing a participant did.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RemovedResponse {
    /// The participant's identity (JWT `sub`).
    pub(crate) sub: String,
    /// The connections force-disconnected.
    pub(crate) disconnected_connection_ids: Vec<String>,
    /// False when this service does not know who holds which connection (no presence
    /// tracking): nothing could be disconnected by identity.
    pub(crate) presence_tracked: bool,
    /// Whether a ban was recorded (never with `auth.mode = "anonymous"`, where nobody has an
    /// identity to ban).
    pub(crate) banned: bool,
    /// Until when the ban holds (RFC 3339, UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) banned_until: Option<String>,
}

/// A ban.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BanResponse {
    /// The banned identity (JWT `sub`).
    pub(crate) sub: String,
    /// Who banned them.
    pub(crate) banned_by: Option<String>,
    /// When (RFC 3339, UTC).
    pub(crate) created_at: String,
    /// Until when (RFC 3339, UTC).
    pub(crate) expires_at: String,
}

impl From<Ban> for BanResponse {
    fn from(ban: Ban) -> Self {
        Self {
            sub: ban.sub,
            banned_by: ban.banned_by,
            created_at: rfc3339_ms(ban.created_at),
            expires_at: rfc3339_ms(ban.expires_at),
        }
    }
}

/// The live bans of a room or session.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BanListResponse {
    /// Oldest first.
    pub(crate) items: Vec<BanResponse>,
}

pub(super) fn rfc3339_ms(epoch_ms: u64) -> String {
    crate::routes::rfc3339_from_millis(i128::from(epoch_ms)).unwrap_or_default()
}

/// Most bytes of a connection or stream ID we send upstream.
pub(crate) const MAX_ID_LEN: usize = 128;
/// [`plausible_id`] as a regular expression, for the OpenAPI document: the characters, and not
/// `.` or `..` (which URLs would resolve as dot segments).
pub(crate) const ID_PATTERN: &str = "^(?:[A-Za-z0-9._~-]*[A-Za-z0-9_~-][A-Za-z0-9._~-]*|[.]{3,})$";
/// Most characters of a `sub` in a path.
pub(crate) const MAX_SUB_CHARS: usize = 256;

/// Connection and stream IDs are UUID-like; anything else (empty, dot segments, odd bytes)
/// cannot exist and is not sent upstream.
pub(super) fn plausible_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
}

pub(super) fn checked_connection(id: &str) -> ApiResult<()> {
    if plausible_id(id) {
        Ok(())
    } else {
        Err(ApiError::ConnectionNotFound)
    }
}

pub(super) fn checked_stream(id: &str) -> ApiResult<()> {
    if plausible_id(id) {
        Ok(())
    } else {
        Err(ApiError::StreamNotFound)
    }
}

pub(super) fn checked_sub(sub: &str) -> ApiResult<()> {
    if (1..=MAX_SUB_CHARS).contains(&sub.chars().count()) {
        Ok(())
    } else {
        Err(ApiError::invalid("sub", "must be 1 to 256 characters"))
    }
}

/// `ban=true|false` (default false); nothing else.
pub(super) fn ban_query(query: Option<String>) -> ApiResult<bool> {
    let mut ban = false;
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match (key.as_ref(), value.as_ref()) {
            ("ban", "true") => ban = true,
            ("ban", "false") => ban = false,
            ("ban", _) => return Err(ApiError::invalid("ban", "must be true or false")),
            (other, _) => {
                return Err(ApiError::invalid(
                    other.to_owned(),
                    "unknown query parameter",
                ));
            }
        }
    }
    Ok(ban)
}

impl SignalRequest {
    /// Vonage's limits, checked before sending: sizes (413) and the type's characters (400).
    pub(super) fn into_signal(self) -> ApiResult<Signal> {
        let Some(data) = self.data else {
            return Err(ApiError::invalid("data", "is required"));
        };
        if data.len() > MAX_SIGNAL_DATA_BYTES {
            return Err(ApiError::SignalTooLarge(
                "data must be at most 8192 bytes (UTF-8)",
            ));
        }
        if let Some(kind) = &self.kind {
            if kind.len() > MAX_SIGNAL_TYPE_BYTES {
                return Err(ApiError::SignalTooLarge("type must be at most 128 bytes"));
            }
            if !kind
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~'))
            {
                return Err(ApiError::invalid(
                    "type",
                    "may only contain A-Z a-z 0-9 - _ ~",
                ));
            }
        }
        Ok(Signal {
            kind: self.kind.filter(|kind| !kind.is_empty()),
            data,
        })
    }
}

impl MuteAllRequest {
    pub(super) fn into_mute(self) -> ApiResult<MuteAll> {
        let excluded = self.excluded_stream_ids.unwrap_or_default();
        if excluded.len() > 1000 {
            return Err(ApiError::invalid(
                "excludedStreamIds",
                "at most 1000 stream IDs",
            ));
        }
        if let Some(index) = excluded.iter().position(|id| !plausible_id(id)) {
            return Err(ApiError::invalid(
                format!("excludedStreamIds[{index}]"),
                "not a stream ID",
            ));
        }
        Ok(MuteAll {
            active: self.active.unwrap_or(true),
            excluded_stream_ids: excluded,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_checked_against_vonages_limits() {
        let ok = SignalRequest {
            kind: Some("chat-1_~".into()),
            data: Some("x".repeat(MAX_SIGNAL_DATA_BYTES)),
        };
        assert!(ok.into_signal().is_ok());
        let big = SignalRequest {
            kind: None,
            data: Some("é".repeat(MAX_SIGNAL_DATA_BYTES / 2 + 1)),
        };
        assert!(matches!(
            big.into_signal(),
            Err(ApiError::SignalTooLarge(_))
        ));
        let long_type = SignalRequest {
            kind: Some("t".repeat(129)),
            data: Some(String::new()),
        };
        assert!(matches!(
            long_type.into_signal(),
            Err(ApiError::SignalTooLarge(_))
        ));
        let odd_type = SignalRequest {
            kind: Some("a b".into()),
            data: Some(String::new()),
        };
        assert!(matches!(
            odd_type.into_signal(),
            Err(ApiError::InvalidRequest { .. })
        ));
        assert!(
            SignalRequest::default().into_signal().is_err(),
            "data is required"
        );
    }

    #[test]
    fn ids_that_cannot_exist_are_refused_locally() {
        for good in [
            "8b732909-0a06-46a2-8ea8-074e64d43422",
            "abc",
            "a.b",
            "...",
            "~",
        ] {
            assert!(plausible_id(good), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "%2e", &"x".repeat(129)] {
            assert!(!plausible_id(bad), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn ids_the_document_allows_are_accepted(id in proptest::string::string_regex(
            // proptest generates from the pattern without its anchors.
            ID_PATTERN.trim_start_matches('^').trim_end_matches('$'),
        ).unwrap()) {
            proptest::prop_assume!(id.len() <= MAX_ID_LEN);
            proptest::prop_assert!(plausible_id(&id), "{id}");
        }
    }

    #[test]
    fn the_ban_query_is_strict() {
        assert!(!ban_query(None).unwrap());
        assert!(ban_query(Some("ban=true".into())).unwrap());
        assert!(ban_query(Some("ban=yes".into())).is_err());
        assert!(ban_query(Some("other=1".into())).is_err());
    }
}
