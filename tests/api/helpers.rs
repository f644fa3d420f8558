//! Test helpers: spawn the real service (and the real emulator) on free loopback ports.

use std::collections::HashMap;
use std::io::{BufRead, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use figment::providers::{Format as _, Toml};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};
use vonage_sessions::app::App;
use vonage_sessions::config::{Config, Sources};
use vonage_sessions::emulator::{
    ApplicationKey, Emulator, EmulatorCredentials, Faults, LegacyProject,
};
use vonage_sessions::video::Credentials;

pub(crate) const API_KEY: &str = "123456";
pub(crate) const API_SECRET: &str = "1234567890abcdef1234567890abcdef1234567890";
pub(crate) const APPLICATION_ID: &str = "00000000-0000-4000-8000-000000000000";
pub(crate) const PRIVATE_KEY: &str = include_str!("../fixtures/application_private_key.pem");
pub(crate) const PUBLIC_KEY: &str = include_str!("../fixtures/application_public_key.pem");
/// A real session ID owned by API key 654321 (from the official SDKs' fixtures).
pub(crate) const FOREIGN_SESSION_ID: &str =
    "1_MX42NTQzMjF-flNhdCBNYXIgMTUgMTQ6NDI6MjMgUERUIDIwMTR-MC40OTAxMzAyNX4";

/// Which credentials the service under test holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Application,
    Legacy,
}

impl Kind {
    pub(crate) fn owner(self) -> &'static str {
        match self {
            Kind::Application => APPLICATION_ID,
            Kind::Legacy => API_KEY,
        }
    }

    /// A fresh REST auth header for Vonage, as the SDKs send it.
    pub(crate) fn header(self) -> (&'static str, String) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        match self {
            Kind::Legacy => {
                let claims =
                    json!({"iss": API_KEY, "ist": "project", "iat": now, "exp": now + 180});
                let key = EncodingKey::from_secret(API_SECRET.as_bytes());
                let jwt = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key);
                ("x-opentok-auth", jwt.unwrap())
            }
            Kind::Application => {
                let claims = json!({"application_id": APPLICATION_ID, "iat": now, "exp": now + 300, "jti": "j"});
                let key = EncodingKey::from_rsa_pem(PRIVATE_KEY.as_bytes()).unwrap();
                let jwt = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key);
                ("authorization", format!("Bearer {}", jwt.unwrap()))
            }
        }
    }

    pub(crate) fn env(self) -> HashMap<String, String> {
        let pairs: &[(&str, &str)] = match self {
            Kind::Application => &[
                ("VONAGE_APPLICATION_ID", APPLICATION_ID),
                ("VONAGE_PRIVATE_KEY", PRIVATE_KEY),
            ],
            Kind::Legacy => &[
                ("OPENTOK_API_KEY", API_KEY),
                ("OPENTOK_API_SECRET", API_SECRET),
            ],
        };
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }
}

/// Both kinds of test credentials, as an emulator accepts them.
pub(crate) fn test_credentials() -> EmulatorCredentials {
    EmulatorCredentials {
        legacy: Some(LegacyProject {
            api_key: API_KEY.into(),
            api_secret: SecretString::from(API_SECRET),
        }),
        application: Some(ApplicationKey {
            application_id: APPLICATION_ID.into(),
            public_key: DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).unwrap(),
        }),
    }
}

/// The emulator accepting both kinds of test credentials.
pub(crate) async fn spawn_emulator() -> String {
    spawn_emulator_with(test_credentials()).await
}

pub(crate) async fn spawn_emulator_with(credentials: EmulatorCredentials) -> String {
    let emulator = Emulator::bind(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        credentials,
        Faults::default(),
    )
    .await
    .unwrap();
    let url = emulator.base_url();
    tokio::spawn(emulator.run_until(std::future::pending()));
    url
}

/// An emulator under test, called directly (no service in front of it). Tests add the calls
/// they need in `impl TestEmulator` blocks of their own.
pub(crate) struct TestEmulator {
    pub(crate) url: String,
    pub(crate) http: reqwest::Client,
}

impl TestEmulator {
    /// An emulator knowing both test credentials, with `faults` from the start.
    pub(crate) async fn spawn(faults: Faults) -> Self {
        Self::bind(faults, None).await
    }

    /// An emulator without faults whose stopped archives become available after `delay`.
    pub(crate) async fn with_archive_delay(delay: Duration) -> Self {
        Self::bind(Faults::default(), Some(delay)).await
    }

    async fn bind(faults: Faults, archive_delay: Option<Duration>) -> Self {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut emulator = Emulator::bind(addr, test_credentials(), faults)
            .await
            .unwrap();
        if let Some(delay) = archive_delay {
            emulator = emulator.with_archive_delay(delay);
        }
        let url = emulator.base_url();
        tokio::spawn(emulator.run_until(std::future::pending()));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        Self { url, http }
    }
}

