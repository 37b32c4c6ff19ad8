//! The ethereum/bls12-381-tests vectors (`testdata/bls`, see its SOURCE.md), read as data.

use std::fs;
use std::path::PathBuf;

use ferrosigner_bls::{HashCache, PublicKey, SecretKey, Signature};
use serde_json::Value;

fn cases(kind: &str) -> Vec<(String, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/bls")
        .join(kind);
    let mut out: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let path = e.unwrap().path();
            let v: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
            (path.file_name().unwrap().to_string_lossy().into_owned(), v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!out.is_empty(), "no {kind} vectors");
    out
}

fn unhex(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap().trim_start_matches("0x")).unwrap()
}

#[test]
fn sign() {
    // One cache for all cases: each message is signed on a miss, then on a hit, besides directly.
    let cache = HashCache::default();
    for (name, case) in cases("sign") {
        let input = &case["input"];
        let sk = SecretKey::from_bytes(&unhex(&input["privkey"]));
        match &case["output"] {
            Value::Null => assert!(sk.is_err(), "{name}: expected the key to be refused"),
            expected => {
                let sk = sk.unwrap_or_else(|e| panic!("{name}: {e}"));
                let message = unhex(&input["message"]);
                let root: [u8; 32] = message.as_slice().try_into().expect("32-byte message");
                let expected = unhex(expected);
                let signed = [
                    sk.sign(&message),
                    sk.sign_with(&root, &cache),
                    sk.sign_with(&root, &cache),
                ];
                for (path, sig) in ["direct", "cache miss or hit", "cache hit"]
                    .iter()
                    .zip(signed)
                {
                    assert_eq!(
                        sig.as_bytes().as_slice(),
                        expected.as_slice(),
                        "{name}: {path}"
                    );
                }
                assert!(cache.contains(&root), "{name}");
            }
        }
    }
}

#[test]
fn verify() {
    for (name, case) in cases("verify") {
        let input = &case["input"];
        let expected = case["output"].as_bool().unwrap();
        let result = (|| {
            let pk = PublicKey::from_bytes(&unhex(&input["pubkey"])).ok()?;
            let sig = Signature::from_bytes(&unhex(&input["signature"])).ok()?;
            Some(sig.verify(&pk, &unhex(&input["message"])))
        })()
        .unwrap_or(false);
        assert_eq!(result, expected, "{name}");
    }
}

#[test]
fn deserialization_g1() {
    for (name, case) in cases("deserialization_G1") {
        let ok = PublicKey::from_bytes(&unhex(&case["input"]["pubkey"])).is_ok();
        let expected = case["output"].as_bool().unwrap();
        // Infinity is a valid encoding in G1 but never a usable public key: we refuse it.
        let expected = expected && !name.contains("infinity");
        assert_eq!(ok, expected, "{name}");
    }
}

#[test]
fn deserialization_g2() {
    for (name, case) in cases("deserialization_G2") {
        let ok = Signature::from_bytes(&unhex(&case["input"]["signature"])).is_ok();
        assert_eq!(ok, case["output"].as_bool().unwrap(), "{name}");
    }
}
