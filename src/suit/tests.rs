//! Vector tests: RIOT's suit-tool output and the draft-37 examples, plus hostile inputs.
//! The vectors are copies of `shared/vectors/suit{,-ietf}/` kept in `testdata/`.

use super::*;

macro_rules! vector {
    ($name:literal) => {
        include_bytes!(concat!("testdata/", $name))
    };
}

const RIOT_SIGNED: &[u8] = vector!("riot-suit-tool-0.0.2_ed25519_signed.cbor");
const RIOT_UNSIGNED: &[u8] = vector!("riot-suit-tool-0.0.2_unsigned.cbor");
const RIOT_NEG_BADSIG: &str = include_str!("testdata/riot-suit-tool-0.0.2_ed25519_NEG_badsig.hex");
const RIOT_NEG_SEQ: &str = include_str!("testdata/riot-suit-tool-0.0.2_ed25519_NEG_seq_tampered.hex");
const RIOT_SLOT0: &[u8] = vector!("riot_payload_slot0.bin");
const RIOT_SLOT1: &[u8] = vector!("riot_payload_slot1.bin");
const ED_PUB_HEX: &str = include_str!("testdata/test_ed25519_public.raw.hex");
const ED_PUB_PEM: &str = include_str!("testdata/test_ed25519_public.pem");
const ED_PRIV_PEM: &str = include_str!("testdata/test_ed25519_private_TESTONLY.pem");
const P256_PUB_PEM: &str = include_str!("testdata/draft-ietf-suit-manifest-37_examples_p256_public.pem");
const P256_PRIV_PEM: &str = include_str!("testdata/draft-ietf-suit-manifest-37_examples_p256_private_TESTONLY.pem");

const EX0: &[u8] = vector!("draft-ietf-suit-manifest-37_example0_signed.cbor");
const EX1: &[u8] = vector!("draft-ietf-suit-manifest-37_example1_signed.cbor");
const EX2_FULL: &[u8] = vector!("draft-ietf-suit-manifest-37_example2_signed_full.cbor");
const EX2_SEVERED: &[u8] = vector!("draft-ietf-suit-manifest-37_example2_signed_severed.cbor");
const EX3: &[u8] = vector!("draft-ietf-suit-manifest-37_example3_signed.cbor");
const EX4: &[u8] = vector!("draft-ietf-suit-manifest-37_example4_signed.cbor");
const EX5: &[u8] = vector!("draft-ietf-suit-manifest-37_example5_signed.cbor");
const EX_UNSIGNED: [&[u8]; 6] = [
    vector!("draft-ietf-suit-manifest-37_example0_unsigned.cbor"),
    vector!("draft-ietf-suit-manifest-37_example1_unsigned.cbor"),
    vector!("draft-ietf-suit-manifest-37_example2_unsigned_severed.cbor"),
    vector!("draft-ietf-suit-manifest-37_example3_unsigned.cbor"),
    vector!("draft-ietf-suit-manifest-37_example4_unsigned.cbor"),
    vector!("draft-ietf-suit-manifest-37_example5_unsigned.cbor"),
];
const SELF_ED: [(&[u8], CoseAlg); 4] = [
    (vector!("selfbuilt_draft37_example0_EdDSA-alg-8_signed.cbor"), CoseAlg::EdDsa),
    (vector!("selfbuilt_draft37_example0_Ed25519-alg-19_signed.cbor"), CoseAlg::Ed25519),
    (vector!("selfbuilt_draft37_example1_EdDSA-alg-8_signed.cbor"), CoseAlg::EdDsa),
    (vector!("selfbuilt_draft37_example1_Ed25519-alg-19_signed.cbor"), CoseAlg::Ed25519),
];

const ARM_VENDOR: &str = "fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe";
const ARM_CLASS: &str = "1492af14-2569-5e48-bf42-9b2d51f2ab45";
const DIGEST_A: &str = "00112233445566778899aabbccddeeff0123456789abcdeffedcba9876543210";
const DIGEST_B: &str = "0123456789abcdeffedcba987654321000112233445566778899aabbccddeeff";

pub(crate) fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("test hex")
}

fn ed_key() -> PublicKey {
    PublicKey::from_hex(ED_PUB_HEX).unwrap()
}

