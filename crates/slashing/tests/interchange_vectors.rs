//! The official EIP-3076 interchange test suite (eth-clients/slashing-protection-interchange-tests
//! v5.3.0, copied to testdata/eip3076), run on both backends with the "minimal" strategy
//! expectations (`should_succeed`). Each file is one test per backend.

mod common;

use common::{Backend, fresh};
use ferrosigner_slashing::{Error, Pubkey, Root, SlashingDb};
use serde_json::Value;

const DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/eip3076/tests/generated"
);

fn hex_array<const N: usize>(v: &Value) -> [u8; N] {
    let s = v.as_str().expect("hex string");
    let bytes = hex::decode(s.trim_start_matches("0x")).expect("hex");
    bytes.try_into().expect("length")
}

fn num(v: &Value) -> u64 {
    v.as_str().expect("decimal string").parse().expect("u64")
}

fn opt_root(v: &Value) -> Root {
    if v.is_null() {
        [0; 32]
    } else {
        hex_array::<32>(v)
    }
}

async fn run_vector(name: &str, backend: Backend) {
    let path = format!("{DIR}/{name}.json");
    let text = std::fs::read_to_string(&path).expect("read vector");
    let case: Value = serde_json::from_str(&text).expect("vector json");
    let Some(t) = fresh(backend).await else {
        return;
    };
    let db: &SlashingDb = &t.db;
    let gvr: Root = hex_array(&case["genesis_validators_root"]);
    db.init_genesis_validators_root(gvr)
        .await
        .expect("init gvr");

    for (i, step) in case["steps"].as_array().expect("steps").iter().enumerate() {
        let interchange = serde_json::to_string(&step["interchange"]).expect("json");
        let before = db.export_interchange(None).await.expect("export before");
        let result = db.import_interchange(&interchange, None).await;
        if step["should_succeed"].as_bool().expect("bool") {
            // This store imports slashable files too (by merging them safely), so every import
            // that should succeed must succeed.
            result.unwrap_or_else(|e| panic!("{name} step {i}: import failed: {e}"));
        } else {
            let err = result.expect_err(&format!("{name} step {i}: import should fail"));
            assert!(
                matches!(err, Error::InvalidInterchange(_)),
                "{name} step {i}: {err}"
            );
            let after = db.export_interchange(None).await.expect("export after");
            assert_eq!(
                before, after,
                "{name} step {i}: a failed import changed the database"
            );
        }
        for (j, b) in step["blocks"]
            .as_array()
            .expect("blocks")
            .iter()
            .enumerate()
        {
            let pubkey: Pubkey = hex_array(&b["pubkey"]);
            let res = db
                .check_block(gvr, &pubkey, num(&b["slot"]), opt_root(&b["signing_root"]))
                .await;
            let expected = b["should_succeed"].as_bool().expect("bool");
            assert_eq!(
                res.is_ok(),
                expected,
                "{name} step {i} block {j} ({b}): got {res:?}"
            );
            if let Err(e) = res {
                assert!(
                    matches!(e, Error::Refused(_)),
                    "{name} step {i} block {j}: {e}"
                );
            }
        }
        for (j, a) in step["attestations"]
            .as_array()
            .expect("attestations")
            .iter()
            .enumerate()
        {
            let pubkey: Pubkey = hex_array(&a["pubkey"]);
            let res = db
                .check_attestation(
                    gvr,
                    &pubkey,
                    num(&a["source_epoch"]),
                    num(&a["target_epoch"]),
                    opt_root(&a["signing_root"]),
                )
                .await;
            let expected = a["should_succeed"].as_bool().expect("bool");
            assert_eq!(
                res.is_ok(),
                expected,
                "{name} step {i} attestation {j} ({a}): got {res:?}"
            );
            if let Err(e) = res {
                assert!(
                    matches!(e, Error::Refused(_)),
                    "{name} step {i} attestation {j}: {e}"
                );
            }
        }
    }

    // The export carries the history: importing it into a fresh database and exporting again
    // gives the same validators, and nothing at or below the exported history can be signed.
    let exported = db.export_interchange(None).await.expect("export");
    let Some(t2) = fresh(backend).await else {
        return;
    };
    t2.db
        .import_interchange(&exported, None)
        .await
        .expect("re-import export");
    let again = t2.db.export_interchange(None).await.expect("export again");
    let a: Value = serde_json::from_str(&exported).expect("json");
    let b: Value = serde_json::from_str(&again).expect("json");
    assert_eq!(a["metadata"], b["metadata"], "{name}: metadata");
    let sorted = |v: &Value| {
        let mut d = v["data"].as_array().expect("data").clone();
        d.sort_by_key(|r| r["pubkey"].as_str().unwrap_or_default().to_string());
        d
    };
    assert_eq!(sorted(&a), sorted(&b), "{name}: records");
    for rec in a["data"].as_array().expect("data") {
        let pubkey: Pubkey = hex_array(&rec["pubkey"]);
        for blk in rec["signed_blocks"].as_array().expect("blocks") {
            let res = t2
                .db
                .check_block(gvr, &pubkey, num(&blk["slot"]), [7; 32])
                .await;
            assert!(
                res.is_err(),
                "{name}: exported block {blk} signable after re-import"
            );
        }
        for att in rec["signed_attestations"].as_array().expect("atts") {
            let res = t2
                .db
                .check_attestation(
                    gvr,
                    &pubkey,
                    num(&att["source_epoch"]),
                    num(&att["target_epoch"]),
                    [7; 32],
                )
                .await;
            assert!(
                res.is_err(),
                "{name}: exported attestation {att} signable after re-import"
            );
        }
    }
}

