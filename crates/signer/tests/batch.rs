//! Batch signing (`POST /api/v1/eth2/sign`, draft remote-signing-api PR #29) through a real socket:
//! every allowed type signs what the single endpoint signs, mixed results keep their order, the
//! batch is refused as a whole when malformed, too large, of a type the draft does not allow or
//! when the route is off, a failing slashing transaction signs and records nothing (SQLite and
//! PostgreSQL), and racing conflicting batches sign one attestation per key.

mod common;

use common::{
    PgOutage, TestSigner, attestation, block, fork_info, fresh_postgres_db, key, read_json, secret,
    testdata,
};
use ferrosigner_bls::{PublicKey, SecretKey, Signature};
use ferrosigner_consensus::Network;
use serde_json::{Value, json};

const ON: &str = "--enable-batch-signing";

fn pubkey(sk: &SecretKey) -> String {
    sk.public_key().to_hex()
}

/// POSTs a batch; returns status, content type and body JSON (panics when the body is not JSON).
async fn batch(signer: &TestSigner, identifiers: &[String], request: &Value) -> (u16, Value) {
    post_raw(
        signer,
        serde_json::to_vec(&json!({"identifiers": identifiers, "signing_request": request}))
            .unwrap(),
    )
    .await
}

async fn post_raw(signer: &TestSigner, body: Vec<u8>) -> (u16, Value) {
    let response = signer
        .client
        .post(signer.url("/api/v1/eth2/sign"))
        .header("Content-Type", "application/json")
        .header("Accept", "text/plain")
        .body(body)
        .send()
        .await
        .unwrap();
    common::json_answer(response).await
}

/// The signing root the signer signs for `request` on `network`.
fn signing_root(request: &Value, network: &str) -> [u8; 32] {
    let network = Network::by_name(network).unwrap();
    ferrosigner_consensus::prepare(&serde_json::to_vec(request).unwrap(), &network)
        .unwrap()
        .signing_root
}

fn verifies(signature: &Value, public: &PublicKey, root: &[u8; 32]) -> bool {
    Signature::from_hex(signature.as_str().unwrap())
        .unwrap()
        .verify(public, root)
}

fn electra(kind: &str, field: &str, object: Value) -> Value {
    json!({"type": kind, "fork_info": fork_info(), field: object})
}

/// One request of each allowed type that runs on mainnet.
fn mainnet_requests() -> Vec<Value> {
    vec![
        attestation(10, 11, 0x31),
        electra(
            "AGGREGATION_SLOT",
            "aggregation_slot",
            json!({"slot": "12000000"}),
        ),
        electra("RANDAO_REVEAL", "randao_reveal", json!({"epoch": "375000"})),
        electra(
            "SYNC_COMMITTEE_MESSAGE",
            "sync_committee_message",
            json!({"beacon_block_root": format!("0x{}", "5c".repeat(32)), "slot": "12000000"}),
        ),
        electra(
            "SYNC_COMMITTEE_SELECTION_PROOF",
            "sync_aggregator_selection_data",
            json!({"slot": "12000000", "subcommittee_index": "2"}),
        ),
    ]
}

/// Signs `request` as a batch with every key, then each key singly, and checks they agree and verify.
async fn batch_equals_single(
    signer: &TestSigner,
    keys: &[SecretKey],
    request: &Value,
    network: &str,
) {
    let ids: Vec<String> = keys.iter().map(pubkey).collect();
    let (status, body) = batch(signer, &ids, request).await;
    assert_eq!(status, 200, "{}: {body}", request["type"]);
    let items = body.as_array().unwrap();
    assert_eq!(items.len(), keys.len());
    let root = signing_root(request, network);
    for (item, sk) in items.iter().zip(keys) {
        assert_eq!(item["identifier"], pubkey(sk));
        assert!(item.get("error").is_none(), "{item}");
        assert!(verifies(&item["signature"], &sk.public_key(), &root));
        let (status, single) = signer.sign(&pubkey(sk), request).await;
        assert_eq!(status, 200, "{}: {single}", request["type"]);
        assert_eq!(
            single["signature"], item["signature"],
            "{}",
            request["type"]
        );
    }
}