fn p256_key() -> PublicKey {
    PublicKey::from_pem(P256_PUB_PEM).unwrap()
}

fn uuid(s: &str) -> Option<Identifier> {
    Identifier::parse_uuid(s)
}

fn sha(hexstr: &str) -> Option<Digest> {
    Some(Digest { alg: DigestAlg::Sha256, bytes: unhex(hexstr) })
}

fn image(slot: Option<u64>, digest: &str, size: u64, uri: Option<&str>) -> Image {
    Image { slot, digest: sha(digest), size: Some(size), uri: uri.map(str::to_owned) }
}

fn authenticate(bytes: &[u8], key: &PublicKey) -> Manifest {
    let env = Envelope::parse(bytes).unwrap();
    env.authenticate(std::slice::from_ref(key)).unwrap().into_manifest()
}

// ---------------------------------------------------------------- RIOT (draft-09)

#[test]
fn riot_vector_verifies_and_extracts() {
    let env = Envelope::parse(RIOT_SIGNED).unwrap();
    assert_eq!(env.format(), Format::Riot);
    assert!(!env.is_tagged());
    assert_eq!(env.signatures().len(), 1);
    let sig = &env.signatures()[0];
    assert_eq!(sig.alg(), CoseAlg::EdDsa);
    assert_eq!(sig.kid(), None);
    sig.verify(&ed_key()).unwrap();

    let ok = env.authenticate(&[p256_key(), PublicKey::from_pem(ED_PUB_PEM).unwrap()]).unwrap();
    assert_eq!(ok.signers(), &[Signer { signature: 0, key: 1 }]);
    let m = ok.manifest();
    assert_eq!(m.format, Format::Riot);
    assert_eq!(m.sequence_number, 2);
    assert_eq!(m.components.len(), 1);
    let c = &m.components[0];
    assert_eq!(c.id, ComponentId(vec![vec![0x00]]));
    assert_eq!(c.vendor_id, uuid("547d0d74-6d3a-5a92-9662-4881afd9407b"));
    assert_eq!(c.class_id, uuid("8818989e-a257-5994-ac9a-554b77898083"));
    assert!(c.checks_vendor && c.checks_class && c.fetched);
    let root = "coap://[2001:db8::1]/fw/suit_update/samr21-xpro";
    let d0 = hex::encode(&Digest::sha256(RIOT_SLOT0).bytes);
    let d1 = hex::encode(&Digest::sha256(RIOT_SLOT1).bytes);
    assert_eq!(
        c.images,
        vec![
            image(Some(0x1000), &d0, 1024, Some(&format!("{root}/slot0.bin"))),
            image(Some(0x20800), &d1, 1024, Some(&format!("{root}/slot1.bin"))),
        ]
    );
    assert!(c.images[0].digest.as_ref().unwrap().matches(RIOT_SLOT0).unwrap());
    assert_eq!(m.members.install, Member::Present);
    assert!(m.members.validate);
    assert!(!m.members.invoke);
    assert!(m.text.is_empty());
}

#[test]
fn riot_negative_bad_signature() {
    let bytes = unhex(RIOT_NEG_BADSIG);
    let env = Envelope::parse(&bytes).unwrap();
    assert_eq!(env.signatures()[0].verify(&ed_key()), Err(Error::BadSignature { index: 0 }));
    assert_eq!(env.authenticate(&[ed_key()]).unwrap_err(), Error::BadSignature { index: 0 });
}

#[test]
fn riot_negative_tampered_sequence_number() {
    let bytes = unhex(RIOT_NEG_SEQ);
    let env = Envelope::parse(&bytes).unwrap();
    // The signature over the (unchanged) digest is still fine; the binding is not.
    env.signatures()[0].verify(&ed_key()).unwrap();
    assert_eq!(env.authenticate(&[ed_key()]).unwrap_err(), Error::DigestMismatch { what: "manifest" });
}

#[test]
fn riot_unsigned_is_refused() {
    let env = Envelope::parse(RIOT_UNSIGNED).unwrap();
    assert_eq!(env.format(), Format::Riot);
    assert_eq!(env.authenticate(&[ed_key()]).unwrap_err(), Error::NoSignatures);
}

