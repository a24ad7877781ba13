//! The daemon's LoWPAN room: one tokio task owns the sans-IO [`BorderRouter`] and shuttles
//! between it and the radio link — received frames in, one transmission at a time out
//! (`Radio::send_frame`, its outcome back into the router), source-match changes to the RCP in
//! order, and the router's timers. Other rooms hold a [`NetHandle`]: the topology from a
//! `watch` refreshed every second, work run on the router inside its task
//! ([`NetHandle::with`], e.g. starting a CoAP request to a device), and the endpoint's events
//! (responses, deferred requests) on a channel one room takes.
//!
//! The router is built once the RCP has answered the handshake, because ferry's extended
//! address is the RCP's factory EUI-64. Metrics: `ferry_net_*`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant as TokioInstant;
use tokio_util::sync::CancellationToken;

use crate::border::{rx_meta, BorderConfig, BorderRouter, NetTopology, Peer, RadioCommand};
use crate::coap::{content_format, Event, Router, StaticResource};
use crate::config::NetworkConfig;
use crate::net::{MacStats, ReassemblyStats};
use crate::radio::{Op, Radio, RcpInfo, RxFrame, TxAck, TxError, TxOptions, TxReceipt};
use crate::sim::timing::Timing;

/// How often the read model and the metrics are refreshed.
const PUBLISH_PERIOD: Duration = Duration::from_secs(1);
/// Source-match changes waiting for the RCP.
const SRC_MATCH_QUEUE: usize = 256;

/// CoAP events waiting for the room that consumes them; later ones are dropped.
const EVENT_QUEUE: usize = 1024;

/// Work for the router, run inside its task with the current time.
type Job = Box<dyn FnOnce(&mut BorderRouter, std::time::Instant) + Send>;

/// The LoWPAN room stopped (shutdown) before it ran the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the LoWPAN room has stopped")]
pub struct NetStopped;

/// Other rooms' handle on the LoWPAN. Cheap to clone.
#[derive(Clone)]
pub struct NetHandle {
    view: watch::Receiver<Option<NetTopology>>,
    /// Unbounded: jobs queue while the radio has not come up yet, and a posting room must not
    /// block on them (each room waits for at most one job of its own at a time, plus what it
    /// posts: catalog additions, one per served update).
    jobs: mpsc::UnboundedSender<Job>,
    air_us: Arc<AtomicU64>,
}

impl NetHandle {
    /// Air time of every frame ferry sent and received so far, with their ACKs, in µs
    /// ([`Timing::frame_and_ack_air_time_us`]).
    pub fn air_time_us(&self) -> u64 {
        self.air_us.load(Ordering::Relaxed)
    }

    /// The DODAG and the neighbours heard; `None` until the radio came up the first time.
    pub fn topology(&self) -> Option<NetTopology> {
        self.view.borrow().clone()
    }

    /// Runs `f` on the border router inside its task (waits for the radio's first handshake);
    /// what `f` queues goes out right after. Keep `f` short: frames wait meanwhile.
    pub async fn with<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut BorderRouter, std::time::Instant) -> R + Send + 'static,
    ) -> Result<R, NetStopped> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |border, now| {
            let _ = reply.send(f(border, now));
        });
        self.jobs.send(job).map_err(|_| NetStopped)?;
        answer.await.map_err(|_| NetStopped)
    }

    /// Queues `f` to run on the border router without waiting for it (never blocks). Jobs run
    /// in the order they are queued; those queued before the radio's first handshake run once
    /// it is done.
    pub fn post(
        &self,
        f: impl FnOnce(&mut BorderRouter, std::time::Instant) + Send + 'static,
    ) -> Result<(), NetStopped> {
        self.jobs.send(Box::new(f)).map_err(|_| NetStopped)
    }
}

