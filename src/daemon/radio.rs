//! The daemon's radio room: opens `[radio] url` through `crate::radio`, hands the link to the
//! LoWPAN room (`net.rs`), and keeps the one-line state that `ferry status`, systemd's STATUS=
//! and the watchdog read.

use std::sync::Mutex;

use anyhow::Context;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::border::Peer;
use crate::coap::Event;
use crate::config::{Config, RadioUrl};
use crate::metrics::Metrics;
use crate::radio::{self, LinkStatus, RadioMetrics, Settings};

/// What the rest of the daemon sees of the radio.
pub(super) struct RadioRoom {
    url: String,
    link: (radio::Radio, watch::Receiver<LinkStatus>),
    /// The LoWPAN behind the radio (the border router's read model).
    net: super::net::NetHandle,
    /// The LoWPAN endpoint's CoAP events, until the room that consumes them takes them.
    coap_events: Mutex<Option<mpsc::Receiver<Event<Peer>>>>,
    /// Since when the radio has been down; the watchdog stops after the grace period.
    down_since: Mutex<Option<Instant>>,
    /// The border router's task; the heartbeat checks it is still running.
    net_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The radio's state in one line, for people.
#[derive(Debug, Clone)]
pub struct RadioState {
    pub url: String,
    pub up: bool,
    pub detail: String,
}

impl RadioRoom {
    /// `hold_unknown`: see [`super::net::start`].
    pub(super) fn start(
        config: &Config,
        metrics: &Metrics,
        hold_unknown: Duration,
        shutdown: CancellationToken,
    ) -> anyhow::Result<RadioRoom> {
        let url = config.radio.url.to_string();
        let radio_metrics = RadioMetrics::register(metrics.registry(), metrics.rcp_up.clone())?;
        metrics.rcp_up.set(0);
        let settings = Settings::for_network(&config.network);
        let (handle, frames) = match &config.radio.url {
            // The simulated PAN runs inside ferryd; its gateway RCP is the real RCP core, reached
            // over an in-memory byte stream with the same Spinel driver as hardware.
            RadioUrl::Sim { scenario } => {
                let (opener, _world) = crate::sim::world::sim_opener(scenario, shutdown.clone())
                    .with_context(|| format!("cannot start the simulated PAN {}", scenario.display()))?;
                radio::spawn_with(opener, url.clone(), settings, radio_metrics, shutdown.clone())
            }
            _ => radio::spawn(&config.radio.url, settings, radio_metrics, shutdown.clone())?,
        };
        let (net, coap_events, net_task) =
            super::net::start(&config.network, handle.clone(), frames, hold_unknown, metrics.registry(), shutdown)?;
        let status = handle.state();
        Ok(RadioRoom {
            url,
            link: (handle, status),
            net,
            coap_events: Mutex::new(Some(coap_events)),
            down_since: Mutex::new(None),
            net_task: Mutex::new(Some(net_task)),
        })
    }

    /// Why the border router's task ended, once it has (it runs until shutdown; a panic on a
    /// frame nobody foresaw would otherwise leave the LoWPAN unserved while ferryd looks well).
    pub(super) async fn net_task_ended(&self) -> Option<String> {
        let task = {
            let mut slot = self.net_task.lock().unwrap_or_else(|p| p.into_inner());
            if !slot.as_ref().is_some_and(tokio::task::JoinHandle::is_finished) {
                return None;
            }
            slot.take()?
        };
        Some(match task.await {
            Ok(()) => "the border router's task returned".to_owned(),
            Err(e) => format!("the border router's task failed: {e}"),
        })
    }

    pub(super) fn state(&self) -> RadioState {
        let status = self.link.1.borrow();
        RadioState { url: self.url.clone(), up: status.up, detail: status.detail.clone() }
    }

    /// The topology, once the radio came up.
    pub(super) fn topology(&self) -> Option<crate::border::NetTopology> {
        self.net.topology()
    }

    /// The handle on the border router, for rooms that talk to devices.
    pub(super) fn net(&self) -> &super::net::NetHandle {
        &self.net
    }

    /// The LoWPAN endpoint's CoAP events (responses to requests started through
    /// [`Self::net`]); the first caller gets them.
    pub(super) fn take_coap_events(&self) -> Option<mpsc::Receiver<Event<Peer>>> {
        self.coap_events.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Waits up to `timeout` for the radio; returns whether it is up.
    pub(super) async fn wait_up(&self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.link.0.wait_ready()).await.unwrap_or(false)
    }

    /// Whether the radio has been unreachable for longer than `grace` (checked on each
    /// heartbeat).
    pub(super) fn unreachable_for_longer_than(&self, grace: Duration) -> bool {
        let up = self.state().up;
        let mut down_since = self.down_since.lock().unwrap_or_else(|p| p.into_inner());
        match (up, *down_since) {
            (true, _) => {
                *down_since = None;
                false
            }
            (false, None) => {
                *down_since = Some(Instant::now());
                false
            }
            (false, Some(since)) => since.elapsed() > grace,
        }
    }
}
