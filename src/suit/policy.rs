//! Trust policy: which authority may sign which component, with how many keys, and when.
//!
//! Built from the admin's `[[authority]]` entries (DESIGN.md §3 step 2, §7 "authority").
//! [`Policy::evaluate`] accepts an envelope only if, for **every component** its manifest
//! touches, an authority whose scope covers that component's (vendor ID, class ID,
//! component ID) signed it with at least its threshold of **distinct, currently valid** keys.
//! Anti-rollback (sequence numbers) needs the store and is the caller's: see
//! `crate::store::sequence`.
//!
//! Pure: time is an argument, and key files are read through a closure the caller passes.
//!
//! Every [`Rejection`] names the RFC 9124 threat it stops (IDs from
//! draft-ietf-suit-information-model), chosen as follows:
//!
//! | why rejected                                                        | threat                   |
//! |---------------------------------------------------------------------|--------------------------|
//! | no signature, or none verifies with a trusted key, threshold unmet  | THREAT.IMG.NON_AUTH      |
//! | signed content changed after signing (digest mismatch)              | THREAT.NET.ONPATH        |
//! | component without vendor/class IDs or without their conditions      | THREAT.IMG.INCOMPATIBLE  |
//! | no authority trusted for the component's vendor and class           | THREAT.IMG.INCOMPATIBLE  |
//! | vendor/class trusted, but the component ID is outside every scope   | THREAT.IMG.LOCATION      |
//! | signed only by an authority whose scope does not cover it           | THREAT.MFST.OVERRIDE     |
//! | signed only with keys outside their validity window (rotated out)   | THREAT.KEY.EXPOSURE      |
//! | image without digest, size or URI; RIOT limits exceeded             | THREAT.MFST.MODIFICATION |
//! | payload bytes that do not match the accepted digest                 | THREAT.IMG.REPLACE       |
//! | payload longer than the signed image size                           | THREAT.IMG.EXTRA         |
//! | sequence number not above the highest accepted (store)              | THREAT.IMG.EXPIRED       |
//! | older-than-latest update offered to a long-offline device (store)   | THREAT.IMG.EXPIRED.OFFLINE |

use core::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use sha1::{Digest as _, Sha1};

use super::digest::Digest;
use super::envelope::Envelope;
use super::error::Error;
use super::key::PublicKey;
use super::manifest::{ComponentId, Identifier, Manifest};
use super::Format;
use crate::config::{AuthorityConfig, AuthorityKey};

/// RIOT's manifest buffer (`SUIT_MANIFEST_BUFSIZE`).
pub const RIOT_MAX_MANIFEST: usize = 640;
/// RIOT's `CONFIG_SOCK_URLPATH_MAXLEN`: URIs must be shorter.
pub const RIOT_MAX_URI: usize = 128;

/// An RFC 9124 threat (IDs from draft-ietf-suit-information-model-13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Threat {
    ImgExpired,
    ImgExpiredOffline,
    ImgIncompatible,
    ImgLocation,
    ImgNonAuth,
    ImgReplace,
    ImgExtra,
    NetOnPath,
    NetRedirect,
    MfstOverride,
    MfstModification,
    KeyExposure,
}

impl Threat {
    pub fn id(self) -> &'static str {
        match self {
            Threat::ImgExpired => "THREAT.IMG.EXPIRED",
            Threat::ImgExpiredOffline => "THREAT.IMG.EXPIRED.OFFLINE",
            Threat::ImgIncompatible => "THREAT.IMG.INCOMPATIBLE",
            Threat::ImgLocation => "THREAT.IMG.LOCATION",
            Threat::ImgNonAuth => "THREAT.IMG.NON_AUTH",
            Threat::ImgReplace => "THREAT.IMG.REPLACE",
            Threat::ImgExtra => "THREAT.IMG.EXTRA",
            Threat::NetOnPath => "THREAT.NET.ONPATH",
            Threat::NetRedirect => "THREAT.NET.REDIRECT",
            Threat::MfstOverride => "THREAT.MFST.OVERRIDE",
            Threat::MfstModification => "THREAT.MFST.MODIFICATION",
            Threat::KeyExposure => "THREAT.KEY.EXPOSURE",
        }
    }

    fn from_id(id: &str) -> Option<Self> {
        [
            Threat::ImgExpired,
            Threat::ImgExpiredOffline,
            Threat::ImgIncompatible,
            Threat::ImgLocation,
            Threat::ImgNonAuth,
            Threat::ImgReplace,
            Threat::ImgExtra,
            Threat::NetOnPath,
            Threat::NetRedirect,
            Threat::MfstOverride,
            Threat::MfstModification,
            Threat::KeyExposure,
        ]
        .into_iter()
        .find(|t| t.id() == id)
    }
}

