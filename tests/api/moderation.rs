//! Moderation through our API, over real HTTP: against a wiremock Vonage (what we send, in the
//! SDKs' shapes; how Vonage's answers map to our codes; refusals that never reach Vonage), and
//! bans shared by two replicas through a real Redis.

use jsonwebtoken::{EncodingKey, Header, encode, get_current_timestamp};
use reqwest::Method;
use serde_json::{Value, json};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{
    API_KEY, Caller, FOREIGN_SESSION_ID, Kind, RedisServer, TestApp, assert_problem, claims,
    client, get_json, metrics_text, post_for_json, spawn_emulator,
};

/// A session ID owned by API key 123456 (the legacy test credentials).
const SESSION_ID: &str = "1_MX4xMjM0NTZ-fjE3Mzk1Mzg4OTQ5NTl-UTltY1hHMVFyTjNUSVl1OHkrcHB4L2dzfn5-";
const CONNECTION: &str = "1f2e3d4c-0000-4000-8000-00000000c0de";
const STREAM: &str = "8b732909-0a06-46a2-8ea8-074e64d43422";
const MODERATORS: &str =
    "[auth]\nanonymous_scopes = [\"video:create\", \"video:join\", \"video:moderate\"]\n";

/// Every moderation write and read on one session, as (method, our path, body).
fn session_calls(sid: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (
            Method::DELETE,
            format!("/sessions/{sid}/connections/{CONNECTION}"),
            None,
        ),
        (
            Method::POST,
            format!("/sessions/{sid}/streams/{STREAM}/mute"),
            None,
        ),
        (
            Method::POST,
            format!("/sessions/{sid}/mute"),
            Some(json!({"excludedStreamIds": [STREAM]})),
        ),
        (
            Method::POST,
            format!("/sessions/{sid}/signal"),
            Some(json!({"type": "chat", "data": "hello all"})),
        ),
        (
            Method::POST,
            format!("/sessions/{sid}/connections/{CONNECTION}/signal"),
            Some(json!({"type": "chat", "data": "hello you"})),
        ),
        (Method::GET, format!("/sessions/{sid}/streams"), None),
        (
            Method::GET,
            format!("/sessions/{sid}/streams/{STREAM}"),
            None,
        ),
    ]
}

async fn vonage_accepting_everything() -> MockServer {
    let server = MockServer::start().await;
    let stream =
        json!({"id": STREAM, "videoType": "camera", "name": "", "layoutClassList": ["full"]});
    Mock::given(method("GET"))
        .and(path_regex(r"/stream$"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"count": 1, "items": [stream]})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(r"/stream/[^/]+$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(stream))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(r"/mute$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": API_KEY, "status": "ACTIVE", "name": "", "environment": "standard", "createdAt": 1
        })))
        .mount(&server)
        .await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn join_only_callers_and_foreign_sessions_are_refused_before_vonage() {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(204))
        .expect(0)
        .mount(&server)
        .await;
    let joiner = TestApp::spawn_against(Kind::Legacy, &server.uri(), "").await;
    for (verb, path, body) in session_calls(SESSION_ID) {
        let response = joiner.send(verb, &path, body).await;
        let problem = assert_problem(response, 403, "forbidden").await;
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("video:moderate"),
            "{path}: {problem}"
        );
    }
    let response = joiner
        .delete(&format!("/sessions/{SESSION_ID}/participants/bob"))
        .await;
    assert_problem(response, 403, "forbidden").await;

    let moderator = TestApp::spawn_against(Kind::Legacy, &server.uri(), MODERATORS).await;
    for (verb, path, body) in session_calls(FOREIGN_SESSION_ID) {
        let response = moderator.send(verb, &path, body).await;
        assert_problem(response, 404, "session_not_found").await;
    }
    let response = moderator.post_json("/rooms/nowhere/mute", &json!({})).await;
    assert_problem(response, 404, "room_not_found").await;
    // IDs that cannot exist are not sent either.
    let response = moderator
        .delete(&format!("/sessions/{SESSION_ID}/connections/a..b%20c"))
        .await;
    assert_problem(response, 404, "connection_not_found").await;
    server.verify().await;
}

