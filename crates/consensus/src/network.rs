//! Networks: preset, genesis fork version, fork schedule and (for known networks) the genesis
//! validators root.
//!
//! Built-in networks come from the published `config.yaml` of each chain; any other network is
//! read from its standard consensus-specs `config.yaml` with [`Network::from_config_yaml`].

use std::fmt;

use crate::Root;
use crate::containers::Version;
use crate::error::Error;
use crate::spec::Preset;
use crate::wire::{decode_fixed, parse_u64, snippet};

/// The epoch of a fork that is not scheduled (`2**64 - 1`).
pub const FAR_FUTURE_EPOCH: u64 = u64::MAX;

/// A consensus fork, in activation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ForkName {
    /// Genesis.
    Phase0,
    /// Altair.
    Altair,
    /// Bellatrix (the Merge).
    Bellatrix,
    /// Capella.
    Capella,
    /// Deneb.
    Deneb,
    /// Electra.
    Electra,
    /// Fulu.
    Fulu,
    /// Gloas (EIP-7732 enshrined proposer-builder separation).
    Gloas,
    /// Heze: recognised in configs and carried in schedules; nothing signs with it yet.
    Heze,
}

impl ForkName {
    /// Every fork, oldest first.
    pub const ALL: [ForkName; 9] = [
        ForkName::Phase0,
        ForkName::Altair,
        ForkName::Bellatrix,
        ForkName::Capella,
        ForkName::Deneb,
        ForkName::Electra,
        ForkName::Fulu,
        ForkName::Gloas,
        ForkName::Heze,
    ];

    /// Upper-case name as used in request `version` fields (`PHASE0`, `ALTAIR`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ForkName::Phase0 => "PHASE0",
            ForkName::Altair => "ALTAIR",
            ForkName::Bellatrix => "BELLATRIX",
            ForkName::Capella => "CAPELLA",
            ForkName::Deneb => "DENEB",
            ForkName::Electra => "ELECTRA",
            ForkName::Fulu => "FULU",
            ForkName::Gloas => "GLOAS",
            ForkName::Heze => "HEZE",
        }
    }

    /// Parses a fork name, case-insensitively.
    pub fn parse(s: &str) -> Option<ForkName> {
        ForkName::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(s))
    }

    /// Index into a post-genesis fork table (`None` for phase0).
    fn post_genesis_index(self) -> Option<usize> {
        (self as usize).checked_sub(1)
    }
}

impl fmt::Display for ForkName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A fork's version and activation epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduledFork {
    /// Fork version.
    pub version: Version,
    /// Activation epoch ([`FAR_FUTURE_EPOCH`] if not scheduled).
    pub epoch: u64,
}

const POST_GENESIS: usize = ForkName::ALL.len() - 1;

/// A network's consensus parameters as far as signing needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    name: String,
    preset: Preset,
    genesis_fork_version: Version,
    /// Altair..Heze; `None` when the config names no version for that fork.
    forks: [Option<ScheduledFork>; POST_GENESIS],
    genesis_validators_root: Option<Root>,
}

struct Known {
    name: &'static str,
    preset: Preset,
    genesis_fork_version: Version,
    forks: [Option<(Version, u64)>; POST_GENESIS],
    genesis_validators_root: Option<Root>,
}

const F: u64 = FAR_FUTURE_EPOCH;

/// A fork with a version (and an epoch, [`F`] if unscheduled).
const fn at(version: Version, epoch: u64) -> Option<(Version, u64)> {
    Some((version, epoch))
}

