//! TLS and mutual TLS on the signing API, with certificates made for the test.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, KeyPair};
use rustls::RootCertStore;
use rustls::client::ResolvesClientCert;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Pki {
    ca_pem: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

fn pki() -> Pki {
    let ca = common::TestCa::new();
    let (server_cert, server_key) = ca.server(&["localhost", "127.0.0.1"]);

    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(vec!["validator-client".to_owned()]).unwrap();
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client_params.signed_by(&client_key, &ca.issuer).unwrap();
    Pki {
        ca_pem: ca.pem,
        server_cert,
        server_key,
        client_cert: client_cert.pem(),
        client_key: client_key.serialize_pem(),
    }
}

/// A TLS connection to the signer; `Err` if the handshake fails.
async fn connect(
    addr: std::net::SocketAddr,
    pki: &Pki,
    with_client_cert: bool,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    let client = with_client_cert.then(|| Client::from_pem(&pki.client_cert, &pki.client_key));
    connect_as(addr, &pki.ca_pem, client.as_ref()).await
}

/// A client's certificate and the key it signs the handshake with (normally the certificate's own).
struct Client {
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

impl Client {
    fn from_pem(cert: &str, key: &str) -> Client {
        Client {
            cert: CertificateDer::from_pem_slice(cert.as_bytes()).unwrap(),
            key: PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
        }
    }
}

/// Offers one certificate and key, whether or not they match (`with_client_auth_cert` refuses a key that
/// does not match, which an impostor's client would not).
#[derive(Debug)]
struct Offer(Arc<CertifiedKey>);

impl ResolvesClientCert for Offer {
    fn resolve(&self, _: &[&[u8]], _: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

/// A TLS connection trusting `ca_pem` for the server, presenting `client` if given.
async fn connect_as(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    client: Option<&Client>,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    connect_with_versions(addr, ca_pem, client, rustls::DEFAULT_VERSIONS).await
}

/// [`connect_as`] offering only these protocol versions.
async fn connect_with_versions(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    client: Option<&Client>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some(client) => {
            let key = provider
                .key_provider
                .load_private_key(client.key.clone_key())
                .unwrap();
            let offer = Offer(Arc::new(CertifiedKey::new(vec![client.cert.clone()], key)));
            builder.with_client_cert_resolver(Arc::new(offer))
        }
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())
}

/// GET /upcheck over TLS; `Err` if the handshake or the request fails.
async fn upcheck(
    addr: std::net::SocketAddr,
    pki: &Pki,
    with_client_cert: bool,
) -> Result<String, String> {
    let client = with_client_cert.then(|| Client::from_pem(&pki.client_cert, &pki.client_key));
    upcheck_as(addr, &pki.ca_pem, client.as_ref()).await
}

/// GET /upcheck over TLS presenting `client`; `Err` if the handshake or the request fails. (With TLS 1.3 the
/// server refuses a client certificate after the client finished its handshake, so a refusal shows on the
/// request.)
async fn upcheck_as(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    client: Option<&Client>,
) -> Result<String, String> {
    upcheck_with_versions(addr, ca_pem, client, rustls::DEFAULT_VERSIONS).await
}

/// [`upcheck_as`] offering only these protocol versions.
async fn upcheck_with_versions(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    client: Option<&Client>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<String, String> {
    let mut tls = connect_with_versions(addr, ca_pem, client, versions).await?;
    tls.write_all(b"GET /upcheck HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    tls.read_to_string(&mut response)
        .await
        .map_err(|e| e.to_string())?;
    if response.is_empty() {
        return Err("closed without a response".to_owned());
    }
    Ok(response)
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

async fn start(dir: &Path, pki: &Pki, mutual: bool) -> ferrosigner::Running {
    start_with(dir, pki, mutual, &[]).await
}

async fn start_with(dir: &Path, pki: &Pki, mutual: bool, extra: &[&str]) -> ferrosigner::Running {
    let cert = write(dir, "server.pem", &pki.server_cert);
    let key = write(dir, "server.key", &pki.server_key);
    let ca = write(dir, "ca.pem", &pki.ca_pem);
    let data = dir.join("data");
    let mut args = vec!["--tls-cert-file", &cert, "--tls-key-file", &key];
    if mutual {
        args.extend_from_slice(&["--tls-client-ca-file", &ca]);
    }
    args.extend_from_slice(extra);
    let running = ferrosigner::start(common::local_args(&data, &args))
        .await
        .unwrap();
    // `/upcheck` answers 200 once keys are loaded.
    running.wait_keys_loaded().await;
    running
}

#[tokio::test]
async fn tls_serves_the_api_and_refuses_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let running = start(dir.path(), &pki, false).await;
    let response = upcheck(running.http_addr, &pki, false).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("OK"), "{response}");
    let plain = reqwest::get(format!("http://{}/upcheck", running.http_addr)).await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    running.shutdown().await;
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_from_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let running = start(dir.path(), &pki, true).await;
    assert!(
        upcheck(running.http_addr, &pki, false).await.is_err(),
        "served a client without a certificate"
    );
    // a certificate from another CA is refused too
    let other = self::pki();
    let foreign = Pki {
        ca_pem: pki.ca_pem.clone(),
        ..other
    };
    assert!(
        upcheck(running.http_addr, &foreign, true).await.is_err(),
        "served a client of another CA"
    );
    let response = upcheck(running.http_addr, &pki, true).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    running.shutdown().await;
}

#[tokio::test]
async fn tls_connections_have_the_header_timeout_and_the_connection_cap() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let running = start_with(
        dir.path(),
        &pki,
        false,
        &[
            "--http-header-read-timeout-seconds",
            "1",
            "--http-max-connections",
            "1",
        ],
    )
    .await;
    let addr = running.http_addr;
    // A client that sends half a head holds the only connection slot (it was accepted to handshake)…
    let mut partial = connect(addr, &pki, false).await.unwrap();
    partial
        .write_all(b"GET /upcheck HTTP/1.1\r\n")
        .await
        .unwrap();
    // …so another client gets 503 JSON over TLS at once.
    let refused = upcheck(addr, &pki, false).await.unwrap();
    assert!(refused.starts_with("HTTP/1.1 503 "), "{refused}");
    assert!(refused.contains("retry-after: 1"), "{refused}");
    let (_, body) = refused.split_once("\r\n\r\n").unwrap();
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert!(body["error"].is_string(), "{body}");
    // The half-sent head is closed after the header timeout, and the slot serves again.
    let mut sink = Vec::new();
    let closed =
        tokio::time::timeout(Duration::from_secs(30), partial.read_to_end(&mut sink)).await;
    assert!(closed.is_ok(), "a half-sent head over TLS stayed open");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let response = upcheck(addr, &pki, false).await.unwrap();
        if response.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{response}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A client that never starts the handshake is closed after the header timeout too.
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(30), silent.read_to_end(&mut sink)).await;
    assert!(closed.is_ok(), "a silent connection stayed open");
    running.shutdown().await;
}

#[test]
fn bad_tls_files_fail_start_up_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let cert = write(dir.path(), "server.pem", &pki.server_cert);
    let wrong_key = write(dir.path(), "client.key", &pki.client_key);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let data = dir.path().join("data");
    for (cert, key, mention) in [
        (cert.as_str(), "/nonexistent.key", "TLS key"),
        ("/nonexistent.pem", wrong_key.as_str(), "TLS certificate"),
        (cert.as_str(), wrong_key.as_str(), "do not match"),
    ] {
        let args = common::local_args(&data, &["--tls-cert-file", cert, "--tls-key-file", key]);
        let err = rt
            .block_on(ferrosigner::start(args))
            .err()
            .expect("start must fail");
        assert!(format!("{err:#}").contains(mention), "{err:#}");
    }
}

// ---- Web3Signer's TLS: PKCS#12 keystore, known clients by fingerprint -----------------------------------

const KEYSTORE_PASSWORD: &str = "keystore pass phrase";

/// A client certificate as Lighthouse's remote-signer tests make it: self-signed, for server
/// authentication only (extended key usage serverAuth), so no CA-based check accepts it.
fn self_signed_server_auth_client(name: &str) -> Client {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.self_signed(&key).unwrap();
    Client {
        cert: cert.der().clone(),
        key: PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
    }
}

/// Lighthouse's client, pinned in a known-clients file in `dir` (returned), and a stranger: a certificate
/// of the same shape and name that is not pinned.
fn pinned_lighthouse(dir: &Path) -> (Client, Client, String) {
    let lighthouse = self_signed_server_auth_client("lighthouse");
    let stranger = self_signed_server_auth_client("lighthouse");
    let known = write(
        dir,
        "known_clients.txt",
        &format!(
            "# Web3Signer known clients\n\nlighthouse {}\n",
            fingerprint(&lighthouse.cert)
        ),
    );
    (lighthouse, stranger, known)
}

/// The SHA-256 fingerprint of a certificate as `openssl x509 -fingerprint -sha256` writes it.
fn fingerprint(cert: &CertificateDer<'_>) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(cert.as_ref());
    digest
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn pem_der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

/// A PKCS#12 keystore holding the server's key, its certificate and the CA (with `key`, `certs` as given).
fn keystore_with(key: Option<&str>, certs: &[&str], password: &str) -> Vec<u8> {
    use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
    let mut store = KeyStore::new();
    let certs: Vec<Certificate> = certs
        .iter()
        .map(|pem| Certificate::from_der(&pem_der(pem)).unwrap())
        .collect();
    match key {
        Some(key) => {
            let der = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
            let key = PrivateKey::from_der(der.secret_der()).unwrap();
            let chain = PrivateKeyChain::new(vec![1, 2, 3, 4], key, certs);
            store.add_entry("web3signer", KeyStoreEntry::PrivateKeyChain(chain));
        }
        None => {
            for (i, cert) in certs.into_iter().enumerate() {
                store.add_entry(&format!("cert{i}"), KeyStoreEntry::Certificate(cert));
            }
        }
    }
    store.writer(password).write().unwrap()
}

fn server_keystore(pki: &Pki) -> Vec<u8> {
    keystore_with(
        Some(&pki.server_key),
        &[&pki.server_cert, &pki.ca_pem],
        KEYSTORE_PASSWORD,
    )
}

/// Writes the keystore and its password file (the password with a trailing newline, as `echo` writes it)
/// and returns the flags that serve it.
fn keystore_flags(dir: &Path, keystore: &[u8]) -> Vec<String> {
    let path = dir.join("web3signer.p12");
    std::fs::write(&path, keystore).unwrap();
    let password = write(
        dir,
        "keystore-password.txt",
        &format!("{KEYSTORE_PASSWORD}\n"),
    );
    vec![
        "--tls-keystore-file".to_owned(),
        path.to_str().unwrap().to_owned(),
        "--tls-keystore-password-file".to_owned(),
        password,
    ]
}

/// The keystore flags (see [`keystore_flags`]) followed by `extra`.
fn keystore_args(dir: &Path, keystore: &[u8], extra: &[&str]) -> Vec<String> {
    let mut args = keystore_flags(dir, keystore);
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

async fn start_keystore(dir: &Path, keystore: &[u8], extra: &[&str]) -> ferrosigner::Running {
    let args = keystore_args(dir, keystore, extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let running = ferrosigner::start(common::local_args(&dir.join("data"), &args))
        .await
        .unwrap();
    running.wait_keys_loaded().await;
    running
}

/// Why start-up fails with this keystore and `extra` flags.
async fn keystore_start_failure(dir: &Path, keystore: &[u8], extra: &[&str]) -> String {
    let args = keystore_args(dir, keystore, extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    start_failure(dir, &args).await
}

async fn start_failure(dir: &Path, args: &[&str]) -> String {
    match ferrosigner::start(common::local_args(&dir.join("data"), args)).await {
        Ok(running) => {
            running.shutdown().await;
            panic!("start must fail with {args:?}");
        }
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test]
async fn pkcs12_keystore_with_known_clients_accepts_pinned_self_signed_clients_only() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let (lighthouse, stranger, known) = pinned_lighthouse(dir.path());
    let running = start_keystore(
        dir.path(),
        &server_keystore(&pki),
        &["--tls-known-clients-file", &known],
    )
    .await;
    let addr = running.http_addr;
    // The server presents the keystore's certificate (the client trusts only the CA), and serves the pinned
    // client although its certificate is self-signed and for server authentication only.
    let response = upcheck_as(addr, &pki.ca_pem, Some(&lighthouse))
        .await
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    // An unpinned certificate of the same shape and name, no certificate, and a CA-signed client
    // certificate (no client CA is configured) are all refused.
    let refused = upcheck_as(addr, &pki.ca_pem, Some(&stranger)).await;
    assert!(refused.is_err(), "served an unpinned client: {refused:?}");
    let refused = upcheck_as(addr, &pki.ca_pem, None).await;
    assert!(
        refused.is_err(),
        "served a client without a certificate: {refused:?}"
    );
    let refused = upcheck(addr, &pki, true).await;
    assert!(
        refused.is_err(),
        "served a client neither pinned nor from a configured CA: {refused:?}"
    );
    // The pinned certificate is public: presenting it without its key (signing the handshake with
    // another key) is refused, the handshake signature is verified.
    let impostor = Client {
        cert: lighthouse.cert.clone(),
        key: stranger.key.clone_key(),
    };
    let refused = upcheck_as(addr, &pki.ca_pem, Some(&impostor)).await;
    assert!(
        refused.is_err(),
        "served a pinned certificate signed for by another key: {refused:?}"
    );
    // The same over TLS 1.2, whose handshake signature is verified by the other method.
    let tls12 = &[&rustls::version::TLS12];
    let response = upcheck_with_versions(addr, &pki.ca_pem, Some(&lighthouse), tls12)
        .await
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let refused = upcheck_with_versions(addr, &pki.ca_pem, Some(&impostor), tls12).await;
    assert!(
        refused.is_err(),
        "served an impostor over TLS 1.2: {refused:?}"
    );
    let refused = upcheck_with_versions(addr, &pki.ca_pem, Some(&stranger), tls12).await;
    assert!(
        refused.is_err(),
        "served an unpinned client over TLS 1.2: {refused:?}"
    );
    running.shutdown().await;
}

#[tokio::test]
async fn known_clients_and_client_ca_together_accept_either() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let (lighthouse, stranger, known) = pinned_lighthouse(dir.path());
    let ca = write(dir.path(), "ca.pem", &pki.ca_pem);
    let running = start_keystore(
        dir.path(),
        &server_keystore(&pki),
        &[
            "--tls-known-clients-file",
            &known,
            "--tls-client-ca-file",
            &ca,
            // as Web3Signer configurations may say it
            "--tls-allow-any-client=false",
        ],
    )
    .await;
    let addr = running.http_addr;
    let response = upcheck_as(addr, &pki.ca_pem, Some(&lighthouse))
        .await
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let response = upcheck(addr, &pki, true).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        upcheck_as(addr, &pki.ca_pem, Some(&stranger))
            .await
            .is_err()
    );
    assert!(upcheck_as(addr, &pki.ca_pem, None).await.is_err());
    running.shutdown().await;
}

#[tokio::test]
async fn known_clients_work_with_the_pem_flags_too() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let (lighthouse, _, known) = pinned_lighthouse(dir.path());
    let running = start_with(
        dir.path(),
        &pki,
        false,
        &["--tls-known-clients-file", &known],
    )
    .await;
    let response = upcheck_as(running.http_addr, &pki.ca_pem, Some(&lighthouse))
        .await
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(upcheck(running.http_addr, &pki, false).await.is_err());
    running.shutdown().await;
}

#[tokio::test]
async fn allow_any_client_serves_clients_without_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    // The bare flag, as `--tls-allow-any-client=true` in Web3Signer.
    let running = start_keystore(
        dir.path(),
        &server_keystore(&pki),
        &["--tls-allow-any-client"],
    )
    .await;
    let response = upcheck_as(running.http_addr, &pki.ca_pem, None)
        .await
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    running.shutdown().await;
}

#[tokio::test]
async fn bad_keystores_and_known_clients_files_fail_start_up_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let known = write(dir.path(), "known.txt", "lighthouse AB:CD\n");
    let policy = ["--tls-allow-any-client=true"];

    // A wrong password: named as such, and never shown.
    let wrong = keystore_with(
        Some(&pki.server_key),
        &[&pki.server_cert],
        "another password",
    );
    let err = keystore_start_failure(dir.path(), &wrong, &policy).await;
    assert!(err.contains("wrong password"), "{err}");
    assert!(
        !err.contains(KEYSTORE_PASSWORD) && !err.contains("another password"),
        "{err}"
    );

    // Certificates without a key, a key without its certificate, and not a keystore at all.
    for (keystore, mention) in [
        (
            keystore_with(None, &[&pki.server_cert, &pki.ca_pem], KEYSTORE_PASSWORD),
            "holds no private key (2 certificate(s) only)",
        ),
        (
            keystore_with(Some(&pki.server_key), &[], KEYSTORE_PASSWORD),
            "has no certificate",
        ),
        (b"not a keystore".to_vec(), "cannot be read as PKCS#12"),
    ] {
        let err = keystore_start_failure(dir.path(), &keystore, &policy).await;
        assert!(err.contains(mention), "{err}");
    }

    // A keystore needs a client policy, as in Web3Signer.
    let err = keystore_start_failure(dir.path(), &server_keystore(&pki), &[]).await;
    assert!(err.contains("needs a client policy"), "{err}");

    // A known-clients file that cannot be used.
    for (file, mention) in [
        (
            known.as_str(),
            "line 1: the fingerprint of \"lighthouse\" has 2 bytes",
        ),
        ("/nonexistent/known.txt", "reading known-clients file"),
    ] {
        let flags = ["--tls-known-clients-file", file];
        let err = keystore_start_failure(dir.path(), &server_keystore(&pki), &flags).await;
        assert!(err.contains(mention), "{err}");
    }
}

