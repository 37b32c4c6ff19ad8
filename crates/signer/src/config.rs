//! Command line: `ferrosigner run` and the operator tools.
//!
//! Every flag of `run` can also come from an environment variable named `FERROSIGNER_<FLAG>` (upper case,
//! dashes as underscores), e.g. `FERROSIGNER_HTTP_LISTEN_PORT=9000`, and from a TOML file named by
//! `--config-file` (or `FERROSIGNER_CONFIG_FILE`) whose keys are the long flag names, dashes or
//! underscores (`http-listen-port = 9000`). A flag given on the command line wins over the environment,
//! which wins over the file, which wins over the default. [`parse`] reads the file before the real parse
//! and makes each of its values the default of its flag, so clap's own precedence does the rest; an
//! unknown key, a value of the wrong type or one the flag refuses is an error naming the file and the key.
//! `run --print-config` prints the effective configuration with where each value came from
//! ([`print_config`]), secrets redacted.
//!
//! Some flags also take Web3Signer's spelling (e.g. `--metrics-port`, `--logging`), and boolean flags may be
//! given bare (`--metrics-enabled` is `--metrics-enabled true`), as Web3Signer's scripts write them.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{Arg, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use crate::http::host_allowlist::HostAllowList;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object per line.
    Json,
}

/// Options of `ferrosigner run`. Serialized (kebab-case keys, the database URL redacted) for
/// `--print-config`.
#[derive(Debug, Clone, Args, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
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
    #[arg(long, env = "FERROSIGNER_METRICS_ENABLED", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub metrics_enabled: bool,

    /// Address the metrics listener binds.
    #[arg(
        long,
        visible_alias = "metrics-host",
        env = "FERROSIGNER_METRICS_LISTEN_HOST",
        default_value = "127.0.0.1"
    )]
    pub metrics_listen_host: IpAddr,

    /// Port of the metrics listener (`/metrics`).
    #[arg(
        long,
        visible_alias = "metrics-port",
        env = "FERROSIGNER_METRICS_LISTEN_PORT",
        default_value_t = 9001
    )]
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

    /// Directory of Web3Signer key config files (`*.yaml`, `*.yml`; one or more YAML documents each, at most
    /// 100 MiB a file): `file-raw`, `file-keystore` and `hashicorp` keys, loaded read-only at start-up and on
    /// reload. Web3Signer's name `--key-store-path` is an alias.
    #[arg(
        long,
        visible_alias = "key-store-path",
        env = "FERROSIGNER_KEY_CONFIG_PATH"
    )]
    pub key_config_path: Option<PathBuf>,

    /// HashiCorp Vault (or OpenBao) to load every key under `--vault-kv-path` from, e.g.
    /// `https://vault.internal:8200` (`http://` only to turn TLS off). Needs `--vault-kv-path` and a token
    /// file or an AppRole login.
    #[arg(long, env = "FERROSIGNER_VAULT_ADDRESS", requires = "vault_kv_path")]
    pub vault_address: Option<String>,

    /// Where the KV version 2 secrets engine is mounted.
    #[arg(long, env = "FERROSIGNER_VAULT_KV_MOUNT", default_value = "secret")]
    pub vault_kv_mount: String,

    /// The folder under the mount whose secrets (sub-folders included) each hold one validator key; `""`
    /// for the whole mount.
    #[arg(long, env = "FERROSIGNER_VAULT_KV_PATH", requires = "vault_address")]
    pub vault_kv_path: Option<String>,

    /// The field of each secret holding the 0x-hex private key.
    #[arg(long, env = "FERROSIGNER_VAULT_KEY_FIELD", default_value = "value")]
    pub vault_key_field: String,

    /// File holding the Vault token (read at start and at each reload).
    #[arg(
        long,
        env = "FERROSIGNER_VAULT_TOKEN_FILE",
        conflicts_with = "vault_approle_role_id"
    )]
    pub vault_token_file: Option<PathBuf>,

    /// AppRole login instead of a token: the role id (with `--vault-approle-secret-id-file`).
    #[arg(
        long,
        env = "FERROSIGNER_VAULT_APPROLE_ROLE_ID",
        requires = "vault_approle_secret_id_file"
    )]
    pub vault_approle_role_id: Option<String>,

    /// File holding the AppRole secret id.
    #[arg(
        long,
        env = "FERROSIGNER_VAULT_APPROLE_SECRET_ID_FILE",
        requires = "vault_approle_role_id"
    )]
    pub vault_approle_secret_id_file: Option<PathBuf>,

    /// Where the AppRole auth method is mounted.
    #[arg(
        long,
        env = "FERROSIGNER_VAULT_APPROLE_MOUNT",
        default_value = "approle"
    )]
    pub vault_approle_mount: String,

    /// PEM file of the CA the Vault server's certificate chains to (HTTPS).
    #[arg(long, env = "FERROSIGNER_VAULT_CA_FILE")]
    pub vault_ca_file: Option<PathBuf>,

    /// Web3Signer's known-servers file pinning the Vault server's certificate by SHA-256 fingerprint
    /// (`host:port <fingerprint>` per line); with `--vault-ca-file`, either is enough.
    #[arg(long, env = "FERROSIGNER_VAULT_KNOWN_SERVERS_FILE")]
    pub vault_known_servers_file: Option<PathBuf>,

    /// Vault namespace (`X-Vault-Namespace`), for Vault Enterprise and OpenBao namespaces.
    #[arg(long, env = "FERROSIGNER_VAULT_NAMESPACE")]
    pub vault_namespace: Option<String>,

    /// Keys fetched from Vault at once (the secrets of this source and `hashicorp` key config documents).
    #[arg(long, env = "FERROSIGNER_VAULT_PARALLELISM", default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub vault_parallelism: u16,

    /// Milliseconds one Vault request may take (connecting included) before it is retried.
    #[arg(long, env = "FERROSIGNER_VAULT_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub vault_timeout_ms: u64,

    /// Refuse slashable blocks and attestations (EIP-3076). Turning this off is logged loudly.
    #[arg(long, env = "FERROSIGNER_SLASHING_PROTECTION_ENABLED", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
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
    #[arg(long, env = "FERROSIGNER_KEY_CACHE_ENABLED", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub key_cache_enabled: bool,

    /// Serve the Keymanager API (`/eth/v1/keystores`), always behind a bearer token.
    #[arg(long, visible_alias = "enable-key-manager-api", env = "FERROSIGNER_KEY_MANAGER_API_ENABLED", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub key_manager_api_enabled: bool,

    /// File holding the Keymanager API bearer token. Default `<data-dir>/api-token.txt`, generated (random,
    /// 256 bits, 0600) on first start; a file named here must exist.
    #[arg(long, env = "FERROSIGNER_KEY_MANAGER_TOKEN_FILE")]
    pub key_manager_token_file: Option<PathBuf>,

    /// Prune the slashing database periodically (keeps protection: pruned history becomes the low watermark).
    #[arg(long, env = "FERROSIGNER_SLASHING_PROTECTION_PRUNING_ENABLED", default_value_t = false, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
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

    /// Serve `POST /api/v1/eth2/sign`: one signing request signed by many keys (a DRAFT of the
    /// remote signing API, ethereum/remote-signing-api PR #29; docs/batch-signing.md). Off by
    /// default: the route then answers 404. A batch of N identifiers counts as N sign requests
    /// against `--max-concurrent-sign-requests`.
    #[arg(long, env = "FERROSIGNER_ENABLE_BATCH_SIGNING", default_value_t = false,
          action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub enable_batch_signing: bool,

    /// Most identifiers one batch signing request may name; a larger batch is refused (400).
    #[arg(long, env = "FERROSIGNER_MAX_BATCH_SIGNING_IDENTIFIERS",
          default_value_t = crate::signing::DEFAULT_MAX_BATCH_IDENTIFIERS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=65_536))]
    pub max_batch_signing_identifiers: usize,

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

    /// Log filter (`info`, `debug`, or a tracing filter such as `ferrosigner=debug`; Web3Signer's `fatal`
    /// and `all` are `error` and `trace`).
    #[arg(
        long,
        visible_alias = "logging",
        env = "FERROSIGNER_LOG_LEVEL",
        default_value = "info"
    )]
    pub log_level: String,

    /// TOML file of `run` options: each key a long flag name (`http-listen-port = 9000`); flags and
    /// environment variables win over it.
    #[arg(long, env = "FERROSIGNER_CONFIG_FILE")]
    pub config_file: Option<PathBuf>,

    /// Print the effective configuration (TOML, with where each value came from) and exit.
    #[arg(long)]
    #[serde(skip)]
    pub print_config: bool,

    /// Hosts the signing API (and the Keymanager API on it) serves, by the request's `Host` header:
    /// comma-separated names or addresses (port ignored, case-insensitive, IPv6 in brackets), `*` for
    /// any. Any other host gets 403.
    #[arg(
        long,
        env = "FERROSIGNER_HTTP_HOST_ALLOWLIST",
        default_value = "localhost,127.0.0.1"
    )]
    pub http_host_allowlist: HostAllowList,

    /// Hosts the metrics listener serves, like `--http-host-allowlist`.
    #[arg(
        long,
        env = "FERROSIGNER_METRICS_HOST_ALLOWLIST",
        default_value = "localhost,127.0.0.1"
    )]
    pub metrics_host_allowlist: HostAllowList,

    /// Hours between periodic prunings (Web3Signer's flag and unit); overrides
    /// `--slashing-protection-pruning-interval-seconds`.
    #[arg(long, env = "FERROSIGNER_SLASHING_PROTECTION_PRUNING_INTERVAL",
          conflicts_with = "slashing_protection_pruning_interval_seconds",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub slashing_protection_pruning_interval: Option<u64>,

    /// FOR TEST RIGS AND DEVNETS: sign requests whose `genesis_validators_root` is not the network's
    /// (the signing domain uses the request's root). The slashing database then records the root of the
    /// first block or attestation it checks (or of the first import), as Web3Signer does, and refuses
    /// blocks and attestations of any other root. Logged loudly at start.
    #[arg(long, env = "FERROSIGNER_ALLOW_ANY_GENESIS_VALIDATORS_ROOT", default_value_t = false,
          action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub allow_any_genesis_validators_root: bool,
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
    /// Record no genesis validators root at open (the database keeps the one it has, or records that of
    /// the first import or signing), as `run --allow-any-genesis-validators-root` does; for test rigs.
    #[arg(long, env = "FERROSIGNER_ALLOW_ANY_GENESIS_VALIDATORS_ROOT", default_value_t = false,
          action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub allow_any_genesis_validators_root: bool,
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

    /// The time between periodic prunings: `--slashing-protection-pruning-interval` hours when given,
    /// else `--slashing-protection-pruning-interval-seconds`.
    pub fn pruning_interval(&self) -> std::time::Duration {
        match self.slashing_protection_pruning_interval {
            Some(hours) => std::time::Duration::from_secs(hours.saturating_mul(3600)),
            None => {
                std::time::Duration::from_secs(self.slashing_protection_pruning_interval_seconds)
            }
        }
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

impl serde::Serialize for DbUrl {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&ferrosigner_slashing::describe_location(&self.0))
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

/// Where the value of a `run` flag came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The command line.
    CommandLine,
    /// The named environment variable.
    Environment(String),
    /// The config file.
    ConfigFile,
    /// The built-in default (or no value).
    Default,
}

