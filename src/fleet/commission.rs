//! Devices entering and leaving the fleet: heard on the air ([`discovered`]), listed in
//! `ferry.toml` ([`commission_listed`]), admitted or retired by an operator ([`admit`],
//! [`retire`]), and facts learned about them ([`learned`]). Every change is saved in the store
//! and written to the audit log.
//!
//! The `*_in` functions run on a store connection (inside `Store::call`), so a caller can check
//! rights and change a device in one step; the async ones are for the daemon's rooms.

use std::fmt;

use jiff::Timestamp;
use rusqlite::Connection;

use super::device::{Device, Eui64, Known, Lifecycle, LifecycleError, Source};
use crate::config::Config;
use crate::store::audit::{self, AuditEntry};
use crate::store::devices::{self, DeviceStoreError};
use crate::store::{Store, StoreError};

/// Why a fleet change was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("device {0} is not known to ferry")]
    UnknownDevice(Eui64),
    #[error("group `{group}` is not in ferry.toml; known groups: {known}")]
    UnknownGroup { group: String, known: String },
    #[error("device {0} is in no group; say which with --group G")]
    NoGroup(Eui64),
    #[error("device {0} is already retired")]
    AlreadyRetired(Eui64),
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error(transparent)]
    Store(#[from] DeviceStoreError),
    #[error("cannot write the audit log: {0}")]
    Audit(#[from] rusqlite::Error),
    #[error(transparent)]
    StoreThread(#[from] StoreError),
}

/// Who made a change, as the audit log names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// `[[group]] devices` in ferry.toml.
    Config,
    /// What ferry heard or learned (radio, RPL, a device's report).
    Heard(Source),
    /// A control-socket client, by uid, with the owner names it acts as.
    Peer(String),
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Config => f.write_str("config"),
            Actor::Heard(source) => f.write_str(source.as_str()),
            Actor::Peer(name) => f.write_str(name),
        }
    }
}

fn write_audit(conn: &Connection, actor: &Actor, action: &str, detail: String, now: Timestamp) -> rusqlite::Result<()> {
    audit::record(
        conn,
        &AuditEntry { at_unix_ms: now.as_millisecond(), actor: actor.to_string(), action: action.to_owned(), detail },
    )
}

fn group_of(device: &Device) -> Option<&str> {
    device.group.as_ref().map(|g| g.value.as_str())
}

/// A commissioned device whose vendor and class are known becomes active: ferry can tell which
/// updates are its.
fn activate_if_identified(device: &mut Device, now: Timestamp) -> bool {
    let identified = device.vendor_id.is_some() && device.class_id.is_some();
    identified && device.lifecycle == Lifecycle::Commissioned && device.transition(Lifecycle::Active, now).is_ok()
}

/// What hearing a device changed.
#[derive(Debug, Clone, PartialEq)]
pub enum Heard {
    /// First heard now.
    New(Device),
    /// Retired before; starts over as discovered.
    Rediscovered(Device),
    /// Already known; nothing changed.
    Known(Device),
}

/// A device was heard on the air or joined the DODAG (`source`: radio or RPL).
pub fn discovered_in(conn: &mut Connection, eui64: Eui64, now: Timestamp, source: Source) -> Result<Heard, FleetError> {
    let actor = Actor::Heard(source);
    match devices::load(conn, eui64)? {
        None => {
            let device = Device::discovered(eui64, now);
            devices::save(conn, &device)?;
            write_audit(conn, &actor, "device discovered", format!("{eui64}: heard for the first time"), now)?;
            Ok(Heard::New(device))
        }
        Some(mut device) if device.lifecycle == Lifecycle::Decommissioned => {
            device.transition(Lifecycle::Discovered, now)?;
            devices::save(conn, &device)?;
            write_audit(conn, &actor, "device rediscovered", format!("{eui64}: retired before, heard again"), now)?;
            Ok(Heard::Rediscovered(device))
        }
        Some(device) => Ok(Heard::Known(device)),
    }
}

