//! Server-side HTTP limits through real sockets: slow and idle connections are closed, a stalled body
//! gets 408, a connection flood is bounded while other clients still get an answer, the sign route sheds
//! load with 503, SIGTERM finishes within its bound, every error the HTTP layer produces is JSON, and
//! the Bearer scheme is parsed as RFC 9110 says. Tests that sign check that every returned signature
//! has its slashing record.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{TestSigner, attestation, attested_targets, key};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Generous bound for anything that must happen "at once" on a loaded machine.
const PROMPT: Duration = Duration::from_secs(10);

/// A parsed HTTP response.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// Asserts a JSON `{"error": …}` answer with `status`.
    fn assert_json_error(&self, status: u16) {
        assert_eq!(self.status, status, "{self:?}");
        assert!(
            self.header("content-type")
                .is_some_and(|v| v.starts_with("application/json")),
            "{self:?}"
        );
        let json: Value = serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("{self:?}"));
        assert!(
            json["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{self:?}"
        );
    }
}

/// Reads one response from `stream` (head, then `content-length` bytes); `None` when the connection
/// closes (or is reset) before a whole response arrives. Panics when nothing happens within [`PROMPT`].
async fn read_answer(stream: &mut TcpStream) -> Option<Answer> {
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + PROMPT;
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let status = head.split(' ').nth(1).unwrap().parse().unwrap();
            let answer = Answer {
                status,
                head,
                body: String::new(),
            };
            let len: usize = answer
                .header("content-length")
                .map_or(0, |v| v.parse().unwrap());
            if buf.len() >= end + 4 + len {
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
                return Some(Answer { body, ..answer });
            }
        }
        let mut chunk = [0u8; 8192];
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => panic!(
                "no answer within {PROMPT:?}; got {:?}",
                String::from_utf8_lossy(&buf)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => return None,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Sends `request` on a new connection and reads the answer.
async fn exchange(addr: SocketAddr, request: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_answer(&mut stream)
        .await
        .expect("connection closed without an answer")
}

/// Waits until the peer closes `stream` (EOF or reset), at most `within`; returns whether it did.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    let mut chunk = [0u8; 8192];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

fn sign_head(pubkey: &str, content_length: usize, extra: &str) -> String {
    format!(
        "POST /api/v1/eth2/sign/{pubkey} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n\
         Content-Type: application/json\r\nContent-Length: {content_length}\r\n{extra}\r\n"
    )
}

/// A sign request sent in two parts: its head and half its body now, the rest on [`Stalled::finish`].
/// It asks for `100 Continue` and sends the body only after it, so when `start` returns the server is
/// handling the request (its head parsed, its sign slot taken, its body being read).
struct Stalled {
    stream: TcpStream,
    rest: Vec<u8>,
}

impl Stalled {
    async fn start(addr: SocketAddr, pubkey: &str, body: &Value) -> Stalled {
        let body = body.to_string().into_bytes();
        let half = body.len() / 2;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(sign_head(pubkey, body.len(), "Expect: 100-continue\r\n").as_bytes())
            .await
            .unwrap();
        common::read_continue(&mut stream).await;
        stream.write_all(&body[..half]).await.unwrap();
        Stalled {
            stream,
            rest: body[half..].to_vec(),
        }
    }

    async fn finish(mut self) -> Option<Answer> {
        self.stream.write_all(&self.rest).await.unwrap();
        read_answer(&mut self.stream).await
    }
}

async fn exported(signer: &TestSigner) -> Value {
    let db = signer.running.signer.slashing().unwrap();
    serde_json::from_str(&db.export_interchange(None).await.unwrap()).unwrap()
}

#[tokio::test]
async fn a_half_sent_request_head_is_disconnected_after_the_header_timeout() {
    let signer = TestSigner::start(&[key(1)], &["--http-header-read-timeout-seconds", "1"]).await;
    let addr = signer.running.http_addr;

    let mut partial = TcpStream::connect(addr).await.unwrap();
    partial
        .write_all(b"GET /upcheck HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    assert!(closed_within(&mut partial, Duration::from_secs(30)).await);
    assert!(closed_within(&mut silent, Duration::from_secs(30)).await);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed before the timeout"
    );

    // A client that sends its head in time is served.
    let ok = exchange(
        addr,
        b"GET /upcheck HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(ok.status, 200);
    signer.running.shutdown().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout_not_the_header_timeout() {
    let get = b"GET /upcheck HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    // Idle timeout well above the header timeout: an idle connection outlives the header timeout.
    let signer = TestSigner::start(
        &[key(1)],
        &[
            "--http-header-read-timeout-seconds",
            "1",
            "--idle-connection-timeout-seconds",
            "60",
        ],
    )
    .await;
    let mut stream = TcpStream::connect(signer.running.http_addr).await.unwrap();
    stream.write_all(get).await.unwrap();
    assert_eq!(read_answer(&mut stream).await.unwrap().status, 200);
    tokio::time::sleep(Duration::from_secs(3)).await;
    stream.write_all(get).await.unwrap();
    assert_eq!(read_answer(&mut stream).await.unwrap().status, 200);
    signer.running.shutdown().await;

    let signer = TestSigner::start(&[key(1)], &["--idle-connection-timeout-seconds", "1"]).await;
    let mut stream = TcpStream::connect(signer.running.http_addr).await.unwrap();
    stream.write_all(get).await.unwrap();
    assert_eq!(read_answer(&mut stream).await.unwrap().status, 200);
    assert!(closed_within(&mut stream, Duration::from_secs(30)).await);
    signer.running.shutdown().await;
}

#[tokio::test]
async fn a_body_that_stalls_half_way_gets_408_json_and_nothing_is_signed() {
    let signer = TestSigner::start(&[key(1)], &["--http-body-read-timeout-seconds", "1"]).await;
    let addr = signer.running.http_addr;
    let pk = key(1).public_key().to_hex();

    let mut stalled = Stalled::start(addr, &pk, &attestation(1, 2, 1)).await;
    let answer = read_answer(&mut stalled.stream).await.unwrap();
    answer.assert_json_error(408);
    assert_eq!(answer.header("connection"), Some("close"));
    assert!(closed_within(&mut stalled.stream, PROMPT).await);

    // The Keymanager API's body too.
    let token = std::fs::read_to_string(signer.running.token_file.as_ref().unwrap()).unwrap();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /eth/v1/keystores HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"keystores\""
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    read_answer(&mut stream)
        .await
        .unwrap()
        .assert_json_error(408);

    assert!(attested_targets(&exported(&signer).await, &pk).is_empty());
    signer.running.shutdown().await;
}

#[tokio::test]
async fn the_sign_route_sheds_load_beyond_its_concurrency_limit_with_503_json_and_retry_after() {
    let signer = TestSigner::start(
        &[key(1)],
        &[
            "--max-concurrent-sign-requests",
            "1",
            "--http-body-read-timeout-seconds",
            "120",
        ],
    )
    .await;
    let addr = signer.running.http_addr;
    let pk = key(1).public_key().to_hex();
    let url = signer.url(&format!("/api/v1/eth2/sign/{pk}"));
    let mut returned = Vec::new();

    // A sign request whose body is still arriving holds the only admission.
    let held = Stalled::start(addr, &pk, &attestation(4, 5, 1)).await;
    let deadline = Instant::now() + PROMPT;
    let shed = loop {
        let response = signer
            .client
            .post(&url)
            .header("Accept", "application/json")
            .json(&attestation(2, 3, 1))
            .send()
            .await
            .unwrap();
        if response.status() == 503 {
            break response;
        }
        // Sent before the held request was admitted: signed.
        assert_eq!(response.status(), 200);
        returned.push(3);
        assert!(Instant::now() < deadline, "never shed");
    };
    assert_eq!(shed.headers()["retry-after"], "1");
    assert!(
        shed.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = shed.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("too many"),
        "{body}"
    );
    let metrics = signer.metrics_text().await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "ferrosigner_sign_requests_shed_total 1"),
        "{metrics}"
    );

    // The held request completes and is signed; then the admission is free again.
    let answer = held.finish().await.unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    returned.push(5);
    let (status, body) = signer.sign(&pk, &attestation(6, 7, 1)).await;
    assert_eq!(status, 200, "{body}");
    returned.push(7);

    let recorded = attested_targets(&exported(&signer).await, &pk);
    if !returned.contains(&3) {
        assert!(!recorded.contains(&3), "a shed request left a record");
    }
    for target in returned {
        assert!(recorded.contains(&target), "target {target} has no record");
    }
    signer.running.shutdown().await;
}

#[tokio::test]
async fn every_error_the_http_layer_produces_is_json() {
    let signer = TestSigner::start(&[key(1)], &[]).await;
    let addr = signer.running.http_addr;
    let pk = key(1).public_key().to_hex();

    // Invalid UTF-8 in a path parameter (an extractor rejection).
    let body = attestation(1, 2, 1).to_string();
    let mut request = sign_head("%FF", body.len(), "Connection: close\r\n");
    request.push_str(&body);
    exchange(addr, request.as_bytes())
        .await
        .assert_json_error(400);

    // Requests hyper cannot parse: 400, 414, 431.
    for (request, status) in [
        (b"GARBAGE\r\n\r\n".to_vec(), 400),
        (
            b"GET /upcheck HTTP/1.1\r\nHost 127.0.0.1\r\n\r\n".to_vec(),
            400,
        ),
        (
            format!(
                "GET /{} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                "a".repeat(70_000)
            )
            .into_bytes(),
            414,
        ),
        (
            format!(
                "GET /upcheck HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {}\r\n\r\n",
                "b".repeat(100_000)
            )
            .into_bytes(),
            431,
        ),
    ] {
        exchange(addr, &request).await.assert_json_error(status);
    }

    // Routing: 404 and 405.
    exchange(
        addr,
        b"GET /nope HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await
    .assert_json_error(404);
    exchange(
        addr,
        b"DELETE /upcheck HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await
    .assert_json_error(405);
    // The metrics listener too.
    exchange(
        signer.running.metrics_addr.unwrap(),
        b"GET /nope HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await
    .assert_json_error(404);

    // `Expect: 100-continue` with a declared body over the route's limit: 413 at once, never
    // `100 Continue` (the first answer read is the 413).
    let expect = "Expect: 100-continue\r\n";
    let oversized_sign = sign_head(&pk, (32 << 20) + 1, expect);
    exchange(addr, oversized_sign.as_bytes())
        .await
        .assert_json_error(413);
    let token = std::fs::read_to_string(signer.running.token_file.as_ref().unwrap()).unwrap();
    let oversized_import = format!(
        "POST /eth/v1/keystores HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n{expect}\r\n",
        (64 << 20) + 1
    );
    exchange(addr, oversized_import.as_bytes())
        .await
        .assert_json_error(413);
    signer.running.shutdown().await;
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive_and_any_blank_run_separates_the_token() {
    let signer = TestSigner::start(&[key(1)], &[]).await;
    let token = std::fs::read_to_string(signer.running.token_file.as_ref().unwrap()).unwrap();
    let url = signer.url("/eth/v1/keystores");
    let status = |value: Option<String>| {
        let mut request = signer.client.get(&url);
        if let Some(v) = value {
            request = request.header("Authorization", v);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            if status != 200 {
                assert!(body["error"].is_string(), "{body}");
            }
            status
        }
    };
    for ok in [
        format!("Bearer {token}"),
        format!("BEARER {token}"),
        format!("bearer {token}"),
        format!("Bearer\t{token}"),
        format!("Bearer \t  {token}"),
    ] {
        assert_eq!(status(Some(ok.clone())).await, 200, "{ok:?}");
    }
    assert_eq!(status(None).await, 401);
    assert_eq!(status(Some(format!("Basic {token}"))).await, 401);
    assert_eq!(status(Some("Bearer".into())).await, 401);
    assert_eq!(status(Some("BEARER wrong".into())).await, 403);
    signer.running.shutdown().await;
}

/// The real binary on a free port, killed on drop.
struct Binary {
    child: Child,
    addr: SocketAddr,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

impl Binary {
    /// Starts `ferrosigner run` with key 1 and `extra` flags, with the open-file limit `nofile` (soft and
    /// hard) when given, and waits until it is up.
    async fn start(extra: &[&str], nofile: Option<u64>) -> Binary {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let password_file = common::write_keystores(&keys, &[key(1)], "pw");
        let data = dir.path().join("data");
        let port = common::free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrosigner"));
        cmd.arg("run")
            .arg("--data-dir")
            .arg(&data)
            .args(["--http-listen-port", &port.to_string()])
            .args(["--metrics-enabled", "false"])
            .arg("--keystores-path")
            .arg(&keys)
            .arg("--keystores-password-file")
            .arg(&password_file)
            .args(extra)
            .env_remove("FERROSIGNER_NETWORK")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(n) = nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: only setrlimit, async-signal-safe, runs between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let limit = libc::rlimit {
                        rlim_cur: n as libc::rlim_t,
                        rlim_max: n as libc::rlim_t,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = cmd.spawn().unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let binary = Binary {
            child,
            addr,
            data,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(mut stream) = TcpStream::connect(addr).await {
                stream
                    .write_all(
                        b"GET /upcheck HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                    )
                    .await
                    .unwrap();
                if read_answer(&mut stream)
                    .await
                    .is_some_and(|a| a.status == 200)
                {
                    return binary;
                }
            }
            assert!(Instant::now() < deadline, "the signer did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn terminate(&self) {
        // SAFETY: sends a signal to our own child.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) },
            0
        );
    }

    /// Waits for the process to exit, at most `within`; its exit status, or `None` if it did not.
    async fn exited_within(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The slashing history, exported by the binary's own offline tool (the signer must have exited).
    fn export(&self) -> Value {
        let file = self.data.join("export.json");
        let out = Command::new(env!("CARGO_BIN_EXE_ferrosigner"))
            .args(["slashing-protection", "export"])
            .arg(&file)
            .arg("--data-dir")
            .arg(&self.data)
            .env_remove("FERROSIGNER_NETWORK")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        common::read_json(Path::new(&file))
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_is_bounded_and_other_clients_still_get_an_answer() {
    let _ = ferrosigner::http::server::raise_open_file_limit();
    // 300 unfinished requests against a process that may open 256 files: without a connection cap it
    // runs out of descriptors and every other client hangs. The default cap (2048) does not fit in 256
    // files, so the signer lowers it to what does, keeping room for refusals and its own files.
    let cap = 256 - (ferrosigner::http::server::REJECTING_AT_ONCE + 64);
    let binary = Binary::start(&["--http-header-read-timeout-seconds", "60"], Some(256)).await;
    let addr = binary.addr;
    let mut flood = Vec::new();
    for _ in 0..300 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /upcheck HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .await
            .unwrap();
        flood.push(stream);
    }
    // Each flood connection is either still open (served, waiting for the rest of its head), or was
    // refused with 503 JSON or closed at once.
    let outcomes = futures::future::join_all(flood.into_iter().map(|mut stream| async move {
        let mut buf = [0u8; 4096];
        match tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf)).await {
            Err(_) => Some(stream),
            Ok(Ok(n)) if n > 0 => {
                let text = String::from_utf8_lossy(&buf[..n]);
                assert!(text.starts_with("HTTP/1.1 503 "), "{text}");
                assert!(text.contains("application/json"), "{text}");
                assert!(text.contains("retry-after: 1"), "{text}");
                None
            }
            Ok(_) => None,
        }
    }))
    .await;
    let open: Vec<TcpStream> = outcomes.into_iter().flatten().collect();
    eprintln!("flood of 300: {} served and held open", open.len());
    assert!(
        open.len() <= cap,
        "{} connections served, over the cap of {cap}",
        open.len()
    );
    assert!(!open.is_empty());

    // Another client gets an answer at once: 503 JSON while the flood holds every slot.
    let answer = exchange(
        addr,
        b"GET /upcheck HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    answer.assert_json_error(503);
    assert_eq!(answer.header("retry-after"), Some("1"));

    // Once the flood goes away, clients are served again.
    drop(open);
    let deadline = Instant::now() + PROMPT;
    loop {
        let answer = exchange(
            addr,
            b"GET /upcheck HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        )
        .await;
        if answer.status == 200 {
            break;
        }
        answer.assert_json_error(503);
        assert!(Instant::now() < deadline, "still refused after the flood");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_stalled_clients_exits_within_the_shutdown_timeout() {
    let mut binary = Binary::start(&["--shutdown-timeout-seconds", "2"], None).await;
    let addr = binary.addr;
    let pk = key(1).public_key().to_hex();
    let mut partial_head = TcpStream::connect(addr).await.unwrap();
    partial_head
        .write_all(b"POST /api/v1/eth2/sign/0x HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let _stalled_body = Stalled::start(addr, &pk, &attestation(1, 2, 1)).await;
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /upcheck HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_answer(&mut idle).await.unwrap().status, 200);

    binary.terminate();
    let signalled = Instant::now();
    assert!(closed_within(&mut partial_head, PROMPT).await);
    assert!(closed_within(&mut idle, PROMPT).await);
    let status = binary
        .exited_within(Duration::from_secs(30))
        .await
        .expect("still running 30 s after SIGTERM");
    eprintln!(
        "exited {:?} after SIGTERM with --shutdown-timeout-seconds 2",
        signalled.elapsed()
    );
    assert!(status.success(), "{status:?}");
    // The request cut by the deadline was not signed.
    assert!(attested_targets(&binary.export(), &pk).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_request_finish_and_then_exits() {
    let mut binary = Binary::start(&["--shutdown-timeout-seconds", "60"], None).await;
    let addr = binary.addr;
    let pk = key(1).public_key().to_hex();
    let in_flight = Stalled::start(addr, &pk, &attestation(1, 2, 1)).await;
    let mut partial_head = TcpStream::connect(addr).await.unwrap();
    partial_head
        .write_all(b"GET /upcheck HTTP/1.1\r\n")
        .await
        .unwrap();

    binary.terminate();
    // The listener closes and the half-sent head is dropped, while the in-flight request lives on.
    let deadline = Instant::now() + PROMPT;
    while TcpStream::connect(addr).await.is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(closed_within(&mut partial_head, PROMPT).await);
    let answer = in_flight.finish().await.expect("in-flight request dropped");
    assert_eq!(answer.status, 200, "{answer:?}");
    let signature: Value = serde_json::from_str(&answer.body).unwrap();
    assert!(signature["signature"].as_str().unwrap().starts_with("0x"));
    // Nothing remains, so it exits without waiting for the 60 s deadline.
    let status = binary
        .exited_within(Duration::from_secs(30))
        .await
        .expect("waited for the deadline with nothing in flight");
    assert!(status.success(), "{status:?}");
    assert_eq!(attested_targets(&binary.export(), &pk), vec![2]);
}
