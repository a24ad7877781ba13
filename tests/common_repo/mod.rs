//! Shared by the `repo_*` tests: the RIOT test vector (Ed25519, sequence 2, two 1024-byte
//! payloads named slot0.bin / slot1.bin), signed indexes and external-tool skipping.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry::config::{RepositoryConfig, RepositoryUrl};
use ferry::repo::index::{Index, IndexEntry, INDEX_FILE};
use ferry::repo::{BlobCache, BlobDigest, KeyVerifier, Repository};
use ferry::store::Store;
use ferry::suit::{PublicKey, SigningKey};

pub const ENVELOPE: &[u8] = include_bytes!("../../src/suit/testdata/riot-suit-tool-0.0.2_ed25519_signed.cbor");
pub const SLOT0: &[u8] = include_bytes!("../../src/suit/testdata/riot_payload_slot0.bin");
pub const SLOT1: &[u8] = include_bytes!("../../src/suit/testdata/riot_payload_slot1.bin");
pub const PUBLIC_PEM: &str = include_str!("../../src/suit/testdata/test_ed25519_public.pem");
pub const PRIVATE_PEM: &str = include_str!("../../src/suit/testdata/test_ed25519_private_TESTONLY.pem");

/// Where the envelope sits in the test repositories.
pub const MANIFEST_PATH: &str = "fw/riot.suit.2.bin";

pub fn public_key() -> PublicKey {
    PublicKey::from_pem(PUBLIC_PEM).expect("test public key")
}

pub fn signing_key() -> SigningKey {
    SigningKey::from_pkcs8_pem(PRIVATE_PEM).expect("test private key")
}

pub fn verifier() -> Arc<KeyVerifier> {
    Arc::new(KeyVerifier::new(vec![public_key()]))
}

/// Writes the envelope and its payloads under `root/fw/`.
pub fn write_release(root: &Path) {
    std::fs::create_dir_all(root.join("fw")).expect("mkdir");
    std::fs::write(root.join(MANIFEST_PATH), ENVELOPE).expect("envelope");
    std::fs::write(root.join("fw/slot0.bin"), SLOT0).expect("slot0");
    std::fs::write(root.join("fw/slot1.bin"), SLOT1).expect("slot1");
}

/// Signs `root/ferry-index.cbor` listing `paths` with the given version and expiry.
pub fn write_index(root: &Path, version: u64, expires_unix_s: i64, paths: &[&str]) {
    let entries = paths
        .iter()
        .map(|p| {
            let bytes = std::fs::read(root.join(p)).expect("listed file");
            IndexEntry { path: (*p).to_owned(), digest: BlobDigest::of(&bytes), size: bytes.len() as u64 }
        })
        .collect();
    let index = Index { version, expires_unix_s, entries };
    std::fs::write(root.join(INDEX_FILE), index.sign(&signing_key()).expect("sign")).expect("write index");
}

/// A far-future expiry.
pub const FAR: i64 = 4_000_000_000;

pub fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

pub fn config(name: &str, url: RepositoryUrl, indexed: bool) -> RepositoryConfig {
    RepositoryConfig {
        name: name.into(),
        url,
        poll_interval_s: 60,
        index_key: indexed.then(|| PUBLIC_PEM.to_owned()),
        watch: if indexed { Vec::new() } else { vec![MANIFEST_PATH.to_owned()] },
        max_rate_kib_s: None,
    }
}

pub fn dir_url(root: &Path) -> RepositoryUrl {
    RepositoryUrl::Dir(root.to_owned())
}

pub fn open_cache(state: &Path, max_bytes: u64) -> BlobCache {
    let store = Store::open(state).expect("open store");
    BlobCache::open(store, max_bytes).expect("open cache")
}

pub fn repository(cfg: &RepositoryConfig, cache: &BlobCache) -> Repository {
    Repository::new(cfg, cache.clone(), verifier()).expect("repository")
}

/// True if `tool` runs; otherwise prints why the test is skipped, or panics when
/// FERRY_REQUIRE_TOOLS=1.
pub fn have_tool(tool: &str, probe: &[&str]) -> bool {
    let ok = std::process::Command::new(tool)
        .args(probe)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var("FERRY_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!("{tool} is required (FERRY_REQUIRE_TOOLS=1) but is missing");
        }
        eprintln!("SKIP: {tool} not found; install it to run this test");
    }
    ok
}

pub fn digest_of(bytes: &[u8]) -> BlobDigest {
    BlobDigest::of(bytes)
}

pub fn blob_path(state: &Path, digest: &BlobDigest) -> PathBuf {
    state.join("blobs/sha256").join(digest.hex())
}

/// Names in the blob folder (final and temp).
pub fn blob_files(state: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(state.join("blobs/sha256"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}
