//! Counters the endpoint keeps; the daemon exports them (`ferry_coap_*_total`).

use std::collections::BTreeMap;

use coap_lite::MessageType;

/// Messages seen in one direction, by type and by raw code byte (e.g. 0x45 = 2.05).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MessageCounts {
    /// Indexed CON, NON, ACK, RST.
    pub by_type: [u64; 4],
    /// Bounded by the 256 possible codes.
    pub by_code: BTreeMap<u8, u64>,
    pub bytes: u64,
}

impl MessageCounts {
    pub(crate) fn count(&mut self, t: MessageType, code: u8, len: usize) {
        self.by_type[type_index(t)] += 1;
        *self.by_code.entry(code).or_default() += 1;
        self.bytes += len as u64;
    }

    /// Messages of one type.
    pub fn of_type(&self, t: MessageType) -> u64 {
        self.by_type[type_index(t)]
    }
}

fn type_index(t: MessageType) -> usize {
    match t {
        MessageType::Confirmable => 0,
        MessageType::NonConfirmable => 1,
        MessageType::Acknowledgement => 2,
        MessageType::Reset => 3,
    }
}

/// All counters of one endpoint. Plain numbers: the endpoint is single-threaded.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Metrics {
    pub rx: MessageCounts,
    pub tx: MessageCounts,
    /// Datagrams that did not parse as CoAP.
    pub rx_malformed: u64,
    /// Duplicate CONs/NONs answered from the dedup cache or dropped.
    pub rx_duplicates: u64,
    /// Requests left unanswered while resources were still being added
    /// ([`Endpoint::hold_unknown_until`](super::Endpoint::hold_unknown_until)).
    pub rx_held: u64,
    /// CON retransmissions we sent.
    pub retransmissions: u64,
    /// CONs that got no ACK after MAX_RETRANSMIT retransmissions.
    pub transmit_timeouts: u64,
    /// Answers to requests we had stopped retransmitting (a sleepy peer behind a router).
    pub late_answers: u64,
    /// Block2 blocks served, and Block2 transfers started (block 0 served).
    pub block2_blocks_served: u64,
    pub block2_transfers_started: u64,
    /// Block1 uploads fully reassembled.
    pub block1_transfers_completed: u64,
    /// Block-wise client fetches completed / failed.
    pub fetches_completed: u64,
    pub fetches_failed: u64,
    /// Observe notifications sent (first transmissions).
    pub notifications_sent: u64,
    /// Outputs dropped because the caller did not drain them (bounded queues).
    pub transmits_dropped: u64,
    pub events_dropped: u64,
}
