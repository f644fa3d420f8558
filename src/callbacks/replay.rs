//! Once-only claims: a callback's `jti` (so a captured callback cannot be replayed while its
//! `iat` is still accepted) and the one restart of an archive stopped by a `serverRotation`.
//! In Redis (`rooms.store = "redis"`) a claim is `SET <prefix>:callback:<name>:{<id>} 1 NX PX
//! <ttl>`, atomic across replicas (the `{hash tag}` keeps the key in one Cluster slot); in
//! memory it is a bounded map.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::redis_conn::RedisConnection;
use crate::rooms::redis_store::bounded;
use crate::rooms::store::StoreError;

/// Most claims the memory store holds; when full of live claims it refuses (503, Vonage
/// retries) rather than forget one.
const MEMORY_CAPACITY: usize = 200_000;

/// Claims made once.
#[async_trait::async_trait]
pub(crate) trait ReplayStore: Send + Sync + std::fmt::Debug {
    /// Claims `name`/`id` for `ttl`: true the first time, false while an earlier claim lives.
    async fn claim(&self, name: &str, id: &str, ttl: Duration) -> Result<bool, StoreError>;

    /// Gives a claim back (the callback could not be applied, so its retry must pass).
    async fn release(&self, name: &str, id: &str) -> Result<(), StoreError>;
}

/// One replica's claims.
#[derive(Debug, Default)]
pub(crate) struct MemoryReplayStore {
    claims: Mutex<HashMap<String, Instant>>,
}

impl MemoryReplayStore {
    /// An empty store.
    pub(crate) fn new() -> Self {
        Self::default()
    }
}

#[async_trait::async_trait]
impl ReplayStore for MemoryReplayStore {
    async fn claim(&self, name: &str, id: &str, ttl: Duration) -> Result<bool, StoreError> {
        let now = Instant::now();
        let key = format!("{name}:{id}");
        let mut claims = self
            .claims
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if claims.get(&key).is_some_and(|expires| *expires > now) {
            return Ok(false);
        }
        if claims.len() >= MEMORY_CAPACITY {
            claims.retain(|_, expires| *expires > now);
            if claims.len() >= MEMORY_CAPACITY {
                return Err(StoreError("the callback replay store is full".into()));
            }
        }
        claims.insert(key, now + ttl);
        Ok(true)
    }

    async fn release(&self, name: &str, id: &str) -> Result<(), StoreError> {
        self.claims
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&format!("{name}:{id}"));
        Ok(())
    }
}

/// Claims in the shared Redis.
pub(crate) struct RedisReplayStore {
    connection: RedisConnection,
    prefix: String,
    timeout: Duration,
}

impl std::fmt::Debug for RedisReplayStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisReplayStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisReplayStore {
    /// Uses the shared connection; every call is bounded by `timeout`.
    pub(crate) fn with_connection(
        connection: RedisConnection,
        prefix: &str,
        timeout: Duration,
    ) -> Self {
        Self {
            connection,
            prefix: prefix.to_owned(),
            timeout,
        }
    }

    /// The key of a claim; `id` is hash-tagged (braces in it cannot move the slot: Redis tags
    /// on the first `{…}`, which is ours).
    pub(crate) fn key(&self, name: &str, id: &str) -> String {
        format!("{}:callback:{name}:{{{id}}}", self.prefix)
    }
}

#[async_trait::async_trait]
impl ReplayStore for RedisReplayStore {
    async fn claim(&self, name: &str, id: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut connection = self.connection.clone();
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let set: Option<String> = bounded(
            self.timeout,
            redis::cmd("SET")
                .arg(self.key(name, id))
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(millis)
                .query_async(&mut connection),
        )
        .await?;
        Ok(set.is_some())
    }

    async fn release(&self, name: &str, id: &str) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let _: i64 = bounded(
            self.timeout,
            redis::cmd("DEL")
                .arg(self.key(name, id))
                .query_async(&mut connection),
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_claim_is_granted_once_until_it_expires_or_is_released() {
        let store = MemoryReplayStore::new();
        let ttl = Duration::from_millis(50);
        assert!(store.claim("jti", "a", ttl).await.unwrap());
        assert!(!store.claim("jti", "a", ttl).await.unwrap());
        assert!(
            store.claim("restart", "a", ttl).await.unwrap(),
            "names are separate"
        );
        store.release("jti", "a").await.unwrap();
        assert!(store.claim("jti", "a", ttl).await.unwrap());
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(store.claim("jti", "a", ttl).await.unwrap());
    }
}
