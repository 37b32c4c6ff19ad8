//! Web3Signer eth2 sign requests: parse the JSON body, compute the signing root.
//!
//! The envelope is `{"type", "fork_info"?, "signingRoot"|"signing_root"?, <object>}`. It is read
//! first with the object left as raw JSON; the request type then decides which key holds the
//! object and which container it is parsed into. Unknown fields are ignored everywhere.

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use tree_hash::TreeHash;

use crate::Root;
use crate::containers::{
    AggregateAndProof, Attestation, AttestationData, AttestationElectra, BeaconBlock,
    BeaconBlockAltair, BeaconBlockHeader, ContributionAndProof, DepositMessage, DomainType,
    PublicKeyBytes, SyncAggregatorSelectionData, ValidatorRegistrationV1, Version, VoluntaryExit,
};
use crate::error::Error;
use crate::gloas::{
    AttestationGloas, ExecutionPayloadBid, ExecutionPayloadEnvelope, PayloadAttestationData,
    ProposerPreferences, RequestAuthV1,
};
use crate::network::{ForkName, Network};
use crate::signing::{
    DOMAIN_AGGREGATE_AND_PROOF, DOMAIN_APPLICATION_BUILDER, DOMAIN_BEACON_ATTESTER,
    DOMAIN_BEACON_BUILDER, DOMAIN_BEACON_PROPOSER, DOMAIN_CONTRIBUTION_AND_PROOF, DOMAIN_DEPOSIT,
    DOMAIN_PROPOSER_PREFERENCES, DOMAIN_PTC_ATTESTER, DOMAIN_RANDAO, DOMAIN_REQUEST_AUTH,
    DOMAIN_SELECTION_PROOF, DOMAIN_SYNC_COMMITTEE, DOMAIN_SYNC_COMMITTEE_SELECTION_PROOF,
    DOMAIN_VOLUNTARY_EXIT, ForkInfo, ZERO_ROOT, compute_domain, compute_signing_root,
};
use crate::spec::{EthSpec, MainnetSpec, MinimalSpec, Preset};
use crate::wire::to_hex;
use crate::wire::{HexBytes, hex_fixed, quoted_u64, snippet};

/// The signing request types of the Web3Signer eth2 API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// `BLOCK`: a full phase0 block (deprecated).
    Block,
    /// `BLOCK_V2`: a versioned block or block header.
    BlockV2,
    /// `ATTESTATION`: attestation data.
    Attestation,
    /// `AGGREGATION_SLOT`: a slot (selection proof).
    AggregationSlot,
    /// `AGGREGATE_AND_PROOF`: bare or versioned aggregate-and-proof.
    AggregateAndProof,
    /// `AGGREGATE_AND_PROOF_V2`: versioned aggregate-and-proof.
    AggregateAndProofV2,
    /// `RANDAO_REVEAL`: an epoch.
    RandaoReveal,
    /// `VOLUNTARY_EXIT`: a voluntary exit (EIP-7044 domain).
    VoluntaryExit,
    /// `DEPOSIT`: a deposit message.
    Deposit,
    /// `SYNC_COMMITTEE_MESSAGE`: a block root.
    SyncCommitteeMessage,
    /// `SYNC_COMMITTEE_SELECTION_PROOF`: sync aggregator selection data.
    SyncCommitteeSelectionProof,
    /// `SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF`: a contribution-and-proof.
    SyncCommitteeContributionAndProof,
    /// `VALIDATOR_REGISTRATION`: a builder registration.
    ValidatorRegistration,
    /// `EXECUTION_PAYLOAD_BID` (Gloas): a builder's bid.
    ExecutionPayloadBid,
    /// `EXECUTION_PAYLOAD_ENVELOPE` (Gloas): the envelope with the full execution payload.
    ExecutionPayloadEnvelope,
    /// `PAYLOAD_ATTESTATION_MESSAGE` (Gloas; alias `PAYLOAD_ATTESTATION`): PTC attestation data.
    PayloadAttestationMessage,
    /// `PROPOSER_PREFERENCES` (Gloas): fee recipient and gas limit for a proposal slot.
    ProposerPreferences,
    /// `BUILDER_REQUEST_AUTH` (Gloas): authenticates a request to a builder.
    BuilderRequestAuth,
}

