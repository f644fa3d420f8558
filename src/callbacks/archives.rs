//! What verified archive-status callbacks teach (docs/callbacks.md, "Archive state"): the last
//! state of each archive, kept for `rooms.ttl_seconds`, so `GET /archives/{archiveId}` can
//! answer without a Vonage call, and the restart of archives a `serverRotation` stopped.
//!
//! Callbacks arrive late, twice and out of order, so a state replaces the one held only if it
//! is later: first by the status's stage (`started`/`paused` < `stopped` < `uploaded`/
//! `available`/`failed` < `expired` < `deleted`; an archive never goes back a stage), then, in
//! the same stage, by the archive's `updatedAt` (epoch ms; `createdAt` when absent).
//!
//! In Redis each state is stored twice, by archive (`<prefix>:archive:{<archiveId>}`, for reads)
//! and in its session's hash (`<prefix>:archives:{<sessionId>}`, for the rotation), each with the
//! same compare-and-set script on one key, so both converge whatever the order of writes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::Script;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::event::{ArchiveEvent, Callback, SessionEventKind};
use super::replay::ReplayStore;
use super::{Applied, CallbackSink};
use crate::redis_conn::RedisConnection;
use crate::rooms::redis_store::bounded;
use crate::rooms::store::StoreError;
use crate::video::VideoClient;
use crate::video::archives::{ArchiveError, StartArchive};

/// A `stopped` or `available` state is answered from callbacks for this long after it arrived
/// (a later state may have been lost; an `available` archive's download URL is valid for about
/// ten minutes); after it, Vonage is asked again.
pub(crate) const FRESH_FOR: Duration = Duration::from_secs(300);
/// Most archives the memory store holds; beyond it new archives are not remembered (their reads
/// go to Vonage).
const MEMORY_CAPACITY: usize = 100_000;
/// A `stopped` archive whose `updatedAt` is this close to a rotation's timestamp counts as
/// stopped by the rotation (Vonage may deliver the archive's callback before the session's).
pub(crate) const ROTATION_WINDOW_MS: u64 = 10_000;
/// Attempts to restart one archive after a rotation, a doubling backoff from one second apart.
const RESTART_ATTEMPTS: u32 = 5;

/// The last verified state of one archive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ArchiveState {
    /// The archive's JSON as the callback carried it.
    pub(crate) archive: Value,
    /// When the callback arrived, epoch ms.
    pub(crate) received_at: u64,
}

fn field<'a>(archive: &'a Value, name: &str) -> Option<&'a str> {
    archive.get(name).and_then(Value::as_str)
}

impl ArchiveState {
    /// The archive's status.
    pub(crate) fn status(&self) -> &str {
        field(&self.archive, "status").unwrap_or_default()
    }

    /// The archive's ID.
    pub(crate) fn id(&self) -> &str {
        field(&self.archive, "id").unwrap_or_default()
    }

    /// `updatedAt` (else `createdAt`), epoch ms.
    pub(crate) fn updated_at(&self) -> u64 {
        ["updatedAt", "createdAt"]
            .iter()
            .find_map(|name| self.archive.get(*name).and_then(Value::as_u64))
            .unwrap_or(0)
    }

    /// The order of states: stage, then `updatedAt`.
    pub(crate) fn order(&self) -> u64 {
        let stage = match self.status() {
            "stopped" => 1,
            "uploaded" | "available" | "failed" => 2,
            "expired" => 3,
            "deleted" => 4,
            _ => 0,
        };
        stage * 10_000_000_000_000 + self.updated_at().min(9_999_999_999_999)
    }

    /// Still recording (`started` or `paused`).
    pub(crate) fn is_recording(&self) -> bool {
        matches!(self.status(), "started" | "paused")
    }

    /// Whether `GET /archives/{archiveId}` may answer from this state at `now_ms`: final
    /// states always, `stopped`/`available` while fresh, a recording archive never (its
    /// duration grows).
    pub(crate) fn answers_reads(&self, now_ms: u64) -> bool {
        match self.status() {
            "uploaded" | "failed" | "expired" | "deleted" => true,
            "stopped" | "available" => {
                now_ms.saturating_sub(self.received_at) < FRESH_FOR.as_millis() as u64
            }
            _ => false,
        }
    }

    /// The start request that records the same way (the archive JSON carries no layout, so a
    /// composed restart gets Vonage's default layout).
    pub(crate) fn restart_request(&self) -> StartArchive {
        let text = |name: &str| field(&self.archive, name).map(str::to_owned);
        let flag = |name: &str| self.archive.get(name).and_then(Value::as_bool);
        let individual = text("outputMode").as_deref() == Some("individual");
        StartArchive {
            session_id: text("sessionId").unwrap_or_default(),
            name: text("name").filter(|n| !n.is_empty()),
            has_audio: flag("hasAudio"),
            has_video: flag("hasVideo"),
            output_mode: text("outputMode"),
            resolution: text("resolution").filter(|_| !individual),
            stream_mode: text("streamMode"),
            layout: None,
            multi_archive_tag: text("multiArchiveTag").filter(|t| !t.is_empty()),
        }
    }
}