#[test]
fn wrong_key_type_or_wrong_key() {
    let env = Envelope::parse(RIOT_SIGNED).unwrap();
    assert_eq!(env.authenticate(&[p256_key()]).unwrap_err(), Error::NoUsableKey { signatures: 1, keys: 1 });
    let other = SigningKey::ed25519_from_seed(&[9; 32]).public_key();
    assert_eq!(env.authenticate(&[other]).unwrap_err(), Error::BadSignature { index: 0 });
    assert!(matches!(env.signatures()[0].verify(&p256_key()), Err(Error::KeyMismatch { .. })));
}

// ---------------------------------------------------------------- draft-37 examples

#[test]
fn ietf_examples_verify_with_p256() {
    let key = p256_key();
    for (i, bytes) in [EX0, EX1, EX2_FULL, EX2_SEVERED, EX3, EX4, EX5].into_iter().enumerate() {
        let env = Envelope::parse(bytes).unwrap_or_else(|e| panic!("vector {i}: {e}"));
        assert_eq!(env.format(), Format::Ietf);
        assert!(env.is_tagged());
        assert_eq!(env.signatures().len(), 1);
        assert_eq!(env.signatures()[0].alg(), CoseAlg::Es256);
        env.authenticate(std::slice::from_ref(&key)).unwrap_or_else(|e| panic!("vector {i}: {e}"));
    }
}

#[test]
fn ietf_examples_name_the_arm_vendor_and_class() {
    for bytes in [EX0, EX1, EX2_FULL, EX2_SEVERED, EX3, EX4, EX5] {
        let m = authenticate(bytes, &p256_key());
        let c = &m.components[0];
        assert_eq!(c.vendor_id, uuid(ARM_VENDOR));
        assert_eq!(c.class_id, uuid(ARM_CLASS));
        assert!(c.checks_vendor && c.checks_class);
        assert_eq!(m.component_version(&c.id), None);
    }
}

#[test]
fn text_component_version_is_extracted() {
    // draft-09 text map: {[h'00']: {6: "1.2.3"}}
    let text = [0xa1, 0x81, 0x41, 0x00, 0xa1, 0x06, 0x65, b'1', b'.', b'2', b'.', b'3'];
    let t = Text::decode(&text, Format::Riot).unwrap();
    assert_eq!(t[0].language, None);
    assert_eq!(t[0].components[0].1.version.as_deref(), Some("1.2.3"));
    // draft-37 wraps it in a language map: {"en": ...}
    let mut ietf = vec![0xa1, 0x62, b'e', b'n'];
    ietf.extend(text);
    let t = Text::decode(&ietf, Format::Ietf).unwrap();
    assert_eq!(t[0].language.as_deref(), Some("en"));
    assert_eq!(t[0].components[0].1.version.as_deref(), Some("1.2.3"));
}

#[test]
fn ietf_unsigned_examples_parse_but_do_not_authenticate() {
    for (i, bytes) in EX_UNSIGNED.into_iter().enumerate() {
        let env = Envelope::parse(bytes).unwrap_or_else(|e| panic!("example {i}: {e}"));
        assert_eq!(env.format(), Format::Ietf);
        env.check_digest().unwrap();
        assert_eq!(env.authenticate(&[p256_key()]).unwrap_err(), Error::NoSignatures);
        // The body parses by the same rules once someone vouches for it.
        let m = Manifest::decode(Format::Ietf, manifest_content(&env), &[]).unwrap();
        assert_eq!(m.sequence_number, i as u64);
    }
}

fn manifest_content<'b>(env: &Envelope<'b>) -> &'b [u8] {
    let item = env.manifest_bytes();
    let mut r = cbor::Reader::new(item);
    r.bytes("test").unwrap()
}

#[test]
fn ietf_ed25519_resigned_variants_verify() {
    for (bytes, alg) in SELF_ED {
        let env = Envelope::parse(bytes).unwrap();
        assert_eq!(env.signatures()[0].alg(), alg);
        let ok = env.authenticate(&[p256_key(), ed_key()]).unwrap();
        assert_eq!(ok.signers(), &[Signer { signature: 0, key: 1 }]);
        assert!(env.signatures()[0].verify(&p256_key()).is_err());
    }
}

