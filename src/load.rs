//! What `serve` and `check-config` start from, and the tests with them: the validated config
//! and the Vonage credentials parsed from it (`Config` → `Credentials`), every problem
//! reported at once.

use std::net::SocketAddr;

use crate::config::{AuthMode, Config, ConfigError, CredentialSecrets, Report, Sources};
use crate::video::Credentials;

/// Loads the config and credentials exactly as `serve` needs them, reporting every problem
/// at once (each naming its key) rather than the first.
pub fn load_for_serve(
    sources: &Sources<'_>,
    listen: Option<SocketAddr>,
) -> anyhow::Result<(Config, Credentials, Report)> {
    let mut report = Config::load_reporting(sources);
    let mut problems = std::mem::take(&mut report.problems);
    let mut credentials = None;
    if let Some(config) = &mut report.config {
        if let Some(listen) = listen {
            config.server.listen = listen;
        }
        if config.auth.mode == AuthMode::Unset {
            problems.push(ConfigError::Invalid {
                key: "auth.mode".into(),
                message:
                    "choose who may call: set auth.mode (e.g. VONAGE_SESSIONS__AUTH__MODE=anonymous); \
                     `vonage-sessions dev` picks anonymous for you"
                        .into(),
            });
        }
        // A credential variable already reported is not reported again as missing.
        let credential_reported = problems.iter().any(|p| {
            let key = p.key();
            key.starts_with("VONAGE_APPLICATION_ID")
                || key.starts_with("VONAGE_PRIVATE_KEY")
                || key.starts_with("OPENTOK_API_")
        });
        if !credential_reported {
            match credentials_from(config) {
                Ok(parsed) => credentials = Some(parsed),
                Err(error) => match error.downcast::<ConfigError>() {
                    Ok(problem) => problems.push(problem),
                    Err(other) => return Err(other),
                },
            }
        }
    }
    if let Some(error) = ConfigError::from_problems(problems) {
        return Err(error.into());
    }
    match (report.config.clone(), credentials) {
        (Some(config), Some(credentials)) => Ok((config, credentials, report)),
        _ => Err(anyhow::anyhow!("the configuration could not be loaded")),
    }
}

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
