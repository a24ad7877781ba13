//! What ferry knows about each device, and where each fact came from.
//!
//! A device is known by its EUI-64. It moves through a validated [`Lifecycle`]; every fact about
//! it is a [`Known`] value carrying its [`Source`] and when it was learned, so a plan can say "battery
//! 12 % (device report, 3 h ago)" and stale facts can be told from fresh ones.
//! Persistence is in `crate::store::devices`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use crate::store::sequence::Eui64;

use super::duty_cycle::DutyCycle;

/// Why an EUI-64 did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an EUI-64; write 16 hex digits, optionally in pairs separated by `:` or `-`")]
pub struct Eui64Error(pub String);

/// Parses `00:11:22:33:44:55:66:77`, `00-11-…` or `0011223344556677`.
pub fn parse_eui64(text: &str) -> Result<Eui64, Eui64Error> {
    let hex: String = text.chars().filter(|c| *c != ':' && *c != '-').collect();
    let bad = || Eui64Error(text.to_owned());
    if hex.len() != 16 || !hex.is_ascii() {
        return Err(bad());
    }
    let mut bytes = [0u8; 8];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(Eui64(bytes))
}

/// `#[serde(with = "eui64_text")]`: an EUI-64 as `00:11:…:77`.
pub mod eui64_text {
    use super::*;

    pub fn serialize<S: Serializer>(eui: &Eui64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(eui)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Eui64, D::Error> {
        parse_eui64(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Where a device is in its life with ferry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Lifecycle {
    /// Heard on the air (or in the DODAG); not yet known to belong here.
    Discovered,
    /// Claimed by the admin (listed in a group); identity read back, not yet updated by ferry.
    Commissioned,
    /// Managed: ferry delivers its updates.
    Active,
    /// Retired; kept for the audit trail, never updated again unless rediscovered.
    Decommissioned,
}

impl Lifecycle {
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Discovered => "discovered",
            Lifecycle::Commissioned => "commissioned",
            Lifecycle::Active => "active",
            Lifecycle::Decommissioned => "decommissioned",
        }
    }

    /// Whether `self → to` is a legal step. A retired device that joins again starts over as
    /// discovered, so nobody's old claim carries over silently.
    pub fn may_become(self, to: Lifecycle) -> bool {
        use Lifecycle::*;
        matches!(
            (self, to),
            (Discovered, Commissioned)
                | (Commissioned, Active)
                | (Discovered | Commissioned | Active, Decommissioned)
                | (Decommissioned, Discovered)
        )
    }
}

impl fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Lifecycle {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [Lifecycle::Discovered, Lifecycle::Commissioned, Lifecycle::Active, Lifecycle::Decommissioned]
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a lifecycle state (discovered, commissioned, active, decommissioned)"))
    }
}

/// A refused lifecycle step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("device {device} cannot go from {from} to {to}")]
pub struct LifecycleError {
    pub device: Eui64,
    pub from: Lifecycle,
    pub to: Lifecycle,
}

/// Who told ferry a fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// Frames heard on the air (RSSI, LQI, timestamps).
    Radio,
    /// The RPL DODAG (DAOs): parent, hops, ETX.
    Rpl,
    /// The device's own answer over CoAP (`/riot/board`, `/suit/version`, battery, storage).
    DeviceReport,
    /// A completed delivery session (installed sequence numbers).
    Delivery,
    /// `ferry.toml`.
    Config,
    /// An operator, through the CLI.
    Operator,
    /// Derived by ferry (e.g. the learned duty cycle).
    Learned,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Radio => "radio",
            Source::Rpl => "rpl",
            Source::DeviceReport => "device-report",
            Source::Delivery => "delivery",
            Source::Config => "config",
            Source::Operator => "operator",
            Source::Learned => "learned",
        }
    }
}

impl FromStr for Source {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [
            Source::Radio,
            Source::Rpl,
            Source::DeviceReport,
            Source::Delivery,
            Source::Config,
            Source::Operator,
            Source::Learned,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
        .ok_or_else(|| format!("`{s}` is not a fact source"))
    }
}

/// A fact and its provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Known<T> {
    pub value: T,
    pub source: Source,
    #[serde(with = "crate::schedule::instant::rfc3339")]
    pub learned_at: Timestamp,
}

