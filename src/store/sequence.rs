//! Anti-rollback (REQ.SEC.SEQUENCE): typed queries over `sequence_accepted` (the highest
//! `manifest-sequence-number` accepted per vendor, class and component) and
//! `device_components` (what each device reports installed).
//!
//! The order a caller follows for a new envelope:
//! `Policy::evaluate` → [`admit`] (refuses a sequence number not above the highest accepted,
//! THREAT.IMG.EXPIRED, and records it in the same transaction). Before delivering to a device:
//! [`check_delivery`] (refuses anything but the newest accepted update, and anything not above
//! the device's installed one, THREAT.IMG.EXPIRED.OFFLINE). After a confirmed install:
//! [`set_installed`].
//!
//! Strictly greater, like RIOT (`seq_nr <= stored` is refused): a replay of the same manifest is
//! not a new update. SQLite integers are signed, so sequence numbers above `i64::MAX` are
//! refused rather than wrapped.

use minicbor::Encoder;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::suit::policy::{Accepted, Rejection, Threat};
use crate::suit::{ComponentId, Identifier};

/// What a sequence number is tracked for: one component of one vendor's device class.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ComponentKey {
    pub vendor_id: Identifier,
    pub class_id: Identifier,
    pub component: ComponentId,
}

/// An IEEE EUI-64, the device identity the fleet uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Eui64(pub [u8; 8]);

/// Why a sequence-number operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SequenceError {
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error("sequence number {0} is above {max}, which the store cannot hold; the manifest author must use a smaller one", max = i64::MAX)]
    OutOfRange(u64),
    #[error("database error while checking sequence numbers: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

fn component_bytes(id: &ComponentId) -> Vec<u8> {
    let mut e = Encoder::new(Vec::new());
    // Writing into a Vec cannot fail.
    let _ = e.array(id.0.len() as u64);
    for seg in &id.0 {
        let _ = e.bytes(seg);
    }
    e.into_writer()
}

fn to_sql(seq: u64) -> Result<i64, SequenceError> {
    i64::try_from(seq).map_err(|_| SequenceError::OutOfRange(seq))
}

fn from_sql(v: i64) -> u64 {
    // The CHECK constraint keeps stored values non-negative.
    u64::try_from(v).unwrap_or_default()
}

/// The highest sequence number accepted for `key`, if any.
pub fn highest_accepted(conn: &Connection, key: &ComponentKey) -> rusqlite::Result<Option<u64>> {
    conn.query_row(
        "SELECT sequence FROM sequence_accepted WHERE vendor_id = ?1 AND class_id = ?2 AND component_id = ?3",
        params![key.vendor_id.as_bytes(), key.class_id.as_bytes(), component_bytes(&key.component)],
        |row| row.get::<_, i64>(0),
    )
    .optional()
    .map(|v| v.map(from_sql))
}

/// Refuses `seq` unless it is above the highest accepted for `key` (THREAT.IMG.EXPIRED).
pub fn check_newer(conn: &Connection, key: &ComponentKey, seq: u64) -> Result<(), SequenceError> {
    match highest_accepted(conn, key)? {
        Some(highest) if seq <= highest => Err(Rejection::new(
            Threat::ImgExpired,
            format!(
                "sequence number {seq} of component {:?} (vendor {}, class {}) is not above {highest}, the highest \
                 already accepted; the author must publish with a higher --seq",
                key.component, key.vendor_id, key.class_id
            ),
        )
        .into()),
        _ => Ok(()),
    }
}

/// Records `seq` as the highest accepted for `key` (never lowers it).
pub fn record_accepted(conn: &Connection, key: &ComponentKey, seq: u64, now_ms: i64) -> Result<(), SequenceError> {
    conn.execute(
        "INSERT INTO sequence_accepted (vendor_id, class_id, component_id, sequence, at_unix_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (vendor_id, class_id, component_id) DO UPDATE
         SET sequence = excluded.sequence, at_unix_ms = excluded.at_unix_ms
         WHERE excluded.sequence > sequence_accepted.sequence",
        params![
            key.vendor_id.as_bytes(),
            key.class_id.as_bytes(),
            component_bytes(&key.component),
            to_sql(seq)?,
            now_ms
        ],
    )?;
    Ok(())
}

/// The keys of every component an accepted manifest touches.
pub fn keys_of(accepted: &Accepted) -> Vec<ComponentKey> {
    accepted
        .components()
        .iter()
        .map(|c| ComponentKey { vendor_id: c.vendor_id.clone(), class_id: c.class_id.clone(), component: c.id.clone() })
        .collect()
}

/// Checks every component of `accepted` against the highest accepted sequence number and, if
/// all are newer, records them, in one transaction so two racing envelopes cannot both win.
pub fn admit(conn: &mut Connection, accepted: &Accepted, now_ms: i64) -> Result<(), SequenceError> {
    let seq = accepted.sequence_number();
    to_sql(seq)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let keys = keys_of(accepted);
    for key in &keys {
        check_newer(&tx, key, seq)?;
    }
    for key in &keys {
        record_accepted(&tx, key, seq, now_ms)?;
    }
    tx.commit()?;
    Ok(())
}

