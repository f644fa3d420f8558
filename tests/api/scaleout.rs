//! Many replicas, one truth: rate limits shared by replicas through a real Redis (and their
//! local fallback while it is down), and rooms on a real Redis Cluster and a real Sentinel
//! deployment, failover included.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{Kind, RedisServer, TestApp, metrics_text, spawn_emulator};
use crate::redis_topologies::{RedisCluster, RedisSentinels, eventually};

const CREATE_PER_MINUTE: u32 = 60;
const CREATE_BURST: u32 = 5;

/// Shared create budget of 60/min with a burst of 5; callers told apart by X-Forwarded-For.
fn limited(rooms: &str) -> String {
    format!(
        "{rooms}[rate_limits]\nenabled = true\ncreate_per_minute = {CREATE_PER_MINUTE}\ncreate_burst = {CREATE_BURST}\n\
         join_per_minute = 600000\njoin_burst = 100000\n[auth]\ntrusted_proxies = [\"127.0.0.1\"]\n"
    )
}

async fn replicas(count: usize, overrides: &str) -> Vec<TestApp> {
    let upstream = spawn_emulator().await;
    let mut apps = Vec::new();
    for _ in 0..count {
        apps.push(TestApp::spawn_against(Kind::Legacy, &upstream, overrides).await);
    }
    apps
}

/// `POST /sessions` as the caller at `ip`; a 429 must carry its headers.
async fn create_as(app: &TestApp, ip: &str) -> u16 {
    let response = app
        .client
        .post(format!("{}/sessions", app.url))
        .header("x-forwarded-for", ip)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    if status == 429 {
        let headers = response.headers();
        assert!(headers.contains_key("retry-after"), "{headers:?}");
        assert_eq!(headers["ratelimit-limit"], "60");
        assert_eq!(headers["ratelimit-remaining"], "0");
        assert!(headers.contains_key("ratelimit-reset"));
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "rate_limited", "{body}");
    }
    status
}

/// Sends `count` creates as `ip`, round-robin over `apps`, `gap` apart; returns the statuses
/// and the time from the first to the last.
async fn spray(apps: &[TestApp], ip: &str, count: usize, gap: Duration) -> (Vec<u16>, Duration) {
    let started = Instant::now();
    let mut statuses = Vec::new();
    for n in 0..count {
        statuses.push(create_as(&apps[n % apps.len()], ip).await);
        tokio::time::sleep(gap).await;
    }
    (statuses, started.elapsed())
}

fn successes(statuses: &[u16]) -> u32 {
    for status in statuses {
        assert!(matches!(status, 201 | 429), "only 201 or 429: {statuses:?}");
    }
    statuses.iter().filter(|s| **s == 201).count() as u32
}

