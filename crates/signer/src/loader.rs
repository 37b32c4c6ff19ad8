//! Finding keystores on disk and decrypting them in parallel with memory bounded.
//!
//! scrypt with the EIP-2335 default parameters needs 256 MiB per decryption, so the number of decryptions
//! running at once is the smaller of the core count and what the available memory allows. Keys whose
//! keystore is unchanged since the key cache was written come from the cache instead.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use std::collections::HashMap;

use ferrosigner_bls::SecretKey;
use ferrosigner_keystore::Keystore;
use rayon::prelude::*;
use zeroize::Zeroizing;

use crate::key_cache::{self, CacheMaterial};
use crate::keys::{KeyEntry, KeySource};

/// Where the password of each keystore in a directory comes from.
#[derive(Debug, Clone)]
pub enum Passwords {
    /// `<dir>/<keystore file stem>.txt` for each keystore.
    Directory(PathBuf),
    /// One file holding the password of every keystore.
    File(PathBuf),
}

/// A keystore that could not be loaded, by file name and reason (never containing a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadFailure {
    /// The keystore file.
    pub file: PathBuf,
    /// Why it failed.
    pub reason: String,
}

/// The result of loading one directory.
#[derive(Debug, Default)]
pub struct LoadOutcome {
    /// Keys decrypted and checked.
    pub loaded: Vec<KeyEntry>,
    /// Keystores that failed, with reasons.
    pub failed: Vec<LoadFailure>,
}

/// The keystore files (`*.json`, not hidden) directly inside `dir`, sorted.
pub fn keystore_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_file() && name.ends_with(".json") && !name.starts_with('.') {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Reads a password file: the content without trailing line breaks.
pub fn read_password(path: &Path) -> std::io::Result<Zeroizing<String>> {
    let mut text = Zeroizing::new(std::fs::read_to_string(path)?);
    while text.ends_with('\n') || text.ends_with('\r') {
        text.pop();
    }
    Ok(text)
}

/// How many decryptions may run at once: cores, bounded by available memory at 256 MiB per scrypt with
/// room to spare.
pub fn decrypt_parallelism() -> usize {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let by_memory = available_memory_bytes()
        .map(|m| (m / (384 << 20)) as usize)
        .unwrap_or(cores);
    cores.min(by_memory).max(1)
}

fn available_memory_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// One keystore file and how to decrypt it.
pub struct Job {
    /// The keystore file.
    pub file: PathBuf,
    /// The password file to read.
    pub password_file: PathBuf,
    /// What kind of key it becomes.
    pub managed: bool,
}

/// The jobs for every keystore in `dir` with passwords from `passwords` (external, read-only keys).
pub fn external_jobs(dir: &Path, passwords: &Passwords) -> std::io::Result<Vec<Job>> {
    Ok(keystore_files(dir)?
        .into_iter()
        .map(|file| {
            let password_file = match passwords {
                Passwords::File(f) => f.clone(),
                Passwords::Directory(d) => d.join(format!("{}.txt", stem(&file))),
            };
            Job {
                file,
                password_file,
                managed: false,
            }
        })
        .collect())
}

/// The jobs for managed keys: `<dir>/<pubkey>.json` with `<dir>/<pubkey>.txt` beside it.
pub fn managed_jobs(dir: &Path) -> std::io::Result<Vec<Job>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    Ok(keystore_files(dir)?
        .into_iter()
        .map(|file| {
            let password_file = file.with_extension("txt");
            Job {
                file,
                password_file,
                managed: true,
            }
        })
        .collect())
}

fn stem(file: &Path) -> String {
    file.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A keystore read from disk and parsed, not yet decrypted.
struct ReadJob<'a> {
    job: &'a Job,
    keystore: Keystore,
    material: CacheMaterial,
}

fn read_job(job: &Job) -> Result<ReadJob<'_>, String> {
    let bytes = std::fs::read(&job.file).map_err(|e| format!("cannot read keystore: {e}"))?;
    let password = read_password(&job.password_file).map_err(|e| {
        format!(
            "cannot read password file {}: {e}",
            job.password_file.display()
        )
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|_| "keystore is not UTF-8 text".to_owned())?;
    let keystore = Keystore::from_json(text).map_err(|e| e.to_string())?;
    let material = CacheMaterial {
        fingerprint: key_cache::fingerprint(&bytes),
        password,
        kdf: keystore.kdf(),
    };
    Ok(ReadJob {
        job,
        keystore,
        material,
    })
}

