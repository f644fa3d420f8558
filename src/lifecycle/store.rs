//! What the room lifecycle keeps in the shared store (`docs/room-lifecycle.md` lists the keys):
//! the policy, presence (connections, streams, tombstones, seat holds), the session → room map,
//! the set of active rooms and a short per-room lock for the background task. Every write that
//! touches several keys of one room is atomic (one Lua script in Redis, one mutex in memory).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::policy::Policy;
use crate::rooms::store::StoreError;

/// A live connection as presence knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConnectionEntry {
    /// The caller's `sub` from the connection data the service bound (JWT auth); none for
    /// anonymous callers and for connections only reconciliation knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) sub: Option<String>,
    /// The caller's display name, from the same data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    /// When it connected, epoch ms.
    pub(crate) joined_at: u64,
    /// The timestamp of the event that wrote it (0: added by reconciliation).
    pub(crate) ts: u64,
    /// Known only from Vonage's connection list (no identity).
    #[serde(default)]
    pub(crate) unknown: bool,
}

/// A published stream as presence knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StreamEntry {
    /// The publishing connection.
    pub(crate) connection: String,
    /// `camera`, `screen`, `custom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) video_type: Option<String>,
    /// The publisher's name for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    /// The timestamp of the event that wrote it.
    pub(crate) ts: u64,
}

/// A presence change from a session-monitoring callback.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    /// `connectionCreated`.
    Connected {
        /// Connection ID.
        id: String,
        /// The entry.
        entry: ConnectionEntry,
    },
    /// `connectionDestroyed`.
    Disconnected {
        /// Connection ID.
        id: String,
    },
    /// `streamCreated`.
    Published {
        /// Stream ID.
        id: String,
        /// The entry.
        entry: StreamEntry,
    },
    /// `streamDestroyed`.
    Unpublished {
        /// Stream ID.
        id: String,
    },
}

/// A seat request (a token about to be issued).
#[derive(Debug, Clone)]
pub(crate) struct SeatRequest {
    /// Unique per token.
    pub(crate) hold_id: String,
    /// The caller's `sub` (empty: anonymous), which the connection's data will carry.
    pub(crate) sub: String,
    /// Most participants; none: unlimited (the hold is still placed).
    pub(crate) max: Option<u32>,
    /// Now, epoch ms.
    pub(crate) now: u64,
    /// When the hold lapses, epoch ms.
    pub(crate) hold_until: u64,
}

/// The answer to a seat request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seat {
    /// Held; the count including this seat.
    Held(u64),
    /// No seat left; the count.
    Full(u64),
}

/// The presence of one room.
#[derive(Debug, Clone, Default)]
pub(crate) struct PresenceView {
    /// Live connections by ID.
    pub(crate) connections: Vec<(String, ConnectionEntry)>,
    /// Streams by ID.
    pub(crate) streams: Vec<(String, StreamEntry)>,
    /// Live seat holds.
    pub(crate) holds: u64,
    /// Newest activity, epoch ms.
    pub(crate) last_active_at: Option<u64>,
    /// Since when nothing is connected and no seat is held, epoch ms.
    pub(crate) empty_since: Option<u64>,
    /// Whether callbacks or reconciliation ever told us about this room.
    pub(crate) tracked: bool,
    /// When the room was ended at `expiresAt` (disconnected), epoch ms.
    pub(crate) ended_at: Option<u64>,
    /// When it was last reconciled, epoch ms.
    pub(crate) reconciled_at: Option<u64>,
}

/// What reconciliation changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Reconciled {
    /// Entries Vonage no longer lists, dropped.
    pub(crate) dropped: u64,
    /// Connections Vonage lists that presence did not know, added without identity.
    pub(crate) added: u64,
}

/// Timings the store needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StoreTimings {
    /// Lifetime of presence keys and the session map, refreshed by every write.
    pub(crate) ttl: Duration,
    /// How long tombstones (destroyed connections and streams) are kept.
    pub(crate) tombstone_keep: Duration,
}

/// The lifecycle's shared state.
#[async_trait::async_trait]
pub(crate) trait LifecycleStore: Send + Sync + std::fmt::Debug {
    /// Stores `policy` for `room`. With `only_new`, only if the room has neither a policy nor a
    /// session yet. Answers the policy in force afterwards and whether `policy` was written.
    async fn put_policy(
        &self,
        room: &str,
        policy: &Policy,
        only_new: bool,
    ) -> Result<(Option<Policy>, bool), StoreError>;

    /// The room's policy.
    async fn policy(&self, room: &str) -> Result<Option<Policy>, StoreError>;

    /// Counts live connections plus live holds and, if below `max`, places a hold.
    async fn take_seat(&self, room: &str, request: &SeatRequest) -> Result<Seat, StoreError>;

    /// Maps `session_id` to `room` (refreshing the TTL) and marks the room active.
    async fn track(&self, room: &str, session_id: &str) -> Result<(), StoreError>;

    /// The room whose session `session_id` is.
    async fn room_of(&self, session_id: &str) -> Result<Option<String>, StoreError>;

    /// Applies a change stamped `ts` (Vonage's time), if newer than what was applied for that
    /// connection or stream; true if it changed state. `sub` releases that caller's hold.
    async fn apply(
        &self,
        room: &str,
        change: &Change,
        ts: u64,
        now: u64,
    ) -> Result<bool, StoreError>;

    /// The room's presence (expired holds dropped; empty-since settled at `now`).
    async fn presence(&self, room: &str, now: u64) -> Result<PresenceView, StoreError>;

    /// Reconciles with Vonage's list (`listed`: connection ID, createdAt) taken at `listed_at`.
    async fn reconcile(
        &self,
        room: &str,
        listed: &[(String, u64)],
        listed_at: u64,
        now: u64,
    ) -> Result<Reconciled, StoreError>;

    /// Records that the room was ended at `expiresAt`.
    async fn mark_ended(&self, room: &str, now: u64) -> Result<(), StoreError>;

    /// Retires the room if it still maps to `session_id`: removes the mapping, the session map
    /// and the presence (the policy stays). False if it maps to another session now.
    async fn retire(&self, room: &str, session_id: &str) -> Result<bool, StoreError>;

    /// Forgets everything about the room but its mapping (which the room store deletes).
    async fn forget(&self, room: &str, session_id: Option<&str>) -> Result<(), StoreError>;

    /// Rooms to look after.
    async fn active_rooms(&self) -> Result<Vec<String>, StoreError>;

    /// Stops looking after `room`.
    async fn deactivate(&self, room: &str) -> Result<(), StoreError>;

    /// Takes the room's short lock (one replica works on a room per tick).
    async fn try_lock(&self, room: &str, hold: Duration) -> Result<bool, StoreError>;
}
