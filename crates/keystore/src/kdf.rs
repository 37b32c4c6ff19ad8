//! Key derivation (scrypt, PBKDF2-HMAC-SHA256) with bounds checked before anything runs.
//!
//! A keystore chooses its own KDF cost, so a hostile or broken keystore could ask for a
//! scrypt that needs terabytes of memory or a PBKDF2 that runs for hours. [`KdfParams::check`]
//! refuses such settings up front. The bounds are:
//!
//! | parameter | accepted | why |
//! |---|---|---|
//! | scrypt `n` | a power of two, `2 ..= 2^20` | `2^18` is the EIP-2335 default (256 MiB with `r = 8`); `2^20` with `r = 8` needs **1 GiB** of memory, the most we accept |
//! | scrypt `r` | `1 ..= 32` | default 8 |
//! | scrypt `p` | `1 ..= 16` | default 1 |
//! | scrypt `128·n·r·p` | `<= 1 GiB` ([`MAX_SCRYPT_COST_BYTES`]) | bounds memory (`128·n·r`) and CPU (`p` sequential passes) together |
//! | PBKDF2 `c` | `1 ..= 2^24` | default `2^18` (~30 ms); `2^24` is 64× that, about 2 s |
//! | salt | `16 ..= 128` bytes | real tools use 32 |
//! | `dklen` | exactly 32 | EIP-2335 uses 16 bytes for the cipher key and 16 for the checksum |
//!
//! The derived key is returned in a [`Zeroizing`] buffer.

use sha2::Sha256;
use zeroize::Zeroizing;

use crate::Error;

/// Length of the derived key (`dklen`).
pub const DK_LEN: usize = 32;
/// Smallest accepted scrypt `log2(n)` (n = 2).
pub const MIN_SCRYPT_LOG2_N: u8 = 1;
/// Largest accepted scrypt `log2(n)` (n = 2^20; with r = 8 this needs 1 GiB of memory).
pub const MAX_SCRYPT_LOG2_N: u8 = 20;
/// Largest accepted scrypt `r`.
pub const MAX_SCRYPT_R: u32 = 32;
/// Largest accepted scrypt `p`.
pub const MAX_SCRYPT_P: u32 = 16;
/// Largest accepted scrypt `128·n·r·p` (1 GiB).
pub const MAX_SCRYPT_COST_BYTES: u64 = 1 << 30;
/// Largest accepted PBKDF2 iteration count (2^24).
pub const MAX_PBKDF2_C: u32 = 1 << 24;
/// Shortest accepted salt, in bytes.
pub const MIN_SALT_LEN: usize = 16;
/// Longest accepted salt, in bytes.
pub const MAX_SALT_LEN: usize = 128;
/// Salt length used when this crate creates a salt.
pub const SALT_LEN: usize = 32;
/// scrypt `r` used when this crate encrypts.
pub const DEFAULT_SCRYPT_R: u32 = 8;
/// scrypt `p` used when this crate encrypts.
pub const DEFAULT_SCRYPT_P: u32 = 1;

/// The KDF to use when encrypting (a keystore, or the key cache).
///
/// scrypt always uses `r = 8`, `p = 1` here; decryption accepts other values within bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kdf {
    /// scrypt with `n = 2^log2_n`, `r = 8`, `p = 1`.
    Scrypt {
        /// `log2(n)`, `1 ..= 20`.
        log2_n: u8,
    },
    /// PBKDF2-HMAC-SHA256 with `c` iterations.
    Pbkdf2 {
        /// Iteration count, `1 ..= 2^24`.
        c: u32,
    },
}

impl Kdf {
    /// The EIP-2335 scrypt default: `n = 2^18`, `r = 8`, `p = 1` (256 MiB, ~0.6 s).
    pub const EIP2335_SCRYPT: Kdf = Kdf::Scrypt { log2_n: 18 };
    /// The EIP-2335 PBKDF2 default: `c = 2^18` (~30 ms).
    pub const EIP2335_PBKDF2: Kdf = Kdf::Pbkdf2 { c: 1 << 18 };
    /// A deliberately weak setting for tests only (PBKDF2, 16 iterations). Never use it for
    /// real keys.
    pub const INSECURE_TEST_ONLY: Kdf = Kdf::Pbkdf2 { c: 16 };
    /// A deliberately weak scrypt setting for tests only (`n = 2^4`).
    pub const INSECURE_TEST_ONLY_SCRYPT: Kdf = Kdf::Scrypt { log2_n: 4 };

