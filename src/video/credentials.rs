//! Server-held Vonage credentials, parsed once, and the short-lived REST JWTs made from them
//! (`docs/vonage-wire.md` §1.3 and §2.2). This is the only module that exposes a secret.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;

/// How long a REST JWT is valid. Vonage refuses more than 5 minutes; the SDKs use 3 to 5.
pub(super) const REST_JWT_LIFETIME_SECS: u64 = 180;

/// `base64url({"alg":"RS256","typ":"JWT"})`, the header every RS256 JWT we sign carries.
const RS256_HEADER_B64: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9";

/// Which kind of credentials the service holds. Exactly one is configured.
#[derive(Clone)]
pub enum Credentials {
    /// A Vonage application: application ID and RSA private key (RS256).
    Application(ApplicationCredentials),
    /// A legacy OpenTok project: API key and secret (HS256).
    Legacy(LegacyCredentials),
}

/// A Vonage application's ID and its parsed private key.
#[derive(Clone)]
pub struct ApplicationCredentials {
    application_id: String,
    key: Arc<RsaKeyPair>,
}

/// A legacy project's API key and secret, with the HMAC key derived once.
#[derive(Clone)]
pub struct LegacyCredentials {
    api_key: String,
    secret: SecretString,
    encoding_key: EncodingKey,
}

/// Why credentials could not be loaded or used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CredentialsError {
    /// The private key is not PEM, or not an RSA key in PKCS#8 or PKCS#1 form.
    #[error("the private key is not a valid RSA private key in PEM form ({0})")]
    InvalidPrivateKey(&'static str),
    /// The application ID or API key is empty or contains characters no Vonage ID has.
    #[error("{0} is empty or not a valid identifier")]
    InvalidId(&'static str),
    /// Signing failed (should not happen with a key that parsed).
    #[error("signing a JWT failed")]
    Signing,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Application(app) => f
                .debug_struct("Application")
                .field("application_id", &app.application_id)
                .field("private_key", &"[redacted]")
                .finish(),
            Credentials::Legacy(legacy) => f
                .debug_struct("Legacy")
                .field("api_key", &legacy.api_key)
                .field("api_secret", &"[redacted]")
                .finish(),
        }
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl Credentials {
    /// Parses a Vonage application's credentials. The key may be PKCS#8 (`BEGIN PRIVATE KEY`)
    /// or PKCS#1 (`BEGIN RSA PRIVATE KEY`); literal `\n` sequences, common when a key is pasted
    /// into an env var, are accepted.
    pub fn application(
        application_id: &str,
        private_key_pem: &SecretString,
    ) -> Result<Self, CredentialsError> {
        if !valid_id(application_id) {
            return Err(CredentialsError::InvalidId("VONAGE_APPLICATION_ID"));
        }
        let text = private_key_pem.expose_secret();
        let unescaped;
        let text = if text.contains("\\n") && !text.contains('\n') {
            unescaped = text.replace("\\n", "\n");
            unescaped.as_str()
        } else {
            text
        };
        let pem =
            pem::parse(text.trim()).map_err(|_| CredentialsError::InvalidPrivateKey("not PEM"))?;
        let key = match pem.tag() {
            "PRIVATE KEY" => RsaKeyPair::from_pkcs8(pem.contents()),
            "RSA PRIVATE KEY" => RsaKeyPair::from_der(pem.contents()),
            _ => {
                return Err(CredentialsError::InvalidPrivateKey(
                    "expected a PRIVATE KEY or RSA PRIVATE KEY block",
                ));
            }
        }
        .map_err(|_| CredentialsError::InvalidPrivateKey("not an RSA key of 2048 bits or more"))?;
        Ok(Self::Application(ApplicationCredentials {
            application_id: application_id.to_owned(),
            key: Arc::new(key),
        }))
    }

    /// Wraps an already parsed key pair (used by `dev`, which generates a throwaway key).
    pub fn application_from_key(
        application_id: &str,
        key: RsaKeyPair,
    ) -> Result<Self, CredentialsError> {
        if !valid_id(application_id) {
            return Err(CredentialsError::InvalidId("VONAGE_APPLICATION_ID"));
        }
        Ok(Self::Application(ApplicationCredentials {
            application_id: application_id.to_owned(),
            key: Arc::new(key),
        }))
    }

    /// A legacy project's key and secret.
    pub fn legacy(api_key: &str, api_secret: &SecretString) -> Result<Self, CredentialsError> {
        if !valid_id(api_key) {
            return Err(CredentialsError::InvalidId("OPENTOK_API_KEY"));
        }
        if api_secret.expose_secret().is_empty() {
            return Err(CredentialsError::InvalidId("OPENTOK_API_SECRET"));
        }
        Ok(Self::Legacy(LegacyCredentials {
            api_key: api_key.to_owned(),
            encoding_key: EncodingKey::from_secret(api_secret.expose_secret().as_bytes()),
            secret: api_secret.clone(),
        }))
    }

    /// The application ID or API key: the owner field of our session IDs and the `apiKey`
    /// front ends pass to `OT.initSession`.
    pub fn owner(&self) -> &str {
        match self {
            Credentials::Application(app) => &app.application_id,
            Credentials::Legacy(legacy) => &legacy.api_key,
        }
    }

    /// `"application"` or `"legacy"`, for logs and check-config.
    pub fn kind(&self) -> &'static str {
        match self {
            Credentials::Application(_) => "application",
            Credentials::Legacy(_) => "legacy",
        }
    }

    /// The application's RSA public key as PKCS#1 DER, so an in-process emulator can verify
    /// our signatures. `None` for legacy credentials.
    pub fn public_key_der(&self) -> Option<Vec<u8>> {
        match self {
            Credentials::Application(app) => Some(app.key.public_key().as_ref().to_vec()),
            Credentials::Legacy(_) => None,
        }
    }

    /// A fresh REST auth header for one call: `X-OPENTOK-AUTH` (HS256) or
    /// `Authorization: Bearer` (RS256), with a unique `jti` and a 3-minute lifetime.
    pub fn rest_auth_header(
        &self,
        now: u64,
    ) -> Result<(HeaderName, HeaderValue), CredentialsError> {
        let jti = uuid::Uuid::new_v4().to_string();
        let exp = now + REST_JWT_LIFETIME_SECS;
        let (name, value) = match self {
            Credentials::Legacy(legacy) => {
                let claims = LegacyRestClaims {
                    iss: &legacy.api_key,
                    ist: "project",
                    iat: now,
                    exp,
                    jti: &jti,
                };
                (
                    HeaderName::from_static("x-opentok-auth"),
                    legacy.sign_hs256(&claims)?,
                )
            }
            Credentials::Application(app) => {
                let claims = AppRestClaims {
                    application_id: &app.application_id,
                    iat: now,
                    exp,
                    jti: &jti,
                };
                (
                    AUTHORIZATION,
                    format!("Bearer {}", app.sign_rs256(&claims)?),
                )
            }
        };
        let mut value = HeaderValue::try_from(value).map_err(|_| CredentialsError::Signing)?;
        value.set_sensitive(true);
        Ok((name, value))
    }
}

