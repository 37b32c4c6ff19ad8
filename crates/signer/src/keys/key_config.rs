//! Web3Signer's key config files (`--key-config-path`): YAML "signing metadata", one or more documents per
//! file separated by `---`, each naming one key.
//!
//! [`config_files`] lists the files (`*.yaml`, `*.yml`, not hidden, directly in the directory), [`read_file`]
//! reads one (at most [`MAX_FILE_BYTES`]) and [`parse`] turns its text into one [`Document`] (or the reason
//! it is refused) per YAML document. A document becomes a keystore job, a raw secret or a remote job in
//! `super::source`; this module only reads and checks.
//!
//! Types, as Web3Signer documents them:
//! - `file-raw`: `privateKey` (32 bytes of hex, `0x` optional);
//! - `file-keystore`: `keystoreFile`, `keystorePasswordFile` (relative paths are relative to the YAML file's
//!   directory);
//! - `hashicorp`: `serverHost`, `keyPath`, `token` (or `authMethod: KUBERNETES` with `kubernetesRole`,
//!   `kubernetesServiceAccountTokenPath`, `kubernetesAuthPath`), `serverPort` (8200), `keyName` (`value`),
//!   `tlsEnabled` (true, as documented), `tlsKnownServersPath`, `timeout` (ms, 10000), `httpProtocolVersion`
//!   (`HTTP_2`).
//!
//! Every other type (`aws-secret`, `azure-secret`, …) is refused by name. `keyType` may be `BLS` (the default);
//! `SECP256K1` is refused. As in Web3Signer, scalars may be quoted (`serverPort: "8200"`), enum values are
//! case-insensitive, and fields no type knows are ignored (logged by name only).
//!
//! Nothing here ever puts a value of the file into an error or a log line: a YAML error is reported by its
//! position only, since the line it points at may hold a private key or a token.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use zeroize::Zeroizing;

use super::remote::{
    DEFAULT_K8S_AUTH_PATH, DEFAULT_K8S_TOKEN_PATH, DEFAULT_KEY_NAME, DEFAULT_TIMEOUT,
    DEFAULT_VAULT_PORT, HashicorpKey, HttpVersion, VaultAuth, VaultTls,
};

/// The largest key config file read, as Web3Signer's default `--key-store-config-file-max-size` (100 MiB).
pub const MAX_FILE_BYTES: u64 = 100 << 20;

/// The types ferrosigner loads.
const SUPPORTED: &str = "file-raw, file-keystore, hashicorp";

/// Types Web3Signer has that ferrosigner does not load.
const UNSUPPORTED: &[&str] = &[
    "aws-secret",
    "aws-kms",
    "azure-secret",
    "azure-key",
    "yubihsm",
    "yubihsm2",
    "interlock",
];

/// One key config document, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Document {
    /// `type: file-raw`.
    Raw(RawKey),
    /// `type: file-keystore`.
    Keystore {
        /// The EIP-2335 keystore, resolved against the YAML file's directory.
        keystore_file: PathBuf,
        /// The file whose content (without trailing line breaks) is the keystore's password.
        password_file: PathBuf,
    },
    /// `type: hashicorp`.
    Hashicorp(HashicorpKey),
}

/// A private key given in the clear (`type: file-raw`). `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct RawKey(pub Zeroizing<[u8; 32]>);

impl std::fmt::Debug for RawKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RawKey(<redacted>)")
    }
}

/// The key config files directly inside `dir` (`*.yaml`, `*.yml`, not hidden), sorted.
pub fn config_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let yaml = name.ends_with(".yaml") || name.ends_with(".yml");
        if yaml && !name.starts_with('.') && path.is_file() {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// Reads a key config file as UTF-8 text, refusing one over [`MAX_FILE_BYTES`].
pub fn read_file(path: &Path) -> Result<Zeroizing<String>, String> {
    read_limited(path, MAX_FILE_BYTES)
}

fn read_limited(path: &Path, limit: u64) -> Result<Zeroizing<String>, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > limit {
        return Err(format!(
            "larger than {} bytes, the largest key config file read",
            limit
        ));
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| "not UTF-8 text".to_owned())?;
    Ok(Zeroizing::new(text.to_owned()))
}

