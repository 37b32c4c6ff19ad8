//! `ferrosigner-bench`: measures the ceiling of this machine, then the real `ferrosigner` binary against it,
//! and writes one markdown report.
//!
//! The parts: [`ceiling`] times raw blst signing, the floor (a sign from an already hashed root),
//! hash-to-G2 and one scrypt / pbkdf2 keystore decryption in-process; [`keysets`] generates (once,
//! cached) the keystores the server loads; [`server`] starts the release binary on free 127.0.0.1 ports
//! and reads its CPU time and memory from `/proc`; [`load`] drives it over keep-alive HTTP/1.1
//! connections ([`http`]) at fixed concurrency or a fixed rate, with signing roots shared across keys or
//! unique to each; [`batch`] sends batches (`POST /api/v1/eth2/sign`) naming every load key with one
//! ATTESTATION signing request; [`pg`] creates a fresh PostgreSQL database and counts transactions and
//! check-function calls per slashing check; [`duty`] releases the duties of many keys at each slot start
//! and times each burst; [`import`] measures signing latency while one Keymanager import adds keys to a
//! signer with one HTTP worker. `main` runs the scenarios in order and renders the tables ([`report`]).

mod batch;
mod ceiling;
mod duty;
mod http;
mod import;
mod keysets;
mod load;
mod pg;
mod profile;
mod report;
mod server;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;

use crate::ceiling::Ceiling;
use crate::keysets::KeySet;
use crate::load::{Kind, Mode, PhaseResult, Roots, Workload};
use crate::server::Server;

/// End-to-end benchmark of the ferrosigner binary.
#[derive(Parser, Debug, Clone)]
#[command(version, about)]
pub struct Args {
    /// The signer binary to run.
    #[arg(long, default_value = "target/release/ferrosigner")]
    pub signer: PathBuf,
    /// Tiny run (seconds, few keys, small N): a smoke test, not a measurement.
    #[arg(long)]
    pub quick: bool,
    /// Where generated keystores are cached between runs.
    #[arg(long, default_value = "target/bench-cache")]
    pub cache_dir: PathBuf,
    /// Markdown file to write; an existing file keeps everything outside its
    /// `<!-- bench:begin -->` / `<!-- bench:end -->` markers.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Keys the HTTP load is spread over (insecure-KDF keystores).
    #[arg(long, default_value_t = 64)]
    pub load_keys: usize,
    /// scrypt keystores for the start-up measurement (default 1000; 4 with --quick).
    #[arg(long)]
    pub startup_keys: Option<usize>,
    /// Keys loaded for the memory measurement (default 10000; 200 with --quick).
    #[arg(long)]
    pub memory_keys: Option<usize>,
    /// Measured seconds per load phase (default 10; 0.5 with --quick).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Warm-up seconds before each measured phase (default 2; 0.2 with --quick).
    #[arg(long)]
    pub warmup: Option<f64>,
    /// Fixed request rate for the latency phase (default: half the c=64 shared-roots ATTESTATION
    /// throughput).
    #[arg(long)]
    pub rate: Option<f64>,
    /// PostgreSQL URL of a database on an existing server to use (a fresh database is created next to
    /// it). Without it the PostgreSQL rows run on a private cluster started for the run
    /// (/usr/lib/postgresql/*/bin/initdb, newest version), removed afterwards.
    #[arg(long, env = "FERROSIGNER_BENCH_PG_URL")]
    pub pg_url: Option<String>,
    /// Skip the PostgreSQL scenario.
    #[arg(long)]
    pub no_postgres: bool,
    /// Skip the start-up and memory measurements.
    #[arg(long)]
    pub no_startup: bool,
    /// Skip the HTTP load scenarios (SQLite, PostgreSQL, slashing off).
    #[arg(long)]
    pub no_load: bool,
    /// Skip the Keymanager import phase (signing latency while keys are imported).
    #[arg(long)]
    pub no_import: bool,
    /// Skip the slot duty bursts.
    #[arg(long)]
    pub no_duty: bool,
    /// Keys of the slot duty bursts (insecure-KDF keystores; default 10000; 200 with --quick).
    #[arg(long)]
    pub duty_keys: Option<usize>,
    /// Measured slots of the duty bursts, after one warm-up slot (default 8; 2 with --quick).
    #[arg(long)]
    pub duty_slots: Option<usize>,
    /// Keystores imported in one Keymanager request by the import phase (default 100; 4 with --quick).
    #[arg(long)]
    pub import_keys: Option<usize>,
    /// KDF of the keystores the import phase imports.
    #[arg(long, default_value = "scrypt", value_parser = ["scrypt", "pbkdf2", "insecure"])]
    pub import_kdf: String,
    /// ATTESTATION requests per second signed during the import phase.
    #[arg(long, default_value_t = 200.0)]
    pub import_rate: f64,
    /// Do not profile the server with `perf` in an extra, unreported repeat of the c=64 ATTESTATION phase
    /// (profiling is on when `perf record` works here).
    #[arg(long)]
    pub no_profile: bool,
}

