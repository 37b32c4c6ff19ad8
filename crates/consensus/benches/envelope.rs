//! The cost of a 10 MiB `EXECUTION_PAYLOAD_ENVELOPE` sign request (a self-built envelope carries
//! the whole execution payload): `prepare()` (JSON parsing, hex decoding, progressive
//! merkleization, signing root), and the `hash_tree_root` of the parsed envelope alone.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferrosigner_consensus::gloas::ExecutionPayloadEnvelope;
use ferrosigner_consensus::{Network, prepare};
use tree_hash::TreeHash;

/// Fixture 017 (self-built envelope on sepolia) with transactions added until its payload holds
/// `target` bytes of transactions (128 KiB each).
fn envelope_body(target: usize) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/signing-gloas/017-execution_payload_envelope-self-build.json");
    let text = std::fs::read_to_string(&path).expect("fixture");
    let fixture: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let mut request = fixture["request"].clone();
    request.as_object_mut().unwrap().remove("signingRoot");
    let txs = request["execution_payload_envelope"]["data"]["payload"]["transactions"]
        .as_array_mut()
        .unwrap();
    let tx = format!("0x02{}", "5a".repeat(128 * 1024 - 1));
    for _ in 0..target / (128 * 1024) {
        txs.push(serde_json::json!(tx));
    }
    serde_json::to_vec(&request).expect("serialises")
}

fn bench_envelope(c: &mut Criterion) {
    let network = Network::by_name("sepolia").expect("built in");
    // 10 MiB of JSON: about 5 MiB of transaction bytes, hex-encoded.
    let body = envelope_body(5 << 20);
    prepare(&body, &network).expect("the envelope signs");
    let mut group = c.benchmark_group("envelope");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("prepare 10 MiB EXECUTION_PAYLOAD_ENVELOPE", |b| {
        b.iter(|| prepare(black_box(&body), black_box(&network)))
    });
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let envelope: ExecutionPayloadEnvelope =
        serde_json::from_value(value["execution_payload_envelope"]["data"].clone()).unwrap();
    group.bench_function("hash_tree_root of the parsed envelope", |b| {
        b.iter(|| black_box(&envelope).tree_hash_root())
    });
    group.finish();
}

criterion_group!(benches, bench_envelope);
criterion_main!(benches);
