//! Step 1: the ceiling on this machine, measured in-process with the same crates the signer uses.
//!
//! Three signing loops: a raw sign (hash-to-G2 of the root, then the scalar multiplication), the floor
//! (a sign through a [`HashCache`] that already holds the root: the scalar multiplication and compression
//! only, as the signer does for every key after the first that signs a shared root), and hash-to-G2
//! alone. Each runs on one thread, and the two signing loops also on every core at once. Then one
//! scrypt and one pbkdf2 keystore decryption.

use std::time::{Duration, Instant};

use anyhow::Context;
use ferrosigner_bls::{HashCache, HashedRoot, SecretKey};
use ferrosigner_keystore::{Kdf, Keystore};

/// What the hardware allows, against which every server figure is expressed as a ratio.
#[derive(Debug, Clone)]
pub struct Ceiling {
    /// Cores available to this process (`available_parallelism`).
    pub cores: usize,
    /// One raw blst signature of a 32-byte root, one thread, in microseconds.
    pub sign_us: f64,
    /// Signatures per second with one thread per core, all signing at once.
    pub parallel_rate: f64,
    /// The floor: one sign of an already hashed root (a cache hit), one thread, in microseconds.
    pub floor_us: f64,
    /// Floor signatures per second with one thread per core, all signing at once (one shared cache).
    pub floor_parallel_rate: f64,
    /// Hash-to-G2 of one 32-byte root alone, one thread, in microseconds.
    pub hash_us: f64,
    /// One EIP-2335 scrypt (n = 2^18, r = 8, p = 1) keystore decryption, in milliseconds (median).
    pub scrypt_ms: f64,
    /// One EIP-2335 pbkdf2 (c = 2^18) keystore decryption, in milliseconds (median).
    pub pbkdf2_ms: f64,
}

impl Ceiling {
    /// Raw signatures per second on one core.
    pub fn sign_rate_per_core(&self) -> f64 {
        1e6 / self.sign_us
    }

    /// The signing ceiling for `threads` busy threads: `min(threads, cores) × per-core rate`.
    pub fn rate_for(&self, threads: usize) -> f64 {
        threads.clamp(1, self.cores) as f64 * self.sign_rate_per_core()
    }

    /// Floor signatures per second on one core.
    pub fn floor_rate_per_core(&self) -> f64 {
        1e6 / self.floor_us
    }

    /// The floor as a share of one raw sign.
    pub fn floor_ratio(&self) -> f64 {
        self.floor_us / self.sign_us
    }
}

/// Runs `step(n)` in batches of 16 until `budget` has passed: calls made, and the time they took.
fn timed_loop(budget: Duration, mut step: impl FnMut(u64)) -> (u64, Duration) {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..16 {
            step(n);
            n += 1;
        }
    }
    (n, start.elapsed())
}

/// Raw signs of a new root each time.
fn sign_loop(sk: &SecretKey, budget: Duration) -> (u64, Duration) {
    let mut msg = [0x5au8; 32];
    timed_loop(budget, |n| {
        msg[..8].copy_from_slice(&n.to_le_bytes());
        std::hint::black_box(sk.sign(std::hint::black_box(&msg)));
    })
}

/// Signs of `root` through `cache`, which already holds it: every call a cache hit.
fn floor_loop(
    sk: &SecretKey,
    root: &[u8; 32],
    cache: &HashCache,
    budget: Duration,
) -> (u64, Duration) {
    timed_loop(budget, |_| {
        std::hint::black_box(sk.sign_with(std::hint::black_box(root), cache));
    })
}

/// Hash-to-G2 of a new root each time, no key involved.
fn hash_loop(budget: Duration) -> (u64, Duration) {
    let mut msg = [0xa5u8; 32];
    timed_loop(budget, |n| {
        msg[..8].copy_from_slice(&n.to_le_bytes());
        std::hint::black_box(HashedRoot::new(std::hint::black_box(&msg)));
    })
}

/// One loop per core, all at once: the calls they made in all, per second of `budget`.
fn all_cores_rate(cores: usize, budget: Duration, run: impl Fn() -> u64 + Sync) -> f64 {
    let total: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..cores).map(|_| s.spawn(&run)).collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    total as f64 / budget.as_secs_f64()
}

fn micros_each((n, elapsed): (u64, Duration)) -> f64 {
    elapsed.as_secs_f64() * 1e6 / n as f64
}

fn median_ms(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied().unwrap_or(f64::NAN)
}

fn decrypt_ms(sk: &SecretKey, kdf: Kdf, reps: usize) -> anyhow::Result<f64> {
    let keystore =
        Keystore::encrypt(sk, "ferrosigner-bench", kdf, "").context("cannot encrypt a keystore")?;
    let json = keystore.to_json();
    let mut samples = Vec::with_capacity(reps);
    for _ in 0..reps {
        let start = Instant::now();
        let parsed = Keystore::from_json(&json).context("cannot parse the keystore")?;
        let back = parsed
            .decrypt("ferrosigner-bench")
            .context("cannot decrypt the keystore")?;
        samples.push(start.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(
            back.public_key() == sk.public_key(),
            "decryption returned another key"
        );
    }
    Ok(median_ms(samples))
}

/// Measures the ceiling: single-thread and all-core raw sign and floor rates and the single-thread
/// hash-to-G2 time, for `sign_budget` each, then `kdf_reps` scrypt and pbkdf2 decryptions.
pub fn measure(sign_budget: Duration, kdf_reps: usize) -> anyhow::Result<Ceiling> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let sk = SecretKey::key_gen(&[0x42; 32]).context("key_gen")?;
    // warm caches and frequency
    sign_loop(&sk, sign_budget / 4);
    let sign_us = micros_each(sign_loop(&sk, sign_budget));
    let parallel_rate = all_cores_rate(cores, sign_budget, || sign_loop(&sk, sign_budget).0);

    let root = [0x3cu8; 32];
    let cache = HashCache::default();
    anyhow::ensure!(
        sk.sign_with(&root, &cache) == sk.sign(&root),
        "a sign through the hash cache differs from a raw sign"
    );
    let floor_us = micros_each(floor_loop(&sk, &root, &cache, sign_budget));
    let floor_parallel_rate = all_cores_rate(cores, sign_budget, || {
        floor_loop(&sk, &root, &cache, sign_budget).0
    });
    // every floor sign was a cache hit: the root was hashed once, before the loops
    anyhow::ensure!(
        cache.hashes() == 1,
        "the floor loops hashed {} times, not once",
        cache.hashes()
    );
    let hash_us = micros_each(hash_loop(sign_budget));
    let scrypt_ms = decrypt_ms(&sk, Kdf::EIP2335_SCRYPT, kdf_reps)?;
    let pbkdf2_ms = decrypt_ms(&sk, Kdf::EIP2335_PBKDF2, kdf_reps.max(3))?;
    Ok(Ceiling {
        cores,
        sign_us,
        parallel_rate,
        floor_us,
        floor_parallel_rate,
        hash_us,
        scrypt_ms,
        pbkdf2_ms,
    })
}
