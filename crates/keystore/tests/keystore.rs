//! Encrypt/decrypt round trips, parameter bounds (refused before any KDF runs), public key
//! checks, malformed input, and the absence of secrets in errors and `Debug` output.

mod common;

use std::time::{Duration, Instant};

use aes::cipher::{KeyIvInit, StreamCipher};
use common::{heavy_kdf, kind, read};
use ferrosigner_keystore::kdf::KdfParams;
use ferrosigner_keystore::{Error, Kdf, Keystore, SecretKey, validator_signing_path};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn secret(seed: u8) -> SecretKey {
    SecretKey::key_gen(&[seed; 32]).unwrap()
}

const PASSWORD: &str = "correct horse \u{e9}t\u{e9} 🔑";

fn cheap_keystore() -> (SecretKey, Keystore) {
    let sk = secret(1);
    let ks =
        Keystore::encrypt(&sk, PASSWORD, Kdf::INSECURE_TEST_ONLY, "m/12381/3600/0/0/0").unwrap();
    (sk, ks)
}

fn edit(ks: &Keystore, f: impl FnOnce(&mut Value)) -> String {
    let mut v: Value = serde_json::from_str(&ks.to_json()).unwrap();
    f(&mut v);
    v.to_string()
}

#[test]
fn pbkdf2_round_trip() {
    let (sk, ks) = cheap_keystore();
    assert_eq!(ks.pubkey(), Some(sk.public_key()));
    assert_eq!(ks.path(), "m/12381/3600/0/0/0");
    assert_eq!(ks.kdf(), KdfParams::Pbkdf2 { c: 16 });
    let text = ks.to_json();
    let parsed = Keystore::from_json(&text).unwrap();
    assert_eq!(parsed, ks);
    let got = parsed.decrypt(PASSWORD).unwrap();
    assert_eq!(*got.to_bytes(), *sk.to_bytes());
    // The NFKD-equivalent spelling (decomposed é) and added control codes are the same password.
    let equivalent = "correct horse e\u{301}te\u{301} \u{7f}🔑\u{0}";
    assert_eq!(
        *parsed.decrypt(equivalent).unwrap().to_bytes(),
        *sk.to_bytes()
    );
}

#[test]
fn fresh_randomness_per_keystore() {
    let sk = secret(2);
    let a = Keystore::encrypt(&sk, "pw", Kdf::INSECURE_TEST_ONLY, "").unwrap();
    let b = Keystore::encrypt(&sk, "pw", Kdf::INSECURE_TEST_ONLY, "").unwrap();
    assert_ne!(a.uuid(), b.uuid());
    let (ja, jb): (Value, Value) = (
        serde_json::from_str(&a.to_json()).unwrap(),
        serde_json::from_str(&b.to_json()).unwrap(),
    );
    assert_ne!(
        ja["crypto"]["kdf"]["params"]["salt"],
        jb["crypto"]["kdf"]["params"]["salt"]
    );
    assert_ne!(
        ja["crypto"]["cipher"]["params"]["iv"],
        jb["crypto"]["cipher"]["params"]["iv"]
    );
    assert_ne!(
        ja["crypto"]["cipher"]["message"],
        jb["crypto"]["cipher"]["message"]
    );
}

#[test]
fn cheap_scrypt_round_trip() {
    let sk = secret(3);
    let ks = Keystore::encrypt(&sk, "pw", Kdf::INSECURE_TEST_ONLY_SCRYPT, "").unwrap();
    assert_eq!(
        ks.kdf(),
        KdfParams::Scrypt {
            log2_n: 4,
            r: 8,
            p: 1
        }
    );
    let parsed = Keystore::from_json(&ks.to_json()).unwrap();
    assert_eq!(*parsed.decrypt("pw").unwrap().to_bytes(), *sk.to_bytes());
    assert_eq!(parsed.decrypt("pw ").unwrap_err(), Error::WrongPassword);
}

#[test]
fn default_scrypt_round_trip() {
    let sk = secret(4);
    let _guard = heavy_kdf();
    let started = Instant::now();
    let ks = Keystore::encrypt(
        &sk,
        PASSWORD,
        Kdf::EIP2335_SCRYPT,
        &validator_signing_path(9),
    )
    .unwrap();
    let encrypted = started.elapsed();
    let parsed = Keystore::from_json(&ks.to_json()).unwrap();
    assert_eq!(
        parsed.kdf(),
        KdfParams::Scrypt {
            log2_n: 18,
            r: 8,
            p: 1
        }
    );
    let got = parsed.decrypt(PASSWORD).unwrap();
    eprintln!(
        "scrypt 2^18: encrypt {encrypted:?}, encrypt+decrypt {:?}",
        started.elapsed()
    );
    assert_eq!(*got.to_bytes(), *sk.to_bytes());
}

