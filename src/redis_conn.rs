//! One Redis connection for everything that uses Redis (the room store, the shared rate limits,
//! the moderation state), whatever the deployment: one server (`rooms.redis_url`), a master
//! found through Redis Sentinel (`rooms.redis_sentinels` + `rooms.redis_sentinel_master`), or a
//! Redis Cluster (`rooms.redis_cluster_urls`). See docs/scale-out.md.
//!
//! Every script and command touches one key, so each stays in one cluster slot (room and
//! rate-limit keys are hash-tagged, `{…}`, so later per-room keys can share a room's slot).
//! Connections are made lazily: a dead Redis at start-up makes `/readyz` 503, not a crash. A
//! Sentinel connection asks the sentinels for the master again after a connection error or a
//! `READONLY` reply, so a failover is followed without a restart.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, ErrorKind, IntoConnectionInfo as _, Pipeline, RedisError,
    RedisFuture, RedisResult, ServerErrorKind, Value,
};

use crate::config::RoomsConfig;

/// Where Redis is, from `[rooms]`. Holds URLs that may carry passwords: never printed.
pub(crate) enum RedisTopology {
    /// One server.
    Single(String),
    /// A master and its replicas watched by sentinels.
    Sentinel {
        /// The sentinels' URLs (`redis://host:26379`).
        sentinels: Vec<String>,
        /// The name the sentinels monitor the master under.
        master: String,
    },
    /// A Redis Cluster, from any of its nodes.
    Cluster(Vec<String>),
}

impl std::fmt::Debug for RedisTopology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind())
    }
}

impl RedisTopology {
    /// The topology `[rooms]` names (validation guarantees exactly one is set).
    pub(crate) fn from_config(rooms: &RoomsConfig) -> Self {
        use secrecy::ExposeSecret as _;
        let expose = |urls: &[secrecy::SecretString]| {
            urls.iter()
                .map(|url| url.expose_secret().to_owned())
                .collect::<Vec<_>>()
        };
        if !rooms.redis_cluster_urls.is_empty() {
            RedisTopology::Cluster(expose(&rooms.redis_cluster_urls))
        } else if !rooms.redis_sentinels.is_empty() {
            RedisTopology::Sentinel {
                sentinels: expose(&rooms.redis_sentinels),
                master: rooms.redis_sentinel_master.clone(),
            }
        } else {
            RedisTopology::Single(rooms.redis_url.expose_secret().to_owned())
        }
    }

    /// `single`, `sentinel` or `cluster`, for logs.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            RedisTopology::Single(_) => "single",
            RedisTopology::Sentinel { .. } => "sentinel",
            RedisTopology::Cluster(_) => "cluster",
        }
    }
}

