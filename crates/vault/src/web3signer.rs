//! Web3Signer's `type: hashicorp` key-config file: [`HashicorpKeyConfig`].
//!
//! The caller parses the YAML (one document per key) into this type with serde, then
//! [`HashicorpKeyConfig::vault_config`] gives the [`VaultConfig`] to connect with, and
//! [`crate::VaultClient::read_key`] reads [`HashicorpKeyConfig::key_path`] /
//! [`HashicorpKeyConfig::key_name`]. Values are read as leniently as Web3Signer reads them:
//! `serverPort: "8200"`, `tlsEnabled: "true"` and `timeout: "10000"` are accepted as strings.
//!
//! Web3Signer's fields: `serverHost` (required), `serverPort` (default 8200), `keyPath`
//! (required, the full API path such as `/v1/secret/data/key1`), `keyName` (default `value`),
//! `token` (Web3Signer has no token-file field), `tlsEnabled` (default true),
//! `tlsKnownServersPath`, `timeout` (milliseconds, default 10000), `keyType` (only `BLS` here),
//! `authMethod` (only `TOKEN` here; Kubernetes auth is not supported). One field is
//! ferrosigner's own: `tlsCaFile`, a PEM CA file, since no system trust roots are built in.
//! `type` and unknown fields are ignored. Relative paths are used as given: the caller resolves
//! them (for example against the key-config file's directory) before connecting.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use zeroize::Zeroizing;

use crate::Error;
use crate::config::{Auth, DEFAULT_FIELD, DEFAULT_PORT, VaultConfig};

/// The fields of one Web3Signer `type: hashicorp` key config. `Debug` hides the token.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HashicorpKeyConfig {
    /// The vault's host name or address.
    pub server_host: String,
    /// The vault's port (default 8200).
    #[serde(default, deserialize_with = "lenient_port")]
    pub server_port: Option<u16>,
    /// The full API path of the secret, such as `/v1/secret/data/validators/key1`.
    pub key_path: String,
    /// The field of the secret holding the key (default `value`).
    #[serde(default)]
    pub key_name: Option<String>,
    /// The vault token.
    #[serde(default, deserialize_with = "secret_string")]
    pub token: Option<Zeroizing<String>>,
    /// HTTPS (default) or plain HTTP.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub tls_enabled: Option<bool>,
    /// Web3Signer's known-servers file (`host:port` and SHA-256 fingerprint per line).
    #[serde(default)]
    pub tls_known_servers_path: Option<PathBuf>,
    /// ferrosigner's own: a PEM file of the CA the vault's certificate chains to.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// The per-request timeout in milliseconds (default 10000).
    #[serde(default, deserialize_with = "lenient_u64")]
    pub timeout: Option<u64>,
    /// `BLS` (the default; the only type loaded here).
    #[serde(default)]
    pub key_type: Option<String>,
    /// `TOKEN` (the default; the only method supported here).
    #[serde(default)]
    pub auth_method: Option<String>,
}

impl fmt::Debug for HashicorpKeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HashicorpKeyConfig")
            .field("server_host", &self.server_host)
            .field("server_port", &self.server_port)
            .field("key_path", &self.key_path)
            .field("key_name", &self.key_name)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("tls_enabled", &self.tls_enabled)
            .field("tls_known_servers_path", &self.tls_known_servers_path)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("timeout", &self.timeout)
            .field("key_type", &self.key_type)
            .field("auth_method", &self.auth_method)
            .finish()
    }
}

impl HashicorpKeyConfig {
    /// The API path of the secret.
    pub fn key_path(&self) -> &str {
        &self.key_path
    }

    /// The field holding the key: `keyName`, or `value` when absent or empty.
    pub fn key_name(&self) -> &str {
        self.key_name
            .as_deref()
            .filter(|name| !name.is_empty())
            .unwrap_or(DEFAULT_FIELD)
    }

    /// The connection settings: `https://serverHost:serverPort` with the known-servers and CA
    /// files, or `http://…` (files ignored, as Web3Signer ignores them) when `tlsEnabled` is
    /// false; the token; the timeout; the default retry policy.
    pub fn vault_config(&self) -> Result<VaultConfig, Error> {
        if let Some(kind) = &self.key_type
            && !kind.eq_ignore_ascii_case("BLS")
        {
            return Err(Error::Config(format!(
                "keyType {kind:?} is not supported: only BLS keys are loaded"
            )));
        }
        if let Some(method) = &self.auth_method
            && !method.eq_ignore_ascii_case("TOKEN")
        {
            return Err(Error::Config(format!(
                "authMethod {method:?} is not supported: only TOKEN"
            )));
        }
        let host = self.server_host.trim();
        if host.is_empty() || host.contains(['/', '@', '?', '#']) {
            return Err(Error::Config(format!(
                "serverHost {:?} must be a host name or address only (no scheme, path or credentials)",
                self.server_host
            )));
        }
        let token = match &self.token {
            Some(token) if !token.trim().is_empty() => Auth::Token(token.clone()),
            _ => {
                return Err(Error::Config(
                    "the hashicorp key config has no token".into(),
                ));
            }
        };
        let tls = self.tls_enabled.unwrap_or(true);
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        let port = self.server_port.unwrap_or(DEFAULT_PORT);
        let scheme = if tls { "https" } else { "http" };
        let mut config = VaultConfig::new(format!("{scheme}://{host}:{port}"), token);
        if tls {
            config.known_servers_file = self.tls_known_servers_path.clone();
            config.ca_file = self.tls_ca_file.clone();
        }
        if let Some(ms) = self.timeout {
            if ms == 0 {
                return Err(Error::Config("timeout must be more than 0 ms".into()));
            }
            config.request_timeout = Duration::from_millis(ms);
        }
        Ok(config)
    }
}

