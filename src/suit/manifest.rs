//! SUIT_Manifest and SUIT_Common (draft-ietf-suit-manifest-37 §8.4 "Manifest", §8.4.5
//! "SUIT_Common", §8.4.11 severable elements; draft-09 §8.4 for RIOT's key numbers).
//!
//! ```text
//! SUIT_Manifest = { 1: 1 (manifest-version), 2: uint (sequence number), 3: bstr .cbor SUIT_Common,
//!                   ? 4: tstr (reference-uri), ? validate, ? load, ? invoke,
//!                   ? payload-fetch, ? install, ? text  (severable: bstr .cbor … / SUIT_Digest) }
//! SUIT_Common   = { ? 2: [+ SUIT_Component_Identifier], ? 4: bstr .cbor SUIT_Shared_Sequence }
//! SUIT_Component_Identifier = [* bstr]
//! ```
//! | member         | draft-37 | draft-09 |
//! |----------------|----------|----------|
//! | validate       | 7        | 10       |
//! | load           | 8        | 11       |
//! | invoke / run   | 9        | 12       |
//! | payload-fetch  | 16       | 8        |
//! | install        | 20       | 9        |
//! | text           | 23       | 13       |
//!
//! [`Manifest`] is the typed model: what the trust policy and the delivery need (sequence
//! number, components with vendor/class IDs and their images per slot, URIs, text). It is
//! produced by running the command sequences symbolically (see `sequence.rs`), never by
//! executing them.

use core::fmt;

use super::cbor::{decode_exact, Reader};
use super::digest::Digest;
use super::error::{Error, Result};
use super::limits::{MAX_COMPONENTS, MAX_COMPONENT_ID_SEGMENTS, MAX_MAP_MEMBERS};
use super::sequence::Interpreter;
use super::text::Text;
use super::Format;

const WHAT: &str = "SUIT_Manifest";
const COMMON: &str = "SUIT_Common";

/// Per-format manifest key numbers.
struct Keys {
    validate: i64,
    load: i64,
    invoke: i64,
    payload_fetch: i64,
    install: i64,
    text: i64,
}

fn keys(format: Format) -> Keys {
    match format {
        Format::Ietf => Keys { validate: 7, load: 8, invoke: 9, payload_fetch: 16, install: 20, text: 23 },
        Format::Riot => Keys { validate: 10, load: 11, invoke: 12, payload_fetch: 8, install: 9, text: 13 },
    }
}

/// A component identifier: a path of byte strings (draft-37 §8.4.5.1).
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct ComponentId(pub Vec<Vec<u8>>);

impl fmt::Debug for ComponentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, seg) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "h'{}'", super::hex::encode(seg))?;
        }
        f.write_str("]")
    }
}

impl ComponentId {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self> {
        const W: &str = "SUIT_Component_Identifier";
        let n = r.array(W, MAX_COMPONENT_ID_SEGMENTS)?;
        let mut segs = Vec::with_capacity(n);
        for _ in 0..n {
            segs.push(r.bytes(W)?.to_vec());
        }
        Ok(ComponentId(segs))
    }
}

/// A vendor, class or device identifier: a 16-byte UUID (RFC 9562) as draft-37 §8.4.8.3
/// recommends, or any other byte string (kept raw rather than refused).
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Identifier {
    Uuid([u8; 16]),
    Raw(Vec<u8>),
}

impl Identifier {
    pub fn from_bytes(b: &[u8]) -> Self {
        match <[u8; 16]>::try_from(b) {
            Ok(u) => Identifier::Uuid(u),
            Err(_) => Identifier::Raw(b.to_vec()),
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Identifier::Uuid(u) => u,
            Identifier::Raw(b) => b,
        }
    }

    /// Parses the hyphenated UUID form `8-4-4-4-12`.
    pub fn parse_uuid(s: &str) -> Option<Self> {
        let groups: Vec<&str> = s.split('-').collect();
        let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
        if lens != [8, 4, 4, 4, 12] {
            return None;
        }
        let b = super::hex::decode(&groups.concat())?;
        <[u8; 16]>::try_from(b.as_slice()).ok().map(Identifier::Uuid)
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identifier::Uuid(u) => {
                let h = super::hex::encode(u);
                write!(f, "{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
            }
            Identifier::Raw(b) => write!(f, "h'{}'", super::hex::encode(b)),
        }
    }
}

