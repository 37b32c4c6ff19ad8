//! Signing roots hashed to G2 once, then signed by any number of keys.
//!
//! A signature is `sk · H(root)`: hash-to-G2 of the signing root (about half the cost) followed by a
//! constant-time scalar multiplication with the secret key. `H(root)` depends only on the root, which is
//! public, and since Electra many validators sign the same root in the same slot (attestation data,
//! selection proofs, sync committee block roots). [`HashCache`] keeps the hashed points of recently
//! seen roots so that each distinct root is hashed about once.
//!
//! The cache holds only public data: whole 32-byte signing roots and their [`HashedRoot`] points. No
//! secret ever enters it; keys are used only in [`SecretKey::sign_hashed`], outside any lock.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use crate::{SecretKey, Signature};

/// Entries a [`HashCache::default`] holds: a few slots' worth of distinct signing roots.
pub const HASH_CACHE_CAPACITY: usize = 1024;

/// Independent shards, each behind its own lock, so that signing threads rarely meet on one lock.
const SHARDS: usize = 16;

/// A 32-byte signing root hashed to G2 with the POP ciphersuite ([`crate::DST`], no augmentation).
///
/// Public data (a function of the public root only); [`SecretKey::sign_hashed`] turns it into a
/// signature. `Debug` prints only a placeholder (the point is 288 bytes of projective coordinates).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HashedRoot(blst::blst_p2);

impl HashedRoot {
    /// Hashes `root` to G2 (the expensive half of a signature; no key involved).
    pub fn new(root: &[u8; 32]) -> Self {
        Self(raw::hash_to_g2(root))
    }
}

impl fmt::Debug for HashedRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HashedRoot(<G2 point>)")
    }
}

impl SecretKey {
    /// Signs an already hashed root: the scalar multiplication and compression only.
    ///
    /// `key.sign_hashed(&HashedRoot::new(root))` is byte for byte `key.sign(root)`. This is also the
    /// floor for benchmarks: what a signature costs when the hash is free.
    pub fn sign_hashed(&self, hashed: &HashedRoot) -> Signature {
        Signature(raw::sign(&self.0, &hashed.0))
    }

    /// Signs `root` through `cache`: byte for byte [`SecretKey::sign`], hashing `root` only when the
    /// cache does not hold it already.
    pub fn sign_with(&self, root: &[u8; 32], cache: &HashCache) -> Signature {
        self.sign_hashed(&cache.hashed(root))
    }
}

/// A bounded cache of [`HashedRoot`]s keyed by the whole 32-byte signing root, shared by signing
/// threads.
///
/// - Capacity: fixed at creation ([`HASH_CACHE_CAPACITY`] by default), split evenly over 16 shards. An
///   entry is 320 bytes (32-byte root, 288-byte point), so the default cache holds at most 320 KiB,
///   allocated up front.
/// - Sharding: a root's shard is chosen by its first two bytes (signing roots are hashes). Each shard
///   has its own mutex, held only to compare roots and copy a point, never while hashing or signing.
/// - Eviction: first in, first out per shard. A root that misses is hashed outside the lock and then
///   stored, replacing the oldest entry of its shard once the shard is full.
/// - Concurrent misses: a thread that misses on a root another thread is hashing at that moment
///   waits for that hash instead of computing it again (the burst of one root signed by many keys at
///   the start of a slot is hashed once, not once per thread).
///
/// Correctness never depends on what is cached: a point is returned only for the root it was stored
/// with (all 32 bytes compared), and a root found neither stored nor being hashed is hashed afresh.
/// Roots are public, so it stores no secret; `Debug` shows only sizes and counts.
pub struct HashCache {
    shards: Box<[ShardLock]>,
    per_shard: usize,
    hashes: AtomicU64,
}

/// One shard behind its lock; `hashed` is signalled whenever a root leaves `hashing`.
struct ShardLock {
    shard: Mutex<Shard>,
    hashed: Condvar,
}

/// One shard: `roots[i]` hashes to `points[i]`; `next` is the slot the next insertion replaces once
/// the shard is full. `hashing` holds the roots threads are hashing now (at most one a thread).
struct Shard {
    roots: Vec<[u8; 32]>,
    points: Vec<HashedRoot>,
    next: usize,
    hashing: Vec<[u8; 32]>,
}

impl Shard {
    fn get(&self, root: &[u8; 32]) -> Option<HashedRoot> {
        let i = self.roots.iter().position(|r| r == root)?;
        Some(self.points[i])
    }

    fn insert(&mut self, root: &[u8; 32], point: HashedRoot, capacity: usize) {
        if self.get(root).is_some() {
            return;
        }
        if self.roots.len() < capacity {
            self.roots.push(*root);
            self.points.push(point);
        } else {
            self.roots[self.next] = *root;
            self.points[self.next] = point;
            self.next = (self.next + 1) % capacity;
        }
    }
}

