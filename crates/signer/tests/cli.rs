//! The `ferrosigner` binary as an operator uses it: the quick start, bad configuration, test keystore
//! generation, offline slashing-protection import, export and prune.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

fn ferrosigner(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrosigner"))
        .args(args)
        .env_remove("FERROSIGNER_NETWORK")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn bad_configuration_exits_non_zero_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["run", "--data-dir", data, "--network", "nonet"],
            "nonet",
        ),
        (
            vec!["run", "--data-dir", data, "--http-listen-port", "99999"],
            "99999",
        ),
        (
            vec![
                "run",
                "--data-dir",
                data,
                "--keystores-path",
                "/nonexistent-dir",
            ],
            "--keystores-path",
        ),
        (
            vec!["run", "--data-dir", data, "--keystores-password-file", "/x"],
            "--keystores-path",
        ),
        (
            vec![
                "run",
                "--data-dir",
                data,
                "--slashing-protection-enabled",
                "maybe",
            ],
            "maybe",
        ),
        (
            vec![
                "run",
                "--data-dir",
                data,
                "--key-manager-token-file",
                "/nonexistent/token",
            ],
            "token",
        ),
        (vec!["run", "--bogus-flag"], "bogus"),
    ];
    for (args, mention) in cases {
        let out = ferrosigner(&args);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(stderr(&out).contains(mention), "{args:?}: {}", stderr(&out));
    }
    // a port already in use
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let out = ferrosigner(&[
        "run",
        "--data-dir",
        data,
        "--http-listen-port",
        &port,
        "--metrics-enabled",
        "false",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("binding"), "{}", stderr(&out));
}

