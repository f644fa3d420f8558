//! A fake Vonage Video API over real HTTP, for the service's tests, benchmarks and the official
//! SDKs: `POST /session/create` with both auth styles, archiving (`archive`: start, stop, get,
//! list, delete under `/v2/project/{id}/archive`), the real error shapes, injected faults and
//! `/_emulator/*` control endpoints (see `docs/vonage-wire.md` §1–§4, §6 and §9).
//!
//! It shares only the session-ID codec with the service; it must not know the service's
//! Vonage client, so that a bug there cannot hide behind the same bug here.
//!
//! Control endpoints (JSON, camelCase; never subject to faults):
//! - `GET /_emulator/sessions`: every session created.
//! - `GET /_emulator/requests`, `DELETE /_emulator/requests`: the request log (last 10 000).
//! - `GET`, `PUT`, `DELETE /_emulator/faults`: read, replace (validated) or clear the faults.
//! - `POST /_emulator/reset`: forget sessions, archives and requests and clear the faults.
//! - `PUT /_emulator/sessions/{sessionId}/connections`, `GET /_emulator/archives`,
//!   `PUT /_emulator/archives/{archiveId}/status`, `GET`/`PUT /_emulator/archive-processing`,
//!   `GET /_emulator/downloads/{archiveId}.mp4`: see `archive`.
//! - Connected clients and streams (`POST /_emulator/sessions/{sessionId}/connections` with a
//!   client token, …) and Vonage's connection list and force-disconnect: see `connections`.
//! - Signed session-monitoring and archive callbacks, their faults and `serverRotation`
//!   (`/_emulator/callbacks`, `POST /_emulator/sessions/{sessionId}/rotate`): see `callbacks`.
//! - Force mute, signals and stream lists, and `GET /_emulator/sessions/{sessionId}/moderation`
//!   (mute state and the signals received): see `moderation`.

mod api;
mod archive;
mod auth;
mod callbacks;
mod claims;
mod client_token;
mod connections;
mod control;
mod credentials;
mod faults;
mod form;
mod moderation;
mod reply;
mod server;
mod session;
mod state;

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

pub use callbacks::CallbackSettings;
pub use credentials::{ApplicationKey, EmulatorCredentials, LegacyProject};
pub use faults::Faults;

use credentials::Verifiers;
use state::Shared;

/// A bound, not yet running, emulator. Start it with [`Emulator::run_until`].
pub struct Emulator {
    listener: TcpListener,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// Binds `addr` (port 0 picks a free port) for the given credentials and initial faults.
    ///
    /// Fails with [`io::ErrorKind::InvalidInput`] if the faults are out of range.
    pub async fn bind(
        addr: SocketAddr,
        credentials: EmulatorCredentials,
        faults: Faults,
    ) -> io::Result<Self> {
        Self::bind_with_callbacks(addr, credentials, faults, CallbackSettings::default()).await
    }

    /// Like [`Emulator::bind`], and sends signed callbacks as `callbacks` says (the URL can
    /// also be set later with `PUT /_emulator/callbacks`).
    pub async fn bind_with_callbacks(
        addr: SocketAddr,
        credentials: EmulatorCredentials,
        faults: Faults,
        callbacks: CallbackSettings,
    ) -> io::Result<Self> {
        faults
            .validate()
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let mut shared = Shared::new(Verifiers::from(&credentials), faults);
        shared.legacy_secret = credentials.legacy.as_ref().map(|p| p.api_secret.clone());
        tracing::info!(%local_addr, ?credentials, ?callbacks, "Vonage Video API emulator bound");
        shared.callbacks = callbacks::Callbacks::new(callbacks);
        let shared = Arc::new(shared);
        callbacks::Callbacks::start(&shared);
        Ok(Self {
            listener,
            local_addr,
            shared,
        })
    }

    /// Sets how long a stopped archive takes to become `available` (default zero: on the
    /// next read). At most 10 minutes; longer is cut to 10 minutes.
    #[must_use]
    pub fn with_archive_delay(self, delay: Duration) -> Self {
        let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.shared
            .set_archive_delay_ms(delay_ms.min(archive::MAX_DELAY_MS));
        self
    }

    /// The `/_emulator/*` control endpoints as a router sharing this emulator's state, to
    /// mount on another listener (`dev` serves them on the main port too).
    pub fn control_router(&self) -> axum::Router {
        control::router(Arc::clone(&self.shared))
    }

    /// The base URL to give an SDK or client, e.g. `http://127.0.0.1:PORT`. A wildcard bind
    /// address is replaced by loopback, which is what a client on this host can connect to.
    pub fn base_url(&self) -> String {
        let mut addr = self.local_addr;
        match addr.ip() {
            ip if ip == Ipv4Addr::UNSPECIFIED => addr.set_ip(Ipv4Addr::LOCALHOST.into()),
            ip if ip == Ipv6Addr::UNSPECIFIED => addr.set_ip(Ipv6Addr::LOCALHOST.into()),
            _ => {}
        }
        format!("http://{addr}")
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish (up to 5 s).
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        server::run(self.listener, self.shared, shutdown).await;
        Ok(())
    }
}
