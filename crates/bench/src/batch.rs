//! The batch phase: `POST /api/v1/eth2/sign` (docs/batch-signing.md) against a signer started with
//! `--enable-batch-signing`, closed-loop over a few keep-alive connections.
//!
//! Every batch names all the workload's keys and carries one ATTESTATION signing request: the shared
//! workload's AttestationData, one round past the highest source/target any key has signed, so
//! slashing protection records a row for every key in every batch (in one transaction per batch).
//! Concurrent batches name the same keys with different epochs; neither vote surrounds the other, so
//! their order does not matter. Every answer must be a JSON array with one element per identifier, in
//! request order, each a signature; anything else counts as errors (one per identifier not signed).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;
use tokio::time::Instant;

use crate::http::Conn;
use crate::load::{Measured, Window, Workload};
use crate::server::Server;

/// The batch route.
pub const PATH: &str = "/api/v1/eth2/sign";

/// The outcome of one batch phase.
#[derive(Debug, Clone)]
pub struct BatchResult {
    /// Keep-alive connections, each with one batch in flight.
    pub conns: usize,
    /// Identifiers named by every batch.
    pub identifiers: usize,
    /// Batches started in the measurement window.
    pub batches: u64,
    /// Of those, answers other than 200 (or transport errors).
    pub non_ok_batches: u64,
    /// Signatures returned by the window's batches.
    pub signatures: u64,
    /// Identifiers of the window's batches without a signature: error elements, missing elements, and
    /// every identifier of a batch not answered 200 with a well-formed array.
    pub errors: u64,
    /// Signatures per second, latency of a batch and CPU per signature.
    pub measured: Measured,
    /// The first problem seen in an answer, if any (for the log).
    pub first_problem: Option<String>,
}

/// How one batch answer went: signatures, identifiers left unsigned, and what was wrong, if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// Elements carrying a signature for the identifier asked for at their position.
    pub signed: u64,
    /// Identifiers not signed.
    pub errors: u64,
    /// The first problem, if any.
    pub problem: Option<String>,
}

/// Checks one answer to a batch naming `expected` identifiers (in that order, lower-case `0x` hex).
pub fn check_answer(status: u16, body: &[u8], expected: &[&str]) -> Checked {
    let all_failed = |problem: String| Checked {
        signed: 0,
        errors: expected.len() as u64,
        problem: Some(problem),
    };
    let text = || String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    if status != 200 {
        return all_failed(format!("HTTP {status}: {}", text()));
    }
    let elements = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(elements)) => elements,
        Ok(_) => return all_failed(format!("the answer is not a JSON array: {}", text())),
        Err(e) => return all_failed(format!("the answer is not JSON ({e}): {}", text())),
    };
    if elements.len() != expected.len() {
        return all_failed(format!(
            "{} elements for {} identifiers",
            elements.len(),
            expected.len()
        ));
    }
    let mut checked = Checked {
        signed: 0,
        errors: 0,
        problem: None,
    };
    for (element, id) in elements.iter().zip(expected) {
        let ok = element["identifier"].as_str() == Some(*id)
            && element["signature"]
                .as_str()
                .is_some_and(|s| s.len() == 194)
            && element.get("error").is_none();
        if ok {
            checked.signed += 1;
        } else {
            checked.errors += 1;
            checked
                .problem
                .get_or_insert_with(|| format!("element for {id}: {element}"));
        }
    }
    checked
}

struct WorkerOut {
    latencies_us: Vec<u32>,
    batches: u64,
    non_ok: u64,
    signed: u64,
    errors: u64,
    problem: Option<String>,
}

async fn worker(
    addr: String,
    work: Arc<Workload>,
    pubkeys: Arc<Vec<String>>,
    window_start: Instant,
    end: Instant,
) -> anyhow::Result<WorkerOut> {
    let expected: Vec<&str> = pubkeys.iter().map(String::as_str).collect();
    let mut conn = Conn::open(&addr).await?;
    let mut out = WorkerOut {
        latencies_us: Vec::with_capacity(1024),
        batches: 0,
        non_ok: 0,
        signed: 0,
        errors: 0,
        problem: None,
    };
    loop {
        let sent = Instant::now();
        if sent >= end {
            break;
        }
        let (status, body) = match conn.exchange(PATH, work.next_batch()).await {
            Ok(answer) => answer,
            Err(e) => {
                conn = Conn::open(&addr).await?;
                (0, bytes::Bytes::from(format!("{e:#}")))
            }
        };
        let done = Instant::now();
        let checked = check_answer(status, &body, &expected);
        if out.problem.is_none() {
            out.problem = checked.problem;
        }
        if sent >= window_start {
            out.batches += 1;
            if status != 200 {
                out.non_ok += 1;
            }
            out.signed += checked.signed;
            out.errors += checked.errors;
            let us = (done - sent).as_micros();
            out.latencies_us.push(u32::try_from(us).unwrap_or(u32::MAX));
        }
    }
    Ok(out)
}

