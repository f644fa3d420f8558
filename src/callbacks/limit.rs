//! The receiver's own rate limit: per source address (as `auth.trusted_proxies` resolves it,
//! IPv6 by /64), per replica, `callbacks.per_minute` with `callbacks.burst`. Vonage sends from
//! a few addresses, so this bounds what a flood from anywhere else costs (each refused callback
//! is answered before any signature is computed); a refusal is 429, which Vonage retries.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use governor::clock::Clock as _;
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::auth::{Budget, CallerKey, RateLimited};

/// Idle keys are dropped every this many checks, so memory stays bounded.
const SWEEP_EVERY: u64 = 4096;

/// Callbacks per source address.
pub(crate) struct CallbackLimiter {
    limiter: DefaultKeyedRateLimiter<CallerKey>,
    per_minute: u32,
    burst: u32,
    checks: AtomicU64,
}

impl std::fmt::Debug for CallbackLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackLimiter")
            .field("per_minute", &self.per_minute)
            .field("burst", &self.burst)
            .finish_non_exhaustive()
    }
}

impl CallbackLimiter {
    /// A limiter of `per_minute` with `burst` (both validated non-zero; 1 otherwise).
    pub(crate) fn new(per_minute: u32, burst: u32) -> Self {
        let rate = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        let size = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: DefaultKeyedRateLimiter::dashmap(Quota::per_minute(rate).allow_burst(size)),
            per_minute,
            burst,
            checks: AtomicU64::new(0),
        }
    }

    /// Spends one callback of `ip`'s budget.
    pub(crate) fn check(&self, ip: IpAddr) -> Result<(), RateLimited> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.limiter.retain_recent();
        }
        match self.limiter.check_key(&CallerKey::from_ip(ip)) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                metrics::counter!("rate_limited_total", "budget" => Budget::Callbacks.as_str())
                    .increment(1);
                Err(RateLimited {
                    budget: Budget::Callbacks,
                    per_minute: self.per_minute,
                    burst: self.burst,
                    retry_after: not_until.wait_time_from(self.limiter.clock().now()),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_source_has_its_own_burst() {
        let limiter = CallbackLimiter::new(60, 2);
        let a = IpAddr::from([10, 0, 0, 1]);
        assert!(limiter.check(a).is_ok());
        assert!(limiter.check(a).is_ok());
        let refused = limiter.check(a).unwrap_err();
        assert_eq!(refused.budget, Budget::Callbacks);
        assert!(limiter.check(IpAddr::from([10, 0, 0, 2])).is_ok());
    }
}