/// Where archive states live.
#[async_trait::async_trait]
pub(crate) trait ArchiveStore: Send + Sync + std::fmt::Debug {
    /// Stores `state` for `ttl` if it is later than the one held; true if it was.
    async fn record(&self, state: &ArchiveState, ttl: Duration) -> Result<bool, StoreError>;

    /// The state of an archive, if known.
    async fn get(&self, archive_id: &str) -> Result<Option<ArchiveState>, StoreError>;

    /// The states of a session's archives.
    async fn of_session(&self, session_id: &str) -> Result<Vec<ArchiveState>, StoreError>;
}

/// One replica's archive states.
#[derive(Debug, Default)]
pub(crate) struct MemoryArchiveStore {
    states: Mutex<HashMap<String, (ArchiveState, Instant)>>,
}

impl MemoryArchiveStore {
    /// An empty store.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (ArchiveState, Instant)>> {
        self.states
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl ArchiveStore for MemoryArchiveStore {
    async fn record(&self, state: &ArchiveState, ttl: Duration) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut states = self.lock();
        if let Some((held, expires)) = states.get(state.id())
            && *expires > now
            && held.order() >= state.order()
        {
            return Ok(false);
        }
        if states.len() >= MEMORY_CAPACITY && !states.contains_key(state.id()) {
            states.retain(|_, (_, expires)| *expires > now);
            if states.len() >= MEMORY_CAPACITY {
                return Ok(false);
            }
        }
        states.insert(state.id().to_owned(), (state.clone(), now + ttl));
        Ok(true)
    }

    async fn get(&self, archive_id: &str) -> Result<Option<ArchiveState>, StoreError> {
        let now = Instant::now();
        Ok(self
            .lock()
            .get(archive_id)
            .filter(|(_, expires)| *expires > now)
            .map(|(state, _)| state.clone()))
    }

    async fn of_session(&self, session_id: &str) -> Result<Vec<ArchiveState>, StoreError> {
        let now = Instant::now();
        Ok(self
            .lock()
            .values()
            .filter(|(state, expires)| {
                *expires > now && field(&state.archive, "sessionId") == Some(session_id)
            })
            .map(|(state, _)| state.clone())
            .collect())
    }
}

/// `KEYS[1]` a hash; `ARGV`: field, order, JSON, TTL ms. Sets `field` to `order|JSON` unless it
/// holds an order at least as late; refreshes the hash's TTL either way. 1 if set.
const RECORD: &str = r"
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held then
  local order = tonumber(string.match(held, '^(%d+)|'))
  if order and order >= tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '|' .. ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
";

/// Archive states in the shared Redis.
pub(crate) struct RedisArchiveStore {
    connection: RedisConnection,
    prefix: String,
    timeout: Duration,
    record: Script,
}

impl std::fmt::Debug for RedisArchiveStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisArchiveStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisArchiveStore {
    /// Uses the shared connection; every call is bounded by `timeout`.
    pub(crate) fn with_connection(
        connection: RedisConnection,
        prefix: &str,
        timeout: Duration,
    ) -> Self {
        Self {
            connection,
            prefix: prefix.to_owned(),
            timeout,
            record: Script::new(RECORD),
        }
    }

    fn archive_key(&self, archive_id: &str) -> String {
        format!("{}:archive:{{{archive_id}}}", self.prefix)
    }

    fn session_key(&self, session_id: &str) -> String {
        format!("{}:archives:{{{session_id}}}", self.prefix)
    }
}

fn decode(held: &str) -> Result<ArchiveState, StoreError> {
    held.split_once('|')
        .and_then(|(_, json)| serde_json::from_str(json).ok())
        .ok_or_else(|| StoreError("an archive state in Redis is unreadable".into()))
}

#[async_trait::async_trait]
impl ArchiveStore for RedisArchiveStore {
    async fn record(&self, state: &ArchiveState, ttl: Duration) -> Result<bool, StoreError> {
        let json = serde_json::to_string(state).map_err(|e| StoreError(e.to_string()))?;
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let session_id = field(&state.archive, "sessionId").unwrap_or_default();
        let mut applied = false;
        for (key, name) in [
            (self.archive_key(state.id()), "state"),
            (self.session_key(session_id), state.id()),
        ] {
            let mut connection = self.connection.clone();
            let mut invocation = self.record.key(key);
            invocation
                .arg(name)
                .arg(state.order())
                .arg(&json)
                .arg(millis);
            let set: i64 = bounded(self.timeout, invocation.invoke_async(&mut connection)).await?;
            applied |= set == 1;
        }
        Ok(applied)
    }

