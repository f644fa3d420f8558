//! The OpenAPI document is generated from the code; the committed `openapi.json` must match it.
//! `UPDATE_OPENAPI=1 cargo test --test api openapi` rewrites the committed copy.

use crate::helpers::{Kind, TestApp};

#[tokio::test]
async fn served_openapi_matches_the_committed_copy() {
    let generated = vonage_sessions::routes::openapi_json();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    // Regenerating rewrites the file but still fails this run, so that a run with
    // UPDATE_OPENAPI set cannot pass over a stale copy.
    if committed != generated && std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(path, &generated).unwrap();
        panic!("openapi.json was out of date and is now rewritten: review and commit it");
    }
    assert!(
        committed == generated,
        "openapi.json is out of date: run `UPDATE_OPENAPI=1 cargo test --test api openapi` and commit it"
    );

    let app = TestApp::spawn(Kind::Legacy).await;
    let served = app.get("/openapi.json").await;
    assert_eq!(served.status(), 200);
    assert_eq!(served.text().await.unwrap(), generated);
    let doc: serde_json::Value = serde_json::from_str(&generated).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    // Every operation the router serves, with `security` on every one that has a caller.
    let operations = [
        ("post", "/sessions", true),
        ("post", "/sessions/{sessionId}/tokens", true),
        ("post", "/sessions/{sessionId}/archives", true),
        ("get", "/sessions/{sessionId}/archives", true),
        ("get", "/archives/{archiveId}", true),
        ("post", "/archives/{archiveId}/stop", true),
        ("post", "/rooms/{room}/join", true),
        ("get", "/rooms/{room}", true),
        ("put", "/rooms/{room}", true),
        ("delete", "/rooms/{room}", true),
        ("get", "/rooms/{room}/bans", true),
        ("delete", "/rooms/{room}/bans/{sub}", true),
        ("delete", "/rooms/{room}/connections/{connectionId}", true),
        (
            "post",
            "/rooms/{room}/connections/{connectionId}/signal",
            true,
        ),
        ("post", "/rooms/{room}/mute", true),
        ("delete", "/rooms/{room}/participants/{sub}", true),
        ("post", "/rooms/{room}/signal", true),
        ("get", "/rooms/{room}/streams", true),
        ("get", "/rooms/{room}/streams/{streamId}", true),
        ("post", "/rooms/{room}/streams/{streamId}/mute", true),
        ("get", "/sessions/{sessionId}/bans", true),
        ("delete", "/sessions/{sessionId}/bans/{sub}", true),
        (
            "delete",
            "/sessions/{sessionId}/connections/{connectionId}",
            true,
        ),
        (
            "post",
            "/sessions/{sessionId}/connections/{connectionId}/signal",
            true,
        ),
        ("get", "/sessions/{sessionId}/mute", true),
        ("post", "/sessions/{sessionId}/mute", true),
        ("delete", "/sessions/{sessionId}/participants/{sub}", true),
        ("post", "/sessions/{sessionId}/signal", true),
        ("get", "/sessions/{sessionId}/streams", true),
        ("get", "/sessions/{sessionId}/streams/{streamId}", true),
        (
            "post",
            "/sessions/{sessionId}/streams/{streamId}/mute",
            true,
        ),
        ("post", "/vonage/callbacks", false),
        ("get", "/livez", false),
        ("get", "/readyz", false),
    ];
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert_eq!(documented, operations.len(), "no undocumented extra");
    for (method, path, caller) in operations {
        let operation = &doc["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} documented");
        assert_eq!(
            operation["security"].is_array(),
            caller,
            "{method} {path} security"
        );
        let responses = operation["responses"].as_object().unwrap();
        if caller {
            for status in ["401", "403", "429", "503", "504"] {
                let problem = &responses[status]["content"]["application/problem+json"];
                assert!(problem.is_object(), "{method} {path} {status} is a problem");
            }
        }
    }
    let room = &doc["paths"]["/rooms/{room}"]["get"]["parameters"][0]["schema"];
    assert_eq!(room["maxLength"], 128, "{room}");
    assert!(room["pattern"].is_string(), "{room}");
}