/// Parses the text of the key config file `file`: one result per YAML document (empty documents are
/// skipped), or why the file as a whole cannot be read (a YAML syntax error, given by position only).
/// Relative paths are resolved against the file's directory.
pub fn parse(text: &str, file: &Path) -> Result<Vec<Result<Document, String>>, String> {
    let dir = file.parent().unwrap_or(Path::new("."));
    // Budgets sized for the largest file read: a million small documents of a few fields each.
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_reader_input_bytes: Some(MAX_FILE_BYTES as usize + 1),
            max_documents: 1_000_000,
            max_nodes: 20_000_000,
            max_events: 40_000_000,
            max_total_scalar_bytes: MAX_FILE_BYTES as usize,
        },
        // Errors by position only: a snippet would show the line, which may hold a secret.
        with_snippet: false,
    };
    let raw: Vec<RawDocument> =
        serde_saphyr::from_multiple_with_options(text, options).map_err(|e| yaml_error(&e))?;
    if raw.is_empty() {
        return Err("holds no YAML document".to_owned());
    }
    Ok(raw
        .into_iter()
        .enumerate()
        .map(|(i, doc)| check(doc, dir, file, i + 1))
        .collect())
}

/// A YAML error by position only.
fn yaml_error(error: &serde_saphyr::Error) -> String {
    match error.location() {
        Some(at) => format!(
            "not valid YAML, or not a list of documents of fields (line {}, column {})",
            at.line(),
            at.column()
        ),
        None => "not valid YAML, or not a list of documents of fields".to_owned(),
    }
}

/// One document as read: a mapping of fields, or some other node.
enum RawDocument {
    Fields(Vec<(String, Value)>),
    Other(&'static str),
}

/// A field's value as read. Strings are kept as written; other scalars are kept with their text.
enum Value {
    Text(Zeroizing<String>),
    Bool(bool),
    Int(i128),
    Float,
    Null,
    Nested(&'static str),
}

impl<'de> serde::Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Int(v.into()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        Ok(i128::try_from(v).map_or(Value::Float, Value::Int))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Value, E> {
        Ok(Value::Float)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Text(Zeroizing::new(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Text(Zeroizing::new(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Value::Nested("a mapping"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Value::Nested("a list"))
    }
}

impl<'de> serde::Deserialize<'de> for RawDocument {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DocumentVisitor;
        impl<'de> Visitor<'de> for DocumentVisitor {
            type Value = RawDocument;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a YAML document")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawDocument, A::Error> {
                let mut fields = Vec::new();
                while let Some((key, value)) = map.next_entry::<Value, Value>()? {
                    let key = match key {
                        Value::Text(text) => text.to_string(),
                        // A key that is not a string names no field; keep it out of the way.
                        _ => String::new(),
                    };
                    fields.push((key, value));
                }
                Ok(RawDocument::Fields(fields))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawDocument, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(RawDocument::Other("a list"))
            }
            fn visit_unit<E: de::Error>(self) -> Result<RawDocument, E> {
                Ok(RawDocument::Other("empty"))
            }
            fn visit_none<E: de::Error>(self) -> Result<RawDocument, E> {
                Ok(RawDocument::Other("empty"))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<RawDocument, E> {
                Ok(RawDocument::Other("a single value"))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<RawDocument, E> {
                Ok(RawDocument::Other("a single value"))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<RawDocument, E> {
                Ok(RawDocument::Other("a single value"))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<RawDocument, E> {
                Ok(RawDocument::Other("a single value"))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<RawDocument, E> {
                Ok(RawDocument::Other("a single value"))
            }
        }
        deserializer.deserialize_any(DocumentVisitor)
    }
}

/// The fields of one document, each taken at most once; what is left over is unknown.
struct Fields {
    fields: Vec<(String, Option<Value>)>,
}

impl Fields {
    fn take(&mut self, name: &str) -> Option<Value> {
        self.fields
            .iter_mut()
            .find(|(k, v)| k == name && v.is_some())
            .and_then(|(_, v)| v.take())
            .filter(|v| !matches!(v, Value::Null))
    }

    /// A text field: a string, or a number or boolean as written.
    fn text(&mut self, name: &str) -> Result<Option<Zeroizing<String>>, String> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Text(t)) => Ok(Some(t)),
            Some(Value::Bool(b)) => Ok(Some(Zeroizing::new(b.to_string()))),
            Some(Value::Int(i)) => Ok(Some(Zeroizing::new(i.to_string()))),
            Some(Value::Float) => Err(format!("`{name}` must be text, not a fraction")),
            Some(Value::Nested(kind)) => Err(format!("`{name}` must be text, not {kind}")),
            Some(Value::Null) => Ok(None),
        }
    }

    fn required_text(&mut self, name: &str, kind: &str) -> Result<Zeroizing<String>, String> {
        self.text(name)?
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| format!("missing field `{name}` (required for type `{kind}`)"))
    }

    /// A plain (non-secret) text field.
    fn plain(&mut self, name: &str) -> Result<Option<String>, String> {
        Ok(self.text(name)?.map(|t| t.trim().to_owned()))
    }

    fn bool(&mut self, name: &str) -> Result<Option<bool>, String> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(Value::Text(t)) if t.trim().eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Value::Text(t)) if t.trim().eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(_) => Err(format!("`{name}` must be true or false")),
        }
    }

