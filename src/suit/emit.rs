//! Building and signing envelopes for `ferry publish` (the inverse of [`super::envelope`]).
//!
//! Two manifest layouts, both from a [`ManifestSpec`] (one component, one image per slot):
//!
//! * [`Format::Riot`]: what RIOT's `gen_manifest.py` + suit-tool 0.0.2 `create` produce
//!   (reference/suit.md §2.4): shared sequence sets vendor/class (and the size when all slots
//!   share it), a try-each over the slots (component-offset + condition + digest), then the
//!   vendor/class conditions; install (9) is a try-each of offset + URI, fetch, image-match;
//!   validate (10) is image-match. Signed with Ed25519 as EdDSA (-8), digest attached.
//! * [`Format::Ietf`]: draft-37 Appendix A Example 1 (one image) or Example 3 (A/B slots),
//!   tag 107, detached payload.
//!
//! Both reproduce their reference vectors byte for byte (see the tests).

use minicbor::data::Tag;
use minicbor::Encoder;

use super::cose::{CoseAlg, CoseSign1};
use super::digest::Digest;
use super::envelope::TAG_ENVELOPE;
use super::error::{Error, Result};
use super::key::SigningKey;
use super::manifest::{ComponentId, Identifier};
use super::Format;

/// One image: where it goes (slot / flash offset), what it hashes to, where to fetch it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    /// `component-slot` (draft-37) or `component-offset` (RIOT); `None` for a single image.
    pub slot: Option<u64>,
    pub digest: Digest,
    pub size: u64,
    pub uri: String,
}

/// What `ferry publish` knows about an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestSpec {
    pub sequence_number: u64,
    pub component: ComponentId,
    pub vendor_id: Identifier,
    pub class_id: Identifier,
    /// One image, or one per slot (RIOT: one per riotboot slot).
    pub images: Vec<ImageSpec>,
}

type Enc = Encoder<Vec<u8>>;

/// Runs an encoding closure; writing into a `Vec` cannot fail, so errors are dropped here once.
fn encode(
    f: impl FnOnce(&mut Enc) -> core::result::Result<(), minicbor::encode::Error<core::convert::Infallible>>,
) -> Vec<u8> {
    let mut e = Encoder::new(Vec::new());
    let _ = f(&mut e);
    e.into_writer()
}

const OVERRIDE_PARAMETERS: u8 = 20;
const SET_PARAMETERS_09: u8 = 19;
const TRY_EACH: u8 = 15;
const FETCH: u8 = 21;
const CONDITION_VENDOR: u8 = 1;
const CONDITION_CLASS: u8 = 2;
const CONDITION_IMAGE_MATCH: u8 = 3;
const CONDITION_SLOT: u8 = 5;
/// SUIT_Rep_Policy: send a record on success and failure, with sysinfo (draft-37 §8.4.7).
const REP_ALL: u8 = 15;
/// SUIT_Rep_Policy for fetch in the examples: record on failure.
const REP_FETCH: u8 = 2;
const REP_SLOT: u8 = 5;

impl ManifestSpec {
    fn check(&self, format: Format) -> Result<()> {
        let bad = |reason: &str| Err(Error::Invalid { what: "manifest spec", reason: reason.into() });
        if self.images.is_empty() {
            return bad("needs at least one image");
        }
        if self.images.len() > 1 && self.images.iter().any(|i| i.slot.is_none()) {
            return bad("with several images every image needs a slot");
        }
        if self.images.len() > super::limits::MAX_TRY_EACH_BRANCHES {
            return bad("too many slots");
        }
        if self.images.iter().any(|i| i.digest.alg != super::DigestAlg::Sha256) {
            return bad("image digests must be SHA-256");
        }
        if format == Format::Riot && self.images.iter().any(|i| i.uri.len() >= 128) {
            // RIOT's CONFIG_SOCK_URLPATH_MAXLEN.
            return bad("RIOT devices refuse URIs of 128 bytes or more");
        }
        Ok(())
    }

