//! What every request passes through before its handler, as one tower `Service`:
//!
//! 1. the request ID: the caller's `x-request-id` when short and plain (so it cannot forge log
//!    lines), else a fresh UUID; echoed on the response;
//! 2. the HTTP metrics (`http_requests_total`, `http_request_duration_seconds`,
//!    `http_requests_in_flight`) and one access-log line, by matched route (never the raw path,
//!    which would give every session ID its own series); probes log at DEBUG; headers and bodies
//!    are never logged, since they carry tokens;
//! 3. CORS for allowed origins (`auth::cors`), which answers preflights before anything below;
//! 4. load shedding: at most `server.max_in_flight` requests at once, the rest a fast 503 rather
//!    than a queue that grows memory and latency (probes are never shed, so a busy replica is not
//!    restarted for being busy);
//! 5. the request deadline (`server.request_timeout_ms`, derived from the Vonage deadline);
//! 6. the request ID in every problem body, and `Connection: close` while draining.
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

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;
use tower::{Layer, Service, ServiceExt as _};

use crate::app::Readiness;
use crate::auth::cors::CorsPolicy;
use crate::config::Config;
use crate::error::{self, ApiError, Problem};

/// The request ID header, taken from the caller when sane, else generated.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The layer; see the module documentation.
#[derive(Clone)]
pub struct FrontLayer(Arc<Shared>);

struct Shared {
    cors: CorsPolicy,
    metrics: HttpMetrics,
    in_flight: Arc<Semaphore>,
    readiness: Readiness,
    deadline: Duration,
}

impl FrontLayer {
    /// The front of a service configured by `config`, draining when `readiness` says so.
    pub fn new(config: &Config, readiness: Readiness) -> Self {
        Self(Arc::new(Shared {
            cors: CorsPolicy::new(&config.cors),
            metrics: HttpMetrics::new(),
            in_flight: Arc::new(Semaphore::new(config.server.max_in_flight)),
            readiness,
            deadline: config.request_timeout(),
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
pub struct Front<S> {
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
    let probe = crate::routes::is_probe(route);
    let method = request.method().clone();

    let in_flight = InFlight::enter(&shared.metrics.in_flight);
    let mut response = match shared.cors.layer_for(&request) {
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
    };
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
    let request_id = request_id.to_str().unwrap_or_default();
    let status = status.as_u16();
    if probe {
        tracing::debug!(http.method = %method, http.route = route, http.status = status, latency_ms, request_id, "request");
    } else {
        tracing::info!(http.method = %method, http.route = route, http.status = status, latency_ms, request_id, "request");
    }
    response
}

/// Below CORS: shedding, the deadline, the problem's request ID, and draining.
async fn core<S>(inner: S, shared: &Shared, probe: bool, request: Request) -> Response
where
    S: Service<Request, Error = Infallible> + Send,
    S::Response: IntoResponse,
{
    let request_id = request.headers().get(&REQUEST_ID).cloned();
    let permit = if probe {
        Ok(None)
    } else {
        shared.in_flight.clone().try_acquire_owned().map(Some)
    };
    let mut response = match permit {
        Err(_) => {
            metrics::counter!("load_shed_total", "limit" => "in_flight").increment(1);
            ApiError::Overloaded.into_response()
        }
        Ok(_permit) => match tokio::time::timeout(shared.deadline, inner.oneshot(request)).await {
            Ok(Ok(response)) => response.into_response(),
            Ok(Err(never)) => match never {},
            Err(_) => ApiError::Timeout.into_response(),
        },
    };
    if let (Some(problem), Some(request_id)) = (
        response.extensions_mut().remove::<Problem>(),
        request_id.as_ref().and_then(|v| v.to_str().ok()),
    ) {
        response = error::with_request_id(response, problem, request_id);
    }
    if shared.readiness.is_draining() {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A CORS preflight `auth::cors` refuses: answered as a preflight, without CORS headers, so
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
