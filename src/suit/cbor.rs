//! A bounded CBOR reader for SUIT (RFC 8949 §3, restricted as SUIT needs it).
//!
//! Thin layer over [`minicbor::Decoder`] that turns its errors into [`Error`] with the name of
//! the wire object being read, refuses indefinite lengths (draft-ietf-suit-manifest-37 §8.1
//! requires deterministic CBOR, and definite lengths keep every loop bounded by the input), and
//! skips unknown items with an explicit depth limit instead of unbounded recursion.
//!
//! Panic rule: no method panics on any input; each returns [`Error`] instead.

use minicbor::data::Type;
use minicbor::Decoder;

use super::error::{Error, Result};
use super::limits::MAX_DEPTH;

/// A map key: SUIT uses integer keys, plus text keys for integrated payloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key<'b> {
    Int(i64),
    Text(&'b str),
}

/// Cursor over one CBOR item sequence.
pub(crate) struct Reader<'b> {
    d: Decoder<'b>,
}

impl<'b> Reader<'b> {
    pub(crate) fn new(bytes: &'b [u8]) -> Self {
        Reader { d: Decoder::new(bytes) }
    }

    pub(crate) fn offset(&self) -> usize {
        self.d.position()
    }

    fn err(&self, what: &'static str, e: minicbor::decode::Error) -> Error {
        if e.is_end_of_input() {
            Error::Truncated { what, offset: self.d.input().len() }
        } else {
            Error::Malformed { what, offset: e.position().unwrap_or_else(|| self.d.position()), reason: e.to_string() }
        }
    }

