//! SUIT_Envelope and its authentication wrapper (draft-ietf-suit-manifest-37 §8.2 "Envelope",
//! §8.3 "Authenticated Manifests"; RIOT's draft-09 layout in `reference/suit.md` §2.4).
//!
//! ```text
//! draft-37:  107({ 2: bstr .cbor [ bstr .cbor SUIT_Digest, * bstr .cbor COSE_Sign1 (payload nil) ],
//!                  3: bstr .cbor SUIT_Manifest,
//!                  ? 16 / 20 / 23: bstr (severed payload-fetch / install / text),
//!                  * tstr => bstr (integrated payloads) })           ; the tag is optional
//! draft-09:  { 2: bstr .cbor [ * bstr .cbor COSE_Sign1 (payload = bstr .cbor SUIT_Digest) ],
//!              3: bstr .cbor SUIT_Manifest, ? 7/8/9/13/14: bstr (severed members) }
//! ```
//! The manifest digest is SHA-256 over the key-3 value *including its bstr header*.
//!
//! Use: [`Envelope::parse`] checks structure only; [`Envelope::authenticate`] checks the digest
//! and the signatures and only then decodes the manifest (draft-37 §8.3: authenticate before
//! parsing or running any section).

use minicbor::data::Type;

use super::cbor::{Key, Reader};
use super::cose::{BlockKind, CoseSign, CoseSign1};
use super::digest::Digest;
use super::error::{Error, Result};
use super::key::PublicKey;
use super::limits::{MAX_ENVELOPE_LEN, MAX_ENVELOPE_MEMBERS, MAX_SIGNATURES};
use super::manifest::Manifest;
use super::Format;

/// CBOR tag of SUIT_Envelope_Tagged (draft-37 §8.2).
pub const TAG_ENVELOPE: u64 = 107;

const WHAT: &str = "SUIT_Envelope";
const AUTH: &str = "SUIT_Authentication";

/// A structurally valid, not yet authenticated envelope, borrowing its bytes.
#[derive(Debug, Clone)]
pub struct Envelope<'b> {
    bytes: &'b [u8],
    format: Format,
    tagged: bool,
    /// draft-37: the content of element 0 of SUIT_Authentication (the detached payload).
    digest: Option<&'b [u8]>,
    /// The key-3 value, bstr header included (what the digest covers).
    manifest_item: &'b [u8],
    /// The key-3 content: the encoded SUIT_Manifest.
    manifest: &'b [u8],
    signatures: Vec<Signature<'b>>,
    /// Authentication blocks left unchecked (COSE_Mac/Mac0), with why.
    skipped: Vec<SkippedBlock>,
    /// Severable members carried in the envelope: key and raw bstr item.
    severed: Vec<(i64, &'b [u8])>,
    integrated: Vec<(&'b str, &'b [u8])>,
}

/// One signature of the authentication wrapper: a COSE_Sign1 block, or one signer of a
/// COSE_Sign block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature<'b> {
    index: usize,
    block: usize,
    cose: CoseSign1<'b>,
    /// COSE_Sign: the body's protected header, which every signer's signature also covers.
    body_protected: Option<&'b [u8]>,
    /// The bytes the signature covers as its payload.
    signed_payload: &'b [u8],
}

/// Why an authentication block was not checked. Such a block never counts as a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SkipReason {
    #[error("MAC-authenticated manifests need a shared key ferry does not hold")]
    MacNeedsSharedKey,
}

impl SkipReason {
    /// Stable label for metrics and JSON.
    pub fn code(self) -> &'static str {
        match self {
            SkipReason::MacNeedsSharedKey => "mac-shared-key",
        }
    }
}

/// An authentication block left unchecked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SkippedBlock {
    /// Position among the authentication blocks (0-based, after draft-37's digest).
    pub block: usize,
    /// Its CBOR tag (97 COSE_Mac, 17 COSE_Mac0).
    pub tag: u64,
    pub reason: SkipReason,
}

impl<'b> Signature<'b> {
    /// Position among the signatures (0-based; a COSE_Sign block holds several).
    pub fn index(&self) -> usize {
        self.index
    }

