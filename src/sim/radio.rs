//! [`SimRadio`]: the [`ferry_rcp_core::radio::Radio`] trait on a node of the simulated
//! [`Medium`], so the real RCP state machine ([`ferry_rcp_core::rcp::Rcp`]) runs against the
//! virtual air exactly as it runs against the nRF52840 driver.
//!
//! Everything with a deadline shorter than a host round trip happens in the medium's MAC for
//! this node, as it does in the radio hardware (IEEE 802.15.4-2006 clauses): CSMA-CA (§7.5.1.4),
//! auto-ACK with Frame Pending from the
//! [`SrcMatchTable`](ferry_rcp_core::radio::SrcMatchTable) (§7.5.6.3, §7.5.6.4), retries and
//! ACK wait (§7.5.6.4), address filtering (§7.5.6.2), timed TX, energy detection (§6.9.7).
//! Sleep turns the radio off in the medium's accounting.
//!
//! # Sans-IO shape
//!
//! The trait's calls cannot reach the medium (the RCP owns the radio, the driver owns the
//! medium), so `SimRadio` records what was asked — the desired configuration and receiver
//! state, at most one pending transmission and one pending scan — and the driver applies it:
//!
//! 1. after every call into the `Rcp`, [`SimRadio::sync`] with the medium; feed any event it
//!    returns (a request the medium refused) back through step 2;
//! 2. for each medium [`NodeEvent`] of this node, [`SimRadio::on_event`] gives the
//!    [`RadioEvent`] for `Rcp::handle_radio_event`.
//!
//! [`rssi`](Radio::rssi) answers the energy measured at the last `sync`.

use ferry_rcp_core::radio::{Radio, RadioError, RadioEvent, ReceivedFrame, TxError, TxFrame};
use ferry_rcp_core::spinel::RadioCaps;

use super::frame::Psdu;
use super::medium::{Medium, NodeConfig, NodeEvent, NodeId, RxInfo, TxRequest, CHANNELS, NOISE_FLOOR_DBM};

/// nRF52840 TX power range in dBm.
const TX_POWER_RANGE: std::ops::RangeInclusive<i8> = -20..=8;

/// A simulated 802.15.4 radio on one medium node. See the module docs for the driving order.
#[derive(Debug)]
pub struct SimRadio {
    node: NodeId,
    eui64: [u8; 8],
    enabled: bool,
    channel: u8,
    /// Desired receiver state: receiving on the channel, or asleep.
    receiving: bool,
    rx_dirty: bool,
    /// The MAC configuration the medium should have for this node.
    cfg: NodeConfig,
    cfg_dirty: bool,
    disable_pending: bool,
    tx_power: i8,
    pending_tx: Option<TxRequest>,
    pending_scan: Option<(u8, u64)>,
    tx_busy: bool,
    scan_busy: bool,
    /// Outcomes of operations cut short by disabling, still to come from the medium and to be
    /// swallowed: the RCP has forgotten them and may already have started new ones.
    stale_tx_done: u32,
    stale_scan_done: u32,
    energy_dbm: i8,
}

impl SimRadio {
    /// The radio of medium node `node`, starting from that node's configuration.
    pub fn new(medium: &Medium, node: NodeId, eui64: [u8; 8]) -> Option<Self> {
        let cfg = medium.config(node)?.clone();
        Some(SimRadio {
            node,
            eui64,
            enabled: false,
            channel: medium.channel(node)?,
            receiving: false,
            rx_dirty: true,
            cfg,
            cfg_dirty: false,
            disable_pending: false,
            tx_power: 0,
            pending_tx: None,
            pending_scan: None,
            tx_busy: false,
            scan_busy: false,
            stale_tx_done: 0,
            stale_scan_done: 0,
            energy_dbm: NOISE_FLOOR_DBM,
        })
    }

    pub fn node(&self) -> NodeId {
        self.node
    }