impl fmt::Display for Threat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// Why an envelope (or a payload, or a sequence number) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} ({threat})")]
pub struct Rejection {
    pub threat: Threat,
    pub reason: String,
}

impl Rejection {
    pub fn new(threat: Threat, reason: impl Into<String>) -> Self {
        Rejection { threat, reason: reason.into() }
    }

    /// From a failure of the envelope layer; unclassified failures of a manifest that would
    /// be deployed count as failing the pre-deployment check (REQ.SEC.MFST.CHECK).
    fn from_suit(e: &Error) -> Self {
        let threat = match e {
            Error::UnsupportedAlgorithm(_) => Threat::ImgNonAuth,
            _ => e.threat().and_then(Threat::from_id).unwrap_or(Threat::MfstModification),
        };
        Rejection::new(threat, e.to_string())
    }
}

/// Why the `[[authority]]` entries cannot become a policy. Messages name the entry and key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("authority `{authority}`: {message}")]
pub struct PolicyError {
    pub authority: String,
    pub message: String,
}

/// A vendor or class pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdPattern {
    Any,
    Exact(Identifier),
}

/// A component-ID pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentPattern {
    Any,
    Exact(ComponentId),
}

/// What one authority may sign. A component is covered when all three lists match it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub vendors: Vec<IdPattern>,
    pub classes: Vec<IdPattern>,
    pub components: Vec<ComponentPattern>,
}

fn id_matches(patterns: &[IdPattern], id: &Identifier) -> bool {
    patterns.iter().any(|p| match p {
        IdPattern::Any => true,
        IdPattern::Exact(x) => x == id,
    })
}

impl Scope {
    fn covers_vendor_class(&self, vendor: &Identifier, class: &Identifier) -> bool {
        id_matches(&self.vendors, vendor) && id_matches(&self.classes, class)
    }

    fn covers_component(&self, id: &ComponentId) -> bool {
        self.components.iter().any(|p| match p {
            ComponentPattern::Any => true,
            ComponentPattern::Exact(x) => x == id,
        })
    }
}

/// When a key may sign: `not_before <= now < not_after`, each bound optional.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Validity {
    pub not_before: Option<SystemTime>,
    pub not_after: Option<SystemTime>,
}

impl Validity {
    pub fn contains(&self, now: SystemTime) -> bool {
        self.not_before.is_none_or(|t| now >= t) && self.not_after.is_none_or(|t| now < t)
    }
}

/// A trusted key and its validity window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey {
    pub key: PublicKey,
    pub validity: Validity,
}

/// A signer and what it may sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    pub name: String,
    pub keys: Vec<TrustedKey>,
    /// Distinct valid keys needed.
    pub threshold: usize,
    pub scope: Scope,
}

/// All authorities the gateway trusts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    authorities: Vec<Authority>,
    /// Every key of every authority, flattened once for `authenticate`.
    keys: Vec<PublicKey>,
    /// `owners[i]`: (authority, key) index of `keys[i]`.
    owners: Vec<(usize, usize)>,
}

