//! The key registry: every key able to sign, held once per process. Only the [`super::Keyring`] changes it;
//! the signing pipeline and handlers get a read-only [`KeyView`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use ferrosigner_bls::{PUBLIC_KEY_LEN, PublicKey, SecretKey};
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::watch;

use super::LoadState;
use super::cache::CacheMaterial;

/// Where a key came from, which decides whether the Keymanager API may delete it.
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

impl KeySource {
    /// Whether the Keymanager API must refuse to delete this key.
    pub fn readonly(&self) -> bool {
        matches!(self, KeySource::External { .. })
    }

    /// The keystore file behind the key.
    pub fn keystore(&self) -> &std::path::Path {
        match self {
            KeySource::Managed { keystore } | KeySource::External { keystore } => keystore,
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
/// `keys_loaded` gauge follows every change.
pub(crate) struct KeyRegistry {
    keys: RwLock<HashMap<[u8; PUBLIC_KEY_LEN], Arc<KeyEntry>>>,
    gauge: Gauge,
}

impl KeyRegistry {
    /// An empty registry reporting its size to `gauge`.
    pub fn new(gauge: Gauge) -> Self {
        Self {
            keys: RwLock::default(),
            gauge,
        }
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
        keys.insert(pk, Arc::new(entry));
        self.gauge.set(keys.len() as i64);
        true
    }

    /// Puts back a key taken out by [`Self::remove`] (a deletion that could not go ahead).
    pub fn restore(&self, entry: Arc<KeyEntry>) {
        let mut keys = self.write();
        keys.entry(*entry.public.as_bytes()).or_insert(entry);
        self.gauge.set(keys.len() as i64);
    }

    /// Removes a key; returns it if it was loaded.
    pub fn remove(&self, pubkey: &[u8; PUBLIC_KEY_LEN]) -> Option<Arc<KeyEntry>> {
        let mut keys = self.write();
        let removed = keys.remove(pubkey);
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
        let removed = doomed.iter().filter_map(|k| keys.remove(k)).collect();
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
