//! Vonage's callback service, played for one application server: session-monitoring events
//! (`connectionCreated`, `connectionDestroyed`, `streamCreated`, `streamDestroyed`,
//! `sessionDestroyed`) and archive-status events, posted as JSON to the configured URL and
//! signed as Vonage's secure callbacks are (see the repository's `docs/callbacks.md`):
//! `Authorization: Bearer <HS256 JWT>` with `iat`, `jti`, `iss: "Vonage"`, `payload_hash`,
//! `api_key`, `application_id` and no `exp`, one secret per callback kind.
//!
//! Deliveries leave in order from one worker; a 5xx or a network error is retried (signed)
//! with a doubling backoff from `retryMs`, at most `maxAttempts` times, as Vonage retries.
//! Faults, captured when an event happens (so a test can set, act, clear):
//! `unsigned` (first attempt without a signature), `duplicate` (delivered twice), `reorder`
//! (held back until the next event has gone), `delayMs` (sent later, out of the queue) and
//! `drop` (never sent: a lost delivery).
//!
//! Control: `GET /_emulator/callbacks` (URL, faults, the delivery log; never the secrets),
//! `PUT /_emulator/callbacks` `{"url"?, "faults"?, "retryMs"?, "maxAttempts"?}`,
//! `DELETE /_emulator/callbacks` (clears the log and the faults),
//! `POST /_emulator/sessions/{sessionId}/rotate` (a `serverRotation`: the session's archives
//! stop, `sessionDestroyed` with `reason: "serverRotation"` is sent, the connections stay).

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{Response, StatusCode};
use axum::routing::{get, post};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::archive::now_ms;
use super::auth::CredentialKind;
use super::client_token::hex;
use super::connections::{Connection, Stream};
use super::reply;
use super::state::Shared;

/// How many deliveries the log keeps.
const MAX_LOG: usize = 10_000;
/// How long a `reorder`-held event waits for a successor before it goes anyway.
const REORDER_HOLD: Duration = Duration::from_millis(300);

/// Where callbacks go and the secrets that sign them (set when the emulator is bound).
#[derive(Clone, Default)]
pub struct CallbackSettings {
    /// The application server's callback URL; none means no callbacks are sent.
    pub url: Option<String>,
    /// Signs session-monitoring callbacks; none sends them unsigned.
    pub session_secret: Option<SecretString>,
    /// Signs archive-status callbacks; none sends them unsigned.
    pub archive_secret: Option<SecretString>,
}

impl fmt::Debug for CallbackSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |secret: &Option<SecretString>| secret.as_ref().map(|_| "[redacted]");
        f.debug_struct("CallbackSettings")
            .field("url", &self.url)
            .field("session_secret", &redacted(&self.session_secret))
            .field("archive_secret", &redacted(&self.archive_secret))
            .finish()
    }
}

/// Delivery faults; all off by default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub(crate) struct CallbackFaults {
    /// The first attempt carries no signature (Vonage's rare internal-error case).
    pub(crate) unsigned: bool,
    /// Every event is delivered twice.
    pub(crate) duplicate: bool,
    /// Every event is held back until the next one has been delivered.
    pub(crate) reorder: bool,
    /// Every event is sent this much later, outside the queue.
    pub(crate) delay_ms: u64,
    /// Events are never sent.
    pub(crate) drop: bool,
}

/// A session-monitoring event.
#[derive(Debug, Clone)]
pub(crate) enum Event {
    ConnectionCreated {
        connection: Connection,
        timestamp: u64,
    },
    ConnectionDestroyed {
        connection: Connection,
        reason: &'static str,
        timestamp: u64,
    },
    StreamCreated {
        stream: Stream,
        connection: Connection,
        timestamp: u64,
    },
    StreamDestroyed {
        stream: Stream,
        connection: Connection,
        reason: &'static str,
        timestamp: u64,
    },
    SessionDestroyed {
        session_id: String,
        reason: &'static str,
        timestamp: u64,
    },
}

/// Which secret signs a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    Session,
    Archive,
}

/// One delivery attempt, as the log shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Delivery {
    kind: Kind,
    event: String,
    session_id: String,
    attempt: u32,
    signed: bool,
    /// The status answered; 0 on a network error.
    status: u16,
    at: u64,
}

