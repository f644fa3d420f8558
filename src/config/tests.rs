//! Loading, layering and validating configuration, and reading credentials from the environment.

use super::*;
use std::collections::HashMap;

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

/// The repository's `config/` directory, reading the env through `env`.
fn sources(env: &dyn Fn(&str) -> Option<String>) -> Sources<'_> {
    Sources {
        config_dir: PathBuf::from("config"),
        env,
        process_env_overrides: false,
    }
}

fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::load(&sources(&env_of(pairs)))
}

/// As [`load`], with `toml` merged over the files as one more layer.
fn load_toml(toml: &str, pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env = env_of(pairs);
    let figment = Config::figment(&sources(&env))
        .unwrap()
        .merge(Toml::string(toml));
    Config::from_figment(figment, &env)
}

#[test]
fn defaults_load_without_credentials_or_files() {
    let config = load(&[]).unwrap();
    assert_eq!(config.server.body_limit_bytes, 16384);
    assert_eq!(config.auth.mode, AuthMode::Unset);
    assert!(config.credentials.is_none());
    assert_eq!(
        config.video_base_url(true).as_str(),
        "https://video.api.vonage.com/"
    );
    assert_eq!(
        config.video_base_url(false).as_str(),
        "https://api.opentok.com/"
    );
}

#[test]
fn production_overlay_applies() {
    let config = load(&[("VONAGE_SESSIONS_ENV", "production")]).unwrap();
    assert_eq!(config.log.format, LogFormat::Json);
    assert!(
        load(&[("VONAGE_SESSIONS_ENV", "nowhere")])
            .unwrap_err()
            .to_string()
            .contains("nowhere.toml")
    );
}

#[test]
fn unknown_keys_are_rejected_and_named() {
    let error = load_toml("[server]\nlisten_port = 1", &[])
        .unwrap_err()
        .to_string();
    assert!(error.contains("listen_port"), "{error}");
}

#[test]
fn credentials_pick_exactly_one_kind() {
    let legacy = load(&[
        ("OPENTOK_API_KEY", "123456"),
        ("OPENTOK_API_SECRET", " s3cret \n"),
    ])
    .unwrap();
    let Some(CredentialSecrets::Legacy {
        api_key,
        api_secret,
    }) = legacy.credentials
    else {
        panic!("legacy")
    };
    assert_eq!(api_key, "123456");
    assert_eq!(secrecy::ExposeSecret::expose_secret(&api_secret), "s3cret");

    let both = load(&[
        ("OPENTOK_API_KEY", "1"),
        ("OPENTOK_API_SECRET", "s"),
        ("VONAGE_APPLICATION_ID", "a"),
    ]);
    assert!(both.unwrap_err().to_string().contains("exactly one"));
    let half = load(&[("VONAGE_APPLICATION_ID", "a")])
        .unwrap_err()
        .to_string();
    assert!(half.starts_with("VONAGE_PRIVATE_KEY"), "{half}");
    let twice = load(&[
        ("OPENTOK_API_KEY", "1"),
        ("OPENTOK_API_SECRET", "s"),
        ("OPENTOK_API_SECRET_FILE", "/x"),
    ]);
    assert!(twice.unwrap_err().to_string().contains("not both"));
}

#[test]
fn secrets_are_read_from_files_and_never_debug_printed() {
    let config = load(&[
        ("VONAGE_APPLICATION_ID", "app"),
        (
            "VONAGE_PRIVATE_KEY_FILE",
            "tests/fixtures/application_private_key.pem",
        ),
    ])
    .unwrap();
    let printed = format!("{config:?}");
    assert!(printed.contains("app"));
    assert!(!printed.contains("PRIVATE KEY"), "{printed}");
    let missing = load(&[
        ("OPENTOK_API_KEY", "1"),
        ("OPENTOK_API_SECRET_FILE", "/nonexistent"),
    ]);
    assert!(
        missing
            .unwrap_err()
            .to_string()
            .starts_with("OPENTOK_API_SECRET_FILE")
    );
}

#[test]
fn bad_values_name_their_key() {
    for (pairs, key) in [
        (vec![("VIDEO_API_URL", "ftp://x")], "video.api_url"),
        (vec![("VIDEO_API_URL", "not a url")], "video.api_url"),
    ] {
        let error = load(&pairs).unwrap_err().to_string();
        assert!(error.starts_with(key), "{error}");
    }
}

