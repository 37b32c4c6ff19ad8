//! Keys held by a remote service: each a [`RemoteJob`] that is fetched to a secret and then registered like any
//! other key (start-up, `/reload`, the disabled-key check, duplicates, failures by source and document).
//!
//! The remote service is HashiCorp Vault (or OpenBao), KV version 2, through `ferrosigner-vault`, in two ways:
//! - `type: hashicorp` key config documents ([`HashicorpKey`]), one key each, as Web3Signer reads them
//!   ([`fetch_hashicorp`] logs in as the document says and reads its secret);
//! - the bulk source of `--vault-*` ([`VaultSource`]): [`vault_scan`] logs in once per start-up or reload and
//!   lists every secret under a folder, each becoming a job that reads its secret through that one client.
//!
//! [`fetch`] is the one place a remote key becomes a secret. Fetching blocks: [`fetch_all`] runs on a blocking
//! thread and fetches a few keys at once on threads of its own, each inside the Tokio runtime's context, so
//! that the async client is driven from [`fetch`] with `tokio::runtime::Handle::current().block_on(…)`. The
//! client retries what may pass (connection errors, timeouts, 5xx) with backoff, and fails at once on a
//! refusal (a wrong token); its errors never hold a secret.
//!
//! Adding a remote source: a [`RemoteKey`] variant and its arm in [`fetch`], a [`KeySource`] variant naming
//! where each key was configured (its identity across reloads), and the jobs produced next to the key config
//! scan in `Keyring::load_blocking` and `Keyring::reload_blocking`; loading, the disabled-key check,
//! duplicates, reload removal, health and metrics then work as for key config documents.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrosigner_vault::{Auth, VaultClient, VaultConfig};
use zeroize::Zeroizing;

use super::registry::KeySource;

/// Vault's default port.
pub const DEFAULT_VAULT_PORT: u16 = 8200;
/// The secret's field read when `keyName` is not given (Web3Signer's default).
pub const DEFAULT_KEY_NAME: &str = "value";
/// Milliseconds a Vault request may take when `timeout` is not given (Web3Signer's default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(10_000);
/// The Kubernetes service account token read when `kubernetesServiceAccountTokenPath` is not given.
pub const DEFAULT_K8S_TOKEN_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
/// The Vault mount of the Kubernetes auth method when `kubernetesAuthPath` is not given.
pub const DEFAULT_K8S_AUTH_PATH: &str = "kubernetes";

/// How to log in to Vault.
#[derive(Clone, PartialEq, Eq)]
pub enum VaultAuth {
    /// A Vault token, sent as `X-Vault-Token`.
    Token(Zeroizing<String>),
    /// Vault's Kubernetes auth method: the pod's service account token is exchanged for a Vault token at
    /// `POST /v1/auth/<auth_path>/login`.
    Kubernetes {
        /// The Vault role bound to the service account.
        role: String,
        /// The file holding the service account token (read at fetch time).
        service_account_token_path: PathBuf,
        /// The auth method's mount, without leading or trailing `/`.
        auth_path: String,
    },
}

impl std::fmt::Debug for VaultAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VaultAuth::Token(_) => f.write_str("Token(<redacted>)"),
            VaultAuth::Kubernetes {
                role,
                service_account_token_path,
                auth_path,
            } => f
                .debug_struct("Kubernetes")
                .field("role", role)
                .field("service_account_token_path", service_account_token_path)
                .field("auth_path", auth_path)
                .finish(),
        }
    }
}

/// How the connection to Vault is secured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaultTls {
    /// Plain HTTP (`tlsEnabled: false`).
    Disabled,
    /// HTTPS, the server certificate checked against the system's trusted CAs.
    SystemCas,
    /// HTTPS, the server certificate's SHA-256 fingerprint looked up in a Web3Signer known-servers file
    /// (`<host>:<port> <AA:BB:…>` per line).
    KnownServers(PathBuf),
}

/// The HTTP version spoken to Vault (`httpProtocolVersion`; Web3Signer defaults to HTTP/2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpVersion {
    /// HTTP/1.1.
    Http1_1,
    /// HTTP/2.
    Http2,
}

