//! The HTTP server loop: hyper with a header-read timeout (which also closes idle keep-alive
//! connections, since hyper starts it whenever a connection waits for its next request), the
//! client's address for every request, and a graceful drain bounded in time.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower::ServiceExt as _;

/// How the server treats connections.
#[derive(Debug, Clone, Copy)]
pub struct ServeSettings {
    /// A client must send a request's headers within this long (also the idle timeout).
    pub header_read_timeout: Duration,
    /// After `stop` resolves, in-flight requests get this long to finish.
    pub shutdown_timeout: Duration,
}

/// Serves `router` on `listener` until `stop` resolves, then stops accepting and waits up to
/// `settings.shutdown_timeout` for open connections to finish their requests.
pub async fn serve(
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
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        let (stream, remote) = tokio::select! {
            biased;
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request
                .extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(remote));
            router.clone().oneshot(request.map(axum::body::Body::new))
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // Errors here are clients going away or timing out: nothing to answer.
            let _ = connection.await;
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