/// Built-in networks. Sources: eth-clients/{mainnet,sepolia,holesky,hoodi} `metadata/config.yaml`
/// and `genesis_validators_root`, gnosischain/configs `mainnet/config.yaml` and `genesis.ssz`,
/// consensus-specs `configs/minimal.yaml` and `configs/mainnet.yaml` (commit `a08d8a6e`: Gloas
/// `0x07000000` and Heze `0x08000000`, unscheduled). Sepolia's Gloas fork (`0x90000076` at epoch
/// 353024) is from ethereum/pm#2205 and the clients' sepolia releases; hoodi's Gloas version
/// (`0x80000910`, unscheduled) from client configs. Holesky and gnosis publish no Gloas version
/// yet (`None`); Heze has no version on sepolia and hoodi yet. See
/// `testdata/consensus-configs/SOURCE.md`.
const KNOWN: [Known; 6] = [
    Known {
        name: "mainnet",
        preset: Preset::Mainnet,
        genesis_fork_version: [0x00, 0x00, 0x00, 0x00],
        forks: [
            at([0x01, 0x00, 0x00, 0x00], 74240),
            at([0x02, 0x00, 0x00, 0x00], 144896),
            at([0x03, 0x00, 0x00, 0x00], 194048),
            at([0x04, 0x00, 0x00, 0x00], 269568),
            at([0x05, 0x00, 0x00, 0x00], 364032),
            at([0x06, 0x00, 0x00, 0x00], 411392),
            at([0x07, 0x00, 0x00, 0x00], F),
            at([0x08, 0x00, 0x00, 0x00], F),
        ],
        genesis_validators_root: Some(hex32(
            b"4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95",
        )),
    },
    Known {
        name: "sepolia",
        preset: Preset::Mainnet,
        genesis_fork_version: [0x90, 0x00, 0x00, 0x69],
        forks: [
            at([0x90, 0x00, 0x00, 0x70], 50),
            at([0x90, 0x00, 0x00, 0x71], 100),
            at([0x90, 0x00, 0x00, 0x72], 56832),
            at([0x90, 0x00, 0x00, 0x73], 132608),
            at([0x90, 0x00, 0x00, 0x74], 222464),
            at([0x90, 0x00, 0x00, 0x75], 272640),
            at([0x90, 0x00, 0x00, 0x76], 353024),
            None,
        ],
        genesis_validators_root: Some(hex32(
            b"d8ea171f3c94aea21ebc42a1ed61052acf3f9209c00e4efbaaddac09ed9b8078",
        )),
    },
    Known {
        name: "holesky",
        preset: Preset::Mainnet,
        genesis_fork_version: [0x01, 0x01, 0x70, 0x00],
        forks: [
            at([0x02, 0x01, 0x70, 0x00], 0),
            at([0x03, 0x01, 0x70, 0x00], 0),
            at([0x04, 0x01, 0x70, 0x00], 256),
            at([0x05, 0x01, 0x70, 0x00], 29696),
            at([0x06, 0x01, 0x70, 0x00], 115968),
            at([0x07, 0x01, 0x70, 0x00], 165120),
            None,
            None,
        ],
        genesis_validators_root: Some(hex32(
            b"9143aa7c615a7f7115e2b6aac319c03529df8242ae705fba9df39b79c59fa8b1",
        )),
    },
    Known {
        name: "hoodi",
        preset: Preset::Mainnet,
        genesis_fork_version: [0x10, 0x00, 0x09, 0x10],
        forks: [
            at([0x20, 0x00, 0x09, 0x10], 0),
            at([0x30, 0x00, 0x09, 0x10], 0),
            at([0x40, 0x00, 0x09, 0x10], 0),
            at([0x50, 0x00, 0x09, 0x10], 0),
            at([0x60, 0x00, 0x09, 0x10], 2048),
            at([0x70, 0x00, 0x09, 0x10], 50688),
            at([0x80, 0x00, 0x09, 0x10], F),
            None,
        ],
        genesis_validators_root: Some(hex32(
            b"212f13fc4df078b6cb7db228f1c8307566dcecf900867401a92023d7ba99cb5f",
        )),
    },
    Known {
        name: "gnosis",
        preset: Preset::Gnosis,
        genesis_fork_version: [0x00, 0x00, 0x00, 0x64],
        forks: [
            at([0x01, 0x00, 0x00, 0x64], 512),
            at([0x02, 0x00, 0x00, 0x64], 385536),
            at([0x03, 0x00, 0x00, 0x64], 648704),
            at([0x04, 0x00, 0x00, 0x64], 889856),
            at([0x05, 0x00, 0x00, 0x64], 1337856),
            at([0x06, 0x00, 0x00, 0x64], 1714688),
            None,
            None,
        ],
        genesis_validators_root: Some(hex32(
            b"f5dcb5564e829aab27264b9becd5dfaa017085611224cb3036f573368dbb9d47",
        )),
    },
    Known {
        name: "minimal",
        preset: Preset::Minimal,
        genesis_fork_version: [0x00, 0x00, 0x00, 0x01],
        forks: [
            at([0x01, 0x00, 0x00, 0x01], F),
            at([0x02, 0x00, 0x00, 0x01], F),
            at([0x03, 0x00, 0x00, 0x01], F),
            at([0x04, 0x00, 0x00, 0x01], F),
            at([0x05, 0x00, 0x00, 0x01], F),
            at([0x06, 0x00, 0x00, 0x01], F),
            at([0x07, 0x00, 0x00, 0x01], F),
            at([0x08, 0x00, 0x00, 0x01], F),
        ],
        genesis_validators_root: None,
    },
];