impl Args {
    fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.duration.unwrap_or(if self.quick { 0.5 } else { 10.0 }))
    }
    fn warmup(&self) -> Duration {
        Duration::from_secs_f64(self.warmup.unwrap_or(if self.quick { 0.2 } else { 2.0 }))
    }
    fn startup_keys(&self) -> usize {
        self.startup_keys
            .unwrap_or(if self.quick { 4 } else { 1000 })
    }
    fn memory_keys(&self) -> usize {
        self.memory_keys
            .unwrap_or(if self.quick { 200 } else { 10_000 })
    }
    fn import_keys(&self) -> usize {
        self.import_keys.unwrap_or(if self.quick { 4 } else { 100 })
    }
    fn duty_keys(&self) -> usize {
        self.duty_keys
            .unwrap_or(if self.quick { 200 } else { 10_000 })
    }
    fn duty_slots(&self) -> usize {
        self.duty_slots.unwrap_or(if self.quick { 2 } else { 8 })
    }
}

/// One server configuration under load.
pub struct Scenario {
    /// `SQLite`, `PostgreSQL` or `-`.
    pub backend: &'static str,
    /// Slashing protection on.
    pub slashing: bool,
    /// The phases, in order.
    pub rows: Vec<PhaseResult>,
    /// PostgreSQL statistics, for that backend.
    pub pg: Option<PgFigures>,
    /// Batch signing phases (SQLite only).
    pub batch: Vec<batch::BatchResult>,
}

/// Connections of the batch phases, one phase each (every connection keeps one batch in flight).
pub const BATCH_CONNS: [usize; 2] = [2, 4];

/// Round trips of the PostgreSQL scenario.
#[derive(Debug, Clone, Copy)]
pub struct PgFigures {
    /// Requests answered 200 or 412 (each ran one check).
    pub checks: u64,
    /// Committed transactions in the bench database during the load.
    pub xacts: i64,
    /// Calls of the check functions.
    pub calls: i64,
}

/// One start: seconds to healthy, server CPU seconds, RSS and peak RSS (MiB), and the share of all
/// cores other processes used meanwhile.
pub type Figures = (f64, f64, f64, f64, f64);

/// Start-up and memory figures.
#[derive(Debug, Clone, Default)]
pub struct Startup {
    /// scrypt keystores loaded.
    pub n: usize,
    /// Whether the binary has `--key-cache-enabled`.
    pub key_cache_flag: bool,
    /// Cold start: seconds to healthy, server CPU seconds, RSS and peak RSS (MiB).
    pub cold: Figures,
    /// Restart with the key cache: same figures.
    pub warm: Option<Figures>,
    /// Keys of the memory run.
    pub mem_n: usize,
    /// Memory run: same figures.
    pub mem: Figures,
}

async fn public_keys(addr: &str) -> anyhow::Result<Vec<String>> {
    let (status, body) = http::get(addr, "/api/v1/eth2/publicKeys").await?;
    if status != 200 {
        bail!("publicKeys answered {status}");
    }
    let mut keys: Vec<String> = serde_json::from_slice(&body)?;
    keys.sort();
    Ok(keys)
}

fn os(s: impl Into<OsString>) -> OsString {
    s.into()
}

fn base_args(keys: &KeySet) -> Vec<OsString> {
    vec![
        os("--keystores-path"),
        os(&keys.dir),
        os("--keystores-password-file"),
        os(&keys.password_file),
    ]
}

