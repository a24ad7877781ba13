use std::os::unix::fs::{chown, symlink, PermissionsExt};

use super::*;

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

[[owner]]
name = "neighbour"
uid = 1002

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

[[group]]
name = "flat-4"
admin = "landlord"
occupant = "neighbour"
timezone = "Europe/Berlin"
"#;

const GOOD: &str = r#"
[group.flat-3]
windows = ["Mon-Fri 02:00-05:00", { cron = "0 23 * * 6,0", duration = "1h" }]
blackouts = [{ start = 2026-12-24T00:00:00+01:00, end = "2026-12-27T00:00:00+01:00", reason = "family visit" }]
"#;

const TENANT: u32 = 1001;

fn config(text: &str) -> Config {
    Config::parse(Path::new("ferry.toml"), text).unwrap_or_else(|e| panic!("{e}"))
}

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn now() -> Timestamp {
    ts("2026-11-27T08:00:00Z")
}

/// Writes `name` into `dir` owned by `uid` with `mode`.
fn put(dir: &Path, name: &str, text: &str, uid: u32, mode: u32) -> PathBuf {
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    std::fs::write(&path, text).expect("write owner file");
    chown(&path, Some(uid), Some(uid)).expect("chown (tests run as root)");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    path
}

/// The owner-file tests chown files to other uids, which needs root (as in CI).
fn root() -> bool {
    let probe = tempfile::NamedTempFile::new().expect("temp file");
    let is_root = chown(probe.path(), Some(4242), None).is_ok();
    if !is_root {
        eprintln!("skipped: needs root to chown files");
    }
    is_root
}

/// Loads `dir` with an empty history and insists nothing was rejected.
fn load_good(dir: &Path, config: &Config) -> EffectiveSettings {
    let (effective, rejections) = load_owner_dir(dir, config, now(), &EffectiveSettings::default());
    assert!(rejections.is_empty(), "{}", rejections.iter().map(|r| r.to_string()).collect::<Vec<_>>().join("\n"));
    effective
}

/// Monday 02:30 CET is the tenant's window only; Saturday 03:30 CET is the admin's only.
fn assert_tenant_windows_in_force(effective: &EffectiveSettings, config: &Config) {
    let schedule = effective.group_schedule(config, "flat-3", now()).expect("schedule");
    assert!(schedule.is_open(ts("2026-11-30T01:30:00Z")), "the tenant's Monday window is open");
    assert!(!schedule.is_open(ts("2026-11-28T02:30:00Z")), "the admin's default window was replaced");
    assert!(!schedule.is_open(ts("2026-12-24T01:30:00Z")), "the tenant's blackout holds");
}

#[test]
fn good_file_is_taken_and_replaces_the_admins_windows() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config(CONFIG);
    put(dir.path(), "tenant.toml", GOOD, TENANT, 0o644);
    let effective = load_good(dir.path(), &config);
    let tenant = &effective.owners["tenant"];
    assert_eq!(tenant.settings.group["flat-3"].windows.len(), 2);
    assert_eq!(tenant.settings.group["flat-3"].blackouts[0].reason.as_deref(), Some("family visit"));
    assert_tenant_windows_in_force(&effective, &config);
    // The Saturday cron window 23:00-24:00 is the tenant's too.
    let schedule = effective.group_schedule(&config, "flat-3", now()).expect("schedule");
    assert_eq!(schedule.current_close(ts("2026-11-28T22:30:00Z")), Some(ts("2026-11-28T23:00:00Z")));
}

#[test]
fn root_owned_file_is_taken() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    put(dir.path(), "tenant.toml", GOOD, 0, 0o600);
    assert!(load_good(dir.path(), &config(CONFIG)).owners.contains_key("tenant"));
}

