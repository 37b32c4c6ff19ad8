//! EIP-2335 (version 4) keystores.
//!
//! [`Keystore::from_json`] validates the whole structure and the KDF bounds without running
//! anything expensive; [`Keystore::decrypt`] then runs the KDF, verifies the checksum in constant
//! time, decrypts with AES-128-CTR, parses the BLS secret and checks it against the stored
//! public key.

use std::fmt;

use ctr::cipher::{KeyIvInit, StreamCipher};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use ferrosigner_bls::{PublicKey, SecretKey};

use crate::kdf::{DK_LEN, Kdf, KdfParams, SALT_LEN, check_salt};
use crate::password::normalize_password;
use crate::{Error, echo, random_bytes};

type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;

/// The only keystore version this crate reads and writes.
pub const VERSION: u64 = 4;
/// Length of the AES-128-CTR initialisation vector.
pub const IV_LEN: usize = 16;
/// Largest accepted cipher message, in bytes (a BLS secret is 32; the bound only keeps
/// nonsense out).
pub const MAX_CIPHERTEXT_LEN: usize = 1024;

/// A validated EIP-2335 version 4 keystore.
///
/// Holds only public data (the encrypted secret, salts, checksum); `Debug` shows the public
/// key, path, uuid and KDF, not the ciphertext.
#[derive(Clone, PartialEq, Eq)]
pub struct Keystore {
    kdf: KdfParams,
    salt: Vec<u8>,
    checksum: [u8; 32],
    iv: [u8; IV_LEN],
    ciphertext: Vec<u8>,
    description: Option<String>,
    pubkey: Option<String>,
    path: String,
    uuid: String,
}

impl fmt::Debug for Keystore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keystore")
            .field("pubkey", &self.pubkey)
            .field("path", &self.path)
            .field("uuid", &self.uuid)
            .field("kdf", &self.kdf)
            .finish_non_exhaustive()
    }
}

fn field<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &'static str,
) -> Result<&'a Value, Error> {
    match obj.get(key) {
        Some(v) => Ok(v),
        None => Err(Error::MissingField(path)),
    }
}

fn object<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &'static str,
) -> Result<&'a Map<String, Value>, Error> {
    field(obj, key, path)?
        .as_object()
        .ok_or(Error::InvalidField(path))
}

fn string<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &'static str,
) -> Result<&'a str, Error> {
    field(obj, key, path)?
        .as_str()
        .ok_or(Error::InvalidField(path))
}

fn optional_string(
    obj: &Map<String, Value>,
    key: &str,
    path: &'static str,
) -> Result<Option<String>, Error> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Error::InvalidField(path)),
    }
}

fn integer(obj: &Map<String, Value>, key: &str, path: &'static str) -> Result<u64, Error> {
    field(obj, key, path)?
        .as_u64()
        .ok_or(Error::InvalidField(path))
}

fn hex_bytes(s: &str, path: &'static str) -> Result<Vec<u8>, Error> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    hex::decode(s).map_err(|_| Error::InvalidField(path))
}

fn hex_array<const N: usize>(s: &str, path: &'static str) -> Result<[u8; N], Error> {
    hex_bytes(s, path)?
        .try_into()
        .map_err(|_| Error::InvalidField(path))
}

/// Reads one crypto module (`kdf`, `checksum` or `cipher`): its function name and params.
fn module<'a>(
    crypto: &'a Map<String, Value>,
    key: &str,
    path: &'static str,
    function_path: &'static str,
    params_path: &'static str,
    message_path: &'static str,
) -> Result<(&'a str, &'a Map<String, Value>, &'a str), Error> {
    let m = object(crypto, key, path)?;
    let function = string(m, "function", function_path)?;
    let params = object(m, "params", params_path)?;
    let message = string(m, "message", message_path)?;
    Ok((function, params, message))
}

