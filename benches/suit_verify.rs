//! Manifest verification throughput: what ferry spends on a RIOT Ed25519 envelope against the
//! bare signature check it cannot avoid.
//!
//! * `raw_verify_strict`: `ed25519_dalek::VerifyingKey::verify_strict` on the envelope's
//!   Sig_structure, prepared once outside the loop. This is the floor and the baseline.
//! * `parse_authenticate`: `Envelope::parse` + `authenticate(&[key])` (digest check,
//!   Sig_structure, the same `verify_strict`, manifest decode).
//! * `parse_evaluate`: `Envelope::parse` + `Policy::evaluate` (authenticate, deployability and
//!   the authority's scope), the path ferryd takes for every envelope it is offered.
//!
//! criterion prints the raw figures (envelopes/s). After it, an interleaved pass measures all
//! three in alternating rounds in the same process and prints throughput ratios against the
//! baseline (target: `parse_evaluate / raw >= 0.9`). Interleaving keeps the ratio honest on a
//! shared, loaded machine: a noisy neighbour slows both sides of a round alike.
//!
//! `FERRY_BENCH_LOOP=raw|authenticate|evaluate:N` runs one path N times and exits, without
//! criterion: `scripts/bench-suit-callgrind.sh` counts instructions that way.

use std::hint::black_box;
use std::time::{Instant, SystemTime};

use criterion::{Criterion, Throughput};
use ferry::suit::cose::sig_structure;
use ferry::suit::policy::{Authority, ComponentPattern, IdPattern, Scope, TrustedKey, Validity};
use ferry::suit::{Envelope, Policy, PublicKey};

const ENVELOPE: &[u8] = include_bytes!("../src/suit/testdata/riot-suit-tool-0.0.2_ed25519_signed.cbor");
const PUBLIC_KEY_HEX: &str = include_str!("../src/suit/testdata/test_ed25519_public.raw.hex");

/// Everything each path needs, built once.
struct Fixture {
    key: PublicKey,
    policy: Policy,
    dalek_key: ed25519_dalek::VerifyingKey,
    dalek_sig: ed25519_dalek::Signature,
    /// The exact bytes the envelope's signature covers.
    tbs: Vec<u8>,
    now: SystemTime,
}

impl Fixture {
    fn new() -> Self {
        let key = PublicKey::from_hex(PUBLIC_KEY_HEX.trim()).expect("test key");
        let raw: [u8; 32] = key.to_bytes().try_into().expect("32-byte Ed25519 key");
        let dalek_key = ed25519_dalek::VerifyingKey::from_bytes(&raw).expect("valid Ed25519 key");
        let envelope = Envelope::parse(ENVELOPE).expect("RIOT vector parses");
        let cose = envelope.signatures()[0].cose();
        let tbs = sig_structure(cose.protected, cose.payload.expect("draft-09 attaches the digest"));
        let dalek_sig = ed25519_dalek::Signature::from_slice(cose.signature).expect("64-byte signature");
        let any = Scope {
            vendors: vec![IdPattern::Any],
            classes: vec![IdPattern::Any],
            components: vec![ComponentPattern::Any],
        };
        let policy = Policy::new(vec![Authority {
            name: "bench".into(),
            keys: vec![TrustedKey { key: key.clone(), validity: Validity::default() }],
            threshold: 1,
            scope: any,
        }]);
        let f = Fixture { key, policy, dalek_key, dalek_sig, tbs, now: SystemTime::now() };
        // Every path must succeed, or the benchmark would time an early error return.
        assert!(f.raw());
        assert!(f.authenticate());
        assert!(f.evaluate());
        f
    }

    fn raw(&self) -> bool {
        black_box(&self.dalek_key).verify_strict(black_box(&self.tbs), black_box(&self.dalek_sig)).is_ok()
    }

    fn authenticate(&self) -> bool {
        let Ok(envelope) = Envelope::parse(black_box(ENVELOPE)) else { return false };
        let ok = envelope.authenticate(std::slice::from_ref(&self.key)).map(|a| a.manifest().sequence_number);
        black_box(ok).is_ok()
    }

    fn evaluate(&self) -> bool {
        let Ok(envelope) = Envelope::parse(black_box(ENVELOPE)) else { return false };
        black_box(self.policy.evaluate(&envelope, self.now)).is_ok()
    }

