//! Vonage Video session IDs: decoding (to check who owns a session) and encoding (for the
//! emulator), in the format of `docs/vonage-wire.md` §4.
//!
//! A session ID is `<sentinel>_<payload>`: the sentinel is `1` or `2` and is never interpreted;
//! the payload is base64 (URL-safe alphabet in practice, padding dropped) of a `~`-separated
//! ASCII string whose field 1 is the owner: the legacy API key or the application UUID.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// The longest session ID the official SDKs document ("up to 255 characters").
pub(crate) const MAX_LEN: usize = 255;

/// URL-safe base64 that accepts the payload with or without `=` padding, as the SDKs do.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// What a session ID says about its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedSessionId {
    /// Field 1: the API key (legacy) or application ID that owns the session.
    pub owner: String,
    /// Field 2: the location hint, if the session was created with one.
    pub location: Option<String>,
    /// Field 5 is `P` for relayed (peer-to-peer) sessions (inferred from real IDs).
    pub relayed: bool,
}

/// Why a string is not a usable session ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionIdError {
    /// Empty, too long, or not `<digit>_<payload>`.
    #[error("session ID is not in the Vonage format")]
    Malformed,
    /// The payload is not base64 of a `~`-separated ASCII string.
    #[error("session ID payload does not decode")]
    Undecodable,
}

/// Decodes a session ID leniently: both base64 alphabets, padding optional.
pub fn decode(session_id: &str) -> Result<DecodedSessionId, SessionIdError> {
    let bytes = session_id.as_bytes();
    if bytes.len() < 3 || bytes.len() > MAX_LEN || !bytes[0].is_ascii_digit() || bytes[1] != b'_' {
        return Err(SessionIdError::Malformed);
    }
    let payload: Vec<u8> = bytes[2..]
        .iter()
        .map(|&b| match b {
            b'+' => b'-',
            b'/' => b'_',
            other => other,
        })
        .collect();
    let raw = LENIENT
        .decode(&payload)
        .map_err(|_| SessionIdError::Undecodable)?;
    let text = String::from_utf8(raw).map_err(|_| SessionIdError::Undecodable)?;
    let fields: Vec<&str> = text.split('~').collect();
    // Field 0 is the format marker; field 1 is the owner and must be present and non-empty.
    let owner = fields
        .get(1)
        .filter(|owner| !owner.is_empty() && owner.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or(SessionIdError::Undecodable)?;
    Ok(DecodedSessionId {
        owner: (*owner).to_owned(),
        location: fields
            .get(2)
            .filter(|l| !l.is_empty())
            .map(|l| (*l).to_owned()),
        relayed: fields.get(5) == Some(&"P"),
    })
}

/// True when `session_id` decodes and its owner field is exactly `owner`. Fails closed.
pub fn is_owned_by(session_id: &str, owner: &str) -> bool {
    decode(session_id).is_ok_and(|decoded| decoded.owner == owner)
}

/// The parts of a new session ID, as the real API lays them out in current IDs.
#[derive(Debug, Clone)]
pub struct NewSessionId<'a> {
    /// API key or application ID.
    pub owner: &'a str,
    /// Location hint, or empty.
    pub location: &'a str,
    /// Creation time, epoch milliseconds.
    pub created_ms: u128,
    /// 24 random characters of the standard base64 alphabet.
    pub random: &'a str,
    /// Relayed sessions carry `P` in field 5.
    pub relayed: bool,
}

/// Encodes a session ID in the current real format:
/// `1_` + base64url(`1~owner~location~epoch_ms~random~P?~~`) without padding.
pub fn encode(parts: &NewSessionId<'_>) -> String {
    let relayed = if parts.relayed { "P" } else { "" };
    let plain = format!(
        "1~{}~{}~{}~{}~{relayed}~~",
        parts.owner, parts.location, parts.created_ms, parts.random
    );
    format!("1_{}", LENIENT.encode(plain))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decodes_the_sdk_fixture_owned_by_key_123456() {
        let decoded =
            decode("1_MX4xMjM0NTZ-flNhdCBNYXIgMTUgMTQ6NDI6MjMgUERUIDIwMTR-MC40OTAxMzAyNX4")
                .unwrap();
        assert_eq!(decoded.owner, "123456");
        assert_eq!(decoded.location, None);
        assert!(!decoded.relayed);
    }

    #[test]
    fn decodes_location_and_relayed_flag_of_real_ids() {
        let with_location =
            decode("1_MX4xMDB-MTI3LjAuMC4xflR1ZSBKYW4gMjggMTU6NDg6NDAgUFNUIDIwMTR-MC43NjAyOTYyfg")
                .unwrap();
        assert_eq!(with_location.owner, "100");
        assert_eq!(with_location.location.as_deref(), Some("127.0.0.1"));

        let relayed =
            decode("1_MX40NzY2NTk3MX5-MTczOTUzODg5NDk1OX5ROW1jWEcxUXJOM1RJWXU4eStwcHgvZ3N-UH5-")
                .unwrap();
        assert_eq!(relayed.owner, "47665971");
        assert!(relayed.relayed);
    }

    #[test]
    fn decodes_application_owned_ids_with_either_sentinel() {
        for id in [
            "1_MX4yOWY3NjBmOC03Y2UxLTQ2YzktYWRlMy1mMmRlZGVlNGVkNWZ-fjE3MjY0NjI1ODg2NDd-MTF4TGExYmJoelBlR1FHbVhzbWd4STBrfn5-",
            "2_MX4yOWY3NjBmOC03Y2UxLTQ2YzktYWRlMy1mMmRlZGVlNGVkNWZ-fjE3Mjc4NzcyMTYwNzJ-OUJ1WHN0V05vN0NoU044OGthaURwNmpxfn5-",
        ] {
            assert!(
                is_owned_by(id, "29f760f8-7ce1-46c9-ade3-f2dedee4ed5f"),
                "{id}"
            );
            assert!(!is_owned_by(id, "123456"), "{id}");
        }
    }

    #[test]
    fn rejects_malformed_ids() {
        for bad in [
            "",
            "1_",
            "x_MX4xMjM0NTZ-",
            "1-MX4xMjM0NTZ-",
            "1_!!!!",
            "1_bm90aGluZw",
            &"1_".repeat(200),
        ] {
            assert!(decode(bad).is_err(), "{bad:?} should not decode");
        }
    }

    #[test]
    fn encode_then_decode_round_trips() {
        let id = encode(&NewSessionId {
            owner: "a1b2c3d4-0000-4000-8000-000000000001",
            location: "203.0.113.7",
            created_ms: 1_739_538_894_959,
            random: "Q9mcXG1QrN3TIYu8y+ppx/gs",
            relayed: true,
        });
        assert!(id.starts_with("1_MX5"));
        let decoded = decode(&id).unwrap();
        assert_eq!(decoded.owner, "a1b2c3d4-0000-4000-8000-000000000001");
        assert_eq!(decoded.location.as_deref(), Some("203.0.113.7"));
        assert!(decoded.relayed);
    }

    proptest! {
        #[test]
        fn decode_never_panics(input in ".{0,300}") {
            let _ = decode(&input);
        }

        #[test]
        fn encoded_ids_are_owned_by_their_owner(owner in "[0-9]{1,12}|[0-9a-f-]{36}", relayed: bool) {
            let id = encode(&NewSessionId { owner: &owner, location: "", created_ms: 1, random: "abcdefghijklmnopqrstuvwx", relayed });
            prop_assert!(is_owned_by(&id, &owner));
            let other = format!("{owner}0");
            prop_assert!(!is_owned_by(&id, &other));
        }
    }
}