impl fmt::Debug for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// One image a component may receive: per slot (try-each branch) when the manifest offers
/// several, else a single one with `slot: None`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Image {
    /// `component-slot` (draft-37) / `component-offset` (draft-09, a flash offset for RIOT).
    pub slot: Option<u64>,
    pub digest: Option<Digest>,
    pub size: Option<u64>,
    pub uri: Option<String>,
}

/// A component and what the manifest says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    pub id: ComponentId,
    pub vendor_id: Option<Identifier>,
    pub class_id: Option<Identifier>,
    /// Images in the order the manifest's slots first appear.
    pub images: Vec<Image>,
    /// Whether any sequence checks `condition-vendor-identifier` for this component.
    pub checks_vendor: bool,
    /// Whether any sequence checks `condition-class-identifier` for this component.
    pub checks_class: bool,
    /// Whether an install or payload-fetch sequence fetches into this component.
    pub fetched: bool,
}

/// State of an optional (possibly severable) manifest member.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Member {
    #[default]
    Absent,
    /// Inline in the manifest, or carried in the envelope and matching its digest.
    Present,
    /// Severed: the manifest keeps only its digest and the envelope does not carry it.
    Severed(Digest),
}

/// Which command sequences the manifest has.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Members {
    pub payload_fetch: Member,
    pub install: Member,
    pub text: Member,
    pub validate: bool,
    pub load: bool,
    pub invoke: bool,
}

/// The typed, authenticated content of a SUIT manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub format: Format,
    /// `manifest-sequence-number`: monotonic, compared for anti-rollback (REQ.SEC.SEQUENCE).
    pub sequence_number: u64,
    pub reference_uri: Option<String>,
    pub components: Vec<Component>,
    pub members: Members,
    /// Text per language (draft-09 has one, without a language tag).
    pub text: Vec<Text>,
}

