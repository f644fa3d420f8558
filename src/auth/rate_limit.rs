//! Rate limits per caller (README "Who may call"): one GCRA budget (governor) for creating sessions and
//! rooms, a larger one for joins and tokens. Keys are the JWT `sub`, else the client IP (an
//! IPv6 client by its /64, which one host usually holds whole). Only the handlers that do work
//! ask for a budget, so probes, `/metrics` and `/openapi.json` are never limited.
//!
//! Memory stays bounded: a background task drops every key whose bucket is full again
//! (`retain_recent`), so only callers active within the last burst window (10 s for the default
//! create budget) plus one sweep interval are held.
//!
//! With `rooms.store = "redis"` the budgets are shared by every replica in Redis instead
//! (`shared_limit`); the local buckets then decide only while Redis does not answer.

use std::num::NonZeroU32;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};
use governor::clock::Clock as _;
use governor::{DefaultKeyedRateLimiter, Quota};

pub(crate) use super::budget::{Budget, CallerKey};
use super::shared_limit::{Decision, SharedLimiter};
use crate::config::RateLimitsConfig;
use crate::redis_conn::RedisConnection;

/// How often idle keys are swept.
const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// A refused call: which budget, its size, and when the next call would pass.
#[derive(Debug, Clone)]
pub(crate) struct RateLimited {
    /// The budget that ran out.
    pub(crate) budget: Budget,
    /// Sustained rate, per minute.
    pub(crate) per_minute: u32,
    /// Burst size.
    pub(crate) burst: u32,
    /// Time until one more call is allowed.
    pub(crate) retry_after: Duration,
}

impl RateLimited {
    /// Whole seconds until the next call passes (at least 1).
    pub(crate) fn retry_after_seconds(&self) -> u64 {
        (self.retry_after.as_secs_f64().ceil() as u64).max(1)
    }

    /// The `RateLimit-*` headers of a 429 (draft-ietf-httpapi-ratelimit-headers):
    /// `RateLimit-Limit` (calls per window), `RateLimit-Remaining` (0),
    /// `RateLimit-Reset` (seconds until one more call passes) and `RateLimit-Policy`.
    pub(crate) fn headers(&self) -> [(HeaderName, HeaderValue); 4] {
        let policy = format!(
            "{};w=60;burst={};comment=\"{}\"",
            self.per_minute,
            self.burst,
            self.budget.as_str()
        );
        [
            (
                HeaderName::from_static("ratelimit-limit"),
                HeaderValue::from(self.per_minute),
            ),
            (
                HeaderName::from_static("ratelimit-remaining"),
                HeaderValue::from_static("0"),
            ),
            (
                HeaderName::from_static("ratelimit-reset"),
                HeaderValue::from(self.retry_after_seconds()),
            ),
            (
                HeaderName::from_static("ratelimit-policy"),
                HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static("")),
            ),
        ]
    }
}

struct Bucket {
    limiter: DefaultKeyedRateLimiter<CallerKey>,
    per_minute: u32,
    burst: u32,
}

impl Bucket {
    fn new(per_minute: u32, burst: u32) -> Option<Self> {
        let quota =
            Quota::per_minute(NonZeroU32::new(per_minute)?).allow_burst(NonZeroU32::new(burst)?);
        Some(Self {
            limiter: DefaultKeyedRateLimiter::dashmap(quota),
            per_minute,
            burst,
        })
    }
}

struct Buckets {
    create: Bucket,
    join: Bucket,
    shared: Option<SharedLimiter>,
}

/// The per-caller budgets. Cheap to clone.
#[derive(Clone)]
pub(crate) struct RateLimits(Arc<Buckets>);

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("create_per_minute", &self.0.create.per_minute)
            .field("join_per_minute", &self.0.join.per_minute)
            .field("shared", &self.0.shared.is_some())
            .finish_non_exhaustive()
    }
}

impl RateLimits {
    /// The budgets of `config`, or `None` when `rate_limits.enabled` is false. Config
    /// validation guarantees non-zero rates and bursts. Starts the idle-key sweeper when
    /// called inside a Tokio runtime; it stops when the limits are dropped.
    #[cfg(test)]
    pub(crate) fn new(config: &RateLimitsConfig) -> Option<Self> {
        Self::with_shared(config, None)
    }

