//! The Vonage Video API emulator over real HTTP: auth, form handling, responses, faults, the
//! `/_emulator/*` control endpoints and shutdown.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use serde_json::{Value, json};
use vonage_sessions::emulator::{Emulator, EmulatorCredentials, Faults};
use vonage_sessions::video::session_id::{self, DecodedSessionId};

use crate::helpers::{
    API_KEY, API_SECRET as SECRET, APPLICATION_ID as APP_ID, PRIVATE_KEY, TestEmulator,
};

/// One auth header to send, or none.
type Auth = Option<(&'static str, String)>;

impl TestEmulator {
    /// `POST /session/create` with an optional auth header and a form body (none if empty).
    async fn create(&self, auth: Auth, body: &str) -> reqwest::Response {
        let url = format!("{}/session/create", self.url);
        let mut request = self.http.post(url).header("accept", "application/json");
        if let Some((name, value)) = auth {
            request = request.header(name, value);
        }
        if !body.is_empty() {
            let form = "application/x-www-form-urlencoded";
            request = request.header(CONTENT_TYPE, form).body(body.to_owned());
        }
        request.send().await.expect("the emulator answers")
    }

    /// Calls a control endpoint; `null` for an empty body.
    async fn control(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("control answers");
        response.json().await.unwrap_or(Value::Null)
    }

    async fn read(&self, path: &str) -> Value {
        self.control(Method::GET, path, None).await
    }
}

fn now() -> i64 {
    let elapsed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(elapsed.as_secs()).unwrap()
}

fn sign(algorithm: Algorithm, claims: &Value, key: &EncodingKey) -> String {
    jsonwebtoken::encode(&Header::new(algorithm), claims, key).unwrap()
}

fn hs256(claims: &Value, secret: &str) -> String {
    let key = EncodingKey::from_secret(secret.as_bytes());
    sign(Algorithm::HS256, claims, &key)
}

fn rs256(claims: &Value) -> String {
    let key = EncodingKey::from_rsa_pem(PRIVATE_KEY.as_bytes()).expect("fixture private key");
    sign(Algorithm::RS256, claims, &key)
}

/// `X-OPENTOK-AUTH` with opentok-Python-like claims, patched (`null` removes a claim).
fn legacy(patch: Value, secret: &str) -> Auth {
    let mut claims =
        json!({"iss": API_KEY, "ist": "project", "iat": now(), "exp": now() + 180, "jti": "0.4"});
    let object = claims.as_object_mut().unwrap();
    for (key, value) in patch.as_object().unwrap() {
        if value.is_null() {
            object.remove(key);
        } else {
            object.insert(key.clone(), value.clone());
        }
    }
    Some(("x-opentok-auth", hs256(&claims, secret)))
}

fn good_legacy() -> Auth {
    legacy(json!({}), SECRET)
}

fn bearer(token: String) -> Auth {
    Some(("authorization", format!("Bearer {token}")))
}

/// Asserts a 200 with the exact content type and one session; returns that session.
async fn created(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body.as_array().map(Vec::len), Some(1), "{body}");
    body[0].clone()
}