#[test]
fn environment_variables_configure_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferrosigner"))
        .args(["run", "--data-dir", dir.path().to_str().unwrap()])
        .env("FERROSIGNER_NETWORK", "not-a-network-from-env")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not-a-network-from-env"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn generated_keystores_load_in_the_real_binary_and_sign() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let out = ferrosigner(&[
        "generate-keystores",
        "--count",
        "3",
        "--output-dir",
        keys.to_str().unwrap(),
        "--password",
        "pw",
        "--kdf",
        "insecure",
        "--seed",
        &"07".repeat(32),
        "--per-key-password-files",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let port = common::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrosigner"))
        .args([
            "run",
            "--data-dir",
            dir.path().join("data").to_str().unwrap(),
            "--metrics-enabled",
            "false",
        ])
        .args(["--http-listen-port", &port.to_string()])
        .args(["--keystores-path", keys.to_str().unwrap()])
        .args([
            "--keystores-passwords-path",
            keys.join("passwords").to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let result = rt.block_on(async {
        let client = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        for _ in 0..400 {
            if client.get(format!("{base}/healthcheck")).send().await.is_ok_and(|r| r.status() == 200) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let keys: Vec<String> = client.get(format!("{base}/api/v1/eth2/publicKeys")).send().await?.json().await?;
        let body = json!({
            "type": "RANDAO_REVEAL",
            "fork_info": {
                "fork": {"previous_version": "0x05000000", "current_version": "0x06000000", "epoch": "411392"},
                "genesis_validators_root": "0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95"
            },
            "randao_reveal": {"epoch": "411402"}
        });
        let signature = client
            .post(format!("{base}/api/v1/eth2/sign/{}", keys[0]))
            .header("Accept", "text/plain")
            .json(&body)
            .send()
            .await?
            .text()
            .await?;
        Ok::<_, reqwest::Error>((keys, signature))
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let (keys, signature) = result.unwrap();
    assert_eq!(keys.len(), 3);
    // derived from the seed: the same keys as EIP-2333 derivation at m/12381/3600/i/0/0
    let seed = hex::decode("07".repeat(32)).unwrap();
    let expected = ferrosigner_keystore::derive_secret_key(&seed, "m/12381/3600/0/0/0")
        .unwrap()
        .public_key()
        .to_hex();
    assert!(keys.contains(&expected));
    assert!(
        signature.starts_with("0x") && signature.len() == 194,
        "{signature}"
    );
}

fn interchange(pubkey: &str) -> Value {
    json!({
        "metadata": {
            "interchange_format_version": "5",
            "genesis_validators_root": "0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95"
        },
        "data": [{
            "pubkey": pubkey,
            "signed_blocks": [{"slot": "81952", "signing_root": format!("0x{}", "4f".repeat(32))}, {"slot": "81951"}],
            "signed_attestations": [
                {"source_epoch": "2290", "target_epoch": "3007", "signing_root": format!("0x{}", "58".repeat(32))},
                {"source_epoch": "2290", "target_epoch": "3008"}
            ]
        }]
    })
}

fn slashing_cli_round_trip(db_args: &[&str], dir: &Path) {
    let pubkey = common::secret(&format!("0x{}", "61".repeat(32)))
        .public_key()
        .to_hex();
    let file = dir.join("in.json");
    std::fs::write(&file, interchange(&pubkey).to_string()).unwrap();
    let mut import = vec!["slashing-protection", "import", file.to_str().unwrap()];
    import.extend_from_slice(db_args);
    let out = ferrosigner(&import);
    assert!(out.status.success(), "{}", stderr(&out));

    let exported = dir.join("out.json");
    let mut export = vec!["slashing-protection", "export", exported.to_str().unwrap()];
    export.extend_from_slice(db_args);
    let out = ferrosigner(&export);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&exported).unwrap();
    let value: Value = serde_json::from_str(&text).unwrap();
    let record = &value["data"][0];
    assert_eq!(record["pubkey"], pubkey);
    let slots: Vec<&str> = record["signed_blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["slot"].as_str().unwrap())
        .collect();
    assert!(
        slots.contains(&"81952") && slots.contains(&"81951"),
        "{slots:?}"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&exported).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    // a malformed file fails and changes nothing
    let bad = dir.join("bad.json");
    std::fs::write(
        &bad,
        "{\"metadata\": {\"interchange_format_version\": \"4\"}, \"data\": []}",
    )
    .unwrap();
    let mut import_bad = vec!["slashing-protection", "import", bad.to_str().unwrap()];
    import_bad.extend_from_slice(db_args);
    let out = ferrosigner(&import_bad);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("nothing was imported"),
        "{}",
        stderr(&out)
    );

    let mut prune = vec!["slashing-protection", "prune", "--epochs-to-keep", "1"];
    prune.extend_from_slice(db_args);
    let out = ferrosigner(&prune);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = ferrosigner(&export);
    assert!(out.status.success(), "{}", stderr(&out));
    let after: Value = serde_json::from_str(&std::fs::read_to_string(&exported).unwrap()).unwrap();
    // protection survives pruning: the highest block and attestation are still exported
    let after_record = &after["data"][0];
    assert!(
        after_record["signed_blocks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["slot"] == "81952"),
        "{after}"
    );
    assert!(
        after_record["signed_attestations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["target_epoch"] == "3008"),
        "{after}"
    );
}

#[test]
fn slashing_protection_cli_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    slashing_cli_round_trip(&["--data-dir", data.to_str().unwrap()], dir.path());
    assert!(data.join("slashing-protection.sqlite").exists());
}

#[test]
fn slashing_protection_cli_on_postgres() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(url) = rt.block_on(common::fresh_postgres_db()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    slashing_cli_round_trip(&["--slashing-protection-db-url", &url], dir.path());
}

#[test]
fn no_form_of_a_database_password_reaches_debug_output_or_errors() {
    for url in [
        "postgres://alice:s3cret-pw@127.0.0.1:1/db",
        "postgres://alice@127.0.0.1:1/db?password=s3cret-pw&connect_timeout=1",
        "postgresql://127.0.0.1:1/db?user=alice&password=s3cret-pw&connect_timeout=1",
    ] {
        let args = common::run_args(&["--slashing-protection-db-url", url]);
        let debug = format!("{args:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(debug.contains("alice@127.0.0.1:1/db"), "{debug}");
        // Nothing listens on port 1: the start-up error names the database without its password.
        let dir = tempfile::tempdir().unwrap();
        let out = ferrosigner(&[
            "run",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--http-listen-port",
            "0",
            "--slashing-protection-db-url",
            url,
        ]);
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(!err.contains("s3cret"), "{err}");
        assert!(err.contains("alice@127.0.0.1:1/db"), "{err}");
    }
}
