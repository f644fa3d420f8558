//! The room lifecycle (`docs/room-lifecycle.md`): presence fed by verified session-monitoring
//! callbacks ([`CallbackSink`]), room policies (seats, opening hours, roles, moderators), and a
//! background task that reconciles presence with Vonage, ends rooms at `expiresAt`, retires
//! rooms that stay empty and stops their archives.

pub(crate) mod memory;
pub(crate) mod policy;
pub(crate) mod redis;
pub(crate) mod store;

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::callbacks::event::{Callback, SessionEventKind};
use crate::callbacks::{Applied, CallbackSink};
use crate::moderation::now_ms;
use crate::rooms::Rooms;
use crate::rooms::store::StoreError;
use crate::video::VideoClient;
use crate::video::moderation::ModerationError;
use policy::Policy;
use store::{
    Change, ConnectionEntry, LifecycleStore, PresenceView, Seat, SeatRequest, StreamEntry,
};

/// Settings from `[rooms]` and `[archives]`.
#[derive(Debug, Clone)]
pub(crate) struct LifecycleSettings {
    /// How often each active room is reconciled with Vonage's connection list (zero: never).
    pub(crate) reconcile: Duration,
    /// How long an issued token holds a seat before its connection appears.
    pub(crate) seat_hold: Duration,
    /// How long a room stays empty before its mapping is retired.
    pub(crate) empty_retire: Duration,
    /// Stop archives still recording in ended or retired rooms.
    pub(crate) stop_when_empty: bool,
    /// Read `sub`/`name` from connection data (only when the service binds it: JWT auth).
    pub(crate) identity_in_data: bool,
}

impl LifecycleSettings {
    /// How often the background task looks at the active rooms.
    pub(crate) fn tick(&self) -> Duration {
        let mut tick = self.empty_retire.min(Duration::from_secs(5));
        if !self.reconcile.is_zero() {
            tick = tick.min(self.reconcile);
        }
        tick.max(Duration::from_millis(500))
    }
}

/// The lifecycle: its store, the Vonage client and the rooms. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Lifecycle(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    store: Arc<dyn LifecycleStore>,
    video: VideoClient,
    rooms: Rooms,
    settings: LifecycleSettings,
}

/// The identity the service bound into a JWT caller's connection data.
#[derive(Debug, Deserialize)]
struct BoundIdentity {
    sub: Option<String>,
    name: Option<String>,
}

/// Why a seat could not be had.
#[derive(Debug, Clone)]
pub(crate) enum SeatError {
    /// The room is full (its participants and held seats reach the maximum).
    Full,
    /// The store failed.
    Store(StoreError),
}

impl Lifecycle {
    /// The lifecycle over `store`.
    pub(crate) fn new(
        store: Arc<dyn LifecycleStore>,
        video: VideoClient,
        rooms: Rooms,
        settings: LifecycleSettings,
    ) -> Self {
        Self(Arc::new(Inner {
            store,
            video,
            rooms,
            settings,
        }))
    }

    /// The sink the callback receiver hands verified callbacks to.
    pub(crate) fn sink(&self) -> Arc<dyn CallbackSink> {
        Arc::new(self.clone())
    }

    /// The store.
    pub(crate) fn store(&self) -> &Arc<dyn LifecycleStore> {
        &self.0.store
    }

    /// The room whose session `session_id` is, if it is a room's.
    pub(crate) async fn room_of(&self, session_id: &str) -> Result<Option<String>, StoreError> {
        self.0.store.room_of(session_id).await
    }

    /// The room's policy.
    pub(crate) async fn policy(&self, room: &str) -> Result<Option<Policy>, StoreError> {
        self.0.store.policy(room).await
    }

    /// The room's presence now.
    pub(crate) async fn presence(&self, room: &str) -> Result<PresenceView, StoreError> {
        self.0.store.presence(room, now_ms()).await
    }

