//! JSON responses in the real API's style: `Content-Type: application/json` exactly (Python's
//! opentok compares the string) and errors as `{"code":-1,"message":M,"description":M}`.

use axum::body::Body;
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderValue, Response, StatusCode};
use serde::Serialize;

/// The body of every error the real API sends on these routes.
#[derive(Debug, Serialize)]
struct ErrorBody<'a> {
    code: i32,
    message: &'a str,
    description: &'a str,
}

/// A JSON response with the exact content type the SDKs expect.
pub(crate) fn json(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    // Serialising these plain structs cannot fail; answer 500 rather than panic if it ever does.
    let (status, bytes) = match serde_json::to_vec(value) {
        Ok(bytes) => (status, bytes),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, b"{}".to_vec()),
    };
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// An error in the real shape, `code` -1 and the message repeated as `description`.
pub(crate) fn error(status: StatusCode, message: &str) -> Response<Body> {
    coded(status, -1, message)
}

/// An error in the real shape with a specific `code` (e.g. 15008 for archive conflicts).
pub(crate) fn coded(status: StatusCode, code: i32, message: &str) -> Response<Body> {
    json(
        status,
        &ErrorBody {
            code,
            message,
            description: message,
        },
    )
}

/// A 204 with no body and no content type, as the real API answers a delete.
pub(crate) fn no_content() -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// An injected error; a 429 also says when to retry, as rate limiters do.
pub(crate) fn injected(status: u16) -> Response<Body> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut response = error(status, "Service unavailable (injected fault)");
    if status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_have_the_real_shape_and_exact_content_type() {
        let response = error(StatusCode::FORBIDDEN, "Invalid signature");
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    }

    #[test]
    fn only_injected_429s_carry_retry_after() {
        let limited = injected(429);
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(limited.headers()[RETRY_AFTER], "1");
        let unavailable = injected(503);
        assert!(unavailable.headers().get(RETRY_AFTER).is_none());
    }
}
