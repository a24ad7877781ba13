//! `ferry keygen` → `ferry publish` → `ferry manifest inspect`, as a vendor runs them.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};

use ferry::suit::{Envelope, PublicKey};

fn ferry(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry")).current_dir(dir).args(args).output().expect("run ferry")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let o = ferry(dir, args);
    assert!(o.status.success(), "ferry {args:?} failed:\n{}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn keygen(dir: &Path, name: &str, alg: &str) {
    ok(dir, &["keygen", "--out", name, "--alg", alg]);
}

#[test]
fn keygen_writes_private_0600_and_public_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().expect("tmp");
    keygen(dir.path(), "vendor.pem", "ed25519");
    let private = dir.path().join("vendor.pem");
    let mode = std::fs::metadata(&private).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let pem = std::fs::read_to_string(&private).expect("read");
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI"), "openssl's layout: {pem}");
    let public = std::fs::read_to_string(dir.path().join("vendor.pem.pub")).expect("pub");
    PublicKey::from_pem(&public).expect("SPKI PEM");
    let again = ferry(dir.path(), &["keygen", "--out", "vendor.pem"]);
    assert!(!again.status.success());
    assert!(text(&again).contains("never overwrites"), "{}", text(&again));
    assert_eq!(std::fs::read_to_string(&private).expect("read"), pem, "the key is untouched");

    // openssl, when present, reads both files and derives the same public key.
    if Command::new("openssl").arg("version").output().is_ok_and(|o| o.status.success()) {
        let o = Command::new("openssl").args(["pkey", "-in"]).arg(&private).arg("-pubout").output().expect("openssl");
        assert_eq!(String::from_utf8_lossy(&o.stdout), public);
    } else if std::env::var("FERRY_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("openssl is missing, and FERRY_REQUIRE_TOOLS=1");
    } else {
        eprintln!("SKIPPED the openssl cross-check: openssl is missing");
    }
}

