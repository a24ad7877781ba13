//! The simulated PAN of a [`Scenario`]: the medium, the gateway RCP ([`RcpNode`]) and the
//! devices ([`Device`]), run in virtual time ([`World::run_until`]) or behind a byte stream in
//! real time ([`spawn_realtime`]).
//!
//! # Virtual time
//!
//! ```no_run
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use ferry::sim::{Scenario, World};
//! let scenario = Scenario::load(std::path::Path::new("config/sim/home.toml"))?;
//! let mut world = World::new(&scenario)?;
//! world.configure_gateway(); // stand in for ferryd: radio on, PAN, addresses
//! world.run_until(10 * 60 * 1_000_000);
//! println!("{:?}", world.report());
//! # Ok(()) }
//! ```
//!
//! Time jumps from one event to the next; a seed is a run.
//!
//! # Real time, for ferryd's `sim:` radio URL
//!
//! [`spawn_realtime`] runs the world in a tokio task that follows the wall clock and exposes
//! the gateway RCP as an async byte stream carrying Spinel in HDLC-lite frames, exactly as a
//! serial RCP would. For `[radio] url = "sim:FILE"` ferryd needs one call:
//!
//! ```no_run
//! # async fn demo(settings: ferry::radio::Settings, metrics: ferry::radio::RadioMetrics,
//! #               shutdown: tokio_util::sync::CancellationToken) -> anyhow::Result<()> {
//! let path = std::path::Path::new("config/sim/home.toml");
//! let (opener, world) = ferry::sim::world::sim_opener(path, shutdown.clone())?;
//! let (radio, frames) = ferry::radio::spawn_with(opener, "sim:home.toml".into(), settings, metrics, shutdown);
//! # let _ = (radio, frames, world); Ok(()) }
//! ```
//!
//! Each open attaches a fresh stream ([`WorldHandle::connect`]); the RCP keeps its state, as a
//! USB RCP does when its port is reopened. The world's handle gives the accounting
//! ([`WorldHandle::report`]) and any access to the world ([`WorldHandle::with`]).

use std::collections::VecDeque;
use std::fmt;
use std::io::Write;
use std::time::Duration;

use ferry_rcp_core::hdlc::{self, SpinelDecoder};
use ferry_rcp_core::rcp::Config as RcpConfig;
use ferry_rcp_core::spinel::data::Writer;
use ferry_rcp_core::spinel::frame::emit_property;
use ferry_rcp_core::spinel::{Capability, Command, Header as SpinelHeader, Property};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::device::{Device, DeviceParams, DeviceStats, WakeRecord};
use super::frame::{Address, FrameType, Header, Psdu};
use super::link::{Link, PathLoss};
use super::medium::{Delivery, Medium, MediumError, NodeConfig, NodeEvent, NodeId, NodeStats, TxRequest};
use super::pcap::PcapWriter;
use super::rcp_node::RcpNode;
use super::riot::{riot_test_key, Costs, NodeTruth, RiotConfig, RiotNode};
use super::rng::Rng;
use super::scenario::NodeSpec;
use super::scenario::{DutyCycle, ExternalSpec, RcpFirmware, Role, Scenario, GATEWAY};
use super::stack::StackConfig;
use super::timing::Timing;

/// Bytes of HDLC waiting for a slow host before whole frames are dropped (a UART overrun).
pub const HOST_OUT_CAPACITY: usize = 256 * 1024;
/// Size of each direction of the in-memory pipe [`spawn_realtime`] returns.
pub const PIPE_CAPACITY: usize = 64 * 1024;
/// Control requests waiting for the world task.
const CONTROL_QUEUE_LEN: usize = 32;

/// Why a world could not be built.
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    #[error("medium: {0}")]
    Medium(#[from] MediumError),
    #[error("scenario names `{0}`, which is not a node")]
    UnknownNode(String),
    #[error("node `{node}`: cannot use key {}: {error}", path.display())]
    Key { node: String, path: std::path::PathBuf, error: String },
}

/// The link between an external node and every other node: reliable, comfortably strong.
pub const EXTERNAL_LINK: Link = Link { prr: 1.0, rssi_dbm: -60 };
/// Frames an external node may have waiting for the air.
const EXTERNAL_TX_QUEUE: usize = 16;
/// Frames for external nodes waiting to be sent to them.
const EXTERNAL_OUT_CAPACITY: usize = 1024;

/// A frame for an external node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalFrame {
    pub node: NodeId,
    /// PSDU, FCS included.
    pub psdu: Vec<u8>,
    pub lqi: u8,
}

#[derive(Debug)]
struct External {
    node: NodeId,
    txq: VecDeque<Psdu>,
    busy: bool,
}

