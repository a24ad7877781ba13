//! ferryd's host stack against a simulated PAN, in virtual time: the sans-IO Spinel client
//! ([`Client`]) talks to the world's gateway RCP over a modelled UART, and feeds the
//! [`BorderRouter`] exactly as the daemon's tokio shells do. One synchronous loop, no threads,
//! no tokio: a seed is a run, and an hour of air time takes seconds. This is the engine of
//! virtual-time delivery tests and `ferry bench`.
//!
//! The UART carries HDLC-lite bytes at `uart_baud` with 10 bits per byte, one frame after the
//! other in each direction, so a Spinel frame reaches the other side when its last byte does.
//! Medium µs map to `Instant`s as `base + offset` ([`SimHost::instant`]).
//!
//! ```no_run
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use ferry::sim::host::{HostConfig, SimHost};
//! use ferry::sim::{Scenario, World};
//! let scenario = Scenario::load(std::path::Path::new("config/sim/home.toml"))?;
//! let world = World::new(&scenario)?;
//! let mut host = SimHost::new(world, HostConfig::for_scenario(&scenario), ferry::coap::Router::new());
//! host.run_until(2_000_000); // handshake done, DIOs on air
//! assert!(host.is_ready());
//! let _topology = host.border().topology(host.now());
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use ferry_rcp_core::hdlc::{self, SpinelDecoder};

use crate::border::{rx_meta, BorderConfig, BorderRouter, RadioCommand};
use crate::coap::Router;
use crate::config::{Channel, NetworkConfig, PanId};
use crate::radio::client::{TxId, MAX_TRANSMIT_LEN};
use crate::radio::{Client, Event, LinkState, Op, Settings, TxOptions};

use super::scenario::Scenario;
use super::world::World;

/// The UART speed ferry uses with an nRF52840 RCP.
pub const DEFAULT_UART_BAUD: u32 = 460_800;
/// Start bit, 8 data bits, stop bit.
const BITS_PER_BYTE: u64 = 10;

/// How the host side is set up.
#[derive(Debug, Clone)]
pub struct HostConfig {
    pub uart_baud: u32,
    pub radio: Settings,
    pub border: BorderConfig,
}

impl HostConfig {
    /// ferryd's defaults for the scenario's channel, PAN, gateway short address and EUI-64,
    /// with the default prefix.
    pub fn for_scenario(scenario: &Scenario) -> HostConfig {
        let mut network = NetworkConfig { short_address: scenario.gateway.short, ..NetworkConfig::default() };
        network.pan_id = PanId(scenario.pan_id);
        if let Some(ch) = Channel::new(scenario.channel) {
            network.channel = ch;
        }
        HostConfig {
            uart_baud: DEFAULT_UART_BAUD,
            radio: Settings::for_network(&network),
            border: BorderConfig::new(&network, scenario.gateway.eui64.0),
        }
    }
}

/// Counters of the modelled UART.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UartStats {
    pub frames_to_rcp: u64,
    pub bytes_to_rcp: u64,
    pub frames_to_host: u64,
    pub bytes_to_host: u64,
}

/// One direction of the UART: frames in flight with their arrival time.
#[derive(Debug, Default)]
struct Line {
    /// (arrival µs, bytes)
    queue: VecDeque<(u64, Vec<u8>)>,
    /// When the line finishes sending what it holds.
    free_at: u64,
}

impl Line {
    fn send(&mut self, now: u64, wire_len: usize, baud: u32, bytes: Vec<u8>) {
        let bits = wire_len as u64 * BITS_PER_BYTE * 1_000_000;
        let dur = bits.div_ceil(u64::from(baud.max(1)));
        let arrival = self.free_at.max(now) + dur;
        self.free_at = arrival;
        self.queue.push_back((arrival, bytes));
    }

    fn next_arrival(&self) -> Option<u64> {
        self.queue.front().map(|(t, _)| *t)
    }

