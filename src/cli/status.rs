//! `ferry status`

use crate::control::api::StatusReport;
use crate::control::client::ControlClient;

pub async fn run(client: &ControlClient, json: bool) -> anyhow::Result<()> {
    let report = client.status().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(())
}

fn render(r: &StatusReport) -> String {
    let runs = &r.store.runs;
    let previous = match runs.previous_clean {
        None => "first run",
        Some(true) => "previous run stopped cleanly",
        Some(false) => "previous run did NOT stop cleanly (crash, kill or power loss)",
    };
    let config = r.config_path.as_ref().map_or("(none)".to_owned(), |p| p.display().to_string());
    let mut sessions = String::new();
    for l in &r.sessions {
        sessions += &format!(
            "          {}: {} ({} of {} payload bytes, {} served, {} trigger(s))\n",
            l.id, l.state, l.fetched, l.total, l.bytes_served, l.attempts
        );
    }
    let mut text = format!(
        "ferryd {version} (pid {pid}), up {uptime}\n\
         config:   {config}\n\
         radio:    {state}: {url} ({detail})\n\
         store:    {db} (schema {schema}, {kib} KiB); {runs} runs, {unclean} unclean stops; {previous}\n\
         cache:    {blobs} blobs\n\
         audit:    {audit} entries\n\
         owners:   {owners} owner files in force\n\
         metrics:  http://{metrics}/metrics\n\
         coap:     {coap}\n",
        version = r.version,
        pid = r.pid,
        uptime = human_duration(r.uptime_s),
        state = if r.radio.up { "up" } else { "down" },
        url = r.radio.url,
        detail = r.radio.detail,
        db = r.store.db_path.display(),
        schema = r.store.schema_version,
        kib = r.store.db_bytes.div_ceil(1024),
        runs = runs.runs,
        unclean = runs.unclean_stops,
        blobs = r.counts.blobs,
        audit = r.counts.audit_entries,
        owners = r.counts.owner_files_in_force,
        metrics = r.metrics_listen,
        coap = if r.coap_listen.is_empty() {
            "not on kernel UDP ([coap] listen is empty)".to_owned()
        } else {
            r.coap_listen.iter().map(|a| format!("coap://{a}")).collect::<Vec<_>>().join(", ")
        },
    );
    if r.sessions.is_empty() {
        text += "sessions: none\n";
    } else {
        text += &format!("sessions: {} (`ferry history` has their transitions)\n{sessions}", r.sessions.len());
    }
    text
}

fn human_duration(seconds: u64) -> String {
    let (d, h, m, s) = (seconds / 86_400, seconds / 3600 % 24, seconds / 60 % 60, seconds % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::human_duration;

    #[test]
    fn durations_read_like_uptime() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(125), "2m 5s");
        assert_eq!(human_duration(3 * 3600 + 61), "3h 1m");
        assert_eq!(human_duration(2 * 86_400 + 3600), "2d 1h");
    }
}
