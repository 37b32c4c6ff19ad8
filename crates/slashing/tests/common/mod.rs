//! Test helpers shared by the integration tests: fresh databases on both backends.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use ferrosigner_slashing::{Pubkey, Root, SlashingDb};

/// Which store a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh database that is removed when dropped.
pub struct TestDb {
    pub db: SlashingDb,
    /// What `SlashingDb::open` was given (file path or URL), to open more handles.
    pub location: String,
    _guard: Guard,
}

enum Guard {
    Sqlite(tempfile::TempDir),
    Postgres(PgDatabase),
}

/// The admin connection URL for PostgreSQL tests.
pub fn pg_admin_url() -> String {
    std::env::var("FERROSIGNER_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Replaces the database name in a PostgreSQL URL.
fn url_with_db(admin: &str, db: &str) -> String {
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (admin, None),
    };
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[after_scheme..].find('/') {
        Some(i) => &base[..after_scheme + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

/// A PostgreSQL database created for one test and dropped afterwards.
pub struct PgDatabase {
    name: String,
    pub url: String,
}

async fn admin_client() -> Option<tokio_postgres::Client> {
    match tokio_postgres::connect(&pg_admin_url(), tokio_postgres::NoTls).await {
        Ok((client, conn)) => {
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Some(client)
        }
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "PostgreSQL at {} is unreachable and CI=true: {e}",
                    pg_admin_url()
                );
            }
            eprintln!(
                "\n***************************************************************\n\
                 *** SKIPPING PostgreSQL test: {} unreachable: {e}\n\
                 ***************************************************************\n",
                pg_admin_url()
            );
            None
        }
    }
}

impl PgDatabase {
    /// Creates a fresh database, or `None` (after a loud notice) when PostgreSQL is unreachable
    /// outside CI.
    pub async fn create() -> Option<Self> {
        let client = admin_client().await?;
        let name = format!("fs_test_{}", unique_suffix());
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        let url = url_with_db(&pg_admin_url(), &name);
        Some(Self { name, url })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        let admin = pg_admin_url();
        // Drop on a separate thread with its own runtime: Drop may run inside a runtime.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok((client, conn)) =
                    tokio_postgres::connect(&admin, tokio_postgres::NoTls).await
                {
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// Opens a fresh, empty database on `backend`; `None` if PostgreSQL is skipped.
pub async fn fresh(backend: Backend) -> Option<TestDb> {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("slashing.sqlite");
            let location = path.to_str().expect("utf-8 path").to_string();
            let db = SlashingDb::open(&location).await.expect("open sqlite");
            Some(TestDb {
                db,
                location,
                _guard: Guard::Sqlite(dir),
            })
        }
        Backend::Postgres => {
            let pg = PgDatabase::create().await?;
            let location = pg.url.clone();
            let db = SlashingDb::open(&location).await.expect("open postgres");
            Some(TestDb {
                db,
                location,
                _guard: Guard::Postgres(pg),
            })
        }
    }
}

/// A deterministic pubkey for tests.
pub fn pk(n: u64) -> Pubkey {
    let mut k = [0u8; 48];
    k[..8].copy_from_slice(&n.to_be_bytes());
    k[47] = 0xaa;
    k
}

/// A deterministic non-null root for tests (n = 0 gives the null root).
pub fn root(n: u8) -> Root {
    [n; 32]
}

/// The genesis validators root most tests use.
pub const GVR: Root = [0x42; 32];

/// Defines one `#[tokio::test]` per backend for each listed `async fn name(t: TestDb)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(t) = $crate::common::fresh($crate::common::Backend::Sqlite).await {
                        super::$name(t).await;
                    }
                }
            )*
        }
        mod postgres_backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(t) = $crate::common::fresh($crate::common::Backend::Postgres).await {
                        super::$name(t).await;
                    }
                }
            )*
        }
    };
}
