//! `Network::from_config_yaml` on published config files (`testdata/networks`).

use ferrosigner_consensus::{FAR_FUTURE_EPOCH, ForkName, Network, Preset};

fn read(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../../testdata/networks/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[test]
fn published_configs_equal_the_built_in_networks() {
    for (file, name) in [
        ("gnosis-config.yaml", "gnosis"),
        ("holesky-config.yaml", "holesky"),
    ] {
        let parsed = Network::from_config_yaml(&read(file)).unwrap();
        assert_eq!(parsed, Network::by_name(name).unwrap(), "{file}");
    }
}

#[test]
fn web3signer_acceptance_config() {
    let n = Network::from_config_yaml(&read("web3signer-network_config.yaml")).unwrap();
    assert_eq!(n.name(), "hoodi");
    assert_eq!(n.preset(), Preset::Mainnet);
    assert_eq!(n.slots_per_epoch(), 32);
    assert_eq!(n.genesis_fork_version(), [0x10, 0x00, 0x09, 0x10]);
    // Same chain as the built-in hoodi, so its genesis validators root is known.
    let hoodi = Network::by_name("hoodi").unwrap();
    assert_eq!(n.genesis_validators_root(), hoodi.genesis_validators_root());
    assert!(n.genesis_validators_root().is_some());
    // This older file has Fulu unscheduled.
    assert_eq!(n.fork(ForkName::Fulu).unwrap().epoch, FAR_FUTURE_EPOCH);
    assert_eq!(n.fork(ForkName::Electra).unwrap().epoch, 2048);
    assert_eq!(n.fork_at_epoch(2047), ForkName::Deneb);
    assert_eq!(n.fork_at_epoch(2048), ForkName::Electra);
    assert_eq!(n.fork_at_epoch(u64::MAX), ForkName::Electra);
    // This file predates Gloas: it names no Gloas or Heze version.
    assert_eq!(n.fork(ForkName::Gloas), None);
    assert_eq!(n.fork(ForkName::Heze), None);
    for fork in ForkName::ALL.into_iter().filter(|f| *f <= ForkName::Fulu) {
        assert_eq!(
            n.fork(fork).unwrap().version,
            hoodi.fork(fork).unwrap().version,
            "{fork}"
        );
    }
}

#[test]
fn renamed_config_has_no_known_root() {
    let text =
        read("holesky-config.yaml").replace("CONFIG_NAME: holesky", "CONFIG_NAME: my-devnet");
    let n = Network::from_config_yaml(&text).unwrap();
    assert_eq!(n.name(), "my-devnet");
    assert_eq!(n.genesis_validators_root(), None);
    let n = n.with_genesis_validators_root([7; 32]);
    assert_eq!(n.genesis_validators_root(), Some([7; 32]));
}

#[test]
fn truncated_configs_never_panic() {
    let text = read("gnosis-config.yaml");
    for cut in (0..text.len()).filter(|c| text.is_char_boundary(*c)) {
        let _ = Network::from_config_yaml(&text[..cut]);
    }
}

fn published(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../../testdata/consensus-configs/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// The built-in mainnet and minimal schedules equal consensus-specs' published configs
/// (`testdata/consensus-configs`, which carry the Gloas and Heze versions).
#[test]
fn built_in_mainnet_and_minimal_equal_consensus_specs_configs() {
    for name in ["mainnet", "minimal"] {
        let parsed = Network::from_config_yaml(&published(&format!("{name}.yaml"))).unwrap();
        let built_in = Network::by_name(name).unwrap();
        assert_eq!(parsed, built_in, "{name}");
        for fork in ForkName::ALL {
            assert_eq!(parsed.fork(fork), built_in.fork(fork), "{name} {fork}");
        }
    }
    let mainnet = Network::by_name("mainnet").unwrap();
    assert_eq!(mainnet.fork(ForkName::Gloas).unwrap().version, [7, 0, 0, 0]);
    assert_eq!(
        mainnet.fork(ForkName::Gloas).unwrap().epoch,
        FAR_FUTURE_EPOCH
    );
    assert_eq!(mainnet.fork(ForkName::Heze).unwrap().version, [8, 0, 0, 0]);
}

/// Sepolia's Gloas fork as given in `testdata/consensus-configs/SOURCE.md`, and a config that
/// schedules Gloas (and carries Heze) read from YAML.
#[test]
fn sepolia_gloas_schedule_and_gloas_heze_from_yaml() {
    let sepolia = Network::by_name("sepolia").unwrap();
    let gloas = sepolia.fork(ForkName::Gloas).unwrap();
    assert_eq!(gloas.version, [0x90, 0x00, 0x00, 0x76]);
    assert_eq!(gloas.epoch, 353024);
    assert_eq!(sepolia.fork_at_epoch(353023), ForkName::Fulu);
    assert_eq!(sepolia.fork_at_epoch(353024), ForkName::Gloas);
    assert_eq!(sepolia.epoch_at_slot(11296768), 353024);

    let yaml = published("mainnet.yaml")
        .replace(
            "GLOAS_FORK_EPOCH: 18446744073709551615",
            "GLOAS_FORK_EPOCH: 500000",
        )
        .replace(
            "HEZE_FORK_EPOCH: 18446744073709551615",
            "HEZE_FORK_EPOCH: 600000",
        );
    let n = Network::from_config_yaml(&yaml).unwrap();
    assert_eq!(n.fork_at_epoch(499999), ForkName::Fulu);
    assert_eq!(n.fork_at_epoch(500000), ForkName::Gloas);
    assert_eq!(n.fork_at_epoch(600000), ForkName::Heze);
    // Heze scheduled before Gloas is inconsistent.
    let bad = yaml.replace("HEZE_FORK_EPOCH: 600000", "HEZE_FORK_EPOCH: 400000");
    assert!(Network::from_config_yaml(&bad).is_err());
}
