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
    for fork in ForkName::ALL {
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
