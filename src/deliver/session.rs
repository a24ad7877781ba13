//! One delivery of one update to one device, as a plain state machine.
//!
//! ```text
//!  planned ──probe──▶ triggered ──▶ manifest-served ──▶ streaming ──▶ rebooting ──▶ confirming
//!     ▲  │  (POST /suit/trigger,   (first manifest     (progress per   (last block   (GET /ferry/status,
//!     │  │   URL + NUL)             block served)       block served)   served)       /suit/version,
//!     │  │                                                                            /suit/slot/active)
//!     │  └─ device already runs it ─▶ done                                   ──▶ done | unconfirmed
//!     └──── retry with backoff (timeout, no answer, 5.xx) ◀── any live state       | rolled-back
//!                                  ──▶ failed(reason) once the attempts are spent   | failed(reason)
//! ```
//!
//! Before every trigger the session probes the device (planned → probe): a device that already
//! runs the update is done without a second trigger, which is what makes a restart after a crash
//! safe. A device whose installed version ferry can read back (`/ferry/status` CBOR, a numeric
//! `/suit/version`) is judged by it, and believed when it differs from what ferry expected; a
//! RIOT device with riotboot is judged by its active slot compared with the slot before the
//! trigger; a device offering neither (RIOT `native`) ends as `unconfirmed`, never `done`.

use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::coap::{self, content_format, Code, Method, RequestError};
use crate::fleet::Eui64;

/// A session's number, unique in the state dir.
pub type SessionId = u64;

/// Where a session is. The first six are live, the rest terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Waiting for its start (or for a retry), or probing the device before a trigger.
    Planned,
    /// `POST /suit/trigger` sent; waiting for the device to fetch the manifest.
    Triggered,
    /// The device fetched (part of) the manifest; waiting for the payload fetch.
    ManifestServed,
    /// The device fetches the payload; progress per block.
    Streaming,
    /// The whole payload was served; the device verifies, installs and reboots.
    Rebooting,
    /// Reading back what the device runs.
    Confirming,
    /// The device runs the update (or a newer one), confirmed by what it reported.
    Done,
    /// Delivered, but the device offers no way to read back what it runs.
    Unconfirmed,
    Failed,
    /// The device came back on its old version.
    RolledBack,
    Cancelled,
}

impl State {
    pub const ALL: [State; 11] = [
        State::Planned,
        State::Triggered,
        State::ManifestServed,
        State::Streaming,
        State::Rebooting,
        State::Confirming,
        State::Done,
        State::Unconfirmed,
        State::Failed,
        State::RolledBack,
        State::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Planned => "planned",
            State::Triggered => "triggered",
            State::ManifestServed => "manifest-served",
            State::Streaming => "streaming",
            State::Rebooting => "rebooting",
            State::Confirming => "confirming",
            State::Done => "done",
            State::Unconfirmed => "unconfirmed",
            State::Failed => "failed",
            State::RolledBack => "rolled-back",
            State::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, State::Done | State::Unconfirmed | State::Failed | State::RolledBack | State::Cancelled)
    }

    /// Whether a session here still moves blocks over the air. One that left streaming (its
    /// device installs, reboots or is read back) does not: the planner's air-time budget must
    /// not count it (its `ActiveSession::air_time_share` is 0), while the topology rules still
    /// do (a router never reboots under it).
    pub fn uses_air(self) -> bool {
        !self.is_terminal() && !matches!(self, State::Rebooting | State::Confirming)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a session is where it is (failed, rolled back, retrying, or confirmed a particular way).
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    /// Nothing happened in this state within its deadline.
    Timeout(State),
    /// A request to the device got no usable answer.
    NoAnswer {
        what: &'static str,
        error: RequestError,
    },
    /// The device refused the trigger (4.xx: retrying cannot help) or failed it (5.xx).
    TriggerRefused(Code),
    /// The device reported the sequence number it runs, lower than the update's.
    OldSequence(u64),
    /// The device's active slot is the one it ran before the trigger.
    SameSlot(u8),
    /// A ferry-aware device reports that its update to `sequence` failed with `code`
    /// (`boot-failure`, `digest-mismatch`, `power-loss`, …); it runs `running`.
    DeviceFailed {
        sequence: u64,
        code: String,
        running: Option<u64>,
    },
    /// The device offers neither `/ferry/status`, a numeric `/suit/version` nor `/suit/slot/active`
    /// (or its slot before the trigger is unknown).
    NoReadBack,
    /// The device already ran this update (or a newer one) when probed.
    AlreadyInstalled(u64),
    /// The device runs a sequence number at or above the update's.
    Installed(u64),
    /// The device's active slot changed from `from` to `to`.
    SlotChanged {
        from: u8,
        to: u8,
    },
    Cancelled,
    /// ferry restarted while the session was live.
    Resumed,
    /// A reason read back from the store (only its text survives).
    Recorded(String),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Timeout(s) => write!(f, "no progress while {s}"),
            Reason::NoAnswer { what, error } => write!(f, "{what}: {error}"),
            Reason::TriggerRefused(code) => write!(f, "the device answered the trigger with {}", code_text(*code)),
            Reason::OldSequence(seq) => write!(f, "the device came back on sequence number {seq}"),
            Reason::SameSlot(slot) => write!(f, "the device came back on its old slot {slot}"),
            Reason::DeviceFailed { sequence, code, running } => {
                write!(f, "the device reports its update to sequence number {sequence} failed ({code})")?;
                match running {
                    Some(r) => write!(f, "; it runs sequence number {r}"),
                    None => Ok(()),
                }
            }
            Reason::NoReadBack => f.write_str(
                "delivered, unconfirmed: the device offers no /ferry/status, /suit/version or /suit/slot/active \
                 to read back what it runs",
            ),
            Reason::AlreadyInstalled(seq) => write!(f, "the device already runs sequence number {seq}"),
            Reason::Installed(seq) => write!(f, "the device runs sequence number {seq}"),
            Reason::SlotChanged { from, to } => write!(f, "the device's active slot moved from {from} to {to}"),
            Reason::Cancelled => f.write_str("cancelled"),
            Reason::Resumed => f.write_str("ferry restarted; checking the device before any new trigger"),
            Reason::Recorded(text) => f.write_str(text),
        }
    }
}

