//! The room lifecycle end to end (`docs/room-lifecycle.md`): real replicas over real HTTP
//! sharing a real Redis, the emulator playing Vonage (clients connect with the tokens we issue;
//! it sends signed session-monitoring callbacks, with faults, to the service's verifying
//! receiver `POST /vonage/callbacks`), presence, seats, policies, the room's end, retirement
//! and reconciliation.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use figment::providers::{Format as _, Toml};
use jsonwebtoken::{EncodingKey, Header, encode, get_current_timestamp};
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};
use vonage_sessions::app::App;
use vonage_sessions::config::{Config, Sources};
use vonage_sessions::emulator::{CallbackSettings, Emulator, Faults};

use crate::emulator_connections::{ARCHIVE_SECRET, SESSION_SECRET};
use crate::helpers::{
    API_KEY, API_SECRET, Caller, Kind, RedisServer, assert_problem, client, get_json,
    test_credentials,
};

const ISSUER: &str = "https://idp.test";
const AUDIENCE: &str = "vonage-sessions";
const HS256_SECRET: &str = "lifecycle-test-hs256-secret-0123456789abcdef";

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

fn rfc3339(epoch_ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(epoch_ms) * 1_000_000)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn parse_rfc3339(text: &str) -> u64 {
    let parsed =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap();
    u64::try_from(parsed.unix_timestamp_nanos() / 1_000_000).unwrap()
}

fn bearer(sub: &str, scope: &str) -> String {
    let now = get_current_timestamp();
    let claims = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "name": format!("{sub} name"),
        "scope": scope, "iat": now, "exp": now + 600});
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(HS256_SECRET.as_bytes()),
    )
    .unwrap()
}

/// How callers authenticate in a test.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// Anonymous callers with every scope.
    Anonymous,
    /// HS256 JWTs.
    Jwt,
}

/// One running replica.
struct Replica {
    url: String,
}

/// The emulator, Redis and replicas of one test.
struct Stack {
    upstream: String,
    replicas: Vec<Replica>,
    _redis: Option<RedisServer>,
}

async fn spawn_replica(upstream: &str, auth: Auth, store: &str, overrides: &str) -> (Replica, App) {
    let mut env = Kind::Legacy.env();
    env.insert(
        "VONAGE_SESSIONS_AUTH_HS256_SECRET".into(),
        HS256_SECRET.into(),
    );
    env.insert(
        "VONAGE_SESSION_CALLBACK_SECRET".into(),
        SESSION_SECRET.into(),
    );
    env.insert(
        "VONAGE_ARCHIVE_CALLBACK_SECRET".into(),
        ARCHIVE_SECRET.into(),
    );
    let lookup = |name: &str| env.get(name).cloned();
    let sources = Sources {
        config_dir: PathBuf::from("config"),
        env: &lookup,
        process_env_overrides: false,
    };
    let auth_toml = match auth {
        Auth::Anonymous => "[auth]\nmode = \"anonymous\"\nanonymous_scopes = [\"video:create\", \"video:join\", \"video:moderate\", \"video:admin\"]\n".to_owned(),
        Auth::Jwt => format!("[auth]\nmode = \"jwt\"\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\n"),
    };
    let figment = Config::figment(&sources)
        .unwrap()
        .merge(Toml::string(&format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[video]\napi_url = \"{upstream}\"\n[rate_limits]\nenabled = false\n"
        )))
        .merge(Toml::string(&auth_toml))
        .merge(Toml::string(store))
        .merge(Toml::string(overrides));
    let config = Config::from_figment(figment, &lookup).unwrap();
    let credentials =
        vonage_sessions::video::Credentials::legacy(API_KEY, &SecretString::from(API_SECRET))
            .unwrap();
    let app = App::build(&config, credentials).await.unwrap();
    let url = format!("http://{}", app.local_addr());
    (Replica { url }, app)
}

