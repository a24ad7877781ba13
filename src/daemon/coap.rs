//! The daemon's CoAP room on kernel UDP (`[coap] listen`): one endpoint, its counters
//! exported to Prometheus. It answers `/ferry/version`, serves what the delivery room's catalog
//! adds (verified envelopes and payloads), and lists it all in `/.well-known/core`.

use std::net::SocketAddr;
use std::time::Duration;

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use tokio_util::sync::CancellationToken;

use crate::coap::udp::{self, ShellHandle, UdpShell};
use crate::coap::{content_format, Endpoint, MessageType, Router, StaticResource};

/// How often the endpoint's counters are copied into the registry.
const EXPORT_PERIOD: Duration = Duration::from_secs(5);

pub(super) struct CoapRoom {
    shell: UdpShell,
    handle: ShellHandle,
    /// Answers to requests ferry sends on this endpoint, until the delivery room takes them.
    events: Option<tokio::sync::mpsc::Receiver<crate::coap::Event<udp::UdpPeer>>>,
    exported: Exported,
}

impl CoapRoom {
    /// Binds `listen`; `None` when the configuration lists no address.
    /// Requests for paths not served yet go unanswered for `hold_unknown` after binding, or
    /// until the delivery room has added what it serves.
    pub(super) async fn bind(
        listen: &[SocketAddr],
        hold_unknown: Duration,
        registry: &Registry,
    ) -> anyhow::Result<Option<CoapRoom>> {
        if listen.is_empty() {
            return Ok(None);
        }
        let mut router = Router::new();
        router.insert_static(
            "ferry/version",
            StaticResource::new(env!("CARGO_PKG_VERSION").as_bytes().to_vec(), content_format::TEXT_PLAIN),
        );
        // A fresh seed per run: a restarted ferryd must not reuse the message IDs and tokens of
        // the run before, or devices answer its first requests from their duplicate caches.
        let rng_seed =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
                ^ u64::from(std::process::id());
        let mut endpoint = Endpoint::new(crate::coap::Config { rng_seed, ..crate::coap::Config::default() }, router);
        endpoint.hold_unknown_until((tokio::time::Instant::now() + hold_unknown).into_std());
        let (shell, handle, events) = udp::bind(listen, endpoint).await?;
        Ok(Some(CoapRoom { shell, handle, events: Some(events), exported: Exported::register(registry)? }))
    }

    /// The endpoint's handle, for rooms that serve on it (the delivery room's catalog).
    pub(super) fn handle(&self) -> ShellHandle {
        self.handle.clone()
    }

    /// The endpoint's client events (answers from kernel devices), for the delivery room.
    pub(super) fn take_events(&mut self) -> Option<tokio::sync::mpsc::Receiver<crate::coap::Event<udp::UdpPeer>>> {
        self.events.take()
    }

    pub(super) fn local_addrs(&self) -> Vec<SocketAddr> {
        self.handle.local_addrs().to_vec()
    }

    pub(super) async fn serve(self, shutdown: CancellationToken) {
        let CoapRoom { shell, handle, mut events, mut exported } = self;
        let mut runner = tokio::spawn(shell.run(shutdown.clone()));
        let mut export = tokio::time::interval(EXPORT_PERIOD);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                // The socket task ends only at shutdown; a panic in it is this room's, so the
                // daemon's task set sees it (and ferryd exits for systemd to restart it).
                ended = &mut runner => {
                    match ended {
                        Ok(endpoint) => exported.update(endpoint.metrics()),
                        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                        Err(_) => {}
                    }
                    return;
                }
                _ = export.tick() => {
                    if let Ok(snapshot) = handle.with(|endpoint, _| endpoint.metrics().clone()).await {
                        exported.update(&snapshot);
                    }
                }
                // Only when no room took the events: logged and dropped.
                Some(event) = async { match events.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => {
                    tracing::debug!(?event, "coap event");
                }
            }
        }
        if let Ok(endpoint) = runner.await {
            exported.update(endpoint.metrics());
        }
    }
}

