//! A room's seats and token rules, for every token issued in a room: through a join
//! (`routes::rooms`) or `POST /sessions/{id}/tokens` for a room's session (`routes::sessions`).
//! Its own module so that rooms may use sessions' issuing and sessions these rules without the
//! two importing each other. Policies and seats: `docs/room-lifecycle.md`.

use crate::auth::{Caller, RoomRules};
use crate::error::{ApiError, ApiResult};
use crate::lifecycle::SeatError;
use crate::lifecycle::policy::Policy;
use crate::state::AppState;

/// The token rules of a room's policy for `caller`, refusing a room that is not open.
pub(crate) fn room_rules(policy: Option<&Policy>, caller: &Caller) -> ApiResult<RoomRules> {
    let Some(policy) = policy else {
        return Ok(RoomRules::default());
    };
    let now = crate::moderation::now_ms();
    policy.check_open(now)?;
    let moderator = caller
        .identity()
        .is_some_and(|identity| policy.is_moderator(&identity.subject));
    Ok(RoomRules {
        default_role: policy.default_role,
        allowed_roles: policy.allowed_roles.clone(),
        moderator,
        // The token expires by the room's close (whole seconds, rounded down).
        ttl_cap_seconds: policy
            .expires_at
            .map(|close| close.saturating_sub(now) / 1000),
    })
}

/// Holds a seat for the token about to be issued: 409 `room_full` when every seat is taken.
pub(crate) async fn take_seat(
    state: &AppState,
    room: &str,
    caller: &Caller,
    policy: Option<&Policy>,
) -> ApiResult<()> {
    let max = policy.and_then(|policy| policy.max_participants);
    let sub = caller
        .identity()
        .map(|identity| identity.subject.as_str())
        .unwrap_or_default();
    match state.lifecycle.take_seat(room, sub, max).await {
        Ok(_) => Ok(()),
        Err(SeatError::Full) => Err(ApiError::RoomFull {
            max: max.unwrap_or_default(),
        }),
        Err(SeatError::Store(error)) => Err(super::moderation::store_error(error)),
    }
}
