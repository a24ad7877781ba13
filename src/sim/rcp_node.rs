//! [`RcpNode`]: the real RCP state machine ([`ferry_rcp_core::rcp::Rcp`]) over a
//! [`SimRadio`], i.e. a simulated nRF52840 RCP whose host side speaks Spinel frames
//! (`shared/reference/spinel.md` §4–§5) and whose radio side is a node of the [`Medium`].
//! Frames to and from the host are whole Spinel frames (HDLC framing is the serial shell's job).
//!
//! Call order, per input: [`RcpNode::host_frame`] for a frame from the host, or
//! [`RcpNode::on_delivery`] for every [`Delivery`] of `Medium::advance`; then collect what the
//! host must read with [`RcpNode::take_to_host`].

use std::collections::VecDeque;

use ferry_rcp_core::rcp::{Config, Rcp, ToHost};
use ferry_rcp_core::spinel::FRAME_MAX_LEN;

use super::medium::{Delivery, Medium, NodeEvent, NodeId};
use super::radio::SimRadio;

/// Spinel frames waiting for the host; beyond this the oldest are dropped, like a UART FIFO
/// overrun (counted in [`RcpNode::dropped`]).
pub const TO_HOST_CAPACITY: usize = 256;

/// A simulated RCP attached to a medium node.
#[derive(Debug)]
pub struct RcpNode {
    rcp: Rcp<SimRadio>,
    to_host: VecDeque<Vec<u8>>,
    dropped: u64,
    /// Errors from the RCP machine (an output buffer too small); none expected.
    errors: u64,
}

impl RcpNode {
    /// A booted RCP on `node`; its boot notification is already waiting for the host.
    pub fn new(medium: &Medium, node: NodeId, eui64: [u8; 8], config: Config) -> Option<Self> {
        let radio = SimRadio::new(medium, node, eui64)?;
        let mut n = RcpNode { rcp: Rcp::new(radio, config), to_host: VecDeque::new(), dropped: 0, errors: 0 };
        n.poll();
        Some(n)
    }

    pub fn node(&self) -> NodeId {
        self.rcp.radio().node()
    }

    pub fn rcp(&self) -> &Rcp<SimRadio> {
        &self.rcp
    }

    /// One Spinel frame from the host, at the medium's current time.
    pub fn host_frame(&mut self, medium: &mut Medium, frame: &[u8]) {
        let mut out = [0u8; FRAME_MAX_LEN];
        match self.rcp.handle_host_frame(medium.now(), frame, &mut out) {
            Ok(ToHost::Send(n)) => self.push(&out[..n]),
            Ok(ToHost::Nothing) => {}
            Err(_) => self.errors += 1,
        }
        self.poll();
        self.sync(medium);
    }

    /// A delivery from `Medium::advance`; ignored unless it is for this node.
    pub fn on_delivery(&mut self, medium: &mut Medium, delivery: &Delivery) {
        if delivery.node != self.node() {
            return;
        }
        self.radio_event(&delivery.event);
        self.sync(medium);
    }

    /// Spinel frames for the host, oldest first.
    pub fn take_to_host(&mut self) -> Vec<Vec<u8>> {
        self.to_host.drain(..).collect()
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn errors(&self) -> u64 {
        self.errors
    }

    fn radio_event(&mut self, event: &NodeEvent) {
        let mut out = [0u8; FRAME_MAX_LEN];
        let Some(radio_event) = self.rcp.radio_mut().on_event(event) else { return };
        match self.rcp.handle_radio_event(&radio_event, &mut out) {
            Ok(ToHost::Send(n)) => self.push(&out[..n]),
            Ok(ToHost::Nothing) => {}
            Err(_) => self.errors += 1,
        }
        self.poll();
    }

    /// Applies the radio's pending requests; requests the medium refused come back as events.
    fn sync(&mut self, medium: &mut Medium) {
        // Bounded: each refusal clears the request that caused it.
        for _ in 0..4 {
            let refused = self.rcp.radio_mut().sync(medium);
            if refused.is_empty() {
                return;
            }
            for event in &refused {
                self.radio_event(event);
            }
        }
    }

    fn poll(&mut self) {
        let mut out = [0u8; FRAME_MAX_LEN];
        loop {
            match self.rcp.poll_host(&mut out) {
                Ok(Some(n)) => self.push(&out[..n]),
                Ok(None) => return,
                Err(_) => {
                    self.errors += 1;
                    return;
                }
            }
        }
    }

    fn push(&mut self, frame: &[u8]) {
        if self.to_host.len() >= TO_HOST_CAPACITY {
            self.to_host.pop_front();
            self.dropped += 1;
        }
        self.to_host.push_back(frame.to_vec());
    }
}
