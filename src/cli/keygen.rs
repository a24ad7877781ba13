//! `ferry keygen`: a new signing key for `ferry publish`.
//!
//! Ed25519 keys are written exactly as `openssl genpkey -algorithm ed25519` writes them
//! (PKCS#8 v1, RFC 8410 §7), so RIOT's `make suit/genkey` tooling and ferry can share them;
//! the public half goes to `KEY.pub` as a SubjectPublicKeyInfo PEM (`openssl pkey -pubout`).

use std::io::{Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use base64ct::{Base64, Encoding as _};
use clap::ValueEnum;

use crate::suit::SigningKey;

/// Which key to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyAlg {
    /// Ed25519 (COSE -8/-19); the only one RIOT devices verify.
    Ed25519,
    /// ECDSA P-256 (COSE -7/-9); draft-37 devices only.
    P256,
}

/// DER prefix of an Ed25519 PKCS#8 v1 PrivateKeyInfo: SEQUENCE { INTEGER 0, SEQUENCE { OID
/// 1.3.101.112 }, OCTET STRING { OCTET STRING (32) } }; the 32-byte seed follows.
const ED25519_PKCS8_PREFIX: [u8; 16] =
    [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
/// DER prefix of an Ed25519 SubjectPublicKeyInfo; the 32-byte key follows.
const ED25519_SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

pub fn run(out: &Path, alg: KeyAlg) -> anyhow::Result<()> {
    let public = public_path(out);
    for path in [out, public.as_path()] {
        if path.symlink_metadata().is_ok() {
            bail!(
                "{} already exists; keygen never overwrites a key. Remove it or choose another --out",
                path.display()
            );
        }
    }
    let (private_pem, public_pem) = match alg {
        KeyAlg::Ed25519 => {
            let seed = random_32()?;
            let key = ed25519_dalek::SigningKey::from_bytes(&seed);
            let mut der = ED25519_PKCS8_PREFIX.to_vec();
            der.extend_from_slice(&seed);
            let mut spki = ED25519_SPKI_PREFIX.to_vec();
            spki.extend_from_slice(key.verifying_key().as_bytes());
            (pem("PRIVATE KEY", &der), pem("PUBLIC KEY", &spki))
        }
        KeyAlg::P256 => {
            use p256::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _};
            // A random 32-byte string is a valid scalar except with negligible probability;
            // draw again in that case.
            let secret = loop {
                let bytes = random_32()?;
                if let Ok(k) = p256::SecretKey::from_slice(&bytes) {
                    break k;
                }
            };
            let private = secret
                .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
                .map_err(|e| anyhow::anyhow!("cannot encode the P-256 key: {e}"))?;
            let public = secret
                .public_key()
                .to_public_key_pem(p256::pkcs8::LineEnding::LF)
                .map_err(|e| anyhow::anyhow!("cannot encode the P-256 public key: {e}"))?;
            (private.to_string(), public)
        }
    };
    // Check our own output before anyone relies on it.
    let check = SigningKey::from_pkcs8_pem(&private_pem).context("the new key does not read back")?;
    let pub_check = crate::suit::PublicKey::from_pem(&public_pem).context("the new public key does not read back")?;
    if check.public_key() != pub_check {
        bail!("the new public key does not match the private key");
    }
    write_new(out, private_pem.as_bytes(), 0o600)?;
    write_new(&public, public_pem.as_bytes(), 0o644)?;
    println!("wrote {} (private, mode 0600) and {} (public)", out.display(), public.display());
    println!("public key (hex): {}", hex(&pub_check.to_bytes()));
    Ok(())
}

/// `KEY.pub` beside `KEY`.
pub fn public_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

fn random_32() -> anyhow::Result<[u8; 32]> {
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .context("cannot read /dev/urandom for key material")?;
    Ok(seed)
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = Base64::encode_string(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Creates `path` with `mode`, refusing to replace anything (O_EXCL), and syncs it.
fn write_new(path: &Path, data: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(data).and_then(|()| f.sync_all()).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_pem_has_openssls_layout() {
        // The TESTONLY key was made by openssl genpkey: same prefix, 48-byte DER.
        let openssl = include_str!("../suit/testdata/test_ed25519_private_TESTONLY.pem");
        let body: String = openssl.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = Base64::decode_vec(&body).unwrap();
        assert_eq!(der.len(), 48);
        assert_eq!(&der[..16], &ED25519_PKCS8_PREFIX);
        let seed: [u8; 32] = der[16..].try_into().unwrap();
        let mut ours = ED25519_PKCS8_PREFIX.to_vec();
        ours.extend_from_slice(&seed);
        assert_eq!(pem("PRIVATE KEY", &ours).trim(), openssl.trim());
        let public = include_str!("../suit/testdata/test_ed25519_public.pem");
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        let mut spki = ED25519_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(key.verifying_key().as_bytes());
        assert_eq!(pem("PUBLIC KEY", &spki).trim(), public.trim());
    }
}
