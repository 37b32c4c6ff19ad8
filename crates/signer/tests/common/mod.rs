//! Shared helpers for the signer's integration tests: real keystores on disk, a real signer on 127.0.0.1:0.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use clap::Parser;
use ferrosigner::Running;
use ferrosigner::config::{Cli, Command, RunArgs};
use ferrosigner_bls::SecretKey;
use ferrosigner_keystore::{Kdf, Keystore};
use serde_json::Value;

/// The repository's testdata directory.
pub fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

/// Reads a JSON file.
pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The test key whose 32 secret bytes are all `i`.
pub fn key(i: u8) -> SecretKey {
    secret(&format!("0x{}", hex::encode([i; 32])))
}

/// An EIP-2335 keystore (fast pbkdf2) of `sk` as JSON text.
pub fn keystore_json(sk: &SecretKey, password: &str) -> String {
    Keystore::encrypt(sk, password, Kdf::Pbkdf2 { c: 16 }, "m/12381/3600/0/0/0")
        .unwrap()
        .to_json()
}

/// Calls `/eth/v1/keystores` of a running signer with its bearer token; returns status and body JSON.
pub async fn km(running: &Running, method: reqwest::Method, body: Option<Value>) -> (u16, Value) {
    let token = std::fs::read_to_string(running.token_file.as_ref().unwrap()).unwrap();
    let mut req = reqwest::Client::new()
        .request(
            method,
            format!("http://{}/eth/v1/keystores", running.http_addr),
        )
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let response = req.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// The `status` of each entry of a Keymanager answer's `data`.
pub fn statuses(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].as_str().unwrap().to_owned())
        .collect()
}

/// A secret key from `0x` hex.
pub fn secret(hex_key: &str) -> SecretKey {
    SecretKey::from_bytes(&hex::decode(hex_key.trim_start_matches("0x")).unwrap()).unwrap()
}

/// Writes one EIP-2335 keystore per secret (fast pbkdf2) into `dir`, all with `password`, and
/// `dir/../password.txt`. Returns the password file.
pub fn write_keystores(dir: &Path, secrets: &[SecretKey], password: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for (i, sk) in secrets.iter().enumerate() {
        let ks = Keystore::encrypt(
            sk,
            password,
            Kdf::Pbkdf2 { c: 16 },
            &format!("m/12381/3600/{i}/0/0"),
        )
        .unwrap();
        std::fs::write(dir.join(format!("keystore-{i}.json")), ks.to_json()).unwrap();
    }
    let password_file = dir.parent().unwrap().join("password.txt");
    std::fs::write(&password_file, password).unwrap();
    password_file
}

/// `ferrosigner run` arguments as the command line would give them.
pub fn run_args(args: &[&str]) -> RunArgs {
    let mut argv = vec!["ferrosigner", "run"];
    argv.extend_from_slice(args);
    match Cli::try_parse_from(argv).unwrap().command {
        Command::Run(args) => *args,
        _ => unreachable!(),
    }
}

/// `ferrosigner run` on `data` with free ports and no metrics listener, plus `extra` flags.
pub fn local_args(data: &Path, extra: &[&str]) -> RunArgs {
    let flags = local_flags(data, extra);
    run_args(&flags.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The flags of [`local_args`], for the binary.
pub fn local_flags(data: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "--data-dir",
        data.to_str().unwrap(),
        "--http-listen-port",
        "0",
        "--metrics-enabled",
        "false",
    ];
    args.extend_from_slice(extra);
    args.into_iter().map(str::to_owned).collect()
}

/// A signer running in this process on 127.0.0.1 with free ports, its data dir in a temp dir.
pub struct TestSigner {
    pub running: Running,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
}

impl TestSigner {
    /// Starts a signer with these secrets loaded from `--keystores-path` plus any `extra` flags.
    pub async fn start(secrets: &[SecretKey], extra: &[&str]) -> TestSigner {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let password_file = write_keystores(&keys, secrets, "test password");
        let data = dir.path().join("data");
        let mut args = vec![
            "--data-dir",
            data.to_str().unwrap(),
            "--http-listen-port",
            "0",
            "--metrics-listen-port",
            "0",
            "--keystores-path",
            keys.to_str().unwrap(),
            "--keystores-password-file",
            password_file.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let running = start_args(&args).await;
        TestSigner {
            running,
            dir,
            client: reqwest::Client::new(),
        }
    }

    /// `http://127.0.0.1:port` + path.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.running.http_addr, path)
    }

    /// GETs `path` and parses the body as JSON.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The text of the metrics listener (the signer must run with a metrics port).
    pub async fn metrics_text(&self) -> String {
        let metrics_url = format!("http://{}/metrics", self.running.metrics_addr.unwrap());
        self.client
            .get(metrics_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// POSTs a sign request with `Accept: application/json`; returns status and body JSON.
    pub async fn sign(&self, pubkey: &str, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(&format!("/api/v1/eth2/sign/{pubkey}")))
            .header("Accept", "application/json")
            .json(body)
            .send()
            .await
            .unwrap();
        json_answer(response).await
    }
}

/// The status and JSON body of `response`, which must say `Content-Type: application/json`.
pub async fn json_answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "status {status}, {content_type}: {text}"
    );
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("status {status}: body is not JSON: {text}"));
    (status, json)
}

