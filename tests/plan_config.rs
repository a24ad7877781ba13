//! The scheduler's keys in ferry.toml: `[plan]`, readiness and urgency keys in `[group.policy]`,
//! and an authority's `approval`.

use std::path::Path;

use ferry::config::Config;
use ferry::schedule::plan::{ApprovalMode, SkipFrom};

const BASE: &str = r#"
[radio]
url = "sim:scenario.toml"

[[owner]]
name = "landlord"
uid = 1000

[[authority]]
name = "acme"
keys = ["MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE="]
approval = "manual"
"#;

#[test]
fn plan_keys_parse_with_defaults_and_are_validated() {
    let text = format!(
        "{BASE}\n[plan]\nair_time_budget = 0.5\nblock_size = 128\n\n[[group]]\nname = \"flat\"\nadmin = \"landlord\"\n\
         [group.policy]\nmin_battery_percent = 40\nmax_etx = 2.5\nskip_windows_from = \"security\"\n"
    );
    let config = Config::parse(Path::new("ferry.toml"), &text).expect("parses");
    assert_eq!(config.authorities[0].approval, ApprovalMode::Manual);
    let pan = config.plan.pan_policy();
    assert_eq!((pan.air_time_budget, pan.block_size, pan.max_concurrent_per_parent), (0.5, 128, 2));
    let policy = &config.groups[0].policy;
    assert_eq!((policy.min_battery_percent, policy.max_etx, policy.min_rssi_dbm), (40, 2.5, -90));
    assert_eq!((policy.skip_windows_from, policy.skip_blackouts_from), (SkipFrom::Security, SkipFrom::Never));

    let bad = format!("{BASE}\n[plan]\nblock_size = 100\n");
    let e = Config::parse(Path::new("ferry.toml"), &bad).unwrap_err().to_string();
    assert!(e.contains("plan.block_size") && e.contains("16, 32, 64"), "{e}");
    let bad = format!("{BASE}\n[plan]\nair_time_budget = 1.5\n");
    assert!(Config::parse(Path::new("ferry.toml"), &bad).is_err());
}
