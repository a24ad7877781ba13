//! The trust policy against the attacks a gateway must stop (RFC 9124's threats, IDs from
//! draft-ietf-suit-information-model), and the scope rules between authorities.
//!
//! One `threat_*` test per threat that applies to a gateway verifying on behalf of devices.
//! Not here, because ferry has nothing to check for them: THREAT.IMG.FORMAT (neither encoding
//! carries a payload-format parameter RIOT reads), THREAT.UPD.WRONG_PRECURSOR (no delta
//! payloads), THREAT.UPD.UNAPPROVED (owner approval is the scheduler's decision, not the
//! signature policy's), THREAT.IMG.DISCLOSURE and THREAT.MFST.EXPOSURE (no encryption).

use std::path::Path;
use std::time::SystemTime;

use ferry::config::Config;
use ferry::store::sequence::{self, Eui64, SequenceError};
use ferry::suit::emit::{sign_manifest, ImageSpec, ManifestSpec};
use ferry::suit::policy::{class_uuid, vendor_uuid, Policy, Rejection, Threat};
use ferry::suit::{ComponentId, CoseAlg, Digest, Envelope, Format, SigningKey};

const RIOT_SIGNED: &[u8] = include_bytes!("../src/suit/testdata/riot-suit-tool-0.0.2_ed25519_signed.cbor");
const RIOT_BADSIG: &str = include_str!("../src/suit/testdata/riot-suit-tool-0.0.2_ed25519_NEG_badsig.hex");
const RIOT_SEQ_TAMPERED: &str = include_str!("../src/suit/testdata/riot-suit-tool-0.0.2_ed25519_NEG_seq_tampered.hex");
const RIOT_PUB: &str = include_str!("../src/suit/testdata/test_ed25519_public.raw.hex");
const EXAMPLE5: &[u8] = include_bytes!("../src/suit/testdata/draft-ietf-suit-manifest-37_example5_signed.cbor");
const P256_PUB_HEX: &str =
    include_str!("../src/suit/testdata/draft-ietf-suit-manifest-37_examples_p256_public.uncompressed.hex");

const APP: &[u8] = b"vendor application image, version 2";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    let t = text.trim();
    (0..t.len()).step_by(2).map(|i| u8::from_str_radix(&t[i..i + 2], 16).expect("hex")).collect()
}

fn key(seed: u8) -> SigningKey {
    SigningKey::ed25519_from_seed(&[seed; 32])
}

fn pubhex(seed: u8) -> String {
    hex(&key(seed).public_key().to_bytes())
}

/// 2026-07-01T00:00:00Z, a fixed "now".
fn now() -> SystemTime {
    at("2026-07-01T00:00:00Z")
}

fn at(rfc3339: &str) -> SystemTime {
    let t: toml::value::Datetime = rfc3339.parse().expect("datetime");
    ferry::suit::policy::datetime_to_system_time(&t).expect("offset datetime")
}

/// The authorities a flat's gateway trusts: a vendor for its lamp app, the RIOT community for
/// the OS on every board, an ops team with 2-of-3 keys (one listed twice), and a vendor in the
/// middle of a key rotation.
fn policy() -> Policy {
    let text = format!(
        r#"
[radio]
url = "sim:home.toml"

[[authority]]
name = "acme"
keys = ["{acme}"]
[authority.scope]
vendor_ids = ["acme.example"]
class_ids = ["lamp-v2"]
component_ids = ["01"]

[[authority]]
name = "riot-community"
keys = ["{riot}", "{riot2}"]
[authority.scope]
vendor_ids = ["riot-os.org"]
class_ids = ["*"]
component_ids = ["00"]

[[authority]]
name = "ops"
keys = ["{k3}", "{k3}", "{k4}"]
threshold = 2
[authority.scope]
vendor_ids = ["ops.example"]
class_ids = ["*"]
component_ids = ["*"]

[[authority]]
name = "rotating"
keys = [
  {{ key = "{old}", not_after = 2026-06-01T00:00:00Z }},
  {{ key = "{new}", not_before = 2026-06-01T00:00:00Z }},
]
[authority.scope]
vendor_ids = ["rotating.example"]
class_ids = ["sensor"]
component_ids = ["01"]
"#,
        acme = pubhex(1),
        riot = RIOT_PUB.trim(),
        riot2 = pubhex(2),
        k3 = pubhex(3),
        k4 = pubhex(4),
        old = pubhex(5),
        new = pubhex(6),
    );
    let config = Config::parse(Path::new("test.toml"), &text).expect("config parses");
    Policy::from_config(&config.authorities, |p| std::fs::read_to_string(p)).expect("policy builds")
}

