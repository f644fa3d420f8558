//! Loading that reports every problem at once (for `check-config` and `serve`), and the
//! effective configuration as TOML with secrets redacted. See `docs/check-config.md`.
//!
//! Serde stops at the first bad field, and `Config::validate` at the first bad value. So that a
//! user fixes everything in one round, problems are found key by key instead: unknown keys and
//! values of the wrong type by comparing the layered data with the compiled-in defaults, then
//! validation repeatedly, each time putting the key it named back to its default (or hiding the
//! env var it named) and running it again, until it passes.

use std::collections::HashSet;

use figment::Figment;
use figment::providers::{Format as _, Serialized, Toml};
use figment::value::{Dict, Value};

use super::{Config, ConfigError, DEFAULT_TOML, Sources, invalid};

/// The credential env vars, which are read (and fail) together.
const CREDENTIAL_VARS: [&str; 6] = [
    "VONAGE_APPLICATION_ID",
    "VONAGE_PRIVATE_KEY",
    "VONAGE_PRIVATE_KEY_FILE",
    "OPENTOK_API_KEY",
    "OPENTOK_API_SECRET",
    "OPENTOK_API_SECRET_FILE",
];

/// Repairs before giving up: far more than the keys validation can name.
const MAX_ROUNDS: usize = 64;

/// What loading found: the configuration when it could be built, and every problem.
pub struct Report {
    /// The validated configuration; only meaningful when `problems` is empty.
    pub config: Option<Config>,
    /// Every problem found, each naming its key or env var, in the order found.
    pub problems: Vec<ConfigError>,
    /// The layered data (defaults, overlay, env), as the service reads it.
    effective: Dict,
}

impl ConfigError {
    /// The key or env var at fault (`""` when figment could not say).
    pub fn key(&self) -> String {
        match self {
            ConfigError::Invalid { key, .. } => key.clone(),
            ConfigError::Figment(error) => figment_key(error),
            ConfigError::Several(problems) => {
                problems.first().map(ConfigError::key).unwrap_or_default()
            }
        }
    }

    /// One error for a list of problems: the problem itself when there is one.
    pub fn from_problems(mut problems: Vec<ConfigError>) -> Option<ConfigError> {
        match problems.len() {
            0 => None,
            1 => problems.pop(),
            _ => Some(ConfigError::Several(problems)),
        }
    }
}

/// Formats `ConfigError::Several`: a count, then one problem per line.
pub(super) fn several(problems: &[ConfigError]) -> String {
    let mut text = format!("{} configuration problems:", problems.len());
    for problem in problems {
        text.push_str("\n  - ");
        text.push_str(&problem.to_string());
    }
    text
}

fn figment_key(error: &figment::Error) -> String {
    let mut path = error.path.clone();
    if let figment::error::Kind::UnknownField(field, _) = &error.kind
        && path.last() != Some(field)
    {
        path.push(field.clone());
    }
    path.join(".")
}

fn defaults() -> Dict {
    Figment::from(Toml::string(DEFAULT_TOML))
        .extract::<Dict>()
        .expect("config/default.toml is valid TOML")
}

/// Where the value of `key` came from, for messages: an overlay file or the env.
fn origin(figment: &Figment, key: &str) -> String {
    match figment.find_metadata(key) {
        Some(metadata) if metadata.name.contains("environment") => format!(
            "env var VONAGE_SESSIONS__{}",
            key.to_ascii_uppercase().replace('.', "__")
        ),
        Some(metadata) => match &metadata.source {
            Some(source) => format!("{} {source}", metadata.name),
            None => metadata.name.to_string(),
        },
        None => "the configuration".to_owned(),
    }
}

fn get<'a>(dict: &'a Dict, key: &str) -> Option<&'a Value> {
    match key.split_once('.') {
        None => dict.get(key),
        Some((section, rest)) => dict.get(section)?.as_dict()?.get(rest),
    }
}

/// Sets `key` (one or two levels) in `dict` to `value`, or removes it when `value` is `None`.
fn set(dict: &mut Dict, key: &str, value: Option<Value>) {
    match key.split_once('.') {
        None => match value {
            Some(value) => {
                dict.insert(key.to_owned(), value);
            }
            None => {
                dict.remove(key);
            }
        },
        Some((section, rest)) => {
            if let Some(Value::Dict(_, inner)) = dict.get_mut(section) {
                match value {
                    Some(value) => {
                        inner.insert(rest.to_owned(), value);
                    }
                    None => {
                        inner.remove(rest);
                    }
                }
            }
        }
    }
}