#[tokio::test]
async fn requests_carry_the_sdks_paths_bodies_and_claims_in_both_credential_modes() {
    for kind in [Kind::Legacy, Kind::Application] {
        let server = vonage_accepting_everything().await;
        let app = TestApp::spawn_against(kind, &server.uri(), MODERATORS).await;
        // A session ID in the real format, owned by the credentials in use.
        let sid = match kind {
            Kind::Legacy => SESSION_ID.to_owned(),
            Kind::Application => vonage_sessions::video::session_id::encode(
                &vonage_sessions::video::session_id::NewSessionId {
                    owner: kind.owner(),
                    location: "",
                    created_ms: 1_700_000_000_000,
                    random: "abcdefghijklmnopqrstuvwx",
                    relayed: false,
                },
            ),
        };
        let expected = [
            (
                204,
                "DELETE",
                format!("/session/{sid}/connection/{CONNECTION}"),
                None,
            ),
            (
                204,
                "POST",
                format!("/session/{sid}/stream/{STREAM}/mute"),
                Some(json!({})),
            ),
            (
                200,
                "POST",
                format!("/session/{sid}/mute"),
                Some(json!({"active": true, "excludedStreamIds": [STREAM]})),
            ),
            (
                204,
                "POST",
                format!("/session/{sid}/signal"),
                Some(json!({"type": "chat", "data": "hello all"})),
            ),
            (
                204,
                "POST",
                format!("/session/{sid}/connection/{CONNECTION}/signal"),
                Some(json!({"type": "chat", "data": "hello you"})),
            ),
            (200, "GET", format!("/session/{sid}/stream"), None),
            (200, "GET", format!("/session/{sid}/stream/{STREAM}"), None),
        ];
        for ((verb, our_path, body), (status, ..)) in session_calls(&sid).into_iter().zip(&expected)
        {
            let response = app.send(verb, &our_path, body).await;
            assert_eq!(response.status().as_u16(), *status, "{our_path}");
        }
        let received = server.received_requests().await.unwrap();
        assert_eq!(
            received.len(),
            expected.len(),
            "one upstream call each, no retries"
        );
        for (request, (_, verb, tail, body)) in received.iter().zip(&expected) {
            assert_eq!(request.method.as_str(), *verb);
            assert_eq!(
                request.url.path(),
                format!("/v2/project/{}{tail}", kind.owner()),
                "the SDKs' path"
            );
            let sent: Option<Value> = serde_json::from_slice(&request.body).ok();
            assert_eq!(&sent, body, "{tail}: the SDKs' body");
            if body.is_some() {
                assert_eq!(request.headers["content-type"], "application/json");
            }
            let jwt = match kind {
                Kind::Legacy => request.headers["x-opentok-auth"]
                    .to_str()
                    .unwrap()
                    .to_owned(),
                Kind::Application => request.headers["authorization"]
                    .to_str()
                    .unwrap()
                    .strip_prefix("Bearer ")
                    .unwrap()
                    .to_owned(),
            };
            let claims = claims(&jwt);
            match kind {
                Kind::Legacy => {
                    assert_eq!(claims["iss"], API_KEY);
                    assert_eq!(claims["ist"], "project");
                }
                Kind::Application => assert_eq!(claims["application_id"], kind.owner()),
            }
            assert!(claims["iat"].is_u64() && claims["exp"].is_u64() && claims["jti"].is_string());
        }

        // Our own shapes.
        let streams: Value = app
            .get(&format!("/sessions/{sid}/streams"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            streams,
            json!({"count": 1, "items": [{"id": STREAM, "videoType": "camera", "name": "", "layoutClassList": ["full"]}]})
        );
        let state: Value = app
            .get(&format!("/sessions/{sid}/mute"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            state["active"], true,
            "mute-all is state, not a one-shot: {state}"
        );
        assert_eq!(state["excludedStreamIds"], json!([STREAM]));
        let lifted: Value = app
            .post_json(&format!("/sessions/{sid}/mute"), &json!({"active": false}))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(lifted["active"], false);
        let last = server.received_requests().await.unwrap().pop().unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&last.body).unwrap(),
            json!({"active": false, "excludedStreamIds": []}),
            "lifting sends what @vonage/video's disableForceMute sends"
        );
    }
}

