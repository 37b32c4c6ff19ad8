//! BLS12-381 signing for Ethereum consensus, as a thin layer over `blst`.
//!
//! Ethereum uses the "minimal public key" variant (48-byte public keys in G1, 96-byte signatures in
//! G2) with the proof-of-possession ciphersuite [`DST`]. This crate exposes only what a signer needs:
//!
//! - [`SecretKey`]: zeroized on drop, never printed (its `Debug` shows only the public key);
//! - [`PublicKey`]: a validated, compressed public key, cheap to copy, hash and compare;
//! - [`Signature`]: a compressed signature;
//! - EIP-2333 derivation ([`SecretKey::derive_master_eip2333`], [`SecretKey::derive_child_eip2333`]);
//! - [`HashCache`]: signing roots hashed to G2 once and shared by the signing threads. A signature is
//!   the hash of the root ([`HashedRoot`], public, about half the cost) multiplied by the secret key;
//!   [`SecretKey::sign_with`] takes the hash from the cache and finishes with
//!   [`SecretKey::sign_hashed`], byte for byte [`SecretKey::sign`].
//!
//! Every fallible operation returns the one [`Error`] enum of this crate. The only `unsafe` code, two
//! calls into blst's C API, is in the private `raw` module of `hash_cache.rs`.

use std::fmt;
use std::str::FromStr;

use blst::BLST_ERROR;
use blst::min_pk;
use zeroize::Zeroizing;

mod hash_cache;

pub use hash_cache::{HASH_CACHE_CAPACITY, HashCache, HashedRoot};

/// The Ethereum consensus proof-of-possession ciphersuite domain separation tag.
pub const DST: &[u8] = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";

/// Length of a compressed public key.
pub const PUBLIC_KEY_LEN: usize = 48;
/// Length of a compressed signature.
pub const SIGNATURE_LEN: usize = 96;
/// Length of a secret key.
pub const SECRET_KEY_LEN: usize = 32;

/// Everything that can go wrong in this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A hex string was not valid hex, or had the wrong length.
    #[error("invalid hex: {0}")]
    InvalidHex(&'static str),
    /// Bytes were not a valid secret key (wrong length, zero, or not below the group order).
    #[error("invalid secret key")]
    InvalidSecretKey,
    /// Bytes were not a valid public key (encoding, not on the curve, not in G1, or infinity).
    #[error("invalid public key: {0}")]
    InvalidPublicKey(&'static str),
    /// Bytes were not a valid signature encoding.
    #[error("invalid signature: {0}")]
    InvalidSignature(&'static str),
    /// Key material for EIP-2333 derivation was shorter than 32 bytes.
    #[error("key material must be at least 32 bytes")]
    ShortKeyMaterial,
}

fn blst_reason(e: BLST_ERROR) -> &'static str {
    match e {
        BLST_ERROR::BLST_BAD_ENCODING => "bad encoding",
        BLST_ERROR::BLST_POINT_NOT_ON_CURVE => "point not on curve",
        BLST_ERROR::BLST_POINT_NOT_IN_GROUP => "point not in group",
        BLST_ERROR::BLST_PK_IS_INFINITY => "point at infinity",
        _ => "rejected",
    }
}

/// Decodes `0x`-prefixed (or bare) hex into exactly `N` bytes.
pub fn decode_hex_array<const N: usize>(s: &str) -> Result<[u8; N], Error> {
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if s.len() != N * 2 {
        return Err(Error::InvalidHex("wrong length"));
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).map_err(|_| Error::InvalidHex("not hex"))?;
    Ok(out)
}

/// A BLS secret key. Zeroized when dropped; `Debug` never shows the key.
#[derive(Clone)]
pub struct SecretKey(min_pk::SecretKey);

impl SecretKey {
    /// Parses a 32-byte big-endian scalar; zero and values at or above the group order are refused.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        min_pk::SecretKey::from_bytes(bytes)
            .map(Self)
            .map_err(|_| Error::InvalidSecretKey)
    }

    /// The 32-byte big-endian encoding, in a buffer that is zeroized when dropped.
    pub fn to_bytes(&self) -> Zeroizing<[u8; SECRET_KEY_LEN]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// Generates a key from at least 32 bytes of input key material (IETF KeyGen).
    pub fn key_gen(ikm: &[u8]) -> Result<Self, Error> {
        min_pk::SecretKey::key_gen(ikm, &[])
            .map(Self)
            .map_err(|_| Error::ShortKeyMaterial)
    }

    /// EIP-2333 master key from a seed of at least 32 bytes.
    pub fn derive_master_eip2333(seed: &[u8]) -> Result<Self, Error> {
        min_pk::SecretKey::derive_master_eip2333(seed)
            .map(Self)
            .map_err(|_| Error::ShortKeyMaterial)
    }

    /// EIP-2333 child key at `index`.
    pub fn derive_child_eip2333(&self, index: u32) -> Self {
        Self(self.0.derive_child_eip2333(index))
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.sk_to_pk().compress())
    }

    /// Signs a message (for Ethereum, a 32-byte signing root) with the POP ciphersuite.
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.0.sign(message, DST, &[]).compress())
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(<redacted>, public key {})", self.public_key())
    }
}

