//! Conformance: Web3Signer's OpenAPI sign request examples (`testdata/web3signer-examples`).
//!
//! The examples were computed on a custom network with genesis fork version 0x00000001; most
//! use mainnet-preset types, two use minimal-preset bit lengths (see that folder's SOURCE.md).

use ferrosigner_consensus::{Error, Network, Preset, prepare};
use serde_json::Value;

const EXAMPLES: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/web3signer-examples/sign_examples.json"
));

/// Examples whose `signingRoot` is not reproducible (per SOURCE.md).
const NOT_VECTORS: [&str; 3] = [
    "AGGREGATE_AND_PROOF_V2 (ELECTRA)",
    "AGGREGATE_AND_PROOF_V2 (FULU)",
    "BLOCK (DEPRECATED)",
];

/// Examples computed with minimal-preset list lengths (per SOURCE.md).
const MINIMAL: [&str; 2] = ["BLOCK_V2 (ALTAIR)", "SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF"];

fn example_network(preset: Preset) -> Network {
    let yaml = format!(
        "PRESET_BASE: {}\nCONFIG_NAME: web3signer-openapi\nGENESIS_FORK_VERSION: 0x00000001\n",
        preset.as_str()
    );
    Network::from_config_yaml(&yaml).unwrap()
}

fn examples() -> Vec<(String, Value)> {
    let v: Value = serde_json::from_str(EXAMPLES).unwrap();
    v["examples"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[test]
fn reproducible_examples_match() {
    let mut matched = 0;
    for (name, request) in examples() {
        if NOT_VECTORS.contains(&name.as_str()) {
            continue;
        }
        let preset = if MINIMAL.contains(&name.as_str()) {
            Preset::Minimal
        } else {
            Preset::Mainnet
        };
        let body = serde_json::to_vec(&request).unwrap();
        let prepared =
            prepare(&body, &example_network(preset)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected = request["signingRoot"].as_str().unwrap();
        assert_eq!(
            format!("0x{}", hex::encode(prepared.signing_root)),
            expected,
            "{name}"
        );
        matched += 1;
    }
    assert_eq!(matched, 22);
}

#[test]
fn minimal_examples_differ_under_mainnet_limits() {
    // The list limits are part of the hash: the same JSON cannot give the same root under
    // both presets (here the bitvector length does not even parse).
    for name in MINIMAL {
        let (_, request) = examples().into_iter().find(|(n, _)| n == name).unwrap();
        let body = serde_json::to_vec(&request).unwrap();
        assert!(
            prepare(&body, &example_network(Preset::Mainnet)).is_err(),
            "{name}"
        );
    }
}

#[test]
fn non_vectors_are_refused_not_panicking() {
    for name in NOT_VECTORS {
        let (_, request) = examples().into_iter().find(|(n, _)| n == name).unwrap();
        let body = serde_json::to_vec(&request).unwrap();
        for preset in [Preset::Mainnet, Preset::Minimal] {
            let err = prepare(&body, &example_network(preset)).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::SigningRootMismatch { .. } | Error::InvalidField { .. }
                ),
                "{name}: {err}"
            );
        }
    }
}
