//! The operations kit in `ops/` (Grafana dashboard, Prometheus alert rules, systemd example config) uses only
//! metric names and label values the signer exports, and its example config is accepted.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{TestSigner, attestation, block, key};
use serde_json::Value;

/// PromQL functions, keywords and aggregations: identifiers that are not metric names.
const PROMQL_WORDS: &[&str] = &[
    "sum",
    "rate",
    "increase",
    "histogram_quantile",
    "by",
    "on",
    "and",
    "or",
    "unless",
    "without",
    "ignoring",
    "bool",
    "offset",
    "max",
    "min",
    "avg",
    "count",
    "absent",
    "label_values",
];

fn ops() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ops")
}

/// The `expr:` of every rule in the alert rule file (each on one line), with a check of the file's shape.
fn rule_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(ops().join("prometheus/ferrosigner-alerts.yml")).unwrap();
    assert!(text.lines().any(|l| l.trim_end() == "groups:"));
    let alerts = text
        .lines()
        .filter(|l| l.trim_start().starts_with("- alert: "))
        .count();
    let exprs: Vec<String> = text
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("expr: "))
        .map(|e| e.trim().to_owned())
        .collect();
    assert!(alerts >= 7, "{alerts} alerts");
    assert_eq!(exprs.len(), alerts, "one one-line expr per alert");
    for key in ["summary: ", "description: ", "severity: "] {
        let n = text
            .lines()
            .filter(|l| l.trim_start().starts_with(key))
            .count();
        assert_eq!(n, alerts, "every alert has {key}");
    }
    assert!(
        text.lines()
            .filter(|l| l.trim_start().starts_with("for: "))
            .count()
            >= alerts - 1
    );
    assert!(!text.contains('\t'), "YAML must not contain tabs");
    exprs
}

/// Every PromQL expression of the dashboard (panel targets and query variables), with a check of its shape.
fn dashboard_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(ops().join("grafana/ferrosigner.json")).unwrap();
    let dash: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(dash["__inputs"][0]["name"], "DS_PROMETHEUS");
    let variables = dash["templating"]["list"].as_array().unwrap();
    let names: Vec<&str> = variables
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"DS_PROMETHEUS") && names.contains(&"instance"),
        "{names:?}"
    );
    let mut exprs = Vec::new();
    for v in variables {
        if let Some(q) = v["definition"].as_str() {
            // label_values(metric, label): the metric
            let inner = q.strip_prefix("label_values(").unwrap_or(q);
            exprs.push(inner.split(',').next().unwrap().trim().to_owned());
        }
    }
    let panels = dash["panels"].as_array().unwrap();
    assert!(panels.len() >= 10);
    for panel in panels {
        assert_eq!(
            panel["datasource"]["uid"], "${DS_PROMETHEUS}",
            "{}",
            panel["title"]
        );
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{}", panel["title"]);
        for t in targets {
            exprs.push(t["expr"].as_str().unwrap().to_owned());
        }
    }
    exprs
}

/// `s` without its string literals, `{…}` matchers and `[…]` ranges.
fn strip(s: &str) -> String {
    let mut out = String::new();
    let (mut quote, mut brace, mut bracket) = (false, 0, 0);
    for c in s.chars() {
        match c {
            '"' => quote = !quote,
            _ if quote => {}
            '{' => brace += 1,
            '}' => brace -= 1,
            '[' => bracket += 1,
            ']' => bracket -= 1,
            _ if brace > 0 || bracket > 0 => {}
            _ => out.push(c),
        }
    }
    out
}

/// The metric names in a PromQL expression: identifiers that are not functions, keywords, label lists of
/// `by`/`on`/…, nor inside strings, matchers or ranges.
fn metric_names(expr: &str) -> Vec<String> {
    let s = strip(expr);
    let chars: Vec<char> = s.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if ["by", "on", "without", "ignoring"].contains(&word.as_str()) {
                // skip the label list
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                continue;
            }
            let function = chars[i..].iter().find(|c| !c.is_whitespace()) == Some(&'(');
            if !function && !PROMQL_WORDS.contains(&word.as_str()) {
                names.push(word);
            }
        } else if c == '$' {
            // a Grafana variable
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
        } else if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    names
}

/// The `label="value"` and `label!="value"` matchers of an expression.
fn matchers(expr: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut rest = expr;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').unwrap() + open;
        for m in rest[open + 1..close].split(',') {
            let m = m.trim();
            if m.contains("=~") || m.contains("!~") {
                continue;
            }
            if let Some((label, value)) = m.split_once('=') {
                let label = label.trim().trim_end_matches('!').to_owned();
                found.push((label, value.trim().trim_matches('"').to_owned()));
            }
        }
        rest = &rest[close + 1..];
    }
    found
}