struct Outgoing {
    kind: Kind,
    event: String,
    session_id: String,
    body: Vec<u8>,
    owner: String,
    credential: CredentialKind,
    faults: CallbackFaults,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Runtime {
    url: Option<String>,
    faults: CallbackFaults,
    retry_ms: u64,
    max_attempts: u32,
}

/// The callback side of the emulator's state.
pub(crate) struct Callbacks {
    session_secret: Option<SecretString>,
    archive_secret: Option<SecretString>,
    runtime: Mutex<Runtime>,
    log: Mutex<VecDeque<Delivery>>,
    queue: Mutex<Option<mpsc::UnboundedSender<Outgoing>>>,
}

impl Default for Callbacks {
    fn default() -> Self {
        Self::new(CallbackSettings::default())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Callbacks {
    pub(crate) fn new(settings: CallbackSettings) -> Self {
        Self {
            session_secret: settings.session_secret,
            archive_secret: settings.archive_secret,
            runtime: Mutex::new(Runtime {
                url: settings.url,
                faults: CallbackFaults::default(),
                retry_ms: 200,
                max_attempts: 5,
            }),
            log: Mutex::default(),
            queue: Mutex::default(),
        }
    }

    /// Starts the delivery worker (needs a Tokio runtime).
    pub(crate) fn start(shared: &Arc<Shared>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        *lock(&shared.callbacks.queue) = Some(sender);
        tokio::spawn(worker(Arc::downgrade(shared), receiver));
    }

    /// Queues a session-monitoring event for the session's owner, if a URL is configured.
    pub(crate) fn send(&self, shared: &Shared, event: Event) {
        let (session_id, name) = match &event {
            Event::ConnectionCreated { connection, .. } => {
                (connection.session_id.clone(), "connectionCreated")
            }
            Event::ConnectionDestroyed { connection, .. } => {
                (connection.session_id.clone(), "connectionDestroyed")
            }
            Event::StreamCreated { connection, .. } => {
                (connection.session_id.clone(), "streamCreated")
            }
            Event::StreamDestroyed { connection, .. } => {
                (connection.session_id.clone(), "streamDestroyed")
            }
            Event::SessionDestroyed { session_id, .. } => (session_id.clone(), "sessionDestroyed"),
        };
        let Some(session) = shared
            .sessions()
            .into_iter()
            .find(|s| s.session_id == session_id)
        else {
            return;
        };
        let mut body = payload(&event);
        if let Some(object) = body.as_object_mut() {
            object.insert("sessionId".into(), json!(session_id));
            object.insert("event".into(), json!(name));
            object.insert(owner_field(session.credential).into(), json!(session.owner));
        }
        self.queue(Outgoing {
            kind: Kind::Session,
            event: name.to_owned(),
            session_id,
            body: serde_json::to_vec(&body).unwrap_or_default(),
            owner: session.owner,
            credential: session.credential,
            faults: CallbackFaults::default(),
        });
    }

    /// Queues an archive-status callback (the archive's wire JSON).
    pub(crate) fn send_archive(
        &self,
        wire: Value,
        session_id: String,
        owner: String,
        credential: CredentialKind,
    ) {
        let status = wire
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        self.queue(Outgoing {
            kind: Kind::Archive,
            event: format!("archive:{status}"),
            session_id,
            body: serde_json::to_vec(&wire).unwrap_or_default(),
            owner,
            credential,
            faults: CallbackFaults::default(),
        });
    }

    fn queue(&self, mut outgoing: Outgoing) {
        let faults = {
            let runtime = lock(&self.runtime);
            if runtime.url.is_none() {
                return;
            }
            runtime.faults.clone()
        };
        if faults.drop {
            return;
        }
        outgoing.faults = faults;
        if let Some(queue) = lock(&self.queue).as_ref() {
            // Fails only when the worker is gone (emulator shutting down).
            let _ = queue.send(outgoing);
        }
    }

    fn secret(&self, kind: Kind) -> Option<&SecretString> {
        match kind {
            Kind::Session => self.session_secret.as_ref(),
            Kind::Archive => self.archive_secret.as_ref(),
        }
    }

    fn record(&self, delivery: Delivery) {
        let mut log = lock(&self.log);
        if log.len() >= MAX_LOG {
            log.pop_front();
        }
        log.push_back(delivery);
    }

    /// Clears the log and the faults.
    pub(crate) fn clear(&self) {
        lock(&self.log).clear();
        lock(&self.runtime).faults = CallbackFaults::default();
    }
}

fn owner_field(credential: CredentialKind) -> &'static str {
    match credential {
        CredentialKind::Legacy => "projectId",
        CredentialKind::Application => "applicationId",
    }
}

fn connection_json(connection: &Connection) -> Value {
    json!({
        "id": connection.connection_id,
        "createdAt": connection.created_at,
        "data": connection.data.clone().unwrap_or_default(),
    })
}

fn stream_json(stream: &Stream, connection: &Connection) -> Value {
    json!({
        "id": stream.stream_id,
        "connection": connection_json(connection),
        "createdAt": stream.created_at,
        "name": stream.name,
        "videoType": stream.video_type,
    })
}

/// The event's own fields (the caller adds `sessionId`, `event` and the owner).
fn payload(event: &Event) -> Value {
    match event {
        Event::ConnectionCreated {
            connection,
            timestamp,
        } => json!({"timestamp": timestamp, "connection": connection_json(connection)}),
        Event::ConnectionDestroyed {
            connection,
            reason,
            timestamp,
        } => json!({"timestamp": timestamp, "reason": reason,
                    "connection": connection_json(connection)}),
        Event::StreamCreated {
            stream,
            connection,
            timestamp,
        } => json!({"timestamp": timestamp, "stream": stream_json(stream, connection)}),
        Event::StreamDestroyed {
            stream,
            connection,
            reason,
            timestamp,
        } => json!({"timestamp": timestamp, "reason": reason,
                    "stream": stream_json(stream, connection)}),
        Event::SessionDestroyed {
            reason, timestamp, ..
        } => json!({"timestamp": timestamp, "reason": reason}),
    }
}

/// The secure-callback JWT for `body`.
fn sign(secret: &SecretString, body: &[u8], owner: &str, credential: CredentialKind) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body);
    let claims = json!({
        "iat": now_ms() / 1000,
        "jti": uuid::Uuid::new_v4().to_string(),
        "iss": "Vonage",
        "payload_hash": hex(digest.as_ref()),
        "api_key": owner,
        "application_id": match credential {
            CredentialKind::Application => owner,
            CredentialKind::Legacy => "",
        },
    });
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.expose_secret().as_bytes()),
    )
    .unwrap_or_default()
}

