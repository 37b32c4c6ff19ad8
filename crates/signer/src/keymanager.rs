//! Adding and removing keys at run time: Keymanager API imports and deletions, and `/reload` of the external
//! keystore directory.
//!
//! Imports and deletions are serialised by one lock; signing never waits for it. An import decrypts off the
//! async workers at lowered priority, applies the slashing history for exactly the keys it imports before
//! they can sign, writes each key atomically to `<data-dir>/keystores`, then registers it. A deletion removes
//! the key from the registry, disables it in the slashing database, deletes its files, and only then exports
//! its history, so no signature can be produced after the export is taken.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use ferrosigner_bls::{PUBLIC_KEY_LEN, PublicKey};
use ferrosigner_keystore::Keystore;
use rayon::prelude::*;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::key_cache::CacheMaterial;
use crate::keys::{KeyEntry, KeySource};
use crate::loader::{self, Passwords};
use crate::signing::Signer;

/// Outcome of importing one keystore, as the Keymanager API reports it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ImportStatus {
    /// `imported`, `duplicate` or `error`.
    pub status: &'static str,
    /// Why, for `error` (and a note for `duplicate`).
    pub message: String,
}

/// Outcome of deleting one key, as the Keymanager API reports it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DeleteStatus {
    /// `deleted`, `not_active`, `not_found` or `error`.
    pub status: &'static str,
    /// Why, for `error`.
    pub message: String,
}

/// Errors that fail a whole Keymanager call (400 or 503); per-key problems are statuses instead.
#[derive(Debug, thiserror::Error)]
pub enum KeymanagerError {
    /// The request is malformed (400); nothing changed.
    #[error("{0}")]
    BadRequest(String),
    /// The slashing database failed (503 for import, deletion statuses become `error`); nothing changed.
    #[error("slashing protection database: {0}")]
    Database(String),
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

/// State of `/reload`.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadStatus {
    /// `idle`, `running`, `completed`, `completed_with_errors` or `failed`.
    pub status: &'static str,
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

/// The key manager: owns the managed-key directory and the external directory's reloads.
pub struct KeyManager {
    signer: Arc<Signer>,
    managed_dir: PathBuf,
    external: Option<(PathBuf, Passwords)>,
    lock: tokio::sync::Mutex<()>,
    reload: Mutex<ReloadStatus>,
    cache_file: Option<PathBuf>,
    cache_writer: Arc<Mutex<()>>,
}

impl KeyManager {
    /// A key manager storing imported keys under `data_dir/keystores`, keeping the key cache at `cache_file`
    /// (none: no cache).
    pub fn new(
        signer: Arc<Signer>,
        data_dir: &Path,
        external: Option<(PathBuf, Passwords)>,
        cache_file: Option<PathBuf>,
    ) -> Self {
        Self {
            cache_file,
            cache_writer: Arc::default(),
            signer,
            managed_dir: data_dir.join("keystores"),
            external,
            lock: tokio::sync::Mutex::new(()),
            reload: Mutex::new(ReloadStatus {
                status: "idle",
                last_operation_time: None,
                last_error: None,
                added: 0,
                removed: 0,
            }),
        }
    }

    /// The signing service.
    pub fn signer(&self) -> &Arc<Signer> {
        &self.signer
    }

    /// The key cache file, when the cache is enabled.
    pub fn cache_file(&self) -> Option<&Path> {
        self.cache_file.as_deref()
    }

    /// Rewrites the key cache from the loaded keys, in the background at lowered priority (one KDF run).
    /// Writes are serialised; each one seals the registry as it is when the write starts.
    pub fn refresh_key_cache(&self) {
        let Some(path) = self.cache_file.clone() else {
            return;
        };
        let signer = self.signer.clone();
        let writer = self.cache_writer.clone();
        tokio::task::spawn_blocking(move || {
            let _one_at_a_time = writer.lock().unwrap_or_else(|e| e.into_inner());
            lower_thread_priority();
            let started = std::time::Instant::now();
            match crate::key_cache::write(&path, &signer.keys().list()) {
                Ok(()) => tracing::info!(
                    cache = %path.display(),
                    seconds = started.elapsed().as_secs_f64(),
                    "key cache updated"
                ),
                Err(e) => tracing::warn!(cache = %path.display(), "key cache not updated: {e}"),
            }
        });
    }