/// A simulated PAN. See the module docs.
pub struct World {
    scenario: Scenario,
    medium: Medium,
    gateway: RcpNode,
    devices: Vec<Device>,
    /// Device index per medium node.
    by_node: Vec<Option<usize>>,
    /// Nodes outside the simulator (ZEP peers), attached at run time.
    externals: Vec<External>,
    external_out: VecDeque<ExternalFrame>,
    external_dropped: u64,
    pcap: Option<PcapWriter<Box<dyn Write + Send>>>,
    pcap_error: Option<String>,
    discard_host_output: bool,
    host_dropped: u64,
    tid: u8,
}

impl fmt::Debug for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("World").field("now", &self.medium.now()).field("devices", &self.devices.len()).finish()
    }
}

impl World {
    /// Builds the medium, the gateway RCP (booted, its radio off until a host configures it)
    /// and the devices (started: sleepy ones have their first wake scheduled).
    pub fn new(scenario: &Scenario) -> Result<World, WorldError> {
        let mut medium = Medium::new(scenario.seed, Timing::STANDARD);
        let gw = medium.add_node(NodeConfig::default())?;
        let gateway = RcpNode::new(&medium, gw, scenario.gateway.eui64.0, rcp_config(scenario.gateway.rcp))
            .ok_or(MediumError::NoSuchNode)?;
        let mut nodes = Vec::with_capacity(scenario.nodes.len());
        for n in &scenario.nodes {
            let cfg = NodeConfig {
                pan_id: scenario.pan_id,
                short_addr: n.short,
                ext_addr: n.eui64.0,
                ..NodeConfig::default()
            };
            nodes.push(medium.add_node(cfg)?);
        }
        let id_of = |name: &str| -> Result<NodeId, WorldError> {
            if name == GATEWAY {
                return Ok(gw);
            }
            scenario
                .nodes
                .iter()
                .position(|n| n.name == name)
                .map(|i| nodes[i])
                .ok_or_else(|| WorldError::UnknownNode(name.to_owned()))
        };

        // Links from geometry, each direction with its sender's power.
        let prop = scenario.propagation;
        let model = path_loss(scenario);
        let mut placed = Vec::new();
        if let Some(pos) = scenario.gateway.position {
            placed.push((gw, pos, scenario.gateway.tx_dbm));
        }
        for (i, n) in scenario.nodes.iter().enumerate() {
            if let Some(pos) = n.position {
                placed.push((nodes[i], pos, n.tx_dbm));
            }
        }
        for &(a, [ax, ay], tx) in &placed {
            for &(b, [bx, by], _) in &placed {
                if a != b {
                    let d = ((ax - bx).powi(2) + (ay - by).powi(2)).sqrt();
                    medium.set_link(a, b, model.link(d, tx, prop.psdu_len))?;
                }
            }
        }
        for l in &scenario.links {
            // Links of external nodes are set when the peer attaches (`add_external`).
            if [&l.from, &l.to].iter().any(|n| scenario.externals.iter().any(|x| &x.name == *n)) {
                continue;
            }
            let (a, b) = (id_of(&l.from)?, id_of(&l.to)?);
            let link = Some(Link::new(l.prr, l.rssi_dbm));
            medium.set_link(a, b, link)?;
            if l.both_ways {
                medium.set_link(b, a, link)?;
            }
        }

        let mut by_node = vec![None; medium.node_count()];
        let mut devices = Vec::with_capacity(nodes.len());
        let mut seeds = Rng::new(scenario.seed ^ 0x5eed_de71_ce00_0000);
        for (i, n) in scenario.nodes.iter().enumerate() {
            let parent_short = match scenario.node(&n.parent) {
                Some(p) => p.short,
                None => scenario.gateway.short,
            };
            let sleepy_children = scenario
                .nodes
                .iter()
                .filter(|c| c.parent == n.name && matches!(c.duty_cycle, DutyCycle::Sleepy { .. }))
                .map(|c| c.short)
                .collect();
            let sleepy_children_ext = scenario
                .nodes
                .iter()
                .filter(|c| c.parent == n.name && matches!(c.duty_cycle, DutyCycle::Sleepy { .. }))
                .map(|c| (c.eui64.0, c.short))
                .collect();
            let params = DeviceParams {
                name: n.name.clone(),
                short: n.short,
                pan_id: scenario.pan_id,
                channel: scenario.channel,
                parent_short,
                role: n.role,
                duty_cycle: n.duty_cycle,
                sleepy_children,
                sleepy_children_ext,
                csma_backoffs: n.csma_backoffs,
                seed: seeds.next_u64(),
            };
            let mut d = Device::new(nodes[i], params);
            d.set_upper(Box::new(RiotNode::new(riot_config(scenario, n, seeds.next_u64())?)));
            d.start(&mut medium);
            by_node[nodes[i].0] = Some(i);
            devices.push(d);
        }
        Ok(World {
            scenario: scenario.clone(),
            medium,
            gateway,
            devices,
            by_node,
            externals: Vec::new(),
            external_out: VecDeque::new(),
            external_dropped: 0,
            pcap: None,
            pcap_error: None,
            discard_host_output: false,
            host_dropped: 0,
            tid: 0,
        })
    }

    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// Virtual µs.
    pub fn now(&self) -> u64 {
        self.medium.now()
    }