impl HashCache {
    /// A cache of at least `capacity` entries (rounded up to a multiple of 16, at least 16).
    pub fn with_capacity(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS).max(1);
        let shards = (0..SHARDS)
            .map(|_| ShardLock {
                shard: Mutex::new(Shard {
                    roots: Vec::with_capacity(per_shard),
                    points: Vec::with_capacity(per_shard),
                    next: 0,
                    hashing: Vec::new(),
                }),
                hashed: Condvar::new(),
            })
            .collect();
        Self {
            shards,
            per_shard,
            hashes: AtomicU64::new(0),
        }
    }

    /// How many entries the cache holds at the most.
    pub fn capacity(&self) -> usize {
        self.per_shard * SHARDS
    }

    /// How many entries the cache holds now.
    pub fn len(&self) -> usize {
        (0..SHARDS).map(|i| self.lock(i).roots.len()).sum()
    }

    /// Whether the cache holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `root`'s hashed point is cached now (a later call may find it evicted).
    pub fn contains(&self, root: &[u8; 32]) -> bool {
        self.lock(shard_of(root)).get(root).is_some()
    }

    /// How many times this cache has hashed a root (its misses) since it was made.
    pub fn hashes(&self) -> u64 {
        self.hashes.load(Ordering::Relaxed)
    }

    /// `root` hashed to G2: from the cache, from the thread hashing it now, or hashed now and stored.
    pub fn hashed(&self, root: &[u8; 32]) -> HashedRoot {
        let index = shard_of(root);
        let mut shard = self.lock(index);
        loop {
            if let Some(point) = shard.get(root) {
                return point;
            }
            if !shard.hashing.contains(root) {
                break;
            }
            // Another thread is hashing this root: wait until it is done (stored, or given up), then
            // look again. Spurious wake-ups and wake-ups for other roots only loop.
            shard = self.shards[index]
                .hashed
                .wait(shard)
                .unwrap_or_else(PoisonError::into_inner);
        }
        shard.hashing.push(*root);
        drop(shard);
        let mut hashing = Hashing {
            cache: self,
            index,
            root,
            point: None,
        };
        self.hashes.fetch_add(1, Ordering::Relaxed);
        let point = HashedRoot::new(root);
        hashing.point = Some(point);
        point
        // `hashing` drops here: stores the point and wakes the waiters.
    }

    /// A shard's lock. A panic while it was held (there is none to expect: the critical sections only
    /// compare and copy) leaves every entry whole, so a poisoned lock is used as it is.
    fn lock(&self, index: usize) -> MutexGuard<'_, Shard> {
        self.shards[index]
            .shard
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A root one thread is hashing. Dropping it (also on unwinding, so that no waiter waits forever)
/// stores the point if there is one, takes the root off the shard's `hashing` list and wakes the
/// threads waiting on the shard.
struct Hashing<'a> {
    cache: &'a HashCache,
    index: usize,
    root: &'a [u8; 32],
    point: Option<HashedRoot>,
}

impl Drop for Hashing<'_> {
    fn drop(&mut self) {
        let mut shard = self.cache.lock(self.index);
        if let Some(point) = self.point {
            shard.insert(self.root, point, self.cache.per_shard);
        }
        shard.hashing.retain(|r| r != self.root);
        drop(shard);
        self.cache.shards[self.index].hashed.notify_all();
    }
}

impl Default for HashCache {
    /// A cache of [`HASH_CACHE_CAPACITY`] entries.
    fn default() -> Self {
        Self::with_capacity(HASH_CACHE_CAPACITY)
    }
}

impl fmt::Debug for HashCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HashCache")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("hashes", &self.hashes())
            .field("shards", &SHARDS)
            .finish()
    }
}

fn shard_of(root: &[u8; 32]) -> usize {
    usize::from(u16::from_le_bytes([root[0], root[1]])) % SHARDS
}

/// The only `unsafe` of this crate: two calls into blst's C API, on the same functions its own
/// `min_pk::SecretKey::sign` uses (`blst_hash_to_g2`, then `POINTonE2_sign` through
/// `blst_sign_pk_in_g1`), split so that the hash can be reused.
mod raw {
    use blst::{
        blst_hash_to_g2, blst_p2, blst_p2_compress, blst_scalar, blst_sign_pk_in_g1, min_pk,
    };

    use crate::{DST, SIGNATURE_LEN};

