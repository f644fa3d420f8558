//! A stuck log consumer never stops the service: with stderr (where the logs go) a pipe nobody
//! reads, requests keep being answered, and the lines that cannot be written are dropped and
//! counted as `log_lines_dropped_total`.

use std::io::BufReader;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::helpers::{
    API_KEY, API_SECRET, binary, client, listening_line, metrics_text, spawn_emulator,
};

/// Kills the child when the test ends, however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn dropped_lines(metrics: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("log_lines_dropped_total "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no log_lines_dropped_total in /metrics:\n{metrics}"))
}

#[tokio::test]
async fn with_a_log_pipe_nobody_reads_requests_are_answered_and_dropped_lines_counted() {
    let upstream = spawn_emulator().await;
    let mut child = Killed(
        binary(
            &["serve", "--listen", "127.0.0.1:0"],
            &[
                ("VONAGE_SESSIONS_ENV", "production"),
                ("VONAGE_SESSIONS__SERVER__DRAIN_DELAY_MS", "0"),
                ("VONAGE_SESSIONS__AUTH__MODE", "anonymous"),
                ("VONAGE_SESSIONS__RATE_LIMITS__ENABLED", "false"),
                // A small queue, so that a few thousand requests overflow it.
                ("VONAGE_SESSIONS__LOG__BUFFERED_LINES", "64"),
                ("OPENTOK_API_KEY", API_KEY),
                ("OPENTOK_API_SECRET", API_SECRET),
                ("VIDEO_API_URL", upstream.as_str()),
            ],
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap(),
    );
    // The listening line is read from stdout; stderr, where every log line goes, never is. The
    // pipe stays open (held by `_stderr`), so writes to it block once its 64 KiB are full.
    let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
    let _stderr = child.0.stderr.take().unwrap();
    let (_, url) = listening_line(&mut stdout);

    let http = client();
    let (status, body) = {
        let response = http
            .post(format!("{url}/sessions"))
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
        (response.status(), response.text().await.unwrap())
    };
    assert_eq!(status, 201, "{body}");
    let session: serde_json::Value = serde_json::from_str(&body).unwrap();
    let tokens = format!(
        "{url}/sessions/{}/tokens",
        session["sessionId"].as_str().unwrap()
    );

    // Each answered request writes one access line (about 250 bytes): 3,000 of them are far
    // more than the pipe, the writer's buffer and the 64-line queue hold together.
    let started = Instant::now();
    let mut answered = 0;
    for batch in 0..60 {
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let (http, tokens) = (http.clone(), tokens.clone());
            calls.spawn(async move {
                tokio::time::timeout(
                    Duration::from_secs(10),
                    http.post(tokens).json(&serde_json::json!({})).send(),
                )
                .await
                .expect("a request stalled behind the stuck log pipe")
                .unwrap()
                .status()
            });
        }
        while let Some(status) = calls.join_next().await {
            assert_eq!(status.unwrap(), 201, "batch {batch}");
            answered += 1;
        }
    }
    assert_eq!(answered, 3000);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "3,000 requests took {:?}",
        started.elapsed()
    );

    let metrics = metrics_text(&url).await;
    let dropped = dropped_lines(&metrics);
    assert!(dropped > 0.0, "nothing dropped:\n{metrics}");
    assert!(dropped <= 3002.0, "more dropped than written: {dropped}");
    // Still answering, and the health probe too.
    let ready = http.get(format!("{url}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
}