    /// Position of the authentication block it came from.
    pub fn block(&self) -> usize {
        self.block
    }

    /// Whether it is one signer of a COSE_Sign (multi-signer) block.
    pub fn is_cose_sign(&self) -> bool {
        self.body_protected.is_some()
    }

    pub fn alg(&self) -> super::cose::CoseAlg {
        self.cose.alg
    }

    /// The COSE key identifier, if the signer put one in a header.
    pub fn kid(&self) -> Option<&'b [u8]> {
        self.cose.kid
    }

    /// The parsed COSE_Sign1.
    pub fn cose(&self) -> &CoseSign1<'b> {
        &self.cose
    }

    /// Checks this block's signature with `key` (RFC 9052 §4.4). This alone does not prove
    /// the manifest: [`Envelope::authenticate`] also checks the digest binding.
    pub fn verify(&self, key: &PublicKey) -> Result<()> {
        let tbs = match self.body_protected {
            None => super::cose::sig_structure(self.cose.protected, self.signed_payload),
            Some(body) => super::cose::sign_structure(body, self.cose.protected, self.signed_payload),
        };
        key.verify(self.cose.alg, &tbs, self.cose.signature, self.index)
    }
}

/// Which key checked which signature block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signer {
    /// Index into [`Envelope::signatures`].
    pub signature: usize,
    /// Index into the key slice given to [`Envelope::authenticate`].
    pub key: usize,
}

/// An envelope whose manifest digest and at least one signature verified, with its manifest.
#[derive(Debug, Clone)]
pub struct Authenticated<'e, 'b> {
    envelope: &'e Envelope<'b>,
    manifest: Manifest,
    signers: Vec<Signer>,
}

impl<'e, 'b> Authenticated<'e, 'b> {
    pub fn envelope(&self) -> &'e Envelope<'b> {
        self.envelope
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Every (signature, key) pair that verified; a threshold policy counts distinct keys here.
    pub fn signers(&self) -> &[Signer] {
        &self.signers
    }

    pub fn into_manifest(self) -> Manifest {
        self.manifest
    }
}

impl<'b> Envelope<'b> {
    /// Parses the envelope structure and its COSE blocks; no crypto, no manifest decoding.
    pub fn parse(bytes: &'b [u8]) -> Result<Self> {
        if bytes.len() > MAX_ENVELOPE_LEN {
            return Err(Error::TooLarge { what: WHAT, len: bytes.len(), max: MAX_ENVELOPE_LEN });
        }
        let mut r = Reader::new(bytes);
        let tagged = r.peek(WHAT)? == Type::Tag;
        if tagged {
            let tag = r.tag(WHAT)?;
            if tag != TAG_ENVELOPE {
                return Err(Error::Invalid {
                    what: WHAT,
                    reason: format!("tag {tag} is not SUIT_Envelope_Tagged (107)"),
                });
            }
        }
        let mut auth = None;
        let mut manifest_item = None;
        let mut others: Vec<(i64, &'b [u8])> = Vec::new();
        let mut integrated: Vec<(&'b str, &'b [u8])> = Vec::new();
        for _ in 0..r.map(WHAT, MAX_ENVELOPE_MEMBERS)? {
            match r.key(WHAT)? {
                Key::Int(2) => {
                    if auth.replace(r.bytes(AUTH)?).is_some() {
                        return Err(Error::DuplicateMember { what: WHAT, key: 2 });
                    }
                }
                Key::Int(3) => {
                    let item = r.raw_item("SUIT_Manifest")?;
                    if manifest_item.replace(item).is_some() {
                        return Err(Error::DuplicateMember { what: WHAT, key: 3 });
                    }
                }
                Key::Int(k) => {
                    if others.iter().any(|(o, _)| *o == k) {
                        return Err(Error::DuplicateMember { what: WHAT, key: k });
                    }
                    let start = r.offset();
                    r.bytes("severable member")?;
                    let item = bytes.get(start..r.offset()).unwrap_or_default();
                    others.push((k, item));
                }
                Key::Text(name) => {
                    if integrated.iter().any(|(n, _)| *n == name) {
                        return Err(Error::Invalid {
                            what: WHAT,
                            reason: format!("integrated payload {name:?} appears twice"),
                        });
                    }
                    integrated.push((name, r.bytes("integrated payload")?));
                }
            }
        }
        r.finish(WHAT)?;
        let auth = auth.ok_or(Error::MissingMember { what: WHAT, key: 2 })?;
        let manifest_item = manifest_item.ok_or(Error::MissingMember { what: WHAT, key: 3 })?;
        let manifest = super::cbor::decode_exact(manifest_item, "SUIT_Manifest", |r| r.bytes("SUIT_Manifest"))?;

        let (format, digest, signatures, skipped) = parse_authentication(auth, tagged)?;
        let severable = format.severable_keys();
        for (k, _) in &others {
            if !severable.contains(k) {
                return Err(Error::UnknownMember { what: WHAT, key: *k });
            }
        }
        Ok(Envelope {
            bytes,
            format,
            tagged,
            digest,
            manifest_item,
            manifest,
            signatures,
            skipped,
            severed: others,
            integrated,
        })
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// Whether the envelope carried tag 107.
    pub fn is_tagged(&self) -> bool {
        self.tagged
    }

    /// The whole envelope as received.
    pub fn as_bytes(&self) -> &'b [u8] {
        self.bytes
    }

    pub fn signatures(&self) -> &[Signature<'b>] {
        &self.signatures
    }

    /// Authentication blocks not checked (COSE_Mac/Mac0), with why; they never authenticate.
    pub fn skipped_blocks(&self) -> &[SkippedBlock] {
        &self.skipped
    }

    /// Keys of the severable members the envelope carries.
    pub fn severed_members(&self) -> impl Iterator<Item = i64> + '_ {
        self.severed.iter().map(|(k, _)| *k)
    }

