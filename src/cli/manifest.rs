//! `ferry manifest inspect`: what a SUIT envelope says, and whether given keys vouch for it.
//!
//! Exit status with `--key`: 0 only if the signed digest matches the manifest, **every**
//! signature block verifies with one of the given keys, and there is at least one block. A
//! block nobody given can check fails the run: an inspector that passes "some signature
//! verified" would hide a stray signer. Without `--key` it only reports (exit 0 if it parses).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::suit::policy::parse_inline_key;
use crate::suit::{Envelope, Format, Manifest, PublicKey};

#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// Print a SUIT envelope's content and check its signatures.
    Inspect(InspectArgs),
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The envelope file.
    pub envelope: PathBuf,
    /// A public key (PEM file, or hex/base64 inline); repeat for several.
    #[arg(long = "key", value_name = "PUBKEY")]
    pub keys: Vec<String>,
    /// Print JSON, for scripts.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: &ManifestCommand) -> anyhow::Result<()> {
    match cmd {
        ManifestCommand::Inspect(args) => inspect(args),
    }
}

fn load_key(arg: &str) -> anyhow::Result<PublicKey> {
    let path = Path::new(arg);
    if path.is_file() {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read key {arg}"))?;
        return parse_inline_key(&text).with_context(|| {
            format!("{arg} holds no Ed25519 or P-256 public key; give the .pub file `ferry keygen` wrote")
        });
    }
    parse_inline_key(arg)
        .with_context(|| format!("--key {arg}: neither a key file nor a hex, base64 or PEM public key"))
}

