//! Keys as one service: the [`Keyring`] owns everything about keys.
//!
//! How the parts connect:
//! - [`registry`] holds the keys able to sign; the signing pipeline gets a read-only [`KeyView`];
//! - [`source`] finds keys on disk: the external `--keystores-path` directory (read-only), the managed
//!   directory `<data-dir>/keystores` of imported keys, and the key config files of `--key-config-path`
//!   (read-only), which [`key_config`] reads;
//! - [`remote`] fetches the keys those files keep in a remote service (HashiCorp Vault) to a secret; they are
//!   then registered like the others;
//! - [`decrypt`] is the one memory-budgeted, parallel decryption routine used by start-up, imports and
//!   reloads, handing each key on as soon as it is decrypted;
//! - [`cache`] is the key cache file and its one coalescing writer thread;
//! - the load state is a watch channel: keys sign as they load, while `/healthcheck`, `/upcheck`,
//!   `publicKeys` and the Keymanager API say that loading is still going on.
//!
//! Imports, deletions and reloads are serialised by one lock; signing never waits for it. All disk work runs
//! on blocking threads.
//!
//! The rules that keep a key's state honest across faults and restarts:
//! - an import is all or nothing per key: its files are written under temporary names, the slashing history
//!   and the enabled flag go into the database, and only then are the files put in place and the key
//!   registered; a failure before that removes the temporary files and leaves the database as it was
//!   (temporary files a crash leaves behind are removed at start);
//! - a deletion stops the key signing, disables it in the database (if that fails, the key is put back and the
//!   answer is `error`: nothing changed), removes its files (if that fails, the answer is `error` and a retry
//!   finishes the job), and only a complete success answers `deleted`;
//! - a key that the slashing database disabled is never loaded to sign: its files remaining means a deletion
//!   did not finish, which is logged as an error and reported in the load state.

pub mod cache;
mod decrypt;
pub mod key_config;
mod registry;
pub mod remote;
mod source;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use ferrosigner_bls::{PUBLIC_KEY_LEN, PublicKey, SecretKey};
use ferrosigner_keystore::Keystore;
use ferrosigner_slashing::SlashingDb;
use serde::Serialize;
use tokio::sync::watch;
use zeroize::Zeroizing;

use crate::metrics::Metrics;
pub use cache::CacheMaterial;
use cache::CacheWriter;
use decrypt::{Encrypted, Password, Urgency};
use registry::KeyRegistry;
pub use registry::{KeyEntry, KeySource, KeyView, SourceKind};
use remote::RemoteJob;
pub use remote::VaultSource;
pub use source::{External, LoadFailure, Passwords};
use source::{Job, KeyConfigScan, ManagedDir, ReadKeystore};

type Pubkey = [u8; PUBLIC_KEY_LEN];

/// Why a key operation failed as a whole. Per-key problems of an import or deletion are statuses instead.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Start-up key loading has not finished (503); nothing changed.
    #[error("keys are still loading ({done} of {total} keystores processed); try again shortly")]
    Loading {
        /// Keystores processed so far.
        done: usize,
        /// Keystores found.
        total: usize,
    },
    /// The request is malformed (400); nothing changed.
    #[error("{0}")]
    BadRequest(String),
    /// The slashing interchange given with an import is malformed or for another chain (400); nothing
    /// changed.
    #[error("slashing_protection: {0}")]
    Interchange(ferrosigner_slashing::Error),
    /// The slashing database failed (503).
    #[error("slashing protection database: {0}")]
    Database(ferrosigner_slashing::Error),
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The key comes from `--keystores-path` or `--key-config-path`, which the Keymanager API does not
    /// change.
    #[error(
        "read-only key: it comes from --keystores-path or --key-config-path, which the Keymanager API does \
         not change"
    )]
    ReadOnly,
    /// A background task stopped before finishing (a bug or shutdown).
    #[error("a key task stopped: {0}")]
    Task(String),
}

impl From<tokio::task::JoinError> for KeyError {
    fn from(e: tokio::task::JoinError) -> Self {
        KeyError::Task(e.to_string())
    }
}

/// Progress and result of start-up key loading.
#[derive(Debug, Clone, Default)]
pub struct LoadState {
    /// Keys found: keystores and key config documents.
    pub total: usize,
    /// Keys processed so far (loaded or failed).
    pub done: usize,
    /// Keys taken from the key cache instead of being decrypted.
    pub from_cache: usize,
    /// The keys that failed to load (including keys the slashing database disabled), by file, document and
    /// reason. A reload replaces those of the sources it re-reads (`--keystores-path`, `--key-config-path`).
    pub failures: Vec<LoadFailure>,
    /// Whether loading has finished.
    pub finished: bool,
    /// The kinds of key source configured (imported keys always; `--keystores-path` and
    /// `--key-config-path` when given).
    pub sources: Vec<SourceKind>,
}

/// Status of one keystore in an import, as the Keymanager API reports it.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ImportStatusKind {
    /// Imported and signing.
    Imported,
    /// The key was already loaded (or given twice); nothing changed for it.
    Duplicate,
    /// Not imported; see the message.
    Error,
}

/// Outcome of importing one keystore.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ImportStatus {
    /// What happened.
    pub status: ImportStatusKind,
    /// Why, for `error`.
    pub message: String,
}

