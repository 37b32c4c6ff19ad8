//! Behaviour of `prepare` on hand-built and mutated requests.
//!
//! Expected roots are computed with the crate's lower-level pieces (`compute_domain`,
//! `compute_signing_root`, container `tree_hash_root`) or taken from a fixture in
//! `testdata/signing`, never written out by hand.

use ferrosigner_consensus::containers::{AttestationData, Checkpoint, VoluntaryExit};
use ferrosigner_consensus::signing::{DOMAIN_RANDAO, DOMAIN_VOLUNTARY_EXIT};
use ferrosigner_consensus::{
    Error, ForkName, Network, RequestKind, SlashingSubject, compute_domain, compute_signing_root,
    prepare,
};
use serde_json::{Value, json};
use tree_hash::TreeHash;

const MAINNET_GVR: &str = "0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95";

fn mainnet() -> Network {
    Network::by_name("mainnet").unwrap()
}

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../../testdata/signing/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn expected_root(f: &Value) -> [u8; 32] {
    let s = f["expected_signing_root"].as_str().unwrap();
    hex::decode(&s[2..]).unwrap().try_into().unwrap()
}

fn run(body: &Value) -> Result<ferrosigner_consensus::Prepared, Error> {
    prepare(&serde_json::to_vec(body).unwrap(), &mainnet())
}

fn gvr() -> [u8; 32] {
    hex::decode(&MAINNET_GVR[2..]).unwrap().try_into().unwrap()
}

fn fork_info(prev: &str, cur: &str, epoch: u64) -> Value {
    json!({"fork": {"previous_version": prev, "current_version": cur, "epoch": epoch.to_string()},
           "genesis_validators_root": MAINNET_GVR})
}

fn v4(s: &str) -> [u8; 4] {
    hex::decode(&s[2..]).unwrap().try_into().unwrap()
}

#[test]
fn fork_version_switches_at_the_fork_epoch() {
    let (prev, cur, fork_epoch) = ("0x03000000", "0x04000000", 269568u64);
    for (epoch, version) in [
        (fork_epoch - 1, prev),
        (fork_epoch, cur),
        (fork_epoch + 1, cur),
    ] {
        let body = json!({"type": "RANDAO_REVEAL", "fork_info": fork_info(prev, cur, fork_epoch),
                          "randao_reveal": {"epoch": epoch.to_string()}});
        let expected = compute_signing_root(
            epoch.tree_hash_root().0,
            compute_domain(DOMAIN_RANDAO, v4(version), gvr()),
        );
        assert_eq!(run(&body).unwrap().signing_root, expected, "epoch {epoch}");
    }
    // Slot-based: the last slot of the previous epoch and the first of the fork epoch differ in
    // domain, so the same header at those slots must give roots built from different versions.
    let header = |slot: u64| {
        json!({"type": "BLOCK_V2", "fork_info": fork_info(prev, cur, fork_epoch),
               "beacon_block": {"version": "DENEB", "block_header": {
                   "slot": slot.to_string(), "proposer_index": "1",
                   "parent_root": format!("0x{}", "11".repeat(32)),
                   "state_root": format!("0x{}", "22".repeat(32)),
                   "body_root": format!("0x{}", "33".repeat(32))}}})
    };
    for (slot, version) in [(fork_epoch * 32 - 1, prev), (fork_epoch * 32, cur)] {
        let h = ferrosigner_consensus::containers::BeaconBlockHeader {
            slot,
            proposer_index: 1,
            parent_root: [0x11; 32],
            state_root: [0x22; 32],
            body_root: [0x33; 32],
        };
        let expected = compute_signing_root(
            h.tree_hash_root().0,
            compute_domain([0; 4], v4(version), gvr()),
        );
        let p = run(&header(slot)).unwrap();
        assert_eq!(p.signing_root, expected, "slot {slot}");
        assert_eq!(p.slashing, Some(SlashingSubject::Block { slot }));
    }
}

fn exit_body(prev: &str, cur: &str, fork_epoch: u64, exit_epoch: u64) -> Value {
    json!({"type": "VOLUNTARY_EXIT", "fork_info": fork_info(prev, cur, fork_epoch),
           "voluntary_exit": {"epoch": exit_epoch.to_string(), "validator_index": "7"}})
}

