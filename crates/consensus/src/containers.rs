//! The SSZ containers a validator signs, per fork, with their Beacon-API JSON shape.
//!
//! Each container derives `TreeHash` (its `hash_tree_root` is the signed object root), SSZ
//! `Encode`/`Decode`, and serde with the JSON encoding of [`crate::wire`]. Containers whose list
//! limits depend on the preset are generic over [`EthSpec`].

use serde::{Deserialize, Serialize};
use ssz_derive::{Decode, Encode};
use ssz_types::{BitList, BitVector, FixedVector, VariableList};
use tree_hash_derive::TreeHash;
use typenum::U33;

use crate::Root;
use crate::spec::EthSpec;
use crate::wire::{bitlist, bitvector, hex_fixed, list, quoted_u64, quoted_u64_list, root_vector};

/// A compressed BLS signature as signed-over bytes (not validated here).
pub type SignatureBytes = [u8; 96];
/// A compressed BLS public key as signed-over bytes (not validated here).
pub type PublicKeyBytes = [u8; 48];
/// A 4-byte fork version.
pub type Version = [u8; 4];
/// A 4-byte domain type.
pub type DomainType = [u8; 4];
/// A 32-byte signing domain.
pub type Domain = [u8; 32];

/// `Checkpoint` (phase0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
pub struct Checkpoint {
    /// Epoch.
    #[serde(with = "quoted_u64")]
    pub epoch: u64,
    /// Block root.
    #[serde(with = "hex_fixed")]
    pub root: Root,
}

/// `AttestationData` (phase0; unchanged since).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
pub struct AttestationData {
    /// Slot.
    #[serde(with = "quoted_u64")]
    pub slot: u64,
    /// Committee index (0 from Electra on).
    #[serde(with = "quoted_u64")]
    pub index: u64,
    /// LMD GHOST vote.
    #[serde(with = "hex_fixed")]
    pub beacon_block_root: Root,
    /// FFG source.
    pub source: Checkpoint,
    /// FFG target.
    pub target: Checkpoint,
}

/// `BeaconBlockHeader` (phase0); its root equals the root of the block it summarises.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
pub struct BeaconBlockHeader {
    /// Slot.
    #[serde(with = "quoted_u64")]
    pub slot: u64,
    /// Proposer's validator index.
    #[serde(with = "quoted_u64")]
    pub proposer_index: u64,
    /// Parent block root.
    #[serde(with = "hex_fixed")]
    pub parent_root: Root,
    /// Post-state root.
    #[serde(with = "hex_fixed")]
    pub state_root: Root,
    /// `hash_tree_root` of the block body.
    #[serde(with = "hex_fixed")]
    pub body_root: Root,
}

/// `SignedBeaconBlockHeader` (phase0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
pub struct SignedBeaconBlockHeader {
    /// The header.
    pub message: BeaconBlockHeader,
    /// Proposer signature.
    #[serde(with = "hex_fixed")]
    pub signature: SignatureBytes,
}

/// `ProposerSlashing` (phase0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
pub struct ProposerSlashing {
    /// First header.
    pub signed_header_1: SignedBeaconBlockHeader,
    /// Second header.
    pub signed_header_2: SignedBeaconBlockHeader,
}

/// `IndexedAttestation` (phase0 limits).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
#[serde(bound = "E: EthSpec")]
pub struct IndexedAttestation<E: EthSpec> {
    /// Sorted attesting validator indices.
    #[serde(with = "quoted_u64_list")]
    pub attesting_indices: VariableList<u64, E::MaxValidatorsPerCommittee>,
    /// Attested data.
    pub data: AttestationData,
    /// Aggregate signature.
    #[serde(with = "hex_fixed")]
    pub signature: SignatureBytes,
}

/// `AttesterSlashing` (phase0 limits).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
#[serde(bound = "E: EthSpec")]
pub struct AttesterSlashing<E: EthSpec> {
    /// First attestation.
    pub attestation_1: IndexedAttestation<E>,
    /// Second attestation.
    pub attestation_2: IndexedAttestation<E>,
}

/// `Attestation` (phase0 to Deneb).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
#[serde(bound = "E: EthSpec")]
pub struct Attestation<E: EthSpec> {
    /// One bit per committee member.
    #[serde(with = "bitlist")]
    pub aggregation_bits: BitList<E::MaxValidatorsPerCommittee>,
    /// Attested data.
    pub data: AttestationData,
    /// Aggregate signature.
    #[serde(with = "hex_fixed")]
    pub signature: SignatureBytes,
}

/// `Attestation` from Electra on (EIP-7549): bits over all committees of the slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
#[serde(bound = "E: EthSpec")]
pub struct AttestationElectra<E: EthSpec> {
    /// One bit per member of every committee selected by `committee_bits`.
    #[serde(with = "bitlist")]
    pub aggregation_bits: BitList<E::MaxValidatorsPerSlot>,
    /// Attested data.
    pub data: AttestationData,
    /// Aggregate signature.
    #[serde(with = "hex_fixed")]
    pub signature: SignatureBytes,
    /// Committees included.
    #[serde(with = "bitvector")]
    pub committee_bits: BitVector<E::MaxCommitteesPerSlot>,
}