async fn load_scenario(
    args: &Args,
    work_dir: &Path,
    keys: &KeySet,
    backend: &'static str,
    slashing: bool,
    pg_db: Option<&pg::BenchDb>,
) -> anyhow::Result<Scenario> {
    let name = format!(
        "{}-{}",
        backend.to_lowercase(),
        if slashing { "on" } else { "off" }
    );
    eprintln!(
        "load: {backend}, slashing {}",
        if slashing { "on" } else { "off" }
    );
    let mut extra = base_args(keys);
    extra.push(os("--slashing-protection-enabled"));
    extra.push(os(slashing.to_string()));
    if let Some(db) = pg_db {
        extra.push(os("--slashing-protection-db-url"));
        extra.push(os(&db.url));
    }
    // The batch phases run on the SQLite scenario's server, after its other phases.
    let batches = backend == "SQLite" && slashing;
    if batches {
        extra.push(os("--enable-batch-signing"));
    }
    let mut server = Server::spawn(&args.signer, &work_dir.join(&name), &extra)?;
    server
        .wait_healthy(Duration::from_secs(120), Duration::from_millis(20))
        .await?;
    let pubkeys = public_keys(&server.addr).await?;
    if pubkeys.len() < 64.min(args.load_keys) {
        bail!("the signer loaded only {} keys", pubkeys.len());
    }
    let work = Arc::new(Workload::new(&pubkeys));
    let xact0 = match pg_db {
        Some(db) => {
            // let the server's idle backends flush their statistics first
            tokio::time::sleep(Duration::from_secs(2)).await;
            Some(db.xact_commit().await?)
        }
        None => None,
    };
    let times = (args.warmup(), args.duration());
    let perf_out = work_dir.join(format!("{name}.perf.data"));
    let profile = (!args.no_profile && profile::available()).then_some(perf_out.as_path());
    let mut rows = Vec::new();
    let shared = Kind::Attestation(Roots::Shared);
    let levels: &[usize] = if slashing { &[1, 16, 64] } else { &[1, 64] };
    for &c in levels {
        let mode = Mode::Closed(c);
        rows.push(load::run_phase(&server, &work, shared, mode, times, None).await?);
    }
    // The profile comes from a repeat of the c=64 ATTESTATION phase: `perf` stalls the server when it
    // attaches and costs it CPU while sampling, so the reported rows are measured without it.
    let mut profiled_checks = 0;
    if let Some(out) = profile {
        let profiled =
            load::run_phase(&server, &work, shared, Mode::Closed(64), times, Some(out)).await?;
        profiled_checks = profiled.checks;
        if let Some(row) = rows
            .iter_mut()
            .find(|r| r.kind == shared && matches!(r.mode, Mode::Closed(64)))
        {
            row.profile = profiled.profile;
        }
    }
    // No two keys share a root: every signature pays for its own hash-to-G2.
    let unique = Kind::Attestation(Roots::Unique);
    rows.push(load::run_phase(&server, &work, unique, Mode::Closed(64), times, None).await?);
    if slashing {
        let mode = Mode::Closed(64);
        rows.push(load::run_phase(&server, &work, Kind::Block, mode, times, None).await?);
        let max = rows
            .iter()
            .find(|r| r.kind == shared && matches!(r.mode, Mode::Closed(64)))
            .map_or(100.0, |r| r.measured.throughput);
        let rate = args.rate.unwrap_or((max / 2.0).max(1.0));
        rows.push(
            load::run_phase(
                &server,
                &work,
                shared,
                Mode::Rate { rate, conns: 64 },
                times,
                None,
            )
            .await?,
        );
    }
    let mut batch_rows = Vec::new();
    if batches {
        let ids = Arc::new(pubkeys.clone());
        for conns in BATCH_CONNS {
            let r = batch::run_phase(&server, &work, &ids, conns, times).await?;
            if let Some(problem) = &r.first_problem {
                eprintln!(
                    "NOTICE: batch phase with {conns} connections: {} of {} identifiers in the window not signed; first problem seen: {problem}",
                    r.errors,
                    r.errors + r.signatures
                );
            }
            batch_rows.push(r);
        }
    }
    server.stop()?;
    let pg = match (pg_db, xact0) {
        (Some(db), Some(x0)) => {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let x1 = db.xact_commit().await?;
            Some(PgFigures {
                checks: rows.iter().map(|r| r.checks).sum::<u64>() + profiled_checks,
                xacts: x1 - x0,
                calls: db.check_calls().await?,
            })
        }
        _ => None,
    };
    Ok(Scenario {
        backend,
        slashing,
        rows,
        pg,
        batch: batch_rows,
    })
}

