//! Scopes: what a caller may do (README "Who may call"), read from a bearer token's `scope`/`scp` claims or
//! granted to anonymous callers by config. A small bit set, cheap to copy into every `Caller`.

use serde_json::Value;

pub use crate::vocab::Scope;

/// A set of scopes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Scopes(u8);

impl Scopes {
    /// True when `scope` is in the set.
    pub(crate) const fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Every scope in either set.
    pub(crate) const fn union(self, other: Scopes) -> Self {
        Scopes(self.0 | other.0)
    }

    /// Adds `scope`.
    pub(crate) fn insert(&mut self, scope: Scope) {
        self.0 |= scope.bit();
    }

    /// Scopes from a claim value: a space-separated string (`scope`, RFC 8693) or an array of
    /// strings (`scp`). Unknown names are ignored; other shapes give nothing.
    pub(crate) fn from_claim(value: &Value) -> Self {
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