    fn integer(&mut self, name: &str) -> Result<Option<i128>, String> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Int(i)) => Ok(Some(i)),
            Some(Value::Text(t)) => t
                .trim()
                .parse::<i128>()
                .map(Some)
                .map_err(|_| format!("`{name}` must be a whole number")),
            Some(_) => Err(format!("`{name}` must be a whole number")),
        }
    }

    fn path(&mut self, name: &str, dir: &Path) -> Result<Option<PathBuf>, String> {
        Ok(self.plain(name)?.map(|p| resolve(dir, &p)))
    }

    fn unknown(&self) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(_, v)| v.is_some())
            .map(|(k, _)| k.as_str())
            .collect()
    }
}

/// `path` as given when absolute, else relative to `dir`.
fn resolve(dir: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        dir.join(path)
    }
}

/// Checks document number `index` of `file`.
fn check(raw: RawDocument, dir: &Path, file: &Path, index: usize) -> Result<Document, String> {
    let fields = match raw {
        RawDocument::Fields(fields) => fields,
        RawDocument::Other(kind) => {
            return Err(format!(
                "the document is {kind}, not a mapping of key config fields"
            ));
        }
    };
    let mut fields = Fields {
        fields: fields.into_iter().map(|(k, v)| (k, Some(v))).collect(),
    };
    let kind = fields
        .plain("type")?
        .ok_or_else(|| format!("missing field `type` (one of {SUPPORTED})"))?;
    let kind = kind.to_ascii_lowercase();
    if !matches!(kind.as_str(), "file-raw" | "file-keystore" | "hashicorp") {
        let shown: String = kind.chars().take(40).collect();
        return Err(if UNSUPPORTED.contains(&kind.as_str()) {
            format!(
                "key config type `{shown}` is not supported by ferrosigner; supported types: {SUPPORTED}"
            )
        } else {
            format!("unknown key config type `{shown}`; supported types: {SUPPORTED}")
        });
    }
    match fields.plain("keyType")? {
        None => {}
        Some(t) if t.eq_ignore_ascii_case("BLS") => {}
        Some(t) if t.eq_ignore_ascii_case("SECP256K1") => {
            return Err(
                "keyType SECP256K1 is not supported: ferrosigner signs with BLS keys only"
                    .to_owned(),
            );
        }
        Some(_) => return Err("keyType must be BLS (or SECP256K1, which is refused)".to_owned()),
    }
    let document = match kind.as_str() {
        "file-raw" => Document::Raw(RawKey(private_key(
            &fields.required_text("privateKey", "file-raw")?,
        )?)),
        "file-keystore" => {
            let keystore_file = fields.required_text("keystoreFile", "file-keystore")?;
            let password_file = fields.required_text("keystorePasswordFile", "file-keystore")?;
            Document::Keystore {
                keystore_file: resolve(dir, keystore_file.trim()),
                password_file: resolve(dir, password_file.trim()),
            }
        }
        _ => Document::Hashicorp(hashicorp(&mut fields, dir)?),
    };
    let unknown = fields.unknown();
    if !unknown.is_empty() {
        tracing::warn!(
            file = %file.display(),
            document = index,
            fields = ?unknown,
            "key config document has fields its type does not use; they are ignored"
        );
    }
    Ok(document)
}

