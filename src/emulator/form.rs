//! The `POST /session/create` form: tolerant parsing (unknown keys, `location=null`,
//! `e2ee=True`, empty body) and the real API's validation rules (contract §1.4, §2.3, §8).

use std::net::Ipv4Addr;

/// Resolutions the real API accepts for auto-archives.
pub(crate) const RESOLUTIONS: [&str; 6] = [
    "640x480",
    "480x640",
    "1280x720",
    "720x1280",
    "1920x1080",
    "1080x1920",
];

/// The session options a create call asked for, after validation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SessionOptions {
    /// `p2p.preference=enabled`: peer-to-peer media. Absent means routed.
    pub(crate) relayed: bool,
    /// `archiveMode=always`. Absent means manual.
    pub(crate) archive_always: bool,
    /// The IPv4 location hint, if any.
    pub(crate) location: Option<Ipv4Addr>,
    /// End-to-end encryption.
    pub(crate) e2ee: bool,
    /// Name of auto-archives (only with `archiveMode=always`).
    pub(crate) archive_name: Option<String>,
    /// Resolution of auto-archives (only with `archiveMode=always`).
    pub(crate) archive_resolution: Option<String>,
}

/// A form value the real API would refuse; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct FormError(pub(crate) String);

/// Decodes an urlencoded body into its pairs, in the order sent. Never fails.
pub(crate) fn pairs(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// Reads and validates the create-session fields; unknown keys are ignored and the first
/// occurrence of a repeated key wins.
pub(crate) fn parse(pairs: &[(String, String)]) -> Result<SessionOptions, FormError> {
    let field = |name: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let relayed = match field("p2p.preference") {
        None | Some("disabled") => false,
        Some("enabled") => true,
        Some(_) => return Err(invalid("p2p.preference must be enabled or disabled")),
    };
    let archive_always = match field("archiveMode") {
        None | Some("manual") => false,
        Some("always") => true,
        Some(_) => return Err(invalid("archiveMode must be manual or always")),
    };
    let location = match field("location") {
        None | Some("" | "null") => None,
        Some(text) => Some(
            text.parse::<Ipv4Addr>()
                .map_err(|_| invalid("location must be an IPv4 address"))?,
        ),
    };
    let e2ee = match field("e2ee") {
        None | Some("false" | "False") => false,
        Some("true" | "True") => true,
        Some(_) => return Err(invalid("e2ee must be true or false")),
    };
    let archive_name = field("archiveName").map(str::to_owned);
    if archive_name
        .as_ref()
        .is_some_and(|name| !(1..=80).contains(&name.chars().count()))
    {
        return Err(invalid("archiveName must be between 1 and 80 characters"));
    }
    let archive_resolution = field("archiveResolution").map(str::to_owned);
    if archive_resolution
        .as_deref()
        .is_some_and(|resolution| !RESOLUTIONS.contains(&resolution))
    {
        return Err(invalid(&format!(
            "archiveResolution must be one of {}",
            RESOLUTIONS.join(", ")
        )));
    }
    if archive_always && relayed {
        return Err(invalid(
            "archiveMode always requires p2p.preference disabled (routed media mode)",
        ));
    }
    if e2ee && relayed {
        return Err(invalid(
            "e2ee requires p2p.preference disabled (routed media mode)",
        ));
    }
    if !archive_always && archive_name.is_some() {
        return Err(invalid(
            "archiveName can only be set with archiveMode always",
        ));
    }
    if !archive_always && archive_resolution.is_some() {
        return Err(invalid(
            "archiveResolution can only be set with archiveMode always",
        ));
    }
    Ok(SessionOptions {
        relayed,
        archive_always,
        location,
        e2ee,
        archive_name,
        archive_resolution,
    })
}

fn invalid(message: &str) -> FormError {
    FormError(format!("Invalid request: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_body(body: &str) -> Result<SessionOptions, FormError> {
        parse(&pairs(body.as_bytes()))
    }

    #[test]
    fn absent_fields_mean_routed_manual_without_location() {
        assert_eq!(parse_body(""), Ok(SessionOptions::default()));
    }

    #[test]
    fn sdk_bodies_parse_tolerantly() {
        let vonage_node = parse_body("archiveMode=manual&location=null&p2p.preference=disabled");
        assert_eq!(vonage_node, Ok(SessionOptions::default()));

        let vonage_python = parse_body(
            "archiveMode=always&location=192.168.0.1&media_mode=routed&e2ee=True&p2p.preference=disabled",
        )
        .unwrap();
        assert!(vonage_python.archive_always && vonage_python.e2ee);
        assert_eq!(vonage_python.location, Some(Ipv4Addr::new(192, 168, 0, 1)));

        let opentok_node = parse_body("archiveMode=manual&p2p.preference=enabled").unwrap();
        assert!(opentok_node.relayed);

        let full = parse_body(
            "p2p.preference=disabled&archiveMode=always&archiveName=foo&archiveResolution=1280x720&location=12.34.56.78&e2ee=false",
        )
        .unwrap();
        assert_eq!(full.archive_name.as_deref(), Some("foo"));
        assert_eq!(full.archive_resolution.as_deref(), Some("1280x720"));
    }

    #[test]
    fn invalid_values_are_refused_naming_the_field() {
        let long_name = format!("archiveMode=always&archiveName={}", "a".repeat(81));
        let cases = [
            ("p2p.preference=maybe", "p2p.preference"),
            ("archiveMode=sometimes", "archiveMode"),
            ("location=eu", "location"),
            ("location=1.2.3.256", "location"),
            ("location=::1", "location"),
            ("e2ee=yes", "e2ee"),
            ("archiveMode=always&archiveName=", "archiveName"),
            (long_name.as_str(), "archiveName"),
            (
                "archiveMode=always&archiveResolution=1x1",
                "archiveResolution",
            ),
            ("archiveMode=always&p2p.preference=enabled", "archiveMode"),
            ("e2ee=true&p2p.preference=enabled", "e2ee"),
            ("archiveName=foo", "archiveName"),
            (
                "archiveMode=manual&archiveResolution=640x480",
                "archiveResolution",
            ),
        ];
        for (body, field) in cases {
            let error = parse_body(body).expect_err(body);
            assert!(error.0.contains(field), "{body}: {error}");
        }
    }

    #[test]
    fn first_occurrence_of_a_repeated_key_wins() {
        let options = parse_body("p2p.preference=enabled&p2p.preference=disabled").unwrap();
        assert!(options.relayed);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = parse(&pairs(&body));
        }
    }

    #[test]
    fn pairs_keep_the_order_sent_and_survive_junk() {
        let decoded = pairs(b"b=2&a=1&%ZZ=%FF&plus=a+b");
        assert_eq!(decoded[0], ("b".into(), "2".into()));
        assert_eq!(decoded[1], ("a".into(), "1".into()));
        assert_eq!(decoded[3], ("plus".into(), "a b".into()));
    }
}