/// Compile-time hex decoding of a 32-byte root (64 lower-case hex digits).
const fn hex32(s: &[u8; 64]) -> Root {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("bad hex digit in a built-in constant"),
        }
    }
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = (nibble(s[2 * i]) << 4) | nibble(s[2 * i + 1]);
        i += 1;
    }
    out
}

impl Known {
    fn network(&self) -> Network {
        let mut forks = [None; POST_GENESIS];
        for (slot, fork) in forks.iter_mut().zip(self.forks) {
            *slot = fork.map(|(version, epoch)| ScheduledFork { version, epoch });
        }
        Network {
            name: self.name.to_owned(),
            preset: self.preset,
            genesis_fork_version: self.genesis_fork_version,
            forks,
            genesis_validators_root: self.genesis_validators_root,
        }
    }
}

impl Network {
    /// Names accepted by [`Network::by_name`].
    pub const KNOWN_NAMES: [&'static str; 6] = [
        "mainnet", "sepolia", "holesky", "hoodi", "gnosis", "minimal",
    ];

    /// A built-in network: `mainnet`, `sepolia`, `holesky`, `hoodi`, `gnosis`, or `minimal` (the
    /// consensus-specs minimal test config, no fork scheduled, no genesis validators root).
    /// Case-insensitive.
    pub fn by_name(name: &str) -> Result<Network, Error> {
        KNOWN
            .iter()
            .find(|k| k.name.eq_ignore_ascii_case(name))
            .map(Known::network)
            .ok_or_else(|| Error::UnknownNetwork(snippet(name)))
    }

