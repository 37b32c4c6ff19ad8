//! EIP-3076 slashing protection for ferrosigner: the two stores.
//!
//! How the parts connect:
//! - The rules, refusals with evidence, watermark arithmetic and the interchange format live in
//!   the pure crate `ferrosigner-slashing-rules` (no I/O); this crate re-exports what callers use
//!   ([`rules`], [`interchange`], [`watermarks`], [`Refusal`], [`RefusalReason`], [`Safe`], …).
//!   Each store gathers a few facts with queries and lets the rules decide (PostgreSQL restates
//!   the same decision order in its server-side functions); the property tests check both
//!   stores, evidence included, against the brute-force model [`rules::History`].
//! - [`SlashingDb`] is the handle the signer uses. It dispatches to one of two stores:
//!   * SQLite (default, a file): one writer thread owns the connection and *group-commits*: it
//!     drains every pending request, decides each in order inside one transaction (each in its own
//!     savepoint), commits once (WAL, `synchronous=FULL`), and only then answers every request.
//!   * PostgreSQL (`postgres://…`): the schema is created/migrated at open; every check is one
//!     round trip to a server-side plpgsql function that takes a per-validator advisory
//!     transaction lock, decides, inserts and returns the verdict with its evidence, so several
//!     signer processes sharing one database never both sign conflicting messages.
//!     Connections use TLS (rustls) as libpq's `sslmode` and `sslrootcert` URL parameters say
//!     (`pg_tls`); [`describe_location`] shows the URL without its secrets.
//!
//! Batch signing checks one attestation for many validators in one transaction
//! ([`SlashingDb::check_attestations`]): on SQLite one writer job, on PostgreSQL one statement running
//! the same check function per key; each key gets its own verdict, and a failure records nothing.
//!
//! Every check is atomic check-and-record: `Ok` means the record is committed durably, so the
//! caller may sign. A refusal is [`Error::Refused`] with the conflicting record or watermark; a
//! store that cannot answer is [`Error::Unavailable`] (never a verdict of "safe").
//!
//! Value range: slots and epochs are stored as signed 64-bit integers on both backends, so values
//! of 2^63 or more are refused consistently ([`Error::ValueOutOfRange`] for checks,
//! [`Error::InvalidInterchange`] for imports). Such slots are centuries away.
//!
//! Watermarks: imports and pruning raise per-validator low watermarks (block slot, attestation
//! source and target); anything at or below them is refused. Import also keeps every imported
//! record, so export returns the complete stored history (plus one synthetic record carrying a
//! watermark when pruned rows no longer cover it). An operator may also set one global high
//! watermark ([`SlashingDb::set_high_watermark`]): nothing at or above it is signed, for any key.
//!
//! Pruning works in chunks of validators ([`DEFAULT_PRUNE_CHUNK`]), each chunk its own
//! transaction (on SQLite its own writer job), so a check waits for at most one chunk.
#![warn(missing_docs)]

mod pg_tls;
mod postgres;
mod sqlite;
mod stored;

use std::fmt;

pub use ferrosigner_slashing_rules::{
    HighWatermark, MAX_STORED_VALUE, Pubkey, Refusal, RefusalReason, Root, Safe, Watermarks,
    interchange, rules, watermarks,
};
pub use interchange::{ImportSummary, Interchange};
pub use sqlite::QUEUE_CAPACITY as SQLITE_QUEUE_CAPACITY;

/// How many validators one prune transaction covers unless told otherwise.
pub const DEFAULT_PRUNE_CHUNK: usize = 64;

/// Errors of the slashing database.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Signing would be slashable or is not allowed; the message must not be signed.
    #[error("slashing protection refused: {0}")]
    Refused(Refusal),
    /// The store cannot answer now (database down, connection lost, timeout, writer stopped, disk
    /// full, a damaged page): nothing was recorded by this request.
    #[error("slashing database unavailable: {0}")]
    Unavailable(String),
    /// Too many requests are already waiting for the store; this one was not queued and nothing
    /// was recorded.
    #[error("too many requests are waiting for the slashing database")]
    Busy,
    /// An interchange document is malformed or does not fit this database.
    #[error("invalid slashing protection interchange: {0}")]
    InvalidInterchange(String),
    /// A slot or epoch is 2^63 or more, which the stores do not hold.
    #[error("{what} {value} is out of range (must be below 2^63)")]
    ValueOutOfRange {
        /// Which value.
        what: &'static str,
        /// The value given.
        value: u64,
    },
    /// Export was asked before any genesis validators root was recorded.
    #[error("the slashing database has no genesis validators root yet")]
    NoGenesisValidatorsRoot,
    /// Opening the database failed (bad URL, path, permissions, schema newer than this program).
    #[error("cannot open slashing database: {0}")]
    Open(String),
    /// Any other database error.
    #[error("slashing database error: {0}")]
    Database(String),
}

