//! How long a session takes and how much of the channel it uses, from first principles.
//!
//! A SUIT fetch is a sequence of CoAP GETs with Block2 (NSTART 1: one block in flight). Per block
//! and per hop: a request frame and the response's frame(s), each with CSMA-CA, an ACK and LIFS
//! (IEEE 802.15.4 O-QPSK timing, `reference/radio.md`), repeated ETX times on average; plus
//! forwarding, the host↔RCP UART (every frame crosses it, one at a time, before or after it is on
//! air) and the device's CPU and flash time for the block (the nRF52840 DK's by default, the same
//! figures as the simulator's board model). Calibrated against RIOT's published figure (85 kB,
//! 64-byte blocks, one hop: ~30 s of network time) and ferry's sequential bench runs (~21 ms per
//! 64-byte block, ~135 ms per 1024-byte block).
//!
//! Air time counts only what occupies the channel (frames, turnarounds, ACKs); backoff, LIFS, the
//! UART and the device's work leave it free for others, so a session's share is its air time
//! divided by the block's whole duration.
//!
//! The border router's own frames (the responses on the first hop) are sent by one radio, one
//! after the other: however many sessions run, they fill the channel at most as far as that
//! radio can send back to back ([`gateway_capacity`]). A one-hop session's estimate says which
//! part of its share those frames are ([`SessionEstimate::gateway_share`]), so the planner can
//! count them against the border router's capacity rather than as contention.

use jiff::SignedDuration;

/// One byte on air, µs.
const BYTE_US: f64 = 32.0;
/// SHR + PHR bytes before each PSDU.
const PHY_OVERHEAD_BYTES: f64 = 6.0;
/// Mean first backoff ((2^3 − 1)/2 · 320 µs) + CCA.
const CSMA_US: f64 = 1_120.0 + 128.0;
const TURNAROUND_US: f64 = 192.0;
const ACK_US: f64 = 352.0;
const LIFS_US: f64 = 640.0;
/// Largest PSDU.
const MAX_PSDU: f64 = 127.0;
/// MAC header (short addresses, PAN ID compression) + FCS.
const MAC_OVERHEAD: f64 = 11.0;
/// Compressed IPv6 + UDP (CoAP's port is not NHC-compressible) + CoAP header, token, Block2 and
/// payload marker, for a response block.
const RESPONSE_OVERHEAD: f64 = 10.0 + 6.0 + 4.0 + 2.0 + 3.0 + 1.0;
/// The request: IPv6 + UDP + CoAP with Uri-Path and Block2.
const REQUEST_PSDU: f64 = MAC_OVERHEAD + 10.0 + 6.0 + 20.0;
/// FRAG1/FRAGN header, when a block does not fit one frame.
const FRAG_HEADER: f64 = 5.0;
/// A MAC Data Request (poll): header with extended source, command byte, FCS.
const DATA_REQUEST_PSDU: f64 = 18.0;
/// Spinel header, property, length, metadata and HDLC-lite framing around a PSDU on the UART.
const UART_FRAME_OVERHEAD: f64 = 12.0;
/// Start, stop and data bits of one UART byte.
const UART_BITS_PER_BYTE: f64 = 10.0;

/// The tunable part of the model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Model {
    /// Forwarding delay per hop per block (queueing, the router's CPU), µs.
    pub per_hop_processing_us: f64,
    /// The device's CPU work per block (radio driver, network stack, CoAP, SUIT worker), µs.
    pub per_block_device_us: f64,
    /// The device's flash time per byte of image, erase amortised over the page, µs.
    pub flash_us_per_byte: f64,
    /// The host↔RCP UART's speed; every frame crosses it once.
    pub uart_baud: f64,
    /// Transmissions the RCP takes at once: with 2 (ferry's RCP) the next frame crosses the
    /// UART while the current one is on air; with 1 (ot-rcp) every crossing is on the path.
    pub rcp_tx_window: u8,
    /// How often a sleepy device polls its parent while a transfer runs (Thread's fast
    /// polling): each response waits for its poll, half a period on average.
    pub sleepy_fast_poll_us: f64,
    /// Signature check, slot switch and reboot.
    pub install_fixed: SignedDuration,
    /// Digest over the image before reboot, bytes per second.
    pub install_bytes_per_s: f64,
    /// When the device class is typically running again after its last block (nRF52840 DK:
    /// digest, slot switch, ~1 s boot): ferry reads it back first then.
    pub install_expected: SignedDuration,
    /// Multiplier on the whole estimate, so a session planned to fit a window does.
    pub safety_factor: f64,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            per_hop_processing_us: 4_000.0,
            // nRF52840: 3 ms per block, 41 µs per 4-byte word, 85 ms per 4 KiB page erase.
            per_block_device_us: 3_000.0,
            flash_us_per_byte: 10.25 + 85_000.0 / 4096.0,
            uart_baud: 460_800.0,
            rcp_tx_window: 2,
            sleepy_fast_poll_us: 50_000.0,
            install_fixed: SignedDuration::from_secs(30),
            install_bytes_per_s: 40_000.0,
            install_expected: SignedDuration::from_millis(3_500),
            safety_factor: 1.25,
        }
    }
}