/// One component of an accepted manifest and who vouched for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedComponent {
    pub id: ComponentId,
    pub vendor_id: Identifier,
    pub class_id: Identifier,
    /// The authority whose threshold was met.
    pub authority: String,
    /// How many distinct valid keys of that authority signed.
    pub keys: usize,
}

/// An envelope the policy accepted. Owns a copy of the bytes it judged, so what is later
/// cached and served is exactly what was checked (THREAT.MFST.TOCTOU).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    envelope: Vec<u8>,
    manifest: Manifest,
    components: Vec<AcceptedComponent>,
}

impl Accepted {
    pub fn envelope_bytes(&self) -> &[u8] {
        &self.envelope
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn format(&self) -> Format {
        self.manifest.format
    }

    pub fn sequence_number(&self) -> u64 {
        self.manifest.sequence_number
    }

    pub fn components(&self) -> &[AcceptedComponent] {
        &self.components
    }

    /// Checks payload bytes fetched for `uri` against the signed size and digest before they
    /// are cached or served. Only URIs the signed manifest names are accepted at all
    /// (THREAT.NET.REDIRECT).
    pub fn check_payload(&self, uri: &str, payload: &[u8]) -> Result<(), Rejection> {
        let images: Vec<_> = self
            .manifest
            .components
            .iter()
            .flat_map(|c| c.images.iter())
            .filter(|i| i.uri.as_deref() == Some(uri))
            .collect();
        if images.is_empty() {
            return Err(Rejection::new(
                Threat::NetRedirect,
                format!("{uri} is not a payload URI of the signed manifest; serve only the URIs it names"),
            ));
        }
        let mut last = None;
        for image in images {
            let (Some(size), Some(digest)) = (image.size, image.digest.as_ref()) else { continue };
            let len = payload.len() as u64;
            if len > size {
                last = Some(Rejection::new(
                    Threat::ImgExtra,
                    format!("payload {uri} has {len} bytes, more than the signed image size {size}"),
                ));
                continue;
            }
            match digest.matches(payload) {
                Ok(true) if len == size => return Ok(()),
                Ok(_) => {
                    last = Some(Rejection::new(
                        Threat::ImgReplace,
                        format!(
                            "payload {uri} ({len} bytes) does not match the signed digest and size; fetch it again"
                        ),
                    ))
                }
                Err(e) => last = Some(Rejection::new(Threat::ImgReplace, e.to_string())),
            }
        }
        Err(last.unwrap_or_else(|| {
            Rejection::new(Threat::MfstModification, format!("the manifest gives {uri} no digest and size"))
        }))
    }
}

impl Policy {
    pub fn new(authorities: Vec<Authority>) -> Self {
        let mut keys = Vec::new();
        let mut owners = Vec::new();
        for (ai, a) in authorities.iter().enumerate() {
            for (ki, k) in a.keys.iter().enumerate() {
                keys.push(k.key.clone());
                owners.push((ai, ki));
            }
        }
        Policy { authorities, keys, owners }
    }

    pub fn authorities(&self) -> &[Authority] {
        &self.authorities
    }

    /// Builds the policy from `[[authority]]` entries. `read` loads key files (the caller does
    /// the I/O, normally `std::fs::read_to_string`); strings that are keys themselves (hex,
    /// base64, inline PEM) are not read.
    pub fn from_config(
        authorities: &[AuthorityConfig],
        read: impl Fn(&Path) -> std::io::Result<String>,
    ) -> Result<Self, PolicyError> {
        let mut out = Vec::with_capacity(authorities.len());
        for a in authorities {
            let err = |message: String| PolicyError { authority: a.name.clone(), message };
            let mut keys = Vec::with_capacity(a.keys.len());
            for (i, entry) in a.keys.iter().enumerate() {
                let key = load_key(entry.key(), &read).map_err(|m| err(format!("keys[{i}]: {m}")))?;
                let validity = validity(entry).map_err(|m| err(format!("keys[{i}]: {m}")))?;
                keys.push(TrustedKey { key, validity });
            }
            let distinct = distinct_keys(keys.iter().map(|k| &k.key));
            if a.threshold == 0 || a.threshold > distinct {
                return Err(err(format!(
                    "threshold {} needs that many distinct keys, but {distinct} distinct keys are listed",
                    a.threshold
                )));
            }
            let scope = scope(&a.scope).map_err(err)?;
            out.push(Authority { name: a.name.clone(), keys, threshold: a.threshold, scope });
        }
        Ok(Policy::new(out))
    }

