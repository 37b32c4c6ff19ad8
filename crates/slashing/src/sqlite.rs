//! SQLite store: one writer thread owns the connection and group-commits.
//!
//! Requests are closures sent over a channel. The writer takes every pending request (under
//! concurrent load also those that follow within a quarter of a millisecond, for at most one
//! millisecond, so that one commit serves many; one client at a time is never held back), opens one
//! `BEGIN IMMEDIATE` transaction, runs each request in order inside its own savepoint (a refused
//! or failed request rolls back only itself), commits once (WAL, `synchronous=FULL`, so the commit
//! is on disk), and only then answers each request through its oneshot channel. If the commit
//! fails, every request of the batch gets an error: no `Ok` is ever answered before its record is
//! durable. Async callers only send and await; no SQLite work runs on tokio workers.
//!
//! The queue into the writer is bounded ([`QUEUE_CAPACITY`]): when it is full a request gets
//! [`Error::Busy`] at once and nothing is recorded. A request whose caller has gone away (its
//! deadline passed, its client disconnected) before the writer reaches it is dropped unrun.
//!
//! Storage faults (disk full, I/O errors, a corrupted page, a read-only file) are
//! [`Error::Unavailable`]: the caller answers 503 and a later request succeeds once the fault is
//! gone. [`SqliteStore::health`] commits a one-page write, so it fails while nothing can commit.
//! Opening runs `PRAGMA quick_check` and refuses a corrupted file.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use crate::interchange::{ImportRecord, Interchange, InterchangeRecord};
use crate::rules::{
    self, AttestationFacts, AttestationRecord, BlockFacts, BlockRecord, StoredRoot, stored_root,
};
use crate::stored::{opt_u64, to_i64, to_u64};
use crate::watermarks::{Bounds, Maxima, with_watermark_records};
use crate::{Check, Error, HighWatermark, Pubkey, Refusal, Root, Safe, Verdict, Watermarks};

/// The schema, one script per version: a new database runs them all, an older one the rest.
const SCHEMA: [&str; 2] = [
    include_str!("sql/sqlite_v1.sql"),
    include_str!("sql/sqlite_v2.sql"),
];
const SCHEMA_VERSION: i64 = SCHEMA.len() as i64;
/// At most this many requests share one transaction.
const MAX_BATCH: usize = 4096;
/// Under concurrent load, the writer waits this long for another request before committing.
const LINGER_GAP: Duration = Duration::from_micros(250);
/// Under concurrent load, the writer holds a batch open at most this long.
const LINGER_MAX: Duration = Duration::from_millis(1);
/// At most this many requests wait for the writer; more get [`Error::Busy`].
pub const QUEUE_CAPACITY: usize = 4 * MAX_BATCH;

type Reply = Box<dyn FnOnce(Result<(), Error>) + Send>;
/// A request for the writer.
type Job = Box<dyn Request>;

/// A request for the writer: runs inside the batch and returns how to answer after the commit, or
/// is refused unrun when it cannot be queued.
trait Request: Send {
    fn run(self: Box<Self>, batch: &Batch<'_>) -> Reply;
    fn refuse(self: Box<Self>, e: Error);
}

/// Who takes a request's answer after the commit.
trait Answer<T>: Send + 'static {
    /// Nobody waits any more: the request is not run.
    fn abandoned(&self) -> bool;
    fn answer(self, result: Result<T, Error>);
}

impl<T: Send + 'static> Answer<T> for oneshot::Sender<Result<T, Error>> {
    fn abandoned(&self) -> bool {
        self.is_closed()
    }
    fn answer(self, result: Result<T, Error>) {
        let _ = self.send(result);
    }
}

/// A check's answer, handed on to a [`Verdict`].
struct ToVerdict(Box<dyn Verdict>);

impl Answer<Result<Safe, Refusal>> for ToVerdict {
    fn abandoned(&self) -> bool {
        self.0.abandoned()
    }
    fn answer(self, result: Result<Result<Safe, Refusal>, Error>) {
        self.0
            .deliver(result.and_then(|v| v.map_err(Error::Refused)))
    }
}

/// One closure run in the batch, answered through `A`.
struct Call<F, A> {
    f: F,
    answer: A,
}

impl<T, F, A> Request for Call<F, A>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, Error> + Send + 'static,
    A: Answer<T>,
{
    fn run(self: Box<Self>, batch: &Batch<'_>) -> Reply {
        let Call { f, answer } = *self;
        if answer.abandoned() {
            // Nobody waits for the answer any more: record nothing.
            return Box::new(|_| {});
        }
        let result = batch.run(f);
        Box::new(move |committed: Result<(), Error>| answer.answer(committed.and(result)))
    }
    fn refuse(self: Box<Self>, e: Error) {
        self.answer.answer(Err(e))
    }
}

/// The open transaction a job runs in.
struct Batch<'c> {
    conn: &'c Connection,
    /// Set when a savepoint could not be rolled back: the whole batch must be discarded.
    poisoned: Cell<bool>,
    /// Set when the batch could not even begin.
    failed: Option<Error>,
}

/// Handle to the writer thread. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    tx: mpsc::SyncSender<Job>,
}

