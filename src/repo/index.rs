//! The signed repository index, `ferry-index.cbor` at a repository's root.
//!
//! A COSE_Sign1 (RFC 9052, tag 18, payload attached) signed by the repository's `index_key`
//! (EdDSA -8 for Ed25519 keys, ES256 -7 for P-256), whose payload is the CBOR map
//!
//! ```text
//! Index = {
//!   1 => uint,          ; version: never lower than the last one accepted (rollback)
//!   2 => uint,          ; expires: Unix seconds; refused after it (freeze), like TUF's timestamp
//!   3 => [* Entry],     ; the manifests on offer
//! }
//! Entry = {
//!   1 => tstr,          ; path of the envelope, relative to the repository root ("a/riot.suit.3.bin")
//!   2 => bstr .size 32, ; SHA-256 of the envelope file
//!   3 => uint,          ; its size in bytes
//! }
//! ```
//!
//! Unknown map keys are skipped (newer writers may add some). The index only says *which*
//! envelopes to fetch and pins their bytes; each envelope is still verified on its own, and
//! payloads are checked against the digests and sizes its signed manifest carries. A payload
//! is fetched from the manifest's folder in the repository, under the last path segment of
//! its image URI (the RIOT layout: the URI names the gateway, the file sits beside the
//! manifest).

use minicbor::data::Type;
use minicbor::{Decoder, Encoder};

use super::cache::BlobDigest;
use crate::suit::cose::{sig_structure, CoseSign1};
use crate::suit::{CoseAlg, KeyType, PublicKey, SigningKey};

/// The index's file name at the repository root.
pub const INDEX_FILE: &str = "ferry-index.cbor";
/// Largest index accepted.
pub const MAX_INDEX_LEN: usize = 256 * 1024;
/// Most entries in one index.
pub const MAX_ENTRIES: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub path: String,
    pub digest: BlobDigest,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    pub version: u64,
    pub expires_unix_s: i64,
    pub entries: Vec<IndexEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    #[error("index is malformed: {0}; regenerate it with `ferry repo index`")]
    Malformed(String),
    #[error("index signature does not verify with the repository's index_key: {0}")]
    BadSignature(String),
    #[error(
        "index expired at {expires} (now {now}); the repository must re-sign it with \
         `ferry repo index --expires` (an old index may be an attacker freezing updates)"
    )]
    Expired { expires: jiff::Timestamp, now: jiff::Timestamp },
    #[error(
        "index version {got} is lower than version {seen} accepted before; refused as a rollback. \
         The repository must publish a version >= {seen}"
    )]
    Rollback { got: u64, seen: u64 },
    #[error("index entry path `{0}` must be relative, without `..`, `\\` or empty segments")]
    BadPath(String),
}

impl IndexError {
    /// The RFC 9124 threat a refused index is evidence of.
    pub fn threat(&self) -> Option<&'static str> {
        match self {
            IndexError::BadSignature(_) => Some("THREAT.IMG.NON_AUTH"),
            // A stale index keeps devices from learning of fixes: an on-path attacker
            // dropping (freezing) updates.
            IndexError::Expired { .. } => Some("THREAT.NET.ONPATH"),
            IndexError::Rollback { .. } => Some("THREAT.IMG.EXPIRED"),
            _ => None,
        }
    }
}

fn malformed(e: impl std::fmt::Display) -> IndexError {
    IndexError::Malformed(e.to_string())
}

/// Paths come from the network: keep them inside the repository.
pub fn check_path(path: &str) -> Result<(), IndexError> {
    let bad = path.is_empty()
        || path.starts_with('/')
        || path.contains('\\')
        || path.split('/').any(|s| s.is_empty() || s == "." || s == "..");
    if bad {
        return Err(IndexError::BadPath(path.to_owned()));
    }
    Ok(())
}

