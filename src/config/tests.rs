use super::*;

const MINIMAL: &str = "[radio]\nurl = \"sim:sim/home.toml\"\n";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("ferry.toml"), text)
}

fn invalid(text: &str) -> Invalid {
    match parse(text) {
        Err(ConfigError::Invalid(invalid)) => *invalid,
        other => panic!("expected an invalid config, got {other:?}"),
    }
}

#[test]
fn minimal_config_gets_defaults() {
    let config = parse(MINIMAL).expect("minimal config parses");
    assert_eq!(config.radio.url, RadioUrl::Sim { scenario: "sim/home.toml".into() });
    assert_eq!(config.network.channel.get(), 26);
    assert_eq!(config.metrics.listen, "127.0.0.1:9478".parse().expect("address"));
    assert_eq!(config.control.socket, PathBuf::from("/run/ferry/control.sock"));
    assert_eq!(config.store.state_dir, PathBuf::from("/var/lib/ferry"));
}

#[test]
fn effective_config_round_trips() {
    let text = r#"
[radio]
url = "spinel+hdlc+uart:///dev/ttyACM0?uart-baudrate=115200&uart-flow-control"
[network]
channel = 15
pan_id = 0x1234
prefix = "fd12:3456::/64"
[coap]
listen = ["[::1]:5683"]
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
devices = ["00:11:22:33:44:55:66:77"]
[[authority]]
name = "riot-community"
keys = ["00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"]
[authority.scope]
vendor_ids = ["*"]
"#;
    let config = parse(text).expect("full config parses");
    assert_eq!(
        config.radio.url,
        RadioUrl::Uart { device: "/dev/ttyACM0".into(), baudrate: 115_200, flow_control: true }
    );
    assert_eq!(config.network.pan_id, PanId(0x1234));
    let again = parse(&config.to_toml()).expect("the effective config parses again");
    assert_eq!(config, again);
}

#[test]
fn typo_in_key_names_line_key_and_allowed_keys() {
    let err = invalid("[radio]\nurl = \"sim:x.toml\"\n[network]\nchanel = 11\n");
    assert_eq!(err.position.map(|p| p.0), Some(4), "{err}");
    assert!(err.message.contains("chanel"), "{err}");
    assert!(err.message.contains("channel"), "the message lists the allowed keys: {err}");
}

#[test]
fn wrong_type_names_line_and_key() {
    let err = invalid("[radio]\nurl = \"sim:x.toml\"\n[network]\nchannel = \"eleven\"\n");
    assert_eq!(err.position.map(|p| p.0), Some(4), "{err}");
    assert_eq!(err.key.as_deref(), Some("network.channel"), "{err}");
}

#[test]
fn out_of_range_channel_says_what_is_allowed() {
    let err = invalid("[radio]\nurl = \"sim:x.toml\"\n[network]\nchannel = 27\n");
    assert_eq!(err.position.map(|p| p.0), Some(4), "{err}");
    assert!(err.message.contains("11–26"), "{err}");
}

#[test]
fn bad_address_names_line_and_key() {
    let err = invalid("[radio]\nurl = \"sim:x.toml\"\n[metrics]\nlisten = \"127.0.0.1\"\n");
    assert_eq!(err.position.map(|p| p.0), Some(4), "{err}");
    assert_eq!(err.key.as_deref(), Some("metrics.listen"), "{err}");
    assert!(err.to_string().starts_with("ferry.toml:4:"), "{err}");
}

#[test]
fn bad_radio_urls_are_refused_with_the_allowed_forms() {
    for url in ["tcp://host:1", "spinel+hdlc+uart:///dev/ttyACM0?uart-baudrate=fast", "sim:", "spinel+hdlc+uart://"] {
        let err = invalid(&format!("[radio]\nurl = \"{url}\"\n"));
        assert_eq!(err.position.map(|p| p.0), Some(2), "{url}: {err}");
        assert_eq!(err.key.as_deref(), Some("radio.url"), "{url}: {err}");
    }
}

