//! The PostgreSQL slashing database over TLS: a private cluster with `ssl=on`, a CA and server
//! certificates made by the test, and a `pg_hba.conf` that accepts only `hostssl` connections.
//! libpq's `sslmode` (`disable`, `prefer`, `require`, `verify-ca`, `verify-full`) and `sslrootcert`
//! in the URL are honoured; each failure names its cause and never the password.

mod common;
mod processes;

use std::path::Path;

use common::{attestation, secret};
use ferrosigner_slashing::{Error, SlashingDb};
use processes::{PrivatePostgres, spawn_signer, wait_healthy};

/// In the URLs; trust authentication ignores it, and no message may show it.
const PASSWORD: &str = "hunter2-tls-secret";

/// A CA and a server certificate for `names` signed by it (PEM).
struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
}

fn pki(names: &[&str]) -> Pki {
    let ca = common::TestCa::new();
    let (server_cert, server_key) = ca.server(names);
    Pki {
        ca: ca.pem,
        server_cert,
        server_key,
    }
}

/// A cluster that serves `pki`'s server certificate and accepts only TLS connections.
fn tls_cluster(pki: &Pki) -> Option<PrivatePostgres> {
    PrivatePostgres::start_with(
        &[
            ("server.crt", &pki.server_cert),
            ("server.key", &pki.server_key),
            ("pg_hba.conf", "hostssl all all 127.0.0.1/32 trust\n"),
        ],
        "-c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key",
    )
}

/// Writes `pem` to `dir/name` and returns the path.
fn write(dir: &Path, name: &str, pem: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap();
    path.to_str().unwrap().to_owned()
}

/// The cluster's URL with the password and `params` (`&`-joined).
fn url(pg: &PrivatePostgres, params: &str) -> String {
    pg.url(&format!("?password={PASSWORD}&{params}"))
}

/// Opens the store and proves it works: health, then a block recorded and its double refused.
async fn open_and_use(url: &str) {
    let db = SlashingDb::open(url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    db.health().await.unwrap();
    // Mainnet's, as the signer started on this database later records.
    let gvr: [u8; 32] = hex::decode(&common::GVR[2..]).unwrap().try_into().unwrap();
    let pubkey = [9u8; 48];
    db.init_genesis_validators_root(gvr).await.unwrap();
    // Each use records a new slot: the database is shared by the uses of one test.
    let slot = NEXT_SLOT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    db.check_block(gvr, &pubkey, slot, [1; 32]).await.unwrap();
    assert!(matches!(
        db.check_block(gvr, &pubkey, slot, [2; 32]).await,
        Err(Error::Refused(_))
    ));
}

static NEXT_SLOT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1_000);

/// Opening fails; the message (returned) never shows the password.
async fn open_fails(url: &str) -> String {
    let e = SlashingDb::open(url)
        .await
        .err()
        .unwrap_or_else(|| panic!("opened {url}"));
    assert!(matches!(e, Error::Open(_) | Error::Unavailable(_)), "{e:?}");
    let msg = e.to_string();
    assert!(!msg.contains(PASSWORD), "{msg}");
    msg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_modes_against_a_server_that_accepts_only_tls() {
    let pki = pki(&["localhost", "127.0.0.1"]);
    let Some(pg) = tls_cluster(&pki) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ca = write(dir.path(), "ca.pem", &pki.ca);
    let wrong_ca = write(dir.path(), "wrong-ca.pem", &self::pki(&["localhost"]).ca);

    // TLS without verification, TLS when offered, and the full check all connect and work.
    open_and_use(&url(&pg, "sslmode=require")).await;
    open_and_use(&url(&pg, "sslmode=prefer")).await;
    open_and_use(&url(&pg, &format!("sslmode=verify-full&sslrootcert={ca}"))).await;
    open_and_use(&url(&pg, &format!("sslmode=verify-ca&sslrootcert={ca}"))).await;

    // Without TLS the server's hostssl-only rules refuse, and the message says what to change.
    let msg = open_fails(&url(&pg, "sslmode=disable")).await;
    assert!(
        msg.contains("no pg_hba.conf entry") && msg.contains("use sslmode=require"),
        "{msg}"
    );

    // A certificate that is not signed by the given CA is refused, with verify-full and, as libpq
    // does, with require when sslrootcert is given.
    for mode in ["verify-full", "verify-ca", "require"] {
        let msg = open_fails(&url(&pg, &format!("sslmode={mode}&sslrootcert={wrong_ca}"))).await;
        assert!(
            msg.contains(&format!(
                "the server certificate is not signed by a CA in sslrootcert {wrong_ca} (sslmode={mode})"
            )),
            "{msg}"
        );
    }

    // Bad parameters are refused before connecting.
    let msg = open_fails(&url(&pg, "sslmode=verify")).await;
    assert!(msg.contains("invalid sslmode \"verify\""), "{msg}");
    let missing = dir.path().join("missing.pem");
    let msg = open_fails(&url(
        &pg,
        &format!("sslmode=verify-full&sslrootcert={}", missing.display()),
    ))
    .await;
    assert!(
        msg.contains(&format!("cannot read sslrootcert {}", missing.display())),
        "{msg}"
    );

    // The binary: verify-full connects and signs; the double vote is refused from that database.
    let log = dir.path().join("signer.log");
    let db_url = url(&pg, &format!("sslmode=verify-full&sslrootcert={ca}"));
    let key = secret("0x263dbd792f5b1be47ed85f8938c0f29586af0d3ac7b977f21c278fe1462040e3");
    let pk = key.public_key().to_hex();
    let (mut child, base) = spawn_signer(
        dir.path(),
        &log,
        key,
        &["--slashing-protection-db-url", &db_url],
    );
    let client = reqwest::Client::new();
    wait_healthy(&client, &base, &mut child, &log).await;
    let sign = |root: u8| {
        client
            .post(format!("{base}/api/v1/eth2/sign/{pk}"))
            .header("Accept", "application/json")
            .json(&attestation(0, 1, root))
            .send()
    };
    assert_eq!(sign(1).await.unwrap().status(), 200);
    assert_eq!(sign(2).await.unwrap().status(), 412);
    child.kill().unwrap();
    child.wait().unwrap();
    let logged = read(&log);
    assert!(logged.contains("sslmode=verify-full"), "{logged}");
    assert!(!logged.contains(PASSWORD), "{logged}");

    // The binary with the wrong CA exits at start and says why.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferrosigner"))
        .arg("run")
        .arg("--data-dir")
        .arg(dir.path().join("data2"))
        .args(["--http-listen-port", "0", "--metrics-enabled", "false"])
        .args([
            "--slashing-protection-db-url",
            &url(&pg, &format!("sslmode=verify-full&sslrootcert={wrong_ca}")),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("not signed by a CA in sslrootcert") && !stderr.contains(PASSWORD),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_ca_accepts_a_certificate_for_another_host_that_verify_full_refuses() {
    let pki = pki(&["db.other.example"]);
    let Some(pg) = tls_cluster(&pki) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ca = write(dir.path(), "ca.pem", &pki.ca);
    open_and_use(&url(&pg, &format!("sslmode=verify-ca&sslrootcert={ca}"))).await;
    open_and_use(&url(&pg, &format!("sslmode=require&sslrootcert={ca}"))).await;
    let msg = open_fails(&url(&pg, &format!("sslmode=verify-full&sslrootcert={ca}"))).await;
    assert!(
        msg.contains("the server certificate is not valid for host 127.0.0.1 (sslmode=verify-full"),
        "{msg}"
    );
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