/// Reads the interim `HTTP/1.1 100 Continue` answer (through its blank line) from `stream`.
pub async fn read_continue(stream: &mut tokio::net::TcpStream) {
    use tokio::io::AsyncReadExt;
    let mut interim = Vec::new();
    let mut byte = [0u8; 1];
    while !interim.ends_with(b"\r\n\r\n") {
        assert_eq!(
            stream.read(&mut byte).await.unwrap(),
            1,
            "closed before 100 Continue"
        );
        interim.push(byte[0]);
    }
    assert!(
        interim.starts_with(b"HTTP/1.1 100"),
        "{}",
        String::from_utf8_lossy(&interim)
    );
}

/// A fresh PostgreSQL database for this test, or `None` (with a loud notice) when PostgreSQL is unavailable
/// outside CI. Under `CI=true` a missing PostgreSQL fails the test.
pub async fn fresh_postgres_db() -> Option<String> {
    let admin_url = std::env::var("FERROSIGNER_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let connected = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls).await;
    let (client, connection) = match connected {
        Ok(c) => c,
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("PostgreSQL is required under CI=true ({admin_url}): {e}");
            }
            eprintln!("SKIPPED: PostgreSQL not reachable at {admin_url}: {e}");
            return None;
        }
    };
    tokio::spawn(connection);
    let mut suffix = [0u8; 6];
    getrandom::fill(&mut suffix).unwrap();
    let name = format!("fs_signer_test_{}", hex::encode(suffix));
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    Some(format!("{base}/{name}"))
}

/// Mainnet's genesis validators root.
pub const GVR: &str = "0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95";

/// Mainnet Electra fork_info.
pub fn fork_info() -> Value {
    serde_json::json!({
        "fork": {"previous_version": "0x04000000", "current_version": "0x05000000", "epoch": "364032"},
        "genesis_validators_root": GVR
    })
}

/// A BLOCK_V2 (Electra header) request at `slot`; `state_root_byte` varies the signing root.
pub fn block(slot: u64, state_root_byte: u8) -> Value {
    serde_json::json!({
        "type": "BLOCK_V2",
        "fork_info": fork_info(),
        "beacon_block": {"version": "ELECTRA", "block_header": {
            "slot": slot.to_string(), "proposer_index": "7",
            "parent_root": format!("0x{}", "11".repeat(32)),
            "state_root": format!("0x{}", hex::encode([state_root_byte; 32])),
            "body_root": format!("0x{}", "33".repeat(32))
        }}
    })
}

/// An ATTESTATION request (mainnet Electra) from `source` to `target`; `root_byte` varies the signing root.
pub fn attestation(source: u64, target: u64, root_byte: u8) -> Value {
    serde_json::json!({
        "type": "ATTESTATION",
        "fork_info": fork_info(),
        "attestation": {
            "slot": (target * 32).to_string(), "index": "0",
            "beacon_block_root": format!("0x{}", hex::encode([root_byte; 32])),
            "source": {"epoch": source.to_string(), "root": format!("0x{}", "aa".repeat(32))},
            "target": {"epoch": target.to_string(), "root": format!("0x{}", "bb".repeat(32))}
        }
    })
}

