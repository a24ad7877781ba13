//! Public and private keys for COSE signatures over SUIT manifests.
//!
//! Ed25519 (RFC 8032, COSE alg -8/-19) and P-256 ECDSA (FIPS 186-5, COSE alg -7/-9; signature
//! encoded as raw `r‖s`, RFC 9053 §2.1). Public keys load from what operators have at hand:
//! a raw 32-byte Ed25519 key in hex (RIOT's `public_key.h` bytes), a SEC1 P-256 point in hex, or
//! a PEM SubjectPublicKeyInfo (`openssl pkey -pubout`). Private keys (for `ferry publish`)
//! load from PEM PKCS#8.

use core::fmt;

use ed25519_dalek::{Signer as _, Verifier as _};

use super::cose::CoseAlg;
use super::error::{Error, Result};
use super::hex;

/// The two key families SUIT signatures use here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    Ed25519,
    P256,
}

impl KeyType {
    pub fn name(self) -> &'static str {
        match self {
            KeyType::Ed25519 => "Ed25519",
            KeyType::P256 => "P-256",
        }
    }
}

/// A verification key.
#[derive(Clone, PartialEq, Eq)]
pub enum PublicKey {
    Ed25519(ed25519_dalek::VerifyingKey),
    P256(p256::ecdsa::VerifyingKey),
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.key_type().name(), hex::encode(&self.to_bytes()))
    }
}

impl PublicKey {
    pub fn key_type(&self) -> KeyType {
        match self {
            PublicKey::Ed25519(_) => KeyType::Ed25519,
            PublicKey::P256(_) => KeyType::P256,
        }
    }

    /// Raw 32-byte Ed25519 public key.
    pub fn ed25519_from_bytes(bytes: &[u8]) -> Result<Self> {
        let raw: &[u8; 32] = bytes
            .try_into()
            .map_err(|_| Error::InvalidKey(format!("an Ed25519 public key has 32 bytes, not {}", bytes.len())))?;
        ed25519_dalek::VerifyingKey::from_bytes(raw)
            .map(PublicKey::Ed25519)
            .map_err(|e| Error::InvalidKey(format!("not an Ed25519 point: {e}")))
    }

    /// SEC1-encoded P-256 point (65-byte uncompressed `04‖x‖y` or 33-byte compressed).
    pub fn p256_from_sec1(bytes: &[u8]) -> Result<Self> {
        p256::ecdsa::VerifyingKey::from_sec1_bytes(bytes)
            .map(PublicKey::P256)
            .map_err(|_| Error::InvalidKey("not a SEC1-encoded P-256 point".into()))
    }

    /// Hex of a raw Ed25519 key (64 digits) or a SEC1 P-256 point (130 or 66 digits).
    pub fn from_hex(text: &str) -> Result<Self> {
        let bytes =
            hex::decode(text).ok_or_else(|| Error::InvalidKey("not hex (odd length or a non-hex digit)".into()))?;
        match bytes.len() {
            32 => Self::ed25519_from_bytes(&bytes),
            33 | 65 => Self::p256_from_sec1(&bytes),
            n => Err(Error::InvalidKey(format!(
                "{n} bytes is neither a raw Ed25519 key (32) nor a SEC1 P-256 point (33 or 65)"
            ))),
        }
    }

    /// PEM SubjectPublicKeyInfo ("BEGIN PUBLIC KEY") holding an Ed25519 or P-256 key.
    pub fn from_pem(pem: &str) -> Result<Self> {
        if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_pem(pem) {
            return Ok(PublicKey::Ed25519(k));
        }
        use p256::pkcs8::DecodePublicKey as _;
        p256::ecdsa::VerifyingKey::from_public_key_pem(pem)
            .map(PublicKey::P256)
            .map_err(|_| Error::InvalidKey("not a PEM SubjectPublicKeyInfo with an Ed25519 or P-256 key".into()))
    }

    /// Raw public bytes: 32 for Ed25519, 65 (uncompressed SEC1) for P-256.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            PublicKey::Ed25519(k) => k.to_bytes().to_vec(),
            PublicKey::P256(k) => k.to_sec1_point(false).as_bytes().to_vec(),
        }
    }

    /// Checks `signature` over `message` for COSE algorithm `alg`. `index` names the
    /// signature block in errors.
    pub(crate) fn verify(&self, alg: CoseAlg, message: &[u8], signature: &[u8], index: usize) -> Result<()> {
        let bad = Error::BadSignature { index };
        match (alg.key_type(), self) {
            (None, _) => Err(Error::UnsupportedAlgorithm(alg.code())),
            (Some(KeyType::Ed25519), PublicKey::Ed25519(k)) => {
                let sig = ed25519_dalek::Signature::from_slice(signature).map_err(|_| bad.clone())?;
                // Strict: refuses small-order keys and malleable signatures.
                k.verify_strict(message, &sig).map_err(|_| bad)
            }
            (Some(KeyType::P256), PublicKey::P256(k)) => {
                let sig = p256::ecdsa::Signature::from_slice(signature).map_err(|_| bad.clone())?;
                k.verify(message, &sig).map_err(|_| bad)
            }
            (Some(_), key) => Err(Error::KeyMismatch { alg, key: key.key_type().name() }),
        }
    }
}

