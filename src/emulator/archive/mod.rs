//! Archiving (contract §6): per-session archive state with the real lifecycle
//! (`started` → `stopped` → `available` with a download URL; `paused` while nobody is
//! connected; `failed` injectable) and the real error bodies.
//!
//! Vonage API (same auth as `/session/create`; `{id}` must be the authenticated API key or
//! application ID, else 403 `{"code":-1,…}`; a project the emulator does not know is 404):
//! - `POST /v2/project/{id}/archive`: start → 200 Archive (`status: "started"`).
//! - `POST /v2/project/{id}/archive/{archiveId}/stop` (any body): → 200 Archive (`stopped`).
//! - `GET /v2/project/{id}/archive/{archiveId}`: → 200 Archive.
//! - `GET /v2/project/{id}/archive?offset=&count=&sessionId=`: → 200 `{"count": total,
//!   "items": […]}`, newest first, deleted archives left out.
//! - `DELETE /v2/project/{id}/archive/{archiveId}`: → 204.
//!
//! Errors. Real wording (SDK fixtures and the REST reference): 409 15008 "Only routed
//! sessions are allowed to initiate archives."; 409 15002 "You can only stop an archive that
//! has one of the following statuses: started OR paused OR stopped"; 409 15004 "You can only
//! delete an archive that has one of the following statuses: available OR uploaded OR
//! deleted"; 404 "Not found. You passed in an invalid archive ID."; 400 "No clients are
//! actively connected to the OpenTok session.". Inferred: the 409 "Session is already being
//! recorded." and its code 15001, the session 404 text, every 400 validation text, the 403
//! project-mismatch text, and `code: -1` wherever no code was ever observed.
//!
//! Control (`/_emulator/…`, see `control`): connected clients per session, every archive,
//! forced statuses, downloads and the stopped → available delay.

mod control;
mod error;
mod model;
mod options;
mod routes;
mod store;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::header::HOST;
use axum::http::uri::Authority;
use axum::http::{HeaderMap, Uri};

pub(crate) use control::routes as control_routes;
pub(crate) use routes::route;
pub(crate) use store::Archives;

/// The longest stopped → available delay accepted (10 minutes).
pub(crate) const MAX_DELAY_MS: u64 = 600_000;

/// The wall clock in epoch milliseconds (0 if the clock is before 1970).
pub(crate) fn now_ms() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
}

/// `http://<host>` as the client addressed the emulator (the `Host` header, or the URI's
/// authority over HTTP/2), so download URLs work from wherever the client is.
fn base_url(headers: &HeaderMap, uri: &Uri) -> String {
    let from_header = headers
        .get(HOST)
        .and_then(|value| value.to_str().ok())
        .and_then(|host| host.parse::<Authority>().ok());
    match from_header.or_else(|| uri.authority().cloned()) {
        Some(authority) => format!("http://{}", authority.as_str()),
        None => "http://localhost".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_base_url_comes_from_the_host_header_or_the_authority() {
        let mut headers = HeaderMap::new();
        let uri: Uri = "http://10.0.0.1:9/x".parse().unwrap();
        assert_eq!(base_url(&headers, &uri), "http://10.0.0.1:9");
        assert_eq!(
            base_url(&headers, &"/x".parse().unwrap()),
            "http://localhost"
        );
        headers.insert(HOST, HeaderValue::from_static("emulator:4010"));
        assert_eq!(base_url(&headers, &uri), "http://emulator:4010");
        headers.insert(HOST, HeaderValue::from_static("bad host/\""));
        assert_eq!(base_url(&headers, &uri), "http://10.0.0.1:9");
    }
}