    fn pop_due(&mut self, now: u64) -> Option<Vec<u8>> {
        if self.next_arrival()? > now {
            return None;
        }
        self.queue.pop_front().map(|(_, b)| b)
    }
}

/// The host stack on a simulated PAN. See the module docs.
pub struct SimHost {
    world: World,
    client: Client,
    border: BorderRouter,
    base: Instant,
    baud: u32,
    /// Spinel frames (HDLC removed) on their way to the RCP.
    to_rcp: Line,
    /// HDLC bytes on their way to the host.
    to_host: Line,
    decoder: Box<SpinelDecoder>,
    /// The client's HDLC output buffer, kept between calls.
    tx_buf: Vec<u8>,
    /// Transmissions handed to the client, oldest first.
    tx: VecDeque<TxId>,
    uart: UartStats,
}

impl SimHost {
    /// Attaches a host to `world`'s gateway RCP and starts the Spinel handshake at the world's
    /// current time.
    pub fn new(world: World, cfg: HostConfig, router: Router) -> SimHost {
        let base = Instant::now();
        let now = base + Duration::from_micros(world.now());
        SimHost {
            client: Client::new(cfg.radio, now),
            border: BorderRouter::new(cfg.border, router, now),
            world,
            base,
            baud: cfg.uart_baud,
            to_rcp: Line::default(),
            to_host: Line::default(),
            decoder: Box::new(SpinelDecoder::new()),
            tx_buf: vec![0u8; MAX_TRANSMIT_LEN],
            tx: VecDeque::new(),
            uart: UartStats::default(),
        }
    }

    /// The current time as the host stack sees it.
    pub fn now(&self) -> Instant {
        self.instant(self.world.now())
    }

    /// Virtual µs of the medium.
    pub fn now_us(&self) -> u64 {
        self.world.now()
    }

    /// The `Instant` of medium time `us`.
    pub fn instant(&self, us: u64) -> Instant {
        self.base + Duration::from_micros(us)
    }

    /// Medium µs of `t`, rounded up (a deadline is never run early by rounding).
    pub fn micros(&self, t: Instant) -> u64 {
        let d = t.saturating_duration_since(self.base);
        d.as_secs() * 1_000_000 + u64::from(d.subsec_nanos().div_ceil(1000))
    }

    pub fn border(&self) -> &BorderRouter {
        &self.border
    }

    /// The border router; what is queued through it goes out on the next `run_until`.
    pub fn border_mut(&mut self) -> &mut BorderRouter {
        &mut self.border
    }

    pub fn world(&self) -> &World {
        &self.world
    }