#[tokio::test]
async fn vonage_answers_map_to_stable_codes() {
    let server = MockServer::start().await;
    let not_found =
        ResponseTemplate::new(404).set_body_json(json!({"code": 404, "message": "Not found"}));
    Mock::given(path_regex(r"/connection/[^/]+(/signal)?$"))
        .respond_with(not_found.clone())
        .mount(&server)
        .await;
    Mock::given(path_regex(r"/stream/[^/]+(/mute)?$"))
        .respond_with(not_found.clone())
        .mount(&server)
        .await;
    Mock::given(path_regex(r"/session/[^/]+/(mute|signal)$"))
        .respond_with(not_found)
        .mount(&server)
        .await;
    Mock::given(path_regex(r"/stream$"))
        .respond_with(
            ResponseTemplate::new(403)
                .set_body_json(json!({"code": -1, "message": "Invalid signature"})),
        )
        .mount(&server)
        .await;
    let app = TestApp::spawn_against(Kind::Legacy, &server.uri(), MODERATORS).await;
    let codes = [
        (404, "connection_not_found"),
        (404, "stream_not_found"),
        (409, "session_not_active"),
        (409, "session_not_active"),
        (404, "connection_not_found"),
        (502, "upstream_auth_failed"),
        (404, "stream_not_found"),
    ];
    for ((verb, path, body), (status, code)) in session_calls(SESSION_ID).into_iter().zip(codes) {
        let problem = assert_problem(app.send(verb, &path, body).await, status, code).await;
        assert!(
            !problem.to_string().contains("Invalid signature"),
            "Vonage's body is not echoed"
        );
    }
}

#[tokio::test]
async fn signals_too_large_are_refused_before_sending_and_writes_are_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(r"/signal$"))
        .respond_with(ResponseTemplate::new(503))
        .expect(1)
        .mount(&server)
        .await;
    let app = TestApp::spawn_against(Kind::Legacy, &server.uri(), MODERATORS).await;
    let path = format!("/sessions/{SESSION_ID}/signal");
    let big = json!({"type": "t", "data": "x".repeat(8 * 1024 + 1)});
    assert_problem(app.post_json(&path, &big).await, 413, "signal_too_large").await;
    let long_type = json!({"type": "t".repeat(129), "data": ""});
    assert_problem(
        app.post_json(&path, &long_type).await,
        413,
        "signal_too_large",
    )
    .await;
    let odd_type = json!({"type": "a b", "data": ""});
    assert_problem(
        app.post_json(&path, &odd_type).await,
        400,
        "invalid_request",
    )
    .await;
    for no_data in [json!({"type": "t"}), json!({"data": null})] {
        assert_problem(app.post_json(&path, &no_data).await, 400, "invalid_request").await;
    }
    // The limit is bytes: 4097 two-byte characters are within the document's maxLength (8192
    // characters, all JSON Schema can count) and still too large.
    let wide = json!({"data": "é".repeat(4097)});
    assert_problem(app.post_json(&path, &wide).await, 413, "signal_too_large").await;
    // 8 kB exactly is allowed; Vonage's 503 is not retried: a signal is not idempotent.
    let exact = json!({"data": "x".repeat(8 * 1024)});
    assert_problem(
        app.post_json(&path, &exact).await,
        503,
        "upstream_unavailable",
    )
    .await;
    server.verify().await;
}

/// The value of `vonage_retries_total{operation}` in the process's recorder.
async fn retries(app: &TestApp, operation: &str) -> f64 {
    let text = metrics_text(&app.url).await;
    let series = format!("vonage_retries_total{{operation=\"{operation}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(series.as_str()))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("{series} missing from:\n{text}"))
}

#[tokio::test]
async fn writes_are_retried_only_when_the_connection_to_vonage_was_never_made() {
    // A Vonage that takes each request and hangs up without answering: a write may have
    // arrived, so it is sent once; a read is safe to send again.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hangup = format!("http://{}", listener.local_addr().unwrap());
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut head = [0; 1024];
            let _ = socket.read(&mut head).await;
        }
    });
    let app = TestApp::spawn_against(Kind::Legacy, &hangup, MODERATORS).await;
    let accepted_now = || accepted.load(std::sync::atomic::Ordering::SeqCst);
    let signal = json!({"data": "once"});
    let path = format!("/sessions/{SESSION_ID}/signal");
    let response = app.post_json(&path, &signal).await;
    assert!(response.status().is_server_error(), "{}", response.status());
    assert_eq!(
        accepted_now(),
        1,
        "a write that may have arrived is not resent"
    );
    let path = format!("/sessions/{SESSION_ID}/streams");
    let response = app.get(&path).await;
    assert!(response.status().is_server_error(), "{}", response.status());
    assert!(accepted_now() > 2, "a read is retried: {}", accepted_now());

    // A port nobody listens on: the connection is never made, so the write is tried again.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let app = TestApp::spawn_against(Kind::Legacy, &refused, MODERATORS).await;
    let before = retries(&app, "force_disconnect").await;
    let path = format!("/sessions/{SESSION_ID}/connections/{CONNECTION}");
    let response = app.delete(&path).await;
    assert!(response.status().is_server_error(), "{}", response.status());
    assert!(retries(&app, "force_disconnect").await > before);
}

