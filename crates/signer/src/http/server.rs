//! The accept loop and connection handling, for plain TCP and TLS alike, with server-side limits.
//!
//! - **Connections**: at most [`ServerLimits::max_connections`] are served at once. A connection beyond
//!   that gets an immediate `503` JSON answer with `Retry-After` (over TLS after the handshake) and is
//!   closed, so a flood never makes another client hang and never exhausts the open-file limit. At most
//!   [`REJECTING_AT_ONCE`] such answers are under way; a connection beyond those is closed at once.
//! - **Request head**: a connection owes its request line and headers within
//!   [`ServerLimits::header_read_timeout`] of connecting or of sending the first byte of a request; a
//!   slower one (slow-loris) is closed. Heads are limited to [`MAX_HEADER_BYTES`].
//! - **Request body**: the whole body must arrive within [`ServerLimits::body_read_timeout`] of the head;
//!   otherwise the request is answered `408` JSON and the connection closed.
//! - **Idle keep-alive**: a connection with no request for [`ServerLimits::idle_timeout`] is closed.
//! - **Shutdown**: on the signal the listener closes, connections that are idle or still sending a head
//!   are closed, in-flight requests finish (their connections close after the response) until
//!   [`ServerLimits::shutdown_timeout`], and whatever remains is dropped: [`serve`] returns within that
//!   bound.
//! - **hyper's own error answers** (`400` malformed request, `414` URI too long, `431` headers too large)
//!   are written by hyper with an empty body; [`WatchedIo`] rewrites exactly those heads into the same
//!   status with a JSON `{"error": …}` body.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// Largest request head (request line and headers) in bytes; a larger one gets `431`. Above hyper's
/// URI limit (65,534 bytes), so that a longer URI gets its own `414`.
pub const MAX_HEADER_BYTES: usize = 96 << 10;

/// Connections answered `503` at once while the connection cap is reached; beyond these, a new
/// connection is closed without an answer.
pub const REJECTING_AT_ONCE: usize = 64;

/// How long a refused connection is kept to let the client read the `503` before the socket closes.
const REJECT_LINGER: Duration = Duration::from_secs(2);

/// Server-side limits of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Time to send a request head, from connecting or from the first byte of a request.
    pub header_read_timeout: Duration,
    /// Time to send a whole request body, from the end of its head.
    pub body_read_timeout: Duration,
    /// Time an idle keep-alive connection stays open.
    pub idle_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// Time shutdown lets in-flight requests finish.
    pub shutdown_timeout: Duration,
}

impl ServerLimits {
    /// The limits given on the command line.
    pub fn from_args(args: &crate::config::RunArgs) -> Self {
        Self {
            header_read_timeout: Duration::from_secs(args.http_header_read_timeout_seconds),
            body_read_timeout: Duration::from_secs(args.http_body_read_timeout_seconds),
            idle_timeout: Duration::from_secs(args.idle_connection_timeout_seconds),
            max_connections: args.http_max_connections,
            shutdown_timeout: Duration::from_secs(args.shutdown_timeout_seconds),
        }
    }

    /// The same limits for the metrics listener, with room for a few scrapers only.
    pub fn for_metrics(self) -> Self {
        Self {
            max_connections: self.max_connections.min(32),
            ..self
        }
    }
}

/// Serves `router` on `listener` (over TLS with `tls`) within `limits` until `shutdown` completes, then
/// shuts down within [`ServerLimits::shutdown_timeout`] (see the module documentation).
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let rejecting = Arc::new(Semaphore::new(REJECTING_AT_ONCE));
    let (stop, stopped) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // e.g. EMFILE: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            Some(_) = connections.join_next() => continue,
            () = &mut shutdown => break,
        };
        // Responses are small and latency matters more than packet count.
        let _ = stream.set_nodelay(true);
        match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                let connection = Connection {
                    router: router.clone(),
                    limits,
                    stopped: stopped.clone(),
                    peer,
                    _slot: slot,
                };
                connections.spawn(connection.run(stream, tls.clone()));
            }
            Err(_) => {
                tracing::debug!(%peer, max = limits.max_connections, "connection cap reached; refusing");
                let Ok(permit) = rejecting.clone().try_acquire_owned() else {
                    continue;
                };
                let tls = tls.clone();
                connections.spawn(async move {
                    match tls {
                        None => refuse(stream).await,
                        Some(acceptor) => {
                            let handshake = acceptor.accept(stream);
                            if let Ok(Ok(stream)) =
                                tokio::time::timeout(REJECT_LINGER, handshake).await
                            {
                                refuse(stream).await;
                            }
                        }
                    }
                    drop(permit);
                });
            }
        }
    }
    drop(listener);
    let _ = stop.send(true);
    let drained = tokio::time::timeout(limits.shutdown_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            seconds = limits.shutdown_timeout.as_secs_f64(),
            "shutdown timeout reached; closing the remaining connections"
        );
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
    Ok(())
}