fn decoded(session: &Value) -> DecodedSessionId {
    session_id::decode(session["session_id"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn legacy_create_returns_one_session_owned_by_the_api_key() {
    let emulator = TestEmulator::spawn(Faults::default()).await;
    let response = emulator.create(good_legacy(), "archiveMode=manual").await;
    let session = created(response).await;
    assert_eq!(decoded(&session).owner, API_KEY);
    assert_eq!(session["project_id"], API_KEY);
    assert_eq!(session["partner_id"], API_KEY);
    assert_eq!(session["media_server_url"], "");
    assert_eq!(session["ice_credential_expiration"], 86100);
    assert!(session["create_dt"].as_str().unwrap().contains(" UTC "));
    assert_eq!(session["session_segment_id"].as_str().unwrap().len(), 36);
    assert!(session["session_status"].is_null());
}

#[tokio::test]
async fn application_create_returns_a_session_owned_by_the_application() {
    let emulator = TestEmulator::spawn(Faults::default()).await;
    let claims = json!({"application_id": APP_ID, "iat": now(), "exp": now() + 900, "jti": "u"});
    let session = created(emulator.create(bearer(rs256(&claims)), "").await).await;
    assert_eq!(decoded(&session).owner, APP_ID);
    assert_eq!(session["project_id"], APP_ID);
}

#[tokio::test]
async fn bad_auth_is_refused_with_403_and_the_real_error_shape() {
    let emulator = TestEmulator::spawn(Faults::default()).await;
    let (now, secret) = (now(), SECRET);
    let app = json!({"application_id": APP_ID, "iat": now, "exp": now + 300});
    let in_future = "issued time cannot be greater than current time";
    let too_long = "expiration time cannot be more than 5 minutes after issued time";
    #[rustfmt::skip] // one case per line reads as a table
    let cases = [
        ("wrong secret", legacy(json!({}), "nope"), "Invalid signature"),
        ("wrong iss", legacy(json!({"iss": "654321"}), secret), "Invalid issuer"),
        ("numeric iss", legacy(json!({"iss": 123456}), secret), "Invalid issuer format"),
        ("ist missing", legacy(json!({"ist": null}), secret), "Invalid issuer type"),
        ("iat in future", legacy(json!({"iat": now + 60}), secret), in_future),
        ("exp - iat > 300", legacy(json!({"exp": now + 301}), secret), too_long),
        ("expired", legacy(json!({"iat": now - 200, "exp": now - 9}), secret), "Token expired"),
        ("HS256 as app", bearer(hs256(&app, secret)), "Invalid signature algorithm"),
        ("garbage", Some(("x-opentok-auth", "not.a.jwt".into())), "Invalid token format"),
        ("no header", None, "No suitable authentication found"),
    ];
    for (name, auth, message) in cases {
        let response = emulator.create(auth, "").await;
        assert_eq!(response.status(), 403, "{name}");
        let content_type = response.headers()[CONTENT_TYPE].clone();
        assert_eq!(content_type, "application/json", "{name}");
        let body: Value = response.json().await.unwrap();
        let expected = json!({"code": -1, "message": message, "description": message});
        assert_eq!(body, expected, "{name}");
    }
}

#[tokio::test]
async fn sdk_quirks_are_tolerated() {
    let emulator = TestEmulator::spawn(Faults::default()).await;
    for body in [
        "archiveMode=manual&location=null&p2p.preference=disabled",
        "archiveMode=always&location=192.168.0.1&media_mode=routed&e2ee=True&p2p.preference=disabled",
        "location=&e2ee=False&unknown=1",
        "",
    ] {
        // No content type at all, and opentok-node's junk header.
        let url = format!("{}/session/create", emulator.url);
        let (name, token) = good_legacy().unwrap();
        let request = emulator.http.post(url).header(name, token);
        let request = request.header("headers", "[object Object]").body(body);
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{body:?}");
    }
}

#[tokio::test]
async fn invalid_forms_are_refused_with_400_naming_the_field() {
    let emulator = TestEmulator::spawn(Faults::default()).await;
    for (body, field) in [
        ("archiveMode=always&p2p.preference=enabled", "archiveMode"),
        ("location=300.1.1.1", "location"),
        ("e2ee=true&p2p.preference=enabled", "e2ee"),
        ("archiveName=foo", "archiveName"),
    ] {
        let response = emulator.create(good_legacy(), body).await;
        assert_eq!(response.status(), 400, "{body}");
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["code"], -1);
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(field), "{body}: {error}");
        assert_eq!(error["message"], error["description"]);
    }
}

#[tokio::test]
async fn relayed_session_ids_carry_p_and_routed_ones_do_not() {
    let emulator = TestEmulator::spawn(Faults::default()).await;
    let relayed = emulator.create(good_legacy(), "p2p.preference=enabled");
    assert!(decoded(&created(relayed.await).await).relayed);
    let routed = emulator.create(good_legacy(), "location=10.1.2.3");
    let routed = decoded(&created(routed.await).await);
    assert!(!routed.relayed);
    assert_eq!(routed.location.as_deref(), Some("10.1.2.3"));
}

#[tokio::test]
async fn unknown_paths_answer_404_in_the_real_shape() {
    let emulator = TestEmulator::spawn(Faults::default()).await;
    let url = format!("{}/v2/project/x/archive", emulator.url);
    let response = emulator.http.get(url).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    let expected = json!({"code": -1, "message": "Not found", "description": "Not found"});
    assert_eq!(body, expected);
}

#[tokio::test]
async fn an_injected_429_carries_retry_after_and_spares_control_endpoints() {
    let emulator = TestEmulator::spawn(Faults::default()).await;
    let faults = json!({"errorRate": 1.0, "errorStatus": 429});
    let path = "/_emulator/faults";
    emulator.control(Method::PUT, path, Some(faults)).await;
    let response = emulator.create(good_legacy(), "").await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()[RETRY_AFTER], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "Service unavailable (injected fault)");
    assert_eq!(emulator.read(path).await["errorStatus"], 429);
    emulator.control(Method::DELETE, path, None).await;
    assert_eq!(emulator.create(good_legacy(), "").await.status(), 200);
}