    pub fn medium(&self) -> &Medium {
        &self.medium
    }

    pub fn gateway(&self) -> &RcpNode {
        &self.gateway
    }

    pub fn devices(&self) -> &[Device] {
        &self.devices
    }

    pub fn device(&self, name: &str) -> Option<&Device> {
        self.devices.iter().find(|d| d.params().name == name)
    }

    /// A device and the medium, e.g. to give it an upper layer or queue a frame, then
    /// [`Device::poll`] it.
    pub fn device_mut(&mut self, name: &str) -> Option<(&mut Device, &mut Medium)> {
        let d = self.devices.iter_mut().find(|d| d.params().name == name)?;
        Some((d, &mut self.medium))
    }

    /// Writes every frame on air from now on to `out` (pcap).
    pub fn set_pcap(&mut self, out: Box<dyn Write + Send>) -> std::io::Result<()> {
        self.pcap = Some(PcapWriter::new(out, 0)?);
        self.medium.set_capture(true);
        Ok(())
    }

    /// Finishes the capture: flushes it and reports the first write error, if any.
    pub fn finish_pcap(&mut self) -> Result<u64, String> {
        self.drain_capture();
        if let Some(e) = self.pcap_error.take() {
            return Err(e);
        }
        let Some(mut w) = self.pcap.take() else { return Ok(0) };
        w.flush().map_err(|e| e.to_string())?;
        Ok(w.frames())
    }

    /// Without a host, drop what the RCP sends it instead of keeping the newest 256 frames.
    pub fn set_discard_host_output(&mut self, on: bool) {
        self.discard_host_output = on;
    }

    /// When the next event is due.
    pub fn next_event_time(&self) -> Option<u64> {
        self.medium.next_event_time()
    }

    /// Runs the events due by `limit` (the earliest batch); false when none is.
    pub fn step(&mut self, limit: u64) -> bool {
        let Some(t) = self.medium.next_event_time().filter(|&t| t <= limit) else { return false };
        let deliveries = self.medium.advance(t);
        for d in &deliveries {
            self.dispatch(d);
        }
        self.after_events();
        true
    }

    /// Runs every event up to `t`, then sets the clock to `t`.
    pub fn run_until(&mut self, t: u64) {
        while self.step(t) {}
        for d in self.medium.advance(t) {
            self.dispatch(&d);
        }
        self.after_events();
    }

    fn dispatch(&mut self, d: &Delivery) {
        if d.node == self.gateway.node() {
            self.gateway.on_delivery(&mut self.medium, d);
        } else if let Some(i) = self.by_node.get(d.node.0).copied().flatten() {
            self.devices[i].on_event(&mut self.medium, d);
        } else if let Some(i) = self.externals.iter().position(|e| e.node == d.node) {
            self.external_event(i, d);
        }
    }

    /// Attaches a node that lives outside the simulator (a ZEP peer such as a RIOT `native`
    /// node): a medium node on the scenario's channel and PAN, receiving, with
    /// [`EXTERNAL_LINK`] both ways to every other node (it has no position). Its addresses are
    /// learnt from its frames; `eui64` (Spinel `E` order) if it announced one.
    ///
    /// The medium ACKs frames addressed to it in air time, on its behalf, because an ACK that
    /// crosses UDP and a host scheduler arrives long after macAckWaitDuration; the ACK frames
    /// the peer sends itself are therefore dropped ([`World::external_transmit`]).
    pub fn add_external(&mut self, eui64: Option<[u8; 8]>) -> Result<NodeId, WorldError> {
        let mut cfg = NodeConfig { pan_id: self.scenario.pan_id, ..NodeConfig::default() };
        if let Some(e) = eui64 {
            cfg.ext_addr = e;
        }
        // Frame Pending only from entries, and it has none.
        cfg.src_match.set_enabled(true);
        let node = self.medium.add_node(cfg)?;
        let placed = eui64.and_then(|e| self.scenario.externals.iter().find(|x| x.eui64.0 == e)).cloned();
        match placed {
            Some(spec) => self.place_external(node, &spec)?,
            None => {
                for other in (0..self.medium.node_count()).map(NodeId).filter(|&o| o != node) {
                    self.medium.set_link_both(node, other, Some(EXTERNAL_LINK))?;
                }
            }
        }
        self.medium.receive(node, self.scenario.channel)?;
        self.by_node.push(None);
        self.externals.push(External { node, txq: VecDeque::new(), busy: false });
        Ok(node)
    }

