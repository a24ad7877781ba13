//! `ferry bench`: the same fleet update run several ways on a simulated PAN in virtual time,
//! one row per strategy, measured against the radio's bound (`sim::bench`).
//!
//! `--smoke` runs the small built-in scenario (config/sim/bench-smoke.toml) and fails unless
//! every row is consistent ([`Bench::check`]); CI calls it so the runner cannot rot.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;

use crate::sim::bench::{self, Bench, Options, Strategy};
use crate::sim::Scenario;

/// The smoke scenario, built in so `--smoke` runs from any directory.
const SMOKE_SCENARIO: &str = include_str!("../../config/sim/bench-smoke.toml");

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Scenario file (config/sim/star-12.toml, parallel-7.toml, ...); its [bench] section sets
    /// the image size and ferry's PAN policy.
    #[arg(long, value_name = "FILE", required_unless_present = "smoke")]
    scenario: Option<PathBuf>,
    /// Strategies to run, in this order.
    #[arg(long, value_delimiter = ',', default_value = "ferry,sequential,trigger-all")]
    strategy: Vec<Strategy>,
    /// Every device's SUIT block size (16..=1024, a power of two); default: the scenario's.
    #[arg(long, value_name = "BYTES", value_parser = parse_block_size)]
    block_size: Option<u16>,
    /// Every device's macMaxCSMABackoffs (0..=5; RIOT's default 4); default: the scenario's.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=5))]
    csma_backoffs: Option<u8>,
    /// Override the scenario's seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Print JSON, for scripts.
    #[arg(long)]
    json: bool,
    /// Run the small built-in scenario and fail unless every row is consistent.
    #[arg(long, conflicts_with = "scenario")]
    smoke: bool,
}

fn parse_block_size(s: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(b) if (16..=1024).contains(&b) && b.is_power_of_two() => Ok(b),
        _ => Err(format!("`{s}` is not a block size; use 16, 32, 64, 128, 256, 512 or 1024")),
    }
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let scenario = match &args.scenario {
        Some(path) => Scenario::load(path)?,
        None => Scenario::parse(Path::new("bench-smoke.toml"), SMOKE_SCENARIO)?,
    };
    let opts = Options {
        strategies: args.strategy.clone(),
        block_size: args.block_size,
        csma_backoffs: args.csma_backoffs,
        seed: args.seed,
    };
    let result: Bench = bench::run(&scenario, &opts).context("ferry bench")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        print!("{}", bench::table(&result));
    }
    if args.smoke {
        if let Err(why) = result.check() {
            bail!("bench smoke run inconsistent: {why}");
        }
    }
    Ok(())
}
