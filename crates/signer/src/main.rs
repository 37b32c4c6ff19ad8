//! The `ferrosigner` binary: command line, logging, wiring, graceful shutdown.

use std::process::ExitCode;

use anyhow::Context;
use ferrosigner::config::{
    Command, GenerateArgs, KdfChoice, LogFormat, ParseError, SlashingCommand,
};
use ferrosigner_slashing::{HighWatermark, SlashingDb};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let (cli, sources) = match ferrosigner::config::parse() {
        Ok(parsed) => (parsed.cli, parsed.sources),
        Err(ParseError::Clap(e)) => e.exit(),
        Err(ParseError::ConfigFile(message)) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    if let Command::Run(args) = &cli.command
        && args.print_config
    {
        print!("{}", ferrosigner::config::print_config(args, &sources));
        return ExitCode::SUCCESS;
    }
    let (format, level) = match &cli.command {
        Command::Run(args) => (args.log_format, args.log_level.clone()),
        _ => (LogFormat::Plain, "info".to_owned()),
    };
    if let Err(e) = init_logging(format, &level) {
        eprintln!("error: {e:#}");
        return ExitCode::from(2);
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Command::Run(args) = &cli.command {
        builder.worker_threads(args.http_worker_threads());
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run(*args).await,
            Command::SlashingProtection(cmd) => slashing_protection(cmd).await,
            Command::GenerateKeystores(args) => {
                tokio::task::spawn_blocking(move || generate(args)).await?
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat, level: &str) -> anyhow::Result<()> {
    // Web3Signer's `--logging` levels that tracing lacks.
    let filter = match level.to_ascii_lowercase().as_str() {
        "fatal" => "error",
        "all" => "trace",
        _ => level,
    };
    let filter = EnvFilter::try_new(filter).with_context(|| format!("--log-level {level}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Plain => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

async fn run(args: ferrosigner::config::RunArgs) -> anyhow::Result<()> {
    let running = ferrosigner::start(args).await?;
    shutdown_signal().await;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

async fn slashing_protection(cmd: SlashingCommand) -> anyhow::Result<()> {
    match cmd {
        SlashingCommand::Import(args) => {
            let text = std::fs::read_to_string(&args.file)
                .with_context(|| format!("reading {}", args.file.display()))?;
            let db = open_db(&args.db).await?;
            let summary = db
                .import_interchange(&text, None)
                .await
                .context("import failed; nothing was imported")?;
            println!("imported {}: {summary:?}", args.file.display());
        }
        SlashingCommand::Export(args) => {
            let db = open_db(&args.db).await?;
            let json = db.export_interchange(None).await?;
            ferrosigner::files::write_file_atomic(&args.file, json.as_bytes(), 0o600)
                .with_context(|| format!("writing {}", args.file.display()))?;
            println!("exported to {}", args.file.display());
        }
        SlashingCommand::Prune(args) => {
            let network = ferrosigner::resolve_network(&args.db.network)?;
            let db = open_db(&args.db).await?;
            db.prune(args.epochs_to_keep, network.slots_per_epoch())
                .await?;
            println!(
                "pruned history older than the last {} epochs",
                args.epochs_to_keep
            );
        }
        SlashingCommand::SetHighWatermark(args) => {
            let db = open_db(&args.db).await?;
            let hw = HighWatermark {
                epoch: args.epoch,
                slot: args.slot,
            };
            db.set_high_watermark(hw).await?;
            println!(
                "high watermark set: epoch {}, slot {}; nothing at or above it will be signed",
                hw.epoch, hw.slot
            );
        }
        SlashingCommand::RemoveHighWatermark(args) => {
            let db = open_db(&args.db).await?;
            match db.remove_high_watermark().await? {
                Some(hw) => println!(
                    "high watermark removed (it was epoch {}, slot {})",
                    hw.epoch, hw.slot
                ),
                None => println!("no high watermark was set"),
            }
        }
    }
    Ok(())
}

async fn open_db(args: &ferrosigner::config::SlashingDbArgs) -> anyhow::Result<SlashingDb> {
    let location = args.location();
    if !location.starts_with("postgres")
        && let Some(parent) = std::path::Path::new(&location).parent()
    {
        ferrosigner::files::create_private_dir(parent)?;
    }
    let network = ferrosigner::resolve_network(&args.network)?;
    ferrosigner::open_slashing_db(&location, &network, args.allow_any_genesis_validators_root).await
}

fn generate(args: GenerateArgs) -> anyhow::Result<()> {
    use ferrosigner_keystore::{Kdf, Keystore};
    ferrosigner::files::create_private_dir(&args.output_dir)?;
    let kdf = match args.kdf {
        KdfChoice::Scrypt => Kdf::Scrypt { log2_n: 18 },
        KdfChoice::Pbkdf2 => Kdf::Pbkdf2 { c: 1 << 18 },
        KdfChoice::Insecure => Kdf::Pbkdf2 { c: 16 },
    };
    let seed = match &args.seed {
        Some(hex_seed) => Some(zeroize::Zeroizing::new(
            hex::decode(hex_seed.trim_start_matches("0x")).context("--seed is not hex")?,
        )),
        None => None,
    };
    let password_dir = args.output_dir.join("passwords");
    if args.per_key_password_files {
        ferrosigner::files::create_private_dir(&password_dir)?;
    }
    ferrosigner::files::write_file_atomic(
        &args.output_dir.join("password.txt"),
        args.password.as_bytes(),
        0o600,
    )?;
    let indices: Vec<u32> = (0..args.count).collect();
    use rayon::prelude::*;
    indices
        .par_iter()
        .try_for_each(|&i| -> anyhow::Result<()> {
            let path = ferrosigner_keystore::validator_signing_path(i);
            let secret = match &seed {
                Some(seed) => ferrosigner_keystore::derive_secret_key(seed, &path)?,
                None => {
                    let mut ikm = zeroize::Zeroizing::new([0u8; 32]);
                    getrandom::fill(ikm.as_mut())
                        .map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
                    ferrosigner_bls::SecretKey::key_gen(ikm.as_ref())?
                }
            };
            let keystore = Keystore::encrypt(&secret, &args.password, kdf, &path)?;
            let stem = format!("keystore-{i:05}");
            let file = args.output_dir.join(format!("{stem}.json"));
            ferrosigner::files::write_file_atomic(&file, keystore.to_json().as_bytes(), 0o600)?;
            if args.per_key_password_files {
                ferrosigner::files::write_file_atomic(
                    &password_dir.join(format!("{stem}.txt")),
                    args.password.as_bytes(),
                    0o600,
                )?;
            }
            Ok(())
        })?;
    println!(
        "wrote {} keystores to {}",
        args.count,
        args.output_dir.display()
    );
    Ok(())
}