fn exit_root(version: &str, exit_epoch: u64) -> [u8; 32] {
    let exit = VoluntaryExit {
        epoch: exit_epoch,
        validator_index: 7,
    };
    compute_signing_root(
        exit.tree_hash_root().0,
        compute_domain(DOMAIN_VOLUNTARY_EXIT, v4(version), gvr()),
    )
}

#[test]
fn voluntary_exits_follow_eip_7044() {
    let capella = exit_root("0x03000000", 400_000);
    // Deneb, Electra and Fulu fork_info all sign with the Capella version.
    for (prev, cur, epoch) in [
        ("0x03000000", "0x04000000", 269568),
        ("0x04000000", "0x05000000", 364032),
        ("0x05000000", "0x06000000", 411392),
    ] {
        let p = run(&exit_body(prev, cur, epoch, 400_000)).unwrap();
        assert_eq!(p.signing_root, capella, "fork_info current {cur}");
        assert_eq!(p.kind, RequestKind::VoluntaryExit);
        assert_eq!(p.slashing, None);
    }
    // A client that already sends Capella fork_info is unaffected.
    let p = run(&exit_body("0x02000000", "0x03000000", 194048, 400_000)).unwrap();
    assert_eq!(p.signing_root, capella);
    // Before Deneb the usual previous/current rule applies.
    let p = run(&exit_body("0x02000000", "0x03000000", 194048, 194047)).unwrap();
    assert_eq!(p.signing_root, exit_root("0x02000000", 194047));
    assert_ne!(p.signing_root, exit_root("0x03000000", 194047));
    // A version unknown to the network is not treated as Deneb-or-later.
    let p = run(&exit_body("0x06000000", "0x09000000", 500_000, 500_001)).unwrap();
    assert_eq!(p.signing_root, exit_root("0x09000000", 500_001));
    // Mainnet's (unscheduled) Gloas version is after Deneb: Capella's version.
    let p = run(&exit_body("0x06000000", "0x07000000", 500_000, 500_001)).unwrap();
    assert_eq!(p.signing_root, exit_root("0x03000000", 500_001));

    // A network whose Deneb version is known but Capella's is not cannot apply EIP-7044.
    let yaml =
        "PRESET_BASE: mainnet\nGENESIS_FORK_VERSION: 0x00000000\nDENEB_FORK_VERSION: 0x04000000\n";
    let odd = Network::from_config_yaml(yaml).unwrap();
    let body = exit_body("0x03000000", "0x04000000", 269568, 400_000);
    let err = prepare(&serde_json::to_vec(&body).unwrap(), &odd).unwrap_err();
    assert!(matches!(err, Error::MissingForkVersion { .. }), "{err}");
}

#[test]
fn uint64_extremes_and_number_forms() {
    let max = u64::MAX;
    let body = json!({"type": "ATTESTATION", "fork_info": fork_info("0x05000000", "0x06000000", max),
        "attestation": {"slot": max.to_string(), "index": max.to_string(),
            "beacon_block_root": format!("0x{}", "ab".repeat(32)),
            "source": {"epoch": max.to_string(), "root": format!("0x{}", "00".repeat(32))},
            "target": {"epoch": max.to_string(), "root": format!("0x{}", "cd".repeat(32))}}});
    let p = run(&body).unwrap();
    assert_eq!(
        p.slashing,
        Some(SlashingSubject::Attestation {
            source_epoch: max,
            target_epoch: max
        })
    );
    let data = AttestationData {
        slot: max,
        index: max,
        beacon_block_root: [0xab; 32],
        source: Checkpoint {
            epoch: max,
            root: [0; 32],
        },
        target: Checkpoint {
            epoch: max,
            root: [0xcd; 32],
        },
    };
    // target epoch == fork epoch == u64::MAX: current version.
    let expected = compute_signing_root(
        data.tree_hash_root().0,
        compute_domain([1, 0, 0, 0], [6, 0, 0, 0], gvr()),
    );
    assert_eq!(p.signing_root, expected);

    // One above u64::MAX, negative, fractional, empty, hex: all errors.
    for bad in [
        json!("18446744073709551616"),
        json!("-1"),
        json!(-1),
        json!(1.5),
        json!(""),
        json!("0x10"),
        json!(" 1"),
        json!(null),
        json!(true),
        json!([1]),
    ] {
        let mut b = body.clone();
        b["attestation"]["slot"] = bad.clone();
        let err = run(&b).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidField {
                    field: "attestation",
                    ..
                }
            ),
            "{bad}: {err}"
        );
    }
    // JSON numbers are accepted and mean the same as strings.
    let mut as_number = body.clone();
    as_number["attestation"]["source"]["epoch"] = json!(u64::MAX);
    assert_eq!(run(&as_number).unwrap().signing_root, p.signing_root);
}

