//! Scopes: what a caller may do (PRODUCT §8), read from a bearer token's `scope`/`scp` claims or
//! granted to anonymous callers by config. A small bit set, cheap to copy into every `Caller`.

use serde::Deserialize;
use serde_json::Value;

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

    const fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of scopes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scopes(u8);

impl Scopes {
    /// True when `scope` is in the set.
    pub const fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Every scope in either set.
    pub const fn union(self, other: Scopes) -> Self {
        Scopes(self.0 | other.0)
    }

    /// Adds `scope`.
    pub fn insert(&mut self, scope: Scope) {
        self.0 |= scope.bit();
    }

    /// Scopes from a claim value: a space-separated string (`scope`, RFC 8693) or an array of
    /// strings (`scp`). Unknown names are ignored; other shapes give nothing.
    pub fn from_claim(value: &Value) -> Self {
        let mut scopes = Scopes::default();
        let mut add = |name: &str| {
            if let Some(scope) = Scope::parse(name) {
                scopes.insert(scope);
            }
        };
        match value {
            Value::String(text) => text.split_ascii_whitespace().for_each(&mut add),
            Value::Array(items) => items.iter().filter_map(Value::as_str).for_each(&mut add),
            _ => {}
        }
        scopes
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        let mut scopes = Scopes::default();
        for scope in iter {
            scopes.insert(scope);
        }
        scopes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scopes_come_from_strings_or_arrays_and_ignore_unknown_names() {
        let spaced = Scopes::from_claim(&json!("openid video:create  video:join profile"));
        assert!(spaced.contains(Scope::Create) && spaced.contains(Scope::Join));
        assert!(!spaced.contains(Scope::Admin));
        let array = Scopes::from_claim(&json!(["video:admin", 3, "video:moderate"]));
        assert!(array.contains(Scope::Admin) && array.contains(Scope::Moderate));
        assert!(!array.contains(Scope::Create));
        assert_eq!(
            Scopes::from_claim(&json!({"video:create": true})),
            Scopes::default()
        );
        assert_eq!(
            Scopes::from_claim(&json!("VIDEO:CREATE")),
            Scopes::default()
        );
    }
}
