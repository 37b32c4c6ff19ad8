//! Health policy: what `/healthcheck` reports and when the signer is DOWN.
//!
//! The signer is UP when start-up key loading has finished, every configured key source could be read (one
//! bad keystore or document does not count; a directory that cannot be listed or a Vault that does not
//! answer does), and the slashing database can commit (a
//! small write, within the database deadline, see [`Signer::probe_database`]). A database fault turns it
//! DOWN; [`watch_database`] keeps probing while a fault lasts, so it turns UP again (and the recovery
//! is logged) by itself, even when no request arrives. The HTTP handler only renders the report.

use std::sync::Arc;
use std::time::Duration;

use crate::keys::SourceKind;
use crate::signing::Signer;

/// How often a faulted database is probed.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// The state of the signer's parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    /// Key loading.
    pub keys: KeysHealth,
    /// The slashing database.
    pub database: DatabaseHealth,
}

/// How far key loading has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeysHealth {
    /// Keys that sign now.
    pub loaded: usize,
    /// Keystores that failed to load.
    pub errors: usize,
    /// Keys loaded from the key cache.
    pub from_cache: usize,
    /// Whether start-up loading has finished.
    pub finished: bool,
    /// Keystores found.
    pub found: usize,
    /// Keystores processed so far.
    pub processed: usize,
    /// Each configured kind of key source, with its own counts. A source's errors are reported (its
    /// sub-check is DOWN) but do not turn the signer DOWN, since the keys that did load sign; a source that
    /// could not be read at all does.
    pub sources: Vec<SourceHealth>,
}

/// Key loading of one kind of key source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceHealth {
    /// Which kind.
    pub kind: SourceKind,
    /// Its keys that sign now.
    pub loaded: usize,
    /// Its keys, files or documents that failed to load (at start-up, or at the last reload).
    pub errors: usize,
    /// Whether the source could not be read at all (a directory not listed, Vault not answering or
    /// refusing the login): none of its keys is known.
    pub unreadable: bool,
}

/// The slashing database's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseHealth {
    /// Slashing protection is off.
    Disabled,
    /// It committed a probe within the deadline.
    Up,
    /// It did not; why.
    Down(String),
}

impl HealthReport {
    /// Whether the signer is UP: keys loaded, every configured key source read, the database committing.
    pub fn up(&self) -> bool {
        self.keys.finished
            && !self.keys.sources.iter().any(|s| s.unreadable)
            && !matches!(self.database, DatabaseHealth::Down(_))
    }
}

/// Checks every part now (the database with one probe).
pub async fn check(signer: &Signer) -> HealthReport {
    let load = signer.keys().load_state();
    let loaded = signer.keys().count_by_source();
    let sources = load
        .sources
        .iter()
        .map(|kind| SourceHealth {
            kind: *kind,
            loaded: loaded.get(kind).copied().unwrap_or(0),
            errors: load.failures.iter().filter(|f| f.kind == *kind).count(),
            unreadable: load
                .failures
                .iter()
                .any(|f| f.kind == *kind && f.file.as_os_str().is_empty()),
        })
        .collect();
    let keys = KeysHealth {
        loaded: signer.keys().len(),
        errors: load.failures.len(),
        from_cache: load.from_cache,
        finished: load.finished,
        found: load.total,
        processed: load.done,
        sources,
    };
    let database = match signer.slashing() {
        None => DatabaseHealth::Disabled,
        Some(_) => match signer.probe_database().await {
            Ok(()) => DatabaseHealth::Up,
            Err(e) => DatabaseHealth::Down(e.to_string()),
        },
    };
    HealthReport { keys, database }
}

/// Probes the database every `interval` while it is in a fault, until `shutdown`.
pub async fn watch_database(
    signer: Arc<Signer>,
    interval: Duration,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    crate::every(interval, shutdown, || async {
        if signer.database_faulted() {
            let _ = signer.probe_database().await;
        }
    })
    .await
}
