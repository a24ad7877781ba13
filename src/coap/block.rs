//! The Block1/Block2 option value, RFC 7959 §2.2.
//!
//! ```text
//!  0                   1                   2
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                 NUM                   |M| SZX |   (4, 12 or 20 bits of NUM)
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The block size is `2^(SZX + 4)` bytes, 16 to 1024. SZX 7 is reserved over UDP (BERT is a TCP
//! extension, RFC 8323), so decoding rejects it.

use thiserror::Error;

/// Largest block number that fits the 3-byte option.
pub const MAX_NUM: u32 = (1 << 20) - 1;
/// Largest SZX usable over UDP (1024-byte blocks).
pub const MAX_SZX: u8 = 6;

/// Why a Block option value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum BlockError {
    #[error("block option is {0} bytes long, at most 3 are allowed")]
    TooLong(usize),
    #[error("block SZX 7 (BERT) is not allowed over UDP")]
    Bert,
    #[error("block number {0} does not fit 20 bits")]
    NumTooLarge(u64),
    #[error("block size exponent {0} is out of range 0..=6")]
    BadSzx(u8),
}

/// A decoded Block1 or Block2 option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockOpt {
    /// Block number: the offset in units of this block's size.
    pub num: u32,
    /// More blocks follow.
    pub more: bool,
    /// Size exponent: the block holds `16 << szx` bytes.
    pub szx: u8,
}

impl BlockOpt {
    /// A block option, checked against the wire limits.
    pub fn new(num: u32, more: bool, szx: u8) -> Result<Self, BlockError> {
        if num > MAX_NUM {
            return Err(BlockError::NumTooLarge(num.into()));
        }
        if szx > MAX_SZX {
            return Err(BlockError::BadSzx(szx));
        }
        Ok(Self { num, more, szx })
    }

    /// Block size in bytes.
    pub fn size(self) -> usize {
        size_of_szx(self.szx)
    }

    /// Byte offset of this block in the whole body.
    pub fn offset(self) -> usize {
        self.num as usize * self.size()
    }

    /// Decodes an option value (0 to 3 bytes, big-endian).
    pub fn decode(value: &[u8]) -> Result<Self, BlockError> {
        if value.len() > 3 {
            return Err(BlockError::TooLong(value.len()));
        }
        let v = value.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
        let szx = (v & 0x7) as u8;
        if szx == 7 {
            return Err(BlockError::Bert);
        }
        Ok(Self { num: v >> 4, more: v & 0x8 != 0, szx })
    }

    /// Encodes the option value in the fewest bytes (zero bytes for the all-zero value).
    pub fn encode(self) -> Vec<u8> {
        let v = (self.num.min(MAX_NUM) << 4) | (u32::from(self.more) << 3) | u32::from(self.szx & 7);
        crate::coap::msg::encode_uint(v)
    }
}

/// Block size in bytes for an SZX (SZX above 6 is clamped to 1024).
pub fn size_of_szx(szx: u8) -> usize {
    16 << szx.min(MAX_SZX)
}

/// The SZX for a block size, if it is one of 16, 32, …, 1024.
pub fn szx_of_size(size: usize) -> Option<u8> {
    (0..=MAX_SZX).find(|s| size_of_szx(*s) == size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_vectors() {
        // empty value: NUM 0, M 0, SZX 0 (16 bytes)
        assert_eq!(BlockOpt::decode(&[]), Ok(BlockOpt { num: 0, more: false, szx: 0 }));
        // 0x02: NUM 0, M 0, SZX 2 — RIOT's first Block2 request (64 bytes)
        assert_eq!(BlockOpt::decode(&[0x02]), Ok(BlockOpt { num: 0, more: false, szx: 2 }));
        // 0x1e: NUM 1, M 1, SZX 6
        assert_eq!(BlockOpt::decode(&[0x1e]), Ok(BlockOpt { num: 1, more: true, szx: 6 }));
        // 0x0c 0x8a: NUM 200, M 1, SZX 2
        assert_eq!(BlockOpt::decode(&[0x0c, 0x8a]), Ok(BlockOpt { num: 200, more: true, szx: 2 }));
        // 0x0c 0x80 0x02: NUM 51200, M 0, SZX 2
        assert_eq!(BlockOpt::decode(&[0x0c, 0x80, 0x02]), Ok(BlockOpt { num: 51200, more: false, szx: 2 }));
        assert_eq!(BlockOpt::decode(&[0x07]), Err(BlockError::Bert));
        assert_eq!(BlockOpt::decode(&[0, 0, 0, 0]), Err(BlockError::TooLong(4)));
    }

    #[test]
    fn round_trip() {
        for (num, more, szx) in [
            (0, false, 0),
            (0, true, 6),
            (15, true, 2),
            (16, false, 2),
            (4095, true, 1),
            (4096, false, 3),
            (MAX_NUM, true, 6),
        ] {
            let b = BlockOpt::new(num, more, szx).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(BlockOpt::decode(&b.encode()), Ok(b));
        }
        assert_eq!(BlockOpt::new(0, false, 0).map(|b| b.encode()), Ok(vec![]));
        assert_eq!(szx_of_size(64), Some(2));
        assert_eq!(szx_of_size(100), None);
    }
}
