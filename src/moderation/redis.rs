//! Moderation state in the rooms' Redis, shared by every replica: one hash per ban target
//! (`<prefix>:bans:room:<name>` / `<prefix>:bans:session:<id>`, field = `sub`, value = the ban
//! as JSON with its own expiry) and one key per session's mute state
//! (`<prefix>:mute:<sessionId>`). Every call is bounded by the store timeout.

use std::time::Duration;

use redis::{AsyncCommands as _, Script};

use super::store::{Ban, BanTarget, ModerationStore, MuteState};
use crate::redis_conn::RedisConnection;
use crate::rooms::redis_store::bounded;
use crate::rooms::store::StoreError;

/// `KEYS[1]` ban hash; `ARGV`: sub, ban JSON, expiry epoch ms, now epoch ms. The hash lives as
/// long as its longest ban (PTTL rather than PEXPIRETIME, so Redis 6 works too).
const BAN: &str = r"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local wanted = tonumber(ARGV[3]) - tonumber(ARGV[4])
local left = redis.call('PTTL', KEYS[1])
if left < wanted then
  redis.call('PEXPIRE', KEYS[1], math.max(wanted, 1))
end
return 1
";

/// Moderation state in Redis.
pub(crate) struct RedisModerationStore {
    connection: RedisConnection,
    prefix: String,
    timeout: Duration,
    ban: Script,
}

impl std::fmt::Debug for RedisModerationStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: it is never printed.
        f.debug_struct("RedisModerationStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisModerationStore {
    /// Uses the connection the room store and the rate limiter share (one server, Sentinel or
    /// Cluster; every command here touches one key, so Cluster slots are no concern).
    pub(crate) fn with_connection(
        connection: RedisConnection,
        prefix: &str,
        timeout: Duration,
    ) -> Self {
        Self {
            connection,
            prefix: prefix.to_owned(),
            timeout,
            ban: Script::new(BAN),
        }
    }

    fn bans_key(&self, target: &BanTarget) -> String {
        format!("{}:bans:{}", self.prefix, target.key())
    }

    fn mute_key(&self, session_id: &str) -> String {
        format!("{}:mute:{session_id}", self.prefix)
    }
}

fn parse<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, StoreError> {
    serde_json::from_str(json)
        .map_err(|_| StoreError("a moderation record in Redis is unreadable".into()))
}

#[async_trait::async_trait]
impl ModerationStore for RedisModerationStore {
    async fn ban(&self, target: &BanTarget, ban: &Ban) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let json = serde_json::to_string(ban).map_err(|e| StoreError(e.to_string()))?;
        let mut invocation = self.ban.key(self.bans_key(target));
        invocation
            .arg(&ban.sub)
            .arg(json)
            .arg(ban.expires_at)
            .arg(ban.created_at);
        let _: i64 = bounded(self.timeout, invocation.invoke_async(&mut connection)).await?;
        Ok(())
    }

    async fn ban_of(
        &self,
        target: &BanTarget,
        sub: &str,
        now_ms: u64,
    ) -> Result<Option<Ban>, StoreError> {
        let mut connection = self.connection.clone();
        let value: Option<String> =
            bounded(self.timeout, connection.hget(self.bans_key(target), sub)).await?;
        match value {
            Some(json) => Ok(Some(parse::<Ban>(&json)?).filter(|ban| ban.expires_at > now_ms)),
            None => Ok(None),
        }
    }

    async fn bans(&self, target: &BanTarget, now_ms: u64) -> Result<Vec<Ban>, StoreError> {
        let mut connection = self.connection.clone();
        let all: std::collections::HashMap<String, String> =
            bounded(self.timeout, connection.hgetall(self.bans_key(target))).await?;
        let mut live = Vec::with_capacity(all.len());
        for json in all.values() {
            let ban: Ban = parse(json)?;
            if ban.expires_at > now_ms {
                live.push(ban);
            }
        }
        live.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.sub.cmp(&b.sub)));
        Ok(live)
    }

    async fn lift(&self, target: &BanTarget, sub: &str) -> Result<bool, StoreError> {
        let mut connection = self.connection.clone();
        let removed: i64 =
            bounded(self.timeout, connection.hdel(self.bans_key(target), sub)).await?;
        Ok(removed > 0)
    }

    async fn set_mute(
        &self,
        session_id: &str,
        state: &MuteState,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let json = serde_json::to_string(state).map_err(|e| StoreError(e.to_string()))?;
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let _: () = bounded(
            self.timeout,
            redis::cmd("SET")
                .arg(self.mute_key(session_id))
                .arg(json)
                .arg("PX")
                .arg(millis)
                .query_async(&mut connection),
        )
        .await?;
        Ok(())
    }

    async fn mute(&self, session_id: &str) -> Result<Option<MuteState>, StoreError> {
        let mut connection = self.connection.clone();
        let value: Option<String> =
            bounded(self.timeout, connection.get(self.mute_key(session_id))).await?;
        value.map(|json| parse(&json)).transpose()
    }
}
