//! Command line: `ferrosigner run` and the operator tools.
//!
//! Every flag of `run` can also come from an environment variable named `FERROSIGNER_<FLAG>` (upper case,
//! dashes as underscores), e.g. `FERROSIGNER_HTTP_LISTEN_PORT=9000`. A flag given on the command line wins.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// ferrosigner: an Ethereum consensus remote signer (Web3Signer-compatible eth2 API, Keymanager API).
#[derive(Debug, Parser)]
#[command(name = "ferrosigner", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the signer.
    Run(Box<RunArgs>),
    /// Offline slashing-protection database tools (EIP-3076 interchange).
    #[command(name = "slashing-protection", subcommand)]
    SlashingProtection(SlashingCommand),
    /// Write EIP-2335 keystores for fresh random (or seed-derived) keys, for testing and benchmarks.
    GenerateKeystores(GenerateArgs),
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object per line.
    Json,
}

/// Options of `ferrosigner run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Directory for the signer's own state: slashing database, managed keystores, API token, key cache.
    #[arg(
        long,
        env = "FERROSIGNER_DATA_DIR",
        default_value = "./ferrosigner-data"
    )]
    pub data_dir: PathBuf,

    /// Address the signing API listens on.
    #[arg(
        long,
        env = "FERROSIGNER_HTTP_LISTEN_HOST",
        default_value = "127.0.0.1"
    )]
    pub http_listen_host: IpAddr,

    /// Port the signing API listens on (0 picks a free port; the chosen address is logged).
    #[arg(long, env = "FERROSIGNER_HTTP_LISTEN_PORT", default_value_t = 9000)]
    pub http_listen_port: u16,

    /// PEM certificate chain: serve the signing API over TLS (with `--tls-key-file`).
    #[arg(
        long,
        env = "FERROSIGNER_TLS_CERT_FILE",
        requires = "tls_key_file",
        conflicts_with = "tls_keystore_file"
    )]
    pub tls_cert_file: Option<PathBuf>,

    /// PEM private key of `--tls-cert-file`.
    #[arg(
        long,
        env = "FERROSIGNER_TLS_KEY_FILE",
        requires = "tls_cert_file",
        conflicts_with = "tls_keystore_file"
    )]
    pub tls_key_file: Option<PathBuf>,

    /// PKCS#12 keystore holding the server's key and certificate chain, as Web3Signer takes it: serve the
    /// signing API over TLS (with `--tls-keystore-password-file`; instead of `--tls-cert-file`). Needs a
    /// client policy: `--tls-known-clients-file`, `--tls-client-ca-file` or `--tls-allow-any-client`.
    #[arg(
        long,
        env = "FERROSIGNER_TLS_KEYSTORE_FILE",
        requires = "tls_keystore_password_file"
    )]
    pub tls_keystore_file: Option<PathBuf>,

    /// File whose first line is the password of `--tls-keystore-file`.
    #[arg(
        long,
        env = "FERROSIGNER_TLS_KEYSTORE_PASSWORD_FILE",
        requires = "tls_keystore_file"
    )]
    pub tls_keystore_password_file: Option<PathBuf>,

    /// PEM CA certificate(s): require every client to present a certificate signed by one of them (mutual
    /// TLS). With `--tls-known-clients-file`, a client either list accepts is served.
    #[arg(long, env = "FERROSIGNER_TLS_CLIENT_CA_FILE")]
    pub tls_client_ca_file: Option<PathBuf>,

    /// Web3Signer's known-clients file: require every client to present a certificate whose SHA-256
    /// fingerprint is listed, one `<name> <AA:BB:…>` per line, whatever its issuer or key usage.
    #[arg(long, env = "FERROSIGNER_TLS_KNOWN_CLIENTS_FILE")]
    pub tls_known_clients_file: Option<PathBuf>,

    /// Serve TLS without asking clients for a certificate (Web3Signer's `--tls-allow-any-client`); `true`
    /// cannot be combined with `--tls-known-clients-file` or `--tls-client-ca-file` (checked at start, so
    /// that an explicit `false` can stand beside them, as in Web3Signer).
    #[arg(long, env = "FERROSIGNER_TLS_ALLOW_ANY_CLIENT", default_value_t = false,
          action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub tls_allow_any_client: bool,

    /// Serve Prometheus metrics on their own listener.
    #[arg(long, env = "FERROSIGNER_METRICS_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub metrics_enabled: bool,

    /// Address the metrics listener binds.
    #[arg(
        long,
        env = "FERROSIGNER_METRICS_LISTEN_HOST",
        default_value = "127.0.0.1"
    )]
    pub metrics_listen_host: IpAddr,

    /// Port of the metrics listener (`/metrics`).
    #[arg(long, env = "FERROSIGNER_METRICS_LISTEN_PORT", default_value_t = 9001)]
    pub metrics_listen_port: u16,

    /// Network: mainnet, hoodi, sepolia, holesky, gnosis, or the path of a consensus `config.yaml`.
    #[arg(long, env = "FERROSIGNER_NETWORK", default_value = "mainnet")]
    pub network: String,

    /// Directory of EIP-2335 keystores (`*.json`) loaded read-only at start-up and on reload.
    #[arg(long, env = "FERROSIGNER_KEYSTORES_PATH")]
    pub keystores_path: Option<PathBuf>,

    /// Directory of passwords for `--keystores-path`, one `<keystore file stem>.txt` per keystore.
    #[arg(
        long,
        env = "FERROSIGNER_KEYSTORES_PASSWORDS_PATH",
        conflicts_with = "keystores_password_file"
    )]
    pub keystores_passwords_path: Option<PathBuf>,

    /// One password file for every keystore in `--keystores-path`.
    #[arg(long, env = "FERROSIGNER_KEYSTORES_PASSWORD_FILE")]
    pub keystores_password_file: Option<PathBuf>,

    /// Refuse slashable blocks and attestations (EIP-3076). Turning this off is logged loudly.
    #[arg(long, env = "FERROSIGNER_SLASHING_PROTECTION_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub slashing_protection_enabled: bool,

    /// Slashing database: a `postgres://` URL to share history between instances; default
    /// `<data-dir>/slashing-protection.sqlite`.
    #[arg(long, env = "FERROSIGNER_SLASHING_PROTECTION_DB_URL")]
    pub slashing_protection_db_url: Option<DbUrl>,

    /// Milliseconds a slashing check (and a `/healthcheck` probe) waits for the database before the
    /// request answers 503; nothing is signed then. Keep it below the validator client's own timeout.
    #[arg(long, env = "FERROSIGNER_SLASHING_PROTECTION_DB_TIMEOUT_MS", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub slashing_protection_db_timeout_ms: u64,

    /// Keep the decrypted keys in one encrypted cache file (`<data-dir>/key-cache.bin`, sealed with the
    /// strongest KDF of the keystores and all their passwords) so a restart costs one KDF instead of one per
    /// keystore. `false` removes the file.
    #[arg(long, env = "FERROSIGNER_KEY_CACHE_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub key_cache_enabled: bool,

    /// Serve the Keymanager API (`/eth/v1/keystores`), always behind a bearer token.
    #[arg(long, env = "FERROSIGNER_KEY_MANAGER_API_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub key_manager_api_enabled: bool,

    /// File holding the Keymanager API bearer token. Default `<data-dir>/api-token.txt`, generated (random,
    /// 256 bits, 0600) on first start; a file named here must exist.
    #[arg(long, env = "FERROSIGNER_KEY_MANAGER_TOKEN_FILE")]
    pub key_manager_token_file: Option<PathBuf>,

    /// Prune the slashing database periodically (keeps protection: pruned history becomes the low watermark).
    #[arg(long, env = "FERROSIGNER_SLASHING_PROTECTION_PRUNING_ENABLED", default_value_t = false, action = clap::ArgAction::Set)]
    pub slashing_protection_pruning_enabled: bool,

    /// Epochs of history periodic pruning keeps.
    #[arg(
        long,
        env = "FERROSIGNER_SLASHING_PROTECTION_PRUNING_EPOCHS_TO_KEEP",
        default_value_t = 250
    )]
    pub slashing_protection_pruning_epochs_to_keep: u64,

    /// Seconds between periodic prunings (the first runs one interval after start).
    #[arg(long, env = "FERROSIGNER_SLASHING_PROTECTION_PRUNING_INTERVAL_SECONDS", default_value_t = 12 * 3600,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub slashing_protection_pruning_interval_seconds: u64,

    /// Largest accepted request body in bytes; larger bodies get 413 (except the large bodies
    /// below).
    #[arg(long, env = "FERROSIGNER_MAX_REQUEST_BODY_BYTES", default_value_t = 1 << 20)]
    pub max_request_body_bytes: usize,

    /// Largest sign-request body in bytes for the types that carry a whole execution payload
    /// (`EXECUTION_PAYLOAD_ENVELOPE`); larger bodies get 413.
    #[arg(long, env = "FERROSIGNER_MAX_LARGE_REQUEST_BODY_BYTES", default_value_t = 32 << 20)]
    pub max_large_request_body_bytes: usize,

    /// Memory budget in bytes for the large sign-request bodies (over --max-request-body-bytes) in
    /// flight at once, each counted twice its size (the body and its parsed copy); a large body
    /// that does not fit gets 503.
    #[arg(long, env = "FERROSIGNER_LARGE_REQUEST_BODY_BUDGET_BYTES", default_value_t = 256 << 20)]
    pub large_request_body_budget_bytes: usize,

    /// Seconds a client has to send a request head (request line and headers), counted from connecting
    /// or from the first byte of a request; a slower client is disconnected (slow-loris protection).
    #[arg(long, env = "FERROSIGNER_HTTP_HEADER_READ_TIMEOUT_SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub http_header_read_timeout_seconds: u64,

    /// Seconds a client has to send a whole request body after its head; a slower body gets 408 and the
    /// connection is closed.
    #[arg(long, env = "FERROSIGNER_HTTP_BODY_READ_TIMEOUT_SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub http_body_read_timeout_seconds: u64,

    /// Seconds an idle keep-alive connection stays open. Longer than the idle timeout of validator
    /// clients' connection pools (90 s in reqwest and Go), so that the client closes first and never
    /// sends a request on a connection the signer is closing.
    #[arg(long, env = "FERROSIGNER_IDLE_CONNECTION_TIMEOUT_SECONDS", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_connection_timeout_seconds: u64,

    /// Connections the signing API serves at once; a connection beyond gets 503 (JSON, `Retry-After`)
    /// and is closed. The soft open-file limit is raised to the hard one at start, and the cap is
    /// lowered (with a warning) where that limit leaves no room for it. A validator client opens about
    /// one connection per concurrent request in a slot's burst.
    #[arg(long, env = "FERROSIGNER_HTTP_MAX_CONNECTIONS", default_value_t = 2048,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub http_max_connections: usize,

    /// Sign requests handled at once; more get 503 (JSON, `Retry-After: 1`) at once instead of
    /// queueing. The default takes a slot's burst of about 10,000 validators (their attestations,
    /// selection proofs and sync committee messages arrive together) with room to spare, and is about
    /// a third of a second of signing work on 2 cores.
    #[arg(long, env = "FERROSIGNER_MAX_CONCURRENT_SIGN_REQUESTS", default_value_t = 1024,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub max_concurrent_sign_requests: usize,

    /// Seconds shutdown lets in-flight requests finish; connections still open then are dropped.
    #[arg(
        long,
        env = "FERROSIGNER_SHUTDOWN_TIMEOUT_SECONDS",
        default_value_t = 10
    )]
    pub shutdown_timeout_seconds: u64,

    /// Threads that compute BLS signatures (default: one per core).
    #[arg(long, env = "FERROSIGNER_SIGNING_THREADS")]
    pub signing_threads: Option<usize>,

    /// Threads serving HTTP (parsing, signing roots, responses). Default: a quarter of the cores, at least
    /// one: that work is a small fraction of a signature's cost, and fewer threads competing with the signing
    /// threads for the cores measured faster (docs/performance.md).
    #[arg(long, env = "FERROSIGNER_HTTP_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
    pub http_worker_threads: Option<u16>,

    /// Log format.
    #[arg(
        long,
        env = "FERROSIGNER_LOG_FORMAT",
        value_enum,
        default_value = "plain"
    )]
    pub log_format: LogFormat,

    /// Log filter (`info`, `debug`, or a tracing filter such as `ferrosigner=debug`).
    #[arg(long, env = "FERROSIGNER_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

