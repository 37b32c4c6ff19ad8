//! The batch check (`SlashingDb::check_attestations`, for batch signing) on both backends: per-key
//! verdicts in request order inside one transaction, and a failing transaction that records nothing.

mod common;

use common::{GVR, TestDb, pk, root};
use ferrosigner_slashing::rules::{AttestationRecord, stored_root};
use ferrosigner_slashing::{Error, Refusal, Safe, is_postgres};

fn att(source: u64, target: u64, r: u8) -> AttestationRecord {
    AttestationRecord {
        source,
        target,
        signing_root: stored_root(root(r)),
    }
}

/// Runs `sql` on the test database through a connection of its own.
async fn execute(t: &TestDb, sql: &str) {
    if is_postgres(&t.location) {
        let (client, connection) = tokio_postgres::connect(&t.location, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        client.batch_execute(sql).await.expect("execute");
    } else {
        let conn = rusqlite::Connection::open(&t.location).expect("open");
        conn.execute_batch(sql).expect("execute");
    }
}

/// Makes every insert of an attestation with target epoch 9 by `pk(2)` fail inside the database.
async fn fail_target_9_of_pk2(t: &TestDb) {
    let key = hex::encode(pk(2));
    if is_postgres(&t.location) {
        execute(
            t,
            &format!(
                "CREATE FUNCTION fs_test_fail() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 IF NEW.target_epoch = 9 AND (SELECT pubkey FROM validators WHERE id = NEW.validator_id) \
                 = '\\x{key}'::bytea THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$; \
                 CREATE TRIGGER fs_test_fail BEFORE INSERT ON signed_attestations \
                 FOR EACH ROW EXECUTE FUNCTION fs_test_fail();"
            ),
        )
        .await;
    } else {
        execute(
            t,
            &format!(
                "CREATE TRIGGER fs_test_fail BEFORE INSERT ON signed_attestations \
                 WHEN NEW.target_epoch = 9 AND (SELECT pubkey FROM validators WHERE id = NEW.validator_id) \
                 = X'{key}' BEGIN SELECT RAISE(ABORT, 'injected failure'); END;"
            ),
        )
        .await;
    }
}

async fn verdicts_in_request_order(t: TestDb) {
    let db = &t.db;
    assert_eq!(
        db.check_attestation(GVR, &pk(1), 1, 2, root(1)).await,
        Ok(Safe::Inserted)
    );
    let keys = [pk(3), pk(1), pk(2)];
    assert_eq!(
        db.check_attestations(GVR, &keys, 1, 2, root(2)).await,
        Ok(vec![
            Ok(Safe::Inserted),
            Err(Refusal::DoubleVote {
                existing: att(1, 2, 1)
            }),
            Ok(Safe::Inserted),
        ])
    );
    // The same batch again: the same data is re-signable, the conflict stays refused.
    assert_eq!(
        db.check_attestations(GVR, &keys, 1, 2, root(2)).await,
        Ok(vec![
            Ok(Safe::SameData),
            Err(Refusal::DoubleVote {
                existing: att(1, 2, 1)
            }),
            Ok(Safe::SameData),
        ])
    );
    // Surrounding the recorded votes is refused per key, with the evidence.
    assert_eq!(
        db.check_attestations(GVR, &[pk(2), pk(4)], 0, 3, root(3))
            .await,
        Ok(vec![
            Err(Refusal::SurroundingVote {
                existing: att(1, 2, 2)
            }),
            Ok(Safe::Inserted),
        ])
    );
    // Another genesis validators root refuses every key.
    assert_eq!(
        db.check_attestations([7; 32], &[pk(5), pk(6)], 5, 6, root(1))
            .await,
        Ok(vec![Err(Refusal::WrongGenesisValidatorsRoot); 2])
    );
    // A key named twice is decided once.
    assert_eq!(
        db.check_attestations(GVR, &[pk(7), pk(7)], 5, 6, root(1))
            .await,
        Ok(vec![Ok(Safe::Inserted), Ok(Safe::Inserted)])
    );
    assert_eq!(
        db.check_attestation(GVR, &pk(7), 5, 6, root(1)).await,
        Ok(Safe::SameData)
    );
    assert!(matches!(
        db.check_attestations(GVR, &[pk(8)], 1, 1 << 63, root(1))
            .await,
        Err(Error::ValueOutOfRange { .. })
    ));
    assert!(!db.has_history(&pk(8)).await.expect("history"));
    // What the batch recorded is what single checks see.
    for k in [pk(2), pk(3)] {
        assert_eq!(
            db.check_attestation(GVR, &k, 1, 2, root(9)).await,
            Err(Error::Refused(Refusal::DoubleVote {
                existing: att(1, 2, 2)
            }))
        );
    }
}

async fn a_failing_batch_records_nothing(t: TestDb) {
    let db = &t.db;
    fail_target_9_of_pk2(&t).await;
    let keys = [pk(1), pk(2), pk(3)];
    let failed = db.check_attestations(GVR, &keys, 8, 9, root(1)).await;
    assert!(
        matches!(failed, Err(Error::Unavailable(_) | Error::Database(_))),
        "{failed:?}"
    );
    for k in &keys {
        assert!(!db.has_history(k).await.expect("history"), "{k:?}");
    }
    // The other keys' checks ran inside the failed transaction: after the fault a conflicting
    // attestation is still free to sign, so nothing of theirs was kept.
    let drop_trigger = if is_postgres(&t.location) {
        "DROP TRIGGER fs_test_fail ON signed_attestations"
    } else {
        "DROP TRIGGER fs_test_fail"
    };
    execute(&t, drop_trigger).await;
    assert_eq!(
        db.check_attestations(GVR, &keys, 8, 9, root(2)).await,
        Ok(vec![Ok(Safe::Inserted); 3])
    );
}

async fn concurrent_conflicting_batches_sign_one_per_key(t: TestDb) {
    let keys: Vec<_> = (1..=40).map(pk).collect();
    let mut reversed = keys.clone();
    reversed.reverse();
    let (a, b) = tokio::join!(
        t.db.check_attestations(GVR, &keys, 3, 4, root(1)),
        t.db.check_attestations(GVR, &reversed, 3, 4, root(2)),
    );
    let a = a.expect("first batch");
    let mut b = b.expect("second batch");
    b.reverse();
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(
            usize::from(x.is_ok()) + usize::from(y.is_ok()),
            1,
            "key {i}: {x:?} / {y:?}"
        );
    }
}

both_backends!(
    verdicts_in_request_order,
    a_failing_batch_records_nothing,
    concurrent_conflicting_batches_sign_one_per_key,
);