/// Upper-cases the hex digits of every `0x…` string in a JSON value.
fn upper_hex(v: &mut Value) {
    match v {
        Value::String(s) if s.starts_with("0x") => *s = format!("0x{}", s[2..].to_uppercase()),
        Value::Array(a) => a.iter_mut().for_each(upper_hex),
        Value::Object(o) => o.values_mut().for_each(upper_hex),
        _ => {}
    }
}

#[test]
fn uppercase_hex_gives_the_same_root() {
    for name in [
        "048-attestation.json",
        "006-block_v2-altair.json",
        "035-aggregate_and_proof_v2-electra.json",
        "047-sync_committee_contribution_and_proof-fulu.json",
        "054-validator_registration.json",
        "051-deposit.json",
    ] {
        let f = fixture(name);
        let mut body = f["request"].clone();
        upper_hex(&mut body);
        assert_eq!(
            run(&body).unwrap().signing_root,
            expected_root(&f),
            "{name}"
        );
    }
}

#[test]
fn type_and_version_are_case_insensitive() {
    let f = fixture("041-block_v2-fulu.json");
    for t in ["block_v2", "Block_V2", "bLoCk_v2"] {
        let mut body = f["request"].clone();
        body["type"] = json!(t);
        body["beacon_block"]["version"] = json!("fulu");
        assert_eq!(run(&body).unwrap().signing_root, expected_root(&f), "{t}");
    }
    for kind in RequestKind::ALL {
        assert_eq!(
            RequestKind::parse(&kind.as_str().to_lowercase()),
            Some(kind)
        );
    }
}

#[test]
fn signing_root_spellings() {
    let f = fixture("048-attestation.json");
    let root = f["expected_signing_root"].clone();
    let other = json!(format!("0x{}", "ab".repeat(32)));
    let mut body = f["request"].clone();
    body.as_object_mut().unwrap().remove("signingRoot");

    let mut snake = body.clone();
    snake["signing_root"] = root.clone();
    assert!(run(&snake).is_ok());

    let mut both = snake.clone();
    both["signingRoot"] = root.clone();
    assert!(run(&both).is_ok());

    both["signingRoot"] = other.clone();
    assert_eq!(run(&both).unwrap_err(), Error::ConflictingSigningRoots);

    let mut wrong = body.clone();
    wrong["signing_root"] = other;
    let err = run(&wrong).unwrap_err();
    assert!(matches!(err, Error::SigningRootMismatch { .. }));
    let msg = err.to_string();
    assert!(msg.starts_with("signingRoot 0xabab"), "{msg}");
    assert!(msg.ends_with(root.as_str().unwrap()), "{msg}");

    let mut short = body.clone();
    short["signingRoot"] = json!("0xabcd");
    assert!(matches!(run(&short), Err(Error::MalformedBody(_))));
}

#[test]
fn unknown_fields_are_ignored() {
    let f = fixture("035-aggregate_and_proof_v2-electra.json");
    let mut body = f["request"].clone();
    body["extra"] = json!({"nested": [1, 2, {"x": null}]});
    body["fork_info"]["extra"] = json!("x");
    body["fork_info"]["fork"]["extra"] = json!(1);
    body["aggregate_and_proof"]["extra"] = json!([]);
    body["aggregate_and_proof"]["data"]["aggregate"]["extra"] = json!(true);
    body["attestation"] = json!({"not": "used by this type"});
    assert_eq!(run(&body).unwrap().signing_root, expected_root(&f));
}

