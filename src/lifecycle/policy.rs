//! A room's policy (`docs/room-lifecycle.md`): seats, opening hours, roles and moderators, as
//! callers write it (RFC 3339 times) and as the store keeps it (epoch milliseconds).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::video::Role;

/// Most moderators one room lists.
const MAX_MODERATORS: usize = 100;

/// A room's rules, set when the room is first created (`policy` of the first join) or by an
/// admin (`PUT /rooms/{room}`). Every field is optional; an absent field does not restrict.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RoomPolicy {
    /// Most participants at once (live connections plus tokens issued in the last
    /// `rooms.seat_hold_seconds` that have not connected yet), 1 to 10000.
    #[schema(minimum = 1, maximum = 10000)]
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::vocab::whole_number_u32"
    )]
    pub(crate) max_participants: Option<u32>,
    /// Before this time (RFC 3339) no token is issued: 403 `room_not_open`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) not_before: Option<String>,
    /// From this time (RFC 3339) no token is issued (403 `room_closed`), tokens expire by it,
    /// and everyone still connected is disconnected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) expires_at: Option<String>,
    /// The role of a token that asks for none (default `publisher`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) default_role: Option<Role>,
    /// The only roles tokens of this room may have (moderators may always have `moderator`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) allowed_roles: Option<Vec<Role>>,
    /// JWT `sub`s who moderate this room without the global `video:moderate` scope, and get
    /// `moderator` tokens in it (at most 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) moderators: Option<Vec<String>>,
}

/// A validated policy, as the store keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Policy {
    /// Seats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max_participants: Option<u32>,
    /// Opens at, epoch ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) not_before: Option<u64>,
    /// Closes at, epoch ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) expires_at: Option<u64>,
    /// Role when none is asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) default_role: Option<Role>,
    /// The roles allowed (none: whatever the caller may have).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) allowed_roles: Option<Vec<Role>>,
    /// Room moderators' `sub`s.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) moderators: Vec<String>,
}

fn parse_time(field: &str, value: &str) -> Result<u64, ApiError> {
    let parsed = time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .map_err(|_| {
            ApiError::invalid(field, "must be an RFC 3339 time, e.g. 2026-12-03T14:00:00Z")
        })?;
    // A time before 1970 is as past as 1970 itself (open since, or closed since).
    u64::try_from((parsed.unix_timestamp_nanos() / 1_000_000).max(0))
        .map_err(|_| ApiError::invalid(field, "is out of range"))
}

/// RFC 3339 (UTC) of epoch milliseconds.
pub(crate) fn rfc3339(epoch_ms: u64) -> String {
    crate::vocab::rfc3339_from_millis(i128::from(epoch_ms)).unwrap_or_default()
}

impl RoomPolicy {
    /// Validates the policy; errors name fields after `prefix` (e.g. `policy.`).
    pub(crate) fn validate(&self, prefix: &str) -> Result<Policy, ApiError> {
        let field = |name: &str| format!("{prefix}{name}");
        if let Some(max) = self.max_participants
            && !(1..=10_000).contains(&max)
        {
            return Err(ApiError::invalid(
                field("maxParticipants"),
                "must be between 1 and 10000",
            ));
        }
        let not_before = self
            .not_before
            .as_deref()
            .map(|t| parse_time(&field("notBefore"), t))
            .transpose()?;
        let expires_at = self
            .expires_at
            .as_deref()
            .map(|t| parse_time(&field("expiresAt"), t))
            .transpose()?;
        if let (Some(open), Some(close)) = (not_before, expires_at)
            && close <= open
        {
            return Err(ApiError::invalid(
                field("expiresAt"),
                "must be later than notBefore",
            ));
        }
        if let Some(allowed) = &self.allowed_roles {
            if allowed.is_empty() {
                return Err(ApiError::invalid(
                    field("allowedRoles"),
                    "must list at least one role (leave it out to allow every role)",
                ));
            }
            if let Some(default) = self.default_role
                && !allowed.contains(&default)
            {
                return Err(ApiError::invalid(
                    field("defaultRole"),
                    "must be one of allowedRoles",
                ));
            }
        }
        let moderators = self.moderators.clone().unwrap_or_default();
        if moderators.len() > MAX_MODERATORS {
            return Err(ApiError::invalid(field("moderators"), "at most 100 subs"));
        }
        if let Some(index) = moderators
            .iter()
            .position(|sub| !(1..=256).contains(&sub.chars().count()))
        {
            return Err(ApiError::invalid(
                format!("{prefix}moderators[{index}]"),
                "must be 1 to 256 characters",
            ));
        }
        let mut allowed_roles = self.allowed_roles.clone();
        if let Some(roles) = &mut allowed_roles {
            roles.dedup();
        }
        Ok(Policy {
            max_participants: self.max_participants,
            not_before,
            expires_at,
            default_role: self.default_role,
            allowed_roles,
            moderators,
        })
    }
}

