//! The receiver behind `POST /vonage/callbacks` (docs/callbacks.md, "The receiver"): the
//! source's rate limit, the payload read from the exact bytes, verification
//! ([`super::verify`]), the unsigned policy, the `jti` claimed once, then the sink. Every
//! refusal is logged once at WARN with its reason (never the token) and counted in
//! `callbacks_received_total{kind,event,outcome}`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::event::{Callback, parse};
use super::limit::CallbackLimiter;
use super::replay::ReplayStore;
use super::verify::{Owner, Refusal, Verifier};
use super::{Applied, CallbackSink};
use crate::auth::client_ip::TrustedProxies;
use crate::config::Config;
use crate::error::ApiError;
use crate::rooms::store::StoreError;

/// The receiver's configuration and stores. Built once in `app`.
#[derive(Debug)]
pub(crate) struct Receiver {
    enabled: bool,
    verifier: Verifier,
    limiter: CallbackLimiter,
    replay: Arc<dyn ReplayStore>,
    allow_unsigned: bool,
    trusted_sources: Option<TrustedProxies>,
    trusted_proxies: TrustedProxies,
    jti_ttl: Duration,
}

/// The event label: known event names, `archive`, else `other` (a sender cannot mint series).
fn event_label(callback: &Callback) -> &'static str {
    match callback {
        Callback::Archive(_) => "archive",
        Callback::Session(event) => event.kind.label(),
    }
}

fn count(kind: &'static str, event: &'static str, outcome: &'static str) {
    metrics::counter!("callbacks_received_total", "kind" => kind, "event" => event, "outcome" => outcome)
        .increment(1);
}

fn refuse(
    kind: &'static str,
    event: &'static str,
    reason: &'static str,
    ip: IpAddr,
    error: ApiError,
) -> ApiError {
    refuse_because(kind, event, reason, ip, "", error)
}

/// Counts and logs one refusal; `detail` says more (a store error), never a token.
fn refuse_because(
    kind: &'static str,
    event: &'static str,
    reason: &'static str,
    ip: IpAddr,
    detail: &str,
    error: ApiError,
) -> ApiError {
    count(kind, event, reason);
    tracing::warn!(
        callback.kind = kind,
        callback.event = event,
        callback.reason = reason,
        callback.detail = detail,
        client.ip = %ip,
        "callback refused"
    );
    error
}

/// Epoch milliseconds now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Receiver {
    /// The receiver of `[callbacks]` for callbacks to `owner`, claiming `jti`s in `replay`;
    /// sources are resolved through `auth.trusted_proxies`.
    pub(crate) fn new(config: &Config, owner: Owner, replay: Arc<dyn ReplayStore>) -> Self {
        let trusted_proxies = TrustedProxies::new(&config.auth);
        let config = &config.callbacks;
        Self {
            trusted_proxies,
            enabled: config.enabled,
            verifier: Verifier::new(
                config.session_secret.as_ref(),
                config.archive_secret.as_ref(),
                owner,
                config.max_age_seconds,
                config.clock_skew_seconds,
            ),
            limiter: CallbackLimiter::new(config.per_minute, config.burst),
            replay,
            allow_unsigned: config.allow_unsigned,
            // Parsed with the config.
            trusted_sources: (!config.trusted_source_nets.is_empty())
                .then(|| TrustedProxies::from_nets(config.trusted_source_nets.clone())),
            jti_ttl: Duration::from_secs(config.max_age_seconds + config.clock_skew_seconds),
        }
    }

    /// Handles one delivery: verifies it and hands it to `sink`. `Ok` is answered 204.
    pub(crate) async fn receive(
        &self,
        parts: &Parts,
        body: &[u8],
        sink: &dyn CallbackSink,
    ) -> Result<Applied, ApiError> {
        if !self.enabled {
            return Err(ApiError::NotFound);
        }
        let ip = self.trusted_proxies.client_ip(parts);
        let headers = &parts.headers;
        if let Err(limited) = self.limiter.check(ip) {
            return Err(refuse(
                "unknown",
                "unknown",
                "rate_limited",
                ip,
                ApiError::RateLimited(limited),
            ));
        }
        let callback = match parse(body) {
            Ok(callback) => callback,
            Err(error) => {
                let refused = ApiError::invalid("body", error.0);
                return Err(refuse("unknown", "unknown", "unparsable", ip, refused));
            }
        };
        let kind = callback.kind().as_str();
        let event = event_label(&callback);
        let received_at = now_ms();
        let authorization = headers.get(AUTHORIZATION).map(|value| value.as_bytes());
        let verified = self
            .verifier
            .verify(authorization, body, &callback, received_at / 1000);
        // No secret for the kind is its own answer; every other refusal is unauthorized.
        let refused = |refusal: Refusal| {
            let error = match refusal {
                Refusal::NotConfigured => ApiError::CallbacksNotConfigured,
                _ => ApiError::CallbackUnauthorized,
            };
            refuse(kind, event, refusal.as_str(), ip, error)
        };
        // The replay store or the sink failed: 503, with the store's error in the log.
        let store_failed = |error: StoreError| {
            refuse_because(
                kind,
                event,
                "store_unavailable",
                ip,
                &error.to_string(),
                ApiError::StoreUnavailable,
            )
        };
        let jti = match verified {
            Ok(verified) => Some(verified.jti),
            Err(Refusal::Unsigned) => {
                let trusted = self
                    .trusted_sources
                    .as_ref()
                    .is_none_or(|sources| sources.trusts(ip));
                if !(self.allow_unsigned && trusted) {
                    let reason = if self.allow_unsigned {
                        "untrusted_source"
                    } else {
                        "unsigned"
                    };
                    return Err(refuse(kind, event, reason, ip, ApiError::CallbackUnsigned));
                }
                if self.verifier.foreign(&callback) {
                    return Err(refused(Refusal::Owner));
                }
                None
            }
            Err(refusal) => return Err(refused(refusal)),
        };
        if let Some(jti) = &jti {
            match self.replay.claim("jti", jti, self.jti_ttl).await {
                Ok(true) => {}
                Ok(false) => {
                    return Err(refuse(
                        kind,
                        event,
                        "replayed",
                        ip,
                        ApiError::CallbackUnauthorized,
                    ));
                }
                Err(error) => return Err(store_failed(error)),
            }
        }
        match sink.apply(&callback, received_at).await {
            Ok(applied) => {
                count(kind, event, applied.as_str());
                tracing::debug!(
                    callback.kind = kind,
                    callback.event = event,
                    callback.outcome = applied.as_str(),
                    callback.signed = jti.is_some(),
                    "callback received"
                );
                Ok(applied)
            }
            Err(error) => {
                // Not applied: give the jti back, so Vonage's retry (maybe the same token) passes.
                if let Some(jti) = &jti
                    && let Err(release) = self.replay.release("jti", jti).await
                {
                    tracing::warn!(error = %release, "a callback's jti could not be released");
                }
                Err(store_failed(error))
            }
        }
    }
}
