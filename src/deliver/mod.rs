//! Delivery sessions: SUIT over CoAP to RIOT-like devices, persisted and resumable (DESIGN §3
//! step 6). A sans-IO [`Engine`] runs every [`session`]; [`serve`] is what ferry serves to the
//! devices (verified envelopes and payloads only); [`history`] reads the audit trail back.
//!
//! | file | what |
//! |---|---|
//! | `session.rs` | one session's state machine, timeouts, read-back parsers |
//! | `serve.rs` | [`Catalog`] of verified content and the block-wise CoAP resource serving it |
//! | `record.rs` | records ⇄ `store::sessions` rows |
//! | `retry.rs` | [`RetryPolicy`]: another session after a failed or rolled-back one, or not |
//! | `metrics.rs` | [`DeliverMetrics`]: `ferry_sessions{state}`, `ferry_updates_completed_total{result}`, … |
//! | `history.rs` | `ferry history`: the sessions and their transitions from a state dir |
//!
//! # Driving the engine
//!
//! The shell owns the CoAP endpoint, the store and the clock; the engine owns no I/O:
//!
//! 1. [`load_unfinished`] from the store, then [`Engine::new`] with its highest id and
//!    [`Engine::resume`] with its records, once.
//! 2. [`Engine::start`] for every session the planner starts; [`Engine::cancel`] on request.
//! 3. Feed it: [`Engine::handle_response`] with the outcome of each request it asked for,
//!    [`Engine::handle_served`] with every block the [`serve::Catalog`] reports served,
//!    [`Engine::handle_timeout`] when [`Engine::poll_timeout`] passes (calling it early is safe).
//! 4. After every call, drain [`Engine::poll_action`] **in order** and perform each action
//!    before the next: [`Action::Persist`] writes the record ([`persist`], which returns once
//!    committed); only then [`Action::Request`] starts the CoAP request.
//! 5. Serve: [`Catalog::add_manifest`] (with [`serve::load_blobs`]) for every admitted
//!    manifest, into the endpoint's router; the [`Offer`] it returns fills a [`SessionPlan`].
//!    The endpoint must be seeded per run (`coap::Config::rng_seed`), or a restarted ferry
//!    reuses message IDs that devices still hold in their duplicate caches.
//!
//! The persistence contract: every transition yields a [`Action::Persist`] *before* the action
//! it causes, so a crash between the two leaves a record that says at most what was attempted,
//! never what was not. A stored triggered/streaming session resumes by probing the device first
//! (a device that already runs the update is done without a second trigger); a
//! rebooting/confirming one resumes by reading back; only a read-back sets `done`.

pub mod history;
pub mod metrics;
pub mod record;
pub mod retry;
pub mod serve;
pub mod session;

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::coap::{self, PeerKey, RequestError};

pub use metrics::DeliverMetrics;
pub use record::{load_unfinished, persist, RecordError};
pub use retry::{Next, RetryPolicy};
pub use serve::{Catalog, Offer, Servable, ServeError, Served};
pub use session::{
    DeviceTiming, EngineConfig, Reason, RequestTag, SessionId, SessionPlan, SessionRecord, State, Timeouts, Transition,
};

use session::{Ctx, Effect, Session};

/// What the shell must do, in the order given.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub enum Action<P> {
    /// Write this record (and its transition, if any) and wait for the commit.
    Persist(Box<SessionRecord<P>>),
    /// Start this CoAP request to `peer` (`Endpoint::start_request`) and report its outcome
    /// with `tag` to [`Engine::handle_response`].
    Request { session: SessionId, tag: RequestTag, peer: P, request: coap::Request },
}

/// Why [`Engine::start`] refused: the device already has a live session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the device already has session {session} ({state}); cancel it or wait for it to end")]
pub struct Busy {
    pub session: SessionId,
    pub state: State,
}

/// Running totals for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Sessions that reached each terminal state.
    pub completed: BTreeMap<State, u64>,
    /// Bytes served to devices in sessions.
    pub bytes_served: u64,
    /// Payload blocks a device asked for after the previous one was served (the first block
    /// of a transfer is not counted).
    pub block_waits: u64,
    /// Those that came [`LONG_BLOCK_WAIT`] or more after the previous block, and their total.
    pub long_block_waits: u64,
    pub long_block_wait_total: Duration,
}

/// RFC 7252's ACK_TIMEOUT: an always-on device that asks for its next block this late lost
/// its request (or the answer) and waited out its CoAP retransmission timer; a sleepy one may
/// also have slept.
pub const LONG_BLOCK_WAIT: Duration = Duration::from_secs(2);
/// Block waits kept for [`Engine::take_block_waits`] between two calls; older ones are dropped.
const BLOCK_WAITS_KEPT: usize = 4096;

