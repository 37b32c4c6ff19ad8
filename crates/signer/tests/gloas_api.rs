//! Gloas (remote-signing-api v1.4.0) through a real socket: the sepolia fixtures
//! (`testdata/signing-gloas`), the names and shapes other clients send, multi-MiB envelopes and
//! the memory budget for large bodies.

mod common;

use common::{TestSigner, read_json, secret, testdata};
use serde_json::{Value, json};

fn fixtures() -> Vec<(String, Value)> {
    let dir = testdata().join("signing-gloas");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 41, "the Gloas fixtures in {}", dir.display());
    files
        .into_iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                read_json(&p),
            )
        })
        .collect()
}

fn fixture(prefix: &str) -> Value {
    fixtures()
        .into_iter()
        .find(|(name, _)| name.starts_with(prefix))
        .unwrap_or_else(|| panic!("no fixture {prefix}"))
        .1
}

fn secrets() -> Vec<ferrosigner_bls::SecretKey> {
    let mut seen = std::collections::BTreeSet::new();
    fixtures()
        .iter()
        .map(|(_, f)| f["secret_key"].as_str().unwrap().to_owned())
        .filter(|s| seen.insert(s.clone()))
        .map(|s| secret(&s))
        .collect()
}

async fn sepolia(extra: &[&str]) -> TestSigner {
    let mut args = vec!["--network", "sepolia"];
    args.extend_from_slice(extra);
    TestSigner::start(&secrets(), &args).await
}

#[tokio::test]
async fn every_gloas_fixture_signs_exactly_or_is_rejected() {
    let signer = sepolia(&[]).await;
    let mut signed = 0;
    for (name, f) in fixtures() {
        let pubkey = f["pubkey"].as_str().unwrap();
        let expected = f["expected_status"].as_u64().unwrap();
        let (status, body) = signer.sign(pubkey, &f["request"]).await;
        assert_eq!(status as u64, expected, "{name}: {body}");
        if expected == 200 {
            assert_eq!(body["signature"], f["expected_signature"], "{name}");
            // And without any signingRoot, as most validator clients send it.
            let mut bare = f["request"].clone();
            bare.as_object_mut().unwrap().remove("signingRoot");
            let (status, body) = signer.sign(pubkey, &bare).await;
            assert_eq!(status, 200, "{name} without signingRoot: {body}");
            assert_eq!(body["signature"], f["expected_signature"], "{name}");
            signed += 1;
        } else {
            assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()));
        }
    }
    assert_eq!(signed, 32);
}

/// The object under the request's type key, unwrapped from `{version, data}`.
fn unwrapped(request: &Value, key: &str) -> Value {
    let mut r = request.clone();
    let data = r[key]["data"].clone();
    r[key] = data;
    r
}

#[tokio::test]
async fn aliases_and_unwrapped_objects_sign_the_same() {
    let signer = sepolia(&[]).await;
    for (prefix, key) in [
        ("012", "execution_payload_bid"),
        ("016", "execution_payload_envelope"),
        ("021", "payload_attestation_message"),
        ("024", "proposer_preferences"),
        ("027", "builder_request_auth"),
    ] {
        let f = fixture(prefix);
        let pubkey = f["pubkey"].as_str().unwrap();
        let bare = unwrapped(&f["request"], key);
        let (status, body) = signer.sign(pubkey, &bare).await;
        assert_eq!(status, 200, "{prefix} unwrapped: {body}");
        assert_eq!(body["signature"], f["expected_signature"], "{prefix}");
    }

    // Grandine's type name, wrapped and unwrapped; a whole PayloadAttestationMessage
    // `{validator_index, data}` (only `data` is signed); Lighthouse's key.
    let f = fixture("021");
    let pubkey = f["pubkey"].as_str().unwrap();
    let mut alias = f["request"].clone();
    alias["type"] = json!("PAYLOAD_ATTESTATION");
    let mut alias_bare = unwrapped(&alias, "payload_attestation_message");
    let mut message = alias.clone();
    message["payload_attestation_message"] = json!({
        "validator_index": "123",
        "data": f["request"]["payload_attestation_message"]["data"].clone(),
    });
    let mut lighthouse = unwrapped(&f["request"], "payload_attestation_message");
    let obj = lighthouse.as_object_mut().unwrap();
    let data = obj.remove("payload_attestation_message").unwrap();
    obj.insert("payload_attestation_data".into(), data);
    alias_bare["type"] = json!("payload_attestation");
    for (what, request) in [
        ("alias", alias),
        ("alias unwrapped", alias_bare),
        ("message", message),
        ("lighthouse key", lighthouse),
    ] {
        let (status, body) = signer.sign(pubkey, &request).await;
        assert_eq!(status, 200, "{what}: {body}");
        assert_eq!(body["signature"], f["expected_signature"], "{what}");
    }
}

