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

mod progressive_invariants {
    use ferrosigner_consensus::progressive::{
        ProgressiveBitList, merkleize_progressive, merkleize_progressive_bytes,
        progressive_container_root, progressive_container_root_all_active,
    };
    use proptest::prelude::*;

    fn hash(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
        ethereum_hashing::hash32_concat(a, b)
    }

    /// `merkleize(chunks, width)` by the textbook definition.
    fn merkleize(chunks: &[[u8; 32]], width: usize) -> [u8; 32] {
        let mut layer: Vec<[u8; 32]> = chunks.to_vec();
        layer.resize(width, [0; 32]);
        while layer.len() > 1 {
            layer = layer.chunks(2).map(|p| hash(&p[0], &p[1])).collect();
        }
        layer[0]
    }

    /// The spec's recursive `merkleize_progressive(chunks, num_leaves)`.
    fn naive(chunks: &[[u8; 32]], num_leaves: usize) -> [u8; 32] {
        if chunks.is_empty() {
            return [0; 32];
        }
        let k = chunks.len().min(num_leaves);
        hash(
            &merkleize(&chunks[..k], num_leaves),
            &naive(&chunks[k..], num_leaves * 4),
        )
    }

    proptest! {
        #[test]
        fn equals_the_recursive_definition(n in 0usize..400, seed in any::<u8>()) {
            let chunks: Vec<[u8; 32]> =
                (0..n).map(|i| [seed.wrapping_add(i as u8) | 1; 32]).collect();
            prop_assert_eq!(merkleize_progressive(&chunks), naive(&chunks, 1));
        }

        #[test]
        fn zero_padding_of_the_last_chunk_does_not_change_the_bytes_root(
            bytes in proptest::collection::vec(any::<u8>(), 0..3000)
        ) {
            let mut padded = bytes.clone();
            padded.resize(bytes.len().div_ceil(32) * 32, 0);
            prop_assert_eq!(
                merkleize_progressive_bytes(&bytes),
                merkleize_progressive_bytes(&padded)
            );
        }

        #[test]
        fn appending_a_zero_chunk_changes_the_root_when_it_opens_a_subtree(
            n in 1usize..100
        ) {
            // Progressive trees have no fixed width: trailing zero chunks are not absorbed when
            // they start a new subtree (1, 5, 21, 85 chunks).
            let chunks: Vec<[u8; 32]> = (0..n).map(|i| [i as u8 + 1; 32]).collect();
            let mut longer = chunks.clone();
            longer.push([0; 32]);
            if [1, 5, 21, 85].contains(&n) {
                prop_assert_ne!(merkleize_progressive(&chunks), merkleize_progressive(&longer));
            } else {
                prop_assert_eq!(merkleize_progressive(&chunks), merkleize_progressive(&longer));
            }
        }

        #[test]
        fn inactive_fields_are_zero_chunks(
            roots in proptest::collection::vec(any::<[u8; 32]>(), 1..20),
            gaps in proptest::collection::vec(0usize..3, 1..20)
        ) {
            let mut active = Vec::new();
            let mut chunks = Vec::new();
            for (i, r) in roots.iter().enumerate() {
                for _ in 0..gaps[i % gaps.len()] {
                    active.push(false);
                    chunks.push([0u8; 32]);
                }
                active.push(true);
                chunks.push(*r);
            }
            let mut packed = [0u8; 32];
            for (i, a) in active.iter().enumerate() {
                if *a { packed[i / 8] |= 1 << (i % 8); }
            }
            let expected = hash(&naive(&chunks, 1), &packed);
            prop_assert_eq!(progressive_container_root(&active, &roots), Some(expected));
            if active.iter().all(|a| *a) {
                prop_assert_eq!(progressive_container_root_all_active(&roots), expected);
            }
        }

        #[test]
        fn bitlist_ssz_round_trips(bits in proptest::collection::vec(any::<bool>(), 0..600)) {
            let b = ProgressiveBitList::from_bools(&bits);
            let again = ProgressiveBitList::from_ssz(&b.to_ssz()).unwrap();
            prop_assert_eq!(&again, &b);
            prop_assert_eq!(again.len(), bits.len());
        }
    }
}
