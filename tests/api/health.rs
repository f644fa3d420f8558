//! Probes answer GET and HEAD, never touch Vonage, and stay up while Vonage is down.

use crate::helpers::{Kind, TestApp, assert_problem};

#[tokio::test]
async fn probes_answer_get_and_head_without_calling_vonage() {
    let app = TestApp::spawn(Kind::Application).await;
    for path in ["/livez", "/healthz", "/readyz"] {
        let get = app.get(path).await;
        assert_eq!(get.status(), 200, "{path}");
        assert!(get.headers().contains_key("x-request-id"));
        let body: serde_json::Value = get.json().await.unwrap();
        assert_eq!(body["status"], "ok");
        let head = app
            .client
            .head(format!("{}{path}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), 200, "HEAD {path}");
    }
    assert!(
        app.upstream_requests().await.is_empty(),
        "probes never call Vonage"
    );
}

/// Vonage really down (nothing listens at the API URL): calls fail and open the breaker, yet
/// the probes stay 200, `/readyz` reporting the open breaker (README: it never fails for it).
#[tokio::test]
async fn probes_stay_up_and_readyz_reports_the_breaker_when_vonage_is_down() {
    let overrides =
        "[video]\nbreaker_failure_threshold = 1\nbreaker_open_ms = 60000\nmax_retries = 0\n";
    let app = TestApp::spawn_against(Kind::Legacy, "http://127.0.0.1:9", overrides).await;
    let ready: serde_json::Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["vonageBreaker"], "closed", "{ready}");
    assert_problem(
        app.post_json("/sessions", &serde_json::json!({})).await,
        503,
        "upstream_unavailable",
    )
    .await;
    for path in ["/livez", "/healthz", "/readyz"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path} with Vonage down");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["status"], "ok", "{path}: {body}");
        if path == "/readyz" {
            assert_eq!(body["vonageBreaker"], "open", "{body}");
        }
    }
}
