//! The radio's Prometheus metrics.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Counters the link shell keeps up to date.
#[derive(Clone)]
pub struct RadioMetrics {
    /// `ferry_rcp_up`: 1 while the handshake is done and the RCP answers.
    pub rcp_up: IntGauge,
    /// `ferry_rcp_resets_total`: resets the RCP did on its own (not the ones ferry asked for).
    pub rcp_resets_total: IntCounter,
    /// `ferry_radio_frames_total{direction="tx"|"rx",result=...}`.
    pub frames_total: IntCounterVec,
}

impl RadioMetrics {
    /// Registers the counters on `registry`. `rcp_up` is the gauge [`crate::metrics::Metrics`]
    /// already registered.
    pub fn register(registry: &Registry, rcp_up: IntGauge) -> Result<RadioMetrics, prometheus::Error> {
        let m = RadioMetrics::unregistered(rcp_up)?;
        registry.register(Box::new(m.rcp_resets_total.clone()))?;
        registry.register(Box::new(m.frames_total.clone()))?;
        Ok(m)
    }

    /// Metrics on no registry (tests, tools).
    pub fn unregistered(rcp_up: IntGauge) -> Result<RadioMetrics, prometheus::Error> {
        Ok(RadioMetrics {
            rcp_up,
            rcp_resets_total: IntCounter::new(
                "ferry_rcp_resets_total",
                "Times the radio co-processor reset on its own and was re-initialised.",
            )?,
            frames_total: IntCounterVec::new(
                Opts::new("ferry_radio_frames_total", "802.15.4 frames through the RCP, by direction and result."),
                &["direction", "result"],
            )?,
        })
    }

    /// Fresh metrics with their own `ferry_rcp_up` gauge, on no registry.
    pub fn standalone() -> RadioMetrics {
        let up = IntGauge::new("ferry_rcp_up", "1 while the radio co-processor answers, 0 otherwise.");
        // The names are constant and valid, so construction cannot fail.
        match up.and_then(RadioMetrics::unregistered) {
            Ok(m) => m,
            Err(e) => unreachable!("constant metric definitions: {e}"),
        }
    }

    pub(crate) fn frame(&self, direction: &str, result: &str) {
        self.frames_total.with_label_values(&[direction, result]).inc();
    }
}
