//! The engine driven by hand: each request it asks for is answered (or failed) by the test.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::coap::{Code, Method, Response};
use crate::fleet::Eui64;

const PEER: u16 = 7;

fn plan() -> SessionPlan<u16> {
    SessionPlan {
        device: Eui64([0, 1, 2, 3, 4, 5, 6, 7]),
        peer: PEER,
        manifest_uri: "coap://[fd00::1]/fw/a/b/riot.suit.9.bin".into(),
        manifest_path: "fw/a/b/riot.suit.9.bin".into(),
        manifest_digest: "00".repeat(32),
        payload_paths: vec!["fw/a/b/slot0.bin".into(), "fw/a/b/slot1.bin".into()],
        sequence: 9,
        manifest_size: 400,
        payload_size: 256,
        timing: DeviceTiming::default(),
        authority: "vendor".into(),
        approval: "test".into(),
        not_before: None,
        window_closes: None,
        air_time_share: 0.0,
        gateway_share: 0.0,
    }
}

/// Drains the actions: the persisted states and the requests, in order.
fn drain(e: &mut Engine<u16>) -> (Vec<State>, Vec<(SessionId, RequestTag, coap::Request)>) {
    let (mut persisted, mut requests) = (Vec::new(), Vec::new());
    while let Some(a) = e.poll_action() {
        match a {
            Action::Persist(r) => {
                assert!(requests.is_empty(), "a record after a request in one batch: {r:?}");
                persisted.push(r.state)
            }
            Action::Request { session, tag, peer, request } => {
                assert_eq!(peer, PEER);
                requests.push((session, tag, request));
            }
        }
    }
    (persisted, requests)
}

fn text(code: Code, body: &'static str) -> Result<Response, RequestError> {
    Ok(Response { payload: Bytes::from_static(body.as_bytes()), ..Response::new(code) })
}

/// Answers the three read-back probes: no /ferry/status, "NONE", slot `slot`.
fn answer_probes(e: &mut Engine<u16>, now: Instant, slot: &'static str) -> Vec<(SessionId, RequestTag, coap::Request)> {
    let mut answers = [text(Code::NotFound, ""), text(Code::Content, "NONE"), text(Code::Content, slot)].into_iter();
    let mut out = Vec::new();
    loop {
        let (_, requests) = drain(e);
        let Some((id, tag, req)) = requests.into_iter().next() else { return out };
        if req.method == Method::Post {
            out.push((id, tag, req));
            return out;
        }
        e.handle_response(now, id, tag, answers.next().expect("three probes at most"));
    }
}

/// An engine whose one session (of `plan`) was probed, triggered and served its manifest at
/// `t0`: the next payload block starts the transfer.
fn manifest_served(t0: Instant, plan: SessionPlan<u16>) -> (Engine<u16>, SessionId) {
    let mut e = Engine::new(EngineConfig::default(), t0, 1_000, 0);
    let id = e.start(t0, plan).expect("starts");
    let trigger = answer_probes(&mut e, t0, "1");
    e.handle_response(t0, id, trigger[0].1, text(Code::Created, ""));
    e.handle_served(t0, PEER, "fw/a/b/riot.suit.9.bin", 0, 64, 400);
    (e, id)
}

#[test]
fn a_trigger_refused_with_4xx_fails_at_once_and_5xx_is_retried() {
    let now = Instant::now();
    let mut e = Engine::new(EngineConfig::default(), now, 0, 41);
    let id = e.start(now, plan()).expect("starts");
    assert_eq!(id, 42, "ids continue above the stored ones");
    let trigger = answer_probes(&mut e, now, "0");
    let (_, tag, req) = &trigger[0];
    assert_eq!(&req.payload[..], b"coap://[fd00::1]/fw/a/b/riot.suit.9.bin\0");
    e.handle_response(now, id, *tag, text(Code::ServiceUnavailable, ""));
    assert_eq!(e.state(id), Some(State::Planned));
    let retry_at = e.poll_timeout().expect("a retry is due");
    assert_eq!(retry_at - now, Duration::from_secs(30));
    e.handle_timeout(retry_at);
    let trigger = answer_probes(&mut e, retry_at, "0");
    e.handle_response(retry_at, id, trigger[0].1, text(Code::RequestEntityTooLarge, ""));
    assert_eq!(e.state(id), Some(State::Failed));
    let r = e.record(id).expect("record");
    assert_eq!((r.attempts, r.slot_before), (2, Some(0)));
    assert_eq!(
        r.reason.as_ref().map(ToString::to_string).as_deref(),
        Some("the device answered the trigger with 4.13")
    );
    assert_eq!(e.poll_timeout(), None);
}

