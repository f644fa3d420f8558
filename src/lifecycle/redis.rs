//! The Redis lifecycle store, shared by every replica over the deployment's one connection
//! (`crate::redis_conn`). Keys of one room are hash-tagged `{<room>}` like the room itself, so
//! every script touching several of them runs in one Cluster slot; the key list and why each
//! exists is in `docs/room-lifecycle.md`.

use std::collections::HashMap;
use std::time::Duration;

use redis::{AsyncCommands as _, Script, ScriptInvocation};
use serde::Deserialize;

use super::policy::Policy;
use super::store::{
    Change, ConnectionEntry, LifecycleStore, PresenceView, Reconciled, Seat, SeatRequest,
    StoreTimings, StreamEntry,
};
use crate::redis_conn::RedisConnection;
use crate::rooms::redis_store::bounded;
use crate::rooms::store::StoreError;

/// `KEYS` policy, room; `ARGV` policy JSON, only-new (`1`/`0`), TTL ms.
/// Answers `{policy in force or '', written '1'/'0'}`.
const PUT_POLICY: &str = r"
local current = redis.call('GET', KEYS[1])
if ARGV[2] == '1' then
  if current then return {current, '0'} end
  local room = redis.call('GET', KEYS[2])
  if room and string.sub(room, 1, 8) ~= 'pending:' then return {'', '0'} end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return {ARGV[1], '1'}
";

/// `KEYS` conns, holds, meta, policy; `ARGV` now, hold member, hold until, max (0: none),
/// TTL ms. Answers `{held 1/0, count}`.
const TAKE_SEAT: &str = r"
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local count = redis.call('HLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2])
local max = tonumber(ARGV[4])
if max > 0 and count >= max then return {0, count} end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
redis.call('HDEL', KEYS[3], 'emptySince')
local last = tonumber(redis.call('HGET', KEYS[3], 'lastActiveAt') or '0')
if now > last then redis.call('HSET', KEYS[3], 'lastActiveAt', ARGV[1]) end
local ttl = tonumber(ARGV[5])
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ttl) end
local pttl = redis.call('PTTL', KEYS[4])
if pttl >= 0 and pttl < ttl then redis.call('PEXPIRE', KEYS[4], ttl) end
return {1, count + 1}
";

/// Shared by the presence scripts: `KEYS` conns, streams, tombs, holds, meta.
const COMMON: &str = r"
local conns, streams, tombs, holds, meta = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local function settle(now)
  redis.call('ZREMRANGEBYSCORE', holds, '-inf', now)
  if redis.call('HLEN', conns) == 0 and redis.call('ZCARD', holds) == 0 then
    redis.call('HSETNX', meta, 'emptySince', now)
  else
    redis.call('HDEL', meta, 'emptySince')
  end
end
local function refresh(ttl)
  for i = 1, 5 do redis.call('PEXPIRE', KEYS[i], ttl) end
end
local function drop_streams_of(connection)
  local all = redis.call('HGETALL', streams)
  for i = 1, #all, 2 do
    local ok, s = pcall(cjson.decode, all[i + 1])
    if ok and type(s) == 'table' and s['connection'] == connection then
      redis.call('HDEL', streams, all[i])
    end
  end
end
";

/// `COMMON` + `ARGV` op (`cc`/`cd`/`sc`/`sd`), id, ts, entry JSON, sub, now, TTL ms,
/// tombstone keep ms, the stream's connection. Answers 1 if applied.
const APPLY: &str = r"
local op, id, ts, entry, sub, now = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5], ARGV[6]
local ttl, keep = tonumber(ARGV[7]), tonumber(ARGV[8])
local function tomb(key) return tonumber(redis.call('HGET', tombs, key) or '-1') end
local function release_hold()
  if redis.call('HSETNX', tombs, 'h:' .. id, now) == 0 then return end
  redis.call('ZREMRANGEBYSCORE', holds, '-inf', now)
  local fallback = nil
  for _, member in ipairs(redis.call('ZRANGE', holds, 0, -1)) do
    local bar = string.find(member, '|', 1, true)
    local holder = string.sub(member, bar + 1)
    if holder == sub then
      redis.call('ZREM', holds, member)
      return
    end
    if fallback == nil and holder == '' then fallback = member end
  end
  if fallback then redis.call('ZREM', holds, fallback) end
