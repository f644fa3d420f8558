//! The room store: one small trait over the shared state the get-or-create protocol needs, with
//! a memory implementation (one replica) and a Redis one (many replicas).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What a room maps to once its session exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RoomRecord {
    /// The room's Vonage session.
    pub(crate) session_id: String,
    /// When the session was created, epoch milliseconds.
    pub(crate) created_at: u64,
    /// When someone last joined, epoch milliseconds.
    pub(crate) last_joined_at: u64,
}

/// The answer to "claim this room, or tell me its session".
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ClaimOutcome {
    /// The room had no entry: the caller now holds the claim and must create the session.
    Claimed,
    /// Another caller holds a live claim: wait and ask again.
    Pending,
    /// The room exists; its `lastJoinedAt` and TTL were refreshed.
    Existing(RoomRecord),
}

/// The store could not answer (unreachable, timed out, or holds something unreadable).
#[derive(Debug, Clone, thiserror::Error)]
#[error("room store error: {0}")]
pub struct StoreError(pub(crate) String);

/// The operations of the protocol. Every write is atomic in the store itself, so that replicas
/// sharing the store agree. `claim` is a value unique to one attempt (`pending:<uuid>`).
#[async_trait::async_trait]
pub(crate) trait RoomStore: Send + Sync + std::fmt::Debug {
    /// If `room` is absent, stores `claim` for `claim_ttl` and answers `Claimed`; if it holds a
    /// claim, `Pending`; else sets `lastJoinedAt = now_ms`, refreshes the TTL to `ttl` and
    /// answers `Existing`.
    async fn claim_or_join(
        &self,
        room: &str,
        claim: &str,
        claim_ttl: Duration,
        now_ms: u64,
        ttl: Duration,
    ) -> Result<ClaimOutcome, StoreError>;

    /// Replaces `claim` by `record` (with `ttl`) if the claim is still held; false if it expired.
    async fn complete(
        &self,
        room: &str,
        claim: &str,
        record: &RoomRecord,
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    /// Removes `claim` if it is still held, so the next joiner takes over at once.
    async fn release(&self, room: &str, claim: &str) -> Result<(), StoreError>;

    /// The room's record, if its session exists (a pending claim reads as absent).
    async fn get(&self, room: &str) -> Result<Option<RoomRecord>, StoreError>;

    /// Forgets the room, whatever it holds.
    async fn delete(&self, room: &str) -> Result<(), StoreError>;

    /// Checks the store answers (for `/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Prefix of claim values; a record is JSON and never starts with it.
pub(crate) const CLAIM_PREFIX: &str = "pending:";
