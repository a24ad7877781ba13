//! COSE_Sign1 as SUIT uses it (RFC 9052 §4.2 "Signing with One Signer", §4.4 "Signing and
//! Verification Process"; draft-ietf-suit-manifest-37 §8.3 "Authenticated Manifests").
//!
//! ```text
//! COSE_Sign1_Tagged = #6.18([ protected: bstr .cbor header_map / bstr .size 0,
//!                              unprotected: header_map,
//!                              payload: bstr / nil,
//!                              signature: bstr ])
//! Sig_structure = [ "Signature1", body_protected: bstr, external_aad: bstr, payload: bstr ]
//! ```
//! draft-37 detaches the payload (`nil`; the signed payload is the bstr-wrapped SUIT_Digest);
//! RIOT's draft-09 attaches it.
//!
//! COSE_Sign (RFC 9052 §4.1, several signers over one payload) is read as one [`CoseSign1`]
//! view per signer, each checked on its own over
//! `[ "Signature", body_protected, sign_protected, external_aad, payload ]`. COSE_Mac and
//! COSE_Mac0 are recognised so the envelope can skip them with a reason: a MAC proves nothing
//! to a gateway that does not hold the device's shared key.

use core::fmt;

use minicbor::data::Type;
use minicbor::Encoder;

use super::cbor::{Key, Reader};
use super::error::{Error, Result};
use super::key::{KeyType, SigningKey};
use super::limits::MAX_HEADER_PARAMS;

/// COSE tag for COSE_Sign1 (RFC 9052 §2).
pub const TAG_COSE_SIGN1: u64 = 18;
/// COSE tag for COSE_Sign (several signers).
pub const TAG_COSE_SIGN: u64 = 98;
/// COSE tags for COSE_Mac and COSE_Mac0.
pub const TAG_COSE_MAC: u64 = 97;
pub const TAG_COSE_MAC0: u64 = 17;

/// What an authentication block is, from its tag (untagged blocks are COSE_Sign1, as RIOT
/// and the draft examples write them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    Sign1,
    Sign,
    /// COSE_Mac or COSE_Mac0, with its tag.
    Mac(u64),
}

impl BlockKind {
    pub(crate) fn of(bytes: &[u8], index: usize) -> Result<BlockKind> {
        let mut r = Reader::new(bytes);
        if r.peek("COSE block")? != Type::Tag {
            return Ok(BlockKind::Sign1);
        }
        match r.tag("COSE block")? {
            TAG_COSE_SIGN1 => Ok(BlockKind::Sign1),
            TAG_COSE_SIGN => Ok(BlockKind::Sign),
            tag @ (TAG_COSE_MAC | TAG_COSE_MAC0) => Ok(BlockKind::Mac(tag)),
            tag => Err(Error::UnsupportedAuthenticationBlock { index, tag }),
        }
    }
}

/// A COSE signature algorithm (IANA "COSE Algorithms").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CoseAlg {
    /// -8, EdDSA (what RIOT and suit-tool emit).
    EdDsa,
    /// -19, Ed25519, fully specified (what draft-ietf-suit-mti names).
    Ed25519,
    /// -7, ECDSA w/ SHA-256 (the draft-37 examples).
    Es256,
    /// -9, ECDSA P-256 w/ SHA-256, fully specified (draft-ietf-suit-mti).
    Esp256,
    Unknown(i64),
}

impl CoseAlg {
    pub fn from_code(code: i64) -> Self {
        match code {
            -8 => CoseAlg::EdDsa,
            -19 => CoseAlg::Ed25519,
            -7 => CoseAlg::Es256,
            -9 => CoseAlg::Esp256,
            n => CoseAlg::Unknown(n),
        }
    }

    pub fn code(self) -> i64 {
        match self {
            CoseAlg::EdDsa => -8,
            CoseAlg::Ed25519 => -19,
            CoseAlg::Es256 => -7,
            CoseAlg::Esp256 => -9,
            CoseAlg::Unknown(n) => n,
        }
    }

    /// The key type that checks this algorithm; -8/-19 and -7/-9 are treated alike.
    pub fn key_type(self) -> Option<KeyType> {
        match self {
            CoseAlg::EdDsa | CoseAlg::Ed25519 => Some(KeyType::Ed25519),
            CoseAlg::Es256 | CoseAlg::Esp256 => Some(KeyType::P256),
            CoseAlg::Unknown(_) => None,
        }
    }
}

impl fmt::Display for CoseAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoseAlg::EdDsa => f.write_str("EdDSA (-8)"),
            CoseAlg::Ed25519 => f.write_str("Ed25519 (-19)"),
            CoseAlg::Es256 => f.write_str("ES256 (-7)"),
            CoseAlg::Esp256 => f.write_str("ESP256 (-9)"),
            CoseAlg::Unknown(n) => write!(f, "unknown ({n})"),
        }
    }
}

