//! SUIT_Command_Sequence, read symbolically (draft-ietf-suit-manifest-37 §8.4.6 "Command
//! Sequences", §8.4.8 parameters, §8.4.9/§8.4.10 conditions and directives; draft-09 §8.4.7).
//!
//! ```text
//! SUIT_Command_Sequence = [ + (command-id: int, argument) ]
//! try-each     15: [ 2* bstr .cbor SUIT_Command_Sequence, ? nil ]
//! set-params   19 (draft-09 only; sets unset values), override-params 20: { + int => value }
//! run-sequence 32 (draft-37) / 30 (draft-09): bstr .cbor SUIT_Command_Sequence
//! set-component-index 12: uint / true / [+ uint]
//! ```
//! Nothing is executed. The interpreter tracks the parameters each component would have and
//! records, per try-each branch, the values that branch sets under its slot (component-slot /
//! component-offset) so that two-slot manifests yield one [`Image`] per slot. Work is bounded
//! by [`MAX_COMMANDS`] and the input length: each nested sequence is a distinct byte range and
//! is read once.

use minicbor::data::Type;

use super::cbor::Reader;
use super::command::{Command, Parameter};
use super::digest::Digest;
use super::error::{Error, Result};
use super::limits::{MAX_COMMANDS, MAX_COMPONENTS, MAX_PARAMETERS, MAX_SEQUENCE_DEPTH, MAX_TRY_EACH_BRANCHES};
use super::manifest::{Component, ComponentId, Identifier, Image};
use super::Format;

const WHAT: &str = "SUIT_Command_Sequence";

/// draft-37 §8.4.8.3: a vendor ID may be a Private Enterprise Number, `#6.112(bstr)`.
const TAG_PEN: u64 = 112;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Params {
    vendor: Option<Identifier>,
    class: Option<Identifier>,
    digest: Option<Digest>,
    size: Option<u64>,
    uri: Option<String>,
    slot: Option<u64>,
}

impl Params {
    fn is_empty(&self) -> bool {
        *self == Params::default()
    }

    /// Takes every value `newer` has, moving them.
    fn absorb(&mut self, newer: Params) {
        fn take<T>(dst: &mut Option<T>, src: Option<T>) {
            if src.is_some() {
                *dst = src;
            }
        }
        take(&mut self.vendor, newer.vendor);
        take(&mut self.class, newer.class);
        take(&mut self.digest, newer.digest);
        take(&mut self.size, newer.size);
        take(&mut self.uri, newer.uri);
        take(&mut self.slot, newer.slot);
    }

    /// Takes, moving them, only the values of `older` that `self` lacks.
    fn fill_from(&mut self, older: Params) {
        fn keep<T>(dst: &mut Option<T>, src: Option<T>) {
            if dst.is_none() {
                *dst = src;
            }
        }
        keep(&mut self.vendor, older.vendor);
        keep(&mut self.class, older.class);
        keep(&mut self.digest, older.digest);
        keep(&mut self.size, older.size);
        keep(&mut self.uri, older.uri);
        keep(&mut self.slot, older.slot);
    }

    /// Takes only the values `self` lacks.
    fn fill(&mut self, older: &Params) {
        fn keep<T: Clone>(dst: &mut Option<T>, src: &Option<T>) {
            if dst.is_none() {
                dst.clone_from(src);
            }
        }
        keep(&mut self.vendor, &older.vendor);
        keep(&mut self.class, &older.class);
        keep(&mut self.digest, &older.digest);
        keep(&mut self.size, &older.size);
        keep(&mut self.uri, &older.uri);
        keep(&mut self.slot, &older.slot);
    }
}

#[derive(Debug, Default)]
struct State {
    live: Params,
    /// Values set under a given slot inside try-each branches, in first-seen order.
    slots: Vec<(u64, Params)>,
    checks_vendor: bool,
    checks_class: bool,
    fetched: bool,
}

