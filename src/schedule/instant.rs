//! Instants in files and JSON: RFC 3339 text with an offset (`2026-11-27T02:00:00Z`), for
//! `#[serde(with = ...)]` on [`jiff::Timestamp`] fields.

use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serializer};

fn parse<E: serde::de::Error>(text: &str) -> Result<Timestamp, E> {
    text.parse().map_err(|e| {
        E::custom(format!("`{text}` is not a date-time with offset (like 2026-11-27T02:00:00Z or ...+01:00): {e}"))
    })
}

/// A required instant.
pub mod rfc3339 {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(t)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        parse(&String::deserialize(d)?)
    }
}

/// An optional instant; `null` or absent is `None`.
pub mod rfc3339_opt {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.collect_str(t),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        Option::<String>::deserialize(d)?.map(|text| parse(&text)).transpose()
    }
}
