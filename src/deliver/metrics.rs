//! The delivery metrics, exported from the engine's counts by the shell (no I/O in the engine).

use std::collections::BTreeMap;

use prometheus::{IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry};

use super::{Engine, State};
use crate::coap::PeerKey;

/// `ferry_sessions{state}`, `ferry_updates_completed_total{result}`, `ferry_delivery_bytes_total`.
#[derive(Clone)]
pub struct DeliverMetrics {
    pub sessions: IntGaugeVec,
    pub completed: IntCounterVec,
    pub bytes: IntCounter,
    /// What was exported last, to add only the difference to the counters.
    last_completed: BTreeMap<State, u64>,
    last_bytes: u64,
}

impl DeliverMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<DeliverMetrics> {
        let sessions = IntGaugeVec::new(
            Opts::new("ferry_sessions", "Delivery sessions this ferryd holds, by state."),
            &["state"],
        )?;
        let completed = IntCounterVec::new(
            Opts::new(
                "ferry_updates_completed_total",
                "Delivery sessions that ended, by result (done, unconfirmed, failed, rolled-back, cancelled).",
            ),
            &["result"],
        )?;
        let bytes = IntCounter::new("ferry_delivery_bytes_total", "Manifest and payload bytes served to devices.")?;
        registry.register(Box::new(sessions.clone()))?;
        registry.register(Box::new(completed.clone()))?;
        registry.register(Box::new(bytes.clone()))?;
        Ok(DeliverMetrics { sessions, completed, bytes, last_completed: BTreeMap::new(), last_bytes: 0 })
    }

    /// Copies the engine's counts; call after handling events (cheap).
    pub fn export<P: PeerKey>(&mut self, engine: &Engine<P>) {
        for (state, n) in engine.count_by_state() {
            self.sessions.with_label_values(&[state.as_str()]).set(n as i64);
        }
        let stats = engine.stats();
        for (state, n) in &stats.completed {
            let last = self.last_completed.entry(*state).or_default();
            self.completed.with_label_values(&[state.as_str()]).inc_by(n.saturating_sub(*last));
            *last = *n;
        }
        self.bytes.inc_by(stats.bytes_served.saturating_sub(self.last_bytes));
        self.last_bytes = stats.bytes_served;
    }
}
