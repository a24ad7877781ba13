//! Fuzzes the TOML files ferry reads: `ferry.toml`, an occupant's `owners.d` file (parsed and
//! checked against a group's policy, the deferral walk included), simulator scenarios and
//! `ferry plan` snapshots. Each must refuse bad input with an error, never panic or hang.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use ferry::config::Config;
use ferry::fleet::owners::{load_owner_texts, EffectiveSettings};
use ferry::schedule::snapshot::Snapshot;
use ferry::sim::Scenario;
use libfuzzer_sys::fuzz_target;

/// A landlord, a tenant with a lease, and the tenant's group with every occupant limit set.
const CONFIG: &str = r#"
[radio]
url = "sim:x.toml"

[[owner]]
name = "landlord"
uid = 1000

[[owner]]
name = "tenant"
uid = 1001
lease_end = 2027-06-30T00:00:00Z

[[group]]
name = "flat-3"
admin = "landlord"
occupant = "tenant"
timezone = "Europe/Berlin"
[group.policy]
windows = ["Mon-Sun 03:00-04:00"]
occupant_hours = ["Mon-Sun 00:00-07:00", "Mon-Sun 22:00-24:00"]
min_weekly_open = "4h"
max_deferral = "14d"
"#;

fn config() -> &'static Config {
    static CONFIG_PARSED: OnceLock<Config> = OnceLock::new();
    CONFIG_PARSED.get_or_init(|| Config::parse(Path::new("ferry.toml"), CONFIG).expect("the fixed config parses"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = Config::parse(Path::new("ferry.toml"), text);
    let now = jiff::Timestamp::from_second(1_795_000_000).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let _ = load_owner_texts([("tenant", text)], config(), now, &EffectiveSettings::default());
    let _ = Scenario::parse(Path::new("scenario.toml"), text);
    let _ = Snapshot::parse("snapshot.toml", text, false);
    let _ = Snapshot::parse("snapshot.json", text, true);
});
