//! Rate limits shared by every replica through Redis (with `rooms.store = "redis"`), so a
//! deployment's budget per caller does not grow with its replica count. See docs/scale-out.md.
//!
//! One decision is one Lua script (GCRA, the same algorithm as the local limiter): the key
//! `<prefix>:ratelimit:{<budget>:<caller>}` holds the caller's theoretical arrival time in
//! microseconds of Redis's own clock (`TIME`, so replicas' clocks need not agree) and expires
//! when the bucket is full again, so an idle caller costs nothing.
//!
//! When Redis does not answer, decisions fall back to the replica's local budget (never wide
//! open, never a 5xx): logged once per outage, counted in `rate_limit_store_fallback_total`, and
//! `rate_limit_store_degraded` is 1. At most once a second one decision tries Redis again; the
//! first that succeeds returns the replica to the shared budget.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis::Script;

use super::budget::{Budget, CallerKey};
use crate::redis_conn::{RedisConnection, redis_reason};

/// `KEYS[1]` the caller's key; `ARGV`: emission interval µs (at least 1), burst capacity µs
/// (interval × burst). Answers `{1, 0}` (allowed) or `{0, µs until one more call passes}`. The
/// key's `PX` is at least 1 ms: Redis refuses `PX 0`, which made every decision an error (and
/// a fallback) when the interval rounded to 0 µs.
const GCRA: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then
  tat = now
end
local next_tat = tat + interval
local wait = next_tat - now - capacity
if wait > 0 then
  return {0, wait}
end
redis.call('SET', KEYS[1], string.format('%d', next_tat), 'PX', math.max(1, math.ceil((next_tat - now) / 1000)))
return {1, 0}
";

/// How often a degraded replica tries Redis again.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// What Redis decided.
pub(super) enum Decision {
    Allowed,
    Refused(Duration),
}

/// The shared budgets of every replica.
pub(super) struct SharedLimiter {
    connection: RedisConnection,
    prefix: String,
    timeout: Duration,
    script: Script,
    degraded: AtomicBool,
    /// While degraded: when the next decision may try Redis again.
    retry_at: Mutex<Instant>,
}

impl SharedLimiter {
    pub(super) fn new(connection: RedisConnection, prefix: &str, timeout: Duration) -> Self {
        metrics::gauge!("rate_limit_store_degraded").set(0.0);
        Self {
            connection,
            prefix: prefix.to_owned(),
            timeout,
            script: Script::new(GCRA),
            degraded: AtomicBool::new(false),
            retry_at: Mutex::new(Instant::now()),
        }
    }

    fn key(&self, key: &CallerKey, budget: Budget) -> String {
        let caller = match key {
            CallerKey::Subject(subject) => format!("sub:{subject}"),
            CallerKey::Ip(ip) => format!("ip:{ip}"),
        };
        format!("{}:ratelimit:{{{}:{caller}}}", self.prefix, budget.as_str())
    }

    /// Spends one call of `budget` for `key` in Redis; `None` when Redis cannot decide now
    /// (the caller then uses the local budget).
    pub(super) async fn decide(
        &self,
        key: &CallerKey,
        budget: Budget,
        per_minute: u32,
        burst: u32,
    ) -> Option<Decision> {
        if self.degraded.load(Ordering::Acquire) && !self.may_retry() {
            return None;
        }
        // Above 60,000,000 a minute the interval would round to 0 µs: 1 µs is the finest the
        // script keeps, a million calls a second per caller.
        let interval_us = (60_000_000 / u64::from(per_minute.max(1))).max(1);
        let mut invocation = self.script.key(self.key(key, budget));
        invocation
            .arg(interval_us)
            .arg(interval_us.saturating_mul(u64::from(burst)));
        let mut connection = self.connection.clone();
        let reply: Result<(i64, i64), String> = match tokio::time::timeout(
            self.timeout,
            invocation.invoke_async(&mut connection),
        )
        .await
        {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(error)) => Err(redis_reason(&error)),
            Err(_) => Err("timed out".into()),
        };
        match reply {
            Ok((allowed, wait_us)) => {
                if self.degraded.swap(false, Ordering::AcqRel) {
                    metrics::gauge!("rate_limit_store_degraded").set(0.0);
                    tracing::info!("rate limits are shared in Redis again");
                }
                Some(if allowed == 1 {
                    Decision::Allowed
                } else {
                    Decision::Refused(Duration::from_micros(u64::try_from(wait_us).unwrap_or(0)))
                })
            }
            Err(reason) => {
                *self.retry_slot() = Instant::now() + RETRY_INTERVAL;
                if !self.degraded.swap(true, Ordering::AcqRel) {
                    metrics::counter!("rate_limit_store_fallback_total").increment(1);
                    metrics::gauge!("rate_limit_store_degraded").set(1.0);
                    tracing::warn!(
                        error = %reason,
                        "Redis does not answer: rate limits fall back to this replica's local budget until it does"
                    );
                }
                None
            }
        }
    }

    /// While degraded: true for one decision per `RETRY_INTERVAL`.
    fn may_retry(&self) -> bool {
        let mut retry_at = self.retry_slot();
        let now = Instant::now();
        if now < *retry_at {
            return false;
        }
        *retry_at = now + RETRY_INTERVAL;
        true
    }

    fn retry_slot(&self) -> std::sync::MutexGuard<'_, Instant> {
        self.retry_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
