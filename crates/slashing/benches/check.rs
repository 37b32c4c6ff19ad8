//! The slashing check-and-record of an attestation and a block on a SQLite file (WAL, `synchronous=FULL`),
//! one at a time and 64 at once (what the group commit is for).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferrosigner_slashing::SlashingDb;

const GVR: [u8; 32] = [0x4b; 32];

fn pubkey(i: u64) -> [u8; 48] {
    let mut pk = [0xa0; 48];
    pk[..8].copy_from_slice(&i.to_le_bytes());
    pk
}

fn bench_check(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("slashing.sqlite");
    let db = rt
        .block_on(SlashingDb::open(path.to_str().expect("utf-8 path")))
        .expect("open SQLite");
    rt.block_on(db.init_genesis_validators_root(GVR))
        .expect("gvr");
    let next = AtomicU64::new(1);

    let mut group = c.benchmark_group("sqlite");
    group.bench_function("check_attestation", |b| {
        b.iter(|| {
            let n = next.fetch_add(1, Ordering::Relaxed);
            rt.block_on(db.check_attestation(GVR, &pubkey(0), n, n + 1, black_box([1; 32])))
                .expect("safe")
        })
    });
    group.bench_function("check_block", |b| {
        b.iter(|| {
            let n = next.fetch_add(1, Ordering::Relaxed);
            rt.block_on(db.check_block(GVR, &pubkey(1), n, black_box([2; 32])))
                .expect("safe")
        })
    });
    group.throughput(Throughput::Elements(64));
    group.bench_function("check_attestation x64 concurrent keys", |b| {
        b.iter(|| {
            let n = next.fetch_add(1, Ordering::Relaxed);
            rt.block_on(async {
                let checks = (0..64u64).map(|k| {
                    let db = db.clone();
                    tokio::spawn(async move {
                        db.check_attestation(GVR, &pubkey(100 + k), n, n + 1, [3; 32])
                            .await
                    })
                });
                for check in futures_join(checks).await {
                    check.expect("safe");
                }
            })
        })
    });
    group.finish();
}

async fn futures_join<T>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<Result<T, ferrosigner_slashing::Error>>>,
) -> Vec<Result<T, ferrosigner_slashing::Error>> {
    let handles: Vec<_> = handles.collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

criterion_group!(benches, bench_check);
criterion_main!(benches);
