//! The containers a validator (or a builder) signs from Gloas on (EIP-7732 enshrined
//! proposer-builder separation, EIP-7688 progressive containers and lists).
//!
//! Transcribed from consensus-specs `specs/gloas/beacon-chain.md`, `p2p-interface.md`
//! (`ProposerPreferences`) and builder-specs `specs/gloas/validator.md` (`RequestAuthV1`) at the
//! commits named in `testdata/signing-gloas/SOURCE.md`. Progressive containers
//! (`ProgressiveContainer(active_fields=[1] * n)`) get their `TreeHash` from
//! [`crate::progressive`]; the others derive it. Only `TreeHash` and the Beacon-API JSON shape
//! are implemented (SSZ encoding is not needed to sign), except for [`AttestationGloas`], which
//! also encodes to SSZ because [`crate::containers::AggregateAndProof`] requires it.

use alloy_primitives::U256;
use serde::{Deserialize, Serialize};
use ssz_derive::{Decode, Encode};
use ssz_types::{BitVector, VariableList};
use tree_hash::{Hash256, PackedEncoding, TreeHash, TreeHashType};
use tree_hash_derive::TreeHash;
use typenum::{U32, U4096};

use crate::Root;
use crate::containers::{AttestationData, PublicKeyBytes, SignatureBytes};
use crate::progressive::{
    ProgressiveBitList, ProgressiveByteList, ProgressiveList,
    progressive_container_root_all_active, progressive_list_with,
};
use crate::spec::EthSpec;
use crate::wire::{bitvector, hex_byte_list, hex_fixed, quoted_u64, quoted_u256};

/// A 20-byte execution-layer address.
pub type ExecutionAddress = [u8; 20];
/// A 48-byte KZG commitment.
pub type KzgCommitment = [u8; 48];

/// `MAX_WITHDRAWAL_REQUESTS_PER_PAYLOAD` (Electra preset; same in mainnet and minimal).
pub const MAX_WITHDRAWAL_REQUESTS_PER_PAYLOAD: usize = 16;
/// `MAX_CONSOLIDATION_REQUESTS_PER_PAYLOAD` (Electra preset; same in mainnet and minimal).
pub const MAX_CONSOLIDATION_REQUESTS_PER_PAYLOAD: usize = 2;
/// `MAX_BUILDER_DEPOSIT_REQUESTS_PER_PAYLOAD` (Gloas preset; same in mainnet and minimal).
pub const MAX_BUILDER_DEPOSIT_REQUESTS_PER_PAYLOAD: usize = 64;
/// `MAX_BUILDER_EXIT_REQUESTS_PER_PAYLOAD` (Gloas preset; same in mainnet and minimal).
pub const MAX_BUILDER_EXIT_REQUESTS_PER_PAYLOAD: usize = 16;

/// Implements `TreeHash` for a `ProgressiveContainer(active_fields=[1] * n)` whose fields, in
/// order, are listed.
macro_rules! progressive_container {
    ($ty:ident $(<$g:ident : $b:path>)?, [$($field:ident),+ $(,)?]) => {
        impl$(<$g: $b>)? TreeHash for $ty$(<$g>)? {
            fn tree_hash_type() -> TreeHashType {
                TreeHashType::Container
            }

            fn tree_hash_packed_encoding(&self) -> PackedEncoding {
                unreachable!("a container is never packed")
            }

            fn tree_hash_packing_factor() -> usize {
                unreachable!("a container is never packed")
            }

            fn tree_hash_root(&self) -> Hash256 {
                Hash256::from(progressive_container_root_all_active(&[
                    $(self.$field.tree_hash_root().0),+
                ]))
            }
        }
    };
}

/// `Attestation` from Gloas on: `ProgressiveContainer(active_fields=[1] * 4)` with a
/// `ProgressiveBitList` of aggregation bits. Same JSON as Electra's, different root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
#[serde(bound = "E: EthSpec")]
pub struct AttestationGloas<E: EthSpec> {
    /// One bit per member of every committee selected by `committee_bits`.
    pub aggregation_bits: ProgressiveBitList,
    /// Attested data (`index` is the payload status, 0 or 1).
    pub data: AttestationData,
    /// Aggregate signature.
    #[serde(with = "hex_fixed")]
    pub signature: SignatureBytes,
    /// Committees included.
    #[serde(with = "bitvector")]
    pub committee_bits: BitVector<E::MaxCommitteesPerSlot>,
}

