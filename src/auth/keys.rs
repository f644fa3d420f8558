//! Verifying keys and the rules they carry, shared by a static key (`jwt`) and a JWKS (`jwks`).

use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::config::{AuthConfig, KeyType};

/// A key and the rules a token verified by it must satisfy.
pub(crate) struct VerifyKey {
    pub(super) key: DecodingKey,
    pub(super) validation: Validation,
}

/// How keys become `VerifyKey`s: the algorithms allowed per key type and the claim checks.
#[derive(Debug, Clone)]
pub(crate) struct KeyRules {
    rsa: Vec<Algorithm>,
    ec: Vec<Algorithm>,
    ed: Vec<Algorithm>,
    hmac: Vec<Algorithm>,
    issuer: String,
    audience: String,
    leeway_seconds: u64,
}

impl KeyRules {
    /// The rules of `[auth]`.
    pub(crate) fn new(auth: &AuthConfig) -> Self {
        Self {
            rsa: auth.rsa_algorithms.clone(),
            ec: auth.ec_algorithms.clone(),
            ed: auth.ed_algorithms.clone(),
            hmac: auth.hmac_algorithms.clone(),
            issuer: auth.issuer.clone(),
            audience: auth.audience.clone(),
            leeway_seconds: auth.leeway_seconds,
        }
    }

    fn allowed(&self, kind: KeyType) -> &[Algorithm] {
        match kind {
            KeyType::Rsa => &self.rsa,
            KeyType::Ec => &self.ec,
            KeyType::Ed => &self.ed,
            KeyType::Hmac => &self.hmac,
        }
    }

    /// A verifying key of type `kind`. `pinned` (a JWK's own `alg`) narrows the allowed list
    /// to that one algorithm; `None` when nothing is left to allow.
    pub(crate) fn verify_key(
        &self,
        key: DecodingKey,
        kind: KeyType,
        pinned: Option<Algorithm>,
    ) -> Option<VerifyKey> {
        let mut algorithms = self.allowed(kind).to_vec();
        if let Some(pinned) = pinned {
            algorithms.retain(|alg| *alg == pinned);
        }
        let first = *algorithms.first()?;
        let mut validation = Validation::new(first);
        validation.algorithms = algorithms;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.leeway = self.leeway_seconds;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Some(VerifyKey { key, validation })
    }
}