    /// Links of a peer the scenario places (`[[external]]`): from its position, like a
    /// simulated node, then its explicit `[[link]]`s; no link where neither says one.
    fn place_external(&mut self, node: NodeId, spec: &ExternalSpec) -> Result<(), WorldError> {
        let sc = &self.scenario;
        let model = path_loss(sc);
        let psdu_len = sc.propagation.psdu_len;
        let mut others: Vec<(NodeId, Option<[f64; 2]>, f64)> =
            vec![(self.gateway.node(), sc.gateway.position, sc.gateway.tx_dbm)];
        others.extend(self.devices.iter().zip(&sc.nodes).map(|(d, n)| (d.node(), n.position, n.tx_dbm)));
        if let Some([x, y]) = spec.position {
            for &(other, pos, tx) in &others {
                if let Some([ox, oy]) = pos {
                    let d = ((x - ox).powi(2) + (y - oy).powi(2)).sqrt();
                    self.medium.set_link(node, other, model.link(d, spec.tx_dbm, psdu_len))?;
                    self.medium.set_link(other, node, model.link(d, tx, psdu_len))?;
                }
            }
        }
        let id_of = |name: &str| -> Option<NodeId> {
            if name == GATEWAY {
                return Some(self.gateway.node());
            }
            if name == spec.name {
                return Some(node);
            }
            sc.nodes.iter().position(|n| n.name == name).map(|i| self.devices[i].node())
        };
        let mut explicit = Vec::new();
        for l in sc.links.iter().filter(|l| l.from == spec.name || l.to == spec.name) {
            let (Some(a), Some(b)) = (id_of(&l.from), id_of(&l.to)) else { continue };
            explicit.push((a, b, Link::new(l.prr, l.rssi_dbm), l.both_ways));
        }
        for (a, b, link, both_ways) in explicit {
            self.medium.set_link(a, b, Some(link))?;
            if both_ways {
                self.medium.set_link(b, a, Some(link))?;
            }
        }
        Ok(())
    }

    /// A frame (PSDU, FCS included) an external node sent: it goes on air from that node with
    /// CSMA-CA and no MAC retries (the peer retries itself). ACK frames are dropped (see
    /// [`add_external`](Self::add_external)). Returns false if the frame was dropped.
    pub fn external_transmit(&mut self, node: NodeId, psdu: &[u8]) -> bool {
        let Some(i) = self.externals.iter().position(|e| e.node == node) else { return false };
        let Ok(psdu) = Psdu::new(psdu) else { return false };
        let Ok(h) = Header::parse(psdu.as_slice()) else { return false };
        if h.frame_type == FrameType::Ack {
            return false;
        }
        // Learn the addresses it uses, so the medium filters and ACKs for it.
        if let Some(cfg) = self.medium.config_mut(node) {
            match h.src {
                Address::Short(a) => cfg.short_addr = a,
                Address::Extended(e) => cfg.ext_addr = e,
                Address::None => {}
            }
        }
        let e = &mut self.externals[i];
        if e.txq.len() >= EXTERNAL_TX_QUEUE {
            self.external_dropped += 1;
            return false;
        }
        e.txq.push_back(psdu);
        self.external_start(i);
        true
    }

    /// Frames on air that external nodes heard (with the LQI they heard them at), and the ACKs
    /// their own frames got, oldest first.
    pub fn take_external_frames(&mut self) -> Vec<ExternalFrame> {
        self.external_out.drain(..).collect()
    }

    fn external_start(&mut self, i: usize) {
        let channel = self.scenario.channel;
        let e = &mut self.externals[i];
        if e.busy {
            return;
        }
        let Some(psdu) = e.txq.pop_front() else { return };
        let req = TxRequest { max_frame_retries: 0, ..TxRequest::new(psdu, channel) };
        if self.medium.transmit(e.node, req).is_ok() {
            e.busy = true;
        } else {
            self.external_dropped += 1;
        }
    }

    fn external_event(&mut self, i: usize, d: &Delivery) {
        let node = self.externals[i].node;
        let heard = match d.event {
            NodeEvent::Received(info) => Some(info),
            NodeEvent::TxDone(result) => {
                self.externals[i].busy = false;
                self.external_start(i);
                result.ok().flatten()
            }
            _ => None,
        };
        if let Some(info) = heard {
            if self.external_out.len() >= EXTERNAL_OUT_CAPACITY {
                self.external_out.pop_front();
                self.external_dropped += 1;
            }
            self.external_out.push_back(ExternalFrame { node, psdu: info.psdu.as_slice().to_vec(), lqi: info.lqi });
        }
    }

