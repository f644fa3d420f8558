//! Vonage's callbacks to the application server (see the repository's `docs/callbacks.md`):
//! the payload model ([`event`]) and the seam between the receiver that verifies callbacks and
//! what applies them ([`CallbackSink`]): the receiver hands over only callbacks it has verified.

pub(crate) mod archives;
pub mod event;
pub(crate) mod limit;
pub(crate) mod receiver;
pub(crate) mod replay;
pub(crate) mod verify;

use crate::rooms::store::StoreError;
use event::Callback;

/// What applying a verified callback did, for the `callbacks received` metric and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The callback changed state.
    Applied,
    /// Valid, but nothing to do: an unknown event, a session that is not a room's, or an event
    /// older than what was already applied for that connection or stream.
    Ignored,
}

impl Applied {
    /// The metric label.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Ignored => "ignored",
        }
    }
}

/// Applies verified callbacks. A store error makes the receiver answer 503, so Vonage retries.
#[async_trait::async_trait]
pub trait CallbackSink: Send + Sync + std::fmt::Debug {
    /// Applies one verified callback; `received_at` is epoch ms on arrival.
    async fn apply(&self, callback: &Callback, received_at: u64) -> Result<Applied, StoreError>;
}