/// Runs one batch phase against `server` (started with `--enable-batch-signing`): `conns` connections,
/// each sending its next batch of all `pubkeys` as soon as the previous one is answered; `warmup`,
/// then `duration` measured.
pub async fn run_phase(
    server: &Server,
    work: &Arc<Workload>,
    pubkeys: &Arc<Vec<String>>,
    conns: usize,
    (warmup, duration): (Duration, Duration),
) -> anyhow::Result<BatchResult> {
    let history_per_key = work.history_per_key();
    let window_start = Instant::now() + warmup;
    let end = window_start + duration;
    let handles: Vec<_> = (0..conns)
        .map(|_| {
            tokio::spawn(worker(
                server.addr.clone(),
                work.clone(),
                pubkeys.clone(),
                window_start,
                end,
            ))
        })
        .collect();
    tokio::time::sleep_until(window_start).await;
    let window = Window::open(server)?;
    tokio::time::sleep_until(end).await;
    let w = window.close(server)?;
    let mut latencies = Vec::new();
    let (mut batches, mut non_ok, mut signed, mut errors, mut problem) = (0, 0, 0, 0, None);
    for h in handles {
        let out = h.await.context("a batch worker panicked")??;
        latencies.extend(out.latencies_us);
        batches += out.batches;
        non_ok += out.non_ok;
        signed += out.signed;
        errors += out.errors;
        problem = problem.or(out.problem);
    }
    latencies.sort_unstable();
    Ok(BatchResult {
        conns,
        identifiers: pubkeys.len(),
        batches,
        non_ok_batches: non_ok,
        signatures: signed,
        errors,
        measured: Measured::new(&w, &latencies, signed, history_per_key),
        first_problem: problem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0xaa";
    const B: &str = "0xbb";

    fn sig() -> String {
        format!("0x{}", "ab".repeat(96))
    }

    #[test]
    fn a_full_answer_is_all_signatures() {
        let body = serde_json::json!([
            {"identifier": A, "signature": sig()},
            {"identifier": B, "signature": sig()},
        ])
        .to_string();
        let c = check_answer(200, body.as_bytes(), &[A, B]);
        assert_eq!((c.signed, c.errors, c.problem), (2, 0, None));
    }

    #[test]
    fn error_elements_missing_elements_and_bad_answers_count_as_errors() {
        let body = serde_json::json!([
            {"identifier": A, "signature": sig()},
            {"identifier": B, "error": {"code": 412, "message": "refused"}},
        ])
        .to_string();
        let c = check_answer(200, body.as_bytes(), &[A, B]);
        assert_eq!((c.signed, c.errors), (1, 1));
        assert!(c.problem.unwrap().contains("412"));

        let short = serde_json::json!([{"identifier": A, "signature": sig()}]).to_string();
        assert_eq!(check_answer(200, short.as_bytes(), &[A, B]).errors, 2);
        // out of order: neither element answers the identifier at its position
        let swapped = serde_json::json!([
            {"identifier": B, "signature": sig()},
            {"identifier": A, "signature": sig()},
        ])
        .to_string();
        assert_eq!(check_answer(200, swapped.as_bytes(), &[A, B]).errors, 2);
        assert_eq!(check_answer(404, b"{\"error\":\"off\"}", &[A, B]).errors, 2);
        assert_eq!(check_answer(200, b"not json", &[A, B]).errors, 2);
        assert_eq!(check_answer(200, b"{}", &[A, B]).errors, 2);
    }

    #[test]
    fn batch_bodies_name_every_key_and_move_every_key_forward() {
        let keys = vec![A.to_owned(), B.to_owned()];
        let work = Workload::new(&keys);
        // a single request for A first: the next batch must be above it
        let _ = work.next_request(crate::load::Kind::Block, 0);
        let _ = work.next_request(crate::load::Kind::Block, 0);
        let first: Value = serde_json::from_slice(&work.next_batch()).unwrap();
        assert_eq!(first["identifiers"], serde_json::json!([A, B]));
        let attestation = &first["signing_request"]["attestation"];
        assert_eq!(first["signing_request"]["type"], "ATTESTATION");
        assert_eq!(attestation["source"]["epoch"], "400002");
        assert_eq!(attestation["target"]["epoch"], "400003");
        let second: Value = serde_json::from_slice(&work.next_batch()).unwrap();
        assert_eq!(
            second["signing_request"]["attestation"]["target"]["epoch"],
            "400004"
        );
        assert_eq!(work.history_per_key(), 4.0);
    }
}
