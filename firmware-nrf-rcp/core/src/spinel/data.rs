//! Typed reader and writer for Spinel data types, `shared/reference/spinel.md` §2
//! (spinel.h `SPINEL_DATATYPE_*`).
//!
//! | char | type | method |
//! |---|---|---|
//! | `b` | bool, one byte 00/01 | `bool` |
//! | `C` `c` | u8 / i8 | `u8` / `i8` |
//! | `S` `s` `L` `l` `X` `x` | u16 / i16 / u32 / i32 / u64 / i64, little-endian | `u16` … `i64` |
//! | `i` | packed uint | `packed` |
//! | `6` `E` `e` | IPv6 (16), EUI-64 (8), EUI-48 (6) bytes as-is | `ipv6` / `eui64` / `eui48` |
//! | `U` | NUL-terminated UTF-8 | `utf8` |
//! | `D` | raw data to the end of the buffer or struct | `rest` / `data` |
//! | `d` | `S` length, then data | `data_with_len` |
//! | `t(...)` | `S` length, then fields; unknown trailing fields are skipped | `structure` |
//! | `A(...)` | items until the end; no count | loop while `!is_empty()` |
//!
//! The reader is bounded by its slice and returns [`Error`] instead of panicking; the writer
//! never writes past its buffer.

use super::{packed, Error, Result};

/// Reads Spinel fields from a byte slice, front to back.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub const fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// Bytes not read yet.
    pub const fn remaining(&self) -> &'a [u8] {
        self.buf
    }

    /// True when every byte has been read.
    pub const fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Fails with [`Error::TrailingBytes`] unless every byte was read.
    pub fn finish(&self) -> Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(Error::TrailingBytes)
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.buf.len() {
            return Err(Error::Truncated);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// `b`: rejects bytes other than 0 and 1, as OpenThread's decoder does.
    pub fn bool(&mut self) -> Result<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(Error::InvalidBool(b)),
        }
    }

    /// `C`.
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    /// `c`.
    pub fn i8(&mut self) -> Result<i8> {
        Ok(i8::from_le_bytes(self.array()?))
    }

    /// `S`.
    pub fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    /// `s`.
    pub fn i16(&mut self) -> Result<i16> {
        Ok(i16::from_le_bytes(self.array()?))
    }

    /// `L`.
    pub fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// `l`.
    pub fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_le_bytes(self.array()?))
    }

    /// `X`.
    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// `x`.
    pub fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    /// `i`.
    pub fn packed(&mut self) -> Result<u32> {
        let (value, len) = packed::decode(self.buf)?;
        self.take(len)?;
        Ok(value)
    }

    /// `6`: IPv6 address in network order.
    pub fn ipv6(&mut self) -> Result<[u8; 16]> {
        self.array()
    }

    /// `E`: EUI-64 as sent.
    pub fn eui64(&mut self) -> Result<[u8; 8]> {
        self.array()
    }

    /// `e`: EUI-48 as sent.
    pub fn eui48(&mut self) -> Result<[u8; 6]> {
        self.array()
    }

    /// `U`: the string without its NUL.
    pub fn utf8(&mut self) -> Result<&'a str> {
        let nul = self.buf.iter().position(|&b| b == 0).ok_or(Error::InvalidString)?;
        let bytes = self.take(nul + 1)?;
        core::str::from_utf8(&bytes[..nul]).map_err(|_| Error::InvalidString)
    }

    /// `D`: everything that is left.
    pub fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.buf)
    }

    /// Exactly `n` raw bytes (for fixed-size fields such as 16-byte keys).
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        self.take(n)
    }

    /// `d`: a `u16` length, then that many bytes.
    pub fn data_with_len(&mut self) -> Result<&'a [u8]> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    /// `t(...)`: a reader over the struct's body. The outer reader moves past the whole struct,
    /// so fields the caller does not read are skipped (that is how Spinel extends structs).
    pub fn structure(&mut self) -> Result<Reader<'a>> {
        Ok(Reader::new(self.data_with_len()?))
    }

    /// Runs `read` only if bytes remain; for trailing optional fields that default when absent.
    pub fn optional<T>(&mut self, read: impl FnOnce(&mut Self) -> Result<T>) -> Result<Option<T>> {
        if self.is_empty() {
            Ok(None)
        } else {
            read(self).map(Some)
        }
    }
}

