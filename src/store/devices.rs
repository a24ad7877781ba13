//! The fleet on disk: typed queries over `fleet_devices` and `fleet_facts` (migration 3).
//!
//! A [`Device`] is saved whole, in one transaction: its lifecycle row, then one fact row per
//! known fact (`board`, `vendor_id`, `class_id`, `battery_percent`, `free_storage_bytes`, `link`,
//! `position`, `group`, `duty_cycle`, and `component/<name>` per installed component), each with
//! its JSON value, source and time. Facts the device no longer has are deleted, so a load gives
//! back exactly what was saved.

use jiff::Timestamp;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::fleet::device::{Device, Eui64, Known, Lifecycle, Source};

const COMPONENT_PREFIX: &str = "component/";

/// Why a device could not be saved or loaded.
#[derive(Debug, thiserror::Error)]
pub enum DeviceStoreError {
    #[error("database error on the fleet tables: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("device {device}: stored fact `{fact}` is unreadable ({message}); re-learn it or delete the row")]
    BadFact { device: Eui64, fact: String, message: String },
    #[error("device {device}: time {unix_ms} ms is out of range")]
    BadTime { device: Eui64, unix_ms: i64 },
    #[error("cannot encode fact `{fact}`: {message}")]
    Encode { fact: String, message: String },
}

fn to_ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

fn from_ms(device: Eui64, unix_ms: i64) -> Result<Timestamp, DeviceStoreError> {
    Timestamp::from_millisecond(unix_ms).map_err(|_| DeviceStoreError::BadTime { device, unix_ms })
}

struct FactRow {
    fact: String,
    value: String,
    source: Source,
    learned_at: Timestamp,
}

fn encode<T: Serialize>(fact: &str, known: &Known<T>) -> Result<FactRow, DeviceStoreError> {
    let value = serde_json::to_string(&known.value)
        .map_err(|e| DeviceStoreError::Encode { fact: fact.to_owned(), message: e.to_string() })?;
    Ok(FactRow { fact: fact.to_owned(), value, source: known.source, learned_at: known.learned_at })
}

fn facts_of(device: &Device) -> Result<Vec<FactRow>, DeviceStoreError> {
    let mut rows = Vec::new();
    macro_rules! fact {
        ($name:literal, $field:expr) => {
            if let Some(known) = &$field {
                rows.push(encode($name, known)?);
            }
        };
    }
    fact!("board", device.board);
    fact!("vendor_id", device.vendor_id);
    fact!("class_id", device.class_id);
    fact!("battery_percent", device.battery_percent);
    fact!("free_storage_bytes", device.free_storage_bytes);
    fact!("link", device.link);
    fact!("position", device.position);
    fact!("group", device.group);
    fact!("duty_cycle", device.duty_cycle);
    for (name, known) in &device.components {
        rows.push(encode(&format!("{COMPONENT_PREFIX}{name}"), known)?);
    }
    Ok(rows)
}

/// Inserts or replaces `device` and all its facts.
pub fn save(conn: &mut Connection, device: &Device) -> Result<(), DeviceStoreError> {
    let rows = facts_of(device)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let eui = &device.eui64.0[..];
    tx.execute(
        "INSERT INTO fleet_devices (eui64, lifecycle, lifecycle_unix_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT (eui64) DO UPDATE SET lifecycle = excluded.lifecycle, lifecycle_unix_ms = excluded.lifecycle_unix_ms",
        params![eui, device.lifecycle.as_str(), to_ms(device.lifecycle_since)],
    )?;
    tx.execute("DELETE FROM fleet_facts WHERE eui64 = ?1", params![eui])?;
    for row in rows {
        tx.execute(
            "INSERT INTO fleet_facts (eui64, fact, value, source, learned_unix_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![eui, row.fact, row.value, row.source.as_str(), to_ms(row.learned_at)],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// One device, if known.
pub fn load(conn: &Connection, eui64: Eui64) -> Result<Option<Device>, DeviceStoreError> {
    let head = conn
        .query_row(
            "SELECT lifecycle, lifecycle_unix_ms FROM fleet_devices WHERE eui64 = ?1",
            params![&eui64.0[..]],
            |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)),
        )
        .optional()?;
    let Some((lifecycle, since)) = head else { return Ok(None) };
    let lifecycle: Lifecycle = lifecycle.parse().map_err(|message| DeviceStoreError::BadFact {
        device: eui64,
        fact: "lifecycle".into(),
        message,
    })?;
    let mut device = Device::discovered(eui64, from_ms(eui64, since)?);
    device.lifecycle = lifecycle;
    let mut stmt =
        conn.prepare("SELECT fact, value, source, learned_unix_ms FROM fleet_facts WHERE eui64 = ?1 ORDER BY fact")?;
    let rows = stmt.query_map(params![&eui64.0[..]], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, String>(2)?, row.get::<_, i64>(3)?))
    })?;
    for row in rows {
        let (fact, value, source, learned) = row?;
        let bad = |message: String| DeviceStoreError::BadFact { device: eui64, fact: fact.clone(), message };
        let source: Source = source.parse().map_err(bad)?;
        let learned_at = from_ms(eui64, learned)?;
        fn decode<T: DeserializeOwned>(value: &str) -> Result<T, String> {
            serde_json::from_str(value).map_err(|e| e.to_string())
        }
        macro_rules! set {
            ($field:expr) => {
                $field = Some(Known::new(decode(&value).map_err(bad)?, source, learned_at))
            };
        }
        match fact.as_str() {
            "board" => set!(device.board),
            "vendor_id" => set!(device.vendor_id),
            "class_id" => set!(device.class_id),
            "battery_percent" => set!(device.battery_percent),
            "free_storage_bytes" => set!(device.free_storage_bytes),
            "link" => set!(device.link),
            "position" => set!(device.position),
            "group" => set!(device.group),
            "duty_cycle" => set!(device.duty_cycle),
            other => match other.strip_prefix(COMPONENT_PREFIX) {
                Some(name) => {
                    let seq: u64 = decode(&value).map_err(bad)?;
                    device.components.insert(name.to_owned(), Known::new(seq, source, learned_at));
                }
                // A fact from a newer ferry: keep going, it is not ours to judge.
                None => tracing::debug!(device = %eui64, fact = other, "ignoring unknown fleet fact"),
            },
        }
    }
    Ok(Some(device))
}

