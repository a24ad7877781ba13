//! The delivery metrics, exported from the engine's counts by the shell (no I/O in the engine).

use std::collections::BTreeMap;

use prometheus::{
    Counter, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use super::{Engine, State};
use crate::coap::PeerKey;

/// `ferry_sessions{state}`, `ferry_updates_completed_total{result}`, `ferry_delivery_bytes_total`,
/// `ferry_delivery_airtime_seconds_total`, `ferry_device_last_update_timestamp_seconds{device,result}`,
/// `ferry_delivery_retries_total`, `ferry_delivery_given_up`, `ferry_delivery_block_wait_seconds`.
#[derive(Clone)]
pub struct DeliverMetrics {
    pub sessions: IntGaugeVec,
    pub completed: IntCounterVec,
    pub bytes: IntCounter,
    pub airtime: Counter,
    pub last_update: GaugeVec,
    pub retries: IntCounter,
    pub given_up: IntGauge,
    pub block_wait: Histogram,
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
        let airtime = Counter::new(
            "ferry_delivery_airtime_seconds_total",
            "Air time of the 802.15.4 frames (and their ACKs) ferry sent and received while a delivery session \
             moved blocks, at 250 kbit/s.",
        )?;
        let last_update = GaugeVec::new(
            Opts::new(
                "ferry_device_last_update_timestamp_seconds",
                "When a device's last delivery session with this result ended (Unix time).",
            ),
            &["device", "result"],
        )?;
        let retries = IntCounter::new(
            "ferry_delivery_retries_total",
            "Sessions planned again after one ended failed or rolled back (the [delivery] retry policy).",
        )?;
        let given_up = IntGauge::new(
            "ferry_delivery_given_up",
            "Device and update pairs whose delivery attempts are spent (max_attempts).",
        )?;
        let block_wait = Histogram::with_opts(
            HistogramOpts::new(
                "ferry_delivery_block_wait_seconds",
                "How long a device took to ask for its next payload block after the previous one was served. \
                 Waits of 2-3 s on always-on devices are requests (or answers) lost on the air and sent again \
                 after CoAP's ACK_TIMEOUT.",
            )
            .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 120.0]),
        )?;
        registry.register(Box::new(sessions.clone()))?;
        registry.register(Box::new(completed.clone()))?;
        registry.register(Box::new(bytes.clone()))?;
        registry.register(Box::new(airtime.clone()))?;
        registry.register(Box::new(last_update.clone()))?;
        registry.register(Box::new(retries.clone()))?;
        registry.register(Box::new(given_up.clone()))?;
        registry.register(Box::new(block_wait.clone()))?;
        Ok(DeliverMetrics {
            sessions,
            completed,
            bytes,
            airtime,
            last_update,
            retries,
            given_up,
            block_wait,
            last_completed: BTreeMap::new(),
            last_bytes: 0,
        })
    }

    /// Copies the engine's counts; call after handling events (cheap).
    pub fn export<P: PeerKey>(&mut self, engine: &mut Engine<P>) {
        for wait in engine.take_block_waits() {
            self.block_wait.observe(wait.as_secs_f64());
        }
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

impl DeliverMetrics {
    /// A device's session ended with `result` at `unix_ms`.
    pub fn ended(&self, device: &crate::fleet::Eui64, result: State, unix_ms: i64) {
        self.last_update.with_label_values(&[&device.to_string(), result.as_str()]).set(unix_ms as f64 / 1e3);
    }
}
