//! HTTP/1.1 to one vault server: pooled connections, per-attempt timeout, retries with backoff.
//!
//! [`Endpoint::parse`] checks the configured address; [`Transport`] owns a pooled `hyper-util`
//! client whose connector dials the one configured `host:port` (TCP, then TLS when the address is
//! `https://`). [`Transport::send`] runs one call: each attempt (connect, request, whole body)
//! under the request timeout; connect errors, timeouts, HTTP 5xx and 429 are retried as the
//! [`RetryPolicy`] allows, TLS handshake failures and every other status are returned at once.
//! Bodies are read into zeroized buffers, capped at [`MAX_BODY`].

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use zeroize::Zeroizing;

use crate::Error;
use crate::config::{DEFAULT_PORT, RetryPolicy};
use crate::response::{error_message, truncate};

/// The largest answer body read (a KV v2 secret or a listing of many thousand keys fits).
pub(crate) const MAX_BODY: usize = 16 * 1024 * 1024;

/// A parsed vault address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `https://` (true) or `http://`.
    pub tls: bool,
    /// The host, an IPv6 address without brackets.
    pub host: String,
    /// The port ([`DEFAULT_PORT`] when the address names none).
    pub port: u16,
}

impl Endpoint {
    /// Parses `http(s)://host[:port][/]`.
    pub(crate) fn parse(address: &str) -> Result<Endpoint, Error> {
        let bad = |why: &str| Error::Config(format!("vault address {address:?}: {why}"));
        if address.contains('@') {
            // Never echo an address that may carry credentials.
            return Err(Error::Config(
                "the vault address must not carry credentials (user@host): use the token or AppRole settings"
                    .to_owned(),
            ));
        }
        let uri: Uri = address
            .trim()
            .parse()
            .map_err(|_| bad("not a URL such as https://vault.example:8200"))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            Some(_) => {
                return Err(bad(
                    "the scheme must be https:// (or http:// for plain HTTP)",
                ));
            }
            None => {
                return Err(bad(
                    "name the scheme: https://host:port, or http://host:port for plain HTTP",
                ));
            }
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(bad(
                "give only scheme, host and port (API paths are given to each operation)",
            ));
        }
        Ok(Endpoint {
            tls,
            host,
            port: uri.port_u16().unwrap_or(DEFAULT_PORT),
        })
    }

    /// `host:port` (an IPv6 host in brackets).
    pub(crate) fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// One request to send: `path_and_query` starts with `/v1/`; `label` names it in errors and logs.
pub(crate) struct Call<'a> {
    pub method: Method,
    pub path_and_query: &'a str,
    pub label: &'a str,
    pub token: Option<&'a HeaderValue>,
    pub body: Option<Bytes>,
}

/// A complete answer.
pub(crate) struct Reply {
    pub status: u16,
    pub body: Zeroizing<Vec<u8>>,
}

/// Why one attempt failed.
enum Failure {
    /// Worth another attempt.
    Transient(String),
    /// The TLS handshake failed: another attempt would fail the same way.
    Tls(String),
}

/// The pooled HTTP client of one server.
pub(crate) struct Transport {
    client: Client<Connector, Full<Bytes>>,
    base: String,
    authority: String,
    timeout: Duration,
    retry: RetryPolicy,
    namespace: Option<HeaderValue>,
}