fn spec(vendor: &str, class: &str, component: u8, seq: u64) -> ManifestSpec {
    let vendor_id = vendor_uuid(vendor);
    let class_id = class_uuid(&vendor_id, class);
    ManifestSpec {
        sequence_number: seq,
        component: ComponentId(vec![vec![component]]),
        vendor_id,
        class_id,
        images: vec![ImageSpec {
            slot: None,
            digest: Digest::sha256(APP),
            size: APP.len() as u64,
            uri: "coap://[fd00::1]/fw/app.bin".into(),
        }],
    }
}

fn signed(spec: &ManifestSpec, format: Format, signers: &[u8]) -> Vec<u8> {
    let keys: Vec<SigningKey> = signers.iter().map(|s| key(*s)).collect();
    let with_alg: Vec<(&SigningKey, CoseAlg)> = keys.iter().map(|k| (k, CoseAlg::EdDsa)).collect();
    spec.build(format, &with_alg).expect("builds")
}

fn evaluate(bytes: &[u8], when: SystemTime) -> Result<ferry::suit::Accepted, Rejection> {
    let env = Envelope::parse(bytes).expect("parses");
    policy().evaluate(&env, when)
}

fn rejected(bytes: &[u8], when: SystemTime, threat: Threat) -> Rejection {
    match evaluate(bytes, when) {
        Ok(a) => panic!("accepted, expected {threat}: {:?}", a.components()),
        Err(r) => {
            assert_eq!(r.threat, threat, "{r}");
            r
        }
    }
}

type EncodeResult = Result<(), minicbor::encode::Error<std::convert::Infallible>>;

fn enc(f: impl FnOnce(&mut minicbor::Encoder<Vec<u8>>) -> EncodeResult) -> Vec<u8> {
    let mut e = minicbor::Encoder::new(Vec::new());
    f(&mut e).expect("encode");
    e.into_writer()
}

fn db() -> rusqlite::Connection {
    let mut c = rusqlite::Connection::open_in_memory().expect("db");
    ferry::store::migrate(&mut c).expect("migrate");
    c
}

// ---- scopes ------------------------------------------------------------------------------

#[test]
fn each_authority_signs_its_own_component() {
    let app = evaluate(&signed(&spec("acme.example", "lamp-v2", 1, 7), Format::Ietf, &[1]), now()).expect("app");
    assert_eq!(app.components()[0].authority, "acme");
    // The OS, in RIOT's encoding, straight from RIOT's own suit-tool.
    let os = evaluate(RIOT_SIGNED, now()).expect("RIOT's vector is the community's OS");
    assert_eq!(os.components()[0].authority, "riot-community");
    assert_eq!(os.format(), Format::Riot);
}

#[test]
fn vendor_cannot_sign_the_os_component() {
    // Claiming RIOT's vendor and class for the OS component: only the community may sign that.
    let r =
        rejected(&signed(&spec("riot-os.org", "samr21-xpro", 0, 9), Format::Riot, &[1]), now(), Threat::MfstOverride);
    assert!(r.reason.contains("`acme`") && r.reason.contains("riot-community"), "{r}");
    // Under its own vendor ID, the OS component is simply not one acme may write.
    rejected(&signed(&spec("acme.example", "lamp-v2", 0, 9), Format::Ietf, &[1]), now(), Threat::ImgLocation);
}