/// Everything needed to fetch one key from HashiCorp Vault's KV version 2 engine: `GET
/// <scheme>://<server_host>:<server_port><key_path>` and read field `key_name` of the secret's data, a `0x`
/// hex BLS secret key. `Debug` never shows the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashicorpKey {
    /// Host name or address of the Vault server.
    pub server_host: String,
    /// Its port.
    pub server_port: u16,
    /// The HTTP path of the secret, e.g. `/v1/secret/data/validator-1`.
    pub key_path: String,
    /// The field of the secret's data that holds the key.
    pub key_name: String,
    /// How to log in.
    pub auth: VaultAuth,
    /// How the connection is secured.
    pub tls: VaultTls,
    /// How long each request may take.
    pub timeout: Duration,
    /// The HTTP version to speak.
    pub http_version: HttpVersion,
}

/// A key held by a remote service.
#[derive(Debug, Clone)]
pub enum RemoteKey {
    /// One secret of HashiCorp Vault, named by a key config document.
    Hashicorp(HashicorpKey),
    /// One secret of the Vault bulk source (`--vault-*`), at `path` under its mount.
    Vault {
        /// The connected source.
        source: Arc<VaultConnection>,
        /// The secret's path under the mount.
        path: String,
    },
}

/// One remote key to fetch and register, with where it was configured.
#[derive(Debug, Clone)]
pub struct RemoteJob {
    /// Where the key was configured; the registered key gets this source.
    pub source: KeySource,
    /// What to fetch.
    pub key: RemoteKey,
}

/// Fetches a remote key's secret (blocking, inside the runtime's context). The error says why, without any
/// secret.
pub fn fetch(key: &RemoteKey) -> Result<Zeroizing<[u8; 32]>, String> {
    match key {
        RemoteKey::Hashicorp(key) => fetch_hashicorp(key),
        RemoteKey::Vault { source, path } => {
            let read = source
                .client
                .read_secret_key(&source.mount, path, &source.field);
            block_on(read)
                .map(|bytes| Zeroizing::new(*bytes.expose()))
                .map_err(|e| e.to_string())
        }
    }
}

/// Runs `future` to completion from a blocking thread that has entered the runtime's context.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Handle::current().block_on(future)
}

/// The CA bundles of the common Linux distributions, used for a `hashicorp` key config with TLS and no
/// known-servers file (Web3Signer trusts the system's CAs there).
const SYSTEM_CA_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The Vault client configuration a `hashicorp` key config document describes.
fn hashicorp_config(key: &HashicorpKey) -> Result<VaultConfig, String> {
    let auth = match &key.auth {
        VaultAuth::Token(token) => Auth::Token(token.clone()),
        VaultAuth::Kubernetes { .. } => {
            return Err(
                "Vault's Kubernetes auth method (`authMethod: KUBERNETES`) is not supported; \
                        give a `token`"
                    .to_owned(),
            );
        }
    };
    let host = if key.server_host.contains(':') && !key.server_host.starts_with('[') {
        format!("[{}]", key.server_host)
    } else {
        key.server_host.clone()
    };
    let scheme = if key.tls == VaultTls::Disabled {
        "http"
    } else {
        "https"
    };
    let mut config = VaultConfig::new(format!("{scheme}://{host}:{}", key.server_port), auth);
    config.request_timeout = key.timeout;
    match &key.tls {
        VaultTls::Disabled => {}
        VaultTls::KnownServers(file) => config.known_servers_file = Some(file.clone()),
        VaultTls::SystemCas => {
            let bundle = SYSTEM_CA_BUNDLES
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    "`tlsEnabled` without `tlsKnownServersPath` trusts the system's CAs, but no CA bundle \
                     was found here; give a known-servers file"
                        .to_owned()
                })?;
            config.ca_file = Some(bundle);
        }
    }
    Ok(config)
}