/// Each bad file is refused with its reason while the previous good settings keep working.
#[test]
fn rejected_files_keep_the_last_good_settings() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config(CONFIG);
    put(dir.path(), "tenant.toml", GOOD, TENANT, 0o644);
    let good = load_good(dir.path(), &config);

    type Write = Box<dyn Fn(&Path)>;
    type Check = fn(&RejectReason) -> bool;
    let cases: Vec<(&str, Write, Check)> = vec![
        (
            "another tenant's group",
            Box::new(|d| {
                put(d, "tenant.toml", "[group.flat-4]\nwindows = [\"Mon-Sun 00:00-24:00\"]\n", TENANT, 0o644);
            }),
            |r| matches!(r, RejectReason::NotYourGroup { group, .. } if group == "flat-4"),
        ),
        (
            "group-writable",
            Box::new(|d| {
                put(d, "tenant.toml", GOOD, TENANT, 0o664);
            }),
            |r| matches!(r, RejectReason::WritableByOthers { mode: 0o664 }),
        ),
        (
            "world-writable",
            Box::new(|d| {
                put(d, "tenant.toml", GOOD, TENANT, 0o646);
            }),
            |r| matches!(r, RejectReason::WritableByOthers { mode: 0o646 }),
        ),
        (
            "owned by the neighbour",
            Box::new(|d| {
                put(d, "tenant.toml", GOOD, 1002, 0o644);
            }),
            |r| matches!(r, RejectReason::WrongFileOwner { uid: 1002, expected: 1001, .. }),
        ),
        (
            "a symlink",
            Box::new(|d| {
                let target = put(d, "elsewhere", GOOD, TENANT, 0o644);
                let link = d.join("tenant.toml");
                let _ = std::fs::remove_file(&link);
                symlink(target, link).expect("symlink");
            }),
            |r| matches!(r, RejectReason::NotRegularFile),
        ),
        (
            "a TOML syntax error",
            Box::new(|d| {
                put(d, "tenant.toml", "[group.flat-3]\nwindows = [\"Mon 02:00-05:00\"\n", TENANT, 0o644);
            }),
            |r| matches!(r, RejectReason::Malformed(invalid) if invalid.position.is_some_and(|p| p.0 == 2)),
        ),
        (
            "an unknown key",
            Box::new(|d| {
                put(d, "tenant.toml", "[group.flat-3]\nwindow = [\"Mon 02:00-05:00\"]\n", TENANT, 0o644);
            }),
            |r| matches!(r, RejectReason::Malformed(invalid) if invalid.message.contains("window") && invalid.position.is_some_and(|p| p.0 == 2)),
        ),
        (
            "a bad window",
            Box::new(|d| {
                put(d, "tenant.toml", "[group.flat-3]\nwindows = [\"Mon 02:00-05:00\", \"Tue 2am\"]\n", TENANT, 0o644);
            }),
            |r| matches!(r, RejectReason::Malformed(invalid) if invalid.key.as_deref() == Some("group.flat-3.windows[1]")),
        ),
        (
            "a blackout ending before it starts",
            Box::new(|d| {
                let text =
                    "[group.flat-3]\nblackouts = [{ start = 2026-12-24T00:00:00Z, end = 2026-12-23T00:00:00Z }]\n";
                put(d, "tenant.toml", text, TENANT, 0o644);
            }),
            |r| matches!(r, RejectReason::Malformed(invalid) if invalid.message.contains("before")),
        ),
        (
            "a blackout without an offset",
            Box::new(|d| {
                let text =
                    "[group.flat-3]\nblackouts = [{ start = 2026-12-24T00:00:00, end = 2026-12-25T00:00:00Z }]\n";
                put(d, "tenant.toml", text, TENANT, 0o644);
            }),
            |r| matches!(r, RejectReason::Malformed(invalid) if invalid.message.contains("offset")),
        ),
        (
            "a window outside the allowed hours",
            Box::new(|d| {
                put(
                    d,
                    "tenant.toml",
                    "[group.flat-3]\nwindows = [\"Mon-Fri 02:00-05:00\", \"Sat 12:00-13:00\"]\n",
                    TENANT,
                    0o644,
                );
            }),
            |r| {
                matches!(
                    r,
                    RejectReason::OutsideAllowedHours {
                        weekday: jiff::civil::Weekday::Saturday,
                        minute_of_day: 720,
                        ..
                    }
                )
            },
        ),
        (
            "too little window time",
            Box::new(|d| {
                put(d, "tenant.toml", "[group.flat-3]\nwindows = [\"Mon 02:00-03:00\"]\n", TENANT, 0o644);
            }),
            |r| matches!(r, RejectReason::TooLittleOpen { have, need, .. } if have == "1h" && need == "4h"),
        ),
        (
            "a month-long blackout",
            Box::new(|d| {
                let text =
                    "[group.flat-3]\nblackouts = [{ start = 2026-12-01T00:00:00Z, end = 2027-01-01T00:00:00Z }]\n";
                put(d, "tenant.toml", text, TENANT, 0o644);
            }),
            |r| matches!(r, RejectReason::DeferralTooLong { .. }),
        ),
    ];
    for (what, write, expected) in cases {
        // Start every case from the good settings on disk and in memory.
        write(dir.path());
        let (effective, rejections) = load_owner_dir(dir.path(), &config, now(), &good);
        let reasons: Vec<String> = rejections.iter().map(|r| r.to_string()).collect();
        let [rejection] = &rejections[..] else { panic!("{what}: expected one rejection, got {reasons:?}") };
        eprintln!("{what}: {rejection}");
        assert!(expected(&rejection.reason), "{what}: unexpected reason: {rejection}");
        assert_eq!(rejection.owner.as_deref(), Some("tenant"), "{what}");
        assert!(rejection.kept_previous, "{what}: {rejection}");
        assert!(rejection.to_string().contains("tenant.toml"), "{what}: names the file: {rejection}");
        assert_eq!(effective, good, "{what}: the previous settings stay");
        assert_tenant_windows_in_force(&effective, &config);
    }
}