impl From<ferrosigner_slashing_rules::Error> for Error {
    fn from(e: ferrosigner_slashing_rules::Error) -> Self {
        match e {
            ferrosigner_slashing_rules::Error::InvalidInterchange(msg) => {
                Error::InvalidInterchange(msg)
            }
            ferrosigner_slashing_rules::Error::Serialise(msg) => {
                Error::Database(format!("cannot serialise interchange: {msg}"))
            }
        }
    }
}

fn check_range(what: &'static str, value: u64) -> Result<(), Error> {
    if value > MAX_STORED_VALUE {
        Err(Error::ValueOutOfRange { what, value })
    } else {
        Ok(())
    }
}

/// What one check-and-record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// A block proposal at `slot`.
    Block {
        /// The block's slot.
        slot: u64,
    },
    /// An attestation from `source` to `target` (epochs).
    Attestation {
        /// The source epoch.
        source: u64,
        /// The target epoch.
        target: u64,
    },
}

impl Check {
    fn in_range(self) -> Result<(), Error> {
        match self {
            Check::Block { slot } => check_range("slot", slot),
            Check::Attestation { source, target } => {
                check_range("source epoch", source)?;
                check_range("target epoch", target)
            }
        }
    }
}

/// Where the verdict of [`SlashingDb::check_then`] goes.
pub trait Verdict: Send + 'static {
    /// Whether nobody waits for the verdict any more. A SQLite check whose verdict is abandoned
    /// when the writer reaches it is not run, so nothing is recorded for it.
    fn abandoned(&self) -> bool;
    /// Takes the final verdict: `Ok` once the record is committed durably, otherwise the refusal
    /// or the failure (nothing recorded). On SQLite this runs on the writer thread, so it must
    /// return at once: hand any longer work to another thread.
    fn deliver(self: Box<Self>, verdict: Result<Safe, Error>);
}

/// A handle to the slashing-protection database. Cheap to clone; all clones share one store.
#[derive(Clone)]
pub enum SlashingDb {
    /// SQLite file with a group-committing writer thread.
    Sqlite(sqlite::SqliteStore),
    /// PostgreSQL through a connection pool.
    Postgres(postgres::PgStore),
}

impl fmt::Debug for SlashingDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SlashingDb::Sqlite(_) => f.write_str("SlashingDb::Sqlite"),
            SlashingDb::Postgres(_) => f.write_str("SlashingDb::Postgres"),
        }
    }
}

/// Whether `location` names a PostgreSQL database (`postgres://…` or `postgresql://…`) rather than a
/// SQLite file.
pub fn is_postgres(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// A database location fit for logs and error messages: a SQLite path as is, a PostgreSQL URL as
/// `postgres://user@host:port/dbname` built from its parsed parts, followed by `?sslmode=…` when
/// the URL sets one, so that no password (whether in the user info or in a `?password=`
/// parameter) and no other parameter is ever shown.
pub fn describe_location(location: &str) -> String {
    if !is_postgres(location) {
        return location.to_owned();
    }
    let unparsable = || "postgres://(a URL that does not parse)".to_owned();
    let Ok((stripped, tls)) = pg_tls::split_url(location) else {
        return unparsable();
    };
    let Ok(cfg) = stripped.parse::<tokio_postgres::Config>() else {
        return unparsable();
    };
    let hosts: Vec<String> = cfg
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let name = match host {
                tokio_postgres::config::Host::Tcp(h) => h.clone(),
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
            };
            match cfg.get_ports().get(i).or(cfg.get_ports().first()) {
                Some(port) => format!("{name}:{port}"),
                None => name,
            }
        })
        .collect();
    let user = cfg.get_user().map(|u| format!("{u}@")).unwrap_or_default();
    let dbname = cfg.get_dbname().unwrap_or("");
    let sslmode = tls
        .mode
        .map(|m| format!("?sslmode={}", m.as_str()))
        .unwrap_or_default();
    format!("postgres://{user}{}/{dbname}{sslmode}", hosts.join(","))
}

