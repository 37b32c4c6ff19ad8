//! The plans PostgreSQL runs inside the check functions: with a long history, each lookup of a check
//! must walk only its narrow index range.
//!
//! A signer's connections live for days: PL/pgSQL caches each statement's plan per connection, and after
//! five calls may keep a generic plan, made from the statistics of that moment (often an empty table). So
//! the tests plan the checks on small tables first, then give every validator a long history, and look at
//! the plans of the next checks on the same connection, in each plan-cache mode; and once more with fresh
//! statistics. `auto_explain` sends the plan of every statement nested in `fs_check_attestation` /
//! `fs_check_block` as a NOTICE to the calling connection; the tests read them from there. The batch
//! check (`SlashingDb::check_attestations`: one statement that runs `fs_check_attestation` for every key
//! of a batch) runs as the signer runs it, one prepared statement reused on the connection.

mod common;

use common::{GVR, PgDatabase, pk, root};
use ferrosigner_slashing::SlashingDb;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::Statement;

/// Records per validator, and validators, when the plans are looked at.
const HISTORY: i64 = 4_000;
const VALIDATORS: u64 = 8;
/// The plan-cache modes each scenario runs in.
const MODES: [&str; 3] = ["force_custom_plan", "force_generic_plan", "auto"];

/// A connection whose NOTICE messages (the plans) arrive on the returned channel.
async fn traced_client(url: &str) -> (tokio_postgres::Client, mpsc::UnboundedReceiver<String>) {
    let (client, mut conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notice(notice) = message {
                let _ = tx.send(notice.message().to_string());
            }
        }
    });
    client
        .batch_execute(
            "LOAD 'auto_explain';
             SET auto_explain.log_min_duration = 0;
             SET auto_explain.log_nested_statements = on;
             SET auto_explain.log_analyze = on;
             SET auto_explain.log_timing = off;
             SET auto_explain.log_level = notice;
             SET client_min_messages = notice;",
        )
        .await
        .expect("auto_explain (part of the PostgreSQL server package)");
    (client, rx)
}

/// The plans of the lookups (not the inserts) on `table` among the notices received so far.
fn lookups_on(rx: &mut mpsc::UnboundedReceiver<String>, table: &str) -> Vec<String> {
    let mut found = Vec::new();
    while let Ok(plan) = rx.try_recv() {
        if plan.contains(&format!(" on {table}"))
            && !plan.contains("fs_check_")
            && !plan.contains("INSERT")
        {
            found.push(plan);
        }
    }
    found
}