impl Manifest {
    /// Decodes an encoded SUIT_Manifest (the content of envelope key 3). `severed` are the
    /// severable members found in the envelope (key, raw bstr item); each must match the
    /// digest the manifest keeps for it.
    ///
    /// Only for bytes already authenticated: [`super::Envelope::authenticate`] calls this.
    /// It is public so fuzzers and tools can reach the parser directly.
    pub fn decode(format: Format, bytes: &[u8], severed: &[(i64, &[u8])]) -> Result<Self> {
        if bytes.len() > super::limits::MAX_ENVELOPE_LEN {
            return Err(Error::TooLarge { what: WHAT, len: bytes.len(), max: super::limits::MAX_ENVELOPE_LEN });
        }
        let k = keys(format);
        let mut r = Reader::new(bytes);
        let mut version = None;
        let mut seq = None;
        let mut common = None;
        let mut reference_uri = None;
        let mut seqs = Sequences::default();
        let mut members = Members::default();
        let mut text_bytes = None;
        // At most MAX_MAP_MEMBERS keys: a fixed array, no allocation.
        let mut seen_keys = [0i64; MAX_MAP_MEMBERS];
        let n = r.map(WHAT, MAX_MAP_MEMBERS)?;
        for i in 0..n {
            let key = r.int_key(WHAT)?;
            if seen_keys[..i].contains(&key) {
                return Err(Error::DuplicateMember { what: WHAT, key });
            }
            seen_keys[i] = key;
            match key {
                1 => version = Some(r.u64("manifest-version")?),
                2 => seq = Some(r.u64("manifest-sequence-number")?),
                3 => common = Some(r.bytes(COMMON)?),
                4 => reference_uri = Some(r.str("reference-uri")?.to_owned()),
                _ if key == k.validate => {
                    seqs.validate = Some(r.bytes("validate")?);
                    members.validate = true;
                }
                _ if key == k.load => {
                    seqs.load = Some(r.bytes("load")?);
                    members.load = true;
                }
                _ if key == k.invoke => {
                    seqs.invoke = Some(r.bytes("invoke")?);
                    members.invoke = true;
                }
                _ if key == k.payload_fetch => {
                    let (m, b) = severable(&mut r, format, key, "payload-fetch", severed)?;
                    members.payload_fetch = m;
                    seqs.payload_fetch = b;
                }
                _ if key == k.install => {
                    let (m, b) = severable(&mut r, format, key, "install", severed)?;
                    members.install = m;
                    seqs.install = b;
                }
                _ if key == k.text => {
                    let (m, b) = severable(&mut r, format, key, "text", severed)?;
                    members.text = m;
                    text_bytes = b;
                }
                // draft-37 manifest-component-id (5): not used by ferry.
                5 if format == Format::Ietf => r.skip(WHAT)?,
                // draft-09 dependency-resolution (7) and coswid (14): severable, so their
                // digests are still checked, but their content is not used by ferry.
                7 | 14 if format == Format::Riot => {
                    severable(&mut r, format, key, "draft-09 severable member", severed)?;
                }
                _ => return Err(Error::UnknownMember { what: WHAT, key }),
            }
        }
        r.finish(WHAT)?;
        let seen = &seen_keys[..n];
        for (key, _) in severed {
            if !seen.contains(key) {
                return Err(Error::UnexpectedSeverableMember { key: *key });
            }
        }
        match version {
            Some(1) => {}
            Some(v) => return Err(Error::UnsupportedManifestVersion(v)),
            None => return Err(Error::MissingMember { what: WHAT, key: 1 }),
        }
        let sequence_number = seq.ok_or(Error::MissingMember { what: WHAT, key: 2 })?;
        let common = common.ok_or(Error::MissingMember { what: WHAT, key: 3 })?;
        let (ids, shared) = decode_exact(common, COMMON, |r| decode_common(r, format))?;
        seqs.shared = shared;

        let mut interp = Interpreter::new(format, ids.len());
        // The shared sequence runs first, then the update procedure, then invocation
        // (draft-37 §6.2): this order makes later parameter values win, as on a device.
        for s in seqs.in_order().into_iter().flatten() {
            interp.run_top(s)?;
        }
        let components = interp.finish(ids);
        let text = match text_bytes {
            Some(b) => Text::decode(b, format)?,
            None => Vec::new(),
        };
        Ok(Manifest { format, sequence_number, reference_uri, components, members, text })
    }

    /// Every payload URI in the manifest, in component and slot order, without repeats.
    pub fn uris(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for c in &self.components {
            for i in &c.images {
                if let Some(u) = i.uri.as_deref() {
                    if !out.contains(&u) {
                        out.push(u);
                    }
                }
            }
        }
        out
    }

    /// The `component-version` text for `id`, from the first language that has one.
    pub fn component_version(&self, id: &ComponentId) -> Option<&str> {
        self.text
            .iter()
            .flat_map(|t| t.components.iter())
            .find(|(c, t)| c == id && t.version.is_some())
            .and_then(|(_, t)| t.version.as_deref())
    }

    /// The component with identifier `id`.
    pub fn component(&self, id: &ComponentId) -> Option<&Component> {
        self.components.iter().find(|c| &c.id == id)
    }
}

/// The command sequences of one manifest, by role.
#[derive(Default)]
struct Sequences<'b> {
    shared: Option<&'b [u8]>,
    payload_fetch: Option<&'b [u8]>,
    install: Option<&'b [u8]>,
    validate: Option<&'b [u8]>,
    load: Option<&'b [u8]>,
    invoke: Option<&'b [u8]>,
}

impl<'b> Sequences<'b> {
    fn in_order(&self) -> [Option<&'b [u8]>; 6] {
        [self.shared, self.payload_fetch, self.install, self.validate, self.load, self.invoke]
    }
}