fn parse_kdf(function: &str, params: &Map<String, Value>) -> Result<KdfParams, Error> {
    const DKLEN: &str = "crypto.kdf.params.dklen";
    let kdf = match function {
        "scrypt" => {
            let n = integer(params, "n", "crypto.kdf.params.n")?;
            let r = integer(params, "r", "crypto.kdf.params.r")?;
            let p = integer(params, "p", "crypto.kdf.params.p")?;
            if !n.is_power_of_two() || n < 2 {
                return Err(Error::KdfParamsOutOfBounds(format!(
                    "scrypt n must be a power of two >= 2, got {n}"
                )));
            }
            let log2_n = u8::try_from(n.trailing_zeros()).unwrap_or(u8::MAX);
            let r = u32::try_from(r).unwrap_or(u32::MAX);
            let p = u32::try_from(p).unwrap_or(u32::MAX);
            KdfParams::Scrypt { log2_n, r, p }
        }
        "pbkdf2" => {
            let prf = string(params, "prf", "crypto.kdf.params.prf")?;
            if prf != "hmac-sha256" {
                return Err(Error::UnsupportedKdf(format!(
                    "pbkdf2 with prf {}",
                    echo(prf)
                )));
            }
            let c = integer(params, "c", "crypto.kdf.params.c")?;
            let c = u32::try_from(c).unwrap_or(u32::MAX);
            KdfParams::Pbkdf2 { c }
        }
        other => return Err(Error::UnsupportedKdf(echo(other))),
    };
    let dklen = integer(params, "dklen", DKLEN)?;
    if dklen != DK_LEN as u64 {
        return Err(Error::KdfParamsOutOfBounds(format!(
            "dklen must be {DK_LEN}, got {dklen}"
        )));
    }
    kdf.check()?;
    Ok(kdf)
}

impl Keystore {
    /// Parses and structurally validates a keystore.
    ///
    /// Checks: `version` is 4; the KDF is `scrypt` or `pbkdf2` (`prf` `hmac-sha256`) with
    /// `dklen` 32 and parameters within the bounds of [`crate::kdf`]; the checksum is `sha256`
    /// with a 32-byte message; the cipher is `aes-128-ctr` with a 16-byte `iv` and a non-empty
    /// message. Unknown fields are ignored. Nothing expensive runs here.
    pub fn from_json(text: &str) -> Result<Keystore, Error> {
        let root: Value =
            serde_json::from_str(text).map_err(|e| Error::InvalidJson(e.to_string()))?;
        let root = root
            .as_object()
            .ok_or_else(|| Error::InvalidJson("top level is not an object".to_owned()))?;

        let version = field(root, "version", "version")?;
        if version.as_u64() != Some(VERSION) {
            let shown = version.to_string();
            return Err(Error::UnsupportedVersion(echo(&shown)));
        }

        let crypto = object(root, "crypto", "crypto")?;
        let (kdf_fn, kdf_params, _) = module(
            crypto,
            "kdf",
            "crypto.kdf",
            "crypto.kdf.function",
            "crypto.kdf.params",
            "crypto.kdf.message",
        )?;
        let (sum_fn, _, sum_msg) = module(
            crypto,
            "checksum",
            "crypto.checksum",
            "crypto.checksum.function",
            "crypto.checksum.params",
            "crypto.checksum.message",
        )?;
        let (cipher_fn, cipher_params, cipher_msg) = module(
            crypto,
            "cipher",
            "crypto.cipher",
            "crypto.cipher.function",
            "crypto.cipher.params",
            "crypto.cipher.message",
        )?;

        let kdf = parse_kdf(kdf_fn, kdf_params)?;
        let salt = hex_bytes(
            string(kdf_params, "salt", "crypto.kdf.params.salt")?,
            "crypto.kdf.params.salt",
        )?;
        check_salt(&salt)?;

        if sum_fn != "sha256" {
            return Err(Error::UnsupportedChecksum(echo(sum_fn)));
        }
        let checksum = hex_array::<32>(sum_msg, "crypto.checksum.message")?;

        if cipher_fn != "aes-128-ctr" {
            return Err(Error::UnsupportedCipher(echo(cipher_fn)));
        }
        let iv = hex_array::<IV_LEN>(
            string(cipher_params, "iv", "crypto.cipher.params.iv")?,
            "crypto.cipher.params.iv",
        )?;
        let ciphertext = hex_bytes(cipher_msg, "crypto.cipher.message")?;
        if ciphertext.is_empty() || ciphertext.len() > MAX_CIPHERTEXT_LEN {
            return Err(Error::InvalidField("crypto.cipher.message"));
        }

        let pubkey = optional_string(root, "pubkey", "pubkey")?.filter(|s| !s.is_empty());
        let path = string(root, "path", "path")?.to_owned();
        let uuid = string(root, "uuid", "uuid")?.to_owned();
        let description = optional_string(root, "description", "description")?;

        Ok(Keystore {
            kdf,
            salt,
            checksum,
            iv,
            ciphertext,
            description,
            pubkey,
            path,
            uuid,
        })
    }

