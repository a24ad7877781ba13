//! `ferry repo index DIR --key KEY --expires RFC3339`: signs a folder's index
//! (`ferry-index.cbor`, format in `repo::index`) listing every SUIT envelope under DIR.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::repo::index::{Index, IndexEntry, INDEX_FILE, MAX_ENTRIES};
use crate::repo::BlobDigest;
use crate::suit::{limits::MAX_ENVELOPE_LEN, Envelope, SigningKey};

/// How deep to look for envelopes (RIOT nests `fw/<app>/<board>/`).
const MAX_DEPTH: usize = 8;

pub fn index(dir: &Path, key: &Path, expires: &str, version: Option<u64>) -> anyhow::Result<()> {
    let pem = fs::read_to_string(key).with_context(|| format!("read signing key {}", key.display()))?;
    let key = SigningKey::from_pkcs8_pem(&pem)
        .map_err(|e| anyhow::anyhow!("{}: {e}; give a PKCS#8 PEM private key (Ed25519 or P-256)", key.display()))?;
    let expires: jiff::Timestamp = expires
        .parse()
        .with_context(|| format!("--expires {expires}: give an RFC 3339 time like 2026-12-31T00:00:00Z"))?;
    if expires <= jiff::Timestamp::now() {
        bail!("--expires {expires} is in the past; ferry refuses an expired index");
    }
    let index_path = dir.join(INDEX_FILE);
    let previous = fs::read(&index_path).ok().and_then(|b| Index::peek_version(&b));
    let version = match (version, previous) {
        (Some(v), Some(p)) if v < p => {
            bail!("--version {v} is lower than the current index's {p}; gateways would refuse it")
        }
        (Some(v), _) => v,
        (None, p) => p.map_or(1, |p| p + 1),
    };
    let mut entries = Vec::new();
    collect(dir, dir, 0, &mut entries)?;
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    if entries.len() > MAX_ENTRIES {
        bail!("{} envelopes, more than the {MAX_ENTRIES} an index may list", entries.len());
    }
    let n = entries.len();
    let index = Index { version, expires_unix_s: expires.as_second(), entries };
    let signed = index.sign(&key).map_err(|e| anyhow::anyhow!("sign the index: {e}"))?;
    let tmp = dir.join(format!(".{INDEX_FILE}.tmp"));
    fs::write(&tmp, &signed).with_context(|| format!("write {}", tmp.display()))?;
    fs::rename(&tmp, &index_path).with_context(|| format!("rename to {}", index_path.display()))?;
    println!("{}: version {version}, {n} manifests, expires {expires}", index_path.display());
    Ok(())
}

/// Every regular file under `dir` that parses as a SUIT envelope. Symlinks are skipped
/// (RIOT's `riot.suit.latest.bin` would list a manifest twice).
fn collect(root: &Path, dir: &Path, depth: usize, out: &mut Vec<IndexEntry>) -> anyhow::Result<()> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    let mut names: Vec<PathBuf> = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("list {}", dir.display()))? {
        names.push(entry.with_context(|| format!("list {}", dir.display()))?.path());
    }
    for path in names {
        let meta = fs::symlink_metadata(&path).with_context(|| format!("stat {}", path.display()))?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.starts_with('.') || name == INDEX_FILE {
            continue;
        }
        if meta.is_dir() {
            collect(root, &path, depth + 1, out)?;
        } else if meta.is_file() && meta.len() <= MAX_ENVELOPE_LEN as u64 {
            let bytes = fs::read(&path).with_context(|| format!("read {}", path.display()))?;
            if Envelope::parse(&bytes).is_err() {
                continue;
            }
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let rel: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
            out.push(IndexEntry { path: rel.join("/"), digest: BlobDigest::of(&bytes), size: bytes.len() as u64 });
        }
    }
    Ok(())
}
