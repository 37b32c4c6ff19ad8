//! The slashing-protection rules as pure functions.
//!
//! Both storage backends gather a few *facts* about one validator's history (its low watermarks,
//! the global high watermark, the record at the same slot or target, the surrounding or
//! surrounded vote if one exists) and the decision is taken here, in one place, without I/O. The
//! PostgreSQL backend restates the same decision order in its server-side functions (see
//! `sql/postgres_v2.sql` in `ferrosigner-slashing`); the property tests check both backends,
//! evidence included, against [`History`], a brute-force model that derives the facts by scanning
//! the whole history.
//!
//! Decision order for a block at `slot`:
//! 1. validator disabled → [`Refusal::ValidatorDisabled`];
//! 2. a high watermark is set and `slot >= its slot` → [`Refusal::HighWatermark`];
//! 3. `slot <= block watermark` → [`Refusal::BlockSlotBelowWatermark`];
//! 4. a record at the same slot: same non-null root → [`Safe::SameData`], else
//!    [`Refusal::DoubleBlockProposal`] (with that record);
//! 5. otherwise → [`Safe::Inserted`].
//!
//! Decision order for an attestation `(source, target)`:
//! 1. validator disabled → [`Refusal::ValidatorDisabled`];
//! 2. `source > target` → [`Refusal::SourceExceedsTarget`];
//! 3. a high watermark is set and `source >= its epoch` or `target >= its epoch` →
//!    [`Refusal::HighWatermark`];
//! 4. `target <= target watermark` → [`Refusal::TargetBelowWatermark`];
//! 5. `source < source watermark` → [`Refusal::SourceBelowWatermark`];
//! 6. a record with the same target: same non-null root → [`Safe::SameData`], else
//!    [`Refusal::DoubleVote`] (with that record);
//! 7. a record `(s, t)` with `s < source && t > target` → [`Refusal::SurroundedVote`] (the one
//!    with the lowest `t`);
//! 8. a record `(s, t)` with `s > source && t < target` → [`Refusal::SurroundingVote`] (the one
//!    with the lowest `s`, then lowest `t`);
//! 9. otherwise → [`Safe::Inserted`].
//!
//! Low watermarks exist only after an import or a prune: they stand for history that is not (or
//! no longer) stored row by row, so anything at or below them is refused, even a message that
//! looks identical to an imported one (the "minimal" strategy of EIP-3076). The high watermark is
//! set by an operator (see [`crate::watermarks`]).

pub use crate::watermarks::{Watermarks, raise};
use crate::{HighWatermark, Refusal, Root, Safe};

/// The all-zero signing root, meaning "unknown".
pub const NULL_ROOT: Root = [0u8; 32];

/// A signing root as stored: `None` is unknown (all zero, or absent from an interchange file).
pub type StoredRoot = Option<Root>;

/// Converts a signing root to its stored form: the all-zero root becomes `None`.
pub fn stored_root(root: Root) -> StoredRoot {
    if root == NULL_ROOT { None } else { Some(root) }
}

/// Whether a stored root and a requested root denote the same message. A null root never equals
/// anything, itself included.
pub fn same_root(existing: &StoredRoot, requested: &StoredRoot) -> bool {
    match (existing, requested) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// What a backend knows about one validator when deciding a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockFacts {
    /// Whether the validator may sign.
    pub enabled: bool,
    /// The global high watermark.
    pub high_watermark: Option<HighWatermark>,
    /// The block low watermark.
    pub watermark: Option<u64>,
    /// The record at the requested slot, if any.
    pub existing_at_slot: Option<BlockRecord>,
}

/// What a backend knows about one validator when deciding an attestation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttestationFacts {
    /// Whether the validator may sign.
    pub enabled: bool,
    /// The global high watermark.
    pub high_watermark: Option<HighWatermark>,
    /// The attestation source low watermark.
    pub source_watermark: Option<u64>,
    /// The attestation target low watermark.
    pub target_watermark: Option<u64>,
    /// The record with the requested target, if any.
    pub existing_at_target: Option<AttestationRecord>,
    /// The record `(s, t)` with `s < source && t > target` and the lowest `t`, if any.
    pub surrounded_by_existing: Option<AttestationRecord>,
    /// The record `(s, t)` with `s > source && t < target` and the lowest `(s, t)`, if any.
    pub surrounds_existing: Option<AttestationRecord>,
}