    /// Holds a seat for a token about to be issued to `sub` (empty: anonymous).
    pub(crate) async fn take_seat(
        &self,
        room: &str,
        sub: &str,
        max: Option<u32>,
    ) -> Result<u64, SeatError> {
        let now = now_ms();
        let hold = u64::try_from(self.0.settings.seat_hold.as_millis()).unwrap_or(u64::MAX);
        let request = SeatRequest {
            hold_id: uuid::Uuid::new_v4().simple().to_string(),
            sub: sub.to_owned(),
            max,
            now,
            hold_until: now.saturating_add(hold),
        };
        match self.0.store.take_seat(room, &request).await {
            Ok(Seat::Held(count)) => Ok(count),
            Ok(Seat::Full(_)) => {
                metrics::counter!("room_full_refusals_total").increment(1);
                Err(SeatError::Full)
            }
            Err(error) => Err(SeatError::Store(error)),
        }
    }

    /// Records that `room` maps to `session_id` (so callbacks find it) and is active.
    pub(crate) async fn track(&self, room: &str, session_id: &str) -> Result<(), StoreError> {
        self.0.store.track(room, session_id).await
    }

    /// Forgets the room's policy and presence (`DELETE /rooms/{room}`).
    pub(crate) async fn forget(
        &self,
        room: &str,
        session_id: Option<&str>,
    ) -> Result<(), StoreError> {
        self.0.store.forget(room, session_id).await
    }

    fn identity(&self, data: Option<&str>) -> (Option<String>, Option<String>) {
        if !self.0.settings.identity_in_data {
            return (None, None);
        }
        data.and_then(|data| serde_json::from_str::<BoundIdentity>(data).ok())
            .map_or((None, None), |bound| (bound.sub, bound.name))
    }

    async fn apply_session_event(
        &self,
        event: &crate::callbacks::event::SessionEvent,
        received_at: u64,
    ) -> Result<Applied, StoreError> {
        let Some(room) = self.0.store.room_of(&event.session_id).await? else {
            return Ok(Applied::Ignored);
        };
        let ts = event.timestamp;
        let change = match &event.kind {
            SessionEventKind::ConnectionCreated(connection) => {
                let (sub, name) = self.identity(connection.data.as_deref());
                Change::Connected {
                    id: connection.id.clone(),
                    entry: ConnectionEntry {
                        sub,
                        name,
                        joined_at: connection.created_at.unwrap_or(ts),
                        ts,
                        unknown: false,
                    },
                }
            }
            SessionEventKind::ConnectionDestroyed { connection, .. } => Change::Disconnected {
                id: connection.id.clone(),
            },
            SessionEventKind::StreamCreated(stream) => {
                let Some(connection) = &stream.connection else {
                    return Ok(Applied::Ignored);
                };
                Change::Published {
                    id: stream.id.clone(),
                    entry: StreamEntry {
                        connection: connection.id.clone(),
                        video_type: stream.video_type.clone(),
                        name: stream.name.clone().filter(|name| !name.is_empty()),
                        ts,
                    },
                }
            }
            SessionEventKind::StreamDestroyed { stream, .. } => Change::Unpublished {
                id: stream.id.clone(),
            },
            SessionEventKind::SessionDestroyed { reason } => {
                // A rotation moves the session; the participants stay (docs/room-lifecycle.md).
                if reason.as_deref() == Some("serverRotation") {
                    return Ok(Applied::Ignored);
                }
                // A late delivery must not end a room people are in again.
                let view = self.0.store.presence(&room, received_at).await?;
                if !view.connections.is_empty() || view.holds > 0 {
                    return Ok(Applied::Ignored);
                }
                let retired = self
                    .retire(&room, &event.session_id, "session_destroyed")
                    .await?;
                return Ok(if retired {
                    Applied::Applied
                } else {
                    Applied::Ignored
                });
            }
            SessionEventKind::Other(_) => return Ok(Applied::Ignored),
        };
        let applied = self.0.store.apply(&room, &change, ts, received_at).await?;
        Ok(if applied {
            Applied::Applied
        } else {
            Applied::Ignored
        })
    }