/// Every `section.key` (and top-level key) of `dict`.
fn keys(dict: &Dict) -> Vec<String> {
    let mut keys = Vec::new();
    for (name, value) in dict {
        match value.as_dict() {
            Some(inner) => keys.extend(inner.keys().map(|key| format!("{name}.{key}"))),
            None => keys.push(name.clone()),
        }
    }
    keys
}

fn is_credential(key: &str) -> bool {
    CREDENTIAL_VARS.contains(&key)
}

impl Config {
    /// Loads like `Config::load`, but finds every problem rather than the first.
    pub fn load_reporting(sources: &Sources<'_>) -> Report {
        let mut problems = Vec::new();
        let figment = match Self::figment(sources) {
            Ok(figment) => figment,
            Err(error) => {
                return Report {
                    config: None,
                    problems: vec![error],
                    effective: defaults(),
                };
            }
        };
        let defaults = defaults();
        let mut data = match figment.extract::<Dict>() {
            Ok(data) => data,
            Err(error) => {
                return Report {
                    config: None,
                    problems: vec![ConfigError::Figment(Box::new(error))],
                    effective: defaults,
                };
            }
        };

        // Unknown keys and values serde refuses, one key at a time against the defaults.
        for key in keys(&data) {
            let Some(default) = get(&defaults, &key).cloned() else {
                problems.push(invalid(
                    &key,
                    format!(
                        "unknown key (from {}); config/default.toml lists every key",
                        origin(&figment, &key)
                    ),
                ));
                set(&mut data, &key, None);
                continue;
            };
            let Some(value) = get(&data, &key).cloned() else {
                continue;
            };
            if value == default {
                continue;
            }
            let single = Figment::from(Serialized::defaults(&defaults))
                .merge(Serialized::default(&key, &value));
            if let Err(error) = single.extract::<Config>() {
                problems.push(invalid(
                    &key,
                    format!("{} (from {})", error.kind, origin(&figment, &key)),
                ));
                set(&mut data, &key, Some(default));
            }
        }
        // A section given as a plain value, say, which the per-key pass cannot see.
        let figment_of = |data: &Dict| Figment::from(Serialized::defaults(data));
        if let Err(error) = figment_of(&data).extract::<Config>() {
            problems.push(ConfigError::Figment(Box::new(error)));
            return Report {
                config: None,
                problems,
                effective: data,
            };
        }

        // Validation, repaired key by key.
        let mut hidden: HashSet<&'static str> = HashSet::new();
        let mut reported: HashSet<String> = HashSet::new();
        let mut reset_sections: HashSet<String> = HashSet::new();
        let mut config = None;
        for _ in 0..MAX_ROUNDS {
            let env = |name: &str| {
                if hidden.contains(name) {
                    None
                } else {
                    (sources.env)(name)
                }
            };
            let error = match Self::from_figment(figment_of(&data), &env) {
                Ok(loaded) => {
                    config = Some(loaded);
                    break;
                }
                Err(error) => error,
            };
            let key = error.key();
            let repeated = !reported.insert(key.clone());
            if !repeated {
                problems.push(error);
            }
            if is_credential(&key) {
                hidden.extend(CREDENTIAL_VARS);
            } else if key.starts_with("VONAGE_SESSIONS_AUTH_HS256_SECRET") {
                hidden.extend([
                    "VONAGE_SESSIONS_AUTH_HS256_SECRET",
                    "VONAGE_SESSIONS_AUTH_HS256_SECRET_FILE",
                ]);
            } else if key.starts_with(super::SESSION_CALLBACK_SECRET)
                || key.starts_with(super::ARCHIVE_CALLBACK_SECRET)
            {
                let name = if key.starts_with(super::SESSION_CALLBACK_SECRET) {
                    super::SESSION_CALLBACK_SECRET
                } else {
                    super::ARCHIVE_CALLBACK_SECRET
                };
                hidden.insert(name);
                hidden.insert(if name == super::SESSION_CALLBACK_SECRET {
                    "VONAGE_SESSION_CALLBACK_SECRET_FILE"
                } else {
                    "VONAGE_ARCHIVE_CALLBACK_SECRET_FILE"
                });
            } else {
                if key == "video.api_url" {
                    hidden.insert("VIDEO_API_URL");
                }
                let section = key.split('.').next().unwrap_or_default().to_owned();
                let target =
                    if repeated || get(&defaults, &key).is_none_or(|v| v.as_dict().is_some()) {
                        section.clone()
                    } else {
                        key.clone()
                    };
                if target == section && !reset_sections.insert(section) {
                    break;
                }
                match get(&defaults, &target) {
                    Some(default) => set(&mut data, &target, Some(default.clone())),
                    None => break,
                }
            }
        }
        Report {
            config,
            problems,
            effective: data,
        }
    }
}

