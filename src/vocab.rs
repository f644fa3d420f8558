//! The words config, auth and video share: a participant's role, a caller's scope, the legacy
//! token format. A leaf: it imports nothing from the crate, so `config` can name them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A participant's role in a session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Publishes and subscribes (the default).
    #[default]
    Publisher,
    /// Subscribes only.
    Subscriber,
    /// Publishes and subscribes, and may force others out or mute them.
    Moderator,
    /// Publishes only.
    #[serde(rename = "publisheronly")]
    PublisherOnly,
}

impl Role {
    /// The wire name, as the SDKs spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Publisher => "publisher",
            Role::Subscriber => "subscriber",
            Role::Moderator => "moderator",
            Role::PublisherOnly => "publisheronly",
        }
    }
}

/// Which token format legacy credentials produce.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LegacyTokenFormat {
    /// HS256 JWT, as opentok-node ≥ 2.19, Python ≥ 3.10 and Java ≥ 4.15 make them.
    #[default]
    Jwt,
    /// `T1==` HMAC-SHA1 tokens, for client SDKs too old to accept JWTs.
    T1,
}

/// One permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum Scope {
    /// Create sessions and new rooms.
    #[serde(rename = "video:create")]
    Create,
    /// Join existing rooms and get tokens for existing sessions.
    #[serde(rename = "video:join")]
    Join,
    /// Receive `moderator` tokens.
    #[serde(rename = "video:moderate")]
    Moderate,
    /// Delete rooms.
    #[serde(rename = "video:admin")]
    Admin,
    /// Read and list archives, with their download URLs (`video:moderate` implies it).
    #[serde(rename = "video:archives:read")]
    ArchivesRead,
}

impl Scope {
    /// Every scope, in bit order.
    pub const ALL: [Scope; 5] = [
        Scope::Create,
        Scope::Join,
        Scope::Moderate,
        Scope::Admin,
        Scope::ArchivesRead,
    ];

    /// The scope's name in tokens and config, e.g. `video:create`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::Create => "video:create",
            Scope::Join => "video:join",
            Scope::Moderate => "video:moderate",
            Scope::Admin => "video:admin",
            Scope::ArchivesRead => "video:archives:read",
        }
    }

    /// The scope named `name`; unknown names are `None` (tokens carry other apps' scopes too).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == name)
    }

    pub(crate) const fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// An epoch time in milliseconds as RFC 3339 UTC (`2026-11-25T17:42:14Z`), the one time format
/// of our responses; `None` outside the representable range.
pub(crate) fn rfc3339_from_millis(epoch_ms: i128) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp_nanos(epoch_ms.checked_mul(1_000_000)?)
        .ok()?
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// `deserialize_with` for an optional whole number, also written as `60.0`: JSON (and the
/// OpenAPI `integer` type) does not tell the two apart.
pub(crate) fn whole_number<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Number {
        Whole(u64),
        Float(f64),
    }
    match <Option<Number> as serde::Deserialize>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Number::Whole(n)) => Ok(Some(n)),
        Some(Number::Float(f)) if f.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(&f) => {
            Ok(Some(f as u64))
        }
        Some(Number::Float(_)) => Err(serde::de::Error::custom(
            "invalid type: expected a whole number",
        )),
    }
}

/// Like [`whole_number`], for a `u32`.
pub(crate) fn whole_number_u32<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u32>, D::Error> {
    whole_number(deserializer)?
        .map(|n| u32::try_from(n).map_err(|_| serde::de::Error::custom("is out of range")))
        .transpose()
}
