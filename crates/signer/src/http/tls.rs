//! TLS for the signing API, configured as ferrosigner's PEM flags or as Web3Signer's flags.
//!
//! The server's key and certificate chain come from PEM files (`--tls-cert-file`, `--tls-key-file`) or from a
//! PKCS#12 keystore (`--tls-keystore-file` with `--tls-keystore-password-file`, whose first line is the
//! password). Clients are authenticated by either or both of:
//! - `--tls-client-ca-file`: a certificate chaining to one of these CAs, with the client-auth key usage;
//! - `--tls-known-clients-file` (Web3Signer's format): a certificate whose SHA-256 fingerprint (of its DER) is
//!   listed, whatever its issuer, validity or key usage, the way Web3Signer pins self-signed clients such as
//!   Lighthouse's. The handshake signature is still verified with the certificate's key.
//!
//! `--tls-allow-any-client` serves TLS without asking for a client certificate, as in Web3Signer, and cannot
//! be combined with the two above. As in Web3Signer, a PKCS#12 keystore needs one of the three to be given;
//! the PEM flags alone keep meaning TLS without client authentication.
//!
//! rustls with the ring provider. Connections are served by [`super::server::serve`], which runs each
//! handshake in the connection's own task within the header timeout, so a slow client never holds up the
//! accept loop.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore,
    SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use sha2::{Digest, Sha256};
use tokio_rustls::TlsAcceptor;
use zeroize::Zeroizing;

use crate::config::RunArgs;

/// Where the server's certificate chain and private key come from.
#[derive(Debug, Clone, Copy)]
pub enum Identity<'a> {
    /// A PEM certificate chain and a PEM private key.
    Pem {
        /// The certificate chain, leaf first.
        cert: &'a Path,
        /// The private key of the leaf.
        key: &'a Path,
    },
    /// A PKCS#12 keystore and the file holding its password.
    Pkcs12 {
        /// The keystore.
        keystore: &'a Path,
        /// The file whose first line is the keystore's password.
        password_file: &'a Path,
    },
}

/// The TLS settings of the signing API, checked for conflicts.
#[derive(Debug, Clone, Copy)]
pub struct TlsSettings<'a> {
    /// The server's certificate and key.
    pub identity: Identity<'a>,
    /// Accept clients whose certificate chains to one of these PEM CAs.
    pub client_ca: Option<&'a Path>,
    /// Accept clients whose certificate fingerprint is in this known-clients file.
    pub known_clients: Option<&'a Path>,
    /// Ask clients for no certificate.
    pub allow_any_client: bool,
}

