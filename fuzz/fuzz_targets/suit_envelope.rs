//! Fuzzes the SUIT envelope parser, authentication and the manifest decoder.
//! Nothing may panic, hang or allocate beyond the limits in `ferry::suit::limits`.
//!
//! The first byte picks the mode (0: envelope, 1: draft-37 manifest, 2: draft-09 manifest).
//! Seed with the vectors (from the repository root):
//! `for f in src/suit/testdata/*.cbor; do (printf '\0'; cat $f) > fuzz/corpus/suit_envelope/$(basename $f); done`
//! then `cargo +nightly fuzz run suit_envelope -- -max_total_time=300`.
#![no_main]

use ferry::suit::{Envelope, Format, Manifest, PublicKey, SigningKey};
use libfuzzer_sys::fuzz_target;

/// The draft-37 examples' P-256 key, so the ES256 path is reached with a real key.
const P256_KEY: &str = include_str!(
    "../../src/suit/testdata/draft-ietf-suit-manifest-37_examples_p256_public.uncompressed.hex"
);

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        // A whole envelope, authenticated with a fixed key of each type.
        0 => {
            if let Ok(env) = Envelope::parse(rest) {
                let keys = [
                    SigningKey::ed25519_from_seed(&[1; 32]).public_key(),
                    PublicKey::from_hex(P256_KEY)
                        .unwrap_or_else(|_| SigningKey::ed25519_from_seed(&[2; 32]).public_key()),
                ];
                for s in env.signatures() {
                    let _ = s.verify(&keys[0]);
                }
                let _ = env.check_digest();
                let _ = env.authenticate(&keys);
            }
        }
        // The manifest decoder directly, in both encodings (what runs after authentication).
        1 => {
            let _ = Manifest::decode(Format::Ietf, rest, &[]);
        }
        _ => {
            let _ = Manifest::decode(Format::Riot, rest, &[]);
        }
    }
});
