//! Web3Signer's keystore resources (testdata/keystores/web3signer): the valid ones decrypt, the
//! invalid ones are refused by `from_json` with the expected error kind, and the acceptance-test
//! keystores decrypt with the passwords Web3Signer's tests use.

mod common;

use std::time::{Duration, Instant};

use common::{heavy_kdf, kind, read, read_json, unhex};
use ferrosigner_keystore::{Keystore, PublicKey};

#[test]
fn must_decrypt_files_decrypt_to_the_published_secret() {
    let cases = read_json("keystores/web3signer/keystore_cases.json");
    let res = &cases["bls_keystore_resources"];
    let password = res["password"].as_str().unwrap();
    let secret = unhex(res["secret"].as_str().unwrap());
    let pubkey = PublicKey::from_hex(res["pubkey"].as_str().unwrap()).unwrap();
    let files = res["must_decrypt"].as_array().unwrap();
    assert_eq!(files.len(), 3);
    let _guard = heavy_kdf();
    for file in files {
        let file = file.as_str().unwrap();
        let text = read(&format!(
            "keystores/web3signer/bls-keystore-resources/{file}"
        ));
        let ks = Keystore::from_json(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(ks.pubkey(), Some(pubkey), "{file}");
        let sk = ks
            .decrypt(password)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(sk.to_bytes().as_slice(), secret, "{file}");
    }
}

#[test]
fn must_reject_files_give_the_expected_error_kind_quickly() {
    let cases = read_json("keystores/web3signer/keystore_cases.json");
    let must_reject = cases["bls_keystore_resources"]["must_reject"]
        .as_object()
        .unwrap();
    let expected = read_json("keystores/web3signer/expected_errors.json");
    let expected = expected["errors"].as_object().unwrap();
    assert_eq!(must_reject.len(), expected.len());
    for (file, why) in must_reject {
        let text = read(&format!(
            "keystores/web3signer/bls-keystore-resources/{file}"
        ));
        let started = Instant::now();
        let err = Keystore::from_json(&text).expect_err(file);
        assert!(started.elapsed() < Duration::from_millis(50), "{file}");
        let want = expected[file].as_str().unwrap();
        assert_eq!(
            kind(&err),
            want,
            "{file} ({}): got {err}",
            why.as_str().unwrap()
        );
    }
}

#[test]
fn acceptance_keystores_decrypt_with_known_passwords() {
    let cases = read_json("keystores/web3signer/keystore_cases.json");
    let keystores = cases["keystores"].as_array().unwrap();
    assert_eq!(keystores.len(), 2);
    for case in keystores {
        let file = case["file"].as_str().unwrap();
        let password = case["password"].as_str().unwrap();
        let text = read(&format!("keystores/web3signer/{file}"));
        let ks = Keystore::from_json(&text).unwrap();
        let pubkey = ks.pubkey().expect("pubkey field");
        let sk = ks.decrypt(password).unwrap();
        assert_eq!(sk.public_key(), pubkey, "{file}");
        assert_eq!(ks.path(), "m/12381/3600/0/0/0");
        assert_eq!(ks.description(), None);
        // The two keystores' passwords are not interchangeable.
        let other = if password == "somepassword" {
            "otherpassword"
        } else {
            "somepassword"
        };
        assert_eq!(kind(&ks.decrypt(other).unwrap_err()), "WrongPassword");
    }
}

#[test]
fn eth2cli_keystore_parses() {
    // Its password is not published (see SOURCE.md), so only structure and pubkey are checked.
    let text = read("keystores/web3signer/acceptance-resources/eth2/eth2clikeystore.json");
    let ks = Keystore::from_json(&text).unwrap();
    let raw: serde_json::Value = serde_json::from_str(&text).unwrap();
    let pk = PublicKey::from_hex(raw["pubkey"].as_str().unwrap()).unwrap();
    assert_eq!(ks.pubkey(), Some(pk));
    assert_eq!(ks.description(), Some(""));
    assert_eq!(ks.uuid(), raw["uuid"].as_str().unwrap());
    assert_eq!(kind(&ks.decrypt("").unwrap_err()), "WrongPassword");
}