#[test]
fn fork_info_is_required_where_the_domain_needs_it() {
    for name in [
        "048-attestation.json",
        "041-block_v2-fulu.json",
        "043-aggregation_slot-fulu.json",
        "042-aggregate_and_proof_v2-fulu.json",
        "044-randao_reveal-fulu.json",
        "053-voluntary_exit-capella.json",
        "045-sync_committee_message-fulu.json",
        "046-sync_committee_selection_proof-fulu.json",
        "047-sync_committee_contribution_and_proof-fulu.json",
    ] {
        let mut body = fixture(name)["request"].clone();
        body.as_object_mut().unwrap().remove("fork_info");
        let err = run(&body).unwrap_err();
        assert_eq!(err, Error::MissingField("fork_info"), "{name}");
        assert_eq!(err.to_string(), "missing field `fork_info`");
        body["fork_info"] = Value::Null;
        assert_eq!(run(&body).unwrap_err(), Error::MissingField("fork_info"));
    }
    // DEPOSIT and VALIDATOR_REGISTRATION do not use it.
    for name in ["051-deposit.json", "054-validator_registration.json"] {
        let f = fixture(name);
        let p = run(&f["request"]).unwrap();
        assert_eq!(p.signing_root, expected_root(&f));
        assert_eq!(p.genesis_validators_root, None);
    }
}

#[test]
fn missing_or_null_objects() {
    for kind in RequestKind::ALL {
        let body =
            json!({"type": kind.as_str(), "fork_info": fork_info("0x05000000", "0x06000000", 1)});
        let err = run(&body).unwrap_err();
        assert!(matches!(err, Error::MissingField(_)), "{kind}: {err}");
        assert!(err.to_string().starts_with("missing field `"), "{err}");
    }
    let body = json!({"type": "ATTESTATION", "attestation": null,
                      "fork_info": fork_info("0x05000000", "0x06000000", 1)});
    assert_eq!(run(&body).unwrap_err(), Error::MissingField("attestation"));
}

#[test]
fn block_v2_shapes() {
    let header_fixture = fixture("041-block_v2-fulu.json");
    let block_fixture = fixture("002-block_v2-phase0.json");

    for version in ["BELLATRIX", "CAPELLA", "DENEB", "ELECTRA", "FULU"] {
        let mut body = block_fixture["request"].clone();
        body["beacon_block"]["version"] = json!(version);
        let err = run(&body).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("beacon_block version {version} requires block_header")
        );
    }
    for version in ["PHASE0", "ALTAIR"] {
        let mut body = header_fixture["request"].clone();
        body["beacon_block"]["version"] = json!(version);
        let err = run(&body).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("beacon_block version {version} requires block")
        );
    }
    let mut body = header_fixture["request"].clone();
    body["beacon_block"]["version"] = json!("GLOAZ");
    assert!(matches!(run(&body), Err(Error::UnknownVersion { .. })));
    // GLOAS is known, but mainnet schedules no Gloas epoch; HEZE signs nothing yet.
    for version in ["GLOAS", "HEZE"] {
        body["beacon_block"]["version"] = json!(version);
        assert!(
            matches!(run(&body), Err(Error::ForkMismatch(_))),
            "{version}"
        );
    }

    // The deprecated BLOCK type carries the same phase0 block and signs the same root.
    let mut legacy = block_fixture["request"].clone();
    let block = legacy["beacon_block"]["block"].clone();
    let obj = legacy.as_object_mut().unwrap();
    obj.remove("beacon_block");
    obj.insert("type".into(), json!("BLOCK"));
    obj.insert("block".into(), block);
    let p = run(&legacy).unwrap();
    assert_eq!(p.kind, RequestKind::Block);
    assert_eq!(p.signing_root, expected_root(&block_fixture));
    assert!(matches!(p.slashing, Some(SlashingSubject::Block { .. })));
}