impl LegacyCredentials {
    /// The API key.
    pub(crate) fn api_key(&self) -> &str {
        &self.api_key
    }

    /// Signs `claims` as an HS256 JWT with the API secret.
    pub(crate) fn sign_hs256(&self, claims: &impl Serialize) -> Result<String, CredentialsError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding_key)
            .map_err(|_| CredentialsError::Signing)
    }

    /// HMAC-SHA1 of `data` with the API secret, lowercase hex: the `T1==` token signature.
    pub(crate) fn hmac_sha1_hex(&self, data: &[u8]) -> String {
        use aws_lc_rs::hmac;
        use std::fmt::Write as _;
        let key = hmac::Key::new(
            hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            self.secret.expose_secret().as_bytes(),
        );
        let tag = hmac::sign(&key, data);
        tag.as_ref()
            .iter()
            .fold(String::with_capacity(40), |mut hex, byte| {
                let _ = write!(hex, "{byte:02x}");
                hex
            })
    }
}

impl ApplicationCredentials {
    /// The application ID.
    pub(crate) fn application_id(&self) -> &str {
        &self.application_id
    }

    /// Signs `claims` as an RS256 JWT with the parsed key kept in memory. jsonwebtoken
    /// re-parses the DER key on every signature (about 2.5x the cost of the signature itself),
    /// so the compact serialisation is assembled here around aws-lc-rs's `RsaKeyPair::sign`.
    pub(crate) fn sign_rs256(&self, claims: &impl Serialize) -> Result<String, CredentialsError> {
        let payload = serde_json::to_vec(claims).map_err(|_| CredentialsError::Signing)?;
        let mut jwt = String::with_capacity(RS256_HEADER_B64.len() + payload.len() * 4 / 3 + 360);
        jwt.push_str(RS256_HEADER_B64);
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut jwt);
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                jwt.as_bytes(),
                &mut signature,
            )
            .map_err(|_| CredentialsError::Signing)?;
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut jwt);
        Ok(jwt)
    }
}

