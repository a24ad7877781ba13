//! Arbitrary host bytes (HDLC stream) and radio completions into the RCP state machine.
//!
//! Invariants: nothing panics; every reply the RCP writes is a Spinel frame that parses and
//! fits one HDLC frame; at most one TX-done per accepted transmission.
#![no_main]

use ferry_rcp_core::hdlc::{self, SpinelDecoder};
use ferry_rcp_core::radio::{
    Radio, RadioError, RadioEvent, ReceivedFrame, SrcMatchTable, TxError, TxFrame,
};
use ferry_rcp_core::rcp::{Config, Rcp, ToHost};
use ferry_rcp_core::spinel::{RadioCaps, Repr};
use libfuzzer_sys::fuzz_target;

/// Accepts everything, like a healthy radio; tables are real so NOMEM paths are reached.
#[derive(Default)]
struct StubRadio {
    table: SrcMatchTable<8, 4>,
    transmitting: bool,
}

impl Radio for StubRadio {
    fn eui64(&self) -> [u8; 8] {
        [1, 2, 3, 4, 5, 6, 7, 8]
    }
    fn caps(&self) -> RadioCaps {
        RadioCaps(0x6F)
    }
    fn rx_sensitivity(&self) -> i8 {
        -100
    }
    fn rssi(&mut self) -> i8 {
        -90
    }
    fn set_enabled(&mut self, _: bool) -> Result<(), RadioError> {
        Ok(())
    }
    fn set_channel(&mut self, _: u8) -> Result<(), RadioError> {
        Ok(())
    }
    fn set_tx_power(&mut self, dbm: i8) -> Result<i8, RadioError> {
        Ok(dbm)
    }
    fn set_cca_threshold(&mut self, dbm: i8) -> Result<i8, RadioError> {
        Ok(dbm)
    }
    fn set_pan_id(&mut self, _: u16) {}
    fn set_short_address(&mut self, _: u16) {}
    fn set_extended_address(&mut self, _: [u8; 8]) {}
    fn set_promiscuous(&mut self, _: bool) {}
    fn receive(&mut self, _: u8) -> Result<(), RadioError> {
        Ok(())
    }
    fn sleep(&mut self) -> Result<(), RadioError> {
        Ok(())
    }
    fn transmit(&mut self, f: &TxFrame<'_>) -> Result<(), RadioError> {
        assert!(f.psdu.len() <= 127 && (11..=26).contains(&f.channel));
        if self.transmitting {
            return Err(RadioError::Busy);
        }
        self.transmitting = true;
        Ok(())
    }
    fn energy_scan(&mut self, _: u8, _: u16) -> Result<(), RadioError> {
        Ok(())
    }
    fn set_src_match_enabled(&mut self, on: bool) {
        self.table.set_enabled(on);
    }
    fn add_src_match_short(&mut self, a: u16) -> Result<(), RadioError> {
        self.table.add_short(a)
    }
    fn remove_src_match_short(&mut self, a: u16) -> Result<(), RadioError> {
        self.table.remove_short(a)
    }
    fn clear_src_match_short(&mut self) {
        self.table.clear_short();
    }
    fn add_src_match_extended(&mut self, a: [u8; 8]) -> Result<(), RadioError> {
        self.table.add_extended(a)
    }
    fn remove_src_match_extended(&mut self, a: [u8; 8]) -> Result<(), RadioError> {
        self.table.remove_extended(a)
    }
    fn clear_src_match_extended(&mut self) {
        self.table.clear_extended();
    }
}

fn check_reply(out: &[u8], n: usize) {
    let frame = &out[..n];
    assert!(
        Repr::parse(frame).is_ok(),
        "RCP wrote a frame it cannot parse"
    );
    assert!(n <= hdlc::MAX_FRAME_LEN);
}

fuzz_target!(|data: &[u8]| {
    let mut rcp = Rcp::new(StubRadio::default(), Config::default());
    let mut out = [0u8; hdlc::MAX_FRAME_LEN];
    let mut dec = SpinelDecoder::new();
    let mut frame = [0u8; hdlc::MAX_FRAME_LEN];
    let ack = [0x12, 0x00, 0x2a, 0x00, 0x00];
    let mut rest = data;
    let mut now = 0u64;
    while !rest.is_empty() {
        let (used, ev) = dec.feed(rest);
        rest = &rest[used..];
        now += used as u64 * 40; // ~1 byte time at 250 kbit/s, as a plausible clock
        let Some(Ok(payload)) = ev else { continue };
        let len = payload.len();
        frame[..len].copy_from_slice(payload);
        // The frame's last byte also picks a radio event to interleave.
        let pick = frame.get(len.wrapping_sub(1)).copied().unwrap_or(0);
        if let Ok(ToHost::Send(n)) = rcp.handle_host_frame(now, &frame[..len], &mut out) {
            check_reply(&out, n);
        }
        let received = ReceivedFrame {
            psdu: &ack,
            channel: 15,
            rssi: -40,
            lqi: 255,
            timestamp_us: now,
            acked_with_frame_pending: pick & 1 != 0,
        };
        let event = match pick % 5 {
            0 => Some(RadioEvent::Received(received)),
            1 => Some(RadioEvent::TransmitDone(Ok(Some(received)))),
            2 => Some(RadioEvent::TransmitDone(Err(TxError::NoAck))),
            3 => Some(RadioEvent::EnergyScanDone {
                channel: 11,
                max_rssi: -60,
            }),
            _ => None,
        };
        if let Some(event) = event {
            if matches!(event, RadioEvent::TransmitDone(_)) {
                rcp.radio_mut().transmitting = false;
            }
            if let Ok(ToHost::Send(n)) = rcp.handle_radio_event(&event, &mut out) {
                check_reply(&out, n);
            }
        }
        while let Ok(Some(n)) = rcp.poll_host(&mut out) {
            check_reply(&out, n);
        }
    }
});
