//! Named rooms: exactly one Vonage session per room however many callers and replicas race,
//! with the memory store and with a real Redis shared by several service instances.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{
    Kind, RedisServer, TestApp, assert_problem, clear_faults, set_faults, spawn_emulator,
};

async fn join(app: &TestApp, room: &str, body: &Value) -> (u16, Value) {
    let response = app.post_json(&format!("/rooms/{room}/join"), body).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Fires `count` concurrent joins of `room` at each `(app, count)`, all at once; returns every
/// (status, body).
async fn join_concurrently(apps: &[(&TestApp, usize)], room: &str) -> Vec<(u16, Value)> {
    let mut tasks = Vec::new();
    for (app, count) in apps {
        for _ in 0..*count {
            let url = format!("{}/rooms/{room}/join", app.url);
            let http = app.client.clone();
            tasks.push(tokio::spawn(async move {
                let response = http.post(url).send().await.unwrap();
                let status = response.status().as_u16();
                (status, response.json::<Value>().await.unwrap())
            }));
        }
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

fn assert_one_session(results: &[(u16, Value)]) -> String {
    let created = results.iter().filter(|(status, _)| *status == 201).count();
    assert_eq!(created, 1, "exactly one creator");
    for (status, body) in results {
        assert!(
            matches!(status, 200 | 201),
            "every join succeeds: {status} {body}"
        );
        assert_eq!(body["created"], *status == 201);
    }
    let ids: HashSet<&str> = results
        .iter()
        .map(|(_, body)| body["sessionId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "everyone got the same session: {ids:?}");
    ids.into_iter().next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_creates_one_session_for_concurrent_joins_in_one_process() {
    let app = TestApp::spawn(Kind::Application).await;
    let results = join_concurrently(&[(&app, 100)], "standup").await;
    let sid = assert_one_session(&results);
    let sessions = app.upstream_sessions().await;
    assert_eq!(sessions.len(), 1, "one session at Vonage");
    assert_eq!(sessions[0]["sessionId"], sid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_joins_over_three_replicas_sharing_redis_create_one_session() {
    let redis = RedisServer::start();
    let upstream = spawn_emulator().await;
    let mut apps = Vec::new();
    for _ in 0..3 {
        apps.push(TestApp::spawn_against(Kind::Legacy, &upstream, &redis.rooms_config()).await);
    }
    let results = join_concurrently(
        &[(&apps[0], 67), (&apps[1], 67), (&apps[2], 66)],
        "all-hands",
    )
    .await;
    assert_eq!(results.len(), 200);
    let sid = assert_one_session(&results);
    let sessions = apps[0].upstream_sessions().await;
    assert_eq!(
        sessions.len(),
        1,
        "one session at Vonage, got {}",
        sessions.len()
    );
    assert_eq!(sessions[0]["sessionId"], sid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_rooms_with_ten_joiners_each_make_twenty_sessions() {
    let redis = RedisServer::start();
    let upstream = spawn_emulator().await;
    let mut apps = Vec::new();
    for _ in 0..2 {
        apps.push(
            TestApp::spawn_against(Kind::Application, &upstream, &redis.rooms_config()).await,
        );
    }
    let mut tasks = Vec::new();
    for room in 0..20 {
        for joiner in 0..10 {
            let app = &apps[joiner % 2];
            let url = format!("{}/rooms/room-{room}/join", app.url);
            let http = app.client.clone();
            tasks.push(tokio::spawn(async move {
                let response = http.post(url).send().await.unwrap();
                (
                    room,
                    response.status().as_u16(),
                    response.json::<Value>().await.unwrap(),
                )
            }));
        }
    }
    let mut by_room: Vec<Vec<(u16, Value)>> = vec![Vec::new(); 20];
    for task in tasks {
        let (room, status, body) = task.await.unwrap();
        by_room[room].push((status, body));
    }
    let mut ids = HashSet::new();
    for results in &by_room {
        ids.insert(assert_one_session(results));
    }
    assert_eq!(ids.len(), 20);
    assert_eq!(apps[0].upstream_sessions().await.len(), 20);
}

#[tokio::test]
async fn a_failed_or_timed_out_creation_lets_the_next_joiner_create_the_room() {
    let redis = RedisServer::start();
    let upstream = spawn_emulator().await;
    let overrides = format!("{}[video]\ntimeout_ms = 300\n", redis.rooms_config());
    let app = TestApp::spawn_against(Kind::Legacy, &upstream, &overrides).await;
    set_faults(&upstream, json!({"errorRate": 1.0, "errorStatus": 500})).await;
    assert_problem(
        app.post_json("/rooms/retro/join", &json!({})).await,
        502,
        "upstream_rejected",
    )
    .await;
    set_faults(&upstream, json!({"latencyMs": 1000})).await;
    assert_problem(
        app.post_json("/rooms/retro/join", &json!({})).await,
        504,
        "upstream_timeout",
    )
    .await;
    clear_faults(&upstream).await;

    let (status, body) = join(&app, "retro", &json!({})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["created"], true);
    assert_eq!(join(&app, "retro", &json!({})).await.0, 200);
}

#[tokio::test]
async fn a_dead_holders_claim_expires_and_a_later_joiner_takes_over() {
    let redis = RedisServer::start();
    let upstream = spawn_emulator().await;
    let overrides = format!(
        "{}claim_ms = 1500\n[video]\ntimeout_ms = 1000\nrequest_deadline_ms = 1200\n",
        redis.rooms_config()
    );
    let app = TestApp::spawn_against(Kind::Legacy, &upstream, &overrides).await;
    // What a replica that died mid-creation leaves behind.
    redis
        .command(&[
            "SET",
            "vonage-sessions:room:{orphan}",
            "pending:dead-replica",
            "PX",
            "1500",
        ])
        .await;
    let started = Instant::now();
    let (status, body) = join(&app, "orphan", &json!({})).await;
    assert_eq!(status, 201, "{body}");
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "it waited for the claim to expire"
    );
    assert_eq!(app.upstream_sessions().await.len(), 1);
}

#[tokio::test]
async fn a_claim_that_never_completes_gives_a_bounded_503() {
    let redis = RedisServer::start();
    let upstream = spawn_emulator().await;
    let overrides = format!("{}join_wait_ms = 300\n", redis.rooms_config());
    let app = TestApp::spawn_against(Kind::Legacy, &upstream, &overrides).await;
    redis
        .command(&[
            "SET",
            "vonage-sessions:room:{stuck}",
            "pending:slow",
            "PX",
            "60000",
        ])
        .await;
    let started = Instant::now();
    let response = app.post_json("/rooms/stuck/join", &json!({})).await;
    assert!(response.headers().contains_key("retry-after"));
    assert_problem(response, 503, "room_busy").await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        app.upstream_sessions().await.is_empty(),
        "a waiter never creates a session"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn when_redis_dies_readyz_and_joins_fail_fast_then_recover_without_a_restart() {
    let mut redis = RedisServer::start();
    let upstream = spawn_emulator().await;
    let app = TestApp::spawn_against(Kind::Application, &upstream, &redis.rooms_config()).await;
    let ready = || async { app.get("/readyz").await };
    assert_eq!(ready().await.status(), 200);
    assert_eq!(join(&app, "ops", &json!({})).await.0, 201);

    redis.stop();
    let problem = assert_problem(ready().await, 503, "not_ready").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("room_store"),
        "{problem}"
    );
    let started = Instant::now();
    assert_problem(
        app.post_json("/rooms/ops/join", &json!({})).await,
        503,
        "store_unavailable",
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "fails fast: {:?}",
        started.elapsed()
    );

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    while ready().await.status() != 200 {
        assert!(Instant::now() < deadline, "readyz recovers by itself");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Redis came back empty (no persistence), so the room is created anew.
    let (status, body) = join(&app, "ops", &json!({})).await;
    assert_eq!(
        status, 201,
        "joins recover and create the room anew: {body}"
    );
}

#[tokio::test]
async fn get_and_delete_rooms_and_a_sliding_ttl() {
    let redis = RedisServer::start();
    let upstream = spawn_emulator().await;
    // Deleting a room needs video:admin, which anonymous callers get only when granted.
    let overrides = format!(
        "{}ttl_seconds = 2\n[auth]\nanonymous_scopes = [\"video:create\", \"video:join\", \"video:admin\"]\n",
        redis.rooms_config()
    );
    let app = TestApp::spawn_against(Kind::Legacy, &upstream, &overrides).await;
    let get = |room: &'static str| {
        let url = format!("{}/rooms/{room}", app.url);
        let http = app.client.clone();
        async move { http.get(url).send().await.unwrap() }
    };
    assert_problem(get("weekly").await, 404, "room_not_found").await;

    let (status, created) = join(
        &app,
        "weekly",
        &json!({"session": {"mediaMode": "relayed"}, "token": {"role": "subscriber"}}),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(created["role"], "subscriber");
    assert_eq!(
        app.upstream_sessions().await[0]["mediaMode"],
        "relayed",
        "session options apply on creation"
    );
    let found: Value = get("weekly").await.json().await.unwrap();
    assert_eq!(found["room"], "weekly");
    assert_eq!(found["sessionId"], created["sessionId"]);
    assert!(found["createdAt"].as_str().unwrap().ends_with('Z'));

    // Joins refresh the TTL: joining every second keeps a 2 s room alive past 2 s.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert_eq!(join(&app, "weekly", &json!({})).await.0, 200);
    }
    assert_eq!(get("weekly").await.status(), 200);
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert_problem(get("weekly").await, 404, "room_not_found").await;

    let (_, again) = join(&app, "weekly", &json!({})).await;
    let deleted = app
        .client
        .delete(format!("{}/rooms/weekly", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_problem(get("weekly").await, 404, "room_not_found").await;
    let (status, fresh) = join(&app, "weekly", &json!({})).await;
    assert_eq!(
        status, 201,
        "after DELETE the next join creates a new session"
    );
    assert_ne!(fresh["sessionId"], again["sessionId"]);
}

#[tokio::test]
async fn room_requests_are_validated() {
    let app = TestApp::spawn(Kind::Legacy).await;
    for room in ["-bad", "a%20b", &"x".repeat(129)] {
        let problem = assert_problem(
            app.post_json(&format!("/rooms/{room}/join"), &json!({}))
                .await,
            400,
            "invalid_request",
        )
        .await;
        assert!(
            problem["detail"].as_str().unwrap().starts_with("room"),
            "{problem}"
        );
    }
    let cases = [
        (json!({"session": {"token": {}}}), "session.token"),
        (
            json!({"session": {"mediaMode": "relayed", "archiveMode": "always"}}),
            "session.archiveMode",
        ),
        (json!({"session": {"bogus": 1}}), "session"),
        (json!({"token": {"role": "moderator"}}), ""),
    ];
    for (body, field) in cases {
        let response = app.post_json("/rooms/ok/join", &body).await;
        if field.is_empty() {
            assert_problem(response, 403, "role_not_allowed").await;
        } else {
            let problem = assert_problem(response, 400, "invalid_request").await;
            assert!(
                problem["detail"].as_str().unwrap().starts_with(field),
                "{body}: {problem}"
            );
        }
    }
    assert!(app.upstream_sessions().await.is_empty());
}
