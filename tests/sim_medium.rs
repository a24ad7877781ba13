//! Validation of the simulated medium against the analytic single-sender ceiling of
//! `shared/reference/radio.md`, plus the MAC behaviours the figures rest on: hidden-terminal
//! collisions, retries ending in NoAck, and a busy channel ending in ChannelAccessFailure.

use ferry::sim::frame::{Address, Header, Psdu};
use ferry::sim::medium::{Delivery, Medium, NodeConfig, NodeEvent, NodeId, TxRequest};
use ferry::sim::{Link, Timing};
use ferry_rcp_core::radio::TxError;

const PAN: u16 = 0xface;
const CHANNEL: u8 = 15;
/// Enough frames that the mean of the uniform backoff is within a fraction of a percent.
const FRAMES: u64 = 10_000;

fn node(m: &mut Medium, short: u16) -> NodeId {
    let id = m.add_node(NodeConfig { pan_id: PAN, short_addr: short, ..NodeConfig::default() }).unwrap();
    m.receive(id, CHANNEL).unwrap();
    id
}

/// A full 127-byte PSDU from 0x0001 to 0x0002: 9 header bytes + 116 payload + 2 FCS.
fn short_address_frame(seq: u8, ack: bool) -> Psdu {
    Header::data(seq, PAN, Address::Short(2), Address::Short(1), ack).emit_frame(&[0xa5; 116]).unwrap()
}

/// Latré's frame: no addresses, so 3 header bytes + 122 payload + 2 FCS = 127.
fn no_address_frame(seq: u8) -> Psdu {
    Header::data(seq, PAN, Address::None, Address::None, false).emit_frame(&[0xa5; 122]).unwrap()
}

/// One saturated sender: a new frame as soon as the previous one is done. Returns MAC payload
/// throughput in kbit/s, from t = 0 to the end of the IFS owed after the last frame, so that
/// every frame is charged one full cycle as in the analysis.
fn saturated(timing: Timing, frame: impl Fn(u8) -> Psdu, payload: u64, ack: bool) -> f64 {
    let mut m = Medium::new(0x5eed, timing);
    let tx = node(&mut m, 1);
    let rx = node(&mut m, 2);
    m.config_mut(rx).unwrap().pan_coordinator = true; // accepts Latré's address-less frames
    m.set_link_both(tx, rx, Some(Link::perfect())).unwrap();
    let mut done = 0u64;
    let mut received = 0u64;
    m.transmit(tx, TxRequest::new(frame(0), CHANNEL)).unwrap();
    // Every cycle is the fixed part plus a whole number of backoff periods in 0..=2^macMinBE-1.
    let psdu_len = frame(0).len();
    let mut fixed = timing.cca_us + timing.cca_to_tx_us + timing.air_time_us(psdu_len);
    if ack {
        fixed += timing.turnaround_us + timing.air_time_us(5);
    }
    let mut backoff_sum = 0u64;
    let mut last_done = 0;
    while done < FRAMES {
        let t = m.next_event_time().expect("the sender always has something scheduled");
        for Delivery { node, time_us, event } in m.advance(t) {
            match event {
                NodeEvent::TxDone(result) if node == tx => {
                    let ack_frame = result.expect("a lone sender on a perfect link never fails");
                    assert_eq!(ack_frame.is_some(), ack);
                    // The first frame has no IFS before it.
                    let ifs = if done == 0 { 0 } else { timing.lifs_us };
                    let backoff = time_us - last_done - ifs - fixed;
                    assert_eq!(backoff % timing.backoff_unit_us, 0, "backoff not whole periods");
                    assert!(backoff <= 7 * timing.backoff_unit_us, "backoff {backoff} beyond 2^3-1 periods");
                    backoff_sum += backoff;
                    done += 1;
                    last_done = time_us;
                    if done < FRAMES {
                        m.transmit(tx, TxRequest::new(frame(done as u8), CHANNEL)).unwrap();
                    }
                }
                NodeEvent::Received(_) if node == rx => received += 1,
                other => panic!("unexpected {other:?} at {node:?}"),
            }
        }
    }
    assert_eq!(received, FRAMES);
    let mean_backoff = backoff_sum as f64 / FRAMES as f64;
    println!("mean backoff {mean_backoff:.1} µs over {FRAMES} frames (analytic 1120 µs)");
    assert!((mean_backoff - 1120.0).abs() < 1120.0 * 0.02);
    let elapsed = last_done + timing.lifs_us;
    let stats = m.stats(tx).unwrap();
    assert_eq!((stats.frames_sent, stats.retries, stats.cca_failures), (FRAMES, 0, 0));
    (FRAMES * payload * 8) as f64 / elapsed as f64 * 1000.0
}

