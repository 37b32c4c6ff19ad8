//! TLS for the PostgreSQL store: libpq's `sslmode` and `sslrootcert` URL parameters over rustls.
//!
//! tokio-postgres knows only `sslmode=disable|prefer|require` and rejects unknown parameters, so
//! [`split_url`] takes `sslmode` and `sslrootcert` out of the URL and [`TlsSettings`] configures the
//! connector from them, with libpq's meaning:
//!
//! | `sslmode`     | TLS                          | certificate checked                                   |
//! |---------------|------------------------------|-------------------------------------------------------|
//! | `disable`     | never                        | —                                                     |
//! | `prefer`      | if the server offers it      | chain against `sslrootcert` when given, else nothing  |
//! | `require`     | always                       | chain against `sslrootcert` when given, else nothing  |
//! | `verify-ca`   | always                       | chain against `sslrootcert` (required)                |
//! | `verify-full` | always                       | chain against `sslrootcert` (required) and host name  |
//!
//! Unlike libpq, no default root file (`~/.postgresql/root.crt`) and no system roots
//! (`sslrootcert=system`) are read: the CA file is always named in the URL. Channel binding
//! (`SCRAM-SHA-256-PLUS`) is not offered; SCRAM-SHA-256 without it works over TLS as usual.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_cert_signed_by_trust_anchor};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

use crate::Error;

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<SslMode, Error> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(Error::Open(format!(
                    "invalid sslmode {other:?} in the PostgreSQL URL: use disable, prefer, require, \
                     verify-ca or verify-full"
                )));
            }
        })
    }

    /// The name as written in a URL.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// What tokio-postgres is told: whether TLS is attempted and whether it is mandatory.
    fn for_tokio_postgres(self) -> tokio_postgres::config::SslMode {
        match self {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        }
    }
}

/// The TLS part of a PostgreSQL URL, taken out of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsSettings {
    /// `sslmode`, if the URL gives one (libpq's default is `prefer`).
    pub(crate) mode: Option<SslMode>,
    /// `sslrootcert`: a PEM file of CA certificates.
    pub(crate) rootcert: Option<String>,
}

impl TlsSettings {
    /// The mode in force.
    pub(crate) fn effective_mode(&self) -> SslMode {
        self.mode.unwrap_or(SslMode::Prefer)
    }
}

/// Decodes `%XX` escapes (as tokio-postgres does for URL parameters).
fn percent_decode(s: &str) -> Result<String, Error> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out)
        .map_err(|_| Error::Open("a PostgreSQL URL parameter is not UTF-8".to_owned()))
}

/// Splits `sslmode` and `sslrootcert` out of a `postgres://` URL: returns the URL for
/// tokio-postgres (without them) and the settings. The query is found the way tokio-postgres
/// finds it: after the user info (up to the first `@`), at the first `?`.
pub(crate) fn split_url(url: &str) -> Result<(String, TlsSettings), Error> {
    let scheme_len = ["postgresql://", "postgres://"]
        .iter()
        .find(|s| url.starts_with(**s))
        .map_or(0, |s| s.len());
    let after_scheme = &url[scheme_len..];
    let creds_len = after_scheme.find('@').map_or(0, |i| i + 1);
    let rest = &after_scheme[creds_len..];
    let mut settings = TlsSettings {
        mode: None,
        rootcert: None,
    };
    let Some(q) = rest.find('?') else {
        return Ok((url.to_owned(), settings));
    };
    let head = &url[..scheme_len + creds_len + q];
    let mut kept = Vec::new();
    for param in rest[q + 1..].split('&') {
        let key = param.split_once('=').map(|(k, _)| k);
        let value = param.split_once('=').map(|(_, v)| v);
        match (key.map(percent_decode).transpose()?.as_deref(), value) {
            (Some("sslmode"), Some(v)) => {
                settings.mode = Some(SslMode::parse(&percent_decode(v)?)?)
            }
            (Some("sslrootcert"), Some(v)) => settings.rootcert = Some(percent_decode(v)?),
            _ => kept.push(param),
        }
    }
    let url = if kept.is_empty() {
        head.to_owned()
    } else {
        format!("{head}?{}", kept.join("&"))
    };
    Ok((url, settings))
}

