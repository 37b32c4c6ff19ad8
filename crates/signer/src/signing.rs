//! The signing pipeline: parse → signing root → key → slashing check-and-insert (committed) → BLS sign.
//!
//! A request that fails any step leaves no slashing record and produces no signature.
//!
//! Hand-offs: the HTTP task parses and hashes, then queues the slashing check; where the verdict is
//! known (on SQLite the writer thread, right after its commit) the permitted signature is queued on
//! the signing pool, whose thread answers the HTTP task: two hand-offs per request (task → writer →
//! pool → task), with no async worker between the commit and the signature. Handlers call
//! [`Signer::sign`] and map [`SignError`] to a status; no rule lives in a handler.
//!
//! Batches (one request, many keys; `batch`) run the same steps with the request prepared once and
//! one slashing transaction for all keys.
//!
//! The slashing check waits at most the database deadline (`--slashing-protection-db-timeout-ms`);
//! a database that fails or does not answer in time is [`SignError::Unavailable`] (503), logged once
//! when the fault starts and once when it ends ([`FaultLog`]), not once per request.

mod batch;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ferrosigner_bls::{PUBLIC_KEY_LEN, Signature, decode_hex_array};
use ferrosigner_consensus::{Network, Prepared, SlashingSubject};
use ferrosigner_slashing::{Check, Refusal, Safe, SlashingDb, Verdict};
use tokio::sync::oneshot;

use crate::faults::FaultLog;
use crate::keys::{KeyEntry, KeyView};
use crate::metrics::{Metrics, OperationLabels, RefusalLabels};
use crate::pool::{Done, PoolError, SignPool};

pub use batch::{BATCH_KINDS, BatchItem, BatchRequest, DEFAULT_MAX_BATCH_IDENTIFIERS};

/// How long a slashing check waits for the database by default.
pub const DEFAULT_DB_DEADLINE: Duration = Duration::from_secs(2);

/// Why a signing request was not signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The request is malformed or inconsistent (400).
    #[error("{0}")]
    BadRequest(String),
    /// The body is larger than its request type allows (413).
    #[error("{0}")]
    TooLarge(String),
    /// No such key is loaded (404).
    #[error("no key {0} is loaded")]
    UnknownKey(String),
    /// Keys are still loading and this one is not among those loaded so far (503).
    #[error("keys are still loading")]
    NotReady,
    /// Slashing protection refused (412), with the reason and the conflicting record or watermark.
    #[error("slashing protection refused: {0}")]
    Refused(Refusal),
    /// The request cannot be served now (503); nothing was signed.
    #[error("{0}")]
    Unavailable(#[from] Unavailable),
    /// Anything else (500); nothing was signed.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Why a request cannot be served now (503). Nothing was signed; retrying later may succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    /// The slashing database failed: down, disk full, damaged, or its writer stopped.
    #[error("slashing protection database unavailable: {0}")]
    Database(ferrosigner_slashing::Error),
    /// The slashing database did not answer within the deadline.
    #[error("slashing protection database did not answer within {} ms", .0.as_millis())]
    DatabaseDeadline(Duration),
    /// Too many requests are waiting for the slashing database.
    #[error("too many requests are waiting for the slashing protection database; retry shortly")]
    DatabaseBusy,
    /// Too many signatures are waiting for a signing thread.
    #[error("too many signatures are waiting for a signing thread; retry shortly")]
    SigningBusy,
}

impl Unavailable {
    /// Whether this is load shedding (a full queue), which clears within moments, rather than a fault.
    pub fn is_overload(&self) -> bool {
        matches!(self, Unavailable::DatabaseBusy | Unavailable::SigningBusy)
    }
}

impl SignError {
    /// The short outcome label used in metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            SignError::BadRequest(_) => "bad_request",
            SignError::TooLarge(_) => "too_large",
            SignError::UnknownKey(_) => "unknown_key",
            SignError::NotReady => "not_ready",
            SignError::Refused(_) => "slashing_refused",
            SignError::Unavailable(u) if u.is_overload() => "overloaded",
            SignError::Unavailable(_) => "unavailable",
            SignError::Internal(_) => "internal",
        }
    }
}

