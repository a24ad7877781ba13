//! The daemon's radio room: opens `[radio] url` through `crate::radio` and keeps the one-line
//! state that `ferry status`, systemd's STATUS= and the watchdog read.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, RadioUrl};
use crate::metrics::Metrics;
use crate::radio::{self, LinkStatus, RadioMetrics, RxFrame, Settings};

/// What the rest of the daemon sees of the radio.
pub(super) struct RadioRoom {
    url: String,
    /// `None` while this build cannot open the URL (the simulator is not wired in yet).
    link: Option<(radio::Radio, watch::Receiver<LinkStatus>)>,
    unavailable: String,
    /// Since when the radio has been down; the watchdog stops after the grace period.
    down_since: Mutex<Option<Instant>>,
}

/// The radio's state in one line, for people.
#[derive(Debug, Clone)]
pub struct RadioState {
    pub url: String,
    pub up: bool,
    pub detail: String,
}

impl RadioRoom {
    pub(super) fn start(config: &Config, metrics: &Metrics, shutdown: CancellationToken) -> anyhow::Result<RadioRoom> {
        let url = config.radio.url.to_string();
        let radio_metrics = RadioMetrics::register(metrics.registry(), metrics.rcp_up.clone())?;
        metrics.rcp_up.set(0);
        if let RadioUrl::Sim { .. } = config.radio.url {
            return Ok(RadioRoom {
                url,
                link: None,
                unavailable: "the simulated PAN is not built into this ferryd yet".into(),
                down_since: Mutex::new(Some(Instant::now())),
            });
        }
        let settings = Settings::for_network(&config.network);
        let (handle, frames) = radio::spawn(&config.radio.url, settings, radio_metrics, shutdown.clone())?;
        tokio::spawn(drain(frames, shutdown));
        let status = handle.state();
        Ok(RadioRoom { url, link: Some((handle, status)), unavailable: String::new(), down_since: Mutex::new(None) })
    }

    pub(super) fn state(&self) -> RadioState {
        match &self.link {
            Some((_, status)) => {
                let status = status.borrow();
                RadioState { url: self.url.clone(), up: status.up, detail: status.detail.clone() }
            }
            None => RadioState { url: self.url.clone(), up: false, detail: self.unavailable.clone() },
        }
    }

    /// Waits up to `timeout` for the radio; returns whether it is up.
    pub(super) async fn wait_up(&self, timeout: Duration) -> bool {
        let Some((handle, _)) = &self.link else { return false };
        tokio::time::timeout(timeout, handle.wait_ready()).await.unwrap_or(false)
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

/// Received frames have no consumer until the 6LoWPAN room is wired in; count and drop them
/// so the link's bounded channel never fills.
async fn drain(mut frames: mpsc::Receiver<RxFrame>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            frame = frames.recv() => match frame {
                Some(frame) => tracing::trace!(len = frame.psdu.len(), rssi = frame.rssi, "radio frame received"),
                None => return,
            },
        }
    }
}