fn inspect(args: &InspectArgs) -> anyhow::Result<()> {
    let bytes =
        std::fs::read(&args.envelope).with_context(|| format!("cannot read envelope {}", args.envelope.display()))?;
    let keys = args.keys.iter().map(|k| load_key(k)).collect::<anyhow::Result<Vec<_>>>()?;
    let envelope =
        Envelope::parse(&bytes).with_context(|| format!("{} is not a SUIT envelope", args.envelope.display()))?;

    let digest = envelope.check_digest();
    // Per block: the index of the first given key that verifies it, or why none did.
    let mut blocks = Vec::new();
    for s in envelope.signatures() {
        let mut verdict: Result<usize, String> = Err("no --key given".into());
        if !keys.is_empty() {
            verdict = Err("no given key is of this algorithm's type".into());
        }
        for (ki, key) in keys.iter().enumerate() {
            if s.alg().key_type() != Some(key.key_type()) {
                continue;
            }
            match s.verify(key) {
                Ok(()) => {
                    verdict = Ok(ki);
                    break;
                }
                Err(e) => verdict = Err(e.to_string()),
            }
        }
        blocks.push((s.index(), s.alg(), s.kid().map(hex), verdict));
    }

    // The manifest: authenticated when a key verified, otherwise decoded for display only.
    let (manifest, authenticated) = match envelope.authenticate(&keys) {
        Ok(a) => (Some(a.into_manifest()), true),
        Err(_) => (unauthenticated_manifest(&envelope), false),
    };

    let failure = if let Err(e) = &digest {
        Some(format!("the signed digest does not cover this manifest: {e}"))
    } else if keys.is_empty() {
        None
    } else if blocks.is_empty() {
        Some("the envelope has no signature blocks".to_owned())
    } else {
        blocks.iter().find_map(|(i, alg, _, v)| {
            v.as_ref().err().map(|why| format!("signature block {i} ({alg}) is not verified by any given key: {why}"))
        })
    };

    if args.json {
        let report = json!({
            "file": args.envelope.display().to_string(),
            "size": bytes.len(),
            "format": format_name(envelope.format()),
            "tagged": envelope.is_tagged(),
            "digest_ok": digest.is_ok(),
            "authenticated": authenticated,
            "manifest": manifest.as_ref().map(manifest_json),
            "signatures": blocks.iter().map(|(i, alg, kid, v)| json!({
                "index": i,
                "alg": alg.to_string(),
                "alg_code": alg.code(),
                "kid": kid,
                "verified": v.is_ok(),
                "key": v.as_ref().ok().and_then(|k| args.keys.get(*k)),
                "error": v.as_ref().err(),
            })).collect::<Vec<_>>(),
            "ok": failure.is_none(),
            "reason": failure,
        });
        emit(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
    } else {
        emit(&render(args, &bytes, &envelope, digest.is_ok(), authenticated, manifest.as_ref(), &blocks))?;
    }
    match failure {
        Some(reason) => bail!("{}: {reason}", args.envelope.display()),
        None => Ok(()),
    }
}

type Block = (usize, crate::suit::CoseAlg, Option<String>, Result<usize, String>);

fn render(
    args: &InspectArgs,
    bytes: &[u8],
    envelope: &Envelope<'_>,
    digest_ok: bool,
    authenticated: bool,
    manifest: Option<&Manifest>,
    blocks: &[Block],
) -> String {
    let mut out = format!(
        "envelope:  {} ({} bytes, {}{})\ndigest:    {}\n",
        args.envelope.display(),
        bytes.len(),
        format_name(envelope.format()),
        if envelope.is_tagged() { ", tag 107" } else { "" },
        if digest_ok { "matches the manifest" } else { "DOES NOT match the manifest" },
    );
    match manifest {
        Some(m) => {
            let note = if authenticated { "" } else { "  (NOT authenticated)" };
            out.push_str(&format!("sequence:  {}{note}\n", m.sequence_number));
            for c in &m.components {
                out.push_str(&format!(
                    "component: {:?}\n  vendor:  {}\n  class:   {}\n",
                    c.id,
                    c.vendor_id.as_ref().map_or("-".into(), ToString::to_string),
                    c.class_id.as_ref().map_or("-".into(), ToString::to_string),
                ));
                for i in &c.images {
                    let slot = i.slot.map_or("-".into(), |s| s.to_string());
                    out.push_str(&format!(
                        "  image:   slot {slot}, {} bytes, {} {}\n           {}\n",
                        i.size.map_or("?".into(), |s| s.to_string()),
                        i.digest.as_ref().map_or("no".into(), |d| format!("{:?}", d.alg).to_lowercase()),
                        i.digest.as_ref().map_or("digest".into(), |d| hex(&d.bytes)),
                        i.uri.as_deref().unwrap_or("(no URI)"),
                    ));
                }
            }
        }
        None => out.push_str("manifest:  cannot be decoded\n"),
    }
    for (i, alg, kid, v) in blocks {
        let kid = kid.as_ref().map_or(String::new(), |k| format!(", kid {k}"));
        let result = match v {
            Ok(k) => format!("verified by {}", args.keys.get(*k).map_or("?", String::as_str)),
            Err(why) => format!("NOT verified: {why}"),
        };
        out.push_str(&format!("signature {i}: {alg}{kid}: {result}\n"));
    }
    if blocks.is_empty() {
        out.push_str("signatures: none\n");
    }
    out
}

/// Writes the report; a closed pipe (`| head`) is not an error worth a panic.
fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot write the report to stdout"),
    }
}

fn unauthenticated_manifest(envelope: &Envelope<'_>) -> Option<Manifest> {
    let mut d = minicbor::Decoder::new(envelope.manifest_bytes());
    let content = d.bytes().ok()?;
    Manifest::decode(envelope.format(), content, &[]).ok()
}

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Ietf => "ietf",
        Format::Riot => "riot",
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn manifest_json(m: &Manifest) -> Value {
    json!({
        "sequence_number": m.sequence_number,
        "reference_uri": m.reference_uri,
        "components": m.components.iter().map(|c| json!({
            "id": c.id.0.iter().map(|s| hex(s)).collect::<Vec<_>>(),
            "vendor_id": c.vendor_id.as_ref().map(ToString::to_string),
            "class_id": c.class_id.as_ref().map(ToString::to_string),
            "checks_vendor": c.checks_vendor,
            "checks_class": c.checks_class,
            "images": c.images.iter().map(|i| json!({
                "slot": i.slot,
                "size": i.size,
                "uri": i.uri,
                "digest": i.digest.as_ref().map(|d| hex(&d.bytes)),
                "digest_alg": i.digest.as_ref().map(|d| format!("{:?}", d.alg).to_lowercase()),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}
