//! Any text as an EIP-2335 keystore: parsing (which checks KDF bounds before any KDF runs) must never panic;
//! decryption is attempted only for cheap parameters so the fuzzer keeps its speed.
#![no_main]

use ferrosigner_keystore::Keystore;
use ferrosigner_keystore::kdf::KdfParams;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(keystore) = Keystore::from_json(text) else { return };
    let cheap = match keystore.kdf() {
        KdfParams::Scrypt { log2_n, .. } => log2_n <= 8,
        KdfParams::Pbkdf2 { c } => c <= 1024,
    };
    if cheap {
        let _ = keystore.decrypt("fuzz");
    }
    let _ = Keystore::from_json(&keystore.to_json()).expect("a parsed keystore serialises to a valid one");
});
