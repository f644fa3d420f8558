//! Prometheus metrics through the `metrics` facade: the recorder (installed once per process,
//! as the facade requires) and the names. `front` counts the HTTP requests.
//!
//! Names: `http_requests_total`, `http_request_duration_seconds`, `http_requests_in_flight`,
//! `vonage_calls_total`, `vonage_call_duration_seconds`, `vonage_retries_total`,
//! `vonage_breaker_state`, `tokens_issued_total`, `room_joins_total`,
//! `room_claim_contention_total`, `room_store_errors_total`, `load_shed_total`,
//! `rate_limited_total`, `moderation_actions_total`, `moderation_banned_refusals_total`,
//! `callbacks_received_total`, `callback_archive_restarts_total`,
//! `build_info`, `log_lines_dropped_total` (counted by `telemetry`).

use std::collections::HashMap;
use std::sync::{OnceLock, PoisonError, RwLock};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets, seconds: sub-millisecond to the longest Vonage deadline.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder (once per process) and returns the handle that renders it.
pub(crate) fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .map(|builder| builder.build_recorder())
                .map(|recorder| {
                    let handle = recorder.handle();
                    // Fails only if another recorder was installed first (a test harness).
                    let _ = metrics::set_global_recorder(recorder);
                    handle
                });
            let handle =
                recorder.unwrap_or_else(|_| PrometheusBuilder::new().build_recorder().handle());
            describe();
            register_zeroes();
            metrics::gauge!("build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            handle
        })
        .clone()
}