#[test]
fn conflicting_tls_flags_are_refused_by_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    for (flags, mention) in [
        (
            vec![
                "--tls-cert-file=c.pem",
                "--tls-key-file=k.pem",
                "--tls-keystore-file=s.p12",
                "--tls-keystore-password-file=p.txt",
            ],
            "cannot be used with",
        ),
        (
            vec!["--tls-keystore-file=s.p12"],
            "--tls-keystore-password-file",
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferrosigner"))
            .args(["run", "--data-dir", d, "--http-listen-port", "0"])
            .args(&flags)
            .env_clear()
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(stderr.contains(mention), "{flags:?}: {stderr}");
    }
    // A client flag without TLS is refused at start-up.
    let err = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(start_failure(
            dir.path(),
            &["--tls-known-clients-file", "known.txt"],
        ));
    assert!(err.contains("--tls-known-clients-file needs TLS"), "{err}");
    // So is any client together with a client check.
    let err = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(keystore_start_failure(
            dir.path(),
            &server_keystore(&pki()),
            &[
                "--tls-allow-any-client",
                "--tls-known-clients-file",
                "known.txt",
            ],
        ));
    assert!(err.contains("cannot be combined"), "{err}");
}

/// A keystore written by the `openssl` command line, in its current (AES) and legacy (3DES/RC2) encodings:
/// the files operators bring. openssl is installed by .ci/run; elsewhere the test is skipped without it.
#[tokio::test]
async fn keystores_written_by_openssl_are_served() {
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "openssl is required under CI"
        );
        eprintln!("SKIPPED: keystores_written_by_openssl_are_served: no openssl command");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let cert = write(dir.path(), "server.pem", &pki.server_cert);
    let key = write(dir.path(), "server.key", &pki.server_key);
    let ca = write(dir.path(), "ca.pem", &pki.ca_pem);
    for legacy in [false, true] {
        let out = dir.path().join("openssl.p12");
        let mut cmd = std::process::Command::new("openssl");
        cmd.args([
            "pkcs12",
            "-export",
            "-inkey",
            &key,
            "-in",
            &cert,
            "-certfile",
            &ca,
        ])
        .args([
            "-name",
            "web3signer",
            "-passout",
            &format!("pass:{KEYSTORE_PASSWORD}"),
        ])
        .arg("-out")
        .arg(&out);
        if legacy {
            cmd.arg("-legacy");
        }
        let status = cmd.output().unwrap();
        if legacy && !status.status.success() {
            // OpenSSL 1.1 has no -legacy: its default is the legacy encoding, tested above.
            eprintln!(
                "openssl pkcs12 -legacy: {}",
                String::from_utf8_lossy(&status.stderr)
            );
            continue;
        }
        assert!(
            status.status.success(),
            "{}",
            String::from_utf8_lossy(&status.stderr)
        );
        let sub = dir.path().join(if legacy { "legacy" } else { "current" });
        std::fs::create_dir(&sub).unwrap();
        let running = start_keystore(
            &sub,
            &std::fs::read(&out).unwrap(),
            &["--tls-allow-any-client=true"],
        )
        .await;
        let response = upcheck_as(running.http_addr, &pki.ca_pem, None)
            .await
            .unwrap();
        assert!(
            response.starts_with("HTTP/1.1 200"),
            "legacy={legacy}: {response}"
        );
        running.shutdown().await;
    }
}

