//! Watermark arithmetic shared by both stores.
//!
//! *Low* watermarks are per validator ([`Watermarks`]): they stand for history that is not (or no
//! longer) stored row by row. An import raises them to the highest values stored for the
//! validator in each section it imported ([`Watermarks::after_import`]); a prune raises them to
//! the highest values it deleted ([`Watermarks::after_prune`], with [`prune_cutoff`]). They never
//! go down. An export carries them as synthetic records ([`with_watermark_records`]).
//!
//! The *high* watermark ([`HighWatermark`]) is one `(epoch, slot)` for the whole database, set by
//! an operator (for example before moving validators to another signer): while it is set, every
//! block at a slot `>= slot` and every attestation with a source or target `>= epoch` is refused
//! for every validator. It is independent of the low watermarks: setting it below a validator's
//! low watermark is allowed and simply leaves that validator nothing it may sign (the high
//! watermark only ever adds refusals, so it can never make a signature unsafe).

use crate::interchange::{ImportRecord, InterchangeRecord};
use crate::rules::{AttestationRecord, BlockRecord};

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

/// The highest slot, source and target among some of one validator's stored records (`None`
/// where there are none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Maxima {
    /// Highest block slot.
    pub block_slot: Option<u64>,
    /// Highest attestation source epoch.
    pub att_source: Option<u64>,
    /// Highest attestation target epoch.
    pub att_target: Option<u64>,
}

/// Which records a maxima query covers: blocks at or below `block_slot` and attestations with a
/// target at or below `att_target` (`None`: that section is not queried).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Highest block slot covered.
    pub block_slot: Option<u64>,
    /// Highest attestation target covered.
    pub att_target: Option<u64>,
}

impl Bounds {
    /// Every stored record.
    pub const ALL: Bounds = Bounds {
        block_slot: Some(crate::MAX_STORED_VALUE),
        att_target: Some(crate::MAX_STORED_VALUE),
    };

    /// What a prune deletes, given the maxima of everything stored for the validator: blocks at
    /// or below `max slot − keep_slots`, attestations with a target at or below
    /// `max target − keep_epochs` (see [`prune_cutoff`]).
    pub fn pruned(all: Maxima, keep_epochs: u64, keep_slots: u64) -> Bounds {
        Bounds {
            block_slot: all.block_slot.and_then(|m| prune_cutoff(m, keep_slots)),
            att_target: all.att_target.and_then(|m| prune_cutoff(m, keep_epochs)),
        }
    }
}

/// The global high watermark: nothing at or above it is signed, for any validator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HighWatermark {
    /// Attestations with a source or target epoch at or above this are refused.
    pub epoch: u64,
    /// Blocks at or above this slot are refused.
    pub slot: u64,
}

impl HighWatermark {
    /// Whether a block at `slot` is at or above the watermark.
    pub fn refuses_block(&self, slot: u64) -> bool {
        slot >= self.slot
    }

    /// Whether an attestation `(source, target)` is at or above the watermark.
    pub fn refuses_attestation(&self, source: u64, target: u64) -> bool {
        source >= self.epoch || target >= self.epoch
    }
}

/// Raises an optional watermark to at least `value`; never lowers it.
pub fn raise(watermark: Option<u64>, value: Option<u64>) -> Option<u64> {
    match (watermark, value) {
        (Some(w), Some(v)) => Some(w.max(v)),
        (w, None) => w,
        (None, v) => v,
    }
}

impl Watermarks {
    /// The watermarks after an import wrote `imported` for the validator, where `stored` are the
    /// maxima of everything now stored for it: each section the import touched raises its
    /// watermarks to the stored maxima.
    pub fn after_import(self, imported: &ImportRecord, stored: Maxima) -> Watermarks {
        let mut wm = self;
        if !imported.blocks.is_empty() {
            wm.block_slot = raise(wm.block_slot, stored.block_slot);
        }
        if !imported.attestations.is_empty() {
            wm.att_source = raise(wm.att_source, stored.att_source);
            wm.att_target = raise(wm.att_target, stored.att_target);
        }
        wm
    }

    /// The watermarks after a prune deleted records whose maxima are `deleted`.
    pub fn after_prune(self, deleted: Maxima) -> Watermarks {
        Watermarks {
            block_slot: raise(self.block_slot, deleted.block_slot),
            att_source: raise(self.att_source, deleted.att_source),
            att_target: raise(self.att_target, deleted.att_target),
        }
    }
}

/// Cutoff for pruning: values at or below it are deleted; `None` when nothing is old enough.
/// `max` is the validator's highest stored slot (or target), `keep` how many to keep below it.
pub fn prune_cutoff(max: u64, keep: u64) -> Option<u64> {
    max.checked_sub(keep)
}