progressive_container!(
    AttestationGloas<E: EthSpec>,
    [aggregation_bits, data, signature, committee_bits]
);

/// `ExecutionPayloadBid`: `ProgressiveContainer(active_fields=[1] * 12)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionPayloadBid {
    /// Parent execution block hash.
    #[serde(with = "hex_fixed")]
    pub parent_block_hash: Root,
    /// Parent beacon block root.
    #[serde(with = "hex_fixed")]
    pub parent_block_root: Root,
    /// Execution block hash of the committed payload.
    #[serde(with = "hex_fixed")]
    pub block_hash: Root,
    /// RANDAO mix.
    #[serde(with = "hex_fixed")]
    pub prev_randao: Root,
    /// Fee recipient.
    #[serde(with = "hex_fixed")]
    pub fee_recipient: ExecutionAddress,
    /// Gas limit.
    #[serde(with = "quoted_u64")]
    pub gas_limit: u64,
    /// Builder index (`BUILDER_INDEX_SELF_BUILD` = `2**64 - 1` for self-builds).
    #[serde(with = "quoted_u64")]
    pub builder_index: u64,
    /// Slot.
    #[serde(with = "quoted_u64")]
    pub slot: u64,
    /// Value paid to the proposer from the builder's stake (Gwei).
    #[serde(with = "quoted_u64")]
    pub value: u64,
    /// Execution-layer payment (Gwei).
    #[serde(with = "quoted_u64")]
    pub execution_payment: u64,
    /// Blob KZG commitments (`ProgressiveList[KZGCommitment]`).
    #[serde(with = "progressive_list_with::hex_items")]
    pub blob_kzg_commitments: ProgressiveList<KzgCommitment>,
    /// `hash_tree_root` of the payload's execution requests.
    #[serde(with = "hex_fixed")]
    pub execution_requests_root: Root,
}

progressive_container!(
    ExecutionPayloadBid,
    [
        parent_block_hash,
        parent_block_root,
        block_hash,
        prev_randao,
        fee_recipient,
        gas_limit,
        builder_index,
        slot,
        value,
        execution_payment,
        blob_kzg_commitments,
        execution_requests_root,
    ]
);

/// `Withdrawal` (Capella).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TreeHash)]
pub struct Withdrawal {
    /// Withdrawal index.
    #[serde(with = "quoted_u64")]
    pub index: u64,
    /// Validator (or flagged builder) index.
    #[serde(with = "quoted_u64")]
    pub validator_index: u64,
    /// Recipient.
    #[serde(with = "hex_fixed")]
    pub address: ExecutionAddress,
    /// Amount (Gwei).
    #[serde(with = "quoted_u64")]
    pub amount: u64,
}

/// `ExecutionPayload` from Gloas on: `ProgressiveContainer(active_fields=[1] * 19)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionPayloadGloas {
    /// Parent execution block hash.
    #[serde(with = "hex_fixed")]
    pub parent_hash: Root,
    /// Fee recipient.
    #[serde(with = "hex_fixed")]
    pub fee_recipient: ExecutionAddress,
    /// State root.
    #[serde(with = "hex_fixed")]
    pub state_root: Root,
    /// Receipts root.
    #[serde(with = "hex_fixed")]
    pub receipts_root: Root,
    /// Logs bloom (`ByteVector[256]`).
    #[serde(with = "hex_fixed")]
    pub logs_bloom: [u8; 256],
    /// RANDAO mix.
    #[serde(with = "hex_fixed")]
    pub prev_randao: Root,
    /// Block number.
    #[serde(with = "quoted_u64")]
    pub block_number: u64,
    /// Gas limit.
    #[serde(with = "quoted_u64")]
    pub gas_limit: u64,
    /// Gas used.
    #[serde(with = "quoted_u64")]
    pub gas_used: u64,
    /// Timestamp.
    #[serde(with = "quoted_u64")]
    pub timestamp: u64,
    /// Extra data (`ByteList[MAX_EXTRA_DATA_BYTES = 32]`).
    #[serde(with = "hex_byte_list")]
    pub extra_data: VariableList<u8, U32>,
    /// Base fee per gas (`uint256`).
    #[serde(with = "quoted_u256")]
    pub base_fee_per_gas: U256,
    /// Block hash.
    #[serde(with = "hex_fixed")]
    pub block_hash: Root,
    /// Transactions (`ProgressiveList[ProgressiveByteList]`).
    pub transactions: ProgressiveList<ProgressiveByteList>,
    /// Withdrawals (`ProgressiveList[Withdrawal]`).
    pub withdrawals: ProgressiveList<Withdrawal>,
    /// Blob gas used.
    #[serde(with = "quoted_u64")]
    pub blob_gas_used: u64,
    /// Excess blob gas.
    #[serde(with = "quoted_u64")]
    pub excess_blob_gas: u64,
    /// Block access list (EIP-7928, `ProgressiveByteList`).
    pub block_access_list: ProgressiveByteList,
    /// Slot number (EIP-7843).
    #[serde(with = "quoted_u64")]
    pub slot_number: u64,
}