/// A parsed COSE_Sign1, borrowing the envelope bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoseSign1<'b> {
    /// Content of the protected-header bstr, exactly as signed.
    pub protected: &'b [u8],
    pub alg: CoseAlg,
    /// Key ID from the protected or the unprotected header.
    pub kid: Option<&'b [u8]>,
    /// Attached payload (draft-09), or `None` when detached (draft-37).
    pub payload: Option<&'b [u8]>,
    pub signature: &'b [u8],
}

const WHAT: &str = "COSE_Sign1";

impl<'b> CoseSign1<'b> {
    /// Decodes one authentication block (the content of its bstr). `index` names it in errors.
    pub(crate) fn decode(bytes: &'b [u8], index: usize) -> Result<Self> {
        let mut r = Reader::new(bytes);
        if r.peek(WHAT)? == Type::Tag {
            let tag = r.tag(WHAT)?;
            if tag != TAG_COSE_SIGN1 {
                return Err(Error::UnsupportedAuthenticationBlock { index, tag });
            }
        }
        if r.array(WHAT, 4)? != 4 {
            return Err(Error::Invalid { what: WHAT, reason: "must have 4 elements".into() });
        }
        let protected = r.bytes("COSE protected header")?;
        let prot = if protected.is_empty() {
            Header::default()
        } else {
            super::cbor::decode_exact(protected, "COSE protected header", |r| Header::decode(r, index))?
        };
        let unprot = Header::decode(&mut r, index)?;
        let payload = match r.peek("COSE payload")? {
            Type::Null => {
                r.null("COSE payload")?;
                None
            }
            _ => Some(r.bytes("COSE payload")?),
        };
        let signature = r.bytes("COSE signature")?;
        r.finish(WHAT)?;
        // The algorithm must be integrity-protected, or an attacker could swap it.
        let alg = prot.alg.ok_or(Error::MissingMember { what: "COSE protected header", key: 1 })?;
        if unprot.alg.is_some() {
            return Err(Error::Invalid {
                what: "COSE unprotected header",
                reason: "alg must only be in the protected header".into(),
            });
        }
        Ok(CoseSign1 { protected, alg, kid: prot.kid.or(unprot.kid), payload, signature })
    }

    /// Builds and signs a COSE_Sign1 over `payload`, attached or detached, with header
    /// `{1: alg}` and an empty unprotected map, as suit-tool and the draft examples do.
    pub(crate) fn sign(key: &SigningKey, alg: CoseAlg, payload: &[u8], attach: bool) -> Result<Vec<u8>> {
        let mut e = Encoder::new(Vec::new());
        let _ = e.map(1).and_then(|e| e.i8(1)).and_then(|e| e.i64(alg.code()));
        let protected = e.into_writer();
        let signature = key.sign(alg, &sig_structure(&protected, payload))?;
        let mut e = Encoder::new(Vec::new());
        let _ = e
            .tag(minicbor::data::Tag::new(TAG_COSE_SIGN1))
            .and_then(|e| e.array(4))
            .and_then(|e| e.bytes(&protected))
            .and_then(|e| e.map(0));
        let _ = if attach { e.bytes(payload) } else { e.null() };
        let _ = e.bytes(&signature);
        Ok(e.into_writer())
    }
}

/// A parsed COSE_Sign: the body's protected header and one [`CoseSign1`] view per signer
/// (its own protected header, alg, kid and signature; the body's payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoseSign<'b> {
    /// Content of the body's protected-header bstr, exactly as signed.
    pub body_protected: &'b [u8],
    pub signers: Vec<CoseSign1<'b>>,
}

const WHAT_SIGN: &str = "COSE_Sign";

