//! The markdown report: machine, ceiling and floor, load (shared and unique roots), batch signing,
//! PostgreSQL round trips, slot duty bursts, start-up, the import phase, and the targets of DESIGN.md §4
//! as ratios from this one run.

use std::fmt::Write as _;
use std::path::Path;

use crate::batch::BatchResult;
use crate::ceiling::Ceiling;
use crate::duty::{self, Burst, DutyResult};
use crate::import::{ImportResult, TARGET_P99_MS};
use crate::load::{Kind, Measured, Mode, PhaseResult, Roots};
use crate::{Args, Scenario, Startup};

/// Start marker of the generated part of the markdown file.
pub const BEGIN: &str = "<!-- bench:begin -->";
/// End marker.
pub const END: &str = "<!-- bench:end -->";

/// Everything one report is made of.
pub struct Input<'a> {
    /// Command-line arguments of the run.
    pub args: &'a Args,
    /// Step 1.
    pub ceiling: &'a Ceiling,
    /// Load scenarios.
    pub scenarios: &'a [Scenario],
    /// Why the PostgreSQL scenario is missing, if it is.
    pub pg_note: Option<&'a str>,
    /// The PostgreSQL server the scenario ran on, when it ran.
    pub pg_server: Option<&'a str>,
    /// Slot duty bursts, unless skipped.
    pub duty: Option<&'a DutyResult>,
    /// Start-up and memory, unless skipped.
    pub startup: Option<&'a Startup>,
    /// Signing during a Keymanager import, unless skipped.
    pub import: Option<&'a ImportResult>,
    /// Wall time of the run.
    pub elapsed_s: f64,
}

fn cmd(program: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// One line describing this machine.
pub fn machine(cores: usize) -> String {
    let model = cmd("lscpu", &[])
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("Model name:").map(|m| m.trim().to_owned()))
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    format!("{model}, {cores} cores available, {mem_gib:.1} GiB RAM, Linux {kernel}")
}

fn f(v: f64, decimals: usize) -> String {
    if v.is_finite() {
        format!("{v:.decimals$}")
    } else {
        "–".into()
    }
}

fn threads(mode: Mode) -> usize {
    match mode {
        Mode::Closed(c) => c,
        Mode::Rate { .. } => usize::MAX,
    }
}

fn find<'a>(
    scenarios: &'a [Scenario],
    backend: &str,
    kind: Kind,
    c: Option<usize>,
) -> Option<&'a PhaseResult> {
    scenarios
        .iter()
        .filter(|s| s.backend == backend)
        .flat_map(|s| s.rows.iter())
        .find(|r| {
            r.kind == kind
                && match (c, r.mode) {
                    (Some(c), Mode::Closed(m)) => c == m,
                    (None, Mode::Rate { .. }) => true,
                    _ => false,
                }
        })
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

/// Targets of DESIGN.md §4 that this report checks, as ratios.
mod target {
    /// Server CPU per signed ATTESTATION, shared roots, × one raw sign (at most).
    pub const CPU_SHARED: f64 = 0.65;
    /// Server CPU per signed ATTESTATION, unique roots, × one raw sign (at most).
    pub const CPU_UNIQUE: f64 = 1.15;
    /// Throughput with shared roots at c=64, × cores × raw sign rate (at least).
    pub const THROUGHPUT_SHARED: f64 = 1.3;
    /// p99 latency at half the maximum rate, milliseconds (at most).
    pub const P99_HALF_RATE_MS: f64 = 3.0;
    /// Slot burst time, × burst size × floor / cores (at most).
    pub const BURST: f64 = 1.3;
}

/// The ideal time of a burst in seconds: its size × one floor sign / cores.
fn burst_ideal_s(c: &Ceiling, b: &Burst) -> f64 {
    b.size() as f64 * c.floor_us / 1e6 / c.cores as f64
}

