//! EIP-3076 slashing protection for ferrosigner.
//!
//! How the parts connect:
//! - [`rules`] holds the slashing rules as pure functions over a few per-validator facts, plus a
//!   brute-force in-memory model ([`rules::History`]) that tests use as the oracle.
//! - [`interchange`] parses, validates, merges and writes EIP-3076 v5 interchange documents.
//! - [`SlashingDb`] is the handle the signer uses. It dispatches to one of two stores:
//!   * SQLite (default, a file): one writer thread owns the connection and *group-commits*: it
//!     drains every pending request, decides each in order inside one transaction (each in its own
//!     savepoint), commits once (WAL, `synchronous=FULL`), and only then answers every request.
//!   * PostgreSQL (`postgres://…`): the schema is created/migrated at open; every check is one
//!     round trip to a server-side plpgsql function that takes a per-validator advisory
//!     transaction lock, decides, inserts and returns the verdict, so several signer processes
//!     sharing one database never both sign conflicting messages.
//!
//! Every check is atomic check-and-record: `Ok` means the record is committed durably, so the
//! caller may sign. A refusal is [`Error::Refused`]; a store that cannot answer is
//! [`Error::Unavailable`] (never a verdict of "safe").
//!
//! Value range: slots and epochs are stored as signed 64-bit integers on both backends, so values
//! of 2^63 or more are refused consistently ([`Error::ValueOutOfRange`] for checks,
//! [`Error::InvalidInterchange`] for imports). Such slots are centuries away.
//!
//! Watermarks: imports and pruning raise per-validator low watermarks (block slot, attestation
//! source and target); anything at or below them is refused. Import also keeps every imported
//! record, so export returns the complete stored history (plus one synthetic record carrying a
//! watermark when pruned rows no longer cover it).
#![warn(missing_docs)]

pub mod interchange;
mod postgres;
pub mod rules;
mod sqlite;
mod stored;

use std::fmt;

pub use interchange::{ImportSummary, Interchange};
pub use sqlite::QUEUE_CAPACITY as SQLITE_QUEUE_CAPACITY;

/// A compressed BLS public key.
pub type Pubkey = [u8; 48];
/// A 32-byte root (signing root, genesis validators root).
pub type Root = [u8; 32];

/// The largest slot or epoch either store accepts (2^63 − 1).
pub const MAX_STORED_VALUE: u64 = i64::MAX as u64;

/// Why a message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// A different block was already signed at this slot.
    DoubleBlockProposal,
    /// The slot is at or below the validator's block low watermark.
    BlockSlotBelowWatermark,
    /// The attestation's source epoch is greater than its target epoch.
    SourceExceedsTarget,
    /// A different attestation was already signed for this target epoch.
    DoubleVote,
    /// The new attestation surrounds one already signed.
    SurroundingVote,
    /// The new attestation is surrounded by one already signed.
    SurroundedVote,
    /// The source epoch is below the validator's source low watermark.
    SourceBelowWatermark,
    /// The target epoch is at or below the validator's target low watermark.
    TargetBelowWatermark,
    /// The request is for another chain than the one this database protects.
    WrongGenesisValidatorsRoot,
    /// The validator was disabled (deleted through the Keymanager API).
    ValidatorDisabled,
}

impl Refusal {
    /// All refusals, in code order.
    pub const ALL: [Refusal; 10] = [
        Refusal::DoubleBlockProposal,
        Refusal::BlockSlotBelowWatermark,
        Refusal::SourceExceedsTarget,
        Refusal::DoubleVote,
        Refusal::SurroundingVote,
        Refusal::SurroundedVote,
        Refusal::SourceBelowWatermark,
        Refusal::TargetBelowWatermark,
        Refusal::WrongGenesisValidatorsRoot,
        Refusal::ValidatorDisabled,
    ];

    /// The numeric code used by the PostgreSQL check functions (10 + position in [`Self::ALL`]).
    pub fn code(self) -> i16 {
        match self {
            Refusal::DoubleBlockProposal => 10,
            Refusal::BlockSlotBelowWatermark => 11,
            Refusal::SourceExceedsTarget => 12,
            Refusal::DoubleVote => 13,
            Refusal::SurroundingVote => 14,
            Refusal::SurroundedVote => 15,
            Refusal::SourceBelowWatermark => 16,
            Refusal::TargetBelowWatermark => 17,
            Refusal::WrongGenesisValidatorsRoot => 18,
            Refusal::ValidatorDisabled => 19,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::DoubleBlockProposal => "a different block was already signed at this slot (double proposal)",
            Refusal::BlockSlotBelowWatermark => {
                "the block slot is at or below the lowest slot this validator may still sign (low watermark)"
            }
            Refusal::SourceExceedsTarget => "the attestation source epoch is greater than its target epoch",
            Refusal::DoubleVote => "a different attestation was already signed for this target epoch (double vote)",
            Refusal::SurroundingVote => "the attestation would surround an attestation already signed",
            Refusal::SurroundedVote => "the attestation would be surrounded by an attestation already signed",
            Refusal::SourceBelowWatermark => "the attestation source epoch is below this validator's low watermark",
            Refusal::TargetBelowWatermark => {
                "the attestation target epoch is at or below this validator's low watermark"
            }
            Refusal::WrongGenesisValidatorsRoot => {
                "the genesis validators root differs from the one this slashing database protects"
            }
            Refusal::ValidatorDisabled => "the validator is disabled in the slashing database",
        })
    }
}

