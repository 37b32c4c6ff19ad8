//! [`VaultClient`]: authenticate once, then read, list and bulk-fetch KV v2 secrets.
//!
//! [`VaultClient::connect`] reads the files the [`VaultConfig`] names (off the async workers,
//! through `tokio::fs`), builds the transport (TLS from the `tls` module) and turns the [`Auth`]
//! into a token. Each operation builds an API path, sends it through the transport (which retries
//! transient failures), maps the status to an [`Error`] and picks what it needs out of the answer.

use std::fmt;
use std::path::Path;

use futures::StreamExt;
use futures::stream;
use hyper::Method;
use hyper::body::Bytes;
use hyper::header::HeaderValue;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::config::{Auth, DEFAULT_PARALLELISM, VaultConfig};
use crate::key::{SecretKeyBytes, parse_secret_key_hex};
use crate::response::{ListAnswer, Picked, error_message, pick_string};
use crate::transport::{Call, Endpoint, Reply, Transport};
use crate::{Error, tls};

/// What a path segment keeps unescaped: the URL "unreserved" characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A connected, authenticated client of one vault server. Cheap to share by reference across
/// tasks; its operations may run concurrently.
///
/// `Debug` shows the server only, never the token.
pub struct VaultClient {
    transport: Transport,
    token: HeaderValue,
}

impl fmt::Debug for VaultClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultClient")
            .field("address", &self.transport.authority())
            .finish_non_exhaustive()
    }
}

/// One secret of a bulk fetch: its path (under the mount, such as `validators/key1`) and its key
/// or why it could not be had. `Debug` shows no key byte.
#[derive(Debug)]
pub struct FetchedKey {
    /// The secret's path under the mount.
    pub path: String,
    /// The 32 key bytes, or the error for this secret alone.
    pub key: Result<SecretKeyBytes, Error>,
}

impl VaultClient {
    /// Checks the configuration, reads its files, and obtains the token (for AppRole, by logging
    /// in, with the retries of the [`crate::RetryPolicy`]). No other request is made: a wrong
    /// token shows at the first read.
    pub async fn connect(config: VaultConfig) -> Result<VaultClient, Error> {
        let endpoint = Endpoint::parse(&config.address)?;
        if config.request_timeout.is_zero() {
            return Err(Error::Config("the request timeout must not be zero".into()));
        }
        if config.retry.max_attempts == 0 {
            return Err(Error::Config(
                "the retry policy needs at least one attempt".into(),
            ));
        }
        let tls = if endpoint.tls {
            let ca = match &config.ca_file {
                Some(path) => Some((path, read_file(path, "CA file").await?)),
                None => None,
            };
            let known = match &config.known_servers_file {
                Some(path) => {
                    let bytes = read_file(path, "known-servers file").await?;
                    let text = String::from_utf8(bytes).map_err(|_| {
                        Error::TlsConfig(format!(
                            "known-servers file {} is not UTF-8 text",
                            path.display()
                        ))
                    })?;
                    Some((path, text))
                }
                None => None,
            };
            Some(tls::client_config(
                &endpoint.host,
                endpoint.port,
                ca.as_ref().map(|(p, b)| (p.as_path(), b.as_slice())),
                known.as_ref().map(|(p, t)| (p.as_path(), t.as_str())),
            )?)
        } else {
            if config.ca_file.is_some() || config.known_servers_file.is_some() {
                return Err(Error::Config(format!(
                    "a CA or known-servers file is configured but the vault address {:?} is \
                     plain http://: use https:// (or drop the TLS files to use plain HTTP)",
                    config.address
                )));
            }
            None
        };
        let transport = Transport::new(
            &endpoint,
            tls,
            config.request_timeout,
            config.retry,
            config.namespace.as_deref(),
        )?;
        let token = match &config.auth {
            Auth::Token(token) => token_header(token.trim())?,
            Auth::TokenFile(path) => token_header(&read_secret(path, "token file").await?)?,
            Auth::AppRole {
                role_id,
                secret_id_file,
                mount,
            } => {
                let secret_id = read_secret(secret_id_file, "AppRole secret-id file").await?;
                approle_login(&transport, role_id, &secret_id, mount).await?
            }
        };
        Ok(VaultClient { transport, token })
    }

