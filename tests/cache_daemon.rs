//! `ferry cache ls|verify|gc` over a running ferryd's control socket, on the demo repository.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{ferry, test_config, Ferryd};
use ferry::control::api::CacheReport;
use ferry::store::cache::BlobKind;

/// The embedded default's repository folder, with a RIOT update signed by a test-only key.
const REPOSITORY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/repository");
const RIOT_TEST_KEY: &str = "2eaf3e1decf7d8b376ee9692a11a9f834d1dd66c3c431ca5ae919ea6dbdf2471";

fn config() -> String {
    // A long poll interval: nothing is fetched again while the test looks at the cache.
    test_config(&format!(
        "[[repository]]\nname = \"local\"\nurl = \"{REPOSITORY}\"\nwatch = [\"samr21-xpro/manifest.suit\"]\n\
         poll_interval_s = 3600\n\
         [[authority]]\nname = \"riot-test\"\nkeys = [\"{RIOT_TEST_KEY}\"]\n[authority.scope]\n\
         vendor_ids = [\"riot-os.org\"]\nclass_ids = [\"*\"]\ncomponent_ids = [\"*\"]\n"
    ))
}

fn ls(socket: &Path) -> CacheReport {
    let out = ferry(socket, &["cache", "ls", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("a cache report")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Pins `digest` as a delivery would, through the store's own query, while ferryd runs.
fn pin(state_dir: &Path, digest: &str) {
    let conn = rusqlite::Connection::open(state_dir.join("ferry.db")).expect("open the store");
    conn.busy_timeout(Duration::from_secs(10)).expect("busy timeout");
    ferry::store::cache::pin(&conn, "delivery:cache-test", digest, 1).expect("pin");
}

#[test]
fn cache_ls_verify_and_gc_over_the_control_socket() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Other uids reach the socket only through a searchable folder.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut ferryd = Ferryd::spawn(dir.path(), &config());
    ferryd.wait_ready();
    let socket = ferryd.socket();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut report = ls(&socket);
    while report.blobs.len() < 3 {
        assert!(Instant::now() < deadline, "the demo update was never cached: {report:?}\n{}", ferryd.log());
        std::thread::sleep(Duration::from_millis(100));
        report = ls(&socket);
    }
    let envelopes: Vec<_> = report.blobs.iter().filter(|b| b.kind == BlobKind::Envelope).collect();
    let payloads: Vec<_> = report.blobs.iter().filter(|b| b.kind == BlobKind::Payload).collect();
    assert_eq!((envelopes.len(), payloads.len()), (1, 2), "{report:?}");
    assert_eq!(report.total_bytes, report.blobs.iter().map(|b| b.size).sum::<u64>());
    let (kept, victim) = (payloads[0].digest.clone(), payloads[1].digest.clone());

    // A delivery pins one slot's payload; ls shows the pin.
    pin(&dir.path().join("state"), &kept);
    let report = ls(&socket);
    let pins = |r: &CacheReport, d: &str| r.blobs.iter().find(|b| b.digest == d).map(|b| b.pins);
    assert_eq!(pins(&report, &kept), Some(1));
    assert_eq!(pins(&report, &victim), Some(0));
    let table = text(&ferry(&socket, &["cache", "ls"]));
    assert!(table.contains("envelope") && table.contains("payload") && table.contains("3 blobs"), "{table}");

    let verify = ferry(&socket, &["cache", "verify"]);
    assert!(verify.status.success(), "{}", text(&verify));
    assert!(text(&verify).contains("checked 3 blobs") && text(&verify).ends_with("ok\n"), "{}", text(&verify));

    // Only root verifies and collects: they drop files.
    let nobody = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_ferry"))
        .arg("--socket")
        .arg(&socket)
        .args(["cache", "gc", "--max-mib", "0"])
        .output()
        .expect("run setpriv");
    assert!(!nobody.status.success(), "{}", text(&nobody));
    assert!(text(&nobody).contains("uid 65534 may not") && text(&nobody).contains("only root"), "{}", text(&nobody));
    assert_eq!(ls(&socket).blobs.len(), 3, "the refused gc changed nothing");

    // A payload rots on disk: verify names it and drops it; the next verify is clean.
    let blob = dir.path().join("state/blobs/sha256").join(&victim);
    let mut bytes = std::fs::read(&blob).expect("read blob");
    bytes[0] ^= 0xff;
    std::fs::write(&blob, bytes).expect("corrupt blob");
    let verify = ferry(&socket, &["cache", "verify"]);
    assert!(!verify.status.success(), "{}", text(&verify));
    assert!(text(&verify).contains(&format!("corrupt (dropped): {victim}")), "{}", text(&verify));
    assert!(!blob.exists(), "the corrupt file is gone");
    assert_eq!(pins(&ls(&socket), &victim), None, "its row is gone");
    let verify = ferry(&socket, &["cache", "verify"]);
    assert!(verify.status.success(), "{}", text(&verify));

    // gc down to nothing evicts what is not pinned, and keeps the pinned payload.
    let gc = ferry(&socket, &["cache", "gc", "--max-mib", "0"]);
    assert!(gc.status.success(), "{}", text(&gc));
    assert!(text(&gc).contains("evicted 1 blobs"), "{}", text(&gc));
    assert!(text(&gc).contains("pinned by deliveries"), "{}", text(&gc));
    let report = ls(&socket);
    assert_eq!(report.blobs.iter().map(|b| b.digest.as_str()).collect::<Vec<_>>(), [kept.as_str()]);
    assert!(dir.path().join("state/blobs/sha256").join(&kept).is_file());
}

#[test]
fn cache_with_a_state_dir_works_on_a_stopped_daemon() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut ferryd = Ferryd::spawn(dir.path(), &config());
    ferryd.wait_ready();
    ferryd.wait_log("verified and cached");
    ferryd.signal("TERM");
    assert_eq!(ferryd.wait_exit(), Some(0));
    let state = dir.path().join("state");
    let out =
        ferry(&dir.path().join("nobody-listens.sock"), &["cache", "ls", "--state-dir", state.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("3 blobs"), "{}", text(&out));
    let out = ferry(
        &dir.path().join("nobody-listens.sock"),
        &["cache", "verify", "--state-dir", state.to_str().expect("utf-8")],
    );
    assert!(out.status.success() && text(&out).contains("checked 3 blobs"), "{}", text(&out));
}
