//! EIP-3076 slashing-protection interchange format, version 5: parsing, validation, merging and
//! serialisation. Pure: no I/O.
//!
//! Parsing validates everything before a store sees it (format version, hex lengths, decimal u64
//! strings below 2^63), so a malformed file is refused with [`Error::InvalidInterchange`] and
//! nothing is stored. [`Interchange::import_plan`] then merges the file per validator: duplicate
//! pubkeys are combined, several records at one slot or target collapse into one with an unknown
//! root (never "the same data" as anything), which is how slashable files are imported safely.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::rules::{AttestationRecord, BlockRecord, StoredRoot, merge_roots, stored_root};
use crate::{Error, MAX_STORED_VALUE, Pubkey, Root};

/// The only interchange format version supported.
pub const FORMAT_VERSION: &str = "5";

/// A parsed and validated interchange file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interchange {
    /// The genesis validators root of the chain the history belongs to.
    pub genesis_validators_root: Root,
    /// One entry per record in the file (pubkeys may repeat).
    pub data: Vec<InterchangeRecord>,
}

/// One validator's history in an interchange file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterchangeRecord {
    /// The validator's BLS public key (compressed, 48 bytes).
    pub pubkey: Pubkey,
    /// Signed blocks.
    pub signed_blocks: Vec<BlockRecord>,
    /// Signed attestations.
    pub signed_attestations: Vec<AttestationRecord>,
}

/// One validator's history to import, merged: at most one block per slot and one attestation per
/// target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportRecord {
    /// Blocks by slot.
    pub blocks: BTreeMap<u64, StoredRoot>,
    /// Attestations by target: `(source, root)`.
    pub attestations: BTreeMap<u64, (u64, StoredRoot)>,
}

impl ImportRecord {
    /// The highest imported slot.
    pub fn max_slot(&self) -> Option<u64> {
        self.blocks.keys().next_back().copied()
    }
    /// The highest imported source epoch.
    pub fn max_source(&self) -> Option<u64> {
        self.attestations.values().map(|(s, _)| *s).max()
    }
    /// The highest imported target epoch.
    pub fn max_target(&self) -> Option<u64> {
        self.attestations.keys().next_back().copied()
    }
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Validators whose history was imported.
    pub validators: usize,
    /// Block records read (after merging duplicates).
    pub blocks: usize,
    /// Attestation records read (after merging duplicates).
    pub attestations: usize,
    /// Validators present in the file but left out because of the `only` filter.
    pub skipped_validators: usize,
}

#[derive(Deserialize, Serialize)]
struct RawInterchange {
    metadata: RawMetadata,
    data: Vec<RawRecord>,
}

#[derive(Deserialize, Serialize)]
struct RawMetadata {
    interchange_format_version: String,
    genesis_validators_root: String,
}

#[derive(Deserialize, Serialize)]
struct RawRecord {
    pubkey: String,
    signed_blocks: Vec<RawBlock>,
    signed_attestations: Vec<RawAttestation>,
}

#[derive(Deserialize, Serialize)]
struct RawBlock {
    slot: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signing_root: Option<String>,
}

#[derive(Deserialize, Serialize)]
struct RawAttestation {
    source_epoch: String,
    target_epoch: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signing_root: Option<String>,
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidInterchange(msg.into())
}

/// Decodes `0x`-prefixed hex of exactly `N` bytes.
pub fn decode_hex<const N: usize>(s: &str, what: &str) -> Result<[u8; N], Error> {
    let body = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .ok_or_else(|| invalid(format!("{what} must start with 0x")))?;
    let mut out = [0u8; N];
    hex::decode_to_slice(body, &mut out)
        .map_err(|_| invalid(format!("{what} must be {N} bytes of hex")))?;
    Ok(out)
}

/// Parses a decimal u64 string that a store can hold (below 2^63).
fn parse_u64(s: &str, what: &str) -> Result<u64, Error> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(format!(
            "{what} must be a decimal string, got {s:?}"
        )));
    }
    let v: u64 = s
        .parse()
        .map_err(|_| invalid(format!("{what} does not fit in 64 bits")))?;
    if v > MAX_STORED_VALUE {
        return Err(invalid(format!(
            "{what} {v} is 2^63 or more, which this store does not accept"
        )));
    }
    Ok(v)
}

fn parse_root(s: &Option<String>, what: &str) -> Result<StoredRoot, Error> {
    match s {
        None => Ok(None),
        Some(s) => Ok(stored_root(decode_hex::<32>(s, what)?)),
    }
}