/// Shared state of the signing service.
pub struct Signer {
    network: Network,
    keys: KeyView,
    slashing: Option<SlashingDb>,
    pool: SignPool,
    metrics: Arc<Metrics>,
    db_deadline: Duration,
    db_faults: FaultLog,
    any_genesis_root: bool,
}

impl Signer {
    /// A signer over these parts. `slashing: None` means slashing protection is off.
    pub fn new(
        network: Network,
        keys: KeyView,
        slashing: Option<SlashingDb>,
        pool: SignPool,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            network,
            keys,
            slashing,
            pool,
            metrics,
            db_deadline: DEFAULT_DB_DEADLINE,
            db_faults: FaultLog::new("the slashing protection database", Duration::from_secs(30)),
            any_genesis_root: false,
        }
    }

    /// With `allow`, signs requests whose `genesis_validators_root` is not the network's (with the
    /// request's root, which the signing domain uses); the slashing database still refuses blocks and
    /// attestations of a root other than the one it records. For test rigs and devnets.
    pub fn allow_any_genesis_validators_root(mut self, allow: bool) -> Self {
        self.any_genesis_root = allow;
        self
    }

    /// Sets how long a slashing check (and a health probe) waits for the database.
    pub fn with_db_deadline(mut self, deadline: Duration) -> Self {
        self.db_deadline = deadline;
        self
    }

    /// Proves the slashing database can commit, within the deadline; `Ok` when protection is off.
    /// Failures and recovery are logged through the fault log, like those of signing requests.
    pub async fn probe_database(&self) -> Result<(), Unavailable> {
        let Some(db) = &self.slashing else {
            return Ok(());
        };
        let outcome = self.within_deadline(db.health()).await;
        self.note_database(&outcome);
        outcome?.map_err(unavailable)
    }

    /// The global high watermark (`None` when none is set or protection is off), within the deadline.
    pub async fn high_watermark(
        &self,
    ) -> Result<Option<ferrosigner_slashing::HighWatermark>, Unavailable> {
        let Some(db) = &self.slashing else {
            return Ok(None);
        };
        let outcome = self.within_deadline(db.high_watermark()).await;
        self.note_database(&outcome);
        outcome?.map_err(unavailable)
    }

    /// Whether the slashing database is in a fault (its last outcome was a failure).
    pub fn database_faulted(&self) -> bool {
        self.db_faults.is_faulted()
    }

    /// Runs a database call within the deadline; the outer `Err` is the deadline passing.
    async fn within_deadline<T>(
        &self,
        call: impl Future<Output = Result<T, ferrosigner_slashing::Error>>,
    ) -> DbOutcome<T> {
        tokio::time::timeout(self.db_deadline, call)
            .await
            .map_err(|_| Unavailable::DatabaseDeadline(self.db_deadline))
    }

    /// Feeds a database outcome to the fault log: an answer (even a refusal, or a value the database
    /// rejects) shows it works; load shedding is not a fault.
    fn note_database<T>(&self, outcome: &DbOutcome<T>) {
        use ferrosigner_slashing::Error as E;
        match outcome {
            Ok(Ok(_) | Err(E::Refused(_) | E::ValueOutOfRange { .. })) => {
                self.db_faults.succeeded()
            }
            Ok(Err(E::Busy)) => {}
            Ok(Err(e)) => self.db_faults.failed(e),
            Err(deadline) => self.db_faults.failed(deadline),
        }
    }

    /// The network whose fork schedule is used.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// The keys (read-only) and their load state.
    pub fn keys(&self) -> &KeyView {
        &self.keys
    }

    /// The slashing database, when protection is on.
    pub fn slashing(&self) -> Option<&SlashingDb> {
        self.slashing.as_ref()
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Signs the request `body` with the key `pubkey` (`0x` hex), counting the outcome in metrics.
    ///
    /// The body is parsed and hashed on the calling task: use it for bodies within the ordinary
    /// limit, and [`Signer::sign_large`] for larger ones.
    pub async fn sign(&self, pubkey: &str, body: &[u8]) -> Result<Signature, SignError> {
        self.sign_counted(pubkey, Body::Inline(body)).await
    }

    /// Signs a large request body (beyond the ordinary body limit): only request types that may
    /// carry one ([`ferrosigner_consensus::RequestKind::allows_large_body`], i.e. execution
    /// payload envelopes) are accepted, others get [`SignError::TooLarge`]. Parsing and hashing run
    /// on a blocking thread, never on the async workers.
    pub async fn sign_large<B>(&self, pubkey: &str, body: B) -> Result<Signature, SignError>
    where
        B: AsRef<[u8]> + Send + 'static,
    {
        self.sign_counted(pubkey, Body::Large(Box::new(body))).await
    }

    async fn sign_counted(&self, pubkey: &str, body: Body<'_>) -> Result<Signature, SignError> {
        let start = Instant::now();
        let mut kind = "unknown";
        let result = self.sign_inner(pubkey, body, &mut kind).await;
        self.count_outcome(kind, start, &result);
        result
    }

    /// Counts one signing outcome of type `kind` (a signature's time since `start` too).
    fn count_outcome(
        &self,
        kind: &'static str,
        start: Instant,
        result: &Result<Signature, SignError>,
    ) {
        let outcome = match result {
            Ok(_) => {
                self.metrics
                    .signing_duration
                    .get_or_create(&OperationLabels { operation: kind })
                    .observe(start.elapsed().as_secs_f64());
                "signed"
            }
            Err(e) => e.outcome(),
        };
        self.metrics.count_request(kind, outcome);
    }

    /// Parses and hashes `body` (large bodies on a blocking thread).
    async fn prepare(&self, body: Body<'_>) -> Result<Prepared, SignError> {
        let bad = |e: ferrosigner_consensus::Error| SignError::BadRequest(e.to_string());
        match body {
            Body::Inline(body) => ferrosigner_consensus::prepare(body, &self.network).map_err(bad),
            Body::Large(body) => {
                let network = self.network.clone();
                tokio::task::spawn_blocking(move || {
                    let bytes = (*body).as_ref();
                    // Only the types that carry a whole payload may be large: look at the type
                    // before parsing the rest.
                    let kind = ferrosigner_consensus::request_kind(bytes).map_err(bad)?;
                    if !kind.allows_large_body() {
                        return Err(SignError::TooLarge(format!(
                            "a {kind} request body of {} bytes exceeds the ordinary body limit",
                            bytes.len()
                        )));
                    }
                    ferrosigner_consensus::prepare(bytes, &network).map_err(bad)
                })
                .await
                .map_err(|e| SignError::Internal(format!("parsing task failed: {e}")))?
            }
        }
    }

    async fn sign_inner(
        &self,
        pubkey: &str,
        body: Body<'_>,
        kind: &mut &'static str,
    ) -> Result<Signature, SignError> {
        let pubkey_bytes: [u8; PUBLIC_KEY_LEN] = decode_hex_array(pubkey).map_err(|_| {
            SignError::BadRequest(format!(
                "`{}` is not a 48-byte hex public key",
                truncate(pubkey)
            ))
        })?;
        let prepared = self.prepare(body).await?;
        *kind = prepared.kind.as_str();
        self.check_genesis_root(prepared.genesis_validators_root)?;
        let Some(key) = self.keys.get(&pubkey_bytes) else {
            return Err(if self.keys.loaded() {
                SignError::UnknownKey(format!("0x{}", hex::encode(pubkey_bytes)))
            } else {
                SignError::NotReady
            });
        };
        let signature = match (&self.slashing, prepared.slashing) {
            (Some(db), Some(subject)) => {
                let gvr = prepared.genesis_validators_root.ok_or_else(|| {
                    SignError::BadRequest("fork_info.genesis_validators_root is required".into())
                })?;
                self.check_and_sign(db, gvr, &pubkey_bytes, key, subject, prepared.signing_root)
                    .await?
            }
            _ => self.pool.sign(key, prepared.signing_root).await,
        };
        signature.map_err(|e| match e {
            PoolError::Busy => SignError::Unavailable(Unavailable::SigningBusy),
            PoolError::Stopped => SignError::Internal(e.to_string()),
        })
    }

    /// Refuses a request whose `genesis_validators_root` is not the network's (unless any root is
    /// allowed).
    fn check_genesis_root(&self, requested: Option<[u8; 32]>) -> Result<(), SignError> {
        if let (Some(requested), Some(expected)) =
            (requested, self.network.genesis_validators_root())
            && requested != expected
            && !self.any_genesis_root
        {
            return Err(SignError::BadRequest(format!(
                "genesis_validators_root 0x{} is not that of network {} (0x{})",
                hex::encode(requested),
                self.network.name(),
                hex::encode(expected)
            )));
        }
        Ok(())
    }

    /// Checks and records `subject` for `key`, and signs once the record is committed: the
    /// signature is queued on the pool where the verdict is known (on SQLite the writer thread,
    /// right after its commit), and comes back here in one hand-off. The outer `Err` is the
    /// slashing verdict or failure (nothing signed); the inner result is the pool's.
    ///
    /// The database deadline covers the check only: a request whose record committed in time
    /// waits for its signature however long the (bounded) queue takes. A request past the
    /// deadline whose check has not been decided abandons it: unrun, nothing is recorded;
    /// decided in that very moment, the record stands but no signature is made.
    async fn check_and_sign(
        &self,
        db: &SlashingDb,
        gvr: [u8; 32],
        pubkey: &[u8; PUBLIC_KEY_LEN],
        key: Arc<KeyEntry>,
        subject: SlashingSubject,
        signing_root: [u8; 32],
    ) -> Result<Result<Signature, PoolError>, SignError> {
        let start = Instant::now();
        let (operation, check) = match subject {
            SlashingSubject::Block { slot } => ("block", Check::Block { slot }),
            SlashingSubject::Attestation {
                source_epoch,
                target_epoch,
            } => (
                "attestation",
                Check::Attestation {
                    source: source_epoch,
                    target: target_epoch,
                },
            ),
        };
        let (tx, rx) = oneshot::channel();
        let decided = Arc::new(AtomicBool::new(false));
        let then = SignAfterCheck {
            tx,
            key,
            message: signing_root,
            pool: self.pool.clone(),
            start,
            decided: decided.clone(),
        };
        let answered = async {
            db.check_then(gvr, pubkey, check, signing_root, Box::new(then))
                .await;
            rx.await
        };
        tokio::pin!(answered);
        let stopped = || Ok(Err(PoolError::Stopped));
        let checked = match tokio::time::timeout(self.db_deadline, &mut answered).await {
            Ok(Ok(checked)) => checked,
            // Decided in time: only the signature is still to come.
            Err(_) if decided.load(Ordering::Acquire) => match answered.await {
                Ok(checked) => checked,
                Err(_) => return stopped(),
            },
            // The pool went away without answering (only at shutdown).
            Ok(Err(_)) if decided.load(Ordering::Acquire) => return stopped(),
            Ok(Err(_)) => Checked::failed(
                Ok(Err(ferrosigner_slashing::Error::Unavailable(
                    "the slashing database writer stopped".into(),
                ))),
                start,
            ),
            Err(_) => Checked::failed(Err(Unavailable::DatabaseDeadline(self.db_deadline)), start),
        };
        self.slashing_verdict(operation, pubkey, checked.verdict, checked.db_time)?;
        Ok(checked.signature.unwrap_or(Err(PoolError::Stopped)))
    }

    /// Counts, logs and maps a slashing check's outcome: `Ok` when the record is committed.
    fn slashing_verdict(
        &self,
        operation: &'static str,
        pubkey: &[u8; PUBLIC_KEY_LEN],
        outcome: DbOutcome<Safe>,
        db_time: Duration,
    ) -> Result<(), SignError> {
        self.metrics
            .slashing_db_duration
            .get_or_create(&OperationLabels { operation })
            .observe(db_time.as_secs_f64());
        self.note_database(&outcome);
        match outcome {
            Ok(Ok(_)) => {
                self.metrics.slashing_permitted.inc();
                Ok(())
            }
            Ok(Err(ferrosigner_slashing::Error::Refused(refusal))) => {
                Err(self.refused(operation, pubkey, refusal))
            }
            Ok(Err(e @ ferrosigner_slashing::Error::ValueOutOfRange { .. })) => {
                Err(SignError::BadRequest(e.to_string()))
            }
            Ok(Err(e)) => Err(SignError::Unavailable(unavailable(e))),
            Err(deadline) => Err(SignError::Unavailable(deadline)),
        }
    }

    /// Counts and logs a refusal of slashing protection.
    fn refused(
        &self,
        operation: &'static str,
        pubkey: &[u8; PUBLIC_KEY_LEN],
        refusal: Refusal,
    ) -> SignError {
        let reason = refusal.reason().label();
        self.metrics
            .slashing_prevented
            .get_or_create(&RefusalLabels { reason })
            .inc();
        tracing::warn!(pubkey = %format!("0x{}", hex::encode(pubkey)), reason, %refusal, "slashing protection refused to sign this {operation}");
        SignError::Refused(refusal)
    }
}