    /// Integrated payloads (draft-37 §7.5), by name. Their digests are checked by whoever
    /// uses them against the authenticated manifest's image digest.
    pub fn integrated_payloads(&self) -> &[(&'b str, &'b [u8])] {
        &self.integrated
    }

    /// The bstr-wrapped manifest (key-3 value incl. header): what the digest covers and what
    /// `ferry publish` re-signs.
    pub fn manifest_bytes(&self) -> &'b [u8] {
        self.manifest_item
    }

    /// Checks that the signed digest(s) cover this manifest. For draft-37 there is one digest
    /// shared by all blocks; for draft-09 each block carries its own as attached payload.
    pub fn check_digest(&self) -> Result<()> {
        let mismatch = Error::DigestMismatch { what: "manifest" };
        match self.format {
            Format::Ietf => {
                if !Digest::cbor_matches(self.digest.unwrap_or_default(), Format::Ietf, self.manifest_item)? {
                    return Err(mismatch);
                }
            }
            Format::Riot => {
                for s in &self.signatures {
                    if !Digest::cbor_matches(s.signed_payload, Format::Riot, self.manifest_item)? {
                        return Err(mismatch);
                    }
                }
            }
        }
        Ok(())
    }

    /// Authenticates with any of `keys` and, only then, decodes the manifest and checks the
    /// digests of severable members present in the envelope.
    ///
    /// Succeeds when the digest binds the manifest and at least one signature block verifies
    /// with one of the keys; [`Authenticated::signers`] says which. Trust policy (which key
    /// may sign what, thresholds, anti-rollback) is the caller's.
    pub fn authenticate(&self, keys: &[PublicKey]) -> Result<Authenticated<'_, 'b>> {
        if self.signatures.is_empty() {
            return Err(match self.skipped.len() {
                0 => Error::NoSignatures,
                blocks => Error::OnlyMac { blocks },
            });
        }
        self.check_digest()?;
        let mut signers = Vec::new();
        let mut first_failure = None;
        for s in &self.signatures {
            for (ki, key) in keys.iter().enumerate() {
                if s.alg().key_type() != Some(key.key_type()) {
                    continue;
                }
                match s.verify(key) {
                    Ok(()) => signers.push(Signer { signature: s.index, key: ki }),
                    Err(e) => {
                        first_failure.get_or_insert(e);
                    }
                }
            }
        }
        if signers.is_empty() {
            return Err(match first_failure {
                Some(e) => e,
                None => match self.signatures.iter().find(|s| s.alg().key_type().is_none()) {
                    Some(s) => Error::UnsupportedAlgorithm(s.alg().code()),
                    None => Error::NoUsableKey { signatures: self.signatures.len(), keys: keys.len() },
                },
            });
        }
        let manifest = Manifest::decode(self.format, self.manifest, &self.severed)?;
        Ok(Authenticated { envelope: self, manifest, signers })
    }
}