impl<'b> CoseSign<'b> {
    /// Decodes a COSE_Sign block with at most `max_signers` signers. `index` names the block.
    pub(crate) fn decode(bytes: &'b [u8], index: usize, max_signers: usize) -> Result<Self> {
        let mut r = Reader::new(bytes);
        if r.peek(WHAT_SIGN)? == Type::Tag && r.tag(WHAT_SIGN)? != TAG_COSE_SIGN {
            return Err(Error::Invalid { what: WHAT_SIGN, reason: "not tag 98".into() });
        }
        if r.array(WHAT_SIGN, 4)? != 4 {
            return Err(Error::Invalid { what: WHAT_SIGN, reason: "must have 4 elements".into() });
        }
        let body_protected = r.bytes("COSE protected header")?;
        // The body's headers are read for `crit` only: the algorithm is each signer's.
        if !body_protected.is_empty() {
            super::cbor::decode_exact(body_protected, "COSE protected header", |r| Header::decode(r, index))?;
        }
        Header::decode(&mut r, index)?;
        let payload = match r.peek("COSE payload")? {
            Type::Null => {
                r.null("COSE payload")?;
                None
            }
            _ => Some(r.bytes("COSE payload")?),
        };
        let n = r.array("COSE_Sign signatures", max_signers)?;
        if n == 0 {
            return Err(Error::Invalid { what: WHAT_SIGN, reason: "has no signers".into() });
        }
        let mut signers = Vec::with_capacity(n);
        for _ in 0..n {
            const WHAT: &str = "COSE_Signature";
            if r.array(WHAT, 3)? != 3 {
                return Err(Error::Invalid { what: WHAT, reason: "must have 3 elements".into() });
            }
            let protected = r.bytes("COSE protected header")?;
            let prot = if protected.is_empty() {
                Header::default()
            } else {
                super::cbor::decode_exact(protected, "COSE protected header", |r| Header::decode(r, index))?
            };
            let unprot = Header::decode(&mut r, index)?;
            let signature = r.bytes("COSE signature")?;
            let alg = prot.alg.ok_or(Error::MissingMember { what: "COSE_Signature protected header", key: 1 })?;
            if unprot.alg.is_some() {
                return Err(Error::Invalid {
                    what: "COSE unprotected header",
                    reason: "alg must only be in the protected header".into(),
                });
            }
            signers.push(CoseSign1 { protected, alg, kid: prot.kid.or(unprot.kid), payload, signature });
        }
        r.finish(WHAT_SIGN)?;
        Ok(CoseSign { body_protected, signers })
    }

    /// Builds a COSE_Sign over `payload` (attached or detached) with one signer per key;
    /// empty body headers, `{1: alg}` per signer.
    #[cfg(test)]
    pub(crate) fn sign(signers: &[(&SigningKey, CoseAlg)], payload: &[u8], attach: bool) -> Result<Vec<u8>> {
        let mut e = Encoder::new(Vec::new());
        let _ = e.tag(minicbor::data::Tag::new(TAG_COSE_SIGN)).and_then(|e| e.array(4)).and_then(|e| e.bytes(&[]));
        let _ = e.map(0).and_then(|e| if attach { e.bytes(payload) } else { e.null() });
        let _ = e.array(signers.len() as u64);
        for (key, alg) in signers {
            let mut h = Encoder::new(Vec::new());
            let _ = h.map(1).and_then(|e| e.i8(1)).and_then(|e| e.i64(alg.code()));
            let protected = h.into_writer();
            let signature = key.sign(*alg, &sign_structure(&[], &protected, payload))?;
            let _ =
                e.array(3).and_then(|e| e.bytes(&protected)).and_then(|e| e.map(0)).and_then(|e| e.bytes(&signature));
        }
        Ok(e.into_writer())
    }
}

/// The to-be-signed bytes of one COSE_Sign signer (RFC 9052 §4.4), empty external_aad.
pub fn sign_structure(body_protected: &[u8], sign_protected: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut e = Encoder::new(Vec::with_capacity(payload.len() + body_protected.len() + sign_protected.len() + 24));
    // Writing into a Vec cannot fail.
    let _ = e
        .array(5)
        .and_then(|e| e.str("Signature"))
        .and_then(|e| e.bytes(body_protected))
        .and_then(|e| e.bytes(sign_protected))
        .and_then(|e| e.bytes(&[]))
        .and_then(|e| e.bytes(payload));
    e.into_writer()
}

/// The to-be-signed bytes (RFC 9052 §4.4), with an empty external_aad as SUIT uses.
pub fn sig_structure(protected: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut e = Encoder::new(Vec::with_capacity(payload.len() + protected.len() + 24));
    // Writing into a Vec cannot fail.
    let _ = e
        .array(4)
        .and_then(|e| e.str("Signature1"))
        .and_then(|e| e.bytes(protected))
        .and_then(|e| e.bytes(&[]))
        .and_then(|e| e.bytes(payload));
    e.into_writer()
}

#[derive(Default)]
struct Header<'b> {
    alg: Option<CoseAlg>,
    kid: Option<&'b [u8]>,
}

