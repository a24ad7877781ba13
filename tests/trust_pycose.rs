//! Cross-implementation: envelopes ferry signs verify with pycose, and envelopes pycose signs
//! verify with ferry, for Ed25519 and P-256 in draft-37, and Ed25519 in RIOT's draft-09.
//!
//! Needs `python3` with `pycose` and `cbor2<6` (`pip install pycose 'cbor2<6'`). Without them
//! the tests print why and pass, unless `FERRY_REQUIRE_TOOLS=1`, when they fail.

use std::path::{Path, PathBuf};
use std::process::Command;

use ferry::suit::emit::{ImageSpec, ManifestSpec};
use ferry::suit::policy::{class_uuid, vendor_uuid};
use ferry::suit::{ComponentId, CoseAlg, Digest, Envelope, Format, PublicKey, SigningKey};

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/suit/testdata");
const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/suit_cose.py");
const ED_PRIV: &str = "test_ed25519_private_TESTONLY.pem";
const ED_PUB: &str = "test_ed25519_public.pem";
const P256_PRIV: &str = "draft-ietf-suit-manifest-37_examples_p256_private_TESTONLY.pem";
const P256_PUB: &str = "draft-ietf-suit-manifest-37_examples_p256_public.pem";

fn testdata(name: &str) -> PathBuf {
    Path::new(TESTDATA).join(name)
}

/// Whether pycose is usable; prints why not, or panics when tools are required.
fn have_pycose() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import pycose, cbor2"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        let msg = "python3 with pycose and cbor2<6 is missing (pip install pycose 'cbor2<6')";
        if std::env::var("FERRY_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!("{msg}, and FERRY_REQUIRE_TOOLS=1");
        }
        eprintln!("SKIPPED: {msg}");
    }
    ok
}