/// Whether `key` was set by an overlay file or an env var, rather than left at the compiled-in
/// default (`dev` changes only what the user did not set).
pub fn set_by_user(figment: &Figment, key: &str) -> bool {
    use figment::Provider as _;
    let defaults = Toml::string(DEFAULT_TOML).metadata();
    figment
        .find_metadata(key)
        .is_some_and(|metadata| metadata.name != defaults.name)
}

/// The word shown instead of a secret.
pub const REDACTED: &str = "<redacted>";

impl Report {
    /// The effective configuration as TOML: every key with the value the service uses, secrets
    /// (`rooms.redis_url`'s password) redacted. Credentials never appear: they are not config keys.
    pub fn effective_toml(&self) -> String {
        let mut data = self.effective.clone();
        if let Some(config) = &self.config {
            // VIDEO_API_URL overrides the key.
            set(
                &mut data,
                "video.api_url",
                Some(Value::from(config.video.api_url.clone())),
            );
        }
        if let Some(url) = get(&data, "rooms.redis_url")
            .and_then(Value::as_str)
            .map(str::to_owned)
        {
            set(
                &mut data,
                "rooms.redis_url",
                Some(Value::from(redact_url(&url))),
            );
        }
        toml::to_string(&data).unwrap_or_default()
    }
}

/// A URL with its password (and, if it cannot be parsed, everything) redacted.
fn redact_url(url: &str) -> String {
    if url.is_empty() {
        return String::new();
    }
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                // `<redacted>` would be percent-encoded in a URL.
                let _ = parsed.set_password(Some("REDACTED"));
            }
            parsed.to_string()
        }
        Err(_) => REDACTED.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::PathBuf;

    use super::*;

    fn report(vars: &[(&str, &str)]) -> Report {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let env = move |name: &str| vars.get(name).cloned();
        let dir = std::env::temp_dir().join(format!("report-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("test.toml"),
            "[server]\nlisten_port = 1\nrequest_timeout_ms = \"soon\"\n\
             [tokens]\nmax_ttl_seconds = 99999999\ndefault_ttl_seconds = 0\n\
             [rooms]\nstore = \"redis\"\nredis_url = \"redis://:hunter2@redis:6379/0\"\n\
             [auth]\nmode = \"jwt\"\n",
        )
        .unwrap();
        let sources = Sources {
            config_dir: PathBuf::from(&dir),
            env: &env,
            process_env_overrides: false,
        };
        Config::load_reporting(&sources)
    }

    #[test]
    fn every_problem_is_reported_naming_its_key() {
        let report = report(&[
            ("VONAGE_SESSIONS_ENV", "test"),
            ("VONAGE_APPLICATION_ID", "app"),
        ]);
        let keys: Vec<String> = report.problems.iter().map(ConfigError::key).collect();
        for expected in [
            "server.listen_port",
            "server.request_timeout_ms",
            "tokens.max_ttl_seconds",
            "tokens.default_ttl_seconds",
            "VONAGE_PRIVATE_KEY",
            "auth.issuer",
        ] {
            assert!(keys.iter().any(|k| k == expected), "{expected}: {keys:?}");
        }
        let text = ConfigError::from_problems(report.problems)
            .unwrap()
            .to_string();
        assert!(text.contains("configuration problems"), "{text}");
    }

    #[test]
    fn the_effective_toml_redacts_the_redis_password_and_parses_back() {
        let report = report(&[("VONAGE_SESSIONS_ENV", "test")]);
        let text = report.effective_toml();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("redis://:REDACTED@redis:6379/0"), "{text}");
        let parsed: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(parsed["rooms"]["store"].as_str(), Some("redis"));
    }

    #[test]
    fn a_good_config_has_no_problems() {
        let report = report(&[]);
        assert!(report.problems.is_empty());
        assert!(report.config.is_some());
    }
}
