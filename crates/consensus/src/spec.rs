//! Presets: the list limits that are part of every hash, at type level ([`EthSpec`]) and at run
//! time ([`Preset`]).
//!
//! SSZ list and bitfield limits enter `hash_tree_root`, so a `BitList<2048>` and a
//! `BitList<131072>` with the same bits have different roots. The containers are generic over
//! [`EthSpec`]; [`crate::prepare`] matches on the network's [`Preset`] to pick the types at run time.

use std::fmt::Debug;

use typenum::{U2, U4, U8, U16, U32, U64, U128, U512, U2048, U8192, U131072, Unsigned};

/// A list limit or vector length used in a container type.
pub trait Limit: Unsigned + Clone + Debug + PartialEq + Eq + Send + Sync + 'static {}
impl<T: Unsigned + Clone + Debug + PartialEq + Eq + Send + Sync + 'static> Limit for T {}

/// The preset values that shape the signed containers.
pub trait EthSpec: Clone + Copy + Debug + Default + PartialEq + Eq + Send + Sync + 'static {
    /// `MAX_VALIDATORS_PER_COMMITTEE`.
    type MaxValidatorsPerCommittee: Limit;
    /// `MAX_COMMITTEES_PER_SLOT` (Electra `committee_bits` length).
    type MaxCommitteesPerSlot: Limit;
    /// `MAX_VALIDATORS_PER_COMMITTEE * MAX_COMMITTEES_PER_SLOT` (Electra `aggregation_bits` limit).
    type MaxValidatorsPerSlot: Limit;
    /// `SYNC_COMMITTEE_SIZE`.
    type SyncCommitteeSize: Limit;
    /// `SYNC_COMMITTEE_SIZE / SYNC_COMMITTEE_SUBNET_COUNT`.
    type SyncSubcommitteeSize: Limit;
    /// `MAX_PROPOSER_SLASHINGS`.
    type MaxProposerSlashings: Limit;
    /// `MAX_ATTESTER_SLASHINGS` (phase0/altair).
    type MaxAttesterSlashings: Limit;
    /// `MAX_ATTESTATIONS` (phase0/altair).
    type MaxAttestations: Limit;
    /// `MAX_DEPOSITS`.
    type MaxDeposits: Limit;
    /// `MAX_VOLUNTARY_EXITS`.
    type MaxVoluntaryExits: Limit;
}

/// The mainnet preset's list limits (also those of the gnosis preset).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MainnetSpec;

impl EthSpec for MainnetSpec {
    type MaxValidatorsPerCommittee = U2048;
    type MaxCommitteesPerSlot = U64;
    type MaxValidatorsPerSlot = U131072;
    type SyncCommitteeSize = U512;
    type SyncSubcommitteeSize = U128;
    type MaxProposerSlashings = U16;
    type MaxAttesterSlashings = U2;
    type MaxAttestations = U128;
    type MaxDeposits = U16;
    type MaxVoluntaryExits = U16;
}

/// The minimal (testing) preset's list limits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MinimalSpec;

impl EthSpec for MinimalSpec {
    type MaxValidatorsPerCommittee = U2048;
    type MaxCommitteesPerSlot = U4;
    type MaxValidatorsPerSlot = U8192;
    type SyncCommitteeSize = U32;
    type SyncSubcommitteeSize = U8;
    type MaxProposerSlashings = U16;
    type MaxAttesterSlashings = U2;
    type MaxAttestations = U128;
    type MaxDeposits = U16;
    type MaxVoluntaryExits = U16;
}

/// A consensus preset (`PRESET_BASE` in a network config).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Preset {
    /// Mainnet preset: 32 slots per epoch, sync committee of 512.
    Mainnet,
    /// Minimal preset: 8 slots per epoch, sync committee of 32, 4 committees per slot.
    Minimal,
    /// Gnosis preset: mainnet list limits with 16 slots per epoch.
    Gnosis,
}

impl Preset {
    /// `SLOTS_PER_EPOCH`.
    pub fn slots_per_epoch(self) -> u64 {
        match self {
            Preset::Mainnet => 32,
            Preset::Minimal => 8,
            Preset::Gnosis => 16,
        }
    }

    /// `SYNC_COMMITTEE_SIZE`.
    pub fn sync_committee_size(self) -> u64 {
        match self {
            Preset::Mainnet | Preset::Gnosis => MainnetSpec::sync_committee_size(),
            Preset::Minimal => MinimalSpec::sync_committee_size(),
        }
    }

    /// `MAX_COMMITTEES_PER_SLOT`.
    pub fn max_committees_per_slot(self) -> u64 {
        match self {
            Preset::Mainnet | Preset::Gnosis => MainnetSpec::max_committees_per_slot(),
            Preset::Minimal => MinimalSpec::max_committees_per_slot(),
        }
    }

    /// The lower-case name used in `PRESET_BASE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Mainnet => "mainnet",
            Preset::Minimal => "minimal",
            Preset::Gnosis => "gnosis",
        }
    }

    /// Parses a `PRESET_BASE` value (case-insensitive).
    pub fn parse(s: &str) -> Option<Preset> {
        [Preset::Mainnet, Preset::Minimal, Preset::Gnosis]
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
    }
}

/// Convenience accessors for an [`EthSpec`]'s values.
trait SpecValues: EthSpec {
    fn sync_committee_size() -> u64 {
        Self::SyncCommitteeSize::to_u64()
    }
    fn max_committees_per_slot() -> u64 {
        Self::MaxCommitteesPerSlot::to_u64()
    }
}
impl<E: EthSpec> SpecValues for E {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_limits_are_consistent() {
        fn check<E: EthSpec>(subnets: usize) {
            assert_eq!(
                E::MaxValidatorsPerSlot::to_usize(),
                E::MaxValidatorsPerCommittee::to_usize() * E::MaxCommitteesPerSlot::to_usize()
            );
            assert_eq!(
                E::SyncSubcommitteeSize::to_usize() * subnets,
                E::SyncCommitteeSize::to_usize()
            );
        }
        check::<MainnetSpec>(4);
        check::<MinimalSpec>(4);
    }

    #[test]
    fn preset_names() {
        for p in [Preset::Mainnet, Preset::Minimal, Preset::Gnosis] {
            assert_eq!(Preset::parse(p.as_str()), Some(p));
            assert_eq!(Preset::parse(&p.as_str().to_uppercase()), Some(p));
        }
        assert_eq!(Preset::parse("mainnnet"), None);
        assert_eq!(Preset::Gnosis.slots_per_epoch(), 16);
        assert_eq!(Preset::Minimal.sync_committee_size(), 32);
        assert_eq!(Preset::Mainnet.max_committees_per_slot(), 64);
    }
}