fn db_err(e: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode as C;
    match e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            C::DatabaseBusy | C::DatabaseLocked => {
                Error::Unavailable(format!("SQLite database is locked: {f}"))
            }
            // Faults of the storage, not of the request: they pass when the disk has room again,
            // the I/O error clears or the file is restored, so the caller answers 503.
            C::DiskFull
            | C::SystemIoFailure
            | C::DatabaseCorrupt
            | C::NotADatabase
            | C::ReadOnly
            | C::CannotOpen
            | C::OutOfMemory
            | C::FileLockingProtocolFailed => {
                Error::Unavailable(format!("SQLite storage fault: {f}"))
            }
            _ => Error::Database(rusqlite::Error::SqliteFailure(f, None).to_string()),
        },
        other => Error::Database(other.to_string()),
    }
}

fn stopped() -> Error {
    Error::Unavailable("the SQLite writer thread has stopped".to_string())
}

fn open_connection(path: &str) -> Result<Connection, Error> {
    let open_err = |e: rusqlite::Error| Error::Open(format!("{path}: {e}"));
    if !Path::new(path).exists() {
        // Create the file owner-only before SQLite opens it.
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        match opts.open(path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::Open(format!("{path}: {e}"))),
        }
    }
    let conn = Connection::open(path).map_err(open_err)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(open_err)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(|e| match &e {
            rusqlite::Error::SqliteFailure(f, _)
                if matches!(
                    f.code,
                    rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt
                ) =>
            {
                Error::Open(corrupted(path, &e.to_string()))
            }
            _ => open_err(e),
        })?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::Open(format!(
            "{path}: cannot switch to WAL mode (got {mode})"
        )));
    }
    // 16 MiB of page cache keeps the indexes of a large history in memory.
    conn.execute_batch(
        "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA cache_size=-16384;",
    )
    .map_err(open_err)?;
    // Plans that do not depend on bound values: without this, SQLite re-prepares a check's range
    // queries whenever their epochs are bound anew (a parse and plan per query, per check).
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map_err(open_err)?;
    // Room for every statement a check runs, savepoints included, so none is parsed twice.
    conn.set_prepared_statement_cache_capacity(64);
    check_integrity(&conn).map_err(|problem| Error::Open(corrupted(path, &problem)))?;
    migrate(&conn).map_err(|e| Error::Open(format!("{path}: {e}")))?;
    Ok(conn)
}

/// `PRAGMA quick_check`: `Err` with what it found when the file is damaged.
fn check_integrity(conn: &Connection) -> Result<(), String> {
    let mut st = conn
        .prepare("PRAGMA quick_check")
        .map_err(|e| e.to_string())?;
    let found = st
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.take(5).collect::<Result<Vec<_>, _>>())
        .map_err(|e| e.to_string())?;
    if found.len() == 1 && found[0] == "ok" {
        Ok(())
    } else {
        Err(found.join("; "))
    }
}

/// What to tell the operator about a damaged database file.
fn corrupted(path: &str, problem: &str) -> String {
    format!(
        "{path} is damaged ({problem}). Nothing was changed. To recover: stop every signer using it, move the \
         file (and its -wal/-shm files) aside, start with a new database and import the latest interchange \
         export of this history (`ferrosigner slashing-protection import`), or one exported from the damaged \
         file with the sqlite3 `.recover` command; until then these validators have no protection here"
    )
}

