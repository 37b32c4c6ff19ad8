//! Any bytes as a sign request body: `prepare` must return Ok or Err, never panic, on every network preset.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for name in ["mainnet", "minimal", "gnosis"] {
        let network = ferrosigner_consensus::Network::by_name(name).expect("built-in network");
        let _ = ferrosigner_consensus::prepare(data, &network);
    }
});
