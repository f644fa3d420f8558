//! Criterion micro-benchmarks of the per-request crypto and parsing: client-token minting (legacy
//! HS256, application RS256, legacy `T1==`), the REST JWT signed for every Vonage call, and
//! session-ID decoding (done on every `POST /sessions/{id}/tokens`).
//!
//! `cargo bench --bench tokens` (add `-- --quick` for a short run). The `jsonwebtoken_pem`
//! cases measure what `jsonwebtoken::encode` costs with an RSA `EncodingKey` (it re-parses the
//! DER key on every signature), the reason the service signs RS256 with a kept `RsaKeyPair`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use secrecy::SecretString;
use vonage_sessions::video::Credentials;
use vonage_sessions::video::session_id::{self, NewSessionId};
use vonage_sessions::video::token::{LegacyTokenFormat, Role, TokenGrant, mint};

const KEY_PEM: &str = include_str!("../tests/fixtures/application_private_key.pem");
const API_KEY: &str = "123456";
const API_SECRET: &str = "1234567890abcdef1234567890abcdef1234567890";
const APP_ID: &str = "00000000-0000-4000-8000-000000000000";
const NOW: u64 = 1_750_000_000;

fn session_of(owner: &str) -> String {
    session_id::encode(&NewSessionId {
        owner,
        location: "",
        created_ms: 1_750_000_000_000,
        random: "MTIzNDU2Nzg5MDEyMzQ1Njc4",
        relayed: false,
    })
}

fn grant(session_id: &str) -> TokenGrant<'_> {
    TokenGrant {
        session_id,
        role: Role::Publisher,
        ttl_seconds: 86_400,
        data: None,
        initial_layout_class_list: &[],
    }
}

fn client_tokens(c: &mut Criterion) {
    let legacy = Credentials::legacy(API_KEY, &SecretString::from(API_SECRET)).unwrap();
    let application = Credentials::application(APP_ID, &SecretString::from(KEY_PEM)).unwrap();
    let legacy_sid = session_of(API_KEY);
    let app_sid = session_of(APP_ID);
    let mut group = c.benchmark_group("client_token");
    group.bench_function("hs256", |b| {
        b.iter(|| {
            mint(
                &legacy,
                LegacyTokenFormat::Jwt,
                black_box(&grant(&legacy_sid)),
                NOW,
            )
        });
    });
    group.bench_function("t1", |b| {
        b.iter(|| {
            mint(
                &legacy,
                LegacyTokenFormat::T1,
                black_box(&grant(&legacy_sid)),
                NOW,
            )
        });
    });
    group.bench_function("rs256", |b| {
        b.iter(|| {
            mint(
                &application,
                LegacyTokenFormat::Jwt,
                black_box(&grant(&app_sid)),
                NOW,
            )
        });
    });
    group.finish();
}

fn rest_jwts(c: &mut Criterion) {
    let legacy = Credentials::legacy(API_KEY, &SecretString::from(API_SECRET)).unwrap();
    let application = Credentials::application(APP_ID, &SecretString::from(KEY_PEM)).unwrap();
    let mut group = c.benchmark_group("rest_jwt");
    group.bench_function("hs256", |b| {
        b.iter(|| legacy.rest_auth_header(black_box(NOW)));
    });
    group.bench_function("rs256_kept_key", |b| {
        b.iter(|| application.rest_auth_header(black_box(NOW)));
    });
    // The alternative the service avoids: jsonwebtoken's RS256 with an EncodingKey, which
    // parses the key again for every signature.
    let pem_key = jsonwebtoken::EncodingKey::from_rsa_pem(KEY_PEM.as_bytes()).unwrap();
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    let claims = serde_json::json!({
        "application_id": APP_ID, "iat": NOW, "exp": NOW + 180,
        "jti": "6b1ae5a0-3c1f-4b36-9a55-0e7d1f2b8c4d",
    });
    group.bench_function("rs256_jsonwebtoken_pem", |b| {
        b.iter(|| jsonwebtoken::encode(&header, black_box(&claims), &pem_key));
    });
    group.finish();
}

fn session_ids(c: &mut Criterion) {
    let sid = session_of(API_KEY);
    let fixture = "1_MX4xMjM0NTZ-flNhdCBNYXIgMTUgMTQ6NDI6MjMgUERUIDIwMTR-MC40OTAxMzAyNX4";
    let mut group = c.benchmark_group("session_id");
    group.bench_function("decode", |b| b.iter(|| session_id::decode(black_box(&sid))));
    group.bench_function("decode_sdk_fixture", |b| {
        b.iter(|| session_id::decode(black_box(fixture)));
    });
    group.bench_function("is_owned_by", |b| {
        b.iter(|| session_id::is_owned_by(black_box(&sid), black_box(API_KEY)));
    });
    group.finish();
}

criterion_group!(benches, client_tokens, rest_jwts, session_ids);
criterion_main!(benches);
