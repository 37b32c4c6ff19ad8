//! The rustls client configuration (ring provider) for an HTTPS vault.
//!
//! The trust comes from the files of [`crate::VaultConfig`], read by the client at connect and
//! handed here as bytes: a PEM CA file (the server's chain must lead to one of its certificates,
//! and the certificate must name the configured host), and/or Web3Signer's known-servers file
//! (the SHA-256 fingerprint of the server's certificate must be listed for the configured
//! `host:port`). With both, either suffices, as in Web3Signer (its known-servers trust falls back
//! to CA validation). With neither, HTTPS is refused: this crate carries no system trust roots.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::Error;

/// The ring provider, the one this project uses everywhere.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The client configuration for `host:port` trusting the CA file and/or the known-servers file
/// (each given as `(path, content)`; the path is only for messages).
pub(crate) fn client_config(
    host: &str,
    port: u16,
    ca: Option<(&Path, &[u8])>,
    known_servers: Option<(&Path, &str)>,
) -> Result<Arc<rustls::ClientConfig>, Error> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::TlsConfig(format!("TLS versions: {e}")))?;
    let roots = ca.map(|(path, pem)| ca_roots(path, pem)).transpose()?;
    let mut config = match (known_servers, roots) {
        (None, None) => {
            return Err(Error::TlsConfig(
                "an https vault address needs a CA file (the PEM of the CA that issued the vault's \
                 certificate; the system bundle, such as /etc/ssl/certs/ca-certificates.crt, \
                 works for a publicly issued one) or a known-servers file: no system trust roots \
                 are built in. Use an http:// address only to turn TLS off."
                    .to_owned(),
            ));
        }
        (None, Some(roots)) => builder.with_root_certificates(roots).with_no_client_auth(),
        (Some((path, text)), roots) => {
            let identifier = identifier(host, port);
            let mut known = parse_known_servers(text).map_err(|e| {
                Error::TlsConfig(format!("known-servers file {}: {e}", path.display()))
            })?;
            let fingerprints = known.remove(&identifier).unwrap_or_default();
            if fingerprints.is_empty() && roots.is_none() {
                return Err(Error::TlsConfig(format!(
                    "known-servers file {} has no entry for {identifier} (and no CA file is configured)",
                    path.display()
                )));
            }
            let ca = roots
                .map(|roots| {
                    WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                        .build()
                        .map_err(|e| Error::TlsConfig(format!("CA file: {e}")))
                })
                .transpose()?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(KnownServersVerifier {
                    identifier,
                    fingerprints,
                    ca,
                    provider,
                }))
                .with_no_client_auth()
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The certificates of a PEM CA file.
fn ca_roots(path: &Path, pem: &[u8]) -> Result<Arc<RootCertStore>, Error> {
    let bad = |e: String| Error::TlsConfig(format!("CA file {}: {e}", path.display()));
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| bad(format!("bad PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| bad(format!("bad certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(bad("no PEM certificate in it".to_owned()));
    }
    Ok(Arc::new(roots))
}

/// The known-servers identifier of a server: `host:port`, the host in lower case (an IPv6 address
/// in brackets).
fn identifier(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The entries of a known-servers file: for each `host:port`, the SHA-256 fingerprints listed.
///
/// The format of Web3Signer (through Tuweni): one `<host>:<port> <fingerprint>` per line, the
/// fingerprint in hex with or without colons; blank lines and lines starting with `#` are skipped.
pub(crate) fn parse_known_servers(text: &str) -> Result<HashMap<String, Vec<[u8; 32]>>, String> {
    let mut known: HashMap<String, Vec<[u8; 32]>> = HashMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |what: &str| format!("line {}: {what}", number + 1);
        let mut parts = line.splitn(2, char::is_whitespace);
        let (Some(server), Some(fingerprint)) = (parts.next(), parts.next()) else {
            return Err(bad("expected `<host>:<port> <SHA-256 fingerprint>`"));
        };
        let Some((host, port)) = server.rsplit_once(':') else {
            return Err(bad("the server must be `<host>:<port>`"));
        };
        let port: u16 = port
            .parse()
            .map_err(|_| bad("the port is not a number from 0 to 65535"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("the host is empty"));
        }
        let digits: String = fingerprint.trim().chars().filter(|c| *c != ':').collect();
        let digits = digits.strip_prefix("0x").unwrap_or(&digits);
        let mut sha256 = [0u8; 32];
        hex::decode_to_slice(digits, &mut sha256)
            .map_err(|_| bad("the fingerprint is not a SHA-256 fingerprint (32 bytes in hex)"))?;
        known
            .entry(identifier(host, port))
            .or_default()
            .push(sha256);
    }
    Ok(known)
}

/// Accepts the server's certificate when its SHA-256 fingerprint is listed for the configured
/// server, otherwise when it chains to the CA file (when there is one).
struct KnownServersVerifier {
    identifier: String,
    fingerprints: Vec<[u8; 32]>,
    ca: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for KnownServersVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KnownServersVerifier")
            .field("identifier", &self.identifier)
            .field("fingerprints", &self.fingerprints.len())
            .field("ca_fallback", &self.ca.is_some())
            .finish()
    }
}

/// Why a certificate was refused, in the TLS error.
#[derive(Debug)]
struct NotPinned(String);

impl fmt::Display for NotPinned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotPinned {}

impl ServerCertVerifier for KnownServersVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fingerprint: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if self.fingerprints.contains(&fingerprint) {
            return Ok(ServerCertVerified::assertion());
        }
        if let Some(ca) = &self.ca {
            return ca.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            );
        }
        let shown: Vec<String> = fingerprint.iter().map(|b| format!("{b:02X}")).collect();
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(
            rustls::OtherError(Arc::new(NotPinned(format!(
                "the certificate's SHA-256 fingerprint {} is not listed for {} in the known-servers file",
                shown.join(":"),
                self.identifier
            )))),
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "7C:B3:3E:F9:98:43:5E:62:69:9F:A9:9D:41:14:03:BA:83:24:AC:04:CE:BD:92:49:1B:8D:B2:A4:86:39:4C:BB";

    #[test]
    fn parses_the_web3signer_format() {
        let text = format!(
            "# vault servers\n\nlocalhost:8200 {FP}\n127.0.0.1:8200 {}\n  Vault.Example:443   {FP}  \n[::1]:8200 {FP}\n",
            FP.replace(':', "").to_lowercase()
        );
        let known = parse_known_servers(&text).unwrap();
        assert_eq!(known.len(), 4);
        assert_eq!(known["localhost:8200"][0][0], 0x7c);
        assert_eq!(known["127.0.0.1:8200"], known["localhost:8200"]);
        assert!(known.contains_key("vault.example:443"));
        assert!(known.contains_key(&identifier("::1", 8200)));
    }

    #[test]
    fn malformed_lines_name_their_number() {
        for (text, want) in [
            ("Illegal Known Servers.", "line 1: the server must be"),
            ("localhost:8200", "line 1: expected"),
            ("# c\nlocalhost:port AB", "line 2: the port"),
            ("localhost:8200 AB:CD", "line 1: the fingerprint"),
            ("localhost:8200 zz", "line 1: the fingerprint"),
            (":8200 AB", "line 1: the host is empty"),
        ] {
            let e = parse_known_servers(text).unwrap_err();
            assert!(e.starts_with(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn https_needs_some_trust() {
        let e = client_config("localhost", 8200, None, None).unwrap_err();
        assert!(
            matches!(e, Error::TlsConfig(ref m) if m.contains("CA file")),
            "{e}"
        );
        let path = Path::new("/k");
        let e = client_config(
            "localhost",
            8201,
            None,
            Some((path, &format!("localhost:8200 {FP}"))),
        )
        .unwrap_err();
        assert!(e.to_string().contains("no entry for localhost:8201"), "{e}");
        let e = client_config("localhost", 8200, Some((path, b"not pem")), None).unwrap_err();
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
        client_config(
            "localhost",
            8200,
            None,
            Some((path, &format!("localhost:8200 {FP}"))),
        )
        .unwrap();
    }
}