/// The numbers after `label` in a plan's lines (e.g. `Rows Removed by Filter: 12`), summed.
fn sum_of(plan: &str, label: &str) -> u64 {
    plan.lines()
        .filter_map(|l| l.split_once(label).map(|(_, n)| n.trim()))
        .filter_map(|n| n.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Asserts that a lookup reads at most a few rows of `table` through an index.
fn assert_narrow(plan: &str, table: &str, scenario: &str) {
    assert!(
        !plan.contains(&format!("Seq Scan on {table}")),
        "{scenario}: a check scans the whole table:\n{plan}"
    );
    let removed = sum_of(plan, "Rows Removed by Filter:");
    assert!(
        removed <= 2,
        "{scenario}: a check walks {removed} rows of a validator's history to find at most one:\n{plan}"
    );
}

/// The statement of `SlashingDb::check_attestations` (crates/slashing/src/postgres.rs), as the signer
/// sends it; [`batch_statement_is_the_signers`] keeps the two the same.
const BATCH_CHECK: &str = "SELECT c.o_code, c.o_a, c.o_b, c.o_root \
     FROM unnest($2::bytea[]) WITH ORDINALITY AS k(pubkey, ord) \
     CROSS JOIN LATERAL fs_check_attestation($1, k.pubkey, $3, $4, $5) AS c \
     ORDER BY k.ord";

/// Which check a scenario runs.
#[derive(Clone, Copy)]
enum Check {
    Attestation,
    Block,
    /// The batch check of all `VALIDATORS` at once.
    Batch,
}

impl Check {
    fn table(self) -> &'static str {
        match self {
            Check::Attestation | Check::Batch => "signed_attestations",
            Check::Block => "signed_blocks",
        }
    }

    /// Lookups (plans) of one run: three per attestation check (double vote, surrounded, surrounding),
    /// one per block check (the slot).
    fn lookups_per_run(self) -> usize {
        match self {
            Check::Attestation => 3,
            Check::Block => 1,
            Check::Batch => 3 * VALIDATORS as usize,
        }
    }

    /// Runs the check for validator `v` (a batch: every validator) at epoch/slot `at` on `client`, the
    /// batch through `batch` (`BATCH_CHECK` prepared on `client`); asserts it is recorded.
    async fn run(self, client: &tokio_postgres::Client, batch: &Statement, v: u64, at: i64) {
        let gvr = GVR.to_vec();
        let pubkey = pk(v).to_vec();
        let root = root(2).to_vec();
        let row = match self {
            Check::Attestation => client
                .query_one(
                    "SELECT o_code FROM fs_check_attestation($1, $2, $3, $4, $5)",
                    &[&gvr, &pubkey, &(at - 1), &at, &root],
                )
                .await
                .expect("check"),
            Check::Block => client
                .query_one(
                    "SELECT o_code FROM fs_check_block($1, $2, $3, $4)",
                    &[&gvr, &pubkey, &at, &root],
                )
                .await
                .expect("check"),
            Check::Batch => {
                let keys: Vec<Vec<u8>> = (0..VALIDATORS).map(|v| pk(v).to_vec()).collect();
                let rows = client
                    .query(batch, &[&gvr, &keys, &(at - 1), &at, &root])
                    .await
                    .expect("batch check");
                assert_eq!(rows.len(), VALIDATORS as usize, "one verdict per key");
                for row in &rows {
                    assert_eq!(row.get::<_, i16>(0), 0, "the message is new and safe");
                }
                return;
            }
        };
        assert_eq!(row.get::<_, i16>(0), 0, "the message is new and safe");
    }
}

/// Plans `check` on small tables (unless `analyze`), then gives every validator `HISTORY` records below
/// the next checks (and fresh statistics if `analyze`), runs eight more checks on the same connection, and
/// asserts that each of their lookups walked only its narrow range.
async fn scenario(check: Check, mode: &str, analyze: bool) {
    let Some(pg) = PgDatabase::create().await else {
        return;
    };
    let db = SlashingDb::open(&pg.url).await.expect("open");
    for v in 0..VALIDATORS {
        db.check_attestation(GVR, &pk(v), 0, 1, root(1))
            .await
            .expect("first attestation");
        db.check_block(GVR, &pk(v), 1, root(1))
            .await
            .expect("first block");
    }
    let (admin, conn) = tokio_postgres::connect(&pg.url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    // Statistics change only when the test says so.
    admin
        .batch_execute(
            "ALTER TABLE signed_attestations SET (autovacuum_enabled = false);
             ALTER TABLE signed_blocks SET (autovacuum_enabled = false);",
        )
        .await
        .expect("autovacuum off");

    let (client, mut rx) = traced_client(&pg.url).await;
    client
        .batch_execute(&format!("SET plan_cache_mode = {mode}"))
        .await
        .expect("plan mode");
    let batch = client
        .prepare(BATCH_CHECK)
        .await
        .expect("prepare the batch check");
    if !analyze {
        // Enough calls for PL/pgSQL to settle on its plans while the tables are nearly empty.
        for i in 0..8 {
            check
                .run(&client, &batch, i % VALIDATORS, 2 + i as i64)
                .await;
        }
        lookups_on(&mut rx, check.table());
    }

    let first = 100;
    admin
        .execute(
            "INSERT INTO signed_attestations (validator_id, source_epoch, target_epoch, signing_root)
             SELECT v.id, g, g + 1, NULL FROM validators v, generate_series($1::BIGINT, $2::BIGINT) g",
            &[&first, &(first + HISTORY)],
        )
        .await
        .expect("history");
    admin
        .execute(
            "INSERT INTO signed_blocks (validator_id, slot, signing_root)
             SELECT v.id, g, NULL FROM validators v, generate_series($1::BIGINT, $2::BIGINT) g",
            &[&first, &(first + HISTORY)],
        )
        .await
        .expect("history");
    if analyze {
        admin
            .batch_execute("ANALYZE signed_attestations; ANALYZE signed_blocks;")
            .await
            .expect("analyze");
    }

    for i in 0..8 {
        check
            .run(
                &client,
                &batch,
                i % VALIDATORS,
                first + HISTORY + 10 + i as i64,
            )
            .await;
    }
    let plans = lookups_on(&mut rx, check.table());
    let name = format!(
        "{}{} in {mode}, {}",
        check.table(),
        if matches!(check, Check::Batch) {
            " (batch check)"
        } else {
            ""
        },
        if analyze {
            "fresh statistics"
        } else {
            "planned on small tables"
        }
    );
    assert_eq!(
        plans.len(),
        8 * check.lookups_per_run(),
        "{name}: expected the plan of every lookup"
    );
    for plan in &plans {
        assert_narrow(plan, check.table(), &name);
    }
}

/// Attestation checks: the double-vote lookup and both surround searches stay on their narrow index
/// ranges, whichever plan PostgreSQL caches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attestation_checks_walk_the_narrow_index_range() {
    for mode in MODES {
        scenario(Check::Attestation, mode, false).await;
        scenario(Check::Attestation, mode, true).await;
    }
}

/// Block checks: the slot lookup is one index probe, whichever plan PostgreSQL caches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_checks_probe_one_index_entry() {
    for mode in MODES {
        scenario(Check::Block, mode, false).await;
        scenario(Check::Block, mode, true).await;
    }
}

/// Batch attestation checks (one statement for all the keys of a batch): every key's double-vote lookup
/// and both surround searches stay on their narrow index ranges, as in the single check, whichever plan
/// PostgreSQL caches for the statement and for the check function it calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_attestation_checks_walk_the_narrow_index_range() {
    for mode in MODES {
        scenario(Check::Batch, mode, false).await;
        scenario(Check::Batch, mode, true).await;
    }
}

/// The source text with Rust's string-continuation escapes (`\` at a line end and the next line's
/// leading whitespace) removed, so that a statement written over several lines reads as one string.
fn without_continuations(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(i) = rest.find("\\\n") {
        out.push_str(&rest[..i]);
        rest = rest[i + 2..].trim_start();
    }
    out.push_str(rest);
    out
}

/// The batch plans above are those of the signer's statement: `BATCH_CHECK` is, character for
/// character, the statement `SlashingDb::check_attestations` prepares.
#[test]
fn batch_statement_is_the_signers() {
    let source = without_continuations(include_str!("../src/postgres.rs"));
    let statement = format!("\"{BATCH_CHECK}\"");
    assert!(
        source.contains(&statement),
        "crates/slashing/src/postgres.rs no longer prepares {statement}: update BATCH_CHECK (and check the \
         plans of the statement it now sends)"
    );
}
