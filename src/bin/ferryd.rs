//! ferryd: the ferry daemon. Parses arguments, sets up logging and calls `ferry::daemon::run`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ferry::config::{LoadedConfig, DEFAULT_CONFIG_PATH};
use tokio_util::sync::CancellationToken;

/// sysexits.h EX_CONFIG; the unit file does not restart on it, since retrying cannot help.
const EXIT_CONFIG: u8 = 78;

#[derive(Parser)]
#[command(version, about = "ferry's border-router daemon: verified updates for the devices behind this router")]
struct Args {
    /// The configuration file.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    /// Validate FILE, print the effective configuration (defaults filled in) and exit.
    #[arg(long, value_name = "FILE")]
    check_config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(path) = args.check_config {
        return match LoadedConfig::load(&path) {
            Ok(loaded) => {
                print!("{}", loaded.config.to_toml());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ferryd: {e}");
                ExitCode::from(EXIT_CONFIG)
            }
        };
    }
    let loaded = match LoadedConfig::load(&args.config) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("ferryd: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let log = ferry::daemon::logging::init(loaded.config.log.level);
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        tokio::spawn(stop_on_signal(shutdown.clone()));
        let daemon = ferry::daemon::Daemon::start(loaded, Some(log)).await?;
        daemon.serve(shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// SIGTERM (systemd stop) and SIGINT (Ctrl-C) both stop ferryd cleanly.
async fn stop_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot listen for SIGTERM/SIGINT; stop ferryd with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    shutdown.cancel();
}