    /// Every loaded key.
    pub fn list(&self) -> Vec<KeyListing> {
        self.signer
            .keys()
            .list()
            .iter()
            .map(|k| KeyListing {
                validating_pubkey: k.public.to_hex(),
                derivation_path: k.derivation_path.clone(),
                readonly: k.source.readonly(),
            })
            .collect()
    }

    /// Imports keystores (JSON texts) with their passwords and an optional EIP-3076 history.
    pub async fn import(
        &self,
        keystores: Vec<String>,
        passwords: Vec<Zeroizing<String>>,
        slashing_protection: Option<String>,
    ) -> Result<Vec<ImportStatus>, KeymanagerError> {
        if keystores.len() != passwords.len() {
            return Err(KeymanagerError::BadRequest(format!(
                "{} keystores but {} passwords",
                keystores.len(),
                passwords.len()
            )));
        }
        let _guard = self.lock.lock().await;

        // Decrypt off the async workers, at lowered priority so that signing keeps its cores.
        let jobs: Vec<(String, Zeroizing<String>)> = keystores.into_iter().zip(passwords).collect();
        let decrypted = tokio::task::spawn_blocking(move || decrypt_batch(jobs))
            .await
            .map_err(|e| KeymanagerError::Database(format!("decryption stopped: {e}")))?;

        // Decide each key's fate in request order.
        let mut statuses = Vec::with_capacity(decrypted.len());
        let mut candidates: Vec<(usize, Decrypted)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, result) in decrypted.into_iter().enumerate() {
            match result {
                Err(message) => statuses.push(ImportStatus {
                    status: "error",
                    message,
                }),
                Ok(d) => {
                    let pk = *d.entry.public.as_bytes();
                    if self.signer.keys().get(&pk).is_some() || !seen.insert(pk) {
                        statuses.push(ImportStatus {
                            status: "duplicate",
                            message: String::new(),
                        });
                    } else {
                        statuses.push(ImportStatus {
                            status: "imported",
                            message: String::new(),
                        });
                        candidates.push((i, d));
                    }
                }
            }
        }

        // The history for exactly these keys goes in first (all or nothing), and the keys are enabled.
        if let Some(db) = self.signer.slashing() {
            let pubkeys: Vec<[u8; PUBLIC_KEY_LEN]> = candidates
                .iter()
                .map(|(_, d)| *d.entry.public.as_bytes())
                .collect();
            if let Some(interchange) = slashing_protection
                .as_deref()
                .filter(|s| !s.trim().is_empty())
            {
                db.import_interchange(interchange, Some(&pubkeys))
                    .await
                    .map_err(|e| match e {
                        ferrosigner_slashing::Error::Unavailable(e) => KeymanagerError::Database(e),
                        other => {
                            KeymanagerError::BadRequest(format!("slashing_protection: {other}"))
                        }
                    })?;
            }
            for pk in &pubkeys {
                db.set_enabled(pk, true)
                    .await
                    .map_err(|e| KeymanagerError::Database(e.to_string()))?;
            }
        } else if slashing_protection.is_some() {
            tracing::warn!(
                "slashing_protection given with an import while slashing protection is disabled: ignored"
            );
        }