/// The hook for the radio/RPL side: call it when a node is heard or joins the DODAG. Cheap
/// for a known device (one read).
pub async fn discovered(store: &Store, eui64: Eui64, now: Timestamp, source: Source) -> Result<Heard, FleetError> {
    store.call(move |c| Ok(discovered_in(c, eui64, now, source))).await?
}

/// Facts learned about a known device (`learn` sets them, with their source and time); a
/// commissioned device whose identity is now known becomes active. Returns the saved device.
pub fn learned_in(
    conn: &mut Connection,
    eui64: Eui64,
    now: Timestamp,
    learn: impl FnOnce(&mut Device),
) -> Result<Device, FleetError> {
    let mut device = devices::load(conn, eui64)?.ok_or(FleetError::UnknownDevice(eui64))?;
    learn(&mut device);
    if activate_if_identified(&mut device, now) {
        let detail = format!("{eui64}: identity known ({})", identity_text(&device));
        write_audit(conn, &Actor::Heard(Source::DeviceReport), "device active", detail, now)?;
    }
    devices::save(conn, &device)?;
    Ok(device)
}

/// [`learned_in`] for the daemon's rooms.
pub async fn learned(
    store: &Store,
    eui64: Eui64,
    now: Timestamp,
    learn: impl FnOnce(&mut Device) + Send + 'static,
) -> Result<Device, FleetError> {
    store.call(move |c| Ok(learned_in(c, eui64, now, learn))).await?
}

fn identity_text(device: &Device) -> String {
    let text = |k: &Option<Known<String>>| k.as_ref().map_or("?".to_owned(), |k| k.value.clone());
    format!("vendor {}, class {}", text(&device.vendor_id), text(&device.class_id))
}

/// What commissioning from ferry.toml did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Commissioning {
    /// Newly commissioned (or re-grouped) devices.
    pub changed: Vec<Eui64>,
    /// Listed but retired: they stay retired until `ferry device admit`.
    pub retired: Vec<Eui64>,
}

/// Commissions every device `[[group]] devices` lists, in that group. Run at start and on
/// reload; a device already commissioned in its group is left alone.
pub fn commission_listed(conn: &mut Connection, config: &Config, now: Timestamp) -> Result<Commissioning, FleetError> {
    let mut report = Commissioning::default();
    for group in &config.groups {
        for eui64 in group.device_euis() {
            let mut device = devices::load(conn, eui64)?.unwrap_or_else(|| Device::discovered(eui64, now));
            if device.lifecycle == Lifecycle::Decommissioned {
                report.retired.push(eui64);
                continue;
            }
            let was = group_of(&device).map(str::to_owned);
            let newly = device.lifecycle == Lifecycle::Discovered;
            if !newly && was.as_deref() == Some(group.name.as_str()) {
                continue;
            }
            if newly {
                device.transition(Lifecycle::Commissioned, now)?;
            }
            device.group = Some(Known::new(group.name.clone(), Source::Config, now));
            activate_if_identified(&mut device, now);
            devices::save(conn, &device)?;
            let (action, detail) = match (&was, newly) {
                (Some(old), false) => {
                    ("device regrouped", format!("{eui64}: group {old} → {} (ferry.toml)", group.name))
                }
                _ => ("device commissioned", format!("{eui64}: group {} (listed in ferry.toml)", group.name)),
            };
            write_audit(conn, &Actor::Config, action, detail, now)?;
            report.changed.push(eui64);
        }
    }
    Ok(report)
}

/// What an admission changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Admitted {
    pub device: Device,
    /// False when the device was already commissioned in that group.
    pub changed: bool,
}