    pub fn world_mut(&mut self) -> &mut World {
        &mut self.world
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Whether the Spinel handshake is done.
    pub fn is_ready(&self) -> bool {
        *self.client.state() == LinkState::Ready
    }

    pub fn uart_stats(&self) -> UartStats {
        self.uart
    }

    /// Runs the world and the host up to medium time `t_us`.
    pub fn run_until(&mut self, t_us: u64) {
        loop {
            let now = self.world.now();
            self.pump(now);
            match self.next_event(now) {
                Some(n) if n <= t_us => self.world.run_until(n.max(now)),
                _ => break,
            }
        }
        if t_us > self.world.now() {
            self.world.run_until(t_us);
        }
        self.pump(self.world.now());
    }

    /// Runs until `done` holds (checked after every event) or medium time `limit_us`; returns
    /// whether `done` held.
    pub fn run_until_with(&mut self, limit_us: u64, mut done: impl FnMut(&mut SimHost) -> bool) -> bool {
        loop {
            if done(self) {
                return true;
            }
            let now = self.world.now();
            if now >= limit_us {
                return false;
            }
            let next = self.next_event(now).unwrap_or(limit_us).clamp(now + 1, limit_us);
            self.run_until(next);
        }
    }

    /// When something happens next: a medium event, a host timer or a byte arriving on the UART.
    fn next_event(&self, now: u64) -> Option<u64> {
        let host = [self.client.poll_timeout(), self.border.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            // Timers due now were just handled; one still due is retried a µs later.
            .map(|t| self.micros(t).max(now + 1));
        [self.world.next_event_time(), host, self.to_rcp.next_arrival(), self.to_host.next_arrival()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Does everything due at medium time `now_us` until nothing changes.
    fn pump(&mut self, now_us: u64) {
        let now = self.instant(now_us);
        loop {
            let mut progress = false;
            for frame in self.world.take_to_host() {
                let mut buf = vec![0u8; hdlc::encoded_len(&frame)];
                let Ok(n) = hdlc::encode(&frame, &mut buf) else { continue };
                buf.truncate(n);
                self.uart.frames_to_host += 1;
                self.uart.bytes_to_host += n as u64;
                self.to_host.send(now_us, n, self.baud, buf);
                progress = true;
            }
            while let Some(bytes) = self.to_host.pop_due(now_us) {
                self.client.handle_input(now, &bytes);
                progress = true;
            }
            while let Some(frame) = self.to_rcp.pop_due(now_us) {
                self.world.host_frame(&frame);
                progress = true;
            }
            if self.client.poll_timeout().is_some_and(|t| t <= now) {
                self.client.handle_timeout(now);
            }
            while let Some(ev) = self.client.poll_event() {
                progress = true;
                match ev {
                    Event::Received(f) => {
                        // Malformed or foreign frames are counted by the border router.
                        let _ = self.border.handle_frame(now, &f.psdu, rx_meta(&f));
                    }
                    Event::TxDone { id, result } if self.tx.contains(&id) => {
                        self.tx.retain(|t| *t != id);
                        self.border.handle_tx_done(now, &result);
                    }
                    Event::State(s) => {
                        tracing::debug!("sim host: radio link {s}");
                        self.border.set_tx_window(self.client.info().map_or(1, |i| i.tx_window()));
                    }
                    _ => {}
                }
            }
            if self.border.poll_timeout().is_some_and(|t| t <= now) {
                self.border.handle_timeout(now);
            }
            while let Some(cmd) = self.border.poll_radio(now) {
                progress = true;
                self.radio_command(now, cmd);
            }
            let mut buf = std::mem::take(&mut self.tx_buf);
            while let Some(n) = self.client.poll_transmit(now, &mut buf) {
                progress = true;
                self.send_to_rcp(now_us, &buf[..n]);
            }
            self.tx_buf = buf;
            if !progress {
                break;
            }
        }
    }

    fn radio_command(&mut self, now: Instant, cmd: RadioCommand) {
        match cmd {
            RadioCommand::Transmit { psdu, .. } => match self.client.transmit(now, &psdu, TxOptions::default()) {
                Ok(id) => self.tx.push_back(id),
                Err(e) => self.border.handle_tx_refused(now, e),
            },
            RadioCommand::SrcMatchInsert(a) => {
                // A full op queue loses the entry; the child then polls without Frame Pending.
                let _ = self.client.submit(now, Op::SrcMatchInsert(a));
            }
            RadioCommand::SrcMatchRemove(a) => {
                let _ = self.client.submit(now, Op::SrcMatchRemove(a));
            }
        }
    }

    /// HDLC bytes from the client onto the line, as whole Spinel frames.
    fn send_to_rcp(&mut self, now_us: u64, mut bytes: &[u8]) {
        let wire_len = bytes.len();
        let mut frames = Vec::new();
        while !bytes.is_empty() {
            let (used, frame) = self.decoder.feed(bytes);
            bytes = bytes.get(used..).unwrap_or_default();
            if let Some(Ok(f)) = frame {
                frames.push(f.to_vec());
            }
        }
        // The client writes one frame per call; its wire time is the encoded length.
        for f in frames {
            self.uart.frames_to_rcp += 1;
            self.uart.bytes_to_rcp += wire_len as u64;
            self.to_rcp.send(now_us, wire_len, self.baud, f);
        }
    }
}
