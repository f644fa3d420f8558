//! The accept loop: one hyper-util connection per socket, so that a fault can close a
//! connection without a response, and a graceful drain on shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt as _;

use super::api::{self, DroppedConnection};
use super::control;
use super::state::Shared;

/// How long shutdown waits for in-flight requests (a latency fault, say) before cutting them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failed accept (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Accepts connections until `shutdown` resolves, then drains them.
///
/// Hand-rolled rather than `hyper_util::server::graceful::GracefulShutdown`, which needs the
/// `server-graceful` feature of hyper-util; this does the same with a watch channel.
pub(crate) async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let router = control::router(Arc::clone(&shared));
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let connection =
                        serve(stream, Arc::clone(&shared), router.clone(), stopping.clone());
                    connections.spawn(connection);
                }
                Err(error) => {
                    tracing::warn!(%error, "emulator failed to accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = connections.join_next() => {}
        }
    }
    drop(listener);
    // Sending fails only when no connection is left to tell, which needs no action.
    let _ = stop.send(true);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("emulator cut connections still busy after the drain timeout");
        connections.shutdown().await;
    }
}

/// Serves one connection (HTTP/1 or HTTP/2) until it ends or shutdown starts.
async fn serve(
    stream: TcpStream,
    shared: Arc<Shared>,
    router: Router,
    mut stopping: watch::Receiver<bool>,
) {
    let service = service_fn(move |request| dispatch(Arc::clone(&shared), router.clone(), request));
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        // The `Ref` the wait returns is not `Send`; drop it before awaiting the drain.
        () = async { drop(stopping.wait_for(|stop| *stop).await) } => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        // Dropped-by-fault connections end here too; that is expected, not a failure.
        tracing::debug!(%error, "emulator connection ended with an error");
    }
}

/// Control paths go to the axum router; everything else is the emulated Vonage API.
async fn dispatch(
    shared: Arc<Shared>,
    router: Router,
    request: Request<Incoming>,
) -> Result<Response<Body>, DroppedConnection> {
    let path = request.uri().path();
    if path == "/_emulator" || path.starts_with("/_emulator/") {
        return match router.oneshot(request).await {
            Ok(response) => Ok(response),
            Err(never) => match never {},
        };
    }
    api::handle(shared, request).await
}