/// Status of one key in a deletion, as the Keymanager API reports it.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DeleteStatusKind {
    /// Stopped signing, disabled in the slashing database, files removed; its history is exported.
    Deleted,
    /// Not held here, but the slashing database has history for it, which is exported.
    NotActive,
    /// Neither held here nor known to the slashing database.
    NotFound,
    /// Not (completely) deleted; see the message. Deleting it again finishes the job.
    Error,
}

/// Outcome of deleting one key.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DeleteStatus {
    /// What happened.
    pub status: DeleteStatusKind,
    /// Why, for `error`.
    pub message: String,
}

impl DeleteStatus {
    fn of(status: DeleteStatusKind) -> Self {
        Self {
            status,
            message: String::new(),
        }
    }

    fn error(message: impl Into<String>) -> Self {
        Self {
            status: DeleteStatusKind::Error,
            message: message.into(),
        }
    }
}

/// The answer to a deletion: a status per key and the EIP-3076 history of the deleted and inactive keys
/// (always a valid interchange document, empty when there is nothing to hand over).
#[derive(Debug, Clone)]
pub struct DeleteOutcome {
    /// One status per requested key, in request order.
    pub statuses: Vec<DeleteStatus>,
    /// EIP-3076 interchange JSON.
    pub slashing_protection: String,
}

/// One entry of `GET /eth/v1/keystores`.
#[derive(Debug, Clone, Serialize)]
pub struct KeyListing {
    /// `0x` public key.
    pub validating_pubkey: String,
    /// EIP-2334 path, possibly empty.
    pub derivation_path: String,
    /// Whether the key comes from an external directory and cannot be deleted.
    pub readonly: bool,
}

/// Where `/reload` stands.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ReloadState {
    /// No reload has run.
    Idle,
    /// A reload is running.
    Running,
    /// The last reload finished without errors.
    Completed,
    /// The last reload finished, but some keystores failed.
    CompletedWithErrors,
    /// The last reload could not run.
    Failed,
}

/// State of `/reload`.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadStatus {
    /// Where it stands.
    pub status: ReloadState,
    /// When the last reload finished (RFC 3339), if any.
    #[serde(rename = "lastOperationTime", skip_serializing_if = "Option::is_none")]
    pub last_operation_time: Option<String>,
    /// The last error, if any.
    #[serde(rename = "lastError", skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Keys added by the last reload.
    pub added: usize,
    /// Keys removed by the last reload.
    pub removed: usize,
}

/// Where the keyring keeps and finds keys.
#[derive(Debug, Clone)]
pub struct KeyringConfig {
    /// The data directory: imported keys go to `<data-dir>/keystores`, the key cache is
    /// `<data-dir>/key-cache.bin`.
    pub data_dir: PathBuf,
    /// The external, read-only keystore directory, if any.
    pub external: Option<External>,
    /// The directory of key config files (`--key-config-path`), if any.
    pub key_config: Option<PathBuf>,
    /// The Vault bulk source (`--vault-*`), if any.
    pub vault: Option<VaultSource>,
    /// Whether to keep the key cache (`false` removes the file at start).
    pub cache_enabled: bool,
}

/// The owner of every key: registry, disk, decryption, key cache, load state, imports, deletions, reloads.
pub struct Keyring {
    registry: Arc<KeyRegistry>,
    managed: ManagedDir,
    external: Option<External>,
    key_config: Option<PathBuf>,
    vault: Option<VaultSource>,
    slashing: Option<SlashingDb>,
    genesis_validators_root: Option<[u8; 32]>,
    metrics: Arc<Metrics>,
    load: watch::Sender<LoadState>,
    lock: tokio::sync::Mutex<()>,
    reload: Mutex<ReloadStatus>,
    cache_file: PathBuf,
    cache: Option<Arc<CacheWriter>>,
    /// Set at shutdown: decryptions not started yet are skipped.
    stopping: AtomicBool,
}

