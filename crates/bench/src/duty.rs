//! Step 5: the duties of many keys at the start of a slot, released at once.
//!
//! The signer loads N keys (insecure-KDF keystores, the memory phase's set when N matches). Every key
//! attests once an epoch, so a slot's attesters are the keys whose index is the slot's position in the
//! epoch modulo 32 (N/32 of them). At each slot start the client builds that slot's requests and
//! releases them at once over [`CONNS`] keep-alive connections, which take the next unsent request as
//! soon as their previous one is answered:
//!
//! - one ATTESTATION per attester, all with the same AttestationData (committee index 0 since Electra;
//!   the slot's head, source = previous epoch, target = this epoch), so slashing protection records
//!   every one of them;
//! - one AGGREGATION_SLOT (selection proof) per attester: a validator learns whether it aggregates only
//!   by signing it, and some clients (Prysm) sign it at the slot start;
//! - one SYNC_COMMITTEE_MESSAGE for the slot's head from each of [`sync_members`] keys.
//!
//! All three kinds sign one root per slot shared by every key that signs it. A burst's time runs from
//! its release to the last answer. Slots run back to back (each released [`GAP`] after the previous
//! burst's last answer, not 12 s apart): the bursts never overlap, and nothing between them loads the
//! signer. One slot before the measured ones warms the connections and is not reported.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::bail;
use bytes::Bytes;
use tokio::time::Instant;

use crate::http::Conn;
use crate::keysets::KeySet;
use crate::load::{BASE, FORK_INFO, GVR};
use crate::server::Server;

/// Keep-alive connections carrying a burst.
pub const CONNS: usize = 64;
/// Slots in an epoch (mainnet): every key attests in one of them.
pub const SLOTS_PER_EPOCH: usize = 32;
/// Members of the sync committee (mainnet): the most keys that send sync committee messages.
pub const SYNC_COMMITTEE_SIZE: usize = 512;
/// The attestation deadline of the Gloas fork, in milliseconds into the slot.
pub const ATTESTATION_DEADLINE_MS: f64 = 3000.0;
/// The pause between one burst's last answer and the next burst's release.
pub const GAP: Duration = Duration::from_millis(100);

/// Keys among `keys` that send a sync committee message every slot: one in 32, at most the committee.
pub fn sync_members(keys: usize) -> usize {
    keys.div_ceil(SLOTS_PER_EPOCH).min(SYNC_COMMITTEE_SIZE)
}

/// One slot's burst, measured.
#[derive(Debug, Clone, Copy)]
pub struct Burst {
    /// The slot's position in the run (0 is the warm-up slot).
    pub index: u64,
    /// ATTESTATION requests.
    pub attestations: usize,
    /// AGGREGATION_SLOT requests.
    pub selection_proofs: usize,
    /// SYNC_COMMITTEE_MESSAGE requests.
    pub sync_messages: usize,
    /// Answers other than 200 (or transport errors).
    pub non_ok: u64,
    /// From the release of the burst to its last answer, in seconds.
    pub seconds: f64,
    /// Server CPU (utime + stime) during the burst, in seconds.
    pub server_cpu_s: f64,
}

impl Burst {
    /// Requests (signatures asked for) in the burst.
    pub fn size(&self) -> usize {
        self.attestations + self.selection_proofs + self.sync_messages
    }
}

/// The outcome of the duty phase.
#[derive(Debug, Clone)]
pub struct DutyResult {
    /// Keys the signer loaded.
    pub keys: usize,
    /// Connections carrying each burst.
    pub conns: usize,
    /// Keys sending a sync committee message each slot.
    pub sync_members: usize,
    /// The measured bursts, in order.
    pub bursts: Vec<Burst>,
}

impl DutyResult {
    /// Burst times in seconds, sorted.
    fn sorted_seconds(&self) -> Vec<f64> {
        let mut v: Vec<f64> = self.bursts.iter().map(|b| b.seconds).collect();
        v.sort_by(f64::total_cmp);
        v
    }

    /// The median burst time in seconds (the lower middle of an even count); NaN without bursts.
    pub fn p50_s(&self) -> f64 {
        let v = self.sorted_seconds();
        v.get(v.len().saturating_sub(1) / 2)
            .copied()
            .unwrap_or(f64::NAN)
    }

    /// The longest burst in seconds; NaN without bursts.
    pub fn max_s(&self) -> f64 {
        self.sorted_seconds().last().copied().unwrap_or(f64::NAN)
    }

    /// Requests in the measured bursts.
    pub fn requests(&self) -> usize {
        self.bursts.iter().map(Burst::size).sum()
    }

    /// Non-200 answers in the measured bursts.
    pub fn non_ok(&self) -> u64 {
        self.bursts.iter().map(|b| b.non_ok).sum()
    }