#[test]
fn aggregate_and_proof_forms() {
    // A bare Electra aggregate (as Lighthouse sends with AGGREGATE_AND_PROOF) is recognised by
    // its committee_bits and signs the same root as the versioned form.
    for (name, kind) in [
        (
            "035-aggregate_and_proof_v2-electra.json",
            "AGGREGATE_AND_PROOF",
        ),
        (
            "035-aggregate_and_proof_v2-electra.json",
            "AGGREGATE_AND_PROOF_V2",
        ),
        (
            "028-aggregate_and_proof_v2-deneb.json",
            "AGGREGATE_AND_PROOF",
        ),
        (
            "042-aggregate_and_proof_v2-fulu.json",
            "AGGREGATE_AND_PROOF",
        ),
    ] {
        let f = fixture(name);
        let mut body = f["request"].clone();
        let data = body["aggregate_and_proof"]["data"].clone();
        body["aggregate_and_proof"] = data;
        body["type"] = json!(kind);
        assert_eq!(
            run(&body).unwrap().signing_root,
            expected_root(&f),
            "{name} {kind}"
        );
    }

    // A bare aggregate whose shape contradicts the schedule is refused.
    let deneb = fixture("028-aggregate_and_proof_v2-deneb.json");
    let electra = fixture("035-aggregate_and_proof_v2-electra.json");
    let mut body = electra["request"].clone();
    let mut data = body["aggregate_and_proof"]["data"].clone();
    data["aggregate"]["data"] =
        deneb["request"]["aggregate_and_proof"]["data"]["aggregate"]["data"].clone();
    body["aggregate_and_proof"] = data;
    assert!(matches!(run(&body), Err(Error::ForkMismatch(_))));

    // A versioned Electra aggregate without committee_bits is malformed.
    let mut body = electra["request"].clone();
    body["aggregate_and_proof"]["data"]["aggregate"]
        .as_object_mut()
        .unwrap()
        .remove("committee_bits");
    let err = run(&body).unwrap_err();
    assert!(err.to_string().contains("committee_bits"), "{err}");

    // A versioned wrapper without data.
    let mut body = electra["request"].clone();
    body["aggregate_and_proof"]
        .as_object_mut()
        .unwrap()
        .remove("data");
    assert_eq!(
        run(&body).unwrap_err(),
        Error::MissingField("aggregate_and_proof.data")
    );
}

#[test]
fn list_and_bitfield_limits() {
    let f = fixture("028-aggregate_and_proof_v2-deneb.json");
    // 2048 bits + length bit = 257 bytes is the largest valid phase0 aggregation_bits.
    let mut body = f["request"].clone();
    body["aggregate_and_proof"]["data"]["aggregate"]["aggregation_bits"] =
        json!(format!("0x{}01", "ff".repeat(256)));
    assert!(run(&body).is_err_and(|e| matches!(e, Error::SigningRootMismatch { .. })));
    body["aggregate_and_proof"]["data"]["aggregate"]["aggregation_bits"] =
        json!(format!("0x{}01", "ff".repeat(257)));
    assert!(matches!(run(&body), Err(Error::InvalidField { .. })));
    // No length bit.
    body["aggregate_and_proof"]["data"]["aggregate"]["aggregation_bits"] = json!("0x00");
    assert!(matches!(run(&body), Err(Error::InvalidField { .. })));

    // Sync contribution bits are a fixed 128-bit vector on mainnet.
    let f = fixture("047-sync_committee_contribution_and_proof-fulu.json");
    for bits in [
        "0x7783e95569536a42b90d7216c402c5",
        "0x7783e95569536a42b90d7216c402c53400",
    ] {
        let mut body = f["request"].clone();
        body["contribution_and_proof"]["contribution"]["aggregation_bits"] = json!(bits);
        assert!(
            matches!(run(&body), Err(Error::InvalidField { .. })),
            "{bits}"
        );
    }

    // Attester slashing indices over MAX_VALIDATORS_PER_COMMITTEE.
    let f = fixture("002-block_v2-phase0.json");
    let mut body = f["request"].clone();
    let slashing = json!({"attestation_1": {"attesting_indices": vec!["1"; 2049],
            "data": body["beacon_block"]["block"]["body"]["attestations"][0]["data"].clone(),
            "signature": format!("0x{}", "00".repeat(96))}});
    let mut s = slashing.clone();
    s["attestation_2"] = slashing["attestation_1"].clone();
    body["beacon_block"]["block"]["body"]["attester_slashings"] = json!([s]);
    let err = run(&body).unwrap_err();
    assert!(err.to_string().contains("limit"), "{err}");
}