/// The groups an admission touches: the device's current one and the one it goes to.
pub fn admission_groups(conn: &Connection, eui64: Eui64, group: Option<&str>) -> Result<Vec<String>, FleetError> {
    let current = devices::load(conn, eui64)?.and_then(|d| d.group.map(|g| g.value));
    let mut groups: Vec<String> = current.into_iter().chain(group.map(str::to_owned)).collect();
    groups.dedup();
    Ok(groups)
}

/// `ferry device admit EUI [--group G]`: commissions a discovered (or retired, or not yet heard)
/// device, in `group` or the group it has. Rights are the caller's to check first.
pub fn admit(
    conn: &mut Connection,
    config: &Config,
    eui64: Eui64,
    group: Option<&str>,
    actor: &Actor,
    now: Timestamp,
) -> Result<Admitted, FleetError> {
    if let Some(g) = group {
        if config.group(g).is_none() {
            let known = config.groups.iter().map(|g| g.name.as_str()).collect::<Vec<_>>().join(", ");
            return Err(FleetError::UnknownGroup { group: g.to_owned(), known });
        }
    }
    let mut device = devices::load(conn, eui64)?.unwrap_or_else(|| Device::discovered(eui64, now));
    let was_group = group_of(&device).map(str::to_owned);
    let target = match (group, &was_group) {
        (Some(g), _) => g.to_owned(),
        (None, Some(g)) if device.lifecycle != Lifecycle::Decommissioned => g.clone(),
        _ => return Err(FleetError::NoGroup(eui64)),
    };
    let was = device.lifecycle;
    if was == Lifecycle::Decommissioned {
        device.transition(Lifecycle::Discovered, now)?;
    }
    if device.lifecycle == Lifecycle::Discovered {
        device.transition(Lifecycle::Commissioned, now)?;
    }
    if was != device.lifecycle || was_group.as_deref() != Some(target.as_str()) {
        device.group = Some(Known::new(target.clone(), Source::Operator, now));
    } else {
        return Ok(Admitted { device, changed: false });
    }
    activate_if_identified(&mut device, now);
    devices::save(conn, &device)?;
    let moved = match &was_group {
        Some(old) if *old != target && was != Lifecycle::Decommissioned => format!(" (was in {old})"),
        _ => String::new(),
    };
    let detail = format!("{eui64}: {was} → {}, group {target}{moved}", device.lifecycle);
    write_audit(conn, actor, "device admitted", detail, now)?;
    Ok(Admitted { device, changed: true })
}