    fn after_events(&mut self) {
        if self.discard_host_output {
            self.host_dropped += self.gateway.take_to_host().len() as u64;
        }
        if self.pcap.is_some() {
            self.drain_capture();
        }
    }

    fn drain_capture(&mut self) {
        let Some(w) = self.pcap.as_mut() else { return };
        let (frames, _dropped) = self.medium.take_air_frames();
        if self.pcap_error.is_some() {
            return;
        }
        for f in &frames {
            if let Err(e) = w.write_frame(f) {
                self.pcap_error = Some(e.to_string());
                return;
            }
        }
    }

    /// One Spinel frame (HDLC removed) from the host to the gateway RCP, now.
    pub fn host_frame(&mut self, frame: &[u8]) {
        self.gateway.host_frame(&mut self.medium, frame);
    }

    /// Spinel frames from the gateway RCP for the host, oldest first.
    pub fn take_to_host(&mut self) -> Vec<Vec<u8>> {
        self.gateway.take_to_host()
    }

    /// Configures the gateway RCP as ferryd would (radio on, channel, PAN, short and extended
    /// address, source match, raw stream), for runs without a host. Replies are discarded.
    pub fn configure_gateway(&mut self) {
        let s = &self.scenario;
        let (channel, pan, short, eui) = (s.channel, s.pan_id, s.gateway.short, s.gateway.eui64.0);
        self.set_prop(Property::PhyEnabled, |w| w.bool(true));
        self.set_prop(Property::PhyChan, |w| w.u8(channel));
        self.set_prop(Property::Mac15_4Panid, |w| w.u16(pan));
        self.set_prop(Property::Mac15_4Saddr, |w| w.u16(short));
        self.set_prop(Property::Mac15_4Laddr, |w| w.eui64(&eui));
        self.set_prop(Property::MacSrcMatchEnabled, |w| w.bool(true));
        self.set_prop(Property::MacRawStreamEnabled, |w| w.bool(true));
        self.gateway.take_to_host();
    }