    /// The encoded SUIT_Manifest (not yet bstr-wrapped).
    pub fn manifest(&self, format: Format) -> Result<Vec<u8>> {
        self.check(format)?;
        let Some(first) = self.images.first() else {
            return Err(Error::Invalid { what: "manifest spec", reason: "needs at least one image".into() });
        };
        let single = self.images.len() == 1 && first.slot.is_none();
        let first_size = first.size;
        let shared_size = single || self.images.iter().all(|i| i.size == first_size);
        let digest_param = |d: &Digest| d.to_cbor(format);

        // Shared sequence.
        let shared = encode(|e| {
            let n_params = 2 + usize::from(shared_size) + usize::from(single);
            let n_cmds = 3 + usize::from(!single);
            e.array(2 * n_cmds as u64)?.u8(OVERRIDE_PARAMETERS)?.map(n_params as u64)?;
            e.u8(1)?.bytes(self.vendor_id.as_bytes())?;
            e.u8(2)?.bytes(self.class_id.as_bytes())?;
            if single {
                e.u8(3)?.bytes(&digest_param(&first.digest))?;
            }
            if shared_size {
                e.u8(14)?.u64(first_size)?;
            }
            if !single {
                e.u8(TRY_EACH)?.array(self.images.len() as u64)?;
                for img in &self.images {
                    let branch = encode(|b| {
                        b.array(6)?;
                        slot_prefix(b, OVERRIDE_PARAMETERS, img.slot.unwrap_or_default())?;
                        b.u8(OVERRIDE_PARAMETERS)?.map(1 + u64::from(!shared_size))?;
                        b.u8(3)?.bytes(&digest_param(&img.digest))?;
                        if !shared_size {
                            b.u8(14)?.u64(img.size)?;
                        }
                        Ok(())
                    });
                    e.bytes(&branch)?;
                }
            }
            e.u8(CONDITION_VENDOR)?.u8(REP_ALL)?;
            e.u8(CONDITION_CLASS)?.u8(REP_ALL)?;
            Ok(())
        });
        let common = encode(|e| {
            e.map(2)?.u8(2)?.array(1)?.array(self.component.0.len() as u64)?;
            for seg in &self.component.0 {
                e.bytes(seg)?;
            }
            e.u8(4)?.bytes(&shared)?;
            Ok(())
        });
        // RIOT sets parameters with draft-09 set-parameters (19) in install, as suit-tool does.
        let set = match format {
            Format::Riot => SET_PARAMETERS_09,
            Format::Ietf => OVERRIDE_PARAMETERS,
        };
        let install = encode(|e| {
            e.array(6)?;
            if single {
                e.u8(set)?.map(1)?.u8(21)?.str(&first.uri)?;
            } else {
                e.u8(TRY_EACH)?.array(self.images.len() as u64)?;
                for img in &self.images {
                    let branch = encode(|b| {
                        b.array(6)?;
                        slot_prefix(b, set, img.slot.unwrap_or_default())?;
                        b.u8(set)?.map(1)?.u8(21)?.str(&img.uri)?;
                        Ok(())
                    });
                    e.bytes(&branch)?;
                }
            }
            e.u8(FETCH)?.u8(REP_FETCH)?;
            e.u8(CONDITION_IMAGE_MATCH)?.u8(REP_ALL)?;
            Ok(())
        });
        let validate = encode(|e| {
            e.array(2)?.u8(CONDITION_IMAGE_MATCH)?.u8(REP_ALL)?;
            Ok(())
        });
        let (install_key, validate_key) = match format {
            Format::Ietf => (20u8, 7u8),
            Format::Riot => (9, 10),
        };
        // Keys in ascending order (deterministic CBOR, draft-37 §8.1).
        let mut members = [(validate_key, validate), (install_key, install)];
        members.sort_by_key(|(k, _)| *k);
        Ok(encode(|e| {
            e.map(5)?.u8(1)?.u8(1)?.u8(2)?.u64(self.sequence_number)?;
            e.u8(3)?.bytes(&common)?;
            for (k, v) in &members {
                e.u8(*k)?.bytes(v)?;
            }
            Ok(())
        }))
    }

