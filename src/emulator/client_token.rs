//! Client tokens as Vonage's signalling server checks them when a client connects
//! (`docs/vonage-wire.md` §5): `T1==` HMAC-SHA1 tokens and HS256 JWTs of a legacy project,
//! RS256 JWTs of an application. Signature, `scope`, the session (the one connected to, and
//! owned by the token's signer), expiry and role.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use jsonwebtoken::{Algorithm, Validation};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Map, Value};

use super::credentials::Verifiers;
use crate::video::session_id;

/// The roles client SDKs accept.
const ROLES: [&str; 4] = ["publisher", "subscriber", "moderator", "publisheronly"];

/// What a valid token grants the connecting client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Granted {
    /// Connection data, if the token carries any.
    pub(crate) data: Option<String>,
    /// The role, `publisher` if the token names none.
    pub(crate) role: String,
}

/// Why a client could not connect with a token (the message of the 403).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TokenError {
    /// Not a token of a known shape, or for no configured credential.
    #[error("Invalid token format")]
    Format,
    /// The signature does not verify.
    #[error("Invalid token signature")]
    Signature,
    /// `scope` is not `session.connect`.
    #[error("Invalid token scope")]
    Scope,
    /// The token is for another session, or the session is not its signer's.
    #[error("Token does not match the session")]
    Session,
    /// `exp` / `expire_time` has passed.
    #[error("Token expired")]
    Expired,
    /// An unknown role.
    #[error("Invalid role")]
    Role,
}

/// Validates `token` for a client connecting to `session_id` at `now_s`.
pub(crate) fn validate(
    token: &str,
    session_id: &str,
    verifiers: &Verifiers,
    legacy_secret: Option<&SecretString>,
    now_s: u64,
) -> Result<Granted, TokenError> {
    let (owner, claims) = if let Some(t1) = token.strip_prefix("T1==") {
        let (owner, secret) = verifiers
            .legacy
            .as_ref()
            .zip(legacy_secret)
            .ok_or(TokenError::Format)?;
        (owner.owner.clone(), t1_claims(t1, secret)?)
    } else {
        jwt_claims(token, verifiers)?
    };
    if let Some(scope) = claims.get("scope")
        && scope.as_str() != Some("session.connect")
    {
        return Err(TokenError::Scope);
    }
    let claimed = claims.get("session_id").and_then(Value::as_str);
    if claimed != Some(session_id) || !session_id::is_owned_by(session_id, &owner) {
        return Err(TokenError::Session);
    }
    let expiry = claims
        .get("exp")
        .or_else(|| claims.get("expire_time"))
        .and_then(number);
    match expiry {
        Some(exp) if exp <= now_s as f64 => return Err(TokenError::Expired),
        None => return Err(TokenError::Format),
        Some(_) => {}
    }
    let role = match claims.get("role") {
        None => "publisher".to_owned(),
        Some(role) => role
            .as_str()
            .filter(|role| ROLES.contains(role))
            .ok_or(TokenError::Role)?
            .to_owned(),
    };
    let data = claims
        .get("connection_data")
        .or_else(|| claims.get("data"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(Granted { data, role })
}

fn number(value: &Value) -> Option<f64> {
    value
        .as_f64()
        .or_else(|| value.as_str().and_then(|text| text.parse().ok()))
}

/// An HS256 JWT of the legacy project or an RS256 JWT of the application: the owner and claims.
fn jwt_claims(
    token: &str,
    verifiers: &Verifiers,
) -> Result<(String, Map<String, Value>), TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Format)?;
    let verifier = match header.alg {
        Algorithm::HS256 => verifiers.legacy.as_ref(),
        Algorithm::RS256 => verifiers.application.as_ref(),
        _ => None,
    }
    .ok_or(TokenError::Format)?;
    let mut validation = Validation::new(header.alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &verifier.key, &validation)
        .map_err(|error| match error.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::Signature,
            _ => TokenError::Format,
        })?
        .claims;
    let issuer = match header.alg {
        Algorithm::HS256 => claims.get("iss"),
        _ => claims.get("application_id"),
    };
    if issuer.and_then(Value::as_str) != Some(verifier.owner.as_str()) {
        return Err(TokenError::Signature);
    }
    Ok((verifier.owner.clone(), claims))
}