/// A slashing check's verdict and, when it permits, the signature made after the commit.
struct Checked {
    verdict: DbOutcome<Safe>,
    /// From the request's start to the verdict.
    db_time: Duration,
    /// `None` when the verdict did not permit signing.
    signature: Option<Result<Signature, PoolError>>,
}

impl Checked {
    /// No verdict: the check failed or did not answer in time.
    fn failed(verdict: DbOutcome<Safe>, start: Instant) -> Self {
        Checked {
            verdict,
            db_time: start.elapsed(),
            signature: None,
        }
    }
}

/// Takes a slashing verdict where it is known and, when it permits, queues the signature.
struct SignAfterCheck {
    tx: oneshot::Sender<Checked>,
    key: Arc<KeyEntry>,
    message: [u8; 32],
    pool: SignPool,
    start: Instant,
    /// Set once the verdict is known, before the signature is queued.
    decided: Arc<AtomicBool>,
}

impl Verdict for SignAfterCheck {
    fn abandoned(&self) -> bool {
        self.tx.is_closed()
    }

    fn deliver(self: Box<Self>, verdict: Result<Safe, ferrosigner_slashing::Error>) {
        let db_time = self.start.elapsed();
        let SignAfterCheck {
            tx,
            key,
            message,
            pool,
            decided,
            ..
        } = *self;
        match verdict {
            Ok(safe) => {
                decided.store(true, Ordering::Release);
                pool.queue(key, message, SignedAfterCheck { tx, safe, db_time });
            }
            Err(e) => {
                let _ = tx.send(Checked {
                    verdict: Ok(Err(e)),
                    db_time,
                    signature: None,
                });
            }
        }
    }
}

