//! TLS and mutual TLS on the signing API, with certificates made for the test.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use rustls::RootCertStore;
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
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, &ca_key);

    let server_key = KeyPair::generate().unwrap();
    let server_params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();

    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(vec!["validator-client".to_owned()]).unwrap();
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client_params.signed_by(&client_key, &issuer).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        server_cert: server_cert.pem(),
        server_key: server_key.serialize_pem(),
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
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = if with_client_cert {
        let chain = vec![CertificateDer::from_pem_slice(pki.client_cert.as_bytes()).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(pki.client_key.as_bytes()).unwrap();
        builder.with_client_auth_cert(chain, key).unwrap()
    } else {
        builder.with_no_client_auth()
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
    let mut tls = connect(addr, pki, with_client_cert).await?;
    tls.write_all(b"GET /upcheck HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    tls.read_to_string(&mut response)
        .await
        .map_err(|e| e.to_string())?;
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
