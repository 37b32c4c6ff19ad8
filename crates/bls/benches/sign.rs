//! Raw blst signing of a 32-byte signing root: the ceiling every server figure is compared with.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ferrosigner_bls::SecretKey;

fn bench_sign(c: &mut Criterion) {
    let sk = SecretKey::key_gen(&[0x42; 32]).expect("32 bytes of IKM are enough");
    let pk = sk.public_key();
    let root = [0x5a; 32];
    let sig = sk.sign(&root);
    c.bench_function("sign 32-byte root", |b| {
        b.iter(|| sk.sign(black_box(&root)))
    });
    c.bench_function("verify 32-byte root", |b| {
        b.iter(|| black_box(&sig).verify(black_box(&pk), black_box(&root)))
    });
}

criterion_group!(benches, bench_sign);
criterion_main!(benches);