#[tokio::test]
async fn every_allowed_type_signs_what_the_single_endpoint_signs() {
    let keys = vec![key(1), key(2), key(3)];
    let signer = TestSigner::start(&keys, &[ON]).await;
    for request in mainnet_requests() {
        batch_equals_single(&signer, &keys, &request, "mainnet").await;
    }
    let metrics = signer.metrics_text().await;
    for line in [
        "ferrosigner_sign_requests_total{type=\"ATTESTATION\",outcome=\"signed\"} 6",
        "ferrosigner_sign_requests_total{type=\"RANDAO_REVEAL\",outcome=\"signed\"} 6",
        "ferrosigner_sign_batches_total{type=\"ATTESTATION\",outcome=\"answered\"} 1",
        "ferrosigner_sign_batches_total{type=\"SYNC_COMMITTEE_MESSAGE\",outcome=\"answered\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}

#[tokio::test]
async fn gloas_payload_attestations_sign_what_the_single_endpoint_signs() {
    let dir = testdata().join("signing-gloas");
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("021"))
        .expect("the payload attestation fixture");
    let f = read_json(&file);
    let fixture_key = secret(f["secret_key"].as_str().unwrap());
    let keys = vec![fixture_key.clone(), key(4)];
    let signer = TestSigner::start(&keys, &["--network", "sepolia", ON]).await;
    batch_equals_single(&signer, &keys, &f["request"], "sepolia").await;
    let (_, body) = batch(&signer, &[pubkey(&fixture_key)], &f["request"]).await;
    assert_eq!(body[0]["signature"], f["expected_signature"]);
}

#[tokio::test]
async fn mixed_results_keep_request_order() {
    let keys = vec![key(1), key(2), key(3)];
    let signer = TestSigner::start(&keys, &[ON]).await;
    // key 2 already signed another attestation for target 11.
    let (status, _) = signer
        .sign(&pubkey(&key(2)), &attestation(10, 11, 0x01))
        .await;
    assert_eq!(status, 200);
    let unknown = pubkey(&key(9));
    let ids = vec![
        pubkey(&key(3)),
        unknown.clone(),
        pubkey(&key(2)),
        pubkey(&key(1)),
    ];
    let request = attestation(10, 11, 0x02);
    let (status, body) = batch(&signer, &ids, &request).await;
    assert_eq!(status, 200, "{body}");
    let items = body.as_array().unwrap();
    let ids_back: Vec<&str> = items
        .iter()
        .map(|i| i["identifier"].as_str().unwrap())
        .collect();
    assert_eq!(ids_back, ids.iter().map(String::as_str).collect::<Vec<_>>());
    let root = signing_root(&request, "mainnet");
    assert!(verifies(
        &items[0]["signature"],
        &key(3).public_key(),
        &root
    ));
    assert_eq!(items[1]["error"]["code"], 404, "{}", items[1]);
    assert!(items[1].get("signature").is_none());
    assert!(
        items[1]["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&unknown)
    );
    assert_eq!(items[2]["error"]["code"], 412, "{}", items[2]);
    assert!(items[2].get("signature").is_none());
    assert!(
        items[2]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("slashing")
    );
    assert!(verifies(
        &items[3]["signature"],
        &key(1).public_key(),
        &root
    ));
    let metrics = signer.metrics_text().await;
    for line in [
        "ferrosigner_sign_requests_total{type=\"ATTESTATION\",outcome=\"signed\"} 3",
        "ferrosigner_sign_requests_total{type=\"ATTESTATION\",outcome=\"unknown_key\"} 1",
        "ferrosigner_sign_requests_total{type=\"ATTESTATION\",outcome=\"slashing_refused\"} 1",
        "eth2_slashingprotection_prevented_signings_total{reason=\"double_vote\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}

#[tokio::test]
async fn the_route_is_off_by_default() {
    let signer = TestSigner::start(&[key(1)], &[]).await;
    let (status, body) = batch(&signer, &[pubkey(&key(1))], &attestation(1, 2, 1)).await;
    assert_eq!(status, 404);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("batch signing is disabled"),
        "{body}"
    );
    // The single endpoint is unaffected.
    assert_eq!(
        signer.sign(&pubkey(&key(1)), &attestation(1, 2, 1)).await.0,
        200
    );
}

#[tokio::test]
async fn bad_batches_are_refused_as_a_whole_with_json() {
    let keys = vec![key(1), key(2), key(3)];
    let signer = TestSigner::start(&keys, &[ON, "--max-batch-signing-identifiers", "2"]).await;
    let ids: Vec<String> = keys.iter().map(pubkey).collect();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "over the limit",
            serde_json::to_vec(&json!({"identifiers": ids, "signing_request": attestation(1, 2, 1)}))
                .unwrap(),
            "exceeds the limit of 2",
        ),
        ("not JSON", b"{\"identifiers\": [".to_vec(), "malformed batch request"),
        (
            "no identifiers",
            serde_json::to_vec(&json!({"identifiers": [], "signing_request": attestation(1, 2, 1)}))
                .unwrap(),
            "at least one",
        ),
        (
            "no signing request",
            serde_json::to_vec(&json!({"identifiers": [ids[0]]})).unwrap(),
            "signing_request",
        ),
        (
            "a bad identifier",
            serde_json::to_vec(&json!({"identifiers": ["0x1234"], "signing_request": attestation(1, 2, 1)}))
                .unwrap(),
            "identifiers[0]",
        ),
        (
            "a key twice, in other casing",
            serde_json::to_vec(&json!({"identifiers": [ids[0], ids[0].to_uppercase().replace("0X", "0x")],
                "signing_request": attestation(1, 2, 1)}))
            .unwrap(),
            "more than once",
        ),
        (
            "a block",
            serde_json::to_vec(&json!({"identifiers": [ids[0]], "signing_request": block(5, 1)})).unwrap(),
            "does not allow type BLOCK_V2",
        ),
        (
            "a voluntary exit",
            serde_json::to_vec(&json!({"identifiers": [ids[0]], "signing_request": electra(
                "VOLUNTARY_EXIT", "voluntary_exit", json!({"epoch": "1", "validator_index": "1"}))}))
            .unwrap(),
            "does not allow type VOLUNTARY_EXIT",
        ),
        (
            "a malformed signing request",
            serde_json::to_vec(&json!({"identifiers": [ids[0]], "signing_request":
                {"type": "ATTESTATION", "fork_info": fork_info()}}))
            .unwrap(),
            "attestation",
        ),
    ];
    for (what, body, needle) in cases {
        let (status, json) = post_raw(&signer, body).await;
        assert_eq!(status, 400, "{what}: {json}");
        let message = json["error"].as_str().unwrap();
        assert!(message.contains(needle), "{what}: {message}");
    }
    // Nothing was recorded by the refused batches: key 1 may still sign another attestation at 2.
    assert_eq!(signer.sign(&ids[0], &attestation(1, 2, 9)).await.0, 200);
}

/// The database of a signer, to break and mend.
enum Db<'a> {
    Sqlite(&'a std::path::Path),
    Postgres(&'a str),
}

async fn pg_execute(url: &str, sql: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client.batch_execute(sql).await.unwrap();
}

impl Db<'_> {
    /// Makes every insert of `key`'s attestation with target epoch 9 fail inside the database.
    async fn fail_target_9_of(&self, key: &str) {
        let key = key.trim_start_matches("0x");
        match self {
            Db::Sqlite(path) => rusqlite::Connection::open(path)
                .unwrap()
                .execute_batch(&format!(
                    "CREATE TRIGGER fs_test_fail BEFORE INSERT ON signed_attestations \
                     WHEN NEW.target_epoch = 9 AND (SELECT pubkey FROM validators WHERE id = NEW.validator_id) \
                     = X'{key}' BEGIN SELECT RAISE(ABORT, 'injected failure'); END;"
                ))
                .unwrap(),
            Db::Postgres(url) => {
                pg_execute(
                    url,
                    &format!(
                        "CREATE FUNCTION fs_test_fail() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                         IF NEW.target_epoch = 9 AND (SELECT pubkey FROM validators WHERE id = NEW.validator_id) \
                         = '\\x{key}'::bytea THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$; \
                         CREATE TRIGGER fs_test_fail BEFORE INSERT ON signed_attestations \
                         FOR EACH ROW EXECUTE FUNCTION fs_test_fail();"
                    ),
                )
                .await
            }
        }
    }

    async fn mend(&self) {
        match self {
            Db::Sqlite(path) => rusqlite::Connection::open(path)
                .unwrap()
                .execute_batch("DROP TRIGGER fs_test_fail")
                .unwrap(),
            Db::Postgres(url) => {
                pg_execute(url, "DROP TRIGGER fs_test_fail ON signed_attestations").await
            }
        }
    }
}

/// A batch of three keys whose slashing transaction fails on the second key: every element is 503,
/// nothing is signed, and once the fault is gone a conflicting attestation signs for every key
/// (nothing was recorded).
async fn failed_transaction_signs_and_records_nothing(signer: &TestSigner, db: Db<'_>) {
    let ids: Vec<String> = [key(1), key(2), key(3)].iter().map(pubkey).collect();
    db.fail_target_9_of(&ids[1]).await;
    let (status, body) = batch(signer, &ids, &attestation(8, 9, 0x01)).await;
    assert_eq!(status, 200, "{body}");
    for item in body.as_array().unwrap() {
        assert_eq!(item["error"]["code"], 503, "{item}");
        assert!(item.get("signature").is_none(), "{item}");
    }
    db.mend().await;
    let (status, body) = batch(signer, &ids, &attestation(8, 9, 0x02)).await;
    assert_eq!(status, 200, "{body}");
    for item in body.as_array().unwrap() {
        assert!(item["signature"].is_string(), "{item}");
    }
}

#[tokio::test]
async fn a_failing_sqlite_transaction_signs_and_records_nothing() {
    let signer = TestSigner::start(&[key(1), key(2), key(3)], &[ON]).await;
    let path = signer.dir.path().join("data/slashing-protection.sqlite");
    failed_transaction_signs_and_records_nothing(&signer, Db::Sqlite(&path)).await;
}

#[tokio::test]
async fn a_failing_postgres_transaction_signs_and_records_nothing() {
    let Some(url) = fresh_postgres_db().await else {
        return;
    };
    let signer = TestSigner::start(
        &[key(1), key(2), key(3)],
        &[ON, "--slashing-protection-db-url", &url],
    )
    .await;
    failed_transaction_signs_and_records_nothing(&signer, Db::Postgres(&url)).await;

    // A PostgreSQL outage: every found key answers 503, an unknown key still 404.
    let outage = PgOutage::begin(&url).await;
    let ids = vec![pubkey(&key(1)), pubkey(&key(9))];
    let (status, body) = batch(&signer, &ids, &attestation(20, 21, 0x01)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0]["error"]["code"], 503, "{body}");
    assert_eq!(body[1]["error"]["code"], 404, "{body}");
    outage.end().await;
}

