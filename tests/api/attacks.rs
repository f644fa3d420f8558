//! The attacks of a hardening run against the service, each kept as a test so it stays fixed
//! (see docs/hardening.md): slow and silent clients, one IP flooding connections and HTTP/2
//! streams, a low descriptor limit, recordings read anonymously, forged log lines, `crit`
//! headers and `iss` arrays, unreadable path parameters, wrong-typed fields.
//!
//! Every attack runs on loopback, is bounded in count and time, and stops by itself. Attackers
//! connect from 127.0.0.2 so the victim (127.0.0.1) is "another client" for the per-IP caps.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::http::Request;
use base64::Engine as _;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};

use crate::helpers::{Kind, TestApp, assert_problem, client, metrics_text, spawn_emulator};
use crate::process::{LEGACY, Running};

const ATTACKER: [u8; 4] = [127, 0, 0, 2];
const HS256_SECRET: &str = "attack-test-hs256-secret-0123456789abcdef";

fn addr(app: &TestApp) -> SocketAddr {
    app.url.trim_start_matches("http://").parse().unwrap()
}

async fn connect_from(source: [u8; 4], server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    socket.connect(server).await
}

/// Everything the peer sends until it closes, if it closes within `within`.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buffer = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await
    .ok()
    .map(|()| got)
}

const HEADERS_ONLY: &[u8] = b"POST /sessions HTTP/1.1\r\nhost: attack\r\ncontent-type: application/json\r\ncontent-length: 50\r\n\r\n{";