#[test]
fn ietf_example0_fields() {
    let m = authenticate(EX0, &p256_key());
    assert_eq!(m.sequence_number, 0);
    assert_eq!(m.reference_uri, None);
    let c = &m.components[0];
    assert_eq!(c.id, ComponentId(vec![vec![0x00]]));
    assert_eq!(c.vendor_id, uuid(ARM_VENDOR));
    assert_eq!(c.class_id, uuid(ARM_CLASS));
    assert!(c.checks_vendor && c.checks_class && !c.fetched);
    assert_eq!(c.images, vec![image(None, DIGEST_A, 34768, None)]);
    assert!(m.members.validate && m.members.invoke);
    assert_eq!(m.members.install, Member::Absent);
}

#[test]
fn ietf_example1_fields() {
    let m = authenticate(EX1, &p256_key());
    assert_eq!(m.sequence_number, 1);
    let c = &m.components[0];
    assert_eq!(c.images, vec![image(None, DIGEST_A, 34768, Some("http://example.com/file.bin"))]);
    assert!(c.fetched);
    assert_eq!(m.uris(), vec!["http://example.com/file.bin"]);
    assert_eq!(m.members.install, Member::Present);
}

#[test]
fn ietf_example2_severed_and_full() {
    let severed = authenticate(EX2_SEVERED, &p256_key());
    assert_eq!(severed.sequence_number, 2);
    assert_eq!(severed.reference_uri.as_deref(), Some("https://git.io/JJYoj"));
    assert_eq!(
        severed.members.install,
        Member::Severed(sha("cfa90c5c58595e7f5119a72f803fd0370b3e6abbec6315cd38f63135281bc498").unwrap())
    );
    assert_eq!(
        severed.members.text,
        Member::Severed(sha("302196d452bce5e8bfeaf71e395645ede6d365e63507a081379721eeecf00007").unwrap())
    );
    assert!(severed.text.is_empty());
    assert_eq!(severed.uris(), Vec::<&str>::new());

    let env = Envelope::parse(EX2_FULL).unwrap();
    assert_eq!(env.severed_members().collect::<Vec<_>>(), vec![20, 23]);
    let full = env.authenticate(&[p256_key()]).unwrap().into_manifest();
    assert_eq!(full.members.install, Member::Present);
    assert_eq!(full.members.text, Member::Present);
    assert_eq!(full.uris(), vec!["http://example.com/very/long/path/to/file/file.bin"]);
    assert_eq!(full.text.len(), 1);
    let t = &full.text[0];
    assert_eq!(t.language.as_deref(), Some("en-US"));
    assert!(t
        .manifest_description
        .as_deref()
        .unwrap()
        .starts_with("## Example 2: Simultaneous Download, Installation, Secure Boot, Severed Fields"));
    assert_eq!(t.components.len(), 1);
    assert_eq!(t.components[0].0, ComponentId(vec![vec![0]]));
    assert_eq!(t.components[0].1.vendor_domain.as_deref(), Some("arm.com"));
    assert_eq!(
        t.components[0].1.description.as_deref(),
        Some("This component is a demonstration. The digest is a sample pattern, not a real one.")
    );
    assert_eq!(t.components[0].1.version, None);
    // Same signature, same digest: severing changes nothing signed.
    assert_eq!(full.sequence_number, severed.sequence_number);
}

#[test]
fn ietf_example2_tampered_severed_member_is_refused() {
    let mut bytes = EX2_FULL.to_vec();
    // The last byte is inside the text member (its component description).
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    let env = Envelope::parse(&bytes).unwrap();
    assert_eq!(env.authenticate(&[p256_key()]).unwrap_err(), Error::DigestMismatch { what: "text" });
}

#[test]
fn ietf_example3_slots() {
    let m = authenticate(EX3, &p256_key());
    assert_eq!(m.sequence_number, 3);
    let c = &m.components[0];
    assert_eq!(c.vendor_id, uuid(ARM_VENDOR));
    assert_eq!(c.class_id, uuid(ARM_CLASS));
    assert_eq!(
        c.images,
        vec![
            image(Some(0), DIGEST_A, 34768, Some("http://example.com/file1.bin")),
            image(Some(1), DIGEST_B, 76834, Some("http://example.com/file2.bin")),
        ]
    );
}

