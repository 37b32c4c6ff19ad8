//! The vault client against a real OpenBao TLS listener (certificate from a test CA): a CA file,
//! Web3Signer's known-servers fingerprint pinning, and their refusals.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Bao, key_hex, random_key};
use ferrosigner_vault::{Auth, Error, VaultClient, VaultConfig};
use serde_json::json;
use sha2::{Digest, Sha256};

/// A CA that issues test certificates.
struct TestCa {
    pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    /// A fresh CA named `name`.
    fn new(name: &str) -> TestCa {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).unwrap().pem();
        TestCa {
            pem,
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// `(certificate PEM, key PEM, certificate DER)` for these names.
    fn server(&self, names: &[&str]) -> (String, String, Vec<u8>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }
}

/// A SHA-256 fingerprint as Web3Signer's known-servers file shows it: upper-case hex, colons.
fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

struct Setup {
    bao: Bao,
    dir: tempfile::TempDir,
    ca_file: PathBuf,
    other_ca_file: PathBuf,
    cert_der: Vec<u8>,
    key_hex: String,
}

impl Setup {
    async fn new() -> Option<Setup> {
        let ca = TestCa::new("vault test CA");
        let (cert, key, cert_der) = ca.server(&["127.0.0.1", "localhost"]);
        let bao = Bao::dev_with_tls(Some((&cert, &key))).await?;
        let sk = random_key();
        bao.put_secret("validators/k", json!({ "value": key_hex(&sk) }))
            .await;
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, &ca.pem).unwrap();
        let other_ca_file = dir.path().join("other-ca.pem");
        std::fs::write(&other_ca_file, TestCa::new("another CA").pem).unwrap();
        Some(Setup {
            bao,
            dir,
            ca_file,
            other_ca_file,
            cert_der,
            key_hex: key_hex(&sk),
        })
    }

    fn address(&self) -> String {
        format!("https://127.0.0.1:{}", self.bao.tls_port.unwrap())
    }

    fn config(&self) -> VaultConfig {
        VaultConfig::new(self.address(), Auth::token(self.bao.token.clone()))
    }

    fn known_servers(&self, name: &str, lines: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, lines).unwrap();
        path
    }

    async fn read(&self, config: VaultConfig) -> Result<String, Error> {
        let client = VaultClient::connect(config).await?;
        let key = client
            .read_key("/v1/secret/data/validators/k", "value")
            .await?;
        Ok(format!("0x{}", hex::encode(key.expose())))
    }
}

impl Setup {
    /// Reads the key as a Web3Signer key config with TLS on and this known-servers file (and no CA
    /// file) names it.
    async fn known_servers_read(&self, known_servers: &Path) -> Result<String, Error> {
        let mut config = VaultConfig::new(
            format!("https://127.0.0.1:{}", self.bao.tls_port.unwrap()),
            Auth::token(self.bao.token.clone()),
        );
        config.known_servers_file = Some(known_servers.to_path_buf());
        self.read(config).await
    }
}

/// A refused handshake: a [`Error::TlsHandshake`], at once (no retries).
async fn assert_refused(setup: &Setup, config: VaultConfig, want: &str) {
    let server = config.address.trim_start_matches("https://").to_owned();
    let started = Instant::now();
    let e = setup.read(config).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    match &e {
        Error::TlsHandshake { address, reason } => {
            assert_eq!(address, &server);
            assert!(reason.contains(want), "{reason}");
        }
        other => panic!("expected a TLS refusal, got {other}"),
    }
    assert!(!e.to_string().contains(&setup.bao.token));
    eprintln!("refused as expected: {e}");
}