impl RequestKind {
    /// Every request type.
    pub const ALL: [RequestKind; 18] = [
        RequestKind::Block,
        RequestKind::BlockV2,
        RequestKind::Attestation,
        RequestKind::AggregationSlot,
        RequestKind::AggregateAndProof,
        RequestKind::AggregateAndProofV2,
        RequestKind::RandaoReveal,
        RequestKind::VoluntaryExit,
        RequestKind::Deposit,
        RequestKind::SyncCommitteeMessage,
        RequestKind::SyncCommitteeSelectionProof,
        RequestKind::SyncCommitteeContributionAndProof,
        RequestKind::ValidatorRegistration,
        RequestKind::ExecutionPayloadBid,
        RequestKind::ExecutionPayloadEnvelope,
        RequestKind::PayloadAttestationMessage,
        RequestKind::ProposerPreferences,
        RequestKind::BuilderRequestAuth,
    ];

    /// Other names clients send for a type: Grandine's `PAYLOAD_ATTESTATION`.
    pub const ALIASES: [(&'static str, RequestKind); 1] = [(
        "PAYLOAD_ATTESTATION",
        RequestKind::PayloadAttestationMessage,
    )];

    /// The wire name, e.g. `"ATTESTATION"` (also usable as a metric label).
    pub fn as_str(&self) -> &'static str {
        match self {
            RequestKind::Block => "BLOCK",
            RequestKind::BlockV2 => "BLOCK_V2",
            RequestKind::Attestation => "ATTESTATION",
            RequestKind::AggregationSlot => "AGGREGATION_SLOT",
            RequestKind::AggregateAndProof => "AGGREGATE_AND_PROOF",
            RequestKind::AggregateAndProofV2 => "AGGREGATE_AND_PROOF_V2",
            RequestKind::RandaoReveal => "RANDAO_REVEAL",
            RequestKind::VoluntaryExit => "VOLUNTARY_EXIT",
            RequestKind::Deposit => "DEPOSIT",
            RequestKind::SyncCommitteeMessage => "SYNC_COMMITTEE_MESSAGE",
            RequestKind::SyncCommitteeSelectionProof => "SYNC_COMMITTEE_SELECTION_PROOF",
            RequestKind::SyncCommitteeContributionAndProof => {
                "SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF"
            }
            RequestKind::ValidatorRegistration => "VALIDATOR_REGISTRATION",
            RequestKind::ExecutionPayloadBid => "EXECUTION_PAYLOAD_BID",
            RequestKind::ExecutionPayloadEnvelope => "EXECUTION_PAYLOAD_ENVELOPE",
            RequestKind::PayloadAttestationMessage => "PAYLOAD_ATTESTATION_MESSAGE",
            RequestKind::ProposerPreferences => "PROPOSER_PREFERENCES",
            RequestKind::BuilderRequestAuth => "BUILDER_REQUEST_AUTH",
        }
    }

    /// Parses a `type` value (or an alias in [`RequestKind::ALIASES`]), case-insensitively.
    pub fn parse(s: &str) -> Option<RequestKind> {
        RequestKind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
            .or_else(|| {
                RequestKind::ALIASES
                    .into_iter()
                    .find(|(alias, _)| alias.eq_ignore_ascii_case(s))
                    .map(|(_, k)| k)
            })
    }

    /// Whether requests of this type may carry a multi-MiB body (a self-built
    /// `EXECUTION_PAYLOAD_ENVELOPE` holds the whole execution payload).
    pub fn allows_large_body(&self) -> bool {
        matches!(self, RequestKind::ExecutionPayloadEnvelope)
    }

    /// Whether this type is subject to slashing protection (blocks and attestations).
    pub fn is_slashable(&self) -> bool {
        matches!(
            self,
            RequestKind::Block | RequestKind::BlockV2 | RequestKind::Attestation
        )
    }
}

impl std::fmt::Display for RequestKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What slashing protection must check before a block or attestation is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SlashingSubject {
    /// A block proposal at `slot`.
    Block {
        /// Block slot.
        slot: u64,
    },
    /// An attestation voting `source_epoch` → `target_epoch`.
    Attestation {
        /// FFG source epoch.
        source_epoch: u64,
        /// FFG target epoch.
        target_epoch: u64,
    },
}

