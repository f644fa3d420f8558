//! Verifying one secure callback (docs/callbacks.md, "The receiver"): everything that needs no
//! store, in this order: a bearer token at all, its header's algorithm (HS256 only, before any
//! key is used), the secret of the payload's kind, the HMAC signature, `iss`, `payload_hash`
//! against the exact bytes received (constant time), the owner (`application_id` with
//! application credentials, `api_key` with a legacy project, and the body's own owner field),
//! then the `iat` window. The `jti` is claimed by the receiver only after all of these pass, so
//! a forged callback cannot use up a `jti`.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use serde_json::Value;

use super::event::{Callback, CallbackKind};

/// Why a callback was refused, as the log and the metric's `outcome` say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No `Authorization` header.
    Unsigned,
    /// An `Authorization` that is not `Bearer <JWT>`, or a JWT that cannot be read.
    Malformed,
    /// The header names an algorithm other than HS256 (`none`, RS256, …).
    Algorithm,
    /// No secret is configured for the callback's kind.
    NotConfigured,
    /// The signature does not verify with the kind's secret.
    Signature,
    /// `iss` is not `"Vonage"`.
    Issuer,
    /// `payload_hash` is missing or not the SHA-256 of the body.
    PayloadHash,
    /// The callback is for another application or project.
    Owner,
    /// `iat` is missing, older than `callbacks.max_age_seconds`, or too far in the future.
    Age,
    /// No `jti`.
    NoJti,
}

impl Refusal {
    /// The metric label and log reason.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Unsigned => "unsigned",
            Self::Malformed => "malformed",
            Self::Algorithm => "algorithm",
            Self::NotConfigured => "not_configured",
            Self::Signature => "signature",
            Self::Issuer => "issuer",
            Self::PayloadHash => "payload_hash",
            Self::Owner => "owner",
            Self::Age => "age",
            Self::NoJti => "no_jti",
        }
    }
}

/// Whose callbacks these are: our credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Owner {
    /// A Vonage application: `application_id` must be its ID.
    Application(String),
    /// A legacy project: `api_key` must be its API key.
    Legacy(String),
}

impl Owner {
    fn id(&self) -> &str {
        match self {
            Self::Application(id) | Self::Legacy(id) => id,
        }
    }
}

/// What verification needs; built once from the config.
pub(crate) struct Verifier {
    session_secret: Option<DecodingKey>,
    archive_secret: Option<DecodingKey>,
    owner: Owner,
    max_age_seconds: u64,
    clock_skew_seconds: u64,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("session_secret", &self.session_secret.is_some())
            .field("archive_secret", &self.archive_secret.is_some())
            .field("owner", &self.owner)
            .field("max_age_seconds", &self.max_age_seconds)
            .finish_non_exhaustive()
    }
}

/// The verified token's claims the receiver still needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verified {
    /// The token's ID, to claim once.
    pub(crate) jti: String,
    /// When Vonage signed it, epoch seconds.
    pub(crate) iat: u64,
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    iat: Option<Value>,
    #[serde(default)]
    jti: Option<String>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    payload_hash: Option<String>,
    #[serde(default)]
    api_key: Option<Value>,
    #[serde(default)]
    application_id: Option<Value>,
}

fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

fn lower_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    out
}

impl Verifier {
    /// A verifier for callbacks to `owner`, with the per-kind secrets.
    pub(crate) fn new(
        session_secret: Option<&SecretString>,
        archive_secret: Option<&SecretString>,
        owner: Owner,
        max_age_seconds: u64,
        clock_skew_seconds: u64,
    ) -> Self {
        let key = |secret: Option<&SecretString>| {
            secret.map(|s| DecodingKey::from_secret(s.expose_secret().as_bytes()))
        };
        Self {
            session_secret: key(session_secret),
            archive_secret: key(archive_secret),
            owner,
            max_age_seconds,
            clock_skew_seconds,
        }
    }

    /// True when the body names another owner than ours (checked for unsigned callbacks too).
    pub(crate) fn foreign(&self, callback: &Callback) -> bool {
        callback
            .owner()
            .is_some_and(|owner| owner != self.owner.id())
    }

