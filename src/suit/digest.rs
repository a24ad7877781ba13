//! SUIT_Digest (draft-ietf-suit-manifest-37 §8.4.8.1 "SUIT_Digest"; draft-09 §8.4.8.13).
//!
//! ```text
//! SUIT_Digest = [ suit-digest-algorithm-id : int, suit-digest-bytes : bstr ]
//! ```
//! The algorithm code points differ: draft-37 uses COSE algorithm IDs (-16 = SHA-256), RIOT's
//! draft-09 tooling uses its own enum (2 = SHA-256). Only SHA-256 is computed; everything else
//! round-trips as [`DigestAlg::Unknown`].

use minicbor::Encoder;
use sha2::{Digest as _, Sha256};

use super::cbor::Reader;
use super::error::{Error, Result};
use super::Format;

/// A digest algorithm, independent of the encoding's code point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestAlg {
    Sha256,
    /// Any other code point, kept as it was on the wire.
    Unknown(i64),
}

impl DigestAlg {
    /// Reads the code point of `format`.
    pub fn from_code(format: Format, code: i64) -> Self {
        match (format, code) {
            (Format::Ietf, -16) | (Format::Riot, 2) => DigestAlg::Sha256,
            (_, n) => DigestAlg::Unknown(n),
        }
    }

    /// The code point in `format`.
    pub fn code(self, format: Format) -> i64 {
        match (self, format) {
            (DigestAlg::Sha256, Format::Ietf) => -16,
            (DigestAlg::Sha256, Format::Riot) => 2,
            (DigestAlg::Unknown(n), _) => n,
        }
    }
}

/// A digest as carried in a manifest: algorithm and bytes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Digest {
    pub alg: DigestAlg,
    pub bytes: Vec<u8>,
}

impl core::fmt::Debug for Digest {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:?}:{}", self.alg, super::hex::encode(&self.bytes))
    }
}

impl Digest {
    /// SHA-256 of `data`.
    pub fn sha256(data: &[u8]) -> Self {
        Digest { alg: DigestAlg::Sha256, bytes: Sha256::digest(data).to_vec() }
    }

    /// Whether `data` hashes to this digest. Fails for algorithms we cannot compute, so an
    /// unknown algorithm never passes silently.
    pub fn matches(&self, data: &[u8]) -> Result<bool> {
        match self.alg {
            DigestAlg::Sha256 => Ok(Sha256::digest(data).as_slice() == self.bytes.as_slice()),
            DigestAlg::Unknown(n) => Err(Error::UnsupportedDigestAlgorithm(n)),
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>, format: Format) -> Result<Self> {
        let (alg, bytes) = Self::decode_borrowed(r, format)?;
        Ok(Digest { alg, bytes: bytes.to_vec() })
    }

    /// Whether the encoded SUIT_Digest `cbor` covers `data`, without copying the digest.
    pub(crate) fn cbor_matches(cbor: &[u8], format: Format, data: &[u8]) -> Result<bool> {
        let (alg, bytes) = super::cbor::decode_exact(cbor, "SUIT_Digest", |r| Digest::decode_borrowed(r, format))?;
        match alg {
            DigestAlg::Sha256 => Ok(Sha256::digest(data).as_slice() == bytes),
            DigestAlg::Unknown(n) => Err(Error::UnsupportedDigestAlgorithm(n)),
        }
    }

    fn decode_borrowed<'b>(r: &mut Reader<'b>, format: Format) -> Result<(DigestAlg, &'b [u8])> {
        const WHAT: &str = "SUIT_Digest";
        if r.array(WHAT, 2)? != 2 {
            return Err(Error::Invalid { what: WHAT, reason: "must be [algorithm-id, digest-bytes]".into() });
        }
        let alg = DigestAlg::from_code(format, r.i64(WHAT)?);
        let bytes = r.bytes(WHAT)?;
        if alg == DigestAlg::Sha256 && bytes.len() != 32 {
            return Err(Error::Invalid {
                what: WHAT,
                reason: format!("a SHA-256 digest has 32 bytes, not {}", bytes.len()),
            });
        }
        Ok((alg, bytes))
    }

    /// Decodes a complete encoded SUIT_Digest.
    pub(crate) fn from_cbor(bytes: &[u8], format: Format) -> Result<Self> {
        super::cbor::decode_exact(bytes, "SUIT_Digest", |r| Digest::decode(r, format))
    }

    pub(crate) fn encode(&self, e: &mut Encoder<Vec<u8>>, format: Format) {
        // Writing into a Vec cannot fail.
        let _ = e.array(2).and_then(|e| e.i64(self.alg.code(format))).and_then(|e| e.bytes(&self.bytes));
    }

    pub(crate) fn to_cbor(&self, format: Format) -> Vec<u8> {
        let mut e = Encoder::new(Vec::new());
        self.encode(&mut e, format);
        e.into_writer()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_points_per_format() {
        assert_eq!(DigestAlg::from_code(Format::Ietf, -16), DigestAlg::Sha256);
        assert_eq!(DigestAlg::from_code(Format::Riot, 2), DigestAlg::Sha256);
        assert_eq!(DigestAlg::from_code(Format::Ietf, 2), DigestAlg::Unknown(2));
        assert_eq!(DigestAlg::Unknown(-43).code(Format::Ietf), -43);
    }

    #[test]
    fn round_trip() {
        let d = Digest::sha256(b"ferry");
        for f in [Format::Ietf, Format::Riot] {
            let enc = d.to_cbor(f);
            // 0x82 array(2), then -16 (0x2f) or 2 (0x02), then bstr(32)
            assert_eq!(enc[0], 0x82);
            assert_eq!(Digest::from_cbor(&enc, f).unwrap(), d);
        }
        assert!(d.matches(b"ferry").unwrap());
        assert!(!d.matches(b"ferrx").unwrap());
    }

    #[test]
    fn unknown_algorithm_never_matches_silently() {
        let d = Digest { alg: DigestAlg::Unknown(-44), bytes: vec![0; 64] };
        assert_eq!(d.matches(b""), Err(Error::UnsupportedDigestAlgorithm(-44)));
    }
}
