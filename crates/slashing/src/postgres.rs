//! PostgreSQL store: deadpool connection pool, schema migrated at open, one round trip per check.
//!
//! A check is a single `SELECT fs_check_block(..)` / `SELECT fs_check_attestation(..)` executed
//! outside any explicit transaction: the server runs it as one transaction that takes the
//! validator's advisory lock, decides, inserts and commits before answering. So `Ok` means the
//! record is committed, and several signer processes sharing the database are serialised per
//! validator. Every connection or pool failure becomes [`Error::Unavailable`]; the pool drops
//! closed connections and opens new ones on the next request.

use std::collections::BTreeMap;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::interchange::{ImportRecord, Interchange, InterchangeRecord};
use crate::rules::{AttestationRecord, BlockRecord, StoredRoot, stored_root};
use crate::stored::{opt_u64, to_i64, to_u64};
use crate::watermarks::{Bounds, Maxima, with_watermark_records};
use crate::{Error, HighWatermark, Pubkey, Refusal, RefusalReason, Root, Safe, Watermarks};

/// The schema, one script per version: a new database runs them all, an older one the rest.
const SCHEMA: [&str; 2] = [
    include_str!("sql/postgres_v1.sql"),
    include_str!("sql/postgres_v2.sql"),
];
const SCHEMA_VERSION: i32 = SCHEMA.len() as i32;
/// Advisory lock class of this crate ('FSLP'); object 0 serialises migrations.
const LOCK_CLASS: i32 = 1_179_862_864;
const POOL_SIZE: usize = 16;
const TIMEOUT: Duration = Duration::from_secs(10);

/// Handle to the connection pool. Cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
}

fn pg_err(e: tokio_postgres::Error) -> Error {
    match e.as_db_error() {
        Some(db) => {
            let code = db.code().code();
            // Connection exceptions, operator intervention, insufficient resources (disk full),
            // system I/O errors, serialisation/deadlock failures and a server that cannot write
            // (a standby after a failover) are transient: the caller answers 503.
            if code.starts_with("08")
                || code.starts_with("57")
                || code.starts_with("53")
                || code.starts_with("58")
                || code == "40001"
                || code == "40P01"
                || code == "25006"
            {
                Error::Unavailable(format!("PostgreSQL: {}", db.message()))
            } else {
                Error::Database(format!("PostgreSQL: {} ({code})", db.message()))
            }
        }
        // No server error: the connection was lost or could not be used (refused, TLS handshake).
        None => Error::Unavailable(format!("PostgreSQL connection: {}", chain(&e))),
    }
}

/// An error and its causes, `: `-separated (tokio-postgres shows the cause only as a source).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

fn pool_err(e: PoolError) -> Error {
    match e {
        // A new connection could not be made (refused, TLS, authentication): say why; the store is
        // unavailable whatever the cause.
        PoolError::Backend(e) => match pg_err(e) {
            Error::Database(m) => Error::Unavailable(m),
            other => other,
        },
        e => Error::Unavailable(format!("PostgreSQL pool: {e}")),
    }
}

fn root_param(root: &StoredRoot) -> Option<&[u8]> {
    root.as_ref().map(|r| r.as_slice())
}

fn root_from_db(v: Option<Vec<u8>>) -> Result<StoredRoot, Error> {
    match v {
        None => Ok(None),
        Some(bytes) => Ok(stored_root(bytes.as_slice().try_into().map_err(|_| {
            Error::Database(format!("stored signing root has {} bytes", bytes.len()))
        })?)),
    }
}