#[test]
fn ended_lease_drops_the_tenants_settings() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config(CONFIG);
    put(dir.path(), "tenant.toml", GOOD, TENANT, 0o644);
    let good = load_good(dir.path(), &config);
    let after_lease = ts("2027-07-05T08:00:00Z");
    // Even without a reload, the schedule stops using the tenant's settings.
    let schedule = good.group_schedule(&config, "flat-3", after_lease).expect("schedule");
    // Monday 2027-07-05 02:30 CEST (00:30Z) was the tenant's; 03:30 CEST (01:30Z) is the admin's.
    assert!(!schedule.is_open(ts("2027-07-05T00:30:00Z")));
    assert!(schedule.is_open(ts("2027-07-05T01:30:00Z")));
    let (effective, rejections) = load_owner_dir(dir.path(), &config, after_lease, &good);
    let [rejection] = &rejections[..] else { panic!("expected one rejection: {rejections:?}") };
    assert!(matches!(rejection.reason, RejectReason::LeaseEnded { .. }), "{rejection}");
    assert!(!rejection.kept_previous, "{rejection}");
    assert!(rejection.to_string().contains("lease"), "{rejection}");
    assert!(!effective.owners.contains_key("tenant"));
}

#[test]
fn previous_settings_that_break_new_limits_are_dropped() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    put(dir.path(), "tenant.toml", GOOD, TENANT, 0o644);
    let good = load_good(dir.path(), &config(CONFIG));
    // The admin narrows the occupant's hours to the evening; the tenant's new file is broken.
    let narrowed = config(&CONFIG.replace("\"Mon-Sun 00:00-07:00\", ", ""));
    put(dir.path(), "tenant.toml", "not toml", TENANT, 0o644);
    let (effective, rejections) = load_owner_dir(dir.path(), &narrowed, now(), &good);
    assert_eq!(rejections.len(), 1);
    assert!(!rejections[0].kept_previous, "{}", rejections[0]);
    assert!(effective.owners.is_empty());
}

#[test]
fn admin_file_is_not_limited_and_blackouts_combine() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config(CONFIG);
    put(dir.path(), "tenant.toml", GOOD, TENANT, 0o644);
    let landlord = "[group.flat-3]\nblackouts = [{ start = 2026-11-30T00:00:00Z, end = 2027-01-15T00:00:00Z, reason = \"renovation\" }]\n\
                    [group.flat-4]\nwindows = [\"Sun 12:00-13:00\"]\n";
    put(dir.path(), "landlord.toml", landlord, 1000, 0o644);
    let effective = load_good(dir.path(), &config);
    let flat_3 = effective.group_schedule(&config, "flat-3", now()).expect("schedule");
    assert!(!flat_3.is_open(ts("2026-11-30T01:30:00Z")), "the admin's blackout cuts the tenant's window");
    assert_eq!(flat_3.next_open(ts("2026-11-30T00:00:00Z")), Some(ts("2027-01-15T01:00:00Z")));
    // flat-4's occupant set nothing, so the admin's owner file decides.
    let flat_4 = effective.group_schedule(&config, "flat-4", now()).expect("schedule");
    assert_eq!(flat_4.next_open(now()), Some(ts("2026-11-29T11:00:00Z")));
}