/// The string literals `=> "…"` of the function `signature` in a source file (the arms of a label function).
fn arm_literals(source: &str, signature: &str) -> BTreeSet<String> {
    let body = &source[source
        .find(signature)
        .unwrap_or_else(|| panic!("{signature} is gone"))..];
    let body = &body[..body.find("\n    }\n").unwrap()];
    body.split("=> \"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_owned())
        .collect()
}

#[test]
fn the_expression_parser_finds_metric_names_only() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (instance, le) (rate(a_bucket{x="y_z",instance=~"$instance"}[5m]))) > 0.5 unless on (instance) b_total == 0 and c"#,
    );
    assert_eq!(names, ["a_bucket", "b_total", "c"]);
    assert_eq!(metric_names("up == 0"), ["up"]);
    assert_eq!(
        matchers(r#"m{outcome="unavailable", instance=~"$i", job!="x"}"#),
        [
            ("outcome".into(), "unavailable".into()),
            ("job".into(), "x".into())
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_and_alert_rules_use_only_exported_metrics_and_label_values() {
    let secrets = [key(1)];
    let signer = TestSigner::start(&secrets, &[]).await;
    let pubkey = secrets[0].public_key().to_hex();
    assert_eq!(signer.sign(&pubkey, &attestation(10, 11, 1)).await.0, 200);
    assert_eq!(signer.sign(&pubkey, &attestation(10, 11, 2)).await.0, 412);
    assert_eq!(signer.sign(&pubkey, &block(100, 1)).await.0, 200);
    assert_eq!(
        signer
            .sign(&pubkey, &serde_json::json!({"type": "ATTESTATION"}))
            .await
            .0,
        400
    );
    let exposition = signer.metrics_text().await;

    let mut exported: BTreeSet<String> = exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
        .collect();
    exported.insert("up".to_owned());
    for sample in [
        r#"ferrosigner_sign_requests_total{type="ATTESTATION",outcome="signed"} 1"#,
        r#"ferrosigner_sign_requests_total{type="ATTESTATION",outcome="slashing_refused"} 1"#,
        r#"outcome="bad_request"} 1"#,
        r#"eth2_slashingprotection_prevented_signings_total{reason="double_vote"} 1"#,
    ] {
        assert!(
            exposition.contains(sample),
            "{sample} missing from:\n{exposition}"
        );
    }

    let rules = rule_exprs();
    let dashboard = dashboard_exprs();
    let mut used = BTreeSet::new();
    for expr in rules.iter().chain(&dashboard) {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "no metric in {expr}");
        for name in names {
            assert!(
                exported.contains(&name),
                "{name} (in {expr}) is not exported; exported: {exported:?}"
            );
            used.insert(name);
        }
    }
    // The kit covers every family an operator watches: signing, refusals, the database, keys, load.
    for name in [
        "up",
        "ferrosigner_sign_requests_total",
        "signing_bls_signing_duration_seconds_bucket",
        "eth2_slashingprotection_prevented_signings_total",
        "eth2_slashingprotection_permitted_signings_total",
        "eth2_slashingprotection_database_duration_seconds_bucket",
        "signing_signers_loaded_count",
        "ferrosigner_key_loading_keystores",
        "ferrosigner_key_loading_processed",
        "ferrosigner_key_loading_errors",
        "ferrosigner_key_cache_writes_total",
        "ferrosigner_sign_requests_shed_total",
    ] {
        assert!(used.contains(name), "{name} is used nowhere in ops/");
    }

    // Label values compared in the kit are ones the code produces.
    let outcomes = {
        let mut o = arm_literals(include_str!("../src/signing.rs"), "pub fn outcome(&self)");
        assert!(
            o.contains("unavailable") && o.contains("slashing_refused"),
            "{o:?}"
        );
        o.insert("signed".to_owned());
        o
    };
    let reasons = arm_literals(
        include_str!("../../slashing-rules/src/refusal.rs"),
        "pub fn label(self)",
    );
    assert!(reasons.contains("double_vote"), "{reasons:?}");
    let mut compared = 0;
    for expr in rules.iter().chain(&dashboard) {
        for (label, value) in matchers(expr) {
            let allowed = match label.as_str() {
                "outcome" => &outcomes,
                "reason" => &reasons,
                "job" => {
                    assert_eq!(value, "ferrosigner", "{expr}");
                    continue;
                }
                other => {
                    panic!("{other}=\"{value}\" in {expr}: no list of values to check it against")
                }
            };
            assert!(
                allowed.contains(&value),
                "{label}=\"{value}\" in {expr} is never produced: {allowed:?}"
            );
            compared += 1;
        }
    }
    assert!(compared >= 3, "{compared}");
    assert!(rules.iter().any(|e| e.contains(r#"outcome="unavailable""#)));
    assert!(
        rules
            .iter()
            .any(|e| e.starts_with("up") && e.ends_with("== 0"))
    );
}

#[test]
fn the_example_config_file_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let keystores = dir.path().join("keystores");
    let passwords = dir.path().join("passwords");
    std::fs::create_dir_all(&keystores).unwrap();
    std::fs::create_dir_all(&passwords).unwrap();
    let config = ops().join("systemd/ferrosigner.toml");
    let output = Command::new(env!("CARGO_BIN_EXE_ferrosigner"))
        .args([
            "run",
            "--config-file",
            config.to_str().unwrap(),
            "--print-config",
        ])
        .args(["--data-dir", data.to_str().unwrap()])
        .args(["--keystores-path", keystores.to_str().unwrap()])
        .args(["--keystores-passwords-path", passwords.to_str().unwrap()])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    // The file's own values are in effect.
    for line in [
        "max-concurrent-sign-requests = 1024",
        "http-max-connections = 2048",
        "metrics-enabled = true",
    ] {
        let printed = stdout.lines().find(|l| l.starts_with(line));
        assert!(
            printed.is_some_and(|l| l.contains("config file")),
            "{line} not from the file:\n{stdout}"
        );
    }
    // The unit runs it with this file and may write only the data dir it names.
    let unit = std::fs::read_to_string(ops().join("systemd/ferrosigner.service")).unwrap();
    assert!(unit.contains(
        "ExecStart=/usr/local/bin/ferrosigner run --config-file /etc/ferrosigner/ferrosigner.toml"
    ));
    let toml = std::fs::read_to_string(&config).unwrap();
    let data_dir = toml
        .lines()
        .find_map(|l| l.strip_prefix("data-dir = "))
        .unwrap()
        .trim_matches('"');
    assert!(
        unit.contains(&format!("ReadWritePaths={data_dir}\n")),
        "{data_dir}"
    );
}