end
-- True unless `hash` already holds `id` with a timestamp at least `ts` (a duplicate or an
-- older delivery).
local function newer_than_stored(hash)
  local old = redis.call('HGET', hash, id)
  if not old then return true end
  local ok, o = pcall(cjson.decode, old)
  return not (ok and type(o) == 'table' and tonumber(o['ts'] or 0) >= ts)
end
local applied = 0
if op == 'cc' then
  release_hold()
  if tomb('c:' .. id) < ts and newer_than_stored(conns) then
    redis.call('HSET', conns, id, entry)
    applied = 1
  end
elseif op == 'cd' then
  if tomb('c:' .. id) < ts then
    redis.call('HSET', tombs, 'c:' .. id, ARGV[3])
    redis.call('HDEL', conns, id)
    drop_streams_of(id)
    applied = 1
  end
elseif op == 'sc' then
  if tomb('s:' .. id) < ts and tomb('c:' .. ARGV[9]) < 0 and newer_than_stored(streams) then
    redis.call('HSET', streams, id, entry)
    applied = 1
  end
elseif op == 'sd' then
  if tomb('s:' .. id) < ts then
    redis.call('HSET', tombs, 's:' .. id, ARGV[3])
    redis.call('HDEL', streams, id)
    applied = 1
  end
end
if redis.call('HLEN', tombs) > 512 then
  local all = redis.call('HGETALL', tombs)
  for i = 1, #all, 2 do
    if tonumber(now) - tonumber(all[i + 1]) >= keep then redis.call('HDEL', tombs, all[i]) end
  end
end
local last = tonumber(redis.call('HGET', meta, 'lastActiveAt') or '0')
if ts > last then redis.call('HSET', meta, 'lastActiveAt', ARGV[3]) end
redis.call('HSET', meta, 'tracked', '1')
settle(now)
refresh(ttl)
return applied
";

/// `COMMON` + `ARGV` now. Answers the presence as JSON.
const PRESENCE: &str = r"
local now = ARGV[1]
settle(now)
local function map(key)
  local all = redis.call('HGETALL', key)
  local out = {}
  for i = 1, #all, 2 do out[all[i]] = all[i + 1] end
  return out
end
return cjson.encode({c = map(conns), s = map(streams), h = redis.call('ZCARD', holds), m = map(meta)})
";

/// `COMMON` + `ARGV` now, listed at, grace ms, TTL ms, then pairs of connection ID and
/// createdAt. Answers `{dropped, added}`.
const RECONCILE: &str = r"
local now, listed_at, grace, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local listed = {}
for i = 5, #ARGV, 2 do listed[ARGV[i]] = ARGV[i + 1] end
local dropped, added = 0, 0
local all = redis.call('HGETALL', conns)
for i = 1, #all, 2 do
  local id = all[i]
  if not listed[id] then
    local ok, e = pcall(cjson.decode, all[i + 1])
    local stale = true
    if ok and type(e) == 'table' and not e['unknown'] then
      stale = tonumber(e['joinedAt'] or 0) + grace < listed_at
    end
    if stale then
      redis.call('HDEL', conns, id)
      redis.call('HSET', tombs, 'c:' .. id, ARGV[2])
      drop_streams_of(id)
      dropped = dropped + 1
    end
  end
end
for id, created in pairs(listed) do
  if redis.call('HEXISTS', conns, id) == 0 and redis.call('HEXISTS', tombs, 'c:' .. id) == 0 then
    redis.call('HSET', conns, id, cjson.encode({joinedAt = tonumber(created), ts = 0, unknown = true}))
    added = added + 1
  end
end
redis.call('HSET', meta, 'tracked', '1', 'reconciledAt', now)
settle(now)
refresh(ttl)
return {dropped, added}
";

/// `KEYS` room, conns, streams, tombs, holds, meta; `ARGV` session ID. Answers 1 if retired.
const RETIRE: &str = r"
local value = redis.call('GET', KEYS[1])
if value then
  if string.sub(value, 1, 8) == 'pending:' then return 0 end
  local ok, record = pcall(cjson.decode, value)
  if ok and type(record) == 'table' and record['sessionId'] ~= ARGV[1] then return 0 end
  redis.call('DEL', KEYS[1])
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
return 1
";