        // Persist, then register.
        if !candidates.is_empty() {
            crate::create_private_dir(&self.managed_dir).map_err(|e| {
                KeymanagerError::Database(format!("creating {}: {e}", self.managed_dir.display()))
            })?;
        }
        for (i, mut d) in candidates {
            let stem = d.entry.public.to_hex();
            let keystore_file = self.managed_dir.join(format!("{stem}.json"));
            let password_file = self.managed_dir.join(format!("{stem}.txt"));
            let written = crate::write_file_atomic(&password_file, d.password.as_bytes(), 0o600)
                .and_then(|()| crate::write_file_atomic(&keystore_file, d.json.as_bytes(), 0o600));
            if let Err(e) = written {
                let _ = std::fs::remove_file(&password_file);
                statuses[i] = ImportStatus {
                    status: "error",
                    message: format!("cannot store the keystore: {e}"),
                };
                continue;
            }
            d.entry.source = KeySource::Managed {
                keystore: keystore_file,
            };
            let public = d.entry.public;
            self.signer.keys().insert(d.entry);
            tracing::info!(pubkey = %public, "key imported");
        }
        self.signer
            .metrics()
            .keys_loaded
            .set(self.signer.keys().len() as i64);
        if statuses.iter().any(|s| s.status == "imported") {
            self.refresh_key_cache();
        }
        Ok(statuses)
    }

    /// Deletes keys; returns per-key statuses and the EIP-3076 history of the deleted and inactive keys.
    pub async fn delete(&self, pubkeys: &[String]) -> (Vec<DeleteStatus>, String) {
        let _guard = self.lock.lock().await;
        let mut statuses = Vec::with_capacity(pubkeys.len());
        let mut export: Vec<[u8; PUBLIC_KEY_LEN]> = Vec::new();
        for text in pubkeys {
            let status = self.delete_one(text, &mut export).await;
            statuses.push(status);
        }
        if statuses.iter().any(|s| s.status == "deleted") {
            self.refresh_key_cache();
        }
        let interchange = match self.signer.slashing() {
            Some(db) => match db.export_interchange(Some(&export)).await {
                Ok(json) => json,
                // Nothing was ever recorded in this database, so there is no history to hand over.
                Err(ferrosigner_slashing::Error::NoGenesisValidatorsRoot) => {
                    empty_interchange(self.signer.network().genesis_validators_root())
                }
                Err(e) => {
                    tracing::error!("exporting slashing history of deleted keys failed: {e}");
                    for s in statuses
                        .iter_mut()
                        .filter(|s| s.status == "deleted" || s.status == "not_active")
                    {
                        *s = DeleteStatus {
                            status: "error",
                            message: format!(
                                "key disabled, but its slashing history could not be exported: {e}"
                            ),
                        };
                    }
                    String::new()
                }
            },
            None => empty_interchange(self.signer.network().genesis_validators_root()),
        };
        (statuses, interchange)
    }

