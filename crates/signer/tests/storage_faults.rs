//! Storage faults through the real signer: a full disk under the SQLite file and a PostgreSQL server that
//! hangs or stops. Each answers 503 (JSON) within the database deadline, turns `/healthcheck` DOWN, logs one
//! ERROR when it starts and one INFO when it ends, and recovers by itself. No signature is returned without
//! its record, and a request answered 503 left no record.

mod common;
mod processes;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{TestSigner, attestation, attested_targets, secret};
use processes::{PrivatePostgres, is_root, spawn_signer, unavailable, wait_healthy};
use serde_json::Value;

fn key_hex() -> &'static str {
    "0x263dbd792f5b1be47ed85f8938c0f29586af0d3ac7b977f21c278fe1462040e3"
}

/// A small tmpfs mounted on a temp dir until dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        if !is_root() {
            unavailable("root (to mount a tmpfs for the disk-full test)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status();
        if !status.is_ok_and(|s| s.success()) {
            unavailable("mounting a tmpfs");
            return None;
        }
        Some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file until the filesystem is full.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let filler = self.path().join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 16 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

async fn health(client: &reqwest::Client, base: &str) -> (u16, Value) {
    let r = client
        .get(format!("{base}/healthcheck"))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn db_check(health: &Value) -> &Value {
    health["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "slashing-protection-db-health-check")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_turns_health_down_records_nothing_and_recovers() {
    let Some(fs) = Tmpfs::mount("3m") else {
        return;
    };
    let db_path = fs.path().join("slashing.sqlite");
    let signer = TestSigner::start(
        &[secret(key_hex())],
        &["--slashing-protection-db-url", db_path.to_str().unwrap()],
    )
    .await;
    let pk = secret(key_hex()).public_key().to_hex();
    assert_eq!(signer.sign(&pk, &attestation(0, 1, 1)).await.0, 200);

    let filler = fs.fill();
    for target in 2..12 {
        let (status, body) = signer.sign(&pk, &attestation(target - 1, target, 1)).await;
        assert_eq!(status, 503, "target {target}: {body}");
        assert!(body["error"].as_str().unwrap().contains("full"), "{body}");
    }
    let base = signer.url("");
    let (status, report) = health(&signer.client, &base).await;
    assert_eq!(status, 503, "{report}");
    assert_eq!(db_check(&report)["status"], "DOWN", "{report}");

    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, report) = health(&signer.client, &base).await;
        if status == 200 {
            assert_eq!(db_check(&report)["status"], "UP");
            break;
        }
        assert!(Instant::now() < deadline, "still DOWN: {report}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Nothing was recorded for the refused requests: another attestation for target 2 is not a double vote.
    let (status, body) = signer.sign(&pk, &attestation(1, 2, 9)).await;
    assert_eq!(status, 200, "{body}");
    let export = signer
        .running
        .signer
        .slashing()
        .unwrap()
        .export_interchange(None)
        .await
        .unwrap();
    let mut recorded = attested_targets(&serde_json::from_str(&export).unwrap(), &pk);
    recorded.sort_unstable();
    assert_eq!(recorded, vec![1, 2]);
    signer.running.shutdown().await;
}

fn log_lines(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn count(log: &Path, level: &str, needle: &str) -> usize {
    log_lines(log)
        .iter()
        .filter(|l| l["level"] == level && l.to_string().contains(needle))
        .count()
}

async fn wait_for_log(log: &Path, level: &str, needle: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(log, level, needle) < n {
        assert!(
            Instant::now() < deadline,
            "no {n}th {level} line with {needle:?}: {}",
            std::fs::read_to_string(log).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn sign_timed(client: &reqwest::Client, base: &str, body: &Value) -> (u16, Value, Duration) {
    let pk = secret(key_hex()).public_key().to_hex();
    let started = Instant::now();
    let r = client
        .post(format!("{base}/api/v1/eth2/sign/{pk}"))
        .header("Accept", "application/json")
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    (status, body, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_answers_503_within_the_deadline_logs_once_and_recovers_by_itself() {
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("signer.log");
    // The password parameter is ignored by trust auth; it must never be shown.
    let url = pg.url("?password=hunter2-secret&connect_timeout=10");
    let (mut child, base) = spawn_signer(
        dir.path(),
        &log,
        secret(key_hex()),
        &[
            "--slashing-protection-db-url",
            &url,
            "--slashing-protection-db-timeout-ms",
            "1000",
        ],
    );
    let client = reqwest::Client::new();
    wait_healthy(&client, &base, &mut child, &log).await;
    let mut signed = vec![];
    let (status, body, _) = sign_timed(&client, &base, &attestation(0, 1, 1)).await;
    assert_eq!(status, 200, "{body}");
    signed.push(1);

    // 1. The server hangs (every process stopped): requests answer 503 within the deadline, not after
    //    the connection or statement timeouts.
    pg.signal(libc::SIGSTOP);
    let mut requests = vec![];
    for target in 2..12u64 {
        let (client, base) = (client.clone(), base.clone());
        requests.push(tokio::spawn(async move {
            sign_timed(&client, &base, &attestation(target - 1, target, 1)).await
        }));
    }
    for r in requests {
        let (status, body, took) = r.await.unwrap();
        assert_eq!(status, 503, "{body}");
        assert!(body["error"].is_string(), "{body}");
        assert!(took < Duration::from_secs(4), "answered after {took:?}");
    }
    let (status, report) = health(&client, &base).await;
    assert_eq!(status, 503, "{report}");
    assert_eq!(db_check(&report)["status"], "DOWN", "{report}");
    pg.signal(libc::SIGCONT);
    wait_for_log(&log, "INFO", "recovered", 1).await;

    // 2. The server stops: the same, and the signer comes back by itself once it is started again.
    pg.ctl_stop();
    for target in 12..22u64 {
        let (status, body, took) =
            sign_timed(&client, &base, &attestation(target - 1, target, 1)).await;
        assert_eq!(status, 503, "{body}");
        assert!(took < Duration::from_secs(4), "answered after {took:?}");
    }
    assert_eq!(health(&client, &base).await.0, 503);
    pg.ctl_start("");
    // No request is sent: the signer's own probe notices the recovery.
    wait_for_log(&log, "INFO", "recovered", 2).await;
    assert_eq!(health(&client, &base).await.0, 200);
    let (status, body, _) = sign_timed(&client, &base, &attestation(30, 31, 1)).await;
    assert_eq!(status, 200, "{body}");
    signed.push(31);

    // Two faults: two ERROR lines and two recoveries, not one line per failed request.
    let errors: Vec<Value> = log_lines(&log)
        .into_iter()
        .filter(|l| l["level"] == "ERROR")
        .collect();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_eq!(count(&log, "INFO", "recovered"), 2);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("hunter2"), "a secret reached the log");

    let _ = child.kill();
    let _ = child.wait();
    // Every returned signature has its record.
    let out = Command::new(env!("CARGO_BIN_EXE_ferrosigner"))
        .args([
            "slashing-protection",
            "export",
            "--slashing-protection-db-url",
            &url,
        ])
        .arg(dir.path().join("export.json"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let export: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("export.json")).unwrap())
            .unwrap();
    let recorded = attested_targets(&export, &secret(key_hex()).public_key().to_hex());
    for target in signed {
        assert!(recorded.contains(&target), "{target} not in {recorded:?}");
    }
}

/// A SQLite signer with database deadline `timeout_ms` that has signed target 1 of its key, and
/// another process's connection holding the database's write lock, so the signer's checks wait.
async fn signer_with_a_locked_database(
    timeout_ms: &str,
) -> (TestSigner, String, rusqlite::Connection) {
    let signer = TestSigner::start(
        &[secret(key_hex())],
        &["--slashing-protection-db-timeout-ms", timeout_ms],
    )
    .await;
    let pk = secret(key_hex()).public_key().to_hex();
    assert_eq!(signer.sign(&pk, &attestation(0, 1, 1)).await.0, 200);
    let db_file = signer.dir.path().join("data/slashing-protection.sqlite");
    let lock = rusqlite::Connection::open(&db_file).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    (signer, pk, lock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_client_hung_up_while_the_database_was_busy_is_neither_recorded_nor_signed()
{
    use tokio::io::AsyncWriteExt;
    let (signer, pk, lock) = signer_with_a_locked_database("20000").await;
    let body = attestation(1, 2, 1).to_string();
    let mut stream = tokio::net::TcpStream::connect(signer.running.http_addr)
        .await
        .unwrap();
    stream
        .write_all(
            format!(
                "POST /api/v1/eth2/sign/{pk} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The client gives up.
    drop(stream);
    tokio::time::sleep(Duration::from_millis(300)).await;
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    // Target 2 was never recorded: another attestation for it is not a double vote.
    let (status, body) = signer.sign(&pk, &attestation(1, 2, 2)).await;
    assert_eq!(status, 200, "{body}");
    signer.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_past_the_deadline_answers_503_and_is_not_recorded_when_the_database_frees_up() {
    let (signer, pk, lock) = signer_with_a_locked_database("300").await;
    let started = Instant::now();
    let (status, body) = signer.sign(&pk, &attestation(1, 2, 1)).await;
    let took = started.elapsed();
    assert_eq!(status, 503, "{body}");
    assert!(
        body.to_string().contains("did not answer within 300 ms"),
        "{body}"
    );
    assert!(took < Duration::from_secs(2), "answered after {took:?}");
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    // The writer reached the abandoned check after the lock cleared and did not run it: target 2
    // was never recorded, so another attestation for it is not a double vote.
    let (status, body) = signer.sign(&pk, &attestation(1, 2, 2)).await;
    assert_eq!(status, 200, "{body}");
    signer.running.shutdown().await;
}