    /// Reads a standard consensus-specs `config.yaml`.
    ///
    /// Required: `PRESET_BASE` and `GENESIS_FORK_VERSION`. `CONFIG_NAME` names the network
    /// (`custom` if absent). `<FORK>_FORK_VERSION`/`<FORK>_FORK_EPOCH` for ALTAIR, BELLATRIX,
    /// CAPELLA, DENEB, ELECTRA, FULU, GLOAS and HEZE: a fork without an epoch is unscheduled; a fork with an
    /// epoch needs a version; scheduled forks must not activate before an earlier fork. Other keys
    /// (and nested YAML such as `BLOB_SCHEDULE`) are ignored. When `CONFIG_NAME` and the genesis
    /// fork version match a built-in network, its genesis validators root is known.
    pub fn from_config_yaml(text: &str) -> Result<Network, Error> {
        let kv = parse_flat_yaml(text)?;
        let get = |key: &str| kv.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        let cfg_err = |msg: String| Error::InvalidConfig(msg);

        let preset_str = get("PRESET_BASE").ok_or_else(|| cfg_err("missing PRESET_BASE".into()))?;
        let preset = Preset::parse(preset_str)
            .ok_or_else(|| cfg_err(format!("unknown PRESET_BASE {:?}", snippet(preset_str))))?;
        let name = get("CONFIG_NAME").unwrap_or("custom").to_owned();
        let genesis_fork_version = get("GENESIS_FORK_VERSION")
            .ok_or_else(|| cfg_err("missing GENESIS_FORK_VERSION".into()))
            .and_then(|v| {
                decode_fixed::<4>(v).map_err(|e| cfg_err(format!("GENESIS_FORK_VERSION: {e}")))
            })?;

        let mut forks = [None; POST_GENESIS];
        let mut previous_epoch = 0u64;
        let mut previous_unversioned: Option<ForkName> = None;
        for fork in ForkName::ALL.into_iter().skip(1) {
            let version_key = format!("{}_FORK_VERSION", fork.as_str());
            let epoch_key = format!("{}_FORK_EPOCH", fork.as_str());
            let version = get(&version_key)
                .map(|v| decode_fixed::<4>(v).map_err(|e| cfg_err(format!("{version_key}: {e}"))))
                .transpose()?;
            let epoch = get(&epoch_key)
                .map(|v| parse_u64(v).map_err(|e| cfg_err(format!("{epoch_key}: {e}"))))
                .transpose()?
                .unwrap_or(FAR_FUTURE_EPOCH);
            let Some(idx) = fork.post_genesis_index() else {
                continue;
            };
            match version {
                None if epoch != FAR_FUTURE_EPOCH => {
                    return Err(cfg_err(format!(
                        "{epoch_key} is set but {version_key} is missing"
                    )));
                }
                None => {
                    previous_unversioned.get_or_insert(fork);
                }
                Some(version) => {
                    if epoch != FAR_FUTURE_EPOCH {
                        if let Some(earlier) = previous_unversioned {
                            return Err(cfg_err(format!(
                                "{fork} is scheduled but {earlier} has no fork version"
                            )));
                        }
                        if epoch < previous_epoch {
                            return Err(cfg_err(format!(
                                "{epoch_key} {epoch} is before the previous fork's epoch {previous_epoch}"
                            )));
                        }
                    }
                    if let Some(slot) = forks.get_mut(idx) {
                        *slot = Some(ScheduledFork { version, epoch });
                    }
                }
            }
            previous_epoch = previous_epoch.max(epoch);
        }

        let genesis_validators_root = KNOWN
            .iter()
            .find(|k| {
                k.name.eq_ignore_ascii_case(&name) && k.genesis_fork_version == genesis_fork_version
            })
            .and_then(|k| k.genesis_validators_root);

        Ok(Network {
            name,
            preset,
            genesis_fork_version,
            forks,
            genesis_validators_root,
        })
    }

    /// Returns this network with its genesis validators root set (for custom networks).
    pub fn with_genesis_validators_root(mut self, root: Root) -> Network {
        self.genesis_validators_root = Some(root);
        self
    }

    /// The network's name (`CONFIG_NAME`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The preset (`PRESET_BASE`).
    pub fn preset(&self) -> Preset {
        self.preset
    }

    /// `GENESIS_FORK_VERSION`.
    pub fn genesis_fork_version(&self) -> [u8; 4] {
        self.genesis_fork_version
    }

    /// `SLOTS_PER_EPOCH` of the preset.
    pub fn slots_per_epoch(&self) -> u64 {
        self.preset.slots_per_epoch()
    }

    /// The genesis validators root, when known.
    pub fn genesis_validators_root(&self) -> Option<Root> {
        self.genesis_validators_root
    }

    /// `compute_epoch_at_slot`.
    pub fn epoch_at_slot(&self, slot: u64) -> u64 {
        slot / self.slots_per_epoch()
    }

