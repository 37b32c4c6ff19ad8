//! Where keys come from on disk: the external `--keystores-path` directory with its passwords, the managed
//! directory `<data-dir>/keystores` of keys imported through the Keymanager API (`<0xpubkey>.json` with
//! `<0xpubkey>.txt` beside it), and the key config files of `--key-config-path` ([`key_config_scan`], which
//! turns each document into a keystore [`Job`], a raw secret or a [`RemoteJob`]).
//!
//! Every function here blocks on the disk: call it from a blocking thread.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use ferrosigner_bls::PublicKey;
use ferrosigner_keystore::Keystore;
use zeroize::Zeroizing;

use super::KeyError;
use super::key_config::{self, Document, RawKey};
use super::registry::{KeySource, SourceKind};
use super::remote::{RemoteJob, RemoteKey};
use crate::files::{self, Staged};

/// Where the password of each keystore in a directory comes from.
#[derive(Debug, Clone)]
pub enum Passwords {
    /// `<dir>/<keystore file stem>.txt` for each keystore.
    Directory(PathBuf),
    /// One file holding the password of every keystore.
    File(PathBuf),
}

/// The external, read-only keystore directory and how its passwords are found.
#[derive(Debug, Clone)]
pub struct External {
    /// The keystore directory.
    pub dir: PathBuf,
    /// Where each keystore's password is.
    pub passwords: Passwords,
}

/// A key that could not be loaded, by file (and document, for a key config file) and reason (never
/// containing a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadFailure {
    /// Which kind of source the key came from.
    pub kind: SourceKind,
    /// The keystore or key config file (empty when a whole directory could not be listed).
    pub file: PathBuf,
    /// The document of a key config file (1 for the first), when the failure is about one document.
    pub document: Option<usize>,
    /// Why it failed.
    pub reason: String,
}

impl LoadFailure {
    /// The failure of the key `source` names.
    pub fn of(source: &KeySource, reason: impl Into<String>) -> Self {
        let document = match source {
            KeySource::KeyConfig { document, .. } => Some(*document),
            _ => None,
        };
        Self {
            kind: source.kind(),
            file: source.file().to_path_buf(),
            document,
            reason: reason.into(),
        }
    }

    /// Logs the failure as an error, `message` saying when it happened.
    pub fn log(&self, message: &str) {
        tracing::error!(
            file = %self.file.display(),
            document = ?self.document,
            reason = %self.reason,
            "{message}"
        );
    }
}

impl std::fmt::Display for LoadFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.document {
            Some(n) => write!(f, "{} document {n}: {}", self.file.display(), self.reason),
            None => write!(f, "{}: {}", self.file.display(), self.reason),
        }
    }
}

/// One keystore file on disk and where its password is.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    /// The keystore file.
    pub file: PathBuf,
    /// The password file to read.
    pub password_file: PathBuf,
    /// Where the key comes from: the keystore itself, or the key config document naming it.
    pub source: KeySource,
}

impl Job {
    /// The failure of this job: named by its keystore, or by its key config document (with the keystore in
    /// the reason).
    pub fn failure(&self, reason: impl Into<String>) -> LoadFailure {
        match &self.source {
            KeySource::KeyConfig { .. } => LoadFailure::of(
                &self.source,
                format!("keystore {}: {}", self.file.display(), reason.into()),
            ),
            other => LoadFailure::of(other, reason),
        }
    }
}

/// A keystore file read and parsed, its password not yet read.
pub(crate) struct ReadKeystore {
    pub job: Job,
    pub keystore: Keystore,
    /// SHA-256 of the file bytes (the key cache's index).
    pub fingerprint: [u8; 32],
}