#[test]
fn wrong_password_is_reported_without_the_password() {
    let (_, ks) = cheap_keystore();
    let wrong = "hunter2-very-secret-guess";
    let err = ks.decrypt(wrong).unwrap_err();
    assert_eq!(err, Error::WrongPassword);
    assert!(!err.to_string().contains("hunter2"));
    assert!(!format!("{err:?}").contains("hunter2"));
    assert_eq!(ks.decrypt("").unwrap_err(), Error::WrongPassword);
}

#[test]
fn encrypt_refuses_out_of_bounds_kdf() {
    let sk = secret(5);
    for kdf in [
        Kdf::Scrypt { log2_n: 0 },
        Kdf::Scrypt { log2_n: 21 },
        Kdf::Scrypt { log2_n: 30 },
        Kdf::Pbkdf2 { c: 0 },
        Kdf::Pbkdf2 { c: (1 << 24) + 1 },
    ] {
        let started = Instant::now();
        let err = Keystore::encrypt(&sk, "pw", kdf, "").unwrap_err();
        assert!(started.elapsed() < Duration::from_millis(50), "{kdf:?}");
        assert_eq!(kind(&err), "KdfParamsOutOfBounds", "{kdf:?}");
    }
}

#[test]
fn absurd_parameters_are_refused_before_any_kdf_runs() {
    let scrypt = Keystore::from_json(&read("keystores/eip2335/keystore-scrypt.json")).unwrap();
    let pbkdf2 = Keystore::from_json(&read("keystores/eip2335/keystore-pbkdf2.json")).unwrap();
    let kdf_param = |ks: &Keystore, key: &str, value: Value| {
        edit(ks, |v| v["crypto"]["kdf"]["params"][key] = value)
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "scrypt n=2^30",
            kdf_param(&scrypt, "n", json!(1u64 << 30)),
            "KdfParamsOutOfBounds",
        ),
        (
            "scrypt n=2^21",
            kdf_param(&scrypt, "n", json!(1u64 << 21)),
            "KdfParamsOutOfBounds",
        ),
        (
            "scrypt n=2^63",
            kdf_param(&scrypt, "n", json!(1u64 << 63)),
            "KdfParamsOutOfBounds",
        ),
        (
            "scrypt n=3",
            kdf_param(&scrypt, "n", json!(3)),
            "KdfParamsOutOfBounds",
        ),
        (
            "scrypt n=1",
            kdf_param(&scrypt, "n", json!(1)),
            "KdfParamsOutOfBounds",
        ),
        (
            "scrypt n=0",
            kdf_param(&scrypt, "n", json!(0)),
            "KdfParamsOutOfBounds",
        ),
        (
            "scrypt n=-1",
            kdf_param(&scrypt, "n", json!(-1)),
            "InvalidField",
        ),
        (
            "scrypt n=1.5",
            kdf_param(&scrypt, "n", json!(1.5)),
            "InvalidField",
        ),
        (
            "scrypt n=\"2\"",
            kdf_param(&scrypt, "n", json!("262144")),
            "InvalidField",
        ),
        (
            "scrypt n=1e30",
            kdf_param(&scrypt, "n", json!(1e30)),
            "InvalidField",
        ),
        (
            "scrypt r=0",
            kdf_param(&scrypt, "r", json!(0)),
            "KdfParamsOutOfBounds",
        ),
        (
            "scrypt r=33",
            kdf_param(&scrypt, "r", json!(33)),
            "KdfParamsOutOfBounds",
        ),
        (
            "scrypt r=2^40",
            kdf_param(&scrypt, "r", json!(1u64 << 40)),
            "KdfParamsOutOfBounds",
        ),
        (
            "scrypt p=0",
            kdf_param(&scrypt, "p", json!(0)),
            "KdfParamsOutOfBounds",
        ),
        (
            "scrypt p=17",
            kdf_param(&scrypt, "p", json!(17)),
            "KdfParamsOutOfBounds",
        ),
        (
            "scrypt 2^18*32*16",
            kdf_param(&kdf_param_ks(&scrypt, "r", 32), "p", json!(16)),
            "KdfParamsOutOfBounds",
        ),
        (
            "scrypt dklen=64",
            kdf_param(&scrypt, "dklen", json!(64)),
            "KdfParamsOutOfBounds",
        ),
        (
            "scrypt salt 8 bytes",
            kdf_param(&scrypt, "salt", json!("00".repeat(8))),
            "KdfParamsOutOfBounds",
        ),
        (
            "scrypt salt 200 bytes",
            kdf_param(&scrypt, "salt", json!("00".repeat(200))),
            "KdfParamsOutOfBounds",
        ),
        (
            "scrypt salt not hex",
            kdf_param(&scrypt, "salt", json!("zz".repeat(32))),
            "InvalidField",
        ),
        (
            "pbkdf2 c=0",
            kdf_param(&pbkdf2, "c", json!(0)),
            "KdfParamsOutOfBounds",
        ),
        (
            "pbkdf2 c=2^24+1",
            kdf_param(&pbkdf2, "c", json!((1u64 << 24) + 1)),
            "KdfParamsOutOfBounds",
        ),
        (
            "pbkdf2 c=2^40",
            kdf_param(&pbkdf2, "c", json!(1u64 << 40)),
            "KdfParamsOutOfBounds",
        ),
        (
            "pbkdf2 prf sha512",
            kdf_param(&pbkdf2, "prf", json!("hmac-sha512")),
            "UnsupportedKdf",
        ),
        (
            "pbkdf2 no dklen",
            edit(&pbkdf2, |v| {
                v["crypto"]["kdf"]["params"]
                    .as_object_mut()
                    .unwrap()
                    .remove("dklen");
            }),
            "MissingField",
        ),
    ];
    for (name, text, want) in cases {
        let started = Instant::now();
        let err = Keystore::from_json(&text).expect_err(name);
        let took = started.elapsed();
        assert!(took < Duration::from_millis(50), "{name} took {took:?}");
        assert_eq!(kind(&err), want, "{name}: {err}");
    }
}