    /// A fork's version and epoch: phase0 is the genesis version at epoch 0; `None` if the
    /// config named no version for the fork.
    pub fn fork(&self, fork: ForkName) -> Option<ScheduledFork> {
        match fork.post_genesis_index() {
            None => Some(ScheduledFork {
                version: self.genesis_fork_version,
                epoch: 0,
            }),
            Some(i) => self.forks.get(i).copied().flatten(),
        }
    }

    /// The latest fork active at `epoch`.
    pub fn fork_at_epoch(&self, epoch: u64) -> ForkName {
        ForkName::ALL
            .into_iter()
            .rev()
            .find(|f| {
                self.fork(*f)
                    .is_some_and(|s| s.epoch != FAR_FUTURE_EPOCH && s.epoch <= epoch)
            })
            .unwrap_or(ForkName::Phase0)
    }

    /// Whether `version` is the version of `fork` or of any later fork of this network.
    pub fn is_version_at_or_after(&self, version: Version, fork: ForkName) -> bool {
        ForkName::ALL
            .into_iter()
            .filter(|f| *f >= fork)
            .any(|f| self.fork(f).is_some_and(|s| s.version == version))
    }
}

/// Reads the top-level `KEY: value` pairs of a flat YAML file. Indented lines, list items and
/// keys without a value are skipped; comments and matching quotes are removed. Duplicate keys
/// are an error.
fn parse_flat_yaml(text: &str) -> Result<Vec<(&str, &str)>, Error> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        if raw.starts_with([' ', '\t', '-', '#']) || raw.trim().is_empty() || raw.starts_with("---")
        {
            continue;
        }
        let Some((key, rest)) = raw.split_once(':') else {
            return Err(Error::InvalidConfig(format!(
                "line {}: expected `KEY: value`",
                n + 1
            )));
        };
        let key = key.trim();
        let value = strip_yaml_value(rest);
        if value.is_empty() {
            continue;
        }
        if out.iter().any(|(k, _)| *k == key) {
            return Err(Error::InvalidConfig(format!(
                "line {}: duplicate key {}",
                n + 1,
                snippet(key)
            )));
        }
        out.push((key, value));
    }
    Ok(out)
}