fn migrate(conn: &Connection) -> Result<(), Error> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(db_err)?;
    let result = (|| {
        conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            .map_err(db_err)?;
        let version: Option<i64> = conn
            .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
            .map_err(db_err)?;
        let from = version.unwrap_or(0);
        if !(0..=SCHEMA_VERSION).contains(&from) {
            return Err(Error::Open(format!(
                "schema version {from} is newer than this program ({SCHEMA_VERSION})"
            )));
        }
        for script in &SCHEMA[from as usize..] {
            conn.execute_batch(script).map_err(db_err)?;
        }
        if from < SCHEMA_VERSION {
            conn.execute("DELETE FROM schema_version", [])
                .map_err(db_err)?;
            conn.execute(
                "INSERT INTO schema_version (version) VALUES (?1)",
                [SCHEMA_VERSION],
            )
            .map_err(db_err)?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT").map_err(db_err),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Takes `first` and every request already waiting; when requests are arriving concurrently (this
/// batch or the previous one found more than one), also those that follow within [`LINGER_GAP`] of
/// each other, for at most [`LINGER_MAX`] in all, so that one commit (and its fsync) serves many.
/// With one client at a time every batch holds one request, so none is held back; the first lone
/// request after concurrent load waits at most one gap.
fn collect(rx: &mpsc::Receiver<Job>, first: Job, previous: usize) -> Vec<Job> {
    let start = Instant::now();
    let mut jobs = vec![first];
    jobs.extend(rx.try_iter().take(MAX_BATCH - 1));
    if jobs.len() < 2 && previous < 2 {
        return jobs;
    }
    while jobs.len() < MAX_BATCH {
        let left = LINGER_MAX.saturating_sub(start.elapsed());
        if left.is_zero() {
            break;
        }
        match rx.recv_timeout(LINGER_GAP.min(left)) {
            Ok(job) => {
                jobs.push(job);
                let room = MAX_BATCH - jobs.len();
                jobs.extend(rx.try_iter().take(room));
            }
            Err(_) => break,
        }
    }
    jobs
}

fn writer_loop(conn: Connection, rx: mpsc::Receiver<Job>) {
    let mut previous = 0;
    while let Ok(first) = rx.recv() {
        let jobs = collect(&rx, first, previous);
        previous = jobs.len();
        let failed = conn.execute_batch("BEGIN IMMEDIATE").err().map(db_err);
        let began = failed.is_none();
        let batch = Batch {
            conn: &conn,
            poisoned: Cell::new(false),
            failed,
        };
        let replies: Vec<Reply> = jobs.into_iter().map(|job| job.run(&batch)).collect();
        let outcome = if !began {
            Err(batch.failed.clone().unwrap_or_else(stopped))
        } else if batch.poisoned.get() {
            let _ = conn.execute_batch("ROLLBACK");
            Err(Error::Database(
                "a request could not be rolled back; the batch was discarded".to_string(),
            ))
        } else {
            match conn.execute_batch("COMMIT") {
                Ok(()) => Ok(()),
                Err(e) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    Err(db_err(e))
                }
            }
        };
        for reply in replies {
            reply(outcome.clone());
        }
    }
}

impl Batch<'_> {
    /// Runs one statement through the statement cache (parsed once per connection).
    fn execute(&self, sql: &str) -> Result<(), Error> {
        self.conn
            .prepare_cached(sql)
            .and_then(|mut st| st.execute([]))
            .map(|_| ())
            .map_err(db_err)
    }

    /// Runs `f` inside a savepoint of the batch transaction.
    fn run<T>(&self, f: impl FnOnce(&Connection) -> Result<T, Error>) -> Result<T, Error> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.execute("SAVEPOINT job")?;
        match f(self.conn) {
            Ok(v) => match self.execute("RELEASE job") {
                Ok(()) => Ok(v),
                Err(e) => {
                    self.poisoned.set(true);
                    Err(e)
                }
            },
            Err(e) => {
                if self
                    .execute("ROLLBACK TO job")
                    .and_then(|()| self.execute("RELEASE job"))
                    .is_err()
                {
                    self.poisoned.set(true);
                }
                Err(e)
            }
        }
    }
}

fn root_from_db(v: Option<Vec<u8>>) -> Result<StoredRoot, Error> {
    match v {
        None => Ok(None),
        Some(bytes) => {
            let root: Root = bytes.as_slice().try_into().map_err(|_| {
                Error::Database(format!("stored signing root has {} bytes", bytes.len()))
            })?;
            Ok(stored_root(root))
        }
    }
}

fn root_to_db(r: &StoredRoot) -> Option<&[u8]> {
    r.as_ref().map(|r| r.as_slice())
}

fn get_gvr(conn: &Connection) -> Result<Option<Root>, Error> {
    let v: Option<Vec<u8>> = conn
        .prepare_cached("SELECT genesis_validators_root FROM metadata WHERE id = 1")
        .and_then(|mut s| s.query_row([], |r| r.get(0)).optional())
        .map_err(db_err)?;
    match v {
        None => Ok(None),
        Some(bytes) => Ok(Some(bytes.as_slice().try_into().map_err(|_| {
            Error::Database("stored genesis validators root is malformed".into())
        })?)),
    }
}

/// Records the GVR if none is recorded; refuses another one.
fn ensure_gvr(conn: &Connection, gvr: Root) -> Result<(), Error> {
    match get_gvr(conn)? {
        Some(stored) if stored == gvr => Ok(()),
        Some(_) => Err(Error::Refused(Refusal::WrongGenesisValidatorsRoot)),
        None => {
            conn.execute(
                "INSERT INTO metadata (id, genesis_validators_root) VALUES (1, ?1)",
                [gvr.as_slice()],
            )
            .map_err(db_err)?;
            Ok(())
        }
    }
}

struct ValidatorRow {
    id: i64,
    enabled: bool,
    wm: Watermarks,
}

fn find_validator(conn: &Connection, pubkey: &Pubkey) -> Result<Option<ValidatorRow>, Error> {
    let row = conn
        .prepare_cached(
            "SELECT id, enabled, block_slot_wm, att_source_wm, att_target_wm FROM validators WHERE pubkey = ?1",
        )
        .and_then(|mut s| {
            s.query_row([pubkey.as_slice()], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, bool>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                ))
            })
            .optional()
        })
        .map_err(db_err)?;
    match row {
        None => Ok(None),
        Some((id, enabled, b, s, t)) => Ok(Some(ValidatorRow {
            id,
            enabled,
            wm: Watermarks {
                block_slot: opt_u64(b)?,
                att_source: opt_u64(s)?,
                att_target: opt_u64(t)?,
            },
        })),
    }
}

/// Finds a validator, registering it (enabled, no history) if unknown.
fn validator(conn: &Connection, pubkey: &Pubkey) -> Result<ValidatorRow, Error> {
    if let Some(v) = find_validator(conn, pubkey)? {
        return Ok(v);
    }
    conn.prepare_cached("INSERT INTO validators (pubkey) VALUES (?1)")
        .and_then(|mut s| s.execute([pubkey.as_slice()]))
        .map_err(db_err)?;
    Ok(ValidatorRow {
        id: conn.last_insert_rowid(),
        enabled: true,
        wm: Watermarks::default(),
    })
}