fn assert_within(label: &str, simulated: f64, analytic: f64, tolerance: f64) {
    let err = (simulated - analytic) / analytic;
    println!("{label}: simulated {simulated:.2} kbit/s, analytic {analytic:.2} kbit/s, error {:+.3} %", err * 100.0);
    assert!(err.abs() <= tolerance, "{label}: {:.3} % off", err * 100.0);
}

/// radio.md: backoff 1.12 + CCA 0.128 + turnaround 0.192 + frame 4.256 + turnaround 0.192 +
/// ACK 0.352 + LIFS 0.640 = 6.88 ms per 116-byte payload.
#[test]
fn single_sender_with_ack_matches_the_analytic_ceiling() {
    let per_frame_ms = 1.12 + 0.128 + 0.192 + 4.256 + 0.192 + 0.352 + 0.640;
    assert!((per_frame_ms - 6.88f64).abs() < 1e-9);
    let analytic = 116.0 * 8.0 / per_frame_ms;
    let simulated = saturated(Timing::STANDARD, |s| short_address_frame(s, true), 116, true);
    assert_within("with ACK, short addresses", simulated, analytic, 0.02);
    assert!((simulated - 135.0).abs() < 135.0 * 0.02);
}

/// radio.md: the same without the ACK exchange, ≈ 146 kbit/s.
#[test]
fn single_sender_without_ack_matches_the_analytic_ceiling() {
    let analytic = 116.0 * 8.0 / (1.12 + 0.128 + 0.192 + 4.256 + 0.640);
    let simulated = saturated(Timing::STANDARD, |s| short_address_frame(s, false), 116, false);
    assert_within("without ACK, short addresses", simulated, analytic, 0.02);
}

/// Latré et al.: ≤ 163 kbit/s = 122-byte payload over backoff 1.12 + frame 4.256 + LIFS 0.640,
/// which charges no time for the CCA or the RX→TX switch (their assumption, `Timing::LATRE_2006`).
#[test]
fn latre_no_ack_headline() {
    let analytic = 122.0 * 8.0 / (1.12 + 4.256 + 0.640);
    assert!(analytic <= 163.0 && analytic > 162.0);
    let simulated = saturated(Timing::LATRE_2006, no_address_frame, 122, false);
    assert_within("Latré no-ACK, Latré's timing", simulated, analytic, 0.02);
    // With the standard's CCA and RX→TX switch the same frames are slower by exactly those
    // 0.32 ms per frame.
    let standard = saturated(Timing::STANDARD, no_address_frame, 122, false);
    assert_within(
        "Latré frames, standard timing",
        standard,
        122.0 * 8.0 / (1.12 + 0.128 + 0.192 + 4.256 + 0.640),
        0.02,
    );
}

fn run_until_done(m: &mut Medium, who: &[NodeId]) -> Vec<Delivery> {
    let mut all = Vec::new();
    let mut pending = who.len();
    while pending > 0 {
        let t = m.next_event_time().expect("events until every sender is done");
        for d in m.advance(t) {
            if who.contains(&d.node) && matches!(d.event, NodeEvent::TxDone(_)) {
                pending -= 1;
            }
            all.push(d);
        }
    }
    all
}

fn tx_result(events: &[Delivery], node: NodeId) -> Result<bool, TxError> {
    events
        .iter()
        .find_map(|d| match d.event {
            NodeEvent::TxDone(r) if d.node == node => Some(r.map(|ack| ack.is_some())),
            _ => None,
        })
        .expect("a TxDone")
}

/// A and C both reach B but not each other: CCA cannot protect them, so their frames overlap
/// at B, which receives neither.
#[test]
fn hidden_terminals_collide_at_the_common_receiver() {
    let mut m = Medium::new(7, Timing::STANDARD);
    let a = node(&mut m, 1);
    let b = node(&mut m, 2);
    let c = node(&mut m, 3);
    m.set_link_both(a, b, Some(Link::perfect())).unwrap();
    m.set_link_both(c, b, Some(Link::perfect())).unwrap();
    for sender in [a, c] {
        // Backoffs differ by at most 7 units (2.24 ms), less than the 4.256 ms frame.
        let mut req = TxRequest::new(short_address_frame(1, true), CHANNEL);
        req.max_frame_retries = 0;
        m.transmit(sender, req).unwrap();
    }
    let events = run_until_done(&mut m, &[a, c]);
    assert_eq!(tx_result(&events, a), Err(TxError::NoAck));
    assert_eq!(tx_result(&events, c), Err(TxError::NoAck));
    assert!(events.iter().all(|d| d.node != b), "B received something: {events:?}");
    let sb = m.stats(b).unwrap();
    assert!(sb.collisions >= 1);
    assert_eq!((sb.frames_received, sb.acks_sent), (0, 0));
    // Neither sender's CCA saw the other.
    assert_eq!(m.stats(a).unwrap().cca_failures + m.stats(c).unwrap().cca_failures, 0);
}

