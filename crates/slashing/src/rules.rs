//! The slashing-protection rules as pure functions.
//!
//! Both storage backends gather a few *facts* about one validator's history (its low watermarks,
//! the record at the same slot or target, whether a surrounding or surrounded vote exists) and
//! the decision is taken here, in one place, without I/O. The PostgreSQL backend restates the same
//! decision order in its server-side function (see `sql/postgres_v1.sql`); the property tests
//! check both backends against [`History`], a brute-force model that derives the facts by scanning
//! the whole history.
//!
//! Decision order for a block at `slot`:
//! 1. validator disabled → [`Refusal::ValidatorDisabled`];
//! 2. `slot <= block watermark` → [`Refusal::BlockSlotBelowWatermark`];
//! 3. a record at the same slot: same non-null root → [`Safe::SameData`], else
//!    [`Refusal::DoubleBlockProposal`];
//! 4. otherwise → [`Safe::Inserted`].
//!
//! Decision order for an attestation `(source, target)`:
//! 1. validator disabled → [`Refusal::ValidatorDisabled`];
//! 2. `source > target` → [`Refusal::SourceExceedsTarget`];
//! 3. `target <= target watermark` → [`Refusal::TargetBelowWatermark`];
//! 4. `source < source watermark` → [`Refusal::SourceBelowWatermark`];
//! 5. a record with the same target: same non-null root → [`Safe::SameData`], else
//!    [`Refusal::DoubleVote`];
//! 6. a record `(s, t)` with `s < source && t > target` → [`Refusal::SurroundedVote`];
//! 7. a record `(s, t)` with `s > source && t < target` → [`Refusal::SurroundingVote`];
//! 8. otherwise → [`Safe::Inserted`].
//!
//! Watermarks exist only after an import or a prune: they stand for history that is not (or no
//! longer) stored row by row, so anything at or below them is refused, even a message that looks
//! identical to an imported one (the "minimal" strategy of EIP-3076).

use crate::{Refusal, Root, Safe};

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

/// Per-validator low watermarks (`None` = no watermark).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Watermarks {
    /// Blocks at or below this slot are refused.
    pub block_slot: Option<u64>,
    /// Attestations with a source below this epoch are refused.
    pub att_source: Option<u64>,
    /// Attestations with a target at or below this epoch are refused.
    pub att_target: Option<u64>,
}

/// What a backend knows about one validator when deciding a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockFacts {
    /// Whether the validator may sign.
    pub enabled: bool,
    /// The block low watermark.
    pub watermark: Option<u64>,
    /// The record at the requested slot, if any (its stored root).
    pub existing_at_slot: Option<StoredRoot>,
}

/// What a backend knows about one validator when deciding an attestation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttestationFacts {
    /// Whether the validator may sign.
    pub enabled: bool,
    /// The attestation source low watermark.
    pub source_watermark: Option<u64>,
    /// The attestation target low watermark.
    pub target_watermark: Option<u64>,
    /// The record with the requested target, if any (its stored root).
    pub existing_at_target: Option<StoredRoot>,
    /// Whether a record `(s, t)` with `s < source && t > target` exists.
    pub surrounded_by_existing: bool,
    /// Whether a record `(s, t)` with `s > source && t < target` exists.
    pub surrounds_existing: bool,
}

/// Decides a block proposal from the gathered facts.
pub fn decide_block(facts: &BlockFacts, slot: u64, root: StoredRoot) -> Result<Safe, Refusal> {
    if !facts.enabled {
        return Err(Refusal::ValidatorDisabled);
    }
    if facts.watermark.is_some_and(|wm| slot <= wm) {
        return Err(Refusal::BlockSlotBelowWatermark);
    }
    match &facts.existing_at_slot {
        Some(existing) if same_root(existing, &root) => Ok(Safe::SameData),
        Some(_) => Err(Refusal::DoubleBlockProposal),
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
    if facts.target_watermark.is_some_and(|wm| target <= wm) {
        return Err(Refusal::TargetBelowWatermark);
    }
    if facts.source_watermark.is_some_and(|wm| source < wm) {
        return Err(Refusal::SourceBelowWatermark);
    }
    match &facts.existing_at_target {
        Some(existing) if same_root(existing, &root) => return Ok(Safe::SameData),
        Some(_) => return Err(Refusal::DoubleVote),
        None => {}
    }
    if facts.surrounded_by_existing {
        return Err(Refusal::SurroundedVote);
    }
    if facts.surrounds_existing {
        return Err(Refusal::SurroundingVote);
    }
    Ok(Safe::Inserted)
}

/// A stored block record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRecord {
    /// Slot of the block.
    pub slot: u64,
    /// Signing root (`None` = unknown).
    pub signing_root: StoredRoot,
}

