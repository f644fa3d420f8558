//! The HTTP server loop: hyper (HTTP/1.1, and cleartext HTTP/2 only when `server.http2` says
//! so), the client's address for every request, and a graceful drain bounded in time.
//!
//! No connection can be held without a deadline (see `docs/hardening.md`):
//! - from accept, the first request (HTTP/1.1 headers, or the HTTP/2 preface and a first
//!   stream) must arrive within `server.header_read_timeout_ms`, else the connection is closed;
//! - HTTP/1.1 keep-alive idles are closed by hyper's header-read timeout, HTTP/2 connections
//!   with nothing in flight after `server.http2_idle_timeout_ms`, and HTTP/2 peers that stop
//!   answering keep-alive pings;
//! - at most `server.max_connections_per_ip` connections per TCP peer (trusted proxies exempt:
//!   this cap can only see the peer address, not `X-Forwarded-For`);
//! - when accept fails (usually out of descriptors) the loop backs off exponentially and logs
//!   once per burst instead of spinning.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower::ServiceExt as _;

use crate::auth::client_ip::TrustedProxies;

/// How the server treats connections.
#[derive(Debug, Clone)]
pub(crate) struct ServeSettings {
    /// A client must send a request's headers within this long (also the idle timeout), and
    /// a new connection its first request.
    pub header_read_timeout: Duration,
    /// After `stop` resolves, in-flight requests get this long to finish.
    pub shutdown_timeout: Duration,
    /// Most connections from one peer address.
    pub max_connections_per_ip: usize,
    /// Peers exempt from the per-address cap.
    pub trusted_proxies: TrustedProxies,
    /// Serve cleartext HTTP/2 too.
    pub http2: bool,
    /// Concurrent streams per HTTP/2 connection.
    pub http2_max_concurrent_streams: u32,
    /// An HTTP/2 connection with nothing in flight this long is closed.
    pub http2_idle_timeout: Duration,
    /// HTTP/2 keep-alive ping interval (and the time a ping may take to be answered).
    pub http2_keep_alive_interval: Duration,
}

/// Counts per IP address, with a cap; a slot is given back when its guard drops.
#[derive(Debug)]
pub(crate) struct PerIp {
    cap: usize,
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// One slot of a [`PerIp`] counter.
#[derive(Debug)]
pub(crate) struct PerIpSlot {
    owner: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    /// A counter allowing `cap` slots per address.
    pub(crate) fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap,
            counts: Mutex::default(),
        })
    }

    /// A slot for `ip`, or `None` when it holds `cap` already.
    pub(crate) fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<PerIpSlot> {
        let ip = ip.to_canonical();
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(ip).or_default();
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(PerIpSlot {
            owner: self.clone(),
            ip,
        })
    }
}

impl Drop for PerIpSlot {
    fn drop(&mut self) {
        let mut counts = self
            .owner
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// What a connection is doing, for its idle deadline.
struct Activity {
    accepted: Instant,
    in_flight: AtomicUsize,
    seen_request: AtomicBool,
    /// Milliseconds after `accepted` when the last request finished.
    last_done_ms: AtomicU64,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            accepted: Instant::now(),
            in_flight: AtomicUsize::new(0),
            seen_request: AtomicBool::new(false),
            last_done_ms: AtomicU64::new(0),
        })
    }

    fn start(self: &Arc<Self>) -> RequestActivity {
        self.seen_request.store(true, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        RequestActivity(self.clone())
    }

    /// Resolves once the connection has had nothing in flight for its limit: `first` before
    /// any request arrived (counted from accept), `idle` after the last one finished.
    async fn idle(&self, first: Duration, idle: Duration) {
        loop {
            let (since, limit) = if self.seen_request.load(Ordering::Relaxed) {
                let done = Duration::from_millis(self.last_done_ms.load(Ordering::Relaxed));
                (self.accepted + done, idle)
            } else {
                (self.accepted, first)
            };
            let now = Instant::now();
            let busy = self.in_flight.load(Ordering::Relaxed) > 0;
            let deadline = since + limit;
            if !busy && now >= deadline {
                return;
            }
            let wake = if busy { now + limit } else { deadline };
            tokio::time::sleep_until(wake.into()).await;
        }
    }
}

