//! The pure core of the ferrosigner signing pipeline: from a Web3Signer eth2 sign request body
//! to the signing root that the signer will BLS-sign.
//!
//! How the parts connect:
//!
//! - [`wire`] holds the serde helpers for the Beacon-API JSON encoding (quoted `uint64`, `0x`
//!   hex, bitfields as SSZ hex, bounded lists).
//! - [`spec`] holds the presets: [`EthSpec`] gives the list limits at type level ([`MainnetSpec`],
//!   [`MinimalSpec`]), [`Preset`] names them at run time.
//! - [`containers`] holds the signed SSZ containers per fork, deriving `TreeHash` (sigp
//!   `tree_hash`), SSZ and serde; [`gloas`] the containers new or changed in Gloas.
//! - [`progressive`] implements progressive merkleization (EIP-7916 progressive lists and
//!   bitlists, EIP-7495/7688 progressive containers), which `tree_hash` lacks.
//! - [`signing`] computes domains and signing roots (`compute_domain`, `compute_signing_root`)
//!   and reads a request's `fork_info`.
//! - [`network`] describes a chain: preset, genesis fork version, fork schedule, genesis
//!   validators root ([`Network::by_name`], [`Network::from_config_yaml`]).
//! - [`request`] ties them together: [`prepare`] parses a body, picks the container by type,
//!   version and preset, computes the root, compares it with any supplied `signingRoot`, and
//!   reports what slashing protection must check.
//!
//! No I/O, no async; every malformed input gives an [`Error`], never a panic.

#![warn(missing_docs)]

pub mod containers;
mod error;
pub mod gloas;
pub mod network;
pub mod progressive;
pub mod request;
pub mod signing;
pub mod spec;
pub mod wire;

pub use error::Error;
pub use network::{FAR_FUTURE_EPOCH, ForkName, Network, ScheduledFork};
pub use request::{Prepared, RequestKind, SlashingSubject, prepare, request_kind};
pub use signing::{Fork, ForkInfo, compute_domain, compute_fork_data_root, compute_signing_root};
pub use spec::{EthSpec, MainnetSpec, MinimalSpec, Preset};

/// A 32-byte SSZ root (`hash_tree_root`, signing root, genesis validators root).
pub type Root = [u8; 32];
