//! A fast fake Vonage Video API for the benchmark: answers `POST …/session/create` with the real
//! API's one-element JSON array and a session ID in the real format, owned by the credential the
//! caller used (`X-OPENTOK-AUTH` → the legacy API key, `Authorization: Bearer` → the
//! application ID), after `--latency-ms` of added latency. It checks nothing (no JWT
//! verification, no request log), so that the upstream costs the system under test nothing but
//! the HTTP exchange; the emulator (`vonage-sessions emulator`) is the faithful one.
//!
//! Usage: `upstream --listen 127.0.0.1:PORT [--latency-ms N] [--api-key K] [--application-id A]`.
//! Prints `upstream listening on http://ADDR` once bound.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

struct Args {
    listen: SocketAddr,
    latency: Duration,
    api_key: String,
    application_id: String,
}

fn args() -> Args {
    let mut args = Args {
        listen: "127.0.0.1:9090".parse().unwrap(),
        latency: Duration::ZERO,
        api_key: "123456".into(),
        application_id: "00000000-0000-4000-8000-000000000000".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => args.listen = value.parse().expect("--listen ADDR"),
            "--latency-ms" => {
                args.latency = Duration::from_millis(value.parse().expect("--latency-ms N"));
            }
            "--api-key" => args.api_key = value,
            "--application-id" => args.application_id = value,
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

/// `1_` + base64url(`1~owner~~epoch_ms~random~~~`): the format of current real session IDs
/// (what `vonage_sessions::video::session_id::encode` makes for a routed session).
fn session_id(owner: &str) -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let plain = format!("1~{owner}~~{ms}~MTIzNDU2Nzg5MDEyMzQ1Njc4OTAx~~~");
    format!("1_{}", URL_SAFE_NO_PAD.encode(plain))
}

/// The real API's answer, with fixed values (as the emulator's, minus the per-call work).
fn created_body(owner: &str) -> Bytes {
    let body = serde_json::json!([{
        "session_id": session_id(owner),
        "project_id": owner,
        "partner_id": owner,
        "create_dt": "Fri Feb 14 13:14:54 UTC 2025",
        "media_server_url": "",
        "session_status": null,
        "status_invalid": null,
        "media_server_hostname": null,
        "messaging_server_url": null,
        "messaging_url": null,
        "symphony_address": null,
        "properties": null,
        "ice_server": null,
        "session_segment_id": "6b1ae5a0-3c1f-4b36-9a55-0e7d1f2b8c4d",
        "ice_servers": null,
        "ice_credential_expiration": 86100,
    }]);
    Bytes::from(serde_json::to_vec(&body).unwrap())
}

struct Replies {
    latency: Duration,
    legacy: Bytes,
    application: Bytes,
}

async fn handle(
    replies: &'static Replies,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let is_create =
        request.method() == Method::POST && request.uri().path().ends_with("/session/create");
    let bearer = request.headers().contains_key(hyper::header::AUTHORIZATION);
    // Read the form like a real server does, then answer.
    let _ = request.into_body().collect().await;
    if !replies.latency.is_zero() {
        tokio::time::sleep(replies.latency).await;
    }
    let mut response = if is_create {
        let body = if bearer {
            replies.application.clone()
        } else {
            replies.legacy.clone()
        };
        Response::new(Full::new(body))
    } else {
        let mut response = Response::new(Full::new(Bytes::from_static(
            br#"{"code":-1,"message":"Not found","description":"Not found"}"#,
        )));
        *response.status_mut() = StatusCode::NOT_FOUND;
        response
    };
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

fn main() {
    let args = args();
    let replies: &'static Replies = Box::leak(Box::new(Replies {
        latency: args.latency,
        legacy: created_body(&args.api_key),
        application: created_body(&args.application_id),
    }));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let listener = TcpListener::bind(args.listen).await.expect("bind");
        println!(
            "upstream listening on http://{}",
            listener.local_addr().unwrap()
        );
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|request| handle(replies, request));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}
