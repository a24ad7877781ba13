//! `ferry plan [--json] [--at TIME]`: what ferryd's scheduler does now (`GET /v1/plan`), or with
//! `--snapshot FILE` what it would do on a snapshot, offline.
//!
//! The snapshot holds the whole input (see `crate::schedule::snapshot`); the output is one line
//! per device with its next action and, when it waits, why. `--json` prints the
//! [`PlanReport`] the control API's `GET /v1/plan` answers with.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use jiff::Timestamp;

use crate::control::api::{PlanAction, PlanReport};
use crate::schedule::plan::plan;
use crate::schedule::snapshot::Snapshot;

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Plan offline on a snapshot of fleet, updates, groups and sessions (JSON, or TOML)
    /// instead of asking ferryd.
    #[arg(long, value_name = "FILE")]
    pub snapshot: Option<PathBuf>,
    /// Plan for this instant (RFC 3339 with offset) instead of the snapshot's `at`, or now.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Print the plan as JSON, for scripts.
    #[arg(long)]
    pub json: bool,
}

/// Asks the running ferryd.
pub async fn run_live(client: &crate::control::client::ControlClient, args: &PlanArgs) -> anyhow::Result<()> {
    let report = client.plan(args.at.as_deref()).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(())
}

pub fn run(args: &PlanArgs) -> anyhow::Result<()> {
    print!("{}", render_for(args, Timestamp::now())?);
    Ok(())
}

/// The text `ferry plan` prints; `now` is used when neither `--at` nor the snapshot says when.
pub fn render_for(args: &PlanArgs, now: Timestamp) -> anyhow::Result<String> {
    let snapshot = args.snapshot.as_ref().context("no --snapshot FILE given")?;
    let name = snapshot.display().to_string();
    let text = std::fs::read_to_string(snapshot).with_context(|| format!("cannot read snapshot {name}"))?;
    // JSON when the name says so, TOML otherwise.
    let json = snapshot.extension().is_some_and(|e| e == "json");
    let loaded = Snapshot::parse(&name, &text, json)?.into_state(&name)?;
    let at = match &args.at {
        Some(text) => text
            .parse::<Timestamp>()
            .with_context(|| format!("--at `{text}` is not a date-time with offset like 2026-11-24T01:30:00Z"))?,
        None => loaded.at.unwrap_or(now),
    };
    let report = PlanReport::from(&plan(&loaded.state, &loaded.topology, at));
    if args.json {
        return Ok(serde_json::to_string_pretty(&report)? + "\n");
    }
    Ok(render(&report))
}

/// One header line, then one line per device: label, group, next action.
pub fn render(report: &PlanReport) -> String {
    let count = |a: PlanAction| report.entries.iter().filter(|e| e.action == a).count();
    let mut out = format!(
        "plan at {}: {} start, {} wait, {} updating, {} up to date; air time {:.0} % of {:.0} %\n",
        report.at,
        count(PlanAction::Start),
        count(PlanAction::Wait),
        count(PlanAction::InProgress),
        count(PlanAction::UpToDate),
        report.air_time_used * 100.0,
        report.air_time_budget * 100.0
    );
    let label_width = report.entries.iter().map(|e| e.label.chars().count()).max().unwrap_or(6).max(6);
    let group_width = report.entries.iter().map(|e| e.group.chars().count()).max().unwrap_or(5).max(5);
    out += &format!("{:label_width$}  {:group_width$}  NEXT\n", "DEVICE", "GROUP");
    for e in &report.entries {
        out += &format!("{:label_width$}  {:group_width$}  {}\n", e.label, e.group, e.summary);
    }
    out
}
