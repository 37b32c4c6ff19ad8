//! Keys from HashiCorp Vault, against a real OpenBao server: the bulk source (`--vault-*`: every secret under a
//! KV v2 folder, token file or AppRole, `/reload` following additions and removals), `type: hashicorp` key
//! config documents, a wrong token, and a Vault that does not answer. Every signature is verified against the
//! key written to Vault.

mod common;
#[path = "../../vault/tests/common/mod.rs"]
mod openbao;

use common::{
    healthcheck, km, reload, sign_randao_verified, start_running as start, sub_check, url_of as url,
};
use ferrosigner::Running;
use ferrosigner::keys::SourceKind;
use ferrosigner_bls::SecretKey;
use openbao::{Bao, key_hex, random_key};
use reqwest::Method;
use serde_json::{Value, json};

/// Signs with `sk`'s key and verifies the signature; the status.
async fn sign_and_verify(running: &Running, sk: &SecretKey) -> u16 {
    sign_randao_verified(running, &sk.public_key().to_hex()).await
}

async fn public_keys(running: &Running) -> Vec<String> {
    let mut keys: Vec<String> = reqwest::get(url(running, "/api/v1/eth2/publicKeys"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    keys.sort();
    keys
}

fn vault_check(health: &Value) -> &Value {
    sub_check(health, "hashicorp-bulk-loading")
}

/// The Vault failures, as `(secret, reason)`.
fn vault_failures(running: &Running) -> Vec<(String, String)> {
    running
        .signer
        .keys()
        .load_state()
        .failures
        .into_iter()
        .filter(|f| f.kind == SourceKind::Vault)
        .map(|f| (f.file.display().to_string(), f.reason))
        .collect()
}

/// Starts a signer in `dir/data` on the bulk Vault source at `address` (folder `validators`), with
/// `token` in a token file and `extra` arguments.
async fn start_on_vault(
    dir: &std::path::Path,
    address: &str,
    token: &str,
    extra: &[&str],
) -> Running {
    let token_file = dir.join("token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let mut args = vec![
        "--vault-address",
        address,
        "--vault-kv-path",
        "validators",
        "--vault-token-file",
        token_file.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    start(&dir.join("data"), &args).await
}

fn sorted_hex(keys: &[SecretKey]) -> Vec<String> {
    let mut hex: Vec<String> = keys.iter().map(|k| k.public_key().to_hex()).collect();
    hex.sort();
    hex
}

/// 200 keys under `validators/` (a quarter in a sub-folder), one secret that is not a key, and one key outside
/// the folder: the 200 load and sign, the bad secret is named, the outside key is not loaded; the keys are
/// read-only; `/reload` loads a key added to Vault and drops one deleted from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bulk_source_loads_every_key_under_its_folder_and_reload_follows_vault() {
    let Some(bao) = Bao::dev().await else {
        return;
    };
    let keys: Vec<SecretKey> = (0..200).map(|_| random_key()).collect();
    for (i, sk) in keys.iter().enumerate() {
        let path = if i % 4 == 0 {
            format!("validators/sub/key-{i:03}")
        } else {
            format!("validators/key-{i:03}")
        };
        bao.put_secret(&path, json!({ "value": key_hex(sk) })).await;
    }
    bao.put_secret("validators/not-a-key", json!({ "value": "0x1234" }))
        .await;
    let outside = random_key();
    bao.put_secret("elsewhere/key", json!({ "value": key_hex(&outside) }))
        .await;

    let dir = tempfile::tempdir().unwrap();
    let address = bao.url();
    let running = start_on_vault(
        dir.path(),
        &address,
        &bao.token,
        &["--vault-parallelism", "16"],
    )
    .await;

    assert_eq!(public_keys(&running).await, sorted_hex(&keys));
    for sk in [&keys[0], &keys[1], &keys[199]] {
        assert_eq!(sign_and_verify(&running, sk).await, 200);
    }
    assert_eq!(sign_and_verify(&running, &outside).await, 404);
    let failures = vault_failures(&running);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].0, "secret/validators/not-a-key");
    let (status, health) = healthcheck(&running).await;
    assert_eq!(
        status, 200,
        "one bad secret does not turn the signer DOWN: {health}"
    );
    let check = vault_check(&health);
    assert_eq!(check["status"], "DOWN", "{check}");
    assert_eq!(check["data"]["keys-loaded"], 200, "{check}");
    assert_eq!(check["data"]["error-count"], 1, "{check}");

    let (status, listing) = km(&running, Method::GET, None).await;
    assert_eq!(status, 200);
    let listed = listing["data"].as_array().unwrap();
    assert_eq!(listed.len(), 200);
    assert!(listed.iter().all(|k| k["readonly"] == true), "{listing}");
    let (status, deleted) = km(
        &running,
        Method::DELETE,
        Some(json!({ "pubkeys": [keys[5].public_key().to_hex()] })),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(deleted["data"][0]["status"], "error", "{deleted}");
    assert_eq!(sign_and_verify(&running, &keys[5]).await, 200);

    // Vault changes: one key added, one deleted, the bad secret fixed.
    let added = random_key();
    bao.put_secret("validators/sub/added", json!({ "value": key_hex(&added) }))
        .await;
    bao.call_ok(
        Method::DELETE,
        "secret/metadata/validators/key-001",
        json!(null),
    )
    .await;
    let fixed = random_key();
    bao.put_secret("validators/not-a-key", json!({ "value": key_hex(&fixed) }))
        .await;
    let status = reload(&running).await;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["added"], 2, "{status}");
    assert_eq!(status["removed"], 1, "{status}");
    assert_eq!(sign_and_verify(&running, &added).await, 200);
    assert_eq!(sign_and_verify(&running, &fixed).await, 200);
    assert_eq!(sign_and_verify(&running, &keys[1]).await, 404);
    assert!(vault_failures(&running).is_empty());
    running.shutdown().await;
}