/// A positive verdict: the message may be signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Safe {
    /// The message was new and its record is now committed.
    Inserted,
    /// The very same message (same non-null signing root) was already recorded.
    SameData,
}

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

fn check_range(what: &'static str, value: u64) -> Result<(), Error> {
    if value > MAX_STORED_VALUE {
        Err(Error::ValueOutOfRange { what, value })
    } else {
        Ok(())
    }
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
/// `postgres://user@host:port/dbname` built from its parsed parts, so that no password (whether in
/// the user info or in a `?password=` parameter) and no other parameter is ever shown.
pub fn describe_location(location: &str) -> String {
    if !is_postgres(location) {
        return location.to_owned();
    }
    let Ok(cfg) = location.parse::<tokio_postgres::Config>() else {
        return "postgres://(a URL that does not parse)".to_owned();
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
    format!("postgres://{user}{}/{dbname}", hosts.join(","))
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
        check_range("slot", slot)?;
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
        check_range("source epoch", source)?;
        check_range("target epoch", target)?;
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
        interchange.to_json()
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
        let keep_slots = keep_epochs.saturating_mul(slots_per_epoch);
        match self {
            SlashingDb::Sqlite(s) => s.prune(keep_epochs, keep_slots).await,
            SlashingDb::Postgres(p) => p.prune(keep_epochs, keep_slots).await,
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

    /// The global high watermark `(epoch, slot)`. Not modelled by this crate: always `None`.
    pub async fn high_watermark(&self) -> Result<Option<(u64, u64)>, Error> {
        Ok(None)
    }
}

/// Cutoff for pruning: values at or below it are deleted; `None` when nothing is old enough.
pub(crate) fn prune_cutoff(max: u64, keep: u64) -> Option<u64> {
    max.checked_sub(keep)
}

/// Adds synthetic records so an exported history carries the watermarks that pruned (deleted)
/// records no longer show.
pub(crate) fn with_watermark_records(
    mut rec: interchange::InterchangeRecord,
    wm: rules::Watermarks,
) -> interchange::InterchangeRecord {
    use rules::{AttestationRecord, BlockRecord};
    if let Some(slot) = wm.block_slot
        && rec.signed_blocks.iter().all(|b| b.slot < slot)
    {
        rec.signed_blocks.push(BlockRecord {
            slot,
            signing_root: None,
        });
    }
    let max_source = rec.signed_attestations.iter().map(|a| a.source).max();
    let max_target = rec.signed_attestations.iter().map(|a| a.target).max();
    let need_source = wm
        .att_source
        .is_some_and(|s| max_source.is_none_or(|m| m < s));
    let need_target = wm
        .att_target
        .is_some_and(|t| max_target.is_none_or(|m| m < t));
    if need_source || need_target {
        let source = rules::raise(wm.att_source, max_source).unwrap_or(0);
        let target = rules::raise(wm.att_target, max_target).unwrap_or(0);
        if let Some(existing) = rec
            .signed_attestations
            .iter_mut()
            .find(|a| a.target == target)
        {
            existing.source = existing.source.max(source);
            existing.signing_root = None;
        } else {
            rec.signed_attestations.push(AttestationRecord {
                source,
                target,
                signing_root: None,
            });
        }
    }
    rec
}

#[cfg(test)]
mod tests {
    use super::*;
    use rules::{AttestationRecord, BlockRecord, Watermarks};

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
                "postgres://alice@db.example:5433/slashing",
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

    #[test]
    fn refusal_codes_are_distinct() {
        let mut codes: Vec<i16> = Refusal::ALL.iter().map(|r| r.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), Refusal::ALL.len());
        assert!(codes.iter().all(|c| *c >= 10));
    }

    #[test]
    fn export_carries_watermarks_of_pruned_history() {
        let rec = interchange::InterchangeRecord {
            pubkey: [1; 48],
            signed_blocks: vec![BlockRecord {
                slot: 5,
                signing_root: Some([1; 32]),
            }],
            signed_attestations: vec![AttestationRecord {
                source: 2,
                target: 9,
                signing_root: Some([1; 32]),
            }],
        };
        // Rows above the watermarks: nothing added.
        let wm = Watermarks {
            block_slot: Some(3),
            att_source: Some(1),
            att_target: Some(8),
        };
        assert_eq!(with_watermark_records(rec.clone(), wm), rec);
        // Watermarks above the rows: synthetic records carry them.
        let wm = Watermarks {
            block_slot: Some(7),
            att_source: Some(4),
            att_target: Some(12),
        };
        let out = with_watermark_records(rec.clone(), wm);
        assert_eq!(
            out.signed_blocks.last(),
            Some(&BlockRecord {
                slot: 7,
                signing_root: None
            })
        );
        assert_eq!(
            out.signed_attestations.last(),
            Some(&AttestationRecord {
                source: 4,
                target: 12,
                signing_root: None
            })
        );
        // Only the source watermark is above the rows: the top row is made unknown and raised.
        let wm = Watermarks {
            block_slot: None,
            att_source: Some(4),
            att_target: Some(9),
        };
        let out = with_watermark_records(rec, wm);
        assert_eq!(
            out.signed_attestations,
            vec![AttestationRecord {
                source: 4,
                target: 9,
                signing_root: None
            }]
        );
    }
}