/// A severable member: the bstr inline, or a SUIT_Digest whose element may be in the envelope.
fn severable<'b>(
    r: &mut Reader<'b>,
    format: Format,
    key: i64,
    what: &'static str,
    severed: &[(i64, &'b [u8])],
) -> Result<(Member, Option<&'b [u8]>)> {
    use minicbor::data::Type;
    match r.peek(what)? {
        Type::Bytes => {
            if severed.iter().any(|(k, _)| *k == key) {
                return Err(Error::UnexpectedSeverableMember { key });
            }
            Ok((Member::Present, Some(r.bytes(what)?)))
        }
        _ => {
            let digest = Digest::decode(r, format)?;
            match severed.iter().find(|(k, _)| *k == key) {
                None => Ok((Member::Severed(digest), None)),
                Some((_, item)) => {
                    // The digest covers the bstr-wrapped element, header included.
                    if !digest.matches(item)? {
                        return Err(Error::DigestMismatch { what });
                    }
                    let content = decode_exact(item, what, |r| r.bytes(what))?;
                    Ok((Member::Present, Some(content)))
                }
            }
        }
    }
}

type Common<'b> = (Vec<ComponentId>, Option<&'b [u8]>);

fn decode_common<'b>(r: &mut Reader<'b>, format: Format) -> Result<Common<'b>> {
    let mut ids = None;
    let mut shared = None;
    let mut seen = [0i64; MAX_MAP_MEMBERS];
    for i in 0..r.map(COMMON, MAX_MAP_MEMBERS)? {
        let key = r.int_key(COMMON)?;
        if seen[..i].contains(&key) {
            return Err(Error::DuplicateMember { what: COMMON, key });
        }
        seen[i] = key;
        match key {
            2 => {
                let n = r.array("components", MAX_COMPONENTS)?;
                if n == 0 {
                    return Err(Error::Invalid {
                        what: "components",
                        reason: "must list at least one component".into(),
                    });
                }
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(ComponentId::decode(r)?);
                }
                ids = Some(v);
            }
            4 => shared = Some(r.bytes("shared-sequence")?),
            // draft-09 dependencies (1) and dependency-components (3): dependency manifests
            // are not supported by RIOT either; the member is skipped, not interpreted.
            1 | 3 if format == Format::Riot => r.skip(COMMON)?,
            _ => return Err(Error::UnknownMember { what: COMMON, key }),
        }
    }
    let ids = ids.ok_or(Error::MissingMember { what: COMMON, key: 2 })?;
    Ok((ids, shared))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifier_forms() {
        let v = Identifier::parse_uuid("547d0d74-6d3a-5a92-9662-4881afd9407b").unwrap();
        assert_eq!(v.to_string(), "547d0d74-6d3a-5a92-9662-4881afd9407b");
        assert_eq!(Identifier::from_bytes(v.as_bytes()), v);
        assert_eq!(Identifier::from_bytes(&[1, 2, 3]), Identifier::Raw(vec![1, 2, 3]));
        assert!(Identifier::parse_uuid("547d0d74-6d3a-5a92-9662").is_none());
    }

    #[test]
    fn minimal_manifest_and_errors() {
        // {1: 1, 2: 7, 3: << {2: [[h'00']]} >>}
        let ok = [0xa3, 0x01, 0x01, 0x02, 0x07, 0x03, 0x46, 0xa1, 0x02, 0x81, 0x81, 0x41, 0x00];
        let m = Manifest::decode(Format::Ietf, &ok, &[]).unwrap();
        assert_eq!(m.sequence_number, 7);
        assert_eq!(m.components.len(), 1);
        assert_eq!(m.components[0].id, ComponentId(vec![vec![0]]));
        assert_eq!(m.components[0].images, vec![Image::default()]);

        let mut v2 = ok;
        v2[2] = 0x02;
        assert_eq!(Manifest::decode(Format::Ietf, &v2, &[]), Err(Error::UnsupportedManifestVersion(2)));
        // unknown key 6
        let mut unk = ok;
        unk[3] = 0x06;
        assert_eq!(Manifest::decode(Format::Ietf, &unk, &[]), Err(Error::UnknownMember { what: WHAT, key: 6 }));
        // duplicate key 1
        let mut dup = ok;
        dup[3] = 0x01;
        assert_eq!(Manifest::decode(Format::Ietf, &dup, &[]), Err(Error::DuplicateMember { what: WHAT, key: 1 }));
    }
}
