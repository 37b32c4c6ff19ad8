//! The key cache: many decrypted keys sealed under one KDF.
//!
//! Loading 1,000 scrypt keystores costs 1,000 scrypts (~10 minutes of CPU). The cache holds the
//! decrypted keys in one encrypted blob, so a restart costs one KDF plus one public-key
//! derivation per key. This module is the pure part: [`seal`] turns entries into bytes and
//! [`open`] turns bytes back into entries; the caller reads and writes the file.
//!
//! # Passphrase assumption
//!
//! The caller derives `passphrase` from the passwords of the keystores the cache holds (for
//! example a hash over all of them), so that anyone able to open the cache could already decrypt
//! every keystore in it: **the cache is no weaker than the keystores only if the passphrase is at
//! least as hard to guess as the keystore passwords, and the KDF at least as costly** (use
//! [`Kdf::EIP2335_SCRYPT`] for real caches). The passphrase bytes are used as they are (no
//! EIP-2335 password processing). Each entry carries the SHA-256 [`fingerprint`] of its keystore
//! file, so the caller can tell a stale entry (file changed or removed) from a current one.
//!
//! # Container (version 1, integers big-endian)
//!
//! ```text
//! magic "FSKCACHE" (8) | version = 1 (1) | kdf id (1: scrypt r=8 p=1, 2: pbkdf2-hmac-sha256)
//! | kdf parameter u32 (scrypt: log2 n; pbkdf2: c) | salt (32) | iv (16) | entry count u32
//! | ciphertext: count × (pubkey 48 | secret 32 | fingerprint 32) | tag (32)
//! ```
//!
//! `dk = KDF(passphrase, salt)`; the encryption key is the first 16 bytes of
//! `HMAC-SHA256(dk, "ferrosigner key cache v1 encryption")`, the authentication key is
//! `HMAC-SHA256(dk, "ferrosigner key cache v1 authentication")`. The ciphertext is AES-128-CTR
//! of the entries; the tag is HMAC-SHA256 over every byte before it (header and ciphertext), so
//! the KDF choice, count and ciphertext are all authenticated. [`open`] checks the structure and
//! KDF bounds before running the KDF, and the tag before decrypting anything.

use ctr::cipher::{KeyIvInit, StreamCipher};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use ferrosigner_bls::{PUBLIC_KEY_LEN, PublicKey, SECRET_KEY_LEN, SecretKey};

use crate::kdf::{DEFAULT_SCRYPT_P, DEFAULT_SCRYPT_R, DK_LEN, Kdf, KdfParams, SALT_LEN};
use crate::{Error, random_bytes};

type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;
type HmacSha256 = Hmac<Sha256>;

/// First bytes of every key cache.
pub const MAGIC: &[u8; 8] = b"FSKCACHE";
/// The container version written by [`seal`].
pub const VERSION: u8 = 1;

const KDF_SCRYPT: u8 = 1;
const KDF_PBKDF2: u8 = 2;
const IV_LEN: usize = 16;
const TAG_LEN: usize = 32;
const FINGERPRINT_LEN: usize = 32;
const HEADER_LEN: usize = 8 + 1 + 1 + 4 + SALT_LEN + IV_LEN + 4;
const ENTRY_LEN: usize = PUBLIC_KEY_LEN + SECRET_KEY_LEN + FINGERPRINT_LEN;
const ENC_LABEL: &[u8] = b"ferrosigner key cache v1 encryption";
const MAC_LABEL: &[u8] = b"ferrosigner key cache v1 authentication";

/// One cached key. `Debug` shows the public key and fingerprint only.
#[derive(Clone, Debug)]
pub struct CacheEntry {
    /// The validator public key.
    pub pubkey: PublicKey,
    /// The decrypted secret key; must match `pubkey`.
    pub secret: SecretKey,
    /// SHA-256 of the keystore file bytes the secret came from (see [`fingerprint`]).
    pub fingerprint: [u8; 32],
}