/// Starts the room; returns the handle and the receiver of the endpoint's events.
/// Requests for CoAP paths not served yet go unanswered for `hold_unknown` after the LoWPAN
/// comes up, or until the delivery room has added what it serves
/// ([`Endpoint::hold_unknown_until`](crate::coap::Endpoint::hold_unknown_until)).
pub(super) fn start(
    network: &NetworkConfig,
    radio: Radio,
    frames: mpsc::Receiver<RxFrame>,
    hold_unknown: Duration,
    registry: &Registry,
    shutdown: CancellationToken,
) -> anyhow::Result<(NetHandle, mpsc::Receiver<Event<Peer>>, tokio::task::JoinHandle<()>)> {
    let metrics = NetMetrics::register(registry)?;
    let (view_tx, view) = watch::channel(None);
    let (jobs, jobs_rx) = mpsc::unbounded_channel();
    let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
    let air_us = Arc::new(AtomicU64::new(0));
    let io =
        Io { radio, frames, jobs: jobs_rx, events: events_tx, view: view_tx, air_us: air_us.clone(), hold_unknown };
    let task = tokio::spawn(run(network.clone(), io, metrics, shutdown));
    Ok((NetHandle { view, jobs, air_us }, events, task))
}

/// What the task talks to.
struct Io {
    radio: Radio,
    frames: mpsc::Receiver<RxFrame>,
    jobs: mpsc::UnboundedReceiver<Job>,
    events: mpsc::Sender<Event<Peer>>,
    view: watch::Sender<Option<NetTopology>>,
    air_us: Arc<AtomicU64>,
    hold_unknown: Duration,
}

/// The CoAP resources ferry serves on the LoWPAN (`/.well-known/core` lists them).
fn lowpan_router() -> Router {
    let mut router = Router::new();
    router.insert_static(
        "ferry/version",
        StaticResource::new(env!("CARGO_PKG_VERSION").as_bytes().to_vec(), content_format::TEXT_PLAIN),
    );
    router
}

fn now() -> std::time::Instant {
    // Tokio's clock, so tests with a paused clock drive the router's timers too.
    TokioInstant::now().into_std()
}

async fn run(network: NetworkConfig, io: Io, mut metrics: NetMetrics, shutdown: CancellationToken) {
    let Io { radio, mut frames, mut jobs, events, view, air_us, hold_unknown } = io;
    let air = |psdu: &[u8], acked: bool| {
        air_us.fetch_add(Timing::STANDARD.frame_and_ack_air_time_us(psdu, acked), Ordering::Relaxed);
    };
    // Frames heard before the handshake completes have no router to go to.
    let mut status = radio.state();
    let hwaddr = loop {
        let hwaddr = {
            let s = status.borrow();
            s.info.as_ref().filter(|_| s.up).map(|info| info.hwaddr)
        };
        if let Some(hwaddr) = hwaddr {
            break hwaddr;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = status.changed() => if changed.is_err() { return },
            frame = frames.recv() => if frame.is_none() { return },
        }
    };
    let mut border = BorderRouter::new(BorderConfig::new(&network, hwaddr), lowpan_router(), now());
    border.endpoint_mut().hold_unknown_until(now() + hold_unknown);
    tracing::info!(address = %border.address(), "LoWPAN up: RPL root and CoAP on port 5683");
    let src_match = spawn_src_match(radio.clone(), shutdown.clone());
    // Transmissions handed to the radio, oldest first, with their PSDUs for the air-time count.
    let mut tx: VecDeque<(TxReceipt, Vec<u8>)> = VecDeque::new();
    let mut publish = tokio::time::interval(PUBLISH_PERIOD);
    let mut jobs_open = true;
    loop {
        let deadline = border.poll_timeout().map(TokioInstant::from_std);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            frame = frames.recv() => match frame {
                Some(f) => {
                    // The RCP acknowledged it if it asked.
                    air(&f.psdu, true);
                    if let Err(e) = border.handle_frame(now(), &f.psdu, rx_meta(&f)) {
                        tracing::trace!(len = f.psdu.len(), "frame dropped: {e}");
                    }
                }
                None => break,
            },
            result = tx_done(&mut tx) => {
                let psdu = tx.pop_front().map(|(_, psdu)| psdu).unwrap_or_default();
                match &result {
                    Ok(ack) => air(&psdu, ack.ack.is_some()),
                    Err(TxError::NoAck) => air(&psdu, false),
                    Err(_) => {}
                }
                border.handle_tx_done(now(), &result);
            }
            _ = sleep_until(deadline) => border.handle_timeout(now()),
            job = jobs.recv(), if jobs_open => match job {
                Some(job) => job(&mut border, now()),
                // Every handle is gone: nobody will ask again, but frames still flow.
                None => jobs_open = false,
            },
            _ = publish.tick() => {
                view.send_replace(Some(border.topology(now())));
                metrics.update(&border);
            }
        }
        while let Some(event) = border.poll_event() {
            if let Err(e) = events.try_send(event) {
                tracing::debug!("LoWPAN CoAP event dropped (nobody consumes them yet): {e}");
            }
        }
        // Two in flight when the RCP holds the next frame while one is on air.
        border.set_tx_window(status.borrow().info.as_ref().map_or(1, RcpInfo::tx_window));
        while let Some(cmd) = border.poll_radio(now()) {
            match cmd {
                RadioCommand::Transmit { psdu, .. } => match radio.start_frame(&psdu, TxOptions::default()) {
                    Ok(receipt) => tx.push_back((receipt, psdu)),
                    Err(e) => border.handle_tx_refused(now(), e),
                },
                RadioCommand::SrcMatchInsert(a) => queue_op(&src_match, Op::SrcMatchInsert(a)),
                RadioCommand::SrcMatchRemove(a) => queue_op(&src_match, Op::SrcMatchRemove(a)),
            }
        }
    }
    metrics.update(&border);
}