/// Answers a connection over the cap with `503` and closes it, after letting the client read the answer.
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) {
    let body = serde_json::json!({ "error": "too many open connections; retry later" }).to_string();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         retry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(REJECT_LINGER, async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await?;
        // Read until the client closes: closing with its request unread would reset the connection and
        // could destroy the answer before the client reads it.
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, io::Error>(())
    })
    .await;
}

/// What a connection is doing, for its timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Connected, or started sending a request head: the header timeout runs.
    ReadingHead,
    /// A request is being handled (body, handler, response): no connection timeout runs.
    Busy,
    /// Between requests: the idle timeout runs.
    Idle,
}

/// A connection's phase, shared by its IO, its service and its supervising task.
struct ConnState {
    phase: Mutex<(Phase, Instant)>,
    in_flight: AtomicUsize,
    changed: Notify,
}

impl ConnState {
    fn new() -> Self {
        Self {
            phase: Mutex::new((Phase::ReadingHead, Instant::now())),
            in_flight: AtomicUsize::new(0),
            changed: Notify::new(),
        }
    }

    fn phase(&self) -> (Phase, Instant) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, phase: Phase, only_from: Option<Phase>) {
        let mut current = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        if only_from.is_none_or(|from| current.0 == from) {
            *current = (phase, Instant::now());
            drop(current);
            self.changed.notify_one();
        }
    }

    /// Bytes arrived: an idle connection starts a request head.
    fn on_read(&self) {
        self.set(Phase::ReadingHead, Some(Phase::Idle));
    }

    fn on_request(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.set(Phase::Busy, None);
    }

    fn on_response_done(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.set(Phase::Idle, None);
        }
    }
}

/// One accepted connection.
struct Connection {
    router: Router,
    limits: ServerLimits,
    stopped: watch::Receiver<bool>,
    peer: SocketAddr,
    _slot: OwnedSemaphorePermit,
}

impl Connection {
    async fn run(mut self, stream: TcpStream, tls: Option<TlsAcceptor>) {
        let Some(acceptor) = tls else {
            return self.serve(stream).await;
        };
        let handshake =
            tokio::time::timeout(self.limits.header_read_timeout, acceptor.accept(stream));
        let tls = tokio::select! {
            done = handshake => done,
            _ = self.stopped.wait_for(|stop| *stop) => return,
        };
        match tls {
            Ok(Ok(tls)) => self.serve(tls).await,
            Ok(Err(e)) => tracing::debug!(peer = %self.peer, "TLS handshake failed: {e}"),
            Err(_) => tracing::debug!(peer = %self.peer, "TLS handshake timed out"),
        }
    }

    /// Serves HTTP/1.1 on `stream` until it closes, a timeout closes it, or shutdown ends it.
    async fn serve<S>(mut self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let state = Arc::new(ConnState::new());
        let io = WatchedIo {
            io: stream,
            state: state.clone(),
            pending: None,
        };
        let service = ConnService {
            router: self.router.clone(),
            state: state.clone(),
            body_read_timeout: self.limits.body_read_timeout,
        };
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            // The header timeout is ours (hyper's would also close idle keep-alive connections).
            .header_read_timeout(None)
            .max_header_size(MAX_HEADER_BYTES);
        let connection = builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(connection);
        let mut draining = false;
        loop {
            let (phase, since) = state.phase();
            // Shutting down, a half-sent head is dropped; an idle connection is closed by hyper's graceful
            // shutdown once the last response is flushed.
            if draining && phase == Phase::ReadingHead {
                return;
            }
            let deadline = match phase {
                Phase::ReadingHead => Some(since + self.limits.header_read_timeout),
                Phase::Idle => Some(since + self.limits.idle_timeout),
                Phase::Busy => None,
            };
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(peer = %self.peer, "connection ended: {e}");
                    }
                    return;
                }
                () = state.changed.notified() => {}
                () = sleep_until(deadline) => {
                    if state.phase() == (phase, since) {
                        tracing::debug!(peer = %self.peer, ?phase, "connection timed out; closing");
                        return;
                    }
                }
                _ = self.stopped.wait_for(|stop| *stop), if !draining => {
                    draining = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The hyper service of one connection: the router, with the body deadline and phase tracking.
#[derive(Clone)]
struct ConnService {
    router: Router,
    state: Arc<ConnState>,
    body_read_timeout: Duration,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        self.state.on_request();
        let done = ResponseDone(self.state.clone());
        let timed_out = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now() + self.body_read_timeout;
        let request = request.map(|body| {
            Body::new(TimedBody {
                inner: body,
                deadline,
                sleep: None,
                timed_out: timed_out.clone(),
            })
        });
        let router = self.router.clone();
        let limit = self.body_read_timeout;
        Box::pin(async move {
            let Ok(mut response) = router.oneshot(request).await;
            if timed_out.load(Ordering::Acquire) {
                response = super::error(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the request body did not arrive within {} s",
                        limit.as_secs_f64()
                    ),
                );
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(response.map(|body| {
                Body::new(GuardedBody {
                    inner: body,
                    _done: done,
                })
            }))
        })
    }
}

/// Marks the connection idle when the response has been written (or dropped).
struct ResponseDone(Arc<ConnState>);

impl Drop for ResponseDone {
    fn drop(&mut self) {
        self.0.on_response_done();
    }
}

/// A response body that marks the end of its request when dropped.
struct GuardedBody {
    inner: Body,
    _done: ResponseDone,
}

impl hyper::body::Body for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The request body did not arrive in time.
#[derive(Debug)]
struct BodyTimeout;

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request body read timeout")
    }
}

