//! The one error type of this crate.

use crate::Root;
use crate::wire::to_hex;

/// Everything that can go wrong while reading a network config or preparing a sign request.
///
/// Display messages are meant to be sent to a client as-is (HTTP 400 body); they echo at most a
/// short snippet of the client's input and never contain key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The body is not valid JSON or the envelope (`type`, `fork_info`, `signingRoot`) is malformed.
    #[error("malformed request body: {0}")]
    MalformedBody(String),
    /// `type` is not a known signing type.
    #[error("unknown type `{0}`")]
    UnknownType(String),
    /// A field the request type needs is absent (or null).
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// A signed object failed to parse (wrong shape, bad hex, out-of-range integer, …).
    #[error("invalid `{field}`: {reason}")]
    InvalidField {
        /// The request's object key.
        field: &'static str,
        /// What was wrong, from the JSON parser.
        reason: String,
    },
    /// A `version` field names no known fork.
    #[error("unknown {field} version `{version}`")]
    UnknownVersion {
        /// The object carrying the version.
        field: &'static str,
        /// The version as sent (shortened).
        version: String,
    },
    /// `BLOCK_V2` sent the wrong shape for its version (`block` vs `block_header`).
    #[error("beacon_block version {version} requires {required}")]
    BlockShape {
        /// The block's fork.
        version: &'static str,
        /// The key that must be present.
        required: &'static str,
    },
    /// The object's shape contradicts the network's fork schedule.
    #[error("{0}")]
    ForkMismatch(String),
    /// The network lacks a fork version that this request needs.
    #[error("network {network} has no {fork} fork version, needed for {purpose}")]
    MissingForkVersion {
        /// Network name.
        network: String,
        /// The missing fork.
        fork: &'static str,
        /// Why it is needed.
        purpose: &'static str,
    },
    /// The client's `signingRoot` differs from the root computed from the object.
    #[error("signingRoot {} does not match computed {}", to_hex(.supplied), to_hex(.computed))]
    SigningRootMismatch {
        /// Root sent by the client.
        supplied: Root,
        /// Root computed here.
        computed: Root,
    },
    /// Both `signingRoot` and `signing_root` were sent, with different values.
    #[error("signingRoot and signing_root differ")]
    ConflictingSigningRoots,
    /// [`crate::Network::by_name`] was given an unknown name.
    #[error("unknown network `{0}` (known: mainnet, sepolia, holesky, hoodi, gnosis, minimal)")]
    UnknownNetwork(String),
    /// A network `config.yaml` is malformed or inconsistent.
    #[error("invalid network config: {0}")]
    InvalidConfig(String),
}
