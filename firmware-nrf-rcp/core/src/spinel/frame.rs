//! A whole Spinel frame, `shared/reference/spinel.md` §2.
//!
//! ```text
//! +--------+------------------+----------------------+-------------+
//! | header | command (i, 1-3) | property (i, 1-3)    | value       |
//! +--------+------------------+----------------------+-------------+
//!                               ^ only for GET, SET, INSERT, REMOVE, IS, INSERTED, REMOVED;
//!                                 other commands carry a raw payload instead
//! ```
//!
//! There is no zero-copy `Packet` view as in smoltcp: every field after the header is a
//! variable-length packed uint, so there are no fixed offsets to expose. The [`Repr`] borrows
//! the value bytes instead, so parsing still copies nothing.

use super::data::Writer;
use super::{packed, Command, Error, Header, Property, Result};

/// What follows the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload<'a> {
    /// Property commands: the property id and its (possibly empty) value bytes.
    Property { property: Property, value: &'a [u8] },
    /// Every other command (RESET, NOOP, MULTI_*, PEEK/POKE, unknown): the bytes as they are.
    Raw(&'a [u8]),
}

/// A parsed Spinel frame. `parse` then `emit` reproduces the input byte for byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr<'a> {
    pub header: Header,
    pub command: Command,
    pub payload: Payload<'a>,
}

impl<'a> Repr<'a> {
    /// A property frame (`command` must be one of the property commands for `emit` to succeed).
    pub const fn property(header: Header, command: Command, property: Property, value: &'a [u8]) -> Self {
        Repr { header, command, payload: Payload::Property { property, value } }
    }

    /// Parses a frame (the HDLC payload). Fails on a bad header, a malformed packed uint, or a
    /// property command without its property id.
    pub fn parse(buf: &'a [u8]) -> Result<Self> {
        let (&first, rest) = buf.split_first().ok_or(Error::Truncated)?;
        let header = Header::parse(first)?;
        let (cmd, n) = packed::decode(rest)?;
        let command = Command::from(cmd);
        let rest = &rest[n..];
        let payload = if command.has_property() {
            let (prop, m) = packed::decode(rest)?;
            Payload::Property { property: Property::from(prop), value: &rest[m..] }
        } else {
            Payload::Raw(rest)
        };
        Ok(Repr { header, command, payload })
    }

    /// The property, for property commands.
    pub fn prop(&self) -> Option<Property> {
        match self.payload {
            Payload::Property { property, .. } => Some(property),
            Payload::Raw(_) => None,
        }
    }

    /// The value bytes (property commands) or the raw payload (others).
    pub fn value(&self) -> &'a [u8] {
        match self.payload {
            Payload::Property { value, .. } | Payload::Raw(value) => value,
        }
    }

    /// Bytes `emit` writes.
    pub fn buffer_len(&self) -> usize {
        let cmd = packed::encoded_len(self.command.into());
        1 + cmd
            + match self.payload {
                Payload::Property { property, value } => packed::encoded_len(property.into()) + value.len(),
                Payload::Raw(raw) => raw.len(),
            }
    }

    /// Writes the frame into `out`; returns the length (= [`buffer_len`](Self::buffer_len)).
    ///
    /// Refuses a payload kind that does not match the command, since it would parse back
    /// differently.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize> {
        let mut w = Writer::new(out);
        w.u8(self.header.to_byte())?;
        w.packed(self.command.into())?;
        match (self.payload, self.command.has_property()) {
            (Payload::Property { property, value }, true) => {
                w.packed(property.into())?;
                w.bytes(value)?;
            }
            (Payload::Raw(raw), false) => w.bytes(raw)?,
            _ => return Err(Error::InvalidValue("payload kind for this command")),
        }
        Ok(w.len())
    }
}

/// Writes a property frame whose value is produced by `value`, without an intermediate buffer.
/// Returns the frame length.
pub fn emit_property(
    out: &mut [u8],
    header: Header,
    command: Command,
    property: Property,
    value: impl FnOnce(&mut Writer<'_>) -> Result<()>,
) -> Result<usize> {
    if !command.has_property() {
        return Err(Error::InvalidValue("property command"));
    }
    let mut w = Writer::new(out);
    w.u8(header.to_byte())?;
    w.packed(command.into())?;
    w.packed(property.into())?;
    value(&mut w)?;
    Ok(w.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotated_vectors() {
        // host->RCP GET RCP_API_VERSION, TID 3 (spinel-frames.txt)
        let get = [
            0x83, // FLG=10 IID=0 TID=3
            0x02, // CMD_PROP_VALUE_GET
            0xb0, 0x01, // PROP_RCP_API_VERSION = 0xB0, packed
        ];
        let r = Repr::parse(&get).unwrap();
        assert_eq!(r.header, Header::new(0, 3).unwrap());
        assert_eq!(r.command, Command::PropValueGet);
        assert_eq!(r.prop(), Some(Property::RcpApiVersion));
        assert_eq!(r.value(), &[] as &[u8]);

        // host->RCP CMD_RESET(STACK), TID 0
        let reset = [
            0x80, // FLG=10 IID=0 TID=0
            0x01, // CMD_RESET
            0x02, // SPINEL_RESET_STACK
        ];
        let r = Repr::parse(&reset).unwrap();
        assert_eq!(r.payload, Payload::Raw(&[0x02]));

        let mut out = [0u8; 8];
        let n = r.emit(&mut out).unwrap();
        assert_eq!(&out[..n], reset);
    }

    #[test]
    fn malformed() {
        assert_eq!(Repr::parse(&[]), Err(Error::Truncated));
        assert_eq!(Repr::parse(&[0x40, 0x02]), Err(Error::NotSpinel(0x40)));
        assert_eq!(Repr::parse(&[0x81]), Err(Error::Truncated));
        assert_eq!(Repr::parse(&[0x81, 0x02]), Err(Error::Truncated)); // GET without a property
        assert_eq!(Repr::parse(&[0x81, 0x80, 0x00]), Err(Error::PackedNonCanonical));
        let bad = Repr {
            header: Header::UNSOLICITED,
            command: Command::Reset,
            payload: Payload::Property { property: Property::LastStatus, value: &[] },
        };
        assert!(bad.emit(&mut [0u8; 8]).is_err());
    }

    #[test]
    fn random_frames_round_trip() {
        let mut s = 0x2545_f491u32;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s
        };
        let mut out = [0u8; 64];
        for _ in 0..20_000 {
            let len = (next() % 12) as usize;
            let mut bytes: std::vec::Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if let Some(b) = bytes.first_mut() {
                *b = 0x80 | (*b & 0x3f); // mostly valid headers
            }
            if let Ok(r) = Repr::parse(&bytes) {
                let n = r.emit(&mut out).unwrap();
                assert_eq!(n, r.buffer_len());
                assert_eq!(&out[..n], &bytes[..]);
            }
        }
    }
}