macro_rules! vectors {
    ($($name:ident),* $(,)?) => {
        const NAMES: &[&str] = &[$(stringify!($name)),*];
        mod sqlite_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::run_vector(stringify!($name), super::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::run_vector(stringify!($name), super::Backend::Postgres).await;
                }
            )*
        }
    };
}

vectors!(
    duplicate_pubkey_not_slashable,
    duplicate_pubkey_slashable_attestation,
    duplicate_pubkey_slashable_block,
    multiple_interchanges_multiple_validators_repeat_idem,
    multiple_interchanges_overlapping_validators_merge_stale,
    multiple_interchanges_overlapping_validators_repeat_idem,
    multiple_interchanges_single_validator_fail_iff_imported,
    multiple_interchanges_single_validator_first_surrounds_second,
    multiple_interchanges_single_validator_multiple_blocks_out_of_order,
    multiple_interchanges_single_validator_second_surrounds_first,
    multiple_interchanges_single_validator_single_att_out_of_order,
    multiple_interchanges_single_validator_single_block_out_of_order,
    multiple_interchanges_single_validator_single_message_gap,
    multiple_validators_multiple_blocks_and_attestations,
    multiple_validators_same_slot_blocks,
    single_validator_genesis_attestation,
    single_validator_import_only,
    single_validator_multiple_block_attempts,
    single_validator_multiple_blocks_and_attestations,
    single_validator_out_of_order_attestations,
    single_validator_out_of_order_blocks,
    single_validator_resign_attestation,
    single_validator_resign_block,
    single_validator_single_attestation,
    single_validator_single_block,
    single_validator_single_block_and_attestation,
    single_validator_single_block_and_attestation_signing_root,
    single_validator_slashable_attestations_double_vote,
    single_validator_slashable_attestations_surrounded_by_existing,
    single_validator_slashable_attestations_surrounds_existing,
    single_validator_slashable_blocks,
    single_validator_slashable_blocks_no_root,
    single_validator_source_greater_than_target,
    single_validator_source_greater_than_target_sensible_iff_minified,
    single_validator_source_greater_than_target_surrounded,
    single_validator_source_greater_than_target_surrounding,
    single_validator_two_blocks_no_signing_root,
    wrong_genesis_validators_root,
);

#[test]
fn every_vector_file_has_a_test() {
    let mut files: Vec<String> = std::fs::read_dir(DIR)
        .expect("vector dir")
        .map(|e| {
            e.expect("entry")
                .file_name()
                .to_string_lossy()
                .trim_end_matches(".json")
                .to_string()
        })
        .collect();
    files.sort();
    let mut names: Vec<String> = NAMES.iter().map(|s| s.to_string()).collect();
    names.sort();
    assert_eq!(files, names);
    assert_eq!(files.len(), 38);
}