/// `Eth1Data` (phase0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
pub struct Eth1Data {
    /// Deposit tree root.
    #[serde(with = "hex_fixed")]
    pub deposit_root: Root,
    /// Deposit count.
    #[serde(with = "quoted_u64")]
    pub deposit_count: u64,
    /// Execution block hash.
    #[serde(with = "hex_fixed")]
    pub block_hash: Root,
}

/// `DepositData` (phase0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
pub struct DepositData {
    /// Validator public key.
    #[serde(with = "hex_fixed")]
    pub pubkey: PublicKeyBytes,
    /// Withdrawal credentials.
    #[serde(with = "hex_fixed")]
    pub withdrawal_credentials: Root,
    /// Amount in Gwei.
    #[serde(with = "quoted_u64")]
    pub amount: u64,
    /// Signature over the [`DepositMessage`].
    #[serde(with = "hex_fixed")]
    pub signature: SignatureBytes,
}

/// `Deposit` (phase0): a deposit with its Merkle proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
pub struct Deposit {
    /// `DEPOSIT_CONTRACT_TREE_DEPTH + 1` proof nodes.
    #[serde(with = "root_vector")]
    pub proof: FixedVector<Root, U33>,
    /// The deposit.
    pub data: DepositData,
}

/// `VoluntaryExit` (phase0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
pub struct VoluntaryExit {
    /// Earliest epoch of the exit.
    #[serde(with = "quoted_u64")]
    pub epoch: u64,
    /// Exiting validator.
    #[serde(with = "quoted_u64")]
    pub validator_index: u64,
}

/// `SignedVoluntaryExit` (phase0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
pub struct SignedVoluntaryExit {
    /// The exit.
    pub message: VoluntaryExit,
    /// Validator signature.
    #[serde(with = "hex_fixed")]
    pub signature: SignatureBytes,
}

/// `BeaconBlockBody` (phase0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
#[serde(bound = "E: EthSpec")]
pub struct BeaconBlockBody<E: EthSpec> {
    /// RANDAO reveal.
    #[serde(with = "hex_fixed")]
    pub randao_reveal: SignatureBytes,
    /// Eth1 vote.
    pub eth1_data: Eth1Data,
    /// Graffiti.
    #[serde(with = "hex_fixed")]
    pub graffiti: Root,
    /// Proposer slashings.
    #[serde(with = "list")]
    pub proposer_slashings: VariableList<ProposerSlashing, E::MaxProposerSlashings>,
    /// Attester slashings.
    #[serde(with = "list")]
    pub attester_slashings: VariableList<AttesterSlashing<E>, E::MaxAttesterSlashings>,
    /// Attestations.
    #[serde(with = "list")]
    pub attestations: VariableList<Attestation<E>, E::MaxAttestations>,
    /// Deposits.
    #[serde(with = "list")]
    pub deposits: VariableList<Deposit, E::MaxDeposits>,
    /// Voluntary exits.
    #[serde(with = "list")]
    pub voluntary_exits: VariableList<SignedVoluntaryExit, E::MaxVoluntaryExits>,
}

/// `BeaconBlock` (phase0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
#[serde(bound = "E: EthSpec")]
pub struct BeaconBlock<E: EthSpec> {
    /// Slot.
    #[serde(with = "quoted_u64")]
    pub slot: u64,
    /// Proposer's validator index.
    #[serde(with = "quoted_u64")]
    pub proposer_index: u64,
    /// Parent block root.
    #[serde(with = "hex_fixed")]
    pub parent_root: Root,
    /// Post-state root.
    #[serde(with = "hex_fixed")]
    pub state_root: Root,
    /// Body.
    pub body: BeaconBlockBody<E>,
}

/// `SyncAggregate` (Altair).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
#[serde(bound = "E: EthSpec")]
pub struct SyncAggregate<E: EthSpec> {
    /// Participation bits.
    #[serde(with = "bitvector")]
    pub sync_committee_bits: BitVector<E::SyncCommitteeSize>,
    /// Aggregate signature.
    #[serde(with = "hex_fixed")]
    pub sync_committee_signature: SignatureBytes,
}

/// `BeaconBlockBody` (Altair).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
#[serde(bound = "E: EthSpec")]
pub struct BeaconBlockBodyAltair<E: EthSpec> {
    /// RANDAO reveal.
    #[serde(with = "hex_fixed")]
    pub randao_reveal: SignatureBytes,
    /// Eth1 vote.
    pub eth1_data: Eth1Data,
    /// Graffiti.
    #[serde(with = "hex_fixed")]
    pub graffiti: Root,
    /// Proposer slashings.
    #[serde(with = "list")]
    pub proposer_slashings: VariableList<ProposerSlashing, E::MaxProposerSlashings>,
    /// Attester slashings.
    #[serde(with = "list")]
    pub attester_slashings: VariableList<AttesterSlashing<E>, E::MaxAttesterSlashings>,
    /// Attestations.
    #[serde(with = "list")]
    pub attestations: VariableList<Attestation<E>, E::MaxAttestations>,
    /// Deposits.
    #[serde(with = "list")]
    pub deposits: VariableList<Deposit, E::MaxDeposits>,
    /// Voluntary exits.
    #[serde(with = "list")]
    pub voluntary_exits: VariableList<SignedVoluntaryExit, E::MaxVoluntaryExits>,
    /// Sync committee aggregate.
    pub sync_aggregate: SyncAggregate<E>,
}