    /// Applies what the RCP asked since the last call. Returns events for requests the medium
    /// refused, to be passed through [`on_event`](Self::on_event) like medium events.
    pub fn sync(&mut self, medium: &mut Medium) -> Vec<NodeEvent> {
        let mut refused = Vec::new();
        let node = self.node;
        if std::mem::take(&mut self.disable_pending) {
            let _ = medium.disable(node);
        }
        if std::mem::take(&mut self.cfg_dirty) {
            if let Some(cfg) = medium.config_mut(node) {
                *cfg = self.cfg.clone();
            }
        }
        if std::mem::take(&mut self.rx_dirty) {
            // Channels were checked when the RCP asked; nothing here can fail for a valid node.
            let _ = if self.receiving { medium.receive(node, self.channel) } else { medium.sleep(node) };
        }
        if let Some((channel, duration_us)) = self.pending_scan.take() {
            if medium.energy_scan(node, channel, duration_us).is_err() {
                refused.push(NodeEvent::EnergyScanDone { channel, max_rssi_dbm: NOISE_FLOOR_DBM });
            }
        }
        if let Some(req) = self.pending_tx.take() {
            if medium.transmit(node, req).is_err() {
                refused.push(NodeEvent::TxDone(Err(TxError::Abort)));
            }
        }
        self.energy_dbm = medium.energy_dbm(node).unwrap_or(NOISE_FLOOR_DBM);
        refused
    }

    /// The radio event for a medium event of this node (none for driver timers and for the
    /// outcome of an operation the RCP abandoned by disabling the radio).
    pub fn on_event<'e>(&mut self, event: &'e NodeEvent) -> Option<RadioEvent<'e>> {
        Some(match event {
            NodeEvent::Received(info) => RadioEvent::Received(received(info)),
            NodeEvent::TxDone(_) if self.stale_tx_done > 0 => {
                self.stale_tx_done -= 1;
                return None;
            }
            NodeEvent::EnergyScanDone { .. } if self.stale_scan_done > 0 => {
                self.stale_scan_done -= 1;
                return None;
            }
            NodeEvent::TxDone(result) => {
                self.tx_busy = false;
                RadioEvent::TransmitDone(match result {
                    Ok(ack) => Ok(ack.as_ref().map(received)),
                    Err(e) => Err(*e),
                })
            }
            NodeEvent::EnergyScanDone { channel, max_rssi_dbm } => {
                self.scan_busy = false;
                RadioEvent::EnergyScanDone { channel: *channel, max_rssi: *max_rssi_dbm }
            }
            NodeEvent::Timer { .. } => return None,
        })
    }

    fn config_changed(&mut self) {
        self.cfg_dirty = true;
    }
}

fn received(info: &RxInfo) -> ReceivedFrame<'_> {
    ReceivedFrame {
        psdu: info.psdu.as_slice(),
        channel: info.channel,
        rssi: info.rssi_dbm,
        lqi: info.lqi,
        timestamp_us: info.timestamp_us,
        acked_with_frame_pending: info.acked_with_frame_pending,
    }
}

fn check_channel(channel: u8) -> Result<(), RadioError> {
    if CHANNELS.contains(&channel) {
        Ok(())
    } else {
        Err(RadioError::InvalidArgument)
    }
}

impl Radio for SimRadio {
    fn eui64(&self) -> [u8; 8] {
        self.eui64
    }

    fn caps(&self) -> RadioCaps {
        // No TRANSMIT_SEC: frames go on air as the host built them.
        RadioCaps(
            RadioCaps::ACK_TIMEOUT.0
                | RadioCaps::ENERGY_SCAN.0
                | RadioCaps::TRANSMIT_RETRIES.0
                | RadioCaps::CSMA_BACKOFF.0
                | RadioCaps::SLEEP_TO_TX.0
                | RadioCaps::TRANSMIT_TIMING.0,
        )
    }

    fn rx_sensitivity(&self) -> i8 {
        self.cfg.rx_sensitivity_dbm
    }

    fn rssi(&mut self) -> i8 {
        self.energy_dbm
    }

    fn set_enabled(&mut self, enabled: bool) -> Result<(), RadioError> {
        if self.enabled && !enabled {
            self.disable_pending = true;
            self.receiving = false;
            // Disabling sleeps the node already.
            self.rx_dirty = false;
            // Requests that never reached the medium are simply forgotten (the RCP resets too);
            // one already in the medium reports once more (Abort, early scan end): swallow it.
            if self.tx_busy && self.pending_tx.take().is_none() {
                self.stale_tx_done += 1;
            }
            if self.scan_busy && self.pending_scan.take().is_none() {
                self.stale_scan_done += 1;
            }
            self.tx_busy = false;
            self.scan_busy = false;
        }
        self.enabled = enabled;
        Ok(())
    }

