//! What every request passes through before its handler, as one tower `Service`:
//!
//! 1. the request ID: the caller's `x-request-id` when short and plain (so it cannot forge log
//!    lines), else a fresh UUID; echoed on the response;
//! 2. the HTTP metrics (`http_requests_total`, `http_request_duration_seconds`,
//!    `http_requests_in_flight`) and one access-log line, by matched route (never the raw path,
//!    which would give every session ID its own series); probes log at DEBUG; headers and bodies
//!    are never logged, since they carry tokens;
//! 3. CORS for allowed origins (`cors`), which answers preflights before anything below;
//! 4. admission, before a request takes an in-flight slot: at most `server.max_in_flight_per_ip`
//!    requests per client IP (as `auth.trusted_proxies` resolves it), a declared `Content-Length`
//!    over `server.body_limit_bytes` refused at once with 413, and the body read whole within
//!    `server.body_read_timeout_ms` (else 408 `request_timeout`), so slow bodies hold no slot;
//!    then load shedding: at most `server.max_in_flight` requests at once, the rest a fast 503
//!    rather than a queue that grows memory and latency (probes are never shed, so a busy
//!    replica is not restarted for being busy);
//! 5. the request deadline (`server.request_timeout_ms`, derived from the Vonage deadline);
//! 6. `Connection: close` while draining.
//!
//! Everything below runs inside one `request` span carrying `request_id`, `route` (the OpenAPI
//! path template) and, once a JWT caller is verified, `sub` (recorded by `auth`), so every log
//! line of the request, not only the access line, can be joined to it. The same request ID is
//! in scope for `error`, which renders it into the problem body once.
//!
//! One hand-written service, one boxed future per request: as eight `axum::middleware::from_fn`
//! layers, each of which clones the rest of the stack and boxes its future on every request,
//! the same work cost about 14 µs of CPU per create (measured with `bench/run`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, HttpBody as _};
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use tokio::sync::Semaphore;
use tower::{Layer, Service, ServiceExt as _};
use tracing::Instrument as _;

use crate::auth::client_ip::TrustedProxies;
use crate::config::Config;
use crate::error::{self, ApiError, Problem};
use crate::server::{PerIp, PerIpSlot};
use crate::state::Readiness;
use cors::CorsPolicy;

pub(crate) mod cors;

/// True for the probe paths, which are logged at DEBUG, never limited and never CORS resources.
pub(crate) fn is_probe(path: &str) -> bool {
    matches!(path, "/livez" | "/healthz" | "/readyz")
}

/// The request ID header, taken from the caller when sane, else generated.
pub(crate) static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The layer; see the module documentation.
#[derive(Clone)]
pub(crate) struct FrontLayer(Arc<Shared>);

struct Shared {
    cors: CorsPolicy,
    metrics: HttpMetrics,
    in_flight: Arc<Semaphore>,
    readiness: Readiness,
    deadline: Duration,
    per_ip: Arc<PerIp>,
    trusted_proxies: TrustedProxies,
    body_limit: usize,
    body_read_timeout: Duration,
}

impl FrontLayer {
    /// The front of a service configured by `config`, draining when `readiness` says so.
    pub(crate) fn new(config: &Config, readiness: Readiness) -> Self {
        Self(Arc::new(Shared {
            cors: CorsPolicy::new(&config.cors),
            metrics: HttpMetrics::new(),
            in_flight: Arc::new(Semaphore::new(config.server.max_in_flight)),
            readiness,
            deadline: config.request_timeout(),
            per_ip: PerIp::new(config.server.max_in_flight_per_ip),
            trusted_proxies: TrustedProxies::new(&config.auth),
            body_limit: config.server.body_limit_bytes,
            body_read_timeout: Duration::from_millis(config.server.body_read_timeout_ms),
        }))
    }
}

impl<S> Layer<S> for FrontLayer {
    type Service = Front<S>;

    fn layer(&self, inner: S) -> Front<S> {
        Front {
            inner,
            shared: self.0.clone(),
        }
    }
}

/// The service of [`FrontLayer`].
#[derive(Clone)]
pub(crate) struct Front<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Service<Request> for Front<S>
where
    S: Service<Request, Error = Infallible> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The inner service is driven to readiness with `oneshot` inside the future.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let inner = self.inner.clone();
        let shared = self.shared.clone();
        Box::pin(async move { Ok(front(inner, shared, request).await) })
    }
}