/// The reverse link drops every ACK: macMaxFrameRetries (3) retransmissions, then NoAck.
#[test]
fn lossy_link_retries_then_no_ack() {
    let mut m = Medium::new(3, Timing::STANDARD);
    let a = node(&mut m, 1);
    let b = node(&mut m, 2);
    m.set_link(a, b, Some(Link::perfect())).unwrap();
    m.set_link(b, a, Some(Link::new(0.0, -50))).unwrap();
    m.transmit(a, TxRequest::new(short_address_frame(42, true), CHANNEL)).unwrap();
    let events = run_until_done(&mut m, &[a]);
    assert_eq!(tx_result(&events, a), Err(TxError::NoAck));
    let sa = m.stats(a).unwrap();
    assert_eq!((sa.frames_sent, sa.retries, sa.no_acks), (4, 3, 1));
    assert_eq!(sa.rx_lost, 4, "each ACK lost to the link");
    // B got (and ACKed) every copy; duplicate rejection is the upper layer's business.
    assert_eq!(m.stats(b).unwrap().acks_sent, 4);
    assert_eq!(events.iter().filter(|d| d.node == b).count(), 4);

    // A 70 % link in both directions: over many frames some need retries, most get through.
    let mut m = Medium::new(11, Timing::STANDARD);
    let a = node(&mut m, 1);
    let b = node(&mut m, 2);
    m.set_link_both(a, b, Some(Link::new(0.7, -80))).unwrap();
    let mut ok = 0;
    for seq in 0..200u8 {
        m.transmit(a, TxRequest::new(short_address_frame(seq, true), CHANNEL)).unwrap();
        ok += u32::from(tx_result(&run_until_done(&mut m, &[a]), a).is_ok());
    }
    let sa = m.stats(a).unwrap();
    // Per attempt success 0.49; after 4 attempts ≈ 93 %.
    assert!((170..=199).contains(&ok), "{ok}");
    assert!(sa.retries > 100, "{sa:?}");
}

/// Two jammers that cannot hear each other keep the channel busy around A without a gap as
/// long as a CCA: five busy CCAs (macMaxCSMABackoffs 4), then ChannelAccessFailure.
#[test]
fn busy_channel_gives_channel_access_failure() {
    let mut m = Medium::new(5, Timing::STANDARD);
    let a = node(&mut m, 1);
    let j1 = node(&mut m, 0x10);
    let j2 = node(&mut m, 0x11);
    m.set_link(j1, a, Some(Link::perfect())).unwrap();
    m.set_link(j2, a, Some(Link::perfect())).unwrap();
    let jam = |m: &mut Medium, j: NodeId, at: u64| {
        let mut req = TxRequest::new(short_address_frame(0, false), CHANNEL);
        req.csma_ca = false;
        req.start_at_us = Some(at);
        m.transmit(j, req).unwrap();
    };
    jam(&mut m, j1, 0);
    jam(&mut m, j2, 2_000);
    // A starts once both jammers are on air.
    let mut a_started = false;
    let mut result = None;
    while result.is_none() {
        let t = m.next_event_time().expect("jammers never stop");
        if !a_started && t >= 2_500 {
            m.advance(2_500);
            m.transmit(a, TxRequest::new(short_address_frame(1, true), CHANNEL)).unwrap();
            a_started = true;
            continue;
        }
        for d in m.advance(t) {
            match d.event {
                NodeEvent::TxDone(_) if d.node == j1 || d.node == j2 => jam(&mut m, d.node, d.time_us),
                NodeEvent::TxDone(r) if d.node == a => result = Some(r.map(|_| ())),
                _ => {}
            }
        }
    }
    assert_eq!(result, Some(Err(TxError::ChannelAccessFailure)));
    let sa = m.stats(a).unwrap();
    assert_eq!((sa.cca_failures, sa.channel_access_failures, sa.frames_sent), (5, 1, 0));
}

