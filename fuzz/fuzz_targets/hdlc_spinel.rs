//! Arbitrary bytes through the HDLC-lite decoder and the Spinel parsers.
//!
//! Invariants: nothing panics; every frame the decoder yields re-encodes and decodes to itself;
//! every Spinel frame that parses re-emits byte-exactly; every typed STREAM_RAW / TX-done value
//! that parses re-emits to bytes that parse back to the same value.
#![no_main]

use ferry_rcp_core::hdlc::{self, SpinelDecoder};
use ferry_rcp_core::spinel::data::Writer;
use ferry_rcp_core::spinel::stream_raw::{RxFrame, TxDone, TxRequest};
use ferry_rcp_core::spinel::{Command, Property, Repr};
use libfuzzer_sys::fuzz_target;

fn check_hdlc(frame: &[u8]) {
    let mut wire = [0u8; 2 * hdlc::MAX_FRAME_LEN + 8];
    let n = hdlc::encode(frame, &mut wire).expect("decoded frames fit the encoder");
    let mut dec = SpinelDecoder::new();
    let mut got = None;
    for &b in &wire[..n] {
        if let Some(ev) = dec.push(b) {
            assert!(got.is_none(), "one frame in, one frame out");
            got = Some(ev.expect("re-encoded frame decodes").to_vec());
        }
    }
    assert_eq!(got.as_deref(), Some(frame));
}

/// Emits with `emit`, then asserts the bytes parse back to `value`.
macro_rules! round_trip {
    ($value:expr, $input_len:expr, $parse:path) => {{
        let value = $value;
        // Re-emitting never grows a value: unknown trailing bytes are dropped, nothing added.
        let mut buf = vec![0u8; $input_len];
        let mut w = Writer::new(&mut buf);
        value.emit(&mut w).expect("parsed value re-emits");
        let bytes = w.written();
        assert_eq!($parse(bytes).expect("re-emitted value parses"), value);
    }};
}

fn check_spinel(bytes: &[u8]) {
    let Ok(repr) = Repr::parse(bytes) else {
        return;
    };
    let mut out = vec![0u8; repr.buffer_len()];
    let n = repr.emit(&mut out).expect("parsed frame re-emits");
    assert_eq!(n, repr.buffer_len());
    assert_eq!(&out[..n], bytes);

    let value = repr.value();
    match (repr.command, repr.prop()) {
        (Command::PropValueSet, Some(Property::StreamRaw)) => {
            if let Ok(req) = TxRequest::parse(value) {
                round_trip!(req, value.len(), TxRequest::parse);
            }
        }
        (Command::PropValueIs, Some(Property::StreamRaw)) => {
            if let Ok(rx) = RxFrame::parse(value) {
                round_trip!(rx, value.len(), RxFrame::parse);
            }
        }
        (Command::PropValueIs, Some(Property::LastStatus)) => {
            if let Ok(done) = TxDone::parse(value) {
                round_trip!(done, value.len(), TxDone::parse);
            }
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let mut dec = SpinelDecoder::new();
    let mut rest = data;
    while !rest.is_empty() {
        let (n, ev) = dec.feed(rest);
        assert!(n > 0 && n <= rest.len());
        if let Some(Ok(frame)) = ev {
            check_hdlc(frame);
            check_spinel(frame);
        }
        rest = &rest[n..];
    }
    // The same bytes as a bare Spinel frame, for inputs that never form an HDLC frame.
    check_spinel(data);
});
