//! The Web3Signer-compatible eth2 API through a real socket, against the conformance fixtures.

mod common;

use common::{TestSigner, read_json, secret, testdata};
use serde_json::{Value, json};

fn fixtures() -> Vec<(String, Value)> {
    let dir = testdata().join("signing");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 60,
        "expected the generated signing fixtures in {}",
        dir.display()
    );
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

fn fixture_secrets() -> Vec<ferrosigner_bls::SecretKey> {
    let mut seen = std::collections::BTreeSet::new();
    fixtures()
        .iter()
        .map(|(_, f)| f["secret_key"].as_str().unwrap().to_owned())
        .filter(|s| seen.insert(s.clone()))
        .map(|s| secret(&s))
        .collect()
}

#[tokio::test]
async fn every_fixture_signs_exactly_or_is_rejected() {
    let signer = TestSigner::start(&fixture_secrets(), &[]).await;
    let mut signed = 0;
    for (name, fixture) in fixtures() {
        let pubkey = fixture["pubkey"].as_str().unwrap();
        let (status, body) = signer.sign(pubkey, &fixture["request"]).await;
        let expected_status = fixture["expected_status"].as_u64().unwrap();
        assert_eq!(status as u64, expected_status, "{name}: {body}");
        if expected_status == 200 {
            assert_eq!(body["signature"], fixture["expected_signature"], "{name}");
            signed += 1;
        } else {
            assert!(
                body["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{name}: {body}"
            );
        }
    }
    assert!(signed >= 50, "only {signed} fixtures signed");
    signer.running.shutdown().await;
}

#[tokio::test]
async fn deposit_vectors_give_web3signers_exact_signatures() {
    let vectors = read_json(&testdata().join("web3signer/deposit_signing_vectors.json"));
    let secrets: Vec<_> = vectors["secret_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| secret(s.as_str().unwrap()))
        .collect();
    let signer = TestSigner::start(&secrets, &[]).await;
    let cases = vectors["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let request = json!({
            "type": "DEPOSIT",
            "deposit": {
                "pubkey": case["pubkey"],
                "withdrawal_credentials": case["withdrawal_credentials"],
                "amount": case["amount"],
                "genesis_fork_version": case["genesis_fork_version"],
            }
        });
        let (status, body) = signer
            .sign(case["pubkey"].as_str().unwrap(), &request)
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["signature"], case["expected_signature"]);
    }
    signer.running.shutdown().await;
}

/// A valid RANDAO request for the fixtures' key.
fn randao() -> (String, Value) {
    let fixture = read_json(&testdata().join("signing/005-randao_reveal-phase0.json"));
    (
        fixture["pubkey"].as_str().unwrap().to_owned(),
        fixture["request"].clone(),
    )
}