impl Source {
    fn rank(&self) -> u8 {
        match self {
            Source::Default => 0,
            Source::ConfigFile => 1,
            Source::Environment(_) => 2,
            Source::CommandLine => 3,
        }
    }
}

/// The command line as parsed, with where each `run` value came from.
#[derive(Debug)]
pub struct Parsed {
    /// The parsed command line.
    pub cli: Cli,
    /// For `run`: each flag's long name (in declaration order) and the source of its value.
    pub sources: Vec<(String, Source)>,
}

/// Why the command line could not be used.
#[derive(Debug)]
pub enum ParseError {
    /// clap's own error (or `--help`/`--version`), to print and exit with.
    Clap(clap::Error),
    /// The config file cannot be read or holds a bad key or value.
    ConfigFile(String),
}

/// Parses the process's command line, environment and config file.
pub fn parse() -> Result<Parsed, ParseError> {
    parse_from(std::env::args_os().collect())
}

/// Parses `args` (the program name first) with the environment and the config file they name.
pub fn parse_from(args: Vec<OsString>) -> Result<Parsed, ParseError> {
    let mut command = Cli::command();
    let mut from_file = BTreeMap::new();
    if let Some(file) = config_file_named(&args) {
        let run = command
            .find_subcommand("run")
            .expect("the run subcommand exists");
        from_file = load_config_file(&file, run)?;
        for (id, value) in &from_file {
            // clap's builder takes `'static` text (its `string` feature is off); one parse per process.
            let value: &'static str = value.clone().leak();
            command = command
                .mut_subcommand("run", |run| run.mut_arg(id, |arg| arg.default_value(value)));
        }
    }
    let matches = command
        .try_get_matches_from_mut(args)
        .map_err(ParseError::Clap)?;
    let mut cli = Cli::from_arg_matches(&matches).map_err(ParseError::Clap)?;
    let mut sources = Vec::new();
    if let (Command::Run(run), Some(("run", run_matches))) =
        (&mut cli.command, matches.subcommand())
    {
        // A fresh command: `mut_arg` moved the flags the file set to the end.
        let fresh = Cli::command();
        let command = fresh.find_subcommand("run").expect("run exists");
        for arg in command.get_arguments() {
            let (Some(long), id) = (arg.get_long(), arg.get_id().as_str()) else {
                continue;
            };
            if matches!(id, "help" | "print_config") {
                continue;
            }
            let source = match run_matches.value_source(id) {
                Some(ValueSource::CommandLine) => Source::CommandLine,
                Some(ValueSource::EnvVariable) => Source::Environment(
                    arg.get_env()
                        .map(|e| e.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                ),
                _ if from_file.contains_key(id) => Source::ConfigFile,
                _ => Source::Default,
            };
            sources.push((long.to_owned(), source));
        }
        resolve_pruning_interval(run, &mut sources);
    }
    Ok(Parsed { cli, sources })
}

/// `--slashing-protection-pruning-interval` (hours) and `…-interval-seconds` may come from different
/// places (defaults never conflict in clap): the one from the stronger source wins, the hours on a tie.
fn resolve_pruning_interval(run: &mut RunArgs, sources: &mut [(String, Source)]) {
    let source_of = |sources: &[(String, Source)], key: &str| {
        sources
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, s)| s.clone())
            .unwrap_or(Source::Default)
    };
    let Some(hours) = run.slashing_protection_pruning_interval else {
        return;
    };
    let by_hours = source_of(sources, "slashing-protection-pruning-interval");
    let by_seconds = source_of(sources, "slashing-protection-pruning-interval-seconds");
    if by_hours.rank() >= by_seconds.rank() {
        run.slashing_protection_pruning_interval_seconds = hours.saturating_mul(3600);
        for (key, source) in sources.iter_mut() {
            if key == "slashing-protection-pruning-interval-seconds" {
                *source = by_hours.clone();
            }
        }
    } else {
        run.slashing_protection_pruning_interval = None;
    }
}