impl<'a> TlsSettings<'a> {
    /// The TLS settings the `run` flags give, `None` when TLS is off; an error names the flags that
    /// conflict or are missing. (The command line refuses most of these already; this also covers
    /// settings that reach [`RunArgs`] by other ways.)
    pub fn from_args(args: &'a RunArgs) -> anyhow::Result<Option<Self>> {
        let pem = match (args.tls_cert_file.as_deref(), args.tls_key_file.as_deref()) {
            (Some(cert), Some(key)) => Some(Identity::Pem { cert, key }),
            (None, None) => None,
            _ => bail!("--tls-cert-file and --tls-key-file must be given together"),
        };
        let pkcs12 = match (
            args.tls_keystore_file.as_deref(),
            args.tls_keystore_password_file.as_deref(),
        ) {
            (Some(keystore), Some(password_file)) => Some(Identity::Pkcs12 {
                keystore,
                password_file,
            }),
            (None, None) => None,
            _ => {
                bail!("--tls-keystore-file and --tls-keystore-password-file must be given together")
            }
        };
        let client_ca = args.tls_client_ca_file.as_deref();
        let known_clients = args.tls_known_clients_file.as_deref();
        let allow_any_client = args.tls_allow_any_client;
        let identity = match (pem, pkcs12) {
            (Some(_), Some(_)) => bail!(
                "--tls-keystore-file (PKCS#12) and --tls-cert-file/--tls-key-file (PEM) both give the \
                 server's certificate: give one of them"
            ),
            (Some(identity), None) | (None, Some(identity)) => identity,
            (None, None) => {
                let client_flag = [
                    (client_ca.is_some(), "--tls-client-ca-file"),
                    (known_clients.is_some(), "--tls-known-clients-file"),
                    (allow_any_client, "--tls-allow-any-client"),
                ]
                .into_iter()
                .find_map(|(given, flag)| given.then_some(flag));
                if let Some(flag) = client_flag {
                    bail!("{flag} needs TLS: give --tls-keystore-file or --tls-cert-file");
                }
                return Ok(None);
            }
        };
        if allow_any_client && (client_ca.is_some() || known_clients.is_some()) {
            bail!(
                "--tls-allow-any-client serves clients without a certificate: it cannot be combined with \
                 --tls-known-clients-file or --tls-client-ca-file"
            );
        }
        if matches!(identity, Identity::Pkcs12 { .. })
            && !allow_any_client
            && client_ca.is_none()
            && known_clients.is_none()
        {
            bail!(
                "--tls-keystore-file needs a client policy, as in Web3Signer: --tls-known-clients-file, \
                 --tls-client-ca-file, or --tls-allow-any-client=true"
            );
        }
        Ok(Some(Self {
            identity,
            client_ca,
            known_clients,
            allow_any_client,
        }))
    }
}

