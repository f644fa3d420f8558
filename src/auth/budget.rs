//! Whose budget a call spends and which one: shared by the in-process limits (`rate_limit`)
//! and the Redis ones (`shared_limit`).

use std::net::IpAddr;
use std::sync::Arc;

/// Who a budget belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum CallerKey {
    /// A JWT subject.
    Subject(Arc<str>),
    /// A client address (IPv6 masked to its /64).
    Ip(IpAddr),
}

impl CallerKey {
    /// The key of an unauthenticated client at `ip`.
    pub(crate) fn from_ip(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V6(v6) => {
                let masked = u128::from(v6) & !((1u128 << 64) - 1);
                CallerKey::Ip(IpAddr::V6(masked.into()))
            }
            v4 => CallerKey::Ip(v4),
        }
    }
}

/// Which budget a call spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Budget {
    /// Creating sessions and rooms.
    Create,
    /// Joining rooms, minting tokens, reading and deleting rooms.
    Join,
    /// Vonage's callbacks, per source address (`callbacks::limit`, not a caller budget).
    Callbacks,
}

impl Budget {
    /// The budget's name in headers, logs and metrics.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Budget::Create => "create",
            Budget::Join => "join",
            Budget::Callbacks => "callbacks",
        }
    }
}