/// The parsed tokio-postgres configuration and the TLS connector of a URL.
pub(crate) fn configure(
    url: &str,
) -> Result<(tokio_postgres::Config, Option<RustlsConnect>, TlsSettings), Error> {
    let (stripped, settings) = split_url(url)?;
    let mut cfg: tokio_postgres::Config = stripped.parse().map_err(|e| {
        Error::Open(format!(
            "invalid PostgreSQL URL: {}",
            crate::postgres::chain(&e)
        ))
    })?;
    let mode = settings.effective_mode();
    cfg.ssl_mode(mode.for_tokio_postgres());
    let connector = match mode {
        SslMode::Disable => None,
        _ => Some(RustlsConnect::new(mode, settings.rootcert.as_deref())?),
    };
    Ok((cfg, connector, settings))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads the CA certificates of `sslrootcert`.
fn root_store(path: &str) -> Result<RootCertStore, Error> {
    if path == "system" {
        return Err(Error::Open(
            "sslrootcert=system is not supported: name the CA file, for example \
             sslrootcert=/etc/ssl/certs/ca-certificates.crt"
                .to_owned(),
        ));
    }
    let pem = std::fs::read(path)
        .map_err(|e| Error::Open(format!("cannot read sslrootcert {path}: {e}")))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert =
            cert.map_err(|e| Error::Open(format!("sslrootcert {path} is not valid PEM: {e}")))?;
        roots.add(cert).map_err(|e| {
            Error::Open(format!(
                "sslrootcert {path} holds an unusable CA certificate: {e}"
            ))
        })?;
    }
    if roots.is_empty() {
        return Err(Error::Open(format!(
            "sslrootcert {path} holds no PEM certificate"
        )));
    }
    Ok(roots)
}

/// The certificate check of `prefer`, `require` and `verify-ca`: with roots (`sslrootcert`), the
/// chain is verified (rustls's chain check, without the host-name check that follows it in
/// `verify-full`); without roots (`prefer`/`require` only) any certificate is accepted. Either way
/// the handshake signatures are checked, so the session is bound to the key of the certificate shown.
#[derive(Debug)]
struct WithoutHostName {
    provider: Arc<CryptoProvider>,
    roots: Option<Arc<RootCertStore>>,
}

impl ServerCertVerifier for WithoutHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(roots) = &self.roots else {
            return Ok(ServerCertVerified::assertion());
        };
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
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
        verify_tls13_signature(
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

/// tokio-postgres' TLS connector over rustls (ring provider), configured from `sslmode` and
/// `sslrootcert`.
#[derive(Clone)]
pub(crate) struct RustlsConnect {
    config: Arc<ClientConfig>,
    mode: SslMode,
    rootcert: Option<Arc<str>>,
}

impl RustlsConnect {
    fn new(mode: SslMode, rootcert: Option<&str>) -> Result<Self, Error> {
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Open(format!("TLS configuration: {e}")))?;
        let roots = match (mode, rootcert) {
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
                return Err(Error::Open(format!(
                    "sslmode={} needs sslrootcert=<PEM file of the CA certificates> in the \
                     PostgreSQL URL",
                    mode.as_str()
                )));
            }
            (_, None) => None,
            (_, Some(path)) => Some(Arc::new(root_store(path)?)),
        };
        let verifier: Arc<dyn ServerCertVerifier> = match (mode, roots) {
            (SslMode::VerifyFull, Some(roots)) => {
                let path = rootcert.unwrap_or_default();
                WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|e| Error::Open(format!("sslrootcert {path}: {e}")))?
            }
            (_, roots) => Arc::new(WithoutHostName { provider, roots }),
        };
        let config = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(RustlsConnect {
            config: Arc::new(config),
            mode,
            rootcert: rootcert.map(Arc::from),
        })
    }
}

impl<S> MakeTlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsHandshake;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsHandshake, io::Error> {
        let name = ServerName::try_from(domain.to_owned()).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("host {domain:?} is not a valid TLS server name: {e}"),
            )
        })?;
        Ok(RustlsHandshake {
            connector: self.clone(),
            name,
        })
    }
}

/// One TLS handshake to a named server.
pub(crate) struct RustlsHandshake {
    connector: RustlsConnect,
    name: ServerName<'static>,
}

