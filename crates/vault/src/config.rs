//! What to connect to and how: [`VaultConfig`], its [`Auth`] and [`RetryPolicy`].
//!
//! [`crate::VaultClient::connect`] takes a [`VaultConfig`]: it parses the address, builds the TLS
//! configuration from the CA and known-servers files, and resolves the [`Auth`] into a token. The
//! [`RetryPolicy`] bounds every request the client makes afterwards.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use zeroize::Zeroizing;

/// The port of an address that names none (Vault's default, as Web3Signer's `serverPort`).
pub const DEFAULT_PORT: u16 = 8200;
/// The per-request timeout unless configured (Web3Signer's `timeout` default, 10 s).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The field of a secret holding the private key unless configured (Web3Signer's `keyName` default).
pub const DEFAULT_FIELD: &str = "value";
/// Requests in flight at once while bulk loading unless configured.
pub const DEFAULT_PARALLELISM: usize = 8;
/// The path the AppRole auth method is mounted at unless configured.
pub const DEFAULT_APPROLE_MOUNT: &str = "approle";

/// How the client authenticates. Every request carries the resulting token in `X-Vault-Token`.
#[derive(Clone)]
pub enum Auth {
    /// A token given directly.
    Token(Zeroizing<String>),
    /// A file holding the token, read at connect (surrounding whitespace, such as a trailing
    /// newline, is trimmed).
    TokenFile(PathBuf),
    /// AppRole login at connect: `POST /v1/auth/<mount>/login` with the role id and the secret id
    /// read from a file gives the client token.
    AppRole {
        /// The role id (an identifier, not a secret).
        role_id: String,
        /// A file holding the secret id (trimmed like a token file).
        secret_id_file: PathBuf,
        /// Where the AppRole auth method is mounted ([`DEFAULT_APPROLE_MOUNT`]).
        mount: String,
    },
}

impl Auth {
    /// A token given directly.
    pub fn token(token: impl Into<String>) -> Auth {
        Auth::Token(Zeroizing::new(token.into()))
    }

    /// AppRole login on the default mount (`approle`).
    pub fn approle(role_id: impl Into<String>, secret_id_file: impl Into<PathBuf>) -> Auth {
        Auth::AppRole {
            role_id: role_id.into(),
            secret_id_file: secret_id_file.into(),
            mount: DEFAULT_APPROLE_MOUNT.to_owned(),
        }
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Token(_) => f.write_str("Token(<redacted>)"),
            Auth::TokenFile(path) => f.debug_tuple("TokenFile").field(path).finish(),
            Auth::AppRole {
                role_id,
                secret_id_file,
                mount,
            } => f
                .debug_struct("AppRole")
                .field("role_id", role_id)
                .field("secret_id_file", secret_id_file)
                .field("mount", mount)
                .finish(),
        }
    }
}

/// Retries of transient failures (connect errors, timeouts, HTTP 5xx and 429): at most
/// `max_attempts` attempts, waiting `initial_backoff`, then twice as long each time up to
/// `max_backoff`, and never waiting past `max_elapsed` since the first attempt. Refusals (400,
/// 401, 403, 404) and TLS handshake failures are never retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// The wait after the first failure.
    pub initial_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
    /// No new attempt starts when the wait before it would end later than this after the first.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    /// 5 attempts, 200 ms doubling up to 5 s, 30 s in all.
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retry.
    pub fn none() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The wait after failed attempt number `attempt` (1-based).
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.initial_backoff
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff)
    }
}

/// Where the vault is and how to talk to it.
///
/// `Debug` shows no secret: a token given directly prints as `<redacted>`.
#[derive(Debug, Clone)]
pub struct VaultConfig {
    /// `https://host:port` or, only when plain HTTP is intended, `http://host:port`. A missing
    /// port means [`DEFAULT_PORT`]; a path is not allowed.
    pub address: String,
    /// How to get the token.
    pub auth: Auth,
    /// PEM file of the CA certificate(s) the server's certificate must chain to (HTTPS).
    pub ca_file: Option<PathBuf>,
    /// Web3Signer's known-servers file (HTTPS): one `host:port <SHA-256 fingerprint>` per line,
    /// the fingerprint in hex with or without colons, `#` comments. A server whose certificate's
    /// fingerprint is listed for the configured `host:port` is accepted; otherwise its
    /// certificate must chain to the CA file (when one is given), as Web3Signer accepts either.
    pub known_servers_file: Option<PathBuf>,
    /// Sent as `X-Vault-Namespace` when set (Vault Enterprise and OpenBao namespaces).
    pub namespace: Option<String>,
    /// The longest one attempt of one request may take, connecting included.
    pub request_timeout: Duration,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
}

impl VaultConfig {
    /// A configuration with no CA or known-servers file, no namespace, the default timeout
    /// ([`DEFAULT_REQUEST_TIMEOUT`]) and the default [`RetryPolicy`].
    pub fn new(address: impl Into<String>, auth: Auth) -> VaultConfig {
        VaultConfig {
            address: address.into(),
            auth,
            ca_file: None,
            known_servers_file: None,
            namespace: None,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            retry: RetryPolicy::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy::default();
        let waits: Vec<u128> = (1..=7).map(|a| p.backoff(a).as_millis()).collect();
        assert_eq!(waits, [200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(p.backoff(200), Duration::from_secs(5));
    }

    #[test]
    fn debug_hides_the_token() {
        let config = VaultConfig::new("https://vault:8200", Auth::token("hvs.very-secret"));
        let text = format!("{config:?}");
        assert!(!text.contains("very-secret"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
    }
}