    /// The type of the next item, without consuming it.
    pub(crate) fn peek(&self, what: &'static str) -> Result<Type> {
        self.d.datatype().map_err(|e| self.err(what, e))
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64> {
        self.d.u64().map_err(|e| self.err(what, e))
    }

    pub(crate) fn i64(&mut self, what: &'static str) -> Result<i64> {
        self.d.i64().map_err(|e| self.err(what, e))
    }

    pub(crate) fn bool(&mut self, what: &'static str) -> Result<bool> {
        self.d.bool().map_err(|e| self.err(what, e))
    }

    pub(crate) fn null(&mut self, what: &'static str) -> Result<()> {
        self.d.null().map_err(|e| self.err(what, e))
    }

    pub(crate) fn bytes(&mut self, what: &'static str) -> Result<&'b [u8]> {
        self.reject_indefinite(what, Type::BytesIndef)?;
        self.d.bytes().map_err(|e| self.err(what, e))
    }

    pub(crate) fn str(&mut self, what: &'static str) -> Result<&'b str> {
        self.reject_indefinite(what, Type::StringIndef)?;
        self.d.str().map_err(|e| self.err(what, e))
    }

    pub(crate) fn tag(&mut self, what: &'static str) -> Result<u64> {
        self.d.tag().map(u64::from).map_err(|e| self.err(what, e))
    }

    /// A definite-length array header; the count is checked against `max` before any loop.
    pub(crate) fn array(&mut self, what: &'static str, max: usize) -> Result<usize> {
        let at = self.offset();
        match self.d.array().map_err(|e| self.err(what, e))? {
            None => Err(Error::IndefiniteLength { what, offset: at }),
            Some(n) => bounded(what, n, max),
        }
    }

    /// A definite-length map header; returns the number of pairs.
    pub(crate) fn map(&mut self, what: &'static str, max: usize) -> Result<usize> {
        let at = self.offset();
        match self.d.map().map_err(|e| self.err(what, e))? {
            None => Err(Error::IndefiniteLength { what, offset: at }),
            Some(n) => bounded(what, n, max),
        }
    }

    /// A map key: an integer or a text string.
    pub(crate) fn key(&mut self, what: &'static str) -> Result<Key<'b>> {
        match self.peek(what)? {
            Type::String | Type::StringIndef => self.str(what).map(Key::Text),
            _ => self.i64(what).map(Key::Int),
        }
    }

    /// An integer map key; text keys are refused.
    pub(crate) fn int_key(&mut self, what: &'static str) -> Result<i64> {
        self.i64(what)
    }

    /// Skips the next item, however it is built, within [`MAX_DEPTH`].
    pub(crate) fn skip(&mut self, what: &'static str) -> Result<()> {
        self.skip_at(what, 0)
    }

    fn skip_at(&mut self, what: &'static str, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(Error::TooDeep { what, max: MAX_DEPTH });
        }
        match self.peek(what)? {
            Type::Array | Type::ArrayIndef => {
                // The count is bounded by the input: each element needs at least one byte.
                let n = self.array(what, self.remaining())?;
                for _ in 0..n {
                    self.skip_at(what, depth + 1)?;
                }
                Ok(())
            }
            Type::Map | Type::MapIndef => {
                let n = self.map(what, self.remaining())?;
                for _ in 0..n {
                    self.skip_at(what, depth + 1)?;
                    self.skip_at(what, depth + 1)?;
                }
                Ok(())
            }
            Type::Tag => {
                self.tag(what)?;
                self.skip_at(what, depth + 1)
            }
            Type::BytesIndef | Type::StringIndef => Err(Error::IndefiniteLength { what, offset: self.offset() }),
            Type::Break => Err(Error::Malformed { what, offset: self.offset(), reason: "unexpected break".into() }),
            _ => self.d.skip().map_err(|e| self.err(what, e)),
        }
    }

    /// The raw encoding of the next item (header included), consuming it.
    pub(crate) fn raw_item(&mut self, what: &'static str) -> Result<&'b [u8]> {
        let start = self.offset();
        self.skip(what)?;
        let end = self.offset();
        self.d.input().get(start..end).ok_or(Error::Truncated { what, offset: self.d.input().len() })
    }

    /// Checks that nothing follows the item just read.
    pub(crate) fn finish(&self, what: &'static str) -> Result<()> {
        let len = self.d.input().len();
        let at = self.offset();
        if at < len {
            return Err(Error::TrailingBytes { what, offset: at, extra: len - at });
        }
        Ok(())
    }

    fn remaining(&self) -> usize {
        self.d.input().len().saturating_sub(self.offset())
    }

    fn reject_indefinite(&self, what: &'static str, indef: Type) -> Result<()> {
        if self.peek(what)? == indef {
            return Err(Error::IndefiniteLength { what, offset: self.offset() });
        }
        Ok(())
    }
}

fn bounded(what: &'static str, n: u64, max: usize) -> Result<usize> {
    match usize::try_from(n) {
        Ok(n) if n <= max => Ok(n),
        _ => Err(Error::TooMany { what, count: n, max }),
    }
}

/// Decodes `bytes` as exactly one item of `what` with `f`, refusing trailing bytes.
pub(crate) fn decode_exact<'b, T>(
    bytes: &'b [u8],
    what: &'static str,
    f: impl FnOnce(&mut Reader<'b>) -> Result<T>,
) -> Result<T> {
    let mut r = Reader::new(bytes);
    let v = f(&mut r)?;
    r.finish(what)?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_refuses_deep_nesting() {
        let deep = vec![0x81u8; 10_000];
        let mut r = Reader::new(&deep);
        assert!(matches!(r.skip("test"), Err(Error::TooDeep { .. })));
    }

    #[test]
    fn huge_declared_lengths_fail_without_allocating() {
        // bstr of 2^64-1 bytes, array of 2^63 items, map of 2^32 pairs
        for input in [
            &[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..],
            &[0x9b, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x01],
            &[0xba, 0xff, 0xff, 0xff, 0xff, 0x01, 0x01],
        ] {
            let mut r = Reader::new(input);
            assert!(r.skip("test").is_err(), "{input:02x?}");
        }
    }

    #[test]
    fn indefinite_lengths_are_refused() {
        for input in [&[0x9f, 0x01, 0xff][..], &[0x5f, 0x41, 0x00, 0xff], &[0xbf, 0xff]] {
            let mut r = Reader::new(input);
            assert!(matches!(r.skip("test"), Err(Error::IndefiniteLength { .. })));
        }
    }

    #[test]
    fn raw_item_returns_the_whole_encoding() {
        let input = [0x82, 0x01, 0x41, 0xaa, 0x00];
        let mut r = Reader::new(&input);
        assert_eq!(r.raw_item("test").unwrap(), &input[..4]);
        assert!(r.finish("test").is_err());
    }
}