/// The selected component indexes: at most one per component, so they fit inline and a
/// try-each saves and restores them by copy.
#[derive(Debug, Clone, Copy)]
struct Selection {
    ids: [usize; MAX_COMPONENTS],
    len: usize,
}

impl Selection {
    fn one(i: usize) -> Self {
        let mut ids = [0; MAX_COMPONENTS];
        ids[0] = i;
        Selection { ids, len: 1 }
    }

    fn as_slice(&self) -> &[usize] {
        &self.ids[..self.len.min(MAX_COMPONENTS)]
    }

    /// From indexes already checked against the component count (≤ MAX_COMPONENTS).
    fn from_iter(indexes: impl Iterator<Item = usize>) -> Self {
        let mut s = Selection { ids: [0; MAX_COMPONENTS], len: 0 };
        for i in indexes.take(MAX_COMPONENTS) {
            s.ids[s.len] = i;
            s.len += 1;
        }
        s
    }
}

/// The symbolic reader over all sequences of one manifest.
pub(crate) struct Interpreter {
    format: Format,
    comps: Vec<State>,
    /// One overlay per open try-each branch (innermost last), one `Params` per component.
    overlays: Vec<Vec<Params>>,
    /// Emptied overlays, reused by the next branch instead of allocating.
    spare: Vec<Vec<Params>>,
    selected: Selection,
    commands: usize,
}

/// How a parameter map applies its values.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SetMode {
    Override,
    /// draft-09 set-parameters: only where no value is set yet.
    IfUnset,
}

impl Interpreter {
    pub(crate) fn new(format: Format, components: usize) -> Self {
        Interpreter {
            format,
            comps: (0..components).map(|_| State::default()).collect(),
            overlays: Vec::new(),
            spare: Vec::new(),
            selected: Selection::one(0),
            commands: 0,
        }
    }

    /// Runs one top-level sequence; each starts with component 0 selected (draft-37 §8.4.6).
    pub(crate) fn run_top(&mut self, seq: &[u8]) -> Result<()> {
        self.selected = Selection::one(0);
        self.run(seq, 0)
    }

    fn run(&mut self, seq: &[u8], depth: usize) -> Result<()> {
        if depth > MAX_SEQUENCE_DEPTH {
            return Err(Error::TooDeep { what: "nested command sequences", max: MAX_SEQUENCE_DEPTH });
        }
        let mut r = Reader::new(seq);
        let n = r.array(WHAT, 2 * MAX_COMMANDS)?;
        if !n.is_multiple_of(2) {
            return Err(Error::Invalid {
                what: WHAT,
                reason: format!("{n} elements: commands and arguments must come in pairs"),
            });
        }
        for _ in 0..n / 2 {
            self.commands += 1;
            if self.commands > MAX_COMMANDS {
                return Err(Error::TooMany {
                    what: "commands in the manifest",
                    count: self.commands as u64,
                    max: MAX_COMMANDS,
                });
            }
            let cmd = r.i64("command id")?;
            self.command(&mut r, cmd, depth)?;
        }
        r.finish(WHAT)
    }

    fn command(&mut self, r: &mut Reader<'_>, cmd: i64, depth: usize) -> Result<()> {
        match Command::from_code(self.format, cmd) {
            c @ (Command::ConditionVendorIdentifier | Command::ConditionClassIdentifier) => {
                for &i in self.selected.as_slice() {
                    if let Some(s) = self.comps.get_mut(i) {
                        if c == Command::ConditionVendorIdentifier {
                            s.checks_vendor = true;
                        } else {
                            s.checks_class = true;
                        }
                    }
                }
                r.skip("condition argument")
            }
            Command::Fetch => {
                for &i in self.selected.as_slice() {
                    if let Some(s) = self.comps.get_mut(i) {
                        s.fetched = true;
                    }
                }
                r.skip("directive-fetch argument")
            }
            Command::SetComponentIndex => self.set_component_index(r),
            Command::TryEach => self.try_each(r, depth),
            Command::OverrideParameters => self.parameters(r, SetMode::Override),
            Command::SetParameters => self.parameters(r, SetMode::IfUnset),
            Command::RunSequence => {
                let inner = r.bytes("directive-run-sequence")?;
                self.run(inner, depth + 1)
            }
            // Every other condition and directive (image-match, slot, copy, invoke, swap,
            // custom nint commands...) changes no parameter we extract.
            _ => r.skip("command argument"),
        }
    }