progressive_container!(
    ExecutionPayloadGloas,
    [
        parent_hash,
        fee_recipient,
        state_root,
        receipts_root,
        logs_bloom,
        prev_randao,
        block_number,
        gas_limit,
        gas_used,
        timestamp,
        extra_data,
        base_fee_per_gas,
        block_hash,
        transactions,
        withdrawals,
        blob_gas_used,
        excess_blob_gas,
        block_access_list,
        slot_number,
    ]
);

/// `DepositRequest` (Electra).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TreeHash)]
pub struct DepositRequest {
    /// Validator public key.
    #[serde(with = "hex_fixed")]
    pub pubkey: PublicKeyBytes,
    /// Withdrawal credentials.
    #[serde(with = "hex_fixed")]
    pub withdrawal_credentials: Root,
    /// Amount (Gwei).
    #[serde(with = "quoted_u64")]
    pub amount: u64,
    /// Deposit signature.
    #[serde(with = "hex_fixed")]
    pub signature: SignatureBytes,
    /// Deposit index.
    #[serde(with = "quoted_u64")]
    pub index: u64,
}

/// `WithdrawalRequest` (Electra).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TreeHash)]
pub struct WithdrawalRequest {
    /// Source address.
    #[serde(with = "hex_fixed")]
    pub source_address: ExecutionAddress,
    /// Validator public key.
    #[serde(with = "hex_fixed")]
    pub validator_pubkey: PublicKeyBytes,
    /// Amount (Gwei).
    #[serde(with = "quoted_u64")]
    pub amount: u64,
}

/// `ConsolidationRequest` (Electra).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TreeHash)]
pub struct ConsolidationRequest {
    /// Source address.
    #[serde(with = "hex_fixed")]
    pub source_address: ExecutionAddress,
    /// Source validator public key.
    #[serde(with = "hex_fixed")]
    pub source_pubkey: PublicKeyBytes,
    /// Target validator public key.
    #[serde(with = "hex_fixed")]
    pub target_pubkey: PublicKeyBytes,
}

/// `BuilderDepositRequest` (Gloas, EIP-8282).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TreeHash)]
pub struct BuilderDepositRequest {
    /// Builder public key.
    #[serde(with = "hex_fixed")]
    pub pubkey: PublicKeyBytes,
    /// Withdrawal credentials.
    #[serde(with = "hex_fixed")]
    pub withdrawal_credentials: Root,
    /// Amount (Gwei).
    #[serde(with = "quoted_u64")]
    pub amount: u64,
    /// Deposit signature.
    #[serde(with = "hex_fixed")]
    pub signature: SignatureBytes,
}

/// `BuilderExitRequest` (Gloas, EIP-8282).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TreeHash)]
pub struct BuilderExitRequest {
    /// Source address.
    #[serde(with = "hex_fixed")]
    pub source_address: ExecutionAddress,
    /// Builder public key.
    #[serde(with = "hex_fixed")]
    pub pubkey: PublicKeyBytes,
}

/// `ExecutionRequests` from Gloas on: `ProgressiveContainer(active_fields=[1] * 5)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionRequestsGloas {
    /// Deposit requests.
    pub deposits: ProgressiveList<DepositRequest>,
    /// Withdrawal requests.
    pub withdrawals: ProgressiveList<WithdrawalRequest>,
    /// Consolidation requests.
    pub consolidations: ProgressiveList<ConsolidationRequest>,
    /// Builder deposit requests.
    pub builder_deposits: ProgressiveList<BuilderDepositRequest>,
    /// Builder exit requests.
    pub builder_exits: ProgressiveList<BuilderExitRequest>,
}

