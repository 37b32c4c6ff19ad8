//! ferrosigner: an Ethereum consensus-layer remote signer.
//!
//! How the parts connect:
//! - [`config`] parses the command line (flags, `FERROSIGNER_*` variables and the TOML `--config-file`);
//! - [`start`] wires a running signer: network ([`ferrosigner_consensus`]), slashing database
//!   ([`ferrosigner_slashing`], which records the network's genesis validators root when it opens), the
//!   [`keys::Keyring`] that owns every key ([`ferrosigner_keystore`]) and loads them in the background, the
//!   signing pipeline ([`signing`]) whose BLS work runs on [`pool`], and the HTTP listeners ([`http`]) with
//!   [`metrics`], each behind its `Host` allow-list ([`http::host_allowlist`]);
//! - handlers parse, call [`signing::Signer`] or the [`keys::Keyring`], and map the result to a status;
//! - [`health`] decides when the signer is UP and probes a faulted database until it recovers;
//!   [`faults`] logs a lasting fault once, with rate-limited reminders;
//! - [`files`] holds the durable file writes everything on disk goes through.

pub mod config;
pub mod faults;
pub mod files;
pub mod health;
pub mod http;
pub mod keys;
pub mod metrics;
pub mod pool;
pub mod signing;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use ferrosigner_consensus::Network;
use ferrosigner_slashing::SlashingDb;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::RunArgs;
use crate::keys::{External, Keyring, KeyringConfig, Passwords};
use crate::metrics::Metrics;
use crate::pool::SignPool;
use crate::signing::Signer;

/// A running signer: its bound addresses and the handle to stop it.
pub struct Running {
    /// Where the signing API listens.
    pub http_addr: SocketAddr,
    /// Where the metrics listener listens, when enabled.
    pub metrics_addr: Option<SocketAddr>,
    /// The signing service.
    pub signer: Arc<Signer>,
    /// The keys (imports, deletions, reloads).
    pub keys: Arc<Keyring>,
    /// The Keymanager API token file, when the API is enabled.
    pub token_file: Option<PathBuf>,
    shutdown: watch::Sender<bool>,
    shutdown_timeout: std::time::Duration,
    tasks: Vec<JoinHandle<std::io::Result<()>>>,
    loading: JoinHandle<()>,
}

impl Running {
    /// Stops accepting connections and key decryptions not yet started, lets in-flight requests finish for
    /// up to `--shutdown-timeout-seconds` (then drops the connections still open, and stops any other task),
    /// finishes the key cache write still requested, and returns.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        // Start-up loading stops after the decryptions already running.
        self.keys.stop();
        self.loading.abort();
        // The listeners bound themselves by the timeout; the margin lets them close what remains.
        let deadline =
            tokio::time::Instant::now() + self.shutdown_timeout + std::time::Duration::from_secs(1);
        for mut task in self.tasks {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
            }
        }
        self.keys.finish().await;
    }

    /// Waits until start-up key loading has finished.
    pub async fn wait_keys_loaded(&self) {
        self.signer.keys().wait_loaded().await;
    }
}

/// Resolves `--network`: a known name, or the path of a consensus `config.yaml`.
pub fn resolve_network(spec: &str) -> anyhow::Result<Network> {
    match Network::by_name(spec) {
        Ok(network) => Ok(network),
        Err(by_name) => {
            let path = Path::new(spec);
            if !path.is_file() {
                bail!("--network {spec}: {by_name}, and no file of that name exists");
            }
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Network::from_config_yaml(&text)
                .with_context(|| format!("network config {}", path.display()))
        }
    }
}

/// The external keystore directory and how its passwords are found, if `--keystores-path` is given.
fn external_source(args: &RunArgs) -> anyhow::Result<Option<External>> {
    Ok(match (&args.keystores_path, external_passwords(args)?) {
        (Some(dir), Some(passwords)) => Some(External {
            dir: dir.clone(),
            passwords,
        }),
        _ => None,
    })
}