    /// Judges `envelope` at time `now`. See the module doc for which threat each refusal names.
    pub fn evaluate(&self, envelope: &Envelope<'_>, now: SystemTime) -> Result<Accepted, Rejection> {
        if self.keys.is_empty() {
            return Err(Rejection::new(
                Threat::ImgNonAuth,
                "no [[authority]] is configured, so nothing can be trusted",
            ));
        }
        let auth = envelope.authenticate(&self.keys).map_err(|e| Rejection::from_suit(&e))?;
        let manifest = auth.manifest();
        check_deployable(envelope, manifest)?;

        // Who signed: (authority, key) pairs, whatever their validity.
        let signed = Signed { signers: auth.signers(), owners: &self.owners };

        let mut components = Vec::with_capacity(manifest.components.len());
        for c in &manifest.components {
            let (Some(vendor), Some(class)) = (&c.vendor_id, &c.class_id) else {
                return Err(Rejection::new(
                    Threat::ImgIncompatible,
                    format!("component {:?} sets no vendor and class ID, so any device would take it", c.id),
                ));
            };
            if !(c.checks_vendor && c.checks_class) {
                return Err(Rejection::new(
                    Threat::ImgIncompatible,
                    format!(
                        "component {:?} does not check its vendor and class IDs on the device; the author must \
                         add condition-vendor-identifier and condition-class-identifier",
                        c.id
                    ),
                ));
            }
            components.push(self.judge_component(&c.id, vendor, class, signed, now)?);
        }
        Ok(Accepted { envelope: envelope.as_bytes().to_vec(), manifest: auth.into_manifest(), components })
    }