    fn set_prop(&mut self, prop: Property, value: impl FnOnce(&mut Writer<'_>) -> ferry_rcp_core::spinel::Result<()>) {
        self.tid = self.tid % 15 + 1;
        let mut buf = [0u8; 64];
        let Some(header) = SpinelHeader::new(0, self.tid) else { return };
        if let Ok(n) = emit_property(&mut buf, header, Command::PropValueSet, prop, value) {
            self.gateway.host_frame(&mut self.medium, &buf[..n]);
        }
    }

    /// Accounting of every node up to now; the gateway first.
    pub fn report(&self) -> Report {
        let now = self.now();
        let pct = |on: u64| if now == 0 { 0.0 } else { 100.0 * on as f64 / now as f64 };
        let mut nodes = Vec::with_capacity(self.devices.len() + 1);
        let gw = self.medium.stats(self.gateway.node()).unwrap_or_default();
        nodes.push(NodeReport {
            name: GATEWAY.into(),
            short: self.scenario.gateway.short,
            role: "gateway".into(),
            sleepy: false,
            radio_on_pct: pct(gw.radio_on_us),
            radio: gw,
            mac: DeviceStats::default(),
            firmware: None,
        });
        for d in &self.devices {
            let radio = self.medium.stats(d.node()).unwrap_or_default();
            nodes.push(NodeReport {
                name: d.params().name.clone(),
                short: d.params().short,
                role: match d.params().role {
                    Role::Router => "router".into(),
                    Role::Leaf => "leaf".into(),
                },
                sleepy: d.is_sleepy(),
                radio_on_pct: pct(radio.radio_on_us),
                radio,
                mac: d.stats(),
                firmware: d.upper_as::<RiotNode>().map(|r| r.truth().clone()),
            });
        }
        Report {
            seed: self.scenario.seed,
            duration_us: now,
            host_frames_dropped: self.host_dropped,
            external_frames_dropped: self.external_dropped,
            nodes,
        }
    }

    /// A device's RIOT firmware model (every scenario device runs one).
    pub fn riot(&self, name: &str) -> Option<&RiotNode> {
        self.device(name)?.upper_as::<RiotNode>()
    }

    pub fn riot_mut(&mut self, name: &str) -> Option<&mut RiotNode> {
        self.devices.iter_mut().find(|d| d.params().name == name)?.upper_as_mut::<RiotNode>()
    }

    /// Ground truth of every device's firmware: installed sequence number, active slot,
    /// reboots, bytes fetched, update history.
    pub fn truths(&self) -> Vec<(String, NodeTruth)> {
        self.devices
            .iter()
            .filter_map(|d| Some((d.params().name.clone(), d.upper_as::<RiotNode>()?.truth().clone())))
            .collect()
    }

    /// Ground truth of a device's wakes.
    pub fn wakes(&self, name: &str) -> Option<Vec<WakeRecord>> {
        self.device(name).map(|d| d.wakes().copied().collect())
    }
}

/// What the RIOT firmware model of scenario node `n` is built from.
/// The gateway RCP's machine: ferry's firmware, or what stock ot-rcp reports (no
/// [`Capability::FerryTxQueue`]: one transmission at a time).
fn rcp_config(firmware: RcpFirmware) -> RcpConfig {
    const OT_RCP_CAPS: &[Capability] = &[
        Capability::Ieee802154_2450MhzOqpsk,
        Capability::ConfigRadio,
        Capability::MacRaw,
        Capability::RcpApiVersion,
        Capability::RcpMinHostApiVersion,
    ];
    match firmware {
        RcpFirmware::Ferry => RcpConfig::default(),
        RcpFirmware::OtRcp => RcpConfig { caps: OT_RCP_CAPS, ..RcpConfig::default() },
    }
}

fn riot_config(s: &Scenario, n: &NodeSpec, seed: u64) -> Result<RiotConfig, WorldError> {
    use crate::suit::{policy, PublicKey};
    let parent_eui = s.node(&n.parent).map_or(s.gateway.eui64, |p| p.eui64);
    let mut keys = Vec::with_capacity(n.keys.len().max(1));
    for path in &n.keys {
        let bad = |error: String| WorldError::Key { node: n.name.clone(), path: path.clone(), error };
        let pem = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        keys.push(PublicKey::from_pem(&pem).map_err(|e| bad(e.to_string()))?);
    }
    if keys.is_empty() {
        keys.extend(riot_test_key());
    }
    let vendor_id = policy::vendor_id(&n.board.vendor);
    let class_id = policy::class_id(&vendor_id, &n.board.class);
    let coap = crate::coap::Config { rng_seed: seed, ..crate::coap::Config::default() };
    Ok(RiotConfig {
        name: n.name.clone(),
        stack: StackConfig {
            pan_id: s.pan_id,
            eui64: n.eui64.0,
            short: Some(n.short),
            prefix: s.prefix.network(),
            default_router: Some(crate::net::MacAddr::Ext(parent_eui.0)),
            rpl: Some(n.role == Role::Router),
            router: false,
            router_discovery: true,
            coap,
        },
        board: n.board.class.clone(),
        vendor_id,
        class_id,
        keys,
        installed_sequence: n.firmware.sequence,
        block_size: n.coap_block_size,
        ferry_aware: n.ferry_aware,
        costs: Costs::for_board(&n.board.class).with(&n.processing),
        failures: n.failure,
        seed,
    })
}

/// One node's accounting.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeReport {
    pub name: String,
    pub short: u16,
    pub role: String,
    pub sleepy: bool,
    pub radio_on_pct: f64,
    #[serde(serialize_with = "ser_node_stats")]
    pub radio: NodeStats,
    pub mac: DeviceStats,
    /// Ground truth of a RIOT node's firmware (installed sequence, slot, every trigger).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firmware: Option<NodeTruth>,
}

fn ser_node_stats<S: serde::Serializer>(s: &NodeStats, ser: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct;
    let mut st = ser.serialize_struct("NodeStats", 14)?;
    st.serialize_field("frames_sent", &s.frames_sent)?;
    st.serialize_field("bytes_sent", &s.bytes_sent)?;
    st.serialize_field("acks_sent", &s.acks_sent)?;
    st.serialize_field("frames_received", &s.frames_received)?;
    st.serialize_field("bytes_received", &s.bytes_received)?;
    st.serialize_field("air_time_us", &s.air_time_us)?;
    st.serialize_field("cca_failures", &s.cca_failures)?;
    st.serialize_field("channel_access_failures", &s.channel_access_failures)?;
    st.serialize_field("collisions", &s.collisions)?;
    st.serialize_field("rx_lost", &s.rx_lost)?;
    st.serialize_field("retries", &s.retries)?;
    st.serialize_field("no_acks", &s.no_acks)?;
    st.serialize_field("tx_ok", &s.tx_ok)?;
    st.serialize_field("radio_on_us", &s.radio_on_us)?;
    st.end()
}

