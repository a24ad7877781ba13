//! Spinel: the host ↔ co-processor protocol of OpenThread.
//!
//! Spec: `shared/reference/spinel.md` §2 (frame, header, data packing), §3 (numeric constants)
//! and §4 (raw radio datapath), after OpenThread `src/lib/spinel/spinel.h`.
//!
//! ```text
//! +--------+----------------------+---------------------------------+
//! | header | command (packed uint)| payload                         |
//! | 1 byte | 1..3 bytes           | property cmds: prop (packed) |  |
//! |        |                      |                value            |
//! +--------+----------------------+---------------------------------+
//! ```
//!
//! * [`header`], [`packed`]: the header byte and the packed unsigned integer (`i`).
//! * [`Command`], [`Property`], [`Status`], [`Capability`]: code points, each with `Unknown(n)`.
//! * [`frame::Repr`]: a whole frame, parsed once and emitted from the `Repr`.
//! * [`data::Reader`] / [`data::Writer`]: the typed value codec (`b C c S s L l X x i 6 E e U D d t()`).
//! * [`stream_raw`]: the STREAM_RAW TX request, RX frame and TX-done layouts.

use core::fmt;

pub mod caps;
pub mod command;
pub mod data;
pub mod frame;
pub mod header;
pub mod packed;
pub mod property;
pub mod status;
pub mod stream_raw;

pub use caps::{Capability, RadioCaps};
pub use command::{Command, ResetType};
pub use frame::Repr;
pub use header::Header;
pub use property::Property;
pub use status::Status;

/// `SPINEL_PROTOCOL_VERSION_THREAD_MAJOR`: the host refuses any other major version.
pub const PROTOCOL_VERSION_MAJOR: u32 = 4;
/// `SPINEL_PROTOCOL_VERSION_THREAD_MINOR`.
pub const PROTOCOL_VERSION_MINOR: u32 = 3;
/// `SPINEL_RCP_API_VERSION` this crate implements.
pub const RCP_API_VERSION: u32 = 11;
/// `SPINEL_MIN_HOST_SUPPORTED_RCP_API_VERSION`.
pub const MIN_HOST_RCP_API_VERSION: u32 = 4;
/// Largest Spinel frame (`SPINEL_FRAME_MAX_SIZE`).
pub const FRAME_MAX_LEN: usize = crate::hdlc::MAX_FRAME_LEN;

/// Why a Spinel frame or value could not be parsed or emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The input ended before the field being read.
    Truncated,
    /// The header byte lacks the `0b10` flag bits, so this is not Spinel.
    NotSpinel(u8),
    /// A packed uint had a continuation bit on its third byte (values above 2,097,151).
    PackedTooLong,
    /// A packed uint used more bytes than needed (e.g. `80 00`); refused so that every accepted
    /// frame re-emits byte-exactly.
    PackedNonCanonical,
    /// A value above 2,097,151 cannot be packed.
    PackedOutOfRange(u32),
    /// A `b` field held a byte other than 0 or 1.
    InvalidBool(u8),
    /// A `U` field had no NUL terminator or was not UTF-8.
    InvalidString,
    /// A `d` or `t()` length was larger than 65,535 bytes on emit.
    LengthOverflow,
    /// Bytes were left over after the last field where none are allowed.
    TrailingBytes,
    /// A field held a value outside its allowed range (the name says which).
    InvalidValue(&'static str),
    /// The output buffer is too short.
    BufferTooSmall,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => f.write_str("Spinel: input ended inside a field"),
            Error::NotSpinel(b) => write!(f, "Spinel: header byte {b:#04x} lacks the 0b10 flag"),
            Error::PackedTooLong => f.write_str("Spinel: packed uint longer than 3 bytes"),
            Error::PackedNonCanonical => f.write_str("Spinel: packed uint not in shortest form"),
            Error::PackedOutOfRange(v) => {
                write!(f, "Spinel: {v} does not fit a packed uint (max 2097151)")
            }
            Error::InvalidBool(b) => write!(f, "Spinel: bool field holds {b:#04x}, not 0 or 1"),
            Error::InvalidString => f.write_str("Spinel: string not NUL-terminated UTF-8"),
            Error::LengthOverflow => f.write_str("Spinel: data longer than a u16 length prefix"),
            Error::TrailingBytes => f.write_str("Spinel: unexpected bytes after the last field"),
            Error::InvalidValue(what) => write!(f, "Spinel: invalid value for {what}"),
            Error::BufferTooSmall => f.write_str("Spinel: output buffer too small"),
        }
    }
}

/// Result of a Spinel parse or emit.
pub type Result<T> = core::result::Result<T, Error>;