/// A parsed request, ready to be checked and signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prepared {
    /// The request type.
    pub kind: RequestKind,
    /// The root to BLS-sign, computed here from the object and domain.
    pub signing_root: Root,
    /// `Some` for `BLOCK`, `BLOCK_V2` and `ATTESTATION`.
    pub slashing: Option<SlashingSubject>,
    /// `fork_info.genesis_validators_root`, when `fork_info` was sent.
    pub genesis_validators_root: Option<Root>,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    fork_info: Option<ForkInfo>,
    #[serde(default, rename = "signingRoot")]
    signing_root_camel: Option<HexBytes<32>>,
    #[serde(default, rename = "signing_root")]
    signing_root_snake: Option<HexBytes<32>>,
    #[serde(default, borrow)]
    block: Option<&'a RawValue>,
    #[serde(default, borrow)]
    beacon_block: Option<&'a RawValue>,
    #[serde(default, borrow)]
    attestation: Option<&'a RawValue>,
    #[serde(default, borrow)]
    aggregation_slot: Option<&'a RawValue>,
    #[serde(default, borrow)]
    aggregate_and_proof: Option<&'a RawValue>,
    #[serde(default, borrow)]
    voluntary_exit: Option<&'a RawValue>,
    #[serde(default, borrow)]
    randao_reveal: Option<&'a RawValue>,
    #[serde(default, borrow)]
    deposit: Option<&'a RawValue>,
    #[serde(default, borrow)]
    sync_committee_message: Option<&'a RawValue>,
    #[serde(default, borrow)]
    sync_aggregator_selection_data: Option<&'a RawValue>,
    #[serde(default, borrow)]
    contribution_and_proof: Option<&'a RawValue>,
    #[serde(default, borrow)]
    validator_registration: Option<&'a RawValue>,
    #[serde(default, borrow)]
    execution_payload_bid: Option<&'a RawValue>,
    #[serde(default, borrow)]
    execution_payload_envelope: Option<&'a RawValue>,
    /// Also read under Lighthouse's key `payload_attestation_data` and `payload_attestation`.
    #[serde(
        default,
        borrow,
        alias = "payload_attestation_data",
        alias = "payload_attestation"
    )]
    payload_attestation_message: Option<&'a RawValue>,
    #[serde(default, borrow)]
    proposer_preferences: Option<&'a RawValue>,
    #[serde(default, borrow)]
    builder_request_auth: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct BlockV2Wire<'a> {
    version: String,
    #[serde(default, borrow)]
    block: Option<&'a RawValue>,
    #[serde(default, borrow)]
    block_header: Option<&'a RawValue>,
}

/// Distinguishes `{version, data}` from a bare `AggregateAndProof`.
#[derive(Deserialize)]
struct AggregateWrapperProbe<'a> {
    #[serde(default)]
    version: Option<String>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
}

/// Tells an Electra aggregate (with `committee_bits`) from an earlier one.
#[derive(Deserialize)]
struct BareAggregateProbe {
    aggregate: AttestationProbe,
}

