//! Web3Signer key config files (`--key-config-path`) through a real signer on real sockets: every type, several
//! documents per file, relative and absolute paths, failures named by file and document, read-only keys in the
//! Keymanager API, `/reload`, duplicates, keys deleted earlier, `/healthcheck` and metrics, signatures checked
//! against the expected public keys.

mod common;
mod processes;

use std::path::{Path, PathBuf};

use common::{
    healthcheck, key, keystore_json, km, reload, run_args, sign_randao_verified as sign_and_verify,
    start_running as start, statuses, sub_check, testdata,
};
use ferrosigner::Running;
use ferrosigner::keys::{LoadFailure, SourceKind};
use ferrosigner_bls::{PublicKey, SecretKey};
use reqwest::Method;
use serde_json::json;

/// The EIP-2335 test vector keystore (pbkdf2) and its key.
const VECTOR_PUBKEY: &str = "0x9612d7a727c9d0a22e185a1c768478dfe919cada9266988cb32359c11f2b7b27f4ae4040902382ae2910c15e2b420d07";
const VECTOR_PASSWORD: &str = "𝔱𝔢𝔰𝔱𝔭𝔞𝔰𝔰𝔴𝔬𝔯𝔡🔑";

fn hex_secret(sk: &SecretKey) -> String {
    format!("0x{}", hex::encode(*sk.to_bytes()))
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn raw_doc(sk: &SecretKey) -> String {
    format!(
        "type: \"file-raw\"\nkeyType: \"BLS\"\nprivateKey: \"{}\"\n",
        hex_secret(sk)
    )
}

/// A pbkdf2 keystore of `sk` and its password file, at `dir/<name>.json` and `dir/<name>.txt`.
fn write_keystore(dir: &Path, name: &str, sk: &SecretKey) -> (PathBuf, PathBuf) {
    let keystore = dir.join(format!("{name}.json"));
    let password = dir.join(format!("{name}.txt"));
    write(&keystore, &keystore_json(sk, &format!("pw-{name}")));
    write(&password, &format!("pw-{name}\n"));
    (keystore, password)
}

/// The key config failures, as `(file name, document, reason)`.
fn config_failures(running: &Running) -> Vec<(String, Option<usize>, String)> {
    let mut found: Vec<_> = running
        .signer
        .keys()
        .load_state()
        .failures
        .into_iter()
        .filter(|f: &LoadFailure| f.kind == SourceKind::KeyConfig)
        .map(|f| {
            (
                f.file.file_name().unwrap().to_string_lossy().into_owned(),
                f.document,
                f.reason,
            )
        })
        .collect();
    found.sort();
    found
}

fn failure_of<'a>(
    failures: &'a [(String, Option<usize>, String)],
    file: &str,
    document: Option<usize>,
) -> &'a str {
    &failures
        .iter()
        .find(|(f, d, _)| f == file && *d == document)
        .unwrap_or_else(|| panic!("no failure for {file} {document:?}: {failures:#?}"))
        .2
}

async fn listed(running: &Running) -> Vec<(String, bool)> {
    let (status, body) = km(running, Method::GET, None).await;
    assert_eq!(status, 200, "{body}");
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["validating_pubkey"].as_str().unwrap().to_owned(),
                k["readonly"].as_bool().unwrap(),
            )
        })
        .collect()
}