#[test]
fn a_silent_device_is_probed_again_with_growing_backoff() {
    let now = Instant::now();
    let cfg = EngineConfig { max_failures: 3, ..EngineConfig::default() };
    let mut e = Engine::new(cfg, now, 0, 0);
    let id = e.start(now, plan()).expect("starts");
    let mut t = now;
    for delay in [30, 60] {
        let (_, requests) = drain(&mut e);
        let (_, tag, req) = &requests[0];
        assert_eq!(req.path_string(), "ferry/status");
        e.handle_response(t, id, *tag, Err(RequestError::Timeout(5)));
        let next = e.poll_timeout().expect("retry");
        assert_eq!(next - t, Duration::from_secs(delay));
        t = next;
        e.handle_timeout(t);
    }
    let (_, requests) = drain(&mut e);
    e.handle_response(t, id, requests[0].1, Err(RequestError::Timeout(5)));
    assert_eq!(e.state(id), Some(State::Failed));
    assert_eq!(e.record(id).map(|r| r.attempts), Some(0), "never triggered");
}

#[test]
fn a_request_the_session_stopped_waiting_for_is_no_longer_awaited() {
    let t0 = Instant::now();
    let mut e = Engine::new(EngineConfig::default(), t0, 0, 0);
    let id = e.start(t0, plan()).expect("starts");
    let trigger = answer_probes(&mut e, t0, "1");
    let (_, tag, req) = &trigger[0];
    assert_eq!(req.path_string(), "suit/trigger");
    assert!(e.awaits(id, *tag), "the trigger is awaited while the session is triggered");
    // Its answer never comes: past the trigger deadline the session goes back to planned, and
    // the shell must stop retransmitting the trigger, or the next probe would queue behind it.
    let deadline = e.poll_timeout().expect("a trigger deadline");
    e.handle_timeout(deadline);
    assert_eq!(e.state(id), Some(State::Planned));
    assert!(!e.awaits(id, *tag));
    // The next probe is awaited, until the device fetches its manifest by itself.
    let retry = e.poll_timeout().expect("a retry");
    e.handle_timeout(retry);
    let (_, requests) = drain(&mut e);
    let (_, probe, req) = &requests[0];
    assert_eq!(req.path_string(), "suit/slot/active", "the step that answered the first probe");
    assert!(e.awaits(id, *probe));
    e.handle_served(retry, PEER, "fw/a/b/riot.suit.9.bin", 0, 64, 400);
    assert_eq!(e.state(id), Some(State::ManifestServed));
    assert!(!e.awaits(id, *probe), "the fetch proves the earlier trigger arrived");
    assert!(!e.awaits(id + 1, *probe), "no such session");
}