impl std::error::Error for BodyTimeout {}

/// A request body that fails once its deadline passes, recording that it did.
struct TimedBody {
    inner: Incoming,
    deadline: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
    timed_out: Arc<AtomicBool>,
}

impl hyper::body::Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = self.deadline;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        ready!(sleep.as_mut().poll(cx));
        self.timed_out.store(true, Ordering::Release);
        Poll::Ready(Some(Err(Box::new(BodyTimeout))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The connection's socket: reads move an idle connection to reading a head, and hyper's own empty
/// error answers get a JSON body.
struct WatchedIo<S> {
    io: S,
    state: Arc<ConnState>,
    /// A rewritten answer still to be written, and how much of it is.
    pending: Option<(Vec<u8>, usize)>,
}

impl<S: AsyncWrite + Unpin> WatchedIo<S> {
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = &mut self.pending {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
            if *written == bytes.len() {
                self.pending = None;
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WatchedIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.io).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            self.state.on_read();
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WatchedIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        if let Some(rewritten) = json_parse_error(buf) {
            self.pending = Some((rewritten, 0));
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    // Unvectored writes make hyper hand over each response head in one buffer, which is what
    // `json_parse_error` inspects.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

/// When `head` is exactly the answer hyper writes for a request it could not parse (`400`, `414` or
/// `431` with `content-length: 0` and nothing after the head), the same answer with a JSON body.
/// Every answer of ours with these statuses has a JSON body, so no answer of ours matches.
fn json_parse_error(head: &[u8]) -> Option<Vec<u8>> {
    const EMPTY: &str = "\r\ncontent-length: 0\r\n";
    // Every other write (answers of ours, bodies) leaves at the first bytes.
    if !head.starts_with(b"HTTP/1.1 4") {
        return None;
    }
    let text = std::str::from_utf8(head).ok()?;
    let status = text.strip_prefix("HTTP/1.1 ")?.get(..3)?;
    let message = match status {
        "400" => "malformed HTTP request".to_owned(),
        "414" => "request URI too long".to_owned(),
        "431" => format!("request head larger than {MAX_HEADER_BYTES} bytes"),
        _ => return None,
    };
    if !text.ends_with("\r\n\r\n") || text[..text.len() - 2].contains("\r\n\r\n") {
        return None;
    }
    let at = text.to_ascii_lowercase().find(EMPTY)?;
    let body = serde_json::json!({ "error": message }).to_string();
    let mut out = String::with_capacity(text.len() + body.len() + 64);
    out.push_str(&text[..at]);
    out.push_str("\r\ncontent-type: application/json\r\ncontent-length: ");
    out.push_str(&body.len().to_string());
    let rest = &text[at + EMPTY.len() - 2..];
    if !text
        .to_ascii_lowercase()
        .contains("\r\nconnection: close\r\n")
    {
        out.push_str("\r\nconnection: close");
    }
    out.push_str(rest);
    out.push_str(&body);
    Some(out.into_bytes())
}

/// Raises this process's soft open-file limit to its hard limit; returns the limit before and after.
pub fn raise_open_file_limit() -> io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    #[allow(
        clippy::unnecessary_cast,
        reason = "rlim_t is not u64 on every platform"
    )]
    Ok((before as u64, limit.rlim_cur as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_hypers_empty_parse_error_answers() {
        let head = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let out = String::from_utf8(json_parse_error(head).unwrap()).unwrap();
        let (out_head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(out_head.starts_with("HTTP/1.1 431 "), "{out}");
        assert!(out_head.contains("\r\ncontent-type: application/json\r\n"));
        assert!(out_head.contains(&format!("\r\ncontent-length: {}", body.len())));
        assert!(out_head.ends_with("\r\ndate: x"), "{out}");
        assert_eq!(out_head.matches("connection: close").count(), 1);
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(json["error"].as_str().unwrap().contains("larger"));

        // Without `connection: close`, one is added.
        let out =
            json_parse_error(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n").unwrap();
        assert!(
            String::from_utf8(out)
                .unwrap()
                .contains("connection: close")
        );

        for untouched in [
            &b"HTTP/1.1 400 Bad Request\r\ncontent-length: 10\r\n\r\n"[..],
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n{}",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\nHTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n",
        ] {
            assert!(json_parse_error(untouched).is_none());
        }
    }

    #[test]
    fn phases() {
        let state = ConnState::new();
        assert_eq!(state.phase().0, Phase::ReadingHead);
        state.on_request();
        assert_eq!(state.phase().0, Phase::Busy);
        state.on_read();
        assert_eq!(state.phase().0, Phase::Busy);
        state.on_response_done();
        assert_eq!(state.phase().0, Phase::Idle);
        state.on_read();
        assert_eq!(state.phase().0, Phase::ReadingHead);
    }
}
