//! Schema upgrade at open (a database of schema version 1 gains the high watermark and the
//! evidence-returning check functions) and chunked pruning (checks are served between chunks).

mod common;

use std::sync::Mutex;

use common::{GVR, PgDatabase, fresh, pk, root};
use ferrosigner_slashing::rules::AttestationRecord;
use ferrosigner_slashing::{Error, HighWatermark, Refusal, Safe, SlashingDb};

const SQLITE_V1: &str = include_str!("../src/sql/sqlite_v1.sql");
const POSTGRES_V1: &str = include_str!("../src/sql/postgres_v1.sql");

/// What every upgraded database must show: the old record is kept and named as evidence, the
/// high watermark works, and the schema version is the current one.
async fn assert_upgraded(db: &SlashingDb) {
    assert_eq!(
        db.check_attestation(GVR, &pk(1), 3, 5, root(2)).await,
        Err(Error::Refused(Refusal::DoubleVote {
            existing: AttestationRecord {
                source: 3,
                target: 5,
                signing_root: Some(root(1)),
            }
        }))
    );
    assert_eq!(db.high_watermark().await, Ok(None));
    let hw = HighWatermark { epoch: 6, slot: 10 };
    db.set_high_watermark(hw).await.expect("set high watermark");
    assert_eq!(
        db.check_attestation(GVR, &pk(1), 5, 6, root(1)).await,
        Err(Error::Refused(Refusal::HighWatermark { watermark: hw }))
    );
    assert_eq!(
        db.check_attestation(GVR, &pk(1), 5, 5, root(3)).await,
        Err(Error::Refused(Refusal::DoubleVote {
            existing: AttestationRecord {
                source: 3,
                target: 5,
                signing_root: Some(root(1)),
            }
        }))
    );
}

#[tokio::test]
async fn sqlite_schema_v1_is_upgraded_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("v1.sqlite");
    {
        let conn = rusqlite::Connection::open(&path).expect("create v1");
        conn.execute_batch(SQLITE_V1).expect("v1 schema");
        conn.execute_batch(
            "CREATE TABLE schema_version (version INTEGER NOT NULL); \
             INSERT INTO schema_version (version) VALUES (1);",
        )
        .expect("v1 version");
        conn.execute(
            "INSERT INTO metadata (id, genesis_validators_root) VALUES (1, ?1)",
            [GVR.as_slice()],
        )
        .expect("gvr");
        conn.execute(
            "INSERT INTO validators (id, pubkey) VALUES (1, ?1)",
            [pk(1).as_slice()],
        )
        .expect("validator");
        conn.execute(
            "INSERT INTO signed_attestations (validator_id, source_epoch, target_epoch, signing_root) \
             VALUES (1, 3, 5, ?1)",
            [root(1).as_slice()],
        )
        .expect("attestation");
    }
    let location = path.to_str().expect("utf-8").to_string();
    let db = SlashingDb::open(&location).await.expect("open v1");
    assert_upgraded(&db).await;
    drop(db);
    let conn = rusqlite::Connection::open(&path).expect("reopen");
    let version: i64 = conn
        .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, 2);
    // Opening again does not migrate twice.
    SlashingDb::open(&location).await.expect("open v2");
}

