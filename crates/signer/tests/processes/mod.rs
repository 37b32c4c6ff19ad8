//! Real processes for tests: a private PostgreSQL cluster and the signer binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferrosigner_bls::SecretKey;

use crate::common::free_port;

/// Whether the tests run under `CI=true`.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips (loudly) or, under `CI=true`, fails when a test's prerequisite is missing.
pub fn unavailable(what: &str) {
    if ci() {
        panic!("{what} is required under CI=true");
    }
    eprintln!("SKIPPED: {what} is not available here");
}

/// Whether the test runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A PostgreSQL cluster of this test's own on a free port, stopped and removed on drop.
pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl PrivatePostgres {
    /// A cluster with `trust` authentication on 127.0.0.1, or `None` (after [`unavailable`]).
    pub fn start() -> Option<PrivatePostgres> {
        Self::start_with(&[], "")
    }

    /// Like [`PrivatePostgres::start`], with `files` (name, content) written into the data directory
    /// after initdb (owned by the server's user, mode 0600: `pg_hba.conf`, a TLS key and certificate…)
    /// and `options` (`-c name=value …`) added to the server's command line.
    pub fn start_with(files: &[(&str, &str)], options: &str) -> Option<PrivatePostgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|versions| {
                versions
                    .filter_map(|v| v.ok())
                    .map(|v| v.path().join("bin"))
                    .filter(|b| b.join("initdb").exists())
                    .max()
            });
        let Some(bin) = bin else {
            unavailable("PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let pg = PrivatePostgres {
            dir,
            bin,
            port: free_port(),
        };
        std::fs::create_dir(pg.data()).unwrap();
        if is_root() {
            // PostgreSQL refuses to run as root: the cluster belongs to the postgres user.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(pg.dir.path(), std::fs::Permissions::from_mode(0o755))
                .unwrap();
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(pg.data())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown the cluster dir to postgres");
        }
        let out = pg
            .pg_command("initdb")
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(pg.data())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for (name, content) in files {
            use std::os::unix::fs::PermissionsExt;
            let path = pg.data().join(name);
            std::fs::write(&path, content).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            if is_root() {
                let ok = Command::new("chown")
                    .arg("postgres:postgres")
                    .arg(&path)
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(ok, "chown {name} to postgres");
            }
        }
        pg.ctl_start(options);
        Some(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn pg_command(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    /// Starts the server (again) with `options` added to its command line.
    pub fn ctl_start(&self, options: &str) {
        let out = self
            .pg_command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-w", "-l"])
            .arg(self.data().join("log"))
            .args([
                "-o",
                &format!(
                    "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off {options}",
                    self.port
                ),
                "start",
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops the server at once.
    pub fn ctl_stop(&self) {
        let _ = self
            .pg_command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-w", "-m", "immediate", "stop"])
            .output();
    }

    /// The postmaster and its children (from /proc), for SIGSTOP/SIGCONT.
    fn pids(&self) -> Vec<i32> {
        let Ok(pidfile) = std::fs::read_to_string(self.data().join("postmaster.pid")) else {
            return vec![];
        };
        let main: i32 = pidfile.lines().next().unwrap().trim().parse().unwrap();
        let mut pids = vec![main];
        for entry in std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            // The parent pid is the second field after the parenthesised command name.
            let parent = std::fs::read_to_string(entry.path().join("stat"))
                .ok()
                .and_then(|stat| {
                    let after = stat.rsplit_once(')')?.1.to_owned();
                    after.split_whitespace().nth(1)?.parse::<i32>().ok()
                });
            if parent == Some(main) {
                pids.push(pid);
            }
        }
        pids
    }

    /// Sends `signal` to the server and its children.
    pub fn signal(&self, signal: i32) {
        for pid in self.pids() {
            // SAFETY: kill has no memory preconditions; the pids belong to this test's cluster.
            unsafe { libc::kill(pid, signal) };
        }
    }

    /// The URL of the `postgres` database as user `postgres`, `params` (`?…`) appended.
    pub fn url(&self, params: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres{params}",
            self.port
        )
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        self.ctl_stop();
    }
}

/// The real binary with JSON logs written to `log`.
pub fn spawn_signer(dir: &Path, log: &Path, key: SecretKey, extra: &[&str]) -> (Child, String) {
    let keys = dir.join("keys");
    let password_file = crate::common::write_keystores(&keys, &[key], "pw");
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_ferrosigner"))
        .arg("run")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args([
            "--http-listen-port",
            &port.to_string(),
            "--metrics-enabled",
            "false",
        ])
        .args(["--log-format", "json", "--key-cache-enabled", "false"])
        .arg("--keystores-path")
        .arg(&keys)
        .arg("--keystores-password-file")
        .arg(&password_file)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    (child, format!("http://127.0.0.1:{port}"))
}

/// Waits (up to 60 s) until the signer at `base` answers `/healthcheck` with 200; fails with its log
/// if it exits or does not get there.
pub async fn wait_healthy(client: &reqwest::Client, base: &str, child: &mut Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let log = || std::fs::read_to_string(log).unwrap_or_default();
    while !client
        .get(format!("{base}/healthcheck"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(
            child.try_wait().unwrap().is_none(),
            "signer exited: {}",
            log()
        );
        assert!(Instant::now() < deadline, "{}", log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