    /// The full parameters this choice stands for.
    pub fn params(self) -> KdfParams {
        match self {
            Kdf::Scrypt { log2_n } => KdfParams::Scrypt {
                log2_n,
                r: DEFAULT_SCRYPT_R,
                p: DEFAULT_SCRYPT_P,
            },
            Kdf::Pbkdf2 { c } => KdfParams::Pbkdf2 { c },
        }
    }
}

/// Complete KDF parameters (without the salt), as read from a keystore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KdfParams {
    /// scrypt with `n = 2^log2_n`.
    Scrypt {
        /// `log2(n)`.
        log2_n: u8,
        /// Block size parameter.
        r: u32,
        /// Parallelisation parameter.
        p: u32,
    },
    /// PBKDF2-HMAC-SHA256.
    Pbkdf2 {
        /// Iteration count.
        c: u32,
    },
}

impl KdfParams {
    /// Checks the bounds listed in the [module documentation](self). Cheap; runs nothing.
    pub fn check(&self) -> Result<(), Error> {
        match *self {
            KdfParams::Scrypt { log2_n, r, p } => {
                if !(MIN_SCRYPT_LOG2_N..=MAX_SCRYPT_LOG2_N).contains(&log2_n) {
                    return Err(Error::KdfParamsOutOfBounds(format!(
                        "scrypt n must be a power of two in 2..=2^{MAX_SCRYPT_LOG2_N}, got 2^{log2_n}"
                    )));
                }
                if !(1..=MAX_SCRYPT_R).contains(&r) {
                    return Err(Error::KdfParamsOutOfBounds(format!(
                        "scrypt r must be in 1..={MAX_SCRYPT_R}, got {r}"
                    )));
                }
                if !(1..=MAX_SCRYPT_P).contains(&p) {
                    return Err(Error::KdfParamsOutOfBounds(format!(
                        "scrypt p must be in 1..={MAX_SCRYPT_P}, got {p}"
                    )));
                }
                let cost = self.cost_bytes();
                if cost > MAX_SCRYPT_COST_BYTES {
                    return Err(Error::KdfParamsOutOfBounds(format!(
                        "scrypt 128*n*r*p = {cost} bytes exceeds {MAX_SCRYPT_COST_BYTES}"
                    )));
                }
                Ok(())
            }
            KdfParams::Pbkdf2 { c } => {
                if !(1..=MAX_PBKDF2_C).contains(&c) {
                    return Err(Error::KdfParamsOutOfBounds(format!(
                        "pbkdf2 c must be in 1..={MAX_PBKDF2_C}, got {c}"
                    )));
                }
                Ok(())
            }
        }
    }

    /// scrypt's `128·n·r·p` (0 for PBKDF2), saturating. The memory one derivation holds is
    /// `128·n·r` plus small buffers; see [`KdfParams::memory_bytes`].
    pub fn cost_bytes(&self) -> u64 {
        match *self {
            KdfParams::Scrypt { log2_n, r, p } => 128u64
                .checked_shl(u32::from(log2_n))
                .and_then(|x| x.checked_mul(u64::from(r)))
                .and_then(|x| x.checked_mul(u64::from(p)))
                .unwrap_or(u64::MAX),
            KdfParams::Pbkdf2 { .. } => 0,
        }
    }

    /// Approximate peak memory of one derivation, in bytes (scrypt: `128·n·r`; PBKDF2: 0).
    /// A loader can use this to bound how many decryptions run at once.
    pub fn memory_bytes(&self) -> u64 {
        match *self {
            KdfParams::Scrypt { log2_n, r, .. } => 128u64
                .checked_shl(u32::from(log2_n))
                .and_then(|x| x.checked_mul(u64::from(r)))
                .unwrap_or(u64::MAX),
            KdfParams::Pbkdf2 { .. } => 0,
        }
    }

