//! Every failure is problem+json with a stable code, names the field at fault, and carries the
//! request ID.

use serde_json::json;

use crate::helpers::{Kind, TestApp, assert_problem};

#[tokio::test]
async fn malformed_json_is_invalid_json() {
    let app = TestApp::spawn(Kind::Legacy).await;
    for body in ["{", "{\"mediaMode\":", "[1,", "nope", "{\"foo\":"] {
        let response = app
            .client
            .post(format!("{}/sessions", app.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_problem(response, 400, "invalid_json").await;
    }
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let app = TestApp::spawn(Kind::Legacy).await;
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut request = app
            .client
            .post(format!("{}/sessions", app.url))
            .body("mediaMode=routed");
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        assert_problem(request.send().await.unwrap(), 415, "unsupported_media_type").await;
    }
    let charset = app
        .client
        .post(format!("{}/sessions", app.url))
        .header("content-type", "application/json; charset=utf-8")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(charset.status(), 201);
}

#[tokio::test]
async fn bodies_over_16_kib_are_413() {
    let app = TestApp::spawn(Kind::Legacy).await;
    let big = json!({"token": {"data": "x".repeat(17 * 1024)}});
    assert_problem(
        app.post_json("/sessions", &big).await,
        413,
        "payload_too_large",
    )
    .await;
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn bad_fields_are_invalid_request_naming_the_field() {
    let app = TestApp::spawn(Kind::Application).await;
    let cases = [
        (json!({"colour": "red"}), "colour"),
        (json!({"mediaMode": "p2p"}), "mediaMode"),
        (
            json!({"archiveMode": "always", "mediaMode": "relayed"}),
            "archiveMode",
        ),
        (json!({"e2ee": true, "mediaMode": "relayed"}), "e2ee"),
        (json!({"location": "eu"}), "location"),
        (json!({"location": "::1"}), "location"),
        (json!({"archiveName": "x"}), "archiveName"),
        (
            json!({"archiveMode": "always", "archiveName": "x".repeat(81)}),
            "archiveName",
        ),
        (
            json!({"archiveMode": "always", "archiveResolution": "800x600"}),
            "archiveResolution",
        ),
        (
            json!({"archiveResolution": "1280x720"}),
            "archiveResolution",
        ),
        (json!({"token": {"ttlSeconds": 0}}), "token.ttlSeconds"),
        (json!({"token": {"ttlSeconds": -5}}), "token.ttlSeconds"),
        (
            json!({"token": {"ttlSeconds": 2_592_001}}),
            "token.ttlSeconds",
        ),
        (json!({"token": {"role": "admin"}}), "token.role"),
        (json!({"token": {"data": "x".repeat(1001)}}), "token.data"),
        (
            json!({"token": {"initialLayoutClassList": ["a b"]}}),
            "token.initialLayoutClassList",
        ),
        (json!({"token": {"unknown": 1}}), "token"),
        (json!([]), "body"),
    ];
    for (body, field) in cases {
        let problem = assert_problem(
            app.post_json("/sessions", &body).await,
            400,
            "invalid_request",
        )
        .await;
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.starts_with(field),
            "{body} should name {field}: {detail}"
        );
    }
    assert!(
        app.upstream_sessions().await.is_empty(),
        "no invalid request reaches Vonage"
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems_too() {
    let app = TestApp::spawn(Kind::Legacy).await;
    let missing = app.get("/nowhere").await;
    assert_problem(missing, 404, "not_found").await;
    let wrong_method = app
        .client
        .delete(format!("{}/sessions", app.url))
        .send()
        .await
        .unwrap();
    assert_problem(wrong_method, 405, "method_not_allowed").await;
}

#[tokio::test]
async fn sane_request_ids_are_kept_and_others_replaced() {
    let app = TestApp::spawn(Kind::Legacy).await;
    let kept = app
        .client
        .get(format!("{}/livez", app.url))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(kept.headers()["x-request-id"], "abc-123");
    let insane = "x".repeat(200);
    let replaced = app
        .client
        .get(format!("{}/livez", app.url))
        .header("x-request-id", &insane)
        .send()
        .await
        .unwrap();
    let id = replaced.headers()["x-request-id"].to_str().unwrap();
    assert_ne!(id, insane);
    assert_eq!(id.len(), 36, "a generated UUID");
    let generated = app.get("/livez").await;
    assert!(generated.headers().contains_key("x-request-id"));
}
