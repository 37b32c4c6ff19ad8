//! Behaviour suite run unchanged on both backends (see `both_backends!`).

mod common;

use common::{GVR, TestDb, pk, root};
use ferrosigner_slashing::rules::{AttestationRecord, BlockRecord, stored_root};
use ferrosigner_slashing::{Error, HighWatermark, Refusal, RefusalReason, Safe, SlashingDb};
use serde_json::Value;

fn refused(r: Refusal) -> Result<Safe, Error> {
    Err(Error::Refused(r))
}

/// A recorded block as evidence (root number 0 = unknown).
fn block(slot: u64, r: u8) -> BlockRecord {
    BlockRecord {
        slot,
        signing_root: stored_root(root(r)),
    }
}

/// A recorded attestation as evidence (root number 0 = unknown).
fn att(source: u64, target: u64, r: u8) -> AttestationRecord {
    AttestationRecord {
        source,
        target,
        signing_root: stored_root(root(r)),
    }
}

async fn blocks(t: TestDb) {
    let db = &t.db;
    let k = pk(1);
    assert_eq!(
        db.check_block(GVR, &k, 10, root(1)).await,
        Ok(Safe::Inserted)
    );
    assert_eq!(
        db.check_block(GVR, &k, 10, root(1)).await,
        Ok(Safe::SameData)
    );
    assert_eq!(
        db.check_block(GVR, &k, 10, root(2)).await,
        refused(Refusal::DoubleBlockProposal {
            existing: block(10, 1)
        })
    );
    assert_eq!(
        db.check_block(GVR, &k, 11, root(2)).await,
        Ok(Safe::Inserted)
    );
    // Without a watermark a lower, unseen slot is not slashable.
    assert_eq!(
        db.check_block(GVR, &k, 5, root(3)).await,
        Ok(Safe::Inserted)
    );
    // Another validator is independent.
    assert_eq!(
        db.check_block(GVR, &pk(2), 10, root(9)).await,
        Ok(Safe::Inserted)
    );
    // A null root never equals anything, itself included.
    assert_eq!(
        db.check_block(GVR, &k, 20, root(0)).await,
        Ok(Safe::Inserted)
    );
    assert_eq!(
        db.check_block(GVR, &k, 20, root(0)).await,
        refused(Refusal::DoubleBlockProposal {
            existing: block(20, 0)
        })
    );
    assert!(db.has_history(&k).await.expect("has_history"));
    assert!(!db.has_history(&pk(99)).await.expect("has_history"));
}

async fn attestations(t: TestDb) {
    let db = &t.db;
    let k = pk(1);
    assert_eq!(
        db.check_attestation(GVR, &k, 5, 4, root(1)).await,
        refused(Refusal::SourceExceedsTarget)
    );
    assert_eq!(
        db.check_attestation(GVR, &k, 10, 20, root(1)).await,
        Ok(Safe::Inserted)
    );
    assert_eq!(
        db.check_attestation(GVR, &k, 10, 20, root(1)).await,
        Ok(Safe::SameData)
    );
    assert_eq!(
        db.check_attestation(GVR, &k, 11, 20, root(2)).await,
        refused(Refusal::DoubleVote {
            existing: att(10, 20, 1)
        })
    );
    assert_eq!(
        db.check_attestation(GVR, &k, 11, 19, root(2)).await,
        refused(Refusal::SurroundedVote {
            existing: att(10, 20, 1)
        })
    );
    assert_eq!(
        db.check_attestation(GVR, &k, 9, 21, root(2)).await,
        refused(Refusal::SurroundingVote {
            existing: att(10, 20, 1)
        })
    );
    assert_eq!(
        db.check_attestation(GVR, &k, 10, 21, root(2)).await,
        Ok(Safe::Inserted)
    );
    assert_eq!(
        db.check_attestation(GVR, &k, 2, 3, root(2)).await,
        Ok(Safe::Inserted)
    );
    assert_eq!(
        db.check_attestation(GVR, &k, 0, 0, root(0)).await,
        Ok(Safe::Inserted)
    );
    assert_eq!(
        db.check_attestation(GVR, &k, 0, 0, root(0)).await,
        refused(Refusal::DoubleVote {
            existing: att(0, 0, 0)
        })
    );
}