fn hex0x(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

impl Interchange {
    /// Parses and validates an interchange JSON document.
    pub fn from_json(json: &str) -> Result<Self, Error> {
        let raw: RawInterchange = serde_json::from_str(json)
            .map_err(|e| invalid(format!("not a valid interchange document: {e}")))?;
        if raw.metadata.interchange_format_version != FORMAT_VERSION {
            return Err(invalid(format!(
                "interchange_format_version {:?} is not supported (only \"5\")",
                raw.metadata.interchange_format_version
            )));
        }
        let genesis_validators_root = decode_hex::<32>(
            &raw.metadata.genesis_validators_root,
            "genesis_validators_root",
        )?;
        let mut data = Vec::with_capacity(raw.data.len());
        for rec in &raw.data {
            let pubkey = decode_hex::<48>(&rec.pubkey, "pubkey")?;
            let mut signed_blocks = Vec::with_capacity(rec.signed_blocks.len());
            for b in &rec.signed_blocks {
                signed_blocks.push(BlockRecord {
                    slot: parse_u64(&b.slot, "slot")?,
                    signing_root: parse_root(&b.signing_root, "block signing_root")?,
                });
            }
            let mut signed_attestations = Vec::with_capacity(rec.signed_attestations.len());
            for a in &rec.signed_attestations {
                signed_attestations.push(AttestationRecord {
                    source: parse_u64(&a.source_epoch, "source_epoch")?,
                    target: parse_u64(&a.target_epoch, "target_epoch")?,
                    signing_root: parse_root(&a.signing_root, "attestation signing_root")?,
                });
            }
            data.push(InterchangeRecord {
                pubkey,
                signed_blocks,
                signed_attestations,
            });
        }
        Ok(Self {
            genesis_validators_root,
            data,
        })
    }

    /// Serialises to EIP-3076 JSON (unknown roots are left out).
    pub fn to_json(&self) -> Result<String, Error> {
        let raw = RawInterchange {
            metadata: RawMetadata {
                interchange_format_version: FORMAT_VERSION.to_string(),
                genesis_validators_root: hex0x(&self.genesis_validators_root),
            },
            data: self
                .data
                .iter()
                .map(|r| RawRecord {
                    pubkey: hex0x(&r.pubkey),
                    signed_blocks: r
                        .signed_blocks
                        .iter()
                        .map(|b| RawBlock {
                            slot: b.slot.to_string(),
                            signing_root: b.signing_root.map(|x| hex0x(&x)),
                        })
                        .collect(),
                    signed_attestations: r
                        .signed_attestations
                        .iter()
                        .map(|a| RawAttestation {
                            source_epoch: a.source.to_string(),
                            target_epoch: a.target.to_string(),
                            signing_root: a.signing_root.map(|x| hex0x(&x)),
                        })
                        .collect(),
                })
                .collect(),
        };
        serde_json::to_string(&raw).map_err(|e| Error::Serialise(e.to_string()))
    }

    /// Merges the records per validator, keeping only the pubkeys in `only` when given. Returns the
    /// plan and how many validators were left out.
    pub fn import_plan(&self, only: Option<&[Pubkey]>) -> (BTreeMap<Pubkey, ImportRecord>, usize) {
        let mut plan: BTreeMap<Pubkey, ImportRecord> = BTreeMap::new();
        let mut skipped = std::collections::BTreeSet::new();
        for rec in &self.data {
            if let Some(only) = only
                && !only.contains(&rec.pubkey)
            {
                skipped.insert(rec.pubkey);
                continue;
            }
            let entry = plan.entry(rec.pubkey).or_default();
            for b in &rec.signed_blocks {
                entry
                    .blocks
                    .entry(b.slot)
                    .and_modify(|r| *r = merge_roots(*r, b.signing_root))
                    .or_insert(b.signing_root);
            }
            for a in &rec.signed_attestations {
                entry
                    .attestations
                    .entry(a.target)
                    .and_modify(|(s, r)| {
                        *s = (*s).max(a.source);
                        *r = None;
                    })
                    .or_insert((a.source, a.signing_root));
            }
        }
        (plan, skipped.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GVR: &str = "0x04700007fabc8282644aed6d1c7c9e21d38a03a0c4ba193f3afe428824b3a673";
    const PK: &str = "0xb845089a1457f811bfc000588fbb4e713669be8ce060ea6be3c6ece09afc3794106c91ca73acda5e5457122d58723bed";

    fn doc(version: &str, slot: &str) -> String {
        format!(
            r#"{{"metadata":{{"interchange_format_version":"{version}","genesis_validators_root":"{GVR}"}},
            "data":[{{"pubkey":"{PK}","signed_blocks":[{{"slot":"{slot}"}}],"signed_attestations":[]}}]}}"#
        )
    }

    #[test]
    fn parses_and_round_trips() {
        let i = Interchange::from_json(&doc("5", "81952")).expect("valid");
        assert_eq!(i.data.len(), 1);
        assert_eq!(i.data[0].signed_blocks[0].slot, 81952);
        let again = Interchange::from_json(&i.to_json().expect("json")).expect("valid");
        assert_eq!(i, again);
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            doc("4", "1"),
            doc("5", "-1"),
            doc("5", "1.5"),
            doc("5", ""),
            doc("5", "18446744073709551616"),
            doc("5", "9223372036854775808"),
            "{}".to_string(),
            "[".to_string(),
            doc("5", "1").replace(PK, "0x1234"),
            doc("5", "1").replace(
                GVR,
                "04700007fabc8282644aed6d1c7c9e21d38a03a0c4ba193f3afe428824b3a673",
            ),
            doc("5", "1").replace(r#""slot":"1""#, r#""slot":1"#),
        ] {
            assert!(
                matches!(
                    Interchange::from_json(&bad),
                    Err(Error::InvalidInterchange(_))
                ),
                "{bad}"
            );
        }
        assert!(Interchange::from_json(&doc("5", "9223372036854775807")).is_ok());
    }

    #[test]
    fn merges_duplicates_to_unknown_root() {
        let mut i = Interchange::from_json(&doc("5", "7")).expect("valid");
        let rec = i.data[0].clone();
        i.data[0].signed_blocks[0].signing_root = Some([1; 32]);
        i.data.push(InterchangeRecord {
            signed_blocks: vec![BlockRecord {
                slot: 7,
                signing_root: Some([1; 32]),
            }],
            ..rec.clone()
        });
        let (plan, skipped) = i.import_plan(None);
        assert_eq!(skipped, 0);
        assert_eq!(plan[&rec.pubkey].blocks[&7], Some([1; 32]));
        i.data[1].signed_blocks[0].signing_root = Some([2; 32]);
        let (plan, _) = i.import_plan(None);
        assert_eq!(plan[&rec.pubkey].blocks[&7], None);
        let (plan, skipped) = i.import_plan(Some(&[[9; 48]]));
        assert!(plan.is_empty());
        assert_eq!(skipped, 1);
    }
}