/// Builds the acceptor: loads the server's certificate and key, and the client policy.
pub fn acceptor(settings: &TlsSettings<'_>) -> anyhow::Result<TlsAcceptor> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (certs, key) = match settings.identity {
        Identity::Pem { cert, key } => load_pem(cert, key)?,
        Identity::Pkcs12 {
            keystore,
            password_file,
        } => load_pkcs12(keystore, password_file)?,
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let ca_verifier = match settings.client_ca {
        None => None,
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca)
                .with_context(|| format!("reading client CA {}", ca.display()))?
            {
                roots
                    .add(c.with_context(|| format!("parsing client CA {}", ca.display()))?)
                    .with_context(|| format!("client CA {}", ca.display()))?;
            }
            if roots.is_empty() {
                bail!("no certificate in client CA file {}", ca.display());
            }
            Some(
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .context("client certificate verifier")?,
            )
        }
    };
    let known = match settings.known_clients {
        None => None,
        Some(path) => Some(KnownClients::load(path)?),
    };
    let builder = match (known, ca_verifier) {
        (None, None) => builder.with_no_client_auth(),
        (None, Some(ca)) => builder.with_client_cert_verifier(ca),
        (Some(known), ca) => {
            if known.is_empty() && ca.is_none() {
                tracing::warn!(
                    file = %settings.known_clients.unwrap_or(Path::new("")).display(),
                    "the known-clients file lists no client: every client is refused"
                );
            }
            builder.with_client_cert_verifier(Arc::new(KnownClientsVerifier {
                known,
                ca,
                algorithms: provider.signature_verification_algorithms,
            }))
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .context("TLS certificate and key do not match")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn load_pem(
    cert: &Path,
    key: &Path,
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading TLS certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing TLS certificate {}", cert.display()))?;
    if certs.is_empty() {
        bail!("no certificate in {}", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading TLS key {}", key.display()))?;
    Ok((certs, key))
}

/// The password of a keystore: the first line of its file, without the line ending (as Web3Signer reads
/// it). It never reaches a message.
fn read_password(file: &Path) -> anyhow::Result<Zeroizing<String>> {
    let bytes = Zeroizing::new(
        std::fs::read(file)
            .with_context(|| format!("reading TLS keystore password file {}", file.display()))?,
    );
    let Ok(text) = std::str::from_utf8(&bytes) else {
        bail!(
            "TLS keystore password file {} is not UTF-8 text",
            file.display()
        );
    };
    Ok(Zeroizing::new(
        text.lines().next().unwrap_or_default().to_owned(),
    ))
}

/// The key and certificate chain (leaf first) of a PKCS#12 keystore. With several keys, the first by alias
/// is used and the choice logged.
fn load_pkcs12(
    keystore: &Path,
    password_file: &Path,
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    use p12_keystore::{KeyStore, KeyStoreEntry, Pkcs12ImportPolicy};

    let password = read_password(password_file)?;
    let data = std::fs::read(keystore)
        .with_context(|| format!("reading TLS keystore {}", keystore.display()))?;
    // Relaxed: a key without its certificate is kept, to be reported as such rather than as no key.
    let store = KeyStore::from_pkcs12(&data, &password, Pkcs12ImportPolicy::Relaxed).map_err(
        |e| match e {
            p12_keystore::error::Error::MacError(_) => anyhow::anyhow!(
                "TLS keystore {}: wrong password (from {}): the keystore's integrity check failed",
                keystore.display(),
                password_file.display()
            ),
            e => anyhow::anyhow!(
                "TLS keystore {} cannot be read as PKCS#12 with the password from {}: {e}",
                keystore.display(),
                password_file.display()
            ),
        },
    )?;
    let chains: Vec<_> = store
        .entries()
        .filter_map(|(alias, entry)| match entry {
            KeyStoreEntry::PrivateKeyChain(chain) => Some((alias, chain)),
            _ => None,
        })
        .collect();
    let Some(&(alias, chain)) = chains.first() else {
        let certs = store
            .entries()
            .filter(|(_, e)| matches!(e, KeyStoreEntry::Certificate(_)))
            .count();
        bail!(
            "TLS keystore {} holds no private key ({certs} certificate(s) only): it needs the server's \
             key and certificate",
            keystore.display()
        );
    };
    if chains.len() > 1 {
        tracing::warn!(keystore = %keystore.display(), alias, keys = chains.len(),
            "the TLS keystore holds several keys; serving the first");
    }
    if chain.certs().is_empty() {
        bail!(
            "TLS keystore {}: the private key {alias:?} has no certificate in the keystore",
            keystore.display()
        );
    }
    let certs = chain
        .certs()
        .iter()
        .map(|c| CertificateDer::from(c.as_der().to_vec()))
        .collect();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(chain.key().as_der().to_vec()));
    Ok((certs, key))
}

/// A SHA-256 certificate fingerprint.
pub type Fingerprint = [u8; 32];

/// The SHA-256 fingerprint of a DER certificate, as `openssl x509 -fingerprint -sha256` and `keytool`
/// compute it.
pub fn fingerprint(cert_der: &[u8]) -> Fingerprint {
    Sha256::digest(cert_der).into()
}

/// A fingerprint written as Web3Signer's known-clients file and `openssl`/`keytool` write it:
/// upper-case hex bytes separated by colons.
pub fn format_fingerprint(fingerprint: &Fingerprint) -> String {
    fingerprint
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Web3Signer's known-clients file: one `<name> <SHA-256 fingerprint>` per line, the fingerprint as hex
/// bytes with or without colons (either case); blank lines and lines starting with `#` are skipped. The
/// name labels the client in logs (Web3Signer also wants it to equal the certificate's common name; the
/// fingerprint already fixes the whole certificate, so it is not compared here).
#[derive(Debug, Clone, Default)]
pub struct KnownClients {
    by_fingerprint: HashMap<Fingerprint, String>,
}

impl KnownClients {
    /// Reads and parses the file; an error names the file and the line.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading known-clients file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("known-clients file {}", path.display()))
    }

    /// Parses the file's text.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut by_fingerprint = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let n = i + 1;
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [name, hex_fingerprint] = fields[..] else {
                bail!("line {n}: expected `<name> <SHA-256 fingerprint>`, found {line:?}");
            };
            let digits = hex_fingerprint.replace(':', "");
            let digits = digits
                .strip_prefix("0x")
                .or_else(|| digits.strip_prefix("0X"))
                .unwrap_or(&digits);
            let bytes = hex::decode(digits).with_context(|| {
                format!("line {n}: the fingerprint {hex_fingerprint:?} is not hex")
            })?;
            let Ok(fingerprint) = Fingerprint::try_from(bytes.as_slice()) else {
                bail!(
                    "line {n}: the fingerprint of {name:?} has {} bytes; a SHA-256 fingerprint has 32",
                    bytes.len()
                );
            };
            by_fingerprint.insert(fingerprint, name.to_owned());
        }
        Ok(Self { by_fingerprint })
    }

    /// The name a certificate's fingerprint is listed under.
    pub fn name_of(&self, cert_der: &[u8]) -> Option<&str> {
        self.by_fingerprint
            .get(&fingerprint(cert_der))
            .map(String::as_str)
    }

    /// How many clients are listed.
    pub fn len(&self) -> usize {
        self.by_fingerprint.len()
    }

    /// Whether no client is listed.
    pub fn is_empty(&self) -> bool {
        self.by_fingerprint.is_empty()
    }
}

/// Requires a client certificate that is either in the known-clients file (by fingerprint, whatever its
/// issuer, validity or key usage) or accepted by the CA verifier. The handshake signature is verified with
/// the provider's algorithms either way.
#[derive(Debug)]
struct KnownClientsVerifier {
    known: KnownClients,
    ca: Option<Arc<dyn ClientCertVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for KnownClientsVerifier {
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    // No CA names are sent: with names, some clients (Java's) would offer only a certificate issued under
    // them, never a pinned self-signed one.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if let Some(name) = self.known.name_of(end_entity) {
            tracing::debug!(client = name, "TLS client accepted by its fingerprint");
            return Ok(ClientCertVerified::assertion());
        }
        let unknown = format!(
            "client certificate with SHA-256 fingerprint {} is not in the known-clients file",
            format_fingerprint(&fingerprint(end_entity))
        );
        let refusal = match &self.ca {
            None => unknown,
            Some(ca) => match ca.verify_client_cert(end_entity, intermediates, now) {
                Ok(verified) => return Ok(verified),
                Err(e) => format!("{unknown}, nor accepted by the client CA: {e}"),
            },
        };
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(
            OtherError(Arc::new(Refused(refusal))),
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Why a client certificate was refused (in the handshake failure the server logs at debug level).
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_clients_file_format() {
        let a = [0xABu8; 32];
        let text = format!(
            "# clients\n\n  lighthouse {}  \nteku {}\r\n",
            format_fingerprint(&a),
            hex::encode([0x01u8; 32])
        );
        let known = KnownClients::parse(&text).unwrap();
        assert_eq!(known.len(), 2);
        assert!(known.by_fingerprint.contains_key(&a));
        assert_eq!(known.by_fingerprint[&[0x01u8; 32]], "teku");
        assert!(KnownClients::parse("").unwrap().is_empty());
        for (bad, mention) in [
            ("lighthouse\n", "line 1: expected"),
            ("a AB:CD extra\n", "expected"),
            (
                "# c\nlighthouse ZZ:01\n",
                "line 2: the fingerprint \"ZZ:01\" is not hex",
            ),
            ("lighthouse AB:CD\n", "has 2 bytes"),
        ] {
            let err = KnownClients::parse(bad).unwrap_err();
            assert!(format!("{err:#}").contains(mention), "{bad:?}: {err:#}");
        }
    }

    #[test]
    fn fingerprints_are_written_as_openssl_writes_them() {
        let mut f = [0u8; 32];
        f[0] = 0x0A;
        f[31] = 0xFF;
        let s = format_fingerprint(&f);
        assert!(s.starts_with("0A:00:"), "{s}");
        assert!(s.ends_with(":00:FF"), "{s}");
        assert_eq!(s.len(), 32 * 3 - 1);
    }
}