/// Fetches one key from HashiCorp Vault (blocking; called inside the runtime's context, never on an async
/// worker): logs in as the document says and reads field `keyName` of the secret at `keyPath`. HTTP/1.1 is
/// spoken whatever `httpProtocolVersion` says (Vault serves both).
pub fn fetch_hashicorp(key: &HashicorpKey) -> Result<Zeroizing<[u8; 32]>, String> {
    let config = hashicorp_config(key)?;
    block_on(async {
        let client = VaultClient::connect(config).await?;
        client.read_key(&key.key_path, &key.key_name).await
    })
    .map(|bytes| Zeroizing::new(*bytes.expose()))
    .map_err(|e| e.to_string())
}

/// Every key under a folder of a Vault KV version 2 engine (`--vault-*`): each secret there holds one
/// private key in `field`.
#[derive(Debug, Clone)]
pub struct VaultSource {
    /// Where the server is and how to log in.
    pub config: VaultConfig,
    /// Where the KV engine is mounted.
    pub mount: String,
    /// The folder under the mount (`""` for all of it).
    pub prefix: String,
    /// The field holding the key.
    pub field: String,
    /// Secrets fetched at once.
    pub parallelism: usize,
}

/// A logged-in client of the bulk source and where its keys are.
pub struct VaultConnection {
    client: VaultClient,
    mount: String,
    field: String,
}

impl std::fmt::Debug for VaultConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultConnection")
            .field("client", &self.client)
            .field("mount", &self.mount)
            .finish_non_exhaustive()
    }
}

/// The secrets the bulk source lists now.
pub(crate) struct VaultScan {
    /// The secrets not loaded yet, to fetch.
    pub jobs: Vec<RemoteJob>,
    /// Every secret listed (loaded or not): a loaded key missing here was removed from the vault.
    pub present: std::collections::HashSet<KeySource>,
}

/// The source of the secret at `path` under `mount`.
pub(crate) fn vault_key_source(mount: &str, path: &str) -> KeySource {
    KeySource::Vault {
        secret: PathBuf::from(format!("{}/{path}", mount.trim_matches('/'))),
    }
}

/// Logs in (reading the token file or logging in with AppRole each time, so a rotated token is used) and
/// lists the source's secrets, with the retries of the client; `loaded` says which keys need no fetch.
/// Blocking, inside the runtime's context.
pub(crate) fn vault_scan(
    source: &VaultSource,
    loaded: impl Fn(&KeySource) -> bool,
) -> Result<VaultScan, String> {
    let (client, paths) = block_on(async {
        let client = VaultClient::connect(source.config.clone()).await?;
        let paths = client.list_secrets(&source.mount, &source.prefix).await?;
        Ok::<_, ferrosigner_vault::Error>((client, paths))
    })
    .map_err(|e| e.to_string())?;
    let connection = Arc::new(VaultConnection {
        client,
        mount: source.mount.clone(),
        field: source.field.clone(),
    });
    let mut scan = VaultScan {
        jobs: Vec::new(),
        present: Default::default(),
    };
    for path in paths {
        let key_source = vault_key_source(&source.mount, &path);
        scan.present.insert(key_source.clone());
        if !loaded(&key_source) {
            scan.jobs.push(RemoteJob {
                source: key_source,
                key: RemoteKey::Vault {
                    source: connection.clone(),
                    path,
                },
            });
        }
    }
    Ok(scan)
}