/// Lifecycle state in Redis; see the module docs.
pub(crate) struct RedisLifecycleStore {
    connection: RedisConnection,
    prefix: String,
    timeout: Duration,
    timings: StoreTimings,
    put_policy: Script,
    take_seat: Script,
    apply: Script,
    presence: Script,
    reconcile: Script,
    retire: Script,
}

impl std::fmt::Debug for RedisLifecycleStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLifecycleStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// The keys of one room's presence, in the order the presence scripts take them.
struct PresenceKeys([String; 5]);

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

impl RedisLifecycleStore {
    /// The store over the deployment's `connection`, with the room store's key prefix.
    pub(crate) fn new(
        connection: RedisConnection,
        prefix: &str,
        timeout: Duration,
        timings: StoreTimings,
    ) -> Self {
        Self {
            connection,
            prefix: prefix.to_owned(),
            timeout,
            timings,
            put_policy: Script::new(PUT_POLICY),
            take_seat: Script::new(TAKE_SEAT),
            apply: Script::new(&format!("{COMMON}{APPLY}")),
            presence: Script::new(&format!("{COMMON}{PRESENCE}")),
            reconcile: Script::new(&format!("{COMMON}{RECONCILE}")),
            retire: Script::new(RETIRE),
        }
    }

    fn room_key(&self, room: &str) -> String {
        format!("{}:room:{{{room}}}", self.prefix)
    }

    fn policy_key(&self, room: &str) -> String {
        format!("{}:policy:{{{room}}}", self.prefix)
    }

    fn lock_key(&self, room: &str) -> String {
        format!("{}:lock:{{{room}}}", self.prefix)
    }

    fn session_key(&self, session_id: &str) -> String {
        format!("{}:session-room:{{{session_id}}}", self.prefix)
    }

    fn active_key(&self) -> String {
        format!("{}:active-rooms", self.prefix)
    }

    fn presence_keys(&self, room: &str) -> PresenceKeys {
        let key = |part: &str| format!("{}:presence:{part}:{{{room}}}", self.prefix);
        PresenceKeys([
            key("conns"),
            key("streams"),
            key("tombs"),
            key("holds"),
            key("meta"),
        ])
    }

    /// Gives `invocation` the room's presence keys as its next `KEYS`, in their order.
    fn add_presence_keys(&self, invocation: &mut ScriptInvocation<'_>, room: &str) {
        let PresenceKeys(keys) = self.presence_keys(room);
        for key in keys {
            invocation.key(key);
        }
    }

    fn policy_ttl(&self, policy: &Policy) -> u64 {
        let ttl = millis(self.timings.ttl);
        let until_close = policy
            .expires_at
            .map_or(0, |close| close.saturating_sub(crate::moderation::now_ms()));
        ttl.saturating_add(until_close)
    }
}

fn parse_policy(json: &str) -> Result<Option<Policy>, StoreError> {
    if json.is_empty() {
        return Ok(None);
    }
    serde_json::from_str(json)
        .map(Some)
        .map_err(|_| StoreError("a room policy in Redis is unreadable".into()))
}

#[derive(Deserialize)]
struct RawPresence {
    #[serde(default)]
    c: serde_json::Value,
    #[serde(default)]
    s: serde_json::Value,
    #[serde(default)]
    h: u64,
    #[serde(default)]
    m: serde_json::Value,
}