progressive_container!(
    ExecutionRequestsGloas,
    [
        deposits,
        withdrawals,
        consolidations,
        builder_deposits,
        builder_exits
    ]
);

impl ExecutionRequestsGloas {
    /// The per-payload bounds that `apply_parent_execution_payload` asserts (the lists are
    /// progressive, so SSZ no longer bounds them): a payload over them can never be valid.
    pub fn check_limits(&self) -> Result<(), String> {
        for (name, len, max) in [
            (
                "withdrawals",
                self.withdrawals.len(),
                MAX_WITHDRAWAL_REQUESTS_PER_PAYLOAD,
            ),
            (
                "consolidations",
                self.consolidations.len(),
                MAX_CONSOLIDATION_REQUESTS_PER_PAYLOAD,
            ),
            (
                "builder_deposits",
                self.builder_deposits.len(),
                MAX_BUILDER_DEPOSIT_REQUESTS_PER_PAYLOAD,
            ),
            (
                "builder_exits",
                self.builder_exits.len(),
                MAX_BUILDER_EXIT_REQUESTS_PER_PAYLOAD,
            ),
        ] {
            if len > max {
                return Err(format!(
                    "execution_requests.{name} has {len} entries, more than the {max} a payload may carry"
                ));
            }
        }
        Ok(())
    }
}

/// `ExecutionPayloadEnvelope`: `ProgressiveContainer(active_fields=[1] * 5)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionPayloadEnvelope {
    /// The full execution payload.
    pub payload: ExecutionPayloadGloas,
    /// Its execution requests.
    pub execution_requests: ExecutionRequestsGloas,
    /// Builder index (`2**64 - 1` for a self-built payload).
    #[serde(with = "quoted_u64")]
    pub builder_index: u64,
    /// Root of the beacon block that committed to the bid.
    #[serde(with = "hex_fixed")]
    pub beacon_block_root: Root,
    /// That block's parent root.
    #[serde(with = "hex_fixed")]
    pub parent_beacon_block_root: Root,
}

progressive_container!(
    ExecutionPayloadEnvelope,
    [
        payload,
        execution_requests,
        builder_index,
        beacon_block_root,
        parent_beacon_block_root
    ]
);

/// `PayloadAttestationData`: what a PTC member signs (a regular container).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TreeHash)]
pub struct PayloadAttestationData {
    /// The beacon block whose payload is attested.
    #[serde(with = "hex_fixed")]
    pub beacon_block_root: Root,
    /// Slot.
    #[serde(with = "quoted_u64")]
    pub slot: u64,
    /// Whether the payload was seen in time.
    pub payload_present: bool,
    /// Whether the blob data was available.
    pub blob_data_available: bool,
}

/// `ProposerPreferences` (`specs/gloas/p2p-interface.md`, a regular container).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TreeHash)]
pub struct ProposerPreferences {
    /// Shuffling dependent root of the proposal epoch.
    #[serde(with = "hex_fixed")]
    pub dependent_root: Root,
    /// The slot the preferences are for.
    #[serde(with = "quoted_u64")]
    pub proposal_slot: u64,
    /// The proposer.
    #[serde(with = "quoted_u64")]
    pub validator_index: u64,
    /// Fee recipient.
    #[serde(with = "hex_fixed")]
    pub fee_recipient: ExecutionAddress,
    /// Preferred gas limit.
    #[serde(with = "quoted_u64")]
    pub target_gas_limit: u64,
}

/// Builder-specs `RequestAuthV1` (`BUILDER_REQUEST_AUTH`): `data` is `ByteList[MAX_DATA_SIZE =
/// 4096]`, and since ethereum/builder-specs#165 a zero-length `data` is invalid (checked when a
/// request is prepared).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TreeHash)]
pub struct RequestAuthV1 {
    /// Opaque authentication data, typically the builder's URL.
    #[serde(with = "hex_byte_list")]
    pub data: VariableList<u8, U4096>,
    /// The slot the request is for.
    #[serde(with = "quoted_u64")]
    pub slot: u64,
}
