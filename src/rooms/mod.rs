//! Named rooms: race-free get-or-create of exactly one Vonage session per room, across replicas.
//!
//! # The protocol
//! 1. **Single flight in the process.** Concurrent joins of one room in one replica share one
//!    attempt (a `OnceCell` per room): only the first caller talks to the store; the others get
//!    its result, as joiners (`created: false`).
//! 2. **An atomic claim in the shared store.** The attempt runs `claim_or_join`: if the room is
//!    absent it stores `pending:<uuid>` with a short TTL (`rooms.claim_ms`) and we hold the claim;
//!    if it holds a claim we wait; if it holds a session we join it (refreshing `lastJoinedAt`
//!    and the sliding TTL `rooms.ttl_seconds`). In Redis this is one Lua script, so replicas
//!    agree: however many race, exactly one claims.
//! 3. **Only the claim holder calls Vonage**, then `complete`s: the claim is replaced by the
//!    session, but only if the claim is still ours.
//! 4. **Waiters poll** with a backoff from 10 ms to 200 ms and never create a session; after
//!    `rooms.join_wait_ms` they get a clear 503 `room_busy` (with `Retry-After`), never a hang.
//!
//! # Failure cases
//! - *Vonage fails or times out for the holder*: the holder releases its claim and answers the
//!   upstream error; the next joiner (or a waiter's next poll) claims and tries again.
//! - *The holder dies* (crash, kill, network split): its claim expires after `rooms.claim_ms`,
//!   then a joiner takes over. `claim_ms` exceeds `video.request_deadline_ms` (checked at start-up), so
//!   a live holder's claim cannot expire during its Vonage call.
//! - *The claim expired anyway* (a stalled process): `complete` finds another value and does
//!   not overwrite it; the late holder joins whatever the room holds now. Its own session is
//!   orphaned (logged); the room still maps to one session.
//! - *The store is unreachable or slow*: every store call is bounded by
//!   `rooms.store_timeout_ms` and answers 503 `store_unavailable`; `/readyz` reports it.
//!
//! - *The holder may not create* (no `video:create`, or its create budget is spent): it
//!   releases its claim and is refused (403/429); a waiter of the same flight does not share
//!   the refusal but takes over the flight on its own account.
//!
//! A pending claim reads as "no room" for `GET /rooms/{room}`.

pub(crate) mod memory;
pub(crate) mod redis_store;
pub mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::OnceCell;

use crate::auth::Refusal;
use crate::video::{SessionOptions, VideoClient, VideoError};
use store::{ClaimOutcome, RoomRecord, RoomStore, StoreError};

/// Why a join failed.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum RoomError {
    /// Another caller's claim did not turn into a session within `rooms.join_wait_ms`.
    #[error("the room is being created by another request; try again")]
    Busy,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Creating the session failed (shared between single-flight waiters).
    #[error("creating the room's session failed")]
    Upstream(VideoError),
    /// The room has no session and this caller may not create one (missing `video:create`, or
    /// its create budget is spent). Never shared: waiters then try on their own account.
    #[error(transparent)]
    Refused(Refusal),
}

/// Asked by the claim holder just before it would create the room's session: whether this
/// caller may create it (scope and create budget). Joining an existing room never asks.
/// Asynchronous, since a shared create budget is spent in Redis.
pub(crate) type MayCreate<'a> = dyn Fn() -> MayCreateFuture<'a> + Send + Sync + 'a;

/// The answer of a `MayCreate`.
pub(crate) type MayCreateFuture<'a> =
    std::pin::Pin<Box<dyn Future<Output = Result<(), Refusal>> + Send + 'a>>;

/// The result of a join.
#[derive(Debug, Clone)]
pub(crate) struct Joined {
    /// The room's session.
    pub(crate) record: RoomRecord,
    /// True for the one caller whose request created the session.
    pub(crate) created: bool,
}

/// Protocol timings (from `[rooms]`).
#[derive(Debug, Clone)]
pub(crate) struct RoomSettings {
    /// Sliding TTL of a room.
    pub(crate) ttl: Duration,
    /// Lifetime of a claim.
    pub(crate) claim_ttl: Duration,
    /// How long a joiner waits for another's claim.
    pub(crate) join_wait: Duration,
}

type Flight = Arc<OnceCell<Result<Joined, RoomError>>>;