#[tokio::test]
async fn join_callers_may_signal_one_connection_only_when_configured() {
    let server = vonage_accepting_everything().await;
    let app = TestApp::spawn_against(
        Kind::Legacy,
        &server.uri(),
        "[moderation]\njoin_may_signal = true\n",
    )
    .await;
    let one = format!("/sessions/{SESSION_ID}/connections/{CONNECTION}/signal");
    let response = app.post_json(&one, &json!({"data": "psst"})).await;
    assert_eq!(response.status(), 204);
    let all = format!("/sessions/{SESSION_ID}/signal");
    assert_problem(
        app.post_json(&all, &json!({"data": "all"})).await,
        403,
        "forbidden",
    )
    .await;
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

const ISSUER: &str = "https://idp.test";
const AUDIENCE: &str = "vonage-sessions";
const HS256_SECRET: &str = "test-only-hs256-secret-0123456789abcdef";

fn bearer(sub: &str, scope: &str) -> String {
    let now = get_current_timestamp();
    let claims = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "scope": scope, "iat": now, "exp": now + 300});
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(HS256_SECRET.as_bytes()),
    )
    .unwrap()
}

async fn jwt_replica(upstream: &str, redis: &RedisServer) -> TestApp {
    let overrides = format!(
        "{}[auth]\nmode = \"jwt\"\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\n",
        redis.rooms_config()
    );
    TestApp::spawn_with_env(
        Kind::Legacy,
        upstream,
        &overrides,
        &[("VONAGE_SESSIONS_AUTH_HS256_SECRET", HS256_SECRET)],
    )
    .await
}

/// The caller with `token` at the replica `app`.
fn at<'a>(app: &'a TestApp, token: &'a str) -> Caller<'a> {
    Caller::new(&app.url, Some(token))
}