    fn judge_component(
        &self,
        id: &ComponentId,
        vendor: &Identifier,
        class: &Identifier,
        signed: Signed<'_>,
        now: SystemTime,
    ) -> Result<AcceptedComponent, Rejection> {
        // Only refusals need the text; accepting builds no strings.
        let what = || format!("component {id:?} (vendor {vendor}, class {class})");
        let covers = |ai: &usize| {
            let s = &self.authorities[*ai].scope;
            s.covers_vendor_class(vendor, class) && s.covers_component(id)
        };
        for ai in (0..self.authorities.len()).filter(covers) {
            let a = &self.authorities[ai];
            let valid = signed
                .pairs()
                .filter(|(sa, _)| *sa == ai)
                .filter_map(|(_, ki)| a.keys.get(ki))
                .filter(|k| k.validity.contains(now))
                .map(|k| &k.key);
            // The same key listed twice, or signing twice, counts once.
            let n = distinct_keys(valid);
            if n >= a.threshold {
                return Ok(AcceptedComponent {
                    id: id.clone(),
                    vendor_id: vendor.clone(),
                    class_id: class.clone(),
                    authority: a.name.clone(),
                    keys: n,
                });
            }
        }
        let what = what();
        let covering: Vec<usize> = (0..self.authorities.len()).filter(covers).collect();
        if covering.is_empty() {
            let vc = self.authorities.iter().any(|a| a.scope.covers_vendor_class(vendor, class));
            return Err(if vc {
                Rejection::new(
                    Threat::ImgLocation,
                    format!("{what}: no authority for this vendor and class may write this component"),
                )
            } else {
                Rejection::new(
                    Threat::ImgIncompatible,
                    format!("{what}: no [[authority]] is trusted for this vendor and class"),
                )
            });
        }
        let mut expired = Vec::new();
        let mut short = Vec::new();
        for &ai in &covering {
            let a = &self.authorities[ai];
            let mut valid: Vec<&PublicKey> = Vec::new();
            for (sa, ki) in signed.pairs().filter(|(sa, _)| *sa == ai) {
                let Some(k) = self.authorities.get(sa).and_then(|a| a.keys.get(ki)) else { continue };
                if k.validity.contains(now) {
                    valid.push(&k.key);
                } else {
                    expired.push(format!("{}'s key {}", a.name, ki));
                }
            }
            // The same key listed twice, or signing twice, counts once.
            let n = distinct_keys(valid.into_iter());
            if n >= a.threshold {
                return Ok(AcceptedComponent {
                    id: id.clone(),
                    vendor_id: vendor.clone(),
                    class_id: class.clone(),
                    authority: a.name.clone(),
                    keys: n,
                });
            }
            if n > 0 {
                short.push(format!("`{}` signed with {n} of the {} distinct keys it needs", a.name, a.threshold));
            }
        }
        let names: Vec<&str> = covering.iter().map(|&ai| self.authorities[ai].name.as_str()).collect();
        if !expired.is_empty() {
            return Err(Rejection::new(
                Threat::KeyExposure,
                format!(
                    "{what}: signed with {}, outside its validity window (rotated out or not yet in); re-sign with a current key",
                    expired.join(", ")
                ),
            ));
        }
        if !short.is_empty() {
            return Err(Rejection::new(Threat::ImgNonAuth, format!("{what}: {}", short.join("; "))));
        }
        let outsiders: Vec<&str> = signed
            .pairs()
            .map(|(sa, _)| self.authorities[sa].name.as_str())
            .filter(|n| !names.contains(n))
            .fold(Vec::new(), |mut v, n| {
                if !v.contains(&n) {
                    v.push(n);
                }
                v
            });
        if !outsiders.is_empty() {
            return Err(Rejection::new(
                Threat::MfstOverride,
                format!(
                    "{what}: signed by `{}`, whose scope does not cover it; only `{}` may sign it",
                    outsiders.join("`, `"),
                    names.join("`, `")
                ),
            ));
        }
        Err(Rejection::new(Threat::ImgNonAuth, format!("{what}: not signed by `{}`", names.join("`, `"))))
    }
}

/// Who signed, as (authority, key) pairs, read from the signers without collecting them.
#[derive(Clone, Copy)]
struct Signed<'a> {
    signers: &'a [super::Signer],
    owners: &'a [(usize, usize)],
}

impl<'a> Signed<'a> {
    fn pairs(self) -> impl Iterator<Item = (usize, usize)> + Clone + 'a {
        self.signers.iter().filter_map(move |s| self.owners.get(s.key).copied())
    }
}

/// Pre-deployment checks on an authenticated manifest (REQ.SEC.MFST.CHECK): every image a
/// device would fetch is bound by digest and size to a URI, and RIOT's limits hold.
fn check_deployable(envelope: &Envelope<'_>, manifest: &Manifest) -> Result<(), Rejection> {
    let bad = |m: String| Err(Rejection::new(Threat::MfstModification, m));
    if envelope.format() == Format::Riot && envelope.as_bytes().len() > RIOT_MAX_MANIFEST {
        return bad(format!(
            "the RIOT envelope has {} bytes; RIOT devices hold at most {RIOT_MAX_MANIFEST}",
            envelope.as_bytes().len()
        ));
    }
    if envelope.format() == Format::Riot {
        if let Some(s) = envelope.signatures().iter().find(|s| s.alg() != super::CoseAlg::EdDsa) {
            return bad(format!(
                "signature block {} of a RIOT envelope uses {}; RIOT devices verify EdDSA (-8) only",
                s.index(),
                s.alg()
            ));
        }
    }
    for c in manifest.components.iter().filter(|c| c.fetched) {
        for image in &c.images {
            // Text for refusals only.
            let slot = || image.slot.map_or(String::new(), |s| format!(" slot {s}"));
            let Some(uri) = &image.uri else {
                return bad(format!("component {:?}{} is fetched but has no URI", c.id, slot()));
            };
            if image.digest.is_none() || image.size.is_none() {
                return bad(format!(
                    "component {:?}{} ({uri}) lacks an image digest or size, so the payload is not bound to the signature",
                    c.id,
                    slot()
                ));
            }
            if envelope.format() == Format::Riot && uri.len() >= RIOT_MAX_URI {
                return bad(format!("URI {uri} has {} bytes; RIOT devices need fewer than {RIOT_MAX_URI}", uri.len()));
            }
        }
    }
    Ok(())
}