async fn raw_post(addr: std::net::SocketAddr, path: &str, body: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn accept_header_chooses_json_or_text() {
    let signer = TestSigner::start(&fixture_secrets(), &[]).await;
    let (pubkey, request) = randao();
    let url = signer.url(&format!("/api/v1/eth2/sign/{pubkey}"));
    // No Accept header at all (an HTTP client library would add `*/*`, so speak HTTP/1.1 by hand): text.
    let raw = raw_post(
        signer.running.http_addr,
        &format!("/api/v1/eth2/sign/{pubkey}"),
        &request.to_string(),
    )
    .await;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain"),
        "{head}"
    );
    assert!(body.starts_with("0x") && body.len() == 194, "{body}");
    for (accept, json_expected) in [
        (Some("text/plain"), false),
        (Some("application/json"), true),
        (Some("*/*"), true),
        (Some("text/plain, application/json;q=0.5"), true),
        (Some("application/octet-stream"), false),
    ] {
        let mut req = signer.client.post(&url).json(&request);
        if let Some(a) = accept {
            req = req.header("Accept", a);
        }
        let response = req.send().await.unwrap();
        assert_eq!(response.status(), 200, "{accept:?}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        let text = response.text().await.unwrap();
        if json_expected {
            assert!(
                content_type.starts_with("application/json"),
                "{accept:?}: {content_type}"
            );
            let v: Value = serde_json::from_str(&text).unwrap();
            assert!(v["signature"].as_str().unwrap().starts_with("0x"));
        } else {
            assert!(
                content_type.starts_with("text/plain"),
                "{accept:?}: {content_type}"
            );
            assert!(text.starts_with("0x") && text.len() == 194, "{text}");
        }
    }
    signer.running.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_clear_json_errors() {
    let signer = TestSigner::start(&fixture_secrets(), &["--max-request-body-bytes", "4096"]).await;
    let (pubkey, request) = randao();
    let unknown = secret("0x2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a")
        .public_key()
        .to_hex();

    // unknown but well-formed key: 404
    let (status, body) = signer.sign(&unknown, &request).await;
    assert_eq!(status, 404, "{body}");
    // malformed key in the path: 400
    let (status, _) = signer.sign("0x1234", &request).await;
    assert_eq!(status, 400);
    // upper-case key and no 0x prefix still find the key
    let (status, _) = signer
        .sign(&pubkey.trim_start_matches("0x").to_uppercase(), &request)
        .await;
    assert_eq!(status, 200);

    let mut cases: Vec<(&str, Value)> = Vec::new();
    let mut wrong_type = request.clone();
    wrong_type["randao_reveal"]["epoch"] = json!({"nested": true});
    cases.push(("epoch is an object", wrong_type));
    let mut overflow = request.clone();
    overflow["randao_reveal"]["epoch"] = json!("18446744073709551616");
    cases.push(("u64 overflow", overflow));
    let mut negative = request.clone();
    negative["randao_reveal"]["epoch"] = json!("-1");
    cases.push(("negative", negative));
    let mut bad_hex = request.clone();
    bad_hex["fork_info"]["genesis_validators_root"] = json!("0xzz");
    cases.push(("bad hex", bad_hex));
    let mut other_chain = request.clone();
    other_chain["fork_info"]["genesis_validators_root"] = json!(format!("0x{}", "11".repeat(32)));
    cases.push(("another network's genesis validators root", other_chain));
    let mut mismatch = request.clone();
    mismatch["signingRoot"] = json!(format!("0x{}", "ab".repeat(32)));
    cases.push(("signingRoot mismatch", mismatch));
    cases.push(("array body", json!([1, 2, 3])));
    cases.push(("no type", json!({"randao_reveal": {"epoch": "1"}})));
    for (what, body) in cases {
        let (status, response) = signer.sign(&pubkey, &body).await;
        assert_eq!(status, 400, "{what}: {response}");
        assert!(
            response["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{what}: {response}"
        );
    }

    let url = signer.url(&format!("/api/v1/eth2/sign/{pubkey}"));
    for raw in [
        "",
        "{",
        "not json",
        "{\"type\": \"RANDAO_REVEAL\",}",
        &"[".repeat(3000),
    ] {
        let response = signer
            .client
            .post(&url)
            .body(raw.to_owned())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        assert!(status == 400 || status == 413, "{raw:.20}: {status}");
        assert!(body["error"].is_string());
    }
    // over the body limit: 413 with a JSON body
    let huge = format!(
        "{{\"type\":\"RANDAO_REVEAL\",\"pad\":\"{}\"}}",
        "x".repeat(10_000)
    );
    let response = signer.client.post(&url).body(huge).send().await.unwrap();
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].is_string());
    // wrong method: 405 JSON
    let response = signer.client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert!(response.json::<Value>().await.unwrap()["error"].is_string());
    // unknown route: 404 JSON
    let response = signer.client.get(signer.url("/nope")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert!(response.json::<Value>().await.unwrap()["error"].is_string());
    signer.running.shutdown().await;
}

#[tokio::test]
async fn public_keys_upcheck_healthcheck_and_metrics() {
    let secrets = fixture_secrets();
    let signer = TestSigner::start(&secrets, &[]).await;
    let keys: Vec<String> = signer.get_json("/api/v1/eth2/publicKeys").await;
    let mut expected: Vec<String> = secrets.iter().map(|s| s.public_key().to_hex()).collect();
    expected.sort();
    assert_eq!(keys, expected);

    let response = signer
        .client
        .get(signer.url("/upcheck"))
        .send()
        .await
        .unwrap();
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(response.text().await.unwrap(), "OK");
    let response = signer
        .client
        .get(signer.url("/upcheck"))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"status": "OK"})
    );

    let response = signer
        .client
        .get(signer.url("/healthcheck"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let health: Value = response.json().await.unwrap();
    assert_eq!(health["status"], "UP");
    assert_eq!(health["outcome"], "UP");
    let keys_check = health["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "keys-check")
        .unwrap();
    assert_eq!(keys_check["data"]["keys-loaded"], secrets.len());

    let (pubkey, request) = randao();
    assert_eq!(signer.sign(&pubkey, &request).await.0, 200);
    let text = signer.metrics_text().await;
    assert!(
        text.contains(
            "ferrosigner_sign_requests_total{type=\"RANDAO_REVEAL\",outcome=\"signed\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains(&format!("signing_signers_loaded_count {}", secrets.len())),
        "{text}"
    );
    assert!(
        text.contains("signing_bls_signing_duration_seconds_bucket"),
        "{text}"
    );
    signer.running.shutdown().await;
}

#[tokio::test]
async fn a_bad_keystore_is_reported_and_the_rest_load() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let good = secret("0x71d3f778f98da35618f2db52678bed4dfd0ce13ca52bbdaffc93917c8c56d1a7");
    let password_dir = dir.path().join("passwords");
    std::fs::create_dir_all(&password_dir).unwrap();
    common::write_keystores(
        &keys,
        &[good.clone(), secret(&format!("0x{}", "22".repeat(32)))],
        "right",
    );
    std::fs::write(password_dir.join("keystore-0.txt"), "right\n").unwrap();
    std::fs::write(password_dir.join("keystore-1.txt"), "hunter2-not-it").unwrap();
    std::fs::write(keys.join("garbage.json"), "{not a keystore").unwrap();
    let data = dir.path().join("data");
    let args = common::local_args(
        &data,
        &[
            "--keystores-path",
            keys.to_str().unwrap(),
            "--keystores-passwords-path",
            password_dir.to_str().unwrap(),
        ],
    );
    let running = ferrosigner::start(args).await.unwrap();
    running.wait_keys_loaded().await;
    assert_eq!(running.signer.keys().len(), 1);
    assert!(
        running
            .signer
            .keys()
            .get(good.public_key().as_bytes())
            .is_some()
    );
    let report = running.signer.keys().load_state();
    assert_eq!(report.failures.len(), 2);
    let names: Vec<String> = report
        .failures
        .iter()
        .map(|f| f.file.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["garbage.json", "keystore-1.json"]);
    for f in &report.failures {
        assert!(
            !f.reason.contains("hunter2"),
            "a reason must not echo the password: {}",
            f.reason
        );
    }
    running.shutdown().await;
}
