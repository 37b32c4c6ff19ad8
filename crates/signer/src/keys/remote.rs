//! Keys held by a remote service: each a [`RemoteJob`] that is fetched to a secret and then registered like any
//! other key (start-up, `/reload`, the disabled-key check, duplicates, failures by source and document).
//!
//! The only remote service today is HashiCorp Vault (KV version 2), named by `type: hashicorp` key config
//! documents ([`HashicorpKey`]). [`fetch`] is the one place a remote key becomes a secret; the Vault client is
//! not part of this build, so [`fetch_hashicorp`] refuses, and each such document is a load failure naming
//! its file. Another remote source (e.g. every key under a Vault KV path) adds a [`RemoteKey`] variant and
//! produces more jobs; loading, reloading and reporting them needs nothing else.
//!
//! Fetching blocks: [`fetch_all`] runs on a blocking thread and fetches a few keys at once on threads of its
//! own, each inside the Tokio runtime's context, so that an async client can be driven from [`fetch`] with
//! `tokio::runtime::Handle::current().block_on(…)`.
//!
//! Adding a remote source: a [`RemoteKey`] variant and its arm in [`fetch`], a [`KeySource`] variant naming
//! where each key was configured (its identity across reloads), and the jobs produced next to the key config
//! scan in `Keyring::load_blocking` and `Keyring::reload_blocking`; loading, the disabled-key check,
//! duplicates, reload removal, health and metrics then work as for key config documents.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteKey {
    /// One secret of HashiCorp Vault.
    Hashicorp(HashicorpKey),
}

/// One remote key to fetch and register, with where it was configured.
#[derive(Debug, Clone)]
pub struct RemoteJob {
    /// Where the key was configured; the registered key gets this source.
    pub source: KeySource,
    /// What to fetch.
    pub key: RemoteKey,
}

/// Fetches a remote key's secret (blocking). The error says why, without any secret.
pub fn fetch(key: &RemoteKey) -> Result<Zeroizing<[u8; 32]>, String> {
    match key {
        RemoteKey::Hashicorp(key) => fetch_hashicorp(key),
    }
}

/// Fetches one key from HashiCorp Vault (blocking; called inside the runtime's context, never on an async
/// worker). This build has no Vault client.
pub fn fetch_hashicorp(key: &HashicorpKey) -> Result<Zeroizing<[u8; 32]>, String> {
    let _ = key;
    Err("hashicorp keys are not supported by this build".to_owned())
}

/// Remote fetches at once: they wait on the network, not on the CPU.
const FETCHES_AT_ONCE: usize = 8;

/// Fetches every job, a few at once, calling `done(job, result)` as each finishes. Blocks until all are done:
/// call it from a blocking thread. Once `stop` is set, jobs not started yet are skipped.
pub(crate) fn fetch_all(
    jobs: Vec<RemoteJob>,
    stop: &AtomicBool,
    done: impl Fn(RemoteJob, Result<Zeroizing<[u8; 32]>, String>) + Sync,
) {
    if jobs.is_empty() {
        return;
    }
    let threads = FETCHES_AT_ONCE.min(jobs.len());
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

    #[test]
    fn debug_never_shows_the_token() {
        let shown = format!("{:?}", key());
        assert!(!shown.contains("SECRET-TOKEN"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
        assert!(shown.contains("vault.example"), "{shown}");
    }

    #[test]
    fn this_build_refuses_to_fetch_from_vault() {
        let error = fetch(&RemoteKey::Hashicorp(key())).unwrap_err();
        assert_eq!(error, "hashicorp keys are not supported by this build");
    }

    #[tokio::test]
    async fn fetches_run_inside_the_runtime_context() {
        let job = RemoteJob {
            source: KeySource::KeyConfig {
                file: PathBuf::from("k.yaml"),
                document: 1,
            },
            key: RemoteKey::Hashicorp(key()),
        };
        let in_context = tokio::task::spawn_blocking(move || {
            let seen = Mutex::new(Vec::new());
            fetch_all(vec![job.clone(), job], &AtomicBool::new(false), |_, _| {
                let handle = tokio::runtime::Handle::try_current();
                // What an async client would do from `fetch`.
                let answer = handle.map(|h| h.block_on(async { 42 }));
                seen.lock().unwrap().push(answer.ok());
            });
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
                key: RemoteKey::Hashicorp(key()),
            })
            .collect();
        let seen = Mutex::new(Vec::new());
        fetch_all(jobs.clone(), &AtomicBool::new(false), |job, result| {
            assert!(result.is_err());
            seen.lock().unwrap().push(job.source);
        });
        assert_eq!(seen.lock().unwrap().len(), 20);
        let stopped = Mutex::new(0);
        fetch_all(jobs, &AtomicBool::new(true), |_, _| {
            *stopped.lock().unwrap() += 1;
        });
        assert_eq!(*stopped.lock().unwrap(), 0);
    }
}
