//! Fuzzes the signed repository index: the unsigned payload decoder and the full verify path
//! (COSE_Sign1 decode, signature, expiry, rollback). Nothing may panic or over-allocate.
#![no_main]

use ferry::repo::index::Index;
use ferry::suit::SigningKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The payload parser runs on unverified bytes only in tests and the fuzzer, but must hold.
    if let Ok(index) = Index::decode(data) {
        // Whatever decodes re-encodes and decodes to the same index.
        assert_eq!(Index::decode(&index.encode()).ok(), Some(index));
    }
    let key = SigningKey::ed25519_from_seed(&[1; 32]).public_key();
    let now = jiff::Timestamp::from_second(1_900_000_000).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let _ = Index::verify(data, &key, now, Some(3));
    let _ = Index::peek_version(data);
});