    /// Serialises to EIP-2335 JSON (pretty-printed).
    pub fn to_json(&self) -> String {
        let kdf = match self.kdf {
            KdfParams::Scrypt { log2_n, r, p } => json!({
                "function": "scrypt",
                "params": {
                    "dklen": DK_LEN,
                    "n": 1u64 << log2_n,
                    "r": r,
                    "p": p,
                    "salt": hex::encode(&self.salt),
                },
                "message": "",
            }),
            KdfParams::Pbkdf2 { c } => json!({
                "function": "pbkdf2",
                "params": {
                    "dklen": DK_LEN,
                    "c": c,
                    "prf": "hmac-sha256",
                    "salt": hex::encode(&self.salt),
                },
                "message": "",
            }),
        };
        let mut root = json!({
            "crypto": {
                "kdf": kdf,
                "checksum": {
                    "function": "sha256",
                    "params": {},
                    "message": hex::encode(self.checksum),
                },
                "cipher": {
                    "function": "aes-128-ctr",
                    "params": { "iv": hex::encode(self.iv) },
                    "message": hex::encode(&self.ciphertext),
                },
            },
            "path": self.path,
            "uuid": self.uuid,
            "version": VERSION,
        });
        if let Some(obj) = root.as_object_mut() {
            if let Some(d) = &self.description {
                obj.insert("description".to_owned(), Value::String(d.clone()));
            }
            if let Some(pk) = &self.pubkey {
                obj.insert("pubkey".to_owned(), Value::String(pk.clone()));
            }
        }
        // Serialising a `Value` cannot fail.
        serde_json::to_string_pretty(&root).unwrap_or_default()
    }

    /// The public key stored in the `pubkey` field, if present and a valid key.
    pub fn pubkey(&self) -> Option<PublicKey> {
        self.pubkey
            .as_deref()
            .and_then(|s| PublicKey::from_hex(s).ok())
    }

    /// The EIP-2334 derivation path (may be empty).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The keystore's UUID, as written in the file.
    pub fn uuid(&self) -> &str {
        &self.uuid
    }

    /// The optional human-readable description.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The KDF parameters (already checked against the bounds).
    pub fn kdf(&self) -> KdfParams {
        self.kdf
    }