#[tokio::test]
async fn gloas_objects_at_the_wrong_fork_are_refused() {
    let signer = sepolia(&[]).await;
    let f = fixture("021");
    let pubkey = f["pubkey"].as_str().unwrap();
    let ptc = |slot: &str, current: &str| {
        let mut r = f["request"].clone();
        r.as_object_mut().unwrap().remove("signingRoot");
        r["payload_attestation_message"]["data"]["slot"] = json!(slot);
        r["fork_info"]["fork"]["current_version"] = json!(current);
        r
    };
    // A Fulu slot (epoch 353023), a Fulu fork_info at a Gloas slot.
    for (what, request) in [
        ("fulu slot", ptc("11296767", "0x90000076")),
        ("fulu fork_info", ptc("11296908", "0x90000075")),
    ] {
        let (status, body) = signer.sign(pubkey, &request).await;
        assert_eq!(status, 400, "{what}: {body}");
    }
    // A Fulu (Electra-shaped) aggregate at a Gloas slot.
    let agg = fixture("009");
    let mut fulu = agg["request"].clone();
    fulu.as_object_mut().unwrap().remove("signingRoot");
    fulu["aggregate_and_proof"]["version"] = json!("FULU");
    let (status, body) = signer.sign(agg["pubkey"].as_str().unwrap(), &fulu).await;
    assert_eq!(status, 400, "{body}");
    // A Gloas attestation index beyond the payload status bit.
    let att = fixture("007");
    let mut bad = att["request"].clone();
    bad.as_object_mut().unwrap().remove("signingRoot");
    bad["attestation"]["index"] = json!("2");
    let (status, body) = signer.sign(att["pubkey"].as_str().unwrap(), &bad).await;
    assert_eq!(status, 400, "{body}");
    // Mainnet schedules no Gloas epoch: a Gloas type is refused there.
    let mainnet = TestSigner::start(&secrets(), &[]).await;
    let (status, body) = mainnet.sign(pubkey, &f["request"]).await;
    assert_eq!(status, 400, "{body}");
}

/// A self-built envelope (fixture 017) with `mib` MiB of extra transaction bytes.
fn big_envelope(mib: usize) -> (String, Value) {
    let f = fixture("017");
    let mut request = f["request"].clone();
    request.as_object_mut().unwrap().remove("signingRoot");
    let txs = request["execution_payload_envelope"]["data"]["payload"]["transactions"]
        .as_array_mut()
        .unwrap();
    let tx = format!("0x02{}", "ab".repeat(128 * 1024 - 1));
    for _ in 0..mib * 8 {
        txs.push(json!(tx));
    }
    (f["pubkey"].as_str().unwrap().to_owned(), request)
}

#[tokio::test]
async fn multi_mib_envelope_signs_and_other_types_stay_small() {
    let signer = sepolia(&[]).await;
    let (pubkey, request) = big_envelope(6);
    let body = serde_json::to_vec(&request).unwrap();
    assert!(body.len() > 12 << 20, "{} bytes", body.len());
    let expected = ferrosigner_consensus::prepare(
        &body,
        &ferrosigner_consensus::Network::by_name("sepolia").unwrap(),
    )
    .unwrap()
    .signing_root;
    let sk = secrets()
        .into_iter()
        .find(|s| s.public_key().to_hex() == pubkey)
        .unwrap();
    let (status, response) = signer.sign(&pubkey, &request).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(response["signature"], json!(sk.sign(&expected).to_hex()));

    // The same bytes under another type are over the ordinary 1 MiB limit: 413.
    let mut other = request.clone();
    other["type"] = json!("PROPOSER_PREFERENCES");
    let (status, response) = signer.sign(&pubkey, &other).await;
    assert_eq!(status, 413, "{response}");
    // Over the large-body maximum (32 MiB by default): 413 before the body is read.
    let (_, huge) = big_envelope(17);
    let (status, response) = signer.sign(&pubkey, &huge).await;
    assert_eq!(status, 413, "{response}");
}

#[tokio::test]
async fn large_bodies_in_flight_stay_within_the_budget() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Budget for one 8 MiB body (charged twice its size) and not two.
    let signer = sepolia(&["--large-request-body-budget-bytes", "20000000"]).await;
    let (pubkey, request) = big_envelope(4);
    let body = serde_json::to_vec(&request).unwrap();
    assert!(body.len() > 8 << 20 && body.len() * 2 < 20_000_000);
    let path = format!("/api/v1/eth2/sign/{pubkey}");

    // A slow client declares a large body and sends only part of it: its bytes are reserved.
    let mut slow = tokio::net::TcpStream::connect(signer.running.http_addr)
        .await
        .unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    slow.write_all(&body[..1 << 20]).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    // Many concurrent large bodies meanwhile: every one is refused with 503, none is buffered.
    let sends = (0..8).map(|_| {
        signer
            .client
            .post(signer.url(&path))
            .header("Accept", "application/json")
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send()
    });
    for response in futures::future::join_all(sends).await {
        let response = response.unwrap();
        assert_eq!(response.status().as_u16(), 503);
        let error: Value = response.json().await.unwrap();
        assert!(error["error"].as_str().unwrap().contains("large request"));
    }
    // Small requests are not affected.
    let (status, _) = signer
        .sign(
            fixture("024")["pubkey"].as_str().unwrap(),
            &fixture("024")["request"],
        )
        .await;
    assert_eq!(status, 200);

    // The slow client finishes: it is signed, and the budget is free again.
    slow.write_all(&body[1 << 20..]).await.unwrap();
    let mut response = vec![0u8; 512];
    let n = slow.read(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response[..n]);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    drop(slow);
    let sends = (0..3).map(|_| {
        signer
            .client
            .post(signer.url(&path))
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send()
    });
    let statuses: Vec<u16> = futures::future::join_all(sends)
        .await
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
    assert!(statuses.contains(&200), "{statuses:?}");
}