/// The outcome of the oldest transmission in flight (the radio reports them in order); never
/// resolves while there is none.
async fn tx_done(tx: &mut VecDeque<(TxReceipt, Vec<u8>)>) -> Result<TxAck, TxError> {
    match tx.front_mut() {
        Some((receipt, _)) => receipt.done().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<TokioInstant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

fn queue_op(queue: &mpsc::Sender<Op>, op: Op) {
    if queue.try_send(op).is_err() {
        tracing::warn!(?op, "source-match queue full; that sleepy child polls without Frame Pending");
    }
}

/// Applies source-match changes one after the other, so an insert and its remove never swap.
fn spawn_src_match(radio: Radio, shutdown: CancellationToken) -> mpsc::Sender<Op> {
    let (ops, mut rx) = mpsc::channel::<Op>(SRC_MATCH_QUEUE);
    tokio::spawn(async move {
        loop {
            let op = tokio::select! {
                _ = shutdown.cancelled() => return,
                op = rx.recv() => match op { Some(op) => op, None => return },
            };
            if let Err(e) = radio.op(op).await {
                tracing::warn!(?op, "RCP source-match change failed: {e}");
            }
        }
    });
    ops
}

/// `ferry_net_*`, advanced by the difference to the last snapshot of the router's counters.
struct NetMetrics {
    frames: IntCounterVec,
    rx_errors: IntCounter,
    tx_failures: IntCounter,
    reassembly: IntCounterVec,
    indirect: IntCounterVec,
    indirect_held: IntGauge,
    dodag_nodes: IntGauge,
    neighbors: IntGauge,
    last: Snapshot,
}

#[derive(Default)]
struct Snapshot {
    border: crate::border::BorderStats,
    mac: MacStats,
    reasm: ReassemblyStats,
}

impl NetMetrics {
    fn register(registry: &Registry) -> prometheus::Result<NetMetrics> {
        let reg = |c: Box<dyn prometheus::core::Collector>| registry.register(c);
        let frames = IntCounterVec::new(
            Opts::new("ferry_net_frames_total", "802.15.4 frames through the border router, by direction."),
            &["direction"],
        )?;
        let rx_errors = IntCounter::new("ferry_net_rx_errors_total", "Received frames dropped as malformed.")?;
        let tx_failures =
            IntCounter::new("ferry_net_tx_failures_total", "Frames not delivered: no ACK, channel busy, RCP error.")?;
        let reassembly = IntCounterVec::new(
            Opts::new("ferry_net_reassembly_total", "6LoWPAN reassemblies, by outcome."),
            &["result"],
        )?;
        let indirect = IntCounterVec::new(
            Opts::new("ferry_net_indirect_frames_total", "Frames held for sleepy children, by outcome."),
            &["result"],
        )?;
        let indirect_held =
            IntGauge::new("ferry_net_indirect_frames_held", "Frames held now until their sleepy child polls.")?;
        let dodag_nodes = IntGauge::new("ferry_net_dodag_nodes", "Nodes with a downward route (from DAOs).")?;
        let neighbors = IntGauge::new("ferry_net_neighbors", "Neighbours heard by the border router.")?;
        reg(Box::new(frames.clone()))?;
        reg(Box::new(rx_errors.clone()))?;
        reg(Box::new(tx_failures.clone()))?;
        reg(Box::new(reassembly.clone()))?;
        reg(Box::new(indirect.clone()))?;
        reg(Box::new(indirect_held.clone()))?;
        reg(Box::new(dodag_nodes.clone()))?;
        reg(Box::new(neighbors.clone()))?;
        Ok(NetMetrics {
            frames,
            rx_errors,
            tx_failures,
            reassembly,
            indirect,
            indirect_held,
            dodag_nodes,
            neighbors,
            last: Snapshot::default(),
        })
    }

    fn update(&mut self, border: &BorderRouter) {
        let iface = border.interface();
        let now = Snapshot { border: border.stats(), mac: iface.mac_stats(), reasm: iface.reassembly_stats() };
        let last = &self.last;
        let d = |new: u64, old: u64| new.saturating_sub(old);
        self.frames.with_label_values(&["rx"]).inc_by(d(now.border.frames_rx, last.border.frames_rx));
        self.frames.with_label_values(&["tx"]).inc_by(d(now.border.frames_tx, last.border.frames_tx));
        self.rx_errors.inc_by(d(now.border.frames_rx_errors, last.border.frames_rx_errors));
        self.tx_failures.inc_by(d(now.border.tx_failures, last.border.tx_failures));
        let (r, o) = (&now.reasm, &last.reasm);
        for (result, new, old) in [
            ("completed", r.completed, o.completed),
            ("timed_out", r.timed_out, o.timed_out),
            ("refused", r.refused_full + r.refused_per_source, o.refused_full + o.refused_per_source),
            ("invalid", r.invalid, o.invalid),
        ] {
            self.reassembly.with_label_values(&[result]).inc_by(d(new, old));
        }
        let (m, o) = (&now.mac, &last.mac);
        for (result, new, old) in [
            ("queued", m.indirect_queued, o.indirect_queued),
            ("delivered", m.indirect_delivered, o.indirect_delivered),
            ("timed_out", m.indirect_timed_out, o.indirect_timed_out),
            ("dropped_full", m.indirect_dropped_full, o.indirect_dropped_full),
        ] {
            self.indirect.with_label_values(&[result]).inc_by(d(new, old));
        }
        self.indirect_held.set(iface.mac().held_total() as i64);
        let routes = iface.rpl().map_or(0, |r| r.routes().count());
        self.dodag_nodes.set(routes as i64);
        self.neighbors.set(iface.mac().neighbors().count() as i64);
        self.last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::radio::{RadioMetrics, Settings};

    /// The room on the simulated flat's RCP (in process, real time): the router is built once the
    /// handshake is done, other rooms run work on it, and the read model shows ferry as root.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn other_rooms_reach_the_router_through_the_handle() {
        let shutdown = CancellationToken::new();
        let scenario = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sim/home.toml");
        let (opener, _world) = crate::sim::world::sim_opener(&scenario, shutdown.clone()).unwrap();
        let registry = Registry::new();
        let radio_metrics = RadioMetrics::register(&registry, IntGauge::new("ferry_rcp_up", "up").unwrap()).unwrap();
        let network = NetworkConfig::default();
        let (radio, frames) = crate::radio::spawn_with(
            opener,
            "sim".into(),
            Settings::for_network(&network),
            radio_metrics,
            shutdown.clone(),
        );
        let (net, _events, _task) =
            start(&network, radio, frames, Duration::ZERO, &registry, shutdown.clone()).unwrap();

        let job = net.with(|border, _now| (border.address(), border.endpoint().router().link_format()));
        let (address, links) = tokio::time::timeout(Duration::from_secs(20), job).await.unwrap().unwrap();
        assert!(links.contains("</ferry/version>"), "{links}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while net.topology().is_none() {
            assert!(tokio::time::Instant::now() < deadline, "no topology published");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(net.topology().unwrap().root, address);
        let names: Vec<String> = registry.gather().iter().map(|f| f.name().to_owned()).collect();
        assert!(names.iter().any(|n| n == "ferry_net_frames_total"), "{names:?}");
        shutdown.cancel();
    }
}
