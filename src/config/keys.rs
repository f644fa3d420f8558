//! Public key types and PEM parsing, so that config validation and the verifier read a key
//! file the same way.

use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

/// `auth.public_key_file`, read and parsed at load.
#[derive(Debug, Clone)]
pub(crate) struct PublicKey {
    /// The key.
    pub(crate) key: DecodingKey,
    /// Its type, which decides the algorithms it may verify.
    pub(crate) kind: KeyType,
}

/// The key type, as far as algorithm pinning is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyType {
    /// RSA public key (`RS*`, `PS*`).
    Rsa,
    /// Elliptic-curve public key (`ES*`).
    Ec,
    /// Ed25519 public key (`EdDSA`).
    Ed,
    /// Shared secret (`HS*`).
    Hmac,
}

/// The key type of an algorithm, for config validation.
pub(crate) fn key_type_of(algorithm: Algorithm) -> KeyType {
    match algorithm.family() {
        AlgorithmFamily::Hmac => KeyType::Hmac,
        AlgorithmFamily::Rsa => KeyType::Rsa,
        AlgorithmFamily::Ec => KeyType::Ec,
        AlgorithmFamily::Ed => KeyType::Ed,
    }
}

/// Parses a PEM public key (RSA, EC or Ed25519) and tells its type.
pub(crate) fn parse_public_key_pem(pem: &[u8]) -> Result<(DecodingKey, KeyType), String> {
    if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        return Ok((key, KeyType::Rsa));
    }
    if let Ok(key) = DecodingKey::from_ec_pem(pem) {
        return Ok((key, KeyType::Ec));
    }
    if let Ok(key) = DecodingKey::from_ed_pem(pem) {
        return Ok((key, KeyType::Ed));
    }
    Err("is not a PEM RSA, EC or Ed25519 public key".to_owned())
}
