//! The real binary as users run it: start-up errors name the bad key and exit non-zero,
//! `healthcheck` and `check-config` work, SIGTERM drains and exits 0, and no secret or client
//! token ever reaches a log line, a response or a printed config.

use std::io::BufReader;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::SecretString;
use serde_json::{Value, json};
use vonage_sessions::video::Credentials;

use crate::helpers::{
    API_KEY, API_SECRET, APPLICATION_ID, BIN, FOREIGN_SESSION_ID, PRIVATE_KEY, binary_under,
    clear_faults, client, collect, listening_line, set_faults, spawn_emulator,
};

/// A running child process whose stdout and stderr are collected.
pub(crate) struct Running {
    child: Child,
    pub(crate) url: String,
    pub(crate) output: Arc<Mutex<String>>,
}

impl Running {
    pub(crate) fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_under(&[], args, env)
    }

    /// `serve` on a free port: anonymous callers, the legacy test credentials, `upstream` as
    /// Vonage, and `extra` in the environment too.
    pub(crate) fn serve_anonymous(upstream: &str, extra: &[(&str, &str)]) -> Self {
        let mut env = vec![
            ("VONAGE_SESSIONS__AUTH__MODE", "anonymous"),
            ("VIDEO_API_URL", upstream),
            LEGACY[0],
            LEGACY[1],
        ];
        env.extend_from_slice(extra);
        Self::start(&["serve", "--listen", "127.0.0.1:0"], &env)
    }

    /// Like `start`, with the binary run by `wrapper` (e.g. `prlimit --nofile=64:64`).
    pub(crate) fn start_under(wrapper: &[&str], args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = binary_under(wrapper, args, env)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let (first, url) = listening_line(&mut stdout);
        let output = Arc::new(Mutex::new(first));
        collect(stdout, output.clone());
        collect(child.stderr.take().unwrap(), output.clone());
        Self { child, url, output }
    }

    /// Everything written so far.
    pub(crate) fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Kills the process and waits for it.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub(crate) fn terminate(mut self) -> (i32, String) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let output = self.output.lock().unwrap().clone();
        (status.code().unwrap_or(-1), output)
    }
}

/// Runs the binary to completion; returns (exit code, stdout + stderr).
fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let output = Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

pub(crate) const LEGACY: [(&str, &str); 2] = [
    ("OPENTOK_API_KEY", API_KEY),
    ("OPENTOK_API_SECRET", API_SECRET),
];

#[test]
fn serve_refuses_to_start_with_a_clear_message_naming_the_bad_key() {
    let anonymous = ("VONAGE_SESSIONS__AUTH__MODE", "anonymous");
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (LEGACY.to_vec(), "auth.mode"),
        (vec![anonymous], "VONAGE_APPLICATION_ID"),
        (
            vec![
                anonymous,
                LEGACY[0],
                LEGACY[1],
                ("VONAGE_APPLICATION_ID", APPLICATION_ID),
            ],
            "exactly one",
        ),
        (
            vec![
                anonymous,
                ("VONAGE_APPLICATION_ID", APPLICATION_ID),
                ("VONAGE_PRIVATE_KEY", "garbage"),
            ],
            "VONAGE_PRIVATE_KEY",
        ),
        (vec![anonymous, LEGACY[0]], "OPENTOK_API_SECRET"),
        (
            vec![
                anonymous,
                LEGACY[0],
                LEGACY[1],
                ("VONAGE_SESSIONS__SERVER__LISTEN_PORT", "1"),
            ],
            "listen_port",
        ),
        (
            vec![
                anonymous,
                LEGACY[0],
                LEGACY[1],
                ("VONAGE_SESSIONS__TOKENS__MAX_TTL_SECONDS", "99999999"),
            ],
            "tokens.max_ttl_seconds",
        ),
        (
            vec![
                anonymous,
                LEGACY[0],
                LEGACY[1],
                ("VONAGE_SESSIONS_ENV", "staging"),
            ],
            "staging.toml",
        ),
    ];
    for (env, expected) in cases {
        let (code, output) = run(&["serve", "--listen", "127.0.0.1:0"], &env);
        assert_eq!(code, 78, "{env:?}: {output}");
        assert!(
            output.contains(expected),
            "{env:?} should mention {expected}: {output}"
        );
        assert!(!output.contains(API_SECRET), "the secret is never printed");
    }
}