/// Rooms: the store, the Vonage client, and the in-process single flights.
#[derive(Debug, Clone)]
pub(crate) struct Rooms {
    store: Arc<dyn RoomStore>,
    video: VideoClient,
    settings: RoomSettings,
    flights: Arc<Mutex<HashMap<String, Flight>>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Rooms {
    /// Rooms over `store`, creating sessions with `video`.
    pub(crate) fn new(
        store: Arc<dyn RoomStore>,
        video: VideoClient,
        settings: RoomSettings,
    ) -> Self {
        Self {
            store,
            video,
            settings,
            flights: Arc::default(),
        }
    }

    /// The store, for readiness checks.
    pub(crate) fn store(&self) -> &Arc<dyn RoomStore> {
        &self.store
    }

    /// Joins `room`, creating its session with `options` if it has none and `may_create` allows.
    pub(crate) async fn join(
        &self,
        room: &str,
        options: &SessionOptions,
        may_create: &MayCreate<'_>,
    ) -> Result<Joined, RoomError> {
        let flight = {
            let mut flights = self
                .flights
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            flights.entry(room.to_owned()).or_default().clone()
        };
        let mut led = false;
        // A refusal is the leader's own: it leaves the flight empty, so a waiter takes over and
        // asks for its own permission.
        let result = flight
            .get_or_try_init(|| {
                led = true;
                async {
                    match self.join_via_store(room, options, may_create).await {
                        Err(RoomError::Refused(refusal)) => Err(refusal),
                        other => Ok(other),
                    }
                }
            })
            .await
            .map_or_else(|refusal| Err(RoomError::Refused(refusal)), Clone::clone);
        {
            let mut flights = self
                .flights
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if flights
                .get(room)
                .is_some_and(|current| Arc::ptr_eq(current, &flight))
            {
                flights.remove(room);
            }
        }
        // Callers who shared another's attempt joined; they did not create.
        let result = result.map(|joined| Joined {
            created: joined.created && led,
            ..joined
        });
        let outcome = match &result {
            Ok(joined) if joined.created => "created",
            Ok(_) => "joined",
            Err(RoomError::Store(error)) => {
                metrics::counter!("room_store_errors_total").increment(1);
                tracing::error!(room, error = %error, "room store failed");
                "failed"
            }
            Err(_) => "failed",
        };
        metrics::counter!("room_joins_total", "outcome" => outcome).increment(1);
        result
    }

    async fn join_via_store(
        &self,
        room: &str,
        options: &SessionOptions,
        may_create: &MayCreate<'_>,
    ) -> Result<Joined, RoomError> {
        let claim = format!("{}{}", store::CLAIM_PREFIX, uuid::Uuid::new_v4());
        let deadline = Instant::now() + self.settings.join_wait;
        let mut backoff = Duration::from_millis(10);
        let mut contended = false;
        loop {
            let outcome = self
                .store
                .claim_or_join(
                    room,
                    &claim,
                    self.settings.claim_ttl,
                    now_ms(),
                    self.settings.ttl,
                )
                .await?;
            match outcome {
                ClaimOutcome::Existing(record) => {
                    return Ok(Joined {
                        record,
                        created: false,
                    });
                }
                ClaimOutcome::Claimed => {
                    if let Some(joined) = self
                        .create_as_holder(room, &claim, options, may_create)
                        .await?
                    {
                        return Ok(joined);
                    }
                }
                ClaimOutcome::Pending => {
                    if !contended {
                        contended = true;
                        metrics::counter!("room_claim_contention_total").increment(1);
                    }
                    if Instant::now() + backoff > deadline {
                        return Err(RoomError::Busy);
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(200));
                }
            }
        }
    }

    /// Creates the session as the claim holder. `None` means the claim was lost meanwhile and
    /// the caller should look at the room again.
    async fn create_as_holder(
        &self,
        room: &str,
        claim: &str,
        options: &SessionOptions,
        may_create: &MayCreate<'_>,
    ) -> Result<Option<Joined>, RoomError> {
        if let Err(refusal) = may_create().await {
            if let Err(release_error) = self.store.release(room, claim).await {
                tracing::warn!(room, error = %release_error, "could not release a room claim; it will expire");
            }
            return Err(RoomError::Refused(refusal));
        }
        let session_id = match self.video.create_session(options).await {
            Ok(session_id) => session_id,
            Err(error) => {
                if let Err(release_error) = self.store.release(room, claim).await {
                    tracing::warn!(room, error = %release_error, "could not release a room claim; it will expire");
                }
                return Err(RoomError::Upstream(error));
            }
        };
        let now = now_ms();
        let record = RoomRecord {
            session_id,
            created_at: now,
            last_joined_at: now,
        };
        if self
            .store
            .complete(room, claim, &record, self.settings.ttl)
            .await?
        {
            tracing::info!(room, vonage.session_id = %record.session_id, "room created");
            return Ok(Some(Joined {
                record,
                created: true,
            }));
        }
        tracing::warn!(room, vonage.session_id = %record.session_id, "room claim expired before completion; session orphaned");
        Ok(None)
    }

    /// The room's session, if it exists.
    pub(crate) async fn get(&self, room: &str) -> Result<Option<RoomRecord>, RoomError> {
        self.store
            .get(room)
            .await
            .map_err(|error| store_failed(room, error))
    }

    /// Forgets the room; the next join creates a new session.
    pub(crate) async fn delete(&self, room: &str) -> Result<(), RoomError> {
        self.store
            .delete(room)
            .await
            .map_err(|error| store_failed(room, error))
    }
}

/// A store failure outside a join, logged where it happens (the join logs its own).
fn store_failed(room: &str, error: StoreError) -> RoomError {
    tracing::error!(room, error = %error, "room store failed");
    RoomError::Store(error)
}

/// A valid room name: 1–128 of `A-Z a-z 0-9 . _ -`, starting alphanumeric. Case-sensitive.
pub(crate) fn is_valid_room_name(room: &str) -> bool {
    let bytes = room.as_bytes();
    (1..=128).contains(&bytes.len())
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_follow_the_rules() {
        for good in ["a", "Standup-2026.11_25", &"x".repeat(128), "9lives"] {
            assert!(is_valid_room_name(good), "{good}");
        }
        for bad in ["", "-a", ".a", "a b", "a/b", "é", &"x".repeat(129), "a%20b"] {
            assert!(!is_valid_room_name(bad), "{bad}");
        }
    }
}
