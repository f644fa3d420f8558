//! Wiring: builds the shared state, the router and its middleware from a validated config, binds
//! the listener (port 0 works, for tests), and serves until shutdown, draining gracefully.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;

use crate::auth::AuthPolicy;
use crate::config::{Config, RoomStoreKind};
use crate::error::ApiError;
use crate::front::FrontLayer;
use crate::moderation::{Presence, Untracked};
use crate::redis_conn::{RedisConnection, RedisTopology, redis_reason};
use crate::rooms::memory::MemoryStore;
use crate::rooms::redis_store::RedisStore;
use crate::rooms::store::RoomStore;
use crate::rooms::{RoomSettings, Rooms};
use crate::server::{self, ServeSettings};
use crate::state::{AppState, Handles, Readiness};
use crate::video::resilience::RetryPolicy;
use crate::video::{ClientSettings, Credentials, TokenIssuer, VideoClient};

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
        Self::build_with(config, credentials, Router::new(), Arc::new(Untracked)).await
    }

    /// [`App::build`] with `extra` routes served next to the API, behind the same front
    /// (request IDs, access log, metrics, CORS). `dev` mounts the emulator's control endpoints.
    pub async fn build_with_routes(
        config: &Config,
        credentials: Credentials,
        extra: Router,
    ) -> anyhow::Result<Self> {
        Self::build_with(config, credentials, extra, Arc::new(Untracked)).await
    }

    /// Like [`App::build`], with `presence` telling moderation who holds which connection.
    pub async fn build_with_presence(
        config: &Config,
        credentials: Credentials,
        presence: Arc<dyn Presence>,
    ) -> anyhow::Result<Self> {
        Self::build_with(config, credentials, Router::new(), presence).await
    }

    async fn build_with(
        config: &Config,
        credentials: Credentials,
        extra: Router,
        presence: Arc<dyn Presence>,
    ) -> anyhow::Result<Self> {
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
        let redis = redis_connection(config)?;
        let state = AppState(Arc::new(Handles {
            rooms: Rooms::new(
                room_store(config, redis.clone())?,
                video.clone(),
                room_settings(config),
            ),
            video,
            tokens: TokenIssuer::new(credentials, config.tokens.legacy_format),
            auth: AuthPolicy::with_redis(config, redis.clone())?,
            readiness: readiness.clone(),
            moderation: moderation(config, redis, presence)?,
        }));
        let metrics_router = Router::new().route(
            "/metrics",
            get(move || std::future::ready(prometheus.render())),
        );
        let mut router = crate::routes::router()
            .with_state(state)
            .merge(extra)
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
            serve_settings: serve_settings(config)?,
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
                self.serve_settings.clone(),
            ));
        }
        server::serve(self.listener, self.router, stop, self.serve_settings).await;
        Ok(())
    }
}

/// The deployment's Redis (one server, Sentinel or Cluster) with `rooms.store = "redis"`:
/// one connection shared by the room store and the rate limits.
fn redis_connection(config: &Config) -> anyhow::Result<Option<RedisConnection>> {
    if config.rooms.store != RoomStoreKind::Redis {
        return Ok(None);
    }
    let topology = RedisTopology::from_config(&config.rooms);
    let connection = RedisConnection::new(
        &topology,
        Duration::from_millis(config.rooms.store_timeout_ms),
    )
    .map_err(|e| anyhow::anyhow!("Redis ({}): {}", topology.kind(), redis_reason(&e)))?;
    tracing::info!(
        redis.topology = topology.kind(),
        "rooms and rate limits in Redis"
    );
    Ok(Some(connection))
}

fn room_store(
    config: &Config,
    redis: Option<RedisConnection>,
) -> anyhow::Result<Arc<dyn RoomStore>> {
    Ok(match (config.rooms.store, redis) {
        (RoomStoreKind::Redis, Some(connection)) => Arc::new(RedisStore::with_connection(
            connection,
            &config.rooms.key_prefix,
            Duration::from_millis(config.rooms.store_timeout_ms),
        )),
        _ => Arc::new(MemoryStore::new()),
    })
}

fn serve_settings(config: &Config) -> anyhow::Result<ServeSettings> {
    let server = &config.server;
    Ok(ServeSettings {
        header_read_timeout: Duration::from_millis(server.header_read_timeout_ms),
        shutdown_timeout: Duration::from_millis(server.shutdown_timeout_ms),
        max_connections_per_ip: server.max_connections_per_ip,
        trusted_proxies: crate::auth::client_ip::TrustedProxies::new(&config.auth),
        http2: server.http2,
        http2_max_concurrent_streams: server.http2_max_concurrent_streams,
        http2_idle_timeout: Duration::from_millis(server.http2_idle_timeout_ms),
        http2_keep_alive_interval: Duration::from_millis(server.http2_keep_alive_interval_ms),
    })
}

fn moderation(
    config: &Config,
    redis: Option<RedisConnection>,
    presence: Arc<dyn crate::moderation::Presence>,
) -> anyhow::Result<crate::moderation::Moderation> {
    use crate::moderation::store::{MemoryModerationStore, ModerationStore};
    let store: Arc<dyn ModerationStore> = match redis {
        None => Arc::new(MemoryModerationStore::new()),
        Some(connection) => Arc::new(
            crate::moderation::redis::RedisModerationStore::with_connection(
                connection,
                &config.rooms.key_prefix,
                Duration::from_millis(config.rooms.store_timeout_ms),
            ),
        ),
    };
    let settings = crate::moderation::ModerationSettings {
        join_may_signal: config.moderation.join_may_signal,
        ban_duration: config.ban_duration(),
        mute_ttl: Duration::from_secs(config.rooms.ttl_seconds),
    };
    Ok(crate::moderation::Moderation::new(
        store, presence, settings,
    ))
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
        .layer(axum::Extension(crate::error::BodyLimit(
            config.server.body_limit_bytes,
        )))
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
