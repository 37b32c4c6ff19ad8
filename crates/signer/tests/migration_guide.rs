//! `docs/migrating-from-web3signer.md` as a new user follows it: every `ferrosigner` command it shows parses
//! with the real binary (each flag exists), its example config file is accepted, and every ferrosigner metric
//! it names is one the signer exports.

mod common;

use std::process::Command;

use common::{TestSigner, attestation, key};

const GUIDE: &str = include_str!("../../../docs/migrating-from-web3signer.md");

/// The fenced blocks of the guide in `language`.
fn blocks(language: &str) -> Vec<String> {
    let fence = format!("```{language}");
    let mut found = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in GUIDE.lines() {
        let trimmed = line.trim();
        match &mut current {
            None if trimmed == fence => current = Some(Vec::new()),
            Some(lines) if trimmed == "```" => {
                found.push(lines.join("\n"));
                current = None;
            }
            Some(lines) => lines.push(trimmed),
            None => {}
        }
    }
    found
}

/// The `ferrosigner …` commands of the guide (shell blocks and inline code), continuation lines joined, as
/// argument lists without the program name.
fn commands() -> Vec<Vec<String>> {
    let mut texts: Vec<String> = Vec::new();
    for block in blocks("sh") {
        let joined = block.replace("\\\n", " ");
        texts.extend(joined.lines().map(str::to_owned));
    }
    for span in GUIDE.split('`').skip(1).step_by(2) {
        texts.push(span.to_owned());
    }
    texts
        .iter()
        .map(|t| t.split('#').next().unwrap().trim())
        // `ferrosigner run [options]` is a form, not a command.
        .filter(|t| t.starts_with("ferrosigner ") && !t.contains('['))
        .map(|t| t.split_whitespace().skip(1).map(str::to_owned).collect())
        .collect()
}

fn run(args: &[String]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ferrosigner"))
        .args(args)
        .env_clear()
        .output()
        .unwrap()
}

/// Every ferrosigner command of the guide names only flags its subcommand has; the `run` commands parse
/// (`--print-config`, which reads files named by the flags but starts nothing).
#[test]
fn every_command_of_the_guide_parses() {
    let commands = commands();
    assert!(
        commands.iter().any(|c| c[0] == "run")
            && commands.iter().any(|c| c[0] == "slashing-protection"),
        "the guide's commands were not found: {commands:?}"
    );
    for command in commands {
        let subcommand: Vec<String> = command
            .iter()
            .take_while(|a| !a.starts_with('-') && !a.contains('/') && !a.contains('.'))
            .cloned()
            .collect();
        let mut help_args = subcommand.clone();
        help_args.push("--help".into());
        let help = String::from_utf8(run(&help_args).stdout).unwrap();
        for flag in command.iter().filter(|a| a.starts_with("--")) {
            let name = flag.split('=').next().unwrap();
            assert!(
                help.contains(&format!("{name} ")) || help.contains(&format!("{name}\n")),
                "`ferrosigner {}` has no flag {name}",
                subcommand.join(" ")
            );
        }
        if command[0] == "run" && !command.iter().any(|a| a == "--config-file") {
            let mut args = command.clone();
            if !args.iter().any(|a| a == "--print-config") {
                args.push("--print-config".into());
            }
            let out = run(&args);
            assert!(
                out.status.success(),
                "ferrosigner {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// The guide's example config file is a valid ferrosigner config file.
#[test]
fn the_example_config_file_is_accepted() {
    let example = blocks("toml")
        .into_iter()
        .find(|b| b.contains("key-config-path"))
        .expect("the guide's ferrosigner.toml");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ferrosigner.toml");
    std::fs::write(&file, &example).unwrap();
    let out = run(&[
        "run".into(),
        "--config-file".into(),
        file.to_str().unwrap().into(),
        "--print-config".into(),
    ]);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{example}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in example.lines().filter(|l| l.contains(" = ")) {
        let name = line.split(" = ").next().unwrap().trim();
        assert!(printed.contains(name), "{name} missing from:\n{printed}");
    }
}

/// Every ferrosigner metric in the guide's metrics table is exported.
#[tokio::test]
async fn the_metrics_the_guide_names_are_exported() {
    let secrets = [key(1)];
    let signer = TestSigner::start(&secrets, &[]).await;
    let pubkey = secrets[0].public_key().to_hex();
    assert_eq!(signer.sign(&pubkey, &attestation(1, 2, 1)).await.0, 200);
    assert_eq!(signer.sign(&pubkey, &attestation(1, 2, 2)).await.0, 412);
    let exposition = signer.metrics_text().await;
    let exported: Vec<&str> = exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();

    let section = GUIDE
        .split("## 5. Metrics")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("the guide's metrics section");
    let mut named = 0;
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let ours = row.split('|').nth(2).unwrap();
        for name in ours.split('`').skip(1).step_by(2) {
            let name = name.split('{').next().unwrap();
            // Metric names only, not label matchers such as `outcome="unknown_key"`.
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                continue;
            }
            named += 1;
            assert!(
                exported.iter().any(|e| *e == name
                    || e.strip_prefix(name)
                        .is_some_and(|rest| ["_bucket", "_sum", "_count"].contains(&rest))),
                "{name} (in the guide) is not exported:\n{exposition}"
            );
        }
    }
    assert!(named >= 6, "the guide's metrics table was not found");
}
