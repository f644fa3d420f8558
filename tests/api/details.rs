//! Details that must not mislead: a 413 names the limit, 403s name the scope, a refused CORS
//! preflight is not a 405, the metrics' route labels are the OpenAPI path templates, and the
//! token lifetime rule (1 to 30 days, else 400; capped at `tokens.max_ttl_seconds`).

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Kind, TestApp, assert_problem, claims, spawn_emulator};

/// Asserts a problem answer with `status` and `code` whose detail contains `named`.
async fn assert_detail_names(response: reqwest::Response, status: u16, code: &str, named: &str) {
    let problem = assert_problem(response, status, code).await;
    assert!(
        problem["detail"].as_str().unwrap().contains(named),
        "{problem}"
    );
}

#[tokio::test]
async fn a_413_names_the_limit_and_403s_name_the_scope() {
    let upstream = spawn_emulator().await;
    let app =
        TestApp::spawn_against(Kind::Legacy, &upstream, "[server]\nbody_limit_bytes = 2048").await;
    let big = json!({"token": {"data": "x".repeat(4096)}});
    assert_detail_names(
        app.post_json("/sessions", &big).await,
        413,
        "payload_too_large",
        "2048 bytes",
    )
    .await;

    let moderator = json!({"token": {"role": "moderator"}});
    assert_detail_names(
        app.post_json("/sessions", &moderator).await,
        403,
        "role_not_allowed",
        "video:moderate",
    )
    .await;

    let (status, created) = app.create_session(&json!({})).await;
    assert_eq!(status, 201);
    let sid = created["sessionId"].as_str().unwrap();
    assert_detail_names(
        app.post_json(&format!("/sessions/{sid}/archives"), &json!({}))
            .await,
        403,
        "forbidden",
        "video:moderate",
    )
    .await;
}

#[tokio::test]
async fn a_refused_preflight_is_answered_without_cors_headers_not_405() {
    // No allowed origins at all (the production default).
    let app = TestApp::spawn(Kind::Legacy).await;
    let response = app
        .client
        .request(Method::OPTIONS, format!("{}/sessions", app.url))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert!(
        !response
            .headers()
            .keys()
            .any(|name| name.as_str().starts_with("access-control-")),
        "{:?}",
        response.headers()
    );
    // A plain OPTIONS (not a preflight) is still a 405.
    let plain = app
        .client
        .request(Method::OPTIONS, format!("{}/sessions", app.url))
        .send()
        .await
        .unwrap();
    assert_problem(plain, 405, "method_not_allowed").await;
}

#[tokio::test]
async fn route_labels_are_the_openapi_path_templates() {
    let app = TestApp::spawn(Kind::Legacy).await;
    let openapi: Value = serde_json::from_str(&vonage_sessions::routes::openapi_json()).unwrap();
    let paths = openapi["paths"].as_object().unwrap();
    for (template, operations) in paths {
        let method = operations.as_object().unwrap().keys().next().unwrap();
        let concrete = template
            .replace("{sessionId}", "1_MX4xMjM0NTZ-fjE2MDAwMDAwMDAwMDB-fn4")
            .replace("{archiveId}", "b40ef09b-3811-4726-b508-e41a0f96c68f")
            .replace("{room}", "labels")
            .replace("{connectionId}", "c0nnection")
            .replace("{streamId}", "5tream")
            .replace("{sub}", "user-1");
        let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
        app.client
            .request(method, format!("{}{concrete}", app.url))
            .send()
            .await
            .unwrap();
    }
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for template in paths.keys() {
        assert!(
            metrics.contains(&format!("route=\"{template}\"")),
            "no series for {template}:\n{metrics}"
        );
    }
    assert!(
        !metrics.contains("{session_id}") && !metrics.contains("{archive_id}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn ttl_seconds_over_30_days_is_a_400_and_over_the_configured_maximum_is_capped() {
    let upstream = spawn_emulator().await;
    let app = TestApp::spawn_against(
        Kind::Application,
        &upstream,
        "[tokens]\nmax_ttl_seconds = 3600",
    )
    .await;
    let (status, body) = app
        .create_session(&json!({"token": {"ttlSeconds": 30 * 86_400}}))
        .await;
    assert_eq!(status, 201, "{body}");
    let claims = claims(body["token"].as_str().unwrap());
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 3600, "capped to tokens.max_ttl_seconds: {claims}");
    assert_detail_names(
        app.post_json(
            "/sessions",
            &json!({"token": {"ttlSeconds": 30 * 86_400 + 1}}),
        )
        .await,
        400,
        "invalid_request",
        "token.ttlSeconds",
    )
    .await;
}
