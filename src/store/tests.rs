use super::*;

#[tokio::test]
async fn open_creates_schema_and_blobs_dir() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("opens");
    assert!(store.paths().db.exists());
    assert!(store.paths().blobs.is_dir());
    let version: i64 = store.call(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0))).await.expect("query");
    assert_eq!(version, migrations::latest());
    let mode: String = store.call(|c| c.query_row("PRAGMA journal_mode", [], |r| r.get(0))).await.expect("query");
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn second_open_of_the_same_dir_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = Store::open(dir.path()).expect("first opens");
    let err = Store::open(dir.path()).err().expect("second is refused");
    let message = err.to_string();
    assert!(matches!(err, StoreError::Locked(LockError::Held { .. })), "{message}");
    assert!(message.contains(&format!("pid {}", std::process::id())), "{message}");
    drop(first);
    Store::open(dir.path()).expect("opens again once the first is gone");
}

#[tokio::test]
async fn runs_record_clean_and_unclean_stops() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("opens");
    let summary = store
        .call(|c| {
            let crashed = runs::start(c, "0.1.0", 1_000)?;
            runs::heartbeat(c, crashed, 2_000)?;
            let clean = runs::start(c, "0.1.0", 3_000)?;
            runs::stop(c, clean, 4_000)?;
            let current = runs::start(c, "0.1.0", 5_000)?;
            runs::summary(c, current)
        })
        .await
        .expect("queries");
    assert_eq!(summary, runs::RunSummary { runs: 3, unclean_stops: 1, previous_clean: Some(true) });
}

#[test]
fn a_file_that_is_not_a_database_is_refused_with_a_hint() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join(DB_FILE), vec![0x5a; 8192]).expect("write garbage");
    let err = Store::open(dir.path()).err().expect("refused");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("move the file aside"), "{err}");
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    drop(Store::open(dir.path()).expect("opens"));
    let conn = Connection::open(dir.path().join(DB_FILE)).expect("raw open");
    conn.pragma_update(None, "user_version", 99).expect("bump version");
    drop(conn);
    let err = Store::open(dir.path()).err().expect("refused");
    assert!(matches!(err, StoreError::TooNew { found: 99, .. }), "{err}");
}
