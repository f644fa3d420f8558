//! The emulator's live side over real HTTP: clients connect with the service's real tokens
//! (validated as the signalling server would), publish, are listed and force-disconnected
//! through Vonage's REST paths, and every change reaches a callback receiver signed as
//! Vonage's secure callbacks are.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};
use vonage_sessions::emulator::{CallbackSettings, Emulator, Faults};

use crate::helpers::{APPLICATION_ID, Kind, TestApp, client, test_credentials};

pub(crate) const SESSION_SECRET: &str = "session-callback-secret-for-tests";
pub(crate) const ARCHIVE_SECRET: &str = "archive-callback-secret-for-tests";

/// A callback receiver that records `(authorization, body)` and answers 200.
pub(crate) async fn spawn_receiver() -> (String, Arc<Mutex<Vec<(Option<String>, Bytes)>>>) {
    type Seen = Arc<Mutex<Vec<(Option<String>, Bytes)>>>;
    async fn record(State(seen): State<Seen>, headers: HeaderMap, body: Bytes) -> &'static str {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        seen.lock().unwrap().push((auth, body));
        "ok"
    }
    let seen: Seen = Arc::default();
    let router = axum::Router::new()
        .route("/callbacks", axum::routing::post(record))
        .with_state(Arc::clone(&seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/callbacks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, seen)
}

/// An emulator sending callbacks to `callback_url`, signed with the test secrets.
pub(crate) async fn spawn_emulator_with_callbacks(callback_url: Option<String>) -> String {
    let emulator = Emulator::bind_with_callbacks(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        test_credentials(),
        Faults::default(),
        CallbackSettings {
            url: callback_url,
            session_secret: Some(SecretString::from(SESSION_SECRET)),
            archive_secret: Some(SecretString::from(ARCHIVE_SECRET)),
        },
    )
    .await
    .unwrap();
    let url = emulator.base_url();
    tokio::spawn(emulator.run_until(std::future::pending()));
    url
}

async fn post(url: &str, body: Value) -> reqwest::Response {
    client().post(url).json(&body).send().await.unwrap()
}

/// `method url` on Vonage's REST paths, authenticated as the application.
async fn vonage_rest(method: Method, url: &str) -> reqwest::Response {
    let (name, value) = Kind::Application.header();
    client()
        .request(method, url)
        .header(name, value)
        .send()
        .await
        .unwrap()
}

async fn wait_for(seen: &Mutex<Vec<(Option<String>, Bytes)>>, count: usize) {
    for _ in 0..200 {
        if seen.lock().unwrap().len() >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "expected {count} callbacks, got {}",
        seen.lock().unwrap().len()
    );
}

#[tokio::test]
async fn clients_connect_with_real_tokens_and_every_change_is_a_signed_callback() {
    let (callback_url, seen) = spawn_receiver().await;
    let upstream = spawn_emulator_with_callbacks(Some(callback_url)).await;
    let app = TestApp::spawn_against(Kind::Application, &upstream, "").await;
    let http = client();
    let (status, created) = app
        .create_session(&json!({"token": {"role": "subscriber", "data": "hello"}}))
        .await;
    assert_eq!(status, 201, "{created}");
    let session_id = created["sessionId"].as_str().unwrap().to_owned();
    let token = created["token"].as_str().unwrap().to_owned();
    let connections = format!("{upstream}/_emulator/sessions/{session_id}/connections");

    // A tampered token, a token of another session and no token are refused.
    let tampered = format!("{}x", &token[..token.len() - 1]);
    let response = post(&connections, json!({"token": tampered})).await;
    assert_eq!(response.status(), 403);
    assert_eq!(response.json::<Value>().await.unwrap()["code"], 1004);
    let (_, other) = app.create_session(&json!({})).await;
    let response = post(&connections, json!({"token": other["token"]})).await;
    assert_eq!(response.status(), 403);
    let response = post(&connections, json!({})).await;
    assert_eq!(response.status(), 400);

    let response = post(&connections, json!({"token": token})).await;
    assert_eq!(response.status(), 201);
    let connection: Value = response.json().await.unwrap();
    assert_eq!(connection["role"], "subscriber");
    assert_eq!(connection["data"], "hello");
    let connection_id = connection["connectionId"].as_str().unwrap().to_owned();

    let response = post(
        &format!("{connections}/{connection_id}/streams"),
        json!({"videoType": "screen", "name": "Ann"}),
    )
    .await;
    assert_eq!(response.status(), 201);

    // Vonage's list: no connection data.
    let rest = format!("{upstream}/v2/project/{APPLICATION_ID}/session/{session_id}/connection");
    let response = vonage_rest(Method::GET, &rest).await;
    assert_eq!(response.status(), 200);
    let list: Value = response.json().await.unwrap();
    assert_eq!(list["count"], 1);
    assert_eq!(list["items"][0]["connectionId"], connection_id.as_str());
    assert!(list["items"][0].get("data").is_none(), "{list}");
    let response = http.get(&rest).send().await.unwrap();
    assert_eq!(response.status(), 403, "no auth");

    let one = format!("{rest}/{connection_id}");
    let response = vonage_rest(Method::DELETE, &one).await;
    assert_eq!(response.status(), 204);
    let response = vonage_rest(Method::DELETE, &one).await;
    assert_eq!(response.status(), 404);

    wait_for(&seen, 4).await;
    let seen = seen.lock().unwrap().clone();
    let events: Vec<String> = seen
        .iter()
        .map(|(_, body)| {
            let body: Value = serde_json::from_slice(body).unwrap();
            body["event"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        events,
        [
            "connectionCreated",
            "streamCreated",
            "streamDestroyed",
            "connectionDestroyed"
        ]
    );
    for (auth, body) in &seen {
        let jwt = auth.as_deref().unwrap().strip_prefix("Bearer ").unwrap();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        let claims = jsonwebtoken::decode::<Value>(
            jwt,
            &DecodingKey::from_secret(SESSION_SECRET.as_bytes()),
            &validation,
        )
        .unwrap()
        .claims;
        assert_eq!(claims["iss"], "Vonage");
        assert_eq!(claims["application_id"], APPLICATION_ID);
        assert!(claims.get("exp").is_none());
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body);
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(claims["payload_hash"], hex.as_str());
        let body: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(body["applicationId"], APPLICATION_ID);
        assert_eq!(body["sessionId"], session_id.as_str());
        assert!(body["timestamp"].as_u64().unwrap() > 0);
    }
    let last: Value = serde_json::from_slice(&seen[3].1).unwrap();
    assert_eq!(last["reason"], "forceDisconnected");
    assert_eq!(last["connection"]["data"], "hello");
    let stream: Value = serde_json::from_slice(&seen[1].1).unwrap();
    assert_eq!(stream["stream"]["videoType"], "screen");
    assert_eq!(stream["stream"]["name"], "Ann");
    assert_eq!(stream["stream"]["connection"]["id"], connection_id.as_str());
}