    /// Runs the KDF after checking the parameters and the salt length.
    pub fn derive(&self, password: &[u8], salt: &[u8]) -> Result<Zeroizing<[u8; DK_LEN]>, Error> {
        self.check()?;
        check_salt(salt)?;
        let mut dk = Zeroizing::new([0u8; DK_LEN]);
        match *self {
            KdfParams::Scrypt { log2_n, r, p } => {
                let params = scrypt::Params::new(log2_n, r, p).map_err(|_| {
                    Error::KdfParamsOutOfBounds("scrypt parameters rejected".to_owned())
                })?;
                scrypt::scrypt(password, salt, &params, dk.as_mut_slice()).map_err(|_| {
                    Error::KdfParamsOutOfBounds("scrypt output length rejected".to_owned())
                })?;
            }
            KdfParams::Pbkdf2 { c } => {
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, c, dk.as_mut_slice());
            }
        }
        Ok(dk)
    }
}

/// Checks that a salt length is within `MIN_SALT_LEN ..= MAX_SALT_LEN`.
pub fn check_salt(salt: &[u8]) -> Result<(), Error> {
    if (MIN_SALT_LEN..=MAX_SALT_LEN).contains(&salt.len()) {
        Ok(())
    } else {
        Err(Error::KdfParamsOutOfBounds(format!(
            "salt must be {MIN_SALT_LEN}..={MAX_SALT_LEN} bytes, got {}",
            salt.len()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_within_bounds() {
        for kdf in [
            Kdf::EIP2335_SCRYPT,
            Kdf::EIP2335_PBKDF2,
            Kdf::INSECURE_TEST_ONLY,
            Kdf::INSECURE_TEST_ONLY_SCRYPT,
        ] {
            kdf.params().check().unwrap();
        }
        assert_eq!(Kdf::EIP2335_SCRYPT.params().memory_bytes(), 256 << 20);
    }

    #[test]
    fn bounds_edges() {
        let s = |log2_n, r, p| KdfParams::Scrypt { log2_n, r, p }.check();
        assert!(s(20, 8, 1).is_ok()); // exactly 1 GiB
        assert!(s(20, 8, 2).is_err()); // 2 GiB of work
        assert!(s(21, 1, 1).is_err());
        assert!(s(0, 8, 1).is_err());
        assert!(s(18, 0, 1).is_err());
        assert!(s(18, 33, 1).is_err());
        assert!(s(18, 8, 0).is_err());
        assert!(s(18, 8, 17).is_err());
        assert!(s(18, 32, 1).is_ok());
        assert!(s(255, u32::MAX, u32::MAX).is_err());
        let c = |c| KdfParams::Pbkdf2 { c }.check();
        assert!(c(0).is_err());
        assert!(c(1).is_ok());
        assert!(c(1 << 24).is_ok());
        assert!(c((1 << 24) + 1).is_err());
        assert!(check_salt(&[0; 15]).is_err());
        assert!(check_salt(&[0; 16]).is_ok());
        assert!(check_salt(&[0; 128]).is_ok());
        assert!(check_salt(&[0; 129]).is_err());
    }

    #[test]
    fn pbkdf2_matches_rfc7914_vector() {
        // RFC 7914 section 11: PBKDF2-HMAC-SHA256, P = "passwd", S = "salt", c = 1, dkLen = 64
        // begins 55 ac 04 6e 56 e3 08 9f. The salt is below our 16-byte bound, so the library
        // is checked directly, then `derive` is checked against the library.
        let mut out = [0u8; 64];
        pbkdf2::pbkdf2_hmac::<Sha256>(b"passwd", b"salt", 1, &mut out);
        assert_eq!(hex::encode(&out[..8]), "55ac046e56e3089f");
        let salt = [7u8; 16];
        let dk = KdfParams::Pbkdf2 { c: 3 }.derive(b"pw", &salt).unwrap();
        let mut direct = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(b"pw", &salt, 3, &mut direct);
        assert_eq!(*dk, direct);
    }
}
