//! The key registry: every key able to sign, held once per process and shared by all request handlers.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use ferrosigner_bls::{PUBLIC_KEY_LEN, PublicKey, SecretKey};

use crate::key_cache::CacheMaterial;

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

/// The loaded keys, looked up by compressed public key bytes (no curve check on the hot path).
#[derive(Default)]
pub struct KeyRegistry {
    keys: RwLock<HashMap<[u8; PUBLIC_KEY_LEN], Arc<KeyEntry>>>,
}

impl KeyRegistry {
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
        true
    }

    /// Removes a key; returns it if it was loaded.
    pub fn remove(&self, pubkey: &[u8; PUBLIC_KEY_LEN]) -> Option<Arc<KeyEntry>> {
        self.write().remove(pubkey)
    }

    /// Removes every key matching `predicate`; returns the removed keys.
    pub fn remove_where(&self, mut predicate: impl FnMut(&KeyEntry) -> bool) -> Vec<Arc<KeyEntry>> {
        let mut keys = self.write();
        let doomed: Vec<_> = keys
            .iter()
            .filter(|(_, e)| predicate(e))
            .map(|(k, _)| *k)
            .collect();
        doomed.iter().filter_map(|k| keys.remove(k)).collect()
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

    /// Whether no key is loaded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