/// `ferrosigner slashing-protection …`
#[derive(Debug, Subcommand)]
pub enum SlashingCommand {
    /// Import an EIP-3076 interchange file (all or nothing; never lowers a watermark).
    Import(SlashingFileArgs),
    /// Export the complete history as an EIP-3076 interchange file.
    Export(SlashingFileArgs),
    /// Delete history older than the last N epochs while keeping protection (watermarks).
    Prune(PruneArgs),
    /// Set the global high watermark: from now on no key signs a block at or above the slot, or
    /// an attestation whose source or target is at or above the epoch (for moving keys away).
    SetHighWatermark(HighWatermarkArgs),
    /// Remove the global high watermark.
    RemoveHighWatermark(SlashingDbOnlyArgs),
}

/// Where the slashing database is, for the offline tools.
#[derive(Debug, Clone, Args)]
pub struct SlashingDbArgs {
    /// Data directory whose `slashing-protection.sqlite` is used when no URL is given.
    #[arg(
        long,
        env = "FERROSIGNER_DATA_DIR",
        default_value = "./ferrosigner-data"
    )]
    pub data_dir: PathBuf,
    /// A `postgres://` URL or SQLite path; overrides `--data-dir`.
    #[arg(long, env = "FERROSIGNER_SLASHING_PROTECTION_DB_URL")]
    pub slashing_protection_db_url: Option<DbUrl>,
    /// Network whose chain the database protects (its genesis validators root is recorded at open, and a
    /// database of another chain is refused); also gives slots per epoch for pruning.
    #[arg(long, env = "FERROSIGNER_NETWORK", default_value = "mainnet")]
    pub network: String,
}

