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
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db.sqlite");
    let db = SlashingDb::open(path_str(&path)).await.expect("open");
    db.check_attestation(GVR, &pk(0), 1, 2, root(1))
        .await
        .expect("first");
    let lock = lock_writer_out(&path);
    // Beyond the queue, the writer holds at most one batch (a quarter of the queue's capacity) while it
    // waits for the lock: every request past both is refused on its first poll, without waiting.
    let extra = 50;
    let total = SQLITE_QUEUE_CAPACITY + SQLITE_QUEUE_CAPACITY / 4 + extra;
    let mut cx = Context::from_waker(Waker::noop());
    let mut pending = Vec::new();
    let mut busy_at_once = 0;
    for v in 0..total as u64 {
        let db = db.clone();
        let mut check = Box::pin(async move {
            db.check_attestation(GVR, &pk(1000 + v), 1, 2, root(1))
                .await
        });
        match check.as_mut().poll(&mut cx) {
            Poll::Ready(Err(Error::Busy)) => busy_at_once += 1,
            Poll::Ready(other) => panic!("answered before the writer could: {other:?}"),
            Poll::Pending => pending.push(check),
        }
    }
    assert!(busy_at_once >= extra, "only {busy_at_once} refused at once");
    lock.execute_batch("ROLLBACK").expect("unlock");
    drop(lock);
    let mut inserted = 0;
    for check in pending {
        assert_eq!(check.await, Ok(Safe::Inserted));
        inserted += 1;
    }
    assert_eq!(inserted + busy_at_once, total);
    // Exactly the accepted requests were recorded.
    let export: serde_json::Value =
        serde_json::from_str(&db.export_interchange(None).await.expect("export")).expect("json");
    let recorded = export["data"].as_array().expect("data").len();
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