/// A signing key for `ferry publish`.
#[derive(Clone)]
pub enum SigningKey {
    Ed25519(ed25519_dalek::SigningKey),
    P256(p256::ecdsa::SigningKey),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print secret material.
        write!(f, "SigningKey({:?})", self.public_key())
    }
}

impl SigningKey {
    /// Ed25519 from its 32-byte seed.
    pub fn ed25519_from_seed(seed: &[u8; 32]) -> Self {
        SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// PEM PKCS#8 ("BEGIN PRIVATE KEY") holding an Ed25519 or P-256 key.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self> {
        if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
            return Ok(SigningKey::Ed25519(k));
        }
        use p256::pkcs8::DecodePrivateKey as _;
        p256::ecdsa::SigningKey::from_pkcs8_pem(pem)
            .map(SigningKey::P256)
            .map_err(|_| Error::InvalidKey("not a PEM PKCS#8 private key for Ed25519 or P-256".into()))
    }

    pub fn key_type(&self) -> KeyType {
        match self {
            SigningKey::Ed25519(_) => KeyType::Ed25519,
            SigningKey::P256(_) => KeyType::P256,
        }
    }

    pub fn public_key(&self) -> PublicKey {
        match self {
            SigningKey::Ed25519(k) => PublicKey::Ed25519(k.verifying_key()),
            SigningKey::P256(k) => PublicKey::P256(*k.verifying_key()),
        }
    }

    /// Signs `message` (a Sig_structure) as `alg`; both schemes are deterministic
    /// (RFC 8032; RFC 6979 for ECDSA), so no RNG is needed.
    pub(crate) fn sign(&self, alg: CoseAlg, message: &[u8]) -> Result<Vec<u8>> {
        match (alg.key_type(), self) {
            (None, _) => Err(Error::UnsupportedAlgorithm(alg.code())),
            (Some(KeyType::Ed25519), SigningKey::Ed25519(k)) => Ok(k.sign(message).to_bytes().to_vec()),
            (Some(KeyType::P256), SigningKey::P256(k)) => {
                let sig: p256::ecdsa::Signature = k.sign(message);
                Ok(sig.to_bytes().to_vec())
            }
            (Some(_), key) => Err(Error::KeyMismatch { alg, key: key.key_type().name() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED_PEM: &str = include_str!("testdata/test_ed25519_public.pem");
    const ED_RAW: &str = include_str!("testdata/test_ed25519_public.raw.hex");
    const ED_PRIV: &str = include_str!("testdata/test_ed25519_private_TESTONLY.pem");
    const P256_PEM: &str = include_str!("testdata/draft-ietf-suit-manifest-37_examples_p256_public.pem");
    const P256_HEX: &str = include_str!("testdata/draft-ietf-suit-manifest-37_examples_p256_public.uncompressed.hex");
    const P256_PRIV: &str = include_str!("testdata/draft-ietf-suit-manifest-37_examples_p256_private_TESTONLY.pem");

    #[test]
    fn ed25519_pem_and_raw_hex_agree() {
        let a = PublicKey::from_pem(ED_PEM).unwrap();
        let b = PublicKey::from_hex(ED_RAW).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.key_type(), KeyType::Ed25519);
        let priv_key = SigningKey::from_pkcs8_pem(ED_PRIV).unwrap();
        assert_eq!(priv_key.public_key(), a);
    }

    #[test]
    fn p256_pem_and_sec1_hex_agree() {
        let a = PublicKey::from_pem(P256_PEM).unwrap();
        let b = PublicKey::from_hex(P256_HEX).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_bytes().len(), 65);
        let priv_key = SigningKey::from_pkcs8_pem(P256_PRIV).unwrap();
        assert_eq!(priv_key.public_key(), a);
    }

    #[test]
    fn bad_keys_are_typed_errors() {
        assert!(matches!(PublicKey::from_hex("00"), Err(Error::InvalidKey(_))));
        assert!(matches!(PublicKey::from_hex("xyz"), Err(Error::InvalidKey(_))));
        assert!(matches!(PublicKey::from_pem("nope"), Err(Error::InvalidKey(_))));
        // 65 bytes that are not on the curve
        let mut off = vec![4u8];
        off.extend([1u8; 64]);
        assert!(PublicKey::p256_from_sec1(&off).is_err());
    }

    #[test]
    fn sign_verify_both_families_and_refuse_mismatch() {
        for (key, alg) in [
            (SigningKey::ed25519_from_seed(&[7; 32]), CoseAlg::EdDsa),
            (SigningKey::from_pkcs8_pem(P256_PRIV).unwrap(), CoseAlg::Esp256),
        ] {
            let sig = key.sign(alg, b"msg").unwrap();
            let pk = key.public_key();
            pk.verify(alg, b"msg", &sig, 0).unwrap();
            assert_eq!(pk.verify(alg, b"msh", &sig, 0), Err(Error::BadSignature { index: 0 }));
            let other = if alg == CoseAlg::EdDsa { CoseAlg::Es256 } else { CoseAlg::Ed25519 };
            assert!(matches!(pk.verify(other, b"msg", &sig, 0), Err(Error::KeyMismatch { .. })));
            assert_eq!(pk.verify(CoseAlg::Unknown(-35), b"msg", &sig, 0), Err(Error::UnsupportedAlgorithm(-35)));
        }
    }
}
