//! `ferry publish`: build and sign a SUIT envelope for one component, offline.
//!
//! RIOT (`--format riot`): the layout of RIOT's `gen_manifest.py` + suit-tool 0.0.2, one
//! component `[h'00']`, one image per riotboot slot (`--slot OFFSET IMAGE` twice), try-each;
//! `--uri` is then the folder URI and each slot's URI is `<uri>/<file name>`, as
//! `gen_manifest.py --urlroot` does. draft-37 (`--format ietf`): one image (`--uri` is its URI),
//! or A/B slots like the draft's Example 3.
//!
//! The result is checked by the same trust policy the gateway runs before it is written.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{bail, Context as _};
use clap::{Args, ValueEnum};

use crate::suit::emit::{ImageSpec, ManifestSpec};
use crate::suit::policy::{self, Authority, ComponentPattern, IdPattern, Policy, Scope, TrustedKey, Validity};
use crate::suit::{CoseAlg, Digest, Envelope, Format, KeyType, SigningKey};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// draft-ietf-suit-manifest-37 (tag 107, detached COSE payload).
    Ietf,
    /// RIOT OS's draft-09 (suit-tool 0.0.2), Ed25519 only.
    Riot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AlgArg {
    /// Ed25519 as COSE -8 (RIOT and suit-tool).
    Eddsa,
    /// Ed25519 as COSE -19 (draft-ietf-suit-mti).
    Ed25519,
    /// P-256 as COSE -7.
    Es256,
    /// P-256 as COSE -9 (draft-ietf-suit-mti).
    Esp256,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Manifest encoding the devices understand.
    #[arg(long, value_enum)]
    pub format: FormatArg,
    /// Signing key: PKCS#8 PEM (`ferry keygen`, `openssl genpkey`).
    #[arg(long, value_name = "KEY")]
    pub key: PathBuf,
    /// COSE algorithm (default: EdDSA for Ed25519 keys, ES256 for P-256 keys).
    #[arg(long, value_enum)]
    pub alg: Option<AlgArg>,
    /// manifest-sequence-number; must exceed every earlier one (RIOT uses `date +%s`).
    #[arg(long, value_name = "N")]
    pub seq: u64,
    /// Vendor: a domain (UUIDv5 of it, like RIOT's SUIT_VENDOR) or a UUID.
    #[arg(long, value_name = "DOMAIN-OR-UUID")]
    pub vendor: String,
    /// Class: a name (UUIDv5 under the vendor, like RIOT's SUIT_CLASS = board) or a UUID.
    #[arg(long, value_name = "NAME-OR-UUID")]
    pub class: String,
    /// Component ID as hex segments joined by `/`.
    #[arg(long, default_value = "00", value_name = "HEX")]
    pub component: String,
    /// The payload's URI; with --slot, the folder URI the slot files are served under.
    #[arg(long, value_name = "URI")]
    pub uri: String,
    /// A slot (flash offset for RIOT, slot number for draft-37) and its image; give it once per slot.
    #[arg(long, num_args = 2, value_names = ["OFFSET", "IMAGE"], action = clap::ArgAction::Append)]
    pub slot: Vec<String>,
    /// The single image, when there are no slots.
    #[arg(value_name = "IMAGE")]
    pub image: Option<PathBuf>,
    /// Where to write the signed envelope.
    #[arg(short = 'o', long = "output", value_name = "ENVELOPE")]
    pub output: PathBuf,
    /// Replace ENVELOPE if it exists.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: &PublishArgs) -> anyhow::Result<()> {
    let format = match args.format {
        FormatArg::Ietf => Format::Ietf,
        FormatArg::Riot => Format::Riot,
    };
    let pem = std::fs::read_to_string(&args.key).with_context(|| format!("cannot read key {}", args.key.display()))?;
    let key = SigningKey::from_pkcs8_pem(&pem).with_context(|| {
        format!("{} is not a signing key; make one with `ferry keygen --out KEY`", args.key.display())
    })?;
    let alg = match (args.alg, key.key_type()) {
        (None, KeyType::Ed25519) | (Some(AlgArg::Eddsa), _) => CoseAlg::EdDsa,
        (Some(AlgArg::Ed25519), _) => CoseAlg::Ed25519,
        (None, KeyType::P256) | (Some(AlgArg::Es256), _) => CoseAlg::Es256,
        (Some(AlgArg::Esp256), _) => CoseAlg::Esp256,
    };
    if alg.key_type() != Some(key.key_type()) {
        bail!("--alg {alg} needs a {} key, but {} is {}", alg_key_name(alg), args.key.display(), key.key_type().name());
    }
    if format == Format::Riot && alg != CoseAlg::EdDsa {
        bail!("RIOT devices verify Ed25519 as EdDSA (-8) only; use an Ed25519 key (ferry keygen) and no --alg");
    }
    let vendor_id = policy::vendor_id(&args.vendor);
    let class_id = policy::class_id(&vendor_id, &args.class);
    let component = policy::parse_component_id(&args.component)
        .with_context(|| format!("--component {}: write hex segments joined by `/`, e.g. 00", args.component))?;

    let images = match (&args.image, args.slot.is_empty()) {
        (Some(_), false) => bail!("give either one IMAGE or --slot OFFSET IMAGE per slot, not both"),
        (None, true) => bail!("no image: give IMAGE, or --slot OFFSET IMAGE once per slot"),
        (Some(path), true) => vec![image(None, path, args.uri.clone())?],
        (None, false) => {
            let mut v = Vec::new();
            for pair in args.slot.chunks(2) {
                let [offset, path] = pair else { bail!("--slot needs OFFSET and IMAGE") };
                let slot =
                    parse_u64(offset).with_context(|| format!("--slot {offset}: not a number (decimal or 0x hex)"))?;
                let path = Path::new(path);
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .with_context(|| format!("--slot image {} has no UTF-8 file name", path.display()))?;
                v.push(image(Some(slot), path, format!("{}/{name}", args.uri.trim_end_matches('/')))?);
            }
            v
        }
    };
    if format == Format::Riot && images.len() != 2 {
        eprintln!("ferry publish: note: RIOT's riotboot layout has two slots; this manifest has {}", images.len());
    }
    let spec = ManifestSpec { sequence_number: args.seq, component: component.clone(), vendor_id, class_id, images };
    let envelope = spec.build(format, &[(&key, alg)]).context("cannot build the manifest")?;

    // Judge our own output by the gateway's rules before anyone downloads it.
    let self_check = Policy::new(vec![Authority {
        name: "publisher".into(),
        keys: vec![TrustedKey { key: key.public_key(), validity: Validity::default() }],
        threshold: 1,
        scope: Scope {
            vendors: vec![IdPattern::Exact(spec.vendor_id.clone())],
            classes: vec![IdPattern::Exact(spec.class_id.clone())],
            components: vec![ComponentPattern::Exact(component)],
        },
    }]);
    let parsed = Envelope::parse(&envelope).context("ferry cannot parse the envelope it just built")?;
    let accepted = self_check
        .evaluate(&parsed, SystemTime::now())
        .map_err(|r| anyhow::anyhow!("the envelope would be refused by a gateway: {r}"))?;

    write_output(&args.output, &envelope, args.force)?;
    let name = match format {
        Format::Ietf => "draft-37",
        Format::Riot => "RIOT draft-09",
    };
    println!("wrote {} ({} bytes, {name} format, sequence number {})", args.output.display(), envelope.len(), args.seq);
    println!("vendor {}  class {}  component {:?}", spec.vendor_id, spec.class_id, spec.component);
    for c in accepted.manifest().components.iter() {
        for i in &c.images {
            let slot = i.slot.map_or(String::new(), |s| format!("slot {s}: "));
            let digest = i.digest.as_ref().map_or(String::new(), digest_hex);
            println!("  {slot}{} ({} bytes, sha256 {digest})", i.uri.as_deref().unwrap_or("-"), i.size.unwrap_or(0));
        }
    }
    println!("serve every image at exactly its URI above; the URIs are signed");
    Ok(())
}

fn alg_key_name(alg: CoseAlg) -> &'static str {
    alg.key_type().map_or("supported", KeyType::name)
}

fn digest_hex(d: &Digest) -> String {
    d.bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn image(slot: Option<u64>, path: &Path, uri: String) -> anyhow::Result<ImageSpec> {
    let data = std::fs::read(path).with_context(|| format!("cannot read image {}", path.display()))?;
    Ok(ImageSpec { slot, digest: Digest::sha256(&data), size: data.len() as u64, uri })
}

fn parse_u64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

fn write_output(path: &Path, data: &[u8], force: bool) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut f = options.open(path).with_context(|| {
        if path.exists() && !force {
            format!("{} exists; pass --force to replace it", path.display())
        } else {
            format!("cannot create {}", path.display())
        }
    })?;
    f.write_all(data).and_then(|()| f.sync_all()).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn offsets_in_decimal_and_hex() {
        assert_eq!(super::parse_u64("4096"), Some(4096));
        assert_eq!(super::parse_u64("0x20800"), Some(133_120));
        assert_eq!(super::parse_u64("x"), None);
    }
}
