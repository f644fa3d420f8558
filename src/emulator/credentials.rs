//! The credentials the emulator accepts: a legacy OpenTok project (API key + secret) and/or a
//! Vonage application (application ID + RSA public key). Knows nothing about HTTP.

use std::fmt;

use jsonwebtoken::DecodingKey;
use secrecy::{ExposeSecret as _, SecretString};

/// Which credentials the emulator accepts. Both may be set; then it serves both.
#[derive(Clone, Default)]
pub struct EmulatorCredentials {
    /// A legacy OpenTok project, authenticated with `X-OPENTOK-AUTH: <HS256 JWT>`.
    pub legacy: Option<LegacyProject>,
    /// A Vonage application, authenticated with `Authorization: Bearer <RS256 JWT>`.
    pub application: Option<ApplicationKey>,
}

/// A legacy OpenTok project: the API key is the JWT issuer, the secret signs it.
#[derive(Clone)]
pub struct LegacyProject {
    /// The project's API key (numeric in real projects, any string here).
    pub api_key: String,
    /// The project's API secret, the HS256 key.
    pub api_secret: SecretString,
}

/// A Vonage application: its ID is the `application_id` claim, its RSA public key verifies RS256.
#[derive(Clone)]
pub struct ApplicationKey {
    /// The application's ID (a UUID in real applications).
    pub application_id: String,
    /// The application's RSA public key, e.g. from [`DecodingKey::from_rsa_pem`].
    pub public_key: DecodingKey,
}

impl fmt::Debug for EmulatorCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmulatorCredentials")
            .field("legacy", &self.legacy)
            .field("application", &self.application)
            .finish()
    }
}

impl fmt::Debug for LegacyProject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LegacyProject")
            .field("api_key", &self.api_key)
            .field("api_secret", &"[redacted]")
            .finish()
    }
}

impl fmt::Debug for ApplicationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApplicationKey")
            .field("application_id", &self.application_id)
            .field("public_key", &"[redacted]")
            .finish()
    }
}

/// One configured credential, ready to verify JWTs: the owner it stands for and its key.
pub(crate) struct Verifier {
    /// API key or application ID; the session owner for calls it authenticates.
    pub(crate) owner: String,
    /// HS256 secret (legacy) or RSA public key (application).
    pub(crate) key: DecodingKey,
}

/// The verifiers built once at bind time, so the secret is exposed in one place only.
pub(crate) struct Verifiers {
    /// The legacy project, if configured.
    pub(crate) legacy: Option<Verifier>,
    /// The application, if configured.
    pub(crate) application: Option<Verifier>,
}

impl From<&EmulatorCredentials> for Verifiers {
    fn from(credentials: &EmulatorCredentials) -> Self {
        Self {
            legacy: credentials.legacy.as_ref().map(|project| Verifier {
                owner: project.api_key.clone(),
                key: DecodingKey::from_secret(project.api_secret.expose_secret().as_bytes()),
            }),
            application: credentials.application.as_ref().map(|app| Verifier {
                owner: app.application_id.clone(),
                key: app.public_key.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_contains_the_secret() {
        let credentials = EmulatorCredentials {
            legacy: Some(LegacyProject {
                api_key: "123456".into(),
                api_secret: SecretString::from("very-secret-value"),
            }),
            application: Some(ApplicationKey {
                application_id: "app-id".into(),
                public_key: DecodingKey::from_secret(b"not-really-rsa"),
            }),
        };
        let printed = format!("{credentials:?}");
        assert!(!printed.contains("very-secret-value"), "{printed}");
        assert!(
            printed.contains("123456") && printed.contains("app-id"),
            "{printed}"
        );
    }
}
