//! CORS for browsers (README "Who may call"): an exact allow-list of origins (`cors.allowed_origins`),
//! with tower-http's `CorsLayer` answering preflights and adding the headers. A request from an
//! origin not on the list, or to a probe or `/metrics`, bypasses the layer entirely: it gets no
//! CORS headers at all (the browser then blocks the page from reading the answer), and its
//! preflight is answered as a preflight, 204 without CORS headers (so the browser refuses to send
//! the request), with the reason in the log. Requests without `Origin` (servers, probes) are
//! never refused.
//!
//! Entries are `scheme://host[:port]` exactly as browsers send them, `scheme://host:*` for any
//! port of one host (what `dev` uses for `http://localhost:*`), or `"*"` alone, which allows
//! every origin and is refused together with `cors.allow_credentials`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::CorsConfig;

/// Paths that are never cross-origin resources: probes, `/metrics`, and Vonage's callbacks
/// (server to server; a browser has no business posting them).
fn is_outside_cors(path: &str) -> bool {
    super::is_probe(path) || path == "/metrics" || path == "/vonage/callbacks"
}

#[derive(Debug)]
enum Origins {
    /// `"*"`.
    Any,
    /// Exact origins, and `scheme://host:` prefixes for any-port entries.
    List {
        exact: Vec<String>,
        any_port: Vec<String>,
    },
}

impl Origins {
    fn allows(&self, origin: &HeaderValue) -> bool {
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        match self {
            Origins::Any => true,
            Origins::List { exact, any_port } => {
                exact.iter().any(|allowed| allowed == origin)
                    || any_port.iter().any(|prefix| {
                        origin.strip_prefix(prefix.as_str()).is_some_and(|port| {
                            !port.is_empty()
                                && port.len() <= 5
                                && port.bytes().all(|b| b.is_ascii_digit())
                        })
                    })
            }
        }
    }
}

/// The CORS policy of `[cors]`, applied by `front`.
#[derive(Debug, Clone, Default)]
pub(crate) struct CorsPolicy(Option<Arc<(Origins, CorsLayer)>>);

impl CorsPolicy {
    /// The policy of a validated `[cors]` (no origins: every request passes untouched).
    pub(crate) fn new(config: &CorsConfig) -> Self {
        if config.allowed_origins.is_empty() {
            return Self(None);
        }
        let any = config.allowed_origins.iter().any(|o| o == "*");
        let origins = if any {
            Origins::Any
        } else {
            let (wild, exact): (Vec<&String>, Vec<&String>) = config
                .allowed_origins
                .iter()
                .partition(|o| o.ends_with(":*"));
            Origins::List {
                exact: exact.into_iter().cloned().collect(),
                any_port: wild
                    .into_iter()
                    .map(|o| format!("{}:", o.trim_end_matches(":*")))
                    .collect(),
            }
        };
        let mut layer = CorsLayer::new()
            .allow_methods([Method::GET, Method::HEAD, Method::POST, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("x-request-id"),
            ])
            .expose_headers([
                HeaderName::from_static("x-request-id"),
                header::RETRY_AFTER,
                header::WWW_AUTHENTICATE,
                HeaderName::from_static("ratelimit-limit"),
                HeaderName::from_static("ratelimit-remaining"),
                HeaderName::from_static("ratelimit-reset"),
                HeaderName::from_static("ratelimit-policy"),
            ])
            .max_age(Duration::from_secs(config.max_age_seconds));
        layer = if any {
            // Validation refuses `*` with credentials, so tower-http's assertion cannot fire.
            layer.allow_origin(AllowOrigin::any())
        } else {
            // Only origins that passed `Origins::allows` ever reach the layer.
            layer
                .allow_origin(AllowOrigin::mirror_request())
                .allow_credentials(config.allow_credentials)
        };
        Self(Some(Arc::new((origins, layer))))
    }

    #[cfg(test)]
    fn allows(&self, origin: &HeaderValue) -> bool {
        self.0.as_ref().is_some_and(|inner| inner.0.allows(origin))
    }
}

impl CorsPolicy {
    /// The CORS layer for `request` when it comes from an allowed origin; `None` (the request
    /// bypasses CORS) without `Origin`, from any other origin, and for probes and `/metrics`.
    pub(crate) fn layer_for(&self, request: &Request) -> Option<&CorsLayer> {
        let (origins, layer) = self.0.as_deref()?;
        let origin = request.headers().get(header::ORIGIN)?;
        (origins.allows(origin) && !is_outside_cors(request.uri().path())).then_some(layer)
    }

    /// For a CORS preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) that
    /// [`CorsPolicy::layer_for`] does not answer: why it is refused, for the log line.
    pub(crate) fn refused_preflight(&self, request: &Request) -> Option<&'static str> {
        let headers = request.headers();
        if request.method() != Method::OPTIONS
            || !headers.contains_key(header::ORIGIN)
            || !headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            return None;
        }
        Some(match self.0.as_deref() {
            None => "cors.allowed_origins is empty: no browser origin may call",
            Some(_) if is_outside_cors(request.uri().path()) => {
                "probes, /metrics and /vonage/callbacks are not cross-origin resources"
            }
            Some((origins, _))
                if !headers
                    .get(header::ORIGIN)
                    .is_some_and(|o| origins.allows(o)) =>
            {
                "the origin is not in cors.allowed_origins"
            }
            Some(_) => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::check_origin;

    #[test]
    fn origins_must_be_exact() {
        for good in [
            "https://app.example.com",
            "http://127.0.0.1:5173",
            "http://localhost:*",
            "https://[::1]:8443",
        ] {
            assert!(check_origin(good).is_ok(), "{good}");
        }
        for bad in [
            "https://app.example.com/",
            "https://App.example.com",
            "app.example.com",
            "ftp://x.example",
            "https://x.example/path",
            "https://x.example:443",
            "http://localhost:80:*",
            "null",
        ] {
            assert!(check_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn any_port_entries_match_only_ports() {
        let policy = CorsPolicy::new(&CorsConfig {
            allowed_origins: vec!["http://localhost:*".into(), "https://a.example".into()],
            allow_credentials: false,
            max_age_seconds: 60,
        });
        let allows = |o: &'static str| policy.allows(&HeaderValue::from_static(o));
        assert!(allows("http://localhost:5173"));
        assert!(allows("https://a.example"));
        assert!(!allows("http://localhost"));
        assert!(!allows("http://localhost:5173.evil.example"));
        assert!(!allows("http://localhost:abc"));
        assert!(!allows("https://a.example.evil.example"));
        assert!(!allows("https://b.example"));
    }
}
