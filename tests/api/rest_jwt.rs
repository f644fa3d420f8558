//! The REST JWT is reused across calls for `video.rest_jwt_reuse_seconds` (default 30) and
//! fresh per call with `0`; the emulator verifies every one of them either way.

use serde_json::{Value, json};

use crate::helpers::{Kind, TestApp, spawn_emulator};

/// Overrides for a service that signs a fresh REST JWT per call.
pub(crate) const NO_REUSE: &str = "[video]\nrest_jwt_reuse_seconds = 0\n";

/// Creates `n` sessions and returns the emulator's record of the calls.
async fn creates(app: &TestApp, n: usize) -> Vec<Value> {
    for _ in 0..n {
        let (status, body) = app.create_session(&json!({})).await;
        assert_eq!(status, 201, "{body}");
    }
    let requests = app.upstream_requests().await;
    assert_eq!(requests.len(), n);
    for request in &requests {
        // The emulator verified the signature and the claims of each call's JWT.
        assert_eq!(request["status"], 200, "{request}");
    }
    requests
}

fn jtis(requests: &[Value]) -> std::collections::HashSet<String> {
    requests
        .iter()
        .map(|r| r["auth"]["claims"]["jti"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn by_default_one_rest_jwt_serves_many_calls_and_is_verified_each_time() {
    for kind in [Kind::Application, Kind::Legacy] {
        let app = TestApp::spawn(kind).await;
        let requests = creates(&app, 5).await;
        assert_eq!(jtis(&requests).len(), 1, "{kind:?}: one JWT for 5 calls");
        let claims = &requests[0]["auth"]["claims"];
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            180,
            "well inside Vonage's 5-minute limit"
        );
    }
}

#[tokio::test]
async fn a_reused_rest_jwt_is_renewed_once_it_is_due() {
    let upstream = spawn_emulator().await;
    let app = TestApp::spawn_against(
        Kind::Legacy,
        &upstream,
        "[video]\nrest_jwt_reuse_seconds = 1\n",
    )
    .await;
    let first = creates(&app, 2).await;
    assert_eq!(jtis(&first).len(), 1);
    // `iat` has whole seconds: two seconds later the JWT is at least one second old.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (status, _) = app.create_session(&json!({})).await;
    assert_eq!(status, 201);
    let all = app.upstream_requests().await;
    assert_eq!(all.len(), 3);
    assert_eq!(all[2]["status"], 200);
    assert_eq!(jtis(&all).len(), 2, "renewed, with its own jti");
    assert!(all[2]["auth"]["claims"]["iat"].as_u64() > all[0]["auth"]["claims"]["iat"].as_u64());
}

#[tokio::test]
async fn zero_signs_a_fresh_rest_jwt_for_every_call() {
    for kind in [Kind::Application, Kind::Legacy] {
        let upstream = spawn_emulator().await;
        let app = TestApp::spawn_against(kind, &upstream, NO_REUSE).await;
        let requests = creates(&app, 3).await;
        assert_eq!(jtis(&requests).len(), 3, "{kind:?}");
    }
}
