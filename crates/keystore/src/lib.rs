//! EIP-2335 BLS keystores, EIP-2333/2334 key derivation and the encrypted key cache.
//!
//! How the parts connect:
//!
//! - [`password`]: EIP-2335 password processing ([`normalize_password`]: NFKD, then control
//!   characters removed). Every password goes through it before a KDF sees it.
//! - [`kdf`]: the two key derivation functions (scrypt, PBKDF2-HMAC-SHA256), their **bounds**
//!   (checked before any KDF runs, so a hostile keystore cannot make us burn gigabytes of memory
//!   or minutes of CPU) and the [`Kdf`] choice used when encrypting.
//! - [`keystore`]: the [`Keystore`] type: structural validation of the JSON
//!   ([`Keystore::from_json`]), decryption (KDF → SHA-256 checksum compared in constant time →
//!   AES-128-CTR → secret key → public key check) and encryption.
//! - [`derivation`]: EIP-2333 key trees (via `blst`) addressed by EIP-2334 paths.
//! - [`key_cache`]: one file holding many decrypted keys, sealed under one KDF, so a restart with
//!   many scrypt keystores costs one KDF instead of one per keystore.
//!
//! Secrets (derived keys, processed passwords, plaintexts) live in [`zeroize::Zeroizing`]
//! buffers; nothing in this crate prints a secret, and no [`Error`] carries one. The crate is
//! pure: no async, and no file I/O (callers read and write the bytes).
//!
//! Every fallible operation returns the one [`Error`] enum of this crate.
#![warn(missing_docs)]

pub mod derivation;
pub mod kdf;
pub mod key_cache;
pub mod keystore;
pub mod password;

pub use derivation::{derive_secret_key, validator_signing_path, validator_withdrawal_path};
pub use ferrosigner_bls::{PublicKey, SecretKey};
pub use kdf::Kdf;
pub use keystore::Keystore;
pub use password::normalize_password;

/// Everything that can go wrong in this crate.
///
/// No variant ever carries a password, a derived key or secret key material. Variants that
/// echo text from an input (such as an unsupported function name) truncate it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The text is not JSON, or a field has the wrong JSON type.
    #[error("invalid keystore JSON: {0}")]
    InvalidJson(String),
    /// A required field is absent (the value is its JSON path).
    #[error("keystore field missing: {0}")]
    MissingField(&'static str),
    /// A field is present but malformed (bad hex, wrong length, not an integer...).
    #[error("keystore field invalid: {0}")]
    InvalidField(&'static str),
    /// The keystore `version` is not 4.
    #[error("unsupported keystore version {0} (only version 4 is supported)")]
    UnsupportedVersion(String),
    /// The KDF is neither `scrypt` nor `pbkdf2` with `hmac-sha256`.
    #[error("unsupported kdf: {0}")]
    UnsupportedKdf(String),
    /// The cipher is not `aes-128-ctr`.
    #[error("unsupported cipher: {0}")]
    UnsupportedCipher(String),
    /// The checksum function is not `sha256`.
    #[error("unsupported checksum function: {0}")]
    UnsupportedChecksum(String),
    /// KDF parameters outside the bounds this crate accepts (see [`kdf`]); refused before
    /// running the KDF.
    #[error("kdf parameters out of bounds: {0}")]
    KdfParamsOutOfBounds(String),
    /// The checksum did not match: the password is wrong (or the keystore is corrupted).
    #[error("wrong password (keystore checksum mismatch)")]
    WrongPassword,
    /// The decrypted bytes are not a valid BLS secret key.
    #[error("decrypted secret is not a valid BLS secret key")]
    InvalidSecretKey,
    /// The public key derived from the decrypted secret differs from the stored public key.
    #[error("public key of the decrypted secret does not match the stored public key")]
    PubkeyMismatch,
    /// An EIP-2334 derivation path is malformed.
    #[error("invalid derivation path: {0}")]
    InvalidPath(&'static str),
    /// An EIP-2333 seed is shorter than 32 bytes.
    #[error("seed must be at least 32 bytes")]
    SeedTooShort,
    /// The operating system's random number generator failed.
    #[error("random number generator unavailable")]
    RandomUnavailable,
    /// A key cache file is truncated or structurally broken.
    #[error("key cache malformed: {0}")]
    CacheMalformed(&'static str),
    /// A key cache file has a container version this build does not read.
    #[error("unsupported key cache version {0}")]
    UnsupportedCacheVersion(u8),
    /// The key cache's authentication tag did not verify: wrong passphrase, or the file was
    /// modified.
    #[error("key cache authentication failed (wrong passphrase or modified file)")]
    CacheAuthenticationFailed,
}

/// Truncates text taken from an input before it goes into an error message.
pub(crate) fn echo(s: &str) -> String {
    const MAX: usize = 32;
    let mut out: String = s.chars().take(MAX).collect();
    if s.chars().nth(MAX).is_some() {
        out.push('…');
    }
    format!("{out:?}")
}

/// Fills `buf` from the operating system's random number generator.
pub(crate) fn random_bytes(buf: &mut [u8]) -> Result<(), Error> {
    getrandom::fill(buf).map_err(|_| Error::RandomUnavailable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_truncates_and_quotes() {
        assert_eq!(echo("pbkdf3"), "\"pbkdf3\"");
        let long = "x".repeat(100);
        let shown = echo(&long);
        assert!(shown.chars().count() < 40, "{shown}");
        assert!(shown.contains('…'));
    }
}
