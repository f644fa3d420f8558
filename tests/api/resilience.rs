//! Resilience under the emulator's faults: retries absorb flaky Vonage answers, the circuit
//! breaker fails fast while Vonage is down and recovers by itself, concurrency limits shed
//! load, slow clients cannot starve probes, and every metric is exported.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;

use crate::helpers::{Kind, TestApp, assert_problem, client, spawn_emulator};

/// Fires `count` concurrent `POST /sessions`; returns the statuses.
async fn concurrent_creates(app: &TestApp, count: usize) -> Vec<u16> {
    let tasks: Vec<_> = (0..count)
        .map(|_| {
            let http = app.client.clone();
            let url = format!("{}/sessions", app.url);
            tokio::spawn(async move {
                http.post(url)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            })
        })
        .collect();
    let mut statuses = Vec::with_capacity(count);
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses
}

async fn set_faults(upstream: &str, faults: Value) {
    let response = client()
        .put(format!("{upstream}/_emulator/faults"))
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "setting faults {faults}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retries_keep_99_percent_of_creates_succeeding_through_flaky_vonage() {
    for faults in [
        json!({"errorRate": 0.2, "errorStatus": 503}),
        json!({"errorRate": 0.2, "errorStatus": 429}),
        json!({"dropRate": 0.1}),
    ] {
        let upstream = spawn_emulator().await;
        let app = TestApp::spawn_against(Kind::Legacy, &upstream, "").await;
        set_faults(&upstream, faults.clone()).await;
        let statuses = concurrent_creates(&app, 300).await;
        let ok = statuses.iter().filter(|s| **s == 201).count();
        assert!(ok >= 297, "{faults}: only {ok}/300 succeeded: {statuses:?}");
        let failed_attempts = app
            .upstream_requests()
            .await
            .iter()
            .filter(|r| r["status"] != 200)
            .count();
        // About 33 expected at a 10% drop rate, 75 at 20% errors; 10 is four deviations below.
        assert!(
            failed_attempts > 10,
            "{faults}: the faults really happened ({failed_attempts})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_open_breaker_fails_fast_and_closes_once_vonage_returns() {
    let upstream = spawn_emulator().await;
    let overrides = "[video]\nbreaker_failure_threshold = 3\nbreaker_open_ms = 2000\n";
    let app = TestApp::spawn_against(Kind::Application, &upstream, overrides).await;
    set_faults(&upstream, json!({"errorRate": 1.0, "errorStatus": 503})).await;
    for _ in 0..3 {
        assert_problem(
            app.post_json("/sessions", &json!({})).await,
            503,
            "upstream_unavailable",
        )
        .await;
    }
    let calls_before = app.upstream_requests().await.len();
    let mut latencies = Vec::new();
    for _ in 0..21 {
        let started = Instant::now();
        let response = app.post_json("/sessions", &json!({})).await;
        latencies.push(started.elapsed());
        assert!(response.headers().contains_key("retry-after"));
        assert_problem(response, 503, "upstream_unavailable").await;
    }
    latencies.sort();
    assert!(
        latencies[10] < Duration::from_millis(50),
        "median failure {:?}",
        latencies[10]
    );
    assert_eq!(
        app.upstream_requests().await.len(),
        calls_before,
        "an open breaker does not call Vonage"
    );
    let ready: Value = app
        .client
        .get(format!("{}/readyz", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        ready["vonageBreaker"], "open",
        "readyz reports the breaker and stays ready: {ready}"
    );

    client()
        .delete(format!("{upstream}/_emulator/faults"))
        .send()
        .await
        .unwrap();
    let returned = Instant::now();
    loop {
        if app.post_json("/sessions", &json!({})).await.status() == 201 {
            break;
        }
        assert!(
            returned.elapsed() < Duration::from_secs(15),
            "creates succeed again within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready: Value = app
        .client
        .get(format!("{}/readyz", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["vonageBreaker"], "closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrency_limits_shed_load_with_a_fast_503() {
    let upstream = spawn_emulator().await;
    set_faults(&upstream, json!({"latencyMs": 400})).await;
    let app = TestApp::spawn_against(
        Kind::Legacy,
        &upstream,
        "[video]\nmax_concurrent_calls = 2\n",
    )
    .await;
    let statuses = concurrent_creates(&app, 8).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 503).count(),
        6,
        "{statuses:?}"
    );

    let app =
        TestApp::spawn_against(Kind::Legacy, &upstream, "[server]\nmax_in_flight = 3\n").await;
    let started = Instant::now();
    let statuses = concurrent_creates(&app, 8).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        3,
        "{statuses:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    let http = app.client.clone();
    let url = format!("{}/sessions", app.url);
    let busy: Vec<_> = (0..3)
        .map(|_| tokio::spawn(http.post(url.clone()).send()))
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let live = app
        .client
        .get(format!("{}/livez", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        live.status(),
        200,
        "probes are never shed, even at capacity"
    );
    for request in busy {
        assert_eq!(request.await.unwrap().unwrap().status(), 201);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_slow_clients_do_not_delay_livez() {
    let app = TestApp::spawn(Kind::Legacy).await;
    let addr = app.url.trim_start_matches("http://").to_owned();
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        stream
            .write_all(b"POST /sessions HTTP/1.1\r\nHost: x\r\nContent-Type: appl")
            .await
            .unwrap();
        slow.push(stream);
    }
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        let response = app
            .client
            .get(format!("{}/livez", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        worst = worst.max(started.elapsed());
    }
    assert!(
        worst < Duration::from_millis(500),
        "worst /livez latency {worst:?}"
    );
    drop(slow);
}

#[tokio::test]
async fn header_read_timeout_closes_stalled_connections() {
    let upstream = spawn_emulator().await;
    let app = TestApp::spawn_against(
        Kind::Legacy,
        &upstream,
        "[server]\nheader_read_timeout_ms = 300\n",
    )
    .await;
    let addr = app.url.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buffer = Vec::new();
    let read = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut buffer),
    )
    .await;
    assert!(read.is_ok(), "the server closed the stalled connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_are_exported_in_prometheus_text_with_the_documented_names() {
    let upstream = spawn_emulator().await;
    let app = TestApp::spawn_against(Kind::Legacy, &upstream, "").await;
    app.create_session(&json!({})).await;
    app.post_json("/rooms/metrics-room/join", &json!({})).await;
    set_faults(&upstream, json!({"errorRate": 1.0, "errorStatus": 503})).await;
    app.post_json("/sessions", &json!({})).await;
    client()
        .delete(format!("{upstream}/_emulator/faults"))
        .send()
        .await
        .unwrap();

    let response = app
        .client
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    for name in [
        "http_requests_total{",
        "http_request_duration_seconds_bucket{",
        "http_requests_in_flight",
        "vonage_calls_total{",
        "vonage_call_duration_seconds_bucket{",
        "vonage_retries_total{",
        "vonage_breaker_state",
        "tokens_issued_total{role=\"publisher\"}",
        "room_joins_total{outcome=\"created\"}",
        "build_info{version=",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    assert!(
        text.contains("route=\"/sessions\""),
        "labelled by matched route"
    );
    assert!(!text.contains("1_MX"), "no session ID becomes a label");
}

#[tokio::test]
async fn metrics_can_move_to_their_own_port() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let upstream = spawn_emulator().await;
    let overrides = format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n");
    let app = TestApp::spawn_against(Kind::Legacy, &upstream, &overrides).await;
    let own = client()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    assert!(own.text().await.unwrap().contains("build_info"));
    let main = app
        .client
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(main.status(), 404, "not on the main listener any more");
}
