//! CoAP repositories against a real `aiocoap-fileserver` (what RIOT's SUIT examples use as
//! their repository) on loopback. Skips when aiocoap is not installed.

mod common_repo;

use std::path::Path;
use std::time::{Duration, Instant};

use common_repo::*;
use ferry::config::RepositoryUrl;
use ferry::store::cache as q;

struct FileServer {
    child: std::process::Child,
    port: u16,
}

impl Drop for FileServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_fileserver(root: &Path) -> FileServer {
    let port = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let child = std::process::Command::new("aiocoap-fileserver")
        .arg("--bind")
        .arg(format!("127.0.0.1:{port}"))
        .arg(root)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn aiocoap-fileserver");
    // Up once it holds the port.
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "aiocoap-fileserver did not bind 127.0.0.1:{port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    FileServer { child, port }
}

fn url(server: &FileServer) -> RepositoryUrl {
    RepositoryUrl::Remote(format!("coap://127.0.0.1:{}/repo", server.port).parse().expect("url"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coap_fileserver_repository_new_manifest_and_refusals() {
    if !have_tool("aiocoap-fileserver", &["--help"]) {
        return;
    }
    let (root, state) = (tempfile::tempdir().expect("tmp"), tempfile::tempdir().expect("tmp"));
    let repo_dir = root.path().join("repo");
    std::fs::create_dir_all(&repo_dir).expect("mkdir");
    write_index(&repo_dir, 1, FAR, &[]);
    let server = start_fileserver(root.path());
    let cache = open_cache(state.path(), u64::MAX);
    let mut repo = repository(&config("coap", url(&server), true), &cache);
    let report = repo.sync(now()).await.expect("first sync");
    assert_eq!(report.index_version, Some(1));

    // A new release, with slot0 longer than signed: cut off, nothing cached.
    write_release(&repo_dir);
    let mut long = SLOT0.to_vec();
    long.extend_from_slice(&[0; 8192]);
    std::fs::write(repo_dir.join("fw/slot0.bin"), long).expect("extend");
    write_index(&repo_dir, 2, FAR, &[MANIFEST_PATH]);
    let report = repo.sync(now()).await.expect("sync");
    assert_eq!((report.accepted.len(), report.rejected), (0, 1), "{report:?}");
    let rejections = cache.store().call(|c| q::rejections(c, 10)).await.expect("rejections");
    assert_eq!(rejections[0].threat.as_deref(), Some("THREAT.IMG.EXTRA"), "{rejections:?}");

    // Fixed: fetched block-wise, verified and cached.
    std::fs::write(repo_dir.join("fw/slot0.bin"), SLOT0).expect("fix");
    let report = repo.sync(now()).await.expect("sync");
    assert_eq!(report.accepted.len(), 1, "{report:?}");
    for d in [digest_of(ENVELOPE), digest_of(SLOT0), digest_of(SLOT1)] {
        assert!(cache.contains(&d).await.expect("contains"), "{d}");
    }

    // Rolled back index over CoAP: refused.
    write_index(&repo_dir, 1, FAR, &[]);
    let err = repo.sync(now()).await.expect_err("rollback");
    assert!(err.to_string().contains("rollback"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coap_riot_layout_with_watch_paths() {
    if !have_tool("aiocoap-fileserver", &["--help"]) {
        return;
    }
    let (root, state) = (tempfile::tempdir().expect("tmp"), tempfile::tempdir().expect("tmp"));
    let repo_dir = root.path().join("repo");
    write_release(&repo_dir);
    let server = start_fileserver(root.path());
    let cache = open_cache(state.path(), u64::MAX);
    let mut repo = repository(&config("riot", url(&server), false), &cache);
    let report = repo.sync(now()).await.expect("sync");
    assert_eq!(report.accepted.len(), 1, "{report:?}");
    assert_eq!(report.accepted[0].manifest.sequence_number, 2);
}
