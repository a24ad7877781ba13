//! Packed unsigned integer (Spinel type `i`), `shared/reference/spinel.md` §2.
//!
//! Little-endian groups of 7 bits; bit 7 set means another byte follows. Spinel caps it at
//! 3 bytes, so the largest value is 2,097,151 (`1337 → B9 0A`).

use super::{Error, Result};

/// Largest value a packed uint can carry.
pub const MAX: u32 = (1 << 21) - 1;
/// Longest encoding.
pub const MAX_LEN: usize = 3;

/// Decodes a packed uint from the start of `buf`; returns the value and the bytes used.
///
/// Rejects encodings longer than 3 bytes and non-shortest ones (see [`Error::PackedNonCanonical`]).
pub fn decode(buf: &[u8]) -> Result<(u32, usize)> {
    let mut value = 0u32;
    for i in 0..MAX_LEN {
        let byte = *buf.get(i).ok_or(Error::Truncated)?;
        value |= u32::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            // A zero last group after the first byte means a shorter encoding existed.
            if i > 0 && byte == 0 {
                return Err(Error::PackedNonCanonical);
            }
            return Ok((value, i + 1));
        }
    }
    Err(Error::PackedTooLong)
}

/// Number of bytes `value` packs into (1..=3); values above [`MAX`] report 3 but fail to encode.
pub const fn encoded_len(value: u32) -> usize {
    if value < 1 << 7 {
        1
    } else if value < 1 << 14 {
        2
    } else {
        3
    }
}

/// Encodes `value` at the start of `out`; returns the bytes written.
pub fn encode(value: u32, out: &mut [u8]) -> Result<usize> {
    if value > MAX {
        return Err(Error::PackedOutOfRange(value));
    }
    let len = encoded_len(value);
    let out = out.get_mut(..len).ok_or(Error::BufferTooSmall)?;
    for (i, slot) in out.iter_mut().enumerate() {
        let group = ((value >> (7 * i)) & 0x7F) as u8;
        *slot = if i + 1 < len { group | 0x80 } else { group };
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_canonical_and_too_long_rejected() {
        assert_eq!(decode(&[0x80, 0x00]), Err(Error::PackedNonCanonical));
        assert_eq!(decode(&[0xff, 0x80, 0x00]), Err(Error::PackedNonCanonical));
        // spinel-primitives.txt: "decode ff ff ff 7f ... -> reject in Rust"
        assert_eq!(decode(&[0xff, 0xff, 0xff, 0x7f]), Err(Error::PackedTooLong));
        assert_eq!(decode(&[0x80]), Err(Error::Truncated));
        assert_eq!(decode(&[]), Err(Error::Truncated));
        assert_eq!(encode(MAX + 1, &mut [0; 4]), Err(Error::PackedOutOfRange(MAX + 1)));
        assert_eq!(encode(128, &mut [0; 1]), Err(Error::BufferTooSmall));
    }

    #[test]
    fn exhaustive_round_trip() {
        // Every value in the 21-bit range encodes, decodes back, and has the predicted length.
        let mut buf = [0u8; MAX_LEN];
        for v in 0..=MAX {
            let n = encode(v, &mut buf).expect("in range");
            assert_eq!(n, encoded_len(v));
            assert_eq!(decode(&buf[..n]), Ok((v, n)));
        }
    }

    #[test]
    fn every_short_input_decodes_or_errors() {
        // All 1- and 2-byte inputs: decode never panics and accepted ones re-encode identically.
        let mut out = [0u8; MAX_LEN];
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let input = [a, b];
                if let Ok((v, n)) = decode(&input) {
                    let m = encode(v, &mut out).expect("decoded value is in range");
                    assert_eq!(&out[..m], &input[..n]);
                }
            }
        }
    }
}
