//! EIP-2335 test vectors (testdata/keystores/eip2335): both keystores decrypt to the published
//! secret with the published (non-ASCII) password.

mod common;

use std::time::Instant;

use common::{heavy_kdf, read, read_json, unhex};
use ferrosigner_keystore::kdf::KdfParams;
use ferrosigner_keystore::{Error, Keystore, PublicKey, normalize_password};

struct Vector {
    password: String,
    password_bytes: Vec<u8>,
    secret: Vec<u8>,
    pubkey: PublicKey,
}

fn vector() -> Vector {
    let v = read_json("keystores/eip2335/vectors.json");
    Vector {
        password: v["password"].as_str().unwrap().to_owned(),
        password_bytes: unhex(v["password_nfkd_utf8_hex"].as_str().unwrap()),
        secret: unhex(v["secret"].as_str().unwrap()),
        pubkey: PublicKey::from_hex(v["pubkey"].as_str().unwrap()).unwrap(),
    }
}

fn keystore(file: &str) -> Keystore {
    Keystore::from_json(&read(&format!("keystores/eip2335/{file}"))).unwrap()
}

#[test]
fn password_processing_matches_vector() {
    let v = vector();
    assert!(!v.password.is_ascii());
    assert_eq!(normalize_password(&v.password).as_bytes(), v.password_bytes);
    // Control codes (C0, DEL, C1) anywhere in the password are removed.
    let chars: Vec<char> = v.password.chars().collect();
    let mut with_controls = String::from("\u{7f}");
    for (i, c) in chars.iter().enumerate() {
        with_controls.push(*c);
        if i == 3 {
            with_controls.push_str("\u{0}\u{1b}\u{85}\u{9f}");
        }
    }
    with_controls.push('\n');
    assert_eq!(
        normalize_password(&with_controls).as_bytes(),
        v.password_bytes
    );
}

#[test]
fn metadata_is_read() {
    let v = vector();
    for (file, kdf) in [
        ("keystore-scrypt.json", "scrypt"),
        ("keystore-pbkdf2.json", "pbkdf2"),
    ] {
        let ks = keystore(file);
        assert_eq!(ks.pubkey(), Some(v.pubkey), "{file}");
        assert!(ks.description().unwrap().contains(if kdf == "scrypt" {
            "scrypt"
        } else {
            "PBKDF2"
        }));
        assert!(ks.path().starts_with("m/12381/60/"));
        assert_eq!(ks.uuid().len(), 36);
        match (kdf, ks.kdf()) {
            (
                "scrypt",
                KdfParams::Scrypt {
                    log2_n: 18,
                    r: 8,
                    p: 1,
                },
            ) => {}
            ("pbkdf2", KdfParams::Pbkdf2 { c: 262_144 }) => {}
            other => panic!("unexpected kdf {other:?}"),
        }
    }
}

#[test]
fn pbkdf2_vector_decrypts() {
    let v = vector();
    let ks = keystore("keystore-pbkdf2.json");
    let started = Instant::now();
    let sk = ks.decrypt(&v.password).unwrap();
    eprintln!("pbkdf2 c=2^18 decrypt: {:?}", started.elapsed());
    assert_eq!(sk.to_bytes().as_slice(), v.secret);
    assert_eq!(sk.public_key(), v.pubkey);
}

#[test]
fn pbkdf2_vector_decrypts_with_control_characters_added() {
    let v = vector();
    let ks = keystore("keystore-pbkdf2.json");
    let password = format!("\u{1}{}\u{7f}\u{90}", v.password);
    let sk = ks.decrypt(&password).unwrap();
    assert_eq!(sk.to_bytes().as_slice(), v.secret);
}

#[test]
fn pbkdf2_vector_wrong_password() {
    let v = vector();
    let ks = keystore("keystore-pbkdf2.json");
    // The normalised password without its trailing key emoji is wrong.
    let normalised = String::from_utf8(v.password_bytes.clone()).unwrap();
    let wrong = normalised.trim_end_matches('🔑');
    assert_ne!(wrong, normalised);
    assert_eq!(ks.decrypt(wrong).unwrap_err(), Error::WrongPassword);
    // The already-normalised form is the same password.
    assert_eq!(
        ks.decrypt(&normalised).unwrap().to_bytes().as_slice(),
        v.secret
    );
}

#[test]
fn scrypt_vector_decrypts() {
    let v = vector();
    let ks = keystore("keystore-scrypt.json");
    let _guard = heavy_kdf();
    let started = Instant::now();
    let sk = ks.decrypt(&v.password).unwrap();
    eprintln!("scrypt n=2^18 decrypt: {:?}", started.elapsed());
    assert_eq!(sk.to_bytes().as_slice(), v.secret);
    assert_eq!(sk.public_key(), v.pubkey);
}

#[test]
fn json_round_trip_preserves_keystore() {
    for file in ["keystore-scrypt.json", "keystore-pbkdf2.json"] {
        let ks = keystore(file);
        let again = Keystore::from_json(&ks.to_json()).unwrap();
        assert_eq!(again, ks, "{file}");
        // The serialised form is structurally the same JSON as the vector.
        let original: serde_json::Value =
            serde_json::from_str(&read(&format!("keystores/eip2335/{file}"))).unwrap();
        let written: serde_json::Value = serde_json::from_str(&ks.to_json()).unwrap();
        assert_eq!(written, original, "{file}");
    }
}
