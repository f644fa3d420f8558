//! Session options: the domain types for a new session, Vonage's rules for combining them, and
//! the exact form fields the official SDKs send for them (`docs/vonage-wire.md` §1.4, §8).

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How media flows: through the Media Router, or peer to peer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum MediaMode {
    /// Through the Vonage Media Router: archiving, audio fallback, lower bandwidth in
    /// multiparty calls. The default, as in Vonage's guide.
    #[default]
    Routed,
    /// Peer to peer, with TURN fallback. No archiving.
    Relayed,
}

impl MediaMode {
    /// The `p2p.preference` form value: `disabled` means routed.
    pub(crate) fn p2p_preference(self) -> &'static str {
        match self {
            MediaMode::Routed => "disabled",
            MediaMode::Relayed => "enabled",
        }
    }
}

/// Whether sessions are archived automatically.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ArchiveMode {
    /// Archives start only when asked for.
    #[default]
    Manual,
    /// An archive starts when the first client publishes (routed sessions only).
    Always,
}

impl ArchiveMode {
    /// The `archiveMode` form value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ArchiveMode::Manual => "manual",
            ArchiveMode::Always => "always",
        }
    }
}

/// Resolutions Vonage accepts for automatic archives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub(crate) enum ArchiveResolution {
    /// SD landscape.
    #[serde(rename = "640x480")]
    Sd,
    /// SD portrait.
    #[serde(rename = "480x640")]
    SdPortrait,
    /// HD landscape.
    #[serde(rename = "1280x720")]
    Hd,
    /// HD portrait.
    #[serde(rename = "720x1280")]
    HdPortrait,
    /// Full HD landscape.
    #[serde(rename = "1920x1080")]
    FullHd,
    /// Full HD portrait.
    #[serde(rename = "1080x1920")]
    FullHdPortrait,
}

impl ArchiveResolution {
    /// The wire value, e.g. `1280x720`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ArchiveResolution::Sd => "640x480",
            ArchiveResolution::SdPortrait => "480x640",
            ArchiveResolution::Hd => "1280x720",
            ArchiveResolution::HdPortrait => "720x1280",
            ArchiveResolution::FullHd => "1920x1080",
            ArchiveResolution::FullHdPortrait => "1080x1920",
        }
    }
}

/// Everything that can be chosen when a session is created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SessionOptions {
    /// Routed (default) or relayed.
    pub(crate) media_mode: MediaMode,
    /// Manual (default) or always.
    pub(crate) archive_mode: ArchiveMode,
    /// IPv4 location hint for the media servers.
    pub(crate) location: Option<Ipv4Addr>,
    /// End-to-end encryption (routed only, not with automatic archiving).
    pub(crate) e2ee: bool,
    /// Name of automatic archives (1–80 chars, `always` only).
    pub(crate) archive_name: Option<String>,
    /// Resolution of automatic archives (`always` only).
    pub(crate) archive_resolution: Option<ArchiveResolution>,
}

/// A combination of options Vonage refuses, naming the offending field (API spelling).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub(crate) struct InvalidOption {
    /// The request field at fault, in the HTTP API's camelCase.
    pub(crate) field: &'static str,
    /// What is wrong with it.
    pub(crate) message: &'static str,
}

impl SessionOptions {
    /// Checks the rules every official SDK enforces before calling Vonage.
    pub(crate) fn validate(&self) -> Result<(), InvalidOption> {
        let invalid = |field, message| Err(InvalidOption { field, message });
        let relayed = self.media_mode == MediaMode::Relayed;
        let always = self.archive_mode == ArchiveMode::Always;
        if always && relayed {
            return invalid("archiveMode", "\"always\" requires mediaMode \"routed\"");
        }
        if self.e2ee && relayed {
            return invalid(
                "e2ee",
                "end-to-end encryption requires mediaMode \"routed\"",
            );
        }
        if self.e2ee && always {
            return invalid(
                "e2ee",
                "end-to-end encryption cannot be used with archiveMode \"always\"",
            );
        }
        if let Some(name) = &self.archive_name {
            if !always {
                return invalid("archiveName", "only allowed with archiveMode \"always\"");
            }
            if !(1..=80).contains(&name.chars().count()) {
                return invalid("archiveName", "must be 1 to 80 characters");
            }
        }
        if self.archive_resolution.is_some() && !always {
            return invalid(
                "archiveResolution",
                "only allowed with archiveMode \"always\"",
            );
        }
        Ok(())
    }

    /// The form body of `POST /session/create`: `p2p.preference` and `archiveMode` always
    /// (the server's defaults are undocumented), the others only when set, as opentok-node does.
    pub(crate) fn form_fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![
            ("archiveMode", self.archive_mode.as_str().to_owned()),
            (
                "p2p.preference",
                self.media_mode.p2p_preference().to_owned(),
            ),
        ];
        if let Some(location) = self.location {
            fields.push(("location", location.to_string()));
        }
        if self.e2ee {
            fields.push(("e2ee", "true".to_owned()));
        }
        if let Some(name) = &self.archive_name {
            fields.push(("archiveName", name.clone()));
        }
        if let Some(resolution) = self.archive_resolution {
            fields.push(("archiveResolution", resolution.as_str().to_owned()));
        }
        fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_routed_and_manual_and_always_sent() {
        let fields = SessionOptions::default().form_fields();
        assert_eq!(
            fields,
            vec![
                ("archiveMode", "manual".to_owned()),
                ("p2p.preference", "disabled".to_owned())
            ]
        );
    }

    #[test]
    fn every_field_is_sent_when_set() {
        let options = SessionOptions {
            archive_mode: ArchiveMode::Always,
            location: Some(Ipv4Addr::new(12, 34, 56, 78)),
            archive_name: Some("foo".into()),
            archive_resolution: Some(ArchiveResolution::Hd),
            ..SessionOptions::default()
        };
        options.validate().unwrap();
        let fields = options.form_fields();
        assert!(fields.contains(&("location", "12.34.56.78".to_owned())));
        assert!(fields.contains(&("archiveName", "foo".to_owned())));
        assert!(fields.contains(&("archiveResolution", "1280x720".to_owned())));
        assert!(fields.contains(&("archiveMode", "always".to_owned())));
    }

    #[test]
    fn vonage_rules_name_the_offending_field() {
        let relayed = SessionOptions {
            media_mode: MediaMode::Relayed,
            ..Default::default()
        };
        let always = SessionOptions {
            archive_mode: ArchiveMode::Always,
            ..Default::default()
        };
        let cases = [
            (
                SessionOptions {
                    archive_mode: ArchiveMode::Always,
                    ..relayed.clone()
                },
                "archiveMode",
            ),
            (
                SessionOptions {
                    e2ee: true,
                    ..relayed
                },
                "e2ee",
            ),
            (
                SessionOptions {
                    e2ee: true,
                    ..always.clone()
                },
                "e2ee",
            ),
            (
                SessionOptions {
                    archive_name: Some("x".into()),
                    ..Default::default()
                },
                "archiveName",
            ),
            (
                SessionOptions {
                    archive_name: Some(String::new()),
                    ..always.clone()
                },
                "archiveName",
            ),
            (
                SessionOptions {
                    archive_name: Some("x".repeat(81)),
                    ..always
                },
                "archiveName",
            ),
            (
                SessionOptions {
                    archive_resolution: Some(ArchiveResolution::Sd),
                    ..Default::default()
                },
                "archiveResolution",
            ),
        ];
        for (options, field) in cases {
            assert_eq!(options.validate().unwrap_err().field, field, "{options:?}");
        }
    }
}
