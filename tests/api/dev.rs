//! What a newcomer meets first, through the real binary: `dev` lets anonymous callers try every
//! feature (archives, moderator tokens, room deletion) without rate limits and serves the
//! emulator's control endpoints on its own port, while `serve` keeps its production defaults;
//! `check-config` reports every problem at once and prints TOML; no command panics on a closed
//! stdout; `healthcheck` probes the configured address; every listed metric exists at start-up.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{
    API_SECRET, APPLICATION_ID, binary, client, collect, metrics_text, spawn_emulator,
};
use crate::process::{LEGACY, Running};

const ANONYMOUS: (&str, &str) = ("VONAGE_SESSIONS__AUTH__MODE", "anonymous");

/// A server started from the binary (its URL from the `listening on` line, and its output),
/// killed when the test ends.
struct Server(Running);

impl Server {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self(Running::start(args, env))
    }

    /// Waits until the output contains `text`.
    fn wait_for(&self, text: &str) -> String {
        let started = Instant::now();
        loop {
            let output = self.0.output();
            if output.contains(text) {
                return output;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no {text:?} in {output}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl std::ops::Deref for Server {
    type Target = Running;

    fn deref(&self) -> &Running {
        &self.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.0.kill();
    }
}

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_lets_anonymous_callers_try_everything_from_one_url() {
    let dev = Server::start(&["dev", "--listen", "127.0.0.1:0"], &[]);
    let banner = dev.wait_for("Try:");
    assert!(banner.contains("Rate limits: off"), "{banner}");
    assert!(
        banner.contains(&format!("{}/_emulator/sessions", dev.url)),
        "the banner names the control endpoints on the one URL: {banner}"
    );
    assert!(banner.contains("video:moderate"), "{banner}");
    let http = client();
    let url = &dev.url;

    // A front end on hot reload: many quick creations, none refused.
    for _ in 0..30 {
        let (status, body) = send(http.post(format!("{url}/sessions"))).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = send(
        http.post(format!("{url}/sessions"))
            .json(&json!({"token": {"role": "moderator"}})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["role"], "moderator");
    let session_id = body["sessionId"].as_str().unwrap().to_owned();

    // The emulator's control endpoints, on the same port.
    let (status, sessions) = send(http.get(format!("{url}/_emulator/sessions"))).await;
    assert_eq!(status, 200, "{sessions}");
    assert!(sessions.as_array().unwrap().len() >= 31, "{sessions}");
    let (status, body) = send(
        http.put(format!("{url}/_emulator/sessions/{session_id}/connections"))
            .json(&json!({"connected": true})),
    )
    .await;
    assert!(status < 300, "{status} {body}");

    // Archives, which need video:moderate.
    let (status, archive) = send(http.post(format!("{url}/sessions/{session_id}/archives"))).await;
    assert_eq!(status, 201, "{archive}");
    let archive_id = archive["id"].as_str().unwrap();
    let (status, body) = send(http.post(format!("{url}/archives/{archive_id}/stop"))).await;
    assert_eq!(status, 200, "{body}");

    // Rooms, and deleting one (video:admin).
    let (status, body) = send(http.post(format!("{url}/rooms/newcomer/join"))).await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = send(http.delete(format!("{url}/rooms/newcomer"))).await;
    assert_eq!(status, 204);

    // What the user configures still wins.
    let limited = Server::start(
        &["dev", "--listen", "127.0.0.1:0"],
        &[("VONAGE_SESSIONS__RATE_LIMITS__ENABLED", "true")],
    );
    let banner = limited.wait_for("Try:");
    assert!(banner.contains("Rate limits: on"), "{banner}");
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_keeps_its_production_defaults() {
    let upstream = spawn_emulator().await;
    let env = [
        ANONYMOUS,
        LEGACY[0],
        LEGACY[1],
        ("VIDEO_API_URL", upstream.as_str()),
    ];
    let serve = Server::start(&["serve", "--listen", "127.0.0.1:0"], &env);
    let http = client();
    let url = &serve.url;
    let (status, body) = send(http.get(format!("{url}/_emulator/sessions"))).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    let (status, created) = send(http.post(format!("{url}/sessions"))).await;
    assert_eq!(status, 201, "{created}");
    let session_id = created["sessionId"].as_str().unwrap();
    let (status, body) = send(http.post(format!("{url}/sessions/{session_id}/archives"))).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("video:moderate"),
        "the 403 names the scope: {body}"
    );
    let (status, body) = send(
        http.post(format!("{url}/sessions"))
            .json(&json!({"token": {"role": "moderator"}})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("role_not_allowed"))
    );
    assert!(
        body["detail"].as_str().unwrap().contains("video:moderate"),
        "{body}"
    );
    // The create budget: bursts of 10 (one spent above).
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(send(http.post(format!("{url}/sessions"))).await.0);
    }
    assert!(statuses.contains(&429), "rate limits are on: {statuses:?}");
}

#[test]
fn check_config_reports_every_problem_in_one_run_naming_its_key() {
    let env = [
        ("VONAGE_APPLICATION_ID", APPLICATION_ID),
        ("VONAGE_SESSIONS__SERVER__LISTEN_PORT", "1"),
        ("VONAGE_SESSIONS__VIDEO__TIMEOUT_MS", "soon"),
        ("VONAGE_SESSIONS__TOKENS__MAX_TTL_SECONDS", "0"),
    ];
    let output = binary(&["check-config"], &env).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(
        output.stdout.is_empty(),
        "nothing on stdout for a bad config"
    );
    for key in [
        "server.listen_port",
        "video.timeout_ms",
        "tokens.max_ttl_seconds",
        "VONAGE_PRIVATE_KEY",
        "auth.mode",
    ] {
        assert!(
            stderr.contains(&format!("- {key}: ")),
            "{key} is named: {stderr}"
        );
    }
    assert!(stderr.contains("5 configuration problems"), "{stderr}");
}

#[test]
fn check_config_prints_the_effective_config_as_toml_that_loads_again() {
    let env = [
        ANONYMOUS,
        LEGACY[0],
        LEGACY[1],
        // A list in an env var, as the README shows it.
        (
            "VONAGE_SESSIONS__AUTH__ANONYMOUS_SCOPES",
            r#"["video:create","video:join","video:moderate"]"#,
        ),
        (
            "VONAGE_SESSIONS__ROOMS__REDIS_URL",
            "redis://:hunter2-password@redis:6379/0",
        ),
    ];
    let output = binary(&["check-config"], &env).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !stdout.contains("hunter2") && !stdout.contains(API_SECRET),
        "{stdout}"
    );
    let parsed: toml::Table = toml::from_str(&stdout).expect("stdout is TOML");
    assert_eq!(parsed["auth"]["mode"].as_str(), Some("anonymous"));
    assert_eq!(
        parsed["auth"]["anonymous_scopes"].as_array().unwrap().len(),
        3,
        "{stdout}"
    );
    assert_eq!(parsed["server"]["listen"].as_str(), Some("0.0.0.0:8080"));
    assert!(
        stdout.contains("# credentials: legacy OpenTok project"),
        "{stdout}"
    );

    // The printed configuration is itself a valid overlay.
    let dir = std::env::temp_dir().join(format!("check-config-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("printed.toml"), &stdout).unwrap();
    let again = binary(
        &["--config", dir.to_str().unwrap(), "check-config"],
        &[("VONAGE_SESSIONS_ENV", "printed"), LEGACY[0], LEGACY[1]],
    )
    .output()
    .unwrap();
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// A stdout whose reader is already gone, as after `| head -1` has read its line.
fn closed_stdout() -> Stdio {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    Stdio::from(writer)
}

#[tokio::test(flavor = "multi_thread")]
async fn no_command_panics_on_a_closed_stdout() {
    let good = [ANONYMOUS, LEGACY[0], LEGACY[1]];
    for (args, env, expected) in [
        (vec!["check-config"], good.to_vec(), 0),
        (vec!["check-config"], vec![], 78),
        (vec!["--help"], vec![], 0),
        (vec!["--version"], vec![], 0),
        (
            vec![
                "healthcheck",
                "--url",
                "http://127.0.0.1:9/readyz",
                "--timeout-ms",
                "300",
            ],
            vec![],
            1,
        ),
    ] {
        let output = binary(&args, &env)
            .stdout(closed_stdout())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }

    // Servers print their `listening on` line (and dev its banner) into the closed pipe and
    // carry on serving; SIGTERM still stops them with status 0.
    let upstream = spawn_emulator().await;
    let serve_env = [
        ANONYMOUS,
        LEGACY[0],
        LEGACY[1],
        ("VIDEO_API_URL", upstream.as_str()),
    ];
    for (args, env, logged) in [
        (
            vec!["serve", "--listen", "127.0.0.1:0"],
            serve_env.to_vec(),
            "service configured",
        ),
        (
            vec!["dev", "--listen", "127.0.0.1:0"],
            vec![],
            "service configured",
        ),
        (
            vec!["emulator", "--listen", "127.0.0.1:0"],
            LEGACY.to_vec(),
            "emulator bound",
        ),
    ] {
        let mut child = binary(&args, &env)
            .stdout(closed_stdout())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        collect(child.stderr.take().unwrap(), stderr.clone());
        let started = Instant::now();
        while !stderr.lock().unwrap().contains(logged) {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{args:?}: {}",
                stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            child.try_wait().unwrap().is_none(),
            "{args:?} died: {}",
            stderr.lock().unwrap()
        );
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let status = child.wait().unwrap();
        let stderr = stderr.lock().unwrap().clone();
        assert_eq!(status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread")]
async fn healthcheck_probes_the_configured_address_and_metrics_exist_from_start_up() {
    let upstream = spawn_emulator().await;
    // The address must be known before the server starts, as in a container: a free port,
    // found by binding port 0 and letting it go.
    let listen = format!("127.0.0.1:{}", free_port());
    let env = [
        ANONYMOUS,
        LEGACY[0],
        LEGACY[1],
        ("VIDEO_API_URL", upstream.as_str()),
        ("VONAGE_SESSIONS__SERVER__LISTEN", listen.as_str()),
    ];
    let serve = Server::start(&["serve"], &env);
    assert_eq!(serve.url, format!("http://{listen}"));

    // The first request the service ever answers: every listed series is already there.
    let metrics = metrics_text(&serve.url).await;
    for name in [
        "vonage_retries_total{operation=\"create_session\"} 0",
        "room_claim_contention_total 0",
        "room_store_errors_total 0",
        "load_shed_total{limit=\"in_flight\"} 0",
        "load_shed_total{limit=\"vonage_calls\"} 0",
        "rate_limited_total{budget=\"create\"} 0",
        "rate_limited_total{budget=\"callbacks\"} 0",
        "# HELP callbacks_received_total",
        "callback_archive_restarts_total{outcome=\"restarted\"} 0",
        "tokens_issued_total{role=\"publisher\"} 0",
        "room_joins_total{outcome=\"created\"} 0",
        "vonage_breaker_state 0",
        "# HELP room_claim_contention_total",
        "# HELP vonage_retries_total",
        "build_info",
        "http_requests_in_flight",
    ] {
        assert!(
            metrics.contains(name),
            "{name} missing from the first scrape:\n{metrics}"
        );
    }

    let (code, stderr) = healthcheck(&env);
    assert_eq!(code, Some(0), "{stderr}");
    let elsewhere = format!("127.0.0.1:{}", free_port());
    let mut env = env.to_vec();
    env.retain(|(name, _)| *name != "VONAGE_SESSIONS__SERVER__LISTEN");
    env.push(("VONAGE_SESSIONS__SERVER__LISTEN", &elsewhere));
    let (code, stderr) = healthcheck(&env);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("http://{elsewhere}/readyz")),
        "{stderr}"
    );
}

fn healthcheck(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let output = binary(&["healthcheck", "--timeout-ms", "1000"], env)
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_wires_the_emulators_signed_callbacks_to_its_own_receiver() {
    let dev = Server::start(&["dev", "--listen", "127.0.0.1:0"], &[]);
    let banner = dev.wait_for("Try:");
    let receiver = format!("{}/vonage/callbacks", dev.url);
    assert!(banner.contains(&receiver), "{banner}");
    let http = client();
    let url = &dev.url;
    let (status, created) = send(http.post(format!("{url}/sessions"))).await;
    assert_eq!(status, 201, "{created}");
    let session_id = created["sessionId"].as_str().unwrap();
    let (status, body) = send(
        http.post(format!("{url}/_emulator/sessions/{session_id}/connections"))
            .json(&json!({"token": created["token"]})),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // The connectionCreated went to the service, signed with the shared secrets, and passed
    // its verification (204).
    let started = Instant::now();
    let log = loop {
        let (_, log) = send(http.get(format!("{url}/_emulator/callbacks"))).await;
        if !log["deliveries"].as_array().unwrap().is_empty() {
            break log;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{log}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(log["url"], receiver.as_str());
    assert_eq!(log["signed"], json!({"session": true, "archive": true}));
    let delivery = &log["deliveries"][0];
    assert_eq!(delivery["event"], "connectionCreated", "{log}");
    assert_eq!(delivery["signed"], true);
    assert_eq!(delivery["status"], 204, "{log}");
    // Neither secret is shown anywhere.
    let output = dev.output.lock().unwrap().clone();
    assert!(!output.contains("callback_secret\":\""), "{output}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_emulator_command_signs_callbacks_with_secrets_from_its_environment() {
    let secret = "emulator-session-secret-from-env";
    let emulator = Server::start(
        &[
            "emulator",
            "--listen",
            "127.0.0.1:0",
            "--callback-url",
            "http://127.0.0.1:9/vonage/callbacks",
        ],
        &[
            LEGACY[0],
            LEGACY[1],
            ("VONAGE_SESSION_CALLBACK_SECRET", secret),
        ],
    );
    let (status, log) = send(client().get(format!("{}/_emulator/callbacks", emulator.url))).await;
    assert_eq!(status, 200, "{log}");
    assert_eq!(log["url"], "http://127.0.0.1:9/vonage/callbacks");
    assert_eq!(log["signed"], json!({"session": true, "archive": false}));
    assert!(!log.to_string().contains(secret));
    assert!(!emulator.output.lock().unwrap().contains(secret));
}

#[test]
fn check_config_shows_callback_secrets_as_set_or_unset_never_their_value() {
    let secret = "a-session-callback-secret-value";
    let env = [
        ANONYMOUS,
        LEGACY[0],
        LEGACY[1],
        ("VONAGE_SESSION_CALLBACK_SECRET", secret),
    ];
    let output = binary(&["check-config"], &env).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("# callbacks: VONAGE_SESSION_CALLBACK_SECRET set"),
        "{stdout}"
    );
    assert!(
        stdout.contains("# callbacks: VONAGE_ARCHIVE_CALLBACK_SECRET unset"),
        "{stdout}"
    );
    assert!(!stdout.contains(secret), "{stdout}");
    // Too short a secret is named, not quoted.
    let short = "short";
    let output = binary(
        &["check-config"],
        &[
            ANONYMOUS,
            LEGACY[0],
            LEGACY[1],
            ("VONAGE_ARCHIVE_CALLBACK_SECRET", short),
        ],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_ne!(output.status.code(), Some(0));
    assert!(
        stderr.contains("VONAGE_ARCHIVE_CALLBACK_SECRET"),
        "{stderr}"
    );
    assert!(!stderr.contains("\"short\""), "{stderr}");
}