/// A session's estimated duration and channel use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SessionEstimate {
    pub blocks: u64,
    /// Until the device next wakes and picks up the trigger (one full wake period, worst case).
    pub wake_wait: SignedDuration,
    pub transfer: SignedDuration,
    pub install: SignedDuration,
    /// The device's typical install time (≤ `install`): when to read it back first.
    pub install_expected: SignedDuration,
    /// Everything, times the safety factor.
    pub total: SignedDuration,
    /// Share of the channel's time the session occupies while transferring, 0..=1.
    pub air_time_share: f64,
    /// The part of `air_time_share` that only the border router's radio contends for (≤ it):
    /// its responses to a device one hop away. Zero further away.
    pub gateway_share: f64,
    /// Whether ferry must pace the transfer to stay within the budget (and did, in `transfer`).
    pub paced: bool,
}

/// What the estimate needs to know about one delivery.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Path {
    pub image_bytes: u64,
    pub block_size: u16,
    pub hops: u8,
    pub etx: f64,
    pub wake_period: Option<SignedDuration>,
}

fn frame_time_us(psdu: f64) -> f64 {
    CSMA_US + TURNAROUND_US + (psdu + PHY_OVERHEAD_BYTES) * BYTE_US + TURNAROUND_US + ACK_US + LIFS_US
}

fn frame_air_us(psdu: f64) -> f64 {
    (psdu + PHY_OVERHEAD_BYTES) * BYTE_US + TURNAROUND_US + ACK_US
}

fn uart_frame_us(psdu: f64, model: &Model) -> f64 {
    (psdu + UART_FRAME_OVERHEAD) * UART_BITS_PER_BYTE * 1e6 / model.uart_baud.max(9_600.0)
}

/// A response block: how many frames, and the PSDU size of each.
fn response_frames(block_size: u16) -> (f64, f64) {
    let block = f64::from(block_size.max(16));
    let single = MAC_OVERHEAD + RESPONSE_OVERHEAD + block;
    if single <= MAX_PSDU {
        (1.0, single)
    } else {
        let per_frame = MAX_PSDU - MAC_OVERHEAD - FRAG_HEADER;
        let frames = ((RESPONSE_OVERHEAD + block) / per_frame).ceil();
        (frames, (RESPONSE_OVERHEAD + block) / frames + MAC_OVERHEAD + FRAG_HEADER)
    }
}

/// The share of the channel's time the border router's one radio fills when it sends response
/// frames of `block_size` blocks back to back: each takes CSMA, air, ACK and LIFS, and with an
/// RCP that takes one frame at a time also its UART crossing and the TX-done's way back.
pub fn gateway_capacity(block_size: u16, model: &Model) -> f64 {
    let (_, psdu) = response_frames(block_size);
    let uart = uart_frame_us(psdu, model);
    let cycle = if model.rcp_tx_window >= 2 {
        frame_time_us(psdu).max(uart)
    } else {
        frame_time_us(psdu) + uart + uart_frame_us(UART_FRAME_OVERHEAD, model)
    };
    (frame_air_us(psdu) / cycle).clamp(0.0, 1.0)
}

/// How busy the border router's radio is with `sessions` sessions that each, alone, would
/// keep it busy `alone` of the time (their gateway share over its capacity), 0..=1.
///
/// The machine-repairman model: each session alternates between waiting for the radio to send
/// its frames and not needing it (the device writes flash, its next request is on its way), and
/// the radio serves one at a time. With r = alone / (1 − alone) the radio is idle with
/// probability 1 / Σₙ₌₀ᵏ k!/(k−n)! rⁿ. One session keeps it busy `alone` of the time; more fill
/// each other's gaps with diminishing returns.
pub fn gateway_utilisation(sessions: usize, alone: f64) -> f64 {
    if sessions == 0 {
        return 0.0;
    }
    let alone = alone.clamp(0.0, 0.999);
    let r = alone / (1.0 - alone);
    let (mut term, mut sum) = (1.0, 1.0);
    for n in 0..sessions {
        term *= (sessions - n) as f64 * r;
        sum += term;
        if !sum.is_finite() {
            return 1.0;
        }
    }
    1.0 - 1.0 / sum
}

/// How much longer each of `sessions` alike sessions takes while they share the border router's
/// radio than it would alone (≥ 1): together they get [`gateway_utilisation`] of it, where
/// each alone would have `alone`.
pub fn gateway_stretch(sessions: usize, alone: f64) -> f64 {
    let busy = gateway_utilisation(sessions, alone);
    if busy > 0.0 {
        (sessions as f64 * alone / busy).max(1.0)
    } else {
        1.0
    }
}