async fn genesis_validators_root(t: TestDb) {
    let db = &t.db;
    assert_eq!(db.genesis_validators_root().await, Ok(None));
    assert_eq!(
        db.check_block(GVR, &pk(1), 1, root(1)).await,
        Ok(Safe::Inserted)
    );
    assert_eq!(db.genesis_validators_root().await, Ok(Some(GVR)));
    let other = [0x43; 32];
    assert_eq!(
        db.check_block(other, &pk(1), 2, root(1)).await,
        refused(Refusal::WrongGenesisValidatorsRoot)
    );
    assert_eq!(
        db.check_attestation(other, &pk(1), 1, 2, root(1)).await,
        refused(Refusal::WrongGenesisValidatorsRoot)
    );
    assert_eq!(
        db.init_genesis_validators_root(other).await,
        Err(Error::Refused(Refusal::WrongGenesisValidatorsRoot))
    );
    assert_eq!(db.init_genesis_validators_root(GVR).await, Ok(()));
    let doc = interchange(other, &[(1, &[50], &[])]);
    assert!(matches!(
        db.import_interchange(&doc, None).await,
        Err(Error::InvalidInterchange(_))
    ));
    assert_eq!(
        db.check_block(GVR, &pk(1), 50, root(1)).await,
        Ok(Safe::Inserted)
    );
}

async fn disabled_validator(t: TestDb) {
    let db = &t.db;
    let k = pk(7);
    assert_eq!(db.disabled_validators().await, Ok(vec![]));
    db.set_enabled(&[k], false).await.expect("disable");
    assert_eq!(db.disabled_validators().await, Ok(vec![k]));
    assert_eq!(
        db.check_block(GVR, &k, 1, root(1)).await,
        refused(Refusal::ValidatorDisabled)
    );
    assert_eq!(
        db.check_attestation(GVR, &k, 1, 2, root(1)).await,
        refused(Refusal::ValidatorDisabled)
    );
    db.set_enabled(&[k], true).await.expect("enable");
    assert_eq!(db.disabled_validators().await, Ok(vec![]));
    assert_eq!(
        db.check_block(GVR, &k, 1, root(1)).await,
        Ok(Safe::Inserted)
    );
    // Several at once, in any order, with repeats: one transaction.
    db.set_enabled(&[pk(9), k, pk(9)], false)
        .await
        .expect("disable");
    assert_eq!(db.disabled_validators().await, Ok(vec![k, pk(9)]));
    assert_eq!(
        db.check_block(GVR, &k, 1, root(1)).await,
        refused(Refusal::ValidatorDisabled)
    );
    // Other validators are unaffected.
    assert_eq!(
        db.check_block(GVR, &pk(8), 1, root(1)).await,
        Ok(Safe::Inserted)
    );
}

fn hex0x(b: &[u8]) -> String {
    format!("0x{}", hex::encode(b))
}

/// Builds an interchange document: per validator number, block slots and (source, target) pairs.
/// A validator number with its block slots and (source, target) pairs.
type Rec<'a> = (u64, &'a [u64], &'a [(u64, u64)]);

