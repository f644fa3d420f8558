//! The emulator's shared state: verifiers, the sessions created, the archives, the request
//! log and the current faults. A plain mutex, never held across an `.await`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde_json::Value;

use super::archive::{self, Archives};
use super::auth::{AuthCapture, CredentialKind};
use super::callbacks::Callbacks;
use super::connections::Registry;
use super::credentials::Verifiers;
use super::faults::Faults;
use super::moderation::ModerationState;

/// How many requests the log keeps; older ones are forgotten first.
const MAX_REQUESTS: usize = 10_000;

/// A session the emulator created, as `GET /_emulator/sessions` lists it.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SessionRecord {
    /// The minted session ID.
    pub(crate) session_id: String,
    /// API key or application ID.
    pub(crate) owner: String,
    /// The credential kind that created it.
    pub(crate) credential: CredentialKind,
    /// `routed` or `relayed`.
    pub(crate) media_mode: &'static str,
    /// `manual` or `always`.
    pub(crate) archive_mode: &'static str,
    /// The IPv4 location hint, if any.
    pub(crate) location: Option<String>,
    /// End-to-end encryption.
    pub(crate) e2ee: bool,
    /// Auto-archive name, if any.
    pub(crate) archive_name: Option<String>,
    /// Auto-archive resolution, if any.
    pub(crate) archive_resolution: Option<String>,
    /// Creation time, epoch milliseconds.
    pub(crate) created_at: u64,
}

/// A request received on a Vonage API route, as `GET /_emulator/requests` lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct RequestRecord {
    /// HTTP method.
    pub(crate) method: String,
    /// Path, without the query.
    pub(crate) path: String,
    /// Status answered; 0 when the connection was dropped by a fault.
    pub(crate) status: u16,
    /// Headers by lowercased name; repeated headers are joined with `, `.
    pub(crate) headers: BTreeMap<String, String>,
    /// Form pairs in the order sent; empty when the body is JSON.
    pub(crate) form: Vec<(String, String)>,
    /// The body, when it is a JSON object or array (archive calls).
    pub(crate) json: Option<Value>,
    /// The decoded auth JWT.
    pub(crate) auth: AuthCapture,
}

#[derive(Default)]
struct Records {
    sessions: Vec<SessionRecord>,
    requests: VecDeque<RequestRecord>,
    faults: Faults,
    archives: Archives,
}

/// Everything the connections share.
pub(crate) struct Shared {
    /// The configured credentials, ready to verify.
    pub(crate) verifiers: Verifiers,
    records: Mutex<Records>,
    /// How long a stopped archive takes to become available; kept across resets.
    archive_delay_ms: AtomicU64,
    /// Connected clients and their streams (`connections`).
    pub(crate) registry: Registry,
    /// The callback sender (`callbacks`); its URL and secrets are kept across resets.
    pub(crate) callbacks: Callbacks,
    /// The legacy API secret, to verify `T1==` client tokens (JWTs use `verifiers`).
    pub(crate) legacy_secret: Option<secrecy::SecretString>,
    /// Mute state and signals (`moderation`).
    pub(crate) moderation: ModerationState,
}

impl Shared {
    /// New state with no sessions, an empty log and the given faults.
    pub(crate) fn new(verifiers: Verifiers, faults: Faults) -> Self {
        let records = Records {
            faults,
            ..Records::default()
        };
        Self {
            verifiers,
            records: Mutex::new(records),
            archive_delay_ms: AtomicU64::new(0),
            registry: Registry::default(),
            callbacks: Callbacks::default(),
            legacy_secret: None,
            moderation: ModerationState::default(),
        }
    }

    /// A poisoned lock only means another request panicked mid-update; the data stays usable.
    fn lock(&self) -> MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current faults.
    pub(crate) fn faults(&self) -> Faults {
        self.lock().faults.clone()
    }

    /// Replaces the faults (already validated).
    pub(crate) fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    /// Records a created session.
    pub(crate) fn add_session(&self, session: SessionRecord) {
        self.lock().sessions.push(session);
    }

    /// Every session created, oldest first.
    pub(crate) fn sessions(&self) -> Vec<SessionRecord> {
        self.lock().sessions.clone()
    }

    /// Appends to the request log, forgetting the oldest beyond the bound.
    pub(crate) fn add_request(&self, request: RequestRecord) {
        let mut records = self.lock();
        if records.requests.len() >= MAX_REQUESTS {
            records.requests.pop_front();
        }
        records.requests.push_back(request);
    }

    /// The request log, in arrival order.
    pub(crate) fn requests(&self) -> Vec<RequestRecord> {
        self.lock().requests.iter().cloned().collect()
    }

    /// Empties the request log.
    pub(crate) fn clear_requests(&self) {
        self.lock().requests.clear();
    }

    /// Runs `f` on the archives and the sessions, after making due archives available.
    pub(crate) fn archives<R>(&self, f: impl FnOnce(&mut Archives, &[SessionRecord]) -> R) -> R {
        let delay_ms = self.archive_delay_ms();
        let mut records = self.lock();
        let records = &mut *records;
        records.archives.settle(archive::now_ms(), delay_ms);
        f(&mut records.archives, &records.sessions)
    }

    /// How long a stopped archive takes to become available, in milliseconds.
    pub(crate) fn archive_delay_ms(&self) -> u64 {
        self.archive_delay_ms.load(Ordering::Relaxed)
    }

    /// Sets the stopped → available delay (already bounded by the caller).
    pub(crate) fn set_archive_delay_ms(&self, delay_ms: u64) {
        self.archive_delay_ms.store(delay_ms, Ordering::Relaxed);
    }

    /// Forgets sessions, archives and requests and removes every fault.
    pub(crate) fn reset(&self) {
        *self.lock() = Records::default();
        self.registry.clear();
        self.callbacks.clear();
        self.moderation.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(path: &str) -> RequestRecord {
        RequestRecord {
            method: "POST".into(),
            path: path.into(),
            status: 200,
            headers: BTreeMap::new(),
            form: Vec::new(),
            json: None,
            auth: AuthCapture::default(),
        }
    }

    #[test]
    fn the_request_log_keeps_only_the_most_recent_entries() {
        let shared = Shared::new(
            Verifiers {
                legacy: None,
                application: None,
            },
            Faults::default(),
        );
        for index in 0..MAX_REQUESTS + 5 {
            shared.add_request(request(&format!("/{index}")));
        }
        let log = shared.requests();
        assert_eq!(log.len(), MAX_REQUESTS);
        assert_eq!(log[0].path, "/5");
        assert_eq!(log[MAX_REQUESTS - 1].path, format!("/{}", MAX_REQUESTS + 4));
    }
}
