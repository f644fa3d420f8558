//! `POST /vonage/callbacks` over real HTTP: the emulator's real sender and an independent
//! signer (this file's own HS256 + SHA-256) reach the sink; forged, re-signed, wrong-issuer,
//! wrong-owner, replayed (also across two replicas on a real Redis), tampered, `alg: none`,
//! RS256 and out-of-window callbacks are 401 and change nothing; unsigned ones 503 unless
//! allowed from a trusted source; the store down is 503. Archive-status callbacks answer
//! `GET /archives/{id}` without a Vonage call, and a `serverRotation` restarts the archive.

use std::io::Read as _;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use vonage_sessions::app::App;
use vonage_sessions::callbacks::event::Callback;
use vonage_sessions::callbacks::{Applied, CallbackSink};
use vonage_sessions::rooms::store::StoreError;

use crate::emulator_connections::{ARCHIVE_SECRET, SESSION_SECRET, spawn_emulator_with_callbacks};
use crate::helpers::{
    API_KEY, APPLICATION_ID, Kind, PRIVATE_KEY, RedisServer, assert_problem, binary, client,
    get_json, listening_line, metrics_text, post_for_json, service_credentials, test_config,
};

/// Records what the receiver lets through.
#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<Callback>>);

#[async_trait::async_trait]
impl CallbackSink for Recorder {
    async fn apply(&self, callback: &Callback, _received_at: u64) -> Result<Applied, StoreError> {
        self.0.lock().unwrap().push(callback.clone());
        Ok(Applied::Applied)
    }
}

