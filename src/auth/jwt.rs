//! Bearer-token verification with `jsonwebtoken`: keys from a JWKS URL (see `jwks`), a PEM
//! public key file, or an HS256 secret; `iss`, `aud`, `exp` and `sub` required, `nbf` checked,
//! a configured leeway. Every key carries the algorithms it may verify, pinned to its type by
//! config (`auth.rsa_algorithms`, …), so `alg: none` and HS/RS confusion cannot pass: a token
//! whose header names another algorithm is refused before any signature check.

use std::sync::Arc;

use jsonwebtoken::{DecodingKey, decode, decode_header};
use serde_json::{Map, Value};

use crate::auth::jwks::JwksCache;
use crate::auth::keys::{KeyRules, VerifyKey};
use crate::auth::scope::Scopes;
use crate::config::{AuthConfig, ConfigError, KeyType};

/// Tokens longer than this are refused unread.
const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Longest accepted `sub` (it becomes a rate-limit key and connection data).
const MAX_SUBJECT_CHARS: usize = 256;

/// Why a token was refused. Logged, never shown to the caller.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Rejection {
    /// Longer than 8 KiB.
    #[error("token longer than 8 KiB")]
    TooLong,
    /// Not a JWT, or a header we cannot read (includes `alg: none`).
    #[error("malformed token: {0}")]
    Malformed(jsonwebtoken::errors::Error),
    /// No key with the token's `kid`, even after a JWKS refresh.
    #[error("no verification key for kid {0:?}")]
    UnknownKey(Option<String>),
    /// Signature, algorithm, issuer, audience, expiry or not-before check failed.
    #[error("token failed verification: {0:?}")]
    Invalid(jsonwebtoken::errors::Error),
    /// A claim we need is absent or unusable.
    #[error("claim {0} missing or unusable")]
    Claim(&'static str),
    /// The header asks for something we do not implement: a `crit` extension (RFC 7515
    /// §4.1.11: must be refused unless understood; we understand none) or `b64: false`.
    #[error("unsupported header parameter {0}")]
    Unsupported(&'static str),
}

/// What a verified token says about its bearer.
#[derive(Debug, Clone)]
pub(crate) struct VerifiedToken {
    /// `sub`.
    pub(crate) subject: String,
    /// The display name claim (`auth.name_claim`), if a string.
    pub(crate) name: Option<String>,
    /// Scopes from `auth.scope_claims`.
    pub(crate) scopes: Scopes,
}

enum KeySource {
    Static(Arc<VerifyKey>),
    Jwks(JwksCache),
}

/// Verifies bearer tokens.
pub(crate) struct JwtVerifier {
    keys: KeySource,
    issuer: String,
    scope_claims: Vec<String>,
    name_claim: String,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = match self.keys {
            KeySource::Static(_) => "static",
            KeySource::Jwks(_) => "jwks",
        };
        f.debug_struct("JwtVerifier")
            .field("keys", &keys)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// The verifier of a validated `[auth]` with `mode = "jwt"` (exactly one key source set).
    pub(crate) fn new(auth: &AuthConfig) -> Result<Self, ConfigError> {
        let rules = KeyRules::new(auth);
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            key: key.to_owned(),
            message: message.to_owned(),
        };
        let keys = if let Some(url) = &auth.jwks {
            KeySource::Jwks(
                JwksCache::new(auth, url.clone(), rules)
                    .map_err(|e| invalid("auth.jwks_url", &format!("HTTP client: {e}")))?,
            )
        } else if let Some(public) = &auth.public_key {
            let key = rules
                .verify_key(public.key.clone(), public.kind, None)
                .ok_or_else(|| {
                    invalid(
                        "auth.public_key_file",
                        "no algorithm is allowed for this key type (see auth.*_algorithms)",
                    )
                })?;
            KeySource::Static(Arc::new(key))
        } else if let Some(secret) = &auth.hs256_secret {
            let bytes = secrecy::ExposeSecret::expose_secret(secret).as_bytes();
            let key = rules
                .verify_key(DecodingKey::from_secret(bytes), KeyType::Hmac, None)
                .ok_or_else(|| invalid("auth.hmac_algorithms", "must not be empty"))?;
            KeySource::Static(Arc::new(key))
        } else {
            return Err(invalid(
                "auth.jwks_url",
                "auth.mode = \"jwt\" needs a key source: auth.jwks_url, auth.public_key_file or VONAGE_SESSIONS_AUTH_HS256_SECRET",
            ));
        };
        Ok(Self {
            keys,
            issuer: auth.issuer.clone(),
            scope_claims: auth.scope_claims.clone(),
            name_claim: auth.name_claim.clone(),
        })
    }

    /// Starts fetching the JWKS in the background, so the first caller does not wait for it.
    pub(crate) fn prefetch(&self) {
        if let KeySource::Jwks(jwks) = &self.keys {
            jwks.prefetch();
        }
    }

    /// Verifies `token` and reads its subject, name and scopes.
    pub(crate) async fn verify(&self, token: &str) -> Result<VerifiedToken, Rejection> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Rejection::TooLong);
        }
        let header = decode_header(token).map_err(Rejection::Malformed)?;
        if header.crit.is_some() {
            return Err(Rejection::Unsupported("crit"));
        }
        if header
            .extras
            .inner()
            .get("b64")
            .is_some_and(|b64| *b64 != Value::Bool(true))
        {
            return Err(Rejection::Unsupported("b64"));
        }
        let key = match &self.keys {
            KeySource::Static(key) => key.clone(),
            KeySource::Jwks(jwks) => jwks
                .key_for(header.kid.as_deref())
                .await
                .ok_or(Rejection::UnknownKey(header.kid))?,
        };
        let claims = decode::<Map<String, Value>>(token, &key.key, &key.validation)
            .map_err(Rejection::Invalid)?
            .claims;
        // `jsonwebtoken` also accepts an array of issuers containing ours: one string only.
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(Rejection::Claim("iss"));
        }
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|sub| !sub.is_empty() && sub.chars().count() <= MAX_SUBJECT_CHARS)
            .ok_or(Rejection::Claim("sub"))?
            .to_owned();
        let name = claims
            .get(&self.name_claim)
            .and_then(Value::as_str)
            .map(str::to_owned);
        let scopes = self
            .scope_claims
            .iter()
            .filter_map(|claim| claims.get(claim))
            .map(Scopes::from_claim)
            .fold(Scopes::default(), Scopes::union);
        Ok(VerifiedToken {
            subject,
            name,
            scopes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Scope;
    use crate::config::{Config, Sources};
    use figment::providers::{Format as _, Toml};
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode, get_current_timestamp};
    use serde_json::json;
    use std::path::PathBuf;

    const SECRET: &str = "an-hs256-test-secret-of-at-least-32-bytes!";
    const RSA_PRIVATE: &str = include_str!("../../tests/fixtures/application_private_key.pem");
    const RSA_PUBLIC: &str = include_str!("../../tests/fixtures/application_public_key.pem");

    fn auth(extra: &str, secret: Option<&str>) -> AuthConfig {
        let env = move |name: &str| {
            (name == "VONAGE_SESSIONS_AUTH_HS256_SECRET")
                .then(|| secret.map(str::to_owned))
                .flatten()
        };
        let sources = Sources {
            config_dir: PathBuf::from("config"),
            env: &env,
            process_env_overrides: false,
        };
        let figment = Config::figment(&sources).unwrap().merge(Toml::string(&format!(
            "[auth]\nmode = \"jwt\"\nissuer = \"https://idp.test\"\naudience = \"vonage-sessions\"\n{extra}"
        )));
        Config::from_figment(figment, &env).unwrap().auth
    }

    fn hs256(claims: &Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    fn good_claims() -> Value {
        let now = get_current_timestamp();
        json!({"iss": "https://idp.test", "aud": "vonage-sessions", "sub": "u1", "exp": now + 300,
               "name": "Ada", "scope": "video:join", "scp": ["video:create"]})
    }

    #[tokio::test]
    async fn a_good_hs256_token_gives_subject_name_and_scopes_from_both_claims() {
        let verifier = JwtVerifier::new(&auth("", Some(SECRET))).unwrap();
        let verified = verifier.verify(&hs256(&good_claims())).await.unwrap();
        assert_eq!(verified.subject, "u1");
        assert_eq!(verified.name.as_deref(), Some("Ada"));
        assert!(verified.scopes.contains(Scope::Join) && verified.scopes.contains(Scope::Create));
        assert!(!verified.scopes.contains(Scope::Admin));
    }

    #[tokio::test]
    async fn every_claim_check_refuses() {
        let verifier = JwtVerifier::new(&auth("", Some(SECRET))).unwrap();
        let now = get_current_timestamp();
        let with = |patch: Value| {
            let mut claims = good_claims();
            for (k, v) in patch.as_object().unwrap() {
                if v.is_null() {
                    claims.as_object_mut().unwrap().remove(k);
                } else {
                    claims[k] = v.clone();
                }
            }
            hs256(&claims)
        };
        let cases = [
            ("wrong issuer", with(json!({"iss": "https://evil.test"}))),
            ("wrong audience", with(json!({"aud": "other"}))),
            ("expired past leeway", with(json!({"exp": now - 61 - 5}))),
            ("not yet valid", with(json!({"nbf": now + 300}))),
            ("no exp", with(json!({"exp": null}))),
            ("no sub", with(json!({"sub": null}))),
            ("numeric sub", with(json!({"sub": 7}))),
            ("empty sub", with(json!({"sub": ""}))),
            ("huge token", "a".repeat(9000)),
            (
                "issuer in an array",
                with(json!({"iss": ["https://idp.test", "https://evil.test"]})),
            ),
            (
                "issuer array of ours only",
                with(json!({"iss": ["https://idp.test"]})),
            ),
            ("garbage", "not.a.jwt".to_owned()),
        ];
        for (name, token) in cases {
            assert!(verifier.verify(&token).await.is_err(), "{name} must fail");
        }
        // Within the leeway is fine.
        assert!(
            verifier
                .verify(&with(json!({"exp": now - 30})))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn crit_headers_and_unencoded_payloads_are_refused() {
        let verifier = JwtVerifier::new(&auth("", Some(SECRET))).unwrap();
        let signed = |header: Header| {
            encode(
                &header,
                &good_claims(),
                &EncodingKey::from_secret(SECRET.as_bytes()),
            )
            .unwrap()
        };
        let mut crit = Header::new(Algorithm::HS256);
        crit.crit = Some(vec!["urn:example:unknown".to_owned()]);
        crit.extras.insert("urn:example:unknown", true);
        assert!(matches!(
            verifier.verify(&signed(crit)).await,
            Err(Rejection::Unsupported("crit"))
        ));
        let mut b64 = Header::new(Algorithm::HS256);
        b64.crit = Some(vec!["b64".to_owned()]);
        b64.extras.insert("b64", false);
        assert!(verifier.verify(&signed(b64)).await.is_err());
        let mut bare_b64 = Header::new(Algorithm::HS256);
        bare_b64.extras.insert("b64", false);
        assert!(matches!(
            verifier.verify(&signed(bare_b64)).await,
            Err(Rejection::Unsupported("b64"))
        ));
        let mut other = Header::new(Algorithm::HS256);
        other.extras.insert("x-custom", "fine");
        assert!(verifier.verify(&signed(other)).await.is_ok());
    }

    #[tokio::test]
    async fn algorithms_are_pinned_to_the_key_type() {
        // An RSA public key file: an HS256 token "signed" with the public key bytes is refused.
        let dir = std::env::temp_dir().join(format!("jwt-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("idp.pem");
        std::fs::write(&file, RSA_PUBLIC).unwrap();
        let verifier = JwtVerifier::new(&auth(
            &format!("public_key_file = {:?}", file.display().to_string()),
            None,
        ))
        .unwrap();
        let claims = good_claims();
        let rs256 = encode(
            &Header::new(Algorithm::RS256),
            &claims,
            &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(),
        )
        .unwrap();
        assert!(verifier.verify(&rs256).await.is_ok());
        let confused = encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(RSA_PUBLIC.as_bytes()),
        )
        .unwrap();
        assert!(matches!(
            verifier.verify(&confused).await,
            Err(Rejection::Invalid(_))
        ));
        let payload = rs256.split('.').nth(1).unwrap();
        let none_header = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            br#"{"alg":"none","typ":"JWT"}"#,
        );
        let unsigned = format!("{none_header}.{payload}.");
        assert!(matches!(
            verifier.verify(&unsigned).await,
            Err(Rejection::Malformed(_))
        ));
        // PS256 is RSA too, but not allowed unless configured.
        let ps256 = encode(
            &Header::new(Algorithm::PS256),
            &claims,
            &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(),
        )
        .unwrap();
        assert!(verifier.verify(&ps256).await.is_err());
        std::fs::remove_dir_all(dir).unwrap();

        // And an HS256 verifier refuses RS256 tokens.
        let hmac = JwtVerifier::new(&auth("", Some(SECRET))).unwrap();
        assert!(hmac.verify(&rs256).await.is_err());
    }
}