/// Every device, ordered by EUI-64.
pub fn load_all(conn: &Connection) -> Result<Vec<Device>, DeviceStoreError> {
    let euis: Vec<Vec<u8>> = conn
        .prepare("SELECT eui64 FROM fleet_devices ORDER BY eui64")?
        .query_map([], |row| row.get::<_, Vec<u8>>(0))?
        .collect::<Result<_, _>>()?;
    let mut devices = Vec::with_capacity(euis.len());
    for bytes in euis {
        // The CHECK constraint keeps these 8 bytes long.
        let Ok(eui) = <[u8; 8]>::try_from(bytes.as_slice()) else { continue };
        devices.extend(load(conn, Eui64(eui))?);
    }
    Ok(devices)
}

/// Moves a stored device's lifecycle, validating the step; returns the updated device.
pub fn transition(
    conn: &mut Connection,
    eui64: Eui64,
    to: Lifecycle,
    now: Timestamp,
) -> Result<Option<Result<Device, crate::fleet::device::LifecycleError>>, DeviceStoreError> {
    let Some(mut device) = load(conn, eui64)? else { return Ok(None) };
    if let Err(e) = device.transition(to, now) {
        return Ok(Some(Err(e)));
    }
    conn.execute(
        "UPDATE fleet_devices SET lifecycle = ?2, lifecycle_unix_ms = ?3 WHERE eui64 = ?1",
        params![&eui64.0[..], to.as_str(), to_ms(now)],
    )?;
    Ok(Some(Ok(device)))
}

/// Forgets what ferry learned about a retired device: every fact (keys, owner and group links)
/// and its installed components. The lifecycle row stays, and the audit log keeps the record.
/// The delivery room's pending sessions (migration 5) are to be dropped here too once they are
/// stored.
pub fn forget(conn: &mut Connection, eui64: Eui64) -> Result<usize, DeviceStoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let eui = &eui64.0[..];
    let mut forgotten = tx.execute("DELETE FROM fleet_facts WHERE eui64 = ?1", params![eui])?;
    forgotten += tx.execute("DELETE FROM device_components WHERE device_eui64 = ?1", params![eui])?;
    tx.commit()?;
    Ok(forgotten)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::device::{LinkQuality, Parent, Position};
    use crate::fleet::duty_cycle::DutyCycle;

    fn sample(now: Timestamp) -> Device {
        let mut d = Device::discovered(Eui64([0xaa, 1, 2, 3, 4, 5, 6, 7]), now);
        d.transition(Lifecycle::Commissioned, now).unwrap();
        d.board = Some(Known::new("nrf52840dk".into(), Source::DeviceReport, now));
        d.vendor_id = Some(Known::new("74738ff5-5367-5958-9aee-98fffdcd1876".into(), Source::Config, now));
        d.battery_percent = Some(Known::new(64, Source::DeviceReport, now));
        d.free_storage_bytes = Some(Known::new(300_000, Source::DeviceReport, now));
        d.link = Some(Known::new(LinkQuality { rssi_dbm: -71, lqi: 220, etx: 1.25 }, Source::Rpl, now));
        let parent = Parent::Node(Eui64([0xbb; 8]));
        d.position = Some(Known::new(Position { parent, hops: 2 }, Source::Rpl, now));
        d.group = Some(Known::new("flat-3".into(), Source::Config, now));
        let dc = DutyCycle {
            period_us: 30_000_123.5,
            anchor_us: 1e6,
            awake_us: 4000,
            confidence: 0.9,
            residual_rms_us: 300.0,
            wakes_used: 12,
        };
        d.duty_cycle = Some(Known::new(dc, Source::Learned, now));
        d.components.insert("riot-app".into(), Known::new(7, Source::Delivery, now));
        d
    }

    #[test]
    fn save_load_round_trip_and_lifecycle() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::store::migrate(&mut conn).unwrap();
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let mut d = sample(now);
        save(&mut conn, &d).unwrap();
        assert_eq!(load(&conn, d.eui64).unwrap().as_ref(), Some(&d));
        d.battery_percent = None;
        save(&mut conn, &d).unwrap();
        assert_eq!(load_all(&conn).unwrap(), vec![d.clone()]);
        let later = now.checked_add(jiff::SignedDuration::from_secs(60)).unwrap();
        let moved = transition(&mut conn, d.eui64, Lifecycle::Active, later).unwrap().unwrap().unwrap();
        assert_eq!(load(&conn, d.eui64).unwrap().unwrap(), moved);
        let refused = transition(&mut conn, d.eui64, Lifecycle::Discovered, later).unwrap().unwrap();
        assert!(refused.is_err());
        assert!(load(&conn, Eui64([0; 8])).unwrap().is_none());
    }
}
