//! The in-process lifecycle store: correct for one replica. The same rules as the Redis
//! scripts (`redis.rs`), under one mutex.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::policy::Policy;
use super::store::{
    Change, ConnectionEntry, LifecycleStore, PresenceView, Reconciled, Seat, SeatRequest,
    StoreTimings, StreamEntry,
};
use crate::rooms::store::{RoomStore, StoreError};

#[derive(Debug, Default)]
struct RoomState {
    policy: Option<Policy>,
    connections: BTreeMap<String, ConnectionEntry>,
    streams: BTreeMap<String, StreamEntry>,
    /// `c:<id>` / `s:<id>` → destroy timestamp; `h:<id>` → when the connection's hold was
    /// released.
    tombs: HashMap<String, u64>,
    /// (hold ID, sub, until)
    holds: Vec<(String, String, u64)>,
    last_active_at: Option<u64>,
    empty_since: Option<u64>,
    tracked: bool,
    ended_at: Option<u64>,
    reconciled_at: Option<u64>,
    active: bool,
    lock_until: u64,
}

impl RoomState {
    fn drop_expired_holds(&mut self, now: u64) {
        self.holds.retain(|(_, _, until)| *until > now);
    }

    fn settle_empty(&mut self, now: u64) {
        self.drop_expired_holds(now);
        if self.connections.is_empty() && self.holds.is_empty() {
            self.empty_since.get_or_insert(now);
        } else {
            self.empty_since = None;
        }
    }

    fn touch(&mut self, ts: u64) {
        self.tracked = true;
        self.active = true;
        if self.last_active_at.is_none_or(|last| ts > last) {
            self.last_active_at = Some(ts);
        }
    }

    /// Releases one hold of the connection's caller, once per connection.
    fn release_hold_of(&mut self, connection: &str, sub: &str, now: u64) {
        if self.tombs.contains_key(&format!("h:{connection}")) {
            return;
        }
        self.tombs.insert(format!("h:{connection}"), now);
        self.drop_expired_holds(now);
        let index = self
            .holds
            .iter()
            .position(|(_, s, _)| s == sub)
            .or_else(|| self.holds.iter().position(|(_, s, _)| s.is_empty()));
        if let Some(index) = index {
            self.holds.remove(index);
        }
    }

    fn prune_tombs(&mut self, now: u64, keep: u64) {
        if self.tombs.len() > 512 {
            self.tombs.retain(|_, at| now.saturating_sub(*at) < keep);
        }
    }

    fn apply(&mut self, change: &Change, ts: u64, now: u64, keep: u64) -> bool {
        let tomb = |state: &Self, key: String| state.tombs.get(&key).copied();
        let applied = match change {
            Change::Connected { id, entry } => {
                self.release_hold_of(id, entry.sub.as_deref().unwrap_or(""), now);
                if tomb(self, format!("c:{id}")).is_some_and(|t| t >= ts)
                    || self.connections.get(id).is_some_and(|old| old.ts >= ts)
                {
                    false
                } else {
                    self.connections.insert(id.clone(), entry.clone());
                    true
                }
            }
            Change::Disconnected { id } => {
                if tomb(self, format!("c:{id}")).is_some_and(|t| t >= ts) {
                    false
                } else {
                    self.tombs.insert(format!("c:{id}"), ts);
                    self.connections.remove(id);
                    self.streams.retain(|_, stream| stream.connection != *id);
                    true
                }
            }
            Change::Published { id, entry } => {
                let gone = tomb(self, format!("s:{id}")).is_some_and(|t| t >= ts)
                    || self.tombs.contains_key(&format!("c:{}", entry.connection));
                if gone || self.streams.get(id).is_some_and(|old| old.ts >= ts) {
                    false
                } else {
                    self.streams.insert(id.clone(), entry.clone());
                    true
                }
            }
            Change::Unpublished { id } => {
                if tomb(self, format!("s:{id}")).is_some_and(|t| t >= ts) {
                    false
                } else {
                    self.tombs.insert(format!("s:{id}"), ts);
                    self.streams.remove(id);
                    true
                }
            }
        };
        self.prune_tombs(now, keep);
        self.touch(ts);
        self.settle_empty(now);
        applied
    }