/// Decodes the result row of a check function (see `sql/postgres_v2.sql`): the code and its
/// evidence.
fn verdict(row: &tokio_postgres::Row) -> Result<Safe, Error> {
    let code: i16 = row.try_get(0).map_err(pg_err)?;
    let raw_a: Option<i64> = row.try_get(1).map_err(pg_err)?;
    let raw_b: Option<i64> = row.try_get(2).map_err(pg_err)?;
    let signing_root = root_from_db(row.try_get(3).map_err(pg_err)?)?;
    let missing = || {
        Error::Database(format!(
            "check function returned code {code} without its evidence"
        ))
    };
    let a = || opt_u64(raw_a)?.ok_or_else(missing);
    let b = || opt_u64(raw_b)?.ok_or_else(missing);
    let attestation = || -> Result<AttestationRecord, Error> {
        Ok(AttestationRecord {
            source: a()?,
            target: b()?,
            signing_root,
        })
    };
    let refusal = match (code, RefusalReason::from_code(code)) {
        (0, _) => return Ok(Safe::Inserted),
        (1, _) => return Ok(Safe::SameData),
        (_, None) => {
            return Err(Error::Database(format!(
                "unknown verdict code {code} from the check function"
            )));
        }
        (_, Some(reason)) => match reason {
            RefusalReason::DoubleBlockProposal => Refusal::DoubleBlockProposal {
                existing: BlockRecord {
                    slot: a()?,
                    signing_root,
                },
            },
            RefusalReason::BlockSlotBelowWatermark => {
                Refusal::BlockSlotBelowWatermark { watermark: a()? }
            }
            RefusalReason::SourceExceedsTarget => Refusal::SourceExceedsTarget,
            RefusalReason::DoubleVote => Refusal::DoubleVote {
                existing: attestation()?,
            },
            RefusalReason::SurroundingVote => Refusal::SurroundingVote {
                existing: attestation()?,
            },
            RefusalReason::SurroundedVote => Refusal::SurroundedVote {
                existing: attestation()?,
            },
            RefusalReason::SourceBelowWatermark => {
                Refusal::SourceBelowWatermark { watermark: a()? }
            }
            RefusalReason::TargetBelowWatermark => {
                Refusal::TargetBelowWatermark { watermark: a()? }
            }
            RefusalReason::WrongGenesisValidatorsRoot => Refusal::WrongGenesisValidatorsRoot,
            RefusalReason::ValidatorDisabled => Refusal::ValidatorDisabled,
            RefusalReason::HighWatermark => Refusal::HighWatermark {
                watermark: HighWatermark {
                    epoch: a()?,
                    slot: b()?,
                },
            },
        },
    };
    Err(Error::Refused(refusal))
}

async fn with_timeout<T>(fut: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
    tokio::time::timeout(TIMEOUT, fut).await.map_err(|_| {
        Error::Unavailable(format!(
            "PostgreSQL did not answer within {} s",
            TIMEOUT.as_secs()
        ))
    })?
}

async fn lock_validator(
    tx: &deadpool_postgres::Transaction<'_>,
    pubkey: &Pubkey,
) -> Result<(i32, Watermarks), Error> {
    let st = tx
        .prepare_cached("SELECT fs_lock_validator($1)")
        .await
        .map_err(pg_err)?;
    let id: i32 = tx
        .query_one(&st, &[&pubkey.as_slice()])
        .await
        .map_err(pg_err)?
        .try_get(0)
        .map_err(pg_err)?;
    let row = tx
        .query_one(
            "SELECT block_slot_wm, att_source_wm, att_target_wm FROM validators WHERE id = $1",
            &[&id],
        )
        .await
        .map_err(pg_err)?;
    let wm = Watermarks {
        block_slot: opt_u64(row.try_get(0).map_err(pg_err)?)?,
        att_source: opt_u64(row.try_get(1).map_err(pg_err)?)?,
        att_target: opt_u64(row.try_get(2).map_err(pg_err)?)?,
    };
    Ok((id, wm))
}