/// Writes Spinel fields into a caller buffer, front to back.
#[derive(Debug)]
pub struct Writer<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> Writer<'a> {
    /// A writer filling `buf` from its start.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Writer { buf, len: 0 }
    }

    /// Bytes written so far.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// True if nothing was written yet.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes written so far.
    pub fn written(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Consumes the writer, returning the written bytes with the buffer's lifetime.
    pub fn into_written(self) -> &'a mut [u8] {
        let len = self.len;
        &mut self.buf[..len]
    }

    fn reserve(&mut self, n: usize) -> Result<&mut [u8]> {
        let end = self.len.checked_add(n).ok_or(Error::BufferTooSmall)?;
        let slot = self.buf.get_mut(self.len..end).ok_or(Error::BufferTooSmall)?;
        self.len = end;
        Ok(slot)
    }

    /// Raw bytes (`D`, or fixed-size fields).
    pub fn bytes(&mut self, bytes: &[u8]) -> Result<()> {
        self.reserve(bytes.len())?.copy_from_slice(bytes);
        Ok(())
    }

    /// `b`.
    pub fn bool(&mut self, v: bool) -> Result<()> {
        self.u8(u8::from(v))
    }

    /// `C`.
    pub fn u8(&mut self, v: u8) -> Result<()> {
        self.bytes(&[v])
    }

    /// `c`.
    pub fn i8(&mut self, v: i8) -> Result<()> {
        self.bytes(&v.to_le_bytes())
    }

    /// `S`.
    pub fn u16(&mut self, v: u16) -> Result<()> {
        self.bytes(&v.to_le_bytes())
    }

    /// `s`.
    pub fn i16(&mut self, v: i16) -> Result<()> {
        self.bytes(&v.to_le_bytes())
    }

    /// `L`.
    pub fn u32(&mut self, v: u32) -> Result<()> {
        self.bytes(&v.to_le_bytes())
    }

    /// `l`.
    pub fn i32(&mut self, v: i32) -> Result<()> {
        self.bytes(&v.to_le_bytes())
    }

    /// `X`.
    pub fn u64(&mut self, v: u64) -> Result<()> {
        self.bytes(&v.to_le_bytes())
    }

    /// `x`.
    pub fn i64(&mut self, v: i64) -> Result<()> {
        self.bytes(&v.to_le_bytes())
    }

    /// `i`.
    pub fn packed(&mut self, v: u32) -> Result<()> {
        let mut tmp = [0u8; packed::MAX_LEN];
        let n = packed::encode(v, &mut tmp)?;
        self.bytes(&tmp[..n])
    }

    /// `6`.
    pub fn ipv6(&mut self, v: &[u8; 16]) -> Result<()> {
        self.bytes(v)
    }

    /// `E`.
    pub fn eui64(&mut self, v: &[u8; 8]) -> Result<()> {
        self.bytes(v)
    }

    /// `e`.
    pub fn eui48(&mut self, v: &[u8; 6]) -> Result<()> {
        self.bytes(v)
    }

    /// `U`: refuses strings with an interior NUL, which would not read back.
    pub fn utf8(&mut self, s: &str) -> Result<()> {
        if s.as_bytes().contains(&0) {
            return Err(Error::InvalidString);
        }
        self.bytes(s.as_bytes())?;
        self.u8(0)
    }

    /// `d`.
    pub fn data_with_len(&mut self, data: &[u8]) -> Result<()> {
        let len = u16::try_from(data.len()).map_err(|_| Error::LengthOverflow)?;
        self.u16(len)?;
        self.bytes(data)
    }

    /// `t(...)`: writes the fields `body` produces behind a `u16` length it fills in afterwards.
    pub fn structure(&mut self, body: impl FnOnce(&mut Writer<'_>) -> Result<()>) -> Result<()> {
        let start = self.len;
        self.u16(0)?;
        let rest = self.buf.get_mut(self.len..).ok_or(Error::BufferTooSmall)?;
        let mut inner = Writer::new(rest);
        body(&mut inner)?;
        let body_len = inner.len;
        let len = u16::try_from(body_len).map_err(|_| Error::LengthOverflow)?;
        self.len += body_len;
        self.buf[start..start + 2].copy_from_slice(&len.to_le_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips() {
        let mut buf = [0u8; 128];
        let mut w = Writer::new(&mut buf);
        w.bool(true).unwrap();
        w.u8(0xAB).unwrap();
        w.i8(-70).unwrap();
        w.u16(0x1234).unwrap();
        w.i16(-2).unwrap();
        w.u32(0xDEAD_BEEF).unwrap();
        w.i32(-100_000).unwrap();
        w.u64(123_456_789).unwrap();
        w.i64(-1).unwrap();
        w.packed(1337).unwrap();
        w.ipv6(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]).unwrap();
        w.eui64(&[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        w.eui48(&[1, 2, 3, 4, 5, 6]).unwrap();
        w.utf8("RUST-RCP/0.1").unwrap();
        w.data_with_len(&[9, 9]).unwrap();
        w.structure(|s| {
            s.u8(15)?;
            s.u8(0xE0)
        })
        .unwrap();
        w.bytes(&[0xAA, 0xBB]).unwrap();
        let n = w.len();
        let bytes = &buf[..n];
        // Spot-check the layout of a few fields.
        assert_eq!(&bytes[..4], [0x01, 0xAB, 0xBA, 0x34]); // b C c S-low
        let mut r = Reader::new(bytes);
        assert!(r.bool().unwrap());
        assert_eq!(r.u8().unwrap(), 0xAB);
        assert_eq!(r.i8().unwrap(), -70);
        assert_eq!(r.u16().unwrap(), 0x1234);
        assert_eq!(r.i16().unwrap(), -2);
        assert_eq!(r.u32().unwrap(), 0xDEAD_BEEF);
        assert_eq!(r.i32().unwrap(), -100_000);
        assert_eq!(r.u64().unwrap(), 123_456_789);
        assert_eq!(r.i64().unwrap(), -1);
        assert_eq!(r.packed().unwrap(), 1337);
        assert_eq!(r.ipv6().unwrap()[15], 1);
        assert_eq!(r.eui64().unwrap(), [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(r.eui48().unwrap(), [1, 2, 3, 4, 5, 6]);
        assert_eq!(r.utf8().unwrap(), "RUST-RCP/0.1");
        assert_eq!(r.data_with_len().unwrap(), [9, 9]);
        let mut s = r.structure().unwrap();
        assert_eq!((s.u8().unwrap(), s.u8().unwrap()), (15, 0xE0));
        s.finish().unwrap();
        assert_eq!(r.rest(), [0xAA, 0xBB]);
        r.finish().unwrap();
    }

    #[test]
    fn struct_skips_unknown_trailing_fields() {
        // t(C chan, C lqi, <2 future bytes>) followed by C
        let bytes = [0x04, 0x00, 0x0f, 0xe0, 0x77, 0x88, 0x42];
        let mut r = Reader::new(&bytes);
        let mut s = r.structure().unwrap();
        assert_eq!(s.u8().unwrap(), 0x0f);
        assert_eq!(r.u8().unwrap(), 0x42);
        r.finish().unwrap();
    }

    #[test]
    fn errors_not_panics() {
        assert_eq!(Reader::new(&[]).u8(), Err(Error::Truncated));
        assert_eq!(Reader::new(&[2]).bool(), Err(Error::InvalidBool(2)));
        assert_eq!(Reader::new(&[1, 2, 3]).u32(), Err(Error::Truncated));
        assert_eq!(Reader::new(b"abc").utf8(), Err(Error::InvalidString));
        assert_eq!(Reader::new(&[0xff, 0x00]).utf8(), Err(Error::InvalidString));
        assert_eq!(Reader::new(&[5, 0, 1]).data_with_len(), Err(Error::Truncated));
        assert_eq!(Reader::new(&[0xff, 0xff]).structure().err(), Some(Error::Truncated));
        assert_eq!(Reader::new(&[1]).finish(), Err(Error::TrailingBytes));

        let mut small = [0u8; 3];
        let mut w = Writer::new(&mut small);
        assert_eq!(w.u32(1), Err(Error::BufferTooSmall));
        assert_eq!(w.utf8("a\0b"), Err(Error::InvalidString));
        assert_eq!(w.structure(|s| s.u16(7)), Err(Error::BufferTooSmall));
        assert_eq!(w.packed(1 << 21), Err(Error::PackedOutOfRange(1 << 21)));
    }

    #[test]
    fn random_reads_never_panic() {
        let mut s = 0x9e37_79b9u32;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s
        };
        for _ in 0..5000 {
            let len = (next() % 24) as usize;
            let bytes: std::vec::Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let mut r = Reader::new(&bytes);
            for _ in 0..8 {
                let _ = match next() % 8 {
                    0 => r.bool().map(drop),
                    1 => r.packed().map(drop),
                    2 => r.utf8().map(drop),
                    3 => r.data_with_len().map(drop),
                    4 => r.structure().map(drop),
                    5 => r.u64().map(drop),
                    6 => r.eui64().map(drop),
                    _ => r.i16().map(drop),
                };
            }
        }
    }
}
