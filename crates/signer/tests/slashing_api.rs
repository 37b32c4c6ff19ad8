//! Slashing protection through the HTTP API: races for one key, a SIGKILL under load, and two signer
//! processes sharing one PostgreSQL database.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{TestSigner, attestation, block, free_port, secret};
use ferrosigner_bls::SecretKey;
use serde_json::{Value, json};

fn key() -> SecretKey {
    secret("0x263dbd792f5b1be47ed85f8938c0f29586af0d3ac7b977f21c278fe1462040e3")
}

async fn post(client: &reqwest::Client, base: &str, pubkey: &str, body: &Value) -> (u16, Value) {
    let response = client
        .post(format!("{base}/api/v1/eth2/sign/{pubkey}"))
        .header("Accept", "application/json")
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Sends every body at once and returns the statuses in order.
async fn race(
    client: &reqwest::Client,
    bases: &[String],
    pubkey: &str,
    bodies: Vec<Value>,
) -> Vec<u16> {
    let tasks: Vec<_> = bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| {
            let client = client.clone();
            let base = bases[i % bases.len()].clone();
            let pubkey = pubkey.to_owned();
            tokio::spawn(async move { post(&client, &base, &pubkey, &body).await.0 })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn races_for_one_key_sign_exactly_one_conflicting_message() {
    let signer = TestSigner::start(&[key()], &[]).await;
    let base = vec![format!("http://{}", signer.running.http_addr)];
    let pk = key().public_key().to_hex();

    // 32 conflicting proposals for one slot: exactly one signs
    let statuses = race(
        &signer.client,
        &base,
        &pk,
        (0..32).map(|i| block(500, i)).collect(),
    )
    .await;
    assert_eq!(count(&statuses, 200), 1, "{statuses:?}");
    assert_eq!(count(&statuses, 412), 31, "{statuses:?}");
    // 32 identical proposals for another slot: all sign (same data signs again)
    let statuses = race(
        &signer.client,
        &base,
        &pk,
        (0..32).map(|_| block(501, 7)).collect(),
    )
    .await;
    assert_eq!(count(&statuses, 200), 32, "{statuses:?}");
    // 32 double votes for one target: exactly one signs
    let statuses = race(
        &signer.client,
        &base,
        &pk,
        (0..32).map(|i| attestation(10, 11, i)).collect(),
    )
    .await;
    assert_eq!(count(&statuses, 200), 1, "{statuses:?}");
    // surround votes racing each other (9→13 surrounds 10→12; 11→12 ... ) : no pair of signed votes is slashable
    let bodies: Vec<Value> = (0..16)
        .map(|i| attestation(12 - (i % 3), 14 + (i % 4), 1))
        .collect();
    let votes: Vec<(u64, u64)> = (0..16).map(|i| (12 - (i % 3), 14 + (i % 4))).collect();
    let statuses = race(&signer.client, &base, &pk, bodies).await;
    let signed: Vec<(u64, u64)> = votes
        .iter()
        .zip(&statuses)
        .filter(|(_, s)| **s == 200)
        .map(|(v, _)| *v)
        .collect();
    assert!(!signed.is_empty());
    for (i, a) in signed.iter().enumerate() {
        for b in &signed[i + 1..] {
            let double = a.1 == b.1 && a != b;
            let surround = (a.0 < b.0 && b.1 < a.1) || (b.0 < a.0 && a.1 < b.1);
            assert!(!double && !surround, "slashable pair signed: {a:?} {b:?}");
        }
    }
    // slots the database cannot store (2^63 and above) are a client error, never a 500
    let (status, body) = post(&signer.client, &base[0], &pk, &block(u64::MAX, 1)).await;
    assert_eq!(status, 400, "{body}");
    // a refused request leaves no record: the refused roots still conflict, the signed one still signs
    let (status, body) = post(&signer.client, &base[0], &pk, &block(500, 200)).await;
    assert_eq!(status, 412);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("slashing"),
        "{body}"
    );
    signer.running.shutdown().await;
}

#[tokio::test]
async fn slashing_protection_off_is_explicit() {
    let signer = TestSigner::start(&[key()], &["--slashing-protection-enabled", "false"]).await;
    let pk = key().public_key().to_hex();
    assert_eq!(signer.sign(&pk, &block(9, 1)).await.0, 200);
    assert_eq!(signer.sign(&pk, &block(9, 2)).await.0, 200);
    assert!(
        !signer
            .dir
            .path()
            .join("data/slashing-protection.sqlite")
            .exists()
    );
    signer.running.shutdown().await;
}

/// The real binary, started on a free port, its log (stderr) appended to `<data_dir>.log`; returns
/// the child and its base URL.
fn spawn_binary(
    data_dir: &Path,
    keys: &Path,
    password_file: &Path,
    extra: &[&str],
) -> (Child, String) {
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrosigner"));
    cmd.arg("run")
        .arg("--data-dir")
        .arg(data_dir)
        .args([
            "--http-listen-port",
            &port.to_string(),
            "--metrics-enabled",
            "false",
        ])
        .arg("--keystores-path")
        .arg(keys)
        .arg("--keystores-password-file")
        .arg(password_file)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(log_file(data_dir));
    let child = cmd.spawn().unwrap();
    (child, format!("http://127.0.0.1:{port}"))
}

fn log_path(data_dir: &Path) -> std::path::PathBuf {
    data_dir.with_extension("log")
}

fn log_file(data_dir: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path(data_dir))
        .unwrap()
}

async fn wait_up(client: &reqwest::Client, base: &str) {
    for _ in 0..600 {
        if let Ok(r) = client.get(format!("{base}/healthcheck")).send().await
            && r.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{base} did not come up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_load_loses_no_record_of_a_returned_signature() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let password_file = common::write_keystores(&keys, &[key()], "pw");
    let data = dir.path().join("data");
    let (mut child, base) = spawn_binary(&data, &keys, &password_file, &[]);
    let client = reqwest::Client::new();
    wait_up(&client, &base).await;
    let pk = key().public_key().to_hex();

    // 8 workers each sign attestations with rising targets (and conflicting twins) until the process dies
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, u8)>();
    let mut workers = Vec::new();
    for w in 0..8u64 {
        let (client, base, pk, tx) = (client.clone(), base.clone(), pk.clone(), tx.clone());
        workers.push(tokio::spawn(async move {
            for n in 0..100_000u64 {
                let target = 1 + n * 8 + w;
                let root = (n % 2) as u8 + 1;
                match client
                    .post(format!("{base}/api/v1/eth2/sign/{pk}"))
                    .header("Accept", "application/json")
                    .json(&attestation(target - 1, target, root))
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => {
                        if r.json::<Value>().await.is_ok() {
                            let _ = tx.send((target, root));
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        }));
    }
    drop(tx);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for w in workers {
        let _ = w.await;
    }
    let mut returned: HashMap<u64, u8> = HashMap::new();
    while let Ok((target, root)) = rx.try_recv() {
        assert!(
            returned.insert(target, root).is_none(),
            "two signatures returned for target {target}"
        );
    }
    assert!(
        returned.len() > 10,
        "too little load before the kill: {}",
        returned.len()
    );

    // restart: every returned signature has its record, so a conflicting vote at that target is refused
    let (mut child, base) = spawn_binary(&data, &keys, &password_file, &[]);
    wait_up(&client, &base).await;
    let mut checked = 0;
    for (&target, &root) in returned.iter().take(200) {
        let (status, body) = post(
            &client,
            &base,
            &pk,
            &attestation(target - 1, target, root + 10),
        )
        .await;
        assert_eq!(status, 412, "target {target} lost its record: {body}");
        let (status, _) = post(&client, &base, &pk, &attestation(target - 1, target, root)).await;
        assert_eq!(status, 200, "same data at target {target} must sign again");
        checked += 1;
    }
    assert!(checked > 10);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_on_one_postgres_never_both_sign() {
    let Some(url) = common::fresh_postgres_db().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let password_file = common::write_keystores(&keys, &[key()], "pw");
    let extra = ["--slashing-protection-db-url", url.as_str()];
    let (mut a, base_a) = spawn_binary(&dir.path().join("a"), &keys, &password_file, &extra);
    let (mut b, base_b) = spawn_binary(&dir.path().join("b"), &keys, &password_file, &extra);
    let client = reqwest::Client::new();
    wait_up(&client, &base_a).await;
    wait_up(&client, &base_b).await;
    let bases = vec![base_a, base_b];
    let pk = key().public_key().to_hex();
    for round in 0..5u64 {
        let statuses = race(
            &client,
            &bases,
            &pk,
            (0..24).map(|i| block(1000 + round, i)).collect(),
        )
        .await;
        assert_eq!(count(&statuses, 200), 1, "round {round}: {statuses:?}");
        assert_eq!(count(&statuses, 412), 23, "round {round}: {statuses:?}");
        let statuses = race(
            &client,
            &bases,
            &pk,
            (0..24)
                .map(|i| attestation(round * 2, round * 2 + 1, i))
                .collect(),
        )
        .await;
        assert_eq!(count(&statuses, 200), 1, "round {round}: {statuses:?}");
    }
    a.kill().unwrap();
    b.kill().unwrap();
    a.wait().unwrap();
    b.wait().unwrap();
}

#[tokio::test]
async fn periodic_pruning_drops_old_rows_and_keeps_protection() {
    let signer = TestSigner::start(
        &[key()],
        &[
            "--slashing-protection-pruning-enabled",
            "true",
            "--slashing-protection-pruning-epochs-to-keep",
            "5",
            "--slashing-protection-pruning-interval-seconds",
            "1",
        ],
    )
    .await;
    let pk = key().public_key().to_hex();
    for target in [10u64, 20, 30] {
        assert_eq!(
            signer
                .sign(&pk, &attestation(target - 1, target, 1))
                .await
                .0,
            200
        );
    }
    let db_file = signer.dir.path().join("data/slashing-protection.sqlite");
    let db = ferrosigner_slashing::SlashingDb::open(db_file.to_str().unwrap())
        .await
        .unwrap();
    let mut targets = Vec::new();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let exported: Value =
            serde_json::from_str(&db.export_interchange(None).await.unwrap()).unwrap();
        targets = exported["data"][0]["signed_attestations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["target_epoch"].as_str().unwrap().parse::<u64>().unwrap())
            .collect();
        if !targets.contains(&10) {
            break;
        }
    }
    assert!(
        !targets.contains(&10) && targets.contains(&30),
        "not pruned: {targets:?}"
    );
    // pruned history is still protected: below the watermark nothing signs
    assert_eq!(signer.sign(&pk, &attestation(10, 15, 1)).await.0, 412);
    assert_eq!(signer.sign(&pk, &attestation(30, 31, 1)).await.0, 200);
    signer.running.shutdown().await;
}

/// A 412 names its reason and the conflicting record or watermark, and the refusal metric counts
/// by reason.
#[tokio::test]
async fn refusal_body_names_reason_and_conflict_and_metric_counts_by_reason() {
    let signer = TestSigner::start(&[key()], &[]).await;
    let pk = key().public_key().to_hex();
    assert_eq!(signer.sign(&pk, &block(10, 1)).await.0, 200);
    let (status, body) = signer.sign(&pk, &block(10, 2)).await;
    assert_eq!(status, 412, "{body}");
    assert_eq!(body["reason"], "double_block_proposal", "{body}");
    assert_eq!(body["conflict"]["kind"], "block", "{body}");
    assert_eq!(body["conflict"]["slot"], "10", "{body}");
    let root = body["conflict"]["signing_root"]
        .as_str()
        .unwrap_or_default();
    assert!(root.starts_with("0x") && root.len() == 66, "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(
        message.starts_with("slashing protection refused: "),
        "{body}"
    );
    assert!(
        message.contains(root) && message.contains("slot 10"),
        "{body}"
    );

    assert_eq!(signer.sign(&pk, &attestation(3, 5, 1)).await.0, 200);
    let (status, body) = signer.sign(&pk, &attestation(3, 5, 2)).await;
    assert_eq!(status, 412, "{body}");
    assert_eq!(body["reason"], "double_vote", "{body}");
    assert_eq!(body["conflict"]["kind"], "attestation", "{body}");
    assert_eq!(body["conflict"]["source_epoch"], "3", "{body}");
    assert_eq!(body["conflict"]["target_epoch"], "5", "{body}");
    let (status, body) = signer.sign(&pk, &attestation(2, 6, 2)).await;
    assert_eq!(status, 412, "{body}");
    assert_eq!(body["reason"], "surrounding_vote", "{body}");
    assert_eq!(body["conflict"]["target_epoch"], "5", "{body}");
    let (status, body) = signer.sign(&pk, &attestation(6, 5, 2)).await;
    assert_eq!(status, 412, "{body}");
    assert_eq!(body["reason"], "source_exceeds_target", "{body}");
    assert_eq!(body["conflict"], Value::Null, "{body}");
    assert_eq!(signer.sign(&pk, &attestation(3, 5, 3)).await.0, 412);

    let text = signer.metrics_text().await;
    for line in [
        "eth2_slashingprotection_prevented_signings_total{reason=\"double_block_proposal\"} 1",
        "eth2_slashingprotection_prevented_signings_total{reason=\"double_vote\"} 2",
        "eth2_slashingprotection_prevented_signings_total{reason=\"surrounding_vote\"} 1",
        "eth2_slashingprotection_prevented_signings_total{reason=\"source_exceeds_target\"} 1",
    ] {
        assert!(text.contains(line), "missing {line} in:\n{text}");
    }
    signer.running.shutdown().await;
}

/// `GET /api/v1/eth2/highWatermark`: `{}` when none is set, the watermark as decimal strings when
/// one is, and 503 JSON when the database cannot answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn high_watermark_endpoint_reports_it_and_answers_503_when_the_database_is_down() {
    let Some(url) = common::fresh_postgres_db().await else {
        return;
    };
    let signer = TestSigner::start(&[key()], &["--slashing-protection-db-url", &url]).await;
    let get = || async {
        let r = signer
            .client
            .get(signer.url("/api/v1/eth2/highWatermark"))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(get().await, (200, json!({})));
    let db = ferrosigner_slashing::SlashingDb::open(&url).await.unwrap();
    db.set_high_watermark(ferrosigner_slashing::HighWatermark {
        epoch: 7,
        slot: 224,
    })
    .await
    .unwrap();
    assert_eq!(get().await, (200, json!({"epoch": "7", "slot": "224"})));
    let pk = key().public_key().to_hex();
    let (status, body) = signer.sign(&pk, &block(224, 1)).await;
    assert_eq!(status, 412, "{body}");
    assert_eq!(body["reason"], "high_watermark", "{body}");
    assert_eq!(
        body["conflict"],
        json!({"kind": "high_watermark", "epoch": "7", "slot": "224"})
    );
    assert_eq!(signer.sign(&pk, &block(223, 1)).await.0, 200);

    // The database stops accepting connections and its sessions are ended.
    let outage = common::PgOutage::begin(&url).await;
    let (status, body) = get().await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    outage.end().await;
    assert_eq!(get().await, (200, json!({"epoch": "7", "slot": "224"})));
    signer.running.shutdown().await;
}

/// Runs `ferrosigner slashing-protection <args>` and returns its stdout; fails on a non-zero exit.
fn slashing_cli(args: &[&str], data: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrosigner"))
        .arg("slashing-protection")
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Moving a key from signer A to signer B through the real binary and CLI: A signs; A stops; its
/// history is exported and a high watermark set on its database; B imports the export; A starts
/// again and refuses everything at or above the watermark, B signs above it and refuses what A
/// signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_over_with_export_import_and_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let password_file = common::write_keystores(&keys, &[key()], "pw");
    let (data_a, data_b) = (dir.path().join("a"), dir.path().join("b"));
    let client = reqwest::Client::new();
    let pk = key().public_key().to_hex();

    let (mut a, base_a) = spawn_binary(&data_a, &keys, &password_file, &[]);
    wait_up(&client, &base_a).await;
    for slot in [8, 10] {
        assert_eq!(post(&client, &base_a, &pk, &block(slot, 1)).await.0, 200);
    }
    for (s, t) in [(0, 1), (1, 2)] {
        assert_eq!(
            post(&client, &base_a, &pk, &attestation(s, t, 1)).await.0,
            200
        );
    }
    a.kill().unwrap();
    a.wait().unwrap();

    let export = dir.path().join("export.json");
    slashing_cli(&["export", export.to_str().unwrap()], &data_a);
    let out = slashing_cli(
        &["set-high-watermark", "--epoch", "3", "--slot", "11"],
        &data_a,
    );
    assert!(out.contains("epoch 3, slot 11"), "{out}");
    let out = slashing_cli(&["import", export.to_str().unwrap()], &data_b);
    assert!(out.contains("imported"), "{out}");

    let (mut b, base_b) = spawn_binary(&data_b, &keys, &password_file, &[]);
    let (mut a, base_a) = spawn_binary(&data_a, &keys, &password_file, &[]);
    wait_up(&client, &base_b).await;
    wait_up(&client, &base_a).await;
    let hw = |base: String| {
        let client = client.clone();
        async move {
            client
                .get(format!("{base}/api/v1/eth2/highWatermark"))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    assert_eq!(
        hw(base_a.clone()).await,
        json!({"epoch": "3", "slot": "11"})
    );
    assert_eq!(hw(base_b.clone()).await, json!({}));

    // A refuses everything at or above the watermark, with the watermark as evidence.
    let at_hw = json!({"kind": "high_watermark", "epoch": "3", "slot": "11"});
    for request in [
        block(11, 2),
        block(12, 2),
        attestation(2, 3, 2),
        attestation(3, 4, 2),
    ] {
        let (status, body) = post(&client, &base_a, &pk, &request).await;
        assert_eq!(status, 412, "{body}");
        assert_eq!(body["reason"], "high_watermark", "{body}");
        assert_eq!(body["conflict"], at_hw, "{body}");
    }
    // B refuses what A signed (its imported history is the low watermark) and signs above it.
    let (status, body) = post(&client, &base_b, &pk, &block(10, 2)).await;
    assert_eq!(status, 412, "{body}");
    assert_eq!(body["reason"], "block_slot_below_watermark", "{body}");
    assert_eq!(
        body["conflict"],
        json!({"kind": "low_watermark", "slot": "10"})
    );
    let (status, body) = post(&client, &base_b, &pk, &attestation(1, 2, 2)).await;
    assert_eq!(status, 412, "{body}");
    assert_eq!(body["reason"], "target_below_watermark", "{body}");
    assert_eq!(post(&client, &base_b, &pk, &block(11, 2)).await.0, 200);
    assert_eq!(
        post(&client, &base_b, &pk, &attestation(2, 3, 2)).await.0,
        200
    );
    let (status, body) = post(&client, &base_b, &pk, &block(11, 3)).await;
    assert_eq!(status, 412, "{body}");
    assert_eq!(body["reason"], "double_block_proposal", "{body}");
    // A still refuses after B signed there.
    assert_eq!(post(&client, &base_a, &pk, &block(11, 2)).await.0, 412);
    // The refusals are logged with their reason and evidence.
    let log = std::fs::read_to_string(log_path(&data_a)).unwrap();
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains("reason=\"high_watermark\"")
            && l.contains("high watermark (epoch 3, slot 11)")),
        "{log}"
    );
    let log = std::fs::read_to_string(log_path(&data_b)).unwrap();
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains("double_block_proposal")
            && l.contains("at slot 11")),
        "{log}"
    );
    b.kill().unwrap();
    b.wait().unwrap();
    a.kill().unwrap();
    a.wait().unwrap();

    let out = slashing_cli(&["remove-high-watermark"], &data_a);
    assert!(out.contains("it was epoch 3, slot 11"), "{out}");
    let out = slashing_cli(&["remove-high-watermark"], &data_a);
    assert!(out.contains("no high watermark"), "{out}");
}