async fn metric(app: &TestApp, series: &str) -> f64 {
    let text = metrics_text(&app.url).await;
    text.lines()
        .find_map(|line| line.strip_prefix(series))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_bodies_get_408_without_holding_a_slot_and_oversized_ones_413_at_once() {
    let upstream = spawn_emulator().await;
    let app = TestApp::spawn_against(
        Kind::Legacy,
        &upstream,
        "[server]\nbody_read_timeout_ms = 400\nmax_in_flight = 8\n",
    )
    .await;
    let server = addr(&app);
    let mut slow = Vec::new();
    for _ in 0..20 {
        let mut stream = connect_from(ATTACKER, server).await.unwrap();
        stream.write_all(HEADERS_ONLY).await.unwrap();
        slow.push(stream);
    }
    // 20 bodies still arriving, 8 slots: the slots are free for complete requests.
    let started = Instant::now();
    let (status, body) = app.create_session(&json!({})).await;
    assert_eq!(status, 201, "{body}");
    assert!(started.elapsed() < Duration::from_secs(1));
    for mut stream in slow {
        let answer = read_until_closed(&mut stream, Duration::from_secs(3))
            .await
            .expect("a slow body is answered and its connection closed");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("application/problem+json"), "{answer}");
        assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
        assert!(answer.contains(r#""requestId":""#), "{answer}");
    }

    // A declared body over the limit is refused before any of it arrives.
    let mut stream = connect_from(ATTACKER, server).await.unwrap();
    let started = Instant::now();
    stream
        .write_all(b"POST /sessions HTTP/1.1\r\nhost: a\r\ncontent-type: application/json\r\ncontent-length: 1000000\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut stream, Duration::from_secs(3))
        .await
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains(r#""code":"payload_too_large""#), "{answer}");
    assert!(
        started.elapsed() < Duration::from_millis(350),
        "413 at once, not after the body timeout: {:?}",
        started.elapsed()
    );
}

/// HTTP/2 connections from `source`, each opening up to `streams` POSTs that never send their
/// body. Returns the handles that keep them open and the most concurrent streams the server's
/// SETTINGS allowed a connection.
async fn h2_flood(
    source: [u8; 4],
    server: SocketAddr,
    connections: usize,
    streams: usize,
) -> (Vec<Box<dyn std::any::Any + Send>>, usize) {
    let mut held: Vec<Box<dyn std::any::Any + Send>> = Vec::new();
    let mut most_open = 0;
    for _ in 0..connections {
        let Ok(tcp) = connect_from(source, server).await else {
            continue;
        };
        let Ok(Ok((mut send, connection))) =
            tokio::time::timeout(Duration::from_secs(2), h2::client::handshake(tcp)).await
        else {
            continue;
        };
        held.push(Box::new(tokio::spawn(connection)));
        // Let the server's SETTINGS arrive before opening streams.
        let waiting = Instant::now();
        while send.current_max_send_streams() == usize::MAX
            && waiting.elapsed() < Duration::from_secs(2)
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        held.push(Box::new(send.clone()));
        let advertised = send.current_max_send_streams();
        let mut open = 0;
        for _ in 0..streams {
            // The server's SETTINGS bound the streams: past them, `ready` waits (on this
            // handle: a clone would not know of its pending stream).
            match tokio::time::timeout(Duration::from_millis(20), send.ready()).await {
                Ok(Ok(mut ready)) => {
                    let request = Request::post(format!("http://{server}/sessions"))
                        .header("content-type", "application/json")
                        .header("content-length", "50")
                        .body(())
                        .unwrap();
                    match ready.send_request(request, false) {
                        Ok(pair) => {
                            held.push(Box::new(pair));
                            open += 1;
                        }
                        Err(_) => break,
                    }
                    send = ready;
                }
                _ => break,
            }
        }
        let _ = open;
        if advertised != usize::MAX {
            // (A connection the busy server has not sent its SETTINGS yet says nothing.)
            most_open = most_open.max(advertised);
        }
    }
    (held, most_open)
}

#[tokio::test(flavor = "multi_thread")]
async fn one_ip_with_5000_header_only_connections_and_50_http2_connections_cannot_take_the_api_down()
 {
    let upstream = spawn_emulator().await;
    let app = TestApp::spawn_against(
        Kind::Legacy,
        &upstream,
        // Timeouts longer than the test: what the caps admit stays held, what they refuse is
        // counted exactly.
        "[server]\nhttp2 = true\nbody_read_timeout_ms = 30000\nheader_read_timeout_ms = 30000\n\
         max_connections_per_ip = 256\nmax_in_flight_per_ip = 256\n",
    )
    .await;
    let server = addr(&app);
    let shed_connections = r#"load_shed_total{limit="connections_per_ip"} "#;
    let shed_requests = r#"load_shed_total{limit="in_flight_per_ip"} "#;
    let (connections_before, requests_before) = (
        metric(&app, shed_connections).await,
        metric(&app, shed_requests).await,
    );

    // From one IP, at once: 50 HTTP/2 connections with up to 200 idle streams each, and 5,000
    // HTTP/1.1 connections that send headers and no body.
    let attack = tokio::spawn(async move {
        let h2 = tokio::spawn(h2_flood(ATTACKER, server, 50, 200));
        let mut h1_held = Vec::new();
        for _ in 0..10 {
            let wave = (0..500).map(|_| async move {
                let mut stream = connect_from(ATTACKER, server).await.ok()?;
                let _ = stream.write_all(HEADERS_ONLY).await;
                Some(stream)
            });
            h1_held.extend(futures_join(wave).await.into_iter().flatten());
        }
        (h2.await.unwrap(), h1_held)
    });

    // Meanwhile another client keeps creating sessions, for as long as the attack goes on.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut latencies = Vec::new();
    // A new connection per call: a pooled one could meet hyper's idle close in a stall of this
    // (shared) test runtime, which would say nothing about the server.
    let victim = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    while latencies.len() < 20 || (!attack.is_finished() && latencies.len() < 300) {
        let started = Instant::now();
        let response = victim
            .post(format!("{}/sessions", app.url))
            .json(&json!({}))
            .send()
            .await
            .expect("the victim is answered");
        let status = response.status();
        assert_eq!(status, 201, "{}", response.text().await.unwrap_or_default());
        latencies.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ((h2_held, most_streams), h1_held) = attack.await.unwrap();
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    assert!(
        median < Duration::from_secs(1),
        "median {median:?} of {} creates",
        latencies.len()
    );
    assert_eq!(
        most_streams, 100,
        "streams per connection are bounded by server.http2_max_concurrent_streams"
    );
    // Connections past the cap are closed at accept. (When the whole suite runs at once, the
    // test process can run out of descriptors itself, so count against what connected, and
    // allow for connections still in the accept queue.)
    // The accept loop may still be working through its queue on a loaded machine: give it up
    // to 5 s to catch up (the attackers' sockets are still held open).
    let connected = h1_held.len() as f64;
    let mut shed = metric(&app, shed_connections).await - connections_before;
    for _ in 0..50 {
        if shed >= (connected - 256.0) / 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        shed = metric(&app, shed_connections).await - connections_before;
    }
    assert!(
        connected >= 1000.0 && shed >= (connected - 256.0) / 2.0,
        "connections past server.max_connections_per_ip are closed at accept: {shed} of {connected}"
    );
    assert!(
        metric(&app, shed_requests).await > requests_before,
        "streams past server.max_in_flight_per_ip are shed"
    );
    drop(h1_held);
    drop(h2_held);
}

/// `futures::future::join_all` without the dependency: spawn each and await them in order.
async fn futures_join<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn cleartext_http2_is_off_unless_configured() {
    let upstream = spawn_emulator().await;
    for (overrides, served) in [("", false), ("[server]\nhttp2 = true\n", true)] {
        let app = TestApp::spawn_against(Kind::Legacy, &upstream, overrides).await;
        let server = addr(&app);
        let attempt = async {
            let tcp = TcpStream::connect(server).await.ok()?;
            let (send, connection) = h2::client::handshake(tcp).await.ok()?;
            tokio::spawn(connection);
            let mut send = send.ready().await.ok()?;
            let request = Request::get(format!("http://{server}/livez"))
                .body(())
                .unwrap();
            let (response, _) = send.send_request(request, true).ok()?;
            Some(response.await.ok()?.status().as_u16())
        };
        let status = tokio::time::timeout(Duration::from_secs(5), attempt)
            .await
            .expect("answered or refused, never held");
        assert_eq!(status, served.then_some(200), "{overrides:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_partial_and_idle_connections_are_closed_from_accept() {
    let upstream = spawn_emulator().await;
    let app = TestApp::spawn_against(
        Kind::Legacy,
        &upstream,
        "[server]\nhttp2 = true\nheader_read_timeout_ms = 500\nhttp2_idle_timeout_ms = 700\n",
    )
    .await;
    let server = addr(&app);
    let within = Duration::from_secs(3);

    let mut silent = connect_from(ATTACKER, server).await.unwrap();
    let started = Instant::now();
    assert!(
        read_until_closed(&mut silent, within).await.is_some(),
        "silent"
    );
    assert!(started.elapsed() >= Duration::from_millis(400));

    let mut partial = connect_from(ATTACKER, server).await.unwrap();
    partial.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    assert!(
        read_until_closed(&mut partial, within).await.is_some(),
        "a partial HTTP/2 preface"
    );

    let mut slowloris = connect_from(ATTACKER, server).await.unwrap();
    let drip = async {
        slowloris.write_all(b"GET /livez HTTP/1.1\r\n").await?;
        for _ in 0..25 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            slowloris.write_all(b"x").await?;
        }
        Ok::<_, std::io::Error>(())
    };
    assert!(
        tokio::time::timeout(within, drip).await.unwrap().is_err(),
        "headers dripped byte by byte are cut off"
    );

    // The HTTP/2 preface and SETTINGS, then nothing: closed like any silent connection.
    let tcp = connect_from(ATTACKER, server).await.unwrap();
    let (send, connection) = h2::client::handshake(tcp).await.unwrap();
    assert!(
        tokio::time::timeout(within, connection).await.is_ok(),
        "an HTTP/2 connection without a stream"
    );
    drop(send);

    // One request answered, then idle: closed after server.http2_idle_timeout_ms.
    let tcp = connect_from(ATTACKER, server).await.unwrap();
    let (send, connection) = h2::client::handshake(tcp).await.unwrap();
    let closed = tokio::spawn(async move {
        let started = Instant::now();
        let _ = connection.await;
        started.elapsed()
    });
    let mut send = send.ready().await.unwrap();
    let request = Request::get(format!("http://{server}/livez"))
        .body(())
        .unwrap();
    let (response, _) = send.send_request(request, true).unwrap();
    assert_eq!(response.await.unwrap().status(), 200);
    let lived = tokio::time::timeout(within, closed)
        .await
        .expect("an idle HTTP/2 connection is closed")
        .unwrap();
    assert!(lived >= Duration::from_millis(600), "{lived:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn under_a_low_descriptor_limit_silent_connections_are_closed_and_livez_answers_again() {
    assert!(
        std::process::Command::new("prlimit")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "prlimit is missing: install util-linux (apt-get install util-linux)"
    );
    let upstream = spawn_emulator().await;
    let mut env = LEGACY.to_vec();
    env.extend([
        ("VIDEO_API_URL", upstream.as_str()),
        ("VONAGE_SESSIONS__AUTH__MODE", "anonymous"),
        ("VONAGE_SESSIONS__SERVER__HEADER_READ_TIMEOUT_MS", "1000"),
    ]);
    let service = Running::start_under(
        &["prlimit", "--nofile=64:64"],
        &["serve", "--listen", "127.0.0.1:0"],
        &env,
    );
    let server: SocketAddr = service.url.trim_start_matches("http://").parse().unwrap();
    // More silent connections than the process has descriptors.
    let mut silent = Vec::new();
    for _ in 0..100 {
        silent.push(connect_from(ATTACKER, server).await.unwrap());
    }
    let started = Instant::now();
    let livez = client()
        .get(format!("{}/livez", service.url))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("/livez answers again once silent connections are closed");
    assert_eq!(livez.status(), 200);
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(6), "{waited:?}");
    for stream in &mut silent {
        assert!(
            read_until_closed(stream, Duration::from_secs(5))
                .await
                .is_some(),
            "every silent connection is closed"
        );
    }
    let (_, output) = service.terminate();
    let warnings = output.matches("accept failed").count();
    assert!(
        (1..=5).contains(&warnings),
        "one warning per burst of accept failures, not one per retry: {warnings}\n{output}"
    );
}

#[tokio::test]
async fn recordings_are_private_by_default_and_the_room_to_archives_chain_is_refused() {
    let app = TestApp::spawn(Kind::Legacy).await;
    let joined = app.post_json("/rooms/attack-room/join", &json!({})).await;
    assert_eq!(joined.status(), 201);
    // The attack chain: room -> sessionId -> its archives -> download URLs.
    let room: Value = app.get("/rooms/attack-room").await.json().await.unwrap();
    let sid = room["sessionId"].as_str().unwrap();
    let list = app.get(&format!("/sessions/{sid}/archives")).await;
    let problem = assert_problem(list, 403, "forbidden").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("video:archives:read"),
        "{problem}"
    );
    let one = app
        .client
        .get(format!(
            "{}/archives/{}",
            app.url,
            uuid::Uuid::new_v4().hyphenated()
        ))
        .send()
        .await
        .unwrap();
    assert_problem(one, 403, "forbidden").await;

    // With JWT auth, listing needs the read scope and that the caller may join rooms.
    let jwt = TestApp::spawn_with_env(
        Kind::Legacy,
        &app.upstream,
        "[auth]\nmode = \"jwt\"\nissuer = \"https://idp.test\"\naudience = \"api\"\n",
        &[("VONAGE_SESSIONS_AUTH_HS256_SECRET", HS256_SECRET)],
    )
    .await;
    for (scope, status) in [
        ("video:join", 403),
        ("video:archives:read", 403),
        ("video:archives:read video:join", 200),
        ("video:moderate video:join", 200),
    ] {
        let response = jwt
            .client
            .get(format!("{}/sessions/{sid}/archives", jwt.url))
            .bearer_auth(hs256_token(&json!({"scope": scope}), None))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{scope}");
    }
}

/// An HS256 token of `https://idp.test` for `api` with `extra` claims; `header` replaces the
/// encoded header when given (forged headers are signed all the same).
fn hs256_token(extra: &Value, header: Option<&Value>) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    let mut claims =
        json!({"iss": "https://idp.test", "aud": "api", "sub": "u1", "exp": now + 600});
    for (key, value) in extra.as_object().unwrap() {
        claims[key] = value.clone();
    }
    let Some(header) = header else {
        return jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(HS256_SECRET.as_bytes()),
        )
        .unwrap();
    };
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let signing_input = format!(
        "{}.{}",
        b64.encode(header.to_string()),
        b64.encode(claims.to_string())
    );
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, HS256_SECRET.as_bytes());
    let tag = aws_lc_rs::hmac::sign(&key, signing_input.as_bytes());
    format!("{signing_input}.{}", b64.encode(tag.as_ref()))
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_jwt_headers_cannot_forge_log_lines_and_crit_or_iss_arrays_are_refused() {
    let upstream = spawn_emulator().await;
    let mut env = LEGACY.to_vec();
    env.extend([
        ("VIDEO_API_URL", upstream.as_str()),
        ("VONAGE_SESSIONS__AUTH__MODE", "jwt"),
        ("VONAGE_SESSIONS__AUTH__ISSUER", "https://idp.test"),
        ("VONAGE_SESSIONS__AUTH__AUDIENCE", "api"),
        ("VONAGE_SESSIONS_AUTH_HS256_SECRET", HS256_SECRET),
        ("VONAGE_SESSIONS__LOG__FORMAT", "pretty"),
    ]);
    let service = Running::start(&["serve", "--listen", "127.0.0.1:0"], &env);
    let http = client();
    let forged = "HS256\n1999-01-01T00:00:00.000000Z  INFO forged: http.status=200 \u{1b}[2J";
    let cases = [
        (
            "a forged alg",
            hs256_token(&json!({}), Some(&json!({"alg": forged, "typ": "JWT"}))),
        ),
        (
            "an unknown crit extension",
            hs256_token(
                &json!({}),
                Some(&json!({"alg": "HS256", "crit": ["urn:x"], "urn:x": 1})),
            ),
        ),
        (
            "b64 false",
            hs256_token(
                &json!({}),
                Some(&json!({"alg": "HS256", "crit": ["b64"], "b64": false})),
            ),
        ),
        (
            "iss in an array",
            hs256_token(&json!({"iss": ["https://idp.test"]}), None),
        ),
    ];
    for (what, token) in cases {
        let response = http
            .post(format!("{}/sessions", service.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{what}");
    }
    let good = http
        .post(format!("{}/sessions", service.url))
        .bearer_auth(hs256_token(&json!({"scope": "video:create"}), None))
        .send()
        .await
        .unwrap();
    assert_eq!(
        good.status(),
        201,
        "the same signing works for a plain header"
    );
    let (_, output) = service.terminate();
    assert!(output.contains("caller refused"), "{output}");
    assert!(
        !output
            .lines()
            .any(|line| line.starts_with("1999-01-01T00:00:00")),
        "no forged line: {output}"
    );
    assert!(!output.contains('\u{1b}'), "no raw escape code: {output:?}");
}

#[tokio::test]
async fn unreadable_path_parameters_and_wrong_typed_fields_are_invalid_request_problems() {
    let app = TestApp::spawn(Kind::Legacy).await;
    let http = &app.client;
    let (_, created) = app.create_session(&json!({})).await;
    let sid = created["sessionId"].as_str().unwrap();
    for (method, path, field) in [
        ("POST", "/rooms/%FF/join", "room"),
        ("GET", "/rooms/%FF%FE", "room"),
        ("DELETE", "/rooms/%C3", "room"),
        ("POST", "/sessions/%FF/tokens", "sessionId"),
        ("GET", "/sessions/%FF/archives", "sessionId"),
        ("GET", "/archives/%FF", "archiveId"),
        ("POST", "/archives/%FF/stop", "archiveId"),
    ] {
        let response = http
            .request(method.parse().unwrap(), format!("{}{path}", app.url))
            .send()
            .await
            .unwrap();
        let problem = assert_problem(response, 400, "invalid_request").await;
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{field}: ")),
            "{method} {path}: {problem}"
        );
    }
    for (path, body, field) in [
        ("/sessions".to_owned(), json!({"mediaMode": 5}), "mediaMode"),
        (
            "/sessions".to_owned(),
            json!({"token": {"role": 1}}),
            "token.role",
        ),
        (
            format!("/sessions/{sid}/tokens"),
            json!({"role": 1}),
            "role",
        ),
        (
            format!("/sessions/{sid}/tokens"),
            json!({"role": [true]}),
            "role",
        ),
    ] {
        let problem =
            assert_problem(app.post_json(&path, &body).await, 400, "invalid_request").await;
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{field}: ")),
            "{path} {body}: {problem}"
        );
    }
}
