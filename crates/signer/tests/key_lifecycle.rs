//! The key lifecycle under faults, through a real socket and real restarts: deletions and imports when the
//! slashing database or the disk refuse, keys that sign as they load, the chain a database protects, and the
//! key cache writer. Faults are real: an immutable directory or file (`chattr +i`, which binds root too), a
//! PostgreSQL database that refuses connections, a password file that is a FIFO nobody writes yet.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{PgOutage, fork_info, key, keystore_json, km, statuses};
use ferrosigner::Running;
use ferrosigner_slashing::SlashingDb;
use reqwest::Method;
use serde_json::{Value, json};

/// `chattr +i` on a path until dropped: no file in it (or it) can be created, changed or removed.
struct Immutable(Vec<PathBuf>);

impl Immutable {
    /// Whether this machine lets the tests make files immutable (root on a filesystem with the flag). Under
    /// `CI=true` it must; elsewhere a test that needs it says loudly that it was skipped.
    fn available() -> bool {
        let probe = tempfile::NamedTempFile::new().unwrap();
        let set = std::process::Command::new("chattr")
            .arg("+i")
            .arg(probe.path())
            .status()
            .is_ok_and(|s| s.success());
        if set {
            drop(Immutable(vec![probe.path().to_path_buf()]));
            return true;
        }
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("`chattr +i` is required under CI=true (run as root, e2fsprogs installed)");
        }
        eprintln!("SKIPPED: `chattr +i` is not available here (needs root and e2fsprogs)");
        false
    }

    fn set(paths: &[PathBuf]) -> Immutable {
        for path in paths {
            let status = std::process::Command::new("chattr")
                .arg("+i")
                .arg(path)
                .status()
                .expect("chattr is installed (e2fsprogs)");
            assert!(status.success(), "chattr +i {}", path.display());
        }
        Immutable(paths.to_vec())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::process::Command::new("chattr")
                .arg("-i")
                .arg(path)
                .status();
        }
    }
}

async fn start(data: &Path, extra: &[&str]) -> Running {
    let running = ferrosigner::start(common::local_args(data, extra))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), running.wait_keys_loaded())
        .await
        .expect("keys load");
    running
}

fn url(running: &Running, path: &str) -> String {
    format!("http://{}{path}", running.http_addr)
}

