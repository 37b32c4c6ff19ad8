//! Concurrency: many simultaneous identical or conflicting checks for one key. Exactly one
//! conflicting message may ever be accepted, on both backends, and (PostgreSQL) across two
//! independent handles with their own pools, as two signer processes would be.

mod common;

use common::{Backend, GVR, TestDb, fresh, pk, root};
use ferrosigner_slashing::{Error, Safe, SlashingDb};

const N: usize = 64;

type Outcome = Result<Safe, Error>;

async fn race<F, Fut>(dbs: &[SlashingDb], f: F) -> Vec<Outcome>
where
    F: Fn(SlashingDb, usize) -> Fut,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(N));
    let mut tasks = Vec::new();
    for i in 0..N {
        let fut = f(dbs[i % dbs.len()].clone(), i);
        let b = barrier.clone();
        tasks.push(tokio::spawn(async move {
            b.wait().await;
            fut.await
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    out
}

fn count(outcomes: &[Outcome], want: Outcome) -> usize {
    outcomes.iter().filter(|o| **o == want).count()
}

fn assert_exactly_one_inserted_rest_refused(outcomes: &[Outcome]) {
    assert_eq!(count(outcomes, Ok(Safe::Inserted)), 1, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Ok(Safe::Inserted) | Err(Error::Refused(_)))),
        "{outcomes:?}"
    );
}

async fn run_races(dbs: Vec<SlashingDb>) {
    // Identical block: one insert, the rest same data.
    let k = pk(1);
    let out = race(&dbs, move |db, _| async move {
        db.check_block(GVR, &k, 100, root(1)).await
    })
    .await;
    assert_eq!(count(&out, Ok(Safe::Inserted)), 1, "{out:?}");
    assert_eq!(count(&out, Ok(Safe::SameData)), N - 1, "{out:?}");

    // Conflicting blocks at one slot: exactly one accepted.
    let k = pk(2);
    let out = race(&dbs, move |db, i| async move {
        db.check_block(GVR, &k, 100, root(i as u8 + 1)).await
    })
    .await;
    assert_exactly_one_inserted_rest_refused(&out);

    // Identical attestation.
    let k = pk(3);
    let out = race(&dbs, move |db, _| async move {
        db.check_attestation(GVR, &k, 5, 6, root(1)).await
    })
    .await;
    assert_eq!(count(&out, Ok(Safe::Inserted)), 1, "{out:?}");
    assert_eq!(count(&out, Ok(Safe::SameData)), N - 1, "{out:?}");

    // Double votes: same target, different roots.
    let k = pk(4);
    let out = race(&dbs, move |db, i| async move {
        db.check_attestation(GVR, &k, 5, 6, root(i as u8 + 1)).await
    })
    .await;
    assert_exactly_one_inserted_rest_refused(&out);

    // Nested votes: every pair surrounds one another, so exactly one can be signed.
    let k = pk(5);
    let out = race(&dbs, move |db, i| async move {
        db.check_attestation(GVR, &k, 100 - i as u64, 100 + i as u64 + 1, root(1))
            .await
    })
    .await;
    assert_exactly_one_inserted_rest_refused(&out);

    // Many keys at once (group commit of unrelated requests): all accepted.
    let out = race(&dbs, move |db, i| async move {
        db.check_attestation(GVR, &pk(1000 + i as u64), 5, 6, root(1))
            .await
    })
    .await;
    assert_eq!(count(&out, Ok(Safe::Inserted)), N, "{out:?}");
}

async fn single_handle(t: TestDb) {
    run_races(vec![t.db.clone()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_races() {
    let t = fresh(Backend::Sqlite).await.expect("sqlite");
    single_handle(t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_races_two_handles_on_one_file() {
    let t = fresh(Backend::Sqlite).await.expect("sqlite");
    let second = SlashingDb::open(&t.location).await.expect("second handle");
    run_races(vec![t.db.clone(), second]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_races() {
    let Some(t) = fresh(Backend::Postgres).await else {
        return;
    };
    single_handle(t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_races_two_pools() {
    let Some(t) = fresh(Backend::Postgres).await else {
        return;
    };
    let second = SlashingDb::open(&t.location).await.expect("second pool");
    run_races(vec![t.db.clone(), second]).await;
}