fn set_watermarks(conn: &Connection, id: i64, wm: &Watermarks) -> Result<(), Error> {
    conn.execute(
        "UPDATE validators SET block_slot_wm = ?2, att_source_wm = ?3, att_target_wm = ?4 WHERE id = ?1",
        params![id, wm.block_slot.map(to_i64), wm.att_source.map(to_i64), wm.att_target.map(to_i64)],
    )
    .map_err(db_err)?;
    Ok(())
}

/// Outcome of a check inside the transaction: a refusal still commits the validator's
/// registration (as the PostgreSQL function does), so it is not an `Err` of the savepoint.
type CheckOutcome = Result<Result<Safe, Refusal>, Error>;

fn get_high_watermark(conn: &Connection) -> Result<Option<HighWatermark>, Error> {
    let row: Option<(i64, i64)> = conn
        .prepare_cached("SELECT epoch, slot FROM high_watermark WHERE id = 1")
        .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?))).optional())
        .map_err(db_err)?;
    row.map(|(epoch, slot)| {
        Ok(HighWatermark {
            epoch: to_u64(epoch)?,
            slot: to_u64(slot)?,
        })
    })
    .transpose()
}

/// Sets (`Some`) or removes (`None`) the high watermark; returns the previous one.
fn set_high_watermark_tx(
    conn: &Connection,
    hw: Option<HighWatermark>,
) -> Result<Option<HighWatermark>, Error> {
    let previous = get_high_watermark(conn)?;
    match hw {
        Some(hw) => conn.execute(
            "INSERT INTO high_watermark (id, epoch, slot) VALUES (1, ?1, ?2) \
             ON CONFLICT (id) DO UPDATE SET epoch = excluded.epoch, slot = excluded.slot",
            params![to_i64(hw.epoch), to_i64(hw.slot)],
        ),
        None => conn.execute("DELETE FROM high_watermark", []),
    }
    .map_err(db_err)?;
    Ok(previous)
}

fn check_block_tx(
    conn: &Connection,
    gvr: Root,
    pubkey: &Pubkey,
    slot: u64,
    root: Root,
) -> CheckOutcome {
    ensure_gvr(conn, gvr)?;
    let v = validator(conn, pubkey)?;
    let existing: Option<Option<Vec<u8>>> = conn
        .prepare_cached(
            "SELECT signing_root FROM signed_blocks WHERE validator_id = ?1 AND slot = ?2",
        )
        .and_then(|mut s| {
            s.query_row(params![v.id, to_i64(slot)], |r| r.get(0))
                .optional()
        })
        .map_err(db_err)?;
    let facts = BlockFacts {
        enabled: v.enabled,
        high_watermark: get_high_watermark(conn)?,
        watermark: v.wm.block_slot,
        existing_at_slot: existing
            .map(|r| {
                Ok::<_, Error>(BlockRecord {
                    slot,
                    signing_root: root_from_db(r)?,
                })
            })
            .transpose()?,
    };
    let root = stored_root(root);
    let verdict = match rules::decide_block(&facts, slot, root) {
        Ok(v) => v,
        Err(r) => return Ok(Err(r)),
    };
    if verdict == Safe::Inserted {
        conn.prepare_cached(
            "INSERT INTO signed_blocks (validator_id, slot, signing_root) VALUES (?1, ?2, ?3)",
        )
        .and_then(|mut s| s.execute(params![v.id, to_i64(slot), root_to_db(&root)]))
        .map_err(db_err)?;
    }
    Ok(Ok(verdict))
}

// Each surround search walks only the narrow side of its range: targets above the new target, and sources
// above the new source (for a validator voting forwards, both are usually empty). The unary `+` keeps SQLite
// from walking the other index over the validator's whole history instead.
// Each returns the one conflicting record the rules name as evidence (lowest target; lowest source, then
// target).
const SURROUNDED_BY_EXISTING: &str = "SELECT source_epoch, target_epoch, signing_root FROM signed_attestations \
     WHERE validator_id = ?1 AND target_epoch > ?3 AND +source_epoch < ?2 ORDER BY target_epoch LIMIT 1";
const SURROUNDS_EXISTING: &str = "SELECT source_epoch, target_epoch, signing_root FROM signed_attestations \
     WHERE validator_id = ?1 AND source_epoch > ?2 AND +target_epoch < ?3 \
     ORDER BY source_epoch, target_epoch LIMIT 1";
const AT_TARGET: &str = "SELECT source_epoch, target_epoch, signing_root FROM signed_attestations \
     WHERE validator_id = ?1 AND target_epoch = ?3";

type AttestationRow = (i64, i64, Option<Vec<u8>>);

fn attestation_from_db((s, t, root): AttestationRow) -> Result<AttestationRecord, Error> {
    Ok(AttestationRecord {
        source: to_u64(s)?,
        target: to_u64(t)?,
        signing_root: root_from_db(root)?,
    })
}