/// SHA-256 of a keystore file's bytes, the value stored in [`CacheEntry::fingerprint`].
pub fn fingerprint(keystore_file: &[u8]) -> [u8; 32] {
    Sha256::digest(keystore_file).into()
}

struct Keys {
    enc: Zeroizing<[u8; 32]>,
    mac: Zeroizing<[u8; 32]>,
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> Result<HmacSha256, Error> {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key)
        .map_err(|_| Error::CacheMalformed("key setup failed"))?;
    for p in parts {
        mac.update(p);
    }
    Ok(mac)
}

fn subkeys(dk: &[u8; DK_LEN]) -> Result<Keys, Error> {
    let enc = Zeroizing::new(hmac(dk, &[ENC_LABEL])?.finalize().into_bytes().into());
    let mac = Zeroizing::new(hmac(dk, &[MAC_LABEL])?.finalize().into_bytes().into());
    Ok(Keys { enc, mac })
}

fn kdf_params(id: u8, param: u32) -> Result<KdfParams, Error> {
    let params = match id {
        KDF_SCRYPT => KdfParams::Scrypt {
            log2_n: u8::try_from(param).unwrap_or(u8::MAX),
            r: DEFAULT_SCRYPT_R,
            p: DEFAULT_SCRYPT_P,
        },
        KDF_PBKDF2 => KdfParams::Pbkdf2 { c: param },
        other => return Err(Error::UnsupportedKdf(format!("key cache kdf id {other}"))),
    };
    params.check()?;
    Ok(params)
}

fn apply_ctr(key: &[u8; 32], iv: &[u8; IV_LEN], data: &mut [u8]) -> Result<(), Error> {
    let enc_key = key
        .get(..16)
        .ok_or(Error::CacheMalformed("key setup failed"))?;
    let mut cipher = Aes128Ctr::new_from_slices(enc_key, iv)
        .map_err(|_| Error::CacheMalformed("key setup failed"))?;
    cipher.apply_keystream(data);
    Ok(())
}

/// Seals `entries` under `passphrase` with one run of `kdf` (random salt and IV).
///
/// Every entry's secret must derive its `pubkey` ([`Error::PubkeyMismatch`] otherwise), so a
/// cache never holds an inconsistent pair. See the [module documentation](self) for the
/// passphrase assumption and the format.
pub fn seal(entries: &[CacheEntry], passphrase: &[u8], kdf: Kdf) -> Result<Vec<u8>, Error> {
    let params = kdf.params();
    params.check()?;
    let (kdf_id, kdf_param) = match kdf {
        Kdf::Scrypt { log2_n } => (KDF_SCRYPT, u32::from(log2_n)),
        Kdf::Pbkdf2 { c } => (KDF_PBKDF2, c),
    };
    let count =
        u32::try_from(entries.len()).map_err(|_| Error::CacheMalformed("too many entries"))?;
    for e in entries {
        if e.secret.public_key() != e.pubkey {
            return Err(Error::PubkeyMismatch);
        }
    }

    let mut salt = [0u8; SALT_LEN];
    random_bytes(&mut salt)?;
    let mut iv = [0u8; IV_LEN];
    random_bytes(&mut iv)?;

    let body_len = entries
        .len()
        .checked_mul(ENTRY_LEN)
        .ok_or(Error::CacheMalformed("too many entries"))?;
    let mut plaintext = Zeroizing::new(Vec::with_capacity(body_len));
    for e in entries {
        plaintext.extend_from_slice(e.pubkey.as_bytes());
        plaintext.extend_from_slice(e.secret.to_bytes().as_slice());
        plaintext.extend_from_slice(&e.fingerprint);
    }

    let dk = params.derive(passphrase, &salt)?;
    let keys = subkeys(&dk)?;
    apply_ctr(&keys.enc, &iv, plaintext.as_mut_slice())?;

    let mut out = Vec::with_capacity(HEADER_LEN + body_len + TAG_LEN);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(kdf_id);
    out.extend_from_slice(&kdf_param.to_be_bytes());
    out.extend_from_slice(&salt);
    out.extend_from_slice(&iv);
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(&plaintext); // now ciphertext
    let tag = hmac(keys.mac.as_slice(), &[&out])?.finalize().into_bytes();
    out.extend_from_slice(&tag);
    Ok(out)
}

