//! Probes answer GET and HEAD and never touch Vonage.

use crate::helpers::{Kind, TestApp};

#[tokio::test]
async fn probes_answer_get_and_head_without_calling_vonage() {
    let app = TestApp::spawn(Kind::Application).await;
    for path in ["/livez", "/healthz", "/readyz"] {
        let get = app
            .client
            .get(format!("{}{path}", app.url))
            .send()
            .await
            .unwrap();
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

#[tokio::test]
async fn probes_stay_up_when_vonage_is_down() {
    let app = TestApp::spawn_against(Kind::Legacy, "http://127.0.0.1:9", "").await;
    let ready = app
        .client
        .get(format!("{}/readyz", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}