/// Arguments of `import` and `export`.
#[derive(Debug, Clone, Args)]
pub struct SlashingFileArgs {
    /// The interchange file to read or write.
    pub file: PathBuf,
    /// Database location.
    #[command(flatten)]
    pub db: SlashingDbArgs,
}

/// Arguments of `prune`.
#[derive(Debug, Clone, Args)]
pub struct PruneArgs {
    /// Epochs of history to keep.
    #[arg(long, default_value_t = 250)]
    pub epochs_to_keep: u64,
    /// Database location.
    #[command(flatten)]
    pub db: SlashingDbArgs,
}

/// Arguments of `set-high-watermark`.
#[derive(Debug, Clone, Args)]
pub struct HighWatermarkArgs {
    /// Attestations with a source or target epoch at or above this are refused.
    #[arg(long)]
    pub epoch: u64,
    /// Blocks at or above this slot are refused.
    #[arg(long)]
    pub slot: u64,
    /// Database location.
    #[command(flatten)]
    pub db: SlashingDbArgs,
}

/// Arguments of a command that needs only the database location.
#[derive(Debug, Clone, Args)]
pub struct SlashingDbOnlyArgs {
    /// Database location.
    #[command(flatten)]
    pub db: SlashingDbArgs,
}

/// Arguments of `generate-keystores`.
#[derive(Debug, Clone, Args)]
pub struct GenerateArgs {
    /// How many keystores to write.
    #[arg(long, default_value_t = 1)]
    pub count: u32,
    /// Output directory (created); keystores go to `<dir>/keystore-<i>.json`.
    #[arg(long)]
    pub output_dir: PathBuf,
    /// Password for every keystore; also written to `<dir>/password.txt`.
    #[arg(long, env = "FERROSIGNER_GENERATE_PASSWORD")]
    pub password: String,
    /// Key derivation function.
    #[arg(long, value_enum, default_value = "scrypt")]
    pub kdf: KdfChoice,
    /// Derive keys from this hex seed (EIP-2333, path m/12381/3600/i/0/0) instead of random keys; for
    /// reproducible test keys only.
    #[arg(long)]
    pub seed: Option<String>,
    /// Also write `<dir>/passwords/<stem>.txt` for each keystore (the `--keystores-passwords-path` layout).
    #[arg(long)]
    pub per_key_password_files: bool,
}

