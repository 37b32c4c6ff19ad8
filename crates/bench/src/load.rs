//! Step 2: HTTP load against a running signer, closed-loop at fixed concurrency or open-loop at a fixed rate.
//!
//! Every worker owns one keep-alive connection and a disjoint set of keys, so the requests for one key
//! are strictly sequential and each carries a new, higher (source, target) or slot: slashing protection
//! inserts a row for every request and never refuses one because of reordering.
//!
//! ATTESTATION load comes in two workloads ([`Roots`]). *Shared*: the n-th request of every key carries
//! the same AttestationData, as every validator attesting in one slot signs the same data since Electra
//! (committee index 0), so the signing root repeats across keys and the signer's hash cache hashes it
//! once. *Unique*: each key has its own beacon_block_root, so no two keys ever share a signing root and
//! every signature pays for its own hash-to-G2. In open-loop mode the
//! latency of a request is measured from its scheduled send time, so queueing is not hidden
//! (no coordinated omission).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::bail;
use bytes::Bytes;
use tokio::time::Instant;

use crate::http::Conn;
use crate::profile::{self, Profile};
use crate::server::{ProcSample, Server, machine_busy_s, sample};

/// The mainnet genesis validators root.
pub const GVR: &str = "0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95";
/// First epoch (attestations) or slot (blocks) used; later than the mainnet Electra fork.
pub const BASE: u64 = 400_000;

/// Whether keys share signing roots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Roots {
    /// The n-th request of every key carries the same message: the signing root repeats across keys.
    Shared,
    /// Every key has its own beacon_block_root: no two keys share a signing root.
    Unique,
}

impl Roots {
    /// `shared` or `unique`.
    pub fn label(self) -> &'static str {
        match self {
            Roots::Shared => "shared",
            Roots::Unique => "unique",
        }
    }
}

/// The request type driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `ATTESTATION` with increasing source/target epochs per key.
    Attestation(Roots),
    /// `BLOCK_V2` (Electra block header) with increasing slots per key; the n-th request of every key
    /// carries the same header (shared roots).
    Block,
}

impl Kind {
    /// The Web3Signer type name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Attestation(_) => "ATTESTATION",
            Kind::Block => "BLOCK_V2",
        }
    }

    /// Whether the signing roots repeat across keys.
    pub fn roots(self) -> Roots {
        match self {
            Kind::Attestation(roots) => roots,
            Kind::Block => Roots::Shared,
        }
    }
}

/// How load is offered.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// `c` workers, each sending its next request as soon as the previous answer arrives.
    Closed(usize),
    /// `rate` requests per second spread over `conns` connections, on a fixed schedule.
    Rate {
        /// Requests per second.
        rate: f64,
        /// Connections.
        conns: usize,
    },
}

impl Mode {
    fn workers(self) -> usize {
        match self {
            Mode::Closed(c) => c,
            Mode::Rate { conns, .. } => conns,
        }
    }

    /// `c=64` or `rate 1200/s`.
    pub fn label(self) -> String {
        match self {
            Mode::Closed(c) => format!("c={c}"),
            Mode::Rate { rate, .. } => format!("fixed {rate:.0}/s"),
        }
    }
}

/// The keys and per-key progress shared by all phases against one server.
pub struct Workload {
    paths: Vec<Arc<str>>,
    rounds: Vec<AtomicU64>,
    /// The public keys as a JSON array, the `identifiers` of a batch request.
    identifiers: String,
    /// Serialises [`Workload::next_batch`], which moves every key's round at once.
    batch_lock: Mutex<()>,
}

/// The start of a request body's `fork_info` (mainnet, Electra), up to the genesis validators root.
pub const FORK_INFO: &str = r#""fork_info":{"fork":{"previous_version":"0x04000000","current_version":"0x05000000","epoch":"364032"},"genesis_validators_root":""#;

/// The beacon_block_root of key `index` in the unique workload (64 hex digits, no `0x`):
/// `index · 256 + 0xc0`, so distinct for every key and never [`R1`], the shared workload's root.
fn unique_root(index: usize) -> String {
    format!("{:064x}", ((index as u128) << 8) | 0xc0)
}

impl Workload {
    /// One entry per public key (`0x` hex).
    pub fn new(pubkeys: &[String]) -> Workload {
        Workload {
            paths: pubkeys
                .iter()
                .map(|pk| Arc::from(format!("/api/v1/eth2/sign/{pk}")))
                .collect(),
            rounds: pubkeys.iter().map(|_| AtomicU64::new(0)).collect(),
            identifiers: serde_json::Value::from(pubkeys).to_string(),
            batch_lock: Mutex::new(()),
        }
    }