/// The config file `run` is given: `--config-file F` or `--config-file=F` after `run`, else
/// `FERROSIGNER_CONFIG_FILE`. (clap parses the same flag again; this only finds the file first.)
fn config_file_named(args: &[OsString]) -> Option<PathBuf> {
    // `run` is the first argument: the top level takes no options but `--help` and `--version`.
    if args.get(1).and_then(|a| a.to_str()) != Some("run") {
        return None;
    }
    let mut rest = args.iter().skip(2);
    let mut found = None;
    while let Some(arg) = rest.next() {
        let Some(text) = arg.to_str() else { continue };
        if text == "--" {
            break;
        }
        if text == "--config-file" {
            found = rest.next().map(PathBuf::from);
        } else if let Some(value) = text.strip_prefix("--config-file=") {
            found = Some(PathBuf::from(value));
        }
    }
    found.or_else(|| {
        std::env::var_os("FERROSIGNER_CONFIG_FILE")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
}

/// What a flag's value is in TOML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Boolean,
    Integer,
    String,
    /// A comma-separated list: a string, or an array of strings.
    List,
}

impl Kind {
    fn of(arg: &Arg) -> Kind {
        use std::any::TypeId;
        let ty = arg.get_value_parser().type_id();
        if ty == TypeId::of::<bool>() {
            Kind::Boolean
        } else if [
            TypeId::of::<u16>(),
            TypeId::of::<u32>(),
            TypeId::of::<u64>(),
            TypeId::of::<usize>(),
            TypeId::of::<i64>(),
        ]
        .iter()
        .any(|t| ty == *t)
        {
            Kind::Integer
        } else if ty == TypeId::of::<HostAllowList>() {
            Kind::List
        } else {
            Kind::String
        }
    }

    fn expected(self) -> &'static str {
        match self {
            Kind::Boolean => "a boolean (true or false)",
            Kind::Integer => "an integer",
            Kind::String => "a string",
            Kind::List => "a string or an array of strings",
        }
    }
}

