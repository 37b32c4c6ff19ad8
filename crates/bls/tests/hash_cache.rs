//! Signing through a [`HashCache`] is byte for byte the same as signing directly, whatever the cache
//! holds, evicts, or is asked by other threads at the same time.

use std::sync::{Arc, Barrier};

use ferrosigner_bls::{HashCache, HashedRoot, SecretKey};
use proptest::prelude::*;

fn valid_key() -> impl Strategy<Value = SecretKey> {
    any::<[u8; 32]>().prop_filter_map("not a valid scalar", |b| SecretKey::from_bytes(&b).ok())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn cached_signing_equals_direct_signing(key in valid_key(), root in any::<[u8; 32]>()) {
        let cache = HashCache::with_capacity(64);
        let direct = key.sign(&root);
        prop_assert!(!cache.contains(&root));
        prop_assert_eq!(key.sign_with(&root, &cache), direct, "miss");
        prop_assert!(cache.contains(&root));
        prop_assert_eq!(cache.len(), 1);
        prop_assert_eq!(key.sign_with(&root, &cache), direct, "hit");
        prop_assert_eq!(cache.len(), 1);
        prop_assert_eq!(cache.hashes(), 1);
        prop_assert_eq!(key.sign_hashed(&HashedRoot::new(&root)), direct, "floor");
        prop_assert!(direct.verify(&key.public_key(), &root));
    }
}

#[test]
fn threads_signing_overlapping_roots_through_a_small_cache() {
    // 16 entries (one per shard) for 48 roots, 12 of them in one shard: constant eviction.
    let cache = Arc::new(HashCache::with_capacity(16));
    let roots: Arc<Vec<[u8; 32]>> = Arc::new(
        (0..48u8)
            .map(|i| {
                let mut root = [i; 32];
                if i % 4 == 0 {
                    root[..2].copy_from_slice(&[0, 0]); // all in shard 0
                }
                root
            })
            .collect(),
    );
    let threads: Vec<_> = (0..4u8)
        .map(|t| {
            let (cache, roots) = (cache.clone(), roots.clone());
            std::thread::spawn(move || {
                let key = SecretKey::from_bytes(&[t + 1; 32]).expect("key");
                // Each thread walks the roots from its own starting point, twice.
                for i in 0..2 * roots.len() {
                    let root = &roots[(i + 12 * usize::from(t)) % roots.len()];
                    assert_eq!(
                        key.sign_with(root, &cache),
                        key.sign(root),
                        "thread {t}, root {root:02x?}"
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a signing thread failed");
    }
    assert!(cache.len() <= cache.capacity());
    assert_eq!(cache.capacity(), 16);
}

#[test]
fn a_root_many_threads_miss_at_once_is_hashed_once() {
    const THREADS: u8 = 4;
    const ROOTS: u8 = 8;
    let cache = Arc::new(HashCache::default());
    let barrier = Arc::new(Barrier::new(THREADS.into()));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (cache, barrier) = (cache.clone(), barrier.clone());
            std::thread::spawn(move || {
                let key = SecretKey::from_bytes(&[t + 0x31; 32]).expect("key");
                for r in 0..ROOTS {
                    let root = [r + 0x80; 32];
                    let direct = key.sign(&root);
                    // All threads ask for the new root at the same moment.
                    barrier.wait();
                    assert_eq!(key.sign_with(&root, &cache), direct, "thread {t}, root {r}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a signing thread failed");
    }
    assert_eq!(cache.hashes(), u64::from(ROOTS));
    assert_eq!(cache.len(), usize::from(ROOTS));
}