async fn sign(running: &Running, pubkey: &str, body: &Value) -> u16 {
    reqwest::Client::new()
        .post(url(running, &format!("/api/v1/eth2/sign/{pubkey}")))
        .header("Accept", "application/json")
        .json(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn attestation(source: u64, target: u64) -> Value {
    json!({
        "type": "ATTESTATION",
        "fork_info": fork_info(),
        "attestation": {
            "slot": (target * 32).to_string(), "index": "0",
            "beacon_block_root": format!("0x{}", "aa".repeat(32)),
            "source": {"epoch": source.to_string(), "root": format!("0x{}", "bb".repeat(32))},
            "target": {"epoch": target.to_string(), "root": format!("0x{}", "cc".repeat(32))}
        }
    })
}

fn randao(epoch: u64) -> Value {
    json!({"type": "RANDAO_REVEAL", "fork_info": fork_info(), "randao_reveal": {"epoch": epoch.to_string()}})
}

async fn import(running: &Running, sk: &ferrosigner_bls::SecretKey) -> (u16, Value) {
    km(
        running,
        Method::POST,
        Some(json!({"keystores": [keystore_json(sk, "p")], "passwords": ["p"]})),
    )
    .await
}

async fn delete(running: &Running, pubkey: &str) -> (u16, Value) {
    km(running, Method::DELETE, Some(json!({"pubkeys": [pubkey]}))).await
}

async fn listed(running: &Running) -> Vec<String> {
    let (status, body) = km(running, Method::GET, None).await;
    assert_eq!(status, 200, "{body}");
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["validating_pubkey"].as_str().unwrap().to_owned())
        .collect()
}

/// The EIP-3076 document a deletion answered with (it must always be one).
fn interchange(body: &Value) -> Value {
    let text = body["slashing_protection"]
        .as_str()
        .expect("slashing_protection is a string");
    let doc: Value = serde_json::from_str(text).expect("slashing_protection is EIP-3076 JSON");
    assert_eq!(doc["metadata"]["interchange_format_version"], "5", "{doc}");
    assert!(doc["data"].is_array(), "{doc}");
    doc
}

/// The managed files of the data dir, temporary ones included.
fn managed_files(data: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data.join("keystores"))
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The SQLite files of a data dir that must be writable for the database to record anything.
fn sqlite_files(data: &Path) -> Vec<PathBuf> {
    let db = data.join("slashing-protection.sqlite");
    vec![db.with_extension("sqlite-wal"), db, data.to_path_buf()]
}

/// The flags selecting the slashing database: PostgreSQL at `url`, or the data dir's SQLite file.
fn db_args(url: Option<&str>) -> Vec<&str> {
    url.map(|url| vec!["--slashing-protection-db-url", url])
        .unwrap_or_default()
}

/// Finding: DELETE while the slashing database cannot record answered `error` but dropped the key from memory
/// only; a retry answered `not_active`, and after a restart the key loaded and signed again.
async fn delete_while_the_database_refuses(db_url: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let extra = db_args(db_url.as_deref());
    let running = start(&data, &extra).await;
    let k = key(50);
    let pk = k.public_key().to_hex();
    assert_eq!(statuses(&import(&running, &k).await.1), ["imported"]);
    assert_eq!(sign(&running, &pk, &attestation(10, 11)).await, 200);

    // The database cannot record: the deletion must not go half-way.
    let outage = match &db_url {
        Some(url) => Some(PgOutage::begin(url).await),
        None => None,
    };
    let immutable = db_url
        .is_none()
        .then(|| Immutable::set(&sqlite_files(&data)));
    let (status, body) = delete(&running, &pk).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(statuses(&body), ["error"], "{body}");
    interchange(&body);
    // Nothing changed: the key is still held and listed, and signs what needs no database.
    assert_eq!(sign(&running, &pk, &randao(12)).await, 200);
    drop(immutable);
    if let Some(outage) = outage {
        outage.end().await;
    }
    assert!(listed(&running).await.contains(&pk));

    // A retry completes the removal and hands over the history.
    let (_, body) = delete(&running, &pk).await;
    assert_eq!(statuses(&body), ["deleted"], "{body}");
    let doc = interchange(&body);
    assert_eq!(doc["data"][0]["pubkey"], pk);
    assert_eq!(
        doc["data"][0]["signed_attestations"][0]["target_epoch"],
        "11"
    );
    assert_eq!(managed_files(&data), Vec::<String>::new());
    running.shutdown().await;

    // It stays deleted across a restart.
    let running = start(&data, &extra).await;
    assert_eq!(sign(&running, &pk, &attestation(12, 13)).await, 404);
    assert_eq!(sign(&running, &pk, &randao(13)).await, 404);
    running.shutdown().await;
}

#[tokio::test]
async fn a_deletion_the_sqlite_database_cannot_record_changes_nothing_and_a_retry_finishes() {
    if !Immutable::available() {
        return;
    }
    delete_while_the_database_refuses(None).await;
}

#[tokio::test]
async fn a_deletion_during_a_postgres_outage_changes_nothing_and_a_retry_finishes() {
    let Some(url) = common::fresh_postgres_db().await else {
        return;
    };
    delete_while_the_database_refuses(Some(url)).await;
}

/// Finding: DELETE answered `deleted` when the key files could not be removed; after a restart the key was
/// listed, signed RANDAO and aggregation slots, and re-import answered `duplicate` without re-enabling it.
#[tokio::test]
async fn a_deletion_whose_files_cannot_be_removed_answers_error_and_the_key_never_signs_again() {
    if !Immutable::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let running = start(&data, &[]).await;
    let k = key(51);
    let pk = k.public_key().to_hex();
    assert_eq!(statuses(&import(&running, &k).await.1), ["imported"]);
    assert_eq!(sign(&running, &pk, &attestation(20, 21)).await, 200);

    let immutable = Immutable::set(&[data.join("keystores")]);
    let (_, body) = delete(&running, &pk).await;
    assert_eq!(statuses(&body), ["error"], "{body}");
    interchange(&body);
    // It no longer signs anything here, and is not listed.
    assert_eq!(sign(&running, &pk, &randao(22)).await, 404);
    assert!(!listed(&running).await.contains(&pk));
    running.shutdown().await;

    // The files remain, but a restart does not load a key the database disabled, and says why.
    let running = start(&data, &[]).await;
    assert_eq!(sign(&running, &pk, &randao(22)).await, 404);
    assert_eq!(sign(&running, &pk, &attestation(22, 23)).await, 404);
    assert!(!listed(&running).await.contains(&pk));
    let health: Value = reqwest::get(url(&running, "/healthcheck"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["checks"][1]["data"]["error-count"], 1, "{health}");
    let failures = running.signer.keys().load_state().failures;
    assert!(
        failures[0].reason.contains("disabled"),
        "{:?}",
        failures[0].reason
    );

    // Once the disk allows it, a retry finishes the removal...
    drop(immutable);
    let (_, body) = delete(&running, &pk).await;
    assert_eq!(statuses(&body), ["deleted"], "{body}");
    assert_eq!(managed_files(&data), Vec::<String>::new());
    // ...and a new import enables the key again with its history.
    assert_eq!(statuses(&import(&running, &k).await.1), ["imported"]);
    assert_eq!(sign(&running, &pk, &attestation(19, 21)).await, 412);
    assert_eq!(sign(&running, &pk, &attestation(24, 25)).await, 200);
    running.shutdown().await;
}

/// Finding: with a disk that refuses writes the import failed after the validators were already enabled in
/// the database.
#[tokio::test]
async fn an_import_the_disk_refuses_leaves_the_database_and_the_directory_as_they_were() {
    if !Immutable::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let running = start(&data, &[]).await;
    let k = key(52);
    let pk = k.public_key().to_hex();
    assert_eq!(statuses(&import(&running, &k).await.1), ["imported"]);
    assert_eq!(statuses(&delete(&running, &pk).await.1), ["deleted"]);

    let db = SlashingDb::open(data.join("slashing-protection.sqlite").to_str().unwrap())
        .await
        .unwrap();
    let disabled = db.disabled_validators().await.unwrap();
    assert_eq!(disabled, vec![*k.public_key().as_bytes()]);
    {
        let _immutable = Immutable::set(&[data.join("keystores")]);
        let (status, body) = import(&running, &k).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(statuses(&body), ["error"], "{body}");
        let message = body["data"][0]["message"].as_str().unwrap();
        assert!(message.contains("keystores"), "{message}");
    }
    assert_eq!(db.disabled_validators().await.unwrap(), disabled);
    assert_eq!(managed_files(&data), Vec::<String>::new());
    assert_eq!(sign(&running, &pk, &randao(1)).await, 404);
    running.shutdown().await;
}

/// Finding: a crash mid-import left a hidden temporary file holding a password, never cleaned up.
#[tokio::test]
async fn temporary_files_an_interrupted_import_left_are_removed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let managed = data.join("keystores");
    std::fs::create_dir_all(&managed).unwrap();
    let leftover = managed.join(format!(
        ".{}.txt.00112233aabbccdd.tmp",
        key(53).public_key().to_hex()
    ));
    std::fs::write(&leftover, "a password").unwrap();
    let running = start(&data, &[]).await;
    assert!(!leftover.exists());
    assert_eq!(managed_files(&data), Vec::<String>::new());
    running.shutdown().await;
}

/// Finding: no key signed until every key was decrypted, `/upcheck` answered 200 at once and `publicKeys`
/// answered `200 []` while keys loaded, and Keymanager calls hung on a lock for the whole loading.
/// A temp dir with empty `keys` and `passwords` directories.
fn keystore_dirs() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let keys_dir = dir.path().join("keys");
    let passwords = dir.path().join("passwords");
    std::fs::create_dir_all(&keys_dir).unwrap();
    std::fs::create_dir_all(&passwords).unwrap();
    (dir, keys_dir, passwords)
}