/// Reads SUIT_Authentication and tells the format from its shape: a leading SUIT_Digest array
/// (draft-37) or COSE blocks with attached payloads only (draft-09).
type AuthParts<'b> = (Format, Option<&'b [u8]>, Vec<Signature<'b>>, Vec<SkippedBlock>);

fn parse_authentication(auth: &[u8], tagged: bool) -> Result<AuthParts<'_>> {
    let mut r = Reader::new(auth);
    let n = r.array(AUTH, MAX_SIGNATURES + 1)?;
    // The first element tells the format; the rest are read as they come, without a list.
    let first = if n > 0 { Some(r.bytes("SUIT_Authentication element")?) } else { None };
    let first_is_digest = match first {
        Some(first) => Reader::new(first).peek(AUTH)? == Type::Array,
        None => false,
    };
    let format = match (tagged, first_is_digest) {
        (_, true) => Format::Ietf,
        (false, false) => Format::Riot,
        (true, false) => {
            return Err(Error::UnknownFormat(
                "tag 107 (draft-37) but SUIT_Authentication does not start with a SUIT_Digest",
            ))
        }
    };
    let digest = if format == Format::Ietf { first } else { None };
    let block_count = if format == Format::Ietf { n.saturating_sub(1) } else { n };
    if block_count > MAX_SIGNATURES {
        return Err(Error::TooMany { what: "signature blocks", count: block_count as u64, max: MAX_SIGNATURES });
    }
    let mut pending_first = if format == Format::Riot { first } else { None };
    let mut signatures = Vec::with_capacity(block_count);
    let mut skipped = Vec::new();
    for block in 0..block_count {
        let bytes = match pending_first.take() {
            Some(first) => first,
            None => r.bytes("SUIT_Authentication element")?,
        };
        let (body_protected, sign1, views) = match BlockKind::of(bytes, block)? {
            // The common case stays free of a per-block allocation.
            BlockKind::Sign1 => (None, Some(CoseSign1::decode(bytes, block)?), Vec::new()),
            BlockKind::Sign => {
                let room = MAX_SIGNATURES.saturating_sub(signatures.len());
                let sign = CoseSign::decode(bytes, block, room)?;
                (Some(sign.body_protected), None, sign.signers)
            }
            BlockKind::Mac(tag) => {
                skipped.push(SkippedBlock { block, tag, reason: SkipReason::MacNeedsSharedKey });
                continue;
            }
        };
        for cose in sign1.into_iter().chain(views) {
            let signed_payload = match (format, cose.payload, digest) {
                (Format::Ietf, None, Some(d)) => d,
                (Format::Ietf, Some(_), _) => {
                    return Err(Error::Invalid {
                        what: "COSE_Sign1",
                        reason: format!("block {block} attaches a payload; draft-37 requires it detached (nil)"),
                    })
                }
                (Format::Riot, Some(p), _) => p,
                (_, None, _) => {
                    return Err(Error::Invalid {
                        what: "COSE_Sign1",
                        reason: format!("block {block} has no payload; draft-09 requires the digest attached"),
                    })
                }
            };
            if signatures.len() == MAX_SIGNATURES {
                return Err(Error::TooMany {
                    what: "signatures",
                    count: MAX_SIGNATURES as u64 + 1,
                    max: MAX_SIGNATURES,
                });
            }
            signatures.push(Signature { index: signatures.len(), block, cose, body_protected, signed_payload });
        }
    }
    r.finish(AUTH)?;
    Ok((format, digest, signatures, skipped))
}