    /// The string in field `field` of the KV v2 secret at `api_path`, the full API path as
    /// Web3Signer's `keyPath` gives it (`/v1/<mount>/data/<path>`), taken as a URL path as is.
    pub async fn read_field(
        &self,
        api_path: &str,
        field: &str,
    ) -> Result<Zeroizing<String>, Error> {
        let path = api_path.trim();
        let path = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        let Some(label) = path.strip_prefix("/v1/").filter(|rest| !rest.is_empty()) else {
            return Err(Error::Config(format!(
                "the secret path {api_path:?} is not a full API path such as /v1/secret/data/name"
            )));
        };
        if path.contains(['?', '#']) || path.parse::<hyper::Uri>().is_err() {
            return Err(Error::Config(format!(
                "the secret path {api_path:?} is not a valid URL path"
            )));
        }
        let label = label.to_owned();
        let reply = self.get(&path, &label).await?;
        field_of(reply, &label, field)
    }

    /// [`VaultClient::read_field`], parsed as a private key ([`parse_secret_key_hex`]).
    pub async fn read_key(&self, api_path: &str, field: &str) -> Result<SecretKeyBytes, Error> {
        let text = self.read_field(api_path, field).await?;
        key_of(&text, api_path.trim().trim_start_matches("/v1/"), field)
    }

    /// The paths of every secret under `prefix` in the KV v2 engine mounted at `mount`, sub-folders
    /// included, sorted. The paths are under the mount (prefix included, such as
    /// `validators/sub/key1`). `prefix` names a folder (`""` for the whole mount); a folder that
    /// does not exist is [`Error::NotFound`].
    pub async fn list_secrets(&self, mount: &str, prefix: &str) -> Result<Vec<String>, Error> {
        self.list_with(mount, prefix, DEFAULT_PARALLELISM).await
    }

    /// Lists the secrets under `prefix` ([`VaultClient::list_secrets`]), then reads field `field`
    /// of each as a private key, at most `parallelism` requests at a time. `progress(done, total)`
    /// is called with `done = 0` once the list is known, then after each secret. Returns one
    /// [`FetchedKey`] per secret in path order: one bad or unreadable secret does not fail the
    /// others. Only a failed listing fails the whole call.
    pub async fn fetch_all<P>(
        &self,
        mount: &str,
        prefix: &str,
        field: &str,
        parallelism: usize,
        progress: P,
    ) -> Result<Vec<FetchedKey>, Error>
    where
        P: Fn(usize, usize) + Send + Sync,
    {
        if parallelism == 0 {
            return Err(Error::Config("parallelism must be at least 1".into()));
        }
        let mount = clean_mount(mount)?;
        let paths = self.list_with(mount, prefix, parallelism).await?;
        let total = paths.len();
        progress(0, total);
        let mut fetches =
            stream::iter(paths.iter().enumerate().map(|(i, path)| async move {
                (i, self.read_mount_key(mount, path, field).await)
            }))
            .buffer_unordered(parallelism);
        let mut results = Vec::with_capacity(total);
        while let Some(done) = fetches.next().await {
            results.push(done);
            progress(results.len(), total);
        }
        drop(fetches);
        results.sort_by_key(|(i, _)| *i);
        Ok(paths
            .into_iter()
            .zip(results)
            .map(|(path, (_, key))| FetchedKey { path, key })
            .collect())
    }

    /// The private key in field `field` of the secret at `path` (as [`VaultClient::list_secrets`] names
    /// it) of the KV v2 engine mounted at `mount`: one secret of a bulk source, read on its own (for
    /// example the secrets added since the last listing).
    pub async fn read_secret_key(
        &self,
        mount: &str,
        path: &str,
        field: &str,
    ) -> Result<SecretKeyBytes, Error> {
        self.read_mount_key(clean_mount(mount)?, path, field).await
    }

    async fn read_mount_key(
        &self,
        mount: &str,
        path: &str,
        field: &str,
    ) -> Result<SecretKeyBytes, Error> {
        let label = format!("{mount}/data/{path}");
        let reply = self
            .get(&format!("/v1/{mount}/data/{}", encode_path(path)), &label)
            .await?;
        let text = field_of(reply, &label, field)?;
        key_of(&text, &label, field)
    }

