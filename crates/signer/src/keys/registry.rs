//! The key registry: every key able to sign, held once per process. Only the [`super::Keyring`] changes it;
//! the signing pipeline and handlers get a read-only [`KeyView`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use ferrosigner_bls::{PUBLIC_KEY_LEN, PublicKey, SecretKey};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::watch;

use crate::metrics::SourceLabels;

use super::LoadState;
use super::cache::CacheMaterial;

/// Where a key came from, which decides whether the Keymanager API may delete it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeySource {
    /// Imported through the Keymanager API and stored under `<data-dir>/keystores`; deletable.
    Managed {
        /// The keystore file.
        keystore: PathBuf,
    },
    /// Loaded from `--keystores-path`; read-only.
    External {
        /// The keystore file.
        keystore: PathBuf,
    },
    /// Configured by a document of a key config file in `--key-config-path`; read-only.
    KeyConfig {
        /// The YAML file.
        file: PathBuf,
        /// Which document of the file (1 for the first).
        document: usize,
    },
    /// A secret of the Vault bulk source (`--vault-*`); read-only.
    Vault {
        /// The secret, as `<mount>/<path>`.
        secret: PathBuf,
    },
}

impl KeySource {
    /// Whether the Keymanager API must refuse to delete this key.
    pub fn readonly(&self) -> bool {
        !matches!(self, KeySource::Managed { .. })
    }

    /// The file behind the key: its keystore, the key config file that names it, or its Vault secret.
    pub fn file(&self) -> &std::path::Path {
        match self {
            KeySource::Managed { keystore } | KeySource::External { keystore } => keystore,
            KeySource::KeyConfig { file, .. } => file,
            KeySource::Vault { secret } => secret,
        }
    }

    /// Which kind of source this is.
    pub fn kind(&self) -> SourceKind {
        match self {
            KeySource::Managed { .. } => SourceKind::Managed,
            KeySource::External { .. } => SourceKind::External,
            KeySource::KeyConfig { .. } => SourceKind::KeyConfig,
            KeySource::Vault { .. } => SourceKind::Vault,
        }
    }
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Managed { keystore } => {
                write!(f, "imported keystore {}", keystore.display())
            }
            KeySource::External { keystore } => write!(f, "keystore {}", keystore.display()),
            KeySource::KeyConfig { file, document } => {
                write!(f, "key config {} document {document}", file.display())
            }
            KeySource::Vault { secret } => write!(f, "Vault secret {}", secret.display()),
        }
    }
}

/// The kinds of key source, as `/healthcheck` and the metrics count them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKind {
    /// Keys imported through the Keymanager API.
    Managed,
    /// `--keystores-path`.
    External,
    /// `--key-config-path`.
    KeyConfig,
    /// `--vault-*`.
    Vault,
}

impl SourceKind {
    /// Every kind, in a fixed order.
    pub const ALL: [SourceKind; 4] = [
        SourceKind::Managed,
        SourceKind::External,
        SourceKind::KeyConfig,
        SourceKind::Vault,
    ];

    /// The metric label value.
    pub fn label(self) -> &'static str {
        match self {
            SourceKind::Managed => "managed",
            SourceKind::External => "keystores",
            SourceKind::KeyConfig => "key_config",
            SourceKind::Vault => "vault",
        }
    }
}

/// One loaded key. `Debug` (through [`SecretKey`]) never shows the secret.
#[derive(Debug)]
pub struct KeyEntry {
    /// The secret key.
    pub secret: SecretKey,
    /// Its public key.
    pub public: PublicKey,
    /// The EIP-2334 path from the keystore (may be empty).
    pub derivation_path: String,
    /// Where it came from.
    pub source: KeySource,
    /// What the key cache needs to hold this key (absent for keys that are not cached).
    pub cache: Option<CacheMaterial>,
}

/// The loaded keys, looked up by compressed public key bytes (no curve check on the hot path). The
/// `keys_loaded` gauge and the per-source gauges follow every change.
pub(crate) struct KeyRegistry {
    keys: RwLock<HashMap<[u8; PUBLIC_KEY_LEN], Arc<KeyEntry>>>,
    gauge: Gauge,
    by_source: Family<SourceLabels, Gauge>,
}

impl KeyRegistry {
    /// An empty registry reporting its size to `gauge` and its size per source to `by_source`.
    pub fn new(gauge: Gauge, by_source: Family<SourceLabels, Gauge>) -> Self {
        for kind in SourceKind::ALL {
            by_source
                .get_or_create(&SourceLabels {
                    source: kind.label(),
                })
                .set(0);
        }
        Self {
            keys: RwLock::default(),
            gauge,
            by_source,
        }
    }

