//! Step 1: the ceiling on this machine, measured in-process with the same crates the signer uses.

use std::time::{Duration, Instant};

use anyhow::Context;
use ferrosigner_bls::SecretKey;
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
}

fn sign_loop(sk: &SecretKey, budget: Duration) -> (u64, Duration) {
    let start = Instant::now();
    let mut n = 0u64;
    let mut msg = [0x5au8; 32];
    while start.elapsed() < budget {
        for _ in 0..16 {
            msg[..8].copy_from_slice(&n.to_le_bytes());
            std::hint::black_box(sk.sign(std::hint::black_box(&msg)));
            n += 1;
        }
    }
    (n, start.elapsed())
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

/// Measures the ceiling: single-thread and all-core sign rates for `sign_budget` each, then
/// `kdf_reps` scrypt and pbkdf2 decryptions.
pub fn measure(sign_budget: Duration, kdf_reps: usize) -> anyhow::Result<Ceiling> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let sk = SecretKey::key_gen(&[0x42; 32]).context("key_gen")?;
    // warm caches and frequency
    sign_loop(&sk, sign_budget / 4);
    let (n, elapsed) = sign_loop(&sk, sign_budget);
    let sign_us = elapsed.as_secs_f64() * 1e6 / n as f64;
    let total: u64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..cores)
            .map(|_| s.spawn(|| sign_loop(&sk, sign_budget).0))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    let parallel_rate = total as f64 / sign_budget.as_secs_f64();
    let scrypt_ms = decrypt_ms(&sk, Kdf::EIP2335_SCRYPT, kdf_reps)?;
    let pbkdf2_ms = decrypt_ms(&sk, Kdf::EIP2335_PBKDF2, kdf_reps.max(3))?;
    Ok(Ceiling {
        cores,
        sign_us,
        parallel_rate,
        scrypt_ms,
        pbkdf2_ms,
    })
}