    /// Builds the manifest and signs it into an envelope.
    pub fn build(&self, format: Format, signers: &[(&SigningKey, CoseAlg)]) -> Result<Vec<u8>> {
        let manifest = self.manifest(format)?;
        let item = encode(|e| {
            e.bytes(&manifest)?;
            Ok(())
        });
        sign_manifest(format, &item, signers)
    }
}

/// `[set, {5: slot}, condition-component-slot, 5]`: the start of every slot branch.
fn slot_prefix(
    b: &mut Enc,
    set: u8,
    slot: u64,
) -> core::result::Result<(), minicbor::encode::Error<core::convert::Infallible>> {
    b.u8(set)?.map(1)?.u8(5)?.u64(slot)?;
    b.u8(CONDITION_SLOT)?.u8(REP_SLOT)?;
    Ok(())
}

/// Wraps an already bstr-wrapped manifest (the key-3 value, header included, as
/// [`super::Envelope::manifest_bytes`] returns it) into an envelope signed by every signer.
///
/// draft-37: tag 107, `[digest, * COSE_Sign1(detached)]`. RIOT: `[* COSE_Sign1(attached)]`,
/// EdDSA (-8) only, since that is what RIOT's libcose checks.
pub fn sign_manifest(format: Format, manifest_item: &[u8], signers: &[(&SigningKey, CoseAlg)]) -> Result<Vec<u8>> {
    super::cbor::decode_exact(manifest_item, "SUIT_Manifest", |r| r.bytes("SUIT_Manifest"))?;
    if signers.len() > super::limits::MAX_SIGNATURES {
        return Err(Error::TooMany {
            what: "signers",
            count: signers.len() as u64,
            max: super::limits::MAX_SIGNATURES,
        });
    }
    let digest = Digest::sha256(manifest_item).to_cbor(format);
    let mut blocks = Vec::with_capacity(signers.len());
    for (key, alg) in signers {
        if format == Format::Riot && *alg != CoseAlg::EdDsa {
            return Err(Error::Invalid {
                what: "RIOT signer",
                reason: format!("RIOT devices check EdDSA (-8) only, not {alg}"),
            });
        }
        blocks.push(CoseSign1::sign(key, *alg, &digest, format == Format::Riot)?);
    }
    Ok(envelope_with_blocks(format, manifest_item, &digest, &blocks))
}

