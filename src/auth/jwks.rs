//! The identity provider's JWKS: fetched with connect and total timeouts, cached for
//! `auth.jwks_cache_seconds`, and refreshed when a token names an unknown `kid`, at most once
//! per `auth.jwks_refresh_min_interval_ms` however many such tokens arrive (so forged `kid`s
//! cannot make us hammer the provider). A failed refresh keeps the keys we had.
//!
//! Only signing keys are taken: `use: "enc"` keys and symmetric (`oct`) keys are skipped, and a
//! key's own `alg` narrows the algorithms config allows for its type.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::auth::keys::{KeyRules, VerifyKey};
use crate::config::{AuthConfig, KeyType};

/// Largest JWKS document read.
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Most keys taken from one document.
const MAX_KEYS: usize = 64;

#[derive(Default)]
struct KeySet {
    by_kid: HashMap<String, Arc<VerifyKey>>,
    without_kid: Vec<Arc<VerifyKey>>,
    fetched_at: Option<Instant>,
}

impl KeySet {
    fn find(&self, kid: Option<&str>) -> Option<Arc<VerifyKey>> {
        match kid {
            Some(kid) => self.by_kid.get(kid).cloned(),
            // A token without `kid` is accepted only when the set leaves no choice.
            None => match (self.by_kid.len(), self.without_kid.as_slice()) {
                (0, [only]) => Some(only.clone()),
                (1, []) => self.by_kid.values().next().cloned(),
                _ => None,
            },
        }
    }
}

struct Inner {
    http: reqwest::Client,
    url: Url,
    rules: KeyRules,
    max_age: Duration,
    min_refresh_interval: Duration,
    keys: RwLock<Arc<KeySet>>,
    /// When the last fetch started; held while fetching, so concurrent misses share one fetch.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

/// A cached JWKS. Cheap to clone.
#[derive(Clone)]
pub(crate) struct JwksCache(Arc<Inner>);

impl JwksCache {
    /// The cache of `url` (`auth.jwks_url`, parsed at load). Nothing is fetched yet.
    pub(crate) fn new(
        auth: &AuthConfig,
        url: Url,
        rules: KeyRules,
    ) -> Result<Self, reqwest::Error> {
        let timeout = Duration::from_millis(auth.jwks_timeout_ms);
        let http = reqwest::Client::builder()
            .connect_timeout(timeout)
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!(
                env!("CARGO_PKG_NAME"),
                "/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()?;
        Ok(Self(Arc::new(Inner {
            http,
            url,
            rules,
            max_age: Duration::from_secs(auth.jwks_cache_seconds),
            min_refresh_interval: Duration::from_millis(auth.jwks_refresh_min_interval_ms),
            keys: RwLock::new(Arc::default()),
            last_fetch: tokio::sync::Mutex::new(None),
        })))
    }

    fn current(&self) -> Arc<KeySet> {
        self.0
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Fetches in the background when inside a Tokio runtime.
    pub(crate) fn prefetch(&self) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let this = self.clone();
            runtime.spawn(async move { this.refresh().await });
        }
    }

    /// The key for `kid`, refreshing the set when it is stale or lacks the key (rate-bounded).
    pub(crate) async fn key_for(&self, kid: Option<&str>) -> Option<Arc<VerifyKey>> {
        let keys = self.current();
        let stale = keys
            .fetched_at
            .is_none_or(|at| at.elapsed() >= self.0.max_age);
        if !stale && let Some(key) = keys.find(kid) {
            return Some(key);
        }
        self.refresh().await;
        self.current().find(kid)
    }

    /// Fetches the set unless a fetch started less than `min_refresh_interval` ago.
    async fn refresh(&self) {
        let mut last_fetch = self.0.last_fetch.lock().await;
        if last_fetch.is_some_and(|at| at.elapsed() < self.0.min_refresh_interval) {
            return;
        }
        *last_fetch = Some(Instant::now());
        match self.fetch().await {
            Ok(set) => {
                tracing::info!(
                    jwks.url = %self.0.url,
                    jwks.keys = set.by_kid.len() + set.without_kid.len(),
                    "identity provider keys loaded"
                );
                *self
                    .0
                    .keys
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(set);
            }
            Err(error) => tracing::error!(
                jwks.url = %self.0.url,
                error = %error,
                "cannot fetch the identity provider's keys; keeping the keys we had"
            ),
        }
    }

    async fn fetch(&self) -> anyhow::Result<KeySet> {
        let mut response = self
            .0
            .http
            .get(self.0.url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "the JWKS URL answered {}",
            response.status()
        );
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            anyhow::ensure!(
                body.len() + chunk.len() <= MAX_JWKS_BYTES,
                "the JWKS is larger than {MAX_JWKS_BYTES} bytes"
            );
            body.extend_from_slice(&chunk);
        }
        Ok(self.key_set(&body)?)
    }

    fn key_set(&self, body: &[u8]) -> Result<KeySet, serde_json::Error> {
        #[derive(Deserialize)]
        struct Document {
            keys: Vec<Value>,
        }
        let document: Document = serde_json::from_slice(body)?;
        let mut set = KeySet {
            fetched_at: Some(Instant::now()),
            ..KeySet::default()
        };
        for value in document.keys.into_iter().take(MAX_KEYS) {
            // One key we cannot use does not spoil the others.
            let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
                continue;
            };
            let Some(key) = self.verify_key(&jwk) else {
                continue;
            };
            match jwk.common.key_id {
                Some(kid) => {
                    set.by_kid.insert(kid, Arc::new(key));
                }
                None => set.without_kid.push(Arc::new(key)),
            }
        }
        Ok(set)
    }

    fn verify_key(&self, jwk: &Jwk) -> Option<VerifyKey> {
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            return None;
        }
        let kind = match jwk.algorithm {
            AlgorithmParameters::RSA(_) => KeyType::Rsa,
            AlgorithmParameters::EllipticCurve(_) => KeyType::Ec,
            AlgorithmParameters::OctetKeyPair(_) => KeyType::Ed,
            // A secret published in a JWKS is no secret: never verify with it. Unknown key
            // types are skipped too.
            _ => return None,
        };
        let pinned = match jwk.common.key_algorithm {
            None => None,
            Some(alg) => Some(Algorithm::try_from(alg).ok()?),
        };
        let key = DecodingKey::from_jwk(jwk).ok()?;
        self.0.rules.verify_key(key, kind, pinned)
    }
}