/// A FIFO at `path`: whoever reads it waits until the test writes to it.
fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn keys_sign_as_they_load_and_nothing_answers_a_partial_list() {
    let (dir, keys_dir, passwords) = keystore_dirs();
    let (ready, held) = (key(54), key(55));
    for (name, sk) in [("a", &ready), ("zz", &held)] {
        std::fs::write(
            keys_dir.join(format!("{name}.json")),
            keystore_json(sk, "p"),
        )
        .unwrap();
    }
    std::fs::write(passwords.join("a.txt"), "p").unwrap();
    // The second key's password is a FIFO: its decryption waits until the test writes to it.
    let fifo = passwords.join("zz.txt");
    mkfifo(&fifo);
    let args = common::local_args(
        &dir.path().join("data"),
        &[
            "--keystores-path",
            keys_dir.to_str().unwrap(),
            "--keystores-passwords-path",
            passwords.to_str().unwrap(),
        ],
    );
    let running = ferrosigner::start(args).await.unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    // Wait until the first key is in (the second one cannot be).
    let health = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let health: Value = client
                .get(url(&running, "/healthcheck"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if health["checks"][1]["data"]["keys-loaded"] == 1 {
                return health;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the first key loads while the second waits for its password");
    assert_eq!(health["status"], "DOWN", "{health}");
    assert_eq!(
        health["checks"][1]["data"]["keystores-found"], 2,
        "{health}"
    );
    assert_eq!(
        sign(&running, &ready.public_key().to_hex(), &randao(1)).await,
        200
    );
    assert_eq!(
        sign(&running, &held.public_key().to_hex(), &randao(1)).await,
        503
    );
    for path in ["/upcheck", "/api/v1/eth2/publicKeys"] {
        let response = client.get(url(&running, path)).send().await.unwrap();
        assert_eq!(response.status(), 503, "{path}");
        let body: Value = response.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("loading"),
            "{path}: {body}"
        );
    }
    // Keymanager calls answer at once instead of waiting for the loading.
    let (status, body) = km(&running, Method::GET, None).await;
    assert_eq!(status, 503, "{body}");
    let (status, _) = import(&running, &key(56)).await;
    assert_eq!(status, 503);

    // The password arrives; loading finishes and everything answers in full.
    tokio::task::spawn_blocking(move || std::fs::write(fifo, "p").unwrap())
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), running.wait_keys_loaded())
        .await
        .unwrap();
    let response = client.get(url(&running, "/upcheck")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let keys: Vec<String> = client
        .get(url(&running, "/api/v1/eth2/publicKeys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(
        sign(&running, &held.public_key().to_hex(), &randao(1)).await,
        200
    );
    running.shutdown().await;
}

fn interchange_for(gvr: &str, pubkey: &str, slot: u64) -> String {
    json!({
        "metadata": {"interchange_format_version": "5", "genesis_validators_root": gvr},
        "data": [{"pubkey": pubkey, "signed_blocks": [{"slot": slot.to_string()}], "signed_attestations": []}]
    })
    .to_string()
}

const OTHER_GVR: &str = "0x1111111111111111111111111111111111111111111111111111111111111111";

/// Finding: the network's genesis validators root was never recorded, so the first interchange imported into
/// a fresh database set whatever root it carried and every block and attestation after that got 412.
async fn an_interchange_for_another_chain_changes_nothing(db_url: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let extra = db_args(db_url.as_deref());
    let running = start(&data, &extra).await;
    let k = key(57);
    let pk = k.public_key().to_hex();
    let body = json!({
        "keystores": [keystore_json(&k, "p")], "passwords": ["p"],
        "slashing_protection": interchange_for(OTHER_GVR, &pk, 5),
    });
    let (status, answer) = km(&running, Method::POST, Some(body)).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("genesis_validators_root"),
        "{answer}"
    );
    assert!(listed(&running).await.is_empty());
    assert_eq!(managed_files(&data), Vec::<String>::new());
    assert_eq!(statuses(&import(&running, &k).await.1), ["imported"]);
    assert_eq!(sign(&running, &pk, &common::block(100, 1)).await, 200);
    assert_eq!(sign(&running, &pk, &attestation(1, 2)).await, 200);
    running.shutdown().await;

    // The database now belongs to mainnet: a signer for another network refuses to open it.
    let mut other = extra.clone();
    other.extend(["--network", "sepolia"]);
    let refused = ferrosigner::start(common::local_args(&data, &other)).await;
    let message = format!("{:#}", refused.err().expect("refused"));
    assert!(message.contains("genesis validators root"), "{message}");
}

#[tokio::test]
async fn an_interchange_for_another_chain_is_a_400_on_sqlite() {
    an_interchange_for_another_chain_changes_nothing(None).await;
}

#[tokio::test]
async fn an_interchange_for_another_chain_is_a_400_on_postgres() {
    let Some(url) = common::fresh_postgres_db().await else {
        return;
    };
    an_interchange_for_another_chain_changes_nothing(Some(url)).await;
}

/// The offline import records the network's root first, so a file for another chain cannot claim the
/// database.
#[tokio::test]
async fn the_offline_import_of_another_chain_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("other.json");
    let pk = key(58).public_key().to_hex();
    std::fs::write(&file, interchange_for(OTHER_GVR, &pk, 5)).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ferrosigner"))
        .args(["slashing-protection", "import"])
        .arg(&file)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("genesis_validators_root"), "{stderr}");

    let running = start(&data, &[]).await;
    let k = key(58);
    assert_eq!(statuses(&import(&running, &k).await.1), ["imported"]);
    assert_eq!(sign(&running, &pk, &common::block(100, 1)).await, 200);
    running.shutdown().await;
}

