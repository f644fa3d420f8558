//! Moderation state kept beside the rooms (`docs/moderation.md`): bans by `sub` against a room
//! or a session, and each session's mute-all state. In memory for one replica; in the rooms'
//! Redis (same URL and key prefix) for many, so a ban made on one replica holds on all.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::rooms::store::StoreError;

/// What a ban is against: `room:<name>` or `session:<sessionId>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum BanTarget {
    /// Every later join of the room, whatever its session.
    Room(String),
    /// Every later token for the session.
    Session(String),
}

impl BanTarget {
    /// The key part naming the target.
    pub(crate) fn key(&self) -> String {
        match self {
            BanTarget::Room(room) => format!("room:{room}"),
            BanTarget::Session(session_id) => format!("session:{session_id}"),
        }
    }
}

/// One ban.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Ban {
    /// The banned identity (the JWT `sub`).
    pub(crate) sub: String,
    /// The `sub` of the moderator who banned them.
    #[serde(default)]
    pub(crate) banned_by: Option<String>,
    /// When, epoch milliseconds.
    pub(crate) created_at: u64,
    /// Until when, epoch milliseconds.
    pub(crate) expires_at: u64,
}

/// A session's mute-all state, as last set through this service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MuteState {
    /// True while every stream but the excluded ones is muted, new ones included.
    pub(crate) active: bool,
    /// Streams left unmuted.
    pub(crate) excluded_stream_ids: Vec<String>,
    /// When it was last set, epoch milliseconds.
    pub(crate) changed_at: u64,
    /// The `sub` of the moderator who set it, if known.
    #[serde(default)]
    pub(crate) changed_by: Option<String>,
}

/// The operations moderation needs from the shared store.
#[async_trait::async_trait]
pub(crate) trait ModerationStore: Send + Sync + std::fmt::Debug {
    /// Records `ban` against `target` until `ban.expires_at` (replacing an earlier one).
    async fn ban(&self, target: &BanTarget, ban: &Ban) -> Result<(), StoreError>;

    /// The live ban of `sub` against `target`, if any.
    async fn ban_of(
        &self,
        target: &BanTarget,
        sub: &str,
        now_ms: u64,
    ) -> Result<Option<Ban>, StoreError>;

    /// Every live ban against `target`.
    async fn bans(&self, target: &BanTarget, now_ms: u64) -> Result<Vec<Ban>, StoreError>;

    /// Lifts the ban of `sub` against `target`; false if there was none.
    async fn lift(&self, target: &BanTarget, sub: &str) -> Result<bool, StoreError>;

    /// Records the session's mute state for `ttl`.
    async fn set_mute(
        &self,
        session_id: &str,
        state: &MuteState,
        ttl: Duration,
    ) -> Result<(), StoreError>;

    /// The session's mute state, if it was ever set (and has not expired).
    async fn mute(&self, session_id: &str) -> Result<Option<MuteState>, StoreError>;
}

#[derive(Debug, Default)]
struct Tables {
    bans: HashMap<BanTarget, HashMap<String, Ban>>,
    mutes: HashMap<String, (MuteState, Instant)>,
}

/// Moderation state in process memory (one replica).
#[derive(Debug, Default)]
pub(crate) struct MemoryModerationStore {
    tables: Mutex<Tables>,
}

impl MemoryModerationStore {
    /// Empty.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Tables) -> T) -> Result<T, StoreError> {
        let mut tables = self
            .tables
            .lock()
            .map_err(|_| StoreError("memory store poisoned".into()))?;
        Ok(f(&mut tables))
    }
}

#[async_trait::async_trait]
impl ModerationStore for MemoryModerationStore {
    async fn ban(&self, target: &BanTarget, ban: &Ban) -> Result<(), StoreError> {
        self.with(|tables| {
            let bans = tables.bans.entry(target.clone()).or_default();
            // Expired bans are dropped whenever the target is written.
            bans.retain(|_, old| old.expires_at > ban.created_at);
            bans.insert(ban.sub.clone(), ban.clone());
        })
    }

    async fn ban_of(
        &self,
        target: &BanTarget,
        sub: &str,
        now_ms: u64,
    ) -> Result<Option<Ban>, StoreError> {
        self.with(|tables| {
            tables
                .bans
                .get(target)
                .and_then(|bans| bans.get(sub))
                .filter(|ban| ban.expires_at > now_ms)
                .cloned()
        })
    }

    async fn bans(&self, target: &BanTarget, now_ms: u64) -> Result<Vec<Ban>, StoreError> {
        self.with(|tables| {
            let mut live: Vec<Ban> = tables
                .bans
                .get(target)
                .map(|bans| {
                    bans.values()
                        .filter(|ban| ban.expires_at > now_ms)
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            live.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.sub.cmp(&b.sub)));
            live
        })
    }

    async fn lift(&self, target: &BanTarget, sub: &str) -> Result<bool, StoreError> {
        self.with(|tables| {
            tables
                .bans
                .get_mut(target)
                .and_then(|bans| bans.remove(sub))
                .is_some()
        })
    }

    async fn set_mute(
        &self,
        session_id: &str,
        state: &MuteState,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.with(|tables| {
            let now = Instant::now();
            tables.mutes.retain(|_, (_, expires)| *expires > now);
            tables
                .mutes
                .insert(session_id.to_owned(), (state.clone(), now + ttl));
        })
    }

    async fn mute(&self, session_id: &str) -> Result<Option<MuteState>, StoreError> {
        self.with(|tables| {
            tables
                .mutes
                .get(session_id)
                .filter(|(_, expires)| *expires > Instant::now())
                .map(|(state, _)| state.clone())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(sub: &str, created_at: u64, expires_at: u64) -> Ban {
        Ban {
            sub: sub.into(),
            banned_by: Some("host".into()),
            created_at,
            expires_at,
        }
    }

    #[tokio::test]
    async fn bans_hold_until_they_expire_or_are_lifted() {
        let store = MemoryModerationStore::new();
        let room = BanTarget::Room("standup".into());
        store
            .ban(&room, &ban("mallory", 1_000, 5_000))
            .await
            .unwrap();
        store.ban(&room, &ban("eve", 1_500, 2_000)).await.unwrap();
        assert!(
            store
                .ban_of(&room, "mallory", 4_999)
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            store
                .ban_of(&room, "mallory", 5_000)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .ban_of(&BanTarget::Session("standup".into()), "mallory", 2_000)
                .await
                .unwrap()
                .is_none(),
            "a room ban is not a session ban of the same name"
        );
        let live = store.bans(&room, 1_800).await.unwrap();
        assert_eq!(
            live.iter().map(|b| b.sub.as_str()).collect::<Vec<_>>(),
            ["mallory", "eve"]
        );
        assert_eq!(store.bans(&room, 2_000).await.unwrap().len(), 1);
        assert!(store.lift(&room, "mallory").await.unwrap());
        assert!(!store.lift(&room, "mallory").await.unwrap());
        assert!(
            store
                .ban_of(&room, "mallory", 1_000)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn mute_state_is_kept_per_session() {
        let store = MemoryModerationStore::new();
        assert!(store.mute("s1").await.unwrap().is_none());
        let state = MuteState {
            active: true,
            excluded_stream_ids: vec!["a".into()],
            changed_at: 1,
            changed_by: None,
        };
        store
            .set_mute("s1", &state, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(store.mute("s1").await.unwrap(), Some(state));
        assert!(store.mute("s2").await.unwrap().is_none());
    }
}
