//! The `suit` room through its public API only, the way the trust policy, `repo` and
//! `ferry publish` will use it.

use ferry::suit::emit::{ImageSpec, ManifestSpec};
use ferry::suit::{CoseAlg, Digest, Envelope, Error, Format, Identifier, KeyType, PublicKey, SigningKey};

const RIOT_SIGNED: &[u8] = include_bytes!("../src/suit/testdata/riot-suit-tool-0.0.2_ed25519_signed.cbor");
const ED_PUB_PEM: &str = include_str!("../src/suit/testdata/test_ed25519_public.pem");
const ED_PRIV_PEM: &str = include_str!("../src/suit/testdata/test_ed25519_private_TESTONLY.pem");
const P256_PUB_HEX: &str =
    include_str!("../src/suit/testdata/draft-ietf-suit-manifest-37_examples_p256_public.uncompressed.hex");
const EX3: &[u8] = include_bytes!("../src/suit/testdata/draft-ietf-suit-manifest-37_example3_signed.cbor");

#[test]
fn authenticate_then_read_the_manifest() {
    let keys = [PublicKey::from_hex(P256_PUB_HEX).unwrap(), PublicKey::from_pem(ED_PUB_PEM).unwrap()];
    assert_eq!(keys[0].key_type(), KeyType::P256);

    let riot = Envelope::parse(RIOT_SIGNED).unwrap();
    let ok = riot.authenticate(&keys).unwrap();
    assert_eq!(ok.signers().len(), 1);
    assert_eq!(ok.signers()[0].key, 1);
    let m = ok.manifest();
    assert_eq!(m.format, Format::Riot);
    assert_eq!(m.sequence_number, 2);
    assert_eq!(
        m.components[0].class_id.as_ref().map(ToString::to_string),
        Some("8818989e-a257-5994-ac9a-554b77898083".to_owned())
    );
    assert_eq!(m.uris().len(), 2);

    let ietf = Envelope::parse(EX3).unwrap();
    let m = ietf.authenticate(&keys).unwrap().into_manifest();
    assert_eq!(m.format, Format::Ietf);
    assert_eq!(m.components[0].images.len(), 2);
}

#[test]
fn threshold_policy_can_count_distinct_keys() {
    let a = SigningKey::ed25519_from_seed(&[1; 32]);
    let b = SigningKey::ed25519_from_seed(&[2; 32]);
    let spec = publish_spec();
    let bytes = spec.build(Format::Ietf, &[(&a, CoseAlg::Ed25519), (&b, CoseAlg::Ed25519)]).unwrap();
    let env = Envelope::parse(&bytes).unwrap();
    let keys = [a.public_key(), b.public_key()];
    let ok = env.authenticate(&keys).unwrap();
    let mut distinct: Vec<usize> = ok.signers().iter().map(|s| s.key).collect();
    distinct.dedup();
    assert_eq!(distinct, vec![0, 1]);
}

fn publish_spec() -> ManifestSpec {
    ManifestSpec {
        sequence_number: 1_764_230_400,
        component: ferry::suit::ComponentId(vec![b"riot".to_vec()]),
        vendor_id: Identifier::parse_uuid("547d0d74-6d3a-5a92-9662-4881afd9407b").unwrap(),
        class_id: Identifier::parse_uuid("00c72996-412f-5202-be93-8f1473a2309c").unwrap(),
        images: vec![
            ImageSpec {
                slot: Some(0x1000),
                digest: Digest::sha256(b"slot0"),
                size: 5,
                uri: "coap://[fd00::1]/fw/app/nrf52840dk/slot0.bin".into(),
            },
            ImageSpec {
                slot: Some(0x80000),
                digest: Digest::sha256(b"slot1"),
                size: 5,
                uri: "coap://[fd00::1]/fw/app/nrf52840dk/slot1.bin".into(),
            },
        ],
    }
}

#[test]
fn published_riot_envelope_parses_by_the_same_rules() {
    let key = SigningKey::from_pkcs8_pem(ED_PRIV_PEM).unwrap();
    let spec = publish_spec();
    let bytes = spec.build(Format::Riot, &[(&key, CoseAlg::EdDsa)]).unwrap();
    let env = Envelope::parse(&bytes).unwrap();
    assert_eq!(env.format(), Format::Riot);
    let m = env.authenticate(&[PublicKey::from_pem(ED_PUB_PEM).unwrap()]).unwrap().into_manifest();
    assert_eq!(m.sequence_number, spec.sequence_number);
    assert_eq!(m.components[0].id, spec.component);
    let slots: Vec<_> = m.components[0].images.iter().map(|i| i.slot).collect();
    assert_eq!(slots, vec![Some(0x1000), Some(0x80000)]);
}

#[test]
fn errors_are_typed_and_readable() {
    let mut bytes = RIOT_SIGNED.to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    let env = Envelope::parse(&bytes).unwrap();
    let err = env.authenticate(&[PublicKey::from_pem(ED_PUB_PEM).unwrap()]).unwrap_err();
    assert_eq!(err, Error::DigestMismatch { what: "manifest" });
    assert_eq!(err.threat(), Some("THREAT.NET.ONPATH"));

    let err = Envelope::parse(&RIOT_SIGNED[..100]).unwrap_err();
    assert!(err.to_string().contains("truncated"), "unexpected message: {err}");
}