    fn set_channel(&mut self, channel: u8) -> Result<(), RadioError> {
        check_channel(channel)?;
        if self.channel != channel {
            self.channel = channel;
            self.rx_dirty = self.receiving;
        }
        Ok(())
    }

    fn set_tx_power(&mut self, dbm: i8) -> Result<i8, RadioError> {
        self.tx_power = dbm.clamp(*TX_POWER_RANGE.start(), *TX_POWER_RANGE.end());
        Ok(self.tx_power)
    }

    fn set_cca_threshold(&mut self, dbm: i8) -> Result<i8, RadioError> {
        self.cfg.cca_threshold_dbm = dbm;
        self.config_changed();
        Ok(dbm)
    }

    fn set_pan_id(&mut self, pan_id: u16) {
        self.cfg.pan_id = pan_id;
        self.config_changed();
    }

    fn set_short_address(&mut self, addr: u16) {
        self.cfg.short_addr = addr;
        self.config_changed();
    }

    fn set_extended_address(&mut self, addr: [u8; 8]) {
        self.cfg.ext_addr = addr;
        self.config_changed();
    }

    fn set_promiscuous(&mut self, on: bool) {
        self.cfg.promiscuous = on;
        self.config_changed();
    }

    fn receive(&mut self, channel: u8) -> Result<(), RadioError> {
        if !self.enabled {
            return Err(RadioError::InvalidState);
        }
        check_channel(channel)?;
        self.channel = channel;
        self.receiving = true;
        self.rx_dirty = true;
        Ok(())
    }

    fn sleep(&mut self) -> Result<(), RadioError> {
        self.receiving = false;
        self.rx_dirty = true;
        Ok(())
    }

    fn transmit(&mut self, frame: &TxFrame<'_>) -> Result<(), RadioError> {
        if !self.enabled {
            return Err(RadioError::InvalidState);
        }
        if self.tx_busy || self.scan_busy {
            return Err(RadioError::Busy);
        }
        check_channel(frame.channel)?;
        check_channel(frame.rx_channel_after)?;
        let psdu = Psdu::new(frame.psdu).map_err(|_| RadioError::InvalidArgument)?;
        self.pending_tx = Some(TxRequest {
            psdu,
            channel: frame.channel,
            csma_ca: frame.csma_ca,
            max_csma_backoffs: frame.max_csma_backoffs,
            max_frame_retries: frame.max_frame_retries,
            start_at_us: frame.start_at_us,
            rx_channel_after: frame.rx_channel_after,
        });
        // After the transmission the medium listens on rx_channel_after.
        self.channel = frame.rx_channel_after;
        self.tx_busy = true;
        Ok(())
    }

    fn energy_scan(&mut self, channel: u8, duration_ms: u16) -> Result<(), RadioError> {
        if !self.enabled {
            return Err(RadioError::InvalidState);
        }
        if self.tx_busy || self.scan_busy {
            return Err(RadioError::Busy);
        }
        check_channel(channel)?;
        self.pending_scan = Some((channel, u64::from(duration_ms) * 1000));
        self.scan_busy = true;
        Ok(())
    }

    fn set_src_match_enabled(&mut self, enabled: bool) {
        self.cfg.src_match.set_enabled(enabled);
        self.config_changed();
    }

    fn add_src_match_short(&mut self, addr: u16) -> Result<(), RadioError> {
        self.cfg.src_match.add_short(addr)?;
        self.config_changed();
        Ok(())
    }

    fn remove_src_match_short(&mut self, addr: u16) -> Result<(), RadioError> {
        self.cfg.src_match.remove_short(addr)?;
        self.config_changed();
        Ok(())
    }

    fn clear_src_match_short(&mut self) {
        self.cfg.src_match.clear_short();
        self.config_changed();
    }

    fn add_src_match_extended(&mut self, addr: [u8; 8]) -> Result<(), RadioError> {
        self.cfg.src_match.add_extended(addr)?;
        self.config_changed();
        Ok(())
    }

    fn remove_src_match_extended(&mut self, addr: [u8; 8]) -> Result<(), RadioError> {
        self.cfg.src_match.remove_extended(addr)?;
        self.config_changed();
        Ok(())
    }

    fn clear_src_match_extended(&mut self) {
        self.cfg.src_match.clear_extended();
        self.config_changed();
    }
}
