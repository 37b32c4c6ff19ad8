//! Key cache: seal/open round trips, wrong passphrase, tampering, truncation, bounds.

mod common;

use std::time::{Duration, Instant};

use common::{heavy_kdf, kind};
use ferrosigner_keystore::key_cache::{CacheEntry, MAGIC, fingerprint, open, seal};
use ferrosigner_keystore::{Error, Kdf, SecretKey};

const PASSPHRASE: &[u8] = b"derived from the keystore passwords";

fn entries(n: u8) -> Vec<CacheEntry> {
    (0..n)
        .map(|i| {
            let secret = SecretKey::key_gen(&[i; 32]).unwrap();
            CacheEntry {
                pubkey: secret.public_key(),
                secret,
                fingerprint: fingerprint(format!("keystore file {i}").as_bytes()),
            }
        })
        .collect()
}

fn assert_same(a: &[CacheEntry], b: &[CacheEntry]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.pubkey, y.pubkey);
        assert_eq!(*x.secret.to_bytes(), *y.secret.to_bytes());
        assert_eq!(x.fingerprint, y.fingerprint);
    }
}

#[test]
fn round_trip_pbkdf2_and_scrypt() {
    let original = entries(5);
    for kdf in [Kdf::INSECURE_TEST_ONLY, Kdf::INSECURE_TEST_ONLY_SCRYPT] {
        let sealed = seal(&original, PASSPHRASE, kdf).unwrap();
        assert!(sealed.starts_with(MAGIC));
        assert_same(&open(&sealed, PASSPHRASE).unwrap(), &original);
        // Each seal uses a fresh salt and IV.
        assert_ne!(seal(&original, PASSPHRASE, kdf).unwrap(), sealed);
    }
}

#[test]
fn empty_cache_round_trips() {
    let sealed = seal(&[], PASSPHRASE, Kdf::INSECURE_TEST_ONLY).unwrap();
    assert!(open(&sealed, PASSPHRASE).unwrap().is_empty());
    assert_eq!(
        open(&sealed, b"other").unwrap_err(),
        Error::CacheAuthenticationFailed
    );
}

#[test]
fn fingerprint_is_sha256_of_the_file() {
    // Two different files never share a fingerprint here; equal bytes always do.
    assert_eq!(fingerprint(b"abc"), fingerprint(b"abc"));
    assert_ne!(fingerprint(b"abc"), fingerprint(b"abd"));
    use sha2::Digest;
    let direct: [u8; 32] = sha2::Sha256::digest(b"abc").into();
    assert_eq!(fingerprint(b"abc"), direct);
}

#[test]
fn wrong_passphrase_fails_authentication() {
    let sealed = seal(&entries(2), PASSPHRASE, Kdf::INSECURE_TEST_ONLY).unwrap();
    for wrong in [&b""[..], b"derived from the keystore passwordz", b"x"] {
        let err = open(&sealed, wrong).unwrap_err();
        assert_eq!(err, Error::CacheAuthenticationFailed);
    }
}

#[test]
fn every_single_bit_flip_is_detected() {
    let original = entries(2);
    let sealed = seal(&original, PASSPHRASE, Kdf::INSECURE_TEST_ONLY).unwrap();
    for i in 0..sealed.len() {
        // Byte 11 is the third byte of the PBKDF2 count: its high bits would make a valid but
        // needlessly slow count (2^23), so flip low bits there.
        let bits = if i == 11 {
            [0x01u8, 0x02]
        } else {
            [0x01u8, 0x80]
        };
        for bit in bits {
            let mut tampered = sealed.clone();
            tampered[i] ^= bit;
            let err = open(&tampered, PASSPHRASE).expect_err(&format!("byte {i} bit {bit:#x}"));
            let expected: &[&str] = match i {
                0..=7 => &["CacheMalformed"],
                8 => &["UnsupportedCacheVersion"],
                9 => &["UnsupportedKdf"],
                // The KDF parameter: out of bounds, or a different (authenticated) cost.
                10..=13 => &["KdfParamsOutOfBounds", "CacheAuthenticationFailed"],
                // The entry count: the length no longer matches.
                62..=65 => &["CacheMalformed"],
                _ => &["CacheAuthenticationFailed"],
            };
            assert!(
                expected.contains(&kind(&err).as_str()),
                "byte {i} bit {bit:#x}: {err}"
            );
        }
    }
}