fn kdf_param_ks(ks: &Keystore, key: &str, value: u64) -> Keystore {
    Keystore::from_json(&edit(ks, |v| {
        v["crypto"]["kdf"]["params"][key] = json!(value)
    }))
    .unwrap()
}

#[test]
fn largest_accepted_parameters_parse() {
    let scrypt = Keystore::from_json(&read("keystores/eip2335/keystore-scrypt.json")).unwrap();
    let ks = Keystore::from_json(&edit(&scrypt, |v| {
        v["crypto"]["kdf"]["params"]["n"] = json!(1u64 << 20)
    }))
    .unwrap();
    assert_eq!(ks.kdf().memory_bytes(), 1 << 30);
    let ks = kdf_param_ks(&scrypt, "r", 32);
    assert_eq!(
        ks.kdf(),
        KdfParams::Scrypt {
            log2_n: 18,
            r: 32,
            p: 1
        }
    );
}

#[test]
fn structural_errors() {
    let (_, ks) = cheap_keystore();
    let cases: Vec<(&str, String, &str)> = vec![
        ("not json", "{".to_owned(), "InvalidJson"),
        ("array", "[]".to_owned(), "InvalidJson"),
        ("empty", String::new(), "InvalidJson"),
        (
            "version 3",
            edit(&ks, |v| v["version"] = json!(3)),
            "UnsupportedVersion",
        ),
        (
            "version \"4\"",
            edit(&ks, |v| v["version"] = json!("4")),
            "UnsupportedVersion",
        ),
        (
            "no version",
            edit(&ks, |v| {
                v.as_object_mut().unwrap().remove("version");
            }),
            "MissingField",
        ),
        (
            "no uuid",
            edit(&ks, |v| {
                v.as_object_mut().unwrap().remove("uuid");
            }),
            "MissingField",
        ),
        (
            "no path",
            edit(&ks, |v| {
                v.as_object_mut().unwrap().remove("path");
            }),
            "MissingField",
        ),
        (
            "path number",
            edit(&ks, |v| v["path"] = json!(1)),
            "InvalidField",
        ),
        (
            "crypto string",
            edit(&ks, |v| v["crypto"] = json!("x")),
            "InvalidField",
        ),
        (
            "no cipher",
            edit(&ks, |v| {
                v["crypto"].as_object_mut().unwrap().remove("cipher");
            }),
            "MissingField",
        ),
        (
            "no checksum message",
            edit(&ks, |v| {
                v["crypto"]["checksum"]
                    .as_object_mut()
                    .unwrap()
                    .remove("message");
            }),
            "MissingField",
        ),
        (
            "kdf scrypt2",
            edit(&ks, |v| v["crypto"]["kdf"]["function"] = json!("scrypt2")),
            "UnsupportedKdf",
        ),
        (
            "cipher aes-128-cbc",
            edit(&ks, |v| {
                v["crypto"]["cipher"]["function"] = json!("aes-128-cbc")
            }),
            "UnsupportedCipher",
        ),
        (
            "checksum keccak",
            edit(&ks, |v| {
                v["crypto"]["checksum"]["function"] = json!("keccak256")
            }),
            "UnsupportedChecksum",
        ),
        (
            "iv 15 bytes",
            edit(&ks, |v| {
                v["crypto"]["cipher"]["params"]["iv"] = json!("00".repeat(15))
            }),
            "InvalidField",
        ),
        (
            "no iv",
            edit(&ks, |v| v["crypto"]["cipher"]["params"] = json!({})),
            "MissingField",
        ),
        (
            "checksum 31 bytes",
            edit(&ks, |v| {
                v["crypto"]["checksum"]["message"] = json!("00".repeat(31))
            }),
            "InvalidField",
        ),
        (
            "empty ciphertext",
            edit(&ks, |v| v["crypto"]["cipher"]["message"] = json!("")),
            "InvalidField",
        ),
        (
            "huge ciphertext",
            edit(&ks, |v| {
                v["crypto"]["cipher"]["message"] = json!("00".repeat(4096))
            }),
            "InvalidField",
        ),
        (
            "odd hex",
            edit(&ks, |v| v["crypto"]["cipher"]["message"] = json!("abc")),
            "InvalidField",
        ),
        (
            "pubkey number",
            edit(&ks, |v| v["pubkey"] = json!(5)),
            "InvalidField",
        ),
    ];
    for (name, text, want) in cases {
        let err = Keystore::from_json(&text).expect_err(name);
        assert_eq!(kind(&err), want, "{name}: {err}");
    }
    // Unknown fields anywhere are tolerated; a 0x prefix on hex is accepted.
    let tolerant = edit(&ks, |v| {
        v["name"] = json!("x");
        v["crypto"]["extra"] = json!([1, 2]);
        v["crypto"]["cipher"]["params"]["other"] = json!(null);
        let iv = v["crypto"]["cipher"]["params"]["iv"]
            .as_str()
            .unwrap()
            .to_owned();
        v["crypto"]["cipher"]["params"]["iv"] = json!(format!("0x{iv}"));
    });
    assert_eq!(Keystore::from_json(&tolerant).unwrap(), ks);
}

