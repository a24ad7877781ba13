//! Folder repositories: signed index (new manifests, expiry, rollback), watch paths,
//! refused payloads, and the `ferry cache` / `ferry repo index` commands on a state dir.

mod common_repo;

use common_repo::*;
use ferry::repo::{IndexError, RepoError};
use ferry::store::cache as q;

#[tokio::test]
async fn a_new_manifest_in_the_signed_index_is_fetched_verified_and_cached() {
    let (repo_dir, state) = (tempfile::tempdir().expect("tmp"), tempfile::tempdir().expect("tmp"));
    write_index(repo_dir.path(), 1, FAR, &[]);
    let cache = open_cache(state.path(), u64::MAX);
    let mut repo = repository(&config("local", dir_url(repo_dir.path()), true), &cache);
    let report = repo.sync(now()).await.expect("sync");
    assert_eq!(report.index_version, Some(1));
    assert!(report.accepted.is_empty());

    write_release(repo_dir.path());
    write_index(repo_dir.path(), 2, FAR, &[MANIFEST_PATH]);
    let report = repo.sync(now()).await.expect("sync");
    assert_eq!(report.accepted.len(), 1, "{report:?}");
    let m = &report.accepted[0];
    assert_eq!(m.manifest.sequence_number, 2);
    assert_eq!(m.envelope, digest_of(ENVELOPE));
    assert_eq!(m.payloads, vec![digest_of(SLOT0), digest_of(SLOT1)]);
    for d in [digest_of(ENVELOPE), digest_of(SLOT0), digest_of(SLOT1)] {
        assert!(cache.contains(&d).await.expect("contains"), "{d}");
    }
    let served = cache.read_small(&m.envelope, 65536).await.expect("read");
    assert_eq!(served, ENVELOPE);

    // Nothing new: the next poll accepts nothing again.
    let report = repo.sync(now()).await.expect("sync");
    assert!(report.accepted.is_empty() && report.errors.is_empty(), "{report:?}");
    let rows = cache.store().call(|c| q::manifests(c, Some("local"))).await.expect("rows");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].path, MANIFEST_PATH);
    // syncs, failures, accepted, rejections, payload bytes
    assert_eq!(repo.metrics().snapshot(), [3, 0, 1, 0, 2048]);

    // An unpinned payload evicted meanwhile is fetched again at the next poll.
    let slot1 = digest_of(SLOT1);
    std::fs::remove_file(blob_path(state.path(), &slot1)).expect("remove");
    cache.scrub(true).await.expect("scrub");
    assert!(!cache.contains(&slot1).await.expect("contains"));
    let report = repo.sync(now()).await.expect("sync");
    assert!(report.accepted.is_empty() && report.errors.is_empty(), "{report:?}");
    assert!(cache.contains(&slot1).await.expect("contains"), "evicted payload fetched again");
}

#[tokio::test]
async fn expired_and_rolled_back_indexes_are_refused() {
    let (repo_dir, state) = (tempfile::tempdir().expect("tmp"), tempfile::tempdir().expect("tmp"));
    write_release(repo_dir.path());
    let cache = open_cache(state.path(), u64::MAX);
    let cfg = config("local", dir_url(repo_dir.path()), true);

    // Expired (freeze attack): refused, nothing fetched.
    write_index(repo_dir.path(), 5, now().as_second() - 1, &[MANIFEST_PATH]);
    let mut repo = repository(&cfg, &cache);
    let err = repo.sync(now()).await.expect_err("expired");
    assert!(matches!(err, RepoError::Index { source: IndexError::Expired { .. }, .. }), "{err}");
    assert!(!cache.contains(&digest_of(SLOT0)).await.expect("contains"));

    write_index(repo_dir.path(), 5, FAR, &[MANIFEST_PATH]);
    repo.sync(now()).await.expect("fresh index accepted");

    // Rollback to version 4, seen by a fresh Repository (as after a restart): refused.
    write_index(repo_dir.path(), 4, FAR, &[]);
    let mut repo = repository(&cfg, &cache);
    let err = repo.sync(now()).await.expect_err("rollback");
    assert!(matches!(err, RepoError::Index { source: IndexError::Rollback { got: 4, seen: 5 }, .. }), "{err}");

    // A forged index (other key) is refused too.
    let forged = ferry::repo::Index { version: 9, expires_unix_s: FAR, entries: vec![] };
    let other = ferry::suit::SigningKey::ed25519_from_seed(&[9; 32]);
    std::fs::write(repo_dir.path().join(ferry::repo::index::INDEX_FILE), forged.sign(&other).expect("sign"))
        .expect("write");
    let err = repo.sync(now()).await.expect_err("forged");
    assert!(matches!(err, RepoError::Index { source: IndexError::BadSignature(_), .. }), "{err}");

    let rejections = cache.store().call(|c| q::rejections(c, 10)).await.expect("rejections");
    let threats: Vec<Option<String>> = rejections.iter().map(|r| r.threat.clone()).collect();
    assert!(threats.contains(&Some("THREAT.IMG.EXPIRED".into())), "{rejections:?}");
    assert!(threats.contains(&Some("THREAT.NET.ONPATH".into())), "{rejections:?}");
    assert!(threats.contains(&Some("THREAT.IMG.NON_AUTH".into())), "{rejections:?}");
}