    /// Breadth-first listing, each level's folders listed `parallelism` at a time.
    async fn list_with(
        &self,
        mount: &str,
        prefix: &str,
        parallelism: usize,
    ) -> Result<Vec<String>, Error> {
        let mount = clean_mount(mount)?;
        let prefix = prefix.trim().trim_matches('/');
        let root = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        let mut secrets = Vec::new();
        let mut level = vec![root];
        let mut top = true;
        while !level.is_empty() {
            let listings: Vec<(String, Result<Vec<String>, Error>)> =
                stream::iter(level.into_iter().map(|folder| async move {
                    let keys = self.list_folder(mount, &folder).await;
                    (folder, keys)
                }))
                .buffer_unordered(parallelism.max(1))
                .collect()
                .await;
            let mut next = Vec::new();
            for (folder, keys) in listings {
                let keys = match keys {
                    Ok(keys) => keys,
                    // A sub-folder emptied since its parent was listed.
                    Err(Error::NotFound { .. }) if !top => continue,
                    Err(e) => return Err(e),
                };
                for key in keys {
                    let name = key.trim_start_matches('/');
                    if name.is_empty() || name == "/" {
                        continue;
                    }
                    let full = format!("{folder}{name}");
                    if name.ends_with('/') {
                        next.push(full);
                    } else {
                        secrets.push(full);
                    }
                }
            }
            level = next;
            top = false;
        }
        secrets.sort();
        secrets.dedup();
        Ok(secrets)
    }

    /// The keys (secrets, and folders ending in `/`) of one folder.
    async fn list_folder(&self, mount: &str, folder: &str) -> Result<Vec<String>, Error> {
        let label = format!("{mount}/metadata/{folder}");
        let path = format!("/v1/{mount}/metadata/{}?list=true", encode_path(folder));
        let reply = self.get(&path, &label).await?;
        if reply.status != 200 {
            return Err(status_error(&reply, &label));
        }
        let answer: ListAnswer =
            serde_json::from_slice(&reply.body).map_err(|e| Error::BadResponse {
                path: label.clone(),
                reason: format!("not a listing: {e}"),
            })?;
        Ok(answer.data.keys)
    }

    /// GET with the token.
    async fn get(&self, path_and_query: &str, label: &str) -> Result<Reply, Error> {
        self.transport
            .send(&Call {
                method: Method::GET,
                path_and_query,
                label,
                token: Some(&self.token),
                body: None,
            })
            .await
    }
}

/// The field `field` of a KV v2 read answer.
fn field_of(reply: Reply, label: &str, field: &str) -> Result<Zeroizing<String>, Error> {
    if reply.status != 200 {
        return Err(status_error(&reply, label));
    }
    match pick_string(&reply.body, &["data", "data", field]) {
        Ok(Picked::Found(text)) => Ok(text),
        Ok(Picked::Missing { depth: 2 } | Picked::NotString) => Err(Error::FieldMissing {
            path: label.to_owned(),
            field: field.to_owned(),
        }),
        Ok(Picked::Missing { .. }) => Err(Error::BadResponse {
            path: label.to_owned(),
            reason: "no data.data object: is the path a KV v2 read path (/v1/<mount>/data/<name>)?"
                .to_owned(),
        }),
        Err(e) => Err(Error::BadResponse {
            path: label.to_owned(),
            reason: format!("not JSON: {e}"),
        }),
    }
}

/// The private key in a field's text.
fn key_of(text: &str, label: &str, field: &str) -> Result<SecretKeyBytes, Error> {
    parse_secret_key_hex(text).map_err(|reason| Error::BadKey {
        path: label.to_owned(),
        field: field.to_owned(),
        reason,
    })
}

/// The error for an answer that is not a success.
fn status_error(reply: &Reply, label: &str) -> Error {
    let path = label.to_owned();
    match reply.status {
        401 | 403 => Error::PermissionDenied {
            path,
            status: reply.status,
        },
        404 => Error::NotFound { path },
        status => Error::Status {
            path,
            status,
            message: error_message(&reply.body),
        },
    }
}

