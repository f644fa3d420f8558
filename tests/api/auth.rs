//! Who may call, over real HTTP: a test identity provider on loopback serves a JWKS; every
//! forged or invalid bearer token is refused with 401 and creates nothing upstream; scopes and
//! roles decide what each caller may do; the caller's identity is bound into connection data;
//! rate limits are per caller and never touch probes; CORS allows exactly the configured origins.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode, get_current_timestamp};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Kind, PUBLIC_KEY, TestApp, assert_problem, claims, spawn_emulator};

const ISSUER: &str = "https://idp.test";
const AUDIENCE: &str = "vonage-sessions";
/// Key A (kid `key-a`) is published from the start; key B (kid `key-b`) only when a test says.
const KEY_A: &str = include_str!("../fixtures/application_private_key.pem");
const KEY_B: &str = include_str!("../fixtures/idp_second_private_key.pem");
const HS256_SECRET: &str = "test-only-hs256-secret-0123456789abcdef";

/// A tiny identity provider: `GET /jwks.json` serves the published keys and counts fetches.
struct IdentityProvider {
    url: String,
    jwks: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
}

fn jwk(private_pem: &str, kid: &str) -> Value {
    let key = EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap();
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    serde_json::to_value(jwk).unwrap()
}

impl IdentityProvider {
    async fn start() -> Self {
        let jwks = Arc::new(Mutex::new(json!({ "keys": [jwk(KEY_A, "key-a")] })));
        let fetches = Arc::new(AtomicUsize::new(0));
        let router = axum::Router::new().route(
            "/jwks.json",
            get({
                let jwks = jwks.clone();
                let fetches = fetches.clone();
                move || async move {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    Json(jwks.lock().unwrap().clone())
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { url, jwks, fetches }
    }

    fn publish_both_keys(&self) {
        *self.jwks.lock().unwrap() = json!({ "keys": [jwk(KEY_A, "key-a"), jwk(KEY_B, "key-b")] });
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// The `[auth]` overrides of a service trusting this provider.
    fn config(&self, extra: &str) -> String {
        format!(
            "[auth]\nmode = \"jwt\"\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\n\
             jwks_url = \"{}/jwks.json\"\n{extra}",
            self.url
        )
    }
}

/// Good claims for `sub` with `scope` (space-separated), valid for 10 minutes.
fn claims_for(sub: &str, scope: &str) -> Value {
    let now = get_current_timestamp();
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + 600, "scope": scope})
}

fn rs256(private_pem: &str, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid.map(str::to_owned);
    encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// A good token from the provider (key A) for `sub` with `scope`.
fn token(sub: &str, scope: &str) -> String {
    rs256(KEY_A, Some("key-a"), &claims_for(sub, scope))
}

async fn spawn_jwt(idp: &IdentityProvider, extra: &str) -> TestApp {
    let upstream = spawn_emulator().await;
    TestApp::spawn_against(Kind::Legacy, &upstream, &idp.config(extra)).await
}

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    bearer: Option<&str>,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = app.client.request(method, format!("{}{path}", app.url));
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

async fn assert_unauthenticated(response: reqwest::Response, challenge: &str, what: &str) {
    let header = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(header.as_deref(), Some(challenge), "{what}");
    let body = assert_problem(response, 401, "unauthenticated").await;
    assert_eq!(
        body["detail"], "this call needs a valid bearer token",
        "{what}: the answer stays terse"
    );
}

#[tokio::test]
async fn every_forged_or_invalid_token_is_refused_with_401_and_creates_no_session() {
    // Arrange
    let idp = IdentityProvider::start().await;
    let app = spawn_jwt(&idp, "").await;
    let now = get_current_timestamp();
    let good = claims_for(
        "mallory",
        "video:create video:join video:moderate video:admin",
    );
    let with = |patch: Value| {
        let mut claims = good.clone();
        for (key, value) in patch.as_object().unwrap() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(key);
            } else {
                claims[key] = value.clone();
            }
        }
        claims
    };
    let b64 = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());
    let valid = rs256(KEY_A, Some("key-a"), &good);
    let valid_parts: Vec<&str> = valid.split('.').collect();
    let mut hs256_with_public_key = Header::new(Algorithm::HS256);
    hs256_with_public_key.kid = Some("key-a".into());
    let attacks: Vec<(&str, String)> = vec![
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT", "kid": "key-a"})),
                b64(&good)
            ),
        ),
        (
            "HS256 signed with the RSA public key (HS/RS confusion)",
            encode(
                &hs256_with_public_key,
                &good,
                &EncodingKey::from_secret(PUBLIC_KEY.as_bytes()),
            )
            .unwrap(),
        ),
        (
            "wrong issuer",
            rs256(
                KEY_A,
                Some("key-a"),
                &with(json!({"iss": "https://evil.test"})),
            ),
        ),
        (
            "wrong audience",
            rs256(KEY_A, Some("key-a"), &with(json!({"aud": "another-api"}))),
        ),
        (
            "expired beyond the leeway",
            rs256(KEY_A, Some("key-a"), &with(json!({"exp": now - 120}))),
        ),
        (
            "not yet valid",
            rs256(KEY_A, Some("key-a"), &with(json!({"nbf": now + 600}))),
        ),
        ("unknown kid", rs256(KEY_B, Some("key-z"), &good)),
        ("wrong key for the kid", rs256(KEY_B, Some("key-a"), &good)),
        (
            "tampered payload",
            format!(
                "{}.{}.{}",
                valid_parts[0],
                b64(&with(json!({"sub": "admin"}))),
                valid_parts[2]
            ),
        ),
        (
            "no exp",
            rs256(KEY_A, Some("key-a"), &with(json!({"exp": null}))),
        ),
        (
            "no sub",
            rs256(KEY_A, Some("key-a"), &with(json!({"sub": null}))),
        ),
        ("not a JWT", "not-a-jwt".to_owned()),
    ];

    // Act + Assert
    for (name, token) in &attacks {
        let response = call(
            &app,
            Method::POST,
            "/sessions",
            Some(token),
            Some(json!({})),
        )
        .await;
        assert_unauthenticated(response, "Bearer error=\"invalid_token\"", name).await;
        let response = call(
            &app,
            Method::POST,
            "/rooms/attacked/join",
            Some(token),
            None,
        )
        .await;
        assert_unauthenticated(response, "Bearer error=\"invalid_token\"", name).await;
    }
    let missing = call(&app, Method::POST, "/sessions", None, None).await;
    assert_unauthenticated(missing, "Bearer", "no token").await;
    let basic = app
        .client
        .post(format!("{}/sessions", app.url))
        .basic_auth("user", Some("pass"))
        .send()
        .await
        .unwrap();
    assert_unauthenticated(basic, "Bearer", "another scheme").await;
    assert!(
        app.upstream_sessions().await.is_empty(),
        "no refused call created a session"
    );

    let accepted = call(&app, Method::POST, "/sessions", Some(&valid), None).await;
    assert_eq!(accepted.status(), 201, "the untampered token works");
    assert_eq!(app.upstream_sessions().await.len(), 1);
}