impl Transport {
    /// A client for `endpoint`, over TLS with `tls` when the endpoint is `https://`.
    pub(crate) fn new(
        endpoint: &Endpoint,
        tls: Option<Arc<rustls::ClientConfig>>,
        timeout: Duration,
        retry: RetryPolicy,
        namespace: Option<&str>,
    ) -> Result<Transport, Error> {
        let tls = match tls {
            Some(config) => {
                let name = ServerName::try_from(endpoint.host.clone()).map_err(|_| {
                    Error::TlsConfig(format!(
                        "{:?} is not a host name or IP address usable for TLS",
                        endpoint.host
                    ))
                })?;
                Some((TlsConnector::from(config), name))
            }
            None => None,
        };
        let namespace = namespace
            .map(|ns| {
                HeaderValue::from_str(ns).map_err(|_| {
                    Error::Config("the namespace has characters not allowed in a header".into())
                })
            })
            .transpose()?;
        let connector = Connector {
            host: endpoint.host.clone().into(),
            port: endpoint.port,
            tls,
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        let authority = endpoint.authority();
        let scheme = if endpoint.tls { "https" } else { "http" };
        Ok(Transport {
            client,
            base: format!("{scheme}://{authority}"),
            authority,
            timeout,
            retry,
            namespace,
        })
    }

    /// `host:port` of the server.
    pub(crate) fn authority(&self) -> &str {
        &self.authority
    }

    /// Sends `call`, retrying transient failures; any answer that is not 5xx or 429 is returned.
    pub(crate) async fn send(&self, call: &Call<'_>) -> Result<Reply, Error> {
        let start = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let reason = match self.attempt(call).await {
                Ok(reply) if reply.status >= 500 || reply.status == 429 => {
                    let message = error_message(&reply.body);
                    if message.is_empty() {
                        format!("HTTP {}", reply.status)
                    } else {
                        format!("HTTP {}: {message}", reply.status)
                    }
                }
                Ok(reply) => return Ok(reply),
                Err(Failure::Tls(reason)) => {
                    return Err(Error::TlsHandshake {
                        address: self.authority.clone(),
                        reason,
                    });
                }
                Err(Failure::Transient(reason)) => reason,
            };
            let wait = self.retry.backoff(attempt);
            if attempt >= self.retry.max_attempts.max(1)
                || start.elapsed() + wait > self.retry.max_elapsed
            {
                return Err(Error::Unavailable {
                    address: self.authority.clone(),
                    path: call.label.to_owned(),
                    attempts: attempt,
                    elapsed: start.elapsed(),
                    reason,
                });
            }
            tracing::warn!(
                vault = %self.authority,
                path = call.label,
                attempt,
                retry_in_ms = wait.as_millis() as u64,
                %reason,
                "vault request failed; retrying"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// One attempt: connect (or reuse a pooled connection), send, read the whole body.
    async fn attempt(&self, call: &Call<'_>) -> Result<Reply, Failure> {
        let uri = format!("{}{}", self.base, call.path_and_query);
        let mut request = Request::builder().method(call.method.clone()).uri(uri);
        if let Some(token) = call.token {
            request = request.header("X-Vault-Token", token.clone());
        }
        if let Some(namespace) = &self.namespace {
            request = request.header("X-Vault-Namespace", namespace.clone());
        }
        let body = match &call.body {
            Some(body) => {
                request = request.header(CONTENT_TYPE, "application/json");
                Full::new(body.clone())
            }
            None => Full::new(Bytes::new()),
        };
        let request = request
            .body(body)
            .map_err(|e| Failure::Transient(format!("cannot build the request: {e}")))?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(classify)?;
            let status = response.status().as_u16();
            let hint = response
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<usize>().ok());
            let body = read_body(response.into_body(), hint).await?;
            Ok(Reply { status, body })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(Failure::Transient(format!(
                "no complete answer within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }
}

/// The whole body in a zeroized buffer, refused past [`MAX_BODY`].
async fn read_body(mut body: Incoming, hint: Option<usize>) -> Result<Zeroizing<Vec<u8>>, Failure> {
    if hint.is_some_and(|n| n > MAX_BODY) {
        return Err(Failure::Transient(format!(
            "answer larger than {MAX_BODY} bytes"
        )));
    }
    // Sized once from Content-Length, so growing does not leave copies behind.
    let mut out = Zeroizing::new(Vec::with_capacity(hint.unwrap_or(8192)));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Failure::Transient(format!("reading the answer: {e}")))?;
        if let Some(data) = frame.data_ref() {
            if out.len() + data.len() > MAX_BODY {
                return Err(Failure::Transient(format!(
                    "answer larger than {MAX_BODY} bytes"
                )));
            }
            if out.len() + data.len() > out.capacity() {
                let mut bigger = Zeroizing::new(Vec::with_capacity(
                    (out.len() + data.len()).max(out.capacity() * 2),
                ));
                bigger.extend_from_slice(&out);
                out = bigger;
            }
            out.extend_from_slice(data);
        }
    }
    Ok(out)
}

/// Sorts a client error into a TLS refusal or a transient failure, with the causes in the text.
fn classify(error: hyper_util::client::legacy::Error) -> Failure {
    let mut causes = Vec::new();
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&error);
    while let Some(cause) = source {
        if let Some(connect) = cause.downcast_ref::<ConnectError>() {
            return match connect {
                ConnectError::Tls(e) => match e.get_ref().and_then(|i| i.downcast_ref()) {
                    Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(
                        other,
                    ))) => {
                        Failure::Tls(truncate(&format!("invalid peer certificate: {other}"), 300))
                    }
                    Some(tls) => Failure::Tls(truncate(&tls.to_string(), 300)),
                    None => Failure::Transient(format!("TLS connection failed: {e}")),
                },
                ConnectError::Tcp(e) => Failure::Transient(format!("cannot connect: {e}")),
            };
        }
        causes.push(cause.to_string());
        source = cause.source();
    }
    if causes.is_empty() {
        Failure::Transient(error.to_string())
    } else {
        Failure::Transient(truncate(&causes.join(": "), 300))
    }
}

/// Why the connector could not give a connection.
#[derive(Debug)]
enum ConnectError {
    Tcp(io::Error),
    Tls(io::Error),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Tcp(e) => write!(f, "cannot connect: {e}"),
            ConnectError::Tls(e) => write!(f, "TLS handshake failed: {e}"),
        }
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConnectError::Tcp(e) | ConnectError::Tls(e) => Some(e),
        }
    }
}

/// Dials the one configured server, whatever the URI says (the URIs are built from it).
#[derive(Clone)]
struct Connector {
    host: Arc<str>,
    port: u16,
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<Stream>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<TokioIo<Stream>, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let tcp = TcpStream::connect((&*this.host, this.port))
                .await
                .map_err(ConnectError::Tcp)?;
            let _ = tcp.set_nodelay(true);
            match this.tls {
                None => Ok(TokioIo::new(Stream::Plain(tcp))),
                Some((connector, name)) => {
                    let tls = connector
                        .connect(name, tcp)
                        .await
                        .map_err(ConnectError::Tls)?;
                    Ok(TokioIo::new(Stream::Tls(Box::new(tls))))
                }
            }
        })
    }
}

/// A connection, plain or TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let e = Endpoint::parse("https://vault.example:8443").unwrap();
        assert_eq!(
            (e.tls, e.host.as_str(), e.port),
            (true, "vault.example", 8443)
        );
        let e = Endpoint::parse("http://127.0.0.1/").unwrap();
        assert_eq!((e.tls, e.host.as_str(), e.port), (false, "127.0.0.1", 8200));
        let e = Endpoint::parse("https://[::1]:8200").unwrap();
        assert_eq!(
            (e.host.as_str(), e.authority()),
            ("::1", "[::1]:8200".to_owned())
        );
        for bad in [
            "vault.example:8200",
            "ftp://vault.example",
            "https://vault.example:8200/v1/secret",
            "https://",
            "",
        ] {
            assert!(
                matches!(Endpoint::parse(bad), Err(Error::Config(_))),
                "{bad}"
            );
        }
        let e = Endpoint::parse("https://user:hunter2@vault.example").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}
