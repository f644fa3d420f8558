//! How Vonage's answers become ours, checked against a wiremock Vonage: what we send, and how
//! failures map to problem codes without echoing Vonage's body.

use std::time::Duration;

use serde_json::json;
use wiremock::matchers::{body_string_contains, header, header_exists, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{Kind, TestApp, assert_problem};

const SESSION_ID: &str = "1_MX4xMjM0NTZ-fjE3Mzk1Mzg4OTQ5NTl-UTltY1hHMVFyTjNUSVl1OHkrcHB4L2dzfn5-";

async fn app_against(server: &MockServer, kind: Kind, overrides: &str) -> TestApp {
    TestApp::spawn_against(kind, &server.uri(), overrides).await
}

#[tokio::test]
async fn legacy_create_sends_what_the_sdks_send() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/session/create"))
        .and(header("accept", "application/json"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(header_exists("x-opentok-auth"))
        .and(body_string_contains("p2p.preference=disabled"))
        .and(body_string_contains("archiveMode=manual"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            format!(r#"[{{"session_id":"{SESSION_ID}","project_id":"123456","partner_id":123456,"create_dt":"x"}}]"#),
            "application/json",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let app = app_against(&server, Kind::Legacy, "").await;
    let (status, body) = app.create_session(&json!({})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["sessionId"], SESSION_ID);
}

#[tokio::test]
async fn application_create_uses_a_bearer_jwt() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/session/create"))
        .and(wiremock::matchers::header_regex(
            "authorization",
            r"^Bearer [\w-]+\.[\w-]+\.[\w-]+$",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"session_id": SESSION_ID}])))
        .expect(1)
        .mount(&server)
        .await;
    let app = app_against(&server, Kind::Application, "").await;
    assert_eq!(app.create_session(&json!({})).await.0, 201);
}

#[tokio::test]
async fn vonage_failures_map_to_stable_codes_without_echoing_vonage() {
    let secret_body =
        r#"{"code":-1,"message":"internal detail 7f3a","description":"internal detail 7f3a"}"#;
    let cases = [
        (401, 502, "upstream_auth_failed"),
        (403, 502, "upstream_auth_failed"),
        (400, 502, "upstream_rejected"),
        (404, 502, "upstream_rejected"),
        (500, 502, "upstream_rejected"),
        (502, 502, "upstream_rejected"),
        (429, 503, "upstream_unavailable"),
        (503, 503, "upstream_unavailable"),
    ];
    for (vonage_status, status, code) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(vonage_status).set_body_raw(secret_body, "application/json"),
            )
            .mount(&server)
            .await;
        let app = app_against(&server, Kind::Legacy, "").await;
        let response = app.post_json("/sessions", &json!({})).await;
        let retry_after = response.headers().get("retry-after").cloned();
        let problem = assert_problem(response, status, code).await;
        assert!(
            !problem.to_string().contains("7f3a"),
            "Vonage's body is never echoed: {problem}"
        );
        if status == 503 {
            assert!(retry_after.is_some(), "503 carries Retry-After");
        }
    }
}

#[tokio::test]
async fn a_slow_vonage_is_504_and_an_unusable_reply_is_502() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let app = app_against(&server, Kind::Legacy, "[video]\ntimeout_ms = 300").await;
    assert_problem(
        app.post_json("/sessions", &json!({})).await,
        504,
        "upstream_timeout",
    )
    .await;

    for reply in ["[]", "<sessions/>", "{\"id\":1}", ""] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(reply, "application/json"))
            .mount(&server)
            .await;
        let app = app_against(&server, Kind::Legacy, "").await;
        assert_problem(
            app.post_json("/sessions", &json!({})).await,
            502,
            "upstream_rejected",
        )
        .await;
    }
}

#[tokio::test]
async fn an_unreachable_vonage_is_503() {
    // Port 9 (discard) on loopback has no listener here: the connection is refused.
    let app = TestApp::spawn_against(Kind::Legacy, "http://127.0.0.1:9", "").await;
    assert_problem(
        app.post_json("/sessions", &json!({})).await,
        503,
        "upstream_unavailable",
    )
    .await;
}