#[derive(Serialize)]
struct LegacyRestClaims<'a> {
    iss: &'a str,
    ist: &'static str,
    iat: u64,
    exp: u64,
    jti: &'a str,
}

#[derive(Serialize)]
struct AppRestClaims<'a> {
    application_id: &'a str,
    iat: u64,
    exp: u64,
    jti: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    const KEY_PEM: &str = include_str!("../../tests/fixtures/application_private_key.pem");
    const PUBLIC_PEM: &str = include_str!("../../tests/fixtures/application_public_key.pem");
    const APP_ID: &str = "00000000-0000-4000-8000-000000000000";

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    #[test]
    fn application_rest_jwt_verifies_with_the_public_key_and_has_sdk_claims() {
        let creds = Credentials::application(APP_ID, &SecretString::from(KEY_PEM)).unwrap();
        let (name, value) = creds.rest_auth_header(now()).unwrap();
        assert_eq!(name, AUTHORIZATION);
        let jwt = value.to_str().unwrap().strip_prefix("Bearer ").unwrap();
        let mut validation = Validation::new(Algorithm::RS256);
        validation.required_spec_claims.clear();
        let key = DecodingKey::from_rsa_pem(PUBLIC_PEM.as_bytes()).unwrap();
        let claims = jsonwebtoken::decode::<serde_json::Value>(jwt, &key, &validation)
            .unwrap()
            .claims;
        assert_eq!(claims["application_id"], APP_ID);
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            180
        );
        assert!(claims["jti"].is_string());
    }

    #[test]
    fn derived_public_key_verifies_our_signatures() {
        let creds = Credentials::application(APP_ID, &SecretString::from(KEY_PEM)).unwrap();
        let der = creds.public_key_der().unwrap();
        let Credentials::Application(app) = &creds else {
            unreachable!()
        };
        let jwt = app.sign_rs256(&serde_json::json!({"a": 1})).unwrap();
        let mut validation = Validation::new(Algorithm::RS256);
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<serde_json::Value>(
            &jwt,
            &DecodingKey::from_rsa_der(&der),
            &validation,
        )
        .unwrap();
    }

    #[test]
    fn keys_with_escaped_newlines_parse_and_bad_keys_are_refused() {
        let escaped = KEY_PEM.trim().replace('\n', "\\n");
        Credentials::application(APP_ID, &SecretString::from(escaped)).unwrap();
        for bad in [
            "",
            "not a key",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
            PUBLIC_PEM,
        ] {
            assert!(
                Credentials::application(APP_ID, &SecretString::from(bad)).is_err(),
                "{bad}"
            );
        }
        assert!(Credentials::application("", &SecretString::from(KEY_PEM)).is_err());
    }

    #[test]
    fn legacy_rest_jwt_has_sdk_claims_and_unique_jti() {
        let creds = Credentials::legacy("123456", &SecretString::from("s3cret")).unwrap();
        let decode = |value: HeaderValue| {
            let mut validation = Validation::new(Algorithm::HS256);
            validation.required_spec_claims.clear();
            jsonwebtoken::decode::<serde_json::Value>(
                value.to_str().unwrap(),
                &DecodingKey::from_secret(b"s3cret"),
                &validation,
            )
            .unwrap()
            .claims
        };
        let (name, first) = creds.rest_auth_header(now()).unwrap();
        assert_eq!(name.as_str(), "x-opentok-auth");
        let first = decode(first);
        let second = decode(creds.rest_auth_header(now()).unwrap().1);
        assert_eq!(first["iss"], "123456");
        assert_eq!(first["ist"], "project");
        assert_ne!(first["jti"], second["jti"]);
    }

    #[test]
    fn debug_never_shows_secrets() {
        let legacy = Credentials::legacy("123456", &SecretString::from("s3cret-value")).unwrap();
        let app = Credentials::application(APP_ID, &SecretString::from(KEY_PEM)).unwrap();
        let printed = format!("{legacy:?} {app:?} {legacy:#?} {app:#?}");
        assert!(!printed.contains("s3cret-value"));
        assert!(!printed.contains("MII"));
    }
}