#[test]
fn check_config_prints_the_effective_config_with_secrets_redacted() {
    let env = [
        ("VONAGE_SESSIONS__AUTH__MODE", "anonymous"),
        ("VONAGE_APPLICATION_ID", APPLICATION_ID),
        ("VONAGE_PRIVATE_KEY", PRIVATE_KEY),
    ];
    let (code, output) = run(&["check-config"], &env);
    assert_eq!(code, 0, "{output}");
    assert!(
        output.contains("configuration is valid") && output.contains(APPLICATION_ID),
        "{output}"
    );
    assert!(
        !output.contains("PRIVATE KEY") && !output.contains(private_key_body_line()),
        "{output}"
    );
    let (code, output) = run(
        &["check-config"],
        &[
            ("VONAGE_SESSIONS__AUTH__MODE", "anonymous"),
            LEGACY[0],
            LEGACY[1],
        ],
    );
    assert_eq!(code, 0, "{output}");
    assert!(!output.contains(API_SECRET), "{output}");
}

/// A line from the middle of the private key: if any of it is printed, the key leaked.
fn private_key_body_line() -> &'static str {
    PRIVATE_KEY.lines().nth(5).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn healthcheck_follows_readyz_and_sigterm_drains_in_flight_requests_then_exits_0() {
    let upstream = spawn_emulator().await;
    let service = Running::serve_anonymous(&upstream, &[]);
    let readyz = format!("{}/readyz", service.url);
    assert_eq!(run(&["healthcheck", "--url", &readyz], &[]).0, 0);

    // A request in flight when SIGTERM arrives still gets its answer.
    let http = client();
    set_faults(&upstream, json!({"latencyMs": 700})).await;
    let in_flight = tokio::spawn({
        let url = format!("{}/sessions", service.url);
        let http = http.clone();
        async move {
            http.post(url)
                .json(&json!({}))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (code, output) = tokio::task::spawn_blocking(move || service.terminate())
        .await
        .unwrap();
    assert_eq!(
        in_flight.await.unwrap().unwrap(),
        201,
        "the in-flight request completes"
    );
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("SIGTERM"), "{output}");
    assert_ne!(
        run(
            &["healthcheck", "--url", &readyz, "--timeout-ms", "500"],
            &[]
        )
        .0,
        0,
        "nothing listens any more"
    );
}

/// Drives one service through successes and every kind of failure, with debug logs on, and
/// checks that neither the secret nor any issued client token appears anywhere.
async fn assert_nothing_leaks(
    credential_env: &[(&str, &str)],
    secret_fragments: &[&str],
    upstream: &str,
) {
    let mut env = vec![
        ("VONAGE_SESSIONS__AUTH__MODE", "anonymous"),
        ("VIDEO_API_URL", upstream),
        ("RUST_LOG", "debug"),
        // Read (and unused) in anonymous mode: it must not leak either.
        ("VONAGE_SESSIONS_AUTH_HS256_SECRET", HS256_SECRET),
    ];
    env.extend_from_slice(credential_env);
    let service = Running::start(&["serve", "--listen", "127.0.0.1:0"], &env);
    let http = client();
    let mut bodies = String::new();
    let mut tokens = Vec::new();
    let requests: Vec<(&str, String, Value)> = vec![
        ("POST", "/sessions".into(), json!({})),
        (
            "POST",
            "/sessions".into(),
            json!({"token": {"role": "subscriber", "data": "d"}}),
        ),
        (
            "POST",
            "/sessions".into(),
            json!({"token": {"role": "moderator"}}),
        ),
        ("POST", "/sessions".into(), json!({"mediaMode": "bogus"})),
        (
            "POST",
            format!("/sessions/{FOREIGN_SESSION_ID}/tokens"),
            json!({}),
        ),
        ("GET", "/readyz".into(), Value::Null),
        ("GET", "/openapi.json".into(), Value::Null),
    ];
    for (method, path, body) in requests {
        let url = format!("{}{path}", service.url);
        let request = if method == "GET" {
            http.get(url)
        } else {
            http.post(url).json(&body)
        };
        let response = request.send().await.unwrap();
        let text = response.text().await.unwrap();
        if let Ok(value) = serde_json::from_str::<Value>(&text)
            && let Some(token) = value["token"].as_str()
        {
            tokens.push(token.to_owned());
            let sid = value["sessionId"].as_str().unwrap().to_owned();
            let more = http
                .post(format!("{}/sessions/{sid}/tokens", service.url))
                .send()
                .await
                .unwrap();
            let more: Value = more.json().await.unwrap();
            tokens.push(more["token"].as_str().unwrap().to_owned());
            continue; // the token itself is, of course, in its own response
        }
        bodies.push_str(&text);
    }
    // Vonage rejecting our credentials is logged as an error, without the secret.
    set_faults(upstream, json!({"errorRate": 1.0, "errorStatus": 403})).await;
    let rejected = http
        .post(format!("{}/sessions", service.url))
        .send()
        .await
        .unwrap();
    assert_eq!(rejected.status(), 502);
    let rejected_id = rejected.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    bodies.push_str(&rejected.text().await.unwrap());
    clear_faults(upstream).await;

    let (code, logs) = tokio::task::spawn_blocking(move || service.terminate())
        .await
        .unwrap();
    assert_eq!(code, 0);
    // The one line for that request: the rejection, its status, the request's own ID.
    let rejection: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("Vonage rejected our credentials"))
        .collect();
    assert!(!rejection.is_empty(), "the rejection is logged: {logs}");
    for line in rejection {
        assert!(
            line.contains("403") && line.contains(&rejected_id),
            "the rejection names its status and request {rejected_id}: {line}"
        );
    }
    assert!(tokens.len() >= 4, "tokens were issued");
    for fragment in secret_fragments.iter().chain([&HS256_SECRET]) {
        assert!(!logs.contains(fragment), "secret in logs: {fragment}");
        assert!(
            !bodies.contains(fragment),
            "secret in a response: {fragment}"
        );
    }
    for token in &tokens {
        assert!(!logs.contains(token.as_str()), "a client token was logged");
        let signature = token.rsplit('.').next().unwrap();
        assert!(
            !logs.contains(signature),
            "a client token's signature was logged"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_or_client_token_reaches_logs_or_responses_in_either_mode() {
    let upstream = spawn_emulator().await;
    assert_nothing_leaks(&LEGACY, &[API_SECRET], &upstream).await;
    let application = [
        ("VONAGE_APPLICATION_ID", APPLICATION_ID),
        ("VONAGE_PRIVATE_KEY", PRIVATE_KEY),
    ];
    let key_lines: Vec<&str> = PRIVATE_KEY
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert_nothing_leaks(&application, &key_lines, &upstream).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_emulator_command_serves_both_credential_kinds() {
    let key_file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/application_private_key.pem"
    );
    let env = [
        LEGACY[0],
        LEGACY[1],
        ("VONAGE_APPLICATION_ID", APPLICATION_ID),
        ("VONAGE_PRIVATE_KEY_FILE", key_file),
    ];
    let emulator = Running::start(&["emulator", "--listen", "127.0.0.1:0"], &env);
    let http = client();
    let now = jsonwebtoken::get_current_timestamp();
    for (credentials, owner) in [
        (
            Credentials::legacy(API_KEY, &SecretString::from(API_SECRET)).unwrap(),
            API_KEY,
        ),
        (
            Credentials::application(APPLICATION_ID, &SecretString::from(PRIVATE_KEY)).unwrap(),
            APPLICATION_ID,
        ),
    ] {
        let (name, value) = credentials.rest_auth_header(now).unwrap();
        let response = http
            .post(format!("{}/session/create", emulator.url))
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", credentials.kind());
        let body: Value = response.json().await.unwrap();
        let sid = body[0]["session_id"].as_str().unwrap();
        assert_eq!(
            vonage_sessions::video::session_id::decode(sid)
                .unwrap()
                .owner,
            owner
        );
    }
    let refused = http
        .post(format!("{}/session/create", emulator.url))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403, "no credentials, no session");
    let (code, _) = tokio::task::spawn_blocking(move || emulator.terminate())
        .await
        .unwrap();
    assert_eq!(code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_answers_every_accepted_request_and_exits_0() {
    let upstream = spawn_emulator().await;
    set_faults(&upstream, json!({"latencyMs": 300})).await;
    let service = Running::serve_anonymous(
        &upstream,
        &[
            ("VONAGE_SESSIONS__SERVER__DRAIN_DELAY_MS", "600"),
            // One client address sends all the load: per-caller limits would answer 429.
            ("VONAGE_SESSIONS__RATE_LIMITS__ENABLED", "false"),
        ],
    );
    let url = format!("{}/sessions", service.url);
    let clients: Vec<_> = (0..24)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                // One keep-alive client each, sending until the server stops taking requests.
                let http = client();
                let (mut answered, mut errors, mut closing) = (0, Vec::new(), false);
                // Refused or closed before a request was accepted: not an answer; stop.
                while let Ok(response) = http.post(&url).send().await {
                    closing |= response
                        .headers()
                        .get("connection")
                        .is_some_and(|v| v == "close");
                    if response.status() == 201 {
                        answered += 1;
                    } else {
                        errors.push(response.status().as_u16());
                    }
                }
                (answered, errors, closing)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (code, output) = tokio::task::spawn_blocking(move || service.terminate())
        .await
        .unwrap();
    let (mut answered, mut closing) = (0, false);
    for task in clients {
        let (count, errors, saw_close) = task.await.unwrap();
        assert!(
            errors.is_empty(),
            "no request is answered with an error: {errors:?}"
        );
        answered += count;
        closing |= saw_close;
    }
    assert_eq!(code, 0, "{output}");
    assert!(answered >= 48, "the load really ran: {answered}");
    assert!(closing, "responses carry Connection: close while draining");
}

pub(crate) const HS256_SECRET: &str = "process-test-hs256-secret-0123456789abcdef";

/// An HS256 caller token for the JWT-mode service of the test below.
pub(crate) fn caller_token(secret: &str, scope: &str) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"iss": "https://idp.test", "aud": "api", "sub": "u1", "exp": now + 600, "scope": scope}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn jwt_mode_never_leaks_the_hs256_secret_and_refuses_to_start_half_configured() {
    let jwt = [
        ("VONAGE_SESSIONS__AUTH__MODE", "jwt"),
        ("VONAGE_SESSIONS__AUTH__ISSUER", "https://idp.test"),
        ("VONAGE_SESSIONS__AUTH__AUDIENCE", "api"),
    ];
    // Start-up refusals name the key, and never print the secret.
    let secret = ("VONAGE_SESSIONS_AUTH_HS256_SECRET", HS256_SECRET);
    // All three jwt keys and the legacy credentials, then `extra`.
    let full_jwt = |extra: &[(&'static str, &'static str)]| {
        let mut env = jwt.to_vec();
        env.extend([LEGACY[0], LEGACY[1]]);
        env.extend_from_slice(extra);
        env
    };
    for (env, expected) in [
        (vec![jwt[0], LEGACY[0], LEGACY[1], secret], "auth.issuer"),
        (full_jwt(&[]), "auth.jwks_url"),
        (
            full_jwt(&[
                secret,
                ("VONAGE_SESSIONS__AUTH__JWKS_URL", "https://idp.test/jwks"),
            ]),
            "exactly one",
        ),
        (
            full_jwt(&[("VONAGE_SESSIONS_AUTH_HS256_SECRET", "short")]),
            "VONAGE_SESSIONS_AUTH_HS256_SECRET",
        ),
        (
            full_jwt(&[
                secret,
                (
                    "VONAGE_SESSIONS__CORS__ALLOWED_ORIGINS",
                    "[\"https://a.example/\"]",
                ),
            ]),
            "cors.allowed_origins",
        ),
    ] {
        let (code, output) = run(&["serve", "--listen", "127.0.0.1:0"], &env);
        assert_eq!(code, 78, "{env:?}: {output}");
        assert!(output.contains(expected), "{expected}: {output}");
        assert!(
            !output.contains(HS256_SECRET),
            "the secret is never printed"
        );
    }
    let check_env = full_jwt(&[secret]);
    let (code, printed) = run(&["check-config"], &check_env);
    assert_eq!(code, 0, "{printed}");
    assert!(
        printed.contains("mode = \"jwt\"") && !printed.contains(HS256_SECRET),
        "{printed}"
    );

    // A running service with debug logs, through good and bad tokens.
    let upstream = spawn_emulator().await;
    let mut env = check_env.clone();
    env.extend([("VIDEO_API_URL", upstream.as_str()), ("RUST_LOG", "debug")]);
    let service = Running::start(&["serve", "--listen", "127.0.0.1:0"], &env);
    let http = client();
    let mut bodies = String::new();
    for (token, expected) in [
        (Some(caller_token(HS256_SECRET, "video:create")), 201),
        (Some(caller_token(HS256_SECRET, "video:join")), 403),
        (
            Some(caller_token(
                "a-wrong-secret-a-wrong-secret-a-wrong",
                "video:create",
            )),
            401,
        ),
        (None, 401),
    ] {
        let mut request = http.post(format!("{}/sessions", service.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), expected);
        bodies.push_str(&format!("{:?}", response.headers()));
        bodies.push_str(&response.text().await.unwrap());
    }
    let (code, logs) = tokio::task::spawn_blocking(move || service.terminate())
        .await
        .unwrap();
    assert_eq!(code, 0);
    assert!(
        logs.contains("caller refused"),
        "refusals are logged: {logs}"
    );
    assert!(!logs.contains(HS256_SECRET), "secret in logs");
    assert!(!bodies.contains(HS256_SECRET), "secret in a response");
}