/// A Lua map encoded by cjson: an object of JSON strings (an empty one may come as `{}` or `[]`).
fn entries<T: serde::de::DeserializeOwned>(value: &serde_json::Value) -> Vec<(String, T)> {
    let Some(object) = value.as_object() else {
        return Vec::new();
    };
    let mut out: Vec<(String, T)> = object
        .iter()
        .filter_map(|(id, raw)| {
            let entry = serde_json::from_str(raw.as_str()?).ok()?;
            Some((id.clone(), entry))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn meta_number(meta: &HashMap<String, String>, field: &str) -> Option<u64> {
    meta.get(field)?.parse::<f64>().ok().map(|n| n as u64)
}

#[async_trait::async_trait]
impl LifecycleStore for RedisLifecycleStore {
    async fn put_policy(
        &self,
        room: &str,
        policy: &Policy,
        only_new: bool,
    ) -> Result<(Option<Policy>, bool), StoreError> {
        let mut connection = self.connection.clone();
        let json = serde_json::to_string(policy).map_err(|e| StoreError(e.to_string()))?;
        let mut invocation = self.put_policy.key(self.policy_key(room));
        invocation
            .key(self.room_key(room))
            .arg(json)
            .arg(if only_new { "1" } else { "0" })
            .arg(self.policy_ttl(policy));
        let (current, written): (String, String) =
            bounded(self.timeout, invocation.invoke_async(&mut connection)).await?;
        Ok((parse_policy(&current)?, written == "1"))
    }

    async fn policy(&self, room: &str) -> Result<Option<Policy>, StoreError> {
        let mut connection = self.connection.clone();
        let value: Option<String> =
            bounded(self.timeout, connection.get(self.policy_key(room))).await?;
        value.map_or(Ok(None), |json| parse_policy(&json))
    }

    async fn take_seat(&self, room: &str, request: &SeatRequest) -> Result<Seat, StoreError> {
        let mut connection = self.connection.clone();
        let PresenceKeys([conns, _, _, holds, meta]) = self.presence_keys(room);
        let mut invocation = self.take_seat.key(conns);
        invocation
            .key(holds)
            .key(meta)
            .key(self.policy_key(room))
            .arg(request.now)
            .arg(format!("{}|{}", request.hold_id, request.sub))
            .arg(request.hold_until)
            .arg(request.max.unwrap_or(0))
            .arg(millis(self.timings.ttl));
        let (held, count): (i64, u64) =
            bounded(self.timeout, invocation.invoke_async(&mut connection)).await?;
        Ok(if held == 1 {
            Seat::Held(count)
        } else {
            Seat::Full(count)
        })
    }

    async fn track(&self, room: &str, session_id: &str) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let ttl = millis(self.timings.ttl);
        let _: () = bounded(
            self.timeout,
            connection.pset_ex(self.session_key(session_id), room, ttl),
        )
        .await?;
        let _: i64 = bounded(
            self.timeout,
            connection.zadd(self.active_key(), room, crate::moderation::now_ms()),
        )
        .await?;
        Ok(())
    }

    async fn room_of(&self, session_id: &str) -> Result<Option<String>, StoreError> {
        let mut connection = self.connection.clone();
        bounded(self.timeout, connection.get(self.session_key(session_id))).await
    }

    async fn apply(
        &self,
        room: &str,
        change: &Change,
        ts: u64,
        now: u64,
    ) -> Result<bool, StoreError> {
        let mut connection = self.connection.clone();
        let (op, id, entry, sub, stream_connection) = match change {
            Change::Connected { id, entry } => (
                "cc",
                id,
                serde_json::to_string(entry).map_err(|e| StoreError(e.to_string()))?,
                entry.sub.clone().unwrap_or_default(),
                String::new(),
            ),
            Change::Disconnected { id } => ("cd", id, String::new(), String::new(), String::new()),
            Change::Published { id, entry } => (
                "sc",
                id,
                serde_json::to_string(entry).map_err(|e| StoreError(e.to_string()))?,
                String::new(),
                entry.connection.clone(),
            ),
            Change::Unpublished { id } => ("sd", id, String::new(), String::new(), String::new()),
        };
        let mut invocation = self.apply.prepare_invoke();
        self.add_presence_keys(&mut invocation, room);
        invocation
            .arg(op)
            .arg(id)
            .arg(ts)
            .arg(entry)
            .arg(sub)
            .arg(now)
            .arg(millis(self.timings.ttl))
            .arg(millis(self.timings.tombstone_keep))
            .arg(stream_connection);
        let applied: i64 = bounded(self.timeout, invocation.invoke_async(&mut connection)).await?;
        if matches!(change, Change::Connected { .. }) {
            let _: i64 =
                bounded(self.timeout, connection.zadd(self.active_key(), room, now)).await?;
        }
        Ok(applied == 1)
    }

    async fn presence(&self, room: &str, now: u64) -> Result<PresenceView, StoreError> {
        let mut connection = self.connection.clone();
        let mut invocation = self.presence.prepare_invoke();
        self.add_presence_keys(&mut invocation, room);
        invocation.arg(now);
        let json: String = bounded(self.timeout, invocation.invoke_async(&mut connection)).await?;
        let raw: RawPresence = serde_json::from_str(&json)
            .map_err(|_| StoreError("room presence in Redis is unreadable".into()))?;
        let meta: HashMap<String, String> = raw
            .m
            .as_object()
            .map(|object| {
                object
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        Ok(PresenceView {
            connections: entries::<ConnectionEntry>(&raw.c),
            streams: entries::<StreamEntry>(&raw.s),
            holds: raw.h,
            last_active_at: meta_number(&meta, "lastActiveAt"),
            empty_since: meta_number(&meta, "emptySince"),
            tracked: meta.contains_key("tracked"),
            ended_at: meta_number(&meta, "endedAt"),
            reconciled_at: meta_number(&meta, "reconciledAt"),
        })
    }

    async fn reconcile(
        &self,
        room: &str,
        listed: &[(String, u64)],
        listed_at: u64,
        now: u64,
    ) -> Result<Reconciled, StoreError> {
        let mut connection = self.connection.clone();
        let mut invocation = self.reconcile.prepare_invoke();
        self.add_presence_keys(&mut invocation, room);
        invocation
            .arg(now)
            .arg(listed_at)
            .arg(5_000)
            .arg(millis(self.timings.ttl));
        for (id, created_at) in listed {
            invocation.arg(id).arg(created_at);
        }
        let (dropped, added): (u64, u64) =
            bounded(self.timeout, invocation.invoke_async(&mut connection)).await?;
        Ok(Reconciled { dropped, added })
    }

    async fn mark_ended(&self, room: &str, now: u64) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let PresenceKeys([_, _, _, _, meta]) = self.presence_keys(room);
        let _: i64 = bounded(self.timeout, connection.hset(meta, "endedAt", now)).await?;
        Ok(())
    }

    async fn retire(&self, room: &str, session_id: &str) -> Result<bool, StoreError> {
        let mut connection = self.connection.clone();
        let mut invocation = self.retire.key(self.room_key(room));
        self.add_presence_keys(&mut invocation, room);
        invocation.arg(session_id);
        let retired: i64 = bounded(self.timeout, invocation.invoke_async(&mut connection)).await?;
        if retired == 1 {
            let _: i64 =
                bounded(self.timeout, connection.del(self.session_key(session_id))).await?;
            let _: i64 = bounded(self.timeout, connection.zrem(self.active_key(), room)).await?;
        }
        Ok(retired == 1)
    }

    async fn forget(&self, room: &str, session_id: Option<&str>) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let PresenceKeys(keys) = self.presence_keys(room);
        let mut all: Vec<String> = keys.into();
        all.push(self.policy_key(room));
        let _: i64 = bounded(self.timeout, connection.del(all)).await?;
        if let Some(session_id) = session_id {
            let _: i64 =
                bounded(self.timeout, connection.del(self.session_key(session_id))).await?;
        }
        let _: i64 = bounded(self.timeout, connection.zrem(self.active_key(), room)).await?;
        Ok(())
    }

    async fn active_rooms(&self) -> Result<Vec<String>, StoreError> {
        let mut connection = self.connection.clone();
        bounded(self.timeout, connection.zrange(self.active_key(), 0, -1)).await
    }

    async fn deactivate(&self, room: &str) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        let _: i64 = bounded(self.timeout, connection.zrem(self.active_key(), room)).await?;
        Ok(())
    }

    async fn try_lock(&self, room: &str, hold: Duration) -> Result<bool, StoreError> {
        let mut connection = self.connection.clone();
        let set: Option<String> = bounded(
            self.timeout,
            redis::cmd("SET")
                .arg(self.lock_key(room))
                .arg("1")
                .arg("NX")
                .arg("PX")
                .arg(millis(hold))
                .query_async(&mut connection),
        )
        .await?;
        Ok(set.is_some())
    }
}