/// 32 bytes of hex, `0x` optional. The error never shows the value.
fn private_key(text: &str) -> Result<Zeroizing<[u8; 32]>, String> {
    let text = text.trim();
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    let mut key = Zeroizing::new([0u8; 32]);
    if digits.len() != 64 {
        return Err(format!(
            "`privateKey` must be 32 bytes of hex (64 digits), not {} characters",
            digits.len()
        ));
    }
    hex::decode_to_slice(digits, key.as_mut()).map_err(|_| "`privateKey` is not hex".to_owned())?;
    Ok(key)
}

fn hashicorp(fields: &mut Fields, dir: &Path) -> Result<HashicorpKey, String> {
    const KIND: &str = "hashicorp";
    let server_host = fields.required_text("serverHost", KIND)?.trim().to_owned();
    let key_path = fields.required_text("keyPath", KIND)?.trim().to_owned();
    let server_port = match fields.integer("serverPort")? {
        None => DEFAULT_VAULT_PORT,
        Some(p) => u16::try_from(p)
            .ok()
            .filter(|p| *p != 0)
            .ok_or("`serverPort` must be a port, 1 to 65535")?,
    };
    let key_name = fields
        .plain("keyName")?
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| DEFAULT_KEY_NAME.to_owned());
    let timeout = match fields.integer("timeout")? {
        None => DEFAULT_TIMEOUT,
        Some(ms) => u64::try_from(ms)
            .ok()
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis)
            .ok_or("`timeout` must be a positive number of milliseconds")?,
    };
    let http_version = match fields.plain("httpProtocolVersion")? {
        None => HttpVersion::Http2,
        Some(v) if v.eq_ignore_ascii_case("HTTP_1_1") => HttpVersion::Http1_1,
        Some(v) if v.eq_ignore_ascii_case("HTTP_2") => HttpVersion::Http2,
        Some(_) => return Err("`httpProtocolVersion` must be HTTP_1_1 or HTTP_2".to_owned()),
    };
    let tls_enabled = fields.bool("tlsEnabled")?.unwrap_or(true);
    let known_servers = fields.path("tlsKnownServersPath", dir)?;
    let tls = match (tls_enabled, known_servers) {
        (false, _) => VaultTls::Disabled,
        (true, None) => VaultTls::SystemCas,
        (true, Some(file)) => {
            if !file.is_file() {
                return Err(format!(
                    "`tlsKnownServersPath` {} does not exist",
                    file.display()
                ));
            }
            VaultTls::KnownServers(file)
        }
    };
    let auth_method = fields.plain("authMethod")?;
    let token = fields.text("token")?;
    let role = fields.plain("kubernetesRole")?;
    let sa_token = fields.path("kubernetesServiceAccountTokenPath", dir)?;
    let auth_path = fields.plain("kubernetesAuthPath")?;
    let auth = match auth_method.as_deref() {
        None => token_auth(token)?,
        Some(m) if m.eq_ignore_ascii_case("TOKEN") => token_auth(token)?,
        Some(m) if m.eq_ignore_ascii_case("KUBERNETES") => VaultAuth::Kubernetes {
            role: role
                .filter(|r| !r.is_empty())
                .ok_or("`kubernetesRole` is required with `authMethod: KUBERNETES`")?,
            service_account_token_path: sa_token
                .unwrap_or_else(|| PathBuf::from(DEFAULT_K8S_TOKEN_PATH)),
            auth_path: kubernetes_auth_path(auth_path.as_deref())?,
        },
        Some(_) => return Err("`authMethod` must be TOKEN or KUBERNETES".to_owned()),
    };
    Ok(HashicorpKey {
        server_host,
        server_port,
        key_path,
        key_name,
        auth,
        tls,
        timeout,
        http_version,
    })
}

fn token_auth(token: Option<Zeroizing<String>>) -> Result<VaultAuth, String> {
    match token {
        Some(t) if !t.trim().is_empty() => {
            Ok(VaultAuth::Token(Zeroizing::new(t.trim().to_owned())))
        }
        _ => Err(
            "missing field `token` (required for type `hashicorp` with the TOKEN auth method)"
                .to_owned(),
        ),
    }
}