/// Finding: N quick deletions queued N full re-seals of the key cache, one after another.
#[tokio::test]
async fn quick_deletions_coalesce_into_few_key_cache_writes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let running = start(&data, &[]).await;
    let keys: Vec<_> = (60..70).map(key).collect();
    let body = json!({
        "keystores": keys.iter().map(|k| keystore_json(k, "p")).collect::<Vec<_>>(),
        "passwords": vec!["p"; keys.len()],
    });
    let (_, answer) = km(&running, Method::POST, Some(body)).await;
    assert_eq!(statuses(&answer), vec!["imported"; keys.len()]);
    let cache = data.join("key-cache.bin");
    let writes = || running.signer.metrics().key_cache_writes.get();
    tokio::time::timeout(Duration::from_secs(10), async {
        while writes() == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the import is cached");
    assert!(cache.exists());
    let before = writes();
    let burst = std::time::Instant::now();
    for k in &keys {
        let (_, answer) = delete(&running, &k.public_key().to_hex()).await;
        assert_eq!(statuses(&answer), ["deleted"]);
    }
    let burst = burst.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // One write per deletion before; now requests made while the writer waits or seals fold into one more
    // write, so the count follows the burst's duration (a 200 ms settle each), not the number of deletions:
    // about one write per 200 ms of the burst, plus the one pending at its end. On a quiet machine the burst
    // takes well under a second and half the deletions is the bound; a loaded machine's slower burst is
    // allowed more writes, in proportion to its duration.
    let after = writes();
    let settles = u64::try_from(burst.as_millis() / 200).unwrap_or(u64::MAX);
    let bound = (keys.len() as u64 / 2).max(settles.saturating_add(2));
    assert!(
        after > before && after - before <= bound,
        "{} cache writes for {} deletions in {burst:?}",
        after - before,
        keys.len()
    );
    // Fewer than two keys left: the cache is removed rather than sealed.
    assert!(!cache.exists());
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_during_start_up_loading_starts_no_new_decryption() {
    use std::os::unix::fs::OpenOptionsExt;
    let (dir, keys_dir, passwords) = keystore_dirs();
    let threads = std::thread::available_parallelism().unwrap().get();
    let total = 3 * threads + 4;
    // Every password is a FIFO: a decryption waits in it until the test answers.
    let mut fifos = Vec::new();
    for i in 0..total {
        let name = format!("k{i:03}");
        std::fs::write(
            keys_dir.join(format!("{name}.json")),
            keystore_json(&key(100 + i as u8), "p"),
        )
        .unwrap();
        let fifo = passwords.join(format!("{name}.txt"));
        mkfifo(&fifo);
        fifos.push(fifo);
    }
    let args = common::local_args(
        &dir.path().join("data"),
        &[
            "--keystores-path",
            keys_dir.to_str().unwrap(),
            "--keystores-passwords-path",
            passwords.to_str().unwrap(),
            "--key-cache-enabled",
            "false",
        ],
    );
    let running = ferrosigner::start(args).await.unwrap();
    let view = running.signer.keys().clone();
    // Answers every FIFO a decryption is waiting in; returns how many it answered.
    let answer_waiting = |answered: &mut Vec<bool>| {
        let mut n = 0;
        for (i, fifo) in fifos.iter().enumerate() {
            if answered[i] {
                continue;
            }
            let opened = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(fifo);
            if let Ok(mut f) = opened {
                use std::io::Write;
                f.write_all(b"p").unwrap();
                answered[i] = true;
                n += 1;
            }
        }
        n
    };
    let mut answered = vec![false; total];
    // Let one round of decryptions finish, so that loading is well under way.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while view.is_empty() {
        answer_waiting(&mut answered);
        assert!(std::time::Instant::now() < deadline, "no key loaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = answered.iter().filter(|a| **a).count();
    running.shutdown().await;
    // Release whatever is still waiting, for a while: only the decryptions already started (at most one
    // per thread) may go on.
    for _ in 0..50 {
        answer_waiting(&mut answered);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = answered.iter().filter(|a| **a).count();
    assert!(
        after - before <= threads && after < total,
        "{before} passwords read before the shutdown, {after} of {total} after: decryptions went on"
    );
    assert!(view.len() <= after);
}