/// Decides a block proposal from the gathered facts.
pub fn decide_block(facts: &BlockFacts, slot: u64, root: StoredRoot) -> Result<Safe, Refusal> {
    if !facts.enabled {
        return Err(Refusal::ValidatorDisabled);
    }
    if let Some(hw) = facts.high_watermark
        && hw.refuses_block(slot)
    {
        return Err(Refusal::HighWatermark { watermark: hw });
    }
    if let Some(watermark) = facts.watermark
        && slot <= watermark
    {
        return Err(Refusal::BlockSlotBelowWatermark { watermark });
    }
    match facts.existing_at_slot {
        Some(existing) if same_root(&existing.signing_root, &root) => Ok(Safe::SameData),
        Some(existing) => Err(Refusal::DoubleBlockProposal { existing }),
        None => Ok(Safe::Inserted),
    }
}

/// The checks of an attestation that need no history (only `source <= target`).
pub fn precheck_attestation(source: u64, target: u64) -> Result<(), Refusal> {
    if source > target {
        Err(Refusal::SourceExceedsTarget)
    } else {
        Ok(())
    }
}

/// Decides an attestation from the gathered facts.
pub fn decide_attestation(
    facts: &AttestationFacts,
    source: u64,
    target: u64,
    root: StoredRoot,
) -> Result<Safe, Refusal> {
    if !facts.enabled {
        return Err(Refusal::ValidatorDisabled);
    }
    precheck_attestation(source, target)?;
    if let Some(hw) = facts.high_watermark
        && hw.refuses_attestation(source, target)
    {
        return Err(Refusal::HighWatermark { watermark: hw });
    }
    if let Some(watermark) = facts.target_watermark
        && target <= watermark
    {
        return Err(Refusal::TargetBelowWatermark { watermark });
    }
    if let Some(watermark) = facts.source_watermark
        && source < watermark
    {
        return Err(Refusal::SourceBelowWatermark { watermark });
    }
    match facts.existing_at_target {
        Some(existing) if same_root(&existing.signing_root, &root) => return Ok(Safe::SameData),
        Some(existing) => return Err(Refusal::DoubleVote { existing }),
        None => {}
    }
    if let Some(existing) = facts.surrounded_by_existing {
        return Err(Refusal::SurroundedVote { existing });
    }
    if let Some(existing) = facts.surrounds_existing {
        return Err(Refusal::SurroundingVote { existing });
    }
    Ok(Safe::Inserted)
}

/// A stored block record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockRecord {
    /// Slot of the block.
    pub slot: u64,
    /// Signing root (`None` = unknown).
    pub signing_root: StoredRoot,
}

/// A stored attestation record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AttestationRecord {
    /// Source epoch.
    pub source: u64,
    /// Target epoch.
    pub target: u64,
    /// Signing root (`None` = unknown).
    pub signing_root: StoredRoot,
}

/// One validator's complete history held in memory: the brute-force model of the rules, used by
/// tests to check the backends, and a reference for what the stores compute with queries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    /// Whether the validator may sign.
    pub enabled: bool,
    /// Low watermarks.
    pub watermarks: Watermarks,
    /// The global high watermark (the same for every validator of a database).
    pub high_watermark: Option<HighWatermark>,
    /// Block records (at most one per slot).
    pub blocks: Vec<BlockRecord>,
    /// Attestation records (at most one per target).
    pub attestations: Vec<AttestationRecord>,
}

impl Default for History {
    fn default() -> Self {
        Self {
            enabled: true,
            watermarks: Watermarks::default(),
            high_watermark: None,
            blocks: Vec::new(),
            attestations: Vec::new(),
        }
    }
}