    /// Verifies `authorization` (the header's value, if any) for `callback` parsed from
    /// `body`, at `now` (epoch seconds).
    pub(crate) fn verify(
        &self,
        authorization: Option<&[u8]>,
        body: &[u8],
        callback: &Callback,
        now: u64,
    ) -> Result<Verified, Refusal> {
        let Some(authorization) = authorization else {
            return Err(Refusal::Unsigned);
        };
        let token = std::str::from_utf8(authorization)
            .ok()
            .and_then(|value| {
                let (scheme, token) = value.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|token| !token.is_empty())
            .ok_or(Refusal::Malformed)?;
        // The algorithm is checked before any key is touched: `none`, RS256 with the secret as
        // a "public key", and every other confusion are refused here.
        let header = jsonwebtoken::decode_header(token).map_err(|_| Refusal::Malformed)?;
        if header.alg != Algorithm::HS256 {
            return Err(Refusal::Algorithm);
        }
        let key = match callback.kind() {
            CallbackKind::Session => self.session_secret.as_ref(),
            CallbackKind::Archive => self.archive_secret.as_ref(),
        }
        .ok_or(Refusal::NotConfigured)?;
        let mut validation = Validation::new(Algorithm::HS256);
        // Vonage sends no `exp`: the age of `iat` is checked below instead.
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map_err(|error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => Refusal::Signature,
                _ => Refusal::Malformed,
            })?
            .claims;
        if claims.iss.as_deref() != Some("Vonage") {
            return Err(Refusal::Issuer);
        }
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body);
        let expected = lower_hex(digest.as_ref());
        let hash = claims.payload_hash.ok_or(Refusal::PayloadHash)?;
        aws_lc_rs::constant_time::verify_slices_are_equal(hash.as_bytes(), expected.as_bytes())
            .map_err(|_| Refusal::PayloadHash)?;
        let claimed = match &self.owner {
            Owner::Application(_) => text(claims.application_id.as_ref()),
            Owner::Legacy(_) => text(claims.api_key.as_ref()),
        };
        if claimed.as_deref() != Some(self.owner.id()) || self.foreign(callback) {
            return Err(Refusal::Owner);
        }
        let iat = match claims.iat {
            Some(Value::Number(number)) => number
                .as_u64()
                .or_else(|| number.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
            _ => None,
        }
        .ok_or(Refusal::Age)?;
        if iat > now.saturating_add(self.clock_skew_seconds)
            || now.saturating_sub(iat) > self.max_age_seconds
        {
            return Err(Refusal::Age);
        }
        let jti = claims
            .jti
            .filter(|jti| !jti.is_empty() && jti.len() <= 256)
            .ok_or(Refusal::NoJti)?;
        Ok(Verified { jti, iat })
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use super::*;
    use crate::callbacks::event::parse;

    const SECRET: &str = "session-secret-0123456789";
    const ARCHIVE: &str = "archive-secret-0123456789";
    const NOW: u64 = 1_800_000_000;
    const BODY: &[u8] = br#"{"sessionId":"2_MX4","applicationId":"app","event":"connectionCreated","timestamp":1,"connection":{"id":"c"}}"#;

    fn verifier() -> Verifier {
        Verifier::new(
            Some(&SecretString::from(SECRET)),
            Some(&SecretString::from(ARCHIVE)),
            Owner::Application("app".into()),
            90_000,
            60,
        )
    }

    fn claims(body: &[u8]) -> Value {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body);
        json!({"iat": NOW, "jti": "j-1", "iss": "Vonage", "payload_hash": lower_hex(digest.as_ref()),
               "api_key": "k", "application_id": "app"})
    }

    fn sign(claims: &Value, secret: &str) -> String {
        let jwt = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap();
        format!("Bearer {jwt}")
    }

    fn check(authorization: &str, body: &[u8]) -> Result<Verified, Refusal> {
        let callback = parse(body).unwrap();
        verifier().verify(Some(authorization.as_bytes()), body, &callback, NOW)
    }

