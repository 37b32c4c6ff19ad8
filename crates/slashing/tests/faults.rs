//! Faults of the SQLite store: a damaged file is refused at open with how to recover, the queue into
//! the writer is bounded (a full queue answers `Busy` at once and records nothing), a request whose
//! caller went away before the writer reached it is not recorded, and storage faults are
//! `Unavailable`, never a verdict.

mod common;

use std::time::Duration;

use common::{GVR, pk, root};
use ferrosigner_slashing::{Error, SQLITE_QUEUE_CAPACITY, Safe, SlashingDb};
use rusqlite::Connection;

fn path_str(p: &std::path::Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Opens `path` directly and takes the write lock, so the store's writer waits (up to its busy
/// timeout) at its next `BEGIN IMMEDIATE`.
fn lock_writer_out(path: &std::path::Path) -> Connection {
    let conn = Connection::open(path).expect("open");
    conn.execute_batch("BEGIN IMMEDIATE").expect("lock");
    conn
}

/// Waits until the store's connection is closed and the WAL is folded into the main file.
async fn checkpointed(path: &std::path::Path) {
    for _ in 0..200 {
        let conn = Connection::open(path).expect("open");
        let busy: i64 = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .expect("checkpoint");
        if busy == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the WAL of {} was never checkpointed", path.display());
}

#[tokio::test]
async fn a_damaged_file_is_refused_at_open_with_how_to_recover() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db.sqlite");
    {
        let db = SlashingDb::open(path_str(&path)).await.expect("open");
        for v in 0..300u64 {
            db.check_attestation(GVR, &pk(v), 1, 2, root(1))
                .await
                .expect("record");
        }
    }
    checkpointed(&path).await;
    let pages = std::fs::metadata(&path).expect("metadata").len() / 4096;
    assert!(pages > 6, "the database has {pages} pages");
    // Overwrite two pages in the middle of the file (table or index b-tree pages).
    let mut bytes = std::fs::read(&path).expect("read");
    let at = (pages as usize / 2) * 4096;
    bytes[at..at + 8192].fill(0x5a);
    std::fs::write(&path, &bytes).expect("write");

    let err = SlashingDb::open(path_str(&path))
        .await
        .expect_err("a damaged file must be refused");
    let Error::Open(message) = &err else {
        panic!("{err:?}");
    };
    assert!(message.contains("damaged"), "{message}");
    assert!(message.contains("slashing-protection import"), "{message}");
    // Nothing was changed: the damage is still there for a recovery tool to read.
    assert_eq!(std::fs::read(&path).expect("read"), bytes);
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused_with_how_to_recover() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db.sqlite");
    std::fs::write(&path, vec![0x42u8; 8192]).expect("write");
    let err = SlashingDb::open(path_str(&path))
        .await
        .expect_err("not a database");
    assert!(
        matches!(&err, Error::Open(m) if m.contains("damaged") && m.contains("import")),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_busy_at_once_and_records_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db.sqlite");
    let db = SlashingDb::open(path_str(&path)).await.expect("open");
    db.check_attestation(GVR, &pk(0), 1, 2, root(1))
        .await
        .expect("first");
    let lock = lock_writer_out(&path);
    let started = std::time::Instant::now();
    let extra = 50u64;
    let total = SQLITE_QUEUE_CAPACITY as u64 + 1 + extra;
    let answered_at_once = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for v in 0..total {
        let (db, answered) = (db.clone(), answered_at_once.clone());
        tasks.push(tokio::spawn(async move {
            let result = db
                .check_attestation(GVR, &pk(1000 + v), 1, 2, root(1))
                .await;
            answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            result
        }));
    }
    // The queue is full long before the writer gets the lock: the requests beyond it were
    // answered at once.
    let mut busy = 0;
    for _ in 0..300 {
        busy = answered_at_once.load(std::sync::atomic::Ordering::Relaxed);
        if busy >= extra {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        busy >= extra,
        "only {busy} requests were answered while the writer waited ({:?})",
        started.elapsed()
    );
    lock.execute_batch("ROLLBACK").expect("unlock");
    drop(lock);
    let mut inserted = 0u64;
    let mut refused_busy = 0u64;
    for t in tasks {
        match t.await.expect("task") {
            Ok(Safe::Inserted) => inserted += 1,
            Err(Error::Busy) => refused_busy += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(refused_busy >= extra, "{refused_busy} busy");
    assert_eq!(inserted + refused_busy, total);
    // Exactly the accepted requests were recorded.
    let export: serde_json::Value =
        serde_json::from_str(&db.export_interchange(None).await.expect("export")).expect("json");
    let recorded = export["data"].as_array().expect("data").len() as u64;
    assert_eq!(recorded, inserted + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_abandoned_before_the_writer_reaches_it_is_not_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db.sqlite");
    let db = SlashingDb::open(path_str(&path)).await.expect("open");
    db.check_block(GVR, &pk(0), 1, root(1))
        .await
        .expect("first");
    let lock = lock_writer_out(&path);
    // The writer takes this one and waits for the lock.
    let held = {
        let db = db.clone();
        tokio::spawn(async move { db.check_block(GVR, &pk(0), 2, root(1)).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    // This one waits in the queue, and its caller gives up (a deadline, a closed connection).
    let abandoned = {
        let db = db.clone();
        tokio::spawn(async move { db.check_block(GVR, &pk(0), 3, root(1)).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    abandoned.abort();
    let _ = abandoned.await;
    lock.execute_batch("ROLLBACK").expect("unlock");
    drop(lock);
    assert_eq!(held.await.expect("task"), Ok(Safe::Inserted));
    // Slot 3 was never recorded, so another block at slot 3 is new, not a double proposal.
    assert_eq!(
        db.check_block(GVR, &pk(0), 3, root(2)).await,
        Ok(Safe::Inserted)
    );
}

#[tokio::test]
async fn health_commits_so_a_writer_locked_out_is_down_and_checks_are_unavailable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db.sqlite");
    let db = SlashingDb::open(path_str(&path)).await.expect("open");
    db.health().await.expect("healthy");
    // Another process holds the write lock longer than the busy timeout: nothing can commit.
    let lock = lock_writer_out(&path);
    let health = db.health().await;
    assert!(matches!(health, Err(Error::Unavailable(_))), "{health:?}");
    let check = db.check_block(GVR, &pk(0), 1, root(1)).await;
    assert!(matches!(check, Err(Error::Unavailable(_))), "{check:?}");
    drop(lock);
    db.health().await.expect("healthy again");
}