async fn front<S>(inner: S, shared: Arc<Shared>, mut request: Request) -> Response
where
    S: Service<Request, Error = Infallible> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    let started = Instant::now();
    let request_id = take_request_id(&mut request);
    let route = request.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let probe = is_probe(route);
    let method = request.method().clone();

    let span = tracing::info_span!(
        "request",
        request_id = request_id.to_str().unwrap_or_default(),
        route,
        sub = tracing::field::Empty,
    );
    let in_flight = InFlight::enter(&shared.metrics.in_flight);
    let handled = async {
        match shared.cors.layer_for(&request) {
            Some(cors) => {
                let shared = &shared;
                let core = tower::service_fn(move |request| {
                    let inner = inner.clone();
                    async move { Ok::<_, Infallible>(core(inner, shared, probe, request).await) }
                });
                match cors.layer(core).oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                }
            }
            None => match shared.cors.refused_preflight(&request) {
                Some(reason) => refuse_preflight(&request, reason),
                None => core(inner, &shared, probe, request).await,
            },
        }
    };
    let request_id_text: Box<str> = request_id.to_str().unwrap_or_default().into();
    let mut response = error::with_request_id(request_id_text, handled)
        .instrument(span.clone())
        .await;
    drop(in_flight);
    response
        .headers_mut()
        .insert(REQUEST_ID.clone(), request_id.clone());

    let status = response.status();
    let elapsed = started.elapsed();
    shared
        .metrics
        .series(route, method_label(&method), status.as_u16())
        .record(elapsed);

    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    let status = status.as_u16();
    // The access line is a child of the request span, not logged in it (no enter and exit): it
    // takes `request_id`, `route` and (JWT callers) `sub` from the span like every other line.
    if probe {
        tracing::debug!(
            parent: &span,
            http.method = method.as_str(),
            http.status = status,
            latency_ms,
            "request"
        );
    } else {
        tracing::info!(
            parent: &span,
            http.method = method.as_str(),
            http.status = status,
            latency_ms,
            "request"
        );
    }
    response
}