/// A stored attestation record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
            watermark: self.watermarks.block_slot,
            existing_at_slot: self
                .blocks
                .iter()
                .find(|b| b.slot == slot)
                .map(|b| b.signing_root),
        }
    }

    /// Derives the attestation facts by scanning the history.
    pub fn attestation_facts(&self, source: u64, target: u64) -> AttestationFacts {
        AttestationFacts {
            enabled: self.enabled,
            source_watermark: self.watermarks.att_source,
            target_watermark: self.watermarks.att_target,
            existing_at_target: self
                .attestations
                .iter()
                .find(|a| a.target == target)
                .map(|a| a.signing_root),
            surrounded_by_existing: self
                .attestations
                .iter()
                .any(|a| a.source < source && a.target > target),
            surrounds_existing: self
                .attestations
                .iter()
                .any(|a| a.source > source && a.target < target),
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

/// Raises an optional watermark to at least `value`; never lowers it.
pub fn raise(watermark: Option<u64>, value: Option<u64>) -> Option<u64> {
    match (watermark, value) {
        (Some(w), Some(v)) => Some(w.max(v)),
        (w, None) => w,
        (None, v) => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(b: u8) -> Root {
        [b; 32]
    }

    #[test]
    fn block_rules() {
        let mut h = History::default();
        assert_eq!(h.check_block(10, root(1)), Ok(Safe::Inserted));
        assert_eq!(h.check_block(10, root(1)), Ok(Safe::SameData));
        assert_eq!(
            h.check_block(10, root(2)),
            Err(Refusal::DoubleBlockProposal)
        );
        assert_eq!(h.check_block(5, root(2)), Ok(Safe::Inserted));
        h.watermarks.block_slot = Some(10);
        assert_eq!(
            h.check_block(10, root(1)),
            Err(Refusal::BlockSlotBelowWatermark)
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
            Err(Refusal::DoubleBlockProposal)
        );
        assert_eq!(h.check_attestation(1, 2, NULL_ROOT), Ok(Safe::Inserted));
        assert_eq!(
            h.check_attestation(1, 2, NULL_ROOT),
            Err(Refusal::DoubleVote)
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
        assert_eq!(h.check_attestation(2, 5, root(2)), Err(Refusal::DoubleVote));
        assert_eq!(
            h.check_attestation(3, 4, root(2)),
            Err(Refusal::SurroundedVote)
        );
        assert_eq!(
            h.check_attestation(1, 6, root(2)),
            Err(Refusal::SurroundingVote)
        );
        assert_eq!(h.check_attestation(2, 6, root(2)), Ok(Safe::Inserted));
        h.watermarks = Watermarks {
            block_slot: None,
            att_source: Some(4),
            att_target: Some(8),
        };
        assert_eq!(
            h.check_attestation(4, 8, root(3)),
            Err(Refusal::TargetBelowWatermark)
        );
        assert_eq!(
            h.check_attestation(3, 9, root(3)),
            Err(Refusal::SourceBelowWatermark)
        );
        assert_eq!(h.check_attestation(4, 9, root(3)), Ok(Safe::Inserted));
    }

    #[test]
    fn merge_and_raise() {
        assert_eq!(merge_roots(Some(root(1)), Some(root(1))), Some(root(1)));
        assert_eq!(merge_roots(Some(root(1)), Some(root(2))), None);
        assert_eq!(merge_roots(None, None), None);
        assert_eq!(raise(Some(5), Some(3)), Some(5));
        assert_eq!(raise(None, Some(3)), Some(3));
        assert_eq!(raise(Some(5), None), Some(5));
    }
}