#[test]
fn a_trigger_waits_for_its_answer_and_the_fetch_is_timed_from_it() {
    // A device that polls every 10 s: the trigger's first copy is lost on the way, CoAP sends
    // the second 12-18 s later, and the device gets it at its next wake, up to 28 s after the
    // first: past the fetch deadline counted from the first copy.
    let timing = DeviceTiming { wake_period: Some(Duration::from_secs(10)), ..DeviceTiming::default() };
    let timeouts = Timeouts::derive(&timing, 400);
    assert!(timeouts.trigger < Duration::from_secs(28) && timeouts.answer > Duration::from_secs(30));
    let t0 = Instant::now();
    let mut e = Engine::new(EngineConfig::default(), t0, 0, 0);
    let id = e.start(t0, SessionPlan { timing, ..plan() }).expect("starts");
    let trigger = answer_probes(&mut e, t0, "1");
    let tag = trigger[0].1;
    assert_eq!(e.poll_timeout(), Some(t0 + timeouts.answer));
    e.handle_timeout(t0 + timeouts.trigger);
    assert_eq!(e.state(id), Some(State::Triggered), "the retransmission is still on its way");
    assert!(e.awaits(id, tag));
    // The second copy arrives at the device's next wake; from its answer it has the trigger
    // timeout to ask for the manifest.
    let answered = t0 + Duration::from_secs(27);
    e.handle_response(answered, id, tag, text(Code::Changed, ""));
    assert_eq!(e.poll_timeout(), Some(answered + timeouts.trigger));
    e.handle_timeout(answered + timeouts.trigger);
    assert_eq!(e.state(id), Some(State::Planned), "answered but never fetched: tried again later");
    let r = e.record(id).expect("record");
    assert_eq!(r.reason.as_ref().map(ToString::to_string).as_deref(), Some("no progress while triggered"));
}

#[test]
fn a_stale_answer_is_ignored_and_not_before_is_honoured() {
    let now = Instant::now();
    let mut e = Engine::new(EngineConfig::default(), now, 0, 0);
    let wake = now + Duration::from_secs(120);
    let id = e.start(now, SessionPlan { not_before: Some(wake), ..plan() }).expect("starts");
    let busy = e.start(now, plan()).expect_err("one live session per device");
    assert_eq!(busy, Busy { session: id, state: State::Planned });
    let (persisted, requests) = drain(&mut e);
    assert_eq!((persisted, requests.len()), (vec![State::Planned], 0));
    assert_eq!(e.poll_timeout(), Some(wake));
    e.handle_timeout(wake - Duration::from_secs(1));
    assert!(drain(&mut e).1.is_empty(), "nothing before the device wakes");
    e.handle_timeout(wake);
    let (_, requests) = drain(&mut e);
    let (_, tag, _) = requests[0];
    e.handle_response(wake, id, RequestTag(tag.0 + 100), text(Code::Content, "x"));
    assert!(drain(&mut e).1.is_empty(), "an answer to a request not in flight changes nothing");
    e.handle_response(wake, id, tag, text(Code::NotFound, ""));
    assert_eq!(drain(&mut e).1[0].2.path_string(), "suit/version");
}

#[test]
fn progress_is_checkpointed_and_the_last_block_starts_the_reboot() {
    let now = Instant::now();
    let cfg = EngineConfig { checkpoint_bytes: 128, ..EngineConfig::default() };
    let mut e = Engine::new(cfg, now, 1_000, 0);
    let id = e.start(now, plan()).expect("starts");
    let trigger = answer_probes(&mut e, now, "1");
    e.handle_response(now, id, trigger[0].1, text(Code::Created, ""));
    e.handle_served(now, PEER, "fw/a/b/riot.suit.9.bin", 0, 64, 400);
    e.handle_served(now, 99, "fw/a/b/slot0.bin", 0, 64, 256); // another device: not ours
    for offset in [0, 64, 128, 192] {
        e.handle_served(now, PEER, "fw/a/b/slot0.bin", offset, 64, 256);
    }
    let (persisted, _) = drain(&mut e);
    // (triggered was drained with the trigger) manifest-served, streaming, a checkpoint at
    // 128 bytes, rebooting.
    assert_eq!(persisted, [State::ManifestServed, State::Streaming, State::Streaming, State::Rebooting]);
    let r = e.record(id).expect("record");
    assert_eq!((r.progress, r.bytes_served), (256, 64 + 256));
    assert_eq!(e.poll_timeout(), Some(now + DeviceTiming::default().boot_time));
    let p: Vec<Progress> = e.progress().collect();
    assert_eq!((p[0].fetched, p[0].total, p[0].state), (256, 256, State::Rebooting));
    assert_eq!(e.count_by_state()[&State::Rebooting], 1);
}

