//! Logging: `tracing` with an `EnvFilter` (`RUST_LOG`, else `log.filter`), pretty or JSON lines
//! on stderr (stdout carries only the `listening on` line and the dev banner).

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. Calling it again (tests) is a no-op.
pub fn init(config: &LogConfig) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_span_events(FmtSpan::NONE);
    let _ = match config.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// The request ID header, taken from the caller when sane, else generated.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A caller's request ID is kept only if it is short and plain, so it cannot forge log lines.
fn is_sane_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    (1..=128).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Middleware: drops an insane `x-request-id` so `SetRequestIdLayer` generates one.
pub async fn sanitize_request_id(mut request: Request, next: Next) -> Response {
    if request
        .headers()
        .get(&REQUEST_ID)
        .is_some_and(|v| !is_sane_request_id(v))
    {
        request.headers_mut().remove(&REQUEST_ID);
    }
    next.run(request).await
}

/// Middleware: one log line per request, with request ID, matched route, status and latency.
/// Probes log at DEBUG so they never flood INFO. Headers and bodies are never logged: they
/// carry tokens.
pub async fn access_log(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    if crate::routes::is_probe(&route) {
        tracing::debug!(http.method = %method, http.route = %route, http.status = status, latency_ms, request_id, "request");
    } else {
        tracing::info!(http.method = %method, http.route = %route, http.status = status, latency_ms, request_id, "request");
    }
    response
}