#[tokio::test]
async fn a_dropped_connection_reaches_the_client_as_an_error() {
    let emulator = TestEmulator::spawn(Faults {
        drop_rate: 1.0,
        ..Faults::default()
    })
    .await;
    let (name, token) = good_legacy().unwrap();
    let url = format!("{}/session/create", emulator.url);
    let result = emulator.http.post(url).header(name, token).send().await;
    let error = result.expect_err("no response when the connection is dropped");
    assert!(!error.is_timeout(), "{error}");
    let log = emulator.read("/_emulator/requests").await;
    assert_eq!(log[0]["status"], 0, "{log}");
}

#[tokio::test]
async fn injected_latency_delays_the_answer() {
    let emulator = TestEmulator::spawn(Faults {
        latency_ms: 200,
        ..Faults::default()
    })
    .await;
    let started = Instant::now();
    let response = emulator.create(good_legacy(), "").await;
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 200);
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
}

#[tokio::test]
async fn control_endpoints_list_sessions_and_captured_requests() {
    let emulator = TestEmulator::spawn(Faults::default()).await;
    let body = "p2p.preference=disabled&archiveMode=always&archiveName=foo\
                &archiveResolution=1280x720&location=10.0.0.1&e2ee=true";
    let session = created(emulator.create(good_legacy(), body).await).await;
    emulator.create(None, "archiveMode=manual").await;

    let sessions = emulator.read("/_emulator/sessions").await;
    let expected = json!([{
        "sessionId": session["session_id"], "owner": API_KEY, "credential": "legacy",
        "mediaMode": "routed", "archiveMode": "always", "location": "10.0.0.1", "e2ee": true,
        "archiveName": "foo", "archiveResolution": "1280x720",
        "createdAt": sessions[0]["createdAt"],
    }]);
    assert_eq!(sessions, expected);
    assert!(sessions[0]["createdAt"].as_u64().unwrap() > 1_700_000_000_000);

    let log = emulator.read("/_emulator/requests").await;
    let (first, second) = (&log[0], &log[1]);
    assert_eq!(first["method"], "POST");
    assert_eq!(first["path"], "/session/create");
    assert_eq!(first["status"], 200);
    let form_type = "application/x-www-form-urlencoded";
    assert_eq!(first["headers"]["content-type"], form_type);
    assert_eq!(first["form"][0], json!(["p2p.preference", "disabled"]));
    assert_eq!(first["form"][5], json!(["e2ee", "true"]));
    assert_eq!(first["auth"]["kind"], "legacy");
    assert_eq!(first["auth"]["header"]["alg"], "HS256");
    assert_eq!(first["auth"]["claims"]["iss"], API_KEY);
    assert_eq!(second["status"], 403);
    let nothing = json!({"kind": null, "header": null, "claims": null});
    assert_eq!(second["auth"], nothing);

    let bad_faults = Some(json!({"dropRate": 2}));
    let refused = emulator.control(Method::PUT, "/_emulator/faults", bad_faults);
    assert_eq!(refused.await["code"], -1);
    emulator
        .control(Method::DELETE, "/_emulator/requests", None)
        .await;
    assert_eq!(emulator.read("/_emulator/requests").await, json!([]));
    emulator
        .control(Method::POST, "/_emulator/reset", None)
        .await;
    assert_eq!(emulator.read("/_emulator/sessions").await, json!([]));
}

#[tokio::test]
async fn run_until_returns_soon_after_shutdown_even_with_idle_connections() {
    let credentials = EmulatorCredentials::default();
    let addr = "127.0.0.1:0".parse().unwrap();
    let emulator = Emulator::bind(addr, credentials, Faults::default());
    let emulator = emulator.await.unwrap();
    let url = emulator.base_url();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(emulator.run_until(async {
        let _ = stopped.await;
    }));
    // A pooled keep-alive connection stays open after this call.
    let http = reqwest::Client::builder().build().unwrap();
    let response = http.post(format!("{url}/session/create")).send().await;
    assert_eq!(response.unwrap().status(), 403);

    let started = Instant::now();
    stop.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(3), running).await;
    assert!(matches!(result, Ok(Ok(Ok(())))), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
    let after = http.get(format!("{url}/_emulator/sessions")).send().await;
    assert!(after.is_err(), "the emulator still answers after shutdown");
}