#[test]
fn ietf_example4_three_components() {
    let m = authenticate(EX4, &p256_key());
    assert_eq!(m.sequence_number, 4);
    let ids: Vec<_> = m.components.iter().map(|c| c.id.clone()).collect();
    assert_eq!(ids, vec![ComponentId(vec![vec![0]]), ComponentId(vec![vec![2]]), ComponentId(vec![vec![1]])]);
    assert_eq!(m.components[0].vendor_id, uuid(ARM_VENDOR));
    assert_eq!(m.components[0].images, vec![image(None, DIGEST_A, 34768, None)]);
    assert_eq!(
        m.components[1].images,
        vec![Image { slot: None, digest: sha(DIGEST_A), size: None, uri: Some("http://example.com/file.bin".into()) }]
    );
    assert!(m.components[1].fetched);
    assert_eq!(m.components[2].images, vec![image(None, DIGEST_B, 76834, None)]);
    assert_eq!(m.members.payload_fetch, Member::Present);
    assert!(m.members.load && m.members.invoke);
}

#[test]
fn ietf_example5_two_images() {
    let m = authenticate(EX5, &p256_key());
    assert_eq!(m.sequence_number, 5);
    assert_eq!(m.components[0].images, vec![image(None, DIGEST_A, 34768, Some("http://example.com/file1.bin"))]);
    assert_eq!(m.components[1].images, vec![image(None, DIGEST_B, 76834, Some("http://example.com/file2.bin"))]);
    assert_eq!(m.components[1].vendor_id, None);
    assert_eq!(m.uris(), vec!["http://example.com/file1.bin", "http://example.com/file2.bin"]);
}

#[test]
fn sig_structures_match_the_verification_json() {
    // verification_ed25519.json riot_format.sig_structure_hex
    let want = unhex(
        "846a5369676e61747572653143a1012740582482025820dbee61ab157cff5e9a3d9670fdc7a87081ba6c\
         37c4d954cd0f927136c85474f2",
    );
    let env = Envelope::parse(RIOT_SIGNED).unwrap();
    let c = env.signatures()[0].cose();
    assert_eq!(cose::sig_structure(c.protected, c.payload.unwrap()), want);
    assert_eq!(
        hex::encode(&Digest::sha256(env.manifest_bytes()).bytes),
        "dbee61ab157cff5e9a3d9670fdc7a87081ba6c37c4d954cd0f927136c85474f2"
    );
}

// ---------------------------------------------------------------- several signatures

#[test]
fn several_signature_blocks_report_each_signer() {
    let ed = SigningKey::from_pkcs8_pem(ED_PRIV_PEM).unwrap();
    let p = SigningKey::from_pkcs8_pem(P256_PRIV_PEM).unwrap();
    let env = Envelope::parse(EX0).unwrap();
    let bytes =
        emit::sign_manifest(Format::Ietf, env.manifest_bytes(), &[(&ed, CoseAlg::Ed25519), (&p, CoseAlg::Esp256)])
            .unwrap();
    let env = Envelope::parse(&bytes).unwrap();
    assert_eq!(env.signatures().len(), 2);
    let keys = [p256_key(), ed_key()];
    let ok = env.authenticate(&keys).unwrap();
    assert_eq!(ok.signers(), &[Signer { signature: 0, key: 1 }, Signer { signature: 1, key: 0 }]);
    // One good key is enough to authenticate; the policy decides about thresholds.
    let ok = env.authenticate(&keys[..1]).unwrap();
    assert_eq!(ok.signers(), &[Signer { signature: 1, key: 0 }]);
}

