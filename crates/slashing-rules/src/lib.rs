//! The slashing-protection rules of ferrosigner, without any storage: pure functions and types
//! that both stores of `ferrosigner-slashing` (SQLite and PostgreSQL) share.
//!
//! How the parts connect (dependencies point inward: the stores depend on this crate, never the
//! reverse):
//! - [`rules`]: the decision, as pure functions over a few per-validator *facts* that a store
//!   gathers with queries ([`rules::decide_block`], [`rules::decide_attestation`]), and
//!   [`rules::History`], a brute-force in-memory model that tests use as the oracle.
//! - [`Refusal`]: the verdict "do not sign", carrying its [`RefusalReason`] (a stable snake_case
//!   label for metrics and JSON) and the evidence: the recorded block or attestation that
//!   conflicts, or the low or high watermark that refused.
//! - [`watermarks`]: the arithmetic of per-validator low watermarks that imports and pruning
//!   raise, and of the global [`HighWatermark`].
//! - [`interchange`]: parsing, validating, merging and writing EIP-3076 v5 documents.
//!
//! Errors of this crate are [`Error`]; the stores map them into their own error type.
#![warn(missing_docs)]

pub mod interchange;
mod refusal;
pub mod rules;
pub mod watermarks;

pub use refusal::{Refusal, RefusalReason};
pub use watermarks::{HighWatermark, Watermarks};

/// A compressed BLS public key.
pub type Pubkey = [u8; 48];
/// A 32-byte root (signing root, genesis validators root).
pub type Root = [u8; 32];

/// The largest slot or epoch either store accepts (2^63 − 1).
pub const MAX_STORED_VALUE: u64 = i64::MAX as u64;

/// A positive verdict: the message may be signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Safe {
    /// The message was new and its record is now committed.
    Inserted,
    /// The very same message (same non-null signing root) was already recorded.
    SameData,
}

/// Errors of the pure parts (interchange documents).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// An interchange document is malformed (bad JSON, version, hex, or number).
    #[error("invalid slashing protection interchange: {0}")]
    InvalidInterchange(String),
    /// An interchange document could not be written as JSON.
    #[error("cannot serialise interchange: {0}")]
    Serialise(String),
}