/// Sends a permitted request's signature back, with the verdict that permitted it.
struct SignedAfterCheck {
    tx: oneshot::Sender<Checked>,
    safe: Safe,
    db_time: Duration,
}

impl Done for SignedAfterCheck {
    fn abandoned(&self) -> bool {
        self.tx.is_closed()
    }

    fn done(self, signature: Result<Signature, PoolError>) {
        let _ = self.tx.send(Checked {
            verdict: Ok(Ok(self.safe)),
            db_time: self.db_time,
            signature: Some(signature),
        });
    }
}

/// A database call's result, or [`Unavailable::DatabaseDeadline`] when it did not answer in time.
type DbOutcome<T> = Result<Result<T, ferrosigner_slashing::Error>, Unavailable>;

/// A database error that is not a verdict, as the reason a request cannot be served.
fn unavailable(e: ferrosigner_slashing::Error) -> Unavailable {
    match e {
        ferrosigner_slashing::Error::Busy => Unavailable::DatabaseBusy,
        other => Unavailable::Database(other),
    }
}

/// A request body: borrowed (ordinary size) or owned (large, moved to a blocking thread).
enum Body<'a> {
    Inline(&'a [u8]),
    Large(Box<dyn AsRef<[u8]> + Send>),
}

fn truncate(s: &str) -> String {
    s.chars().take(100).collect()
}