#[test]
fn community_cannot_sign_the_vendor_app() {
    let r = rejected(&signed(&spec("acme.example", "lamp-v2", 1, 9), Format::Ietf, &[2]), now(), Threat::MfstOverride);
    assert!(r.reason.contains("riot-community"), "{r}");
}

#[test]
fn threshold_two_of_three_counts_a_duplicate_key_once() {
    let s = spec("ops.example", "gw", 4, 1);
    // Key 3 is listed twice and signs twice: still one key.
    let r = rejected(&signed(&s, Format::Ietf, &[3, 3]), now(), Threat::ImgNonAuth);
    assert!(r.reason.contains("1 of the 2"), "{r}");
    let ok = evaluate(&signed(&s, Format::Ietf, &[3, 4]), now()).expect("two distinct keys");
    assert_eq!((ok.components()[0].authority.as_str(), ok.components()[0].keys), ("ops", 2));
    // A key of another authority does not help reach ops' threshold.
    rejected(&signed(&s, Format::Ietf, &[3, 1]), now(), Threat::ImgNonAuth);
}

#[test]
fn expired_key_is_rejected_and_valid_before() {
    let env = signed(&spec("rotating.example", "sensor", 1, 3), Format::Ietf, &[5]);
    evaluate(&env, at("2026-05-31T23:59:59Z")).expect("the old key is still valid");
    let r = rejected(&env, at("2026-06-01T00:00:00Z"), Threat::KeyExposure);
    assert!(r.reason.contains("validity"), "{r}");
}

#[test]
fn rotated_key_is_accepted_from_its_not_before() {
    let env = signed(&spec("rotating.example", "sensor", 1, 4), Format::Ietf, &[6]);
    rejected(&env, at("2026-05-31T23:59:59Z"), Threat::KeyExposure);
    evaluate(&env, at("2026-06-01T00:00:00Z")).expect("the new key is valid from not_before");
}

#[test]
fn every_component_is_judged_on_its_own() {
    // draft-37 Example 5 writes two components, [h'00'] and [h'01'], but sets and checks the
    // vendor and class IDs only for [h'00']: component [h'01'] would install on any device.
    let one = |components: &str| {
        let text = format!(
            "[radio]\nurl = \"sim:x.toml\"\n[[authority]]\nname = \"arm\"\nkeys = [\"{}\"]\n[authority.scope]\n\
             vendor_ids = [\"arm.com\"]\nclass_ids = [\"*\"]\ncomponent_ids = [{components}]\n",
            P256_PUB_HEX.trim()
        );
        let config = Config::parse(Path::new("t.toml"), &text).expect("parses");
        Policy::from_config(&config.authorities, |p| std::fs::read_to_string(p)).expect("builds")
    };
    let env = Envelope::parse(EXAMPLE5).expect("parses");
    for scope in ["\"00\"", "\"00\", \"01\"", "\"*\""] {
        let r = one(scope).evaluate(&env, now()).expect_err("component 01 is not bound to a device class");
        assert_eq!(r.threat, Threat::ImgIncompatible, "{r}");
        assert!(r.reason.contains("h'01'"), "{r}");
    }
    // Example 3 (one component, checked) from the same author is accepted.
    let ex3 = include_bytes!("../src/suit/testdata/draft-ietf-suit-manifest-37_example3_signed.cbor");
    one("\"00\"").evaluate(&Envelope::parse(ex3).expect("parses"), now()).expect("accepted");
}