    fn set_component_index(&mut self, r: &mut Reader<'_>) -> Result<()> {
        const W: &str = "directive-set-component-index";
        let n = self.comps.len();
        let check = |i: u64| -> Result<usize> {
            usize::try_from(i).ok().filter(|&i| i < n).ok_or_else(|| Error::Invalid {
                what: W,
                reason: format!("component index {i} but the manifest has {n} components"),
            })
        };
        self.selected = match r.peek(W)? {
            Type::Bool => {
                if !r.bool(W)? {
                    return Err(Error::Invalid { what: W, reason: "false is not an index".into() });
                }
                Selection::from_iter(0..n)
            }
            Type::Array => {
                let k = r.array(W, n)?;
                let mut ids = [0usize; MAX_COMPONENTS];
                for id in ids.iter_mut().take(k) {
                    *id = check(r.u64(W)?)?;
                }
                Selection::from_iter(ids.into_iter().take(k))
            }
            _ => Selection::one(check(r.u64(W)?)?),
        };
        Ok(())
    }

    fn try_each(&mut self, r: &mut Reader<'_>, depth: usize) -> Result<()> {
        const W: &str = "directive-try-each";
        let n = r.array(W, MAX_TRY_EACH_BRANCHES + 1)?;
        let saved = self.selected;
        for i in 0..n {
            if r.peek(W)? == Type::Null && i + 1 == n {
                // The optional trailing nil: "no branch needs to succeed".
                r.null(W)?;
                break;
            }
            let branch = r.bytes(W)?;
            let mut layer = self.spare.pop().unwrap_or_default();
            layer.resize_with(self.comps.len(), Params::default);
            self.overlays.push(layer);
            let result = self.run(branch, depth + 1);
            let mut overlay = self.overlays.pop().unwrap_or_default();
            result?;
            self.record_branch(&mut overlay);
            self.spare.push(overlay);
            self.selected = saved;
        }
        Ok(())
    }

    /// Files what a branch set under its slot; a branch without a slot only fills gaps.
    fn record_branch(&mut self, overlay: &mut Vec<Params>) {
        for (c, p) in overlay.drain(..).enumerate() {
            if p.is_empty() {
                continue;
            }
            match p.slot.or_else(|| self.effective(c, |q| q.slot)) {
                Some(slot) => {
                    let Some(state) = self.comps.get_mut(c) else {
                        continue;
                    };
                    match state.slots.iter_mut().find(|(s, _)| *s == slot) {
                        Some((_, q)) => q.absorb(p),
                        None => state.slots.push((slot, p)),
                    }
                }
                None => {
                    let target = match self.overlays.last_mut() {
                        Some(layer) => layer.get_mut(c),
                        None => self.comps.get_mut(c).map(|s| &mut s.live),
                    };
                    if let Some(t) = target {
                        // What the outer level already has wins; the branch fills gaps.
                        t.fill_from(p);
                    }
                }
            }
        }
    }

    /// The value a component would see now: innermost branch first, then the live state.
    fn effective<T>(&self, c: usize, get: impl Fn(&Params) -> Option<T>) -> Option<T> {
        self.overlays
            .iter()
            .rev()
            .filter_map(|layer| layer.get(c))
            .chain(self.comps.get(c).map(|s| &s.live))
            .find_map(get)
    }