#[test]
fn a_cose_sign_block_is_checked_signer_by_signer() {
    let ed = SigningKey::from_pkcs8_pem(ED_PRIV_PEM).unwrap();
    let p = SigningKey::from_pkcs8_pem(P256_PRIV_PEM).unwrap();
    let item = Envelope::parse(EX0).unwrap().manifest_bytes().to_vec();
    let digest = Digest::sha256(&item).to_cbor(Format::Ietf);
    let sign = cose::CoseSign::sign(&[(&ed, CoseAlg::Ed25519), (&p, CoseAlg::Esp256)], &digest, false).unwrap();
    let bytes = emit::envelope_with_blocks(Format::Ietf, &item, &digest, std::slice::from_ref(&sign));
    let env = Envelope::parse(&bytes).unwrap();
    assert_eq!(env.signatures().len(), 2);
    assert!(env.signatures().iter().all(|s| s.is_cose_sign() && s.block() == 0));
    let ok = env.authenticate(&[p256_key(), ed_key()]).unwrap();
    assert_eq!(ok.signers(), &[Signer { signature: 0, key: 1 }, Signer { signature: 1, key: 0 }]);
    assert_eq!(ok.manifest().sequence_number, 0);
    // Each signer stands alone: one unknown key does not spoil the other.
    let other = SigningKey::ed25519_from_seed(&[9; 32]).public_key();
    let ok = env.authenticate(&[other, p256_key()]).unwrap();
    assert_eq!(ok.signers(), &[Signer { signature: 1, key: 1 }]);
    // A signer flipped in transit fails alone, naming its signature.
    let mut forged = sign.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let bytes = emit::envelope_with_blocks(Format::Ietf, &item, &digest, &[forged]);
    let env = Envelope::parse(&bytes).unwrap();
    assert_eq!(env.authenticate(&[p256_key()]).unwrap_err(), Error::BadSignature { index: 1 });
    assert_eq!(env.authenticate(&[ed_key()]).unwrap().signers(), &[Signer { signature: 0, key: 0 }]);
}

#[test]
fn mac_blocks_are_skipped_with_a_reason_and_never_authenticate() {
    let ed = SigningKey::from_pkcs8_pem(ED_PRIV_PEM).unwrap();
    let item = Envelope::parse(EX0).unwrap().manifest_bytes().to_vec();
    let digest = Digest::sha256(&item).to_cbor(Format::Ietf);
    // 17([<<{1: 5}>>, {}, nil, h'00'*32]) COSE_Mac0 with HMAC 256/256; 97([.., []]) COSE_Mac.
    let mac0 = unhex("d18443a10105a0f658200000000000000000000000000000000000000000000000000000000000000000");
    let mac = unhex("d8618543a10105a0f65820000000000000000000000000000000000000000000000000000000000000000080");
    let only_mac = emit::envelope_with_blocks(Format::Ietf, &item, &digest, &[mac0.clone(), mac.clone()]);
    let env = Envelope::parse(&only_mac).unwrap();
    assert!(env.signatures().is_empty());
    let skipped: Vec<(usize, u64)> = env.skipped_blocks().iter().map(|b| (b.block, b.tag)).collect();
    assert_eq!(skipped, [(0, 17), (1, 97)]);
    assert_eq!(
        env.skipped_blocks()[0].reason.to_string(),
        "MAC-authenticated manifests need a shared key ferry does not hold"
    );
    let refused = env.authenticate(&[ed_key(), p256_key()]).unwrap_err();
    assert_eq!(refused, Error::OnlyMac { blocks: 2 });
    assert_eq!(refused.threat(), Some("THREAT.IMG.NON_AUTH"));
    // Next to a signature the MAC is skipped and the signature decides.
    let signed = emit::sign_manifest(Format::Ietf, &item, &[(&ed, CoseAlg::EdDsa)]).unwrap();
    let block = cose_sign1_block(&signed);
    let both = emit::envelope_with_blocks(Format::Ietf, &item, &digest, &[mac0, block]);
    let env = Envelope::parse(&both).unwrap();
    assert_eq!(env.skipped_blocks().len(), 1);
    assert_eq!(env.signatures()[0].block(), 1);
    assert_eq!(env.authenticate(&[ed_key()]).unwrap().signers(), &[Signer { signature: 0, key: 0 }]);
}

/// The raw bytes of the first COSE block of a draft-37 envelope ferry emitted.
fn cose_sign1_block(envelope: &[u8]) -> Vec<u8> {
    let mut d = minicbor::Decoder::new(envelope);
    d.tag().unwrap();
    d.map().unwrap();
    d.u8().unwrap();
    let auth = d.bytes().unwrap();
    let mut a = minicbor::Decoder::new(auth);
    a.array().unwrap();
    a.bytes().unwrap();
    a.bytes().unwrap().to_vec()
}

