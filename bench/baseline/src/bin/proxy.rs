//! The ceiling: a bare axum + reqwest proxy doing the job of `POST /sessions` with none of the
//! service's features (no middleware, no validation, no metrics, no logs, no retries, no limits).
//! It signs a fresh REST JWT per call, posts the routed-session form to the upstream, reads
//! `[0].session_id`, mints a client token with the same claim set as the service, and answers
//! `{apiKey, sessionId, token}`.
//!
//! Credentials from the same env vars as the service: `OPENTOK_API_KEY` + `OPENTOK_API_SECRET`
//! (HS256), or `VONAGE_APPLICATION_ID` + `VONAGE_PRIVATE_KEY_FILE` (RS256, with the key parsed
//! once into aws-lc-rs's `RsaKeyPair`); `VIDEO_API_URL` is the upstream.
//!
//! Usage: `proxy --listen 127.0.0.1:PORT`. Prints `proxy listening on http://ADDR` once bound.

use std::net::SocketAddr;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

enum Signer {
    Hs256 {
        api_key: String,
        key: EncodingKey,
    },
    Rs256 {
        application_id: String,
        key: RsaKeyPair,
    },
}

impl Signer {
    fn owner(&self) -> &str {
        match self {
            Signer::Hs256 { api_key, .. } => api_key,
            Signer::Rs256 { application_id, .. } => application_id,
        }
    }

    fn sign(&self, claims: &impl Serialize) -> String {
        match self {
            Signer::Hs256 { key, .. } => {
                jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, key).unwrap()
            }
            Signer::Rs256 { key, .. } => {
                let mut jwt = String::from("eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.");
                URL_SAFE_NO_PAD.encode_string(serde_json::to_vec(claims).unwrap(), &mut jwt);
                let mut signature = vec![0; key.public_modulus_len()];
                key.sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    jwt.as_bytes(),
                    &mut signature,
                )
                .unwrap();
                jwt.push('.');
                URL_SAFE_NO_PAD.encode_string(&signature, &mut jwt);
                jwt
            }
        }
    }
}

struct Proxy {
    http: reqwest::Client,
    create_url: String,
    signer: Signer,
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

#[derive(Deserialize)]
struct Created {
    session_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    api_key: String,
    session_id: String,
    token: String,
}

async fn create_session(
    State(proxy): State<Arc<Proxy>>,
    _body: Bytes,
) -> Result<(StatusCode, Json<Answer>), StatusCode> {
    let now = now();
    let jti = uuid::Uuid::new_v4().to_string();
    let request = proxy
        .http
        .post(&proxy.create_url)
        .header("accept", "application/json")
        .form(&[("archiveMode", "manual"), ("p2p.preference", "disabled")]);
    let request = match &proxy.signer {
        Signer::Hs256 { api_key, .. } => request.header(
            "x-opentok-auth",
            proxy.signer.sign(&serde_json::json!({
                "iss": api_key, "ist": "project", "iat": now, "exp": now + 180, "jti": jti,
            })),
        ),
        Signer::Rs256 { application_id, .. } => {
            request.bearer_auth(proxy.signer.sign(&serde_json::json!({
                "application_id": application_id, "iat": now, "exp": now + 180, "jti": jti,
            })))
        }
    };
    let response = request.send().await.map_err(|_| StatusCode::BAD_GATEWAY)?;
    if !response.status().is_success() {
        return Err(StatusCode::BAD_GATEWAY);
    }
    let body = response
        .bytes()
        .await
        .map_err(|_| StatusCode::BAD_GATEWAY)?;
    let created: Vec<Created> =
        serde_json::from_slice(&body).map_err(|_| StatusCode::BAD_GATEWAY)?;
    let session_id = created
        .into_iter()
        .next()
        .ok_or(StatusCode::BAD_GATEWAY)?
        .session_id;
    let exp = now + 86_400;
    let token = match &proxy.signer {
        Signer::Hs256 { api_key, .. } => proxy.signer.sign(&serde_json::json!({
            "iss": api_key, "ist": "project", "iat": now, "exp": exp,
            "jti": uuid::Uuid::new_v4().to_string(), "scope": "session.connect",
            "session_id": session_id, "role": "publisher", "nonce": 0.5,
            "create_time": now, "expire_time": exp, "initial_layout_class_list": "",
        })),
        Signer::Rs256 { application_id, .. } => proxy.signer.sign(&serde_json::json!({
            "application_id": application_id, "iat": now,
            "jti": uuid::Uuid::new_v4().to_string(), "exp": exp, "scope": "session.connect",
            "session_id": session_id, "role": "publisher", "initial_layout_class_list": "",
            "sub": "video", "acl": {"paths": {"/session/**": {}}},
        })),
    };
    Ok((
        StatusCode::CREATED,
        Json(Answer {
            api_key: proxy.signer.owner().to_owned(),
            session_id,
            token,
        }),
    ))
}

fn signer_from_env() -> Signer {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    if let (Some(key), Some(secret)) = (var("OPENTOK_API_KEY"), var("OPENTOK_API_SECRET")) {
        return Signer::Hs256 {
            api_key: key,
            key: EncodingKey::from_secret(secret.trim().as_bytes()),
        };
    }
    let (Some(application_id), Some(file)) =
        (var("VONAGE_APPLICATION_ID"), var("VONAGE_PRIVATE_KEY_FILE"))
    else {
        panic!(
            "set OPENTOK_API_KEY + OPENTOK_API_SECRET or VONAGE_APPLICATION_ID + VONAGE_PRIVATE_KEY_FILE"
        );
    };
    let pem = std::fs::read_to_string(file).expect("reading the private key");
    let der: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(der)
        .expect("PEM base64");
    Signer::Rs256 {
        application_id,
        key: RsaKeyPair::from_pkcs8(&der).expect("a PKCS#8 RSA key"),
    }
}

#[tokio::main]
async fn main() {
    let mut listen: SocketAddr = "127.0.0.1:8081".parse().unwrap();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match (flag.as_str(), it.next()) {
            ("--listen", Some(value)) => listen = value.parse().expect("--listen ADDR"),
            _ => panic!("usage: proxy --listen ADDR"),
        }
    }
    let base = std::env::var("VIDEO_API_URL").expect("VIDEO_API_URL");
    let proxy = Arc::new(Proxy {
        http: reqwest::Client::builder().build().unwrap(),
        create_url: format!("{}/session/create", base.trim_end_matches('/')),
        signer: signer_from_env(),
    });
    let app = Router::new()
        .route("/sessions", post(create_session))
        .with_state(proxy);
    let listener = tokio::net::TcpListener::bind(listen).await.expect("bind");
    println!(
        "proxy listening on http://{}",
        listener.local_addr().unwrap()
    );
    axum::serve(listener, app).await.unwrap();
}
