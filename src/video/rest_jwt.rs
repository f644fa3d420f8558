//! The REST JWT that authenticates the service to Vonage, reused for up to
//! `video.rest_jwt_reuse_seconds` (`0`: a fresh one per call). See `docs/rest-jwt-reuse.md`.
//!
//! A JWT authenticates *us*, not a caller, and Vonage accepts one until its `exp`; with
//! application credentials every signature is an RSA-2048 one (about 250 µs), so signing one per
//! call doubles the CPU of `POST /sessions`. Each JWT is minted as before (its own `jti`, `exp`
//! 180 s after `iat`); it is renewed once it is `reuse` seconds old, and never sent once it has
//! less than [`USE_MARGIN_SECS`] left. Concurrent calls share the current JWT through an
//! `ArcSwap` (a load per call, no lock); at renewal one call signs (a `try_lock`) while the rest
//! keep the current one, so there is no stampede of signings. Only when no usable JWT exists
//! (at start, after an idle spell longer than the JWT's use window) do callers wait for the one
//! signing.

use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwapOption;
use reqwest::header::{HeaderName, HeaderValue};

use super::credentials::{Credentials, CredentialsError, REST_JWT_LIFETIME_SECS};

/// A reused JWT is never sent with less than this left before its `exp`: room for the retries
/// of one call, the transit, and clock skew between us and Vonage.
pub(crate) const USE_MARGIN_SECS: u64 = 60;

/// The longest `video.rest_jwt_reuse_seconds`: a JWT due for renewal must still be usable.
pub(crate) const MAX_REUSE_SECS: u64 = REST_JWT_LIFETIME_SECS - USE_MARGIN_SECS;

/// The REST auth headers of one client.
pub(super) struct RestAuth {
    credentials: Arc<Credentials>,
    reuse_secs: u64,
    current: ArcSwapOption<Minted>,
    /// Held by the one caller signing a new JWT.
    minting: Mutex<()>,
}

/// One signed JWT as a header, with its times (Unix seconds).
struct Minted {
    name: HeaderName,
    value: HeaderValue,
    /// From then on, the next call renews it.
    renew_at: u64,
    /// From then on, it is not sent any more.
    use_until: u64,
}

impl std::fmt::Debug for RestAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestAuth")
            .field("reuse_secs", &self.reuse_secs)
            .finish_non_exhaustive()
    }
}

impl RestAuth {
    /// `reuse_secs` is capped at [`MAX_REUSE_SECS`] (config validation refuses more).
    pub(super) fn new(credentials: Arc<Credentials>, reuse_secs: u64) -> Self {
        Self {
            credentials,
            reuse_secs: reuse_secs.min(MAX_REUSE_SECS),
            current: ArcSwapOption::empty(),
            minting: Mutex::new(()),
        }
    }

    /// The auth header for one attempt of a call at `now` (Unix seconds).
    pub(super) fn header(&self, now: u64) -> Result<(HeaderName, HeaderValue), CredentialsError> {
        if self.reuse_secs == 0 {
            return self.credentials.rest_auth_header(now);
        }
        let current = self.current.load();
        if let Some(minted) = current.as_deref() {
            if now < minted.renew_at {
                return Ok(minted.header());
            }
            if now < minted.use_until {
                // Due for renewal but still good: one caller renews, the others go on with it.
                return match self.minting.try_lock() {
                    Ok(_minting) => self.renew(now),
                    Err(_) => Ok(minted.header()),
                };
            }
        }
        // Nothing usable: wait for whoever is signing, then take theirs or sign.
        let _minting = self.minting.lock().unwrap_or_else(PoisonError::into_inner);
        self.renew(now)
    }

    /// Signs a new JWT and makes it the current one, unless another caller just did. The
    /// caller holds `minting`.
    fn renew(&self, now: u64) -> Result<(HeaderName, HeaderValue), CredentialsError> {
        if let Some(minted) = self.current.load().as_deref()
            && now < minted.renew_at
        {
            return Ok(minted.header());
        }
        let (name, value) = self.credentials.rest_auth_header(now)?;
        let minted = Minted {
            name,
            value,
            renew_at: now + self.reuse_secs,
            use_until: now + REST_JWT_LIFETIME_SECS - USE_MARGIN_SECS,
        };
        let header = minted.header();
        self.current.store(Some(Arc::new(minted)));
        Ok(header)
    }
}