/// The handles of one metric family whose label values are `&'static str`s, looked up in the
/// recorder once per set of values rather than on every event (a `counter!` with labels builds,
/// hashes and compares its key in the recorder each time). For families on the hot path.
pub(crate) struct Cached<const N: usize, H> {
    make: fn([&'static str; N]) -> H,
    handles: RwLock<HashMap<[&'static str; N], H>>,
}

impl<const N: usize, H: Clone> Cached<N, H> {
    /// `make` registers the series of one set of label values. The recorder is installed first,
    /// so no handle taken here is a no-op one.
    pub(crate) fn new(make: fn([&'static str; N]) -> H) -> Self {
        install();
        Self {
            make,
            handles: RwLock::default(),
        }
    }

    /// The handles for these label values.
    pub(crate) fn get(&self, values: [&'static str; N]) -> H {
        let known = self
            .handles
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&values)
            .cloned();
        known.unwrap_or_else(|| {
            self.handles
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(values)
                .or_insert_with(|| (self.make)(values))
                .clone()
        })
    }
}

/// Drains histogram samples into their buckets every second. Without it the recorder keeps
/// every sample until `/metrics` is scraped, so an unscraped service grows without bound; and
/// what it holds between drains (8 bytes per sample and histogram, two histograms per
/// `POST /sessions`) is part of the peak RSS: at 7.7k req/s a 5 s period held 1.4 MB more.
pub(crate) fn spawn_upkeep(handle: PrometheusHandle) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            handle.run_upkeep();
        }
    });
}

/// The series of every listed family whose labels are known in advance, at zero, so that a
/// dashboard or an alert sees them before their first event (a counter otherwise appears only
/// when first incremented). The `http_*` series are by route, method and status and appear with
/// their first request; `vonage_call*` ones with their first call.
fn register_zeroes() {
    use metrics::counter;
    for operation in VONAGE_OPERATIONS {
        counter!("vonage_retries_total", "operation" => operation).increment(0);
    }
    counter!("room_claim_contention_total").increment(0);
    counter!("room_store_errors_total").increment(0);
    for limit in ["in_flight", "vonage_calls"] {
        counter!("load_shed_total", "limit" => limit).increment(0);
    }
    for budget in RATE_LIMIT_BUDGETS {
        counter!("rate_limited_total", "budget" => budget).increment(0);
    }
    for role in ["publisher", "subscriber", "moderator", "publisheronly"] {
        counter!("tokens_issued_total", "role" => role).increment(0);
    }
    for outcome in ["created", "joined", "failed"] {
        counter!("room_joins_total", "outcome" => outcome).increment(0);
    }
    for action in MODERATION_ACTIONS {
        counter!("moderation_actions_total", "action" => action, "outcome" => "ok").increment(0);
    }
    counter!("moderation_banned_refusals_total").increment(0);
    for kind in ["session", "archive"] {
        for outcome in ["applied", "ignored"] {
            counter!("callbacks_received_total", "kind" => kind, "event" => "other", "outcome" => outcome)
                .increment(0);
        }
    }
    for outcome in ["restarted", "failed"] {
        counter!("callback_archive_restarts_total", "outcome" => outcome).increment(0);
    }
    metrics::gauge!("vonage_breaker_state").increment(0.0);
}

/// The `budget` label values of `rate_limited_total`: `auth::Budget::as_str` of each budget
/// (a test in `auth::rate_limit` keeps the two equal; `metrics` imports nothing above it).
pub(crate) const RATE_LIMIT_BUDGETS: [&str; 3] = ["create", "join", "callbacks"];

/// The `operation` label values of Vonage calls (`video::client`, `video::archives` and
/// `video::moderation`).
pub(crate) const VONAGE_OPERATIONS: [&str; 13] = [
    "create_session",
    "start_archive",
    "stop_archive",
    "get_archive",
    "list_archives",
    "force_disconnect",
    "mute_stream",
    "mute_all",
    "disable_mute_all",
    "signal_all",
    "signal_connection",
    "list_streams",
    "get_stream",
];

/// The `action` label values of `moderation_actions_total` (`routes::moderation`).
pub(crate) const MODERATION_ACTIONS: [&str; 11] = [
    "remove_connection",
    "remove_participant",
    "mute_stream",
    "mute_all",
    "get_mute",
    "signal_all",
    "signal_connection",
    "list_streams",
    "get_stream",
    "list_bans",
    "lift_ban",
];

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "http_requests_total",
        "HTTP requests answered, by matched route, method and status"
    );
    describe_histogram!(
        "http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency by route, method and status"
    );
    describe_gauge!("http_requests_in_flight", "HTTP requests being served");
    describe_counter!(
        "vonage_calls_total",
        "Calls to the Vonage Video API by operation and outcome"
    );
    describe_histogram!(
        "vonage_call_duration_seconds",
        Unit::Seconds,
        "Vonage call latency by operation and outcome"
    );
    describe_counter!(
        "vonage_retries_total",
        "Retried Vonage call attempts by operation"
    );
    describe_gauge!(
        "vonage_breaker_state",
        "Circuit breaker: 0 closed, 1 half-open, 2 open"
    );
    describe_counter!("tokens_issued_total", "Client tokens minted, by role");
    describe_counter!(
        "room_joins_total",
        "Room joins by outcome (created, joined)"
    );
    describe_counter!(
        "room_claim_contention_total",
        "Room joins that found another request's claim and waited"
    );
    describe_counter!(
        "room_store_errors_total",
        "Room store operations that failed"
    );
    describe_counter!(
        "load_shed_total",
        "Requests refused with 503 because a concurrency limit was reached, by limit"
    );
    describe_counter!("rate_limited_total", "Requests refused with 429, by budget");
    describe_counter!(
        "moderation_actions_total",
        "Moderation requests by action and outcome (ok or the problem code)"
    );
    describe_counter!(
        "moderation_banned_refusals_total",
        "Joins and token requests refused with 403 banned"
    );
    describe_counter!(
        "callbacks_received_total",
        "Vonage callbacks received, by kind, event and outcome (applied, ignored, or the refusal reason)"
    );
    describe_counter!(
        "callback_archive_restarts_total",
        "Archives restarted after a serverRotation, by outcome"
    );
    describe_counter!(
        "log_lines_dropped_total",
        "Log lines dropped because the log consumer (stderr) did not keep up"
    );
    describe_gauge!(
        "build_info",
        "Always 1; the version label says which build is running"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_handles_count_into_the_installed_recorder() {
        let family = Cached::new(
            |[flavour]| metrics::counter!("cached_handles_test_total", "flavour" => flavour),
        );
        family.get(["sweet"]).increment(2);
        family.get(["sweet"]).increment(1);
        family.get(["sour"]).increment(1);
        let rendered = install().render();
        assert!(
            rendered.contains("cached_handles_test_total{flavour=\"sweet\"} 3"),
            "{rendered}"
        );
        assert!(
            rendered.contains("cached_handles_test_total{flavour=\"sour\"} 1"),
            "{rendered}"
        );
    }
}
