//! Runs `ferrosigner-bench --quick` against the real signer binary and checks the report's shape.
//! This is a smoke test of the tool, not a benchmark: no figure is asserted.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The signer binary: an existing release or debug build, else `cargo build -p ferrosigner`.
fn signer_binary() -> PathBuf {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        dirs.push(PathBuf::from(dir));
    }
    dirs.push(workspace().join("target"));
    let find = |dirs: &[PathBuf]| {
        dirs.iter()
            .flat_map(|d| [d.join("release/ferrosigner"), d.join("debug/ferrosigner")])
            .find(|p| p.is_file())
    };
    if let Some(found) = find(&dirs) {
        return found;
    }
    let status = Command::new(env!("CARGO"))
        .args(["build", "-p", "ferrosigner"])
        .current_dir(workspace())
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo build -p ferrosigner failed");
    find(&dirs).expect("the signer binary exists after building it")
}

#[test]
fn quick_run_writes_every_table() {
    let signer = signer_binary();
    let out = tempfile::tempdir().unwrap();
    let report = out.path().join("performance.md");
    std::fs::write(
        &report,
        "# Kept title\n\nkept text\n\n<!-- bench:begin -->old<!-- bench:end -->\n\nkept tail\n",
    )
    .unwrap();
    let start = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_ferrosigner-bench"))
        .arg("--quick")
        .arg("--signer")
        .arg(&signer)
        .arg("--cache-dir")
        .arg(workspace().join("target/bench-cache"))
        .arg("--output")
        .arg(&report)
        .current_dir(workspace())
        .output()
        .unwrap();
    let elapsed = start.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bench failed: {stderr}");
    assert!(
        elapsed < Duration::from_secs(120),
        "quick run took {elapsed:?}"
    );
    let md = std::fs::read_to_string(&report).unwrap();
    assert!(md.starts_with("# Kept title\n\nkept text\n"), "{md}");
    assert!(md.trim_end().ends_with("kept tail"), "{md}");
    assert!(!md.contains("old<!--"), "{md}");
    for row in [
        "| raw blst sign, 1 thread |",
        "| floor: sign of an already hashed root (hash cache hit), 1 thread |",
        "| hash-to-G2 of a 32-byte root alone, 1 thread |",
        "| one scrypt decryption (n=2^18, r=8, p=1) |",
        "| one pbkdf2 decryption (c=2^18) |",
        "| SQLite | on | ATTESTATION | shared | c=1 |",
        "| SQLite | on | ATTESTATION | shared | c=16 |",
        "| SQLite | on | ATTESTATION | shared | c=64 |",
        "| SQLite | on | ATTESTATION | unique | c=64 |",
        "| SQLite | on | BLOCK_V2 | shared | c=64 |",
        "| SQLite | on | ATTESTATION | shared | fixed ",
        "| - | off | ATTESTATION | shared | c=64 |",
        "| - | off | ATTESTATION | unique | c=64 |",
        "| first load, scrypt keystores | 4 |",
        "| restart, key cache | 4 |",
        "| loaded, insecure-KDF keystores | 200 |",
        "| server CPU per signed ATTESTATION, shared roots (SQLite, c=64) |",
        "| server CPU per signed ATTESTATION, unique roots (SQLite, c=64) |",
        "| HTTP throughput, shared roots, c=64 (SQLite) |",
        "| p99 latency at half the maximum rate (shared roots, SQLite, fixed ",
        "### Slot duty bursts (step 5)",
        // 200 keys: slots 1 and 2 each have 7 attesters (200 = 6 × 32 + 8), 7 sync committee members
        "| 1 | 7 | 7 | 7 | 21 | 0 |",
        "| 2 | 7 | 7 | 7 | 21 | 0 |",
        "**200-key slot burst: p50 ",
        "| 200-key slot burst (up to 21 requests: attestations + selection proofs + sync messages) |",
        "| resident memory with 200 keys |",
        "| without an import |",
        "| during the import |",
        "4 of 4 keystores imported",
        "signing p99 during a 4-key import: ",
        "| signing p99 during a 4-key import (one HTTP worker, ",
    ] {
        assert!(md.contains(row), "missing row {row:?} in:\n{md}");
    }
    // every load row answered 200 to every request
    for line in md
        .lines()
        .filter(|l| l.contains("| ATTESTATION |") || l.contains("| BLOCK_V2 |"))
    {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        assert_eq!(cells.get(7), Some(&"0"), "non-200 answers in {line}");
        assert_ne!(cells.get(6), Some(&"0"), "no requests in {line}");
    }
    // every batch was answered 200 with a signature for each of the 64 identifiers
    let batch_header =
        "| backend | connections | identifiers/batch | batches | non-200 | signatures | errors |";
    assert!(md.contains(batch_header), "no batch table in:\n{md}");
    for conns in [2, 4] {
        let prefix = format!("| SQLite | {conns} | 64 | ");
        let line = md
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no batch row with {conns} connections in:\n{md}"));
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let batches: u64 = cells[4].parse().expect("batches");
        let signatures: u64 = cells[6].parse().expect("signatures");
        assert!(batches > 0, "no batches in {line}");
        assert_eq!(cells[5], "0", "non-200 batches in {line}");
        assert_eq!(cells[7], "0", "identifiers not signed in {line}");
        assert_eq!(signatures, batches * 64, "{line}");
    }
    // the signing load of the import phase was answered 200 throughout
    for line in md.lines().filter(|l| {
        l.starts_with("| without an import |") || l.starts_with("| during the import |")
    }) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        assert_eq!(cells.get(4), Some(&"0"), "non-200 answers in {line}");
        assert_ne!(cells.get(3), Some(&"0"), "no requests in {line}");
    }
    if md.contains("| PostgreSQL | on | ATTESTATION | shared | c=64 |") {
        assert!(
            md.contains("| PostgreSQL | on | ATTESTATION | unique | c=64 |"),
            "{md}"
        );
        assert!(
            md.contains("| PostgreSQL round trips per slashing check | 1 |"),
            "{md}"
        );
        assert!(md.contains("PostgreSQL rows: "), "{md}");
    } else {
        assert!(
            stderr.contains("NOTICE: PostgreSQL scenario skipped"),
            "no PostgreSQL rows and no notice: {stderr}"
        );
        eprintln!("NOTICE: PostgreSQL not reachable; its rows were skipped");
    }
}