#[derive(Deserialize)]
struct AttestationProbe {
    #[serde(default)]
    committee_bits: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct SlotWire {
    #[serde(with = "quoted_u64")]
    slot: u64,
}

#[derive(Deserialize)]
struct EpochWire {
    #[serde(with = "quoted_u64")]
    epoch: u64,
}

#[derive(Deserialize)]
struct SyncCommitteeMessageWire {
    #[serde(with = "hex_fixed")]
    beacon_block_root: Root,
    #[serde(with = "quoted_u64")]
    slot: u64,
}

#[derive(Deserialize)]
struct DepositWire {
    #[serde(with = "hex_fixed")]
    pubkey: PublicKeyBytes,
    #[serde(with = "hex_fixed")]
    withdrawal_credentials: Root,
    #[serde(with = "quoted_u64")]
    amount: u64,
    #[serde(with = "hex_fixed")]
    genesis_fork_version: Version,
}

/// Reads only the `type` of a sign request body (the rest is skipped without being stored), e.g.
/// to refuse a large body whose type cannot carry one before parsing it.
pub fn request_kind(body: &[u8]) -> Result<RequestKind, Error> {
    #[derive(Deserialize)]
    struct TypeOnly {
        #[serde(rename = "type")]
        kind: String,
    }
    let t: TypeOnly =
        serde_json::from_slice(body).map_err(|e| Error::MalformedBody(e.to_string()))?;
    RequestKind::parse(&t.kind).ok_or_else(|| Error::UnknownType(snippet(&t.kind)))
}

/// Parses a sign request body and computes its signing root for `network`.
///
/// The root is always computed from the object; a supplied `signingRoot`/`signing_root` that
/// differs is an error. Never panics on any input.
pub fn prepare(body: &[u8], network: &Network) -> Result<Prepared, Error> {
    let env: Envelope<'_> =
        serde_json::from_slice(body).map_err(|e| Error::MalformedBody(e.to_string()))?;
    let kind =
        RequestKind::parse(&env.kind).ok_or_else(|| Error::UnknownType(snippet(&env.kind)))?;
    let supplied = match (env.signing_root_camel, env.signing_root_snake) {
        (Some(a), Some(b)) if a != b => return Err(Error::ConflictingSigningRoots),
        (a, b) => a.or(b).map(|h| h.0),
    };
    let computed = match network.preset() {
        Preset::Mainnet | Preset::Gnosis => compute::<MainnetSpec>(kind, &env, network)?,
        Preset::Minimal => compute::<MinimalSpec>(kind, &env, network)?,
    };
    if let Some(supplied) = supplied
        && supplied != computed.signing_root
    {
        return Err(Error::SigningRootMismatch {
            supplied,
            computed: computed.signing_root,
        });
    }
    Ok(Prepared {
        kind,
        signing_root: computed.signing_root,
        slashing: computed.slashing,
        genesis_validators_root: env.fork_info.map(|f| f.genesis_validators_root),
    })
}

struct Computed {
    signing_root: Root,
    slashing: Option<SlashingSubject>,
}

fn require<'a>(v: Option<&'a RawValue>, field: &'static str) -> Result<&'a RawValue, Error> {
    v.ok_or(Error::MissingField(field))
}

fn parse<'a, T: Deserialize<'a>>(raw: &'a RawValue, field: &'static str) -> Result<T, Error> {
    serde_json::from_str(raw.get()).map_err(|e| Error::InvalidField {
        field,
        reason: e.to_string(),
    })
}

fn parse_version(s: &str, field: &'static str) -> Result<ForkName, Error> {
    ForkName::parse(s).ok_or_else(|| Error::UnknownVersion {
        field,
        version: snippet(s),
    })
}

/// Signs `object_root` under `fork_info`'s domain for `domain_type` at `epoch`.
fn with_fork_info(
    env: &Envelope<'_>,
    domain_type: DomainType,
    epoch: u64,
    object_root: Root,
) -> Result<Root, Error> {
    let fork_info = env.fork_info.ok_or(Error::MissingField("fork_info"))?;
    Ok(compute_signing_root(
        object_root,
        fork_info.domain(domain_type, epoch),
    ))
}

fn compute<E: EthSpec>(
    kind: RequestKind,
    env: &Envelope<'_>,
    network: &Network,
) -> Result<Computed, Error> {
    let plain = |signing_root| Computed {
        signing_root,
        slashing: None,
    };
    match kind {
        RequestKind::Block => {
            let block: BeaconBlock<E> = parse(require(env.block, "block")?, "block")?;
            block_root(env, network, block.slot, block.tree_hash_root().0)
        }
        RequestKind::BlockV2 => {
            let wire: BlockV2Wire<'_> =
                parse(require(env.beacon_block, "beacon_block")?, "beacon_block")?;
            let version = parse_version(&wire.version, "beacon_block")?;
            let (slot, root) = match version {
                ForkName::Phase0 | ForkName::Altair => {
                    let raw = wire.block.ok_or(Error::BlockShape {
                        version: version.as_str(),
                        required: "block",
                    })?;
                    if version == ForkName::Phase0 {
                        let b: BeaconBlock<E> = parse(raw, "beacon_block.block")?;
                        (b.slot, b.tree_hash_root().0)
                    } else {
                        let b: BeaconBlockAltair<E> = parse(raw, "beacon_block.block")?;
                        (b.slot, b.tree_hash_root().0)
                    }
                }
                ForkName::Heze => return Err(unsupported(version, "beacon_block")),
                _ => {
                    let raw = wire.block_header.ok_or(Error::BlockShape {
                        version: version.as_str(),
                        required: "block_header",
                    })?;
                    let h: BeaconBlockHeader = parse(raw, "beacon_block.block_header")?;
                    (h.slot, h.tree_hash_root().0)
                }
            };
            check_versioned_epoch(
                env,
                network,
                version,
                network.epoch_at_slot(slot),
                "beacon_block",
            )?;
            block_root(env, network, slot, root)
        }
        RequestKind::Attestation => {
            let data: AttestationData =
                parse(require(env.attestation, "attestation")?, "attestation")?;
            let epoch = network.epoch_at_slot(data.slot);
            if network.fork_at_epoch(epoch) >= ForkName::Gloas && data.index > 1 {
                return Err(Error::InvalidField {
                    field: "attestation",
                    reason: format!(
                        "from Gloas on, index is the payload status (0 or 1), got {}",
                        data.index
                    ),
                });
            }
            let signing_root = with_fork_info(
                env,
                DOMAIN_BEACON_ATTESTER,
                data.target.epoch,
                data.tree_hash_root().0,
            )?;
            Ok(Computed {
                signing_root,
                slashing: Some(SlashingSubject::Attestation {
                    source_epoch: data.source.epoch,
                    target_epoch: data.target.epoch,
                }),
            })
        }
        RequestKind::AggregationSlot => {
            let w: SlotWire = parse(
                require(env.aggregation_slot, "aggregation_slot")?,
                "aggregation_slot",
            )?;
            with_fork_info(
                env,
                DOMAIN_SELECTION_PROOF,
                network.epoch_at_slot(w.slot),
                w.slot.tree_hash_root().0,
            )
            .map(plain)
        }
        RequestKind::AggregateAndProof | RequestKind::AggregateAndProofV2 => {
            aggregate_and_proof::<E>(env, network).map(plain)
        }
        RequestKind::RandaoReveal => {
            let w: EpochWire = parse(
                require(env.randao_reveal, "randao_reveal")?,
                "randao_reveal",
            )?;
            with_fork_info(env, DOMAIN_RANDAO, w.epoch, w.epoch.tree_hash_root().0).map(plain)
        }
        RequestKind::VoluntaryExit => {
            let exit: VoluntaryExit = parse(
                require(env.voluntary_exit, "voluntary_exit")?,
                "voluntary_exit",
            )?;
            let fork_info = env.fork_info.ok_or(Error::MissingField("fork_info"))?;
            // EIP-7044: from Deneb on, exits are signed with the Capella fork version.
            let version = if network
                .is_version_at_or_after(fork_info.fork.current_version, ForkName::Deneb)
            {
                network
                    .fork(ForkName::Capella)
                    .ok_or_else(|| Error::MissingForkVersion {
                        network: network.name().to_owned(),
                        fork: ForkName::Capella.as_str(),
                        purpose: "EIP-7044 voluntary exits",
                    })?
                    .version
            } else {
                fork_info.fork.version_at(exit.epoch)
            };
            let domain = compute_domain(
                DOMAIN_VOLUNTARY_EXIT,
                version,
                fork_info.genesis_validators_root,
            );
            Ok(plain(compute_signing_root(exit.tree_hash_root().0, domain)))
        }
        RequestKind::Deposit => {
            let w: DepositWire = parse(require(env.deposit, "deposit")?, "deposit")?;
            let message = DepositMessage {
                pubkey: w.pubkey,
                withdrawal_credentials: w.withdrawal_credentials,
                amount: w.amount,
            };
            let domain = compute_domain(DOMAIN_DEPOSIT, w.genesis_fork_version, ZERO_ROOT);
            Ok(plain(compute_signing_root(
                message.tree_hash_root().0,
                domain,
            )))
        }
        RequestKind::SyncCommitteeMessage => {
            let w: SyncCommitteeMessageWire = parse(
                require(env.sync_committee_message, "sync_committee_message")?,
                "sync_committee_message",
            )?;
            with_fork_info(
                env,
                DOMAIN_SYNC_COMMITTEE,
                network.epoch_at_slot(w.slot),
                w.beacon_block_root,
            )
            .map(plain)
        }
        RequestKind::SyncCommitteeSelectionProof => {
            let d: SyncAggregatorSelectionData = parse(
                require(
                    env.sync_aggregator_selection_data,
                    "sync_aggregator_selection_data",
                )?,
                "sync_aggregator_selection_data",
            )?;
            with_fork_info(
                env,
                DOMAIN_SYNC_COMMITTEE_SELECTION_PROOF,
                network.epoch_at_slot(d.slot),
                d.tree_hash_root().0,
            )
            .map(plain)
        }
        RequestKind::SyncCommitteeContributionAndProof => {
            let c: ContributionAndProof<E> = parse(
                require(env.contribution_and_proof, "contribution_and_proof")?,
                "contribution_and_proof",
            )?;
            with_fork_info(
                env,
                DOMAIN_CONTRIBUTION_AND_PROOF,
                network.epoch_at_slot(c.contribution.slot),
                c.tree_hash_root().0,
            )
            .map(plain)
        }
        RequestKind::ValidatorRegistration => {
            let r: ValidatorRegistrationV1 = parse(
                require(env.validator_registration, "validator_registration")?,
                "validator_registration",
            )?;
            let domain = compute_domain(
                DOMAIN_APPLICATION_BUILDER,
                network.genesis_fork_version(),
                ZERO_ROOT,
            );
            Ok(plain(compute_signing_root(r.tree_hash_root().0, domain)))
        }
        RequestKind::ExecutionPayloadBid => {
            const FIELD: &str = "execution_payload_bid";
            let field = FIELD;
            let raw = gloas_object(require(env.execution_payload_bid, FIELD)?, FIELD)?;
            let bid: ExecutionPayloadBid = parse(raw, field)?;
            gloas_signing_root(
                env,
                network,
                DOMAIN_BEACON_BUILDER,
                bid.slot,
                FIELD,
                bid.tree_hash_root().0,
            )
            .map(plain)
        }
        RequestKind::ExecutionPayloadEnvelope => {
            const FIELD: &str = "execution_payload_envelope";
            let field = FIELD;
            let raw = gloas_object(require(env.execution_payload_envelope, FIELD)?, FIELD)?;
            let envelope: ExecutionPayloadEnvelope = parse(raw, field)?;
            envelope
                .execution_requests
                .check_limits()
                .map_err(|reason| Error::InvalidField { field, reason })?;
            gloas_signing_root(
                env,
                network,
                DOMAIN_BEACON_BUILDER,
                envelope.payload.slot_number,
                FIELD,
                envelope.tree_hash_root().0,
            )
            .map(plain)
        }
        RequestKind::PayloadAttestationMessage => {
            const FIELD: &str = "payload_attestation_message";
            let field = FIELD;
            let raw = gloas_object(require(env.payload_attestation_message, FIELD)?, FIELD)?;
            let raw = payload_attestation_data_of(raw, field)?;
            let data: PayloadAttestationData = parse(raw, field)?;
            gloas_signing_root(
                env,
                network,
                DOMAIN_PTC_ATTESTER,
                data.slot,
                FIELD,
                data.tree_hash_root().0,
            )
            .map(plain)
        }
        RequestKind::ProposerPreferences => {
            const FIELD: &str = "proposer_preferences";
            let field = FIELD;
            let raw = gloas_object(require(env.proposer_preferences, FIELD)?, FIELD)?;
            let prefs: ProposerPreferences = parse(raw, field)?;
            gloas_signing_root(
                env,
                network,
                DOMAIN_PROPOSER_PREFERENCES,
                prefs.proposal_slot,
                FIELD,
                prefs.tree_hash_root().0,
            )
            .map(plain)
        }
        RequestKind::BuilderRequestAuth => {
            const FIELD: &str = "builder_request_auth";
            let field = FIELD;
            let raw = gloas_object(require(env.builder_request_auth, FIELD)?, FIELD)?;
            let auth: RequestAuthV1 = parse(raw, field)?;
            // builder-specs (ethereum/builder-specs#165): a zero-length `data` is invalid.
            if auth.data.is_empty() {
                return Err(Error::InvalidField {
                    field,
                    reason: "data must hold 1 to 4096 bytes, not none".into(),
                });
            }
            require_gloas_epoch(network, network.epoch_at_slot(auth.slot), FIELD)?;
            // compute_domain(DOMAIN_REQUEST_AUTH): genesis fork version, zero root; no fork_info.
            let domain = compute_domain(
                DOMAIN_REQUEST_AUTH,
                network.genesis_fork_version(),
                ZERO_ROOT,
            );
            Ok(plain(compute_signing_root(auth.tree_hash_root().0, domain)))
        }
    }
}

/// The error for a fork that is recognised but that nothing signs with yet (Heze).
fn unsupported(version: ForkName, field: &'static str) -> Error {
    Error::ForkMismatch(format!(
        "{field} version {version} is recognised but not supported for signing yet"
    ))
}

/// A Gloas type's object: `{"version": "GLOAS", "data": {...}}` (remote-signing-api v1.4.0), or
/// the bare object as some clients send it. Any other version is an error. Returns the object.
fn gloas_object<'a>(raw: &'a RawValue, field: &'static str) -> Result<&'a RawValue, Error> {
    let probe: AggregateWrapperProbe<'a> = parse(raw, field)?;
    match probe.version {
        None => Ok(raw),
        Some(version) => {
            let fork = parse_version(&version, field)?;
            match fork {
                ForkName::Gloas => {}
                ForkName::Heze => return Err(unsupported(fork, field)),
                _ => {
                    return Err(Error::ForkMismatch(format!(
                        "{field} exists from GLOAS on, not in {fork}"
                    )));
                }
            }
            let data = probe.data.ok_or(Error::MissingField(match field {
                "execution_payload_bid" => "execution_payload_bid.data",
                "execution_payload_envelope" => "execution_payload_envelope.data",
                "payload_attestation_message" => "payload_attestation_message.data",
                "proposer_preferences" => "proposer_preferences.data",
                _ => "builder_request_auth.data",
            }))?;
            Ok(data)
        }
    }
}

/// A payload attestation object is `PayloadAttestationData`, or (as some clients send it) a whole
/// `PayloadAttestationMessage` `{validator_index, data}`, of which only `data` is signed.
fn payload_attestation_data_of<'a>(
    raw: &'a RawValue,
    field: &'static str,
) -> Result<&'a RawValue, Error> {
    #[derive(Deserialize)]
    struct MessageProbe<'a> {
        #[serde(default)]
        beacon_block_root: Option<IgnoredAny>,
        #[serde(default, borrow)]
        data: Option<&'a RawValue>,
    }
    let probe: MessageProbe<'a> = parse(raw, field)?;
    Ok(match (probe.beacon_block_root, probe.data) {
        (None, Some(data)) => data,
        _ => raw,
    })
}