#[tokio::test]
async fn ca_file_accepted_and_wrong_ca_refused() {
    let Some(setup) = Setup::new().await else {
        return;
    };
    let mut config = setup.config();
    config.ca_file = Some(setup.ca_file.clone());
    assert_eq!(setup.read(config).await.unwrap(), setup.key_hex);

    // By the other name in the certificate.
    let mut config = setup.config();
    config.address = format!("https://localhost:{}", setup.bao.tls_port.unwrap());
    config.ca_file = Some(setup.ca_file.clone());
    assert_eq!(setup.read(config).await.unwrap(), setup.key_hex);

    let mut config = setup.config();
    config.ca_file = Some(setup.other_ca_file.clone());
    assert_refused(&setup, config, "invalid peer certificate").await;

    // No trust configured: refused before any connection, saying what to configure.
    let e = setup.read(setup.config()).await.unwrap_err();
    assert!(
        matches!(&e, Error::TlsConfig(m) if m.contains("CA file")),
        "{e}"
    );
    // A CA file that is not PEM.
    let mut config = setup.config();
    config.ca_file = Some(setup.known_servers("not-pem", "hello"));
    let e = setup.read(config).await.unwrap_err();
    assert!(matches!(e, Error::TlsConfig(_)), "{e}");
    // Plain HTTP to the TLS port gets no usable answer.
    let mut config = setup.config();
    config.address = format!("http://127.0.0.1:{}", setup.bao.tls_port.unwrap());
    config.retry.max_attempts = 1;
    let e = setup.read(config).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Status { status: 400, .. } | Error::Unavailable { .. }
        ),
        "{e}"
    );
}

#[tokio::test]
async fn known_servers_pinning_accepted_and_wrong_fingerprint_refused() {
    let Some(setup) = Setup::new().await else {
        return;
    };
    let port = setup.bao.tls_port.unwrap();
    let right = fingerprint(&setup.cert_der);
    let wrong = fingerprint(b"some other certificate");

    let file = setup.known_servers(
        "known",
        &format!("# vault\nlocalhost:{port} {wrong}\n127.0.0.1:{port} {right}\n"),
    );
    let mut config = setup.config();
    config.known_servers_file = Some(file.clone());
    assert_eq!(setup.read(config).await.unwrap(), setup.key_hex);

    // Lower-case without colons is the same fingerprint.
    let file_plain = setup.known_servers(
        "known-plain",
        &format!(
            "127.0.0.1:{port} {}\n",
            right.replace(':', "").to_lowercase()
        ),
    );
    let mut config = setup.config();
    config.known_servers_file = Some(file_plain);
    assert_eq!(setup.read(config).await.unwrap(), setup.key_hex);

    // localhost:<port> is pinned to another fingerprint: refused.
    let mut config = setup.config();
    config.address = format!("https://localhost:{port}");
    config.known_servers_file = Some(file.clone());
    assert_refused(&setup, config, "not listed for localhost:").await;

    // The wrong fingerprint with the right CA: accepted through the CA, as Web3Signer does.
    let mut config = setup.config();
    config.address = format!("https://localhost:{port}");
    config.known_servers_file = Some(file);
    config.ca_file = Some(setup.ca_file.clone());
    assert_eq!(setup.read(config).await.unwrap(), setup.key_hex);

    // The wrong fingerprint with the wrong CA: refused.
    let only_wrong = setup.known_servers("known-wrong", &format!("127.0.0.1:{port} {wrong}\n"));
    let mut config = setup.config();
    config.known_servers_file = Some(only_wrong.clone());
    config.ca_file = Some(setup.other_ca_file.clone());
    assert_refused(&setup, config, "invalid peer certificate").await;

    // No entry for this server, no CA: refused at connect, naming host:port.
    let mut config = setup.config();
    config.known_servers_file =
        Some(setup.known_servers("known-other", &format!("vault.example:8200 {right}\n")));
    let e = setup.read(config).await.unwrap_err();
    assert!(
        matches!(&e, Error::TlsConfig(m) if m.contains(&format!("no entry for 127.0.0.1:{port}"))),
        "{e}"
    );
    // A malformed file, as Web3Signer's own test writes it.
    let mut config = setup.config();
    config.known_servers_file = Some(setup.known_servers("malformed", "Illegal Known Servers."));
    let e = setup.read(config).await.unwrap_err();
    assert!(
        matches!(&e, Error::TlsConfig(m) if m.contains("line 1")),
        "{e}"
    );

    // The Web3Signer key config: TLS on by default, the known-servers file.
    let known = setup.dir.path().join("known");
    let key = setup.known_servers_read(&known).await.unwrap();
    assert_eq!(key, setup.key_hex);
    let e = setup.known_servers_read(&only_wrong).await.unwrap_err();
    assert!(matches!(e, Error::TlsHandshake { .. }), "{e}");
}
