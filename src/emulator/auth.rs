//! Authenticates Vonage API calls: picks the auth header, decodes the JWT for the request log
//! (even when it does not verify), verifies it with a pinned algorithm and applies `claims`.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use super::claims::{self, AuthError};
use super::credentials::{Verifier, Verifiers};

/// JWT parts are base64url; tolerate stray padding as lenient servers do.
const JWT_PART: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Which kind of credential a call used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum CredentialKind {
    /// `X-OPENTOK-AUTH: <HS256 JWT>` signed with the project's API secret.
    Legacy,
    /// `Authorization: Bearer <RS256 JWT>` signed with the application's private key.
    Application,
}

/// The auth token a request presented, and as what.
#[derive(Debug, Clone)]
pub(crate) struct Presented {
    /// The header it came in.
    pub(crate) kind: CredentialKind,
    /// The raw JWT.
    pub(crate) token: String,
}

/// What the request log shows about a request's auth, verified or not.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub(crate) struct AuthCapture {
    /// The header the emulator authenticated with, if any.
    pub(crate) kind: Option<CredentialKind>,
    /// The decoded JWT header, if the token is structurally a JWT.
    pub(crate) header: Option<Value>,
    /// The decoded JWT claims, if the token is structurally a JWT.
    pub(crate) claims: Option<Value>,
}

/// Picks the token to authenticate with: a header whose credential is configured wins
/// (`Bearer` first); otherwise any auth header, which will then fail as unsupported.
pub(crate) fn presented(headers: &HeaderMap, verifiers: &Verifiers) -> Option<Presented> {
    let bearer = header_text(headers, AUTHORIZATION.as_str()).and_then(|value| {
        let (scheme, token) = value.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    });
    let legacy = header_text(headers, "x-opentok-auth");
    let candidates = [
        (
            CredentialKind::Application,
            bearer,
            verifiers.application.is_some(),
        ),
        (CredentialKind::Legacy, legacy, verifiers.legacy.is_some()),
    ];
    let present = candidates
        .iter()
        .filter_map(|(kind, token, configured)| Some((*kind, (*token)?, *configured)))
        .filter(|(_, token, _)| !token.is_empty());
    let mut fallback = None;
    for (kind, token, configured) in present {
        let found = Presented {
            kind,
            token: token.to_owned(),
        };
        if configured {
            return Some(found);
        }
        fallback = fallback.or(Some(found));
    }
    fallback
}

/// Decodes the presented JWT's header and claims without verifying anything.
pub(crate) fn capture(presented: Option<&Presented>) -> AuthCapture {
    let Some(presented) = presented else {
        return AuthCapture::default();
    };
    let parts = split(&presented.token);
    AuthCapture {
        kind: Some(presented.kind),
        header: parts.and_then(|(header, _, _)| decode_object(header)),
        claims: parts.and_then(|(_, claims, _)| decode_object(claims)),
    }
}

/// Verifies the presented JWT; on success returns the kind and the session owner.
pub(crate) fn verify(
    presented: Option<&Presented>,
    verifiers: &Verifiers,
    now_s: i64,
) -> Result<(CredentialKind, String), AuthError> {
    let presented = presented.ok_or(AuthError::Missing)?;
    let (verifier, algorithm) = match presented.kind {
        CredentialKind::Legacy => (verifiers.legacy.as_ref(), Algorithm::HS256),
        CredentialKind::Application => (verifiers.application.as_ref(), Algorithm::RS256),
    };
    let verifier = verifier.ok_or(AuthError::Missing)?;
    let (header, claims) = split(&presented.token)
        .and_then(|(header, claims, _)| Some((decode_object(header)?, decode_object(claims)?)))
        .ok_or(AuthError::Format)?;
    let claims = claims.as_object().ok_or(AuthError::Format)?;
    // The real service must read the identity first to know which key to verify with.
    match presented.kind {
        CredentialKind::Legacy => claims::legacy_identity(claims, &verifier.owner)?,
        CredentialKind::Application => claims::application_identity(claims, &verifier.owner)?,
    }
    if header.get("alg").and_then(Value::as_str) != Some(algorithm_name(algorithm)) {
        return Err(AuthError::Algorithm);
    }
    check_signature(&presented.token, verifier, algorithm)?;
    match presented.kind {
        CredentialKind::Legacy => claims::legacy_times(claims, now_s)?,
        CredentialKind::Application => claims::application_expiry(claims, now_s)?,
    }
    Ok((presented.kind, verifier.owner.clone()))
}

/// Verifies only the signature: jsonwebtoken's own claim checks are off so that ours, with
/// the real messages, decide.
fn check_signature(
    token: &str,
    verifier: &Verifier,
    algorithm: Algorithm,
) -> Result<(), AuthError> {
    let mut validation = Validation::new(algorithm);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    match jsonwebtoken::decode::<Map<String, Value>>(token, &verifier.key, &validation) {
        Ok(_) => Ok(()),
        Err(error) if matches!(error.kind(), ErrorKind::InvalidSignature) => {
            Err(AuthError::Signature)
        }
        Err(error) if matches!(error.kind(), ErrorKind::InvalidAlgorithm) => {
            Err(AuthError::Algorithm)
        }
        Err(_) => Err(AuthError::Format),
    }
}

fn algorithm_name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::RS256 => "RS256",
        _ => "HS256",
    }
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok().map(str::trim)
}

fn split(token: &str) -> Option<(&str, &str, &str)> {
    let mut parts = token.split('.');
    let parts3 = (parts.next()?, parts.next()?, parts.next()?);
    parts.next().is_none().then_some(parts3)
}

fn decode_object(part: &str) -> Option<Value> {
    let bytes = JWT_PART.decode(part).ok()?;
    serde_json::from_slice::<Value>(&bytes)
        .ok()
        .filter(Value::is_object)
}

#[cfg(test)]
mod tests;
