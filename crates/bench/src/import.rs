//! Signing latency while keys are imported: one Keymanager import of N EIP-2335 keystores into a signer
//! with one HTTP worker thread, under a steady open-loop ATTESTATION load.
//!
//! The server starts with a few keys and `--http-worker-threads 1`. `conns` connections send ATTESTATION
//! requests (every one a new, higher source/target for its key) at a fixed total rate, latency counted from
//! the scheduled send time, so a stalled worker shows in every request it delays. After the warm-up, a
//! baseline window of the same load runs without an import; then one `POST /eth/v1/keystores` carries all N
//! keystores, and the requests in flight at any time between sending it and reading its response make the
//! "during the import" figures.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use tokio::time::Instant;

use crate::http::{self, Conn};
use crate::keysets::{self, KeySet};
use crate::load::{self, Kind, Roots, Workload};
use crate::server::{ProcSample, Server, machine_busy_s, sample};

/// Connections (and preloaded keys, one per connection) of the signing load.
pub const CONNS: usize = 8;
/// Target of issue 9 for the signing p99 during an import, in milliseconds.
pub const TARGET_P99_MS: f64 = 50.0;
/// Longest wait for the import's response.
const IMPORT_TIMEOUT: Duration = Duration::from_secs(900);

/// Latency figures of the requests in one window.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Length of the window in seconds.
    pub seconds: f64,
    /// Requests counted.
    pub requests: u64,
    /// Of those, answers other than 200 (or transport errors).
    pub non_ok: u64,
    /// Latency percentiles in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Maximum.
    pub max_ms: f64,
    /// When the slowest request was scheduled, in seconds from the start of the window.
    pub max_at_s: f64,
    /// Requests slower than [`TARGET_P99_MS`].
    pub over_target: u64,
    /// Server CPU seconds in the window.
    pub server_cpu_s: f64,
    /// CPU used by other processes (not the server, not this client), as a share of all cores.
    pub other_cpu_share: f64,
}

/// The outcome of the import phase.
#[derive(Debug, Clone)]
pub struct ImportResult {
    /// Keystores in the import request.
    pub keys: usize,
    /// Their KDF (`scrypt`, `pbkdf2` or `insecure`).
    pub kdf: String,
    /// Keys the server loaded at start.
    pub preloaded: usize,
    /// Offered signing rate (requests per second).
    pub rate: f64,
    /// Connections carrying it.
    pub conns: usize,
    /// HTTP status of the import.
    pub status: u16,
    /// Keystores the server reported `imported`.
    pub imported: usize,
    /// Keys the server lists after the import.
    pub keys_after: usize,
    /// Same load, no import.
    pub baseline: Window,
    /// From sending the import to reading its response.
    pub during: Window,
}

struct Sample {
    scheduled: Instant,
    done: Instant,
    ok: bool,
}

async fn worker(
    addr: String,
    work: Arc<Workload>,
    rate: f64,
    w: usize,
    t0: Instant,
    stop_us: Arc<AtomicU64>,
) -> anyhow::Result<Vec<Sample>> {
    let mut conn = Conn::open(&addr).await?;
    let mut out = Vec::with_capacity(16_384);
    let owned: Vec<usize> = (w..work.keys()).step_by(CONNS).collect();
    if owned.is_empty() {
        bail!("{} keys are fewer than {CONNS} connections", work.keys());
    }
    for m in 0u64.. {
        let slot = w as u64 + m * CONNS as u64;
        let offset = Duration::from_secs_f64(slot as f64 / rate);
        tokio::time::sleep_until(t0 + offset).await;
        // Requests scheduled before the stop time are all sent, late ones included: a stalled
        // connection catches up afterwards, so its backlog counts (no coordinated omission).
        if offset.as_micros() >= u128::from(stop_us.load(Ordering::Relaxed)) {
            break;
        }
        let scheduled = t0 + offset;
        let (path, body) = work.next_request(
            Kind::Attestation(Roots::Shared),
            owned[m as usize % owned.len()],
        );
        let status = match conn.post(path, body).await {
            Ok(s) => s,
            Err(_) => {
                conn = Conn::open(&addr).await?;
                0
            }
        };
        out.push(Sample {
            scheduled,
            done: Instant::now(),
            ok: status == 200,
        });
    }
    Ok(out)
}

/// CPU figures at one instant: server, this process, whole machine.
fn cpu_now(server: &Server) -> anyhow::Result<(ProcSample, ProcSample, f64)> {
    Ok((server.sample()?, sample("self")?, machine_busy_s()?))
}

fn window(
    samples: &[Sample],
    (from, to): (Instant, Instant),
    in_window: impl Fn(&Sample) -> bool,
    cpu: [(ProcSample, ProcSample, f64); 2],
) -> Window {
    let mut latencies: Vec<u32> = Vec::new();
    let (mut non_ok, mut over_target) = (0, 0);
    let mut slowest: Option<&Sample> = None;
    for s in samples.iter().filter(|s| in_window(s)) {
        let latency = s.done - s.scheduled;
        latencies.push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
        non_ok += u64::from(!s.ok);
        over_target += u64::from(latency.as_secs_f64() * 1e3 > TARGET_P99_MS);
        if slowest.is_none_or(|m| latency > m.done - m.scheduled) {
            slowest = Some(s);
        }
    }
    latencies.sort_unstable();
    let seconds = (to - from).as_secs_f64();
    let [(s0, c0, m0), (s1, c1, m1)] = cpu;
    let server_cpu_s = s1.cpu_s - s0.cpu_s;
    let other = (m1 - m0) - server_cpu_s - (c1.cpu_s - c0.cpu_s);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    Window {
        seconds,
        requests: latencies.len() as u64,
        non_ok,
        p50_ms: load::percentile(&latencies, 0.50),
        p99_ms: load::percentile(&latencies, 0.99),
        max_ms: latencies.last().map_or(f64::NAN, |v| *v as f64 / 1000.0),
        max_at_s: slowest.map_or(f64::NAN, |s| {
            // may start before the window (in flight when it began)
            if s.scheduled >= from {
                (s.scheduled - from).as_secs_f64()
            } else {
                -(from - s.scheduled).as_secs_f64()
            }
        }),
        over_target,
        server_cpu_s,
        other_cpu_share: (other / (seconds * cores)).max(0.0),
    }
}