// ---------------------------------------------------------------- hostile inputs

/// Deterministic xorshift64* so failures reproduce.
struct Prng(u64);
impl Prng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Parses and, where it parses, authenticates; must never panic.
fn exercise(bytes: &[u8]) -> Result<()> {
    let env = Envelope::parse(bytes)?;
    for s in env.signatures() {
        let _ = s.verify(&ed_key());
        let _ = s.verify(&p256_key());
    }
    let _ = Manifest::decode(env.format(), manifest_content_lenient(&env), &[]);
    env.authenticate(&[ed_key(), p256_key()]).map(|_| ())
}

fn manifest_content_lenient<'b>(env: &Envelope<'b>) -> &'b [u8] {
    let mut r = cbor::Reader::new(env.manifest_bytes());
    r.bytes("test").unwrap_or_default()
}

fn all_vectors() -> Vec<&'static [u8]> {
    let mut v = vec![RIOT_SIGNED, RIOT_UNSIGNED, EX0, EX1, EX2_FULL, EX2_SEVERED, EX3, EX4, EX5];
    v.extend(EX_UNSIGNED);
    v.extend(SELF_ED.iter().map(|(b, _)| *b));
    v
}

#[test]
fn truncation_at_every_offset_is_an_error() {
    for v in all_vectors() {
        for n in 0..v.len() {
            assert!(exercise(&v[..n]).is_err(), "prefix of {n} bytes accepted");
        }
    }
}

#[test]
fn random_byte_flips_never_panic() {
    let mut rng = Prng(0x5eed_f0e7_7e11_0001);
    for v in all_vectors() {
        for _ in 0..300 {
            let mut b = v.to_vec();
            let flips = 1 + rng.next() % 4;
            for _ in 0..flips {
                let i = (rng.next() % b.len() as u64) as usize;
                b[i] ^= 1 << (rng.next() % 8);
            }
            let _ = exercise(&b);
        }
    }
}

#[test]
fn flips_in_signed_envelopes_do_not_authenticate() {
    // Any single-bit change in a signed vector either breaks parsing or authentication,
    // except in parts the signature does not cover (unprotected header, severed members).
    let mut rng = Prng(42);
    for v in [RIOT_SIGNED, EX1, EX3] {
        for _ in 0..200 {
            let mut b = v.to_vec();
            let i = (rng.next() % b.len() as u64) as usize;
            b[i] ^= 1 << (rng.next() % 8);
            if let Ok(env) = Envelope::parse(&b) {
                if let Ok(ok) = env.authenticate(&[ed_key(), p256_key()]) {
                    // Only acceptable if the manifest is byte-identical.
                    let orig = Envelope::parse(v).unwrap();
                    assert_eq!(ok.envelope().manifest_bytes(), orig.manifest_bytes());
                }
            }
        }
    }
}

#[test]
fn deep_nesting_and_huge_lengths_are_errors() {
    // 100 000 nested arrays as the envelope, and inside the manifest position.
    let deep = vec![0x81u8; 100_000];
    assert!(matches!(Envelope::parse(&deep), Err(Error::TooLarge { .. })));
    let deep = vec![0x81u8; 60_000];
    assert!(Envelope::parse(&deep).is_err());
    let mut nested = vec![0xa2, 0x02, 0x41, 0x80, 0x03];
    nested.extend(std::iter::repeat_n(0x81u8, 50_000));
    assert!(matches!(Envelope::parse(&nested), Err(Error::TooDeep { .. }) | Err(Error::Malformed { .. })));
    for huge in [
        // map with 2^64-1 pairs
        &[0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..],
        // {2: bstr of 2^32 bytes}
        &[0xa1, 0x02, 0x5a, 0xff, 0xff, 0xff, 0xff, 0x00],
        // {2: << array of 2^32 >>, 3: h''}
        &[0xa2, 0x02, 0x45, 0x9a, 0xff, 0xff, 0xff, 0xff, 0x03, 0x40],
        // tag 107 then tag 107 ...
        &[0xd8, 0x6b, 0xd8, 0x6b, 0xa0],
    ] {
        assert!(Envelope::parse(huge).is_err(), "{huge:02x?}");
    }
    // A manifest whose shared sequence nests try-each deeper than allowed.
    let mut seq = vec![0x80u8]; // []
    for _ in 0..8 {
        // [15, [bstr(seq), nil]]
        let mut outer = vec![0x82, 0x0f, 0x82];
        outer.extend(bstr_header(seq.len()));
        outer.extend(&seq);
        outer.push(0xf6);
        seq = outer;
    }
    let manifest = manifest_with_shared(&seq);
    assert!(matches!(Manifest::decode(Format::Ietf, &manifest, &[]), Err(Error::TooDeep { .. })));
}