fn peer(args: &[&str]) -> (bool, String) {
    let out = Command::new("python3").arg(PEER).args(args).output().expect("run python3");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn spec(slots: bool) -> ManifestSpec {
    let vendor_id = vendor_uuid("riot-os.org");
    let class_id = class_uuid(&vendor_id, "nrf52840dk");
    let image = |slot, byte: u8| ImageSpec {
        slot,
        digest: Digest::sha256(&[byte; 300]),
        size: 300,
        uri: format!("coap://[fd00::1]/fw/{byte}.bin"),
    };
    ManifestSpec {
        sequence_number: 1_764_000_000,
        component: ComponentId(vec![vec![0]]),
        vendor_id,
        class_id,
        images: if slots { vec![image(Some(0x1000), 1), image(Some(0x20800), 2)] } else { vec![image(None, 1)] },
    }
}

#[test]
fn ferry_signed_envelopes_verify_with_pycose() {
    if !have_pycose() {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let ed = SigningKey::from_pkcs8_pem(&std::fs::read_to_string(testdata(ED_PRIV)).expect("key")).expect("ed");
    let p256 = SigningKey::from_pkcs8_pem(&std::fs::read_to_string(testdata(P256_PRIV)).expect("key")).expect("p256");
    // pycose 1.x knows EdDSA (-8) and ES256 (-7); -19/-9 are checked against ferry itself.
    let cases = [
        ("ietf-ed25519", Format::Ietf, &ed, CoseAlg::EdDsa, ED_PUB, false),
        ("ietf-ed25519-slots", Format::Ietf, &ed, CoseAlg::EdDsa, ED_PUB, true),
        ("ietf-p256", Format::Ietf, &p256, CoseAlg::Es256, P256_PUB, false),
        ("ietf-p256-slots", Format::Ietf, &p256, CoseAlg::Es256, P256_PUB, true),
        ("riot-ed25519", Format::Riot, &ed, CoseAlg::EdDsa, ED_PUB, true),
    ];
    for (name, format, key, alg, public, slots) in cases {
        let bytes = spec(slots).build(format, &[(key, alg)]).expect("builds");
        let path = dir.path().join(format!("{name}.suit"));
        std::fs::write(&path, &bytes).expect("write");
        let pub_path = testdata(public);
        let (ok, out) = peer(&["verify", path.to_str().expect("utf-8"), pub_path.to_str().expect("utf-8")]);
        assert!(ok, "{name}: pycose refused ferry's envelope: {out}");
        // And pycose must notice a flipped signature bit: the check is real.
        let mut bad = bytes.clone();
        let sig_byte = bad.len() - spec_tail(format, &bytes);
        bad[sig_byte] ^= 1;
        std::fs::write(&path, &bad).expect("write");
        let (ok, out) = peer(&["verify", path.to_str().expect("utf-8"), pub_path.to_str().expect("utf-8")]);
        assert!(!ok, "{name}: pycose accepted a corrupted signature: {out}");
    }
}

/// Distance from the end of the envelope to the last signature byte: draft-37 and RIOT both
/// put SUIT_Authentication first, so the signature ends right before the manifest member.
fn spec_tail(_format: Format, bytes: &[u8]) -> usize {
    let env = Envelope::parse(bytes).expect("parses");
    // key 3 (one byte) + the bstr-wrapped manifest follow the signature.
    env.manifest_bytes().len() + 2
}

#[test]
fn pycose_signed_envelopes_verify_with_ferry() {
    if !have_pycose() {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let unsigned_ietf = dir.path().join("unsigned-ietf.suit");
    std::fs::write(&unsigned_ietf, spec(true).build(Format::Ietf, &[]).expect("builds")).expect("write");
    let cases = [
        ("ietf", unsigned_ietf.clone(), ED_PRIV, "EdDSA", ED_PUB),
        ("ietf", unsigned_ietf.clone(), P256_PRIV, "ES256", P256_PUB),
        ("ietf", testdata("draft-ietf-suit-manifest-37_example2_unsigned_severed.cbor"), P256_PRIV, "ES256", P256_PUB),
        ("riot", testdata("riot-suit-tool-0.0.2_unsigned.cbor"), ED_PRIV, "EdDSA", ED_PUB),
    ];
    for (i, (format, unsigned, private, alg, public)) in cases.into_iter().enumerate() {
        let out_path = dir.path().join(format!("pycose-{i}.suit"));
        let (ok, out) = peer(&[
            "sign",
            format,
            unsigned.to_str().expect("utf-8"),
            testdata(private).to_str().expect("utf-8"),
            alg,
            out_path.to_str().expect("utf-8"),
        ]);
        assert!(ok, "pycose could not sign: {out}");
        let bytes = std::fs::read(&out_path).expect("read");
        let key = PublicKey::from_pem(&std::fs::read_to_string(testdata(public)).expect("pub")).expect("pub");
        let env = Envelope::parse(&bytes).expect("ferry parses pycose's envelope");
        assert_eq!(env.format(), if format == "riot" { Format::Riot } else { Format::Ietf });
        let auth = env.authenticate(&[key]).unwrap_or_else(|e| panic!("case {i} ({format} {alg}): {e}"));
        assert_eq!(auth.signers().len(), 1);
        if format == "riot" {
            // Ed25519 is deterministic: pycose and RIOT's suit-tool agree byte for byte.
            assert_eq!(bytes, std::fs::read(testdata("riot-suit-tool-0.0.2_ed25519_signed.cbor")).expect("vector"));
        }
    }
}

/// A policy whose one authority needs both test keys (Ed25519 and P-256) for riot-os.org.
fn two_key_policy(threshold: usize) -> ferry::suit::policy::Policy {
    let text = format!(
        "[radio]\nurl = \"sim:home.toml\"\n[[authority]]\nname = \"two-keys\"\nkeys = [\"{}\", \"{}\"]\n\
         threshold = {threshold}\n[authority.scope]\nvendor_ids = [\"riot-os.org\"]\nclass_ids = [\"*\"]\n\
         component_ids = [\"*\"]\n",
        testdata(ED_PUB).display(),
        testdata(P256_PUB).display()
    );
    let config = ferry::config::Config::parse(Path::new("ferry.toml"), &text).expect("config");
    ferry::suit::policy::Policy::from_config(&config.authorities, |p| std::fs::read_to_string(p)).expect("policy")
}

fn public(name: &str) -> PublicKey {
    PublicKey::from_pem(&std::fs::read_to_string(testdata(name)).expect("pub")).expect("pub")
}

#[test]
fn a_pycose_cose_sign_envelope_is_verified_signer_by_signer() {
    if !have_pycose() {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let unsigned = dir.path().join("unsigned.suit");
    std::fs::write(&unsigned, spec(true).build(Format::Ietf, &[]).expect("builds")).expect("write");
    let signed = dir.path().join("multi.suit");
    let ed = format!("{}:EdDSA", testdata(ED_PRIV).display());
    let p256 = format!("{}:ES256", testdata(P256_PRIV).display());
    let (ok, out) =
        peer(&["sign-multi", unsigned.to_str().expect("utf-8"), signed.to_str().expect("utf-8"), &ed, &p256]);
    assert!(ok, "pycose could not sign: {out}");
    let bytes = std::fs::read(&signed).expect("read");
    let env = Envelope::parse(&bytes).expect("ferry parses a COSE_Sign envelope");
    assert_eq!(env.signatures().len(), 2);
    assert!(env.signatures().iter().all(|s| s.is_cose_sign()));
    assert_eq!(env.signatures().iter().map(|s| s.alg()).collect::<Vec<_>>(), [CoseAlg::EdDsa, CoseAlg::Es256]);
    let auth = env.authenticate(&[public(P256_PUB), public(ED_PUB)]).expect("both signers verify");
    assert_eq!(auth.signers().len(), 2);
    // Thresholds count the distinct keys that signed inside the one block.
    let now = std::time::SystemTime::now();
    let accepted = two_key_policy(2).evaluate(&env, now).expect("2 of 2 keys signed");
    assert_eq!(accepted.manifest().sequence_number, 1_764_000_000);

    // Only the Ed25519 signer: one key of two, below the threshold.
    let single = dir.path().join("single.suit");
    let (ok, out) = peer(&["sign-multi", unsigned.to_str().expect("utf-8"), single.to_str().expect("utf-8"), &ed]);
    assert!(ok, "pycose could not sign: {out}");
    let bytes = std::fs::read(&single).expect("read");
    let env = Envelope::parse(&bytes).expect("parses");
    let refused = two_key_policy(2).evaluate(&env, now).expect_err("1 of 2 keys is not enough");
    assert!(refused.reason.contains("`two-keys` signed with 1 of the 2 distinct keys it needs"), "{}", refused.reason);
    two_key_policy(1).evaluate(&env, now).expect("1 of 2 keys is enough at threshold 1");
}

#[test]
fn pycose_mac_blocks_are_skipped_and_never_accepted() {
    if !have_pycose() {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let unsigned = dir.path().join("unsigned.suit");
    std::fs::write(&unsigned, spec(true).build(Format::Ietf, &[]).expect("builds")).expect("write");
    let now = std::time::SystemTime::now();
    for (kind, tag) in [("mac0", 17), ("mac", 97)] {
        let path = dir.path().join(format!("{kind}.suit"));
        let (ok, out) = peer(&["mac", unsigned.to_str().expect("utf-8"), path.to_str().expect("utf-8"), kind]);
        assert!(ok, "pycose could not MAC: {out}");
        let bytes = std::fs::read(&path).expect("read");
        let env = Envelope::parse(&bytes).expect("a MAC block parses as skipped");
        assert!(env.signatures().is_empty());
        let skipped = env.skipped_blocks();
        assert_eq!((skipped.len(), skipped[0].tag, skipped[0].reason.code()), (1, tag, "mac-shared-key"));
        let refused = two_key_policy(1).evaluate(&env, now).expect_err("a MAC alone is never accepted");
        assert!(
            refused.reason.contains("MAC-authenticated manifests need a shared key ferry does not hold"),
            "{}",
            refused.reason
        );
        assert_eq!(refused.threat.id(), "THREAT.IMG.NON_AUTH");
    }
    // A MAC next to a signature: the MAC is skipped, the signature decides.
    let path = dir.path().join("mac0-and-sign1.suit");
    let ed = format!("{}:EdDSA", testdata(ED_PRIV).display());
    let (ok, out) = peer(&["mac", unsigned.to_str().expect("utf-8"), path.to_str().expect("utf-8"), "mac0", &ed]);
    assert!(ok, "pycose could not sign: {out}");
    let bytes = std::fs::read(&path).expect("read");
    let env = Envelope::parse(&bytes).expect("parses");
    assert_eq!((env.skipped_blocks().len(), env.signatures().len()), (1, 1));
    assert_eq!(env.signatures()[0].block(), 1);
    two_key_policy(1).evaluate(&env, now).expect("the Ed25519 signature carries it");
}
