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

/// A 256 KiB image (256 blocks of 1024 bytes) and its manifest at `fw/big.suit`, signed with
/// the test key.
fn write_big_release(root: &Path) -> Vec<u8> {
    use ferry::suit::emit::{ImageSpec, ManifestSpec};
    use ferry::suit::policy::{class_uuid, vendor_uuid};
    use ferry::suit::{ComponentId, CoseAlg, Digest, Format};
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let image: Vec<u8> = (0..256 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let vendor_id = vendor_uuid("riot-os.org");
    let spec = ManifestSpec {
        sequence_number: 7,
        component: ComponentId(vec![vec![0]]),
        class_id: class_uuid(&vendor_id, "samr21-xpro"),
        vendor_id,
        images: vec![ImageSpec {
            slot: None,
            digest: Digest::sha256(&image),
            size: image.len() as u64,
            uri: "coap://[fd00::1]/fw/big.bin".into(),
        }],
    };
    let envelope = spec.build(Format::Ietf, &[(&signing_key(), CoseAlg::EdDsa)]).expect("builds");
    std::fs::create_dir_all(root.join("fw")).expect("mkdir");
    std::fs::write(root.join("fw/big.suit"), envelope).expect("envelope");
    std::fs::write(root.join("fw/big.bin"), &image).expect("image");
    image
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coap_download_killed_midway_resumes_at_the_next_block() {
    if !have_tool("aiocoap-fileserver", &["--help"]) {
        return;
    }
    let (root, state) = (tempfile::tempdir().expect("tmp"), tempfile::tempdir().expect("tmp"));
    let repo_dir = root.path().join("repo");
    let image = write_big_release(&repo_dir);
    let digest = digest_of(&image);
    let partial = state.path().join("blobs/sha256").join(format!(".partial-{}", digest.hex()));
    let server = start_fileserver(root.path());
    let mut cfg = config("coap", url(&server), false);
    cfg.watch = vec!["fw/big.suit".into()];
    {
        let cache = open_cache(state.path(), u64::MAX);
        let mut repo = repository(&cfg, &cache);
        let sync = tokio::spawn(async move { repo.sync(now()).await.map(|r| r.accepted.len()) });
        // Kill the server and stop ferry once some blocks are on disk.
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::fs::metadata(&partial).map_or(0, |m| m.len()) < 16 * 1024 {
            assert!(!sync.is_finished(), "the download ended before it could be cut: {:?}", sync.await);
            assert!(Instant::now() < deadline, "the download never started");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        drop(server);
        sync.abort();
        assert!(sync.await.is_err(), "ferry was stopped mid-download");
    }
    let kept = std::fs::metadata(&partial).expect("the partial download is kept").len();
    assert!(kept >= 16 * 1024 && kept < image.len() as u64, "{kept}");
    assert!(!blob_files(state.path()).contains(&digest.hex()), "no partial blob under its final name");

    // Both come back: ferry asks for the block after the last one written, and only for the rest.
    let server = start_fileserver(root.path());
    cfg.url = url(&server);
    let cache = open_cache(state.path(), u64::MAX);
    assert!(cache.scrub(true).await.expect("scrub").is_clean());
    let mut repo = repository(&cfg, &cache);
    let report = repo.sync(now()).await.expect("sync");
    assert_eq!(report.accepted.len(), 1, "{report:?}");
    let fetched = repo.metrics().snapshot()[4];
    assert_eq!(fetched, image.len() as u64 - kept / 1024 * 1024, "only the rest was fetched");
    assert_eq!(std::fs::read(blob_path(state.path(), &digest)).expect("blob"), image);
    assert!(!partial.exists());
    assert!(cache.scrub(false).await.expect("verify").is_clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_index_is_picked_up_through_observe_without_waiting_for_the_poll() {
    if !have_tool("aiocoap-fileserver", &["--help"]) {
        return;
    }
    let (root, state) = (tempfile::tempdir().expect("tmp"), tempfile::tempdir().expect("tmp"));
    let repo_dir = root.path().join("repo");
    std::fs::create_dir_all(&repo_dir).expect("mkdir");
    write_index(&repo_dir, 1, FAR, &[]);
    let server = start_fileserver(root.path());
    let mut cfg = config("coap", url(&server), true);
    cfg.poll_interval_s = 3600; // only a notification can bring the change in time
    let cache = open_cache(state.path(), u64::MAX);
    let repo = repository(&cfg, &cache);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let (tx, mut accepted) = tokio::sync::mpsc::channel(4);
    let metrics = repo.metrics().clone();
    let task = tokio::spawn(repo.run(shutdown.clone(), tx));
    // The first poll runs at once and registers the observation.
    let deadline = Instant::now() + Duration::from_secs(20);
    while metrics.snapshot()[0] < 1 {
        assert!(Instant::now() < deadline, "the first poll never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    write_release(&repo_dir);
    write_index(&repo_dir, 2, FAR, &[MANIFEST_PATH]);
    // aiocoap-fileserver looks at its files every 10 s, then notifies.
    let m = tokio::time::timeout(Duration::from_secs(30), accepted.recv())
        .await
        .expect("the new index was noticed long before the next poll")
        .expect("a manifest");
    assert_eq!(m.manifest.sequence_number, 2);
    assert_eq!(metrics.snapshot()[0], 2, "one poll at start, one on the notification");
    shutdown.cancel();
    task.await.expect("the poller stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_sends_empty_blocks_saying_more_follow_is_refused() {
    // A CoAP "repository" that answers every block request with 2.05, Block2 M=1 and no bytes.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = socket.local_addr().expect("addr").port();
    socket.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let server = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else { continue };
                let Ok(req) = coap_lite::Packet::from_bytes(&buf[..n]) else { continue };
                let mut resp = coap_lite::Packet::new();
                resp.header.set_type(coap_lite::MessageType::Acknowledgement);
                resp.header.message_id = req.header.message_id;
                resp.header.code = coap_lite::MessageClass::Response(coap_lite::ResponseType::Content);
                resp.set_token(req.get_token().to_vec());
                let num = req
                    .get_option(coap_lite::CoapOption::Block2)
                    .and_then(|v| v.front().cloned())
                    .map_or(0u32, |b| b.iter().fold(0u32, |a, x| (a << 8) | u32::from(*x)) >> 4);
                // Block2 = num, M = 1, SZX = 6 (1024 bytes).
                let value = (num << 4) | 0x08 | 6;
                let bytes: Vec<u8> = value.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
                resp.add_option(coap_lite::CoapOption::Block2, bytes);
                if let Ok(out) = resp.to_bytes() {
                    let _ = socket.send_to(&out, from);
                }
            }
        })
    };
    let state = tempfile::tempdir().expect("tmp");
    let cache = open_cache(state.path(), u64::MAX);
    let url = RepositoryUrl::Remote(format!("coap://127.0.0.1:{port}/repo").parse().expect("url"));
    let transport = ferry::repo::transport::Transport::new(&url, None).expect("transport");
    let writer = cache.writer_unknown(1 << 20, "test").expect("writer");
    let result = tokio::time::timeout(Duration::from_secs(20), transport.download("fw/x.bin", writer)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = server.join();
    let error = result.expect("the download ends instead of asking for the same block for ever").unwrap_err();
    assert!(error.to_string().contains("holds 0 bytes but says more follow"), "{error}");
}
