//! Vonage credentials from their own env vars, with `*_FILE` variants for container secrets.

use std::path::Path;

use secrecy::SecretString;

use super::{ConfigError, CredentialSecrets, invalid};

/// Reads `NAME`, or the file named by `NAME_FILE` (both set is an error). Trims whitespace.
pub(super) fn secret_var(
    env: &dyn Fn(&str) -> Option<String>,
    name: &str,
) -> Result<Option<SecretString>, ConfigError> {
    let file_var = format!("{name}_FILE");
    let direct = env(name).filter(|v| !v.trim().is_empty());
    let file = env(&file_var).filter(|v| !v.trim().is_empty());
    match (direct, file) {
        (Some(_), Some(_)) => Err(invalid(
            name,
            format!("set either {name} or {file_var}, not both"),
        )),
        (Some(value), None) => Ok(Some(SecretString::from(value.trim().to_owned()))),
        (None, Some(path)) => {
            let contents = std::fs::read_to_string(Path::new(path.trim()))
                .map_err(|e| invalid(&file_var, format!("cannot read {}: {e}", path.trim())))?;
            Ok(Some(SecretString::from(contents.trim().to_owned())))
        }
        (None, None) => Ok(None),
    }
}

/// The callback signature secrets, `VONAGE_SESSION_CALLBACK_SECRET[_FILE]` and
/// `VONAGE_ARCHIVE_CALLBACK_SECRET[_FILE]` (the emulator signs with the same variables the
/// service verifies with).
pub fn callback_secrets(
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Option<SecretString>, Option<SecretString>), ConfigError> {
    Ok((
        secret_var(env, super::SESSION_CALLBACK_SECRET)?,
        secret_var(env, super::ARCHIVE_CALLBACK_SECRET)?,
    ))
}

/// The credentials an emulator accepts: any of the legacy and application variables, both kinds
/// at once allowed. The application's private key is optional when a public key file is given.
#[derive(Debug, Default)]
pub struct EmulatorSecrets {
    /// `OPENTOK_API_KEY` + `OPENTOK_API_SECRET[_FILE]`.
    pub legacy: Option<(String, SecretString)>,
    /// `VONAGE_APPLICATION_ID` + `VONAGE_PRIVATE_KEY[_FILE]` (the key may be absent).
    pub application: Option<(String, Option<SecretString>)>,
}

/// Reads the emulator's credential env vars.
pub fn emulator_secrets(
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<EmulatorSecrets, ConfigError> {
    let var = |name: &str| {
        env(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let legacy = match (
        var("OPENTOK_API_KEY"),
        secret_var(env, "OPENTOK_API_SECRET")?,
    ) {
        (Some(key), Some(secret)) => Some((key, secret)),
        (None, None) => None,
        (Some(_), None) => {
            return Err(invalid(
                "OPENTOK_API_SECRET",
                "is required with OPENTOK_API_KEY",
            ));
        }
        (None, Some(_)) => {
            return Err(invalid(
                "OPENTOK_API_KEY",
                "is required with OPENTOK_API_SECRET",
            ));
        }
    };
    let application = match (
        var("VONAGE_APPLICATION_ID"),
        secret_var(env, "VONAGE_PRIVATE_KEY")?,
    ) {
        (Some(id), key) => Some((id, key)),
        (None, None) => None,
        (None, Some(_)) => {
            return Err(invalid(
                "VONAGE_APPLICATION_ID",
                "is required with VONAGE_PRIVATE_KEY",
            ));
        }
    };
    Ok(EmulatorSecrets {
        legacy,
        application,
    })
}

pub(super) fn credentials_from_env(
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<CredentialSecrets>, ConfigError> {
    let var = |name: &str| {
        env(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let application_id = var("VONAGE_APPLICATION_ID");
    let private_key = secret_var(env, "VONAGE_PRIVATE_KEY")?;
    let api_key = var("OPENTOK_API_KEY");
    let api_secret = secret_var(env, "OPENTOK_API_SECRET")?;
    let application = application_id.is_some() || private_key.is_some();
    let legacy = api_key.is_some() || api_secret.is_some();
    if application && legacy {
        return Err(invalid(
            "VONAGE_APPLICATION_ID",
            "both Vonage application and legacy OpenTok credentials are set; set exactly one kind",
        ));
    }
    match (application_id, private_key, api_key, api_secret) {
        (Some(application_id), Some(private_key), None, None) => {
            Ok(Some(CredentialSecrets::Application {
                application_id,
                private_key,
            }))
        }
        (Some(_), None, ..) => Err(invalid(
            "VONAGE_PRIVATE_KEY",
            "is required with VONAGE_APPLICATION_ID (or VONAGE_PRIVATE_KEY_FILE)",
        )),
        (None, Some(_), ..) => Err(invalid(
            "VONAGE_APPLICATION_ID",
            "is required with VONAGE_PRIVATE_KEY",
        )),
        (None, None, Some(api_key), Some(api_secret)) => Ok(Some(CredentialSecrets::Legacy {
            api_key,
            api_secret,
        })),
        (None, None, Some(_), None) => Err(invalid(
            "OPENTOK_API_SECRET",
            "is required with OPENTOK_API_KEY (or OPENTOK_API_SECRET_FILE)",
        )),
        (None, None, None, Some(_)) => Err(invalid(
            "OPENTOK_API_KEY",
            "is required with OPENTOK_API_SECRET",
        )),
        _ => Ok(None),
    }
}