fn distinct_keys<'a>(keys: impl Iterator<Item = &'a PublicKey> + Clone) -> usize {
    // Quadratic but allocation-free: a handful of signers at most.
    keys.clone().enumerate().filter(|(i, k)| !keys.clone().take(*i).any(|earlier| earlier == *k)).count()
}

/// Parses a key written inline: raw Ed25519 or SEC1 P-256 in hex or base64, or PEM
/// SubjectPublicKeyInfo. `None` means the text is not a key (so it names a file).
pub fn parse_inline_key(text: &str) -> Option<PublicKey> {
    let t = text.trim();
    if t.starts_with("-----BEGIN") {
        return PublicKey::from_pem(t).ok();
    }
    if let Ok(k) = PublicKey::from_hex(t) {
        return Some(k);
    }
    use base64ct::Encoding as _;
    let raw = base64ct::Base64::decode_vec(t).ok()?;
    match raw.len() {
        32 => PublicKey::ed25519_from_bytes(&raw).ok(),
        33 | 65 => PublicKey::p256_from_sec1(&raw).ok(),
        _ => None,
    }
}

fn load_key(text: &str, read: &impl Fn(&Path) -> std::io::Result<String>) -> Result<PublicKey, String> {
    if let Some(k) = parse_inline_key(text) {
        return Ok(k);
    }
    let t = text.trim();
    if t.starts_with("-----BEGIN") {
        return Err("inline PEM is not an Ed25519 or P-256 SubjectPublicKeyInfo (BEGIN PUBLIC KEY)".into());
    }
    let path = Path::new(t);
    let content = read(path)
        .map_err(|e| format!("`{t}` is not a hex, base64 or PEM key, and reading it as a key file failed: {e}"))?;
    parse_inline_key(&content).ok_or_else(|| {
        format!(
            "{} holds no Ed25519 or P-256 public key; give a PEM SubjectPublicKeyInfo \
             (`openssl pkey -pubout`, or the .pub file `ferry keygen` writes)",
            path.display()
        )
    })
}

fn validity(entry: &AuthorityKey) -> Result<Validity, String> {
    let conv = |t: Option<&toml::value::Datetime>| t.map(datetime_to_system_time).transpose();
    Ok(Validity { not_before: conv(entry.not_before())?, not_after: conv(entry.not_after())? })
}

/// An RFC 3339 date-time with an offset (TOML offset date-time) as a `SystemTime`.
pub fn datetime_to_system_time(t: &toml::value::Datetime) -> Result<SystemTime, String> {
    use toml::value::Offset;
    let (Some(date), Some(time), Some(offset)) = (t.date, t.time, t.offset) else {
        return Err(format!("`{t}` needs a date, a time and an offset, e.g. 2027-01-01T00:00:00Z"));
    };
    let days = days_from_civil(i64::from(date.year), i64::from(date.month), i64::from(date.day));
    let offset_s = match offset {
        Offset::Z => 0,
        Offset::Custom { minutes } => i64::from(minutes) * 60,
    };
    let secs =
        days * 86_400 + i64::from(time.hour) * 3600 + i64::from(time.minute) * 60 + i64::from(time.second) - offset_s;
    let secs = u64::try_from(secs).map_err(|_| format!("`{t}` is before 1970"))?;
    Ok(SystemTime::UNIX_EPOCH + Duration::new(secs, time.nanosecond))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// RFC 4122 §4.3 name-based UUID with SHA-1 (version 5).
pub fn uuid5(namespace: &[u8; 16], name: &[u8]) -> [u8; 16] {
    let mut h = Sha1::new();
    h.update(namespace);
    h.update(name);
    let hash = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&hash[..16]);
    out[6] = (out[6] & 0x0f) | 0x50;
    out[8] = (out[8] & 0x3f) | 0x80;
    out
}