/// What ferry knows of a device's timing, from its learned duty cycle and link quality.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DeviceTiming {
    /// The learned wake period of a sleepy device; `None` when it is always listening.
    pub wake_period: Option<Duration>,
    /// Expected time of one block exchange (request and response) on its path.
    pub block_time: Duration,
    /// How long it takes to verify, install and boot a new image, at most: the confirm deadline
    /// counts from here.
    pub boot_time: Duration,
    /// When the device class is typically back after the last block (nRF52840: ~3.5 s): the
    /// first read-back, then again with backoff. Zero (records from before): `boot_time`.
    #[serde(default)]
    pub first_read_back: Duration,
    /// Block size the device fetches with (RIOT: 64 bytes).
    pub block_size: u32,
}

impl Default for DeviceTiming {
    fn default() -> Self {
        Self {
            wake_period: None,
            block_time: Duration::from_millis(200),
            boot_time: Duration::from_secs(10),
            first_read_back: Duration::ZERO,
            block_size: 64,
        }
    }
}

impl DeviceTiming {
    /// The timing the planner's estimate implies for one session (`schedule::estimate`): its
    /// per-block time (paced, if the estimate paces), its install time and the wake wait.
    pub fn from_estimate(estimate: &crate::schedule::estimate::SessionEstimate, block_size: u32) -> DeviceTiming {
        let blocks = u32::try_from(estimate.blocks.max(1)).unwrap_or(u32::MAX);
        DeviceTiming {
            wake_period: Some(estimate.wake_wait.unsigned_abs()).filter(|w| !w.is_zero()),
            block_time: estimate.transfer.unsigned_abs() / blocks,
            boot_time: estimate.install.unsigned_abs(),
            first_read_back: estimate.install_expected.unsigned_abs(),
            block_size,
        }
    }
}

/// The deadline of each live state, derived from [`DeviceTiming`] and the sizes to move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From the device's answer to the trigger to the first manifest block.
    pub trigger: Duration,
    /// From a manifest block to the first payload block (the device verifies the manifest).
    pub manifest: Duration,
    /// Between two payload blocks.
    pub stall: Duration,
    /// From the last payload block until the device must be back (the confirm deadline counts
    /// from here).
    pub reboot: Duration,
    /// From the last payload block to the first read-back (≤ `reboot`).
    pub first_read_back: Duration,
    /// From the first read-back until the device must have answered.
    pub confirm: Duration,
    /// A probe or the trigger must be answered within this. CoAP retransmits meanwhile, to a
    /// sleepy device a wake period apart and then some (up to 1.5× by its random factor), so a
    /// first copy lost on the way is followed by a second the device gets a wake or two later.
    pub answer: Duration,
}

/// Slack for what the timing cannot know (scheduling, a busy channel).
const SLACK: Duration = Duration::from_secs(10);
/// Blocks a fetch may lose to retransmission before ferry calls it stalled.
const STALL_BLOCKS: u32 = 8;

/// No timing a session derives its deadlines from exceeds this: a stored record with absurd
/// values (a damaged row) then still gives deadlines a clock can add.
const MAX_TIMING: Duration = Duration::from_secs(24 * 3600);

impl Timeouts {
    pub fn derive(t: &DeviceTiming, manifest_size: u64) -> Timeouts {
        let cap = |d: Duration| d.min(MAX_TIMING);
        let (wake, block_time, boot_time) =
            (cap(t.wake_period.unwrap_or_default()), cap(t.block_time), cap(t.boot_time));
        let blocks = |bytes: u64| u32::try_from(bytes.div_ceil(u64::from(t.block_size.max(16)))).unwrap_or(u32::MAX);
        let manifest_fetch = cap(block_time.saturating_mul(blocks(manifest_size).saturating_mul(2)));
        let first_read_back = cap(t.first_read_back);
        Timeouts {
            trigger: wake + block_time * STALL_BLOCKS + SLACK,
            manifest: wake + manifest_fetch + block_time * STALL_BLOCKS + SLACK * 2,
            stall: wake + block_time * STALL_BLOCKS + SLACK,
            reboot: boot_time,
            first_read_back: if first_read_back.is_zero() { boot_time } else { first_read_back.min(boot_time) },
            // Read-backs to a sleepy device are a wake period apart and doubling: room for two
            // lost copies (1 + 2 periods, each up to 1.5× by CoAP's random factor).
            confirm: boot_time * 3 + wake * 5 + SLACK * 6,
            answer: wake * 3 + block_time * STALL_BLOCKS * 3 + SLACK * 6,
        }
    }
}