/// Adds synthetic records so an exported history carries the watermarks that pruned (deleted)
/// records no longer show.
pub fn with_watermark_records(mut rec: InterchangeRecord, wm: Watermarks) -> InterchangeRecord {
    if let Some(slot) = wm.block_slot
        && rec.signed_blocks.iter().all(|b| b.slot < slot)
    {
        rec.signed_blocks.push(BlockRecord {
            slot,
            signing_root: None,
        });
    }
    let max_source = rec.signed_attestations.iter().map(|a| a.source).max();
    let max_target = rec.signed_attestations.iter().map(|a| a.target).max();
    let need_source = wm
        .att_source
        .is_some_and(|s| max_source.is_none_or(|m| m < s));
    let need_target = wm
        .att_target
        .is_some_and(|t| max_target.is_none_or(|m| m < t));
    if need_source || need_target {
        let source = raise(wm.att_source, max_source).unwrap_or(0);
        let target = raise(wm.att_target, max_target).unwrap_or(0);
        if let Some(existing) = rec
            .signed_attestations
            .iter_mut()
            .find(|a| a.target == target)
        {
            existing.source = existing.source.max(source);
            existing.signing_root = None;
        } else {
            rec.signed_attestations.push(AttestationRecord {
                source,
                target,
                signing_root: None,
            });
        }
    }
    rec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raise_never_lowers() {
        assert_eq!(raise(Some(5), Some(3)), Some(5));
        assert_eq!(raise(None, Some(3)), Some(3));
        assert_eq!(raise(Some(5), None), Some(5));
    }

    #[test]
    fn import_raises_only_touched_sections() {
        let old = Watermarks {
            block_slot: Some(4),
            att_source: None,
            att_target: Some(9),
        };
        let stored = Maxima {
            block_slot: Some(7),
            att_source: Some(3),
            att_target: Some(8),
        };
        let mut rec = ImportRecord::default();
        assert_eq!(old.after_import(&rec, stored), old);
        rec.blocks.insert(7, None);
        assert_eq!(old.after_import(&rec, stored).block_slot, Some(7));
        assert_eq!(old.after_import(&rec, stored).att_source, None);
        rec.attestations.insert(8, (3, None));
        let wm = old.after_import(&rec, stored);
        assert_eq!((wm.att_source, wm.att_target), (Some(3), Some(9)));
    }

    #[test]
    fn prune_cutoff_and_raise() {
        assert_eq!(prune_cutoff(10, 3), Some(7));
        assert_eq!(prune_cutoff(2, 3), None);
        let all = Maxima {
            block_slot: Some(64),
            att_source: Some(1),
            att_target: Some(2),
        };
        assert_eq!(
            Bounds::pruned(all, 3, 32),
            Bounds {
                block_slot: Some(32),
                att_target: None
            }
        );
        let wm = Watermarks::default().after_prune(Maxima {
            block_slot: Some(6),
            att_source: None,
            att_target: Some(2),
        });
        assert_eq!(wm.block_slot, Some(6));
        assert_eq!(wm.att_source, None);
        assert_eq!(wm.att_target, Some(2));
    }

    #[test]
    fn high_watermark_bounds() {
        let hw = HighWatermark {
            epoch: 5,
            slot: 160,
        };
        assert!(hw.refuses_block(160) && !hw.refuses_block(159));
        assert!(hw.refuses_attestation(5, 6) && hw.refuses_attestation(3, 5));
        assert!(!hw.refuses_attestation(3, 4));
    }

    #[test]
    fn export_carries_watermarks_of_pruned_history() {
        let rec = InterchangeRecord {
            pubkey: [1; 48],
            signed_blocks: vec![BlockRecord {
                slot: 5,
                signing_root: Some([1; 32]),
            }],
            signed_attestations: vec![AttestationRecord {
                source: 2,
                target: 9,
                signing_root: Some([1; 32]),
            }],
        };
        // Rows above the watermarks: nothing added.
        let wm = Watermarks {
            block_slot: Some(3),
            att_source: Some(1),
            att_target: Some(8),
        };
        assert_eq!(with_watermark_records(rec.clone(), wm), rec);
        // Watermarks above the rows: synthetic records carry them.
        let wm = Watermarks {
            block_slot: Some(7),
            att_source: Some(4),
            att_target: Some(12),
        };
        let out = with_watermark_records(rec.clone(), wm);
        assert_eq!(
            out.signed_blocks.last(),
            Some(&BlockRecord {
                slot: 7,
                signing_root: None
            })
        );
        assert_eq!(
            out.signed_attestations.last(),
            Some(&AttestationRecord {
                source: 4,
                target: 12,
                signing_root: None
            })
        );
        // Only the source watermark is above the rows: the top row is made unknown and raised.
        let wm = Watermarks {
            block_slot: None,
            att_source: Some(4),
            att_target: Some(9),
        };
        let out = with_watermark_records(rec, wm);
        assert_eq!(
            out.signed_attestations,
            vec![AttestationRecord {
                source: 4,
                target: 9,
                signing_root: None
            }]
        );
    }
}
