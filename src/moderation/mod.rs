//! Moderation from the server (`docs/moderation.md`): the state it keeps (bans, mute-all) and
//! what it needs from presence (which connections a `sub` holds). The HTTP side is
//! `routes::moderation`; the Vonage calls are `video::moderation`.

pub(crate) mod redis;
pub(crate) mod store;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::rooms::store::StoreError;
use store::{Ban, BanTarget, ModerationStore, MuteState};

/// Which connections of a session belong to whom. Filled by the room-lifecycle work (signed
/// session-monitoring callbacks); where an implementation answers `None`,
/// "remove user X" can only ban, not disconnect.
#[async_trait::async_trait]
pub trait Presence: Send + Sync + std::fmt::Debug {
    /// The live connection IDs of `sub` in `session_id`, or `None` when presence is not tracked.
    async fn connections_of(
        &self,
        session_id: &str,
        sub: &str,
    ) -> Result<Option<Vec<String>>, StoreError>;
}

/// Settings from `[moderation]`.
#[derive(Debug, Clone)]
pub(crate) struct ModerationSettings {
    /// `moderation.join_may_signal`.
    pub(crate) join_may_signal: bool,
    /// How long a ban lasts.
    pub(crate) ban_duration: Duration,
    /// How long a mute-all state is remembered without being set again (the room TTL).
    pub(crate) mute_ttl: Duration,
}

/// The moderation state and its settings. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Moderation {
    store: Arc<dyn ModerationStore>,
    presence: Arc<dyn Presence>,
    settings: ModerationSettings,
}

/// Epoch milliseconds now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Moderation {
    /// Moderation over `store`, asking `presence` who holds which connection.
    pub(crate) fn new(
        store: Arc<dyn ModerationStore>,
        presence: Arc<dyn Presence>,
        settings: ModerationSettings,
    ) -> Self {
        Self {
            store,
            presence,
            settings,
        }
    }

    /// The settings.
    pub(crate) fn settings(&self) -> &ModerationSettings {
        &self.settings
    }

    /// The presence map.
    pub(crate) fn presence(&self) -> &Arc<dyn Presence> {
        &self.presence
    }

    /// The live ban of `sub` against any of `targets`, checked in order.
    pub(crate) async fn ban_of(
        &self,
        targets: &[BanTarget],
        sub: &str,
    ) -> Result<Option<Ban>, StoreError> {
        let now = now_ms();
        for target in targets {
            if let Some(ban) = self.store.ban_of(target, sub, now).await? {
                return Ok(Some(ban));
            }
        }
        Ok(None)
    }

    /// Bans `sub` from every target for the configured duration; returns the ban.
    pub(crate) async fn ban(
        &self,
        targets: &[BanTarget],
        sub: &str,
        banned_by: Option<&str>,
    ) -> Result<Ban, StoreError> {
        let now = now_ms();
        let duration_ms = u64::try_from(self.settings.ban_duration.as_millis()).unwrap_or(u64::MAX);
        let ban = Ban {
            sub: sub.to_owned(),
            banned_by: banned_by.map(str::to_owned),
            created_at: now,
            expires_at: now.saturating_add(duration_ms),
        };
        for target in targets {
            self.store.ban(target, &ban).await?;
        }
        Ok(ban)
    }

    /// Every live ban against `target`.
    pub(crate) async fn bans(&self, target: &BanTarget) -> Result<Vec<Ban>, StoreError> {
        self.store.bans(target, now_ms()).await
    }

    /// Lifts the ban of `sub` against every target; true if any existed.
    pub(crate) async fn lift(&self, targets: &[BanTarget], sub: &str) -> Result<bool, StoreError> {
        let mut any = false;
        for target in targets {
            any |= self.store.lift(target, sub).await?;
        }
        Ok(any)
    }

    /// Records the session's mute-all state.
    pub(crate) async fn set_mute(
        &self,
        session_id: &str,
        state: &MuteState,
    ) -> Result<(), StoreError> {
        self.store
            .set_mute(session_id, state, self.settings.mute_ttl)
            .await
    }

    /// The session's mute-all state, if set.
    pub(crate) async fn mute(&self, session_id: &str) -> Result<Option<MuteState>, StoreError> {
        self.store.mute(session_id).await
    }
}
