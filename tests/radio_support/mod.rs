//! Shared by the radio tests: a recording stand-in radio under the real RCP state machine, and
//! an async task that serves that RCP over any byte stream (in-memory pipe or pty).
#![allow(dead_code)]

use std::time::Duration;

use ferry_rcp_core::hdlc::{self, SpinelDecoder};
use ferry_rcp_core::radio::{
    Radio, RadioError, RadioEvent, ReceivedFrame, SrcMatchTable, TxError as RadioTxError, TxFrame,
};
use ferry_rcp_core::rcp::{Rcp, ToHost};
use ferry_rcp_core::spinel::{RadioCaps, FRAME_MAX_LEN};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// What the test radio does with the next transmission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Medium {
    /// ACK frames that request one; Frame Pending from the source-match table of the peer
    /// (here: our own table, keyed by the destination short address, for the test).
    Ack,
    NoAck,
    Busy,
}

#[derive(Debug)]
pub struct TestRadio {
    pub enabled: bool,
    pub channel: u8,
    pub receiving: bool,
    pub pan_id: u16,
    pub short_addr: u16,
    pub ext_addr: [u8; 8],
    pub table: SrcMatchTable<8, 4>,
    pub sent: Vec<(Vec<u8>, u8, u8, bool)>,
    pub transmitting: bool,
    pub medium: Medium,
    pub calls: Vec<String>,
}

impl TestRadio {
    pub fn new() -> TestRadio {
        TestRadio {
            enabled: false,
            channel: 0,
            receiving: false,
            pan_id: 0,
            short_addr: 0,
            ext_addr: [0; 8],
            table: SrcMatchTable::new(),
            sent: Vec::new(),
            transmitting: false,
            medium: Medium::Ack,
            calls: Vec::new(),
        }
    }
}

impl Radio for TestRadio {
    fn eui64(&self) -> [u8; 8] {
        [0xf4, 0xce, 0x36, 0x00, 0x00, 0x00, 0x00, 0x01]
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
    fn set_enabled(&mut self, enabled: bool) -> Result<(), RadioError> {
        self.calls.push(format!("enabled {enabled}"));
        self.enabled = enabled;
        Ok(())
    }
    fn set_channel(&mut self, channel: u8) -> Result<(), RadioError> {
        self.calls.push(format!("channel {channel}"));
        self.channel = channel;
        Ok(())
    }
    fn set_tx_power(&mut self, dbm: i8) -> Result<i8, RadioError> {
        Ok(dbm)
    }
    fn set_cca_threshold(&mut self, dbm: i8) -> Result<i8, RadioError> {
        Ok(dbm)
    }
    fn set_pan_id(&mut self, pan_id: u16) {
        self.pan_id = pan_id;
    }
    fn set_short_address(&mut self, addr: u16) {
        self.short_addr = addr;
    }
    fn set_extended_address(&mut self, addr: [u8; 8]) {
        self.ext_addr = addr;
    }
    fn set_promiscuous(&mut self, _on: bool) {}
    fn receive(&mut self, channel: u8) -> Result<(), RadioError> {
        self.receiving = true;
        self.channel = channel;
        Ok(())
    }
    fn sleep(&mut self) -> Result<(), RadioError> {
        self.receiving = false;
        Ok(())
    }
    fn transmit(&mut self, frame: &TxFrame<'_>) -> Result<(), RadioError> {
        if self.transmitting {
            return Err(RadioError::Busy);
        }
        self.transmitting = true;
        self.sent.push((frame.psdu.to_vec(), frame.channel, frame.max_frame_retries, frame.csma_ca));
        Ok(())
    }
    fn energy_scan(&mut self, _channel: u8, _duration_ms: u16) -> Result<(), RadioError> {
        Err(RadioError::NotCapable)
    }
    fn set_src_match_enabled(&mut self, enabled: bool) {
        self.table.set_enabled(enabled);
    }
    fn add_src_match_short(&mut self, addr: u16) -> Result<(), RadioError> {
        self.table.add_short(addr)
    }
    fn remove_src_match_short(&mut self, addr: u16) -> Result<(), RadioError> {
        self.table.remove_short(addr)
    }
    fn clear_src_match_short(&mut self) {
        self.table.clear_short();
    }
    fn add_src_match_extended(&mut self, addr: [u8; 8]) -> Result<(), RadioError> {
        self.table.add_extended(addr)
    }
    fn remove_src_match_extended(&mut self, addr: [u8; 8]) -> Result<(), RadioError> {
        self.table.remove_extended(addr)
    }
    fn clear_src_match_extended(&mut self) {
        self.table.clear_extended();
    }
}

pub fn hdlc_encode(spinel: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; hdlc::encoded_len(spinel)];
    let n = hdlc::encode(spinel, &mut out).expect("encode");
    out.truncate(n);
    out
}

