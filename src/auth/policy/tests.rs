//! The caller policy: authentication, scopes, roles, identity binding and rate limits.

use super::*;
use crate::config::Config;

fn config(toml: &str) -> Config {
    use figment::providers::{Format as _, Toml};
    let env = |_: &str| None;
    let sources = crate::config::Sources {
        config_dir: std::path::PathBuf::from("config"),
        env: &env,
        process_env_overrides: false,
    };
    let figment = Config::figment(&sources)
        .unwrap()
        .merge(Toml::string(
            "[auth]\nmode = \"anonymous\"\n[tokens]\nmax_ttl_seconds = 604800\n",
        ))
        .merge(Toml::string(toml));
    Config::from_figment(figment, &env).unwrap()
}

fn anonymous(policy: &AuthPolicy) -> Caller {
    Caller {
        identity: None,
        scopes: policy.0.anonymous_scopes,
        allowed_roles: policy.0.anonymous_roles.clone(),
        key: CallerKey::from_ip([127, 0, 0, 1].into()),
    }
}

fn policy() -> (AuthPolicy, Caller) {
    let policy = AuthPolicy::new(&config("")).unwrap();
    let caller = anonymous(&policy);
    (policy, caller)
}

fn jwt_caller(policy: &AuthPolicy, scopes: &[Scope], name: Option<&str>) -> Caller {
    let scopes: Scopes = scopes.iter().copied().collect();
    Caller {
        identity: Some(Arc::new(Identity {
            subject: "user-42".into(),
            name: name.map(str::to_owned),
        })),
        scopes,
        allowed_roles: if scopes.contains(Scope::Moderate) {
            policy.0.jwt_moderator_roles.clone()
        } else {
            policy.0.jwt_roles.clone()
        },
        key: CallerKey::Subject("user-42".into()),
    }
}

#[tokio::test]
async fn anonymous_callers_get_create_and_join_by_default_and_the_grant_is_configurable() {
    let (policy, caller) = policy();
    assert!(policy.authorize(&caller, Scope::Create).await.is_ok());
    assert!(policy.authorize(&caller, Scope::Join).await.is_ok());
    assert!(matches!(
        policy.authorize(&caller, Scope::Admin).await,
        Err(Refusal::MissingScope(Scope::Admin))
    ));
    let narrow = AuthPolicy::new(&config(
        "[auth]\nanonymous_scopes = [\"video:join\", \"video:moderate\"]",
    ))
    .unwrap();
    let caller = anonymous(&narrow);
    assert!(narrow.authorize(&caller, Scope::Create).await.is_err());
    let moderator = TokenRequest {
        role: Some(Role::Moderator),
        ..Default::default()
    };
    assert!(
        narrow.grant(&caller, &moderator, "").is_ok(),
        "video:moderate in the anonymous grant allows moderator tokens"
    );
}