/// Accounting of a whole world.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub seed: u64,
    pub duration_us: u64,
    /// Spinel frames for the host lost (no host attached, or it read too slowly).
    pub host_frames_dropped: u64,
    /// Frames from or for ZEP peers lost to full queues.
    pub external_frames_dropped: u64,
    pub nodes: Vec<NodeReport>,
}

/// A byte stream the real-time world can serve the gateway RCP on.
pub trait HostIo: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> HostIo for T {}

type WorldFn = Box<dyn FnOnce(&mut World) + Send>;

enum Control {
    Attach(Box<dyn HostIo>),
    With(WorldFn),
    ExternalSink(mpsc::Sender<ExternalFrame>),
}

/// The handle on a world running in real time. Cheap to clone.
#[derive(Clone)]
pub struct WorldHandle {
    ctl: mpsc::Sender<Control>,
}

impl fmt::Debug for WorldHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WorldHandle")
    }
}

/// The world task ended (shutdown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the simulated world has stopped")]
pub struct Stopped;

impl WorldHandle {
    /// A fresh byte stream to the gateway RCP; it replaces any stream attached before.
    pub async fn connect(&self) -> Result<DuplexStream, Stopped> {
        let (host, world) = tokio::io::duplex(PIPE_CAPACITY);
        self.attach(Box::new(world)).await?;
        Ok(host)
    }

    /// Serves the gateway RCP on `io` (a pty master, a socket), replacing the current stream.
    pub async fn attach(&self, io: Box<dyn HostIo>) -> Result<(), Stopped> {
        self.ctl.send(Control::Attach(io)).await.map_err(|_| Stopped)
    }

    /// Runs `f` on the world, brought up to the current time, and returns its result.
    pub async fn with<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut World) -> R + Send + 'static,
    ) -> Result<R, Stopped> {
        let (tx, rx) = oneshot::channel();
        let job: WorldFn = Box::new(move |w| {
            let _ = tx.send(f(w));
        });
        self.ctl.send(Control::With(job)).await.map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }

    /// Sends every frame for external nodes to `sink` from now on (frames that do not fit are
    /// dropped, as on a congested link).
    pub async fn external_sink(&self, sink: mpsc::Sender<ExternalFrame>) -> Result<(), Stopped> {
        self.ctl.send(Control::ExternalSink(sink)).await.map_err(|_| Stopped)
    }

    /// The accounting up to now.
    pub async fn report(&self) -> Result<Report, Stopped> {
        self.with(|w| w.report()).await
    }
}

/// Builds the world of `scenario` and runs it in real time in a tokio task until `shutdown`;
/// returns the host end of an in-memory byte stream to the gateway RCP (Spinel over HDLC-lite)
/// and the handle. Must be called inside a tokio runtime.
/// The scenario's log-distance path-loss model.
fn path_loss(scenario: &Scenario) -> PathLoss {
    let prop = scenario.propagation;
    PathLoss {
        loss_at_1m_db: prop.loss_at_1m_db,
        exponent: prop.exponent,
        noise_dbm: prop.noise_dbm,
        sensitivity_dbm: prop.sensitivity_dbm,
    }
}

pub fn spawn_realtime(
    scenario: Scenario,
    shutdown: CancellationToken,
) -> Result<(DuplexStream, WorldHandle), WorldError> {
    let world = World::new(&scenario)?;
    let (host, ours) = tokio::io::duplex(PIPE_CAPACITY);
    let handle = spawn_world(world, Some(Box::new(ours)), shutdown);
    Ok((host, handle))
}

