//! Property tests: arbitrary input never panics, and JSON written from a container parses back
//! to the same signing root as the container's own `tree_hash_root`.

use ferrosigner_consensus::containers::{
    AttestationData, BeaconBlockHeader, Checkpoint, ValidatorRegistrationV1,
};
use ferrosigner_consensus::signing::{
    DOMAIN_APPLICATION_BUILDER, DOMAIN_BEACON_ATTESTER, DOMAIN_BEACON_PROPOSER,
};
use ferrosigner_consensus::{
    Fork, ForkInfo, Network, SlashingSubject, compute_domain, compute_signing_root, prepare,
};
use proptest::prelude::*;
use serde_json::json;
use tree_hash::TreeHash;

fn fork_info() -> impl Strategy<Value = ForkInfo> {
    (
        any::<[u8; 4]>(),
        any::<[u8; 4]>(),
        any::<u64>(),
        any::<[u8; 32]>(),
    )
        .prop_map(
            |(previous_version, current_version, epoch, genesis_validators_root)| ForkInfo {
                fork: Fork {
                    previous_version,
                    current_version,
                    epoch,
                },
                genesis_validators_root,
            },
        )
}

fn checkpoint() -> impl Strategy<Value = Checkpoint> {
    (any::<u64>(), any::<[u8; 32]>()).prop_map(|(epoch, root)| Checkpoint { epoch, root })
}

fn attestation_data() -> impl Strategy<Value = AttestationData> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<[u8; 32]>(),
        checkpoint(),
        checkpoint(),
    )
        .prop_map(
            |(slot, index, beacon_block_root, source, target)| AttestationData {
                slot,
                index,
                beacon_block_root,
                source,
                target,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = prepare(&body, &Network::by_name("mainnet").unwrap());
    }

    #[test]
    fn arbitrary_strings_in_fields_never_panic(
        t in "[A-Za-z_]{0,40}",
        v in ".{0,80}",
        kind in prop::sample::select(vec![
            "ATTESTATION", "BLOCK_V2", "RANDAO_REVEAL", "DEPOSIT", "VALIDATOR_REGISTRATION",
            "AGGREGATE_AND_PROOF", "SYNC_COMMITTEE_MESSAGE",
        ]),
    ) {
        let net = Network::by_name("minimal").unwrap();
        for body in [
            json!({"type": t, "fork_info": v}),
            json!({"type": kind, "attestation": {"slot": v}, "beacon_block": {"version": v},
                   "randao_reveal": {"epoch": v}, "deposit": {"pubkey": v},
                   "validator_registration": {"fee_recipient": v},
                   "aggregate_and_proof": {"version": v, "data": v},
                   "sync_committee_message": {"beacon_block_root": v, "slot": "1"},
                   "signingRoot": v}),
        ] {
            prop_assert!(prepare(&serde_json::to_vec(&body).unwrap(), &net).is_err());
        }
    }

    #[test]
    fn attestation_json_round_trip(data in attestation_data(), fi in fork_info()) {
        let body = json!({"type": "ATTESTATION", "fork_info": fi, "attestation": data});
        let p = prepare(&serde_json::to_vec(&body).unwrap(), &Network::by_name("mainnet").unwrap())
            .unwrap();
        let expected = compute_signing_root(
            data.tree_hash_root().0,
            fi.domain(DOMAIN_BEACON_ATTESTER, data.target.epoch),
        );
        prop_assert_eq!(p.signing_root, expected);
        prop_assert_eq!(p.slashing, Some(SlashingSubject::Attestation {
            source_epoch: data.source.epoch,
            target_epoch: data.target.epoch,
        }));
        prop_assert_eq!(p.genesis_validators_root, Some(fi.genesis_validators_root));
    }

    #[test]
    fn block_header_json_round_trip(
        slot in any::<u64>(),
        proposer_index in any::<u64>(),
        roots in any::<[[u8; 32]; 3]>(),
        fi in fork_info(),
        gnosis in any::<bool>(),
    ) {
        let header = BeaconBlockHeader {
            slot,
            proposer_index,
            parent_root: roots[0],
            state_root: roots[1],
            body_root: roots[2],
        };
        let network = Network::by_name(if gnosis { "gnosis" } else { "mainnet" }).unwrap();
        let body = json!({"type": "BLOCK_V2", "fork_info": fi,
                          "beacon_block": {"version": "ELECTRA", "block_header": header}});
        let p = prepare(&serde_json::to_vec(&body).unwrap(), &network).unwrap();
        let epoch = slot / network.slots_per_epoch();
        let expected = compute_signing_root(
            header.tree_hash_root().0,
            fi.domain(DOMAIN_BEACON_PROPOSER, epoch),
        );
        prop_assert_eq!(p.signing_root, expected);
        prop_assert_eq!(p.slashing, Some(SlashingSubject::Block { slot }));
    }

    #[test]
    fn registration_json_round_trip(
        fee_recipient in any::<[u8; 20]>(),
        gas_limit in any::<u64>(),
        timestamp in any::<u64>(),
        pk in proptest::collection::vec(any::<u8>(), 48),
    ) {
        let reg = ValidatorRegistrationV1 {
            fee_recipient,
            gas_limit,
            timestamp,
            pubkey: pk.try_into().unwrap(),
        };
        let network = Network::by_name("hoodi").unwrap();
        let body = json!({"type": "VALIDATOR_REGISTRATION", "validator_registration": reg});
        let p = prepare(&serde_json::to_vec(&body).unwrap(), &network).unwrap();
        let domain = compute_domain(
            DOMAIN_APPLICATION_BUILDER,
            network.genesis_fork_version(),
            [0; 32],
        );
        prop_assert_eq!(p.signing_root, compute_signing_root(reg.tree_hash_root().0, domain));
        prop_assert_eq!(p.slashing, None);
    }
}
