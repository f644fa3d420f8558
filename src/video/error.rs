//! What a call to Vonage can fail with, shared by the client and its resilience layer.

use std::time::Duration;

use serde::Deserialize;

use super::credentials::CredentialsError;

/// A call to Vonage that did not produce what was asked for. `Clone`, so that requests sharing
/// one attempt (room single flight) can each answer with it.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum VideoError {
    /// No answer in time.
    #[error("the Video API did not answer within the timeout")]
    Timeout,
    /// The connection could not be made or broke before an answer.
    #[error("could not reach the Video API: {reason}")]
    Unreachable {
        /// What failed (refused, reset, DNS...).
        reason: String,
        /// True when the connection was never made, so nothing was sent: any call is safe to retry.
        before_sending: bool,
    },
    /// Vonage refused our credentials (401/403): a configuration problem, not the caller's.
    #[error("the Video API rejected our credentials (HTTP {status})")]
    AuthRejected {
        /// HTTP status from Vonage.
        status: u16,
        /// Vonage's error detail.
        detail: VonageErrorBody,
    },
    /// Vonage is overloaded or down (429, 503): worth retrying later.
    #[error("the Video API is unavailable (HTTP {status})")]
    Unavailable {
        /// HTTP status from Vonage.
        status: u16,
        /// Vonage's `Retry-After`, when given.
        retry_after: Option<Duration>,
        /// Vonage's error detail.
        detail: VonageErrorBody,
    },
    /// Any other non-success answer.
    #[error("the Video API refused the request (HTTP {status})")]
    Rejected {
        /// HTTP status from Vonage.
        status: u16,
        /// Vonage's error detail.
        detail: VonageErrorBody,
    },
    /// The circuit breaker is open: Vonage failed repeatedly and is not called for a while.
    #[error("the Video API is failing; not calling it for {} ms", retry_after.as_millis())]
    CircuitOpen {
        /// When calls will be tried again.
        retry_after: Duration,
    },
    /// Too many calls to Vonage are in flight already.
    #[error("too many calls to the Video API are in flight")]
    Saturated,
    /// A success status with a body we cannot use.
    #[error("the Video API answered with an unexpected body")]
    InvalidResponse,
    /// Our own signing failed.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
}

impl VideoError {
    /// A short label for metrics.
    pub(crate) fn outcome(&self) -> &'static str {
        match self {
            VideoError::Timeout => "timeout",
            VideoError::Unreachable { .. } => "unreachable",
            VideoError::AuthRejected { .. } => "auth_rejected",
            VideoError::Unavailable { .. } => "unavailable",
            VideoError::Rejected { .. } => "rejected",
            VideoError::CircuitOpen { .. } => "circuit_open",
            VideoError::Saturated => "saturated",
            VideoError::InvalidResponse => "invalid_response",
            VideoError::Credentials(_) => "credentials",
        }
    }
}

/// Vonage's JSON error body `{code, message, description}`, parsed leniently.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct VonageErrorBody {
    /// Vonage's numeric code, e.g. `-1` or `15008`.
    #[serde(default)]
    pub(crate) code: Option<i64>,
    /// Vonage's message.
    #[serde(default)]
    pub(crate) message: Option<String>,
}