#[tokio::test]
async fn watch_paths_and_refused_payloads() {
    let (repo_dir, state) = (tempfile::tempdir().expect("tmp"), tempfile::tempdir().expect("tmp"));
    write_release(repo_dir.path());
    // slot1 replaced by other bytes of the same size: digest mismatch, discarded, recorded.
    std::fs::write(repo_dir.path().join("fw/slot1.bin"), vec![0x55; 1024]).expect("tamper");
    // slot0 with extra bytes: cut off at the signed size.
    let mut long = SLOT0.to_vec();
    long.extend_from_slice(&[0; 4096]);
    std::fs::write(repo_dir.path().join("fw/slot0.bin"), long).expect("extend");
    let cache = open_cache(state.path(), u64::MAX);
    let mut repo = repository(&config("riot", dir_url(repo_dir.path()), false), &cache);
    let report = repo.sync(now()).await.expect("sync");
    assert!(report.accepted.is_empty(), "{report:?}");
    assert_eq!(report.rejected, 1, "the first refused payload refuses the manifest");
    assert!(cache.list().await.expect("list").is_empty(), "nothing unverified is cached");
    let rejections = cache.store().call(|c| q::rejections(c, 10)).await.expect("rejections");
    assert_eq!(rejections[0].threat.as_deref(), Some("THREAT.IMG.EXTRA"), "{rejections:?}");

    std::fs::write(repo_dir.path().join("fw/slot0.bin"), SLOT0).expect("fix slot0");
    let report = repo.sync(now()).await.expect("sync");
    assert_eq!(report.rejected, 1);
    let rejections = cache.store().call(|c| q::rejections(c, 10)).await.expect("rejections");
    assert_eq!(rejections[0].threat.as_deref(), Some("THREAT.NET.ONPATH"), "{rejections:?}");
    assert_eq!(blob_files(state.path()).len(), 1, "only the good slot0: {:?}", blob_files(state.path()));

    std::fs::write(repo_dir.path().join("fw/slot1.bin"), SLOT1).expect("fix slot1");
    let report = repo.sync(now()).await.expect("sync");
    assert_eq!(report.accepted.len(), 1, "{report:?}");

    // A bad signature is refused as THREAT.IMG.NON_AUTH.
    let mut forged = ENVELOPE.to_vec();
    let n = forged.len();
    forged[n - 200] ^= 1;
    std::fs::write(repo_dir.path().join(MANIFEST_PATH), forged).expect("forge");
    let report = repo.sync(now()).await.expect("sync");
    assert_eq!((report.accepted.len(), report.rejected), (0, 1), "{report:?}");
}

fn ferry_cmd(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ferry")).args(args).output().expect("run ferry")
}

