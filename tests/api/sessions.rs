//! `POST /sessions` against the emulator, for both credential kinds.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};
use vonage_sessions::video::session_id;

use crate::helpers::{
    API_SECRET, Kind, PUBLIC_KEY, TestApp, assert_problem, claims, spawn_emulator,
};
use crate::rest_jwt::NO_REUSE;

/// Verifies a client token's signature with the key the front end's Vonage would use.
fn verify_token(kind: Kind, token: &str) -> Value {
    let (algorithm, key) = match kind {
        Kind::Application => (
            Algorithm::RS256,
            DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).unwrap(),
        ),
        Kind::Legacy => (
            Algorithm::HS256,
            DecodingKey::from_secret(API_SECRET.as_bytes()),
        ),
    };
    let mut validation = Validation::new(algorithm);
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .expect("token verifies")
        .claims
}

#[tokio::test]
async fn create_session_returns_201_with_a_routed_session_and_a_publisher_token_for_both_kinds() {
    for kind in [Kind::Application, Kind::Legacy] {
        // Arrange
        let app = TestApp::spawn(kind).await;
        // Act
        let (status, body) = app.create_session(&json!({})).await;
        // Assert
        assert_eq!(status, 201, "{kind:?}: {body}");
        let sid = body["sessionId"].as_str().unwrap();
        assert_eq!(session_id::decode(sid).unwrap().owner, kind.owner());
        assert_eq!(body["applicationId"], kind.owner());
        assert_eq!(body["apiKey"], kind.owner());
        assert_eq!(body["role"], "publisher");
        assert_eq!(body["mediaMode"], "routed");
        assert_eq!(body["archiveMode"], "manual");
        assert_eq!(body["e2ee"], false);
        assert_eq!(body["location"], Value::Null);
        let token = verify_token(kind, body["token"].as_str().unwrap());
        assert_eq!(token["session_id"], sid);
        assert_eq!(token["role"], "publisher");
        let expires = time::OffsetDateTime::parse(
            body["expiresAt"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        assert_eq!(expires.unix_timestamp(), token["exp"].as_i64().unwrap());
        assert_eq!(
            token["exp"].as_i64().unwrap() - token["iat"].as_i64().unwrap(),
            86_400
        );

        let sessions = app.upstream_sessions().await;
        assert_eq!(sessions.len(), 1);
        assert_eq!(sessions[0]["mediaMode"], "routed");
    }
}

#[tokio::test]
async fn no_body_means_all_defaults() {
    let app = TestApp::spawn(Kind::Application).await;
    let response = app
        .client
        .post(format!("{}/sessions", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn upstream_request_carries_explicit_defaults_a_fresh_jwt_and_only_documented_fields() {
    for kind in [Kind::Application, Kind::Legacy] {
        // A fresh REST JWT per call (reuse is tested in rest_jwt.rs).
        let upstream = spawn_emulator().await;
        let app = TestApp::spawn_against(kind, &upstream, NO_REUSE).await;
        app.create_session(&json!({})).await;
        app.create_session(&json!({
            "archiveMode": "always", "location": "203.0.113.7", "archiveName": "standup",
            "archiveResolution": "1280x720"
        }))
        .await;
        let requests = app.upstream_requests().await;
        assert_eq!(requests.len(), 2, "{kind:?}");
        for request in &requests {
            assert_eq!(request["method"], "POST");
            assert_eq!(request["path"], "/session/create");
            assert_eq!(request["status"], 200);
            assert_eq!(request["headers"]["accept"], "application/json");
            assert!(
                request["headers"]["content-type"]
                    .as_str()
                    .unwrap()
                    .starts_with("application/x-www-form-urlencoded")
            );
            let claims = &request["auth"]["claims"];
            assert_eq!(
                claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
                180
            );
            match kind {
                Kind::Application => {
                    assert_eq!(request["auth"]["kind"], "application");
                    assert_eq!(claims["application_id"], kind.owner());
                }
                Kind::Legacy => {
                    assert_eq!(request["auth"]["kind"], "legacy");
                    assert_eq!(claims["iss"], kind.owner());
                    assert_eq!(claims["ist"], "project");
                }
            }
        }
        assert_ne!(
            requests[0]["auth"]["claims"]["jti"],
            requests[1]["auth"]["claims"]["jti"]
        );
        let form = |i: usize| -> Vec<(String, String)> {
            let mut pairs: Vec<(String, String)> = requests[i]["form"]
                .as_array()
                .unwrap()
                .iter()
                .map(|pair| {
                    (
                        pair[0].as_str().unwrap().to_owned(),
                        pair[1].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            pairs.sort();
            pairs
        };
        let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(
            form(0),
            pairs(&[("archiveMode", "manual"), ("p2p.preference", "disabled")])
        );
        assert_eq!(
            form(1),
            pairs(&[
                ("archiveMode", "always"),
                ("archiveName", "standup"),
                ("archiveResolution", "1280x720"),
                ("location", "203.0.113.7"),
                ("p2p.preference", "disabled"),
            ])
        );
    }
}

#[tokio::test]
async fn relayed_sessions_and_e2ee_are_created_as_asked() {
    let app = TestApp::spawn(Kind::Legacy).await;
    let (status, body) = app.create_session(&json!({"mediaMode": "relayed"})).await;
    assert_eq!(status, 201);
    assert_eq!(body["mediaMode"], "relayed");
    assert!(
        session_id::decode(body["sessionId"].as_str().unwrap())
            .unwrap()
            .relayed
    );
    let (status, body) = app
        .create_session(&json!({"e2ee": true, "location": "198.51.100.1"}))
        .await;
    assert_eq!(status, 201);
    assert_eq!(body["e2ee"], true);
    assert_eq!(body["location"], "198.51.100.1");
    let sessions = app.upstream_sessions().await;
    assert_eq!(sessions[0]["mediaMode"], "relayed");
    assert_eq!(sessions[1]["e2ee"], true);
}

#[tokio::test]
async fn token_options_shape_the_token() {
    let app = TestApp::spawn(Kind::Application).await;
    let (status, body) = app
        .create_session(&json!({"token": {
            "role": "subscriber", "data": "name=Ada", "ttlSeconds": 600, "initialLayoutClassList": ["focus", "big"]
        }}))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["role"], "subscriber");
    let token = claims(body["token"].as_str().unwrap());
    assert_eq!(token["role"], "subscriber");
    assert_eq!(token["connection_data"], "name=Ada");
    assert_eq!(token["initial_layout_class_list"], "focus big");
    assert_eq!(
        token["exp"].as_i64().unwrap() - token["iat"].as_i64().unwrap(),
        600
    );
}

#[tokio::test]
async fn anonymous_moderator_is_refused_before_any_session_is_created() {
    let app = TestApp::spawn(Kind::Application).await;
    let response = app
        .post_json("/sessions", &json!({"token": {"role": "moderator"}}))
        .await;
    assert_problem(response, 403, "role_not_allowed").await;
    assert!(app.upstream_sessions().await.is_empty());
}

#[tokio::test]
async fn ttl_is_capped_by_config() {
    let upstream = crate::helpers::spawn_emulator().await;
    let app =
        TestApp::spawn_against(Kind::Legacy, &upstream, "[tokens]\nmax_ttl_seconds = 3600").await;
    let (status, body) = app
        .create_session(&json!({"token": {"ttlSeconds": 7200}}))
        .await;
    assert_eq!(status, 201);
    let token = claims(body["token"].as_str().unwrap());
    assert_eq!(
        token["exp"].as_i64().unwrap() - token["iat"].as_i64().unwrap(),
        3600
    );
}