impl Stack {
    /// `replicas` replicas sharing one Redis, with `overrides` (TOML) on top of the defaults.
    async fn start(replicas: usize, auth: Auth, overrides: &str) -> Self {
        Self::start_with(Some(RedisServer::start()), replicas, auth, overrides).await
    }

    /// One replica with the in-process store (`rooms.store = "memory"`).
    async fn start_in_memory(auth: Auth, overrides: &str) -> Self {
        Self::start_with(None, 1, auth, overrides).await
    }

    async fn start_with(
        redis: Option<RedisServer>,
        replicas: usize,
        auth: Auth,
        overrides: &str,
    ) -> Self {
        let emulator = Emulator::bind_with_callbacks(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            test_credentials(),
            Faults::default(),
            CallbackSettings {
                url: None,
                session_secret: Some(SecretString::from(SESSION_SECRET)),
                archive_secret: Some(SecretString::from(ARCHIVE_SECRET)),
            },
        )
        .await
        .unwrap();
        let upstream = emulator.base_url();
        tokio::spawn(emulator.run_until(std::future::pending()));
        let store = redis
            .as_ref()
            .map(RedisServer::rooms_config)
            .unwrap_or_default();
        let mut started = Vec::new();
        for _ in 0..replicas {
            let (replica, app) = spawn_replica(&upstream, auth, &store, overrides).await;
            tokio::spawn(app.run_until(std::future::pending()));
            started.push(replica);
        }
        // Vonage posts to one address: the first replica's verifying receiver.
        let callback_url = format!("{}/vonage/callbacks", started[0].url);
        let stack = Self {
            upstream,
            replicas: started,
            _redis: redis,
        };
        stack
            .emulator(
                Method::PUT,
                "/_emulator/callbacks",
                Some(json!({"url": callback_url, "retryMs": 50})),
            )
            .await;
        stack
    }

    fn url(&self) -> &str {
        &self.replicas[0].url
    }

