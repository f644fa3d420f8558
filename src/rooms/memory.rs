//! The in-process room store: correct for one replica. Entries expire lazily and are swept
//! when the map grows, so memory stays bounded by the live rooms.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::store::{ClaimOutcome, RoomRecord, RoomStore, StoreError};

#[derive(Debug)]
enum Entry {
    Claim(String),
    Room(RoomRecord),
}

/// Rooms in a mutex-guarded map.
#[derive(Debug, Default)]
pub(crate) struct MemoryStore {
    rooms: Mutex<HashMap<String, (Entry, Instant)>>,
}

impl MemoryStore {
    /// An empty store.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut HashMap<String, (Entry, Instant)>, Instant) -> T,
    ) -> Result<T, StoreError> {
        let mut rooms = self
            .rooms
            .lock()
            .map_err(|_| StoreError("memory store poisoned".into()))?;
        let now = Instant::now();
        if rooms.len() >= 1024 && rooms.len().is_power_of_two() {
            rooms.retain(|_, (_, expires)| *expires > now);
        }
        Ok(f(&mut rooms, now))
    }
}

/// The live entry of `room`, dropping it if it has expired.
fn live<'a>(
    rooms: &'a mut HashMap<String, (Entry, Instant)>,
    room: &str,
    now: Instant,
) -> Option<&'a mut (Entry, Instant)> {
    if rooms.get(room).is_some_and(|(_, expires)| *expires <= now) {
        rooms.remove(room);
    }
    rooms.get_mut(room)
}

#[async_trait::async_trait]
impl RoomStore for MemoryStore {
    async fn claim_or_join(
        &self,
        room: &str,
        claim: &str,
        claim_ttl: Duration,
        now_ms: u64,
        ttl: Duration,
    ) -> Result<ClaimOutcome, StoreError> {
        self.with(|rooms, now| match live(rooms, room, now) {
            None => {
                rooms.insert(
                    room.to_owned(),
                    (Entry::Claim(claim.to_owned()), now + claim_ttl),
                );
                ClaimOutcome::Claimed
            }
            Some((Entry::Claim(_), _)) => ClaimOutcome::Pending,
            Some((Entry::Room(record), expires)) => {
                record.last_joined_at = now_ms;
                *expires = now + ttl;
                ClaimOutcome::Existing(record.clone())
            }
        })
    }

    async fn complete(
        &self,
        room: &str,
        claim: &str,
        record: &RoomRecord,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.with(|rooms, now| match live(rooms, room, now) {
            Some((Entry::Claim(held), _)) if held == claim => {
                rooms.insert(room.to_owned(), (Entry::Room(record.clone()), now + ttl));
                true
            }
            _ => false,
        })
    }

    async fn release(&self, room: &str, claim: &str) -> Result<(), StoreError> {
        self.with(|rooms, now| {
            if matches!(live(rooms, room, now), Some((Entry::Claim(held), _)) if held == claim) {
                rooms.remove(room);
            }
        })
    }

    async fn get(&self, room: &str) -> Result<Option<RoomRecord>, StoreError> {
        self.with(|rooms, now| match live(rooms, room, now) {
            Some((Entry::Room(record), _)) => Some(record.clone()),
            _ => None,
        })
    }

    async fn delete(&self, room: &str) -> Result<(), StoreError> {
        self.with(|rooms, _| {
            rooms.remove(room);
        })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.with(|_, _| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(60);

    fn record(session_id: &str) -> RoomRecord {
        RoomRecord {
            session_id: session_id.into(),
            created_at: 1,
            last_joined_at: 1,
        }
    }

    #[tokio::test]
    async fn only_the_claim_holder_completes_and_others_see_the_record() {
        let store = MemoryStore::new();
        assert_eq!(
            store
                .claim_or_join("r", "pending:a", LONG, 1, LONG)
                .await
                .unwrap(),
            ClaimOutcome::Claimed
        );
        assert_eq!(
            store
                .claim_or_join("r", "pending:b", LONG, 2, LONG)
                .await
                .unwrap(),
            ClaimOutcome::Pending
        );
        assert!(
            !store
                .complete("r", "pending:b", &record("s-b"), LONG)
                .await
                .unwrap()
        );
        assert!(
            store
                .complete("r", "pending:a", &record("s-a"), LONG)
                .await
                .unwrap()
        );
        let ClaimOutcome::Existing(joined) = store
            .claim_or_join("r", "pending:c", LONG, 5, LONG)
            .await
            .unwrap()
        else {
            panic!("the room exists")
        };
        assert_eq!(joined.session_id, "s-a");
        assert_eq!(joined.last_joined_at, 5);
        assert_eq!(store.get("r").await.unwrap().unwrap().last_joined_at, 5);
    }

    #[tokio::test]
    async fn released_and_expired_claims_let_the_next_joiner_take_over() {
        let store = MemoryStore::new();
        store
            .claim_or_join("r", "pending:a", LONG, 1, LONG)
            .await
            .unwrap();
        store.release("r", "pending:a").await.unwrap();
        assert_eq!(
            store
                .claim_or_join("r", "pending:b", Duration::from_millis(20), 1, LONG)
                .await
                .unwrap(),
            ClaimOutcome::Claimed
        );
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(
            store
                .claim_or_join("r", "pending:c", LONG, 1, LONG)
                .await
                .unwrap(),
            ClaimOutcome::Claimed
        );
        assert!(
            !store
                .complete("r", "pending:b", &record("late"), LONG)
                .await
                .unwrap(),
            "an expired claim cannot complete"
        );
    }

    #[tokio::test]
    async fn records_expire_after_their_ttl_and_delete_forgets() {
        let store = MemoryStore::new();
        store
            .claim_or_join("r", "pending:a", LONG, 1, LONG)
            .await
            .unwrap();
        store
            .complete("r", "pending:a", &record("s"), Duration::from_millis(20))
            .await
            .unwrap();
        assert!(store.get("r").await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(store.get("r").await.unwrap().is_none());
        store
            .claim_or_join("q", "pending:a", LONG, 1, LONG)
            .await
            .unwrap();
        store
            .complete("q", "pending:a", &record("s"), LONG)
            .await
            .unwrap();
        store.delete("q").await.unwrap();
        assert!(store.get("q").await.unwrap().is_none());
    }
}