impl Keyring {
    /// A keyring with no keys yet; [`Self::load_startup`] fills it. `slashing` is the database whose enabled
    /// flags imports and deletions keep; `genesis_validators_root` labels empty interchange documents.
    pub fn new(
        config: KeyringConfig,
        slashing: Option<SlashingDb>,
        genesis_validators_root: Option<[u8; 32]>,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, KeyError> {
        let registry = Arc::new(KeyRegistry::new(
            metrics.keys_loaded.clone(),
            metrics.keys_loaded_by_source.clone(),
        ));
        let cache_file = config.data_dir.join("key-cache.bin");
        let cache = if config.cache_enabled {
            let writes = metrics.key_cache_writes.clone();
            let writer = CacheWriter::start(cache_file.clone(), registry.clone(), move || {
                writes.inc();
            })
            .map_err(|source| KeyError::Io {
                path: cache_file.clone(),
                source,
            })?;
            Some(Arc::new(writer))
        } else {
            None
        };
        let sources = std::iter::once(SourceKind::Managed)
            .chain(config.external.as_ref().map(|_| SourceKind::External))
            .chain(config.key_config.as_ref().map(|_| SourceKind::KeyConfig))
            .chain(config.vault.as_ref().map(|_| SourceKind::Vault))
            .collect();
        Ok(Arc::new(Self {
            registry,
            managed: ManagedDir::new(config.data_dir.join("keystores")),
            external: config.external,
            key_config: config.key_config,
            vault: config.vault,
            slashing,
            genesis_validators_root,
            metrics,
            load: watch::Sender::new(LoadState {
                sources,
                ..LoadState::default()
            }),
            lock: tokio::sync::Mutex::new(()),
            reload: Mutex::new(ReloadStatus {
                status: ReloadState::Idle,
                last_operation_time: None,
                last_error: None,
                added: 0,
                removed: 0,
            }),
            cache_file,
            cache,
            stopping: AtomicBool::new(false),
        }))
    }

    /// Stops starting new decryptions (start-up loading, reloads, imports), so that a shutdown waits for at
    /// most the one decryption each thread is running.
    pub fn stop(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// A read-only handle for the signing pipeline and the handlers.
    pub fn view(&self) -> KeyView {
        KeyView::new(self.registry.clone(), self.load.subscribe())
    }

    /// Finishes background key work before the process exits: the key cache write still requested, if any.
    pub async fn finish(&self) {
        if let Some(cache) = self.cache.clone()
            && let Err(e) = tokio::task::spawn_blocking(move || cache.finish()).await
        {
            tracing::warn!("the key cache writer did not finish: {e}");
        }
    }

    /// The key cache file (whether or not the cache is enabled).
    pub fn cache_file(&self) -> &Path {
        &self.cache_file
    }

    fn update_load(&self, update: impl FnOnce(&mut LoadState)) {
        self.load.send_modify(|state| {
            update(state);
            self.metrics.key_loading_total.set(state.total as i64);
            self.metrics.key_loading_done.set(state.done as i64);
            self.metrics
                .key_loading_errors
                .set(state.failures.len() as i64);
        });
    }

    fn ensure_loaded(&self) -> Result<(), KeyError> {
        let state = self.load.borrow();
        if state.finished {
            Ok(())
        } else {
            Err(KeyError::Loading {
                done: state.done,
                total: state.total,
            })
        }
    }

    fn refresh_cache(&self) {
        if let Some(cache) = &self.cache {
            cache.request();
        }
    }

    /// The validators the slashing database disabled, asked until the database answers (loading waits).
    async fn disabled_for_loading(&self) -> HashSet<Pubkey> {
        let Some(db) = &self.slashing else {
            return HashSet::new();
        };
        let faults = crate::faults::FaultLog::new(
            "reading which keys the slashing database disabled (keys load once it answers)",
            std::time::Duration::from_secs(30),
        );
        loop {
            match db.disabled_validators().await {
                Ok(keys) => {
                    faults.succeeded();
                    return keys.into_iter().collect();
                }
                Err(e) => {
                    faults.failed(&e);
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Loads the start-up keys: managed and external keystores, from the key cache where it is current,
    /// each key signing as soon as it is decrypted. Removes temporary files an interrupted import left, and
    /// the cache file when the cache is disabled. Marks loading finished at the end.
    pub async fn load_startup(self: Arc<Self>) {
        let _guard = self.lock.lock().await;
        let disabled = self.disabled_for_loading().await;
        let started = std::time::Instant::now();
        let this = self.clone();
        let stale = match tokio::task::spawn_blocking(move || this.load_blocking(&disabled)).await {
            Ok(stale) => stale,
            Err(e) => {
                tracing::error!("key loading stopped: {e}");
                false
            }
        };
        self.update_load(|s| s.finished = true);
        let state = self.load.borrow().clone();
        tracing::info!(
            loaded = self.registry.len(),
            failed = state.failures.len(),
            from_cache = state.from_cache,
            seconds = started.elapsed().as_secs_f64(),
            "keys loaded"
        );
        if stale {
            self.refresh_cache();
        }
    }

    fn fail_load(&self, failure: LoadFailure) {
        failure.log("key not loaded");
        self.update_load(|s| {
            s.done += 1;
            s.failures.push(failure);
        });
    }

    /// Registers a decrypted start-up or reload key, unless the slashing database disabled it or it is
    /// loaded already.
    fn admit(
        &self,
        job: &Job,
        keystore: &Keystore,
        fingerprint: [u8; 32],
        secret: SecretKey,
        password: Zeroizing<String>,
        disabled: &HashSet<Pubkey>,
    ) -> Result<(), String> {
        self.register(
            job.source.clone(),
            secret,
            keystore.path().to_owned(),
            Some(CacheMaterial {
                fingerprint,
                password,
                kdf: keystore.kdf(),
            }),
            disabled,
        )
    }

    /// Registers a key from any source, unless the slashing database disabled it or it is loaded already
    /// (then the error names where the loaded one came from).
    fn register(
        &self,
        source: KeySource,
        secret: SecretKey,
        derivation_path: String,
        cache: Option<CacheMaterial>,
        disabled: &HashSet<Pubkey>,
    ) -> Result<(), String> {
        let public = secret.public_key();
        if disabled.contains(public.as_bytes()) {
            return Err(if source.kind() == SourceKind::Managed {
                format!(
                    "key {public} is disabled in the slashing protection database, so it does not sign here: \
                     an earlier deletion did not finish removing its files. Delete it again to finish, or \
                     import it again to enable it"
                )
            } else {
                format!(
                    "key {public} is disabled in the slashing protection database (deleted through the \
                     Keymanager API), so it does not sign here; import it again to enable it"
                )
            });
        }
        let entry = KeyEntry {
            secret,
            public,
            derivation_path,
            source,
            cache,
        };
        if self.registry.insert(entry) {
            Ok(())
        } else {
            let other = self
                .registry
                .get(public.as_bytes())
                .map(|e| e.source.to_string())
                .unwrap_or_else(|| "another source".to_owned());
            Err(format!(
                "key {public} is already loaded from {other}; this copy is not loaded"
            ))
        }
    }

    /// Registers raw keys and fetches and registers remote ones, reporting each result to `done` (the
    /// failure, if any).
    fn load_direct(
        &self,
        raw: Vec<(KeySource, key_config::RawKey)>,
        remote: Vec<RemoteJob>,
        disabled: &HashSet<Pubkey>,
        done: impl Fn(Result<(), LoadFailure>) + Sync,
    ) {
        for (source, key) in raw {
            let result = SecretKey::from_bytes(key.0.as_ref())
                .map_err(|_| "`privateKey` is not a valid BLS secret key".to_owned())
                .and_then(|secret| {
                    self.register(source.clone(), secret, String::new(), None, disabled)
                });
            done(result.map_err(|reason| LoadFailure::of(&source, reason)));
        }
        // Remote keys are fetched `--vault-parallelism` at a time (8 without a Vault source).
        let at_once = self.vault.as_ref().map_or(8, |v| v.parallelism);
        remote::fetch_all(remote, at_once, &self.stopping, |job, fetched| {
            let result = fetched
                .and_then(|bytes| {
                    SecretKey::from_bytes(bytes.as_ref())
                        .map_err(|_| "the fetched key is not a valid BLS secret key".to_owned())
                })
                .and_then(|secret| {
                    self.register(job.source.clone(), secret, String::new(), None, disabled)
                });
            done(result.map_err(|reason| LoadFailure::of(&job.source, reason)));
        });
    }

    /// The blocking part of start-up loading; returns whether the key cache must be rewritten.
    fn load_blocking(&self, disabled: &HashSet<Pubkey>) -> bool {
        match self.managed.remove_temp_files() {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                files = n,
                "removed temporary files an interrupted import left in the managed keystore directory"
            ),
            Err(e) => {
                tracing::error!("cannot remove temporary files of an interrupted import: {e}")
            }
        }
        if self.cache.is_none()
            && let Err(e) = crate::files::remove_if_present(&self.cache_file)
        {
            tracing::error!(cache = %self.cache_file.display(), "cannot remove the disabled key cache: {e}");
        }
        let mut jobs = Vec::new();
        let mut listing_failures = Vec::new();
        let managed = (SourceKind::Managed, self.managed.jobs());
        let external = self
            .external
            .as_ref()
            .map(|e| (SourceKind::External, source::external_jobs(e)));
        for (kind, listed) in [managed].into_iter().chain(external) {
            match listed {
                Ok(found) => jobs.extend(found),
                Err(e) => listing_failures.push(LoadFailure {
                    kind,
                    file: PathBuf::new(),
                    document: None,
                    reason: format!("cannot list keystores: {e}"),
                }),
            }
        }
        let mut configs = KeyConfigScan::default();
        if let Some(dir) = &self.key_config {
            match source::key_config_scan(dir, |_| false) {
                Ok(scan) => configs = scan,
                // The whole source failed: no file named (see `LoadFailure::file`).
                Err(e) => listing_failures.push(LoadFailure {
                    kind: SourceKind::KeyConfig,
                    file: PathBuf::new(),
                    document: None,
                    reason: format!("cannot list key config files in {}: {e}", dir.display()),
                }),
            }
        }
        let KeyConfigScan {
            keystores: config_keystores,
            raw,
            mut remote,
            failures: config_failures,
            ..
        } = configs;
        if let Some(vault) = &self.vault {
            match remote::vault_scan(vault, |_| false) {
                Ok(scan) => {
                    tracing::info!(secrets = scan.jobs.len(), "listed the keys in Vault");
                    remote.extend(scan.jobs);
                }
                Err(reason) => listing_failures.push(vault_failure(reason)),
            }
        }
        jobs.extend(config_keystores);
        let total = jobs.len() + raw.len() + remote.len() + config_failures.len();
        self.update_load(|s| s.total = total + listing_failures.len());
        tracing::info!(keys = total, "loading keys");
        for failure in listing_failures.into_iter().chain(config_failures) {
            self.fail_load(failure);
        }
        self.load_direct(raw, remote, disabled, |result| match result {
            Ok(()) => self.update_load(|s| s.done += 1),
            Err(failure) => self.fail_load(failure),
        });
        let mut read = Vec::with_capacity(total);
        for job in jobs {
            match source::read_keystore(job) {
                Ok(r) => read.push(r),
                Err(failure) => self.fail_load(failure),
            }
        }
        let (pending, stale) = match &self.cache {
            Some(_) if self.cache_file.exists() => self.load_from_cache(read, disabled),
            Some(_) => (encrypted_from_files(read), true),
            None => (encrypted_from_files(read), false),
        };
        let step = (total / 20).max(1);
        decrypt::decrypt_each(
            pending,
            Urgency::Startup,
            &self.stopping,
            |(job, keystore, fingerprint), result| {
                let admitted = result.and_then(|(secret, password)| {
                    self.admit(&job, &keystore, fingerprint, secret, password, disabled)
                });
                match admitted {
                    Ok(()) => self.update_load(|s| s.done += 1),
                    Err(reason) => self.fail_load(job.failure(reason)),
                }
                let done = self.load.borrow().done;
                if done.is_multiple_of(step) || done == total {
                    tracing::info!(done, total, "loading keys");
                }
            },
        );
        stale
    }

    /// Takes every key the cache holds for an unchanged keystore; returns the keystores still to decrypt
    /// and whether the cache must be rewritten.
    fn load_from_cache(
        &self,
        read: Vec<ReadKeystore>,
        disabled: &HashSet<Pubkey>,
    ) -> (Vec<Encrypted<StartupTag>>, bool) {
        // The cache's passphrase needs every password first.
        let mut with_passwords = Vec::with_capacity(read.len());
        for r in read {
            match source::read_password(&r.job.password_file) {
                Ok(password) => with_passwords.push((r, password)),
                Err(e) => self.fail_load(r.job.failure(format!(
                    "cannot read password file {}: {e}",
                    r.job.password_file.display()
                ))),
            }
        }
        let passwords: HashMap<[u8; 32], &str> = with_passwords
            .iter()
            .map(|(r, p)| (r.fingerprint, p.as_str()))
            .collect();
        let mut cached = match cache::read(&self.cache_file, &passwords) {
            Ok(secrets) => secrets,
            Err(reason) => {
                tracing::info!(cache = %self.cache_file.display(), %reason, "key cache not used; it will be rebuilt");
                HashMap::new()
            }
        };
        let mut pending = Vec::new();
        for (r, password) in with_passwords {
            match cached.remove(&r.fingerprint) {
                Some(secret) => {
                    match self.admit(
                        &r.job,
                        &r.keystore,
                        r.fingerprint,
                        secret,
                        password,
                        disabled,
                    ) {
                        Ok(()) => self.update_load(|s| {
                            s.done += 1;
                            s.from_cache += 1;
                        }),
                        Err(reason) => self.fail_load(r.job.failure(reason)),
                    }
                }
                None => pending.push(Encrypted {
                    keystore: r.keystore.clone(),
                    password: Password::Given(password),
                    tag: (r.job, r.keystore, r.fingerprint),
                }),
            }
        }
        let stale = !pending.is_empty() || !cached.is_empty();
        (pending, stale)
    }

    /// Every loaded key, or [`KeyError::Loading`] while start-up loading runs (never a partial list).
    pub fn list(&self) -> Result<Vec<KeyListing>, KeyError> {
        self.ensure_loaded()?;
        Ok(self
            .registry
            .list()
            .iter()
            .map(|k| KeyListing {
                validating_pubkey: k.public.to_hex(),
                derivation_path: k.derivation_path.clone(),
                readonly: k.source.readonly(),
            })
            .collect())
    }

    /// Imports keystores (JSON texts) with their passwords and an optional EIP-3076 history for exactly the
    /// keys imported.
    pub async fn import(
        &self,
        keystores: Vec<String>,
        passwords: Vec<Zeroizing<String>>,
        slashing_protection: Option<String>,
    ) -> Result<Vec<ImportStatus>, KeyError> {
        if keystores.len() != passwords.len() {
            return Err(KeyError::BadRequest(format!(
                "{} keystores but {} passwords",
                keystores.len(),
                passwords.len()
            )));
        }
        self.ensure_loaded()?;
        let _guard = self.lock.lock().await;

        let decrypted =
            tokio::task::spawn_blocking(move || decrypt_imports(keystores, passwords)).await?;

        // Decide each key's fate in request order.
        let mut statuses = Vec::with_capacity(decrypted.len());
        let mut candidates = Vec::new();
        let mut seen = HashSet::new();
        for (i, result) in decrypted.into_iter().enumerate() {
            let status = match result {
                Err(message) => ImportStatus {
                    status: ImportStatusKind::Error,
                    message,
                },
                Ok(key) => {
                    let pk = *key.public.as_bytes();
                    if self.registry.get(&pk).is_some() || !seen.insert(pk) {
                        ImportStatus {
                            status: ImportStatusKind::Duplicate,
                            message: String::new(),
                        }
                    } else {
                        candidates.push((i, key));
                        ImportStatus {
                            status: ImportStatusKind::Imported,
                            message: String::new(),
                        }
                    }
                }
            };
            statuses.push(status);
        }

        // 1. The files, under temporary names.
        let managed = self.managed.clone();
        let staged = tokio::task::spawn_blocking(move || {
            candidates
                .into_iter()
                .map(|(i, key)| {
                    let staged = managed.stage(&key.public, &key.json, &key.cache.password);
                    (i, key, staged)
                })
                .collect::<Vec<_>>()
        })
        .await?;
        let mut ready = Vec::with_capacity(staged.len());
        for (i, key, result) in staged {
            match result {
                Ok(files) => ready.push((i, key, files)),
                Err(e) => {
                    tracing::error!(pubkey = %key.public, "cannot store an imported key: {e}");
                    statuses[i] = ImportStatus {
                        status: ImportStatusKind::Error,
                        message: format!("cannot store the keystore: {e}"),
                    };
                }
            }
        }

        // 2. The history and the enabled flag, before the key can sign; on failure nothing stays on disk.
        if let Err(e) = self
            .enable_in_database(&ready, slashing_protection.as_deref())
            .await
        {
            tokio::task::spawn_blocking(move || drop(ready)).await?;
            return Err(e);
        }

        // 3. The files in place, then the key signs.
        let managed = self.managed.clone();
        let committed = tokio::task::spawn_blocking(move || {
            ready
                .into_iter()
                .map(|(i, key, files)| {
                    let placed = managed.commit(files);
                    (i, key, placed)
                })
                .collect::<Vec<_>>()
        })
        .await?;
        let mut imported = 0;
        for (i, key, placed) in committed {
            match placed {
                Ok(keystore) => {
                    let public = key.public;
                    self.registry.insert(key.into_entry(keystore));
                    imported += 1;
                    tracing::info!(pubkey = %public, "key imported");
                }
                Err(e) => {
                    tracing::error!(pubkey = %key.public, "cannot store an imported key: {e}");
                    statuses[i] = ImportStatus {
                        status: ImportStatusKind::Error,
                        message: format!("cannot store the keystore: {e}"),
                    };
                }
            }
        }
        if imported > 0 {
            self.refresh_cache();
        }
        Ok(statuses)
    }

    /// Applies an import's history (for exactly the keys in `ready`) and enables those keys.
    async fn enable_in_database<T>(
        &self,
        ready: &[(usize, ImportedKey, T)],
        slashing_protection: Option<&str>,
    ) -> Result<(), KeyError> {
        let interchange = slashing_protection.filter(|s| !s.trim().is_empty());
        let Some(db) = &self.slashing else {
            if interchange.is_some() {
                tracing::warn!(
                    "slashing_protection given with an import while slashing protection is disabled: ignored"
                );
            }
            return Ok(());
        };
        let pubkeys: Vec<Pubkey> = ready
            .iter()
            .map(|(_, key, _)| *key.public.as_bytes())
            .collect();
        if let Some(interchange) = interchange {
            db.import_interchange(interchange, Some(&pubkeys))
                .await
                .map_err(|e| match e {
                    ferrosigner_slashing::Error::InvalidInterchange(_) => KeyError::Interchange(e),
                    other => KeyError::Database(other),
                })?;
        }
        if !pubkeys.is_empty() {
            db.set_enabled(&pubkeys, true)
                .await
                .map_err(KeyError::Database)?;
        }
        Ok(())
    }

    /// Deletes keys; returns per-key statuses and the EIP-3076 history of the deleted and inactive keys.
    pub async fn delete(&self, pubkeys: &[String]) -> Result<DeleteOutcome, KeyError> {
        self.ensure_loaded()?;
        let _guard = self.lock.lock().await;
        let mut statuses = Vec::with_capacity(pubkeys.len());
        let mut export = Vec::new();
        for text in pubkeys {
            let status = self.delete_one(text).await;
            if matches!(
                status.status,
                DeleteStatusKind::Deleted | DeleteStatusKind::NotActive
            ) && let Ok(public) = PublicKey::from_hex(text)
            {
                export.push(*public.as_bytes());
            }
            statuses.push(status);
        }
        if statuses
            .iter()
            .any(|s| s.status == DeleteStatusKind::Deleted)
        {
            self.refresh_cache();
        }
        let empty = || empty_interchange(self.genesis_validators_root);
        let slashing_protection = match &self.slashing {
            None => empty(),
            Some(db) => match db.export_interchange(Some(&export)).await {
                Ok(json) => json,
                // Nothing was ever recorded in this database, so there is no history to hand over.
                Err(ferrosigner_slashing::Error::NoGenesisValidatorsRoot) => empty(),
                Err(e) => {
                    tracing::error!("exporting the slashing history of deleted keys failed: {e}");
                    for s in statuses.iter_mut().filter(|s| {
                        matches!(
                            s.status,
                            DeleteStatusKind::Deleted | DeleteStatusKind::NotActive
                        )
                    }) {
                        *s = DeleteStatus::error(format!(
                            "the key no longer signs here, but its slashing history could not be exported \
                             ({e}); delete it again to get the history"
                        ));
                    }
                    empty()
                }
            },
        };
        Ok(DeleteOutcome {
            statuses,
            slashing_protection,
        })
    }

    async fn delete_one(&self, text: &str) -> DeleteStatus {
        let Ok(public) = PublicKey::from_hex(text) else {
            return DeleteStatus::error(format!(
                "`{}` is not a valid public key",
                text.chars().take(100).collect::<String>()
            ));
        };
        let pk = *public.as_bytes();
        let entry = self.registry.get(&pk);
        if entry.as_ref().is_some_and(|e| e.source.readonly()) {
            return DeleteStatus::error(KeyError::ReadOnly.to_string());
        }
        // The key's files: those it was loaded from, or an imported key's files left by a deletion that did
        // not finish (or a keystore that failed to load).
        let keystore = match &entry {
            Some(e) => Some(e.source.file().to_path_buf()),
            None => {
                let managed = self.managed.clone();
                let path = managed.keystore_path(&public);
                match tokio::task::spawn_blocking(move || managed.holds(&public)).await {
                    Ok(true) => Some(path),
                    Ok(false) => None,
                    Err(e) => return DeleteStatus::error(KeyError::from(e).to_string()),
                }
            }
        };
        let Some(keystore) = keystore else {
            return self.inactive_status(&pk).await;
        };

        // 1. Stop signing.
        let removed = self.registry.remove(&pk);
        // 2. Disable in the database; if that fails nothing has changed, so the key goes back.
        if let Some(db) = &self.slashing
            && let Err(e) = db.set_enabled(&[pk], false).await
        {
            if let Some(entry) = removed {
                self.registry.restore(entry);
            }
            tracing::error!(pubkey = %public, "deletion failed: the slashing database did not disable the key: {e}");
            return DeleteStatus::error(format!(
                "not deleted: the slashing protection database could not disable the key ({e}); nothing changed"
            ));
        }
        // 3. Remove the files.
        let managed = self.managed.clone();
        let removed_files = tokio::task::spawn_blocking(move || managed.remove(&keystore))
            .await
            .map_err(KeyError::from)
            .and_then(|r| r);
        if let Err(e) = removed_files {
            tracing::error!(pubkey = %public, "deletion incomplete: the key is disabled but its files remain: {e}");
            return DeleteStatus::error(format!(
                "the key no longer signs and is disabled in the slashing protection database, but its files \
                 could not be removed ({e}); delete it again to finish"
            ));
        }
        tracing::info!(pubkey = %public, "key deleted");
        DeleteStatus::of(DeleteStatusKind::Deleted)
    }

    /// `not_active` when the database has history for a key not held here, else `not_found`.
    async fn inactive_status(&self, pk: &Pubkey) -> DeleteStatus {
        let history = match &self.slashing {
            Some(db) => match db.has_history(pk).await {
                Ok(h) => h,
                Err(e) => {
                    return DeleteStatus::error(format!("slashing protection database: {e}"));
                }
            },
            None => false,
        };
        DeleteStatus::of(if history {
            DeleteStatusKind::NotActive
        } else {
            DeleteStatusKind::NotFound
        })
    }

    /// The state of the last or current reload.
    pub fn reload_status(&self) -> ReloadStatus {
        lock(&self.reload).clone()
    }

    /// Starts a reload of the external directory and the key config files in the background; `Ok(false)` if
    /// one is already running.
    pub fn start_reload(self: &Arc<Self>) -> Result<bool, KeyError> {
        self.ensure_loaded()?;
        {
            let mut status = lock(&self.reload);
            if status.status == ReloadState::Running {
                return Ok(false);
            }
            status.status = ReloadState::Running;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let result = this.clone().reload_sources().await;
            let mut status = lock(&this.reload);
            status.last_operation_time = Some(rfc3339(SystemTime::now()));
            match result {
                Ok((added, removed, errors)) => {
                    status.added = added;
                    status.removed = removed;
                    status.status = if errors.is_empty() {
                        ReloadState::Completed
                    } else {
                        ReloadState::CompletedWithErrors
                    };
                    status.last_error = errors.last().cloned();
                }
                Err(e) => {
                    status.status = ReloadState::Failed;
                    status.last_error = Some(e.to_string());
                }
            }
        });
        Ok(true)
    }

    /// Re-reads the external directory, the key config files and the Vault source: loads keys not yet loaded,
    /// drops keys whose keystore, file, document or secret is gone. The failures of these sources in the load
    /// state become this reload's.
    async fn reload_sources(self: Arc<Self>) -> Result<(usize, usize, Vec<String>), KeyError> {
        let _guard = self.lock.lock().await;
        if self.external.is_none() && self.key_config.is_none() && self.vault.is_none() {
            return Ok((0, 0, Vec::new()));
        }
        let disabled: HashSet<Pubkey> = match &self.slashing {
            Some(db) => db
                .disabled_validators()
                .await
                .map_err(KeyError::Database)?
                .into_iter()
                .collect(),
            None => HashSet::new(),
        };
        let this = self.clone();
        let (added, removed, failures) =
            tokio::task::spawn_blocking(move || this.reload_blocking(&disabled)).await??;
        if added > 0 || removed > 0 {
            self.refresh_cache();
        }
        let errors: Vec<String> = failures.iter().map(ToString::to_string).collect();
        for failure in &failures {
            failure.log("key not loaded by the reload");
        }
        self.update_load(|s| {
            s.failures.retain(|f| f.kind == SourceKind::Managed);
            s.failures.extend(failures);
        });
        tracing::info!(added, removed, errors = errors.len(), "reload finished");
        Ok((added, removed, errors))
    }

    fn reload_blocking(
        &self,
        disabled: &HashSet<Pubkey>,
    ) -> Result<(usize, usize, Vec<LoadFailure>), KeyError> {
        let loaded: HashSet<KeySource> = self
            .registry
            .list()
            .iter()
            .filter(|k| k.source.readonly())
            .map(|k| k.source.clone())
            .collect();
        let mut jobs = Vec::new();
        let mut removed = 0;
        let mut failures = Vec::new();
        if let Some(external) = &self.external {
            let found = source::external_jobs(external)?;
            let present: HashSet<KeySource> = found.iter().map(|j| j.source.clone()).collect();
            removed += self
                .registry
                .remove_where(|k| {
                    k.source.kind() == SourceKind::External && !present.contains(&k.source)
                })
                .len();
            jobs.extend(found.into_iter().filter(|j| !loaded.contains(&j.source)));
        }
        let mut raw = Vec::new();
        let mut remote = Vec::new();
        if let Some(dir) = &self.key_config {
            let scan = source::key_config_scan(dir, |s| loaded.contains(s))?;
            // A file that cannot be read now keeps the keys it loaded before: only what is gone is dropped.
            removed += self
                .registry
                .remove_where(|k| match &k.source {
                    KeySource::KeyConfig { file, .. } => {
                        !scan.present.contains(&k.source) && !scan.unreadable.contains(file)
                    }
                    _ => false,
                })
                .len();
            jobs.extend(scan.keystores);
            raw = scan.raw;
            remote = scan.remote;
            failures.extend(scan.failures);
        }
        if let Some(vault) = &self.vault {
            match remote::vault_scan(vault, |s| loaded.contains(s)) {
                Ok(scan) => {
                    removed += self
                        .registry
                        .remove_where(|k| {
                            k.source.kind() == SourceKind::Vault
                                && !scan.present.contains(&k.source)
                        })
                        .len();
                    remote.extend(scan.jobs);
                }
                // Vault not answering keeps the keys it gave before.
                Err(reason) => failures.push(vault_failure(reason)),
            }
        }
        let failures = Mutex::new(failures);
        let added = std::sync::atomic::AtomicUsize::new(0);
        let count = |result: Result<(), LoadFailure>| match result {
            Ok(()) => {
                added.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Err(failure) => lock(&failures).push(failure),
        };
        self.load_direct(raw, remote, disabled, count);
        let mut read = Vec::new();
        for job in jobs {
            match source::read_keystore(job) {
                Ok(r) => read.push(r),
                Err(failure) => lock(&failures).push(failure),
            }
        }
        decrypt::decrypt_each(
            encrypted_from_files(read),
            Urgency::Background,
            &self.stopping,
            |(job, keystore, fingerprint), result| {
                let admitted = result.and_then(|(secret, password)| {
                    self.admit(&job, &keystore, fingerprint, secret, password, disabled)
                });
                count(admitted.map_err(|reason| job.failure(reason)));
            },
        );
        Ok((
            added.into_inner(),
            removed,
            failures.into_inner().unwrap_or_else(|e| e.into_inner()),
        ))
    }
}

/// The failure of the Vault bulk source as a whole: it could not be logged in to or listed.
fn vault_failure(reason: String) -> LoadFailure {
    LoadFailure {
        kind: SourceKind::Vault,
        file: PathBuf::new(),
        document: None,
        reason: format!("cannot list the keys in Vault: {reason}"),
    }
}

/// What start-up and reload decryption carry along with each keystore.
type StartupTag = (Job, Keystore, [u8; 32]);

/// Keystores whose password is read from its file by the decryption thread itself (a slow or missing
/// password file holds up only its own key).
fn encrypted_from_files(read: Vec<ReadKeystore>) -> Vec<Encrypted<StartupTag>> {
    read.into_iter()
        .map(|r| Encrypted {
            keystore: r.keystore.clone(),
            password: Password::File(r.job.password_file.clone()),
            tag: (r.job, r.keystore, r.fingerprint),
        })
        .collect()
}

/// A key decrypted for import, not yet stored.
struct ImportedKey {
    secret: SecretKey,
    public: PublicKey,
    derivation_path: String,
    json: String,
    /// Its keystore's fingerprint, password and KDF (the password is also what is stored beside it).
    cache: CacheMaterial,
}

impl ImportedKey {
    fn into_entry(self, keystore: PathBuf) -> KeyEntry {
        KeyEntry {
            secret: self.secret,
            public: self.public,
            derivation_path: self.derivation_path,
            source: KeySource::Managed { keystore },
            cache: Some(self.cache),
        }
    }
}

/// Parses and decrypts an import's keystores (blocking); one result per keystore, in order.
fn decrypt_imports(
    keystores: Vec<String>,
    passwords: Vec<Zeroizing<String>>,
) -> Vec<Result<ImportedKey, String>> {
    let results: Vec<Option<Result<ImportedKey, String>>> =
        (0..keystores.len()).map(|_| None).collect();
    let results = Mutex::new(results);
    let mut items = Vec::new();
    for (i, (json, password)) in keystores.into_iter().zip(passwords).enumerate() {
        match Keystore::from_json(&json) {
            Ok(keystore) => items.push(Encrypted {
                keystore: keystore.clone(),
                password: Password::Given(password),
                tag: (i, json, keystore),
            }),
            Err(e) => lock(&results)[i] = Some(Err(format!("invalid keystore: {e}"))),
        }
    }
    // An import is a request: the server's graceful shutdown bounds it, so it is not stopped here.
    let never = AtomicBool::new(false);
    decrypt::decrypt_each(
        items,
        Urgency::Background,
        &never,
        |(i, json, keystore), result| {
            let key = result.map(|(secret, password)| ImportedKey {
                public: secret.public_key(),
                secret,
                derivation_path: keystore.path().to_owned(),
                // The stored file holds exactly these bytes, so the fingerprint matches at the next start.
                cache: CacheMaterial {
                    fingerprint: cache::fingerprint(json.as_bytes()),
                    password,
                    kdf: keystore.kdf(),
                },
                json,
            });
            lock(&results)[i] = Some(key);
        },
    );
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err("not decrypted".to_owned())))
        .collect()
}

/// Locks a mutex that a panicking holder cannot leave half-updated (single assignments).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// An EIP-3076 interchange with no history.
fn empty_interchange(genesis_validators_root: Option<[u8; 32]>) -> String {
    serde_json::json!({
        "metadata": {
            "interchange_format_version": "5",
            "genesis_validators_root": format!("0x{}", hex::encode(genesis_validators_root.unwrap_or_default())),
        },
        "data": [],
    })
    .to_string()
}

fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_999_999);
        assert_eq!(rfc3339(t), "2026-11-30T00:53:19Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn status_values_serialize_as_the_keymanager_api_spells_them() {
        let json = |v: serde_json::Result<String>| v.unwrap();
        assert_eq!(
            json(serde_json::to_string(&ImportStatusKind::Imported)),
            "\"imported\""
        );
        assert_eq!(
            json(serde_json::to_string(&ImportStatusKind::Duplicate)),
            "\"duplicate\""
        );
        assert_eq!(
            json(serde_json::to_string(&DeleteStatusKind::NotActive)),
            "\"not_active\""
        );
        assert_eq!(
            json(serde_json::to_string(&DeleteStatusKind::NotFound)),
            "\"not_found\""
        );
        assert_eq!(
            json(serde_json::to_string(&ReloadState::CompletedWithErrors)),
            "\"completed_with_errors\""
        );
    }
}
