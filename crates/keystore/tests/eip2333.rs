//! EIP-2333 test cases (testdata/eip2333/vectors.json): master and child keys.

mod common;

use common::{decimal_to_be32, read_json, unhex};
use ferrosigner_keystore::{SecretKey, derive_secret_key};

#[test]
fn decimal_conversion_helper() {
    assert_eq!(decimal_to_be32("0"), [0u8; 32]);
    let mut v = [0u8; 32];
    v[30] = 0x01;
    assert_eq!(decimal_to_be32("256"), v);
    let mut w = [0u8; 32];
    w[24..].copy_from_slice(&u64::MAX.to_be_bytes());
    assert_eq!(decimal_to_be32(&u64::MAX.to_string()), w);
}

#[test]
fn master_and_child_keys_match_vectors() {
    let vectors = read_json("eip2333/vectors.json");
    let cases = vectors["test_cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let seed = unhex(case["seed"].as_str().unwrap());
        let master = decimal_to_be32(case["master_SK"].as_str().unwrap());
        let index: u32 = case["child_index"].as_str().unwrap().parse().unwrap();
        let child = decimal_to_be32(case["child_SK"].as_str().unwrap());

        let got_master = derive_secret_key(&seed, "m").unwrap();
        assert_eq!(*got_master.to_bytes(), master, "{name} master");
        let got_child = derive_secret_key(&seed, &format!("m/{index}")).unwrap();
        assert_eq!(*got_child.to_bytes(), child, "{name} child");
        // The public key follows from the secret.
        assert_eq!(
            got_child.public_key(),
            SecretKey::from_bytes(&child).unwrap().public_key()
        );
    }
}

#[test]
fn intermediate_case_child_matches() {
    let vectors = read_json("eip2333/vectors.json");
    let case = &vectors["intermediate_values_case"];
    let seed = unhex(case["seed"].as_str().unwrap());
    let index = case["child_index"].as_str().unwrap();
    let child = decimal_to_be32(case["child_SK"].as_str().unwrap());
    let got = derive_secret_key(&seed, &format!("m/{index}")).unwrap();
    assert_eq!(*got.to_bytes(), child);
}