impl History {
    /// Derives the block facts by scanning the history.
    pub fn block_facts(&self, slot: u64) -> BlockFacts {
        BlockFacts {
            enabled: self.enabled,
            high_watermark: self.high_watermark,
            watermark: self.watermarks.block_slot,
            existing_at_slot: self.blocks.iter().find(|b| b.slot == slot).copied(),
        }
    }

    /// Derives the attestation facts by scanning the history.
    pub fn attestation_facts(&self, source: u64, target: u64) -> AttestationFacts {
        AttestationFacts {
            enabled: self.enabled,
            high_watermark: self.high_watermark,
            source_watermark: self.watermarks.att_source,
            target_watermark: self.watermarks.att_target,
            existing_at_target: self
                .attestations
                .iter()
                .find(|a| a.target == target)
                .copied(),
            surrounded_by_existing: self
                .attestations
                .iter()
                .filter(|a| a.source < source && a.target > target)
                .min_by_key(|a| a.target)
                .copied(),
            surrounds_existing: self
                .attestations
                .iter()
                .filter(|a| a.source > source && a.target < target)
                .min_by_key(|a| (a.source, a.target))
                .copied(),
        }
    }

    /// Checks a block and records it when it is newly inserted.
    pub fn check_block(&mut self, slot: u64, root: Root) -> Result<Safe, Refusal> {
        let root = stored_root(root);
        let verdict = decide_block(&self.block_facts(slot), slot, root)?;
        if verdict == Safe::Inserted {
            self.blocks.push(BlockRecord {
                slot,
                signing_root: root,
            });
        }
        Ok(verdict)
    }

    /// Checks an attestation and records it when it is newly inserted.
    pub fn check_attestation(
        &mut self,
        source: u64,
        target: u64,
        root: Root,
    ) -> Result<Safe, Refusal> {
        let root = stored_root(root);
        let verdict = decide_attestation(
            &self.attestation_facts(source, target),
            source,
            target,
            root,
        )?;
        if verdict == Safe::Inserted {
            self.attestations.push(AttestationRecord {
                source,
                target,
                signing_root: root,
            });
        }
        Ok(verdict)
    }
}