#[tokio::test]
async fn a_ban_on_one_replica_keeps_the_participant_out_on_another_sharing_redis() {
    let redis = RedisServer::start();
    let upstream = spawn_emulator().await;
    let a = jwt_replica(&upstream, &redis).await;
    let b = jwt_replica(&upstream, &redis).await;
    let host = bearer("host", "video:create video:join video:moderate");
    let admin = bearer("admin", "video:join video:admin");
    let mallory = bearer("mallory", "video:join");
    let alice = bearer("alice", "video:join");

    let created = at(&a, &host).post("/rooms/standup/join", None).await;
    assert_eq!(created.status(), 201);
    let sid = created.json::<Value>().await.unwrap()["sessionId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        at(&b, &mallory)
            .post("/rooms/standup/join", None)
            .await
            .status(),
        200
    );

    // A joiner cannot ban; the host can.
    let response = at(&b, &mallory)
        .delete("/rooms/standup/participants/alice?ban=true")
        .await;
    assert_problem(response, 403, "forbidden").await;
    let response = at(&a, &host)
        .delete("/rooms/standup/participants/mallory?ban=true")
        .await;
    assert_eq!(response.status(), 200);
    let removed: Value = response.json().await.unwrap();
    assert_eq!(removed["sub"], "mallory");
    assert_eq!(removed["banned"], true);
    assert!(removed["bannedUntil"].as_str().unwrap().ends_with('Z'));

    // On the other replica: no rejoin, no token for the room's session; others are fine.
    let response = at(&b, &mallory).post("/rooms/standup/join", None).await;
    assert_problem(response, 403, "banned").await;
    let response = at(&b, &mallory)
        .post(&format!("/sessions/{sid}/tokens"), None)
        .await;
    assert_problem(response, 403, "banned").await;
    assert_eq!(
        at(&b, &alice)
            .post("/rooms/standup/join", None)
            .await
            .status(),
        200
    );
    let bans: Value = at(&b, &host)
        .get("/rooms/standup/bans")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(bans["items"][0]["sub"], "mallory");
    assert_eq!(bans["items"][0]["bannedBy"], "host");

    // Only an admin lifts it.
    let response = at(&b, &host).delete("/rooms/standup/bans/mallory").await;
    assert_problem(response, 403, "forbidden").await;
    assert_eq!(
        at(&b, &admin)
            .delete("/rooms/standup/bans/mallory")
            .await
            .status(),
        204
    );
    assert_eq!(
        at(&a, &mallory)
            .post("/rooms/standup/join", None)
            .await
            .status(),
        200
    );
    assert_eq!(
        at(&a, &mallory)
            .post(&format!("/sessions/{sid}/tokens"), None)
            .await
            .status(),
        201
    );
    // A ban against the room's session alone holds for joins of the room too.
    let path = format!("/sessions/{sid}/participants/mallory?ban=true");
    assert_eq!(at(&a, &host).delete(&path).await.status(), 200);
    let response = at(&b, &mallory).post("/rooms/standup/join", None).await;
    assert_problem(response, 403, "banned").await;
    let bans: Value = at(&b, &host)
        .get(&format!("/sessions/{sid}/bans"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(bans["items"][0]["sub"], "mallory");
}

/// With `auth.mode = "anonymous"` nobody has an identity, so `ban=true` records nothing, and the
/// room's presence (tracked: it is a room) holds no connection of that `sub`. Both are said in
/// a 200, not refused.
#[tokio::test]
async fn anonymous_mode_bans_nobody_and_removing_by_sub_disconnects_nobody() {
    let upstream = spawn_emulator().await;
    let app = TestApp::spawn_against(Kind::Legacy, &upstream, MODERATORS).await;
    assert_eq!(
        app.post_json("/rooms/lobby/join", &json!({}))
            .await
            .status(),
        201
    );
    for path in [
        "/rooms/lobby/participants/someone?ban=true",
        "/rooms/lobby/participants/someone",
    ] {
        let response = app.delete(path).await;
        assert_eq!(response.status(), 200, "{path}");
        let removed: Value = response.json().await.unwrap();
        assert_eq!(
            removed,
            json!({"sub": "someone", "disconnectedConnectionIds": [],
                   "presenceTracked": true, "banned": false}),
            "{path}"
        );
    }
    let bans: Value = app.get("/rooms/lobby/bans").await.json().await.unwrap();
    assert_eq!(bans, json!({"items": []}));
    let room: Value = app.get("/rooms/lobby").await.json().await.unwrap();
    assert_eq!(room["muteAll"]["active"], false, "{room}");
}

// Against the emulator: the live side of the session changes as asked.

/// A room of ours with `count` clients connected, each publishing one camera stream: the
/// session ID and the (connection ID, stream ID) pairs.
async fn room_with_clients(
    app: &TestApp,
    room: &str,
    count: usize,
) -> (String, Vec<(String, String)>) {
    let mut sid = String::new();
    let mut clients = Vec::new();
    for index in 0..count {
        let joined: Value = app
            .post_json(&format!("/rooms/{room}/join"), &json!({}))
            .await
            .json()
            .await
            .unwrap();
        sid = joined["sessionId"].as_str().unwrap().to_owned();
        let connection: Value = post_for_json(
            &format!("{}/_emulator/sessions/{sid}/connections", app.upstream),
            &json!({"token": joined["token"]}),
        )
        .await;
        let cid = connection["connectionId"]
            .as_str()
            .expect("the client connected")
            .to_owned();
        let stream: Value = post_for_json(
            &format!(
                "{}/_emulator/sessions/{sid}/connections/{cid}/streams",
                app.upstream
            ),
            &json!({"videoType": "camera", "name": format!("client {index}")}),
        )
        .await;
        clients.push((cid, stream["streamId"].as_str().unwrap().to_owned()));
    }
    (sid, clients)
}

async fn emulator_moderation(app: &TestApp, sid: &str) -> Value {
    get_json(&format!(
        "{}/_emulator/sessions/{sid}/moderation",
        app.upstream
    ))
    .await
}

async fn live_connections(app: &TestApp, sid: &str) -> Vec<String> {
    let live: Value = get_json(&format!(
        "{}/_emulator/sessions/{sid}/connections",
        app.upstream
    ))
    .await;
    live["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["connectionId"].as_str().unwrap().to_owned())
        .collect()
}

fn muted(state: &Value, stream_id: &str) -> bool {
    state["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["streamId"] == stream_id)
        .unwrap()["audioMuted"]
        .as_bool()
        .unwrap()
}

#[tokio::test]
async fn a_moderator_removes_a_connection_and_a_joiner_cannot_in_both_credential_modes() {
    for kind in [Kind::Legacy, Kind::Application] {
        let upstream = spawn_emulator().await;
        let moderator = TestApp::spawn_against(kind, &upstream, MODERATORS).await;
        let joiner = TestApp::spawn_against(kind, &upstream, "").await;
        let (sid, clients) = room_with_clients(&moderator, "town-hall", 2).await;
        let (victim, _) = &clients[0];

        let before = moderator.upstream_requests().await.len();
        let response = joiner
            .delete(&format!("/rooms/town-hall/connections/{victim}"))
            .await;
        assert_problem(response, 403, "forbidden").await;
        assert_eq!(
            moderator.upstream_requests().await.len(),
            before,
            "nothing was sent upstream"
        );
        assert_eq!(live_connections(&moderator, &sid).await.len(), 2);

        let response = moderator
            .delete(&format!("/rooms/town-hall/connections/{victim}"))
            .await;
        assert_eq!(response.status(), 204);
        let live = live_connections(&moderator, &sid).await;
        assert_eq!(
            live,
            [clients[1].0.clone()],
            "the emulator's connection is gone"
        );
        let response = moderator
            .delete(&format!("/sessions/{sid}/connections/{victim}"))
            .await;
        assert_problem(response, 404, "connection_not_found").await;
        let streams: Value = moderator
            .get("/rooms/town-hall/streams")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(streams["count"], 1, "its stream went with it: {streams}");
        assert_eq!(streams["items"][0]["id"], clients[1].1.as_str());
        assert_eq!(streams["items"][0]["videoType"], "camera");
        assert_eq!(streams["items"][0]["name"], "client 1");

        // Counted per action and outcome. The recorder is the process's, shared by every
        // test, so only series this test certainly produced are looked for.
        let metrics = moderator.get("/metrics").await;
        let text = metrics.text().await.unwrap();
        for series in [
            r#"moderation_actions_total{action="remove_connection",outcome="ok"}"#,
            r#"moderation_actions_total{action="remove_connection",outcome="forbidden"}"#,
            r#"moderation_actions_total{action="remove_connection",outcome="connection_not_found"}"#,
            r#"moderation_actions_total{action="list_streams",outcome="ok"}"#,
            r#"vonage_calls_total{operation="force_disconnect",outcome="rejected"}"#,
            r#"vonage_retries_total{operation="signal_all"}"#,
            "moderation_banned_refusals_total",
        ] {
            assert!(text.contains(series), "{series} missing from:\n{text}");
        }
    }
}

#[tokio::test]
async fn mute_one_then_mute_all_with_exclusions_as_room_state() {
    let upstream = spawn_emulator().await;
    let app = TestApp::spawn_against(Kind::Application, &upstream, MODERATORS).await;
    let (sid, clients) = room_with_clients(&app, "mutes", 3).await;
    let [(_, a), (_, b), (c_conn, c)] = [&clients[0], &clients[1], &clients[2]].map(Clone::clone);

    assert_eq!(
        app.post(&format!("/rooms/mutes/streams/{a}/mute"))
            .await
            .status(),
        204
    );
    let state = emulator_moderation(&app, &sid).await;
    assert!(
        muted(&state, &a) && !muted(&state, &b) && !muted(&state, &c),
        "{state}"
    );
    let response = app.post("/rooms/mutes/streams/no-such-stream/mute").await;
    assert_problem(response, 404, "stream_not_found").await;

    let response = app
        .post_json("/rooms/mutes/mute", &json!({"excludedStreamIds": [c]}))
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["active"], true);
    assert_eq!(body["excludedStreamIds"], json!([c]));
    let state = emulator_moderation(&app, &sid).await;
    assert!(muted(&state, &b) && !muted(&state, &c), "{state}");
    let room: Value = app.get("/rooms/mutes").await.json().await.unwrap();
    assert_eq!(
        room["muteAll"]["active"], true,
        "shown as room state: {room}"
    );
    assert_eq!(room["muteAll"]["excludedStreamIds"], json!([c]));

    // A stream published while the state is on is muted too.
    let late: Value = post_for_json(
        &format!(
            "{}/_emulator/sessions/{sid}/connections/{c_conn}/streams",
            app.upstream
        ),
        &json!({"videoType": "screen"}),
    )
    .await;
    let late = late["streamId"].as_str().unwrap().to_owned();
    assert!(muted(&emulator_moderation(&app, &sid).await, &late));

    let lifted: Value = app
        .post_json("/rooms/mutes/mute", &json!({"active": false}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(lifted["active"], false);
    let room: Value = app.get("/rooms/mutes").await.json().await.unwrap();
    assert_eq!(room["muteAll"]["active"], false);
    assert!(emulator_moderation(&app, &sid).await["muteAll"].is_null());
}

#[tokio::test]
async fn signals_reach_one_connection_and_everyone() {
    let upstream = spawn_emulator().await;
    let app = TestApp::spawn_against(Kind::Legacy, &upstream, MODERATORS).await;
    let (sid, clients) = room_with_clients(&app, "signals", 2).await;
    let one = &clients[1].0;
    let response = app
        .post_json(
            &format!("/rooms/signals/connections/{one}/signal"),
            &json!({"type": "nudge", "data": "you"}),
        )
        .await;
    assert_eq!(response.status(), 204);
    let response = app
        .post_json(
            "/rooms/signals/signal",
            &json!({"type": "chat", "data": "everyone"}),
        )
        .await;
    assert_eq!(response.status(), 204);
    let signals = emulator_moderation(&app, &sid).await["signals"].clone();
    assert_eq!(signals[0]["to"], json!([one]));
    assert_eq!(signals[0]["type"], "nudge");
    assert_eq!(signals[0]["data"], "you");
    let mut everyone: Vec<String> = clients.iter().map(|(c, _)| c.clone()).collect();
    everyone.sort();
    let mut reached: Vec<String> = signals[1]["to"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    reached.sort();
    assert_eq!(reached, everyone);

    let response = app
        .post_json(
            "/rooms/signals/connections/gone-away/signal",
            &json!({"data": "?"}),
        )
        .await;
    assert_problem(response, 404, "connection_not_found").await;
    for (cid, _) in &clients {
        assert_eq!(
            app.delete(&format!("/sessions/{sid}/connections/{cid}"))
                .await
                .status(),
            204
        );
    }
    let response = app
        .post_json("/rooms/signals/signal", &json!({"data": "anyone?"}))
        .await;
    assert_problem(response, 409, "session_not_active").await;
}

/// A stand-in for the room-lifecycle presence map: who holds which connection, read from the
/// emulator's registry (whose connection data is the `{"sub", …}` our tokens bind).
#[derive(Debug)]
struct EmulatorPresence {
    upstream: String,
}

#[async_trait::async_trait]
impl vonage_sessions::moderation::Presence for EmulatorPresence {
    async fn connections_of(
        &self,
        session_id: &str,
        sub: &str,
    ) -> Result<Option<Vec<String>>, vonage_sessions::rooms::store::StoreError> {
        let url = format!(
            "{}/_emulator/sessions/{session_id}/connections",
            self.upstream
        );
        let live: Value = get_json(&url).await;
        let held = live["connections"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| {
                let data: Value = serde_json::from_str(c["data"].as_str().unwrap_or("{}")).unwrap();
                data["sub"] == sub
            })
            .map(|c| c["connectionId"].as_str().unwrap().to_owned())
            .collect();
        Ok(Some(held))
    }
}

/// A JWT-auth service whose moderation knows presence through `EmulatorPresence`.
async fn replica_with_presence(upstream: &str, redis: &RedisServer) -> String {
    use std::path::PathBuf;

    use figment::providers::{Format as _, Toml};
    use vonage_sessions::config::{Config, Sources};

    let mut env = Kind::Legacy.env();
    env.insert(
        "VONAGE_SESSIONS_AUTH_HS256_SECRET".into(),
        HS256_SECRET.into(),
    );
    let lookup = |name: &str| env.get(name).cloned();
    let sources = Sources {
        config_dir: PathBuf::from("config"),
        env: &lookup,
        process_env_overrides: false,
    };
    let figment = Config::figment(&sources).unwrap().merge(Toml::string(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[video]\napi_url = \"{upstream}\"\n[rate_limits]\nenabled = false\n\
         {}[auth]\nmode = \"jwt\"\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\n",
        redis.rooms_config()
    )));
    let config = Config::from_figment(figment, &lookup).unwrap();
    let credentials = vonage_sessions::video::Credentials::legacy(
        API_KEY,
        &secrecy::SecretString::from(crate::helpers::API_SECRET),
    )
    .unwrap();
    let presence = std::sync::Arc::new(EmulatorPresence {
        upstream: upstream.to_owned(),
    });
    let app = vonage_sessions::app::App::build_with_presence(&config, credentials, presence)
        .await
        .unwrap();
    let url = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until(std::future::pending()));
    url
}

#[tokio::test]
async fn removing_a_user_disconnects_every_connection_of_that_sub_and_bans_them() {
    let redis = RedisServer::start();
    let upstream = spawn_emulator().await;
    let url = replica_with_presence(&upstream, &redis).await;
    let host = bearer("host", "video:create video:join video:moderate");
    let mallory = bearer("mallory", "video:join");
    let alice = bearer("alice", "video:join");
    let call = |token: &str, verb: Method, path: &str| {
        client()
            .request(verb, format!("{url}{path}"))
            .bearer_auth(token)
            .send()
    };
    let mut sid = String::new();
    let mut connect = Vec::new();
    for token in [&host, &mallory, &mallory, &alice] {
        let joined: Value = call(token, Method::POST, "/rooms/all-hands/join")
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        sid = joined["sessionId"].as_str().unwrap().to_owned();
        let connection: Value = post_for_json(
            &format!("{upstream}/_emulator/sessions/{sid}/connections"),
            &json!({"token": joined["token"]}),
        )
        .await;
        connect.push(connection["connectionId"].as_str().unwrap().to_owned());
    }
    let response = call(
        &host,
        Method::DELETE,
        "/rooms/all-hands/participants/mallory?ban=true",
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    let removed: Value = response.json().await.unwrap();
    assert_eq!(removed["presenceTracked"], true);
    assert_eq!(removed["banned"], true);
    let mut gone: Vec<String> = removed["disconnectedConnectionIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    gone.sort();
    let mut mallorys = vec![connect[1].clone(), connect[2].clone()];
    mallorys.sort();
    assert_eq!(
        gone, mallorys,
        "both of mallory's connections, no one else's"
    );
    let live: Value = get_json(&format!("{upstream}/_emulator/sessions/{sid}/connections")).await;
    let mut left: Vec<&str> = live["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["connectionId"].as_str().unwrap())
        .collect();
    left.sort();
    let mut expected = vec![connect[0].as_str(), connect[3].as_str()];
    expected.sort();
    assert_eq!(left, expected);
    let response = call(&mallory, Method::POST, "/rooms/all-hands/join")
        .await
        .unwrap();
    assert_problem(response, 403, "banned").await;

    // Without a ban, removal alone; a second removal finds nothing left.
    let response = call(&host, Method::DELETE, "/rooms/all-hands/participants/alice")
        .await
        .unwrap();
    let removed: Value = response.json().await.unwrap();
    assert_eq!(removed["disconnectedConnectionIds"], json!([connect[3]]));
    assert_eq!(removed["banned"], false);
    let removed: Value = call(&host, Method::DELETE, "/rooms/all-hands/participants/alice")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(removed["disconnectedConnectionIds"], json!([]));
    assert_eq!(
        call(&alice, Method::POST, "/rooms/all-hands/join")
            .await
            .unwrap()
            .status(),
        200,
        "not banned"
    );
}