    fn reconcile(&mut self, listed: &[(String, u64)], listed_at: u64, now: u64) -> Reconciled {
        /// A connection newer than the list by this much may be missing from it legitimately.
        const GRACE_MS: u64 = 5_000;
        let listed_ids: HashMap<&str, u64> =
            listed.iter().map(|(id, at)| (id.as_str(), *at)).collect();
        let mut result = Reconciled::default();
        let stale: Vec<String> = self
            .connections
            .iter()
            .filter(|(id, entry)| {
                !listed_ids.contains_key(id.as_str())
                    && (entry.unknown || entry.joined_at.saturating_add(GRACE_MS) < listed_at)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            self.connections.remove(&id);
            self.streams.retain(|_, stream| stream.connection != id);
            self.tombs.insert(format!("c:{id}"), listed_at);
            result.dropped += 1;
        }
        for (id, created_at) in listed {
            if !self.connections.contains_key(id) && !self.tombs.contains_key(&format!("c:{id}")) {
                self.connections.insert(
                    id.clone(),
                    ConnectionEntry {
                        sub: None,
                        name: None,
                        joined_at: *created_at,
                        ts: 0,
                        unknown: true,
                    },
                );
                result.added += 1;
            }
        }
        self.tracked = true;
        self.reconciled_at = Some(now);
        self.settle_empty(now);
        result
    }

    fn view(&self) -> PresenceView {
        PresenceView {
            connections: self
                .connections
                .iter()
                .map(|(id, entry)| (id.clone(), entry.clone()))
                .collect(),
            streams: self
                .streams
                .iter()
                .map(|(id, entry)| (id.clone(), entry.clone()))
                .collect(),
            holds: self.holds.len() as u64,
            last_active_at: self.last_active_at,
            empty_since: self.empty_since,
            tracked: self.tracked,
            ended_at: self.ended_at,
            reconciled_at: self.reconciled_at,
        }
    }

    fn clear_presence(&mut self) {
        let policy = self.policy.take();
        *self = Self {
            policy,
            ..Self::default()
        };
    }
}

#[derive(Debug, Default)]
struct Inner {
    rooms: HashMap<String, RoomState>,
    sessions: HashMap<String, String>,
}

/// The lifecycle state in a mutex-guarded map, beside the memory room store.
#[derive(Debug)]
pub(crate) struct MemoryLifecycleStore {
    inner: Mutex<Inner>,
    rooms: Arc<dyn RoomStore>,
    timings: StoreTimings,
}

impl MemoryLifecycleStore {
    /// Lifecycle state for the rooms of `rooms`.
    pub(crate) fn new(rooms: Arc<dyn RoomStore>, timings: StoreTimings) -> Self {
        Self {
            inner: Mutex::default(),
            rooms,
            timings,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> Result<T, StoreError> {
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| StoreError("memory store poisoned".into()))?;
        Ok(f(&mut inner))
    }

    fn keep_ms(&self) -> u64 {
        u64::try_from(self.timings.tombstone_keep.as_millis()).unwrap_or(u64::MAX)
    }
}

#[async_trait::async_trait]
impl LifecycleStore for MemoryLifecycleStore {
    async fn put_policy(
        &self,
        room: &str,
        policy: &Policy,
        only_new: bool,
    ) -> Result<(Option<Policy>, bool), StoreError> {
        let has_session = if only_new {
            self.rooms.get(room).await?.is_some()
        } else {
            false
        };
        self.with(|inner| {
            let state = inner.rooms.entry(room.to_owned()).or_default();
            if only_new && (has_session || state.policy.is_some()) {
                return (state.policy.clone(), false);
            }
            state.policy = Some(policy.clone());
            (state.policy.clone(), true)
        })
    }

    async fn policy(&self, room: &str) -> Result<Option<Policy>, StoreError> {
        self.with(|inner| inner.rooms.get(room).and_then(|state| state.policy.clone()))
    }

