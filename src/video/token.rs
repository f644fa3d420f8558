//! Client tokens, minted locally and never by the API (`docs/vonage-wire.md` §5): the
//! `@vonage/video` RS256 claim set for applications, the HS256 JWT current SDKs make for legacy
//! projects, and `T1==` tokens for old client SDKs.

use super::credentials::{Credentials, CredentialsError};
pub use crate::vocab::{LegacyTokenFormat, Role};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;

/// What a token grants. The caller's policy has already decided every field.
#[derive(Debug, Clone)]
pub struct TokenGrant<'a> {
    /// The session the token connects to (ownership already checked).
    pub session_id: &'a str,
    /// The role granted.
    pub role: Role,
    /// Seconds from `now` until the token expires.
    pub ttl_seconds: u64,
    /// Connection data other participants see (at most 1000 chars).
    pub data: Option<&'a str>,
    /// Initial layout classes, space-joined in the token.
    pub initial_layout_class_list: &'a [String],
}

/// A minted token and when it expires (epoch seconds).
#[derive(Debug, Clone)]
pub struct ClientToken {
    /// The token string; never log it.
    pub(crate) token: String,
    /// `exp` of the token, seconds since the epoch.
    pub(crate) expires_at: u64,
}

/// Mints tokens with the service's credentials. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct TokenIssuer {
    credentials: std::sync::Arc<Credentials>,
    legacy_format: LegacyTokenFormat,
}

impl TokenIssuer {
    /// An issuer for `credentials`; `legacy_format` applies to legacy credentials only.
    pub(crate) fn new(
        credentials: std::sync::Arc<Credentials>,
        legacy_format: LegacyTokenFormat,
    ) -> Self {
        Self {
            credentials,
            legacy_format,
        }
    }

    /// The application ID or API key that owns our sessions.
    pub(crate) fn owner(&self) -> &str {
        self.credentials.owner()
    }

    /// Mints a token for `grant`, now.
    pub(crate) fn mint(&self, grant: &TokenGrant<'_>) -> Result<ClientToken, CredentialsError> {
        mint(
            &self.credentials,
            self.legacy_format,
            grant,
            jsonwebtoken::get_current_timestamp(),
        )
    }
}

/// Mints a client token for `grant` with the configured credentials at time `now`.
pub fn mint(
    credentials: &Credentials,
    legacy_format: LegacyTokenFormat,
    grant: &TokenGrant<'_>,
    now: u64,
) -> Result<ClientToken, CredentialsError> {
    let exp = now + grant.ttl_seconds;
    let layout = grant.initial_layout_class_list.join(" ");
    let token = match credentials {
        Credentials::Application(app) => app.sign_rs256(&AppClientClaims {
            application_id: app.application_id(),
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
            exp,
            scope: "session.connect",
            session_id: grant.session_id,
            role: grant.role.as_str(),
            initial_layout_class_list: &layout,
            sub: "video",
            acl: Acl {
                paths: AclPaths { session: Empty {} },
            },
            connection_data: grant.data,
        })?,
        Credentials::Legacy(legacy) => match legacy_format {
            LegacyTokenFormat::Jwt => legacy.sign_hs256(&LegacyClientClaims {
                iss: legacy.api_key(),
                ist: "project",
                iat: now,
                exp,
                jti: uuid::Uuid::new_v4().to_string(),
                scope: "session.connect",
                session_id: grant.session_id,
                role: grant.role.as_str(),
                nonce: rand::random::<f64>(),
                create_time: now,
                expire_time: exp,
                initial_layout_class_list: &layout,
                connection_data: grant.data,
            })?,
            LegacyTokenFormat::T1 => {
                let mut data = form_urlencoded::Serializer::new(String::new());
                data.append_pair("session_id", grant.session_id)
                    .append_pair("create_time", &now.to_string())
                    .append_pair("expire_time", &exp.to_string())
                    .append_pair("role", grant.role.as_str())
                    .append_pair("nonce", &rand::random::<f64>().to_string())
                    .append_pair("initial_layout_class_list", &layout);
                if let Some(connection_data) = grant.data {
                    data.append_pair("connection_data", connection_data);
                }
                let data = data.finish();
                let signature = legacy.hmac_sha1_hex(data.as_bytes());
                let inner = format!("partner_id={}&sig={signature}:{data}", legacy.api_key());
                format!("T1=={}", STANDARD.encode(inner))
            }
        },
    };
    Ok(ClientToken {
        token,
        expires_at: exp,
    })
}

/// The `@vonage/video` client-token claim set.
#[derive(Serialize)]
struct AppClientClaims<'a> {
    application_id: &'a str,
    iat: u64,
    jti: String,
    exp: u64,
    scope: &'static str,
    session_id: &'a str,
    role: &'static str,
    initial_layout_class_list: &'a str,
    sub: &'static str,
    acl: Acl,
    #[serde(skip_serializing_if = "Option::is_none")]
    connection_data: Option<&'a str>,
}

/// `{"paths": {"/session/**": {}}}`.
#[derive(Serialize)]
struct Acl {
    paths: AclPaths,
}

#[derive(Serialize)]
struct AclPaths {
    #[serde(rename = "/session/**")]
    session: Empty,
}

#[derive(Serialize)]
struct Empty {}