impl SlashingDb {
    /// Opens (creating if needed) a store: `postgres://…` or `postgresql://…` selects PostgreSQL,
    /// anything else is a SQLite file path. The schema is created or migrated.
    pub async fn open(url_or_path: &str) -> Result<Self, Error> {
        if is_postgres(url_or_path) {
            Ok(SlashingDb::Postgres(
                postgres::PgStore::open(url_or_path).await?,
            ))
        } else {
            Ok(SlashingDb::Sqlite(
                sqlite::SqliteStore::open(url_or_path).await?,
            ))
        }
    }

    /// Checks a block proposal and records it; `Ok` means committed and safe to sign.
    pub async fn check_block(
        &self,
        gvr: Root,
        pubkey: &Pubkey,
        slot: u64,
        signing_root: Root,
    ) -> Result<Safe, Error> {
        Check::Block { slot }.in_range()?;
        match self {
            SlashingDb::Sqlite(s) => s.check_block(gvr, *pubkey, slot, signing_root).await,
            SlashingDb::Postgres(p) => p.check_block(gvr, pubkey, slot, signing_root).await,
        }
    }

    /// Checks an attestation and records it; `Ok` means committed and safe to sign.
    pub async fn check_attestation(
        &self,
        gvr: Root,
        pubkey: &Pubkey,
        source: u64,
        target: u64,
        signing_root: Root,
    ) -> Result<Safe, Error> {
        Check::Attestation { source, target }.in_range()?;
        match self {
            SlashingDb::Sqlite(s) => {
                s.check_attestation(gvr, *pubkey, source, target, signing_root)
                    .await
            }
            SlashingDb::Postgres(p) => {
                p.check_attestation(gvr, pubkey, source, target, signing_root)
                    .await
            }
        }
    }

    /// Checks `check` for `pubkey` and records it, then hands the final verdict to `then` instead
    /// of answering: the same check-and-record as [`SlashingDb::check_block`] and
    /// [`SlashingDb::check_attestation`], for callers that want the next step to start where the
    /// verdict is known. On SQLite `then` runs on the writer thread right after the commit (a
    /// committed `Ok` is durable by then); a `then` that is [`Verdict::abandoned`] when the writer
    /// reaches it is dropped unrun and nothing is recorded. On PostgreSQL `then` runs on the
    /// awaiting task. The future returns once the check is queued (SQLite) or done (PostgreSQL);
    /// dropping it does not stop a queued SQLite check (abandon the verdict for that).
    pub async fn check_then(
        &self,
        gvr: Root,
        pubkey: &Pubkey,
        check: Check,
        signing_root: Root,
        then: Box<dyn Verdict>,
    ) {
        if let Err(e) = check.in_range() {
            return then.deliver(Err(e));
        }
        match self {
            SlashingDb::Sqlite(s) => s.check_then(gvr, *pubkey, check, signing_root, then),
            SlashingDb::Postgres(p) => {
                let verdict = match check {
                    Check::Block { slot } => p.check_block(gvr, pubkey, slot, signing_root).await,
                    Check::Attestation { source, target } => {
                        p.check_attestation(gvr, pubkey, source, target, signing_root)
                            .await
                    }
                };
                then.deliver(verdict)
            }
        }
    }

    /// Checks one attestation for many validators in ONE transaction (batch signing): every key's
    /// check-and-insert runs inside it, and the answer is each key's verdict in the order of
    /// `pubkeys`. `Ok` means the transaction committed durably: each `Ok(Safe)` key may sign, each
    /// `Err(Refusal)` key must not (its refusal is final, as a single check's would be). `Err` means
    /// nothing of the batch was recorded and no key may sign.
    ///
    /// Keys are checked in ascending byte order (so concurrent batches over overlapping keys take
    /// their per-validator locks in one order); a key given more than once is checked once and its
    /// verdict repeated.
    pub async fn check_attestations(
        &self,
        gvr: Root,
        pubkeys: &[Pubkey],
        source: u64,
        target: u64,
        signing_root: Root,
    ) -> Result<Vec<Result<Safe, Refusal>>, Error> {
        Check::Attestation { source, target }.in_range()?;
        let mut unique = pubkeys.to_vec();
        unique.sort_unstable();
        unique.dedup();
        let verdicts = match self {
            SlashingDb::Sqlite(s) => {
                s.check_attestations(gvr, unique.clone(), source, target, signing_root)
                    .await?
            }
            SlashingDb::Postgres(p) => {
                p.check_attestations(gvr, &unique, source, target, signing_root)
                    .await?
            }
        };
        if verdicts.len() != unique.len() {
            return Err(Error::Database(format!(
                "the batch check answered {} verdicts for {} keys",
                verdicts.len(),
                unique.len()
            )));
        }
        Ok(pubkeys
            .iter()
            .map(|k| {
                // `unique` is sorted and holds every key of `pubkeys`.
                let i = unique.binary_search(k).unwrap_or_default();
                verdicts[i]
            })
            .collect())
    }

