//! Durable file writes: private directories, atomic replacement, two-phase (staged) writes, and clean-up
//! of the temporary files a crash can leave behind.
//!
//! Every function here blocks on the disk: call it from a blocking thread, never from an async worker.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Creates `dir` (and parents) readable by the owner only.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Writes `bytes` to `path` atomically: a temporary file beside it with `mode`, fsync, rename, fsync of the
/// directory. A crash leaves either the old file or the new one, never a partial file (and at worst a hidden
/// temporary file that [`remove_temp_files`] cleans).
pub fn write_file_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    Staged::write(path, bytes, mode)?.commit()
}

/// A file written and synced under a hidden temporary name beside its destination, not yet visible there.
/// [`Staged::commit`] renames it into place; dropping it uncommitted removes the temporary file.
#[derive(Debug)]
pub struct Staged {
    /// The temporary file, until it is renamed into place.
    tmp: Option<PathBuf>,
    dest: PathBuf,
}

impl Staged {
    /// Writes `bytes` with `mode` to `.<name>.<random>.tmp` beside `dest` and syncs it.
    pub fn write(dest: &Path, bytes: &[u8], mode: u32) -> std::io::Result<Staged> {
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).map_err(|e| std::io::Error::other(e.to_string()))?;
        let tmp = parent(dest).join(format!(".{name}.{}{TEMP_SUFFIX}", hex::encode(suffix)));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        let staged = Staged {
            tmp: Some(tmp),
            dest: dest.to_path_buf(),
        };
        file.write_all(bytes)?;
        file.sync_all()?;
        Ok(staged)
    }

    /// The file's final path.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Renames the file into place and syncs the directory.
    pub fn commit(mut self) -> std::io::Result<()> {
        if let Some(tmp) = &self.tmp {
            std::fs::rename(tmp, &self.dest)?;
        }
        // Renamed: nothing left for `Drop` to remove.
        self.tmp = None;
        sync_dir(parent(&self.dest))
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(tmp) = &self.tmp {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

const TEMP_SUFFIX: &str = ".tmp";

fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Syncs a directory, making renames and removals in it durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Removes the hidden temporary files (`.<name>.<hex>.tmp`) that an interrupted [`Staged`] write leaves in
/// `dir`; they may hold a password. Returns how many were removed. A missing `dir` has none.
pub fn remove_temp_files(dir: &Path) -> std::io::Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(TEMP_SUFFIX) && entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    if removed > 0 {
        sync_dir(dir)?;
    }
    Ok(removed)
}

/// Removes `path`; a file that is already gone counts as removed.
pub fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_files_appear_only_on_commit_and_vanish_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("a.txt");
        let staged = Staged::write(&dest, b"secret", 0o600).unwrap();
        assert!(!dest.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        drop(staged);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

        Staged::write(&dest, b"secret", 0o600)
            .unwrap()
            .commit()
            .unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"secret");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn temp_files_left_by_a_crash_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let staged = Staged::write(&dir.path().join("k.txt"), b"pw", 0o600).unwrap();
        // A crash: the temporary file stays.
        std::mem::forget(staged);
        std::fs::write(dir.path().join("keep.json"), b"{}").unwrap();
        std::fs::write(dir.path().join(".hidden.json"), b"{}").unwrap();
        assert_eq!(remove_temp_files(dir.path()).unwrap(), 1);
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, [".hidden.json", "keep.json"]);
        assert_eq!(remove_temp_files(&dir.path().join("missing")).unwrap(), 0);
    }
}