fn interchange(gvr: [u8; 32], recs: &[Rec<'_>]) -> String {
    let data: Vec<Value> = recs
        .iter()
        .map(|(n, blocks, atts)| {
            serde_json::json!({
                "pubkey": hex0x(&pk(*n)),
                "signed_blocks": blocks.iter().map(|s| serde_json::json!({"slot": s.to_string()})).collect::<Vec<_>>(),
                "signed_attestations": atts.iter().map(|(s, t)| serde_json::json!({
                    "source_epoch": s.to_string(), "target_epoch": t.to_string(),
                    "signing_root": hex0x(&root(9)),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({
        "metadata": {"interchange_format_version": "5", "genesis_validators_root": hex0x(&gvr)},
        "data": data,
    })
    .to_string()
}

async fn import_raises_watermarks(t: TestDb) {
    let db = &t.db;
    let k = pk(1);
    // History signed here first, then an import with lower values: the watermark is the highest
    // of both, so nothing at or below what was already signed can be signed again.
    assert_eq!(
        db.check_block(GVR, &k, 100, root(1)).await,
        Ok(Safe::Inserted)
    );
    assert_eq!(
        db.check_attestation(GVR, &k, 10, 11, root(1)).await,
        Ok(Safe::Inserted)
    );
    let summary = db
        .import_interchange(&interchange(GVR, &[(1, &[40], &[(3, 4)])]), None)
        .await
        .expect("import");
    assert_eq!(
        (summary.validators, summary.blocks, summary.attestations),
        (1, 1, 1)
    );
    assert_eq!(
        db.check_block(GVR, &k, 100, root(1)).await,
        refused(Refusal::BlockSlotBelowWatermark { watermark: 100 })
    );
    assert_eq!(
        db.check_block(GVR, &k, 99, root(2)).await,
        refused(Refusal::BlockSlotBelowWatermark { watermark: 100 })
    );
    assert_eq!(
        db.check_block(GVR, &k, 101, root(2)).await,
        Ok(Safe::Inserted)
    );
    assert_eq!(
        db.check_attestation(GVR, &k, 10, 11, root(1)).await,
        refused(Refusal::TargetBelowWatermark { watermark: 11 })
    );
    assert_eq!(
        db.check_attestation(GVR, &k, 9, 12, root(1)).await,
        refused(Refusal::SourceBelowWatermark { watermark: 10 })
    );
    assert_eq!(
        db.check_attestation(GVR, &k, 10, 12, root(1)).await,
        Ok(Safe::Inserted)
    );
    // A later import of old data never lowers a watermark.
    db.import_interchange(&interchange(GVR, &[(1, &[1], &[(0, 1)])]), None)
        .await
        .expect("import");
    assert_eq!(
        db.check_block(GVR, &k, 101, root(2)).await,
        refused(Refusal::BlockSlotBelowWatermark { watermark: 101 })
    );
    assert_eq!(
        db.check_attestation(GVR, &k, 10, 12, root(1)).await,
        refused(Refusal::TargetBelowWatermark { watermark: 12 })
    );
    assert_eq!(
        db.check_attestation(GVR, &k, 12, 13, root(1)).await,
        Ok(Safe::Inserted)
    );
    // The imported records are kept: export shows the complete history.
    let exported: Value =
        serde_json::from_str(&db.export_interchange(Some(&[k])).await.expect("export"))
            .expect("json");
    let slots: Vec<&str> = exported["data"][0]["signed_blocks"]
        .as_array()
        .expect("blocks")
        .iter()
        .map(|b| b["slot"].as_str().expect("slot"))
        .collect();
    assert_eq!(slots, ["1", "40", "100", "101"]);
}

async fn import_only_selected_keys(t: TestDb) {
    let db = &t.db;
    let doc = interchange(GVR, &[(1, &[10], &[(1, 2)]), (2, &[20], &[(3, 4)])]);
    let summary = db
        .import_interchange(&doc, Some(&[pk(2)]))
        .await
        .expect("import");
    assert_eq!((summary.validators, summary.skipped_validators), (1, 1));
    assert!(!db.has_history(&pk(1)).await.expect("has_history"));
    assert!(db.has_history(&pk(2)).await.expect("has_history"));
    assert_eq!(
        db.check_block(GVR, &pk(1), 10, root(1)).await,
        Ok(Safe::Inserted)
    );
    assert_eq!(
        db.check_block(GVR, &pk(2), 20, root(1)).await,
        refused(Refusal::BlockSlotBelowWatermark { watermark: 20 })
    );
}

async fn bad_interchange_stores_nothing(t: TestDb) {
    let db = &t.db;
    let good = interchange(GVR, &[(1, &[10], &[(1, 2)]), (2, &[20], &[])]);
    for bad in [
        good.replace("\"20\"", "\"-20\""),
        good.replace("\"20\"", "\"18446744073709551616\""),
        good.replace("\"20\"", "\"9223372036854775808\""),
        good.replace("\"5\"", "\"4\""),
        good.replace(&hex0x(&pk(2)), "0x1234"),
        good.replace(&hex0x(&root(9)), "0xzz"),
        good[..good.len() / 2].to_string(),
        "null".to_string(),
        "{\"metadata\": 5}".to_string(),
    ] {
        let res = db.import_interchange(&bad, None).await;
        assert!(
            matches!(res, Err(Error::InvalidInterchange(_))),
            "{bad}: {res:?}"
        );
        assert!(
            !db.has_history(&pk(1)).await.expect("has_history"),
            "{bad}: something was stored"
        );
    }
    assert_eq!(db.genesis_validators_root().await, Ok(None));
    db.import_interchange(&good, None)
        .await
        .expect("good import");
    assert!(db.has_history(&pk(1)).await.expect("has_history"));
}

async fn export_round_trip_keeps_protection(t: TestDb) {
    let db = &t.db;
    let k = pk(3);
    assert_eq!(
        db.check_block(GVR, &k, 64, root(1)).await,
        Ok(Safe::Inserted)
    );
    assert_eq!(
        db.check_attestation(GVR, &k, 4, 5, root(1)).await,
        Ok(Safe::Inserted)
    );
    assert_eq!(
        db.check_attestation(GVR, &k, 5, 6, root(2)).await,
        Ok(Safe::Inserted)
    );
    let doc = db.export_interchange(None).await.expect("export");
    let v: Value = serde_json::from_str(&doc).expect("json");
    assert_eq!(v["metadata"]["genesis_validators_root"], hex0x(&GVR));
    assert_eq!(
        v["data"][0]["signed_attestations"][1]["signing_root"],
        hex0x(&root(2))
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let other = SlashingDb::open(dir.path().join("x.sqlite").to_str().expect("path"))
        .await
        .expect("open");
    other.import_interchange(&doc, None).await.expect("import");
    assert_eq!(
        other.check_block(GVR, &k, 64, root(1)).await,
        refused(Refusal::BlockSlotBelowWatermark { watermark: 64 })
    );
    assert_eq!(
        other.check_attestation(GVR, &k, 5, 6, root(2)).await,
        refused(Refusal::TargetBelowWatermark { watermark: 6 })
    );
    assert_eq!(
        other.check_attestation(GVR, &k, 6, 7, root(2)).await,
        Ok(Safe::Inserted)
    );
    // Export of unknown keys gives no record; of a subset gives just those.
    let v: Value = serde_json::from_str(
        &db.export_interchange(Some(&[pk(1000)]))
            .await
            .expect("export"),
    )
    .expect("json");
    assert_eq!(v["data"].as_array().map(Vec::len), Some(0));
}

async fn prune_keeps_protection(t: TestDb) {
    let db = &t.db;
    let k = pk(4);
    for e in 1..=20u64 {
        assert_eq!(
            db.check_attestation(GVR, &k, e - 1, e, root(1)).await,
            Ok(Safe::Inserted)
        );
        assert_eq!(
            db.check_block(GVR, &k, e * 32, root(1)).await,
            Ok(Safe::Inserted)
        );
    }
    db.prune(5, 32).await.expect("prune");
    let v: Value = serde_json::from_str(&db.export_interchange(Some(&[k])).await.expect("export"))
        .expect("json");
    let atts = v["data"][0]["signed_attestations"]
        .as_array()
        .expect("atts");
    let blocks = v["data"][0]["signed_blocks"].as_array().expect("blocks");
    // Targets 16..=20 kept, plus nothing synthetic because kept rows are above the watermark.
    assert_eq!(atts.len(), 5, "{atts:?}");
    assert_eq!(atts[0]["target_epoch"], "16");
    assert_eq!(blocks.len(), 5, "{blocks:?}");
    // Pruned range is protected by the watermark.
    assert_eq!(
        db.check_attestation(GVR, &k, 3, 4, root(2)).await,
        refused(Refusal::TargetBelowWatermark { watermark: 15 })
    );
    assert_eq!(
        db.check_attestation(GVR, &k, 0, 21, root(2)).await,
        refused(Refusal::SourceBelowWatermark { watermark: 14 })
    );
    assert_eq!(
        db.check_block(GVR, &k, 64, root(2)).await,
        refused(Refusal::BlockSlotBelowWatermark { watermark: 480 })
    );
    // Kept rows still give double/surround protection and same-data re-signing.
    assert_eq!(
        db.check_attestation(GVR, &k, 16, 17, root(1)).await,
        Ok(Safe::SameData)
    );
    assert_eq!(
        db.check_attestation(GVR, &k, 15, 17, root(2)).await,
        refused(Refusal::DoubleVote {
            existing: att(16, 17, 1)
        })
    );
    assert_eq!(
        db.check_block(GVR, &k, 20 * 32, root(1)).await,
        Ok(Safe::SameData)
    );
    assert_eq!(
        db.check_attestation(GVR, &k, 20, 21, root(1)).await,
        Ok(Safe::Inserted)
    );
    // Pruning everything still protects, and the export carries the watermark.
    db.prune(0, 32).await.expect("prune all");
    let doc = db.export_interchange(Some(&[k])).await.expect("export");
    let dir = tempfile::tempdir().expect("tempdir");
    let other = SlashingDb::open(dir.path().join("x.sqlite").to_str().expect("path"))
        .await
        .expect("open");
    other.import_interchange(&doc, None).await.expect("import");
    for d in [&t.db, &other] {
        assert_eq!(
            d.check_attestation(GVR, &k, 20, 21, root(1)).await,
            refused(Refusal::TargetBelowWatermark { watermark: 21 })
        );
        assert_eq!(
            d.check_block(GVR, &k, 640, root(1)).await,
            refused(Refusal::BlockSlotBelowWatermark { watermark: 640 })
        );
        assert_eq!(
            d.check_attestation(GVR, &k, 20, 22, root(1))
                .await
                .map(|_| ()),
            Ok(())
        );
    }
}

async fn out_of_range_values(t: TestDb) {
    let db = &t.db;
    let big = 1u64 << 63;
    assert!(matches!(
        db.check_block(GVR, &pk(1), big, root(1)).await,
        Err(Error::ValueOutOfRange { .. })
    ));
    assert!(matches!(
        db.check_attestation(GVR, &pk(1), 1, u64::MAX, root(1))
            .await,
        Err(Error::ValueOutOfRange { .. })
    ));
    assert_eq!(
        db.check_block(GVR, &pk(1), big - 1, root(1)).await,
        Ok(Safe::Inserted)
    );
    assert_eq!(
        db.check_block(GVR, &pk(1), big - 1, root(1)).await,
        Ok(Safe::SameData)
    );
    let doc = db.export_interchange(None).await.expect("export");
    assert!(doc.contains(&(big - 1).to_string()));
}

async fn health_and_reopen(t: TestDb) {
    let db = &t.db;
    db.health().await.expect("health");
    assert_eq!(db.high_watermark().await, Ok(None));
    assert_eq!(
        db.check_attestation(GVR, &pk(5), 1, 2, root(1)).await,
        Ok(Safe::Inserted)
    );
    // A second handle on the same store (a restarted or second process) sees the record and
    // the schema is not re-created.
    let again = SlashingDb::open(&t.location).await.expect("reopen");
    assert_eq!(
        again.check_attestation(GVR, &pk(5), 1, 2, root(2)).await,
        refused(Refusal::DoubleVote {
            existing: att(1, 2, 1)
        })
    );
    assert_eq!(
        again.check_attestation(GVR, &pk(5), 1, 2, root(1)).await,
        Ok(Safe::SameData)
    );
}

async fn refusal_messages_are_sentences(t: TestDb) {
    let _ = t;
    let hw = HighWatermark { epoch: 3, slot: 96 };
    for r in [
        Refusal::DoubleBlockProposal {
            existing: block(1, 1),
        },
        Refusal::BlockSlotBelowWatermark { watermark: 1 },
        Refusal::SourceExceedsTarget,
        Refusal::DoubleVote {
            existing: att(1, 2, 0),
        },
        Refusal::SurroundingVote {
            existing: att(1, 2, 1),
        },
        Refusal::SurroundedVote {
            existing: att(1, 2, 1),
        },
        Refusal::SourceBelowWatermark { watermark: 1 },
        Refusal::TargetBelowWatermark { watermark: 1 },
        Refusal::WrongGenesisValidatorsRoot,
        Refusal::ValidatorDisabled,
        Refusal::HighWatermark { watermark: hw },
    ] {
        let msg = Error::Refused(r).to_string();
        assert!(msg.starts_with("slashing protection refused: "), "{msg}");
        assert!(msg.len() > 40, "{msg}");
    }
}

/// The surround evidence is the same record on both stores (and in the model): the surrounding
/// record with the lowest target, the surrounded one with the lowest source.
async fn surround_evidence(t: TestDb) {
    let db = &t.db;
    let k = pk(6);
    for (s, tg) in [(2, 11), (1, 10)] {
        assert_eq!(
            db.check_attestation(GVR, &k, s, tg, root(1)).await,
            Ok(Safe::Inserted),
            "({s}, {tg})"
        );
    }
    assert_eq!(
        db.check_attestation(GVR, &k, 3, 8, root(2)).await,
        refused(Refusal::SurroundedVote {
            existing: att(1, 10, 1)
        })
    );
    assert_eq!(
        db.check_attestation(GVR, &k, 3, 9, root(2)).await,
        refused(Refusal::SurroundedVote {
            existing: att(1, 10, 1)
        })
    );
    let k = pk(7);
    for (s, tg) in [(6, 7), (5, 6), (4, 5)] {
        assert_eq!(
            db.check_attestation(GVR, &k, s, tg, root(1)).await,
            Ok(Safe::Inserted)
        );
    }
    assert_eq!(
        db.check_attestation(GVR, &k, 3, 8, root(0)).await,
        refused(Refusal::SurroundingVote {
            existing: att(4, 5, 1)
        })
    );
}

/// The global high watermark: set, read, refuse at and above it for every key (the same message
/// included), sign below it, remove.
async fn high_watermark(t: TestDb) {
    let db = &t.db;
    assert_eq!(db.high_watermark().await, Ok(None));
    assert_eq!(db.remove_high_watermark().await, Ok(None));
    assert_eq!(
        db.check_block(GVR, &pk(1), 100, root(1)).await,
        Ok(Safe::Inserted)
    );
    assert_eq!(
        db.check_attestation(GVR, &pk(1), 2, 3, root(1)).await,
        Ok(Safe::Inserted)
    );
    let hw = HighWatermark {
        epoch: 4,
        slot: 100,
    };
    db.set_high_watermark(hw).await.expect("set");
    assert_eq!(db.high_watermark().await, Ok(Some(hw)));
    let at_hw = refused(Refusal::HighWatermark { watermark: hw });
    for k in [pk(1), pk(2)] {
        assert_eq!(db.check_block(GVR, &k, 100, root(1)).await, at_hw);
        assert_eq!(db.check_block(GVR, &k, 101, root(2)).await, at_hw);
        assert_eq!(db.check_attestation(GVR, &k, 4, 5, root(2)).await, at_hw);
        assert_eq!(db.check_attestation(GVR, &k, 3, 4, root(2)).await, at_hw);
        assert_eq!(db.check_attestation(GVR, &k, 1, 4, root(2)).await, at_hw);
    }
    if let Err(Error::Refused(r)) = at_hw {
        assert_eq!(r.reason(), RefusalReason::HighWatermark);
    }
    // Below the watermark the ordinary rules apply.
    assert_eq!(
        db.check_block(GVR, &pk(2), 99, root(2)).await,
        Ok(Safe::Inserted)
    );
    assert_eq!(
        db.check_attestation(GVR, &pk(1), 2, 3, root(1)).await,
        Ok(Safe::SameData)
    );
    assert_eq!(
        db.check_attestation(GVR, &pk(1), 2, 3, root(2)).await,
        refused(Refusal::DoubleVote {
            existing: att(2, 3, 1)
        })
    );
    // It survives a reopen; nothing refused at the watermark left a record.
    let again = SlashingDb::open(&t.location).await.expect("reopen");
    assert_eq!(again.high_watermark().await, Ok(Some(hw)));
    assert!(!db.has_history(&pk(3)).await.expect("has_history"));
    assert_eq!(db.check_block(GVR, &pk(3), 100, root(1)).await, at_hw);
    assert!(!db.has_history(&pk(3)).await.expect("has_history"));
    // A lower one replaces it; removing it returns the one in force.
    let lower = HighWatermark { epoch: 1, slot: 50 };
    db.set_high_watermark(lower).await.expect("replace");
    assert_eq!(
        db.check_block(GVR, &pk(2), 60, root(3)).await,
        refused(Refusal::HighWatermark { watermark: lower })
    );
    assert_eq!(db.remove_high_watermark().await, Ok(Some(lower)));
    assert_eq!(db.high_watermark().await, Ok(None));
    assert_eq!(
        db.check_block(GVR, &pk(1), 101, root(2)).await,
        Ok(Safe::Inserted)
    );
    assert_eq!(
        db.check_attestation(GVR, &pk(2), 4, 5, root(2)).await,
        Ok(Safe::Inserted)
    );
    // Out of range values are refused before they reach the store.
    assert!(matches!(
        db.set_high_watermark(HighWatermark {
            epoch: 1 << 63,
            slot: 1
        })
        .await,
        Err(Error::ValueOutOfRange { .. })
    ));
    // An export carries no high watermark (it is not part of EIP-3076).
    let doc = db.export_interchange(None).await.expect("export");
    assert!(!doc.contains("high"), "{doc}");
}

/// A high watermark below a validator's low watermark is accepted: that validator then signs
/// nothing (the high watermark only adds refusals).
async fn high_watermark_below_low_watermark(t: TestDb) {
    let db = &t.db;
    db.import_interchange(&interchange(GVR, &[(1, &[200], &[(8, 9)])]), None)
        .await
        .expect("import");
    let hw = HighWatermark {
        epoch: 5,
        slot: 150,
    };
    db.set_high_watermark(hw).await.expect("set below low");
    assert_eq!(
        db.check_block(GVR, &pk(1), 201, root(1)).await,
        refused(Refusal::HighWatermark { watermark: hw })
    );
    assert_eq!(
        db.check_block(GVR, &pk(1), 100, root(1)).await,
        refused(Refusal::BlockSlotBelowWatermark { watermark: 200 })
    );
    assert_eq!(
        db.check_attestation(GVR, &pk(1), 9, 10, root(1)).await,
        refused(Refusal::HighWatermark { watermark: hw })
    );
    assert_eq!(
        db.check_attestation(GVR, &pk(1), 1, 2, root(1)).await,
        refused(Refusal::TargetBelowWatermark { watermark: 9 })
    );
}

both_backends!(
    blocks,
    attestations,
    genesis_validators_root,
    disabled_validator,
    import_raises_watermarks,
    import_only_selected_keys,
    bad_interchange_stores_nothing,
    export_round_trip_keeps_protection,
    prune_keeps_protection,
    out_of_range_values,
    health_and_reopen,
    refusal_messages_are_sentences,
    surround_evidence,
    high_watermark,
    high_watermark_below_low_watermark,
);