/// The sequence number `device` reports installed for `component`, if known.
pub fn installed(conn: &Connection, device: Eui64, component: &ComponentId) -> rusqlite::Result<Option<u64>> {
    conn.query_row(
        "SELECT sequence FROM device_components WHERE device_eui64 = ?1 AND component_id = ?2",
        params![&device.0[..], component_bytes(component)],
        |row| row.get::<_, i64>(0),
    )
    .optional()
    .map(|v| v.map(from_sql))
}

/// Records what `device` reports installed (after a confirmed install or a read-back).
pub fn set_installed(
    conn: &Connection,
    device: Eui64,
    component: &ComponentId,
    seq: u64,
    now_ms: i64,
) -> Result<(), SequenceError> {
    conn.execute(
        "INSERT INTO device_components (device_eui64, component_id, sequence, at_unix_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (device_eui64, component_id) DO UPDATE SET sequence = excluded.sequence, at_unix_ms = excluded.at_unix_ms",
        params![&device.0[..], component_bytes(component), to_sql(seq)?, now_ms],
    )?;
    Ok(())
}

/// Before a delivery: `seq` must be the newest accepted for `key` (a device that was offline
/// for long must get the latest update, not an older one that merely beats what it runs,
/// THREAT.IMG.EXPIRED.OFFLINE) and above what `device` has installed (THREAT.IMG.EXPIRED).
pub fn check_delivery(conn: &Connection, device: Eui64, key: &ComponentKey, seq: u64) -> Result<(), SequenceError> {
    match highest_accepted(conn, key)? {
        Some(highest) if seq < highest => {
            return Err(Rejection::new(
                Threat::ImgExpiredOffline,
                format!(
                    "sequence number {seq} of component {:?} is older than {highest}, the newest accepted; deliver that one",
                    key.component
                ),
            )
            .into())
        }
        None => {
            return Err(Rejection::new(
                Threat::ImgNonAuth,
                format!("no update of component {:?} has been accepted; evaluate and admit it first", key.component),
            )
            .into())
        }
        _ => {}
    }
    if let Some(current) = installed(conn, device, &key.component)? {
        if seq <= current {
            return Err(Rejection::new(
                Threat::ImgExpired,
                format!(
                    "device {} already runs sequence number {current} of component {:?}; {seq} is not newer",
                    device, key.component
                ),
            )
            .into());
        }
    }
    Ok(())
}

impl core::fmt::Display for Eui64 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Connection {
        let mut c = Connection::open_in_memory().expect("in-memory db");
        crate::store::migrate(&mut c).expect("migrates");
        c
    }

    fn key(component: u8) -> ComponentKey {
        ComponentKey {
            vendor_id: Identifier::Uuid([1; 16]),
            class_id: Identifier::Uuid([2; 16]),
            component: ComponentId(vec![vec![component]]),
        }
    }

    #[test]
    fn highest_only_rises_and_equal_is_refused() {
        let c = conn();
        assert_eq!(highest_accepted(&c, &key(0)).unwrap(), None);
        check_newer(&c, &key(0), 5).unwrap();
        record_accepted(&c, &key(0), 5, 1).unwrap();
        record_accepted(&c, &key(0), 3, 2).unwrap();
        assert_eq!(highest_accepted(&c, &key(0)).unwrap(), Some(5));
        assert_eq!(highest_accepted(&c, &key(1)).unwrap(), None);
        for seq in [4, 5] {
            let e = check_newer(&c, &key(0), seq).unwrap_err();
            assert!(matches!(&e, SequenceError::Rejected(r) if r.threat == Threat::ImgExpired), "{e}");
        }
        check_newer(&c, &key(0), 6).unwrap();
        assert!(matches!(record_accepted(&c, &key(0), u64::MAX, 3), Err(SequenceError::OutOfRange(_))));
    }

    #[test]
    fn delivery_needs_newest_and_newer_than_installed() {
        let c = conn();
        let dev = Eui64([0, 1, 2, 3, 4, 5, 6, 7]);
        record_accepted(&c, &key(0), 10, 1).unwrap();
        set_installed(&c, dev, &key(0).component, 10, 1).unwrap();
        assert_eq!(installed(&c, dev, &key(0).component).unwrap(), Some(10));
        let e = check_delivery(&c, dev, &key(0), 10).unwrap_err();
        assert!(e.to_string().contains("00:01:02:03:04:05:06:07"), "{e}");
        record_accepted(&c, &key(0), 12, 2).unwrap();
        check_delivery(&c, dev, &key(0), 12).unwrap();
        let e = check_delivery(&c, dev, &key(0), 11).unwrap_err();
        assert!(matches!(&e, SequenceError::Rejected(r) if r.threat == Threat::ImgExpiredOffline), "{e}");
    }
}
