//! `[[authority]]` keys in both forms, with validity windows for rotation.

use std::path::Path;

use ferry::config::{AuthorityKey, Config};

const RADIO: &str = "[radio]\nurl = \"sim:home.toml\"\n";
const KEY: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn parse(authority: &str) -> Result<Config, String> {
    Config::parse(Path::new("ferry.toml"), &format!("{RADIO}[[authority]]\nname = \"acme\"\n{authority}"))
        .map_err(|e| e.to_string())
}

#[test]
fn plain_and_windowed_keys_parse_and_round_trip() {
    let config = parse(&format!(
        "keys = [\"{KEY}\", {{ key = \"new.pem\", not_before = 2027-01-01T00:00:00Z }}, \
         {{ key = \"old.pem\", not_after = 2027-01-01T01:00:00+01:00 }}]\n"
    ))
    .expect("parses");
    let keys = &config.authorities[0].keys;
    assert_eq!(keys[0], AuthorityKey::Plain(KEY.into()));
    assert_eq!(keys[1].key(), "new.pem");
    assert!(keys[1].not_before().is_some() && keys[1].not_after().is_none());
    assert_eq!(keys[2].not_after().map(ToString::to_string).as_deref(), Some("2027-01-01T01:00:00+01:00"));
    let again = Config::parse(Path::new("again.toml"), &config.to_toml()).expect("effective config parses");
    assert_eq!(again, config);
}

#[test]
fn key_window_mistakes_are_located_and_explained() {
    let typo = parse("keys = [{ key = \"a.pem\", not_afer = 2027-01-01T00:00:00Z }]\n").expect_err("typo");
    assert!(typo.contains("not_afer") && typo.contains("authority[0].keys[0]"), "{typo}");
    let local = parse("keys = [{ key = \"a.pem\", not_after = 2027-01-01T00:00:00 }]\n").expect_err("no offset");
    assert!(local.contains("offset") && local.contains("authority[0].keys[0]"), "{local}");
    let order =
        parse("keys = [{ key = \"a.pem\", not_before = 2028-01-01T00:00:00Z, not_after = 2027-01-01T00:00:00Z }]\n")
            .expect_err("inverted window");
    assert!(order.contains("not_before must be earlier"), "{order}");
    let number = parse("keys = [42]\n").expect_err("not a key");
    assert!(number.contains("a key string, or a table"), "{number}");
}

#[test]
fn relative_key_files_resolve_against_the_config_folder() {
    let dir = tempfile::tempdir().expect("tmp");
    let text = format!("{RADIO}[[authority]]\nname = \"acme\"\nkeys = [\"{KEY}\", \"keys/acme.pem\"]\n");
    std::fs::write(dir.path().join("ferry.toml"), text).expect("write");
    let loaded = ferry::config::LoadedConfig::load(&dir.path().join("ferry.toml")).expect("loads");
    let keys = &loaded.config.authorities[0].keys;
    assert_eq!(keys[0].key(), KEY, "inline keys stay as written");
    assert_eq!(Path::new(keys[1].key()), dir.path().join("keys/acme.pem"));
}