    /// Records the genesis validators root if none is recorded yet; fails with
    /// [`Error::Refused`]`(`[`Refusal::WrongGenesisValidatorsRoot`]`)` if another one is.
    pub async fn init_genesis_validators_root(&self, gvr: Root) -> Result<(), Error> {
        match self {
            SlashingDb::Sqlite(s) => s.init_gvr(gvr).await,
            SlashingDb::Postgres(p) => p.init_gvr(gvr).await,
        }
    }

    /// The recorded genesis validators root, if any.
    pub async fn genesis_validators_root(&self) -> Result<Option<Root>, Error> {
        match self {
            SlashingDb::Sqlite(s) => s.gvr().await,
            SlashingDb::Postgres(p) => p.gvr().await,
        }
    }

    /// Imports an EIP-3076 v5 document, all or nothing, optionally only for the given pubkeys.
    /// Imported records are kept, and the validators' low watermarks are raised to the highest
    /// slot/source/target now stored for them (never lowered). A malformed document or one for
    /// another chain is an error and nothing is stored. The `enabled` flag is not changed.
    pub async fn import_interchange(
        &self,
        json: &str,
        only: Option<&[Pubkey]>,
    ) -> Result<ImportSummary, Error> {
        let interchange = Interchange::from_json(json)?;
        let (plan, skipped) = interchange.import_plan(only);
        let mut summary = ImportSummary {
            validators: plan.len(),
            skipped_validators: skipped,
            ..Default::default()
        };
        for rec in plan.values() {
            summary.blocks += rec.blocks.len();
            summary.attestations += rec.attestations.len();
        }
        let gvr = interchange.genesis_validators_root;
        match self {
            SlashingDb::Sqlite(s) => s.import(gvr, plan).await?,
            SlashingDb::Postgres(p) => p.import(gvr, plan).await?,
        }
        Ok(summary)
    }

    /// Exports the complete stored history (all validators, or only the given ones that are
    /// registered) as an EIP-3076 v5 JSON document.
    pub async fn export_interchange(&self, pubkeys: Option<&[Pubkey]>) -> Result<String, Error> {
        let interchange = match self {
            SlashingDb::Sqlite(s) => s.export(pubkeys.map(|p| p.to_vec())).await?,
            SlashingDb::Postgres(p) => p.export(pubkeys).await?,
        };
        Ok(interchange.to_json()?)
    }

    /// Enables or disables validators (registering unknown ones), all in one transaction: either
    /// every one changes or none does. A disabled validator is refused every check until enabled
    /// again.
    pub async fn set_enabled(&self, pubkeys: &[Pubkey], enabled: bool) -> Result<(), Error> {
        let mut pubkeys = pubkeys.to_vec();
        // One order for every caller, so concurrent transactions lock validators without deadlock.
        pubkeys.sort_unstable();
        pubkeys.dedup();
        match self {
            SlashingDb::Sqlite(s) => s.set_enabled(pubkeys, enabled).await,
            SlashingDb::Postgres(p) => p.set_enabled(&pubkeys, enabled).await,
        }
    }

    /// The registered validators that are disabled, sorted.
    pub async fn disabled_validators(&self) -> Result<Vec<Pubkey>, Error> {
        let mut keys = match self {
            SlashingDb::Sqlite(s) => s.disabled_validators().await?,
            SlashingDb::Postgres(p) => p.disabled_validators().await?,
        };
        keys.sort_unstable();
        Ok(keys)
    }

    /// Whether anything (records or watermarks) is stored for the validator.
    pub async fn has_history(&self, pubkey: &Pubkey) -> Result<bool, Error> {
        match self {
            SlashingDb::Sqlite(s) => s.has_history(*pubkey).await,
            SlashingDb::Postgres(p) => p.has_history(pubkey).await,
        }
    }

