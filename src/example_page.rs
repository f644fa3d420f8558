//! `dev --example-page DIR`: serves a static front end (the built `examples/web`) on its own
//! loopback port beside the service, plus `/config.json` naming the service's URL. The page sits
//! on another origin, so it calls the service through CORS exactly as a deployed front end would.
//! See docs/front-end.md.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;
use tower_http::services::ServeDir;

/// The page's listener, bound before the service so that its origin can join the CORS list.
pub(crate) struct ExamplePage {
    listener: TcpListener,
    dir: PathBuf,
}

impl ExamplePage {
    /// Checks that `dir` holds a built page and binds `listen`.
    pub(crate) async fn bind(dir: PathBuf, listen: SocketAddr) -> anyhow::Result<Self> {
        if !dir.join("index.html").is_file() {
            anyhow::bail!(
                "--example-page {}: no index.html there; build the page first: \
                 npm ci --prefix clients/js && npm run build --prefix clients/js && \
                 npm ci --prefix examples/web && npm run build --prefix examples/web \
                 (then pass examples/web/dist)",
                dir.display()
            );
        }
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen} for the example page"))?;
        Ok(Self { listener, dir })
    }

    /// The page's origin, as browsers send it in `Origin`.
    pub(crate) fn origin(&self) -> anyhow::Result<String> {
        Ok(format!("http://{}", self.listener.local_addr()?))
    }

    /// Serves the directory, and `/config.json` = `{"serviceUrl": service_url, "emulated": true}`
    /// (dev sessions are emulated: the page says so when the SDK cannot connect), in the background.
    pub(crate) fn spawn(self, service_url: String) {
        let config = serde_json::json!({ "serviceUrl": service_url, "emulated": true });
        let router = Router::new()
            .route(
                "/config.json",
                get(move || std::future::ready(axum::Json(config.clone()))),
            )
            .fallback_service(ServeDir::new(self.dir));
        tokio::spawn(async move {
            if let Err(error) = axum::serve(self.listener, router).await {
                tracing::warn!(%error, "the example page stopped serving");
            }
        });
    }
}