/// The Vault bulk source, if `--vault-address` is given.
fn vault_source(args: &RunArgs) -> anyhow::Result<Option<keys::VaultSource>> {
    let (Some(address), Some(prefix)) = (&args.vault_address, &args.vault_kv_path) else {
        return Ok(None);
    };
    let auth = match (&args.vault_token_file, &args.vault_approle_role_id) {
        (Some(file), None) => ferrosigner_vault::Auth::TokenFile(file.clone()),
        (None, Some(role_id)) => ferrosigner_vault::Auth::AppRole {
            role_id: role_id.clone(),
            secret_id_file: args
                .vault_approle_secret_id_file
                .clone()
                .context("--vault-approle-role-id needs --vault-approle-secret-id-file")?,
            mount: args.vault_approle_mount.clone(),
        },
        _ => bail!(
            "--vault-address needs --vault-token-file or --vault-approle-role-id with \
             --vault-approle-secret-id-file"
        ),
    };
    let mut config = ferrosigner_vault::VaultConfig::new(address.clone(), auth);
    config.ca_file = args.vault_ca_file.clone();
    config.known_servers_file = args.vault_known_servers_file.clone();
    config.namespace = args.vault_namespace.clone();
    config.request_timeout = std::time::Duration::from_millis(args.vault_timeout_ms);
    Ok(Some(keys::VaultSource {
        config,
        mount: args.vault_kv_mount.clone(),
        prefix: prefix.clone(),
        field: args.vault_key_field.clone(),
        parallelism: usize::from(args.vault_parallelism),
    }))
}

/// Opens the slashing database at `location` and records `network`'s genesis validators root in it; a
/// database that protects another chain is refused with a clear error.
///
/// With `allow_any_root` (`--allow-any-genesis-validators-root`) nothing is recorded at open: the database
/// keeps the root it has, or records that of the first block or attestation it checks (or of the first
/// import), and refuses blocks and attestations of any other root from then on.
pub async fn open_slashing_db(
    location: &str,
    network: &Network,
    allow_any_root: bool,
) -> anyhow::Result<SlashingDb> {
    let shown = ferrosigner_slashing::describe_location(location);
    let db = SlashingDb::open(location)
        .await
        .with_context(|| format!("opening slashing protection database {shown}"))?;
    if allow_any_root {
        let recorded = db
            .genesis_validators_root()
            .await
            .with_context(|| format!("reading the genesis validators root of {shown}"))?;
        match recorded {
            Some(root) => tracing::warn!(
                database = %shown,
                genesis_validators_root = %format!("0x{}", hex::encode(root)),
                "the slashing database protects this genesis validators root only: blocks and \
                 attestations of any other root are refused"
            ),
            None => tracing::warn!(
                database = %shown,
                "the slashing database records no genesis validators root yet: it will record that of \
                 the first block or attestation signed, and refuse any other root from then on"
            ),
        }
        return Ok(db);
    }
    if let Some(gvr) = network.genesis_validators_root() {
        match db.init_genesis_validators_root(gvr).await {
            Ok(()) => {}
            Err(ferrosigner_slashing::Error::Refused(_)) => {
                let stored = db
                    .genesis_validators_root()
                    .await
                    .ok()
                    .flatten()
                    .map(|r| format!("0x{}", hex::encode(r)))
                    .unwrap_or_else(|| "another root".into());
                bail!(
                    "the slashing protection database {shown} protects the chain with genesis validators root \
                     {stored}, not network {} (0x{}); use the database of this network",
                    network.name(),
                    hex::encode(gvr)
                );
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("recording the genesis validators root in {shown}"));
            }
        }
    }
    Ok(db)
}

/// Checks the `--keystores-*` flags and returns how passwords are found, or `None` without a keystore path.
pub fn external_passwords(args: &RunArgs) -> anyhow::Result<Option<Passwords>> {
    let passwords = match (
        &args.keystores_passwords_path,
        &args.keystores_password_file,
    ) {
        (Some(dir), None) => Some(Passwords::Directory(dir.clone())),
        (None, Some(file)) => Some(Passwords::File(file.clone())),
        (None, None) => None,
        (Some(_), Some(_)) => {
            bail!("give either --keystores-passwords-path or --keystores-password-file, not both")
        }
    };
    match (&args.keystores_path, passwords) {
        (None, None) => Ok(None),
        (None, Some(_)) => {
            bail!("--keystores-passwords-path/--keystores-password-file need --keystores-path")
        }
        (Some(dir), None) => bail!(
            "--keystores-path {} needs --keystores-passwords-path or --keystores-password-file",
            dir.display()
        ),
        (Some(dir), Some(p)) => {
            if !dir.is_dir() {
                bail!("--keystores-path {} is not a directory", dir.display());
            }
            match &p {
                Passwords::Directory(d) if !d.is_dir() => {
                    bail!(
                        "--keystores-passwords-path {} is not a directory",
                        d.display()
                    )
                }
                Passwords::File(f) if !f.is_file() => {
                    bail!("--keystores-password-file {} is not a file", f.display())
                }
                _ => {}
            }
            Ok(Some(p))
        }
    }
}

