//! `ferry cache ls|verify|gc`: the blob cache of the running ferryd over its control socket,
//! or with `--state-dir DIR` of a stopped one (the state dir's lock keeps the two apart).

use std::path::Path;

use anyhow::Context;

use crate::control::api::CacheGcRequest;
use crate::control::client::ControlClient;
use crate::repo::{BlobCache, GcReport, ScrubReport};
use crate::store::cache::BlobRow;
use crate::store::Store;

pub enum Action {
    Ls {
        json: bool,
    },
    Verify,
    /// `None`: the daemon's `[store] cache_max_mib`.
    Gc {
        max_mib: Option<u64>,
    },
}

/// Over the control socket: ferryd reads, verifies (dropping corrupt blobs) and collects.
pub async fn run_live(client: &ControlClient, action: Action) -> anyhow::Result<()> {
    match action {
        Action::Ls { json } => {
            let report = client.cache().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_rows(&report.blobs);
            }
        }
        Action::Verify => {
            let report = client.cache_verify().await?;
            print_scrub(&report, "dropped");
            if !report.is_clean() {
                anyhow::bail!(
                    "the cache had problems; corrupt blobs were dropped and ferryd fetches them again from their \
                     repositories"
                );
            }
            println!("ok");
        }
        Action::Gc { max_mib } => {
            let report = client.cache_gc(&CacheGcRequest { max_mib }).await?;
            print_gc(&report.scrub, &report.gc);
        }
    }
    Ok(())
}

/// Offline, on a stopped ferryd's state dir. `default_max_mib` is the configuration's limit.
pub async fn run(state_dir: &Path, action: Action, default_max_mib: u64) -> anyhow::Result<()> {
    if !crate::store::StorePaths::new(state_dir).db.is_file() {
        anyhow::bail!("{} holds no ferry state (no ferry.db); give ferryd's [store] state_dir", state_dir.display());
    }
    let store = Store::open(state_dir).with_context(|| format!("open state dir {}", state_dir.display()))?;
    let max_mib = match &action {
        Action::Gc { max_mib } => max_mib.unwrap_or(default_max_mib),
        _ => u64::MAX / (1024 * 1024),
    };
    let cache = BlobCache::open(store, max_mib.saturating_mul(1024 * 1024))?;
    match action {
        Action::Ls { json } => {
            let rows = cache.list().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(());
            }
            print_rows(&rows);
        }
        Action::Verify => {
            let report = cache.scrub(false).await?;
            print_scrub(&report, "kept");
            if !report.is_clean() {
                anyhow::bail!(
                    "the cache has problems; ferryd drops them at its next start, or run `ferry cache gc` \
                     after starting ferryd once"
                );
            }
            println!("ok");
        }
        Action::Gc { .. } => {
            let scrub = cache.scrub(true).await?;
            let gc = cache.gc().await?;
            print_gc(&scrub, &gc);
        }
    }
    Ok(())
}

fn print_rows(rows: &[BlobRow]) {
    println!("{:<64}  {:>10}  {:<8}  {:>4}  {:<24}  source", "digest (sha256)", "bytes", "kind", "pins", "last used");
    let mut total = 0u64;
    for r in rows {
        total += r.size;
        let used = jiff::Timestamp::from_millisecond(r.last_used_unix_ms)
            .map_or_else(|_| r.last_used_unix_ms.to_string(), |t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
        println!("{:<64}  {:>10}  {:<8}  {:>4}  {:<24}  {}", r.digest, r.size, r.kind.as_str(), r.pins, used, r.source);
    }
    println!("{} blobs, {} bytes", rows.len(), total);
}

/// `fate`: what happened to corrupt blobs (`dropped` by ferryd, `kept` offline).
fn print_scrub(report: &ScrubReport, fate: &str) {
    println!("checked {} blobs", report.checked);
    for d in &report.corrupt {
        println!("corrupt ({fate}): {d}");
    }
    for d in &report.missing_files {
        println!("indexed but missing: {d}");
    }
    for d in &report.orphan_files {
        println!("file not indexed: {d}");
    }
}

fn print_gc(scrub: &ScrubReport, gc: &GcReport) {
    println!(
        "dropped {} corrupt, {} missing, {} orphan, {} temp files; evicted {} blobs ({} bytes); {} bytes cached",
        scrub.corrupt.len(),
        scrub.missing_files.len(),
        scrub.orphan_files.len(),
        scrub.temps_removed,
        gc.evicted.len(),
        gc.freed_bytes,
        gc.total_bytes
    );
    if gc.pinned_over_limit > 0 {
        println!("{} bytes over the limit are pinned by deliveries or installed versions", gc.pinned_over_limit);
    }
}