    /// Server CPU per signed request over the measured bursts, in microseconds.
    pub fn server_cpu_us(&self) -> f64 {
        let ok = self.requests() as f64 - self.non_ok() as f64;
        let cpu: f64 = self.bursts.iter().map(|b| b.server_cpu_s).sum();
        if ok > 0.0 { cpu * 1e6 / ok } else { f64::NAN }
    }

    /// The size of the largest measured burst (they differ by a few attesters when N is not a
    /// multiple of 32).
    pub fn max_size(&self) -> usize {
        self.bursts.iter().map(Burst::size).max().unwrap_or(0)
    }
}

/// The slot's head block root (64 hex digits, no `0x`): distinct for every slot.
fn head_root(slot: u64) -> String {
    format!("{slot:016x}{}", "d".repeat(48))
}

/// The requests of the slot at position `index` of the run, for `pubkeys` (`0x` hex): attestations,
/// selection proofs and sync committee messages, interleaved.
pub fn slot_requests(pubkeys: &[String], index: u64) -> (Vec<(String, Bytes)>, [usize; 3]) {
    let slot = BASE * SLOTS_PER_EPOCH as u64 + index;
    let epoch = slot / SLOTS_PER_EPOCH as u64;
    let position = (slot % SLOTS_PER_EPOCH as u64) as usize;
    let head = head_root(slot);
    let attestation = Bytes::from(format!(
        r#"{{"type":"ATTESTATION",{FORK_INFO}{GVR}"}},"attestation":{{"slot":"{slot}","index":"0","beacon_block_root":"0x{head}","source":{{"epoch":"{source}","root":"0x{source:064x}"}},"target":{{"epoch":"{epoch}","root":"0x{epoch:064x}"}}}}}}"#,
        source = epoch - 1,
    ));
    let selection = Bytes::from(format!(
        r#"{{"type":"AGGREGATION_SLOT",{FORK_INFO}{GVR}"}},"aggregation_slot":{{"slot":"{slot}"}}}}"#
    ));
    let sync = Bytes::from(format!(
        r#"{{"type":"SYNC_COMMITTEE_MESSAGE",{FORK_INFO}{GVR}"}},"sync_committee_message":{{"beacon_block_root":"0x{head}","slot":"{slot}"}}}}"#
    ));
    let path = |pk: &String| format!("/api/v1/eth2/sign/{pk}");
    let attesters: Vec<&String> = pubkeys
        .iter()
        .skip(position)
        .step_by(SLOTS_PER_EPOCH)
        .collect();
    let members = &pubkeys[..sync_members(pubkeys.len())];
    let mut out = Vec::with_capacity(attesters.len() * 2 + members.len());
    for i in 0..attesters.len().max(members.len()) {
        if let Some(pk) = attesters.get(i) {
            out.push((path(pk), attestation.clone()));
            out.push((path(pk), selection.clone()));
        }
        if let Some(pk) = members.get(i) {
            out.push((path(pk), sync.clone()));
        }
    }
    (out, [attesters.len(), attesters.len(), members.len()])
}

/// Settings of the phase.
pub struct Plan<'a> {
    /// The signer binary.
    pub signer: &'a std::path::Path,
    /// The server's data directory (created).
    pub data_dir: &'a std::path::Path,
    /// The keys the server loads.
    pub keys: &'a KeySet,
    /// How many keys the set holds.
    pub n: usize,
    /// Measured slots.
    pub slots: usize,
}

/// One connection's share of a burst: its connection back, its non-200 answers, and when it read its
/// last answer.
type ConnOut = (Conn, u64, Option<Instant>);

async fn drain(
    addr: String,
    mut conn: Conn,
    requests: Arc<Vec<(String, Bytes)>>,
    next: Arc<AtomicUsize>,
) -> anyhow::Result<ConnOut> {
    let (mut non_ok, mut last) = (0, None);
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some((path, body)) = requests.get(i) else {
            break;
        };
        let status = match conn.post(path, body.clone()).await {
            Ok(s) => s,
            Err(_) => {
                conn = Conn::open(&addr).await?;
                0
            }
        };
        non_ok += u64::from(status != 200);
        last = Some(Instant::now());
    }
    Ok((conn, non_ok, last))
}

/// Releases one slot's requests at once over `conns` and waits for every answer.
async fn burst(
    server: &Server,
    conns: &mut Vec<Conn>,
    pubkeys: &[String],
    index: u64,
) -> anyhow::Result<Burst> {
    let (requests, [attestations, selection_proofs, sync_messages]) = slot_requests(pubkeys, index);
    let requests = Arc::new(requests);
    let next = Arc::new(AtomicUsize::new(0));
    let cpu0 = server.sample()?;
    let released = Instant::now();
    let handles: Vec<_> = conns
        .drain(..)
        .map(|conn| {
            tokio::spawn(drain(
                server.addr.clone(),
                conn,
                requests.clone(),
                next.clone(),
            ))
        })
        .collect();
    let (mut non_ok, mut last) = (0, released);
    for h in handles {
        let (conn, bad, done) = h.await??;
        conns.push(conn);
        non_ok += bad;
        last = last.max(done.unwrap_or(released));
    }
    let cpu1 = server.sample()?;
    Ok(Burst {
        index,
        attestations,
        selection_proofs,
        sync_messages,
        non_ok,
        seconds: (last - released).as_secs_f64(),
        server_cpu_s: cpu1.cpu_s - cpu0.cpu_s,
    })
}