/// Refuses a Gloas object whose epoch the network does not schedule as Gloas.
fn require_gloas_epoch(network: &Network, epoch: u64, field: &'static str) -> Result<(), Error> {
    let scheduled = network.fork_at_epoch(epoch);
    if scheduled != ForkName::Gloas {
        return Err(Error::ForkMismatch(format!(
            "{field} is a GLOAS object but network {} is at {scheduled} in epoch {epoch}",
            network.name()
        )));
    }
    Ok(())
}

/// The version `fork_info` gives at `epoch` must be `fork`'s version on this network.
fn check_fork_info_version(
    fork_info: &ForkInfo,
    network: &Network,
    fork: ForkName,
    epoch: u64,
) -> Result<(), Error> {
    let expected = network
        .fork(fork)
        .ok_or_else(|| Error::MissingForkVersion {
            network: network.name().to_owned(),
            fork: fork.as_str(),
            purpose: "checking fork_info",
        })?
        .version;
    let given = fork_info.fork.version_at(epoch);
    if given != expected {
        return Err(Error::ForkMismatch(format!(
            "fork_info gives version {} at epoch {epoch}, but {fork} on network {} is {}",
            to_hex(&given),
            network.name(),
            to_hex(&expected)
        )));
    }
    Ok(())
}

/// Signing root of a Gloas object at `slot` under `fork_info`, after checking that the network
/// schedules Gloas at that epoch and that `fork_info` gives Gloas's version there.
fn gloas_signing_root(
    env: &Envelope<'_>,
    network: &Network,
    domain_type: DomainType,
    slot: u64,
    field: &'static str,
    object_root: Root,
) -> Result<Root, Error> {
    let epoch = network.epoch_at_slot(slot);
    require_gloas_epoch(network, epoch, field)?;
    let fork_info = env.fork_info.ok_or(Error::MissingField("fork_info"))?;
    check_fork_info_version(&fork_info, network, ForkName::Gloas, epoch)?;
    Ok(compute_signing_root(
        object_root,
        fork_info.domain(domain_type, epoch),
    ))
}

