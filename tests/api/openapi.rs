//! The OpenAPI document is generated from the code; the committed `openapi.json` must match it.
//! `UPDATE_OPENAPI=1 cargo test --test api openapi` rewrites the committed copy.

use crate::helpers::{Kind, TestApp};

#[tokio::test]
async fn served_openapi_matches_the_committed_copy() {
    let generated = vonage_sessions::routes::openapi_json();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi.json is out of date: run `UPDATE_OPENAPI=1 cargo test --test api openapi` and commit it"
    );

    let app = TestApp::spawn(Kind::Legacy).await;
    let served = app
        .client
        .get(format!("{}/openapi.json", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.text().await.unwrap(), generated);
    let doc: serde_json::Value = serde_json::from_str(&generated).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/sessions",
        "/sessions/{sessionId}/tokens",
        "/livez",
        "/readyz",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} documented");
    }
}