    /// Like `new`; with `shared` = (Redis connection, key prefix, call timeout), the budgets are
    /// shared by every replica using that Redis, and local only while it does not answer.
    pub(crate) fn with_shared(
        config: &RateLimitsConfig,
        shared: Option<(RedisConnection, &str, Duration)>,
    ) -> Option<Self> {
        if !config.enabled {
            return None;
        }
        let limits = Self(Arc::new(Buckets {
            create: Bucket::new(config.create_per_minute, config.create_burst)?,
            join: Bucket::new(config.join_per_minute, config.join_burst)?,
            shared: shared.map(|(connection, prefix, timeout)| {
                SharedLimiter::new(connection, prefix, timeout)
            }),
        }));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(sweep(Arc::downgrade(&limits.0)));
        }
        Some(limits)
    }

    /// Spends one call of `budget` for `key`: in Redis when shared and Redis answers, else
    /// in this replica's bucket.
    pub(crate) async fn check(&self, key: &CallerKey, budget: Budget) -> Result<(), RateLimited> {
        let bucket = match budget {
            Budget::Create => &self.0.create,
            Budget::Join => &self.0.join,
            // Spent by `callbacks::limit::CallbackLimiter`, never through the callers' budgets.
            Budget::Callbacks => return Ok(()),
        };
        let decision = match &self.0.shared {
            Some(shared) => {
                shared
                    .decide(key, budget, bucket.per_minute, bucket.burst)
                    .await
            }
            None => None,
        };
        let retry_after = match decision {
            Some(Decision::Allowed) => return Ok(()),
            Some(Decision::Refused(retry_after)) => retry_after,
            None => match bucket.limiter.check_key(key) {
                Ok(()) => return Ok(()),
                Err(not_until) => not_until.wait_time_from(bucket.limiter.clock().now()),
            },
        };
        metrics::counter!("rate_limited_total", "budget" => budget.as_str()).increment(1);
        Err(RateLimited {
            budget,
            per_minute: bucket.per_minute,
            burst: bucket.burst,
            retry_after,
        })
    }

    /// Drops idle keys and returns how many remain (the sweeper calls this).
    pub(crate) fn evict_idle(&self) -> usize {
        let mut held = 0;
        for bucket in [&self.0.create, &self.0.join] {
            bucket.limiter.retain_recent();
            bucket.limiter.shrink_to_fit();
            held += bucket.limiter.len();
        }
        held
    }
}

async fn sweep(buckets: Weak<Buckets>) {
    let mut interval = tokio::time::interval(SWEEP_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    loop {
        interval.tick().await;
        let Some(buckets) = buckets.upgrade() else {
            return;
        };
        let held = RateLimits(buckets).evict_idle();
        tracing::debug!(rate_limit.keys = held, "rate-limit keys swept");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    #[test]
    fn the_budget_names_are_the_metric_labels() {
        let names = [Budget::Create, Budget::Join, Budget::Callbacks].map(Budget::as_str);
        assert_eq!(names, crate::metrics::RATE_LIMIT_BUDGETS);
    }

    fn config(create_per_minute: u32, create_burst: u32) -> RateLimitsConfig {
        RateLimitsConfig {
            enabled: true,
            create_per_minute,
            create_burst,
            join_per_minute: 600,
            join_burst: 60,
        }
    }

    #[tokio::test]
    async fn each_caller_has_its_own_budget_and_a_refusal_says_when_to_retry() {
        let limits = RateLimits::new(&config(60, 2)).unwrap();
        let alice = CallerKey::Subject("alice".into());
        let bob = CallerKey::Subject("bob".into());
        assert!(limits.check(&alice, Budget::Create).await.is_ok());
        assert!(limits.check(&alice, Budget::Create).await.is_ok());
        let refused = limits.check(&alice, Budget::Create).await.unwrap_err();
        assert_eq!(refused.budget, Budget::Create);
        assert!(refused.retry_after <= Duration::from_secs(1));
        assert_eq!(refused.retry_after_seconds(), 1);
        assert!(
            limits.check(&bob, Budget::Create).await.is_ok(),
            "bob is unaffected"
        );
        assert!(
            limits.check(&alice, Budget::Join).await.is_ok(),
            "the join budget is separate"
        );
        let headers = refused.headers();
        assert_eq!(headers[0].1, "60");
        assert_eq!(headers[1].1, "0");
        assert_eq!(headers[3].1, "60;w=60;burst=2;comment=\"create\"");
    }

    #[tokio::test]
    async fn idle_keys_are_evicted() {
        // 6000 a minute: a bucket refills in 10 ms, after which its key is indistinguishable
        // from a fresh one.
        let limits = RateLimits::new(&config(6000, 1)).unwrap();
        for n in 0..100u8 {
            let key = CallerKey::from_ip(IpAddr::from([10, 0, 0, n]));
            limits.check(&key, Budget::Create).await.unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(limits.evict_idle(), 0);
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_slash_64_and_limits_can_be_disabled() {
        let a = CallerKey::from_ip("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = CallerKey::from_ip("2001:db8:1:2:bbbb::9".parse().unwrap());
        let c = CallerKey::from_ip("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        let disabled = RateLimitsConfig {
            enabled: false,
            ..config(60, 10)
        };
        assert!(RateLimits::new(&disabled).is_none());
    }
}