fn toml_type(value: &toml::Value) -> &'static str {
    match value {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date-time",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

/// Reads the config file: each key the long name (or an alias) of a `run` flag, each value of the flag's
/// type and one the flag accepts. Returns the values as the command line would spell them, by argument id.
fn load_config_file(
    file: &Path,
    run: &clap::Command,
) -> Result<BTreeMap<String, String>, ParseError> {
    let shown = file.display();
    let text = std::fs::read_to_string(file)
        .map_err(|e| ParseError::ConfigFile(format!("reading config file {shown}: {e}")))?;
    // The position and the parser's message only: the offending line may hold a password.
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let at = e
            .span()
            .map(|span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                format!(" at line {line}, column {column}")
            })
            .unwrap_or_default();
        ParseError::ConfigFile(format!(
            "config file {shown} is not valid TOML{at}: {}",
            e.message().trim_end()
        ))
    })?;
    let mut values = BTreeMap::new();
    let mut keys_by_id: BTreeMap<String, String> = BTreeMap::new();
    for (key, value) in &table {
        let bad = |why: String| {
            ParseError::ConfigFile(format!("config file {shown}: key `{key}`: {why}"))
        };
        let name = key.replace('_', "-");
        let arg = run.get_arguments().find(|arg| {
            arg.get_long() == Some(name.as_str())
                || arg
                    .get_all_aliases()
                    .is_some_and(|aliases| aliases.contains(&name.as_str()))
        });
        let Some(arg) =
            arg.filter(|a| !matches!(a.get_id().as_str(), "config_file" | "print_config" | "help"))
        else {
            return Err(bad(
                if matches!(name.as_str(), "config-file" | "print-config") {
                    "only the command line or the environment can set this".into()
                } else {
                    "unknown key: keys are the long names of `ferrosigner run` flags, such as \
                 `http-listen-port` (see `ferrosigner run --help`)"
                        .into()
                },
            ));
        };
        let id = arg.get_id().as_str().to_owned();
        if let Some(first) = keys_by_id.insert(id.clone(), key.clone()) {
            return Err(bad(format!("sets the same option as key `{first}`")));
        }
        let kind = Kind::of(arg);
        let text = match (kind, value) {
            (Kind::Boolean, toml::Value::Boolean(b)) => b.to_string(),
            (Kind::Integer, toml::Value::Integer(i)) => i.to_string(),
            (Kind::String | Kind::List, toml::Value::String(s)) => s.clone(),
            (Kind::List, toml::Value::Array(items)) => {
                let mut parts = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        toml::Value::String(s) => parts.push(s.clone()),
                        other => {
                            return Err(bad(format!(
                                "expected {}, found an array holding {}",
                                kind.expected(),
                                toml_type(other)
                            )));
                        }
                    }
                }
                parts.join(",")
            }
            (_, other) => {
                return Err(bad(format!(
                    "expected {}, found {}",
                    kind.expected(),
                    toml_type(other)
                )));
            }
        };
        check_value(arg, &text).map_err(bad)?;
        values.insert(id, text);
    }
    Ok(values)
}