#[test]
fn redis_rooms_need_a_redis_url_and_claims_outlive_vonage_calls() {
    let load_with = |toml: &str| load_toml(toml, &[]);
    let missing = load_with("[rooms]\nstore = \"redis\"")
        .unwrap_err()
        .to_string();
    assert!(missing.starts_with("rooms.redis_url"), "{missing}");
    let secret_url = "[rooms]\nstore = \"redis\"\nredis_url = \"http://user:hunter2@x\"";
    let wrong = load_with(secret_url).unwrap_err().to_string();
    assert!(
        wrong.starts_with("rooms.redis_url") && !wrong.contains("hunter2"),
        "{wrong}"
    );
    let ok =
        load_with("[rooms]\nstore = \"redis\"\nredis_url = \"redis://:hunter2@127.0.0.1:6379\"")
            .unwrap();
    assert!(
        !format!("{ok:?}").contains("hunter2"),
        "the Redis password is redacted"
    );
    let short = load_with("[rooms]\nclaim_ms = 1000")
        .unwrap_err()
        .to_string();
    assert!(short.starts_with("rooms.claim_ms"), "{short}");
}

const HS256_SECRET: &str = "0123456789abcdef0123456789abcdef-hs256";

#[test]
fn jwt_mode_needs_issuer_audience_and_exactly_one_key_source() {
    let jwt = "[auth]\nmode = \"jwt\"\nissuer = \"https://idp\"\naudience = \"api\"\n";
    let secret = [("VONAGE_SESSIONS_AUTH_HS256_SECRET", HS256_SECRET)];
    assert!(load_toml(jwt, &secret).is_ok());
    type Case<'a> = (String, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (jwt.into(), vec![], "auth.jwks_url"),
        (
            "[auth]\nmode = \"jwt\"\naudience = \"api\"".into(),
            secret.to_vec(),
            "auth.issuer",
        ),
        (
            "[auth]\nmode = \"jwt\"\nissuer = \"i\"".into(),
            secret.to_vec(),
            "auth.audience",
        ),
        (
            format!("{jwt}jwks_url = \"https://idp/jwks\""),
            secret.to_vec(),
            "auth.jwks_url",
        ),
        (
            format!("{jwt}jwks_url = \"http://idp.example.com/jwks\""),
            vec![],
            "auth.jwks_url",
        ),
        (
            format!("{jwt}public_key_file = \"/nonexistent.pem\""),
            vec![],
            "auth.public_key_file",
        ),
        (
            format!("{jwt}public_key_file = \"Cargo.toml\""),
            vec![],
            "auth.public_key_file",
        ),
        (
            jwt.into(),
            vec![("VONAGE_SESSIONS_AUTH_HS256_SECRET", "short")],
            "VONAGE_SESSIONS_AUTH_HS256_SECRET",
        ),
        (
            format!("{jwt}rsa_algorithms = [\"HS256\"]"),
            secret.to_vec(),
            "auth.rsa_algorithms",
        ),
        (
            format!("{jwt}hmac_algorithms = [\"RS256\"]"),
            secret.to_vec(),
            "auth.hmac_algorithms",
        ),
        (
            format!("{jwt}rsa_algorithms = [\"none\"]"),
            secret.to_vec(),
            "rsa_algorithms",
        ),
        (
            format!("{jwt}trusted_proxies = [\"10.0.0.0/99\"]"),
            secret.to_vec(),
            "auth.trusted_proxies",
        ),
        (
            format!("{jwt}anonymous_scopes = [\"video:everything\"]"),
            secret.to_vec(),
            "anonymous_scopes",
        ),
        (
            format!("{jwt}hs256_secret = \"x\""),
            secret.to_vec(),
            "hs256_secret",
        ),
    ];
    for (toml, env, key) in cases {
        let error = load_toml(&toml, &env).unwrap_err().to_string();
        assert!(error.contains(key), "{toml} {env:?}: {error}");
    }
    let key_file = format!("{jwt}public_key_file = \"tests/fixtures/idp_second_public_key.pem\"");
    let config = load_toml(&key_file, &[]).unwrap();
    assert!(config.auth.public_key_pem.unwrap().contains("PUBLIC KEY"));
    assert!(config.auth.public_key.is_some(), "parsed once, at load");
    let loopback = format!("{jwt}jwks_url = \"http://127.0.0.1:9/jwks\"");
    assert!(load_toml(&loopback, &[]).is_ok());
}

