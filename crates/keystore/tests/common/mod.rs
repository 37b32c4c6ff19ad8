//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use ferrosigner_keystore::Error;
use serde_json::Value;

/// Path of a file under `testdata/`.
pub fn testdata(rel: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/")).join(rel)
}

/// Reads a file under `testdata/` as text.
pub fn read(rel: &str) -> String {
    let path = testdata(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Reads a JSON file under `testdata/`.
pub fn read_json(rel: &str) -> Value {
    serde_json::from_str(&read(rel)).unwrap()
}

/// The variant name of an error (the part of its `Debug` before any payload).
pub fn kind(e: &Error) -> String {
    let shown = format!("{e:?}");
    shown.split('(').next().unwrap_or_default().to_owned()
}

static HEAVY: Mutex<()> = Mutex::new(());

/// Serialises tests that run a full-cost scrypt (256 MiB each) so they do not run at once.
pub fn heavy_kdf() -> MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|p| p.into_inner())
}

/// `0x`-prefixed hex to bytes.
pub fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s.trim_start_matches("0x")).unwrap()
}

/// A decimal integer (below 2^256) as 32 big-endian bytes.
pub fn decimal_to_be32(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for digit in s.bytes() {
        assert!(digit.is_ascii_digit(), "not decimal: {s}");
        let mut carry = u32::from(digit - b'0');
        for byte in out.iter_mut().rev() {
            let v = u32::from(*byte) * 10 + carry;
            *byte = (v & 0xff) as u8;
            carry = v >> 8;
        }
        assert_eq!(carry, 0, "overflow: {s}");
    }
    out
}