/// Fetches every job, `at_once` at a time (they wait on the network, not on the CPU), calling `done(job, result)` as each finishes. Blocks until all are done:
/// call it from a blocking thread. Once `stop` is set, jobs not started yet are skipped.
pub(crate) fn fetch_all(
    jobs: Vec<RemoteJob>,
    at_once: usize,
    stop: &AtomicBool,
    done: impl Fn(RemoteJob, Result<Zeroizing<[u8; 32]>, String>) + Sync,
) {
    if jobs.is_empty() {
        return;
    }
    let threads = at_once.clamp(1, jobs.len());
    let queue = Mutex::new(jobs.into_iter());
    let next = || queue.lock().unwrap_or_else(|e| e.into_inner()).next();
    let runtime = tokio::runtime::Handle::try_current().ok();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let _context = runtime.as_ref().map(|r| r.enter());
                while let Some(job) = next() {
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    let result = fetch(&job.key);
                    done(job, result);
                }
            });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> HashicorpKey {
        HashicorpKey {
            server_host: "vault.example".into(),
            server_port: DEFAULT_VAULT_PORT,
            key_path: "/v1/secret/data/k".into(),
            key_name: DEFAULT_KEY_NAME.into(),
            auth: VaultAuth::Token(Zeroizing::new("s.SECRET-TOKEN".into())),
            tls: VaultTls::SystemCas,
            timeout: DEFAULT_TIMEOUT,
            http_version: HttpVersion::Http2,
        }
    }

    /// A key whose fetch fails before any network access.
    fn unfetchable() -> RemoteKey {
        RemoteKey::Hashicorp(HashicorpKey {
            auth: VaultAuth::Kubernetes {
                role: "validators".into(),
                service_account_token_path: PathBuf::from(DEFAULT_K8S_TOKEN_PATH),
                auth_path: DEFAULT_K8S_AUTH_PATH.into(),
            },
            ..key()
        })
    }

    #[test]
    fn debug_never_shows_the_token() {
        let shown = format!("{:?}", key());
        assert!(!shown.contains("SECRET-TOKEN"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
        assert!(shown.contains("vault.example"), "{shown}");
    }

    #[test]
    fn kubernetes_auth_is_refused_by_name() {
        let error = fetch(&unfetchable()).unwrap_err();
        assert!(error.contains("Kubernetes auth"), "{error}");
    }

    #[test]
    fn a_document_becomes_the_client_configuration() {
        let mut k = key();
        k.tls = VaultTls::Disabled;
        k.server_host = "::1".into();
        k.timeout = Duration::from_millis(2500);
        let config = hashicorp_config(&k).unwrap();
        assert_eq!(config.address, "http://[::1]:8200");
        assert_eq!(config.request_timeout, Duration::from_millis(2500));
        assert!(config.ca_file.is_none() && config.known_servers_file.is_none());

        k.tls = VaultTls::KnownServers(PathBuf::from("/etc/ks.txt"));
        k.server_host = "vault.internal".into();
        let config = hashicorp_config(&k).unwrap();
        assert_eq!(config.address, "https://vault.internal:8200");
        assert_eq!(
            config.known_servers_file,
            Some(PathBuf::from("/etc/ks.txt"))
        );
        assert!(!format!("{config:?}").contains("SECRET-TOKEN"));
    }

    #[tokio::test]
    async fn fetches_run_inside_the_runtime_context() {
        let job = RemoteJob {
            source: KeySource::KeyConfig {
                file: PathBuf::from("k.yaml"),
                document: 1,
            },
            key: unfetchable(),
        };
        let in_context = tokio::task::spawn_blocking(move || {
            let seen = Mutex::new(Vec::new());
            fetch_all(
                vec![job.clone(), job],
                8,
                &AtomicBool::new(false),
                |_, _| {
                    let handle = tokio::runtime::Handle::try_current();
                    // What an async client would do from `fetch`.
                    let answer = handle.map(|h| h.block_on(async { 42 }));
                    seen.lock().unwrap().push(answer.ok());
                },
            );
            seen.into_inner().unwrap()
        })
        .await
        .unwrap();
        assert_eq!(in_context, [Some(42), Some(42)]);
    }

    #[test]
    fn every_job_is_fetched_once_unless_stopped() {
        let jobs: Vec<RemoteJob> = (0..20)
            .map(|i| RemoteJob {
                source: KeySource::KeyConfig {
                    file: PathBuf::from(format!("k{i}.yaml")),
                    document: 1,
                },
                key: unfetchable(),
            })
            .collect();
        let seen = Mutex::new(Vec::new());
        fetch_all(jobs.clone(), 8, &AtomicBool::new(false), |job, result| {
            assert!(result.is_err());
            seen.lock().unwrap().push(job.source);
        });
        assert_eq!(seen.lock().unwrap().len(), 20);
        let stopped = Mutex::new(0);
        fetch_all(jobs, 8, &AtomicBool::new(true), |_, _| {
            *stopped.lock().unwrap() += 1;
        });
        assert_eq!(*stopped.lock().unwrap(), 0);
    }
}
