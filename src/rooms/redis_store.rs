//! The Redis room store, shared by every replica. Each operation is one Lua script, so a claim,
//! a completion or a join is atomic in Redis itself. The connection manager reconnects on its
//! own; every call is bounded by a timeout so a dead Redis gives a fast error, never a hang.
//! Keys are hash-tagged by room (`<prefix>:room:{<name>}`), so every key of one room is in one
//! Cluster slot (see `crate::redis_conn`, which also handles Sentinel and Cluster).

use std::time::Duration;

use redis::{AsyncCommands as _, Script};

use crate::redis_conn::{RedisConnection, redis_reason};

use super::store::{CLAIM_PREFIX, ClaimOutcome, RoomRecord, RoomStore, StoreError};

/// `KEYS[1]` room key; `ARGV`: claim, claim TTL ms, now ms, room TTL ms.
const CLAIM_OR_JOIN: &str = r"
local value = redis.call('GET', KEYS[1])
if not value then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {'claimed'}
end
if string.sub(value, 1, 8) == 'pending:' then
  return {'pending'}
end
local ok, record = pcall(cjson.decode, value)
if not ok or type(record) ~= 'table' then
  return {'corrupt'}
end
record['lastJoinedAt'] = tonumber(ARGV[3])
local updated = cjson.encode(record)
redis.call('SET', KEYS[1], updated, 'PX', ARGV[4])
return {'existing', updated}
";

/// `KEYS[1]` room key; `ARGV`: claim, record JSON, room TTL ms.
const COMPLETE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
";

/// `KEYS[1]` room key; `ARGV`: claim.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Rooms in Redis under `<prefix>:room:{<name>}`.
pub(crate) struct RedisStore {
    connection: RedisConnection,
    prefix: String,
    timeout: Duration,
    claim_or_join: Script,
    complete: Script,
    release: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: it is never printed.
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// The store over `connection` (one server, Sentinel or Cluster), shared with the rate limits.
    pub(crate) fn with_connection(
        connection: RedisConnection,
        prefix: &str,
        timeout: Duration,
    ) -> Self {
        Self {
            connection,
            prefix: prefix.to_owned(),
            timeout,
            claim_or_join: Script::new(CLAIM_OR_JOIN),
            complete: Script::new(COMPLETE),
            release: Script::new(RELEASE),
        }
    }

    fn key(&self, room: &str) -> String {
        format!("{}:room:{{{room}}}", self.prefix)
    }
}

/// Runs `operation` bounded by `timeout`, mapping every failure to `StoreError` (without the
/// error's text, which may quote the URL and its password). Every Redis store calls through it.
pub(crate) async fn bounded<T>(
    timeout: Duration,
    operation: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, operation).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(StoreError(format!("Redis: {}", redis_reason(&error)))),
        Err(_) => Err(StoreError("Redis did not answer in time".into())),
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

fn parse_record(json: &str) -> Result<RoomRecord, StoreError> {
    serde_json::from_str(json)
        .map_err(|_| StoreError("a room record in Redis is unreadable".into()))
}

#[async_trait::async_trait]
impl RoomStore for RedisStore {
    async fn claim_or_join(
        &self,
        room: &str,
        claim: &str,
        claim_ttl: Duration,
        now_ms: u64,
        ttl: Duration,
    ) -> Result<ClaimOutcome, StoreError> {
        let mut connection = self.connection.clone();
        let mut invocation = self.claim_or_join.key(self.key(room));
        invocation
            .arg(claim)
            .arg(millis(claim_ttl))
            .arg(now_ms)
            .arg(millis(ttl));
        let reply: Vec<String> =
            bounded(self.timeout, invocation.invoke_async(&mut connection)).await?;
        match reply.as_slice() {
            [state] if state == "claimed" => Ok(ClaimOutcome::Claimed),
            [state] if state == "pending" => Ok(ClaimOutcome::Pending),
            [state, json] if state == "existing" => parse_record(json).map(ClaimOutcome::Existing),
            _ => Err(StoreError("a room entry in Redis is unreadable".into())),
        }
    }

    async fn complete(
        &self,
        room: &str,
        claim: &str,
        record: &RoomRecord,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut connection = self.connection.clone();
        let json = serde_json::to_string(record).map_err(|e| StoreError(e.to_string()))?;
        let mut invocation = self.complete.key(self.key(room));
        invocation.arg(claim).arg(json).arg(millis(ttl));
        let done: i64 = bounded(self.timeout, invocation.invoke_async(&mut connection)).await?;
        Ok(done == 1)
    }

    async fn release(&self, room: &str, claim: &str) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let mut invocation = self.release.key(self.key(room));
        invocation.arg(claim);
        let _: i64 = bounded(self.timeout, invocation.invoke_async(&mut connection)).await?;
        Ok(())
    }

    async fn get(&self, room: &str) -> Result<Option<RoomRecord>, StoreError> {
        let mut connection = self.connection.clone();
        let value: Option<String> = bounded(self.timeout, connection.get(self.key(room))).await?;
        match value {
            Some(value) if !value.starts_with(CLAIM_PREFIX) => parse_record(&value).map(Some),
            _ => Ok(None),
        }
    }

    async fn delete(&self, room: &str) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let _: i64 = bounded(self.timeout, connection.del(self.key(room))).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let _: String = bounded(
            self.timeout,
            redis::cmd("PING").query_async(&mut connection),
        )
        .await?;
        Ok(())
    }
}