/// If the radio is transmitting, ends the transmission as its `medium` says and returns the
/// RCP's TX-done (HDLC-encoded).
pub fn finish_transmit(rcp: &mut Rcp<TestRadio>) -> Option<Vec<u8>> {
    if !rcp.radio().transmitting {
        return None;
    }
    let radio = rcp.radio_mut();
    radio.transmitting = false;
    let (psdu, channel, _, _) = radio.sent.last().cloned().expect("a frame");
    let wants_ack = psdu[0] & 0x20 != 0;
    let dst = u16::from_le_bytes([psdu[5], psdu[6]]);
    let fp = radio.table.pending_for_short(dst);
    let ack = [if fp { 0x12 } else { 0x02 }, 0x00, psdu[2], 0, 0];
    let result = match radio.medium {
        Medium::Ack if wants_ack => Ok(Some(ReceivedFrame {
            psdu: &ack,
            channel,
            rssi: -40,
            lqi: 200,
            timestamp_us: 42,
            acked_with_frame_pending: false,
        })),
        Medium::Ack => Ok(None),
        Medium::NoAck => Err(RadioTxError::NoAck),
        Medium::Busy => Err(RadioTxError::ChannelAccessFailure),
    };
    let mut out = vec![0u8; FRAME_MAX_LEN];
    match rcp.handle_radio_event(&RadioEvent::TransmitDone(result), &mut out).expect("buffer") {
        ToHost::Send(n) => Some(hdlc_encode(&out[..n])),
        ToHost::Nothing => None,
    }
}

/// Commands to a served RCP.
#[derive(Debug)]
pub enum Ctl {
    /// A frame from the air: psdu, rssi, lqi, timestamp.
    Rx(Vec<u8>, i8, u8, u64),
    /// Raw bytes to put on the line (garbage).
    Raw(Vec<u8>),
    /// Stop answering (a hung RCP) or answer again.
    Mute(bool),
    /// Close the line (USB unplug).
    Unplug,
    /// The chip reboots: a fresh RCP (and radio) announces this reset reason.
    Reboot(ferry_rcp_core::spinel::Status),
}

/// Serves `rcp` over `io` until the line closes or `Ctl::Unplug`; returns the RCP.
pub async fn serve_rcp<T: AsyncRead + AsyncWrite + Unpin>(
    mut io: T,
    mut rcp: Rcp<TestRadio>,
    mut ctl: mpsc::UnboundedReceiver<Ctl>,
) -> Rcp<TestRadio> {
    let start = tokio::time::Instant::now();
    let mut decoder = Box::new(SpinelDecoder::new());
    let mut buf = vec![0u8; 2048];
    let mut out = vec![0u8; FRAME_MAX_LEN];
    let mut muted = false;
    let mut ctl_open = true;
    loop {
        let mut to_host = Vec::new();
        while let Some(n) = rcp.poll_host(&mut out).expect("buffer") {
            to_host.extend(hdlc_encode(&out[..n]));
        }
        // Finishing one may start the one the RCP held behind it: finish that too.
        while let Some(done) = finish_transmit(&mut rcp) {
            to_host.extend(done);
            while let Some(n) = rcp.poll_host(&mut out).expect("buffer") {
                to_host.extend(hdlc_encode(&out[..n]));
            }
        }
        if !to_host.is_empty() && !muted && io.write_all(&to_host).await.is_err() {
            return rcp;
        }
        let _ = io.flush().await;
        tokio::select! {
            r = io.read(&mut buf) => {
                let n = match r {
                    Ok(0) | Err(_) => return rcp,
                    Ok(n) => n,
                };
                if muted {
                    continue;
                }
                let now_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
                let mut rest = &buf[..n];
                let mut replies = Vec::new();
                while !rest.is_empty() {
                    let (used, frame) = decoder.feed(rest);
                    rest = &rest[used..];
                    if let Some(Ok(frame)) = frame {
                        let frame = frame.to_vec();
                        if let ToHost::Send(m) = rcp.handle_host_frame(now_us, &frame, &mut out).expect("buffer") {
                            replies.extend(hdlc_encode(&out[..m]));
                        }
                    }
                }
                if !replies.is_empty() && io.write_all(&replies).await.is_err() {
                    return rcp;
                }
            }
            c = ctl.recv(), if ctl_open => match c {
                None => ctl_open = false,
                Some(Ctl::Unplug) => return rcp,
                Some(Ctl::Mute(m)) => muted = m,
                Some(Ctl::Reboot(reason)) => {
                    let config = ferry_rcp_core::rcp::Config { boot_reason: reason, ..Default::default() };
                    rcp = Rcp::new(TestRadio::new(), config);
                    *decoder = SpinelDecoder::new();
                }
                Some(Ctl::Raw(bytes)) => {
                    if io.write_all(&bytes).await.is_err() {
                        return rcp;
                    }
                }
                Some(Ctl::Rx(psdu, rssi, lqi, ts)) => {
                    let ev = RadioEvent::Received(ReceivedFrame {
                        psdu: &psdu,
                        channel: rcp.radio().channel,
                        rssi,
                        lqi,
                        timestamp_us: ts,
                        acked_with_frame_pending: false,
                    });
                    if let ToHost::Send(m) = rcp.handle_radio_event(&ev, &mut out).expect("buffer") {
                        if io.write_all(&hdlc_encode(&out[..m])).await.is_err() {
                            return rcp;
                        }
                    }
                }
            },
        }
    }
}

/// Polls `cond` every 10 ms (virtual or real time) until it holds or `limit` passes.
pub async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}