#[test]
fn missing_radio_section_is_reported() {
    let err = invalid("[network]\nchannel = 11\n");
    assert!(err.message.contains("radio"), "{err}");
}

#[test]
fn prefix_must_be_a_slash_64_network() {
    for prefix in ["fd00::/48", "fd00::1/64", "fd00::", "zz::/64"] {
        let err = invalid(&format!("{MINIMAL}[network]\nprefix = \"{prefix}\"\n"));
        assert_eq!(err.key.as_deref(), Some("network.prefix"), "{prefix}: {err}");
    }
}

#[test]
fn group_must_name_a_known_owner() {
    let text = format!("{MINIMAL}[[owner]]\nname = \"a\"\nuid = 1\n[[group]]\nname = \"g\"\nadmin = \"a\"\n[[group]]\nname = \"h\"\nadmin = \"b\"\n");
    let err = invalid(&text);
    assert_eq!(err.key.as_deref(), Some("group[1].admin"), "{err}");
    assert_eq!(err.position.map(|p| p.0), Some(11), "{err}");
}

#[test]
fn duplicate_names_and_bad_thresholds_are_refused() {
    let dup = format!("{MINIMAL}[[owner]]\nname = \"a\"\nuid = 1\n[[owner]]\nname = \"a\"\nuid = 2\n");
    assert_eq!(invalid(&dup).key.as_deref(), Some("owner[1].name"));
    let threshold = format!("{MINIMAL}[[authority]]\nname = \"x\"\nkeys = [\"k\"]\nthreshold = 2\n");
    assert_eq!(invalid(&threshold).key.as_deref(), Some("authority[0].threshold"));
}

#[test]
fn relative_paths_resolve_against_the_config_folder() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ferry.toml");
    let text = "[radio]\nurl = \"sim:sim/home.toml\"\n[store]\nstate_dir = \"state\"\n[control]\nsocket = \"run/control.sock\"\n";
    std::fs::write(&path, text).expect("write config");
    let loaded = LoadedConfig::load(&path).expect("loads");
    assert_eq!(loaded.config.store.state_dir, dir.path().join("state"));
    assert_eq!(loaded.config.control.socket, dir.path().join("run/control.sock"));
    assert_eq!(loaded.config.radio.url, RadioUrl::Sim { scenario: dir.path().join("sim/home.toml") });
}

#[test]
fn unreadable_file_names_the_path() {
    let err = LoadedConfig::load(Path::new("/nonexistent/ferry.toml")).expect_err("missing file");
    assert!(err.to_string().contains("/nonexistent/ferry.toml"), "{err}");
}

const OWNERS_AND_GROUP: &str = "[[owner]]\nname = \"landlord\"\nuid = 1000\n[[owner]]\nname = \"tenant\"\nuid = 1001\nlease_end = 2027-06-30\n[[group]]\nname = \"flat-3\"\nadmin = \"landlord\"\noccupant = \"tenant\"\ntimezone = \"Europe/Berlin\"\n";

#[test]
fn group_policy_parses_with_defaults_and_round_trips() {
    let text = format!(
        "{MINIMAL}{OWNERS_AND_GROUP}[group.policy]\nwindows = [\"Mon-Fri 02:00-05:00\", {{ cron = \"0 3 * * 6\", duration = \"2h\" }}]\noccupant_hours = [\"Mon-Sun 00:00-07:00\"]\nmax_deferral = \"7d\"\n"
    );
    let config = parse(&text).expect("policy parses");
    let policy = &config.groups[0].policy;
    assert_eq!(policy.windows.len(), 2);
    assert_eq!(policy.occupant_hours[0].to_string(), "Mon-Sun 00:00-07:00");
    assert_eq!(policy.min_weekly_open.to_string(), "2h", "default");
    assert_eq!(policy.max_deferral.to_string(), "7d");
    let again = parse(&config.to_toml()).expect("the effective config parses again");
    assert_eq!(config, again);
    let lease_end = config.owners[1].lease_end_at().expect("valid").expect("set");
    assert_eq!(lease_end.to_string(), "2027-06-30T00:00:00Z");
}

