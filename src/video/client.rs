//! The HTTP client for the Vonage Video REST API: one shared `reqwest::Client` with connect and
//! total timeouts, a fresh auth JWT per call, and tolerant parsing of what comes back.

use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, HeaderValue, RETRY_AFTER};
use serde::Deserialize;
use url::Url;

use super::credentials::Credentials;
pub(crate) use super::error::{VideoError, VonageErrorBody};
use super::options::SessionOptions;
use super::resilience::{CircuitBreaker, RetryPolicy, is_outage, is_retryable};
use super::rest_jwt::RestAuth;
use crate::metrics::Cached;

/// Connection settings for the Video API.
#[derive(Debug, Clone)]
pub(crate) struct ClientSettings {
    /// Base URL, e.g. `https://video.api.vonage.com` or an emulator.
    pub(crate) base_url: Url,
    /// Time allowed to establish a connection.
    pub(crate) connect_timeout: Duration,
    /// Time allowed for one attempt, connection included.
    pub(crate) timeout: Duration,
    /// Time allowed for a whole call, retries and backoff included.
    pub(crate) deadline: Duration,
    /// Retries of transient failures.
    pub(crate) retry: RetryPolicy,
    /// Most calls to Vonage in flight at once; more are refused at once (`Saturated`).
    pub(crate) max_concurrent_calls: usize,
    /// Consecutive failed calls that open the circuit breaker.
    pub(crate) breaker_threshold: u32,
    /// How long the open breaker refuses calls before probing.
    pub(crate) breaker_open_for: Duration,
    /// How long one REST JWT is reused (`video.rest_jwt_reuse_seconds`; 0: one per call).
    pub(crate) rest_jwt_reuse_secs: u64,
}

/// The Video API client. Cheap to clone: the HTTP client and credentials are shared.
#[derive(Debug, Clone)]
pub(crate) struct VideoClient {
    http: reqwest::Client,
    base_url: Url,
    create_session_url: Url,
    credentials: Arc<Credentials>,
    guard: Arc<Guard>,
}

/// What every call shares: the policies, the breaker and the concurrency limit.
#[derive(Debug)]
struct Guard {
    attempt_timeout: Duration,
    deadline: Duration,
    retry: RetryPolicy,
    breaker: CircuitBreaker,
    calls: tokio::sync::Semaphore,
    rest_auth: RestAuth,
}

/// `vonage_calls_total` and `vonage_call_duration_seconds`, by operation and outcome.
static CALLS: LazyLock<Cached<2, (metrics::Counter, metrics::Histogram)>> = LazyLock::new(|| {
    Cached::new(|[operation, outcome]| {
        let labels = [("operation", operation), ("outcome", outcome)];
        (
            metrics::counter!("vonage_calls_total", &labels),
            metrics::histogram!("vonage_call_duration_seconds", &labels),
        )
    })
});