async fn worker(shared: std::sync::Weak<Shared>, mut receiver: mpsc::UnboundedReceiver<Outgoing>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    let mut held: Option<Outgoing> = None;
    loop {
        let next = if held.is_some() {
            match tokio::time::timeout(REORDER_HOLD, receiver.recv()).await {
                Ok(next) => next,
                Err(_) => {
                    if let (Some(outgoing), Some(shared)) = (held.take(), shared.upgrade()) {
                        deliver(&shared, &client, &outgoing).await;
                    }
                    continue;
                }
            }
        } else {
            receiver.recv().await
        };
        let Some(outgoing) = next else { break };
        let Some(shared) = shared.upgrade() else {
            break;
        };
        if outgoing.faults.delay_ms > 0 {
            let client = client.clone();
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(outgoing.faults.delay_ms)).await;
                deliver(&shared, &client, &outgoing).await;
            });
            continue;
        }
        if outgoing.faults.reorder && held.is_none() {
            held = Some(outgoing);
            continue;
        }
        deliver(&shared, &client, &outgoing).await;
        if let Some(previous) = held.take() {
            deliver(&shared, &client, &previous).await;
        }
    }
}

async fn deliver(shared: &Shared, client: &reqwest::Client, outgoing: &Outgoing) {
    let copies = if outgoing.faults.duplicate { 2 } else { 1 };
    for _ in 0..copies {
        deliver_once(shared, client, outgoing).await;
    }
}

/// One delivery with Vonage-like retries.
async fn deliver_once(shared: &Shared, client: &reqwest::Client, outgoing: &Outgoing) {
    let (url, retry_ms, max_attempts) = {
        let runtime = lock(&shared.callbacks.runtime);
        (runtime.url.clone(), runtime.retry_ms, runtime.max_attempts)
    };
    let Some(url) = url else { return };
    let mut backoff = Duration::from_millis(retry_ms);
    for attempt in 1..=max_attempts.max(1) {
        let secret = shared.callbacks.secret(outgoing.kind);
        let unsigned = attempt == 1 && outgoing.faults.unsigned;
        let mut request = client
            .post(&url)
            .header("content-type", "application/json")
            .body(outgoing.body.clone());
        let signed = match secret {
            Some(secret) if !unsigned => {
                let jwt = sign(secret, &outgoing.body, &outgoing.owner, outgoing.credential);
                request = request.bearer_auth(jwt);
                true
            }
            _ => false,
        };
        let status = match request.send().await {
            Ok(response) => response.status().as_u16(),
            Err(_) => 0,
        };
        shared.callbacks.record(Delivery {
            kind: outgoing.kind,
            event: outgoing.event.clone(),
            session_id: outgoing.session_id.clone(),
            attempt,
            signed,
            status,
            at: now_ms(),
        });
        if status != 0 && status < 500 {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(15 * 60));
    }
}