/// `T1==` + base64(`partner_id=K&sig=HEX:DATA`), HMAC-SHA1 over the raw DATA bytes.
fn t1_claims(encoded: &str, secret: &SecretString) -> Result<Map<String, Value>, TokenError> {
    let raw = STANDARD
        .decode(encoded)
        .or_else(|_| URL_SAFE.decode(encoded))
        .map_err(|_| TokenError::Format)?;
    let text = String::from_utf8(raw).map_err(|_| TokenError::Format)?;
    let (head, data) = text.split_once(':').ok_or(TokenError::Format)?;
    let signature = form_urlencoded::parse(head.as_bytes())
        .find(|(name, _)| name == "sig")
        .map(|(_, value)| value.into_owned())
        .ok_or(TokenError::Format)?;
    let key = aws_lc_rs::hmac::Key::new(
        aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        secret.expose_secret().as_bytes(),
    );
    let expected = aws_lc_rs::hmac::sign(&key, data.as_bytes());
    let expected = hex(expected.as_ref());
    // Both are public-length hex; a constant-time compare is still cheap.
    if aws_lc_rs::constant_time::verify_slices_are_equal(
        expected.as_bytes(),
        signature.to_ascii_lowercase().as_bytes(),
    )
    .is_err()
    {
        return Err(TokenError::Signature);
    }
    Ok(form_urlencoded::parse(data.as_bytes())
        .map(|(name, value)| (name.into_owned(), Value::String(value.into_owned())))
        .collect())
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::credentials::Verifier;
    use crate::video::session_id::NewSessionId;
    use jsonwebtoken::{DecodingKey, EncodingKey, Header};
    use serde_json::json;

    const NOW: u64 = 1_780_000_000;

    fn verifiers() -> Verifiers {
        Verifiers {
            legacy: Some(Verifier {
                owner: "123456".into(),
                key: DecodingKey::from_secret(b"secret"),
            }),
            application: None,
        }
    }

    fn session(owner: &str) -> String {
        session_id::encode(&NewSessionId {
            owner,
            location: "",
            created_ms: 1,
            random: "abcdefghijklmnopqrstuvwx",
            relayed: false,
        })
    }

    fn jwt(claims: Value, secret: &[u8]) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    #[test]
    fn a_legacy_jwt_is_checked_like_the_signalling_server() {
        let sid = session("123456");
        let good = json!({"iss": "123456", "ist": "project", "exp": NOW + 60, "session_id": sid,
            "scope": "session.connect", "role": "moderator", "connection_data": "{\"sub\":\"u1\"}"});
        let granted = validate(&jwt(good.clone(), b"secret"), &sid, &verifiers(), None, NOW);
        assert_eq!(
            granted,
            Ok(Granted {
                data: Some("{\"sub\":\"u1\"}".into()),
                role: "moderator".into()
            })
        );
        let cases = [
            (jwt(good.clone(), b"other"), TokenError::Signature),
            (
                jwt(
                    json!({"iss": "123456", "exp": NOW - 1, "session_id": sid}),
                    b"secret",
                ),
                TokenError::Expired,
            ),
            (
                jwt(
                    json!({"iss": "123456", "exp": NOW + 9, "session_id": session("999")}),
                    b"secret",
                ),
                TokenError::Session,
            ),
            (
                jwt(
                    json!({"iss": "123456", "exp": NOW + 9, "session_id": sid, "role": "admin"}),
                    b"secret",
                ),
                TokenError::Role,
            ),
            (
                jwt(
                    json!({"iss": "123456", "exp": NOW + 9, "session_id": sid, "scope": "x"}),
                    b"secret",
                ),
                TokenError::Scope,
            ),
            ("garbage".into(), TokenError::Format),
        ];
        for (token, expected) in cases {
            assert_eq!(
                validate(&token, &sid, &verifiers(), None, NOW),
                Err(expected)
            );
        }
        let other_session = session("123456").replace('a', "b");
        assert!(
            validate(
                &jwt(good, b"secret"),
                &other_session,
                &verifiers(),
                None,
                NOW
            )
            .is_err()
        );
    }

    #[test]
    fn a_t1_token_verifies_over_the_raw_data() {
        let sid = session("123456");
        let data = format!(
            "session_id={sid}&create_time={NOW}&expire_time={}&role=subscriber&nonce=1&connection_data=hi%20there",
            NOW + 60
        );
        let key =
            aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, b"secret");
        let sig = hex(aws_lc_rs::hmac::sign(&key, data.as_bytes()).as_ref());
        let token = format!(
            "T1=={}",
            STANDARD.encode(format!("partner_id=123456&sig={sig}:{data}"))
        );
        let secret = SecretString::from("secret");
        let granted = validate(&token, &sid, &verifiers(), Some(&secret), NOW).unwrap();
        assert_eq!(granted.role, "subscriber");
        assert_eq!(granted.data.as_deref(), Some("hi there"));
        let wrong = SecretString::from("wrong");
        assert_eq!(
            validate(&token, &sid, &verifiers(), Some(&wrong), NOW),
            Err(TokenError::Signature)
        );
    }
}
