//! The blob cache: streaming checks, crash safety, LRU with pins, scrub.

mod common_repo;

use common_repo::*;
use ferry::repo::{BlobCache, CacheError, Expected};
use ferry::store::cache::BlobKind;

fn expected(bytes: &[u8]) -> Expected {
    Expected { digest: digest_of(bytes), size: bytes.len() as u64 }
}

async fn put(cache: &BlobCache, bytes: &[u8]) -> ferry::repo::BlobDigest {
    cache.insert_bytes(bytes.to_vec(), BlobKind::Payload, "test").await.expect("insert")
}

#[tokio::test]
async fn endless_data_is_cut_off_at_the_signed_size() {
    let state = tempfile::tempdir().expect("tempdir");
    let cache = open_cache(state.path(), u64::MAX);
    let mut w = cache.writer(expected(SLOT0), "slot0").expect("writer");
    w.write(SLOT0).expect("exactly the signed size is fine");
    let err = w.write(&[0]).expect_err("one byte more is cut off");
    assert!(matches!(err, CacheError::TooLarge { limit: 1024, .. }), "{err}");
    assert_eq!(err.threat(), Some("THREAT.IMG.EXTRA"));
    assert!(blob_files(state.path()).is_empty(), "nothing left behind: {:?}", blob_files(state.path()));
}

#[tokio::test]
async fn digest_or_size_mismatch_is_discarded() {
    let state = tempfile::tempdir().expect("tempdir");
    let cache = open_cache(state.path(), u64::MAX);
    let mut w = cache.writer(expected(SLOT0), "slot0").expect("writer");
    w.write(SLOT1).expect("same size, other content");
    let err = w.finish().expect_err("digest mismatch");
    assert!(matches!(err, CacheError::DigestMismatch { .. }), "{err}");
    assert_eq!(err.threat(), Some("THREAT.NET.ONPATH"));
    let mut w = cache.writer(expected(SLOT0), "slot0").expect("writer");
    w.write(&SLOT0[..100]).expect("write");
    assert!(matches!(w.finish(), Err(CacheError::Short { expected: 1024, got: 100, .. })));
    assert!(blob_files(state.path()).is_empty(), "{:?}", blob_files(state.path()));
}

#[tokio::test]
async fn a_kill_mid_write_leaves_no_blob_under_its_final_name_and_resumes() {
    let state = tempfile::tempdir().expect("tempdir");
    let final_name = digest_of(SLOT0).hex();
    {
        let cache = open_cache(state.path(), u64::MAX);
        let mut w = cache.writer(expected(SLOT0), "slot0").expect("writer");
        w.write(&SLOT0[..600]).expect("write");
        // Simulated kill: the writer is gone without finish (suspend = transport failure).
        w.suspend();
        let files = blob_files(state.path());
        assert!(!files.contains(&final_name), "partial bytes under the final name: {files:?}");
        assert_eq!(files, vec![format!(".partial-{final_name}")]);
        // An anonymous temp dropped mid-write vanishes.
        let mut t = cache.writer_unknown(4096, "envelope").expect("temp writer");
        t.write(b"half").expect("write");
        std::mem::forget(t); // as if the process died: the temp stays on disk
    }
    // "Restart": scrub removes stray temps, keeps the resumable partial.
    let cache = open_cache(state.path(), u64::MAX);
    let report = cache.scrub(true).await.expect("scrub");
    assert_eq!(report.temps_removed, 1);
    let mut w = cache.writer(expected(SLOT0), "slot0").expect("resume");
    assert_eq!(w.written(), 600);
    w.write(&SLOT0[600..]).expect("rest");
    let landed = w.finish().expect("whole and correct");
    cache.register(landed, BlobKind::Payload, "test").await.expect("register");
    assert_eq!(std::fs::read(blob_path(state.path(), &landed.digest)).expect("blob"), SLOT0);
    assert_eq!(blob_files(state.path()), vec![final_name]);
}