/// Estimates one session; `budget` (0..=1) caps its air-time share by pacing the transfer.
pub fn session(path: Path, model: &Model, budget: f64) -> SessionEstimate {
    let block = f64::from(path.block_size.max(16));
    let blocks = path.image_bytes.div_ceil(u64::from(path.block_size.max(16))).max(1);
    // The response datagram, fragmented into frames when it does not fit one.
    let (frames, psdu) = response_frames(path.block_size);
    let etx = path.etx.max(1.0);
    let hops = f64::from(path.hops.max(1));
    let per_hop_us = etx * (frame_time_us(REQUEST_PSDU) + frames * frame_time_us(psdu)) + model.per_hop_processing_us;
    // The request comes up the UART and every fragment of the response goes down it. With a
    // two-deep RCP a fragment crosses while the one before it is on air: only the first one's
    // crossing is on the path, and the rest only where the UART is slower than the air.
    let later_fragments = (frames - 1.0).max(0.0);
    let uart_us = uart_frame_us(REQUEST_PSDU, model)
        + uart_frame_us(psdu, model)
        + if model.rcp_tx_window >= 2 {
            later_fragments * (uart_frame_us(psdu, model) - etx * frame_time_us(psdu)).max(0.0)
        } else {
            later_fragments * uart_frame_us(psdu, model)
        };
    let device_us = model.per_block_device_us + model.flash_us_per_byte.max(0.0) * block;
    let mut block_us = hops * per_hop_us + uart_us + device_us;
    let mut air_us = hops * etx * (frame_air_us(REQUEST_PSDU) + frames * frame_air_us(psdu));
    // Further away, the first router forwards each frame while the next one arrives: those
    // frames contend like any other, so only a one-hop session's responses count here.
    let gateway_air_us = if path.hops <= 1 { etx * frames * frame_air_us(psdu) } else { 0.0 };
    if path.wake_period.is_some() {
        // The response waits at the parent for the child's next poll; the poll is a frame too.
        block_us += model.sleepy_fast_poll_us.max(0.0) / 2.0 + frame_time_us(DATA_REQUEST_PSDU);
        air_us += etx * frame_air_us(DATA_REQUEST_PSDU);
    }
    let mut share = (air_us / block_us).min(1.0);
    let mut gateway_share = (gateway_air_us / block_us).min(share);
    let mut transfer_us = block_us * blocks as f64;
    let budget = budget.clamp(0.01, 1.0);
    let paced = share > budget;
    if paced {
        // ferry answers the blocks, so it can slow them down: same air time, spread out.
        transfer_us *= share / budget;
        gateway_share *= budget / share;
        share = budget;
    }
    let transfer = SignedDuration::from_micros(transfer_us as i64);
    let install_s = path.image_bytes as f64 / model.install_bytes_per_s.max(1.0);
    let install = model.install_fixed + SignedDuration::from_secs_f64(install_s);
    let wake_wait = path.wake_period.unwrap_or(SignedDuration::ZERO);
    let raw = (wake_wait + transfer + install).as_secs_f64();
    let total = SignedDuration::from_secs_f64(raw * model.safety_factor.max(1.0));
    let install_expected = model.install_expected.clamp(SignedDuration::ZERO, install);
    SessionEstimate {
        blocks,
        wake_wait,
        transfer,
        install,
        install_expected,
        total,
        air_time_share: share,
        gateway_share,
        paced,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_hop_64_byte_blocks_match_riots_published_network_time() {
        let path = Path { image_bytes: 85_000, block_size: 64, hops: 1, etx: 1.0, wake_period: None };
        let e = session(path, &Model::default(), 1.0);
        // RIOT (Clemens 2021): ~30 s of network time for this case.
        let t = e.transfer.as_secs_f64();
        assert!((20.0..40.0).contains(&t), "{e:?}");
        assert!((0.2..0.4).contains(&e.air_time_share), "{e:?}");
        assert!(!e.paced);
    }

    #[test]
    fn more_hops_and_worse_links_take_longer_and_pacing_caps_share() {
        let base = Path { image_bytes: 50_000, block_size: 64, hops: 1, etx: 1.0, wake_period: None };
        let far = Path { hops: 3, etx: 2.0, ..base };
        let (a, b) = (session(base, &Model::default(), 1.0), session(far, &Model::default(), 1.0));
        assert!(b.transfer > a.transfer * 3);
        let capped = session(far, &Model::default(), 0.1);
        assert!(capped.paced && capped.air_time_share <= 0.1 && capped.transfer > b.transfer);
        let big = session(Path { block_size: 512, ..base }, &Model::default(), 1.0);
        assert!(big.transfer < a.transfer, "bigger blocks amortise the request");
    }

    #[test]
    fn share_is_air_over_the_blocks_real_duration() {
        // ferry's sequential bench runs on the nRF52840 model: ~21 ms per 64-byte block and
        // ~113 ms per 1024-byte block (~135 ms with an RCP that takes one frame at a time), of
        // which the channel carries about two fifths.
        let path = Path { image_bytes: 100_000, block_size: 1024, hops: 1, etx: 1.0, wake_period: None };
        let e = session(path, &Model::default(), 1.0);
        let per_block_ms = e.transfer.as_secs_f64() * 1e3 / e.blocks as f64;
        assert!((100.0..130.0).contains(&per_block_ms), "{per_block_ms} ms, {e:?}");
        let one_deep = session(path, &Model { rcp_tx_window: 1, ..Model::default() }, 1.0);
        let per_block_ms = one_deep.transfer.as_secs_f64() * 1e3 / one_deep.blocks as f64;
        assert!((120.0..160.0).contains(&per_block_ms), "{per_block_ms} ms, {one_deep:?}");
        assert!((0.25..0.45).contains(&e.air_time_share), "{e:?}");
        let small = session(Path { block_size: 64, ..path }, &Model::default(), 1.0);
        let per_block_ms = small.transfer.as_secs_f64() * 1e3 / small.blocks as f64;
        assert!((17.0..26.0).contains(&per_block_ms), "{per_block_ms} ms, {small:?}");
        assert!(small.air_time_share < 0.3, "two 64-byte sessions fit the default budget 0.6: {small:?}");
        // A sleepy device's blocks wait for its fast polls: longer, and less of the channel.
        let sleepy = session(Path { wake_period: Some(SignedDuration::from_secs(2)), ..path }, &Model::default(), 1.0);
        assert!(sleepy.transfer > e.transfer && sleepy.air_time_share < e.air_time_share, "{sleepy:?}");
        // A slower UART stretches the block without adding air: a smaller share.
        let slow = session(path, &Model { uart_baud: 115_200.0, ..Model::default() }, 1.0);
        assert!(slow.air_time_share < e.air_time_share && slow.transfer > e.transfer);
        // So does an RCP that takes one frame at a time: every fragment's crossing counts.
        let one_deep = session(path, &Model { rcp_tx_window: 1, ..Model::default() }, 1.0);
        assert!(one_deep.air_time_share < e.air_time_share && one_deep.transfer > e.transfer, "{one_deep:?}");
    }

    #[test]
    fn the_border_routers_frames_are_part_of_the_share_and_bounded_by_its_radio() {
        let path = Path { image_bytes: 100_000, block_size: 1024, hops: 1, etx: 1.0, wake_period: None };
        let model = Model::default();
        let e = session(path, &model, 1.0);
        // One hop: nearly all of the air is the responses; the request is the rest.
        assert!(e.gateway_share < e.air_time_share && e.gateway_share > 0.9 * e.air_time_share, "{e:?}");
        // Three hops: the first router forwards while the next frame arrives, so all contends.
        let far = session(Path { hops: 3, ..path }, &model, 1.0);
        assert_eq!(far.gateway_share, 0.0, "{far:?}");
        // Back to back, 1024-byte blocks' full frames: ~70 % with a two-deep RCP (CSMA, ACK
        // and LIFS between frames), less when each frame waits for its UART crossing.
        let cap = gateway_capacity(1024, &model);
        assert!((0.6..0.8).contains(&cap), "{cap}");
        let one_deep = gateway_capacity(1024, &Model { rcp_tx_window: 1, ..model });
        assert!(one_deep < cap - 0.1, "{one_deep} vs {cap}");
        // A session alone leaves the radio idle while the device writes flash: it does not
        // saturate it, two together nearly do.
        assert!(e.gateway_share < cap && 2.0 * e.gateway_share > cap, "{e:?} vs {cap}");
        // One session keeps the radio busy its share of the time; each more adds less.
        let alone = e.gateway_share / cap;
        let u: Vec<f64> = (0..=4).map(|k| gateway_utilisation(k, alone)).collect();
        assert_eq!(u[0], 0.0);
        assert!((u[1] - alone).abs() < 1e-9, "{u:?}");
        assert!(u.windows(3).all(|w| w[1] > w[0] && w[2] - w[1] < w[1] - w[0]) && u[4] < 1.0, "{u:?}");
        assert_eq!(gateway_utilisation(3, 1.0).clamp(0.99, 1.0), gateway_utilisation(3, 1.0));
        // Pacing scales both parts alike.
        let paced = session(path, &model, 0.2);
        assert!((paced.gateway_share / paced.air_time_share - e.gateway_share / e.air_time_share).abs() < 1e-9);
    }
}