/// A cheap-to-clone connection to Redis, usable wherever the `redis` crate takes a connection
/// (`Script::invoke_async`, `Cmd::query_async`).
#[derive(Clone)]
pub(crate) struct RedisConnection {
    inner: Inner,
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.inner {
            Inner::Single(_) => "single",
            Inner::Lazy(lazy) => match lazy.connector {
                Connector::Sentinel(_) => "sentinel",
                Connector::Cluster(_) => "cluster",
            },
        };
        f.debug_struct("RedisConnection")
            .field("topology", &kind)
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
enum Inner {
    /// The connection manager reconnects to one server on its own.
    Single(ConnectionManager),
    /// Sentinel and Cluster: connected on first use, replaced after a connection error.
    Lazy(Arc<Lazy>),
}

struct Lazy {
    connector: Connector,
    config: AsyncConnectionConfig,
    current: Mutex<Option<Current>>,
    /// Held while connecting, so concurrent callers make one connection.
    connecting: tokio::sync::Mutex<()>,
}

enum Connector {
    Sentinel(tokio::sync::Mutex<SentinelClient>),
    Cluster(ClusterClient),
}

#[derive(Clone)]
enum Current {
    Master(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl RedisConnection {
    /// A lazy connection to `topology`; `timeout` bounds connecting and each reply.
    pub(crate) fn new(topology: &RedisTopology, timeout: Duration) -> RedisResult<Self> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let lazy = |connector| {
            Inner::Lazy(Arc::new(Lazy {
                connector,
                config: config.clone(),
                current: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(()),
            }))
        };
        let inner = match topology {
            RedisTopology::Single(url) => {
                let client = redis::Client::open(url.as_str())?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(500));
                Inner::Single(ConnectionManager::new_lazy_with_config(client, config)?)
            }
            RedisTopology::Sentinel { sentinels, master } => {
                // The master and replicas take the credentials and database of the first
                // sentinel URL (the usual `requirepass` + `sentinel auth-pass` setup).
                let first = sentinels
                    .first()
                    .ok_or_else(|| {
                        RedisError::from((ErrorKind::EmptySentinelList, "no sentinels"))
                    })?
                    .as_str()
                    .into_connection_info()?;
                let node = SentinelNodeConnectionInfo::default()
                    .set_redis_connection_info(first.redis_settings().clone());
                let client = SentinelClient::build(
                    sentinels.iter().map(String::as_str).collect(),
                    master.clone(),
                    Some(node),
                    SentinelServerType::Master,
                )?;
                lazy(Connector::Sentinel(tokio::sync::Mutex::new(client)))
            }
            RedisTopology::Cluster(nodes) => {
                let client = ClusterClient::builder(nodes.iter().map(String::as_str))
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(1)
                    .build()?;
                lazy(Connector::Cluster(client))
            }
        };
        Ok(Self { inner })
    }
}

impl Lazy {
    async fn get(&self) -> RedisResult<Current> {
        if let Some(current) = self.current() {
            return Ok(current);
        }
        let _connecting = self.connecting.lock().await;
        if let Some(current) = self.current() {
            return Ok(current);
        }
        let current = match &self.connector {
            Connector::Sentinel(client) => {
                let master = client.lock().await.async_get_client().await?;
                Current::Master(
                    master
                        .get_multiplexed_async_connection_with_config(&self.config)
                        .await?,
                )
            }
            Connector::Cluster(client) => Current::Cluster(client.get_async_connection().await?),
        };
        *self.slot() = Some(current.clone());
        Ok(current)
    }

    fn current(&self) -> Option<Current> {
        self.slot().clone()
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Current>> {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Drops the connection after an error that means it points at the wrong place or at
    /// nothing, so the next call connects again (asking the sentinels for the master anew).
    fn after(&self, error: &RedisError) {
        let stale = error.is_io_error()
            || error.is_connection_dropped()
            || error.is_connection_refusal()
            || error.is_timeout()
            || error.is_unrecoverable_error()
            || matches!(
                error.kind(),
                ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)
            );
        if stale {
            *self.slot() = None;
        }
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.inner {
            Inner::Single(manager) => manager.req_packed_command(cmd),
            Inner::Lazy(lazy) => {
                let lazy = lazy.clone();
                Box::pin(async move {
                    let reply = match lazy.get().await? {
                        Current::Master(mut connection) => connection.req_packed_command(cmd).await,
                        Current::Cluster(mut connection) => {
                            connection.req_packed_command(cmd).await
                        }
                    };
                    if let Err(error) = &reply {
                        lazy.after(error);
                    }
                    reply
                })
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.inner {
            Inner::Single(manager) => manager.req_packed_commands(pipeline, offset, count),
            Inner::Lazy(lazy) => {
                let lazy = lazy.clone();
                Box::pin(async move {
                    let reply = match lazy.get().await? {
                        Current::Master(mut connection) => {
                            connection
                                .req_packed_commands(pipeline, offset, count)
                                .await
                        }
                        Current::Cluster(mut connection) => {
                            connection
                                .req_packed_commands(pipeline, offset, count)
                                .await
                        }
                    };
                    if let Err(error) = &reply {
                        lazy.after(error);
                    }
                    reply
                })
            }
        }
    }

    fn get_db(&self) -> i64 {
        match &self.inner {
            Inner::Single(manager) => manager.get_db(),
            Inner::Lazy(_) => 0,
        }
    }
}

/// What went wrong, without the error's own text (which may quote a URL and its password).
pub(crate) fn redis_reason(error: &RedisError) -> String {
    if error.is_timeout() {
        "timed out".into()
    } else if error.is_connection_refusal() {
        "connection refused".into()
    } else if error.is_io_error() || error.is_connection_dropped() {
        "connection lost".into()
    } else {
        format!("{:?}", error.kind())
    }
}