#[test]
fn malformed_envelopes() {
    let net = mainnet();
    for body in [
        &b""[..],
        b"null",
        b"[]",
        b"\"ATTESTATION\"",
        b"{}",
        b"{\"type\": 5}",
        b"{\"type\": \"ATTESTATION\", \"type\": \"ATTESTATION\"}",
        b"{\"type\": \"RANDAO_REVEAL\"} trailing",
        b"\xff\xfe",
    ] {
        assert!(
            matches!(prepare(body, &net), Err(Error::MalformedBody(_))),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    let err = prepare(br#"{"type": "FOO"}"#, &net).unwrap_err();
    assert_eq!(err.to_string(), "unknown type `FOO`");
    let long = format!(r#"{{"type": "{}"}}"#, "X".repeat(10_000));
    assert!(
        prepare(long.as_bytes(), &net)
            .unwrap_err()
            .to_string()
            .len()
            < 100
    );

    // Deep nesting (in an ignored field, an object field, and inside an object) is an error,
    // not a stack overflow.
    let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    for deep in [
        format!(r#"{{"type": "RANDAO_REVEAL", "x": {}}}"#, nest(100_000)),
        format!(
            r#"{{"type": "RANDAO_REVEAL", "fork_info": {}}}"#,
            nest(100_000)
        ),
        format!(
            r#"{{"type": "RANDAO_REVEAL", "randao_reveal": {{"epoch": "1", "x": {}}}}}"#,
            nest(100_000)
        ),
    ] {
        assert!(prepare(deep.as_bytes(), &net).is_err());
    }
}

/// Every strict prefix of a valid body is an error; no byte mutation panics.
#[test]
fn truncations_and_mutations_never_panic() {
    let net = mainnet();
    let dir = format!("{}/../../testdata/signing", env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    names.sort();
    for (i, path) in names.iter().enumerate() {
        let f: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let body = serde_json::to_vec(&f["request"]).unwrap();
        for cut in 0..body.len() {
            assert!(prepare(&body[..cut], &net).is_err(), "{path:?} cut {cut}");
        }
        // Byte mutations on a spread of fixtures (all of them would be slow in debug builds).
        if i % 4 == 0 {
            for pos in 0..body.len() {
                for b in [b'"', b'0', b'f', b'x', b'}', b'[', 0xff, b'\\'] {
                    let mut m = body.clone();
                    m[pos] = b;
                    let _ = prepare(&m, &net);
                }
            }
        }
    }
}

#[test]
fn electra_and_minimal_networks_pick_their_types() {
    let minimal = Network::by_name("minimal").unwrap();
    assert_eq!(minimal.fork_at_epoch(0), ForkName::Phase0);
    // A mainnet contribution (128-bit vector) does not parse under the minimal preset (8 bits).
    let f = fixture("047-sync_committee_contribution_and_proof-fulu.json");
    let body = serde_json::to_vec(&f["request"]).unwrap();
    assert!(matches!(
        prepare(&body, &minimal),
        Err(Error::InvalidField { .. })
    ));
}

#[test]
fn builder_request_auth_data_holds_one_to_4096_bytes() {
    let path = format!(
        "{}/../../testdata/signing-gloas/027-builder_request_auth.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let sepolia = Network::by_name("sepolia").unwrap();
    let with_data = |hex_data: &str| {
        let mut body = fixture["request"].clone();
        body.as_object_mut().unwrap().remove("signingRoot");
        body["builder_request_auth"]["data"]["data"] = json!(hex_data);
        prepare(&serde_json::to_vec(&body).unwrap(), &sepolia)
    };
    // builder-specs (ethereum/builder-specs#165): a zero-length `data` is invalid.
    assert!(matches!(
        with_data("0x"),
        Err(Error::InvalidField {
            field: "builder_request_auth",
            ..
        })
    ));
    assert!(with_data("0x01").is_ok());
    assert!(with_data(&format!("0x{}", "ab".repeat(4096))).is_ok());
    assert!(with_data(&format!("0x{}", "ab".repeat(4097))).is_err());
}
