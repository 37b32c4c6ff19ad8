//! Batch signing (draft remote-signing-api PR #29): one signing request, many keys.
//!
//! [`BatchRequest::parse`] checks the envelope (`identifiers`, `signing_request`), the number of
//! identifiers, their encoding and that none repeats. [`Signer::sign_batch`] then prepares the
//! signing request ONCE (parse, signing root), looks each key up, runs ONE slashing transaction for
//! the keys found ([`SlashingDb::check_attestations`]) when the type has a slashing rule, signs every
//! permitted key on the pool in one go ([`SignPool::sign_many`]) and answers one
//! [`BatchItem`] per identifier in request order.
//!
//! The invariant of single requests holds per key: no signature without its committed record; a
//! refused key or a batch whose transaction failed gets no signature. A failure that concerns the
//! whole batch (a malformed envelope, a type the draft does not allow, an unparsable signing
//! request) is one [`SignError`] for the batch; a database failure or deadline is answered in every
//! element whose key was found (the status each single request would have had: 503).

use std::time::Instant;

use ferrosigner_bls::{PUBLIC_KEY_LEN, Signature, decode_hex_array};
use ferrosigner_consensus::{RequestKind, SlashingSubject};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{SignError, Signer, Unavailable, truncate, unavailable};
use crate::metrics::OperationLabels;
use crate::pool::PoolError;

/// Identifiers a batch may hold unless configured otherwise (`--max-batch-signing-identifiers`).
pub const DEFAULT_MAX_BATCH_IDENTIFIERS: usize = 1024;

/// The request types a batch may carry: those the draft lists whose signed object names no
/// validator, so that every key signs the same root (`GENERIC` is not implemented by this signer),
/// plus Gloas `PAYLOAD_ATTESTATION_MESSAGE`, whose signed `PayloadAttestationData` is likewise the
/// same for every member of the payload timeliness committee.
pub const BATCH_KINDS: [RequestKind; 6] = [
    RequestKind::Attestation,
    RequestKind::AggregationSlot,
    RequestKind::RandaoReveal,
    RequestKind::SyncCommitteeMessage,
    RequestKind::SyncCommitteeSelectionProof,
    RequestKind::PayloadAttestationMessage,
];

/// A parsed batch: the decoded keys in request order and the common signing request.
pub struct BatchRequest {
    identifiers: Vec<[u8; PUBLIC_KEY_LEN]>,
    signing_request: Box<RawValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    identifiers: Vec<String>,
    signing_request: Box<RawValue>,
}

impl BatchRequest {
    /// Parses a batch body: an object with a non-empty `identifiers` array of at most `max` distinct
    /// 48-byte `0x` hex public keys (compared decoded, so casing does not make two keys differ) and
    /// a `signing_request` object. Anything else is [`SignError::BadRequest`].
    pub fn parse(body: &[u8], max: usize) -> Result<Self, SignError> {
        let envelope: Envelope = serde_json::from_slice(body).map_err(|e| {
            SignError::BadRequest(format!(
                "malformed batch request (expected {{\"identifiers\": [...], \"signing_request\": {{...}}}}): {e}"
            ))
        })?;
        if envelope.identifiers.is_empty() {
            return Err(SignError::BadRequest(
                "`identifiers` must name at least one public key".into(),
            ));
        }
        if envelope.identifiers.len() > max {
            return Err(SignError::BadRequest(format!(
                "a batch of {} identifiers exceeds the limit of {max} (--max-batch-signing-identifiers)",
                envelope.identifiers.len()
            )));
        }
        let mut identifiers = Vec::with_capacity(envelope.identifiers.len());
        for (i, id) in envelope.identifiers.iter().enumerate() {
            let key: [u8; PUBLIC_KEY_LEN] = decode_hex_array(id).map_err(|_| {
                SignError::BadRequest(format!(
                    "identifiers[{i}]: `{}` is not a 48-byte hex public key",
                    truncate(id)
                ))
            })?;
            identifiers.push(key);
        }
        let mut sorted = identifiers.clone();
        sorted.sort_unstable();
        if let Some(pair) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(SignError::BadRequest(format!(
                "identifiers name 0x{} more than once",
                hex::encode(pair[0])
            )));
        }
        if !envelope.signing_request.get().trim_start().starts_with('{') {
            return Err(SignError::BadRequest(
                "`signing_request` must be a signing request object".into(),
            ));
        }
        Ok(Self {
            identifiers,
            signing_request: envelope.signing_request,
        })
    }

    /// How many keys the batch names.
    pub fn len(&self) -> usize {
        self.identifiers.len()
    }

    /// Whether the batch names no key (never true for a parsed batch).
    pub fn is_empty(&self) -> bool {
        self.identifiers.is_empty()
    }
}

/// One element of a batch answer: the key (lower-case `0x` hex) and its signature or error.
#[derive(Debug)]
pub struct BatchItem {
    /// The public key, `0x` and lower-case hex.
    pub identifier: String,
    /// The signature, or why this key was not signed.
    pub result: Result<Signature, SignError>,
}

/// What a found key is waiting for while the batch is decided.
enum Pending {
    Done(Result<Signature, SignError>),
    Sign(std::sync::Arc<crate::keys::KeyEntry>),
}