#[test]
fn the_wait_before_each_next_block_is_measured_and_a_lost_request_stands_out() {
    let t0 = Instant::now();
    let (mut e, _) = manifest_served(t0, plan());
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    // The first block is not a wait (it follows the manifest and its check). The second comes
    // 100 ms later; the third's request was lost, the device asked again 2.5 s later, and its
    // answer was lost too: the block is served twice, and the repeat is no new wait.
    e.handle_served(at(1_000), PEER, "fw/a/b/slot0.bin", 0, 64, 256);
    e.handle_served(at(1_100), PEER, "fw/a/b/slot0.bin", 64, 64, 256);
    e.handle_served(at(3_600), PEER, "fw/a/b/slot0.bin", 128, 64, 256);
    e.handle_served(at(6_600), PEER, "fw/a/b/slot0.bin", 128, 64, 256);
    e.handle_served(at(6_700), PEER, "fw/a/b/slot0.bin", 192, 64, 256);
    let waits: Vec<Duration> = e.take_block_waits().collect();
    assert_eq!(waits, [100, 2_500, 3_100].map(Duration::from_millis));
    let s = e.stats();
    assert_eq!((s.block_waits, s.long_block_waits, s.long_block_wait_total), (3, 2, Duration::from_millis(5_600)));
    assert_eq!(e.take_block_waits().count(), 0, "taken once");
}

#[test]
fn a_slow_device_that_goes_on_by_itself_is_not_given_up() {
    let t0 = Instant::now();
    let mut now = t0;
    let stall = Timeouts::derive(&DeviceTiming::default(), 400).stall;
    // A stall after every block, each followed by the device asking for its next block on
    // its own before the retry's backoff ends: the session follows it every time, and no
    // stall counts, though there are more of them than max_failures (4).
    let (mut e, id) = manifest_served(t0, SessionPlan { payload_size: 64 * 6, ..plan() });
    e.handle_served(now, PEER, "fw/a/b/slot0.bin", 0, 64, 384);
    for block in 1..6u64 {
        now += stall + Duration::from_secs(1);
        e.handle_timeout(now);
        assert_eq!(e.state(id), Some(State::Planned), "a stall sends it back to planned");
        assert_eq!(e.record(id).map(|r| r.failures), Some(1));
        now += Duration::from_secs(1);
        e.handle_served(now, PEER, "fw/a/b/slot0.bin", block * 64, 64, 384);
        let expected = if block < 5 { State::Streaming } else { State::Rebooting };
        assert_eq!(e.state(id), Some(expected));
        assert_eq!(e.record(id).map(|r| r.failures), Some(0), "a stall it recovered from is no failure");
    }
    // Each of those long gaps is measured as the device's wait for its next block.
    let waits: Vec<Duration> = e.take_block_waits().collect();
    assert_eq!(waits, vec![stall + Duration::from_secs(2); 5]);
    // One that asks for the same block again after every stall makes no progress: each
    // stall counts, and the fourth ends the session.
    let (mut e, id) = manifest_served(t0, plan());
    e.handle_served(t0, PEER, "fw/a/b/slot0.bin", 0, 64, 256);
    let mut now = t0;
    for _ in 0..4 {
        now += stall + Duration::from_secs(1);
        e.handle_timeout(now);
        e.handle_served(now, PEER, "fw/a/b/slot0.bin", 0, 64, 256);
    }
    assert_eq!(e.state(id), Some(State::Failed), "{:?}", e.record(id).map(|r| r.failures));
    // A device that really stopped is still given up.
    let (mut e, id) = manifest_served(t0, plan());
    e.handle_served(t0, PEER, "fw/a/b/slot0.bin", 0, 64, 256);
    let mut now = t0;
    for _ in 0..200 {
        now += Duration::from_secs(60);
        e.handle_timeout(now);
        let (_, requests) = drain(&mut e);
        for (sid, tag, _) in requests {
            e.handle_response(now, sid, tag, Err(RequestError::Timeout(5)));
        }
        if e.state(id) == Some(State::Failed) {
            break;
        }
    }
    assert_eq!(e.state(id), Some(State::Failed));
}