/// For a versioned block or aggregate: a GLOAS object must be at a Gloas epoch with a matching
/// `fork_info`; an object of an earlier fork must not be at a Gloas (or later) epoch, where its
/// root would be computed with the wrong containers.
fn check_versioned_epoch(
    env: &Envelope<'_>,
    network: &Network,
    version: ForkName,
    epoch: u64,
    field: &'static str,
) -> Result<(), Error> {
    let scheduled = network.fork_at_epoch(epoch);
    if version == ForkName::Gloas {
        require_gloas_epoch(network, epoch, field)?;
        if let Some(fork_info) = &env.fork_info {
            check_fork_info_version(fork_info, network, ForkName::Gloas, epoch)?;
        }
    } else if scheduled >= ForkName::Gloas {
        return Err(Error::ForkMismatch(format!(
            "{field} version {version} at epoch {epoch}, but network {} is at {scheduled} there",
            network.name()
        )));
    }
    Ok(())
}

fn block_root(
    env: &Envelope<'_>,
    network: &Network,
    slot: u64,
    object_root: Root,
) -> Result<Computed, Error> {
    let signing_root = with_fork_info(
        env,
        DOMAIN_BEACON_PROPOSER,
        network.epoch_at_slot(slot),
        object_root,
    )?;
    Ok(Computed {
        signing_root,
        slashing: Some(SlashingSubject::Block { slot }),
    })
}

