//! Refusals: why a message must not be signed, and the evidence for it.

use std::fmt;

use crate::rules::{AttestationRecord, BlockRecord, StoredRoot};
use crate::watermarks::HighWatermark;

/// Why a message was refused, without the evidence: what metrics count and clients match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RefusalReason {
    /// A different block was already signed at this slot.
    DoubleBlockProposal,
    /// The slot is at or below the validator's block low watermark.
    BlockSlotBelowWatermark,
    /// The attestation's source epoch is greater than its target epoch.
    SourceExceedsTarget,
    /// A different attestation was already signed for this target epoch.
    DoubleVote,
    /// The new attestation surrounds one already signed.
    SurroundingVote,
    /// The new attestation is surrounded by one already signed.
    SurroundedVote,
    /// The source epoch is below the validator's source low watermark.
    SourceBelowWatermark,
    /// The target epoch is at or below the validator's target low watermark.
    TargetBelowWatermark,
    /// The request is for another chain than the one this database protects.
    WrongGenesisValidatorsRoot,
    /// The validator was disabled (deleted through the Keymanager API).
    ValidatorDisabled,
    /// The block slot, or the attestation source or target, is at or above the global high
    /// watermark.
    HighWatermark,
}

impl RefusalReason {
    /// All reasons, in code order.
    pub const ALL: [RefusalReason; 11] = [
        RefusalReason::DoubleBlockProposal,
        RefusalReason::BlockSlotBelowWatermark,
        RefusalReason::SourceExceedsTarget,
        RefusalReason::DoubleVote,
        RefusalReason::SurroundingVote,
        RefusalReason::SurroundedVote,
        RefusalReason::SourceBelowWatermark,
        RefusalReason::TargetBelowWatermark,
        RefusalReason::WrongGenesisValidatorsRoot,
        RefusalReason::ValidatorDisabled,
        RefusalReason::HighWatermark,
    ];

    /// The numeric code used by the PostgreSQL check functions (10 + position in [`Self::ALL`]).
    pub fn code(self) -> i16 {
        match self {
            RefusalReason::DoubleBlockProposal => 10,
            RefusalReason::BlockSlotBelowWatermark => 11,
            RefusalReason::SourceExceedsTarget => 12,
            RefusalReason::DoubleVote => 13,
            RefusalReason::SurroundingVote => 14,
            RefusalReason::SurroundedVote => 15,
            RefusalReason::SourceBelowWatermark => 16,
            RefusalReason::TargetBelowWatermark => 17,
            RefusalReason::WrongGenesisValidatorsRoot => 18,
            RefusalReason::ValidatorDisabled => 19,
            RefusalReason::HighWatermark => 20,
        }
    }

    /// The reason with this code, if any.
    pub fn from_code(code: i16) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    /// A stable snake_case label (metrics label `reason`, JSON field `reason`).
    pub fn label(self) -> &'static str {
        match self {
            RefusalReason::DoubleBlockProposal => "double_block_proposal",
            RefusalReason::BlockSlotBelowWatermark => "block_slot_below_watermark",
            RefusalReason::SourceExceedsTarget => "source_exceeds_target",
            RefusalReason::DoubleVote => "double_vote",
            RefusalReason::SurroundingVote => "surrounding_vote",
            RefusalReason::SurroundedVote => "surrounded_vote",
            RefusalReason::SourceBelowWatermark => "source_below_watermark",
            RefusalReason::TargetBelowWatermark => "target_below_watermark",
            RefusalReason::WrongGenesisValidatorsRoot => "wrong_genesis_validators_root",
            RefusalReason::ValidatorDisabled => "validator_disabled",
            RefusalReason::HighWatermark => "high_watermark",
        }
    }
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The verdict "do not sign": the reason and the evidence that decided it.
///
/// Where several records conflict, the evidence is chosen the same way on every store and in the
/// model: for a surrounded vote the conflicting record with the lowest target, for a surrounding
/// vote the one with the lowest source (then lowest target).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// A different block is recorded at this slot.
    DoubleBlockProposal {
        /// The recorded block.
        existing: BlockRecord,
    },
    /// The slot is at or below the validator's block low watermark.
    BlockSlotBelowWatermark {
        /// The block low watermark (a slot).
        watermark: u64,
    },
    /// The attestation's source epoch is greater than its target epoch.
    SourceExceedsTarget,
    /// A different attestation is recorded for this target epoch.
    DoubleVote {
        /// The recorded attestation.
        existing: AttestationRecord,
    },
    /// The new attestation surrounds a recorded one.
    SurroundingVote {
        /// The recorded attestation it would surround.
        existing: AttestationRecord,
    },
    /// The new attestation is surrounded by a recorded one.
    SurroundedVote {
        /// The recorded attestation that surrounds it.
        existing: AttestationRecord,
    },
    /// The source epoch is below the validator's source low watermark.
    SourceBelowWatermark {
        /// The source low watermark (an epoch).
        watermark: u64,
    },
    /// The target epoch is at or below the validator's target low watermark.
    TargetBelowWatermark {
        /// The target low watermark (an epoch).
        watermark: u64,
    },
    /// The request is for another chain than the one this database protects.
    WrongGenesisValidatorsRoot,
    /// The validator is disabled.
    ValidatorDisabled,
    /// The message is at or above the global high watermark.
    HighWatermark {
        /// The high watermark in force.
        watermark: HighWatermark,
    },
}