#[test]
fn policy_errors_say_what_to_fix() {
    let build = |extra: &str| {
        let text = format!("[radio]\nurl = \"sim:x.toml\"\n[[authority]]\nname = \"a\"\n{extra}");
        let config = Config::parse(Path::new("t.toml"), &text).expect("parses");
        Policy::from_config(&config.authorities, |p| std::fs::read_to_string(p)).expect_err("refused").to_string()
    };
    let k = pubhex(1);
    let e = build(&format!("keys = [\"{k}\", \"{k}\"]\nthreshold = 2\n[authority.scope]\nvendor_ids=[\"*\"]\nclass_ids=[\"*\"]\ncomponent_ids=[\"*\"]\n"));
    assert!(e.contains("1 distinct keys"), "{e}");
    let e = build(&format!("keys = [\"{k}\"]\n[authority.scope]\nvendor_ids=[\"*\"]\n"));
    assert!(e.contains("scope.class_ids is empty"), "{e}");
    let e = build(&format!(
        "keys = [\"{k}\"]\n[authority.scope]\nvendor_ids=[\"*\"]\nclass_ids=[\"board\"]\ncomponent_ids=[\"*\"]\n"
    ));
    assert!(e.contains("write the class UUID"), "{e}");
    let e = build("keys = [\"/nonexistent/key.pem\"]\n[authority.scope]\nvendor_ids=[\"*\"]\nclass_ids=[\"*\"]\ncomponent_ids=[\"*\"]\n");
    assert!(e.contains("/nonexistent/key.pem"), "{e}");
}

#[test]
fn key_files_and_inline_forms_load() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::copy("src/suit/testdata/test_ed25519_public.pem", dir.path().join("riot.pem")).expect("copy");
    let text = "[radio]\nurl = \"sim:x.toml\"\n[[authority]]\nname = \"riot\"\nkeys = [\"riot.pem\"]\n\
                [authority.scope]\nvendor_ids = [\"547d0d74-6d3a-5a92-9662-4881afd9407b\"]\n\
                class_ids = [\"samr21-xpro\"]\ncomponent_ids = [\"[h'00']\"]\n";
    std::fs::write(dir.path().join("ferry.toml"), text).expect("write");
    let loaded = ferry::config::LoadedConfig::load(&dir.path().join("ferry.toml")).expect("loads");
    let policy = Policy::from_config(&loaded.config.authorities, |p| std::fs::read_to_string(p)).expect("builds");
    policy.evaluate(&Envelope::parse(RIOT_SIGNED).expect("parses"), now()).expect("accepted");
}

// ---- one test per RFC 9124 threat ---------------------------------------------------------

#[test]
fn threat_img_non_auth_unknown_key_is_rejected() {
    let r = rejected(&signed(&spec("acme.example", "lamp-v2", 1, 7), Format::Ietf, &[99]), now(), Threat::ImgNonAuth);
    assert!(r.reason.contains("does not verify"), "{r}");
}

#[test]
fn threat_img_non_auth_unsigned_envelope_is_rejected() {
    rejected(&signed(&spec("acme.example", "lamp-v2", 1, 7), Format::Ietf, &[]), now(), Threat::ImgNonAuth);
    rejected(&unhex(RIOT_BADSIG), now(), Threat::ImgNonAuth);
}

#[test]
fn threat_img_expired_lower_or_equal_sequence_is_rejected() {
    // (The brief's "THREAT.UPD.OLD" is RFC 9124's THREAT.IMG.EXPIRED.)
    let mut db = db();
    let newer = evaluate(&signed(&spec("acme.example", "lamp-v2", 1, 20), Format::Ietf, &[1]), now()).expect("ok");
    sequence::admit(&mut db, &newer, 1).expect("first admission");
    for seq in [19, 20] {
        // Validly signed and within scope: only the store knows it is a rollback or replay.
        let old = evaluate(&signed(&spec("acme.example", "lamp-v2", 1, seq), Format::Ietf, &[1]), now()).expect("ok");
        match sequence::admit(&mut db, &old, 2) {
            Err(SequenceError::Rejected(r)) => assert_eq!(r.threat, Threat::ImgExpired, "{r}"),
            other => panic!("sequence {seq} was not refused: {other:?}"),
        }
    }
    let next = evaluate(&signed(&spec("acme.example", "lamp-v2", 1, 21), Format::Ietf, &[1]), now()).expect("ok");
    sequence::admit(&mut db, &next, 3).expect("a higher sequence number is admitted");
}

