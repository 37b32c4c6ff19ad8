//! Key work at lowered priority stays on threads the key service owns (alone in this test binary, so that
//! no other test's threads are counted).

mod common;

use std::time::Duration;

use common::{key, keystore_json, km, statuses};
use serde_json::json;

/// Each thread of this process: its name and nice value (from `/proc/self/task`).
fn threads() -> Vec<(String, i64)> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| {
            let dir = task.ok()?.path();
            let name = std::fs::read_to_string(dir.join("comm")).ok()?;
            let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
            // Fields after the parenthesised name: state is field 3, nice is field 19.
            let rest = &stat[stat.rfind(')')? + 2..];
            let nice = rest.split_whitespace().nth(16)?.parse().ok()?;
            Some((name.trim().to_owned(), nice))
        })
        .collect()
}

/// Finding: key-cache refreshes lowered the priority of the shared blocking threads they borrowed, and those
/// threads then served everything else at that priority.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_key_threads_run_at_lowered_priority() {
    let signer = common::TestSigner::start(&[key(1), key(2)], &[]).await;
    let cache = signer.dir.path().join("data/key-cache.bin");
    let keys: Vec<_> = (3..6).map(key).collect();
    let body = json!({
        "keystores": keys.iter().map(|k| keystore_json(k, "p")).collect::<Vec<_>>(),
        "passwords": vec!["p"; keys.len()],
    });
    let (_, answer) = km(&signer.running, reqwest::Method::POST, Some(body)).await;
    assert_eq!(statuses(&answer), vec!["imported"; keys.len()]);
    let writes = || signer.running.signer.metrics().key_cache_writes.get();
    tokio::time::timeout(Duration::from_secs(10), async {
        while writes() < 1 || !cache.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the key cache is written");
    // Blocking work after the cache write runs on the shared blocking threads.
    for _ in 0..4 {
        tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(5)))
            .await
            .unwrap();
    }
    let all = threads();
    assert!(
        all.iter().any(|(name, _)| name.starts_with("key-cache")),
        "{all:?}"
    );
    let lowered: Vec<_> = all.iter().filter(|(_, nice)| *nice != 0).collect();
    assert!(
        lowered.iter().all(|(name, _)| name.starts_with("key-")),
        "threads other than key threads run at lowered priority: {lowered:?}"
    );
    signer.running.shutdown().await;
}