/// The bursts' times as ratios to their ideal: (median (lower middle), max).
fn burst_ratios(c: &Ceiling, d: &DutyResult) -> (f64, f64) {
    let mut v: Vec<f64> = d
        .bursts
        .iter()
        .map(|b| b.seconds / burst_ideal_s(c, b))
        .collect();
    v.sort_by(f64::total_cmp);
    let p50 = v
        .get(v.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(f64::NAN);
    (p50, v.last().copied().unwrap_or(f64::NAN))
}

/// Renders the report (the part between the markers).
pub fn render(input: &Input<'_>) -> String {
    let c = input.ceiling;
    let mut md = String::new();
    let commit = cmd("git", &["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let date = cmd("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default();
    let _ = writeln!(md, "{BEGIN}");
    if input.args.quick {
        let _ = writeln!(
            md,
            "**Quick run (`--quick`): a smoke test, the figures mean nothing.**\n"
        );
    }
    let _ = writeln!(
        md,
        "Run {date} at commit `{commit}`, {:.0} s in all.  ",
        input.elapsed_s
    );
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let loadavg: Vec<&str> = loadavg.split_whitespace().take(3).collect();
    let _ = writeln!(
        md,
        "Machine: {}; load average at the end {}.  ",
        machine(c.cores),
        loadavg.join(" ")
    );
    let _ = writeln!(
        md,
        "Load: {} s measured per phase after {} s warm-up; {} insecure-KDF keys; the client runs on the same cores \
         (its CPU is shown).\n",
        input.args.duration().as_secs_f64(),
        input.args.warmup().as_secs_f64(),
        input.args.load_keys
    );
    if let Some(server) = input.pg_server {
        let _ = writeln!(md, "PostgreSQL rows: {server}.\n");
    }

    let _ = writeln!(md, "### Ceiling (step 1, in-process)\n");
    let _ = writeln!(md, "| measure | value |\n|---|---|");
    let _ = writeln!(
        md,
        "| raw blst sign, 1 thread | {} µs ({} /s per core) |",
        f(c.sign_us, 1),
        f(c.sign_rate_per_core(), 0)
    );
    let _ = writeln!(
        md,
        "| raw blst sign, {} threads at once | {} /s ({} × cores × per-core rate) |",
        c.cores,
        f(c.parallel_rate, 0),
        f(c.parallel_rate / c.rate_for(c.cores), 2)
    );
    let _ = writeln!(
        md,
        "| floor: sign of an already hashed root (hash cache hit), 1 thread | {} µs ({} × raw sign; {} /s per core) |",
        f(c.floor_us, 1),
        f(c.floor_ratio(), 2),
        f(c.floor_rate_per_core(), 0)
    );
    let _ = writeln!(
        md,
        "| floor, {} threads at once (one shared cache) | {} /s ({} × cores × per-core floor rate; {} × cores × raw sign rate) |",
        c.cores,
        f(c.floor_parallel_rate, 0),
        f(
            c.floor_parallel_rate / (c.cores as f64 * c.floor_rate_per_core()),
            2
        ),
        f(c.floor_parallel_rate / c.rate_for(c.cores), 2)
    );
    let _ = writeln!(
        md,
        "| hash-to-G2 of a 32-byte root alone, 1 thread | {} µs ({} × raw sign) |",
        f(c.hash_us, 1),
        f(c.hash_us / c.sign_us, 2)
    );
    let _ = writeln!(
        md,
        "| one scrypt decryption (n=2^18, r=8, p=1) | {} ms |",
        f(c.scrypt_ms, 0)
    );
    let _ = writeln!(
        md,
        "| one pbkdf2 decryption (c=2^18) | {} ms |",
        f(c.pbkdf2_ms, 1)
    );

    let _ = writeln!(
        md,
        "\nA raw sign is hash-to-G2 of the root followed by a scalar multiplication and compression; the floor \
         is the second half alone, what a signature costs the signer when its hash cache already holds the \
         root (every key after the first that signs a shared root)."
    );

    let pg = input.scenarios.iter().find_map(|s| s.pg);
    if input.scenarios.is_empty() {
        let _ = writeln!(md, "\n### HTTP load (steps 2–4)\n\nskipped (--no-load)");
    } else {
        load_sections(&mut md, input, pg);
    }

    if let Some(d) = input.duty {
        duty_section(&mut md, c, d);
    }

    if let Some(st) = input.startup {
        let ideal = st.n as f64 * c.scrypt_ms / 1e3 / c.cores as f64;
        let _ = writeln!(md, "\n### Start-up and memory (step 6)\n");
        let _ = writeln!(
            md,
            "Time is from process start to the first `/healthcheck` 200. Ideal first load = N × one scrypt / cores = {} s; \
             the first load used {} × N × one scrypt of server CPU. Other CPU = what other processes used meanwhile.\n",
            f(ideal, 1),
            f(st.cold.1 / (st.n as f64 * c.scrypt_ms / 1e3), 2)
        );
        let _ = writeln!(
            md,
            "| case | keys | time s | × ideal | server CPU s | RSS MiB | peak RSS MiB | other CPU |\n|---|---|---|---|---|---|---|---|"
        );
        let row = |md: &mut String, name: &str, n: usize, v: crate::Figures, ratio: Option<f64>| {
            let _ = writeln!(
                md,
                "| {name} | {n} | {} | {} | {} | {} | {} | {}% |",
                f(v.0, 2),
                ratio.map_or("–".into(), |r| f(r, 2)),
                f(v.1, 1),
                f(v.2, 1),
                f(v.3, 1),
                f(v.4 * 100.0, 0)
            );
        };
        row(
            &mut md,
            "first load, scrypt keystores",
            st.n,
            st.cold,
            Some(st.cold.0 / ideal),
        );
        match st.warm {
            Some(w) => row(&mut md, "restart, key cache", st.n, w, None),
            None => {
                let _ = writeln!(
                    md,
                    "| restart, key cache | {} | binary has no `--key-cache-enabled` | | | | | |",
                    st.n
                );
            }
        }
        row(
            &mut md,
            "loaded, insecure-KDF keystores",
            st.mem_n,
            st.mem,
            None,
        );
    }

    if let Some(im) = input.import {
        import_section(&mut md, input.args, c, im);
    }

    let _ = writeln!(
        md,
        "\n### Targets (DESIGN.md §4), as ratios from this run\n"
    );
    let _ = writeln!(
        md,
        "| what | target | measured | verdict |\n|---|---|---|---|"
    );
    let shared = Kind::Attestation(Roots::Shared);
    let unique = Kind::Attestation(Roots::Unique);
    if let Some(r) = find(input.scenarios, "SQLite", shared, Some(64)) {
        let ratio = r.measured.server_cpu_us / c.sign_us;
        let _ = writeln!(
            md,
            "| server CPU per signed ATTESTATION, shared roots (SQLite, c=64) | ≤ {} × raw sign (floor {} ×) | {} × ({} µs; {} × floor) | {} |",
            target::CPU_SHARED,
            f(c.floor_ratio(), 2),
            f(ratio, 2),
            f(r.measured.server_cpu_us, 0),
            f(r.measured.server_cpu_us / c.floor_us, 2),
            verdict(ratio <= target::CPU_SHARED)
        );
    }
    if let Some(r) = find(input.scenarios, "SQLite", unique, Some(64)) {
        let ratio = r.measured.server_cpu_us / c.sign_us;
        let _ = writeln!(
            md,
            "| server CPU per signed ATTESTATION, unique roots (SQLite, c=64) | ≤ {} × raw sign | {} × ({} µs) | {} |",
            target::CPU_UNIQUE,
            f(ratio, 2),
            f(r.measured.server_cpu_us, 0),
            verdict(ratio <= target::CPU_UNIQUE)
        );
    }
    if let Some(r) = find(input.scenarios, "SQLite", shared, Some(64)) {
        let ratio = r.measured.throughput / c.rate_for(c.cores);
        let _ = writeln!(
            md,
            "| HTTP throughput, shared roots, c=64 (SQLite) | ≥ {} × cores × raw sign rate | {} × ({} /s) | {} |",
            target::THROUGHPUT_SHARED,
            f(ratio, 2),
            f(r.measured.throughput, 0),
            verdict(ratio >= target::THROUGHPUT_SHARED)
        );
    }
    if let Some(r) = find(input.scenarios, "SQLite", shared, None) {
        let _ = writeln!(
            md,
            "| p99 latency at half the maximum rate (shared roots, SQLite, {}) | ≤ {} ms | {} ms | {} |",
            r.mode.label(),
            target::P99_HALF_RATE_MS,
            f(r.measured.p99_ms, 2),
            verdict(r.measured.p99_ms <= target::P99_HALF_RATE_MS)
        );
    }
    if let Some(d) = input.duty {
        let (p50, max) = burst_ratios(c, d);
        let _ = writeln!(
            md,
            "| {}-key slot burst (up to {} requests: attestations + selection proofs + sync messages) | ≤ {} × (burst × floor / cores) | p50 {} × ({} ms), max {} × ({} ms) over {} slots | {} |",
            d.keys,
            d.max_size(),
            target::BURST,
            f(p50, 2),
            f(d.p50_s() * 1e3, 1),
            f(max, 2),
            f(d.max_s() * 1e3, 1),
            d.bursts.len(),
            verdict(p50 <= target::BURST)
        );
    }
    if let Some(p) = pg {
        let per = p.xacts as f64 / p.checks.max(1) as f64;
        let calls = p.calls as f64 / p.checks.max(1) as f64;
        let _ = writeln!(
            md,
            "| PostgreSQL round trips per slashing check | 1 | {} transactions, {} check calls | {} |",
            f(per, 3),
            f(calls, 3),
            verdict(per <= 1.01 && calls <= 1.01)
        );
    }
    if let Some(st) = input.startup {
        let ideal = st.n as f64 * c.scrypt_ms / 1e3 / c.cores as f64;
        if let Some(w) = st.warm {
            let _ = writeln!(
                md,
                "| restart with {} scrypt keystores, key cache warm | ≤ 3 s | {} s | {} |",
                st.n,
                f(w.0, 2),
                verdict(w.0 <= 3.0)
            );
        }
        let _ = writeln!(
            md,
            "| first load with {} scrypt keystores | ≤ 1.1 × N × one scrypt / cores | {} × ({} s; server CPU {} × N × one scrypt; other processes {}% of the cores) | {} |",
            st.n,
            f(st.cold.0 / ideal, 2),
            f(st.cold.0, 1),
            f(st.cold.1 / (st.n as f64 * c.scrypt_ms / 1e3), 2),
            f(st.cold.4 * 100.0, 0),
            verdict(st.cold.0 / ideal <= 1.1)
        );
        let _ = writeln!(
            md,
            "| resident memory with {} keys | ≤ 100 MiB | {} MiB | {} |",
            st.mem_n,
            f(st.mem.2, 1),
            verdict(st.mem.2 <= 100.0)
        );
    }
    if let Some(im) = input.import {
        let _ = writeln!(
            md,
            "| signing p99 during a {}-key import (one HTTP worker, {}/s) | ≤ 50 ms | {} ms (without an import {} ms) | {} |",
            im.keys,
            f(im.rate, 0),
            f(im.during.p99_ms, 1),
            f(im.baseline.p99_ms, 2),
            verdict(im.during.p99_ms <= TARGET_P99_MS)
        );
    }
    let on = find(input.scenarios, "SQLite", shared, Some(64));
    let off = find(input.scenarios, "-", shared, Some(64));
    if let (Some(on), Some(off)) = (on, off) {
        let _ = writeln!(
            md,
            "| slashing on (SQLite) vs off, shared roots, c=64 | (informative) | throughput {} ×, CPU/req {} × | |",
            f(on.measured.throughput / off.measured.throughput, 2),
            f(on.measured.server_cpu_us / off.measured.server_cpu_us, 2)
        );
    }
    let batch = input
        .scenarios
        .iter()
        .filter(|s| s.backend == "SQLite")
        .flat_map(|s| s.batch.iter())
        .max_by_key(|b| b.conns);
    if let (Some(b), Some(single)) = (batch, on) {
        let _ = writeln!(
            md,
            "| batch signing ({} connections × {} keys, SQLite) vs single requests, shared roots, c=64 | (informative) | signatures/s {} ×, CPU/sig {} × | |",
            b.conns,
            b.identifiers,
            f(b.measured.throughput / single.measured.throughput, 2),
            f(b.measured.server_cpu_us / single.measured.server_cpu_us, 2)
        );
    }
    let _ = write!(md, "{END}");
    md
}

/// The HTTP load table, the profiles and the PostgreSQL round trips.
fn load_sections(md: &mut String, input: &Input<'_>, pg: Option<crate::PgFigures>) {
    let c = input.ceiling;
    let _ = writeln!(md, "\n### HTTP load (steps 2–4)\n");
    let _ = writeln!(
        md,
        "roots = *shared*: the n-th request of every key carries the same message (for ATTESTATION the same \
         AttestationData, as every validator attesting in one slot signs since Electra), so the signing root \
         repeats across keys; *unique*: each key has its own beacon_block_root, so no two keys share a root. \
         Every request is a new, higher source/target (or slot) for its key, so slashing protection records a \
         row each time. The fixed-rate row runs on shared roots at half the shared c=64 throughput. \
         × ceiling = throughput / (min(c, cores) × raw sign rate per core); × raw sign = server CPU per request \
         / one raw sign; × floor = server CPU per request / one floor sign (step 1); \
         other CPU = what other processes on the machine used during the window, as a share of all cores; \
         history/key = messages already recorded per key when the phase started (the slashing history each check \
         runs against; it grows through a scenario).\n"
    );
    let _ = writeln!(
        md,
        "| backend | slashing | request | roots | load | requests | non-200 | throughput /s | × ceiling | p50 ms | p99 ms | max ms | server CPU µs/req | × raw sign | × floor | client CPU µs/req | server RSS MiB | other CPU | history/key |"
    );
    let _ = writeln!(
        md,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for s in input.scenarios {
        for r in &s.rows {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                s.backend,
                if s.slashing { "on" } else { "off" },
                r.kind.name(),
                r.kind.roots().label(),
                r.mode.label(),
                r.requests,
                r.non_ok,
                measured_cells(c, &r.measured, c.rate_for(threads(r.mode))),
            );
        }
    }
    if let Some(note) = input.pg_note {
        let _ = writeln!(
            md,
            "| PostgreSQL | on | – | – | – | {note} | | | | | | | | | | | | | |"
        );
    }

    batch_section(md, c, input.scenarios);

    let profiled: Vec<(&Scenario, &PhaseResult, &crate::profile::Profile)> = input
        .scenarios
        .iter()
        .flat_map(|s| s.rows.iter().map(move |r| (s, r)))
        .filter_map(|(s, r)| r.profile.as_ref().map(|p| (s, r, p)))
        .collect();
    if !profiled.is_empty() {
        let _ = writeln!(
            md,
            "\n### Where the server's CPU goes (`perf record -e cpu-clock` on the server)\n"
        );
        let _ = writeln!(
            md,
            "Sampled in an extra repeat of the phase, not in the reported row (attaching `perf` stalls the \
             server and sampling costs it CPU). µs/req = share of samples × the reported row's server CPU per \
             request. PostgreSQL's own work runs in its server processes and is not in these figures (see \
             \"other CPU\").\n"
        );
        for (s, r, p) in profiled {
            let _ = writeln!(
                md,
                "{} backend, slashing {}, {} ({} roots) {}: {} µs server CPU per request.\n",
                s.backend,
                if s.slashing { "on" } else { "off" },
                r.kind.name(),
                r.kind.roots().label(),
                r.mode.label(),
                f(r.measured.server_cpu_us, 0)
            );
            let _ = writeln!(
                md,
                "| thread group | share | of which kernel | µs/req |\n|---|---|---|---|"
            );
            for (name, share, kernel) in &p.groups {
                let _ = writeln!(
                    md,
                    "| {name} | {}% | {}% | {} |",
                    f(share * 100.0, 1),
                    f(kernel * 100.0, 1),
                    f(share * r.measured.server_cpu_us, 0)
                );
            }
            let _ = writeln!(
                md,
                "\n| thread group | top symbols | share |\n|---|---|---|"
            );
            for (comm, sym, share) in &p.top {
                let _ = writeln!(md, "| {comm} | `{sym}` | {}% |", f(share * 100.0, 1));
            }
            let _ = writeln!(md);
        }
    }

    let _ = writeln!(md, "\n### PostgreSQL round trips per slashing check\n");
    match pg {
        Some(p) => {
            let _ = writeln!(
                md,
                "| checks (200 + 412) | transactions committed | per check | fs_check_* calls | per check |\n|---|---|---|---|---|"
            );
            let per = |v: i64| {
                if p.checks == 0 {
                    f64::NAN
                } else {
                    v as f64 / p.checks as f64
                }
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                p.checks,
                p.xacts,
                f(per(p.xacts), 3),
                p.calls,
                f(per(p.calls), 3)
            );
            let _ = writeln!(
                md,
                "\nEach check is one `SELECT fs_check_…(…)` statement on a pooled connection (its own transaction); \
                 counted from `pg_stat_database.xact_commit` and `pg_stat_user_functions` of a fresh database \
                 (`track_functions = all`). Transactions also count the one-off `Parse` of the cached prepared \
                 statement on each new pooled connection, hence slightly above 1 in short runs."
            );
        }
        None => {
            let _ = writeln!(md, "{}", input.pg_note.unwrap_or("not measured"));
        }
    }
}

/// The cells a load row and a batch row share, `|`-separated: throughput, as a ratio to `ceiling_rate`,
/// latency p50/p99/max, server CPU per answer (signature) and as ratios to a raw sign and the floor,
/// client CPU, server RSS, other CPU and the slashing history per key.
fn measured_cells(c: &Ceiling, m: &Measured, ceiling_rate: f64) -> String {
    [
        f(m.throughput, 0),
        f(m.throughput / ceiling_rate, 2),
        f(m.p50_ms, 2),
        f(m.p99_ms, 2),
        f(m.max_ms, 1),
        f(m.server_cpu_us, 0),
        f(m.server_cpu_us / c.sign_us, 2),
        f(m.server_cpu_us / c.floor_us, 2),
        f(m.client_cpu_us, 0),
        f(m.server_rss_mib, 1),
        format!("{}%", f(m.other_cpu_share * 100.0, 0)),
        f(m.history_per_key, 0),
    ]
    .join(" | ")
}

/// The batch signing phases of the scenarios that ran them.
fn batch_section(md: &mut String, c: &Ceiling, scenarios: &[Scenario]) {
    let rows: Vec<(&Scenario, &BatchResult)> = scenarios
        .iter()
        .flat_map(|s| s.batch.iter().map(move |b| (s, b)))
        .collect();
    let Some((_, first)) = rows.first() else {
        return;
    };
    let _ = writeln!(md, "\n### Batch signing (`POST /api/v1/eth2/sign`)\n");
    let _ = writeln!(
        md,
        "The same server and keys as the SQLite rows above, started with `--enable-batch-signing`, after its other \
         phases. Every batch names all {} keys and carries one ATTESTATION signing request (the shared roots' \
         AttestationData, a new, higher source/target for every key in each batch, so slashing protection records \
         a row per key, in one transaction per batch); each connection sends its next batch when the previous one \
         is answered. errors = identifiers not signed (error elements, missing elements, every identifier of a \
         batch not answered 200); latency is per batch; × ceiling = signatures per second / (cores × raw sign \
         rate per core); × raw sign and × floor = server CPU per signature / one raw sign or one floor sign \
         (step 1).\n",
        first.identifiers
    );
    let _ = writeln!(
        md,
        "| backend | connections | identifiers/batch | batches | non-200 | signatures | errors | signatures /s | × ceiling | batch p50 ms | p99 ms | max ms | server CPU µs/sig | × raw sign | × floor | client CPU µs/sig | server RSS MiB | other CPU | history/key |"
    );
    let _ = writeln!(
        md,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for (s, b) in rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            s.backend,
            b.conns,
            b.identifiers,
            b.batches,
            b.non_ok_batches,
            b.signatures,
            b.errors,
            measured_cells(c, &b.measured, c.rate_for(c.cores)),
        );
    }
}

/// The slot duty bursts: one row per measured slot, then the summary.
fn duty_section(md: &mut String, c: &Ceiling, d: &DutyResult) {
    let _ = writeln!(md, "\n### Slot duty bursts (step 5)\n");
    let _ = writeln!(
        md,
        "The signer (SQLite, slashing on) loads {} insecure-KDF keys; each key attests once an epoch, in the slot \
         its index falls on modulo 32. At each slot start the client releases at once, over {} keep-alive \
         connections (each takes the next unsent request when its previous one is answered): an ATTESTATION from \
         each of the slot's attesters, all with the same AttestationData (committee index 0; the slot's head, \
         source = the previous epoch, target = this epoch); an AGGREGATION_SLOT selection proof from each of \
         them (every attester: a validator learns whether it aggregates only by signing it, and some clients \
         sign it at the slot start); and a SYNC_COMMITTEE_MESSAGE for the slot's head from {} keys (N/32, at \
         most 512: a heavy case, since an operator holding 1% of a million validators has about 5 of the 512 \
         members on average). Each kind signs one root per slot, shared by its keys. Slots run back to back, \
         each released {} ms after the previous burst's last answer rather than 12 s apart (the bursts never \
         overlap); one warm-up slot first, not shown.\n",
        d.keys,
        d.conns,
        d.sync_members,
        duty::GAP.as_millis()
    );
    let _ = writeln!(
        md,
        "burst ms = from the release to the last answer; ideal ms = burst size × one floor sign (step 1) / {} \
         cores; server CPU µs/sig = server CPU during the burst / its requests answered 200 (`/proc` counts CPU \
         in 10 ms ticks, so one short burst's figure is coarse; the summary below divides the CPU of all \
         measured bursts by all their signatures).\n",
        c.cores
    );
    let _ = writeln!(
        md,
        "| slot | attestations | selection proofs | sync messages | requests | non-200 | burst ms | ideal ms | × ideal | server CPU µs/sig | × floor | × raw sign |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for b in &d.bursts {
        let ok = b.size() as f64 - b.non_ok as f64;
        let cpu_us = if ok > 0.0 {
            b.server_cpu_s * 1e6 / ok
        } else {
            f64::NAN
        };
        let ideal = burst_ideal_s(c, b);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            b.index,
            b.attestations,
            b.selection_proofs,
            b.sync_messages,
            b.size(),
            b.non_ok,
            f(b.seconds * 1e3, 1),
            f(ideal * 1e3, 1),
            f(b.seconds / ideal, 2),
            f(cpu_us, 0),
            f(cpu_us / c.floor_us, 2),
            f(cpu_us / c.sign_us, 2)
        );
    }
    let (p50, max) = burst_ratios(c, d);
    let cpu = d.server_cpu_us();
    let _ = writeln!(
        md,
        "\nOver {} slots: burst p50 {} ms ({} × ideal), max {} ms ({} × ideal); server CPU {} µs per signature \
         ({} × floor, {} × raw sign). The slowest burst ended {} ms after the slot start, {}% of the 3 s to the \
         Gloas attestation deadline.\n",
        d.bursts.len(),
        f(d.p50_s() * 1e3, 1),
        f(p50, 2),
        f(d.max_s() * 1e3, 1),
        f(max, 2),
        f(cpu, 0),
        f(cpu / c.floor_us, 2),
        f(cpu / c.sign_us, 2),
        f(d.max_s() * 1e3, 0),
        f(d.max_s() * 1e3 / duty::ATTESTATION_DEADLINE_MS * 100.0, 1)
    );
    let _ = writeln!(
        md,
        "**{}-key slot burst: p50 {} × (burst × floor / cores) (target ≤ {} ×)**; max {} ×.",
        d.keys,
        f(p50, 2),
        target::BURST,
        f(max, 2)
    );
}

/// One decryption of `kdf` from step 1, in milliseconds (NaN for `insecure`, which step 1 does not time).
fn kdf_ms(c: &Ceiling, kdf: &str) -> f64 {
    match kdf {
        "scrypt" => c.scrypt_ms,
        "pbkdf2" => c.pbkdf2_ms,
        _ => f64::NAN,
    }
}

fn import_section(md: &mut String, args: &Args, c: &Ceiling, im: &ImportResult) {
    let threads = c.cores.saturating_sub(1).max(1);
    let ideal = im.keys as f64 * kdf_ms(c, &im.kdf) / 1e3 / threads as f64;
    let _ = writeln!(md, "\n### Signing during a Keymanager import\n");
    let _ = writeln!(
        md,
        "The signer starts with {} insecure-KDF keys and `--http-worker-threads 1`; {} connections send ATTESTATION \
         requests at a fixed {}/s (each a new, higher source/target for its key; latency from the scheduled send \
         time, so a stalled worker shows in every request it delays). After {} s warm-up, {} s of that load without \
         an import (baseline), then one `POST /eth/v1/keystores` of {} {} EIP-2335 keystores (made by \
         `ferrosigner generate-keystores`). \"During the import\" is every request in flight between sending the \
         import and reading its answer. Ideal import time = N × one {} decryption (step 1) / {} thread(s) (the \
         server decrypts imports on all cores but one).\n",
        im.preloaded,
        im.conns,
        f(im.rate, 0),
        args.warmup().as_secs_f64(),
        args.duration().as_secs_f64(),
        im.keys,
        im.kdf,
        im.kdf,
        threads
    );
    let _ = writeln!(
        md,
        "| window | seconds | requests | non-200 | p50 ms | p99 ms | max ms | server CPU s | other CPU |\n|---|---|---|---|---|---|---|---|---|"
    );
    for (name, w) in [
        ("without an import", &im.baseline),
        ("during the import", &im.during),
    ] {
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {}% |",
            f(w.seconds, 2),
            w.requests,
            w.non_ok,
            f(w.p50_ms, 2),
            f(w.p99_ms, 2),
            f(w.max_ms, 1),
            f(w.server_cpu_s, 2),
            f(w.other_cpu_share * 100.0, 0)
        );
    }
    let _ = writeln!(
        md,
        "\nImport: HTTP {}, {} of {} keystores imported ({} keys listed afterwards), {} s ({} × ideal {} s). \
         During it {} requests took over {} ms; the slowest was sent {} s after the import.\n",
        im.status,
        im.imported,
        im.keys,
        im.keys_after,
        f(im.during.seconds, 2),
        f(im.during.seconds / ideal, 2),
        f(ideal, 1),
        im.during.over_target,
        TARGET_P99_MS,
        f(im.during.max_at_s, 2)
    );
    let _ = writeln!(
        md,
        "**signing p99 during a {}-key import: {} ms (target ≤ 50 ms)**; without an import: {} ms.",
        im.keys,
        f(im.during.p99_ms, 1),
        f(im.baseline.p99_ms, 2)
    );
}

/// Writes `generated` into `path`, replacing the text between the markers if the file has them,
/// otherwise writing a new file with a title and reproduction note around it.
pub fn write(path: &Path, generated: &str) -> std::io::Result<()> {
    let existing = std::fs::read_to_string(path).unwrap_or_default();
    let text = match (existing.find(BEGIN), existing.find(END)) {
        (Some(b), Some(e)) if b < e => {
            format!(
                "{}{}{}",
                &existing[..b],
                generated,
                &existing[e + END.len()..]
            )
        }
        _ => format!(
            "# Performance\n\nReproduce with `scripts/bench` (builds the release binaries and runs `ferrosigner-bench`).\n\n{generated}\n"
        ),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text)
}
