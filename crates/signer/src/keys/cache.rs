//! The key cache file: every loaded key's secret sealed under one KDF, so that a restart with thousands of
//! scrypt keystores costs one KDF plus a public-key check per key instead of one scrypt per key.
//!
//! File layout: `"FSKCIDX1"` | entry count (u32, big-endian) | the keystore fingerprints (SHA-256 of each
//! keystore file, 32 bytes each, sorted) | the sealed container of [`ferrosigner_keystore::key_cache`].
//!
//! The passphrase is SHA-256 over every cached keystore's fingerprint and password, in the listed order, so
//! opening the cache needs every cached keystore's password: the cache is no weaker than the keystores it
//! holds. Its KDF is the strongest KDF among those keystores. The cache is only trusted for keystores whose
//! file bytes are unchanged (same fingerprint); any change, removal or password change makes it unusable,
//! and it is rebuilt from the keys that were loaded.
//!
//! One writer thread of its own ([`CacheWriter`]) rewrites the file at lowered priority after keys change;
//! requests that arrive while it works are coalesced into one more write.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use ferrosigner_bls::SecretKey;
use ferrosigner_keystore::Kdf;
use ferrosigner_keystore::kdf::KdfParams;
use ferrosigner_keystore::key_cache::{self, CacheEntry};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::registry::{KeyEntry, KeyRegistry};

pub use ferrosigner_keystore::key_cache::fingerprint;

const MAGIC: &[u8; 8] = b"FSKCIDX1";

/// What the cache needs to know about a loaded key: its keystore's fingerprint, password and KDF.
pub struct CacheMaterial {
    /// SHA-256 of the keystore file bytes.
    pub fingerprint: [u8; 32],
    /// The keystore password.
    pub password: Zeroizing<String>,
    /// The keystore's KDF parameters.
    pub kdf: KdfParams,
}

impl std::fmt::Debug for CacheMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CacheMaterial(fingerprint 0x{}, <password redacted>)",
            hex::encode(self.fingerprint)
        )
    }
}

fn passphrase(entries: &[([u8; 32], &str)]) -> Zeroizing<[u8; 32]> {
    let mut hasher = Sha256::new();
    hasher.update(b"ferrosigner key cache passphrase v1");
    for (fingerprint, password) in entries {
        hasher.update(fingerprint);
        hasher.update((password.len() as u64).to_be_bytes());
        hasher.update(password.as_bytes());
    }
    Zeroizing::new(hasher.finalize().into())
}

/// The strongest of these KDFs (scrypt over PBKDF2, then the larger cost), as a choice for sealing.
fn strongest(kdfs: impl Iterator<Item = KdfParams>) -> Kdf {
    let mut best = Kdf::Pbkdf2 { c: 1 };
    for kdf in kdfs {
        best = match (best, kdf) {
            (Kdf::Pbkdf2 { .. }, KdfParams::Scrypt { log2_n, .. }) => Kdf::Scrypt { log2_n },
            (Kdf::Scrypt { log2_n: a }, KdfParams::Scrypt { log2_n: b, .. }) => {
                Kdf::Scrypt { log2_n: a.max(b) }
            }
            (Kdf::Pbkdf2 { c: a }, KdfParams::Pbkdf2 { c: b }) => Kdf::Pbkdf2 { c: a.max(b) },
            (scrypt @ Kdf::Scrypt { .. }, KdfParams::Pbkdf2 { .. }) => scrypt,
        };
    }
    best
}

/// Opens the cache at `path` given the passwords of the keystores now on disk (by fingerprint). Returns the
/// cached secrets by fingerprint, or why the cache cannot be used.
pub fn read(
    path: &Path,
    passwords: &HashMap<[u8; 32], &str>,
) -> Result<HashMap<[u8; 32], SecretKey>, String> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?);
    let rest = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or("not a key cache file")?;
    let (count, rest) = rest.split_first_chunk::<4>().ok_or("truncated")?;
    let count = u32::from_be_bytes(*count) as usize;
    let listed_len = count
        .checked_mul(32)
        .filter(|n| *n <= rest.len())
        .ok_or("truncated")?;
    let (listed, sealed) = rest.split_at(listed_len);
    let mut order = Vec::with_capacity(count);
    for chunk in listed.chunks_exact(32) {
        let fingerprint: [u8; 32] = chunk.try_into().map_err(|_| "truncated")?;
        let password = passwords
            .get(&fingerprint)
            .ok_or("a cached keystore changed or is gone")?;
        order.push((fingerprint, *password));
    }
    let entries =
        key_cache::open(sealed, passphrase(&order).as_ref()).map_err(|e| e.to_string())?;
    if entries.len() != order.len()
        || entries
            .iter()
            .zip(&order)
            .any(|(e, (f, _))| e.fingerprint != *f)
    {
        return Err("the cache's entries do not match its index".into());
    }
    Ok(entries
        .into_iter()
        .map(|e| (e.fingerprint, e.secret))
        .collect())
}

