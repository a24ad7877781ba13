//! SUIT manifests: parse, authenticate and build envelopes, in both encodings ferry meets.
//!
//! * **draft-ietf-suit-manifest-37** ([`Format::Ietf`]): tag 107, SUIT_Authentication =
//!   `[digest, * COSE_Sign1 with detached payload]`, severable members 16/20/23.
//! * **RIOT's draft-09** ([`Format::Riot`], suit-tool 0.0.2): untagged, COSE_Sign1 with the
//!   digest `[2, h'…']` attached, old key numbers (validate 10, install 9, text 13, ...).
//!
//! The encoding is told from the bytes ([`Envelope::parse`]). Nothing here does I/O.
//!
//! ```no_run
//! # use ferry::suit::{Envelope, PublicKey};
//! # fn f(bytes: &[u8], pem: &str) -> Result<(), ferry::suit::Error> {
//! let key = PublicKey::from_pem(pem)?;
//! let envelope = Envelope::parse(bytes)?;           // structure only
//! let ok = envelope.authenticate(&[key])?;          // digest + signatures, then the manifest
//! println!("seq {}", ok.manifest().sequence_number);
//! # Ok(()) }
//! ```
//!
//! Panic rule: no function in this module panics on any input bytes; every failure is an
//! [`Error`]. All loops and allocations are bounded by [`limits`] and by the input length.
//!
//! Threats (RFC 9124 / draft-ietf-suit-information-model): authentication before parsing
//! answers THREAT.IMG.NON_AUTH and THREAT.NET.ONPATH; digests of severable members answer
//! THREAT.MFST.MODIFICATION; the extracted sequence number, vendor/class IDs and URIs are what
//! the trust policy uses against THREAT.IMG.EXPIRED, THREAT.IMG.INCOMPATIBLE and
//! THREAT.NET.REDIRECT.

mod cbor;
pub mod command;
pub mod cose;
pub mod digest;
pub mod emit;
pub mod envelope;
pub mod error;
mod hex;
pub mod key;
pub mod manifest;
pub mod policy;
mod sequence;
pub mod text;

#[cfg(test)]
mod tests;

pub use command::{Command, Parameter};
pub use cose::CoseAlg;
pub use digest::{Digest, DigestAlg};
pub use envelope::{Authenticated, Envelope, Signature, Signer, SkipReason, SkippedBlock};
pub use error::{Error, Result};
pub use key::{KeyType, PublicKey, SigningKey};
pub use manifest::{Component, ComponentId, Identifier, Image, Manifest, Member};
pub use policy::{Accepted, Policy, Rejection, Threat};
pub use text::{ComponentText, Text};

/// Which SUIT encoding an envelope uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// draft-ietf-suit-manifest-37.
    Ietf,
    /// draft-ietf-suit-manifest-09, as RIOT OS and its suit-tool 0.0.2 encode it.
    Riot,
}

impl Format {
    /// Manifest keys that may be severed into the envelope.
    pub(crate) fn severable_keys(self) -> &'static [i64] {
        match self {
            // payload-fetch, install, text
            Format::Ietf => &[16, 20, 23],
            // dependency-resolution, payload-fetch, install, text, coswid
            Format::Riot => &[7, 8, 9, 13, 14],
        }
    }
}

/// Bounds on hostile input. Generous for real manifests (RIOT's must fit in 640 bytes).
pub mod limits {
    /// Largest envelope accepted.
    pub const MAX_ENVELOPE_LEN: usize = 64 * 1024;
    /// Deepest CBOR nesting skipped or walked.
    pub const MAX_DEPTH: usize = 16;
    /// Members of the envelope map (auth, manifest, severed, integrated payloads).
    pub const MAX_ENVELOPE_MEMBERS: usize = 16;
    /// Signature blocks per envelope.
    pub const MAX_SIGNATURES: usize = 8;
    /// Parameters in one COSE header map.
    pub const MAX_HEADER_PARAMS: usize = 16;
    /// Members of a manifest or common map.
    pub const MAX_MAP_MEMBERS: usize = 32;
    /// Components per manifest.
    pub const MAX_COMPONENTS: usize = 16;
    /// Segments of one component identifier.
    pub const MAX_COMPONENT_ID_SEGMENTS: usize = 8;
    /// Commands across all sequences of a manifest.
    pub const MAX_COMMANDS: usize = 512;
    /// Branches of one try-each.
    pub const MAX_TRY_EACH_BRANCHES: usize = 16;
    /// Nesting of try-each / run-sequence.
    pub const MAX_SEQUENCE_DEPTH: usize = 4;
    /// Parameters in one set/override-parameters map.
    pub const MAX_PARAMETERS: usize = 32;
    /// Languages and components in a text map.
    pub const MAX_TEXT_ENTRIES: usize = 32;
}
