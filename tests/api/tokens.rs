//! `POST /sessions/{sessionId}/tokens`: ownership decided locally, nothing sent upstream.

use base64::Engine as _;
use serde_json::json;

use crate::helpers::{FOREIGN_SESSION_ID, Kind, TestApp, assert_problem, claims, spawn_emulator};

#[tokio::test]
async fn tokens_for_our_sessions_are_minted_without_calling_vonage() {
    for kind in [Kind::Application, Kind::Legacy] {
        let app = TestApp::spawn(kind).await;
        let (_, created) = app.create_session(&json!({})).await;
        let sid = created["sessionId"].as_str().unwrap();
        let before = app.upstream_requests().await.len();

        let response = app
            .post_json(
                &format!("/sessions/{sid}/tokens"),
                &json!({"role": "subscriber", "data": "x"}),
            )
            .await;
        assert_eq!(response.status(), 201);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["sessionId"], sid);
        assert_eq!(body["role"], "subscriber");
        assert_eq!(body["applicationId"], kind.owner());
        assert_eq!(body["apiKey"], kind.owner());
        assert!(body["expiresAt"].is_string());
        let token = claims(body["token"].as_str().unwrap());
        assert_eq!(token["session_id"], sid);
        assert_eq!(token["connection_data"], "x");
        assert_eq!(
            app.upstream_requests().await.len(),
            before,
            "nothing is sent upstream"
        );

        let empty = app
            .client
            .post(format!("{}/sessions/{sid}/tokens", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(empty.status(), 201);
    }
}

#[tokio::test]
async fn foreign_and_malformed_session_ids_are_not_found() {
    let app = TestApp::spawn(Kind::Legacy).await;
    for sid in [
        FOREIGN_SESSION_ID,
        "nonsense",
        "1_",
        "2_%21%21",
        &"1_MX4".repeat(60),
    ] {
        let response = app
            .post_json(&format!("/sessions/{sid}/tokens"), &json!({}))
            .await;
        assert_problem(response, 404, "session_not_found").await;
    }
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn t1_format_makes_legacy_t1_tokens_signed_with_hmac_sha1() {
    let upstream = spawn_emulator().await;
    let app =
        TestApp::spawn_against(Kind::Legacy, &upstream, "[tokens]\nlegacy_format = \"t1\"").await;
    let (status, body) = app
        .create_session(&json!({"token": {"data": "name=Ada"}}))
        .await;
    assert_eq!(status, 201);
    let token = body["token"].as_str().unwrap();
    let inner = base64::engine::general_purpose::STANDARD
        .decode(token.strip_prefix("T1==").unwrap())
        .unwrap();
    let inner = String::from_utf8(inner).unwrap();
    let (head, data) = inner.split_once(':').unwrap();
    assert!(head.starts_with("partner_id=123456&sig="), "{head}");
    let fields: std::collections::HashMap<String, String> = form_urlencoded::parse(data.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(fields["session_id"], body["sessionId"].as_str().unwrap());
    assert_eq!(fields["role"], "publisher");
    assert_eq!(fields["connection_data"], "name=Ada");
}