/// Starts the signer: opens the slashing database, binds the listeners, and loads keys in the background
/// (`/healthcheck` says DOWN until that finishes).
pub async fn start(args: RunArgs) -> anyhow::Result<Running> {
    let network = resolve_network(&args.network)?;
    let tls = match http::tls::TlsSettings::from_args(&args)? {
        Some(settings) => Some(http::tls::acceptor(&settings)?),
        None => None,
    };
    let external = external_source(&args)?;
    let vault = vault_source(&args)?;
    if let Some(dir) = &args.key_config_path
        && !dir.is_dir()
    {
        bail!("--key-config-path {} is not a directory", dir.display());
    }
    files::create_private_dir(&args.data_dir)
        .with_context(|| format!("creating data dir {}", args.data_dir.display()))?;
    let token = if args.key_manager_api_enabled {
        let file = args
            .key_manager_token_file
            .clone()
            .unwrap_or_else(|| args.data_dir.join("api-token.txt"));
        let token = load_or_create_token(&file, args.key_manager_token_file.is_none())?;
        tracing::info!(token_file = %file.display(), "Keymanager API enabled; its bearer token is in the token file");
        Some((file, token))
    } else {
        None
    };

    if args.allow_any_genesis_validators_root {
        tracing::warn!(
            network = network.name(),
            "ANY GENESIS VALIDATORS ROOT IS SIGNED (--allow-any-genesis-validators-root): requests are signed \
             for whatever chain their genesis_validators_root names, not only {}'s; for test rigs and \
             devnets only",
            network.name()
        );
    }
    let slashing = if args.slashing_protection_enabled {
        let location = args.slashing_db_location();
        let db =
            open_slashing_db(&location, &network, args.allow_any_genesis_validators_root).await?;
        tracing::info!(database = %ferrosigner_slashing::describe_location(&location), "slashing protection enabled");
        Some(db)
    } else {
        tracing::warn!(
            "SLASHING PROTECTION IS DISABLED: blocks and attestations are signed without any check"
        );
        None
    };

    let metrics = Arc::new(Metrics::new());
    let pool = SignPool::new(args.signing_threads).context("starting the signing threads")?;
    let keys = Keyring::new(
        KeyringConfig {
            data_dir: args.data_dir.clone(),
            external,
            key_config: args.key_config_path.clone(),
            vault,
            cache_enabled: args.key_cache_enabled,
        },
        slashing.clone(),
        network.genesis_validators_root(),
        metrics.clone(),
    )?;
    let signer = Arc::new(
        Signer::new(network, keys.view(), slashing, pool, metrics)
            .with_db_deadline(std::time::Duration::from_millis(
                args.slashing_protection_db_timeout_ms,
            ))
            .allow_any_genesis_validators_root(args.allow_any_genesis_validators_root),
    );

    let mut server_limits = http::ServerLimits::from_args(&args);
    match http::server::raise_open_file_limit() {
        Ok((before, after)) => {
            tracing::info!(before, after, "open file limit");
            // Room beyond the served connections: refused connections being answered, database
            // connections, keystore and cache files, the listeners.
            let reserve = http::server::REJECTING_AT_ONCE as u64 + 64;
            let fit = usize::try_from(after.saturating_sub(reserve)).unwrap_or(usize::MAX);
            if fit < server_limits.max_connections {
                tracing::warn!(
                    open_file_limit = after,
                    requested = server_limits.max_connections,
                    serving = fit.max(1),
                    "the open file limit leaves no room for --http-max-connections; serving fewer \
                     connections at once (raise the limit, e.g. LimitNOFILE in systemd)"
                );
                server_limits.max_connections = fit.max(1);
            }
        }
        Err(e) => tracing::warn!("raising the open file limit failed: {e}"),
    }
    let (shutdown, shutdown_rx) = watch::channel(false);
    let listener = TcpListener::bind((args.http_listen_host, args.http_listen_port))
        .await
        .with_context(|| {
            format!(
                "binding {}:{}",
                args.http_listen_host, args.http_listen_port
            )
        })?;
    let http_addr = listener.local_addr()?;
    let keymanager = token
        .as_ref()
        .map(|(_, token)| http::keymanager::KeymanagerState {
            keys: keys.clone(),
            token: Arc::new(token.clone()),
        });
    let router = http::router(
        http::AppState {
            signer: signer.clone(),
        },
        keys.clone(),
        keymanager,
        http::BodyLimits::from_args(&args),
        args.max_concurrent_sign_requests,
        http::BatchSigning::from_args(&args),
    );
    let router = http::host_allowlist::restrict(
        router,
        args.http_host_allowlist.clone(),
        "--http-host-allowlist",
    );
    let mut tasks = vec![tokio::spawn(http::serve(
        listener,
        tls.clone(),
        router,
        server_limits,
        wait_for(shutdown_rx.clone()),
    ))];
    let metrics_addr = if args.metrics_enabled {
        let listener = TcpListener::bind((args.metrics_listen_host, args.metrics_listen_port))
            .await
            .with_context(|| {
                format!(
                    "binding metrics {}:{}",
                    args.metrics_listen_host, args.metrics_listen_port
                )
            })?;
        let addr = listener.local_addr()?;
        tasks.push(tokio::spawn(http::serve(
            listener,
            None,
            http::host_allowlist::restrict(
                http::metrics_router(signer.clone()),
                args.metrics_host_allowlist.clone(),
                "--metrics-host-allowlist",
            ),
            server_limits.for_metrics(),
            wait_for(shutdown_rx),
        )));
        Some(addr)
    } else {
        None
    };
    tracing::info!(%http_addr, ?metrics_addr, tls = tls.is_some(), network = signer.network().name(), "listening");

    if args.slashing_protection_pruning_enabled
        && let Some(db) = signer.slashing().cloned()
    {
        tasks.push(tokio::spawn(prune_periodically(
            db,
            args.slashing_protection_pruning_epochs_to_keep,
            signer.network().slots_per_epoch(),
            args.pruning_interval(),
            wait_for(shutdown.subscribe()),
        )));
    }
    if signer.slashing().is_some() {
        tasks.push(tokio::spawn(health::watch_database(
            signer.clone(),
            health::PROBE_INTERVAL,
            wait_for(shutdown.subscribe()),
        )));
    }
    let loading = tokio::spawn(keys.clone().load_startup());
    Ok(Running {
        http_addr,
        metrics_addr,
        signer,
        keys,
        token_file: token.map(|(f, _)| f),
        shutdown,
        shutdown_timeout: server_limits.shutdown_timeout,
        tasks,
        loading,
    })
}