    /// `root` hashed to G2 with [`DST`] and no augmentation.
    pub(super) fn hash_to_g2(root: &[u8; 32]) -> blst_p2 {
        let mut out = blst_p2::default();
        // SAFETY: `out` is a valid, exclusively borrowed `blst_p2` that blst only writes; each
        // pointer/length pair describes a live slice (the root, the DST, and an empty augmentation,
        // whose dangling-but-aligned pointer blst never reads because its length is 0). blst keeps
        // no pointer after returning.
        unsafe {
            blst_hash_to_g2(
                &mut out,
                root.as_ptr(),
                root.len(),
                DST.as_ptr(),
                DST.len(),
                [].as_ptr(),
                0,
            );
        }
        out
    }

    /// `sk · hash`, compressed. The scalar is read in place from the key (blst's own
    /// `From<&SecretKey> for &blst_scalar`): no copy of the secret is made here, so there is none to
    /// zeroize. The result is public.
    pub(super) fn sign(sk: &min_pk::SecretKey, hash: &blst_p2) -> [u8; SIGNATURE_LEN] {
        let scalar: &blst_scalar = sk.into();
        let mut sig = blst_p2::default();
        let mut out = [0u8; SIGNATURE_LEN];
        // SAFETY: every pointer comes from a live reference of the type blst expects (`blst_p2`,
        // `blst_scalar`, and a 96-byte buffer for the compressed G2 point); `sig` and `out` are
        // exclusively borrowed and distinct from the inputs. blst's `sign_pk_in_g1` is its
        // constant-time scalar multiplication (the one behind its own `sign`); it and `compress`
        // keep no pointer after returning.
        unsafe {
            blst_sign_pk_in_g1(&mut sig, hash, scalar);
            blst_p2_compress(out.as_mut_ptr(), &sig);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Roots that all land in shard 0, distinct in their last bytes.
    fn colliding_roots(n: u32) -> Vec<[u8; 32]> {
        (0..n)
            .map(|i| {
                let mut root = [0u8; 32];
                root[28..].copy_from_slice(&i.to_be_bytes());
                assert_eq!(shard_of(&root), 0);
                root
            })
            .collect()
    }

    #[test]
    fn one_shard_over_capacity_never_answers_for_another_root() {
        let cache = HashCache::with_capacity(64); // 4 per shard
        assert_eq!(cache.capacity(), 64);
        let roots = colliding_roots(10);
        let fresh: Vec<_> = roots.iter().map(HashedRoot::new).collect();
        assert!(fresh.windows(2).all(|w| w[0] != w[1]));
        // Twice round: every lookup after the first four in a round evicts the oldest.
        for _ in 0..2 {
            for (root, point) in roots.iter().zip(&fresh) {
                assert_eq!(cache.hashed(root), *point);
                assert!(cache.contains(root));
            }
        }
        assert_eq!(cache.len(), 4);
        // Ten roots taken in turn through four places: first in, first out misses every time.
        assert_eq!(cache.hashes(), 20);
        // The last four stay.
        for (i, root) in roots.iter().enumerate() {
            assert_eq!(cache.contains(root), i >= 6, "root {i}");
        }
    }

    #[test]
    fn roots_differing_in_one_byte_are_distinct_entries() {
        let cache = HashCache::with_capacity(16 * 40);
        let key = SecretKey::from_bytes(&[3u8; 32]).expect("key");
        let base = [0u8; 32];
        // Each root differs from `base` in exactly one byte (never the shard bytes, so all collide).
        for i in 2..32 {
            let mut root = base;
            root[i] = 1;
            assert_eq!(key.sign_with(&root, &cache), key.sign(&root), "byte {i}");
        }
        assert!(!cache.contains(&base));
        assert_eq!(key.sign_with(&base, &cache), key.sign(&base));
        assert_eq!(cache.len(), 31);
        assert_eq!(cache.hashes(), 31);
    }

    #[test]
    fn capacity_rounds_up_to_the_shards() {
        assert_eq!(HashCache::with_capacity(0).capacity(), 16);
        assert_eq!(HashCache::with_capacity(1000).capacity(), 1008);
        assert_eq!(HashCache::default().capacity(), HASH_CACHE_CAPACITY);
        assert!(HashCache::default().is_empty());
    }

    #[test]
    fn debug_shows_sizes_only() {
        let key_bytes = [0x11u8; 32];
        let key = SecretKey::from_bytes(&key_bytes).expect("key");
        let cache = HashCache::with_capacity(32);
        let root = [0x22u8; 32];
        let _ = key.sign_with(&root, &cache);
        let shown = format!("{cache:?} {:?}", cache.hashed(&root));
        assert_eq!(
            shown,
            "HashCache { len: 1, capacity: 32, hashes: 1, shards: 16 } HashedRoot(<G2 point>)"
        );
        assert!(!shown.contains(&hex::encode(key_bytes)));
    }
}