/// Sends an archive-status callback for every archive whose status differs from `before`.
pub(crate) fn archive_changes(shared: &Shared, before: &[(String, &'static str)]) {
    let changed: Vec<(Value, String, String, CredentialKind)> = shared.archives(|archives, _| {
        archives
            .all()
            .iter()
            .filter(|archive| {
                !before
                    .iter()
                    .any(|(id, status)| *id == archive.id && *status == archive.status.as_str())
            })
            .map(|archive| {
                (
                    archive.to_wire("http://emulator"),
                    archive.session_id.clone(),
                    archive.owner.clone(),
                    archive.credential,
                )
            })
            .collect()
    });
    for (wire, session_id, owner, credential) in changed {
        shared
            .callbacks
            .send_archive(wire, session_id, owner, credential);
    }
}

/// Every archive's ID and status, to diff after a change.
pub(crate) fn archive_statuses(shared: &Shared) -> Vec<(String, &'static str)> {
    shared.archives(|archives, _| {
        archives
            .all()
            .iter()
            .map(|a| (a.id.clone(), a.status.as_str()))
            .collect()
    })
}

type SharedState = State<Arc<Shared>>;

/// The callback control routes.
pub(crate) fn control_routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/_emulator/callbacks",
            get(get_callbacks).put(put_callbacks).delete(clear),
        )
        .route("/_emulator/sessions/{session_id}/rotate", post(rotate))
}

async fn get_callbacks(State(shared): SharedState) -> Response<Body> {
    let runtime = lock(&shared.callbacks.runtime).clone();
    let deliveries: Vec<Delivery> = lock(&shared.callbacks.log).iter().cloned().collect();
    reply::json(
        StatusCode::OK,
        &json!({
            "url": runtime.url,
            "faults": runtime.faults,
            "retryMs": runtime.retry_ms,
            "maxAttempts": runtime.max_attempts,
            "signed": {
                "session": shared.callbacks.session_secret.is_some(),
                "archive": shared.callbacks.archive_secret.is_some(),
            },
            "deliveries": deliveries,
        }),
    )
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Update {
    url: Option<String>,
    faults: Option<CallbackFaults>,
    retry_ms: Option<u64>,
    max_attempts: Option<u32>,
}

async fn put_callbacks(State(shared): SharedState, body: Bytes) -> Response<Body> {
    let update = match serde_json::from_slice::<Update>(&body) {
        Ok(update) => update,
        Err(error) => {
            return reply::error(
                StatusCode::BAD_REQUEST,
                &format!("Invalid callbacks: {error}"),
            );
        }
    };
    if let Some(url) = &update.url
        && url::Url::parse(url).is_err()
    {
        return reply::error(StatusCode::BAD_REQUEST, "Invalid callbacks: url");
    }
    {
        let mut runtime = lock(&shared.callbacks.runtime);
        if let Some(url) = update.url {
            runtime.url = Some(url);
        }
        if let Some(faults) = update.faults {
            runtime.faults = faults;
        }
        if let Some(retry_ms) = update.retry_ms {
            runtime.retry_ms = retry_ms.min(60_000);
        }
        if let Some(max_attempts) = update.max_attempts {
            runtime.max_attempts = max_attempts.clamp(1, 100);
        }
    }
    get_callbacks(State(shared)).await
}

async fn clear(State(shared): SharedState) -> StatusCode {
    shared.callbacks.clear();
    StatusCode::NO_CONTENT
}

async fn rotate(
    State(shared): SharedState,
    session_id: Result<Path<String>, PathRejection>,
) -> Response<Body> {
    let session_id = match super::connections::known_session(&shared, session_id) {
        Ok(session_id) => session_id,
        Err(refused) => return *refused,
    };
    let before = archive_statuses(&shared);
    let now = now_ms();
    let stopped: Vec<String> = shared.archives(|archives, _| {
        let active: Vec<(String, String)> = archives
            .all()
            .iter()
            .filter(|a| a.session_id == session_id && a.status.is_active())
            .map(|a| (a.owner.clone(), a.id.clone()))
            .collect();
        active
            .into_iter()
            .filter_map(|(owner, id)| archives.stop(&owner, &id, now).ok().map(|a| a.id.clone()))
            .collect()
    });
    shared.callbacks.send(
        &shared,
        Event::SessionDestroyed {
            session_id: session_id.clone(),
            reason: "serverRotation",
            timestamp: now,
        },
    );
    archive_changes(&shared, &before);
    reply::json(
        StatusCode::OK,
        &json!({"sessionId": session_id, "stoppedArchives": stopped}),
    )
}
