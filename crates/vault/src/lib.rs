//! A HashiCorp Vault (and OpenBao) KV v2 client that loads validator BLS secret keys.
//!
//! How the parts connect:
//!
//! - [`config`]: what to connect to and how: [`VaultConfig`] (address, [`Auth`], CA file,
//!   known-servers file, namespace, per-request timeout, [`RetryPolicy`]).
//! - `tls` (private): the rustls client configuration (ring provider) built from the CA file
//!   and/or the Web3Signer known-servers file (SHA-256 certificate fingerprints per `host:port`).
//! - `transport` (private): one pooled HTTP/1.1 connection manager for one server, every
//!   request under the per-request timeout, transient failures (connect errors, timeouts, 5xx,
//!   429) retried with exponential backoff within the [`RetryPolicy`]'s bounds.
//! - `response` (private): picks one string out of a JSON answer straight into a zeroized
//!   buffer, without building a JSON tree that would hold every secret field in clear.
//! - [`client`]: [`VaultClient`]: [`VaultClient::connect`] resolves the [`Auth`] (token, token
//!   file, AppRole login) once, then [`VaultClient::read_field`] / [`VaultClient::read_key`] read
//!   one secret by its full API path (Web3Signer's `keyPath` + `keyName`),
//!   [`VaultClient::list_secrets`] lists a KV v2 mount + prefix recursively, and
//!   [`VaultClient::fetch_all`] reads every secret found there with bounded parallelism, one
//!   result per secret in path order.
//! - [`key`]: [`parse_secret_key_hex`]: a field's `0x`-hex (or bare hex) text to the 32 secret key
//!   bytes ([`SecretKeyBytes`]). This crate does not check that the bytes are a valid BLS scalar:
//!   the caller makes the key (for example `ferrosigner_bls::SecretKey::from_bytes`) and checks
//!   its public key.
//!
//! Secrets (tokens, AppRole secret ids, key fields, key bytes) live in [`zeroize::Zeroizing`]
//! buffers and never reach an [`Error`], a log line or a `Debug` output. HTTPS needs a CA file
//! or a known-servers file: this crate carries no system trust roots. Plain HTTP is used only
//! for an explicit `http://` address.
//!
//! Every fallible operation returns the one [`Error`] enum of this crate.
//!
//! ```no_run
//! use ferrosigner_vault::{Auth, VaultClient, VaultConfig};
//!
//! # async fn example() -> Result<(), ferrosigner_vault::Error> {
//! let mut config = VaultConfig::new(
//!     "https://vault.example:8200",
//!     Auth::TokenFile("/etc/ferrosigner/vault-token".into()),
//! );
//! config.ca_file = Some("/etc/ferrosigner/vault-ca.pem".into());
//! let vault = VaultClient::connect(config).await?;
//!
//! // One key, as a Web3Signer `hashicorp` key config names it.
//! let key = vault.read_key("/v1/secret/data/validators/key1", "value").await?;
//! assert_eq!(key.expose().len(), 32);
//!
//! // Every key under a mount + prefix, eight requests at a time.
//! let keys = vault
//!     .fetch_all("secret", "validators", "value", 8, |done, total| {
//!         eprintln!("{done}/{total} keys fetched");
//!     })
//!     .await?;
//! for fetched in &keys {
//!     match &fetched.key {
//!         Ok(bytes) => { /* make the BLS secret key from bytes.expose() */ }
//!         Err(e) => eprintln!("skipping {}: {e}", fetched.path),
//!     }
//! }
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

use std::path::PathBuf;
use std::time::Duration;

pub mod client;
pub mod config;
pub mod key;
mod response;
mod tls;
mod transport;

pub use client::{FetchedKey, VaultClient};
pub use config::{Auth, RetryPolicy, VaultConfig};
pub use key::{SecretKeyBytes, parse_secret_key_hex};

/// Everything that can go wrong in this crate.
///
/// No variant carries a token, a secret id or key material. Paths are API paths (such as
/// `secret/data/validators/key1`), never URLs with credentials. Texts that echo the server
/// (its `errors` list) are truncated.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot be used: a bad address, an empty token, a bad API path, zero
    /// parallelism, an unsupported Web3Signer option.
    #[error("vault configuration: {0}")]
    Config(String),
    /// A file named by the configuration (token file, AppRole secret-id file) cannot be read.
    #[error("cannot read the vault {what} {path}: {source}")]
    File {
        /// What the file holds ("token file", "AppRole secret-id file").
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it cannot be read.
        #[source]
        source: std::io::Error,
    },
    /// The TLS configuration cannot be used: an unreadable or malformed CA file or known-servers
    /// file, or HTTPS with neither of them.
    #[error("vault TLS configuration: {0}")]
    TlsConfig(String),
    /// The TLS handshake failed: the server's certificate was refused (not issued by the CA file,
    /// fingerprint not in the known-servers file, wrong name) or the server refused us. Not
    /// retried.
    #[error("TLS handshake with the vault at {address} failed: {reason}")]
    TlsHandshake {
        /// `host:port` of the server.
        address: String,
        /// The TLS library's reason.
        reason: String,
    },
    /// No usable answer after the retries: connection refused or reset, timeouts, HTTP 5xx or 429
    /// (a sealed or standby server answers 503).
    #[error(
        "vault at {address} unavailable for {path}: {reason} (gave up after {attempts} attempt(s) in {elapsed:?})"
    )]
    Unavailable {
        /// `host:port` of the server.
        address: String,
        /// The API path asked for.
        path: String,
        /// How many attempts were made.
        attempts: u32,
        /// Time spent, backoff included.
        elapsed: Duration,
        /// The last failure.
        reason: String,
    },
    /// HTTP 401 or 403 (or a refused AppRole login): the token is wrong, expired or lacks the
    /// policy for the path. Never retried.
    #[error(
        "permission denied (HTTP {status}) for {path}: check the vault token or AppRole credentials and their policy"
    )]
    PermissionDenied {
        /// The API path asked for.
        path: String,
        /// The HTTP status.
        status: u16,
    },
    /// HTTP 404: no secret (or, for a listing, no key) at the path. Never retried.
    #[error("not found (HTTP 404) in the vault: {path}")]
    NotFound {
        /// The API path asked for.
        path: String,
    },
    /// Any other unexpected HTTP status (such as 400). Never retried.
    #[error("vault answered HTTP {status} for {path}: {message}")]
    Status {
        /// The API path asked for.
        path: String,
        /// The HTTP status.
        status: u16,
        /// The server's `errors` list, truncated.
        message: String,
    },
    /// The answer is not what the KV v2 API returns (not JSON, no `data`, too large…).
    #[error("bad answer from the vault for {path}: {reason}")]
    BadResponse {
        /// The API path asked for.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The secret exists but has no such field (or the field is not a string).
    #[error("the vault secret {path} has no string field {field:?}")]
    FieldMissing {
        /// The API path of the secret.
        path: String,
        /// The field asked for.
        field: String,
    },
    /// The field is not a 32-byte private key in hex.
    #[error("the vault secret {path} field {field:?} is not a 32-byte hex private key: {reason}")]
    BadKey {
        /// The API path of the secret.
        path: String,
        /// The field.
        field: String,
        /// What is wrong with the text (never the text itself).
        reason: &'static str,
    },
}

impl Error {
    /// Whether the failure was the server being unreachable or failing (after the retries), as
    /// opposed to a refusal or a bad secret that trying again will not fix.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }
}
