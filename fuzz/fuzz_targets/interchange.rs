//! Any text as an EIP-3076 interchange: parsing and planning an import must never panic.
#![no_main]

use ferrosigner_slashing::interchange::Interchange;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(interchange) = Interchange::from_json(text) {
        let _ = interchange.to_json();
        let _ = interchange.import_plan(None);
    }
});