/// The PostgreSQL server of the PostgreSQL rows: the one `--pg-url` names, else a private cluster
/// started here (kept running until the returned guard is stopped or dropped). Returns the guard, the
/// bench database created on the server, and a description of the server for the report.
async fn postgres_server(
    args: &Args,
) -> anyhow::Result<(Option<pg::PrivateCluster>, pg::BenchDb, String)> {
    if let Some(url) = &args.pg_url {
        let db = pg::BenchDb::create(url).await?;
        let what = format!(
            "the existing server of `{}` (`--pg-url` / `FERROSIGNER_BENCH_PG_URL`)",
            pg::redacted(url)
        );
        return Ok((None, db, what));
    }
    let Some(bin) = pg::server_binaries() else {
        bail!(
            "no --pg-url / FERROSIGNER_BENCH_PG_URL, and no PostgreSQL server binaries \
             (/usr/lib/postgresql/*/bin/initdb) to start a private cluster with"
        );
    };
    let cluster = tokio::task::spawn_blocking(move || pg::PrivateCluster::start(&bin))
        .await
        .context("the PostgreSQL start-up task failed")?
        .context("cannot start a private PostgreSQL cluster")?;
    let db = pg::BenchDb::create(&cluster.admin_url()).await?;
    let what = cluster.describe();
    Ok((Some(cluster), db, what))
}