/// The envelope around `manifest_item` with these authentication blocks (`digest` leads them
/// in draft-37).
pub(crate) fn envelope_with_blocks(format: Format, manifest_item: &[u8], digest: &[u8], blocks: &[Vec<u8>]) -> Vec<u8> {
    let auth = encode(|e| {
        match format {
            Format::Ietf => e.array(1 + blocks.len() as u64)?.bytes(digest)?,
            Format::Riot => e.array(blocks.len() as u64)?,
        };
        for b in blocks {
            e.bytes(b)?;
        }
        Ok(())
    });
    let mut out = encode(|e| {
        if format == Format::Ietf {
            e.tag(Tag::new(TAG_ENVELOPE))?;
        }
        e.map(2)?.u8(2)?.bytes(&auth)?.u8(3)?;
        Ok(())
    });
    out.extend_from_slice(manifest_item);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suit::tests::unhex;
    use crate::suit::Envelope;

    const RIOT_SIGNED: &[u8] = include_bytes!("testdata/riot-suit-tool-0.0.2_ed25519_signed.cbor");
    const RIOT_UNSIGNED: &[u8] = include_bytes!("testdata/riot-suit-tool-0.0.2_unsigned.cbor");
    const ED_PRIV: &str = include_str!("testdata/test_ed25519_private_TESTONLY.pem");
    const P256_PRIV: &str = include_str!("testdata/draft-ietf-suit-manifest-37_examples_p256_private_TESTONLY.pem");
    const SLOT0: &[u8] = include_bytes!("testdata/riot_payload_slot0.bin");
    const SLOT1: &[u8] = include_bytes!("testdata/riot_payload_slot1.bin");

    fn riot_spec() -> ManifestSpec {
        // riot_tmpl.json
        let root = "coap://[2001:db8::1]/fw/suit_update/samr21-xpro";
        ManifestSpec {
            sequence_number: 2,
            component: ComponentId(vec![vec![0x00]]),
            vendor_id: Identifier::parse_uuid("547d0d74-6d3a-5a92-9662-4881afd9407b").unwrap(),
            class_id: Identifier::parse_uuid("8818989e-a257-5994-ac9a-554b77898083").unwrap(),
            images: vec![
                ImageSpec {
                    slot: Some(4096),
                    digest: Digest::sha256(SLOT0),
                    size: SLOT0.len() as u64,
                    uri: format!("{root}/slot0.bin"),
                },
                ImageSpec {
                    slot: Some(133120),
                    digest: Digest::sha256(SLOT1),
                    size: SLOT1.len() as u64,
                    uri: format!("{root}/slot1.bin"),
                },
            ],
        }
    }

    #[test]
    fn riot_envelope_is_byte_identical_to_suit_tool() {
        let key = SigningKey::from_pkcs8_pem(ED_PRIV).unwrap();
        let built = riot_spec().build(Format::Riot, &[(&key, CoseAlg::EdDsa)]).unwrap();
        // Ed25519 is deterministic, so the whole signed envelope matches.
        assert_eq!(built, RIOT_SIGNED);
        let unsigned = riot_spec().build(Format::Riot, &[]).unwrap();
        assert_eq!(unsigned, RIOT_UNSIGNED);
    }

    #[test]
    fn riot_publish_parses_by_the_same_rules() {
        let key = SigningKey::ed25519_from_seed(&[3; 32]);
        let mut spec = riot_spec();
        spec.sequence_number = 1_764_000_000;
        spec.images[1].size = 2048; // sizes differ: each branch carries its own
        let bytes = spec.build(Format::Riot, &[(&key, CoseAlg::EdDsa)]).unwrap();
        assert!(bytes.len() <= 640, "RIOT's manifest buffer is 640 bytes");
        let env = Envelope::parse(&bytes).unwrap();
        assert_eq!(env.format(), Format::Riot);
        let m = env.authenticate(&[key.public_key()]).unwrap().into_manifest();
        assert_eq!(m.sequence_number, 1_764_000_000);
        let c = &m.components[0];
        assert_eq!(c.vendor_id, Some(spec.vendor_id.clone()));
        assert_eq!(c.images.len(), 2);
        for (img, want) in c.images.iter().zip(&spec.images) {
            assert_eq!(img.slot, want.slot);
            assert_eq!(img.digest.as_ref(), Some(&want.digest));
            assert_eq!(img.size, Some(want.size));
            assert_eq!(img.uri.as_deref(), Some(want.uri.as_str()));
        }
    }

    #[test]
    fn riot_refuses_non_eddsa() {
        let key = SigningKey::from_pkcs8_pem(P256_PRIV).unwrap();
        assert!(matches!(riot_spec().build(Format::Riot, &[(&key, CoseAlg::Es256)]), Err(Error::Invalid { .. })));
    }

    fn ietf_spec(slots: bool) -> ManifestSpec {
        let a = "00112233445566778899aabbccddeeff0123456789abcdeffedcba9876543210";
        let b = "0123456789abcdeffedcba987654321000112233445566778899aabbccddeeff";
        let d = |h| Digest { alg: super::super::DigestAlg::Sha256, bytes: unhex(h) };
        let images = if slots {
            vec![
                ImageSpec { slot: Some(0), digest: d(a), size: 34768, uri: "http://example.com/file1.bin".into() },
                ImageSpec { slot: Some(1), digest: d(b), size: 76834, uri: "http://example.com/file2.bin".into() },
            ]
        } else {
            vec![ImageSpec { slot: None, digest: d(a), size: 34768, uri: "http://example.com/file.bin".into() }]
        };
        ManifestSpec {
            sequence_number: if slots { 3 } else { 1 },
            component: ComponentId(vec![vec![0x00]]),
            vendor_id: Identifier::parse_uuid("fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe").unwrap(),
            class_id: Identifier::parse_uuid("1492af14-2569-5e48-bf42-9b2d51f2ab45").unwrap(),
            images,
        }
    }

    #[test]
    fn ietf_unsigned_matches_draft_examples_1_and_3() {
        let ex1 = include_bytes!("testdata/draft-ietf-suit-manifest-37_example1_unsigned.cbor");
        let ex3 = include_bytes!("testdata/draft-ietf-suit-manifest-37_example3_unsigned.cbor");
        assert_eq!(ietf_spec(false).build(Format::Ietf, &[]).unwrap(), ex1);
        assert_eq!(ietf_spec(true).build(Format::Ietf, &[]).unwrap(), ex3);
    }

    #[test]
    fn ietf_signed_with_p256_and_ed25519_verifies() {
        let p = SigningKey::from_pkcs8_pem(P256_PRIV).unwrap();
        let ed = SigningKey::from_pkcs8_pem(ED_PRIV).unwrap();
        for (key, alg) in [(&p, CoseAlg::Es256), (&p, CoseAlg::Esp256), (&ed, CoseAlg::EdDsa), (&ed, CoseAlg::Ed25519)]
        {
            let bytes = ietf_spec(true).build(Format::Ietf, &[(key, alg)]).unwrap();
            let env = Envelope::parse(&bytes).unwrap();
            assert_eq!(env.signatures()[0].alg(), alg);
            let m = env.authenticate(&[key.public_key()]).unwrap().into_manifest();
            assert_eq!(m.sequence_number, 3);
            assert_eq!(m.uris().len(), 2);
        }
    }

    #[test]
    fn resigned_vectors_round_trip() {
        // Re-signing the draft's example 0/1 manifests with the Ed25519 test key reproduces
        // the self-built vectors exactly (Ed25519 is deterministic).
        let ed = SigningKey::from_pkcs8_pem(ED_PRIV).unwrap();
        for (signed, re, alg) in [
            (
                &include_bytes!("testdata/draft-ietf-suit-manifest-37_example0_signed.cbor")[..],
                &include_bytes!("testdata/selfbuilt_draft37_example0_EdDSA-alg-8_signed.cbor")[..],
                CoseAlg::EdDsa,
            ),
            (
                include_bytes!("testdata/draft-ietf-suit-manifest-37_example1_signed.cbor"),
                include_bytes!("testdata/selfbuilt_draft37_example1_Ed25519-alg-19_signed.cbor"),
                CoseAlg::Ed25519,
            ),
        ] {
            let env = Envelope::parse(signed).unwrap();
            let out = sign_manifest(Format::Ietf, env.manifest_bytes(), &[(&ed, alg)]).unwrap();
            assert_eq!(out, re);
        }
        // And RIOT: re-sign the unsigned suit-tool output.
        let env = Envelope::parse(RIOT_UNSIGNED).unwrap();
        let out = sign_manifest(Format::Riot, env.manifest_bytes(), &[(&ed, CoseAlg::EdDsa)]).unwrap();
        assert_eq!(out, RIOT_SIGNED);
        let pk = ed.public_key();
        Envelope::parse(&out).unwrap().authenticate(&[pk]).unwrap();
    }
}