    /// Messages already recorded per key (mean): the slashing history the next checks run against.
    pub fn history_per_key(&self) -> f64 {
        self.rounds
            .iter()
            .map(|r| r.load(Ordering::Relaxed) as f64)
            .sum::<f64>()
            / self.keys().max(1) as f64
    }

    /// How many keys.
    pub fn keys(&self) -> usize {
        self.paths.len()
    }

    /// The next request for key `index`: its path and a body one round past the previous one for that key.
    pub fn next_request(&self, kind: Kind, index: usize) -> (&str, Bytes) {
        let round = self.rounds[index].fetch_add(1, Ordering::Relaxed);
        (&self.paths[index], Workload::body(kind, index, round))
    }

    /// The next batch request (`POST /api/v1/eth2/sign`): every key signs one shared-roots ATTESTATION,
    /// one round past the highest round of any key, and every key moves past it.
    pub fn next_batch(&self) -> Bytes {
        let round = {
            let _serial = self
                .batch_lock
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let round = self
                .rounds
                .iter()
                .map(|r| r.load(Ordering::Relaxed))
                .max()
                .unwrap_or(0);
            for r in &self.rounds {
                r.fetch_max(round + 1, Ordering::Relaxed);
            }
            round
        };
        let request = Workload::body(Kind::Attestation(Roots::Shared), 0, round);
        let mut body = Vec::with_capacity(self.identifiers.len() + request.len() + 40);
        body.extend_from_slice(br#"{"identifiers":"#);
        body.extend_from_slice(self.identifiers.as_bytes());
        body.extend_from_slice(br#","signing_request":"#);
        body.extend_from_slice(&request);
        body.push(b'}');
        Bytes::from(body)
    }

    fn body(kind: Kind, index: usize, round: u64) -> Bytes {
        let n = BASE + round;
        let text = match kind {
            Kind::Attestation(roots) => format!(
                r#"{{"type":"ATTESTATION",{FORK_INFO}{GVR}"}},"attestation":{{"slot":"{slot}","index":"0","beacon_block_root":"0x{r1}","source":{{"epoch":"{n}","root":"0x{r2}"}},"target":{{"epoch":"{t}","root":"0x{r3}"}}}}}}"#,
                slot = (n + 1) * 32,
                t = n + 1,
                r1 = match roots {
                    Roots::Shared => R1.to_owned(),
                    Roots::Unique => unique_root(index),
                },
                r2 = R2,
                r3 = R3,
            ),
            Kind::Block => format!(
                r#"{{"type":"BLOCK_V2",{FORK_INFO}{GVR}"}},"beacon_block":{{"version":"ELECTRA","block_header":{{"slot":"{slot}","proposer_index":"7","parent_root":"0x{r1}","state_root":"0x{r2}","body_root":"0x{r3}"}}}}}}"#,
                slot = n * 32,
                r1 = R1,
                r2 = R2,
                r3 = R3,
            ),
        };
        Bytes::from(text)
    }
}

const R1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const R2: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const R3: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// The outcome of one phase.
#[derive(Debug, Clone)]
pub struct PhaseResult {
    /// Request type.
    pub kind: Kind,
    /// Offered load.
    pub mode: Mode,
    /// Requests started in the measurement window.
    pub requests: u64,
    /// Of those, answers other than 200 (or transport errors).
    pub non_ok: u64,
    /// Requests that reached the slashing check (200 or 412), warm-up included.
    pub checks: u64,
    /// Throughput (answered-200 requests per second), latency and CPU per answered-200 request.
    pub measured: Measured,
    /// Where the server's CPU went during the window, when profiled.
    pub profile: Option<Profile>,
}

/// What a phase measured in its window: per request answered 200, or per signature of a batch phase.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    /// Measurement window in seconds.
    pub window_s: f64,
    /// Requests answered 200 (signatures) per second in the window.
    pub throughput: f64,
    /// Latency percentiles (of a request, or of a batch) in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Maximum.
    pub max_ms: f64,
    /// Server CPU (utime + stime) per 200 answer (signature) in the window, microseconds.
    pub server_cpu_us: f64,
    /// This client's CPU per 200 answer (signature) in the window, microseconds.
    pub client_cpu_us: f64,
    /// Server resident memory at the end of the window.
    pub server_rss_mib: f64,
    /// CPU used by other processes on the machine during the window, as a share of all cores.
    pub other_cpu_share: f64,
    /// Messages already recorded per key when the phase started (mean): the slashing history the
    /// checks run against.
    pub history_per_key: f64,
}

impl Measured {
    /// The figures of `ok` answers (signatures) in window `w`, from the window's latencies in
    /// microseconds, sorted.
    pub fn new(w: &WindowFigures, sorted_us: &[u32], ok: u64, history_per_key: f64) -> Measured {
        Measured {
            window_s: w.seconds,
            throughput: ok as f64 / w.seconds,
            p50_ms: percentile(sorted_us, 0.50),
            p99_ms: percentile(sorted_us, 0.99),
            max_ms: sorted_us.last().map_or(f64::NAN, |v| *v as f64 / 1000.0),
            server_cpu_us: us_per(w.server_cpu_s, ok),
            client_cpu_us: us_per(w.client_cpu_s, ok),
            server_rss_mib: w.server_rss_mib,
            other_cpu_share: w.other_cpu_share,
            history_per_key,
        }
    }
}

/// The CPU counters at the start of a measurement window.
pub struct Window {
    server: ProcSample,
    client: ProcSample,
    machine_s: f64,
    start: Instant,
}

/// What one measurement window saw.
#[derive(Debug, Clone, Copy)]
pub struct WindowFigures {
    /// Wall seconds of the window.
    pub seconds: f64,
    /// Server CPU (utime + stime) seconds in the window.
    pub server_cpu_s: f64,
    /// This client's CPU seconds in the window.
    pub client_cpu_s: f64,
    /// Server resident memory at the end of the window.
    pub server_rss_mib: f64,
    /// CPU used by other processes on the machine during the window, as a share of all cores.
    pub other_cpu_share: f64,
}

impl Window {
    /// Samples the server, this process and the machine now.
    pub fn open(server: &Server) -> anyhow::Result<Window> {
        Ok(Window {
            server: server.sample()?,
            client: sample("self")?,
            machine_s: machine_busy_s()?,
            start: Instant::now(),
        })
    }