/// The same seed gives the same run; another seed a different one.
#[test]
fn runs_are_reproducible_from_the_seed() {
    let run = |seed| {
        let mut m = Medium::new(seed, Timing::STANDARD);
        let a = node(&mut m, 1);
        let b = node(&mut m, 2);
        m.set_link_both(a, b, Some(Link::new(0.8, -70))).unwrap();
        for seq in 0..50u8 {
            m.transmit(a, TxRequest::new(short_address_frame(seq, true), CHANNEL)).unwrap();
            run_until_done(&mut m, &[a]);
        }
        (m.now(), m.stats(a).unwrap(), m.stats(b).unwrap())
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1).0, run(2).0);
}

/// Radio-on time: the receiver that sleeps half the time is on about half as long.
#[test]
fn radio_on_time_follows_sleep() {
    let mut m = Medium::new(9, Timing::STANDARD);
    let a = node(&mut m, 1);
    let b = node(&mut m, 2);
    m.advance(1_000_000);
    m.sleep(b).unwrap();
    m.advance(2_000_000);
    let (sa, sb) = (m.stats(a).unwrap(), m.stats(b).unwrap());
    assert_eq!(sa.radio_on_us, 2_000_000);
    assert_eq!(sb.radio_on_us, 1_000_000);
}

/// Random operations on a random topology: nothing panics, time never goes back, every
/// accepted transmission ends in exactly one TxDone, every scan in one result, and radio-on
/// time never exceeds elapsed time.
#[test]
fn random_operations_keep_the_invariants() {
    use ferry::sim::rng::Rng;
    for seed in 0..40u64 {
        let mut r = Rng::new(seed);
        let mut m = Medium::new(seed, Timing::STANDARD);
        let n = 2 + r.up_to(6) as usize;
        let ids: Vec<NodeId> = (0..n).map(|i| node(&mut m, 1 + i as u16)).collect();
        for &a in &ids {
            for &b in &ids {
                if a != b && r.chance(0.7) {
                    let link = Link::new(r.unit(), -40 - r.up_to(50) as i8);
                    m.set_link(a, b, Some(link)).unwrap();
                }
            }
        }
        let mut outstanding_tx = vec![0i32; n];
        let mut outstanding_scan = vec![0i32; n];
        let mut last_time = 0;
        for step in 0..400u32 {
            let i = r.up_to(n as u32 - 1) as usize;
            let id = ids[i];
            match r.up_to(9) {
                0..=3 => {
                    let dst = if r.chance(0.2) { 0xffff } else { 1 + r.up_to(n as u32) as u16 };
                    let h =
                        Header::data(step as u8, PAN, Address::Short(dst), Address::Short(1 + i as u16), r.chance(0.8));
                    let mut req = TxRequest::new(h.emit_frame(&vec![0u8; r.up_to(110) as usize]).unwrap(), CHANNEL);
                    req.csma_ca = r.chance(0.8);
                    req.max_frame_retries = r.up_to(3) as u8;
                    req.start_at_us = r.chance(0.2).then(|| m.now() + u64::from(r.up_to(20_000)));
                    if m.transmit(id, req).is_ok() {
                        outstanding_tx[i] += 1;
                    }
                }
                4 => {
                    m.sleep(id).unwrap();
                }
                5 => m.receive(id, CHANNEL).unwrap(),
                6 => outstanding_scan[i] += i32::from(m.energy_scan(id, CHANNEL, u64::from(r.up_to(5_000))).is_ok()),
                7 if r.chance(0.2) => {
                    m.disable(id).unwrap();
                    m.receive(id, CHANNEL).unwrap();
                }
                _ => {}
            }
            let until = m.now() + u64::from(r.up_to(8_000));
            for d in m.advance(until) {
                assert!(d.time_us >= last_time, "time went back");
                last_time = d.time_us;
                let k = ids.iter().position(|&x| x == d.node).unwrap();
                match d.event {
                    NodeEvent::TxDone(_) => outstanding_tx[k] -= 1,
                    NodeEvent::EnergyScanDone { .. } => outstanding_scan[k] -= 1,
                    _ => {}
                }
            }
        }
        // Drain: everything started must finish.
        while let Some(t) = m.next_event_time() {
            assert!(t < m.now() + 10_000_000, "events keep coming");
            for d in m.advance(t) {
                let k = ids.iter().position(|&x| x == d.node).unwrap();
                match d.event {
                    NodeEvent::TxDone(_) => outstanding_tx[k] -= 1,
                    NodeEvent::EnergyScanDone { .. } => outstanding_scan[k] -= 1,
                    _ => {}
                }
            }
        }
        assert!(outstanding_tx.iter().all(|&c| c == 0), "seed {seed}: {outstanding_tx:?}");
        assert!(outstanding_scan.iter().all(|&c| c == 0), "seed {seed}: {outstanding_scan:?}");
        for &id in &ids {
            let s = m.stats(id).unwrap();
            assert!(s.radio_on_us <= m.now(), "seed {seed}: {s:?}");
            assert!(s.air_time_us <= m.now());
        }
        // Idle and asleep: nobody is stuck with the radio on.
        for &id in &ids {
            m.sleep(id).unwrap();
        }
        let before: Vec<u64> = ids.iter().map(|&id| m.stats(id).unwrap().radio_on_us).collect();
        m.advance(m.now() + 1_000_000);
        let after: Vec<u64> = ids.iter().map(|&id| m.stats(id).unwrap().radio_on_us).collect();
        assert_eq!(before, after, "seed {seed}: a radio stayed on while asleep and idle");
    }
}