    /// Removes old records per validator while keeping protection: attestations with a target
    /// at or below `max_target − keep_epochs` and blocks at or below
    /// `max_slot − keep_epochs × slots_per_epoch` are deleted, and the low watermarks are raised
    /// to cover what was deleted.
    pub async fn prune(&self, keep_epochs: u64, slots_per_epoch: u64) -> Result<(), Error> {
        self.prune_chunked(keep_epochs, slots_per_epoch, DEFAULT_PRUNE_CHUNK)
            .await
    }

    /// [`Self::prune`] with `chunk_validators` validators per transaction (at least 1). Each chunk
    /// commits on its own, so checks arriving meanwhile wait for at most one chunk; protection is
    /// the same as pruning everything at once (each validator is pruned in one transaction).
    pub async fn prune_chunked(
        &self,
        keep_epochs: u64,
        slots_per_epoch: u64,
        chunk_validators: usize,
    ) -> Result<(), Error> {
        let keep_slots = keep_epochs.saturating_mul(slots_per_epoch);
        let chunk = chunk_validators.max(1);
        match self {
            SlashingDb::Sqlite(s) => s.prune(keep_epochs, keep_slots, chunk).await,
            SlashingDb::Postgres(p) => p.prune(keep_epochs, keep_slots, chunk).await,
        }
    }

    /// Proves the store answers and can commit (a small write), so it fails while the disk is full,
    /// the file cannot be written or the server is a read-only standby.
    pub async fn health(&self) -> Result<(), Error> {
        match self {
            SlashingDb::Sqlite(s) => s.health().await,
            SlashingDb::Postgres(p) => p.health().await,
        }
    }

    /// The global high watermark, if one is set.
    pub async fn high_watermark(&self) -> Result<Option<HighWatermark>, Error> {
        match self {
            SlashingDb::Sqlite(s) => s.high_watermark().await,
            SlashingDb::Postgres(p) => p.high_watermark().await,
        }
    }

    /// Sets (or replaces) the global high watermark: every check that starts after it commits
    /// refuses a block at a slot `>= hw.slot` and an attestation with a source or target
    /// `>= hw.epoch` ([`Refusal::HighWatermark`]) for every validator, until it is removed. (A
    /// check already running when it commits may still be decided without it; the offline
    /// command runs while the signer is stopped.) It may be lower
    /// than some validator's low watermark (that validator then may sign nothing); see
    /// [`watermarks`].
    pub async fn set_high_watermark(&self, hw: HighWatermark) -> Result<(), Error> {
        check_range("high watermark epoch", hw.epoch)?;
        check_range("high watermark slot", hw.slot)?;
        match self {
            SlashingDb::Sqlite(s) => s.set_high_watermark(Some(hw)).await.map(drop),
            SlashingDb::Postgres(p) => p.set_high_watermark(Some(hw)).await.map(drop),
        }
    }

    /// Removes the global high watermark; returns the one that was set, if any.
    pub async fn remove_high_watermark(&self) -> Result<Option<HighWatermark>, Error> {
        match self {
            SlashingDb::Sqlite(s) => s.set_high_watermark(None).await,
            SlashingDb::Postgres(p) => p.set_high_watermark(None).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_is_clone_send_sync() {
        fn check<T: Clone + Send + Sync + 'static>() {}
        check::<SlashingDb>();
    }

    #[test]
    fn described_locations_show_no_secret() {
        for (url, shown) in [
            (
                "postgres://alice:s3cret@db.example:5433/slashing?sslmode=disable",
                "postgres://alice@db.example:5433/slashing?sslmode=disable",
            ),
            (
                "postgres://alice:s3cret@db.example/slashing?sslrootcert=/etc/ca.pem&sslmode=verify-full",
                "postgres://alice@db.example:5432/slashing?sslmode=verify-full",
            ),
            (
                "postgres://alice:s3cret@db.example/slashing?sslmode=bogus",
                "postgres://(a URL that does not parse)",
            ),
            (
                "postgresql://db.example/slashing?user=bob&password=s3cret",
                "postgres://bob@db.example:5432/slashing",
            ),
            (
                "postgres://alice:s3cret@h1:1,h2:2/x?password=s3cret",
                "postgres://alice@h1:1,h2:2/x",
            ),
            (
                "postgres://alice:s3cret@[::1",
                "postgres://(a URL that does not parse)",
            ),
        ] {
            let described = describe_location(url);
            assert_eq!(described, shown, "{url}");
            assert!(!described.contains("s3cret"));
        }
        assert_eq!(describe_location("/var/lib/x.sqlite"), "/var/lib/x.sqlite");
    }
}