    /// Samples them again: the figures of the window since [`Window::open`].
    pub fn close(self, server: &Server) -> anyhow::Result<WindowFigures> {
        let s1 = server.sample()?;
        let c1 = sample("self")?;
        let m1 = machine_busy_s()?;
        let seconds = (Instant::now() - self.start).as_secs_f64();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let server_cpu_s = s1.cpu_s - self.server.cpu_s;
        let client_cpu_s = c1.cpu_s - self.client.cpu_s;
        let other = (m1 - self.machine_s) - server_cpu_s - client_cpu_s;
        Ok(WindowFigures {
            seconds,
            server_cpu_s,
            client_cpu_s,
            server_rss_mib: s1.rss_mib,
            other_cpu_share: (other / (seconds * cores)).max(0.0),
        })
    }
}

/// `cpu_s` seconds per `n` events, in microseconds; NaN when there were none.
fn us_per(cpu_s: f64, n: u64) -> f64 {
    if n == 0 {
        f64::NAN
    } else {
        cpu_s * 1e6 / n as f64
    }
}

struct WorkerOut {
    latencies_us: Vec<u32>,
    requests: u64,
    ok: u64,
    checks: u64,
}

#[allow(clippy::too_many_arguments)]
async fn worker(
    addr: String,
    work: Arc<Workload>,
    kind: Kind,
    mode: Mode,
    w: usize,
    t0: Instant,
    window_start: Instant,
    end: Instant,
) -> anyhow::Result<WorkerOut> {
    let workers = mode.workers();
    let owned: Vec<usize> = (w..work.keys()).step_by(workers).collect();
    if owned.is_empty() {
        bail!("{} keys are fewer than {workers} workers", work.keys());
    }
    let mut conn = Conn::open(&addr).await?;
    let mut out = WorkerOut {
        latencies_us: Vec::with_capacity(4096),
        requests: 0,
        ok: 0,
        checks: 0,
    };
    let mut m: u64 = 0;
    loop {
        let scheduled = match mode {
            Mode::Closed(_) => Instant::now(),
            Mode::Rate { rate, .. } => {
                let slot = w as u64 + m * workers as u64;
                t0 + Duration::from_secs_f64(slot as f64 / rate)
            }
        };
        if scheduled >= end {
            break;
        }
        if matches!(mode, Mode::Rate { .. }) {
            tokio::time::sleep_until(scheduled).await;
        }
        let index = owned[(m as usize) % owned.len()];
        let (path, body) = work.next_request(kind, index);
        let status = match conn.post(path, body).await {
            Ok(s) => s,
            Err(_) => {
                conn = Conn::open(&addr).await?;
                0
            }
        };
        let done = Instant::now();
        if status == 200 || status == 412 {
            out.checks += 1;
        }
        if scheduled >= window_start {
            out.requests += 1;
            if status == 200 {
                out.ok += 1;
            }
            let us = (done - scheduled).as_micros();
            out.latencies_us.push(u32::try_from(us).unwrap_or(u32::MAX));
        }
        m += 1;
    }
    Ok(out)
}

/// The `p` quantile (0–1, nearest rank) of sorted microsecond latencies, in milliseconds; NaN when empty.
pub fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted.get(rank - 1).copied().unwrap_or(0) as f64 / 1000.0
}