/// A running service and a client for it.
pub(crate) struct TestApp {
    pub(crate) url: String,
    pub(crate) upstream: String,
    pub(crate) client: reqwest::Client,
}

impl TestApp {
    /// The service with `kind` credentials against a fresh emulator.
    pub(crate) async fn spawn(kind: Kind) -> Self {
        let upstream = spawn_emulator().await;
        Self::spawn_against(kind, &upstream, "").await
    }

    /// The service against `upstream`, with extra TOML `overrides`. Rate limits are off unless
    /// the overrides turn them on: every test client is the same caller (127.0.0.1).
    pub(crate) async fn spawn_against(kind: Kind, upstream: &str, overrides: &str) -> Self {
        Self::spawn_with_env(kind, upstream, overrides, &[]).await
    }

    /// Like `spawn_against`, with `extra_env` visible to config loading (e.g. secrets).
    pub(crate) async fn spawn_with_env(
        kind: Kind,
        upstream: &str,
        overrides: &str,
        extra_env: &[(&str, &str)],
    ) -> Self {
        let config = test_config(kind, upstream, &[overrides], extra_env);
        let credentials = service_credentials(kind);
        let app = App::build(&config, credentials).await.unwrap();
        let url = format!("http://{}", app.local_addr());
        tokio::spawn(app.run_until(std::future::pending()));
        Self {
            url,
            upstream: upstream.to_owned(),
            client: client(),
        }
    }

    /// `GET path` on the service.
    pub(crate) async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
    }

    /// `GET path` on the service: the JSON answer.
    pub(crate) async fn get_json(&self, path: &str) -> Value {
        self.get(path).await.json().await.unwrap()
    }

    pub(crate) async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.url))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// `POST path` on the service, without a body.
    pub(crate) async fn post(&self, path: &str) -> reqwest::Response {
        self.send(Method::POST, path, None).await
    }

    /// `DELETE path` on the service.
    pub(crate) async fn delete(&self, path: &str) -> reqwest::Response {
        self.send(Method::DELETE, path, None).await
    }

    /// `method path` on the service, with `body` as JSON if there is one.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let request = self.client.request(method, format!("{}{path}", self.url));
        send_with(request, body).await
    }

    pub(crate) async fn create_session(&self, body: &Value) -> (u16, Value) {
        let response = self.post_json("/sessions", body).await;
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// Every request the emulator received.
    pub(crate) async fn upstream_requests(&self) -> Vec<Value> {
        self.emulator_list("requests").await
    }

    /// Every session the emulator created.
    pub(crate) async fn upstream_sessions(&self) -> Vec<Value> {
        self.emulator_list("sessions").await
    }

    async fn emulator_list(&self, what: &str) -> Vec<Value> {
        let url = format!("{}/_emulator/{what}", self.upstream);
        let response = self.client.get(url).send().await.unwrap();
        response.json().await.unwrap()
    }
}

/// A caller of the service at `url`: anonymous, or with a bearer `token`. Each call is made
/// with a fresh client.
#[derive(Clone, Copy)]
pub(crate) struct Caller<'a> {
    pub(crate) url: &'a str,
    pub(crate) token: Option<&'a str>,
}

impl<'a> Caller<'a> {
    pub(crate) fn new(url: &'a str, token: Option<&'a str>) -> Self {
        Self { url, token }
    }

    /// `verb path`, with `body` as JSON if there is one.
    pub(crate) async fn send(
        self,
        verb: Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut request = client().request(verb, format!("{}{path}", self.url));
        if let Some(token) = self.token {
            request = request.bearer_auth(token);
        }
        send_with(request, body).await
    }

    pub(crate) async fn get(self, path: &str) -> reqwest::Response {
        self.send(Method::GET, path, None).await
    }

    pub(crate) async fn delete(self, path: &str) -> reqwest::Response {
        self.send(Method::DELETE, path, None).await
    }

    pub(crate) async fn post(self, path: &str, body: Option<Value>) -> reqwest::Response {
        self.send(Method::POST, path, body).await
    }

    pub(crate) async fn put(self, path: &str, body: Value) -> reqwest::Response {
        self.send(Method::PUT, path, Some(body)).await
    }
}

/// Sends `request`, with `body` as JSON if there is one.
async fn send_with(mut request: reqwest::RequestBuilder, body: Option<Value>) -> reqwest::Response {
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

/// `GET url` (an emulator's control endpoint, usually) with a fresh client: the JSON answer.
pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(url: &str) -> T {
    json_answer(client().get(url)).await
}

/// `POST url` with the JSON `body`, with a fresh client: the JSON answer.
pub(crate) async fn post_for_json(url: &str, body: &Value) -> Value {
    json_answer(client().post(url).json(body)).await
}

async fn json_answer<T: serde::de::DeserializeOwned>(request: reqwest::RequestBuilder) -> T {
    request.send().await.unwrap().json().await.unwrap()
}

/// Sets the emulator's faults at `upstream` (its `PUT /_emulator/faults`): the one way the
/// tests inject faults into a running emulator.
pub(crate) async fn set_faults(upstream: &str, faults: Value) {
    let response = client()
        .put(format!("{upstream}/_emulator/faults"))
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "setting faults {faults}");
}