#[test]
fn records_survive_the_store_round_trip() {
    let now = Instant::now();
    let mut e = Engine::new(EngineConfig::default(), now, 5_000, 0);
    let id = e.start(now, plan()).expect("starts");
    let trigger = answer_probes(&mut e, now, "0");
    e.handle_response(now, id, trigger[0].1, text(Code::Created, ""));
    let record = e.record(id).expect("record").clone();
    let (row, event) = record.to_rows();
    assert!(event.is_none(), "a record read from the engine carries no transition");
    assert_eq!((row.device.as_str(), row.state.as_str(), row.attempts), ("0001020304050607", "triggered", 1));
    let back = SessionRecord::<u16>::from_row(&row).expect("decodes");
    assert_eq!(back.plan, SessionPlan { not_before: None, ..plan() });
    assert_eq!((back.state, back.slot_before, back.attempts), (State::Triggered, Some(0), 1));
    let mut broken = row.clone();
    broken.state = "exploded".into();
    assert!(matches!(SessionRecord::<u16>::from_row(&broken), Err(RecordError::UnknownState { .. })));
}

/// `/ferry/status` of a device running `seq` that reports update `failed` failed with `code`.
fn status_with_failure(seq: u64, failed: u64, code: &str) -> Result<Response, RequestError> {
    let mut buf = Vec::new();
    let mut enc = minicbor::Encoder::new(&mut buf);
    enc.map(2)
        .and_then(|e| e.str("installed")?.array(1)?.u64(seq)?.str("failed")?.array(2)?.u64(failed)?.str(code))
        .ok();
    Ok(Response { payload: Bytes::from(buf), ..Response::new(Code::Content) })
}

/// `/ferry/status` of a device running `seq`.
fn status(seq: u64) -> Result<Response, RequestError> {
    let mut buf = Vec::new();
    minicbor::Encoder::new(&mut buf).map(1).and_then(|e| e.str("installed")?.array(1)?.u64(seq)).ok();
    Ok(Response { payload: Bytes::from(buf), ..Response::new(Code::Content) })
}

/// Runs a session of a device that reports `/ferry/status` (sequence number 8) to its first
/// read-back after the last block; returns the session and the time, with the `/ferry/status`
/// probe pending.
fn to_read_back(e: &mut Engine<u16>, now: Instant) -> (SessionId, Instant, RequestTag) {
    let id = e.start(now, plan()).expect("starts");
    let (_, requests) = drain(e);
    assert_eq!(requests[0].2.path_string(), "ferry/status");
    e.handle_response(now, id, requests[0].1, status(8));
    let (_, requests) = drain(e);
    assert_eq!(requests[0].2.path_string(), "suit/trigger", "sequence number 8 settles it");
    e.handle_response(now, id, requests[0].1, text(Code::Created, ""));
    e.handle_served(now, PEER, "fw/a/b/slot1.bin", 0, 256, 256);
    let _ = drain(e);
    let at = e.poll_timeout().expect("the read-back is due");
    e.handle_timeout(at);
    let (_, requests) = drain(e);
    assert_eq!(requests[0].2.path_string(), "ferry/status");
    (id, at, requests[0].1)
}

