//! How calls to Vonage survive a flaky or failing Vonage: bounded retries with jittered
//! exponential backoff inside the request's deadline, and a circuit breaker that fails fast
//! while Vonage is down and probes it to recover.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::error::VideoError;

/// When and how often to retry.
#[derive(Debug, Clone)]
pub(crate) struct RetryPolicy {
    /// Retries after the first attempt.
    pub(crate) max_retries: u32,
    /// Backoff of the first retry (before jitter).
    pub(crate) base: Duration,
    /// Longest backoff.
    pub(crate) max: Duration,
}

impl RetryPolicy {
    /// "Full jitter": a random wait in `[0, min(max, base * 2^retry)]`, so retries of many
    /// callers spread out instead of arriving together.
    pub(crate) fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << retry.min(16))
            .min(self.max);
        ceiling.mul_f64(rand::random::<f64>())
    }
}

/// Whether another attempt may help: the connection failed (nothing or an unknown part was
/// processed; a duplicate session is harmless, a lost one is not), or Vonage said it is
/// overloaded or failing at its edge (429, 502, 503, 504). Timeouts are not retried: the
/// attempt already used its share of the deadline.
pub(crate) fn is_retryable(error: &VideoError) -> bool {
    match error {
        VideoError::Unreachable { .. } | VideoError::Unavailable { .. } => true,
        VideoError::Rejected { status, .. } => matches!(status, 502 | 504),
        _ => false,
    }
}

/// Whether the request certainly never reached Vonage (the connection was never made), the
/// only failure after which a non-idempotent call (starting or stopping an archive) is retried.
pub(crate) fn was_not_sent(error: &VideoError) -> bool {
    matches!(
        error,
        VideoError::Unreachable {
            before_sending: true,
            ..
        }
    )
}

/// Whether an error says Vonage itself is unwell (counts toward opening the breaker).
pub(crate) fn is_outage(error: &VideoError) -> bool {
    match error {
        VideoError::Unreachable { .. } | VideoError::Timeout | VideoError::Unavailable { .. } => {
            true
        }
        VideoError::Rejected { status, .. } => *status >= 500,
        _ => false,
    }
}

#[derive(Debug)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen,
}

/// A circuit breaker over whole calls (after their retries): it opens after `threshold`
/// consecutive failed calls, refuses calls for `open_for`, then lets one probe through;
/// the probe's success closes it, its failure opens it again.
#[derive(Debug)]
pub(crate) struct CircuitBreaker {
    state: Mutex<State>,
    threshold: u32,
    open_for: Duration,
}

/// Permission for one call. Record its outcome with [`Ticket::record`]; a probe dropped without
/// an outcome (its request was cancelled) lets the next call probe instead.
#[derive(Debug)]
pub(crate) struct Ticket<'a> {
    breaker: &'a CircuitBreaker,
    probe: bool,
    recorded: bool,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub(crate) fn new(threshold: u32, open_for: Duration) -> Self {
        publish(0.0);
        Self {
            state: Mutex::new(State::Closed { failures: 0 }),
            threshold: threshold.max(1),
            open_for,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Asks to make a call: a ticket, or how long until calls are allowed again.
    pub(crate) fn admit(&self) -> Result<Ticket<'_>, Duration> {
        let mut state = self.lock();
        let probe = match *state {
            State::Closed { .. } => false,
            State::Open { until } => {
                let now = Instant::now();
                if now < until {
                    return Err(until - now);
                }
                *state = State::HalfOpen;
                publish(1.0);
                true
            }
            // One probe at a time; the others wait for its verdict.
            State::HalfOpen => return Err(Duration::from_secs(1)),
        };
        Ok(Ticket {
            breaker: self,
            probe,
            recorded: false,
        })
    }

    fn open(&self, state: &mut State, until: Instant) {
        *state = State::Open { until };
        publish(2.0);
    }

    /// `closed`, `half-open` or `open`, for `/readyz` details.
    pub(crate) fn state_name(&self) -> &'static str {
        match *self.lock() {
            State::Closed { .. } => "closed",
            State::Open { .. } => "open",
            State::HalfOpen => "half-open",
        }
    }
}

