//! The Keymanager API, `/reload` and `/healthcheck` through a real socket: auth, import, delete, restarts,
//! slashing history round trips, concurrency with signing.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{GVR, TestSigner, block, key, keystore_json, statuses};
use ferrosigner_bls::SecretKey;
use ferrosigner_keystore::{Kdf, Keystore};
use serde_json::{Value, json};

fn token(signer: &TestSigner) -> String {
    std::fs::read_to_string(signer.running.token_file.as_ref().unwrap()).unwrap()
}

async fn km(signer: &TestSigner, method: reqwest::Method, body: Option<Value>) -> (u16, Value) {
    common::km(&signer.running, method, body).await
}

#[tokio::test]
async fn auth_is_required_and_the_token_file_is_private() {
    let signer = TestSigner::start(&[], &[]).await;
    let token_file = signer.running.token_file.clone().unwrap();
    assert_eq!(
        std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(token(&signer).len(), 64, "256-bit hex token");

    let url = signer.url("/eth/v1/keystores");
    let response = signer.client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.json::<Value>().await.unwrap()["error"].is_string());
    let response = signer
        .client
        .get(&url)
        .bearer_auth("0".repeat(64))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let response = signer
        .client
        .delete(&url)
        .bearer_auth("nope")
        .json(&json!({"pubkeys": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let response = signer
        .client
        .get(&url)
        .header("Authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let (status, body) = km(&signer, reqwest::Method::GET, None).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"data": []}));
    signer.running.shutdown().await;
}

#[tokio::test]
async fn keymanager_can_be_disabled() {
    let signer = TestSigner::start(&[], &["--key-manager-api-enabled", "false"]).await;
    assert!(signer.running.token_file.is_none());
    let response = signer
        .client
        .get(signer.url("/eth/v1/keystores"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    signer.running.shutdown().await;
}

#[tokio::test]
async fn import_statuses_persistence_and_restart() {
    let external = key(1);
    let signer = TestSigner::start(std::slice::from_ref(&external), &[]).await;
    let (a, b) = (key(2), key(3));
    let body = json!({
        "keystores": [keystore_json(&a, "pa"), keystore_json(&b, "pb"), keystore_json(&a, "pa"),
                      keystore_json(&external, "px"), "{\"not\": \"a keystore\"}"],
        "passwords": ["pa", "hunter2-not-it", "pa", "px", "x"],
    });
    let (status, response) = km(&signer, reqwest::Method::POST, Some(body)).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(
        statuses(&response),
        ["imported", "error", "duplicate", "duplicate", "error"]
    );
    for d in &response["data"].as_array().unwrap()[..] {
        assert!(
            !d["message"].as_str().unwrap_or("").contains("hunter2"),
            "password echoed: {d}"
        );
    }

    // the imported key signs at once and is stored 0600
    let (status, _) = signer.sign(&a.public_key().to_hex(), &block(100, 1)).await;
    assert_eq!(status, 200);
    let stored = signer
        .dir
        .path()
        .join("data/keystores")
        .join(format!("{}.json", a.public_key().to_hex()));
    assert_eq!(
        std::fs::metadata(&stored).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(stored.with_extension("txt"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    let (_, list) = km(&signer, reqwest::Method::GET, None).await;
    let mut listed: Vec<(String, bool)> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["validating_pubkey"].as_str().unwrap().to_owned(),
                k["readonly"].as_bool().unwrap(),
            )
        })
        .collect();
    listed.sort();
    let mut expected = vec![
        (a.public_key().to_hex(), false),
        (external.public_key().to_hex(), true),
    ];
    expected.sort();
    assert_eq!(listed, expected);

    // malformed requests: 400, nothing changes
    for bad in [
        json!({"keystores": [keystore_json(&b, "pb")], "passwords": []}),
        json!({"keystores": "x"}),
        json!([]),
        json!({"keystores": [], "passwords": "hunter2-in-the-wrong-place"}),
    ] {
        let (status, body) = km(&signer, reqwest::Method::POST, Some(bad)).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            !body.to_string().contains("hunter2"),
            "the error echoes a password: {body}"
        );
    }
    let (status, body) = km(
        &signer,
        reqwest::Method::POST,
        Some(json!({"keystores": [], "passwords": []})),
    )
    .await;
    assert_eq!((status, body), (200, json!({"data": []})));

    // restart on the same data dir: the imported key comes back
    let data = signer.dir.path().join("data");
    signer.running.shutdown().await;
    let args = common::local_args(&data, &[]);
    let running = ferrosigner::start(args).await.unwrap();
    running.wait_keys_loaded().await;
    assert!(
        running
            .signer
            .keys()
            .get(a.public_key().as_bytes())
            .is_some()
    );
    assert_eq!(running.signer.keys().len(), 1);
    running.shutdown().await;
}

#[tokio::test]
async fn a_bad_interchange_fails_the_whole_import() {
    let signer = TestSigner::start(&[], &[]).await;
    let a = key(4);
    for interchange in ["not json", "{\"metadata\": {}}", &json!({
        "metadata": {"interchange_format_version": "5", "genesis_validators_root": GVR},
        "data": [{"pubkey": a.public_key().to_hex(), "signed_blocks": [{"slot": "not a number"}], "signed_attestations": []}]
    }).to_string()] {
        let body = json!({"keystores": [keystore_json(&a, "p")], "passwords": ["p"], "slashing_protection": interchange});
        let (status, response) = km(&signer, reqwest::Method::POST, Some(body)).await;
        assert_eq!(status, 400, "{interchange}: {response}");
        assert!(response["error"].is_string());
    }
    let (_, list) = km(&signer, reqwest::Method::GET, None).await;
    assert_eq!(list, json!({"data": []}));
    assert!(
        !signer
            .dir
            .path()
            .join("data/keystores")
            .join(format!("{}.json", a.public_key().to_hex()))
            .exists()
    );
    let (status, _) = signer.sign(&a.public_key().to_hex(), &block(5, 1)).await;
    assert_eq!(status, 404);
    signer.running.shutdown().await;
}

#[tokio::test]
async fn delete_export_reimport_keeps_protection() {
    let external = key(5);
    let signer = TestSigner::start(std::slice::from_ref(&external), &[]).await;
    let a = key(6);
    let pk = a.public_key().to_hex();
    let (_, r) = km(
        &signer,
        reqwest::Method::POST,
        Some(json!({"keystores": [keystore_json(&a, "p")], "passwords": ["p"]})),
    )
    .await;
    assert_eq!(statuses(&r), ["imported"]);
    assert_eq!(signer.sign(&pk, &block(1000, 1)).await.0, 200);

    let never_seen = key(7).public_key().to_hex();
    let (status, r) = km(
        &signer,
        reqwest::Method::DELETE,
        Some(json!({"pubkeys": [pk, never_seen, external.public_key().to_hex(), "0x1234"]})),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(statuses(&r), ["deleted", "not_found", "error", "error"]);
    let exported: Value =
        serde_json::from_str(r["slashing_protection"].as_str().expect("a JSON string")).unwrap();
    assert_eq!(exported["metadata"]["interchange_format_version"], "5");
    let data = exported["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["pubkey"], pk);
    assert_eq!(data[0]["signed_blocks"][0]["slot"], "1000");

    // gone: no signing, no files; deleting again reports its history
    assert_eq!(signer.sign(&pk, &block(1001, 1)).await.0, 404);
    assert!(
        !signer
            .dir
            .path()
            .join("data/keystores")
            .join(format!("{pk}.json"))
            .exists()
    );
    assert!(
        !signer
            .dir
            .path()
            .join("data/keystores")
            .join(format!("{pk}.txt"))
            .exists()
    );
    let (_, r) = km(
        &signer,
        reqwest::Method::DELETE,
        Some(json!({"pubkeys": [pk]})),
    )
    .await;
    assert_eq!(statuses(&r), ["not_active"]);

    // re-import into a fresh signer (fresh database) with the exported history: the slashable block is refused
    let fresh = TestSigner::start(&[], &[]).await;
    let body = json!({"keystores": [keystore_json(&a, "p")], "passwords": ["p"], "slashing_protection": exported.to_string()});
    let (status, r) = km(&fresh, reqwest::Method::POST, Some(body)).await;
    assert_eq!((status, statuses(&r)), (200, vec!["imported".to_owned()]));
    let (status, refused) = fresh.sign(&pk, &block(1000, 9)).await;
    assert_eq!(status, 412, "{refused}");
    assert!(refused["error"].is_string());
    assert_eq!(fresh.sign(&pk, &block(1001, 9)).await.0, 200);

    // and re-importing into the original signer re-enables the key with its history intact
    let (_, r) = km(
        &signer,
        reqwest::Method::POST,
        Some(json!({"keystores": [keystore_json(&a, "p")], "passwords": ["p"]})),
    )
    .await;
    assert_eq!(statuses(&r), ["imported"]);
    assert_eq!(signer.sign(&pk, &block(1000, 9)).await.0, 412);
    assert_eq!(signer.sign(&pk, &block(1002, 9)).await.0, 200);

    // a deleted key stays gone after a restart
    let (_, r) = km(
        &signer,
        reqwest::Method::DELETE,
        Some(json!({"pubkeys": [pk]})),
    )
    .await;
    assert_eq!(statuses(&r), ["deleted"]);
    let data_dir = signer.dir.path().join("data");
    signer.running.shutdown().await;
    let args = common::local_args(&data_dir, &[]);
    let running = ferrosigner::start(args).await.unwrap();
    running.wait_keys_loaded().await;
    assert!(running.signer.keys().is_empty());
    running.shutdown().await;
    fresh.running.shutdown().await;
}

#[tokio::test]
async fn signing_continues_during_a_large_import() {
    let signer_key = key(8);
    let signer = TestSigner::start(std::slice::from_ref(&signer_key), &[]).await;
    // scrypt keystores (the EIP-2335 default KDF) make the import take seconds
    let imports: Vec<SecretKey> = (20..23).map(key).collect();
    let keystores: Vec<String> = imports
        .iter()
        .map(|k| {
            Keystore::encrypt(k, "p", Kdf::Scrypt { log2_n: 18 }, "")
                .unwrap()
                .to_json()
        })
        .collect();
    let body = json!({"keystores": keystores, "passwords": vec!["p"; imports.len()]});
    let import = {
        let client = signer.client.clone();
        let url = signer.url("/eth/v1/keystores");
        let token = token(&signer);
        tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        })
    };
    let pk = signer_key.public_key().to_hex();
    let mut signed_during_import = 0;
    let mut slot = 1;
    while !import.is_finished() {
        let (status, body) = signer.sign(&pk, &block(slot, 1)).await;
        assert_eq!(status, 200, "{body}");
        slot += 1;
        if !import.is_finished() {
            signed_during_import += 1;
        }
    }
    let response = import.await.unwrap();
    assert_eq!(response.status(), 200);
    let r: Value = response.json().await.unwrap();
    assert_eq!(statuses(&r), ["imported", "imported", "imported"]);
    assert!(
        signed_during_import >= 5,
        "signing stalled during the import: {signed_during_import} signatures"
    );
    signer.running.shutdown().await;
}

fn write_external(dir: &Path, name: &str, sk: &SecretKey) {
    std::fs::write(
        dir.join(format!("{name}.json")),
        keystore_json(sk, "test password"),
    )
    .unwrap();
}

async fn reload_and_wait(signer: &TestSigner) -> Value {
    let response = signer
        .client
        .post(signer.url("/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    for _ in 0..500 {
        let status: Value = signer.get_json("/reload").await;
        if status["status"] != "running" {
            return status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("reload did not finish");
}

#[tokio::test]
async fn reload_adds_and_drops_external_keys() {
    let first = key(9);
    let signer = TestSigner::start(std::slice::from_ref(&first), &[]).await;
    let idle: Value = signer.get_json("/reload").await;
    assert_eq!(idle["status"], "idle");
    let dir = signer.dir.path().join("keys");
    let second = key(10);
    write_external(&dir, "added", &second);
    let status = reload_and_wait(&signer).await;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["added"], 1);
    assert!(
        signer
            .running
            .signer
            .keys()
            .get(second.public_key().as_bytes())
            .is_some()
    );

    std::fs::remove_file(dir.join("keystore-0.json")).unwrap();
    std::fs::write(dir.join("broken.json"), "{").unwrap();
    let status = reload_and_wait(&signer).await;
    assert_eq!(status["status"], "completed_with_errors", "{status}");
    assert_eq!(status["removed"], 1);
    assert!(
        status["lastError"]
            .as_str()
            .unwrap()
            .contains("broken.json")
    );
    assert!(
        signer
            .running
            .signer
            .keys()
            .get(first.public_key().as_bytes())
            .is_none()
    );
    assert_eq!(
        signer
            .sign(&first.public_key().to_hex(), &block(1, 1))
            .await
            .0,
        404
    );
    signer.running.shutdown().await;
}

#[tokio::test]
async fn healthcheck_is_down_until_keys_are_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    for i in 0..2u8 {
        let ks = Keystore::encrypt(&key(30 + i), "p", Kdf::Scrypt { log2_n: 18 }, "").unwrap();
        std::fs::write(keys.join(format!("k{i}.json")), ks.to_json()).unwrap();
    }
    std::fs::write(dir.path().join("pw"), "p").unwrap();
    let args = common::local_args(
        &dir.path().join("data"),
        &[
            "--keystores-path",
            keys.to_str().unwrap(),
            "--keystores-password-file",
            dir.path().join("pw").to_str().unwrap(),
            "--signing-threads",
            "1",
        ],
    );
    let running = ferrosigner::start(args).await.unwrap();
    let client = reqwest::Client::new();
    let url = format!("http://{}/healthcheck", running.http_addr);
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "DOWN");
    assert_eq!(body["outcome"], "DOWN");
    // a key not loaded yet gets 503, not 404
    let sign = client
        .post(format!(
            "http://{}/api/v1/eth2/sign/{}",
            running.http_addr,
            key(30).public_key().to_hex()
        ))
        .json(&block(1, 1))
        .send()
        .await
        .unwrap();
    assert_eq!(sign.status(), 503);
    running.wait_keys_loaded().await;
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    running.shutdown().await;
}

#[tokio::test]
async fn deleting_a_key_that_never_signed_exports_an_empty_history() {
    let signer = TestSigner::start(&[], &[]).await;
    let a = key(40);
    let (_, r) = km(
        &signer,
        reqwest::Method::POST,
        Some(json!({"keystores": [keystore_json(&a, "p")], "passwords": ["p"]})),
    )
    .await;
    assert_eq!(statuses(&r), ["imported"]);
    let (status, r) = km(
        &signer,
        reqwest::Method::DELETE,
        Some(json!({"pubkeys": [a.public_key().to_hex()]})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(statuses(&r), ["deleted"]);
    let exported: Value = serde_json::from_str(r["slashing_protection"].as_str().unwrap()).unwrap();
    assert_eq!(exported["metadata"]["interchange_format_version"], "5");
    assert!(
        exported["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["signed_blocks"].as_array().is_none_or(|b| b.is_empty()))
    );
    signer.running.shutdown().await;
}
