//! Every log line a request causes carries its request ID (and route, and with JWT auth the
//! caller's `sub`), in both log formats, so an operator can join a failure to its request.

use serde_json::{Value, json};

use crate::helpers::{client, set_faults, spawn_emulator};
use crate::process::{HS256_SECRET, LEGACY, Running, caller_token};

/// The lines logged while the service handled requests: after start-up, before shutdown.
fn request_lines(logs: &str) -> Vec<&str> {
    logs.lines()
        .skip_while(|line| !line.contains("service configured"))
        .skip(1)
        .take_while(|line| !line.contains("shutdown requested"))
        .filter(|line| !line.trim().is_empty())
        .collect()
}

/// Runs the service in JWT mode with `format` logs against an emulator answering every call
/// with 503, sends one verified request and one with a refused token, and returns the lines
/// each caused.
async fn failed_requests(format: &str) -> (Vec<String>, Vec<String>) {
    let upstream = spawn_emulator().await;
    let env = [
        LEGACY[0],
        LEGACY[1],
        ("VIDEO_API_URL", upstream.as_str()),
        ("VONAGE_SESSIONS__LOG__FORMAT", format),
        ("RUST_LOG", "info,vonage_sessions=debug"),
        ("VONAGE_SESSIONS__AUTH__MODE", "jwt"),
        ("VONAGE_SESSIONS__AUTH__ISSUER", "https://idp.test"),
        ("VONAGE_SESSIONS__AUTH__AUDIENCE", "api"),
        ("VONAGE_SESSIONS_AUTH_HS256_SECRET", HS256_SECRET),
    ];
    let http = client();
    set_faults(&upstream, json!({"errorRate": 1.0, "errorStatus": 503})).await;
    let service = Running::start(&["serve", "--listen", "127.0.0.1:0"], &env);
    // Start-up lines come on stderr, after the listening line on stdout: let them all arrive.
    for _ in 0..100 {
        if service.output().contains("service configured") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut by_request = Vec::new();
    for (request_id, token, status) in [
        (
            "failed-create-1",
            caller_token(HS256_SECRET, "video:create"),
            503,
        ),
        ("refused-token-1", "not.a.jwt".to_owned(), 401),
    ] {
        let before = service.output().len();
        let response = http
            .post(format!("{}/sessions", service.url))
            .header("x-request-id", request_id)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status);
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["requestId"], request_id, "{problem}");
        // The access line is the request's last.
        let lines = wait_for_line(&service, before, request_id).await;
        by_request.push(lines);
    }
    let (code, logs) = tokio::task::spawn_blocking(move || service.terminate())
        .await
        .unwrap();
    assert_eq!(code, 0, "{logs}");
    assert!(!request_lines(&logs).is_empty(), "{logs}");
    let refused = by_request.pop().unwrap();
    (by_request.pop().unwrap(), refused)
}

/// The lines logged since `offset` once the access line naming `request_id` is among them.
async fn wait_for_line(service: &Running, offset: usize, request_id: &str) -> Vec<String> {
    for _ in 0..100 {
        let output = service.output();
        let lines: Vec<String> = output[offset..]
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(str::to_owned)
            .collect();
        if lines
            .iter()
            .any(|line| line.contains("request") && line.contains("http.status"))
        {
            return lines;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("no access line for {request_id}: {}", service.output());
}

fn assert_every_line_names(lines: &[String], request_id: &str, what: &str) {
    assert!(
        lines.len() >= 2,
        "{what}: the failure and the access line: {lines:#?}"
    );
    for line in lines {
        assert!(
            line.contains(request_id),
            "{what}: a line without the request ID: {line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_json_line_of_a_failed_request_carries_its_request_id_route_and_caller() {
    let (failed, refused) = failed_requests("json").await;
    assert_every_line_names(&failed, "failed-create-1", "Vonage 503");
    assert_every_line_names(&refused, "refused-token-1", "refused JWT");
    let parsed: Vec<Value> = failed
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let vonage = parsed
        .iter()
        .find(|line| line["message"] == "Vonage refused the call")
        .unwrap_or_else(|| panic!("the Vonage failure is logged: {failed:#?}"));
    // The request span's fields are top-level members of each line (written once each),
    // the access line's too.
    for line in &parsed {
        assert_eq!(line["request_id"], "failed-create-1", "{line}");
        assert_eq!(line["route"], "/sessions", "{line}");
        assert_eq!(line["sub"], "u1", "the verified caller: {line}");
    }
    assert!(
        parsed
            .iter()
            .any(|line| line["message"] == "request" && line["http.status"] == 503),
        "the access line: {failed:#?}"
    );
    assert!(vonage["vonage.status"] == 503, "{vonage}");
    assert!(
        refused.iter().any(|line| line.contains("caller refused")),
        "the refusal is logged: {refused:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_pretty_line_of_a_failed_request_carries_its_request_id() {
    let (failed, refused) = failed_requests("pretty").await;
    assert_every_line_names(&failed, "failed-create-1", "Vonage 503");
    assert_every_line_names(&refused, "refused-token-1", "refused JWT");
    let vonage = failed
        .iter()
        .find(|line| line.contains("Vonage refused the call"))
        .unwrap_or_else(|| panic!("the Vonage failure is logged: {failed:#?}"));
    assert!(
        vonage.contains("sub=\"u1\"") || vonage.contains("sub=u1"),
        "{vonage}"
    );
    assert!(vonage.contains("/sessions"), "{vonage}");
}
