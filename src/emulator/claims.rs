//! The REST-auth JWT claim rules of the real API (contract §1.3, §2.2) and its 403 messages.
//! Pure functions over decoded claims and a clock; signatures are checked in `auth`.

use serde_json::{Map, Value};

/// Clock skew tolerated on `iat`, in seconds.
const IAT_SKEW_S: i64 = 5;
/// The longest legacy token lifetime (`exp - iat`), in seconds.
const MAX_LIFETIME_S: i64 = 300;

/// Why a call was not authenticated; the message is the 403 body's `message`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AuthError {
    /// No auth header the emulator is configured for.
    #[error("No suitable authentication found")]
    Missing,
    /// Not three base64url JSON parts, or a part that is not a JSON object.
    #[error("Invalid token format")]
    Format,
    /// The `alg` header is not the one pinned for this credential kind.
    #[error("Invalid signature algorithm")]
    Algorithm,
    /// The signature does not verify with the configured key.
    #[error("Invalid signature")]
    Signature,
    /// Legacy: `ist` is missing or not `"project"`.
    #[error("Invalid issuer type")]
    IssuerType,
    /// Legacy: `iss` is missing or not a string.
    #[error("Invalid issuer format")]
    IssuerFormat,
    /// Legacy: `iss` is not the configured API key.
    #[error("Invalid issuer")]
    Issuer,
    /// Application: `application_id` is missing or not the configured application.
    #[error("Invalid application id")]
    Application,
    /// Legacy: `iat` is missing or not a number.
    #[error("Invalid issued time")]
    IssuedAt,
    /// Legacy: `iat` is later than now (plus a little skew).
    #[error("issued time cannot be greater than current time")]
    IssuedInFuture,
    /// `exp` is missing (legacy) or not a number.
    #[error("Invalid expiration time")]
    Expiry,
    /// `exp` is not in the future.
    #[error("Token expired")]
    Expired,
    /// Legacy: `exp - iat` is more than 5 minutes.
    #[error("expiration time cannot be more than 5 minutes after issued time")]
    Lifetime,
}

/// Legacy identity: `ist == "project"` and `iss` is the API key, as a string.
pub(crate) fn legacy_identity(claims: &Map<String, Value>, api_key: &str) -> Result<(), AuthError> {
    if claims.get("ist").and_then(Value::as_str) != Some("project") {
        return Err(AuthError::IssuerType);
    }
    let Some(issuer) = claims.get("iss").and_then(Value::as_str) else {
        return Err(AuthError::IssuerFormat);
    };
    if issuer != api_key {
        return Err(AuthError::Issuer);
    }
    Ok(())
}

/// Legacy times: `iat` not in the future, `exp` in the future, at most 5 minutes apart.
pub(crate) fn legacy_times(claims: &Map<String, Value>, now_s: i64) -> Result<(), AuthError> {
    let issued = seconds(claims, "iat").ok_or(AuthError::IssuedAt)?;
    let expires = seconds(claims, "exp").ok_or(AuthError::Expiry)?;
    if issued > now_s.saturating_add(IAT_SKEW_S) {
        return Err(AuthError::IssuedInFuture);
    }
    if expires <= now_s {
        return Err(AuthError::Expired);
    }
    if expires.saturating_sub(issued) > MAX_LIFETIME_S {
        return Err(AuthError::Lifetime);
    }
    Ok(())
}

/// Application identity: `application_id` is the configured application.
pub(crate) fn application_identity(
    claims: &Map<String, Value>,
    application_id: &str,
) -> Result<(), AuthError> {
    match claims.get("application_id").and_then(Value::as_str) {
        Some(id) if id == application_id => Ok(()),
        _ => Err(AuthError::Application),
    }
}