/// AppRole login: the client token.
async fn approle_login(
    transport: &Transport,
    role_id: &str,
    secret_id: &str,
    mount: &str,
) -> Result<HeaderValue, Error> {
    #[derive(Serialize)]
    struct Login<'a> {
        role_id: &'a str,
        secret_id: &'a str,
    }
    let mount = clean_mount(mount)?;
    let mut body = Zeroizing::new(Vec::with_capacity(64 + role_id.len() + secret_id.len()));
    serde_json::to_writer(&mut *body, &Login { role_id, secret_id })
        .map_err(|e| Error::Config(format!("AppRole login body: {e}")))?;
    let label = format!("auth/{mount}/login");
    let reply = transport
        .send(&Call {
            method: Method::POST,
            path_and_query: &format!("/v1/auth/{mount}/login"),
            label: &label,
            token: None,
            body: Some(Bytes::from_owner(body)),
        })
        .await?;
    match reply.status {
        200 => {}
        // Vault answers a wrong role or secret id with 400.
        400 | 401 | 403 => {
            return Err(Error::PermissionDenied {
                path: label,
                status: reply.status,
            });
        }
        _ => return Err(status_error(&reply, &label)),
    }
    match pick_string(&reply.body, &["auth", "client_token"]) {
        Ok(Picked::Found(token)) => token_header(&token),
        Ok(_) => Err(Error::BadResponse {
            path: label,
            reason: "no auth.client_token in the login answer".into(),
        }),
        Err(e) => Err(Error::BadResponse {
            path: label,
            reason: format!("not JSON: {e}"),
        }),
    }
}

/// The `X-Vault-Token` header value, marked sensitive, its bytes zeroized when the last copy goes.
fn token_header(token: &str) -> Result<HeaderValue, Error> {
    if token.is_empty() {
        return Err(Error::Config("the vault token is empty".into()));
    }
    let bytes = Bytes::from_owner(Zeroizing::new(token.as_bytes().to_vec()));
    let mut value = HeaderValue::from_maybe_shared(bytes).map_err(|_| {
        Error::Config("the vault token has characters not allowed in an HTTP header".into())
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// A mount path without surrounding slashes; empty or `..` segments refused.
fn clean_mount(mount: &str) -> Result<&str, Error> {
    let mount = mount.trim().trim_matches('/');
    if mount.is_empty()
        || mount
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(Error::Config(format!(
            "{mount:?} is not a mount path such as \"secret\""
        )));
    }
    Ok(mount)
}

/// Each `/`-separated segment percent-encoded.
fn encode_path(path: &str) -> String {
    path.split('/')
        .map(|segment| utf8_percent_encode(segment, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// A file's bytes.
async fn read_file(path: &Path, what: &'static str) -> Result<Vec<u8>, Error> {
    tokio::fs::read(path).await.map_err(|source| Error::File {
        what,
        path: path.to_owned(),
        source,
    })
}

/// A file holding one secret (token, secret id): UTF-8, surrounding whitespace trimmed, not empty.
async fn read_secret(path: &Path, what: &'static str) -> Result<Zeroizing<String>, Error> {
    let bytes = Zeroizing::new(read_file(path, what).await?);
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Error::Config(format!("the {what} {} is not UTF-8 text", path.display())))?
        .trim();
    if text.is_empty() {
        return Err(Error::Config(format!(
            "the {what} {} is empty",
            path.display()
        )));
    }
    Ok(Zeroizing::new(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(encode_path("validators/a b/k%1"), "validators/a%20b/k%251");
        assert_eq!(encode_path(""), "");
        assert_eq!(encode_path("x/"), "x/");
        assert_eq!(clean_mount("/secret/").unwrap(), "secret");
        assert_eq!(clean_mount("team/kv").unwrap(), "team/kv");
        for bad in ["", "/", "a//b", "../x"] {
            assert!(clean_mount(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn token_headers_are_sensitive() {
        let value = token_header("hvs.abc").unwrap();
        assert!(value.is_sensitive());
        assert_eq!(value.as_bytes(), b"hvs.abc");
        assert!(format!("{value:?}").contains("Sensitive"));
        assert!(matches!(token_header(""), Err(Error::Config(_))));
        let e = token_header("bad\ntoken-value").unwrap_err();
        assert!(!e.to_string().contains("token-value"), "{e}");
    }
}