/// Everything the engine needs to run one session; persisted with it so it can resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionPlan<P> {
    #[serde(with = "crate::fleet::device::eui64_text")]
    pub device: Eui64,
    /// Where the device answers CoAP (the shell's peer key).
    pub peer: P,
    /// The manifest URL the trigger carries (`coap://[gateway]/fw/…/riot.suit.N.bin`).
    pub manifest_uri: String,
    /// The path ferry serves the envelope at (the URI's path, no leading slash).
    pub manifest_path: String,
    /// Lowercase hex SHA-256 of the envelope.
    pub manifest_digest: String,
    /// The paths ferry serves the manifest's payloads at; fetching any one whole completes it.
    pub payload_paths: Vec<String>,
    /// The update's sequence number.
    pub sequence: u64,
    pub manifest_size: u64,
    pub payload_size: u64,
    pub timing: DeviceTiming,
    /// Who signed the update.
    pub authority: String,
    /// Which policy or approval allowed it.
    pub approval: String,
    /// Do not start before this (a sleepy device's predicted wake); not persisted.
    #[serde(skip)]
    pub not_before: Option<Instant>,
    /// When the window the session started in closes, if it must end inside one: kept so the
    /// planner still protects it after a restart.
    #[serde(default, with = "crate::schedule::instant::rfc3339_opt", skip_serializing_if = "Option::is_none")]
    pub window_closes: Option<jiff::Timestamp>,
    /// Its estimated air-time share and the border router's part of it (the planner's
    /// [`SessionEstimate`](crate::schedule::estimate::SessionEstimate)): kept so a session
    /// resumed after a restart still counts on the radio.
    #[serde(default)]
    pub air_time_share: f64,
    #[serde(default)]
    pub gateway_share: f64,
}

/// A transition, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// `None` for the session's creation.
    pub from: Option<State>,
    pub to: State,
    pub detail: String,
}

/// A session as it must be stored. Emitted at every transition (with [`Transition`]) and at
/// progress checkpoints (without).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord<P> {
    pub id: SessionId,
    pub plan: SessionPlan<P>,
    pub state: State,
    pub reason: Option<Reason>,
    /// Triggers sent.
    pub attempts: u32,
    /// Failures that caused a retry since the session began (a stall the device recovered
    /// from by itself, fetching further, is taken back).
    pub failures: u32,
    /// Bytes of the manifest and payloads served to the device.
    pub bytes_served: u64,
    /// Highest payload offset served (offset + block length).
    pub progress: u64,
    /// The device's active slot before the (first) trigger, if it has slots; a session that
    /// follows a failed one of the same update starts from that one's.
    pub slot_before: Option<u8>,
    /// An earlier session triggered this update on this device and failed: a slot that moved
    /// since `slot_before` means the device runs the update (RIOT refuses a second trigger of
    /// it as not newer, so ferry must not send one).
    pub earlier_trigger: bool,
    /// The sequence number the device last reported, if it reports one.
    pub seq_reported: Option<u64>,
    pub started_unix_ms: i64,
    pub updated_unix_ms: i64,
    pub transition: Option<Transition>,
}

/// Which request a response answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestTag(pub u64);

/// The read-back steps, in the order tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProbeStep {
    /// `GET /ferry/status`: CBOR map {"seq": uint, "slot": uint?}.
    Status,
    /// `GET /suit/version`: RIOT answers "NONE"; a number is a sequence number.
    Version,
    /// `GET /suit/slot/active`: one ASCII digit, 4.04 without riotboot.
    Slot,
}

impl ProbeStep {
    fn path(self) -> &'static str {
        match self {
            ProbeStep::Status => "ferry/status",
            ProbeStep::Version => "suit/version",
            ProbeStep::Slot => "suit/slot/active",
        }
    }

    fn next(self) -> Option<ProbeStep> {
        match self {
            ProbeStep::Status => Some(ProbeStep::Version),
            ProbeStep::Version => Some(ProbeStep::Slot),
            ProbeStep::Slot => None,
        }
    }
}

/// What a request in flight is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pending {
    Probe(ProbeStep),
    Trigger,
}

/// What a probe read back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ReadBack {
    seq: Option<u64>,
    slot: Option<u8>,
    /// The update the device reports failed, and how.
    failed: Option<(u64, String)>,
    /// The step whose answer was the one that counted.
    settled_by: Option<ProbeStep>,
}

/// Engine-wide knobs.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// Failures (timeouts, no answer, 5.xx) a session survives before it fails.
    pub max_failures: u32,
    /// First retry delay; doubled at every further failure.
    pub backoff: Duration,
    pub backoff_max: Duration,
    /// A streaming session emits a progress record every this many payload bytes.
    pub checkpoint_bytes: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_failures: 4,
            backoff: Duration::from_secs(30),
            backoff_max: Duration::from_secs(30 * 60),
            checkpoint_bytes: 16 * 1024,
        }
    }
}

/// What a session asks of the engine (which turns it into [`super::Action`]s, in this order).
#[derive(Debug)]
pub(crate) enum Effect<P> {
    Persist(Box<SessionRecord<P>>),
    Request { tag: RequestTag, peer: P, request: coap::Request },
}

/// Per-call context the engine lends a session.
pub(crate) struct Ctx<'a, P> {
    pub cfg: &'a EngineConfig,
    pub unix_ms: i64,
    pub next_tag: &'a mut u64,
    pub out: &'a mut Vec<Effect<P>>,
}

impl<P> Ctx<'_, P> {
    fn tag(&mut self) -> RequestTag {
        *self.next_tag += 1;
        RequestTag(*self.next_tag)
    }
}

