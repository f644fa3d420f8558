//! Resilience under the emulator's faults: retries absorb flaky Vonage answers, the circuit
//! breaker fails fast while Vonage is down and recovers by itself, concurrency limits shed
//! load, slow clients cannot starve probes, and every metric is exported.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;

use crate::helpers::{
    Kind, TestApp, assert_problem, clear_faults, client, set_faults, spawn_emulator,
};
use crate::process::Running;

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
    let ready: Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(
        ready["vonageBreaker"], "open",
        "readyz reports the breaker and stays ready: {ready}"
    );

    clear_faults(&upstream).await;
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
    let ready: Value = app.get("/readyz").await.json().await.unwrap();
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
    let live = app.get("/livez").await;
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
        let response = app.get("/livez").await;
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

/// The sum of the series named `name` whose labels include every one of `labels`; `None` when
/// there is no such series.
fn series_value(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter(|(series, _)| {
            let (series_name, series_labels) = series.split_once('{').unwrap_or((series, ""));
            series_name == name && labels.iter().all(|label| series_labels.contains(label))
        })
        .filter_map(|(_, value)| value.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// Every in-process test shares one metrics recorder, so this one runs the binary: each value
/// it reads was made by its own requests, and a series only registered at zero cannot pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_are_exported_in_prometheus_text_with_the_documented_names() {
    let upstream = spawn_emulator().await;
    let service = Running::serve_anonymous(&upstream, &[]);
    let http = client();
    let post = |path: &str| http.post(format!("{}{path}", service.url)).json(&json!({}));
    assert_eq!(post("/sessions").send().await.unwrap().status(), 201);
    let joined = post("/rooms/metrics-room/join").send().await.unwrap();
    assert_eq!(joined.status(), 201);
    set_faults(&upstream, json!({"errorRate": 1.0, "errorStatus": 503})).await;
    assert_eq!(post("/sessions").send().await.unwrap().status(), 503);
    clear_faults(&upstream).await;

    let response = http
        .get(format!("{}/metrics", service.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let at_least = |name: &str, labels: &[&str], least: f64| {
        let value = series_value(&text, name, labels);
        assert!(
            value.is_some_and(|value| value >= least),
            "{name}{labels:?} is {value:?}, expected at least {least}:\n{text}"
        );
    };
    at_least(
        "http_requests_total",
        &["route=\"/sessions\"", "status=\"201\""],
        1.0,
    );
    at_least(
        "http_requests_total",
        &["route=\"/sessions\"", "status=\"503\""],
        1.0,
    );
    at_least(
        "http_request_duration_seconds_count",
        &["route=\"/sessions\""],
        2.0,
    );
    at_least("vonage_calls_total", &[], 3.0);
    at_least("vonage_call_duration_seconds_count", &[], 3.0);
    at_least("vonage_retries_total", &[], 1.0);
    at_least("tokens_issued_total", &["role=\"publisher\""], 2.0);
    at_least("room_joins_total", &["outcome=\"created\""], 1.0);
    at_least("build_info", &["version="], 1.0);
    assert!(
        series_value(&text, "vonage_breaker_state", &[]).is_some(),
        "vonage_breaker_state missing from:\n{text}"
    );
    assert!(!text.contains("1_MX"), "no session ID becomes a label");
    let (code, _) = tokio::task::spawn_blocking(move || service.terminate())
        .await
        .unwrap();
    assert_eq!(code, 0);
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
    let main = app.get("/metrics").await;
    assert_eq!(main.status(), 404, "not on the main listener any more");
}