    /// Retires the room if it still maps to `session_id`, stopping its archives first.
    async fn retire(
        &self,
        room: &str,
        session_id: &str,
        reason: &'static str,
    ) -> Result<bool, StoreError> {
        if self.0.settings.stop_when_empty {
            self.stop_archives(room, session_id).await;
        }
        let retired = self.0.store.retire(room, session_id).await?;
        if retired {
            metrics::counter!("rooms_retired_total", "reason" => reason).increment(1);
            tracing::info!(room, vonage.session_id = %session_id, reason, "room retired");
        }
        Ok(retired)
    }

    /// Stops every archive of the session still recording (or paused).
    async fn stop_archives(&self, room: &str, session_id: &str) {
        let page = match self.0.video.list_archives(session_id, 0, 50).await {
            Ok(page) => page,
            Err(error) => {
                tracing::warn!(room, error = %error, "could not list the room's archives");
                return;
            }
        };
        for archive in page
            .items
            .iter()
            .filter(|a| matches!(a.status.as_str(), "started" | "paused"))
        {
            match self.0.video.stop_archive(&archive.id).await {
                Ok(_) => {
                    metrics::counter!("room_archives_stopped_total").increment(1);
                    tracing::info!(room, vonage.archive_id = %archive.id, "archive of an ended or empty room stopped");
                }
                Err(error) => {
                    tracing::warn!(room, vonage.archive_id = %archive.id, error = %error, "could not stop an archive");
                }
            }
        }
    }

    /// Vonage's list of the session's connections: (ID, createdAt). Nobody connected is an
    /// empty list.
    async fn listed(&self, session_id: &str) -> Result<Vec<(String, u64)>, ModerationError> {
        match self.0.video.list_connections(session_id).await {
            Ok(list) => Ok(list
                .items
                .into_iter()
                .map(|item| (item.connection_id, item.created_at))
                .collect()),
            Err(ModerationError::SessionNotActive) => Ok(Vec::new()),
            Err(error) => Err(error),
        }
    }