    async fn delete_one(&self, text: &str, export: &mut Vec<[u8; PUBLIC_KEY_LEN]>) -> DeleteStatus {
        let error = |message: String| DeleteStatus {
            status: "error",
            message,
        };
        let Ok(public) = PublicKey::from_hex(text) else {
            return error(format!(
                "`{}` is not a valid public key",
                text.chars().take(100).collect::<String>()
            ));
        };
        let pk = *public.as_bytes();
        match self.signer.keys().get(&pk) {
            Some(entry) if entry.source.readonly() => {
                error("read-only key from an external directory".into())
            }
            Some(entry) => {
                self.signer.keys().remove(&pk);
                self.signer
                    .metrics()
                    .keys_loaded
                    .set(self.signer.keys().len() as i64);
                if let Some(db) = self.signer.slashing()
                    && let Err(e) = db.set_enabled(&pk, false).await
                {
                    // The key is out of the registry, so this instance cannot sign with it; report the failure.
                    tracing::error!(pubkey = %public, "disabling a deleted key in the slashing database failed: {e}");
                    return error(format!(
                        "removed, but not disabled in the slashing database: {e}"
                    ));
                }
                let keystore = entry.source.keystore();
                let _ = std::fs::remove_file(keystore.with_extension("txt"));
                if let Err(e) = std::fs::remove_file(keystore)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    tracing::error!(pubkey = %public, "removing {} failed: {e}", keystore.display());
                }
                tracing::info!(pubkey = %public, "key deleted");
                export.push(pk);
                DeleteStatus {
                    status: "deleted",
                    message: String::new(),
                }
            }
            None => {
                let history = match self.signer.slashing() {
                    Some(db) => match db.has_history(&pk).await {
                        Ok(h) => h,
                        Err(e) => return error(format!("slashing protection database: {e}")),
                    },
                    None => false,
                };
                if history {
                    export.push(pk);
                    DeleteStatus {
                        status: "not_active",
                        message: String::new(),
                    }
                } else {
                    DeleteStatus {
                        status: "not_found",
                        message: String::new(),
                    }
                }
            }
        }
    }

    /// Decrypts the start-up keystores off the async workers (from the key cache where it is current),
    /// registers them, marks the signer ready, then rewrites the key cache if it was stale.
    pub async fn load_startup(self: Arc<Self>, jobs: Vec<loader::Job>) {
        // Imports, deletions and reloads wait until the start-up keys are in.
        let _guard = self.lock.lock().await;
        let signer = self.signer.clone();
        let total = jobs.len();
        signer.update_load_report(|r| {
            *r = loader::LoadReport {
                total,
                ..Default::default()
            }
        });
        let parallelism = loader::decrypt_parallelism();
        tracing::info!(keystores = total, parallelism, "loading keys");
        let started = std::time::Instant::now();
        let task_signer = signer.clone();
        let cache_file = self.cache_file().map(Path::to_path_buf);
        let outcome = tokio::task::spawn_blocking(move || {
            let step = (total / 20).max(1);
            loader::load_all(&jobs, parallelism, cache_file.as_deref(), &|done, total| {
                task_signer.update_load_report(|r| r.done = done);
                if done % step == 0 || done == total {
                    tracing::info!(done, total, "loading keys");
                }
            })
        })
        .await;
        let (outcome, cache_use) = match outcome {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::error!("key loading stopped: {e}");
                return;
            }
        };
        for failure in &outcome.failed {
            tracing::error!(keystore = %failure.file.display(), reason = %failure.reason, "keystore not loaded");
        }
        let mut duplicates = 0;
        for entry in outcome.loaded {
            if !signer.keys().insert(entry) {
                duplicates += 1;
            }
        }
        let loaded = signer.keys().len();
        signer.metrics().keys_loaded.set(loaded as i64);
        signer.update_load_report(|r| {
            r.done = total;
            r.errors = outcome.failed.len();
            r.from_cache = cache_use.hits;
            r.failures = outcome.failed;
        });
        signer.set_keys_ready();
        tracing::info!(
            loaded,
            failed = signer.load_report().errors,
            duplicates,
            from_cache = cache_use.hits,
            decrypted = cache_use.decrypted,
            seconds = started.elapsed().as_secs_f64(),
            "keys loaded"
        );
        if cache_use.stale {
            self.refresh_key_cache();
        }
    }

    /// The state of the last or current reload.
    pub fn reload_status(&self) -> ReloadStatus {
        self.reload
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Starts a reload in the background; `false` if one is already running.
    pub fn start_reload(self: &Arc<Self>) -> bool {
        {
            let mut status = self.reload.lock().unwrap_or_else(|e| e.into_inner());
            if status.status == "running" {
                return false;
            }
            status.status = "running";
        }
        let this = self.clone();
        tokio::spawn(async move {
            let result = this.reload_external().await;
            let mut status = this.reload.lock().unwrap_or_else(|e| e.into_inner());
            status.last_operation_time = Some(rfc3339(SystemTime::now()));
            match result {
                Ok((added, removed, errors)) => {
                    status.added = added;
                    status.removed = removed;
                    status.status = if errors.is_empty() {
                        "completed"
                    } else {
                        "completed_with_errors"
                    };
                    status.last_error = errors.last().cloned();
                }
                Err(e) => {
                    status.status = "failed";
                    status.last_error = Some(e);
                }
            }
        });
        true
    }

    /// Re-scans the external directory: loads keystores not yet loaded, drops keys whose file is gone.
    async fn reload_external(&self) -> Result<(usize, usize, Vec<String>), String> {
        let _guard = self.lock.lock().await;
        let Some((dir, passwords)) = &self.external else {
            return Ok((0, 0, Vec::new()));
        };
        let jobs = loader::external_jobs(dir, passwords)
            .map_err(|e| format!("reading {}: {e}", dir.display()))?;
        let present: std::collections::HashSet<PathBuf> =
            jobs.iter().map(|j| j.file.clone()).collect();
        let loaded: std::collections::HashSet<PathBuf> = self
            .signer
            .keys()
            .list()
            .iter()
            .filter(|k| k.source.readonly())
            .map(|k| k.source.keystore().to_path_buf())
            .collect();
        let removed = self
            .signer
            .keys()
            .remove_where(|k| k.source.readonly() && !present.contains(k.source.keystore()))
            .len();
        let new_jobs: Vec<_> = jobs
            .into_iter()
            .filter(|j| !loaded.contains(&j.file))
            .collect();
        let (outcome, _) = tokio::task::spawn_blocking(move || {
            loader::load_all(&new_jobs, background_parallelism(), None, &|_, _| {})
        })
        .await
        .map_err(|e| e.to_string())?;
        let mut errors: Vec<String> = outcome
            .failed
            .iter()
            .map(|f| format!("{}: {}", f.file.display(), f.reason))
            .collect();
        let mut added = 0;
        for entry in outcome.loaded {
            let public = entry.public;
            if self.signer.keys().insert(entry) {
                added += 1;
            } else {
                errors.push(format!("{public}: already loaded from another keystore"));
            }
        }
        self.signer
            .metrics()
            .keys_loaded
            .set(self.signer.keys().len() as i64);
        if added > 0 || removed > 0 {
            self.refresh_key_cache();
        }
        tracing::info!(added, removed, errors = errors.len(), "reload finished");
        Ok((added, removed, errors))
    }
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

struct Decrypted {
    entry: KeyEntry,
    json: String,
    password: Zeroizing<String>,
}

/// Threads for background decryption: leave a core to signing where there is more than one.
fn background_parallelism() -> usize {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    loader::decrypt_parallelism()
        .min(cores.saturating_sub(1))
        .max(1)
}

fn decrypt_batch(jobs: Vec<(String, Zeroizing<String>)>) -> Vec<Result<Decrypted, String>> {
    let decrypt = |(json, password): (String, Zeroizing<String>)| -> Result<Decrypted, String> {
        let keystore = Keystore::from_json(&json).map_err(|e| format!("invalid keystore: {e}"))?;
        let secret = keystore.decrypt(&password).map_err(|e| e.to_string())?;
        let public = secret.public_key();
        let entry = KeyEntry {
            secret,
            public,
            derivation_path: keystore.path().to_owned(),
            source: KeySource::Managed {
                keystore: PathBuf::new(),
            },
            // The stored file holds exactly these bytes, so the fingerprint matches at the next start.
            cache: Some(CacheMaterial {
                fingerprint: crate::key_cache::fingerprint(json.as_bytes()),
                password: password.clone(),
                kdf: keystore.kdf(),
            }),
        };
        Ok(Decrypted {
            entry,
            json,
            password,
        })
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(background_parallelism())
        .thread_name(|i| format!("key-import-{i}"))
        .start_handler(|_| lower_thread_priority())
        .build();
    match pool {
        Ok(pool) => pool.install(|| jobs.into_par_iter().map(decrypt).collect()),
        Err(_) => jobs.into_iter().map(decrypt).collect(),
    }
}

/// Makes the calling thread yield the CPU to signing threads (Linux: per-thread nice value).
fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority with PRIO_PROCESS and who = 0 changes only the calling thread's nice value on Linux.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
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
}