impl VideoClient {
    /// Builds the one HTTP client the service uses for Vonage.
    pub(crate) fn new(
        settings: &ClientSettings,
        credentials: Arc<Credentials>,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.timeout)
            .user_agent(concat!(
                env!("CARGO_PKG_NAME"),
                "/",
                env!("CARGO_PKG_VERSION")
            ))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()?;
        // `base_url` is http(s) (checked by config), so it always has path segments.
        let mut create_session_url = settings.base_url.clone();
        if let Ok(mut segments) = create_session_url.path_segments_mut() {
            segments.pop_if_empty().extend(["session", "create"]);
        }
        let guard = Guard {
            attempt_timeout: settings.timeout,
            deadline: settings.deadline,
            retry: settings.retry.clone(),
            breaker: CircuitBreaker::new(settings.breaker_threshold, settings.breaker_open_for),
            calls: tokio::sync::Semaphore::new(settings.max_concurrent_calls),
            rest_auth: RestAuth::new(credentials.clone(), settings.rest_jwt_reuse_secs),
        };
        Ok(Self {
            http,
            base_url: settings.base_url.clone(),
            create_session_url,
            credentials,
            guard: Arc::new(guard),
        })
    }

    /// The circuit breaker's state: `closed`, `half-open` or `open`.
    pub(crate) fn breaker_state(&self) -> &'static str {
        self.guard.breaker.state_name()
    }

    /// Runs one logical call: admitted by the breaker and the concurrency limit, then attempted
    /// until it succeeds, fails for good, runs out of retries, or would overrun the deadline.
    /// `attempt` gets the time it may take. Vonage's `Retry-After` is honoured when it fits.
    pub(super) async fn call<T, F, Fut>(
        &self,
        operation: &'static str,
        retry_when: fn(&VideoError) -> bool,
        attempt: F,
    ) -> Result<T, VideoError>
    where
        F: Fn(Duration) -> Fut,
        Fut: Future<Output = Result<T, VideoError>>,
    {
        let guard = &self.guard;
        let ticket = guard
            .breaker
            .admit()
            .map_err(|retry_after| VideoError::CircuitOpen { retry_after })?;
        let Ok(_permit) = guard.calls.try_acquire() else {
            metrics::counter!("load_shed_total", "limit" => "vonage_calls").increment(1);
            return Err(VideoError::Saturated);
        };
        let started = Instant::now();
        let deadline = started + guard.deadline;
        let mut retries = 0;
        let result = loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break Err(VideoError::Timeout);
            }
            let error = match attempt(remaining.min(guard.attempt_timeout)).await {
                Ok(value) => break Ok(value),
                Err(error) if retries < guard.retry.max_retries && retry_when(&error) => error,
                Err(error) => break Err(error),
            };
            let wait = match &error {
                VideoError::Unavailable {
                    retry_after: Some(after),
                    ..
                } => *after,
                _ => guard.retry.backoff(retries),
            };
            if Instant::now() + wait >= deadline {
                break Err(error);
            }
            retries += 1;
            metrics::counter!("vonage_retries_total", "operation" => operation).increment(1);
            tracing::debug!(operation, retry = retries, wait_ms = wait.as_millis() as u64, %error, "retrying a Vonage call");
            tokio::time::sleep(wait).await;
        };
        ticket.record(result.as_ref().err().is_some_and(is_outage));
        let outcome = match &result {
            Ok(_) => "ok",
            Err(error) => error.outcome(),
        };
        let (calls, duration) = CALLS.get([operation, outcome]);
        calls.increment(1);
        duration.record(started.elapsed().as_secs_f64());
        result
    }

    /// Creates a session: `POST /session/create` with a form body
    /// (<https://tokbox.com/developer/rest/#session_id_production>). Returns the session ID.
    /// The span is DEBUG: its one field is set after the last line logged inside it, so at INFO
    /// it adds nothing to any line, and creating it cost every create a span (and a field
    /// recording) per request.
    #[tracing::instrument(name = "vonage.create_session", level = "debug", skip_all, fields(vonage.session_id))]
    pub(crate) async fn create_session(
        &self,
        options: &SessionOptions,
    ) -> Result<String, VideoError> {
        let form = options.form_fields();
        let session_id = self
            .call("create_session", is_retryable, |timeout| {
                self.create_session_once(&form, timeout)
            })
            .await?;
        tracing::Span::current().record("vonage.session_id", session_id.as_str());
        Ok(session_id)
    }

    async fn create_session_once(
        &self,
        form: &[(&str, String)],
        timeout: Duration,
    ) -> Result<String, VideoError> {
        let request = self.request(reqwest::Method::POST, self.create_session_url.clone())?;
        let body = self.execute(request.form(form), timeout).await?;
        parse_created_session(&body).ok_or(VideoError::InvalidResponse)
    }

    /// A request with the REST auth JWT (reused for `rest_jwt_reuse_secs`) and
    /// `Accept: application/json`.
    pub(super) fn request(
        &self,
        method: reqwest::Method,
        url: Url,
    ) -> Result<reqwest::RequestBuilder, VideoError> {
        let (auth_name, auth_value) = self
            .guard
            .rest_auth
            .header(jsonwebtoken::get_current_timestamp())?;
        Ok(self
            .http
            .request(method, url)
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .header(auth_name, auth_value))
    }

    /// Sends one attempt and returns the body of a success; failures become `VideoError`s.
    pub(super) async fn execute(
        &self,
        request: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<bytes::Bytes, VideoError> {
        let response = request
            .timeout(timeout)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(parse_retry_after);
        let body = response.bytes().await.map_err(transport_error)?;
        if !status.is_success() {
            return Err(status_error(status, retry_after, &body));
        }
        Ok(body)
    }

    /// `{base}/v2/project/{owner}/...`: the JSON API of archives and everything else.
    pub(super) fn project_url(&self, tail: &[&str]) -> Url {
        let mut url = self.base_url.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments
                .pop_if_empty()
                .extend(["v2", "project", self.credentials.owner()])
                .extend(tail);
        }
        url
    }
}