#[tokio::test]
async fn ferry_repo_index_and_cache_commands() {
    let (repo_dir, state) = (tempfile::tempdir().expect("tmp"), tempfile::tempdir().expect("tmp"));
    write_release(repo_dir.path());
    std::os::unix::fs::symlink("riot.suit.2.bin", repo_dir.path().join("fw/riot.suit.latest.bin")).expect("symlink");
    let key = repo_dir.path().join(".key.pem");
    std::fs::write(&key, PRIVATE_PEM).expect("key");
    let dir = repo_dir.path().to_str().expect("utf-8");
    let key_arg = key.to_str().expect("utf-8");
    let out = ferry_cmd(&["repo", "index", dir, "--key", key_arg, "--expires", "2095-01-01T00:00:00Z"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(repo_dir.path().join("ferry-index.cbor")).expect("index");
    let index = ferry::repo::Index::verify(&bytes, &public_key(), now(), None).expect("valid index");
    assert_eq!(index.version, 1);
    assert_eq!(index.entries.len(), 1, "{index:?}");
    assert_eq!(index.entries[0].path, MANIFEST_PATH);
    let out = ferry_cmd(&["repo", "index", dir, "--key", key_arg, "--expires", "2095-01-01T00:00:00Z"]);
    assert!(out.status.success());
    let again = std::fs::read(repo_dir.path().join("ferry-index.cbor")).expect("index");
    assert_eq!(ferry::repo::Index::peek_version(&again), Some(2), "the version goes up by itself");

    {
        let cache = open_cache(state.path(), u64::MAX);
        let mut repo = repository(&config("local", dir_url(repo_dir.path()), true), &cache);
        assert_eq!(repo.sync(now()).await.expect("sync").accepted.len(), 1);
        cache.pin("installed:dev1", &digest_of(SLOT0)).await.expect("pin");
    } // the store closes and its lock is released

    let sd = state.path().to_str().expect("utf-8");
    let out = ferry_cmd(&["cache", "ls", "--state-dir", sd]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The envelope, both payloads, and the signed index kept for the next start.
    assert!(text.contains(&digest_of(SLOT0).hex()) && text.contains("4 blobs"), "{text}");
    assert!(text.contains("index        1"), "the kept index is pinned: {text}");
    let out = ferry_cmd(&["cache", "verify", "--state-dir", sd]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));

    let slot1 = blob_path(state.path(), &digest_of(SLOT1));
    std::fs::write(&slot1, b"rotten").expect("corrupt");
    let out = ferry_cmd(&["cache", "verify", "--state-dir", sd]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("corrupt"));

    // gc to a 1 MiB limit: drops the corrupt blob, keeps the rest (fits, and slot0 is pinned).
    let out = ferry_cmd(&["cache", "gc", "--state-dir", sd, "--max-mib", "1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("dropped 1 corrupt"));
    assert!(!slot1.exists());
    let out = ferry_cmd(&["cache", "gc", "--state-dir", sd, "--max-mib", "0"]);
    assert!(out.status.success());
    let out = ferry_cmd(&["cache", "ls", "--state-dir", sd, "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let rows = rows.as_array().expect("array");
    let mut kinds: Vec<(&str, &str)> =
        rows.iter().map(|r| (r["kind"].as_str().unwrap_or(""), r["digest"].as_str().unwrap_or(""))).collect();
    kinds.sort();
    let slot0 = digest_of(SLOT0).hex();
    assert_eq!(kinds.len(), 2, "only pinned blobs survive a 0 MiB limit: {rows:?}");
    assert_eq!((kinds[0].0, kinds[1]), ("index", ("payload", slot0.as_str())), "{rows:?}");
}

#[tokio::test]
async fn run_polls_and_hands_accepted_manifests_to_the_daemon() {
    let (repo_dir, state) = (tempfile::tempdir().expect("tmp"), tempfile::tempdir().expect("tmp"));
    write_release(repo_dir.path());
    write_index(repo_dir.path(), 1, FAR, &[MANIFEST_PATH]);
    let cache = open_cache(state.path(), u64::MAX);
    let repo = repository(&config("local", dir_url(repo_dir.path()), true), &cache);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let task = tokio::spawn(repo.run(shutdown.clone(), tx));
    let m = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await
        .expect("a manifest within 10 s")
        .expect("channel open");
    assert_eq!((m.repository.as_str(), m.path.as_str()), ("local", MANIFEST_PATH));
    shutdown.cancel();
    tokio::time::timeout(std::time::Duration::from_secs(5), task).await.expect("stops on shutdown").expect("join");
}