/// A live (or finished) session.
#[derive(Debug, Clone)]
pub(crate) struct Session<P> {
    pub record: SessionRecord<P>,
    pub timeouts: Timeouts,
    pub pending: Option<(RequestTag, Pending)>,
    /// Whether the current probe judges an install (after reboot) or decides on a trigger.
    after_reboot: bool,
    read_back: ReadBack,
    /// The step a probe starts with: the one that settled the last (at first `Status`). A stock
    /// RIOT device is then read back after its reboot in one exchange instead of three, and to
    /// a sleepy device behind routers each exchange risks an answer lost on the way up, which
    /// costs a wake period or two for the retransmission.
    read_back_from: ProbeStep,
    /// After a reboot, the device still reads back old: it may not have rebooted yet, so this
    /// becomes the verdict only when the confirm deadline passes.
    came_back_old: Option<Reason>,
    /// The wait before the next read-back after a reboot, doubled each time up to half of
    /// `timeouts.reboot`.
    read_back_wait: Duration,
    /// No progress in the current state after this.
    pub state_deadline: Option<Instant>,
    /// Start (or retry) the next step at this time.
    pub wake_at: Option<Instant>,
    /// When the last new payload block was served (while streaming).
    last_block_at: Option<Instant>,
}

impl<P: coap::PeerKey> Session<P> {
    /// `earlier_slot`: the active slot before the trigger of an earlier, failed session of the
    /// same update on this device.
    pub fn new(
        id: SessionId,
        plan: SessionPlan<P>,
        earlier_slot: Option<u8>,
        now: Instant,
        ctx: &mut Ctx<'_, P>,
    ) -> Self {
        let wake_at = Some(plan.not_before.map_or(now, |t| t.max(now)));
        let record = SessionRecord {
            id,
            plan,
            state: State::Planned,
            reason: None,
            attempts: 0,
            failures: 0,
            bytes_served: 0,
            progress: 0,
            slot_before: earlier_slot,
            earlier_trigger: earlier_slot.is_some(),
            seq_reported: None,
            started_unix_ms: ctx.unix_ms,
            updated_unix_ms: ctx.unix_ms,
            transition: Some(Transition { from: None, to: State::Planned, detail: "planned".into() }),
        };
        ctx.out.push(Effect::Persist(Box::new(record.clone())));
        let mut s = Self::from_record(record, now);
        s.wake_at = wake_at;
        s
    }

    /// A session from its stored record, not yet resumed.
    pub fn from_record(mut record: SessionRecord<P>, _now: Instant) -> Self {
        record.transition = None;
        Self {
            timeouts: Timeouts::derive(&record.plan.timing, record.plan.manifest_size),
            record,
            pending: None,
            after_reboot: false,
            read_back: ReadBack::default(),
            read_back_from: ProbeStep::Status,
            came_back_old: None,
            read_back_wait: Duration::ZERO,
            last_block_at: None,
            state_deadline: None,
            wake_at: None,
        }
    }

