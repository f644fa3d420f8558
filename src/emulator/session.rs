//! `POST /session/create`: authenticate, validate the form, mint a session ID in the real
//! format and answer the real API's one-element JSON array (contract §1.5, §2.4).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{Response, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use time::OffsetDateTime;
use time::macros::format_description;

use super::auth::{self, Presented};
use super::form;
use super::reply;
use super::state::{SessionRecord, Shared};
use crate::video::session_id::{self, NewSessionId};

/// Creates a session for an authenticated call; 403 on bad auth, 400 on a bad form.
pub(crate) fn create(
    shared: &Shared,
    presented: Option<&Presented>,
    form: &[(String, String)],
) -> Response<Body> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let now_s = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let (credential, owner) = match auth::verify(presented, &shared.verifiers, now_s) {
        Ok(authenticated) => authenticated,
        Err(error) => return reply::error(StatusCode::FORBIDDEN, &error.to_string()),
    };
    let options = match form::parse(form) {
        Ok(options) => options,
        Err(error) => return reply::error(StatusCode::BAD_REQUEST, &error.0),
    };
    let location = options.location.map(|ip| ip.to_string());
    // 18 random bytes are exactly 24 standard-base64 characters, like real IDs.
    let random = STANDARD.encode(rand::random::<[u8; 18]>());
    let session_id = session_id::encode(&NewSessionId {
        owner: &owner,
        location: location.as_deref().unwrap_or(""),
        created_ms: now.as_millis(),
        random: &random,
        relayed: options.relayed,
    });
    let body = json!([{
        "session_id": session_id,
        "project_id": owner,
        "partner_id": owner,
        "create_dt": create_dt(),
        "media_server_url": "",
        "session_status": null,
        "status_invalid": null,
        "media_server_hostname": null,
        "messaging_server_url": null,
        "messaging_url": null,
        "symphony_address": null,
        "properties": null,
        "ice_server": null,
        "session_segment_id": uuid::Uuid::new_v4().to_string(),
        "ice_servers": null,
        "ice_credential_expiration": 86100,
    }]);
    shared.add_session(SessionRecord {
        session_id,
        owner,
        credential,
        media_mode: if options.relayed { "relayed" } else { "routed" },
        archive_mode: if options.archive_always {
            "always"
        } else {
            "manual"
        },
        location,
        e2ee: options.e2ee,
        archive_name: options.archive_name,
        archive_resolution: options.archive_resolution,
        created_at: u64::try_from(now.as_millis()).unwrap_or(u64::MAX),
    });
    reply::json(StatusCode::OK, &body)
}

/// The creation date in the real API's Java `Date.toString()` style, in UTC:
/// `Fri Feb 14 13:14:54 UTC 2025`.
fn create_dt() -> String {
    let style = format_description!(
        "[weekday repr:short] [month repr:short] [day] [hour]:[minute]:[second] UTC [year]"
    );
    OffsetDateTime::now_utc().format(style).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_dt_looks_like_java_date_to_string() {
        let text = create_dt();
        let fields: Vec<&str> = text.split(' ').collect();
        assert_eq!(fields.len(), 6, "{text}");
        assert_eq!(fields[0].len(), 3, "{text}");
        assert_eq!(fields[2].len(), 2, "{text}");
        assert_eq!(fields[3].len(), 8, "{text}");
        assert_eq!(fields[4], "UTC", "{text}");
        assert_eq!(fields[5].len(), 4, "{text}");
    }
}
