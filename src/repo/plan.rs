//! What a verified manifest needs fetched: one payload per image, located beside the manifest
//! in the repository under the last segment of the image URI (the RIOT layout). Pure.

use super::cache::{BlobDigest, Expected};
use crate::suit::{DigestAlg, Manifest};

/// Largest payload ferry caches; a manifest announcing more is refused before any download.
pub const MAX_PAYLOAD_SIZE: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadFetch {
    /// Path in the repository.
    pub location: String,
    pub expected: Expected,
    pub manifest_path: String,
    /// The URI as signed (devices fetch this from ferry).
    pub uri: String,
}

/// The payloads of `manifest` (found at `manifest_path`), or why it cannot be cached safely.
/// Images sharing a digest are fetched once.
pub fn payloads(manifest: &Manifest, manifest_path: &str) -> Result<Vec<PayloadFetch>, String> {
    let folder = manifest_path.rsplit_once('/').map_or("", |(dir, _)| dir);
    let mut out: Vec<PayloadFetch> = Vec::new();
    for component in &manifest.components {
        for image in &component.images {
            let (Some(digest), Some(size), Some(uri)) = (&image.digest, image.size, &image.uri) else {
                return Err(format!(
                    "component {:?} has an image without digest, size or URI; ferry only caches \
                     payloads whose digest and size are signed",
                    component.id
                ));
            };
            if digest.alg != DigestAlg::Sha256 {
                return Err(format!("image digest algorithm {:?} is not SHA-256", digest.alg));
            }
            let digest = BlobDigest::from_slice(&digest.bytes).ok_or("image SHA-256 digest is not 32 bytes")?;
            if size > MAX_PAYLOAD_SIZE {
                return Err(format!("image of {size} bytes is larger than ferry's limit of {MAX_PAYLOAD_SIZE}"));
            }
            let file = uri.split(['?', '#']).next().unwrap_or("").rsplit('/').next().unwrap_or("");
            if file.is_empty() || file == "." || file == ".." || file.contains('\\') {
                return Err(format!("image URI {uri} does not end in a file name"));
            }
            let location = if folder.is_empty() { file.to_owned() } else { format!("{folder}/{file}") };
            if out.iter().any(|p| p.expected.digest == digest) {
                continue;
            }
            out.push(PayloadFetch {
                location,
                expected: Expected { digest, size },
                manifest_path: manifest_path.to_owned(),
                uri: uri.clone(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suit::{Envelope, PublicKey};

    #[test]
    fn riot_manifest_payloads_sit_beside_it() {
        let env = include_bytes!("../suit/testdata/riot-suit-tool-0.0.2_ed25519_signed.cbor");
        let key = PublicKey::from_pem(include_str!("../suit/testdata/test_ed25519_public.pem")).expect("key");
        let parsed = Envelope::parse(env).expect("parse");
        let manifest = parsed.authenticate(&[key]).expect("auth").into_manifest();
        let p = payloads(&manifest, "samr21-xpro/riot.suit.2.bin").expect("plan");
        assert_eq!(p.len(), 2);
        assert!(p.iter().all(|f| f.location.starts_with("samr21-xpro/") && f.expected.size == 1024), "{p:?}");
    }
}