/// A compressed BLS public key that has passed curve, subgroup and non-infinity checks.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; PUBLIC_KEY_LEN]);

impl PublicKey {
    /// Parses and validates a compressed public key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() != PUBLIC_KEY_LEN {
            return Err(Error::InvalidPublicKey("wrong length"));
        }
        let pk = min_pk::PublicKey::key_validate(bytes)
            .map_err(|e| Error::InvalidPublicKey(blst_reason(e)))?;
        Ok(Self(pk.compress()))
    }

    /// Parses `0x`-prefixed or bare hex (either case) and validates the key.
    pub fn from_hex(s: &str) -> Result<Self, Error> {
        let bytes: [u8; PUBLIC_KEY_LEN] = decode_hex_array(s)?;
        Self::from_bytes(&bytes)
    }

    /// The compressed encoding.
    pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.0
    }

    /// `0x`-prefixed lower-case hex, the form used in URLs and JSON.
    pub fn to_hex(&self) -> String {
        format!("0x{}", hex::encode(self.0))
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

impl FromStr for PublicKey {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::from_hex(s)
    }
}

/// A compressed BLS signature.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature([u8; SIGNATURE_LEN]);

impl Signature {
    /// Wraps a compressed signature after checking that it decodes to a point in G2.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() != SIGNATURE_LEN {
            return Err(Error::InvalidSignature("wrong length"));
        }
        let sig = min_pk::Signature::sig_validate(bytes, false)
            .map_err(|e| Error::InvalidSignature(blst_reason(e)))?;
        Ok(Self(sig.compress()))
    }

    /// Parses `0x`-prefixed or bare hex and checks the point.
    pub fn from_hex(s: &str) -> Result<Self, Error> {
        let bytes: [u8; SIGNATURE_LEN] = decode_hex_array(s)?;
        Self::from_bytes(&bytes)
    }

    /// The compressed encoding.
    pub fn as_bytes(&self) -> &[u8; SIGNATURE_LEN] {
        &self.0
    }

    /// `0x`-prefixed lower-case hex.
    pub fn to_hex(&self) -> String {
        format!("0x{}", hex::encode(self.0))
    }

    /// Verifies this signature over `message` under `public_key` (POP ciphersuite).
    pub fn verify(&self, public_key: &PublicKey, message: &[u8]) -> bool {
        let Ok(sig) = min_pk::Signature::from_bytes(&self.0) else {
            return false;
        };
        let Ok(pk) = min_pk::PublicKey::from_bytes(&public_key.0) else {
            return false;
        };
        sig.verify(true, message, DST, &[], &pk, true) == BLST_ERROR::BLST_SUCCESS
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secret() {
        let bytes = [7u8; 32];
        let sk = SecretKey::from_bytes(&bytes).unwrap();
        let shown = format!("{sk:?}");
        assert!(!shown.contains(&hex::encode(bytes)));
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn zero_secret_key_is_refused() {
        assert_eq!(
            SecretKey::from_bytes(&[0u8; 32]).unwrap_err(),
            Error::InvalidSecretKey
        );
    }

    #[test]
    fn hex_round_trip_and_case() {
        let pk = SecretKey::from_bytes(&[9u8; 32]).unwrap().public_key();
        let upper = format!("0x{}", hex::encode_upper(pk.as_bytes()));
        assert_eq!(PublicKey::from_hex(&upper).unwrap(), pk);
        assert_eq!(pk.to_hex().parse::<PublicKey>().unwrap(), pk);
        assert!(PublicKey::from_hex("0x1234").is_err());
        assert!(PublicKey::from_hex(&"zz".repeat(48)).is_err());
    }
}