impl<T> Known<T> {
    pub fn new(value: T, source: Source, learned_at: Timestamp) -> Known<T> {
        Known { value, source, learned_at }
    }
}

/// Link quality to the parent, as the radio and RPL see it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LinkQuality {
    pub rssi_dbm: i16,
    pub lqi: u8,
    /// Expected transmissions per delivered frame (1.0 is perfect).
    pub etx: f64,
}

/// The next hop towards the border router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Parent {
    /// ferry itself (the RPL root).
    BorderRouter,
    Node(Eui64),
}

impl fmt::Display for Parent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Parent::BorderRouter => f.write_str("border-router"),
            Parent::Node(eui) => eui.fmt(f),
        }
    }
}

impl FromStr for Parent {
    type Err = Eui64Error;
    fn from_str(s: &str) -> Result<Self, Eui64Error> {
        match s {
            "border-router" | "root" => Ok(Parent::BorderRouter),
            other => parse_eui64(other).map(Parent::Node),
        }
    }
}

impl Serialize for Parent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Parent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// Where the device sits in the DODAG.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub parent: Parent,
    /// Hops to the border router (1 for its children).
    pub hops: u8,
}

/// Everything ferry knows about one device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    #[serde(with = "eui64_text")]
    pub eui64: Eui64,
    pub lifecycle: Lifecycle,
    #[serde(with = "crate::schedule::instant::rfc3339")]
    pub lifecycle_since: Timestamp,
    pub board: Option<Known<String>>,
    /// Vendor and class IDs, as UUID text (the SUIT identifiers the manifests name).
    pub vendor_id: Option<Known<String>>,
    pub class_id: Option<Known<String>>,
    /// Installed sequence number per component name.
    pub components: BTreeMap<String, Known<u64>>,
    pub battery_percent: Option<Known<u8>>,
    pub free_storage_bytes: Option<Known<u64>>,
    pub link: Option<Known<LinkQuality>>,
    pub position: Option<Known<Position>>,
    pub group: Option<Known<String>>,
    pub duty_cycle: Option<Known<DutyCycle>>,
}

impl Device {
    /// A device first heard at `now`.
    pub fn discovered(eui64: Eui64, now: Timestamp) -> Device {
        Device {
            eui64,
            lifecycle: Lifecycle::Discovered,
            lifecycle_since: now,
            board: None,
            vendor_id: None,
            class_id: None,
            components: BTreeMap::new(),
            battery_percent: None,
            free_storage_bytes: None,
            link: None,
            position: None,
            group: None,
            duty_cycle: None,
        }
    }

    /// Moves to `to` if the lifecycle allows it.
    pub fn transition(&mut self, to: Lifecycle, now: Timestamp) -> Result<(), LifecycleError> {
        if !self.lifecycle.may_become(to) {
            return Err(LifecycleError { device: self.eui64, from: self.lifecycle, to });
        }
        self.lifecycle = to;
        self.lifecycle_since = now;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eui64_forms() {
        let want = Eui64([0, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77]);
        for text in ["00:11:22:33:44:55:66:77", "00-11-22-33-44-55-66-77", "0011223344556677"] {
            assert_eq!(parse_eui64(text), Ok(want));
        }
        for bad in ["", "00:11", "zz11223344556677", "00112233445566778", "ü011223344556677"] {
            assert!(parse_eui64(bad).is_err(), "{bad}");
        }
        assert_eq!("border-router".parse::<Parent>(), Ok(Parent::BorderRouter));
    }

    #[test]
    fn lifecycle_steps_are_validated() {
        let t = Timestamp::UNIX_EPOCH;
        let mut d = Device::discovered(Eui64([1; 8]), t);
        assert!(d.transition(Lifecycle::Active, t).is_err(), "must be commissioned first");
        d.transition(Lifecycle::Commissioned, t).unwrap();
        d.transition(Lifecycle::Active, t).unwrap();
        let e = d.transition(Lifecycle::Commissioned, t).unwrap_err();
        assert_eq!(e.to_string(), "device 01:01:01:01:01:01:01:01 cannot go from active to commissioned");
        d.transition(Lifecycle::Decommissioned, t).unwrap();
        assert!(d.transition(Lifecycle::Active, t).is_err());
        d.transition(Lifecycle::Discovered, t).unwrap();
    }
}
