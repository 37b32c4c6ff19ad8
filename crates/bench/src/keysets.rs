//! Keystore sets generated once by `ferrosigner generate-keystores` and cached under the cache directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

/// The password of every generated set.
pub const PASSWORD: &str = "ferrosigner-bench";

/// A directory of keystores and its password file.
pub struct KeySet {
    /// Directory holding `keystore-<i>.json`.
    pub dir: PathBuf,
    /// `dir/password.txt`.
    pub password_file: PathBuf,
}

fn count_keystores(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| {
                    let name = e.file_name();
                    let name = name.to_string_lossy();
                    name.starts_with("keystore-") && name.ends_with(".json")
                })
                .count()
        })
        .unwrap_or(0)
}

/// The cached set `<cache>/<kdf>-<count>`, generated with `signer generate-keystores` if missing.
/// `kdf` is `scrypt`, `pbkdf2` or `insecure`.
pub fn ensure(signer: &Path, cache: &Path, kdf: &str, count: usize) -> anyhow::Result<KeySet> {
    let dir = cache.join(format!("{kdf}-{count}"));
    let password_file = dir.join("password.txt");
    if password_file.is_file() && count_keystores(&dir) == count {
        return Ok(KeySet { dir, password_file });
    }
    std::fs::create_dir_all(cache)?;
    let tmp = cache.join(format!("{kdf}-{count}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    // a fixed seed makes the scrypt set reproducible; the others are random keys (faster to make)
    let seed = format!(
        "0x{}",
        hex::encode(format!("ferrosigner-bench-{kdf}-keys-0001"))
    );
    eprintln!(
        "generating {count} {kdf} keystores into {} (cached for later runs)",
        dir.display()
    );
    let start = Instant::now();
    let mut cmd = Command::new(signer);
    cmd.arg("generate-keystores")
        .arg("--count")
        .arg(count.to_string())
        .arg("--output-dir")
        .arg(&tmp)
        .arg("--password")
        .arg(PASSWORD)
        .arg("--kdf")
        .arg(kdf);
    if kdf == "scrypt" {
        cmd.arg("--seed").arg(seed);
    }
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {}", signer.display()))?;
    if !status.success() {
        bail!("generate-keystores failed: {status}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tmp, &dir).context("cannot move the generated keystores into place")?;
    eprintln!("generated in {:.1} s", start.elapsed().as_secs_f64());
    Ok(KeySet { dir, password_file })
}
