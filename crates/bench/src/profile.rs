//! Optional CPU profile of the server during a measured window: `perf record -e cpu-clock` on its pid,
//! summarised per thread group (signing pool, SQLite writer, tokio workers) and by top symbols.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Where the sampled CPU time went.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    /// (thread group, share of all samples, kernel part of that share), largest first.
    pub groups: Vec<(String, f64, f64)>,
    /// (thread group, symbol, share of all samples), the largest ones.
    pub top: Vec<(String, String, f64)>,
}

/// Whether `perf record` works here (software `cpu-clock` event; no hardware counters needed).
pub fn available() -> bool {
    Command::new("perf")
        .args([
            "record",
            "-q",
            "-e",
            "cpu-clock",
            "-o",
            "/dev/null",
            "--",
            "true",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts sampling `pid` for `duration` into `out`.
pub fn start(pid: u32, duration: Duration, out: &Path) -> std::io::Result<Child> {
    Command::new("perf")
        .args(["record", "-q", "-e", "cpu-clock", "-F", "999", "-p"])
        .arg(pid.to_string())
        .arg("-o")
        .arg(out)
        .arg("--")
        .arg("sleep")
        .arg(format!("{:.3}", duration.as_secs_f64()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

fn report(data: &Path, sort: &str) -> Vec<Vec<String>> {
    let out = Command::new("perf")
        .arg("report")
        .arg("-i")
        .arg(data)
        .args(["--stdio", "--no-children", "--sort", sort])
        .stderr(Stdio::null())
        .output();
    let Ok(out) = out else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && l.contains('%'))
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

fn pct(cell: Option<&String>) -> Option<f64> {
    cell?
        .strip_suffix('%')?
        .parse::<f64>()
        .ok()
        .map(|v| v / 100.0)
}

fn group_of(comm: &str) -> String {
    if comm.starts_with("bls-sign") {
        "BLS signing pool (bls-sign-*)".into()
    } else if comm.starts_with("slashing-sqlit") {
        "SQLite slashing writer thread".into()
    } else if comm.starts_with("tokio-runtime-w") || comm.starts_with("tokio-rt") {
        "tokio workers (HTTP, JSON, signing root)".into()
    } else {
        format!("other ({comm})")
    }
}

/// Summarises a `perf record` file.
pub fn analyse(data: &Path) -> Profile {
    let mut groups: Vec<(String, f64, f64)> = Vec::new();
    for cells in report(data, "comm,dso") {
        let (Some(share), Some(comm)) = (pct(cells.first()), cells.get(1)) else {
            continue;
        };
        let kernel = cells.get(2).is_some_and(|d| d.contains("kernel"));
        let name = group_of(comm);
        match groups.iter_mut().find(|g| g.0 == name) {
            Some(g) => {
                g.1 += share;
                if kernel {
                    g.2 += share;
                }
            }
            None => groups.push((name, share, if kernel { share } else { 0.0 })),
        }
    }
    groups.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut top: Vec<(String, String, f64)> = Vec::new();
    for cells in report(data, "comm,sym") {
        let (Some(share), Some(comm), Some(sym)) = (
            pct(cells.first()),
            cells.get(1),
            cells.get(3..).map(|s| s.join(" ")),
        ) else {
            continue;
        };
        let group = group_of(comm);
        match top.iter_mut().find(|t| t.0 == group && t.1 == sym) {
            Some(t) => t.2 += share,
            None => top.push((group, sym, share)),
        }
    }
    top.sort_by(|a, b| b.2.total_cmp(&a.2));
    top.truncate(12);
    Profile { groups, top }
}
