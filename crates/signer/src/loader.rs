//! Finding keystores on disk and decrypting them in parallel with memory bounded.
//!
//! scrypt with the EIP-2335 default parameters needs 256 MiB per decryption, so the number of decryptions
//! running at once is the smaller of the core count and what the available memory allows.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use ferrosigner_keystore::Keystore;
use rayon::prelude::*;
use zeroize::Zeroizing;

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

/// Decrypts one keystore file with its password.
pub fn load_one(job: &Job) -> Result<KeyEntry, String> {
    let text =
        std::fs::read_to_string(&job.file).map_err(|e| format!("cannot read keystore: {e}"))?;
    let password = read_password(&job.password_file).map_err(|e| {
        format!(
            "cannot read password file {}: {e}",
            job.password_file.display()
        )
    })?;
    let keystore = Keystore::from_json(&text).map_err(|e| e.to_string())?;
    let secret = keystore.decrypt(&password).map_err(|e| e.to_string())?;
    let public = secret.public_key();
    let source = if job.managed {
        KeySource::Managed {
            keystore: job.file.clone(),
        }
    } else {
        KeySource::External {
            keystore: job.file.clone(),
        }
    };
    Ok(KeyEntry {
        secret,
        public,
        derivation_path: keystore.path().to_owned(),
        source,
    })
}

/// Decrypts every job in parallel (at most `parallelism` at once), calling `progress(done, total)` after
/// each keystore. Failures are collected by file name and reason; the rest still load.
pub fn load_all(
    jobs: &[Job],
    parallelism: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> LoadOutcome {
    let total = jobs.len();
    let done = AtomicUsize::new(0);
    let run = || {
        jobs.par_iter()
            .map(|job| {
                let result = load_one(job).map_err(|reason| LoadFailure {
                    file: job.file.clone(),
                    reason,
                });
                progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
                result
            })
            .collect::<Vec<_>>()
    };
    let results = match rayon::ThreadPoolBuilder::new()
        .num_threads(parallelism.max(1))
        .build()
    {
        Ok(pool) => pool.install(run),
        Err(_) => run(),
    };
    let mut outcome = LoadOutcome::default();
    for r in results {
        match r {
            Ok(k) => outcome.loaded.push(k),
            Err(f) => outcome.failed.push(f),
        }
    }
    outcome
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
    /// The failures, by file and reason.
    pub failures: Vec<LoadFailure>,
}
