//! Property test: random sequences of blocks, attestations, imports, enable/disable, pruning (in
//! chunks of one or more validators) and setting/removing the high watermark over small
//! slot/epoch ranges give exactly the verdicts of a brute-force in-memory model, on both backends,
//! evidence included (a refusal names the same conflicting record or watermark).

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use common::{Backend, GVR, fresh, pk, root};
use ferrosigner_slashing::rules::{
    AttestationRecord, BlockRecord, History, merge_roots, raise, stored_root,
};
use ferrosigner_slashing::{Error, HighWatermark, Pubkey, Safe, SlashingDb};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Block {
        key: u8,
        slot: u64,
        root: u8,
    },
    Att {
        key: u8,
        source: u64,
        target: u64,
        root: u8,
    },
    Import {
        key: u8,
        blocks: Vec<(u64, Option<u8>)>,
        atts: Vec<(u64, u64, Option<u8>)>,
    },
    Enable {
        key: u8,
        enabled: bool,
    },
    Prune {
        keep: u64,
        chunk: usize,
    },
    HighWatermark(Option<HighWatermark>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..2u8, 0..10u64, 0..3u8).prop_map(|(key, slot, root)| Op::Block { key, slot, root }),
        8 => (0..2u8, 0..7u64, 0..7u64, 0..3u8).prop_map(|(key, source, target, root)| Op::Att { key, source, target, root }),
        1 => (
            0..2u8,
            proptest::collection::vec((0..10u64, proptest::option::of(0..3u8)), 0..3),
            proptest::collection::vec((0..7u64, 0..7u64, proptest::option::of(0..3u8)), 0..3),
        )
            .prop_map(|(key, blocks, atts)| Op::Import { key, blocks, atts }),
        1 => (0..2u8, any::<bool>()).prop_map(|(key, enabled)| Op::Enable { key, enabled }),
        1 => (0..4u64, 1..3usize).prop_map(|(keep, chunk)| Op::Prune { keep, chunk }),
        1 => proptest::option::of((0..8u64, 0..12u64))
            .prop_map(|hw| Op::HighWatermark(hw.map(|(epoch, slot)| HighWatermark { epoch, slot }))),
    ]
}

fn hex0x(b: &[u8]) -> String {
    format!("0x{}", hex::encode(b))
}

fn import_doc(
    pubkey: &Pubkey,
    blocks: &[(u64, Option<u8>)],
    atts: &[(u64, u64, Option<u8>)],
) -> String {
    let root_field = |r: &Option<u8>| r.map(|r| hex0x(&root(r)));
    serde_json::json!({
        "metadata": {"interchange_format_version": "5", "genesis_validators_root": hex0x(&GVR)},
        "data": [{
            "pubkey": hex0x(pubkey),
            "signed_blocks": blocks.iter().map(|(s, r)| match root_field(r) {
                Some(r) => serde_json::json!({"slot": s.to_string(), "signing_root": r}),
                None => serde_json::json!({"slot": s.to_string()}),
            }).collect::<Vec<_>>(),
            "signed_attestations": atts.iter().map(|(s, t, r)| match root_field(r) {
                Some(r) => serde_json::json!({"source_epoch": s.to_string(), "target_epoch": t.to_string(), "signing_root": r}),
                None => serde_json::json!({"source_epoch": s.to_string(), "target_epoch": t.to_string()}),
            }).collect::<Vec<_>>(),
        }],
    })
    .to_string()
}

/// The model of import: keep every record (merging collisions to an unknown root) and raise the
/// watermarks to the highest stored values of each non-empty section.
fn model_import(h: &mut History, blocks: &[(u64, Option<u8>)], atts: &[(u64, u64, Option<u8>)]) {
    for (slot, r) in blocks {
        let r = r.map(root).and_then(stored_root);
        match h.blocks.iter_mut().find(|b| b.slot == *slot) {
            Some(b) => b.signing_root = merge_roots(b.signing_root, r),
            None => h.blocks.push(BlockRecord {
                slot: *slot,
                signing_root: r,
            }),
        }
    }
    // Within one file, attestations with one target merge first (max source, unknown root).
    let mut merged: Vec<(u64, u64, Option<[u8; 32]>)> = Vec::new();
    for (s, t, r) in atts {
        let r = r.map(root).and_then(stored_root);
        match merged.iter_mut().find(|m| m.1 == *t) {
            Some(m) => {
                m.0 = m.0.max(*s);
                m.2 = None;
            }
            None => merged.push((*s, *t, r)),
        }
    }
    for (s, t, r) in merged {
        match h.attestations.iter_mut().find(|a| a.target == t) {
            Some(a) => {
                let same = a.source == s && merge_roots(a.signing_root, r).is_some();
                a.source = a.source.max(s);
                if !same {
                    a.signing_root = None;
                }
            }
            None => h.attestations.push(AttestationRecord {
                source: s,
                target: t,
                signing_root: r,
            }),
        }
    }
    if !blocks.is_empty() {
        h.watermarks.block_slot = raise(
            h.watermarks.block_slot,
            h.blocks.iter().map(|b| b.slot).max(),
        );
    }
    if !atts.is_empty() {
        h.watermarks.att_source = raise(
            h.watermarks.att_source,
            h.attestations.iter().map(|a| a.source).max(),
        );
        h.watermarks.att_target = raise(
            h.watermarks.att_target,
            h.attestations.iter().map(|a| a.target).max(),
        );
    }
}

