//! Durability and failure behaviour: no `Ok` is answered before the record is committed (checked
//! across a SIGKILL of a process under load), and a lost PostgreSQL connection gives
//! `Error::Unavailable`, never a verdict, after which the pool recovers.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Backend, GVR, fresh, pk, root};
use ferrosigner_slashing::rules::{AttestationRecord, BlockRecord};
use ferrosigner_slashing::{Error, Refusal, Safe, SlashingDb};

const CHILD_ENV: &str = "FERROSIGNER_SLASHING_CRASH_CHILD_DB";

/// Child mode of `sigkill_under_load_loses_no_answered_record`: signs forever from several tasks
/// and prints `OK <task> <target>` after each `Ok` answer.
async fn child(location: &str) {
    let db = SlashingDb::open(location).await.expect("child open");
    let mut tasks = Vec::new();
    for task in 0..16u64 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            for target in 1.. {
                let res = db
                    .check_attestation(GVR, &pk(task), target - 1, target, root(1))
                    .await;
                if res == Ok(Safe::Inserted) {
                    println!("OK {task} {target}");
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_answered_record() {
    if let Ok(location) = std::env::var(CHILD_ENV) {
        child(&location).await;
        return;
    }
    let t = fresh(Backend::Sqlite).await.expect("sqlite");
    let exe = std::env::current_exe().expect("current exe");
    let mut proc = Command::new(exe)
        .args([
            "--exact",
            "sigkill_under_load_loses_no_answered_record",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &t.location)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = proc.stdout.take().expect("stdout");
    // Read answers on a thread; kill the child once enough were answered (or after a while).
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix("OK ") {
                let mut it = rest.split(' ').map(|x| x.parse::<u64>().expect("number"));
                if let (Some(task), Some(target)) = (it.next(), it.next()) {
                    let _ = tx.send((task, target));
                }
            }
        }
    });
    let mut answered = Vec::new();
    let start = Instant::now();
    while answered.len() < 3000 && start.elapsed() < Duration::from_secs(20) {
        if let Ok(x) = rx.recv_timeout(Duration::from_millis(50)) {
            answered.push(x);
        }
    }
    proc.kill().expect("SIGKILL child");
    let _ = proc.wait();
    let _ = reader.join();
    answered.extend(rx.try_iter());
    assert!(
        answered.len() > 100,
        "the child answered only {} checks",
        answered.len()
    );

    // Every answered record must be there after the crash: a conflicting vote for its target is
    // refused and the identical one is "same data".
    let db = SlashingDb::open(&t.location)
        .await
        .expect("reopen after crash");
    for (task, target) in &answered {
        assert_eq!(
            db.check_attestation(GVR, &pk(*task), target - 1, *target, root(2))
                .await,
            Err(Error::Refused(Refusal::DoubleVote {
                existing: AttestationRecord {
                    source: target - 1,
                    target: *target,
                    signing_root: Some(root(1)),
                }
            })),
            "task {task} target {target} lost"
        );
        assert_eq!(
            db.check_attestation(GVR, &pk(*task), target - 1, *target, root(1))
                .await,
            Ok(Safe::SameData)
        );
    }
    eprintln!("{} answered records survived SIGKILL", answered.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_records_visible_to_fresh_handle() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(t) = fresh(backend).await else {
            continue;
        };
        let mut tasks = Vec::new();
        for i in 0..200u64 {
            let db = t.db.clone();
            tasks.push(tokio::spawn(async move {
                (i, db.check_block(GVR, &pk(i % 7), i, root(1)).await)
            }));
        }
        let mut ok = Vec::new();
        for task in tasks {
            let (i, res) = task.await.expect("task");
            assert_eq!(res, Ok(Safe::Inserted));
            ok.push(i);
        }
        let fresh_handle = SlashingDb::open(&t.location).await.expect("open");
        for i in ok {
            assert_eq!(
                fresh_handle.check_block(GVR, &pk(i % 7), i, root(2)).await,
                Err(Error::Refused(Refusal::DoubleBlockProposal {
                    existing: BlockRecord {
                        slot: i,
                        signing_root: Some(root(1)),
                    }
                })),
                "{backend:?}: block {i}"
            );
        }
    }
}

#[tokio::test]
async fn unreachable_postgres_is_unavailable() {
    // Nothing listens on port 1.
    let res = SlashingDb::open("postgres://postgres@127.0.0.1:1/none?connect_timeout=2").await;
    assert!(matches!(res, Err(Error::Unavailable(_))), "{res:?}");
    let res = SlashingDb::open("postgres://[bad").await;
    assert!(
        matches!(res, Err(Error::Open(_) | Error::Unavailable(_))),
        "{res:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connection_loss_gives_unavailable_then_recovers() {
    let Some(t) = fresh(Backend::Postgres).await else {
        return;
    };
    let db = &t.db;
    assert_eq!(
        db.check_attestation(GVR, &pk(1), 1, 2, root(1)).await,
        Ok(Safe::Inserted)
    );
    let name = t.location.rsplit('/').next().expect("db name").to_string();
    let (admin, conn) = tokio_postgres::connect(&common::pg_admin_url(), tokio_postgres::NoTls)
        .await
        .expect("admin connect");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    // Forbid new connections and kill the pool's connections: the store must answer
    // Unavailable, never a verdict.
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false"
        ))
        .await
        .expect("alter");
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            &[&name],
        )
        .await
        .expect("terminate");
    tokio::time::sleep(Duration::from_millis(200)).await;
    for target in 3..6u64 {
        let res = db
            .check_attestation(GVR, &pk(1), target - 1, target, root(1))
            .await;
        assert!(matches!(res, Err(Error::Unavailable(_))), "{res:?}");
    }
    assert!(matches!(db.health().await, Err(Error::Unavailable(_))));
    // Let connections in again: the pool recovers without a restart, and nothing from the
    // failed attempts was recorded.
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true"
        ))
        .await
        .expect("alter");
    let mut recovered = false;
    for _ in 0..50 {
        if db.health().await.is_ok() {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "pool did not recover");
    assert_eq!(
        db.check_attestation(GVR, &pk(1), 2, 3, root(2)).await,
        Ok(Safe::Inserted)
    );
    assert_eq!(
        db.check_attestation(GVR, &pk(1), 1, 2, root(2)).await,
        Err(Error::Refused(Refusal::DoubleVote {
            existing: AttestationRecord {
                source: 1,
                target: 2,
                signing_root: Some(root(1)),
            }
        }))
    );
}

#[tokio::test]
async fn sqlite_open_errors_and_file_mode() {
    let res = SlashingDb::open("/nonexistent-dir-for-ferrosigner/x.sqlite").await;
    assert!(matches!(res, Err(Error::Open(_))), "{res:?}");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db.sqlite");
    let db = SlashingDb::open(path.to_str().expect("path"))
        .await
        .expect("open");
    db.health().await.expect("health");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
    // A file that is not a database is refused with a clear error.
    let junk = dir.path().join("junk.sqlite");
    std::fs::write(
        &junk,
        b"this is not a database at all, just some text to fill a page",
    )
    .expect("write");
    let res = SlashingDb::open(junk.to_str().expect("path")).await;
    assert!(matches!(res, Err(Error::Open(_))), "{res:?}");
}