    pub fn state(&self) -> State {
        self.record.state
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        match (self.state_deadline, self.wake_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Moves to `to` and emits the record; the caller emits any request after this.
    fn enter(&mut self, ctx: &mut Ctx<'_, P>, to: State, reason: Option<Reason>, detail: String) {
        let from = self.record.state;
        self.record.state = to;
        self.record.reason = reason;
        self.record.updated_unix_ms = ctx.unix_ms;
        self.record.transition = Some(Transition { from: Some(from), to, detail });
        ctx.out.push(Effect::Persist(Box::new(self.record.clone())));
        self.record.transition = None;
        if to.is_terminal() {
            self.pending = None;
            self.state_deadline = None;
            self.wake_at = None;
        }
    }

    fn checkpoint(&mut self, ctx: &mut Ctx<'_, P>) {
        self.record.updated_unix_ms = ctx.unix_ms;
        ctx.out.push(Effect::Persist(Box::new(self.record.clone())));
    }

    /// Resumes a stored session after a restart: streaming ones go back to planned (which
    /// probes before any trigger), rebooting ones to confirming; terminal ones stay.
    pub fn resume(&mut self, now: Instant, ctx: &mut Ctx<'_, P>) {
        match self.record.state {
            State::Planned => self.wake_at = Some(now),
            State::Triggered | State::ManifestServed | State::Streaming => {
                let fetching = self.record.state != State::Triggered;
                self.enter(ctx, State::Planned, Some(Reason::Resumed), Reason::Resumed.to_string());
                // A device that was fetching may still be: give it a stall's time to ask for
                // its next block (and be followed) before probing; a busy device would refuse a
                // trigger, and that is a second trigger all the same.
                self.wake_at = Some(if fetching { now + self.timeouts.stall } else { now });
            }
            State::Rebooting | State::Confirming => {
                let from = self.record.state;
                self.enter(ctx, State::Confirming, Some(Reason::Resumed), format!("resumed while {from}"));
                // The device may still be verifying or booting: give it its boot time first.
                self.after_reboot = true;
                self.state_deadline = Some(now + self.timeouts.reboot + self.timeouts.confirm);
                self.wake_at = Some(now + self.timeouts.first_read_back);
                self.read_back_wait = self.timeouts.first_read_back;
            }
            _ => {}
        }
    }

    pub fn cancel(&mut self, ctx: &mut Ctx<'_, P>) -> bool {
        if self.record.state.is_terminal() {
            return false;
        }
        let detail = match self.record.state {
            State::Rebooting | State::Confirming => "cancelled; the device may still install what it fetched",
            _ => "cancelled",
        };
        self.enter(ctx, State::Cancelled, Some(Reason::Cancelled), detail.into());
        true
    }

    pub fn handle_timeout(&mut self, now: Instant, ctx: &mut Ctx<'_, P>) {
        if self.wake_at.is_some_and(|t| t <= now) {
            self.wake_at = None;
            match self.record.state {
                State::Planned if self.pending.is_none() => self.start_probe(now, ctx, false),
                State::Rebooting => {
                    self.enter(ctx, State::Confirming, None, "reading back what the device runs".into());
                    self.start_probe(now, ctx, true);
                }
                State::Confirming if self.pending.is_none() => self.start_probe(now, ctx, true),
                _ => {}
            }
        }
        if self.state_deadline.is_some_and(|t| t <= now) {
            self.state_deadline = None;
            let state = self.record.state;
            match state {
                State::Confirming => match self.came_back_old.take() {
                    Some(reason) => {
                        let detail = reason.to_string();
                        self.enter(ctx, State::RolledBack, Some(reason), detail)
                    }
                    None => self.enter(
                        ctx,
                        State::Failed,
                        Some(Reason::Timeout(state)),
                        "the device did not answer after its reboot".into(),
                    ),
                },
                s if !s.is_terminal() => {
                    self.pending = None;
                    self.retry(now, ctx, Reason::Timeout(s));
                }
                _ => {}
            }
        }
    }

    /// A failure that may be retried: back to planned after a backoff, or failed when spent.
    fn retry(&mut self, now: Instant, ctx: &mut Ctx<'_, P>, reason: Reason) {
        self.record.failures += 1;
        if self.record.failures >= ctx.cfg.max_failures {
            let detail = format!("{reason}; giving up after {} failures", self.record.failures);
            self.enter(ctx, State::Failed, Some(reason), detail);
            return;
        }
        let shift = (self.record.failures - 1).min(16);
        let delay = ctx.cfg.backoff.saturating_mul(1 << shift).min(ctx.cfg.backoff_max);
        let detail = format!("{reason}; retrying in {} s", delay.as_secs());
        self.enter(ctx, State::Planned, Some(reason), detail);
        self.state_deadline = None;
        // Backoffs are bounded by the configuration; a clock near its end only retries sooner.
        self.wake_at = Some(now.checked_add(delay).unwrap_or(now));
    }

    fn start_probe(&mut self, now: Instant, ctx: &mut Ctx<'_, P>, after_reboot: bool) {
        self.after_reboot = after_reboot;
        self.read_back = ReadBack::default();
        if after_reboot {
            if self.state_deadline.is_none() {
                self.state_deadline = Some(now + self.timeouts.confirm);
            }
        } else {
            self.state_deadline = Some(now + self.timeouts.answer);
        }
        self.send_probe(ctx, self.read_back_from);
    }

    fn send_probe(&mut self, ctx: &mut Ctx<'_, P>, step: ProbeStep) {
        let tag = ctx.tag();
        let mut request = coap::Request::get(step.path());
        if step == ProbeStep::Status {
            request.accept = Some(content_format::CBOR);
        }
        self.pending = Some((tag, Pending::Probe(step)));
        ctx.out.push(Effect::Request { tag, peer: self.record.plan.peer, request });
    }

    fn send_trigger(&mut self, now: Instant, ctx: &mut Ctx<'_, P>) {
        self.record.attempts += 1;
        let detail = format!("POST /suit/trigger {} (attempt {})", self.record.plan.manifest_uri, self.record.attempts);
        self.enter(ctx, State::Triggered, None, detail);
        // Until the device answers, CoAP's retransmissions decide; its fetch is timed from then.
        self.state_deadline = Some(now + self.timeouts.answer);
        let tag = ctx.tag();
        let mut request = coap::Request::new(Method::Post, "suit/trigger");
        // RIOT reads the payload as a C string: the URL and one NUL.
        let mut payload = self.record.plan.manifest_uri.as_bytes().to_vec();
        payload.push(0);
        request.payload = Bytes::from(payload);
        request.content_format = Some(content_format::TEXT_PLAIN);
        self.pending = Some((tag, Pending::Trigger));
        ctx.out.push(Effect::Request { tag, peer: self.record.plan.peer, request });
    }

    pub fn handle_response(
        &mut self,
        now: Instant,
        ctx: &mut Ctx<'_, P>,
        tag: RequestTag,
        outcome: Result<coap::Response, RequestError>,
    ) {
        let Some((want, pending)) = self.pending else { return };
        if want != tag || self.record.state.is_terminal() {
            return;
        }
        self.pending = None;
        match pending {
            Pending::Trigger => match outcome {
                Ok(r) if is_success(r.code) => {
                    // Unless the device's fetch, seen first, set its own deadline.
                    if self.record.state == State::Triggered {
                        self.state_deadline = Some(now + self.timeouts.trigger);
                    }
                }
                Ok(r) if is_client_error(r.code) => {
                    self.enter(ctx, State::Failed, Some(Reason::TriggerRefused(r.code)), "trigger refused".into())
                }
                Ok(r) => self.retry(now, ctx, Reason::TriggerRefused(r.code)),
                Err(error) => self.retry(now, ctx, Reason::NoAnswer { what: "POST /suit/trigger", error }),
            },
            Pending::Probe(step) => {
                let response = match outcome {
                    Ok(r) => r,
                    Err(error) => return self.probe_failed(now, ctx, step, error),
                };
                if is_success(response.code) {
                    match step {
                        ProbeStep::Status => {
                            if let Some(status) = parse_status(&response.payload) {
                                self.read_back.seq = Some(status.seq);
                                self.read_back.slot = status.slot;
                                self.read_back.failed = status.failed;
                                self.read_back.settled_by = Some(step);
                            }
                        }
                        ProbeStep::Version => {
                            self.read_back.seq = parse_version(&response.payload);
                            if self.read_back.seq.is_some() {
                                self.read_back.settled_by = Some(step);
                            }
                        }
                        ProbeStep::Slot => {
                            self.read_back.slot = parse_slot(&response.payload);
                            if self.read_back.slot.is_some() {
                                self.read_back.settled_by = Some(step);
                            }
                        }
                    }
                }
                // A sequence number settles it; otherwise try the next way to read back.
                match step.next() {
                    Some(next) if self.read_back.seq.is_none() => self.send_probe(ctx, next),
                    // Started past the first step and nothing settled it: the update may have
                    // changed what the device offers, so every step is tried from the first.
                    None if self.read_back.settled_by.is_none() && self.read_back_from != ProbeStep::Status => {
                        self.read_back_from = ProbeStep::Status;
                        self.send_probe(ctx, ProbeStep::Status);
                    }
                    _ => self.probed(now, ctx),
                }
            }
        }
    }

    /// The wait before asking a rebooting device again: doubling from the first read-back, at
    /// least 2 s, at most half the conservative install time.
    fn next_read_back_wait(&mut self) -> Duration {
        let cap = (self.timeouts.reboot / 2).max(Duration::from_secs(2));
        self.read_back_wait = (self.read_back_wait * 2).clamp(Duration::from_secs(2), cap);
        self.read_back_wait
    }

    fn probe_failed(&mut self, now: Instant, ctx: &mut Ctx<'_, P>, step: ProbeStep, error: RequestError) {
        let what = match step {
            ProbeStep::Status => "GET /ferry/status",
            ProbeStep::Version => "GET /suit/version",
            ProbeStep::Slot => "GET /suit/slot/active",
        };
        if self.after_reboot {
            // Still booting, maybe: ask again until the confirm deadline says otherwise.
            self.wake_at = Some(now + self.next_read_back_wait());
        } else {
            self.retry(now, ctx, Reason::NoAnswer { what, error });
        }
    }

    /// Decides on what the probe read back.
    fn probed(&mut self, now: Instant, ctx: &mut Ctx<'_, P>) {
        let ReadBack { seq, slot, failed, settled_by } = std::mem::take(&mut self.read_back);
        if let Some(step) = settled_by {
            self.read_back_from = step;
        }
        let expected = self.record.plan.sequence;
        if seq.is_some() {
            self.record.seq_reported = seq;
        }
        if !self.after_reboot {
            if let Some(seq) = seq.filter(|s| *s >= expected) {
                return self.enter(ctx, State::Done, Some(Reason::AlreadyInstalled(seq)), "no trigger needed".into());
            }
            if let (Some(from), Some(to)) = (self.record.slot_before, slot) {
                if seq.is_none() && from != to && (self.record.attempts > 0 || self.record.earlier_trigger) {
                    let reason = Reason::SlotChanged { from, to };
                    return self.enter(ctx, State::Done, Some(reason), "installed by an earlier trigger".into());
                }
            }
            if self.record.slot_before.is_none() {
                self.record.slot_before = slot;
            }
            return self.send_trigger(now, ctx);
        }
        // A device that says how the update failed is believed at once: one that could not boot
        // the new image fell back to the old one (rolled back), any other error is a failure.
        if let Some((sequence, code)) = failed.filter(|(s, _)| *s == expected && seq.is_none_or(|r| r < expected)) {
            let state = if code == "boot-failure" { State::RolledBack } else { State::Failed };
            let reason = Reason::DeviceFailed { sequence, code, running: seq };
            let detail = reason.to_string();
            return self.enter(ctx, state, Some(reason), detail);
        }
        let (state, reason) = match (seq, self.record.slot_before, slot) {
            (Some(s), ..) if s >= expected => (State::Done, Reason::Installed(s)),
            (Some(s), ..) => (State::RolledBack, Reason::OldSequence(s)),
            (None, Some(from), Some(to)) if from != to => (State::Done, Reason::SlotChanged { from, to }),
            (None, Some(_), Some(to)) => (State::RolledBack, Reason::SameSlot(to)),
            _ => (State::Unconfirmed, Reason::NoReadBack),
        };
        if state == State::RolledBack {
            // Old may only mean "not rebooted yet": ask again until the confirm deadline.
            self.came_back_old = Some(reason);
            self.wake_at = Some(now + self.next_read_back_wait());
            return;
        }
        let detail = reason.to_string();
        self.enter(ctx, state, Some(reason), detail);
    }

    /// The serving resource sent `len` bytes at `offset` of `path` (of `total`) to this device.
    /// Returns how long the device took to ask for this payload block since it was served the
    /// previous one, when this is the next block of a running transfer.
    pub fn handle_served(
        &mut self,
        now: Instant,
        ctx: &mut Ctx<'_, P>,
        path: &str,
        offset: u64,
        len: u64,
        total: u64,
    ) -> Option<Duration> {
        let plan = &self.record.plan;
        let is_manifest = path == plan.manifest_path;
        let is_payload = plan.payload_paths.iter().any(|p| p == path);
        if !is_manifest && !is_payload {
            return None;
        }
        self.record.bytes_served += len;
        let state = self.record.state;
        if is_manifest {
            if state == State::Triggered || (state == State::Planned && self.record.attempts > 0) {
                self.pending = None;
                self.wake_at = None;
                self.enter(ctx, State::ManifestServed, None, format!("manifest block at {offset} of {total}"));
            }
            if self.record.state == State::ManifestServed {
                self.state_deadline = Some(now + self.timeouts.manifest);
            }
            return None;
        }
        // A device still fetching for an earlier trigger (ferry restarted, or a retry waits
        // out its backoff) is followed again rather than triggered anew.
        let adopt = state == State::Planned && self.record.attempts > 0;
        if !adopt && !matches!(state, State::Triggered | State::ManifestServed | State::Streaming) {
            return None;
        }
        if adopt {
            self.pending = None;
            self.wake_at = None;
            // The device was only slow (a congested path, requests lost and sent again): it
            // went on by itself past where it stalled, so the stall that sent the session back
            // is not a failure. A device that stopped, or asks for the same block again and
            // again, is still given up after `max_failures` stalls without progress.
            let progressed = offset + len > self.record.progress;
            if progressed
                && matches!(self.record.reason, Some(Reason::Timeout(State::ManifestServed | State::Streaming)))
            {
                self.record.failures = self.record.failures.saturating_sub(1);
            }
        }
        if state != State::Streaming {
            self.record.progress = 0;
            // A transfer's first block is no wait; one the session follows again after a
            // stall is, and the long gap is what the stall was.
            if !adopt {
                self.last_block_at = None;
            }
            self.enter(ctx, State::Streaming, None, format!("payload {path} ({total} bytes)"));
        }
        let before = self.record.progress;
        // A block past what was served is the device's next request; one at or below is a
        // retransmission whose answer was lost, and the device is still waiting.
        let mut waited = None;
        if offset >= before {
            waited = self.last_block_at.map(|at| now.saturating_duration_since(at));
            self.last_block_at = Some(now);
        }
        self.record.progress = self.record.progress.max(offset + len);
        self.state_deadline = Some(now + self.timeouts.stall);
        if offset + len >= total {
            let detail = format!("payload served whole ({total} bytes); the device installs and reboots");
            self.enter(ctx, State::Rebooting, None, detail);
            // Read back as soon as the device is typically up; the verdict still waits for the
            // deadline the conservative install time gives.
            self.state_deadline = Some(now + self.timeouts.reboot + self.timeouts.confirm);
            self.wake_at = Some(now + self.timeouts.first_read_back);
            self.read_back_wait = self.timeouts.first_read_back;
        } else if before / ctx.cfg.checkpoint_bytes != self.record.progress / ctx.cfg.checkpoint_bytes {
            self.checkpoint(ctx);
        }
        waited
    }
}

/// `4.04`, as RFC 7252 writes codes.
fn code_text(code: Code) -> String {
    let raw = u8::from(coap_lite::MessageClass::Response(code));
    format!("{}.{:02}", raw >> 5, raw & 0x1f)
}

fn is_success(code: Code) -> bool {
    (u8::from(coap_lite::MessageClass::Response(code)) >> 5) == 2
}

fn is_client_error(code: Code) -> bool {
    (u8::from(coap_lite::MessageClass::Response(code)) >> 5) == 4
}

/// What `/ferry/status` says about the running image and the last failed update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceStatus {
    pub seq: u64,
    pub slot: Option<u8>,
    /// The sequence number of the last update that failed since the last trigger, and the
    /// device's error code for it.
    pub failed: Option<(u64, String)>,
}

/// Longest error code ferry keeps from a device.
const FAILURE_CODE_MAX: usize = 32;

/// `/ferry/status`: a CBOR map with text keys; the running sequence number is "seq" (uint) or
/// the first of "installed" (array of uint, the active slot's first, as ferry-aware RIOT
/// firmware reports it); "slot" (uint) and "failed" ([uint, text]) are optional, anything else
/// skipped. Indefinite-length maps and arrays are not accepted.
pub fn parse_status(bytes: &[u8]) -> Option<DeviceStatus> {
    let mut d = minicbor::Decoder::new(bytes);
    let len = d.map().ok()??;
    let (mut seq, mut slot, mut running, mut failed) = (None, None, None, None);
    for _ in 0..len.min(64) {
        match d.str().ok()? {
            "seq" => seq = Some(d.u64().ok()?),
            "slot" => slot = Some(d.u8().ok()?),
            "failed" => {
                if d.array().ok()?? != 2 {
                    return None;
                }
                let sequence = d.u64().ok()?;
                let code = d.str().ok()?;
                if code.len() > FAILURE_CODE_MAX || !code.bytes().all(|b| b.is_ascii_graphic()) {
                    return None;
                }
                failed = Some((sequence, code.to_owned()));
            }
            "installed" => {
                let n = d.array().ok()??;
                for i in 0..n.min(16) {
                    let s = d.u64().ok()?;
                    if i == 0 {
                        running = Some(s);
                    }
                }
                if n > 16 {
                    return None;
                }
            }
            _ => d.skip().ok()?,
        }
    }
    Some(DeviceStatus { seq: seq.or(running)?, slot, failed })
}

/// `/suit/version`: a decimal sequence number; RIOT's "NONE" (or anything else) says nothing.
pub fn parse_version(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.trim().parse().ok()
}

/// `/suit/slot/active`: one ASCII digit.
pub fn parse_slot(bytes: &[u8]) -> Option<u8> {
    match std::str::from_utf8(bytes).ok()?.trim().as_bytes() {
        [d @ b'0'..=b'9'] => Some(d - b'0'),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_round_trip() {
        for s in State::ALL {
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
        assert_eq!(State::parse("nope"), None);
    }

    #[test]
    fn only_sessions_before_the_reboot_use_air() {
        let on_air: Vec<_> = State::ALL.into_iter().filter(|s| s.uses_air()).map(State::as_str).collect();
        assert_eq!(on_air, ["planned", "triggered", "manifest-served", "streaming"]);
    }

    #[test]
    fn first_read_back_is_early_but_the_deadline_is_not() {
        let slow = DeviceTiming { boot_time: Duration::from_secs(32), ..DeviceTiming::default() };
        let early = DeviceTiming { first_read_back: Duration::from_millis(3_500), ..slow };
        let (a, b) = (Timeouts::derive(&slow, 457), Timeouts::derive(&early, 457));
        assert_eq!(a.first_read_back, a.reboot, "records without it read back after boot_time");
        assert_eq!(b.first_read_back, Duration::from_millis(3_500));
        assert_eq!((a.reboot, a.confirm), (b.reboot, b.confirm), "the verdict's deadline is unchanged");
        let late = DeviceTiming { first_read_back: Duration::from_secs(99), ..slow };
        assert_eq!(Timeouts::derive(&late, 457).first_read_back, slow.boot_time);
    }

    #[test]
    fn timeouts_grow_with_the_wake_period_and_block_time() {
        let fast = Timeouts::derive(&DeviceTiming::default(), 457);
        let sleepy = Timeouts::derive(
            &DeviceTiming {
                wake_period: Some(Duration::from_secs(60)),
                block_time: Duration::from_secs(1),
                ..DeviceTiming::default()
            },
            457,
        );
        assert_eq!(fast.stall, Duration::from_millis(200) * 8 + SLACK);
        assert_eq!(sleepy.stall, Duration::from_secs(60 + 8) + SLACK);
        assert!(sleepy.trigger > fast.trigger && sleepy.manifest > fast.manifest && sleepy.confirm > fast.confirm);
        // 457 bytes at 64-byte blocks: 8 blocks, twice the block time each.
        assert_eq!(fast.manifest, Duration::from_millis(200) * 16 + Duration::from_millis(200) * 8 + SLACK * 2);
    }

    #[test]
    fn absurd_stored_timing_still_gives_deadlines_a_clock_can_add() {
        let huge = Duration::from_secs(u64::MAX);
        let t = DeviceTiming {
            wake_period: Some(huge),
            block_time: huge,
            boot_time: huge,
            first_read_back: huge,
            ..DeviceTiming::default()
        };
        let timeouts = Timeouts::derive(&t, u64::MAX);
        let now = Instant::now();
        for d in [timeouts.trigger, timeouts.manifest, timeouts.stall, timeouts.confirm, timeouts.answer] {
            assert!(now.checked_add(d).is_some(), "{d:?}");
        }
    }

    #[test]
    fn timing_follows_the_planners_estimate() {
        use crate::schedule::estimate::{session, Model, Path};
        let path = Path {
            image_bytes: 85_000,
            block_size: 64,
            hops: 2,
            etx: 1.5,
            wake_period: Some(jiff::SignedDuration::from_secs(30)),
        };
        let estimate = session(path, &Model::default(), 1.0);
        let t = DeviceTiming::from_estimate(&estimate, 64);
        assert_eq!(t.wake_period, Some(Duration::from_secs(30)));
        assert_eq!(t.boot_time, estimate.install.unsigned_abs());
        let whole = t.block_time * u32::try_from(estimate.blocks).expect("blocks");
        assert!(estimate.transfer.unsigned_abs().saturating_sub(whole) < Duration::from_millis(2), "{t:?}");
    }

    #[test]
    fn read_back_parsers() {
        // {"seq": 1700000000, "slot": 1, "x": [1]}
        let mut buf = Vec::new();
        let mut e = minicbor::Encoder::new(&mut buf);
        e.map(3).and_then(|e| e.str("seq")?.u64(1_700_000_000)?.str("slot")?.u8(1)?.str("x")?.array(1)?.u8(1)).ok();
        assert_eq!(parse_status(&buf), Some(DeviceStatus { seq: 1_700_000_000, slot: Some(1), failed: None }));
        assert_eq!(parse_status(&buf[..buf.len() - 2]), None);
        assert_eq!(parse_status(&[0xa0]), None, "seq is required");
        // What ferry-aware RIOT firmware (and sim::riot) reports: the running image first.
        let mut buf = Vec::new();
        let mut e = minicbor::Encoder::new(&mut buf);
        e.map(3)
            .and_then(|e| {
                e.str("battery")?.u8(80)?.str("free_storage")?.u32(0)?.str("installed")?.array(2)?.u64(9)?.u64(7)
            })
            .ok();
        assert_eq!(parse_status(&buf), Some(DeviceStatus { seq: 9, slot: None, failed: None }));
        // After a failed update it says which and how.
        let mut buf = Vec::new();
        let mut e = minicbor::Encoder::new(&mut buf);
        e.map(2)
            .and_then(|e| e.str("installed")?.array(1)?.u64(5)?.str("failed")?.array(2)?.u64(6)?.str("boot-failure"))
            .ok();
        assert_eq!(
            parse_status(&buf),
            Some(DeviceStatus { seq: 5, slot: None, failed: Some((6, "boot-failure".into())) })
        );
        let mut buf = Vec::new();
        let mut e = minicbor::Encoder::new(&mut buf);
        e.map(2).and_then(|e| e.str("seq")?.u64(5)?.str("failed")?.array(2)?.u64(6)?.str("bad code")).ok();
        assert_eq!(parse_status(&buf), None, "codes are short tokens");
        assert_eq!(parse_version(b"NONE"), None);
        assert_eq!(parse_version(b"42\n"), Some(42));
        assert_eq!(parse_slot(b"1"), Some(1));
        assert_eq!(parse_slot(b"12"), None);
    }
}