    fn run(&self, path: Path) -> bool {
        match path {
            Path::Raw => self.raw(),
            Path::Authenticate => self.authenticate(),
            Path::Evaluate => self.evaluate(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    Raw,
    Authenticate,
    Evaluate,
}

impl Path {
    const ALL: [Path; 3] = [Path::Raw, Path::Authenticate, Path::Evaluate];

    fn name(self) -> &'static str {
        match self {
            Path::Raw => "raw_verify_strict",
            Path::Authenticate => "parse_authenticate",
            Path::Evaluate => "parse_evaluate",
        }
    }

    fn from_arg(s: &str) -> Option<Self> {
        match s {
            "raw" => Some(Path::Raw),
            "authenticate" => Some(Path::Authenticate),
            "evaluate" => Some(Path::Evaluate),
            _ => None,
        }
    }
}

fn criterion_pass(f: &Fixture, c: &mut Criterion) {
    let mut g = c.benchmark_group("suit_verify");
    g.throughput(Throughput::Elements(1));
    for path in Path::ALL {
        g.bench_function(path.name(), |b| b.iter(|| f.run(path)));
    }
    g.finish();
}

/// Rounds of `batch` calls per path, the paths' order rotating each round; returns the median
/// per-round throughput ratio of each path against `Path::Raw`, and each path's median rate.
fn interleaved(f: &Fixture, rounds: usize, batch: u32) -> Vec<(Path, f64, f64)> {
    let mut rates: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); Path::ALL.len()];
    let mut ratios: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); Path::ALL.len()];
    for round in 0..rounds {
        let mut this = [0.0; 3];
        for k in 0..Path::ALL.len() {
            let i = (round + k) % Path::ALL.len();
            let start = Instant::now();
            for _ in 0..batch {
                f.run(Path::ALL[i]);
            }
            this[i] = f64::from(batch) / start.elapsed().as_secs_f64();
        }
        for ((rate, ratio), &r) in rates.iter_mut().zip(ratios.iter_mut()).zip(&this) {
            rate.push(r);
            ratio.push(r / this[0]);
        }
    }
    Path::ALL.iter().enumerate().map(|(i, &p)| (p, median(&mut rates[i]), median(&mut ratios[i]))).collect()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn main() {
    let f = Fixture::new();

    // Instruction counting under callgrind: one path, N times, nothing else.
    if let Ok(spec) = std::env::var("FERRY_BENCH_LOOP") {
        let (name, n) = spec.split_once(':').unwrap_or((spec.as_str(), "1000"));
        let path = Path::from_arg(name).expect("FERRY_BENCH_LOOP=raw|authenticate|evaluate:N");
        let n: u32 = n.parse().expect("FERRY_BENCH_LOOP count");
        let ok = (0..n).filter(|_| f.run(path)).count();
        println!("{}: {ok}/{n} ok", path.name());
        return;
    }

    let mut c = Criterion::default().configure_from_args();
    criterion_pass(&f, &mut c);
    c.final_summary();

    // `cargo bench -- --test` and `cargo test --benches` only check that the paths run.
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--test" || a == "--list") || !args.iter().any(|a| a == "--bench");
    let (rounds, batch) = if quick { (3, 20) } else { (31, 400) };
    let load_before = load_average();
    let started = Instant::now();
    let results = interleaved(&f, rounds, batch);
    let took = started.elapsed();
    println!();
    println!(
        "suit_verify interleaved: {rounds} rounds x {batch} calls per path, {:.1} s; load average {load_before} -> {}",
        took.as_secs_f64(),
        load_average()
    );
    println!("{:<20} {:>14} {:>12}", "path", "envelopes/s", "vs raw");
    for (p, rate, ratio) in &results {
        println!("{:<20} {:>14.0} {:>12.3}", p.name(), rate, ratio);
    }
    let target = 0.9;
    let eval = results.iter().find(|r| r.0 == Path::Evaluate).map_or(f64::NAN, |r| r.2);
    let verdict = match (quick, eval >= target) {
        (true, _) => "not judged in --test mode, too few calls",
        (false, true) => "met",
        (false, false) => "MISSED",
    };
    println!("target parse_evaluate/raw >= {target}: {verdict} ({eval:.3})");
}