    async fn take_seat(&self, room: &str, request: &SeatRequest) -> Result<Seat, StoreError> {
        self.with(|inner| {
            let state = inner.rooms.entry(room.to_owned()).or_default();
            state.drop_expired_holds(request.now);
            let count = (state.connections.len() + state.holds.len()) as u64;
            if request.max.is_some_and(|max| count >= u64::from(max)) {
                return Seat::Full(count);
            }
            state.holds.push((
                request.hold_id.clone(),
                request.sub.clone(),
                request.hold_until,
            ));
            state.empty_since = None;
            state.active = true;
            if state.last_active_at.is_none_or(|last| request.now > last) {
                state.last_active_at = Some(request.now);
            }
            Seat::Held(count + 1)
        })
    }

    async fn track(&self, room: &str, session_id: &str) -> Result<(), StoreError> {
        self.with(|inner| {
            inner
                .sessions
                .insert(session_id.to_owned(), room.to_owned());
            inner.rooms.entry(room.to_owned()).or_default().active = true;
        })
    }

    async fn room_of(&self, session_id: &str) -> Result<Option<String>, StoreError> {
        self.with(|inner| inner.sessions.get(session_id).cloned())
    }

    async fn apply(
        &self,
        room: &str,
        change: &Change,
        ts: u64,
        now: u64,
    ) -> Result<bool, StoreError> {
        let keep = self.keep_ms();
        self.with(|inner| {
            inner
                .rooms
                .entry(room.to_owned())
                .or_default()
                .apply(change, ts, now, keep)
        })
    }

    async fn presence(&self, room: &str, now: u64) -> Result<PresenceView, StoreError> {
        self.with(|inner| match inner.rooms.get_mut(room) {
            Some(state) => {
                state.settle_empty(now);
                state.view()
            }
            None => PresenceView::default(),
        })
    }

    async fn reconcile(
        &self,
        room: &str,
        listed: &[(String, u64)],
        listed_at: u64,
        now: u64,
    ) -> Result<Reconciled, StoreError> {
        self.with(|inner| {
            inner
                .rooms
                .entry(room.to_owned())
                .or_default()
                .reconcile(listed, listed_at, now)
        })
    }

    async fn mark_ended(&self, room: &str, now: u64) -> Result<(), StoreError> {
        self.with(|inner| {
            inner.rooms.entry(room.to_owned()).or_default().ended_at = Some(now);
        })
    }

    async fn retire(&self, room: &str, session_id: &str) -> Result<bool, StoreError> {
        match self.rooms.get(room).await? {
            Some(record) if record.session_id != session_id => return Ok(false),
            Some(_) => self.rooms.delete(room).await?,
            None => {}
        }
        self.with(|inner| {
            inner.sessions.remove(session_id);
            if let Some(state) = inner.rooms.get_mut(room) {
                state.clear_presence();
                if state.policy.is_none() {
                    inner.rooms.remove(room);
                }
            }
            true
        })
    }

    async fn forget(&self, room: &str, session_id: Option<&str>) -> Result<(), StoreError> {
        self.with(|inner| {
            if let Some(session_id) = session_id {
                inner.sessions.remove(session_id);
            }
            inner.rooms.remove(room);
        })
    }

    async fn active_rooms(&self) -> Result<Vec<String>, StoreError> {
        self.with(|inner| {
            inner
                .rooms
                .iter()
                .filter(|(_, state)| state.active)
                .map(|(room, _)| room.clone())
                .collect()
        })
    }

    async fn deactivate(&self, room: &str) -> Result<(), StoreError> {
        self.with(|inner| {
            if let Some(state) = inner.rooms.get_mut(room) {
                state.active = false;
            }
        })
    }