#[tokio::test]
async fn an_unknown_kid_triggers_one_bounded_jwks_refresh() {
    // Arrange: keys are refetched at most every 1.5 s.
    let idp = IdentityProvider::start().await;
    let app = spawn_jwt(&idp, "jwks_refresh_min_interval_ms = 1500").await;
    let created = call(
        &app,
        Method::POST,
        "/sessions",
        Some(&token("u1", "video:create")),
        None,
    )
    .await;
    assert_eq!(created.status(), 201);
    let initial = idp.fetches();
    assert_eq!(initial, 1, "the keys were fetched once and cached");
    tokio::time::sleep(Duration::from_millis(1600)).await;

    // Act: many tokens with a kid the provider has not published, at once.
    let unknown = rs256(KEY_B, Some("key-b"), &claims_for("u2", "video:create"));
    let mut calls = Vec::new();
    for _ in 0..10 {
        let url = format!("{}/sessions", app.url);
        let http = app.client.clone();
        let unknown = unknown.clone();
        calls.push(tokio::spawn(async move {
            http.post(url)
                .bearer_auth(unknown)
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for call in calls {
        assert_eq!(call.await.unwrap(), 401);
    }

    // Assert: one refresh for all of them; none again within the interval, even once the
    // provider publishes the key; after it, the new key is picked up.
    assert_eq!(idp.fetches(), initial + 1, "one refresh for ten misses");
    idp.publish_both_keys();
    let too_soon = call(&app, Method::POST, "/sessions", Some(&unknown), None).await;
    assert_eq!(too_soon.status(), 401);
    assert_eq!(idp.fetches(), initial + 1, "refreshes are rate-bounded");
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let rotated = call(&app, Method::POST, "/sessions", Some(&unknown), None).await;
    assert_eq!(rotated.status(), 201, "the rotated key is used");
    assert_eq!(idp.fetches(), initial + 2);
}

#[tokio::test]
async fn scopes_and_roles_decide_what_each_caller_may_do() {
    // Arrange: an existing room and an existing session.
    let idp = IdentityProvider::start().await;
    let app = spawn_jwt(&idp, "").await;
    let setup = token("setup", "video:create video:join");
    let room = call(
        &app,
        Method::POST,
        "/rooms/existing/join",
        Some(&setup),
        None,
    )
    .await;
    assert_eq!(room.status(), 201);
    let session = call(&app, Method::POST, "/sessions", Some(&setup), None).await;
    let sid = session.json::<Value>().await.unwrap()["sessionId"]
        .as_str()
        .unwrap()
        .to_owned();
    let tokens = format!("/sessions/{sid}/tokens");
    let moderator = json!({"role": "moderator"});
    let scp_array = {
        let mut claims = claims_for("scp-caller", "");
        claims.as_object_mut().unwrap().remove("scope");
        claims["scp"] = json!(["video:create"]);
        rs256(KEY_A, Some("key-a"), &claims)
    };
    type Case<'a> = (
        &'a str,
        Method,
        &'a str,
        Option<Value>,
        u16,
        Option<&'a str>,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "video:join",
            Method::POST,
            "/sessions",
            None,
            403,
            Some("forbidden"),
        ),
        ("", Method::POST, "/sessions", None, 403, Some("forbidden")),
        ("video:create", Method::POST, "/sessions", None, 201, None),
        (
            "video:create",
            Method::POST,
            "/sessions",
            Some(json!({"token": moderator.clone()})),
            403,
            Some("role_not_allowed"),
        ),
        ("video:join", Method::POST, &tokens, None, 201, None),
        (
            "video:create",
            Method::POST,
            &tokens,
            None,
            403,
            Some("forbidden"),
        ),
        (
            "video:join",
            Method::POST,
            &tokens,
            Some(moderator.clone()),
            403,
            Some("role_not_allowed"),
        ),
        (
            "video:join video:moderate",
            Method::POST,
            &tokens,
            Some(moderator.clone()),
            201,
            None,
        ),
        (
            "video:join",
            Method::POST,
            "/rooms/existing/join",
            None,
            200,
            None,
        ),
        (
            "video:create",
            Method::POST,
            "/rooms/existing/join",
            None,
            403,
            Some("forbidden"),
        ),
        // Joining a room that does not exist yet would create it: that needs video:create.
        (
            "video:join",
            Method::POST,
            "/rooms/fresh/join",
            None,
            403,
            Some("forbidden"),
        ),
        // The refused caller's claim was released: a creator gets the room at once.
        (
            "video:create video:join",
            Method::POST,
            "/rooms/fresh/join",
            None,
            201,
            None,
        ),
        (
            "video:join",
            Method::GET,
            "/rooms/existing",
            None,
            200,
            None,
        ),
        (
            "video:create",
            Method::GET,
            "/rooms/existing",
            None,
            403,
            Some("forbidden"),
        ),
        (
            "video:join video:create video:moderate",
            Method::DELETE,
            "/rooms/existing",
            None,
            403,
            Some("forbidden"),
        ),
        (
            "video:admin",
            Method::DELETE,
            "/rooms/existing",
            None,
            204,
            None,
        ),
    ];

    // Act + Assert
    for (n, (scope, method, path, body, status, code)) in cases.into_iter().enumerate() {
        let what = format!("{scope:?} {method} {path}");
        let bearer = token(&format!("caller-{n}"), scope);
        let response = call(&app, method, path, Some(&bearer), body).await;
        match code {
            Some(code) => {
                let problem = assert_problem(response, status, code).await;
                if code == "forbidden" {
                    assert!(
                        problem["detail"].as_str().unwrap().contains("video:"),
                        "{what}: names the scope: {problem}"
                    );
                }
            }
            None => assert_eq!(response.status().as_u16(), status, "{what}"),
        }
    }
    let from_scp = call(&app, Method::POST, "/sessions", Some(&scp_array), None).await;
    assert_eq!(
        from_scp.status(),
        201,
        "scopes are read from `scp` arrays too"
    );
    // room + session of the setup, two POST /sessions, the fresh room: nothing refused
    // reached Vonage.
    assert_eq!(app.upstream_sessions().await.len(), 5);
}

#[tokio::test]
async fn anonymous_callers_get_the_configured_grant() {
    let default = TestApp::spawn(Kind::Legacy).await;
    let created = call(
        &default,
        Method::POST,
        "/sessions",
        Some("ignored.in.anonymous"),
        None,
    )
    .await;
    assert_eq!(
        created.status(),
        201,
        "anonymous mode ignores bearer tokens"
    );
    let body: Value = created.json().await.unwrap();
    assert_eq!(body["role"], "publisher");
    assert_eq!(
        claims(body["token"].as_str().unwrap()).get("connection_data"),
        None,
        "no identity is bound for anonymous callers"
    );
    let moderator = call(
        &default,
        Method::POST,
        "/sessions",
        None,
        Some(json!({"token": {"role": "moderator"}})),
    )
    .await;
    assert_problem(moderator, 403, "role_not_allowed").await;
    let room = call(&default, Method::POST, "/rooms/anon/join", None, None).await;
    assert_eq!(room.status(), 201);
    let delete = call(&default, Method::DELETE, "/rooms/anon", None, None).await;
    assert_problem(delete, 403, "forbidden").await;

    let upstream = spawn_emulator().await;
    let join_only = TestApp::spawn_against(
        Kind::Legacy,
        &upstream,
        "[auth]\nanonymous_scopes = [\"video:join\"]",
    )
    .await;
    let refused = call(&join_only, Method::POST, "/sessions", None, None).await;
    assert_problem(refused, 403, "forbidden").await;
    let new_room = call(&join_only, Method::POST, "/rooms/anon/join", None, None).await;
    assert_problem(new_room, 403, "forbidden").await;
    assert!(join_only.upstream_sessions().await.is_empty());
}

#[tokio::test]
async fn a_jwt_callers_identity_is_bound_into_connection_data() {
    let idp = IdentityProvider::start().await;
    let app = spawn_jwt(&idp, "").await;
    let mut with_name = claims_for("user-42", "video:create video:join");
    with_name["name"] = json!("Ada Lovelace");
    let ada = rs256(KEY_A, Some("key-a"), &with_name);

    // The client's data is nested: it cannot claim to be someone else.
    let created = call(
        &app,
        Method::POST,
        "/sessions",
        Some(&ada),
        Some(json!({"token": {"data": "{\"sub\":\"mallory\"}"}})),
    )
    .await;
    assert_eq!(created.status(), 201);
    let body: Value = created.json().await.unwrap();
    let connection_data = claims(body["token"].as_str().unwrap())["connection_data"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(connection_data.starts_with("{\"sub\":\"user-42\""));
    assert_eq!(
        serde_json::from_str::<Value>(&connection_data).unwrap(),
        json!({"sub": "user-42", "name": "Ada Lovelace", "data": "{\"sub\":\"mallory\"}"})
    );

    // A caller without a name claim, no client data.
    let sid = body["sessionId"].as_str().unwrap();
    let nameless = token("user-7", "video:join");
    let minted = call(
        &app,
        Method::POST,
        &format!("/sessions/{sid}/tokens"),
        Some(&nameless),
        None,
    )
    .await;
    let minted: Value = minted.json().await.unwrap();
    let data = claims(minted["token"].as_str().unwrap())["connection_data"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        serde_json::from_str::<Value>(&data).unwrap(),
        json!({"sub": "user-7", "name": null, "data": null})
    );

    // The bound data must still fit Vonage's 1000 characters.
    let long = call(
        &app,
        Method::POST,
        &format!("/sessions/{sid}/tokens"),
        Some(&nameless),
        Some(json!({"data": "x".repeat(980)})),
    )
    .await;
    let problem = assert_problem(long, 400, "invalid_request").await;
    assert!(
        problem["detail"].as_str().unwrap().starts_with("data:"),
        "{problem}"
    );
}

#[tokio::test]
async fn rate_limits_are_per_caller_and_never_touch_probes() {
    // Arrange: 2 creations and 3 joins at once per caller, then one a minute.
    let idp = IdentityProvider::start().await;
    let app = spawn_jwt(
        &idp,
        "[rate_limits]\nenabled = true\ncreate_per_minute = 1\ncreate_burst = 2\njoin_per_minute = 1\njoin_burst = 3",
    )
    .await;
    let alice = token("alice", "video:create video:join");
    let bob = token("bob", "video:create video:join");

    // Act + Assert: alice spends her create budget; bob is unaffected.
    let mut sid = String::new();
    for _ in 0..2 {
        let response = call(&app, Method::POST, "/sessions", Some(&alice), None).await;
        assert_eq!(response.status(), 201);
        sid = response.json::<Value>().await.unwrap()["sessionId"]
            .as_str()
            .unwrap()
            .to_owned();
    }
    let limited = call(&app, Method::POST, "/sessions", Some(&alice), None).await;
    let headers = limited.headers().clone();
    assert_problem(limited, 429, "rate_limited").await;
    let header = |name: &str| {
        headers
            .get(name)
            .unwrap_or_else(|| panic!("{name} is set"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    let retry_after: u64 = header("retry-after").parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(header("ratelimit-limit"), "1");
    assert_eq!(header("ratelimit-remaining"), "0");
    assert_eq!(header("ratelimit-reset"), retry_after.to_string());
    assert!(header("ratelimit-policy").contains("burst=2"));
    let other = call(&app, Method::POST, "/sessions", Some(&bob), None).await;
    assert_eq!(other.status(), 201, "another caller has its own budget");

    // The join budget is separate, and limited the same way.
    let tokens = format!("/sessions/{sid}/tokens");
    for _ in 0..3 {
        let response = call(&app, Method::POST, &tokens, Some(&alice), None).await;
        assert_eq!(response.status(), 201);
    }
    let limited = call(&app, Method::POST, &tokens, Some(&alice), None).await;
    assert_problem(limited, 429, "rate_limited").await;

    for path in ["/livez", "/healthz", "/readyz", "/openapi.json"] {
        for _ in 0..30 {
            let response = app.get(path).await;
            assert_eq!(response.status(), 200, "{path} is never limited");
        }
    }
    assert_eq!(
        app.upstream_sessions().await.len(),
        3,
        "the limited call created nothing"
    );
}

#[tokio::test]
async fn anonymous_callers_are_limited_by_client_ip_and_x_forwarded_for_only_from_trusted_proxies()
{
    let upstream = spawn_emulator().await;
    let limits = "[rate_limits]\nenabled = true\ncreate_per_minute = 1\ncreate_burst = 1\n";
    let behind_proxy = TestApp::spawn_against(
        Kind::Legacy,
        &upstream,
        &format!("{limits}[auth]\ntrusted_proxies = [\"127.0.0.0/8\"]"),
    )
    .await;
    let direct = TestApp::spawn_against(Kind::Legacy, &upstream, limits).await;
    let post = |app: &TestApp, client_ip: &str| {
        app.client
            .post(format!("{}/sessions", app.url))
            .header("x-forwarded-for", format!("198.51.100.99, {client_ip}"))
            .send()
    };
    // Behind a trusted proxy, each forwarded client has its own budget.
    assert_eq!(
        post(&behind_proxy, "203.0.113.1").await.unwrap().status(),
        201
    );
    assert_eq!(
        post(&behind_proxy, "203.0.113.1").await.unwrap().status(),
        429
    );
    assert_eq!(
        post(&behind_proxy, "203.0.113.2").await.unwrap().status(),
        201
    );
    // Without one, X-Forwarded-For is ignored: the TCP peer is the caller.
    assert_eq!(post(&direct, "203.0.113.1").await.unwrap().status(), 201);
    assert_eq!(post(&direct, "203.0.113.2").await.unwrap().status(), 429);
}

fn cors_headers(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .keys()
        .map(|name| name.as_str().to_owned())
        .filter(|name| name.starts_with("access-control-"))
        .collect()
}

#[tokio::test]
async fn cors_allows_exactly_the_configured_origins() {
    let upstream = spawn_emulator().await;
    let allowed = "https://app.example.com";
    let app = TestApp::spawn_against(
        Kind::Legacy,
        &upstream,
        &format!("[cors]\nallowed_origins = [\"{allowed}\"]"),
    )
    .await;
    let preflight = |origin: &str, path: &str| {
        app.client
            .request(Method::OPTIONS, format!("{}{path}", app.url))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };

    // A preflight from the allowed origin is answered.
    let answered = preflight(allowed, "/sessions").await.unwrap();
    assert_eq!(answered.status(), 200);
    let header = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_ascii_lowercase())
            .unwrap_or_default()
    };
    assert_eq!(header(&answered, "access-control-allow-origin"), allowed);
    assert!(header(&answered, "access-control-allow-methods").contains("post"));
    assert!(header(&answered, "access-control-allow-headers").contains("authorization"));
    assert!(header(&answered, "access-control-allow-headers").contains("content-type"));
    assert_eq!(header(&answered, "access-control-max-age"), "600");
    assert!(header(&answered, "vary").contains("origin"));

    // Any other origin gets no CORS headers at all, preflight or not.
    let refused = preflight("https://evil.example.com", "/sessions")
        .await
        .unwrap();
    assert!(cors_headers(&refused).is_empty(), "{:?}", refused.headers());
    assert_eq!(
        refused.status(),
        204,
        "answered as a preflight (without CORS headers), not 405"
    );
    let cross = app
        .client
        .post(format!("{}/sessions", app.url))
        .header("origin", "https://evil.example.com")
        .send()
        .await
        .unwrap();
    assert!(cors_headers(&cross).is_empty());

    // The allowed origin's real request carries the headers the page needs.
    let ok = app
        .client
        .post(format!("{}/sessions", app.url))
        .header("origin", allowed)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 201);
    assert_eq!(header(&ok, "access-control-allow-origin"), allowed);
    assert!(header(&ok, "access-control-expose-headers").contains("x-request-id"));
    assert!(header(&ok, "access-control-allow-credentials").is_empty());

    // Requests without Origin (servers, probes) are never refused; probes are outside CORS.
    let server = app
        .client
        .post(format!("{}/sessions", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(server.status(), 201);
    assert!(cors_headers(&server).is_empty());
    let probe = app
        .client
        .get(format!("{}/readyz", app.url))
        .header("origin", allowed)
        .send()
        .await
        .unwrap();
    assert_eq!(probe.status(), 200);
    assert!(cors_headers(&probe).is_empty());

    // "*" allows every origin, and never with credentials.
    let any =
        TestApp::spawn_against(Kind::Legacy, &upstream, "[cors]\nallowed_origins = [\"*\"]").await;
    let response = any
        .client
        .post(format!("{}/sessions", any.url))
        .header("origin", "https://anyone.example")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&response, "access-control-allow-origin"), "*");
    assert!(header(&response, "access-control-allow-credentials").is_empty());

    // Credentials only for listed origins, when configured.
    let credentials = TestApp::spawn_against(
        Kind::Legacy,
        &upstream,
        &format!("[cors]\nallowed_origins = [\"{allowed}\"]\nallow_credentials = true"),
    )
    .await;
    let response = credentials
        .client
        .post(format!("{}/sessions", credentials.url))
        .header("origin", allowed)
        .send()
        .await
        .unwrap();
    assert_eq!(header(&response, "access-control-allow-origin"), allowed);
    assert_eq!(
        header(&response, "access-control-allow-credentials"),
        "true"
    );
}

#[tokio::test]
async fn a_pem_public_key_file_or_an_hs256_secret_verifies_tokens_pinned_to_their_key_type() {
    let upstream = spawn_emulator().await;
    let static_auth =
        format!("[auth]\nmode = \"jwt\"\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\n");
    let pem = TestApp::spawn_against(
        Kind::Legacy,
        &upstream,
        &format!("{static_auth}public_key_file = \"tests/fixtures/idp_second_public_key.pem\""),
    )
    .await;
    let good = claims_for("u1", "video:create");
    let second_public = include_str!("../fixtures/idp_second_public_key.pem");
    let hs256 = |secret: &[u8]| {
        encode(
            &Header::new(Algorithm::HS256),
            &good,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    };
    let created = call(
        &pem,
        Method::POST,
        "/sessions",
        Some(&rs256(KEY_B, None, &good)),
        None,
    )
    .await;
    assert_eq!(created.status(), 201);
    for (name, token) in [
        ("another key", rs256(KEY_A, None, &good)),
        ("HS256 with the public key", hs256(second_public.as_bytes())),
    ] {
        let response = call(&pem, Method::POST, "/sessions", Some(&token), None).await;
        assert_unauthenticated(response, "Bearer error=\"invalid_token\"", name).await;
    }

    let hmac = TestApp::spawn_with_env(
        Kind::Legacy,
        &upstream,
        &static_auth,
        &[("VONAGE_SESSIONS_AUTH_HS256_SECRET", HS256_SECRET)],
    )
    .await;
    let created = call(
        &hmac,
        Method::POST,
        "/sessions",
        Some(&hs256(HS256_SECRET.as_bytes())),
        None,
    )
    .await;
    assert_eq!(created.status(), 201);
    for (name, token) in [
        (
            "wrong secret",
            hs256(b"another-secret-another-secret-another"),
        ),
        ("RS256 against an HS256 secret", rs256(KEY_A, None, &good)),
    ] {
        let response = call(&hmac, Method::POST, "/sessions", Some(&token), None).await;
        assert_unauthenticated(response, "Bearer error=\"invalid_token\"", name).await;
    }
}