/// A request in flight on a connection; dropping it marks the connection active now.
struct RequestActivity(Arc<Activity>);

impl Drop for RequestActivity {
    fn drop(&mut self) {
        let elapsed = self.0.accepted.elapsed().as_millis() as u64;
        self.0.last_done_ms.store(elapsed, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Accept errors that concern one connection only (the peer gave up): retry at once.
fn is_connection_error(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::Interrupted
    )
}

/// Backoff after `failures` consecutive accept failures: 5 ms doubling up to 1 s.
fn accept_backoff(failures: u32) -> Duration {
    Duration::from_millis(5u64 << failures.min(8)).min(Duration::from_secs(1))
}

/// Serves `router` on `listener` until `stop` resolves, then stops accepting and waits up to
/// `settings.shutdown_timeout` for open connections to finish their requests.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    stop: impl Future<Output = ()>,
    settings: ServeSettings,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(settings.http2_max_concurrent_streams)
        .max_pending_accept_reset_streams(20)
        .max_header_list_size(16 * 1024)
        .keep_alive_interval(settings.http2_keep_alive_interval)
        .keep_alive_timeout(settings.http2_keep_alive_interval);
    if !settings.http2 {
        builder = builder.http1_only();
    }
    let connections = PerIp::new(settings.max_connections_per_ip);
    let graceful = GracefulShutdown::new();
    let mut failures = 0u32;
    tokio::pin!(stop);
    loop {
        let (stream, remote) = tokio::select! {
            biased;
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) if is_connection_error(&error) => continue,
                Err(error) => {
                    // Usually out of file descriptors (EMFILE/ENFILE): back off instead of
                    // spinning, and say so once per burst.
                    if failures == 0 {
                        tracing::warn!(%error, "accept failed; backing off until it succeeds again");
                    }
                    failures += 1;
                    tokio::select! {
                        biased;
                        () = &mut stop => break,
                        () = tokio::time::sleep(accept_backoff(failures)) => {}
                    }
                    continue;
                }
            },
        };
        if failures > 0 {
            tracing::info!(failures, "accepting again");
            failures = 0;
        }
        let slot = if settings.trusted_proxies.trusts(remote.ip()) {
            None
        } else {
            match connections.try_acquire(remote.ip()) {
                Some(slot) => Some(slot),
                None => {
                    metrics::counter!("load_shed_total", "limit" => "connections_per_ip")
                        .increment(1);
                    // Closed unanswered: nothing was read yet.
                    drop(stream);
                    continue;
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let activity = Activity::new();
        let watched = activity.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            let active = watched.start();
            request
                .extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(remote));
            let call = router.clone().oneshot(request.map(axum::body::Body::new));
            async move {
                let response = call.await;
                drop(active);
                response
            }
        });
        let connection = builder
            // Not `serve_connection_with_upgrades`: it ignores `http1_only` (no route upgrades).
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        let (first, idle) = (settings.header_read_timeout, settings.http2_idle_timeout);
        tokio::spawn(async move {
            let _slot = slot;
            tokio::select! {
                // Errors here are clients going away or timing out: nothing to answer.
                _ = connection => {}
                // Dropping the connection closes it; nothing is in flight on it.
                () = activity.idle(first, idle) => {}
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(settings.shutdown_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "in-flight requests did not finish within server.shutdown_timeout_ms; exiting anyway"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_slots_are_capped_and_given_back() {
        let counter = PerIp::new(2);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let a = counter.try_acquire(ip).unwrap();
        let _b = counter.try_acquire(mapped).unwrap();
        assert!(
            counter.try_acquire(ip).is_none(),
            "a mapped address is the same client"
        );
        assert!(counter.try_acquire("192.0.2.2".parse().unwrap()).is_some());
        drop(a);
        assert!(counter.try_acquire(ip).is_some());
    }

    #[test]
    fn accept_backoff_grows_to_a_second() {
        assert_eq!(accept_backoff(1), Duration::from_millis(10));
        assert!(accept_backoff(3) > accept_backoff(2));
        assert_eq!(accept_backoff(40), Duration::from_secs(1));
    }
}
