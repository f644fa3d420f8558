//! Wiring: builds the shared state, the router and its middleware from a validated config, binds
//! the listener (port 0 works, for tests), and serves until shutdown, draining gracefully.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;

use crate::auth::AuthPolicy;
use crate::config::{Config, RoomStoreKind};
use crate::error::ApiError;
use crate::front::FrontLayer;
use crate::rooms::memory::MemoryStore;
use crate::rooms::redis_store::RedisStore;
use crate::rooms::store::RoomStore;
use crate::rooms::{RoomSettings, Rooms};
use crate::server::{self, ServeSettings};
use crate::video::resilience::RetryPolicy;
use crate::video::{ClientSettings, Credentials, TokenIssuer, VideoClient};

/// Shared handles available to every handler. Extractors clone the state for every request,
/// so it is one `Arc` (a clone of the fields themselves would touch a dozen reference counts).
#[derive(Clone)]
pub struct AppState(Arc<Handles>);

impl std::ops::Deref for AppState {
    type Target = Handles;

    fn deref(&self) -> &Handles {
        &self.0
    }
}

/// What `AppState` shares.
pub struct Handles {
    /// The Vonage Video API client.
    pub video: VideoClient,
    /// Client-token minting with our credentials.
    pub tokens: TokenIssuer,
    /// Caller policy.
    pub auth: AuthPolicy,
    /// Named rooms.
    pub rooms: Rooms,
    /// Draining flag for `/readyz`.
    pub readiness: Readiness,
}