#[test]
fn too_many_commands_components_and_signatures() {
    // 600 commands of condition-vendor
    let mut seq = vec![0x99, 0x04, 0xb0]; // array(1200)
    for _ in 0..600 {
        seq.extend([0x01, 0x0f]);
    }
    assert!(matches!(Manifest::decode(Format::Ietf, &manifest_with_shared(&seq), &[]), Err(Error::TooMany { .. })));
    // 17 components
    let mut common = vec![0xa1, 0x02, 0x91];
    for _ in 0..17 {
        common.extend([0x81, 0x41, 0x00]);
    }
    let mut m = vec![0xa3, 0x01, 0x01, 0x02, 0x00, 0x03];
    m.extend(bstr_header(common.len()));
    m.extend(common);
    assert!(matches!(Manifest::decode(Format::Ietf, &m, &[]), Err(Error::TooMany { what: "components", .. })));
    // 10 signature blocks (RIOT layout)
    let block = [0xd2, 0x84, 0x43, 0xa1, 0x01, 0x27, 0xa0, 0x40, 0x40];
    let mut auth = vec![0x8a];
    for _ in 0..10 {
        auth.extend(bstr_header(block.len()));
        auth.extend(block);
    }
    let mut env = vec![0xa2, 0x02];
    env.extend(bstr_header(auth.len()));
    env.extend(auth);
    env.extend([0x03, 0x40]);
    assert!(matches!(Envelope::parse(&env), Err(Error::TooMany { .. })));
}

#[test]
fn unknown_format_and_structure_errors_are_specific() {
    // Tag 107 with a RIOT-style authentication wrapper.
    let mut b = vec![0xd8, 0x6b];
    b.extend_from_slice(RIOT_SIGNED);
    assert!(matches!(Envelope::parse(&b), Err(Error::UnknownFormat(_))));
    // Wrong tag.
    let mut b = vec![0xd8, 0x6c];
    b.extend_from_slice(&EX0[2..]);
    assert!(matches!(Envelope::parse(&b), Err(Error::Invalid { .. })));
    // Trailing garbage.
    let mut b = EX0.to_vec();
    b.push(0x00);
    assert!(matches!(Envelope::parse(&b), Err(Error::TrailingBytes { .. })));
    // Missing manifest: {2: h'80'}
    assert_eq!(
        Envelope::parse(&[0xa1, 0x02, 0x41, 0x80]).unwrap_err(),
        Error::MissingMember { what: "SUIT_Envelope", key: 3 }
    );
}

fn bstr_header(len: usize) -> Vec<u8> {
    // Major type 2 header, by hand so the test does not trust the code under test.
    let mut v = Vec::new();
    match len {
        0..=23 => v.push(0x40 | len as u8),
        24..=0xff => v.extend([0x58, len as u8]),
        0x100..=0xffff => v.extend([0x59, (len >> 8) as u8, len as u8]),
        _ => v.extend([0x5a, (len >> 24) as u8, (len >> 16) as u8, (len >> 8) as u8, len as u8]),
    }
    v
}

/// `{1: 1, 2: 0, 3: << {2: [[h'00']], 4: << seq >>} >>}`
fn manifest_with_shared(seq: &[u8]) -> Vec<u8> {
    let mut common = vec![0xa2, 0x02, 0x81, 0x81, 0x41, 0x00, 0x04];
    common.extend(bstr_header(seq.len()));
    common.extend(seq);
    let mut m = vec![0xa3, 0x01, 0x01, 0x02, 0x00, 0x03];
    m.extend(bstr_header(common.len()));
    m.extend(common);
    m
}