/// Clears the emulator's faults at `upstream`.
pub(crate) async fn clear_faults(upstream: &str) {
    let response = client()
        .delete(format!("{upstream}/_emulator/faults"))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "clearing faults");
}

/// The Prometheus text the service at `base` serves at `GET /metrics`.
pub(crate) async fn metrics_text(base: &str) -> String {
    client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Asserts a problem+json answer with `status` and `code`; returns the body.
pub(crate) async fn assert_problem(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let request_id = response
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status);
    assert!(
        body["title"].is_string() && body["detail"].is_string() && body["type"].is_string(),
        "{body}"
    );
    assert_eq!(
        body["requestId"].as_str(),
        request_id.as_deref(),
        "requestId matches x-request-id"
    );
    body
}

/// Decodes a JWT's claims without verifying (tests verify separately where it matters).
pub(crate) fn claims(jwt: &str) -> Value {
    jsonwebtoken::dangerous::insecure_decode::<Value>(jwt)
        .unwrap()
        .claims
}

/// The service's binary, as built for these tests.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_vonage-sessions");

/// The binary with `args`, run from the crate root with only `PATH` and `env` in its environment.
pub(crate) fn binary(args: &[&str], env: &[(&str, &str)]) -> Command {
    binary_under(&[], args, env)
}

/// Like `binary`, with the binary run by `wrapper` (e.g. `prlimit --nofile=64:64`).
pub(crate) fn binary_under(wrapper: &[&str], args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = match wrapper.split_first() {
        Some((program, rest)) => {
            let mut command = Command::new(program);
            command.args(rest).arg(BIN);
            command
        }
        None => Command::new(BIN),
    };
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    command
}

/// Reads a started binary's first stdout line, its `listening on` line: the line and the URL
/// it ends with (asserted to be one).
pub(crate) fn listening_line(stdout: &mut impl BufRead) -> (String, String) {
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let url = first
        .trim()
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_owned();
    assert!(
        url.starts_with("http://"),
        "expected a listening line, got {first:?}"
    );
    (first, url)
}

/// Appends what `stream` yields to `sink` on a thread of its own, until it ends.
pub(crate) fn collect(mut stream: impl Read + Send + 'static, sink: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = stream.read(&mut buffer) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buffer[..n]));
        }
    });
}

/// A real `redis-server` on a free loopback port, killed on drop. It can be stopped and started
/// again on the same port, to test outages.
pub(crate) struct RedisServer {
    pub(crate) port: u16,
    child: Option<std::process::Child>,
}

impl RedisServer {
    pub(crate) fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Self { port, child: None };
        server.restart();
        server
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// TOML overrides that point the service's rooms at this server.
    pub(crate) fn rooms_config(&self) -> String {
        format!(
            "[rooms]\nstore = \"redis\"\nredis_url = \"{}\"\n",
            self.url()
        )
    }

    pub(crate) fn restart(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server ({e}): run scripts/test, which installs it, or apt-get install redis-server")
            });
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start on port {}",
                self.port
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs a raw command with redis-cli-like semantics through the `redis` crate.
    pub(crate) async fn command(&self, args: &[&str]) -> redis::Value {
        let client = redis::Client::open(self.url()).unwrap();
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        let mut command = redis::cmd(args[0]);
        for arg in &args[1..] {
            command.arg(*arg);
        }
        command.query_async(&mut connection).await.unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The service's configuration for tests: `kind`'s credentials and `extra_env` in the
/// environment, listening on a free port, anonymous callers, rate limits off, `upstream` as
/// Vonage, then each of `overrides` merged in order.
pub(crate) fn test_config(
    kind: Kind,
    upstream: &str,
    overrides: &[&str],
    extra_env: &[(&str, &str)],
) -> Config {
    let mut env = kind.env();
    env.extend(
        extra_env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let lookup = |name: &str| env.get(name).cloned();
    let sources = Sources {
        config_dir: PathBuf::from("config"),
        env: &lookup,
        process_env_overrides: false,
    };
    let mut figment = Config::figment(&sources)
        .unwrap()
        .merge(Toml::string(&format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[auth]\nmode = \"anonymous\"\n[video]\napi_url = \"{upstream}\"\n\
             [rate_limits]\nenabled = false\n"
        )));
    for overrides in overrides {
        figment = figment.merge(Toml::string(overrides));
    }
    Config::from_figment(figment, &lookup).unwrap()
}

/// The service's Vonage credentials of `kind` (the emulator knows both).
pub(crate) fn service_credentials(kind: Kind) -> Credentials {
    match kind {
        Kind::Application => {
            Credentials::application(APPLICATION_ID, &SecretString::from(PRIVATE_KEY))
        }
        Kind::Legacy => Credentials::legacy(API_KEY, &SecretString::from(API_SECRET)),
    }
    .unwrap()
}
