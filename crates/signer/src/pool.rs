//! The CPU pool that computes BLS signatures, so that no async worker ever runs a 0.4 ms signature.
//!
//! The queue is bounded: beyond [`QUEUE_PER_THREAD`] waiting signatures per thread a request gets
//! [`PoolError::Busy`] at once (503) rather than a wait that outlives the client's timeout. A signature
//! whose requester has gone away by the time a thread takes it is not computed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ferrosigner_bls::{HashCache, Signature};
use tokio::sync::oneshot;

use crate::keys::KeyEntry;

/// Signatures that may wait per signing thread (about 0.4 s of work at 0.35 ms each).
pub const QUEUE_PER_THREAD: usize = 1024;

/// A fixed set of threads (one per core by default) computing signatures in arrival order.
/// Cheap to clone: clones share the threads, the queue bound and the hash cache.
#[derive(Clone)]
pub struct SignPool {
    pool: Arc<rayon::ThreadPool>,
    waiting: Arc<AtomicUsize>,
    capacity: usize,
    /// Signing roots hashed to G2, shared by the threads: a root many keys sign is hashed once.
    hashes: Arc<HashCache>,
}

/// Why the pool did not sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The queue is full; nothing was queued.
    #[error("too many signatures are waiting for a signing thread")]
    Busy,
    /// The pool went away before answering (only at shutdown).
    #[error("the signing pool stopped")]
    Stopped,
}

/// Who takes a queued signature ([`SignPool::queue`]).
pub trait Done: Send + 'static {
    /// Nobody waits any more: the signature is not computed.
    fn abandoned(&self) -> bool;
    /// Takes the signature, or why there is none.
    fn done(self, signature: Result<Signature, PoolError>);
}

impl Done for oneshot::Sender<Result<Signature, PoolError>> {
    fn abandoned(&self) -> bool {
        self.is_closed()
    }
    fn done(self, signature: Result<Signature, PoolError>) {
        let _ = self.send(signature);
    }
}