impl Refusal {
    /// The reason, without the evidence.
    pub fn reason(&self) -> RefusalReason {
        match self {
            Refusal::DoubleBlockProposal { .. } => RefusalReason::DoubleBlockProposal,
            Refusal::BlockSlotBelowWatermark { .. } => RefusalReason::BlockSlotBelowWatermark,
            Refusal::SourceExceedsTarget => RefusalReason::SourceExceedsTarget,
            Refusal::DoubleVote { .. } => RefusalReason::DoubleVote,
            Refusal::SurroundingVote { .. } => RefusalReason::SurroundingVote,
            Refusal::SurroundedVote { .. } => RefusalReason::SurroundedVote,
            Refusal::SourceBelowWatermark { .. } => RefusalReason::SourceBelowWatermark,
            Refusal::TargetBelowWatermark { .. } => RefusalReason::TargetBelowWatermark,
            Refusal::WrongGenesisValidatorsRoot => RefusalReason::WrongGenesisValidatorsRoot,
            Refusal::ValidatorDisabled => RefusalReason::ValidatorDisabled,
            Refusal::HighWatermark { .. } => RefusalReason::HighWatermark,
        }
    }
}

/// Writes a stored signing root: `0x…` or `unknown`.
struct ShowRoot<'a>(&'a StoredRoot);

impl fmt::Display for ShowRoot<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(r) => write!(f, "0x{}", hex::encode(r)),
            None => f.write_str("unknown"),
        }
    }
}

/// Writes a recorded attestation: `(source 3, target 5, signing root 0x…)`.
struct ShowAttestation<'a>(&'a AttestationRecord);

impl fmt::Display for ShowAttestation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "(source {}, target {}, signing root {})",
            self.0.source,
            self.0.target,
            ShowRoot(&self.0.signing_root)
        )
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::DoubleBlockProposal { existing } => write!(
                f,
                "a different block (signing root {}) was already signed at slot {} (double proposal)",
                ShowRoot(&existing.signing_root),
                existing.slot
            ),
            Refusal::BlockSlotBelowWatermark { watermark } => write!(
                f,
                "the block slot is at or below this validator's low watermark (slot {watermark})"
            ),
            Refusal::SourceExceedsTarget => {
                f.write_str("the attestation source epoch is greater than its target epoch")
            }
            Refusal::DoubleVote { existing } => write!(
                f,
                "a different attestation {} was already signed for target epoch {} (double vote)",
                ShowAttestation(existing),
                existing.target
            ),
            Refusal::SurroundingVote { existing } => write!(
                f,
                "the attestation would surround the attestation {} already signed",
                ShowAttestation(existing)
            ),
            Refusal::SurroundedVote { existing } => write!(
                f,
                "the attestation would be surrounded by the attestation {} already signed",
                ShowAttestation(existing)
            ),
            Refusal::SourceBelowWatermark { watermark } => write!(
                f,
                "the attestation source epoch is below this validator's low watermark (source epoch {watermark})"
            ),
            Refusal::TargetBelowWatermark { watermark } => write!(
                f,
                "the attestation target epoch is at or below this validator's low watermark (target epoch {watermark})"
            ),
            Refusal::WrongGenesisValidatorsRoot => f.write_str(
                "the genesis validators root differs from the one this slashing database protects",
            ),
            Refusal::ValidatorDisabled => {
                f.write_str("the validator is disabled in the slashing database")
            }
            Refusal::HighWatermark { watermark } => write!(
                f,
                "the message is at or above the high watermark (epoch {}, slot {}); nothing at or above it is signed",
                watermark.epoch, watermark.slot
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_labels_are_distinct() {
        let mut codes: Vec<i16> = RefusalReason::ALL.iter().map(|r| r.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), RefusalReason::ALL.len());
        assert!(codes.iter().all(|c| *c >= 10));
        let mut labels: Vec<&str> = RefusalReason::ALL.iter().map(|r| r.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), RefusalReason::ALL.len());
        for r in RefusalReason::ALL {
            assert_eq!(RefusalReason::from_code(r.code()), Some(r));
            assert!(
                r.label()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_')
            );
        }
    }

    #[test]
    fn display_names_the_evidence() {
        let r = Refusal::DoubleVote {
            existing: AttestationRecord {
                source: 3,
                target: 5,
                signing_root: Some([0xab; 32]),
            },
        };
        assert_eq!(
            r.to_string(),
            format!(
                "a different attestation (source 3, target 5, signing root 0x{}) was already signed for target epoch 5 (double vote)",
                "ab".repeat(32)
            )
        );
        let r = Refusal::DoubleBlockProposal {
            existing: BlockRecord {
                slot: 9,
                signing_root: None,
            },
        };
        assert!(r.to_string().contains("signing root unknown"), "{r}");
        assert!(r.to_string().contains("slot 9"), "{r}");
        let r = Refusal::HighWatermark {
            watermark: HighWatermark {
                epoch: 7,
                slot: 224,
            },
        };
        assert!(r.to_string().contains("epoch 7, slot 224"), "{r}");
        assert_eq!(r.reason().label(), "high_watermark");
    }
}