#[tokio::test]
async fn postgres_schema_v1_is_upgraded_at_open() {
    let Some(pg) = PgDatabase::create().await else {
        return;
    };
    let (client, conn) = tokio_postgres::connect(&pg.url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client.batch_execute(POSTGRES_V1).await.expect("v1 schema");
    client
        .batch_execute(
            "CREATE TABLE schema_version (version INTEGER NOT NULL); \
             INSERT INTO schema_version (version) VALUES (1);",
        )
        .await
        .expect("v1 version");
    // Recorded through the version 1 check function, which returns only a code.
    let code: i16 = client
        .query_one(
            "SELECT fs_check_attestation($1, $2, 3, 5, $3)",
            &[&GVR.as_slice(), &pk(1).as_slice(), &root(1).as_slice()],
        )
        .await
        .expect("v1 check")
        .get(0);
    assert_eq!(code, 0);
    let db = SlashingDb::open(&pg.url).await.expect("open v1");
    assert_upgraded(&db).await;
    let version: i32 = client
        .query_one("SELECT MAX(version) FROM schema_version", &[])
        .await
        .expect("version")
        .get(0);
    assert_eq!(version, 2);
    SlashingDb::open(&pg.url).await.expect("open v2");
}

/// A check sent while a prune runs is answered before the prune completes: the prune works in
/// chunks (here one validator each), each its own writer job, and the check is queued ahead of
/// every chunk after the first, so when it is answered most validators are not pruned yet. With
/// one transaction over all validators the check is answered only after all of them. Ordering
/// only, no timing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_check_is_served_between_prune_chunks() {
    let t = fresh(common::Backend::Sqlite).await.expect("sqlite");
    let db = &t.db;
    const VALIDATORS: u64 = 50;
    let mut checks = Vec::new();
    for i in 0..VALIDATORS {
        let db = db.clone();
        checks.push(tokio::spawn(async move {
            for slot in 1..=3 {
                assert_eq!(
                    db.check_block(GVR, &pk(i), slot, root(1)).await,
                    Ok(Safe::Inserted)
                );
            }
        }));
    }
    for c in checks {
        c.await.expect("task");
    }
    // How many validators the prune had committed when the check was answered, read through a
    // separate connection (WAL readers see what is committed).
    let pruned_when_answered = Mutex::new(None);
    let prune = async {
        db.prune_chunked(0, 32, 1).await.expect("prune");
    };
    let check = async {
        assert_eq!(
            db.check_block(GVR, &pk(VALIDATORS + 1), 1, root(1)).await,
            Ok(Safe::Inserted)
        );
        let reader = rusqlite::Connection::open(&t.location).expect("reader");
        let pruned: i64 = reader
            .query_row(
                "SELECT COUNT(*) FROM validators WHERE block_slot_wm IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .expect("count");
        *pruned_when_answered.lock().expect("lock") = Some(pruned);
    };
    tokio::join!(prune, check);
    let pruned = pruned_when_answered
        .lock()
        .expect("lock")
        .expect("answered");
    assert!(
        pruned < VALIDATORS as i64,
        "the check waited for the whole prune ({pruned} of {VALIDATORS} validators pruned)"
    );
    // The prune did its work on every validator.
    for i in 0..VALIDATORS {
        assert_eq!(
            db.check_block(GVR, &pk(i), 3, root(1)).await,
            Err(Error::Refused(Refusal::BlockSlotBelowWatermark {
                watermark: 3
            }))
        );
    }
}

/// How many validators have a block low watermark (were pruned).
async fn pruned_validators(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one(
            "SELECT COUNT(*) FROM validators WHERE block_slot_wm IS NOT NULL",
            &[],
        )
        .await
        .expect("count")
        .get(0)
}

/// PostgreSQL prunes chunk by chunk, each chunk committed (and its validators' locks released)
/// before the next: while the prune waits for the last validator's lock, the first validator is
/// already pruned, visibly, and a check for it is answered. A prune holding every validator until
/// one commit would keep that check waiting until the lock is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_prune_commits_each_chunk_before_the_next() {
    let Some(t) = fresh(common::Backend::Postgres).await else {
        return;
    };
    let db = t.db.clone();
    const VALIDATORS: u64 = 6;
    for i in 0..VALIDATORS {
        for slot in 1..=3 {
            assert_eq!(
                db.check_block(GVR, &pk(i), slot, root(1)).await,
                Ok(Safe::Inserted)
            );
        }
    }
    let (client, conn) = tokio_postgres::connect(&t.location, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    // The prune goes in pubkey order: hold the last validator's advisory lock (class 'FSLP').
    let last: i32 = client
        .query_one(
            "SELECT id FROM validators ORDER BY pubkey DESC LIMIT 1",
            &[],
        )
        .await
        .expect("last")
        .get(0);
    client
        .execute("SELECT pg_advisory_lock(1179862864, $1)", &[&last])
        .await
        .expect("lock");
    let prune = tokio::spawn({
        let db = db.clone();
        async move { db.prune_chunked(0, 32, 1).await }
    });
    // Every validator but the last gets pruned and committed while the prune waits (generous
    // deadline; the count is what is asserted).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let pruned = pruned_validators(&client).await;
        if pruned == VALIDATORS as i64 - 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {pruned} validators pruned while the prune waits for the last one"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(!prune.is_finished(), "the prune did not wait for the lock");
    // A check for an already pruned validator is answered while the prune still waits.
    let first = pk(0);
    let check = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        db.check_block(GVR, &first, 3, root(2)),
    )
    .await
    .expect("the check waited for the prune");
    assert_eq!(
        check,
        Err(Error::Refused(Refusal::BlockSlotBelowWatermark {
            watermark: 3
        }))
    );
    assert!(!prune.is_finished(), "the prune did not wait for the lock");
    client
        .execute("SELECT pg_advisory_unlock(1179862864, $1)", &[&last])
        .await
        .expect("unlock");
    prune.await.expect("task").expect("prune");
    let pruned = pruned_validators(&client).await;
    assert_eq!(pruned, VALIDATORS as i64);
}