    async fn try_lock(&self, room: &str, hold: Duration) -> Result<bool, StoreError> {
        let now = crate::moderation::now_ms();
        let hold = u64::try_from(hold.as_millis()).unwrap_or(u64::MAX);
        self.with(|inner| {
            let state = inner.rooms.entry(room.to_owned()).or_default();
            if state.lock_until > now {
                false
            } else {
                state.lock_until = now.saturating_add(hold);
                true
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rooms::memory::MemoryStore;

    fn store() -> MemoryLifecycleStore {
        MemoryLifecycleStore::new(
            Arc::new(MemoryStore::new()),
            StoreTimings {
                ttl: Duration::from_secs(60),
                tombstone_keep: Duration::from_secs(3600),
            },
        )
    }

    fn connected(id: &str, sub: &str, ts: u64) -> Change {
        Change::Connected {
            id: id.into(),
            entry: ConnectionEntry {
                sub: Some(sub.into()),
                name: None,
                joined_at: ts,
                ts,
                unknown: false,
            },
        }
    }

    #[tokio::test]
    async fn duplicates_and_reordering_leave_the_right_state() {
        let store = store();
        assert!(
            store
                .apply("r", &connected("c1", "ann", 10), 10, 100)
                .await
                .unwrap()
        );
        assert!(
            !store
                .apply("r", &connected("c1", "ann", 10), 10, 100)
                .await
                .unwrap()
        );
        // Destroyed before created: the late create leaves it gone.
        let gone = Change::Disconnected { id: "c2".into() };
        assert!(store.apply("r", &gone, 20, 100).await.unwrap());
        assert!(
            !store
                .apply("r", &connected("c2", "bob", 15), 15, 100)
                .await
                .unwrap()
        );
        assert!(!store.apply("r", &gone, 20, 100).await.unwrap());
        let view = store.presence("r", 100).await.unwrap();
        assert_eq!(view.connections.len(), 1);
        assert_eq!(view.connections[0].1.sub.as_deref(), Some("ann"));
        assert_eq!(view.last_active_at, Some(20));
    }

    #[tokio::test]
    async fn seats_count_connections_and_holds_and_a_connection_releases_its_hold() {
        let store = store();
        let seat = |id: &str, sub: &str| SeatRequest {
            hold_id: id.into(),
            sub: sub.into(),
            max: Some(2),
            now: 100,
            hold_until: 1_000,
        };
        assert_eq!(
            store.take_seat("r", &seat("h1", "ann")).await.unwrap(),
            Seat::Held(1)
        );
        assert_eq!(
            store.take_seat("r", &seat("h2", "bob")).await.unwrap(),
            Seat::Held(2)
        );
        assert_eq!(
            store.take_seat("r", &seat("h3", "cy")).await.unwrap(),
            Seat::Full(2)
        );
        store
            .apply("r", &connected("c1", "ann", 200), 200, 200)
            .await
            .unwrap();
        // Twice: the second delivery releases nothing more.
        store
            .apply("r", &connected("c1", "ann", 200), 200, 200)
            .await
            .unwrap();
        let view = store.presence("r", 200).await.unwrap();
        assert_eq!((view.connections.len(), view.holds), (1, 1));
        assert_eq!(
            store.take_seat("r", &seat("h3", "cy")).await.unwrap(),
            Seat::Full(2)
        );
        // Holds lapse.
        let later = SeatRequest {
            now: 1_000,
            ..seat("h4", "cy")
        };
        assert_eq!(store.take_seat("r", &later).await.unwrap(), Seat::Held(2));
    }

    #[tokio::test]
    async fn reconciliation_drops_the_unlisted_and_counts_the_unknown() {
        let store = store();
        store
            .apply("r", &connected("c1", "ann", 10), 10, 10)
            .await
            .unwrap();
        store
            .apply("r", &connected("c2", "bob", 10), 10, 10)
            .await
            .unwrap();
        let listed = vec![("c2".to_owned(), 10), ("c9".to_owned(), 12)];
        let result = store.reconcile("r", &listed, 60_000, 60_000).await.unwrap();
        assert_eq!(
            result,
            Reconciled {
                dropped: 1,
                added: 1
            }
        );
        // A late create of the dropped connection does not bring it back.
        assert!(
            !store
                .apply("r", &connected("c1", "ann", 10), 10, 60_001)
                .await
                .unwrap()
        );
        let view = store.presence("r", 60_001).await.unwrap();
        let ids: Vec<&str> = view.connections.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["c2", "c9"]);
        assert!(view.connections[1].1.unknown);
    }
}
