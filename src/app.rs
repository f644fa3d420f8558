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
use crate::callbacks::CallbackSink;
use crate::callbacks::archives::{
    ArchiveAwareSink, ArchiveStates, ArchiveStore, MemoryArchiveStore, RedisArchiveStore,
};
use crate::callbacks::receiver::Receiver;
use crate::callbacks::replay::{MemoryReplayStore, RedisReplayStore, ReplayStore};
use crate::callbacks::verify::Owner;
use crate::config::{Config, RoomStoreKind};
use crate::error::ApiError;
use crate::front::FrontLayer;
use crate::moderation::Presence;
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
    lifecycle: crate::lifecycle::Lifecycle,
}

impl App {
    /// Builds the service from `config` and parsed `credentials`, and binds `config.server.listen`.
    pub async fn build(config: &Config, credentials: Credentials) -> anyhow::Result<Self> {
        Self::build_with(config, credentials, Router::new(), None, None).await
    }

    /// Like [`App::build`], with verified callbacks going to `sink` (behind the archive-aware
    /// sink) instead of the room lifecycle's: tests watch what the receiver lets through.
    pub async fn build_with_sink(
        config: &Config,
        credentials: Credentials,
        sink: Arc<dyn CallbackSink>,
    ) -> anyhow::Result<Self> {
        Self::build_with(config, credentials, Router::new(), None, Some(sink)).await
    }

    /// [`App::build`] with `extra` routes served next to the API, behind the same front
    /// (request IDs, access log, metrics, CORS). `dev` mounts the emulator's control endpoints.
    pub async fn build_with_routes(
        config: &Config,
        credentials: Credentials,
        extra: Router,
    ) -> anyhow::Result<Self> {
        Self::build_with(config, credentials, extra, None, None).await
    }

    /// Like [`App::build`], with `presence` telling moderation who holds which connection.
    pub async fn build_with_presence(
        config: &Config,
        credentials: Credentials,
        presence: Arc<dyn Presence>,
    ) -> anyhow::Result<Self> {
        Self::build_with(config, credentials, Router::new(), Some(presence), None).await
    }

    /// `presence`: who holds which connection, for moderation; none means the room
    /// lifecycle's presence (`docs/room-lifecycle.md`).
    async fn build_with(
        config: &Config,
        credentials: Credentials,
        extra: Router,
        presence: Option<Arc<dyn Presence>>,
        sink: Option<Arc<dyn CallbackSink>>,
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
        let owner = match &*credentials {
            Credentials::Application(_) => Owner::Application(credentials.owner().to_owned()),
            Credentials::Legacy(_) => Owner::Legacy(credentials.owner().to_owned()),
        };
        let replay = replay_store(config, redis.clone());
        let archive_states = ArchiveStates::new(
            archive_store(config, redis.clone()),
            Duration::from_secs(config.rooms.ttl_seconds),
        );
        let rooms = Rooms::new(
            room_store(config, redis.clone())?,
            video.clone(),
            room_settings(config),
        );
        let lifecycle = lifecycle(config, redis.clone(), &rooms, &video);
        let presence = presence.unwrap_or_else(|| Arc::new(lifecycle.clone()));
        // Verified callbacks: the archive-aware sink around the room lifecycle's
        // (docs/room-lifecycle.md), unless a test watches them with its own.
        let inner: Arc<dyn CallbackSink> = sink.unwrap_or_else(|| lifecycle.sink());
        let callback_sink: Arc<dyn CallbackSink> = Arc::new(ArchiveAwareSink::new(
            inner,
            archive_states.clone(),
            video.clone(),
            replay.clone(),
            Duration::from_secs(config.callbacks.max_age_seconds),
        ));
        let state = AppState(Arc::new(Handles {
            callbacks: Receiver::new(config, owner, replay),
            callback_sink,
            archive_states,
            rooms,
            video,
            tokens: TokenIssuer::new(credentials, config.tokens.legacy_format),
            auth: AuthPolicy::with_redis(config, redis.clone())?,
            readiness: readiness.clone(),
            moderation: moderation(config, redis, presence)?,
            lifecycle: lifecycle.clone(),
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
            lifecycle,
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
        // The room lifecycle's background task (one per process), for as long as we serve.
        let lifecycle_task = self.lifecycle.spawn();
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
        lifecycle_task.abort();
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

/// Once-only claims of callbacks (`jti`s, rotation restarts): shared in Redis when rooms are.
fn replay_store(config: &Config, redis: Option<RedisConnection>) -> Arc<dyn ReplayStore> {
    match redis {
        Some(connection) => Arc::new(RedisReplayStore::with_connection(
            connection,
            &config.rooms.key_prefix,
            Duration::from_millis(config.rooms.store_timeout_ms),
        )),
        None => Arc::new(MemoryReplayStore::new()),
    }
}

/// Archive states from callbacks: shared in Redis when rooms are.
fn archive_store(config: &Config, redis: Option<RedisConnection>) -> Arc<dyn ArchiveStore> {
    match redis {
        Some(connection) => Arc::new(RedisArchiveStore::with_connection(
            connection,
            &config.rooms.key_prefix,
            Duration::from_millis(config.rooms.store_timeout_ms),
        )),
        None => Arc::new(MemoryArchiveStore::new()),
    }
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

/// The room lifecycle over the same store as the rooms (`docs/room-lifecycle.md`).
fn lifecycle(
    config: &Config,
    redis: Option<RedisConnection>,
    rooms: &Rooms,
    video: &VideoClient,
) -> crate::lifecycle::Lifecycle {
    use crate::lifecycle::store::{LifecycleStore, StoreTimings};
    let timings = StoreTimings {
        ttl: Duration::from_secs(config.rooms.ttl_seconds),
        // Vonage retries a callback for up to 24 h: a late create must still find its tombstone.
        tombstone_keep: Duration::from_secs(25 * 3600),
    };
    let store: Arc<dyn LifecycleStore> = match redis {
        Some(connection) => Arc::new(crate::lifecycle::redis::RedisLifecycleStore::new(
            connection,
            &config.rooms.key_prefix,
            Duration::from_millis(config.rooms.store_timeout_ms),
            timings,
        )),
        None => Arc::new(crate::lifecycle::memory::MemoryLifecycleStore::new(
            rooms.store().clone(),
            timings,
        )),
    };
    let settings = crate::lifecycle::LifecycleSettings {
        reconcile: Duration::from_secs(config.rooms.reconcile_seconds),
        seat_hold: Duration::from_secs(config.rooms.seat_hold_seconds),
        empty_retire: Duration::from_secs(config.rooms.empty_retire_seconds),
        stop_when_empty: config.archives.stop_when_empty,
        identity_in_data: config.auth.mode == crate::config::AuthMode::Jwt,
    };
    crate::lifecycle::Lifecycle::new(store, video.clone(), rooms.clone(), settings)
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
