//! Conformance: the generated signing fixtures (`testdata/signing/*.json`, mainnet, and
//! `testdata/signing-gloas/*.json`, sepolia with Gloas), read as data.
//!
//! Each 200 case must yield `expected_signing_root` (with `signingRoot`, with `signing_root`,
//! and with neither) and, signed with the fixture's key, `expected_signature`. Each 400 case
//! must be an error.

use std::path::PathBuf;

use ferrosigner_bls::SecretKey;
use ferrosigner_consensus::{Network, RequestKind, SlashingSubject, prepare};
use serde_json::Value;

fn dir(folder: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata")).join(folder)
}

fn root_from_hex(s: &str) -> [u8; 32] {
    let bytes = hex::decode(s.trim_start_matches("0x")).expect("fixture hex");
    bytes.try_into().expect("32-byte root")
}

fn fixtures(folder: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir(folder)).expect("fixture folder exists") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).expect("readable fixture");
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            out.push((name, serde_json::from_str(&text).expect("fixture is JSON")));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn network_of(fixture: &Value) -> Network {
    let net = &fixture["network"];
    let network = Network::by_name(net["name"].as_str().unwrap()).unwrap();
    assert_eq!(
        hex::encode(network.genesis_fork_version()),
        net["genesis_fork_version"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x")
    );
    assert_eq!(
        network.genesis_validators_root(),
        Some(root_from_hex(
            net["genesis_validators_root"].as_str().unwrap()
        ))
    );
    network
}

#[test]
fn accepted_fixtures_give_expected_root_and_signature() {
    let kinds = check_accepted("signing", 62, 57);
    // Every request type but BLOCK and the Gloas ones is covered by these fixtures.
    assert!(kinds.len() >= 12, "{kinds:?}");
}

#[test]
fn accepted_gloas_fixtures_give_expected_root_and_signature() {
    let kinds = check_accepted("signing-gloas", 41, 32);
    for kind in [
        RequestKind::ExecutionPayloadBid,
        RequestKind::ExecutionPayloadEnvelope,
        RequestKind::PayloadAttestationMessage,
        RequestKind::ProposerPreferences,
        RequestKind::BuilderRequestAuth,
        RequestKind::BlockV2,
        RequestKind::AggregateAndProofV2,
        RequestKind::Attestation,
    ] {
        assert!(kinds.contains(&kind), "{kind} not covered");
    }
}

fn check_accepted(
    folder: &str,
    min_files: usize,
    min_accepted: usize,
) -> std::collections::HashSet<RequestKind> {
    let all = fixtures(folder);
    assert!(
        all.len() >= min_files,
        "expected {min_files} fixtures in {folder}, found {}",
        all.len()
    );
    let mut seen_kinds = std::collections::HashSet::new();
    let mut accepted = 0;
    for (name, f) in &all {
        if f["expected_status"] != 200 {
            continue;
        }
        accepted += 1;
        let network = network_of(f);
        let expected = root_from_hex(f["expected_signing_root"].as_str().unwrap());
        let request = f["request"].clone();

        let body = serde_json::to_vec(&request).unwrap();
        let prepared = prepare(&body, &network).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(prepared.signing_root, expected, "{name}");
        seen_kinds.insert(prepared.kind);
        assert_eq!(
            prepared.kind,
            RequestKind::parse(request["type"].as_str().unwrap()).unwrap()
        );

        // The same request without any signingRoot, and with the snake_case spelling.
        let mut bare = request.clone();
        let supplied = bare.as_object_mut().unwrap().remove("signingRoot");
        let p = prepare(&serde_json::to_vec(&bare).unwrap(), &network).unwrap();
        assert_eq!(p.signing_root, expected, "{name} without signingRoot");
        if let Some(root) = supplied {
            let mut snake = bare.clone();
            snake["signing_root"] = root;
            let p = prepare(&serde_json::to_vec(&snake).unwrap(), &network).unwrap();
            assert_eq!(p.signing_root, expected, "{name} with signing_root");
        }

        // What slashing protection sees.
        match prepared.kind {
            RequestKind::BlockV2 | RequestKind::Block => {
                let block = &request["beacon_block"];
                let header = if block["block"].is_object() {
                    &block["block"]
                } else {
                    &block["block_header"]
                };
                let slot: u64 = header["slot"].as_str().unwrap().parse().unwrap();
                assert_eq!(
                    prepared.slashing,
                    Some(SlashingSubject::Block { slot }),
                    "{name}"
                );
            }
            RequestKind::Attestation => {
                let a = &request["attestation"];
                let epoch = |c: &str| a[c]["epoch"].as_str().unwrap().parse::<u64>().unwrap();
                assert_eq!(
                    prepared.slashing,
                    Some(SlashingSubject::Attestation {
                        source_epoch: epoch("source"),
                        target_epoch: epoch("target"),
                    }),
                    "{name}"
                );
            }
            _ => assert_eq!(prepared.slashing, None, "{name}"),
        }
        let gvr = request["fork_info"]["genesis_validators_root"]
            .as_str()
            .map(root_from_hex);
        assert_eq!(prepared.genesis_validators_root, gvr, "{name}");

        // The signature the fixture expects is the BLS signature of this root.
        let sk = SecretKey::from_bytes(
            &hex::decode(f["secret_key"].as_str().unwrap().trim_start_matches("0x")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            sk.sign(&prepared.signing_root).to_hex(),
            f["expected_signature"].as_str().unwrap().to_lowercase(),
            "{name}"
        );
    }
    assert!(
        accepted >= min_accepted,
        "only {accepted} accepted fixtures in {folder}"
    );
    seen_kinds
}

#[test]
fn rejected_fixtures_are_errors() {
    assert!(check_rejected("signing") >= 5);
    assert!(check_rejected("signing-gloas") >= 9);
}

fn check_rejected(folder: &str) -> usize {
    let mut rejected = 0;
    for (name, f) in fixtures(folder) {
        if f["expected_status"] == 200 {
            continue;
        }
        assert_eq!(f["expected_status"], 400, "{name}");
        rejected += 1;
        let network = network_of(&f);
        let body = serde_json::to_vec(&f["request"]).unwrap();
        let err = prepare(&body, &network).expect_err(&name);
        assert!(!err.to_string().is_empty());
    }
    rejected
}