#[test]
fn a_group_may_set_its_own_retry_policy() {
    let text = format!(
        "{MINIMAL}[delivery]\nmax_attempts = 3\nretry_backoff_s = 600\n{OWNERS_AND_GROUP}[group.policy]\nmax_attempts = 5\n"
    );
    let config = parse(&text).expect("parses");
    let group = config.retry_policy_for(Some("flat-3"));
    assert_eq!((group.max_attempts, group.backoff.as_secs()), (5, 600), "its own attempts, [delivery]'s backoff");
    let other = config.retry_policy_for(Some("no-such-group"));
    assert_eq!((other.max_attempts, other.backoff.as_secs()), (3, 600));
    assert_eq!(config.retry_policy_for(None), other);
    let again = parse(&config.to_toml()).expect("the effective config parses again");
    assert_eq!(config, again);
    let text = format!("{MINIMAL}{OWNERS_AND_GROUP}[group.policy]\nmax_attempts = 0\n");
    let err = invalid(&text);
    assert_eq!(err.key.as_deref(), Some("group[0].policy.max_attempts"), "{err}");
    let text = format!("{MINIMAL}{OWNERS_AND_GROUP}[group.policy]\nretry_backoff_s = 0\n");
    assert_eq!(invalid(&text).key.as_deref(), Some("group[0].policy.retry_backoff_s"));
}

#[test]
fn durations_and_rates_that_would_overflow_a_clock_are_refused() {
    for (extra, key) in [
        ("[delivery]\nsession_backoff_s = 9223372036854775807\n", "delivery.session_backoff_s"),
        ("[delivery]\nretry_backoff_s = 86401\n", "delivery.retry_backoff_s"),
        ("[[repository]]\nname = \"r\"\nurl = \"/srv/r\"\npoll_interval_s = 604801\n", "repository[0].poll_interval_s"),
        (
            "[[repository]]\nname = \"r\"\nurl = \"/srv/r\"\nmax_rate_kib_s = 18446744073709551615\n",
            "repository[0].max_rate_kib_s",
        ),
    ] {
        let err = invalid(&format!("{MINIMAL}{extra}"));
        assert_eq!(err.key.as_deref(), Some(key), "{err}");
    }
    let text = format!("{MINIMAL}{OWNERS_AND_GROUP}[group.policy]\nretry_backoff_s = 99999999999\n");
    assert_eq!(invalid(&text).key.as_deref(), Some("group[0].policy.retry_backoff_s"));
    // A day is still fine, and 0 keeps meaning what it meant: poll every second, no rate limit.
    assert!(parse(&format!("{MINIMAL}[delivery]\nretry_backoff_s = 86400\n")).is_ok());
    let zeros = "[[repository]]\nname = \"r\"\nurl = \"/srv/r\"\npoll_interval_s = 0\nmax_rate_kib_s = 0\n";
    assert!(parse(&format!("{MINIMAL}{zeros}")).is_ok());
}

#[test]
fn bad_policy_values_name_line_and_key() {
    let text = format!("{MINIMAL}{OWNERS_AND_GROUP}[group.policy]\noccupant_hours = [\"Mon-Sun 00:00-25:00\"]\n");
    let err = invalid(&text);
    assert_eq!(err.key.as_deref(), Some("group[0].policy.occupant_hours[0]"), "{err}");
    assert_eq!(err.position.map(|p| p.0), Some(16), "{err}");
    assert!(err.message.contains("HH:MM"), "{err}");
    let text = format!("{MINIMAL}{OWNERS_AND_GROUP}[group.policy]\nmax_deferal = \"7d\"\n");
    assert!(invalid(&text).message.contains("max_deferral"), "lists the allowed keys");
}

#[test]
fn unknown_time_zone_is_refused() {
    let text = format!("{MINIMAL}{}", OWNERS_AND_GROUP.replace("Europe/Berlin", "Europe/Atlantis"));
    let err = invalid(&text);
    assert_eq!(err.key.as_deref(), Some("group[0].timezone"), "{err}");
    assert!(err.message.contains("IANA"), "{err}");
}
