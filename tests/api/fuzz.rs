//! Property-based fuzzing of everything the service parses: bodies (raw bytes and structured
//! JSON), path parameters and headers. Whatever arrives, the answer is a success or a
//! problem+json 4xx: never a 5xx, never a panic. Bounded: `PROPTEST_CASES` (default 256) per
//! property.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;

use crate::helpers::{Kind, TestApp};

fn runner() -> TestRunner {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

/// Arbitrary JSON, biased toward the field names and values the API knows.
fn json_value() -> impl Strategy<Value = Value> {
    let known = prop_oneof![
        Just("mediaMode"),
        Just("archiveMode"),
        Just("location"),
        Just("e2ee"),
        Just("archiveName"),
        Just("archiveResolution"),
        Just("token"),
        Just("role"),
        Just("data"),
        Just("ttlSeconds"),
        Just("initialLayoutClassList"),
        Just("session"),
        Just("routed"),
        Just("relayed"),
        Just("always"),
        Just("moderator"),
        Just("publisher"),
        Just("1280x720"),
        Just("203.0.113.7"),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        known.clone().prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![known.clone().prop_map(String::from), ".{0,12}"],
                    inner
                ),
                0..6
            )
            .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

fn path() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        ".{0,80}".prop_map(|s| url_escape(&s)),
        "1_[A-Za-z0-9_-]{0,200}",
        "[A-Za-z0-9._-]{0,140}",
    ];
    (
        prop_oneof![
            Just("sessions/{}/tokens"),
            Just("rooms/{}/join"),
            Just("rooms/{}"),
            Just("{}")
        ],
        segment,
    )
        .prop_map(|(template, segment)| format!("/{}", template.replace("{}", &segment)))
}

fn url_escape(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

async fn assert_answer(response: reqwest::Response, what: &str) -> Result<(), TestCaseError> {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    prop_assert!(status < 500, "{what}: status {status}");
    if status >= 400 {
        prop_assert_eq!(&content_type, "application/problem+json", "{}", what);
        if what.starts_with("HEAD") {
            return Ok(()); // no body to read
        }
        let body: Value = response
            .json()
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(body["code"].is_string(), "{}: {}", what, body);
    }
    Ok(())
}

#[test]
fn any_body_gets_a_success_or_a_problem_4xx() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = runtime.block_on(TestApp::spawn(Kind::Legacy));
    let strategy = (
        prop_oneof![
            Just("/sessions"),
            Just("/rooms/fuzz/join"),
            Just("/sessions/1_MX4xMjM0NTZ-/tokens")
        ],
        prop_oneof![
            json_value().prop_map(|v| v.to_string().into_bytes()),
            prop::collection::vec(any::<u8>(), 0..300),
        ],
    );
    runner()
        .run(&strategy, |(path, body)| {
            runtime.block_on(async {
                let response = app
                    .client
                    .post(format!("{}{path}", app.url))
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                assert_answer(
                    response,
                    &format!("POST {path} {:?}", String::from_utf8_lossy(&body)),
                )
                .await
            })
        })
        .unwrap();
}

#[test]
fn any_path_and_headers_get_a_success_or_a_problem_4xx() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = runtime.block_on(TestApp::spawn(Kind::Application));
    let header_value = "[ -~]{0,200}";
    let strategy = (
        prop_oneof![
            Just("GET"),
            Just("POST"),
            Just("DELETE"),
            Just("PUT"),
            Just("HEAD")
        ],
        path(),
        header_value,
        header_value,
    );
    runner()
        .run(&strategy, |(method, path, request_id, content_type)| {
            runtime.block_on(async {
                let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
                let mut request = app
                    .client
                    .request(method.clone(), format!("{}{path}", app.url));
                request = request.header("x-request-id", request_id.trim());
                request = request.header("content-type", content_type.trim());
                let response = request.body("{}").send().await.unwrap();
                assert_answer(response, &format!("{method} {path}")).await
            })
        })
        .unwrap();
}
