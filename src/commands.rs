//! The bodies of the binary's commands that need more than a few lines: `dev`, building
//! credentials for `serve` and the emulator, and the shutdown signal.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::RsaKeyPair;
use jsonwebtoken::DecodingKey;
use secrecy::SecretString;
use vonage_sessions::app::App;
use vonage_sessions::config::{
    AuthMode, Config, ConfigError, CredentialSecrets, LogFormat, Sources, emulator_secrets,
};
use vonage_sessions::emulator::{
    ApplicationKey, Emulator, EmulatorCredentials, Faults, LegacyProject,
};
use vonage_sessions::telemetry;
use vonage_sessions::video::Credentials;

use crate::example_page::ExamplePage;

/// Parses the credentials `serve` was configured with.
pub(crate) fn credentials_from(config: &Config) -> anyhow::Result<Credentials> {
    let secrets = config.credentials.as_ref().ok_or_else(|| ConfigError::Invalid {
        key: "VONAGE_APPLICATION_ID".into(),
        message: "no Vonage credentials: set VONAGE_APPLICATION_ID and VONAGE_PRIVATE_KEY (or _FILE) for a \
                  Vonage application, or OPENTOK_API_KEY and OPENTOK_API_SECRET (or _FILE) for a legacy project"
            .into(),
    })?;
    let parsed = match secrets {
        CredentialSecrets::Application {
            application_id,
            private_key,
        } => Credentials::application(application_id, private_key),
        CredentialSecrets::Legacy {
            api_key,
            api_secret,
        } => Credentials::legacy(api_key, api_secret),
    };
    parsed.map_err(|error| {
        let key = match secrets {
            CredentialSecrets::Application { .. } => "VONAGE_PRIVATE_KEY",
            CredentialSecrets::Legacy { .. } => "OPENTOK_API_KEY",
        };
        ConfigError::Invalid {
            key: key.into(),
            message: error.to_string(),
        }
        .into()
    })
}

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

/// `dev`: an in-process emulator with throwaway credentials, anonymous callers, pretty logs.
pub(crate) async fn dev(
    sources: &Sources<'_>,
    listen: SocketAddr,
    legacy: bool,
    example_page: Option<(PathBuf, SocketAddr)>,
) -> anyhow::Result<()> {
    // Real credentials in the environment are ignored on purpose: dev never calls Vonage.
    let no_env = |_: &str| None;
    let mut config = Config::from_figment(Config::figment(sources)?, &no_env)?;
    config.server.listen = listen;
    config.auth.mode = AuthMode::Anonymous;
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
    telemetry::init(&config.log);

    let (credentials, emulator_credentials) = throwaway_credentials(legacy)?;
    let emulator = Emulator::bind(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        emulator_credentials,
        Faults::default(),
    )
    .await
    .context("binding the embedded emulator")?;
    config.video.api_url = emulator.base_url();
    let emulator_url = emulator.base_url();
    tokio::spawn(emulator.run_until(std::future::pending()));

    let app = App::build(&config, credentials).await?;
    let shutdown = shutdown_signal();
    let url = format!("http://{}", app.local_addr());
    println!("vonage-sessions listening on {url}");
    println!(
        "\n  DEV MODE: sessions are EMULATED by the embedded Vonage Video API emulator at {emulator_url}.\n  \
         Throwaway {} credentials; anonymous callers; nothing reaches Vonage.\n  Try:\n    \
         curl -s -X POST {url}/sessions -H 'content-type: application/json' -d '{{}}'\n",
        if legacy {
            "legacy OpenTok key/secret"
        } else {
            "Vonage application"
        }
    );
    if let Some(page) = example_page {
        let origin = page.origin()?;
        page.spawn(url.clone());
        println!("example page listening on {origin}/ (open it in a browser)");
    }
    app.run_until(shutdown).await.context("serving")?;
    Ok(())
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