async fn set_watermarks(
    tx: &deadpool_postgres::Transaction<'_>,
    id: i32,
    wm: &Watermarks,
) -> Result<(), Error> {
    tx.execute(
        "UPDATE validators SET block_slot_wm = $2, att_source_wm = $3, att_target_wm = $4 WHERE id = $1",
        &[&id, &wm.block_slot.map(to_i64), &wm.att_source.map(to_i64), &wm.att_target.map(to_i64)],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

/// Decodes an `(epoch, slot)` row of the `high_watermark` table.
fn high_watermark_from_row(row: &tokio_postgres::Row) -> Result<HighWatermark, Error> {
    Ok(HighWatermark {
        epoch: to_u64(row.try_get(0).map_err(pg_err)?)?,
        slot: to_u64(row.try_get(1).map_err(pg_err)?)?,
    })
}

/// The maxima of a validator's stored records within `bounds`.
async fn maxima(
    tx: &deadpool_postgres::Transaction<'_>,
    id: i32,
    bounds: Bounds,
) -> Result<Maxima, Error> {
    let mut m = Maxima::default();
    if let Some(cut) = bounds.block_slot {
        let max: Option<i64> = tx
            .query_one(
                "SELECT MAX(slot) FROM signed_blocks WHERE validator_id = $1 AND slot <= $2",
                &[&id, &to_i64(cut)],
            )
            .await
            .map_err(pg_err)?
            .try_get(0)
            .map_err(pg_err)?;
        m.block_slot = opt_u64(max)?;
    }
    if let Some(cut) = bounds.att_target {
        let row = tx
            .query_one(
                "SELECT MAX(source_epoch), MAX(target_epoch) FROM signed_attestations \
                 WHERE validator_id = $1 AND target_epoch <= $2",
                &[&id, &to_i64(cut)],
            )
            .await
            .map_err(pg_err)?;
        m.att_source = opt_u64(row.try_get(0).map_err(pg_err)?)?;
        m.att_target = opt_u64(row.try_get(1).map_err(pg_err)?)?;
    }
    Ok(m)
}

/// A server that refuses a connection without TLS says "no encryption" (before PostgreSQL 14: "SSL
/// off") in its pg_hba refusal: point at `sslmode` when the URL turned TLS off.
fn with_tls_hint(e: Error, mode: crate::pg_tls::SslMode) -> Error {
    let hint = "the server accepts only TLS connections here: use sslmode=require, verify-ca or \
                verify-full";
    match e {
        Error::Unavailable(m)
            if mode == crate::pg_tls::SslMode::Disable
                && (m.contains("no encryption") || m.contains("SSL off")) =>
        {
            Error::Unavailable(format!("{m}; {hint}"))
        }
        e => e,
    }
}

impl PgStore {
    /// Connects, migrates the schema (serialised across processes by an advisory lock) and
    /// returns a pool handle.
    pub async fn open(url: &str) -> Result<Self, Error> {
        let (mut cfg, tls, settings) = crate::pg_tls::configure(url)?;
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(Duration::from_secs(5));
        }
        let manager_config = || ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match tls {
            Some(tls) => Manager::from_config(cfg, tls, manager_config()),
            None => Manager::from_config(cfg, NoTls, manager_config()),
        };
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| Error::Open(format!("cannot build the PostgreSQL pool: {e}")))?;
        let store = Self { pool };
        with_timeout(store.migrate())
            .await
            .map_err(|e| with_tls_hint(e, settings.effective_mode()))?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), Error> {
        let mut client = self.pool.get().await.map_err(pool_err)?;
        let tx = client.transaction().await.map_err(pg_err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1, 0)", &[&LOCK_CLASS])
            .await
            .map_err(pg_err)?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            .await
            .map_err(pg_err)?;
        let version: Option<i32> = tx
            .query_one("SELECT MAX(version) FROM schema_version", &[])
            .await
            .map_err(pg_err)?
            .try_get(0)
            .map_err(pg_err)?;
        let from = version.unwrap_or(0);
        if !(0..=SCHEMA_VERSION).contains(&from) {
            return Err(Error::Open(format!(
                "schema version {from} is newer than this program ({SCHEMA_VERSION})"
            )));
        }
        for (i, script) in SCHEMA.iter().enumerate().skip(from as usize) {
            tx.batch_execute(script).await.map_err(|e| {
                Error::Open(format!("schema migration to version {} failed: {e}", i + 1))
            })?;
        }
        if from < SCHEMA_VERSION {
            tx.execute("DELETE FROM schema_version", &[])
                .await
                .map_err(pg_err)?;
            tx.execute(
                "INSERT INTO schema_version (version) VALUES ($1)",
                &[&SCHEMA_VERSION],
            )
            .await
            .map_err(pg_err)?;
        }
        tx.commit().await.map_err(pg_err)
    }

    async fn check(
        &self,
        sql: &'static str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Safe, Error> {
        with_timeout(async {
            let client = self.pool.get().await.map_err(pool_err)?;
            let st = client.prepare_cached(sql).await.map_err(pg_err)?;
            let row = client.query_one(&st, params).await.map_err(pg_err)?;
            verdict(&row)
        })
        .await
    }

    /// Checks and records a block proposal (see `SlashingDb::check_block`).
    pub async fn check_block(
        &self,
        gvr: Root,
        pubkey: &Pubkey,
        slot: u64,
        root: Root,
    ) -> Result<Safe, Error> {
        let root = stored_root(root);
        self.check(
            "SELECT o_code, o_a, o_b, o_root FROM fs_check_block($1, $2, $3, $4)",
            &[
                &gvr.as_slice(),
                &pubkey.as_slice(),
                &to_i64(slot),
                &root_param(&root),
            ],
        )
        .await
    }

    /// Checks and records an attestation (see `SlashingDb::check_attestation`).
    pub async fn check_attestation(
        &self,
        gvr: Root,
        pubkey: &Pubkey,
        source: u64,
        target: u64,
        root: Root,
    ) -> Result<Safe, Error> {
        let root = stored_root(root);
        self.check(
            "SELECT o_code, o_a, o_b, o_root FROM fs_check_attestation($1, $2, $3, $4, $5)",
            &[
                &gvr.as_slice(),
                &pubkey.as_slice(),
                &to_i64(source),
                &to_i64(target),
                &root_param(&root),
            ],
        )
        .await
    }

    /// Checks and records one attestation for each key (sorted, distinct) in ONE statement, hence
    /// one transaction and one round trip: the check function runs for each key in the given order,
    /// taking each validator's advisory lock until the statement commits. Any error rolls back
    /// every key's record.
    pub async fn check_attestations(
        &self,
        gvr: Root,
        pubkeys: &[Pubkey],
        source: u64,
        target: u64,
        root: Root,
    ) -> Result<Vec<Result<Safe, Refusal>>, Error> {
        let root = stored_root(root);
        let keys: Vec<&[u8]> = pubkeys.iter().map(|k| k.as_slice()).collect();
        let rows = with_timeout(async {
            let client = self.pool.get().await.map_err(pool_err)?;
            let st = client
                .prepare_cached(
                    "SELECT c.o_code, c.o_a, c.o_b, c.o_root \
                     FROM unnest($2::bytea[]) WITH ORDINALITY AS k(pubkey, ord) \
                     CROSS JOIN LATERAL fs_check_attestation($1, k.pubkey, $3, $4, $5) AS c \
                     ORDER BY k.ord",
                )
                .await
                .map_err(pg_err)?;
            client
                .query(
                    &st,
                    &[
                        &gvr.as_slice(),
                        &keys,
                        &to_i64(source),
                        &to_i64(target),
                        &root_param(&root),
                    ],
                )
                .await
                .map_err(pg_err)
        })
        .await?;
        rows.iter()
            .map(|row| match verdict(row) {
                Ok(safe) => Ok(Ok(safe)),
                Err(Error::Refused(refusal)) => Ok(Err(refusal)),
                Err(e) => Err(e),
            })
            .collect()
    }

    /// Records the genesis validators root if none is recorded; refuses another one.
    pub async fn init_gvr(&self, gvr: Root) -> Result<(), Error> {
        with_timeout(async {
            let client = self.pool.get().await.map_err(pool_err)?;
            let ok: bool = client
                .query_one("SELECT fs_genesis_ok($1)", &[&gvr.as_slice()])
                .await
                .map_err(pg_err)?
                .try_get(0)
                .map_err(pg_err)?;
            if ok {
                Ok(())
            } else {
                Err(Error::Refused(Refusal::WrongGenesisValidatorsRoot))
            }
        })
        .await
    }

    /// The recorded genesis validators root, if any.
    pub async fn gvr(&self) -> Result<Option<Root>, Error> {
        with_timeout(async {
            let client = self.pool.get().await.map_err(pool_err)?;
            let row = client
                .query_opt(
                    "SELECT genesis_validators_root FROM metadata WHERE id = 1",
                    &[],
                )
                .await
                .map_err(pg_err)?;
            match row {
                None => Ok(None),
                Some(row) => {
                    let bytes: Vec<u8> = row.try_get(0).map_err(pg_err)?;
                    Ok(Some(bytes.as_slice().try_into().map_err(|_| {
                        Error::Database("stored genesis validators root is malformed".into())
                    })?))
                }
            }
        })
        .await
    }

    /// Applies a merged import plan atomically (see `SlashingDb::import_interchange`).
    pub async fn import(
        &self,
        gvr: Root,
        plan: BTreeMap<Pubkey, ImportRecord>,
    ) -> Result<(), Error> {
        let mut client = self.pool.get().await.map_err(pool_err)?;
        let tx = client.transaction().await.map_err(pg_err)?;
        let ok: bool = tx
            .query_one("SELECT fs_genesis_ok($1)", &[&gvr.as_slice()])
            .await
            .map_err(pg_err)?
            .try_get(0)
            .map_err(pg_err)?;
        if !ok {
            return Err(Error::InvalidInterchange(
                "the interchange genesis_validators_root differs from this database's".to_string(),
            ));
        }
        // Validators are locked in pubkey order (the BTreeMap's), so concurrent imports cannot
        // deadlock; checks lock a single validator.
        for (pubkey, rec) in &plan {
            let (id, old) = lock_validator(&tx, pubkey).await?;
            if !rec.blocks.is_empty() {
                let slots: Vec<i64> = rec.blocks.keys().map(|s| to_i64(*s)).collect();
                let roots: Vec<Option<&[u8]>> = rec.blocks.values().map(root_param).collect();
                tx.execute(
                    "INSERT INTO signed_blocks (validator_id, slot, signing_root) \
                     SELECT $1, s, r FROM UNNEST($2::BIGINT[], $3::BYTEA[]) AS u(s, r) \
                     ON CONFLICT (validator_id, slot) DO UPDATE SET signing_root = \
                     CASE WHEN signed_blocks.signing_root = excluded.signing_root \
                     THEN signed_blocks.signing_root ELSE NULL END",
                    &[&id, &slots, &roots],
                )
                .await
                .map_err(pg_err)?;
            }
            if !rec.attestations.is_empty() {
                let targets: Vec<i64> = rec.attestations.keys().map(|t| to_i64(*t)).collect();
                let sources: Vec<i64> =
                    rec.attestations.values().map(|(s, _)| to_i64(*s)).collect();
                let roots: Vec<Option<&[u8]>> = rec
                    .attestations
                    .values()
                    .map(|(_, r)| root_param(r))
                    .collect();
                tx.execute(
                    "INSERT INTO signed_attestations (validator_id, source_epoch, target_epoch, signing_root) \
                     SELECT $1, s, t, r FROM UNNEST($2::BIGINT[], $3::BIGINT[], $4::BYTEA[]) AS u(s, t, r) \
                     ON CONFLICT (validator_id, target_epoch) DO UPDATE SET \
                     source_epoch = GREATEST(signed_attestations.source_epoch, excluded.source_epoch), \
                     signing_root = CASE WHEN signed_attestations.signing_root = excluded.signing_root \
                     AND signed_attestations.source_epoch = excluded.source_epoch \
                     THEN signed_attestations.signing_root ELSE NULL END",
                    &[&id, &sources, &targets, &roots],
                )
                .await
                .map_err(pg_err)?;
            }
            let wm = old.after_import(rec, maxima(&tx, id, Bounds::ALL).await?);
            if wm != old {
                set_watermarks(&tx, id, &wm).await?;
            }
        }
        tx.commit().await.map_err(pg_err)
    }

    /// Reads the complete history of the selected validators.
    pub async fn export(&self, pubkeys: Option<&[Pubkey]>) -> Result<Interchange, Error> {
        let gvr = self.gvr().await?.ok_or(Error::NoGenesisValidatorsRoot)?;
        let mut client = self.pool.get().await.map_err(pool_err)?;
        // One snapshot for the whole export.
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(pg_err)?;
        let rows = tx
            .query("SELECT id, pubkey, block_slot_wm, att_source_wm, att_target_wm FROM validators ORDER BY id", &[])
            .await
            .map_err(pg_err)?;
        let mut data = Vec::new();
        for row in rows {
            let id: i32 = row.try_get(0).map_err(pg_err)?;
            let pk: Vec<u8> = row.try_get(1).map_err(pg_err)?;
            let pubkey: Pubkey = pk
                .as_slice()
                .try_into()
                .map_err(|_| Error::Database("stored pubkey is malformed".into()))?;
            if pubkeys.is_some_and(|only| !only.contains(&pubkey)) {
                continue;
            }
            let wm = Watermarks {
                block_slot: opt_u64(row.try_get(2).map_err(pg_err)?)?,
                att_source: opt_u64(row.try_get(3).map_err(pg_err)?)?,
                att_target: opt_u64(row.try_get(4).map_err(pg_err)?)?,
            };
            let mut signed_blocks = Vec::new();
            for b in tx
                .query("SELECT slot, signing_root FROM signed_blocks WHERE validator_id = $1 ORDER BY slot", &[&id])
                .await
                .map_err(pg_err)?
            {
                signed_blocks.push(BlockRecord {
                    slot: to_u64(b.try_get(0).map_err(pg_err)?)?,
                    signing_root: root_from_db(b.try_get(1).map_err(pg_err)?)?,
                });
            }
            let mut signed_attestations = Vec::new();
            for a in tx
                .query(
                    "SELECT source_epoch, target_epoch, signing_root FROM signed_attestations \
                     WHERE validator_id = $1 ORDER BY target_epoch",
                    &[&id],
                )
                .await
                .map_err(pg_err)?
            {
                signed_attestations.push(AttestationRecord {
                    source: to_u64(a.try_get(0).map_err(pg_err)?)?,
                    target: to_u64(a.try_get(1).map_err(pg_err)?)?,
                    signing_root: root_from_db(a.try_get(2).map_err(pg_err)?)?,
                });
            }
            data.push(with_watermark_records(
                InterchangeRecord {
                    pubkey,
                    signed_blocks,
                    signed_attestations,
                },
                wm,
            ));
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(Interchange {
            genesis_validators_root: gvr,
            data,
        })
    }

    /// Enables or disables validators in one transaction (locked in the given order), registering
    /// unknown ones.
    pub async fn set_enabled(&self, pubkeys: &[Pubkey], enabled: bool) -> Result<(), Error> {
        with_timeout(async {
            let mut client = self.pool.get().await.map_err(pool_err)?;
            let tx = client.transaction().await.map_err(pg_err)?;
            for pubkey in pubkeys {
                let (id, _) = lock_validator(&tx, pubkey).await?;
                tx.execute(
                    "UPDATE validators SET enabled = $2 WHERE id = $1",
                    &[&id, &enabled],
                )
                .await
                .map_err(pg_err)?;
            }
            tx.commit().await.map_err(pg_err)
        })
        .await
    }

    /// The registered validators that are disabled.
    pub async fn disabled_validators(&self) -> Result<Vec<Pubkey>, Error> {
        with_timeout(async {
            let client = self.pool.get().await.map_err(pool_err)?;
            let rows = client
                .query("SELECT pubkey FROM validators WHERE NOT enabled", &[])
                .await
                .map_err(pg_err)?;
            rows.iter()
                .map(|row| {
                    let bytes: &[u8] = row.try_get(0).map_err(pg_err)?;
                    bytes
                        .try_into()
                        .map_err(|_| Error::Database("a stored public key is malformed".into()))
                })
                .collect()
        })
        .await
    }

    /// Whether records or watermarks exist for the validator.
    pub async fn has_history(&self, pubkey: &Pubkey) -> Result<bool, Error> {
        with_timeout(async {
            let client = self.pool.get().await.map_err(pool_err)?;
            client
                .query_one(
                    "SELECT COALESCE((SELECT block_slot_wm IS NOT NULL OR att_source_wm IS NOT NULL \
                     OR att_target_wm IS NOT NULL \
                     OR EXISTS (SELECT 1 FROM signed_blocks b WHERE b.validator_id = v.id) \
                     OR EXISTS (SELECT 1 FROM signed_attestations a WHERE a.validator_id = v.id) \
                     FROM validators v WHERE v.pubkey = $1), FALSE)",
                    &[&pubkey.as_slice()],
                )
                .await
                .map_err(pg_err)?
                .try_get(0)
                .map_err(pg_err)
        })
        .await
    }

    /// Prunes `chunk` validators per transaction, each under its advisory lock, taken in pubkey
    /// order (the order of imports and `set_enabled`, so they cannot deadlock with a prune). A
    /// check waits for at most one chunk.
    pub async fn prune(
        &self,
        keep_epochs: u64,
        keep_slots: u64,
        chunk: usize,
    ) -> Result<(), Error> {
        let mut client = self.pool.get().await.map_err(pool_err)?;
        let ids: Vec<i32> = client
            .query("SELECT id FROM validators ORDER BY pubkey", &[])
            .await
            .map_err(pg_err)?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()
            .map_err(pg_err)?;
        for part in ids.chunks(chunk.max(1)) {
            let tx = client.transaction().await.map_err(pg_err)?;
            for &id in part {
                tx.execute("SELECT pg_advisory_xact_lock($1, $2)", &[&LOCK_CLASS, &id])
                    .await
                    .map_err(pg_err)?;
                let row = tx
                    .query_one("SELECT block_slot_wm, att_source_wm, att_target_wm FROM validators WHERE id = $1", &[&id])
                    .await
                    .map_err(pg_err)?;
                let old = Watermarks {
                    block_slot: opt_u64(row.try_get(0).map_err(pg_err)?)?,
                    att_source: opt_u64(row.try_get(1).map_err(pg_err)?)?,
                    att_target: opt_u64(row.try_get(2).map_err(pg_err)?)?,
                };
                let all = maxima(&tx, id, Bounds::ALL).await?;
                let pruned = Bounds::pruned(all, keep_epochs, keep_slots);
                let deleted = maxima(&tx, id, pruned).await?;
                if let Some(cut) = pruned.block_slot {
                    tx.execute(
                        "DELETE FROM signed_blocks WHERE validator_id = $1 AND slot <= $2",
                        &[&id, &to_i64(cut)],
                    )
                    .await
                    .map_err(pg_err)?;
                }
                if let Some(cut) = pruned.att_target {
                    tx.execute(
                        "DELETE FROM signed_attestations WHERE validator_id = $1 AND target_epoch <= $2",
                        &[&id, &to_i64(cut)],
                    )
                    .await
                    .map_err(pg_err)?;
                }
                let wm = old.after_prune(deleted);
                if wm != old {
                    set_watermarks(&tx, id, &wm).await?;
                }
            }
            tx.commit().await.map_err(pg_err)?;
        }
        Ok(())
    }

    /// The global high watermark, if set.
    pub async fn high_watermark(&self) -> Result<Option<HighWatermark>, Error> {
        with_timeout(async {
            let client = self.pool.get().await.map_err(pool_err)?;
            let row = client
                .query_opt("SELECT epoch, slot FROM high_watermark WHERE id = 1", &[])
                .await
                .map_err(pg_err)?;
            row.as_ref().map(high_watermark_from_row).transpose()
        })
        .await
    }

    /// Sets (`Some`) or removes (`None`) the global high watermark; returns the previous one.
    pub async fn set_high_watermark(
        &self,
        hw: Option<HighWatermark>,
    ) -> Result<Option<HighWatermark>, Error> {
        with_timeout(async {
            let mut client = self.pool.get().await.map_err(pool_err)?;
            let tx = client.transaction().await.map_err(pg_err)?;
            let previous = tx
                .query_opt(
                    "SELECT epoch, slot FROM high_watermark WHERE id = 1 FOR UPDATE",
                    &[],
                )
                .await
                .map_err(pg_err)?
                .as_ref()
                .map(high_watermark_from_row)
                .transpose()?;
            match hw {
                Some(hw) => {
                    let (epoch, slot) = (to_i64(hw.epoch), to_i64(hw.slot));
                    tx.execute(
                        "INSERT INTO high_watermark (id, epoch, slot) VALUES (1, $1, $2) \
                         ON CONFLICT (id) DO UPDATE SET epoch = excluded.epoch, slot = excluded.slot",
                        &[&epoch, &slot],
                    )
                    .await
                }
                None => tx.execute("DELETE FROM high_watermark", &[]).await,
            }
            .map_err(pg_err)?;
            tx.commit().await.map_err(pg_err)?;
            Ok(previous)
        })
        .await
    }

    /// Proves the server can commit: a transaction that takes a transaction id, which a standby
    /// (read-only) server refuses and which writes a commit record.
    pub async fn health(&self) -> Result<(), Error> {
        with_timeout(async {
            let client = self.pool.get().await.map_err(pool_err)?;
            client
                .query_one("SELECT txid_current()", &[])
                .await
                .map_err(pg_err)?;
            Ok(())
        })
        .await
    }
}