impl Minted {
    fn header(&self) -> (HeaderName, HeaderValue) {
        (self.name.clone(), self.value.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    use secrecy::SecretString;

    #[test]
    fn config_refuses_what_the_reuse_cap_allows_no_more() {
        assert_eq!(MAX_REUSE_SECS, crate::config::REST_JWT_MAX_REUSE_SECONDS);
    }

    const KEY_PEM: &str = include_str!("../../tests/fixtures/application_private_key.pem");
    const PUBLIC_PEM: &str = include_str!("../../tests/fixtures/application_public_key.pem");
    const APP_ID: &str = "00000000-0000-4000-8000-000000000000";
    const T0: u64 = 1_800_000_000;

    fn application() -> Arc<Credentials> {
        Arc::new(Credentials::application(APP_ID, &SecretString::from(KEY_PEM)).unwrap())
    }

    /// The claims of an RS256 REST header, verified with the public key.
    fn claims(value: &HeaderValue) -> serde_json::Value {
        let jwt = value.to_str().unwrap().strip_prefix("Bearer ").unwrap();
        let mut validation = Validation::new(Algorithm::RS256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        let key = DecodingKey::from_rsa_pem(PUBLIC_PEM.as_bytes()).unwrap();
        jsonwebtoken::decode::<serde_json::Value>(jwt, &key, &validation)
            .unwrap()
            .claims
    }

    #[test]
    fn one_jwt_serves_every_call_until_it_is_due_then_a_new_one_with_its_own_jti() {
        let auth = RestAuth::new(application(), 30);
        let (_, first) = auth.header(T0).unwrap();
        for later in [T0, T0 + 1, T0 + 29] {
            assert_eq!(auth.header(later).unwrap().1, first, "reused at {later}");
        }
        let (_, renewed) = auth.header(T0 + 30).unwrap();
        assert_ne!(renewed, first, "renewed once 30 s old");
        let (a, b) = (claims(&first), claims(&renewed));
        assert_ne!(a["jti"], b["jti"]);
        assert_eq!(b["iat"], T0 + 30);
        for jwt in [&a, &b] {
            let left = jwt["exp"].as_u64().unwrap() - jwt["iat"].as_u64().unwrap();
            assert_eq!(
                left, REST_JWT_LIFETIME_SECS,
                "exp well inside Vonage's 5 minutes"
            );
        }
        assert_eq!(auth.header(T0 + 59).unwrap().1, renewed);
    }

    #[test]
    fn a_jwt_is_never_sent_close_to_its_expiry_even_after_an_idle_spell() {
        let auth = RestAuth::new(application(), 30);
        let (_, first) = auth.header(T0).unwrap();
        let late = T0 + REST_JWT_LIFETIME_SECS - USE_MARGIN_SECS;
        let (_, after_idle) = auth.header(late).unwrap();
        assert_ne!(after_idle, first);
        let claims = claims(&after_idle);
        assert_eq!(claims["iat"], late);
        assert!(claims["exp"].as_u64().unwrap() >= late + USE_MARGIN_SECS);
    }

    #[test]
    fn zero_signs_a_fresh_jwt_for_every_call() {
        let auth = RestAuth::new(application(), 0);
        let (_, a) = auth.header(T0).unwrap();
        let (_, b) = auth.header(T0).unwrap();
        assert_ne!(claims(&a)["jti"], claims(&b)["jti"]);
    }

    #[test]
    fn the_reuse_window_is_capped_inside_the_jwt_lifetime() {
        let auth = RestAuth::new(application(), 10_000);
        let (_, first) = auth.header(T0).unwrap();
        assert_eq!(auth.header(T0 + MAX_REUSE_SECS - 1).unwrap().1, first);
        assert_ne!(auth.header(T0 + MAX_REUSE_SECS).unwrap().1, first);
    }

    #[test]
    fn concurrent_calls_at_renewal_sign_once() {
        let credentials =
            Arc::new(Credentials::legacy("123456", &SecretString::from("s3cret")).unwrap());
        let auth = Arc::new(RestAuth::new(credentials, 30));
        let (_, first) = auth.header(T0).unwrap();
        // 16 threads call at once when the JWT is due: one renews, the others may still get the
        // current one; afterwards everyone sees one and the same new JWT.
        let barrier = Arc::new(std::sync::Barrier::new(16));
        let seen: Vec<HeaderValue> = (0..16)
            .map(|_| {
                let (auth, barrier) = (auth.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    auth.header(T0 + 30).unwrap().1
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|thread| thread.join().unwrap())
            .collect();
        let (_, after) = auth.header(T0 + 31).unwrap();
        assert_ne!(after, first);
        let distinct: std::collections::HashSet<_> = seen
            .iter()
            .filter(|value| **value != first)
            .map(|value| value.as_bytes().to_vec())
            .collect();
        assert_eq!(
            distinct.len(),
            1,
            "one signing at renewal, not one per caller"
        );
        assert!(seen.iter().all(|value| *value == first || *value == after));
    }

    #[test]
    fn callers_with_nothing_usable_wait_for_one_signing() {
        let credentials = application();
        let auth = Arc::new(RestAuth::new(credentials, 30));
        let barrier = Arc::new(std::sync::Barrier::new(8));
        let seen: std::collections::HashSet<Vec<u8>> = (0..8)
            .map(|_| {
                let (auth, barrier) = (auth.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    auth.header(T0).unwrap().1.as_bytes().to_vec()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|thread| thread.join().unwrap())
            .collect();
        assert_eq!(seen.len(), 1, "the first burst shares one JWT");
    }
}
