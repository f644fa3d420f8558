//! The state every handler shares, and the draining flag: what `routes` and `front` need from
//! the wiring, without importing it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::FromRef;

use crate::auth::AuthPolicy;
use crate::rooms::Rooms;
use crate::video::{TokenIssuer, VideoClient};

/// Shared handles available to every handler. Extractors clone the state for every request,
/// so it is one `Arc` (a clone of the fields themselves would touch a dozen reference counts).
#[derive(Clone)]
pub(crate) struct AppState(pub(crate) Arc<Handles>);

impl std::ops::Deref for AppState {
    type Target = Handles;

    fn deref(&self) -> &Handles {
        &self.0
    }
}

/// What `AppState` shares.
pub(crate) struct Handles {
    /// The Vonage Video API client.
    pub video: VideoClient,
    /// Client-token minting with our credentials.
    pub tokens: TokenIssuer,
    /// Caller policy.
    pub auth: AuthPolicy,
    /// Named rooms.
    pub rooms: Rooms,
    /// Draining flag for `/readyz`.
    pub readiness: Readiness,
    /// Bans, mute-all state and presence for moderation.
    pub moderation: crate::moderation::Moderation,
    /// Presence, room policies and the room's end (`docs/room-lifecycle.md`); also the sink of
    /// verified callbacks (`lifecycle.sink()`).
    pub lifecycle: crate::lifecycle::Lifecycle,
    /// Verifies Vonage's callbacks (`POST /vonage/callbacks`).
    pub callbacks: crate::callbacks::receiver::Receiver,
    /// Where verified callbacks go: the archive-aware sink (archive states, restarts after a
    /// `serverRotation`) around the room lifecycle's sink (`app::build_with`).
    pub callback_sink: Arc<dyn crate::callbacks::CallbackSink>,
    /// The last verified state of each archive, from archive-status callbacks.
    pub archive_states: crate::callbacks::archives::ArchiveStates,
}

impl FromRef<AppState> for AuthPolicy {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

/// Whether the service is draining (set on SIGTERM, before the listener closes).
#[derive(Debug, Clone, Default)]
pub(crate) struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// True once shutdown has begun.
    pub(crate) fn is_draining(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Marks the service as draining.
    pub(crate) fn start_draining(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
