//! `ferry device ls|show|admit|retire`: the fleet as ferryd knows it, and changing it.

use clap::Subcommand;

use crate::control::api::{DeviceChange, DeviceReport};
use crate::control::client::ControlClient;
use crate::fleet::{Device, Known};

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Every device ferry knows: lifecycle, group, board.
    Ls {
        /// Print JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// One device: every fact with where and when ferry learned it, and its audit trail.
    Show {
        eui64: String,
        #[arg(long)]
        json: bool,
    },
    /// Commission a discovered (or retired, or not yet heard) device: root or the group's admin.
    Admit {
        eui64: String,
        /// The group to put it in (default: the group it has).
        #[arg(long, value_name = "G")]
        group: Option<String>,
    },
    /// Decommission a device: its keys, sessions and owner links are forgotten (the audit log
    /// keeps the record). Root or the group's admin.
    Retire { eui64: String },
}

pub async fn run(client: &ControlClient, command: &DeviceCommand) -> anyhow::Result<()> {
    match command {
        DeviceCommand::Ls { json } => {
            let list = client.devices().await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print!("{}", render_list(&list.devices));
            }
        }
        DeviceCommand::Show { eui64, json } => {
            let report = client.device(eui64).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", render_device(&report));
            }
        }
        DeviceCommand::Admit { eui64, group } => {
            let done = client.admit(&DeviceChange { eui64: eui64.clone(), group: group.clone() }).await?;
            println!("{}", done.message);
        }
        DeviceCommand::Retire { eui64 } => {
            let done = client.retire(&DeviceChange { eui64: eui64.clone(), group: None }).await?;
            println!("{}", done.message);
        }
    }
    Ok(())
}

fn render_list(devices: &[Device]) -> String {
    let mut out = format!("{:23}  {:14}  {:12}  BOARD\n", "EUI-64", "LIFECYCLE", "GROUP");
    for d in devices {
        let text = |k: &Option<Known<String>>| k.as_ref().map_or("-".to_owned(), |k| k.value.clone());
        out += &format!("{:23}  {:14}  {:12}  {}\n", d.eui64, d.lifecycle, text(&d.group), text(&d.board));
    }
    out += &format!("{} devices\n", devices.len());
    out
}

fn fact<T: std::fmt::Display>(name: &str, known: &Option<Known<T>>) -> String {
    match known {
        Some(k) => format!("  {name:18} {}  ({}, {})\n", k.value, k.source.as_str(), k.learned_at),
        None => format!("  {name:18} unknown\n"),
    }
}

fn render_device(report: &DeviceReport) -> String {
    let d = &report.device;
    let mut out = format!("device {}: {} since {}\n", d.eui64, d.lifecycle, d.lifecycle_since);
    out += &fact("group", &d.group);
    out += &fact("board", &d.board);
    out += &fact("vendor", &d.vendor_id);
    out += &fact("class", &d.class_id);
    out += &fact("battery %", &d.battery_percent);
    out += &fact("free storage B", &d.free_storage_bytes);
    let link = d.link.as_ref().map(|k| {
        Known::new(
            format!("RSSI {} dBm, LQI {}, ETX {:.2}", k.value.rssi_dbm, k.value.lqi, k.value.etx),
            k.source,
            k.learned_at,
        )
    });
    out += &fact("link", &link);
    let position = d
        .position
        .as_ref()
        .map(|k| Known::new(format!("parent {}, {} hops", k.value.parent, k.value.hops), k.source, k.learned_at));
    out += &fact("position", &position);
    let duty = d.duty_cycle.as_ref().map(|k| {
        Known::new(
            format!("wakes every {:.3} s (confidence {:.2})", k.value.period_us / 1e6, k.value.confidence),
            k.source,
            k.learned_at,
        )
    });
    out += &fact("duty cycle", &duty);
    for (component, k) in &d.components {
        out += &fact(&format!("component {component}"), &Some(k.clone()));
    }
    if !report.deliveries.is_empty() {
        out += "deliveries:\n";
    }
    for a in &report.deliveries {
        let at = |ms: i64| jiff::Timestamp::from_millisecond(ms).map_or_else(|_| ms.to_string(), |t| t.to_string());
        let next = match (a.gave_up, a.next_unix_ms) {
            (true, _) => "gave up".to_owned(),
            (false, Some(t)) => format!("next try {}", at(t)),
            (false, None) => "no further try".to_owned(),
        };
        out += &format!(
            "  sequence {}: {} attempt(s), last {} (session {}, {}){}; {next}\n",
            a.sequence,
            a.attempts,
            a.last_result,
            a.last_session,
            at(a.last_unix_ms),
            a.last_reason.as_deref().map(|r| format!(" — {r}")).unwrap_or_default(),
        );
    }
    out += "audit:\n";
    for e in &report.audit {
        let at = jiff::Timestamp::from_millisecond(e.at_unix_ms)
            .map_or_else(|_| e.at_unix_ms.to_string(), |t| t.to_string());
        out += &format!("  {at}  {}  {}: {}\n", e.actor, e.action, e.detail);
    }
    out
}