/// The legacy JWT claim set: opentok-node's, plus a `jti` as Java adds.
#[derive(Serialize)]
struct LegacyClientClaims<'a> {
    iss: &'a str,
    ist: &'static str,
    iat: u64,
    exp: u64,
    jti: String,
    scope: &'static str,
    session_id: &'a str,
    role: &'static str,
    nonce: f64,
    create_time: u64,
    expire_time: u64,
    initial_layout_class_list: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    connection_data: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    use secrecy::SecretString;
    use serde_json::json;

    const KEY_PEM: &str = include_str!("../../tests/fixtures/application_private_key.pem");
    const PUBLIC_PEM: &str = include_str!("../../tests/fixtures/application_public_key.pem");
    const SID: &str = "1_MX4xMjM0NTZ-flNhdCBNYXIgMTUgMTQ6NDI6MjMgUERUIDIwMTR-MC40OTAxMzAyNX4";
    const SECRET: &str = "1234567890abcdef1234567890abcdef1234567890";

    fn grant(layout: &[String]) -> TokenGrant<'_> {
        TokenGrant {
            session_id: SID,
            role: Role::Moderator,
            ttl_seconds: 3600,
            data: Some("name=Johnny"),
            initial_layout_class_list: layout,
        }
    }

    fn verify(token: &str, alg: Algorithm, key: &DecodingKey) -> serde_json::Value {
        let mut validation = Validation::new(alg);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        jsonwebtoken::decode::<serde_json::Value>(token, key, &validation)
            .unwrap()
            .claims
    }

    #[test]
    fn application_tokens_carry_the_vonage_video_claim_set() {
        let creds = Credentials::application("app-1", &SecretString::from(KEY_PEM)).unwrap();
        let layout = ["focus".to_owned(), "big".to_owned()];
        let minted = mint(&creds, LegacyTokenFormat::Jwt, &grant(&layout), 1_000).unwrap();
        let claims = verify(
            &minted.token,
            Algorithm::RS256,
            &DecodingKey::from_rsa_pem(PUBLIC_PEM.as_bytes()).unwrap(),
        );
        let mut keys: Vec<_> = claims.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "acl",
                "application_id",
                "connection_data",
                "exp",
                "iat",
                "initial_layout_class_list",
                "jti",
                "role",
                "scope",
                "session_id",
                "sub"
            ]
        );
        assert_eq!(claims["acl"], json!({"paths": {"/session/**": {}}}));
        assert_eq!(claims["sub"], "video");
        assert_eq!(claims["role"], "moderator");
        assert_eq!(claims["initial_layout_class_list"], "focus big");
        assert_eq!(claims["exp"], 4_600);
        assert_eq!(minted.expires_at, 4_600);
    }

    #[test]
    fn legacy_jwt_tokens_carry_the_opentok_claim_set() {
        let creds = Credentials::legacy("123456", &SecretString::from(SECRET)).unwrap();
        let minted = mint(&creds, LegacyTokenFormat::Jwt, &grant(&[]), 1_000).unwrap();
        let claims = verify(
            &minted.token,
            Algorithm::HS256,
            &DecodingKey::from_secret(SECRET.as_bytes()),
        );
        assert_eq!(claims["iss"], "123456");
        assert_eq!(claims["ist"], "project");
        assert_eq!(claims["scope"], "session.connect");
        assert_eq!(claims["session_id"], SID);
        assert_eq!(claims["connection_data"], "name=Johnny");
        assert!(claims["nonce"].is_f64());
    }

    #[test]
    fn t1_tokens_match_the_opentok_token_vector_layout_and_signature() {
        let creds = Credentials::legacy("123456", &SecretString::from(SECRET)).unwrap();
        let minted = mint(&creds, LegacyTokenFormat::T1, &grant(&[]), 1_000).unwrap();
        let inner = String::from_utf8(
            STANDARD
                .decode(minted.token.strip_prefix("T1==").unwrap())
                .unwrap(),
        )
        .unwrap();
        let (head, data) = inner.split_once(':').unwrap();
        let sig = head.strip_prefix("partner_id=123456&sig=").unwrap();
        let Credentials::Legacy(legacy) = &creds else {
            unreachable!()
        };
        assert_eq!(sig, legacy.hmac_sha1_hex(data.as_bytes()));
        let fields: std::collections::HashMap<_, _> = form_urlencoded::parse(data.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(fields["session_id"], SID);
        assert_eq!(fields["expire_time"], "4600");
        assert_eq!(fields["role"], "moderator");
        assert_eq!(fields["connection_data"], "name=Johnny");
    }

    #[test]
    fn hmac_sha1_matches_the_opentok_token_test_vector() {
        // npm opentok-token test vector: this data signed with this secret gives this sig.
        let data = "session_id=1_MX4xMjM0NTZ-flNhdCBNYXIgMTUgMTQ6NDI6MjMgUERUIDIwMTR-MC40OTAxMzAyNX4&create_time=1424221013&nonce=0.3942609881050885&role=moderator&expire_time=1424307413&connection_data=%7B%22name%22%3A%22value%22%7D";
        let creds = Credentials::legacy("123456", &SecretString::from(SECRET)).unwrap();
        let Credentials::Legacy(legacy) = &creds else {
            unreachable!()
        };
        assert_eq!(
            legacy.hmac_sha1_hex(data.as_bytes()),
            "df94a64559acc061d7a3752a6fc69493e938c191"
        );
    }
}
