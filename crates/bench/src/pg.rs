//! A fresh PostgreSQL database per run, and the statistics that count round trips per slashing check.
//!
//! By default the database lives on a private cluster ([`PrivateCluster`]): `initdb` into a temporary
//! directory, the server on a free 127.0.0.1 port with its unix socket in that directory, `fsync=on`
//! and default settings otherwise; it is stopped and removed after the run. A shared server's
//! checkpoints (forced by other users' `CREATE` / `DROP DATABASE`) would otherwise stall the signer's
//! checks for reasons of their own. `--pg-url` names an existing server to use instead.
//!
//! `track_functions = 'all'` is set on the bench database so `pg_stat_user_functions` counts the calls
//! of `fs_check_attestation` / `fs_check_block`; `pg_stat_database.xact_commit` of that database counts
//! committed transactions (each statement outside a transaction is one). Both, divided by the checks
//! the client saw answered (200 or 412), give transactions and calls per check.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use tokio_postgres::{Client, NoTls};

use crate::server::free_port;

/// Where the PostgreSQL server binaries of each installed major version live.
const PG_LIB: &str = "/usr/lib/postgresql";

/// The `bin` directory of the newest PostgreSQL installed under `/usr/lib/postgresql/<version>/` that
/// has `initdb`, or `None`.
pub fn server_binaries() -> Option<PathBuf> {
    newest_bin(Path::new(PG_LIB))
}

/// The `bin` directory under `lib/<version>/` with `initdb` and the highest version (compared as
/// numbers, so 10 is newer than 9.6).
fn newest_bin(lib: &Path) -> Option<PathBuf> {
    let version =
        |name: &str| -> Option<Vec<u64>> { name.split('.').map(|p| p.parse().ok()).collect() };
    std::fs::read_dir(lib)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = version(e.file_name().to_str()?)?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, bin)| bin)
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The output of a finished command, or an error with its stderr.
fn run(cmd: &mut Command, what: &str) -> anyhow::Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A PostgreSQL cluster of this run's own, stopped and its directory removed on drop.
///
/// PostgreSQL refuses to run as root: as root, the cluster belongs to the `postgres` user and its tools
/// run through `runuser -u postgres --`; otherwise they run as the current user.
pub struct PrivateCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_postgres: bool,
    running: bool,
    /// The server's TCP port on 127.0.0.1.
    pub port: u16,
    /// `postgres --version`, e.g. `postgres (PostgreSQL) 16.4`.
    pub version: String,
}

impl PrivateCluster {
    /// `initdb` (trust authentication, superuser `postgres`) into a new temporary directory, then starts
    /// the server on a free 127.0.0.1 port with `fsync=on`, its unix socket in that directory.
    pub fn start(bin: &Path) -> anyhow::Result<PrivateCluster> {
        let dir = tempfile::Builder::new()
            .prefix("ferrosigner-bench-pg-")
            .tempdir()
            .context("cannot create a temporary directory for the PostgreSQL cluster")?;
        let mut cluster = PrivateCluster {
            dir,
            bin: bin.to_owned(),
            as_postgres: is_root(),
            running: false,
            port: free_port()?,
            version: String::new(),
        };
        cluster.version = run(
            Command::new(bin.join("postgres")).arg("--version"),
            "postgres --version",
        )?;
        for sub in [cluster.data(), cluster.socket_dir()] {
            std::fs::create_dir(&sub)
                .with_context(|| format!("cannot create {}", sub.display()))?;
        }
        if cluster.as_postgres {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(cluster.dir.path(), std::fs::Permissions::from_mode(0o755))
                .context("cannot open the cluster directory to the postgres user")?;
            run(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(cluster.data())
                    .arg(cluster.socket_dir()),
                "chown postgres:postgres of the cluster directory",
            )?;
        }
        run(
            cluster
                .tool("initdb")
                .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
                .arg(cluster.data()),
            "initdb",
        )?;
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{}' -c fsync=on",
            cluster.port,
            cluster.socket_dir().display()
        );
        // From here on, drop stops the server whatever happens.
        cluster.running = true;
        run(
            cluster
                .tool("pg_ctl")
                .arg("-D")
                .arg(cluster.data())
                .args(["-w", "-l"])
                .arg(cluster.data().join("server.log"))
                .args(["-o", &options, "start"]),
            "pg_ctl start",
        )
        .map_err(|e| {
            let log =
                std::fs::read_to_string(cluster.data().join("server.log")).unwrap_or_default();
            e.context(format!("server log: {}", log.trim()))
        })?;
        Ok(cluster)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("socket")
    }

    fn tool(&self, name: &str) -> Command {
        let exe = self.bin.join(name);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    /// The URL of the cluster's `postgres` database as user `postgres`.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// One line for the report: what ran, where, and as whom.
    pub fn describe(&self) -> String {
        format!(
            "a private cluster of this run ({}, `{}`), run as {}, on 127.0.0.1:{} with `fsync=on` and \
             default settings otherwise, removed after the run",
            self.version,
            self.bin.display(),
            if self.as_postgres {
                "user postgres"
            } else {
                "the bench's user"
            },
            self.port
        )
    }

    /// Stops the server (fast shutdown; immediate if that fails). The directory goes when `self` drops.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if !self.running {
            return Ok(());
        }
        self.running = false;
        let stop = |mode: &str| {
            run(
                self.tool("pg_ctl")
                    .arg("-D")
                    .arg(self.data())
                    .args(["-w", "-m", mode, "stop"]),
                "pg_ctl stop",
            )
        };
        stop("fast").or_else(|_| stop("immediate")).map(|_| ())
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!(
                "NOTICE: the private PostgreSQL cluster in {} did not stop: {e:#}",
                self.dir.path().display()
            );
        }
    }
}