/// Two batches for the same keys with conflicting attestations, sent at once (each several times):
/// per key exactly one of the two attestations is signed.
async fn race(signer: &TestSigner) {
    let keys: Vec<SecretKey> = (1..=8).map(key).collect();
    let ids: Vec<String> = keys.iter().map(pubkey).collect();
    for target in [30u64, 31, 32] {
        let requests = [attestation(29, target, 0x0a), attestation(29, target, 0x0b)];
        let (a, b, c, d) = tokio::join!(
            batch(signer, &ids, &requests[0]),
            batch(signer, &ids, &requests[1]),
            batch(signer, &ids, &requests[0]),
            batch(signer, &ids, &requests[1]),
        );
        let answers = [a, b, c, d];
        for (k, id) in ids.iter().enumerate() {
            let mut signed_roots = std::collections::BTreeSet::new();
            for (i, (status, body)) in answers.iter().enumerate() {
                assert_eq!(*status, 200, "{body}");
                assert_eq!(body[k]["identifier"], *id);
                if body[k]["signature"].is_string() {
                    signed_roots.insert(i % 2);
                } else {
                    assert_eq!(body[k]["error"]["code"], 412, "{}", body[k]);
                }
            }
            assert_eq!(
                signed_roots.len(),
                1,
                "key {k} target {target}: {signed_roots:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_conflicting_batches_sign_one_attestation_per_key_sqlite() {
    let keys: Vec<SecretKey> = (1..=8).map(key).collect();
    let signer = TestSigner::start(&keys, &[ON]).await;
    race(&signer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_conflicting_batches_sign_one_attestation_per_key_postgres() {
    let Some(url) = fresh_postgres_db().await else {
        return;
    };
    let keys: Vec<SecretKey> = (1..=8).map(key).collect();
    let signer = TestSigner::start(&keys, &[ON, "--slashing-protection-db-url", &url]).await;
    race(&signer).await;
}

#[tokio::test]
async fn a_batch_larger_than_the_concurrency_limit_runs_alone() {
    let keys: Vec<SecretKey> = (1..=4).map(key).collect();
    let signer = TestSigner::start(&keys, &[ON, "--max-concurrent-sign-requests", "2"]).await;
    let ids: Vec<String> = keys.iter().map(pubkey).collect();
    let (status, body) = batch(&signer, &ids, &attestation(3, 4, 1)).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.as_array()
            .unwrap()
            .iter()
            .all(|i| i["signature"].is_string())
    );
}

/// A sign request whose head was sent (asking for `100 Continue`) and whose body never comes: once
/// this returns, the server holds one concurrency permit for it until the connection closes.
async fn hold_a_permit(addr: std::net::SocketAddr, pubkey: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v1/eth2/sign/{pubkey} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\nExpect: 100-continue\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    common::read_continue(&mut stream).await;
    stream
}

#[tokio::test]
async fn a_batch_counts_one_sign_request_per_identifier_against_the_limit() {
    let keys: Vec<SecretKey> = (1..=2).map(key).collect();
    let signer = TestSigner::start(&keys, &[ON, "--max-concurrent-sign-requests", "3"]).await;
    let ids: Vec<String> = keys.iter().map(pubkey).collect();
    let addr = signer.running.http_addr;
    let held = vec![
        hold_a_permit(addr, &ids[0]).await,
        hold_a_permit(addr, &ids[0]).await,
    ];
    // One permit is free: a batch of two keys is refused at once, and records nothing.
    let response = signer
        .client
        .post(signer.url("/api/v1/eth2/sign"))
        .json(&json!({"identifiers": ids, "signing_request": attestation(5, 6, 1)}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("batch"), "{body}");
    // A batch of one key fits.
    let (status, body) = batch(&signer, &ids[..1], &attestation(5, 6, 2)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body[0]["signature"].is_string(), "{body}");
    assert!(
        signer
            .metrics_text()
            .await
            .contains("ferrosigner_sign_requests_shed_total 1")
    );
    // Once the held requests are gone the batch of two is admitted: key 2 signs the attestation
    // the refused batch asked for (that batch recorded nothing), key 1 signed another one above.
    drop(held);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, body) = batch(&signer, &ids, &attestation(5, 6, 1)).await;
        if status == 200 {
            assert_eq!(body[0]["error"]["code"], 412, "{body}");
            assert!(body[1]["signature"].is_string(), "{body}");
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(
            std::time::Instant::now() < deadline,
            "the permits were never released"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