/// `BeaconBlock` (Altair).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
#[serde(bound = "E: EthSpec")]
pub struct BeaconBlockAltair<E: EthSpec> {
    /// Slot.
    #[serde(with = "quoted_u64")]
    pub slot: u64,
    /// Proposer's validator index.
    #[serde(with = "quoted_u64")]
    pub proposer_index: u64,
    /// Parent block root.
    #[serde(with = "hex_fixed")]
    pub parent_root: Root,
    /// Post-state root.
    #[serde(with = "hex_fixed")]
    pub state_root: Root,
    /// Body.
    pub body: BeaconBlockBodyAltair<E>,
}

/// `AggregateAndProof`, generic over the fork's attestation type ([`Attestation`] or
/// [`AttestationElectra`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
pub struct AggregateAndProof<A: ssz::Encode + ssz::Decode + tree_hash::TreeHash> {
    /// Aggregator's validator index.
    #[serde(with = "quoted_u64")]
    pub aggregator_index: u64,
    /// The aggregate.
    pub aggregate: A,
    /// Aggregator's selection proof.
    #[serde(with = "hex_fixed")]
    pub selection_proof: SignatureBytes,
}

/// `SyncAggregatorSelectionData` (Altair).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
pub struct SyncAggregatorSelectionData {
    /// Slot.
    #[serde(with = "quoted_u64")]
    pub slot: u64,
    /// Sync subcommittee index.
    #[serde(with = "quoted_u64")]
    pub subcommittee_index: u64,
}

/// `SyncCommitteeContribution` (Altair).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
#[serde(bound = "E: EthSpec")]
pub struct SyncCommitteeContribution<E: EthSpec> {
    /// Slot.
    #[serde(with = "quoted_u64")]
    pub slot: u64,
    /// Block root voted for.
    #[serde(with = "hex_fixed")]
    pub beacon_block_root: Root,
    /// Sync subcommittee index.
    #[serde(with = "quoted_u64")]
    pub subcommittee_index: u64,
    /// One bit per subcommittee member.
    #[serde(with = "bitvector")]
    pub aggregation_bits: BitVector<E::SyncSubcommitteeSize>,
    /// Aggregate signature.
    #[serde(with = "hex_fixed")]
    pub signature: SignatureBytes,
}

/// `ContributionAndProof` (Altair).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
#[serde(bound = "E: EthSpec")]
pub struct ContributionAndProof<E: EthSpec> {
    /// Aggregator's validator index.
    #[serde(with = "quoted_u64")]
    pub aggregator_index: u64,
    /// The contribution.
    pub contribution: SyncCommitteeContribution<E>,
    /// Aggregator's selection proof.
    #[serde(with = "hex_fixed")]
    pub selection_proof: SignatureBytes,
}

/// `DepositMessage` (phase0): what a deposit signature signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
pub struct DepositMessage {
    /// Validator public key.
    #[serde(with = "hex_fixed")]
    pub pubkey: PublicKeyBytes,
    /// Withdrawal credentials.
    #[serde(with = "hex_fixed")]
    pub withdrawal_credentials: Root,
    /// Amount in Gwei.
    #[serde(with = "quoted_u64")]
    pub amount: u64,
}

/// `ValidatorRegistrationV1` (builder API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
pub struct ValidatorRegistrationV1 {
    /// Execution address receiving fees.
    #[serde(with = "hex_fixed")]
    pub fee_recipient: [u8; 20],
    /// Preferred gas limit.
    #[serde(with = "quoted_u64")]
    pub gas_limit: u64,
    /// Unix time of the registration.
    #[serde(with = "quoted_u64")]
    pub timestamp: u64,
    /// Validator public key.
    #[serde(with = "hex_fixed")]
    pub pubkey: PublicKeyBytes,
}

/// `ForkData` (phase0): hashed into every domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
pub struct ForkData {
    /// Fork version.
    #[serde(with = "hex_fixed")]
    pub current_version: Version,
    /// Genesis validators root (zero for deposits and builder registrations).
    #[serde(with = "hex_fixed")]
    pub genesis_validators_root: Root,
}

/// `SigningData` (phase0): its root is the message that is BLS-signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, TreeHash)]
pub struct SigningData {
    /// `hash_tree_root` of the signed object.
    #[serde(with = "hex_fixed")]
    pub object_root: Root,
    /// Signing domain.
    #[serde(with = "hex_fixed")]
    pub domain: Domain,
}
