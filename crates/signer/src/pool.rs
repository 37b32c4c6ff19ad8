//! The CPU pool that computes BLS signatures, so that no async worker ever runs a 0.4 ms signature.

use std::sync::Arc;

use ferrosigner_bls::{HashCache, Signature};
use tokio::sync::oneshot;

use crate::keys::KeyEntry;

/// A fixed set of threads (one per core by default) computing signatures in arrival order.
pub struct SignPool {
    pool: rayon::ThreadPool,
    /// Signing roots hashed to G2, shared by the threads: a root many keys sign is hashed once.
    hashes: Arc<HashCache>,
}

/// The pool went away before answering (only at shutdown).
#[derive(Debug, thiserror::Error)]
#[error("the signing pool stopped")]
pub struct PoolStopped;

impl SignPool {
    /// A pool of `threads` threads (`None`: one per core).
    pub fn new(threads: Option<usize>) -> std::io::Result<Self> {
        let threads = threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("bls-sign-{i}"))
            .build()
            .map_err(std::io::Error::other)?;
        Ok(Self {
            pool,
            hashes: Arc::new(HashCache::default()),
        })
    }

    /// Signs `message` with `key` on the pool.
    pub async fn sign(
        &self,
        key: Arc<KeyEntry>,
        message: [u8; 32],
    ) -> Result<Signature, PoolStopped> {
        let (tx, rx) = oneshot::channel();
        let hashes = self.hashes.clone();
        self.pool.spawn(move || {
            let _ = tx.send(key.secret.sign_with(&message, &hashes));
        });
        rx.await.map_err(|_| PoolStopped)
    }
}