    fn parameters(&mut self, r: &mut Reader<'_>, mode: SetMode) -> Result<()> {
        const W: &str = "SUIT_Parameters";
        let mut p = Params::default();
        // The map holds at most MAX_PARAMETERS keys: a fixed array, no allocation.
        let mut seen = [0i64; MAX_PARAMETERS];
        let n = r.map(W, MAX_PARAMETERS)?;
        for i in 0..n {
            let key = r.int_key(W)?;
            if seen[..i].contains(&key) {
                return Err(Error::DuplicateMember { what: W, key });
            }
            seen[i] = key;
            match Parameter::from_code(key) {
                Parameter::VendorIdentifier => p.vendor = Some(identifier(r, "vendor-identifier")?),
                Parameter::ClassIdentifier => p.class = Some(identifier(r, "class-identifier")?),
                Parameter::ImageDigest => {
                    let b = r.bytes("image-digest")?;
                    p.digest = Some(Digest::from_cbor(b, self.format)?);
                }
                Parameter::ComponentSlot => p.slot = Some(r.u64("component-slot")?),
                Parameter::ImageSize => p.size = Some(r.u64("image-size")?),
                Parameter::Uri => p.uri = Some(r.str("uri")?.to_owned()),
                _ => r.skip(W)?,
            }
        }
        let mut p = Some(p);
        let selected = self.selected;
        let selected = selected.as_slice();
        for (i, &c) in selected.iter().enumerate() {
            // The last (usually only) selected component takes the values without a copy.
            let Some(mut p) = (if i + 1 == selected.len() { p.take() } else { p.clone() }) else {
                break;
            };
            if mode == SetMode::IfUnset {
                let set = |get: fn(&Params) -> bool| self.effective(c, |q| get(q).then_some(())).is_some();
                p = Params {
                    vendor: p.vendor.filter(|_| !set(|q| q.vendor.is_some())),
                    class: p.class.filter(|_| !set(|q| q.class.is_some())),
                    digest: p.digest.filter(|_| !set(|q| q.digest.is_some())),
                    size: p.size.filter(|_| !set(|q| q.size.is_some())),
                    uri: p.uri.filter(|_| !set(|q| q.uri.is_some())),
                    slot: p.slot.filter(|_| !set(|q| q.slot.is_some())),
                };
            }
            let target = match self.overlays.last_mut() {
                Some(layer) => layer.get_mut(c),
                None => self.comps.get_mut(c).map(|s| &mut s.live),
            };
            if let Some(t) = target {
                t.absorb(p);
            }
        }
        Ok(())
    }

    /// The per-component model once every sequence has been read.
    pub(crate) fn finish(self, ids: Vec<ComponentId>) -> Vec<Component> {
        ids.into_iter()
            .zip(self.comps)
            .map(|(id, s)| {
                let base = s.live;
                let mut vendor = base.vendor.clone();
                let mut class = base.class.clone();
                let images = if s.slots.is_empty() {
                    vec![image(base)]
                } else {
                    s.slots
                        .into_iter()
                        .map(|(slot, mut q)| {
                            q.fill(&base);
                            q.slot = Some(slot);
                            vendor = vendor.take().or_else(|| q.vendor.clone());
                            class = class.take().or_else(|| q.class.clone());
                            image(q)
                        })
                        .collect()
                };
                Component {
                    id,
                    vendor_id: vendor,
                    class_id: class,
                    images,
                    checks_vendor: s.checks_vendor,
                    checks_class: s.checks_class,
                    fetched: s.fetched,
                }
            })
            .collect()
    }
}

fn image(p: Params) -> Image {
    Image { slot: p.slot, digest: p.digest, size: p.size, uri: p.uri }
}

fn identifier(r: &mut Reader<'_>, what: &'static str) -> Result<Identifier> {
    if r.peek(what)? == Type::Tag {
        let tag = r.tag(what)?;
        if tag != TAG_PEN {
            return Err(Error::Invalid { what, reason: format!("tag {tag} (only 112, a Private Enterprise Number)") });
        }
    }
    Ok(Identifier::from_bytes(r.bytes(what)?))
}
