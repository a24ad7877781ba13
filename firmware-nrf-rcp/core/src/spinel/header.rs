//! Spinel header byte, `shared/reference/spinel.md` §2 (spinel.h `SPINEL_HEADER_*`).
//!
//! ```text
//!   7   6   5   4   3   2   1   0
//! +---+---+---+---+---+---+---+---+
//! | FLG=10| IID   |      TID      |
//! +---+---+---+---+---+---+---+---+
//! ```
//!
//! TID 0 means "no response expected" and marks unsolicited frames.

use super::{Error, Result};

const FLAG_MASK: u8 = 0xC0;
const FLAG: u8 = 0x80;
const IID_SHIFT: u8 = 4;
const IID_MASK: u8 = 0x30;
const TID_MASK: u8 = 0x0F;

/// A parsed header: interface id 0..=3 and transaction id 0..=15.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    iid: u8,
    tid: u8,
}

impl Header {
    /// A header for `iid` and `tid`; `None` if either is out of range.
    pub const fn new(iid: u8, tid: u8) -> Option<Header> {
        if iid > 3 || tid > 15 {
            None
        } else {
            Some(Header { iid, tid })
        }
    }

    /// IID 0, TID 0: the header of unsolicited frames and of the host's reset (`0x80`).
    pub const UNSOLICITED: Header = Header { iid: 0, tid: 0 };

    /// Parses a header byte; fails unless the flag bits are `0b10`.
    pub const fn parse(byte: u8) -> Result<Header> {
        if byte & FLAG_MASK != FLAG {
            return Err(Error::NotSpinel(byte));
        }
        Ok(Header { iid: (byte & IID_MASK) >> IID_SHIFT, tid: byte & TID_MASK })
    }

    /// The header byte.
    pub const fn to_byte(self) -> u8 {
        FLAG | (self.iid << IID_SHIFT) | self.tid
    }

    /// Interface id, 0..=3.
    pub const fn iid(self) -> u8 {
        self.iid
    }

    /// Transaction id, 0..=15; 0 means no response is expected.
    pub const fn tid(self) -> u8 {
        self.tid
    }

    /// Same interface, another TID (masked to 4 bits).
    pub const fn with_tid(self, tid: u8) -> Header {
        Header { iid: self.iid, tid: tid & TID_MASK }
    }
}

/// `SPINEL_GET_NEXT_TID`: counts 1..=15 and wraps to 1, never yielding 0.
pub const fn next_tid(tid: u8) -> u8 {
    if tid >= 15 {
        1
    } else {
        tid + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors() {
        // spinel-primitives.txt "Header byte"
        for (iid, tid, byte) in [(0, 0, 0x80), (0, 1, 0x81), (0, 15, 0x8f), (1, 0, 0x90), (3, 15, 0xbf)] {
            let h = Header::new(iid, tid).expect("in range");
            assert_eq!(h.to_byte(), byte);
            assert_eq!(Header::parse(byte), Ok(h));
        }
    }

    #[test]
    fn all_bytes() {
        for b in 0..=255u8 {
            match Header::parse(b) {
                Ok(h) => assert_eq!(h.to_byte(), b),
                Err(e) => {
                    assert_eq!(e, Error::NotSpinel(b));
                    assert_ne!(b & 0xC0, 0x80);
                }
            }
        }
        assert_eq!(Header::new(4, 0), None);
        assert_eq!(Header::new(0, 16), None);
    }

    #[test]
    fn tid_sequence_skips_zero() {
        assert_eq!(next_tid(0), 1);
        assert_eq!(next_tid(14), 15);
        assert_eq!(next_tid(15), 1);
    }
}