/// Seals every key that has cache material into `path` (atomically, 0600). With fewer than two such keys a
/// cache saves nothing, and any existing file is removed instead.
pub fn write(path: &Path, keys: &[Arc<KeyEntry>]) -> Result<(), String> {
    let mut cached: Vec<(&KeyEntry, &CacheMaterial)> = keys
        .iter()
        .filter_map(|k| k.cache.as_ref().map(|m| (k.as_ref(), m)))
        .collect();
    if cached.len() < 2 {
        return crate::files::remove_if_present(path)
            .map_err(|e| format!("cannot remove {}: {e}", path.display()));
    }
    cached.sort_by_key(|(_, m)| m.fingerprint);
    cached.dedup_by_key(|(_, m)| m.fingerprint);
    let order: Vec<([u8; 32], &str)> = cached
        .iter()
        .map(|(_, m)| (m.fingerprint, m.password.as_str()))
        .collect();
    let entries: Vec<CacheEntry> = cached
        .iter()
        .map(|(k, m)| CacheEntry {
            pubkey: k.public,
            secret: k.secret.clone(),
            fingerprint: m.fingerprint,
        })
        .collect();
    let kdf = strongest(cached.iter().map(|(_, m)| m.kdf));
    let sealed =
        key_cache::seal(&entries, passphrase(&order).as_ref(), kdf).map_err(|e| e.to_string())?;
    let mut file = Vec::with_capacity(12 + order.len() * 32 + sealed.len());
    file.extend_from_slice(MAGIC);
    file.extend_from_slice(&(order.len() as u32).to_be_bytes());
    for (fingerprint, _) in &order {
        file.extend_from_slice(fingerprint);
    }
    file.extend_from_slice(&sealed);
    crate::files::write_file_atomic(path, &file, 0o600)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// How long the writer waits after a request before sealing, so that a burst of changes (many quick
/// deletions) costs one KDF run instead of one each.
const SETTLE: Duration = Duration::from_millis(200);

#[derive(Default)]
struct WriterState {
    requested: bool,
    stopped: bool,
}

/// The key cache's one writer: a thread of its own, at lowered priority, that re-seals the cache from the
/// registry whenever asked, coalescing requests that arrive while it waits or works. [`CacheWriter::finish`]
/// makes the last requested write before the process exits.
pub(crate) struct CacheWriter {
    state: Arc<(Mutex<WriterState>, Condvar)>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl CacheWriter {
    /// Starts the writer for the cache at `path`, sealing the keys of `registry`; `on_write` is called after
    /// each write attempt.
    pub fn start(
        path: PathBuf,
        registry: Arc<KeyRegistry>,
        on_write: impl Fn() + Send + 'static,
    ) -> std::io::Result<Self> {
        let state: Arc<(Mutex<WriterState>, Condvar)> = Arc::default();
        let shared = state.clone();
        let thread = std::thread::Builder::new()
            .name("key-cache-writer".into())
            .spawn(move || {
                super::decrypt::lower_thread_priority();
                while wait_for_request(&shared) {
                    let started = std::time::Instant::now();
                    match write(&path, &registry.list()) {
                        Ok(()) => tracing::info!(
                            cache = %path.display(),
                            seconds = started.elapsed().as_secs_f64(),
                            "key cache updated"
                        ),
                        Err(e) => {
                            tracing::warn!(cache = %path.display(), "key cache not updated: {e}")
                        }
                    }
                    on_write();
                }
            })?;
        Ok(Self {
            state,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Asks for the cache to be rewritten from the keys as they are when the write starts.
    pub fn request(&self) {
        let (lock, wake) = &*self.state;
        lock.lock().unwrap_or_else(|e| e.into_inner()).requested = true;
        wake.notify_one();
    }

    fn stop(&self) {
        let (lock, wake) = &*self.state;
        lock.lock().unwrap_or_else(|e| e.into_inner()).stopped = true;
        wake.notify_one();
    }

    /// Stops the writer after the write still requested, if any, and waits for it (blocking: call it from
    /// a blocking thread).
    pub fn finish(&self) {
        self.stop();
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for CacheWriter {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Blocks until a write is requested (then lets the burst settle, unless the writer is stopping, and takes
/// every request made so far); `false` once the writer is stopped with nothing left to write.
fn wait_for_request(shared: &(Mutex<WriterState>, Condvar)) -> bool {
    let (lock, wake) = shared;
    let mut state = lock.lock().unwrap_or_else(|e| e.into_inner());
    while !state.requested && !state.stopped {
        state = wake.wait(state).unwrap_or_else(|e| e.into_inner());
    }
    if !state.requested {
        return false;
    }
    if !state.stopped {
        drop(state);
        std::thread::sleep(SETTLE);
        state = lock.lock().unwrap_or_else(|e| e.into_inner());
    }
    state.requested = false;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strongest_kdf_prefers_scrypt_then_cost() {
        let kdfs = [
            KdfParams::Pbkdf2 { c: 1 << 18 },
            KdfParams::Scrypt {
                log2_n: 14,
                r: 8,
                p: 1,
            },
            KdfParams::Scrypt {
                log2_n: 18,
                r: 8,
                p: 1,
            },
            KdfParams::Pbkdf2 { c: 1 << 20 },
        ];
        assert_eq!(strongest(kdfs.into_iter()), Kdf::Scrypt { log2_n: 18 });
        assert_eq!(
            strongest([KdfParams::Pbkdf2 { c: 16 }, KdfParams::Pbkdf2 { c: 32 }].into_iter()),
            Kdf::Pbkdf2 { c: 32 }
        );
    }

    #[test]
    fn passphrase_depends_on_every_password_and_fingerprint() {
        let a = passphrase(&[([1; 32], "x"), ([2; 32], "y")]);
        assert_ne!(*a, *passphrase(&[([1; 32], "x"), ([2; 32], "z")]));
        assert_ne!(*a, *passphrase(&[([1; 32], "x"), ([3; 32], "y")]));
        assert_ne!(*a, *passphrase(&[([1; 32], "xy"), ([2; 32], "")]));
        assert_eq!(*a, *passphrase(&[([1; 32], "x"), ([2; 32], "y")]));
    }
}