#[test]
fn unknown_owner_missing_dir_and_deleted_file() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let config = config(CONFIG);
    let (effective, rejections) =
        load_owner_dir(&dir.path().join("missing"), &config, now(), &EffectiveSettings::default());
    assert!(effective.owners.is_empty() && rejections.is_empty());
    put(dir.path(), "tenant.toml", GOOD, TENANT, 0o644);
    put(dir.path(), "stranger.toml", GOOD, 0, 0o644);
    put(dir.path(), ".tenant.toml.swp", "junk", TENANT, 0o644);
    let (effective, rejections) = load_owner_dir(dir.path(), &config, now(), &EffectiveSettings::default());
    let [rejection] = &rejections[..] else { panic!("expected one rejection: {rejections:?}") };
    assert!(matches!(&rejection.reason, RejectReason::UnknownOwner { name, .. } if name == "stranger"), "{rejection}");
    assert!(rejection.to_string().contains("landlord, tenant, neighbour"), "{rejection}");
    std::fs::remove_file(dir.path().join("tenant.toml")).expect("remove");
    std::fs::remove_file(dir.path().join("stranger.toml")).expect("remove");
    let (after, rejections) = load_owner_dir(dir.path(), &config, now(), &effective);
    assert!(rejections.is_empty());
    assert!(after.owners.is_empty(), "a deleted file withdraws the owner's settings");
}

#[test]
fn no_owner_files_means_the_admins_policy_windows() {
    let config = config(CONFIG);
    let schedule = EffectiveSettings::default().group_schedule(&config, "flat-3", now()).expect("schedule");
    assert!(schedule.is_open(ts("2026-11-28T02:30:00Z")), "policy window 03:00-04:00 CET");
    let schedule = EffectiveSettings::default().group_schedule(&config, "flat-4", now()).expect("schedule");
    assert!(schedule.is_open(now()), "no windows anywhere: any time");
    assert!(EffectiveSettings::default().group_schedule(&config, "flat-9", now()).is_err());
}

#[test]
fn fifo_is_refused_without_blocking() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("tenant.toml");
    if !std::process::Command::new("mkfifo").arg(&path).status().is_ok_and(|s| s.success()) {
        eprintln!("skipped: no mkfifo");
        return;
    }
    let (_, rejections) = load_owner_dir(dir.path(), &config(CONFIG), now(), &EffectiveSettings::default());
    let [rejection] = &rejections[..] else { panic!("expected one rejection: {rejections:?}") };
    assert!(matches!(rejection.reason, RejectReason::NotRegularFile), "{rejection}");
}

/// The examples in docs/owners.md parse and pass the limits they are shown with.
#[test]
fn documented_examples_are_valid() {
    let doc = include_str!("../../docs/owners.md");
    let blocks: Vec<&str> = doc.split("```toml\n").skip(1).map(|b| b.split("```").next().unwrap_or("")).collect();
    let [admin, tenant] = blocks[..] else { panic!("expected two TOML examples, found {}", blocks.len()) };
    let config = config(&format!("[radio]\nurl = \"sim:x.toml\"\n{admin}"));
    let file: OwnerFile = crate::config::deserialize_located(Path::new("tenant.toml"), tenant).expect("parses");
    let tenant_owner = config.owners.iter().find(|o| o.name == "tenant").expect("tenant");
    check_settings(tenant_owner, &file, &config, now()).expect("within the documented limits");
}

#[test]
fn an_occupants_blackout_more_than_two_years_ahead_is_refused() {
    let cfg = config(CONFIG);
    let far = r#"
[group.flat-3]
blackouts = [{ start = 9999-12-24T00:00:00+01:00, end = "9999-12-24T00:01:00+01:00" }]
"#;
    let (effective, rejections) = load_owner_texts([("tenant", far)], &cfg, now(), &EffectiveSettings::default());
    assert!(effective.owners.is_empty());
    let text = rejections[0].to_string();
    assert!(text.contains("9999-12-23T23:01:00Z") && text.contains("731 days ahead"), "{text}");
    // Hundreds of blackouts within the horizon are fine (and the check stays a single pass).
    let many: Vec<String> = (0..500)
        .map(|i| {
            let start = now().saturating_add(SignedDuration::from_hours(24 * i + 30)).unwrap();
            let end = start.saturating_add(SignedDuration::from_mins(30)).unwrap();
            format!("{{ start = \"{start}\", end = \"{end}\" }}")
        })
        .collect();
    let many = format!("[group.flat-3]\nblackouts = [{}]\n", many.join(", "));
    let (effective, rejections) =
        load_owner_texts([("tenant", many.as_str())], &cfg, now(), &EffectiveSettings::default());
    assert!(rejections.is_empty(), "{}", rejections[0]);
    assert_eq!(effective.owners["tenant"].settings.group["flat-3"].blackouts.len(), 500);
}