/// The Kubernetes auth mount: default `kubernetes`, outer `/` removed, no empty, `.` or `..` segment.
fn kubernetes_auth_path(given: Option<&str>) -> Result<String, String> {
    let path = given
        .map(|p| p.trim().trim_matches('/'))
        .filter(|p| !p.is_empty())
        .unwrap_or(DEFAULT_K8S_AUTH_PATH);
    if path
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(
            "`kubernetesAuthPath` must not contain `.`, `..` or empty path segments".to_owned(),
        );
    }
    Ok(path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0x25b1166a43c109cb330af8945d364722757c65ed2bfed5444b5a2f057f82d391";

    fn docs(text: &str) -> Vec<Result<Document, String>> {
        parse(text, Path::new("/etc/keys/test.yaml")).unwrap()
    }

    fn one(text: &str) -> Result<Document, String> {
        let mut all = docs(text);
        assert_eq!(all.len(), 1);
        all.remove(0)
    }

    #[test]
    fn raw_keys_quoted_or_plain_with_or_without_0x() {
        for text in [
            format!("type: file-raw\nprivateKey: \"{KEY}\"\n"),
            format!("type: \"file-raw\"\nkeyType: \"BLS\"\nprivateKey: {KEY}\n"),
            format!(
                "type: file-raw\nkeyType: bls\nprivateKey: '{}'\n",
                &KEY[2..]
            ),
        ] {
            match one(&text) {
                Ok(Document::Raw(RawKey(k))) => assert_eq!(hex::encode(*k), &KEY[2..]),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn several_documents_each_checked_on_its_own() {
        let text = format!(
            "type: file-raw\nprivateKey: \"{KEY}\"\n---\ntype: file-raw\nprivateKey: \"0x12\"\n---\n\
             type: aws-secret\nsecretName: x\n---\ntype: file-keystore\nkeystoreFile: a.json\n\
             keystorePasswordFile: /abs/a.txt\n"
        );
        let all = docs(&text);
        assert_eq!(all.len(), 4);
        assert!(matches!(all[0], Ok(Document::Raw(_))));
        assert!(
            all[1].as_ref().unwrap_err().contains("64 digits"),
            "{:?}",
            all[1]
        );
        assert_eq!(
            all[2].as_ref().unwrap_err(),
            "key config type `aws-secret` is not supported by ferrosigner; supported types: \
             file-raw, file-keystore, hashicorp"
        );
        assert_eq!(
            all[3],
            Ok(Document::Keystore {
                keystore_file: PathBuf::from("/etc/keys/a.json"),
                password_file: PathBuf::from("/abs/a.txt"),
            })
        );
    }

    #[test]
    fn errors_name_the_problem_and_never_the_secret() {
        let secret = "0x25b1166a43c109cb330af8945d364722757c65ed2bfed5444b5a2f057f82d3zz";
        let cases = [
            (
                format!("type: file-raw\nprivateKey: \"{secret}\"\n"),
                "is not hex",
            ),
            ("type: file-raw\n".to_owned(), "missing field `privateKey`"),
            (format!("privateKey: \"{KEY}\"\n"), "missing field `type`"),
            (
                format!("type: file-raw\nkeyType: SECP256K1\nprivateKey: \"{KEY}\"\n"),
                "SECP256K1 is not supported",
            ),
            (
                "type: yubihsm\n".to_owned(),
                "`yubihsm` is not supported by ferrosigner",
            ),
            (
                "type: something\n".to_owned(),
                "unknown key config type `something`",
            ),
            (format!("\"{KEY}\"\n"), "not a mapping"),
            (
                "type: file-keystore\nkeystoreFile: a.json\n".to_owned(),
                "`keystorePasswordFile`",
            ),
        ];
        for (text, expected) in cases {
            let error = one(&text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
            assert!(
                !error.contains(&KEY[4..20]) && !error.contains(&secret[4..20]),
                "{error}"
            );
        }
        // A syntax error is given by position only.
        let error = parse(
            &format!("type: file-raw\nprivateKey: \"{KEY}\n  : [\n"),
            Path::new("k.yaml"),
        )
        .unwrap_err();
        assert!(error.contains("line"), "{error}");
        assert!(!error.contains(&KEY[4..20]), "{error}");
        assert!(parse("", Path::new("k.yaml")).is_err());
    }

    #[test]
    fn hashicorp_defaults_and_web3signer_spellings() {
        let text = "type: hashicorp\nserverHost: vault\nkeyPath: /v1/secret/data/k\ntoken: s.TOKEN\n\
                    someFutureField: [1, 2]\n";
        let Ok(Document::Hashicorp(key)) = one(text) else {
            panic!()
        };
        assert_eq!(key.server_port, 8200);
        assert_eq!(key.key_name, "value");
        assert_eq!(key.tls, VaultTls::SystemCas);
        assert_eq!(key.timeout, Duration::from_secs(10));
        assert_eq!(key.http_version, HttpVersion::Http2);
        assert_eq!(key.auth, VaultAuth::Token(Zeroizing::new("s.TOKEN".into())));
        assert!(!format!("{key:?}").contains("s.TOKEN"));

        // Web3Signer's documented example quotes every scalar.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("knownhosts"), "localhost:8200 AA:BB\n").unwrap();
        let text = "type: \"hashicorp\"\nkeyType: \"BLS\"\ntlsEnabled: \"true\"\n\
                    keyPath: \"/v1/secret/data/secretPath\"\nkeyName: \"secretName\"\n\
                    tlsKnownServersPath: \"knownhosts\"\nserverHost: \"localhost\"\nserverPort: \"32895\"\n\
                    timeout: \"10000\"\ntoken: \"s.MuZwBqZ0iE1HzvD64v3HMlhT\"\nhttpProtocolVersion: http_1_1\n";
        let Ok(Document::Hashicorp(key)) =
            parse(text, &dir.path().join("k.yaml")).unwrap().remove(0)
        else {
            panic!()
        };
        assert_eq!(key.server_port, 32895);
        assert_eq!(key.key_name, "secretName");
        assert_eq!(
            key.tls,
            VaultTls::KnownServers(dir.path().join("knownhosts"))
        );
        assert_eq!(key.http_version, HttpVersion::Http1_1);

        let text = "type: hashicorp\nserverHost: vault\nkeyPath: /p\ntlsEnabled: false\n\
                    authMethod: kubernetes\nkubernetesRole: signer\nkubernetesAuthPath: /k8s/\n";
        let Ok(Document::Hashicorp(key)) = one(text) else {
            panic!()
        };
        assert_eq!(key.tls, VaultTls::Disabled);
        assert_eq!(
            key.auth,
            VaultAuth::Kubernetes {
                role: "signer".into(),
                service_account_token_path: PathBuf::from(DEFAULT_K8S_TOKEN_PATH),
                auth_path: "k8s".into(),
            }
        );

        for (extra, expected) in [
            ("token: t\nserverPort: 70000\n", "`serverPort`"),
            ("token: t\ntimeout: 0\n", "`timeout`"),
            ("token: t\ntlsEnabled: maybe\n", "`tlsEnabled`"),
            (
                "token: t\ntlsKnownServersPath: missing.txt\n",
                "does not exist",
            ),
            ("", "missing field `token`"),
            ("authMethod: KUBERNETES\n", "`kubernetesRole`"),
            (
                "authMethod: KUBERNETES\nkubernetesRole: r\nkubernetesAuthPath: a/../b\n",
                "`..`",
            ),
            (
                "token: t\nhttpProtocolVersion: HTTP_3\n",
                "`httpProtocolVersion`",
            ),
        ] {
            let text = format!("type: hashicorp\nserverHost: vault\nkeyPath: /p\n{extra}");
            let error = one(&text).unwrap_err();
            assert!(error.contains(expected), "{extra}: {error}");
        }
    }

    #[test]
    fn raw_key_debug_is_redacted() {
        let Ok(doc) = one(&format!("type: file-raw\nprivateKey: \"{KEY}\"\n")) else {
            panic!()
        };
        let shown = format!("{doc:?}");
        assert!(!shown.contains(&KEY[2..12]), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }

    #[test]
    fn only_visible_yaml_files_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.yaml", "a.yml", ".hidden.yaml", "c.json", "d.yaml.bak"] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub.yaml")).unwrap();
        let names: Vec<_> = config_files(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.yml", "b.yaml"]);
    }

    #[test]
    fn a_file_over_the_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.yaml");
        std::fs::write(&big, "type: file-raw\n").unwrap();
        assert_eq!(read_limited(&big, 15).unwrap().as_str(), "type: file-raw\n");
        assert!(
            read_limited(&big, 14)
                .unwrap_err()
                .contains("larger than 14 bytes")
        );
        assert!(
            read_file(&dir.path().join("none.yaml"))
                .unwrap_err()
                .contains("cannot read")
        );
    }
}