    /// Counts a key in or out of its source's gauge (called under the write lock).
    fn count(&self, entry: &KeyEntry, delta: i64) {
        self.by_source
            .get_or_create(&SourceLabels {
                source: entry.source.kind().label(),
            })
            .inc_by(delta);
    }

    /// How many keys each kind of source has loaded.
    pub fn count_by_source(&self) -> HashMap<SourceKind, usize> {
        let mut per = HashMap::new();
        for entry in self.read().values() {
            *per.entry(entry.source.kind()).or_insert(0) += 1;
        }
        per
    }

    /// The key with these public key bytes, if loaded.
    pub fn get(&self, pubkey: &[u8; PUBLIC_KEY_LEN]) -> Option<Arc<KeyEntry>> {
        self.read().get(pubkey).cloned()
    }

    /// Adds a key unless one with the same public key is loaded; returns whether it was added.
    pub fn insert(&self, entry: KeyEntry) -> bool {
        let mut keys = self.write();
        let pk = *entry.public.as_bytes();
        if keys.contains_key(&pk) {
            return false;
        }
        self.count(&entry, 1);
        keys.insert(pk, Arc::new(entry));
        self.gauge.set(keys.len() as i64);
        true
    }

    /// Puts back a key taken out by [`Self::remove`] (a deletion that could not go ahead).
    pub fn restore(&self, entry: Arc<KeyEntry>) {
        let mut keys = self.write();
        if let std::collections::hash_map::Entry::Vacant(slot) =
            keys.entry(*entry.public.as_bytes())
        {
            self.count(&entry, 1);
            slot.insert(entry);
        }
        self.gauge.set(keys.len() as i64);
    }

    /// Removes a key; returns it if it was loaded.
    pub fn remove(&self, pubkey: &[u8; PUBLIC_KEY_LEN]) -> Option<Arc<KeyEntry>> {
        let mut keys = self.write();
        let removed = keys.remove(pubkey);
        if let Some(entry) = &removed {
            self.count(entry, -1);
        }
        self.gauge.set(keys.len() as i64);
        removed
    }

    /// Removes every key matching `predicate`; returns the removed keys.
    pub fn remove_where(&self, mut predicate: impl FnMut(&KeyEntry) -> bool) -> Vec<Arc<KeyEntry>> {
        let mut keys = self.write();
        let doomed: Vec<_> = keys
            .iter()
            .filter(|(_, e)| predicate(e))
            .map(|(k, _)| *k)
            .collect();
        let removed: Vec<_> = doomed.iter().filter_map(|k| keys.remove(k)).collect();
        for entry in &removed {
            self.count(entry, -1);
        }
        self.gauge.set(keys.len() as i64);
        removed
    }

    /// Every loaded key, sorted by public key.
    pub fn list(&self) -> Vec<Arc<KeyEntry>> {
        let mut all: Vec<_> = self.read().values().cloned().collect();
        all.sort_by_key(|e| e.public);
        all
    }

    /// How many keys are loaded.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<[u8; PUBLIC_KEY_LEN], Arc<KeyEntry>>> {
        // A panic while holding the lock cannot leave the map half-updated (single insert/remove calls).
        self.keys.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, HashMap<[u8; PUBLIC_KEY_LEN], Arc<KeyEntry>>> {
        self.keys.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// A read-only handle on the keys for the signing pipeline and the handlers: lookups and the load state.
#[derive(Clone)]
pub struct KeyView {
    registry: Arc<KeyRegistry>,
    load: watch::Receiver<LoadState>,
}

impl KeyView {
    pub(crate) fn new(registry: Arc<KeyRegistry>, load: watch::Receiver<LoadState>) -> Self {
        Self { registry, load }
    }

    /// The key with these public key bytes, if loaded.
    pub fn get(&self, pubkey: &[u8; PUBLIC_KEY_LEN]) -> Option<Arc<KeyEntry>> {
        self.registry.get(pubkey)
    }

    /// Every loaded key, sorted by public key.
    pub fn list(&self) -> Vec<Arc<KeyEntry>> {
        self.registry.list()
    }

    /// How many keys are loaded.
    pub fn len(&self) -> usize {
        self.registry.len()
    }

    /// How many keys each kind of source has loaded (kinds with none are absent).
    pub fn count_by_source(&self) -> HashMap<SourceKind, usize> {
        self.registry.count_by_source()
    }

    /// Whether no key is loaded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether start-up key loading has finished.
    pub fn loaded(&self) -> bool {
        self.load.borrow().finished
    }

    /// The progress and result of start-up key loading.
    pub fn load_state(&self) -> LoadState {
        self.load.borrow().clone()
    }

    /// Waits until start-up key loading has finished.
    pub async fn wait_loaded(&self) {
        let mut load = self.load.clone();
        let _ = load.wait_for(|s| s.finished).await;
    }
}