/// A number or a string holding one, or a boolean or a string holding one.
#[derive(Deserialize)]
#[serde(untagged)]
enum Lenient {
    Number(u64),
    Bool(bool),
    Text(String),
}

fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Lenient::deserialize(d)? {
        Lenient::Number(n) => Ok(Some(n)),
        Lenient::Text(t) => t
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("{t:?} is not a whole number"))),
        Lenient::Bool(_) => Err(serde::de::Error::custom("expected a whole number")),
    }
}

fn lenient_port<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    let n = lenient_u64(d)?;
    n.map(|n| {
        u16::try_from(n)
            .map_err(|_| serde::de::Error::custom(format!("port {n} is not from 0 to 65535")))
    })
    .transpose()
}

fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    match Lenient::deserialize(d)? {
        Lenient::Bool(b) => Ok(Some(b)),
        Lenient::Text(t) if t.trim().eq_ignore_ascii_case("true") => Ok(Some(true)),
        Lenient::Text(t) if t.trim().eq_ignore_ascii_case("false") => Ok(Some(false)),
        _ => Err(serde::de::Error::custom("expected true or false")),
    }
}

fn secret_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Zeroizing<String>>, D::Error> {
    String::deserialize(d).map(|s| Some(Zeroizing::new(s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> HashicorpKeyConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_documented_example() {
        // Web3Signer's documentation example, every value a string.
        let c = parse(
            r#"{"type":"hashicorp","keyType":"BLS","tlsEnabled":"true",
                "keyPath":"/v1/secret/data/secretPath","keyName":"secretName",
                "tlsKnownServersPath":"/Users/me/project/knownhosts","serverHost":"localhost",
                "serverPort":"32895","timeout":"10000","token":"s.MuZwBqZ0iE1HzvD64v3HMlhT"}"#,
        );
        assert_eq!(c.key_name(), "secretName");
        assert_eq!(c.key_path(), "/v1/secret/data/secretPath");
        let v = c.vault_config().unwrap();
        assert_eq!(v.address, "https://localhost:32895");
        assert_eq!(
            v.known_servers_file,
            Some("/Users/me/project/knownhosts".into())
        );
        assert_eq!(v.request_timeout, Duration::from_millis(10_000));
        let shown = format!("{c:?} {v:?}");
        assert!(!shown.contains("MuZwBq"), "{shown}");
    }

    #[test]
    fn defaults_and_plain_http() {
        let c = parse(
            r#"{"type":"hashicorp","serverHost":"::1","keyPath":"/v1/secret/data/k",
                "token":"t","tlsEnabled":false,"tlsKnownServersPath":"/k","serverPort":8300}"#,
        );
        assert_eq!(c.key_name(), "value");
        let v = c.vault_config().unwrap();
        assert_eq!(v.address, "http://[::1]:8300");
        assert_eq!(v.known_servers_file, None);
        let c = parse(r#"{"serverHost":"vault","keyPath":"/v1/secret/data/k","token":"t"}"#);
        let v = c.vault_config().unwrap();
        assert_eq!(v.address, "https://vault:8200");
        assert_eq!(v.request_timeout, crate::config::DEFAULT_REQUEST_TIMEOUT);
    }

    #[test]
    fn refusals() {
        for (json, want) in [
            (r#"{"serverHost":"v","keyPath":"/v1/s/data/k"}"#, "no token"),
            (
                r#"{"serverHost":"v","keyPath":"/v1/s/data/k","token":"t","keyType":"SECP256K1"}"#,
                "keyType",
            ),
            (
                r#"{"serverHost":"v","keyPath":"/v1/s/data/k","token":"t","authMethod":"KUBERNETES"}"#,
                "authMethod",
            ),
            (
                r#"{"serverHost":"https://v","keyPath":"/v1/s/data/k","token":"t"}"#,
                "serverHost",
            ),
            (
                r#"{"serverHost":"v","keyPath":"/v1/s/data/k","token":"t","timeout":0}"#,
                "timeout",
            ),
        ] {
            let e = parse(json).vault_config().unwrap_err();
            assert!(e.to_string().contains(want), "{json}: {e}");
        }
        assert!(
            serde_json::from_str::<HashicorpKeyConfig>(
                r#"{"serverHost":"v","keyPath":"k","serverPort":"70000"}"#
            )
            .is_err()
        );
        assert!(
            serde_json::from_str::<HashicorpKeyConfig>(
                r#"{"serverHost":"v","keyPath":"k","tlsEnabled":"yes"}"#
            )
            .is_err()
        );
    }
}