/// Runs one phase against `server`: `warmup`, then `duration` measured; with `perf_out`, the server is
/// sampled by `perf` during the measured window.
pub async fn run_phase(
    server: &Server,
    work: &Arc<Workload>,
    kind: Kind,
    mode: Mode,
    (warmup, duration): (Duration, Duration),
    perf_out: Option<&std::path::Path>,
) -> anyhow::Result<PhaseResult> {
    let history_per_key = work.history_per_key();
    let t0 = Instant::now() + Duration::from_millis(50);
    let window_start = t0 + warmup;
    let end = window_start + duration;
    let handles: Vec<_> = (0..mode.workers())
        .map(|w| {
            tokio::spawn(worker(
                server.addr.clone(),
                work.clone(),
                kind,
                mode,
                w,
                t0,
                window_start,
                end,
            ))
        })
        .collect();
    tokio::time::sleep_until(window_start).await;
    let window = Window::open(server)?;
    let perf = match perf_out {
        Some(out) => Some(profile::start(server.pid, duration, out)?),
        None => None,
    };
    tokio::time::sleep_until(end).await;
    let w = window.close(server)?;
    let profile = match (perf, perf_out) {
        (Some(mut child), Some(out)) => {
            child.wait()?;
            Some(profile::analyse(out))
        }
        _ => None,
    };
    let mut latencies = Vec::new();
    let (mut requests, mut ok, mut checks) = (0, 0, 0);
    for h in handles {
        let out = h.await??;
        latencies.extend(out.latencies_us);
        requests += out.requests;
        ok += out.ok;
        checks += out.checks;
    }
    latencies.sort_unstable();
    Ok(PhaseResult {
        kind,
        mode,
        requests,
        non_ok: requests - ok,
        checks,
        measured: Measured::new(&w, &latencies, ok, history_per_key),
        profile,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(kind: Kind, index: usize, round: u64) -> serde_json::Value {
        serde_json::from_slice(&Workload::body(kind, index, round)).unwrap()
    }

    #[test]
    fn bodies_are_json_with_increasing_epochs() {
        let a = json(Kind::Attestation(Roots::Shared), 0, 3);
        assert_eq!(a["attestation"]["source"]["epoch"], "400003");
        assert_eq!(a["attestation"]["target"]["epoch"], "400004");
        assert_eq!(a["fork_info"]["genesis_validators_root"], GVR);
        let b = json(Kind::Block, 0, 2);
        assert_eq!(b["beacon_block"]["block_header"]["slot"], "12800064");
    }

    #[test]
    fn shared_bodies_repeat_across_keys_and_unique_ones_never_do() {
        let shared = Kind::Attestation(Roots::Shared);
        assert_eq!(
            Workload::body(shared, 0, 5),
            Workload::body(shared, 4095, 5)
        );
        let unique = Kind::Attestation(Roots::Unique);
        let heads: std::collections::HashSet<String> = (0..4096)
            .map(|i| {
                let a = json(unique, i, 5);
                // the same epochs as the shared workload: only the head differs
                assert_eq!(
                    a["attestation"]["target"],
                    json(shared, i, 5)["attestation"]["target"]
                );
                a["attestation"]["beacon_block_root"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(heads.len(), 4096);
        assert!(
            heads
                .iter()
                .all(|h| h.len() == 66 && *h != format!("0x{R1}"))
        );
    }

    #[test]
    fn percentiles() {
        let v: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert!(percentile(&[], 0.5).is_nan());
    }
}