    /// Decrypts the secret key.
    ///
    /// Applies EIP-2335 password processing, runs the KDF, compares
    /// `sha256(dk[16..32] ‖ ciphertext)` with the stored checksum in constant time
    /// ([`Error::WrongPassword`] on mismatch), decrypts with AES-128-CTR (key `dk[0..16]`),
    /// parses the secret ([`Error::InvalidSecretKey`]) and, when the keystore has a `pubkey`,
    /// checks that the secret's public key equals it ([`Error::PubkeyMismatch`]).
    pub fn decrypt(&self, password: &str) -> Result<SecretKey, Error> {
        let password = normalize_password(password);
        let dk = self.kdf.derive(password.as_bytes(), &self.salt)?;

        let (cipher_key, checksum_key) = dk.split_at(16);
        let mut hasher = Sha256::new();
        hasher.update(checksum_key);
        hasher.update(&self.ciphertext);
        let computed: [u8; 32] = hasher.finalize().into();
        if !bool::from(computed.ct_eq(&self.checksum)) {
            return Err(Error::WrongPassword);
        }

        let mut plaintext = Zeroizing::new(self.ciphertext.clone());
        let mut cipher = Aes128Ctr::new_from_slices(cipher_key, &self.iv)
            .map_err(|_| Error::InvalidField("crypto.cipher.params.iv"))?;
        cipher.apply_keystream(plaintext.as_mut_slice());
        drop(cipher);

        let secret = SecretKey::from_bytes(&plaintext).map_err(|_| Error::InvalidSecretKey)?;
        if let Some(stored) = &self.pubkey {
            match PublicKey::from_hex(stored) {
                Ok(pk) if pk == secret.public_key() => {}
                _ => return Err(Error::PubkeyMismatch),
            }
        }
        Ok(secret)
    }

    /// Encrypts `secret` into a new keystore with a random salt, IV and version 4 UUID.
    ///
    /// The password goes through the same EIP-2335 processing as in [`Keystore::decrypt`].
    /// `path` is stored as given (use [`crate::validator_signing_path`] for EIP-2334 paths,
    /// or `""`).
    pub fn encrypt(
        secret: &SecretKey,
        password: &str,
        kdf: Kdf,
        path: &str,
    ) -> Result<Keystore, Error> {
        let params = kdf.params();
        params.check()?;
        let mut salt = vec![0u8; SALT_LEN];
        random_bytes(&mut salt)?;
        let mut iv = [0u8; IV_LEN];
        random_bytes(&mut iv)?;
        let mut uuid_bytes = [0u8; 16];
        random_bytes(&mut uuid_bytes)?;
        let uuid = uuid::Builder::from_random_bytes(uuid_bytes)
            .into_uuid()
            .hyphenated()
            .to_string();

        let password = normalize_password(password);
        let dk = params.derive(password.as_bytes(), &salt)?;
        let (cipher_key, checksum_key) = dk.split_at(16);

        let secret_bytes = secret.to_bytes();
        let mut ciphertext = secret_bytes.to_vec();
        let mut cipher = Aes128Ctr::new_from_slices(cipher_key, &iv)
            .map_err(|_| Error::InvalidField("crypto.cipher.params.iv"))?;
        cipher.apply_keystream(&mut ciphertext);
        drop(cipher);

        let mut hasher = Sha256::new();
        hasher.update(checksum_key);
        hasher.update(&ciphertext);
        let checksum: [u8; 32] = hasher.finalize().into();

        Ok(Keystore {
            kdf: params,
            salt,
            checksum,
            iv,
            ciphertext,
            description: None,
            pubkey: Some(hex::encode(secret.public_key().as_bytes())),
            path: path.to_owned(),
            uuid,
        })
    }

    /// Returns the keystore with `description` set (or removed with `None`).
    pub fn with_description(mut self, description: Option<&str>) -> Keystore {
        self.description = description.map(str::to_owned);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> SecretKey {
        SecretKey::from_bytes(&[0x11; 32]).unwrap()
    }

    #[test]
    fn debug_shows_no_ciphertext() {
        let ks = Keystore::encrypt(&secret(), "pw", Kdf::INSECURE_TEST_ONLY, "").unwrap();
        let shown = format!("{ks:?}");
        assert!(!shown.contains(&hex::encode(&ks.ciphertext)));
        assert!(!shown.contains(&hex::encode([0x11u8; 32])));
        assert!(shown.contains(&hex::encode(secret().public_key().as_bytes())));
    }

    #[test]
    fn uuid_is_v4() {
        let ks = Keystore::encrypt(&secret(), "pw", Kdf::INSECURE_TEST_ONLY, "").unwrap();
        let u = uuid::Uuid::parse_str(ks.uuid()).unwrap();
        assert_eq!(u.get_version_num(), 4);
    }
}
