//! `ferrosigner run` configured as an operator moving from Web3Signer configures it, through the real
//! binary: the TOML config file and its precedence (flag > environment > file > default, seen in
//! `--print-config` and in the port actually bound), bad config files, Web3Signer's flag spellings, the
//! `Host` allow-lists, and `--allow-any-genesis-validators-root`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// The binary with a clean environment (no `FERROSIGNER_*` from the caller), plus `envs`.
fn command(args: &[&str], envs: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrosigner"));
    cmd.env_clear().args(args).stdin(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd
}

fn output(args: &[&str], envs: &[(&str, &str)]) -> Output {
    command(args, envs).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A running `ferrosigner run` process, killed on drop.
struct Signer {
    child: Child,
    http: SocketAddr,
}

impl Signer {
    /// Starts the binary (JSON logs) and waits for its `listening` line, which gives the bound address.
    fn start<S: AsRef<str>>(args: &[S], envs: &[(&str, &str)]) -> Signer {
        let mut all = vec!["run", "--log-format", "json"];
        all.extend(args.iter().map(AsRef::as_ref));
        let mut child = command(&all, envs)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && v["fields"]["message"] == "listening"
                {
                    let _ = tx.send(Ok(v["fields"]["http_addr"].as_str().unwrap().to_owned()));
                }
                seen.push(line);
            }
            let _ = tx.send(Err(seen.join("\n")));
        });
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(Ok(addr)) => Signer {
                child,
                http: addr.parse().unwrap(),
            },
            Ok(Err(log)) => panic!("the signer exited before listening: {log}"),
            Err(_) => panic!("the signer did not listen within 120 s"),
        }
    }
}