fn has_key_cache_flag(signer: &Path) -> bool {
    std::process::Command::new(signer)
        .args(["run", "--help"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("--key-cache-enabled"))
        .unwrap_or(false)
}

async fn start_once(
    args: &Args,
    data_dir: &Path,
    keys: &KeySet,
    extra: &[OsString],
    timeout: Duration,
) -> anyhow::Result<Figures> {
    let mut a = base_args(keys);
    a.extend_from_slice(extra);
    let busy0 = server::machine_busy_s()?;
    let mut server = Server::spawn(&args.signer, data_dir, &a)?;
    let t = server
        .wait_healthy(timeout, Duration::from_millis(10))
        .await?;
    let s = server.sample()?;
    let busy1 = server::machine_busy_s()?;
    server.stop()?;
    let t = t.as_secs_f64();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let other = ((busy1 - busy0 - s.cpu_s) / (t * cores)).max(0.0);
    Ok((t, s.cpu_s, s.rss_mib, s.hwm_mib, other))
}

async fn startup(
    args: &Args,
    work_dir: &Path,
    scrypt: &KeySet,
    many: &KeySet,
    n: usize,
    mem_n: usize,
) -> anyhow::Result<Startup> {
    let flag = has_key_cache_flag(&args.signer);
    let mut extra = Vec::new();
    if flag {
        extra = vec![os("--key-cache-enabled"), os("true")];
    }
    let dir = work_dir.join("startup");
    eprintln!("start-up: {n} scrypt keystores, cold");
    let cold = start_once(args, &dir, scrypt, &extra, Duration::from_secs(3600)).await?;
    let warm = if flag {
        eprintln!("start-up: restart with the key cache");
        Some(start_once(args, &dir, scrypt, &extra, Duration::from_secs(3600)).await?)
    } else {
        eprintln!("start-up: the signer has no --key-cache-enabled; restart not measured");
        None
    };
    eprintln!("memory: {mem_n} keys");
    let mem = start_once(
        args,
        &work_dir.join("memory"),
        many,
        &[],
        Duration::from_secs(3600),
    )
    .await?;
    Ok(Startup {
        n,
        key_cache_flag: flag,
        cold,
        warm,
        mem_n,
        mem,
    })
}

async fn run(args: Args) -> anyhow::Result<()> {
    if !args.signer.is_file() {
        bail!(
            "no signer binary at {} (build it with `cargo build --release -p ferrosigner`, or pass --signer)",
            args.signer.display()
        );
    }
    let started = std::time::Instant::now();
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    if !args.import_rate.is_finite() || args.import_rate <= 0.0 {
        bail!("--import-rate must be positive");
    }
    let load_set = if args.no_load {
        None
    } else {
        Some(keysets::ensure(
            &args.signer,
            &args.cache_dir,
            "insecure",
            args.load_keys,
        )?)
    };
    let import_sets = if args.no_import {
        None
    } else {
        Some((
            keysets::ensure(&args.signer, &args.cache_dir, "insecure", import::CONNS)?,
            keysets::ensure(
                &args.signer,
                &args.cache_dir,
                &args.import_kdf,
                args.import_keys(),
            )?,
        ))
    };
    let duty_set = if args.no_duty {
        None
    } else {
        if args.duty_keys() == 0 || args.duty_slots() == 0 {
            bail!("--duty-keys and --duty-slots must be positive");
        }
        Some(keysets::ensure(
            &args.signer,
            &args.cache_dir,
            "insecure",
            args.duty_keys(),
        )?)
    };
    let (n, mem_n) = (args.startup_keys(), args.memory_keys());
    let sets = if args.no_startup {
        None
    } else {
        Some((
            keysets::ensure(&args.signer, &args.cache_dir, "scrypt", n)?,
            keysets::ensure(&args.signer, &args.cache_dir, "insecure", mem_n)?,
        ))
    };
    let work_dir = args.cache_dir.join(format!("run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work_dir);
    std::fs::create_dir_all(&work_dir)?;

    eprintln!("ceiling: raw blst sign, floor, hash-to-G2, scrypt and pbkdf2 decryption");
    let ceiling: Ceiling = if args.quick {
        ceiling::measure(Duration::from_millis(300), 1)?
    } else {
        ceiling::measure(Duration::from_secs(2), 3)?
    };

    let mut scenarios = Vec::new();
    let mut pg_note = None;
    let mut pg_server = None;
    if let Some(load_set) = &load_set {
        scenarios.push(load_scenario(&args, &work_dir, load_set, "SQLite", true, None).await?);
        if args.no_postgres {
            pg_note = Some("skipped (--no-postgres)".to_owned());
        } else {
            match postgres_server(&args).await {
                Ok((cluster, db, server)) => {
                    eprintln!("load: PostgreSQL on {server}");
                    pg_server = Some(server);
                    let s =
                        load_scenario(&args, &work_dir, load_set, "PostgreSQL", true, Some(&db))
                            .await;
                    let _ = db.drop_db().await;
                    let stopped = cluster.map_or(Ok(()), |mut c| c.stop());
                    scenarios.push(s?);
                    stopped.context("cannot stop the private PostgreSQL cluster")?;
                }
                Err(e) if ci => {
                    return Err(e.context("PostgreSQL is required under CI=true"));
                }
                Err(e) => {
                    eprintln!("NOTICE: PostgreSQL scenario skipped: {e:#}");
                    pg_note = Some(format!("skipped: {e:#}"));
                }
            }
        }
        scenarios.push(load_scenario(&args, &work_dir, load_set, "-", false, None).await?);
    }

    let duty = match &duty_set {
        Some(keys) => {
            eprintln!(
                "duty: {} keys, {} slots after one warm-up slot, {} connections",
                args.duty_keys(),
                args.duty_slots(),
                duty::CONNS
            );
            Some(
                duty::run(&duty::Plan {
                    signer: &args.signer,
                    data_dir: &work_dir.join("duty"),
                    keys,
                    n: args.duty_keys(),
                    slots: args.duty_slots(),
                })
                .await?,
            )
        }
        None => None,
    };

    let startup = match &sets {
        Some((scrypt, many)) => Some(startup(&args, &work_dir, scrypt, many, n, mem_n).await?),
        None => None,
    };

    let import = match &import_sets {
        Some((preload, to_import)) => {
            eprintln!(
                "import: {} {} keystores through the Keymanager API, one HTTP worker, {}/s ATTESTATION",
                args.import_keys(),
                args.import_kdf,
                args.import_rate
            );
            let r = import::run(&import::Plan {
                signer: &args.signer,
                data_dir: &work_dir.join("import"),
                preload,
                import: to_import,
                keys: args.import_keys(),
                kdf: &args.import_kdf,
                rate: args.import_rate,
                times: (args.warmup(), args.duration()),
            })
            .await?;
            eprintln!(
                "import: {} imported in {:.1} s; signing p99 {:.1} ms during it, {:.2} ms without",
                r.imported, r.during.seconds, r.during.p99_ms, r.baseline.p99_ms
            );
            Some(r)
        }
        None => None,
    };

    let _ = std::fs::remove_dir_all(&work_dir);

    let md = report::render(&report::Input {
        args: &args,
        ceiling: &ceiling,
        scenarios: &scenarios,
        pg_note: pg_note.as_deref(),
        pg_server: pg_server.as_deref(),
        duty: duty.as_ref(),
        startup: startup.as_ref(),
        import: import.as_ref(),
        elapsed_s: started.elapsed().as_secs_f64(),
    });
    println!("{md}");
    if let Some(path) = &args.output {
        report::write(path, &md).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        // On Ctrl-C the run is dropped: its servers are killed and a private PostgreSQL cluster is
        // stopped and removed on the way out.
        tokio::select! {
            result = run(args) => result,
            signal = tokio::signal::ctrl_c() => {
                signal.context("cannot listen for Ctrl-C")?;
                bail!("interrupted");
            }
        }
    })
}