/// Removes a trailing comment and surrounding quotes from a YAML scalar.
fn strip_yaml_value(rest: &str) -> &str {
    let v = rest.trim();
    for q in ['\'', '"'] {
        if let Some(inner) = v.strip_prefix(q)
            && let Some(end) = inner.find(q)
        {
            return &inner[..end];
        }
    }
    let v = match v.find(" #") {
        Some(i) => &v[..i],
        None if v.starts_with('#') => "",
        None => v,
    };
    v.trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_networks() {
        for name in Network::KNOWN_NAMES {
            let n = Network::by_name(name).unwrap();
            assert_eq!(n.name(), name);
            assert_eq!(Network::by_name(&name.to_uppercase()).unwrap(), n);
        }
        let m = Network::by_name("mainnet").unwrap();
        assert_eq!(m.slots_per_epoch(), 32);
        assert_eq!(m.fork_at_epoch(0), ForkName::Phase0);
        assert_eq!(m.fork_at_epoch(74239), ForkName::Phase0);
        assert_eq!(m.fork_at_epoch(74240), ForkName::Altair);
        assert_eq!(m.fork_at_epoch(411391), ForkName::Electra);
        assert_eq!(m.fork_at_epoch(411392), ForkName::Fulu);
        assert_eq!(m.fork_at_epoch(u64::MAX - 1), ForkName::Fulu);
        assert_eq!(m.fork(ForkName::Gloas).unwrap().version, [7, 0, 0, 0]);
        assert_eq!(m.fork(ForkName::Heze).unwrap().version, [8, 0, 0, 0]);
        let s = Network::by_name("sepolia").unwrap();
        assert_eq!(s.fork_at_epoch(353023), ForkName::Fulu);
        assert_eq!(s.fork_at_epoch(353024), ForkName::Gloas);
        assert_eq!(s.fork(ForkName::Gloas).unwrap().version, [0x90, 0, 0, 0x76]);
        assert_eq!(Network::by_name("gnosis").unwrap().slots_per_epoch(), 16);
        let minimal = Network::by_name("minimal").unwrap();
        assert_eq!(minimal.fork_at_epoch(u64::MAX), ForkName::Phase0);
        assert_eq!(minimal.genesis_validators_root(), None);
        assert!(matches!(
            Network::by_name("goerli"),
            Err(Error::UnknownNetwork(_))
        ));
    }

    #[test]
    fn version_order() {
        let m = Network::by_name("mainnet").unwrap();
        assert!(m.is_version_at_or_after([4, 0, 0, 0], ForkName::Deneb));
        assert!(m.is_version_at_or_after([6, 0, 0, 0], ForkName::Deneb));
        assert!(!m.is_version_at_or_after([3, 0, 0, 0], ForkName::Deneb));
        assert!(m.is_version_at_or_after([7, 0, 0, 0], ForkName::Deneb));
        assert!(!m.is_version_at_or_after([9, 0, 0, 0], ForkName::Deneb));
    }

    #[test]
    fn yaml_values() {
        assert_eq!(strip_yaml_value(" 'mainnet'"), "mainnet");
        assert_eq!(strip_yaml_value(" \"gnosis\" # c"), "gnosis");
        assert_eq!(strip_yaml_value(" 74240  # Oct 27"), "74240");
        assert_eq!(strip_yaml_value(" # only a comment"), "");
        assert_eq!(strip_yaml_value(""), "");
    }

    #[test]
    fn config_rules() {
        let base = "PRESET_BASE: minimal\nGENESIS_FORK_VERSION: 0x00000001\n";
        let n = Network::from_config_yaml(base).unwrap();
        assert_eq!(n.name(), "custom");
        assert_eq!(n.fork(ForkName::Altair), None);
        assert_eq!(n.fork_at_epoch(5), ForkName::Phase0);

        let ok = format!("{base}ALTAIR_FORK_VERSION: 0x01000001\nALTAIR_FORK_EPOCH: 3\n");
        let n = Network::from_config_yaml(&ok).unwrap();
        assert_eq!(n.fork_at_epoch(2), ForkName::Phase0);
        assert_eq!(n.fork_at_epoch(3), ForkName::Altair);

        for bad in [
            "GENESIS_FORK_VERSION: 0x00000001\n".to_owned(),
            "PRESET_BASE: huge\nGENESIS_FORK_VERSION: 0x00000001\n".to_owned(),
            "PRESET_BASE: mainnet\n".to_owned(),
            "PRESET_BASE: mainnet\nGENESIS_FORK_VERSION: 0x000001\n".to_owned(),
            format!("{base}ALTAIR_FORK_EPOCH: 3\n"),
            format!("{base}ALTAIR_FORK_VERSION: 0x01000001\nALTAIR_FORK_EPOCH: -3\n"),
            format!(
                "{base}ALTAIR_FORK_VERSION: 0x01000001\nALTAIR_FORK_EPOCH: 18446744073709551616\n"
            ),
            format!(
                "{base}ALTAIR_FORK_VERSION: 0x01000001\nALTAIR_FORK_EPOCH: 10\nBELLATRIX_FORK_VERSION: 0x02000001\nBELLATRIX_FORK_EPOCH: 5\n"
            ),
            format!("{base}BELLATRIX_FORK_VERSION: 0x02000001\nBELLATRIX_FORK_EPOCH: 5\n"),
            format!("{base}PRESET_BASE: mainnet\n"),
            format!("{base}not yaml\n"),
        ] {
            assert!(
                matches!(
                    Network::from_config_yaml(&bad),
                    Err(Error::InvalidConfig(_))
                ),
                "accepted {bad:?}"
            );
        }
    }
}