/// Why [`sim_opener`] could not start the simulator.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0}")]
    Scenario(#[from] super::scenario::ScenarioError),
    #[error("{0}")]
    World(#[from] WorldError),
}

/// What ferryd does with `[radio] url = "sim:FILE"`: loads the scenario, runs its world in real
/// time until `shutdown`, and returns an opener for `radio::spawn_with` (each open attaches a
/// fresh in-memory stream to the gateway RCP) and the world's handle. Needs a tokio runtime.
pub fn sim_opener(
    scenario: &std::path::Path,
    shutdown: CancellationToken,
) -> Result<(crate::radio::link::Opener, WorldHandle), OpenError> {
    let world = World::new(&Scenario::load(scenario)?)?;
    let handle = spawn_world(world, None, shutdown);
    let h = handle.clone();
    let opener: crate::radio::link::Opener = Box::new(move || {
        let h = h.clone();
        Box::pin(async move {
            let io = h.connect().await.map_err(std::io::Error::other)?;
            Ok(crate::radio::link::Connection::new(io))
        })
    });
    Ok((opener, handle))
}

/// Runs `world` in real time in a tokio task, serving its gateway RCP on `io` if given (else
/// after [`WorldHandle::attach`]/[`WorldHandle::connect`]).
pub fn spawn_world(world: World, io: Option<Box<dyn HostIo>>, shutdown: CancellationToken) -> WorldHandle {
    let (tx, rx) = mpsc::channel(CONTROL_QUEUE_LEN);
    tokio::spawn(run_realtime(world, io, rx, shutdown));
    WorldHandle { ctl: tx }
}

struct HostLink {
    rd: ReadHalf<Box<dyn HostIo>>,
    wr: WriteHalf<Box<dyn HostIo>>,
    decoder: Box<SpinelDecoder>,
    out: VecDeque<u8>,
}

impl HostLink {
    fn new(io: Box<dyn HostIo>) -> HostLink {
        let (rd, wr) = tokio::io::split(io);
        HostLink { rd, wr, decoder: Box::new(SpinelDecoder::new()), out: VecDeque::new() }
    }
}

/// Largest write handed to the host stream at once.
const WRITE_CHUNK: usize = 4096;

/// The real-time drive loop: virtual µs = µs since start. It sleeps until the next event, a
/// byte from the host, a control request or shutdown, then brings the world up to the clock.
async fn run_realtime(
    mut world: World,
    io: Option<Box<dyn HostIo>>,
    mut ctl: mpsc::Receiver<Control>,
    shutdown: CancellationToken,
) {
    let start = Instant::now();
    let base = world.now();
    let clock = move || base + u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
    let mut host = io.map(HostLink::new);
    let mut ctl_open = true;
    let mut buf = vec![0u8; 4096];
    let mut external_sink: Option<mpsc::Sender<ExternalFrame>> = None;
    loop {
        world.run_until(clock());
        for f in world.take_external_frames() {
            if external_sink.as_ref().is_none_or(|s| s.try_send(f).is_err()) {
                world.external_dropped += 1;
            }
        }
        let frames = world.take_to_host();
        if let Some(h) = host.as_mut() {
            for f in frames {
                let mut enc = vec![0u8; hdlc::encoded_len(&f)];
                match hdlc::encode(&f, &mut enc) {
                    Ok(n) if h.out.len() + n <= HOST_OUT_CAPACITY => h.out.extend(&enc[..n]),
                    _ => world.host_dropped += 1,
                }
            }
        } else {
            world.host_dropped += frames.len() as u64;
        }
        let wake = world.next_event_time().map(|t| start + Duration::from_micros(t.saturating_sub(base)));
        enum Woke {
            Stop,
            Timer,
            Read(std::io::Result<usize>),
            Wrote(std::io::Result<usize>),
            Ctl(Option<Control>),
        }
        let sleep = async {
            match wake {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        let woke = match host.as_mut() {
            Some(h) => {
                let out = h.out.make_contiguous();
                let chunk = &out[..out.len().min(WRITE_CHUNK)];
                tokio::select! {
                    _ = shutdown.cancelled() => Woke::Stop,
                    _ = sleep => Woke::Timer,
                    r = h.rd.read(&mut buf) => Woke::Read(r),
                    r = h.wr.write(chunk), if !chunk.is_empty() => Woke::Wrote(r),
                    c = ctl.recv(), if ctl_open => Woke::Ctl(c),
                }
            }
            None => tokio::select! {
                _ = shutdown.cancelled() => Woke::Stop,
                _ = sleep => Woke::Timer,
                c = ctl.recv(), if ctl_open => Woke::Ctl(c),
            },
        };
        match woke {
            Woke::Stop => break,
            Woke::Timer => {}
            Woke::Read(Ok(0)) | Woke::Read(Err(_)) | Woke::Wrote(Err(_)) => {
                // The host went away; the RCP keeps running until one attaches again.
                host = None;
            }
            Woke::Read(Ok(n)) => {
                world.run_until(clock());
                if let Some(h) = host.as_mut() {
                    let mut input = &buf[..n];
                    while !input.is_empty() {
                        let (used, ev) = h.decoder.feed(input);
                        input = &input[used..];
                        if let Some(Ok(frame)) = ev {
                            let frame = frame.to_vec();
                            world.host_frame(&frame);
                        }
                    }
                }
            }
            Woke::Wrote(Ok(n)) => {
                if let Some(h) = host.as_mut() {
                    h.out.drain(..n.min(h.out.len()));
                }
            }
            Woke::Ctl(None) => ctl_open = false,
            Woke::Ctl(Some(Control::Attach(io))) => host = Some(HostLink::new(io)),
            Woke::Ctl(Some(Control::ExternalSink(sink))) => external_sink = Some(sink),
            Woke::Ctl(Some(Control::With(f))) => {
                world.run_until(clock());
                f(&mut world);
            }
        }
    }
}