/// `ferry_coap_*` counters, advanced by the difference to the last snapshot.
struct Exported {
    messages: IntCounterVec,
    bytes: IntCounterVec,
    retransmissions: IntCounter,
    timeouts: IntCounter,
    late_answers: IntCounter,
    malformed: IntCounter,
    duplicates: IntCounter,
    held: IntCounter,
    blocks_served: IntCounter,
    transfers: IntCounterVec,
    last: crate::coap::Metrics,
}

impl Exported {
    fn register(registry: &Registry) -> prometheus::Result<Exported> {
        let counter = |name: &str, help: &str| -> prometheus::Result<IntCounter> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let vec = |name: &str, help: &str, labels: &[&str]| -> prometheus::Result<IntCounterVec> {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        Ok(Exported {
            messages: vec(
                "ferry_coap_messages_total",
                "CoAP messages on kernel UDP, by direction and type.",
                &["direction", "type"],
            )?,
            bytes: vec("ferry_coap_bytes_total", "CoAP bytes on kernel UDP, by direction.", &["direction"])?,
            retransmissions: counter("ferry_coap_retransmissions_total", "Confirmable messages sent again.")?,
            timeouts: counter("ferry_coap_transmit_timeouts_total", "Confirmable messages never acknowledged.")?,
            late_answers: counter(
                "ferry_coap_late_answers_total",
                "Answers to requests ferry had stopped retransmitting; the peer's wait is learned from them.",
            )?,
            malformed: counter("ferry_coap_malformed_total", "Datagrams that were not CoAP.")?,
            duplicates: counter("ferry_coap_duplicates_total", "Duplicate requests answered from the cache.")?,
            held: counter(
                "ferry_coap_held_total",
                "Requests for paths not served yet, left unanswered while ferryd starts (the client retransmits).",
            )?,
            blocks_served: counter("ferry_coap_blocks_served_total", "Block2 blocks served.")?,
            transfers: vec("ferry_coap_block_transfers_total", "Block-wise transfers, by kind.", &["kind"])?,
            last: crate::coap::Metrics::default(),
        })
    }

    fn update(&mut self, now: &crate::coap::Metrics) {
        let last = &self.last;
        let types = [
            ("con", MessageType::Confirmable),
            ("non", MessageType::NonConfirmable),
            ("ack", MessageType::Acknowledgement),
            ("rst", MessageType::Reset),
        ];
        for (direction, new, old) in [("rx", &now.rx, &last.rx), ("tx", &now.tx, &last.tx)] {
            for (name, t) in types {
                self.messages
                    .with_label_values(&[direction, name])
                    .inc_by(new.of_type(t).saturating_sub(old.of_type(t)));
            }
            self.bytes.with_label_values(&[direction]).inc_by(new.bytes.saturating_sub(old.bytes));
        }
        let delta = |new: u64, old: u64| new.saturating_sub(old);
        self.retransmissions.inc_by(delta(now.retransmissions, last.retransmissions));
        self.timeouts.inc_by(delta(now.transmit_timeouts, last.transmit_timeouts));
        self.late_answers.inc_by(delta(now.late_answers, last.late_answers));
        self.malformed.inc_by(delta(now.rx_malformed, last.rx_malformed));
        self.duplicates.inc_by(delta(now.rx_duplicates, last.rx_duplicates));
        self.held.inc_by(delta(now.rx_held, last.rx_held));
        self.blocks_served.inc_by(delta(now.block2_blocks_served, last.block2_blocks_served));
        for (kind, new, old) in [
            ("block2_served", now.block2_transfers_started, last.block2_transfers_started),
            ("block1_received", now.block1_transfers_completed, last.block1_transfers_completed),
            ("fetch_completed", now.fetches_completed, last.fetches_completed),
            ("fetch_failed", now.fetches_failed, last.fetches_failed),
        ] {
            self.transfers.with_label_values(&[kind]).inc_by(delta(new, old));
        }
        self.last = now.clone();
    }
}