/// RFC 4122 Appendix C NameSpace_DNS.
pub const NAMESPACE_DNS: [u8; 16] =
    [0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8];

/// Vendor ID from a domain, as RIOT's `gen_manifest.py` and draft-37 derive it:
/// UUIDv5(NAMESPACE_DNS, domain).
pub fn vendor_uuid(domain: &str) -> Identifier {
    Identifier::Uuid(uuid5(&NAMESPACE_DNS, domain.as_bytes()))
}

/// Class ID from a class name (RIOT: the board name): UUIDv5(vendor UUID, name).
pub fn class_uuid(vendor: &Identifier, name: &str) -> Identifier {
    let mut ns = [0u8; 16];
    let b = vendor.as_bytes();
    if b.len() == 16 {
        ns.copy_from_slice(b);
    }
    Identifier::Uuid(uuid5(&ns, name.as_bytes()))
}

/// A UUID written as `8-4-4-4-12` or as 32 hex digits (RIOT's template JSON).
pub fn parse_uuid(text: &str) -> Option<Identifier> {
    let t = text.trim();
    if let Some(id) = Identifier::parse_uuid(t) {
        return Some(id);
    }
    if t.len() == 32 {
        let b = super::hex::decode(t)?;
        return <[u8; 16]>::try_from(b.as_slice()).ok().map(Identifier::Uuid);
    }
    None
}

/// A vendor given as a UUID or as a domain name.
pub fn vendor_id(text: &str) -> Identifier {
    parse_uuid(text).unwrap_or_else(|| vendor_uuid(text.trim()))
}

/// A class given as a UUID or as a name under `vendor`.
pub fn class_id(vendor: &Identifier, text: &str) -> Identifier {
    parse_uuid(text).unwrap_or_else(|| class_uuid(vendor, text.trim()))
}

/// A component ID written as hex segments joined by `/` (`00`, `00/1a2b`), or in CBOR
/// diagnostic form (`[h'00', h'1a2b']`).
pub fn parse_component_id(text: &str) -> Option<ComponentId> {
    let t = text.trim();
    if let Some(inner) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        if inner.trim().is_empty() {
            return Some(ComponentId(Vec::new()));
        }
        let segs = inner
            .split(',')
            .map(|s| s.trim().strip_prefix("h'").and_then(|r| r.strip_suffix('\'')).and_then(super::hex::decode))
            .collect::<Option<Vec<_>>>()?;
        return Some(ComponentId(segs));
    }
    if t.is_empty() {
        return None;
    }
    t.split('/').map(super::hex::decode).collect::<Option<Vec<_>>>().map(ComponentId)
}