#[test]
fn threat_img_expired_offline_older_update_for_long_offline_device_is_rejected() {
    let mut db = db();
    let dev = Eui64([0x02, 0, 0, 0, 0, 0, 0, 0x2a]);
    let key = |a: &ferry::suit::Accepted| sequence::keys_of(a).remove(0);
    let v2 = evaluate(&signed(&spec("acme.example", "lamp-v2", 1, 2), Format::Ietf, &[1]), now()).expect("ok");
    let v3 = evaluate(&signed(&spec("acme.example", "lamp-v2", 1, 3), Format::Ietf, &[1]), now()).expect("ok");
    sequence::admit(&mut db, &v2, 1).expect("v2");
    sequence::set_installed(&db, dev, &ComponentId(vec![vec![1]]), 1, 1).expect("device runs v1");
    sequence::admit(&mut db, &v3, 2).expect("v3");
    // The device slept through v2 and v3; v2 beats what it runs, but is not the latest.
    match sequence::check_delivery(&db, dev, &key(&v2), 2) {
        Err(SequenceError::Rejected(r)) => assert_eq!(r.threat, Threat::ImgExpiredOffline, "{r}"),
        other => panic!("old update was offered: {other:?}"),
    }
    sequence::check_delivery(&db, dev, &key(&v3), 3).expect("the latest is delivered");
}

#[test]
fn threat_img_incompatible_wrong_class_is_rejected() {
    // acme's key, acme's vendor, but a class acme does not make: a lamp image for a thermostat.
    let r = rejected(
        &signed(&spec("acme.example", "thermostat", 1, 7), Format::Ietf, &[1]),
        now(),
        Threat::ImgIncompatible,
    );
    assert!(r.reason.contains("vendor and class"), "{r}");
}

#[test]
fn threat_img_location_component_outside_scope_is_rejected() {
    rejected(&signed(&spec("acme.example", "lamp-v2", 7, 7), Format::Ietf, &[1]), now(), Threat::ImgLocation);
}

#[test]
fn threat_mfst_override_out_of_scope_signer_is_rejected() {
    // The community is trusted, but it may not override what the vendor's app is.
    rejected(&signed(&spec("acme.example", "lamp-v2", 1, 7), Format::Ietf, &[2]), now(), Threat::MfstOverride);
}

#[test]
fn threat_net_onpath_modified_envelope_is_rejected() {
    // RIOT's negative vector: sequence number changed 2 -> 3 after signing.
    rejected(&unhex(RIOT_SEQ_TAMPERED), now(), Threat::NetOnPath);
}

#[test]
fn threat_net_redirect_payload_uri_is_bound_by_the_signature() {
    let bytes = signed(&spec("acme.example", "lamp-v2", 1, 7), Format::Ietf, &[1]);
    // Point the device at an attacker's host: the URI is inside the signed manifest.
    let needle = b"[fd00::1]";
    let at = bytes.windows(needle.len()).position(|w| w == needle).expect("uri in envelope");
    let mut evil = bytes.clone();
    evil[at + 1..at + 5].copy_from_slice(b"bad0");
    rejected(&evil, now(), Threat::NetOnPath);
    // And a payload fetched from a URI the manifest does not name is never taken.
    let ok = evaluate(&bytes, now()).expect("ok");
    let r = ok.check_payload("coap://[bad0::1]/fw/app.bin", APP).expect_err("redirected");
    assert_eq!(r.threat, Threat::NetRedirect);
    ok.check_payload("coap://[fd00::1]/fw/app.bin", APP).expect("the signed URI and payload");
}