/// KDF choice for generated keystores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KdfChoice {
    /// scrypt n=2^18, r=8, p=1 (EIP-2335 default; ~0.6 s and 256 MiB to decrypt).
    Scrypt,
    /// pbkdf2-sha256, c=2^18.
    Pbkdf2,
    /// pbkdf2-sha256 with c=16: fast, for tests only.
    Insecure,
}

impl RunArgs {
    /// The number of HTTP worker threads to run.
    pub fn http_worker_threads(&self) -> usize {
        self.http_worker_threads
            .map(usize::from)
            .unwrap_or_else(|| {
                let cores = std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1);
                cores.div_ceil(4)
            })
    }

    /// The slashing database location this configuration uses.
    pub fn slashing_db_location(&self) -> String {
        db_location(&self.data_dir, self.slashing_protection_db_url.as_ref())
    }
}

impl SlashingDbArgs {
    /// The slashing database location these arguments name.
    pub fn location(&self) -> String {
        db_location(&self.data_dir, self.slashing_protection_db_url.as_ref())
    }
}

/// A slashing database URL or path as given: it may hold a password, so its `Debug` shows only what
/// [`ferrosigner_slashing::describe_location`] shows.
#[derive(Clone, PartialEq, Eq)]
pub struct DbUrl(String);

impl DbUrl {
    /// The URL or path itself, to open the database with.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for DbUrl {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl std::fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", ferrosigner_slashing::describe_location(&self.0))
    }
}

fn db_location(data_dir: &std::path::Path, url: Option<&DbUrl>) -> String {
    match url {
        Some(url) => url.expose().to_owned(),
        None => data_dir
            .join("slashing-protection.sqlite")
            .to_string_lossy()
            .into_owned(),
    }
}