#[test]
fn unsupported_names_are_truncated_in_errors() {
    let (_, ks) = cheap_keystore();
    let long = "k".repeat(10_000);
    let text = edit(&ks, |v| v["crypto"]["kdf"]["function"] = json!(long));
    let err = Keystore::from_json(&text).unwrap_err();
    assert!(err.to_string().len() < 100, "{err}");
}

#[test]
fn pubkey_field_is_checked() {
    let (sk, ks) = cheap_keystore();
    let other = secret(9).public_key();
    let mismatched = edit(&ks, |v| v["pubkey"] = json!(hex::encode(other.as_bytes())));
    let mismatched = Keystore::from_json(&mismatched).unwrap();
    assert_eq!(mismatched.pubkey(), Some(other));
    assert_eq!(
        mismatched.decrypt(PASSWORD).unwrap_err(),
        Error::PubkeyMismatch
    );

    // A 0x-prefixed upper-case pubkey is the same key.
    let prefixed = edit(&ks, |v| {
        v["pubkey"] = json!(format!(
            "0x{}",
            hex::encode_upper(sk.public_key().as_bytes())
        ))
    });
    let prefixed = Keystore::from_json(&prefixed).unwrap();
    assert_eq!(prefixed.pubkey(), Some(sk.public_key()));
    assert!(prefixed.decrypt(PASSWORD).is_ok());

    // A present but invalid pubkey is reported as a mismatch, not ignored.
    let invalid = Keystore::from_json(&edit(&ks, |v| v["pubkey"] = json!("abcd"))).unwrap();
    assert_eq!(invalid.pubkey(), None);
    assert_eq!(
        invalid.decrypt(PASSWORD).unwrap_err(),
        Error::PubkeyMismatch
    );

    // Empty or absent pubkey: nothing to compare.
    for text in [
        edit(&ks, |v| v["pubkey"] = json!("")),
        edit(&ks, |v| {
            v.as_object_mut().unwrap().remove("pubkey");
        }),
    ] {
        let ks = Keystore::from_json(&text).unwrap();
        assert_eq!(ks.pubkey(), None);
        assert_eq!(*ks.decrypt(PASSWORD).unwrap().to_bytes(), *sk.to_bytes());
        assert!(!ks.to_json().contains("\"pubkey\""));
    }
}