#[test]
fn a_device_that_reports_how_its_update_failed_is_believed_at_once() {
    let now = Instant::now();
    let mut e = Engine::new(EngineConfig::default(), now, 0, 0);
    let (id, at, tag) = to_read_back(&mut e, now);
    e.handle_response(at, id, tag, status_with_failure(8, 9, "boot-failure"));
    assert_eq!(e.state(id), Some(State::RolledBack), "no waiting for the confirm deadline");
    assert_eq!(
        e.record(id).and_then(|r| r.reason.as_ref()).map(ToString::to_string).as_deref(),
        Some("the device reports its update to sequence number 9 failed (boot-failure); it runs sequence number 8")
    );

    let mut e = Engine::new(EngineConfig::default(), now, 0, 0);
    let (id, at, tag) = to_read_back(&mut e, now);
    e.handle_response(at, id, tag, status_with_failure(8, 9, "digest-mismatch"));
    assert_eq!(e.state(id), Some(State::Failed));

    // A failure of another update says nothing about this one.
    let mut e = Engine::new(EngineConfig::default(), now, 0, 0);
    let (id, at, tag) = to_read_back(&mut e, now);
    e.handle_response(at, id, tag, status_with_failure(8, 7, "boot-failure"));
    assert_eq!(e.state(id), Some(State::Confirming), "old, maybe not rebooted yet: asked again");
}

/// Runs a session of a stock RIOT device (no /ferry/status, /suit/version "NONE", slot 0
/// before the trigger) to its first read-back after the last block; returns the session, the
/// time and the read-back requests sent.
fn stock_device_to_read_back(
    e: &mut Engine<u16>,
    now: Instant,
) -> (SessionId, Instant, Vec<(SessionId, RequestTag, coap::Request)>) {
    let id = e.start(now, plan()).expect("starts");
    let trigger = answer_probes(e, now, "0");
    e.handle_response(now, id, trigger[0].1, text(Code::Created, ""));
    e.handle_served(now, PEER, "fw/a/b/slot1.bin", 0, 256, 256);
    let _ = drain(e);
    let at = e.poll_timeout().expect("the read-back is due");
    e.handle_timeout(at);
    (id, at, drain(e).1)
}

#[test]
fn a_stock_riot_device_is_read_back_by_its_slot_alone() {
    let now = Instant::now();
    let mut e = Engine::new(EngineConfig::default(), now, 0, 0);
    let (id, at, requests) = stock_device_to_read_back(&mut e, now);
    // After the reboot, the slot settled it before: one exchange instead of three.
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].2.path_string(), "suit/slot/active");
    e.handle_response(at, id, requests[0].1, text(Code::Content, "1"));
    assert_eq!(e.state(id), Some(State::Done));
    assert_eq!(
        e.record(id).and_then(|r| r.reason.as_ref()).map(ToString::to_string).as_deref(),
        Some("the device's active slot moved from 0 to 1")
    );
}

#[test]
fn a_read_back_that_the_remembered_step_does_not_settle_tries_every_step() {
    let now = Instant::now();
    let mut e = Engine::new(EngineConfig::default(), now, 0, 0);
    let (id, at, requests) = stock_device_to_read_back(&mut e, now);
    // The new image has no /suit/slot/active but reports /ferry/status.
    assert_eq!(requests[0].2.path_string(), "suit/slot/active");
    e.handle_response(at, id, requests[0].1, text(Code::NotFound, ""));
    let (_, requests) = drain(&mut e);
    assert_eq!(requests[0].2.path_string(), "ferry/status");
    e.handle_response(at, id, requests[0].1, status(9));
    assert_eq!(e.state(id), Some(State::Done));
}

#[test]
fn a_late_answer_to_the_trigger_leaves_the_fetch_deadline_alone() {
    let t0 = Instant::now();
    let mut e = Engine::new(EngineConfig::default(), t0, 0, 0);
    let id = e.start(t0, plan()).expect("starts");
    let trigger = answer_probes(&mut e, t0, "0");
    // The device fetched a payload block before ferry heard its answer to the trigger.
    let block = t0 + Duration::from_secs(1);
    e.handle_served(block, PEER, "fw/a/b/slot1.bin", 0, 64, 256);
    assert_eq!(e.state(id), Some(State::Streaming));
    e.handle_response(t0 + Duration::from_secs(5), id, trigger[0].1, text(Code::Changed, ""));
    let stall = Timeouts::derive(&DeviceTiming::default(), 400).stall;
    assert_eq!(e.poll_timeout(), Some(block + stall));
}