/// AppRole login instead of a token file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bulk_source_logs_in_with_approle() {
    let Some(bao) = Bao::dev().await else {
        return;
    };
    let keys: Vec<SecretKey> = (0..3).map(|_| random_key()).collect();
    for (i, sk) in keys.iter().enumerate() {
        bao.put_secret(&format!("validators/k{i}"), json!({ "value": key_hex(sk) }))
            .await;
    }
    let (role_id, secret_id) = bao.approle_reading("validators").await;
    let dir = tempfile::tempdir().unwrap();
    let secret_id_file = dir.path().join("secret-id");
    std::fs::write(&secret_id_file, secret_id).unwrap();

    let address = bao.url();
    let running = start(
        &dir.path().join("data"),
        &[
            "--vault-address",
            &address,
            "--vault-kv-path",
            "validators",
            "--vault-approle-role-id",
            &role_id,
            "--vault-approle-secret-id-file",
            secret_id_file.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(public_keys(&running).await, sorted_hex(&keys));
    assert_eq!(sign_and_verify(&running, &keys[2]).await, 200);
    running.shutdown().await;
}

/// A wrong token loads nothing, says why without the token, and turns `/healthcheck` DOWN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_loads_nothing_and_says_why() {
    let Some(bao) = Bao::dev().await else {
        return;
    };
    bao.put_secret("validators/k", json!({ "value": key_hex(&random_key()) }))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let address = bao.url();
    let started = std::time::Instant::now();
    let running = start_on_vault(dir.path(), &address, "wrong-token-0123456789", &[]).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "a refused token is not retried"
    );
    assert!(public_keys(&running).await.is_empty());
    let failures = vault_failures(&running);
    assert_eq!(failures.len(), 1, "{failures:?}");
    let reason = &failures[0].1;
    assert!(reason.contains("cannot list the keys in Vault"), "{reason}");
    assert!(
        reason.contains("403") || reason.contains("denied"),
        "{reason}"
    );
    assert!(!reason.contains("wrong-token"), "{reason}");
    let (status, health) = healthcheck(&running).await;
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["status"], "DOWN", "{health}");
    running.shutdown().await;
}

/// A Vault that does not answer: the listing is retried, then reported; `/healthcheck` is DOWN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vault_that_does_not_answer_is_retried_then_reported() {
    let dir = tempfile::tempdir().unwrap();
    let address = format!("http://127.0.0.1:{}", common::free_port());
    let started = std::time::Instant::now();
    let running = start_on_vault(
        dir.path(),
        &address,
        "some-token",
        &["--vault-timeout-ms", "500"],
    )
    .await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= std::time::Duration::from_millis(500),
        "the listing was not retried ({elapsed:?})"
    );
    let failures = vault_failures(&running);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].1.contains("cannot list the keys in Vault"));
    let (status, health) = healthcheck(&running).await;
    assert_eq!(status, 503, "{health}");
    assert_eq!(vault_check(&health)["status"], "DOWN");
    running.shutdown().await;
}

/// `type: hashicorp` key config documents read their own secret; a document naming a missing field is
/// reported by file and document while the other loads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashicorp_key_configs_read_their_secret() {
    let Some(bao) = Bao::dev().await else {
        return;
    };
    let sk = random_key();
    bao.put_secret("single", json!({ "value": key_hex(&sk) }))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let configs = dir.path().join("configs");
    std::fs::create_dir_all(&configs).unwrap();
    let document = |key_name: &str| {
        format!(
            "type: hashicorp\nserverHost: 127.0.0.1\nserverPort: {}\ntlsEnabled: false\n\
             keyPath: /v1/secret/data/single\nkeyName: {key_name}\ntoken: {}\n",
            bao.port, bao.token
        )
    };
    std::fs::write(
        configs.join("vault.yaml"),
        format!("{}---\n{}", document("value"), document("missing")),
    )
    .unwrap();
    let running = start(
        &dir.path().join("data"),
        &["--key-config-path", configs.to_str().unwrap()],
    )
    .await;
    assert_eq!(sign_and_verify(&running, &sk).await, 200);
    let failures: Vec<_> = running
        .signer
        .keys()
        .load_state()
        .failures
        .into_iter()
        .filter(|f| f.kind == SourceKind::KeyConfig)
        .collect();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].document, Some(2));
    assert!(failures[0].reason.contains("missing"), "{failures:?}");
    assert!(!failures[0].reason.contains(&bao.token));
    running.shutdown().await;
}