/// `url` with any password replaced by `***`, for the report and the log.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// An admin connection and the database created for this run.
pub struct BenchDb {
    admin: Client,
    /// Database name.
    pub name: String,
    /// URL of the database, for `--slashing-protection-db-url`.
    pub url: String,
}

async fn connect(url: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("cannot connect to PostgreSQL at {}", redacted(url)))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

impl BenchDb {
    /// Connects to `admin_url` and creates a fresh database next to it.
    pub async fn create(admin_url: &str) -> anyhow::Result<BenchDb> {
        let admin = connect(admin_url).await?;
        let mut suffix = [0u8; 6];
        getrandom::fill(&mut suffix).map_err(|e| anyhow::anyhow!("getrandom: {e}"))?;
        let name = format!("fs_bench_{}", hex::encode(suffix));
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .context("cannot create the bench database")?;
        admin
            .batch_execute(&format!(
                "ALTER DATABASE {name} SET track_functions = 'all'"
            ))
            .await
            .context("cannot set track_functions on the bench database")?;
        let (base, _) = admin_url
            .rsplit_once('/')
            .context("the PostgreSQL URL has no database part")?;
        let url = format!("{base}/{name}");
        Ok(BenchDb { admin, name, url })
    }

    /// Committed transactions in the bench database so far.
    pub async fn xact_commit(&self) -> anyhow::Result<i64> {
        let row = self
            .admin
            .query_one(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = $1",
                &[&self.name],
            )
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Calls of the check functions since the database was created (read from inside it).
    pub async fn check_calls(&self) -> anyhow::Result<i64> {
        let client = connect(&self.url).await?;
        let row = client
            .query_one(
                "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_user_functions \
                 WHERE funcname IN ('fs_check_attestation', 'fs_check_block')",
                &[],
            )
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Drops the database.
    pub async fn drop_db(self) -> anyhow::Result<()> {
        self.admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_version_with_initdb_wins_numerically() {
        let lib = tempfile::tempdir().unwrap();
        for (version, initdb) in [("9.6", true), ("10", true), ("16", true), ("17", false)] {
            let bin = lib.path().join(version).join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            if initdb {
                std::fs::write(bin.join("initdb"), "").unwrap();
            }
        }
        std::fs::create_dir_all(lib.path().join("common")).unwrap();
        assert_eq!(newest_bin(lib.path()), Some(lib.path().join("16/bin")));
        assert_eq!(newest_bin(&lib.path().join("missing")), None);
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redacted("postgres://u:secret@h:5432/db?sslmode=require"),
            "postgres://u:***@h:5432/db?sslmode=require"
        );
        assert_eq!(
            redacted("postgres://postgres@127.0.0.1:5432/test"),
            "postgres://postgres@127.0.0.1:5432/test"
        );
        assert_eq!(redacted("host=/tmp user=x"), "host=/tmp user=x");
    }
}