/// `ferry device retire EUI`: decommissions the device and forgets its keys, sessions and owner
/// links; the audit log keeps the record. Returns the device as it was before forgetting.
pub fn retire(conn: &mut Connection, eui64: Eui64, actor: &Actor, now: Timestamp) -> Result<Device, FleetError> {
    let mut device = devices::load(conn, eui64)?.ok_or(FleetError::UnknownDevice(eui64))?;
    if device.lifecycle == Lifecycle::Decommissioned {
        return Err(FleetError::AlreadyRetired(eui64));
    }
    let before = device.clone();
    device.transition(Lifecycle::Decommissioned, now)?;
    devices::save(conn, &device)?;
    let forgotten = devices::forget(conn, eui64)?;
    let group = group_of(&before).unwrap_or("no group");
    let detail = format!(
        "{eui64}: {} in {group} → decommissioned; {forgotten} facts, keys, sessions and owner links forgotten",
        before.lifecycle
    );
    write_audit(conn, actor, "device retired", detail, now)?;
    Ok(before)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (Connection, Config) {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::store::migrate(&mut conn).unwrap();
        let config = Config::parse(
            std::path::Path::new("ferry.toml"),
            r#"
[radio]
url = "sim:home.toml"
[[owner]]
name = "landlord"
uid = 1000
[[group]]
name = "flat-1"
admin = "landlord"
devices = ["02:00:00:00:00:00:00:01", "0200000000000002"]
[[group]]
name = "shop"
admin = "landlord"
"#,
        )
        .unwrap();
        (conn, config)
    }

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn audit_actions(conn: &Connection, eui: Eui64) -> Vec<String> {
        audit::mentioning(conn, &eui.to_string()).unwrap().into_iter().map(|e| e.action).collect()
    }

    #[test]
    fn listed_devices_are_commissioned_once() {
        let (mut conn, config) = setup();
        let first = commission_listed(&mut conn, &config, t(0)).unwrap();
        assert_eq!(first.changed.len(), 2);
        assert!(commission_listed(&mut conn, &config, t(1)).unwrap().changed.is_empty(), "idempotent");
        let d = devices::load(&conn, Eui64([2, 0, 0, 0, 0, 0, 0, 2])).unwrap().unwrap();
        assert_eq!(d.lifecycle, Lifecycle::Commissioned);
        assert_eq!(d.group.unwrap(), Known::new("flat-1".to_owned(), Source::Config, t(0)));
    }

    #[test]
    fn discovered_admit_retire_and_rediscovery() {
        let (mut conn, config) = setup();
        let eui = Eui64([2, 0, 0, 0, 0, 0, 0, 9]);
        assert!(matches!(discovered_in(&mut conn, eui, t(0), Source::Rpl).unwrap(), Heard::New(_)));
        assert!(matches!(discovered_in(&mut conn, eui, t(1), Source::Radio).unwrap(), Heard::Known(_)));
        let actor = Actor::Peer("uid:0".into());
        assert!(matches!(admit(&mut conn, &config, eui, None, &actor, t(2)), Err(FleetError::NoGroup(_))));
        assert!(matches!(
            admit(&mut conn, &config, eui, Some("nope"), &actor, t(2)),
            Err(FleetError::UnknownGroup { .. })
        ));
        let admitted = admit(&mut conn, &config, eui, Some("shop"), &actor, t(2)).unwrap();
        assert!(admitted.changed);
        assert_eq!(admitted.device.lifecycle, Lifecycle::Commissioned);
        assert!(!admit(&mut conn, &config, eui, None, &actor, t(3)).unwrap().changed, "already admitted");

        let device = learned_in(&mut conn, eui, t(4), |d| {
            d.vendor_id = Some(Known::new("v".into(), Source::DeviceReport, t(4)));
            d.class_id = Some(Known::new("c".into(), Source::DeviceReport, t(4)));
        })
        .unwrap();
        assert_eq!(device.lifecycle, Lifecycle::Active);

        let before = retire(&mut conn, eui, &actor, t(5)).unwrap();
        assert_eq!(before.group.unwrap().value, "shop");
        let after = devices::load(&conn, eui).unwrap().unwrap();
        assert_eq!(after.lifecycle, Lifecycle::Decommissioned);
        assert!(after.group.is_none() && after.vendor_id.is_none(), "facts forgotten: {after:?}");
        assert!(matches!(retire(&mut conn, eui, &actor, t(6)), Err(FleetError::AlreadyRetired(_))));
        assert!(matches!(discovered_in(&mut conn, eui, t(7), Source::Radio).unwrap(), Heard::Rediscovered(_)));
        assert_eq!(
            audit_actions(&conn, eui),
            ["device discovered", "device admitted", "device active", "device retired", "device rediscovered"]
        );
    }

    #[test]
    fn a_retired_listed_device_stays_retired_until_admitted() {
        let (mut conn, config) = setup();
        commission_listed(&mut conn, &config, t(0)).unwrap();
        let eui = Eui64([2, 0, 0, 0, 0, 0, 0, 1]);
        retire(&mut conn, eui, &Actor::Peer("uid:0".into()), t(1)).unwrap();
        assert_eq!(commission_listed(&mut conn, &config, t(2)).unwrap().retired, vec![eui]);
        let back = admit(&mut conn, &config, eui, Some("flat-1"), &Actor::Peer("uid:0".into()), t(3)).unwrap();
        assert_eq!(back.device.lifecycle, Lifecycle::Commissioned);
    }
}