impl RustlsHandshake {
    /// Says why the handshake failed in the terms of the URL's parameters.
    fn explain(&self, e: io::Error) -> io::Error {
        let rootcert = self.connector.rootcert.as_deref().unwrap_or("");
        let mode = self.connector.mode.as_str();
        let name = self.name.to_str();
        let msg = match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            Some(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer | CertificateError::BadSignature,
            )) => format!(
                "the server certificate is not signed by a CA in sslrootcert {rootcert} \
                 (sslmode={mode})"
            ),
            Some(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => format!(
                "the server certificate is not valid for host {name} (sslmode={mode} checks the \
                 host name; {e})"
            ),
            Some(rustls::Error::InvalidCertificate(ce)) => format!(
                "the server certificate does not verify against sslrootcert {rootcert} \
                 (sslmode={mode}): {ce}"
            ),
            Some(other) => format!("TLS handshake with {name} failed: {other}"),
            None => format!("TLS handshake with {name} failed: {e}"),
        };
        io::Error::new(e.kind(), msg)
    }
}

impl<S> TlsConnect<S> for RustlsHandshake
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let connector = tokio_rustls::TlsConnector::from(self.connector.config.clone());
            match connector.connect(self.name.clone(), stream).await {
                Ok(tls) => Ok(RustlsStream(Box::new(tls))),
                Err(e) => Err(self.explain(e)),
            }
        })
    }
}

/// A TLS connection to the server.
pub(crate) struct RustlsStream<S>(Box<tokio_rustls::client::TlsStream<S>>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_taken_out_of_the_url() {
        let (url, s) = split_url(
            "postgres://u:p%3F@h:5/db?sslmode=verify-full&connect_timeout=3&sslrootcert=%2Ftmp%2Fca.pem",
        )
        .unwrap();
        assert_eq!(url, "postgres://u:p%3F@h:5/db?connect_timeout=3");
        assert_eq!(s.mode, Some(SslMode::VerifyFull));
        assert_eq!(s.rootcert.as_deref(), Some("/tmp/ca.pem"));

        let (url, s) = split_url("postgresql://h/db?sslmode=require").unwrap();
        assert_eq!(url, "postgresql://h/db");
        assert_eq!(s.effective_mode(), SslMode::Require);

        let (url, s) = split_url("postgres://h/db").unwrap();
        assert_eq!(url, "postgres://h/db");
        assert_eq!(s.effective_mode(), SslMode::Prefer);
        // A '?' in the user info is not the query (tokio-postgres reads up to the first '@').
        let (url, s) = split_url("postgres://u:a?b@h/db?sslmode=disable").unwrap();
        assert_eq!(url, "postgres://u:a?b@h/db");
        assert_eq!(s.mode, Some(SslMode::Disable));
    }

    #[test]
    fn a_bad_sslmode_or_a_missing_root_file_is_a_clear_open_error() {
        let e = configure("postgres://u:s3cret@h/db?sslmode=verify")
            .err()
            .unwrap();
        assert!(
            matches!(&e, Error::Open(m) if m.contains("invalid sslmode \"verify\"")),
            "{e}"
        );
        assert!(!e.to_string().contains("s3cret"));
        let e = configure("postgres://u:s3cret@h/db?sslmode=verify-full")
            .err()
            .unwrap();
        assert!(
            e.to_string()
                .contains("sslmode=verify-full needs sslrootcert"),
            "{e}"
        );
        let e =
            configure("postgres://u:s3cret@h/db?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem")
                .err()
                .unwrap();
        assert!(
            e.to_string()
                .contains("cannot read sslrootcert /nonexistent/ca.pem"),
            "{e}"
        );
        assert!(!e.to_string().contains("s3cret"));
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = configure(&format!(
            "postgres://h/db?sslmode=require&sslrootcert={}",
            empty.display()
        ))
        .err()
        .unwrap();
        assert!(e.to_string().contains("holds no PEM certificate"), "{e}");
        let e = configure("postgres://h/db?sslrootcert=system&sslmode=verify-full")
            .err()
            .unwrap();
        assert!(
            e.to_string()
                .contains("sslrootcert=system is not supported"),
            "{e}"
        );
        assert!(configure("postgres://h/db?sslmode=require").is_ok());
        let (_, tls, _) = configure("postgres://h/db?sslmode=disable").unwrap();
        assert!(tls.is_none());
    }
}
