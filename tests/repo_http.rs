//! HTTP repositories against real servers on loopback: a small HTTP/1.1 file server written
//! here (Range, ETag, and knobs to cut a download or send endless data) and, when installed,
//! `python3 -m http.server`.

mod common_repo;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common_repo::*;
use ferry::config::RepositoryUrl;
use ferry::store::cache as q;
use sha2::Digest as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Default)]
struct Knobs {
    /// Serve this path's body only up to this many bytes, then drop the connection.
    cut: Mutex<Option<(String, usize)>>,
    /// Serve `fw/slot0.bin` as an endless stream.
    endless: AtomicBool,
    /// Bytes the endless stream got out before the client hung up.
    endless_sent: AtomicU64,
    endless_hung_up: AtomicBool,
    ranges: Mutex<Vec<String>>,
    not_modified: AtomicUsize,
}

struct TestServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    async fn start(root: &Path, knobs: Arc<Knobs>, addr: Option<SocketAddr>) -> TestServer {
        let listener =
            TcpListener::bind(addr.unwrap_or_else(|| "127.0.0.1:0".parse().expect("addr"))).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let root = root.to_owned();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (root, knobs) = (root.clone(), knobs.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, &root, &knobs).await;
                });
            }
        });
        TestServer { addr, task }
    }

    fn url(&self) -> RepositoryUrl {
        RepositoryUrl::Remote(format!("http://{}/repo", self.addr).parse().expect("url"))
    }

    /// Kills the server: no more connections are accepted.
    async fn kill(self) -> SocketAddr {
        self.task.abort();
        // The listener closes only once the task is gone.
        let _ = self.task.await;
        self.addr
    }
}

