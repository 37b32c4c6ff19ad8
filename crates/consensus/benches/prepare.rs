//! `prepare()` (request parsing plus signing-root computation) on request bodies from the signing fixtures.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferrosigner_consensus::{Network, prepare};

/// The `request` object of a fixture in testdata/signing, as the bytes a client would send.
fn body(file: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/signing")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let fixture: serde_json::Value = serde_json::from_str(&text).expect("fixture is JSON");
    serde_json::to_vec(&fixture["request"]).expect("request serialises")
}

fn bench_prepare(c: &mut Criterion) {
    let network = Network::by_name("mainnet").expect("mainnet is built in");
    let mut group = c.benchmark_group("prepare");
    for (name, file) in [
        ("ATTESTATION", "048-attestation.json"),
        ("BLOCK_V2 electra header", "034-block_v2-electra.json"),
        (
            "AGGREGATE_AND_PROOF_V2 electra",
            "035-aggregate_and_proof_v2-electra.json",
        ),
    ] {
        let bytes = body(file);
        prepare(&bytes, &network).unwrap_or_else(|e| panic!("{file}: {e}"));
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| prepare(black_box(&bytes), black_box(&network)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_prepare);
criterion_main!(benches);
