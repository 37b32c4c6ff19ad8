//! The one decryption routine used by start-up, Keymanager imports and reloads: keystores decrypted in
//! parallel, at most as many at once as the cores and the memory their KDFs declare allow, each result handed
//! on as soon as it is ready (so keys can sign while the others still decrypt).
//!
//! scrypt with the EIP-2335 parameters needs 256 MiB per run, and a keystore may declare up to 1 GiB; the
//! number of runs at once is sized for the largest KDF in the batch, keeping a quarter of the available
//! memory free. Decryption threads run at a lowered priority so that signing keeps the CPU it needs.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use ferrosigner_bls::SecretKey;
use ferrosigner_keystore::Keystore;
use rayon::prelude::*;
use zeroize::Zeroizing;

/// How urgently a batch is decrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Urgency {
    /// Start-up: every core (at lowered priority, so the keys already loaded still sign first).
    Startup,
    /// Import or reload while signing: one core is left to signing where there is more than one.
    Background,
}

/// Where a keystore's password is.
pub(crate) enum Password {
    /// Given with the request.
    Given(Zeroizing<String>),
    /// In this file, read by the decryption thread.
    File(PathBuf),
}

/// One keystore to decrypt, with its password and whatever the caller needs back (`tag`).
pub(crate) struct Encrypted<T> {
    /// The parsed keystore.
    pub keystore: Keystore,
    /// Its password.
    pub password: Password,
    /// The caller's data, handed back with the result.
    pub tag: T,
}

/// A decrypted key with the password that opened it, or why it could not be decrypted (never a secret).
pub(crate) type Outcome = Result<(SecretKey, Zeroizing<String>), String>;

/// Bytes reserved per KDF run beyond what the KDF itself declares (buffers, the thread's stack).
const OVERHEAD_PER_RUN: u64 = 16 << 20;

/// How many decryptions may run at once: `cores`, bounded so that runs needing `kdf_bytes` each fit in three
/// quarters of `available` memory. With the available memory unknown and a KDF that needs memory, one.
pub(crate) fn thread_budget(cores: usize, available: Option<u64>, kdf_bytes: u64) -> usize {
    let cores = cores.max(1);
    if kdf_bytes == 0 {
        return cores;
    }
    match available {
        Some(available) => {
            let by_memory = (available / 4 * 3) / (kdf_bytes + OVERHEAD_PER_RUN);
            cores
                .min(usize::try_from(by_memory).unwrap_or(usize::MAX))
                .max(1)
        }
        None => 1,
    }
}

/// The memory available to new allocations (Linux `MemAvailable`), if known.
fn available_memory_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Decrypts every item, calling `done(tag, result)` from a decryption thread as each one finishes. Blocks
/// until all are done: call it from a blocking thread. Once `stop` is set, the items not started yet are
/// skipped (`done` is not called for them), so a shutdown waits for at most one decryption per thread.
pub(crate) fn decrypt_each<T: Send>(
    items: Vec<Encrypted<T>>,
    urgency: Urgency,
    stop: &AtomicBool,
    done: impl Fn(T, Outcome) + Sync,
) {
    if items.is_empty() {
        return;
    }
    let kdf_bytes = items
        .iter()
        .map(|item| item.keystore.kdf().memory_bytes())
        .max()
        .unwrap_or(0);
    let cores = match urgency {
        Urgency::Startup => cores(),
        Urgency::Background => cores().saturating_sub(1),
    };
    let threads = thread_budget(cores, available_memory_bytes(), kdf_bytes).min(items.len());
    let decrypt = |item: Encrypted<T>| {
        if stop.load(Ordering::Acquire) {
            return;
        }
        let password = match item.password {
            Password::Given(password) => Ok(password),
            Password::File(file) => super::source::read_password(&file)
                .map_err(|e| format!("cannot read password file {}: {e}", file.display())),
        };
        let result = password.and_then(|password| {
            item.keystore
                .decrypt(&password)
                .map(|secret| (secret, password))
                .map_err(|e| e.to_string())
        });
        done(item.tag, result);
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("key-decrypt-{i}"))
        .start_handler(|_| lower_thread_priority())
        .build();
    match pool {
        Ok(pool) => pool.install(|| items.into_par_iter().for_each(decrypt)),
        Err(e) => {
            tracing::warn!("no decryption threads ({e}); decrypting on one thread");
            items.into_iter().for_each(decrypt);
        }
    }
}

/// Makes the calling thread yield the CPU to signing threads (Linux: per-thread nice value). Only for
/// threads this crate owns: a thread borrowed from a shared pool would keep the lowered priority.
pub(crate) fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority with PRIO_PROCESS and who = 0 changes only the calling thread's nice value on Linux.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn the_budget_follows_the_largest_kdf_declared() {
        // 4 GiB available: three default scrypt runs (256 MiB) fit easily, so the cores bound it.
        assert_eq!(thread_budget(8, Some(4 * GIB), 256 << 20), 8);
        // A keystore declaring 1 GiB: three quarters of 4 GiB hold two runs, not eight.
        assert_eq!(thread_budget(8, Some(4 * GIB), GIB), 2);
        // Less memory than one run needs still decrypts, one at a time.
        assert_eq!(thread_budget(8, Some(GIB / 2), GIB), 1);
        // PBKDF2 needs no memory to speak of.
        assert_eq!(thread_budget(3, Some(0), 0), 3);
        // Unknown memory: one at a time.
        assert_eq!(thread_budget(8, None, 256 << 20), 1);
        assert_eq!(thread_budget(0, Some(4 * GIB), 0), 1);
    }
}