async fn metrics(running: &Running) -> String {
    reqwest::get(format!("http://{}/metrics", running.metrics_addr.unwrap()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn every_type_loads_or_is_refused_by_file_and_document() {
    let dir = tempfile::tempdir().unwrap();
    let configs = dir.path().join("configs");
    let elsewhere = dir.path().join("elsewhere");
    let (raw1, raw2, rel, abs, multi) = (key(31), key(32), key(33), key(34), key(35));

    // Two raw keys in one file, the second unquoted as people write it by hand.
    write(
        &configs.join("raw.yaml"),
        &format!(
            "{}---\ntype: file-raw\nprivateKey: {}\n",
            raw_doc(&raw1),
            hex_secret(&raw2)
        ),
    );
    // A keystore with paths relative to the config file's directory.
    write_keystore(&configs.join("keystores"), "rel", &rel);
    write(
        &configs.join("relative.yaml"),
        "type: file-keystore\nkeystoreFile: keystores/rel.json\nkeystorePasswordFile: keystores/rel.txt\n",
    );
    // A keystore elsewhere, by absolute paths (`.yml`).
    let (ks, pw) = write_keystore(&elsewhere, "abs", &abs);
    write(
        &configs.join("absolute.yml"),
        &format!(
            "type: \"file-keystore\"\nkeystoreFile: \"{}\"\nkeystorePasswordFile: \"{}\"\n",
            ks.display(),
            pw.display()
        ),
    );
    // The EIP-2335 test vector (pbkdf2), its password in a file beside the config.
    write(&configs.join("vector.txt"), VECTOR_PASSWORD);
    write(
        &configs.join("vector.yaml"),
        &format!(
            "type: file-keystore\nkeystoreFile: {}\nkeystorePasswordFile: vector.txt\n",
            testdata()
                .join("keystores/eip2335/keystore-pbkdf2.json")
                .display()
        ),
    );
    // One good document among bad ones.
    write(
        &configs.join("mixed.yaml"),
        &format!(
            "{}---\ntype: file-raw\nprivateKey: \"0x1234\"\n---\ntype: file-keystore\nkeystoreFile: a.json\n",
            raw_doc(&multi)
        ),
    );
    write(
        &configs.join("vault.yaml"),
        &format!(
            "type: hashicorp\nserverHost: 127.0.0.1\nserverPort: {}\ntlsEnabled: false\ntimeout: 200\n\
             keyPath: /v1/secret/data/k\ntoken: s.TOKEN\n",
            common::free_port()
        ),
    );
    write(
        &configs.join("aws.yaml"),
        "type: aws-secret\nauthenticationMode: ENVIRONMENT\nsecretName: s\nregion: us-east-1\n",
    );
    write(
        &configs.join("secp.yaml"),
        &format!(
            "type: file-raw\nkeyType: SECP256K1\nprivateKey: \"{}\"\n",
            hex_secret(&key(36))
        ),
    );
    write(
        &configs.join("broken.yaml"),
        "type: file-raw\nprivateKey: [\n",
    );
    let (ks, _) = write_keystore(&elsewhere, "wrong", &key(37));
    write(&elsewhere.join("wrong-password.txt"), "not the password");
    write(
        &configs.join("wrong-password.yaml"),
        &format!(
            "type: file-keystore\nkeystoreFile: {}\nkeystorePasswordFile: {}\n",
            ks.display(),
            elsewhere.join("wrong-password.txt").display()
        ),
    );
    write(
        &configs.join("missing.yaml"),
        "type: file-keystore\nkeystoreFile: nowhere.json\nkeystorePasswordFile: nowhere.txt\n",
    );
    // Not key config files.
    write(&configs.join(".hidden.yaml"), &raw_doc(&key(38)));
    write(&configs.join("notes.txt"), &raw_doc(&key(39)));

    let data = dir.path().join("data");
    let running = start(&data, &["--key-config-path", configs.to_str().unwrap()]).await;

    let expected: Vec<String> = [&raw1, &raw2, &rel, &abs, &multi]
        .iter()
        .map(|sk| sk.public_key().to_hex())
        .chain([VECTOR_PUBKEY.to_owned()])
        .collect();
    for pubkey in &expected {
        assert_eq!(sign_and_verify(&running, pubkey).await, 200, "{pubkey}");
    }
    for absent in [key(36), key(37), key(38), key(39)] {
        assert_eq!(
            sign_and_verify(&running, &absent.public_key().to_hex()).await,
            404
        );
    }

    let failures = config_failures(&running);
    assert_eq!(failures.len(), 8, "{failures:#?}");
    assert!(failure_of(&failures, "mixed.yaml", Some(2)).contains("`privateKey` must be 32 bytes"));
    assert!(
        failure_of(&failures, "mixed.yaml", Some(3))
            .contains("missing field `keystorePasswordFile`")
    );
    // No Vault answers there (tests/vault_keys.rs reads real ones).
    assert!(
        failure_of(&failures, "vault.yaml", Some(1)).contains("unavailable for secret/data/k"),
        "{failures:#?}"
    );
    assert!(
        failure_of(&failures, "aws.yaml", Some(1))
            .starts_with("key config type `aws-secret` is not supported by ferrosigner")
    );
    assert!(failure_of(&failures, "secp.yaml", Some(1)).contains("SECP256K1 is not supported"));
    assert!(failure_of(&failures, "broken.yaml", None).contains("not valid YAML"));
    let wrong = failure_of(&failures, "wrong-password.yaml", Some(1));
    assert!(wrong.contains("wrong.json"), "{wrong}");
    let missing = failure_of(&failures, "missing.yaml", Some(1));
    assert!(
        missing.contains("nowhere.json") && missing.contains("cannot read keystore"),
        "{missing}"
    );
    for (_, _, reason) in &failures {
        for sk in [key(36), key(37)] {
            assert!(!reason.contains(&hex_secret(&sk)[2..]), "{reason}");
        }
        assert!(!reason.contains("s.TOKEN"), "{reason}");
    }

    // Every key is listed read-only and cannot be deleted through the Keymanager API.
    let mut keys = listed(&running).await;
    keys.sort();
    let mut want: Vec<(String, bool)> = expected.iter().map(|k| (k.clone(), true)).collect();
    want.sort();
    assert_eq!(keys, want);
    let (status, body) = km(
        &running,
        Method::DELETE,
        Some(json!({"pubkeys": [raw1.public_key().to_hex(), VECTOR_PUBKEY]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(statuses(&body), ["error", "error"]);
    assert!(
        body["data"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("read-only key"),
        "{body}"
    );
    assert_eq!(
        sign_and_verify(&running, &raw1.public_key().to_hex()).await,
        200
    );

    // The health check counts them as a source of their own; loading finished, so the signer is UP.
    let (status, health) = healthcheck(&running).await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["checks"][1]["id"], "keys-check");
    assert_eq!(health["checks"][1]["data"]["keys-loaded"], 6);
    assert_eq!(health["checks"][1]["data"]["error-count"], 8);
    let configs_check = sub_check(&health, "config-files-loading");
    assert_eq!(configs_check["status"], "DOWN", "{health}");
    assert_eq!(configs_check["data"]["keys-loaded"], 6);
    assert_eq!(configs_check["data"]["error-count"], 8);
    assert_eq!(
        sub_check(&health, "imported-keystores-loading")["status"],
        "UP"
    );

    let text = metrics(&running).await;
    for line in [
        "ferrosigner_keys_loaded{source=\"key_config\"} 6",
        "ferrosigner_keys_loaded{source=\"managed\"} 0",
        "signing_signers_loaded_count 6",
    ] {
        assert!(text.contains(line), "{line}\n{text}");
    }

    // A restart takes the keystores from the key cache and loads the same keys.
    running.shutdown().await;
    let running = start(&data, &["--key-config-path", configs.to_str().unwrap()]).await;
    assert!(running.signer.keys().load_state().from_cache >= 3);
    for pubkey in &expected {
        assert_eq!(sign_and_verify(&running, pubkey).await, 200, "{pubkey}");
    }
    assert_eq!(config_failures(&running).len(), 8);
    running.shutdown().await;
}

#[tokio::test]
async fn reload_adds_new_documents_and_drops_those_gone() {
    let dir = tempfile::tempdir().unwrap();
    let configs = dir.path().join("configs");
    let (a, b1, b2, c, d) = (key(41), key(42), key(43), key(44), key(45));
    write(&configs.join("a.yaml"), &raw_doc(&a));
    write(
        &configs.join("b.yaml"),
        &format!("{}---\n{}", raw_doc(&b1), raw_doc(&b2)),
    );
    let running = start(
        &dir.path().join("data"),
        &["--key-config-path", configs.to_str().unwrap()],
    )
    .await;
    for sk in [&a, &b1, &b2] {
        assert_eq!(
            sign_and_verify(&running, &sk.public_key().to_hex()).await,
            200
        );
    }

    // A new file (a keystore, through the decryption routine), a file removed, a document removed, a bad
    // file added.
    write_keystore(&configs.join("ks"), "c", &c);
    write(
        &configs.join("c.yaml"),
        "type: file-keystore\nkeystoreFile: ks/c.json\nkeystorePasswordFile: ks/c.txt\n",
    );
    std::fs::remove_file(configs.join("a.yaml")).unwrap();
    write(&configs.join("b.yaml"), &raw_doc(&b1));
    write(&configs.join("bad.yaml"), "type: file-raw\n");
    let status = reload(&running).await;
    assert_eq!(status["status"], "completed_with_errors", "{status}");
    assert_eq!(status["added"], 1, "{status}");
    assert_eq!(status["removed"], 2, "{status}");
    let last = status["lastError"].as_str().unwrap();
    assert!(
        last.contains("bad.yaml document 1") && last.contains("missing field `privateKey`"),
        "{last}"
    );
    assert_eq!(
        sign_and_verify(&running, &c.public_key().to_hex()).await,
        200
    );
    assert_eq!(
        sign_and_verify(&running, &b1.public_key().to_hex()).await,
        200
    );
    assert_eq!(
        sign_and_verify(&running, &a.public_key().to_hex()).await,
        404
    );
    assert_eq!(
        sign_and_verify(&running, &b2.public_key().to_hex()).await,
        404
    );
    let (_, health) = healthcheck(&running).await;
    let check = sub_check(&health, "config-files-loading");
    assert_eq!(check["data"]["keys-loaded"], 2, "{health}");
    assert_eq!(check["data"]["error-count"], 1, "{health}");

    // Fixing the bad file: it loads, and the error is gone from the health check.
    write(&configs.join("bad.yaml"), &raw_doc(&d));
    let status = reload(&running).await;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["added"], 1);
    assert_eq!(status["removed"], 0);
    assert_eq!(
        sign_and_verify(&running, &d.public_key().to_hex()).await,
        200
    );
    let (_, health) = healthcheck(&running).await;
    let check = sub_check(&health, "config-files-loading");
    assert_eq!(check["status"], "UP", "{health}");
    assert_eq!(check["data"]["keys-loaded"], 3, "{health}");
    assert_eq!(health["checks"][1]["data"]["error-count"], 0, "{health}");

    // A file that can no longer be parsed keeps the keys it loaded (and says why).
    write(&configs.join("b.yaml"), "type: [\n");
    let status = reload(&running).await;
    assert_eq!(status["status"], "completed_with_errors", "{status}");
    assert_eq!(status["removed"], 0, "{status}");
    assert_eq!(
        sign_and_verify(&running, &b1.public_key().to_hex()).await,
        200
    );
    running.shutdown().await;
}

#[tokio::test]
async fn duplicates_load_once_and_deleted_keys_stay_unloaded() {
    let dir = tempfile::tempdir().unwrap();
    let configs = dir.path().join("configs");
    std::fs::create_dir_all(&configs).unwrap();
    let external = dir.path().join("keystores");
    let data = dir.path().join("data");
    let (deleted, twice, shared) = (key(51), key(52), key(53));
    let password_file = common::write_keystores(&external, std::slice::from_ref(&shared), "pw");
    let flags = [
        "--key-config-path",
        configs.to_str().unwrap(),
        "--keystores-path",
        external.to_str().unwrap(),
        "--keystores-password-file",
        password_file.to_str().unwrap(),
    ];

    // A key imported and deleted through the Keymanager API is disabled in the slashing database.
    let running = start(&data, &flags).await;
    let (status, body) = km(
        &running,
        Method::POST,
        Some(json!({"keystores": [keystore_json(&deleted, "p")], "passwords": ["p"]})),
    )
    .await;
    assert_eq!(statuses(&body), ["imported"], "{status} {body}");
    let (_, body) = km(
        &running,
        Method::DELETE,
        Some(json!({"pubkeys": [deleted.public_key().to_hex()]})),
    )
    .await;
    assert_eq!(statuses(&body), ["deleted"], "{body}");

    // Key config files naming it, one key in two files, and the external directory's key again.
    write(&configs.join("deleted.yaml"), &raw_doc(&deleted));
    write(&configs.join("first.yaml"), &raw_doc(&twice));
    write(&configs.join("second.yaml"), &raw_doc(&twice));
    write(&configs.join("shared.yaml"), &raw_doc(&shared));
    let status = reload(&running).await;
    assert_eq!(status["status"], "completed_with_errors", "{status}");
    assert_eq!(status["added"], 1, "{status}");
    let failures = config_failures(&running);
    assert_eq!(failures.len(), 3, "{failures:#?}");
    assert!(failure_of(&failures, "deleted.yaml", Some(1)).contains("disabled"));
    assert_eq!(
        sign_and_verify(&running, &deleted.public_key().to_hex()).await,
        404
    );
    assert_eq!(
        sign_and_verify(&running, &twice.public_key().to_hex()).await,
        200
    );
    assert_eq!(
        sign_and_verify(&running, &shared.public_key().to_hex()).await,
        200
    );
    running.shutdown().await;

    // After a restart: the deleted key is still not loaded, each duplicate loads once and the other copy is
    // a failure naming both places.
    let running = start(&data, &flags).await;
    assert_eq!(
        sign_and_verify(&running, &deleted.public_key().to_hex()).await,
        404
    );
    let failures = config_failures(&running);
    assert!(failure_of(&failures, "deleted.yaml", Some(1)).contains("disabled"));
    let all = running.signer.keys().load_state().failures;
    let duplicate_of = |pk: &PublicKey| {
        all.iter()
            .filter(|f| {
                f.reason
                    .contains(&format!("key {pk} is already loaded from"))
            })
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
    };
    let dup = duplicate_of(&twice.public_key());
    assert_eq!(dup.len(), 1, "{all:#?}");
    assert!(
        dup[0].contains("first.yaml") && dup[0].contains("second.yaml"),
        "{dup:?}"
    );
    let dup = duplicate_of(&shared.public_key());
    assert_eq!(dup.len(), 1, "{all:#?}");
    assert!(
        dup[0].contains("shared.yaml") && dup[0].contains("keystore-0.json"),
        "{dup:?}"
    );
    let mut keys = listed(&running).await;
    keys.sort();
    let mut want = vec![
        (twice.public_key().to_hex(), true),
        (shared.public_key().to_hex(), true),
    ];
    want.sort();
    assert_eq!(keys, want);
    running.shutdown().await;
}

#[tokio::test]
async fn a_missing_key_config_directory_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let error = ferrosigner::start(run_args(&[
        "--data-dir",
        dir.path().join("data").to_str().unwrap(),
        "--http-listen-port",
        "0",
        "--metrics-enabled",
        "false",
        "--key-store-path",
        missing.to_str().unwrap(),
    ]))
    .await
    .err()
    .unwrap();
    assert!(
        error.to_string().contains("--key-config-path") && error.to_string().contains("missing"),
        "{error}"
    );
}

/// The real binary's log names each failure by file and document, and shows no private key, token or
/// password, even at debug level.
#[tokio::test]
async fn the_log_names_failures_and_never_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let configs = dir.path().join("configs");
    let good = key(61);
    let almost = format!("{}ab", hex_secret(&key(62)));
    write(
        &configs.join("keys.yaml"),
        &format!(
            "{}someUnknownField: \"value-not-logged\"\n---\ntype: file-raw\nprivateKey: \"{almost}\"\n---\n\
             type: hashicorp\nserverHost: 127.0.0.1\nserverPort: {}\ntlsEnabled: false\ntimeout: 200\n\
             keyPath: /v1/secret/data/k\ntoken: s.SECRETTOKEN\n",
            raw_doc(&good),
            common::free_port()
        ),
    );
    let (ks, _) = write_keystore(&configs, "ks", &key(63));
    write(&configs.join("wrong.txt"), "the-wrong-password");
    write(
        &configs.join("wrong.yaml"),
        &format!(
            "type: file-keystore\nkeystoreFile: {}\nkeystorePasswordFile: wrong.txt\n",
            ks.display()
        ),
    );
    write(
        &configs.join("broken.yaml"),
        &format!(
            "type: file-raw\nprivateKey: \"{}\n  : [\n",
            hex_secret(&key(64))
        ),
    );
    let log = dir.path().join("signer.log");
    let (mut child, base) = processes::spawn_signer(
        dir.path(),
        &log,
        key(60),
        &[
            "--key-config-path",
            configs.to_str().unwrap(),
            "--log-level",
            "debug",
        ],
    );
    let client = reqwest::Client::new();
    processes::wait_healthy(&client, &base, &mut child, &log).await;
    let listed: Vec<String> = client
        .get(format!("{base}/api/v1/eth2/publicKeys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(listed.contains(&good.public_key().to_hex()), "{listed:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    for named in [
        "keys.yaml",
        "wrong.yaml",
        "broken.yaml",
        "unavailable for secret/data/k",
        "someUnknownField",
    ] {
        assert!(text.contains(named), "{named} not in the log:\n{text}");
    }
    for secret in [
        hex_secret(&good)[2..].to_owned(),
        almost[2..].to_owned(),
        hex_secret(&key(64))[2..].to_owned(),
        "s.SECRETTOKEN".to_owned(),
        "the-wrong-password".to_owned(),
        "pw-ks".to_owned(),
        "value-not-logged".to_owned(),
    ] {
        assert!(!text.contains(&secret), "{secret} in the log:\n{text}");
    }
}