const SLOTS_PER_EPOCH: u64 = 2;

fn model_prune(h: &mut History, keep: u64) {
    if let Some(cut) = h
        .blocks
        .iter()
        .map(|b| b.slot)
        .max()
        .and_then(|m| m.checked_sub(keep * SLOTS_PER_EPOCH))
    {
        let deleted = h
            .blocks
            .iter()
            .filter(|b| b.slot <= cut)
            .map(|b| b.slot)
            .max();
        h.watermarks.block_slot = raise(h.watermarks.block_slot, deleted);
        h.blocks.retain(|b| b.slot > cut);
    }
    if let Some(cut) = h
        .attestations
        .iter()
        .map(|a| a.target)
        .max()
        .and_then(|m| m.checked_sub(keep))
    {
        let gone: Vec<_> = h
            .attestations
            .iter()
            .filter(|a| a.target <= cut)
            .copied()
            .collect();
        h.watermarks.att_source =
            raise(h.watermarks.att_source, gone.iter().map(|a| a.source).max());
        h.watermarks.att_target =
            raise(h.watermarks.att_target, gone.iter().map(|a| a.target).max());
        h.attestations.retain(|a| a.target > cut);
    }
}

static NEXT_KEY: AtomicU64 = AtomicU64::new(1);

async fn run_ops(db: &SlashingDb, ops: &[Op]) -> Result<(), String> {
    let base = NEXT_KEY.fetch_add(2, Ordering::Relaxed);
    let keys = [pk(base), pk(base + 1)];
    let mut model: HashMap<u8, History> = HashMap::new();
    // The high watermark is global: every validator's history sees the current one.
    let mut high: Option<HighWatermark> = None;
    for (i, op) in ops.iter().enumerate() {
        for key in 0..2u8 {
            model.entry(key).or_default().high_watermark = high;
        }
        let (got, want): (Result<Safe, Error>, Result<Safe, Error>) = match op {
            Op::Block { key, slot, root: r } => (
                db.check_block(GVR, &keys[*key as usize], *slot, root(*r))
                    .await,
                model
                    .entry(*key)
                    .or_default()
                    .check_block(*slot, root(*r))
                    .map_err(Error::Refused),
            ),
            Op::Att {
                key,
                source,
                target,
                root: r,
            } => (
                db.check_attestation(GVR, &keys[*key as usize], *source, *target, root(*r))
                    .await,
                model
                    .entry(*key)
                    .or_default()
                    .check_attestation(*source, *target, root(*r))
                    .map_err(Error::Refused),
            ),
            Op::Import { key, blocks, atts } => {
                let doc = import_doc(&keys[*key as usize], blocks, atts);
                let got = db
                    .import_interchange(&doc, None)
                    .await
                    .map(|_| Safe::Inserted);
                model_import(model.entry(*key).or_default(), blocks, atts);
                (got, Ok(Safe::Inserted))
            }
            Op::Enable { key, enabled } => {
                let got = db
                    .set_enabled(&[keys[*key as usize]], *enabled)
                    .await
                    .map(|_| Safe::Inserted);
                model.entry(*key).or_default().enabled = *enabled;
                (got, Ok(Safe::Inserted))
            }
            Op::HighWatermark(hw) => {
                let got = match hw {
                    Some(hw) => db.set_high_watermark(*hw).await,
                    None => db.remove_high_watermark().await.map(drop),
                }
                .map(|_| Safe::Inserted);
                high = *hw;
                (got, Ok(Safe::Inserted))
            }
            Op::Prune { keep, chunk } => {
                let got = db
                    .prune_chunked(*keep, SLOTS_PER_EPOCH, *chunk)
                    .await
                    .map(|_| Safe::Inserted);
                for h in model.values_mut() {
                    model_prune(h, *keep);
                }
                (got, Ok(Safe::Inserted))
            }
        };
        if got != want {
            return Err(format!(
                "op {i} {op:?}: store said {got:?}, model said {want:?}\nops: {ops:?}"
            ));
        }
    }
    Ok(())
}

fn check_backend(backend: Backend, cases: u32) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let Some(t) = rt.block_on(fresh(backend)) else {
        return;
    };
    // Each case starts without a high watermark (the database is shared by the cases).
    let config = ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(ops in proptest::collection::vec(op(), 1..40))| {
        let result = rt.block_on(async {
            t.db.remove_high_watermark().await.map_err(|e| e.to_string())?;
            run_ops(&t.db, &ops).await
        });
        prop_assert!(result.is_ok(), "{}", result.err().unwrap_or_default());
    });
    rt.block_on(async move { drop(t) });
}

#[test]
fn sqlite_matches_model() {
    check_backend(Backend::Sqlite, 256);
}

#[test]
fn postgres_matches_model() {
    check_backend(Backend::Postgres, 128);
}