impl<'b> Header<'b> {
    fn decode(r: &mut Reader<'b>, index: usize) -> Result<Self> {
        const WHAT: &str = "COSE header map";
        let mut h = Header::default();
        for _ in 0..r.map(WHAT, MAX_HEADER_PARAMS)? {
            match r.key(WHAT)? {
                Key::Int(1) => {
                    if h.alg.is_some() {
                        return Err(Error::DuplicateMember { what: WHAT, key: 1 });
                    }
                    h.alg = Some(CoseAlg::from_code(r.i64("COSE alg")?));
                }
                Key::Int(2) => return Err(Error::CriticalHeader { index }),
                Key::Int(4) => {
                    if h.kid.is_some() {
                        return Err(Error::DuplicateMember { what: WHAT, key: 4 });
                    }
                    h.kid = Some(r.bytes("COSE kid")?);
                }
                // Other parameters (content type, IV, counter signatures...) do not change
                // what a Sign1 signature means to us.
                _ => r.skip(WHAT)?,
            }
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suit::hex;

    #[test]
    fn sig_structure_matches_draft_example0() {
        // verification_draft37_es256.json, example 0
        let protected = [0xa1, 0x01, 0x26]; // {1: -7}
        let payload = hex::decode("822f58206658ea560262696dd1f13b782239a064da7c6c5cbaf52fded428a6fc83c7e5af").unwrap();
        let want = hex::decode(
            "846a5369676e61747572653143a10126405824822f58206658ea560262696dd1f13b782239a064\
             da7c6c5cbaf52fded428a6fc83c7e5af",
        )
        .unwrap();
        assert_eq!(sig_structure(&protected, &payload), want);
    }

    #[test]
    fn decode_refuses_cose_sign_and_mac() {
        // 98([...]) COSE_Sign; 17([...]) COSE_Mac0
        for (tag, bytes) in [(98, vec![0xd8, 0x62, 0x80]), (17, vec![0xd1, 0x80])] {
            assert_eq!(CoseSign1::decode(&bytes, 0), Err(Error::UnsupportedAuthenticationBlock { index: 0, tag }));
        }
    }

    #[test]
    fn block_kinds_come_from_the_tag() {
        assert_eq!(BlockKind::of(&[0x84], 0), Ok(BlockKind::Sign1));
        assert_eq!(BlockKind::of(&[0xd2, 0x84], 0), Ok(BlockKind::Sign1));
        assert_eq!(BlockKind::of(&[0xd8, 0x62, 0x84], 0), Ok(BlockKind::Sign));
        assert_eq!(BlockKind::of(&[0xd8, 0x61, 0x85], 0), Ok(BlockKind::Mac(97)));
        assert_eq!(BlockKind::of(&[0xd1, 0x84], 0), Ok(BlockKind::Mac(17)));
        assert_eq!(
            BlockKind::of(&[0xd8, 0x60, 0x84], 2),
            Err(Error::UnsupportedAuthenticationBlock { index: 2, tag: 96 })
        );
    }

    #[test]
    fn cose_sign_signers_verify_one_by_one() {
        let a = SigningKey::ed25519_from_seed(&[1; 32]);
        let b = SigningKey::ed25519_from_seed(&[2; 32]);
        let payload = b"digest";
        let block = CoseSign::sign(&[(&a, CoseAlg::Ed25519), (&b, CoseAlg::EdDsa)], payload, false).unwrap();
        let sign = CoseSign::decode(&block, 0, 8).unwrap();
        assert_eq!(sign.signers.len(), 2);
        assert_eq!(sign.signers[1].alg, CoseAlg::EdDsa);
        for (signer, key) in sign.signers.iter().zip([&a, &b]) {
            let tbs = sign_structure(sign.body_protected, signer.protected, payload);
            key.public_key().verify(signer.alg, &tbs, signer.signature, 0).unwrap();
        }
        assert!(matches!(CoseSign::decode(&block, 0, 1), Err(Error::TooMany { .. })));
    }

    #[test]
    fn decode_requires_protected_alg_and_refuses_crit() {
        // 18([h'', {1:-8}, nil, h''])
        let unprot_alg = [0xd2, 0x84, 0x40, 0xa1, 0x01, 0x27, 0xf6, 0x40];
        assert!(matches!(CoseSign1::decode(&unprot_alg, 0), Err(Error::MissingMember { key: 1, .. })));
        // 18([<<{1:-8, 2:[1]}>>, {}, nil, h''])
        let crit = [0xd2, 0x84, 0x46, 0xa2, 0x01, 0x27, 0x02, 0x81, 0x01, 0xa0, 0xf6, 0x40];
        assert_eq!(CoseSign1::decode(&crit, 3), Err(Error::CriticalHeader { index: 3 }));
    }

    #[test]
    fn decode_reads_kid() {
        // 18([<<{1:-19}>>, {4: h'6b31'}, nil, h'00'])
        let b = [0xd2, 0x84, 0x43, 0xa1, 0x01, 0x32, 0xa1, 0x04, 0x42, 0x6b, 0x31, 0xf6, 0x41, 0x00];
        let s = CoseSign1::decode(&b, 0).unwrap();
        assert_eq!(s.alg, CoseAlg::Ed25519);
        assert_eq!(s.kid, Some(&b"k1"[..]));
        assert_eq!(s.payload, None);
    }
}
