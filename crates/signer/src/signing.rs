//! The signing pipeline: parse → signing root → key → slashing check-and-insert (committed) → BLS sign.
//!
//! A request that fails any step leaves no slashing record and produces no signature. Handlers call
//! [`Signer::sign`] and map [`SignError`] to a status; no rule lives in a handler.

use std::sync::Arc;
use std::time::Instant;

use ferrosigner_bls::{PUBLIC_KEY_LEN, Signature, decode_hex_array};
use ferrosigner_consensus::{Network, Prepared, SlashingSubject};
use ferrosigner_slashing::{Refusal, SlashingDb};

use crate::keys::KeyView;
use crate::metrics::{Metrics, OperationLabels, RefusalLabels};
use crate::pool::SignPool;

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
    /// The slashing database did not answer (503); nothing was signed.
    #[error("slashing protection database unavailable: {0}")]
    Unavailable(String),
    /// Anything else (500); nothing was signed.
    #[error("internal error: {0}")]
    Internal(String),
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
        let outcome = match &result {
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
        result
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
        if let (Some(requested), Some(expected)) = (
            prepared.genesis_validators_root,
            self.network.genesis_validators_root(),
        ) && requested != expected
        {
            return Err(SignError::BadRequest(format!(
                "genesis_validators_root 0x{} is not that of network {} (0x{})",
                hex::encode(requested),
                self.network.name(),
                hex::encode(expected)
            )));
        }
        let Some(key) = self.keys.get(&pubkey_bytes) else {
            return Err(if self.keys.loaded() {
                SignError::UnknownKey(format!("0x{}", hex::encode(pubkey_bytes)))
            } else {
                SignError::NotReady
            });
        };
        if let (Some(db), Some(subject)) = (&self.slashing, prepared.slashing) {
            let gvr = prepared.genesis_validators_root.ok_or_else(|| {
                SignError::BadRequest("fork_info.genesis_validators_root is required".into())
            })?;
            self.check_slashing(db, gvr, &pubkey_bytes, subject, prepared.signing_root)
                .await?;
        }
        self.pool
            .sign(key, prepared.signing_root)
            .await
            .map_err(|e| SignError::Internal(e.to_string()))
    }

    async fn check_slashing(
        &self,
        db: &SlashingDb,
        gvr: [u8; 32],
        pubkey: &[u8; PUBLIC_KEY_LEN],
        subject: SlashingSubject,
        signing_root: [u8; 32],
    ) -> Result<(), SignError> {
        let start = Instant::now();
        let (operation, result) = match subject {
            SlashingSubject::Block { slot } => (
                "block",
                db.check_block(gvr, pubkey, slot, signing_root).await,
            ),
            SlashingSubject::Attestation {
                source_epoch,
                target_epoch,
            } => (
                "attestation",
                db.check_attestation(gvr, pubkey, source_epoch, target_epoch, signing_root)
                    .await,
            ),
        };
        self.metrics
            .slashing_db_duration
            .get_or_create(&OperationLabels { operation })
            .observe(start.elapsed().as_secs_f64());
        match result {
            Ok(_) => {
                self.metrics.slashing_permitted.inc();
                Ok(())
            }
            Err(ferrosigner_slashing::Error::Refused(refusal)) => {
                let reason = refusal.reason().label();
                self.metrics
                    .slashing_prevented
                    .get_or_create(&RefusalLabels { reason })
                    .inc();
                tracing::warn!(pubkey = %format!("0x{}", hex::encode(pubkey)), reason, %refusal, "slashing protection refused a {operation}");
                Err(SignError::Refused(refusal))
            }
            Err(ferrosigner_slashing::Error::Unavailable(reason)) => {
                Err(SignError::Unavailable(reason))
            }
            Err(e @ ferrosigner_slashing::Error::ValueOutOfRange { .. }) => {
                Err(SignError::BadRequest(e.to_string()))
            }
            Err(other) => Err(SignError::Internal(other.to_string())),
        }
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