fn check_attestation_tx(
    conn: &Connection,
    gvr: Root,
    pubkey: &Pubkey,
    source: u64,
    target: u64,
    root: Root,
) -> CheckOutcome {
    ensure_gvr(conn, gvr)?;
    let v = validator(conn, pubkey)?;
    let (s, t) = (to_i64(source), to_i64(target));
    let find = |sql: &str| -> Result<Option<AttestationRecord>, Error> {
        conn.prepare_cached(sql)
            .and_then(|mut st| {
                st.query_row(params![v.id, s, t], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()
            })
            .map_err(db_err)?
            .map(attestation_from_db)
            .transpose()
    };
    let facts = AttestationFacts {
        enabled: v.enabled,
        high_watermark: get_high_watermark(conn)?,
        source_watermark: v.wm.att_source,
        target_watermark: v.wm.att_target,
        existing_at_target: find(AT_TARGET)?,
        surrounded_by_existing: find(SURROUNDED_BY_EXISTING)?,
        surrounds_existing: find(SURROUNDS_EXISTING)?,
    };
    let root = stored_root(root);
    let verdict = match rules::decide_attestation(&facts, source, target, root) {
        Ok(v) => v,
        Err(r) => return Ok(Err(r)),
    };
    if verdict == Safe::Inserted {
        conn.prepare_cached(
            "INSERT INTO signed_attestations (validator_id, source_epoch, target_epoch, signing_root) \
             VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut st| st.execute(params![v.id, s, t, root_to_db(&root)]))
        .map_err(db_err)?;
    }
    Ok(Ok(verdict))
}

/// Checks one attestation for each key inside the current transaction (batch signing): a wrong
/// genesis validators root refuses every key; any database error fails the whole batch.
fn check_attestations_tx(
    conn: &Connection,
    gvr: Root,
    pubkeys: &[Pubkey],
    source: u64,
    target: u64,
    root: Root,
) -> Result<Vec<Result<Safe, Refusal>>, Error> {
    match ensure_gvr(conn, gvr) {
        Err(Error::Refused(refusal)) => return Ok(vec![Err(refusal); pubkeys.len()]),
        other => other?,
    }
    pubkeys
        .iter()
        .map(|pubkey| check_attestation_tx(conn, gvr, pubkey, source, target, root))
        .collect()
}

fn import_tx(
    conn: &Connection,
    gvr: Root,
    plan: &BTreeMap<Pubkey, ImportRecord>,
) -> Result<(), Error> {
    ensure_gvr(conn, gvr).map_err(|e| match e {
        Error::Refused(Refusal::WrongGenesisValidatorsRoot) => Error::InvalidInterchange(
            "the interchange genesis_validators_root differs from this database's".to_string(),
        ),
        other => other,
    })?;
    for (pubkey, rec) in plan {
        let v = validator(conn, pubkey)?;
        for (slot, root) in &rec.blocks {
            conn.prepare_cached(
                "INSERT INTO signed_blocks (validator_id, slot, signing_root) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (validator_id, slot) DO UPDATE SET signing_root = \
                 CASE WHEN signed_blocks.signing_root = excluded.signing_root THEN signed_blocks.signing_root ELSE NULL END",
            )
            .and_then(|mut st| st.execute(params![v.id, to_i64(*slot), root_to_db(root)]))
            .map_err(db_err)?;
        }
        for (target, (source, root)) in &rec.attestations {
            conn.prepare_cached(
                "INSERT INTO signed_attestations (validator_id, source_epoch, target_epoch, signing_root) \
                 VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (validator_id, target_epoch) DO UPDATE SET \
                 source_epoch = MAX(signed_attestations.source_epoch, excluded.source_epoch), \
                 signing_root = CASE WHEN signed_attestations.signing_root = excluded.signing_root \
                 AND signed_attestations.source_epoch = excluded.source_epoch \
                 THEN signed_attestations.signing_root ELSE NULL END",
            )
            .and_then(|mut st| st.execute(params![v.id, to_i64(*source), to_i64(*target), root_to_db(root)]))
            .map_err(db_err)?;
        }
        let wm =
            v.wm.after_import(rec, stored_maxima(conn, v.id, Bounds::ALL)?);
        if wm != v.wm {
            set_watermarks(conn, v.id, &wm)?;
        }
    }
    Ok(())
}

/// The maxima of a validator's stored records within `bounds`.
fn stored_maxima(conn: &Connection, id: i64, bounds: Bounds) -> Result<Maxima, Error> {
    let mut m = Maxima::default();
    if let Some(cut) = bounds.block_slot {
        let max: Option<i64> = conn
            .prepare_cached(
                "SELECT MAX(slot) FROM signed_blocks WHERE validator_id = ?1 AND slot <= ?2",
            )
            .and_then(|mut st| st.query_row(params![id, to_i64(cut)], |r| r.get(0)))
            .map_err(db_err)?;
        m.block_slot = opt_u64(max)?;
    }
    if let Some(cut) = bounds.att_target {
        let (ms, mt): (Option<i64>, Option<i64>) = conn
            .prepare_cached(
                "SELECT MAX(source_epoch), MAX(target_epoch) FROM signed_attestations \
                 WHERE validator_id = ?1 AND target_epoch <= ?2",
            )
            .and_then(|mut st| {
                st.query_row(params![id, to_i64(cut)], |r| Ok((r.get(0)?, r.get(1)?)))
            })
            .map_err(db_err)?;
        m.att_source = opt_u64(ms)?;
        m.att_target = opt_u64(mt)?;
    }
    Ok(m)
}

fn all_validators(conn: &Connection) -> Result<Vec<Pubkey>, Error> {
    let mut st = conn
        .prepare("SELECT pubkey FROM validators ORDER BY id")
        .map_err(db_err)?;
    let rows = st
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .map_err(db_err)?;
    let mut out = Vec::new();
    for row in rows {
        let bytes = row.map_err(db_err)?;
        out.push(
            bytes
                .as_slice()
                .try_into()
                .map_err(|_| Error::Database("stored pubkey is malformed".into()))?,
        );
    }
    Ok(out)
}

fn export_tx(conn: &Connection, pubkeys: Option<Vec<Pubkey>>) -> Result<Interchange, Error> {
    let gvr = get_gvr(conn)?.ok_or(Error::NoGenesisValidatorsRoot)?;
    let pubkeys = match pubkeys {
        Some(p) => p,
        None => all_validators(conn)?,
    };
    let mut data = Vec::new();
    for pubkey in pubkeys {
        let Some(v) = find_validator(conn, &pubkey)? else {
            continue;
        };
        let mut st = conn
            .prepare_cached("SELECT slot, signing_root FROM signed_blocks WHERE validator_id = ?1 ORDER BY slot")
            .map_err(db_err)?;
        let rows = st
            .query_map([v.id], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Option<Vec<u8>>>(1)?))
            })
            .map_err(db_err)?;
        let mut signed_blocks = Vec::new();
        for row in rows {
            let (slot, root) = row.map_err(db_err)?;
            signed_blocks.push(BlockRecord {
                slot: to_u64(slot)?,
                signing_root: root_from_db(root)?,
            });
        }
        let mut st = conn
            .prepare_cached(
                "SELECT source_epoch, target_epoch, signing_root FROM signed_attestations \
                 WHERE validator_id = ?1 ORDER BY target_epoch",
            )
            .map_err(db_err)?;
        let rows = st
            .query_map([v.id], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<Vec<u8>>>(2)?,
                ))
            })
            .map_err(db_err)?;
        let mut signed_attestations = Vec::new();
        for row in rows {
            let (s, t, root) = row.map_err(db_err)?;
            signed_attestations.push(AttestationRecord {
                source: to_u64(s)?,
                target: to_u64(t)?,
                signing_root: root_from_db(root)?,
            });
        }
        data.push(with_watermark_records(
            InterchangeRecord {
                pubkey,
                signed_blocks,
                signed_attestations,
            },
            v.wm,
        ));
    }
    Ok(Interchange {
        genesis_validators_root: gvr,
        data,
    })
}

