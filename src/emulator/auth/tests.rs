//! Unit tests of auth-header selection, capture and verification with real signed JWTs.

use axum::http::HeaderValue;
use jsonwebtoken::{DecodingKey, EncodingKey, Header, encode};
use serde_json::json;

use super::*;

const API_KEY: &str = "123456";
const SECRET: &[u8] = b"1234567890abcdef1234567890abcdef1234567890";
const APP_ID: &str = "29f760f8-7ce1-46c9-ade3-f2dedee4ed5f";
const PRIVATE_PEM: &[u8] = include_bytes!("../../../tests/fixtures/application_private_key.pem");
const PUBLIC_PEM: &[u8] = include_bytes!("../../../tests/fixtures/application_public_key.pem");
const NOW: i64 = 1_739_538_894;

fn verifiers(legacy: bool, application: bool) -> Verifiers {
    Verifiers {
        legacy: legacy.then(|| Verifier {
            owner: API_KEY.into(),
            key: DecodingKey::from_secret(SECRET),
        }),
        application: application.then(|| Verifier {
            owner: APP_ID.into(),
            key: DecodingKey::from_rsa_pem(PUBLIC_PEM).expect("fixture public key"),
        }),
    }
}

fn hs256(claims: &Value, secret: &[u8]) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn rs256(claims: &Value) -> String {
    let key = EncodingKey::from_rsa_pem(PRIVATE_PEM).expect("fixture private key");
    encode(&Header::new(Algorithm::RS256), claims, &key).unwrap()
}

fn legacy_claims() -> Value {
    json!({"iss": API_KEY, "ist": "project", "iat": NOW, "exp": NOW + 180, "jti": "0.44"})
}

fn presented(kind: CredentialKind, token: String) -> Option<Presented> {
    Some(Presented { kind, token })
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, HeaderValue::from_str(value).unwrap());
    }
    map
}

#[test]
fn a_configured_header_wins_and_bearer_goes_first() {
    let both = headers(&[
        ("authorization", "Bearer app.jwt.x"),
        ("x-opentok-auth", "l.jwt.x"),
    ]);
    assert_eq!(
        presented_of(&both, &verifiers(true, true)),
        Some((CredentialKind::Application, "app.jwt.x".into()))
    );
    assert_eq!(
        presented_of(&both, &verifiers(true, false)),
        Some((CredentialKind::Legacy, "l.jwt.x".into()))
    );
    assert_eq!(
        presented_of(&both, &verifiers(false, false)),
        Some((CredentialKind::Application, "app.jwt.x".into()))
    );
    let basic = headers(&[("authorization", "Basic a2V5OnNlY3JldA==")]);
    assert_eq!(presented_of(&basic, &verifiers(true, true)), None);
    assert_eq!(
        presented_of(&headers(&[("x-opentok-auth", " ")]), &verifiers(true, true)),
        None
    );
    assert_eq!(
        presented_of(&HeaderMap::new(), &verifiers(true, true)),
        None
    );
}

fn presented_of(headers: &HeaderMap, verifiers: &Verifiers) -> Option<(CredentialKind, String)> {
    super::presented(headers, verifiers).map(|p| (p.kind, p.token))
}

#[test]
fn valid_tokens_authenticate_as_their_owner() {
    let all = verifiers(true, true);
    let legacy = presented(CredentialKind::Legacy, hs256(&legacy_claims(), SECRET));
    assert_eq!(
        verify(legacy.as_ref(), &all, NOW),
        Ok((CredentialKind::Legacy, API_KEY.into()))
    );
    // opentok shims add `ist`/`iss`; Java's SDK sends no `exp`. Both must pass.
    let app =
        json!({"application_id": APP_ID, "iat": NOW, "jti": "u", "ist": "project", "iss": "x"});
    let application = presented(CredentialKind::Application, rs256(&app));
    assert_eq!(
        verify(application.as_ref(), &all, NOW),
        Ok((CredentialKind::Application, APP_ID.into()))
    );
}

/// Changes one character in the middle of the signature, keeping it valid base64url.
fn tamper(token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    let index = bytes.len() - 20;
    bytes[index] = if bytes[index] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

#[test]
fn bad_tokens_fail_with_the_real_messages() {
    let all = verifiers(true, true);
    let app_claims = json!({"application_id": APP_ID, "iat": NOW, "exp": NOW + 900});
    let wrong_app = json!({"application_id": "someone-else", "iat": NOW});
    let cases = [
        (
            CredentialKind::Legacy,
            hs256(&legacy_claims(), b"wrong"),
            AuthError::Signature,
        ),
        (
            CredentialKind::Legacy,
            rs256(&legacy_claims()),
            AuthError::Algorithm,
        ),
        (
            CredentialKind::Legacy,
            "not-a-jwt".into(),
            AuthError::Format,
        ),
        (CredentialKind::Legacy, "a.b.c".into(), AuthError::Format),
        (
            CredentialKind::Application,
            hs256(&app_claims, SECRET),
            AuthError::Algorithm,
        ),
        (
            CredentialKind::Application,
            rs256(&wrong_app),
            AuthError::Application,
        ),
        (
            CredentialKind::Application,
            tamper(&rs256(&app_claims)),
            AuthError::Signature,
        ),
    ];
    for (kind, token, expected) in cases {
        let result = verify(presented(kind, token.clone()).as_ref(), &all, NOW);
        assert_eq!(result, Err(expected), "{kind:?} {token}");
    }
    let legacy_only = verifiers(true, false);
    let app = presented(CredentialKind::Application, rs256(&app_claims));
    assert_eq!(
        verify(app.as_ref(), &legacy_only, NOW),
        Err(AuthError::Missing)
    );
    assert_eq!(verify(None, &all, NOW), Err(AuthError::Missing));
}

#[test]
fn capture_decodes_unverified_tokens_but_not_junk() {
    let token = hs256(&legacy_claims(), b"wrong");
    let captured = capture(presented(CredentialKind::Legacy, token).as_ref());
    assert_eq!(captured.kind, Some(CredentialKind::Legacy));
    assert_eq!(captured.header, Some(json!({"alg": "HS256", "typ": "JWT"})));
    assert_eq!(captured.claims, Some(legacy_claims()));

    let junk = capture(presented(CredentialKind::Application, "a.b".into()).as_ref());
    assert_eq!(
        (junk.kind, junk.header, junk.claims),
        (Some(CredentialKind::Application), None, None)
    );
    assert_eq!(capture(None).kind, None);
}

proptest::proptest! {
    #[test]
    fn arbitrary_tokens_never_panic(token in "[A-Za-z0-9._~+/=-]{0,300}") {
        for kind in [CredentialKind::Legacy, CredentialKind::Application] {
            let presented = presented(kind, token.clone());
            let _ = capture(presented.as_ref());
            proptest::prop_assert!(verify(presented.as_ref(), &verifiers(true, true), NOW).is_err());
        }
    }
}