    async fn get(&self, archive_id: &str) -> Result<Option<ArchiveState>, StoreError> {
        let mut connection = self.connection.clone();
        let held: Option<String> = bounded(
            self.timeout,
            redis::cmd("HGET")
                .arg(self.archive_key(archive_id))
                .arg("state")
                .query_async(&mut connection),
        )
        .await?;
        held.as_deref().map(decode).transpose()
    }

    async fn of_session(&self, session_id: &str) -> Result<Vec<ArchiveState>, StoreError> {
        let mut connection = self.connection.clone();
        let all: HashMap<String, String> = bounded(
            self.timeout,
            redis::cmd("HGETALL")
                .arg(self.session_key(session_id))
                .query_async(&mut connection),
        )
        .await?;
        all.values().map(|held| decode(held)).collect()
    }
}

/// The archive states and how long they are kept. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct ArchiveStates {
    store: Arc<dyn ArchiveStore>,
    ttl: Duration,
}

impl ArchiveStates {
    /// States in `store`, kept for `ttl` after their last update.
    pub(crate) fn new(store: Arc<dyn ArchiveStore>, ttl: Duration) -> Self {
        Self { store, ttl }
    }

    /// Records a verified archive-status callback that arrived at `received_at`.
    pub(crate) async fn record(
        &self,
        event: &ArchiveEvent,
        received_at: u64,
    ) -> Result<bool, StoreError> {
        let mut archive = event.archive.clone();
        if let Some(object) = archive.as_object_mut() {
            // Canonical fields, whatever the payload spelled.
            object.insert("id".into(), Value::String(event.id.clone()));
            object.insert("status".into(), Value::String(event.status.clone()));
            object.insert("sessionId".into(), Value::String(event.session_id.clone()));
        }
        let state = ArchiveState {
            archive,
            received_at,
        };
        self.store.record(&state, self.ttl).await
    }

    /// The state `GET /archives/{archiveId}` may answer with at `now_ms` (see
    /// [`ArchiveState::answers_reads`]); `None` means ask Vonage.
    pub(crate) async fn answerable(
        &self,
        archive_id: &str,
        now_ms: u64,
    ) -> Result<Option<ArchiveState>, StoreError> {
        Ok(self
            .store
            .get(archive_id)
            .await?
            .filter(|state| state.answers_reads(now_ms)))
    }

    /// The session's archives a rotation at `timestamp` (epoch ms) stopped: still recording
    /// as far as we know, or stopped within [`ROTATION_WINDOW_MS`] of it.
    async fn stopped_by_rotation(
        &self,
        session_id: &str,
        timestamp: u64,
    ) -> Result<Vec<ArchiveState>, StoreError> {
        let mut states = self.store.of_session(session_id).await?;
        states.retain(|state| {
            state.is_recording()
                || (state.status() == "stopped"
                    && state.updated_at().abs_diff(timestamp) <= ROTATION_WINDOW_MS)
        });
        Ok(states)
    }
}

/// The sink the receiver calls: it keeps archive states, restarts archives stopped by a
/// `serverRotation`, and passes every callback on to `inner` (the room lifecycle).
#[derive(Debug)]
pub(crate) struct ArchiveAwareSink {
    inner: Arc<dyn CallbackSink>,
    archives: ArchiveStates,
    video: VideoClient,
    claims: Arc<dyn ReplayStore>,
    claim_ttl: Duration,
}

impl ArchiveAwareSink {
    /// Wraps `inner`; restarts go through `video`, each claimed once in `claims` for
    /// `claim_ttl` (so duplicated rotations, and replicas, restart an archive once).
    pub(crate) fn new(
        inner: Arc<dyn CallbackSink>,
        archives: ArchiveStates,
        video: VideoClient,
        claims: Arc<dyn ReplayStore>,
        claim_ttl: Duration,
    ) -> Self {
        Self {
            inner,
            archives,
            video,
            claims,
            claim_ttl,
        }
    }

    async fn restart_after_rotation(
        &self,
        session_id: &str,
        timestamp: u64,
    ) -> Result<bool, StoreError> {
        let mut restarted = false;
        for state in self
            .archives
            .stopped_by_rotation(session_id, timestamp)
            .await?
        {
            if !self
                .claims
                .claim("restart", state.id(), self.claim_ttl)
                .await?
            {
                continue;
            }
            restarted = true;
            let video = self.video.clone();
            let request = state.restart_request();
            let previous = state.id().to_owned();
            tokio::spawn(async move { restart(video, request, previous).await });
        }
        Ok(restarted)
    }
}