/// `AGGREGATE_AND_PROOF` and `AGGREGATE_AND_PROOF_V2` share one reader (as in Web3Signer): a
/// `{version, data}` wrapper picks the attestation type by version; a bare object is an Electra
/// aggregate iff it carries `committee_bits`, which must agree with the network's schedule, and
/// is hashed as a Gloas (progressive) one at Gloas epochs, where the JSON is the same.
fn aggregate_and_proof<E: EthSpec>(env: &Envelope<'_>, network: &Network) -> Result<Root, Error> {
    const FIELD: &str = "aggregate_and_proof";
    let raw = require(env.aggregate_and_proof, FIELD)?;
    let probe: AggregateWrapperProbe<'_> = parse(raw, FIELD)?;
    let (slot, object_root) = match probe.version {
        Some(version) => {
            let fork = parse_version(&version, FIELD)?;
            let data = probe
                .data
                .ok_or(Error::MissingField("aggregate_and_proof.data"))?;
            let field = "aggregate_and_proof.data";
            let (slot, root) = match fork {
                ForkName::Heze => return Err(unsupported(fork, FIELD)),
                ForkName::Gloas => {
                    let a: AggregateAndProof<AttestationGloas<E>> = parse(data, field)?;
                    (a.aggregate.data.slot, a.tree_hash_root().0)
                }
                f if f >= ForkName::Electra => {
                    let a: AggregateAndProof<AttestationElectra<E>> = parse(data, field)?;
                    (a.aggregate.data.slot, a.tree_hash_root().0)
                }
                _ => {
                    let a: AggregateAndProof<Attestation<E>> = parse(data, field)?;
                    (a.aggregate.data.slot, a.tree_hash_root().0)
                }
            };
            check_versioned_epoch(env, network, fork, network.epoch_at_slot(slot), FIELD)?;
            (slot, root)
        }
        None => {
            let shape: BareAggregateProbe = parse(raw, FIELD)?;
            let electra = shape.aggregate.committee_bits.is_some();
            let (slot, root) = if electra {
                let a: AggregateAndProof<AttestationElectra<E>> = parse(raw, FIELD)?;
                (a.aggregate.data.slot, a.tree_hash_root().0)
            } else {
                let a: AggregateAndProof<Attestation<E>> = parse(raw, FIELD)?;
                (a.aggregate.data.slot, a.tree_hash_root().0)
            };
            let epoch = network.epoch_at_slot(slot);
            let scheduled = network.fork_at_epoch(epoch);
            if (scheduled >= ForkName::Electra) != electra {
                return Err(Error::ForkMismatch(format!(
                    "aggregate for slot {slot} {} committee_bits but network {} is at {scheduled} in epoch {epoch}",
                    if electra { "has" } else { "lacks" },
                    network.name(),
                )));
            }
            match scheduled {
                ForkName::Gloas => {
                    let a: AggregateAndProof<AttestationGloas<E>> = parse(raw, FIELD)?;
                    (slot, a.tree_hash_root().0)
                }
                ForkName::Heze => return Err(unsupported(scheduled, FIELD)),
                _ => (slot, root),
            }
        }
    };
    let epoch = network.epoch_at_slot(slot);
    with_fork_info(env, DOMAIN_AGGREGATE_AND_PROOF, epoch, object_root)
}
