//! ferry's Prometheus registry. Names follow `ferry_<noun>_<unit>` with base units; counters end
//! in `_total`. Rooms register their own metrics on [`Metrics::registry`].

mod http;

use prometheus::{IntCounter, IntGauge, Opts, Registry};

pub use http::MetricsServer;

/// The metrics every ferryd has, whatever rooms are running.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub config_reloads_total: IntCounter,
    pub config_reload_failures_total: IntCounter,
    pub rcp_up: IntGauge,
    pub store_heartbeat_failures_total: IntCounter,
}

impl Metrics {
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        #[cfg(target_os = "linux")]
        registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;

        let build_info = IntGauge::with_opts(
            Opts::new("ferry_build_info", "ferryd's version; the value is always 1.")
                .const_label("version", env!("CARGO_PKG_VERSION")),
        )?;
        build_info.set(1);
        registry.register(Box::new(build_info))?;

        let metrics = Metrics {
            config_reloads_total: IntCounter::new(
                "ferry_config_reloads_total",
                "Configuration reloads (SIGHUP) that were applied.",
            )?,
            config_reload_failures_total: IntCounter::new(
                "ferry_config_reload_failures_total",
                "Configuration reloads that were refused; the previous configuration stayed in force.",
            )?,
            rcp_up: IntGauge::new("ferry_rcp_up", "1 while the radio co-processor answers, 0 otherwise.")?,
            store_heartbeat_failures_total: IntCounter::new(
                "ferry_store_heartbeat_failures_total",
                "Periodic store writes that failed; the watchdog stops while they fail.",
            )?,
            registry,
        };
        for collector in [
            &metrics.config_reloads_total,
            &metrics.config_reload_failures_total,
            &metrics.store_heartbeat_failures_total,
        ] {
            metrics.registry.register(Box::new(collector.clone()))?;
        }
        metrics.registry.register(Box::new(metrics.rcp_up.clone()))?;
        Ok(metrics)
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The text exposition format that `/metrics` serves.
    pub fn render(&self) -> String {
        let families = self.registry.gather();
        prometheus::TextEncoder::new()
            .encode_to_string(&families)
            .unwrap_or_else(|e| format!("# ferry could not encode its metrics: {e}\n"))
    }
}
