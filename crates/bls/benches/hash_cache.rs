//! Signing a 32-byte root through a [`HashCache`], against raw signing: a miss (hash, store, sign), a
//! hit (lookup, sign) and the floor (sign from a point already at hand: scalar multiplication and
//! compression only).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ferrosigner_bls::{HashCache, HashedRoot, SecretKey};

fn bench_hash_cache(c: &mut Criterion) {
    let sk = SecretKey::key_gen(&[0x42; 32]).expect("32 bytes of IKM are enough");
    let root = [0x5a; 32];
    let cache = HashCache::default();
    let hashed = HashedRoot::new(&root);
    c.bench_function("raw sign", |b| b.iter(|| sk.sign(black_box(&root))));
    let mut n = 0u64;
    c.bench_function("cache miss", |b| {
        b.iter(|| {
            // A root never seen before (first-in-first-out eviction never brings one back).
            n += 1;
            let mut fresh = [0x77; 32];
            fresh[..8].copy_from_slice(&n.to_le_bytes());
            sk.sign_with(black_box(&fresh), &cache)
        })
    });
    let _ = sk.sign_with(&root, &cache);
    c.bench_function("cache hit", |b| {
        b.iter(|| sk.sign_with(black_box(&root), &cache))
    });
    c.bench_function("floor (sign a hashed root)", |b| {
        b.iter(|| sk.sign_hashed(black_box(&hashed)))
    });
}

criterion_group!(benches, bench_hash_cache);
criterion_main!(benches);