impl Signer {
    /// Waits until start-up key loading has finished: `/upcheck` with this `Host` is no longer 503.
    fn ready(self, host: &str) -> Signer {
        for _ in 0..2400 {
            if get(self.http, "/upcheck", Some(host), "1.1").0 != 503 {
                return self;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("keys did not load within 60 s");
    }
}

impl Drop for Signer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One raw HTTP exchange (`Connection: close`): the status and the body.
fn exchange(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let response = text(&response);
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// `GET path` with this `Host` header (none with `None`), in HTTP/1.1 or 1.0.
fn get(addr: SocketAddr, path: &str, host: Option<&str>, version: &str) -> (u16, String) {
    let host = host.map(|h| format!("Host: {h}\r\n")).unwrap_or_default();
    exchange(
        addr,
        &format!("GET {path} HTTP/{version}\r\n{host}Connection: close\r\n\r\n"),
    )
}

/// `POST /api/v1/eth2/sign/{pubkey}` from 127.0.0.1: the status and the JSON answer.
fn sign(addr: SocketAddr, pubkey: &str, body: &Value) -> (u16, Value) {
    let body = body.to_string();
    let (status, answer) = exchange(
        addr,
        &format!(
            "POST /api/v1/eth2/sign/{pubkey} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    (
        status,
        serde_json::from_str(&answer).unwrap_or(Value::String(answer)),
    )
}

/// The `--print-config` line of `key`.
fn config_line(printed: &str, key: &str) -> String {
    printed
        .lines()
        .find(|l| l.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no {key} in:\n{printed}"))
        .to_owned()
}

fn write(path: &Path, contents: &str) -> String {
    std::fs::write(path, contents).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn flag_beats_environment_beats_config_file_beats_default() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let (file_port, env_port, flag_port) = (
        common::free_port(),
        common::free_port(),
        common::free_port(),
    );
    let file = write(
        &dir.path().join("ferrosigner.toml"),
        &format!(
            "# as an operator writes it\n\
             data-dir = \"{data}\"\n\
             http_listen_port = {file_port}\n\
             metrics-enabled = false\n\
             metrics-port = 9999\n\
             slashing-protection-pruning-epochs-to-keep = 64\n\
             http-host-allowlist = [\"localhost\", \"127.0.0.1\", \"Signer.Example\"]\n"
        ),
    );
    let with_secret = write(
        &dir.path().join("with-secret.toml"),
        &format!(
            "{}slashing-protection-db-url = \"postgres://signer:hunter2-secret@db.example:5433/slashing?password=hunter2-param\"\n",
            std::fs::read_to_string(&file).unwrap()
        ),
    );
    let port_flag = flag_port.to_string();
    let env_port_text = env_port.to_string();
    let env = [("FERROSIGNER_HTTP_LISTEN_PORT", env_port_text.as_str())];

    // --print-config shows each value and where it came from, the database password never.
    let printed = output(&["run", "--config-file", &file, "--print-config"], &[]);
    assert!(printed.status.success(), "{}", text(&printed.stderr));
    let printed = text(&printed.stdout);
    assert_eq!(
        config_line(&printed, "http-listen-port"),
        format!("http-listen-port = {file_port}  # config file {file}")
    );
    assert_eq!(
        config_line(&printed, "metrics-listen-port"),
        format!("metrics-listen-port = 9999  # config file {file}")
    );
    assert_eq!(
        config_line(&printed, "slashing-protection-pruning-epochs-to-keep"),
        format!("slashing-protection-pruning-epochs-to-keep = 64  # config file {file}")
    );
    assert_eq!(
        config_line(&printed, "http-host-allowlist"),
        format!(
            "http-host-allowlist = \"localhost,127.0.0.1,signer.example\"  # config file {file}"
        )
    );
    assert_eq!(
        config_line(&printed, "network"),
        "network = \"mainnet\"  # default"
    );
    assert!(
        printed.contains("# slashing-protection-db-url is not set  # default"),
        "{printed}"
    );
    let printed = output(
        &["run", "--config-file", &with_secret, "--print-config"],
        &[],
    );
    assert!(printed.status.success(), "{}", text(&printed.stderr));
    let printed = text(&printed.stdout);
    assert!(
        config_line(&printed, "slashing-protection-db-url").starts_with(
            "slashing-protection-db-url = \"postgres://signer@db.example:5433/slashing\""
        ),
        "{printed}"
    );
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(
        printed.contains("# tls-cert-file is not set  # default"),
        "{printed}"
    );
    // The printed configuration is itself a valid config file (comments and all).
    let reprinted = write(&dir.path().join("printed.toml"), &printed);
    let again = output(&["run", "--config-file", &reprinted, "--print-config"], &[]);
    assert!(again.status.success(), "{}", text(&again.stderr));

    let printed = output(&["run", "--config-file", &file, "--print-config"], &env);
    assert_eq!(
        config_line(&text(&printed.stdout), "http-listen-port"),
        format!("http-listen-port = {env_port}  # environment FERROSIGNER_HTTP_LISTEN_PORT")
    );
    let printed = output(
        &[
            "run",
            "--config-file",
            &file,
            "--http-listen-port",
            &port_flag,
            "--print-config",
        ],
        &env,
    );
    assert_eq!(
        config_line(&text(&printed.stdout), "http-listen-port"),
        format!("http-listen-port = {flag_port}  # command line")
    );
    // The file named by the environment instead of the flag.
    let printed = output(
        &["run", "--print-config"],
        &[("FERROSIGNER_CONFIG_FILE", &file)],
    );
    assert_eq!(
        config_line(&text(&printed.stdout), "http-listen-port"),
        format!("http-listen-port = {file_port}  # config file {file}")
    );
    // Without a file: the default.
    let printed = output(&["run", "--print-config"], &[]);
    assert_eq!(
        config_line(&text(&printed.stdout), "http-listen-port"),
        "http-listen-port = 9000  # default"
    );

    // And the port actually bound follows the same order.
    let signer = Signer::start(&["--config-file", &file], &[]).ready("signer.example");
    assert_eq!(signer.http.port(), file_port);
    assert_eq!(
        get(signer.http, "/upcheck", Some("signer.example"), "1.1").0,
        200
    );
    drop(signer);
    let signer = Signer::start(&["--config-file", &file], &env);
    assert_eq!(signer.http.port(), env_port);
    drop(signer);
    let signer = Signer::start(
        &["--config-file", &file, "--http-listen-port", &port_flag],
        &env,
    );
    assert_eq!(signer.http.port(), flag_port);
}

#[test]
fn a_bad_config_file_is_a_clear_error_naming_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    let cases: &[(&str, &[&str])] = &[
        (
            "http-listen-prot = 9000\n",
            &["`http-listen-prot`", "unknown key"],
        ),
        (
            "http-listen-port = \"9000\"\n",
            &["`http-listen-port`", "expected an integer, found a string"],
        ),
        (
            "metrics-enabled = 1\n",
            &["`metrics-enabled`", "expected a boolean"],
        ),
        (
            "http-listen-port = 99999\n",
            &["`http-listen-port`", "99999 is not in 0..=65535"],
        ),
        (
            "log-format = \"xml\"\n",
            &["`log-format`", "possible values: plain, json"],
        ),
        (
            "http-host-allowlist = \"localhost:9000\"\n",
            &["`http-host-allowlist`", "without a port"],
        ),
        (
            "metrics-port = 1\nmetrics-listen-port = 2\n",
            &["sets the same option as key"],
        ),
        ("[run]\nhttp-listen-port = 1\n", &["`run`", "unknown key"]),
        (
            "config-file = \"other.toml\"\n",
            &["`config-file`", "only the command line or the environment"],
        ),
        (
            "http-listen-port = \n",
            &["not valid TOML at line 1, column 20"],
        ),
        // The offending line is not shown: it may hold a password.
        (
            "network = \"mainnet\"\nslashing-protection-db-url = postgres://u:hunter2@db/x\n",
            &["not valid TOML at line 2, column 30"],
        ),
    ];
    for (contents, mentions) in cases {
        let path = write(&file, contents);
        let out = output(&["run", "--config-file", &path], &[]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{contents}: {stderr}");
        assert!(
            stderr.contains(&format!("config file {path}")),
            "{contents}: {stderr}"
        );
        assert!(!stderr.contains("hunter2"), "{stderr}");
        for mention in *mentions {
            assert!(stderr.contains(mention), "{contents}: {mention}: {stderr}");
        }
    }
    let missing = dir.path().join("missing.toml");
    let out = output(&["run", "--config-file", missing.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains(&format!("reading config file {}", missing.display())),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn web3signer_spellings_are_accepted() {
    let printed = output(
        &[
            "run",
            "--metrics-host",
            "0.0.0.0",
            "--metrics-port",
            "9123",
            "--logging",
            "DEBUG",
            "--enable-key-manager-api",
            "false",
            "--metrics-enabled",
            "--slashing-protection-pruning-epochs-to-keep",
            "100",
            "--slashing-protection-pruning-interval",
            "24",
            "--http-host-allowlist",
            "all",
            "--print-config",
        ],
        &[],
    );
    assert!(printed.status.success(), "{}", text(&printed.stderr));
    let printed = text(&printed.stdout);
    for line in [
        "metrics-listen-host = \"0.0.0.0\"  # command line",
        "metrics-listen-port = 9123  # command line",
        "log-level = \"DEBUG\"  # command line",
        "key-manager-api-enabled = false  # command line",
        "metrics-enabled = true  # command line",
        "slashing-protection-pruning-epochs-to-keep = 100  # command line",
        // Web3Signer's interval is in hours.
        "slashing-protection-pruning-interval = 24  # command line",
        "slashing-protection-pruning-interval-seconds = 86400  # command line",
        "http-host-allowlist = \"*\"  # command line",
    ] {
        assert!(printed.lines().any(|l| l == line), "{line} in:\n{printed}");
    }
    // Both interval spellings on the command line contradict each other.
    let out = output(
        &[
            "run",
            "--slashing-protection-pruning-interval",
            "1",
            "--slashing-protection-pruning-interval-seconds",
            "60",
            "--print-config",
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cannot be used with"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_host_allowlist_refuses_other_hosts_with_403_json() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let metrics_port = common::free_port().to_string();
    let signer = Signer::start(
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "--http-listen-port",
            "0",
            "--metrics-port",
            &metrics_port,
        ],
        &[],
    )
    .ready("localhost");
    let addr = signer.http;
    let host_port = format!("127.0.0.1:{}", addr.port());
    // The default list: localhost and 127.0.0.1, any port, any case.
    for host in [host_port.as_str(), "127.0.0.1", "localhost", "LocalHost:1"] {
        assert_eq!(get(addr, "/upcheck", Some(host), "1.1").0, 200, "{host}");
    }
    for (host, version) in [
        (Some("evil.example"), "1.1"),
        (Some("evil.example:9000"), "1.1"),
        (Some("127.0.0.2"), "1.1"),
        (Some("[::1]"), "1.1"),
        // HTTP/1.0 may omit Host; a request naming no host is refused, as in Web3Signer.
        (None, "1.0"),
    ] {
        let (status, body) = get(addr, "/upcheck", host, version);
        assert_eq!(status, 403, "{host:?} {version}: {body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("--http-host-allowlist"),
            "{body}"
        );
        assert_eq!(body["message"], "Host not authorized.");
    }
    // An HTTP/1.0 request that names an allowed host is served.
    assert_eq!(get(addr, "/upcheck", Some("localhost"), "1.0").0, 200);
    // The Keymanager API on the same listener: refused before the token is even looked at.
    assert_eq!(
        get(addr, "/eth/v1/keystores", Some("evil.example"), "1.1").0,
        403
    );
    assert_eq!(
        get(addr, "/eth/v1/keystores", Some("localhost"), "1.1").0,
        401
    );
    // The metrics listener has its own list with the same default.
    let metrics: SocketAddr = format!("127.0.0.1:{metrics_port}").parse().unwrap();
    assert_eq!(get(metrics, "/metrics", Some("127.0.0.1"), "1.1").0, 200);
    let (status, body) = get(metrics, "/metrics", Some("evil.example"), "1.1");
    assert_eq!(status, 403);
    assert!(body.contains("--metrics-host-allowlist"), "{body}");
    drop(signer);

    // `*` serves every host, and requests naming none.
    let signer = Signer::start(
        &common::local_flags(&data, &["--http-host-allowlist", "*"]),
        &[],
    )
    .ready("localhost");
    assert_eq!(
        get(signer.http, "/upcheck", Some("evil.example"), "1.1").0,
        200
    );
    assert_eq!(get(signer.http, "/upcheck", None, "1.0").0, 200);
    drop(signer);

    // A named list, IPv6 literal in brackets: the port of the Host header does not matter.
    let signer = Signer::start(
        &common::local_flags(&data, &[]),
        &[("FERROSIGNER_HTTP_HOST_ALLOWLIST", "Signer.Example,[::1]")],
    )
    .ready("signer.example");
    for host in ["signer.example:443", "SIGNER.EXAMPLE", "[::1]:9000"] {
        assert_eq!(
            get(signer.http, "/upcheck", Some(host), "1.1").0,
            200,
            "{host}"
        );
    }
    assert_eq!(
        get(signer.http, "/upcheck", Some("127.0.0.1"), "1.1").0,
        403
    );
}

/// Lighthouse's remote-signer tests sign with this made-up root on mainnet.
const MADE_UP_ROOT: &str = "0x4545454545454545454545454545454545454545454545454545454545454545";

fn with_root(mut request: Value, root: &str) -> Value {
    request["fork_info"]["genesis_validators_root"] = Value::String(root.to_owned());
    request
}

#[test]
fn a_made_up_genesis_root_signs_only_with_the_flag_and_slashing_protection_still_holds() {
    let dir = tempfile::tempdir().unwrap();
    let secret = common::key(3);
    let pubkey = secret.public_key();
    let keys = dir.path().join("keys");
    let password = common::write_keystores(&keys, std::slice::from_ref(&secret), "pw");
    let args = |data: &str, extra: &[&str]| {
        let mut flags = vec![
            "--keystores-path",
            keys.to_str().unwrap(),
            "--keystores-password-file",
            password.to_str().unwrap(),
        ];
        flags.extend_from_slice(extra);
        common::local_flags(&dir.path().join(data), &flags)
    };
    let start =
        |data: &str, extra: &[&str]| Signer::start(&args(data, extra), &[]).ready("127.0.0.1");
    let vote = with_root(common::attestation(1, 2, 0xaa), MADE_UP_ROOT);

    // By default: 400.
    let signer = start("default", &[]);
    let (status, body) = sign(signer.http, &pubkey.to_hex(), &vote);
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("genesis_validators_root"),
        "{body}"
    );
    drop(signer);

    // With the flag (and a database that recorded no root yet, unlike the one above, which recorded
    // mainnet's when it opened): signed, with the request's root in the signing domain.
    let signer = start("any", &["--allow-any-genesis-validators-root"]);
    let (status, body) = sign(signer.http, &pubkey.to_hex(), &vote);
    assert_eq!(status, 200, "{body}");
    let signature =
        ferrosigner_bls::Signature::from_hex(body["signature"].as_str().unwrap()).unwrap();
    let mainnet = ferrosigner_consensus::Network::by_name("mainnet").unwrap();
    let made_up = ferrosigner_consensus::prepare(vote.to_string().as_bytes(), &mainnet).unwrap();
    assert!(signature.verify(&pubkey, &made_up.signing_root));
    let real = ferrosigner_consensus::prepare(
        common::attestation(1, 2, 0xaa).to_string().as_bytes(),
        &mainnet,
    )
    .unwrap();
    assert!(!signature.verify(&pubkey, &real.signing_root));

    // Slashing protection still holds: a double vote is refused...
    let (status, body) = sign(
        signer.http,
        &pubkey.to_hex(),
        &with_root(common::attestation(1, 2, 0xcc), MADE_UP_ROOT),
    );
    assert_eq!(status, 412, "{body}");
    assert_eq!(body["reason"], "double_vote");
    // ...and the database now protects the made-up chain: a vote of another root is refused too.
    let (status, body) = sign(
        signer.http,
        &pubkey.to_hex(),
        &common::attestation(5, 6, 0xaa),
    );
    assert_eq!(status, 412, "{body}");
    assert_eq!(body["reason"], "wrong_genesis_validators_root");
    drop(signer);

    // Without the flag, the database of the made-up chain is refused at start.
    let owned = args("any", &[]);
    let mut refs: Vec<&str> = vec!["run"];
    refs.extend(owned.iter().map(String::as_str));
    let out = output(&refs, &[]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&MADE_UP_ROOT[..20]), "{stderr}");
}