async fn serve(mut s: TcpStream, root: &Path, knobs: &Knobs) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
        if s.read(&mut byte).await? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.lines();
    let target = lines.next().and_then(|l| l.split(' ').nth(1)).unwrap_or("/").to_owned();
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_owned())
        })
    };
    let rel = target.trim_start_matches("/repo/").to_owned();
    let Ok(body) = std::fs::read(root.join(&rel)) else {
        return s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
    };
    if knobs.endless.load(Ordering::SeqCst) && rel == "fw/slot0.bin" {
        s.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n").await?;
        let chunk = vec![0xa5u8; 4096];
        for _ in 0..16_384 {
            if s.write_all(&chunk).await.is_err() {
                knobs.endless_hung_up.store(true, Ordering::SeqCst);
                return Ok(());
            }
            knobs.endless_sent.fetch_add(chunk.len() as u64, Ordering::SeqCst);
        }
        return Ok(());
    }
    let etag = format!("\"{}\"", &hex(&sha2::Sha256::digest(&body))[..16]);
    if header("if-none-match").as_deref() == Some(etag.as_str()) {
        knobs.not_modified.fetch_add(1, Ordering::SeqCst);
        let r = format!("HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\nConnection: close\r\n\r\n");
        return s.write_all(r.as_bytes()).await;
    }
    let mut start = 0usize;
    let mut status = "200 OK".to_owned();
    let mut extra = String::new();
    if let Some(range) = header("range") {
        knobs.ranges.lock().expect("lock").push(format!("{rel} {range}"));
        let from = range.strip_prefix("bytes=").and_then(|r| r.strip_suffix('-')).and_then(|n| n.parse().ok());
        match from {
            Some(n) if n < body.len() => {
                start = n;
                status = "206 Partial Content".into();
                extra = format!("Content-Range: bytes {n}-{}/{}\r\n", body.len() - 1, body.len());
            }
            _ => {
                return s
                    .write_all(b"HTTP/1.1 416 Range Not Satisfiable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await
            }
        }
    }
    let rest = &body[start..];
    let r = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nETag: {etag}\r\n{extra}Connection: close\r\n\r\n",
        rest.len()
    );
    s.write_all(r.as_bytes()).await?;
    let cut = knobs.cut.lock().expect("lock").clone();
    match cut {
        Some((path, n)) if path == rel => {
            s.write_all(&rest[..n.min(rest.len())]).await?;
            s.flush().await?;
            // Killed mid-download: the connection drops with the body incomplete.
            Ok(())
        }
        _ => s.write_all(rest).await,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_picks_up_a_new_manifest_with_conditional_gets() {
    let (root, state) = (tempfile::tempdir().expect("tmp"), tempfile::tempdir().expect("tmp"));
    let repo_dir = root.path().join("repo");
    write_index(&mk(&repo_dir), 1, FAR, &[]);
    let knobs = Arc::new(Knobs::default());
    let server = TestServer::start(&repo_dir, knobs.clone(), None).await;
    let cache = open_cache(state.path(), u64::MAX);
    let mut repo = repository(&config("web", server.url(), true), &cache);
    assert!(repo.sync(now()).await.expect("sync").accepted.is_empty());
    // Unchanged index: answered 304 to our If-None-Match.
    repo.sync(now()).await.expect("sync");
    assert_eq!(knobs.not_modified.load(Ordering::SeqCst), 1);

    write_release(&repo_dir);
    write_index(&repo_dir, 2, FAR, &[MANIFEST_PATH]);
    let report = repo.sync(now()).await.expect("sync");
    assert_eq!(report.accepted.len(), 1, "{report:?}");
    assert_eq!(report.index_version, Some(2));
    for d in [digest_of(ENVELOPE), digest_of(SLOT0), digest_of(SLOT1)] {
        assert!(cache.contains(&d).await.expect("contains"));
    }
}

fn mk(p: &Path) -> PathBuf {
    std::fs::create_dir_all(p).expect("mkdir");
    p.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_killed_midway_resumes_with_range_after_restart() {
    let (root, state) = (tempfile::tempdir().expect("tmp"), tempfile::tempdir().expect("tmp"));
    let repo_dir = mk(&root.path().join("repo"));
    write_release(&repo_dir);
    write_index(&repo_dir, 1, FAR, &[MANIFEST_PATH]);
    let knobs = Arc::new(Knobs::default());
    *knobs.cut.lock().expect("lock") = Some(("fw/slot0.bin".into(), 500));
    let server = TestServer::start(&repo_dir, knobs.clone(), None).await;
    let url = server.url();
    let slot0 = digest_of(SLOT0);
    {
        let cache = open_cache(state.path(), u64::MAX);
        let mut repo = repository(&config("web", url.clone(), true), &cache);
        let report = repo.sync(now()).await.expect("sync");
        assert!(report.accepted.is_empty() && !report.errors.is_empty(), "{report:?}");
        assert!(!cache.contains(&slot0).await.expect("contains"));
    } // ferry stops
    let files = blob_files(state.path());
    assert!(!files.contains(&slot0.hex()), "a partial blob under its final name: {files:?}");
    let partial = state.path().join("blobs/sha256").join(format!(".partial-{}", slot0.hex()));
    assert_eq!(std::fs::metadata(&partial).expect("partial kept").len(), 500);

    // The server dies and comes back on the same port, whole; ferry restarts (with its scrub).
    let addr = server.kill().await;
    *knobs.cut.lock().expect("lock") = None;
    let _server = TestServer::start(&repo_dir, knobs.clone(), Some(addr)).await;
    let cache = open_cache(state.path(), u64::MAX);
    assert!(cache.scrub(true).await.expect("scrub").is_clean());
    let mut repo = repository(&config("web", url, true), &cache);
    let report = repo.sync(now()).await.expect("sync");
    assert_eq!(report.accepted.len(), 1, "{report:?}");
    assert!(knobs.ranges.lock().expect("lock").contains(&"fw/slot0.bin bytes=500-".to_owned()));
    assert_eq!(std::fs::read(blob_path(state.path(), &slot0)).expect("blob"), SLOT0);
    assert!(!partial.exists());
    assert!(cache.scrub(false).await.expect("verify").is_clean());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_http_body_is_cut_off() {
    let (root, state) = (tempfile::tempdir().expect("tmp"), tempfile::tempdir().expect("tmp"));
    let repo_dir = mk(&root.path().join("repo"));
    write_release(&repo_dir);
    write_index(&repo_dir, 1, FAR, &[MANIFEST_PATH]);
    let knobs = Arc::new(Knobs::default());
    knobs.endless.store(true, Ordering::SeqCst);
    let server = TestServer::start(&repo_dir, knobs.clone(), None).await;
    let cache = open_cache(state.path(), u64::MAX);
    let mut repo = repository(&config("web", server.url(), true), &cache);
    let report = repo.sync(now()).await.expect("sync");
    assert_eq!((report.accepted.len(), report.rejected), (0, 1), "{report:?}");
    let rejections = cache.store().call(|c| q::rejections(c, 10)).await.expect("rejections");
    assert_eq!(rejections[0].threat.as_deref(), Some("THREAT.IMG.EXTRA"), "{rejections:?}");
    // The server notices the hang-up long before its 64 MiB.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !knobs.endless_hung_up.load(Ordering::SeqCst) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(knobs.endless_hung_up.load(Ordering::SeqCst), "sent {}", knobs.endless_sent.load(Ordering::SeqCst));
    assert!(!blob_files(state.path()).iter().any(|f| f.contains(&digest_of(SLOT0).hex())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_rate_limits_the_download() {
    let (root, state) = (tempfile::tempdir().expect("tmp"), tempfile::tempdir().expect("tmp"));
    let repo_dir = mk(&root.path().join("repo"));
    write_release(&repo_dir);
    write_index(&repo_dir, 1, FAR, &[MANIFEST_PATH]);
    let server = TestServer::start(&repo_dir, Arc::new(Knobs::default()), None).await;
    let cache = open_cache(state.path(), u64::MAX);
    let mut cfg = config("web", server.url(), true);
    cfg.max_rate_kib_s = Some(1);
    let mut repo = repository(&cfg, &cache);
    let started = Instant::now();
    assert_eq!(repo.sync(now()).await.expect("sync").accepted.len(), 1);
    // Two 1024-byte payloads at 1 KiB/s.
    assert!(started.elapsed() >= Duration::from_millis(1800), "{:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_http_server_repository() {
    if !have_tool("python3", &["-c", "import http.server"]) {
        return;
    }
    let (root, state) = (tempfile::tempdir().expect("tmp"), tempfile::tempdir().expect("tmp"));
    let repo_dir = mk(&root.path().join("repo"));
    write_release(&repo_dir);
    write_index(&repo_dir, 1, FAR, &[MANIFEST_PATH]);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut child = tokio::process::Command::new("python3")
        .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory"])
        .arg(root.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn python3");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "python3 http.server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let url = RepositoryUrl::Remote(format!("http://127.0.0.1:{port}/repo/").parse().expect("url"));
    let cache = open_cache(state.path(), u64::MAX);
    let mut repo = repository(&config("py", url, true), &cache);
    let report = repo.sync(now()).await.expect("sync");
    assert_eq!(report.accepted.len(), 1, "{report:?}");
    let _ = child.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signed_index_is_kept_across_restarts() {
    let (root, state) = (tempfile::tempdir().expect("tmp"), tempfile::tempdir().expect("tmp"));
    let repo_dir = mk(&root.path().join("repo"));
    write_release(&repo_dir);
    let expires = now().as_second() + 3600;
    write_index(&repo_dir, 5, expires, &[MANIFEST_PATH]);
    let knobs = Arc::new(Knobs::default());
    let server = TestServer::start(&repo_dir, knobs.clone(), None).await;
    let cfg = config("web", server.url(), true);
    {
        let cache = open_cache(state.path(), u64::MAX);
        let mut repo = repository(&cfg, &cache);
        assert_eq!(repo.sync(now()).await.expect("sync").accepted.len(), 1);
        assert_eq!(knobs.not_modified.load(Ordering::SeqCst), 0);
    } // ferry stops

    // The first poll after a restart is conditional: 304, and the stored index is in force.
    let cache = open_cache(state.path(), u64::MAX);
    let stored = cache.store().call(|c| q::stored_index(c, "web")).await.expect("store").expect("an index row");
    assert_eq!((stored.version, stored.expires_unix_s), (5, expires));
    assert!(stored.etag.is_some(), "{stored:?}");
    let index_blob = stored.digest.as_deref().expect("index blob").parse().expect("digest");
    assert!(cache.contains(&index_blob).await.expect("contains"));
    let pins = cache.store().call(move |c| q::pinned_by(c, &index_blob.hex())).await.expect("pins");
    assert_eq!(pins, ["index:web"], "the index blob is never evicted");
    let mut repo = repository(&cfg, &cache);
    let report = repo.sync(now()).await.expect("sync");
    assert_eq!(knobs.not_modified.load(Ordering::SeqCst), 1, "a conditional GET");
    assert_eq!((report.index_version, report.accepted.len()), (Some(5), 0), "{report:?}");
    drop(repo);

    // Freeze: after its expiry the stored index is refused, and so is the same one fetched whole.
    let later = jiff::Timestamp::from_second(expires + 60).expect("time");
    let mut repo = repository(&cfg, &cache);
    let refused = repo.sync(later).await.expect_err("an expired index");
    assert!(refused.to_string().contains("expired"), "{refused}");
    assert_eq!(knobs.not_modified.load(Ordering::SeqCst), 1, "the expired index is not used for a conditional GET");
    drop((repo, cache)); // ferry stops

    // Rollback: the server goes back to an older, still valid index; a restarted ferry refuses it.
    write_index(&repo_dir, 4, FAR, &[MANIFEST_PATH]);
    let cache = open_cache(state.path(), u64::MAX);
    let mut repo = repository(&cfg, &cache);
    let refused = repo.sync(now()).await.expect_err("an older index");
    assert!(refused.to_string().contains("index version 4 is lower than version 5"), "{refused}");
    let rejections = cache.store().call(|c| q::rejections(c, 10)).await.expect("rejections");
    let rollback = rejections.iter().find(|r| r.reason.contains("refused as a rollback")).expect("recorded");
    assert_eq!(rollback.threat.as_deref(), Some("THREAT.IMG.EXPIRED"), "{rejections:?}");
    // A newer index is taken, and becomes the one kept.
    write_index(&repo_dir, 6, FAR, &[MANIFEST_PATH]);
    assert_eq!(repo.sync(now()).await.expect("sync").index_version, Some(6));
    let stored = cache.store().call(|c| q::stored_index(c, "web")).await.expect("store").expect("row");
    assert_eq!(stored.version, 6);
}