/// Whether the flag's own parser accepts `value`; the error says why not.
fn check_value(arg: &Arg, value: &str) -> Result<(), String> {
    let long = arg.get_long().unwrap_or("value");
    // Only the parser matters here: no environment, no relations to flags this probe lacks.
    let long: &'static str = long.to_owned().leak();
    let probe = Arg::new(long)
        .long(long)
        .value_parser(arg.get_value_parser().clone())
        .action(clap::ArgAction::Set);
    let result = clap::Command::new("config")
        .no_binary_name(true)
        .arg(probe)
        .try_get_matches_from([format!("--{long}={value}")]);
    match result {
        Ok(_) => Ok(()),
        Err(e) => {
            let rendered = e.render().to_string();
            let lines: Vec<&str> = rendered
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
                .collect();
            Err(lines.join(" ").trim_start_matches("error: ").to_owned())
        }
    }
}

/// The effective configuration of `run` as TOML, each line with where its value came from; the database
/// URL shows only what [`ferrosigner_slashing::describe_location`] shows. Flags without a value are
/// listed commented out.
pub fn print_config(args: &RunArgs, sources: &[(String, Source)]) -> String {
    let table = match toml::Table::try_from(args) {
        Ok(table) => table,
        Err(e) => return format!("# the configuration cannot be shown as TOML: {e}\n"),
    };
    let config_file = args
        .config_file
        .as_ref()
        .map(|f| f.display().to_string())
        .unwrap_or_default();
    let mut out = String::from("# ferrosigner run: effective configuration\n");
    for (key, source) in sources {
        let origin = match source {
            Source::CommandLine => "command line".to_owned(),
            Source::Environment(var) => format!("environment {var}"),
            Source::ConfigFile => format!("config file {config_file}"),
            Source::Default => "default".to_owned(),
        };
        match table.get(key) {
            // Not a key of the file itself: shown, commented out, so that the output is a valid file.
            Some(value) if key == "config-file" => {
                out.push_str(&format!("# {key} = {value}  # {origin}\n"))
            }
            Some(value) => {
                let mut line = format!("{key} = {value}");
                if key == "slashing-protection-db-url" {
                    line.push_str("  # password and parameters not shown;");
                } else {
                    line.push_str("  #");
                }
                out.push_str(&format!("{line} {origin}\n"));
            }
            None => out.push_str(&format!("# {key} is not set  # {origin}\n")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_flags_are_consistent() {
        Cli::command().debug_assert();
    }

    fn run_with_file(contents: &str, flags: &[&str]) -> (RunArgs, Vec<(String, Source)>) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, contents).unwrap();
        let mut args: Vec<OsString> = vec!["ferrosigner".into(), "run".into()];
        args.push("--config-file".into());
        args.push(file.into_os_string());
        args.extend(flags.iter().map(OsString::from));
        let parsed = parse_from(args).unwrap();
        match parsed.cli.command {
            Command::Run(run) => (*run, parsed.sources),
            _ => unreachable!(),
        }
    }

    #[test]
    fn only_run_reads_a_config_file() {
        let named =
            |args: &[&str]| config_file_named(&args.iter().map(OsString::from).collect::<Vec<_>>());
        assert_eq!(
            named(&["fs", "run", "--config-file", "a.toml"]),
            Some(PathBuf::from("a.toml"))
        );
        assert_eq!(
            named(&["fs", "run", "--network", "hoodi", "--config-file=b.toml"]),
            Some(PathBuf::from("b.toml"))
        );
        assert_eq!(
            named(&[
                "fs",
                "generate-keystores",
                "--password",
                "run",
                "--config-file",
                "a.toml"
            ]),
            None
        );
    }

    #[test]
    fn the_key_config_path_takes_web3signers_name_on_the_command_line_and_in_the_file() {
        let (run, _) = run_with_file("key-store-path = \"/etc/w3s/keys\"\n", &[]);
        assert_eq!(run.key_config_path, Some(PathBuf::from("/etc/w3s/keys")));
        let (run, sources) =
            run_with_file("key-config-path = \"/a\"\n", &["--key-store-path", "/b"]);
        assert_eq!(run.key_config_path, Some(PathBuf::from("/b")));
        let printed = print_config(&run, &sources);
        assert!(
            printed.contains("key-config-path = \"/b\"  # command line"),
            "{printed}"
        );
    }

    #[test]
    fn the_pruning_interval_in_hours_or_seconds_follows_precedence() {
        let hour = std::time::Duration::from_secs(3600);
        let (run, _) = run_with_file("slashing-protection-pruning-interval = 2\n", &[]);
        assert_eq!(run.pruning_interval(), 2 * hour);
        let (run, sources) = run_with_file(
            "slashing-protection-pruning-interval = 2\n",
            &["--slashing-protection-pruning-interval-seconds", "60"],
        );
        assert_eq!(run.pruning_interval(), std::time::Duration::from_secs(60));
        assert!(
            sources
                .iter()
                .any(|(k, s)| k == "slashing-protection-pruning-interval-seconds"
                    && *s == Source::CommandLine)
        );
        let (run, _) = run_with_file(
            "slashing-protection-pruning-interval-seconds = 60\n",
            &["--slashing-protection-pruning-interval", "3"],
        );
        assert_eq!(run.pruning_interval(), 3 * hour);
        assert_eq!(run.slashing_protection_pruning_interval_seconds, 3 * 3600);
    }
}