/// The binary takes the whole Web3Signer-style configuration from `FERROSIGNER_*` variables, and serves
/// the pinned client only.
#[tokio::test]
async fn the_binary_takes_the_tls_flags_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let (lighthouse, stranger, known) = pinned_lighthouse(dir.path());
    let flags = keystore_flags(dir.path(), &server_keystore(&pki));
    let port = common::free_port();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_ferrosigner"))
        .args(["run", "--metrics-enabled", "false"])
        .env_clear()
        .env("FERROSIGNER_DATA_DIR", dir.path().join("data"))
        .env("FERROSIGNER_HTTP_LISTEN_PORT", port.to_string())
        .env("FERROSIGNER_TLS_KEYSTORE_FILE", &flags[1])
        .env("FERROSIGNER_TLS_KEYSTORE_PASSWORD_FILE", &flags[3])
        .env("FERROSIGNER_TLS_KNOWN_CLIENTS_FILE", &known)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Kill(child);
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let response = loop {
        match upcheck_as(addr, &pki.ca_pem, Some(&lighthouse)).await {
            Ok(response) if response.starts_with("HTTP/1.1 200") => break response,
            other => {
                assert!(
                    child.0.try_wait().unwrap().is_none(),
                    "the signer exited: {other:?}"
                );
                assert!(std::time::Instant::now() < deadline, "{other:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert!(response.ends_with("OK"), "{response}");
    let refused = upcheck_as(addr, &pki.ca_pem, Some(&stranger)).await;
    assert!(refused.is_err(), "served an unpinned client: {refused:?}");
}