    /// Runs the background task until the process ends: one per process, and safe with many
    /// (each room is worked on by one replica per tick, under a short lock).
    pub(crate) fn spawn(&self) -> tokio::task::JoinHandle<()> {
        let lifecycle = self.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(lifecycle.0.settings.tick());
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                if let Err(error) = lifecycle.tick().await {
                    tracing::warn!(error = %error, "room lifecycle tick failed");
                }
            }
        })
    }

    /// One look at every active room.
    pub(crate) async fn tick(&self) -> Result<(), StoreError> {
        let rooms = self.0.store.active_rooms().await?;
        let mut participants = 0u64;
        for room in &rooms {
            match self.look_after(room).await {
                Ok(count) => participants += count,
                Err(error) => tracing::warn!(room, error = %error, "room lifecycle step failed"),
            }
        }
        metrics::gauge!("room_participants").set(participants as f64);
        metrics::gauge!("rooms_active").set(rooms.len() as f64);
        Ok(())
    }

    /// Looks after one room; answers its participant count.
    async fn look_after(&self, room: &str) -> Result<u64, StoreError> {
        let settings = &self.0.settings;
        let now = now_ms();
        let Some(record) = self.0.rooms.store().get(room).await? else {
            // The mapping expired or was deleted: nothing to look after.
            self.0.store.deactivate(room).await?;
            return Ok(0);
        };
        let mut view = self.0.store.presence(room, now).await?;
        let policy = self.0.store.policy(room).await?;
        let expired = policy
            .as_ref()
            .and_then(|p| p.expires_at)
            .is_some_and(|close| now >= close);
        let reconcile_due = !settings.reconcile.is_zero()
            && view.reconciled_at.is_none_or(|at| {
                now.saturating_sub(at) >= u64::try_from(settings.reconcile.as_millis()).unwrap_or(0)
            });
        let empty_for = view.empty_since.map(|since| now.saturating_sub(since));
        let retire_due = view.tracked
            && empty_for.is_some_and(|ms| {
                ms >= u64::try_from(settings.empty_retire.as_millis()).unwrap_or(u64::MAX)
            });
        let end_due = expired && (view.ended_at.is_none() || !view.connections.is_empty());
        if !(end_due || reconcile_due || retire_due) {
            return Ok(view.connections.len() as u64);
        }
        if !self.0.store.try_lock(room, settings.tick()).await? {
            return Ok(view.connections.len() as u64);
        }
        let session_id = record.session_id.as_str();
        if end_due {
            self.end(room, session_id, &view).await?;
            view = self.0.store.presence(room, now_ms()).await?;
        } else if reconcile_due {
            let listed_at = now_ms();
            match self.listed(session_id).await {
                Ok(listed) => {
                    let result = self
                        .0
                        .store
                        .reconcile(room, &listed, listed_at, now_ms())
                        .await?;
                    metrics::counter!("room_reconcile_total", "outcome" => "ok").increment(1);
                    metrics::counter!("room_reconcile_dropped_total").increment(result.dropped);
                    metrics::counter!("room_reconcile_unknown_total").increment(result.added);
                    if result.dropped + result.added > 0 {
                        tracing::info!(
                            room,
                            dropped = result.dropped,
                            unknown = result.added,
                            "presence reconciled with Vonage"
                        );
                    }
                    view = self.0.store.presence(room, now_ms()).await?;
                }
                Err(error) => {
                    metrics::counter!("room_reconcile_total", "outcome" => "failed").increment(1);
                    tracing::warn!(room, error = %error, "could not list the room's connections");
                }
            }
        }
        let now = now_ms();
        let retire_due = view.tracked
            && view.empty_since.is_some_and(|since| {
                now.saturating_sub(since)
                    >= u64::try_from(settings.empty_retire.as_millis()).unwrap_or(u64::MAX)
            });
        if retire_due {
            self.retire(room, session_id, "empty").await?;
            return Ok(0);
        }
        Ok(view.connections.len() as u64)
    }

    /// Ends a room past `expiresAt`: disconnects everyone Vonage lists, stops its archives.
    async fn end(
        &self,
        room: &str,
        session_id: &str,
        view: &PresenceView,
    ) -> Result<(), StoreError> {
        let listed_at = now_ms();
        let listed = match self.listed(session_id).await {
            Ok(listed) => listed,
            Err(error) => {
                tracing::warn!(room, error = %error, "could not list the connections of an expired room");
                return Ok(());
            }
        };
        let mut disconnected = 0u64;
        for (connection_id, _) in &listed {
            match self
                .0
                .video
                .force_disconnect(session_id, connection_id)
                .await
            {
                Ok(()) | Err(ModerationError::ConnectionNotFound) => disconnected += 1,
                Err(error) => {
                    tracing::warn!(room, error = %error, "could not disconnect a participant of an expired room");
                }
            }
        }
        // What Vonage no longer lists is gone, whatever callbacks say later.
        self.0
            .store
            .reconcile(room, &[], listed_at, now_ms())
            .await?;
        if self.0.settings.stop_when_empty {
            self.stop_archives(room, session_id).await;
        }
        if view.ended_at.is_none() {
            self.0.store.mark_ended(room, now_ms()).await?;
            metrics::counter!("rooms_ended_total").increment(1);
            tracing::info!(room, disconnected, "room ended at its expiresAt");
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl CallbackSink for Lifecycle {
    async fn apply(&self, callback: &Callback, received_at: u64) -> Result<Applied, StoreError> {
        let (event, result) = match callback {
            Callback::Archive(_) => return Ok(Applied::Ignored),
            Callback::Session(event) => (event, self.apply_session_event(event, received_at).await),
        };
        let name = event.kind.label();
        let outcome = match &result {
            Ok(applied) => applied.as_str(),
            Err(_) => "failed",
        };
        metrics::counter!("room_presence_events_total", "event" => name, "outcome" => outcome)
            .increment(1);
        result
    }
}

#[async_trait::async_trait]
impl crate::moderation::Presence for Lifecycle {
    async fn connections_of(
        &self,
        session_id: &str,
        sub: &str,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let Some(room) = self.0.store.room_of(session_id).await? else {
            return Ok(None);
        };
        let view = self.0.store.presence(&room, now_ms()).await?;
        Ok(Some(
            view.connections
                .into_iter()
                .filter(|(_, entry)| entry.sub.as_deref() == Some(sub))
                .map(|(id, _)| id)
                .collect(),
        ))
    }
}