#[test]
fn the_hs256_secret_comes_from_env_or_a_file_and_is_never_debug_printed() {
    let jwt = "[auth]\nmode = \"jwt\"\nissuer = \"https://idp\"\naudience = \"api\"\n";
    let config = load_toml(jwt, &[("VONAGE_SESSIONS_AUTH_HS256_SECRET", HS256_SECRET)]).unwrap();
    let secret = config.auth.hs256_secret.as_ref().unwrap();
    assert_eq!(secrecy::ExposeSecret::expose_secret(secret), HS256_SECRET);
    assert!(!format!("{config:?}").contains(HS256_SECRET));
    assert!(!format!("{config:#?}").contains(HS256_SECRET));

    let file = std::env::temp_dir().join(format!("hs256-{}", uuid::Uuid::new_v4()));
    std::fs::write(&file, format!("  {HS256_SECRET}\n")).unwrap();
    let path = file.display().to_string();
    let config = load_toml(
        jwt,
        &[("VONAGE_SESSIONS_AUTH_HS256_SECRET_FILE", path.as_str())],
    )
    .unwrap();
    let secret = config.auth.hs256_secret.as_ref().unwrap();
    assert_eq!(secrecy::ExposeSecret::expose_secret(secret), HS256_SECRET);
    std::fs::remove_file(file).unwrap();
}

#[test]
fn rate_limits_and_cors_values_name_their_key() {
    let cases = [
        (
            "[rate_limits]\ncreate_burst = 0",
            "rate_limits.create_burst",
        ),
        (
            "[rate_limits]\njoin_per_minute = 0",
            "rate_limits.join_per_minute",
        ),
        ("[rate_limits]\nper_hour = 5", "per_hour"),
        (
            "[cors]\nallowed_origins = [\"https://a.example/\"]",
            "cors.allowed_origins",
        ),
        (
            "[cors]\nallowed_origins = [\"*\", \"https://a.example\"]",
            "cors.allowed_origins",
        ),
        (
            "[cors]\nallowed_origins = [\"*\"]\nallow_credentials = true",
            "cors.allow_credentials",
        ),
        ("[cors]\nallow_headers = []", "allow_headers"),
    ];
    for (toml, key) in cases {
        let error = load_toml(toml, &[]).unwrap_err().to_string();
        assert!(error.contains(key), "{toml}: {error}");
    }
    let ok = load_toml(
        "[cors]\nallowed_origins = [\"https://a.example\", \"http://localhost:*\"]\nallow_credentials = true",
        &[],
    )
    .unwrap();
    assert_eq!(ok.cors.allowed_origins.len(), 2);
    let defaults = load(&[]).unwrap();
    assert_eq!(
        (
            defaults.rate_limits.create_per_minute,
            defaults.rate_limits.create_burst
        ),
        (60, 10)
    );
    assert_eq!(
        (
            defaults.rate_limits.join_per_minute,
            defaults.rate_limits.join_burst
        ),
        (600, 60)
    );
    assert_eq!(defaults.auth.leeway_seconds, 60);
    assert!(defaults.cors.allowed_origins.is_empty());
}

#[test]
fn redis_sentinel_and_cluster_take_exactly_one_topology_and_hide_passwords() {
    let load_with = |toml: &str| load_toml(toml, &[]);
    let error = |toml: &str| load_with(toml).unwrap_err().to_string();
    let no_master = error(
        "[rooms]\nstore = \"redis\"\nredis_sentinels = [\"redis://:hunter2@127.0.0.1:26379\"]",
    );
    assert!(
        no_master.starts_with("rooms.redis_sentinel_master") && !no_master.contains("hunter2"),
        "{no_master}"
    );
    let both = error(
        "[rooms]\nstore = \"redis\"\nredis_url = \"redis://127.0.0.1\"\nredis_cluster_urls = [\"redis://127.0.0.1:7000\"]",
    );
    assert!(both.starts_with("rooms"), "{both}");
    let wrong =
        error("[rooms]\nstore = \"redis\"\nredis_cluster_urls = [\"http://127.0.0.1:7000\"]");
    assert!(wrong.starts_with("rooms.redis_cluster_urls"), "{wrong}");
    let sentinel = load_with(
        "[rooms]\nstore = \"redis\"\nredis_sentinels = [\"redis://:hunter2@127.0.0.1:26379\"]\nredis_sentinel_master = \"mymaster\"",
    )
    .unwrap();
    assert!(!format!("{sentinel:?}").contains("hunter2"));
    load_with("[rooms]\nstore = \"redis\"\nredis_cluster_urls = [\"redis://127.0.0.1:7000\", \"redis://127.0.0.1:7001\"]")
        .unwrap();
}

#[test]
fn rest_jwt_reuse_stays_inside_the_jwt_lifetime() {
    let load_with =
        |reuse: u64| load_toml(&format!("[video]\nrest_jwt_reuse_seconds = {reuse}"), &[]);
    assert_eq!(load_with(0).unwrap().video.rest_jwt_reuse_seconds, 0);
    assert_eq!(load_with(120).unwrap().video.rest_jwt_reuse_seconds, 120);
    let error = load_with(121).unwrap_err().to_string();
    assert!(error.starts_with("video.rest_jwt_reuse_seconds"), "{error}");
}