/// Below CORS: shedding, the deadline, and draining.
async fn core<S>(inner: S, shared: &Shared, probe: bool, request: Request) -> Response
where
    S: Service<Request, Error = Infallible> + Send,
    S::Response: IntoResponse,
{
    let http1 = request.version() <= Version::HTTP_11;
    let mut response = match admit(shared, probe, request).await {
        Err(error) => {
            let mut response = error.into_response();
            if http1
                && matches!(
                    response.status(),
                    StatusCode::REQUEST_TIMEOUT | StatusCode::PAYLOAD_TOO_LARGE
                )
            {
                // The rest of the body is not read: the connection cannot carry another request.
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            response
        }
        Ok((request, _per_ip)) => {
            let permit = if probe {
                Ok(None)
            } else {
                shared.in_flight.clone().try_acquire_owned().map(Some)
            };
            match permit {
                Err(_) => {
                    metrics::counter!("load_shed_total", "limit" => "in_flight").increment(1);
                    ApiError::Overloaded.into_response()
                }
                Ok(_permit) => {
                    match tokio::time::timeout(shared.deadline, inner.oneshot(request)).await {
                        Ok(Ok(response)) => response.into_response(),
                        Ok(Err(never)) => match never {},
                        Err(_) => ApiError::Timeout.into_response(),
                    }
                }
            }
        }
    };
    if response.extensions().get::<Problem>().is_none()
        && matches!(
            response.status(),
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY
        )
    {
        // A rejection of axum's own (a path, a query) is plain text: every 400 is a problem.
        response = ApiError::invalid("request", "the request could not be read").into_response();
    }
    if shared.readiness.is_draining() {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// What a request passes before it may take an in-flight slot: the per-client-IP cap (probes
/// exempt), a declared body over the limit refused unread, and the whole body read within
/// `server.body_read_timeout_ms`. The returned slot is held until the response is made.
async fn admit(
    shared: &Shared,
    probe: bool,
    request: Request,
) -> Result<(Request, Option<PerIpSlot>), ApiError> {
    let (parts, body) = request.into_parts();
    let slot = if probe {
        None
    } else {
        let ip = shared.trusted_proxies.client_ip(&parts);
        let Some(slot) = shared.per_ip.try_acquire(ip) else {
            metrics::counter!("load_shed_total", "limit" => "in_flight_per_ip").increment(1);
            return Err(ApiError::Overloaded);
        };
        Some(slot)
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > shared.body_limit as u64) {
        return Err(ApiError::PayloadTooLarge(Some(shared.body_limit)));
    }
    if body.is_end_stream() {
        return Ok((Request::from_parts(parts, body), slot));
    }
    let read = Limited::new(body, shared.body_limit).collect();
    let bytes = match tokio::time::timeout(shared.body_read_timeout, read).await {
        Err(_) => return Err(ApiError::RequestTimeout),
        Ok(Err(error)) if error.is::<LengthLimitError>() => {
            return Err(ApiError::PayloadTooLarge(Some(shared.body_limit)));
        }
        Ok(Err(_)) => {
            return Err(ApiError::InvalidJson(
                "the request body could not be read".to_owned(),
            ));
        }
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    Ok((Request::from_parts(parts, Body::from(bytes)), slot))
}

/// A CORS preflight `cors` refuses: answered as a preflight, without CORS headers, so
/// the browser blocks the real request (a 405 would read as a routing bug); the log says why.
fn refuse_preflight(request: &Request, reason: &'static str) -> Response {
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .unwrap_or_default();
    tracing::info!(
        http.path = request.uri().path(),
        cors.origin = origin,
        cors.reason = reason,
        "CORS preflight refused"
    );
    axum::http::StatusCode::NO_CONTENT.into_response()
}

/// The caller's request ID when sane, else a new one, set on the request for what follows.
fn take_request_id(request: &mut Request) -> HeaderValue {
    if let Some(value) = request.headers().get(&REQUEST_ID)
        && is_sane_request_id(value)
    {
        return value.clone();
    }
    let mut buffer = uuid::Uuid::encode_buffer();
    let id = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buffer);
    let value = HeaderValue::from_str(id).expect("a UUID is a valid header value");
    request
        .headers_mut()
        .insert(REQUEST_ID.clone(), value.clone());
    value
}

/// A caller's request ID is kept only if it is short and plain.
fn is_sane_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    (1..=128).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// The method as a metric label: the methods HTTP defines, else `other` (a client must not be
/// able to mint new series).
fn method_label(method: &Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        "PATCH" => "PATCH",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "other",
    }
}

/// The HTTP metrics' handles, looked up in the recorder once per (route, method, status) rather
/// than on every request (a lookup builds and hashes the labels).
struct HttpMetrics {
    in_flight: metrics::Gauge,
    series: RwLock<HashMap<Box<str>, SeriesByMethodStatus>>,
}

/// One route's series, by method label and status code.
type SeriesByMethodStatus = HashMap<(&'static str, u16), Series>;

#[derive(Clone)]
struct Series {
    total: metrics::Counter,
    duration: metrics::Histogram,
}

impl Series {
    fn record(&self, elapsed: Duration) {
        self.total.increment(1);
        self.duration.record(elapsed.as_secs_f64());
    }
}

impl HttpMetrics {
    fn new() -> Self {
        Self {
            in_flight: metrics::gauge!("http_requests_in_flight"),
            series: RwLock::default(),
        }
    }

    /// The handles of one series. Routes come from the router (or `unmatched`), methods from
    /// `method_label`, statuses from the handlers: the map stays small.
    fn series(&self, route: &str, method: &'static str, status: u16) -> Series {
        let known = self
            .series
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(route)
            .and_then(|by_route| by_route.get(&(method, status)))
            .cloned();
        if let Some(series) = known {
            return series;
        }
        let labels = [
            ("route", route.to_owned()),
            ("method", method.to_owned()),
            ("status", status.to_string()),
        ];
        let series = Series {
            total: metrics::counter!("http_requests_total", &labels),
            duration: metrics::histogram!("http_request_duration_seconds", &labels),
        };
        self.series
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(route.into())
            .or_default()
            .insert((method, status), series.clone());
        series
    }
}

/// Counts a request in flight until dropped, so a cancelled request (the client went away)
/// is counted out too.
struct InFlight<'a>(&'a metrics::Gauge);

impl<'a> InFlight<'a> {
    fn enter(gauge: &'a metrics::Gauge) -> Self {
        gauge.increment(1.0);
        InFlight(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_must_be_short_and_plain() {
        for good in ["r-1", "abc_DEF.123:x", &"a".repeat(128)] {
            assert!(
                is_sane_request_id(&HeaderValue::from_str(good).unwrap()),
                "{good}"
            );
        }
        for bad in ["", "a b", "x\"y", "line\u{7f}", &"a".repeat(129), "é"] {
            let value = HeaderValue::from_bytes(bad.as_bytes());
            assert!(
                value.is_err() || !is_sane_request_id(&value.unwrap()),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn method_labels_name_the_method() {
        assert_eq!(method_label(&Method::POST), "POST");
        assert_eq!(
            method_label(&Method::from_bytes(b"PURGE").unwrap()),
            "other",
            "clients cannot mint new series"
        );
    }
}