#[test]
fn jwt_callers_need_video_moderate_for_moderator_tokens_and_their_identity_is_bound() {
    let (policy, _) = policy();
    let moderator = TokenRequest {
        role: Some(Role::Moderator),
        data: Some("{\"sub\":\"admin\"}".into()),
        ..Default::default()
    };
    let plain = jwt_caller(&policy, &[Scope::Join], Some("Ada"));
    assert!(matches!(
        policy.grant(&plain, &moderator, ""),
        Err(AuthError::RoleNotAllowed(Role::Moderator))
    ));
    let moderating = jwt_caller(&policy, &[Scope::Join, Scope::Moderate], Some("Ada"));
    let grant = policy.grant(&moderating, &moderator, "").unwrap();
    assert_eq!(
        grant.data.as_deref(),
        Some(r#"{"sub":"user-42","name":"Ada","data":"{\"sub\":\"admin\"}"}"#)
    );
    let anonymous_name = jwt_caller(&policy, &[Scope::Join], None);
    let grant = policy
        .grant(&anonymous_name, &TokenRequest::default(), "")
        .unwrap();
    assert_eq!(
        grant.data.as_deref(),
        Some(r#"{"sub":"user-42","name":null,"data":null}"#)
    );
    let long = TokenRequest {
        data: Some("x".repeat(990)),
        ..Default::default()
    };
    let Err(AuthError::InvalidRequest { field, .. }) = policy.grant(&plain, &long, "token") else {
        panic!("the bound data is over 1000 characters")
    };
    assert_eq!(field, "token.data");
}

#[test]
fn bearer_tokens_are_read_from_one_authorization_header() {
    let parts = |values: &[&str]| {
        let mut request = axum::http::Request::builder();
        for value in values {
            request = request.header("authorization", *value);
        }
        request.body(()).unwrap().into_parts().0
    };
    assert!(matches!(
        bearer_token(&parts(&["Bearer abc.def.ghi"])),
        BearerToken::Present("abc.def.ghi")
    ));
    assert!(matches!(
        bearer_token(&parts(&["bearer  abc "])),
        BearerToken::Present("abc")
    ));
    assert!(matches!(bearer_token(&parts(&[])), BearerToken::Absent));
    assert!(matches!(
        bearer_token(&parts(&["Basic dXNlcjpwYXNz"])),
        BearerToken::Absent
    ));
    assert!(matches!(
        bearer_token(&parts(&["Bearer"])),
        BearerToken::Malformed
    ));
    assert!(matches!(
        bearer_token(&parts(&["Bearer a", "Bearer b"])),
        BearerToken::Malformed
    ));
}

#[test]
fn defaults_are_a_publisher_for_a_day() {
    let (policy, caller) = policy();
    let grant = policy
        .grant(&caller, &TokenRequest::default(), "token")
        .unwrap();
    assert_eq!(grant.role, Role::Publisher);
    assert_eq!(grant.ttl_seconds, 86_400);
}

#[test]
fn anonymous_callers_cannot_be_moderators() {
    let (policy, caller) = policy();
    let request = TokenRequest {
        role: Some(Role::Moderator),
        ..Default::default()
    };
    assert!(matches!(
        policy.grant(&caller, &request, "token"),
        Err(AuthError::RoleNotAllowed(Role::Moderator))
    ));
}

#[test]
fn ttl_is_capped_by_config_and_bounded_by_vonage() {
    let (policy, caller) = policy();
    let ask = |ttl| TokenRequest {
        ttl_seconds: Some(ttl),
        ..Default::default()
    };
    assert_eq!(
        policy
            .grant(&caller, &ask(60), "token")
            .unwrap()
            .ttl_seconds,
        60
    );
    assert_eq!(
        policy
            .grant(&caller, &ask(30 * 86_400), "token")
            .unwrap()
            .ttl_seconds,
        7 * 86_400
    );
    for bad in [0, 30 * 86_400 + 1] {
        let Err(AuthError::InvalidRequest { field, .. }) =
            policy.grant(&caller, &ask(bad), "token")
        else {
            panic!("{bad} must be refused")
        };
        assert_eq!(field, "token.ttlSeconds");
    }
}

#[test]
fn data_and_layout_limits_name_the_field() {
    let (policy, caller) = policy();
    let long_data = TokenRequest {
        data: Some("x".repeat(1001)),
        ..Default::default()
    };
    let ok_data = TokenRequest {
        data: Some("é".repeat(1000)),
        ..Default::default()
    };
    let spaced = TokenRequest {
        initial_layout_class_list: Some(vec!["a b".into()]),
        ..Default::default()
    };
    let long_layout = TokenRequest {
        initial_layout_class_list: Some(vec!["x".repeat(600); 2]),
        ..Default::default()
    };
    assert!(policy.grant(&caller, &ok_data, "").is_ok());
    for (request, expected) in [
        (long_data, "data"),
        (spaced, "initialLayoutClassList"),
        (long_layout, "initialLayoutClassList"),
    ] {
        let Err(AuthError::InvalidRequest { field, .. }) = policy.grant(&caller, &request, "")
        else {
            panic!("{request:?} must be refused")
        };
        assert_eq!(field, expected);
    }
}
