//! Spinel status codes (`PROP_LAST_STATUS` values), `shared/reference/spinel.md` §3
//! (spinel.h `SPINEL_STATUS_*`).

use super::data::{Reader, Writer};
use super::Result;

enum_with_unknown! {
    /// A `LAST_STATUS` value (packed uint).
    pub enum Status(u32) {
        Ok = 0,
        Failure = 1,
        Unimplemented = 2,
        InvalidArgument = 3,
        InvalidState = 4,
        InvalidCommand = 5,
        InvalidInterface = 6,
        InternalError = 7,
        SecurityError = 8,
        ParseError = 9,
        InProgress = 10,
        Nomem = 11,
        Busy = 12,
        PropNotFound = 13,
        Dropped = 14,
        Empty = 15,
        CmdTooBig = 16,
        /// TX done: no ACK received after all retries.
        NoAck = 17,
        /// TX done: the channel stayed busy through all CSMA backoffs.
        CcaFailure = 18,
        Already = 19,
        ItemNotFound = 20,
        InvalidCommandForProp = 21,
        NotCapable = 23,
        ResponseTimeout = 24,
        ResetPowerOn = 112,
        ResetExternal = 113,
        ResetSoftware = 114,
        ResetFault = 115,
        ResetCrash = 116,
        ResetAssert = 117,
        ResetOther = 118,
        ResetUnknown = 119,
        ResetWatchdog = 120,
    }
}

/// `SPINEL_STATUS_RESET__BEGIN`.
pub const RESET_BEGIN: u32 = 112;
/// `SPINEL_STATUS_RESET__END` (the host accepts up to and including it).
pub const RESET_END: u32 = 128;
/// `SPINEL_STATUS_STACK_NATIVE__BEGIN`: `16384 + otError` for errors without a Spinel name.
pub const STACK_NATIVE_BEGIN: u32 = 16384;

impl Status {
    /// True for the reset reasons the host waits for after `CMD_RESET` (`[112, 128]`).
    pub fn is_reset(self) -> bool {
        (RESET_BEGIN..=RESET_END).contains(&u32::from(self))
    }

    /// Reads a LAST_STATUS value's status (`i`). A TX-done carries more fields after it; see
    /// `stream_raw::TxDone`.
    pub fn read(r: &mut Reader<'_>) -> Result<Status> {
        r.packed().map(Status::from)
    }

    /// Writes the status as a LAST_STATUS value (`i`).
    pub fn write(self, w: &mut Writer<'_>) -> Result<()> {
        w.packed(self.into())
    }

    /// A raw OpenThread error passed through as `STACK_NATIVE__BEGIN + err`.
    pub fn stack_native(ot_error: u16) -> Status {
        Status::from(STACK_NATIVE_BEGIN + u32::from(ot_error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_reset_range() {
        for n in 0..200u32 {
            let s = Status::from(n);
            assert_eq!(u32::from(s), n);
            assert_eq!(s.is_reset(), (112..=128).contains(&n));
        }
        assert_eq!(Status::from(22), Status::Unknown(22)); // 22 is unassigned
        assert_eq!(u32::from(Status::stack_native(11)), 16395); // OT_ERROR_ABORT
    }

    #[test]
    fn value_codec() {
        // LAST_STATUS RESET_POWER_ON (112) is one byte; a stack-native status takes three.
        let mut buf = [0u8; 3];
        let mut w = Writer::new(&mut buf);
        Status::ResetPowerOn.write(&mut w).unwrap();
        assert_eq!(w.written(), [0x70]);
        let mut w = Writer::new(&mut buf);
        Status::stack_native(11).write(&mut w).unwrap();
        assert_eq!(w.written(), [0x8b, 0x80, 0x01]);
        assert_eq!(Status::read(&mut Reader::new(&buf)), Ok(Status::Unknown(16395)));
        assert!(Status::read(&mut Reader::new(&[0x80])).is_err());
    }
}