fn validator_ids(conn: &Connection) -> Result<Vec<i64>, Error> {
    let mut st = conn
        .prepare("SELECT id FROM validators ORDER BY id")
        .map_err(db_err)?;
    let rows = st.query_map([], |r| r.get(0)).map_err(db_err)?;
    rows.collect::<Result<_, _>>().map_err(db_err)
}

/// Prunes the given validators (one chunk of a prune) in the writer's current transaction.
fn prune_tx(
    conn: &Connection,
    ids: &[i64],
    keep_epochs: u64,
    keep_slots: u64,
) -> Result<(), Error> {
    for &id in ids {
        let wm: Option<Watermarks> = conn
            .prepare_cached(
                "SELECT block_slot_wm, att_source_wm, att_target_wm FROM validators WHERE id = ?1",
            )
            .and_then(|mut st| {
                st.query_row([id], |r| {
                    Ok((
                        r.get::<_, Option<i64>>(0)?,
                        r.get::<_, Option<i64>>(1)?,
                        r.get::<_, Option<i64>>(2)?,
                    ))
                })
                .optional()
            })
            .map_err(db_err)?
            .map(|(b, s, t)| {
                Ok::<_, Error>(Watermarks {
                    block_slot: opt_u64(b)?,
                    att_source: opt_u64(s)?,
                    att_target: opt_u64(t)?,
                })
            })
            .transpose()?;
        let Some(old) = wm else {
            continue;
        };
        let all = stored_maxima(conn, id, Bounds::ALL)?;
        let pruned = Bounds::pruned(all, keep_epochs, keep_slots);
        let deleted = stored_maxima(conn, id, pruned)?;
        if let Some(cut) = pruned.block_slot {
            conn.prepare_cached("DELETE FROM signed_blocks WHERE validator_id = ?1 AND slot <= ?2")
                .and_then(|mut st| st.execute(params![id, to_i64(cut)]))
                .map_err(db_err)?;
        }
        if let Some(cut) = pruned.att_target {
            conn.prepare_cached(
                "DELETE FROM signed_attestations WHERE validator_id = ?1 AND target_epoch <= ?2",
            )
            .and_then(|mut st| st.execute(params![id, to_i64(cut)]))
            .map_err(db_err)?;
        }
        let wm = old.after_prune(deleted);
        if wm != old {
            set_watermarks(conn, id, &wm)?;
        }
    }
    Ok(())
}

fn has_history_tx(conn: &Connection, pubkey: &Pubkey) -> Result<bool, Error> {
    let Some(v) = find_validator(conn, pubkey)? else {
        return Ok(false);
    };
    if v.wm != Watermarks::default() {
        return Ok(true);
    }
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM signed_blocks WHERE validator_id = ?1) \
         OR EXISTS (SELECT 1 FROM signed_attestations WHERE validator_id = ?1)",
        [v.id],
        |r| r.get(0),
    )
    .map_err(db_err)
}