/// Merges a stored root with an incoming one for the same slot or target: equal known roots stay,
/// anything else becomes unknown (so no later request can ever be "the same data" as either).
pub fn merge_roots(a: StoredRoot, b: StoredRoot) -> StoredRoot {
    if same_root(&a, &b) { a } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(b: u8) -> Root {
        [b; 32]
    }

    fn att(source: u64, target: u64, r: u8) -> AttestationRecord {
        AttestationRecord {
            source,
            target,
            signing_root: stored_root(root(r)),
        }
    }

    #[test]
    fn block_rules() {
        let mut h = History::default();
        assert_eq!(h.check_block(10, root(1)), Ok(Safe::Inserted));
        assert_eq!(h.check_block(10, root(1)), Ok(Safe::SameData));
        assert_eq!(
            h.check_block(10, root(2)),
            Err(Refusal::DoubleBlockProposal {
                existing: BlockRecord {
                    slot: 10,
                    signing_root: Some(root(1))
                }
            })
        );
        assert_eq!(h.check_block(5, root(2)), Ok(Safe::Inserted));
        h.watermarks.block_slot = Some(10);
        assert_eq!(
            h.check_block(10, root(1)),
            Err(Refusal::BlockSlotBelowWatermark { watermark: 10 })
        );
        assert_eq!(h.check_block(11, root(1)), Ok(Safe::Inserted));
        h.enabled = false;
        assert_eq!(h.check_block(12, root(1)), Err(Refusal::ValidatorDisabled));
    }

    #[test]
    fn null_root_never_equal() {
        let mut h = History::default();
        assert_eq!(h.check_block(3, NULL_ROOT), Ok(Safe::Inserted));
        assert_eq!(
            h.check_block(3, NULL_ROOT),
            Err(Refusal::DoubleBlockProposal {
                existing: BlockRecord {
                    slot: 3,
                    signing_root: None
                }
            })
        );
        assert_eq!(h.check_attestation(1, 2, NULL_ROOT), Ok(Safe::Inserted));
        assert_eq!(
            h.check_attestation(1, 2, NULL_ROOT),
            Err(Refusal::DoubleVote {
                existing: att(1, 2, 0)
            })
        );
    }

    #[test]
    fn attestation_rules() {
        let mut h = History::default();
        assert_eq!(
            h.check_attestation(3, 2, root(1)),
            Err(Refusal::SourceExceedsTarget)
        );
        assert_eq!(h.check_attestation(2, 5, root(1)), Ok(Safe::Inserted));
        assert_eq!(h.check_attestation(2, 5, root(1)), Ok(Safe::SameData));
        assert_eq!(
            h.check_attestation(2, 5, root(2)),
            Err(Refusal::DoubleVote {
                existing: att(2, 5, 1)
            })
        );
        assert_eq!(
            h.check_attestation(3, 4, root(2)),
            Err(Refusal::SurroundedVote {
                existing: att(2, 5, 1)
            })
        );
        assert_eq!(
            h.check_attestation(1, 6, root(2)),
            Err(Refusal::SurroundingVote {
                existing: att(2, 5, 1)
            })
        );
        assert_eq!(h.check_attestation(2, 6, root(2)), Ok(Safe::Inserted));
        h.watermarks = Watermarks {
            block_slot: None,
            att_source: Some(4),
            att_target: Some(8),
        };
        assert_eq!(
            h.check_attestation(4, 8, root(3)),
            Err(Refusal::TargetBelowWatermark { watermark: 8 })
        );
        assert_eq!(
            h.check_attestation(3, 9, root(3)),
            Err(Refusal::SourceBelowWatermark { watermark: 4 })
        );
        assert_eq!(h.check_attestation(4, 9, root(3)), Ok(Safe::Inserted));
    }

    #[test]
    fn surround_evidence_is_the_lowest_conflicting_record() {
        let mut h = History::default();
        for (s, t) in [(2, 11), (1, 10)] {
            assert_eq!(h.check_attestation(s, t, root(1)), Ok(Safe::Inserted));
        }
        // Surrounded by (2, 11) and (1, 10): the lowest target is (1, 10).
        assert_eq!(
            h.check_attestation(3, 8, root(2)),
            Err(Refusal::SurroundedVote {
                existing: att(1, 10, 1)
            })
        );
        let mut h = History::default();
        for (s, t) in [(6, 7), (5, 6), (4, 5)] {
            assert_eq!(h.check_attestation(s, t, root(1)), Ok(Safe::Inserted));
        }
        // Surrounds (6, 7), (5, 6) and (4, 5): the lowest (source, target) is (4, 5).
        assert_eq!(
            h.check_attestation(3, 8, root(2)),
            Err(Refusal::SurroundingVote {
                existing: att(4, 5, 1)
            })
        );
    }

    #[test]
    fn high_watermark_refuses_at_and_above() {
        let mut h = History::default();
        assert_eq!(h.check_block(10, root(1)), Ok(Safe::Inserted));
        assert_eq!(h.check_attestation(1, 2, root(1)), Ok(Safe::Inserted));
        let hw = HighWatermark { epoch: 3, slot: 10 };
        h.high_watermark = Some(hw);
        let refused = Err(Refusal::HighWatermark { watermark: hw });
        // Even the very same message is refused at the watermark.
        assert_eq!(h.check_block(10, root(1)), refused);
        assert_eq!(h.check_block(11, root(2)), refused);
        assert_eq!(h.check_block(9, root(2)), Ok(Safe::Inserted));
        assert_eq!(h.check_attestation(2, 3, root(2)), refused);
        assert_eq!(h.check_attestation(3, 4, root(2)), refused);
        assert_eq!(h.check_attestation(1, 2, root(1)), Ok(Safe::SameData));
        h.high_watermark = None;
        assert_eq!(h.check_attestation(2, 3, root(2)), Ok(Safe::Inserted));
    }

    #[test]
    fn merge_roots_keeps_only_equal_known_roots() {
        assert_eq!(merge_roots(Some(root(1)), Some(root(1))), Some(root(1)));
        assert_eq!(merge_roots(Some(root(1)), Some(root(2))), None);
        assert_eq!(merge_roots(None, None), None);
    }
}