#[tokio::test]
async fn lru_eviction_never_takes_pinned_blobs() {
    let state = tempfile::tempdir().expect("tempdir");
    // Room for two 1000-byte blobs.
    let cache = open_cache(state.path(), 2500);
    let blobs: Vec<Vec<u8>> = (0u8..4).map(|i| vec![i; 1000]).collect();
    let a = put(&cache, &blobs[0]).await;
    cache.pin("delivery:1", &a).await.expect("pin");
    let b = put(&cache, &blobs[1]).await;
    let c = put(&cache, &blobs[2]).await; // over the limit: b (oldest unpinned) goes, a is pinned
    assert!(cache.contains(&a).await.expect("a"), "pinned blob evicted");
    assert!(!cache.contains(&b).await.expect("b"), "LRU unpinned blob kept");
    assert!(cache.contains(&c).await.expect("c"));
    // With everything else pinned, the newest unpinned blob is the one to go.
    cache.pin("installed:dev7", &c).await.expect("pin c");
    let d = put(&cache, &blobs[3]).await;
    assert!(cache.contains(&d).await.expect("d"), "the blob just added is never its own victim");
    let report = cache.gc().await.expect("gc");
    assert_eq!(report.evicted, vec![d.hex()]);
    // A tighter limit cannot be met while pins hold the bytes.
    let tight = BlobCache::open(cache.store().clone(), 1000).expect("tight");
    let report = tight.gc().await.expect("gc");
    assert!(report.evicted.is_empty() && report.pinned_over_limit == 1000, "{report:?}");
    // Unpinning frees a blob for eviction.
    assert_eq!(cache.unpin("delivery:1").await.expect("unpin"), 1);
    let report = tight.gc().await.expect("gc");
    assert_eq!(report.evicted, vec![a.hex()]);
    assert!(cache.contains(&c).await.expect("c"));
    let rows = cache.list().await.expect("list");
    assert_eq!(rows.iter().find(|r| r.digest == c.hex()).map(|r| r.pins), Some(1));
}

#[tokio::test]
async fn scrub_drops_corrupt_blobs_rows_without_files_and_files_without_rows() {
    let state = tempfile::tempdir().expect("tempdir");
    let cache = open_cache(state.path(), u64::MAX);
    let good = put(&cache, SLOT0).await;
    let bad = put(&cache, SLOT1).await;
    let gone = put(&cache, b"will vanish").await;
    // Bit rot in one blob, a lost file, and a stray file nobody indexed.
    let mut bytes = SLOT1.to_vec();
    bytes[10] ^= 0xff;
    std::fs::write(blob_path(state.path(), &bad), &bytes).expect("corrupt");
    std::fs::remove_file(blob_path(state.path(), &gone)).expect("remove");
    let stray = digest_of(b"stray");
    std::fs::write(blob_path(state.path(), &stray), b"stray").expect("stray");

    let verify = cache.scrub(false).await.expect("verify");
    assert_eq!(verify.corrupt, vec![bad.hex()]);
    assert_eq!(verify.missing_files, vec![gone.hex()]);
    assert_eq!(verify.orphan_files, vec![stray.hex()]);
    assert!(blob_path(state.path(), &bad).exists(), "verify must not change anything");

    let report = cache.scrub(true).await.expect("scrub");
    assert_eq!(report.corrupt, vec![bad.hex()]);
    assert!(!blob_path(state.path(), &bad).exists());
    assert!(!blob_path(state.path(), &stray).exists());
    let rows: Vec<String> = cache.list().await.expect("list").into_iter().map(|r| r.digest).collect();
    assert_eq!(rows, vec![good.hex()]);
    assert!(cache.scrub(false).await.expect("clean").is_clean());
    let rejections = cache.store().call(|c| ferry::store::cache::rejections(c, 10)).await.expect("rejections");
    assert!(rejections.iter().any(|r| r.source == "scrub" && r.what == bad.hex()), "{rejections:?}");
}

#[tokio::test]
async fn one_writer_per_digest_at_a_time() {
    let state = tempfile::tempdir().expect("tempdir");
    let cache = open_cache(state.path(), u64::MAX);
    let first = cache.writer(expected(SLOT0), "slot0").expect("writer");
    assert!(matches!(cache.writer(expected(SLOT0), "slot0 again"), Err(CacheError::Busy(_))));
    drop(first);
    let mut again = cache.writer(expected(SLOT0), "slot0").expect("free after drop");
    again.write(SLOT0).expect("write");
    let landed = again.finish().expect("finish");
    cache.register(landed, BlobKind::Payload, "test").await.expect("register");
}
