//! The bodies of the binary's commands: `serve`, `dev`, `emulator`, `healthcheck`,
//! `check-config`, the emulator's credentials and the shutdown signal.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::RsaKeyPair;
use jsonwebtoken::DecodingKey;
use secrecy::SecretString;
use vonage_sessions::app::App;
use vonage_sessions::auth::Scope;
use vonage_sessions::config::{
    AuthMode, Config, ConfigError, LogFormat, REDACTED, Sources, emulator_secrets, set_by_user,
};
use vonage_sessions::emulator::{
    ApplicationKey, CallbackSettings, Emulator, EmulatorCredentials, Faults, LegacyProject,
};
use vonage_sessions::load::load_for_serve;
use vonage_sessions::telemetry;
use vonage_sessions::video::{Credentials, Role};

use crate::output;
use crate::{EXIT_CONFIG, EmulatorArgs, HealthcheckArgs, ListenArgs};

use crate::example_page::ExamplePage;

/// The emulator's credentials from env, deriving the application's public key from its private
/// key unless `public_key` names a PEM file.
pub(crate) fn emulator_credentials(
    env: &dyn Fn(&str) -> Option<String>,
    public_key: Option<&Path>,
) -> anyhow::Result<EmulatorCredentials> {
    let secrets = emulator_secrets(env)?;
    let legacy = secrets.legacy.map(|(api_key, api_secret)| LegacyProject {
        api_key,
        api_secret,
    });
    let application = match secrets.application {
        None => None,
        Some((application_id, private_key)) => {
            let public_key = match (public_key, private_key) {
                (Some(path), _) => {
                    let pem = std::fs::read(path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    DecodingKey::from_rsa_pem(&pem)
                        .with_context(|| format!("{} is not an RSA public key", path.display()))?
                }
                (None, Some(private_key)) => {
                    let credentials = Credentials::application(&application_id, &private_key)
                        .map_err(|e| ConfigError::Invalid {
                            key: "VONAGE_PRIVATE_KEY".into(),
                            message: e.to_string(),
                        })?;
                    DecodingKey::from_rsa_der(&credentials.public_key_der().unwrap_or_default())
                }
                (None, None) => {
                    return Err(ConfigError::Invalid {
                        key: "VONAGE_PRIVATE_KEY".into(),
                        message: "the emulator needs VONAGE_PRIVATE_KEY(_FILE) or --public-key with VONAGE_APPLICATION_ID".into(),
                    }
                    .into());
                }
            };
            Some(ApplicationKey {
                application_id,
                public_key,
            })
        }
    };
    if legacy.is_none() && application.is_none() {
        return Err(ConfigError::Invalid {
            key: "OPENTOK_API_KEY".into(),
            message: "the emulator needs credentials to accept: OPENTOK_API_KEY + OPENTOK_API_SECRET and/or \
                      VONAGE_APPLICATION_ID + VONAGE_PRIVATE_KEY (or --public-key)"
                .into(),
        }
        .into());
    }
    Ok(EmulatorCredentials {
        legacy,
        application,
    })
}

/// `dev`: an in-process emulator with throwaway credentials, anonymous callers who may try
/// everything (every scope, moderator tokens), no rate limits, pretty logs, and the emulator's
/// `/_emulator/*` control endpoints on the same port. Settings given in an overlay file or
/// `VONAGE_SESSIONS__*` env vars win over these dev defaults. See docs/dev-mode.md.
pub(crate) async fn dev(
    sources: &Sources<'_>,
    listen: SocketAddr,
    legacy: bool,
    example_page: Option<(PathBuf, SocketAddr)>,
) -> anyhow::Result<()> {
    // Real credentials in the environment are ignored on purpose: dev never calls Vonage.
    let no_env = |_: &str| None;
    let figment = Config::figment(sources)?;
    let mut config = Config::from_figment(figment.clone(), &no_env)?;
    config.server.listen = listen;
    config.auth.mode = AuthMode::Anonymous;
    if !set_by_user(&figment, "auth.anonymous_scopes") {
        config.auth.anonymous_scopes = DEV_SCOPES.to_vec();
    }
    if !set_by_user(&figment, "auth.anonymous_roles") {
        config.auth.anonymous_roles = DEV_ROLES.to_vec();
    }
    if !set_by_user(&figment, "rate_limits.enabled") {
        config.rate_limits.enabled = false;
    }
    // Front-end dev servers run on localhost, on whatever port.
    if config.cors.allowed_origins.is_empty() {
        config.cors.allowed_origins =
            vec!["http://localhost:*".into(), "http://127.0.0.1:*".into()];
    }
    let example_page = match example_page {
        Some((dir, listen)) => Some(ExamplePage::bind(dir, listen).await?),
        None => None,
    };
    if let Some(page) = &example_page {
        let origin = page.origin()?;
        let origins = &mut config.cors.allowed_origins;
        if !origins.iter().any(|o| o == "*" || *o == origin) {
            origins.push(origin);
        }
    }
    config.log.format = LogFormat::Pretty;
    let _log = telemetry::init(&config.log);

    let (credentials, emulator_credentials) = throwaway_credentials(legacy)?;
    // Both sides share fresh callback secrets, so the emulator's signed callbacks verify.
    let session_secret = throwaway_secret();
    let archive_secret = throwaway_secret();
    config.callbacks.session_secret = Some(session_secret.clone());
    config.callbacks.archive_secret = Some(archive_secret.clone());
    let emulator = Emulator::bind_with_callbacks(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        emulator_credentials,
        Faults::default(),
        CallbackSettings {
            url: None,
            session_secret: Some(session_secret),
            archive_secret: Some(archive_secret),
        },
    )
    .await
    .context("binding the embedded emulator")?;
    let emulator_url = emulator.base_url();
    config.set_video_api_url(
        url::Url::parse(&emulator_url).context("the embedded emulator's address is not a URL")?,
    );
    let control = emulator.control_router();
    tokio::spawn(emulator.run_until(std::future::pending()));

    let app =
        App::build_with_routes(&config, credentials, emulator_control_routes(control)).await?;
    let shutdown = shutdown_signal();
    let url = format!("http://{}", app.local_addr());
    point_callbacks_at(&emulator_url, app.local_addr()).await?;
    output::out(format!("vonage-sessions listening on {url}"));
    output::out(banner(&config, &url, legacy));
    if let Some(page) = example_page {
        let origin = page.origin()?;
        page.spawn(url.clone());
        output::out(format!(
            "example page listening on {origin}/ (open it in a browser)"
        ));
    }
    app.run_until(shutdown).await.context("serving")?;
    Ok(())
}

/// A random callback signature secret (256 bits, hex).
fn throwaway_secret() -> SecretString {
    SecretString::from(format!(
        "{:032x}{:032x}",
        rand::random::<u128>(),
        rand::random::<u128>()
    ))
}

/// Tells the embedded emulator to post its callbacks to the service's own receiver, now that
/// the service's port is known.
async fn point_callbacks_at(emulator_url: &str, service: SocketAddr) -> anyhow::Result<()> {
    let mut service = service;
    if service.ip().is_unspecified() {
        service.set_ip(if service.is_ipv4() {
            [127, 0, 0, 1].into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let response = reqwest::Client::new()
        .put(format!("{emulator_url}/_emulator/callbacks"))
        .json(&serde_json::json!({"url": format!("http://{service}/vonage/callbacks")}))
        .send()
        .await
        .context("pointing the embedded emulator's callbacks at the service")?;
    anyhow::ensure!(
        response.status().is_success(),
        "the embedded emulator refused the callback URL ({})",
        response.status()
    );
    Ok(())
}

/// What anonymous callers may do in `dev` unless configured otherwise: everything.
const DEV_SCOPES: [Scope; 4] = [Scope::Create, Scope::Join, Scope::Moderate, Scope::Admin];
const DEV_ROLES: [Role; 4] = [
    Role::Publisher,
    Role::Subscriber,
    Role::PublisherOnly,
    Role::Moderator,
];

/// The emulator's control router under `/_emulator` on the main listener (`dev` only).
fn emulator_control_routes(control: axum::Router) -> axum::Router<()> {
    let handler = move |request: axum::extract::Request| {
        let control = control.clone();
        // A fresh request without the outer router's extensions: its path parameters would
        // otherwise be added to the emulator's own (`{*rest}` plus `{sessionId}`).
        let (parts, body) = request.into_parts();
        let mut inner = axum::extract::Request::new(body);
        *inner.method_mut() = parts.method;
        *inner.uri_mut() = parts.uri;
        *inner.version_mut() = parts.version;
        *inner.headers_mut() = parts.headers;
        async move {
            match tower::ServiceExt::oneshot(control, inner).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
    };
    axum::Router::new()
        .route("/_emulator", axum::routing::any(handler.clone()))
        .route("/_emulator/{*rest}", axum::routing::any(handler))
}

fn banner(config: &Config, url: &str, legacy: bool) -> String {
    let scopes: Vec<&str> = config
        .auth
        .anonymous_scopes
        .iter()
        .map(|scope| scope.as_str())
        .collect();
    let limits = if config.rate_limits.enabled {
        format!(
            "on ({} creations a minute, bursts of {}; set by your configuration)",
            config.rate_limits.create_per_minute, config.rate_limits.create_burst
        )
    } else {
        "off".to_owned()
    };
    format!(
        "\n  DEV MODE: sessions are EMULATED by the embedded Vonage Video API emulator; nothing reaches Vonage.\n  \
         Throwaway {} credentials.\n  \
         Anonymous callers, scopes: {}{}.\n  \
         Rate limits: {limits}.\n  \
         Emulator control endpoints on this port: {url}/_emulator/sessions, /_emulator/requests, /_emulator/faults, ...\n  \
         The emulator's signed callbacks go to {url}/vonage/callbacks (fresh secrets; see /_emulator/callbacks).\n  \
         Try:\n    \
         curl -s -X POST {url}/sessions -H 'content-type: application/json' -d '{{}}'\n",
        if legacy {
            "legacy OpenTok key/secret"
        } else {
            "Vonage application"
        },
        scopes.join(" "),
        if config.auth.anonymous_scopes.contains(&Scope::Moderate) {
            " (moderator tokens and archives included)"
        } else {
            ""
        },
    )
}

/// Fresh credentials for `dev`, and the emulator's view of them.
fn throwaway_credentials(legacy: bool) -> anyhow::Result<(Credentials, EmulatorCredentials)> {
    if legacy {
        let api_key = format!("{}", 10_000_000 + rand::random::<u32>() % 90_000_000);
        let secret = SecretString::from(format!(
            "{:032x}{:08x}",
            rand::random::<u128>(),
            rand::random::<u32>()
        ));
        let credentials = Credentials::legacy(&api_key, &secret)?;
        let project = LegacyProject {
            api_key,
            api_secret: secret,
        };
        return Ok((
            credentials,
            EmulatorCredentials {
                legacy: Some(project),
                application: None,
            },
        ));
    }
    let application_id = uuid::Uuid::new_v4().to_string();
    let key = RsaKeyPair::generate(KeySize::Rsa2048)
        .map_err(|_| anyhow::anyhow!("generating an RSA key failed"))?;
    let credentials = Credentials::application_from_key(&application_id, key)?;
    let public_key = DecodingKey::from_rsa_der(&credentials.public_key_der().unwrap_or_default());
    let application = ApplicationKey {
        application_id,
        public_key,
    };
    Ok((
        credentials,
        EmulatorCredentials {
            legacy: None,
            application: Some(application),
        },
    ))
}

/// Registers SIGTERM and SIGINT handlers now (so a signal that arrives right after the
/// `listening on` line is not fatal) and returns a future that resolves on the first of them.
pub(crate) fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    async move {
        let (Ok(mut terminate), Ok(mut interrupt)) = (terminate, interrupt) else {
            tracing::warn!("cannot listen for shutdown signals; stop the process with SIGKILL");
            return std::future::pending().await;
        };
        tokio::select! {
            _ = interrupt.recv() => tracing::info!(signal = "SIGINT", "shutdown requested"),
            _ = terminate.recv() => tracing::info!(signal = "SIGTERM", "shutdown requested"),
        }
    }
}

pub(crate) async fn serve(sources: &Sources<'_>, args: ListenArgs) -> anyhow::Result<()> {
    let (config, credentials, _) = load_for_serve(sources, args.listen)?;
    let _log = telemetry::init(&config.log);
    let app = App::build(&config, credentials).await?;
    let shutdown = shutdown_signal();
    output::out(format!(
        "vonage-sessions listening on http://{}",
        app.local_addr()
    ));
    app.run_until(shutdown).await.context("serving")?;
    tracing::info!("stopped");
    Ok(())
}

pub(crate) async fn emulator(
    env: &dyn Fn(&str) -> Option<String>,
    args: EmulatorArgs,
) -> anyhow::Result<()> {
    let _log = telemetry::init(&vonage_sessions::config::LogConfig {
        format: LogFormat::Pretty,
        filter: "info".into(),
        buffered_lines: 8192,
    });
    let credentials = emulator_credentials(env, args.public_key.as_deref())?;
    let faults = Faults {
        latency_ms: args.latency_ms,
        error_rate: args.error_rate,
        error_status: args.error_status,
        drop_rate: args.drop_rate,
    };
    if let Some(url) = &args.callback_url {
        url::Url::parse(url).with_context(|| format!("--callback-url {url:?} is not a URL"))?;
    }
    let (session_secret, archive_secret) = vonage_sessions::config::callback_secrets(env)?;
    let callbacks = CallbackSettings {
        url: args.callback_url,
        session_secret,
        archive_secret,
    };
    let emulator = Emulator::bind_with_callbacks(args.listen, credentials, faults, callbacks)
        .await
        .context("binding the emulator")?;
    let shutdown = shutdown_signal();
    output::out(format!(
        "vonage-sessions emulator listening on {}",
        emulator.base_url()
    ));
    emulator
        .run_until(shutdown)
        .await
        .context("serving the emulator")?;
    Ok(())
}

pub(crate) async fn healthcheck(sources: &Sources<'_>, args: HealthcheckArgs) -> ExitCode {
    let url = match args.url {
        Some(url) => url,
        None => match configured_readyz(sources) {
            Ok(url) => url,
            Err(error) => {
                output::err(format!("error: {error}"));
                return ExitCode::from(EXIT_CONFIG);
            }
        },
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(args.timeout_ms))
        .build();
    let response = match client {
        Ok(client) => client.get(&url).send().await,
        Err(error) => Err(error),
    };
    match response {
        Ok(response) if response.status() == reqwest::StatusCode::OK => ExitCode::SUCCESS,
        Ok(response) => {
            output::err(format!("unhealthy: {url} answered {}", response.status()));
            ExitCode::FAILURE
        }
        Err(error) => {
            output::err(format!("unhealthy: {url}: {error}"));
            ExitCode::FAILURE
        }
    }
}

/// `/readyz` on the configured `server.listen`, via loopback for a wildcard address. Problems
/// elsewhere in the configuration (a credential, say) do not stop the probe: `serve` would
/// not have started with them, and the probe only needs the address.
fn configured_readyz(sources: &Sources<'_>) -> Result<String, ConfigError> {
    let report = Config::load_reporting(sources);
    let listen_problem = report
        .problems
        .iter()
        .any(|p| p.key() == "server.listen" || p.key().is_empty());
    let config = match report.config {
        Some(config) if !listen_problem => config,
        _ => {
            return Err(ConfigError::from_problems(report.problems)
                .unwrap_or_else(|| ConfigError::Several(Vec::new())));
        }
    };
    let mut addr = config.server.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            [127, 0, 0, 1].into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    Ok(format!("http://{addr}/readyz"))
}

/// Prints the effective configuration as TOML (comments say what was checked), or fails with
/// every problem. See docs/check-config.md.
pub(crate) fn check_config(sources: &Sources<'_>) -> anyhow::Result<()> {
    let (config, credentials, report) = load_for_serve(sources, None)?;
    let kind = match &credentials {
        Credentials::Application(_) => "Vonage application",
        Credentials::Legacy(_) => "legacy OpenTok project",
    };
    let mut text = String::from("# vonage-sessions check-config: the configuration is valid.\n");
    text.push_str(&format!(
        "# credentials: {kind} {} ({}), from the environment, key parsed ({REDACTED})\n",
        credentials.owner(),
        credentials.kind(),
    ));
    if config.auth.hs256_secret.is_some() {
        text.push_str(&format!(
            "# caller tokens: HS256 secret from VONAGE_SESSIONS_AUTH_HS256_SECRET ({REDACTED})\n"
        ));
    }
    for (name, secret) in [
        (
            vonage_sessions::config::SESSION_CALLBACK_SECRET,
            &config.callbacks.session_secret,
        ),
        (
            vonage_sessions::config::ARCHIVE_CALLBACK_SECRET,
            &config.callbacks.archive_secret,
        ),
    ] {
        let state = if secret.is_some() {
            format!("set ({REDACTED})")
        } else {
            "unset (callbacks of this kind are refused)".to_owned()
        };
        text.push_str(&format!("# callbacks: {name} {state}\n"));
    }
    text.push_str(&format!(
        "# video API: {}\n\n",
        config.video_base_url(matches!(credentials, Credentials::Application(_)))
    ));
    text.push_str(report.effective_toml().trim_end());
    output::out(text);
    Ok(())
}