/// Application expiry: checked only when `exp` is present (Java's SDK omits it).
pub(crate) fn application_expiry(claims: &Map<String, Value>, now_s: i64) -> Result<(), AuthError> {
    if !claims.contains_key("exp") {
        return Ok(());
    }
    match seconds(claims, "exp") {
        None => Err(AuthError::Expiry),
        Some(expires) if expires <= now_s => Err(AuthError::Expired),
        Some(_) => Ok(()),
    }
}

/// A NumericDate claim in whole seconds; fractions are truncated, out-of-range saturates.
fn seconds(claims: &Map<String, Value>, name: &str) -> Option<i64> {
    let value = claims.get(name)?;
    value
        .as_i64()
        .or_else(|| value.as_f64().map(|float| float as i64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_739_538_894;

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn legacy_identity_requires_project_type_and_the_api_key_as_string() {
        let cases = [
            (json!({"ist": "project", "iss": "123456"}), Ok(())),
            (json!({"iss": "123456"}), Err(AuthError::IssuerType)),
            (
                json!({"ist": "account", "iss": "123456"}),
                Err(AuthError::IssuerType),
            ),
            (json!({"ist": "project"}), Err(AuthError::IssuerFormat)),
            (
                json!({"ist": "project", "iss": 123456}),
                Err(AuthError::IssuerFormat),
            ),
            (
                json!({"ist": "project", "iss": "654321"}),
                Err(AuthError::Issuer),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                legacy_identity(&claims(input.clone()), "123456"),
                expected,
                "{input}"
            );
        }
    }

    #[test]
    fn legacy_times_follow_the_real_rules() {
        let cases = [
            (json!({"iat": NOW, "exp": NOW + 300}), Ok(())),
            (json!({"iat": NOW + 5, "exp": NOW + 180}), Ok(())),
            (json!({"iat": NOW as f64 + 0.5, "exp": NOW + 180}), Ok(())),
            (json!({"exp": NOW + 180}), Err(AuthError::IssuedAt)),
            (
                json!({"iat": "now", "exp": NOW + 180}),
                Err(AuthError::IssuedAt),
            ),
            (json!({"iat": NOW}), Err(AuthError::Expiry)),
            (
                json!({"iat": NOW + 60, "exp": NOW + 180}),
                Err(AuthError::IssuedInFuture),
            ),
            (
                json!({"iat": NOW - 400, "exp": NOW - 100}),
                Err(AuthError::Expired),
            ),
            (
                json!({"iat": NOW - 10, "exp": NOW}),
                Err(AuthError::Expired),
            ),
            (
                json!({"iat": NOW, "exp": NOW + 301}),
                Err(AuthError::Lifetime),
            ),
            (
                json!({"iat": i64::MIN, "exp": i64::MAX}),
                Err(AuthError::Lifetime),
            ),
            (
                json!({"iat": -1e300, "exp": 1e300}),
                Err(AuthError::Lifetime),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                legacy_times(&claims(input.clone()), NOW),
                expected,
                "{input}"
            );
        }
    }

    #[test]
    fn application_checks_id_and_only_a_present_exp() {
        let id = "29f760f8-7ce1-46c9-ade3-f2dedee4ed5f";
        let ok = claims(json!({"application_id": id, "iat": NOW, "ist": "project", "iss": "x"}));
        assert_eq!(application_identity(&ok, id), Ok(()));
        assert_eq!(application_expiry(&ok, NOW), Ok(()));
        assert_eq!(
            application_identity(&ok, "other"),
            Err(AuthError::Application)
        );
        assert_eq!(
            application_identity(&claims(json!({})), id),
            Err(AuthError::Application)
        );
        let expired = claims(json!({"exp": NOW - 1}));
        assert_eq!(application_expiry(&expired, NOW), Err(AuthError::Expired));
        let garbled = claims(json!({"exp": "soon"}));
        assert_eq!(application_expiry(&garbled, NOW), Err(AuthError::Expiry));
        let live = claims(json!({"exp": NOW + 900}));
        assert_eq!(application_expiry(&live, NOW), Ok(()));
    }
}
