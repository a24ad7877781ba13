//! Errors of the `suit` room: one variant per way an envelope, a manifest or a key can be wrong.
//!
//! Every message names the wire object (and, where it helps, the byte offset or map key) so an
//! operator reading the audit log can tell a truncated download from a forged signature.

use super::cose::CoseAlg;

/// Everything that can go wrong while parsing, authenticating or building a SUIT envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input is larger than we are willing to look at.
    #[error("{what} is {len} bytes, more than the limit of {max} bytes")]
    TooLarge { what: &'static str, len: usize, max: usize },
    /// The input ends in the middle of a CBOR item.
    #[error("{what} is truncated (input ends at byte {offset})")]
    Truncated { what: &'static str, offset: usize },
    /// The bytes are not the CBOR item this position requires.
    #[error("malformed {what} at byte {offset}: {reason}")]
    Malformed { what: &'static str, offset: usize, reason: String },
    /// Indefinite-length items are refused: SUIT uses deterministic CBOR and they defeat bounds.
    #[error("{what} at byte {offset} uses an indefinite length; SUIT requires definite lengths")]
    IndefiniteLength { what: &'static str, offset: usize },
    /// CBOR nesting deeper than [`super::limits::MAX_DEPTH`].
    #[error("{what} nests deeper than {max} levels")]
    TooDeep { what: &'static str, max: usize },
    /// More elements than a limit in [`super::limits`] allows.
    #[error("{what} has {count} entries, more than the limit of {max}")]
    TooMany { what: &'static str, count: u64, max: usize },
    /// Bytes follow a complete item that should have ended its container.
    #[error("{what} has {extra} unexpected trailing bytes at byte {offset}")]
    TrailingBytes { what: &'static str, offset: usize, extra: usize },
    /// A required map member is absent.
    #[error("{what} lacks required member {key}")]
    MissingMember { what: &'static str, key: i64 },
    /// A map member appears twice.
    #[error("{what} has member {key} twice")]
    DuplicateMember { what: &'static str, key: i64 },
    /// A map member that this encoding does not define (and we therefore cannot judge).
    #[error("{what} has unknown member {key}")]
    UnknownMember { what: &'static str, key: i64 },
    /// A value is well-formed CBOR but not allowed here.
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    /// The bytes are neither the draft-37 nor RIOT's draft-09 envelope layout.
    #[error("cannot tell the SUIT encoding: {0}")]
    UnknownFormat(&'static str),
    /// `manifest-version` is not 1.
    #[error("manifest-version {0} is not supported (only 1)")]
    UnsupportedManifestVersion(u64),
    /// A digest algorithm we cannot compute.
    #[error("digest algorithm {0} is not supported (only SHA-256)")]
    UnsupportedDigestAlgorithm(i64),
    /// A COSE structure other than COSE_Sign1 in the authentication wrapper.
    #[error("authentication block {index} is CBOR tag {tag}; only COSE_Sign1 (tag 18) is supported")]
    UnsupportedAuthenticationBlock { index: usize, tag: u64 },
    /// A COSE algorithm we do not verify.
    #[error("COSE algorithm {0} is not supported (use -8/-19 Ed25519 or -7/-9 P-256 ECDSA)")]
    UnsupportedAlgorithm(i64),
    /// The COSE header names critical parameters we do not understand.
    #[error("signature block {index} marks header parameters critical; none are understood")]
    CriticalHeader { index: usize },
    /// The manifest or a severable member does not hash to the digest that covers it.
    #[error("digest of {what} does not match the signed digest")]
    DigestMismatch { what: &'static str },
    /// A severable member in the envelope whose manifest slot holds no digest for it.
    #[error("envelope carries severable member {key} but the manifest has no digest for it")]
    UnexpectedSeverableMember { key: i64 },
    /// The only authentication blocks are COSE_Mac/Mac0, which ferry cannot check.
    #[error(
        "envelope is authenticated only by {blocks} MAC block(s): MAC-authenticated manifests need a shared key \
         ferry does not hold; refusing it"
    )]
    OnlyMac { blocks: usize },
    /// The envelope has no signature blocks at all.
    #[error("envelope has no signature blocks; refusing an unauthenticated manifest")]
    NoSignatures,
    /// The given key is of the wrong type for the block's algorithm.
    #[error("a {key} key cannot check a {alg} signature")]
    KeyMismatch { alg: CoseAlg, key: &'static str },
    /// The cryptographic check failed.
    #[error("signature block {index} does not verify")]
    BadSignature { index: usize },
    /// None of the given keys is of a type any signature block uses.
    #[error("none of the {keys} given keys can check any of the {signatures} signature blocks")]
    NoUsableKey { signatures: usize, keys: usize },
    /// A public or private key could not be read.
    #[error("invalid key: {0}")]
    InvalidKey(String),
}

/// Shorthand used throughout the room.
pub type Result<T, E = Error> = core::result::Result<T, E>;

impl Error {
    /// The RFC 9124 threat (IDs from draft-ietf-suit-information-model) this failure is
    /// evidence of, for the audit log; `None` for plain malformed or unsupported input.
    pub fn threat(&self) -> Option<&'static str> {
        match self {
            // Nothing vouches for the manifest: installing it would be THREAT.IMG.NON_AUTH.
            Error::NoSignatures
            | Error::OnlyMac { .. }
            | Error::BadSignature { .. }
            | Error::NoUsableKey { .. }
            | Error::KeyMismatch { .. } => Some("THREAT.IMG.NON_AUTH"),
            // Signed content changed after signing: an on-path modification.
            Error::DigestMismatch { .. } | Error::UnexpectedSeverableMember { .. } => Some("THREAT.NET.ONPATH"),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_is_wrong() {
        let e = Error::DigestMismatch { what: "install" };
        assert_eq!(e.to_string(), "digest of install does not match the signed digest");
        assert_eq!(e.threat(), Some("THREAT.NET.ONPATH"));
        let e = Error::TooMany { what: "components", count: 17, max: 16 };
        assert_eq!(e.to_string(), "components has 17 entries, more than the limit of 16");
        assert_eq!(e.threat(), None);
        assert_eq!(Error::BadSignature { index: 1 }.threat(), Some("THREAT.IMG.NON_AUTH"));
    }
}