/// The most a GCRA budget allows in `elapsed`: the burst, the refill, and one per replica for
/// calls that race at a refill boundary.
fn budget(elapsed: Duration, replicas: u32) -> u32 {
    CREATE_BURST
        + (f64::from(CREATE_PER_MINUTE) / 60.0 * elapsed.as_secs_f64()).ceil() as u32
        + replicas
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_caller_spraying_three_replicas_gets_one_budget_and_other_callers_are_unaffected() {
    let redis = RedisServer::start();
    let apps = replicas(3, &limited(&redis.rooms_config())).await;
    // Three replicas with local budgets would grant 3 × (5 + refill) here.
    let (statuses, elapsed) = spray(&apps, "203.0.113.7", 60, Duration::from_millis(30)).await;
    let granted = successes(&statuses);
    assert!(
        granted >= CREATE_BURST && granted <= budget(elapsed, 3),
        "{granted} creates in {elapsed:?} (budget {}): {statuses:?}",
        budget(elapsed, 3)
    );
    // The burst is spent across replicas: after the first 5, the next calls are refused
    // whichever replica they hit.
    assert_eq!(
        &statuses[..CREATE_BURST as usize],
        &[201; CREATE_BURST as usize]
    );
    assert!(statuses[CREATE_BURST as usize..].contains(&429));
    // Another caller still has a whole burst, on every replica.
    let (other, _) = spray(&apps, "203.0.113.8", CREATE_BURST as usize, Duration::ZERO).await;
    assert_eq!(
        other,
        vec![201; CREATE_BURST as usize],
        "a distinct caller is unaffected"
    );
    // The decision lives in Redis, under a hash-tagged key that expires.
    let ttl = redis
        .command(&["PTTL", "vonage-sessions:ratelimit:{create:ip:203.0.113.7}"])
        .await;
    let ttl: i64 = redis::from_redis_value(ttl).unwrap();
    assert!(ttl > 0 && ttl <= 70_000, "the key has a TTL: {ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_redis_each_replica_falls_back_to_its_local_budget_and_returns_to_the_shared_one() {
    let mut redis = RedisServer::start();
    let overrides = limited(&format!("{}store_timeout_ms = 300\n", redis.rooms_config()));
    let apps = replicas(3, &overrides).await;
    assert_eq!(create_as(&apps[0], "198.51.100.1").await, 201);
    redis.stop();
    // Never wide open, never a 5xx: each replica grants its own burst, then refuses.
    let (statuses, elapsed) = spray(&apps, "198.51.100.2", 45, Duration::ZERO).await;
    let granted = successes(&statuses);
    assert!(
        granted >= CREATE_BURST && granted <= 3 * budget(elapsed, 0),
        "{granted} creates in {elapsed:?} while Redis is down: {statuses:?}"
    );
    assert!(statuses.contains(&429), "still limited: {statuses:?}");
    let metrics = metrics_text(&apps[0].url).await;
    let fallbacks: f64 = metrics
        .lines()
        .find(|line| line.starts_with("rate_limit_store_fallback_total"))
        .and_then(|line| line.split_whitespace().last())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no rate_limit_store_fallback_total in /metrics:\n{metrics}"));
    assert!(fallbacks >= 1.0, "{fallbacks}");
    // Redis is back (empty): after the retry interval every replica decides in Redis again, so
    // a new caller gets one burst over all three, not three.
    redis.restart();
    for app in &apps {
        eventually(
            "readiness once Redis is back",
            Duration::from_secs(10),
            || async { ready(app).await == 200 },
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (statuses, elapsed) = spray(&apps, "198.51.100.3", 30, Duration::ZERO).await;
    let granted = successes(&statuses);
    assert!(
        granted <= budget(elapsed, 3),
        "shared again: {granted} in {elapsed:?}: {statuses:?}"
    );
}

/// Budgets above 60,000,000 a minute (an interval under 1 µs, as the benchmark sets them to get
/// the limits out of the way) are still decided in Redis: no script error, no fallback.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn budgets_too_fine_for_microseconds_are_still_decided_in_redis() {
    let redis = RedisServer::start();
    let overrides = format!(
        "{}[rate_limits]\nenabled = true\ncreate_per_minute = 1000000000\ncreate_burst = 1000000000\n\
         [auth]\ntrusted_proxies = [\"127.0.0.1\"]\n",
        redis.rooms_config()
    );
    let apps = replicas(1, &overrides).await;
    for _ in 0..5 {
        assert_eq!(create_as(&apps[0], "192.0.2.77").await, 201);
    }
    // Read from this test's own Redis (the metrics recorder is shared by every test of the
    // binary, so a fallback counted elsewhere would blur it): the scripts ran, none failed.
    let text = |value: redis::Value| match value {
        redis::Value::BulkString(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        redis::Value::VerbatimString { text, .. } => text,
        other => format!("{other:?}"),
    };
    let commands = text(redis.command(&["INFO", "commandstats"]).await);
    let stat = |name: &str, field: &str| -> u64 {
        commands
            .lines()
            .find(|line| line.starts_with(&format!("cmdstat_{name}:")))
            .and_then(|line| line.split(&format!("{field}=")).nth(1))
            .and_then(|rest| rest.split(',').next()?.parse().ok())
            .unwrap_or(0)
    };
    // The script's `SET ... PX` ran once per decision and never failed (a `PX 0` fails it).
    assert!(
        stat("set", "calls") >= 5,
        "every decision ran in Redis:\n{commands}"
    );
    assert_eq!(stat("set", "failed_calls"), 0, "{commands}");
}

async fn join(app: &TestApp, room: &str) -> (u16, Value) {
    let response = app
        .client
        .post(format!("{}/rooms/{room}/join", app.url))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// 200 concurrent joins of `room` spread over `apps`: exactly one creates, all get one session,
/// and the emulator holds one session.
async fn two_hundred_joins_make_one_session(apps: &[TestApp], room: &str) {
    let mut tasks = Vec::new();
    for n in 0..200 {
        let url = format!("{}/rooms/{room}/join", apps[n % apps.len()].url);
        let http = apps[0].client.clone();
        tasks.push(tokio::spawn(async move {
            let response = http.post(url).json(&json!({})).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    let created = results.iter().filter(|(status, _)| *status == 201).count();
    assert_eq!(created, 1, "exactly one creator");
    for (status, body) in &results {
        assert!(
            matches!(status, 200 | 201),
            "every join succeeds: {status} {body}"
        );
    }
    let ids: HashSet<&str> = results
        .iter()
        .map(|(_, body)| body["sessionId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "one session for everyone: {ids:?}");
    let at_vonage = apps[0]
        .upstream_sessions()
        .await
        .into_iter()
        .filter(|session| ids.contains(session["sessionId"].as_str().unwrap_or("")))
        .count();
    assert_eq!(at_vonage, 1);
}

async fn ready(app: &TestApp) -> u16 {
    app.get("/readyz").await.status().as_u16()
}

/// Rate limits on too (a large join budget), so the shared limiter runs on the topology too.
fn roomy(rooms: &str) -> String {
    format!(
        "{rooms}[rate_limits]\nenabled = true\njoin_per_minute = 600000\njoin_burst = 100000\n\
         create_per_minute = 6000\ncreate_burst = 1000\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_three_master_redis_cluster_serves_rooms_and_rate_limits_for_three_replicas() {
    let cluster = RedisCluster::start().await;
    let apps = replicas(3, &roomy(&cluster.rooms_config())).await;
    for app in &apps {
        assert_eq!(ready(app).await, 200, "readiness pings the cluster");
    }
    two_hundred_joins_make_one_session(&apps, "cluster-all-hands").await;
    // Rooms hash to different slots, so different masters hold them.
    for n in 0..30 {
        let (status, body) = join(&apps[n % 3], &format!("room-{n}")).await;
        assert_eq!(status, 201, "{body}");
    }
    let keys = cluster.keys_per_node().await;
    assert!(
        keys.iter().all(|count| *count > 0),
        "every master holds keys: {keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sentinel_rooms_survive_a_master_failover_without_a_restart() {
    let mut sentinels = RedisSentinels::start().await;
    let overrides = roomy(&format!(
        "{}store_timeout_ms = 300\n",
        sentinels.rooms_config()
    ));
    let apps = replicas(3, &overrides).await;
    for app in &apps {
        assert_eq!(ready(app).await, 200, "readiness pings the master");
    }
    two_hundred_joins_make_one_session(&apps, "sentinel-all-hands").await;

    // Joins keep coming while the master dies and a sentinel promotes the replica.
    sentinels.kill_master();
    let killed = Instant::now();
    let mut not_ready_seen = false;
    let mut unavailable = 0;
    let mut recovered_after = None;
    let mut n = 0;
    while killed.elapsed() < Duration::from_secs(40) {
        let app = &apps[n % 3];
        n += 1;
        let started = Instant::now();
        let (status, body) = join(app, &format!("during-failover-{n}")).await;
        match status {
            201 => {
                recovered_after = Some(killed.elapsed());
                break;
            }
            503 => {
                assert_eq!(body["code"], "store_unavailable", "{body}");
                assert!(
                    started.elapsed() < Duration::from_secs(3),
                    "fails fast: {:?}",
                    started.elapsed()
                );
                unavailable += 1;
            }
            other => panic!("a join answered {other} during the failover: {body}"),
        }
        if ready(app).await == 503 {
            not_ready_seen = true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recovered_after = recovered_after.expect("joins succeed again after the promotion");
    assert!(
        unavailable > 0 && not_ready_seen,
        "the outage showed: {unavailable} 503s, readiness 503 seen: {not_ready_seen}"
    );
    assert_eq!(
        sentinels.reported_master_port().await,
        Some(sentinels.replica_port),
        "the replica was promoted"
    );
    // Every replica follows the new master, without a restart.
    for app in &apps {
        eventually(
            "readiness after the failover",
            Duration::from_secs(10),
            || async { ready(app).await == 200 },
        )
        .await;
    }
    two_hundred_joins_make_one_session(&apps, "after-failover").await;
    eprintln!(
        "sentinel failover: joins recovered {recovered_after:?} after the master was killed ({unavailable} fast 503s); master port was {}",
        sentinels.master_port
    );
}