#[test]
fn threat_img_replace_swapped_payload_is_rejected() {
    let ok = evaluate(&signed(&spec("acme.example", "lamp-v2", 1, 7), Format::Ietf, &[1]), now()).expect("ok");
    let mut swapped = APP.to_vec();
    swapped[0] ^= 1;
    let r = ok.check_payload("coap://[fd00::1]/fw/app.bin", &swapped).expect_err("swapped");
    assert_eq!(r.threat, Threat::ImgReplace, "{r}");
}

#[test]
fn threat_img_extra_appended_code_is_rejected() {
    let ok = evaluate(&signed(&spec("acme.example", "lamp-v2", 1, 7), Format::Ietf, &[1]), now()).expect("ok");
    let mut longer = APP.to_vec();
    longer.extend_from_slice(b"\x00\xde\xad");
    let r = ok.check_payload("coap://[fd00::1]/fw/app.bin", &longer).expect_err("extra");
    assert_eq!(r.threat, Threat::ImgExtra, "{r}");
}

#[test]
fn threat_key_exposure_rotated_out_key_is_rejected() {
    // After rotation, a stolen old key cannot sign new updates.
    rejected(&signed(&spec("rotating.example", "sensor", 1, 99), Format::Ietf, &[5]), now(), Threat::KeyExposure);
}

#[test]
fn threat_mfst_modification_image_without_digest_is_rejected() {
    // A validly signed manifest whose install fetches an image that no digest binds (what a
    // tampered build pipeline produces): the pre-deployment check refuses it.
    let vendor = vendor_uuid("acme.example");
    let class = class_uuid(&vendor, "lamp-v2");
    let shared = enc(|e| {
        e.array(6)?.u8(20)?.map(3)?;
        e.u8(1)?.bytes(vendor.as_bytes())?.u8(2)?.bytes(class.as_bytes())?.u8(14)?.u64(APP.len() as u64)?;
        e.u8(1)?.u8(15)?.u8(2)?.u8(15)?;
        Ok(())
    });
    let common = enc(|e| {
        e.map(2)?.u8(2)?.array(1)?.array(1)?.bytes(&[1])?.u8(4)?.bytes(&shared)?;
        Ok(())
    });
    let install = enc(|e| {
        e.array(4)?.u8(20)?.map(1)?.u8(21)?.str("coap://[fd00::1]/fw/app.bin")?.u8(21)?.u8(2)?;
        Ok(())
    });
    let manifest = enc(|e| {
        e.map(4)?.u8(1)?.u8(1)?.u8(2)?.u8(8)?.u8(3)?.bytes(&common)?.u8(20)?.bytes(&install)?;
        Ok(())
    });
    let item = enc(|e| {
        e.bytes(&manifest)?;
        Ok(())
    });
    let bytes = sign_manifest(Format::Ietf, &item, &[(&key(1), CoseAlg::EdDsa)]).expect("signs");
    let r = rejected(&bytes, now(), Threat::MfstModification);
    assert!(r.reason.contains("digest"), "{r}");
}

#[test]
fn threat_mfst_toctou_accepted_keeps_the_bytes_it_checked() {
    let mut buffer = signed(&spec("acme.example", "lamp-v2", 1, 7), Format::Ietf, &[1]);
    let accepted = {
        let env = Envelope::parse(&buffer).expect("parses");
        policy().evaluate(&env, now()).expect("ok")
    };
    // The download buffer is reused (or tampered with) after the check ...
    let last = buffer.len() - 1;
    buffer[last] ^= 0xff;
    // ... but what is cached and served is the checked copy, which still verifies.
    assert_ne!(accepted.envelope_bytes(), &buffer[..]);
    let again = Envelope::parse(accepted.envelope_bytes()).expect("parses");
    assert_eq!(policy().evaluate(&again, now()).expect("still accepted"), accepted);
}