/// Prunes the slashing database every `interval` until `shutdown`.
async fn prune_periodically(
    db: SlashingDb,
    keep_epochs: u64,
    slots_per_epoch: u64,
    interval: std::time::Duration,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    every(interval, shutdown, || async {
        let started = std::time::Instant::now();
        match db.prune(keep_epochs, slots_per_epoch).await {
            Ok(()) => tracing::info!(
                keep_epochs,
                seconds = started.elapsed().as_secs_f64(),
                "slashing database pruned"
            ),
            Err(e) => tracing::warn!("pruning the slashing database failed: {e}"),
        }
    })
    .await
}

/// Runs `task` every `interval` (the first time one interval after the call) until `shutdown`.
pub(crate) async fn every<F, Fut>(
    interval: std::time::Duration,
    shutdown: impl std::future::Future<Output = ()>,
    mut task: F,
) -> std::io::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = &mut shutdown => return Ok(()),
        }
        task().await;
    }
}

async fn wait_for(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Reads the Keymanager token from `file`; when `create` and the file does not exist, writes a new random
/// 256-bit hex token there (0600).
pub fn load_or_create_token(
    file: &Path,
    create: bool,
) -> anyhow::Result<zeroize::Zeroizing<String>> {
    if !file.exists() {
        if !create {
            bail!("--key-manager-token-file {} does not exist", file.display());
        }
        let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
        getrandom::fill(bytes.as_mut())
            .map_err(|e| anyhow::anyhow!("no randomness for the API token: {e}"))?;
        let token = zeroize::Zeroizing::new(hex::encode(bytes.as_ref()));
        files::write_file_atomic(file, token.as_bytes(), 0o600)
            .with_context(|| format!("writing {}", file.display()))?;
        return Ok(token);
    }
    let token = zeroize::Zeroizing::new(
        std::fs::read_to_string(file)
            .with_context(|| format!("reading the API token file {}", file.display()))?,
    );
    let trimmed = zeroize::Zeroizing::new(token.trim().to_owned());
    if trimmed.is_empty() {
        bail!("the API token file {} is empty", file.display());
    }
    Ok(trimmed)
}