impl Index {
    /// The CBOR payload (unsigned).
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new(Vec::new());
        // Writing into a Vec cannot fail.
        let _ = e.map(3).and_then(|e| e.u8(1)).and_then(|e| e.u64(self.version));
        let _ = e.u8(2).and_then(|e| e.u64(self.expires_unix_s.max(0) as u64));
        let _ = e.u8(3).and_then(|e| e.array(self.entries.len() as u64));
        for entry in &self.entries {
            let _ = e
                .map(3)
                .and_then(|e| e.u8(1))
                .and_then(|e| e.str(&entry.path))
                .and_then(|e| e.u8(2))
                .and_then(|e| e.bytes(&entry.digest.0))
                .and_then(|e| e.u8(3))
                .and_then(|e| e.u64(entry.size));
        }
        e.into_writer()
    }

    /// Decodes the payload (structure only).
    pub fn decode(bytes: &[u8]) -> Result<Index, IndexError> {
        let mut d = Decoder::new(bytes);
        let n = d.map().map_err(malformed)?.ok_or_else(|| malformed("indefinite map"))?;
        let (mut version, mut expires, mut entries) = (None, None, None);
        for _ in 0..n.min(64) {
            match d.u64().map_err(malformed)? {
                1 => version = Some(d.u64().map_err(malformed)?),
                2 => expires = Some(d.u64().map_err(malformed)?),
                3 => entries = Some(decode_entries(&mut d)?),
                _ => d.skip().map_err(malformed)?,
            }
        }
        if n > 64 || d.position() != bytes.len() {
            return Err(malformed("trailing or too many members"));
        }
        let expires = expires.ok_or_else(|| malformed("missing expires (2)"))?;
        Ok(Index {
            version: version.ok_or_else(|| malformed("missing version (1)"))?,
            expires_unix_s: i64::try_from(expires).map_err(malformed)?,
            entries: entries.ok_or_else(|| malformed("missing entries (3)"))?,
        })
    }

    /// Signs the payload into a COSE_Sign1.
    pub fn sign(&self, key: &SigningKey) -> Result<Vec<u8>, crate::suit::Error> {
        let alg = match key.key_type() {
            KeyType::Ed25519 => CoseAlg::EdDsa,
            KeyType::P256 => CoseAlg::Es256,
        };
        CoseSign1::sign(key, alg, &self.encode(), true)
    }

    /// Verifies a signed index: signature by `key`, not expired at `now`, version not below
    /// `seen` (the highest accepted before).
    pub fn verify(bytes: &[u8], key: &PublicKey, now: jiff::Timestamp, seen: Option<u64>) -> Result<Index, IndexError> {
        if bytes.len() > MAX_INDEX_LEN {
            return Err(malformed(format!("{} bytes, more than {MAX_INDEX_LEN}", bytes.len())));
        }
        let cose = CoseSign1::decode(bytes, 0).map_err(malformed)?;
        let payload = cose.payload.ok_or_else(|| malformed("payload must be attached"))?;
        key.verify(cose.alg, &sig_structure(cose.protected, payload), cose.signature, 0)
            .map_err(|e| IndexError::BadSignature(e.to_string()))?;
        // Only now is the payload trusted enough to parse.
        let index = Index::decode(payload)?;
        // The store keeps the highest version seen in a signed SQLite integer.
        if index.version > i64::MAX as u64 {
            return Err(malformed(format!(
                "version {} is above {}, which the store cannot keep",
                index.version,
                i64::MAX
            )));
        }
        let expires = jiff::Timestamp::from_second(index.expires_unix_s).map_err(malformed)?;
        if expires <= now {
            return Err(IndexError::Expired { expires, now });
        }
        if let Some(seen) = seen {
            if index.version < seen {
                return Err(IndexError::Rollback { got: index.version, seen });
            }
        }
        Ok(index)
    }

    /// Reads the version of an index without verifying it (`ferry repo index` picks the next).
    pub fn peek_version(bytes: &[u8]) -> Option<u64> {
        let cose = CoseSign1::decode(bytes, 0).ok()?;
        Index::decode(cose.payload?).ok().map(|i| i.version)
    }
}