/// A little reader over the header that never panics.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if self.rest.len() < n {
            return Err(Error::CacheMalformed("truncated"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        self.take(N)?
            .try_into()
            .map_err(|_| Error::CacheMalformed("truncated"))
    }

    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, Error> {
        Ok(u32::from_be_bytes(self.array::<4>()?))
    }
}

/// Opens a cache produced by [`seal`].
///
/// Order of checks: magic, version, KDF identifier and bounds, exact length for the declared
/// entry count — all before the KDF runs; then the HMAC tag (constant time) before anything is
/// decrypted; then every entry's public key is validated and re-derived from its secret
/// ([`Error::PubkeyMismatch`] if they differ). A wrong passphrase and a modified file both give
/// [`Error::CacheAuthenticationFailed`]; truncation gives [`Error::CacheMalformed`].
pub fn open(bytes: &[u8], passphrase: &[u8]) -> Result<Vec<CacheEntry>, Error> {
    let mut r = Reader { rest: bytes };
    if r.take(MAGIC.len())? != MAGIC.as_slice() {
        return Err(Error::CacheMalformed("not a key cache (bad magic)"));
    }
    let version = r.u8()?;
    if version != VERSION {
        return Err(Error::UnsupportedCacheVersion(version));
    }
    let kdf_id = r.u8()?;
    let kdf_param = r.u32()?;
    let params = kdf_params(kdf_id, kdf_param)?;
    let salt = r.array::<SALT_LEN>()?;
    let iv = r.array::<IV_LEN>()?;
    let count = r.u32()?;
    let body_len = usize::try_from(count)
        .ok()
        .and_then(|c| c.checked_mul(ENTRY_LEN))
        .ok_or(Error::CacheMalformed("entry count too large"))?;
    let expected = body_len
        .checked_add(TAG_LEN)
        .ok_or(Error::CacheMalformed("entry count too large"))?;
    if r.rest.len() != expected {
        return Err(Error::CacheMalformed(
            "length does not match the entry count (truncated or extended)",
        ));
    }
    let signed_len = bytes.len() - TAG_LEN;
    let (signed, tag) = bytes.split_at(signed_len);
    let (_, ciphertext) = signed.split_at(HEADER_LEN);

    let dk = params.derive(passphrase, &salt)?;
    let keys = subkeys(&dk)?;
    hmac(keys.mac.as_slice(), &[signed])?
        .verify_slice(tag)
        .map_err(|_| Error::CacheAuthenticationFailed)?;

    let mut plaintext = Zeroizing::new(ciphertext.to_vec());
    apply_ctr(&keys.enc, &iv, plaintext.as_mut_slice())?;

    let mut entries = Vec::with_capacity(plaintext.len() / ENTRY_LEN);
    for chunk in plaintext.chunks_exact(ENTRY_LEN) {
        let (pk, rest) = chunk.split_at(PUBLIC_KEY_LEN);
        let (sk, fp) = rest.split_at(SECRET_KEY_LEN);
        let pubkey = PublicKey::from_bytes(pk)
            .map_err(|_| Error::CacheMalformed("invalid public key in entry"))?;
        let secret = SecretKey::from_bytes(sk).map_err(|_| Error::InvalidSecretKey)?;
        if secret.public_key() != pubkey {
            return Err(Error::PubkeyMismatch);
        }
        let fingerprint = fp
            .try_into()
            .map_err(|_| Error::CacheMalformed("truncated"))?;
        entries.push(CacheEntry {
            pubkey,
            secret,
            fingerprint,
        });
    }
    Ok(entries)
}