/// A port free on 127.0.0.1 now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The target epochs of `pubkey`'s attestations in an EIP-3076 interchange document.
pub fn attested_targets(interchange: &Value, pubkey: &str) -> Vec<u64> {
    interchange["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["pubkey"] == pubkey)
        .flat_map(|d| d["signed_attestations"].as_array().unwrap().iter())
        .map(|a| a["target_epoch"].as_str().unwrap().parse().unwrap())
        .collect()
}

/// Makes a PostgreSQL database refuse connections (and drops the open ones) until [`PgOutage::end`].
pub struct PgOutage {
    admin: tokio_postgres::Client,
    name: String,
}

impl PgOutage {
    pub async fn begin(url: &str) -> PgOutage {
        let (base, name) = url.rsplit_once('/').unwrap();
        let (admin, connection) =
            tokio_postgres::connect(&format!("{base}/postgres"), tokio_postgres::NoTls)
                .await
                .unwrap();
        tokio::spawn(connection);
        admin
            .batch_execute(&format!(
                "ALTER DATABASE {name} ALLOW_CONNECTIONS false; \
                 SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
            ))
            .await
            .unwrap();
        PgOutage {
            admin,
            name: name.to_owned(),
        }
    }

    pub async fn end(self) {
        self.admin
            .batch_execute(&format!(
                "ALTER DATABASE {} ALLOW_CONNECTIONS true",
                self.name
            ))
            .await
            .unwrap();
    }
}

/// A certificate authority made for one test (rcgen), issuing server and client certificates.
pub struct TestCa {
    /// The CA certificate, PEM.
    pub pem: String,
    /// Signs the certificates it issues.
    pub issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    /// A fresh CA with a new key.
    pub fn new() -> TestCa {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).unwrap().pem();
        TestCa {
            pem,
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A certificate for these names with a new key, issued by this CA: `(certificate, key)`, PEM.
    pub fn server(&self, names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A signer started in this process on `data` with free ports plus `extra` flags, its start-up keys loaded.
pub async fn start_running(data: &Path, extra: &[&str]) -> Running {
    let mut args = vec![
        "--data-dir",
        data.to_str().unwrap(),
        "--http-listen-port",
        "0",
        "--metrics-listen-port",
        "0",
    ];
    args.extend_from_slice(extra);
    start_args(&args).await
}

/// A signer started in this process with `args`, its start-up keys loaded (60 s at most).
async fn start_args(args: &[&str]) -> Running {
    let running = ferrosigner::start(run_args(args)).await.unwrap();
    tokio::time::timeout(
        std::time::Duration::from_secs(60),
        running.wait_keys_loaded(),
    )
    .await
    .unwrap();
    running
}

/// `http://<signing API address>` + path.
pub fn url_of(running: &Running, path: &str) -> String {
    format!("http://{}{path}", running.http_addr)
}

fn randao(epoch: u64) -> Value {
    serde_json::json!({"type": "RANDAO_REVEAL", "fork_info": fork_info(), "randao_reveal": {"epoch": epoch.to_string()}})
}

/// Signs a RANDAO reveal with `pubkey`; on 200 checks the signature against `pubkey` and the request's signing
/// root. Returns the status.
pub async fn sign_randao_verified(running: &Running, pubkey: &str) -> u16 {
    let request = randao(7);
    let response = reqwest::Client::new()
        .post(url_of(running, &format!("/api/v1/eth2/sign/{pubkey}")))
        .header("Accept", "application/json")
        .json(&request)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    if status == 200 {
        let signature =
            ferrosigner_bls::Signature::from_hex(body["signature"].as_str().unwrap()).unwrap();
        let mainnet = ferrosigner_consensus::Network::by_name("mainnet").unwrap();
        let root = ferrosigner_consensus::prepare(request.to_string().as_bytes(), &mainnet)
            .unwrap()
            .signing_root;
        assert!(
            signature.verify(
                &ferrosigner_bls::PublicKey::from_hex(pubkey).unwrap(),
                &root
            ),
            "the signature of {pubkey} does not verify"
        );
    }
    status
}

/// `GET /healthcheck`: status and body.
pub async fn healthcheck(running: &Running) -> (u16, Value) {
    let response = reqwest::get(url_of(running, "/healthcheck")).await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// The sub-check `id` of `keys-check` in a `/healthcheck` body.
pub fn sub_check<'a>(health: &'a Value, id: &str) -> &'a Value {
    health["checks"][1]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no sub-check {id}: {health}"))
}

/// Starts `/reload` and waits for it to finish; its final status.
pub async fn reload(running: &Running) -> Value {
    let client = reqwest::Client::new();
    let response = client
        .post(url_of(running, "/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    for _ in 0..1500 {
        let status: Value = client
            .get(url_of(running, "/reload"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["status"] != "running" {
            return status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("reload did not finish");
}