impl Ticket<'_> {
    /// Records the call's final outcome: `outage` when Vonage itself failed.
    pub(crate) fn record(mut self, outage: bool) {
        self.recorded = true;
        let breaker = self.breaker;
        let mut state = breaker.lock();
        match (&mut *state, outage) {
            (State::Closed { failures }, false) => *failures = 0,
            (State::Closed { failures }, true) => {
                *failures += 1;
                if *failures >= breaker.threshold {
                    tracing::warn!(
                        failures = *failures,
                        "Vonage keeps failing: circuit breaker open"
                    );
                    breaker.open(&mut state, Instant::now() + breaker.open_for);
                }
            }
            (State::HalfOpen, false) if self.probe => {
                tracing::info!("Vonage answered the probe: circuit breaker closed");
                *state = State::Closed { failures: 0 };
                publish(0.0);
            }
            (State::HalfOpen, true) if self.probe => {
                breaker.open(&mut state, Instant::now() + breaker.open_for)
            }
            // Calls admitted before the breaker opened do not change its mind.
            _ => {}
        }
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.probe && !self.recorded {
            let mut state = self.breaker.lock();
            if matches!(*state, State::HalfOpen) {
                self.breaker.open(&mut state, Instant::now());
            }
        }
    }
}

fn publish(value: f64) {
    metrics::gauge!("vonage_breaker_state").set(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_jittered_and_bounded() {
        let policy = RetryPolicy {
            max_retries: 3,
            base: Duration::from_millis(50),
            max: Duration::from_millis(300),
        };
        for retry in 0..10 {
            let wait = policy.backoff(retry);
            assert!(wait <= Duration::from_millis(300));
            assert!(wait <= Duration::from_millis(50) * (1 << retry.min(16)));
        }
    }

    #[test]
    fn opens_after_consecutive_outages_then_probes_and_closes() {
        let breaker = CircuitBreaker::new(3, Duration::from_millis(30));
        for _ in 0..2 {
            breaker.admit().unwrap().record(true);
        }
        breaker.admit().unwrap().record(false);
        assert_eq!(breaker.state_name(), "closed", "a success resets the count");
        for _ in 0..3 {
            breaker.admit().unwrap().record(true);
        }
        assert_eq!(breaker.state_name(), "open");
        assert!(breaker.admit().is_err());
        std::thread::sleep(Duration::from_millis(40));
        let probe = breaker.admit().unwrap();
        assert!(breaker.admit().is_err(), "one probe at a time");
        probe.record(true);
        assert_eq!(breaker.state_name(), "open", "a failed probe reopens");
        std::thread::sleep(Duration::from_millis(40));
        breaker.admit().unwrap().record(false);
        assert_eq!(breaker.state_name(), "closed");
    }

    #[test]
    fn a_cancelled_probe_lets_the_next_call_probe() {
        let breaker = CircuitBreaker::new(1, Duration::from_millis(10));
        breaker.admit().unwrap().record(true);
        std::thread::sleep(Duration::from_millis(20));
        drop(breaker.admit().unwrap());
        breaker.admit().expect("the next call probes").record(false);
        assert_eq!(breaker.state_name(), "closed");
    }

    #[test]
    fn only_transient_failures_are_retried() {
        assert!(is_retryable(&VideoError::Unreachable {
            reason: "reset".into(),
            before_sending: false
        }));
        assert!(was_not_sent(&VideoError::Unreachable {
            reason: "refused".into(),
            before_sending: true
        }));
        assert!(!was_not_sent(&VideoError::Unreachable {
            reason: "reset".into(),
            before_sending: false
        }));
        assert!(!was_not_sent(&VideoError::Unavailable {
            status: 503,
            retry_after: None,
            detail: Default::default()
        }));
        assert!(is_retryable(&VideoError::Rejected {
            status: 502,
            detail: Default::default()
        }));
        assert!(!is_retryable(&VideoError::Rejected {
            status: 400,
            detail: Default::default()
        }));
        assert!(!is_retryable(&VideoError::AuthRejected {
            status: 403,
            detail: Default::default()
        }));
        assert!(!is_retryable(&VideoError::Timeout));
    }
}