/// The first `count` keystores of `set` (`keystore-<i>.json`, by index) as JSON texts.
fn keystore_texts(set: &KeySet, count: usize) -> anyhow::Result<Vec<String>> {
    let mut files: Vec<(usize, PathBuf)> = std::fs::read_dir(&set.dir)?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let i = name.strip_prefix("keystore-")?.strip_suffix(".json")?;
            Some((i.parse().ok()?, e.path()))
        })
        .collect();
    files.sort();
    if files.len() < count {
        bail!(
            "{} holds {} keystores, {count} wanted",
            set.dir.display(),
            files.len()
        );
    }
    files
        .iter()
        .take(count)
        .map(|(_, p)| {
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))
        })
        .collect()
}

/// Settings of the phase.
pub struct Plan<'a> {
    /// The signer binary.
    pub signer: &'a Path,
    /// The server's data directory (created).
    pub data_dir: &'a Path,
    /// Keys the server loads at start (at least [`CONNS`]).
    pub preload: &'a KeySet,
    /// Keystores to import, all encrypted with [`keysets::PASSWORD`].
    pub import: &'a KeySet,
    /// How many of them.
    pub keys: usize,
    /// Their KDF, for the report.
    pub kdf: &'a str,
    /// Signing requests per second.
    pub rate: f64,
    /// Warm-up, then the baseline window.
    pub times: (Duration, Duration),
}

/// Runs the phase: start the signer, load it, measure a baseline window, import, stop.
pub async fn run(plan: &Plan<'_>) -> anyhow::Result<ImportResult> {
    let mut extra = crate::base_args(plan.preload);
    extra.extend([crate::os("--http-worker-threads"), crate::os("1")]);
    let mut server = Server::spawn(plan.signer, plan.data_dir, &extra)?;
    server
        .wait_healthy(Duration::from_secs(120), Duration::from_millis(20))
        .await?;
    let pubkeys = crate::public_keys(&server.addr).await?;
    if pubkeys.len() < CONNS {
        bail!("the signer loaded {} keys, {CONNS} needed", pubkeys.len());
    }
    let token_file = plan.data_dir.join("api-token.txt");
    let token = std::fs::read_to_string(&token_file)
        .with_context(|| format!("cannot read {}", token_file.display()))?;
    let keystores = keystore_texts(plan.import, plan.keys)?;
    let passwords = vec![keysets::PASSWORD; keystores.len()];
    let body = Bytes::from(serde_json::to_vec(
        &serde_json::json!({ "keystores": keystores, "passwords": passwords }),
    )?);

    let work = Arc::new(Workload::new(&pubkeys));
    let stop_us = Arc::new(AtomicU64::new(u64::MAX));
    let t0 = Instant::now() + Duration::from_millis(50);
    let handles: Vec<_> = (0..CONNS)
        .map(|w| {
            tokio::spawn(worker(
                server.addr.clone(),
                work.clone(),
                plan.rate,
                w,
                t0,
                stop_us.clone(),
            ))
        })
        .collect();
    let (warmup, duration) = plan.times;
    let base_start = t0 + warmup;
    tokio::time::sleep_until(base_start).await;
    let cpu0 = cpu_now(&server)?;
    tokio::time::sleep_until(base_start + duration).await;
    let base_end = Instant::now();
    let cpu1 = cpu_now(&server)?;
    let sent = Instant::now();
    let answer = tokio::time::timeout(
        IMPORT_TIMEOUT,
        http::post_once(&server.addr, "/eth/v1/keystores", body, Some(token.trim())),
    )
    .await;
    let received = Instant::now();
    let cpu2 = cpu_now(&server)?;
    let stop = u64::try_from((received - t0).as_micros()).unwrap_or(u64::MAX);
    stop_us.store(stop, Ordering::Relaxed);
    let mut samples = Vec::new();
    for h in handles {
        samples.extend(h.await??);
    }
    let (status, response) = answer
        .map_err(|_| anyhow::anyhow!("no answer to the import within {IMPORT_TIMEOUT:?}"))??;
    if status != 200 {
        bail!(
            "the import answered {status}: {}",
            String::from_utf8_lossy(&response)
        );
    }
    let response: serde_json::Value =
        serde_json::from_slice(&response).context("the import's answer is not JSON")?;
    let imported = response["data"]
        .as_array()
        .context("the import's answer has no data array")?
        .iter()
        .filter(|s| s["status"] == "imported")
        .count();
    let keys_after = crate::public_keys(&server.addr).await?.len();
    server.stop()?;

    let baseline = window(
        &samples,
        (base_start, base_end),
        |s| s.scheduled >= base_start && s.scheduled < base_end,
        [cpu0, cpu1],
    );
    // in flight at any time between sending the import and reading its answer
    let during = window(
        &samples,
        (sent, received),
        |s| s.done > sent && s.scheduled < received,
        [cpu1, cpu2],
    );
    Ok(ImportResult {
        keys: plan.keys,
        kdf: plan.kdf.to_owned(),
        preloaded: pubkeys.len(),
        rate: plan.rate,
        conns: CONNS,
        status,
        imported,
        keys_after,
        baseline,
        during,
    })
}