/// A session's progress, for status views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub id: SessionId,
    pub state: State,
    pub bytes_served: u64,
    /// Payload bytes the device has fetched so far, of `total`.
    pub fetched: u64,
    pub total: u64,
    pub attempts: u32,
}

/// The delivery engine: every session of this ferryd. See the module doc for the call order.
pub struct Engine<P> {
    cfg: EngineConfig,
    /// Wall-clock time of `epoch`, so records carry Unix times while timers use `Instant`.
    epoch: Instant,
    epoch_unix_ms: i64,
    sessions: BTreeMap<SessionId, Session<P>>,
    actions: VecDeque<Action<P>>,
    next_id: SessionId,
    next_tag: u64,
    stats: EngineStats,
    /// Block waits not yet taken by the shell (for a histogram).
    block_waits: VecDeque<Duration>,
}

impl<P: PeerKey> Engine<P> {
    /// An engine whose clock reads `epoch_unix_ms` at `epoch`; session ids start above
    /// `last_id` (`store::sessions::max_id`).
    pub fn new(cfg: EngineConfig, epoch: Instant, epoch_unix_ms: i64, last_id: SessionId) -> Self {
        Self {
            cfg,
            epoch,
            epoch_unix_ms,
            sessions: BTreeMap::new(),
            actions: VecDeque::new(),
            next_id: last_id + 1,
            next_tag: 0,
            stats: EngineStats::default(),
            block_waits: VecDeque::new(),
        }
    }