impl FromRef<AppState> for AuthPolicy {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

/// Whether the service is draining (set on SIGTERM, before the listener closes).
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// True once shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Marks the service as draining.
    pub fn start_draining(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A bound, ready-to-run service.
pub struct App {
    listener: TcpListener,
    router: Router,
    /// `/metrics` on its own listener, when `metrics.listen` is set.
    metrics: Option<(TcpListener, Router)>,
    readiness: Readiness,
    drain_delay: Duration,
    serve_settings: ServeSettings,
}

impl App {
    /// Builds the service from `config` and parsed `credentials`, and binds `config.server.listen`.
    pub async fn build(config: &Config, credentials: Credentials) -> anyhow::Result<Self> {
        let credentials = Arc::new(credentials);
        let kind = credentials.kind();
        let settings = ClientSettings {
            base_url: config.video_base_url(matches!(*credentials, Credentials::Application(_))),
            connect_timeout: Duration::from_millis(config.video.connect_timeout_ms),
            timeout: Duration::from_millis(config.video.timeout_ms),
            deadline: Duration::from_millis(config.video.request_deadline_ms),
            retry: RetryPolicy {
                max_retries: config.video.max_retries,
                base: Duration::from_millis(config.video.retry_base_ms),
                max: Duration::from_millis(config.video.retry_max_ms),
            },
            max_concurrent_calls: config.video.max_concurrent_calls,
            breaker_threshold: config.video.breaker_failure_threshold,
            breaker_open_for: Duration::from_millis(config.video.breaker_open_ms),
            rest_jwt_reuse_secs: config.video.rest_jwt_reuse_seconds,
        };
        let prometheus = crate::metrics::install();
        crate::metrics::spawn_upkeep(prometheus.clone());
        let readiness = Readiness::default();
        let video =
            VideoClient::new(&settings, credentials.clone()).context("building the HTTP client")?;
        let state = AppState(Arc::new(Handles {
            rooms: Rooms::new(room_store(config)?, video.clone(), room_settings(config)),
            video,
            tokens: TokenIssuer::new(credentials, config.tokens.legacy_format),
            auth: AuthPolicy::new(config)?,
            readiness: readiness.clone(),
        }));
        let metrics_router = Router::new().route(
            "/metrics",
            get(move || std::future::ready(prometheus.render())),
        );
        let mut router = crate::routes::router()
            .with_state(state)
            .layer(middleware_stack(config, readiness.clone()));
        let metrics = if config.metrics.listen.is_empty() {
            router = router.merge(metrics_router);
            None
        } else {
            let addr: SocketAddr = config.metrics.listen.parse().context("metrics.listen")?;
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr} for /metrics"))?;
            Some((listener, metrics_router))
        };
        let listener = TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("binding {}", config.server.listen))?;
        tracing::info!(
            vonage.credentials = kind,
            vonage.base_url = %settings.base_url,
            "service configured"
        );
        Ok(Self {
            listener,
            router,
            readiness,
            metrics,
            drain_delay: Duration::from_millis(config.server.drain_delay_ms),
            serve_settings: ServeSettings {
                header_read_timeout: Duration::from_millis(config.server.header_read_timeout_ms),
                shutdown_timeout: Duration::from_millis(config.server.shutdown_timeout_ms),
            },
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound TCP listener has an address")
    }

    /// Serves until `shutdown` completes, then drains: `/readyz` turns 503 at once, the listener
    /// stays open for `drain_delay` (so load balancers notice), then closes; in-flight requests
    /// get up to `shutdown_timeout` to finish.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let readiness = self.readiness.clone();
        let drain_delay = self.drain_delay;
        let stop = async move {
            shutdown.await;
            readiness.start_draining();
            tracing::info!(
                drain_delay_ms = drain_delay.as_millis() as u64,
                "shutting down: draining"
            );
            tokio::time::sleep(drain_delay).await;
        };
        if let Some((listener, router)) = self.metrics {
            tokio::spawn(server::serve(
                listener,
                router,
                std::future::pending(),
                self.serve_settings,
            ));
        }
        server::serve(self.listener, self.router, stop, self.serve_settings).await;
        Ok(())
    }
}

fn room_store(config: &Config) -> anyhow::Result<Arc<dyn RoomStore>> {
    Ok(match config.rooms.store {
        RoomStoreKind::Memory => Arc::new(MemoryStore::new()),
        RoomStoreKind::Redis => Arc::new(RedisStore::new(
            secrecy::ExposeSecret::expose_secret(&config.rooms.redis_url),
            &config.rooms.key_prefix,
            Duration::from_millis(config.rooms.store_timeout_ms),
        )?),
    })
}

fn room_settings(config: &Config) -> RoomSettings {
    RoomSettings {
        ttl: Duration::from_secs(config.rooms.ttl_seconds),
        claim_ttl: Duration::from_millis(config.rooms.claim_ms),
        join_wait: Duration::from_millis(config.rooms.join_wait_ms),
    }
}

/// The middleware, outermost first: the front of every request (request ID, metrics, access
/// log, CORS, load shedding, deadline, problem request IDs, draining; see `front`), panics to
/// 500 problems (inside the front, so they get the request ID too), and the body limit.
fn middleware_stack(
    config: &Config,
    readiness: Readiness,
) -> impl tower::Layer<
    axum::routing::Route,
    Service: tower::Service<
        Request,
        Response = Response,
        Error = std::convert::Infallible,
        Future: Send,
    > + Clone
                 + Send
                 + Sync
                 + 'static,
> + Clone
+ use<> {
    ServiceBuilder::new()
        .layer(FrontLayer::new(config, readiness))
        .layer(CatchPanicLayer::custom(
            |_panic: Box<dyn std::any::Any + Send>| {
                ApiError::Internal(anyhow::anyhow!("a request handler panicked")).into_response()
            },
        ))
        .layer(DefaultBodyLimit::max(config.server.body_limit_bytes))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use axum::body::Body;
    use tower::ServiceExt as _;

    use super::*;
    use crate::config::Sources;

    async fn boom() -> &'static str {
        panic!("a bug")
    }

    #[tokio::test]
    async fn a_panicking_handler_becomes_a_500_problem_and_the_service_lives_on() {
        let no_env = |_: &str| None;
        let sources = Sources {
            config_dir: PathBuf::from("config"),
            env: &no_env,
            process_env_overrides: false,
        };
        let config = Config::load(&sources).unwrap();
        let router = Router::new()
            .route("/boom", get(boom))
            .route("/fine", get(|| async { "fine" }))
            .layer(middleware_stack(&config, Readiness::default()));
        let request = |path: &str| {
            Request::builder()
                .uri(path)
                .header("x-request-id", "r-1")
                .body(Body::empty())
                .unwrap()
        };

        let response = router.clone().oneshot(request("/boom")).await.unwrap();
        assert_eq!(response.status(), 500);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["code"], "internal");
        assert_eq!(problem["requestId"], "r-1");
        assert!(
            !problem.to_string().contains("a bug"),
            "the panic message stays in the logs"
        );

        let response = router.oneshot(request("/fine")).await.unwrap();
        assert_eq!(response.status(), 200, "the next request is served");
    }
}