impl Recorder {
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

struct Service {
    url: String,
    sink: Arc<Recorder>,
}

/// The service with `kind` credentials against `upstream`, both callback secrets set, and
/// `overrides`.
async fn spawn(kind: Kind, upstream: &str, overrides: &str) -> Service {
    spawn_with_secrets(
        kind,
        upstream,
        overrides,
        &[
            ("VONAGE_SESSION_CALLBACK_SECRET", SESSION_SECRET),
            ("VONAGE_ARCHIVE_CALLBACK_SECRET", ARCHIVE_SECRET),
        ],
    )
    .await
}

async fn spawn_with_secrets(
    kind: Kind,
    upstream: &str,
    overrides: &str,
    secrets: &[(&str, &str)],
) -> Service {
    let config = test_config(
        kind,
        upstream,
        &[
            "[auth]\nanonymous_scopes = [\"video:create\", \"video:join\", \"video:moderate\"]\n",
            overrides,
        ],
        secrets,
    );
    let credentials = service_credentials(kind);
    let sink = Arc::new(Recorder::default());
    let app = App::build_with_sink(&config, credentials, sink.clone())
        .await
        .unwrap();
    let url = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until(std::future::pending()));
    Service { url, sink }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn sha256_hex(body: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The claims Vonage signs for `body`, with a fresh `jti`.
fn claims_for(body: &[u8]) -> Value {
    json!({
        "iat": now(),
        "jti": uuid::Uuid::new_v4().to_string(),
        "iss": "Vonage",
        "payload_hash": sha256_hex(body),
        "api_key": APPLICATION_ID,
        "application_id": APPLICATION_ID,
    })
}

fn hs256(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

async fn post(url: &str, body: &[u8], jwt: Option<&str>) -> reqwest::Response {
    let mut request = client()
        .post(format!("{url}/vonage/callbacks"))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(jwt) = jwt {
        request = request.bearer_auth(jwt);
    }
    request.send().await.unwrap()
}

/// Posts `body` to the receiver at `url`, signed with `secret` over fresh claims.
async fn post_signed(url: &str, body: &[u8], secret: &str) -> reqwest::Response {
    post(url, body, Some(&hs256(&claims_for(body), secret))).await
}

/// Sets what the emulator at `upstream` does with callbacks (`PUT /_emulator/callbacks`).
async fn set_callbacks(upstream: &str, settings: Value) {
    let response = client()
        .put(format!("{upstream}/_emulator/callbacks"))
        .json(&settings)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{settings}");
}

/// A client connected to `session_id` at the emulator with `token` (asserted 201): the
/// emulator's connection.
async fn connect(upstream: &str, session_id: &str, token: &Value) -> Value {
    let response = client()
        .post(format!(
            "{upstream}/_emulator/sessions/{session_id}/connections"
        ))
        .json(&json!({"token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

/// An emulator sending its callbacks to the receiver of a service (application credentials)
/// against it: the emulator's URL and the service.
async fn emulator_delivering_to_a_service() -> (String, Service) {
    let upstream = spawn_emulator_with_callbacks(None).await;
    let service = spawn(Kind::Application, &upstream, "").await;
    set_callbacks(
        &upstream,
        json!({"url": format!("{}/vonage/callbacks", service.url)}),
    )
    .await;
    (upstream, service)
}

fn connection_created(session_id: &str, connection_id: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "sessionId": session_id,
        "applicationId": APPLICATION_ID,
        "event": "connectionCreated",
        "timestamp": now() * 1000,
        "connection": {"id": connection_id, "createdAt": now() * 1000, "data": "{\"sub\":\"ann\"}"},
    }))
    .unwrap()
}

async fn wait_until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn the_emulators_signed_callbacks_reach_the_sink_through_the_receiver() {
    let (upstream, service) = emulator_delivering_to_a_service().await;
    let http = client();

    let response = http
        .post(format!("{}/sessions", service.url))
        .json(&json!({"token": {"data": "hello"}}))
        .send()
        .await
        .unwrap();
    let created: Value = response.json().await.unwrap();
    let session_id = created["sessionId"].as_str().unwrap().to_owned();
    let connection = connect(&upstream, &session_id, &created["token"]).await;

    let sink = service.sink.clone();
    wait_until("the connectionCreated", async || sink.len() >= 1).await;
    let seen = service.sink.0.lock().unwrap().clone();
    let Callback::Session(event) = &seen[0] else {
        panic!("not a session event: {seen:?}")
    };
    assert_eq!(event.session_id, session_id);
    let vonage_sessions::callbacks::event::SessionEventKind::ConnectionCreated(info) = &event.kind
    else {
        panic!("{event:?}")
    };
    assert_eq!(info.id, connection["connectionId"].as_str().unwrap());
    assert_eq!(info.data.as_deref(), Some("hello"));

    // The emulator's log: delivered once, signed, answered 204.
    let log: Value = get_json(&format!("{upstream}/_emulator/callbacks")).await;
    let delivery = &log["deliveries"][0];
    assert_eq!(delivery["status"], 204, "{log}");
    assert_eq!(delivery["signed"], true);

    // An unsigned first attempt (Vonage's internal-error case).
    set_callbacks(&upstream, json!({"faults": {"unsigned": true}})).await;
    let response = http
        .post(format!(
            "{upstream}/_emulator/sessions/{session_id}/connections/{}/streams",
            connection["connectionId"].as_str().unwrap()
        ))
        .json(&json!({"videoType": "camera"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    // The unsigned first attempt is refused with 503, the signed retry applied.
    let sink = service.sink.clone();
    wait_until("the signed retry", async || sink.len() >= 2).await;
    let log: Value = get_json(&format!("{upstream}/_emulator/callbacks")).await;
    let attempts: Vec<(bool, u64)> = log["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["event"] == "streamCreated")
        .map(|d| {
            (
                d["signed"].as_bool().unwrap(),
                d["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(attempts, [(false, 503), (true, 204)], "{log}");
    assert_eq!(service.sink.len(), 2);
}

#[tokio::test]
async fn an_independent_signer_is_accepted_and_every_forgery_is_refused_without_effect() {
    let upstream = crate::helpers::spawn_emulator().await;
    let service = spawn(Kind::Application, &upstream, "").await;
    let session_id = "2_MX4wMDAwMDAwMC0wMDAwLTQwMDAtODAwMC0wMDAwMDAwMDAwMDB-fjE3MDB-";
    let body = connection_created(session_id, "c-1");
    let good = claims_for(&body);

    let response = post(&service.url, &body, Some(&hs256(&good, SESSION_SECRET))).await;
    assert_eq!(response.status(), 204);
    assert_eq!(service.sink.len(), 1);

    let with = |key: &str, value: Value| {
        let mut claims = claims_for(&body);
        claims[key] = value;
        claims
    };
    let fresh = || claims_for(&body);
    let rsa = EncodingKey::from_rsa_pem(PRIVATE_KEY.as_bytes()).unwrap();
    let b64 = |value: &Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
    };
    let forged_signature = {
        let jwt = hs256(&fresh(), SESSION_SECRET);
        let (head, _) = jwt.rsplit_once('.').unwrap();
        format!("{head}.{}", b64(&json!("not the signature")))
    };
    let tampered_body = connection_created(session_id, "c-2");
    let cases: Vec<(&str, Vec<u8>, String)> = vec![
        ("forged signature", body.clone(), forged_signature),
        (
            "the archive secret",
            body.clone(),
            hs256(&fresh(), ARCHIVE_SECRET),
        ),
        (
            "a secret of nobody's",
            body.clone(),
            hs256(&fresh(), "a-guess-at-the-secret-0000"),
        ),
        (
            "wrong issuer",
            body.clone(),
            hs256(&with("iss", json!("Vonage2")), SESSION_SECRET),
        ),
        (
            "wrong application",
            body.clone(),
            hs256(
                &with(
                    "application_id",
                    json!("11111111-1111-4111-8111-111111111111"),
                ),
                SESSION_SECRET,
            ),
        ),
        (
            "replayed jti",
            body.clone(),
            hs256(&with("jti", good["jti"].clone()), SESSION_SECRET),
        ),
        (
            "body tampered after signing",
            tampered_body,
            hs256(&fresh(), SESSION_SECRET),
        ),
        (
            "alg none",
            body.clone(),
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT"})),
                b64(&fresh())
            ),
        ),
        (
            "RS256",
            body.clone(),
            jsonwebtoken::encode(&Header::new(Algorithm::RS256), &fresh(), &rsa).unwrap(),
        ),
        (
            "iat 26 hours old",
            body.clone(),
            hs256(&with("iat", json!(now() - 26 * 3600)), SESSION_SECRET),
        ),
        (
            "iat ten minutes ahead",
            body.clone(),
            hs256(&with("iat", json!(now() + 600)), SESSION_SECRET),
        ),
        (
            "no payload_hash",
            body.clone(),
            hs256(&with("payload_hash", Value::Null), SESSION_SECRET),
        ),
    ];
    for (what, body, jwt) in cases {
        let response = post(&service.url, &body, Some(&jwt)).await;
        let problem = assert_problem(response, 401, "callback_unauthorized").await;
        assert!(
            !problem.to_string().contains(SESSION_SECRET) && !problem.to_string().contains(&jwt),
            "{what}: {problem}"
        );
        assert_eq!(service.sink.len(), 1, "{what} changed nothing");
    }

    // A forged callback does not use up its jti: the genuine one with the same jti passes.
    let jti = uuid::Uuid::new_v4().to_string();
    let mut forged = with("jti", json!(jti));
    forged["iss"] = json!("someone");
    let response = post(&service.url, &body, Some(&hs256(&forged, SESSION_SECRET))).await;
    assert_eq!(response.status(), 401);
    let response = post(
        &service.url,
        &body,
        Some(&hs256(&with("jti", json!(jti)), SESSION_SECRET)),
    )
    .await;
    assert_eq!(response.status(), 204);
    assert_eq!(service.sink.len(), 2);

    // Unsigned: 503 with Retry-After, so Vonage retries it signed; nothing applied.
    let response = post(&service.url, &body, None).await;
    assert!(response.headers().contains_key("retry-after"));
    assert_problem(response, 503, "callback_unsigned").await;
    assert_eq!(service.sink.len(), 2);

    // Not Vonage's shape at all: 400; an unknown event: verified and passed on (2xx).
    let garbage = b"{\"hello\": 1}";
    let response = post_signed(&service.url, garbage, SESSION_SECRET).await;
    assert_problem(response, 400, "invalid_request").await;
    let unknown = serde_json::to_vec(
        &json!({"sessionId": session_id, "applicationId": APPLICATION_ID,
        "event": "captionsStarted", "timestamp": now() * 1000, "novel": {"field": true}}),
    )
    .unwrap();
    let response = post_signed(&service.url, &unknown, SESSION_SECRET).await;
    assert_eq!(response.status(), 204);
    assert_eq!(service.sink.len(), 3);

    // Outside caller auth and CORS: a browser origin gets no CORS answer here.
    let response = client()
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/vonage/callbacks", service.url),
        )
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin")
    );

    // The metric counts each outcome.
    let metrics = metrics_text(&service.url).await;
    for outcome in [
        "applied",
        "signature",
        "replayed",
        "unsigned",
        "age",
        "algorithm",
    ] {
        assert!(
            metrics
                .lines()
                .any(|line| line.starts_with("callbacks_received_total")
                    && line.contains(&format!("outcome=\"{outcome}\""))),
            "{outcome} in\n{metrics}"
        );
    }
}

#[tokio::test]
async fn a_legacy_project_is_matched_by_api_key_and_a_missing_secret_refuses() {
    let upstream = crate::helpers::spawn_emulator().await;
    let service = spawn(Kind::Legacy, &upstream, "").await;
    let body = serde_json::to_vec(
        &json!({"sessionId": "1_MX4xMjM0NTZ-fn4", "projectId": 123456,
        "event": "connectionCreated", "timestamp": now() * 1000, "connection": {"id": "c"}}),
    )
    .unwrap();
    let mut claims = claims_for(&body);
    claims["api_key"] = json!(API_KEY);
    claims["application_id"] = json!("");
    let response = post(&service.url, &body, Some(&hs256(&claims, SESSION_SECRET))).await;
    assert_eq!(response.status(), 204);
    let mut claims = claims_for(&body);
    claims["api_key"] = json!("654321");
    let response = post(&service.url, &body, Some(&hs256(&claims, SESSION_SECRET))).await;
    assert_problem(response, 401, "callback_unauthorized").await;
    assert_eq!(service.sink.len(), 1);

    // Without the archive secret, archive callbacks cannot be verified: 503 (Vonage keeps
    // retrying while the operator sets it), nothing applied; session ones still pass.
    let service = spawn_with_secrets(
        Kind::Legacy,
        &upstream,
        "",
        &[("VONAGE_SESSION_CALLBACK_SECRET", SESSION_SECRET)],
    )
    .await;
    let archive = serde_json::to_vec(
        &json!({"id": uuid::Uuid::new_v4().to_string(), "status": "stopped",
        "sessionId": "1_MX4", "projectId": 123456, "event": "archive"}),
    )
    .unwrap();
    let mut claims = claims_for(&archive);
    claims["api_key"] = json!(API_KEY);
    for secret in [ARCHIVE_SECRET, SESSION_SECRET] {
        let response = post(&service.url, &archive, Some(&hs256(&claims, secret))).await;
        assert!(response.headers().contains_key("retry-after"));
        assert_problem(response, 503, "callbacks_not_configured").await;
    }
    assert_eq!(service.sink.len(), 0);
}

#[tokio::test]
async fn unsigned_callbacks_are_accepted_only_when_allowed_and_from_trusted_sources() {
    let upstream = crate::helpers::spawn_emulator().await;
    let service = spawn(
        Kind::Application,
        &upstream,
        "[auth]\ntrusted_proxies = [\"127.0.0.1\"]\n\
         [callbacks]\nallow_unsigned = true\ntrusted_sources = [\"216.147.0.0/18\"]\n",
    )
    .await;
    let body = connection_created("2_MX4", "c-1");
    let from = |ip: &'static str| {
        client()
            .post(format!("{}/vonage/callbacks", service.url))
            .header("x-forwarded-for", ip)
            .body(body.clone())
    };
    let response = from("216.147.10.20").send().await.unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(service.sink.len(), 1);
    let response = from("203.0.113.9").send().await.unwrap();
    assert_problem(response, 503, "callback_unsigned").await;
    assert_eq!(service.sink.len(), 1);
    // Signed callbacks are still verified in full, from anywhere.
    let mut claims = claims_for(&body);
    claims["iss"] = json!("not Vonage");
    let response = from("216.147.10.20")
        .bearer_auth(hs256(&claims, SESSION_SECRET))
        .send()
        .await
        .unwrap();
    assert_problem(response, 401, "callback_unauthorized").await;
    assert_eq!(service.sink.len(), 1);
}

#[tokio::test]
async fn a_jti_is_refused_on_every_replica_sharing_redis_and_redis_down_is_503() {
    let mut redis = RedisServer::start();
    let upstream = crate::helpers::spawn_emulator().await;
    let a = spawn(Kind::Application, &upstream, &redis.rooms_config()).await;
    let b = spawn(Kind::Application, &upstream, &redis.rooms_config()).await;
    let body = connection_created("2_MX4", "c-1");
    let jwt = hs256(&claims_for(&body), SESSION_SECRET);
    assert_eq!(post(&a.url, &body, Some(&jwt)).await.status(), 204);
    assert_problem(
        post(&b.url, &body, Some(&jwt)).await,
        401,
        "callback_unauthorized",
    )
    .await;
    assert_eq!(a.sink.len() + b.sink.len(), 1);
    let keys = redis
        .command(&["KEYS", "vonage-sessions:callback:jti:*"])
        .await;
    let redis::Value::Array(keys) = keys else {
        panic!("{keys:?}")
    };
    assert_eq!(keys.len(), 1, "one hash-tagged jti key");
    let key = match &keys[0] {
        redis::Value::BulkString(bytes) => String::from_utf8(bytes.clone()).unwrap(),
        other => panic!("{other:?}"),
    };
    let ttl = redis.command(&["TTL", &key]).await;
    assert!(
        matches!(ttl, redis::Value::Int(t) if t > 90_000 - 60 && t <= 90_060),
        "kept for max_age + skew: {ttl:?}"
    );

    // Two deliveries of one jti at once, on both replicas: applied once.
    let jwt = hs256(&claims_for(&body), SESSION_SECRET);
    let (one, two) = tokio::join!(
        post(&a.url, &body, Some(&jwt)),
        post(&b.url, &body, Some(&jwt))
    );
    let mut statuses = [one.status().as_u16(), two.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [204, 401]);
    assert_eq!(a.sink.len() + b.sink.len(), 2);

    redis.stop();
    let jwt = hs256(&claims_for(&body), SESSION_SECRET);
    assert_problem(
        post(&a.url, &body, Some(&jwt)).await,
        503,
        "store_unavailable",
    )
    .await;
    assert_eq!(a.sink.len() + b.sink.len(), 2);
}

async fn emulator_requests(upstream: &str) -> Vec<Value> {
    get_json(&format!("{upstream}/_emulator/requests")).await
}

fn archive_reads(requests: &[Value], archive_id: &str) -> usize {
    requests
        .iter()
        .filter(|r| {
            r["method"] == "GET"
                && r["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with(&format!("/archive/{archive_id}")))
        })
        .count()
}

#[tokio::test]
async fn archive_callbacks_answer_reads_without_vonage_and_a_rotation_restarts_the_archive() {
    let (upstream, service) = emulator_delivering_to_a_service().await;
    let http = client();

    // An archive Vonage says was uploaded: read from the callback, Vonage never asked.
    let archive_id = uuid::Uuid::new_v4().to_string();
    let body = serde_json::to_vec(&json!({"id": archive_id, "event": "archive", "status": "uploaded",
        "sessionId": "2_MX4", "applicationId": APPLICATION_ID, "name": "weekly", "createdAt": 1_700_000_000_000u64,
        "updatedAt": 1_700_000_100_000u64, "duration": 100, "size": 4096, "outputMode": "composed",
        "hasAudio": true, "hasVideo": true, "resolution": "1280x720", "url": null}))
    .unwrap();
    let response = post_signed(&service.url, &body, ARCHIVE_SECRET).await;
    assert_eq!(response.status(), 204);
    // Signed with the session secret, the same body is refused.
    let response = post_signed(&service.url, &body, SESSION_SECRET).await;
    assert_eq!(response.status(), 401);
    let read = http
        .get(format!("{}/archives/{archive_id}", service.url))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let archive: Value = read.json().await.unwrap();
    assert_eq!(archive["status"], "uploaded");
    assert_eq!(archive["name"], "weekly");
    assert_eq!(archive["durationSeconds"], 100);
    assert_eq!(archive["sizeBytes"], 4096);
    assert_eq!(archive["createdAt"], "2023-11-14T22:13:20Z");
    assert_eq!(
        archive_reads(&emulator_requests(&upstream).await, &archive_id),
        0
    );

    // An older `started` arriving late does not go back a stage.
    let stale = serde_json::to_vec(
        &json!({"id": archive_id, "event": "archive", "status": "started",
        "sessionId": "2_MX4", "applicationId": APPLICATION_ID, "createdAt": 1_700_000_000_000u64,
        "updatedAt": 1_700_000_000_000u64}),
    )
    .unwrap();
    let response = post_signed(&service.url, &stale, ARCHIVE_SECRET).await;
    assert_eq!(response.status(), 204);
    let archive: Value = get_json(&format!("{}/archives/{archive_id}", service.url)).await;
    assert_eq!(archive["status"], "uploaded");

    // A real archive, recorded through the service, and a serverRotation.
    let created: Value = post_for_json(&format!("{}/sessions", service.url), &json!({})).await;
    let session_id = created["sessionId"].as_str().unwrap().to_owned();
    connect(&upstream, &session_id, &created["token"]).await;
    let response = http
        .post(format!("{}/sessions/{session_id}/archives", service.url))
        .json(&json!({"name": "standup", "outputMode": "composed", "resolution": "1280x720", "hasAudio": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let first: Value = response.json().await.unwrap();
    let first_id = first["id"].as_str().unwrap().to_owned();
    // The `started` callback has arrived once the service knows the archive.
    let sink = service.sink.clone();
    wait_until("the started callback", async || {
        sink.0
            .lock()
            .unwrap()
            .iter()
            .any(|c| matches!(c, Callback::Archive(a) if a.id == first_id))
    })
    .await;
    // A recording archive is still read from Vonage (its duration grows).
    let before = archive_reads(&emulator_requests(&upstream).await, &first_id);
    let read = http
        .get(format!("{}/archives/{first_id}", service.url))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(
        archive_reads(&emulator_requests(&upstream).await, &first_id),
        before + 1
    );

    // Every callback from now on is delivered twice (re-signed: a new jti each time).
    set_callbacks(&upstream, json!({"faults": {"duplicate": true}})).await;
    let response = http
        .post(format!("{upstream}/_emulator/sessions/{session_id}/rotate"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let rotated: Value = response.json().await.unwrap();
    assert_eq!(rotated["stoppedArchives"][0], first_id.as_str());

    // The service starts it again with the same options, once.
    let list_url = format!("{}/sessions/{session_id}/archives", service.url);
    let mut items = Vec::new();
    for _ in 0..200 {
        let list: Value = get_json(&list_url).await;
        items = list["items"].as_array().unwrap().clone();
        if items.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(items.len(), 2, "{items:?}");
    let restarted = items.iter().find(|a| a["id"] != first_id.as_str()).unwrap();
    assert_eq!(restarted["status"], "started");
    assert_eq!(restarted["name"], "standup");
    assert_eq!(restarted["resolution"], "1280x720");
    assert_eq!(restarted["outputMode"], "composed");
    // The old archive's `stopped` (the emulator makes it `available` at once) is read from
    // the callback state now.
    let sink = service.sink.clone();
    let first = first_id.clone();
    wait_until("the stopped callback", async || {
        sink.0
            .lock()
            .unwrap()
            .iter()
            .any(|c| matches!(c, Callback::Archive(a) if a.id == first && a.status != "started"))
    })
    .await;
    let before = archive_reads(&emulator_requests(&upstream).await, &first_id);
    let old: Value = get_json(&format!("{}/archives/{first_id}", service.url)).await;
    assert!(
        matches!(old["status"].as_str(), Some("stopped" | "available")),
        "{old}"
    );
    assert_eq!(
        archive_reads(&emulator_requests(&upstream).await, &first_id),
        before
    );
    // The rotation's second delivery restarted nothing more.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let list: Value = get_json(&list_url).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
}

#[test]
fn secrets_and_tokens_never_reach_the_logs() {
    // The real binary, its stderr read whole after it is stopped.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let upstream = runtime.block_on(crate::helpers::spawn_emulator());
    let mut child = binary(
        &["serve", "--listen", "127.0.0.1:0"],
        &[
            ("VONAGE_SESSIONS__AUTH__MODE", "anonymous"),
            ("VONAGE_SESSIONS__LOG__FORMAT", "json"),
            ("VONAGE_SESSIONS__LOG__FILTER", "debug"),
            ("VONAGE_APPLICATION_ID", APPLICATION_ID),
            ("VONAGE_PRIVATE_KEY", PRIVATE_KEY),
            ("VONAGE_SESSION_CALLBACK_SECRET", SESSION_SECRET),
            ("VONAGE_ARCHIVE_CALLBACK_SECRET", ARCHIVE_SECRET),
            ("VIDEO_API_URL", upstream.as_str()),
        ],
    )
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let (_, url) = listening_line(&mut stdout);
    let body = connection_created("2_MX4", "c-1");
    let good = hs256(&claims_for(&body), SESSION_SECRET);
    let forged = hs256(&claims_for(&body), ARCHIVE_SECRET);
    runtime.block_on(async {
        assert_eq!(post(&url, &body, Some(&good)).await.status(), 204);
        assert_eq!(post(&url, &body, Some(&good)).await.status(), 401);
        assert_eq!(post(&url, &body, Some(&forged)).await.status(), 401);
        assert_eq!(post(&url, &body, None).await.status(), 503);
    });
    let _ = child.kill();
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    let _ = child.wait();
    assert!(logs.contains("callback refused"), "{logs}");
    assert!(logs.contains("\"callback.reason\":\"replayed\""), "{logs}");
    for secret in [SESSION_SECRET, ARCHIVE_SECRET, &good, &forged] {
        assert!(!logs.contains(secret), "a secret or token in the logs");
    }
    let signature = good.rsplit('.').next().unwrap();
    assert!(!logs.contains(signature));
}