impl Policy {
    /// The policy as callers see it.
    pub(crate) fn to_api(&self) -> RoomPolicy {
        RoomPolicy {
            max_participants: self.max_participants,
            not_before: self.not_before.map(rfc3339),
            expires_at: self.expires_at.map(rfc3339),
            default_role: self.default_role,
            allowed_roles: self.allowed_roles.clone(),
            moderators: Some(self.moderators.clone()),
        }
    }

    /// Whether `sub` moderates the room.
    pub(crate) fn is_moderator(&self, sub: &str) -> bool {
        self.moderators.iter().any(|m| m == sub)
    }

    /// 403 `room_not_open` / `room_closed` unless `now_ms` is within the opening hours.
    pub(crate) fn check_open(&self, now_ms: u64) -> Result<(), ApiError> {
        if let Some(open) = self.not_before
            && now_ms < open
        {
            return Err(ApiError::RoomNotOpen {
                not_before: rfc3339(open),
                expires_at: self.expires_at.map(rfc3339),
            });
        }
        if let Some(close) = self.expires_at
            && now_ms >= close
        {
            return Err(ApiError::RoomClosed {
                expires_at: rfc3339(close),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_and_ordered() {
        let policy = RoomPolicy {
            not_before: Some("2026-12-03T14:00:00Z".into()),
            expires_at: Some("2026-12-03T15:00:00+01:00".into()),
            ..Default::default()
        };
        let error = policy.validate("policy.").unwrap_err();
        assert!(error.to_string().contains("policy.expiresAt"), "{error}");
        let policy = RoomPolicy {
            not_before: Some("2026-12-03T14:00:00Z".into()),
            expires_at: Some("2026-12-03T15:30:00Z".into()),
            max_participants: Some(8),
            ..Default::default()
        };
        let valid = policy.validate("").unwrap();
        assert_eq!(valid.not_before, Some(1_796_306_400_000));
        assert_eq!(
            valid.to_api().expires_at.as_deref(),
            Some("2026-12-03T15:30:00Z")
        );
        assert!(matches!(
            valid.check_open(1_796_306_399_999),
            Err(ApiError::RoomNotOpen { .. })
        ));
        assert!(valid.check_open(1_796_306_400_000).is_ok());
        assert!(matches!(
            valid.check_open(1_796_311_800_000),
            Err(ApiError::RoomClosed { .. })
        ));
        assert!(
            RoomPolicy {
                not_before: Some("tomorrow".into()),
                ..Default::default()
            }
            .validate("")
            .is_err()
        );
    }

    #[test]
    fn roles_and_seats_are_checked() {
        let bad = RoomPolicy {
            allowed_roles: Some(vec![Role::Subscriber]),
            default_role: Some(Role::Publisher),
            ..Default::default()
        };
        assert!(bad.validate("").is_err());
        let bad = RoomPolicy {
            max_participants: Some(0),
            ..Default::default()
        };
        assert!(bad.validate("").is_err());
        let bad = RoomPolicy {
            allowed_roles: Some(vec![]),
            ..Default::default()
        };
        assert!(bad.validate("").is_err());
    }
}