fn scope(cfg: &crate::config::ScopeConfig) -> Result<Scope, String> {
    let empty =
        |field: &str| format!("scope.{field} is empty; list what this authority may sign, or \"*\" for anything");
    if cfg.vendor_ids.is_empty() {
        return Err(empty("vendor_ids"));
    }
    if cfg.class_ids.is_empty() {
        return Err(empty("class_ids"));
    }
    if cfg.component_ids.is_empty() {
        return Err(empty("component_ids"));
    }
    let vendors: Vec<IdPattern> = cfg
        .vendor_ids
        .iter()
        .map(|v| if v.trim() == "*" { IdPattern::Any } else { IdPattern::Exact(vendor_id(v)) })
        .collect();
    let named: Vec<&Identifier> = vendors
        .iter()
        .filter_map(|v| match v {
            IdPattern::Exact(id) => Some(id),
            IdPattern::Any => None,
        })
        .collect();
    let mut classes = Vec::new();
    for c in &cfg.class_ids {
        if c.trim() == "*" {
            classes.push(IdPattern::Any);
        } else if let Some(id) = parse_uuid(c) {
            classes.push(IdPattern::Exact(id));
        } else if named.is_empty() {
            return Err(format!(
                "scope.class_ids: class name `{c}` is derived from a vendor UUID, but vendor_ids is \"*\"; \
                 write the class UUID instead, or list the vendor"
            ));
        } else {
            // A class name means that class under each listed vendor.
            for v in &named {
                classes.push(IdPattern::Exact(class_uuid(v, c.trim())));
            }
        }
    }
    let components = cfg
        .component_ids
        .iter()
        .map(|c| {
            if c.trim() == "*" {
                Ok(ComponentPattern::Any)
            } else {
                parse_component_id(c).map(ComponentPattern::Exact).ok_or_else(|| {
                    format!("scope.component_ids: `{c}` is not a component ID; write hex segments joined by `/`, e.g. \"00\"")
                })
            }
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Scope { vendors, classes, components })
}

/// The digest of an image, for callers that key caches by it.
pub fn image_digests(manifest: &Manifest) -> Vec<(&str, &Digest)> {
    manifest
        .components
        .iter()
        .flat_map(|c| c.images.iter())
        .filter_map(|i| Some((i.uri.as_deref()?, i.digest.as_ref()?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_match_riot_and_the_draft() {
        let riot = vendor_uuid("riot-os.org");
        assert_eq!(riot.to_string(), "547d0d74-6d3a-5a92-9662-4881afd9407b");
        assert_eq!(class_uuid(&riot, "samr21-xpro").to_string(), "8818989e-a257-5994-ac9a-554b77898083");
        assert_eq!(class_uuid(&riot, "native").to_string(), "bcc90984-fe7d-562b-b4c9-a24f26a3a9cd");
        assert_eq!(class_uuid(&riot, "nrf52840dk").to_string(), "00c72996-412f-5202-be93-8f1473a2309c");
        assert_eq!(vendor_uuid("arm.com").to_string(), "fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe");
        assert_eq!(vendor_id("547d0d746d3a5a9296624881afd9407b"), riot);
        assert_eq!(class_id(&riot, "8818989e-a257-5994-ac9a-554b77898083"), class_uuid(&riot, "samr21-xpro"));
    }

    #[test]
    fn component_ids_and_times_parse() {
        assert_eq!(parse_component_id("00"), Some(ComponentId(vec![vec![0]])));
        assert_eq!(parse_component_id("00/0102"), Some(ComponentId(vec![vec![0], vec![1, 2]])));
        assert_eq!(parse_component_id("[h'00', h'0102']"), Some(ComponentId(vec![vec![0], vec![1, 2]])));
        assert_eq!(parse_component_id("zz"), None);
        let t: toml::value::Datetime = "2027-01-01T00:00:00Z".parse().unwrap();
        let st = datetime_to_system_time(&t).unwrap();
        assert_eq!(st.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(), 1_798_761_600);
        let plus: toml::value::Datetime = "2027-01-01T01:00:00+01:00".parse().unwrap();
        assert_eq!(datetime_to_system_time(&plus).unwrap(), st);
        let local: toml::value::Datetime = "2027-01-01T00:00:00".parse().unwrap();
        assert!(datetime_to_system_time(&local).is_err());
    }

    #[test]
    fn inline_keys_in_every_form() {
        let hex = include_str!("testdata/test_ed25519_public.raw.hex");
        let pem = include_str!("testdata/test_ed25519_public.pem");
        let a = parse_inline_key(hex).unwrap();
        assert_eq!(parse_inline_key(pem), Some(a.clone()));
        use base64ct::Encoding as _;
        let b64 = base64ct::Base64::encode_string(&a.to_bytes());
        assert_eq!(parse_inline_key(&b64), Some(a));
        assert_eq!(parse_inline_key("keys/vendor.pem"), None);
    }
}