/// Builds a keystore around an arbitrary plaintext, with a correct checksum.
fn keystore_with_plaintext(plaintext: &[u8], password: &str) -> String {
    let salt = [5u8; 32];
    let iv = [6u8; 16];
    let c = 16;
    let mut dk = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, c, &mut dk);
    let mut ciphertext = plaintext.to_vec();
    let mut cipher = ctr::Ctr128BE::<aes::Aes128>::new_from_slices(&dk[..16], &iv).unwrap();
    cipher.apply_keystream(&mut ciphertext);
    let mut h = Sha256::new();
    h.update(&dk[16..]);
    h.update(&ciphertext);
    let checksum = h.finalize();
    json!({
        "crypto": {
            "kdf": {"function": "pbkdf2", "params": {"dklen": 32, "c": c, "prf": "hmac-sha256",
                    "salt": hex::encode(salt)}, "message": ""},
            "checksum": {"function": "sha256", "params": {}, "message": hex::encode(checksum)},
            "cipher": {"function": "aes-128-ctr", "params": {"iv": hex::encode(iv)},
                       "message": hex::encode(ciphertext)}
        },
        "path": "", "uuid": "00000000-0000-4000-8000-000000000000", "version": 4
    })
    .to_string()
}

#[test]
fn invalid_secrets_are_refused() {
    // Reference construction agrees with ours for a valid key.
    let sk = secret(7);
    let ks = Keystore::from_json(&keystore_with_plaintext(sk.to_bytes().as_slice(), "pw")).unwrap();
    assert_eq!(*ks.decrypt("pw").unwrap().to_bytes(), *sk.to_bytes());

    for (name, plaintext) in [
        ("zero", vec![0u8; 32]),
        ("above group order", vec![0xffu8; 32]),
        ("31 bytes", vec![1u8; 31]),
        ("33 bytes", vec![1u8; 33]),
    ] {
        let ks = Keystore::from_json(&keystore_with_plaintext(&plaintext, "pw")).unwrap();
        assert_eq!(
            ks.decrypt("pw").unwrap_err(),
            Error::InvalidSecretKey,
            "{name}"
        );
    }
}

#[test]
fn every_truncation_and_byte_flip_is_handled() {
    let (sk, ks) = cheap_keystore();
    let text = ks.to_json();
    for end in 0..text.len() {
        if let Some(prefix) = text.get(..end) {
            assert!(Keystore::from_json(prefix).is_err(), "prefix {end}");
        }
    }
    // Flip each byte to another ASCII character: parsing never panics, and a decryption that
    // succeeds always yields the original secret (checksum and pubkey check catch the rest).
    let bytes = text.as_bytes();
    let mut decrypted_ok = 0;
    for i in 0..bytes.len() {
        for replacement in [b'0', b'f', b'"', b'}', b'9'] {
            if bytes[i] == replacement {
                continue;
            }
            let mut mutated = bytes.to_vec();
            mutated[i] = replacement;
            let Ok(mutated) = String::from_utf8(mutated) else {
                continue;
            };
            if let Ok(m) = Keystore::from_json(&mutated)
                && let Ok(got) = m.decrypt(PASSWORD)
            {
                assert_eq!(*got.to_bytes(), *sk.to_bytes(), "flip at {i}");
                decrypted_ok += 1;
            }
        }
    }
    // Flips in path, uuid and whitespace-insensitive places still decrypt.
    assert!(decrypted_ok > 0);
}

#[test]
fn debug_output_has_no_secrets() {
    let (sk, ks) = cheap_keystore();
    let secret_hex = hex::encode(*sk.to_bytes());
    let json: Value = serde_json::from_str(&ks.to_json()).unwrap();
    let ciphertext = json["crypto"]["cipher"]["message"].as_str().unwrap();
    for shown in [
        format!("{ks:?}"),
        format!("{sk:?}"),
        format!("{:?}", ks.decrypt(PASSWORD)),
    ] {
        assert!(!shown.contains(&secret_hex), "{shown}");
        assert!(!shown.contains(ciphertext), "{shown}");
        assert!(!shown.contains("correct horse"), "{shown}");
    }
    let json = ks.to_json();
    assert!(!json.contains(&secret_hex));
    assert!(!json.contains("correct horse"));
}
