//! `ferry sim`: runs a simulated PAN (`src/sim`) from a scenario file.
//!
//! * `--pty PATH`: real time; the gateway RCP speaks Spinel/HDLC on a pseudo-terminal whose
//!   slave is symlinked at PATH, so ferryd opens it as a serial port
//!   (`[radio] url = "spinel+hdlc+uart://PATH"`). Runs until Ctrl-C/SIGTERM (or `--duration`).
//! * `--virtual --duration 10m`: virtual time, as fast as the CPU goes, then prints every
//!   node's accounting (a table, or `--json`).
//! * `--zep [ADDR:]PORT` (real time): a ZEP v2 bridge for RIOT `native` nodes (`-z` pointing
//!   at it), which join the simulated air as external nodes.
//! * `--pcap FILE` in either mode writes everything on air (Wireshark: IEEE 802.15.4 with FCS).

use std::fs::File;
use std::io::BufWriter;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::radio::pty::{open_raw_pty, PtyStream};
use crate::sim::world::{spawn_world, Report};
use crate::sim::{Scenario, World};

#[derive(Args, Debug)]
pub struct SimArgs {
    /// Scenario file (config/sim/home.toml, config/sim/building.toml, ...).
    #[arg(long, value_name = "FILE")]
    scenario: PathBuf,
    /// Real time: expose the gateway RCP on a pty symlinked at PATH.
    #[arg(long, value_name = "PATH", conflicts_with = "virtual_time")]
    pty: Option<PathBuf>,
    /// Run in virtual time for --duration and print the accounting.
    #[arg(long = "virtual", requires = "duration")]
    virtual_time: bool,
    /// How long to run: 90s, 10m, 2h, 1500ms (required with --virtual; optional with --pty).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Write every frame on air to this pcap file.
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    /// Print the accounting as JSON.
    #[arg(long)]
    json: bool,
    /// Real time: accept ZEP v2 nodes (RIOT native) on this UDP port (default 17754).
    #[arg(long, value_name = "[ADDR:]PORT", num_args = 0..=1, default_missing_value = "17754",
          value_parser = crate::sim::zep::parse_listen, conflicts_with = "virtual_time")]
    zep: Option<std::net::SocketAddr>,
    /// Override the scenario's seed.
    #[arg(long)]
    seed: Option<u64>,
}

/// `90s`, `10m`, `2h`, `1500ms`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("`{s}` is not a duration; write e.g. 90s, 10m, 2h"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86_400.0,
        _ => return Err(format!("unknown unit `{unit}` in `{s}`; use ms, s, m, h or d")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("`{s}` is out of range"))
}

pub async fn run(args: &SimArgs) -> anyhow::Result<()> {
    let mut scenario = Scenario::load(&args.scenario)?;
    if let Some(seed) = args.seed {
        scenario.seed = seed;
    }
    let mut world = World::new(&scenario).with_context(|| format!("building {}", args.scenario.display()))?;
    if let Some(path) = &args.pcap {
        let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        world.set_pcap(Box::new(BufWriter::new(file))).with_context(|| format!("writing {}", path.display()))?;
    }
    if args.virtual_time {
        let Some(duration) = args.duration else { bail!("--virtual needs --duration") };
        run_virtual(world, duration, args)
    } else if args.pty.is_some() || args.zep.is_some() {
        run_realtime(world, args).await
    } else {
        bail!("say how to run: --pty PATH and/or --zep PORT (real time) or --virtual --duration 10m");
    }
}

fn run_virtual(mut world: World, duration: Duration, args: &SimArgs) -> anyhow::Result<()> {
    // Nobody drives the gateway: configure it as ferryd would, and drop what it reports.
    world.configure_gateway();
    world.set_discard_host_output(true);
    let until = u64::try_from(duration.as_micros()).context("duration too long")?;
    let cpu = std::time::Instant::now();
    world.run_until(until);
    let took = cpu.elapsed();
    if args.pcap.is_some() {
        let frames = world.finish_pcap().map_err(anyhow::Error::msg).context("writing the pcap")?;
        eprintln!("pcap: {frames} frames");
    }
    let report = world.report();
    print_report(&report, args.json)?;
    eprintln!(
        "simulated {:.1} s in {:.3} s wall clock ({:.0}x real time)",
        duration.as_secs_f64(),
        took.as_secs_f64(),
        duration.as_secs_f64() / took.as_secs_f64().max(1e-9)
    );
    Ok(())
}