fn entry(read: ReadJob<'_>, secret: SecretKey) -> KeyEntry {
    let job = read.job;
    let source = if job.managed {
        KeySource::Managed {
            keystore: job.file.clone(),
        }
    } else {
        KeySource::External {
            keystore: job.file.clone(),
        }
    };
    KeyEntry {
        public: secret.public_key(),
        secret,
        derivation_path: read.keystore.path().to_owned(),
        source,
        cache: Some(read.material),
    }
}

/// How the key cache served a loading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheUse {
    /// Keys taken from the cache.
    pub hits: usize,
    /// Keys that had to be decrypted from their keystore.
    pub decrypted: usize,
    /// Whether the cache file should be rewritten (it was missing, stale, or did not cover every key).
    pub stale: bool,
}

/// Decrypts every job, at most `parallelism` at once (further bounded by the memory each keystore's KDF
/// needs), calling `progress(done, total)` after each keystore. With `cache`, keys whose keystore is unchanged
/// since the cache was written come from the cache (one KDF for all of them). Failures are collected by file
/// name and reason; the rest still load.
pub fn load_all(
    jobs: &[Job],
    parallelism: usize,
    cache: Option<&Path>,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> (LoadOutcome, CacheUse) {
    let total = jobs.len();
    let done = AtomicUsize::new(0);
    let tick = || progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
    let mut outcome = LoadOutcome::default();
    let mut usage = CacheUse::default();

    let mut pending = Vec::with_capacity(jobs.len());
    for job in jobs {
        match read_job(job) {
            Ok(read) => pending.push(read),
            Err(reason) => {
                outcome.failed.push(LoadFailure {
                    file: job.file.clone(),
                    reason,
                });
                tick();
            }
        }
    }

    if let Some(path) = cache {
        let mut cached = if path.exists() {
            let passwords: HashMap<[u8; 32], &str> = pending
                .iter()
                .map(|r| (r.material.fingerprint, r.material.password.as_str()))
                .collect();
            match key_cache::read(path, &passwords) {
                Ok(secrets) => secrets,
                Err(reason) => {
                    tracing::info!(cache = %path.display(), %reason, "key cache not used; it will be rebuilt");
                    HashMap::new()
                }
            }
        } else {
            HashMap::new()
        };
        let mut rest = Vec::with_capacity(pending.len());
        for read in pending {
            match cached.remove(&read.material.fingerprint) {
                Some(secret) => {
                    outcome.loaded.push(entry(read, secret));
                    usage.hits += 1;
                    tick();
                }
                None => rest.push(read),
            }
        }
        pending = rest;
        usage.stale = !pending.is_empty() || !cached.is_empty() || !path.exists();
    }

    let memory_per_job = pending
        .iter()
        .map(|r| r.material.kdf.memory_bytes())
        .max()
        .unwrap_or(0);
    let threads = parallelism.min(memory_parallelism(memory_per_job)).max(1);
    usage.decrypted = pending.len();
    let decrypt = |read: ReadJob<'_>| {
        let result = read.keystore.decrypt(&read.material.password);
        tick();
        match result {
            Ok(secret) => Ok(entry(read, secret)),
            Err(e) => Err(LoadFailure {
                file: read.job.file.clone(),
                reason: e.to_string(),
            }),
        }
    };
    let results: Vec<_> = match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
        Ok(pool) => pool.install(|| pending.into_par_iter().map(decrypt).collect()),
        Err(_) => pending.into_iter().map(decrypt).collect(),
    };
    for r in results {
        match r {
            Ok(k) => outcome.loaded.push(k),
            Err(f) => outcome.failed.push(f),
        }
    }
    outcome.failed.sort_by(|a, b| a.file.cmp(&b.file));
    (outcome, usage)
}

/// How many KDF runs needing `bytes` each fit in the available memory, keeping a quarter of it free.
fn memory_parallelism(bytes: u64) -> usize {
    if bytes == 0 {
        return usize::MAX;
    }
    match available_memory_bytes() {
        Some(available) => ((available / 4 * 3) / (bytes + (16 << 20))).max(1) as usize,
        None => 1,
    }
}

/// Progress and result of the last key loading, for `/healthcheck` and logs.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Keystores found.
    pub total: usize,
    /// Keystores processed so far.
    pub done: usize,
    /// Keystores that failed.
    pub errors: usize,
    /// Keys taken from the key cache instead of being decrypted.
    pub from_cache: usize,
    /// The failures, by file and reason.
    pub failures: Vec<LoadFailure>,
}