/// The keystore files (`*.json`, not hidden) directly inside `dir`, sorted.
pub(crate) fn keystore_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_file() && name.ends_with(".json") && !name.starts_with('.') {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// Reads a password file: the content without trailing line breaks.
pub(crate) fn read_password(path: &Path) -> std::io::Result<Zeroizing<String>> {
    let mut text = Zeroizing::new(std::fs::read_to_string(path)?);
    while text.ends_with('\n') || text.ends_with('\r') {
        text.pop();
    }
    Ok(text)
}

/// The jobs for every keystore of the external directory.
pub(crate) fn external_jobs(external: &External) -> Result<Vec<Job>, KeyError> {
    let files = keystore_files(&external.dir).map_err(|source| KeyError::Io {
        path: external.dir.clone(),
        source,
    })?;
    Ok(files
        .into_iter()
        .map(|file| {
            let password_file = match &external.passwords {
                Passwords::File(f) => f.clone(),
                Passwords::Directory(d) => d.join(format!(
                    "{}.txt",
                    file.file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default()
                )),
            };
            Job {
                source: KeySource::External {
                    keystore: file.clone(),
                },
                file,
                password_file,
            }
        })
        .collect())
}

/// Reads and parses a job's keystore file.
pub(crate) fn read_keystore(job: Job) -> Result<ReadKeystore, LoadFailure> {
    let fail = |reason: String| job.failure(reason);
    let bytes = std::fs::read(&job.file).map_err(|e| fail(format!("cannot read keystore: {e}")))?;
    let text =
        std::str::from_utf8(&bytes).map_err(|_| fail("keystore is not UTF-8 text".to_owned()))?;
    let keystore = Keystore::from_json(text).map_err(|e| fail(e.to_string()))?;
    Ok(ReadKeystore {
        fingerprint: super::cache::fingerprint(&bytes),
        keystore,
        job,
    })
}

/// What the key config directory holds, read and checked, except the documents the caller skipped.
#[derive(Default)]
pub(crate) struct KeyConfigScan {
    /// `file-keystore` documents.
    pub keystores: Vec<Job>,
    /// `file-raw` documents.
    pub raw: Vec<(KeySource, RawKey)>,
    /// `hashicorp` documents.
    pub remote: Vec<RemoteJob>,
    /// Files and documents that cannot be loaded.
    pub failures: Vec<LoadFailure>,
    /// Every document of every file that could be parsed, as its key source (skipped ones included).
    pub present: HashSet<KeySource>,
    /// Files that exist but could not be read or parsed as a whole: which documents they hold is unknown.
    pub unreadable: HashSet<PathBuf>,
}

/// Reads every key config file of `dir` and checks each document; `skip(source)` leaves out documents
/// already loaded (a reload). A file that cannot be read or parsed is one failure; a document that fails its
/// checks is one failure naming its file and document.
pub(crate) fn key_config_scan(
    dir: &Path,
    skip: impl Fn(&KeySource) -> bool,
) -> Result<KeyConfigScan, KeyError> {
    let files = key_config::config_files(dir).map_err(|source| KeyError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut scan = KeyConfigScan::default();
    for file in files {
        let parsed = key_config::read_file(&file).and_then(|text| key_config::parse(&text, &file));
        let documents = match parsed {
            Ok(documents) => documents,
            Err(reason) => {
                scan.failures.push(LoadFailure {
                    kind: SourceKind::KeyConfig,
                    file: file.clone(),
                    document: None,
                    reason,
                });
                scan.unreadable.insert(file);
                continue;
            }
        };
        for (i, document) in documents.into_iter().enumerate() {
            let source = KeySource::KeyConfig {
                file: file.clone(),
                document: i + 1,
            };
            scan.present.insert(source.clone());
            if skip(&source) {
                continue;
            }
            match document {
                Err(reason) => scan.failures.push(LoadFailure::of(&source, reason)),
                Ok(Document::Raw(key)) => scan.raw.push((source, key)),
                Ok(Document::Keystore {
                    keystore_file,
                    password_file,
                }) => scan.keystores.push(Job {
                    file: keystore_file,
                    password_file,
                    source,
                }),
                Ok(Document::Hashicorp(key)) => scan.remote.push(RemoteJob {
                    source,
                    key: RemoteKey::Hashicorp(key),
                }),
            }
        }
    }
    Ok(scan)
}

/// The managed directory: keys imported through the Keymanager API, one `<0xpubkey>.json` keystore and
/// `<0xpubkey>.txt` password each (0600). The keystore file is what makes a key load at start-up, so it is
/// written last on import and removed first on deletion.
#[derive(Debug, Clone)]
pub(crate) struct ManagedDir {
    dir: PathBuf,
}

/// A managed key's two files, written under temporary names and not yet in place.
pub(crate) struct StagedKey {
    password: Staged,
    keystore: Staged,
}

impl ManagedDir {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// Where an imported key's keystore is kept.
    pub fn keystore_path(&self, public: &PublicKey) -> PathBuf {
        self.dir.join(format!("{public}.json"))
    }

    fn password_path(&self, public: &PublicKey) -> PathBuf {
        self.dir.join(format!("{public}.txt"))
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
        move |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Removes the temporary files an interrupted import left (they may hold passwords).
    pub fn remove_temp_files(&self) -> Result<usize, KeyError> {
        files::remove_temp_files(&self.dir).map_err(Self::io(&self.dir))
    }

    /// The jobs for every managed keystore.
    pub fn jobs(&self) -> Result<Vec<Job>, KeyError> {
        if !self.dir.exists() {
            return Ok(Vec::new());
        }
        let found = keystore_files(&self.dir).map_err(Self::io(&self.dir))?;
        Ok(found
            .into_iter()
            .map(|file| Job {
                password_file: file.with_extension("txt"),
                source: KeySource::Managed {
                    keystore: file.clone(),
                },
                file,
            })
            .collect())
    }

    /// Whether the key's keystore file is on disk (so it would load at the next start).
    pub fn holds(&self, public: &PublicKey) -> bool {
        self.keystore_path(public).exists()
    }

    /// Writes the key's keystore and password under temporary names (not loaded by a restart).
    pub fn stage(
        &self,
        public: &PublicKey,
        keystore_json: &str,
        password: &str,
    ) -> Result<StagedKey, KeyError> {
        files::create_private_dir(&self.dir).map_err(Self::io(&self.dir))?;
        let password_path = self.password_path(public);
        let keystore_path = self.keystore_path(public);
        Ok(StagedKey {
            password: Staged::write(&password_path, password.as_bytes(), 0o600)
                .map_err(Self::io(&password_path))?,
            keystore: Staged::write(&keystore_path, keystore_json.as_bytes(), 0o600)
                .map_err(Self::io(&keystore_path))?,
        })
    }

    /// Puts a staged key's files in place, the password first; returns the keystore path.
    pub fn commit(&self, staged: StagedKey) -> Result<PathBuf, KeyError> {
        let StagedKey { password, keystore } = staged;
        let password_path = password.dest().to_path_buf();
        password.commit().map_err(Self::io(&password_path))?;
        let keystore_path = keystore.dest().to_path_buf();
        keystore.commit().map_err(Self::io(&keystore_path))?;
        Ok(keystore_path)
    }

    /// Removes a managed keystore and its password file, the keystore first (after that the key no longer
    /// loads), and makes the removal durable. Files already gone count as removed.
    pub fn remove(&self, keystore: &Path) -> Result<(), KeyError> {
        files::remove_if_present(keystore).map_err(Self::io(keystore))?;
        let password = keystore.with_extension("txt");
        files::remove_if_present(&password).map_err(Self::io(&password))?;
        files::sync_dir(&self.dir).map_err(Self::io(&self.dir))
    }
}