/// Starts the archive again, retrying while Vonage has not let go of the old one (409) or
/// fails transiently.
async fn restart(video: VideoClient, request: StartArchive, previous: String) {
    let mut backoff = Duration::from_secs(1);
    for attempt in 1..=RESTART_ATTEMPTS {
        match video.start_archive(&request).await {
            Ok(archive) => {
                metrics::counter!("callback_archive_restarts_total", "outcome" => "restarted")
                    .increment(1);
                tracing::info!(
                    archive.previous = %previous,
                    archive.id = %archive.id,
                    session.id = %request.session_id,
                    "archive restarted after a serverRotation"
                );
                return;
            }
            Err(ArchiveError::NotFound | ArchiveError::SessionNotFound) => break,
            Err(error) => {
                tracing::debug!(attempt, error = %error, "archive restart failed; retrying");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff *= 2;
    }
    metrics::counter!("callback_archive_restarts_total", "outcome" => "failed").increment(1);
    tracing::warn!(
        archive.previous = %previous,
        session.id = %request.session_id,
        "an archive stopped by a serverRotation could not be restarted"
    );
}

#[async_trait::async_trait]
impl CallbackSink for ArchiveAwareSink {
    async fn apply(&self, callback: &Callback, received_at: u64) -> Result<Applied, StoreError> {
        let ours = match callback {
            Callback::Archive(event) => self.archives.record(event, received_at).await?,
            Callback::Session(event) => match &event.kind {
                SessionEventKind::SessionDestroyed { reason }
                    if reason.as_deref() == Some("serverRotation") =>
                {
                    self.restart_after_rotation(&event.session_id, event.timestamp)
                        .await?
                }
                _ => false,
            },
        };
        let inner = self.inner.apply(callback, received_at).await?;
        Ok(if ours || inner == Applied::Applied {
            Applied::Applied
        } else {
            Applied::Ignored
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn state(status: &str, updated_at: u64) -> ArchiveState {
        ArchiveState {
            archive: json!({"id": "a", "sessionId": "s", "status": status, "updatedAt": updated_at}),
            received_at: 1_000,
        }
    }

    #[tokio::test]
    async fn a_state_replaces_another_only_if_it_is_later() {
        let store = MemoryArchiveStore::new();
        let ttl = Duration::from_secs(60);
        assert!(store.record(&state("started", 10), ttl).await.unwrap());
        assert!(store.record(&state("stopped", 20), ttl).await.unwrap());
        assert!(
            !store.record(&state("started", 30), ttl).await.unwrap(),
            "never back a stage, even with a later updatedAt"
        );
        assert!(
            !store.record(&state("stopped", 20), ttl).await.unwrap(),
            "a duplicate"
        );
        assert!(store.record(&state("available", 15), ttl).await.unwrap());
        assert_eq!(store.get("a").await.unwrap().unwrap().status(), "available");
        assert_eq!(store.of_session("s").await.unwrap().len(), 1);
        assert!(store.of_session("t").await.unwrap().is_empty());
    }

    #[test]
    fn reads_are_answered_from_final_or_fresh_states_only() {
        let fresh = 1_000 + 1_000;
        let stale = 1_000 + FRESH_FOR.as_millis() as u64;
        assert!(!state("started", 1).answers_reads(fresh));
        assert!(!state("paused", 1).answers_reads(fresh));
        assert!(state("stopped", 1).answers_reads(fresh));
        assert!(!state("stopped", 1).answers_reads(stale));
        assert!(state("available", 1).answers_reads(fresh));
        assert!(!state("available", 1).answers_reads(stale));
        for status in ["uploaded", "failed", "expired", "deleted"] {
            assert!(state(status, 1).answers_reads(stale), "{status}");
        }
    }

    #[test]
    fn a_restart_records_the_same_way() {
        let state = ArchiveState {
            archive: json!({"id": "a", "sessionId": "s", "status": "started", "name": "n",
                "outputMode": "individual", "resolution": "1280x720", "hasAudio": true,
                "hasVideo": false, "streamMode": "manual", "multiArchiveTag": ""}),
            received_at: 0,
        };
        let request = state.restart_request();
        assert_eq!(request.session_id, "s");
        assert_eq!(request.name.as_deref(), Some("n"));
        assert_eq!(request.output_mode.as_deref(), Some("individual"));
        assert_eq!(request.resolution, None, "individual archives have none");
        assert_eq!(request.has_video, Some(false));
        assert_eq!(request.stream_mode.as_deref(), Some("manual"));
        assert_eq!(request.multi_archive_tag, None);
    }
}