#[test]
fn every_truncation_and_extension_is_refused_quickly() {
    let sealed = seal(&entries(2), PASSPHRASE, Kdf::INSECURE_TEST_ONLY).unwrap();
    for len in 0..sealed.len() {
        let err = open(&sealed[..len], PASSPHRASE).unwrap_err();
        assert_eq!(kind(&err), "CacheMalformed", "length {len}");
    }
    let mut extended = sealed.clone();
    extended.push(0);
    assert_eq!(
        kind(&open(&extended, PASSPHRASE).unwrap_err()),
        "CacheMalformed"
    );
    // Dropping one whole entry (and fixing nothing else) is also caught.
    let mut shorter = sealed.clone();
    shorter.drain(66..66 + 112);
    assert_eq!(
        kind(&open(&shorter, PASSPHRASE).unwrap_err()),
        "CacheMalformed"
    );
}

#[test]
fn count_and_kdf_tampering_refused_before_kdf() {
    let sealed = seal(&entries(1), PASSPHRASE, Kdf::INSECURE_TEST_ONLY).unwrap();
    // Claim 2^32-1 entries: refused by the length check, no allocation, no KDF.
    let mut huge = sealed.clone();
    huge[62..66].copy_from_slice(&u32::MAX.to_be_bytes());
    let started = Instant::now();
    assert_eq!(
        kind(&open(&huge, PASSPHRASE).unwrap_err()),
        "CacheMalformed"
    );
    // Claim scrypt with n = 2^30: refused by the bounds, no KDF.
    let mut scrypt = sealed.clone();
    scrypt[9] = 1;
    scrypt[10..14].copy_from_slice(&30u32.to_be_bytes());
    assert_eq!(
        kind(&open(&scrypt, PASSPHRASE).unwrap_err()),
        "KdfParamsOutOfBounds"
    );
    // Claim pbkdf2 with c = 2^31.
    let mut pbkdf2 = sealed.clone();
    pbkdf2[10..14].copy_from_slice(&(1u32 << 31).to_be_bytes());
    assert_eq!(
        kind(&open(&pbkdf2, PASSPHRASE).unwrap_err()),
        "KdfParamsOutOfBounds"
    );
    assert!(started.elapsed() < Duration::from_millis(100));
    // Not a cache at all.
    assert_eq!(
        kind(&open(b"{\"crypto\": {}}", PASSPHRASE).unwrap_err()),
        "CacheMalformed"
    );
}

#[test]
fn seal_refuses_inconsistent_entries_and_bad_kdf() {
    let mut bad = entries(2);
    bad[1].pubkey = bad[0].pubkey;
    assert_eq!(
        seal(&bad, PASSPHRASE, Kdf::INSECURE_TEST_ONLY).unwrap_err(),
        Error::PubkeyMismatch
    );
    assert_eq!(
        kind(&seal(&entries(1), PASSPHRASE, Kdf::Scrypt { log2_n: 25 }).unwrap_err()),
        "KdfParamsOutOfBounds"
    );
}

#[test]
fn sealed_bytes_and_debug_hold_no_secret() {
    let original = entries(3);
    let sealed = seal(&original, PASSPHRASE, Kdf::INSECURE_TEST_ONLY).unwrap();
    for e in &original {
        let secret = e.secret.to_bytes();
        assert!(!sealed.windows(32).any(|w| w == secret.as_slice()));
        assert!(!sealed.windows(16).any(|w| w == &secret[..16]));
        let shown = format!("{e:?}");
        assert!(!shown.contains(&hex::encode(*secret)), "{shown}");
        assert!(shown.contains(&e.pubkey.to_hex()));
    }
    assert!(!sealed.windows(PASSPHRASE.len()).any(|w| w == PASSPHRASE));
    let err = open(&sealed, b"wrong passphrase text").unwrap_err();
    assert!(!err.to_string().contains("wrong passphrase text"));
}

#[test]
fn thousand_keys_open_with_one_default_scrypt() {
    let original: Vec<CacheEntry> = (0..1000u32)
        .map(|i| {
            let mut ikm = [0u8; 32];
            ikm[..4].copy_from_slice(&i.to_be_bytes());
            let secret = SecretKey::key_gen(&ikm).unwrap();
            CacheEntry {
                pubkey: secret.public_key(),
                secret,
                fingerprint: fingerprint(&ikm),
            }
        })
        .collect();
    let _guard = heavy_kdf();
    let started = Instant::now();
    let sealed = seal(&original, PASSPHRASE, Kdf::EIP2335_SCRYPT).unwrap();
    let sealed_in = started.elapsed();
    let started = Instant::now();
    let opened = open(&sealed, PASSPHRASE).unwrap();
    eprintln!(
        "key cache, 1000 keys, scrypt 2^18: seal {sealed_in:?}, open {:?} ({} bytes)",
        started.elapsed(),
        sealed.len()
    );
    assert_same(&opened, &original);
}
