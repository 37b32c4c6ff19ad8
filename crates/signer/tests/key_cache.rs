//! The key cache: a restart takes unchanged keys from one sealed file; any change is detected and the cache
//! rebuilt; the file is private, never holds a secret in clear, and follows imports and deletions.

mod common;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{secret, write_keystores};
use ferrosigner_bls::SecretKey;
use ferrosigner_keystore::{Kdf, Keystore};

fn keys() -> Vec<SecretKey> {
    (1..=3u8)
        .map(|i| secret(&format!("0x{}", hex::encode([0x40 + i; 32]))))
        .collect()
}

struct Setup {
    dir: tempfile::TempDir,
    keys_dir: PathBuf,
    password_file: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let keys_dir = dir.path().join("keys");
        let password_file = write_keystores(&keys_dir, &keys(), "cache test password");
        Setup {
            dir,
            keys_dir,
            password_file,
        }
    }

    fn cache(&self) -> PathBuf {
        self.dir.path().join("data/key-cache.bin")
    }

    async fn start(&self, extra: &[&str]) -> ferrosigner::Running {
        let data = self.dir.path().join("data");
        let mut args = vec![
            "--keystores-path",
            self.keys_dir.to_str().unwrap(),
            "--keystores-password-file",
            self.password_file.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let running = ferrosigner::start(common::local_args(&data, &args))
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(30), running.wait_keys_loaded())
            .await
            .unwrap();
        running
    }
}

/// Waits until the cache file changes from `before` (written in the background after loading).
async fn wait_cache_written(path: &Path, before: Option<&[u8]>) -> Vec<u8> {
    for _ in 0..500 {
        if let Ok(bytes) = std::fs::read(path)
            && Some(bytes.as_slice()) != before
        {
            return bytes;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the key cache {} was not written", path.display());
}

/// The fingerprints and passwords of the keystores in `dir` (all with one password).
fn passwords(dir: &Path, password: &str) -> HashMap<[u8; 32], String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            (
                ferrosigner::keys::cache::fingerprint(&std::fs::read(p).unwrap()),
                password.to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn restart_uses_the_cache_and_detects_changes() {
    let setup = Setup::new();
    let first = setup.start(&[]).await;
    assert_eq!(first.signer.keys().load_state().from_cache, 0);
    let bytes = wait_cache_written(&setup.cache(), None).await;
    assert_eq!(
        std::fs::metadata(setup.cache())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    for k in keys() {
        let secret_bytes = k.to_bytes();
        assert!(
            !bytes.windows(32).any(|w| w == secret_bytes.as_slice()),
            "a secret is in clear in the cache"
        );
    }
    first.shutdown().await;

    // unchanged keystores: every key comes from the cache
    let second = setup.start(&[]).await;
    let report = second.signer.keys().load_state();
    assert_eq!((report.from_cache, second.signer.keys().len()), (3, 3));
    second.shutdown().await;

    // a keystore added: the cached keys come from the cache, the new one is decrypted, the cache rewritten
    let added = secret(&format!("0x{}", hex::encode([0x50; 32])));
    let ks = Keystore::encrypt(&added, "cache test password", Kdf::Pbkdf2 { c: 16 }, "").unwrap();
    std::fs::write(setup.keys_dir.join("keystore-new.json"), ks.to_json()).unwrap();
    let before = std::fs::read(setup.cache()).unwrap();
    let third = setup.start(&[]).await;
    assert_eq!(
        (
            third.signer.keys().load_state().from_cache,
            third.signer.keys().len()
        ),
        (3, 4)
    );
    wait_cache_written(&setup.cache(), Some(&before)).await;
    third.shutdown().await;

    // a cached keystore changed (re-encrypted: new salt, same key): its password can no longer be matched,
    // so the whole cache is refused and rebuilt; the next start uses the new cache
    let ks = Keystore::encrypt(
        &keys()[0],
        "cache test password",
        Kdf::Pbkdf2 { c: 16 },
        "m/12381/3600/0/0/0",
    )
    .unwrap();
    std::fs::write(setup.keys_dir.join("keystore-0.json"), ks.to_json()).unwrap();
    let before = std::fs::read(setup.cache()).unwrap();
    let fourth = setup.start(&[]).await;
    assert_eq!(
        (
            fourth.signer.keys().load_state().from_cache,
            fourth.signer.keys().len()
        ),
        (0, 4)
    );
    wait_cache_written(&setup.cache(), Some(&before)).await;
    fourth.shutdown().await;
    let again = setup.start(&[]).await;
    assert_eq!(again.signer.keys().load_state().from_cache, 4);
    again.shutdown().await;

    // a tampered cache is refused as a whole; keys still load by decryption and sign correctly
    let mut tampered = std::fs::read(setup.cache()).unwrap();
    let last = tampered.len() - 40;
    tampered[last] ^= 1;
    std::fs::write(setup.cache(), &tampered).unwrap();
    let fifth = setup.start(&[]).await;
    assert_eq!(fifth.signer.keys().load_state().from_cache, 0);
    assert_eq!(fifth.signer.keys().len(), 4);
    for k in keys() {
        let entry = fifth.signer.keys().get(k.public_key().as_bytes()).unwrap();
        assert_eq!(entry.secret.to_bytes().as_slice(), k.to_bytes().as_slice());
    }
    wait_cache_written(&setup.cache(), Some(&tampered)).await;
    fifth.shutdown().await;

    // the cache opens only with every keystore's password
    let mut wrong = passwords(&setup.keys_dir, "cache test password");
    let opened = ferrosigner::keys::cache::read(
        &setup.cache(),
        &wrong.iter().map(|(f, p)| (*f, p.as_str())).collect(),
    );
    assert_eq!(opened.unwrap().len(), 4);
    if let Some(p) = wrong.values_mut().next() {
        *p = "not it".into();
    }
    let opened = ferrosigner::keys::cache::read(
        &setup.cache(),
        &wrong.iter().map(|(f, p)| (*f, p.as_str())).collect(),
    );
    assert!(opened.is_err());

    // opting out removes the file
    let sixth = setup.start(&["--key-cache-enabled", "false"]).await;
    assert!(!setup.cache().exists());
    assert_eq!(sixth.signer.keys().load_state().from_cache, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !setup.cache().exists(),
        "no cache may be written when disabled"
    );
    sixth.shutdown().await;
}

/// A shutdown right after loading still writes the cache the loading asked for (the next start needs it).
#[tokio::test]
async fn a_shutdown_right_after_loading_still_writes_the_cache() {
    let setup = Setup::new();
    let first = setup.start(&[]).await;
    first.shutdown().await;
    assert!(setup.cache().exists());
    let second = setup.start(&[]).await;
    assert_eq!(second.signer.keys().load_state().from_cache, keys().len());
    second.shutdown().await;
}