impl SignPool {
    /// A pool of `threads` threads (`None`: one per core).
    pub fn new(threads: Option<usize>) -> std::io::Result<Self> {
        let threads = threads
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
            })
            .max(1);
        Self::with_capacity(threads, threads * QUEUE_PER_THREAD)
    }

    /// A pool of `threads` threads on which at most `capacity` signatures wait.
    pub fn with_capacity(threads: usize, capacity: usize) -> std::io::Result<Self> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("bls-sign-{i}"))
            .build()
            .map_err(std::io::Error::other)?;
        Ok(Self {
            pool: Arc::new(pool),
            waiting: Arc::new(AtomicUsize::new(0)),
            capacity: capacity.max(1),
            hashes: Arc::new(HashCache::default()),
        })
    }

    /// Takes room for `n` waiting signatures, all or none.
    fn reserve(&self, n: usize) -> Result<(), PoolError> {
        self.waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                (w.saturating_add(n) <= self.capacity).then_some(w + n)
            })
            .map(|_| ())
            .map_err(|_| PoolError::Busy)
    }

    /// Signs `message` with `key` on the pool.
    pub async fn sign(
        &self,
        key: Arc<KeyEntry>,
        message: [u8; 32],
    ) -> Result<Signature, PoolError> {
        let (tx, rx) = oneshot::channel();
        self.queue(key, message, tx);
        rx.await.map_err(|_| PoolError::Stopped)?
    }

    /// Queues the signature of `message` with `key` and returns at once: a signing thread hands
    /// the signature to `done`, or `done` gets [`PoolError::Busy`] here when the queue is full.
    /// Callable from any thread (the SQLite writer queues a committed request's signature this
    /// way). A `done` that is [`Done::abandoned`] by the time a thread takes it is dropped
    /// without signing.
    pub fn queue(&self, key: Arc<KeyEntry>, message: [u8; 32], done: impl Done) {
        if let Err(e) = self.reserve(1) {
            return done.done(Err(e));
        }
        let waiting = self.waiting.clone();
        let hashes = self.hashes.clone();
        self.pool.spawn(move || {
            waiting.fetch_sub(1, Ordering::AcqRel);
            if !done.abandoned() {
                done.done(Ok(key.secret.sign_with(&message, &hashes)));
            }
        });
    }

    /// Signs `message` with each of `keys` on the pool (batch signing), answering the signatures in
    /// the order of `keys`. Room for all of them is reserved at once: either every signature is
    /// queued or none is ([`PoolError::Busy`]). The signatures are spread over the pool's threads,
    /// and the shared message is hashed to G2 once through the hash cache.
    pub async fn sign_many(
        &self,
        keys: Vec<Arc<KeyEntry>>,
        message: [u8; 32],
    ) -> Result<Vec<Signature>, PoolError> {
        let n = keys.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        self.reserve(n)?;
        let waiting = self.waiting.clone();
        let (tx, rx) = oneshot::channel();
        let hashes = self.hashes.clone();
        self.pool.spawn(move || {
            waiting.fetch_sub(n, Ordering::AcqRel);
            if !tx.is_closed() {
                use rayon::prelude::*;
                let signatures: Vec<Signature> = keys
                    .par_iter()
                    .map(|key| key.secret.sign_with(&message, &hashes))
                    .collect();
                let _ = tx.send(signatures);
            }
        });
        rx.await.map_err(|_| PoolError::Stopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeySource;
    use ferrosigner_bls::SecretKey;

    fn key() -> Arc<KeyEntry> {
        key_of(7)
    }

    fn key_of(i: u8) -> Arc<KeyEntry> {
        let secret = SecretKey::from_bytes(&[i; 32]).expect("key");
        Arc::new(KeyEntry {
            public: secret.public_key(),
            secret,
            derivation_path: String::new(),
            source: KeySource::External {
                keystore: "k.json".into(),
            },
            cache: None,
        })
    }

    #[tokio::test]
    async fn many_signatures_come_back_in_order_and_reserve_room_all_at_once() {
        let pool = SignPool::with_capacity(2, 3).expect("pool");
        let keys: Vec<Arc<KeyEntry>> = (1..=3u8).map(key_of).collect();
        let signed = pool.sign_many(keys.clone(), [5; 32]).await.expect("signed");
        let expected: Vec<Signature> = keys.iter().map(|k| k.secret.sign(&[5; 32])).collect();
        assert_eq!(signed, expected);
        // Four signatures do not fit a queue of three: none is queued.
        let mut four = keys.clone();
        four.push(key());
        assert_eq!(pool.sign_many(four, [5; 32]).await, Err(PoolError::Busy));
        assert_eq!(pool.waiting.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy_at_once() {
        let pool = Arc::new(SignPool::with_capacity(1, 2).expect("pool"));
        // Occupy the only thread until released.
        let (release, wait) = std::sync::mpsc::channel::<()>();
        pool.pool.spawn(move || {
            let _ = wait.recv();
        });
        let queued: Vec<_> = (0..2u8)
            .map(|i| {
                let pool = pool.clone();
                tokio::spawn(async move { pool.sign(key(), [i; 32]).await })
            })
            .collect();
        // Wait until both reserved their place.
        while pool.waiting.load(Ordering::Acquire) < 2 {
            tokio::task::yield_now().await;
        }
        assert_eq!(pool.sign(key(), [9; 32]).await, Err(PoolError::Busy));
        // The first caller gives up; the second still waits.
        queued[0].abort();
        release.send(()).expect("release");
        let signed = queued.into_iter().nth(1).expect("second");
        assert_eq!(
            signed.await.expect("task").expect("signed"),
            key().secret.sign(&[1; 32])
        );
        assert_eq!(pool.waiting.load(Ordering::Acquire), 0);
    }
}