impl SqliteStore {
    /// Opens the file (creating it 0600), migrates the schema and starts the writer thread.
    pub async fn open(path: &str) -> Result<Self, Error> {
        let (tx, rx) = mpsc::sync_channel::<Job>(QUEUE_CAPACITY);
        let (ready_tx, ready_rx) = oneshot::channel();
        let path = path.to_string();
        std::thread::Builder::new()
            .name("slashing-sqlite".to_string())
            .spawn(move || match open_connection(&path) {
                Ok(conn) => {
                    let _ = ready_tx.send(Ok(()));
                    writer_loop(conn, rx);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .map_err(|e| Error::Open(format!("cannot start the SQLite writer thread: {e}")))?;
        ready_rx
            .await
            .map_err(|_| Error::Open("the SQLite writer thread stopped while opening".into()))??;
        Ok(Self { tx })
    }

    /// Queues a request for the writer's next batch; gives it back with the reason when it
    /// cannot be queued.
    fn submit(&self, job: Job) -> Result<(), (Job, Error)> {
        self.tx.try_send(job).map_err(|e| match e {
            mpsc::TrySendError::Full(job) => (job, Error::Busy),
            mpsc::TrySendError::Disconnected(job) => (job, stopped()),
        })
    }

    /// Runs `f` in the writer's current batch; answers after the batch commits.
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel::<Result<T, Error>>();
        self.submit(Box::new(Call { f, answer: tx }))
            .map_err(|(_, e)| e)?;
        rx.await.map_err(|_| stopped())?
    }

    /// Queues a check whose verdict goes to `then` (see `SlashingDb::check_then`).
    pub fn check_then(
        &self,
        gvr: Root,
        pubkey: Pubkey,
        check: Check,
        root: Root,
        then: Box<dyn Verdict>,
    ) {
        let answer = ToVerdict(then);
        let job: Job = match check {
            Check::Block { slot } => Box::new(Call {
                f: move |c: &Connection| check_block_tx(c, gvr, &pubkey, slot, root),
                answer,
            }),
            Check::Attestation { source, target } => Box::new(Call {
                f: move |c: &Connection| {
                    check_attestation_tx(c, gvr, &pubkey, source, target, root)
                },
                answer,
            }),
        };
        if let Err((job, e)) = self.submit(job) {
            job.refuse(e);
        }
    }

    /// Checks and records a block proposal (see `SlashingDb::check_block`).
    pub async fn check_block(
        &self,
        gvr: Root,
        pubkey: Pubkey,
        slot: u64,
        root: Root,
    ) -> Result<Safe, Error> {
        self.call(move |c| check_block_tx(c, gvr, &pubkey, slot, root))
            .await?
            .map_err(Error::Refused)
    }

    /// Checks and records an attestation (see `SlashingDb::check_attestation`).
    pub async fn check_attestation(
        &self,
        gvr: Root,
        pubkey: Pubkey,
        source: u64,
        target: u64,
        root: Root,
    ) -> Result<Safe, Error> {
        self.call(move |c| check_attestation_tx(c, gvr, &pubkey, source, target, root))
            .await?
            .map_err(Error::Refused)
    }

    /// Checks and records one attestation for each key as ONE writer job: one savepoint in one
    /// transaction, so either every verdict commits or (on any database error) none does.
    pub async fn check_attestations(
        &self,
        gvr: Root,
        pubkeys: Vec<Pubkey>,
        source: u64,
        target: u64,
        root: Root,
    ) -> Result<Vec<Result<Safe, Refusal>>, Error> {
        self.call(move |c| check_attestations_tx(c, gvr, &pubkeys, source, target, root))
            .await
    }

    /// Records the genesis validators root if none is recorded; refuses another one.
    pub async fn init_gvr(&self, gvr: Root) -> Result<(), Error> {
        self.call(move |c| ensure_gvr(c, gvr)).await
    }

    /// The recorded genesis validators root, if any.
    pub async fn gvr(&self) -> Result<Option<Root>, Error> {
        self.call(get_gvr).await
    }

    /// Applies a merged import plan atomically (see `SlashingDb::import_interchange`).
    pub async fn import(
        &self,
        gvr: Root,
        plan: BTreeMap<Pubkey, ImportRecord>,
    ) -> Result<(), Error> {
        self.call(move |c| import_tx(c, gvr, &plan)).await
    }

    /// Reads the complete history of the selected validators.
    pub async fn export(&self, pubkeys: Option<Vec<Pubkey>>) -> Result<Interchange, Error> {
        self.call(move |c| export_tx(c, pubkeys)).await
    }

    /// Enables or disables validators in one transaction, registering unknown ones.
    pub async fn set_enabled(&self, pubkeys: Vec<Pubkey>, enabled: bool) -> Result<(), Error> {
        self.call(move |c| {
            for pubkey in &pubkeys {
                let v = validator(c, pubkey)?;
                c.prepare_cached("UPDATE validators SET enabled = ?2 WHERE id = ?1")
                    .and_then(|mut st| st.execute(params![v.id, enabled]))
                    .map_err(db_err)?;
            }
            Ok(())
        })
        .await
    }

    /// The registered validators that are disabled.
    pub async fn disabled_validators(&self) -> Result<Vec<Pubkey>, Error> {
        self.call(|c| {
            let mut st = c
                .prepare_cached("SELECT pubkey FROM validators WHERE enabled = 0")
                .map_err(db_err)?;
            let rows = st
                .query_map([], |r| r.get::<_, Vec<u8>>(0))
                .map_err(db_err)?;
            rows.map(|row| {
                row.map_err(db_err)?
                    .as_slice()
                    .try_into()
                    .map_err(|_| Error::Database("a stored public key is malformed".into()))
            })
            .collect()
        })
        .await
    }

    /// Whether records or watermarks exist for the validator.
    pub async fn has_history(&self, pubkey: Pubkey) -> Result<bool, Error> {
        self.call(move |c| has_history_tx(c, &pubkey)).await
    }

    /// Deletes old records per validator and raises the watermarks over them, `chunk`
    /// validators per writer job: each chunk commits with its batch, and checks sent meanwhile are
    /// queued before the next chunk, so they wait for at most one chunk.
    pub async fn prune(
        &self,
        keep_epochs: u64,
        keep_slots: u64,
        chunk: usize,
    ) -> Result<(), Error> {
        let ids = self.call(validator_ids).await?;
        for part in ids.chunks(chunk.max(1)) {
            let part = part.to_vec();
            self.call(move |c| prune_tx(c, &part, keep_epochs, keep_slots))
                .await?;
        }
        Ok(())
    }

    /// The global high watermark, if set.
    pub async fn high_watermark(&self) -> Result<Option<HighWatermark>, Error> {
        self.call(get_high_watermark).await
    }

    /// Sets or removes the global high watermark; returns the previous one.
    pub async fn set_high_watermark(
        &self,
        hw: Option<HighWatermark>,
    ) -> Result<Option<HighWatermark>, Error> {
        self.call(move |c| set_high_watermark_tx(c, hw)).await
    }

    /// Proves the store can commit: rewrites the file header's `user_version` (one page) in the
    /// writer's next batch, which fails while the disk is full or the file cannot be written.
    pub async fn health(&self) -> Result<(), Error> {
        self.call(|c| {
            let v: i64 = c
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(db_err)?;
            c.execute_batch(&format!("PRAGMA user_version = {}", (v + 1) % 1_000_000))
                .map_err(db_err)
        })
        .await
    }
}

#[cfg(test)]
mod plan_tests {
    use super::*;

    fn plan(conn: &Connection, sql: &str) -> String {
        let mut st = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = st
            .query_map(params![1, 10, 11], |r| r.get::<_, String>(3))
            .unwrap();
        rows.map(|r| r.unwrap()).collect::<Vec<_>>().join("; ")
    }

    /// A check's queries keep their prepared plans when new epochs are bound: the bundled SQLite
    /// (built with STAT4) would otherwise re-plan the range queries on every check.
    #[test]
    fn checks_do_not_re_prepare_their_queries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("reprepare.sqlite");
        let conn = open_connection(path.to_str().unwrap()).unwrap();
        let gvr = [7; 32];
        for v in 0..4u8 {
            for epoch in 1..200u64 {
                check_attestation_tx(&conn, gvr, &[v; 48], epoch - 1, epoch, [epoch as u8; 32])
                    .unwrap()
                    .unwrap();
            }
        }
        for sql in [AT_TARGET, SURROUNDED_BY_EXISTING, SURROUNDS_EXISTING] {
            let st = conn.prepare_cached(sql).unwrap();
            assert_eq!(
                st.get_status(rusqlite::StatementStatus::RePrepare),
                0,
                "{sql}"
            );
        }
    }

    /// The surround searches must use the index whose range is narrow, never scan the whole history.
    #[test]
    fn surround_searches_walk_the_narrow_index_range() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.sqlite");
        let conn = open_connection(path.to_str().unwrap()).unwrap();
        let surrounded = plan(&conn, SURROUNDED_BY_EXISTING);
        assert!(surrounded.contains("target_epoch>?"), "{surrounded}");
        assert!(
            !surrounded.contains("SCAN signed_attestations"),
            "{surrounded}"
        );
        let surrounds = plan(&conn, SURROUNDS_EXISTING);
        assert!(
            surrounds.contains("signed_attestations_source (validator_id=? AND source_epoch>?)"),
            "{surrounds}"
        );
    }
}

#[cfg(test)]
mod collect_tests {
    use super::*;

    fn job() -> Job {
        let (tx, _rx) = oneshot::channel::<Result<(), Error>>();
        Box::new(Call {
            f: |_: &Connection| Ok(()),
            answer: tx,
        })
    }

    #[test]
    fn a_batch_takes_every_waiting_request_up_to_the_bound() {
        let (tx, rx) = mpsc::sync_channel(QUEUE_CAPACITY);
        for _ in 0..3 {
            tx.send(job()).unwrap();
        }
        assert_eq!(collect(&rx, job(), 0).len(), 4);
        for _ in 0..MAX_BATCH + 5 {
            tx.send(job()).unwrap();
        }
        assert_eq!(collect(&rx, job(), 4).len(), MAX_BATCH);
        // The rest is the next batch's; lingering on an empty queue ends by itself.
        assert_eq!(collect(&rx, job(), MAX_BATCH).len(), 7);
        assert_eq!(collect(&rx, job(), 7).len(), 1);
    }
}