async fn run_realtime(world: World, args: &SimArgs) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let channel = world.scenario().channel;
    let (handle, pty) = match &args.pty {
        Some(link) => {
            let (handle, slave) = serve_pty(world, link, shutdown.clone())?;
            (handle, Some((link, slave)))
        }
        None => (spawn_world(world, None, shutdown.clone()), None),
    };
    if let Some(listen) = args.zep {
        let (local, _task) = crate::sim::zep::spawn_bridge(listen, handle.clone(), channel, shutdown.clone())
            .await
            .with_context(|| format!("cannot bind the ZEP port {listen}"))?;
        eprintln!("ferry sim: ZEP v2 bridge on udp {local}; start RIOT native nodes with -z [::1]:{}", local.port());
    }
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let limit = async {
        match args.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = limit => {}
    }
    let report = handle.report().await;
    let pcap = if args.pcap.is_some() { handle.with(|w| w.finish_pcap()).await.ok() } else { None };
    shutdown.cancel();
    if let Some((link, slave)) = pty {
        // The slave stays open until here so ferryd can close and reopen the port meanwhile.
        drop(slave);
        let _ = std::fs::remove_file(link);
    }
    if let Some(r) = pcap {
        let frames = r.map_err(anyhow::Error::msg).context("writing the pcap")?;
        eprintln!("pcap: {frames} frames");
    }
    if let Ok(report) = report {
        print_report(&report, args.json)?;
    }
    Ok(())
}

/// Serves the gateway RCP on a new raw pty whose slave is symlinked at `link`; returns the
/// slave, to keep open while running.
fn serve_pty(
    world: World,
    link: &Path,
    shutdown: CancellationToken,
) -> anyhow::Result<(crate::sim::WorldHandle, std::os::fd::OwnedFd)> {
    let (master, slave) = open_raw_pty().context("cannot open a pty")?;
    let slave_path = std::fs::read_link(format!("/proc/self/fd/{}", slave.as_raw_fd()))
        .context("cannot find the pty's device path")?;
    // Replace only a symlink we (or an earlier run) left; never a real file.
    if let Ok(meta) = std::fs::symlink_metadata(link) {
        if !meta.file_type().is_symlink() {
            bail!("{} exists and is not a symlink; pick another --pty path", link.display());
        }
        std::fs::remove_file(link).with_context(|| format!("cannot replace {}", link.display()))?;
    }
    std::os::unix::fs::symlink(&slave_path, link)
        .with_context(|| format!("cannot create symlink {} -> {}", link.display(), slave_path.display()))?;
    let io = PtyStream::new(master).context("cannot watch the pty")?;
    let handle = spawn_world(world, Some(Box::new(io)), shutdown);
    eprintln!(
        "ferry sim: gateway RCP on {} -> {}; point ferryd at radio.url = \"spinel+hdlc+uart://{}\"",
        link.display(),
        slave_path.display(),
        link.display()
    );
    Ok((handle, slave))
}

fn print_report(r: &Report, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
        return Ok(());
    }
    println!("seed {}  simulated {:.1} s", r.seed, r.duration_us as f64 / 1e6);
    println!(
        "{:<16} {:>6} {:<7} {:>7} {:>8} {:>8} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6}",
        "node", "short", "role", "on %", "tx", "rx", "acks", "retry", "noack", "coll", "wakes", "fp"
    );
    for n in &r.nodes {
        let role = if n.sleepy { "sleepy" } else { n.role.as_str() };
        println!(
            "{:<16} {:>#6x} {:<7} {:>7.3} {:>8} {:>8} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6}",
            n.name,
            n.short,
            role,
            n.radio_on_pct,
            n.radio.frames_sent,
            n.radio.frames_received,
            n.radio.acks_sent,
            n.radio.retries,
            n.radio.no_acks,
            n.radio.collisions,
            n.mac.wakes,
            n.mac.polls_frame_pending
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("42"), Ok(Duration::from_secs(42)));
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }
}