/// Runs the phase: start the signer with the keys, one warm-up slot, `slots` measured slots, stop.
pub async fn run(plan: &Plan<'_>) -> anyhow::Result<DutyResult> {
    let mut server = Server::spawn(plan.signer, plan.data_dir, &crate::base_args(plan.keys))?;
    server
        .wait_healthy(Duration::from_secs(600), Duration::from_millis(20))
        .await?;
    let pubkeys = crate::public_keys(&server.addr).await?;
    if pubkeys.len() != plan.n {
        bail!(
            "the signer loaded {} keys, {} expected",
            pubkeys.len(),
            plan.n
        );
    }
    let mut conns = Vec::with_capacity(CONNS);
    for _ in 0..CONNS {
        conns.push(Conn::open(&server.addr).await?);
    }
    let mut bursts = Vec::with_capacity(plan.slots);
    for index in 0..=plan.slots as u64 {
        let b = burst(&server, &mut conns, &pubkeys, index).await?;
        eprintln!(
            "duty: slot {index}{}: {} requests in {:.1} ms, {} non-200",
            if index == 0 { " (warm-up)" } else { "" },
            b.size(),
            b.seconds * 1e3,
            b.non_ok
        );
        if index > 0 {
            bursts.push(b);
        }
        tokio::time::sleep(GAP).await;
    }
    drop(conns);
    server.stop()?;
    Ok(DutyResult {
        keys: pubkeys.len(),
        conns: CONNS,
        sync_members: sync_members(pubkeys.len()),
        bursts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("0x{i:096x}")).collect()
    }

    fn body(b: &Bytes) -> serde_json::Value {
        serde_json::from_slice(b).unwrap()
    }

    #[test]
    fn a_slot_holds_its_attesters_and_the_sync_committee() {
        let pubkeys = keys(10_000);
        let (requests, counts) = slot_requests(&pubkeys, 3);
        // 10,000 keys over 32 slots: positions 0..16 have 313 attesters, the others 312
        assert_eq!(counts, [313, 313, 313]);
        assert_eq!(requests.len(), 939);
        let mut kinds = std::collections::HashMap::<String, Vec<&String>>::new();
        let mut bodies =
            std::collections::HashMap::<String, std::collections::HashSet<&Bytes>>::new();
        for (path, b) in &requests {
            let kind = body(b)["type"].as_str().unwrap().to_owned();
            kinds.entry(kind.clone()).or_default().push(path);
            bodies.entry(kind).or_default().insert(b);
        }
        // every request of a kind carries byte for byte the same body: one signing root per kind
        assert_eq!(bodies.len(), 3);
        assert!(bodies.values().all(|set| set.len() == 1));
        let attesting = &kinds["ATTESTATION"];
        assert_eq!(attesting, &kinds["AGGREGATION_SLOT"]);
        let expected: Vec<String> = (0..313)
            .map(|k| format!("/api/v1/eth2/sign/{}", pubkeys[3 + 32 * k]))
            .collect();
        assert_eq!(attesting.len(), expected.len());
        assert!(attesting.iter().zip(&expected).all(|(a, e)| *a == e));
        let sync = &kinds["SYNC_COMMITTEE_MESSAGE"];
        assert_eq!(sync.len(), 313);
        assert_eq!(*sync[0], format!("/api/v1/eth2/sign/{}", pubkeys[0]));
        assert_eq!(sync_members(100_000), SYNC_COMMITTEE_SIZE);
    }

    #[test]
    fn attestations_of_later_slots_move_forward() {
        let pubkeys = keys(64);
        let data = |index| {
            let (requests, _) = slot_requests(&pubkeys, index);
            body(&requests[0].1)["attestation"].clone()
        };
        let first = data(0);
        assert_eq!(first["slot"], "12800000");
        assert_eq!(first["index"], "0");
        assert_eq!(first["source"]["epoch"], "399999");
        assert_eq!(first["target"]["epoch"], "400000");
        assert_ne!(data(1)["beacon_block_root"], first["beacon_block_root"]);
        // a key attests again one epoch later, with a higher target
        assert_eq!(data(32)["target"]["epoch"], "400001");
        let (requests, _) = slot_requests(&pubkeys, 32);
        assert_eq!(requests[0].0, format!("/api/v1/eth2/sign/{}", pubkeys[0]));
    }
}