impl Signer {
    /// Signs the batch's signing request with each of its keys and answers one [`BatchItem`] per
    /// identifier, in request order; `Err` when the batch as a whole is not acceptable. Outcomes
    /// are counted per element in the signing metrics (by type and outcome), as single requests.
    pub async fn sign_batch(&self, batch: &BatchRequest) -> Result<Vec<BatchItem>, SignError> {
        let start = Instant::now();
        let mut kind = "unknown";
        let result = self.sign_batch_inner(batch, &mut kind).await;
        match &result {
            Ok(items) => {
                for item in items {
                    self.count_outcome(kind, start, &item.result);
                }
                self.metrics.count_batch(kind, "answered");
            }
            Err(e) => {
                self.metrics.count_request(kind, e.outcome());
                self.metrics.count_batch(kind, e.outcome());
            }
        }
        result
    }

    async fn sign_batch_inner(
        &self,
        batch: &BatchRequest,
        kind: &mut &'static str,
    ) -> Result<Vec<BatchItem>, SignError> {
        let body = batch.signing_request.get().as_bytes();
        let bad = |e: ferrosigner_consensus::Error| SignError::BadRequest(e.to_string());
        let requested = ferrosigner_consensus::request_kind(body).map_err(bad)?;
        *kind = requested.as_str();
        if !BATCH_KINDS.contains(&requested) {
            let allowed: Vec<&str> = BATCH_KINDS.iter().map(|k| k.as_str()).collect();
            return Err(SignError::BadRequest(format!(
                "batch signing does not allow type {requested} (allowed: {})",
                allowed.join(", ")
            )));
        }
        let prepared = ferrosigner_consensus::prepare(body, &self.network).map_err(bad)?;
        self.check_genesis_root(prepared.genesis_validators_root)?;

        let mut pending: Vec<Pending> = batch
            .identifiers
            .iter()
            .map(|pubkey| match self.keys.get(pubkey) {
                Some(key) => Pending::Sign(key),
                None => Pending::Done(Err(if self.keys.loaded() {
                    SignError::UnknownKey(format!("0x{}", hex::encode(pubkey)))
                } else {
                    SignError::NotReady
                })),
            })
            .collect();

        if let (Some(db), Some(subject)) = (&self.slashing, prepared.slashing) {
            let gvr = prepared.genesis_validators_root.ok_or_else(|| {
                SignError::BadRequest("fork_info.genesis_validators_root is required".into())
            })?;
            let SlashingSubject::Attestation {
                source_epoch,
                target_epoch,
            } = subject
            else {
                return Err(SignError::Internal(
                    "a batch type carries a block's slashing rule".into(),
                ));
            };
            let found: Vec<(usize, [u8; PUBLIC_KEY_LEN])> = pending
                .iter()
                .enumerate()
                .filter(|(_, p)| matches!(p, Pending::Sign(_)))
                .map(|(i, _)| (i, batch.identifiers[i]))
                .collect();
            if !found.is_empty() {
                let keys: Vec<[u8; PUBLIC_KEY_LEN]> = found.iter().map(|(_, k)| *k).collect();
                let db_start = Instant::now();
                let outcome = self
                    .within_deadline(db.check_attestations(
                        gvr,
                        &keys,
                        source_epoch,
                        target_epoch,
                        prepared.signing_root,
                    ))
                    .await;
                self.metrics
                    .slashing_db_duration
                    .get_or_create(&OperationLabels {
                        operation: "attestation",
                    })
                    .observe(db_start.elapsed().as_secs_f64());
                self.note_database(&outcome);
                match outcome {
                    Ok(Ok(verdicts)) => {
                        for ((i, key), verdict) in found.iter().zip(verdicts) {
                            match verdict {
                                Ok(_) => {
                                    self.metrics.slashing_permitted.inc();
                                }
                                Err(refusal) => {
                                    pending[*i] = Pending::Done(Err(self.refused(
                                        "attestation",
                                        key,
                                        refusal,
                                    )));
                                }
                            }
                        }
                    }
                    Ok(Err(e @ ferrosigner_slashing::Error::ValueOutOfRange { .. })) => {
                        return Err(SignError::BadRequest(e.to_string()));
                    }
                    // Nothing of the batch was recorded (or, past the deadline, whatever commits
                    // late is never answered with a signature): every found key gets the 503 its
                    // single request would have had.
                    Ok(Err(e)) => fail_all(&mut pending, &unavailable(e)),
                    Err(deadline) => fail_all(&mut pending, &deadline),
                }
            }
        }

        let to_sign: Vec<(usize, std::sync::Arc<crate::keys::KeyEntry>)> = pending
            .iter()
            .enumerate()
            .filter_map(|(i, p)| match p {
                Pending::Sign(key) => Some((i, key.clone())),
                Pending::Done(_) => None,
            })
            .collect();
        let keys = to_sign.iter().map(|(_, k)| k.clone()).collect();
        match self.pool.sign_many(keys, prepared.signing_root).await {
            Ok(signatures) => {
                for ((i, _), signature) in to_sign.iter().zip(signatures) {
                    pending[*i] = Pending::Done(Ok(signature));
                }
            }
            Err(PoolError::Busy) => fail_all(&mut pending, &Unavailable::SigningBusy),
            Err(e @ PoolError::Stopped) => return Err(SignError::Internal(e.to_string())),
        }

        Ok(batch
            .identifiers
            .iter()
            .zip(pending)
            .map(|(pubkey, p)| BatchItem {
                identifier: format!("0x{}", hex::encode(pubkey)),
                result: match p {
                    Pending::Done(result) => result,
                    Pending::Sign(_) => Err(SignError::Internal("left unsigned".into())),
                },
            })
            .collect())
    }
}

/// Every key still waiting gets `why` (503) instead of a signature.
fn fail_all(pending: &mut [Pending], why: &Unavailable) {
    for p in pending.iter_mut() {
        if matches!(p, Pending::Sign(_)) {
            *p = Pending::Done(Err(SignError::Unavailable(why.clone())));
        }
    }
}