    #[test]
    fn a_well_signed_callback_passes_and_each_claim_is_checked() {
        let good = claims(BODY);
        assert_eq!(
            check(&sign(&good, SECRET), BODY),
            Ok(Verified {
                jti: "j-1".into(),
                iat: NOW
            })
        );
        assert_eq!(
            check(&sign(&good, ARCHIVE), BODY),
            Err(Refusal::Signature),
            "the other kind's secret"
        );
        let with = |key: &str, value: Value| {
            let mut claims = good.clone();
            claims[key] = value;
            sign(&claims, SECRET)
        };
        assert_eq!(
            check(&with("iss", json!("Vonag")), BODY),
            Err(Refusal::Issuer)
        );
        assert_eq!(
            check(&with("application_id", json!("other")), BODY),
            Err(Refusal::Owner)
        );
        let upper = good["payload_hash"].as_str().unwrap().to_uppercase();
        assert_eq!(
            check(&with("payload_hash", json!(upper)), BODY),
            Err(Refusal::PayloadHash)
        );
        assert_eq!(
            check(&with("iat", json!(NOW - 90_001)), BODY),
            Err(Refusal::Age)
        );
        assert_eq!(
            check(&with("iat", json!(NOW + 61)), BODY),
            Err(Refusal::Age)
        );
        assert!(check(&with("iat", json!(NOW + 60)), BODY).is_ok());
        assert_eq!(check(&with("jti", json!("")), BODY), Err(Refusal::NoJti));
        let tampered = String::from_utf8(BODY.to_vec())
            .unwrap()
            .replace("\"c\"", "\"d\"");
        assert_eq!(
            check(&sign(&good, SECRET), tampered.as_bytes()),
            Err(Refusal::PayloadHash)
        );
        assert_eq!(check("Basic abc", BODY), Err(Refusal::Malformed));
        let callback = parse(BODY).unwrap();
        assert_eq!(
            verifier().verify(None, BODY, &callback, NOW),
            Err(Refusal::Unsigned)
        );
    }

    #[test]
    fn algorithms_other_than_hs256_are_refused_before_the_key_is_used() {
        use base64::Engine as _;
        let b64 = |v: &Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
        };
        let claims = claims(BODY);
        let none = format!(
            "Bearer {}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT"})),
            b64(&claims)
        );
        assert!(matches!(
            check(&none, BODY),
            Err(Refusal::Algorithm | Refusal::Malformed)
        ));
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert_eq!(
            check(&format!("Bearer {hs512}"), BODY),
            Err(Refusal::Algorithm)
        );
        let rsa = EncodingKey::from_rsa_pem(
            include_str!("../../tests/fixtures/application_private_key.pem").as_bytes(),
        )
        .unwrap();
        let rs256 = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &rsa).unwrap();
        assert_eq!(
            check(&format!("Bearer {rs256}"), BODY),
            Err(Refusal::Algorithm)
        );
    }

    #[test]
    fn legacy_projects_are_matched_by_api_key_and_the_body_owner_must_be_ours() {
        let verifier = Verifier::new(
            Some(&SecretString::from(SECRET)),
            None,
            Owner::Legacy("123456".into()),
            90_000,
            60,
        );
        let body = br#"{"sessionId":"1_MX4","projectId":123456,"event":"x","timestamp":1}"#;
        let mut good = claims(body);
        good["api_key"] = json!(123456);
        good["application_id"] = json!("");
        let callback = parse(body).unwrap();
        let auth = sign(&good, SECRET);
        assert!(
            verifier
                .verify(Some(auth.as_bytes()), body, &callback, NOW)
                .is_ok()
        );
        let foreign = br#"{"sessionId":"1_MX4","projectId":654321,"event":"x","timestamp":1}"#;
        let good = {
            let mut c = claims(foreign);
            c["api_key"] = json!("123456");
            c
        };
        let auth = sign(&good, SECRET);
        let callback = parse(foreign).unwrap();
        assert_eq!(
            verifier.verify(Some(auth.as_bytes()), foreign, &callback, NOW),
            Err(Refusal::Owner)
        );
        let archive = br#"{"id":"a","sessionId":"1_MX4","projectId":123456,"status":"stopped"}"#;
        let callback = parse(archive).unwrap();
        let auth = sign(&claims(archive), SECRET);
        assert_eq!(
            verifier.verify(Some(auth.as_bytes()), archive, &callback, NOW),
            Err(Refusal::NotConfigured)
        );
    }
}
