//! The `ferry` command line: talks to ferryd over its control socket, and hosts the offline
//! tools. Each command's logic lives here so the binary stays a thin main.

mod bench;
mod cache;
mod device;
mod history;
mod keygen;
mod manifest;
pub mod plan;
mod publish;
mod repo;
mod serve;
mod sim;
mod status;
mod topology;
mod update;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::config::{LoadedConfig, DEFAULT_CONFIG_PATH, DEFAULT_CONTROL_SOCKET};
use crate::control::client::ControlClient;

#[derive(Parser)]
#[command(name = "ferry", version, about = "Talk to ferryd, and ferry's offline tools")]
pub struct Cli {
    /// ferryd's control socket (default: [control] socket of --config, else /run/ferry/control.sock).
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Read the control socket's path from this configuration file.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Version, uptime, radio, store and counts of the running ferryd.
    Status {
        /// Print the report as JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// The LoWPAN as ferryd's RPL root sees it: root → routers → leaves, with rank, hops and
    /// link quality.
    Topology {
        /// Print the table as JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Make a signing key for `ferry publish` (offline): KEY (PKCS#8 PEM, 0600) and KEY.pub.
    Keygen {
        /// Where to write the private key; the public key goes to KEY.pub.
        #[arg(long, value_name = "KEY")]
        out: PathBuf,
        /// Key algorithm.
        #[arg(long, value_enum, default_value = "ed25519")]
        alg: keygen::KeyAlg,
    },
    /// Build and sign a SUIT envelope for an update (offline).
    Publish(publish::PublishArgs),
    /// Look into SUIT envelopes (offline).
    #[command(subcommand)]
    Manifest(manifest::ManifestCommand),
    /// Run a simulated PAN: behind a pty for ferryd (real time), or in virtual time.
    Sim(sim::SimArgs),
    /// Run one fleet update on a simulated PAN as ferry, one device at a time and all at once,
    /// in virtual time, and print the figures against the radio's bound.
    Bench(bench::BenchArgs),
    /// What the scheduler starts now and why the rest waits (ferryd's plan, or --snapshot offline).
    Plan(plan::PlanArgs),
    /// The fleet: list, show, admit and retire devices.
    #[command(subcommand)]
    Device(device::DeviceCommand),
    /// Accepted updates and their approval.
    #[command(subcommand)]
    Update(update::UpdateCommand),
    /// Serve one file over CoAP (block-wise) with ferry's endpoint, without a daemon: for
    /// trying a device's fetch, and for scripts/bench-coap.sh.
    CoapServe(serve::ServeArgs),
    /// The verified blob cache: of the running ferryd, or of a stopped one's --state-dir.
    Cache {
        #[command(subcommand)]
        action: CacheCommand,
    },
    /// Delivery sessions: who signed, what allowed it, when, bytes served, result, and every
    /// transition (read-only from the state dir; ferryd may run).
    History {
        /// Only this device (EUI-64, e.g. 00:11:22:33:44:55:66:77).
        device: Option<String>,
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// Print JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Tools for repository operators.
    Repo {
        #[command(subcommand)]
        action: RepoCommand,
    },
}

#[derive(Subcommand)]
enum CacheCommand {
    /// List cached blobs, least recently used first.
    Ls {
        /// A stopped ferryd's state dir (default: ask the running ferryd).
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// Print JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Re-hash every blob and report problems (ferryd also drops corrupt blobs; root only).
    Verify {
        /// A stopped ferryd's state dir (default: ask the running ferryd).
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Drop corrupt and stray files, then evict unpinned blobs down to the size limit (root only).
    Gc {
        /// A stopped ferryd's state dir (default: ask the running ferryd).
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// Size limit in MiB (default: [store] cache_max_mib of the configuration).
        #[arg(long, value_name = "MIB")]
        max_mib: Option<u64>,
    },
}

#[derive(Subcommand)]
enum RepoCommand {
    /// Sign DIR's index (ferry-index.cbor) listing every SUIT envelope under it.
    Index {
        dir: PathBuf,
        /// PKCS#8 PEM private key matching the repository's index_key.
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
        /// When gateways stop trusting this index (RFC 3339, e.g. 2026-12-31T00:00:00Z).
        #[arg(long, value_name = "RFC3339")]
        expires: String,
        /// Index version (default: the current one plus 1); never lower than the current.
        #[arg(long)]
        version: Option<u64>,
    },
}

impl Cli {
    pub async fn run(self) -> anyhow::Result<()> {
        match &self.command {
            Command::Status { json } => status::run(&self.client()?, *json).await,
            Command::Topology { json } => topology::run(&self.client()?, *json).await,
            Command::Keygen { out, alg } => keygen::run(out, *alg),
            Command::Publish(args) => publish::run(args),
            Command::Manifest(cmd) => manifest::run(cmd),
            Command::Sim(args) => sim::run(args).await,
            Command::Bench(args) => bench::run(args),
            Command::Plan(args) => match &args.snapshot {
                Some(_) => plan::run(args),
                None => plan::run_live(&self.client()?, args).await,
            },
            Command::Device(command) => device::run(&self.client()?, command).await,
            Command::Update(command) => update::run(&self.client()?, command).await,
            Command::CoapServe(args) => serve::run(args).await,
            Command::Cache { action } => {
                let (dir, action) = match action {
                    CacheCommand::Ls { state_dir, json } => (state_dir, cache::Action::Ls { json: *json }),
                    CacheCommand::Verify { state_dir } => (state_dir, cache::Action::Verify),
                    CacheCommand::Gc { state_dir, max_mib } => (state_dir, cache::Action::Gc { max_mib: *max_mib }),
                };
                match dir {
                    Some(dir) => {
                        let default_max_mib = match action {
                            cache::Action::Gc { max_mib: None } => self.store_config()?.cache_max_mib,
                            _ => 0,
                        };
                        cache::run(dir, action, default_max_mib).await
                    }
                    None => cache::run_live(&self.client()?, action).await,
                }
            }
            Command::History { device, state_dir, json } => {
                let dir = match state_dir {
                    Some(d) => d.clone(),
                    None => self.store_config()?.state_dir,
                };
                history::run(&dir, device.as_deref(), *json)
            }
            Command::Repo { action: RepoCommand::Index { dir, key, expires, version } } => {
                repo::index(dir, key, expires, *version)
            }
        }
    }

    /// `[store]` of `--config`, else of the default configuration, else the defaults.
    fn store_config(&self) -> anyhow::Result<crate::config::StoreConfig> {
        let path = self.config.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH));
        if self.config.is_none() && !path.exists() {
            return Ok(crate::config::StoreConfig::default());
        }
        Ok(LoadedConfig::load(&path)?.config.store)
    }

    /// Finds ferryd: `--socket`, else `--config`'s `[control] socket`, else the default path.
    fn client(&self) -> anyhow::Result<ControlClient> {
        let path = match (&self.socket, &self.config) {
            (Some(socket), _) => socket.clone(),
            (None, Some(config)) => LoadedConfig::load(config)?.config.control.socket,
            (None, None) => default_socket(),
        };
        Ok(ControlClient::new(&path))
    }
}

/// The default socket; falls back to the default config's setting when that file exists, so
/// `ferry status` works on a router whose admin moved the socket.
fn default_socket() -> PathBuf {
    let config = Path::new(DEFAULT_CONFIG_PATH);
    if config.exists() {
        if let Ok(loaded) = LoadedConfig::load(config) {
            return loaded.config.control.socket;
        }
    }
    PathBuf::from(DEFAULT_CONTROL_SOCKET)
}
