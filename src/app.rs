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
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::auth::AuthPolicy;
use crate::config::{Config, RoomStoreKind};
use crate::error::{self, ApiError};
use crate::rooms::memory::MemoryStore;
use crate::rooms::redis_store::RedisStore;
use crate::rooms::store::RoomStore;
use crate::rooms::{RoomSettings, Rooms};
use crate::telemetry::{self, REQUEST_ID};
use crate::video::{ClientSettings, Credentials, TokenIssuer, VideoClient};

/// Shared, cheap-to-clone handles available to every handler.
#[derive(Clone)]
pub struct AppState {
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
    readiness: Readiness,
    drain_delay: Duration,
    shutdown_timeout: Duration,
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
        };
        let readiness = Readiness::default();
        let video =
            VideoClient::new(&settings, credentials.clone()).context("building the HTTP client")?;
        let state = AppState {
            rooms: Rooms::new(room_store(config)?, video.clone(), room_settings(config)),
            video,
            tokens: TokenIssuer::new(credentials, config.tokens.legacy_format),
            auth: AuthPolicy::new(&config.auth, &config.tokens),
            readiness: readiness.clone(),
        };
        let router = crate::routes::router()
            .with_state(state)
            .layer(middleware_stack(config, readiness.clone()));
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
            drain_delay: Duration::from_millis(config.server.drain_delay_ms),
            shutdown_timeout: Duration::from_millis(config.server.shutdown_timeout_ms),
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound TCP listener has an address")
    }

    /// Serves until `shutdown` completes, then drains: `/readyz` turns 503 at once, the listener
    /// stays open for `drain_delay`, in-flight requests get up to `shutdown_timeout` to finish.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let readiness = self.readiness.clone();
        let drain_delay = self.drain_delay;
        let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
        let graceful = async move {
            shutdown.await;
            readiness.start_draining();
            tracing::info!(
                drain_delay_ms = drain_delay.as_millis() as u64,
                "shutting down: draining"
            );
            tokio::time::sleep(drain_delay).await;
            let _ = stopped_tx.send(());
        };
        let serve = axum::serve(self.listener, self.router).with_graceful_shutdown(graceful);
        let shutdown_timeout = self.shutdown_timeout;
        tokio::select! {
            result = serve.into_future() => result,
            () = async {
                if stopped_rx.await.is_ok() {
                    tokio::time::sleep(shutdown_timeout).await;
                } else {
                    std::future::pending::<()>().await;
                }
            } => {
                tracing::warn!("in-flight requests did not finish within server.shutdown_timeout_ms; exiting");
                Ok(())
            }
        }
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

/// The middleware, outermost first: request ID (sanitised, generated, echoed), access log,
/// request ID in problem bodies, `Connection: close` while draining, panics to 500, the
/// request deadline, and the body limit. Panics and timeouts sit inside `problem_layer` so their
/// problems get the request ID too.
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
    let request_timeout = config.request_timeout();
    ServiceBuilder::new()
        .layer(middleware::from_fn(telemetry::sanitize_request_id))
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(middleware::from_fn(telemetry::access_log))
        .layer(middleware::from_fn(error::problem_layer))
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            let readiness = readiness.clone();
            async move {
                let mut response = next.run(request).await;
                if readiness.is_draining() {
                    response
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                response
            }
        }))
        .layer(CatchPanicLayer::custom(
            |_panic: Box<dyn std::any::Any + Send>| {
                ApiError::Internal(anyhow::anyhow!("a request handler panicked")).into_response()
            },
        ))
        .layer(middleware::from_fn(
            move |request: Request, next: Next| async move {
                match tokio::time::timeout(request_timeout, next.run(request)).await {
                    Ok(response) => response,
                    Err(_) => ApiError::Timeout.into_response(),
                }
            },
        ))
        .layer(DefaultBodyLimit::max(config.server.body_limit_bytes))
}
