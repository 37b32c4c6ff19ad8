//! A fresh PostgreSQL database per run, and the statistics that count round trips per slashing check.
//!
//! `track_functions = 'all'` is set on the bench database so `pg_stat_user_functions` counts the calls
//! of `fs_check_attestation` / `fs_check_block`; `pg_stat_database.xact_commit` of that database counts
//! committed transactions (each statement outside a transaction is one). Both, divided by the checks
//! the client saw answered (200 or 412), give transactions and calls per check.

use anyhow::Context;
use tokio_postgres::{Client, NoTls};

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
        .with_context(|| format!("cannot connect to PostgreSQL at {url}"))?;
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