fn decode_entries(d: &mut Decoder<'_>) -> Result<Vec<IndexEntry>, IndexError> {
    let n = d.array().map_err(malformed)?.ok_or_else(|| malformed("indefinite entries"))?;
    if n as usize > MAX_ENTRIES {
        return Err(malformed(format!("{n} entries, more than {MAX_ENTRIES}")));
    }
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let m = d.map().map_err(malformed)?.ok_or_else(|| malformed("indefinite entry"))?;
        if m > 16 {
            return Err(malformed("entry has too many members"));
        }
        let (mut path, mut digest, mut size) = (None, None, None);
        for _ in 0..m {
            match d.u64().map_err(malformed)? {
                1 => path = Some(d.str().map_err(malformed)?.to_owned()),
                2 => {
                    if d.datatype().map_err(malformed)? != Type::Bytes {
                        return Err(malformed("entry digest must be a byte string"));
                    }
                    let b = d.bytes().map_err(malformed)?;
                    digest = Some(BlobDigest::from_slice(b).ok_or_else(|| malformed("entry digest must be 32 bytes"))?);
                }
                3 => size = Some(d.u64().map_err(malformed)?),
                _ => d.skip().map_err(malformed)?,
            }
        }
        let path = path.ok_or_else(|| malformed("entry without path (1)"))?;
        check_path(&path)?;
        out.push(IndexEntry {
            path,
            digest: digest.ok_or_else(|| malformed("entry without digest (2)"))?,
            size: size.ok_or_else(|| malformed("entry without size (3)"))?,
        });
    }
    Ok(out)
}

/// Reads an `index_key` setting: inline PEM, inline hex (raw Ed25519 or SEC1 P-256), or the
/// path of a file holding either.
pub fn load_public_key(setting: &str) -> Result<PublicKey, String> {
    let text = if setting.contains("-----BEGIN") || setting.bytes().all(|c| c.is_ascii_hexdigit()) {
        setting.to_owned()
    } else {
        std::fs::read_to_string(setting).map_err(|e| format!("cannot read index_key file {setting}: {e}"))?
    };
    let text = text.trim();
    let key = if text.contains("-----BEGIN") { PublicKey::from_pem(text) } else { PublicKey::from_hex(text) };
    key.map_err(|e| format!("index_key {setting}: {e}; give a PEM public key or its hex"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::ed25519_from_seed(&[7; 32])
    }

    fn index(version: u64, expires: i64) -> Index {
        Index {
            version,
            expires_unix_s: expires,
            entries: vec![IndexEntry { path: "fw/riot.suit.2.bin".into(), digest: BlobDigest([1; 32]), size: 457 }],
        }
    }

    #[test]
    fn round_trip_and_checks() {
        let k = key();
        let signed = index(5, 2_000_000_000).sign(&k).expect("sign");
        let now = jiff::Timestamp::from_second(1_900_000_000).expect("ts");
        let got = Index::verify(&signed, &k.public_key(), now, Some(5)).expect("verify");
        assert_eq!(got, index(5, 2_000_000_000));
        assert_eq!(Index::peek_version(&signed), Some(5));
        assert!(matches!(
            Index::verify(&signed, &k.public_key(), now, Some(6)),
            Err(IndexError::Rollback { got: 5, seen: 6 })
        ));
        let late = jiff::Timestamp::from_second(2_000_000_001).expect("ts");
        let e = Index::verify(&signed, &k.public_key(), late, None).expect_err("expired");
        assert_eq!(e.threat(), Some("THREAT.NET.ONPATH"));
        let other = SigningKey::ed25519_from_seed(&[8; 32]).public_key();
        assert!(matches!(Index::verify(&signed, &other, now, None), Err(IndexError::BadSignature(_))));
        let mut tampered = signed.clone();
        let n = tampered.len();
        tampered[n - 70] ^= 1;
        assert!(Index::verify(&tampered, &k.public_key(), now, None).is_err());
        // A version the store could not keep is refused, even when signed.
        let huge = index(i64::MAX as u64 + 1, 2_000_000_000).sign(&k).expect("sign");
        let e = Index::verify(&huge, &k.public_key(), now, None).expect_err("too large");
        assert!(e.to_string().contains("which the store cannot keep"), "{e}");
        assert!(Index::verify(
            &index(i64::MAX as u64, 2_000_000_000).sign(&k).expect("sign"),
            &k.public_key(),
            now,
            None
        )
        .is_ok());
    }

    #[test]
    fn paths_stay_inside() {
        for bad in ["", "/etc/passwd", "a/../b", "a//b", "a\\b", "./a"] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
        check_path("a/b/riot.suit.latest.bin").expect("good path");
    }
}
