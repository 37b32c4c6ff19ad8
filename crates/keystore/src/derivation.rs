//! EIP-2333 key derivation addressed by EIP-2334 paths.
//!
//! The tree itself (HKDF, Lamport keys) is computed by `blst` through
//! [`SecretKey::derive_master_eip2333`] and [`SecretKey::derive_child_eip2333`]; this module
//! parses and validates paths such as `m/12381/3600/0/0/0` and walks them.

use ferrosigner_bls::SecretKey;

use crate::Error;

/// EIP-2334 purpose (`12381`, the BLS12-381 curve).
pub const PURPOSE: u32 = 12381;
/// EIP-2334 coin type for Ethereum consensus (`3600`).
pub const COIN_TYPE: u32 = 3600;

/// Parses an EIP-2334 path: `m` followed by zero or more `/index` components, each a canonical
/// decimal `u32` (no sign, no leading zeros, no hardened marker).
pub fn parse_path(path: &str) -> Result<Vec<u32>, Error> {
    let mut parts = path.split('/');
    if parts.next() != Some("m") {
        return Err(Error::InvalidPath("must start with \"m\""));
    }
    parts
        .map(|p| {
            if p.is_empty() {
                return Err(Error::InvalidPath("empty component"));
            }
            if !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Error::InvalidPath("components must be decimal digits"));
            }
            if p.len() > 1 && p.starts_with('0') {
                return Err(Error::InvalidPath("leading zero in component"));
            }
            p.parse::<u32>()
                .map_err(|_| Error::InvalidPath("component exceeds u32"))
        })
        .collect()
}

/// Derives the secret key at `path` from `seed` (at least 32 bytes): the EIP-2333 master key,
/// then one child derivation per path component.
pub fn derive_secret_key(seed: &[u8], path: &str) -> Result<SecretKey, Error> {
    let indices = parse_path(path)?;
    let mut key = SecretKey::derive_master_eip2333(seed).map_err(|_| Error::SeedTooShort)?;
    for index in indices {
        key = key.derive_child_eip2333(index);
    }
    Ok(key)
}

/// The EIP-2334 signing key path of validator `index`: `m/12381/3600/{index}/0/0`.
pub fn validator_signing_path(index: u32) -> String {
    format!("m/{PURPOSE}/{COIN_TYPE}/{index}/0/0")
}

/// The EIP-2334 withdrawal key path of validator `index`: `m/12381/3600/{index}/0`.
pub fn validator_withdrawal_path(index: u32) -> String {
    format!("m/{PURPOSE}/{COIN_TYPE}/{index}/0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse() {
        assert_eq!(parse_path("m").unwrap(), Vec::<u32>::new());
        assert_eq!(
            parse_path("m/12381/3600/0/0/0").unwrap(),
            vec![12381, 3600, 0, 0, 0]
        );
        assert_eq!(parse_path("m/4294967295").unwrap(), vec![u32::MAX]);
        for bad in [
            "",
            "M/1",
            "/1",
            "m/",
            "m//1",
            "m/1/",
            "m/-1",
            "m/+1",
            "m/01",
            "m/1'",
            "m/4294967296",
            "m/ 1",
            "x/1",
            "m1",
        ] {
            assert!(
                matches!(parse_path(bad), Err(Error::InvalidPath(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn signing_path_round_trips() {
        let p = validator_signing_path(7);
        assert_eq!(p, "m/12381/3600/7/0/0");
        assert_eq!(parse_path(&p).unwrap(), vec![12381, 3600, 7, 0, 0]);
        assert_eq!(validator_withdrawal_path(7), "m/12381/3600/7/0");
    }

    #[test]
    fn short_seed_refused() {
        assert_eq!(
            derive_secret_key(&[1u8; 31], "m/0").unwrap_err(),
            Error::SeedTooShort
        );
        assert!(derive_secret_key(&[1u8; 32], "m/0").is_ok());
        assert!(matches!(
            derive_secret_key(&[1u8; 32], "n/0"),
            Err(Error::InvalidPath(_))
        ));
    }

    #[test]
    fn path_walks_children() {
        let seed = [3u8; 32];
        let direct = SecretKey::derive_master_eip2333(&seed)
            .unwrap()
            .derive_child_eip2333(12381)
            .derive_child_eip2333(3600)
            .derive_child_eip2333(5)
            .derive_child_eip2333(0)
            .derive_child_eip2333(0);
        let via_path = derive_secret_key(&seed, &validator_signing_path(5)).unwrap();
        assert_eq!(*direct.to_bytes(), *via_path.to_bytes());
    }
}