fn transport_error(error: reqwest::Error) -> VideoError {
    if error.is_timeout() {
        return VideoError::Timeout;
    }
    // The chain names the cause (refused, reset, DNS); it holds no credentials.
    let mut reason = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        reason.push_str(": ");
        reason.push_str(&cause.to_string());
        source = cause.source();
    }
    VideoError::Unreachable {
        reason,
        before_sending: error.is_connect(),
    }
}

fn status_error(status: StatusCode, retry_after: Option<Duration>, body: &[u8]) -> VideoError {
    let detail = serde_json::from_slice::<VonageErrorBody>(body).unwrap_or_default();
    let status_code = status.as_u16();
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => VideoError::AuthRejected {
            status: status_code,
            detail,
        },
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
            VideoError::Unavailable {
                status: status_code,
                retry_after,
                detail,
            }
        }
        _ => VideoError::Rejected {
            status: status_code,
            detail,
        },
    }
}

/// `Retry-After` in seconds (the HTTP-date form is not used by Vonage).
fn parse_retry_after(value: &HeaderValue) -> Option<Duration> {
    value
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// The SDKs read `[0].session_id` and ignore everything else, whose types vary between
/// deployments; a bare object is accepted too. The shape is told by the first byte rather than
/// by an untagged enum, which buffers the whole reply (every field, as owned strings) before it
/// tries a variant.
fn parse_created_session(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Created {
        session_id: String,
    }
    let session_id = match body.iter().find(|byte| !byte.is_ascii_whitespace())? {
        b'[' => {
            serde_json::from_slice::<Vec<Created>>(body)
                .ok()?
                .into_iter()
                .next()?
                .session_id
        }
        _ => serde_json::from_slice::<Created>(body).ok()?.session_id,
    };
    (!session_id.is_empty()).then_some(session_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_recorded_replies_and_ignores_varying_fields() {
        let recorded = br#"[{"session_id":"1_MX40NzY2NTk3MX5-","project_id":"47665971","partner_id":47665971,
            "create_dt":"Fri Feb 14 05:14:54 PST 2025","session_status":null,"ice_credential_expiration":86100}]"#;
        assert_eq!(
            parse_created_session(recorded).as_deref(),
            Some("1_MX40NzY2NTk3MX5-")
        );
        assert_eq!(
            parse_created_session(br#"{"session_id":"2_abc"}"#).as_deref(),
            Some("2_abc")
        );
        for bad in [
            &b"[]"[..],
            b"",
            b"<sessions/>",
            br#"[{"session_id":""}]"#,
            br#"[{"id":"x"}]"#,
        ] {
            assert_eq!(parse_created_session(bad), None);
        }
    }

    #[test]
    fn statuses_map_to_error_kinds() {
        let body =
            br#"{"code":-1,"message":"Invalid signature","description":"Invalid signature"}"#;
        let VideoError::AuthRejected { detail, .. } =
            status_error(StatusCode::FORBIDDEN, None, body)
        else {
            panic!("403 is an auth rejection")
        };
        assert_eq!(detail.code, Some(-1));
        assert!(matches!(
            status_error(
                StatusCode::TOO_MANY_REQUESTS,
                Some(Duration::from_secs(2)),
                b""
            ),
            VideoError::Unavailable {
                status: 429,
                retry_after: Some(_),
                ..
            }
        ));
        assert!(matches!(
            status_error(StatusCode::BAD_GATEWAY, None, b"<html>"),
            VideoError::Rejected { status: 502, .. }
        ));
    }
}