    async fn emulator(&self, verb: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = client().request(verb, format!("{}{path}", self.upstream));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn faults(&self, faults: Value) {
        let (status, _) = self
            .emulator(
                Method::PUT,
                "/_emulator/callbacks",
                Some(json!({"faults": faults})),
            )
            .await;
        assert_eq!(status, 200);
    }

    /// A client connects to `session_id` with `token`; answers its connection ID.
    async fn connect(&self, session_id: &str, token: &Value) -> String {
        let (status, connection) = self
            .emulator(
                Method::POST,
                &format!("/_emulator/sessions/{session_id}/connections"),
                Some(json!({"token": token})),
            )
            .await;
        assert_eq!(status, 201, "{connection}");
        connection["connectionId"].as_str().unwrap().to_owned()
    }

    async fn leave(&self, session_id: &str, connection_id: &str, silent: bool) {
        let query = if silent { "?silent=true" } else { "" };
        let (status, _) = self
            .emulator(
                Method::DELETE,
                &format!("/_emulator/sessions/{session_id}/connections/{connection_id}{query}"),
                None,
            )
            .await;
        assert_eq!(status, 204);
    }

    /// The connections the emulator (Vonage) has in the session.
    async fn live(&self, session_id: &str) -> Vec<Value> {
        let (_, live) = self
            .emulator(
                Method::GET,
                &format!("/_emulator/sessions/{session_id}/connections"),
                None,
            )
            .await;
        live["connections"].as_array().cloned().unwrap_or_default()
    }
}

async fn join(url: &str, token: Option<&str>, room: &str, body: Value) -> (u16, Value) {
    let response = Caller::new(url, token)
        .post(&format!("/rooms/{room}/join"), Some(body))
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn room(url: &str, token: Option<&str>, room: &str) -> (u16, Value) {
    let response = Caller::new(url, token).get(&format!("/rooms/{room}")).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Polls `check` until it answers true, for up to `within`.
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `GET /rooms/{room}` shows `participants`.
async fn wait_participants(url: &str, token: Option<&str>, name: &str, participants: u64) -> Value {
    let mut last = Value::Null;
    let within = Duration::from_secs(10);
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let (status, body) = room(url, token, name).await;
        if status == 200 && body["participants"] == participants {
            return body;
        }
        last = if status == 200 { body } else { last };
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected {participants} participants in {name}, last saw {last}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_participant_who_connects_is_shown_with_the_sub_bound_into_their_token() {
    let stack = Stack::start(1, Auth::Jwt, "").await;
    let alice = bearer("alice", "video:create video:join");
    let (status, joined) = join(stack.url(), Some(&alice), "standup", json!({})).await;
    assert_eq!(status, 201, "{joined}");
    let sid = joined["sessionId"].as_str().unwrap().to_owned();
    let (_, before) = room(stack.url(), Some(&alice), "standup").await;
    assert_eq!(before["participants"], 0);
    assert_eq!(
        before["heldSeats"], 1,
        "the issued token holds a seat: {before}"
    );

    let connection = stack.connect(&sid, &joined["token"]).await;
    let shown = wait_participants(stack.url(), Some(&alice), "standup", 1).await;
    assert_eq!(shown["connections"][0]["connectionId"], connection);
    assert_eq!(shown["connections"][0]["sub"], "alice");
    assert_eq!(shown["connections"][0]["name"], "alice name");
    assert_eq!(
        shown["heldSeats"], 0,
        "the connection released its hold: {shown}"
    );
    assert_eq!(shown["state"], "open");
    assert!(shown["lastActiveAt"].is_string());
    assert!(shown["policy"].is_null());

    let (status, _) = stack
        .emulator(
            Method::POST,
            &format!("/_emulator/sessions/{sid}/connections/{connection}/streams"),
            Some(json!({"videoType": "screen", "name": "slides"})),
        )
        .await;
    assert_eq!(status, 201);
    let url = stack.url().to_owned();
    eventually(Duration::from_secs(10), "the stream", || {
        let (url, alice, connection) = (url.clone(), alice.clone(), connection.clone());
        async move {
            let (_, body) = room(&url, Some(&alice), "standup").await;
            body["streams"][0]["videoType"] == "screen"
                && body["streams"][0]["connectionId"] == connection.as_str()
                && body["streams"][0]["name"] == "slides"
        }
    })
    .await;

    stack.leave(&sid, &connection, false).await;
    let gone = wait_participants(stack.url(), Some(&alice), "standup", 0).await;
    assert_eq!(gone["streams"], json!([]), "its streams went with it");
    assert_eq!(gone["state"], "empty");
}

#[tokio::test]
async fn twenty_concurrent_joins_of_an_eight_seat_room_over_three_replicas_get_exactly_eight_tokens()
 {
    let stack = Stack::start(3, Auth::Anonymous, "").await;
    let response = Caller::new(stack.url(), None)
        .put("/rooms/eight", json!({"maxParticipants": 8}))
        .await;
    assert_eq!(response.status(), 200);
    let urls: Vec<String> = stack.replicas.iter().map(|r| r.url.clone()).collect();
    let joins = (0..20).map(|i| {
        let url = urls[i % urls.len()].clone();
        tokio::spawn(async move { join(&url, None, "eight", json!({})).await })
    });
    let mut tokens = 0;
    let mut full = 0;
    let mut sessions = std::collections::HashSet::new();
    for handle in joins {
        let (status, body) = handle.await.unwrap();
        match status {
            200 | 201 => {
                tokens += 1;
                sessions.insert(body["sessionId"].as_str().unwrap().to_owned());
            }
            409 => {
                assert_eq!(body["code"], "room_full", "{body}");
                assert_eq!(body["maxParticipants"], 8);
                full += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((tokens, full), (8, 12));
    assert_eq!(sessions.len(), 1, "one session for the room");
    // The token route of the room's session counts the same seats.
    let sid = sessions.into_iter().next().unwrap();
    let response = Caller::new(stack.url(), None)
        .post(&format!("/sessions/{sid}/tokens"), None)
        .await;
    let body = assert_problem(response, 409, "room_full").await;
    assert_eq!(body["maxParticipants"], 8);
    let (_, shown) = room(&urls[2], None, "eight").await;
    assert_eq!(shown["heldSeats"], 8, "{shown}");
    assert_eq!(shown["policy"]["maxParticipants"], 8);
}

#[tokio::test]
async fn duplicated_and_reordered_callbacks_leave_the_right_counts() {
    let stack = Stack::start(1, Auth::Jwt, "").await;
    let host = bearer("host", "video:create video:join");
    let (_, joined) = join(stack.url(), Some(&host), "busy", json!({})).await;
    let sid = joined["sessionId"].as_str().unwrap().to_owned();
    stack
        .faults(json!({"duplicate": true, "reorder": true}))
        .await;
    let mut connections = Vec::new();
    for sub in ["ann", "bob", "cy"] {
        let token = bearer(sub, "video:join");
        let (status, joined) = join(stack.url(), Some(&token), "busy", json!({})).await;
        assert_eq!(status, 200);
        connections.push(stack.connect(&sid, &joined["token"]).await);
    }
    // bob leaves: connectionDestroyed is held back behind the next event and sent twice.
    stack.leave(&sid, &connections[1], false).await;
    // eve connects and leaves at once: her events may arrive destroy first; she stays gone.
    let eve = bearer("eve", "video:join");
    let (_, joined) = join(stack.url(), Some(&eve), "busy", json!({})).await;
    let gone = stack.connect(&sid, &joined["token"]).await;
    stack.leave(&sid, &gone, false).await;
    let token = bearer("dee", "video:join");
    let (_, joined) = join(stack.url(), Some(&token), "busy", json!({})).await;
    connections.push(stack.connect(&sid, &joined["token"]).await);
    let shown = wait_participants(stack.url(), Some(&host), "busy", 3).await;
    let mut subs: Vec<&str> = shown["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["sub"].as_str().unwrap())
        .collect();
    subs.sort_unstable();
    assert_eq!(subs, ["ann", "cy", "dee"]);
    // Let every held and duplicated delivery land; the counts stay.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (_, settled) = room(stack.url(), Some(&host), "busy").await;
    assert_eq!(settled["participants"], 3, "{settled}");
    let deliveries = stack
        .emulator(Method::GET, "/_emulator/callbacks", None)
        .await
        .1;
    let destroyed = deliveries["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["event"] == "connectionDestroyed" && d["status"] == 204)
        .count();
    assert!(
        destroyed >= 2,
        "the destroy was delivered twice: {destroyed}"
    );
}

#[tokio::test]
async fn a_server_rotation_keeps_the_room_and_its_participants() {
    let stack = Stack::start(1, Auth::Jwt, "").await;
    let alice = bearer("alice", "video:create video:join");
    let (_, joined) = join(stack.url(), Some(&alice), "rotating", json!({})).await;
    let sid = joined["sessionId"].as_str().unwrap().to_owned();
    stack.connect(&sid, &joined["token"]).await;
    wait_participants(stack.url(), Some(&alice), "rotating", 1).await;
    let (status, _) = stack
        .emulator(
            Method::POST,
            &format!("/_emulator/sessions/{sid}/rotate"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let url = stack.upstream.clone();
    eventually(
        Duration::from_secs(5),
        "the sessionDestroyed delivery",
        || {
            let url = url.clone();
            async move {
                let log: Value = get_json(&format!("{url}/_emulator/callbacks")).await;
                log["deliveries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|d| d["event"] == "sessionDestroyed" && d["status"] == 204)
            }
        },
    )
    .await;
    let (status, shown) = room(stack.url(), Some(&alice), "rotating").await;
    assert_eq!(status, 200, "the room is not retired: {shown}");
    assert_eq!(shown["sessionId"], sid.as_str());
    assert_eq!(shown["participants"], 1);
    let (status, again) = join(stack.url(), Some(&alice), "rotating", json!({})).await;
    assert_eq!(
        (status, again["sessionId"].as_str()),
        (200, Some(sid.as_str()))
    );
}

#[tokio::test]
async fn a_lost_connection_destroyed_is_repaired_by_reconciliation() {
    let stack = Stack::start(2, Auth::Jwt, "[rooms]\nreconcile_seconds = 1\n").await;
    let alice = bearer("alice", "video:create video:join");
    let bob = bearer("bob", "video:join");
    let (_, joined) = join(stack.url(), Some(&alice), "lossy", json!({})).await;
    let sid = joined["sessionId"].as_str().unwrap().to_owned();
    let first = stack.connect(&sid, &joined["token"]).await;
    let (_, joined) = join(stack.url(), Some(&bob), "lossy", json!({})).await;
    stack.connect(&sid, &joined["token"]).await;
    wait_participants(stack.url(), Some(&alice), "lossy", 2).await;
    // alice's connectionDestroyed is lost (never delivered).
    stack.faults(json!({"drop": true})).await;
    stack.leave(&sid, &first, false).await;
    // A client Vonage knows that no callback announced: counted, without identity.
    let (_, joined) = join(stack.url(), Some(&bob), "lossy", json!({})).await;
    let unknown = stack.connect(&sid, &joined["token"]).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let shown = wait_participants(&stack.replicas[1].url, Some(&alice), "lossy", 2).await;
    let connections = shown["connections"].as_array().unwrap();
    assert!(
        connections
            .iter()
            .all(|c| c["connectionId"] != first.as_str()),
        "{shown}"
    );
    let stranger = connections
        .iter()
        .find(|c| c["connectionId"] == unknown.as_str())
        .unwrap_or_else(|| panic!("the unannounced connection is counted: {shown}"));
    assert!(stranger["sub"].is_null());
}

#[tokio::test]
async fn an_expired_room_disconnects_everyone_and_issues_no_more_tokens() {
    let stack = Stack::start(1, Auth::Jwt, "").await;
    let host = bearer("host", "video:create video:join");
    let guest = bearer("guest", "video:join");
    let closes = now_ms() + 3_000;
    let policy = json!({"expiresAt": rfc3339(closes)});
    let (status, joined) = join(stack.url(), Some(&host), "short", json!({"policy": policy})).await;
    assert_eq!(status, 201, "{joined}");
    assert!(
        parse_rfc3339(joined["expiresAt"].as_str().unwrap()) <= closes,
        "the token expires by the room's close: {joined}"
    );
    let sid = joined["sessionId"].as_str().unwrap().to_owned();
    stack.connect(&sid, &joined["token"]).await;
    let (_, joined) = join(stack.url(), Some(&guest), "short", json!({})).await;
    stack.connect(&sid, &joined["token"]).await;
    assert_eq!(stack.live(&sid).await.len(), 2);
    let url = stack.upstream.clone();
    let session = sid.clone();
    eventually(Duration::from_secs(15), "everyone disconnected", || {
        let (url, session) = (url.clone(), session.clone());
        async move {
            let live: Value =
                get_json(&format!("{url}/_emulator/sessions/{session}/connections")).await;
            live["connections"].as_array().is_some_and(Vec::is_empty)
        }
    })
    .await;
    let response = Caller::new(stack.url(), Some(&guest))
        .post("/rooms/short/join", None)
        .await;
    let body = assert_problem(response, 403, "room_closed").await;
    assert_eq!(parse_rfc3339(body["expiresAt"].as_str().unwrap()), closes);
    let response = Caller::new(stack.url(), Some(&guest))
        .post(&format!("/sessions/{sid}/tokens"), None)
        .await;
    assert_problem(response, 403, "room_closed").await;
}

#[tokio::test]
async fn the_last_participant_leaving_retires_the_room_after_the_delay_and_stops_its_archive() {
    let stack = Stack::start(1, Auth::Anonymous, "[rooms]\nempty_retire_seconds = 2\n").await;
    let (_, joined) = join(stack.url(), None, "recorded", json!({})).await;
    let sid = joined["sessionId"].as_str().unwrap().to_owned();
    let connection = stack.connect(&sid, &joined["token"]).await;
    wait_participants(stack.url(), None, "recorded", 1).await;
    let response = Caller::new(stack.url(), None)
        .post(&format!("/sessions/{sid}/archives"), Some(json!({})))
        .await;
    assert_eq!(response.status(), 201);
    let archive: Value = response.json().await.unwrap();
    let archive_id = archive["id"].as_str().unwrap().to_owned();
    stack.leave(&sid, &connection, false).await;
    let emptied = wait_participants(stack.url(), None, "recorded", 0).await;
    assert_eq!(emptied["state"], "empty");
    // Not at once: the delay first.
    let (status, _) = room(stack.url(), None, "recorded").await;
    assert_eq!(status, 200);
    let url = stack.url().to_owned();
    eventually(Duration::from_secs(15), "the room retired", || {
        let url = url.clone();
        async move { room(&url, None, "recorded").await.0 == 404 }
    })
    .await;
    let response = Caller::new(stack.url(), None)
        .get(&format!("/archives/{archive_id}"))
        .await;
    let archive: Value = response.json().await.unwrap();
    assert!(
        matches!(
            archive["status"].as_str(),
            Some("stopped" | "uploaded" | "available")
        ),
        "the archive was stopped: {archive}"
    );
    let (status, again) = join(stack.url(), None, "recorded", json!({})).await;
    assert_eq!(status, 201, "the next join creates a new session");
    assert_ne!(again["sessionId"], sid.as_str());
}

#[tokio::test]
async fn opening_hours_roles_and_policies_are_enforced_from_the_first_join_and_from_put() {
    let stack = Stack::start(1, Auth::Jwt, "").await;
    let admin = bearer("admin", "video:create video:join video:admin");
    let guest = bearer("guest", "video:join");
    let opens = now_ms() + 3_600_000;
    let closes = opens + 3_600_000;
    // PUT schedules a room ahead, without a session.
    let response = Caller::new(stack.url(), Some(&admin)).put("/rooms/later", json!({"notBefore": rfc3339(opens), "expiresAt": rfc3339(closes), "maxParticipants": 4}))
    .await;
    assert_eq!(response.status(), 200);
    let put: Value = response.json().await.unwrap();
    assert_eq!(put["policy"]["maxParticipants"], 4);
    let response = Caller::new(stack.url(), Some(&guest))
        .put("/rooms/later", json!({}))
        .await;
    assert_problem(response, 403, "forbidden").await;
    let response = Caller::new(stack.url(), Some(&admin))
        .post("/rooms/later/join", None)
        .await;
    let body = assert_problem(response, 403, "room_not_open").await;
    assert_eq!(
        parse_rfc3339(body["notBefore"].as_str().unwrap()) / 1000,
        opens / 1000
    );
    assert_eq!(
        parse_rfc3339(body["expiresAt"].as_str().unwrap()) / 1000,
        closes / 1000
    );
    assert_eq!(
        room(stack.url(), Some(&admin), "later").await.0,
        404,
        "no session was created"
    );

    // The first join's policy: roles.
    let policy = json!({"defaultRole": "subscriber", "allowedRoles": ["subscriber", "publisher"],
        "moderators": ["host"]});
    let response = Caller::new(stack.url(), Some(&guest))
        .post("/rooms/webinar/join", Some(json!({"policy": policy})))
        .await;
    assert_problem(response, 403, "forbidden").await;
    let (status, joined) = join(
        stack.url(),
        Some(&admin),
        "webinar",
        json!({"policy": policy}),
    )
    .await;
    assert_eq!(status, 201, "{joined}");
    assert_eq!(joined["role"], "subscriber", "the room's default role");
    // A later join's policy does not replace it.
    let (status, _) = join(
        stack.url(),
        Some(&admin),
        "webinar",
        json!({"policy": {"maxParticipants": 1}}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, shown) = room(stack.url(), Some(&guest), "webinar").await;
    assert_eq!(shown["policy"]["defaultRole"], "subscriber");
    assert!(shown["policy"]["maxParticipants"].is_null(), "{shown}");
    let response = Caller::new(stack.url(), Some(&guest))
        .post(
            "/rooms/webinar/join",
            Some(json!({"token": {"role": "publisheronly"}})),
        )
        .await;
    assert_problem(response, 403, "role_not_allowed").await;
    // The room's moderator gets a moderator token without video:moderate.
    let host = bearer("host", "video:join");
    let (status, joined) = join(stack.url(), Some(&host), "webinar", json!({})).await;
    assert_eq!((status, joined["role"].as_str()), (200, Some("moderator")));
    let (status, joined) = join(
        stack.url(),
        Some(&guest),
        "webinar",
        json!({"token": {"role": "moderator"}}),
    )
    .await;
    assert_eq!(status, 403, "{joined}");

    // Token lifetimes end by expiresAt; the session token route enforces the policy too.
    let soon = now_ms() + 120_000;
    let response = Caller::new(stack.url(), Some(&admin))
        .put("/rooms/webinar", json!({"expiresAt": rfc3339(soon)}))
        .await;
    assert_eq!(response.status(), 200);
    let sid = shown["sessionId"].as_str().unwrap();
    let response = Caller::new(stack.url(), Some(&guest))
        .post(
            &format!("/sessions/{sid}/tokens"),
            Some(json!({"ttlSeconds": 3600})),
        )
        .await;
    assert_eq!(response.status(), 201);
    let token: Value = response.json().await.unwrap();
    assert!(
        parse_rfc3339(token["expiresAt"].as_str().unwrap()) <= soon,
        "{token}"
    );
}

#[tokio::test]
async fn a_room_moderator_removes_a_participant_and_every_connection_of_their_sub() {
    let stack = Stack::start(1, Auth::Jwt, "").await;
    let owner = bearer("owner", "video:create video:join");
    let host = bearer("host", "video:join");
    let mallory = bearer("mallory", "video:join");
    let (_, joined) = join(
        stack.url(),
        Some(&owner),
        "town-hall",
        json!({"policy": {"moderators": ["host"]}}),
    )
    .await;
    let sid = joined["sessionId"].as_str().unwrap().to_owned();
    stack.connect(&sid, &joined["token"]).await;
    for _ in 0..2 {
        let (_, joined) = join(stack.url(), Some(&mallory), "town-hall", json!({})).await;
        stack.connect(&sid, &joined["token"]).await;
    }
    wait_participants(stack.url(), Some(&owner), "town-hall", 3).await;
    // Without the global scope and not a room moderator: refused.
    let response = Caller::new(stack.url(), Some(&mallory))
        .delete("/rooms/town-hall/participants/owner")
        .await;
    assert_problem(response, 403, "forbidden").await;
    let response = Caller::new(stack.url(), Some(&host))
        .delete("/rooms/town-hall/participants/mallory")
        .await;
    assert_eq!(response.status(), 200);
    let removed: Value = response.json().await.unwrap();
    assert_eq!(removed["presenceTracked"], true);
    assert_eq!(
        removed["disconnectedConnectionIds"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "{removed}"
    );
    let live = stack.live(&sid).await;
    assert_eq!(live.len(), 1, "only the owner is left at Vonage: {live:?}");
    wait_participants(stack.url(), Some(&owner), "town-hall", 1).await;
}

#[tokio::test]
async fn the_in_process_store_keeps_presence_seats_and_the_room_end_too() {
    let stack = Stack::start_in_memory(Auth::Jwt, "[rooms]\nempty_retire_seconds = 1\n").await;
    let alice = bearer("alice", "video:create video:join");
    let bob = bearer("bob", "video:join");
    let (status, joined) = join(
        stack.url(),
        Some(&alice),
        "solo",
        json!({"policy": {"maxParticipants": 1}}),
    )
    .await;
    assert_eq!(status, 201, "{joined}");
    let sid = joined["sessionId"].as_str().unwrap().to_owned();
    let response = Caller::new(stack.url(), Some(&bob))
        .post("/rooms/solo/join", None)
        .await;
    assert_problem(response, 409, "room_full").await;
    let connection = stack.connect(&sid, &joined["token"]).await;
    let shown = wait_participants(stack.url(), Some(&alice), "solo", 1).await;
    assert_eq!(shown["connections"][0]["sub"], "alice");
    let response = Caller::new(stack.url(), Some(&bob))
        .post("/rooms/solo/join", None)
        .await;
    assert_problem(response, 409, "room_full").await;
    stack.leave(&sid, &connection, false).await;
    let url = stack.url().to_owned();
    let token = alice.clone();
    eventually(Duration::from_secs(15), "the room retired", || {
        let (url, token) = (url.clone(), token.clone());
        async move { room(&url, Some(&token), "solo").await.0 == 404 }
    })
    .await;
    // The policy outlives the session: still one seat.
    let (status, again) = join(stack.url(), Some(&alice), "solo", json!({})).await;
    assert_eq!(status, 201, "{again}");
    assert_ne!(again["sessionId"], sid.as_str());
    let response = Caller::new(stack.url(), Some(&bob))
        .post("/rooms/solo/join", None)
        .await;
    assert_problem(response, 409, "room_full").await;
}

/// Posts `body` to the service's receiver signed as Vonage signs session-monitoring callbacks
/// (our own signer: HS256 over the claims Vonage sends).
async fn post_signed(url: &str, body: &Value) -> u16 {
    let bytes = serde_json::to_vec(body).unwrap();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes);
    let hash: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let claims = json!({"iat": now_ms() / 1000, "jti": uuid::Uuid::new_v4().to_string(),
        "iss": "Vonage", "payload_hash": hash, "api_key": API_KEY, "application_id": ""});
    let jwt = encode(
        &Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SESSION_SECRET.as_bytes()),
    )
    .unwrap();
    client()
        .post(format!("{url}/vonage/callbacks"))
        .header("content-type", "application/json")
        .bearer_auth(jwt)
        .body(bytes)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_session_destroyed_ends_an_empty_room_but_not_one_people_are_in() {
    let stack = Stack::start(1, Auth::Jwt, "").await;
    let alice = bearer("alice", "video:create video:join");
    let (_, joined) = join(stack.url(), Some(&alice), "ending", json!({})).await;
    let sid = joined["sessionId"].as_str().unwrap().to_owned();
    let connection = stack.connect(&sid, &joined["token"]).await;
    wait_participants(stack.url(), Some(&alice), "ending", 1).await;
    let destroyed = |ts: u64| {
        json!({"sessionId": sid, "projectId": API_KEY, "event": "sessionDestroyed",
            "reason": "clientDisconnected", "timestamp": ts})
    };
    // A late delivery while alice is connected: the room stays.
    assert_eq!(post_signed(stack.url(), &destroyed(now_ms())).await, 204);
    let (status, _) = room(stack.url(), Some(&alice), "ending").await;
    assert_eq!(status, 200, "a room someone is in is not ended");
    stack.leave(&sid, &connection, false).await;
    wait_participants(stack.url(), Some(&alice), "ending", 0).await;
    assert_eq!(post_signed(stack.url(), &destroyed(now_ms())).await, 204);
    let (status, _) = room(stack.url(), Some(&alice), "ending").await;
    assert_eq!(status, 404, "the session's end retired the empty room");
    let (status, again) = join(stack.url(), Some(&alice), "ending", json!({})).await;
    assert_eq!(status, 201);
    assert_ne!(again["sessionId"], sid.as_str());
}