/// A two-component draft-37 manifest: the RIOT OS as [h'00'] (riot-os.org, samr21-xpro) and
/// acme's application as [h'01'] (acme.example, lamp-v2), each with its own image.
fn os_and_app_manifest(seq: u64) -> Vec<u8> {
    let riot = vendor_uuid("riot-os.org");
    let acme = vendor_uuid("acme.example");
    let parts = [
        (riot.clone(), class_uuid(&riot, "samr21-xpro"), b"os image".as_slice(), "coap://[fd00::1]/fw/os.bin"),
        (acme.clone(), class_uuid(&acme, "lamp-v2"), APP, "coap://[fd00::1]/fw/app.bin"),
    ];
    let digest = |data: &[u8]| {
        enc(|e| {
            e.array(2)?.i8(-16)?.bytes(&Digest::sha256(data).bytes)?;
            Ok(())
        })
    };
    let shared = enc(|e| {
        e.array(2 * 4 * parts.len() as u64)?;
        for (i, (vendor, class, data, _)) in parts.iter().enumerate() {
            e.u8(12)?.u64(i as u64)?;
            e.u8(20)?.map(4)?.u8(1)?.bytes(vendor.as_bytes())?.u8(2)?.bytes(class.as_bytes())?;
            e.u8(3)?.bytes(&digest(data))?.u8(14)?.u64(data.len() as u64)?;
            e.u8(1)?.u8(15)?.u8(2)?.u8(15)?;
        }
        Ok(())
    });
    let common = enc(|e| {
        e.map(2)?.u8(2)?.array(2)?.array(1)?.bytes(&[0])?.array(1)?.bytes(&[1])?.u8(4)?.bytes(&shared)?;
        Ok(())
    });
    let install = enc(|e| {
        e.array(2 * 3 * parts.len() as u64)?;
        for (i, (_, _, _, uri)) in parts.iter().enumerate() {
            e.u8(12)?.u64(i as u64)?.u8(20)?.map(1)?.u8(21)?.str(uri)?.u8(21)?.u8(2)?;
        }
        Ok(())
    });
    let manifest = enc(|e| {
        e.map(4)?.u8(1)?.u8(1)?.u8(2)?.u64(seq)?.u8(3)?.bytes(&common)?.u8(20)?.bytes(&install)?;
        Ok(())
    });
    enc(|e| {
        e.bytes(&manifest)?;
        Ok(())
    })
}

#[test]
fn a_manifest_touching_os_and_app_needs_both_authorities() {
    let item = os_and_app_manifest(5);
    let sign = |seeds: &[u8]| {
        let keys: Vec<SigningKey> = seeds.iter().map(|s| key(*s)).collect();
        let signers: Vec<(&SigningKey, CoseAlg)> = keys.iter().map(|k| (k, CoseAlg::EdDsa)).collect();
        sign_manifest(Format::Ietf, &item, &signers).expect("signs")
    };
    // The vendor alone may not carry the OS along with its app ...
    let r = rejected(&sign(&[1]), now(), Threat::MfstOverride);
    assert!(r.reason.contains("h'00'") && r.reason.contains("riot-community"), "{r}");
    // ... nor the community the app along with the OS.
    let r = rejected(&sign(&[2]), now(), Threat::MfstOverride);
    assert!(r.reason.contains("h'01'") && r.reason.contains("acme"), "{r}");
    // Both signing: each component is vouched for by its own authority.
    let ok = evaluate(&sign(&[1, 2]), now()).expect("both authorities signed");
    let by: Vec<(&str, &str)> =
        ok.components().iter().map(|c| (c.authority.as_str(), if c.id.0[0] == [0] { "os" } else { "app" })).collect();
    assert_eq!(by, [("riot-community", "os"), ("acme", "app")]);
    // And anti-rollback tracks both components.
    let mut db = db();
    sequence::admit(&mut db, &ok, 1).expect("admitted");
    assert_eq!(sequence::keys_of(&ok).len(), 2);
    for k in sequence::keys_of(&ok) {
        assert_eq!(sequence::highest_accepted(&db, &k).expect("query"), Some(5));
    }
}