/// Nodes on a line, links from the path-loss model: the ends do not hear each other, so they
/// are hidden terminals for the middle node; neighbours' links are good.
#[test]
fn positions_and_path_loss_give_hidden_terminals() {
    use ferry::sim::PathLoss;
    let mut m = Medium::new(2, Timing::STANDARD);
    let ids: Vec<NodeId> = (0..3).map(|i| node(&mut m, 1 + i)).collect();
    let model = PathLoss::default();
    let placed: Vec<_> = ids.iter().enumerate().map(|(i, &id)| (id, (i as f64 * 60.0, 0.0))).collect();
    m.place(&placed, &model, 0.0, 127).unwrap();
    let near = m.link(ids[0], ids[1]).expect("60 m is in range");
    assert!(near.prr > 0.9, "{near:?}");
    assert_eq!(m.link(ids[1], ids[0]), Some(near));
    assert!(m.link(ids[0], ids[2]).is_none(), "120 m is out of range");
}

/// Several saturated senders that all hear each other: CCA defers most of the time, same-slot
/// choices still collide, and the channel carries no more than one sender could.
#[test]
fn contention_among_saturated_senders() {
    let single = contention(1);
    for n in [2, 5] {
        let (total, collisions, cca_failures) = contention(n);
        println!("{n} senders: {total:.1} kbit/s total, {collisions} collisions, {cca_failures} busy CCAs");
        assert!(collisions > 0 && cca_failures > 0);
        assert!(total < single.0 * 1.02, "{total} vs single {}", single.0);
        assert!(total > single.0 * 0.5, "{total} vs single {}", single.0);
    }
}

/// `n` senders to one sink, each re-sending as soon as it is done, for 10 s of virtual time.
/// Returns (acknowledged MAC payload kbit/s in total, collisions at the sink, busy CCAs).
fn contention(n: usize) -> (f64, u64, u64) {
    const RUN_US: u64 = 10_000_000;
    let mut m = Medium::new(99, Timing::STANDARD);
    let sink = node(&mut m, 0x100);
    let senders: Vec<NodeId> = (0..n).map(|i| node(&mut m, 1 + i as u16)).collect();
    for &s in &senders {
        m.set_link_both(s, sink, Some(Link::perfect())).unwrap();
        for &o in &senders {
            if o != s {
                m.set_link(s, o, Some(Link::perfect())).unwrap();
            }
        }
    }
    let frame = |i: usize, seq: u8| {
        Header::data(seq, PAN, Address::Short(0x100), Address::Short(1 + i as u16), true).emit_frame(&[0; 116]).unwrap()
    };
    for (i, &s) in senders.iter().enumerate() {
        m.transmit(s, TxRequest::new(frame(i, 0), CHANNEL)).unwrap();
    }
    let mut acked = 0u64;
    let mut seq = 0u8;
    while let Some(t) = m.next_event_time().filter(|&t| t <= RUN_US) {
        for d in m.advance(t) {
            if let (Some(i), NodeEvent::TxDone(r)) = (senders.iter().position(|&s| s == d.node), d.event) {
                acked += u64::from(matches!(r, Ok(Some(_))));
                seq = seq.wrapping_add(1);
                m.transmit(d.node, TxRequest::new(frame(i, seq), CHANNEL)).unwrap();
            }
        }
    }
    let cca: u64 = senders.iter().map(|&s| m.stats(s).unwrap().cca_failures).sum();
    (acked as f64 * 116.0 * 8.0 / RUN_US as f64 * 1000.0, m.stats(sink).unwrap().collisions, cca)
}