    fn unix_ms(&self, now: Instant) -> i64 {
        let since = now.saturating_duration_since(self.epoch);
        self.epoch_unix_ms.saturating_add(i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
    }

    /// Runs `f` on one session with a context, then turns its effects into actions.
    fn with_session(&mut self, now: Instant, id: SessionId, f: impl FnOnce(&mut Session<P>, &mut Ctx<'_, P>)) -> bool {
        let unix_ms = self.unix_ms(now);
        let Some(session) = self.sessions.get_mut(&id) else { return false };
        let mut out = Vec::new();
        let before = session.state();
        let bytes_before = session.record.bytes_served;
        let mut ctx = Ctx { cfg: &self.cfg, unix_ms, next_tag: &mut self.next_tag, out: &mut out };
        f(session, &mut ctx);
        self.stats.bytes_served += session.record.bytes_served - bytes_before;
        let after = session.state();
        if after != before && after.is_terminal() {
            *self.stats.completed.entry(after).or_default() += 1;
        }
        self.push(id, out);
        true
    }

    fn push(&mut self, session: SessionId, effects: Vec<Effect<P>>) {
        for e in effects {
            self.actions.push_back(match e {
                Effect::Persist(r) => Action::Persist(r),
                Effect::Request { tag, peer, request } => Action::Request { session, tag, peer, request },
            });
        }
    }

    /// Starts a session (planned; it probes and triggers at `plan.not_before` or now). A device
    /// has at most one live session: a second is refused with the live one's id.
    pub fn start(&mut self, now: Instant, plan: SessionPlan<P>) -> Result<SessionId, Busy> {
        let live = self.sessions.values().find(|s| {
            !s.state().is_terminal() && (s.record.plan.device == plan.device || s.record.plan.peer == plan.peer)
        });
        if let Some(s) = live {
            return Err(Busy { session: s.record.id, state: s.state() });
        }
        let id = self.next_id;
        self.next_id += 1;
        let unix_ms = self.unix_ms(now);
        let mut out = Vec::new();
        let mut ctx = Ctx { cfg: &self.cfg, unix_ms, next_tag: &mut self.next_tag, out: &mut out };
        // The newest earlier session of this update on this device that triggered it and
        // failed (a confirm that timed out on a device that did install).
        let earlier = self
            .sessions
            .values()
            .rev()
            .find(|s| s.record.plan.device == plan.device && s.record.plan.manifest_digest == plan.manifest_digest)
            .filter(|s| matches!(s.state(), State::Failed | State::RolledBack) && s.record.attempts > 0)
            .and_then(|s| s.record.slot_before);
        let session = Session::new(id, plan, earlier, now, &mut ctx);
        self.sessions.insert(id, session);
        self.push(id, out);
        // A session due now starts at once rather than at the shell's next timeout.
        self.with_session(now, id, |s, ctx| s.handle_timeout(now, ctx));
        Ok(id)
    }

    /// Takes back sessions stored by an earlier run (terminal ones are kept as they are).
    pub fn resume(&mut self, now: Instant, records: Vec<SessionRecord<P>>) {
        for record in records {
            let id = record.id;
            self.next_id = self.next_id.max(id + 1);
            self.sessions.insert(id, Session::from_record(record, now));
            self.with_session(now, id, |s, ctx| s.resume(now, ctx));
        }
    }

    /// Cancels a live session; false if unknown or already finished.
    pub fn cancel(&mut self, now: Instant, id: SessionId) -> bool {
        let mut cancelled = false;
        self.with_session(now, id, |s, ctx| cancelled = s.cancel(ctx));
        cancelled
    }

    /// The outcome of a request the engine asked for with [`Action::Request`].
    pub fn handle_response(
        &mut self,
        now: Instant,
        session: SessionId,
        tag: RequestTag,
        outcome: Result<coap::Response, RequestError>,
    ) {
        self.with_session(now, session, |s, ctx| s.handle_response(now, ctx, tag, outcome));
    }

    /// The serving resource sent `len` bytes at `offset` of `path` (of `total`) to `peer`.
    /// Goes to the live session of that peer serving that path, if any.
    pub fn handle_served(&mut self, now: Instant, peer: P, path: &str, offset: u64, len: u64, total: u64) {
        let found = self.sessions.iter().find(|(_, s)| {
            let plan = &s.record.plan;
            plan.peer == peer
                && !s.state().is_terminal()
                && (plan.manifest_path == path || plan.payload_paths.iter().any(|p| p == path))
        });
        let Some((&id, _)) = found else { return };
        let mut waited = None;
        self.with_session(now, id, |s, ctx| waited = s.handle_served(now, ctx, path, offset, len, total));
        if let Some(wait) = waited {
            self.stats.block_waits += 1;
            if wait >= LONG_BLOCK_WAIT {
                self.stats.long_block_waits += 1;
                self.stats.long_block_wait_total += wait;
            }
            if self.block_waits.len() >= BLOCK_WAITS_KEPT {
                self.block_waits.pop_front();
            }
            self.block_waits.push_back(wait);
        }
    }

    /// How long devices took to ask for each next payload block since the last call (at most
    /// the newest 4096).
    pub fn take_block_waits(&mut self) -> impl Iterator<Item = Duration> + '_ {
        self.block_waits.drain(..)
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.next_deadline().is_some_and(|t| t <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.with_session(now, id, |s, ctx| s.handle_timeout(now, ctx));
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sessions.values().filter_map(Session::next_deadline).min()
    }

    pub fn poll_action(&mut self) -> Option<Action<P>> {
        self.actions.pop_front()
    }

    pub fn state(&self, id: SessionId) -> Option<State> {
        self.sessions.get(&id).map(Session::state)
    }

    /// Whether session `id` still waits for the answer to the request it asked for with `tag`.
    /// A request it stopped waiting for (the device fetched, a deadline passed, the session
    /// ended) must be cancelled at the endpoint: retransmitted on, it would hold the next
    /// request to that device behind it (NSTART = 1), and a copy held for a sleepy device's
    /// poll could reach it after the device forgot the message, as a second trigger.
    pub fn awaits(&self, id: SessionId, tag: RequestTag) -> bool {
        self.sessions.get(&id).is_some_and(|s| s.pending.is_some_and(|(want, _)| want == tag))
    }

    pub fn record(&self, id: SessionId) -> Option<&SessionRecord<P>> {
        self.sessions.get(&id).map(|s| &s.record)
    }

    pub fn progress(&self) -> impl Iterator<Item = Progress> + '_ {
        self.sessions.values().map(|s| Progress {
            id: s.record.id,
            state: s.state(),
            bytes_served: s.record.bytes_served,
            fetched: s.record.progress,
            total: s.record.plan.payload_size,
            attempts: s.record.attempts,
        })
    }

    /// Sessions per state (every state listed, zero included).
    pub fn count_by_state(&self) -> BTreeMap<State, usize> {
        let mut counts: BTreeMap<State, usize> = State::ALL.iter().map(|s| (*s, 0)).collect();
        for s in self.sessions.values() {
            *counts.entry(s.state()).or_default() += 1;
        }
        counts
    }

    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// Drops finished sessions last updated before `before_unix_ms` (they stay in the store).
    pub fn forget_finished(&mut self, before_unix_ms: i64) {
        self.sessions.retain(|_, s| !(s.state().is_terminal() && s.record.updated_unix_ms < before_unix_ms));
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }
}

/// How long a session may take at most, from its plan (for the planner's fit check).
pub fn expected_duration(plan_timing: &DeviceTiming, manifest_size: u64, payload_size: u64) -> Duration {
    let block = u64::from(plan_timing.block_size.max(16));
    let blocks = manifest_size.div_ceil(block) + payload_size.div_ceil(block);
    plan_timing.block_time.saturating_mul(u32::try_from(blocks).unwrap_or(u32::MAX))
        + plan_timing.boot_time
        + plan_timing.wake_period.unwrap_or_default()
}

#[cfg(test)]
mod tests;