#[test]
fn riot_publish_then_inspect_with_right_and_wrong_key() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    keygen(d, "vendor.pem", "ed25519");
    keygen(d, "other.pem", "ed25519");
    std::fs::write(d.join("slot0.bin"), [0xa5u8; 1024]).expect("write");
    std::fs::write(d.join("slot1.bin"), [0x5au8; 2000]).expect("write");
    let out = ok(
        d,
        &[
            "publish",
            "--format",
            "riot",
            "--key",
            "vendor.pem",
            "--seq",
            "1764000000",
            "--vendor",
            "riot-os.org",
            "--class",
            "samr21-xpro",
            "--uri",
            "coap://[2001:db8::1]/fw/suit_update/samr21-xpro",
            "--slot",
            "0x1000",
            "slot0.bin",
            "--slot",
            "0x20800",
            "slot1.bin",
            "-o",
            "riot.suit.1764000000.bin",
        ],
    );
    assert!(out.contains("547d0d74-6d3a-5a92-9662-4881afd9407b"), "{out}");
    assert!(out.contains("8818989e-a257-5994-ac9a-554b77898083"), "{out}");

    // The envelope parses and authenticates by the library's rules, with RIOT's layout.
    let bytes = std::fs::read(d.join("riot.suit.1764000000.bin")).expect("read");
    assert!(bytes.len() <= 640, "fits RIOT's manifest buffer");
    let key = PublicKey::from_pem(&std::fs::read_to_string(d.join("vendor.pem.pub")).expect("pub")).expect("pub");
    let env = Envelope::parse(&bytes).expect("parses");
    assert_eq!(env.format(), ferry::suit::Format::Riot);
    let m = env.authenticate(&[key]).expect("authenticates").into_manifest();
    assert_eq!(m.sequence_number, 1_764_000_000);
    let images = &m.components[0].images;
    assert_eq!(images.iter().map(|i| i.slot).collect::<Vec<_>>(), [Some(0x1000), Some(0x20800)]);
    assert_eq!(images[1].uri.as_deref(), Some("coap://[2001:db8::1]/fw/suit_update/samr21-xpro/slot1.bin"));
    assert_eq!(images[1].size, Some(2000));

    // Right key: exit 0, says so.
    let good = ok(d, &["manifest", "inspect", "riot.suit.1764000000.bin", "--key", "vendor.pem.pub"]);
    assert!(good.contains("verified by vendor.pem.pub") && good.contains("sequence:  1764000000"), "{good}");
    // Wrong key: non-zero, with the reason.
    let bad = ferry(d, &["manifest", "inspect", "riot.suit.1764000000.bin", "--key", "other.pem.pub"]);
    assert!(!bad.status.success());
    assert!(text(&bad).contains("signature block 0") && text(&bad).contains("not verified"), "{}", text(&bad));
    // Right and wrong together: every block is verified by one of them, so it passes.
    ok(d, &["manifest", "inspect", "riot.suit.1764000000.bin", "--key", "other.pem.pub", "--key", "vendor.pem.pub"]);

    // --json parses, and carries the verdict.
    let json: serde_json::Value = serde_json::from_str(&ok(
        d,
        &["manifest", "inspect", "riot.suit.1764000000.bin", "--key", "vendor.pem.pub", "--json"],
    ))
    .expect("valid JSON");
    assert_eq!(json["ok"], true);
    assert_eq!(json["format"], "riot");
    assert_eq!(json["manifest"]["sequence_number"], 1_764_000_000u64);
    assert_eq!(json["signatures"][0]["alg_code"], -8);
    assert_eq!(json["manifest"]["components"][0]["images"][0]["size"], 1024);
    let bad = ferry(d, &["manifest", "inspect", "riot.suit.1764000000.bin", "--key", "other.pem.pub", "--json"]);
    assert!(!bad.status.success());
    let json: serde_json::Value = serde_json::from_slice(&bad.stdout).expect("valid JSON on failure too");
    assert_eq!(json["ok"], false);
    assert!(json["reason"].as_str().is_some_and(|r| r.contains("not verified")), "{json}");

    // publish refuses to overwrite without --force, and refuses P-256 for RIOT.
    let again = ferry(
        d,
        &[
            "publish",
            "--format",
            "riot",
            "--key",
            "vendor.pem",
            "--seq",
            "2",
            "--vendor",
            "riot-os.org",
            "--class",
            "samr21-xpro",
            "--uri",
            "coap://x/y",
            "--slot",
            "0",
            "slot0.bin",
            "--slot",
            "1",
            "slot1.bin",
            "-o",
            "riot.suit.1764000000.bin",
        ],
    );
    assert!(!again.status.success() && text(&again).contains("--force"), "{}", text(&again));
    keygen(d, "p256.pem", "p256");
    let p = ferry(
        d,
        &[
            "publish",
            "--format",
            "riot",
            "--key",
            "p256.pem",
            "--seq",
            "2",
            "--vendor",
            "riot-os.org",
            "--class",
            "samr21-xpro",
            "--uri",
            "coap://x/y",
            "--slot",
            "0",
            "slot0.bin",
            "--slot",
            "1",
            "slot1.bin",
            "-o",
            "p.suit",
        ],
    );
    assert!(!p.status.success() && text(&p).contains("EdDSA"), "{}", text(&p));
}

#[test]
fn ietf_publish_then_inspect_with_ed25519_and_p256() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    std::fs::write(d.join("app.bin"), b"application v3").expect("write");
    for (alg, name) in [("ed25519", "ed.pem"), ("p256", "p.pem")] {
        keygen(d, name, alg);
        let out = format!("{alg}.suit");
        ok(
            d,
            &[
                "publish",
                "--format",
                "ietf",
                "--key",
                name,
                "--seq",
                "3",
                "--vendor",
                "acme.example",
                "--class",
                "lamp-v2",
                "--component",
                "01",
                "--uri",
                "coaps://updates.acme.example/lamp/app.bin",
                "app.bin",
                "-o",
                &out,
            ],
        );
        let report = ok(d, &["manifest", "inspect", &out, "--key", &format!("{name}.pub")]);
        assert!(report.contains("ietf, tag 107") && report.contains("[h'01']"), "{report}");
        assert!(report.contains("coaps://updates.acme.example/lamp/app.bin"), "{report}");
        let other = if name == "ed.pem" { "p.pem.pub" } else { "ed.pem.pub" };
        if d.join(other).exists() {
            let bad = ferry(d, &["manifest", "inspect", &out, "--key", other]);
            assert!(!bad.status.success(), "{}", text(&bad));
        }
    }
    // A missing image is a clear error.
    let o = ferry(
        d,
        &[
            "publish",
            "--format",
            "ietf",
            "--key",
            "ed.pem",
            "--seq",
            "4",
            "--vendor",
            "acme.example",
            "--class",
            "lamp-v2",
            "--uri",
            "coap://x/a.bin",
            "-o",
            "x.suit",
        ],
    );
    assert!(!o.status.success() && text(&o).contains("no image"), "{}", text(&o));
}
